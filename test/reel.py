"""Highlight reels: cut time segments out of a source video with PyAV and join them into one mp4.

Frames are written as a player shows them: non-square pixels (the stream's sample aspect ratio,
e.g. anamorphic 720x576 at 64:45) resampled to square ones, then upright (a video's display matrix
applied, as ``data.video`` decodes them). The reel itself has square pixels and no display matrix.
Video only: the audio track is dropped (cutting audio on segment boundaries needs resampling to
the encoder's frame size; no evaluation uses it). Segment times are seconds from the first decoded
frame of the video stream, the convention of ``data.video`` and ``test.postprocess``; a frame is
kept when its start time t satisfies start <= t < end.
"""
from __future__ import annotations

import itertools
import os
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av

from test.postprocess import Segment, merge_segments
from utils.io import apply_umask

_EPS = 1e-6  # float timestamps: a frame at 0.3 s belongs to a segment starting at 0.3 s

DEFAULT_CODECS = ("libx264", "mpeg4")  # first one this PyAV build can encode wins


@dataclass
class ReelInfo:
    path: Path
    frames: int
    fps: float
    duration_s: float  # frames / fps
    codec: str
    segments: list[Segment] = field(default_factory=list)  # merged, as cut


def available_codec(preferred: Sequence[str] = DEFAULT_CODECS) -> str:
    for name in preferred:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # PyAV raises its own error types for unknown codecs
            continue
    raise ValueError(f"none of the encoders {list(preferred)} is available in this PyAV build")


def _even(n: int) -> int:
    return max(2, n - n % 2)  # yuv420p needs even width and height


def _encoder_options(codec: str, quality: int) -> dict[str, str]:
    if codec in ("libx264", "h264"):
        return {"crf": str(quality), "preset": "veryfast"}
    if codec == "mpeg4":
        # cap the quantiser (crf 23 -> q <= 3); mpeg4's default rate control drifts visibly
        return {"qmin": "1", "qmax": str(max(1, min(31, round(quality / 8))))}
    return {}


def write_highlight_reel(source_video, segments: Sequence[Sequence[float]], out_mp4,
                         codec: str | None = None, quality: int = 23, max_side: int | None = None,
                         seek: bool = True) -> ReelInfo:
    """Write the frames of ``segments`` ((start_s, end_s[, score]) in any order) to ``out_mp4``.

    Overlapping segments are merged first, so no frame appears twice; the reel plays at the source
    frame rate. ``codec`` None -> libx264 if available, else mpeg4. ``quality``: x264 CRF (mpeg4
    maps it to a qscale). ``max_side``: downscale so the longer side is at most this. ``seek``
    jumps to each segment (fast on long videos); False decodes the whole file once. The file is
    written to a temporary name and renamed, so a crash leaves no half-written reel.
    """
    segs = [g for g in merge_segments([(s[0], s[1], s[2] if len(s) > 2 else 0.0) for s in segments])
            if g.end > g.start]
    if not segs:
        raise ValueError("no non-empty segment to cut")
    codec = codec or available_codec()
    out_path = Path(out_mp4)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.stem}.", suffix=".mp4")
    os.close(fd)
    try:
        with av.open(str(source_video)) as src:
            if not src.streams.video:
                raise ValueError(f"{source_video}: no video stream")
            vs = src.streams.video[0]
            vs.thread_type = "AUTO"
            rate = Fraction(vs.average_rate or vs.guessed_rate or 25)
            sar = vs.sample_aspect_ratio  # read while open: the stream points into FFmpeg memory
            try:
                n = _encode(_kept_frames(src, vs, segs, rate, seek), tmp, codec, rate, quality, max_side, sar)
            except _Unsought:  # timestamps a seek cannot trust: decode in order (the tmp file is rewritten)
                n = _encode(_kept_in_order(source_video, segs), tmp, codec, rate, quality, max_side, sar)
        if n == 0:
            raise ValueError(f"the segments {segs} contain no frame of {source_video}")
        apply_umask(tmp)  # mkstemp made it private
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return ReelInfo(out_path, n, float(rate), n / float(rate), codec, segs)


