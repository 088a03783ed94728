"""data/fetch.py (archive download and resume, rate limiter, retries, yt-dlp errors and options),
data/download_manifest.py (titles) and data/coverage.py (the summary, its CLI, the benchmark scripts).

The end-to-end runs of ``datasets/download.py`` are in tests/test_download.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from data import fetch
from data.coverage import DURATION_CAPS, coverage, duration_ok, format_coverage
from data.coverage import main as coverage_main
from data.download_manifest import Manifest
from tests.videos import write_test_video

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    long = write_test_video(d / "long.mp4", 120, 10, pattern="noisy_index",
                            container_options={"movflags": "faststart"}).read_bytes()   # 12.0 s
    return {"a": write_test_video(d / "a.mp4", 20, 10).read_bytes(), "long": long,      # 2.0 s
            "truncated": long[: len(long) // 2]}


def test_archive_download_resumes_a_partial_file(server, tmp_path):
    data = os.urandom(300_000)
    server.routes["/big.zip"] = ("cut", data, 0.4)
    settings = fetch.FetchSettings(timeout=2, retries=0, backoff=0)
    dest = tmp_path / "big.zip"
    with pytest.raises(fetch.FetchError) as e:
        fetch.fetch_file(f"{server.base}/big.zip", dest, settings)
    assert e.value.retry and not dest.exists()
    have = dest.with_name("big.zip.part").stat().st_size
    assert 0 < have < len(data)
    server.routes["/big.zip"] = ("file", data)
    assert fetch.fetch_file(f"{server.base}/big.zip", dest, settings) == dest
    assert dest.read_bytes() == data and server.log[-1]["range"] == f"bytes={have}-"
    with pytest.raises(fetch.FetchError) as e:
        fetch.fetch_file(f"{server.base}/none.zip", tmp_path / "none.zip", settings)
    assert e.value.unavailable and "404" in e.value.reason


def test_rate_limiter_spaces_starts_across_threads():
    now = [0.0]
    slept = []
    limiter = fetch.RateLimiter(60, clock=lambda: now[0], sleep=lambda s: (slept.append(s), now.__setitem__(0, now[0] + s)))
    starts = []
    for _ in range(4):
        limiter.acquire()
        starts.append(now[0])
    assert starts == [0.0, 1.0, 2.0, 3.0]
    now[0] = 100.0                                   # idle for a while: no burst of saved-up starts
    limiter.acquire()
    limiter.acquire()
    assert now[0] == 101.0
    assert fetch.RateLimiter(None).interval == 0


def test_retries_back_off_exponentially_and_stop_on_permanent_errors():
    waits: list[float] = []
    settings = fetch.FetchSettings(retries=3, backoff=1.0, backoff_max=100.0)
    calls = []

    def flaky(n):
        calls.append(n)
        if n < 4:
            raise fetch.FetchError("timed out")
        return "ok"

    assert fetch.with_retries(flaky, settings, sleep=waits.append) == ("ok", 4)
    assert len(waits) == 3 and all(1.0 * 2 ** k <= w <= 1.0 * 2 ** k + 1.0 for k, w in enumerate(waits))

    def gone(n):
        raise fetch.FetchError("video unavailable", unavailable=True)

    with pytest.raises(fetch.FetchError) as e:
        fetch.with_retries(gone, settings, sleep=waits.append)
    assert e.value.attempts == 1 and e.value.unavailable and len(waits) == 3
    stop = threading.Event()
    stop.set()                                        # Ctrl-C: no further attempt, no back-off wait
    calls.clear()
    t0 = time.monotonic()
    with pytest.raises(fetch.FetchError, match="timed out"):
        fetch.with_retries(flaky, settings, stop=stop)
    assert calls == [1] and time.monotonic() - t0 < 0.5


@pytest.mark.parametrize("message, unavailable, retry", [
    ("ERROR: [youtube] x: Video unavailable. This video has been removed by the uploader", True, False),
    ("ERROR: [youtube] x: Private video. Sign in if you've been granted access", True, False),
    ("ERROR: [youtube] x: Sign in to confirm you’re not a bot. Use --cookies", False, True),
    ("ERROR: [youtube] x: Sign in to confirm your age. This video may be inappropriate", True, False),
    ("ERROR: unable to download video data: HTTP Error 403: Forbidden", False, True),
    ("ERROR: [download] Got error: HTTPConnectionPool: Read timed out.", False, True),
])
def test_youtube_error_messages_are_classified(message, unavailable, retry):
    e = fetch.classify_download_error(message)
    assert (e.unavailable, e.retry) == (unavailable, retry)
    assert e.reason.endswith(message.replace("ERROR: ", ""))


def test_ytdlp_options_pass_network_settings_through(tmp_path):
    s = fetch.FetchSettings(timeout=7, cookies="c.txt", cookies_from_browser="firefox", proxy="socks5://h:1",
                            limit_rate="2M")
    opts = fetch.ytdlp_options(s, tmp_path, lambda d: None)
    assert (opts["socket_timeout"], opts["cookiefile"], opts["cookiesfrombrowser"], opts["proxy"], opts["ratelimit"]) \
        == (7, "c.txt", ("firefox",), "socks5://h:1", 2 * 1024 ** 2)
    assert opts["retries"] == 0 and opts["cachedir"] is False and Path(opts["ffmpeg_location"]).is_file()
    with pytest.raises(ValueError, match="byte rate"):
        fetch.ytdlp_options(fetch.FetchSettings(limit_rate="fast"), tmp_path, lambda d: None)


def test_titles_tsv_is_what_convert_reads(tmp_path):
    m = Manifest(tmp_path)
    m.record("video", "a.mp4", status="done", source="abcdefghijk", extractor="youtube", title='"Quoted"\ttab  title')
    m.record("video", "b.mp4", status="done", source="http://x/b.mp4", extractor="generic", title="b")
    m.record("video", "c.mp4", status="failed", source="ccccccccccc", extractor="youtube", title="c")
    assert m.write_titles(tmp_path / "titles.tsv") == 1
    from data.benchmarks.hisum import read_titles

    assert read_titles(tmp_path / "titles.tsv") == {"abcdefghijk": '"Quoted" tab title'}


# ---------------------------------------------------------------------------------- coverage

def test_coverage_counts_items_and_videos(tmp_path, clips, capsys):
    root = tmp_path / "v"
    root.mkdir()
    (root / "ok.mp4").write_bytes(clips["a"])
    (root / "short.mp4").write_bytes(clips["a"])
    (root / "bad.mp4").write_bytes(clips["truncated"])
    items = [{"id": "1", "video": "ok.mp4", "duration": 2.0}, {"id": "2", "video": "ok.mp4", "duration": 2.5},
             {"id": "3", "video": "short.mp4", "duration": 9.0}, {"id": "4", "video": "bad.mp4", "duration": 12.0},
             {"id": "5", "video": "none.mp4", "duration": 1.0}, {"id": "6", "video": "ok.mp4", "duration": None}]
    cov = coverage(items, root)
    assert (cov["items"], cov["items_valid"], cov["videos"], cov["videos_valid"]) == (6, 3, 4, 1)
    assert cov["items_by_status"] == {"valid": 3, "missing": 1, "invalid": 1, "duration_mismatch": 1}
    assert cov["checked_by"] == {"manifest": 0, "probe": 3, "exists": 1}
    assert coverage(items, root, check="exists")["items_valid"] == 5
    line = format_coverage("x test", cov)
    assert line.startswith("coverage x test: 3 / 6 items (50.0 %) have a valid video; videos 1 / 4 valid")
    assert "missing: 1 videos, 1 items (e.g. none.mp4)" in line
    assert duration_ok(2.0, 3.9) and not duration_ok(2.0, 4.1) and duration_ok(95.0, 100.0) and duration_ok(None, None)
    assert not duration_ok(400.0, 300.0) and duration_ok(400.0, 300.0, at_least=True) and not duration_ok(200.0, 300.0, at_least=True)
    # Mr.HiSum durations stop at 300 s: a longer video is the right one there, not elsewhere
    (root / "long.mp4").write_bytes(clips["long"])                 # 12 s
    capped = [{"id": "h", "dataset": "hisum", "video": "long.mp4", "duration": 300.0},
              {"id": "q", "dataset": "qvh", "video": "long.mp4", "duration": 300.0}]
    assert coverage(capped, root, atol=0.0)["items_by_status"]["duration_mismatch"] == 2
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(DURATION_CAPS, "hisum", 10.0)
        capped[0]["duration"] = 10.0
        assert coverage(capped, root, atol=0.0)["items_by_status"]["duration_mismatch"] == 1
    items_path = tmp_path / "items_test.jsonl"
    items_path.write_text("".join(json.dumps(it) + "\n" for it in items))
    assert coverage_main(["--items", str(items_path), "--video_root", str(root), "--min_coverage", "40"]) == 0
    assert coverage_main(["--items", str(items_path), "--video_root", str(root), "--min_coverage", "60"]) == 3
    assert "coverage items_test.jsonl: 3 / 6 items (50.0 %)" in capsys.readouterr().out


def test_benchmark_scripts_print_coverage_before_they_run(tmp_path, clips):
    root = tmp_path / "v"
    root.mkdir()
    (root / "ok.mp4").write_bytes(clips["a"])
    items = tmp_path / "items_val.jsonl"
    items.write_text(json.dumps({"id": "1", "video": "ok.mp4", "duration": 2.0}) + "\n"
                     + json.dumps({"id": "2", "video": "gone.mp4", "duration": 2.0}) + "\n")
    script = (f'BENCH=cov; DEVICE=cpu; MODEL_CONFIG=aha-tiny; OUT_DIR="{tmp_path}/o"; PYTHON="{sys.executable}"; '
              f'. "{REPO}/scripts/inference/_common.sh"; VIDEO_ROOT="{root}"; print_coverage "{items}"')
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "coverage items_val.jsonl: 1 / 2 items (50.0 %) have a valid video" in res.stdout
    assert 'print_coverage "$items"' in (REPO / "scripts" / "inference" / "_common.sh").read_text()


@pytest.mark.parametrize("suffix,codec", [(".ts", "mpeg2video"), (".mp4", "mpeg4")])
def test_cut_windows_start_and_end_at_their_seconds(tmp_path, suffix, codec):
    """A window [a, b) of a source whose frames encode their index holds exactly the frames shown in
    [a, b), the one at a first. An input-only seek on MPEG-TS began [4, 10) at frame 44 (0.4 s late)."""
    from data.video import iter_frames
    from tests.videos import read_frame_index

    src = write_test_video(tmp_path / f"src{suffix}", 120, 10, codec=codec)   # frame k at k / 10 s
    for (a, b), (first, last) in {(4.0, 10.0): (40, 99), (4.05, 6.0): (41, 59), (0.0, 1.5): (0, 14),
                                  (1.06, 2.0): (11, 19)}.items():  # -t from frame 11 kept frame 20
        clip = fetch.cut(src, tmp_path / f"clip_{a}_{b}.mp4", a, b)
        index = [read_frame_index(frame) for _, frame in iter_frames(clip, fps=10, size=None)]
        assert (index[0], index[-1], len(index)) == (first, last, last - first + 1), (a, b)


def test_a_complete_partial_archive_is_kept_not_downloaded_again(server, tmp_path):
    """A run killed after an archive's last byte but before the rename left the whole file as .part:
    the next run's Range request gets 416 with "Content-Range: bytes */size", and the part, whole,
    was deleted and all of it (Charades: 13 GB) downloaded again. A longer part is still discarded."""
    data = os.urandom(200_000)
    server.routes["/whole.zip"] = ("file", data)
    settings = fetch.FetchSettings(timeout=2, retries=0, backoff=0)
    dest = tmp_path / "whole.zip"
    dest.with_name("whole.zip.part").write_bytes(data)
    assert fetch.fetch_file(f"{server.base}/whole.zip", dest, settings) == dest
    assert dest.read_bytes() == data and not dest.with_name("whole.zip.part").exists()
    assert server.gets("/whole.zip") == 1                           # the one Range request, no body
    dest.unlink()
    dest.with_name("whole.zip.part").write_bytes(data + b"junk")
    with pytest.raises(fetch.FetchError, match="416"):
        fetch.fetch_file(f"{server.base}/whole.zip", dest, settings)
    assert not dest.exists() and not dest.with_name("whole.zip.part").exists()
