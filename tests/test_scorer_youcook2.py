import json
import shutil

import numpy as np
import pytest

from data.benchmarks import captions
from data.benchmarks import youcook2 as yc
from test.evaluate import load_prediction_file
from utils.io import dumps

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="java is not installed (METEOR / PTB tokenizer)")

SALT, ONION = "Add salt to the water.", "Chop onions with a knife."
GOLD = {
    "v_one": {"duration": 60.0, "timestamps": [[0, 10], [20, 30]], "sentences": [SALT, ONION]},
    "v_two": {"duration": 40.0, "timestamps": [[5, 15]], "sentences": ["Stir the soup."]},
}


def score_file(pred, gold_path, protocol=None, options=None, meteor=None) -> dict:
    """Read a prediction file and score it in memory (reusing a METEOR session when given)."""
    name, opts = yc.resolve(protocol, options)
    gold = yc.load_gold(gold_path)
    preds, _ = load_prediction_file(yc, pred, gold, name, opts)
    r = yc.score(preds, gold, name, options, meteor=meteor)
    return {**r, "per_video": r["per_item"], "protocol": r["record"]}


@pytest.fixture
def gold_file(tmp_path):
    p = tmp_path / "yc2_val.json"
    p.write_text(json.dumps(GOLD))
    return str(p)


# ------------------------------------------------------------------------------ conversion


def test_responses_to_segments_keeps_first_caption():
    responses = [{"time": 2, "content": "a"}, {"time": 4, "content": "a"}, {"time": 5, "role": "user", "content": "what now?"},
                 {"time": 6, "content": "b"}, {"time": 8, "content": "c"}, {"time": 10, "content": "c"},
                 {"time": 11, "content": "  "}]
    d = yc.responses_to_segments(responses)
    assert d.captions == ["a", "b", "c"]
    np.testing.assert_array_equal(d.segments, [[0, 4], [4, 6], [6, 10]])
    ref = yc.responses_to_segments(responses, drop_first_caption=True)  # the reference behaviour
    assert ref.captions == ["b", "c"]
    np.testing.assert_array_equal(ref.segments, [[4, 6], [6, 10]])
    assert len(yc.responses_to_segments([])) == 0


def test_responses_out_of_order_or_past_the_video_are_refused():
    """Segments are built from the responses' order: a stream whose times go back, or run past its
    video (milliseconds, another video's responses), is refused rather than re-sorted or scored."""
    responses = [{"time": 6, "content": "b"}, {"time": 2, "content": "a"}]
    with pytest.raises(ValueError, match=r"item v: responses are not in time order \(2 s after 6 s\)"):
        yc.responses_to_segments(responses, qid="v")
    ok = [{"time": 2, "content": "a"}, {"time": 2, "content": "b"}, {"time": 10.5, "content": "c"}]
    assert yc.responses_to_segments(ok, duration=10.0).captions == ["a", "b", "c"]  # equal times; within 1 s
    with pytest.raises(ValueError, match="a response at 12 s, past the video's 10 s"):
        yc.responses_to_segments([*ok, {"time": 12, "content": "d"}], qid="v", duration=10.0)
    # the frames' own tolerance (two frame periods): at 0.5 fps a frame may sit up to 4 s past the gold end
    assert len(yc.responses_to_segments([*ok, {"time": 12, "content": "d"}], duration=10.0, slack=4.0)) == 4


def test_stream_record_responses_must_sit_at_its_frames(gold_file, tmp_path):
    """A stream record (frames + responses, test.run_benchmark) was converted without any check of
    its response times: responses written in milliseconds became the caption [0, 20000] for a 60 s
    video and were scored (exit 0). Responses are made at frames: one at no frame time is refused."""
    t = list(range(60))
    frames = {"time": t, "informative": [0.5] * 60, "relevance": [0.5] * 60, "uncertainty": [0.0] * 60}

    def write(responses):
        p = tmp_path / "pred.jsonl"
        p.write_text(json.dumps({"id": "v_one", "duration": 60.0, "fps": 1.0, "frames": frames,
                                 "responses": responses}) + "\n")
        return str(p)

    name, opts = yc.resolve("official", {"captions": False})
    gold = yc.load_gold(gold_file)
    ok, _ = load_prediction_file(yc, write([{"time": 10.0, "content": SALT}, {"time": 30, "content": ONION}]),
                                 gold, name, opts)
    np.testing.assert_array_equal(ok["v_one"].segments, [[0, 10], [10, 30]])
    for bad, why in (([{"time": 10000, "content": SALT}, {"time": 20000, "content": ONION}], "at 10000 s, at no frame"),
                     ([{"time": 10.5, "content": SALT}], "at 10.5 s, at no frame"),
                     ([{"content": SALT}], "without a time")):
        with pytest.raises(ValueError, match=why):
            load_prediction_file(yc, write(bad), gold, name, opts)


