"""Mr.HiSum scorer: knapsack, F1, segment mAP, both protocols on synthetic h5 files."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.benchmarks import hisum
from test.evaluate import evaluate_files
from test.postprocess import FusionParams
from utils.io import JsonlWriter

RELEVANCE_ONLY = FusionParams(alpha=0.0, beta=1.0, epsilon=0.0, tau=0.3)


def score_file(pred, gold, protocol=None, fusion=None, options=None) -> dict:
    """The metrics of one file, with its per-video rows and protocol record alongside."""
    r = evaluate_files("hisum", pred, gold, protocol, fusion, options)
    return {**r["metrics"], "per_video": r["per_item"], "protocol": r["record"]}


def write_jsonl(path, rows):
    with JsonlWriter(path, "w") as w:
        w.write_many(rows)
    return str(path)


def stream_record(vid, scores, fps=1.0):
    n = len(scores)
    return {"id": vid, "frames": {"time": [i / fps for i in range(n)], "informative": [0.0] * n,
                                  "relevance": [float(x) for x in scores], "uncertainty": [0.0] * n}}


def random_shots(rng, n, n_shots=12):
    cuts = np.sort(rng.choice(np.arange(1, n), n_shots - 1, replace=False))
    return np.stack([np.r_[0, cuts], np.r_[cuts - 1, n - 1]], axis=1)  # inclusive [start, end]


def write_h5(path, videos: dict[str, np.ndarray], rng, summary_from_gt: bool = True):
    """Synthetic mr_hisum.h5: gt_summary = the official knapsack summary of gtscore itself."""
    with h5py.File(path, "w") as f:
        for vid, g in videos.items():
            cps = random_shots(rng, len(g))
            grp = f.create_group(vid)
            grp["features"] = np.zeros((len(g), 4), dtype=np.float32)
            grp["gtscore"] = g
            grp["change_points"] = cps
            summary = hisum.knapsack_summary(g, cps) if summary_from_gt else np.zeros(len(g))
            grp["gt_summary"] = np.r_[summary, np.zeros(len(g) - len(summary))]
    return str(path)


# --------------------------------------------------------------------------- building blocks


def test_knapsack_hand_examples():
    assert hisum.knapsack_01([6, 10, 12], [1, 2, 3], 5) == [1, 2]  # 22 beats 16 and 18
    assert hisum.knapsack_01([5, 5], [1, 1], 1) == [0]  # a tie keeps the earlier item
    assert hisum.knapsack_01([3, 1], [0, 2], 1) == [0]  # weight 0 is free
    # ... except at capacity 0: the official table keeps that column 0, so a zero-weight item that would
    # fill the budget's last unit beside a full item is not taken, and a worth-more pair loses to it
    assert hisum.knapsack_01([5, 4, 1], [0, 6, 31], 6) == [0]  # the optimum is [0, 1] (9)
    assert hisum.knapsack_01([3, 5], [0, 2], 2) == [1]  # the optimum is [0, 1] (8)
    assert hisum.knapsack_01([4.0], [3], 2) == []


def test_knapsack_summary_and_segment_weights():
    s = [0.9, 0.9, 0.1, 0.1, 0.1, 0.8, 0.8, 0.8, 0.2, 0.2]
    cps = [[0, 1], [2, 4], [5, 7], [8, 9]]
    # official weights end-start = [1, 2, 2, 1], capacity floor(1.5) = 1 -> shot 0 alone; the
    # summary is one block of weight-many frames per shot (6 frames, not 10)
    assert hisum.knapsack_summary(s, cps).tolist() == [1, 0, 0, 0, 0, 0]
    # inclusive weights [2, 3, 3, 2]: nothing fits in 1 frame; with a 50 % budget shots 0 + 2 (1.7)
    assert hisum.knapsack_summary(s, cps, nfps="inclusive").tolist() == [0] * 10
    assert hisum.knapsack_summary(s, cps, 0.5, "inclusive").tolist() == [1, 1, 0, 0, 0, 1, 1, 1, 0, 0]


def test_summary_f1_averages_users_and_pads():
    # user 1: overlap 1, P = R = 1/2 -> 50; user 2: identical -> 100
    assert hisum.summary_f1([1, 1, 0, 0], [[1, 0, 1, 0], [1, 1, 0, 0]]) == pytest.approx(75.0)
    assert hisum.summary_f1([1, 1], [0, 1, 0, 1]) == pytest.approx(50.0)  # machine zero-padded
    assert hisum.summary_f1([0, 0], [1, 1]) == 0.0


def test_segment_map_official_hand_example():
    g = [0] * 5 + [1] * 5 + [0.5] * 2  # 5-s segment means [0, 1, 0.5]
    p = [0.9] * 5 + [0.1] * 5 + [0.5] * 2  # [0.9, 0.1, 0.5]: the one positive ranks last
    assert hisum.segment_map(g, p, 5, 0.5) == pytest.approx(1 / 3)  # k = 3 // 2 = 1
    assert hisum.segment_map(g, p, 5, 0.15) is None  # int(0.45) = 0 positives: undefined
    assert hisum.segment_map(g, p, 5, 0.15, protocol="aha") == pytest.approx(1 / 3)  # max(1, .)


# --------------------------------------------------------------------------------- protocols


def test_official_perfect_vs_random_with_the_real_split(shared_data, tmp_path):
    split = shared_data / "mr_hisum" / "mr_hisum_split.json"
    keys = json.loads(split.read_text())
    test_ids, train_id = keys["test_keys"][:3], keys["train_keys"][0]
    rng = np.random.default_rng(0)
    videos = {vid: rng.random(int(rng.integers(121, 300))) for vid in [*test_ids, train_id]}
    h5 = write_h5(tmp_path / "mr_hisum.h5", videos, rng)
    perfect = write_jsonl(tmp_path / "p.jsonl", [stream_record(v, g) for v, g in videos.items()])
    opts = {"split_file": str(split), "match_number": False}
    m = score_file(perfect, h5, fusion=RELEVANCE_ONLY, options=opts)
    assert m["n_videos"] == 3 and set(m["per_video"]) == set(test_ids)  # the train video is not scored
    assert m["mAP50"] == pytest.approx(100.0) and m["mAP15"] == pytest.approx(100.0)
    assert m["F1"] == pytest.approx(100.0)
    rec = m["protocol"]
    assert rec["protocol"] == "official" and rec["segment_s"] == 5 and rec["split_key"] == "test_keys"
    assert rec["prediction_records"]["unknown_dropped"] == 1 and rec["ids"]["n_scored"] == 3
    rand = write_jsonl(tmp_path / "r.jsonl", [{"id": v, "pred_scores": rng.random(len(g)).tolist()}
                                              for v, g in videos.items()])
    r = score_file(rand, h5, options=opts)
    assert r["mAP50"] < 80 and r["mAP15"] < 60 and 0 <= r["F1"] <= 100
    with pytest.raises(ValueError, match="1997 videos of the split have no group"):
        score_file(perfect, h5, fusion=RELEVANCE_ONLY, options={"split_file": str(split)})
    whole = tmp_path / "split3.json"
    whole.write_text(json.dumps({"test_keys": test_ids + ["video_missing_from_predictions"]}))
    with h5py.File(h5, "a") as f:
        f["video_missing_from_predictions/gtscore"] = np.ones(150)
    with pytest.raises(ValueError, match="not in the gold"):  # the train video's prediction
        score_file(perfect, h5, fusion=RELEVANCE_ONLY, options={"split_file": str(whole)})
    test_only = write_jsonl(tmp_path / "t.jsonl", [stream_record(v, videos[v]) for v in test_ids])
    with pytest.raises(ValueError, match="1 gold video ids have no prediction"):
        score_file(test_only, h5, fusion=RELEVANCE_ONLY, options={"split_file": str(whole)})


def test_official_short_prediction_tail_and_zero_positive_videos(tmp_path):
    rng = np.random.default_rng(1)
    videos = {"long": rng.random(150), "short": rng.random(20)}  # 20 s -> 4 segments -> int(0.6) = 0
    h5 = write_h5(tmp_path / "g.h5", videos, rng)
    # the long video's prediction stops 10 s early: the tail takes the lowest predicted score
    rows = [stream_record("long", videos["long"][:140]), stream_record("short", videos["short"])]
    m = score_file(write_jsonl(tmp_path / "p.jsonl", rows), h5, fusion=RELEVANCE_ONLY)
    assert m["per_video"]["short"]["mAP15"] is None
    assert m["protocol"]["n_videos_without_positive"] == {"mAP50": 0, "mAP15": 1}
    assert m["mAP15"] == pytest.approx(m["per_video"]["long"]["mAP15"])  # skipped by default
    assert m["protocol"]["pooling_counts"]["edge_filled_bins"] == 10
    z = score_file(write_jsonl(tmp_path / "p2.jsonl", rows), h5, fusion=RELEVANCE_ONLY,
                             options={"zero_positive": "zero"})
    assert z["mAP15"] == pytest.approx(m["mAP15"] / 2)
    assert "count as AP 0" in z["protocol"]["zero_positive"]


def test_aha_protocol_and_the_one_frame_lag(tmp_path):
    rng = np.random.default_rng(2)
    g = rng.random(90)
    h5 = write_h5(tmp_path / "g.h5", {"v": g}, rng)
    lagged = np.r_[0.5, g[:-1]]  # pred[i] = gt[i-1]: what the reference's pairing rewards
    pred = write_jsonl(tmp_path / "p.jsonl", [stream_record("v", lagged)])
    with_lag = score_file(pred, h5, "aha", RELEVANCE_ONLY, {"lag_one_frame": True})
    assert with_lag["mse"] == pytest.approx(0.0) and with_lag["pearson"] == pytest.approx(1.0)
    assert with_lag["mAP50"] == pytest.approx(100.0) and with_lag["mAP15"] == pytest.approx(100.0)
    assert "gtscore[i - 1]" in with_lag["protocol"]["pairing"]
    aligned = score_file(pred, h5, "aha", RELEVANCE_ONLY)  # default: no lag
    assert aligned["protocol"]["lag_one_frame"] is False
    assert aligned["mse"] > 0.05 and aligned["mAP50"] < 90
    exact = score_file(write_jsonl(tmp_path / "e.jsonl", [stream_record("v", g)]), h5, "aha",
                                 RELEVANCE_ONLY)
    assert exact["mAP50"] == pytest.approx(100.0) and exact["spearman"] == pytest.approx(1.0)
    assert 0 <= exact["F1"] <= 100


def test_aha_f1_greedy_shots_hand_example():
    # 20 frames, budget int(3) = 3 frames: no 5-s shot fits -> empty summary
    assert not hisum.greedy_shot_summary(np.arange(20.0), 5, 0.15).any()
    # budget 0.5 -> 10 frames: the two best shots (frames 15-19 and 10-14)
    sel = hisum.greedy_shot_summary(np.arange(20.0), 5, 0.5)
    assert np.flatnonzero(sel).tolist() == list(range(10, 20))


# ----------------------------------------------------------------------------------- errors


def test_errors(tmp_path):
    rng = np.random.default_rng(3)
    h5 = write_h5(tmp_path / "g.h5", {"v": rng.random(40)}, rng)
    nan = tmp_path / "nan.jsonl"
    nan.write_text(json.dumps({"id": "v", "pred_scores": [0.1, float("nan")] * 20}) + "\n")
    with pytest.raises(ValueError, match="NaN"):
        score_file(str(nan), h5)
    ok = write_jsonl(tmp_path / "ok.jsonl", [{"id": "v", "pred_scores": [0.5] * 40}])
    with pytest.raises(ValueError, match="unknown option 'lag_one_frame'"):
        score_file(ok, h5, options={"lag_one_frame": True})
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["v/gtscore"] = np.r_[np.nan, np.ones(39)]
    with pytest.raises(ValueError, match="gtscore contains NaN"):
        score_file(ok, str(tmp_path / "bad.h5"), protocol="aha")
    with h5py.File(tmp_path / "nocp.h5", "w") as f:
        f["v/gtscore"] = np.ones(40)
    # without shots and reference summary: mAP is reported, F1 is unavailable (null, with the reason)
    nocp = score_file(ok, str(tmp_path / "nocp.h5"))
    assert nocp["mAP50"] is not None and nocp["F1"] is None and "unavailable" in nocp["protocol"]["f1"]
    # a gt_summary that is not a 0/1 summary (here the gtscore itself, stored by mistake) is refused: it was
    # binarised at > 0 (every frame a reference frame, an F1 with exit 0), the official int cast gives F1 0
    with h5py.File(tmp_path / "soft.h5", "w") as f:
        g = rng.random(40) * 0.9 + 0.05
        f["v/gtscore"], f["v/change_points"], f["v/gt_summary"] = g, random_shots(rng, 40), g
    with pytest.raises(ValueError, match="gt_summary must be a 0/1 keyshot summary"):
        score_file(ok, str(tmp_path / "soft.h5"))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        score_file(str(tmp_path / "empty.jsonl"), h5)
    with pytest.raises(ValueError, match="is empty"):
        hisum.segment_map([], [], 5, 0.5)


# ------------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(st.integers(40, 400), st.integers(0, 2 ** 31 - 1))
def test_official_perfect_prediction_is_maximal(n, seed):
    rng = np.random.default_rng(seed)
    g = rng.random(n)
    cps = random_shots(rng, n)
    summary = hisum.knapsack_summary(g, cps)
    best = hisum.official_video_metrics(g, g, cps, summary)
    assert best["mAP50"] == pytest.approx(1.0) and best["mAP15"] == pytest.approx(1.0)
    assert best["F1"] == pytest.approx(100.0)
    noisy = hisum.official_video_metrics(g, rng.random(n), cps, summary)
    assert 0.0 <= noisy["mAP50"] <= 1.0 and 0.0 <= noisy["mAP15"] <= 1.0 and 0.0 <= noisy["F1"] <= 100.0
    aha = hisum.aha_video_metrics(g, rng.random(n))
    assert all(0.0 <= aha[k] <= (100.0 if k == "F1" else 1.0) for k in ("mAP50", "mAP15", "F1"))
