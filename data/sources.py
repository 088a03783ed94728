"""Frame sources for the online engine: iterators of (time_s, RGB frame) from anything that plays.

``open_source(spec, fps, size, realtime, ...)`` picks the kind from ``spec``:

=================  ====================================================================
kind               spec
=================  ====================================================================
``file``           a path to a video file (decoded with ``data.video.iter_sampled``)
``frames``         a directory of image files (natural sort order, hidden files skipped),
                   ``source_fps`` given; checked before the first frame (``check_frame_folder``:
                   every image readable, the names one numbered sequence without holes)
``url``            ``rtsp://``, ``rtmp://``, ``http(s)://``, ``udp://``, ``srt://``, ... (live
                   or remote; ``rtsp_transport=tcp`` by default, ``timeout`` in seconds)
``webcam``         ``webcam``, ``webcam:N``, ``webcam:NAME`` or ``/dev/videoN`` (v4l2 on Linux,
                   avfoundation on macOS, dshow on Windows)
``pipe``           ``-`` or ``pipe:`` (standard input), or a path that is a FIFO
``growing``        ``follow:PATH``, or any path with ``follow=True``: a file still being
                   written (read on as it grows; ends after ``idle_timeout`` s without growth)
``ffmpeg``         ``ffmpeg:<input arguments>``, e.g. ``ffmpeg:-f v4l2 -i /dev/video0``: any
                   input the ffmpeg program can read, bridged through a pipe (NUT, raw video,
                   timestamps kept). PyAV's wheels are built without some input devices (v4l2
                   on Linux), so Linux webcams fall back to this bridge with imageio-ffmpeg's
                   binary.
=================  ====================================================================

Every kind samples with the same at-or-after rule and frame count rule as ``data/video.py``
(for the frame folder, image k is at ``k / source_fps``), and applies the optional degradation
schedule and letterbox the same way. ``realtime=True`` paces the frames at their own clock
(sleeps until ``start + time_s``), so a file can stand in for a camera. A decoded source's
``stats()`` says how many samples repeated the previous sample's frame and how late the latest
shown frame was after its sample's time (frames a live source lost show up there).
"""
from __future__ import annotations

import io
import os
import re
import shlex
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import av
import numpy as np

from data.upright import check_image, load_rgb
from data.video import Degradation, check_resize, iter_sampled, prepare_frame, select_at_or_after

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp", "hls")
KINDS = ("file", "frames", "url", "webcam", "pipe", "growing", "ffmpeg")

Frame = tuple[float, np.ndarray]


# ------------------------------------------------------------------------------------- pacing

