"""datasets/cut_shots.py: cut files, content-change detection, frame-accurate ffmpeg cuts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data.video import load_clip, probe
from tests.script_loader import load_script
from tests.videos import solid_pattern, switch_pattern, write_test_video

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "datasets" / "cut_shots.py"


cs = load_script("datasets/cut_shots.py")

RED, BLUE = (200, 30, 30), (30, 30, 200)


@pytest.fixture(scope="module")
def two_shot_video(tmp_path_factory):
    # 4 s at 10 fps: frames 0-19 red, 20-39 blue (a hard cut at t = 2.0 s)
    path = tmp_path_factory.mktemp("shots") / "two.mp4"
    return write_test_video(path, 40, 10, pattern=switch_pattern(20, solid_pattern(RED), solid_pattern(BLUE)))


def _colour_of_every_frame(path) -> list[str]:
    info = probe(path)
    clip = load_clip(path, fps=info.fps, size=32)
    centre = clip[:, 12:20, 12:20].reshape(len(clip), -1, 3).mean(axis=1)
    return ["red" if c[0] > c[2] else "blue" for c in centre]


def test_shots_from_boundaries():
    assert cs.shots_from_boundaries([2.0], 4.0) == [(0.0, 2.0), (2.0, 4.0)]
    assert cs.shots_from_boundaries([3, 1, 1, 0, 9], 5.0) == [(0.0, 1.0), (1.0, 3.0), (3.0, 5.0)]
    assert cs.shots_from_boundaries([], 5.0) == [(0.0, 5.0)]
    with pytest.raises(ValueError):
        cs.shots_from_boundaries([1.0], 0.0)


def test_read_cut_file_formats(tmp_path):
    (tmp_path / "list.json").write_text("[1.5, 3.0]")
    (tmp_path / "spans.json").write_text("[[0, 1.5], [2, 4]]")
    (tmp_path / "obj.json").write_text(json.dumps({"shots": [{"start": 0, "end": 2}, {"start": 2, "end": 5}]}))
    (tmp_path / "bounds.json").write_text(json.dumps({"boundaries": [2.5]}))
    (tmp_path / "cuts.csv").write_text("time\n1.0\n2.5\n")
    (tmp_path / "spans.csv").write_text("0,2\n2,3.5\n")
    (tmp_path / "bad.csv").write_text("1.0\nabc\n")
    (tmp_path / "mixed.json").write_text("[1.0, [2, 3]]")
    assert cs.read_cut_file(tmp_path / "list.json", 5.0) == [(0.0, 1.5), (1.5, 3.0), (3.0, 5.0)]
    assert cs.read_cut_file(tmp_path / "spans.json", 5.0) == [(0.0, 1.5), (2.0, 4.0)]
    assert cs.read_cut_file(tmp_path / "obj.json", 5.0) == [(0.0, 2.0), (2.0, 5.0)]
    assert cs.read_cut_file(tmp_path / "bounds.json", 5.0) == [(0.0, 2.5), (2.5, 5.0)]
    assert cs.read_cut_file(tmp_path / "cuts.csv", 5.0) == [(0.0, 1.0), (1.0, 2.5), (2.5, 5.0)]
    assert cs.read_cut_file(tmp_path / "spans.csv", 5.0) == [(0.0, 2.0), (2.0, 3.5)]
    with pytest.raises(ValueError):
        cs.read_cut_file(tmp_path / "bad.csv", 5.0)
    with pytest.raises(ValueError):
        cs.read_cut_file(tmp_path / "mixed.json", 5.0)


def test_cut_files_past_the_video_are_refused_or_clipped(tmp_path, caplog):
    # a 5.28 s video: a cut at 9 s cut nothing (silently), spans past the end made empty shot files
    (tmp_path / "late_point.json").write_text("[2.0, 9.0]")
    (tmp_path / "late_start.json").write_text("[[0, 2], [7, 8]]")
    (tmp_path / "late_end.json").write_text("[[0, 2], [4, 9]]")
    with pytest.raises(ValueError, match=r"cut time\(s\) \[9.0\] outside the video"):
        cs.read_cut_file(tmp_path / "late_point.json", 5.28)
    with pytest.raises(ValueError, match=r"\[7, 8\] starts at or after the video's end"):
        cs.read_cut_file(tmp_path / "late_start.json", 5.28)
    with caplog.at_level("WARNING"):
        assert cs.read_cut_file(tmp_path / "late_end.json", 5.28) == [(0.0, 2.0), (4.0, 5.28)]
    assert "clipped to 5.28 s" in caplog.text
    (tmp_path / "edges.json").write_text("[0, 2.0, 5.28]")  # the video's own edges are harmless
    assert cs.read_cut_file(tmp_path / "edges.json", 5.28) == [(0.0, 2.0), (2.0, 5.28)]


def test_detect_boundaries_strongest_first_and_min_length():
    times = np.arange(0, 10, 0.5)
    diffs = np.zeros_like(times)
    diffs[times == 3.0] = 0.5
    diffs[times == 3.5] = 0.8     # stronger change 0.5 s later: wins, 3.0 is too close
    diffs[times == 7.0] = 0.3
    diffs[times == 9.5] = 0.9     # too close to the end (10 s) for a 1-s shot
    diffs[times == 5.0] = 0.05    # below the threshold
    assert cs.detect_boundaries(times, diffs, 10.0, threshold=0.1, min_shot_s=1.0) == [3.5, 7.0]
    assert cs.detect_boundaries(times, diffs, 10.0, threshold=0.1, min_shot_s=0.0) == [3.0, 3.5, 7.0, 9.5]


def test_frame_differences_peak_at_the_cut(two_shot_video):
    times, diffs = cs.frame_differences(two_shot_video, analysis_fps=10, size=32)
    assert len(times) == 40 and diffs[0] == 0.0
    assert int(np.argmax(diffs)) == 20 and times[20] == pytest.approx(2.0)
    assert diffs[20] > 0.2 and np.delete(diffs, 20).max() < 0.02


def test_cli_detects_and_cuts_two_shots(two_shot_video, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(SCRIPT), str(two_shot_video), "--output_dir", str(out)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "two_shots.json").read_text())
    assert manifest["method"] == "content_change"
    spans = [(s["start"], s["end"]) for s in manifest["shots"]]
    assert spans == [(0.0, pytest.approx(2.0)), (pytest.approx(2.0), pytest.approx(4.0))]
    first, second = out / "two_shot000.mp4", out / "two_shot001.mp4"
    assert probe(first).n_frames == 20 and probe(second).n_frames == 20
    assert probe(first).duration == pytest.approx(2.0, abs=0.05)
    # frame-accurate: no blue frame in the first shot, no red frame in the second
    assert _colour_of_every_frame(first) == ["red"] * 20
    assert _colour_of_every_frame(second) == ["blue"] * 20


def test_given_cuts(two_shot_video, tmp_path):
    cuts = tmp_path / "cuts.csv"
    cuts.write_text("1.0\n")
    manifest = cs.cut_shots(two_shot_video, tmp_path / "out", cuts=cuts)
    assert manifest["method"] == "given"
    assert [(s["start"], s["end"]) for s in manifest["shots"]] == [(0.0, 1.0), (1.0, pytest.approx(4.0))]
    counts = [probe(tmp_path / "out" / s["file"]).n_frames for s in manifest["shots"]]
    assert counts == [10, 30]


def test_cli_reports_errors(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "missing.mp4"), "--output_dir",
                             str(tmp_path / "o")], capture_output=True, text=True)
    assert result.returncode == 2 and "missing.mp4" in result.stderr


def test_an_interrupted_or_repeated_cut_leaves_no_wrong_shot(two_shot_video, tmp_path):
    """ffmpeg dying mid-shot (Ctrl-C, kill, disk full) left its half file under the shot's name, and a
    re-run with fewer shots left the earlier run's extra shots beside the new ones."""
    out = tmp_path / "out"
    cuts = tmp_path / "cuts.csv"
    cuts.write_text("1.0\n2.0\n3.0\n")
    assert len(cs.cut_shots(two_shot_video, out, cuts=cuts)["shots"]) == 4
    dying = tmp_path / "ffmpeg"   # writes part of its output, then fails as a killed ffmpeg does
    dying.write_text("#!/bin/sh\nfor last; do :; done\nprintf 'half a shot' > \"$last\"\nexit 255\n")
    dying.chmod(0o755)
    cuts.write_text("2.0\n")
    with pytest.raises(RuntimeError):
        cs.cut_shots(two_shot_video, out, cuts=cuts, ffmpeg=str(dying))
    assert not (out / "two_shots.json").exists()        # no list of shots that says the folder is complete
    assert all(probe(p).n_frames == 10 for p in out.glob("two_shot*.mp4"))   # every file left is a whole shot
    assert not list(out.glob("*.part"))
    manifest = cs.cut_shots(two_shot_video, out, cuts=cuts)
    assert sorted(p.name for p in out.glob("*.mp4")) == [s["file"] for s in manifest["shots"]] == \
        ["two_shot000.mp4", "two_shot001.mp4"]
    assert [probe(out / s["file"]).n_frames for s in manifest["shots"]] == [20, 20]


