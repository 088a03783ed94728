"""Tiny synthetic test videos written with PyAV (shared by every test that needs a video).

``write_test_video`` encodes ``n_frames`` frames at a constant rate, or at the explicit
presentation times ``vfr_times`` (variable frame rate). The default pattern encodes the frame index
in the pixels as vertical black/white stripes (bit k of the index = stripe k, least significant on
the left), so a test can decode a sampled frame with ``read_frame_index`` and check *which* native
frame the loader picked. The stripes are wide (``width / n_bits`` pixels) and pure black/white, so
they survive lossy codecs, chroma subsampling and moderate resizing.

Patterns:
  "index"        stripes over the whole frame;
  "noisy_index"  stripes in the top half, per-frame random noise in the bottom half (every frame
                 then costs many bytes, so truncating the file at x % of its bytes cuts the video at
                 roughly x % of its frames);
  "quadrants"    four colours (red, green / blue, white) and a yellow top-left corner: every
                 rotation and mirroring of it differs (orientation tests);
  a callable     ``pattern(index, time_s, height, width) -> uint8 [height, width, 3]``.

``display=(degrees, hflip, vflip)`` writes a display matrix (PyAV's ``set_display_rotation``:
degrees counter-clockwise, then the mirrorings), as a phone's portrait video has;
``set_tkhd_matrix`` patches the matrix of an MP4 written without one (older PyAV).
``sar`` gives the pixels a sample aspect ratio (anamorphic video); ``trim_edit_list`` cuts an MP4
through its edit list.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import struct

import av
import numpy as np

Pattern = Callable[[int, float, int, int], np.ndarray]

DEFAULT_BITS = 8
_WHITE, _BLACK = 255, 0


def index_stripes(index: int, width: int, n_bits: int = DEFAULT_BITS) -> np.ndarray:
    """One row (``width`` values) of the stripe code for ``index``."""
    if not 0 <= index < 2**n_bits:
        raise ValueError(f"index {index} does not fit in {n_bits} bits")
    bits = [(index >> k) & 1 for k in range(n_bits)]
    stripe_of_column = np.minimum(np.arange(width) * n_bits // width, n_bits - 1)
    return np.where(np.array(bits)[stripe_of_column] == 1, _WHITE, _BLACK).astype(np.uint8)


def index_pattern(index: int, time_s: float, height: int, width: int, n_bits: int = DEFAULT_BITS) -> np.ndarray:
    row = index_stripes(index, width, n_bits)
    return np.repeat(np.repeat(row[None, :, None], height, axis=0), 3, axis=2)


def noisy_index_pattern(index: int, time_s: float, height: int, width: int, n_bits: int = DEFAULT_BITS) -> np.ndarray:
    img = index_pattern(index, time_s, height, width, n_bits)
    rng = np.random.default_rng(index)
    half = height // 2
    img[half:] = rng.integers(0, 256, size=(height - half, width, 3), dtype=np.uint8)
    return img


def solid_pattern(color: Sequence[int]) -> Pattern:
    """A constant colour (for shot tests, combine two with ``switch_pattern``)."""
    c = np.asarray(color, dtype=np.uint8)

    def pattern(index: int, time_s: float, height: int, width: int) -> np.ndarray:
        return np.broadcast_to(c, (height, width, 3)).copy()

    return pattern


def switch_pattern(switch_index: int, before: Pattern, after: Pattern) -> Pattern:
    """``before`` for frames ``< switch_index``, ``after`` from then on (a hard cut)."""

    def pattern(index: int, time_s: float, height: int, width: int) -> np.ndarray:
        return (before if index < switch_index else after)(index, time_s, height, width)

    return pattern


def quadrant_pattern(index: int, time_s: float, height: int, width: int) -> np.ndarray:
    img = np.zeros((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    img[:h2, :w2], img[:h2, w2:] = (255, 0, 0), (0, 255, 0)
    img[h2:, :w2], img[h2:, w2:] = (0, 0, 255), (255, 255, 255)
    img[: max(1, height // 6), : max(1, width // 6)] = (255, 255, 0)
    return img


_NAMED_PATTERNS: dict[str, Pattern] = {"index": index_pattern, "noisy_index": noisy_index_pattern,
                                       "quadrants": quadrant_pattern}

# Container chosen from the file extension (PyAV's own guess misses a few of these).
_FORMAT_BY_SUFFIX = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm",
                     ".avi": "avi", ".ts": "mpegts", ".nut": "nut"}


def write_test_video(
    path: str | Path,
    n_frames: int,
    fps: float = 10.0,
    size: tuple[int, int] = (64, 48),
    codec: str = "mpeg4",
    vfr_times: Sequence[float] | None = None,
    pattern: str | Pattern = "index",
    container_format: str | None = None,
    container_options: dict[str, str] | None = None,
    display: tuple[float, bool, bool] | None = None,
    sar: Fraction | None = None,
) -> Path:
    """Write a small video and return its path.

    size is (width, height) and must be even (yuv420p). With ``vfr_times`` (seconds, strictly
    increasing, one per frame, millisecond resolution) frames get exactly those presentation times
    and ``fps`` is only the nominal rate written in the header. Quality is set near-lossless so the
    stripe code survives.
    """
    path = Path(path)
    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"size must be even for yuv420p, got {size}")
    if vfr_times is not None:
        if len(vfr_times) != n_frames:
            raise ValueError(f"vfr_times has {len(vfr_times)} entries for {n_frames} frames")
        if any(b <= a for a, b in zip(vfr_times, vfr_times[1:])):
            raise ValueError("vfr_times must be strictly increasing")
    draw = _NAMED_PATTERNS[pattern] if isinstance(pattern, str) else pattern
    fmt = container_format or _FORMAT_BY_SUFFIX.get(path.suffix.lower())
    path.parent.mkdir(parents=True, exist_ok=True)

    rate = Fraction(fps).limit_denominator(1001)
    codec_options = {"crf": "12"} if codec in ("libx264", "h264") else {}
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=rate, options=codec_options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if sar is not None:  # non-square pixels: shown ``sar`` times as wide as high
            stream.codec_context.sample_aspect_ratio = sar
        if display is not None:
            degrees, hflip, vflip = display
            stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        if codec not in ("libx264", "h264"):
            stream.bit_rate = 8_000_000  # near-lossless for these tiny frames
        millis = Fraction(1, 1000)
        if vfr_times is not None:
            stream.time_base = millis
            stream.codec_context.time_base = millis
        for i in range(n_frames):
            t = vfr_times[i] if vfr_times is not None else i / fps
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(draw(i, t, height, width)), format="rgb24")
            if vfr_times is not None:
                frame.pts = round(vfr_times[i] * 1000)
                frame.time_base = millis
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _boxes(data: bytes | bytearray, start: int, end: int):
    """(type, payload start, box end) of the ISO-BMFF boxes in data[start:end]."""
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start:start + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[start + 8:start + 16])[0], 16
        elif size == 0:
            size = end - start
        yield kind, start + header, start + size
        start += size


def set_tkhd_matrix(path: str | Path, matrix: Sequence[int]) -> Path:
    """Overwrite the display matrix (9 x int32: a, b, u, c, d, v, x, y, w; a-d, x, y in 16.16,
    u, v, w in 2.30) of every track header of an MP4/MOV file in place."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    found = 0
    for kind, body, end in _boxes(data, 0, len(data)):
        if kind != b"moov":
            continue
        for tkind, tbody, tend in _boxes(data, body, end):
            if tkind != b"trak":
                continue
            for hkind, hbody, _ in _boxes(data, tbody, tend):
                if hkind == b"tkhd":
                    version = data[hbody]
                    # version/flags, times and ids, duration, reserved, layer, group, volume, reserved
                    offset = hbody + 4 + (20 if version == 0 else 32) + 8 + 2 + 2 + 2 + 2
                    data[offset:offset + 36] = struct.pack(">9i", *matrix)
                    found += 1
    if not found:
        raise ValueError(f"no track header (tkhd) in {path}")
    path.write_bytes(bytes(data))
    return path