def test_benchmark_coverage_says_what_the_reference_protocol_scored(gold_file, tmp_path, capsys):
    """The reference protocol's scorer skips gold videos without a prediction; with --missing count
    the results said "scored 2 of 2 gold items" (coverage n_scored 2) while the metrics were over
    the one predicted video (n_videos 1)."""
    from test import benchmark
    from utils.io import read_json

    frames = {"time": [0.0, 10.0, 30.0], "informative": [0.5] * 3, "relevance": [0.5] * 3, "uncertainty": [0.0] * 3}
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"id": "v_one", "fps": 0.1, "frames": frames, "responses": [
        {"time": 10.0, "content": SALT}, {"time": 30.0, "content": ONION}]}) + "\n")
    out = tmp_path / "r.json"
    assert benchmark.main(["--dataset", "youcook2", "--pred", str(pred), "--gold", gold_file, "--out", str(out),
                           "--protocol", "reference", "--missing", "count", "--opt", "captions=false"]) == 0
    res = read_json(out)
    assert res["metrics"]["n_videos"] == 1
    cov = res["protocol"]["coverage"]
    assert cov["n_scored"] == 1 and cov["n_left_out_by_scorer"] == 1 and cov["scorer_missing_policy"] == "drop"
    assert "scored 1 of 2 gold items" in capsys.readouterr().out


def test_load_predictions_densevid_json(tmp_path):
    p = tmp_path / "pred.json"
    p.write_text(json.dumps({"results": {"v_one": [{"timestamp": [1, 2], "sentence": "x"}]}}))
    name, opts = yc.resolve(None, None)
    d, _ = load_prediction_file(yc, p, {"v_one": None}, name, opts)
    assert d["v_one"].captions == ["x"] and d["v_one"].segments.tolist() == [[1.0, 2.0]]


def test_load_gold_checks_counts(tmp_path):
    p = tmp_path / "g.json"
    p.write_text(json.dumps({"v": {"timestamps": [[0, 1]], "sentences": ["a", "b"]}}))
    with pytest.raises(ValueError, match="v"):
        yc.load_gold(p)


# ----------------------------------------------------------------------- detection + SODA


def test_segment_iou_official_formula():
    assert yc.segment_iou([0, 10], [5, 15]) == pytest.approx(1 / 3)
    assert yc.segment_iou([0, 2], [3, 5]) == 0.0
    assert 0.999999 < yc.segment_iou([0, 10], [0, 10]) < 1.0
    # exactly one half is just below 0.5 with the +1e-8 of the official evaluator
    assert yc.segment_iou([10, 20], [10, 30]) < 0.5
    assert yc.caption_pairs(yc.iou_matrix(np.array([[10, 30]]), np.array([[10, 20]])), 0.5) == [(0, None)]


def test_detection_scores_hand_computed():
    gold = np.array([[0, 10], [20, 30]])
    pred = np.array([[0, 10], [5, 15], [40, 50]])
    p, r = yc.detection_scores(yc.iou_matrix(pred, gold))
    assert p == pytest.approx([2 / 3, 1 / 3, 1 / 3, 1 / 3])
    assert r == pytest.approx([0.5] * 4)
    # strict ">" for coverage: an IoU of exactly 0.5 does not cover at 0.5
    p2, _ = yc.detection_scores(np.array([[0.5]]), thresholds=(0.5,))
    assert p2 == [0.0]


def test_caption_pairs_include_unmatched():
    ious = np.array([[0.6, 0.0], [0.4, 0.0]])  # [gold, pred]
    assert yc.caption_pairs(ious, 0.3) == [(0, 0), (0, 1), (1, None)]
    assert yc.caption_pairs(ious, 0.5) == [(0, 0), (1, None)]


def test_ordered_assignment_preserves_order():
    s = np.array([[0.9, 0.8], [0.85, 0.1]])
    # crossing pairs (0,1)+(1,0) = 1.65 are not allowed; (0,0)+(1,1) = 1.0 is the best in order
    assert yc.ordered_assignment_score(s) == pytest.approx(1.0)
    assert yc.ordered_assignment_score(np.array([[0.2, 0.7, 0.1]])) == pytest.approx(0.7)
    # SODA_c: best 1.0 with 2 preds and 2 GT -> p = r = 0.5
    assert yc.soda_c(np.ones((2, 2)), s) == pytest.approx(0.5)
    assert yc.soda_c(np.zeros((2, 0)), np.zeros((2, 0))) == 0.0


