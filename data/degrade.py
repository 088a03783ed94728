"""Quality-dropout degradations and their per-video schedules (HIHD training, degraded TVSum).

Four degradations of a native-resolution RGB uint8 frame (applied before letter-boxing):

* ``quality``: shrink to 64x64 (bilinear), enlarge back with nearest neighbour, Gaussian blur
  5x5 (sigma 1.1, OpenCV's sigma for ksize 5 and sigma 0; mirrored borders as OpenCV's default).
* ``block_noise``: every 32x32 block (edge blocks clipped) is, with probability 0.1, replaced by
  dark noise uniform in [0, 50). The randomness comes from (seed, frame time), so the same frame
  of the same video always gets the same blocks.
* ``color_banding``: ``(x // 64) * 64`` (4 levels per channel).
* ``blackout``: all zeros.

A ``DegradationSchedule`` is immutable: a tuple of ``Segment(start_s, end_s, kind)``
(half-open ``[start, end)``) plus the seed for ``block_noise``. Applying it never changes it (the
reference popped intervals from a shared list, so each was used once per worker and then lost).
``make_schedule`` draws a random schedule from its own ``numpy`` Generator and never touches the
global RNGs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

KINDS = ("quality", "block_noise", "color_banding", "blackout")

QUALITY_SIZE = 64
BLUR_SIGMA = 1.1          # OpenCV: 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8 for ksize 5
BLUR_RADIUS = 2           # 5x5 kernel
BLOCK = 32
BLOCK_PROB = 0.1
BLOCK_NOISE_MAX = 50      # exclusive upper bound of the noise values
BANDING_STEP = 64


def _check_frame(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 frame [H, W, 3], got {frame.dtype} {frame.shape}")


def quality(frame: np.ndarray) -> np.ndarray:
    _check_frame(frame)
    h, w = frame.shape[:2]
    small = Image.fromarray(frame).resize((QUALITY_SIZE, QUALITY_SIZE), Image.Resampling.BILINEAR)
    big = np.asarray(small.resize((w, h), Image.Resampling.NEAREST)).astype(np.float32)
    blurred = gaussian_filter(big, sigma=(BLUR_SIGMA, BLUR_SIGMA, 0), mode="mirror",
                              truncate=BLUR_RADIUS / BLUR_SIGMA)
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


def block_noise(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    _check_frame(frame)
    out = frame.copy()
    h, w = frame.shape[:2]
    for y in range(0, h, BLOCK):
        for x in range(0, w, BLOCK):
            if rng.random() < BLOCK_PROB:
                bh, bw = min(BLOCK, h - y), min(BLOCK, w - x)
                out[y:y + bh, x:x + bw] = rng.integers(0, BLOCK_NOISE_MAX, size=(bh, bw, 3), dtype=np.uint8)
    return out


def color_banding(frame: np.ndarray) -> np.ndarray:
    _check_frame(frame)
    return (frame // BANDING_STEP) * BANDING_STEP


def blackout(frame: np.ndarray) -> np.ndarray:
    _check_frame(frame)
    return np.zeros_like(frame)


def frame_rng(seed: int, time_s: float) -> np.random.Generator:
    """The Generator for one frame: a function of (seed, time in microseconds) only."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(round(time_s * 1e6))])


