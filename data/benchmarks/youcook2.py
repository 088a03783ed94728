"""YouCook2 dense video captioning: raw files, items, gold, stream adapter and scorer.

The official evaluator is Vid2Seq's re-implementation of ranjaykrishna/densevid_eval, shipped with
MMDuet and Aha (``test/dvc/eval_dvc.py``), behind every published number. Per video:

- **Detection** at tIoU {0.3, 0.5, 0.7, 0.9}: a prediction / GT segment is covered when some pair
  has IoU *strictly* above the threshold; precision = covered predictions / #predictions, recall =
  covered GT / #GT; ``F1_Score`` = 2PR/(P+R) of the threshold-averaged P and R.
- **Captioning** at each threshold: every (prediction, GT) pair with IoU >= threshold is a pair; a
  prediction that matches nothing is paired with a random letter string (it scores 0 but counts).
  CIDEr (pycocoevalcap, IDF over the video's pairs) and METEOR 1.5 (corpus score of the video's
  pairs) on PTB-tokenised text, averaged over the thresholds.
- **SODA_c**: METEOR x IoU of every (GT, prediction) pair (tIoU threshold 0), the best
  order-preserving assignment by dynamic programming, F = 2pr/(p+r), p = score/#pred, r = score/#GT.

Metrics are per video, then averaged over videos, x100 (``n_preds`` is a plain mean). The IoU is
the official intersection / (union + 1e-8), so an IoU of exactly theta does *not* count at ">= theta".

SODA_c variants (both are always reported, ``SODA_c_official`` and ``SODA_c_corrected``; the
protocol picks the one called ``SODA_c``):

- ``official`` (the evaluator's behaviour, two quirks): (i) METEOR is called with the GT sentence
  as the *hypothesis* and the prediction as the *reference* (the opposite of the threshold METEOR;
  METEOR is not symmetric: its F-mean weights recall 9:1 and fragmentation is counted on the
  hypothesis). (ii) Predictions are keyed ``str(index)`` and the METEOR wrapper returns scores in
  the *text* order of the keys ("0", "1", "10", "11", "2", ...), which the evaluator reads as the
  numeric order: from 11 predictions in a video on, the METEOR columns are shuffled against the
  IoU matrix. fujiso/SODA, the original implementation, has quirk (i) too (it calls
  ``compute_score(res, gt)`` with the same argument swap) but not (ii) (integer keys, insertion order).
- ``corrected``: METEOR(hypothesis = prediction, reference = GT), columns in prediction order.

protocol "reference" = official scoring of the MMDuet/Aha *driver*'s conversion: the first caption
is dropped and GT videos without a prediction are skipped.

Java is needed for captions (``captions=false`` scores detection only). ``score_many`` scores
several prediction sets with one METEOR process.
"""
from __future__ import annotations

import logging
import random
import string
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from data.benchmarks import items as it
from data.benchmarks.validate import (InputError, as_bool, as_int, choice, item_id, match_ids, number,
                                      read_json_or_jsonl, resolve_protocol, response_slack, span,
                                      stream_response_times)

log = logging.getLogger(__name__)

NAME = "youcook2"
DATASET = "youcook2"
IOU_THRESHOLDS = (0.3, 0.5, 0.7, 0.9)
IOU_EPS = 1e-8  # the official evaluator's union + 1e-8
RANDOM_REF_LEN = (10, 20)  # length range of the random reference of an unmatched prediction
DEFAULT_PROTOCOL = "official"
MISSING_MODES = ("empty", "skip")
_COMMON = {"captions": True, "seed": 0, "thresholds": list(IOU_THRESHOLDS)}
PROTOCOLS: dict[str, dict[str, Any]] = {
    "official": {**_COMMON, "drop_first_caption": False, "missing": "empty"},
    "corrected": {**_COMMON, "drop_first_caption": False, "missing": "empty"},
    "reference": {**_COMMON, "drop_first_caption": True, "missing": "skip"},
}
SODA_OF = {"official": "official", "corrected": "corrected", "reference": "official"}


def resolve(protocol: str | None, options: Mapping | None) -> tuple[str, dict]:
    name, opts = resolve_protocol("YouCook2", PROTOCOLS, protocol, DEFAULT_PROTOCOL, options, aliases={"standard": "official"})
    as_bool(opts["captions"], "captions")
    as_bool(opts["drop_first_caption"], "drop_first_caption")
    as_int(opts["seed"], "seed")
    choice(opts["missing"], MISSING_MODES, "missing")
    th = opts["thresholds"]
    if not isinstance(th, (list, tuple)) or not th or not all(0 < number(t, "threshold") < 1 for t in th):
        raise ValueError(f"thresholds must be a non-empty list of IoUs in (0, 1), got {th!r}")
    return name, opts