def test_detection_only_missing_video_scores_zero(gold_file, tmp_path):
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"id": "v_one", "responses": [
        {"time": 10, "content": "add salt"}, {"time": 20, "content": "cut"}, {"time": 30, "content": "chop"}]}) + "\n")
    r = score_file(str(pred), gold_file, options={"captions": False})
    # v_one segments [0,10], [10,20], [20,30]: 2 of 3 preds and 2 of 2 GT covered at every tIoU
    assert r["per_video"]["v_one"]["Precision_Mean"] == pytest.approx(2 / 3)
    assert r["per_video"]["v_one"]["F1_Score"] == pytest.approx(0.8)
    assert r["per_video"]["v_two"]["Recall_Mean"] == 0.0 and r["per_video"]["v_two"]["n_preds"] == 0
    m = r["metrics"]
    assert m["Precision_Mean"] == pytest.approx(100 / 3) and m["Recall_Mean"] == pytest.approx(50.0)
    assert m["F1_Score"] == pytest.approx(40.0) and m["n_preds"] == 1.5
    assert r["protocol"]["ids"]["n_missing"] == 1 and r["protocol"]["missing_video"].startswith("empty")
    # the reference conversion drops [0,10] "add salt": recall of v_one falls to 1/2
    r2 = score_file(str(pred), gold_file, options={"captions": False, "drop_first_caption": True})
    assert r2["per_video"]["v_one"]["Recall_Mean"] == pytest.approx(0.5)
    assert r2["protocol"]["drop_first_caption"] is True
    # the reference driver: first caption dropped and v_two (no prediction) not scored at all
    r3 = score_file(str(pred), gold_file, protocol="reference", options={"captions": False})
    assert r3["metrics"]["n_videos"] == 1 and r3["protocol"]["ids"]["n_missing"] == 1 and list(r3["per_video"]) == ["v_one"]
    assert r3["metrics"]["Recall_Mean"] == pytest.approx(50.0) and r3["metrics"]["Precision_Mean"] == pytest.approx(50.0)
    assert r3["protocol"]["protocol"] == "reference" and r3["protocol"]["drop_first_caption"] is True
    with pytest.raises(ValueError, match="protocol"):
        score_file(str(pred), gold_file, protocol="oracle")


def test_real_gold_perfect_detection(shared_data, tmp_path):
    gold_path = shared_data / "youcook2" / "yc2_val.json"
    gold = yc.load_gold(gold_path)
    assert len(gold) == 457
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"results": {v: [{"timestamp": list(s), "sentence": c}
                                                for s, c in zip(d.segments.tolist(), d.captions)]
                                            for v, d in gold.items()}}))
    r = score_file(str(pred), str(gold_path), options={"captions": False})
    for t in yc.IOU_THRESHOLDS:
        assert r["metrics"][f"Precision@{t}"] == pytest.approx(100.0)
        assert r["metrics"][f"Recall@{t}"] == pytest.approx(100.0)
    assert r["metrics"]["F1_Score"] == pytest.approx(100.0) and r["protocol"]["ids"]["n_missing"] == 0


# ------------------------------------------------------------------------- with Java (METEOR)


@pytest.fixture(scope="module")
def meteor():
    if shutil.which("java") is None:
        pytest.skip("java is not installed (METEOR)")
    with captions.MeteorSession() as m:
        yield m


@pytest.mark.java
@needs_java
def test_ptb_tokenize():
    assert captions.ptb_tokenize(["Add salt, then stir!", "", "Add salt, then stir!"]) == \
        ["add salt then stir", "", "add salt then stir"]


@pytest.mark.java
@needs_java
def test_meteor_session_agrees_with_pycocoevalcap(meteor):
    from pycocoevalcap.meteor.meteor import Meteor

    pairs = [("add salt to the water", "add salt to the water"),
             ("chop the onions", "chop onions with a knife"),
             ("stir the soup", "qwertyuiopasdf")]
    gts = {str(i): [r] for i, (_, r) in enumerate(pairs)}
    res = {str(i): [h] for i, (h, _) in enumerate(pairs)}
    ref_corpus, ref_segments = Meteor().compute_score(gts, res)
    stats = meteor.stats(pairs)
    assert meteor.corpus_scores([stats])[0] == pytest.approx(ref_corpus, abs=1e-9)
    assert meteor.segment_scores(stats) == pytest.approx(ref_segments, abs=1e-9)
    assert meteor.segment_scores(stats)[0] == 1.0 and meteor.segment_scores(stats)[2] == 0.0
    # the corpus score of a group is not the mean of its segment scores
    assert ref_corpus != pytest.approx(np.mean(ref_segments))


