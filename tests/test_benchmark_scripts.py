"""Every benchmark script of scripts/inference/ end to end on one tiny synthetic set.

One synthetic set (data/synthetic.py: 2 test videos and 1 validation video of 12 s, 4 fps,
64x48) gives every benchmark's raw files; each script then runs its four steps as a user would
(convert -> test.run_benchmark -> test.benchmark -> plots) with the aha-tiny preset (random heads:
mechanics, not quality) at 1 fps with a 300-token sink window (smaller than a video's 12 x 49 frame
tokens, so the cache evicts). MAGQA is judged by a small OpenAI-compatible server on 127.0.0.1.

Each test checks what the script must leave behind: one prediction per item, the results JSON
(the scorer's metrics, the headline, the protocol record: tuned on held-out items or nothing to
tune, never on the test items by default; the run's engine settings), and one plot per requested
item.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data import synthetic as syn
from utils.io import read_json, read_jsonl

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts" / "inference"
CFG = syn.SynthConfig(fps=4, width=64, height=48, duration=(12, 12), n_annotators=5)
N_TEST, N_VAL = 2, 1
WINDOW = 300
JUDGE_KEY = "sk-local-test-judge"
JUDGE_MODEL = "tiny-judge"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_scripts") / "synthetic"
    syn.generate_dataset(out, seed=0, n_train=0, n_val=N_VAL, n_test=N_TEST, cfg=CFG, workers=1)
    return out


# settings the scripts read (scripts/inference/*.sh): a caller's values must not leak into the runs
SCRIPT_VARS = (
    "OUT_DIR", "MODEL_CONFIG", "WEIGHTS", "CHECKPOINT", "TOKENIZER", "DEVICE", "DTYPE", "ATTN", "PROMPT_ORDER",
    "CACHE_POLICY", "WINDOW", "SINK_TOKENS", "MAX_FRAMES", "TUNE", "FOLDS", "GRID", "UNCERTAINTY_KIND", "MISSING",
    "SEED", "PLOTS", "CONVERT_ARGS", "INFER_ARGS", "BENCH_ARGS", "PYTHON", "FPS", "GENERATE", "THRESHOLD",
    "SUM_THRESHOLD", "SCORE_HEADS", "MAX_NEW_TOKENS", "PROTOCOL", "SPLIT", "ITEMS", "GOLD", "LENGTHS", "INFO",
    "ANNO_TSV", "PROMPT", "TAG", "BENCH", "DEGRADE", "DEGRADE_SEED", "META", "SPLIT_FILE", "HISUM_H5", "TITLES",
    "MISSING_TITLE", "TUNE_SPLIT", "MAGQA_JSON", "JUDGE", "CAPTIONS", "AHA_JUDGE_BASE_URL", "AHA_JUDGE_MODEL",
    "AHA_JUDGE_API_KEY", "VIDEO_ROOT", "ANNO_DIR", "COVERAGE_CHECK", "MR_WINDOWS", "FEATURES", "STREAMS",
    "NPROC_PER_NODE", "TORCHRUN_ARGS",
)


@pytest.fixture(scope="module")
def base_env(synth, shared_data):
    clean = {k: v for k, v in os.environ.items() if k not in SCRIPT_VARS}
    return {**clean, "PYTHON": sys.executable, "VIDEO_ROOT": str(synth / "videos"),
            "ANNO_DIR": str(synth / "test"), "MODEL_CONFIG": "aha-tiny",
            "TOKENIZER": str(shared_data / "tokenizers" / "qwen2"), "DEVICE": "cpu", "FPS": "1",
            "WINDOW": str(WINDOW), "FOLDS": "2", "PLOTS": "1",
            # the synthetic generator's items use the project's wording (the library default); the
            # converter's command line defaults to the reference's
            "CONVERT_ARGS": "--template_set project",
            # one torch thread: on a shared 2-core machine two threads mostly wait for each other
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_script(name: str, env: dict, out_dir: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    r = subprocess.run(["bash", str(SCRIPTS / name), *args, "--quiet"],
                       env={**env, "OUT_DIR": str(out_dir), **extra_env}, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, f"{name} failed ({r.returncode}):\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
    return r


def item_ids(path: Path) -> list[str]:
    return [str(r["id"]) for r in read_jsonl(path)]


def check_outputs(results_path: Path, pred_path: Path, items_path: Path, *, dataset: str, split: str,
                  headline: str, tuned: bool, generated: Path) -> dict:
    """What every script must leave: predictions for every item, results with metrics and protocol, a plot.

    ``generated``: the generator's items for the same files (made by the converter's own functions
    with the same seed), which the script's conversion must reproduce."""
    assert read_jsonl(items_path) == read_jsonl(generated)
    ids = item_ids(items_path)
    assert ids, f"{items_path} is empty"
    preds = read_jsonl(pred_path)
    assert sorted(str(p["id"]) for p in preds) == sorted(ids)
    assert all(p["frames"]["time"] == [float(t) for t in range(12)] for p in preds)  # 12 s at 1 fps, whole video
    assert not Path(str(pred_path).replace(".jsonl", ".errors.jsonl")).exists()

    res = read_json(results_path)
    assert res["metrics"] and res["headline"]["name"] == headline
    assert isinstance(res["headline"]["value"], float)
    p = res["protocol"]
    assert p["dataset"] == dataset and p["split"] == split
    assert p["fps"] == 1.0 and p["tokens_per_frame"] == 49
    assert p["cache_policy"] == {"policy": "sink", "window": WINDOW, "sink_tokens": 32}
    assert p["model"]["model_config"] == "aha-tiny" and p["model"]["device"] == "cpu"
    assert p["tuned_on_test"] is False and "TEST" not in p["tuned_on"]
    if tuned:
        assert p["fusion"]["mode"] in ("k-fold", "prediction file")
        if p["fusion"]["mode"] == "k-fold":
            assert p["tuned_on"] == "k-fold" and p["fusion"]["k"] == 2
            assert sorted(i for f in p["fusion"]["folds"] for i in f["report_ids"]) == sorted(ids)
    else:
        assert p["tuned_on"].startswith("nothing to tune") and p["fusion"] is None
    cov = p["coverage"]
    assert (cov["n_gold"], cov["n_scored"], cov["n_failed_at_inference"]) == (len(ids), len(ids), 0)
    assert cov["complete"] is True
    assert p["command"]["convert"][2] == dataset.replace("tvsum_degraded", "tvsum")
    assert p["query_templates"]["template_set"] == "project"  # CONVERT_ARGS above: the generator's wording
    assert p["command"]["inference"] and p["command"]["benchmark"][3:5] == ["--dataset", dataset]
    assert res["files"]["items"] == str(items_path.resolve())

    plots = sorted((results_path.parent / (results_path.stem + "_files") / "plots").glob("*.png"))
    assert len(plots) == 1 and plots[0].read_bytes()[:8] == PNG_MAGIC  # PLOTS=1
    return res


