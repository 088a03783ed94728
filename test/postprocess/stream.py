"""``ProcessedStream``: one prediction's per-frame heads and what the post-processor makes of them.

Benchmark modules (``data/benchmarks``) turn streams into their own predictions through this
object only: they ask for the fused score, an interval, ranked windows..., and the post-processor
computes them (lazily, so tuning pays only for what the benchmark asks). This keeps fusion,
smoothing, peaks and segments in one place and lets the benchmark modules sit below ``test/``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from test.postprocess.fusion import FusionParams, fuse
from test.postprocess.segments import (causal_interval, frame_step, highlight_segments, online_segments,
                                       ranked_windows)
from test.postprocess.smoothing import CAUSAL_POLYORDER, causal_smooth, centred_mean, minmax

if TYPE_CHECKING:
    from test.predictions import StreamPrediction

SCORE_SOURCES = ("fused", "relevance", "informative")
WINDOW_MODES = ("online", "offline")


class ProcessedStream:
    """A ``StreamPrediction`` with its fused per-frame score.

    ``fused``: the fused score when already computed (tuning fuses many items at once), else it is
    ``fuse(heads, fusion)``; ``smooth_window``: optional *causal* Savitzky-Golay smoothing of it
    (never the centred filter: an online result must not look ahead).
    """

    def __init__(self, pred: "StreamPrediction", fusion: FusionParams | None = None, fused=None,
                 smooth_window: int | None = None):
        self.pred = pred
        if fused is None:
            fused = fuse(pred.informative, pred.relevance, pred.uncertainty, fusion or FusionParams())
        y = np.asarray(fused, dtype=np.float64)
        if y.shape != pred.time.shape:
            raise ValueError(f"{pred.id}: {len(y)} fused scores for {len(pred.time)} frames")
        if smooth_window:
            y = causal_smooth(y, int(smooth_window), CAUSAL_POLYORDER)
        self.fused = y
        self.smooth_window = smooth_window or None

    # -- what the prediction says -------------------------------------------------------
    @property
    def id(self) -> str:
        return self.pred.id

    @property
    def time(self) -> np.ndarray:
        return self.pred.time

    @property
    def fps(self) -> float | None:
        return self.pred.fps

    @property
    def duration(self) -> float | None:
        return self.pred.duration

    @property
    def native_frame_index(self):
        return self.pred.native_frame_index

    @property
    def native_fps(self) -> float | None:
        v = self.pred.extra.get("native_fps")
        return None if v is None else float(v)

    @property
    def responses(self) -> list[dict]:
        return self.pred.responses

    def head(self, source: str = "fused") -> np.ndarray:
        """The fused score, or one raw head ("relevance", "informative")."""
        if source == "fused":
            return self.fused
        if source in ("relevance", "informative"):
            return np.asarray(getattr(self.pred, source), dtype=np.float64)
        raise ValueError(f"score_source must be one of {SCORE_SOURCES}, got {source!r}")

    def frame_step(self) -> float:
        return frame_step(self.time, self.fps)

    # -- post-processing ----------------------------------------------------------------
    def interval(self, threshold: float, window: int, anchor: float | None, duration: float | None,
                 source: str = "fused") -> tuple[float, float] | None:
        """The causal interval (trailing mean, running min-max, threshold, longest run)."""
        return causal_interval(self.time, self.head(source), threshold, window, anchor, self.frame_step(), duration)

    def centred_normalised(self, window: int, source: str = "fused") -> np.ndarray:
        """Centred moving mean then whole-video min-max (non-causal: the MMDuet/Aha grounding protocol)."""
        return minmax(centred_mean(self.head(source), window))

    def windows(self, max_windows: int | None = None, mode: str = "online",
                duration: float | None = None) -> np.ndarray:
        """(W, 3) [start, end, score] highlight windows of the fused score, best first.

        "online": causal smoothing and online-confirmed peaks (``online_segments``); "offline":
        the reference post-processor over the whole video (centred Savitzky-Golay, find_peaks)."""
        if mode == "online":
            segs = online_segments(self.time, self.fused, self.fps, duration=duration)
        elif mode == "offline":
            segs = highlight_segments(self.time, self.fused, self.fps, duration=duration)
        else:
            raise ValueError(f"window mode must be one of {WINDOW_MODES}, got {mode!r}")
        return ranked_windows(segs, max_windows)
