"""Bad input at every boundary of the benchmark layer: a clear error, never a changed metric with exit 0.

Property tests (hypothesis) corrupt one field of a valid prediction file, gold file or raw annotation
file, of every benchmark, and check that scoring / converting refuses it with an error naming the
problem (and the file and line where there is one), while the clean files score normally.
"""
from __future__ import annotations

import copy
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data import benchmarks
from data.benchmarks import validate as V
from test.evaluate import evaluate_files, main as evaluate_main
from test.postprocess import FusionParams

FAST = settings(max_examples=25, deadline=None)
RELEVANCE = FusionParams(alpha=0.0, beta=1.0, epsilon=0.0, tau=0.3)


def jsonl(path: Path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def stream(rid, n=12, fps=1.0, duration=None, rng=None):
    rng = rng or np.random.default_rng(0)
    t = (np.arange(n) / fps).tolist()
    rec = {"id": rid, "fps": fps, "frames": {"time": t, "informative": rng.random(n).tolist(),
                                             "relevance": rng.random(n).tolist(), "uncertainty": [0.0] * n},
           "responses": [{"time": 2.0, "content": "a"}, {"time": 6.0, "content": "b"}]}
    if duration is not None:
        rec["duration"] = duration
    return rec


# ------------------------------------------------------------------------- valid small cases


def case(name: str, d: Path) -> tuple[str, list[dict], str, dict]:
    """(benchmark, stream prediction records, gold file, options) of a valid two-item case."""
    if name == "tvsum":
        gold = jsonl(d / "val.jsonl", [{"vid": v, "domain": "BK", "label": np.random.default_rng(k).integers(1, 6, (6, 4)).tolist()}
                                       for k, v in enumerate(("a", "b"))])
        return "tvsum", [stream("a", duration=12.0), stream("b", duration=12.0)], gold, {}
    if name == "charades":
        (d / "charades_sta_test.txt").write_text("A 2.0 6.0##q one\nB 1.0 4.0##q two\n")
        (d / "Charades_v1_test.csv").write_text("id,length\nA,12.0\nB,12.0\n")
        return "charades", [stream("A#0", duration=12.0), stream("B#1", duration=12.0)], str(d / "charades_sta_test.txt"), {}
    if name == "qvh":
        gold = jsonl(d / "qvh.jsonl", [{"qid": q, "duration": 12, "vid": f"v{q}_0.0_12.0", "relevant_clip_ids": [1, 2],
                                        "saliency_scores": [[4, 3, 2], [1, 2, 4]], "relevant_windows": [[2, 6]]}
                                       for q in (1, 2)])
        return "qvh", [stream("1", duration=12.0), stream("2", duration=12.0)], gold, {"mr_windows": "offline"}
    if name == "hisum":
        import h5py

        with h5py.File(d / "g.h5", "w") as f:
            for k in ("h0", "h1"):
                f[f"{k}/gtscore"] = np.random.default_rng(len(k)).random(12)
        return "hisum", [stream("h0", duration=12.0), stream("h1", duration=12.0)], str(d / "g.h5"), {}
    if name == "youcook2":
        (d / "yc2.json").write_text(json.dumps({v: {"duration": 12.0, "timestamps": [[0, 2], [2, 6]], "sentences": ["a", "b"]}
                                                for v in ("v_a", "v_b")}))
        return "youcook2", [stream("v_a", duration=12.0), stream("v_b", duration=12.0)], str(d / "yc2.json"), {"captions": False}
    raise ValueError(name)


STREAM_CASES = ("tvsum", "charades", "qvh", "hisum", "youcook2")


def score(name, d, recs, gold, opts):
    path = jsonl(d / "pred.jsonl", recs)
    return evaluate_files(name, path, gold, None, RELEVANCE, opts)


@pytest.mark.parametrize("name", STREAM_CASES)
def test_clean_cases_score(name, tmp_path):
    bench, recs, gold, opts = case(name, tmp_path)
    res = score(bench, tmp_path, recs, gold, opts)
    assert res["headline"]["value"] is not None and len(res["per_item"]) == 2


# ---------------------------------------------------------------------- corrupted predictions

CORRUPTIONS = {
    # name: (mutation of one record, expected message)
    "reversed_times": (lambda r, k: r["frames"].__setitem__("time", r["frames"]["time"][::-1]), "increase strictly"),
    "all_zero_times": (lambda r, k: r["frames"].__setitem__("time", [0.0] * len(r["frames"]["time"])), "increase strictly"),
    "times_in_ms": (lambda r, k: r["frames"].__setitem__("time", [t * 1000 for t in r["frames"]["time"]]), "past the video"),
    "negative_time": (lambda r, k: r["frames"]["time"].__setitem__(0, -1.0), "below 0"),
    "nan_score": (lambda r, k: r["frames"]["relevance"].__setitem__(k, math.nan), "NaN"),
    "inf_score": (lambda r, k: r["frames"]["informative"].__setitem__(k, math.inf), "NaN or infinite"),
    "bool_score": (lambda r, k: r["frames"]["relevance"].__setitem__(k, True), "numbers only"),
    "null_score": (lambda r, k: r["frames"]["uncertainty"].__setitem__(k, None), "numbers only"),
    "string_score": (lambda r, k: r["frames"]["relevance"].__setitem__(k, "0.5"), "numbers only"),
    "short_array": (lambda r, k: r["frames"]["relevance"].pop(k), "differ in length"),
    "null_id": (lambda r, k: r.__setitem__("id", None), "must be a string or an integer"),
    "unknown_id": (lambda r, k: r.__setitem__("id", "not-in-the-gold"), "not in the gold"),
}


@FAST
@given(st.sampled_from(STREAM_CASES), st.sampled_from(sorted(CORRUPTIONS)), st.integers(0, 1), st.integers(0, 10))
def test_a_corrupted_prediction_is_refused_with_its_line(name, corruption, which, k):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        bench, recs, gold, opts = case(name, d)
        bad = copy.deepcopy(recs)
        mutate, message = CORRUPTIONS[corruption]
        mutate(bad[which], k)
        with pytest.raises(ValueError, match=message) as err:
            score(bench, d, bad, gold, opts)
        assert f"pred.jsonl:{which + 1}" in str(err.value)  # the file and the line


FILE_CORRUPTIONS = {
    "empty": ("", "is empty"),
    "blank": ("\n\n", "is empty"),
    "null_line": ("null\n", "must be a JSON object"),
    "number_line": ("3\n", "must be a JSON object"),
    "list_line": ("[1, 2]\n", "must be a JSON object"),
    "torn_last_line": ('{"id": "x", "frames": {"time": [0.0, 1.', "invalid JSON"),
}


@FAST
@given(st.sampled_from(STREAM_CASES), st.sampled_from(sorted(FILE_CORRUPTIONS)), st.booleans())
def test_broken_prediction_files_are_refused(name, corruption, after_valid_lines):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        bench, recs, gold, opts = case(name, d)
        text, message = FILE_CORRUPTIONS[corruption]
        prefix = "".join(json.dumps(r) + "\n" for r in recs) if after_valid_lines and text.strip() else ""
        (d / "pred.jsonl").write_text(prefix + text)
        with pytest.raises(ValueError, match=message) as err:
            evaluate_files(bench, str(d / "pred.jsonl"), gold, None, RELEVANCE, opts)
        if corruption == "torn_last_line" and prefix:  # after complete lines: said to be torn, with its line
            assert "torn last line" in str(err.value) and f"pred.jsonl:{len(recs) + 1}" in str(err.value)


@pytest.mark.parametrize("name", STREAM_CASES)
def test_duplicate_ids_and_the_command_line_exit_status(name, tmp_path, capsys):
    bench, recs, gold, opts = case(name, tmp_path)
    path = jsonl(tmp_path / "pred.jsonl", [recs[0], recs[1], recs[0]])
    with pytest.raises(ValueError, match="duplicate prediction id .*first at .*pred.jsonl:1"):
        evaluate_files(bench, path, gold, None, RELEVANCE, opts)
    argv = ["--func", bench, "--pred_file", path, "--gold_file", gold, *[f"--opt={k}={json.dumps(v)}" for k, v in opts.items()]]
    assert evaluate_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("evaluate: error:") and "pred.jsonl:3" in err


@pytest.mark.parametrize("name", benchmarks.NAMES)
def test_unknown_options_and_protocols_are_refused(name):
    mod = benchmarks.get(name)
    with pytest.raises(ValueError, match="unknown option 'windw'"):
        mod.resolve(None, {"windw": 8})
    with pytest.raises(ValueError, match="protocol"):
        mod.resolve("bogus", None)
    mod.resolve(None, None)  # the defaults are valid


# ----------------------------------------------------------------------------- corrupted gold

GOLD_CORRUPTIONS = {
    "charades": [("A 6.0 2.0##q one\nB 1.0 4.0##q two\n", "reversed"), ("A -1.0 2.0##q one\n", "before 0"),
                 ("A 13.0 14.0##q one\n", "after the video's end"), ("A nan 2.0##q one\n", "not finite"),
                 ("A x 2.0##q one\n", "not a number"), ("Z 1.0 2.0##q one\n", "no length"), ("A 2.0 2.0##q\n", "empty")],
    "qvh": [({"saliency_scores": [[4, 3, math.nan], [1, 2, 4]]}, "NaN"), ({"saliency_scores": [[5, 3, 2], [1, 2, 4]]}, "0..4"),
            ({"relevant_clip_ids": [1, 9]}, "clip indices"), ({"relevant_windows": [[6, 2]]}, "reversed"),
            ({"qid": None}, "qid must be"), ({"duration": 0}, "must be > 0"), ({"qid": 2}, "duplicate qid")],
    "youcook2": [({"timestamps": [[2, 0], [2, 6]]}, "reversed"), ({"timestamps": [[0, math.nan], [2, 6]]}, "not finite"),
                 ({"timestamps": [[-1, 2], [2, 6]]}, "before 0"), ({"sentences": ["a", ""]}, "non-empty sentence"),
                 ({"duration": -3}, "must be > 0"), ({"timestamps": [[0, 2]]}, "equal, non-empty")],
    "tvsum": [({"label": [[1, math.nan, 3, 4]] * 6}, "NaN"), ({"label": [[1, True, 3, 4]] * 6}, "numbers only"),
              ({"vid": None}, "must be a string"), ({"label": None}, "missing")],
}


@FAST
@given(st.sampled_from(sorted(GOLD_CORRUPTIONS)), st.data())
def test_a_corrupted_gold_file_is_refused(name, data):
    change, message = data.draw(st.sampled_from(GOLD_CORRUPTIONS[name]))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        bench, recs, gold, opts = case(name, d)
        if name == "charades":
            Path(gold).write_text(change)
        elif name == "youcook2":
            g = json.loads(Path(gold).read_text())
            g["v_a"].update(change)
            Path(gold).write_text(json.dumps(g))
        else:
            rows = [json.loads(x) for x in Path(gold).read_text().splitlines()]
            rows[0].update(change)
            jsonl(Path(gold), rows)
        with pytest.raises(ValueError, match=message):
            score(bench, d, recs, gold, opts)


def test_hisum_gold_with_nan_and_magqa_gold_with_a_reversed_span(tmp_path):
    import h5py

    from data.benchmarks import magqa

    with h5py.File(tmp_path / "g.h5", "w") as f:
        f["v/gtscore"] = np.r_[0.1, np.nan, 0.3]
    with pytest.raises(ValueError, match="gtscore contains NaN"):
        benchmarks.get("hisum").load_gold(tmp_path / "g.h5", "official", {})
    g = tmp_path / "m.json"
    g.write_text(json.dumps([{"question_id": 1, "conversation": [{"role": "user", "content": "q"}],
                              "answer": [{"content": "a", "time": [9, 3]}]}]))
    with pytest.raises(ValueError, match="reversed"):
        magqa.load_gold(g)


# ------------------------------------------------------------------------------ converters

CONVERTER_CASES = {
    "charades": ("A 6.0 2.0##q\n", "reversed"),
    "charades_neg": ("A -2.0 2.0##q\n", "before 0"),
    "charades_outside": ("A 20.0 25.0##q\n", "after the video's end"),
    "charades_zero_length": ("A 3.0 3.0##q\n", "empty"),
    "youcook2": ({"v_a": {"duration": 0, "timestamps": [[0, 1]], "sentences": ["a"]}}, "must be > 0"),
    "youcook2_reversed": ({"v_a": {"duration": 9, "timestamps": [[5, 1]], "sentences": ["a"]}}, "reversed"),
    "qvh_null_qid": ({"qid": None, "query": "q", "vid": "x_0.0_10.0", "duration": 10}, "qid must be"),
    "qvh_zero_duration": ({"qid": 1, "query": "q", "vid": "x_0.0_10.0", "duration": 0}, "must be > 0"),
    "magqa_null_id": ([{"question_id": None, "video": "a.mp4", "conversation": [{"role": "user", "content": "q"}]}],
                      "question_id must be"),
    "magqa_negative_time": ([{"question_id": 1, "video": "a.mp4", "conversation": [{"role": "user", "content": "q", "time": -2}]}],
                            "must be >= 0"),
    "hisum_zero_duration": ("video_id,youtube_id,duration,labels\nv1,yt1,0,[1]\n", "must be > 0"),
    "hisum_empty_id": ("video_id,youtube_id,duration,labels\n,yt1,10,[1]\n", "video_id must be"),
    "tvsum_zero_length": ("category\tvideo_id\ttitle\turl\tlength\nVT\tv1\tt\tu\t0:00\n", "zero length"),
}


@pytest.mark.parametrize("case_name", sorted(CONVERTER_CASES))
def test_converters_refuse_invalid_annotations_with_file_and_line(case_name, tmp_path):
    content, message = CONVERTER_CASES[case_name]
    name = case_name.split("_")[0]
    mod = benchmarks.get(name)
    if name == "charades":
        (tmp_path / "sta.txt").write_text("B 1.0 2.0##fine\n" + content)
        (tmp_path / "len.csv").write_text("id,length\nA,10.0\nB,10.0\n")
        with pytest.raises(ValueError, match=message) as err:
            mod.convert(tmp_path / "sta.txt", tmp_path / "len.csv")
        assert "sta.txt:2" in str(err.value) and "--on_invalid skip" in str(err.value)
        items, skipped = mod.convert(tmp_path / "sta.txt", tmp_path / "len.csv", on_invalid="skip")
        assert [it["id"] for it in items] == ["B#0"] and len(skipped) == 1 and "sta.txt:2" in skipped[0]
        return
    path = tmp_path / "input"
    if name == "hisum":
        path.write_text(content)
        (tmp_path / "split.json").write_text(json.dumps({"test_keys": ["v1"]}))
        with pytest.raises(ValueError, match=message) as err:
            mod.convert(path, tmp_path / "split.json", missing_title="empty")
        assert "input:2" in str(err.value)
        return
    if name == "tvsum":
        path.write_text(content)
        with pytest.raises(ValueError, match=message) as err:
            mod.convert(path)
        assert "input:2" in str(err.value)
        return
    if name == "qvh":
        path.write_text(json.dumps({"qid": 9, "query": "ok", "vid": "y_0.0_10.0", "duration": 10}) + "\n" + json.dumps(content) + "\n")
        with pytest.raises(ValueError, match=message) as err:
            mod.convert(path)
        assert "input:2" in str(err.value)
        return
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message):
        mod.convert(path)