# ------------------------------------------------------------------------------ score-based


def test_tvsum(synth, base_env, tmp_path):
    out = tmp_path / "tvsum"
    run_script("tvsum.sh", base_env, out, SPLIT="test")
    res = check_outputs(out / "results_title_umt.json", out / "pred_title.jsonl", out / "items_title.jsonl",
                        dataset="tvsum", split="test", headline="top5_mAP", tuned=True,
                        generated=synth / "test" / "items" / "tvsum.jsonl")
    assert sorted(res["per_item"]) == [f"syn_test_{i:04d}" for i in range(N_TEST)]
    assert res["protocol"]["prompt_variant"] == "title" and res["protocol"]["decision"]["threshold"] is None


def test_tvsum_degraded(synth, base_env, tmp_path):
    out = tmp_path / "tvsum_degraded"
    # without SPLIT (as instructions/benchmarks.md runs it): a split name that claims nothing false of the
    # 2-video gold (it said "all 50 videos")
    run_script("tvsum_degraded.sh", base_env, out, "blackout,quality", DEGRADE_SEED="3")
    tag = "title_blackout+quality_seed3"
    res = check_outputs(out / f"results_{tag}_umt.json", out / f"pred_{tag}.jsonl", out / "items_title.jsonl",
                        dataset="tvsum_degraded", split="all videos of tvsum_anno.json", headline="top5_mAP", tuned=True,
                        generated=synth / "test" / "items" / "tvsum.jsonl")
    assert res["protocol"]["degradation"] == "random:3:blackout,quality"
    for p in read_jsonl(out / f"pred_{tag}.jsonl"):
        kinds = {kind for _, _, kind in p["degradation"]}
        assert kinds and kinds <= {"blackout", "quality"}


