"""QVHighlights scorer: golden reproduction, hand-computed toys, stream pooling, errors, properties."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.benchmarks import qvh
from data.benchmarks.ranking import detection_ap, pool_by_time, voc_interpolated_ap
from test.evaluate import evaluate_files
from test.postprocess import FusionParams
from utils.io import JsonlWriter

RELEVANCE_ONLY = FusionParams(alpha=0.0, beta=1.0, epsilon=0.0, tau=0.3)


def score_file(pred, gold, protocol=None, fusion=None, options=None) -> dict:
    """The official metrics layout with the protocol record beside it."""
    r = evaluate_files("qvh", pred, gold, protocol, fusion, options)
    return {**r["metrics"], "protocol": r["record"]}


def write_jsonl(path, rows):
    with JsonlWriter(path, "w") as w:
        w.write_many(rows)
    return str(path)


# ------------------------------------------------------------------------------- golden case


def test_reproduces_official_sample_metrics(shared_data):
    d = shared_data / "qvhighlights"
    golden = json.loads((d / "sample_val_preds_metrics_raw.json").read_text())
    got = score_file(str(d / "sample_val_preds.jsonl"), str(d / "highlight_val_release.jsonl"))
    record = got.pop("protocol")
    assert got == golden  # same keys, same values at the file's 2-decimal precision
    assert list(got) == list(golden) and list(got["brief"]) == list(golden["brief"])
    assert record["dataset"] == "qvhighlights" and record["protocol"] == "official"
    assert record["ids"]["n_scored"] == 1550 and record["max_pred_windows"] == 10
    assert record["mr_queries_per_range"] == {"short": 429, "middle": 957, "long": 574, "full": 1550}
    # its speed is measured by scripts/bench (instructions/performance.md), not timed here


# ------------------------------------------------------------------------------ AP primitives


def test_voc_ap_differs_from_sklearn_on_a_hand_example():
    # ranking labels [0, 1, 1]: precisions at the recall steps 1/2 and 2/3; the monotone
    # envelope lifts 1/2 to 2/3, so the AP is 2/3 (sklearn's AP would be (1/2 + 2/3) / 2).
    assert voc_interpolated_ap([0, 1, 1], [0.9, 0.8, 0.7]) == pytest.approx(2 / 3)
    # [1, 0, 1, 0]: precisions 1 and 2/3 at the two recall steps -> mean 5/6
    assert voc_interpolated_ap([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]) == pytest.approx(5 / 6)
    # tied scores enter together: {1, 0} at precision 1/2, then the third item at 2/3
    assert voc_interpolated_ap([1, 0, 1], [0.5, 0.5, 0.2]) == pytest.approx(2 / 3)
    assert voc_interpolated_ap([0, 0, 0], [0.1, 0.2, 0.3]) == 0.0
    assert voc_interpolated_ap([1, 1], [0.1, 0.2]) == 1.0
    cols = voc_interpolated_ap(np.array([[0, 1], [1, 0], [1, 1]]), [0.9, 0.8, 0.7])
    assert cols == pytest.approx([2 / 3, 5 / 6])


def test_detection_ap_hand_examples():
    thr = qvh.MR_IOU_THRESHOLDS
    # a duplicate of a matched window is a false positive, but after the hit: AP 1
    assert detection_ap([[0, 10]], [[0, 10], [0, 10]], [0.9, 0.8], thr) == pytest.approx(np.ones(10))
    # a miss ranked first: precision 0 then 1/2 at full recall -> envelope area 1/2
    assert detection_ap([[0, 10]], [[20, 30], [0, 10]], [0.9, 0.5], thr) == pytest.approx(np.full(10, 0.5))
    # IoU 0.8 counts at thresholds 0.5 .. 0.8 (7 of 10)
    ap = detection_ap([[0, 10]], [[0, 8]], [1.0], thr)
    assert ap == pytest.approx([1.0] * 7 + [0.0] * 3)
    assert detection_ap([[0, 10]], np.zeros((0, 2)), [], thr) == pytest.approx(np.zeros(10))


# ------------------------------------------------------------------------------ toy files


def toy_gold():
    return [
        {"qid": 1, "duration": 8, "vid": "a_0.0_8.0", "relevant_clip_ids": [1, 2],
         "saliency_scores": [[4, 2, 0], [1, 3, 4]], "relevant_windows": [[2, 6]]},
        {"qid": 2, "duration": 6, "vid": "b_0.0_6.0", "relevant_clip_ids": [0],
         "saliency_scores": [[2, 2, 2]], "relevant_windows": [[0, 2]]},
    ]


def toy_submission():
    return [
        {"qid": 1, "pred_saliency_scores": [0.1, 0.9, 0.5, 0.2],
         "pred_relevant_windows": [[2, 6, 0.9], [0, 8, 0.5]]},
        # one clip short: zero-padded for the AP; the arg-max (clip 1) is unannotated -> Hit@1 0
        {"qid": 2, "pred_saliency_scores": [0.3, 0.6],
         "pred_relevant_windows": [[0, 4, 0.8], [0, 2, 0.7]]},
    ]


def test_toy_submission_hand_computed(tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", toy_gold())
    pred = write_jsonl(tmp_path / "pred.jsonl", toy_submission())
    m = score_file(pred, gold)
    # q1 per annotator APs: Fair (1, 1, 1/2), Good (1, 1/2, 1/2), VeryGood (1, 0, 1/2)
    # q2: Fair 1/2 for each annotator (positive clip ranked 2nd after padding), Good/VeryGood 0
    assert m["HL-min-Fair"] == {"HL-mAP": 66.67, "HL-Hit1": 50.0}
    assert m["HL-min-Good"] == {"HL-mAP": 33.33, "HL-Hit1": 50.0}
    assert m["HL-min-VeryGood"] == {"HL-mAP": 25.0, "HL-Hit1": 50.0}
    # q1: exact window first -> AP 1 everywhere. q2: IoU 0.5 window first, exact second:
    # AP 1 at 0.5, 1/2 above -> per-threshold means 1 and 0.75 -> average 0.775
    assert m["full"]["MR-mAP"]["0.5"] == 100.0 and m["full"]["MR-mAP"]["0.55"] == 75.0
    assert m["full"]["MR-mAP"]["average"] == 77.5
    assert m["full"]["MR-R1"]["0.5"] == 100.0 and m["full"]["MR-R1"]["0.7"] == 50.0
    assert m["short"] == m["full"]  # both GT windows are <= 10 s
    assert m["middle"]["MR-mAP"]["average"] is None and m["brief"]["MR-long-mAP"] is None
    assert m["protocol"]["mr_queries_per_range"] == {"short": 2, "middle": 0, "long": 0, "full": 2}
    assert m["brief"]["HL-min-VeryGood-mAP"] == 25.0 and m["brief"]["MR-full-mAP"] == 77.5
    assert m["protocol"]["n_empty_pred_windows"] == 0
    # a query without windows (the official evaluator crashes on it): AP 0 and an R1 miss, counted
    sub = toy_submission()
    sub[1]["pred_relevant_windows"] = []
    e = score_file(write_jsonl(tmp_path / "empty.jsonl", sub), gold)
    assert e["protocol"]["n_empty_pred_windows"] == 1
    assert e["full"]["MR-mAP"]["average"] == 50.0 and e["full"]["MR-R1"]["0.5"] == 50.0


def test_hd_only_when_no_windows(tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", toy_gold())
    rows = [{k: v for k, v in r.items() if k != "pred_relevant_windows"} for r in toy_submission()]
    m = score_file(write_jsonl(tmp_path / "pred.jsonl", rows), gold)
    assert "full" not in m and set(m["brief"]) == {f"HL-min-{n}-{k}" for n in ("Fair", "Good", "VeryGood")
                                                  for k in ("mAP", "Hit1")}


# --------------------------------------------------------------------------- stream predictions


def stream_record(qid, times, relevance, **extra):
    n = len(times)
    return {"id": str(qid), "frames": {"time": list(map(float, times)), "informative": [0.0] * n,
                                       "relevance": list(map(float, relevance)), "uncertainty": [0.0] * n},
            **extra}


def test_pool_by_time_mean_sum_and_fill():
    scores, counts = pool_by_time([0, 1, 2, 3, 4.5], [1, 3, 5, 7, 9], 2.0, 4, "mean")
    assert scores == pytest.approx([2, 6, 9, 2])  # last clip empty -> the lowest clip score
    assert counts == {"interpolated_bins": 0, "edge_filled_bins": 1, "frames_past_end": 0}
    scores, _ = pool_by_time([0, 1, 2, 3], [1, 3, 5, 7], 2.0, 2, "sum")
    assert scores == pytest.approx([4, 12])
    scores, counts = pool_by_time([0, 4.2, 9.0], [1, 5, 7], 2.0, 3, "mean")
    assert scores == pytest.approx([1, 3, 5]) and counts["interpolated_bins"] == 1
    assert counts["frames_past_end"] == 1


def test_stream_predictions_match_equivalent_submission(tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", toy_gold())
    hd_only = [{k: v for k, v in r.items() if k != "pred_relevant_windows"} for r in toy_submission()]
    official = score_file(write_jsonl(tmp_path / "sub.jsonl", hd_only), gold)
    # 1 fps frames whose per-2-s mean is the submission's clip score (q2's zero padding included)
    rows = [stream_record(1, range(8), np.repeat([0.1, 0.9, 0.5, 0.2], 2) + np.tile([-0.05, 0.05], 4)),
            stream_record(2, range(6), [0.2, 0.4, 0.6, 0.6, 0.0, 0.0])]
    stream_file = write_jsonl(tmp_path / "stream.jsonl", rows)
    got = score_file(stream_file, gold, fusion=RELEVANCE_ONLY, options={"mr_windows": "none"})
    for level in ("HL-min-Fair", "HL-min-Good", "HL-min-VeryGood"):
        assert got[level] == official[level]
    assert "full" not in got
    rec = got["protocol"]
    assert rec["prediction_format"] == "stream" and rec["clip_pool"] == "mean"
    assert rec["fusion"]["beta"] == 1.0 and rec["clip_pooling_counts"]["edge_filled_bins"] == 0
    summed = score_file(stream_file, gold, fusion=RELEVANCE_ONLY, options={"clip_pool": "sum", "mr_windows": "none"})
    assert summed["HL-min-Fair"] == got["HL-min-Fair"]  # 2 frames per clip: sum = 2 x mean, same ranking


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_moment_retrieval_from_streams(tmp_path, mode):
    """MR windows from a stream: the post-processor's highlight segments, best first."""
    gold = write_jsonl(tmp_path / "gold.jsonl", [
        {"qid": 7, "duration": 60, "vid": "c_0.0_60.0", "relevant_clip_ids": list(range(10, 15)),
         "saliency_scores": [[4, 4, 4]] * 5, "relevant_windows": [[20, 30]]}])
    t = np.arange(60.0)
    y = 0.05 * np.sin(t) + np.where((t >= 20) & (t < 30), 1.0, 0.0)  # one clear 10-s moment
    pred = write_jsonl(tmp_path / "s.jsonl", [stream_record(7, t, y)])
    m = score_file(pred, gold, fusion=RELEVANCE_ONLY, options={"mr_windows": mode})
    assert m["brief"]["HL-min-VeryGood-mAP"] == 100.0
    # online: causal smoothing lags and overshoots at the step, so the window is narrower ([23, 28])
    assert m["brief"]["MR-full-R1@0.5"] == 100.0
    assert m["brief"]["MR-full-mAP"] > (50.0 if mode == "offline" else 5.0)
    assert m["protocol"]["mr_windows"].startswith("post-processor segments")


