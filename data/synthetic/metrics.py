"""What only the synthetic set can measure, because it knows every event's colour, kind and motion.

Pure functions of (stream predictions, the split's ``ground_truth.json`` records):

* ``binding_aucs``: does the relevance score read the query? Frames during a *matching* event
  against frames during a *distractor*, split by what the distractor changes (colour, kind,
  motion, several): ROC AUC of the relevance head per split (1 = every matching frame above every
  distractor frame, 0.5 = the query is ignored). Frames are pooled over the videos, as streamed
  (the online engine's scores: no look-ahead, the cache policy of the run).
* ``response_accuracy``: do the responses name what is on screen? Each response is compared with
  the event on screen when it was made (or one that ended at most ``RESPONSE_GRACE_S`` earlier:
  the engine answers after reading a frame): its colour, kind and motion words must be the
  event's. A response made when no event is on screen names nothing correctly.
* ``query_responses``: does a stream asked a query speak when the query's event happens, and only
  then? Each response is placed on the event on screen as above; precision = responses on a
  matching event / responses, recall = matching events with a response (during the event or
  within the grace after it) / matching events, F1 of the two; ``names_query`` = responses on a
  matching event that name the query's colour, kind and motion / those responses.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

from sklearn.metrics import roc_auc_score

from data.synthetic.scene import COLOURS, KINDS, MOTIONS

ATTRS = ("colour", "kind", "motion")
VOCAB = {"colour": tuple(COLOURS), "kind": KINDS, "motion": MOTIONS}
RESPONSE_GRACE_S = 1.0


def _video_key(rec: Mapping) -> str:
    return str(rec["video"]).rsplit("/", 1)[-1].removesuffix(".mp4")


def event_at(events: Sequence[Mapping], t: float, grace: float = 0.0) -> Mapping | None:
    """The event on screen at ``t`` (start <= t < end), else the latest one that ended within ``grace``."""
    for e in events:
        if e["start"] <= t < e["end"]:
            return e
    ended = [e for e in events if e["end"] <= t <= e["end"] + grace] if grace > 0 else []
    return max(ended, key=lambda e: e["end"]) if ended else None


def frame_class(event: Mapping | None) -> str:
    """calm, match, or differs:<attribute> / differs:several for a distractor."""
    if event is None:
        return "calm"
    if event["match"]:
        return "match"
    diff = [a for a in ATTRS if a in event["differs"]]
    return f"differs:{diff[0]}" if len(diff) == 1 else "differs:several"


def _auc(pos: list[float], neg: list[float]) -> float | None:
    if not pos or not neg:
        return None
    return float(roc_auc_score([1] * len(pos) + [0] * len(neg), pos + neg))


def binding_aucs(records: Iterable[Mapping], ground_truth: Sequence[Mapping]) -> dict:
    """Relevance AUCs, matching-event frames vs distractor frames (module doc); records are stream
    predictions of the split's videos, each asked that video's own query."""
    by_video = {v["video_id"]: v for v in ground_truth}
    scores: dict[str, list[float]] = {"calm": [], "match": [], **{f"differs:{a}": [] for a in ATTRS}, "differs:several": []}
    n_videos = 0
    for rec in records:
        gt = by_video.get(_video_key(rec))
        if gt is None:
            raise ValueError(f"prediction {rec.get('id')!r}: video {rec['video']!r} is not in the ground truth")
        n_videos += 1
        f = rec["frames"]
        for t, r in zip(f["time"], f["relevance"]):
            scores[frame_class(event_at(gt["events"], float(t)))].append(float(r))
    distractor = [x for k, v in scores.items() if k.startswith("differs:") for x in v]
    out = {"n_videos": n_videos, "frames": {k: len(v) for k, v in scores.items()},
           "match_vs_distractor": _auc(scores["match"], distractor),
           "event_vs_calm": _auc(scores["match"] + distractor, scores["calm"])}
    for k in scores:
        if k.startswith("differs:"):
            out[f"match_vs_{k.split(':')[1]}"] = _auc(scores["match"], scores[k])
    return out


def named(text: str) -> dict[str, str | None]:
    """The colour, kind and motion words of a response (None when it names none or several)."""
    words = re.findall(r"[a-z]+", text.lower())
    out = {}
    for attr, vocab in VOCAB.items():
        hits = {w for w in words if w in vocab}
        out[attr] = hits.pop() if len(hits) == 1 else None
    return out


def _said(rec: Mapping) -> list[tuple[float, str]]:
    """(time, text) of a stream's responses: assistant turns with some text."""
    return [(float(r["time"]), str(r["content"])) for r in rec.get("responses") or []
            if r.get("role", "assistant") != "user" and str(r.get("content") or "").strip()]


