"""The one post-processor, shared by the demo, live inference and every benchmark.

Pipeline (reference §5): per-frame head scores -> fusion -> Savitzky-Golay smoothing -> peak
picking (``scipy.signal.find_peaks``) -> peaks grown into segments -> merged -> a duration budget
picks the highlight reel.  Offline functions see the whole series; ``causal_smooth``,
``CausalSmoother`` and ``OnlinePeakDetector`` use only past frames, so live output never looks ahead.

Frame-time convention: a sampled frame at time ``t`` stands for ``[t, t + 1/fps)``, so a segment
built from frames ``lo..hi`` spans ``[time[lo], time[hi] + 1/fps)``.
"""
from __future__ import annotations

import math
import os
import re
import tempfile
from collections import deque
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, NamedTuple, Sequence

import numpy as np
from scipy.signal import find_peaks, lfilter, lfilter_zi, savgol_coeffs, savgol_filter

if TYPE_CHECKING:  # only for annotations; keeps this module importable by light-weight scorers
    from test.predictions import StreamPrediction

LOGVAR_MIN, LOGVAR_MAX = -4.0, 1.5  # the clamp the uncertainty loss trains with

# Reference defaults (§5.2).
SAVGOL_WINDOW, SAVGOL_POLYORDER = 15, 3
PEAK_HEIGHT = "mean+0.5std"
PEAK_PROMINENCE = 0.02
PEAK_DISTANCE_S = 10.0
# Causal filters evaluate the fitted polynomial at the window's *edge*, where noise is amplified:
# for a 15-sample window the noise gain sqrt(sum c^2) is 0.39 centred (cubic), but 0.82 at the edge
# for a cubic, 0.68 quadratic, 0.49 linear. A quadratic keeps some smoothing without lagging as
# much as a line on curved peaks.
CAUSAL_POLYORDER = 2
CONFIRM_DELAY_S = 3.0


# ----------------------------------------------------------------------------------- fusion


@dataclass(frozen=True)
class FusionParams:
    """y = alpha*informative + beta*relevance - epsilon*(u - tau)*[u >= tau].

    ``uncertainty_kind``: "logvar" -> u = clamp(raw log-variance, -4, 1.5) (the paper's definition);
    "variance" -> u = exp(raw log-variance), unclamped (what the reference code fuses).
    """

    alpha: float = 0.7
    beta: float = 1.0
    epsilon: float = -2.9
    tau: float = 0.3
    uncertainty_kind: str = "logvar"

    def to_dict(self) -> dict:
        return asdict(self)


def uncertainty_value(raw_logvar, kind: str = "logvar") -> np.ndarray:
    lv = np.asarray(raw_logvar, dtype=np.float64)
    if kind == "logvar":
        return np.clip(lv, LOGVAR_MIN, LOGVAR_MAX)
    if kind == "variance":
        return np.exp(lv)
    raise ValueError(f"uncertainty_kind must be 'logvar' or 'variance', got {kind!r}")


def uncertainty_penalty(raw_logvar, tau: float, kind: str = "logvar") -> np.ndarray:
    """(u - tau) * [u >= tau]: the part of the fusion that epsilon multiplies."""
    u = uncertainty_value(raw_logvar, kind)
    return np.where(u >= tau, u - tau, 0.0)


def fuse(informative, relevance, uncertainty, params: FusionParams = FusionParams()) -> np.ndarray:
    i = np.asarray(informative, dtype=np.float64)
    r = np.asarray(relevance, dtype=np.float64)
    pen = uncertainty_penalty(uncertainty, params.tau, params.uncertainty_kind)
    if not (i.shape == r.shape == pen.shape):
        raise ValueError(f"score arrays differ in shape: {i.shape}, {r.shape}, {pen.shape}")
    return params.alpha * i + params.beta * r - params.epsilon * pen


def fuse_prediction(pred: "StreamPrediction", params: FusionParams = FusionParams()) -> np.ndarray:
    """Fused per-frame score of one streaming prediction (aligned with ``pred.time``)."""
    return fuse(pred.informative, pred.relevance, pred.uncertainty, params)


# -------------------------------------------------------------------------------- smoothing


def _as_series(scores, name: str = "scores") -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_filter_args(window: int, polyorder: int) -> None:
    if int(window) != window or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    if int(polyorder) != polyorder or polyorder < 0:
        raise ValueError(f"polyorder must be a non-negative integer, got {polyorder!r}")


