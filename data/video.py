"""Video decoding, frame sampling and letter-boxing (PyAV; the one video loader of the project).

Conventions (every dataset, the streaming engine and every benchmark use these):

* **Time origin.** Frame times are ``pts * time_base`` minus the presentation time of the first
  decoded frame, so the first frame is at 0 s whatever the container's start offset (MPEG-TS
  streams usually start at 1.4 s). Broken timestamps (missing, or not increasing: e.g. H.264 with
  B-frames in AVI) are repaired like FFmpeg's ``best_effort_timestamp`` (fall back to DTS when PTS
  are faulty more often) and then forced to increase by one nominal frame interval.
* **Duration** = end of the last frame = its time + its duration (packet/frame duration, else the
  previous frame interval, else 1 / average rate). Only frames that are shown count: packets an
  MP4/MOV edit list cuts away (a trimmed video's frames before its start or after its end, which
  the demuxer still returns, flagged discard, and the decoder drops) are not part of the video. ``probe`` (packet scan) and the decoder use the
  same rule, so a frame count computed from ``probe().duration`` matches what the decoder yields.
* **Frame count rule** (``num_sampled_frames``): ``n = ceil(duration * fps - 1e-6)`` frames at
  times ``i / fps``, i = 0..n-1, i.e. one sample for every target instant inside the video
  ``[0, duration)``. This is the rule a lazy decoder can follow without knowing the duration in
  advance (a live stream emits sample i as soon as a frame at or after ``i / fps`` arrives), so
  training, benchmarks and the online engine see the same frames. (The reference trained with
  floor and evaluated with ceil; here there is one rule.)
* **Sampling rule**: target time ``t`` takes the first decoded frame whose time is ``>= t``
  (within half a millisecond, because containers round timestamps, e.g. MKV to 1 ms). A target
  after the last frame's start (but before the end of the video) takes the last frame, which is
  the one on screen then. Downsampling keeps a sample within one native frame of its time; where
  the source has fewer frames than ``fps`` asks for (``fps`` above the native rate, variable frame
  rate, live frames dropped), a sample shows the next frame, up to one source interval later.
* **Orientation**: frames are upright, as a player shows them. A video's display matrix (a phone's
  portrait MP4: ``tkhd`` rotation, or mirroring) is applied to the decoded frame, like the ffmpeg
  program's autorotate; a matrix that is not a multiple of 90 degrees is refused
  (``VideoDecodeError``; ``data/upright.py``). Non-square pixels (sample aspect ratio, e.g. 720x576
  at 64:45) are first made square (1024x576). ``probe`` reports the displayed width and height.
  A video without a display matrix is decoded exactly as before (same bytes). A frame folder's
  images get their EXIF orientation, and 16-bit images keep their top 8 bits (``v >> 8``).
* **Letterbox** (``letterbox``): the longer side is resized to ``size`` (PIL bilinear, which
  antialiases when shrinking), the other to ``floor(short * size / long)`` (at least 1), pasted
  centred on black: top/left offset ``(size - new) // 2`` (the extra pixel of an odd margin goes to
  the bottom/right), as in the reference.
* **Degradation** (optional, ``data/degrade.py``) is applied to the native-resolution upright RGB
  frame before letter-boxing, keyed by the sample's target time.

Decoding is sequential and lazy: ``iter_sampled`` decodes frame by frame, converts only the
selected frames to RGB and never holds more than one native frame, so it serves both the online
engine (``iter_frames``) and training (``load_clip`` stacks its output). Failures raise
``VideoDecodeError`` with the reason; a stream that breaks after some frames raises
``VideoTruncatedError`` *after* yielding every frame decoded before the break. A file that ends
quietly is still checked for truncation and damage (``data/video_integrity.py``: sample tables,
declared durations, transport-packet alignment, corrupt packets and frames, FFmpeg's errors).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import av
import numpy as np
from PIL import Image

from data.upright import IDENTITY, FirstFrameTransform, Transform, displayed_size, upright_rgb
from data.video_clock import TIMESTAMP_LOOKAHEAD, _BestEffortClock, _last_frame_duration
from data.video_integrity import NO_LENGTH_FORMATS, Integrity, nominal_interval

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
    ".flv", ".wmv", ".3gp", ".ogv", ".nut",
})

# Slack for the frame count rule: 10 s * 2 fps computed as 20.000000001 must give 20 frames.
COUNT_EPS = 1e-6

Degradation = Callable[[np.ndarray, float], np.ndarray]
T = TypeVar("T")


class VideoDecodeError(RuntimeError):
    """A video could not be opened or decoded; ``reason`` says why."""

    def __init__(self, path: Any, reason: str, frames_decoded: int = 0):
        self.path = str(path)
        self.reason = reason
        self.frames_decoded = frames_decoded
        super().__init__(f"{self.path}: {reason}")


class VideoTruncatedError(VideoDecodeError):
    """The stream broke after ``frames_decoded`` frames (those were yielded before the raise)."""


def is_video_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


# ----------------------------------------------------------------------------- frame count rule

def num_sampled_frames(duration: float, fps: float, max_frames: int | None = None) -> int:
    """Number of frames sampled from a video of ``duration`` seconds at ``fps`` (the one rule)."""
    if fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if duration < 0 or not math.isfinite(duration):
        raise ValueError(f"duration must be a non-negative number, got {duration}")
    n = max(0, int(math.ceil(duration * fps - COUNT_EPS)))
    if max_frames is not None:
        if max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
        n = min(n, max_frames)
    return n


def sample_times(duration: float, fps: float, max_frames: int | None = None) -> np.ndarray:
    """Target times ``i / fps`` for ``i < num_sampled_frames(duration, fps, max_frames)``."""
    return np.arange(num_sampled_frames(duration, fps, max_frames), dtype=np.float64) / fps


# ----------------------------------------------------------------------------------- letterbox

def letterbox_geometry(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(x0, y0, new_width, new_height) of the picture inside the ``size`` x ``size`` canvas."""
    if width <= 0 or height <= 0 or size <= 0:
        raise ValueError(f"invalid letterbox geometry: {width}x{height} -> {size}")
    if width >= height:
        new_w, new_h = size, max(1, height * size // width)
    else:
        new_w, new_h = max(1, width * size // height), size
    return (size - new_w) // 2, (size - new_h) // 2, new_w, new_h


# How a frame is scaled into the canvas (the model config's ``frame_resize``, instructions/models.md):
# ``antialias``: PIL's bilinear filter, which widens its kernel when shrinking (no aliasing);
# ``reference``: bilinear on the 2x2 nearest source pixels at half-pixel centres, no antialiasing
# (OpenCV's cv2.resize INTER_LINEAR, what the reference's loaders used and so what the released
# weights were trained on; computed by torch, equal to OpenCV's fixed-point result within 1 grey level).
RESIZE_MODES = ("antialias", "reference")


def check_resize(resize: str) -> str:
    if resize not in RESIZE_MODES:
        raise ValueError(f"frame resize must be one of {RESIZE_MODES}, got {resize!r}")
    return resize


def _resize_reference(frame: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=False)
    # halves rounded up, as OpenCV's fixed-point arithmetic does (torch.round would round them to even)
    return y[0].permute(1, 2, 0).add_(0.5).floor_().clamp_(0, 255).to(torch.uint8).numpy()


def letterbox(frame: np.ndarray, size: int, resize: str = "antialias") -> np.ndarray:
    """Resize an RGB uint8 ``[H, W, 3]`` frame to fit ``size`` x ``size``, centred on black
    (``resize``: one of RESIZE_MODES)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"letterbox expects uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
    h, w = frame.shape[:2]
    x0, y0, new_w, new_h = letterbox_geometry(w, h, size)
    if (new_w, new_h) == (w, h):
        resized = frame
    elif check_resize(resize) == "reference":
        resized = _resize_reference(frame, new_w, new_h)
    else:
        resized = np.asarray(Image.fromarray(frame).resize((new_w, new_h), Image.Resampling.BILINEAR))
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[y0:y0 + new_h, x0:x0 + new_w] = resized
    return canvas


# --------------------------------------------------------------------------------------- probe

@dataclass(frozen=True)
class VideoInfo:
    duration: float      # seconds, first frame start to last frame end
    fps: float           # average rate (frames / duration for a packet scan)
    n_frames: int        # video packets (scan) or header count / estimate
    width: int
    height: int
    codec: str
    method: str          # "packets" (exact timestamps) or "header" (container metadata)


# Read from a pipe (stdin, a FIFO, a growing file) a container must be demuxable without seeking.
PIPE_HINT = ("; from a pipe only stream formats can be read: MP4/MOV keep their index (moov) at the end or need "
             "seeking, AVI too. Pipe MPEG-TS, Matroska/WebM, NUT or fragmented MP4 instead, e.g. "
             "`ffmpeg -i in.mp4 -c copy -f mpegts - | ...`, or pass the file itself")


def _open_input(source: Any, *, format: str | None = None, options: dict | None = None,
                timeout: float | tuple[float, float] | None = None) -> av.container.InputContainer:
    """av.open with the project's error contract (FileNotFoundError, else VideoDecodeError)."""
    if isinstance(source, (str, os.PathLike)) and "://" not in str(source) and format is None:
        p = Path(source)
        if not p.exists():
            raise FileNotFoundError(f"video not found: {p}")
        if p.is_dir():
            raise VideoDecodeError(p, "is a directory, not a video file")
        if p.stat().st_size == 0:
            raise VideoDecodeError(p, "empty file (0 bytes)")
    kwargs: dict[str, Any] = {"options": dict(options or {})}
    if format is not None:
        kwargs["format"] = format
    if timeout is not None:
        kwargs["timeout"] = timeout
    try:
        container = av.open(source if not isinstance(source, os.PathLike) else str(source), "r", **kwargs)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        hint = "" if isinstance(source, (str, os.PathLike)) else PIPE_HINT
        raise VideoDecodeError(_name(source), f"cannot open as a video container ({e}){hint}") from e
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(_name(source), "no video stream in the container")
    return container


def _name(source: Any) -> str:
    return str(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", repr(source))


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def probe(path: str | os.PathLike, method: str = "packets") -> VideoInfo:
    """Duration, average fps and frame count of a video from its timestamps.

    ``method="packets"`` demuxes every video packet (no decoding: milliseconds per minute of
    video) and measures first frame start to last frame end; that is the duration the decoder
    will reproduce, also for variable frame rate and containers without a duration header.
    ``method="header"`` only reads container metadata (may be missing or estimated, e.g. from the
    bitrate for MPEG-TS); it falls back to the packet scan when the header has no duration. Both
    decode the first frame, whose display matrix gives the displayed width and height (PyAV does not
    expose the stream's): about 2-8 ms more per call for 720p-1080p videos (mpeg4, h264; measured
    on the project's 2-core VM, 2026-12-05).
    """
    if method not in ("packets", "header"):
        raise ValueError(f"method must be 'packets' or 'header', got {method!r}")
    with _open_input(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        width, height, codec = ctx.width, ctx.height, ctx.name
        orient = FirstFrameTransform(stream)  # width and height as displayed (see "Orientation")
        if method == "header":
            duration = _seconds(stream.duration, stream.time_base)
            if duration is None and container.duration is not None:
                duration = container.duration / av.time_base
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            if duration and duration > 0 and rate:
                n = stream.frames or int(round(duration * float(rate)))
                for packet in container.demux(stream):  # only the first frame, for its display matrix
                    if orient.see(packet):
                        break
                width, height = displayed_size(width, height, _transform(orient, path), stream.sample_aspect_ratio)
                return VideoInfo(duration, float(rate), n, width, height, codec, "header")
        times: list[float] = []
        durations: list[float | None] = []
        check = Integrity(container, stream, path)
        try:
            for packet in container.demux():  # every stream: the declared duration covers them all
                check.see(packet)
                if packet.stream.index != stream.index or packet.size == 0:  # flush packet
                    continue
                orient.see(packet)
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None or getattr(packet, "is_discard", False):  # outside the edit list: never shown
                    continue
                times.append(float(ts * packet.time_base))
                durations.append(float(packet.duration * packet.time_base) if packet.duration else None)
        except av.error.FFmpegError as e:
            raise VideoDecodeError(path, f"truncated or corrupt: demuxing failed after {len(times)} packets ({e})") from e
        finally:
            check.close()
        truncation = check.reason()
        if truncation:
            raise VideoDecodeError(path, truncation)
        # read while the container is open: the stream object points into FFmpeg memory freed on close
        nominal = nominal_interval(stream)
        width, height = displayed_size(width, height, _transform(orient, path), stream.sample_aspect_ratio)
    if not times:
        raise VideoDecodeError(path, "no video packets")
    order = np.argsort(times, kind="stable")
    sorted_times = np.asarray(times)[order]
    first, last = float(sorted_times[0]), float(sorted_times[-1])
    prev_gap = float(sorted_times[-1] - sorted_times[-2]) if len(times) > 1 else None
    duration = last + _last_frame_duration(durations[order[-1]], prev_gap, nominal) - first
    fps = len(times) / duration if duration > 0 else (1.0 / nominal if nominal else 0.0)
    return VideoInfo(duration, fps, len(times), width, height, codec, "packets")


def display_transform(path: Any) -> Transform:
    """How the first frame of a video must be turned to be upright (``IDENTITY``: as stored)."""
    with _open_input(path) as container:
        orient = FirstFrameTransform(container.streams.video[0])
        for packet in container.demux(orient.stream):
            if orient.see(packet):
                break
        return _transform(orient, path)


def _transform(orient: FirstFrameTransform, path: Any) -> Transform:
    try:
        return orient.finish()
    except ValueError as e:
        raise VideoDecodeError(_name(path), str(e)) from None


# ---------------------------------------------------------------------------- decoded frames

@dataclass
class DecodedFrame:
    time: float          # seconds from the first frame
    index: int           # native frame number in decode (presentation) order
    frame: av.VideoFrame


@dataclass
class _Raw:
    frame: av.VideoFrame
    pts: float | None
    dts: float | None
    duration: float | None


class FrameStream:
    """Iterates the decoded frames of a container; after exhaustion ``end_time`` is the duration.

    Raises VideoDecodeError (no frame at all) or VideoTruncatedError (after yielding ``n`` frames)
    when demuxing or decoding fails or the file turns out cut short; the container is closed on
    exhaustion, error or ``close()`` of the iterator.
    """

    def __init__(self, source: Any, open_kwargs: dict | None = None, thread_type: str = "AUTO"):
        self.source = source
        self.open_kwargs = dict(open_kwargs or {})
        self.thread_type = thread_type
        self.end_time: float | None = None
        self.frames_decoded = 0
        self._check: Integrity | None = None
        self._origin: float | None = None
        self._prev_time: float | None = None
        self._last_time = 0.0
        self._last_duration: float | None = None
        self.sar: Fraction | None = None  # the stream's sample (pixel) aspect ratio, known once iterating

    def __iter__(self) -> Iterator[DecodedFrame]:
        container = _open_input(self.source, **self.open_kwargs)
        try:
            stream = container.streams.video[0]
            stream.thread_type, self.sar = self.thread_type, stream.sample_aspect_ratio
            nominal = nominal_interval(stream)
            clock = _BestEffortClock(nominal)
            self._check = Integrity(container, stream, self.source)
            if self._check.local_file and self._check.names & NO_LENGTH_FORMATS:
                stream.thread_type = "SLICE"  # see data/video_integrity.py: the partial-frame flag must be reliable
            window: list[_Raw] | None = []
            error = None
            try:
                for raw in self._raw_frames(container, stream):
                    if window is None:
                        yield self._stamp(raw, clock)
                        continue
                    window.append(raw)
                    if len(window) == TIMESTAMP_LOOKAHEAD:
                        clock.seed([(r.pts, r.dts) for r in window])
                        for r in window:
                            yield self._stamp(r, clock)
                        window = None
            except av.error.FFmpegError as e:
                error = f"({e})"
            if window:  # short stream, or it broke inside the look-ahead window
                clock.seed([(r.pts, r.dts) for r in window])
                for r in window:
                    yield self._stamp(r, clock)
            if error is not None:
                self._raise_broken(error)
            if self.frames_decoded == 0:
                raise VideoDecodeError(_name(self.source), "the video stream has no decodable frames")
            self._check.close()
            truncation = self._check.reason()
            if truncation:
                self._raise_broken(truncation)
            prev_gap = self._last_time - self._prev_time if self._prev_time is not None else None
            self.end_time = self._last_time + _last_frame_duration(self._last_duration, prev_gap, nominal)
        finally:
            if self._check is not None:
                self._check.close()
            container.close()

    def _raw_frames(self, container, stream) -> Iterator[_Raw]:
        check = self._check
        for packet in container.demux():  # every stream: the declared duration covers them all
            check.see(packet)
            if packet.stream.index != stream.index:
                continue
            for frame in packet.decode():
                check.frame(frame)
                tb = frame.time_base or stream.time_base
                dur = _seconds(frame.duration, tb) if frame.duration else None
                yield _Raw(frame, _seconds(frame.pts, tb), _seconds(frame.dts, tb), dur)

    def _stamp(self, raw: _Raw, clock: _BestEffortClock) -> DecodedFrame:
        t = clock(raw.pts, raw.dts)
        if self._origin is None:
            self._origin = t
        rel = t - self._origin
        if self.frames_decoded:
            self._prev_time = self._last_time
        self._last_time, self._last_duration = rel, raw.duration
        self.frames_decoded += 1
        return DecodedFrame(rel, self.frames_decoded - 1, raw.frame)

    def _raise_broken(self, reason: str) -> None:
        n = self.frames_decoded
        if n == 0:
            hint = "" if isinstance(self.source, (str, os.PathLike)) else PIPE_HINT
            raise VideoDecodeError(_name(self.source), f"no frame could be decoded: {reason}{hint}")
        raise VideoTruncatedError(_name(self.source), f"stream broke after {n} frames: {reason}",
                                  frames_decoded=n)


# ------------------------------------------------------------------------------------ sampling

def select_at_or_after(
    items: Iterable[tuple[float, T]],
    fps: float,
    start_frame: int = 0,
    end_frame: int | None = None,
    end_time: Callable[[], float | None] | None = None,
    tolerance: float = 5e-4,
) -> Iterator[tuple[int, float, T]]:
    """Pick, for each target ``i / fps``, the first item whose time is >= the target.

    ``items`` yields (time, payload) with increasing times (lazily: this works on unbounded live
    streams). Yields (i, target_time, payload) for ``start_frame <= i < end_frame``; one payload
    may serve several consecutive targets when sampling faster than the native rate. At the end
    of ``items``, ``end_time()`` (the duration, known only then) decides how many more targets
    exist (``num_sampled_frames``: those before the end); they take the last item.
    ``tolerance`` absorbs timestamp rounding (half a millisecond: MKV stores milliseconds).
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if start_frame < 0 or (end_frame is not None and end_frame < start_frame):
        raise ValueError(f"invalid frame range [{start_frame}, {end_frame})")
    i = start_frame
    if end_frame is not None and i >= end_frame:
        return
    last: T | None = None
    have_last = False
    for time, payload in items:
        last, have_last = payload, True
        while i / fps <= time + tolerance:
            yield i, i / fps, payload
            i += 1
            if end_frame is not None and i >= end_frame:
                return
    if not have_last or end_time is None:
        return
    duration = end_time()
    if duration is None:
        return
    n = num_sampled_frames(duration, fps)
    if end_frame is not None:
        n = min(n, end_frame)
    while i < n:
        yield i, i / fps, last  # type: ignore[misc]
        i += 1


@dataclass(frozen=True)
class SampledFrame:
    index: int             # sample number i (time i / fps)
    time: float            # target time i / fps
    frame_time: float      # time of the native frame actually used
    native_index: int      # its native frame number (0-based, presentation order)
    image: np.ndarray      # uint8 [size, size, 3] (or native [H, W, 3] when size is None)


def _to_rgb(frame: av.VideoFrame, source: Any, sar: Fraction | None = None) -> np.ndarray:
    try:
        return upright_rgb(frame, sar)  # square pixels, the display matrix applied (see "Orientation")
    except ValueError as e:
        raise VideoDecodeError(_name(source), str(e)) from None


def prepare_frame(image: np.ndarray, t: float, size: int | None, degradation: Degradation | None,
                  resize: str = "antialias") -> np.ndarray:
    """Native RGB frame sampled at ``t`` -> degraded (optional) -> letter-boxed (unless size is None)."""
    if degradation is not None:
        image = degradation(image, t)
    return letterbox(image, size, resize) if size is not None else image


def iter_sampled(
    source: Any,
    fps: float,
    size: int | None = 384,
    start_frame: int = 0,
    end_frame: int | None = None,
    degradation: Degradation | None = None,
    *,
    format: str | None = None,
    options: dict | None = None,
    timeout: float | tuple[float, float] | None = None,
    thread_type: str = "AUTO",
    resize: str = "antialias",
) -> Iterator[SampledFrame]:
    """The single decode-and-select generator behind ``iter_frames`` and ``load_clip``.

    ``source`` is a path, a URL or a readable file object (anything ``av.open`` takes);
    ``format``/``options``/``timeout`` go to ``av.open`` (devices, live streams). Frames before
    ``start_frame`` are decoded and dropped (no seeking, so times stay exact); decoding stops as
    soon as ``end_frame`` is reached. ``thread_type="SLICE"`` avoids frame-threading latency on
    live input.
    """
    check_resize(resize)
    stream = FrameStream(source, {"format": format, "options": options, "timeout": timeout}, thread_type)
    timed = ((d.time, d) for d in stream)
    rgb_of: tuple[int, np.ndarray] | None = None  # native frame converted last (reused for repeats)
    for i, t, decoded in select_at_or_after(timed, fps, start_frame, end_frame, lambda: stream.end_time):
        if rgb_of is None or rgb_of[0] != decoded.index:
            rgb_of = (decoded.index, _to_rgb(decoded.frame, source, stream.sar))
        yield SampledFrame(i, t, decoded.time, decoded.index, prepare_frame(rgb_of[1], t, size, degradation, resize))


def iter_frames(
    path: Any,
    fps: float,
    size: int | None = 384,
    start_frame: int = 0,
    end_frame: int | None = None,
    degradation: Degradation | None = None,
    **open_kwargs: Any,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (time, frame) one sampled frame at a time (the online engine's view of a video)."""
    for s in iter_sampled(path, fps, size, start_frame, end_frame, degradation, **open_kwargs):
        yield s.time, s.image


@dataclass(frozen=True)
class Clip:
    frames: np.ndarray        # uint8 [T, size, size, 3]
    times: np.ndarray         # target times i / fps, float64 [T]
    frame_times: np.ndarray   # times of the native frames used, float64 [T]
    native_indices: np.ndarray  # native frame numbers, int64 [T]


def decode_clip(
    path: Any,
    fps: float,
    start_frame: int = 0,
    end_frame: int | None = None,
    size: int | None = 384,
    degradation: Degradation | None = None,
    max_frames: int | None = None,
    backend: str = "pyav",
    resize: str = "antialias",
    **open_kwargs: Any,
) -> Clip:
    """Sampled frames ``[start_frame, end_frame)`` with their times and native frame numbers.

    ``max_frames`` caps the number of frames returned (the first ones are kept). ``backend``:
    ``"pyav"`` (default, the streaming decoder) or ``"decord"`` (optional, only if installed:
    random access, same sampling rule on decord's frame timestamps, no truncation detection; a video
    with a display rotation or non-square pixels is refused: decord gives its frames as stored).
    """
    if max_frames is not None:
        cap = start_frame + max_frames
        end_frame = cap if end_frame is None else min(end_frame, cap)
    if backend == "decord":
        from data.video_decord import decord_samples  # optional backend, imported only when asked for
        if display_transform(path) != IDENTITY:  # decord would give the frames as stored
            raise VideoDecodeError(path, "has a display rotation, which backend='decord' ignores; use backend='pyav'")
        samples = decord_samples(path, fps, size, start_frame, end_frame, degradation, check_resize(resize))
    elif backend == "pyav":
        samples = list(iter_sampled(path, fps, size, start_frame, end_frame, degradation, resize=resize, **open_kwargs))
    else:
        raise ValueError(f"backend must be 'pyav' or 'decord', got {backend!r}")
    if not samples:
        shape = (0, size, size, 3) if size is not None else (0, 0, 0, 3)
        return Clip(np.zeros(shape, np.uint8), np.zeros(0), np.zeros(0), np.zeros(0, np.int64))
    return Clip(
        np.stack([s.image for s in samples]),
        np.array([s.time for s in samples], dtype=np.float64),
        np.array([s.frame_time for s in samples], dtype=np.float64),
        np.array([s.native_index for s in samples], dtype=np.int64),
    )


def load_clip(
    path: Any,
    fps: float,
    start_frame: int = 0,
    end_frame: int | None = None,
    size: int = 384,
    degradation: Degradation | None = None,
    max_frames: int | None = None,
    backend: str = "pyav",
    resize: str = "antialias",
    **open_kwargs: Any,
) -> np.ndarray:
    """uint8 ``[T, size, size, 3]`` RGB frames sampled at ``fps`` (training's view of a video)."""
    return decode_clip(path, fps, start_frame, end_frame, size, degradation, max_frames, backend, resize,
                       **open_kwargs).frames
