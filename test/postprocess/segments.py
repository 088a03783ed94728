"""Segments: peaks grown into spans, merged, ranked, and cut to a reel budget."""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from test.postprocess.peaks import (PEAK_DISTANCE_S, PEAK_HEIGHT, PEAK_PROMINENCE, find_highlights,
                                    infer_fps)
from test.postprocess.smoothing import SAVGOL_POLYORDER, SAVGOL_WINDOW, _as_series, _as_times


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
    [time[lo], time[hi] + 1/fps), clipped to ``duration`` (a segment wholly past it is left out);
    score = the peak's smoothed height. Unmerged and in peak order: see ``merge_segments``.
    """
    t = _as_times(times)
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
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0, got {fps}")
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
            # frames may run a little past the video's end (the readers allow some slack): clip both
            # ends. A segment that lies wholly past the end used to come out reversed (start > end,
            # then merge_segments raised) or empty: such a peak has no highlight inside the video.
            start, end = min(start, float(duration)), min(end, float(duration))
            if end <= start:
                continue
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


# ------------------------------------------------------------------- runs and one interval


def true_runs(mask: Sequence[bool]) -> list[tuple[int, int]]:
    """Inclusive (first, last) index of every maximal run of True."""
    m = np.asarray(mask, dtype=bool)
    if m.size == 0:
        return []
    edges = np.diff(np.concatenate([[0], m.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b) - 1) for a, b in zip(starts, stops)]


def frame_step(times, fps: float | None = None) -> float:
    """Seconds one sampled frame stands for: 1/fps when known, else the median gap between frames. A
    single frame without fps stands for no known span: an error (its interval would be empty)."""
    if fps is not None and fps != 0:
        if not (math.isfinite(float(fps)) and float(fps) > 0):  # NaN used to pass `if fps:` as a NaN step
            raise ValueError(f"fps must be a finite number > 0, got {fps!r}")
        return 1.0 / float(fps)
    d = np.diff(_as_times(times))
    if not d.size:
        raise ValueError("a stream of one frame without fps: the time it stands for is unknown (give the "
                         "prediction's fps)")
    return float(np.median(d))


CAUSAL_THRESHOLD, CAUSAL_WINDOW, CAUSAL_ANCHOR = 0.5, 0, 0.0


def causal_normalised(scores, window: int = CAUSAL_WINDOW, anchor: float | None = CAUSAL_ANCHOR) -> np.ndarray:
    """Trailing mean, then running min-max: value t depends on frames 0..t only."""
    from test.postprocess.smoothing import running_minmax, trailing_mean

    return running_minmax(trailing_mean(scores, window), anchor)


def causal_interval(times, scores, threshold: float = CAUSAL_THRESHOLD, window: int = CAUSAL_WINDOW,
                    anchor: float | None = CAUSAL_ANCHOR, step: float | None = None,
                    duration: float | None = None) -> tuple[float, float] | None:
    """One interval from per-frame scores without look-ahead; None when no frame fires.

    1. trailing mean over the current and ``window`` previous frames; 2. running min-max with an
    anchor; 3. a frame is "on" when its normalised score >= ``threshold``; 4. the longest run of
    "on" frames (ties: the higher mean normalised score, then the earlier run). A live system keeps
    this "best run so far" up to date frame by frame. Frames lo..hi give [time[lo], time[hi] +
    step], clipped to [0, duration].
    """
    t = _as_times(times)
    y = _as_series(scores)
    if t.shape != y.shape:
        raise ValueError(f"times and scores must have equal length, got {t.shape} and {y.shape}")
    if y.size == 0:
        return None
    z = causal_normalised(y, window, anchor)
    runs = true_runs(z >= threshold)
    if not runs:
        return None
    lo, hi = max(runs, key=lambda r: (r[1] - r[0], float(z[r[0]:r[1] + 1].mean()), -r[0]))
    step = frame_step(t) if step is None else step
    start, end = float(t[lo]), float(t[hi]) + step
    if duration is not None:
        start, end = min(max(start, 0.0), duration), min(end, duration)
    return max(start, 0.0), end


# ------------------------------------------------------------------------- online segments


def online_segments(times, scores, fps: float | None = None, max_len_s: float | None = 30.0,
                    duration: float | None = None, **detector_kw) -> list[Segment]:
    """Segments around the peaks an ``OnlinePeakDetector`` confirms, on its causally smoothed series.

    No look-ahead smoothing: each peak is confirmed ``confirm_delay_s`` after it happened, and its
    segment is the run of frames whose causal score stays >= peak - prominence/2; the segment is
    known once the score has dropped below that level (it closes online). Merged, in time order.
    """
    from test.postprocess.peaks import OnlinePeakDetector

    t = _as_times(times)
    x = _as_series(scores)
    if len(t) != len(x):
        raise ValueError(f"times ({len(t)}) and scores ({len(x)}) differ in length")
    if len(t) < 2:
        return []
    fps = infer_fps(t) if fps is None else float(fps)
    det = OnlinePeakDetector(fps, **detector_kw)
    smoothed = np.array([det.push(float(v), float(tt)).smoothed for v, tt in zip(x, t)])
    det.finish()
    if not det.peaks:
        return []
    idx = [p.index for p in det.peaks]
    prom = [p.prominence for p in det.peaks]
    return merge_segments(grow_segments(t, smoothed, idx, prom, fps, 0.5, None, max_len_s, duration))


def ranked_windows(segments: Sequence[Sequence[float]], max_windows: int | None = None) -> np.ndarray:
    """(W, 3) [start, end, score] rows, highest score first (ties: earlier first), at most ``max_windows``."""
    segs = sorted((Segment(float(a), float(b), float(c)) for a, b, c in segments), key=lambda g: (-g.score, g.start))
    if max_windows is not None:
        segs = segs[:max_windows]
    return np.array([list(g) for g in segs], dtype=np.float64).reshape(-1, 3)
