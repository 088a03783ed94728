"""Charades-STA temporal grounding: one predicted interval per (video, sentence) query.

Gold: ``charades_sta_<split>.txt`` lines ``"vid start end##sentence"``; item id ``"{vid}#{i}"``
with i the 0-based line index; durations from ``Charades_v1_<split>.csv`` (``id``, ``length``).
A GT end past the video's length is **clipped** to it (gsig/charades-algorithms issue #5; counted
in the record); a reversed or empty span, a negative start or a start past the end is refused.

Protocols:

``"standard"`` (default, causal)
    R1@{0.3,0.5,0.7} (% of queries whose interval has IoU >= m) and mIoU, as Moment-DETR's
    ``compute_mr_r1`` with one prediction per query. The interval is either given (a plain record
    ``{"id", "pred": [start, end]}``) or made from a stream by the post-processor's causal rule
    (``test.postprocess.causal_interval``: trailing mean, running min-max with an anchor,
    threshold, longest run; nothing after the current frame is used). No interval: IoU 0.
``"reference"`` (MMDuet / Aha ``evaluate.py --func grounding``; labelled non-causal and oracle)
    Centred +-w moving average, whole-video min-max, frame-set IoU between {frames >= theta} and
    {frames inside the GT span as annotated}, one row per theta in arange(0.30, 0.71, 0.02), plus
    the per-query best-threshold oracle (optimistic: it picks theta per query with the GT). Like the
    reference, which loops over its predictions, only the predicted queries are scored (the missing
    ones counted: ``n_missing``); option ``missing="zero"`` scores them IoU 0 instead.
``"text"`` (offline models that answer in words)
    The span is parsed from the answer (``parse_time_span``); an unparsable answer is a miss
    (IoU 0), counted, never skipped (the reference skipped them, inflating the baselines).

A gold query without a prediction scores IoU 0 (counted; the reference protocols skip it, as the
reference did); a prediction for an unknown id is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from data.benchmarks import items as it
from data.benchmarks.validate import (InputError, as_int, choice, item_id, match_ids, number, read_text,
                                      resolve_protocol, span)

NAME = "charades"
DATASET = "charades_sta"
DEFAULT_PROTOCOL = "standard"
R1_IOUS = (0.3, 0.5, 0.7)
REFERENCE_WINDOW = 8  # the paper's "AHA (w=8)" row
# compared exactly as the reference does (np.arange floats), labelled with 2 decimals
REFERENCE_THRESHOLDS = np.arange(0.30, 0.71, 0.02)
SCORE_SOURCES = ("fused", "relevance", "informative")
UNITLESS_MODES = ("percent", "seconds")
# text answers: "project" = parse_time_span (units, clock times, ranges; unparsable = IoU 0) and interval
# IoU; "reference" = the reference's offline-baseline rules (reference_text_span, span_iou_plus_one)
TEXT_RULES = ("project", "reference")
PROTOCOLS: dict[str, dict[str, Any]] = {
    "standard": {"durations_csv": None, "score_source": "fused", "threshold": 0.5, "window": 0, "anchor": 0.0,
                 "pred_beyond": "keep"},
    "reference": {"durations_csv": None, "score_source": "fused", "window": REFERENCE_WINDOW, "missing": "skip"},
    "text": {"durations_csv": None, "unitless": "percent", "rules": "project"},
}
HEADLINE = "R1@0.5"
# A plain predicted interval past the video: "keep" scores it as given (Moment-DETR's compute_mr_r1,
# the official scorer, clips only the gold), "clip" cuts it to [0, duration] first.
PRED_BEYOND = ("keep", "clip")
# a gold query without prediction under the reference protocol: "skip" (the reference's loop over its
# predictions never sees it), or "zero" (scored IoU 0, as the standard protocol does)
REFERENCE_MISSING = ("skip", "zero")


def resolve(protocol: str | None, options: Mapping | None) -> tuple[str, dict]:
    name, opts = resolve_protocol("Charades-STA", PROTOCOLS, protocol, DEFAULT_PROTOCOL, options)
    if name == "standard":
        number(opts["threshold"], "option threshold")
        as_int(opts["window"], "option window (one integer for the standard protocol)", 0)
        if opts["anchor"] is not None:
            number(opts["anchor"], "option anchor")
        choice(opts["pred_beyond"], PRED_BEYOND, "pred_beyond")
    if name == "reference":
        windows(opts["window"])
        choice(opts["missing"], REFERENCE_MISSING, "missing")
    if name != "text":
        choice(opts["score_source"], SCORE_SOURCES, "score_source")
    else:
        choice(opts["unitless"], UNITLESS_MODES, "unitless")
        choice(opts["rules"], TEXT_RULES, "rules")
    return name, opts


def windows(value) -> list[int]:
    ws = [value] if not isinstance(value, (list, tuple)) else list(value)
    if not ws:
        raise ValueError("window list is empty")
    return [as_int(w, "option window", 0) for w in ws]


def tunable(protocol: str, opts: Mapping) -> bool:
    return protocol != "text" and opts.get("score_source", "fused") == "fused"


def headline(metrics: Mapping, protocol: str) -> tuple[str, float | None]:
    return HEADLINE, metrics.get(HEADLINE)


def item_group(gold_item: "GroundingQuery") -> str:
    """The video of a query: k-fold tuning keeps a video's queries in one fold."""
    return gold_item.video


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