def effective_window(n: int, window: int = SAVGOL_WINDOW, polyorder: int = SAVGOL_POLYORDER) -> int | None:
    """The Savitzky-Golay window actually used for a series of length ``n``.

    The requested window is made odd (an even one is reduced by 1) and capped at the largest odd
    number <= n; None when that is not > polyorder (the series is too short to smooth).
    """
    _check_filter_args(window, polyorder)
    w = min(int(window), int(n))
    if w % 2 == 0:
        w -= 1
    return w if w > polyorder else None


def smooth(scores, window: int = SAVGOL_WINDOW, polyorder: int = SAVGOL_POLYORDER) -> np.ndarray:
    """Offline (centred) Savitzky-Golay smoothing, ``scipy.signal.savgol_filter`` (mode "interp").

    The window is adapted to short series by ``effective_window``; a series too short for any
    window > polyorder (fewer than polyorder + 2 samples) is returned unchanged, as a copy.
    Looks ahead by window//2 frames: use ``causal_smooth`` for live output.
    """
    x = _as_series(scores)
    w = effective_window(len(x), window, polyorder)
    if w is None:
        return x.copy()
    return savgol_filter(x, window_length=w, polyorder=int(polyorder))


@lru_cache(maxsize=256)
def _edge_coeffs(k: int, polyorder: int) -> np.ndarray:
    """Weights that fit a degree-min(polyorder, k-1) polynomial to k samples and evaluate it at the newest."""
    p = min(polyorder, k - 1)
    c = savgol_coeffs(k, p, pos=k - 1, use="dot")
    c.setflags(write=False)
    return c


def causal_smooth(scores, window: int = SAVGOL_WINDOW, polyorder: int = CAUSAL_POLYORDER,
                  method: str = "savgol", span: float | None = None) -> np.ndarray:
    """Smoothing that uses only the current and past frames (output at t ignores t+1, t+2, ...).

    method "savgol": least-squares polynomial of degree ``polyorder`` over the last ``window``
    samples, evaluated at the newest one. During warm-up (t < window-1) the fit uses the t+1
    samples available, with degree min(polyorder, t); so the first polyorder+1 outputs equal the
    inputs. method "ema": exponential moving average with alpha = 2/(span+1) (span defaults to
    ``window``), started at the first sample.
    """
    x = _as_series(scores)
    _check_filter_args(window, polyorder)
    if len(x) == 0:
        return x.copy()
    if method == "ema":
        a = _ema_alpha(window, span)
        b, den = [a], [1.0, -(1.0 - a)]
        y, _ = lfilter(b, den, x, zi=lfilter_zi(b, den) * x[0])
        return y
    if method != "savgol":
        raise ValueError(f"method must be 'savgol' or 'ema', got {method!r}")
    w = int(window)
    y = np.empty_like(x)
    for t in range(min(w - 1, len(x))):  # warm-up: growing windows
        y[t] = _edge_coeffs(t + 1, int(polyorder)) @ x[: t + 1]
    if len(x) >= w:
        y[w - 1:] = np.lib.stride_tricks.sliding_window_view(x, w) @ _edge_coeffs(w, int(polyorder))
    return y


def _ema_alpha(window: int, span: float | None) -> float:
    span = float(window if span is None else span)
    if span < 1:
        raise ValueError(f"EMA span must be >= 1, got {span}")
    return 2.0 / (span + 1.0)


class CausalSmoother:
    """Incremental form of ``causal_smooth``: ``push(x)`` returns the smoothed value at x's frame.

    Feeding a whole series one sample at a time gives exactly ``causal_smooth(series, ...)``.
    """

    def __init__(self, window: int = SAVGOL_WINDOW, polyorder: int = CAUSAL_POLYORDER,
                 method: str = "savgol", span: float | None = None):
        _check_filter_args(window, polyorder)
        if method not in ("savgol", "ema"):
            raise ValueError(f"method must be 'savgol' or 'ema', got {method!r}")
        self.window, self.polyorder, self.method = int(window), int(polyorder), method
        self._alpha = _ema_alpha(window, span) if method == "ema" else None
        self._buf: deque[float] = deque(maxlen=self.window)
        self._ema: float | None = None

    def push(self, x: float) -> float:
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"score must be finite, got {x}")
        if self.method == "ema":
            self._ema = x if self._ema is None else self._alpha * x + (1.0 - self._alpha) * self._ema
            return self._ema
        self._buf.append(x)
        return float(_edge_coeffs(len(self._buf), self.polyorder) @ np.fromiter(self._buf, float))


# ---------------------------------------------------------------------------------- peaks


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
    t = _as_series(times, "times")
    x = _as_series(scores)
    if len(t) != len(x):
        raise ValueError(f"times ({len(t)}) and scores ({len(x)}) differ in length")
    fps = infer_fps(t) if fps is None else float(fps)
    if not fps > 0:
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


