"""What the web demo's page shows of one stream, built from ``LiveRun`` events.

``View.apply(events)`` folds the events of ``live_infer.LiveRun`` into the page's state; the
``*_html`` / ``chat`` methods render it. Nothing here scores, smooths or picks peaks: the numbers
come from the engine and the post-processor (``test.postprocess``) exactly as in the CLI.

The curve is an inline SVG drawn by matplotlib: one path per series (ids ``aha-curve-<name>``),
one vertex per scored frame, so the page (and its browser tests) can read the curve it shows.
"""
from __future__ import annotations

import html
import io
import time
from dataclasses import dataclass, field

import numpy as np

from test.live_infer import fmt_time

CURVES = ("fused", "relevance", "informative")  # the top panel; uncertainty has its own (log-variance scale)
COLORS = {"fused": "#d62728", "relevance": "#1f77b4", "informative": "#2ca02c", "uncertainty": "#9467bd"}


@dataclass
class View:
    queries: list[str]
    run: int = 0  # which press of Run this is (the page tells one stream's status from the next)
    duration: float | None = None  # known before streaming for files: the time axis does not rescale
    follow: bool = False  # the page's player plays this source in step with the stream
    note: str | None = None  # e.g. why there is no video to watch
    series: dict = field(default_factory=lambda: {k: [] for k in ("time", *CURVES, "uncertainty")})
    cache_len: int | None = None
    online: list = field(default_factory=list)  # (OnlinePeak, confirmed at end of stream)
    messages: list = field(default_factory=list)
    result: dict | None = None  # highlights.json once the stream is over
    error: str | None = None
    state: str = "starting"  # starting, running, done, failed
    started: float = field(default_factory=time.monotonic)
    first_frame_at: float | None = None

    def __post_init__(self):
        self.messages = [{"role": "user", "content": f"**{fmt_time(0.0)}** {q}"} for q in self.queries]

    # ------------------------------------------------------------------ events in
    def apply(self, events) -> None:
        for ev in events:
            kind = ev[0]
            if kind == "frame":
                _, rec, fused, step = ev
                if self.first_frame_at is None:
                    self.first_frame_at = time.monotonic()
                s = self.series
                s["time"].append(rec.time), s["fused"].append(fused), s["relevance"].append(rec.relevance)
                s["informative"].append(rec.informative), s["uncertainty"].append(rec.uncertainty)
                self.cache_len = rec.cache_len
                self.state = "running"
                if step.peak is not None:
                    self.online.append((step.peak, False))
            elif kind == "end_peak":
                self.online.append((ev[1], True))
            elif kind == "response":
                r = ev[1]
                self.messages.append({"role": "assistant", "content": f"**{fmt_time(r.time)}** {r.content or '(empty)'}"})
            elif kind == "query":
                q = ev[1]
                self.messages.append({"role": "user", "content": f"**{fmt_time(q.time)}** {q.text}"})
            elif kind == "unused_query":
                self.messages.append({"role": "user", "content": f"*asked after the last frame, not used:* {ev[1]}"})
            elif kind == "done":
                self.result = ev[1]
                self.state = "done"
                if self.result.get("error"):
                    self.error = _stream_error(self.result["error"], self.n_frames)
            elif kind == "failed":
                self.state = "failed"
                self.error = ev[1]

    @property
    def n_frames(self) -> int:
        return len(self.series["time"])

    def model_fps(self) -> float | None:
        if self.first_frame_at is None or self.n_frames < 2:
            return None
        return (self.n_frames - 1) / max(1e-9, time.monotonic() - self.first_frame_at)

    # ------------------------------------------------------------------ rendering
    def status_html(self) -> str:
        t = self.series["time"][-1] if self.n_frames else None
        state = {"starting": "starting", "running": "streaming", "done": "finished", "failed": "failed"}[self.state]
        parts = [f"<b>{state}</b>", f"{self.n_frames} frames"]
        if t is not None:
            parts.append(f"at {fmt_time(t)}")
        if self.cache_len is not None:
            parts.append(f"cache {self.cache_len} tokens")
        fps = self.model_fps()
        if fps is not None and self.state == "running":
            parts.append(f"{fps:.1f} frames/s")
        if self.state == "done" and self.result is not None:
            n_pk, n_seg = len(self.result.get("offline_peaks", [])), len(self.result.get("offline_segments", []))
            parts.append(f"{n_pk} offline peak{'s' * (n_pk != 1)}, {n_seg} segment{'s' * (n_seg != 1)}")
        attrs = (f'data-run="{self.run}" data-state="{self.state}" data-frames="{self.n_frames}" '
                 f'data-t="{"" if t is None else t}" data-follow="{int(self.follow)}"')
        body = f'<div class="aha-status" {attrs}>{" · ".join(parts)}</div>'
        if self.note:
            body += f'<div class="aha-note">{html.escape(self.note)}</div>'
        if self.error:
            body += error_html(self.error)
        return body

    def highlights_html(self) -> str:
        rows = ["<div class='aha-highlights'>", "<h4>Highlights confirmed online</h4>"]
        if not self.online:
            rows.append("<p class='aha-empty'>none yet</p>")
        rows.append("<ol>")
        for p, at_end in self.online:
            when = "at the end of the stream" if at_end else f"at {fmt_time(p.confirmed_time)}"
            rows.append(f"<li><button class='aha-seek aha-online' data-seek='{p.time}' data-time='{p.time}' "
                        f"data-height='{p.height}'>{fmt_time(p.time)} · smoothed score {p.height:.3f} · confirmed {when}</button></li>")
        rows.append("</ol>")
        if self.result is not None:
            rows.append("<h4>Offline peaks (whole stream, smoothed)</h4><ol>")
            for pk in self.result.get("offline_peaks", []):
                rows.append(f"<li><button class='aha-seek aha-peak' data-seek='{pk['time']}' data-time='{pk['time']}' "
                            f"data-height='{pk['height']}'>{fmt_time(pk['time'])} · smoothed score {pk['height']:.3f}</button></li>")
            rows.append("</ol><h4>Segments</h4><ol>")
            for a, b, score in self.result.get("offline_segments", []):
                rows.append(f"<li><button class='aha-seek aha-segment' data-seek='{a}' data-start='{a}' data-end='{b}' "
                            f"data-score='{score}'>{fmt_time(a)} – {fmt_time(b)} · score {score:.3f}</button></li>")
            rows.append("</ol>")
        rows.append("</div>")
        return "".join(rows)

    def chat(self) -> list[dict]:
        return list(self.messages)

    def plot_html(self) -> str:
        return plot_svg(self)