def read_durations(csv_path) -> dict[str, float]:
    """Video id -> length in seconds from a Charades_v1_*.csv (columns ``id`` and ``length``).

    A video listed twice is refused (``file:line``) unless both rows are identical."""
    rows = it.rows_by_key(it.read_table(csv_path, "Charades csv", ("id", "length")), "id", csv_path, "Charades csv")
    return {vid: number(r["length"], f"{vid} length", csv_path, line, positive=True) for vid, (line, r) in rows.items()}


def default_durations_csv(gold_file) -> Path:
    """The Charades_v1_<split>.csv beside charades_sta_<split>.txt (else train for a *train* file, else test)."""
    gold_file = Path(gold_file)
    m = re.fullmatch(r"charades_sta_(\w+)\.txt", gold_file.name)
    split = m.group(1) if m else ("train" if "train" in gold_file.name else "test")
    return gold_file.with_name(f"Charades_v1_{split}.csv")


def parse_line(line: str, path, line_no: int) -> tuple[str, float, float, str]:
    """``"vid start end##sentence"`` -> (vid, start, end, sentence), numbers checked."""
    head, sep, sentence = line.partition("##")
    parts = head.split()
    if not sep or len(parts) != 3 or not sentence.strip():
        raise InputError(f"expected 'vid start end##sentence', got {line!r}", path, line_no)
    return (parts[0], number(parts[1], "start", path, line_no), number(parts[2], "end", path, line_no),
            sentence.strip())


def iter_queries(gold_file, durations: Mapping[str, float], skipped: it.Skipped | None = None):
    """(line index, GroundingQuery) of every valid line (blank lines keep their index)."""
    for i, line in enumerate(read_text(gold_file, "Charades-STA annotation").splitlines()):
        if not line.strip():
            continue  # a blank line keeps its index so later ids stay line numbers
        try:
            vid, s, e, sentence = parse_line(line, gold_file, i + 1)
            if vid not in durations:
                raise InputError(f"video {vid!r} has no length in the durations csv", gold_file, i + 1)
            dur = durations[vid]
            start, end, _ = span([s, e], f"span of {vid}", gold_file, i + 1, dur, beyond="clip", allow_empty=False)
        except InputError as err:
            if skipped is None:
                raise
            skipped.handle(err)
            continue
        yield i, GroundingQuery(f"{vid}#{i}", vid, sentence, start, end, dur, e)


def load_gold(gold_file, protocol: str = DEFAULT_PROTOCOL, opts: Mapping | None = None) -> dict[str, GroundingQuery]:
    csv = (opts or {}).get("durations_csv") or default_durations_csv(gold_file)
    return {q.id: q for _, q in iter_queries(gold_file, read_durations(csv))}


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


