"""Scale-out of test.run_benchmark (test/scale_out.py): --streams N, torchrun sharding over gloo.

Tiny fixture videos of different lengths (3-7 s) with queries at different times, the aha-tiny
preset with the real Qwen2 tokenizer, a sink window smaller than the streams (the caches evict):

* ``--streams 3`` in one process writes what ``--streams 1`` writes (per item, timing aside), and a
  missing or undecodable video among the streams is a recorded skip that costs that item only;
* with generation on, lanes that answer beside lanes that only score write what one stream writes;
* ``torchrun --nproc_per_node 2`` (gloo, CPU), 2 streams per rank: every rank streams its own share
  into its own file, and the merged file equals the single-process one line for line;
* a rank killed (SIGKILL) in the middle of its share: re-running the same command resumes each rank
  from its own file (nothing predicted twice) and the merged file again equals one process's.

The model's head scores are compared within 1e-5 (fp32: batching and thread counts only change the
summation blocking); every other field exactly, except ``elapsed_s``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test import run_benchmark
from test.scale_out import Shard, merge, merge_lines, merge_predictions, predictions
from utils.io import read_json, read_jsonl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from videos import write_test_video  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NATIVE_FPS = 10
SECONDS = (5, 3, 7, 4, 6)  # item i's video length
TIMING = ("elapsed_s",)


# ------------------------------------------------------------------------------ pure parts


def test_shares_are_disjoint_deterministic_and_cover_every_item():
    items = [{"id": str(i)} for i in range(11)]
    for world in (1, 2, 3, 4):
        shares = [Shard(r, world).share(items) for r in range(world)]
        assert sorted(int(it["id"]) for s in shares for it in s) == list(range(11))
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
        assert shares == [Shard(r, world).share(items) for r in range(world)]  # a rerun gets the same share
    assert Shard(1, 2).output("out/pred.jsonl") == Path("out/pred.rank1-of-2.jsonl")
    assert Shard(0, 1).output("out/pred.jsonl") == Path("out/pred.jsonl")
    assert Shard(1, 4, local_rank=1).device("cuda") == "cuda:1" and Shard(1, 4).device("cpu") == "cpu"


@pytest.mark.parametrize("env", [{"RANK": "2", "WORLD_SIZE": "2"}, {"RANK": "x", "WORLD_SIZE": "2"},
                                 {"RANK": "0", "WORLD_SIZE": "0"}])
def test_a_broken_launcher_environment_is_refused(env):
    with pytest.raises(ValueError, match="RANK|WORLD_SIZE"):
        Shard.from_env(env)


def test_merge_orders_by_the_items_and_a_rank_file_wins(tmp_path):
    out = tmp_path / "pred.jsonl"
    out.write_text('{"id": "c", "v": "old"}\n{"id": "z", "v": "old"}\n')  # an earlier run (z: another --limit)
    r0, r1 = tmp_path / "pred.rank0-of-2.jsonl", tmp_path / "pred.rank1-of-2.jsonl"
    r0.write_text('{"id": "a", "v": 0}\n{"id": "c", "v": 0}\n')
    r1.write_text('{"id": "b", "v": 1}')  # no final newline
    assert merge_predictions(out, [r0, r1], ["a", "b", "c", "d"]) == 4  # a b c (ordered) + z
    assert [json.loads(x) for x in out.read_text().splitlines()] == [
        {"id": "a", "v": 0}, {"id": "b", "v": 1}, {"id": "c", "v": 0}, {"id": "z", "v": "old"}]
    r1.write_text('{"id": "b", "v": 1}\nnot json\n')
    with pytest.raises(ValueError, match="rank1-of-2.jsonl:2"):
        merge_predictions(out, [r0, r1], ["a", "b", "c"])
    # a rank's file that rank 0 cannot see in full (another node's disk) stops the merge
    r1.write_text('{"id": "b", "v": 1}\n')
    with pytest.raises(RuntimeError, match="rank 1 wrote 2 predictions"):
        merge(out, Shard(0, 2), ["a", "b", "c"], run_benchmark.errors_path, run_benchmark.run_record_path,
              rank_totals=[2, 2])
    e, e0 = tmp_path / "e.jsonl", tmp_path / "e0.jsonl"
    e.write_text('{"id": "x"}\n')
    e0.write_text('{"id": "x"}\n{"id": "y"}\n')
    assert merge_lines(e, [e0, tmp_path / "absent.jsonl"]) == 2 and e.read_text() == '{"id": "x"}\n{"id": "y"}\n'


def test_a_run_record_left_without_its_predictions_is_not_merged_into(tmp_path):
    """PRED.jsonl deleted to start over with other settings, PRED.run.json left behind: the merged
    record holds the settings and engine the ranks ran with, not the old run's (nor its invocations)."""
    out = tmp_path / "pred.jsonl"
    (tmp_path / "pred.run.json").write_text(json.dumps({"settings": {"fps": 1}, "engine": {"fps": 1},
                                                        "runs": [{"status": "done", "started": "old"}]}))
    for r in (0, 1):
        (tmp_path / f"pred.rank{r}-of-2.jsonl").write_text(json.dumps({"id": f"q{r}"}) + "\n")
        (tmp_path / f"pred.rank{r}-of-2.run.json").write_text(json.dumps(
            {"settings": {"fps": 2}, "engine": {"fps": 2}, "runs": [{"status": "done", "rank": r, "world_size": 2}]}))
    assert merge(out, Shard(0, 2), ["q0", "q1"], run_benchmark.errors_path, run_benchmark.run_record_path,
                 run_benchmark.finalise_unfinished, [1, 1]) == 2
    rec = read_json(tmp_path / "pred.run.json")
    assert rec["settings"] == {"fps": 2} and rec["engine"] == {"fps": 2}
    assert sorted(x["rank"] for x in rec["runs"]) == [0, 1]
    # beside its predictions (an earlier run of the same settings), the merged record is kept and extended
    (tmp_path / "pred.run.json").write_text(json.dumps({"settings": {"fps": 2}, "engine": {"fps": 2},
                                                        "runs": [{"status": "done", "started": "single"}]}))
    merge(out, Shard(0, 2), ["q0", "q1"], run_benchmark.errors_path, run_benchmark.run_record_path,
          run_benchmark.finalise_unfinished, [1, 1])
    assert [x.get("rank") for x in read_json(tmp_path / "pred.run.json")["runs"]] == [None, 0, 1]