def _stream_error(error: str, n_frames: int) -> str:
    if error.startswith(("stopped by the user", "the page was closed")):
        return f"{error} after {n_frames} frames; what was scored is post-processed below"
    if n_frames == 0:
        return f"could not read the video: {error}"
    return f"the stream ended early after {n_frames} frames: {error}; what was scored is post-processed below"


def error_html(message: str) -> str:
    return f'<div class="aha-error" role="alert">{html.escape(message)}</div>'


def refused_html(message: str, run: int) -> str:
    """The status of a stream that did not start (bad input, busy server)."""
    return (f'<div class="aha-status" data-run="{run}" data-state="refused" data-frames="0" data-t="" data-follow="0">'
            f'<b>not started</b></div>{error_html(message)}')


def plot_svg(view: View) -> str:
    """The four curves as they stand, online highlights (triangles), and after the stream the
    offline peaks and segments; an inline SVG whose wrapper says how to map a click to a time."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    s = {k: np.asarray(v, dtype=np.float64) for k, v in view.series.items()}
    t = s["time"]
    t_end = max(view.duration or 0.0, float(t[-1]) if len(t) else 0.0, 1.0)
    with matplotlib.rc_context({"svg.fonttype": "none", "path.simplify": False, "svg.hashsalt": "aha", "font.size": 9}):
        fig = Figure(figsize=(9.0, 3.6))
        FigureCanvasSVG(fig)
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
        if view.result is not None:
            for a, b, _ in view.result.get("offline_segments", []):
                top.axvspan(a, b, color="tab:orange", alpha=0.22, lw=0)
        for name in CURVES:
            (line,) = top.plot(t, s[name], lw=2.0 if name == "fused" else 1.1, color=COLORS[name], label=name)
            line.set_gid(f"aha-curve-{name}")
        (line,) = bottom.plot(t, s["uncertainty"], lw=1.1, color=COLORS["uncertainty"], label="uncertainty (log-variance)")
        line.set_gid("aha-curve-uncertainty")
        if view.online:
            pt = np.array([p.time for p, _ in view.online])
            top.plot(pt, [p.height for p, _ in view.online], "v", color="black", ms=7, label="online highlight (smoothed)")
        if view.result is not None and view.result.get("offline_peaks"):
            pk = view.result["offline_peaks"]
            top.plot([p["time"] for p in pk], [p["height"] for p in pk], "^", color="tab:orange", mec="black", ms=7,
                     label="offline peak (smoothed)")
        lo = min([0.0] + [float(s[k].min()) for k in CURVES if len(s[k])])
        hi = max([1.0] + [float(s[k].max()) for k in CURVES if len(s[k])])
        top.set_ylim(lo - 0.05, hi + 0.1)
        top.set_ylabel("score")
        top.legend(loc="upper left", fontsize=7, ncol=3, frameon=False)
        if len(s["uncertainty"]):
            u = s["uncertainty"]
            pad = max(0.1, 0.1 * float(u.max() - u.min()))
            bottom.set_ylim(float(u.min()) - pad, float(u.max()) + pad)
        bottom.set_ylabel("log-var")
        bottom.legend(loc="upper left", fontsize=7, frameon=False)
        bottom.set_xlabel("time (s)")
        top.set_xlim(0.0, t_end)
        fig.tight_layout(pad=0.4)
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype: the SVG is inline in the page
    # where the time axis lies, as fractions of the figure width, for click-to-seek
    box = top.get_position()
    return (f'<div class="aha-plot-svg" data-t0="0" data-t1="{t_end}" data-x0="{box.x0:.5f}" data-x1="{box.x1:.5f}" '
            f'data-frames="{len(t)}">{svg}</div>')
