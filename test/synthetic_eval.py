"""The embedded default model against three baselines on the synthetic benchmark's TEST split.

    python -m test.synthetic_eval --data DIR --checkpoint checkpoints/aha-tiny-synth \
        --work outputs/synthetic_eval --results results/synthetic_results.json [--md results/synthetic_results.md]
        [--systems trained,random,motion,untrained] [--fps 2] [--window N (default: a training clip's, 12)] [--limit N]

``DIR`` is a set written by ``python -m data.synthetic --seed 0`` (its ``val`` and ``test``
splits are used; nothing of ``test`` is ever used for a choice). Systems:

* ``trained``: the checkpoint, streamed by the project's engine (``test.run_benchmark``);
* ``random``: uniform random per-frame scores, seeded by (seed, item id), used as they are (no
  fusion tuning: a tuned alpha = beta = 0 would make them constant);
* ``motion``: a non-learned motion-energy score: the mean absolute difference between the
  current sampled frame and the previous one (causal; 0 for the first frame), on the same
  letter-boxed frames the model sees;
* ``untrained``: the same architecture with a random initialisation (seed 0, ``test.run_benchmark``'s), streamed
  like the trained model.

Metrics, each with the project's scorer through ``test.benchmark`` (the per-benchmark results
JSONs with their full protocol records are kept under ``--work``):

* TVSum-style top-5 mAP, protocols ``umt`` (gold ``tvsum_anno.json``) and ``aha`` (gold
  ``ydata-tvsum50-anno.tsv``);
* Charades-STA-style R1@{0.3,0.5,0.7} and mIoU, the causal ``standard`` protocol;
* dense-captioning F1 (YouCook2 scorer, official protocol): responses are decided online by the
  engine's per-frame threshold rule (``models.decision.DecisionRule``) on the informative score
  (the model's informative head; the baselines' own score). Baselines cannot speak: their k-th
  response says ``"event k"`` (distinct texts, so consecutive responses are not merged into one
  caption); F1 only looks at the timing, CIDEr / METEOR are reported for the models only;
* responses to a query (trained model only): the TVSum-style items streamed with text, by the
  dense-captioning threshold behind a relevance gate (``--relevance_gate``, candidates
  ``DEFAULT_GATES``, none included); precision / recall / F1 of answering the query's events
  (``data.synthetic.metrics.query_responses``).

Held-out choices, all on the VAL split: the fusion weights (alpha, beta, epsilon, tau) of the
score-based benchmarks are grid-searched on the val predictions (``test.benchmark --tune
pred:VAL --tune_gold VAL_GOLD``), and every system's response threshold is the one of
``--thresholds`` (model: the informative probability; baselines: quantiles of their val scores)
with the best val F1, and the trained model's relevance gate the one with the best val F1 of
answering the query. The results JSON records the chosen values, where they came from and
``"tuned_on": "val"``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from data.synthetic import SynthConfig
from data.synthetic.metrics import binding_aucs, query_responses, response_accuracy
from models.build import load_preset, train_window_tokens
from utils.cli import check_number
from utils.io import JsonlWriter, atomic_write_json, atomic_write_text, iter_jsonl, read_json

log = logging.getLogger("synthetic_eval")

SYSTEMS = ("trained", "random", "motion", "untrained")
MODEL_SYSTEMS = ("trained", "untrained")
SCORE_BENCHMARKS = ("tvsum", "charades")
IDENTITY_FLAGS = ("--alpha", "0", "--beta", "1", "--epsilon", "0", "--tau", "0")
DEFAULT_MODEL_THRESHOLDS = (0.1, 0.2, 0.3, 0.5, 0.7)  # 0.1 and 0.2 since session 10: 0.3, the lowest before, was chosen
BASELINE_QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
# query responses (session 13): candidate relevance gates (None: no gate) over the last GATE_FRAMES
# frames (2 s at 2 fps: about half an event), chosen on val by the F1 of answering the query's events
DEFAULT_GATES = (None, 0.3, 0.5, 0.7)
GATE_FRAMES = 4
PRESET = "aha-tiny-synth"
REPO = Path(__file__).resolve().parents[1]
TOKENIZER = REPO / "configs" / "tokenizers" / PRESET


# ------------------------------------------------------------------------------ baselines


def item_seed(seed: int, item_id: str) -> int:
    """A stable 63-bit seed for one item (independent of item order and of the process)."""
    return int.from_bytes(hashlib.sha256(f"{seed}\x1f{item_id}".encode()).digest()[:8], "big") >> 1


def motion_energy(frames) -> np.ndarray:
    """Mean absolute difference to the previous frame, in [0, 1]; frame 0 scores 0 (nothing before it)."""
    out, prev = [], None
    for img in frames:
        x = np.asarray(img, dtype=np.float32)
        out.append(0.0 if prev is None else float(np.abs(x - prev).mean() / 255.0))
        prev = x
    return np.asarray(out, dtype=np.float64)


def decide(times, scores, threshold: float) -> list[int]:
    """Frames at which the engine's per-frame threshold rule would respond (``DecisionRule``)."""
    from models.decision import DecisionConfig, DecisionRule

    rule = DecisionRule(DecisionConfig(score_heads=("informative",), threshold=float(threshold)))
    return [i for i, (t, s) in enumerate(zip(times, scores))
            if rule.update(float(t), {"informative": float(s), "relevance": 0.0, "uncertainty": 0.0})]