class _Unsought(Exception):
    """The frames' own timestamps cannot place them (missing, or not increasing in presentation order)."""


def _kept_in_order(source_video, segs: list[Segment]):
    """Every frame decoded in order, timed by ``data.video``'s clock (the times the model was given:
    faulty PTS repaired, e.g. H.264 with B-frames in AVI, whose PTS sit on the wrong frames)."""
    from data.video import FrameStream

    for d in FrameStream(str(source_video)):
        if any(g.start - _EPS <= d.time < g.end - _EPS for g in segs):
            yield d.frame


def _kept_frames(src, vs, segs: list[Segment], rate: Fraction, seek: bool):
    """Yield decoded frames whose time falls in a segment, in time order, each once.

    Times are seconds from the first decoded frame (the convention of ``data.video``). Seeking
    trusts the frames' timestamps and the demuxer's seek; where the timestamps are missing or go
    backwards (checked on the first frames, then on every frame decoded), or a seek lands past a
    segment's start, it raises ``_Unsought`` and the caller starts the reel over, decoding in order
    with the repaired clock.
    """
    if not seek:
        yield from _kept_in_order(src.name, segs)
        return
    frames = src.decode(vs)
    first = next(frames, None)
    if first is None:
        return
    if first.time is None:
        raise _Unsought
    origin = first.time
    prev = first.time
    for frame in itertools.islice(frames, 15):  # the first frames' order tells whether PTS are faulty
        if frame.time is None or frame.time <= prev:
            raise _Unsought
        prev = frame.time
    last = float("-inf")
    for g in segs:
        # lands on the key frame at or before the segment start
        src.seek(max(0, int((g.start + origin) / vs.time_base)), stream=vs, backward=True)
        decoded = None
        for frame in src.decode(vs):
            if frame.time is None or (decoded is not None and frame.time <= decoded):
                raise _Unsought
            if decoded is None and frame.time - origin > max(g.start, last) + _EPS:
                raise _Unsought  # the seek landed past the segment's start (MPEG-TS seeks by byte estimates)
            decoded = t = frame.time - origin
            if t >= g.end - _EPS:
                break
            if t >= g.start - _EPS and t > last:  # never write a frame twice
                last = t
                yield frame


def _encode(frames, path: str, codec: str, rate: Fraction, quality: int, max_side: int | None, sar=None) -> int:
    from data.upright import IDENTITY, apply_transform, frame_transform, square_size

    n = 0
    with av.open(path, "w", format="mp4") as out:
        stream = None
        for frame in frames:
            turn = frame_transform(frame)  # read before any reformat, which drops the frame's side data
            # non-square pixels first (the SAR is the stored picture's): the reel's pixels are square, so
            # stored as they are, an anamorphic video's reel would play squeezed (16:9 shown as 5:4)
            square = square_size(frame.width, frame.height, sar)
            if square != (frame.width, frame.height):
                frame = frame.reformat(width=square[0], height=square[1], format="rgb24", interpolation="BILINEAR")
            # the reel carries no display matrix: turn a rotated (phone) video's frames upright, as
            # data.video shows them to the model, or the reel would play sideways
            if turn != IDENTITY:
                frame = av.VideoFrame.from_ndarray(apply_transform(frame.to_ndarray(format="rgb24"), turn), format="rgb24")
            if stream is None:
                w, h = frame.width, frame.height
                if max_side and max(w, h) > max_side:
                    k = max_side / max(w, h)
                    w, h = round(w * k), round(h * k)
                w, h = _even(w), _even(h)
                stream = out.add_stream(codec, rate=rate)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                stream.options = _encoder_options(codec, quality)
            img = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
            img.pts, img.time_base = n, 1 / rate  # consecutive frames: the cuts play back to back
            for packet in stream.encode(img):
                out.mux(packet)
            n += 1
        if stream is not None:
            for packet in stream.encode():
                out.mux(packet)
    return n
