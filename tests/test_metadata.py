"""data/metadata.py: the videos_metadata.json builder (broken files, resume) and retry loader."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from data.metadata import (
    NoValidItemError,
    _inspect_one,
    build_metadata,
    inspect_video,
    list_videos,
    load_metadata,
    load_with_retries,
    valid_videos,
)
from data.video import VideoDecodeError
from tests.videos import write_test_video


@pytest.fixture()
def video_root(tmp_path):
    root = tmp_path / "videos"
    write_test_video(root / "a.mp4", 20, 10)                      # 2.0 s
    write_test_video(root / "sub" / "b.mkv", 15, 5, codec="libx264")  # 3.0 s
    write_test_video(root / "c.ts", 12, 4)                         # 3.0 s
    (root / "empty.mp4").touch()
    (root / "text.mp4").write_text("this is not a video\n" * 50)
    full = write_test_video(root / "tmp_full.mp4", 30, 10, pattern="noisy_index",
                            container_options={"movflags": "faststart"})
    data = full.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    full.unlink()
    (root / "readme.txt").write_text("not a video extension: skipped")
    (root / "poster.png").write_bytes(b"\x89PNG")
    return root


EXPECTED_KEYS = ["a.mp4", "c.ts", "empty.mp4", "sub/b.mkv", "text.mp4", "truncated.mp4"]


def test_list_videos_skips_other_extensions(video_root):
    assert list_videos(video_root) == EXPECTED_KEYS


def test_build_records_good_and_broken_videos(video_root, tmp_path):
    out = tmp_path / "meta" / "videos_metadata.json"
    meta = build_metadata(video_root, out, workers=0, progress=False)
    assert list(meta) == EXPECTED_KEYS
    assert load_metadata(out) == meta
    for key in meta.values():
        assert set(key) == {"duration", "fps", "frames", "valid", "error"}
    a, b, c = meta["a.mp4"], meta["sub/b.mkv"], meta["c.ts"]
    assert a["valid"] and a["error"] is None
    assert (a["duration"], a["fps"], a["frames"]) == (pytest.approx(2.0), pytest.approx(10.0), 20)
    assert (b["duration"], b["fps"], b["frames"]) == (pytest.approx(3.0), pytest.approx(5.0), 15)
    assert (c["duration"], c["fps"], c["frames"]) == (pytest.approx(3.0), pytest.approx(4.0), 12)
    assert meta["empty.mp4"]["valid"] is False and "empty" in meta["empty.mp4"]["error"]
    assert meta["text.mp4"]["valid"] is False and "cannot open" in meta["text.mp4"]["error"]
    assert meta["truncated.mp4"]["valid"] is False and "truncated" in meta["truncated.mp4"]["error"]
    assert valid_videos(meta) == ["a.mp4", "c.ts", "sub/b.mkv"]


def test_process_pool_gives_the_same_result(video_root, tmp_path):
    serial = build_metadata(video_root, tmp_path / "s.json", workers=0, progress=False)
    pooled = build_metadata(video_root, tmp_path / "p.json", workers=2, executor="process", progress=False)
    assert pooled == serial
    assert json.loads((tmp_path / "p.json").read_text()) == serial


class _InterruptAt:
    """Inspect like the builder, but raise KeyboardInterrupt on call ``n`` (1-based)."""

    def __init__(self, n, out):
        self.n, self.out, self.calls, self.on_disk_at_interrupt = n, out, 0, None

    def __call__(self, root, rel, full_decode):
        self.calls += 1
        if self.calls == self.n:
            self.on_disk_at_interrupt = json.loads(self.out.read_text())
            raise KeyboardInterrupt
        return _inspect_one(root, rel, full_decode)


class _Counting:
    def __init__(self):
        self.seen = []

    def __call__(self, root, rel, full_decode):
        self.seen.append(rel)
        return _inspect_one(root, rel, full_decode)


def test_resume_after_interruption(video_root, tmp_path):
    out = tmp_path / "videos_metadata.json"
    interrupt = _InterruptAt(4, out)
    with pytest.raises(KeyboardInterrupt):
        build_metadata(video_root, out, workers=0, progress=False, save_every=1, inspect=interrupt)
    # periodic saves: the three finished videos were on disk before the interruption
    assert list(interrupt.on_disk_at_interrupt) == EXPECTED_KEYS[:3]
    assert list(load_metadata(out)) == EXPECTED_KEYS[:3]

    counting = _Counting()
    resumed = build_metadata(video_root, out, workers=0, progress=False, inspect=counting)
    assert counting.seen == EXPECTED_KEYS[3:]          # only the missing ones are inspected
    fresh = build_metadata(video_root, tmp_path / "fresh.json", workers=0, progress=False)
    assert resumed == fresh == load_metadata(out)


def test_existing_entries_are_kept(video_root, tmp_path):
    out = tmp_path / "videos_metadata.json"
    kept = {"duration": 99.0, "fps": 1.0, "frames": 99, "valid": True, "error": None}
    out.write_text(json.dumps({"a.mp4": kept}))
    meta = build_metadata(video_root, out, workers=2, executor="thread", progress=False)
    assert meta["a.mp4"] == kept
    assert list(meta) == EXPECTED_KEYS


def test_inspect_video_never_raises(tmp_path):
    entry = inspect_video(tmp_path / "missing.mp4")
    assert entry["valid"] is False and "FileNotFoundError" in entry["error"]
    good = write_test_video(tmp_path / "g.mp4", 10, 10)
    assert inspect_video(good, full_decode=True)["valid"] is True


def test_bad_arguments(video_root, tmp_path):
    with pytest.raises(ValueError):
        build_metadata(tmp_path / "nowhere", tmp_path / "m.json", progress=False)
    with pytest.raises(ValueError):
        build_metadata(video_root, tmp_path / "m.json", executor="gpu", progress=False)


# ---------------------------------------------------------------------------- retries

def _loader(broken: set[int], calls: list[int]):
    def load(i):
        calls.append(i)
        if i in broken:
            raise VideoDecodeError(f"video{i}.mp4", "empty file (0 bytes)")
        return f"item{i}"
    return load


def test_retry_skips_broken_items_with_a_log_line(caplog):
    calls = []
    with caplog.at_level(logging.WARNING, logger="data.metadata"):
        assert load_with_retries(_loader({3, 4}, calls), 3, num_items=10) == "item5"
    assert calls == [3, 4, 5]
    assert len(caplog.records) == 2 and "video3.mp4" in caplog.records[0].getMessage()


def test_retry_gives_up_after_max_tries():
    calls = []
    with pytest.raises(NoValidItemError, match="after 4 tries"):
        load_with_retries(_loader(set(range(10)), calls), 8, num_items=10, max_tries=4)
    assert calls == [8, 9, 0, 1]


def test_retry_with_rng_is_reproducible_and_bugs_propagate():
    a, b = [], []
    load_with_retries(_loader({0, 1, 2, 3, 4}, a), 0, 10, max_tries=50, rng=np.random.default_rng(1))
    load_with_retries(_loader({0, 1, 2, 3, 4}, b), 0, 10, max_tries=50, rng=np.random.default_rng(1))
    assert a == b and a[-1] >= 5

    def buggy(i):
        raise KeyError("not a video problem")

    with pytest.raises(KeyError):
        load_with_retries(buggy, 0, 10)


def test_command_line(video_root, tmp_path, capsys):
    from data.metadata import main

    out = tmp_path / "cli.json"
    assert main([str(video_root), str(out), "--workers", "0"]) == 0
    assert "6 videos, 3 valid" in capsys.readouterr().out
    assert valid_videos(load_metadata(out)) == ["a.mp4", "c.ts", "sub/b.mkv"]
