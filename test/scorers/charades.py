"""Charades-STA temporal grounding: one predicted interval per (video, sentence) query.

Three protocols (``evaluate_files(..., protocol=...)``):

``"standard"`` (default, causal)
    R1@{0.3,0.5,0.7} (% of queries whose interval has IoU >= m with the ground truth) and mIoU,
    as Moment-DETR's ``compute_mr_r1`` with one prediction per query; the GT end is clipped to the
    video duration. The interval comes from the per-frame fused scores by a rule that never looks
    ahead (``causal_interval``):

    1. optional trailing moving average over the current and the ``window`` previous frames;
    2. running min-max normalisation: at frame t the score is rescaled to [0, 1] with the minimum
       and maximum of frames 0..t *and of an anchor value* (default 0, the score of "nothing
       relevant"). The anchor gives the first frames a scale: without it a constant prefix has no
       range, and a query whose moment starts at t=0 (21 % of the test set) could never fire.
       A zero range (every score so far equals the anchor) normalises to 0;
    3. frame t is "on" when its normalised score >= ``threshold``;
    4. the answer is the longest run of "on" frames (ties: the higher mean normalised score, then
       the earlier run). A live system can keep this "best run so far" up to date frame by frame,
       so the answer at the end of the video needs no future frame at any point.

    Frame-time convention (as ``test.postprocess``): a frame at time t stands for [t, t + step),
    step = 1/fps (or the median gap between frame times), so a run of frames lo..hi gives the
    interval [time[lo], time[hi] + step], clipped to [0, duration]. No "on" frame: IoU 0.

``"reference"`` (MMDuet / Aha ``evaluate.py --func grounding``; labelled non-causal and oracle)
    Centred +-w moving average (non-causal), per-video min-max normalisation (constant scores ->
    all zeros instead of a division by zero), frame-set IoU between {frames with score >= theta}
    and {frames whose time lies in the GT span}, one row per theta in arange(0.30, 0.71, 0.02),
    plus the per-query best-threshold oracle (optimistic: it picks theta per query with the GT).

``"text"`` (offline models that answer in words)
    The time span is parsed from the answer (``parse_time_span``): seconds ("from 3.2 to 7.5
    seconds", "3.2 - 7.5 seconds", "00:03 - 00:07"), a percentage of the duration (VTimeLLM's
    "From 10 to 45"), or a coarse word ("beginning" / "middle" / "end" -> that third of the video).
    An unparsable answer is a miss (IoU 0) and is counted, never skipped (the reference skipped
    them, which inflated the baselines).

Gold: ``charades_sta_test.txt`` lines ``"vid start end##sentence"``; item id ``"{vid}#{i}"`` with i
the 0-based line index; durations from ``Charades_v1_test.csv`` (column ``length``). A gold query
without a prediction scores IoU 0 (counted in ``n_missing``).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from test.postprocess import FusionParams, fuse
from test.predictions import StreamPrediction, load_predictions
from utils.io import iter_jsonl

DATASET = "charades_sta"
PROTOCOLS = ("standard", "reference", "text")
R1_IOUS = (0.3, 0.5, 0.7)
CAUSAL_THRESHOLD = 0.5
CAUSAL_WINDOW = 0
CAUSAL_ANCHOR = 0.0
REFERENCE_WINDOW = 8  # the paper's "AHA (w=8)" row
# Compared exactly as the reference does (np.arange floats), labelled with 2 decimals.
REFERENCE_THRESHOLDS = np.arange(0.30, 0.71, 0.02)
SCORE_SOURCES = ("fused", "relevance", "informative")
UNITLESS_MODES = ("percent", "seconds")


# ------------------------------------------------------------------------------------ gold


@dataclass(frozen=True)
class GroundingQuery:
    id: str
    video: str
    sentence: str
    start: float
    end: float  # clipped to the duration
    duration: float
    raw_end: float


def read_durations(csv_path: str | Path) -> dict[str, float]:
    """Video id -> length in seconds from a Charades_v1_*.csv (columns ``id`` and ``length``)."""
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "id" not in reader.fieldnames or "length" not in reader.fieldnames:
            raise ValueError(f"{csv_path}: expected columns 'id' and 'length', got {reader.fieldnames}")
        return {row["id"]: float(row["length"]) for row in reader}


def default_durations_csv(gold_file: str | Path) -> Path:
    """The Charades_v1_<split>.csv beside charades_sta_<split>.txt (else train for a *train* file, else test)."""
    gold_file = Path(gold_file)
    m = re.fullmatch(r"charades_sta_(\w+)\.txt", gold_file.name)
    split = m.group(1) if m else ("train" if "train" in gold_file.name else "test")
    return gold_file.with_name(f"Charades_v1_{split}.csv")


def load_gold(gold_file: str | Path, durations_csv: str | Path | None = None) -> dict[str, GroundingQuery]:
    durations = read_durations(durations_csv or default_durations_csv(gold_file))
    out: dict[str, GroundingQuery] = {}
    with open(gold_file, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue  # a blank line keeps its index so later ids stay line numbers
        head, sep, sentence = line.partition("##")
        parts = head.split()
        if not sep or len(parts) != 3:
            raise ValueError(f"{gold_file}:{i + 1}: expected 'vid start end##sentence', got {line!r}")
        vid, start, end = parts[0], float(parts[1]), float(parts[2])
        if vid not in durations:
            raise ValueError(f"{gold_file}:{i + 1}: video {vid!r} has no length in the durations CSV")
        if not end > start:
            raise ValueError(f"{gold_file}:{i + 1}: empty span {start}..{end}")
        duration = durations[vid]
        qid = f"{vid}#{i}"
        out[qid] = GroundingQuery(qid, vid, sentence.strip(), start, min(end, duration), duration, end)
    return out


# ---------------------------------------------------------------------------------- metrics


def interval_iou(pred: Sequence[float] | None, gold: Sequence[float]) -> float:
    """Temporal IoU of two [start, end] intervals (continuous, no +1); 0 for a missing prediction."""
    if pred is None:
        return 0.0
    (ps, pe), (gs, ge) = sorted(map(float, pred)), sorted(map(float, gold))
    inter = max(0.0, min(pe, ge) - max(ps, gs))
    union = max(pe, ge) - min(ps, gs)
    return inter / union if union > 0 else 0.0


def summarize_ious(ious: Iterable[float], r1_ious: Sequence[float] = R1_IOUS) -> dict[str, float]:
    """mIoU and R1@m in percent (IoU >= m counts, as Moment-DETR's compute_mr_r1)."""
    x = np.asarray(list(ious), dtype=np.float64)
    if x.size == 0:
        raise ValueError("no queries to score")
    out = {"mIoU": float(x.mean() * 100)}
    for m in r1_ious:
        out[f"R1@{m}"] = float((x >= m).mean() * 100)
    return out


# ------------------------------------------------------------------------- frame utilities


def frame_step(times: np.ndarray, fps: float | None = None) -> float:
    """Seconds one sampled frame stands for: 1/fps when known, else the median gap, else 0."""
    if fps:
        return 1.0 / float(fps)
    d = np.diff(np.asarray(times, dtype=np.float64))
    return float(np.median(d)) if d.size else 0.0


def true_runs(mask: Sequence[bool]) -> list[tuple[int, int]]:
    """Inclusive (first, last) index of every maximal run of True."""
    m = np.asarray(mask, dtype=bool)
    if m.size == 0:
        return []
    edges = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b) - 1) for a, b in zip(starts, stops)]