def baseline_record(item: dict, video: Path, kind: str, fps: float, size: int, seed: int, cache: dict) -> dict:
    """A StreamPrediction record (``test/predictions.py``) of a non-learned baseline for one item."""
    from data.video import iter_sampled, probe

    key = str(video)
    if key not in cache:
        times, native, frames = [], [], []
        for s in iter_sampled(str(video), fps, size):
            times.append(float(s.time))
            native.append(int(s.native_index))
            frames.append(s.image)
        info = probe(video)
        cache.clear()  # one video at a time: its tvsum / charades / youcook2 items come in any order
        cache[key] = (np.asarray(times), native, motion_energy(frames), info.duration, info.fps)
    times, native, energy, duration, native_fps = cache[key]
    if kind == "random":
        score = np.random.default_rng(item_seed(seed, item["id"])).random(len(times))
    elif kind == "motion":
        score = energy
    else:
        raise ValueError(f"unknown baseline {kind!r}")
    return {"id": item["id"], "dataset": item.get("dataset"), "video": item["video"], "query": item.get("query"),
            "query_time": float(item.get("query_time") or 0.0), "duration": duration, "fps": fps,
            "frames": {"time": times.tolist(), "informative": score.tolist(), "relevance": score.tolist(),
                       "uncertainty": np.zeros(len(times)).tolist()},
            "responses": [], "native_frame_index": native, "native_fps": native_fps,
            "template_id": item.get("template_id"), "prompt_variant": item.get("prompt_variant"),
            "baseline": kind}


