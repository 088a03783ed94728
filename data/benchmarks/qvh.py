"""QVHighlights: raw files, items, gold, stream adapter and scorer (highlight detection + moment retrieval).

A re-implementation of the Moment-DETR ``standalone_eval/eval.py`` metrics (official_scorers.md
§3.1), reproducing ``sample_val_preds_metrics_raw.json`` key for key:

* HD, at three positive levels (saliency >= 2 "Fair", >= 3 "Good", >= 4 "VeryGood"; the headline
  numbers are VeryGood): the ground truth is a (#clips = int(duration/2), 3 annotators) matrix,
  unannotated clips 0. HL-mAP = VOC-interpolated AP (``ranking.voc_interpolated_ap``) per
  annotator, averaged over the 3 annotators and the queries; the predicted saliency is
  zero-padded or truncated to #clips. HL-Hit1 = the label of the arg-max predicted clip, max over
  annotators (0 when the arg-max lies past the last clip), averaged over queries.
* MR: mAP = ActivityNet detection AP (``ranking.detection_ap``) over IoU 0.50:0.05:0.95 with at
  most 10 predicted windows, per-threshold means over queries then their average; R1@IoU = the
  IoU of the *first listed* window with the GT window that overlaps it most. Also by GT window
  length: short (0, 10], middle (10, 30], long (30, 150] s and full. Percentages, 2 decimals.

Predictions: the official submission jsonl (``qid``, ``pred_saliency_scores`` one per 2-s clip,
``pred_relevant_windows`` [[st, ed, score], ...] best first), or score streams: the fused
per-frame score is pooled per 2-s clip [2c, 2c+2) (mean; "sum" as MMDuet/Aha did) for HD, and
the post-processor's highlight segments of it, ranked by peak score, are the MR windows
(``mr_windows``: "online" = causal smoothing and online-confirmed peaks, the default; "offline" =
the whole-video Savitzky-Golay post-processor; "none" = HD only).

Protocols: "official" (every query scored, missing/extra ids are an error: ``match_number=True``)
and "reference" (MMDuet/Aha: sum pooling, queries missing from the predictions silently dropped,
``match_number=False``, no MR from streams); options override either.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from data.benchmarks import items as it
from data.benchmarks.ranking import detection_ap, pool_by_time, temporal_iou_cross, voc_interpolated_ap
from data.benchmarks.validate import (InputError, UniqueIds, as_bool, as_int, choice, item_id, match_ids, number,
                                      numbers, read_jsonl, resolve_protocol, span)

NAME = "qvh"
DATASET = "qvhighlights"
CLIP_LEN = 2.0
HL_LEVELS = (("Fair", 2), ("Good", 3), ("VeryGood", 4))
MR_IOU_THRESHOLDS = tuple(float(f"{e:.2f}") for e in np.linspace(0.5, 0.95, 10))
# (name, min_len, max_len): a GT window of length l is in the range when min < l <= max;
# "full" keeps everything (the official code special-cases [0, 150]).
MR_RANGES = (("short", 0, 10), ("middle", 10, 30), ("long", 30, 150), ("full", None, None))
MR_WINDOW_MODES = ("online", "offline", "none")
DEFAULT_PROTOCOL = "official"
PROTOCOLS: dict[str, dict[str, Any]] = {
    "official": {"match_number": True, "clip_pool": "mean", "round_digits": 2, "max_pred_windows": 10,
                 "mr_windows": "online"},
    "reference": {"match_number": False, "clip_pool": "sum", "round_digits": 2, "max_pred_windows": 10,
                  "mr_windows": "none"},
}
HEADLINE = "HL-min-VeryGood-mAP"


def resolve(protocol: str | None, options: Mapping | None) -> tuple[str, dict]:
    name, opts = resolve_protocol("QVHighlights", PROTOCOLS, protocol, DEFAULT_PROTOCOL, options)
    as_bool(opts["match_number"], "match_number")
    choice(opts["clip_pool"], ("mean", "sum"), "clip_pool")
    choice(opts["mr_windows"], MR_WINDOW_MODES, "mr_windows")
    if opts["round_digits"] is not None:
        as_int(opts["round_digits"], "round_digits", 0)
    if opts["max_pred_windows"] is not None:
        as_int(opts["max_pred_windows"], "max_pred_windows", 1)
    return name, opts


def tunable(protocol: str, opts: Mapping) -> bool:
    return True


def tuning_options(protocol: str, opts: Mapping) -> dict:
    """The headline (HD) does not depend on the MR windows: tuning skips them; and it compares
    unrounded values (rounding to 2 decimals would create ties between grid points)."""
    return {**opts, "mr_windows": "none", "round_digits": None}


def headline(metrics: Mapping, protocol: str) -> tuple[str, float | None]:
    return HEADLINE, (metrics.get("brief") or {}).get(HEADLINE)


def item_group(gold_item: Mapping) -> str | None:
    """The video (``vid``) of a query: k-fold tuning keeps a video's queries in one fold."""
    return gold_item.get("video")