def test_reference_protocol_sums_and_drops_missing(tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", toy_gold())
    rows = [stream_record(1, range(8), np.repeat([0.1, 0.9, 0.5, 0.2], 2))]
    m = score_file(write_jsonl(tmp_path / "s.jsonl", rows), gold, protocol="reference",
                           fusion=RELEVANCE_ONLY)
    rec = m["protocol"]
    assert rec["clip_pool"] == "sum" and rec["ids"]["missing_policy"] == "drop"
    assert rec["ids"]["n_missing"] == 1 and "full" not in m  # the reference protocol has no MR from streams
    assert m["HL-min-Fair"]["HL-mAP"] == pytest.approx(100 * (1 + 1 + 0.5) / 3, abs=0.01)


# ----------------------------------------------------------------------------------- errors


def test_missing_query_is_an_error_by_default(tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", toy_gold())
    pred = write_jsonl(tmp_path / "pred.jsonl", toy_submission()[:1])
    with pytest.raises(ValueError, match="1 gold query ids have no prediction.*match_number"):
        score_file(pred, gold)
    m = score_file(pred, gold, options={"match_number": False})
    assert m["protocol"]["ids"]["n_scored"] == 1 and m["protocol"]["ids"]["n_missing"] == 1


@pytest.mark.parametrize("bad, message", [
    ({"qid": 1, "pred_saliency_scores": [0.1, float("nan"), 0.2, 0.3]}, "NaN"),
    ({"qid": 1, "pred_saliency_scores": []}, "is empty"),
    ({"qid": 1, "pred_saliency_scores": [1, True, 3, 4]}, "numbers only"),
    ({"qid": None, "pred_saliency_scores": [1, 2, 3, 4]}, "qid must be"),
    ({"qid": 1, "pred_saliency_scores": [1, 2, 3, 4], "pred_relevant_windows": [[5, 1, 0.3]]}, "ends before"),
    ({"qid": 1, "pred_saliency_scores": [1, 2, 3, 4], "pred_relevant_windows": [[-1, 1, 0.3]]}, "before 0"),
    ({"qid": 1, "pred_saliency_scores": [1, 2, 3, 4], "pred_relevant_windows": [[1, 5]]}, "start, end, score"),
])
def test_bad_predictions_raise(tmp_path, bad, message):
    gold = write_jsonl(tmp_path / "gold.jsonl", toy_gold()[:1])
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps(bad) + "\n")  # json.dumps writes NaN literally, as a buggy model might
    with pytest.raises(ValueError, match=message):
        score_file(str(pred), gold)


def test_empty_files_and_unknown_options(tmp_path):
    gold = write_jsonl(tmp_path / "gold.jsonl", toy_gold())
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="empty"):
        score_file(str(tmp_path / "empty.jsonl"), gold)
    with pytest.raises(ValueError, match="empty"):
        score_file(gold, str(tmp_path / "empty.jsonl"))
    with pytest.raises(ValueError, match="unknown option .* for the QVHighlights"):
        score_file(gold, gold, options={"nope": 1})
    with pytest.raises(ValueError, match="NaN"):
        voc_interpolated_ap([1, 0], [np.nan, 0.2])


