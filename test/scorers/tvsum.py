"""TVSum highlight-detection scorer: the UMT protocol (default) and Aha's variant.

protocol "umt" (official_scorers.md §3.2; TencentARC/UMT ``TVSum.evaluate(k=5)``):
  Gold: per-2-s-clip scores of the 20 annotators, from ``tvsum_val.jsonl`` (the standard split:
  one val video per category, rows ``{vid, domain, label: [#clips][20]}``) or ``tvsum_anno.json``
  (all 50 videos, ``{vid: {anno, domain, ...}}``). For each annotator, a clip is positive when its
  score is **strictly** above that annotator's median over the video's clips. Clips are ranked by
  the predicted saliency; AP = ``ap.topk_trapezoid_ap`` over the top 5 (positives counted inside
  the top 5). Mean over videos, then over the 20 annotators; reported in percent.
  Predictions: one score per 2-s clip (``pred_saliency_scores``, QVH layout) or stream
  predictions whose fused per-frame scores are averaged inside each 2-s clip [2c, 2c+2).

protocol "aha" (aha_reference.md §6.1; Aha ``test/tvsum/tvsum_utils.py``):
  Gold: ``ydata-tvsum50-anno.tsv``, the 20 annotators' per-native-frame scores averaged and
  divided by 5. Each sampled frame of a stream prediction is paired with the gold at its native
  frame (``native_frame_index``, or floor(time * native_fps)). Per video: labels = top 50 % with
  ties (k = max(1, int(0.5 n)), g >= sorted(g)[-k]); Top-5 mAP (same trapezoid AP), mAP@50 / mAP@15
  (sklearn AP against top-50 % / top-15 % labels), Spearman rho and Kendall tau (scipy; 0 when
  undefined: n <= 1 or a constant series), F1@15 (top int(0.15 n) predicted frames vs the top-15 %
  labels, sklearn f1). Means over videos, plus per category. All 50 videos by default.

Ties in a ranking: the earlier clip/frame ranks first (a stable sort) in both protocols.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import f1_score

from test.postprocess import FusionParams, fuse
from test.predictions import StreamPrediction
from test.scorers.ap import (as_finite_1d, match_ids, mean_or_none, pool_by_time, rank_desc, sklearn_ap,
                             top_k_mask, topk_ap_from_scores, topk_trapezoid_ap)
from test.scorers.options import resolve_protocol
from utils.io import iter_jsonl, read_json

DATASET = "tvsum"
CLIP_LEN = 2.0
CATEGORIES = ("VT", "VU", "GA", "MS", "PK", "PR", "FM", "BK", "BT", "DS")

PROTOCOLS: dict[str, dict[str, Any]] = {
    "umt": {"match_number": True, "k": 5, "clip_pool": "mean", "videos_file": None},
    "aha": {"match_number": True, "k": 5, "native_fps": None, "info_file": None, "videos_file": None},
}


# ------------------------------------------------------------------------------------ gold


def load_clip_gold(path) -> dict[str, dict]:
    """vid -> {"labels": (#clips, #annotators), "category"} from tvsum_val/train.jsonl or tvsum_anno.json."""
    path = Path(path)
    gold: dict[str, dict] = {}
    if path.suffix == ".jsonl":
        for rec in iter_jsonl(path):
            vid = str(rec.get("vid") or rec.get("qid"))
            if rec.get("label") is None:
                raise ValueError(f"{path}: row {vid} has no 'label' (per-clip annotator scores)")
            gold[vid] = {"labels": np.asarray(rec["label"], dtype=np.float64), "category": rec.get("domain")}
    elif path.suffix == ".json":
        for vid, rec in read_json(path).items():
            if "anno" not in rec:
                raise ValueError(f"{path}: video {vid} has no 'anno'")
            gold[vid] = {"labels": np.asarray(rec["anno"], dtype=np.float64), "category": rec.get("domain")}
    else:
        raise ValueError(f"the UMT protocol needs per-clip labels: tvsum_val.jsonl or tvsum_anno.json, got {path.name}")
    for vid, g in gold.items():
        if g["labels"].ndim != 2 or g["labels"].size == 0 or not np.all(np.isfinite(g["labels"])):
            raise ValueError(f"{path}: video {vid} labels must be a finite (#clips, #annotators) matrix")
    if not gold:
        raise ValueError(f"{path}: no video")
    return gold


def load_frame_gold(tsv_path) -> dict[str, dict]:
    """vid -> {"scores": per-native-frame mean annotator score / 5, "category", "n_annotators"}."""
    sums: dict[str, np.ndarray] = {}
    count: dict[str, int] = defaultdict(int)
    category: dict[str, str] = {}
    with open(tsv_path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise ValueError(f"{tsv_path}:{line_no}: expected 'video_id<TAB>category<TAB>scores'")
            vid, cat, values = parts
            s = np.array(values.split(","), dtype=np.float64)
            if vid in sums and len(sums[vid]) != len(s):
                raise ValueError(f"{tsv_path}:{line_no}: {vid} annotators disagree on the frame count")
            sums[vid] = s if vid not in sums else sums[vid] + s
            count[vid] += 1
            category[vid] = cat
    if not sums:
        raise ValueError(f"{tsv_path}: no annotation row")
    return {vid: {"scores": sums[vid] / count[vid] / 5.0, "category": category[vid], "n_annotators": count[vid]}
            for vid in sums}


def read_video_list(path) -> list[str]:
    """Video ids from a jsonl (``vid``/``qid``/``id`` per row), a json list, or a json dict's keys."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return [str(r.get("vid") or r.get("qid") or r.get("id")) for r in iter_jsonl(path)]
    data = read_json(path)
    return [str(v) for v in (data if isinstance(data, list) else data.keys())]


# ---------------------------------------------------------------------------- UMT metric


def umt_top5_map(clip_scores: dict[str, np.ndarray], labels: dict[str, np.ndarray], k: int = 5) -> dict:
    """UMT TVSum Top-k mAP (percent) with per-video and per-annotator means.

    ``labels[vid]``: (#clips, A) raw annotator scores; every video must have the same A.
    """
    vids = list(clip_scores)
    if not vids:
        raise ValueError("no video to score")
    n_ann = {labels[v].shape[1] for v in vids}
    if len(n_ann) != 1:
        raise ValueError(f"videos have different annotator counts: {sorted(n_ann)}")
    ap = np.zeros((len(vids), n_ann.pop()))  # (video, annotator)
    for vi, vid in enumerate(vids):
        pred = as_finite_1d(clip_scores[vid], f"video {vid} clip scores")
        anno = labels[vid]
        if len(pred) != len(anno):
            raise ValueError(f"video {vid}: {len(pred)} clip scores for {len(anno)} annotated clips")
        ranked = anno[rank_desc(pred)]
        positive = ranked > np.median(anno, axis=0)  # strict: ties at the median are negative
        ap[vi] = [topk_trapezoid_ap(positive[:, i].astype(np.float64), k) for i in range(anno.shape[1])]
    per_annotator = ap.mean(axis=0)  # mean over videos first, as UMT
    return {"top5_mAP": 100.0 * float(per_annotator.mean()),
            "per_video": {vid: 100.0 * float(ap[vi].mean()) for vi, vid in enumerate(vids)},
            "per_annotator": [100.0 * float(v) for v in per_annotator]}


# ---------------------------------------------------------------------------- Aha metrics


def binarize_top(g: np.ndarray, rho: float) -> np.ndarray:
    """Aha ``binarize_gt``: positives = g >= the k-th largest value, k = max(1, int(rho*n)) (ties included)."""
    k = max(1, int(rho * len(g)))
    return (g >= np.sort(g)[-k]).astype(np.int64)


def _corr(fn, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) <= 1 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0  # undefined correlation: counted as 0 (Aha: 0 when n <= 1)
    return float(fn(a, b).statistic)


def aha_video_metrics(gt, pred, k: int = 5) -> dict:
    """Aha's per-video TVSum metrics on paired per-frame gold ``gt`` and prediction ``pred``.

    top5_AP / mAP50 / mAP15 / F1_15 in [0, 1]; spearman / kendall in [-1, 1].
    """
    g = as_finite_1d(gt, "gold scores")
    p = as_finite_1d(pred, "predicted scores")
    if len(g) != len(p):
        raise ValueError(f"{len(g)} gold scores for {len(p)} predictions")
    top50, top15 = binarize_top(g, 0.5), binarize_top(g, 0.15)
    pred15 = top_k_mask(p, max(1, int(0.15 * len(g)))).astype(np.int64)
    return {
        "top5_mAP": topk_ap_from_scores(top50, p, k),
        "mAP50": sklearn_ap(top50, p),  # never None: binarize_top keeps >= 1 positive
        "mAP15": sklearn_ap(top15, p),
        "spearman": _corr(stats.spearmanr, g, p),
        "kendall": _corr(stats.kendalltau, g, p),
        "F1_15": float(f1_score(top15, pred15, zero_division=0)),
    }


AHA_PERCENT = ("top5_mAP", "mAP50", "mAP15", "F1_15")


def aha_aggregate(per_video: dict[str, dict], categories: dict[str, str]) -> dict:
    """Means over videos (AP/F1 in percent, correlations raw) overall and per category."""
    def mean_block(vids):
        out = {}
        for m in ("top5_mAP", "mAP50", "mAP15", "spearman", "kendall", "F1_15"):
            v = mean_or_none(per_video[x][m] for x in vids)
            out[m] = None if v is None else (100.0 * v if m in AHA_PERCENT else v)
        out["n_videos"] = len(vids)
        return out

    vids = list(per_video)
    by_cat = defaultdict(list)
    for v in vids:
        by_cat[categories.get(v) or "unknown"].append(v)
    order = [c for c in CATEGORIES if c in by_cat] + sorted(c for c in by_cat if c not in CATEGORIES)
    return {**mean_block(vids), "per_category": {c: mean_block(by_cat[c]) for c in order}}


# --------------------------------------------------------------------------- predictions


def _record_id(rec: dict) -> str:
    for k in ("id", "vid", "qid", "video_id"):
        if rec.get(k) is not None:
            return str(rec[k])
    raise ValueError("prediction record without an id ('id', 'vid', 'qid' or 'video_id')")


def read_predictions(pred_file) -> dict[str, dict]:
    """id -> raw record (a later line for the same id replaces an earlier one)."""
    out = {}
    for rec in iter_jsonl(pred_file):
        out[_record_id(rec)] = rec
    if not out:
        raise ValueError(f"{pred_file}: no prediction")
    return out


def clip_scores_from_record(rec: dict, n_clips: int, fusion: FusionParams, clip_pool: str
                            ) -> tuple[np.ndarray, dict | None]:
    """Per-2-s-clip scores: ``pred_saliency_scores`` as given, or pooled fused stream scores."""
    vid = _record_id(rec)
    if "frames" in rec:
        p = StreamPrediction.from_record(rec)
        fused = fuse(p.informative, p.relevance, p.uncertainty, fusion)
        return pool_by_time(p.time, fused, CLIP_LEN, n_clips, clip_pool)
    if rec.get("pred_saliency_scores") is None:
        raise ValueError(f"video {vid}: neither 'frames' (stream prediction) nor 'pred_saliency_scores'")
    s = as_finite_1d(rec["pred_saliency_scores"], f"video {vid} pred_saliency_scores")
    if len(s) != n_clips:
        raise ValueError(f"video {vid}: {len(s)} pred_saliency_scores for {n_clips} annotated 2-s clips")
    return s, None


def _native_fps_lookup(opts: dict, gold_file) -> tuple[dict[str, float], str | None]:
    if isinstance(opts.get("native_fps"), dict):
        return {str(k): float(v) for k, v in opts["native_fps"].items()}, "option native_fps"
    info = opts.get("info_file")
    if info is None:
        sibling = Path(gold_file).with_name("tvsum_anno.json")
        info = sibling if sibling.exists() else None
    if info is None:
        return {}, None
    return {vid: float(r["fps"]) for vid, r in read_json(info).items() if "fps" in r}, str(info)


def sampled_native_frames(p: StreamPrediction, n_native: int, fps: float | None) -> tuple[np.ndarray, int]:
    """Native frame index of each sampled frame (clipped to the video), and how many were clipped."""
    if p.native_frame_index is not None:
        idx = np.asarray(p.native_frame_index, dtype=np.int64)
        if len(idx) != len(p.time):
            raise ValueError(f"video {p.id}: native_frame_index has {len(idx)} entries for {len(p.time)} frames")
    else:
        if fps is None:
            raise ValueError(f"video {p.id}: no native_frame_index and no native fps; pass the option "
                             "native_fps=<number> or info_file=<tvsum_anno.json>")
        idx = np.floor(as_finite_1d(p.time, f"video {p.id} frame times") * fps + 1e-6).astype(np.int64)
    if np.any(idx < 0):
        raise ValueError(f"video {p.id}: negative native frame index")
    clipped = int(np.sum(idx >= n_native))
    return np.minimum(idx, n_native - 1), clipped


# ------------------------------------------------------------------------------ protocols


def _resolve_options(protocol: str | None, options: dict | None) -> tuple[str, dict]:
    name, opts = resolve_protocol("TVSum", PROTOCOLS, protocol, "umt", options)
    if int(opts["k"]) < 1:
        raise ValueError(f"k must be >= 1, got {opts['k']}")
    return name, opts


def _restrict(gold: dict, videos_file) -> dict:
    if videos_file is None:
        return gold
    keep = read_video_list(videos_file)
    unknown = [v for v in keep if v not in gold]
    if unknown:
        raise ValueError(f"{videos_file}: {len(unknown)} videos not in the gold (e.g. {unknown[:5]})")
    return {v: gold[v] for v in keep}


def evaluate_umt(preds: dict[str, dict], gold: dict[str, dict], fusion: FusionParams, opts: dict) -> dict:
    vids, id_record = match_ids(preds.keys(), gold.keys(), opts["match_number"], "video")
    scores, pool_totals, streams = {}, defaultdict(int), 0
    for vid in vids:
        s, counts = clip_scores_from_record(preds[vid], len(gold[vid]["labels"]), fusion, opts["clip_pool"])
        scores[vid] = s
        if counts is not None:
            streams += 1
            for key, c in counts.items():
                pool_totals[key] += c
    res = umt_top5_map(scores, {v: gold[v]["labels"] for v in vids}, int(opts["k"]))
    per_cat = defaultdict(list)
    for v in vids:
        per_cat[gold[v]["category"] or "unknown"].append(res["per_video"][v])
    order = [c for c in CATEGORIES if c in per_cat] + sorted(c for c in per_cat if c not in CATEGORIES)
    metrics = {"top5_mAP": res["top5_mAP"], "n_videos": len(vids),
               "per_category": {c: float(np.mean(per_cat[c])) for c in order},
               "per_video": res["per_video"], "per_annotator": res["per_annotator"]}
    record = {
        "labels": "per annotator: clip score > that annotator's median over the video's 2-s clips (strict)",
        "ap": f"top-{opts['k']} trapezoid AP (UMT TVSum.evaluate), positives counted inside the top {opts['k']}",
        "averaging": "mean over videos, then over annotators; per_category = mean over the category's videos "
                     "(of each video's annotator-mean AP)",
        "clip_length_s": CLIP_LEN,
        "prediction_clips": ("stream: fused per-frame scores pooled per 2-s clip [2c, 2c+2) "
                             f"({opts['clip_pool']}; empty interior clips interpolated, edge clips = lowest clip score)"
                             if streams else "pred_saliency_scores as given"),
        "clip_pool": opts["clip_pool"] if streams else None,
        "clip_pooling_counts": dict(pool_totals) if streams else None,
        "fusion": fusion.to_dict() if streams else None,
        "n_annotators": len(res["per_annotator"]),
        "k": int(opts["k"]),
        **id_record,
    }
    return {"metrics": metrics, "record": record}


def evaluate_aha(preds: dict[str, dict], gold: dict[str, dict], fusion: FusionParams, opts: dict,
                 fps_table: dict[str, float], fps_source: str | None) -> dict:
    vids, id_record = match_ids(preds.keys(), gold.keys(), opts["match_number"], "video")
    per_video, clipped_total, fps_used = {}, 0, set()
    scalar_fps = opts.get("native_fps") if not isinstance(opts.get("native_fps"), dict) else None
    for vid in vids:
        rec = preds[vid]
        if "frames" not in rec:
            raise ValueError(f"video {vid}: the aha protocol needs stream predictions (per-frame 'frames')")
        p = StreamPrediction.from_record(rec)
        if len(p.time) == 0:
            raise ValueError(f"video {vid}: the prediction has no frame")
        fps = p.extra.get("native_fps") or scalar_fps or fps_table.get(vid)
        if p.native_frame_index is None:
            fps_used.add("prediction native_fps" if p.extra.get("native_fps") else
                         "option native_fps" if scalar_fps else fps_source or "none")
        g_all = gold[vid]["scores"]
        idx, clipped = sampled_native_frames(p, len(g_all), None if fps is None else float(fps))
        clipped_total += clipped
        fused = fuse(p.informative, p.relevance, p.uncertainty, fusion)
        per_video[vid] = aha_video_metrics(g_all[idx], fused, int(opts["k"]))
    agg = aha_aggregate(per_video, {v: gold[v]["category"] for v in vids})
    metrics = {**{k: v for k, v in agg.items() if k != "per_category"},
               "per_category": agg["per_category"], "per_video": per_video}
    record = {
        "gold": "ydata-tvsum50-anno.tsv: mean of the annotators per native frame, / 5",
        "alignment": "each sampled frame paired with the gold at its native frame "
                     "(native_frame_index, else floor(time * native_fps)); indices past the end clipped",
        "native_fps_source": sorted(fps_used) or ["native_frame_index"],
        "n_native_indices_clipped": clipped_total,
        "labels": "top-rho with ties: k = max(1, int(rho * n)), positive = g >= sorted(g)[-k]",
        "top5_mAP": f"top-{opts['k']} trapezoid AP against the rho = 0.5 labels",
        "mAP50_mAP15": "sklearn average_precision_score against the rho = 0.5 / 0.15 labels",
        "correlations": "scipy spearmanr / kendalltau (tau-b) per video; 0 when n <= 1 or a series is constant",
        "F1_15": "top max(1, int(0.15 n)) predicted frames vs the rho = 0.15 labels, sklearn f1_score",
        "averaging": "mean over videos (and per category); AP/F1 in percent, correlations in [-1, 1]",
        "fusion": fusion.to_dict(),
        "k": int(opts["k"]),
        **id_record,
    }
    return {"metrics": metrics, "record": record}


def evaluate_files(pred_file: str, gold_file: str, protocol: str | None = None,
                   fusion: FusionParams | None = None, options: dict | None = None) -> dict:
    """TVSum scores of a prediction jsonl; protocol "umt" (default) or "aha" (see the module doc)."""
    name, opts = _resolve_options(protocol, options)
    fusion = fusion or FusionParams()
    preds = read_predictions(pred_file)
    if name == "umt":
        gold = _restrict(load_clip_gold(gold_file), opts["videos_file"])
        out = evaluate_umt(preds, gold, fusion, opts)
        gold_desc = f"{Path(gold_file).name} (per-2-s-clip annotator scores)"
    else:
        if Path(gold_file).suffix != ".tsv":
            raise ValueError(f"the aha protocol reads ydata-tvsum50-anno.tsv, got {Path(gold_file).name}")
        gold = _restrict(load_frame_gold(gold_file), opts["videos_file"])
        fps_table, fps_source = _native_fps_lookup(opts, gold_file)
        out = evaluate_aha(preds, gold, fusion, opts, fps_table, fps_source)
        gold_desc = Path(gold_file).name
    metrics = out["metrics"]
    metrics["protocol"] = {"dataset": DATASET, "protocol": name, "gold_file": gold_desc,
                           "videos_file": None if opts["videos_file"] is None else str(opts["videos_file"]),
                           "ties": "stable ranking: the earlier clip/frame first", **out["record"]}
    return metrics