def frame_set_iou(pred_mask, gold_mask) -> float:
    p, g = np.asarray(pred_mask, dtype=bool), np.asarray(gold_mask, dtype=bool)
    if p.shape != g.shape:
        raise ValueError(f"masks differ in shape: {p.shape} vs {g.shape}")
    union = np.logical_or(p, g).sum()
    return float(np.logical_and(p, g).sum() / union) if union else 0.0


def reference_ious(times, normalised, gold: tuple[float, float], thresholds=REFERENCE_THRESHOLDS) -> np.ndarray:
    """Frame-set IoU at every threshold for one query (reference protocol), from normalised scores."""
    t = np.asarray(times, dtype=np.float64)
    y = np.asarray(normalised, dtype=np.float64)
    gold_mask = (t >= gold[0]) & (t <= gold[1])
    return np.array([frame_set_iou(y >= th, gold_mask) for th in thresholds])


# ---------------------------------------------------------------------------- text answers


_NUM = r"(?<![\w.])(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
_CLOCK = r"(\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?)"
_SEP = r"\s*(?:-|–|—|~|to|and|until|till)\s*"
_UNIT = r"(%|percent\b|seconds?\b|secs?\b|s\b)?"
_CLOCK_RANGE = re.compile(_CLOCK + _SEP + _CLOCK)
_NUM_RANGE = re.compile(_NUM + r"\s*" + _UNIT + _SEP + _NUM + r"\s*" + _UNIT)
_COARSE = ((re.compile(r"\bbeginning\b|\bstart of the video\b"), 0), (re.compile(r"\bmiddle\b"), 1),
           (re.compile(r"\bend\b|\bending\b"), 2))


def _clock_seconds(s: str) -> float:
    value = 0.0
    for part in s.split(":"):
        value = value * 60 + float(part)
    return value


def parse_time_span(text: str | None, duration: float, unitless: str = "percent") -> tuple[float, float, str] | None:
    """(start_s, end_s, kind) parsed from an answer, clipped to [0, duration]; None if unparsable.

    ``kind``: "clock", "seconds", "percent" or "coarse". Numbers may use scientific notation
    ("1e-05 - 3.2 seconds" is [0.00001, 3.2]). Numbers without a unit are read as ``unitless``
    ("percent": VTimeLLM's "From 10 to 45"; "seconds"). A percentage above 100 is unparsable."""
    choice(unitless, UNITLESS_MODES, "unitless")
    if not text or duration <= 0:
        return None
    s = text.lower()
    found: tuple[float, float] | None = None
    m = _CLOCK_RANGE.search(s)
    if m:
        found, kind = (_clock_seconds(m.group(1)), _clock_seconds(m.group(2))), "clock"
    elif (m := _NUM_RANGE.search(s)):
        a, unit_a, b, unit_b = float(m.group(1)), m.group(2), float(m.group(3)), m.group(4)
        unit = unit_b or unit_a
        if unit in ("%", "percent") or (unit is None and unitless == "percent"):
            if max(a, b) > 100:
                return None
            found, kind = (a / 100 * duration, b / 100 * duration), "percent"
        else:
            found, kind = (a, b), "seconds"
    else:
        thirds = [k for pattern, k in _COARSE if pattern.search(s)]
        if thirds:
            found, kind = (min(thirds) * duration / 3, (max(thirds) + 1) * duration / 3), "coarse"
    if found is None:
        return None
    lo, hi = sorted(found)
    return min(max(lo, 0.0), duration), min(max(hi, 0.0), duration), kind


_REFERENCE_NUMBER = re.compile(r"\d+\.?\d*")


