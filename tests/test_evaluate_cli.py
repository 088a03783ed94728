"""``python -m test.evaluate``: registry, option parsing, fusion precedence, summary on stdout, output files."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data import benchmarks
from test import evaluate
from test.postprocess import fuse, read_fusion_file
from utils.io import JsonlWriter
from utils.paths import REPO_ROOT


def write_jsonl(path, rows):
    with JsonlWriter(path, "w") as w:
        w.write_many(rows)
    return str(path)


def tvsum_toy(tmp_path):
    gold = write_jsonl(tmp_path / "val.jsonl", [{"vid": "v1", "domain": "BK", "label": [[1], [5], [3], [2]]}])
    n = 8  # 1 fps stream over 4 clips; relevance ranks clip 1 first, informative ranks clip 3 first
    pred = write_jsonl(tmp_path / "pred.jsonl", [{
        "id": "v1", "frames": {"time": list(range(n)), "relevance": [0, 0, 1, 1, 0.5, 0.5, 0, 0],
                               "informative": [0, 0, 0, 0, 0, 0, 1, 1], "uncertainty": [0.0] * n}}])
    return pred, gold


def test_parse_opt_json_then_string():
    opts = evaluate.parse_opt(["k=5", "match_number=false", "split_file=/a/b.json", "x=null", "l=[1, 2]",
                               "name=a=b"])
    assert opts == {"k": 5, "match_number": False, "split_file": "/a/b.json", "x": None, "l": [1, 2],
                    "name": "a=b"}
    with pytest.raises(ValueError, match="key=value"):
        evaluate.parse_opt(["novalue"])
    with pytest.raises(ValueError, match="given twice"):
        evaluate.parse_opt(["k=1", "k=2"])


def test_params_file_reference_layout(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps({
        "tvsum": {"alpha": 0.0, "beta": -1.0, "epsilon": -5.0, "uncertainty_threshold": 0.04},
        "qvh": {"alpha": 2.0, "beta": 1.5556, "epsilon": None, "uncertainty_threshold": 0.1011,
                "uncertainty_penalty": 0.7143},
    }))
    assert read_fusion_file(str(path), "tvsum") == ({"alpha": 0.0, "beta": -1.0, "epsilon": -5.0, "tau": 0.04,
                                                     "uncertainty_kind": "variance"}, {})
    assert read_fusion_file(str(path), "qvh")[0] == {"alpha": 2.0, "beta": 1.5556, "tau": 0.1011, "epsilon": 0.7143,
                                                     "uncertainty_kind": "variance"}
    with pytest.raises(ValueError, match="no key 'hisum'"):
        read_fusion_file(str(path), "hisum")


def test_reference_params_file_fuses_what_the_reference_fused(tmp_path):
    """The reference's grid_search_params.json tuned tau on exp(raw log-variance), what its inference
    reports. Read with the project's default (the clamped log-variance) the same tau = 0.04 penalised
    every frame whose log-variance is above 0.04 instead of above log(0.04) = -3.2: another fused score."""
    path = tmp_path / "grid_search_params.json"
    path.write_text(json.dumps({"tvsum": {"alpha": 0.7, "beta": 1.0, "epsilon": 2.0, "uncertainty_threshold": 0.04}}))
    info, rel = np.array([0.2, 0.5, 0.9]), np.array([0.1, 0.4, 0.3])
    logvar = np.array([-3.0, -1.0, 0.5])
    var = np.exp(logvar)  # the reference: u = exp(raw log-variance), penalty eps * (u - tau) where u >= tau
    want = 0.7 * info + 1.0 * rel - 2.0 * np.where(var >= 0.04, var - 0.04, 0.0)
    args = evaluate.build_parser().parse_args(["--func", "tvsum", "--pred_file", "p", "--gold_file", "g",
                                               "--params_file", str(path), "--params_key", "tvsum"])
    fusion, source = evaluate.build_fusion(args)
    assert source["uncertainty_kind"] == "params_file[tvsum]"
    np.testing.assert_allclose(fuse(info, rel, logvar, fusion), want, rtol=0, atol=1e-12)
    # the flag still decides when given
    args = evaluate.build_parser().parse_args(["--func", "tvsum", "--pred_file", "p", "--gold_file", "g",
                                               "--params_file", str(path), "--params_key", "tvsum",
                                               "--uncertainty_kind", "logvar"])
    assert evaluate.build_fusion(args)[0].uncertainty_kind == "logvar"
    # the project's own key names carry no such default
    own = tmp_path / "own.json"
    own.write_text(json.dumps({"alpha": 0.7, "beta": 1.0, "epsilon": 2.0, "tau": 0.04}))
    assert "uncertainty_kind" not in read_fusion_file(own)[0]


def test_one_fusion_file_reader_for_the_scorer_the_benchmark_driver_and_the_live_engine(tmp_path):
    """The same file gives the same weights to test.evaluate, test.benchmark and test.live_infer (until
    session 10 the engine had a reader of its own that ignored the reference's uncertainty_threshold)."""
    from test.benchmark import fixed_fusion
    from test.engine_args import fusion_params

    ref = tmp_path / "grid.json"
    ref.write_text(json.dumps({"tvsum": {"alpha": 0.0, "beta": -1.0, "epsilon": -5.0, "uncertainty_threshold": 0.04}}))
    args = evaluate.build_parser().parse_args(["--func", "tvsum", "--pred_file", "p", "--gold_file", "g",
                                               "--params_file", str(ref), "--params_key", "tvsum"])
    want = {"alpha": 0.0, "beta": -1.0, "epsilon": -5.0, "tau": 0.04, "uncertainty_kind": "variance"}
    assert evaluate.build_fusion(args)[0].to_dict() == want
    engine = argparse.Namespace(params_file=str(ref), params_key="tvsum", alpha=None, beta=None, epsilon=None,
                                tau=None, uncertainty_kind=None)
    assert fusion_params(engine).to_dict() == want
    bench = argparse.Namespace(params_file=str(ref), params_key="tvsum", alpha=None, beta=None, epsilon=None, tau=None,
                               uncertainty_kind=None, tune_on_test=False)
    assert fixed_fusion(bench, ["v1"])[0].to_dict() == want
    # a tuning record: its tuning travels with it; tuned on the reported data, the driver refuses it
    rec = tmp_path / "rec.json"
    rec.write_text(json.dumps({"params": {"alpha": 0.5, "beta": 1.0, "epsilon": 0.0, "tau": 0.2},
                               "protocol": {"tuned_on": "test"}, "tuned_on_test": True}))
    assert read_fusion_file(rec) == ({"alpha": 0.5, "beta": 1.0, "epsilon": 0.0, "tau": 0.2},
                                     {"tuned_on": "test", "tuned_on_test": True, "tune_ids": []})
    with pytest.raises(ValueError, match="tuned on the reported data"):
        fixed_fusion(argparse.Namespace(**{**vars(bench), "params_file": str(rec), "params_key": None}), ["v1"])
    # what no reader accepts
    for bad, match in (({"params": None, "protocol": {}}, "per-fold"), ({"alpha": "high"}, "finite number"),
                       ({"tau": float("nan")}, "finite number"), ({"uncertainty_kind": "std"}, "logvar or variance"),
                       ([0.7, 1.0], "JSON object")):
        f = tmp_path / "bad.json"
        f.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=match):
            read_fusion_file(f)
        with pytest.raises(ValueError, match=match):
            fusion_params(argparse.Namespace(**{**vars(engine), "params_file": str(f), "params_key": None}))


