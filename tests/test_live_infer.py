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


def test_a_truncated_file_is_refused_before_the_model_loads(shared_data, tmp_path, capsys, monkeypatch):
    # moov atom first, then half the data: the container promises 60 frames, the file holds fewer
    good = write_test_video(tmp_path / "good.mp4", n_frames=60, fps=10, size=(96, 64), codec="mpeg4",
                            container_options={"movflags": "faststart"})
    data = good.read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(live_infer, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    assert live_infer.main(_args(shared_data, broken, tmp_path / "out", "--no_generate")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "truncated: the container lists 60 frames but holds" in err[0]
    assert not (tmp_path / "out").exists()


def test_a_stream_that_breaks_mid_way_keeps_the_records_so_far(shared_data, tmp_path, capsys):
    # NUT declares no length: the scan cannot tell, the decoder finds the last frame incomplete
    good = write_test_video(tmp_path / "good.nut", n_frames=60, fps=10, size=(96, 64), codec="mpeg4",
                            pattern="noisy_index")
    data = good.read_bytes()
    broken = tmp_path / "broken.nut"
    broken.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    rc = live_infer.main(_args(shared_data, broken, out, "--no_generate"))
    assert rc == 1
    scores = read_jsonl(out / "scores.jsonl")
    h = json.loads((out / "highlights.json").read_text())
    assert 0 < len(scores) < 12 and h["n_frames"] == len(scores)
    assert "truncated" in h["error"]
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("live_infer: failed: the stream ended early after ")
    assert err.strip().endswith(f"; partial outputs are in {out}")


def test_bad_input_gives_a_clear_error(shared_data, tmp_path, capsys):
    assert live_infer.main(_args(shared_data, tmp_path / "missing.mp4", tmp_path / "out")) == 2
    assert "live_infer: error: no such video" in capsys.readouterr().err


def _tiny_checkpoint(path, **settings):
    from models.build import build_model
    from models.checkpoint import save_checkpoint
    from models.inference_settings import InferenceSettings
    from models.lora import apply_lora

    save_checkpoint(apply_lora(build_model("aha-tiny", seed=0)), path, inference=InferenceSettings(**settings))
    return path


def test_checkpoint_inference_settings_are_used_unless_a_flag_says_otherwise(shared_data, tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "ckpt", fps=2.0, cache_policy="sliding", window=300, sink_tokens=0)
    video = write_test_video(tmp_path / "v.mp4", n_frames=30, fps=10, size=(96, 64))  # 3 s
    base = ["--video", str(video), "--query", "q", "--tokenizer", str(shared_data / "tokenizers" / "qwen2"),
            "--checkpoint", str(ckpt), "--no_generate", "--quiet", "--reel_budget", "0"]
    assert live_infer.main([*base, "--output_dir", str(tmp_path / "a")]) == 0
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["fps"] == 2.0 and run["cache"] == {"policy": "sliding", "window": 300, "sink_tokens": 0}
    assert run["settings_source"] == {k: "checkpoint" for k in ("fps", "cache_policy", "window", "sink_tokens", "prompt_order", "system_prompt")}
    assert [s["time"] for s in read_jsonl(tmp_path / "a" / "scores.jsonl")] == pytest.approx([i / 2 for i in range(6)])
    assert run["model"]["checkpoint"] == str(ckpt) and len(run["model"]["checkpoint_sha256"]) == 64
    assert run["model"]["model_config"] is None and run["model"]["dtype"] == "float32"

    assert live_infer.main([*base, "--output_dir", str(tmp_path / "b"), "--fps", "1", "--window", "200"]) == 0
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["fps"] == 1.0 and run["cache"]["window"] == 200 and run["cache"]["policy"] == "sliding"
    assert run["settings_source"]["fps"] == "flag" and run["settings_source"]["cache_policy"] == "checkpoint"
    assert len(read_jsonl(tmp_path / "b" / "scores.jsonl")) == 3


@pytest.mark.parametrize("extra, message", [
    (["--model_config", "aha-tiny-synt"], "no model preset 'aha-tiny-synt'"),
    (["--model_config", "aha-tiny-synth"], "contradicts the checkpoint"),
    (["--load_in_4bit"], "bitsandbytes"),
    (["--tokenizer", "/nonexistent"], "--tokenizer /nonexistent"),
])
def test_model_flags_that_cannot_work_are_refused_in_one_line(shared_data, tmp_path, capsys, extra, message):
    pytest.importorskip("torch")
    ckpt = _tiny_checkpoint(tmp_path / "ckpt")
    video = write_test_video(tmp_path / "v.mp4", n_frames=10, fps=10, size=(96, 64))
    args = ["--video", str(video), "--query", "q", "--tokenizer", str(shared_data / "tokenizers" / "qwen2"),
            "--checkpoint", str(ckpt), "--output_dir", str(tmp_path / "o"), "--quiet", *extra]
    assert live_infer.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("live_infer: error:") and message in err[0]


def _extract(argv):
    from tests.script_loader import load_script

    return load_script("scripts/extract_features.py").main(argv)


@pytest.mark.slow
def test_features_from_extract_features_give_the_same_scores(shared_data, tmp_path, capsys):
    """--features: the cached frame tokens of scripts/extract_features.py (same model, same fps)
    replace decoding and the vision tower; the scores are those of the video itself."""
    video = write_test_video(tmp_path / "v.mp4", n_frames=30, fps=10, size=(96, 64))  # 3 s
    tok = str(shared_data / "tokenizers" / "qwen2")
    stats = _extract(["--video", str(video), "--fps", "2", "--cache_dir", str(tmp_path / "feats"), "--tokenizer", tok])
    assert stats["extracted"] == 1
    base = ["--query", "q", "--tokenizer", tok, "--fps", "2", "--window", "400", "--no_generate", "--reel_budget", "0"]
    assert live_infer.main(["--video", str(video), "--output_dir", str(tmp_path / "a"), "--quiet", *base]) == 0
    video.rename(tmp_path / "elsewhere.mp4")  # the features need no video file
    assert live_infer.main(["--video", str(video), "--output_dir", str(tmp_path / "b"), "--features",
                            str(tmp_path / "feats"), *base]) == 0
    a, b = read_jsonl(tmp_path / "a" / "scores.jsonl"), read_jsonl(tmp_path / "b" / "scores.jsonl")
    assert [s["time"] for s in a] == [s["time"] for s in b] and len(a) == 6
    for k in ("informative", "relevance", "uncertainty"):
        assert [s[k] for s in b] == pytest.approx([s[k] for s in a], abs=1e-5)
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["source_kind"] == "features" and run["features"]["key"] == "v.mp4"
    # the terminal names the two kinds of highlights apart; the file holds both, named
    text = capsys.readouterr().out
    assert "online highlights (confirmed live" in text and "offline peaks" in text
    h = json.loads((tmp_path / "b" / "highlights.json").read_text())
    assert {"online_highlights", "offline_peaks", "offline_segments", "legend"} <= set(h)
    assert live_infer.main(["--video", str(video), "--output_dir", str(tmp_path / "c"), "--features",
                            str(tmp_path / "feats"), "--degrade", "random:0", "--quiet", *base]) == 2
    assert "--features" in capsys.readouterr().err


@pytest.mark.slow
def test_features_of_an_adapter_checkpoint_are_found_and_give_the_same_scores(shared_data, tmp_path):
    """scripts/extract_features.py --checkpoint CKPT (LoRA adapter, trained projector copy), then
    test.live_infer --checkpoint CKPT --features: the engine merges the LoRA, so the extraction must
    fingerprint (and encode with) the merged model, or its features are never found."""
    import torch

    from models.build import build_model
    from models.checkpoint import save_checkpoint
    from models.lora import apply_lora

    pm = apply_lora(build_model("aha-tiny", seed=0))
    with torch.no_grad():  # a trained projector: its copy differs from the original
        for name, p in pm.named_parameters():
            if "modules_to_save" in name and "multi_modal_projector" in name:
                p.add_(0.01)
    ckpt = tmp_path / "ckpt"
    save_checkpoint(pm, ckpt)
    video = write_test_video(tmp_path / "v.mp4", n_frames=20, fps=10, size=(96, 64))  # 2 s
    tok = str(shared_data / "tokenizers" / "qwen2")
    assert _extract(["--video", str(video), "--fps", "2", "--cache_dir", str(tmp_path / "feats"), "--tokenizer", tok,
                     "--checkpoint", str(ckpt), "--num_workers", "0"])["extracted"] == 1
    base = ["--video", str(video), "--query", "q", "--tokenizer", tok, "--checkpoint", str(ckpt), "--fps", "2",
            "--no_generate", "--reel_budget", "0", "--quiet"]
    assert live_infer.main([*base, "--output_dir", str(tmp_path / "a")]) == 0
    assert live_infer.main([*base, "--output_dir", str(tmp_path / "b"), "--features", str(tmp_path / "feats")]) == 0
    a, b = read_jsonl(tmp_path / "a" / "scores.jsonl"), read_jsonl(tmp_path / "b" / "scores.jsonl")
    assert [s["time"] for s in a] == [s["time"] for s in b] and len(a) == 4
    for k in ("informative", "relevance", "uncertainty"):
        assert [s[k] for s in b] == pytest.approx([s[k] for s in a], abs=1e-5)


def test_read_gt_spans_takes_a_list_or_labelled_sets_and_refuses_bad_spans(tmp_path):
    import json

    import pytest

    from test.live_infer import read_gt_spans

    f = tmp_path / "spans.json"
    f.write_text(json.dumps([[1, 2.5]]))
    assert read_gt_spans(str(f)) == [[1, 2.5]]
    sets = {"matching events (the query)": [[1.5, 5.5]], "distractor events": [[9, 14], [16, 19.5]]}
    f.write_text(json.dumps(sets))
    assert read_gt_spans(str(f)) == sets  # one shade and legend entry per set (the demo writes these)
    for bad, msg in (([[5, 1]], "ends before it starts"), ({"a": [[1, 2]], "b": [[3]]}, r"\['b'\]: expected"),
                     ({"a": [[-1, 2]]}, "start")):
        f.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=msg):
            read_gt_spans(str(f))


def test_run_json_records_the_cache_and_generation_settings_that_ran(tmp_path):
    """run.json held the --window flag even under a policy that ignores it (unbounded keeps every
    token: cache_layout said window None beside it), and no max_new_tokens / repetition_penalty /
    respond_before_query although the responses were generated with them."""
    from pathlib import Path

    ckpt = Path(__file__).resolve().parents[1] / "checkpoints" / "aha-tiny-synth"
    video = write_test_video(tmp_path / "v.mp4", n_frames=20, fps=10, size=(96, 64))  # 2 s
    out = tmp_path / "out"
    assert live_infer.main(["--video", str(video), "--query", "a red circle bounces", "--output_dir", str(out),
                            "--checkpoint", str(ckpt), "--fps", "2", "--cache_policy", "unbounded", "--window", "40",
                            "--max_new_tokens", "3", "--repetition_penalty", "1.3", "--respond_before_query",
                            "--reel_budget", "0", "--quiet"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["cache"] == {"policy": "unbounded", "window": None, "sink_tokens": 0}
    assert run["cache"]["window"] == run["cache_layout"]["window"]
    d = run["decision"]
    assert (d["max_new_tokens"], d["repetition_penalty"], d["respond_before_query"]) == (3, 1.3, True)