def tunable(protocol: str, opts: Mapping) -> bool:
    return False  # responses are decided online, at inference


def headline(metrics: Mapping, protocol: str) -> tuple[str, float | None]:
    name = "SODA_c" if "SODA_c" in metrics else "F1_Score"
    return name, metrics.get(name)


# ------------------------------------------------------------------------------------ data


@dataclass
class DenseCaptions:
    segments: np.ndarray  # [K, 2] seconds
    captions: list[str] = field(default_factory=list)
    duration: float | None = None  # the video's (gold), when known: response times are checked against it
    n_clipped: int = 0  # gold segments whose end ran past ``duration`` (clipped to it)

    def __post_init__(self):
        self.segments = np.asarray(self.segments, dtype=np.float64).reshape(-1, 2)
        if len(self.segments) != len(self.captions):
            raise ValueError(f"{len(self.segments)} segments but {len(self.captions)} captions")

    def __len__(self) -> int:
        return len(self.captions)


EMPTY = DenseCaptions(np.zeros((0, 2)), [])


def _sentence(x, what: str, path=None, line=None) -> str:
    if not isinstance(x, str) or not x.strip():
        raise InputError(f"{what} must be a non-empty sentence, got {x!r}", path, line)
    return x


def load_gold(gold_file, protocol: str = DEFAULT_PROTOCOL, opts: Mapping | None = None) -> dict[str, DenseCaptions]:
    """ActivityNet-captions JSON: {video_key: {"duration", "timestamps": [[s, e]], "sentences"}}."""
    kind, data = read_json_or_jsonl(gold_file, "YouCook2 caption json")
    if kind != "json" or not isinstance(data, dict) or not data:
        raise InputError("expected a JSON object {video key: {duration, timestamps, sentences}}", gold_file)
    out = {}
    for vid, v in data.items():
        if not isinstance(v, dict) or not {"timestamps", "sentences"} <= v.keys():
            raise InputError(f"video {vid!r} lacks 'timestamps' or 'sentences'", gold_file)
        if not isinstance(v["timestamps"], list) or not isinstance(v["sentences"], list) or not v["sentences"] \
                or len(v["timestamps"]) != len(v["sentences"]):
            raise InputError(f"video {vid!r}: timestamps and sentences must be equal, non-empty lists", gold_file)
        dur = number(v["duration"], f"video {vid} duration", gold_file, positive=True) if "duration" in v else None
        spans = [span(s, f"video {vid} segment", gold_file, None, dur, beyond="clip") for s in v["timestamps"]]
        caps = [_sentence(s, f"video {vid} sentence", gold_file) for s in v["sentences"]]
        out[str(vid)] = DenseCaptions([sp[:2] for sp in spans], caps, dur, n_clipped=sum(sp[2] for sp in spans))
    if all(is_placeholder(v) for v in data.values()):
        raise InputError(f"every video's gold is the placeholder {PLACEHOLDER_SENTENCES} / {PLACEHOLDER_TIMESTAMPS} "
                         "(the test split: its labels are not public); score the val split", gold_file)
    return out


# yc2_test.json (as shipped with PDVC and the reference) gives every video this in place of labels
PLACEHOLDER_SENTENCES = ["None"]
PLACEHOLDER_TIMESTAMPS = [[0, 1]]


def is_placeholder(record: Any) -> bool:
    """A video record of a split without public labels (yc2_test.json)."""
    return (isinstance(record, dict) and record.get("sentences") == PLACEHOLDER_SENTENCES
            and record.get("timestamps") == PLACEHOLDER_TIMESTAMPS)


