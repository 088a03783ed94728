"""Bad values in the files and numeric flags around the data: fusion flags, params and grid files
(test.benchmark / test.evaluate), a checkpoint's aha_model.json. Each is one clear line (exit 2),
never a changed number with exit 0 nor a traceback."""
from __future__ import annotations

import json

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