# ------------------------------------------------------------------------------------ gold


def gt_saliency_matrix(duration: float, clip_ids, scores, path=None, line=None) -> np.ndarray:
    """(int(duration/2), 3) annotator scores 0..4; clips outside ``relevant_clip_ids`` are 0."""
    n = int(duration / CLIP_LEN)
    m = np.zeros((n, 3))
    ids = numbers(clip_ids, "relevant_clip_ids", path, line, allow_empty=True)
    if len(ids) == 0:
        return m
    if np.any(ids != np.round(ids)) or ids.min() < 0 or ids.max() >= n:
        raise InputError(f"relevant_clip_ids must be clip indices in 0..{n - 1} (duration {duration:g} s)", path, line)
    sc = numbers(scores, "saliency_scores", path, line, ndim=2)
    if sc.shape != (len(ids), 3):
        raise InputError(f"saliency_scores must be one [a1, a2, a3] per relevant clip, got shape {sc.shape}", path, line)
    if sc.min() < 0 or sc.max() > 4:
        raise InputError("saliency_scores must lie in 0..4", path, line)
    m[ids.astype(np.int64)] = sc
    return m


def load_gold(path, protocol: str = DEFAULT_PROTOCOL, opts: Mapping | None = None) -> dict[str, dict]:
    """qid -> {"duration", "gt_scores" (n_clips, 3) or None, "windows" (G, 2), "n_clipped", "video" (its vid or None)}."""
    gold: dict[str, dict] = {}
    ids = UniqueIds("qid")
    for line, rec in read_jsonl(path, "QVHighlights gold"):
        for k in ("qid", "duration"):
            if k not in rec:
                raise InputError(f"gold record without {k!r}", path, line)
        qid = ids.add(item_id(rec["qid"], "qid", path, line), path, line)
        dur = number(rec["duration"], f"query {qid} duration", path, line, positive=True)
        has_hd = rec.get("saliency_scores") is not None and rec.get("relevant_clip_ids") is not None
        wins, clipped = [], 0
        for w in rec.get("relevant_windows") or []:
            s, e, c = span(w, f"query {qid} relevant window", path, line, dur, beyond="clip")
            wins.append([s, e])
            clipped += c
        vid = rec.get("vid")
        gold[qid] = {"duration": dur, "windows": np.asarray(wins, dtype=np.float64).reshape(-1, 2), "n_clipped": clipped,
                     "video": None if vid is None else str(vid),
                     "gt_scores": gt_saliency_matrix(dur, rec["relevant_clip_ids"], rec["saliency_scores"], path, line)
                     if has_hd else None}
    return gold


# ---------------------------------------------------------------------------- HD metrics


def _pct(v: float | None, digits: int | None) -> float | None:
    if v is None:
        return None
    return float(f"{100 * v:.{digits}f}") if digits is not None else float(100 * v)