def reference_text_span(text: str | None, duration: float) -> tuple[float, float] | None:
    """The reference's parse of an offline baseline's answer (Aha/MMDuet ``test/evaluate.py``, grounding
    without ``--is_online_model``): exactly two unsigned numbers, else the query is skipped (None); when
    the lower-cased text contains "from" and "to" anywhere (VTimeLLM's "From xx to yy"), they are
    percentages of the duration. Nothing is sorted or clipped."""
    if not text:
        return None
    nums = _REFERENCE_NUMBER.findall(text)
    if len(nums) != 2:
        return None
    start, end = float(nums[0]), float(nums[1])
    low = text.lower()
    if "from" in low and "to" in low:
        start, end = start / 100 * duration, end / 100 * duration
    return start, end


def span_iou_plus_one(pred: Sequence[float], gold: Sequence[float]) -> float:
    """The reference's ``calculate_iou_span``: inclusive-integer convention (+1 on both lengths)."""
    (ps, pe), (gs, ge) = pred, gold
    inter = max(0.0, min(pe, ge) - max(ps, gs) + 1)
    union = max(pe, ge) - min(ps, gs) + 1
    return 0.0 if union == 0 else inter / union


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
        if isinstance(r, dict) and r.get("role", "assistant") != "user" and isinstance(r.get("content"), str):
            return r["content"]
    return None


# ---------------------------------------------------------------------------- predictions

INTERVAL_KEYS = ("pred", "interval", "timestamp")


def from_stream(stream, gold_item: GroundingQuery, protocol: str, opts: Mapping) -> dict:
    if protocol == "standard":
        anchor = opts["anchor"]
        iv = stream.interval(float(opts["threshold"]), int(opts["window"]), None if anchor is None else float(anchor),
                             gold_item.duration, opts["score_source"])
        return {"interval": iv, "source": "stream"}
    if protocol == "reference":
        return {"times": np.asarray(stream.time), "normalised": {w: stream.centred_normalised(w, opts["score_source"])
                                                                 for w in windows(opts["window"])}}
    raise InputError(f"query {stream.id}: the text protocol scores text answers, not score streams")


def from_record(rec: Mapping, gold_item: GroundingQuery, protocol: str, opts: Mapping, path=None, line=None) -> dict:
    qid = gold_item.id
    if protocol == "text":
        text = answer_text(rec)
        if opts["rules"] == "reference":  # the reference scales by the record's own video_duration
            given = rec.get("video_duration")
            dur = gold_item.duration if given is None else number(given, f"query {qid} video_duration", path, line,
                                                                  positive=True)
            return {"interval": reference_text_span(text, dur), "duration_from": "gold" if given is None else "record"}
        parsed = parse_time_span(text, gold_item.duration, opts["unitless"])
        return {"interval": None if parsed is None else parsed[:2], "parsed_as": None if parsed is None else parsed[2],
                "unparsable": parsed is None}
    if protocol == "reference":
        raise InputError(f"query {qid}: the reference protocol needs per-frame score streams", path, line)
    key = next((k for k in INTERVAL_KEYS if k in rec), None)
    if key is None:
        raise InputError(f"query {qid}: expected 'frames' (a score stream) or a plain interval "
                         f"{{'id', 'pred': [start, end]}}", path, line)
    raw = rec[key]
    if isinstance(raw, list) and raw and isinstance(raw[0], list):  # [[s, e]] or [[s, e, score], ...]: the first
        raw = raw[0][:2]
    s, e, _ = span(raw, f"query {qid} '{key}'", path, line)  # as given; the scorer applies pred_beyond
    return {"interval": (s, e), "source": "interval"}


def record_id(rec: Mapping, path=None, line=None) -> str:
    for k in ("id", "qid"):
        if k in rec:
            return item_id(rec[k], k, path, line)
    raise InputError("prediction record without 'id'", path, line)


# ------------------------------------------------------------------------------------ score


