"""Score curves of a few benchmark items against their ground truth.

    python -m test.visualize --results RESULTS.json [--out_dir DIR] [--max_show 5] [--ids ID,ID]
    python -m test.visualize --pred PRED.jsonl --out_dir DIR [--items ITEMS.jsonl] [--dataset D --gold G]
        [--alpha A --beta B --epsilon E --tau T --uncertainty_kind K]

With ``--results`` (written by ``test.benchmark``) everything is found from it: the predictions,
the items (for ground-truth spans), the gold file (for ground-truth curves) and each item's own
fusion weights (its fold's, for k-fold tuning). One PNG per item (``test.postprocess.plot_scores``):
the fused score (as scored: with the item's weights, smoothed if tuning chose a window) and its
peaks, the informative and relevance heads, the ground-truth spans (Charades-STA timestamps,
QVHighlights relevant windows, YouCook2 / MAGQA answer spans) shaded, and a ground-truth curve on
a second axis where the benchmark has one (TVSum annotator mean, Mr.HiSum most-replayed score,
QVHighlights best annotator saliency).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from test.postprocess import FusionParams, find_highlights, fuse_prediction, infer_fps, plot_scores
from test.predictions import StreamPrediction, load_predictions
from test.tuning import apply_params
from utils.io import iter_jsonl, read_json


def item_spans(item: Mapping | None) -> list[list[float]]:
    """Ground-truth time spans of a converter item (empty when the benchmark has none)."""
    gold = (item or {}).get("gold") or {}
    if gold.get("timestamps"):
        return [list(map(float, s)) for s in gold["timestamps"]]
    if gold.get("relevant_windows"):
        return [list(map(float, s)) for s in gold["relevant_windows"]]
    return [list(map(float, a["time"])) for a in gold.get("answer") or [] if isinstance(a.get("time"), (list, tuple))]


def _cached(cache: dict, key, make):
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _per_frame(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    return values[np.clip(index, 0, len(values) - 1)]


def gold_curve(dataset: str | None, gold_file: str | None, pred: StreamPrediction, cache: dict) -> np.ndarray | None:
    """Per-frame ground truth aligned with ``pred.time`` (None when the benchmark has no curve)."""
    if not dataset or not gold_file:
        return None
    t = np.asarray(pred.time, dtype=np.float64)
    if dataset in ("tvsum", "tvsum_degraded"):
        from data.benchmarks import tvsum

        if tvsum._is_anno_tsv(gold_file):
            gold = _cached(cache, ("tsv", gold_file), lambda: tvsum.load_frame_gold(gold_file))
            if pred.id not in gold:
                return None
            if pred.native_frame_index is not None:
                idx = np.asarray(pred.native_frame_index)
            elif pred.extra.get("native_fps"):
                idx = np.floor(t * float(pred.extra["native_fps"]) + 1e-6).astype(np.int64)
            else:
                return None
            return _per_frame(gold[pred.id]["scores"], idx)
        gold = _cached(cache, ("clip", gold_file), lambda: tvsum.load_clip_gold(gold_file))
        if pred.id not in gold:
            return None
        return _per_frame(gold[pred.id]["labels"].mean(axis=1), np.floor(t / tvsum.CLIP_LEN + 1e-9).astype(np.int64))
    if dataset == "hisum":
        import h5py

        with h5py.File(gold_file, "r") as f:
            if pred.id not in f:
                return None
            g = np.asarray(f[pred.id]["gtscore"], dtype=np.float64)
        return _per_frame(g, np.floor(t + 1e-9).astype(np.int64))
    if dataset == "qvh":
        from data.benchmarks import qvh

        gold = _cached(cache, ("qvh", gold_file), lambda: qvh.load_gold(gold_file))
        g = gold.get(pred.id, {}).get("gt_scores")
        if g is None or len(g) == 0:
            return None
        return _per_frame(g.max(axis=1), np.floor(t / qvh.CLIP_LEN + 1e-9).astype(np.int64))
    return None


def _safe_name(item_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", item_id)[:120] or "item"


def plot_item(pred: StreamPrediction, path: str | Path, fused: np.ndarray | None = None,
              spans: Sequence[Sequence[float]] | None = None, curve: np.ndarray | None = None,
              title: str | None = None) -> Path:
    """One item's curves (fused + peaks when given, informative, relevance) with its ground truth."""
    t = np.asarray(pred.time, dtype=np.float64)
    series: dict[str, np.ndarray] = {}
    peaks = None
    if fused is not None:
        series["fused"] = np.asarray(fused, dtype=np.float64)
        if len(t) >= 2:
            fps = pred.fps or infer_fps(t)
            peaks = {"fused": find_highlights(t, series["fused"], fps).times}
    series["informative"] = np.asarray(pred.informative, dtype=np.float64)
    series["relevance"] = np.asarray(pred.relevance, dtype=np.float64)
    n_resp = sum(1 for r in pred.responses if r.get("role", "assistant") != "user")
    head = title or f"{pred.id}: {pred.query or ''}"
    if n_resp:
        head += f"  ({n_resp} responses)"
    return plot_scores(path, t, series, peaks=peaks, gt_spans=spans or None, gt_curve=curve, title=head[:160],
                       peak_label="offline peaks")


