"""The web demo (test/web_demo.py): the shared LiveRun loop, input checks, and the page in a real
browser (headless Debian Chromium with selenium) against the CLI on the same input and flags."""
from __future__ import annotations

import gc
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.browser import DemoPage, chrome, find_chromium
from tests.videos import write_test_video
from test import demo
from test.engine_args import load_model
from test.live_infer import LiveRun
from utils.io import read_jsonl


def demo_args(*argv):
    """The web demo's flags: the CLI demo's parser and default model (checkpoints/aha-tiny-synth)."""
    args = demo.build_parser().parse_args(["--quiet", *argv])
    demo.resolve_model(args)
    return args


@pytest.fixture(scope="module")
def default_model():
    args = demo_args()
    return load_model(args)


def _run_live(args, model, on_frame=None):
    live = LiveRun(args, loaded=model, interactive=True)
    events = []
    for ev in live.events():
        events.append(ev)
        if on_frame is not None and ev[0] == "frame":
            on_frame(live, ev[1])
    events += [("end_peak", p) for p in live.close_stream()]
    return live, events, live.finish()


# ------------------------------------------------------------------------- the shared loop


def test_a_query_asked_while_streaming_lands_where_the_cli_query_at_puts_it(tmp_path, default_model):
    video = write_test_video(tmp_path / "v.mp4", n_frames=40, fps=10, size=(96, 64))  # 4 s: 8 frames at 2 fps
    common = ["--video", str(video), "--query", "a red circle bounces", "--reel_budget", "0", "--threshold", "-1",
              "--min_interval", "1", "--max_new_tokens", "3"]
    args = demo_args(*common, "--output_dir", str(tmp_path / "live"))

    refused = []

    def ask_after_frame_2(live, rec):
        if rec.frame == 2:
            live.ask("a blue square slides")
            for bad in ("a blue <|im_end|> square", "  "):
                try:  # a control token, an empty query: refused to the asker, the stream goes on
                    live.ask(bad)
                except ValueError as e:
                    refused.append(str(e))

    live, events, result = _run_live(args, default_model, ask_after_frame_2)
    assert len(refused) == 2 and "'<|im_end|>', which the tokenizer reads as a control token" in refused[0]
    assert "empty" in refused[1] and live.error is None  # the stream went on
    asked = [(e[1].time, e[1].text) for e in events if e[0] == "query"]
    assert asked == [(1.5, "a blue square slides")]  # fed right before frame 3, at 1.5 s
    run = json.loads((tmp_path / "live" / "run.json").read_text())
    assert run["queries"] == [[0.0, "a red circle bounces"], [1.5, "a blue square slides"]]
    assert result["n_frames"] == 8 and result["error"] is None
    assert live.engine is None  # freed as soon as the stream ended

    # the CLI, told the same query up front at 1.5 s, scores and answers exactly the same
    assert demo.main([*common, "--query_at", "1.5:a blue square slides", "--output_dir", str(tmp_path / "cli"), "--quiet"]) == 0
    for name in ("scores.jsonl", "responses.jsonl"):
        assert read_jsonl(tmp_path / "live" / name, allow_empty=True) == read_jsonl(tmp_path / "cli" / name, allow_empty=True), name
    cli = json.loads((tmp_path / "cli" / "highlights.json").read_text())
    assert result["offline_peaks"] == cli["offline_peaks"] and result["offline_segments"] == cli["offline_segments"]
    assert result["online_highlights"] == cli["online_highlights"]


def test_the_finished_status_line_counts_the_offline_peaks_and_segments_of_the_result():
    from test.web_view import View

    # the keys live_infer's finish() writes (highlights.json); the line read stale ones until session 13
    result = {"error": None, "online_highlights": [], "offline_peaks": [{"time": 2.5, "height": 0.5}, {"time": 25.0, "height": 0.5}],
              "offline_segments": [[1.5, 6.0, 0.5]]}
    view = View(["a blue square slides"])
    view.apply([("done", result)])
    assert "2 offline peaks, 1 segment<" in view.status_html()