def test_span_helper_policies():
    assert V.span([1, 30], "s", duration=10, beyond="clip") == (1.0, 10.0, True)
    with pytest.raises(V.InputError, match="ends after the video"):
        V.span([1, 30], "s", "f.txt", 3, duration=10)
    with pytest.raises(V.InputError, match="f.txt:3: s is reversed"):
        V.span([5, 1], "s", "f.txt", 3)
    assert V.frame_times([0, 0.5, 1.0], "t", duration=1.0).tolist() == [0.0, 0.5, 1.0]
    assert V.item_id(7) == "7"
    with pytest.raises(V.InputError):
        V.item_id(None)


finite_or_not = st.one_of(st.floats(-5, 40, allow_nan=False), st.sampled_from([math.nan, math.inf, -math.inf]))


@FAST
@given(st.lists(st.tuples(finite_or_not, finite_or_not), min_size=1, max_size=5), st.floats(0.5, 30))
def test_converted_spans_are_valid_or_the_line_is_refused(spans, duration):
    """Charades-STA and YouCook2 converters: whatever the raw spans, every written span satisfies
    0 <= start < end <= duration (an overshooting end clipped), or the conversion stops with an error."""
    from data.benchmarks import charades, youcook2

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "sta.txt").write_text("".join(f"V {s} {e}##q {i}\n" for i, (s, e) in enumerate(spans)))
        (d / "len.csv").write_text(f"id,length\nV,{duration}\n")
        try:
            items, _ = charades.convert(d / "sta.txt", d / "len.csv")
        except ValueError as e:
            assert "sta.txt:" in str(e)
        else:
            for it, (s, e) in zip(items, spans):
                (a, b), = it["gold"]["timestamps"]
                assert 0 <= a < b <= duration and a == s and b == min(e, duration)
        (d / "yc2.json").write_text(json.dumps({"v": {"duration": duration, "timestamps": [list(x) for x in spans],
                                                      "sentences": [f"s{i}" for i in range(len(spans))]}}))
        try:
            items = youcook2.convert(d / "yc2.json")
        except ValueError as e:
            assert "yc2.json" in str(e)
        else:
            for ans in items[0]["gold"]["answer"]:
                a, b = ans["time"]
                assert 0 <= a <= b <= duration
