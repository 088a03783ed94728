"""Benchmark tuning on synthetic predictions: k-fold, split and fixed weights, the reported items' stamps,
and the tuning objectives equal to the scorers' numbers (no model: predictions are written directly)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from test import benchmark
from test.postprocess import FusionParams, fuse_prediction
from utils.io import read_json

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[1]
NATIVE_FPS = 10
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
    # responses are made at frames (a response at no frame time is refused)
    frames = {"time": [0.0, 5.0, 10.0], "informative": [0.1, 0.9, 0.5], "relevance": [0.2, 0.3, 0.4],
              "uncertainty": [0.0, 0.0, 0.0]}
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
                           "--params_file", str(params), "--params_key", "hisum", "--tune_on_test"]) == 0
    r2 = read_json(tmp_path / "r2.json")  # the tuning items themselves: accepted only as tuned on test
    assert r2["headline"]["value"] == pytest.approx(tune_score, abs=1e-9) and r2["protocol"]["tuned_on_test"] is True


def test_a_params_file_tuned_with_smoothing_is_applied_with_it(tmp_path):
    """A grid over smooth_window tunes the weights on the causally smoothed fused score; reusing the
    saved parameters (test.benchmark --tune none --params_file, test.evaluate --params_file) must smooth
    the same way, not drop the window silently. TVSum-like random scores: smoothing changes the ranking."""
    from test import evaluate
    from test.postprocess import read_fusion_file

    rng = np.random.default_rng(0)
    n = 40
    gold, pred = tmp_path / "gold.jsonl", tmp_path / "pred.jsonl"
    gold.write_text(json.dumps({"vid": "v1", "domain": "BK", "label": rng.integers(1, 6, (n // 2, 20)).tolist()}) + "\n")
    pred.write_text(json.dumps({"id": "v1", "fps": 1.0, "frames": {
        "time": list(range(n)), "relevance": rng.random(n).tolist(), "informative": rng.random(n).tolist(),
        "uncertainty": [0.0] * n}}) + "\n")
    weights = {"alpha": 0.0, "beta": 1.0, "epsilon": 0.0, "tau": 0.0}
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"plain": weights, "smoothed": {**weights, "smooth_window": 5}}))
    assert read_fusion_file(params, "smoothed")[1] == {"smooth_window": 5}

    def ev(*extra):
        return evaluate.run(["--func", "tvsum", "--pred_file", str(pred), "--gold_file", str(gold), *extra])[0]["metrics"]

    by_file = ev("--params_file", str(params), "--params_key", "smoothed")
    by_flag = ev("--params_file", str(params), "--params_key", "plain", "--smooth_window", "5")
    unsmoothed = ev("--params_file", str(params), "--params_key", "plain")
    assert by_file == by_flag and by_file["top5_mAP"] != pytest.approx(unsmoothed["top5_mAP"])
    out = tmp_path / "res.json"
    assert benchmark.main(["--dataset", "tvsum", "--protocol", "umt", "--pred", str(pred), "--gold", str(gold),
                           "--out", str(out), "--tune", "none", "--params_file", str(params),
                           "--params_key", "smoothed"]) == 0
    res = read_json(out)
    assert res["protocol"]["fusion"]["params"]["smooth_window"] == 5
    assert res["metrics"]["top5_mAP"] == pytest.approx(by_file["top5_mAP"])


def test_live_inference_says_it_does_not_apply_a_tuned_smoothing(tmp_path, caplog):
    import argparse
    import logging

    from test.engine_args import fusion_params

    params = tmp_path / "params.json"
    params.write_text(json.dumps({"alpha": 0.5, "beta": 1.0, "epsilon": 0.0, "tau": 0.0, "smooth_window": 9}))
    args = argparse.Namespace(params_file=str(params), params_key=None, alpha=None, beta=None, epsilon=None, tau=None,
                              uncertainty_kind=None)
    with caplog.at_level(logging.WARNING, logger="engine_args"):
        assert fusion_params(args).alpha == 0.5
    assert "smooth_window 9): the live fused score is written unsmoothed" in caplog.text



def _split_with_run_records(d: Path, tune_settings: dict, report_settings: dict | None = None,
                            tune_files: dict | None = None):
    """The synthetic Charades queries in two prediction files (S0, S1 to tune on; S2, S3 reported),
    each with a run record as test.run_benchmark writes it (None: no record)."""
    from test.run_benchmark import SETTING_KEYS, run_record_path

    pred, grid = _synthetic_charades(d)
    recs = [json.loads(x) for x in pred.read_text().splitlines()]
    tune, report = d / "val_pred.jsonl", d / "test_pred.jsonl"
    tune.write_text("".join(json.dumps(r) + "\n" for r in recs[:2]))
    report.write_text("".join(json.dumps(r) + "\n" for r in recs[2:]))
    base = {k: None for k in SETTING_KEYS} | {"fps": 1.0, "cache_policy": "dynamic_sink", "window": 2048}
    files = {"checkpoint_sha256": "a" * 64, "weights_sha256": None, "heads_sha256": None}
    for path, settings, mf in ((tune, tune_settings, tune_files), (report, report_settings, None)):
        if settings is not None:
            run_record_path(path).write_text(json.dumps({
                "settings": {**base, **settings}, "model_files": mf or files,
                "engine": {"fps": {**base, **settings}["fps"], "cache": {"policy": "dynamic_sink"}}, "runs": []}))
    return tune, report, grid


def test_weights_tuned_on_predictions_made_otherwise_are_refused_unless_allowed(tmp_path, capsys, caplog):
    """--tune pred:FILE compares FILE's run record with the reported run's (the resume rule's settings and
    model files): another fps, cache policy or checkpoint is refused; --allow_tune_mismatch accepts it,
    said and recorded; the tuning run's engine block is recorded under the fusion record."""
    import logging

    tune, report, grid = _split_with_run_records(tmp_path, {"fps": 2.0, "cache_policy": "sliding"}, {})
    rc, _ = _bench(tmp_path, report, grid, "--tune", f"pred:{tune}")
    err = capsys.readouterr().err
    assert rc == 2 and "other settings" in err and "fps: 2.0 (tuning run) vs 1.0 (reported run)" in err
    assert "cache_policy: 'sliding' (tuning run) vs 'dynamic_sink'" in err
    with caplog.at_level(logging.WARNING, logger="benchmark"):
        rc, res = _bench(tmp_path, report, grid, "--tune", f"pred:{tune}", "--allow_tune_mismatch")
    assert rc == 0 and "--allow_tune_mismatch: the tuning predictions differ" in caplog.text
    run = res["protocol"]["fusion"]["tuning_run"]
    assert run["settings_match"] is False and run["allowed_by"] == "--allow_tune_mismatch"
    assert run["engine"]["fps"] == 2.0 and "max_protected: 0 (tuning run) vs None (reported run)" in run["mismatches"]

    d = tmp_path / "model"
    tune, report, grid = _split_with_run_records(d, {}, {}, tune_files={"checkpoint_sha256": "b" * 64})
    rc, _ = _bench(d, report, grid, "--tune", f"pred:{tune}")
    assert rc == 2 and "checkpoint content sha256 bbbbbbbbbbbb... (tuning run)" in capsys.readouterr().err


