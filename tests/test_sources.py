"""data/sources.py: every source kind yields (time, frame) with the same sampling rule."""
from __future__ import annotations

import functools
import http.server
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

from data.sources import (
    check_frame_folder,
    detect_kind,
    device_input_args,
    list_frame_files,
    open_source,
    paced,
    webcam_open_args,
)
from data.upright import load_rgb
from data.video import VideoTruncatedError, iter_frames, letterbox
from tests.videos import index_pattern, quadrant_pattern, read_frame_index, write_test_video

BOX64 = (0, 8, 64, 48)  # 64x48 inside a 64x64 letterbox


def indices(frames) -> list[int]:
    return [read_frame_index(f, box=BOX64) for _, f in frames]


# ---------------------------------------------------------------------------- kind detection

def test_detect_kind(tmp_path):
    video = write_test_video(tmp_path / "v.mp4", 3, 10)
    fifo = tmp_path / "p.fifo"
    os.mkfifo(fifo)
    assert detect_kind(video) == "file"
    assert detect_kind(tmp_path) == "frames"
    assert detect_kind(fifo) == "pipe"
    assert detect_kind("-") == "pipe" and detect_kind("pipe:0") == "pipe"
    assert detect_kind("follow:/tmp/x.ts") == "growing"
    assert detect_kind(video, follow=True) == "growing"
    assert detect_kind("rtsp://cam.local/stream") == "url"
    assert detect_kind("https://host/live/index.m3u8") == "url"
    assert detect_kind("webcam") == "webcam" and detect_kind("webcam:1") == "webcam"
    assert detect_kind("/dev/video2") == "webcam"
    with pytest.raises(FileNotFoundError):
        detect_kind(tmp_path / "missing.mp4")


def test_webcam_open_args_per_platform():
    assert webcam_open_args("webcam", "linux") == ("/dev/video0", "v4l2")
    assert webcam_open_args("webcam:2", "linux") == ("/dev/video2", "v4l2")
    assert webcam_open_args("/dev/video1", "linux") == ("/dev/video1", "v4l2")
    assert webcam_open_args("webcam:0", "darwin") == ("0", "avfoundation")
    assert webcam_open_args("webcam:Integrated Camera", "win32") == ("video=Integrated Camera", "dshow")
    with pytest.raises(ValueError, match="by name"):
        webcam_open_args("webcam:0", "win32")


# ------------------------------------------------------------------------------- file / folder

def test_file_source_equals_iter_frames(tmp_path):
    path = write_test_video(tmp_path / "v.mp4", 30, 10)
    with open_source(path, fps=4, size=64) as src:
        assert src.kind == "file"
        got = list(src)
    ref = list(iter_frames(path, fps=4, size=64))
    assert [t for t, _ in got] == [t for t, _ in ref]
    for (_, a), (_, b) in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    assert indices(got) == [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28]