def write_baseline(items_file: Path, video_root: Path, out: Path, kind: str, fps: float, size: int, seed: int,
                   limit: int | None = None) -> Path:
    """Baseline predictions for every item (the first ``limit`` in file order, as ``--limit`` gives the
    models: the baselines used to score every item while the models scored the first N), plus a
    ``.run.json`` saying what they are."""
    from test.run_benchmark import load_items, run_record_path

    cache: dict = {}
    items = sorted(load_items(items_file, limit), key=lambda it: it["video"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with JsonlWriter(out, "w") as w:
        for it in items:
            w.write(baseline_record(it, video_root / it["video"], kind, fps, size, seed, cache))
    atomic_write_json(run_record_path(out), {
        "settings": {"baseline": kind, "fps": fps, "frame_size": size, "seed": seed, "limit": limit},
        "items": {"path": str(items_file.resolve())}, "video_root": str(video_root.resolve()),
        "engine": {"fps": fps, "frame_size": size, "model": {"baseline": kind, "seed": seed if kind == "random" else None,
                                                             "score": BASELINE_DOC[kind]}},
        "runs": [{"command": ["python", "-m", "test.synthetic_eval", "(baseline)", kind]}]})
    return out


def baseline_is_current(out: Path, items_file: Path, video_root: Path, kind: str, fps: float, size: int, seed: int,
                        limit: int | None = None) -> bool:
    """Whether ``out`` (from an earlier call) holds this baseline at these settings. Any file used to be
    reused: a rerun with another --fps / --frame_size / --seed scored the earlier predictions under a
    protocol that states the new values."""
    from test.run_benchmark import run_record_path

    if not out.exists() or not run_record_path(out).is_file():
        return False
    rec = read_json(run_record_path(out))
    return (rec.get("settings") == {"baseline": kind, "fps": fps, "frame_size": size, "seed": seed, "limit": limit}
            and (rec.get("items") or {}).get("path") == str(items_file.resolve())
            and rec.get("video_root") == str(video_root.resolve()))


def checkpoint_sha256(checkpoint: str | None) -> str | None:
    """The content hash of the evaluated checkpoint (models.checkpoint.content_hash_of), recorded in the
    results' protocol: what the demo checks before it takes the tuned settings for its checkpoint."""
    from models.checkpoint import content_hash_of

    return content_hash_of(checkpoint) if checkpoint else None


BASELINE_DOC = {
    "random": "uniform [0, 1) per frame, numpy default_rng(sha256(seed, item id))",
    "motion": "mean |frame_t - frame_(t-1)| / 255 over the letter-boxed RGB frame (causal; 0 for frame 0)",
}


def with_responses(pred_file: Path, out: Path, threshold: float) -> Path:
    """A baseline's dense-captioning predictions: respond where its score passes the threshold rule."""
    from test.run_benchmark import run_record_path

    with JsonlWriter(out, "w") as w:
        for rec in iter_jsonl(pred_file):
            f = rec["frames"]
            fired = decide(f["time"], f["informative"], threshold)
            rec["responses"] = [{"role": "assistant", "time": f["time"][i], "frame": i, "content": f"event {k + 1}"}
                                for k, i in enumerate(fired)]
            w.write(rec)
    run = read_json(run_record_path(pred_file))
    run["engine"]["decision"] = {"score_heads": ["informative"], "threshold": threshold}
    atomic_write_json(run_record_path(out), run)
    return out


# ---------------------------------------------------------------------------- model runs


def stream_model(items_file: Path, video_root: Path, out: Path, checkpoint: str | None, args,
                 threshold: float | None = None, gate: float | None = None) -> Path:
    """``test.run_benchmark`` for one items file (scores only, or with responses at ``threshold``,
    behind a relevance gate of ``gate`` over ``GATE_FRAMES`` frames)."""
    from test.run_benchmark import main as run_benchmark

    argv = ["--items", str(items_file), "--video_root", str(video_root), "--output", str(out), "--quiet",
            "--model_config", PRESET, "--tokenizer", str(args.tokenizer), "--fps", str(args.fps),
            "--cache_policy", "dynamic_sink", "--window", str(args.window), "--fail_fast"]
    if checkpoint:
        argv += ["--checkpoint", checkpoint]
    if threshold is None:
        argv += ["--no_generate"]
    else:
        argv += ["--score_heads", "informative", "--threshold", str(threshold), "--max_new_tokens", str(args.max_new_tokens)]
        if gate is not None:
            argv += ["--relevance_gate", str(gate), "--relevance_gate_frames", str(GATE_FRAMES)]
    if args.limit:
        argv += ["--limit", str(args.limit)]
    if out.exists():  # a finished file from an earlier call of this script is reused (resumable)
        log.info("reusing %s", out)
    rc = run_benchmark(argv)
    if rc != 0:
        raise RuntimeError(f"test.run_benchmark failed ({rc}) for {items_file}")
    if args.limit:
        # an earlier call without --limit (or a larger one) left predictions of later items, which the scorer
        # would score too: the model would then be reported on more items than the baselines and n_test
        from test.run_benchmark import load_items

        wanted = {it["id"] for it in load_items(items_file, args.limit)}
        extra = sorted({str(r["id"]) for r in iter_jsonl(out, allow_empty=True)} - wanted)
        if extra:
            raise ValueError(f"{out} holds predictions of {len(extra)} items beyond --limit {args.limit} "
                             f"(e.g. {extra[0]!r}, from an earlier call); use another --work")
    return out


# ------------------------------------------------------------------------------- scoring


def benchmark(dataset: str, pred: Path, gold: Path, out: Path, protocol: str | None = None,
              tune_pred: Path | None = None, tune_gold: Path | None = None, opts: list[str] = (),
              split: str = "test") -> dict:
    from test.benchmark import main as bench

    argv = ["--dataset", dataset, "--pred", str(pred), "--gold", str(gold), "--out", str(out), "--split", split]
    if protocol:
        argv += ["--protocol", protocol]
    for o in opts:
        argv += ["--opt", o]
    if tune_pred is not None:
        argv += ["--tune", f"pred:{tune_pred}", "--tune_gold", str(tune_gold)]
    elif dataset != "youcook2":
        # the score itself (random scores stay random: a tuned alpha = beta = 0 would turn them
        # into a constant, i.e. an "earliest first" ranking)
        argv += ["--tune", "none", *IDENTITY_FLAGS]
    if bench(argv) != 0:
        raise RuntimeError(f"test.benchmark failed for {pred}")
    return read_json(out)


def val_f1(pred: Path, gold: Path) -> float:
    """Dense-captioning F1 on the val split (detection only: no Java needed for a choice)."""
    from test.evaluate import evaluate_files

    return float(evaluate_files("youcook2", str(pred), str(gold), options={"captions": False})["metrics"]["F1_Score"])


# ---------------------------------------------------------------------------------- main


def gold_files(data: Path, split: str) -> dict[str, Path]:
    d = data / split
    return {"tvsum_umt": d / "tvsum_anno.json", "tvsum_aha": d / "ydata-tvsum50-anno.tsv",
            "charades": d / f"charades_sta_{split}.txt", "youcook2": d / f"yc2_{split}.json"}


def evaluate_system(system: str, args, work: Path) -> dict:
    data, videos = Path(args.data), Path(args.data) / "videos"
    sw = work / system
    preds: dict[tuple[str, str], Path] = {}
    t0 = time.perf_counter()
    checkpoint = args.checkpoint if system == "trained" else None
    for split in ("val", "test"):
        for name in (*SCORE_BENCHMARKS, "youcook2"):
            items = data / split / "items" / f"{name}.jsonl"
            out = sw / f"{split}_{name}.jsonl"
            if system in MODEL_SYSTEMS:
                if name != "youcook2":
                    preds[(split, name)] = stream_model(items, videos, out, checkpoint, args)
            else:
                if not baseline_is_current(out, items, videos, system, args.fps, args.frame_size, args.seed, args.limit):
                    write_baseline(items, videos, out, system, args.fps, args.frame_size, args.seed, args.limit)
                preds[(split, name)] = out
    g_val, g_test = gold_files(data, "val"), gold_files(data, "test")
    res: dict = {"system": system, "files": {}}
    # score-based benchmarks: fusion tuned on the val predictions, reported on test
    for key, dataset, protocol in (("tvsum_umt", "tvsum", "umt"), ("tvsum_aha", "tvsum", "aha"),
                                   ("charades", "charades", "standard")):
        bench_name = "tvsum" if dataset == "tvsum" else "charades"
        tuned = system != "random"
        r = benchmark(dataset, preds[("test", bench_name)], g_test[key], sw / f"results_{key}.json", protocol,
                      tune_pred=preds[("val", bench_name)] if tuned else None, tune_gold=g_val[key] if tuned else None)
        res[key] = {k: r["metrics"].get(k) for k in (("top5_mAP",) if key != "charades" else ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU"))}
        fusion = r["protocol"]["fusion"]
        res[key]["fusion"] = {"params": fusion.get("params"), "tuned_on": "val" if tuned else "not tuned (the score itself)",
                              "tune_source": fusion.get("tune_source"), "benchmark_tuned_on": r["protocol"]["tuned_on"],
                              "tune_score_val": fusion.get("tune_score"), "objective": fusion.get("objective")}
        # per item, so that a subset can be checked against these numbers (tests/test_tiny_default.py)
        if key == "charades":
            res[key]["per_item_iou"] = {i: v["iou"] for i, v in r["per_item"].items()}
        else:
            res[key]["per_video_top5_AP"] = {v: (100.0 * m["top5_mAP"] if key == "tvsum_aha" else m["top5_AP"])  # percent
                                             for v, m in r["per_item"].items()}
        res[key]["coverage"] = {k: r["protocol"]["coverage"][k] for k in ("n_gold", "n_scored", "complete")}
        res["files"][key] = str(sw / f"results_{key}.json")
    # dense captioning: the response threshold chosen on val
    sweep = {}
    if system in MODEL_SYSTEMS:
        candidates = list(args.thresholds)
        for th in candidates:
            p = stream_model(data / "val" / "items" / "youcook2.jsonl", videos, sw / f"val_youcook2_th{th:g}.jsonl",
                             checkpoint, args, threshold=th)
            sweep[th] = val_f1(p, g_val["youcook2"])
    else:
        vals = np.concatenate([np.asarray(r["frames"]["informative"]) for r in iter_jsonl(preds[("val", "youcook2")])])
        candidates = [float(np.quantile(vals, q)) for q in BASELINE_QUANTILES]
        for th in candidates:
            p = with_responses(preds[("val", "youcook2")], sw / f"val_youcook2_th{th:.6g}.jsonl", th)
            sweep[th] = val_f1(p, g_val["youcook2"])
    best = max(candidates, key=lambda th: (sweep[th], -th))
    if system in MODEL_SYSTEMS:
        test_pred = stream_model(data / "test" / "items" / "youcook2.jsonl", videos, sw / "test_youcook2.jsonl",
                                 checkpoint, args, threshold=best)
    else:
        test_pred = with_responses(preds[("test", "youcook2")], sw / "test_youcook2_responses.jsonl", best)
    r = benchmark("youcook2", test_pred, g_test["youcook2"], sw / "results_youcook2.json",
                  opts=[] if system in MODEL_SYSTEMS else ["captions=false"])
    m = r["metrics"]
    res["youcook2"] = {"F1_Score": m.get("F1_Score"), "Precision_Mean": m.get("Precision_Mean"),
                       "Recall_Mean": m.get("Recall_Mean"), "n_preds": m.get("n_preds"),
                       "CIDEr": m.get("CIDEr"), "METEOR": m.get("METEOR"), "SODA_c": m.get("SODA_c"),
                       "threshold": {"value": best, "tuned_on": "val", "val_F1_by_threshold": {f"{k:.6g}": v for k, v in sweep.items()},
                                     "score": "informative head probability" if system in MODEL_SYSTEMS else
                                     f"the baseline score; candidates = its val quantiles {list(BASELINE_QUANTILES)}"}}
    res["files"]["youcook2"] = str(sw / "results_youcook2.json")
    # query binding (relevance on matching vs distractor events, as streamed) and what the responses say
    # (also on val, where a recipe is chosen: the test numbers are reported, never used to choose)
    gt_test, gt_val = read_json(data / "test" / "ground_truth.json"), read_json(data / "val" / "ground_truth.json")
    res["binding"] = binding_aucs(iter_jsonl(preds[("test", "tvsum")]), gt_test)
    res["binding_val"] = binding_aucs(iter_jsonl(preds[("val", "tvsum")]), gt_val)
    if system in MODEL_SYSTEMS:
        res["responses"] = response_accuracy(iter_jsonl(test_pred), gt_test)
        res["responses_val"] = response_accuracy(iter_jsonl(sw / f"val_youcook2_th{best:g}.jsonl"), gt_val)
    if system == "trained":
        res["query_responses"] = query_response_eval(data, sw, checkpoint, args, best, gt_val, gt_test)
    res["elapsed_s"] = round(time.perf_counter() - t0, 1)
    return res


def query_response_eval(data: Path, sw: Path, checkpoint: str | None, args, threshold: float,
                        gt_val: list, gt_test: list) -> dict:
    """Responses to a query (the TVSum-style items, each video asked its own query, with text): the
    dense-captioning threshold, behind the relevance gate of ``DEFAULT_GATES`` with the best val F1
    of answering the query's events (``data.synthetic.metrics.query_responses``); test reported."""
    videos, items = data / "videos", lambda split: data / split / "items" / "tvsum.jsonl"
    name = lambda split, g: sw / f"{split}_tvsum_responses_gate{'none' if g is None else f'{g:g}'}.jsonl"
    val = {g: query_responses(iter_jsonl(stream_model(items("val"), videos, name("val", g), checkpoint, args, threshold, g)),
                              gt_val) for g in DEFAULT_GATES}
    best = max(DEFAULT_GATES, key=lambda g: (val[g]["F1"] or 0.0, -DEFAULT_GATES.index(g)))  # ties: the earlier
    test = query_responses(iter_jsonl(stream_model(items("test"), videos, name("test", best), checkpoint, args, threshold, best)),
                           gt_test)
    return {"gate": {"value": best, "frames": GATE_FRAMES, "tuned_on": "val", "threshold": threshold,
                     "val_F1_by_gate": {str(g): val[g]["F1"] for g in DEFAULT_GATES},
                     "score": "mean relevance of the last frames (models.decision, relevance_gate)"},
            "test": test, "val": val[best], "val_without_gate": val[None]}


SYSTEM_LABEL = {"trained": "Aha! tiny (trained, this checkpoint)", "random": "(a) random scores (seeded)",
                "motion": "(b) motion energy (mean abs. frame difference, causal)",
                "untrained": "(c) untrained model (same architecture, random init)"}


def markdown(results: dict) -> str:
    def f(x, d=1):
        return "–" if x is None else f"{x:.{d}f}"

    def pct(x, d=1):  # a fraction, in percent
        return f(None if x is None else 100 * x, d)

    rows = ["| system | TVSum top-5 mAP (umt) | TVSum top-5 mAP (aha) | Charades R1@0.5 | Charades mIoU | Charades R1@0.3 / 0.7 | DVC F1 |",
            "|---|---|---|---|---|---|---|"]
    for s, r in results["systems"].items():
        c = r["charades"]
        rows.append(f"| {SYSTEM_LABEL.get(s, s)} | {f(r['tvsum_umt']['top5_mAP'])} | {f(r['tvsum_aha']['top5_mAP'])} | "
                    f"{f(c['R1@0.5'])} | {f(c['mIoU'])} | {f(c['R1@0.3'])} / {f(c['R1@0.7'])} | {f(r['youcook2']['F1_Score'])} |")
    rows += ["", "| system | relevance AUC match vs distractor: all | colour | kind | motion | several | "
             "responses / video | responses naming colour / kind / motion / all three (%) |", "|---|---|---|---|---|---|---|---|"]
    for s, r in results["systems"].items():
        b, resp = r.get("binding") or {}, r.get("responses")
        said = "–" if not resp else (f"{resp['responses_per_video']:.1f}",
                                     " / ".join(pct(resp["correct"][a], 0) for a in ("colour", "kind", "motion", "all")))
        rows.append(f"| {SYSTEM_LABEL.get(s, s)} | {f(b.get('match_vs_distractor'), 2)} | {f(b.get('match_vs_colour'), 2)} | "
                    f"{f(b.get('match_vs_kind'), 2)} | {f(b.get('match_vs_motion'), 2)} | {f(b.get('match_vs_several'), 2)} | "
                    + (" | ".join(said) if resp else "– | –") + " |")
    q = (results["systems"].get("trained") or {}).get("query_responses")
    if q:
        t, g = q["test"], q["gate"]
        gate = "none" if g["value"] is None else f"mean relevance of the last {g['frames']} frames >= {g['value']:g}"
        rows += ["", "| responses to the query (TVSum-style items, trained model) | per video | on the query's events (precision) | "
                 "query's events answered (recall) | F1 | on a distractor | naming the query (on its events) | relevance gate (val) |",
                 "|---|---|---|---|---|---|---|---|",
                 f"| test | {f(t['responses_per_video'], 2)} | {pct(t['precision'])} | {pct(t['recall'])} | {pct(t['F1'])} | "
                 f"{t['on_distractor']} | {pct(t['names_query'], 0)} % | {gate} |"]
    p = results["protocol"]
    notes = [
        "",
        f"Synthetic shapes benchmark (`data/synthetic.py`, seed {p['data_seed']}), TEST split: {p['n_test']['tvsum']} videos "
        f"(TVSum-style), {p['n_test']['charades']} single-match queries (Charades-style), {p['n_test']['youcook2']} videos (dense captioning). "
        f"Streaming at {p['fps']:g} fps, {p['tokens_per_frame']} tokens per frame, cache `dynamic_sink` (system + query kept, {p['window']} recent tokens). "
        "Fusion weights and response thresholds were chosen on the VAL split only; metrics in percent. "
        "Relevance AUCs: every streamed TEST frame during a matching event against every frame during a distractor "
        f"that differs from the query in colour / kind / motion only (or in several), pooled over the {p['n_test']['tvsum']} test videos "
        "(`data/synthetic/metrics.py`; random and motion energy ignore the query). Responses: the dense-captioning "
        "TEST responses, each checked against the event on screen when it was made.",
        "",
        "```bash",
        *p["commands"],
        "```",
    ]
    return "\n".join(rows + notes) + "\n"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m test.synthetic_eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a synthetic set (python -m data.synthetic --seed 0)")
    ap.add_argument("--checkpoint", default=str(REPO / "checkpoints" / PRESET))
    ap.add_argument("--tokenizer", default=str(TOKENIZER))
    ap.add_argument("--work", default="outputs/synthetic_eval", help="predictions and per-benchmark results")
    ap.add_argument("--results", default="results/synthetic_results.json")
    ap.add_argument("--md", default=None, help="markdown table (default: RESULTS with .md)")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--window", type=int, default=None,
                    help="recent tokens kept by the dynamic_sink cache (default: models.build.train_window_tokens, "
                         "the frames of a training clip)")
    ap.add_argument("--frame_size", type=int, default=112, help="baselines: the model's letter-box size")
    ap.add_argument("--thresholds", default=",".join(map(str, DEFAULT_MODEL_THRESHOLDS)),
                    help="candidate response thresholds of the models (informative probability), chosen on val")
    ap.add_argument("--max_new_tokens", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0, help="random baseline seed")
    ap.add_argument("--limit", type=int, default=None, help="every system: first N items of each file (quick checks)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: one frame of a tiny model is too small to split, and a shared CPU is busy)")
    return ap


def generator_command(data: Path, manifest: dict) -> str:
    """The command that regenerates the evaluated set: its own seed and split sizes (from its manifest)."""
    counts = manifest.get("counts") or {}
    sizes = "".join(f" --n_{split} {counts[split]}" for split in ("train", "val", "test") if split in counts)
    cmd = f"python -m data.synthetic --out {data} --seed {manifest.get('seed')}{sizes}"
    if manifest.get("config") != json.loads(json.dumps(SynthConfig().to_dict())):
        cmd += "  # with the non-default generator options recorded in protocol.data_config"
    return cmd


def parse_thresholds(text: str) -> list[float]:
    """--thresholds: comma-separated finite numbers, at least one."""
    out = []
    for x in str(text).split(","):
        if not x.strip():
            continue
        try:
            v = float(x)
        except ValueError:
            raise ValueError(f"--thresholds: {x.strip()!r} is not a number") from None
        check_number(v, "--thresholds")
        out.append(v)
    if not out:
        raise ValueError("--thresholds names no threshold")
    return out


def check_args(args) -> None:
    """The numeric flags, before anything runs: a --window 0 was the default window, a NaN --fps
    reached the baselines' frame sampling, a --limit -1 went on to the model runs."""
    for flag, kw in (("fps", {"above": 0}), ("window", {"minimum": 1, "integer": True}),
                     ("frame_size", {"minimum": 1, "integer": True}), ("max_new_tokens", {"minimum": 1, "integer": True}),
                     ("seed", {"minimum": 0, "integer": True}), ("limit", {"minimum": 1, "integer": True}),
                     ("threads", {"minimum": 1, "integer": True})):
        check_number(getattr(args, flag), f"--{flag}", **kw)
    parse_thresholds(args.thresholds)


def main(argv: list[str] | None = None) -> int:
    from utils.log import setup_logging

    setup_logging("INFO")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    check_args(args)
    args.window = args.window or train_window_tokens(PRESET)
    args.thresholds = parse_thresholds(args.thresholds)
    import torch

    torch.set_num_threads(max(1, args.threads))
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [s for s in systems if s not in SYSTEMS]
    if bad:
        raise SystemExit(f"unknown systems {bad}; choose from {SYSTEMS}")
    data = Path(args.data)
    if not (data / "manifest.json").is_file() or not (data / "test" / "items").is_dir():
        raise SystemExit(f"{data} is not a synthetic set with a test split (python -m data.synthetic --out {data} --seed 0)")
    manifest = read_json(data / "manifest.json")
    work = Path(args.work)
    out = {"systems": {}}
    for s in systems:
        log.info("system %s", s)
        out["systems"][s] = evaluate_system(s, args, work)
    n_test = {b: sum(1 for _ in iter_jsonl(data / "test" / "items" / f"{b}.jsonl")) for b in ("tvsum", "charades", "youcook2")}
    if args.limit:
        n_test = {b: min(n, args.limit) for b, n in n_test.items()}
    out["protocol"] = {
        "data": str(data), "data_seed": manifest.get("seed"), "data_config": manifest.get("config"),
        "split_reported": "test", "tuned_on": "val", "tuned_on_test": False,
        "n_test": n_test, "fps": args.fps, "tokens_per_frame": load_preset(PRESET).tokens_per_frame, "cache_policy": "dynamic_sink", "window": args.window,
        "checkpoint": args.checkpoint, "checkpoint_sha256": checkpoint_sha256(args.checkpoint) if "trained" in systems else None,
        "tokenizer": args.tokenizer, "untrained_init": f"{PRESET} random init, seed 0",
        "random_seed": args.seed, "baselines": BASELINE_DOC,
        "metrics": {"tvsum_umt": "data.benchmarks.tvsum protocol umt, top-5 mAP (%)",
                    "tvsum_aha": "data.benchmarks.tvsum protocol aha, top-5 mAP (%)",
                    "charades": "data.benchmarks.charades protocol standard (causal), R1@m and mIoU (%)",
                    "youcook2": "data.benchmarks.youcook2 official, F1_Score (%) of detection P/R at tIoU 0.3-0.9",
                    "binding": "data.synthetic.metrics.binding_aucs on the TEST tvsum streams (each video's own "
                               "query): relevance ROC AUC, matching-event frames vs distractor frames by what differs; "
                               "binding_val: the same on the VAL streams (where recipes are compared)",
                    "responses": "data.synthetic.metrics.response_accuracy on the TEST dense-captioning responses "
                                 "(val-chosen threshold): colour / kind / motion words vs the event on screen; "
                                 "responses_val: the same on the VAL responses at that threshold"},
        "fusion": "alpha, beta, epsilon, tau grid-searched (test.tuning default grid, objective: the benchmark's "
                  "headline metric) on the val predictions of each system; the random baseline's scores are used as "
                  "they are; see each system's fusion record",
        "commands": [generator_command(data, manifest),
                     "python -m test.synthetic_eval " + " ".join(argv)],
    }
    atomic_write_json(args.results, out)
    md = Path(args.md) if args.md else Path(args.results).with_suffix(".md")
    atomic_write_text(md, markdown(out))
    print(markdown(out))
    return 0


if __name__ == "__main__":
    import sys

    from utils.cli import entry

    sys.exit(entry("synthetic_eval", main))  # the error contract: instructions/errors.md
