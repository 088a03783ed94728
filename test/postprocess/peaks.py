"""Peak picking: offline (``find_highlights``, whole series) and online (``OnlinePeakDetector``)."""
from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

from test.postprocess.smoothing import (CAUSAL_POLYORDER, SAVGOL_POLYORDER, SAVGOL_WINDOW, CausalSmoother, _as_series,
                                        _as_times, smooth)

PEAK_HEIGHT = "mean+0.5std"
PEAK_PROMINENCE = 0.02
PEAK_DISTANCE_S = 10.0
CONFIRM_DELAY_S = 3.0


def parse_height(height) -> tuple[str, float] | None:
    """Validate a height spec: None, a number -> ("abs", value), or text "mean+K*std" -> ("std", K).

    Accepted text: "mean", "mean+0.5std", "mean - 1std", "mean+0.5*std".
    """
    if height is None:
        return None
    if isinstance(height, (int, float, np.floating, np.integer)) and not isinstance(height, bool):
        return ("abs", float(height))
    if isinstance(height, str):
        m = re.fullmatch(r"\s*mean\s*(?:([+-])\s*(\d+(?:\.\d*)?|\.\d+)\s*\*?\s*std)?\s*", height)
        if m:
            k = 0.0 if m.group(1) is None else float(m.group(2)) * (1 if m.group(1) == "+" else -1)
            return ("std", k)
    raise ValueError(f"height must be a number, None or 'mean+K std', got {height!r}")


def _height_from_stats(spec: tuple[str, float] | None, mean: float, std: float) -> float | None:
    if spec is None:
        return None
    kind, v = spec
    return v if kind == "abs" else mean + v * std


def resolve_height(height, smoothed: np.ndarray) -> float | None:
    """The find_peaks height for ``smoothed``: a number, None, or "mean+K std" of ``smoothed``."""
    spec = parse_height(height)
    s = np.asarray(smoothed, dtype=np.float64)
    if spec is None or (spec[0] == "std" and len(s) == 0):
        return None
    return _height_from_stats(spec, float(s.mean()), float(s.std()))


def distance_frames(distance_s: float, fps: float) -> int:
    """Minimum peak separation in frames (>= 1, as find_peaks requires)."""
    return max(1, int(round(distance_s * fps)))


def infer_fps(times) -> float:
    t = np.asarray(times, dtype=np.float64)
    d = np.diff(t)
    if len(d) == 0 or not np.all(d > 0):
        raise ValueError("cannot infer fps: need >= 2 strictly increasing frame times")
    return float(1.0 / np.median(d))


@dataclass
class Highlights:
    """Peaks of a smoothed score series (arrays aligned with each other)."""

    times: np.ndarray  # seconds
    indices: np.ndarray  # frame indices into the series
    heights: np.ndarray  # smoothed score at each peak
    prominences: np.ndarray
    smoothed: np.ndarray  # the whole smoothed series
    height_threshold: float | None
    fps: float


def find_highlights(times, scores, fps: float | None = None, window: int = SAVGOL_WINDOW,
                    polyorder: int = SAVGOL_POLYORDER, height=PEAK_HEIGHT,
                    prominence: float | None = PEAK_PROMINENCE, distance_s: float = PEAK_DISTANCE_S,
                    smoothed: bool = False) -> Highlights:
    """Savitzky-Golay smoothing + ``scipy.signal.find_peaks`` (reference §5.2).

    ``height`` "mean+0.5std" is computed on the smoothed series; distance = round(distance_s*fps)
    frames (the reference's int(10*fps) for integer products). Peak times are read from
    ``times`` (not index/fps), so series that do not start at 0 are handled. ``fps`` None -> inferred
    from ``times``. ``smoothed=True``: ``scores`` are already smoothed (no second filtering).
    """
    t = _as_times(times)
    x = _as_series(scores)
    if len(t) != len(x):
        raise ValueError(f"times ({len(t)}) and scores ({len(x)}) differ in length")
    fps = infer_fps(t) if fps is None else float(fps)
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be > 0, got {fps}")
    s = x.copy() if smoothed else smooth(x, window, polyorder)
    h = resolve_height(height, s)
    if len(s) < 3:  # a peak needs a lower neighbour on both sides
        empty = np.zeros(0)
        return Highlights(empty, np.zeros(0, dtype=np.int64), empty, empty, s, h, fps)
    # prominence=0 still makes find_peaks report prominences, without filtering on them
    idx, props = find_peaks(s, height=h, prominence=0.0 if prominence is None else prominence,
                            distance=distance_frames(distance_s, fps))
    return Highlights(t[idx], idx.astype(np.int64), s[idx], props["prominences"], s, h, fps)


# ------------------------------------------------------------------------ online peak picking


@dataclass
class OnlinePeak:
    index: int  # frame index of the peak
    time: float
    height: float  # smoothed score at the peak
    prominence: float  # causal estimate (see OnlinePeakDetector)
    confirmed_index: int  # frame at which it was confirmed (index + delay)
    confirmed_time: float


@dataclass
class OnlineStep:
    index: int
    time: float
    smoothed: float
    peak: OnlinePeak | None  # a peak confirmed at this step (it lies ``delay`` frames back)