def test_frame_folder_natural_order_and_sampling(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(12):  # frame_1.png .. frame_12.png: plain string order would put 10 before 2
        Image.fromarray(index_pattern(k, 0.0, 48, 64)).save(folder / f"frame_{k + 1}.png")
    (folder / "notes.txt").write_text("ignored")
    assert [p.name for p in list_frame_files(folder)][:3] == ["frame_1.png", "frame_2.png", "frame_3.png"]
    src = open_source(folder, fps=4, size=64, source_fps=6)
    got = list(src)
    # image k shows at k/6; targets i/4 < 12/6 = 2 s -> images ceil(6 i / 4)
    assert [t for t, _ in got] == [i / 4 for i in range(8)]
    assert indices(got) == [0, 2, 3, 5, 6, 8, 9, 11]
    with pytest.raises(ValueError, match="source_fps"):
        list(open_source(folder, fps=4))


def _folder(path, images, name="f{k:04d}.{ext}", ext="png", **save):
    path.mkdir()
    for k, im in enumerate(images):
        (im if isinstance(im, Image.Image) else Image.fromarray(im)).save(path / name.format(k=k, ext=ext), **save)
    return path


def _native(folder, fps=4, source_fps=4):
    return [f for _, f in open_source(folder, fps=fps, size=None, source_fps=source_fps)]


def _gradient(k: int) -> np.ndarray:  # 8-bit greyscale with every value, shifted per frame
    return ((np.arange(48 * 64).reshape(48, 64) + 37 * k) % 256).astype(np.uint8)


def test_frame_folder_16_bit_images_scaled_to_8_bit(tmp_path):
    """16-bit greyscale (PNG and TIFF I;16, PGM read as I) gives the 8-bit picture it holds
    (v * 257 -> v), not white (Pillow's convert("RGB") clipped every value above 255)."""
    grey = [_gradient(k) for k in range(4)]
    ref = _native(_folder(tmp_path / "8bit", grey))
    assert [f.tolist() for f in ref] == [np.repeat(g[:, :, None], 3, 2).tolist() for g in grey]
    wide = [g.astype(np.uint16) * 257 for g in grey]
    png16 = _folder(tmp_path / "png16", [Image.fromarray(w) for w in wide])
    assert Image.open(next(png16.iterdir())).mode == "I;16"
    tif16 = _folder(tmp_path / "tif16", [Image.fromarray(w) for w in wide], ext="tif")
    for folder in (png16, tif16):
        got = _native(folder)
        assert len(got) == 4 and all(np.array_equal(a, b) for a, b in zip(got, ref)), folder.name
    pgm = tmp_path / "f.pgm"  # Pillow reads a 16-bit PGM as mode I, 0..65535
    pgm.write_bytes(b"P5 64 48 65535\n" + wide[0].astype(">u2").tobytes())
    assert Image.open(pgm).mode == "I"
    assert np.array_equal(load_rgb(pgm), ref[0])


def test_frame_folder_refuses_images_without_a_white_level(tmp_path):
    """32-bit float and integer TIFFs have no defined white level: an error naming the file."""
    flt = _folder(tmp_path / "float", [Image.fromarray(_gradient(k).astype(np.float32) / 255) for k in range(3)], ext="tif")
    i32 = _folder(tmp_path / "int32", [Image.fromarray(_gradient(k).astype(np.int32)) for k in range(3)], ext="tif")
    for folder, mode in ((flt, "floating-point"), (i32, "32-bit integer")):
        with pytest.raises(ValueError, match=f"f0000.tif: {mode}"):
            check_frame_folder(folder)
        with pytest.raises(ValueError, match="f0000.tif"):
            list(open_source(folder, fps=2, size=64, source_fps=2))


EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the stored picture turned upright (np.rot90: counter-clockwise)
UPRIGHT = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: np.rot90(a, 2), 4: lambda a: a[::-1],
           6: lambda a: np.rot90(a, -1), 8: lambda a: np.rot90(a, 1), 5: lambda a: np.rot90(a, 1)[::-1],
           7: lambda a: np.rot90(a, -1)[::-1]}


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_frame_folder_applies_exif_orientation(tmp_path, orientation):
    """A camera JPEG stored sideways with EXIF orientation (6: turn 90 degrees clockwise) is fed
    upright, letter-boxed as displayed (before: fed as stored)."""
    stored = quadrant_pattern(0, 0.0, 48, 64)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    folder = _folder(tmp_path / "exif", [stored] * 3, ext="jpg", exif=exif.tobytes(), quality=95)
    assert Image.open(folder / "f0000.jpg").getexif()[EXIF_ORIENTATION] == orientation
    want = UPRIGHT[orientation](stored)
    got = _native(folder)
    assert len(got) == 3
    for f in got:
        assert f.shape == want.shape and np.abs(f.astype(int) - want).mean() < 8
    boxed = [f for _, f in open_source(folder, fps=4, size=64, source_fps=4)]
    assert np.abs(boxed[0].astype(int) - letterbox(np.ascontiguousarray(want), 64)).mean() < 8