def response_accuracy(records: Iterable[Mapping], ground_truth: Sequence[Mapping],
                      grace: float = RESPONSE_GRACE_S) -> dict:
    """Fractions of responses naming the on-screen event's colour, kind, motion, and all three (module doc)."""
    by_video = {v["video_id"]: v for v in ground_truth}
    n = n_videos = 0
    right = {a: 0 for a in (*ATTRS, "all")}
    calm = 0
    examples = []
    for rec in records:
        gt = by_video.get(_video_key(rec))
        if gt is None:
            raise ValueError(f"prediction {rec.get('id')!r}: video {rec['video']!r} is not in the ground truth")
        n_videos += 1
        for t, text in _said(rec):
            n += 1
            e = event_at(gt["events"], t, grace)
            said = named(text)
            if e is None:
                calm += 1
                ok = {a: False for a in ATTRS}
            else:
                ok = {a: said[a] == e[a] for a in ATTRS}
            for a in ATTRS:
                right[a] += ok[a]
            right["all"] += all(ok.values())
            if len(examples) < 5:
                examples.append({"video": gt["video_id"], "time": t, "said": text,
                                 "on_screen": None if e is None else f"a {e['colour']} {e['kind']} {e['motion']}"})
    frac = {a: (right[a] / n if n else None) for a in right}
    return {"n_responses": n, "n_videos": n_videos, "responses_per_video": n / n_videos if n_videos else None,
            "during_calm": calm, "correct": frac, "examples": examples, "grace_s": grace}


def query_responses(records: Iterable[Mapping], ground_truth: Sequence[Mapping],
                    grace: float = RESPONSE_GRACE_S) -> dict:
    """Responses of streams asked their video's own query, against its matching events (module doc)."""
    by_video = {v["video_id"]: v for v in ground_truth}
    n = on_match = on_distractor = n_videos = n_matches = answered = naming = 0
    for rec in records:
        gt = by_video.get(_video_key(rec))
        if gt is None:
            raise ValueError(f"prediction {rec.get('id')!r}: video {rec['video']!r} is not in the ground truth")
        n_videos += 1
        said = _said(rec)
        times = [t for t, _ in said]
        query = gt["query_shape"]
        for t, text in said:
            n += 1
            e = event_at(gt["events"], t, grace)
            if e is not None and e["match"]:
                on_match += 1
                naming += all(named(text)[a] == query[a] for a in ATTRS)
            elif e is not None:
                on_distractor += 1
        for e in gt["events"]:
            if e["match"]:
                n_matches += 1
                answered += any(e["start"] <= t <= e["end"] + grace for t in times)
    precision = on_match / n if n else None
    recall = answered / n_matches if n_matches else None
    f1 = (2 * precision * recall / (precision + recall) if precision and recall else
          (0.0 if precision is not None and recall is not None else None))
    return {"n_videos": n_videos, "n_responses": n, "responses_per_video": n / n_videos if n_videos else None,
            "on_match": on_match, "on_distractor": on_distractor, "during_calm": n - on_match - on_distractor,
            "n_matching_events": n_matches, "matching_events_answered": answered,
            "precision": precision, "recall": recall, "F1": f1,
            "names_query": naming / on_match if on_match else None, "grace_s": grace}