def responses_to_segments(responses: Iterable[Mapping], drop_first_caption: bool = False, qid: str = "",
                          path=None, line=None, duration: float | None = None, slack: float = 1.0) -> DenseCaptions:
    """Streaming responses -> captioned segments.

    Responses in time order (user turns and empty texts ignored); consecutive identical texts are
    one caption whose segment runs from the previous caption's last emission (0 for the first)
    to its own last emission. ``drop_first_caption`` reproduces the reference, which lost it.
    Times that go back, or run past ``duration`` by more than ``slack`` seconds (what
    ``validate.frame_times`` allows a stream's frames: two frame periods, at least 1 s), are refused: a stream
    writes its responses in time order within its video, and the segments are built from that
    order (re-sorting or keeping them would score another stream than the one written)."""
    turns = []
    for r in responses:
        if not isinstance(r, dict):
            raise InputError(f"item {qid}: a response must be an object, got {r!r}", path, line)
        if r.get("role", "assistant") == "user":
            continue
        text = str(r.get("content") or "").strip()
        if text:
            turns.append((number(r.get("time"), f"item {qid} response time", path, line, min_value=0.0), text))
    for (t0, _), (t1, _) in zip(turns, turns[1:]):
        if t1 < t0:
            raise InputError(f"item {qid}: responses are not in time order ({t1:g} s after {t0:g} s)", path, line)
    if turns and duration is not None and turns[-1][0] > duration + slack:
        raise InputError(f"item {qid}: a response at {turns[-1][0]:g} s, past the video's {duration:g} s "
                         "(times in milliseconds? another video's predictions?)", path, line)
    segs: list[tuple[float, float]] = []
    caps: list[str] = []
    prev_end, cur_text, cur_last = 0.0, None, None
    for time, text in turns:
        if text == cur_text:
            cur_last = time
            continue
        if cur_text is not None:
            segs.append((prev_end, cur_last))
            caps.append(cur_text)
            prev_end = cur_last
        cur_text, cur_last = text, time
    if cur_text is not None:
        segs.append((prev_end, cur_last))
        caps.append(cur_text)
    if drop_first_caption and caps:
        segs, caps = segs[1:], caps[1:]
    return DenseCaptions(np.array(segs, dtype=np.float64).reshape(-1, 2), caps)


def from_stream(stream, gold_item, protocol: str, opts: Mapping) -> DenseCaptions:
    # its frame times were checked against the video (validate.frame_times); every response must sit at one
    stream_response_times(stream.responses, stream.time, stream.id)
    return responses_to_segments(stream.responses, opts["drop_first_caption"], stream.id)


def from_record(rec: Mapping, gold_item, protocol: str, opts: Mapping, path=None, line=None) -> DenseCaptions:
    """A JSONL record with ``responses`` (scores not needed)."""
    if "responses" not in rec:
        raise InputError(f"item {rec.get('id')}: expected 'responses' (streaming predictions)", path, line)
    # run_benchmark records carry their fps: responses come at frame times
    return responses_to_segments(rec["responses"] or [], opts["drop_first_caption"], str(rec.get("id")), path, line,
                                 gold_item.duration, response_slack(rec.get("fps")))


def record_id(rec: Mapping, path=None, line=None) -> str:
    if "id" not in rec:
        raise InputError("prediction record without 'id'", path, line)
    return item_id(rec["id"], "id", path, line)


def from_document(data: Any, path=None) -> dict[str, DenseCaptions]:
    """A densevid JSON ({"results": {vid: [{timestamp, sentence}]}} or {vid: [...]}) with ready segments."""
    data = data.get("results", data) if isinstance(data, dict) else None
    if not isinstance(data, dict) or not data:
        raise InputError("expected a densevid JSON {video: [{timestamp, sentence}]} (optionally under 'results')", path)
    out = {}
    for vid, entries in data.items():
        if not isinstance(entries, list):
            raise InputError(f"video {vid!r}: expected a list of {{timestamp, sentence}}", path)
        segs, caps = [], []
        for e in entries:
            if not isinstance(e, dict) or "timestamp" not in e:
                raise InputError(f"video {vid!r}: bad entry {e!r}", path)
            segs.append(span(e["timestamp"], f"video {vid} predicted segment", path)[:2])
            caps.append(_sentence(e.get("sentence", e.get("caption")), f"video {vid} predicted caption", path))
        out[item_id(vid, "video key", path)] = DenseCaptions(segs, caps)
    return out


# ------------------------------------------------------------------------ detection + SODA


def segment_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """The official tIoU: intersection / (union + 1e-8); disjoint segments have union = sum of lengths."""
    s1, e1, s2, e2 = min(a), max(a), min(b), max(b)
    inter = max(0.0, min(e1, e2) - max(s1, s2))
    union = min(max(e1, e2) - min(s1, s2), (e1 - s1) + (e2 - s2))
    return inter / (union + IOU_EPS)


