"""Shot2Story-MAGQA: raw files, items, gold, stream adapter and the in-span answer score.

A (gold turn, predicted response) pair is judged (1-5, a pluggable LLM judge: ``judges``) only when
the response time lies inside the gold turn's span [s, e] (inclusive); a response without a time
(None or -1, offline baselines) may match every span (``untimed_matches_all``, the reference's
default). Then: per gold turn the mean judge score of its in-span responses, or 1 when there is
none; per example the mean over its gold turns; the in-span score is the mean over examples.
Also reported: the mean number of responses per example ("#turns") and of distinct texts. Per
example, ``judged`` lists ``[gold turn index, response index, judge score]``, the response index
being its position in the prediction record's ``responses``.

Missing predictions: a gold example without a prediction scores 1 with 0 turns (as an empty
prediction) by default; ``missing="skip"`` leaves it out. The reference padded with 1 up to 2000
examples: only ``pad_to=N`` or ``protocol="reference"`` (skip missing, pad to 2000) do that.

Gold: the MAGQA test file (a JSON list or JSONL, told apart by content) of ``{question_id, video,
conversation: [{role: user, content, time}], answer: [{content, time: [s, e]}]}``; the question is
the first user turn; item id = ``str(question_id)``. Predictions: streaming JSONL ``responses``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from data.benchmarks import items as it
from data.benchmarks.judges import RUBRIC, Judge, JudgeError, make_judge
from data.benchmarks.validate import (InputError, UniqueIds, as_bool, as_int, choice, item_id, match_ids, number,
                                      read_json_or_jsonl, resolve_protocol, response_slack, span,
                                      stream_response_times)

log = logging.getLogger(__name__)

NAME = "magqa"
DATASET = "shot2story_magqa"
NO_MATCH_SCORE = 1.0
MISSING_MODES = ("empty", "skip")
REFERENCE_PAD_TO = 2000  # analyze_magqa_results.py --num_examples
DEFAULT_PROTOCOL = "in_span"
_JUDGE = {"judge": None, "judge_cache": None, "judge_options": None}
PROTOCOLS: dict[str, dict[str, Any]] = {
    "in_span": {**_JUDGE, "untimed_matches_all": True, "missing": "empty", "pad_to": None},
    "reference": {**_JUDGE, "untimed_matches_all": True, "missing": "skip", "pad_to": REFERENCE_PAD_TO},
}
HEADLINE = "in_span_score"


def resolve(protocol: str | None, options: Mapping | None) -> tuple[str, dict]:
    name, opts = resolve_protocol("MAGQA", PROTOCOLS, protocol, DEFAULT_PROTOCOL, options,
                                  aliases={"standard": "in_span", "official": "in_span"})
    as_bool(opts["untimed_matches_all"], "untimed_matches_all")
    choice(opts["missing"], MISSING_MODES, "missing")
    if opts["pad_to"] is not None:
        as_int(opts["pad_to"], "pad_to", 1)
    if opts["judge_options"] is not None and not isinstance(opts["judge_options"], dict):
        raise ValueError(f"judge_options must be an object of judge keyword arguments, got {opts['judge_options']!r}")
    return name, opts


class JudgeIncomplete(RuntimeError):
    """The judge failed on some examples (after its retries): no score is reported. ``failed`` maps
    each such example to its (sanitised) reason; what was judged is in the cache, if any, so the
    same command resumes."""

    def __init__(self, failed: Mapping[str, str], judged: Mapping[str, dict], judge: dict, stats: dict, cache: str | None):
        self.failed, self.judged, self.judge, self.stats, self.cache = dict(failed), dict(judged), judge, stats, cache
        first = next(iter(self.failed.items()))
        resume = (f"the judgements made are cached in {cache}: rerun the same command to resume" if cache else
                  "pass --opt judge_cache=PATH to keep the judgements made and resume")
        super().__init__(f"the judge failed on {len(self.failed)} of {len(self.failed) + len(self.judged)} examples "
                         f"(e.g. {first[0]}: {first[1]}); no score is reported; {resume}")

    def record(self) -> dict:
        return {"status": "incomplete", "metrics": None, "error": str(self), "failed_items": self.failed,
                "judged_items": self.judged, "judge": self.judge, "judge_stats": self.stats}


def tunable(protocol: str, opts: Mapping) -> bool:
    return False  # responses are decided online, at inference


def headline(metrics: Mapping, protocol: str) -> tuple[str, float | None]:
    return HEADLINE, metrics.get(HEADLINE)


# ------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class GoldTurn:
    content: str
    start: float
    end: float


@dataclass(frozen=True)
class MagqaExample:
    id: str
    question: str
    answers: tuple[GoldTurn, ...]
    n_clipped: int = 0  # answer spans whose end ran past the video's duration (clipped to it)
    duration: float | None = None  # the video's, when the gold gives it: response times are checked against it


@dataclass(frozen=True)
class Response:
    time: float | None  # None: no timestamp (matches every span when allowed)
    content: str
    index: int | None = None  # its position in the prediction record's ``responses`` (user turns, empty texts included)


def _records(path, what: str) -> list[tuple[int | None, Any]]:
    kind, data = read_json_or_jsonl(path, what, record_keys=("question_id",))
    if kind == "jsonl":
        return data
    if not isinstance(data, list) or not data:
        raise InputError(f"expected a non-empty JSON list (or JSONL) of {what} entries", path)
    return [(None, rec) for rec in data]


def load_gold(gold_file, protocol: str = DEFAULT_PROTOCOL, opts: Mapping | None = None) -> dict[str, MagqaExample]:
    out = {}
    ids = UniqueIds("question_id")
    for n, (line, rec) in enumerate(_records(gold_file, "MAGQA")):
        where = f"example {n}" if line is None else "example"
        if not isinstance(rec, dict) or "question_id" not in rec:
            raise InputError(f"{where} has no question_id", gold_file, line)
        qid = ids.add(item_id(rec["question_id"], "question_id", gold_file, line), gold_file, line)
        question = next((t.get("content") for t in rec.get("conversation") or []
                         if isinstance(t, dict) and t.get("role") == "user"), None)
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"example {qid} has no user turn in 'conversation'", gold_file, line)
        duration = rec.get("duration")
        if duration is not None:
            duration = number(duration, f"example {qid} duration", gold_file, line, positive=True)
        turns, clipped = [], 0
        for a in rec.get("answer") or []:
            if not isinstance(a, dict):
                raise InputError(f"example {qid}: an answer must be an object", gold_file, line)
            # inside the video when its duration is known: a span after its end refused, one past it clipped
            s, e, c = span(a.get("time"), f"example {qid} answer time", gold_file, line, duration, beyond="clip")
            content = a.get("content")
            if not isinstance(content, str) or not content.strip():
                # the judge would compare responses with an empty gold answer
                raise InputError(f"example {qid}: an answer without content ({content!r})", gold_file, line)
            turns.append(GoldTurn(content, s, e))
            clipped += c
        out[qid] = MagqaExample(qid, question, tuple(turns), clipped, duration)
    return out


def responses_of(responses, qid: str = "", path=None, line=None, duration: float | None = None,
                 slack: float = 1.0) -> list[Response]:
    """Assistant responses (user turns and empty texts dropped); time None or -1 = untimed. A time
    past ``duration`` by more than ``slack`` seconds (what ``validate.frame_times`` allows a
    stream's frames) is refused: it can match no gold span, so every answer would silently score 1."""
    out = []
    for i, r in enumerate(responses or []):
        if not isinstance(r, dict):
            raise InputError(f"item {qid}: a response must be an object, got {r!r}", path, line)
        if r.get("role", "assistant") == "user":
            continue
        text = str(r.get("content") or "").strip()
        if not text:
            continue
        t = r.get("time")
        t = None if t is None else number(t, f"item {qid} response time", path, line)
        if t is not None and t < 0 and t != -1:
            raise InputError(f"item {qid}: negative response time {t:g} (-1 means untimed)", path, line)
        if t is not None and duration is not None and t > duration + slack:
            raise InputError(f"item {qid}: a response at {t:g} s, past the video's {duration:g} s "
                             "(times in milliseconds? another video's predictions?)", path, line)
        out.append(Response(None if t is None or t == -1 else t, text, i))
    return out


def from_stream(stream, gold_item, protocol: str, opts: Mapping) -> list[Response]:
    # responses are made at frames (whose times were checked against the video): each must sit at one,
    # so an untimed response (which would match every gold span) or one at no frame is refused
    stream_response_times(stream.responses, stream.time, stream.id)
    return responses_of(stream.responses, stream.id)


def from_record(rec: Mapping, gold_item, protocol: str, opts: Mapping, path=None, line=None) -> list[Response]:
    if "responses" not in rec:
        raise InputError(f"item {rec.get('id')}: expected 'responses'", path, line)
    duration = gold_item.duration
    if duration is None and rec.get("duration") is not None:  # the streamed video's, as run_benchmark records it
        duration = number(rec["duration"], f"item {rec.get('id')} duration", path, line, positive=True)
    return responses_of(rec["responses"], str(rec.get("id")), path, line, duration, response_slack(rec.get("fps")))


def record_id(rec: Mapping, path=None, line=None) -> str:
    if "id" not in rec:
        raise InputError("prediction record without 'id'", path, line)
    return item_id(rec["id"], "id", path, line)


# ---------------------------------------------------------------------------------- scoring


def in_span(turn: GoldTurn, resp: Response, untimed_matches_all: bool = True) -> bool:
    if resp.time is None:
        return untimed_matches_all
    return turn.start <= resp.time <= turn.end


def in_span_pairs(example: MagqaExample, responses: Sequence[Response], untimed_matches_all: bool = True
                  ) -> list[tuple[int, int]]:
    """(gold turn, response) index pairs that get judged."""
    return [(g, p) for g, turn in enumerate(example.answers) for p, resp in enumerate(responses)
            if in_span(turn, resp, untimed_matches_all)]


def example_score(example: MagqaExample, responses: Sequence[Response], scores: Mapping[tuple[int, int], float],
                  untimed_matches_all: bool = True) -> float:
    """Mean over gold turns of (mean judged score of its in-span responses, or 1 if none)."""
    if not example.answers:
        raise ValueError(f"example {example.id} has no gold answer turns")
    per_turn = []
    for g, turn in enumerate(example.answers):
        got = [scores[(g, p)] for p, resp in enumerate(responses) if in_span(turn, resp, untimed_matches_all)]
        per_turn.append(float(np.mean(got)) if got else NO_MATCH_SCORE)
    return float(np.mean(per_turn))


def score(preds: Mapping[str, Sequence[Response]], gold: Mapping[str, MagqaExample], protocol: str | None = None,
          options: Mapping | None = None) -> dict:
    """The in-span score of {question id: responses}; the judge comes from the options."""
    name, opts = resolve(protocol, options)
    keys, id_record = match_ids(preds, gold, missing="count" if opts["missing"] == "empty" else "drop", what="example")
    judge = make_judge(opts["judge"], cache=opts["judge_cache"], **(opts["judge_options"] or {}))
    owned = not isinstance(opts["judge"], Judge)
    untimed = opts["untimed_matches_all"]
    per_item: dict[str, dict] = {}
    failed: dict[str, str] = {}
    n_without_answers = n_pairs = 0
    try:
        for qid in keys:
            ex = gold[qid]
            if not ex.answers:
                n_without_answers += 1  # nothing to score against: reported, left out
                continue
            responses = preds.get(qid, [])
            pairs = in_span_pairs(ex, responses, untimed)
            try:
                scores = {(g, p): float(judge.score(ex.question, ex.answers[g].content, responses[p].content))
                          for g, p in pairs}
            except JudgeError as e:  # this example only; the others are judged (and cached) all the same
                failed[qid] = str(e)
                log.warning("MAGQA %s: %s", qid, e)
                continue
            n_pairs += len(pairs)
            per_item[qid] = {"score": example_score(ex, responses, scores, untimed), "turns": len(responses),
                             "turns_dedup": len({r.content for r in responses}),
                             # the response as its position in the record's list (not among the kept ones)
                             "judged": [[g, p if responses[p].index is None else responses[p].index, s]
                                        for (g, p), s in scores.items()]}
            if len(per_item) % 100 == 0:
                log.info("MAGQA: %d examples judged", len(per_item))
        stats = dict(judge.stats)
        description = judge.describe()
    finally:
        if owned:
            judge.close()
    if failed:
        raise JudgeIncomplete(failed, per_item, description, stats, opts["judge_cache"])
    vals = [v["score"] for v in per_item.values()]
    turns = [v["turns"] for v in per_item.values()]
    dedup = [v["turns_dedup"] for v in per_item.values()]
    pad_to = opts["pad_to"]
    n_pad = max(0, pad_to - len(vals)) if pad_to is not None else 0
    vals, turns, dedup = vals + [NO_MATCH_SCORE] * n_pad, turns + [0] * n_pad, dedup + [0] * n_pad
    if not vals:
        raise InputError("no MAGQA example with gold answers to score")
    metrics = {"in_span_score": float(np.mean(vals)), "turns": float(np.mean(turns)), "turns_dedup": float(np.mean(dedup)),
               "n_examples": len(vals), "n_scored": len(per_item), "n_padded": n_pad,
               "n_gold_without_answers": n_without_answers, "n_pairs_judged": n_pairs,
               "n_gold_answers_clipped": sum(gold[q].n_clipped for q in keys)}
    record = {"dataset": DATASET, "protocol": name, "judge": description, "judge_stats": stats, "rubric": RUBRIC,
              "score_range": [1, 5], "judged_when": "response time in [start, end] of the gold turn",
              "untimed_matches_all": untimed, "no_match_score": NO_MATCH_SCORE, "missing": opts["missing"],
              "pad_to": pad_to, "ids": id_record,
              "aggregation": "mean over examples of the mean over gold turns of the mean in-span judge score"}
    return {"metrics": metrics, "per_item": per_item, "record": record}


# ------------------------------------------------------------------------- raw annotations

DEFAULT_TEMPLATE = "none"  # MAGQA questions are already natural-language requests
DEFAULT_VIDEO_TEMPLATE = "{video}"
VIDEO_FIELDS = ("video", "stem")


def convert(input_path, *, seed: int = 0, template: str = DEFAULT_TEMPLATE,
            video_template: str = DEFAULT_VIDEO_TEMPLATE) -> list[dict]:
    """MAGQA test file -> items: the query is the first user turn, asked at its own time."""
    from data.prompts import render_query

    gold = load_gold(input_path)
    out = []
    for line, rec in _records(input_path, "MAGQA"):
        qid = item_id(rec["question_id"], "question_id", input_path, line)
        if "video" not in rec:
            raise InputError(f"question {qid}: no video", input_path, line)
        user = next(t for t in rec["conversation"] if isinstance(t, dict) and t.get("role") == "user")
        query_time = number(user.get("time", 0.0), f"question {qid} time", input_path, line, min_value=0.0)
        duration = rec.get("duration")
        if duration is not None:
            duration = number(duration, f"question {qid} duration", input_path, line, positive=True)
        if duration is not None and query_time >= duration:
            raise InputError(f"question {qid}: asked at {query_time:g} s, at or after the video's end ({duration:g} s)",
                             input_path, line)
        video = item_id(rec["video"], "video", input_path, line)
        query, template_id = render_query(gold[qid].question.strip(), template, seed, qid)
        # the gold as load_gold validated it (spans clipped to the video)
        answer = [{"content": t.content, "time": [t.start, t.end]} for t in gold[qid].answers]
        out.append(it.make_item(qid, "magqa", it.format_video(video_template, "magqa", VIDEO_FIELDS, video=video,
                                                              stem=Path(video).stem),
                                query, query_time=query_time, template_id=template_id, duration=duration,
                                gold={"answer": answer}))
    return out