def score(preds: Mapping[str, dict], gold: Mapping[str, GroundingQuery], protocol: str | None = None,
          options: Mapping | None = None) -> dict:
    """Pure scorer: {query id: prediction} against the gold queries; a missing query scores IoU 0
    (the reference protocols skip it, counted)."""
    name, opts = resolve(protocol, options)
    skip_missing = name == "reference" and opts["missing"] == "skip"
    qids, id_record = match_ids(preds, gold, missing="drop" if skip_missing else "count", what="query")
    record: dict[str, Any] = {"dataset": DATASET, "protocol": name, "r1_iou_thresholds": list(R1_IOUS),
                              "metrics_in_percent": True, "missing_prediction": "IoU 0",
                              "gt_end": "clipped to the video duration", "ids": id_record,
                              "n_gt_end_clipped": sum(1 for q in qids if gold[q].raw_end > gold[q].end)}
    per_item: dict[str, dict] = {}
    if name == "reference":
        ws = windows(opts["window"])
        labels = [f"{th:.2f}" for th in REFERENCE_THRESHOLDS]
        by_window = {}
        for w in ws:
            table = np.zeros((len(qids), len(REFERENCE_THRESHOLDS)))
            for row, qid in enumerate(qids):
                p = preds.get(qid)
                if p is not None and len(p["times"]):  # the reference marks frames with the annotation as written
                    table[row] = reference_ious(p["times"], p["normalised"][w], (gold[qid].start, gold[qid].raw_end))
            oracle = table.max(axis=1)
            by_window[str(w)] = {"by_threshold": {lab: summarize_ious(table[:, j]) for j, lab in enumerate(labels)},
                                 "oracle_best_threshold": summarize_ious(oracle)}
            for row, qid in enumerate(qids):
                per_item.setdefault(qid, {})[f"w{w}"] = {"oracle_iou": float(oracle[row]),
                                                         "best_threshold": labels[int(table[row].argmax())]}
        metrics = {**by_window[str(ws[0])]["oracle_best_threshold"], "n_scored": len(qids),
                   "n_missing": id_record["n_missing"], "by_window": by_window}
        record.update(causal=False, oracle=True, labels=["non-causal", "oracle"], windows=ws, iou="frame set",
                      smoothing="centred +-w moving average (non-causal)", gt_end="as annotated (not clipped)",
                      normalisation="per-video min-max over the whole video (constant -> 0)",
                      frame_time_convention="frame at t is in the GT when start <= t <= end",
                      thresholds=[round(float(t), 2) for t in REFERENCE_THRESHOLDS],
                      headline="per-query best-threshold oracle of the first window", score_source=opts["score_source"],
                      missing_prediction="skipped (the reference scores the queries it has predictions for; counted "
                      "in n_missing)" if skip_missing else "IoU 0")
        return {"metrics": metrics, "per_item": per_item, "record": record}
    if name == "text" and opts["rules"] == "reference":
        return _score_reference_text(preds, gold, qids, record)
    ious = []
    kinds: dict[str, int] = {}
    beyond = {"end": 0, "start": 0}  # plain intervals ending / starting past their video
    for qid in qids:
        p = preds.get(qid) or {"interval": None}
        interval = p["interval"]
        if interval is not None and p.get("source") == "interval":
            dur = gold[qid].duration
            beyond["end"] += interval[1] > dur
            beyond["start"] += interval[0] >= dur
            if opts.get("pred_beyond") == "clip":
                interval = (min(interval[0], dur), min(interval[1], dur))
        iou = interval_iou(interval, (gold[qid].start, gold[qid].end))
        ious.append(iou)
        per_item[qid] = {"pred": None if interval is None else list(interval), "iou": iou}
        if name == "text" and qid in preds:
            per_item[qid]["parsed_as"] = p["parsed_as"]
            kinds[p["parsed_as"] or "unparsable"] = kinds.get(p["parsed_as"] or "unparsable", 0) + 1
    metrics = {**summarize_ious(ious), "n_no_interval": sum(1 for v in per_item.values() if v["pred"] is None)}
    if any(p.get("source") == "interval" for p in preds.values()):
        metrics.update(n_pred_end_past_video=beyond["end"], n_pred_start_past_video=beyond["start"])
    record.update(iou="interval")
    if name == "text":
        metrics["n_unparsable"] = kinds.get("unparsable", 0)
        record.update(causal=None, unitless=opts["unitless"], parsed_kinds=kinds,
                      unparsable="IoU 0 (counted, not skipped)")
    else:
        record.update(causal=True, threshold=float(opts["threshold"]), window=int(opts["window"]),
                      anchor=opts["anchor"], score_source=opts["score_source"],
                      stream_rule="test.postprocess.causal_interval: trailing mean, running min-max over past frames "
                                  "and the anchor, frames >= threshold, longest run",
                      frame_time_convention="frame at t covers [t, t + 1/fps)",
                      plain_intervals={"keep": "scored as given (official: only the gold end is clipped)",
                                       "clip": "clipped to [0, duration]"}[opts["pred_beyond"]])
    return {"metrics": metrics, "per_item": per_item, "record": record}


