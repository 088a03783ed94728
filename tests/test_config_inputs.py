"""Bad values in the files and numeric flags around the data: fusion flags, params and grid files
(test.benchmark / test.evaluate), a checkpoint's aha_model.json. Each is one clear line (exit 2),
never a changed number with exit 0 nor a traceback."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from test import benchmark, evaluate
from tests.test_benchmark_tuning import _synthetic_charades


@pytest.fixture(scope="module")
def charades(tmp_path_factory):
    d = tmp_path_factory.mktemp("cfg_inputs")
    pred, grid = _synthetic_charades(d)
    return d, pred


def _rc_err(main, argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return rc, err, (lines[-1] if lines else "")


def _bench(d, pred, *extra):
    return ["--dataset", "charades", "--pred", str(pred), "--gold", str(d / "charades_sta_test.txt"),
            "--out", str(d / "res.json"), "--folds", "2", *extra]


def _eval(d, pred, *extra):
    return ["--func", "charades", "--pred_file", str(pred), "--gold_file", str(d / "charades_sta_test.txt"), *extra]


FUSION_FLAGS = [(f, v) for f in ("--alpha", "--beta", "--epsilon", "--tau") for v in ("nan", "inf", "-inf")]


@pytest.mark.parametrize("flag, value", FUSION_FLAGS)
@pytest.mark.parametrize("cli", ["benchmark", "evaluate"])
def test_non_finite_fusion_flags_are_named(charades, capsys, cli, flag, value):
    """--tau inf used to score with the penalty off and exit 0 (evaluate; an error only when writing
    --output_file); --alpha nan failed deep in smoothing without naming the flag."""
    d, pred = charades
    main, argv = (benchmark.main, _bench(d, pred, "--tune", "none")) if cli == "benchmark" else (evaluate.main, _eval(d, pred))
    rc, err, last = _rc_err(main, argv + [f"{flag}={value}"], capsys)
    assert rc == 2 and flag in last and "finite" in last and "Traceback" not in err, err


@pytest.mark.parametrize("argv, needle", [(["--folds", "1"], "--folds"), (["--tune_seed", "-1"], "--tune_seed"),
                                          (["--plots", "-1"], "--plots")])
def test_benchmark_counts_out_of_range(charades, capsys, argv, needle):
    d, pred = charades
    rc, err, last = _rc_err(benchmark.main, _bench(d, pred, *argv), capsys)
    assert rc == 2 and needle in last, err


def test_evaluate_negative_smooth_window_is_named(charades, capsys):
    d, pred = charades
    rc, err, last = _rc_err(evaluate.main, _eval(d, pred, "--smooth_window", "-1"), capsys)
    assert rc == 2 and "--smooth_window" in last, err


BAD_PARAMS = {"typo": {"alhpa": 0.0, "beta": 1.0}, "empty": {}, "keyed_without_key": {"charades": {"alpha": 0.0}}}


@pytest.mark.parametrize("name", sorted(BAD_PARAMS))
@pytest.mark.parametrize("cli", ["benchmark", "evaluate"])
def test_params_file_with_unknown_or_no_keys_is_refused(charades, capsys, cli, name):
    """A misspelt key left its parameter at the paper default, exit 0."""
    d, pred = charades
    p = d / f"params_{name}.json"
    p.write_text(json.dumps(BAD_PARAMS[name]))
    main, argv = (benchmark.main, _bench(d, pred, "--tune", "none")) if cli == "benchmark" else (evaluate.main, _eval(d, pred))
    rc, err, last = _rc_err(main, argv + ["--params_file", str(p)], capsys)
    assert rc == 2 and str(p) in last, err


def test_params_file_reference_keys_still_read(charades, capsys):
    d, pred = charades
    p = d / "params_ok.json"
    p.write_text(json.dumps({"alpha": 0.0, "beta": 1.0, "uncertainty_threshold": 0.1, "uncertainty_penalty": 0.0,
                             "uncertainty_kind": "logvar", "smooth_window": 0}))
    rc, err, _ = _rc_err(evaluate.main, _eval(d, pred, "--params_file", str(p)), capsys)
    assert rc == 0, err


BAD_GRIDS = {"typo": '{"alhpa": [0, 1], "beta": [0, 1]}', "fractional_window": '{"alpha": [0, 1], "smooth_window": [2.5]}',
             "negative_window": '{"alpha": [0, 1], "smooth_window": [-3]}', "bools": '{"alpha": [true, false]}',
             "string": '{"alpha": "abc"}', "nested": '{"alpha": [[0, 1]]}', "overflow": '{"alpha": [1e400, 0]}',
             "empty_list": '{"alpha": [0, 1], "beta": []}'}


@pytest.mark.parametrize("name", sorted(BAD_GRIDS))
def test_grid_file_bad_keys_and_values_are_named(charades, capsys, name):
    """A misspelt key was searched over doing nothing (exit 0), a 2.5 window ran as 2, a nested list
    failed with a TypeError (exit 1)."""
    d, pred = charades
    g = d / f"grid_{name}.json"
    g.write_text(BAD_GRIDS[name])
    rc, err, last = _rc_err(benchmark.main, _bench(d, pred, "--grid", str(g)), capsys)
    assert rc == 2 and f"--grid {g}" in last and "Traceback" not in err, err


def test_grid_file_scalar_and_smoothing_still_tuned(charades, capsys):
    d, pred = charades
    g = d / "grid_ok.json"
    g.write_text('{"alpha": [0, 1], "beta": 1, "smooth_window": [0, 3]}')
    rc, err, _ = _rc_err(benchmark.main, _bench(d, pred, "--grid", str(g)), capsys)
    assert rc == 0, err


# ------------------------------------------------------------- a checkpoint's aha_model.json

CKPT = Path(__file__).resolve().parents[1] / "checkpoints" / "aha-tiny-synth"


def _set(path, value):
    def mutate(meta):
        d = meta
        for k in path[:-1]:
            d = d[k]
        if value is KeyError:
            del d[path[-1]]
        else:
            d[path[-1]] = value
    return mutate


BAD_META = {
    "bad_json": "{oops", "a_list": "[1, 2]",
    "no_kind": _set(["kind"], KeyError), "kind_typo": _set(["kind"], "ful"), "no_config": _set(["config"], KeyError),
    "inference_list": _set(["inference"], [1]), "tokens_per_frame_negative": _set(["inference", "tokens_per_frame"], -1),
    "system_prompt_number": _set(["inference", "system_prompt"], 5),
    "window_under_one_frame": _set(["inference", "window"], 1),
    "sink_over_window": lambda m: m["inference"].update(cache_policy="sink", window=12, sink_tokens=32),
    "logvar_reversed": lambda m: m["config"].update(logvar_min=2.0, logvar_max=-1.0),
    "logvar_inf": _set(["config", "logvar_max"], float("inf")),
    "loss_weight_nan": _set(["config", "loss_weights", "lm"], float("nan")),
    "pool_stride_text": _set(["config", "frame_pool_stride"], "7"),
    "base_saved_text": _set(["base_saved"], "yes"),
}


def _poisoned_checkpoint(d: Path, name: str) -> Path:
    ck = d / name
    ck.mkdir()
    for f in CKPT.iterdir():
        if f.name != "aha_model.json":
            (ck / f.name).symlink_to(f.resolve())
    how = BAD_META[name]
    if isinstance(how, str):
        (ck / "aha_model.json").write_text(how)
    else:
        meta = json.loads((CKPT / "aha_model.json").read_text())
        how(meta)
        (ck / "aha_model.json").write_text(json.dumps(meta))
    return ck


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    from tests.videos import write_test_video

    return write_test_video(tmp_path_factory.mktemp("cfg_video") / "v.mkv", n_frames=10, fps=5, size=(64, 48),
                            pattern="noisy_index")


@pytest.mark.parametrize("name", sorted(BAD_META))
def test_poisoned_checkpoint_meta_is_refused_before_the_model(tmp_path, monkeypatch, capsys, small_video, name):
    """A missing key was a KeyError (exit 1), bad JSON did not name the file, a checkpoint window
    that cannot hold a frame failed after the first frame (exit 1, partial outputs), a non-text
    system prompt was a TypeError, reversed log-variance bounds / a NaN loss weight were accepted."""
    from test import live_infer
    from tests import fakes

    ck = _poisoned_checkpoint(tmp_path, name)
    count = fakes.install(monkeypatch)
    out = tmp_path / "out"
    rc, err, last = _rc_err(live_infer.main, ["--video", str(small_video), "--query", "q", "--checkpoint", str(ck),
                                              "--output_dir", str(out), "--quiet", "--reel_budget", "0"], capsys)
    assert rc == 2 and "error:" in last and str(ck) in last and "Traceback" not in err, err
    assert count["loads"] == 0 and not out.exists()


@pytest.mark.parametrize("name", ["no_kind", "a_list", "pool_stride_text", "loss_weight_nan"])
def test_load_checkpoint_names_the_bad_meta(tmp_path, name):
    from models.checkpoint import load_checkpoint

    ck = _poisoned_checkpoint(tmp_path, name)
    with pytest.raises(ValueError, match="aha_model.json"):
        load_checkpoint(ck)


# ------------------------------------------------------------------------- test.synthetic_eval

SYNTH_BAD = [("--fps", "nan"), ("--fps", "0"), ("--fps", "-1"), ("--window", "0"), ("--window", "-4"),
             ("--frame_size", "0"), ("--max_new_tokens", "0"), ("--seed", "-1"), ("--limit", "-1"), ("--limit", "0"),
             ("--threads", "0"), ("--thresholds", "nan"), ("--thresholds", "0.5,abc"), ("--thresholds", ","),
             ("--thresholds", "inf")]


@pytest.mark.parametrize("flag, value", SYNTH_BAD)
def test_synthetic_eval_numeric_flags_are_named_before_anything_runs(tmp_path, capsys, flag, value):
    """--window 0 ran with the default window, --limit -1 reached the model runs, --fps nan the
    baselines' sampling, a non-number threshold was float()'s own message."""
    from test import synthetic_eval
    from utils.cli import entry

    work = tmp_path / "work"
    rc, err, last = _rc_err(lambda a: entry("synthetic_eval", synthetic_eval.main, a),
                            ["--data", str(tmp_path / "nothing_here"), "--work", str(work),
                             "--results", str(tmp_path / "r.json"), f"{flag}={value}"], capsys)
    assert rc == 2 and flag in last and "Traceback" not in err, err
    assert not work.exists() and not (tmp_path / "r.json").exists()


# --------------------------------------------------------------------------- datasets/download.py

DOWNLOAD_BAD = [("--duration_atol", "nan"), ("--duration_atol", "inf"), ("--duration_atol", "-1"),
                ("--duration_rtol", "nan"), ("--duration_rtol", "-0.1"), ("--duration_rtol", "5"),
                ("--timeout", "nan"), ("--timeout", "inf"), ("--max_time", "nan"), ("--max_time", "-1"),
                ("--backoff", "nan"), ("--backoff", "-1"), ("--retries", "-1"), ("--rate_per_min", "nan"),
                ("--rate_per_min", "-5"), ("--rate_per_min", "0"), ("--workers", "0")]


@pytest.mark.parametrize("flag, value", DOWNLOAD_BAD)
def test_download_numeric_flags_are_named_before_any_request(tmp_path, capsys, flag, value):
    """A NaN --duration_atol rejected every downloaded video as the wrong length (inf accepted any
    length), a NaN --timeout / --backoff / --rate_per_min reached the fetcher."""
    from tests.script_loader import load_script

    dl = load_script("datasets/download.py", "aha_datasets_download", register=True)
    ids = tmp_path / "ids.txt"
    ids.write_text("abc\n")
    out = tmp_path / "o"
    rc, err, last = _rc_err(dl.main, ["--ids", str(ids), "--out", str(out), f"{flag}={value}"], capsys)
    assert rc == 2 and flag in last and "Traceback" not in err, err
    assert not out.exists()


# ------------------------------------------------------------------------ scripts/extract_features.py

EXTRACT_BAD = [("--max_frames", "0"), ("--max_frames", "-1"), ("--batch_frames", "0"), ("--num_workers", "-1"),
               ("--shard", "3/2"), ("--shard", "0/0"), ("--shard", "-1/2"), ("--fps", "nan")]


@pytest.mark.parametrize("flag, value", EXTRACT_BAD)
def test_extract_features_flags_are_named_before_the_model(tmp_path, monkeypatch, capsys, small_video, flag, value):
    """--max_frames 0 cached nothing and exited 0; the others were found after the model was built."""
    import models.build
    from tests.script_loader import load_script
    from utils.cli import entry

    built = []
    monkeypatch.setattr(models.build, "build_model", lambda *a, **k: built.append(1) or (_ for _ in ()).throw(AssertionError))
    ef = load_script("scripts/extract_features.py")
    cache = tmp_path / "cache"
    rc, err, last = _rc_err(lambda a: entry("extract_features", ef.main, a),
                            ["--video", str(small_video), "--fps", "2", "--cache_dir", str(cache), f"{flag}={value}"], capsys)
    assert rc == 2 and flag in last and "Traceback" not in err and not built, err


# ------------------------------------------------------------------------------------ train.py

TRAIN_BAD = [("--per_device_train_batch_size", "0"), ("--gradient_accumulation_steps", "0"), ("--num_train_epochs", "0"),
             ("--num_train_epochs", "nan"), ("--num_train_epochs", "inf"), ("--weight_decay", "nan"),
             ("--weight_decay", "-1"), ("--max_grad_norm", "nan"), ("--adam_beta1", "nan"), ("--adam_beta2", "1.5"),
             ("--adam_epsilon", "inf"), ("--seed", "-1")]


@pytest.mark.parametrize("flag, value", TRAIN_BAD)
def test_train_numeric_flags_are_named_before_the_data_and_model(flag, value):
    """The Trainer accepted these: 0 epochs trained nothing, NaN decay/clipping reached the optimizer,
    a batch size or accumulation of 0 failed after the model was built."""
    import train

    model_args, data_args, args = train.parse_args([
        "--output_dir", "/nonexistent/out", "--use_cpu", "true", "--report_to", "none", "--preset", "aha-tiny",
        "--tokenizer", str(CKPT), "--dataset_config", str(CKPT.parents[1] / "configs" / "datasets" / "aha_config.json"),
        flag, value])
    with pytest.raises(ValueError, match=flag):
        train.check_inputs(model_args, data_args, args)


# ------------------------------------------------------------------------------------ test.demo

@pytest.mark.parametrize("argv, flag", [(["--seed", "-1"], "--seed"), (["--web", "--port", "-5"], "--port"),
                                        (["--web", "--port", "70000"], "--port"), (["--web", "--max_streams", "0"], "--max_streams")])
def test_demo_numbers_are_named_before_the_model(tmp_path, monkeypatch, capsys, argv, flag):
    from test import demo
    from utils.cli import entry

    monkeypatch.setattr(demo, "resolve_model", lambda args: pytest.fail("the model was resolved"))
    rc, err, last = _rc_err(lambda a: entry("demo", demo.main, a),
                            ["--checkpoint", str(CKPT), "--output_dir", str(tmp_path / "o"), "--quiet", *argv], capsys)
    assert rc == 2 and flag in last and "Traceback" not in err, err


# ---------------------------------------------------------------------------- datasets/convert.py

@pytest.mark.parametrize("value, rc", [("5", 2), ("-1", 2), ("4", 0), ("0", 0)])
def test_qvh_highlight_min_score_outside_the_saliency_scale_is_refused(tmp_path, capsys, value, rc):
    """Saliency scores are 0-4: --highlight_min_score 5 wrote every item with empty gold
    highlight_windows, exit 0."""
    from tests.script_loader import load_script

    conv = load_script("datasets/convert.py")
    src = tmp_path / "qvh.jsonl"
    src.write_text(json.dumps({"qid": 1, "query": "a dog runs", "vid": "abcdefghijk_0.0_150.0", "duration": 150,
                               "relevant_windows": [[0, 4]], "relevant_clip_ids": [0, 1],
                               "saliency_scores": [[4, 4, 4], [3, 3, 3]]}) + "\n")
    out = tmp_path / "items.jsonl"
    got, err, last = _rc_err(conv.main, ["qvh", "--input", str(src), "--output", str(out), "--highlight_min_score", value],
                             capsys)
    assert got == rc, err
    if rc:
        assert "--highlight_min_score" in last and not out.exists()


# ------------------------------------------------------------------- a model preset (--model_config)

PRESET = CKPT.parents[1] / "configs" / "model" / "aha-tiny.json"
BAD_PRESETS = {
    "config_typo": lambda p: p["config"].update(frame_pool_strid=7),
    "top_level_typo": lambda p: p.update(train_window_frame=12),
    "no_config": lambda p: p.pop("config"),
    "window_fraction": lambda p: p.update(train_window_frames=12.5),
    "window_zero": lambda p: p.update(train_window_frames=0),
    "stride_text": lambda p: p["config"].update(frame_pool_stride="4"),
    "logvar_reversed": lambda p: p["config"].update(logvar_min=1.0, logvar_max=0.0),
}


@pytest.mark.parametrize("name", sorted(BAD_PRESETS) + ["bad_json"])
def test_a_bad_preset_file_is_named_before_the_model(tmp_path, monkeypatch, capsys, small_video, name):
    """A misspelt config key was kept as an inert attribute (the default ran, exit 0); a fractional
    train_window_frames was truncated; bad JSON or a missing config was an unnamed error or a KeyError."""
    from test import live_infer
    from tests import fakes

    preset = tmp_path / "preset.json"
    if name == "bad_json":
        preset.write_text("{oops")
    else:
        spec = json.loads(PRESET.read_text())
        BAD_PRESETS[name](spec)
        preset.write_text(json.dumps(spec))
    count = fakes.install(monkeypatch)
    out = tmp_path / "out"
    rc, err, last = _rc_err(live_infer.main, ["--video", str(small_video), "--query", "q", "--model_config", str(preset),
                                              "--output_dir", str(out), "--quiet", "--reel_budget", "0"], capsys)
    assert rc == 2 and str(preset) in last and "Traceback" not in err, err
    assert count["loads"] == 0 and not out.exists()


def test_shipped_presets_still_load():
    from models.build import PRESET_DIR, load_preset, train_window_tokens

    for p in sorted(PRESET_DIR.glob("*.json")):
        load_preset(p.stem)
        train_window_tokens(p.stem)


# ------------------------------------------------------------------------ feature-cache headers

@pytest.mark.parametrize("frames", ["5", "2", "x", None])
def test_a_feature_file_whose_header_disagrees_with_its_tensor_is_named(tmp_path, frames):
    """A header saying 5 frames over a 3-row tensor made load(0, 5) return 3 rows without a word."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from data.feature_cache import TENSOR, FeatureCache, FeatureCacheCorrupt

    cache = FeatureCache(tmp_path / "feats", "f" * 16, "frame_embeds")
    p = cache.save("v.mp4", 1.0, 32, torch.zeros(3, 4, 8))
    with safe_open(str(p), framework="pt") as f:
        meta, t = dict(f.metadata()), f.get_tensor(TENSOR)
    if frames is None:
        meta.pop("frames")
    else:
        meta["frames"] = frames
    save_file({TENSOR: t}, str(p), metadata=meta)
    for read in (lambda: cache.load("v.mp4", 1.0, 0, 2, 32), lambda: cache.frames_cached("v.mp4", 1.0, 32)):
        with pytest.raises(FeatureCacheCorrupt, match=p.name):
            read()