# ------------------------------------------------------------------------------- segments


class Segment(NamedTuple):
    """A highlight span [start, end) in seconds with its score (a plain tuple when unpacked)."""

    start: float
    end: float
    score: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def grow_segments(times, smoothed, peak_indices, prominences=None, fps: float | None = None,
                  rel_height: float = 0.5, floor: float | None = None, max_len_s: float | None = 30.0,
                  duration: float | None = None) -> list[Segment]:
    """Grow each peak into the contiguous run of frames whose smoothed score stays >= a level.

    level = peak - rel_height * prominence (like ``scipy.signal.peak_widths``, at frame
    granularity), raised to ``floor`` when given (e.g. the peak-height threshold). Prominences
    None -> the level is ``floor`` alone (it must then be given). A run longer than ``max_len_s``
    is trimmed from whichever end has the lower score, so the peak stays inside. Segments are
    [time[lo], time[hi] + 1/fps), clipped to ``duration``; score = the peak's smoothed height.
    Unmerged and in peak order: see ``merge_segments``.
    """
    t = _as_series(times, "times")
    s = _as_series(smoothed, "smoothed")
    if len(t) != len(s):
        raise ValueError(f"times ({len(t)}) and smoothed ({len(s)}) differ in length")
    peaks = np.asarray(peak_indices, dtype=np.int64).reshape(-1)
    if len(peaks) and (peaks.min() < 0 or peaks.max() >= len(s)):
        raise ValueError("peak index out of range")
    if prominences is None and floor is None:
        raise ValueError("grow_segments needs prominences or a floor")
    if not 0 <= rel_height:
        raise ValueError(f"rel_height must be >= 0, got {rel_height}")
    fps = infer_fps(t) if fps is None else float(fps)
    period = 1.0 / fps
    max_frames = None if max_len_s is None else max(1, int(math.floor(max_len_s * fps + 1e-9)))
    prom = None if prominences is None else np.asarray(prominences, dtype=np.float64).reshape(-1)
    out = []
    for j, p in enumerate(peaks):
        level = -np.inf if prom is None else s[p] - rel_height * prom[j]
        if floor is not None:
            level = max(level, float(floor))
        level = min(level, s[p])  # the peak itself always belongs to its segment
        below = s < level
        left = np.flatnonzero(below[:p])
        right = np.flatnonzero(below[p + 1:])
        lo = int(left[-1]) + 1 if len(left) else 0
        hi = p + int(right[0]) if len(right) else len(s) - 1
        if max_frames is not None:
            while hi - lo + 1 > max_frames:  # drop the weaker end, never the peak
                if lo < p and (hi == p or s[lo] <= s[hi]):
                    lo += 1
                else:
                    hi -= 1
        start, end = float(t[lo]), float(t[hi] + period)
        if duration is not None:
            end = min(end, float(duration))
        out.append(Segment(start, end, float(s[p])))
    return out


def merge_segments(segments: Sequence[Sequence[float]], gap_s: float = 0.0) -> list[Segment]:
    """Union of overlapping (or closer than ``gap_s``) segments, in time order; score = max."""
    segs = sorted((Segment(float(a), float(b), float(c)) for a, b, c in segments), key=lambda g: g.start)
    for g in segs:
        if g.end < g.start:
            raise ValueError(f"segment ends before it starts: {g}")
    out: list[Segment] = []
    for g in segs:
        if out and g.start <= out[-1].end + gap_s:
            last = out[-1]
            out[-1] = Segment(last.start, max(last.end, g.end), max(last.score, g.score))
        else:
            out.append(g)
    return out


def highlight_segments(times, scores, fps: float | None = None, window: int = SAVGOL_WINDOW,
                       polyorder: int = SAVGOL_POLYORDER, height=PEAK_HEIGHT,
                       prominence: float | None = PEAK_PROMINENCE, distance_s: float = PEAK_DISTANCE_S,
                       rel_height: float = 0.5, max_len_s: float | None = 30.0,
                       duration: float | None = None) -> list[Segment]:
    """find_highlights -> grow_segments (floored at the height threshold) -> merge_segments."""
    hl = find_highlights(times, scores, fps, window, polyorder, height, prominence, distance_s)
    segs = grow_segments(times, hl.smoothed, hl.indices, hl.prominences, hl.fps, rel_height,
                         floor=hl.height_threshold, max_len_s=max_len_s, duration=duration)
    return merge_segments(segs)