def test_weights_tuned_on_predictions_made_the_same_way_record_the_tuning_run(tmp_path, caplog):
    import logging

    tune, report, grid = _split_with_run_records(tmp_path, {"features": "/val/features"}, {"features": "/test/features"})
    rc, res = _bench(tmp_path, report, grid, "--tune", f"pred:{tune}")
    assert rc == 0
    run = res["protocol"]["fusion"]["tuning_run"]
    assert run["settings_match"] is True and run["engine"]["fps"] == 1.0 and "mismatches" not in run
    assert res["protocol"]["tuned_on"] == "held-out predictions (val_pred.jsonl)"

    d = tmp_path / "norecord"  # a tuning file without a run record: unknown, said, still used
    tune, report, grid = _split_with_run_records(d, None, {})
    with caplog.at_level(logging.WARNING, logger="benchmark"):
        rc, res = _bench(d, report, grid, "--tune", f"pred:{tune}")
    assert rc == 0 and "val_pred.run.json: the tuning run's settings cannot be compared" in caplog.text
    run = res["protocol"]["fusion"]["tuning_run"]
    assert run["run_record"] == "unknown" and run["settings_match"] == "unknown: no val_pred.run.json"


# ------------------------------------------------ provenance, fixed values, ties, an inactive penalty


def test_a_split_tuning_reused_on_its_own_tuning_items_is_refused_unless_stamped(tmp_path, capsys):
    """Parameters saved by --tune split:IDS know their tune_ids: applied with --tune none to a prediction
    file that holds those items, they are tuned on test (refused without --tune_on_test, stamped with it);
    applied to the other items only, they are not."""
    from test import evaluate

    pred, grid = _synthetic_charades(tmp_path)
    ids = tmp_path / "tune_ids.json"
    ids.write_text(json.dumps(["S0#0", "S1#1"]))
    params = tmp_path / "params.json"
    rc, _ = _bench(tmp_path, pred, grid, "--tune", f"split:{ids}", "--params_out", str(params))
    assert rc == 0 and read_json(params)["charades"]["tune_ids"] == ["S0#0", "S1#1"]
    fixed = ["--tune", "none", "--params_file", str(params), "--params_key", "charades"]
    rc, _ = _bench(tmp_path, pred, grid, *fixed)
    assert rc == 2 and "were tuned on 2 of the 4 reported items" in capsys.readouterr().err
    rc, res = _bench(tmp_path, pred, grid, *fixed, "--tune_on_test")
    assert rc == 0 and res["protocol"]["tuned_on_test"] is True
    assert res["protocol"]["fusion"]["source"]["params_file_tuned_on_reported_items"] == 2
    recs = pred.read_text().splitlines()
    others = tmp_path / "others.jsonl"
    others.write_text("\n".join(recs[2:]) + "\n")
    rc, res = _bench(tmp_path, others, grid, *fixed)
    assert rc == 0 and res["protocol"]["tuned_on_test"] is False and res["metrics"]["R1@0.5"] == 100.0

    ev = ["--func", "charades", "--gold_file", str(tmp_path / "charades_sta_test.txt"),
          "--params_file", str(params), "--params_key", "charades"]
    assert evaluate.main([*ev, "--pred_file", str(pred)]) == 2
    assert "pass --tuned_on_test" in capsys.readouterr().err
    stamped = evaluate.run([*ev, "--pred_file", str(pred), "--tuned_on_test"])[0]["record"]
    assert stamped["tuned_on_test"] is True and stamped["tuned_on"] == "TEST (tuned on the reported data)"
    assert stamped["params_file_tuned_on"] == "train split" and stamped["n_scored_in_tune_ids"] == 2
    clean = evaluate.run([*ev, "--pred_file", str(others)])[0]["record"]
    assert clean["tuned_on_test"] is False