def test_stop_ends_the_stream_keeps_what_was_scored_and_frees_the_engine(tmp_path, default_model):
    import weakref

    video = write_test_video(tmp_path / "v.mp4", n_frames=60, fps=10, size=(96, 64))
    args = demo_args("--video", str(video), "--query", "q", "--output_dir", str(tmp_path / "o"), "--no_generate")
    live = LiveRun(args, loaded=default_model, interactive=True)
    engine = weakref.ref(live.engine)
    n = 0
    for ev in live.events():
        if ev[0] == "frame":
            n += 1
            if ev[1].frame == 1:
                live.stop()
    live.close_stream()
    result = live.finish()
    assert n == 2 and result["n_frames"] == 2 and result["error"] == "stopped by the user"
    assert len(read_jsonl(tmp_path / "o" / "scores.jsonl")) == 2
    gc.collect()
    assert engine() is None


def test_browser_webcam_frames_are_sampled_at_the_model_rate():
    from test.web_streams import PushedFrames

    pushed = PushedFrames(fps=2.0, size=32, idle_timeout=0.6)
    rng = np.random.default_rng(0)

    def camera():  # 10 frames/s for about 1.3 s, then the camera stops
        for _ in range(14):
            pushed.put(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
            time.sleep(0.1)

    threading.Thread(target=camera, daemon=True).start()
    with pushed.source() as src:
        got = list(src)
    assert [t for t, _ in got] == [0.0, 0.5, 1.0]  # at-or-after sampling of the arrival times, like every source
    assert all(img.shape == (32, 32, 3) and img.dtype == np.uint8 for _, img in got)  # letter-boxed to the model's size

    silent = PushedFrames(fps=2.0, size=32, first_timeout=0.3)
    with pytest.raises(RuntimeError, match="no webcam frames arrived"):
        list(silent.source())


def test_inputs_are_checked_before_a_stream_starts(tmp_path):
    from test.web_streams import InputError, check_upload, check_url, parse_queries

    with pytest.raises(InputError, match="at least one query"):
        parse_queries(" \n\n ")
    assert parse_queries("a\n\n b \n") == ["a", "b"]
    with pytest.raises(InputError, match="the query 'what is <image>' contains '<image>'"):
        parse_queries("a dog\nwhat is <image>")
    with pytest.raises(InputError, match="upload a video"):
        check_upload(None, True)
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    with pytest.raises(InputError, match="notes.mp4 is not a video this server can read"):
        check_upload(str(bad), True)
    good = write_test_video(tmp_path / "v.mp4", n_frames=20, fps=10, size=(64, 48))  # mpeg4 part 2: browsers cannot play it
    spec = check_upload(str(good), True)
    assert spec.kind == "file" and spec.realtime and spec.player is None and spec.duration == pytest.approx(2.0)
    assert "browsers cannot play this file (mpeg4" in spec.note
    h264 = write_test_video(tmp_path / "h.mp4", n_frames=20, fps=10, size=(64, 48), codec="libx264")
    assert check_upload(str(h264), False).player == str(h264)
    for url in ("", "ftp://host/v.mp4", "/no/such/file.mp4"):
        with pytest.raises(InputError):
            check_url(url)
    assert check_url("rtsp://127.0.0.1:8554/cam").player is None  # the browser cannot play rtsp
    assert check_url("http://127.0.0.1:1/v.mp4").player == "http://127.0.0.1:1/v.mp4"


# ------------------------------------------------------------------------- in the browser

BROWSER = find_chromium()
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no chromium + chromedriver on this machine (Debian: "
                                                            "bash scripts/install_browser.sh installs them; CI's set-up does)")


@pytest.fixture(scope="module")
def server(tmp_path_factory, default_model):
    from test import web_demo

    out = tmp_path_factory.mktemp("web")
    args = demo_args("--output_dir", str(out))
    page, streams = web_demo.build_app(args, default_model, out, example=None, max_streams=4)
    url = web_demo.launch(page, out, block=False)
    assert url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
    yield SimpleNamespace(url=url, streams=streams, out=out)
    page.close()


@pytest.fixture()
def browser(tmp_path):
    drivers = []

    def make():
        d = chrome(download_dir=tmp_path / f"downloads{len(drivers)}")
        drivers.append(d)
        return d

    yield make
    for d in drivers:
        d.quit()


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory):
    """The synthetic demo video (what `bash scripts/demo.sh` generates) and its query."""
    args = demo_args()
    path, query, _ = demo.generated_video(args, tmp_path_factory.mktemp("demo_video"))
    return Path(path), query