@pytest.mark.java
@needs_java
def test_full_evaluation_hand_computed(gold_file, tmp_path, meteor):
    # v_one: both GT captions exactly, plus an unmatched third caption; v_two: no prediction
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps({"id": "v_one", "responses": [
        {"time": 10, "content": SALT}, {"time": 20, "content": "Stir the pot."},
        {"time": 30, "content": ONION}]}) + "\n")
    # segments: [0,10] SALT (exact), [10,20] unmatched, [20,30] ONION (exact)
    r = score_file(str(pred), gold_file, meteor=meteor)
    v1 = r["per_video"]["v_one"]
    # CIDEr per threshold: IDF over 3 pairs; the exact pairs have cosine 1 in every n-gram order
    # (the two references share no word), the random-reference pair 0 -> 10 * (1 + 1 + 0) / 3
    assert v1["CIDEr"] == pytest.approx(20 / 3)
    assert 0.0 < v1["METEOR"] < 1.0
    # SODA_c: 2 exact matches (METEOR 1, IoU ~1) -> p = 2/3, r = 1 -> F = 0.8; fewer than 11
    # predictions and identical sentences: the official and the corrected variant agree
    assert v1["SODA_c"] == pytest.approx(0.8, rel=1e-6)
    assert v1["SODA_c_official"] == v1["SODA_c_corrected"] == v1["SODA_c"]
    assert v1["Precision_Mean"] == pytest.approx(2 / 3) and v1["Recall_Mean"] == 1.0
    assert r["per_video"]["v_two"]["CIDEr"] == 0.0 and r["per_video"]["v_two"]["SODA_c"] == 0.0
    assert r["metrics"]["CIDEr"] == pytest.approx(1000 / 3)
    assert r["metrics"]["SODA_c"] == pytest.approx(40.0, rel=1e-6)

    # perfect prediction for v_one only: METEOR 1 and CIDEr 10 for that video
    pred.write_text(json.dumps({"id": "v_one", "responses": [
        {"time": 10, "content": SALT}, {"time": 20, "content": "Chop onions with a knife"}]}) + "\n")
    gold2 = tmp_path / "g2.json"
    gold2.write_text(json.dumps({"v_one": {"duration": 60, "timestamps": [[0, 10], [10, 20]],
                                           "sentences": [SALT, ONION]}}))
    r = score_file(str(pred), str(gold2), meteor=meteor)
    assert r["metrics"]["METEOR"] == pytest.approx(100.0)
    assert r["metrics"]["CIDEr"] == pytest.approx(1000.0)
    assert r["metrics"]["SODA_c"] == pytest.approx(100.0, rel=1e-6)
    assert r["protocol"]["dataset"] == "youcook2" and r["protocol"]["iou_thresholds"] == [0.3, 0.5, 0.7, 0.9]
    dumps(r)  # JSON-able, no NaN


# ------------------------------------------------------------------ SODA_c official vs corrected


def test_official_column_order_is_the_text_order_of_the_keys():
    assert yc.official_column_order(10) == list(range(10))  # '0'..'9' sort like numbers
    assert yc.official_column_order(12) == [0, 1, 10, 11, 2, 3, 4, 5, 6, 7, 8, 9]
    ious = np.eye(12)
    assert [(g, j, p) for g, j, p in yc.soda_pairs(ious, "official")][2] == (2, 2, 10)
    assert all(j == p for _, j, p in yc.soda_pairs(ious, "corrected"))


STEPS = ["Boil the water in a pot.", "Add salt to the water.", "Chop the onions finely.", "Slice the carrots.",
         "Heat oil in a pan.", "Fry the onions until golden.", "Add the carrots to the pan.", "Pour in the stock.",
         "Simmer for ten minutes.", "Season with pepper.", "Stir in the cream.", "Serve the soup hot."]