def test_charades(synth, base_env, tmp_path):
    """Under torchrun (2 ranks over gloo, 2 streams each): the merged predictions pass every check."""
    out = tmp_path / "charades"
    run_script("charades.sh", base_env, out, STREAMS="2", NPROC_PER_NODE="2")
    run = read_json(out / "pred_test.run.json")
    assert sorted((r["rank"], r["world_size"], r["streams"], r["status"]) for r in run["runs"]) == \
        [(0, 2, 2, "done"), (1, 2, 2, "done")]
    assert [len(read_jsonl(out / f"pred_test.rank{r}-of-2.jsonl")) for r in (0, 1)] == [1, 1]
    res = check_outputs(out / "results_test_standard.json", out / "pred_test.jsonl", out / "items_test.jsonl",
                        dataset="charades", split="test", headline="R1@0.5", tuned=True,
                        generated=synth / "test" / "items" / "charades.jsonl")
    assert res["protocol"]["max_frames"] == 400  # the script's default cap
    # 12-s videos hold exactly two events, one of them the query: one line per test video
    assert item_ids(out / "items_test.jsonl") == [f"syn_test_{i:04d}#{i}" for i in range(N_TEST)]
    assert set(res["metrics"]) >= {"R1@0.3", "R1@0.5", "R1@0.7", "mIoU"}


def test_qvh(synth, base_env, tmp_path):
    out = tmp_path / "qvh"
    # the synthetic vid <id>_0.0_12.0 is the whole video <id>.mp4 (a real one is a 150-s clip file)
    run_script("qvh.sh", base_env, out, SPLIT="test", CONVERT_ARGS=f"--template_set project --video_template {syn.QVH_VIDEO_TEMPLATE}")
    res = check_outputs(out / "results_test_official.json", out / "pred_test.jsonl", out / "items_test.jsonl",
                        dataset="qvh", split="test", headline="HL-min-VeryGood-mAP", tuned=True,
                        generated=synth / "test" / "items" / "qvh.jsonl")
    assert item_ids(out / "items_test.jsonl") == [str(200000 + i) for i in range(N_TEST)]
    assert read_json(out / "items_test.jsonl.meta.json")["options"]["video_template"] == "{youtube_id}.mp4"
    assert {"HL-min-Fair", "HL-min-Good", "HL-min-VeryGood"} <= set(res["metrics"])
    # moment retrieval beside highlight detection: windows from the post-processor's online segments
    assert {"MR-full-mAP", "MR-full-R1@0.5"} <= set(res["metrics"]["brief"]) and "full" in res["metrics"]
    assert res["protocol"]["scorer"]["options"]["mr_windows"] == "online"


def test_hisum_tuned_on_the_validation_split(synth, base_env, tmp_path):
    out = tmp_path / "hisum"
    run_script("hisum.sh", base_env, out, ANNO_DIR=str(synth), HISUM_H5=str(synth / "mr_hisum.h5"),
               TITLES=str(synth / "mr_hisum_titles.tsv"), TUNE_SPLIT="val_keys")
    res = check_outputs(out / "results_test_official.json", out / "pred_test.jsonl", out / "items_test.jsonl",
                        dataset="hisum", split="test", headline="mAP50", tuned=True,
                        generated=synth / "test" / "items" / "hisum.jsonl")
    p = res["protocol"]
    # tuned on every validation prediction, reported on every test video
    assert item_ids(out / "items_val_keys.jsonl") == ["syn_val_0000"]
    assert p["fusion"]["mode"] == "prediction file" and p["fusion"]["tune_ids"] == ["syn_val_0000"]
    assert p["tuned_on"] == "held-out predictions (pred_val_keys.jsonl)"
    assert sorted(res["per_item"]) == [f"syn_test_{i:04d}" for i in range(N_TEST)]
    assert res["metrics"]["F1"] is not None and p["scorer"]["record"]["split_key"] == "test_keys"
    assert p["prompt_variant"] == "title"  # the titles file was read