def highlight_metrics(saliency: dict[str, np.ndarray], gt_scores: dict[str, np.ndarray],
                      round_digits: int | None = 2, per_query: dict | None = None) -> dict:
    """{"HL-min-<level>": {"HL-mAP", "HL-Hit1"}} for every query in ``saliency`` (percent); ``per_query``
    (a dict) receives each query's VeryGood AP and Hit@1 (unrounded percent)."""
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
    if per_query is not None:
        for qi, qid in enumerate(qids):
            per_query.setdefault(qid, {}).update({"HL-VeryGood-AP": 100 * float(ap[qi, -1].mean()),
                                                  "HL-VeryGood-Hit1": 100 * float(hit[qi, -1])})
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
                             max_pred_windows: int | None = 10, round_digits: int | None = 2,
                             per_query: dict | None = None) -> tuple[dict, dict]:
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
            if lo is None and per_query is not None:
                per_query.setdefault(qid, {})["MR-AP"] = 100 * float(np.mean(aps[-1]))
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


def record_id(rec: Mapping, path=None, line=None) -> str:
    for k in ("qid", "id"):
        if k in rec:
            return item_id(rec[k], k, path, line)
    raise InputError("prediction record without 'qid' (or 'id' for a stream)", path, line)


def windows_array(raw, qid: str, path=None, line=None) -> np.ndarray:
    """(P, 3) [start, end, score]; NaN, a negative start or a reversed window refused."""
    w = numbers(raw, f"query {qid} pred_relevant_windows", path, line, ndim=2, allow_empty=True)
    if w.size == 0:
        return np.zeros((0, 3))
    if w.shape[1] != 3:
        raise InputError(f"query {qid}: pred_relevant_windows must be [[start, end, score], ...]", path, line)
    if np.any(w[:, 0] < 0) or np.any(w[:, 1] < w[:, 0]):
        raise InputError(f"query {qid}: a predicted window starts before 0 or ends before it starts", path, line)
    return w


def n_clips(gold_item: Mapping) -> int:
    g = gold_item["gt_scores"]
    return len(g) if g is not None else int(gold_item["duration"] / CLIP_LEN)


def from_stream(stream, gold_item: Mapping, protocol: str, opts: Mapping) -> dict:
    sal, counts = pool_by_time(stream.time, stream.fused, CLIP_LEN, n_clips(gold_item), opts["clip_pool"])
    win = None
    if opts["mr_windows"] != "none":
        win = stream.windows(opts["max_pred_windows"], opts["mr_windows"], gold_item["duration"])
    return {"saliency": sal, "windows": win, "pool": counts, "source": "stream"}


def from_record(rec: Mapping, gold_item: Mapping, protocol: str, opts: Mapping, path=None, line=None) -> dict:
    """An official submission record -> a prediction."""
    qid = record_id(rec, path, line)
    sal, win = rec.get("pred_saliency_scores"), rec.get("pred_relevant_windows")
    if sal is None and win is None:
        raise InputError(f"query {qid}: neither 'frames' (stream), 'pred_saliency_scores' nor 'pred_relevant_windows'",
                         path, line)
    return {"saliency": None if sal is None else numbers(sal, f"query {qid} pred_saliency_scores", path, line),
            "windows": None if win is None else windows_array(win, qid, path, line), "pool": None,
            "source": "official submission"}


# ------------------------------------------------------------------------------------ score