# ----------------------------------------------------------------------------- run records read back

BAD_RUN_RECORDS = {"a_list": "[1, 2]", "engine_list": '{"engine": [1], "settings": {}}',
                   "settings_text": '{"settings": "fps=2", "engine": null}', "model_files_list": '{"model_files": [1]}',
                   "runs_object": '{"settings": {}, "runs": {}}'}


@pytest.mark.parametrize("name", sorted(BAD_RUN_RECORDS))
@pytest.mark.parametrize("cli", ["benchmark", "evaluate"])
def test_a_damaged_run_record_beside_the_predictions_is_named(tmp_path, capsys, cli, name):
    """PRED.run.json read back as a list or with a non-object block was an AttributeError (exit 1)."""
    d = tmp_path / "bench"
    pred, _ = _synthetic_charades(d)
    rec = pred.with_name(pred.name[: -len(".jsonl")] + ".run.json")
    from test.run_record import run_record_path

    assert run_record_path(pred) == rec
    rec.write_text(BAD_RUN_RECORDS[name])
    main, argv = (benchmark.main, _bench(d, pred, "--tune", "none")) if cli == "benchmark" else (evaluate.main, _eval(d, pred))
    rc, err, last = _rc_err(main, argv, capsys)
    assert rc == 2 and str(rec) in last and "Traceback" not in err, err


@pytest.mark.parametrize("given", ['{"window": 1}', '{"cache_policy": "sink", "window": 12, "sink_tokens": 32}',
                                   '{"fps": NaN}'])
def test_train_refuses_inference_settings_no_stream_could_run(given):
    """--inference_settings '{"window": 1}' was written into the checkpoint after training: every
    online run of it then stopped at its first frame."""
    import train

    with pytest.raises(ValueError, match="window|fps"):
        train.training_inference_settings(given, "aha-tiny-synth",
                                          str(CKPT.parents[1] / "configs" / "datasets" / "aha_config.json"))