def test_frame_folder_skips_hidden_files(tmp_path):
    """macOS metadata (``._NAME`` AppleDouble files, .DS_Store) is no frame: skipped, not counted."""
    folder = _folder(tmp_path / "frames", [index_pattern(k, 0.0, 48, 64) for k in range(6)])
    (folder / "._f0003.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(60))
    (folder / ".DS_Store").write_bytes(bytes(64))
    assert [p.name for p in check_frame_folder(folder)] == [f"f{k:04d}.png" for k in range(6)]
    got = list(open_source(folder, fps=2, size=64, source_fps=2))
    assert indices(got) == list(range(6))


def _jpeg_bytes(img: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize("damage", ["not_an_image", "cut_jpeg", "cut_png", "float"])
def test_frame_folder_checked_before_the_first_frame(tmp_path, damage):
    """A bad file anywhere in the folder is an error naming it, from check_frame_folder (what a
    CLI calls before loading a model) and before the source yields its first frame (before:
    UnidentifiedImageError after some frames, or never for a cut JPEG)."""
    folder = _folder(tmp_path / "frames", [np.asarray(quadrant_pattern(k, 0.0, 48, 64)) for k in range(8)], ext="jpg")
    bad = folder / "f0005.jpg"
    if damage == "not_an_image":
        bad.write_bytes(b"<html>404 not found</html>")
    elif damage == "cut_jpeg":
        bad.write_bytes(bad.read_bytes()[:-200])
    elif damage == "cut_png":
        bad.unlink()
        bad = folder / "f0005.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)).save(bad)
        bad.write_bytes(bad.read_bytes()[:-40])
    else:
        bad.unlink()
        bad = folder / "f0005.tif"
        Image.fromarray(np.zeros((48, 64), np.float32)).save(bad)
    with pytest.raises(ValueError, match=str(bad.name)):
        check_frame_folder(folder)
    src = iter(open_source(folder, fps=2, size=64, source_fps=2))
    with pytest.raises(ValueError, match=str(bad.name)):
        next(src)


def test_frame_folder_check_accepts_data_after_the_end(tmp_path):
    """Bytes after a JPEG's end marker (a motion photo's video) or after a PNG's IEND are no damage."""
    folder = _folder(tmp_path / "frames", [index_pattern(k, 0.0, 48, 64) for k in range(3)], ext="jpg")
    (folder / "f0001.jpg").write_bytes(_jpeg_bytes(index_pattern(1, 0.0, 48, 64)) + b"ftypmp42" + bytes(300))
    (folder / "f0002.jpg").write_bytes(_jpeg_bytes(index_pattern(2, 0.0, 48, 64)) + bytes(16))  # zero padding
    Image.fromarray(index_pattern(3, 0.0, 48, 64)).save(folder / "f0003.png")
    with open(folder / "f0003.png", "ab") as f:
        f.write(b"trailing junk")
    assert len(check_frame_folder(folder)) == 4
    assert indices(open_source(folder, fps=2, size=64, source_fps=2)) == [0, 1, 2, 3]


# --------------------------------------------------------------------- live-like sources

def _chunked_writer(data: bytes, path, chunks: int, delay: float, done: threading.Event):
    def run():
        with open(path, "wb", buffering=0) as f:
            step = len(data) // chunks + 1
            for i in range(0, len(data), step):
                f.write(data[i:i + step])
                time.sleep(delay)
        done.set()
    return threading.Thread(target=run, daemon=True)


def test_growing_file_is_read_while_written(tmp_path):
    data = write_test_video(tmp_path / "src.ts", 30, 10, pattern="noisy_index").read_bytes()
    target = tmp_path / "growing.ts"
    done = threading.Event()
    writer = _chunked_writer(data, target, chunks=10, delay=0.1, done=done)
    writer.start()
    received, done_at_first = [], None
    for t, frame in open_source(f"follow:{target}", fps=5, size=64, idle_timeout=0.5):
        if done_at_first is None:
            done_at_first = done.is_set()
        received.append((t, frame))
    writer.join()
    assert done_at_first is False, "the first frame must arrive while the file is still growing"
    assert indices(received) == list(range(0, 30, 2))
    assert [t for t, _ in received] == [i / 5 for i in range(15)]


def test_fifo_pipe_source(tmp_path):
    data = write_test_video(tmp_path / "src.ts", 20, 10, pattern="noisy_index").read_bytes()
    fifo = tmp_path / "stream.fifo"
    os.mkfifo(fifo)
    writer = _chunked_writer(data, fifo, chunks=5, delay=0.02, done=threading.Event())
    writer.start()
    src = open_source(fifo, fps=10, size=64)
    assert src.kind == "pipe"
    got = list(src)
    writer.join()
    assert indices(got) == list(range(20))


@pytest.mark.parametrize("name", ["remote.ts", "hls/index.m3u8"])
def test_http_url_source(tmp_path, name):
    if name.endswith(".m3u8"):   # an HLS playlist of 1-s segments
        write_test_video(tmp_path / name, 20, 10, codec="libx264", container_format="hls",
                         container_options={"hls_time": "1", "hls_list_size": "0"})
    else:
        write_test_video(tmp_path / name, 20, 10)
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{name}"
        src = open_source(url, fps=5, size=64, timeout=5)
        assert src.kind == "url"
        assert indices(list(src)) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_broken_stream_keeps_frames_then_raises(tmp_path):
    src = write_test_video(tmp_path / "full.mp4", 40, 10, pattern="noisy_index",
                           container_options={"movflags": "faststart"})
    data = src.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    got = []
    with pytest.raises(VideoTruncatedError):
        for item in open_source(tmp_path / "cut.mp4", fps=10, size=64):
            got.append(item)
    assert len(got) >= 5 and indices(got) == list(range(len(got)))


# ------------------------------------------------------------------------------------ pacing

def test_realtime_pacing_of_a_file(tmp_path):
    path = write_test_video(tmp_path / "v.mp4", 10, 20)
    start = time.monotonic()
    got = list(open_source(path, fps=20, size=32, realtime=True))
    elapsed = time.monotonic() - start
    assert len(got) == 10
    assert elapsed >= 0.45 - 0.01   # last frame at 0.45 s


def test_paced_with_a_fake_clock():
    now = [100.0]
    sleeps = []

    def sleep(d):
        sleeps.append(round(d, 6))
        now[0] += d

    frames = [(0.0, "a"), (0.5, "b"), (1.0, "c"), (1.2, "d")]
    out = []
    lag = {"b": 0.1, "c": 0.3}   # time the consumer spends on each frame
    for _t, f in paced(frames, speed=2.0, clock=lambda: now[0], sleep=sleep):
        out.append(f)
        now[0] += lag.get(f, 0.0)
    assert out == ["a", "b", "c", "d"]
    # due (speed 2) at 0, .25, .5, .6 s: b waits .25; c waits .5 - .35 = .15;
    # d is already late (.6 < .8) and is released at once
    assert sleeps == [0.25, 0.15]


def test_source_iterates_once(tmp_path):
    path = write_test_video(tmp_path / "v.mp4", 5, 10)
    src = open_source(path, fps=1, size=32)
    list(src)
    with pytest.raises(RuntimeError):
        list(src)


# ---------------------------------------------------------------------------- ffmpeg bridge

def test_ffmpeg_bridge_source():
    # lavfi's test source stands in for a capture device read by the ffmpeg program
    src = open_source("ffmpeg:-f lavfi -i testsrc=size=64x48:rate=10 -t 2", fps=5, size=32)
    assert src.kind == "ffmpeg"
    got = list(src)
    assert [t for t, _ in got] == [i / 5 for i in range(10)]
    assert all(f.shape == (32, 32, 3) for _, f in got)
    assert len({f.tobytes() for _, f in got}) > 1      # a moving pattern, not one frame repeated


def test_ffmpeg_bridge_errors_and_early_close():
    with pytest.raises(RuntimeError, match="No such filter"):
        list(open_source("ffmpeg:-f lavfi -i nosuchfilter", fps=5))
    endless = open_source("ffmpeg:-f lavfi -i testsrc=size=64x48:rate=10", fps=5, size=32)
    it = iter(endless)
    assert [next(it)[0] for _ in range(3)] == [0.0, 0.2, 0.4]
    endless.close()   # terminates the ffmpeg process without raising


def test_device_input_args():
    assert device_input_args("/dev/video0", "v4l2", {"framerate": "30", "video_size": "640x480"}) == \
        ["-f", "v4l2", "-framerate", "30", "-video_size", "640x480", "-i", "/dev/video0"]
    assert detect_kind("ffmpeg:-f v4l2 -i /dev/video0") == "ffmpeg"
