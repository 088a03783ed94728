import json

import pytest

from data.benchmarks import magqa as mq
from data.benchmarks.judges import Judge
from test.evaluate import evaluate_files
from utils.io import dumps


def score_file(pred, gold, protocol=None, options=None) -> dict:
    r = evaluate_files("magqa", pred, gold, protocol, None, options)
    return {**r, "protocol": r["record"]}


class TableJudge(Judge):
    """Scores by the predicted text (the last line of the user message); counts its calls."""

    kind = "table"

    def __init__(self, table, default="1"):
        super().__init__("table-judge")
        self.table, self.default, self.calls = table, default, []

    def _complete(self, system, user):
        pred = user.rsplit("Predicted Answer: ", 1)[1]
        self.calls.append(pred)
        return self.table.get(pred, self.default)


GOLD = [
    {"question_id": 1, "video": "a.mp4",
     "conversation": [{"role": "user", "content": "What happens?", "time": 0}],
     "answer": [{"content": "a red car parks", "time": [0, 10]},
                {"content": "a dog runs", "time": [12, 20]}]},
    {"question_id": 2, "video": "b.mp4",
     "conversation": [{"role": "user", "content": "Describe.", "time": 0}],
     "answer": [{"content": "a cat sleeps", "time": [0, 5]}]},
    {"question_id": 3, "video": "c.mp4",
     "conversation": [{"role": "user", "content": "Who?", "time": 0}],
     "answer": [{"content": "a man", "time": [0, 5]}, {"content": "a woman", "time": [5, 9]}]},
    {"question_id": 4, "video": "d.mp4",
     "conversation": [{"role": "user", "content": "Where?", "time": 0}],
     "answer": [{"content": "in a park", "time": [0, 30]}]},
]
PREDS = [
    {"id": "1", "responses": [
        {"time": 2, "content": "red car"}, {"time": 8, "content": "blue car"},
        {"time": 9, "content": "red car"},        # same text again: judged once, counted twice
        {"time": 11, "content": "nothing"},        # between the spans: not judged
        {"time": 15, "content": "dog"},
        {"time": 13, "role": "user", "content": "ignored user turn"}]},
    {"id": "2", "responses": [{"time": 9, "content": "late answer"}]},       # outside the span
    {"id": "3", "responses": [{"time": -1, "content": "a person"}]},         # no timestamp
]
TABLE = {"red car": "5", "blue car": "2", "dog": "Score: 4", "a person": "3", "late answer": "5"}


@pytest.fixture
def files(tmp_path):
    g, p = tmp_path / "magqa_test.json", tmp_path / "pred.jsonl"
    g.write_text(json.dumps(GOLD))
    p.write_text("".join(json.dumps(r) + "\n" for r in PREDS))
    return str(p), str(g)


def test_in_span_pairs_and_example_score():
    ex = mq.MagqaExample("1", "What happens?", (mq.GoldTurn("a red car parks", 0, 10), mq.GoldTurn("a dog runs", 12, 20)))
    resp = mq.responses_of(PREDS[0]["responses"])
    assert [r.content for r in resp] == ["red car", "blue car", "red car", "nothing", "dog"]
    assert mq.in_span_pairs(ex, resp) == [(0, 0), (0, 1), (0, 2), (1, 4)]
    scores = {(0, 0): 5, (0, 1): 2, (0, 2): 5, (1, 4): 4}
    assert mq.example_score(ex, resp, scores) == pytest.approx((4 + 4) / 2)


def test_span_boundaries_are_inclusive():
    turn = mq.GoldTurn("x", 5.0, 9.0)
    assert mq.in_span(turn, mq.Response(5.0, "a")) and mq.in_span(turn, mq.Response(9.0, "a"))
    assert not mq.in_span(turn, mq.Response(9.01, "a"))
    assert mq.in_span(turn, mq.Response(None, "a")) and not mq.in_span(turn, mq.Response(None, "a"), False)


def test_evaluate_hand_computed(files):
    pred, gold = files
    judge = TableJudge(TABLE)
    r = score_file(pred, gold, options={"judge": judge})
    # ex1: turn A mean(5, 2, 5) = 4, turn B 4 -> 4; ex2: nothing in span -> 1;
    # ex3: the untimed answer matches both turns -> 3; ex4: no prediction -> 1
    assert {k: v["score"] for k, v in r["per_item"].items()} == pytest.approx({"1": 4.0, "2": 1.0, "3": 3.0, "4": 1.0})
    assert r["metrics"]["in_span_score"] == pytest.approx(9 / 4)
    assert r["metrics"]["turns"] == pytest.approx((5 + 1 + 1 + 0) / 4)
    assert r["metrics"]["turns_dedup"] == pytest.approx((4 + 1 + 1 + 0) / 4)
    # each distinct (question, gold, pred) is asked once: "red car" twice in span A is one call,
    # "a person" against two different gold turns is two
    assert sorted(judge.calls) == ["a person", "a person", "blue car", "dog", "red car"]
    m = r["metrics"]
    assert m["n_pairs_judged"] == 6 and r["record"]["ids"]["n_missing"] == 1 and m["n_examples"] == 4
    p = r["protocol"]
    assert p["dataset"] == "shot2story_magqa" and p["judge"]["kind"] == "table" and p["pad_to"] is None
    assert p["untimed_matches_all"] is True and p["missing"] == "empty"
    dumps(r)  # JSON-able, no NaN


