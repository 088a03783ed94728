"""Benchmark drivers end to end on the aha-tiny preset (random heads: mechanics, not quality).

Tiny fixture videos (tests/videos.py) and items written by datasets/convert.py for a
Charades-STA-like and a TVSum-like case: every item predicted, resume without model work, a torn
last line cut off, a missing video logged and skipped, native frame indices, per-video degradation
schedules, the results record (held-out k-fold by default), hand-checkable tuning on synthetic
predictions, and one shell script run end to end.
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
from test.postprocess import FusionParams, fuse_prediction
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


# ---------------------------------------------------------------------- synthetic predictions


def _synthetic_charades(d: Path, n: int = 4) -> tuple[Path, Path]:
    """n 10-s queries with gold [3, 6]: relevance is 1 exactly on frames 3-5, informative the opposite.

    Hand-worked with the causal rule (threshold 0.5, anchor 0): relevance alone gives the run 3..5,
    i.e. [3, 6], IoU 1; informative alone gives the longest run 6..9 = [6, 10], IoU 0; their sum is
    constant -> every frame on -> [0, 10], IoU 0.3; all zero -> no interval, IoU 0.
    """
    d.mkdir(parents=True, exist_ok=True)
    rel = [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    recs, lines, csv = [], [], ["id,length"]
    for k in range(n):
        vid = f"S{k}"
        lines.append(f"{vid} 3.0 6.0##query {k}")
        csv.append(f"{vid},10.0")
        recs.append({"id": f"{vid}#{k}", "fps": 1.0, "duration": 10.0, "frames": {
            "time": [float(t) for t in range(10)], "relevance": rel, "informative": [1 - x for x in rel],
            "uncertainty": [0.0] * 10}, "responses": []})
    (d / "charades_sta_test.txt").write_text("\n".join(lines) + "\n")
    (d / "Charades_v1_test.csv").write_text("\n".join(csv) + "\n")
    pred = d / "pred.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in recs))
    grid = d / "grid.json"
    grid.write_text(json.dumps({"alpha": [0.0, 1.0], "beta": [0.0, 1.0], "epsilon": [0.0], "tau": [0.0]}))
    return pred, grid


def _bench(d, pred, grid, *extra):
    out = d / f"res_{len(list(d.glob('res_*.json')))}.json"
    rc = benchmark.main(["--dataset", "charades", "--pred", str(pred), "--gold", str(d / "charades_sta_test.txt"),
                         "--out", str(out), "--grid", str(grid), *extra])
    return rc, (read_json(out) if rc == 0 else None)


def test_kfold_tuning_finds_the_relevance_head(tmp_path):
    pred, grid = _synthetic_charades(tmp_path)
    rc, res = _bench(tmp_path, pred, grid, "--folds", "2")
    assert rc == 0
    for f in res["protocol"]["fusion"]["folds"]:
        assert (f["best_params"]["alpha"], f["best_params"]["beta"]) == (0.0, 1.0)
        assert f["tune_score"] == 100.0
    assert res["metrics"]["R1@0.5"] == 100.0 and res["metrics"]["mIoU"] == pytest.approx(100.0)


def test_fixed_informative_only_misses_every_moment(tmp_path):
    pred, grid = _synthetic_charades(tmp_path)
    rc, res = _bench(tmp_path, pred, grid, "--tune", "none", "--alpha", "1", "--beta", "0", "--epsilon", "0")
    assert rc == 0 and res["metrics"]["R1@0.3"] == 0.0
    rc, res = _bench(tmp_path, pred, grid, "--tune", "none", "--alpha", "1", "--beta", "1", "--epsilon", "0")
    assert res["metrics"]["mIoU"] == pytest.approx(30.0)  # [0, 10] vs [3, 6]


def test_split_tuning_reports_only_the_other_items(tmp_path):
    pred, grid = _synthetic_charades(tmp_path)
    ids = tmp_path / "tune_ids.json"
    ids.write_text(json.dumps(["S0#0", "S1#1"]))
    rc, res = _bench(tmp_path, pred, grid, "--tune", f"split:{ids}")
    assert rc == 0
    p = res["protocol"]
    assert p["tuned_on"] == "train split" and p["tuned_on_test"] is False
    assert p["fusion"]["tune_ids"] == ["S0#0", "S1#1"]
    assert p["coverage"]["n_scored"] == 2 and p["coverage"]["n_tuning_only"] == 2
    assert sorted(res["per_item"]) == ["S2#2", "S3#3"]  # the scorer never saw the tuning queries


def test_tuning_on_the_reported_items_is_stamped(tmp_path):
    pred, grid = _synthetic_charades(tmp_path)
    rc, res = _bench(tmp_path, pred, grid, "--tune_on_test")
    assert rc == 0
    assert res["protocol"]["tuned_on_test"] is True
    assert res["protocol"]["tuned_on"] == "TEST (tuned on the reported data)"
    assert res["protocol"]["fusion"]["mode"] == "tuned on the reported items"


def test_weights_tuned_on_test_are_refused_unless_stamped(tmp_path, capsys):
    pred, grid = _synthetic_charades(tmp_path)
    params = tmp_path / "params.json"
    rc, _ = _bench(tmp_path, pred, grid, "--tune_on_test", "--params_out", str(params))
    assert rc == 0 and read_json(params)["charades"]["tuned_on_test"] is True
    fixed = ["--tune", "none", "--params_file", str(params), "--params_key", "charades"]
    rc, _ = _bench(tmp_path, pred, grid, *fixed)
    assert rc == 2 and "tuned on the reported data" in capsys.readouterr().err
    rc, res = _bench(tmp_path, pred, grid, *fixed, "--tune_on_test")
    assert rc == 0 and res["protocol"]["tuned_on_test"] is True
    assert res["protocol"]["fusion"]["params"]["beta"] == 1.0 and res["metrics"]["R1@0.5"] == 100.0


def test_response_benchmarks_have_nothing_to_tune(tmp_path, capsys):
    gold = {"v_a": {"duration": 20.0, "timestamps": [[0, 5], [5, 10]], "sentences": ["cut it", "fry it"]}}
    (tmp_path / "yc2_val.json").write_text(json.dumps(gold))
    pred = tmp_path / "pred.jsonl"
    frames = {"time": [0.0, 2.0], "informative": [0.1, 0.9], "relevance": [0.2, 0.3], "uncertainty": [0.0, 0.0]}
    responses = [{"time": 5.0, "content": "cut it"}, {"time": 10.0, "content": "fry it"}]
    pred.write_text(json.dumps({"id": "v_a", "frames": frames, "responses": responses}) + "\n")
    common = ["--dataset", "youcook2", "--pred", str(pred), "--gold", str(tmp_path / "yc2_val.json"),
              "--opt", "captions=false"]
    assert benchmark.main([*common, "--out", str(tmp_path / "r.json"), "--tune", "kfold"]) == 2
    assert "nothing to tune" in capsys.readouterr().err
    assert benchmark.main([*common, "--out", str(tmp_path / "r.json")]) == 0
    res = read_json(tmp_path / "r.json")
    assert res["protocol"]["tuned_on"].startswith("nothing to tune") and res["protocol"]["fusion"] is None
    # segments [0, 5] and [5, 10] match the gold exactly: precision = recall = 1 at every tIoU
    assert res["headline"] == {"name": "F1_Score", "value": pytest.approx(100.0)}


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


# --------------------------------------------------- tuning objectives == the scorers' numbers


def _synthetic_case(name: str, d: Path, rng) -> tuple[dict, str, str | None, dict]:
    """(predictions, gold file, protocol, options) of a few random items for one scorer."""
    from test.predictions import StreamPrediction

    def pred(i, n, fps=1.0, **extra):
        t = np.arange(n) / fps
        return StreamPrediction(i, t, rng.random(n), rng.random(n), rng.normal(size=n), duration=n / fps, fps=fps,
                                extra=extra)

    if name == "tvsum_aha":
        lines, preds = [], {}
        for k in range(4):
            vid, n_native = f"v{k}", 300 + 20 * k
            for _ in range(3):
                lines.append(f"{vid}\tVT\t" + ",".join(str(x) for x in rng.integers(1, 6, n_native)))
            preds[vid] = pred(vid, n_native // 10, native_fps=10.0)
        (d / "anno.tsv").write_text("\n".join(lines) + "\n")
        return preds, str(d / "anno.tsv"), "aha", {}
    if name == "hisum":
        import h5py

        preds = {}
        with h5py.File(d / "gold.h5", "w") as f:
            for k in range(4):
                vid, n = f"h{k}", 60 + 7 * k
                g = f.create_group(vid)
                g["gtscore"] = rng.random(n)
                g["change_points"] = np.array([[0, 19], [20, 39], [40, n - 1]])
                g["gt_summary"] = (rng.random(n) > 0.8).astype(float)
                preds[vid] = pred(vid, n)
        return preds, str(d / "gold.h5"), "official", {}
    if name == "qvh":
        recs, preds = [], {}
        for k in range(5):
            qid, dur = str(100 + k), 30.0
            clips = sorted(rng.choice(15, 6, replace=False).tolist())
            recs.append({"qid": int(qid), "vid": f"x_{k}_0.0_30.0", "duration": dur, "relevant_clip_ids": clips,
                         "saliency_scores": rng.integers(0, 5, (6, 3)).tolist(), "relevant_windows": [[0, 4]]})
            preds[qid] = pred(qid, 30)
        (d / "qvh.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        return preds, str(d / "qvh.jsonl"), "official", {}
    if name == "charades_reference":
        lines, csv, preds = [], ["id,length"], {}
        for k in range(5):
            vid = f"C{k}"
            s = float(rng.integers(0, 10))
            lines.append(f"{vid} {s} {s + 6}##q")
            csv.append(f"{vid},20.0")
            preds[f"{vid}#{k}"] = pred(f"{vid}#{k}", 40, fps=2.0)
        (d / "sta_test.txt").write_text("\n".join(lines) + "\n")
        (d / "Charades_v1_test.csv").write_text("\n".join(csv) + "\n")
        return preds, str(d / "sta_test.txt"), "reference", {"window": 3}
    raise ValueError(name)


@pytest.mark.parametrize("name", ["tvsum_aha", "hisum", "qvh", "charades_reference"])
def test_tuning_objective_equals_the_reported_metric(tmp_path, name):
    """The objective the tuner maximises is the headline the scoring path reports for the same items
    and weights (one in-memory score() for both): compared here with ``test.evaluate`` on a file."""
    from data import benchmarks
    from test.evaluate import score_files

    rng = np.random.default_rng(7)
    preds, gold_file, protocol, options = _synthetic_case(name, tmp_path, rng)
    dataset = name.split("_")[0]
    bench = benchmarks.get(dataset)
    proto, opts = bench.resolve(protocol, options)
    gold = bench.load_gold(gold_file, proto, opts)
    objective = benchmark.make_objective(bench, proto, opts, preds, gold)
    params = FusionParams(0.3, 1.2, 0.5, 0.1)
    fused = {i: fuse_prediction(p, params) for i, p in preds.items()}
    pred_file = tmp_path / "pred.jsonl"
    pred_file.write_text("".join(json.dumps(p.to_record()) + "\n" for p in preds.values()))
    reported = score_files(dataset, [str(pred_file)], gold_file, protocol, params, options)[0]["headline"]["value"]
    assert reported is not None
    # QVHighlights reports 2-decimal percentages; the objective keeps full precision (no ties)
    assert objective(fused) == pytest.approx(reported, abs=0.005 if name == "qvh" else 1e-9)


def test_reported_metric_on_the_tuning_split_equals_the_tune_score(tmp_path):
    """Tune on a split, then report the tuning items themselves with the tuned weights: the number
    is the tuning objective's value (the mismatch the Mr.HiSum objective used to have cannot come back)."""
    rng = np.random.default_rng(3)
    preds, gold_file, _, _ = _synthetic_case("hisum", tmp_path, rng)
    pred_file = tmp_path / "pred.jsonl"
    pred_file.write_text("".join(json.dumps(p.to_record()) + "\n" for p in preds.values()))
    ids = tmp_path / "tune.json"
    ids.write_text(json.dumps(["h0", "h1"]))
    params = tmp_path / "params.json"
    common = ["--dataset", "hisum", "--gold", gold_file, "--opt", "zero_positive=zero"]
    assert benchmark.main([*common, "--pred", str(pred_file), "--out", str(tmp_path / "r1.json"), "--tune", f"split:{ids}",
                           "--params_out", str(params)]) == 0
    tune_score = read_json(params)["hisum"]["tune_score"]
    only_tuning = tmp_path / "tune_pred.jsonl"
    only_tuning.write_text("".join(json.dumps(preds[i].to_record()) + "\n" for i in ("h0", "h1")))
    assert benchmark.main([*common, "--pred", str(only_tuning), "--out", str(tmp_path / "r2.json"), "--tune", "none",
                           "--params_file", str(params), "--params_key", "hisum"]) == 0
    assert read_json(tmp_path / "r2.json")["headline"]["value"] == pytest.approx(tune_score, abs=1e-9)
