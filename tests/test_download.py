"""datasets/download.py end to end against a loopback HTTP server (tests/loopback.py).

The server (127.0.0.1 only) serves small generated videos (tests/videos.py) as direct links, as
HTML pages with a <video> tag (yt-dlp's generic extractor), and misbehaves on request: 404, a
transfer cut short, a truncated file sent whole, a server that stalls or trickles, an archive.
Every test bounds its own time (socket timeouts of a fraction of a second, no real back-off).
The parts (fetch, retries, rate limit, coverage) have their unit tests in tests/test_fetch.py.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from data.download_manifest import MANIFEST_NAME, Manifest
from data.metadata import inspect_video
from data.video import iter_frames, probe
from tests.script_loader import load_script
from tests.videos import read_frame_index, write_test_video
from utils.io import read_jsonl

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "datasets" / "download.py"
# fast settings for every CLI run: no real back-off, short socket timeout
FAST = ["--backoff", "0", "--timeout", "2", "--retries", "1", "--workers", "2"]


dl = load_script("datasets/download.py", "aha_datasets_download", register=True)


# --------------------------------------------------------------------------------- the server

@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Generated videos (bytes): 2-s and 3-s clips, a 12-s source, a broken one."""
    d = tmp_path_factory.mktemp("clips")
    out = {
        "a": write_test_video(d / "a.mp4", 20, 10).read_bytes(),                 # 2.0 s
        "b": write_test_video(d / "b.mp4", 30, 10).read_bytes(),                 # 3.0 s
        "long": write_test_video(d / "long.mp4", 120, 10, pattern="noisy_index",
                                 container_options={"movflags": "faststart"}).read_bytes(),  # 12.0 s
        "webm": write_test_video(d / "c.webm", 20, 10, codec="libvpx").read_bytes(),  # 2.0 s
    }
    out["truncated"] = out["long"][: len(out["long"]) // 2]
    return out


def run_cli(*argv: str) -> int:
    return dl.main([str(a) for a in argv])


def manifest_of(out: Path) -> dict[str, dict]:
    return Manifest(out).records("video")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------- direct URLs and pages

def test_direct_urls_and_generic_page_are_downloaded_verified_and_covered(server, clips, tmp_path, capsys):
    server.routes.update({"/v/a.mp4": ("file", clips["a"]), "/v/b.mp4": ("file", clips["b"]),
                          "/v/c.webm": ("file", clips["webm"]),
                          "/page.html": ("page", '<html><head><title>A page</title></head><body>'
                                                 '<video src="/v/b.mp4"></video></body></html>')})
    urls = write_lines(tmp_path / "urls.txt", [f"{server.base}/v/a.mp4", "# a comment",
                                               f"{server.base}/page.html from_page.mp4",
                                               f"{server.base}/v/c.webm c.mp4"])
    out = tmp_path / "out"
    assert run_cli("--urls", urls, "--out", out, *FAST) == 0
    records = manifest_of(out)
    assert {n: r["status"] for n, r in records.items()} == {"a.mp4": "done", "from_page.mp4": "done", "c.mp4": "done"}
    assert (out / "a.mp4").read_bytes() == clips["a"]                  # a direct file is kept as served
    assert (out / "from_page.mp4").read_bytes() == clips["b"]          # found through the page's <video>
    assert records["from_page.mp4"]["extractor"] != "generic" or records["from_page.mp4"]["title"]
    assert abs(records["a.mp4"]["duration"] - 2.0) < 1e-6 and abs(records["from_page.mp4"]["duration"] - 3.0) < 1e-6
    # the webm source goes into the mp4 container the name asks for (VP8 does not fit: re-encoded), same frames
    assert abs(probe(out / "c.mp4").duration - 2.0) < 0.01
    assert [read_frame_index(img) for _, img in iter_frames(out / "c.mp4", fps=2, size=None)] == [0, 5, 10, 15]
    text = capsys.readouterr().out
    assert "coverage urls.txt: 3 / 3 items (100.0 %) have a valid video" in text
    assert not (out / ".staging").exists() or not any((out / ".staging").iterdir())


def test_404_is_skipped_not_retried_and_retried_on_request(server, clips, tmp_path, capsys):
    server.routes["/v/a.mp4"] = ("file", clips["a"])
    urls = write_lines(tmp_path / "urls.txt", [f"{server.base}/v/a.mp4", f"{server.base}/v/gone.mp4"])
    out = tmp_path / "out"
    assert run_cli("--urls", urls, "--out", out, *FAST) == 0   # skipped is not a failure
    rec = manifest_of(out)["gone.mp4"]
    assert rec["status"] == "skipped" and "404" in rec["reason"] and rec["attempts"] == 1
    assert server.gets("/v/gone.mp4") == 1                       # no retry of a permanent error
    assert "1 / 2 items (50.0 %)" in capsys.readouterr().out
    assert run_cli("--urls", urls, "--out", out, *FAST) == 0
    assert server.gets("/v/gone.mp4") == 1 and server.gets("/v/a.mp4") <= 2  # nothing fetched again
    server.routes["/v/gone.mp4"] = ("file", clips["b"])
    assert run_cli("--urls", urls, "--out", out, *FAST, "--retry_skipped") == 0
    assert manifest_of(out)["gone.mp4"]["status"] == "done"


def test_transfer_cut_short_is_retried_then_failed_then_retried_on_request(server, clips, tmp_path):
    server.routes["/v/cut.mp4"] = ("cut", clips["long"], 0.5)
    urls = write_lines(tmp_path / "urls.txt", [f"{server.base}/v/cut.mp4"])
    out = tmp_path / "out"
    assert run_cli("--urls", urls, "--out", out, *FAST) == 1
    rec = manifest_of(out)["cut.mp4"]
    assert rec["status"] == "failed" and rec["attempts"] == 2 and "truncated" in rec["reason"]
    assert not (out / "cut.mp4").exists()
    n = len(server.log)
    assert run_cli("--urls", urls, "--out", out, *FAST) == 0    # failures wait for --retry_failed
    assert len(server.log) == n
    server.routes["/v/cut.mp4"] = ("file", clips["long"])        # the server recovers
    assert run_cli("--urls", urls, "--out", out, *FAST, "--retry_failed") == 0
    assert manifest_of(out)["cut.mp4"]["status"] == "done"
    assert (out / "cut.mp4").read_bytes() == clips["long"]
    assert any((r["range"] or "").startswith("bytes=") for r in server.log[n:])  # the kept .part was resumed


def test_truncated_file_served_whole_fails_verification(server, clips, tmp_path):
    server.routes["/v/t.mp4"] = ("file", clips["truncated"])
    urls = write_lines(tmp_path / "urls.txt", [f"{server.base}/v/t.mp4"])
    out = tmp_path / "out"
    assert run_cli("--urls", urls, "--out", out, *FAST) == 1
    rec = manifest_of(out)["t.mp4"]
    assert rec["status"] == "failed" and "not a valid video" in rec["reason"] and "truncated" in rec["reason"]
    assert rec["attempts"] == 2 and not (out / "t.mp4").exists()


def test_slow_servers_time_out(server, clips, tmp_path):
    server.routes["/v/stall.mp4"] = ("stall", clips["long"], 3.0)
    server.routes["/v/trickle.mp4"] = ("trickle", clips["long"], 2000, 0.1)
    urls = write_lines(tmp_path / "urls.txt", [f"{server.base}/v/stall.mp4", f"{server.base}/v/trickle.mp4"])
    out = tmp_path / "out"
    t0 = time.monotonic()
    assert run_cli("--urls", urls, "--out", out, "--backoff", "0", "--retries", "0", "--workers", "2",
                   "--timeout", "0.5", "--max_time", "1.0") == 1
    assert time.monotonic() - t0 < 8
    records = manifest_of(out)
    assert records["stall.mp4"]["status"] == "failed" and "timed out" in records["stall.mp4"]["reason"]
    assert records["trickle.mp4"]["status"] == "failed" and "max_time" in records["trickle.mp4"]["reason"]


def test_duration_far_from_the_annotation_is_refused(server, clips, tmp_path):
    server.routes["/yt/abc.mp4"] = ("file", clips["a"])                       # 2 s
    ids = write_lines(tmp_path / "ids.txt", ["abc 0 10"])                     # annotation: a 10-s window
    out = tmp_path / "out"
    assert run_cli("--ids", ids, "--out", out, "--url_template", f"{server.base}/yt/{{id}}.mp4", *FAST) == 1
    rec = manifest_of(out)["abc_0_10.mp4"]
    assert rec["status"] == "failed" and "annotation says 10.00 s" in rec["reason"]
    assert not (out / "abc_0_10.mp4").exists()


# ------------------------------------------------------------------------ resuming and repairs

def test_run_killed_and_resumed(server, clips, tmp_path):
    names = [f"k{i}.mp4" for i in range(6)]
    for i, name in enumerate(names):
        server.routes[f"/v/{name}"] = ("file", clips["a"], 0.0 if i < 2 else 30.0)  # the rest hang
    urls = write_lines(tmp_path / "urls.txt", [f"{server.base}/v/{n}" for n in names])
    out = tmp_path / "out"
    cmd = [sys.executable, str(SCRIPT), "--urls", str(urls), "--out", str(out), "--workers", "1",
           "--backoff", "0", "--timeout", "60"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            path = out / MANIFEST_NAME
            if path.exists() and sum(1 for r in read_jsonl(path) if r.get("status") == "done") >= 2:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the first run never finished two files")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert manifest_of(out).keys() == {"k0.mp4", "k1.mp4"}
    for name in names:
        server.routes[f"/v/{name}"] = ("file", clips["a"])
    before = Counter(r["path"] for r in server.log if r["method"] == "GET")
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    after = Counter(r["path"] for r in server.log if r["method"] == "GET")
    assert after["/v/k0.mp4"] == before["/v/k0.mp4"] and after["/v/k1.mp4"] == before["/v/k1.mp4"]
    assert {n: r["status"] for n, r in manifest_of(out).items()} == dict.fromkeys(names, "done")
    assert "coverage urls.txt: 6 / 6 items (100.0 %)" in res.stdout
    runs = [r for r in read_jsonl(out / MANIFEST_NAME) if r["kind"] == "run"]
    assert [r["event"] for r in runs] == ["start", "start", "end"]   # the killed run left its start


def test_ctrl_c_stops_running_downloads_and_keeps_what_finished(server, clips, tmp_path):
    server.routes["/v/a.mp4"] = ("file", clips["a"])
    # 1 MB at once, then a trickle (~3,000 s): yt-dlp's adaptive buffer grows on the burst's instant
    # reads, and one read of the grown buffer would block through the Ctrl-C (a flake under load)
    server.routes["/v/slow.mp4"] = ("trickle", clips["long"] * 100, 1000, 0.2, 1 << 20)
    urls = write_lines(tmp_path / "urls.txt", [f"{server.base}/v/a.mp4", f"{server.base}/v/slow.mp4"])
    out = tmp_path / "out"
    # the default SIGINT disposition: a test run started in the background (`cmd &` in a script)
    # ignores SIGINT, which its children inherit, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--urls", str(urls), "--out", str(out), "--workers", "2",
                             "--backoff", "30"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not (out / MANIFEST_NAME).exists() or "a.mp4" not in manifest_of(out) \
                or not any(r["path"] == "/v/slow.mp4" for r in server.log):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "run the same command to continue" in err
    assert time.monotonic() - t0 < 10                               # no waiting for the trickle to end
    assert {n: r["status"] for n, r in manifest_of(out).items()} == {"a.mp4": "done"}   # slow.mp4: pending
    assert list((out / ".staging").glob("*/source.mp4.part"))      # its partial download stays for the re-run


def test_corrupt_file_is_replaced_on_the_next_run(server, clips, tmp_path, capsys):
    server.routes["/v/a.mp4"] = ("file", clips["long"])
    urls = write_lines(tmp_path / "urls.txt", [f"{server.base}/v/a.mp4"])
    out = tmp_path / "out"
    assert run_cli("--urls", urls, "--out", out, *FAST) == 0
    video = out / "a.mp4"
    video.write_bytes(clips["truncated"])                         # truncated on disk: size changed
    assert run_cli("--urls", urls, "--out", out, *FAST) == 0
    assert "replacing it" in capsys.readouterr().out
    assert video.read_bytes() == clips["long"] and inspect_video(video)["valid"]
    # same size, same mtime: only --reverify looks again
    st = video.stat()
    broken = bytearray(clips["long"])
    broken[: len(broken) // 3] = bytes(len(broken) // 3)          # the index (faststart: at the front) is gone
    video.write_bytes(bytes(broken))
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns))
    gets = server.gets("/v/a.mp4")
    assert run_cli("--urls", urls, "--out", out, *FAST) == 0
    assert server.gets("/v/a.mp4") == gets                        # trusted: size and mtime unchanged
    assert run_cli("--urls", urls, "--out", out, *FAST, "--reverify") == 0
    assert video.read_bytes() == clips["long"]
    # a valid file dropped in by hand is verified and recorded, not downloaded
    server.routes["/v/b.mp4"] = ("file", clips["b"])
    write_lines(urls, [f"{server.base}/v/a.mp4", f"{server.base}/v/b.mp4"])
    (out / "b.mp4").write_bytes(clips["b"])
    assert run_cli("--urls", urls, "--out", out, *FAST) == 0
    assert server.gets("/v/b.mp4") == 0 and manifest_of(out)["b.mp4"]["status"] == "done"


# ---------------------------------------------------------------------------------- archives

CHARADES_TXT = "AAAAA 0.0 1.5##person opens a door.\nAAAAA 0.5 2.0##person sits.\nBBBBB 0.0 2.5##person eats.\n" \
               "CCCCC 0.0 1.0##person runs.\nDDDDD 0.0 1.0##person reads.\n"
CHARADES_CSV = "id,length\nAAAAA,2.0\nBBBBB,3.0\nCCCCC,30.0\nDDDDD,2.0\n"


@pytest.fixture()
def charades(tmp_path, clips):
    anno = tmp_path / "anno"
    anno.mkdir()
    (anno / "charades_sta_test.txt").write_text(CHARADES_TXT)
    (anno / "Charades_v1_test.csv").write_text(CHARADES_CSV)
    archive = tmp_path / "Charades_v1_480.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("Charades_v1_480/AAAAA.mp4", clips["a"])
        z.writestr("Charades_v1_480/BBBBB.mp4", clips["b"])
        z.writestr("Charades_v1_480/CCCCC.mp4", clips["a"])     # 2 s, the table says 30 s
        z.writestr("../../escape/DDDDD.mp4", clips["a"])         # only the base name is used
    return anno, archive


def test_credentials_in_urls_reach_neither_the_manifest_nor_the_output(server, charades, clips, tmp_path, capsys):
    """A signed URL or user:password@ in a URL is redacted wherever the URL is quoted: the record's
    ``source`` (a --urls entry's key is its URL), the ``reason`` of an HTTP error ("HTTP 404 ...: URL"),
    the archive record, the run's command line, the printed lines and the staging folder's name."""
    server.routes["/v/a.mp4"] = ("file", clips["a"])
    base = server.base.replace("http://", "http://user:pw-SECRET1@")
    urls = write_lines(tmp_path / "urls.txt", [f"{base}/v/a.mp4?token=SECRET2", f"{server.base}/v/b.mp4?sig=SECRET3"])
    out = tmp_path / "out"
    assert run_cli("--urls", urls, "--out", out, *FAST) == 0
    anno, _ = charades
    archive = f"{server.base}/gone.zip?X-Amz-Signature=SECRET4&X-Amz-Credential=SECRET5"
    assert run_cli("charades", "--anno_dir", anno, "--out", out, "--archive", archive, *FAST) == 1
    records = manifest_of(out)
    assert records["a.mp4"]["status"] == "done" and records["b.mp4"]["status"] == "skipped"
    text = (out / MANIFEST_NAME).read_text() + (out / "coverage.json").read_text() + "".join(capsys.readouterr())
    text += " ".join(str(p) for p in out.rglob("*"))
    assert "SECRET" not in text
    assert f"{server.base}/v/b.mp4?sig=***" in text                 # still says which URL it was


def test_archive_with_wrong_checksum_is_refused_then_unpacked_when_right(server, charades, clips, tmp_path, capsys):
    anno, archive = charades
    data = archive.read_bytes()
    server.routes["/Charades_v1_480.zip"] = ("file", data)
    out = tmp_path / "videos"
    args = ["charades", "--anno_dir", anno, "--out", out, "--archive", f"{server.base}/Charades_v1_480.zip", *FAST]
    assert run_cli(*args, "--sha256", "0" * 64) == 1
    records = manifest_of(out)
    assert {r["status"] for r in records.values()} == {"failed"}
    assert all("sha256 mismatch" in r["reason"] for r in records.values())
    assert not list(out.glob("*.mp4")) and not (out / "_archives" / "Charades_v1_480.zip").exists()
    assert Manifest(out).get("archive", "Charades_v1_480.zip")["status"] == "failed"
    capsys.readouterr()
    digest = hashlib.sha256(data).hexdigest()
    assert run_cli(*args, "--sha256", digest, "--retry_failed") == 1          # CCCCC: wrong duration
    records = manifest_of(out)
    assert records["AAAAA.mp4"]["status"] == records["BBBBB.mp4"]["status"] == records["DDDDD.mp4"]["status"] == "done"
    assert (out / "AAAAA.mp4").read_bytes() == clips["a"] and (out / "DDDDD.mp4").read_bytes() == clips["a"]
    assert records["CCCCC.mp4"]["status"] == "failed" and "30.00 s" in records["CCCCC.mp4"]["reason"]
    assert not (tmp_path / "escape").exists() and not (out.parent / "escape").exists()
    text = capsys.readouterr().out
    assert "coverage charades test: 4 / 5 items (80.0 %)" in text
    assert Manifest(out).get("archive", "Charades_v1_480.zip")["sha256"] == digest



def test_archive_without_published_checksum_records_the_first_and_finds_missing_members(charades, tmp_path, capsys):
    anno, archive = charades
    (anno / "Charades_v1_test.csv").write_text(CHARADES_CSV + "EEEEE,2.0\n")
    with open(anno / "charades_sta_test.txt", "a") as f:
        f.write("EEEEE 0.0 1.0##person waves.\n")
    out = tmp_path / "videos"
    assert run_cli("charades", "--anno_dir", anno, "--out", out, "--archive", archive, *FAST) == 1
    assert "no published checksum; recorded sha256 " + hashlib.sha256(archive.read_bytes()).hexdigest() \
        in capsys.readouterr().out
    rec = manifest_of(out)["EEEEE.mp4"]
    assert rec["status"] == "skipped" and "not in Charades_v1_480.zip" in rec["reason"]
    assert archive.exists()                                        # a local archive is never deleted
    with zipfile.ZipFile(archive, "a") as z:                       # the file changes: refused
        z.writestr("extra.txt", "x")
    assert run_cli("charades", "--anno_dir", anno, "--out", out, "--archive", archive, *FAST,
                   "--retry_failed", "--retry_skipped") == 1
    assert "sha256 mismatch" in Manifest(out).get("archive", archive.name)["reason"]


# -------------------------------------------------------------------------- QVHighlights cuts

def test_qvh_windows_are_cut_from_one_download(server, clips, tmp_path):
    anno = tmp_path / "qvh"
    anno.mkdir()
    records = [
        {"qid": 1, "query": "a", "duration": 6, "vid": "src_vid-01_4.0_10.0"},
        {"qid": 2, "query": "b", "duration": 6, "vid": "src_vid-01_4.0_10.0"},
        {"qid": 3, "query": "c", "duration": 4, "vid": "src_vid-01_8.0_14.0"},     # the source ends at 12 s
        {"qid": 4, "query": "d", "duration": 5, "vid": "src_vid-01_20.0_25.0"},    # after the end
    ]
    (anno / "highlight_val_release.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    server.routes["/yt/src_vid-01.mp4"] = ("file", clips["long"])
    out = tmp_path / "out"
    assert run_cli("qvh", "--anno_dir", anno, "--out", out, "--url_template",
                   f"{server.base}/yt/{{youtube_id}}.mp4", *FAST) == 1
    assert server.gets("/yt/src_vid-01.mp4") <= 2                  # one download (generic extractor: 2 GETs)
    m = manifest_of(out)
    assert m["src_vid-01_4.0_10.0.mp4"]["status"] == m["src_vid-01_8.0_14.0.mp4"]["status"] == "done"
    assert m["src_vid-01_20.0_25.0.mp4"]["status"] == "failed" and "after the end" in m["src_vid-01_20.0_25.0.mp4"]["reason"]
    _, first = next(iter(iter_frames(out / "src_vid-01_4.0_10.0.mp4", fps=1, size=None)))
    assert read_frame_index(first) == 40                      # time 0 of the clip = 4.0 s of the source
    assert abs(probe(out / "src_vid-01_4.0_10.0.mp4").duration - 6.0) < 0.15
    assert abs(probe(out / "src_vid-01_8.0_14.0.mp4").duration - 4.0) < 0.15
    assert not list((out / ".staging").glob("*/*")) if (out / ".staging").exists() else True


def test_converted_items_and_annotations_give_the_same_plan(tmp_path, capsys):
    anno = tmp_path / "qvh"
    anno.mkdir()
    lines = [{"qid": 7, "query": "q", "duration": 150, "vid": "a_b-c_d_30.0_180.0"},
             {"qid": 8, "query": "r", "duration": 100, "vid": "xyz_0.0_150.0"}]
    (anno / "highlight_val_release.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    items = tmp_path / "items_val.jsonl"
    assert dl._load_convert().main(["qvh", "--input", str(anno / "highlight_val_release.jsonl"), "--output", str(items)]) == 0
    capsys.readouterr()
    assert run_cli("qvh", "--anno_dir", anno, "--out", tmp_path / "o", "--list") == 0
    from_anno = capsys.readouterr().out
    assert run_cli("qvh", "--items", items, "--out", tmp_path / "o", "--list") == 0
    assert capsys.readouterr().out == from_anno == (
        "https://www.youtube.com/watch?v=a_b-c_d\ta_b-c_d_30.0_180.0.mp4\n"     # ids may hold "_"
        "https://www.youtube.com/watch?v=xyz\txyz_0.0_150.0.mp4\n")
    with pytest.raises(SystemExit) as e:
        run_cli("tvsum", "--items", items, "--out", tmp_path / "o", "--list")
    assert e.value.code == 2 and "not tvsum" in capsys.readouterr().err


# ------------------------------------------------------------------------ pass-through options

def test_proxy_and_cookies_reach_the_server(server, clips, tmp_path):
    server.routes["/v/p.mp4"] = ("file", clips["a"])
    server.routes["/v/c.mp4"] = ("cookie", "session=s3cret", clips["b"])
    urls = write_lines(tmp_path / "urls.txt", ["http://videos.invalid/v/p.mp4"])
    out = tmp_path / "out"
    proxy = server.base.replace("http://", "http://user:pa55word@")
    assert run_cli("--urls", urls, "--out", out, "--proxy", proxy, *FAST) == 0
    assert any(r["proxied"] for r in server.log) and manifest_of(out)["p.mp4"]["status"] == "done"
    assert "pa55word" not in (out / MANIFEST_NAME).read_text()          # credentials are never written out
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\ts3cret\n")
    urls = write_lines(tmp_path / "urls2.txt", [f"{server.base}/v/c.mp4"])
    assert run_cli("--urls", urls, "--out", out, *FAST) == 1          # 403 without the cookie
    assert run_cli("--urls", urls, "--out", out, *FAST, "--cookies", cookies, "--retry_failed") == 0
    assert any(r["cookie"] == "session=s3cret" for r in server.log)



# ------------------------------------------------------------------ id lists and entry points

def _count_plan(benchmark, split):
    args = argparse.Namespace(items=None, benchmark=benchmark, anno_dir=None, split=[split], anno=None, video_template=None)
    items = dl.load_items(args)[split]
    sources = dl.plan(benchmark, {split: items}, "archive" if benchmark == "charades" else "url", None)
    return items, sources


def test_an_invalid_annotation_line_names_the_way_around_it_that_download_takes(tmp_path):
    # the converter's own hint ("pass --on_invalid skip") names a flag download.py does not take
    # (the real Charades-STA train file has four reversed spans): the message says to convert with
    # datasets/convert.py --on_invalid skip and pass --items instead
    (tmp_path / "charades_sta_test.txt").write_text("AAAAA 0.0 5.0##a person sits.\nBBBBB 8.0 7.0##a person turns.\n")
    (tmp_path / "Charades_v1_test.csv").write_text("id,length\nAAAAA,30.0\nBBBBB,30.0\n")
    args = argparse.Namespace(items=None, benchmark="charades", anno_dir=str(tmp_path), split=["test"], anno=None,
                              video_template=None)
    with pytest.raises(ValueError) as err:
        dl.load_items(args)
    msg = str(err.value)
    assert "charades_sta_test.txt:2" in msg and "reversed" in msg
    assert "pass --on_invalid skip to drop" not in msg
    assert "datasets/convert.py charades" in msg and "--on_invalid skip" in msg and "--items ITEMS.jsonl" in msg
    with pytest.raises(SystemExit) as exit_:
        run_cli("charades", "--out", str(tmp_path / "v"), "--anno_dir", str(tmp_path), "--list")
    assert exit_.value.code == 2


def test_id_lists_come_from_the_real_annotations(shared_data):
    items, sources = _count_plan("qvh", "val")
    lines = (shared_data / "qvhighlights" / "highlight_val_release.jsonl").read_text().splitlines()
    vids = {json.loads(line)["vid"] for line in lines if line.strip()}
    assert len(items) == len(lines) and {t.name for s in sources for t in s.targets} == {f"{v}.mp4" for v in vids}
    assert {s.key for s in sources} == {v.rsplit("_", 2)[0] for v in vids}
    assert all(s.url == f"https://www.youtube.com/watch?v={s.key}" for s in sources)
    t = next(t for s in sources for t in s.targets if t.name == "bP5KfdFJzC4_660.0_810.0.mp4")
    assert t.window == (660.0, 810.0) and t.expected == 126.0   # the video ends before the window does
    items, sources = _count_plan("charades", "test")
    assert len(sources) == 1 and len(sources[0].targets) == len({i["id"].split("#")[0] for i in items}) == 1334
    items, sources = _count_plan("hisum", "test")
    assert len(items) == 2000 and all(len(s.key) == 11 for s in sources)
    capped = {i["video"] for i in items if i["duration"] == 300.0}
    assert capped and {t.name for s in sources for t in s.targets if t.at_least} == capped
    items, sources = _count_plan("youcook2", "val")
    assert {s.key for s in sources} == {k[2:] for k in json.loads((shared_data / "youcook2" / "yc2_val.json").read_text())}


def test_module_and_script_entry_points(tmp_path):
    ids = write_lines(tmp_path / "ids.txt", ["abcdefghijk", "xyz 1.5 3"])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-m", "datasets.download", "--ids", str(ids), "--out", str(tmp_path / "o"),
                          "--list"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["https://www.youtube.com/watch?v=abcdefghijk\tabcdefghijk.mp4",
                                       "https://www.youtube.com/watch?v=xyz\txyz_1.5_3.mp4"]
    # a regular package named "datasets" (HuggingFace's) shadows the folder for -m; the script path still works
    fake = tmp_path / "site" / "datasets"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    env["PYTHONPATH"] = str(tmp_path / "site")
    shadowed = subprocess.run([sys.executable, "-m", "datasets.download", "--help"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60)
    assert shadowed.returncode != 0 and "datasets.download" in shadowed.stderr
    res = subprocess.run([sys.executable, str(SCRIPT), "--ids", str(ids), "--out", str(tmp_path / "o"), "--list"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 2, res.stderr


def test_bad_input_is_a_usage_error(tmp_path, capsys):
    bad = write_lines(tmp_path / "ids.txt", ["a 3 1"])
    with pytest.raises(SystemExit) as e:
        run_cli("--ids", bad, "--out", tmp_path / "o")
    assert e.value.code == 2 and "START < END" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        run_cli("qvh", "--ids", bad, "--out", tmp_path / "o")
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        run_cli("qvh", "--anno_dir", tmp_path, "--out", tmp_path / "o")
    assert e.value.code == 2 and "highlight_val_release.jsonl" in capsys.readouterr().err
    good = write_lines(tmp_path / "good.txt", ["abc"])
    (tmp_path / "o").mkdir()
    with open(tmp_path / "o" / ".download.lock", "w") as held:       # another run is writing there
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SystemExit) as e:
            run_cli("--ids", good, "--out", tmp_path / "o")
    assert e.value.code == 2 and "another download is running" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        run_cli("--ids", good, "--out", tmp_path / "o", "--url_template", "http://x/{nope}")
    assert e.value.code == 2 and "unknown placeholder 'nope'" in capsys.readouterr().err