def iou_matrix(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """[n_gold, n_pred] IoU matrix."""
    return np.array([[segment_iou(p, g) for p in pred] for g in gold]).reshape(len(gold), len(pred))


def detection_scores(ious: np.ndarray, thresholds: Sequence[float] = IOU_THRESHOLDS) -> tuple[list[float], list[float]]:
    """Precision and recall per threshold from a [n_gold, n_pred] IoU matrix (strict IoU > thr)."""
    n_gold, n_pred = ious.shape
    precision, recall = [], []
    for thr in thresholds:
        hit = ious > thr
        precision.append(float(hit.any(axis=0).sum()) / max(n_pred, 1))
        recall.append(float(hit.any(axis=1).sum()) / n_gold)
    return precision, recall


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def ordered_assignment_score(scores: np.ndarray) -> float:
    """Best total of a one-to-one, order-preserving matching of rows to columns (SODA's DP; scores >= 0)."""
    m, n = scores.shape
    dp = np.zeros((m + 1, n + 1))
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            dp[i, j] = max(dp[i - 1, j], dp[i, j - 1], dp[i - 1, j - 1] + scores[i - 1, j - 1])
    return float(dp[m, n])


def soda_c(ious: np.ndarray, meteor: np.ndarray) -> float:
    """SODA_c F-measure from [n_gold, n_pred] IoU and METEOR matrices (tIoU threshold 0)."""
    n_gold, n_pred = ious.shape
    if n_pred == 0 or n_gold == 0:
        return 0.0
    best = ordered_assignment_score(ious * meteor)
    return f1(best / n_pred, best / n_gold)


def official_column_order(n_pred: int) -> list[int]:
    """Which prediction's METEOR score the official evaluator puts in column j: the keys str(0..n-1)
    sorted as text (identity below 11 predictions; then 0, 1, 10, 11, ..., 2, ...)."""
    return [int(k) for k in sorted(str(i) for i in range(n_pred))]


def soda_pairs(ious: np.ndarray, variant: str) -> list[tuple[int, int, int]]:
    """(gold row, matrix column, prediction whose METEOR fills that cell) for the cells with IoU > 0
    (cells with IoU 0 add nothing to IoU x METEOR, so their METEOR is never needed)."""
    order = official_column_order(ious.shape[1]) if variant == "official" else list(range(ious.shape[1]))
    return [(int(g), int(j), order[int(j)]) for g, j in zip(*np.nonzero(ious > 0))]


def caption_pairs(ious: np.ndarray, threshold: float) -> list[tuple[int, int | None]]:
    """(pred, gold) pairs with IoU >= threshold, in pred order; (pred, None) for an unmatched pred."""
    pairs: list[tuple[int, int | None]] = []
    for p in range(ious.shape[1]):
        matched = np.flatnonzero(ious[:, p] >= threshold)
        if matched.size:
            pairs.extend((p, int(g)) for g in matched)
        else:
            pairs.append((p, None))
    return pairs


def _random_reference(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(*RANDOM_REF_LEN)))


# -------------------------------------------------------------------------------- scoring


def _caption_metrics(preds, gold, ious, per_video, thresholds, rng, meteor) -> None:
    from data.benchmarks.captions import MeteorSession, cider_score, ptb_tokenize

    raw = [c for v in gold.values() for c in v.captions] + [c for v in gold for c in preds.get(v, EMPTY).captions]
    tok = dict(zip(raw, ptb_tokenize(raw)))
    groups: list[tuple[str, list[tuple[str, str]]]] = []  # (video, (hypothesis, reference) pairs) per threshold
    soda: dict[str, dict[str, list[tuple[int, int, tuple[str, str]]]]] = {}
    for vid, g in gold.items():
        p = preds.get(vid, EMPTY)
        hyps, refs = [tok[c] for c in p.captions], [tok[c] for c in g.captions]
        for thr in thresholds:
            groups.append((vid, [(hyps[pi], refs[gi] if gi is not None else _random_reference(rng))
                                 for pi, gi in caption_pairs(ious[vid], thr)]))
        soda[vid] = {  # official: GT as hypothesis, prediction as reference (quirk i), shuffled columns (quirk ii)
            "official": [(gi, j, (refs[gi], hyps[pi])) for gi, j, pi in soda_pairs(ious[vid], "official")],
            "corrected": [(gi, j, (hyps[pi], refs[gi])) for gi, j, pi in soda_pairs(ious[vid], "corrected")]}
    own = meteor is None
    session = MeteorSession() if own else meteor
    try:
        flat = [pr for _, pairs in groups for pr in pairs]
        soda_flat = [pr for v in soda.values() for cells in v.values() for _, _, pr in cells]
        log.info("YouCook2: METEOR on %d caption pairs and %d SODA_c pairs", len(flat), len(soda_flat))
        stats = dict(zip(flat + soda_flat, session.stats(flat + soda_flat)))
        corpus = iter(session.corpus_scores([[stats[pr] for pr in pairs] for _, pairs in groups if pairs]))
        seg = dict(zip(soda_flat, session.segment_scores([stats[pr] for pr in soda_flat])))
    finally:
        if own:
            session.close()
    by_video: dict[str, dict[str, list[float]]] = {vid: {"CIDEr": [], "METEOR": []} for vid in gold}
    for vid, pairs in groups:
        by_video[vid]["CIDEr"].append(cider_score(pairs))
        by_video[vid]["METEOR"].append(float(np.nan_to_num(next(corpus))) if pairs else 0.0)
    for vid in gold:
        row = per_video[vid]
        row["CIDEr"] = float(np.mean(by_video[vid]["CIDEr"]))
        row["METEOR"] = float(np.mean(by_video[vid]["METEOR"]))
        for variant, cells in soda[vid].items():
            met = np.zeros(ious[vid].shape)
            for gi, j, pr in cells:
                met[gi, j] = seg[pr]
            row[f"SODA_c_{variant}"] = soda_c(ious[vid], met)