def test_fusion_precedence_default_file_flag(tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"tvsum": {"alpha": 1.0, "beta": 0.0, "epsilon": 0.0, "tau": 0.1}}))
    pred, gold = tvsum_toy(tmp_path)
    base = ["--func", "tvsum", "--pred_file", pred, "--gold_file", gold]
    # file: alpha 1, beta 0 -> informative ranks clip 3 first, then the tied clips 0, 1, 2 in order:
    # labels (> median 2.5) [0, 0, 1, 1] -> 1/2 * (1/3 + 0)/2 + 1/2 * (1/2 + 1/3)/2
    by_file = evaluate.run(base + ["--params_file", str(grid), "--params_key", "tvsum"])[0]
    by_file = {**by_file["metrics"], "protocol": by_file["record"]}
    assert by_file["top5_mAP"] == pytest.approx(100 * (1 / 12 + 5 / 24))
    assert by_file["protocol"]["fusion"] == {"alpha": 1.0, "beta": 0.0, "epsilon": 0.0, "tau": 0.1,
                                             "uncertainty_kind": "logvar"}
    assert by_file["protocol"]["fusion_source"]["alpha"] == "params_file[tvsum]"
    # flags beat the file: alpha 0, beta 1 -> relevance ranks clip 1 (label 5) first -> AP 1
    by_flag = evaluate.run(base + ["--params_file", str(grid), "--params_key", "tvsum", "--alpha", "0",
                                   "--beta", "1"])[0]
    by_flag = {**by_flag["metrics"], "protocol": by_flag["record"]}
    assert by_flag["top5_mAP"] == 100.0
    src = by_flag["protocol"]["fusion_source"]
    assert src["alpha"] == src["beta"] == "flag" and src["tau"] == "params_file[tvsum]"
    assert src["uncertainty_kind"] == "default"
    assert by_flag["protocol"]["func"] == "tvsum"


