"""QVHighlights scorer: highlight detection (HD) and moment retrieval (MR).

A re-implementation of the Moment-DETR ``standalone_eval/eval.py`` metrics (official_scorers.md
§3.1), reproducing ``sample_val_preds_metrics_raw.json`` key for key:

* HD, at three positive levels (saliency >= 2 "Fair", >= 3 "Good", >= 4 "VeryGood"; the headline
  numbers are VeryGood): the ground truth is a (#clips = int(duration/2), 3 annotators) matrix,
  unannotated clips 0. HL-mAP = VOC-interpolated AP (``ap.voc_interpolated_ap``) per annotator,
  averaged over the 3 annotators and the queries; the predicted saliency is zero-padded or
  truncated to #clips. HL-Hit1 = the label of the arg-max predicted clip, max over annotators
  (0 when the arg-max lies past the last clip), averaged over queries.
* MR: mAP = ActivityNet detection AP (``ap.detection_ap``) over IoU 0.50:0.05:0.95 with at most
  10 predicted windows, per-threshold means over queries then their average; R1@IoU = the IoU of
  the *first listed* window with the GT window that overlaps it most. Also by GT window length:
  short (0, 10], middle (10, 30], long (30, 150] s (only the GT windows in the range; queries
  without one are left out) and full. Values are percentages rounded to 2 decimals.

Predictions: the official submission jsonl (``qid``, ``pred_saliency_scores`` one per 2-s clip,
``pred_relevant_windows`` [[st, ed, score], ...] best first), or our ``StreamPrediction`` jsonl
(``test.predictions``): per-frame scores are fused (``test.postprocess.fuse``) and pooled into
one score per 2-s clip [2c, 2c+2) (``ap.pool_by_time``; mean by default, "sum" as MMDuet/Aha
did); a stream record may carry ``pred_relevant_windows`` too, otherwise only HD is scored.

Protocols: "official" (every query scored, missing/extra ids are an error: the official
``match_number=True``) and "reference" (MMDuet/Aha: sum pooling, and queries missing from the
predictions are silently dropped, ``match_number=False``); options override either.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from test.postprocess import FusionParams, fuse
from test.predictions import StreamPrediction
from test.scorers.ap import (detection_ap, match_ids, pool_by_time, temporal_iou_cross,
                             voc_interpolated_ap)
from test.scorers.options import resolve_protocol
from utils.io import iter_jsonl

DATASET = "qvhighlights"
CLIP_LEN = 2.0
HL_LEVELS = (("Fair", 2), ("Good", 3), ("VeryGood", 4))
MR_IOU_THRESHOLDS = tuple(float(f"{e:.2f}") for e in np.linspace(0.5, 0.95, 10))
# (name, min_len, max_len): a GT window of length l is in the range when min < l <= max;
# "full" keeps everything (the official code special-cases [0, 150]).
MR_RANGES = (("short", 0, 10), ("middle", 10, 30), ("long", 30, 150), ("full", None, None))

PROTOCOLS: dict[str, dict[str, Any]] = {
    "official": {"match_number": True, "clip_pool": "mean", "round_digits": 2, "max_pred_windows": 10},
    "reference": {"match_number": False, "clip_pool": "sum", "round_digits": 2, "max_pred_windows": 10},
}


# ------------------------------------------------------------------------------------ gold


def gt_saliency_matrix(duration: float, clip_ids, scores) -> np.ndarray:
    """(int(duration/2), 3) annotator scores 0..4; clips outside ``relevant_clip_ids`` are 0."""
    n = int(duration / CLIP_LEN)
    m = np.zeros((n, 3))
    ids = np.asarray(clip_ids, dtype=np.int64).reshape(-1)
    if len(ids) == 0:
        return m
    sc = np.asarray(scores, dtype=np.float64)
    if sc.shape != (len(ids), 3):
        raise ValueError(f"saliency_scores must be one [a1, a2, a3] per relevant clip, got shape {sc.shape}")
    if ids.min() < 0 or ids.max() >= n:
        raise ValueError(f"relevant_clip_ids out of range for duration {duration} ({n} clips)")
    m[ids] = sc
    return m


def load_gold(path) -> dict[str, dict]:
    """qid (str) -> {"duration", "gt_scores" (n_clips, 3) or None, "windows" (G, 2)}."""
    gold: dict[str, dict] = {}
    for rec in iter_jsonl(path):
        for k in ("qid", "duration"):
            if k not in rec:
                raise ValueError(f"{path}: gold record without {k!r}")
        qid = str(rec["qid"])
        if qid in gold:
            raise ValueError(f"{path}: duplicate qid {qid}")
        has_hd = rec.get("saliency_scores") is not None and rec.get("relevant_clip_ids") is not None
        gold[qid] = {
            "duration": float(rec["duration"]),
            "gt_scores": gt_saliency_matrix(rec["duration"], rec.get("relevant_clip_ids"),
                                            rec.get("saliency_scores")) if has_hd else None,
            "windows": np.asarray(rec.get("relevant_windows") or [], dtype=np.float64).reshape(-1, 2),
        }
    if not gold:
        raise ValueError(f"{path}: no gold records")
    return gold


# ---------------------------------------------------------------------------- HD metrics


def _pct(v: float | None, digits: int | None) -> float | None:
    if v is None:
        return None
    return float(f"{100 * v:.{digits}f}") if digits is not None else float(100 * v)


def highlight_metrics(saliency: dict[str, np.ndarray], gt_scores: dict[str, np.ndarray],
                      round_digits: int | None = 2) -> dict:
    """{"HL-min-<level>": {"HL-mAP", "HL-Hit1"}} for every query in ``saliency`` (percent)."""
    qids = list(saliency)
    if not qids:
        raise ValueError("no query to score for highlight detection")
    levels = np.array([lv for _, lv in HL_LEVELS], dtype=np.float64)
    ap = np.zeros((len(qids), len(levels), 3))
    hit = np.zeros((len(qids), len(levels)))
    for qi, qid in enumerate(qids):
        pred = np.asarray(saliency[qid], dtype=np.float64)
        gt = gt_scores[qid]
        n = len(gt)
        if n == 0:
            raise ValueError(f"query {qid}: the video has no 2-s clip")
        binary = (gt[:, None, :] >= levels[None, :, None]).astype(np.float64)  # (n, L, 3)
        top = int(np.argmax(pred))  # on the raw prediction, as the official Hit@1
        if top < n:
            hit[qi] = binary[top].max(axis=1)
        fitted = np.zeros(n)
        fitted[: min(n, len(pred))] = pred[:n]
        ap[qi] = voc_interpolated_ap(binary.reshape(n, -1), fitted).reshape(len(levels), 3)
    out = {}
    for li, (name, _) in enumerate(HL_LEVELS):
        out[f"HL-min-{name}"] = {"HL-mAP": _pct(float(np.mean(ap[:, li])), round_digits),
                                 "HL-Hit1": _pct(float(np.mean(hit[:, li])), round_digits)}
    return out


# ---------------------------------------------------------------------------- MR metrics


def temporal_iou_paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of a[i] with b[i], union taken as the hull max(end) - min(start) as the official R1
    does (equal to the true union whenever the windows overlap; the IoU is 0 otherwise)."""
    inter = np.maximum(0.0, np.minimum(a[:, 1], b[:, 1]) - np.maximum(a[:, 0], b[:, 0]))
    hull = np.maximum(a[:, 1], b[:, 1]) - np.minimum(a[:, 0], b[:, 0])
    return np.divide(inter, hull, out=np.zeros_like(inter), where=hull != 0)