def _score_reference_text(preds, gold, qids, record) -> dict:
    """Offline baselines under the reference's rules: only the queries whose answer holds exactly two
    numbers are scored (the others, and missing ones, are skipped: counted, not in the mean), IoU +1
    against the gold span as annotated (end not clipped)."""
    ious, per_item, scored_from = [], {}, {}
    for qid in qids:
        p = preds.get(qid)
        interval = None if p is None else p["interval"]
        if interval is None:
            per_item[qid] = {"pred": None, "iou": None, "skipped": "missing" if p is None else "not two numbers"}
            continue
        iou = span_iou_plus_one(interval, (gold[qid].start, gold[qid].raw_end))
        ious.append(iou)
        per_item[qid] = {"pred": list(interval), "iou": iou}
        scored_from[p["duration_from"]] = scored_from.get(p["duration_from"], 0) + 1
    if not ious:
        raise InputError("the reference text rules skipped every query (no answer holds exactly two numbers)")
    metrics = {**summarize_ious(ious), "n_scored": len(ious), "n_skipped": len(qids) - len(ious)}
    record.update(causal=None, rules="reference", iou="interval, +1 on both lengths (calculate_iou_span)",
                  missing_prediction="skipped",
                  gt_end="as annotated (not clipped)", skipped="queries without exactly two numbers, and missing "
                  "ones, are left out of the mean (the reference's `continue`; this inflates baselines)",
                  percent_rule="'from' and 'to' anywhere in the lower-cased answer: percentages of video_duration",
                  duration_from=scored_from)
    return {"metrics": metrics, "per_item": per_item, "record": record}


# ------------------------------------------------------------------------- raw annotations

DEFAULT_TEMPLATE = "random"
DEFAULT_VIDEO_TEMPLATE = "{vid}.mp4"
VIDEO_FIELDS = ("vid",)


def convert(input_path, lengths_path, *, seed: int = 0, template: str = DEFAULT_TEMPLATE,
            video_template: str = DEFAULT_VIDEO_TEMPLATE, on_invalid: str = "refuse") -> tuple[list[dict], list[str]]:
    """(items, skipped lines): id ``"{vid}#{i}"`` (i = 0-based line index), span clipped to the video.

    A reversed / empty / out-of-video span or an unknown video is refused with ``file:line``
    (``on_invalid="skip"`` drops the line instead and returns why)."""
    from data.prompts import render_query

    skipped = it.Skipped(on_invalid)
    out = []
    for _, q in iter_queries(input_path, read_durations(lengths_path), skipped):
        query, template_id = render_query(q.sentence, template, seed, q.id)
        out.append(it.make_item(q.id, "charades", it.format_video(video_template, "charades", VIDEO_FIELDS, vid=q.video),
                                query, duration=q.duration, template_id=template_id,
                                gold={"timestamps": [[q.start, q.end]], "sentence": q.sentence}))
    return out, skipped.lines


def sta_text(rows) -> str:
    """charades_sta text from (vid, start, end, sentence) rows."""
    return "".join(f"{vid} {s:.2f} {e:.2f}##{sentence}\n" for vid, s, e, sentence in rows)


def lengths_csv_text(rows) -> str:
    """Charades_v1 csv (``id,length``) from (vid, seconds) rows."""
    return "id,length\n" + "".join(f"{vid},{float(sec):.2f}\n" for vid, sec in rows)