def test_registry_aliases_and_unknown_names():
    assert benchmarks.get("tvsum_degraded") is benchmarks.get("tvsum")
    assert benchmarks.get("grounding") is benchmarks.get("charades")
    assert benchmarks.get("dense_captioning").__name__ == "data.benchmarks.youcook2"
    with pytest.raises(ValueError, match="unknown benchmark"):
        benchmarks.get("nope")
    for name in benchmarks.NAMES:  # every module offers the same functions
        mod = benchmarks.get(name)
        for fn in ("resolve", "tunable", "headline", "load_gold", "record_id", "from_record", "from_stream", "score",
                   "convert"):
            assert callable(getattr(mod, fn)), (name, fn)
        assert mod.DEFAULT_PROTOCOL in mod.PROTOCOLS


def test_opt_reaches_the_scorer(tmp_path):
    pred, gold = tvsum_toy(tmp_path)
    gold2 = write_jsonl(tmp_path / "val2.jsonl", [json.loads(Path(gold).read_text()),
                                                  {"vid": "v2", "domain": "VT", "label": [[1], [2]]}])
    base = ["--func", "tvsum", "--pred_file", pred, "--gold_file", gold2, "--beta", "1", "--alpha", "0"]
    assert evaluate.main(base) == 2  # v2 has no prediction: a clear error, exit status 2
    m = evaluate.run(base + ["--opt", "match_number=false"])[0]
    assert m["metrics"]["n_videos"] == 1 and m["record"]["options_given"] == {"match_number": False}
    assert evaluate.main(base + ["--opt", "match_numbr=false"]) == 2  # a misspelt option is refused


