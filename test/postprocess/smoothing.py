"""Smoothing: offline (centred, looks ahead) and causal (past frames only) filters.

``smooth`` is the reference's centred Savitzky-Golay filter: it looks window//2 frames ahead, so
it is for whole-video (offline) post-processing only. ``causal_smooth`` / ``CausalSmoother`` and
``trailing_mean`` / ``running_minmax`` use the current and past frames only: live output and every
number reported as an *online* result use those. ``centred_mean`` / ``minmax`` are the MMDuet/Aha
grounding protocol's non-causal steps (kept to reproduce it, labelled non-causal where used).
"""
from __future__ import annotations

import math
from collections import deque
from functools import lru_cache

import numpy as np
from scipy.signal import lfilter, lfilter_zi, savgol_coeffs, savgol_filter

# Reference defaults (§5.2).
SAVGOL_WINDOW, SAVGOL_POLYORDER = 15, 3
# Causal filters evaluate the fitted polynomial at the window's *edge*, where noise is amplified:
# for a 15-sample window the noise gain sqrt(sum c^2) is 0.39 centred (cubic), but 0.82 at the edge
# for a cubic, 0.68 quadratic, 0.49 linear. A quadratic keeps some smoothing without lagging as
# much as a line on curved peaks.
CAUSAL_POLYORDER = 2


def _as_series(scores, name: str = "scores") -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _as_times(times, name: str = "times") -> np.ndarray:
    """Frame times: finite, 1-D and strictly increasing. Segments and intervals are read off
    ``times[lo]`` .. ``times[hi]`` of a run of frames, so an unsorted or repeated time would give a
    silently wrong (even reversed) span: refused instead."""
    t = _as_series(times, name)
    if t.size > 1 and not np.all(np.diff(t) > 0):
        k = int(np.flatnonzero(np.diff(t) <= 0)[0])
        raise ValueError(f"{name} must be strictly increasing: frame {k + 1} at {t[k + 1]:g} s does not come "
                         f"after frame {k} at {t[k]:g} s")
    return t


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
    return causal_savgol_items(x, [0, len(x)], int(window), int(polyorder))


def causal_savgol_items(x: np.ndarray, bounds, window: int, polyorder: int) -> np.ndarray:
    """``causal_smooth`` (savgol) of each item ``x[bounds[j]:bounds[j + 1]]`` of a concatenation, in one pass.

    Every output is the sum over its window's samples, oldest first, of coefficient * sample (numpy
    elementwise products and sums, no BLAS dot whose summation order depends on the array's length or
    alignment): an item's smoothed values are bit-identical whether it is smoothed alone or within a
    concatenation. The tuner (``test.tuning``) relies on this to score exactly what is reported."""
    x = np.asarray(x, dtype=np.float64)
    b = np.asarray(bounds, dtype=np.int64)
    starts, lengths = b[:-1], np.diff(b)
    w = int(window)
    local = np.arange(len(x)) - np.repeat(starts, lengths)  # frame index within its item
    y = np.empty_like(x)
    for m in range(1, w + 1):  # m samples in the window: the warm-up (m < w), then full windows
        pos = np.flatnonzero(local == m - 1) if m < w else np.flatnonzero(local >= w - 1)
        if len(pos) == 0:
            continue
        c = _edge_coeffs(m, int(polyorder))
        acc = c[0] * x[pos - (m - 1)]
        for k in range(1, m):
            acc = acc + c[k] * x[pos - (m - 1) + k]
        y[pos] = acc
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
        c = _edge_coeffs(len(self._buf), self.polyorder)
        acc = None  # summed oldest first, as causal_smooth: the same value to the last bit
        for k, v in enumerate(self._buf):
            acc = c[k] * v if acc is None else acc + c[k] * v
        return float(acc)


# ----------------------------------------------------- moving means and min-max normalisation


def _flat_tolerance(y: np.ndarray) -> float:
    """A range this small is rounding noise of the running sums, not a real contrast."""
    return 1e-9 * max(1.0, float(np.abs(y).max())) if y.size else 0.0


def trailing_mean(y, window: int) -> np.ndarray:
    """Mean of frames max(0, t-window)..t: smoothing that uses no future frame."""
    y = _as_series(y)
    if int(window) != window or window < 0:
        raise ValueError(f"window must be a non-negative integer, got {window!r}")
    c = np.concatenate([[0.0], np.cumsum(y)])
    hi = np.arange(1, y.size + 1)
    lo = np.maximum(0, hi - 1 - int(window))
    return (c[hi] - c[lo]) / (hi - lo)


def centred_mean(y, window: int) -> np.ndarray:
    """Mean of frames max(0, t-w)..min(T-1, t+w): the MMDuet/Aha grounding smoothing (looks ahead)."""
    y = _as_series(y)
    if int(window) != window or window < 0:
        raise ValueError(f"window must be a non-negative integer, got {window!r}")
    c = np.concatenate([[0.0], np.cumsum(y)])
    idx = np.arange(y.size)
    lo, hi = np.maximum(0, idx - int(window)), np.minimum(y.size, idx + int(window) + 1)
    return (c[hi] - c[lo]) / (hi - lo)


def running_minmax(y, anchor: float | None = 0.0) -> np.ndarray:
    """Rescale frame t with the min and max of frames 0..t (and ``anchor``, if not None).

    The anchor (default 0, the score of "nothing relevant") gives the first frames a scale:
    without it a constant prefix has no range. A zero range normalises to 0."""
    y = _as_series(y)
    lo, hi = np.minimum.accumulate(y), np.maximum.accumulate(y)
    if anchor is not None:
        lo, hi = np.minimum(lo, anchor), np.maximum(hi, anchor)
    rng = hi - lo
    # The "zero range" tolerance must itself be causal: scaled by the largest |score| of frames
    # 0..t, not of the whole series (a large later score used to flatten earlier frames to 0).
    tol = 1e-9 * np.maximum(1.0, np.maximum.accumulate(np.abs(y)))
    flat = rng <= tol
    return np.where(flat, 0.0, (y - lo) / np.where(flat, 1.0, rng))


def minmax(y) -> np.ndarray:
    """Min-max over the whole series (looks ahead); a constant series maps to zeros."""
    y = _as_series(y)
    if y.size == 0:
        return y
    rng = y.max() - y.min()
    return np.zeros_like(y) if rng <= _flat_tolerance(y) else (y - y.min()) / rng
