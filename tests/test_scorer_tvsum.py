"""TVSum scorer: UMT and Aha protocols on hand-computed toys and on the real annotation files."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.benchmarks import tvsum
from data.benchmarks.ranking import topk_trapezoid_ap
from test.evaluate import evaluate_files
from test.postprocess import FusionParams
from utils.io import JsonlWriter

RELEVANCE_ONLY = FusionParams(alpha=0.0, beta=1.0, epsilon=0.0, tau=0.3)


def score_file(pred, gold, protocol=None, fusion=None, options=None) -> dict:
    """The metrics of one file, with its per-item rows and protocol record alongside."""
    r = evaluate_files("tvsum", pred, gold, protocol, fusion, options)
    return {**r["metrics"], "per_item": r["per_item"], "protocol": r["record"]}


def write_jsonl(path, rows):
    with JsonlWriter(path, "w") as w:
        w.write_many(rows)
    return str(path)


def stream_record(vid, times, relevance, **extra):
    n = len(times)
    return {"id": vid, "frames": {"time": [float(t) for t in times], "informative": [0.0] * n,
                                  "relevance": [float(r) for r in relevance], "uncertainty": [0.0] * n},
            **extra}


# ------------------------------------------------------------------------------ toy fixtures


def test_trapezoid_ap_hand_values():
    # [0, 1, 0, 1, 0], P = 2: steps at ranks 2 and 4 -> 1/2 * (1/2 + 0)/2 + 1/2 * (1/2 + 1/3)/2 = 1/3
    assert topk_trapezoid_ap([0, 1, 0, 1, 0]) == pytest.approx(1 / 3)
    # [0, 0, 0, 1, 0], P = 1: one step at rank 4 -> (1/4 + 0)/2
    assert topk_trapezoid_ap([0, 0, 0, 1, 0]) == pytest.approx(1 / 8)
    # only the top 5 count: a positive at rank 6 is ignored; positives first -> 1
    assert topk_trapezoid_ap([1, 1, 0, 0, 0, 1]) == 1.0
    assert topk_trapezoid_ap([0, 0, 0, 0, 0, 1]) == 0.0


def test_umt_toy_hand_computed(tmp_path):
    # 6 clips, 2 annotators. Annotator 0: median 2.5 -> positives clips 1, 2, 4.
    # Annotator 1: median 3 -> strict '>' leaves only clip 4 (the three 3s are negative).
    labels = [[1, 3], [5, 3], [3, 3], [2, 1], [4, 5], [1, 2]]
    gold = write_jsonl(tmp_path / "val.jsonl", [{"vid": "v1", "domain": "BK", "label": labels}])
    # ranking 0, 1, 3, 4, 5 (top 5) -> annotator 0 labels [0,1,0,1,0] (AP 1/3), annotator 1 [0,0,0,1,0] (1/8)
    pred = write_jsonl(tmp_path / "p.jsonl", [{"vid": "v1", "pred_saliency_scores": [0.9, 0.8, 0.1, 0.7, 0.6, 0.5]}])
    m = score_file(pred, gold)
    assert m["top5_mAP"] == pytest.approx(100 * (1 / 3 + 1 / 8) / 2)
    assert m["per_annotator"] == pytest.approx([100 / 3, 100 / 8])
    assert m["per_category"] == {"BK": pytest.approx(100 * (1 / 3 + 1 / 8) / 2)}
    rec = m["protocol"]
    assert rec["protocol"] == "umt" and rec["k"] == 5 and "strict" in rec["labels"]
    # the same clip scores as a 1-fps stream (2 frames per clip, averaged) score the same
    stream = write_jsonl(tmp_path / "s.jsonl", [stream_record("v1", range(12),
                                                              np.repeat([0.9, 0.8, 0.1, 0.7, 0.6, 0.5], 2))])
    s = score_file(stream, gold, fusion=RELEVANCE_ONLY)
    assert s["top5_mAP"] == pytest.approx(m["top5_mAP"])
    assert "(mean" in s["protocol"]["stream_clips"] and s["protocol"]["fusion"]["beta"] == 1.0


def test_aha_toy_hand_computed(tmp_path):
    # one video, 6 native frames, 2 annotators -> mean/5 = [0.2, 0.8, 0.6, 0.6, 0.4, 1.0]
    tsv = tmp_path / "anno.tsv"
    tsv.write_text("v1\tGA\t1,4,3,3,2,5\nv1\tGA\t1,4,3,3,2,5\n")
    pred = [0.5, 0.1, 0.9, 0.3, 0.2, 0.7]
    p = write_jsonl(tmp_path / "p.jsonl", [stream_record("v1", range(6), pred, native_frame_index=list(range(6)))])
    m = score_file(p, str(tsv), protocol="aha", fusion=RELEVANCE_ONLY)
    # top 50 %: k = 3, threshold sorted[-3] = 0.6 -> ties make 4 positives (frames 1, 2, 3, 5).
    # ranking 2, 5, 0, 3, 4 -> top-5 labels [1, 1, 0, 1, 0], P = 3:
    # 1/3 * (1 + 1)/2 + 1/3 * (1 + 1)/2 + 1/3 * (3/4 + 2/3)/2
    assert m["top5_mAP"] == pytest.approx(100 * (2 / 3 + (3 / 4 + 2 / 3) / 6))
    # sklearn AP over the full ranking [1, 1, 0, 1, 0, 1]: (1 + 1 + 3/4 + 4/6) / 4
    assert m["mAP50"] == pytest.approx(100 * (1 + 1 + 0.75 + 4 / 6) / 4)
    # top 15 %: k = 1 -> only frame 5 (1.0), ranked 2nd -> AP 1/2; F1@15: top-1 predicted is frame 2 -> 0
    assert m["mAP15"] == pytest.approx(50.0)
    assert m["F1_15"] == 0.0
    assert m["per_category"]["GA"]["n_videos"] == 1
    assert m["protocol"]["protocol"] == "aha" and m["per_item"]["v1"]["alignment"] == "native_frame_index"


def test_aha_time_mapping_uses_native_fps(tmp_path):
    tsv = tmp_path / "anno.tsv"
    tsv.write_text("v1\tGA\t1,1,1,5,5,5,2,2,2,4\n")  # 10 native frames at 3 fps
    # frames at t = 0, 1, 2, 3 s -> native frames 0, 3, 6, 9 -> gold [0.2, 1.0, 0.4, 0.8]
    p = write_jsonl(tmp_path / "p.jsonl", [stream_record("v1", [0, 1, 2, 3], [0.2, 1.0, 0.4, 0.8])])
    m = score_file(p, str(tsv), protocol="aha", fusion=RELEVANCE_ONLY, options={"native_fps": 3})
    assert m["spearman"] == pytest.approx(1.0) and m["kendall"] == pytest.approx(1.0)
    assert m["top5_mAP"] == 100.0
    with pytest.raises(ValueError, match="native fps"):
        score_file(p, str(tsv), protocol="aha", fusion=RELEVANCE_ONLY)


# ------------------------------------------------------------------------------- real data


def test_umt_on_the_standard_val_split(shared_data, tmp_path):
    d = shared_data / "tvsum"
    rows = [json.loads(line) for line in (d / "tvsum_val.jsonl").read_text().splitlines() if line.strip()]
    assert len(rows) == 10 and len({r["domain"] for r in rows}) == 10  # one val video per category
    mean_pred = write_jsonl(tmp_path / "mean.jsonl", [
        {"vid": r["vid"], "pred_saliency_scores": np.mean(r["label"], axis=1).tolist()} for r in rows])
    good = score_file(mean_pred, str(d / "tvsum_val.jsonl"))
    rng = np.random.default_rng(0)
    random_scores = []
    for seed in range(3):
        rand = write_jsonl(tmp_path / f"rand{seed}.jsonl", [
            {"vid": r["vid"], "pred_saliency_scores": rng.random(len(r["label"])).tolist()} for r in rows])
        random_scores.append(score_file(rand, str(d / "tvsum_val.jsonl"))["top5_mAP"])
    # the annotator mean cannot be perfect for each annotator's own median labels, but it is
    # far above chance; everything stays a percentage
    assert good["top5_mAP"] > 80 and max(random_scores) < good["top5_mAP"] - 20
    assert all(0 <= v <= 100 for v in [*random_scores, *good["per_category"].values()])
    assert good["n_videos"] == 10 and len(good["per_annotator"]) == 20
    # the same gold read from tvsum_anno.json, restricted to the split, gives the same number
    via_json = score_file(mean_pred, str(d / "tvsum_anno.json"),
                                    options={"videos_file": str(d / "tvsum_val.jsonl")})
    assert via_json["top5_mAP"] == pytest.approx(good["top5_mAP"])


def test_aha_on_the_real_annotation_file(shared_data, tmp_path):
    d = shared_data / "tvsum"
    gold = tvsum.load_frame_gold(d / "ydata-tvsum50-anno.tsv")
    assert len(gold) == 50 and all(g["n_annotators"] == 20 for g in gold.values())
    info = json.loads((d / "tvsum_anno.json").read_text())
    rng = np.random.default_rng(1)
    perfect, rand = [], []
    for vid, g in gold.items():
        fps = info[vid]["fps"]
        times = np.arange(0.0, len(g["scores"]) / fps, 1.0)
        idx = np.floor(times * fps + 1e-6).astype(int)
        perfect.append(stream_record(vid, times, g["scores"][idx]))  # native fps from tvsum_anno.json
        rand.append(stream_record(vid, times, rng.random(len(times)), native_frame_index=idx.tolist()))
    tsv = str(d / "ydata-tvsum50-anno.tsv")
    best = score_file(write_jsonl(tmp_path / "p.jsonl", perfect), tsv, "aha", RELEVANCE_ONLY)
    worse = score_file(write_jsonl(tmp_path / "r.jsonl", rand), tsv, "aha", RELEVANCE_ONLY)
    for key in ("top5_mAP", "mAP50", "mAP15"):
        assert best[key] == pytest.approx(100.0) and worse[key] < 80
    assert best["spearman"] == pytest.approx(1.0) and best["kendall"] == pytest.approx(1.0)
    assert abs(worse["spearman"]) < 0.1 and worse["F1_15"] < best["F1_15"] <= 100
    assert set(best["per_category"]) == set(tvsum.CATEGORIES)
    assert {v["alignment"] for v in best["per_item"].values()} == {"native fps"}  # from the sibling tvsum_anno.json
    assert best["protocol"]["n_annotators"] == 20 and best["protocol"]["identical_annotator_rows"] == 0


def test_videos_file_restricts_the_predictions_too(shared_data, tmp_path):
    """UMT / QD-DETR report on the 10 tvsum_val.jsonl videos: a prediction file of all 50 scored with
    videos_file=tvsum_val.jsonl gives the 10-video number, the 40 others set aside and counted."""
    d = shared_data / "tvsum"
    anno = json.loads((d / "tvsum_anno.json").read_text())
    val = [json.loads(line)["vid"] for line in (d / "tvsum_val.jsonl").read_text().splitlines() if line.strip()]
    rng = np.random.default_rng(3)
    rows = [{"vid": v, "pred_saliency_scores": (np.mean(r["anno"], axis=1) + rng.random(len(r["anno"]))).tolist()}
            for v, r in anno.items()]
    all50 = write_jsonl(tmp_path / "all.jsonl", rows)
    only10 = write_jsonl(tmp_path / "val.jsonl", [r for r in rows if r["vid"] in val])
    opt = {"videos_file": str(d / "tvsum_val.jsonl")}
    on_val = score_file(only10, str(d / "tvsum_val.jsonl"))
    for pred in (all50, only10):
        got = score_file(pred, str(d / "tvsum_anno.json"), options=opt)
        assert got["n_videos"] == 10 and list(got["per_item"]) == val
        assert got["top5_mAP"] == pytest.approx(on_val["top5_mAP"])
        subset = got["protocol"]["videos_file_subset"]
        assert subset["n_listed_scored"] == 10
        assert subset["n_predictions_set_aside"] == (40 if pred == all50 else 0)
    full = score_file(all50, str(d / "tvsum_anno.json"))
    assert full["n_videos"] == 50 and full["protocol"]["videos_file_subset"] is None
    subset = score_file(all50, str(d / "tvsum_anno.json"), options=opt)["protocol"]["videos_file_subset"]
    assert subset["set_aside_ids"] == [v for v in anno if v not in val]
    # a listed video without prediction, or an id of no TVSum video, is still an error
    with pytest.raises(ValueError, match="1 gold video ids have no prediction"):
        score_file(write_jsonl(tmp_path / "nine.jsonl", [r for r in rows if r["vid"] != val[0]]),
                   str(d / "tvsum_anno.json"), options=opt)
    with pytest.raises(ValueError, match="not in the gold"):
        score_file(write_jsonl(tmp_path / "x.jsonl", [*rows, {"vid": "nope", "pred_saliency_scores": [1.0]}]),
                   str(d / "tvsum_anno.json"), options=opt)
    listed_twice = tmp_path / "twice.json"
    listed_twice.write_text(json.dumps([val[0], val[0]]))
    with pytest.raises(ValueError, match="duplicate video in the videos_file"):
        score_file(all50, str(d / "tvsum_anno.json"), options={"videos_file": str(listed_twice)})


# ----------------------------------------------------------------------------------- errors


def test_errors(tmp_path, shared_data):
    gold = write_jsonl(tmp_path / "val.jsonl", [{"vid": "v1", "domain": "BK", "label": [[1], [2], [3]]},
                                                {"vid": "v2", "domain": "VT", "label": [[1], [2], [3]]}])
    one = write_jsonl(tmp_path / "one.jsonl", [{"vid": "v1", "pred_saliency_scores": [1, 2, 3]}])
    with pytest.raises(ValueError, match="1 gold video ids have no prediction"):
        score_file(one, gold)
    partial = score_file(one, gold, options={"match_number": False})
    assert partial["n_videos"] == 1 and partial["protocol"]["ids"]["missing_policy"] == "drop"
    nan = tmp_path / "nan.jsonl"
    nan.write_text(json.dumps({"vid": "v1", "pred_saliency_scores": [1, float("nan"), 3]}) + "\n")
    with pytest.raises(ValueError, match="NaN"):
        score_file(str(nan), gold, options={"match_number": False})
    short = write_jsonl(tmp_path / "short.jsonl", [{"vid": "v1", "pred_saliency_scores": [1, 2]}])
    with pytest.raises(ValueError, match="2 pred_saliency_scores for 3"):
        score_file(short, gold, options={"match_number": False})
    with pytest.raises(ValueError, match="unknown TVSum protocol"):
        score_file(one, gold, protocol="nope")
    with pytest.raises(ValueError, match="reads ydata-tvsum50-anno.tsv"):
        score_file(one, gold, protocol="aha")
    clips = write_jsonl(tmp_path / "clips.jsonl", [{"vid": "AwmHb44_ouw", "pred_saliency_scores": [1, 2]}])
    with pytest.raises(ValueError, match="needs stream predictions"):
        score_file(clips, str(shared_data / "tvsum" / "ydata-tvsum50-anno.tsv"), protocol="aha",
                             options={"match_number": False})
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        score_file(str(tmp_path / "empty.jsonl"), gold)


# ------------------------------------------------------------------------------- properties


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=2, max_size=60), st.integers(0, 2 ** 31 - 1))
def test_umt_single_annotator_oracle_is_maximal(scores, seed):
    anno = np.asarray(scores, dtype=float)[:, None]
    has_positive = bool(np.any(anno[:, 0] > np.median(anno[:, 0])))
    oracle = tvsum.umt_top5_map({"v": anno[:, 0]}, {"v": anno})["top5_mAP"]
    assert oracle == (100.0 if has_positive else 0.0)
    noisy = np.random.default_rng(seed).random(len(anno))
    assert 0.0 <= tvsum.umt_top5_map({"v": noisy}, {"v": anno})["top5_mAP"] <= oracle


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.2, 1.0, allow_nan=False), min_size=2, max_size=80), st.integers(0, 2 ** 31 - 1))
def test_aha_perfect_prediction_is_maximal(gt, seed):
    g = np.asarray(gt)
    best = tvsum.aha_video_metrics(g, g)
    assert best["top5_mAP"] == 1.0 and best["mAP50"] == pytest.approx(1.0) and best["mAP15"] == pytest.approx(1.0)
    noisy = tvsum.aha_video_metrics(g, np.random.default_rng(seed).random(len(g)))
    for key in ("top5_mAP", "mAP50", "mAP15"):
        assert 0.0 <= noisy[key] <= best[key] + 1e-12
    assert 0.0 <= noisy["F1_15"] <= 1.0 and 0.0 <= best["F1_15"] <= 1.0  # ties can keep F1 below 1
    assert -1.0 <= noisy["spearman"] <= 1.0 and -1.0 <= noisy["kendall"] <= 1.0


def test_videos_file_in_the_benchmark_command(shared_data, tmp_path):
    """test.benchmark (what tvsum.sh runs): streams of all 50 videos, k-fold tuning, videos_file=tvsum_val.jsonl:
    the 10 listed videos are scored, the 40 others set aside and counted in the results record."""
    from test import benchmark

    d = shared_data / "tvsum"
    anno = json.loads((d / "tvsum_anno.json").read_text())
    rng = np.random.default_rng(4)
    rows = []
    for vid, r in anno.items():
        t = np.arange(2 * len(r["anno"]), dtype=float)
        rows.append(stream_record(vid, t, np.repeat(np.mean(r["anno"], axis=1), 2) + rng.random(len(t)), fps=1.0))
    pred = write_jsonl(tmp_path / "pred.jsonl", rows)
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"alpha": [0.0], "beta": [1.0, 0.5], "epsilon": [0.0], "tau": [0.3]}))
    out = tmp_path / "res.json"
    assert benchmark.main(["--dataset", "tvsum", "--pred", str(pred), "--gold", str(d / "tvsum_anno.json"),
                           "--out", str(out), "--grid", str(grid), "--plots", "0",
                           "--opt", f"videos_file={d / 'tvsum_val.jsonl'}"]) == 0
    res = json.loads(out.read_text())
    assert res["metrics"]["n_videos"] == 10 and len(res["per_item"]) == 10
    subset = res["protocol"]["scorer"]["record"]["videos_file_subset"]
    assert subset["n_listed_scored"] == 10 and subset["n_predictions_set_aside"] == 40
    # the coverage says what was scored: the 10 listed videos, 40 predictions set aside (n_gold: the gold file's)
    cov = res["protocol"]["coverage"]
    assert cov["n_gold"] == 50 and cov["n_scored"] == 10 and cov["n_set_aside_by_videos_file"] == 40


def test_aha_refuses_a_file_whose_native_frames_are_not_the_annotations(shared_data, tmp_path):
    """A 25-fps re-encode of a 29.97-fps TVSum video: its native_frame_index points at other gold
    frames, so gold-perfect scores came out at mAP50 67 with rc 0. Refused; the original file scores 100."""
    d = shared_data / "tvsum"
    tsv = str(d / "ydata-tvsum50-anno.tsv")
    gold = tvsum.load_frame_gold(tsv)
    info = json.loads((d / "tvsum_anno.json").read_text())
    vid = "akI8YFjEmUw"
    n, fps = len(gold[vid]["scores"]), float(info[vid]["fps"])
    times = np.arange(0.0, n / fps - 0.5, 1.0)
    truth = gold[vid]["scores"][np.floor(times * fps + 1e-6).astype(int)]

    def rec(native_fps):
        idx = np.floor(times * native_fps + 1e-6).astype(int).tolist()
        return stream_record(vid, times, truth, duration=n / fps, native_fps=native_fps, native_frame_index=idx)

    one = {"match_number": False}  # one video of the 50
    ok = score_file(write_jsonl(tmp_path / "ok.jsonl", [rec(fps)]), tsv, "aha", RELEVANCE_ONLY, options=one)
    assert ok["mAP50"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="25 fps, the annotated video at 29.97 fps"):
        score_file(write_jsonl(tmp_path / "p25.jsonl", [rec(25.0)]), tsv, "aha", RELEVANCE_ONLY, options=one)
    # without the annotation's fps (no tvsum_anno.json beside the tsv): the frame count tells
    toy = tmp_path / "anno.tsv"
    toy.write_text("v1\tGA\t" + ",".join(["1", "5"] * 150) + "\n")  # 300 native frames (10 s at 30 fps)
    short = stream_record("v1", range(8), np.arange(8.0), duration=8.0, native_fps=25.0,
                          native_frame_index=[25 * i for i in range(8)])
    with pytest.raises(ValueError, match="about 200 native frames .* the annotation 300"):
        score_file(write_jsonl(tmp_path / "cut.jsonl", [short]), str(toy), "aha", RELEVANCE_ONLY)