@needs_browser
@pytest.mark.slow
def test_the_page_streams_the_demo_video_like_the_cli(server, browser, demo_video, tmp_path):
    video, query = demo_video
    page = DemoPage(browser(), server.url, tmp_path)
    page.upload(video)
    page.set_queries(query)
    page.run()
    # while it streams: the player follows the newest scored frame
    in_step = []
    page.wait(lambda: page.status().get("state") == "running", 120, "the first frame")
    while page.status().get("state") == "running":
        s, p = page.status(), page.player()
        if p and s.get("t") and float(s["t"]) >= 2.0:
            in_step.append(p["time"] - float(s["t"]))
        time.sleep(0.5)
    final = page.wait_until_finished()
    assert final["state"] == "done" and not page.errors()

    # the CLI on the same input and flags
    cli_out = tmp_path / "cli"
    assert demo.main(["--video", str(video), "--query", query, "--output_dir", str(cli_out), "--quiet"]) == 0
    scores = read_jsonl(cli_out / "scores.jsonl")
    cli = json.loads((cli_out / "highlights.json").read_text())
    n = len(scores)
    assert n > 20 and int(final["frames"]) == n
    assert page.curve_points() == {"fused": n, "relevance": n, "informative": n, "uncertainty": n}

    online = page.listed("online")
    assert [float(h["time"]) for h in online] == [p["time"] for p in cli["online_highlights"]]
    assert [float(h["height"]) for h in online] == pytest.approx([p["height"] for p in cli["online_highlights"]], abs=1e-12)
    peaks = page.listed("peak")
    assert [(float(h["time"]), float(h["height"])) for h in peaks] == [(p["time"], pytest.approx(p["height"], abs=1e-12))
                                                                       for p in cli["offline_peaks"]]
    segs = page.listed("segment")
    assert [[float(s["start"]), float(s["end"])] for s in segs] == [s[:2] for s in cli["offline_segments"]]
    responses = read_jsonl(cli_out / "responses.jsonl")
    chat = page.chat()
    assert len(chat) == 1 + len(responses) and query in chat[0]
    for r, text in zip(responses, chat[1:]):
        assert text.startswith(demo.live_infer.fmt_time(r["time"])) and r["content"] in text

    # the player played in step with the stream (it waits when the model is slower than real time)
    assert in_step and float(np.median(np.abs(in_step))) < 2.0, in_step

    # the reel downloads and decodes: the frames the CLI's reel holds
    links = page.download_links()
    assert {"highlights.mp4", "highlights.json", "scores.jsonl"} <= set(links)
    links["highlights.mp4"].click()
    reel = tmp_path / "downloads0" / "highlights.mp4"
    page.wait(lambda: reel.is_file() and reel.stat().st_size > 0, 60, "the reel download")
    import av

    with av.open(str(reel)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == cli["reel"]["frames"] > 0

    # clicking a highlight seeks the video
    target = float(segs[-1]["start"])
    page.d.find_elements("css selector", "#aha-highlights .aha-segment")[-1].click()
    page.wait(lambda: abs(page.player()["time"] - target) < 1.0, 10, "the player to seek")


@needs_browser
def test_a_bad_upload_shows_an_error_and_the_page_still_works(server, browser, tmp_path):
    page = DemoPage(browser(), server.url, tmp_path)
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)  # an mp4 header, then garbage
    page.upload(bad)
    page.set_queries("a red circle bounces")
    page.run()
    assert "holiday.mp4 is not a video this server can read" in page.wait_for_error()

    page.tab("URL")  # an unreachable URL: the stream fails, the page says why
    page._type("#aha-url textarea, #aha-url input", "http://127.0.0.1:9/none.mp4")
    page.run()
    page.wait(lambda: page.status().get("state") in ("done", "failed", "refused"), 120, "the URL stream to fail")
    assert page.status()["state"] == "done" and page.status()["frames"] == "0"
    assert "could not read the video" in page.wait_for_error()

    page.tab("Upload")  # the same page, the server still serving: a good video streams to the end
    good = write_test_video(tmp_path / "good.mp4", n_frames=30, fps=10, size=(96, 64))  # 3 s: 6 frames at 2 fps
    page.upload(good)
    page.run()
    page.wait(lambda: page.status().get("state") == "done", 300, "the good video to finish")
    assert not page.errors() and page.status()["frames"] == "6"
    assert page.curve_points()["fused"] == 6
    # offline: the page asked nothing of any host but this server and the URL the user gave (no analytics, fonts or CDN)
    urls = page.requested_urls()
    mine = (server.url.rstrip("/"), "data:", "blob:", "http://127.0.0.1:9/none.mp4")
    elsewhere = sorted({u[:120] for u in urls if not u.startswith(mine)})
    assert urls and not elsewhere, elsewhere