def _box(data: bytes | bytearray, path: Sequence[bytes], start: int = 0, end: int | None = None):
    """(payload start, end) of the first box along ``path`` (e.g. moov/trak/edts/elst), else None."""
    for kind, body, box_end in _boxes(data, start, len(data) if end is None else end):
        if kind == path[0]:
            found = (body, box_end) if len(path) == 1 else _box(data, path[1:], body, box_end)
            if found:
                return found
    return None


def trim_edit_list(path: str | Path, skip_s: float = 0.0, keep_s: float | None = None) -> Path:
    """Trim an MP4 written by ``write_test_video`` in place through its edit list, as a lossless cut
    (``ffmpeg -ss A -t B -c copy``) does: the shown video starts ``skip_s`` later and, with
    ``keep_s``, lasts ``keep_s`` seconds. The samples stay in the file (the demuxer returns the
    ones outside the edit flagged discard)."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    elst, mdhd, mvhd = (_box(data, p) for p in ([b"moov", b"trak", b"edts", b"elst"],
                                                 [b"moov", b"trak", b"mdia", b"mdhd"], [b"moov", b"mvhd"]))
    if elst is None or mdhd is None or mvhd is None or data[elst[0]] != 0:
        raise ValueError(f"no version-0 edit list in {path}")
    scale = lambda body: struct.unpack(">I", data[body + 12:body + 16])[0]  # noqa: E731 (version-0 header)
    media_scale, movie_scale = scale(mdhd[0]), scale(mvhd[0])
    entry = elst[0] + 8  # after version/flags and the entry count: the first (only) entry
    duration, media_time = struct.unpack(">Ii", data[entry:entry + 8])
    if keep_s is not None:
        duration = round(keep_s * movie_scale)
    struct.pack_into(">Ii", data, entry, duration, media_time + round(skip_s * media_scale))
    path.write_bytes(bytes(data))
    return path


def read_frame_index(frame: np.ndarray, n_bits: int = DEFAULT_BITS,
                     box: tuple[int, int, int, int] | None = None) -> int:
    """Decode the stripe code of an RGB frame written with an index pattern.

    box = (x0, y0, width, height) of the picture inside ``frame`` (e.g. the letterbox content
    area); default the whole frame. Reads a 3x3 neighbourhood at each stripe centre, a quarter of
    the way down (inside the stripes for both named patterns).
    """
    h, w = frame.shape[:2]
    x0, y0, bw, bh = box if box is not None else (0, 0, w, h)
    y = y0 + bh // 4
    index = 0
    for k in range(n_bits):
        x = x0 + int((k + 0.5) * bw / n_bits)
        patch = frame[max(y - 1, 0): y + 2, max(x - 1, 0): x + 2].astype(np.float64)
        if patch.mean() > 127.5:
            index |= 1 << k
    return index
