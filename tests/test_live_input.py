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
    stats = uio.read_json(tmp_path / "a" / "highlights.json")["source_stats"]  # the decoded source's own record
    assert stats == {"samples": 3, "repeated_samples": 0, "max_lag_s": 0.0}
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


def test_a_query_after_the_last_frame_streamed_is_refused_before_the_model_loads(tmp_path, monkeypatch, capsys):
    """A 5.3 s file at 2 fps streams its last frame at 5.0 s: --query_at 5.1 (before the video's end,
    so it passed the check) was never asked, and the run exited 0 with the query in run.json; the
    same with --max_frames cutting the stream. The checkpoint's own fps is used when --fps is not given.
    Likewise a --degrade segment starting after that frame."""
    from pathlib import Path

    from test import live_infer

    count = fakes.install(monkeypatch)
    video = write_test_video(tmp_path / "v.mp4", n_frames=53, fps=10, size=(64, 48))
    ckpt = Path(__file__).resolve().parents[1] / "checkpoints" / "aha-tiny-synth"  # carries fps 2
    for extra, when, last in (([], "5.1", "5"), (["--max_frames", "4"], "1.6", "1.5"),
                              (["--fps", "4", "--max_frames", "4"], "0.8", "0.75"), (["--checkpoint", str(ckpt)], "5.2", "5")):
        argv = _live(video, tmp_path / "o", *extra, "--query_at", f"{when}:a late question")
        if "--fps" not in extra and "--checkpoint" not in extra:
            argv += ["--fps", "2"]
        assert live_infer.main(argv) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--query_at {when}:" in err[0] and f"last frame streamed is at {last} s" in err[0], err
    # a degradation segment there would change no frame streamed (yet run.json would record it)
    (tmp_path / "late.json").write_text('[[5.1, 5.3, "blackout"]]')
    assert live_infer.main(_live(video, tmp_path / "o", "--fps", "2", "--degrade", str(tmp_path / "late.json"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[5.1, 5.3] starts after the last frame streamed (5 s" in err[0], err
    assert not (tmp_path / "o").exists() and count["loads"] == 0
    # a query on the last frame is asked
    assert live_infer.main(_live(video, tmp_path / "o", "--fps", "2", "--query_at", "5:just in time")) == 0
    assert "unused_queries" not in uio.read_json(tmp_path / "o" / "highlights.json")


def test_a_run_killed_mid_stream_leaves_no_highlights_of_the_previous_run(tmp_path, monkeypatch):
    """highlights.json, the plot and the reel are written after the stream: a run into the folder of
    an earlier one that was killed mid-stream (SIGKILL, out of memory) left the earlier run's
    highlights.json (8 frames, no error) beside its own run.json and 2 scored frames."""
    import models.streaming
    from test import live_infer

    fakes.install(monkeypatch)
    video = write_test_video(tmp_path / "v.mp4", n_frames=40, fps=10, size=(64, 48))
    out = tmp_path / "o"
    assert live_infer.main(_live(video, out, "--fps", "2")) == 0
    assert uio.read_json(out / "highlights.json")["n_frames"] == 8 and (out / "scores.png").exists()

    class Killed(fakes.FakeEngine):
        def run(self, frames, *a, **k):
            for i, rec in enumerate(super().run(frames, *a, **k)):
                if i == 2:
                    raise SystemExit(137)  # not an error the run catches: the process dies here
                yield rec

    monkeypatch.setattr(models.streaming, "StreamingEngine", lambda model, tok, cfg: Killed(cfg))
    try:
        live_infer.main(_live(video, out, "--fps", "2", "--max_frames", "6"))
    except SystemExit:
        pass
    assert uio.read_json(out / "run.json")["max_frames"] == 6 and len(uio.read_jsonl(out / "scores.jsonl")) == 2
    assert not (out / "highlights.json").exists() and not (out / "scores.png").exists()


def test_frame_folder_names_must_number_one_sequence(tmp_path):
    """Image k is shown at k / source_fps by its place in the list: a stray image, a repeated
    number or a missing frame used to shift every later frame silently (exit 0)."""
    import pytest

    from data.sources import check_frame_folder, open_source

    cases = {"stray": (["frame_{k}.png"], ["cover.jpg"], "cover.jpg"),
             "repeat": (["{k}.png"], ["01.png"], "same frame number"),
             "format_copy": (["f_{k}.png"], ["f_3.jpg"], "f_3.jpg and f_3.png have the same frame number"),
             "hole": (["f{k:03d}.png"], [], "skip from f002.png to f004.png")}
    for name, (pattern, extra, message) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        for k in range(1, 7):
            if name != "hole" or k != 3:
                Image.new("RGB", (16, 12), (30 * k, 0, 0)).save(folder / pattern[0].format(k=k))
        for e in extra:
            Image.new("RGB", (16, 12)).save(folder / e)
        with pytest.raises(ValueError, match=message):
            check_frame_folder(folder)
        with pytest.raises(ValueError, match=message):
            list(open_source(folder, fps=2, size=16, source_fps=2))
    # what stays accepted: an evenly stepped numbering (every 5th frame kept), names without digits,
    # several counters (date and time), mixed-case suffixes
    ok = {"stepped": [f"f{k * 5}.png" for k in range(4)], "letters": ["a.png", "b.png", "c.png"],
          "stamps": [f"cam2_2026-01-0{d}_0{h}.png" for d in (1, 2) for h in (1, 7)], "case": ["f1.PNG", "f2.png", "f3.png"]}
    for name, names in ok.items():
        folder = tmp_path / f"ok_{name}"
        folder.mkdir()
        for n in names:
            Image.new("RGB", (16, 12)).save(folder / n, format="PNG")
        assert [p.name for p in check_frame_folder(folder)] == names


def test_browser_webcam_frames_dropped_while_behind_are_recorded(tmp_path, monkeypatch):
    """PushedFrames drops frames when the engine is far behind (the queue is full): the samples due
    then show later frames. That used to leave no trace; the run's highlights.json says it."""
    import numpy as np

    from test import demo
    from test.live_infer import LiveRun
    from test.web_streams import PushedFrames

    fakes.install(monkeypatch)
    pushed = PushedFrames(fps=2.0, size=32, idle_timeout=0.3)
    for _ in range(300):  # a burst the consumer has not started on: more than the queue holds
        pushed.put(np.zeros((24, 32, 3), np.uint8))
    assert pushed.stats() == {"received_frames": 300, "dropped_frames": 300 - pushed._q.maxsize}
    args = demo.build_parser().parse_args(["--quiet", "--video", "browser webcam", "--query", "q",
                                           "--output_dir", str(tmp_path / "o"), "--reel_budget", "0"])
    fakes.fake_load_model(args)
    live = LiveRun(args, loaded=(None, None), source=pushed.source(), source_kind="webcam", interactive=True)
    for _ in live.events():
        pass
    live.close_stream()
    result = live.finish()
    assert result["source_stats"] == {"received_frames": 300, "dropped_frames": 300 - pushed._q.maxsize}
    assert uio.read_json(tmp_path / "o" / "highlights.json")["source_stats"]["dropped_frames"] > 0


def test_a_decoded_source_says_which_samples_showed_a_later_frame(tmp_path):
    """A live source that loses frames (or a rate above the source's) makes samples show a later
    frame under their own time; the (time, frame) pairs cannot say so, the source's stats do."""
    from data.sources import open_source

    even = write_test_video(tmp_path / "even.mkv", n_frames=20, fps=10, size=(64, 48))
    src = open_source(even, fps=5, size=32)
    assert len(list(src)) == 10
    assert src.stats() == {"samples": 10, "repeated_samples": 0, "max_lag_s": 0.0}
    # frames 5..14 lost (a camera dropping them while the consumer was behind): 1.0 s without a frame
    times = [k / 10 for k in range(5)] + [k / 10 for k in range(15, 20)]
    holed = write_test_video(tmp_path / "holed.mkv", n_frames=10, fps=10, size=(64, 48), vfr_times=times)
    src = open_source(holed, fps=5, size=32)
    assert [t for t, _ in src] == [i / 5 for i in range(10)]
    stats = src.stats()
    assert stats["repeated_samples"] == 4 and abs(stats["max_lag_s"] - 0.9) < 1e-3, stats  # sample 0.6 s shows the frame at 1.5 s


def test_browser_webcam_frames_get_the_degradation_the_run_records(tmp_path, monkeypatch):
    """The web demo's --degrade schedule (a JSON file) was recorded in a webcam run's run.json but
    never applied: the browser's frames went to the model clean."""
    import json
    import time

    import numpy as np

    from test import demo
    from test.web_streams import Streams

    fakes.install(monkeypatch)
    schedule = tmp_path / "blackout.json"
    schedule.write_text(json.dumps([[0.0, 60.0, "blackout"]]))
    args = demo.build_parser().parse_args(["--quiet", "--degrade", str(schedule), "--fps", "4"])
    fakes.fake_load_model(args)
    model = fakes.FakeEngine().model  # what webcam_input reads: the frame size and resize of the model
    streams = Streams(args, (model, None), tmp_path / "runs")
    spec = streams.webcam_input()
    stream = streams.start("page", spec, ["q"])
    for _ in range(6):  # a white picture for about 0.6 s
        streams.push("page", np.full((24, 32, 3), 255, np.uint8))
        time.sleep(0.1)
    spec.pushed.close()
    stream.thread.join(timeout=30)
    assert not stream.thread.is_alive()
    out = stream.live.out
    assert uio.read_json(out / "run.json")["degradation"] == [[0.0, 60.0, "blackout"]]
    scores = uio.read_jsonl(out / "scores.jsonl")
    assert scores, "no frame was scored"
    # FakeEngine: informative = the frame's mean brightness (a clean white picture, letter-boxed: 0.75)
    assert all(s["informative"] < 0.1 for s in scores), scores


def test_the_highlight_reel_of_a_rotated_video_is_upright(tmp_path):
    """live_infer's highlights.mp4 of a portrait phone video (display matrix) played sideways: the
    reel has no display matrix, so its frames must be written as they are shown."""
    import numpy as np

    from data.video import iter_sampled, probe
    from test.reel import write_highlight_reel

    video = write_test_video(tmp_path / "rot.mp4", n_frames=20, fps=10, size=(64, 48), pattern="quadrants",
                             display=(90, False, False))
    reel = write_highlight_reel(video, [(0.0, 1.0)], tmp_path / "reel.mp4")
    assert reel.frames == 10
    info = probe(reel.path)
    assert (info.width, info.height) == (probe(video).width, probe(video).height) == (48, 64)
    shown = next(iter_sampled(str(video), 10, None)).image.astype(int)
    got = next(iter_sampled(str(reel.path), 10, None)).image.astype(int)
    assert np.abs(shown - got).mean() < 12  # the same picture (re-encoded), not a turned one


def test_the_highlight_reel_of_a_video_with_non_square_pixels_keeps_its_display_aspect(tmp_path):
    """An anamorphic video (64x48 stored, pixels twice as wide as tall: shown 128x48, 8:3) gave a
    64x48 reel with square pixels: it played squeezed to 4:3. The reel has square pixels, so the
    frames must be widened to what a player shows; a SAR below 1 makes the picture taller."""
    from fractions import Fraction

    import av
    import numpy as np

    from data.video import probe
    from test.reel import write_highlight_reel

    picture = np.zeros((48, 64, 3), np.uint8)
    picture[:, :16] = 255  # a white band over the left quarter: it stays a quarter when widened
    for sar, shown in ((Fraction(2, 1), (128, 48)), (Fraction(1, 2), (64, 96))):
        video = tmp_path / f"sar{sar.numerator}{sar.denominator}.mp4"
        with av.open(str(video), "w") as out:
            st = out.add_stream("mpeg4", rate=10)
            st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
            st.codec_context.sample_aspect_ratio = sar
            st.options = {"qmin": "1", "qmax": "2"}
            for i in range(10):
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = i
                for p in st.encode(frame):
                    out.mux(p)
            for p in st.encode():
                out.mux(p)
        with av.open(str(video)) as c:
            assert c.streams.video[0].sample_aspect_ratio == sar
        for seek in (True, False):
            reel = write_highlight_reel(video, [(0.0, 0.5)], tmp_path / "reel.mp4", seek=seek)
            assert reel.frames == 5
            info = probe(reel.path)
            assert (info.width, info.height) == shown, (sar, seek)
            with av.open(str(reel.path)) as c:
                assert c.streams.video[0].sample_aspect_ratio in (None, 0, 1)  # square: played as stored
                img = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(int)
            q = shown[0] // 4
            assert img[:, : q - 3].mean() > 200 and img[:, q + 3:].mean() < 40


def test_the_highlight_reel_holds_exactly_the_segment_frames_of_any_container(tmp_path):
    """The reel sought by the frames' own PTS: H.264 with B-frames in AVI (PTS on the wrong frames;
    data.video repairs them) lost frames, and an MPEG-TS stream starting at a non-zero time, where
    a seek lands by byte estimate, lost the start of a segment."""
    import subprocess

    import imageio_ffmpeg

    from data.video import iter_sampled
    from test.reel import write_highlight_reel
    from tests.videos import read_frame_index

    clean = write_test_video(tmp_path / "v.mp4", n_frames=30, fps=10, size=(64, 48))
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    made = {"avi": ["-bf", "2", "-f", "avi"], "ts": ["-bf", "2", "-output_ts_offset", "5", "-f", "mpegts"]}
    for ext, opts in made.items():
        video = tmp_path / f"v.{ext}"
        subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-i", str(clean), "-c:v", "libx264", *opts, str(video)],
                       check=True, timeout=60)
        # what the model was given: native frame k at k / 10 s
        assert [read_frame_index(s.image) for s in iter_sampled(str(video), 10, None)] == list(range(30))
        for seek in (True, False):
            reel = write_highlight_reel(video, [(1.0, 2.0), (0.25, 0.5)], tmp_path / f"r_{ext}.mp4", seek=seek)
            got = [read_frame_index(s.image) for s in iter_sampled(str(reel.path), 10, None)]
            assert got == [3, 4, *range(10, 20)], (ext, seek, got)


def test_highlights_are_written_before_the_plot_and_the_reel(tmp_path, monkeypatch, capsys):
    """A plot or reel that fails after the stream (an encoder, a full disk) lost highlights.json,
    the online and offline highlights of a stream already scored."""
    import test.postprocess
    from test import live_infer

    fakes.install(monkeypatch)

    def broken(*a, **k):
        raise OSError("no space left on device")

    monkeypatch.setattr(test.postprocess, "plot_scores", broken)
    video = write_test_video(tmp_path / "v.mp4", n_frames=40, fps=10, size=(64, 48))
    assert live_infer.main(_live(video, tmp_path / "o", "--fps", "2")) == 1
    assert "no space left on device" in capsys.readouterr().err
    h = uio.read_json(tmp_path / "o" / "highlights.json")
    assert h["n_frames"] == 8 and "offline_peaks" in h and "online_highlights" in h


def test_a_rate_above_the_folder_rate_is_said(tmp_path, monkeypatch, caplog):
    """--fps above a file's rate is said (each frame repeated); a frame folder's --source_fps was not."""
    import logging

    from test import live_infer

    fakes.install(monkeypatch)
    folder = _frames(tmp_path / "frames", n=4)
    with caplog.at_level(logging.WARNING):
        assert live_infer.main(_live(folder, tmp_path / "o", "--fps", "4", "--source_fps", "1")) == 0
    assert "--fps 4 is above the folder's --source_fps 1" in caplog.text
    assert len(uio.read_jsonl(tmp_path / "o" / "scores.jsonl")) == 16  # 4 s at 4 fps: each image 4 times


def test_an_ffmpeg_bridge_that_dies_silently_is_an_error(tmp_path, monkeypatch):
    """The ffmpeg child of an ffmpeg:/webcam source killed by a signal (out of memory) or failing
    without a message ended the stream like its natural end: fewer frames, exit 0."""
    import pytest

    import data.sources as sources

    nut = write_test_video(tmp_path / "v.nut", n_frames=20, fps=10, size=(64, 48))
    script = f"cat {nut}; exit 3"  # every byte of a whole stream, then a failure with nothing on stderr
    monkeypatch.setattr(sources, "ffmpeg_bridge_command", lambda args, ffmpeg=None: ["sh", "-c", script])
    got = []
    with pytest.raises(RuntimeError, match="exit status 3 and no message"):
        for frame in sources.open_source("ffmpeg:-i camera", fps=10, size=32):
            got.append(frame)
    assert len(got) == 20  # every frame before the failure was given
    monkeypatch.setattr(sources, "ffmpeg_bridge_command", lambda args, ffmpeg=None: ["sh", "-c", f"cat {nut}"])
    assert len(list(sources.open_source("ffmpeg:-i camera", fps=10, size=32))) == 20  # a clean end stays one
    # Ctrl-C reaches the child too (it exits non-zero, maybe saying why): the interruption is what is reported
    import time

    monkeypatch.setattr(sources, "ffmpeg_bridge_command",
                        lambda args, ffmpeg=None: ["sh", "-c", f"cat {nut}; echo 'received signal 2' >&2; exit 255"])
    it = iter(sources.open_source("ffmpeg:-i camera", fps=10, size=32))
    next(it)
    time.sleep(0.5)  # the child has exited
    with pytest.raises(KeyboardInterrupt):
        it.throw(KeyboardInterrupt)


def test_the_ffmpeg_bridge_keeps_the_first_frame_and_its_time(tmp_path):
    """Webcams on Linux and ffmpeg: sources go through the ffmpeg bridge, whose demuxer options
    (fflags=nobuffer) dropped the packet read while probing: frame 0 was lost and every frame was
    stamped one native interval early (frame 1 at 0 s)."""
    from data.sources import open_source
    from tests.videos import read_frame_index

    video = write_test_video(tmp_path / "v.mp4", n_frames=20, fps=10, size=(64, 48))
    got = list(open_source(f"ffmpeg:-i {video}", fps=10, size=None))
    assert [read_frame_index(f) for _, f in got] == list(range(20))
    assert [t for t, _ in got] == [k / 10 for k in range(20)]


def test_a_web_stream_whose_post_processing_fails_reports_it_to_the_page(tmp_path, monkeypatch):
    """A web stream whose plot or reel failed after the stream (a full disk, an encoder) ended its
    worker with AttributeError (its cleanup closed the stream a second time, after the engine was
    freed): the page never got the "failed" event and waited forever with the status "streaming"."""
    import test.postprocess
    from test import demo, live_infer
    from test.web_streams import Streams, check_upload

    fakes.install(monkeypatch)

    def broken(*a, **k):
        raise OSError("no space left on device")

    monkeypatch.setattr(test.postprocess, "plot_scores", broken)
    video = write_test_video(tmp_path / "v.mp4", n_frames=20, fps=10, size=(64, 48))
    args = demo.build_parser().parse_args(["--quiet", "--fps", "2"])
    demo.resolve_model(args)
    streams = Streams(args, live_infer.load_model(args), tmp_path / "web")
    stream = streams.start("page", check_upload(str(video), False), ["q"])
    stream.thread.join(30)
    assert stream.ended.is_set()
    events = []
    while not stream._events.empty():  # what updates() hands the page (it blocks until "done" or "failed")
        events.append(stream._events.get_nowait())
    assert events[-1] == ("failed", "OSError: no space left on device"), events[-3:]
    assert [e[0] for e in events].count("frame") == 4
    assert streams.running() == 0


def test_times_are_printed_without_a_sixtieth_second():
    """At --fps 1.1 frame 66 is at 59.99999999999999 s: the CLI's lines and the web page's chat read
    "00:60.00" for 01:00.00."""
    from test.live_infer import fmt_time

    assert fmt_time(66 / 1.1) == "01:00.00" and fmt_time(119.996) == "02:00.00"
    assert fmt_time(0.0) == "00:00.00" and fmt_time(61.5) == "01:01.50" and fmt_time(59.994) == "00:59.99"


def test_an_interrupted_live_run_exits_130_with_its_partial_outputs(tmp_path, monkeypatch, capsys):
    """Ctrl-C or SIGTERM (a scheduler's kill) mid-stream: the run post-processed what was scored, as it
    should, but exited 1 with "failed: ..." where the error contract (instructions/errors.md) says 130,
    "interrupted; partial outputs are in PATH": a script could not tell a kill from a failure."""
    import os
    import signal

    import models.streaming
    from test import live_infer

    fakes.install(monkeypatch)

    class Killed(fakes.FakeEngine):
        def run(self, frames, *a, **k):
            for i, rec in enumerate(super().run(frames, *a, **k)):
                if i == 2:
                    os.kill(os.getpid(), signal.SIGTERM)  # utils.cli turns it into KeyboardInterrupt
                yield rec

    monkeypatch.setattr(models.streaming, "StreamingEngine", lambda model, tok, cfg: Killed(cfg))
    video = write_test_video(tmp_path / "v.mp4", n_frames=40, fps=10, size=(64, 48))
    out = tmp_path / "o"
    assert live_infer.main(_live(video, out, "--fps", "2")) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"live_infer: interrupted after 2 frames; partial outputs are in {out}", err
    h = uio.read_json(out / "highlights.json")
    assert h["n_frames"] == 2 and h["error"] == "interrupted by the user"
    assert len(uio.read_jsonl(out / "scores.jsonl")) == 2


def test_online_highlights_confirmed_at_the_end_of_the_stream_are_marked(tmp_path, monkeypatch, capsys):
    """A peak in the stream's last seconds is printed "(confirmed at the end of the stream)", 1 s after
    it; highlights.json recorded it like a live one, under a legend saying each was reported
    confirm_delay (3 s) after it happened."""
    import numpy as np

    from test import live_infer

    fakes.install(monkeypatch)

    def bright_at_6s(i, t, h, w):
        return np.full((h, w, 3), 240 if 5.4 <= t < 6.6 else 20, np.uint8)

    video = write_test_video(tmp_path / "v.mp4", n_frames=120, fps=10, size=(64, 48), pattern=bright_at_6s)
    out = tmp_path / "o"
    argv = ["--video", str(video), "--query", "q", "--output_dir", str(out), "--fps", "2", "--reel_budget", "0"]
    assert live_infer.main([*argv, "--max_frames", "16"]) == 0  # the stream ends at 7.5 s
    assert "[00:06.50] online highlight  smoothed score" in capsys.readouterr().out
    (peak,) = uio.read_json(out / "highlights.json")["online_highlights"]
    assert (peak["time"], peak["confirmed_time"], peak["confirmed_at_end_of_stream"]) == (6.5, 7.5, True)
    assert live_infer.main([*argv, "--quiet"]) == 0  # the whole 12 s: confirmed live, 3 s after
    (peak,) = uio.read_json(out / "highlights.json")["online_highlights"]
    assert (peak["time"], peak["confirmed_time"], peak["confirmed_at_end_of_stream"]) == (6.5, 9.5, False)


def test_a_checkpoint_rate_above_the_video_rate_is_said(tmp_path, caplog):
    """Frames repeat when the run samples faster than the video: said for --fps, but not when the rate
    came from the checkpoint (2 frames/s for the shipped model) on a 1 frame/s video."""
    import logging
    from pathlib import Path

    from test import live_infer

    ckpt = Path(__file__).resolve().parents[1] / "checkpoints" / "aha-tiny-synth"
    video = write_test_video(tmp_path / "v.mp4", n_frames=4, fps=1, size=(64, 48))
    from types import SimpleNamespace

    from data.video import probe

    run = SimpleNamespace(fps=None, checkpoint=str(ckpt), max_frames=None, degrade=None, query=["q"], query_at=None)
    with caplog.at_level(logging.WARNING):
        live_infer.check_against_duration(run, probe(video))
    assert "the run's 2 frames/s (the checkpoint's, or the default) is above the video's 1 frames/s" in caplog.text
