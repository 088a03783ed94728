import json

import numpy as np
import pytest

from data.benchmarks import charades as ch
from test import postprocess as pp
from test.evaluate import evaluate_files
from test.postprocess import FusionParams
from utils.io import dumps

R1 = ("mIoU", "R1@0.3", "R1@0.5", "R1@0.7")


def score_file(pred, gold, protocol=None, fusion=None, options=None) -> dict:
    r = evaluate_files("charades", pred, gold, protocol, fusion, options)
    return {**r, "protocol": r["record"]}


def r1(metrics) -> dict:
    return {k: metrics[k] for k in R1}


def ref_ious(t, y, gold, w, ths):
    return ch.reference_ious(t, pp.minmax(pp.centred_mean(y, w)), gold, ths)


def _frames(times, relevance, informative=None):
    times = list(map(float, times))
    rel = list(map(float, relevance))
    inf = rel if informative is None else list(map(float, informative))
    return {"time": times, "informative": inf, "relevance": rel, "uncertainty": [-4.0] * len(times)}


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


@pytest.fixture
def tiny_gold(tmp_path):
    """Three queries on two videos; the second query's end (40) lies past the video length (30)."""
    gold = tmp_path / "charades_sta_test.txt"
    gold.write_text("AAA 2.0 6.0##person opens a door.\n"
                    "AAA 20.0 40.0##person sits down.\n"
                    "BBB 0.0 5.0##person laughs.\n")
    (tmp_path / "Charades_v1_test.csv").write_text(
        "id,subject,length\nAAA,x,30.0\nBBB,y,10.0\n")
    return gold


# ------------------------------------------------------------------------------ gold + metrics


def test_load_gold_ids_and_clipping(tiny_gold):
    gold = ch.load_gold(tiny_gold)  # Charades_v1_test.csv beside it
    assert list(gold) == ["AAA#0", "AAA#1", "BBB#2"]
    assert (gold["AAA#1"].start, gold["AAA#1"].end, gold["AAA#1"].raw_end) == (20.0, 30.0, 40.0)
    assert gold["BBB#2"].duration == 10.0 and gold["AAA#0"].sentence == "person opens a door."


def test_load_gold_rejects_unknown_video(tmp_path):
    (tmp_path / "g.txt").write_text("ZZZ 1 2##x\n")
    (tmp_path / "d.csv").write_text("id,length\nAAA,3\n")
    with pytest.raises(ValueError, match="ZZZ"):
        ch.load_gold(tmp_path / "g.txt", "standard", {"durations_csv": tmp_path / "d.csv"})


def test_durations_csv_repeated_video(tmp_path):
    """A video listed twice with different lengths is refused with file:line (the last row no longer wins
    silently); an identical repeat is harmless; the real csv files still load."""
    (tmp_path / "g.txt").write_text("AAA 1 2##x\n")
    d = tmp_path / "d.csv"
    d.write_text("id,subject,length\nAAA,x,30.0\nBBB,y,10.0\nAAA,x,3.0\n")
    with pytest.raises(ValueError, match=r"d.csv:4: .*id 'AAA' listed twice with different values \(first at line 2"):
        ch.load_gold(tmp_path / "g.txt", "standard", {"durations_csv": d})
    with pytest.raises(ValueError, match="d.csv:4"):
        ch.convert(tmp_path / "g.txt", d)
    d.write_text("id,subject,length\nAAA,x,30.0\nBBB,y,10.0\nAAA,x,30.0\n")
    assert ch.read_durations(d) == {"AAA": 30.0, "BBB": 10.0}


def test_real_durations_csv_files_load(shared_data):
    for split, n in (("test", 1863), ("train", 7985)):
        assert len(ch.read_durations(shared_data / "charades_sta" / f"Charades_v1_{split}.csv")) == n


def test_interval_iou_and_summary():
    assert ch.interval_iou((0, 10), (5, 15)) == pytest.approx(1 / 3)
    assert ch.interval_iou((0, 1), (2, 3)) == 0.0
    assert ch.interval_iou(None, (2, 3)) == 0.0
    s = ch.summarize_ious([0.2, 0.5, 0.8, 1.0])
    assert s == pytest.approx({"mIoU": 62.5, "R1@0.3": 75.0, "R1@0.5": 75.0, "R1@0.7": 50.0})


# ------------------------------------------------------------------------------ causal rule