def test_fixed_flags_for_a_searched_key_are_refused_under_tuning(tmp_path, capsys):
    """Under tuning a flag for a key the grid searches would be replaced by the tuned value: refused;
    a grid without that key keeps the flag fixed, recorded."""
    pred, grid = _synthetic_charades(tmp_path)
    rc, _ = _bench(tmp_path, pred, grid, "--folds", "2", "--alpha", "1")
    assert rc == 2 and "--alpha: the tuning grid searches it" in capsys.readouterr().err
    partial = tmp_path / "grid_beta.json"
    partial.write_text(json.dumps({"beta": [0.0, 1.0]}))
    rc, res = _bench(tmp_path, pred, partial, "--folds", "2", "--alpha", "0", "--epsilon", "0")
    assert rc == 0
    fv = res["protocol"]["fusion"]["fixed_values"]
    assert fv["searched"] == ["beta"] and fv["fixed"] == {"alpha": "flag", "epsilon": "flag", "tau": "default"}
    for f in res["protocol"]["fusion"]["folds"]:
        assert f["best_params"]["alpha"] == 0.0 and f["best_params"]["beta"] == 1.0 and len(f["tune_ids"]) == 2
    assert res["protocol"]["fusion"]["tune_score_is"] == "the mean of the folds' tuning scores"