def score(preds: Mapping[str, dict], gold: Mapping[str, dict], protocol: str | None = None,
          options: Mapping | None = None) -> dict:
    """Official-layout metrics ({"brief", "HL-min-*", "MR-*"...}) of {qid: prediction}."""
    name, opts = resolve(protocol, options)
    qids, id_record = match_ids(preds, gold, missing="error" if opts["match_number"] else "drop", what="query")
    has_sal = [preds[q]["saliency"] is not None for q in qids]
    has_win = [preds[q]["windows"] is not None for q in qids]
    for flags, what in ((has_sal, "pred_saliency_scores"), (has_win, "pred_relevant_windows")):
        if any(flags) and not all(flags):
            raise InputError(f"{what} is given for {sum(flags)} of {len(flags)} queries: all or none")
    if not any(has_sal) and not any(has_win):
        raise InputError("predictions carry neither saliency scores nor windows")
    digits = opts["round_digits"]
    mr = hl = None
    counts: dict = {}
    per_item: dict[str, dict] = {q: {"n_windows": None if preds[q]["windows"] is None else len(preds[q]["windows"])}
                                 for q in qids}
    if all(has_win):
        mr, counts = moment_retrieval_metrics({q: preds[q]["windows"] for q in qids},
                                              {q: gold[q]["windows"] for q in qids}, opts["max_pred_windows"], digits,
                                              per_item)
    if all(has_sal):
        missing_hd = [q for q in qids if gold[q]["gt_scores"] is None]
        if missing_hd:
            raise InputError(f"the gold lacks saliency_scores for {len(missing_hd)} queries (e.g. {missing_hd[:5]})")
        hl = highlight_metrics({q: preds[q]["saliency"] for q in qids}, {q: gold[q]["gt_scores"] for q in qids}, digits,
                               per_item)
    metrics: dict[str, Any] = {"brief": brief_metrics(mr, hl)}
    metrics.update(sorted({**(hl or {}), **(mr or {})}.items()))
    sources = sorted({preds[q]["source"] for q in qids})
    pooled = [preds[q]["pool"] for q in qids if preds[q].get("pool")]
    record = {
        "dataset": DATASET, "protocol": name, "reference": "jayleicn/moment_detr standalone_eval/eval.py (re-implemented)",
        "clip_length_s": CLIP_LEN, "hd_levels": {n: lv for n, lv in HL_LEVELS},
        "hd_ap": "VOC-interpolated AP (video2gif get_ap) per annotator; mean over 3 annotators and queries; "
                 "prediction zero-padded/truncated to int(duration/2) clips",
        "hd_hit1": "label of the arg-max predicted clip, max over the 3 annotators",
        "mr_ap": "ActivityNet detection AP per query, mean over queries per IoU threshold, then over thresholds",
        "mr_iou_thresholds": list(MR_IOU_THRESHOLDS), "max_pred_windows": opts["max_pred_windows"],
        "mr_r1": "first listed window vs the GT window with the highest IoU with it",
        "mr_length_ranges_s": {n: (None if lo is None else [lo, hi]) for n, lo, hi in MR_RANGES},
        "mr_queries_per_range": counts or None, "empty_pred_windows": "AP 0 and an R1 miss",
        "n_empty_pred_windows": sum(1 for q in qids if preds[q]["windows"] is not None and len(preds[q]["windows"]) == 0),
        "round_digits": digits, "prediction_format": "+".join(sources),
        "n_gt_windows_clipped": sum(gold[q]["n_clipped"] for q in qids), "ids": id_record}
    if "stream" in sources:
        record.update(
            clip_pool=opts["clip_pool"], clip_pooling_counts={k: sum(c[k] for c in pooled) for k in pooled[0]},
            clip_pool_fill="2-s clip c = frames with time in [2c, 2c+2); clips without a frame: interior ones "
                           "linearly interpolated, leading/trailing ones = the video's lowest clip score",
            mr_windows={"online": "post-processor segments of the fused score: causal Savitzky-Golay smoothing, "
                                  "online-confirmed peaks (none before frame polyorder + 1 = 3), ranked by peak score",
                        "offline": "post-processor segments of the fused score over the whole video (centred "
                                   "Savitzky-Golay, find_peaks), ranked by peak score",
                        "none": "not computed (HD only)"}[opts["mr_windows"]])
    return {"metrics": metrics, "per_item": per_item, "record": record}


# ------------------------------------------------------------------------- raw annotations

DEFAULT_TEMPLATE = "none"  # QVH queries are already natural-language requests
DEFAULT_VIDEO_TEMPLATE = "{vid}.mp4"
VIDEO_FIELDS = ("vid", "youtube_id")