def test_trailing_and_centred_means():
    np.testing.assert_allclose(pp.trailing_mean([1, 2, 3, 4], 1), [1, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(pp.centred_mean([1, 2, 3, 4], 1), [1.5, 2, 3, 3.5])
    np.testing.assert_allclose(pp.trailing_mean([1, 2, 3], 0), [1, 2, 3])


def test_running_minmax_with_and_without_anchor():
    np.testing.assert_allclose(pp.running_minmax([0.2, 0.4, 0.1, 0.4], anchor=0.0), [1, 1, 0.25, 1])
    np.testing.assert_allclose(pp.running_minmax([0.2, 0.4, 0.1, 0.4], anchor=None), [0, 1, 0, 1])
    np.testing.assert_allclose(pp.running_minmax([0.0, 0.0], anchor=0.0), [0, 0])  # no range yet


def test_causal_normalisation_never_looks_ahead():
    rng = np.random.default_rng(0)
    for _ in range(50):
        y = rng.normal(size=40)
        k = int(rng.integers(1, 39))
        y2 = y.copy()
        y2[k:] = rng.normal(size=40 - k) * 10  # change only the future of frame k-1
        for w in (0, 3):
            np.testing.assert_array_equal(pp.causal_normalised(y, w)[:k], pp.causal_normalised(y2, w)[:k])


def test_causal_interval_longest_run_and_ties():
    t = np.arange(6.0)
    assert pp.causal_interval(t, [0, 0, 1, 1, 0, 1], step=1.0) == (2.0, 4.0)
    # two one-frame runs with equal mean: the earlier one wins
    assert pp.causal_interval([0, 1, 2], [1, 0, 1], step=1.0) == (0.0, 1.0)
    # end clipped to the duration; nothing above the anchor -> no interval
    assert pp.causal_interval([0, 1, 2], [0, 1, 1], step=1.0, duration=2.5) == (1.0, 2.5)
    assert pp.causal_interval([0, 1, 2], [0, 0, 0]) is None


# --------------------------------------------------------------------------- reference rule


def test_reference_frame_set_iou_hand_computed():
    t = np.arange(10.0)
    y = [0, 0, 0.2, 0.9, 1.0, 0.6, 0.1, 0, 0, 0]
    ths = [0.3, 0.5, 0.7]
    # w=0: normalised == y; gold frames {3,4,5}
    np.testing.assert_allclose(ref_ious(t, y, (3, 5), 0, ths), [1.0, 1.0, 2 / 3])
    # w=1 (by hand): normalised = [0, .08, .44, .84, 1, .68, .28, .04, 0, 0]
    np.testing.assert_allclose(ref_ious(t, y, (3, 5), 1, ths), [3 / 4, 1.0, 2 / 3])
    # constant scores: no frame passes, IoU 0 rather than a division by zero
    np.testing.assert_allclose(ref_ious(t, [0.4] * 10, (3, 5), 2, ths), [0, 0, 0])


def test_reference_protocol_rows_and_oracle(tiny_gold, tmp_path):
    t = np.arange(0, 30, 1.0)
    y_a0 = np.where((t >= 2) & (t <= 6), 1.0, 0.0)
    y_a0[6] = 0.41  # frame 6 survives thresholds <= 0.40 only
    recs = [{"id": "AAA#0", "frames": _frames(t, y_a0, np.zeros_like(t))},
            {"id": "BBB#2", "frames": _frames(np.arange(10.0), [0.3] * 10, np.zeros(10))}]
    pred = _write_jsonl(tmp_path / "p.jsonl", recs)
    fusion = FusionParams(alpha=0.0, beta=1.0, epsilon=0.0)
    r = score_file(pred, str(tiny_gold), "reference", fusion, {"window": [0]})
    rows = r["metrics"]["by_window"]["0"]["by_threshold"]
    assert len(rows) == 21 and "0.30" in rows and "0.70" in rows
    # AAA#0: IoU 1 up to theta 0.40, then 4/5; BBB#2 constant -> 0; AAA#1 has no prediction: the
    # reference loops over its predictions, so it is skipped (counted), not scored 0
    assert rows["0.40"]["mIoU"] == pytest.approx(100 / 2)
    assert rows["0.42"]["mIoU"] == pytest.approx(80 / 2)
    assert r1(r["metrics"]) == r["metrics"]["by_window"]["0"]["oracle_best_threshold"]
    assert r["metrics"]["mIoU"] == pytest.approx(100 / 2) and r["metrics"]["R1@0.7"] == pytest.approx(100 / 2)
    assert r["metrics"]["n_scored"] == 2 and r["metrics"]["n_missing"] == 1 and set(r["per_item"]) == {"AAA#0", "BBB#2"}
    p = r["protocol"]
    assert p["causal"] is False and p["oracle"] is True and "oracle" in p["labels"]
    assert p["windows"] == [0] and p["thresholds"][0] == 0.3 and p["thresholds"][-1] == 0.7
    assert r["record"]["ids"]["n_missing"] == 1 and p["missing_prediction"].startswith("skipped")
    # --opt missing=zero: the missing query scores IoU 0 (what the reference protocol did before)
    z = score_file(pred, str(tiny_gold), "reference", fusion, {"window": [0], "missing": "zero"})
    assert z["metrics"]["by_window"]["0"]["by_threshold"]["0.40"]["mIoU"] == pytest.approx(100 / 3)
    assert z["metrics"]["mIoU"] == pytest.approx(100 / 3) and z["metrics"]["n_scored"] == 3
    assert z["protocol"]["missing_prediction"] == "IoU 0"
    with pytest.raises(ValueError, match="missing must be one of"):
        score_file(pred, str(tiny_gold), "reference", fusion, {"missing": "drop"})
    with pytest.raises(ValueError, match="unknown option 'missing'"):  # the standard protocol counts IoU 0
        score_file(pred, str(tiny_gold), "standard", fusion, {"missing": "skip"})


def test_standard_protocol_end_to_end(tiny_gold, tmp_path):
    t = np.arange(0, 30, 0.5)
    y = np.where((t >= 2) & (t < 6), 1.0, 0.0)
    recs = [{"id": "AAA#0", "fps": 2.0, "frames": _frames(t, y)},
            {"id": "AAA#1", "fps": 2.0, "frames": _frames(t, np.zeros_like(t))},
            {"id": "BBB#2", "fps": 2.0, "frames": _frames(np.arange(0, 10, 0.5), np.zeros(20))}]
    pred = _write_jsonl(tmp_path / "p.jsonl", recs)
    r = score_file(pred, str(tiny_gold))
    assert r["per_item"]["AAA#0"] == {"pred": [2.0, 6.0], "iou": 1.0}
    assert r["per_item"]["AAA#1"]["pred"] is None and r["metrics"]["n_no_interval"] == 2
    assert r["metrics"]["mIoU"] == pytest.approx(100 / 3)
    p = r["protocol"]
    assert p["protocol"] == "standard" and p["causal"] is True and p["dataset"] == "charades_sta"
    assert p["threshold"] == 0.5 and p["anchor"] == 0.0 and p["fusion"]["alpha"] == 0.7
    with pytest.raises(ValueError, match="protocol"):
        score_file(pred, str(tiny_gold), "bogus")


# ------------------------------------------------------------------------------ text answers


@pytest.mark.parametrize("text, expected", [
    ("The person does it from 3.2 to 7.5 seconds.", (3.2, 7.5, "seconds")),
    ("3.2 - 7.5 seconds", (3.2, 7.5, "seconds")),
    ("between 3s and 7.5s", (3.0, 7.5, "seconds")),
    ("From 10 to 45.", (3.0, 13.5, "percent")),
    ("from 10% to 50%", (3.0, 15.0, "percent")),
    ("00:03 - 00:07.5", (3.0, 7.5, "clock")),
    ("between 40 and 20 seconds", (20.0, 30.0, "seconds")),
    ("1e-05 - 3.2 seconds", (0.00001, 3.2, "seconds")),  # scientific notation is one number
    ("It happens at the beginning of the video.", (0.0, 10.0, "coarse")),
    ("in the middle", (10.0, 20.0, "coarse")),
    ("At the end.", (20.0, 30.0, "coarse")),
    ("from the middle to the end", (10.0, 30.0, "coarse")),
])
def test_parse_time_span(text, expected):
    got = ch.parse_time_span(text, 30.0)
    assert got[2] == expected[2] and got[:2] == pytest.approx(expected[:2])


@pytest.mark.parametrize("text", ["The person is cooking.", "From 10 to 145", "", None])
def test_parse_time_span_unparsable(text):
    assert ch.parse_time_span(text, 30.0) is None


def test_parse_unitless_as_seconds():
    assert ch.parse_time_span("From 10 to 45", 30.0, unitless="seconds") == (10.0, 30.0, "seconds")


def test_text_protocol_counts_unparsable_as_miss(tiny_gold, tmp_path):
    recs = [{"id": "AAA#0", "answer": "from 2 to 6 seconds"},          # IoU 1
            {"id": "AAA#1", "model_response": ["I cannot tell."]},     # unparsable -> 0
            {"id": "BBB#2", "responses": [{"time": -1, "content": "From 0 to 25"}]}]  # [0, 2.5] vs [0, 5]
    pred = _write_jsonl(tmp_path / "p.jsonl", recs)
    r = score_file(pred, str(tiny_gold), "text")
    assert r["metrics"]["n_unparsable"] == 1 and r["record"]["ids"]["n_missing"] == 0
    assert r["per_item"]["BBB#2"]["iou"] == pytest.approx(0.5)
    assert r1(r["metrics"]) == pytest.approx({"mIoU": 50.0, "R1@0.3": 200 / 3, "R1@0.5": 200 / 3, "R1@0.7": 100 / 3})
    assert r["record"]["parsed_kinds"] == {"seconds": 1, "percent": 1, "unparsable": 1}
    assert json.loads(dumps(r))["protocol"]["unitless"] == "percent"  # JSON-able, no NaN


def test_text_protocol_with_the_reference_rules(tiny_gold, tmp_path):
    """--opt rules=reference: the reference's offline-baseline scoring. Exactly two numbers or the query
    is skipped (left out of the mean, counted), "from" + "to" means percentages of the record's
    video_duration (else the gold's), IoU with +1 on both lengths, the gold end as annotated."""
    recs = [{"id": "AAA#0", "model_response": ["It happens at 2.0 - 6.0 seconds."]},  # (6-2+1)/(6-2+1) = 1
            {"id": "AAA#1", "answer": "From 50 to 100"},         # [15, 30] vs [20, 40]: 11 / 26
            {"id": "BBB#2", "answer": "at 1, 2 or 3 seconds"}]   # three numbers: skipped
    pred = _write_jsonl(tmp_path / "p.jsonl", recs)
    r = score_file(pred, str(tiny_gold), "text", options={"rules": "reference"})
    assert r["per_item"]["AAA#0"]["iou"] == pytest.approx(1.0)
    assert r["per_item"]["AAA#1"] == {"pred": [15.0, 30.0], "iou": pytest.approx(11 / 26)}
    assert r["per_item"]["BBB#2"]["skipped"] == "not two numbers"
    assert r["metrics"]["mIoU"] == pytest.approx(100 * (1 + 11 / 26) / 2)
    assert (r["metrics"]["n_scored"], r["metrics"]["n_skipped"]) == (2, 1)
    assert r["record"]["duration_from"] == {"gold": 2} and r["record"]["gt_end"] == "as annotated (not clipped)"
    recs[1]["video_duration"] = 20.0  # the reference scales by the prediction record's duration
    r = score_file(_write_jsonl(tmp_path / "d.jsonl", recs), str(tiny_gold), "text", options={"rules": "reference"})
    assert r["per_item"]["AAA#1"] == {"pred": [10.0, 20.0], "iou": pytest.approx(1 / 31)}
    assert r["record"]["duration_from"] == {"gold": 1, "record": 1}
    # the project's rules on the same answers: the three-number answer is a counted miss (IoU 0)
    own = score_file(pred, str(tiny_gold), "text")
    assert own["metrics"]["n_unparsable"] == 1 and own["per_item"]["BBB#2"]["iou"] == 0
    none = _write_jsonl(tmp_path / "n.jsonl", [{"id": "AAA#0", "answer": "no idea"}])
    with pytest.raises(ValueError, match="skipped every query"):
        score_file(none, str(tiny_gold), "text", options={"rules": "reference"})


# ------------------------------------------------------------------------------- real files


def _perfect_records(gold, fps, rule):
    recs = []
    for qid, q in gold.items():
        t = np.arange(0, q.duration, 1 / fps)
        inside = rule(t, q)
        recs.append({"id": qid, "fps": fps, "frames": _frames(t, inside.astype(float))})
    return recs


def test_real_gold_perfect_scores_standard(shared_data, tmp_path):
    gold_file = shared_data / "charades_sta" / "charades_sta_test.txt"
    gold = ch.load_gold(gold_file)
    assert len(gold) == 3720 and next(iter(gold)) == "3MSZA#0"
    assert sum(q.raw_end > q.duration for q in gold.values()) == 562
    # A perfect frame scorer at 2 fps: a frame is on when the middle of the [t, t+0.5) it stands
    # for lies in the (clipped) GT span.
    recs = _perfect_records(gold, 2.0, lambda t, q: (t + 0.25 >= q.start) & (t + 0.25 <= q.end))
    pred = _write_jsonl(tmp_path / "perfect.jsonl", recs)
    r = score_file(pred, str(gold_file))
    assert r["metrics"]["R1@0.7"] == 100.0 and r["metrics"]["R1@0.3"] == 100.0
    assert r["metrics"]["mIoU"] > 90.0
    assert r["record"]["ids"]["n_missing"] == 0 and len(r["per_item"]) == 3720


def test_real_gold_perfect_scores_reference(shared_data, tmp_path):
    gold_file = shared_data / "charades_sta" / "charades_sta_test.txt"
    gold = ch.load_gold(gold_file)
    rule = lambda t, q: (t >= q.start) & (t <= q.raw_end)  # noqa: E731 - the reference's frame rule
    recs = _perfect_records(gold, 2.0, rule)
    # With w=0 the frame set equals the GT set unless the scores are constant (min-max -> zeros).
    constant = sum(len(set(rule(np.arange(0, q.duration, 0.5), q))) == 1 for q in gold.values())
    pred = _write_jsonl(tmp_path / "perfect.jsonl", recs)
    r = score_file(pred, str(gold_file), "reference", options={"window": 0})
    assert r["metrics"]["mIoU"] == pytest.approx(100 * (1 - constant / len(gold)))
    assert r["metrics"]["by_window"]["0"]["by_threshold"]["0.50"] == r1(r["metrics"])
    dumps(r)  # JSON-able, no NaN


def test_plain_intervals_are_a_prediction_format(tiny_gold, tmp_path):
    """Plain intervals are scored as given, as the official compute_mr_r1 does (it clips only the gold):
    one running past its 30-s video keeps its length, one starting after the video scores IoU 0; both
    are counted. ``pred_beyond=clip`` cuts them to the video first."""
    recs = [{"id": "AAA#0", "pred": [2.0, 6.0]},                 # IoU 1
            {"id": "AAA#1", "pred": [25.0, 45.0]},               # vs [20, 30]: IoU 5 / 25 (clipped: 5 / 10)
            {"id": "BBB#2", "timestamp": [0.0, 2.5]}]            # IoU 0.5
    pred = _write_jsonl(tmp_path / "p.jsonl", recs)
    r = score_file(pred, str(tiny_gold))
    assert r["per_item"]["AAA#1"] == {"pred": [25.0, 45.0], "iou": pytest.approx(0.2)}
    assert r["metrics"]["mIoU"] == pytest.approx(100 * (1 + 0.2 + 0.5) / 3)
    assert (r["metrics"]["n_pred_end_past_video"], r["metrics"]["n_pred_start_past_video"]) == (1, 0)
    clipped = score_file(pred, str(tiny_gold), options={"pred_beyond": "clip"})
    assert clipped["per_item"]["AAA#1"] == {"pred": [25.0, 30.0], "iou": pytest.approx(0.5)}
    assert clipped["metrics"]["mIoU"] == pytest.approx(100 * (1 + 0.5 + 0.5) / 3)
    assert clipped["record"]["plain_intervals"] == "clipped to [0, duration]"
    late = _write_jsonl(tmp_path / "late.jsonl", [{"id": "AAA#0", "pred": [35.0, 40.0]}, *recs[1:]])
    r = score_file(late, str(tiny_gold))
    assert r["per_item"]["AAA#0"]["iou"] == 0 and r["metrics"]["n_pred_start_past_video"] == 1
    for bad, match in (([6.0, 2.0], "reversed"), ([-1.0, 2.0], "before 0"), ([float("nan"), 2.0], "not finite"),
                       ([True, 3.0], "must be a number")):
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps({"id": "AAA#0", "pred": bad}) + "\n")
        with pytest.raises(ValueError, match=match):
            score_file(str(path), str(tiny_gold))
    with pytest.raises(ValueError, match="pred_beyond"):
        score_file(pred, str(tiny_gold), options={"pred_beyond": "drop"})