@pytest.mark.parametrize("suffix,codec", [(".mp4", "mpeg4"), (".mkv", "mpeg4"), (".webm", "libvpx"),
                                          (".ts", "mpeg2video")])
def test_each_shot_holds_exactly_its_own_frames(tmp_path, suffix, codec):
    """A shot [a, b) holds the native frames shown in [a - half, b - half) (half a frame earlier: the
    frame at a cut time starts its shot), first to last. With -ss/-t on the input an MPEG-TS shot
    [4, 10) at 10 fps began at frame 44, and -t, counted from the first frame kept, made an MP4
    shot [1.06, 2.0) end at frame 20 (shown at 2.0, the next shot's)."""
    from data.video import iter_frames
    from tests.videos import read_frame_index

    src = write_test_video(tmp_path / f"src{suffix}", 150, 10, codec=codec)  # frame k at k / 10 s
    want = {(0.0, 1.5): (0, 14), (1.06, 2.0): (11, 19), (4.0, 10.0): (40, 99), (4.04, 5.96): (40, 59),
            (4.06, 5.94): (41, 58), (12.06, 15.0): (121, 149)}  # the last one seeks: past CUT_SEEK_MARGIN
    cuts = tmp_path / "spans.json"
    cuts.write_text(json.dumps([list(span) for span in want]))
    manifest = cs.cut_shots(src, tmp_path / "out", cuts=cuts)
    got = {}
    for shot in manifest["shots"]:
        index = [read_frame_index(f) for _, f in iter_frames(tmp_path / "out" / shot["file"], fps=10, size=None)]
        got[shot["start"], shot["end"]] = (index[0], index[-1]) if index == list(range(index[0], index[-1] + 1)) else index
    assert got == want