def test_options_skip_pad_and_untimed(files):
    pred, gold = files
    r = score_file(pred, gold, options={"judge": TableJudge(TABLE), "missing": "skip",
                                               "untimed_matches_all": False})
    # ex3's untimed answer no longer matches -> 1; ex4 is left out
    assert r["metrics"]["in_span_score"] == pytest.approx((4 + 1 + 1) / 3) and r["metrics"]["n_examples"] == 3
    r = score_file(pred, gold, options={"judge": TableJudge(TABLE), "missing": "skip", "pad_to": 5})
    assert r["metrics"]["in_span_score"] == pytest.approx((4 + 1 + 3 + 1 + 1) / 5)
    assert r["metrics"]["turns"] == pytest.approx((5 + 1 + 1) / 5) and r["metrics"]["n_padded"] == 2
    # the reference analysis: missing examples skipped, then padded with 1 up to 2000
    r = score_file(pred, gold, protocol="reference", options={"judge": TableJudge(TABLE)})
    assert r["metrics"]["in_span_score"] == pytest.approx((4 + 1 + 3 + 1997) / 2000)
    assert r["protocol"]["pad_to"] == 2000 and r["protocol"]["missing"] == "skip"


def test_response_times_of_streams_and_records_are_checked(tmp_path):
    """A stream record's response with no time was read as untimed and matched *every* gold span
    (a stream responds at frames: the judge scored it against answers it never gave); a response
    time in milliseconds matched no span, so the example silently scored 1. Both are refused."""
    g = tmp_path / "magqa_test.json"
    g.write_text(json.dumps([{**GOLD[0], "duration": 30.0}]))
    frames = {"time": list(range(30)), "informative": [0.5] * 30, "relevance": [0.5] * 30, "uncertainty": [0.0] * 30}

    def run(rec):
        p = tmp_path / "pred.jsonl"
        p.write_text(json.dumps({"id": "1", **rec}) + "\n")
        return score_file(str(p), str(g), options={"judge": TableJudge(TABLE)})

    ok = run({"fps": 1.0, "duration": 30.0, "frames": frames, "responses": [{"time": 2, "content": "red car"}]})
    assert ok["per_item"]["1"]["score"] == pytest.approx((5 + 1) / 2)
    with pytest.raises(ValueError, match="without a time in a stream record"):
        run({"fps": 1.0, "duration": 30.0, "frames": frames, "responses": [{"time": None, "content": "red car"}]})
    with pytest.raises(ValueError, match="at 2000 s, at no frame"):
        run({"fps": 1.0, "duration": 30.0, "frames": frames, "responses": [{"time": 2000, "content": "red car"}]})
    with pytest.raises(ValueError, match="at 15000 s, past the video's 30 s"):  # no frames: the gold's duration
        run({"responses": [{"time": 2, "content": "red car"}, {"time": 15000, "content": "dog"}]})
    # untimed answers of an offline baseline (no frames) still match every span
    assert run({"responses": [{"time": -1, "content": "red car"}]})["per_item"]["1"]["score"] == pytest.approx(5.0)


def test_judged_pairs_name_the_response_by_its_place_in_the_record(tmp_path):
    """``judged`` [gold, response, score] indexed the responses left after dropping user turns and
    empty texts, so with either before it, it pointed at another response of the record."""
    g, p = tmp_path / "g.json", tmp_path / "p.jsonl"
    g.write_text(json.dumps([GOLD[1]]))
    responses = [{"time": 0, "role": "user", "content": "Describe."}, {"time": 1, "content": ""},
                 {"time": 2, "content": "blue car"}, {"time": 3, "content": "red car"}]
    p.write_text(json.dumps({"id": "2", "responses": responses}) + "\n")
    r = score_file(str(p), str(g), options={"judge": TableJudge(TABLE)})
    judged = r["per_item"]["2"]["judged"]
    assert [responses[i]["content"] for _, i, _ in judged] == ["blue car", "red car"]
    assert [s for _, _, s in judged] == [2.0, 5.0]


def test_bad_gold_is_rejected(tmp_path):
    g = tmp_path / "g.json"
    g.write_text(json.dumps([{"question_id": 1, "conversation": [], "answer": []}]))
    with pytest.raises(ValueError, match="user turn"):
        mq.load_gold(g)
    g.write_text(json.dumps([{"question_id": 1, "conversation": [{"role": "user", "content": "q"}],
                              "answer": [{"content": "a", "time": 3}]}]))
    with pytest.raises(ValueError, match="start, end"):
        mq.load_gold(g)
    g.write_text(json.dumps([{"question_id": None, "conversation": [{"role": "user", "content": "q"}], "answer": []}]))
    with pytest.raises(ValueError, match="question_id must be"):
        mq.load_gold(g)
    g.write_text(json.dumps([{"question_id": 1, "conversation": [{"role": "user", "content": "q"}],
                              "answer": [{"content": "a", "time": [5, 3]}]}]))
    with pytest.raises(ValueError, match="reversed"):
        mq.load_gold(g)
    with pytest.raises(ValueError, match="protocol"):
        score_file(str(g), str(g), protocol="max")