@pytest.mark.java
@needs_java
def test_official_soda_shuffles_meteor_columns_from_11_predictions(tmp_path, meteor):
    """12 perfect predictions (exact segments and sentences): the corrected SODA_c is 1; the official
    evaluator reads METEOR columns in the text order of the keys, so cell (g, g) holds
    METEOR(hypothesis = GT g, reference = prediction order[g]): the mismatched cells lower it."""
    segs = [[10 * i, 10 * i + 8] for i in range(12)]
    gold = tmp_path / "g.json"
    gold.write_text(json.dumps({"v": {"duration": 130.0, "timestamps": segs, "sentences": STEPS}}))
    pred = tmp_path / "p.json"
    pred.write_text(json.dumps({"v": [{"timestamp": s, "sentence": c} for s, c in zip(segs, STEPS)]}))
    r = score_file(str(pred), str(gold), meteor=meteor)
    v = r["per_video"]["v"]
    assert v["SODA_c_corrected"] == pytest.approx(1.0, abs=1e-6)
    # the IoU matrix is diagonal, so the DP takes every diagonal cell: F = mean of the cells
    tok = captions.ptb_tokenize(STEPS)
    order = yc.official_column_order(12)
    cells = meteor.segment_scores(meteor.stats([(tok[g], tok[order[g]]) for g in range(12)]))
    assert v["SODA_c_official"] == pytest.approx(float(np.mean(cells)), abs=1e-6)
    assert v["SODA_c_official"] < 0.5  # 10 of 12 diagonal cells compare different steps
    assert r["metrics"]["SODA_c"] == pytest.approx(100 * v["SODA_c_official"])  # the default protocol
    corrected = score_file(str(pred), str(gold), protocol="corrected", meteor=meteor)
    assert corrected["metrics"]["SODA_c"] == pytest.approx(100.0, abs=1e-4)
    # every other metric is the same under both protocols
    drop = ("SODA_c",)
    assert {k: x for k, x in r["metrics"].items() if k not in drop} == \
        {k: x for k, x in corrected["metrics"].items() if k not in drop}
    # 10 predictions: no shuffle, identical sentences -> the variants agree
    pred.write_text(json.dumps({"v": [{"timestamp": s, "sentence": c} for s, c in zip(segs[:10], STEPS[:10])]}))
    ten = score_file(str(pred), str(gold), meteor=meteor)["per_video"]["v"]
    assert ten["SODA_c_official"] == pytest.approx(ten["SODA_c_corrected"], abs=1e-9)


@pytest.mark.java
@needs_java
def test_official_soda_swaps_hypothesis_and_reference(tmp_path, meteor):
    """One prediction on the exact GT segment with a shorter sentence: the official SODA_c scores
    METEOR(hypothesis = GT, reference = prediction), the corrected one the opposite; METEOR is not
    symmetric, so they differ, each equal to the session's own segment score."""
    gold = tmp_path / "g.json"
    gold.write_text(json.dumps({"v": {"duration": 20.0, "timestamps": [[0, 10]], "sentences": ["Add salt to the boiling water."]}}))
    pred = tmp_path / "p.json"
    pred.write_text(json.dumps({"v": [{"timestamp": [0, 10], "sentence": "Add salt."}]}))
    v = score_file(str(pred), str(gold), meteor=meteor)["per_video"]["v"]
    g, p = captions.ptb_tokenize(["Add salt to the boiling water.", "Add salt."])
    official, corrected = meteor.segment_scores(meteor.stats([(g, p), (p, g)]))
    iou = yc.segment_iou([0, 10], [0, 10])
    assert v["SODA_c_official"] == pytest.approx(official * iou) and v["SODA_c_corrected"] == pytest.approx(corrected * iou)
    assert abs(official - corrected) > 0.05


@pytest.mark.java
@needs_java
def test_several_prediction_files_share_one_meteor_process(gold_file, tmp_path, monkeypatch):
    from test.evaluate import main

    starts = []
    real = captions.MeteorSession.__init__

    def counting(self, *a, **kw):
        starts.append(1)
        real(self, *a, **kw)

    monkeypatch.setattr(captions.MeteorSession, "__init__", counting)
    files = []
    for k, text in enumerate((SALT, ONION, "Stir the soup.")):
        p = tmp_path / f"p{k}.jsonl"
        p.write_text(json.dumps({"id": "v_one", "responses": [{"time": 10, "content": text}]}) + "\n")
        files += ["--pred_file", str(p)]
    out = tmp_path / "all.json"
    assert main(["--func", "youcook2", *files, "--gold_file", gold_file, "--output_file", str(out)]) == 0
    assert len(starts) == 1
    res = json.loads(out.read_text())["results"]
    assert len(res) == 3 and res[str(tmp_path / "p0.jsonl")]["per_item"]["v_one"]["METEOR"] > 0.5