def score(preds: Mapping[str, DenseCaptions], gold: Mapping[str, DenseCaptions], protocol: str | None = None,
          options: Mapping | None = None, meteor=None) -> dict:
    """Pure scorer. A GT video without prediction scores as empty (``missing="empty"``) or is left out
    ("skip", the reference driver); a prediction for an unknown video is refused. ``meteor``: a
    running ``captions.MeteorSession`` to reuse (else one is started and closed here)."""
    name, opts = resolve(protocol, options)
    keys, id_record = match_ids(preds, gold, missing="count" if opts["missing"] == "empty" else "drop", what="video")
    thresholds = tuple(float(t) for t in opts["thresholds"])
    rng = random.Random(int(opts["seed"]))
    sub = {v: gold[v] for v in keys}
    per_video: dict[str, dict] = {}
    ious = {}
    for vid in keys:
        p, g = preds.get(vid, EMPTY), sub[vid]
        ious[vid] = iou_matrix(p.segments, g.segments)
        precision, recall = detection_scores(ious[vid], thresholds)
        pm, rm = float(np.mean(precision)), float(np.mean(recall))
        row = {f"Precision@{t}": v for t, v in zip(thresholds, precision)}
        row.update({f"Recall@{t}": v for t, v in zip(thresholds, recall)})
        row.update(Precision_Mean=pm, Recall_Mean=rm, F1_Score=f1(pm, rm), n_preds=len(p))
        per_video[vid] = row
    if opts["captions"]:
        _caption_metrics(preds, sub, ious, per_video, thresholds, rng, meteor)
        for row in per_video.values():
            row["SODA_c"] = row[f"SODA_c_{SODA_OF[name]}"]
    names = [k for k in next(iter(per_video.values())) if k != "n_preds"]
    metrics = {k: float(np.mean([v[k] for v in per_video.values()]) * 100) for k in names}
    metrics["n_preds"] = float(np.mean([v["n_preds"] for v in per_video.values()]))
    # the dataset-level harmonic mean of the averaged P and R (F1_Score is the mean of per-video F1s)
    metrics["F1_of_mean_PR"] = f1(metrics["Precision_Mean"], metrics["Recall_Mean"])
    metrics["n_videos"] = len(keys)
    record = {
        "dataset": DATASET, "protocol": name,
        "evaluator": "Vid2Seq/densevid_eval re-implementation as shipped with MMDuet/Aha (per video, then averaged x100)",
        "iou_thresholds": list(thresholds), "iou": "intersection / (union + 1e-8)", "detection_match": "iou > threshold",
        "caption_match": "iou >= threshold", "unmatched_prediction": "paired with a random string (scores 0)",
        "seed": int(opts["seed"]), "captions": opts["captions"],
        "gt_end": "clipped to the video duration (no real YouCook2 segment runs past it)",
        "n_gt_segments_clipped": int(sum(sub[v].n_clipped for v in keys)),
        "cider": "pycocoevalcap Cider(n=4, sigma=6), IDF per video",
        "meteor": "METEOR 1.5 (pycocoevalcap jar, -l en -norm), corpus score per video",
        "tokenizer": "pycocoevalcap PTBTokenizer (stanford-corenlp-3.4.1)",
        "soda_c": {"headline": SODA_OF[name],
                   "official": "METEOR(hypothesis = GT, reference = prediction) x IoU, METEOR columns in the text order "
                               "of str(index) keys (shuffled from 11 predictions on), tIoU 0, order-preserving DP",
                   "corrected": "METEOR(hypothesis = prediction, reference = GT) x IoU, columns in prediction order, "
                                "tIoU 0, order-preserving DP"} if opts["captions"] else None,
        "f1": "F1_Score = mean over videos of 2PR/(P+R) of threshold-averaged P, R",
        "missing_video": {"empty": "empty prediction (scores 0)", "skip": "not scored (reference driver)"}[opts["missing"]],
        "drop_first_caption": opts["drop_first_caption"],
        "stream_conversion": "consecutive identical responses merged; span = previous caption's last emission (0 for "
                             "the first) .. own last emission", "ids": id_record}
    return {"metrics": metrics, "per_item": per_video, "record": record}