def degrade(frame: np.ndarray, kind: str, seed: int = 0, time_s: float = 0.0) -> np.ndarray:
    """Apply one degradation (a new array; ``frame`` is never modified)."""
    if kind == "quality":
        return quality(frame)
    if kind == "block_noise":
        return block_noise(frame, frame_rng(seed, time_s))
    if kind == "color_banding":
        return color_banding(frame)
    if kind == "blackout":
        return blackout(frame)
    raise ValueError(f"unknown degradation {kind!r}; expected one of {KINDS}")


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    kind: str

    def __post_init__(self):
        if not self.end > self.start >= 0:
            raise ValueError(f"segment needs 0 <= start < end, got [{self.start}, {self.end})")
        if self.kind not in KINDS:
            raise ValueError(f"unknown degradation {self.kind!r}; expected one of {KINDS}")

    def __contains__(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class DegradationSchedule:
    """Immutable (start_s, end_s, kind) segments + seed; call it as ``schedule(frame, time_s)``."""

    segments: tuple[Segment, ...] = ()
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "segments", tuple(sorted(self.segments, key=lambda s: s.start)))
        for a, b in zip(self.segments, self.segments[1:]):
            if b.start < a.end:
                raise ValueError(f"overlapping degradation segments {a} and {b}")

    @classmethod
    def from_list(cls, items: Iterable[Sequence], seed: int = 0) -> "DegradationSchedule":
        """From ``[[start, end, kind], ...]`` (the HIHD CSV ``quality_dropout`` column)."""
        return cls(tuple(Segment(float(s), float(e), str(k)) for s, e, k in items), seed)

    def to_list(self) -> list[list]:
        return [[s.start, s.end, s.kind] for s in self.segments]

    def kind_at(self, time_s: float) -> str | None:
        for seg in self.segments:
            if time_s in seg:
                return seg.kind
        return None

    def covered_seconds(self) -> float:
        return sum(s.end - s.start for s in self.segments)

    def apply(self, frame: np.ndarray, time_s: float) -> np.ndarray:
        kind = self.kind_at(time_s)
        return frame if kind is None else degrade(frame, kind, self.seed, time_s)

    __call__ = apply


def make_schedule(
    duration: float,
    seed: int,
    min_frac: float = 0.05,
    max_frac: float = 0.20,
    seg_len: tuple[int, int] = (1, 5),
    types: Sequence[str] = KINDS,
    max_blackout_run_s: float = 5,
    max_attempts: int = 1000,
) -> DegradationSchedule:
    """Random non-overlapping integer-second segments covering a random share of the video.

    A target share ``u ~ U(min_frac, max_frac)`` of ``duration`` is drawn; segments of
    ``randint(seg_len)`` seconds with a random kind are placed at random integer starts without
    overlapping, until the covered time reaches ``u * duration``. The last segment is shortened so
    that the total never exceeds the target by a whole second (it may then be shorter than
    ``seg_len[0]``). Blackouts last at most ``max_blackout_run_s`` and never touch another
    blackout, so no black run is longer (the paper's limit, absent from the reference loader).
    Placement gives up after ``max_attempts`` failed draws (very short or crowded videos).
    """
    if not 0 <= min_frac <= max_frac <= 1:
        raise ValueError(f"need 0 <= min_frac <= max_frac <= 1, got {min_frac}, {max_frac}")
    lo, hi = seg_len
    if not 1 <= lo <= hi:
        raise ValueError(f"seg_len must be integers 1 <= lo <= hi, got {seg_len}")
    types = tuple(types)
    if not types or any(t not in KINDS for t in types):
        raise ValueError(f"types must be a non-empty subset of {KINDS}, got {types}")
    if max_blackout_run_s < 1 and "blackout" in types:
        raise ValueError("max_blackout_run_s must be >= 1 s when blackout is allowed")
    rng = np.random.default_rng(seed)
    target = rng.uniform(min_frac, max_frac) * duration
    whole_seconds = int(math.floor(duration))
    segments: list[Segment] = []
    covered = 0.0
    attempts = 0
    while covered < target and attempts < max_attempts:
        attempts += 1
        kind = types[rng.integers(len(types))]
        length = int(rng.integers(lo, hi + 1))
        if kind == "blackout":
            length = min(length, int(max_blackout_run_s))
        length = min(length, int(math.ceil(target - covered)), whole_seconds)
        if length < 1:
            break
        start = int(rng.integers(0, whole_seconds - length + 1))
        candidate = Segment(float(start), float(start + length), kind)
        if any(_conflicts(candidate, s) for s in segments):
            continue
        segments.append(candidate)
        covered += length
    return DegradationSchedule(tuple(segments), seed)


def _conflicts(a: Segment, b: Segment) -> bool:
    if a.start < b.end and b.start < a.end:
        return True
    touching = a.end == b.start or b.end == a.start
    return touching and a.kind == "blackout" and b.kind == "blackout"
