"""Score plots (matplotlib's Agg canvas, written atomically)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from test.postprocess.smoothing import _as_series
from utils.io import apply_umask


def plot_scores(path_png, times, series: Mapping[str, Sequence[float]], peaks=None,
                gt_spans: Sequence[Sequence[float]] | None = None, gt_curve=None,
                segments: Sequence[Sequence[float]] | None = None, title: str | None = None,
                dpi: int = 120, peak_label: str = "peaks") -> Path:
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
            ax.plot(pt, np.interp(pt, t, y), "v", color=color, ms=7, label=f"{name} {peak_label}")
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
        apply_umask(tmp)  # mkstemp made it private
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