def split_vid(vid: str) -> tuple[str, float, float]:
    """``"<youtube_id>_<start>_<end>"`` -> (youtube_id, start, end); ids may contain ``_`` (split from the right)."""
    parts = vid.rsplit("_", 2)
    try:
        if len(parts) != 3:
            raise ValueError
        return parts[0], float(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError(f"QVHighlights vid {vid!r} is not '<youtube_id>_<start>_<end>'") from None


def saliency_windows(clip_ids, saliency, *, min_score: int = 4, clip_seconds: float = CLIP_LEN,
                     duration: float | None = None) -> list[list[float]]:
    """Spans covering the consecutive clips whose best annotator score is >= ``min_score``
    (a run of clips a..b is [a*2, (b+1)*2], clipped to ``duration``)."""
    if len(clip_ids) != len(saliency):
        raise ValueError(f"{len(clip_ids)} relevant_clip_ids but {len(saliency)} saliency rows")
    good = sorted(c for c, scores in zip(clip_ids, saliency) if max(scores) >= min_score)
    windows: list[list[float]] = []
    for c in good:
        if windows and windows[-1][1] == c * clip_seconds:
            windows[-1][1] = (c + 1) * clip_seconds
        else:
            windows.append([c * clip_seconds, (c + 1) * clip_seconds])
    if duration is not None:
        windows = [[s, min(e, duration)] for s, e in windows if s < duration]
    return windows


def convert(input_path, *, seed: int = 0, template: str = DEFAULT_TEMPLATE, video_template: str = DEFAULT_VIDEO_TEMPLATE,
            highlight_min_score: int = 4) -> list[dict]:
    """QVHighlights jsonl -> items (id ``str(qid)``); the gold is validated as ``load_gold`` does (absent
    for the test split: no labels)."""
    from data.prompts import render_query

    out = []
    ids = UniqueIds("qid")
    for line, rec in read_jsonl(input_path, "QVHighlights jsonl"):
        if not {"qid", "query", "vid", "duration"} <= rec.keys():
            raise InputError("record lacks qid/query/vid/duration", input_path, line)
        qid = ids.add(item_id(rec["qid"], "qid", input_path, line), input_path, line)
        vid = item_id(rec["vid"], "vid", input_path, line)
        try:
            youtube_id, clip_start, clip_end = split_vid(vid)
        except ValueError as e:
            raise InputError(str(e), input_path, line) from None
        dur = number(rec["duration"], "duration", input_path, line, positive=True)
        if not isinstance(rec["query"], str) or not rec["query"].strip():
            raise InputError(f"query {qid}: empty query", input_path, line)
        query, template_id = render_query(rec["query"].strip(), template, seed, qid)
        gold: dict[str, Any] = {"vid": vid, "youtube_id": youtube_id, "source_start": clip_start, "source_end": clip_end}
        labels = [k for k in ("relevant_windows", "relevant_clip_ids", "saliency_scores") if k in rec]
        if labels:  # all three or none (the test split): a partial label set is never dropped silently
            for key in ("relevant_windows", "relevant_clip_ids", "saliency_scores"):
                if key not in rec:
                    raise InputError(f"record has {', '.join(labels)} but no {key}", input_path, line)
            gt_saliency_matrix(dur, rec["relevant_clip_ids"], rec["saliency_scores"], input_path, line)
            gold["relevant_windows"] = [list(span(w, "relevant window", input_path, line, dur, beyond="clip")[:2])
                                        for w in rec["relevant_windows"]]
            gold["relevant_clip_ids"], gold["saliency_scores"] = rec["relevant_clip_ids"], rec["saliency_scores"]
            gold["highlight_windows"] = saliency_windows(rec["relevant_clip_ids"], rec["saliency_scores"],
                                                         min_score=highlight_min_score, duration=dur)
            gold["highlight_min_score"] = highlight_min_score
        video = it.format_video(video_template, "qvh", VIDEO_FIELDS, vid=vid, youtube_id=youtube_id)
        out.append(it.make_item(qid, "qvh", video, query, duration=dur, template_id=template_id, gold=gold))
    return out


def release_record(qid: int, query: str, duration: float, vid: str, clip_ids, saliency, windows) -> dict:
    """A ``highlight_<split>_release.jsonl`` record in the official key order."""
    return {"qid": qid, "query": query, "duration": duration, "vid": vid, "relevant_clip_ids": list(clip_ids),
            "saliency_scores": [list(map(int, s)) for s in saliency], "relevant_windows": [list(w) for w in windows]}