def test_ties_are_counted_and_an_inactive_penalty_is_recorded_as_epsilon_zero(tmp_path):
    """Every epsilon at tau = 1.5 (the clamped log-variance's maximum) gives the same fused score: the
    search evaluates it once, counts the tie, and records the chosen point with epsilon 0."""
    from test.postprocess import LOGVAR_MAX
    from test.tuning import grid_search

    from test.predictions import load_predictions

    pred, _ = _synthetic_charades(tmp_path)
    preds = load_predictions(pred)
    calls = []

    def objective(fused):
        calls.append(1)
        return float(np.mean([np.argmax(s) in (3, 4, 5) for s in fused.values()]))

    grid = {"alpha": [0.0], "beta": [1.0], "epsilon": [-1.0, 2.0, 0.0], "tau": [LOGVAR_MAX]}
    res = grid_search(preds, objective, grid=grid, tune_ids=list(preds)[:2], report_ids=list(preds)[2:])
    assert len(calls) == 1 and res["n_tied_best"] == 1
    assert res["best_params"]["epsilon"] == 0.0 and "penalty is off" in res["penalty_off"]
    grid = {"alpha": [0.0, 0.5], "beta": [1.0], "epsilon": [0.0], "tau": [0.0]}
    res = grid_search(preds, objective, grid=grid, tune_ids=list(preds)[:2], report_ids=list(preds)[2:])
    assert res["n_tied_best"] == 2 and res["best_params"]["alpha"] == 0.0 and "penalty_off" not in res


def test_fusion_errors_name_the_item_and_the_cause():
    from test.postprocess import frame_step
    from test.predictions import StreamPrediction

    p = StreamPrediction(id="v9", time=np.arange(3.0), informative=np.zeros(3), relevance=np.zeros(3),
                         uncertainty=np.array([0.0, 800.0, 0.0]))
    with pytest.raises(ValueError, match="item 'v9'.*overflows"):
        fuse_prediction(p, FusionParams(uncertainty_kind="variance", epsilon=1.0))
    # epsilon 0: no uncertainty term at all, whatever the log-variance
    assert fuse_prediction(p, FusionParams(uncertainty_kind="variance", epsilon=0.0, alpha=0, beta=1)).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="one frame without fps"):
        frame_step([4.0])
    assert frame_step([4.0], fps=2) == 0.5 and frame_step([0.0, 1.0, 2.0]) == 1.0


@pytest.mark.parametrize("dataset", ["charades", "qvh"])
def test_kfold_never_reports_a_query_with_weights_tuned_on_its_own_video(tmp_path, dataset):
    """Charades-STA / QVHighlights have several queries per video: the folds group them by video, so
    no reported fold's video is among its tuning items (ungrouped folds split 7 of these 8 videos)."""
    rng = np.random.default_rng(0)
    recs, gold, csv, vid_of = [], [], ["id,length"], {}
    for v in range(8):
        for q in range(2):
            vid = f"S{v}" if dataset == "charades" else f"yt{v}_0.0_20.0"
            k = 2 * v + q
            qid = f"{vid}#{k}" if dataset == "charades" else str(k)
            vid_of[qid] = vid
            if dataset == "charades":
                gold.append(f"{vid} 3.0 6.0##query {k}")
            else:
                gold.append(json.dumps({"qid": k, "vid": vid, "duration": 20.0, "relevant_clip_ids": [1, 2, 3],
                                        "saliency_scores": [[4, 3, 2]] * 3, "relevant_windows": [[2, 8]]}))
            recs.append({"id": qid, "fps": 1.0, "duration": 20.0, "frames": {
                "time": [float(t) for t in range(20)], "relevance": rng.random(20).tolist(),
                "informative": rng.random(20).tolist(), "uncertainty": [0.0] * 20}, "responses": []})
        csv.append(f"S{v},20.0")
    gold_file = tmp_path / ("charades_sta_test.txt" if dataset == "charades" else "qvh.jsonl")
    gold_file.write_text("\n".join(gold) + "\n")
    (tmp_path / "Charades_v1_test.csv").write_text("\n".join(csv) + "\n")
    pred = tmp_path / "pred.jsonl"
    pred.write_text("".join(json.dumps(r) + "\n" for r in recs))
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"alpha": [0.0, 1.0], "beta": [0.5, 1.0], "epsilon": [0.0], "tau": [0.0]}))
    out = tmp_path / "res.json"
    assert benchmark.main(["--dataset", dataset, "--pred", str(pred), "--gold", str(gold_file), "--out", str(out),
                           "--grid", str(grid), "--folds", "4"]) == 0
    folds = read_json(out)["protocol"]["fusion"]["folds"]
    assert sorted(i for f in folds for i in f["report_ids"]) == sorted(vid_of)
    for f in folds:
        assert not {vid_of[i] for i in f["report_ids"]} & {vid_of[i] for i in f["tune_ids"]}