def frame_scores(pred: StreamPrediction, fusion: FusionParams, source: str = "fused") -> np.ndarray:
    if source == "fused":
        return fuse(pred.informative, pred.relevance, pred.uncertainty, fusion)
    if source == "relevance":
        return np.asarray(pred.relevance, dtype=np.float64)
    if source == "informative":
        return np.asarray(pred.informative, dtype=np.float64)
    raise ValueError(f"score_source must be one of {SCORE_SOURCES}, got {source!r}")


# ----------------------------------------------------------------------- causal (standard)


def _flat_tolerance(y: np.ndarray) -> float:
    """A range this small is rounding noise of the running sums, not a real contrast."""
    return 1e-9 * max(1.0, float(np.abs(y).max())) if y.size else 0.0


def trailing_mean(y: Sequence[float], window: int) -> np.ndarray:
    """Mean of frames max(0, t-window)..t: smoothing that uses no future frame."""
    y = np.asarray(y, dtype=np.float64)
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    c = np.concatenate([[0.0], np.cumsum(y)])
    hi = np.arange(1, y.size + 1)
    lo = np.maximum(0, hi - 1 - window)
    return (c[hi] - c[lo]) / (hi - lo)


def running_minmax(y: Sequence[float], anchor: float | None = CAUSAL_ANCHOR) -> np.ndarray:
    """Rescale frame t with the min and max of frames 0..t (and ``anchor``, if not None)."""
    y = np.asarray(y, dtype=np.float64)
    lo, hi = np.minimum.accumulate(y), np.maximum.accumulate(y)
    if anchor is not None:
        lo, hi = np.minimum(lo, anchor), np.maximum(hi, anchor)
    rng = hi - lo
    flat = rng <= _flat_tolerance(y)
    return np.where(flat, 0.0, (y - lo) / np.where(flat, 1.0, rng))