def test_more_streams_than_items_starts_only_the_lanes_they_need(tmp_path):
    """--streams 8 with 3 items left (one with its video missing): an engine of 2 lanes, not 8 (every
    lane holds its share of the batched cache; a compiled step computes every lane)."""
    for v in ("a", "b"):
        (tmp_path / f"{v}.mp4").write_bytes(b"x")
    todo = [{"id": v, "video": f"{v}.mp4"} for v in ("a", "b", "c")]
    lanes = []

    class Engine:
        def run_jobs(self, jobs):
            for key, fn in jobs:
                yield key, fn(None), None

    def start(n):
        lanes.append(n)
        return Engine()

    got = list(predictions(todo, tmp_path, 8, start, lambda engine, item, video: {"id": item["id"]}))
    assert lanes == [2] and sorted(i["id"] for i, _, p, e in got if p) == ["a", "b"]
    assert [i["id"] for i, _, p, e in got if e] == ["c"]
    lanes.clear()
    list(predictions(todo[:2], tmp_path, 1, start, lambda engine, item, video: {"id": item["id"]}))
    assert lanes == [1]


def test_a_torn_merged_errors_line_is_cut_before_the_ranks_lines_are_merged(tmp_path):
    """A single-process run killed while writing an error line, then the same command under torchrun:
    the torn line is cut (as a single process cuts it) instead of ending up in the middle of the
    merged errors file, which test.benchmark reads."""
    from types import SimpleNamespace

    from test.benchmark import error_ids

    out = tmp_path / "pred.jsonl"
    errors = tmp_path / "pred.errors.jsonl"
    errors.write_text('{"id": "a", "error": "X"}\n{"id": "b", "err')
    run_benchmark.merged_finished_ids(SimpleNamespace(output=str(out), repair_output=False), tmp_path / "items.jsonl",
                                      [], Shard(0, 1))
    (tmp_path / "pred.rank0-of-2.errors.jsonl").write_text('{"id": "c", "error": "Y"}\n')
    for r in (0, 1):
        (tmp_path / f"pred.rank{r}-of-2.jsonl").write_text("")
        (tmp_path / f"pred.rank{r}-of-2.run.json").write_text(json.dumps({"settings": {}, "runs": []}))
    merge(out, Shard(0, 2), ["a", "b", "c"], run_benchmark.errors_path, run_benchmark.run_record_path)
    assert sorted(error_ids(str(out))) == ["a", "c"]


