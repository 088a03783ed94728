"""Upright 8-bit RGB frames: a video frame's display matrix, a still image's EXIF orientation and
bit depth (used by ``data/video.py`` and the frame-folder source of ``data/sources.py``).

* **Video**: FFmpeg attaches the container's display matrix (MP4/MOV ``tkhd``, or an H.264/HEVC
  display-orientation message) to every decoded frame; ``frame_transform`` reads it and
  ``upright_rgb`` applies it as a player (and the ffmpeg program's autorotate) does: rotations by
  multiples of 90 degrees and mirrorings. Any other matrix (an arbitrary angle, a shear) is refused.
  Non-square pixels (the stream's sample aspect ratio: anamorphic DVD/DV, HDV 1440x1080) are first
  resampled to square ones, so the picture has its display aspect ratio (``square_pixels``).
* **Images**: the EXIF orientation is applied (``PIL.ImageOps.exif_transpose``); 16-bit images
  (``I;16*``, and ``I`` as Pillow gives for 16-bit PNG/PGM/PPM) keep their top 8 bits (``v >> 8``,
  so an 8-bit picture stored as 16 bits, ``v * 257``, gives back exactly ``v``); a 32-bit integer
  or floating-point image has no defined white level and is refused with its file name.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps

# ---------------------------------------------------------------------------------- video frames

# 16.16 fixed point: an entry smaller than this fraction of the largest is a zero of the matrix
_ZERO = 1e-3


class Transform(NamedTuple):
    """Stored picture -> displayed picture: transpose first, then mirror the result."""

    transpose: bool
    flip_h: bool   # mirror left-right
    flip_v: bool   # mirror top-bottom


IDENTITY = Transform(False, False, False)


def matrix_transform(matrix) -> Transform:
    """The transform of FFmpeg's 3x3 display matrix (9 int32, ``[a b u; c d v; x y w]``).

    A stored pixel ``(p, q)`` (column, row) is shown at ``(a p + c q, b p + d q)`` plus an offset.
    Raises ValueError unless the 2x2 part is a rotation by a multiple of 90 degrees, possibly mirrored.
    """
    m = [float(v) for v in matrix]
    if len(m) != 9:
        raise ValueError(f"a display matrix has 9 entries, got {len(m)}")
    a, b, c, d = m[0], m[1], m[3], m[4]
    big = max(abs(a), abs(b), abs(c), abs(d))
    zero = lambda v: abs(v) <= _ZERO * big  # noqa: E731
    if big > 0 and zero(b) and zero(c) and not zero(a) and not zero(d):
        return Transform(False, a < 0, d < 0)
    if big > 0 and zero(a) and zero(d) and not zero(b) and not zero(c):
        return Transform(True, c < 0, b < 0)
    raise ValueError(f"display matrix {[int(v) for v in matrix]} is not a rotation by a multiple of 90 "
                     "degrees (with or without mirroring); such videos are not supported")


def frame_transform(frame) -> Transform:
    """The transform an ``av.VideoFrame``'s display matrix asks for (IDENTITY without one)."""
    from av.sidedata.sidedata import Type

    if not len(frame.side_data):
        return IDENTITY
    side = frame.side_data.get(Type.DISPLAYMATRIX)
    if side is None:
        return IDENTITY
    return matrix_transform(np.frombuffer(bytes(side), dtype="<i4", count=9))


def apply_transform(image: np.ndarray, t: Transform) -> np.ndarray:
    """``image`` ([H, W, ...]) as displayed; the same array when ``t`` is the identity."""
    if t == IDENTITY:
        return image
    out = image.swapaxes(0, 1) if t.transpose else image
    if t.flip_h:
        out = out[:, ::-1]
    if t.flip_v:
        out = out[::-1]
    return np.ascontiguousarray(out)


def square_size(width: int, height: int, sar) -> tuple[int, int]:
    """Stored size -> size in square pixels for a sample (pixel) aspect ratio ``sar`` (a Fraction; None
    or 0: unknown, i.e. square): the wider side of a pixel stretches the other dimension, so no detail
    is lost (720x576 at 16:15 -> 768x576; 1440x1080 at 4:3 -> 1920x1080)."""
    if not sar or sar == 1:
        return width, height
    if sar > 1:
        return max(1, round(width * sar)), height
    return width, max(1, round(height / sar))


def square_pixels(image: np.ndarray, sar) -> np.ndarray:
    """A stored ``[H, W, 3]`` picture with non-square pixels resampled to square ones (PIL bilinear,
    an enlargement); the same array when the pixels are square."""
    h, w = image.shape[:2]
    new_w, new_h = square_size(w, h, sar)
    if (new_w, new_h) == (w, h):
        return image
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.Resampling.BILINEAR))


def displayed_size(width: int, height: int, t: Transform, sar=None) -> tuple[int, int]:
    width, height = square_size(width, height, sar)
    return (height, width) if t.transpose else (width, height)


def upright_rgb(frame, sar=None) -> np.ndarray:
    """uint8 ``[H, W, 3]`` RGB of an ``av.VideoFrame`` as a player shows it: pixels of the stream's
    sample aspect ratio ``sar`` made square, then the display matrix applied (ValueError: odd matrix)."""
    return apply_transform(square_pixels(frame.to_ndarray(format="rgb24"), sar), frame_transform(frame))


# -------------------------------------------------------------------------------------- images

SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Pillow opens these formats' 16-bit greyscale as mode "I" with values 0..65535 (PGM/PPM rescaled).
SIXTEEN_BIT_I_FORMATS = frozenset({"PNG", "PPM"})


class ImageFileError(ValueError):
    """An image of a frame folder cannot be used; the message names the file."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@functools.lru_cache(maxsize=None)
def _converts_to_rgb(mode: str) -> bool:
    try:
        Image.new(mode, (1, 1)).convert("RGB")
    except (ValueError, OSError, KeyError):
        return False
    return True


def _unsupported_mode(im: Image.Image) -> str | None:
    """Why ``im`` (opened, not loaded) cannot be made 8-bit RGB faithfully, or None."""
    if im.mode in SIXTEEN_BIT_MODES or (im.mode == "I" and im.format in SIXTEEN_BIT_I_FORMATS):
        return None
    if im.mode in ("I", "F"):
        kind = "32-bit integer" if im.mode == "I" else "floating-point"
        return (f"{kind} image ({im.format} mode {im.mode}) has no defined white level; "
                "convert the frames to 8- or 16-bit images")
    if im.mode.startswith("I;") or not _converts_to_rgb(im.mode):
        return f"unsupported image mode {im.mode!r} ({im.format}); convert the frames to 8- or 16-bit RGB or greyscale"
    return None


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 ``[H, W, 3]`` RGB, upright (EXIF orientation applied), 8-bit
    (16-bit values ``>> 8``). Raises ImageFileError (a ValueError naming the file) when it cannot
    be read or converted.
    """
    try:
        with Image.open(path) as im:
            reason = _unsupported_mode(im)
            if reason:
                raise ImageFileError(path, reason)
            sixteen = im.mode in SIXTEEN_BIT_MODES or im.mode == "I"  # "I" passed: a 16-bit format
            upright = ImageOps.exif_transpose(im)
            if sixteen:
                grey = (np.clip(np.asarray(upright, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            return np.asarray(upright.convert("RGB"))
    except ImageFileError:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, struct.error ...
        raise ImageFileError(path, f"cannot read the image ({type(e).__name__}: {e})") from e


PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the empty IEND chunk that closes every PNG


def _tail(path: Path, n: int = 32) -> bytes:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - n))
        return f.read()


def _jpeg_complete(path: Path) -> bool:
    """Whether a JPEG has an end-of-image marker (FF D9) after its first scan; a cut file has none.

    Fast path: the file ends with it (zero padding allowed). Otherwise the whole file is searched:
    0xFF inside entropy-coded data is always followed by 0x00 or a restart marker, so an FF D9
    after the first start-of-scan is the end marker, and data appended after it (e.g. a motion
    photo's video) is allowed.
    """
    if _tail(path).rstrip(b"\x00").endswith(b"\xff\xd9"):
        return True
    data = path.read_bytes()
    sos = data.find(b"\xff\xda")
    return sos >= 0 and data.find(b"\xff\xd9", sos + 2) >= 0


def check_image(path: str | os.PathLike) -> None:
    """Cheap check that ``path`` is a usable image: its header identifies an image whose mode
    converts to 8-bit RGB, and a PNG or JPEG is whole (it ends with its end chunk / marker; if not,
    a PNG's chunks are walked with their checksums by ``verify`` and a JPEG is searched for its
    end marker after the scan data). Raises ImageFileError naming the file. Pixels are not
    decoded: damage inside the compressed data is found when the frame is read (``load_rgb``
    names the file then).
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            reason = _unsupported_mode(im)
            if reason:
                raise ImageFileError(path, reason)
            fmt = im.format
            if fmt == "PNG" and not _tail(path, len(PNG_END)) == PNG_END:
                im.verify()  # trailing bytes after IEND are allowed; a cut file raises here
    except ImageFileError:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, struct.error ...
        raise ImageFileError(path, f"not a readable image ({type(e).__name__}: {e})") from e
    if fmt == "JPEG" and not _jpeg_complete(path):
        raise ImageFileError(path, "truncated JPEG (no end-of-image marker after the scan data)")


class FirstFrameTransform:
    """The display transform of a video, learnt by decoding its first frame from the packets fed
    to ``see`` (the display matrix is attached to decoded frames only). ``finish`` returns it
    (IDENTITY if no frame could be decoded) or raises the ValueError of an unsupported matrix."""

    MAX_PACKETS = 64

    def __init__(self, stream):
        self.stream, self.value, self.error, self._fed = stream, None, None, 0

    @property
    def done(self) -> bool:
        return self.value is not None or self.error is not None or self._fed >= self.MAX_PACKETS

    def _learn(self, frames) -> None:
        if frames:
            try:
                self.value = frame_transform(frames[0])
            except ValueError as e:
                self.error = e

    def see(self, packet) -> bool:
        """Decode ``packet`` if still needed; True once done (known, or given up after MAX_PACKETS)."""
        import av

        if not self.done and packet.stream.index == self.stream.index:
            self._fed += 1
            try:
                self._learn(self.stream.decode(packet))
            except av.error.FFmpegError:
                pass  # a damaged first packet: the next ones may decode (the decoder reports damage)
        return self.done

    def finish(self) -> Transform:
        """After the last packet: flush the decoder if no frame came out yet."""
        import av

        if self.value is None and self.error is None and self._fed:
            try:
                self._learn(self.stream.decode(None))
            except av.error.FFmpegError:
                pass
        if self.error is not None:
            raise self.error
        return self.value or IDENTITY