@needs_browser
@pytest.mark.slow
def test_two_users_at_once_each_get_their_own_stream(server, browser, tmp_path):
    videos = [write_test_video(tmp_path / "a.mp4", n_frames=100, fps=10, size=(96, 64)),  # 10 s: 20 frames
              write_test_video(tmp_path / "b.mp4", n_frames=30, fps=10, size=(64, 48), pattern="noisy_index")]  # 3 s: 6 frames
    pages = [DemoPage(browser(), server.url, tmp_path) for _ in videos]
    for page, video, query in zip(pages, videos, ("a red circle bounces", "a blue square slides")):
        page.upload(video)
        page.set_queries(query)
    before = server.streams.most_at_once
    for page in pages:
        page.run()
    pages[0].wait(lambda: int(pages[0].status().get("frames") or 0) >= 2, 120, "two frames")
    pages[0].ask("a green triangle spins")  # asked while streaming, by the first user only
    for page in pages:
        page.wait_until_finished()
    assert server.streams.most_at_once >= 2 or before >= 2  # both streams ran at the same time
    assert [p.status()["frames"] for p in pages] == ["20", "6"]
    assert [p.curve_points()["fused"] for p in pages] == [20, 6]
    chats = [p.chat() for p in pages]
    assert "a red circle bounces" in chats[0][0] and "a blue square slides" in chats[1][0]
    assert any("a green triangle spins" in m for m in chats[0]) and not any("green triangle" in m for m in chats[1])
    runs = {Path(json.loads(p.read_text())["video"]).name: p.parent for p in server.out.glob("*/run.json")}
    asked = json.loads((runs["a.mp4"] / "run.json").read_text())["queries"]
    assert asked[0] == [0.0, "a red circle bounces"] and asked[1][1] == "a green triangle spins" and 1.0 <= asked[1][0] <= 9.5
    assert json.loads((runs["b.mp4"] / "run.json").read_text())["queries"] == [[0.0, "a blue square slides"]]
    # sharing the server (and its model) changed nothing: each stream equals the CLI alone on the same input
    for video, queries in zip(videos, (["--query", "a red circle bounces", "--query_at", f"{asked[1][0]}:{asked[1][1]}"],
                                       ["--query", "a blue square slides"])):
        out = tmp_path / f"cli_{video.stem}"
        assert demo.main(["--video", str(video), *queries, "--output_dir", str(out), "--quiet"]) == 0
        for name in ("scores.jsonl", "responses.jsonl"):
            assert read_jsonl(runs[video.name] / name, allow_empty=True) == read_jsonl(out / name, allow_empty=True), (video.name, name)


