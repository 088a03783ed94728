"""Live input audit: what a live run records about its input, and flags a source would ignore."""
from PIL import Image

from tests import fakes
from tests.videos import write_test_video
from utils import io as uio


def _live(video, out, *extra):
    return ["--video", str(video), "--query", "q", "--output_dir", str(out), "--quiet", "--reel_budget", "0", *extra]


def _frames(folder, n=6, name="f{k:04d}.png"):
    folder.mkdir()
    for k in range(n):
        Image.new("RGB", (32, 24), (40 * k, 0, 0)).save(folder / name.format(k=k))
    return folder


def test_run_json_records_the_frame_cap_and_the_folder_clock(tmp_path, monkeypatch):
    """--max_frames cuts the stream and --source_fps places a folder's images: run.json says both."""
    from test import live_infer

    fakes.install(monkeypatch)
    video = write_test_video(tmp_path / "v.mp4", n_frames=30, fps=10, size=(64, 48))
    assert live_infer.main(_live(video, tmp_path / "a", "--fps", "2", "--max_frames", "3")) == 0
    run = uio.read_json(tmp_path / "a" / "run.json")
    assert len(uio.read_jsonl(tmp_path / "a" / "scores.jsonl")) == 3
    assert run["max_frames"] == 3 and run["source_fps"] is None
    folder = _frames(tmp_path / "frames")
    assert live_infer.main(_live(folder, tmp_path / "b", "--fps", "2", "--source_fps", "4")) == 0
    run = uio.read_json(tmp_path / "b" / "run.json")
    assert run["source_fps"] == 4 and run["max_frames"] is None


def test_flags_a_source_would_ignore_are_refused(tmp_path, monkeypatch, capsys):
    """--source_fps on a video file (its frames have their own times) used to be ignored silently."""
    from test import live_infer

    count = fakes.install(monkeypatch)
    video = write_test_video(tmp_path / "v.mp4", n_frames=30, fps=10, size=(64, 48))
    assert live_infer.main(_live(video, tmp_path / "o", "--source_fps", "30")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--source_fps" in err[0] and "frame folder" in err[0], err
    assert not (tmp_path / "o").exists() and count["loads"] == 0
    # cached frame tokens are not paced: run.json would have said "realtime": true for an unpaced run
    (tmp_path / "feats").mkdir()
    for extra, message in ((["--realtime"], "--realtime"), (["--source_fps", "4"], "--source_fps")):
        assert live_infer.main(_live(video, tmp_path / "o", "--features", str(tmp_path / "feats"), *extra)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and "--features" in err[0], err
    assert not (tmp_path / "o").exists() and count["loads"] == 0