def plot_results(results_path: str | Path, out_dir: str | Path, max_show: int = 5,
                 ids: Sequence[str] | None = None) -> list[Path]:
    """Plot the first ``max_show`` scored items (or ``ids``) of a ``test.benchmark`` RESULTS.json."""
    res = read_json(results_path)
    files, proto = res["files"], res["protocol"]
    preds = load_predictions(files["predictions"])
    if ids is None:
        ids = [i for i in (res.get("per_item") or preds) if i in preds][:max_show]
    items = _items_by_id(files.get("items"))
    fusion = proto.get("fusion")
    fused = apply_params(preds, fusion, ids) if fusion else {}
    return _plot_many(preds, ids, fused, items, proto.get("dataset"), files.get("gold"), out_dir,
                      note=f"tuned_on: {proto.get('tuned_on')}")


def _items_by_id(path) -> dict[str, dict]:
    if not path or not Path(path).exists():
        return {}
    return {str(r["id"]): r for r in iter_jsonl(path)}


def _plot_many(preds, ids, fused, items, dataset, gold_file, out_dir, note: str | None = None) -> list[Path]:
    missing = [i for i in ids if i not in preds]
    if missing:
        raise ValueError(f"no prediction for {missing[:3]}")
    out_dir = Path(out_dir)
    cache: dict = {}
    paths = []
    for i in ids:
        p = preds[i]
        title = f"{i}: {p.query or ''}" + (f"  [{note}]" if note else "")
        paths.append(plot_item(p, out_dir / f"{_safe_name(i)}.png", fused.get(i), item_spans(items.get(i)),
                               gold_curve(dataset, gold_file, p, cache), title))
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m test.visualize", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=None, help="RESULTS.json from test.benchmark")
    ap.add_argument("--pred", default=None, help="prediction JSONL (without --results)")
    ap.add_argument("--items", default=None, help="items JSONL, for ground-truth spans (without --results)")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--gold", default=None, help="gold file, for ground-truth curves (tvsum, hisum, qvh)")
    ap.add_argument("--out_dir", default=None, help="default: <RESULTS stem>_files/plots, or plots/ beside --pred")
    ap.add_argument("--max_show", type=int, default=5)
    ap.add_argument("--ids", default=None, help="comma-separated item ids to plot")
    for k in ("alpha", "beta", "epsilon", "tau"):
        ap.add_argument(f"--{k}", type=float, default=None)
    ap.add_argument("--uncertainty_kind", default=None, choices=["logvar", "variance"])
    args = ap.parse_args(argv)
    ids = [s for s in args.ids.split(",") if s] if args.ids else None
    try:
        if args.results:
            out = args.out_dir or Path(args.results).with_name(Path(args.results).stem + "_files") / "plots"
            paths = plot_results(args.results, out, args.max_show, ids)
        elif args.pred:
            preds = load_predictions(args.pred)
            ids = ids or list(preds)[: args.max_show]
            given = {k: getattr(args, k) for k in ("alpha", "beta", "epsilon", "tau", "uncertainty_kind")
                     if getattr(args, k) is not None}
            fusion = FusionParams(**given)
            fused = {i: fuse_prediction(preds[i], fusion) for i in ids if i in preds}
            out = args.out_dir or Path(args.pred).with_name("plots")
            paths = _plot_many(preds, ids, fused, _items_by_id(args.items), args.dataset, args.gold, out,
                               note=f"fusion {fusion.alpha:g}/{fusion.beta:g}/{fusion.epsilon:g}/{fusion.tau:g}")
        else:
            ap.error("give --results or --pred")
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"visualize: error: {e}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    import sys

    from utils.cli import entry

    sys.exit(entry("visualize", main))  # the error contract: instructions/errors.md
