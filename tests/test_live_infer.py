"""The single-video online CLI: files, frame folders, paced input, a broken file, output files."""
import json
import time

import numpy as np
import pytest
from PIL import Image

from tests.videos import write_test_video
from test import live_infer
from utils.io import read_jsonl


def _args(shared_data, video, out, *extra):
    return ["--video", str(video), "--query", "a red circle bounces", "--output_dir", str(out),
            "--tokenizer", str(shared_data / "tokenizers" / "qwen2"), "--fps", "2", "--window", "400",
            "--sink_tokens", "16", "--quiet", *extra]


def test_file_run_writes_every_output_with_its_protocol(shared_data, tmp_path):
    video = write_test_video(tmp_path / "v.mp4", n_frames=40, fps=10, size=(96, 64))  # 4 s
    out = tmp_path / "out"
    rc = live_infer.main(_args(shared_data, video, out, "--threshold", "-1", "--min_interval", "1.5",
                               "--max_new_tokens", "2", "--reel_budget", "2", "--vision_batch", "3"))
    assert rc == 0
    scores = read_jsonl(out / "scores.jsonl")
    assert [s["frame"] for s in scores] == list(range(8))
    assert [s["time"] for s in scores] == pytest.approx([i / 2 for i in range(8)])
    for s in scores:
        assert {"informative", "relevance", "uncertainty", "fused", "cache_len"} <= set(s)
        assert 0 < s["informative"] < 1 and 0 < s["relevance"] < 1
    responses = read_jsonl(out / "responses.jsonl")
    # threshold -1 always fires; the 1.5 s interval allows responses at 0, 1.5, 3.0 s
    assert [r["time"] for r in responses] == [0.0, 1.5, 3.0]
    h = json.loads((out / "highlights.json").read_text())
    p = h["protocol"]
    assert p["fps"] == 2 and p["tokens_per_frame"] == 49 and p["cache"]["policy"] == "sink"
    assert p["fusion"]["alpha"] == 0.7 and p["tuned_on_this_video"] is False
    assert h["n_frames"] == 8 and h["error"] is None
    spans = h["cache_at_end"]["spans"]  # what the cache held at the end: the task is protected
    assert [(s["kind"], s["protected"]) for s in spans[:2]] == [("system", True), ("query", True)]
    assert spans[1]["text"] == "a red circle bounces" and h["cache_at_end"]["tokens"] <= 400
    assert (out / "scores.png").stat().st_size > 1000
    assert json.loads((out / "run.json").read_text())["queries"] == [[0.0, "a red circle bounces"]]


def test_frame_folder_and_realtime_pacing(shared_data, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / f"f{i:03d}.png")
    out = tmp_path / "out"
    t = time.perf_counter()
    rc = live_infer.main(_args(shared_data, folder, out, "--source_fps", "4", "--no_generate", "--realtime"))
    took = time.perf_counter() - t
    assert rc == 0
    scores = read_jsonl(out / "scores.jsonl")
    assert [s["time"] for s in scores] == pytest.approx([0.0, 0.5, 1.0])  # 6 images at 4 fps -> 1.5 s at 2 fps
    assert took >= 1.0  # paced: the last frame is due 1.0 s after the first


def test_a_broken_file_keeps_the_records_so_far(shared_data, tmp_path, capsys):
    # moov atom first, then half the data: the container promises 60 frames, the file holds fewer
    good = write_test_video(tmp_path / "good.mp4", n_frames=60, fps=10, size=(96, 64), codec="mpeg4",
                            container_options={"movflags": "faststart"})
    data = good.read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    rc = live_infer.main(_args(shared_data, broken, out, "--no_generate"))
    assert rc == 1
    scores = read_jsonl(out / "scores.jsonl")
    h = json.loads((out / "highlights.json").read_text())
    assert 0 < len(scores) < 12 and h["n_frames"] == len(scores)
    assert "truncated" in h["error"]
    assert "ended early" in capsys.readouterr().err


def test_bad_input_gives_a_clear_error(shared_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such video"):
        live_infer.main(_args(shared_data, tmp_path / "missing.mp4", tmp_path / "out"))