def paced(frames: Iterable[Frame], speed: float = 1.0,
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> Iterator[Frame]:
    """Release each (time_s, frame) no earlier than ``start + time_s / speed`` on the wall clock.

    The clock starts when the first frame is ready, so decoding the first frame is not counted;
    a consumer slower than real time simply receives later frames without waiting.
    """
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    start = None
    for t, frame in frames:
        now = clock()
        if start is None:
            start = now - t / speed
        delay = start + t / speed - now
        if delay > 0:
            sleep(delay)
        yield t, frame


# ------------------------------------------------------------------------------ frame folder

def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The frames of a folder in natural order: files with an image suffix, except hidden ones
    (a name starting with "."; e.g. macOS's ``._NAME`` metadata files, which are no images)."""
    folder = Path(folder)
    files = [p for p in folder.iterdir()
             if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")]
    return sorted(files, key=lambda p: _natural_key(p.name))


def check_frame_folder(folder: str | os.PathLike) -> list[Path]:
    """Every frame of a folder checked before any is used (``data.upright.check_image``: the header
    is an image of a usable mode, a PNG is whole, a JPEG has its end marker); returns the files.

    The names must number one sequence (``check_frame_names``: no stray image, no repeated
    number, no hole). Raises ValueError: no frames, names that break the sequence, or an
    ImageFileError naming the first bad file. Costs about
    0.05 ms per PNG / JPEG frame in the page cache (header and tail read, no pixels decoded).
    """
    files = list_frame_files(folder)
    if not files:
        raise ValueError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in {folder}")
    check_frame_names(folder, files)
    for p in files:
        check_image(p)
    return files


def _name_pattern(name: str) -> str:  # the suffix aside: a sequence may mix formats (f1.jpg, f2.png)
    return re.sub(r"\d+", "#", Path(name).stem.lower())


def _name_numbers(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", Path(name).stem))


def check_frame_names(folder: str | os.PathLike, files: list[Path]) -> None:
    """The names of numbered frames (in natural order) must number one sequence of images.

    Image k is shown at ``k / source_fps`` by its place in the list, not by its number, so a name
    that breaks the sequence would silently shift every later frame's time: another image among
    the frames (``cover.jpg`` beside ``frame_0001.png``...), two files of the same number
    (``1.png`` and ``01.png``, ``f_7.jpg`` and ``f_7.png``), or a hole in an evenly stepped
    numbering (``f_3.png`` missing). Raises ValueError naming the files. Names without digits
    (``a.png``, ``b.png``) are taken in their natural order as they are; the suffix is not part of
    the pattern (a sequence may mix formats).
    """
    patterns: dict[str, list[Path]] = {}
    for p in files:
        patterns.setdefault(_name_pattern(p.name), []).append(p)
    if len(patterns) > 1 and any("#" in k for k in patterns):
        main = max(patterns.values(), key=len)
        odd = [p.name for p in files if _name_pattern(p.name) != _name_pattern(main[0].name)]
        more = f" and {len(odd) - 3} more" if len(odd) > 3 else ""
        raise ValueError(f"{folder}: the images do not follow one frame-name pattern: {len(main)} like {main[0].name}, "
                         f"but also {', '.join(odd[:3])}{more}; each image is taken as the next frame, so move what is "
                         "not a frame out of the folder")
    numbers = [_name_numbers(p.name) for p in files]
    seen: dict[tuple[int, ...], str] = {}
    for p, n in zip(files, numbers):
        if n and n in seen:
            raise ValueError(f"{folder}: {seen[n]} and {p.name} have the same frame number: keep one of them")
        seen[n] = p.name
    varying = [i for i in range(len(numbers[0])) if len({n[i] for n in numbers}) > 1] if numbers[0] else []
    if len(files) > 2 and len(varying) == 1:  # one counter: it must go up by one step throughout
        seq = [n[varying[0]] for n in numbers]
        steps = [b - a for a, b in zip(seq, seq[1:])]
        step = min(steps)
        gap = next((k for k, d in enumerate(steps) if d != step), None)
        if gap is not None:
            raise ValueError(f"{folder}: the frame numbers skip from {files[gap].name} to {files[gap + 1].name} (the "
                             f"others go up by {step}): a missing frame would shift every later image's time "
                             "(image k is shown at k / source_fps); fill the gap or renumber the frames")


def iter_frame_folder(folder: str | os.PathLike, fps: float, source_fps: float, size: int | None = 384,
                      start_frame: int = 0, end_frame: int | None = None,
                      degradation: Degradation | None = None, resize: str = "antialias") -> Iterator[Frame]:
    """Sample a folder of images (image k shown at ``k / source_fps``) at ``fps``.

    Every image is checked first (``check_frame_folder``), so a bad file stops the stream before
    its first frame; each is read upright and 8-bit (``data.upright.load_rgb``).
    """
    if source_fps is None or source_fps <= 0:
        raise ValueError("a frame folder needs source_fps > 0 (the rate the images were taken at)")
    files = check_frame_folder(folder)
    timed = ((k / source_fps, p) for k, p in enumerate(files))
    end = lambda: len(files) / source_fps  # noqa: E731 - known once listed
    loaded: tuple[Path, np.ndarray] | None = None
    for _, t, p in select_at_or_after(timed, fps, start_frame, end_frame, end):
        if loaded is None or loaded[0] != p:
            loaded = (p, load_rgb(p))
        yield t, prepare_frame(loaded[1], t, size, degradation, resize)


# ---------------------------------------------------------------------------- growing files

class GrowingFileReader(io.RawIOBase):
    """A non-seekable reader of a file that another process is still writing.

    ``read`` returns what is there; at the current end it waits (polling every ``poll_s``) and
    reports end-of-file only after ``idle_timeout`` seconds without growth. The demuxer must work
    without seeking (MPEG-TS, Matroska/WebM written live, NUT, fragmented MP4, Y4M).
    """

    def __init__(self, path: str | os.PathLike, idle_timeout: float = 5.0, poll_s: float = 0.02,
                 wait_for_file: bool = True):
        super().__init__()
        self.name = str(path)
        self.idle_timeout, self.poll_s = idle_timeout, poll_s
        deadline = time.monotonic() + idle_timeout
        while not os.path.exists(path):
            if not wait_for_file or time.monotonic() > deadline:
                raise FileNotFoundError(f"growing file never appeared: {path}")
            time.sleep(poll_s)
        self._f = open(path, "rb", buffering=0)
        self._ended = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:
        if self._ended:  # once declared finished, stay finished (demuxers read again after EOF)
            return 0
        last_growth = time.monotonic()
        while True:
            n = self._f.readinto(buffer)
            if n:
                return n
            if time.monotonic() - last_growth > self.idle_timeout:
                self._ended = True
                return 0
            time.sleep(self.poll_s)

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


# ------------------------------------------------------------------------------------ webcams

def webcam_open_args(spec: str, platform: str | None = None) -> tuple[str, str]:
    """(file, format) for ``av.open`` from a webcam spec, per platform.

    Linux: ``webcam`` / ``webcam:N`` -> ``/dev/videoN`` (v4l2), ``/dev/videoN`` as is.
    macOS: ``webcam:N`` -> ``"N"`` (avfoundation, video only). Windows: ``webcam:NAME`` ->
    ``"video=NAME"`` (dshow takes device names, not numbers).
    """
    platform = platform or sys.platform
    target = spec.split(":", 1)[1] if spec.startswith("webcam:") else ("0" if spec == "webcam" else spec)
    if platform.startswith("linux"):
        return (f"/dev/video{target}" if target.isdigit() else target), "v4l2"
    if platform == "darwin":
        return target, "avfoundation"
    if platform.startswith("win"):
        if target.isdigit():
            raise ValueError("dshow opens cameras by name: use webcam:<device name> "
                             "(list them with `ffmpeg -list_devices true -f dshow -i dummy`)")
        return (target if target.startswith("video=") else f"video={target}"), "dshow"
    raise ValueError(f"no webcam input format known for platform {platform!r}")


# ------------------------------------------------------------------------- ffmpeg bridge

def ffmpeg_bridge_command(input_args: list[str], ffmpeg: str | None = None) -> list[str]:
    """ffmpeg reading ``input_args`` and writing the first video stream as raw video in NUT to
    stdout (no encoding delay; NUT keeps the timestamps)."""
    if ffmpeg is None:
        import imageio_ffmpeg

        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    return [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", *input_args,
            "-map", "0:v:0", "-c:v", "rawvideo", "-flush_packets", "1", "-f", "nut", "pipe:1"]


def device_input_args(file: str, fmt: str, options: dict[str, str] | None = None) -> list[str]:
    """ffmpeg command-line input arguments for a capture device: -f FMT [-opt value ...] -i FILE."""
    opts = [a for k, v in (options or {}).items() for a in (f"-{k}", str(v))]
    return ["-f", fmt, *opts, "-i", file]


# NUT carries the codec parameters in its header: skip FFmpeg's probing (seconds of latency).
# Not ``fflags=nobuffer``: it discards the packets the stream-info probe has read, i.e. the first
# frame, and so every time came out one native frame early (the origin is the first decoded frame).
BRIDGE_DEMUX_OPTIONS = {"probesize": "32", "analyzeduration": "0"}


def _sampled_from_ffmpeg(input_args: list[str], sampled) -> Iterator[Frame]:
    proc = subprocess.Popen(ffmpeg_bridge_command(input_args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    closed_by_consumer = stopped_by_us = interrupted = False
    in_flight: BaseException | None = None
    try:
        yield from sampled(proc.stdout, format="nut", options=BRIDGE_DEMUX_OPTIONS)
    except GeneratorExit:
        closed_by_consumer = True
        raise
    except BaseException as e:
        in_flight = e
        interrupted = not isinstance(e, Exception)  # Ctrl-C (the child got SIGINT too): said as such
        raise
    finally:
        proc.stdout.close()  # a writer blocked on a full pipe now fails instead of hanging
        if proc.poll() is None:
            proc.terminate()  # our own child; the consumer stopped early (or end_frame was reached)
            stopped_by_us = True
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        if not closed_by_consumer and not interrupted and proc.returncode != 0:
            if err:  # the child's own reason, rather than the decoder's view of a cut stream
                raise RuntimeError(f"ffmpeg input {shlex.join(input_args)!r} failed: {err}")
            # a child that failed on its own ends the stream early even when it said nothing (killed
            # by a signal, e.g. out of memory): an error, not a quiet end of the input
            if not stopped_by_us and in_flight is None:
                raise RuntimeError(f"ffmpeg input {shlex.join(input_args)!r} failed: exit status "
                                   f"{proc.returncode} and no message")


# --------------------------------------------------------------------------------- the factory

def detect_kind(spec: str | os.PathLike, follow: bool = False) -> str:
    s = str(spec)
    if s.startswith("ffmpeg:"):
        return "ffmpeg"
    if s in ("-", "pipe:") or s.startswith("pipe:"):
        return "pipe"
    if s.startswith("follow:"):
        return "growing"
    if s == "webcam" or s.startswith("webcam:") or re.fullmatch(r"/dev/video\d+", s):
        return "webcam"
    scheme = s.split("://", 1)[0].lower() if "://" in s else ""
    if scheme in URL_SCHEMES:
        return "url"
    if s.lower().endswith(".m3u8") and "://" in s:
        return "url"
    if follow:
        return "growing"
    p = Path(s)
    if p.is_dir():
        return "frames"
    if p.exists() and stat.S_ISFIFO(p.stat().st_mode):
        return "pipe"
    if p.exists():
        return "file"
    raise FileNotFoundError(f"no such video, frame folder, device or URL: {s}")


@dataclass
class FrameSource:
    """An iterable of (time_s, uint8 frame); ``close()`` (or ``with``) releases it early."""

    kind: str
    spec: str
    _make: Callable[[], Iterator[Frame]]
    realtime: bool = False
    speed: float = 1.0
    # for the run record, what the (time, frame) pairs cannot say: frames dropped while the consumer
    # was behind, samples that showed a later frame; a callable giving a JSON-able dict, or None
    stats: Callable[[], dict] | None = None
    degradation: Degradation | None = None  # the schedule applied to this source's frames (recorded)
    _iters: list = field(default_factory=list, init=False, repr=False)

    def __iter__(self) -> Iterator[Frame]:
        if self._iters:
            raise RuntimeError("a FrameSource can be iterated only once")
        frames = self._make()
        self._iters = [paced(frames, self.speed), frames] if self.realtime else [frames]
        return self._iters[0]

    def close(self) -> None:
        """Stop early: closes the decoder, the file/pipe/connection and any ffmpeg child."""
        for it in self._iters:
            it.close()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(
    spec: str | os.PathLike,
    fps: float,
    size: int | None = 384,
    realtime: bool = False,
    *,
    kind: str | None = None,
    source_fps: float | None = None,
    follow: bool = False,
    idle_timeout: float = 5.0,
    timeout: float | tuple[float, float] | None = 10.0,
    options: dict[str, str] | None = None,
    format: str | None = None,
    degradation: Degradation | None = None,
    start_frame: int = 0,
    end_frame: int | None = None,
    speed: float = 1.0,
    resize: str = "antialias",
) -> FrameSource:
    """Open a frame source (see the module docstring for the specs).

    ``options`` go to FFmpeg (e.g. ``{"rtsp_transport": "udp"}``, ``{"video_size": "1280x720",
    "framerate": "30"}`` for a camera); ``format`` forces the demuxer (needed for pipes and
    growing files whose content FFmpeg cannot guess, e.g. ``"mpegts"``). ``timeout`` (seconds, or
    (open, read)) applies to URLs and devices.
    """
    kind = kind or detect_kind(spec, follow)
    if kind not in KINDS:
        raise ValueError(f"unknown source kind {kind!r}; expected one of {KINDS}")
    s = str(spec)
    common = dict(size=size, start_frame=start_frame, end_frame=end_frame, degradation=degradation,
                  resize=check_resize(resize))  # the model's frame_resize
    # Frame-threaded decoding holds back (threads - 1) frames: fine for files, latency for live input.
    thread_type = "AUTO" if kind == "file" else "SLICE"

    # A sample shows the first frame at or after its time: where the source had no frame then (fps
    # above its rate, variable rate, frames a camera or network lost while the consumer was behind)
    # it shows a later one. Counted for the run record, since the (time, image) pairs cannot say it.
    seen = {"samples": 0, "repeated_samples": 0, "max_lag_s": 0.0}

    def sampled(source: Any, **open_kwargs: Any) -> Iterator[Frame]:
        prev = None
        for f in iter_sampled(source, fps, **common, thread_type=thread_type, **open_kwargs):
            seen["samples"] += 1
            seen["repeated_samples"] += f.native_index == prev
            seen["max_lag_s"] = max(seen["max_lag_s"], round(f.frame_time - f.time, 6))
            prev = f.native_index
            yield f.time, f.image

    if kind == "file":
        make = lambda: sampled(s, format=format, options=options)  # noqa: E731
    elif kind == "frames":
        make = lambda: iter_frame_folder(s, fps, source_fps, **common)  # noqa: E731
    elif kind == "url":
        opts = dict(options or {})
        if s.lower().startswith(("rtsp://", "rtsps://")):
            opts.setdefault("rtsp_transport", "tcp")
        make = lambda: sampled(s, format=format, options=opts, timeout=timeout)  # noqa: E731
    elif kind == "webcam":
        file, fmt = webcam_open_args(s)
        fmt = format or fmt
        if fmt in av.formats_available:
            make = lambda: sampled(file, format=fmt, options=options, timeout=timeout)  # noqa: E731
        else:  # e.g. PyAV's Linux wheels have no v4l2: let the ffmpeg program read the camera
            bridge = device_input_args(file, fmt, options)
            make = lambda: _sampled_from_ffmpeg(bridge, sampled)  # noqa: E731
    elif kind == "ffmpeg":
        bridge = shlex.split(s[len("ffmpeg:"):])
        make = lambda: _sampled_from_ffmpeg(bridge, sampled)  # noqa: E731
    elif kind == "pipe":
        if s in ("-", "pipe:", "pipe:0"):
            make = lambda: sampled(sys.stdin.buffer, format=format, options=options)  # noqa: E731
        else:
            make = lambda: _sampled_from_fifo(s, sampled, format, options)  # noqa: E731
    else:  # growing
        path = s[len("follow:"):] if s.startswith("follow:") else s
        make = lambda: _sampled_from_reader(GrowingFileReader(path, idle_timeout), sampled, format, options)  # noqa: E731
    return FrameSource(kind, s, make, realtime, speed, stats=None if kind == "frames" else lambda: dict(seen),
                       degradation=degradation)


def _sampled_from_fifo(path: str, sampled, format, options) -> Iterator[Frame]:
    # open() blocks until a writer opens the FIFO; the reader then gets EOF when the writer closes.
    with open(path, "rb", buffering=0) as f:
        yield from sampled(f, format=format, options=options)


def _sampled_from_reader(reader: io.RawIOBase, sampled, format, options) -> Iterator[Frame]:
    with reader:
        yield from sampled(reader, format=format, options=options)
