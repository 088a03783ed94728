"""The one post-processor, shared by the demo, live inference and every benchmark.

Pipeline (reference §5): per-frame head scores -> fusion (``fusion``) -> Savitzky-Golay smoothing
(``smoothing``) -> peak picking (``peaks``, ``scipy.signal.find_peaks``) -> peaks grown into
segments -> merged -> a duration budget picks the highlight reel (``segments``); ``plots`` draws
them, ``stream.ProcessedStream`` hands the results to the benchmark modules. Offline functions see
the whole series; ``causal_smooth``, ``CausalSmoother``, ``trailing_mean``, ``running_minmax``,
``causal_interval``, ``OnlinePeakDetector`` and ``online_segments`` use only past frames, so live
output and online results never look ahead.

Frame-time convention: a sampled frame at time ``t`` stands for ``[t, t + 1/fps)``, so a segment
built from frames ``lo..hi`` spans ``[time[lo], time[hi] + 1/fps)``.
"""
from test.postprocess.fusion import (FUSION_KEYS, LOGVAR_MAX, LOGVAR_MIN, FusionParams, fuse, fuse_prediction,
                                     read_fusion_file, uncertainty_penalty, uncertainty_value)
from test.postprocess.peaks import (CONFIRM_DELAY_S, PEAK_DISTANCE_S, PEAK_HEIGHT, PEAK_PROMINENCE, Highlights,
                                    OnlinePeak, OnlinePeakDetector, OnlineStep, distance_frames, find_highlights,
                                    infer_fps, parse_height, resolve_height)
from test.postprocess.plots import plot_scores, score_figure
from test.postprocess.segments import (CAUSAL_ANCHOR, CAUSAL_THRESHOLD, CAUSAL_WINDOW, Segment, causal_interval,
                                       causal_normalised, frame_step, grow_segments, highlight_segments,
                                       merge_segments, online_segments, ranked_windows, select_reel_segments,
                                       true_runs)
from test.postprocess.smoothing import (CAUSAL_POLYORDER, SAVGOL_POLYORDER, SAVGOL_WINDOW, CausalSmoother,
                                        causal_smooth, centred_mean, effective_window, minmax, running_minmax, smooth,
                                        trailing_mean)
from test.postprocess.stream import SCORE_SOURCES, WINDOW_MODES, ProcessedStream

__all__ = [
    "FUSION_KEYS", "LOGVAR_MAX", "LOGVAR_MIN", "FusionParams", "fuse", "fuse_prediction", "read_fusion_file",
    "uncertainty_penalty", "uncertainty_value",
    "CONFIRM_DELAY_S", "PEAK_DISTANCE_S", "PEAK_HEIGHT", "PEAK_PROMINENCE", "Highlights", "OnlinePeak",
    "OnlinePeakDetector", "OnlineStep", "distance_frames", "find_highlights", "infer_fps", "parse_height",
    "resolve_height", "plot_scores", "score_figure", "CAUSAL_ANCHOR", "CAUSAL_THRESHOLD", "CAUSAL_WINDOW", "Segment",
    "causal_interval", "causal_normalised", "frame_step", "grow_segments", "highlight_segments", "merge_segments",
    "online_segments", "ranked_windows", "select_reel_segments", "true_runs", "CAUSAL_POLYORDER", "SAVGOL_POLYORDER",
    "SAVGOL_WINDOW", "CausalSmoother", "causal_smooth", "centred_mean", "effective_window", "minmax",
    "running_minmax", "smooth", "trailing_mean", "SCORE_SOURCES", "WINDOW_MODES", "ProcessedStream",
]