def select_reel_segments(segments: Sequence[Sequence[float]], budget_s: float) -> list[Segment]:
    """Highest-scoring segments whose total duration fits ``budget_s``, returned in time order.

    Greedy by score (ties: earlier first); a segment that does not fit is skipped and shorter,
    lower-scoring ones may still fill the remaining budget. Overlapping inputs are merged first so
    no second is counted twice. When no segment fits, the best one is cut to the budget around its
    centre (a reel is never empty while there is a highlight).
    """
    if not budget_s >= 0:
        raise ValueError(f"budget_s must be >= 0, got {budget_s}")
    merged = merge_segments(segments)
    chosen, used = [], 0.0
    for g in sorted(merged, key=lambda g: (-g.score, g.start)):
        if used + g.duration <= budget_s + 1e-9:
            chosen.append(g)
            used += g.duration
    if not chosen and merged and budget_s > 0:
        best = min(merged, key=lambda g: (-g.score, g.start))
        start = (best.start + best.end - budget_s) / 2
        chosen = [Segment(start, start + budget_s, best.score)]
    return sorted(chosen, key=lambda g: g.start)


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
    (confirm_delay_s seconds) after it happened**, plus whatever lag the causal filter adds. At
    confirmation, with s the smoothed series:
      * s[c] >= s[k] for the D frames before c and s[c] > s[k] for the D frames after it;
      * s[c] >= height ("mean+K std" uses the mean/std of every smoothed value seen so far);
      * causal prominence s[c] - max(left_min, right_min) >= prominence, where left_min is the
        minimum back to the last frame higher than s[c] (within ``lookback_s``) and right_min the
        minimum over the D frames after c (a lower bound on scipy's prominence);
      * c >= window - 1: no peak while the filter and the running statistics are warming up;
      * c is at least ``distance_s`` after the previous confirmed peak. Unlike find_peaks (which
        keeps the highest of close peaks), the earlier peak wins: it was already announced.
    ``finish()`` at the end of a stream judges the last D frames with the frames that exist.
    """

    def __init__(self, fps: float, window: int = SAVGOL_WINDOW, polyorder: int = CAUSAL_POLYORDER,
                 height=PEAK_HEIGHT, prominence: float = PEAK_PROMINENCE,
                 distance_s: float = PEAK_DISTANCE_S, confirm_delay_s: float = CONFIRM_DELAY_S,
                 lookback_s: float = 120.0, method: str = "savgol"):
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.fps = float(fps)
        self.height, self.prominence = parse_height(height), float(prominence)
        self.delay = max(1, int(round(confirm_delay_s * fps)))
        self.warmup = max(1, int(window) - 1)
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


# ----------------------------------------------------------------------------------- plots


def plot_scores(path_png, times, series: Mapping[str, Sequence[float]], peaks=None,
                gt_spans: Sequence[Sequence[float]] | None = None, gt_curve=None,
                segments: Sequence[Sequence[float]] | None = None, title: str | None = None,
                dpi: int = 120) -> Path:
    """Plot score curves with peaks, optional ground-truth spans/curve and highlight segments.

    ``peaks``: a sequence of peak times (drawn on the first series) or {series name: times}.
    ``gt_curve``: per-frame ground truth aligned with ``times`` (drawn dashed, on a twin axis).
    Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch); written atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = _as_series(times, "times")
    if not series:
        raise ValueError("plot_scores needs at least one series")
    fig = Figure(figsize=(12, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for a, b in gt_spans or []:
        ax.axvspan(a, b, color="tab:green", alpha=0.15, lw=0)
    for a, b, *_ in segments or []:
        ax.axvspan(a, b, color="tab:orange", alpha=0.25, lw=0)
    colors = {}
    for name, ys in series.items():
        y = _as_series(ys, name)
        if len(y) != len(t):
            raise ValueError(f"series {name!r} has {len(y)} values for {len(t)} times")
        (line,) = ax.plot(t, y, lw=1.2, label=name)
        colors[name] = (line.get_color(), y)
    if peaks is not None:
        by_name = peaks if isinstance(peaks, Mapping) else {next(iter(series)): peaks}
        for name, pt in by_name.items():
            if name not in colors:
                raise ValueError(f"peaks given for unknown series {name!r}")
            color, y = colors[name]
            pt = np.asarray(pt, dtype=np.float64)
            ax.plot(pt, np.interp(pt, t, y), "v", color=color, ms=7, label=f"{name} peaks")
    if gt_curve is not None:
        g = _as_series(gt_curve, "gt_curve")
        if len(g) != len(t):
            raise ValueError(f"gt_curve has {len(g)} values for {len(t)} times")
        ax2 = ax.twinx()
        ax2.plot(t, g, "--", color="gray", lw=1, label="ground truth")
        ax2.set_ylabel("ground truth")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