# ------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """Five items (3-7 s, queries at 0-4 s)."""
    d = tmp_path_factory.mktemp("scale_out")
    for i, s in enumerate(SECONDS):
        write_test_video(d / "videos" / f"v{i}.mp4", s * NATIVE_FPS, fps=NATIVE_FPS)
    items = [{"id": f"q{i}", "dataset": "charades", "video": f"v{i}.mp4", "query": f"when does event {i} happen?",
              "query_time": float(i), "duration": float(s)} for i, s in enumerate(SECONDS)]
    (d / "items.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
    return d


def rb_args(d: Path, output: Path, *extra: str, root: Path | None = None, tokenizer: Path) -> list[str]:
    return ["--items", str(d / "items.jsonl"), "--video_root", str(root or d / "videos"), "--output", str(output),
            "--model_config", "aha-tiny", "--tokenizer", str(tokenizer), "--device", "cpu", "--fps", "2",
            "--window", "400", "--no_generate", "--quiet", *extra]


def check_same(want_path: Path, got_path: Path, atol: float = 1e-5) -> None:
    want, got = read_jsonl(want_path), read_jsonl(got_path)
    assert [r["id"] for r in got] == [r["id"] for r in want]
    for a, b in zip(want, got):
        fa, fb = a.pop("frames"), b.pop("frames")
        for r in (a, b):
            for k in TIMING:
                r.pop(k)
        # a response's trigger score is a head value like the frames' (fp32: batched lanes may round
        # the last bits differently on more than one thread); time, frame and text are exact
        ta = [r.pop("trigger_score") for r in a.get("responses") or []]
        tb = [r.pop("trigger_score") for r in b.get("responses") or []]
        np.testing.assert_allclose(tb, ta, rtol=0, atol=atol, err_msg=f"{a['id']} trigger_score")
        assert b == a
        assert fb["time"] == fa["time"]
        for k in ("informative", "relevance", "uncertainty"):
            np.testing.assert_allclose(fb[k], fa[k], rtol=0, atol=atol, err_msg=f"{a['id']} {k}")


@pytest.fixture(scope="module")
def single(bench, shared_data):
    """One process, one stream: the reference every other layout must reproduce."""
    import torch

    out = bench / "single" / "pred.jsonl"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert run_benchmark.main(rb_args(bench, out, tokenizer=shared_data / "tokenizers" / "qwen2")) == 0
    finally:
        torch.set_num_threads(threads)
    assert [r["id"] for r in read_jsonl(out)] == [f"q{i}" for i in range(len(SECONDS))]
    return out


@pytest.mark.parametrize("split", ["auto", "0"])
def test_streams_in_one_process_equal_one_stream(bench, single, shared_data, tmp_path, split):
    """3 lanes for 5 items: they join as others finish; lines are written as items finish; steps split in
    two forwards (--split_rows 0: whenever lanes ask for different lengths) change no record."""
    out = tmp_path / "pred.jsonl"
    assert run_benchmark.main(rb_args(bench, out, "--streams", "3", "--split_rows", split,
                                      tokenizer=shared_data / "tokenizers" / "qwen2")) == 0
    ordered = tmp_path / "ordered.jsonl"  # completion order: compare in the items' order
    by_id = {r["id"]: r for r in read_jsonl(out)}
    ordered.write_text("".join(json.dumps(by_id[f"q{i}"]) + "\n" for i in range(len(SECONDS))))
    check_same(single, ordered)
    run = read_json(out.with_name("pred.run.json"))
    assert run["runs"][-1]["streams"] == 3 and run["runs"][-1]["status"] == "done" and run["runs"][-1]["lanes"] == 3
    assert run["runs"][-1]["split_rows"] == (0 if split == "0" else "auto")


@pytest.mark.slow
def test_responses_among_streams_equal_one_stream(bench, shared_data, tmp_path):
    """Generation on (a running-sum rule): lanes answer at their own frames while the others score;
    every item's responses (time, frame, text) and scores equal the single stream's."""
    tok = shared_data / "tokenizers" / "qwen2"
    flags = ("--cumulative_threshold", "1.5", "--score_heads", "informative", "--max_new_tokens", "3")
    outs = {}
    for n in (1, 3):
        out = tmp_path / f"pred{n}.jsonl"
        args = [a for a in rb_args(bench, out, "--streams", str(n), *flags, tokenizer=tok) if a != "--no_generate"]
        assert run_benchmark.main(args) == 0
        by_id = {r["id"]: r for r in read_jsonl(out)}
        outs[n] = tmp_path / f"ordered{n}.jsonl"
        outs[n].write_text("".join(json.dumps(by_id[f"q{i}"]) + "\n" for i in range(len(SECONDS))))
    responses = [len(r["responses"]) for r in read_jsonl(outs[1])]
    assert sum(responses) >= 3 and min(responses) < max(responses), responses  # lanes answer at different times
    check_same(outs[1], outs[3])


def test_a_bad_video_among_streams_costs_that_item_only(bench, single, shared_data, tmp_path):
    """q1's video is missing, q2's is not a video: both recorded skips; the others as streamed alone."""
    root = tmp_path / "videos"
    root.mkdir()
    for i in (0, 3, 4):
        os.link(bench / "videos" / f"v{i}.mp4", root / f"v{i}.mp4")
    (root / "v2.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    out = tmp_path / "pred.jsonl"
    assert run_benchmark.main(rb_args(bench, out, "--streams", "4", root=root,
                                      tokenizer=shared_data / "tokenizers" / "qwen2")) == 0
    errors = read_jsonl(tmp_path / "pred.errors.jsonl")
    assert sorted(e["id"] for e in errors) == ["q1", "q2"]
    assert {e["id"]: e["error"] for e in errors}["q1"] == "FileNotFoundError"
    by_id = {r["id"]: r for r in read_jsonl(out)}
    assert sorted(by_id) == ["q0", "q3", "q4"]
    want = tmp_path / "want.jsonl"
    want.write_text("".join(json.dumps(r) + "\n" for r in read_jsonl(single) if r["id"] in by_id))
    got = tmp_path / "got.jsonl"
    got.write_text("".join(json.dumps(by_id[k]) + "\n" for k in ("q0", "q3", "q4")))
    check_same(want, got)


def test_bad_streams_is_refused_before_any_work(bench, tmp_path, capsys, shared_data):
    out = tmp_path / "pred.jsonl"
    assert run_benchmark.main(rb_args(bench, out, "--streams", "0", tokenizer=shared_data / "tokenizers" / "qwen2")) == 2
    assert "--streams must be an integer >= 1" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit):
        run_benchmark.main(rb_args(bench, out, "--streams", "2", "--split_rows", "-3", tokenizer=shared_data / "tokenizers" / "qwen2"))
    assert "--split_rows must be 'auto', 'none' or an integer >= 0" in capsys.readouterr().err and not out.exists()


def torchrun(args: list[str], nproc: int = 2) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                             "-m", "test.run_benchmark", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(p: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out + err


@pytest.mark.slow
def test_two_ranks_over_gloo_equal_one_process(bench, single, shared_data, tmp_path):
    out = tmp_path / "pred.jsonl"
    rc, log = finish(torchrun(rb_args(bench, out, "--streams", "2", tokenizer=shared_data / "tokenizers" / "qwen2")))
    assert rc == 0, log[-3000:]
    check_same(single, out)  # the items' order, as one process writes it
    for r in (0, 1):  # each rank streamed exactly its share into its own file
        assert sorted(x["id"] for x in read_jsonl(tmp_path / f"pred.rank{r}-of-2.jsonl")) == \
            [f"q{i}" for i in range(r, len(SECONDS), 2)]
    run = read_json(tmp_path / "pred.run.json")
    assert sorted((x["rank"], x["status"], x["n_predicted"], x["streams"]) for x in run["runs"]) == \
        [(0, "done", 3, 2), (1, "done", 2, 2)]
    assert run["shards"]["world_size"] == 2 and run["engine"]["tokens_per_frame"] == 49
    assert run["settings"] == read_json(single.with_name("pred.run.json"))["settings"]


@pytest.mark.slow
def test_a_killed_rank_is_resumed_by_the_same_command(bench, single, shared_data, tmp_path):
    """Rank 1 (items q1, q3) is SIGKILLed after q1, while q3's video blocks (a FIFO nobody writes):
    no merged file; the same command again streams only q3 and merges what one process writes."""
    root = tmp_path / "videos"
    root.mkdir()
    for i in range(len(SECONDS)):
        if i != 3:
            os.link(bench / "videos" / f"v{i}.mp4", root / f"v{i}.mp4")
    os.mkfifo(root / "v3.mp4")
    out = tmp_path / "pred.jsonl"
    args = rb_args(bench, out, root=root, tokenizer=shared_data / "tokenizers" / "qwen2")
    p = torchrun(args)
    r0, r1 = tmp_path / "pred.rank0-of-2.jsonl", tmp_path / "pred.rank1-of-2.jsonl"

    def lines(path: Path) -> int:
        return path.read_text().count("\n") if path.exists() else 0

    deadline = time.monotonic() + 240
    while not (lines(r0) == 3 and lines(r1) == 1):
        assert p.poll() is None, finish(p)[1][-3000:]
        assert time.monotonic() < deadline, "the ranks did not reach the kill point"
        time.sleep(0.2)
    time.sleep(0.5)  # rank 1 is now blocked opening q3's video
    pid = read_json(tmp_path / "pred.rank1-of-2.run.json")["runs"][-1]["pid"]
    os.kill(pid, signal.SIGKILL)
    rc, log = finish(p, timeout=120)
    assert rc != 0 and not out.exists(), log[-3000:]

    (root / "v3.mp4").unlink()
    os.link(bench / "videos" / "v3.mp4", root / "v3.mp4")
    rc, log = finish(torchrun(args))
    assert rc == 0, log[-3000:]
    check_same(single, out)
    rank1 = read_json(tmp_path / "pred.rank1-of-2.run.json")["runs"]
    assert [(x["status"], x["n_already_done"]) for x in rank1] == [("interrupted", 0), ("done", 1)]
    assert rank1[-1]["n_predicted"] == 1 and "finalised" in rank1[0]
    rank0 = read_json(tmp_path / "pred.rank0-of-2.run.json")["runs"]
    assert rank0[-1]["n_already_done"] == 3 and rank0[-1]["n_predicted"] == 0
    merged = read_json(tmp_path / "pred.run.json")["runs"]
    assert len(merged) == 4 and sorted(x["status"] for x in merged) == ["done", "done", "done", "interrupted"]
