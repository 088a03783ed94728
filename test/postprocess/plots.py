"""Score plots (matplotlib's Agg canvas, written atomically)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from test.postprocess.smoothing import _as_series
from utils.io import apply_umask


SPAN_STYLES = ("tab:green", "tab:gray", "tab:purple", "tab:brown")  # span sets, in order (segments: orange)
MARKER_SHAPES = ("o", "s", "D", "P")  # marker sets, in order (hollow, black)


def score_figure(times, series: Mapping[str, Sequence[float]], peaks=None,
                 gt_spans: Sequence[Sequence[float]] | Mapping[str, Sequence[Sequence[float]]] | None = None,
                 gt_curve=None, segments: Sequence[Sequence[float]] | None = None, title: str | None = None,
                 peak_label: str = "peaks", gt_label: str = "ground-truth spans",
                 segment_label: str = "highlight segments", markers: Mapping[str, Sequence[float]] | None = None):
    """The score figure (matplotlib ``Figure`` on an Agg canvas): curves, peaks, shaded spans.

    ``gt_spans``: spans (shaded, labelled ``gt_label``) or ``{label: spans}``, one shade per set
    (e.g. matching events and distractors). ``peaks``: a sequence of peak times (drawn on the first
    series) or {series name: times}. ``gt_curve``: per-frame ground truth aligned with ``times``
    (dashed, on a twin axis). ``markers``: ``{label: times}``, more labelled instants drawn on the
    first series (e.g. the online highlights printed live, the responses), one marker shape per set.
    The legend names every curve, marker and shaded span set, the twin axis's curve included.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = _as_series(times, "times")
    if not series:
        raise ValueError("plot_scores needs at least one series")
    span_sets = dict(gt_spans) if isinstance(gt_spans, Mapping) else ({gt_label: gt_spans} if gt_spans else {})
    if len(span_sets) > len(SPAN_STYLES):
        raise ValueError(f"at most {len(SPAN_STYLES)} span sets, got {len(span_sets)}")
    fig = Figure(figsize=(12, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for color, (label, spans) in zip(SPAN_STYLES, span_sets.items()):
        for i, (a, b, *_) in enumerate(spans or []):
            ax.axvspan(a, b, color=color, alpha=0.15, lw=0, label=label if i == 0 else None)
    for i, (a, b, *_) in enumerate(segments or []):
        ax.axvspan(a, b, color="tab:orange", alpha=0.25, lw=0, label=segment_label if i == 0 else None)
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
            ax.plot(pt, np.interp(pt, t, y), "v", color=color, ms=7, label=f"{name} {peak_label}")
    if markers and len(markers) > len(MARKER_SHAPES):
        raise ValueError(f"at most {len(MARKER_SHAPES)} marker sets, got {len(markers)}")
    first = next(iter(series))
    for shape, (label, mt) in zip(MARKER_SHAPES, (markers or {}).items()):
        mt = np.asarray(mt, dtype=np.float64)
        if mt.size:  # an empty set has nothing to name
            ax.plot(mt, np.interp(mt, t, colors[first][1]), shape, color="black", mfc="none", ms=9, mew=1.3, label=label)
    handles, labels = ax.get_legend_handles_labels()
    if gt_curve is not None:
        g = _as_series(gt_curve, "gt_curve")
        if len(g) != len(t):
            raise ValueError(f"gt_curve has {len(g)} values for {len(t)} times")
        ax2 = ax.twinx()
        ax2.plot(t, g, "--", color="gray", lw=1, label="ground truth (right axis)")
        ax2.set_ylabel("ground truth")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score")
    if title:
        ax.set_title(title)
    # outside the plot: with many entries an inside legend hides the curves
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01 if gt_curve is None else 1.06, 1.0),
              fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_scores(path_png, times, series: Mapping[str, Sequence[float]], peaks=None,
                gt_spans: Sequence[Sequence[float]] | Mapping[str, Sequence[Sequence[float]]] | None = None,
                gt_curve=None, segments: Sequence[Sequence[float]] | None = None, title: str | None = None,
                dpi: int = 120, peak_label: str = "peaks", gt_label: str = "ground-truth spans",
                segment_label: str = "highlight segments", markers: Mapping[str, Sequence[float]] | None = None) -> Path:
    """``score_figure`` written to a PNG (no pyplot, no global backend switch; written atomically)."""
    fig = score_figure(times, series, peaks, gt_spans, gt_curve, segments, title, peak_label, gt_label, segment_label,
                       markers)
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")  # the legend sits outside the axes
        apply_umask(tmp)  # mkstemp made it private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