def test_command_line_prints_and_writes_atomically(shared_data, tmp_path):
    d = shared_data / "qvhighlights"
    out = tmp_path / "nested" / "metrics.json"
    proc = subprocess.run(
        [sys.executable, "-m", "test.evaluate", "--func", "qvh", "--pred_file", str(d / "sample_val_preds.jsonl"),
         "--gold_file", str(d / "highlight_val_release.jsonl"), "--output_file", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)  # the summary: headline and metrics, no per-item rows
    assert set(printed) == {"pred_file", "headline", "metrics", "n_items"} and printed["n_items"] == 1550
    written = json.loads(out.read_text())  # everything: per-item rows and the protocol record
    assert written["metrics"] == printed["metrics"] and len(written["per_item"]) == 1550
    golden = json.loads((d / "sample_val_preds_metrics_raw.json").read_text())
    assert printed["metrics"]["brief"] == golden["brief"]
    assert printed["headline"] == {"name": "HL-min-VeryGood-mAP", "value": golden["brief"]["HL-min-VeryGood-mAP"]}
    assert written["record"]["func"] == "qvh" and written["record"]["fusion"] is None
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    bad = subprocess.run([sys.executable, "-m", "test.evaluate", "--func", "qvh", "--pred_file", str(out),
                          "--gold_file", str(d / "highlight_val_release.jsonl")],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("evaluate: error:")


def test_the_summary_shows_how_predictions_were_fitted_to_the_gold(tmp_path, capsys):
    """A stream that stops early has its last bins filled (a documented rule that changes the number):
    the printed summary and a note on stderr say so, not only --output_file."""
    pred, gold = tvsum_toy(tmp_path)
    assert evaluate.main(["--func", "tvsum", "--pred_file", pred, "--gold_file", gold]) == 0
    out, err = capsys.readouterr()
    assert "adjusted" not in json.loads(out) and "fitted" not in err
    rec = json.loads(Path(pred).read_text())
    rec["frames"] = {k: v[:4] for k, v in rec["frames"].items()}  # 4 of the video's 8 s
    short = write_jsonl(tmp_path / "short.jsonl", [rec])
    assert evaluate.main(["--func", "tvsum", "--pred_file", short, "--gold_file", gold]) == 0
    out, err = capsys.readouterr()
    adjusted = json.loads(out)["adjusted"]
    assert list(adjusted) == ["clip_pooling_counts"] and adjusted["clip_pooling_counts"]["edge_filled_bins"] > 0
    assert f"note: {short}: predictions were fitted to the gold's time bins" in err


def test_the_output_file_records_the_inference_protocol_of_the_run_record(tmp_path):
    """--output_file records the inference settings of PRED.run.json (test.benchmark's protocol_record,
    the same function), or that there is none."""
    from test import benchmark
    from test.run_benchmark import run_record_path

    pred, gold = tvsum_toy(tmp_path)
    out = tmp_path / "res.json"
    assert evaluate.main(["--func", "tvsum", "--pred_file", pred, "--gold_file", gold, "--output_file", str(out)]) == 0
    inf = json.loads(out.read_text())["record"]["inference"]
    assert inf["inference_record"].startswith("missing") and inf["fps"] is None
    engine = {"fps": 1.0, "tokens_per_frame": 49, "cache": {"policy": "sink", "window": 2048, "sink_tokens": 32},
              "decision": {"threshold": None}, "model": {"checkpoint": "ckpt", "checkpoint_sha256": "c" * 64}}
    run_record_path(pred).write_text(json.dumps({"settings": {"degrade": None}, "engine": engine, "runs": []}))
    out.unlink()
    assert evaluate.main(["--func", "tvsum", "--pred_file", pred, "--gold_file", gold, "--output_file", str(out)]) == 0
    inf = json.loads(out.read_text())["record"]["inference"]
    assert inf["inference_record"] == "found" and inf["fps"] == 1.0 and inf["tokens_per_frame"] == 49
    assert inf["cache_policy"] == engine["cache"] and inf["model"]["checkpoint_sha256"] == "c" * 64
    assert benchmark.inference_protocol is evaluate.inference_protocol  # one function for both records


def test_params_tuned_on_the_scored_items_is_recorded_as_tuned_on_test(tmp_path):
    """A split-tuned params file whose tune_ids hold the scored item: the record said tuned_on
    "train split" beside tuned_on_test true (test.benchmark says TEST for the same file)."""
    from test.tuning import TUNED_ON_TEST

    pred, gold = tvsum_toy(tmp_path)
    rec = tmp_path / "params.json"
    rec.write_text(json.dumps({"tvsum": {"params": {"alpha": 0.5, "beta": 1.0, "epsilon": 0.0, "tau": 0.2},
                                         "protocol": {"tuned_on": "train split"}, "tuned_on_test": False,
                                         "tune_ids": ["v1"]}}))
    base = ["--func", "tvsum", "--pred_file", pred, "--gold_file", gold, "--params_file", str(rec), "--params_key", "tvsum"]
    with pytest.raises(ValueError, match="tuned on 1 of the 1"):
        evaluate.run(base)
    r = evaluate.run([*base, "--tuned_on_test"])[0]["record"]
    assert r["tuned_on_test"] is True and r["tuned_on"] == TUNED_ON_TEST
    assert r["params_file_tuned_on"] == "train split" and r["n_scored_in_tune_ids"] == 1