def score_many(pred_sets: Sequence[Mapping[str, DenseCaptions]], gold: Mapping[str, DenseCaptions],
               protocol: str | None = None, options: Mapping | None = None) -> list[dict]:
    """``score`` of several prediction sets with one METEOR process (it takes seconds to start)."""
    _, opts = resolve(protocol, options)
    if not opts["captions"] or len(pred_sets) < 2:
        return [score(p, gold, protocol, options) for p in pred_sets]
    from data.benchmarks.captions import MeteorSession

    with MeteorSession() as m:
        return [score(p, gold, protocol, options, meteor=m) for p in pred_sets]


# ------------------------------------------------------------------------- raw annotations

DEFAULT_TEMPLATE = "random"
DEFAULT_VIDEO_TEMPLATE = "{youtube_id}.mp4"
VIDEO_FIELDS = ("key", "youtube_id")


def convert(input_path, *, seed: int = 0, template: str = DEFAULT_TEMPLATE,
            video_template: str = DEFAULT_VIDEO_TEMPLATE) -> list[dict]:
    """ActivityNet-captions json ``{"v_<ytid>": {duration, timestamps, sentences}}`` -> DVC items.

    ``template`` picks among DVC_INSTRUCTIONS (``random`` seeded per video, or ``fixed:N``). Spans
    are validated like the gold (reversed / negative refused, an end past the duration clipped)."""
    from data.prompts import pick_instruction

    kind, data = read_json_or_jsonl(input_path, "YouCook2 caption json")
    if kind != "json" or not isinstance(data, dict) or not data:
        raise InputError("expected a non-empty object {video key: {duration, timestamps, sentences}}", input_path)
    out = []
    unlabelled = all(is_placeholder(rec) for rec in data.values())
    if unlabelled:
        log.warning("%s: every video's gold is the placeholder %s / %s (the test split: labels not public); "
                    "the items carry no gold (they can be streamed, not scored)", input_path, PLACEHOLDER_SENTENCES,
                    PLACEHOLDER_TIMESTAMPS)
    for key, rec in data.items():
        if not isinstance(rec, dict) or not {"duration", "timestamps", "sentences"} <= rec.keys():
            raise InputError(f"video {key!r} lacks duration/timestamps/sentences", input_path)
        if len(rec["timestamps"]) != len(rec["sentences"]):
            raise InputError(f"video {key!r}: {len(rec['timestamps'])} timestamps but {len(rec['sentences'])} sentences",
                             input_path)
        dur = number(rec["duration"], f"{key} duration", input_path, positive=True)
        answer = [{"time": list(span(s, f"{key} timestamp", input_path, None, dur, beyond="clip")[:2]),
                   "content": _sentence(c, f"{key} sentence", input_path).strip()}
                  for s, c in zip(rec["timestamps"], rec["sentences"])]
        youtube_id = key[2:] if key.startswith("v_") else key
        query, index = pick_instruction(template, seed, key)
        video = it.format_video(video_template, "youcook2", VIDEO_FIELDS, key=key, youtube_id=youtube_id)
        out.append(it.make_item(key, "youcook2", video, query, duration=dur, template_id=index,
                                gold=None if unlabelled else {"answer": answer}))
    return out


def gold_record(duration: float, segments, sentences) -> dict:
    """One video of the ActivityNet-captions JSON."""
    return {"duration": float(duration), "timestamps": [list(map(float, s)) for s in segments],
            "sentences": list(sentences)}