def test_every_smoothed_grid_point_scores_what_the_reported_path_scores(tmp_path):
    """Quantised heads (many equal scores) and a smoothing grid: at every grid point the tuning objective
    equals the Mr.HiSum mAP50 of the same weights fused and smoothed as reported (apply_params). The
    tuner smoothed each head once and combined them: equal up to rounding, and rounding broke the ties
    (alpha 1.5, beta 0.5, epsilon 0, smooth_window 5: 50.08 tuned vs 50.31 reported)."""
    from data import benchmarks
    from test.predictions import StreamPrediction
    from test.tuning import apply_params, grid_search

    preds, gold_file, _, _ = _synthetic_case("hisum", tmp_path, np.random.default_rng(0))
    q = {i: StreamPrediction(i, p.time, np.round(p.informative * 4) / 4, np.round(p.relevance * 4) / 4,
                             np.round(p.uncertainty * 2) / 2, duration=p.duration, fps=p.fps) for i, p in preds.items()}
    bench = benchmarks.get("hisum")
    proto, opts = bench.resolve(None, {})
    objective = benchmark.make_objective(bench, proto, opts, q, bench.load_gold(gold_file, proto, opts))
    differ = []

    def both(fused, params):
        tuned = objective(fused)
        reported = objective(apply_params(q, {"best_params": params, "report_ids": list(fused)}))
        if tuned != reported:
            differ.append((params, tuned, reported))
        return tuned

    grid = {"alpha": [0.5, 1.5], "beta": [0.5, 1.0], "epsilon": [-5, -1, 0], "tau": [-4.0, 0.0], "smooth_window": [5, 9]}
    grid_search(q, both, grid=grid, allow_tune_on_test=True, uncertainty_kind="logvar")
    assert differ == []


def test_a_split_that_shares_videos_with_the_reported_queries_is_said_and_recorded(tmp_path, caplog):
    """--tune split: with queries of one video on both sides: those reported queries were tuned on other
    queries of their own video; the record counts them (it used to say nothing)."""
    pred, grid = _synthetic_charades(tmp_path, n=4)
    recs = [json.loads(line) for line in pred.read_text().splitlines()]
    extra = [{**r, "id": r["id"].split("#")[0] + "#" + str(4 + k)} for k, r in enumerate(recs)]
    lines = (tmp_path / "charades_sta_test.txt").read_text().splitlines()
    (tmp_path / "charades_sta_test.txt").write_text("\n".join(lines + lines) + "\n")  # each video: queries k and 4 + k
    pred.write_text("".join(json.dumps(r) + "\n" for r in recs + extra))
    ids = tmp_path / "tune.json"
    ids.write_text(json.dumps(["S0#0", "S1#1", "S2#2"]))
    rc, res = _bench(tmp_path, pred, grid, "--tune", f"split:{ids}")
    assert rc == 0
    assert res["protocol"]["fusion"]["report_ids_sharing_a_video_with_tune_ids"] == {
        "n": 3, "examples": ["S0#4", "S1#5", "S2#6"]}
    assert "share their video with tuning queries" in caplog.text
