"""SODA_c of the published evaluator ("official") vs the corrected one, on the real YouCook2 val gold.

    python scripts/bench/youcook2_soda_variants.py [--gold ../shared/data/youcook2/yc2_val.json] [--out OUT.json]

Three deterministic prediction sets in the densevid format, built from the real ``yc2_val.json``
(457 videos, 3,492 steps, 77 videos with 11 or more):

* ``oracle``: every GT segment with its own GT sentence;
* ``terse``: every GT segment shifted by 20 % of its length, captioned with the first half of the
  GT sentence's words (a model that says less than the annotators);
* ``halves``: every GT segment cut in two halves, both captioned with the terse sentence (twice
  as many predictions: most videos have >= 11).

All three are scored in one call (one METEOR process, ``youcook2.score_many``); both SODA_c variants
come out of every call, so the difference is measured on identical predictions. Prints a table and
writes the numbers (JSON) to ``--out``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere

from data.benchmarks import youcook2 as yc  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402
from utils.paths import shared_data_dir  # noqa: E402


def terse(sentence: str) -> str:
    words = sentence.rstrip(".").split()
    return " ".join(words[: max(2, (len(words) + 1) // 2)]) + "."


def prediction_sets(gold: dict[str, yc.DenseCaptions]) -> dict[str, dict[str, yc.DenseCaptions]]:
    oracle, shifted, halves = {}, {}, {}
    for vid, g in gold.items():
        oracle[vid] = yc.DenseCaptions(g.segments.copy(), list(g.captions))
        short = [terse(c) for c in g.captions]
        d = (g.segments[:, 1] - g.segments[:, 0]) * 0.2
        shifted[vid] = yc.DenseCaptions(g.segments + d[:, None], short)
        mid = g.segments.mean(axis=1)
        segs = [[s, m] for (s, _), m in zip(g.segments, mid)] + [[m, e] for (_, e), m in zip(g.segments, mid)]
        order = sorted(range(len(segs)), key=lambda i: segs[i][0])
        halves[vid] = yc.DenseCaptions([segs[i] for i in order], [short[i % len(short)] for i in order])
    return {"oracle": oracle, "terse": shifted, "halves": halves}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gold", default=None, help="yc2_val.json (default: the shared data)")
    ap.add_argument("--out", default=None, help="write the numbers here (JSON)")
    args = ap.parse_args(argv)
    gold_path = Path(args.gold) if args.gold else (shared_data_dir() or Path("missing")) / "youcook2" / "yc2_val.json"
    gold = yc.load_gold(gold_path)
    sets = prediction_sets(gold)
    t0 = time.perf_counter()
    results = yc.score_many(list(sets.values()), gold, "official")
    elapsed = time.perf_counter() - t0
    n_pred = {name: sum(len(p) for p in preds.values()) for name, preds in sets.items()}
    rows = {}
    for (name, preds), res in zip(sets.items(), results):
        m, per = res["metrics"], res["per_item"]
        big = [v for v in per if len(preds[v]) >= 11]
        rows[name] = {"n_predictions": n_pred[name], "n_videos_with_11_or_more": len(big),
                      "SODA_c_official": m["SODA_c_official"], "SODA_c_corrected": m["SODA_c_corrected"],
                      "difference": m["SODA_c_corrected"] - m["SODA_c_official"],
                      "max_per_video_difference": 100 * max(abs(per[v]["SODA_c_corrected"] - per[v]["SODA_c_official"])
                                                            for v in per),
                      "CIDEr": m["CIDEr"], "METEOR": m["METEOR"], "F1_Score": m["F1_Score"]}
    print(f"{'set':8} {'#pred':>6} {'>=11':>5} {'official':>9} {'corrected':>9} {'diff':>6} {'max/video':>9}")
    for name, r in rows.items():
        print(f"{name:8} {r['n_predictions']:6d} {r['n_videos_with_11_or_more']:5d} {r['SODA_c_official']:9.2f} "
              f"{r['SODA_c_corrected']:9.2f} {r['difference']:6.2f} {r['max_per_video_difference']:9.2f}")
    print(f"({len(gold)} videos; 3 prediction sets scored with one METEOR process in {elapsed:.0f} s)")
    if args.out:
        atomic_write_json(args.out, {"gold": str(gold_path), "n_videos": len(gold), "sets": rows,
                                     "elapsed_s": round(elapsed, 1), "command": ["python", *sys.argv]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