# ---------------------------------------------------------------------------- response-based


def test_youcook2(synth, base_env, tmp_path):
    out = tmp_path / "youcook2"
    captions = shutil.which("java") is not None  # METEOR / PTB tokenisation need Java
    # a low running-sum threshold so that the random heads respond a few times per 12-s video
    run_script("youcook2.sh", base_env, out, SPLIT="test", SUM_THRESHOLD="1.5", MAX_NEW_TOKENS="2",
               CAPTIONS="1" if captions else "0")
    res = check_outputs(out / "results_test_official.json", out / "pred_test.jsonl", out / "items_test.jsonl",
                        dataset="youcook2", split="test", headline="SODA_c" if captions else "F1_Score", tuned=False,
                        generated=synth / "test" / "items" / "youcook2.jsonl")
    p = res["protocol"]
    assert p["decision"]["cumulative_threshold"] == 1.5 and p["decision"]["score_heads"] == ["informative"]
    assert p["remove_assistant_turns"] is True and p["max_new_tokens"] == 2
    preds = read_jsonl(out / "pred_test.jsonl")
    assert sum(len(x["responses"]) for x in preds) >= N_TEST
    assert all(r["n_tokens"] <= 2 for x in preds for r in x["responses"])
    assert ("CIDEr" in res["metrics"]) == captions
    if captions:  # both SODA_c variants, side by side; the official one is the headline
        assert res["metrics"]["SODA_c"] == res["metrics"]["SODA_c_official"] and "SODA_c_corrected" in res["metrics"]


def test_magqa_with_a_local_judge(synth, base_env, tmp_path, judge_server):
    out = tmp_path / "magqa"
    # THRESHOLD 0: a response at every frame, so every gold span holds one and the judge is asked
    run_script("magqa.sh", base_env, out, MAGQA_JSON=str(synth / "test" / "magqa_test.json"), THRESHOLD="0",
               MAX_NEW_TOKENS="1", AHA_JUDGE_BASE_URL=judge_server.base_url, AHA_JUDGE_MODEL=JUDGE_MODEL,
               AHA_JUDGE_API_KEY=JUDGE_KEY)
    res = check_outputs(out / "results_test_in_span.json", out / "pred_test.jsonl", out / "items_test.jsonl",
                        dataset="magqa", split="test", headline="in_span_score", tuned=False,
                        generated=synth / "test" / "items" / "magqa.jsonl")
    reqs = judge_server.requests
    assert reqs and all(r["path"] == "/v1/chat/completions" for r in reqs)
    assert all(r["auth"] == f"Bearer {JUDGE_KEY}" and r["body"]["model"] == JUDGE_MODEL for r in reqs)
    questions = {t["conversation"][0]["content"] for t in read_json(synth / "test" / "magqa_test.json")}
    asked = {r["body"]["messages"][-1]["content"].split("\n")[0].removeprefix("Question: ") for r in reqs}
    assert asked <= questions  # the judge saw the gold questions (data.benchmarks.judges.user_message)
    cache = read_jsonl(out / "judge_cache.jsonl")
    assert len(cache) == len(reqs)  # one request per distinct judgement, all cached
    # every gold answer turn has an in-span response (one per frame) judged 4: in-span score 4
    assert res["headline"]["value"] == pytest.approx(4.0)
    assert res["protocol"]["decision"]["threshold"] == 0.0
    assert JUDGE_KEY not in (out / "results_test_in_span.json").read_text()
