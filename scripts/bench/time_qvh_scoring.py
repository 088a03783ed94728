"""Time the QVHighlights scorer on the whole val split (1,550 queries, HD + MR).

    python scripts/bench/time_qvh_scoring.py [--repeat 3] [--data DIR]

Scores ``sample_val_preds.jsonl`` against ``highlight_val_release.jsonl`` (file reading
included), prints the best and median wall time of ``--repeat`` runs as JSON, and exits 1 when
the best run takes 2 s or more (the project's budget for scoring QVH val).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere

from test.evaluate import evaluate_files  # noqa: E402
from utils.paths import shared_data_dir  # noqa: E402

BUDGET_S = 2.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", default=None, help="the qvhighlights folder (default: shared data)")
    args = ap.parse_args()
    root = Path(args.data) if args.data else (shared_data_dir() or Path("missing")) / "qvhighlights"
    pred, gold = root / "sample_val_preds.jsonl", root / "highlight_val_release.jsonl"
    if not pred.exists() or not gold.exists():
        print(f"QVHighlights files not found under {root}", file=sys.stderr)
        return 2
    times = []
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        result = evaluate_files("qvh", str(pred), str(gold))
        times.append(time.perf_counter() - t0)
    best = min(times)
    metrics = result["metrics"]
    print(json.dumps({"n_queries": result["record"]["ids"]["n_scored"], "best_s": round(best, 3),
                      "median_s": round(statistics.median(times), 3), "budget_s": BUDGET_S,
                      "within_budget": best < BUDGET_S,
                      "HL-min-VeryGood-mAP": metrics["brief"]["HL-min-VeryGood-mAP"],
                      "MR-full-mAP": metrics["brief"]["MR-full-mAP"]}))
    return 0 if best < BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