def _in_range(windows: np.ndarray, lo, hi) -> np.ndarray:
    if lo is None:
        return windows
    length = windows[:, 1] - windows[:, 0]
    return windows[(length > lo) & (length <= hi)]


def moment_retrieval_metrics(windows: dict[str, np.ndarray], gt_windows: dict[str, np.ndarray],
                             max_pred_windows: int | None = 10, round_digits: int | None = 2
                             ) -> tuple[dict, dict]:
    """({range: {"MR-mAP": {thr: ap, "average": m}, "MR-R1": {thr: r1}}}, {range: #queries}).

    ``windows[qid]``: (P, 3) [st, ed, score] in submission order (the first is the top-1);
    a query with no predicted window scores AP 0 and an R1 miss.
    """
    thr = np.asarray(MR_IOU_THRESHOLDS)
    keys = [str(t) for t in MR_IOU_THRESHOLDS]
    out, counts = {}, {}
    for name, lo, hi in MR_RANGES:
        aps, r1_iou = [], []
        for qid, pred in windows.items():
            gt = _in_range(gt_windows[qid], lo, hi)
            if len(gt) == 0:
                if lo is None:
                    raise ValueError(f"query {qid}: no ground-truth window for moment retrieval")
                continue
            kept = pred if max_pred_windows is None else pred[:max_pred_windows]
            aps.append(detection_ap(gt, kept[:, :2], kept[:, 2], thr))
            if len(pred) == 0:
                r1_iou.append(0.0)
                continue
            top1 = pred[:1, :2]
            best = int(np.argmax(temporal_iou_cross(top1, gt)[0]))
            r1_iou.append(float(temporal_iou_paired(top1, gt[best:best + 1])[0]))
        counts[name] = len(aps)
        if not aps:
            out[name] = {"MR-mAP": {**{k: None for k in keys}, "average": None},
                         "MR-R1": {k: None for k in keys}}
            continue
        per_thr = np.mean(np.stack(aps), axis=0)
        mr_map = {k: _pct(float(v), round_digits) for k, v in zip(keys, per_thr)}
        mr_map["average"] = _pct(float(np.mean(per_thr)), round_digits)
        ious = np.asarray(r1_iou)
        out[name] = {"MR-mAP": mr_map,
                     "MR-R1": {k: _pct(float(np.mean(ious >= t)), round_digits) for k, t in zip(keys, thr)}}
    return out, counts