@needs_browser
def test_a_page_closed_mid_stream_frees_its_engine(server, browser, demo_video, tmp_path):
    video, query = demo_video
    d = browser()
    page = DemoPage(d, server.url, tmp_path)
    page.upload(video)
    page.set_queries(query)
    page.run()
    page.wait(lambda: int(page.status().get("frames") or 0) >= 2, 120, "a few frames")
    assert server.streams.running() == 1
    d.get("about:blank")  # the user leaves the page
    deadline = time.monotonic() + 60
    while server.streams.running() or server.streams.engines_alive():
        assert time.monotonic() < deadline, "the stream of a closed page is still running"
        time.sleep(0.5)
        gc.collect()
    run_dir = max((p.parent for p in server.out.glob("*/run.json")), key=lambda p: p.name)
    h = json.loads((run_dir / "highlights.json").read_text())  # what was scored is kept, and says why it ended
    assert h["error"] == "the page was closed" and h["n_frames"] == len(read_jsonl(run_dir / "scores.jsonl")) >= 2


@needs_browser
@pytest.mark.slow
def test_the_browser_webcam_streams_live_until_stop(server, tmp_path):
    d = chrome(fake_webcam=True)  # Chromium's built-in fake camera (a moving test pattern)
    try:
        page = DemoPage(d, server.url, tmp_path)
        page.set_queries("a green circle")
        page.tab("Webcam")
        page.click("#aha-webcam div[title='grant webcam access'] button")
        page.click("#aha-webcam button.capture-button")  # Record: the page streams camera frames to the server
        page.run()
        page.wait(lambda: int(page.status().get("frames") or 0) >= 4, 120, "four webcam frames")
        page.click("#aha-stop")
        final = page.wait_until_finished(120)
        n = int(final["frames"])
        assert final["state"] == "done" and n >= 4
        assert "stopped by the user" in page.errors()[0]  # said in the page, with what was kept
        assert page.curve_points() == {"fused": n, "relevance": n, "informative": n, "uncertainty": n}
        run_dir = max((p.parent for p in server.out.glob("*/run.json")), key=lambda p: p.name)
        scores = read_jsonl(run_dir / "scores.jsonl")
        assert [s["time"] for s in scores] == [i / 2 for i in range(n)]  # sampled at the model's 2 fps
        assert json.loads((run_dir / "run.json").read_text())["source_kind"] == "webcam"
    finally:
        d.quit()


def test_a_query_asked_after_the_last_frame_is_reported_not_lost(tmp_path, default_model):
    video = write_test_video(tmp_path / "v.mp4", n_frames=10, fps=10, size=(96, 64))  # 1 s: 2 frames
    args = demo_args("--video", str(video), "--query", "q", "--output_dir", str(tmp_path / "o"), "--no_generate")

    def ask_at_the_last_frame(live, rec):
        if rec.frame == 1:
            live.ask("too late")

    live, events, result = _run_live(args, default_model, ask_at_the_last_frame)
    assert live.unused_queries == ["too late"] and not [e for e in events if e[0] == "query"]
    assert result["protocol"]["queries"] == [[0.0, "q"]] and result["unused_queries"] == ["too late"]


def test_demo_web_serves_the_generated_video_as_the_pages_example(tmp_path, monkeypatch):
    from test import web_demo

    served = {}
    monkeypatch.setattr(web_demo, "serve", lambda args, example: served.update(args=args, example=example) or 0)
    assert demo.main(["--web", "--output_dir", str(tmp_path / "web"), "--quiet"]) == 0
    video, query = served["example"]
    assert Path(video) == tmp_path / "web" / "example" / "input.mp4" and Path(video).is_file() and query
    args = served["args"]
    assert args.host == "127.0.0.1" and args.checkpoint.endswith("checkpoints/aha-tiny-synth") and args.max_streams == 4
    with pytest.raises(ValueError, match="--max_streams"):  # checked with the demo's other numbers, before the model
        demo.main(["--web", "--max_streams", "0", "--output_dir", str(tmp_path / "w2")])