def causal_normalised(scores: Sequence[float], window: int = CAUSAL_WINDOW,
                      anchor: float | None = CAUSAL_ANCHOR) -> np.ndarray:
    """Steps 1-2 of the causal rule: value t depends on frames 0..t only."""
    return running_minmax(trailing_mean(scores, window), anchor)


def causal_interval(times: Sequence[float], scores: Sequence[float], threshold: float = CAUSAL_THRESHOLD,
                    window: int = CAUSAL_WINDOW, anchor: float | None = CAUSAL_ANCHOR,
                    step: float | None = None, duration: float | None = None) -> tuple[float, float] | None:
    """One interval from per-frame scores without look-ahead (module docstring); None if no frame fires."""
    t = np.asarray(times, dtype=np.float64)
    y = np.asarray(scores, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1:
        raise ValueError(f"times and scores must be 1-D of equal length, got {t.shape} and {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("scores contain NaN or infinite values")
    if y.size == 0:
        return None
    z = causal_normalised(y, window, anchor)
    runs = true_runs(z >= threshold)
    if not runs:
        return None
    lo, hi = max(runs, key=lambda r: (r[1] - r[0], float(z[r[0]:r[1] + 1].mean()), -r[0]))
    step = frame_step(t) if step is None else step
    start, end = float(t[lo]), float(t[hi]) + step
    if duration is not None:
        start, end = min(max(start, 0.0), duration), min(end, duration)
    return max(start, 0.0), end


# ------------------------------------------------------------------- reference (non-causal)


def centered_mean(y: Sequence[float], window: int) -> np.ndarray:
    """Mean of frames max(0, t-w)..min(T-1, t+w): the reference's non-causal smoothing."""
    y = np.asarray(y, dtype=np.float64)
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    c = np.concatenate([[0.0], np.cumsum(y)])
    idx = np.arange(y.size)
    lo, hi = np.maximum(0, idx - window), np.minimum(y.size, idx + window + 1)
    return (c[hi] - c[lo]) / (hi - lo)


def minmax(y: Sequence[float]) -> np.ndarray:
    """Per-video min-max over the whole series; a constant series maps to zeros (reference: 0/0)."""
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return y
    rng = y.max() - y.min()
    return np.zeros_like(y) if rng <= _flat_tolerance(y) else (y - y.min()) / rng


def frame_set_iou(pred_mask: Sequence[bool], gold_mask: Sequence[bool]) -> float:
    p, g = np.asarray(pred_mask, dtype=bool), np.asarray(gold_mask, dtype=bool)
    if p.shape != g.shape:
        raise ValueError(f"masks differ in shape: {p.shape} vs {g.shape}")
    union = np.logical_or(p, g).sum()
    return float(np.logical_and(p, g).sum() / union) if union else 0.0


def reference_ious(times: Sequence[float], scores: Sequence[float], gold: tuple[float, float],
                   window: int, thresholds: Sequence[float] = REFERENCE_THRESHOLDS) -> np.ndarray:
    """Frame-set IoU at every threshold for one query (reference protocol)."""
    t = np.asarray(times, dtype=np.float64)
    y = minmax(centered_mean(scores, window))
    gold_mask = (t >= gold[0]) & (t <= gold[1])
    return np.array([frame_set_iou(y >= th, gold_mask) for th in thresholds])


# ---------------------------------------------------------------------------- text answers


_NUM = r"(\d+(?:\.\d+)?)"
_CLOCK = r"(\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?)"
_SEP = r"\s*(?:-|–|—|~|to|and|until|till)\s*"
_UNIT = r"(%|percent\b|seconds?\b|secs?\b|s\b)?"
_CLOCK_RANGE = re.compile(_CLOCK + _SEP + _CLOCK)
_NUM_RANGE = re.compile(_NUM + r"\s*" + _UNIT + _SEP + _NUM + r"\s*" + _UNIT)
_COARSE = (
    (re.compile(r"\bbeginning\b|\bstart of the video\b"), 0),
    (re.compile(r"\bmiddle\b"), 1),
    (re.compile(r"\bend\b|\bending\b"), 2),
)


def _clock_seconds(s: str) -> float:
    value = 0.0
    for part in s.split(":"):
        value = value * 60 + float(part)
    return value


def parse_time_span(text: str | None, duration: float, unitless: str = "percent"
                    ) -> tuple[float, float, str] | None:
    """(start_s, end_s, kind) parsed from an answer, clipped to [0, duration]; None if unparsable.

    ``kind`` is "clock", "seconds", "percent" or "coarse". Numbers without a unit are read as
    ``unitless`` ("percent": VTimeLLM's "From 10 to 45"; "seconds"). A percentage above 100 is
    unparsable rather than silently clipped.
    """
    if unitless not in UNITLESS_MODES:
        raise ValueError(f"unitless must be one of {UNITLESS_MODES}, got {unitless!r}")
    if not text or duration <= 0:
        return None
    s = text.lower()
    span: tuple[float, float] | None = None
    m = _CLOCK_RANGE.search(s)
    if m:
        span, kind = (_clock_seconds(m.group(1)), _clock_seconds(m.group(2))), "clock"
    elif (m := _NUM_RANGE.search(s)):
        a, unit_a, b, unit_b = float(m.group(1)), m.group(2), float(m.group(3)), m.group(4)
        unit = unit_b or unit_a
        if unit in ("%", "percent") or (unit is None and unitless == "percent"):
            if max(a, b) > 100:
                return None
            span, kind = (a / 100 * duration, b / 100 * duration), "percent"
        else:
            span, kind = (a, b), "seconds"
    else:
        thirds = [k for pattern, k in _COARSE if pattern.search(s)]
        if thirds:
            span, kind = (min(thirds) * duration / 3, (max(thirds) + 1) * duration / 3), "coarse"
    if span is None:
        return None
    lo, hi = sorted(span)
    return min(max(lo, 0.0), duration), min(max(hi, 0.0), duration), kind


def answer_text(rec: Mapping) -> str | None:
    """The free-text answer of an offline model's record: ``answer``, ``model_response`` or the
    first response's ``content``."""
    for key in ("answer", "model_response"):
        v = rec.get(key)
        if isinstance(v, list):
            v = v[0] if v else None
        if isinstance(v, str):
            return v
    for r in rec.get("responses") or []:
        if r.get("role", "assistant") != "user" and isinstance(r.get("content"), str):
            return r["content"]
    return None


# -------------------------------------------------------------------------------- scoring


def score_standard(gold: Mapping[str, GroundingQuery], preds: Mapping[str, StreamPrediction],
                   fusion: FusionParams, threshold: float = CAUSAL_THRESHOLD, window: int = CAUSAL_WINDOW,
                   anchor: float | None = CAUSAL_ANCHOR, score_source: str = "fused") -> dict:
    per_item, ious = {}, []
    for qid, q in gold.items():
        p = preds.get(qid)
        interval = None
        if p is not None:
            scores = frame_scores(p, fusion, score_source)
            interval = causal_interval(p.time, scores, threshold, window, anchor,
                                       frame_step(p.time, p.fps), q.duration)
        iou = interval_iou(interval, (q.start, q.end))
        ious.append(iou)
        per_item[qid] = {"pred": None if interval is None else list(interval), "iou": iou}
    return {"metrics": summarize_ious(ious), "per_item": per_item,
            "n_no_interval": sum(1 for v in per_item.values() if v["pred"] is None)}


def score_reference(gold: Mapping[str, GroundingQuery], preds: Mapping[str, StreamPrediction],
                    fusion: FusionParams, windows: Sequence[int] = (REFERENCE_WINDOW,),
                    thresholds: Sequence[float] = REFERENCE_THRESHOLDS, score_source: str = "fused") -> dict:
    labels = [f"{th:.2f}" for th in thresholds]
    by_window, per_item = {}, {}
    for w in windows:
        table = np.zeros((len(gold), len(thresholds)))  # IoU [query, threshold]; missing -> 0
        for row, (qid, q) in enumerate(gold.items()):
            p = preds.get(qid)
            if p is not None and p.time.size:
                # The reference marks frames with the annotation as written (end not clipped).
                table[row] = reference_ious(p.time, frame_scores(p, fusion, score_source),
                                            (q.start, q.raw_end), w, thresholds)
        oracle = table.max(axis=1)
        by_window[str(w)] = {
            "by_threshold": {lab: summarize_ious(table[:, j]) for j, lab in enumerate(labels)},
            "oracle_best_threshold": summarize_ious(oracle),
        }
        for row, qid in enumerate(gold):
            per_item.setdefault(qid, {})[f"w{w}"] = {
                "oracle_iou": float(oracle[row]), "best_threshold": labels[int(table[row].argmax())]}
    first = by_window[str(windows[0])]
    return {"metrics": first["oracle_best_threshold"], "by_window": by_window, "per_item": per_item}


def score_text(gold: Mapping[str, GroundingQuery], records: Mapping[str, Mapping],
               unitless: str = "percent") -> dict:
    per_item, ious, kinds = {}, [], {}
    n_unparsable = 0
    for qid, q in gold.items():
        rec = records.get(qid)
        text = None if rec is None else answer_text(rec)
        parsed = None if rec is None else parse_time_span(text, q.duration, unitless)
        if rec is not None and parsed is None:
            n_unparsable += 1
        if parsed is not None:
            kinds[parsed[2]] = kinds.get(parsed[2], 0) + 1
        interval = None if parsed is None else parsed[:2]
        iou = interval_iou(interval, (q.start, q.end))
        ious.append(iou)
        per_item[qid] = {"pred": None if interval is None else list(interval), "iou": iou,
                         "parsed_as": None if parsed is None else parsed[2]}
    return {"metrics": summarize_ious(ious), "per_item": per_item, "n_unparsable": n_unparsable,
            "parsed_kinds": kinds}


def _load_records(path: str | Path) -> dict[str, dict]:
    out = {}
    for rec in iter_jsonl(path):
        if "id" not in rec:
            raise ValueError(f"{path}: prediction record without 'id'")
        out[str(rec["id"])] = rec
    return out


def _windows(value) -> list[int]:
    ws = [value] if isinstance(value, (int, np.integer)) else list(value)
    if not ws or any(int(w) != w or w < 0 for w in ws):
        raise ValueError(f"window(s) must be non-negative integers, got {value!r}")
    return [int(w) for w in ws]


def evaluate_files(pred_file: str, gold_file: str, protocol: str | None = None,
                   fusion: FusionParams | None = None, options: dict | None = None) -> dict:
    """Score a prediction JSONL against ``charades_sta_test.txt``.

    options: ``durations_csv`` (default: Charades_v1_test.csv beside the gold file),
    ``score_source`` ("fused" | "relevance" | "informative"); standard: ``threshold`` (0.5),
    ``window`` (0), ``anchor`` (0.0, null for none); reference: ``window`` (int or list, 8);
    text: ``unitless`` ("percent" | "seconds").
    """
    protocol = protocol or "standard"
    if protocol not in PROTOCOLS:
        raise ValueError(f"charades protocol must be one of {PROTOCOLS}, got {protocol!r}")
    options = dict(options or {})
    fusion = fusion or FusionParams()
    durations_csv = options.get("durations_csv") or default_durations_csv(gold_file)
    gold = load_gold(gold_file, durations_csv)
    source = options.get("score_source", "fused")
    if source not in SCORE_SOURCES:
        raise ValueError(f"score_source must be one of {SCORE_SOURCES}, got {source!r}")
    record = {"dataset": DATASET, "name": protocol, "gold_file": str(gold_file),
              "durations_csv": str(durations_csv), "gt_end_clipped_to_duration": True,
              "r1_iou_thresholds": list(R1_IOUS), "iou": "interval", "metrics_in_percent": True,
              "missing_prediction": "IoU 0"}

    if protocol == "text":
        unitless = options.get("unitless", "percent")
        records = _load_records(pred_file)
        result = score_text(gold, records, unitless)
        record.update(causal=None, unitless=unitless, unparsable="IoU 0 (counted, not skipped)")
        n_pred = sum(1 for q in gold if q in records)
    else:
        preds = load_predictions(pred_file)
        n_pred = sum(1 for q in gold if q in preds)
        record.update(score_source=source, fusion=fusion.to_dict() if source == "fused" else None)
        if protocol == "standard":
            threshold = float(options.get("threshold", CAUSAL_THRESHOLD))
            window = options.get("window", CAUSAL_WINDOW)
            if not isinstance(window, (int, np.integer)):
                raise ValueError(f"the standard protocol takes one integer window, got {window!r}")
            window = _windows(window)[0]
            anchor = options.get("anchor", CAUSAL_ANCHOR)
            anchor = None if anchor is None else float(anchor)
            result = score_standard(gold, preds, fusion, threshold, window, anchor, source)
            record.update(causal=True, threshold=threshold, smoothing="trailing mean", window=window,
                          normalisation="running min-max over past frames and the anchor",
                          anchor=anchor, interval_rule="longest run of frames >= threshold",
                          frame_time_convention="frame at t covers [t, t + 1/fps)")
        else:
            windows = _windows(options.get("window", REFERENCE_WINDOW))
            result = score_reference(gold, preds, fusion, windows, REFERENCE_THRESHOLDS, source)
            record.update(causal=False, oracle=True, labels=["non-causal", "oracle"],
                          smoothing="centred +-w moving average (non-causal)", windows=windows,
                          normalisation="per-video min-max over the whole video (constant -> 0)",
                          iou="frame set", gt_end_clipped_to_duration=False,
                          frame_time_convention="frame at t is in the GT when start <= t <= end",
                          thresholds=[round(float(t), 2) for t in REFERENCE_THRESHOLDS],
                          headline="per-query best-threshold oracle of the first window")
    result.update(protocol=record, n_queries=len(gold), n_predicted=n_pred, n_missing=len(gold) - n_pred,
                  n_extra_predictions=(len(records) if protocol == "text" else len(preds)) - n_pred)
    return result