def brief_metrics(mr: dict | None, hl: dict | None) -> dict:
    """The official "brief" block: MR headline numbers (sorted by key), then HL-min-<level>-mAP/Hit1."""
    brief: dict[str, Any] = {}
    if mr is not None:
        mr_brief = {
            "MR-full-mAP": mr["full"]["MR-mAP"]["average"],
            "MR-full-mAP@0.5": mr["full"]["MR-mAP"]["0.5"],
            "MR-full-mAP@0.75": mr["full"]["MR-mAP"]["0.75"],
            "MR-short-mAP": mr["short"]["MR-mAP"]["average"],
            "MR-middle-mAP": mr["middle"]["MR-mAP"]["average"],
            "MR-long-mAP": mr["long"]["MR-mAP"]["average"],
            "MR-full-R1@0.5": mr["full"]["MR-R1"]["0.5"],
            "MR-full-R1@0.7": mr["full"]["MR-R1"]["0.7"],
        }
        brief.update(sorted(mr_brief.items()))
    if hl is not None:
        for level, vals in hl.items():
            for k, v in vals.items():
                brief[f"{level}-{k.split('-')[1]}"] = v
    return brief


# --------------------------------------------------------------------------- predictions


def _windows_array(raw, qid: str) -> np.ndarray:
    w = np.asarray(raw if raw is not None else [], dtype=np.float64)
    if w.size == 0:
        return np.zeros((0, 3))
    if w.ndim != 2 or w.shape[1] != 3:
        raise ValueError(f"query {qid}: pred_relevant_windows must be [[start, end, score], ...]")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"query {qid}: pred_relevant_windows contain NaN or infinite values")
    if np.any(w[:, 1] < w[:, 0]):
        raise ValueError(f"query {qid}: a predicted window ends before it starts")
    return w


def _saliency_array(raw, qid: str) -> np.ndarray:
    s = np.asarray(raw, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"query {qid}: pred_saliency_scores must be a non-empty list of numbers")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"query {qid}: pred_saliency_scores contain NaN or infinite values")
    return s


def stream_to_clip_saliency(pred: StreamPrediction, n_clips: int, fusion: FusionParams,
                            clip_pool: str = "mean") -> tuple[np.ndarray, dict]:
    """Fused per-frame scores pooled into ``n_clips`` 2-s clips (see ``ap.pool_by_time``)."""
    if len(pred.time) == 0:
        raise ValueError(f"query {pred.id}: the prediction has no frame")
    fused = fuse(pred.informative, pred.relevance, pred.uncertainty, fusion)
    return pool_by_time(pred.time, fused, CLIP_LEN, n_clips, clip_pool)


def read_submission(records, gold: dict[str, dict], fusion: FusionParams, clip_pool: str
                    ) -> tuple[dict[str, dict], dict]:
    """qid -> {"saliency": array|None, "windows": (P,3) array|None} from either jsonl format.

    A later line for the same qid replaces an earlier one (as ``load_predictions``).
    """
    sub: dict[str, dict] = {}
    fmt = set()
    pool_totals = {"interpolated_bins": 0, "edge_filled_bins": 0, "frames_past_end": 0}
    for rec in records:
        if "frames" in rec:  # StreamPrediction record
            fmt.add("stream")
            p = StreamPrediction.from_record(rec)
            qid = p.id
            if qid not in gold:  # extra ids are reported by the id check
                sub[qid] = {"saliency": None, "windows": None}
                continue
            n_clips = len(gold[qid]["gt_scores"]) if gold[qid]["gt_scores"] is not None \
                else int(gold[qid]["duration"] / CLIP_LEN)
            sal, counts = stream_to_clip_saliency(p, n_clips, fusion, clip_pool)
            for k in pool_totals:
                pool_totals[k] += counts[k]
            raw_w = rec.get("pred_relevant_windows")
            w = None
            if raw_w is not None:  # stream windows: put the best first (R1 uses the first)
                w = _windows_array(raw_w, qid)
                w = w[np.argsort(-w[:, 2], kind="stable")]
            sub[qid] = {"saliency": sal, "windows": w}
        else:  # official submission record
            fmt.add("official_submission")
            if "qid" not in rec:
                raise ValueError("submission record without 'qid' (nor 'frames' for a stream prediction)")
            qid = str(rec["qid"])
            sal = rec.get("pred_saliency_scores")
            win = rec.get("pred_relevant_windows")
            sub[qid] = {"saliency": None if sal is None else _saliency_array(sal, qid),
                        "windows": None if win is None else _windows_array(win, qid)}
    if not sub:
        raise ValueError("the prediction file is empty")
    info = {"prediction_format": "+".join(sorted(fmt))}
    if "stream" in fmt:
        info["clip_pooling_counts"] = pool_totals
    return sub, info


