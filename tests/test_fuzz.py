"""Fuzz suite of the error contract (instructions/errors.md): generated bad inputs against
``test.live_infer``, ``test.run_benchmark``, ``test.evaluate``, ``datasets/convert.py`` and
train.py's data path (``data.mixture.build_mixture``).

Every input must end in one of:
* a clean error: exit 2, the last stderr line ``prog: error: ...``, no traceback, no model loaded
  (for the data path: a ValueError / FileNotFoundError naming the file);
* a recorded skip (a benchmark item in ``PRED.errors.jsonl`` with its reason; a training item in the
  data set's skip log);
* for inputs that only look different (a byte-order mark, CRLF line ends, blank lines, an unknown
  key): the same result as the clean input.
Anything else (a traceback, exit 0 with another result) fails. Bad values are generated with
hypothesis (derandomized, so a run is reproducible) over fixtures written here, and damaged videos
are every container cut at many points. ``COUNTS`` tallies the inputs per entry point; the last test
checks the total is at least 500 when the whole module ran. The large part is marked slow.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import fakes
from tests.fuzzing import FILE_DAMAGE, NEUTRAL, clean_error, damage_jsonl, mutate_records
from tests.videos import write_test_video
from utils import io as uio
from tests.script_loader import load_script

COUNTS: Counter = Counter()
FAST = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ---------------------------------------------------------------------------- test.evaluate


def _tvsum_fixture(d: Path):
    gold = [{"vid": f"v{i}", "domain": "BK", "label": [[1 + (i + k) % 5, 1 + (2 * i + k) % 5] for k in range(5)]} for i in range(4)]
    preds = []
    for i in range(4):
        n = 10
        preds.append({"id": f"v{i}", "frames": {"time": [float(t) for t in range(n)],
                                               "informative": [((i + t) % 7) / 7 for t in range(n)],
                                               "relevance": [((3 * i + t) % 5) / 5 for t in range(n)],
                                               "uncertainty": [0.1 * ((t % 3) - 1) for t in range(n)]}})
    return gold, preds


def _qvh_fixture(d: Path):
    gold, preds = [], []
    for i in range(4):
        clips = [2 + i, 3 + i, 4 + i]
        gold.append({"qid": i, "query": f"query {i}", "duration": 30, "vid": f"vid{i}_0.0_30.0",
                     "relevant_windows": [[2 * clips[0], 2 * clips[-1] + 2]], "relevant_clip_ids": clips,
                     "saliency_scores": [[4, 3, 2], [2, 4, 4], [1, 2, 3]]})
        preds.append({"qid": i, "query": f"query {i}", "vid": f"vid{i}_0.0_30.0",
                      "pred_relevant_windows": [[2.0 * (2 + i), 2.0 * (5 + i), 0.9], [0.0, 4.0, 0.3]],
                      "pred_saliency_scores": [round(((7 * i + k) % 11) / 11, 3) for k in range(15)]})
    return gold, preds


EVAL = {"tvsum": _tvsum_fixture, "qvh": _qvh_fixture}


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    """Clean gold/prediction files and their metrics, per benchmark."""
    from test import evaluate

    d = tmp_path_factory.mktemp("fuzz_eval")
    out = {}
    for name, make in EVAL.items():
        gold, preds = make(d)
        g, p = d / f"{name}_gold.jsonl", d / f"{name}_pred.jsonl"
        g.write_bytes(damage_jsonl(gold, "none"))
        p.write_bytes(damage_jsonl(preds, "none"))
        assert evaluate.main(["--func", name, "--gold_file", str(g), "--pred_file", str(p), "--output_file", str(d / f"{name}.json")]) == 0
        out[name] = (gold, preds, uio.read_json(d / f"{name}.json")["metrics"])
    return d, out


def _evaluate(d, name, gold_bytes, pred_bytes, capsys, tag):
    from test import evaluate

    g, p, o = d / f"g_{tag}.jsonl", d / f"p_{tag}.jsonl", d / f"o_{tag}.json"
    g.write_bytes(gold_bytes)
    p.write_bytes(pred_bytes)
    o.unlink(missing_ok=True)
    rc = evaluate.main(["--func", name, "--gold_file", str(g), "--pred_file", str(p), "--output_file", str(o)])
    return rc, capsys.readouterr().err, (uio.read_json(o)["metrics"] if rc == 0 else None)


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@FAST
@given(name=st.sampled_from(sorted(EVAL)), which=st.sampled_from(["pred", "gold"]), i=st.integers(0, 50),
       j=st.integers(0, 500), op=st.integers(0, 50))
def test_evaluate_poisoned_records(evaluation, capsys, name, which, i, j, op):
    d, ref = evaluation
    gold, preds, metrics = ref[name]
    keep = ("query", "domain")  # free text: another value is another (valid) input
    if which == "pred":
        preds, what = mutate_records(preds, i, j, op, keep)
    else:
        gold, what = mutate_records(gold, i, j, op, keep)
    rc, err, got = _evaluate(d, name, damage_jsonl(gold, "none"), damage_jsonl(preds, "none"), capsys, "rec")
    COUNTS["test.evaluate"] += 1
    if rc == 0:
        assert _same(got, metrics), f"{name} {which} {what}: exit 0 with other metrics"
    else:
        clean_error(rc, err, "evaluate")


@pytest.mark.parametrize("name", sorted(EVAL))
@pytest.mark.parametrize("which", ["pred", "gold"])
@pytest.mark.parametrize("kind", FILE_DAMAGE + NEUTRAL)
def test_evaluate_damaged_files(evaluation, capsys, name, which, kind):
    d, ref = evaluation
    gold, preds, metrics = ref[name]
    g = damage_jsonl(gold, kind if which == "gold" else "none")
    p = damage_jsonl(preds, kind if which == "pred" else "none")
    rc, err, got = _evaluate(d, name, g, p, capsys, "file")
    COUNTS["test.evaluate"] += 1
    if kind in NEUTRAL:
        assert rc == 0 and _same(got, metrics), (kind, err[-2000:])
    else:
        clean_error(rc, err, "evaluate")
        if kind not in ("empty", "blank_only"):
            assert ".jsonl:" in err, err  # file:line


# ------------------------------------------------------------------------ datasets/convert.py


def _convert_module():
    return load_script("datasets/convert.py")


CONVERT = {
    "qvh": ("jsonl", [{"qid": i, "query": f"q {i}", "duration": 30, "vid": f"vid{i}_1.0_31.0", "relevant_windows": [[2, 8]],
                       "relevant_clip_ids": [1, 2, 3], "saliency_scores": [[4, 3, 2], [2, 4, 4], [1, 2, 3]]} for i in range(3)]),
    "magqa": ("json", [{"question_id": 10 + i, "video": f"v{i}.mp4", "duration": 40.0,
                        "conversation": [{"role": "user", "content": f"question {i}?", "time": 1.5}],
                        "answer": [{"content": f"answer {i}", "time": [4.0, 9.0]}]} for i in range(3)]),
    "youcook2": ("json", {f"v_{i}": {"duration": 50.0 + i, "timestamps": [[1.0, 5.0], [6.0, 12.5]],
                                     "sentences": ["cut the onion", "fry it"]} for i in range(3)}),
}


@pytest.fixture(scope="module")
def conversion(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_convert")
    conv = _convert_module()
    clean = {}
    for name, (fmt, data) in CONVERT.items():
        src = d / f"{name}_in.{fmt}"
        src.write_bytes(damage_jsonl(data, "none") if fmt == "jsonl" else json.dumps(data).encode())
        out = d / f"{name}_clean.jsonl"
        assert conv.main([name, "--input", str(src), "--output", str(out)]) == 0
        clean[name] = out.read_text()
    return d, conv, clean


def _convert(d, conv, name, data: bytes, capsys, fmt):
    src, out = d / f"in.{fmt}", d / "out.jsonl"
    src.write_bytes(data)
    out.unlink(missing_ok=True)
    rc = conv.main([name, "--input", str(src), "--output", str(out)])
    return rc, capsys.readouterr().err, (out.read_text() if rc == 0 else None)


@FAST
@given(name=st.sampled_from(sorted(CONVERT)), i=st.integers(0, 50), j=st.integers(0, 500), op=st.integers(0, 50))
def test_convert_poisoned_annotations(conversion, capsys, name, i, j, op):
    d, conv, clean = conversion
    fmt, data = CONVERT[name]
    keep = ("query", "content", "sentences", "video", "question_id", "qid")  # free text, ids (any text is an id)
    # MAGQA items may lack a duration, a question its time (asked at 0 s, as documented)
    # and its answers (an example without any is counted apart by the scorer: n_gold_without_answers)
    optional = ("duration", "conversation/*/time", "answer") if name == "magqa" else ()
    if isinstance(data, dict):  # youcook2: a dict of videos
        keys = sorted(data)
        k = keys[i % len(keys)]
        (rec,), what = mutate_records([data[k]], 0, j, op, keep, optional)
        data = {**data, k: rec}
        raw = json.dumps(data).encode()
    else:
        data, what = mutate_records(data, i, j, op, keep, optional)
        raw = damage_jsonl(data, "none") if fmt == "jsonl" else json.dumps(data).encode()
    rc, err, got = _convert(d, conv, name, raw, capsys, fmt)
    COUNTS["datasets/convert.py"] += 1
    if rc == 0:
        assert got == clean[name], f"{name} {what}: exit 0 with other items"
    else:
        clean_error(rc, err, f"convert.py {name}")


@pytest.mark.parametrize("kind", FILE_DAMAGE + NEUTRAL)
def test_convert_damaged_jsonl(conversion, capsys, kind):
    d, conv, clean = conversion
    rc, err, got = _convert(d, conv, "qvh", damage_jsonl(CONVERT["qvh"][1], kind), capsys, "jsonl")
    COUNTS["datasets/convert.py"] += 1
    if kind in NEUTRAL:
        assert rc == 0 and got == clean["qvh"], (kind, err[-2000:])
    else:
        clean_error(rc, err, "convert.py qvh")


CHARADES_LINES = ["AAA 1.0 4.5##a person opens a door", "BBB 0 3##someone sits down", "AAA 5 9.5##a person leaves"]
CHARADES_BAD = ["AAA 4.5 1.0##reversed", "AAA -1 3##negative", "AAA nan 3##nan", "AAA 1 inf##inf", "AAA 1##short",
                "AAA 1 3 person without separator", "ZZZ 1 3##unknown video", "AAA x 3##text", "AAA 50 60##past the end",
                "\x00\x00", "AAA 1 3##", " ##", "AAA 1e999 3##huge"]


@pytest.mark.parametrize("bad", CHARADES_BAD)
@pytest.mark.parametrize("policy", ["refuse", "skip"])
def test_convert_charades_bad_lines_refused_or_recorded(tmp_path, capsys, bad, policy):
    conv = _convert_module()
    csv_path = tmp_path / "len.csv"
    csv_path.write_text("id,length\nAAA,30\nBBB,12.5\n")
    sta = tmp_path / "sta.txt"
    sta.write_text("\n".join([CHARADES_LINES[0], bad, *CHARADES_LINES[1:]]) + "\n")
    out = tmp_path / "c.jsonl"
    rc = conv.main(["charades", "--input", str(sta), "--lengths", str(csv_path), "--output", str(out), "--on_invalid", policy])
    err = capsys.readouterr().err
    COUNTS["datasets/convert.py"] += 1
    if rc == 2:
        clean_error(rc, err, "convert.py charades")
        assert "sta.txt" in err
        return
    # accepted only by skipping the bad line, recorded in the meta file; the good lines are unchanged
    assert rc == 0 and policy == "skip", (bad, err)
    meta = uio.read_json(tmp_path / "c.jsonl.meta.json")
    assert len(meta["skipped_invalid"]) == 1 and "sta.txt:2" in meta["skipped_invalid"][0], meta["skipped_invalid"]
    assert [it["id"] for it in uio.read_jsonl(out)] == ["AAA#0", "BBB#2", "AAA#3"]


# ------------------------------------------------------------------------ test.run_benchmark


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_bench")
    videos = d / "videos"
    for n in range(2):
        write_test_video(videos / f"v{n}.mkv", n_frames=20 + 10 * n, fps=10, size=(64, 48), pattern="noisy_index")
    items = [{"id": f"i{n}", "dataset": "x", "video": f"v{n}.mkv", "query": f"query {n}", "query_time": 0.5 * n,
              "duration": 2.0 + n} for n in range(2)]
    return d, items


def _bench(d, items_bytes: bytes, tag: str, monkeypatch, capsys):
    from test import run_benchmark

    count = fakes.install(monkeypatch)
    path, out = d / f"items_{tag}.jsonl", d / f"pred_{tag}.jsonl"
    path.write_bytes(items_bytes)
    for p in (out, run_benchmark.errors_path(out), run_benchmark.run_record_path(out)):
        p.unlink(missing_ok=True)
    rc = run_benchmark.main(["--items", str(path), "--video_root", str(d / "videos"), "--output", str(out), "--fps", "2", "--quiet"])
    preds = {r["id"]: r["frames"] for r in uio.read_jsonl(out)} if rc == 0 and out.exists() else None
    return rc, capsys.readouterr().err, preds, count


@pytest.fixture(scope="module")
def bench_clean(bench_data):
    d, items = bench_data
    mp = pytest.MonkeyPatch()
    try:
        from test import run_benchmark

        fakes.install(mp)
        path, out = d / "items_clean.jsonl", d / "pred_clean.jsonl"
        path.write_bytes(damage_jsonl(items, "none"))
        assert run_benchmark.main(["--items", str(path), "--video_root", str(d / "videos"), "--output", str(out), "--fps", "2", "--quiet"]) == 0
        return {r["id"]: r["frames"] for r in uio.read_jsonl(out)}
    finally:
        mp.undo()


@FAST
@given(i=st.integers(0, 50), j=st.integers(0, 500), op=st.integers(0, 50))
def test_run_benchmark_poisoned_items(bench_data, bench_clean, monkeypatch, capsys, i, j, op):
    d, items = bench_data
    bad, what = mutate_records(items, i, j, op, keep=("query", "dataset"))
    rc, err, preds, count = _bench(d, damage_jsonl(bad, "none"), "poison", monkeypatch, capsys)
    COUNTS["test.run_benchmark"] += 1
    if rc == 0:
        assert _same(preds, bench_clean), f"{what}: exit 0 with other predictions"
    else:
        clean_error(rc, err, "run_benchmark")
        assert count["loads"] == 0, what


@pytest.mark.parametrize("kind", FILE_DAMAGE + NEUTRAL)
def test_run_benchmark_damaged_items_file(bench_data, bench_clean, monkeypatch, capsys, kind):
    d, items = bench_data
    rc, err, preds, count = _bench(d, damage_jsonl(items, kind), kind, monkeypatch, capsys)
    COUNTS["test.run_benchmark"] += 1
    if kind in NEUTRAL:
        assert rc == 0 and _same(preds, bench_clean), (kind, err[-2000:])
    else:
        clean_error(rc, err, "run_benchmark")
        assert count["loads"] == 0


# --------------------------------------------------------------------------- test.live_infer

BAD_FLAG_VALUES = {
    "--fps": ["nan", "inf", "-1", "0", "abc", "1e999"], "--max_frames": ["0", "-3", "1.5"], "--window": ["0", "-1", "2.5"],
    "--sink_tokens": ["-1", "1.5"], "--vision_batch": ["0", "-2"], "--threshold": ["nan", "inf", "abc"],
    "--cumulative_threshold": ["nan", "-inf"], "--min_interval": ["-1", "nan", "inf"], "--uncertainty_gate": ["nan", "inf"],
    "--max_wait_frames": ["-1"], "--relevance_gate": ["nan", "inf", "x"], "--relevance_gate_frames": ["0", "-1", "2.5"],
    "--max_new_tokens": ["0", "-5"], "--repetition_penalty": ["0", "-1", "nan"],
    "--alpha": ["nan", "inf"], "--beta": ["-inf", "x"], "--epsilon": ["nan"], "--tau": ["inf"], "--savgol_window": ["0", "-1"],
    "--savgol_polyorder": ["-1", "99"], "--peak_distance": ["0", "-1", "nan", "inf"], "--peak_prominence": ["-0.1", "nan"],
    "--source_fps": ["0", "-1", "nan"], "--max_protected": ["-1", "1.5"], "--frames_per_step": ["0", "-2", "4"], "--reel_budget": ["-1", "nan", "inf"], "--query_at": ["abc:x", "-1:x", "nan:x", "5:", ":t", "inf:x", "5:<image>"],
    "--query": ["", "<image>", "q<|im_end|>x"], "--degrade": ["random:x", "random:1:fog", "random:", "random:1:", "fog"], "--device": ["cuda", "cuda:7", "tpu", ""],
    "--model_config": ["no-such-preset"], "--attn": ["foo"], "--score_heads": ["", "foo", "informative,bogus"],
    "--cache_policy": ["bogus"], "--dtype": ["fp8"], "--tokenizer": ["/nonexistent", "{file}"], "--checkpoint": ["/nonexistent", "{empty}"],
    "--weights": ["/nonexistent"], "--heads": ["/nonexistent.safetensors"], "--params_file": ["/nonexistent", "{badjson}", "{list}"],
    "--gt_spans": ["/nonexistent", "{badjson}", "{reversed}", "{list}"], "--features": ["/nonexistent"],
    "--output_dir": ["{file}", "{file}/sub"], "--video": ["/nonexistent.mp4", "{empty}", "{file}", "{textvideo}", "{cutmkv}"],
}
LIVE_CASES = [(f, v) for f, vs in BAD_FLAG_VALUES.items() for v in vs] + [
    ("--window", "16 --sink_tokens 16"), ("--params_key", "nokey --params_file {params}"), ("--bogus_flag", "1")]


@pytest.fixture(scope="module")
def live_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_live")
    video = write_test_video(d / "v.mkv", n_frames=20, fps=10, size=(64, 48), pattern="noisy_index")
    (d / "afile").write_text("x")
    (d / "empty").mkdir()
    (d / "badjson").write_text("{not json")
    (d / "list").write_text("[1, 2]")
    (d / "reversed").write_text("[[5, 1]]")
    (d / "text.mp4").write_text("not a video at all")
    data = video.read_bytes()
    (d / "cut.mkv").write_bytes(data[: len(data) // 2])
    (d / "params.json").write_text(json.dumps({"tvsum": {"alpha": 1.0}}))
    names = {"file": d / "afile", "empty": d / "empty", "badjson": d / "badjson", "list": d / "list", "reversed": d / "reversed",
             "textvideo": d / "text.mp4", "cutmkv": d / "cut.mkv", "params": d / "params.json"}
    return d, video, {k: str(v) for k, v in names.items()}


@pytest.mark.parametrize("flag, value", LIVE_CASES)
def test_live_infer_bad_arguments(live_files, tmp_path, monkeypatch, capsys, flag, value):
    from test import live_infer

    d, video, names = live_files
    count = fakes.install(monkeypatch)
    out = tmp_path / "out_new"
    args = {"--video": str(video), "--query": "q", "--output_dir": str(out), "--reel_budget": "0"}
    args[flag] = value.format(**names).split(" ")[0]
    argv = [a for k, v in args.items() for a in (k, v)] + ["--quiet"] + value.format(**names).split(" ")[1:]
    try:
        rc = live_infer.main(argv)
    except SystemExit as e:  # argparse's own refusal (a value of the wrong type, a bad choice)
        rc = e.code
    COUNTS["test.live_infer"] += 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert "Traceback" not in err and rc == 2 and lines and "error:" in lines[-1], (flag, value, rc, err[-2000:])
    assert count["loads"] == 0 and not out.exists(), (flag, value)


# --------------------------------------------------------------- damaged videos (slow part)

CONTAINERS = [("mp4", "mpeg4", {"movflags": "faststart"}), ("mov", "mpeg4", {"movflags": "faststart"}), ("mkv", "mpeg4", {}),
              ("mkv", "libx264", {}), ("webm", "libvpx", {}), ("ts", "mpeg4", {}), ("ts", "libx264", {}), ("avi", "mpeg4", {}),
              ("nut", "mpeg4", {})]
CUTS = [0.05, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99]
DAMAGE = ["zero_middle", "zero_header", "drop_middle", "duplicate_middle"]


def _damage_video(data: bytes, how: str) -> bytes:
    n = len(data)
    if how.startswith("cut"):
        return data[: int(n * float(how[3:]))]
    a, b = n // 2, n // 2 + max(64, n // 50)
    if how == "zero_middle":
        return data[:a] + bytes(b - a) + data[b:]
    if how == "zero_header":
        return bytes(64) + data[64:]
    if how == "drop_middle":
        return data[:a] + data[b:]
    return data[:b] + data[a:b] + data[b:]  # duplicate_middle


@pytest.mark.slow
def test_run_benchmark_damaged_videos_are_skips_or_unchanged(tmp_path, monkeypatch, capsys):
    """Every container cut at 8 points and damaged 4 ways: each item is a recorded skip with its
    reason, or its prediction equals the clean video's (the fake engine scores the pixels)."""
    from test import run_benchmark

    videos = tmp_path / "videos"
    items, clean_of = [], {}
    for ext, codec, opts in CONTAINERS:
        src = write_test_video(videos / f"clean_{codec}.{ext}", n_frames=40, fps=10, size=(96, 64), codec=codec,
                               pattern="noisy_index", container_options=opts)
        data = src.read_bytes()
        items.append({"id": f"clean_{codec}_{ext}", "video": src.name})
        for how in [f"cut{c}" for c in CUTS] + DAMAGE:
            name = f"{how}_{codec}.{ext}"
            (videos / name).write_bytes(_damage_video(data, how))
            items.append({"id": name, "video": name})
            clean_of[name] = f"clean_{codec}_{ext}"
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps({**i, "query": "q"}) + "\n" for i in items))
    fakes.install(monkeypatch)
    out = tmp_path / "pred.jsonl"
    rc = run_benchmark.main(["--items", str(path), "--video_root", str(videos), "--output", str(out), "--fps", "2", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0 and "Traceback" not in err
    preds = {r["id"]: r for r in uio.read_jsonl(out)}
    errors = {e["id"]: e for e in uio.read_jsonl(run_benchmark.errors_path(out))}
    silently_changed = []
    for name, clean in clean_of.items():
        COUNTS["test.run_benchmark"] += 1
        assert (name in preds) != (name in errors), name
        if name in errors:
            assert errors[name]["message"], name
        elif not _same(preds[name]["frames"], preds[clean]["frames"]):
            silently_changed.append((name, preds[name]["n_frames"], preds[clean]["n_frames"]))
    assert not silently_changed, silently_changed
    assert all(c in preds for c in set(clean_of.values()))


@pytest.mark.slow
@pytest.mark.parametrize("ext, codec", [(e, c) for e, c, _ in CONTAINERS])
def test_live_infer_damaged_videos(tmp_path, monkeypatch, capsys, ext, codec):
    """The live CLI on cut files: exit 2 before streaming (the scan finds it) or exit 1 with the
    records kept and the error recorded; never exit 0 with fewer frames."""
    from test import live_infer

    opts = dict(next(o for e, c, o in CONTAINERS if (e, c) == (ext, codec)))
    src = write_test_video(tmp_path / f"v.{ext}", n_frames=40, fps=10, size=(96, 64), codec=codec, pattern="noisy_index",
                           container_options=opts)
    fakes.install(monkeypatch)
    data = src.read_bytes()
    common = ["--query", "q", "--fps", "2", "--quiet", "--reel_budget", "0"]
    assert live_infer.main(["--video", str(src), "--output_dir", str(tmp_path / "clean"), *common]) == 0
    clean = uio.read_jsonl(tmp_path / "clean" / "scores.jsonl")
    for c in (0.3, 0.6, 0.9):
        size = int(len(data) * c)
        cut = tmp_path / f"cut{c}.{ext}"
        cut.write_bytes(data[:size])
        out = tmp_path / f"out{c}"
        rc = live_infer.main(["--video", str(cut), "--output_dir", str(out), *common])
        err = capsys.readouterr().err
        COUNTS["test.live_infer"] += 1
        assert "Traceback" not in err, err[-2000:]
        if rc == 0:
            # the one undetectable cut (documented): MPEG-TS declares no length, so a file cut exactly at a
            # transport-packet boundary between two frames is a valid, shorter stream; its frames are intact
            got = uio.read_jsonl(out / "scores.jsonl")
            assert ext == "ts" and size % 188 == 0 and got == clean[: len(got)], (c, size)
            continue
        assert rc in (1, 2), (c, rc, err[-2000:])
        if rc == 1:
            h = uio.read_json(out / "highlights.json")
            assert h["error"] and "truncated" in h["error"] and str(out) in err


# ------------------------------------------------------------------ train.py's data path


@pytest.fixture(scope="module")
def mixture(tmp_path_factory):
    from data.mixture import build_mixture
    from tests.test_datasets import write_mixture_fixture

    root = tmp_path_factory.mktemp("fuzz_mix")
    write_mixture_fixture(root)
    m = build_mixture(root / "mixture.json", root, None)
    return root, {d.name: [repr(r) for r in d.records] for d in m.datasets}


# file -> (free text never touched, keys whose absence is valid)
ANNOTATIONS = {"mixture.json": (("name", "type", "video_root", "anno_file", "metadata"), ()),
               "shot2story/annotations/dvc.json": (("text",), ("*/timespan", "*/learn")),
               "shot2story/annotations/magqa.json": (("content", "role", "video_uid", "question_id"),
                                                     ("*/timespan", "*/learn", "video_start_time", "question_id")),
               "coin/annotations/coin.json": (("label", "subset"), ())}


def _records_of(root):
    from data.mixture import build_mixture

    return {d.name: [repr(r) for r in d.records] for d in build_mixture(root / "mixture.json", root, None).datasets}


@settings(FAST, max_examples=60)
@given(file=st.sampled_from(sorted(ANNOTATIONS)), i=st.integers(0, 50), j=st.integers(0, 500), op=st.integers(0, 50))
def test_training_data_path_poisoned_annotations(mixture, caplog, file, i, j, op):
    root, clean = mixture
    path = root / file
    original = path.read_text()
    doc = json.loads(original)
    wrapped = doc if isinstance(doc, list) else [doc]
    bad, what = mutate_records(wrapped, i, j, op, *ANNOTATIONS[file])
    COUNTS["train.py data path"] += 1
    try:
        path.write_text(json.dumps(bad if isinstance(doc, list) else bad[0]))
        caplog.clear()
        try:
            got = _records_of(root)
        except (ValueError, FileNotFoundError, KeyError, TypeError) as e:
            assert not isinstance(e, (KeyError, TypeError)), f"{file} {what}: {type(e).__name__}: {e} (not a clean error)"
            assert str(path.name) in str(e) or file.split("/")[-1] in str(e) or "mixture" in str(e) or "datasets[" in str(e), \
                f"{file} {what}: the error does not name the file: {e}"
            return
        for name in clean:
            if got.get(name) != clean[name]:
                kept = [r for r in clean[name] if r in got.get(name, [])]
                assert kept == got.get(name, []) and len(got.get(name, [])) < len(clean[name]), \
                    f"{file} {what}: {name} changed silently"
                assert "skipped" in caplog.text, f"{file} {what}: {name} lost items without a recorded skip"
    finally:
        path.write_text(original)


# -------------------------------------------------------------------------------- the count


def test_zz_at_least_500_bad_inputs(request):
    entries = ("test.live_infer", "test.run_benchmark", "test.evaluate", "datasets/convert.py", "train.py data path")
    selected = {item.originalname for item in request.session.items if item.module is request.module}
    every = {name for name in globals() if name.startswith("test_") and name != "test_zz_at_least_500_bad_inputs"}
    if not every <= selected or not all(COUNTS[e] for e in entries):
        pytest.skip(f"only part of the fuzz suite ran (the slow part too: -m slow): {dict(COUNTS)}")
    print(f"\nfuzz inputs per entry point: {dict(COUNTS)}; total {sum(COUNTS.values())}")
    assert sum(COUNTS.values()) >= 500, dict(COUNTS)
    assert not math.isnan(sum(COUNTS.values()))
