"""The embedded default model: the shipped checkpoint + tokenizer, its recorded synthetic-test
metrics, and the whole recipe end to end on a tiny synthetic set.

* the checkpoint (``checkpoints/aha-tiny-synth``) is a full safetensors checkpoint under 20 MB that
  loads with the shipped tokenizer (``configs/tokenizers/aha-tiny-synth``), which rebuilds byte for byte;
* streamed again over the synthetic TEST split (generated here, seed 0) with the settings of
  ``test/synthetic_eval.py`` and fused with the val-tuned weights recorded in
  ``results/synthetic_results.json``, it reproduces the recorded per-video TVSum (aha) top-5 AP,
  per-query Charades IoU and the query-binding relevance AUCs (matching event vs distractor);
  streamed with text, its dense-captioning F1, the words of its captions and its answers to a query
  (behind the recorded relevance gate);
* end to end (a few seconds): generate a tiny set, train a few steps with ``train.py`` (full
  training), stream with the engine, post-process and score.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CKPT = REPO / "checkpoints" / "aha-tiny-synth"
TOK = REPO / "configs" / "tokenizers" / "aha-tiny-synth"
RESULTS = REPO / "results" / "synthetic_results.json"
AP_TOL = 1.0         # AP points per video (same machine: identical; another BLAS may round differently)
IOU_TOL = 0.05
AUC_TOL = 0.01


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shipped_checkpoint_is_a_small_full_checkpoint_that_loads_with_the_shipped_tokenizer():
    from models.inference import load_for_inference

    weights = CKPT / "model.safetensors"
    assert weights.is_file() and weights.stat().st_size < 20 * 2**20
    meta = json.loads((CKPT / "aha_model.json").read_text())
    assert meta["kind"] == "full" and meta["weights"] is None
    model, tok = load_for_inference(checkpoint=str(CKPT), tokenizer=str(TOK))
    cfg = model.config
    assert cfg.tokens_per_frame == 1 and cfg.frame_size == 112 and cfg.system_prompt == ""  # the preset's
    assert tok.convert_tokens_to_ids("<image>") == cfg.image_token_index == 3
    assert len(tok) == cfg.text_config.vocab_size == 512
    for special, i in (("<|endoftext|>", 0), ("<|im_start|>", 1), ("<|im_end|>", 2)):
        assert tok.convert_tokens_to_ids(special) == i
    # the tokenizer saved beside the checkpoint is the shipped one
    assert (CKPT / "tokenizer.json").read_bytes() == (TOK / "tokenizer.json").read_bytes()
    # every synthetic text round-trips
    text = "Let me know as soon as you see: a magenta triangle slides"
    assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text


def test_tokenizer_rebuilds_byte_for_byte(tmp_path):
    from tests.script_loader import load_script

    load_script("scripts/build_tiny_tokenizer.py").write(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / name).read_bytes() == (TOK / name).read_bytes(), name


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    """The synthetic TEST split of seed 0 (the same videos whatever the train/val sizes)."""
    from data.synthetic import generate_dataset

    out = tmp_path_factory.mktemp("syn_test")
    generate_dataset(out, seed=0, n_train=0, n_val=0, n_test=20, workers=2)
    return out


def _stream(items: Path, root: Path, out: Path, settings: dict, *flags: str) -> Path:
    """The shipped checkpoint streamed over an items file with the recorded settings: scores only,
    unless ``flags`` give a response rule."""
    from test.run_benchmark import main as run_benchmark

    argv = ["--items", str(items), "--video_root", str(root / "videos"), "--output", str(out), "--quiet",
            "--model_config", "aha-tiny-synth", "--checkpoint", str(CKPT), "--tokenizer", str(TOK),
            "--fps", str(settings["fps"]), "--cache_policy", settings["cache_policy"], "--window", str(settings["window"]),
            "--fail_fast", *(flags or ("--no_generate",))]
    assert run_benchmark(argv) == 0
    return out


def test_shipped_checkpoint_reproduces_its_recorded_test_metrics(test_split, tmp_path):
    from test.evaluate import evaluate_files
    from test.postprocess import FusionParams

    recorded = json.loads(RESULTS.read_text())
    proto, trained = recorded["protocol"], recorded["systems"]["trained"]
    assert proto["tuned_on"] == "val" and not proto["tuned_on_test"]
    from data.synthetic.metrics import binding_aucs
    from utils.io import iter_jsonl

    # TVSum (aha protocol) on every test video (each asked its own query)
    pred = _stream(test_split / "test" / "items" / "tvsum.jsonl", test_split, tmp_path / "tvsum_pred.jsonl", proto)
    rec = trained["tvsum_aha"]
    params = FusionParams(**rec["fusion"]["params"])
    got = evaluate_files("tvsum", str(pred), str(test_split / "test" / "ydata-tvsum50-anno.tsv"), "aha", params)["per_item"]
    assert set(got) == set(rec["per_video_top5_AP"])
    for vid, ap in rec["per_video_top5_AP"].items():
        assert 100 * got[vid]["top5_mAP"] == pytest.approx(ap, abs=AP_TOL), vid
    # query binding: relevance on matching events vs distractors, by what the distractor changes
    binding = binding_aucs(iter_jsonl(pred), json.loads((test_split / "test" / "ground_truth.json").read_text()))
    for key in ("match_vs_distractor", "match_vs_colour", "match_vs_kind", "match_vs_motion", "event_vs_calm"):
        assert binding[key] == pytest.approx(trained["binding"][key], abs=AUC_TOL), key
    # Charades (standard causal protocol): every query
    pred = _stream(test_split / "test" / "items" / "charades.jsonl", test_split, tmp_path / "charades_pred.jsonl", proto)
    rec = trained["charades"]
    res = evaluate_files("charades", str(pred), str(test_split / "test" / "charades_sta_test.txt"), "standard",
                         FusionParams(**rec["fusion"]["params"]))
    ious = {k: v["iou"] for k, v in res["per_item"].items()}
    assert set(ious) == set(rec["per_item_iou"])
    for qid, iou in ious.items():
        assert iou == pytest.approx(rec["per_item_iou"][qid], abs=IOU_TOL), qid
    assert 100 * np.mean(list(ious.values())) == pytest.approx(rec["mIoU"], abs=100 * IOU_TOL)


def _stream_with_text(items: Path, root: Path, out: Path, settings: dict, threshold: float, gate: dict | None = None) -> Path:
    flags = ["--score_heads", "informative", "--threshold", str(threshold), "--max_new_tokens", "16"]
    if gate is not None:
        flags += ["--relevance_gate", str(gate["value"]), "--relevance_gate_frames", str(gate["frames"])]
    return _stream(items, root, out, settings, *flags)


def test_shipped_checkpoint_reproduces_its_recorded_responses(test_split, tmp_path):
    """The targets on what it says: dense-captioning F1 and the words of its captions (the
    captioning items, val-tuned threshold), and its answers to a query (the TVSum items, behind the
    val-tuned relevance gate), streamed again with text."""
    from data.synthetic.metrics import query_responses, response_accuracy
    from test.evaluate import evaluate_files
    from utils.io import iter_jsonl

    recorded = json.loads(RESULTS.read_text())
    proto, trained = recorded["protocol"], recorded["systems"]["trained"]
    gt = json.loads((test_split / "test" / "ground_truth.json").read_text())
    th = trained["youcook2"]["threshold"]["value"]
    pred = _stream_with_text(test_split / "test" / "items" / "youcook2.jsonl", test_split, tmp_path / "yc.jsonl", proto, th)
    f1 = evaluate_files("youcook2", str(pred), str(test_split / "test" / "yc2_test.json"), options={"captions": False})
    assert f1["metrics"]["F1_Score"] == pytest.approx(trained["youcook2"]["F1_Score"], abs=1.0)
    said = response_accuracy(iter_jsonl(pred), gt)
    assert abs(said["n_responses"] - trained["responses"]["n_responses"]) <= 1  # (another BLAS may round a head)
    for attr in ("colour", "kind", "motion", "all"):
        assert said["correct"][attr] == pytest.approx(trained["responses"]["correct"][attr], abs=0.03), attr
    q = trained["query_responses"]
    assert q["gate"]["threshold"] == th
    pred = _stream_with_text(test_split / "test" / "items" / "tvsum.jsonl", test_split, tmp_path / "q.jsonl", proto, th, q["gate"])
    got = query_responses(iter_jsonl(pred), gt)
    for key in ("n_responses", "on_match", "on_distractor", "matching_events_answered"):
        assert abs(got[key] - q["test"][key]) <= 1, key
    assert got["names_query"] == pytest.approx(q["test"]["names_query"], abs=0.05)


def test_recorded_results_show_the_trained_model_beating_every_baseline_on_query_conditioned_metrics():
    """The issue's bar, on the recorded (val-tuned) TEST results: TVSum-style top-5 mAP (both
    protocols) and Charades-style R1@0.5 / mIoU above random, motion energy and the untrained
    model (dense-captioning F1, not query-conditioned, is one of #18's targets below)."""
    systems = json.loads(RESULTS.read_text())["systems"]
    metric = {"tvsum_umt": "top5_mAP", "tvsum_aha": "top5_mAP", "charades": ("R1@0.5", "mIoU")}
    for bench, names in metric.items():
        for name in (names,) if isinstance(names, str) else names:
            ours = systems["trained"][bench][name]
            for base in ("random", "motion", "untrained"):
                assert ours > systems[base][bench][name] + 1.0, (bench, name, base)
    # Charades: clearly, not by one query of 11
    assert systems["trained"]["charades"]["R1@0.5"] >= 2 * systems["motion"]["charades"]["R1@0.5"]


# Issue #18's targets on the synthetic TEST split, as recorded in results/synthetic_results.json.
# MET: the targets the shipped checkpoint reaches (README, instructions/tiny_model.md). The others
# are asserted NOT met, so the docs' "not met" stays true: a re-shipped model that meets one fails
# here until the docs (and MET) say so.
TARGETS = {
    "relevance AUC match vs colour distractor >= 0.9": lambda s: s["trained"]["binding"]["match_vs_colour"] >= 0.9,
    "relevance AUC match vs kind distractor >= 0.9": lambda s: s["trained"]["binding"]["match_vs_kind"] >= 0.9,
    "relevance AUC match vs motion distractor >= 0.9": lambda s: s["trained"]["binding"]["match_vs_motion"] >= 0.9,
    "Charades R1@0.5 >= 70": lambda s: s["trained"]["charades"]["R1@0.5"] >= 70,
    "DVC F1 above every baseline": lambda s: all(s["trained"]["youcook2"]["F1_Score"] > s[b]["youcook2"]["F1_Score"]
                                                 for b in ("random", "motion", "untrained")),
    ">= 70% of responses name colour, kind and motion": lambda s: s["trained"]["responses"]["correct"]["all"] >= 0.7,
}
MET = set(TARGETS)  # all six since session 13 (v9 streamed with the 12-frame window it was trained on)


def test_recorded_results_meet_exactly_the_targets_the_docs_claim():
    systems = json.loads(RESULTS.read_text())["systems"]
    got = {name: bool(check(systems)) for name, check in TARGETS.items()}
    assert {n for n, ok in got.items() if ok} == MET, got


def test_recipe_end_to_end_on_a_tiny_synthetic_set(tmp_path):
    """generate -> metadata -> train.py (full training, a few steps) -> engine -> fusion -> scorers."""
    import train
    from data.metadata import build_metadata
    from data.synthetic import SynthConfig, generate_dataset
    from test.benchmark import main as bench
    from test.run_benchmark import main as run_benchmark

    data = tmp_path / "syn"
    generate_dataset(data, seed=3, n_train=2, n_val=0, n_test=2, cfg=SynthConfig(duration=(12, 12)), workers=1)
    build_metadata(data / "videos", data / "videos_metadata.json", workers=0, progress=False)
    common = {"video_root": "videos", "metadata": "videos_metadata.json", "fps": 1, "max_frames": 6}
    (data / "mix.json").write_text(json.dumps({"datasets": [
        {"name": "grounding", "type": "grounding", "anno_file": "train/grounding.json", **common},
        {"name": "dvc", "type": "dvc", "anno_file": "train/shot2story_dvc.json", **common}]}))
    out = tmp_path / "run"
    trainer = train.main(["--preset", "aha-tiny-synth", "--tokenizer", str(TOK), "--lora_r", "0", "--train_vision", "true",
                          "--dataset_config", str(data / "mix.json"), "--data_root", str(data), "--output_dir", str(out),
                          "--max_steps", "3", "--per_device_train_batch_size", "2", "--learning_rate", "1e-3",
                          "--seed", "0", "--report_to", "none", "--use_cpu", "true", "--save_strategy", "no",
                          "--logging_steps", "1", "--dataloader_num_workers", "0"])
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 3 and {"relevance_loss", "lm_loss", "informative_loss"} <= {k for h in logs for k in h}
    assert json.loads((out / "aha_model.json").read_text())["kind"] == "full"
    # stream the test split's items with the trained checkpoint, then tune-free scoring
    items = data / "test" / "items"
    for name, extra in (("tvsum", ["--no_generate"]), ("youcook2", ["--score_heads", "informative", "--threshold", "0.0",
                                                                   "--max_new_tokens", "4", "--min_interval", "3"])):
        rc = run_benchmark(["--items", str(items / f"{name}.jsonl"), "--video_root", str(data / "videos"),
                            "--output", str(tmp_path / f"{name}.jsonl"), "--quiet", "--model_config", "aha-tiny-synth",
                            "--checkpoint", str(out), "--fps", "1", "--cache_policy", "dynamic_sink", "--window", "600",
                            "--fail_fast", *extra])
        assert rc == 0
    preds = [json.loads(line) for line in (tmp_path / "tvsum.jsonl").read_text().splitlines()]
    assert len(preds) == 2 and all(len(p["frames"]["time"]) == 12 for p in preds)
    assert all(0 <= r <= 1 for p in preds for r in p["frames"]["relevance"])
    assert bench(["--dataset", "tvsum", "--protocol", "aha", "--pred", str(tmp_path / "tvsum.jsonl"),
                  "--gold", str(data / "test" / "ydata-tvsum50-anno.tsv"), "--out", str(tmp_path / "tvsum_res.json"),
                  "--tune", "none"]) == 0
    res = json.loads((tmp_path / "tvsum_res.json").read_text())
    assert 0 <= res["metrics"]["top5_mAP"] <= 100 and res["protocol"]["coverage"]["n_scored"] == 2
    # threshold 0 with a 3-s minimum interval: a response at the first frame, then every 3 s
    yc = [json.loads(line) for line in (tmp_path / "youcook2.jsonl").read_text().splitlines()]
    assert all([r["time"] for r in p["responses"]] == [0.0, 3.0, 6.0, 9.0] for p in yc)
    assert bench(["--dataset", "youcook2", "--pred", str(tmp_path / "youcook2.jsonl"), "--gold",
                  str(data / "test" / "yc2_test.json"), "--out", str(tmp_path / "yc_res.json"),
                  "--opt", "captions=false"]) == 0
    assert 0 <= json.loads((tmp_path / "yc_res.json").read_text())["metrics"]["F1_Score"] <= 100
