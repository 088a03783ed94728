"""Benchmark drivers end to end on the aha-tiny preset (random heads: mechanics, not quality).

Tiny fixture videos (tests/videos.py) and items written by datasets/convert.py for a
Charades-STA-like and a TVSum-like case: every item predicted, resume without model work, a torn
last line cut off, a missing video logged and skipped, native frame indices, per-video degradation
schedules, the results record (held-out k-fold by default), resume refusals, and one shell script
run end to end. Tuning on synthetic predictions: tests/test_benchmark_tuning.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test import benchmark, run_benchmark
from test.postprocess import fuse_prediction
from test.predictions import load_predictions
from test.tuning import fusion_params
from utils.io import read_json, read_jsonl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from videos import write_test_video  # noqa: E402
from tests.script_loader import load_script  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NATIVE_FPS = 10


def _convert_module():
    return load_script("datasets/convert.py")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Videos, annotation files in the benchmarks' raw formats, and the converted items."""
    d = tmp_path_factory.mktemp("bench")
    videos = d / "videos"
    for name, seconds in (("A", 6), ("B", 4), ("tvA", 6), ("tvB", 4), ("tvC", 8)):
        write_test_video(videos / f"{name}.mp4", seconds * NATIVE_FPS, fps=NATIVE_FPS)
    # Charades-STA: C has an annotation but no video file
    (d / "charades_sta_test.txt").write_text("A 2.0 4.0##person opens a door\nB 1.0 3.0##person sits down\n"
                                             "C 1.0 3.0##person drinks\n")
    (d / "Charades_v1_test.csv").write_text("id,length\nA,6.0\nB,4.0\nC,5.0\n")
    # TVSum: info tsv, per-frame anno tsv (2 annotators), UMT per-2-s-clip gold (20 annotators)
    info = ["category\tvideo_id\ttitle\turl\tlength"]
    anno, clip_gold = [], {}
    rng = np.random.default_rng(0)
    for vid, cat, seconds in (("tvA", "VT", 6), ("tvB", "VU", 4), ("tvC", "GA", 8)):
        info.append(f"{cat}\t{vid}\ttitle of {vid}\thttp://example.invalid/{vid}\t0:0{seconds}")
        for _ in range(2):
            anno.append(f"{vid}\t{cat}\t" + ",".join(str(int(x)) for x in rng.integers(1, 6, seconds * NATIVE_FPS)))
        clip_gold[vid] = {"anno": rng.integers(1, 6, (seconds // 2, 20)).tolist(), "domain": cat}
    (d / "ydata-tvsum50-info.tsv").write_text("\n".join(info) + "\n")
    (d / "ydata-tvsum50-anno.tsv").write_text("\n".join(anno) + "\n")
    (d / "tvsum_anno.json").write_text(json.dumps(clip_gold))
    conv = _convert_module()
    assert conv.main(["charades", "--input", str(d / "charades_sta_test.txt"), "--lengths",
                      str(d / "Charades_v1_test.csv"), "--output", str(d / "charades_items.jsonl")]) == 0
    assert conv.main(["tvsum", "--input", str(d / "ydata-tvsum50-info.tsv"), "--anno", str(d / "ydata-tvsum50-anno.tsv"),
                      "--output", str(d / "tvsum_items.jsonl")]) == 0
    return d


@pytest.fixture(scope="module")
def tiny(shared_data):
    from models.inference import load_for_inference

    return load_for_inference("aha-tiny", tokenizer=str(shared_data / "tokenizers" / "qwen2"))


@pytest.fixture()
def loads(monkeypatch, tiny):
    """Serve the module's model instead of loading one per run; count the loads."""
    count = {"n": 0}

    def fake_load(*args, **kwargs):
        count["n"] += 1
        return tiny

    monkeypatch.setattr(run_benchmark, "load_for_inference", fake_load)
    return count


def rb_args(data, items, output, *extra):
    return ["--items", str(data / items), "--video_root", str(data / "videos"), "--output", str(output),
            "--fps", "1", "--no_generate", "--quiet", *extra]


@pytest.fixture(scope="module")
def charades_run(data, tiny):
    """Charades-like items streamed in three runs: --limit 1, then (after a torn write) all, then again."""
    out = data / "charades_pred.jsonl"
    mp = pytest.MonkeyPatch()
    calls = []
    try:
        mp.setattr(run_benchmark, "load_for_inference", lambda *a, **k: calls.append(1) or tiny)
        rc1 = run_benchmark.main(rb_args(data, "charades_items.jsonl", out, "--limit", "1"))
        lines_after_first = out.read_text().count("\n")
        with open(out, "a") as f:
            f.write('{"id": "B#1", "frames": {"time": [0.0, 1.')  # a crash in the middle of a write
        rc2 = run_benchmark.main(rb_args(data, "charades_items.jsonl", out))
        loads_before_third = len(calls)

        def forbidden(*a, **k):
            raise AssertionError("a resumed run with nothing left to stream loaded the model")

        mp.setattr(run_benchmark, "load_for_inference", forbidden)
        rc3 = run_benchmark.main(rb_args(data, "charades_items.jsonl", out))
    finally:
        mp.undo()
    return {"out": out, "rc": (rc1, rc2, rc3), "first_lines": lines_after_first, "loads": loads_before_third}


def test_every_item_predicted_once_and_the_missing_video_logged(data, charades_run):
    out = charades_run["out"]
    assert charades_run["rc"] == (0, 0, 0)
    assert charades_run["first_lines"] == 1
    assert charades_run["loads"] == 2  # one per run that had something to stream
    recs = read_jsonl(out)  # raises on a bad middle line: the torn fragment was cut off
    assert [r["id"] for r in recs] == ["A#0", "B#1"]
    preds = load_predictions(out)
    # 6-s and 4-s videos at 1 fps: frames at 0..5 and 0..3; native 10 fps -> frame 10 t
    assert preds["A#0"].time.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert preds["B#1"].time.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert preds["B#1"].native_frame_index.tolist() == [0, 10, 20, 30]
    assert preds["A#0"].duration == pytest.approx(6.0)
    assert preds["A#0"].query == read_jsonl(data / "charades_items.jsonl")[0]["query"]
    for p in preds.values():
        assert np.all((p.informative >= 0) & (p.informative <= 1)) and np.all((p.relevance >= 0) & (p.relevance <= 1))
        assert p.responses == []  # --no_generate
    errors = read_jsonl(run_benchmark.errors_path(out))
    # C#2 has no video: logged by each of the three runs (the full runs retry it), never predicted
    assert {e["id"] for e in errors} == {"C#2"} and len(errors) == 2
    assert errors[0]["error"] == "FileNotFoundError" and "C.mp4" in errors[0]["message"]
    run = read_json(run_benchmark.run_record_path(out))
    assert run["engine"]["tokens_per_frame"] == 49 and run["engine"]["fps"] == 1.0
    assert run["items"]["converter"]["dataset"] == "charades"
    assert [r["n_predicted"] for r in run["runs"]] == [1, 1, 0]
    assert [r["n_already_done"] for r in run["runs"]] == [0, 1, 2]


def test_resume_with_other_settings_is_refused(data, charades_run, loads, capsys):
    args = rb_args(data, "charades_items.jsonl", charades_run["out"])
    args[args.index("--fps") + 1] = "2"
    assert run_benchmark.main(args) == 2
    assert "fps: 1.0 -> 2.0" in capsys.readouterr().err
    assert loads["n"] == 0


def _change_a_tensor(path: Path) -> None:
    """Rewrite a safetensors file with one value of its first tensor changed (same names and shapes)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    name = sorted(tensors)[0]
    tensors[name].view(-1)[0] += 1
    save_file(tensors, str(path), metadata=meta)


def _model_files(tmp_path: Path, flag: str) -> Path:
    """A folder or file for --checkpoint (a copy of the shipped tiny checkpoint), --weights or --heads."""
    import shutil

    import torch
    from safetensors.torch import save_file

    if flag == "checkpoint":
        return Path(shutil.copytree(REPO / "checkpoints" / "aha-tiny-synth", tmp_path / "ckpt"))
    if flag == "weights":
        (tmp_path / "weights").mkdir()
        save_file({"w": torch.zeros(4)}, str(tmp_path / "weights" / "model.safetensors"))
        (tmp_path / "weights" / "config.json").write_text("{}")
        return tmp_path / "weights"
    save_file({"informative_head.weight": torch.zeros(2, 4)}, str(tmp_path / "heads.safetensors"))
    return tmp_path / "heads.safetensors"


@pytest.mark.parametrize("flag", ["checkpoint", "weights", "heads"])
def test_resume_with_changed_model_files_is_refused(data, loads, tmp_path, capsys, flag):
    """Same path, other contents: the items of one file would come from two models."""
    target = _model_files(tmp_path, flag)
    out = tmp_path / "pred.jsonl"
    args = rb_args(data, "charades_items.jsonl", out, f"--{flag}", str(target),
                   "--tokenizer", str(REPO / "configs" / "tokenizers" / "aha-tiny-synth"))
    assert run_benchmark.main([*args, "--limit", "1"]) == 0
    from models.checkpoint import content_hash_of
    from utils.io import sha256_file

    recorded = content_hash_of(target) if target.is_dir() else sha256_file(target)
    _change_a_tensor(target / "model.safetensors" if target.is_dir() else target)
    assert run_benchmark.main(args) == 2
    err = capsys.readouterr().err
    assert f"--{flag} {target} changed since" in err and recorded[:12] in err
    assert loads["n"] == 1 and len(read_jsonl(out)) == 1
    if flag == "checkpoint":  # an older record: the hash only in the loaded model's record
        rec = read_json(run_benchmark.run_record_path(out))
        del rec["model_files"]
        rec["engine"]["model"]["checkpoint_sha256"] = recorded
        (run_benchmark.run_record_path(out)).write_text(json.dumps(rec))
        assert run_benchmark.main(args) == 2 and "changed since" in capsys.readouterr().err


def test_resume_with_another_video_root_is_refused(data, charades_run, loads, tmp_path, capsys):
    import shutil

    other = Path(shutil.copytree(data / "videos", tmp_path / "videos"))
    args = rb_args(data, "charades_items.jsonl", charades_run["out"])
    args[args.index("--video_root") + 1] = str(other)
    assert run_benchmark.main(args) == 2
    err = capsys.readouterr().err
    assert f"--video_root {data / 'videos'}, not {other}" in err and loads["n"] == 0


@pytest.mark.parametrize("extra, diff", [
    (["--respond_before_query"], "respond_before_query: False -> True"),
    (["--tokenizer", str(REPO / "configs" / "tokenizers" / "aha-tiny-synth")], "tokenizer: None -> "),
    (["--max_protected", "64"], "max_protected: None -> 64"),
    (["--attn", "eager"], "attn: None -> 'eager'"),
])
def test_resume_with_a_flag_that_changes_predictions_is_refused(data, charades_run, loads, capsys, extra, diff):
    assert run_benchmark.main(rb_args(data, "charades_items.jsonl", charades_run["out"], *extra)) == 2
    assert diff in capsys.readouterr().err and loads["n"] == 0


def test_every_flag_is_a_setting_or_said_why_not():
    dests = {a.dest for a in run_benchmark.build_parser()._actions if a.dest != "help"}
    settings, others = set(run_benchmark.SETTING_KEYS), set(run_benchmark.NOT_SETTING_KEYS)
    assert not settings & others
    assert dests - others == settings - {"device_type"}  # device_type: derived from --device


def test_an_older_record_without_the_new_settings_resumes(data, loads, tmp_path):
    out = tmp_path / "pred.jsonl"
    args = rb_args(data, "charades_items.jsonl", out)
    assert run_benchmark.main([*args, "--limit", "1"]) == 0
    rec = read_json(run_benchmark.run_record_path(out))
    for k in ("respond_before_query", "tokenizer", "device_type", "max_protected"):
        del rec["settings"][k]
    del rec["model_files"]
    run_benchmark.run_record_path(out).write_text(json.dumps(rec))
    assert run_benchmark.main([*args, "--respond_before_query"]) == 0
    assert [r["id"] for r in read_jsonl(out)] == ["A#0", "B#1"]


def test_a_query_at_or_after_the_end_of_its_stream_is_a_recorded_skip(data, loads, tmp_path):
    """A.mp4 is 6 s, streamed at 1 fps: frames at 0..5 s. A query at 6 s is past the video, one at
    5.5 s past its last frame: neither is ever asked, so neither is a prediction."""
    items = tmp_path / "items.jsonl"
    base = {"dataset": "charades", "video": "A.mp4", "query": "person opens a door", "duration": 6.0}
    items.write_text("".join(json.dumps({**base, "id": i, "query_time": t}) + "\n"
                             for i, t in (("ok", 2.0), ("at_end", 6.0), ("after_last_frame", 5.5))))
    out = tmp_path / "pred.jsonl"
    assert run_benchmark.main(rb_args(data, items, out)) == 0
    preds = read_jsonl(out)
    assert [p["id"] for p in preds] == ["ok"] and preds[0]["query_asked"] is True
    errors = {e["id"]: e for e in read_jsonl(run_benchmark.errors_path(out))}
    assert sorted(errors) == ["after_last_frame", "at_end"]
    assert all(e["error"] == "QueryNotAsked" and "never asked" in e["message"] for e in errors.values())
    assert "query_time 6 s" in errors["at_end"]["message"] and "video 6 s long" in errors["at_end"]["message"]
    assert "last frame at 5 s" in errors["after_last_frame"]["message"]
    assert read_json(run_benchmark.run_record_path(out))["runs"][-1]["n_errors"] == 2


@pytest.fixture(scope="module")
def tvsum_pred(data, tiny):
    out = data / "tvsum_pred.jsonl"
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(run_benchmark, "load_for_inference", lambda *a, **k: tiny)
        assert run_benchmark.main(rb_args(data, "tvsum_items.jsonl", out, "--degrade", "random:3:blackout")) == 0
    finally:
        mp.undo()
    return out


def test_tvsum_items_native_frames_and_degradation(data, tvsum_pred):
    preds = load_predictions(tvsum_pred)
    assert sorted(preds) == ["tvA", "tvB", "tvC"]
    assert preds["tvC"].native_frame_index.tolist() == [0, 10, 20, 30, 40, 50, 60, 70]
    assert preds["tvC"].extra["native_fps"] == pytest.approx(NATIVE_FPS)
    assert preds["tvA"].extra["prompt_variant"] == "title" and "title of tvA" in preds["tvA"].query
    schedules = {i: p.extra["degradation"] for i, p in preds.items()}
    for i, segs in schedules.items():
        assert segs and all(kind == "blackout" for _, _, kind in segs), i
    # seeded per video: same seed and id -> same schedule, another id -> its own draw
    again = run_benchmark.item_degradation("random:3:blackout", "tvC", data / "videos" / "tvC.mp4")
    assert again.to_list() == schedules["tvC"]


@pytest.mark.slow
def test_features_replace_the_videos(data, charades_run, loads, shared_data, tmp_path):
    """--features FEATS (scripts/extract_features.py --items): the same predictions without decoding."""
    extract = load_script("scripts/extract_features.py")
    feats = tmp_path / "feats"
    stats = extract.main(["--items", str(data / "charades_items.jsonl"), "--video_root", str(data / "videos"), "--fps", "1",
                          "--cache_dir", str(feats), "--tokenizer", str(shared_data / "tokenizers" / "qwen2")])
    assert stats["extracted"] == 2  # A and B; C's video is missing
    out = tmp_path / "pred.jsonl"
    assert run_benchmark.main(rb_args(data, "charades_items.jsonl", out, "--features", str(feats))) == 0
    by_video, by_features = load_predictions(charades_run["out"]), load_predictions(out)
    assert sorted(by_features) == ["A#0", "B#1"]  # C#2: not in the cache, logged as failed
    for i in by_features:
        np.testing.assert_allclose(by_features[i].relevance, by_video[i].relevance, atol=1e-5)
        assert by_features[i].extra["frames_from"] == "features"
    assert read_json(run_benchmark.run_record_path(out))["settings"]["features"] == str(feats)


@pytest.mark.slow
def test_features_of_another_video_under_the_same_key_are_refused(data, loads, shared_data, tmp_path):
    """Features extracted under one --video_root, streamed for another whose A.mp4 is another
    (shorter) video: A#0 is a recorded skip naming both files; B.mp4 (the same file, copied) is used."""
    import shutil

    extract = load_script("scripts/extract_features.py")
    feats = tmp_path / "feats"
    extract.main(["--items", str(data / "charades_items.jsonl"), "--video_root", str(data / "videos"), "--fps", "1",
                  "--cache_dir", str(feats), "--tokenizer", str(shared_data / "tokenizers" / "qwen2"),
                  "--num_workers", "0"])
    root_b = tmp_path / "rootB"
    write_test_video(root_b / "A.mp4", 3 * NATIVE_FPS, fps=NATIVE_FPS)
    shutil.copy(data / "videos" / "B.mp4", root_b / "B.mp4")
    out = tmp_path / "pred.jsonl"
    args = rb_args(data, "charades_items.jsonl", out, "--features", str(feats))
    args[args.index("--video_root") + 1] = str(root_b)
    assert run_benchmark.main(args) == 0
    assert [p["id"] for p in read_jsonl(out)] == ["B#1"]
    errors = {e["id"]: e for e in read_jsonl(run_benchmark.errors_path(out))}
    assert errors["A#0"]["error"] == "FeatureSourceMismatch"
    assert str(data / "videos" / "A.mp4") in errors["A#0"]["message"] and str(root_b / "A.mp4") in errors["A#0"]["message"]


def test_bad_degradation_spec_fails_before_any_work(data, loads, capsys):
    rc = run_benchmark.main(rb_args(data, "tvsum_items.jsonl", data / "x.jsonl", "--degrade", "random:1:fog"))
    assert rc == 2 and "fog" in capsys.readouterr().err and loads["n"] == 0
    assert not (data / "x.jsonl").exists()


def test_results_record_kfold_by_default(data, charades_run):
    out = data / "charades_results.json"
    rc = benchmark.main(["--dataset", "charades", "--pred", str(charades_run["out"]), "--gold",
                         str(data / "charades_sta_test.txt"), "--out", str(out), "--folds", "2", "--split", "test",
                         "--plots", "2"])
    assert rc == 0
    res = read_json(out)
    p = res["protocol"]
    assert p["tuned_on"] == "k-fold" and p["tuned_on"] != "TEST (tuned on the reported data)"
    assert p["tuned_on_test"] is False
    assert p["dataset"] == "charades" and p["split"] == "test"
    assert p["fps"] == 1.0 and p["tokens_per_frame"] == 49 and p["cache_policy"]["policy"] == "sink"
    assert p["model"]["model_config"] == "aha-tiny" and p["decision"]["threshold"] is None
    assert p["command"]["inference"] and p["command"]["convert"][2] == "charades"
    folds = p["fusion"]["folds"]
    assert sorted(i for f in folds for i in f["report_ids"]) == ["A#0", "B#1"]
    for f in folds:  # each fold is tuned on the other one only
        assert f["n_tune"] == 1
    cov = p["coverage"]
    assert (cov["n_gold"], cov["n_predicted"], cov["n_scored"], cov["n_failed_at_inference"]) == (3, 2, 2, 1)
    assert cov["missing_ids"] == ["C#2"] and cov["complete"] is False
    assert res["headline"]["name"] == "R1@0.5"
    assert res["headline"]["value"] == res["metrics"]["R1@0.5"]
    # each item was scored with its own fold's weights: the interval the causal rule makes of them
    from data.benchmarks.charades import load_gold
    from test.postprocess import causal_interval

    raw = load_predictions(charades_run["out"])
    gold = load_gold(data / "charades_sta_test.txt")
    assert sorted(res["per_item"]) == ["A#0", "B#1"]  # scored in memory: only the predicted items
    for f in folds:
        for i in f["report_ids"]:
            y = fuse_prediction(raw[i], fusion_params(f["best_params"]))
            iv = causal_interval(raw[i].time, y, duration=gold[i].duration)
            assert res["per_item"][i]["pred"] == (None if iv is None else list(iv))
    plots = sorted((out.parent / "charades_results_files" / "plots").glob("*.png"))
    assert [x.name for x in plots] == ["A_0.png", "B_1.png"]


def test_fixed_weights_score_as_the_plain_scorer(data, tvsum_pred):
    """--tune none == test.evaluate on the raw predictions with the same weights (TVSum UMT)."""
    from test.evaluate import run as evaluate

    pred = tvsum_pred
    out = data / "tvsum_results.json"
    flags = ["--alpha", "0.5", "--beta", "1.0", "--epsilon", "0.3", "--tau", "-1.0"]
    assert benchmark.main(["--dataset", "tvsum", "--pred", str(pred), "--gold", str(data / "tvsum_anno.json"),
                           "--out", str(out), "--tune", "none", *flags]) == 0
    res = read_json(out)
    direct = evaluate(["--func", "tvsum", "--pred_file", str(pred), "--gold_file", str(data / "tvsum_anno.json"),
                       *flags, "--uncertainty_kind", "logvar"])[0]
    assert res["metrics"]["top5_mAP"] == pytest.approx(direct["metrics"]["top5_mAP"])
    assert {k: v["top5_AP"] for k, v in res["per_item"].items()} == pytest.approx({k: v["top5_AP"] for k, v in direct["per_item"].items()})
    assert res["protocol"]["tuned_on"] == "not tuned (fixed parameters)"
    assert res["protocol"]["fusion"]["params"]["epsilon"] == 0.3
    assert res["protocol"]["degradation"] == "random:3:blackout"
    assert res["protocol"]["prompt_variant"] == "title"


# ------------------------------------------------------------------------------ shell scripts


def test_tvsum_degraded_needs_the_degradation_types():
    r = subprocess.run(["bash", str(REPO / "scripts" / "inference" / "tvsum_degraded.sh")], capture_output=True, text=True)
    assert r.returncode != 0 and "TYPES" in r.stderr


@pytest.mark.slow
def test_charades_script_end_to_end(data, shared_data, tmp_path):
    env = {**os.environ, "VIDEO_ROOT": str(data / "videos"), "ANNO_DIR": str(data), "OUT_DIR": str(tmp_path / "out"),
           "MODEL_CONFIG": "aha-tiny", "TOKENIZER": str(shared_data / "tokenizers" / "qwen2"), "DEVICE": "cpu",
           "FPS": "1", "FOLDS": "2", "PLOTS": "1", "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(REPO / "scripts" / "inference" / "charades.sh"), "--quiet"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = read_json(tmp_path / "out" / "results_test_standard.json")
    p = res["protocol"]
    assert p["tuned_on"] == "k-fold" and p["fps"] == 1.0 and p["max_frames"] == 400
    assert p["coverage"]["n_scored"] == 2 and p["split"] == "test"
    assert "R1@0.5" in res["metrics"]
    assert len(list((tmp_path / "out" / "results_test_standard_files" / "plots").glob("*.png"))) == 1
    assert (tmp_path / "out" / "items_test.jsonl.meta.json").exists()


def test_the_record_gives_the_effective_cache_layout_and_an_old_layout_record_resumes(data, loads, tmp_path):
    """Under sliding, --max_protected does nothing: recorded as 0 (the layout that runs); a run whose
    record still holds the old layout (1024, the flag's default) resumes, also with another
    --max_protected or without it; under unbounded no window is recorded, and --window does nothing."""
    out = tmp_path / "pred.jsonl"
    args = rb_args(data, "charades_items.jsonl", out, "--cache_policy", "sliding")
    assert run_benchmark.main([*args, "--max_protected", "512", "--limit", "1"]) == 0
    rec = read_json(run_benchmark.run_record_path(out))
    assert rec["engine"]["cache_layout"]["max_protected"] == 0 and rec["engine"]["cache"]["sink_tokens"] == 0
    rec["engine"]["cache_layout"]["max_protected"] = 1024  # as the old record said
    run_benchmark.run_record_path(out).write_text(json.dumps(rec))
    assert run_benchmark.main(args) == 0  # the same run: resumed
    assert [r["id"] for r in read_jsonl(out)] == ["A#0", "B#1"]
    assert read_json(run_benchmark.run_record_path(out))["engine"]["cache_layout"]["max_protected"] == 0

    out = tmp_path / "unbounded.jsonl"
    args = rb_args(data, "charades_items.jsonl", out, "--cache_policy", "unbounded")
    assert run_benchmark.main([*args, "--window", "300", "--limit", "1"]) == 0
    rec = read_json(run_benchmark.run_record_path(out))
    assert rec["engine"]["cache"]["window"] is None and rec["engine"]["cache_layout"]["window"] is None
    assert run_benchmark.main(args) == 0 and len(read_jsonl(out)) == 2


def test_results_protocol_records_the_generation_settings_of_the_run(data, loads, tmp_path):
    """The run record's engine block lacked respond_before_query (a SETTING_KEYS entry), and the
    results' protocol dropped repetition_penalty, respond_before_query and the system prompt the
    responses were generated with: a run with --repetition_penalty 1.3 read as one without."""
    out = tmp_path / "pred.jsonl"
    args = ["--items", str(data / "charades_items.jsonl"), "--video_root", str(data / "videos"), "--output", str(out),
            "--fps", "1", "--max_new_tokens", "2", "--repetition_penalty", "1.3", "--respond_before_query", "--quiet"]
    assert run_benchmark.main(args) == 0
    eng = read_json(run_benchmark.run_record_path(out))["engine"]
    assert (eng["repetition_penalty"], eng["respond_before_query"]) == (1.3, True)
    res = tmp_path / "res.json"
    assert benchmark.main(["--dataset", "charades", "--pred", str(out), "--gold", str(data / "charades_sta_test.txt"),
                           "--out", str(res), "--tune", "none"]) == 0
    p = read_json(res)["protocol"]
    assert (p["max_new_tokens"], p["repetition_penalty"], p["respond_before_query"]) == (2, 1.3, True)
    assert p["system_prompt"] == eng["system_prompt"]


def test_tvsum_degraded_refuses_clean_predictions(data, tiny, tvsum_pred):
    """--dataset tvsum_degraded on predictions streamed without --degrade reported a clean run as the
    degraded benchmark (rc 0); refused. The degraded run of the same items scores."""
    clean = data / "tvsum_clean_pred.jsonl"
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(run_benchmark, "load_for_inference", lambda *a, **k: tiny)
        assert run_benchmark.main(rb_args(data, "tvsum_items.jsonl", clean)) == 0
    finally:
        mp.undo()
    args = ["--dataset", "tvsum_degraded", "--gold", str(data / "tvsum_anno.json"), "--tune", "none"]
    with pytest.raises(ValueError, match="carry no degradation schedule"):
        benchmark.run(benchmark.build_parser().parse_args([*args, "--pred", str(clean), "--out", str(data / "d.json")]), [])
    assert not (data / "d.json").exists()
    res = benchmark.run(benchmark.build_parser().parse_args([*args, "--pred", str(tvsum_pred), "--out",
                                                             str(data / "d.json")]), [])
    assert res["protocol"]["dataset"] == "tvsum_degraded" and res["protocol"]["degradation"] == "random:3:blackout"


def test_results_count_videos_of_another_cut(data, loads, tmp_path):
    """A video whose duration differs from its annotation's (here the 6-s A.mp4 streamed for an item
    annotated 60 s) was only warned about at inference: RESULTS.json reported its score as the
    annotated video's. The results now count and name it (coverage.n_other_cut)."""
    items = [json.loads(line) for line in (data / "charades_items.jsonl").read_text().splitlines()][:2]
    items[0]["duration"] = 60.0  # A#0: another cut than the 6-s video
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    pred = tmp_path / "pred.jsonl"
    assert run_benchmark.main(["--items", str(tmp_path / "items.jsonl"), "--video_root", str(data / "videos"),
                               "--output", str(pred), "--fps", "1", "--no_generate", "--quiet"]) == 0
    out = tmp_path / "res.json"
    assert benchmark.main(["--dataset", "charades", "--pred", str(pred), "--gold", str(data / "charades_sta_test.txt"),
                           "--out", str(out), "--tune", "none"]) == 0
    cov = read_json(out)["protocol"]["coverage"]
    assert cov["n_other_cut"] == 1
    assert cov["other_cut_examples"] == [{"id": "A#0", "streamed_duration": pytest.approx(6.0, abs=0.1),
                                          "annotated_duration": 60.0}]
