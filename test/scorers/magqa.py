"""Shot2Story-MAGQA: the in-span answer score with a pluggable LLM judge (``test.scorers.judges``).

A (gold turn, predicted response) pair is judged (1-5) only when the response time lies inside
the gold turn's span [s, e] (inclusive); a response without a time (None or -1, offline
baselines) may match every span (``untimed_matches_all``, the reference's default). Then:

1. per gold turn: the mean judge score of its in-span responses, or 1 when there is none;
2. per example: the mean over its gold turns;
3. in-span score: the mean over examples.

Also reported: the mean number of responses per example ("#turns") and of distinct response
texts ("#turns dedup").

Missing predictions: a gold example without a prediction line scores 1 with 0 turns (the same as
an empty prediction) by default; ``missing="skip"`` leaves it out instead. The reference padded
with 1 up to 2000 examples; that is available only as ``pad_to=N`` (1 for the score, 0 turns) or
``protocol="reference"`` (skip missing, pad to 2000), never by default.

Gold: the MAGQA test JSON (a list, or JSONL) of ``{question_id, video, conversation: [{role: user,
content, time}], answer: [{content, time: [s, e]}]}``; the question is the first user turn.
Item id = ``str(question_id)``. Predictions: our streaming JSONL (``responses`` with ``time`` and
``content``); frames are not needed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from test.postprocess import FusionParams
from test.scorers.judges import RUBRIC, Judge, make_judge
from utils.io import iter_jsonl, read_json

log = logging.getLogger(__name__)

DATASET = "shot2story_magqa"
NO_MATCH_SCORE = 1.0
MISSING_MODES = ("empty", "skip")
PROTOCOLS = ("in_span", "reference")
REFERENCE_PAD_TO = 2000  # analyze_magqa_results.py --num_examples


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


@dataclass(frozen=True)
class Response:
    time: float | None  # None: no timestamp (matches every span when allowed)
    content: str


def _read_records(path: str | Path) -> list:
    path = Path(path)
    if path.suffix == ".jsonl":
        return list(iter_jsonl(path))
    data = read_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of MAGQA examples")
    return data


def load_gold(gold_file: str | Path) -> dict[str, MagqaExample]:
    try:
        return load_gold_records(_read_records(gold_file))
    except ValueError as e:
        raise ValueError(f"{gold_file}: {e}") from None


def load_gold_records(records: Sequence[Mapping]) -> dict[str, MagqaExample]:
    out = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "question_id" not in rec:
            raise ValueError(f"example {i} has no question_id")
        qid = str(rec["question_id"])
        question = next((t.get("content") for t in rec.get("conversation") or [] if t.get("role") == "user"), None)
        if not isinstance(question, str):
            raise ValueError(f"example {qid} has no user turn in 'conversation'")
        turns = []
        for a in rec.get("answer") or []:
            span = a.get("time")
            if not isinstance(span, (list, tuple)) or len(span) != 2:
                raise ValueError(f"example {qid}: answer time must be [start, end], got {span!r}")
            s, e = sorted(float(x) for x in span)
            turns.append(GoldTurn(str(a.get("content", "")), s, e))
        out[qid] = MagqaExample(qid, question, tuple(turns))
    return out


def responses_of(rec: Mapping) -> list[Response]:
    """Assistant responses of a prediction record (user turns and empty texts dropped)."""
    out = []
    for r in rec.get("responses") or []:
        if r.get("role", "assistant") == "user":
            continue
        text = str(r.get("content") or "").strip()
        if not text:
            continue
        t = r.get("time")
        out.append(Response(None if t is None or float(t) == -1 else float(t), text))
    return out


def load_predictions(pred_file: str | Path) -> dict[str, list[Response]]:
    out = {}
    for rec in iter_jsonl(pred_file):
        if "id" not in rec:
            raise ValueError(f"{pred_file}: prediction record without 'id'")
        out[str(rec["id"])] = responses_of(rec)
    return out


def in_span(turn: GoldTurn, resp: Response, untimed_matches_all: bool = True) -> bool:
    if resp.time is None:
        return untimed_matches_all
    return turn.start <= resp.time <= turn.end


def in_span_pairs(example: MagqaExample, responses: Sequence[Response],
                  untimed_matches_all: bool = True) -> list[tuple[int, int]]:
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


def score_examples(gold: Mapping[str, MagqaExample], preds: Mapping[str, Sequence[Response]], judge: Judge,
                   untimed_matches_all: bool = True, missing: str = "empty", pad_to: int | None = None) -> dict:
    if missing not in MISSING_MODES:
        raise ValueError(f"missing must be one of {MISSING_MODES}, got {missing!r}")
    per_item: dict[str, dict] = {}
    n_without_answers = n_missing = n_pairs = 0
    for qid, ex in gold.items():
        if not ex.answers:
            n_without_answers += 1  # nothing to score against: reported, left out
            continue
        if qid not in preds:
            n_missing += 1
            if missing == "skip":
                continue
        responses = preds.get(qid, [])
        pairs = in_span_pairs(ex, responses, untimed_matches_all)
        scores = {(g, p): float(judge.score(ex.question, ex.answers[g].content, responses[p].content))
                  for g, p in pairs}
        n_pairs += len(pairs)
        per_item[qid] = {
            "score": example_score(ex, responses, scores, untimed_matches_all),
            "turns": len(responses), "turns_dedup": len({r.content for r in responses}),
            "judged": [[g, p, s] for (g, p), s in scores.items()]}
        if len(per_item) % 100 == 0:
            log.info("MAGQA: %d examples judged", len(per_item))

    scores_list = [v["score"] for v in per_item.values()]
    turns = [v["turns"] for v in per_item.values()]
    dedup = [v["turns_dedup"] for v in per_item.values()]
    n_pad = 0
    if pad_to is not None and len(scores_list) < pad_to:
        n_pad = pad_to - len(scores_list)
        scores_list += [NO_MATCH_SCORE] * n_pad
        turns += [0] * n_pad
        dedup += [0] * n_pad
    if not scores_list:
        raise ValueError("no MAGQA example to score")
    return {
        "metrics": {"in_span_score": float(np.mean(scores_list)), "turns": float(np.mean(turns)),
                    "turns_dedup": float(np.mean(dedup))},
        "per_item": per_item, "n_examples": len(scores_list), "n_scored": len(per_item), "n_padded": n_pad,
        "n_missing": n_missing, "n_gold_without_answers": n_without_answers, "n_pairs_judged": n_pairs,
        "judge_stats": dict(judge.stats)}


def evaluate_files(pred_file: str, gold_file: str, protocol: str | None = None,
                   fusion: FusionParams | None = None, options: dict | None = None) -> dict:
    """Score a streaming prediction JSONL against the MAGQA test file.

    protocol: "in_span" (default) or "reference" (= missing "skip" and pad_to 2000, as the
    reference's analysis script; both still overridable by the options).

    options: ``judge`` (a Judge, "openai" = OpenAI-compatible endpoint from AHA_JUDGE_* variables,
    or "hf:<path>"), ``judge_cache`` (JSONL path), ``judge_options`` (dict of judge keyword
    arguments), ``untimed_matches_all`` (True), ``missing`` ("empty" | "skip"), ``pad_to`` (None).
    ``fusion`` is unused (responses were decided at inference time).
    """
    protocol = {None: "in_span", "standard": "in_span", "official": "in_span"}.get(protocol, protocol)
    if protocol not in PROTOCOLS:
        raise ValueError(f"magqa protocol must be one of {PROTOCOLS}, got {protocol!r}")
    reference = protocol == "reference"
    options = dict(options or {})
    untimed = bool(options.get("untimed_matches_all", True))
    missing = options.get("missing", "skip" if reference else "empty")
    pad_to = options.get("pad_to", REFERENCE_PAD_TO if reference else None)
    pad_to = None if pad_to is None else int(pad_to)
    gold = load_gold(gold_file)
    preds = load_predictions(pred_file)
    judge = make_judge(options.get("judge"), cache=options.get("judge_cache"), **(options.get("judge_options") or {}))
    owned = not isinstance(options.get("judge"), Judge)
    try:
        result = score_examples(gold, preds, judge, untimed, missing, pad_to)
    finally:
        if owned:
            judge.close()
    result["protocol"] = {
        "dataset": DATASET, "name": protocol, "gold_file": str(gold_file), "judge": judge.describe(),
        "rubric": RUBRIC, "score_range": [1, 5], "judged_when": "response time in [start, end] of the gold turn",
        "untimed_matches_all": untimed, "no_match_score": NO_MATCH_SCORE, "missing": missing, "pad_to": pad_to,
        "aggregation": "mean over examples of the mean over gold turns of the mean in-span judge score",
        "fusion": None}
    result["n_extra_predictions"] = sum(1 for q in preds if q not in gold)
    return result