class OnlinePeakDetector:
    """Live counterpart of ``find_highlights``: push one score per frame, never look ahead.

    Smoothing is ``CausalSmoother``. A frame c becomes a peak when it is confirmed at frame
    c + D, D = max(1, round(confirm_delay_s * fps)) frames, i.e. **every peak is reported D frames
    (D / fps seconds: confirm_delay_s rounded to whole frames) after it happened**, plus whatever lag
    the causal filter adds. At
    confirmation, with s the smoothed series:
      * s[c] >= s[k] for the D frames before c and s[c] > s[k] for the D frames after it;
      * s[c] >= height ("mean+K std" uses the mean/std of every smoothed value seen so far);
      * causal prominence s[c] - max(left_min, right_min) >= prominence, where left_min is the
        minimum back to the last frame higher than s[c] (within ``lookback_s``) and right_min the
        minimum over the D frames after c (a lower bound on scipy's prominence);
      * c >= ``warmup`` frames (default polyorder + 1: from there the causal Savitzky-Golay value is
        a least-squares fit of more frames than it has coefficients; before that it interpolates the
        raw scores). Until session 13 the warm-up was window - 1 frames (7 s at 2 fps with the
        default window 15), so an event in a stream's first seconds was never announced: on the
        synthetic selection split (v9, 60 videos) 0 of the 33 matching events starting before 6 s,
        against 33 of 33 with polyorder + 1, and the share of peaks on matching events rose from 0.64
        to 0.77 (instructions/tiny_model.md, session 13). ``warmup=window - 1`` restores it;
      * c is at least ``distance_s`` after the previous confirmed peak. Unlike find_peaks (which
        keeps the highest of close peaks), the earlier peak wins: it was already announced.
    ``finish()`` at the end of a stream judges the last D frames with the frames that exist.
    """

    def __init__(self, fps: float, window: int = SAVGOL_WINDOW, polyorder: int = CAUSAL_POLYORDER,
                 height=PEAK_HEIGHT, prominence: float = PEAK_PROMINENCE,
                 distance_s: float = PEAK_DISTANCE_S, confirm_delay_s: float = CONFIRM_DELAY_S,
                 lookback_s: float = 120.0, method: str = "savgol", warmup: int | None = None):
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if warmup is not None and (isinstance(warmup, bool) or int(warmup) != warmup or warmup < 1):
            raise ValueError(f"warmup must be a whole number of frames >= 1, got {warmup!r}")
        self.fps = float(fps)
        self.height, self.prominence = parse_height(height), float(prominence)
        self.delay = max(1, int(round(confirm_delay_s * fps)))
        # the first frame that may be a peak (class doc); polyorder + 1 whatever the method
        self.warmup = int(polyorder) + 1 if warmup is None else int(warmup)
        self.distance = distance_frames(distance_s, fps)
        self.smoother = CausalSmoother(window, polyorder, method)
        keep = max(self.delay * 2 + 1, int(math.ceil(lookback_s * fps)) + self.delay + 1)
        self._s: deque[float] = deque(maxlen=keep)
        self._t: deque[float] = deque(maxlen=keep)
        self._n = 0  # frames pushed
        self._mean = self._m2 = 0.0  # Welford running mean / sum of squared deviations
        self._last_peak: int | None = None
        self.peaks: list[OnlinePeak] = []

    def push(self, score: float, time: float | None = None) -> OnlineStep:
        t = self._n / self.fps if time is None else float(time)
        # a peak's time is read from the frame it lies on: times must be finite and move forward
        if not math.isfinite(t) or (self._t and t <= self._t[-1]):
            raise ValueError(f"frame {self._n}: time {t} must be finite and after the previous frame's "
                             f"({self._t[-1] if self._t else None})")
        y = self.smoother.push(score)
        self._s.append(y)
        self._t.append(t)
        self._n += 1
        d = y - self._mean
        self._mean += d / self._n
        self._m2 += d * (y - self._mean)
        peak = self._judge(self._n - 1 - self.delay, self.delay)
        return OnlineStep(self._n - 1, t, y, peak)

    def finish(self) -> list[OnlinePeak]:
        """End of stream: judge the last D frames with the (fewer) frames after them."""
        found = []
        for c in range(max(0, self._n - self.delay), self._n):
            p = self._judge(c, self._n - 1 - c)
            if p is not None:
                found.append(p)
        return found

    def _threshold(self) -> float | None:
        # running mean/std of every smoothed value seen so far (all in the past at confirmation)
        return _height_from_stats(self.height, self._mean, math.sqrt(max(0.0, self._m2 / self._n)))

    def _judge(self, c: int, ahead: int) -> OnlinePeak | None:
        first = self._n - len(self._s)  # frame index of the oldest kept value
        if c < self.warmup or ahead < 1 or c - first < 1:
            return None
        s = np.fromiter(self._s, float)
        i = c - first
        v = s[i]
        after = s[i + 1: i + 1 + ahead]
        before = s[max(0, i - self.delay): i]
        if not (np.all(after < v) and np.all(before <= v)):
            return None
        h = self._threshold()
        if h is not None and v < h:
            return None
        if self._last_peak is not None and c - self._last_peak < self.distance:
            return None
        higher = np.flatnonzero(s[:i] > v)
        left_min = s[(higher[-1] + 1 if len(higher) else 0): i + 1].min()
        prom = v - max(left_min, after.min())
        if prom < self.prominence:
            return None
        peak = OnlinePeak(c, self._t[i], float(v), float(prom), self._n - 1, self._t[-1])
        self._last_peak = c
        self.peaks.append(peak)
        return peak