# ------------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=2, max_size=40), st.integers(0, 2 ** 31 - 1))
def test_hd_perfect_prediction_scores_100_and_random_stays_in_range(levels, seed):
    gt = np.asarray(levels, dtype=float)
    gt[0] = 4  # every level has a positive clip
    matrix = np.repeat(gt[:, None], 3, axis=1)  # three agreeing annotators
    perfect = qvh.highlight_metrics({"q": gt}, {"q": matrix}, round_digits=None)
    for level in perfect.values():
        assert level["HL-mAP"] == pytest.approx(100.0) and level["HL-Hit1"] == 100.0
    noisy = np.random.default_rng(seed).random(len(gt))
    for level in qvh.highlight_metrics({"q": noisy}, {"q": matrix}, round_digits=None).values():
        assert 0.0 <= level["HL-mAP"] <= 100.0 and level["HL-Hit1"] in (0.0, 100.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 70), st.integers(1, 20)), min_size=1, max_size=4),
       st.integers(0, 2 ** 31 - 1))
def test_mr_perfect_windows_score_100(spans, seed):
    gt = np.array([[2 * s, 2 * (s + d)] for s, d in spans], dtype=float)
    perfect = np.hstack([gt, np.linspace(1, 0.5, len(gt))[:, None]])
    res, _ = qvh.moment_retrieval_metrics({"q": perfect}, {"q": gt}, round_digits=None)
    assert res["full"]["MR-mAP"]["average"] == pytest.approx(100.0)
    assert res["full"]["MR-R1"]["0.95"] == 100.0
    rng = np.random.default_rng(seed)
    starts = rng.uniform(0, 140, 10)
    rand = np.stack([starts, starts + rng.uniform(0, 10, 10), rng.random(10)], axis=1)
    res, _ = qvh.moment_retrieval_metrics({"q": rand}, {"q": gt}, round_digits=None)
    vals = list(res["full"]["MR-mAP"].values()) + list(res["full"]["MR-R1"].values())
    assert all(0.0 <= v <= 100.0 for v in vals)