def _resolve_options(protocol: str | None, options: dict | None) -> tuple[str, dict]:
    name, opts = resolve_protocol("QVHighlights", PROTOCOLS, protocol, "official", options)
    if opts["clip_pool"] not in ("mean", "sum"):
        raise ValueError(f"clip_pool must be 'mean' or 'sum', got {opts['clip_pool']!r}")
    return name, opts


def score_submission(sub: dict[str, dict], gold: dict[str, dict], opts: dict) -> tuple[dict, dict]:
    """Official-layout metrics for an already-read submission; returns (metrics, id record)."""
    qids, id_record = match_ids(sub.keys(), gold.keys(), opts["match_number"])
    has_sal = [sub[q]["saliency"] is not None for q in qids]
    has_win = [sub[q]["windows"] is not None for q in qids]
    for flags, what in ((has_sal, "pred_saliency_scores"), (has_win, "pred_relevant_windows")):
        if any(flags) and not all(flags):
            raise ValueError(f"{what} is given for {sum(flags)} of {len(flags)} queries: all or none")
    if not any(has_sal) and not any(has_win):
        raise ValueError("predictions carry neither saliency scores nor windows")
    digits = opts["round_digits"]
    mr = hl = None
    counts = {}
    if all(has_win):
        mr, counts = moment_retrieval_metrics({q: sub[q]["windows"] for q in qids},
                                              {q: gold[q]["windows"] for q in qids},
                                              opts["max_pred_windows"], digits)
    if all(has_sal):
        missing_hd = [q for q in qids if gold[q]["gt_scores"] is None]
        if missing_hd:
            raise ValueError(f"gold lacks saliency_scores for {len(missing_hd)} queries (e.g. {missing_hd[:5]})")
        hl = highlight_metrics({q: sub[q]["saliency"] for q in qids},
                               {q: gold[q]["gt_scores"] for q in qids}, digits)
    metrics: dict[str, Any] = {"brief": brief_metrics(mr, hl)}
    sections = {**(hl or {}), **(mr or {})}
    metrics.update(sorted(sections.items()))
    id_record["mr_queries_per_range"] = counts or None
    return metrics, id_record


def protocol_record(name: str, opts: dict, fusion: FusionParams | None, extra: dict) -> dict:
    stream = "stream" in extra.get("prediction_format", "")
    return {
        "dataset": DATASET,
        "protocol": name,
        "reference": "jayleicn/moment_detr standalone_eval/eval.py (re-implemented)",
        "clip_length_s": CLIP_LEN,
        "hd_levels": {n: lv for n, lv in HL_LEVELS},
        "hd_ap": "VOC-interpolated AP (video2gif get_ap) per annotator; mean over 3 annotators and queries; "
                 "prediction zero-padded/truncated to int(duration/2) clips",
        "hd_hit1": "label of the arg-max predicted clip, max over the 3 annotators",
        "mr_ap": "ActivityNet detection AP per query, mean over queries per IoU threshold, then over thresholds",
        "mr_iou_thresholds": list(MR_IOU_THRESHOLDS),
        "max_pred_windows": opts["max_pred_windows"],
        "mr_r1": "first listed window vs the GT window with the highest IoU with it",
        "mr_length_ranges_s": {n: (None if lo is None else [lo, hi]) for n, lo, hi in MR_RANGES},
        "empty_pred_windows": "AP 0 and an R1 miss",
        "round_digits": opts["round_digits"],
        "fusion": fusion.to_dict() if stream and fusion is not None else None,
        "clip_pool": opts["clip_pool"] if stream else None,
        "clip_pool_fill": ("2-s clip c = frames with time in [2c, 2c+2); clips without a frame: interior ones "
                           "linearly interpolated, leading/trailing ones = the video's lowest clip score")
        if stream else None,
        **extra,
    }


def evaluate_files(pred_file: str, gold_file: str, protocol: str | None = None,
                   fusion: FusionParams | None = None, options: dict | None = None) -> dict:
    """Score a prediction jsonl (official submission or stream predictions) against a QVH gold jsonl."""
    name, opts = _resolve_options(protocol, options)
    fusion = fusion or FusionParams()
    gold = load_gold(gold_file)
    sub, info = read_submission(iter_jsonl(pred_file), gold, fusion, opts["clip_pool"])
    metrics, id_record = score_submission(sub, gold, opts)
    metrics["protocol"] = protocol_record(name, opts, fusion, {**info, **id_record})
    return metrics
