"""Online highlight detection on one video, frame folder, live URL or webcam.

    python -m test.live_infer --video V --query "a red circle bounces" --model_config aha-tiny \
        --checkpoint ckpt/ --output_dir out/

    python -m test.live_infer --video V --features FEATS --query ... # frame tokens from scripts/extract_features.py

Writes, as it goes (one flushed line per frame / response):
  out/scores.jsonl     frame, time, informative, relevance, uncertainty (raw log-variance), fused, cache_len
  out/responses.jsonl  time, frame, content, trigger score
and at the end (also after a source breaks mid-stream, with what was scored):
  out/highlights.json  "online_highlights": the peaks confirmed live (causal smoothing, each one
                       reported confirm_delay seconds after it happened; printed as they come;
                       confirmed_at_end_of_stream: judged when the stream ended, sooner),
                       "offline_peaks" / "offline_segments": the whole-video post-processing after
                       the stream (centred Savitzky-Golay + find_peaks: looks ahead, so not live),
                       "source_stats": what the source left out (samples that repeated a frame, the
                       latest frame shown after its sample's time, frames a browser webcam dropped),
                       and the full protocol record
  out/scores.png       the score curves with peaks (and ground truth when given)
  out/highlights.mp4   a highlight reel under --reel_budget seconds (file sources only)
  out/run.json         every setting of the run
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
import time
from pathlib import Path

from test.engine_args import (add_engine_args, apply_settings, check_degrade_spec, check_engine_args, engine_config, feature_frames,
                              fusion_params, load_model, make_degradation, open_features)
from utils.io import JsonlWriter, atomic_write_json, read_json
from utils.cli import EXIT_INTERRUPTED, ArgumentParser, add_debug_flag, run_cli
from utils.log import setup_logging

log = logging.getLogger("live_infer")
# written only after the stream: a previous run's copies are removed when a run starts
STALE_OUTPUTS = ("highlights.json", "scores.png", "highlights.mp4")


def check_live_args(args) -> None:
    """Everything ``run`` needs, checked before the model is loaded: the engine flags, the video
    (a file is scanned for truncation here), the queries, the degradation, the output folder."""
    from data.sources import detect_kind
    from data.video import VideoDecodeError, probe
    from utils.cli import check_number, check_output_dir

    check_engine_args(args)
    for flag, kw in (("source_fps", {"above": 0}), ("reel_budget", {"minimum": 0})):
        check_number(getattr(args, flag), f"--{flag}", **kw)
    check_output_dir(args.output_dir, "--output_dir")
    parse_queries(args)
    if args.gt_spans:
        read_gt_spans(args.gt_spans)
    if args.features:
        if args.realtime:  # the cached frames are not paced: run.json would say a pacing that never happened
            raise ValueError("--realtime paces a video source: it cannot be combined with --features (cached frames)")
        if args.source_fps is not None:
            raise ValueError("--source_fps is the rate of a frame folder's images: --features streams cached frames")
        return  # the video itself is not read
    kind = detect_kind(args.video)
    if kind == "frames" and args.source_fps is None:
        raise ValueError(f"--video {args.video} is a frame folder: give --source_fps (the rate the images were taken at)")
    if kind != "frames" and args.source_fps is not None:
        # only a frame folder has no clock of its own; any other source would ignore the flag silently
        raise ValueError(f"--source_fps is the rate of a frame folder's images; --video {args.video} is a {kind} source, "
                         "whose frames carry their own times")
    if kind == "frames":
        from data.sources import check_frame_folder

        check_frame_folder(args.video)  # a file that is no usable image, named before the model loads
        if args.fps is not None and args.fps > args.source_fps * 1.01:  # said as for a file (check_against_duration)
            log.warning("--fps %g is above the folder's --source_fps %g: each image is streamed about %.0f times",
                        args.fps, args.source_fps, args.fps / args.source_fps)
    if args.degrade:
        if args.degrade.startswith("random:"):
            check_degrade_spec(args.degrade)
            if kind != "file":
                raise ValueError("--degrade random:... needs a video file (its duration places the segments)")
        else:
            make_degradation(args.degrade, args.video)
    if kind == "file":
        try:
            info = probe(args.video)
        except VideoDecodeError as e:
            raise ValueError(f"--video {e}") from None
        if not info.duration > 0:
            raise ValueError(f"--video {args.video}: the video has no duration")
        check_against_duration(args, info)


def check_against_duration(args, info) -> None:
    """Times a file cannot reach: a query at or after its end would never be asked (the highlights
    would answer no query), a degradation segment past it would change nothing. A --fps above the
    file's rate repeats frames: allowed (the sampling rule), but said."""
    from data.video import num_sampled_frames
    from test.engine_args import planned_fps

    late = [q for q in parse_queries(args) if q.time >= info.duration]
    if late:
        raise ValueError(f"--query_at {late[0].time:g}:{late[0].text}: the video ends at {info.duration:g} s, so the "
                         "query would never be asked")
    # a query is fed before the first frame at or after its time: one after the last frame the run
    # samples (the end of the video at this fps, or --max_frames) is never asked either
    fps = planned_fps(args)
    last = (num_sampled_frames(info.duration, fps, args.max_frames) - 1) / fps
    late = [q for q in parse_queries(args) if q.time > last]
    if late:
        cut = "" if args.max_frames is None else f", --max_frames {args.max_frames}"
        raise ValueError(f"--query_at {late[0].time:g}:{late[0].text}: the last frame streamed is at {last:g} s (at "
                         f"{fps:g} frames/s{cut}; the video ends at {info.duration:g} s), so the query would never be asked")
    if args.degrade and not args.degrade.startswith("random:"):
        segments = make_degradation(args.degrade, args.video).segments
        past = [seg for seg in segments if seg.start >= info.duration]
        if past:
            raise ValueError(f"--degrade {args.degrade}: the segment [{past[0].start:g}, {past[0].end:g}] starts at or "
                             f"after the video's end ({info.duration:g} s)")
        past = [seg for seg in segments if seg.start > last]  # no frame streamed lies in it
        if past:
            raise ValueError(f"--degrade {args.degrade}: the segment [{past[0].start:g}, {past[0].end:g}] starts after the "
                             f"last frame streamed ({last:g} s at {fps:g} frames/s), so it would change nothing")
    if info.fps > 0 and fps > info.fps * 1.01:  # the checkpoint's rate too: a slow video repeats frames all the same
        said = f"--fps {fps:g}" if args.fps is not None else f"the run's {fps:g} frames/s (the checkpoint's, or the default)"
        log.warning("%s is above the video's %g frames/s: each frame is streamed about %.0f times", said, info.fps,
                    fps / info.fps)


def read_gt_spans(path: str) -> list[list[float]] | dict[str, list[list[float]]]:
    """``--gt_spans``: a JSON list of [start, end] pairs in seconds (finite, start <= end), or
    ``{label: [[start, end], ...]}`` (one shade and legend entry per set)."""
    from utils.cli import check_number

    data = read_json(path)
    sets = data if isinstance(data, dict) else {None: data}
    for label, spans in sets.items():
        where = f"--gt_spans {path}" + (f" [{label!r}]" if label is not None else "")
        if not isinstance(spans, list) or not all(isinstance(x, list) and len(x) == 2 for x in spans):
            raise ValueError(f"{where}: expected a JSON list of [start, end] pairs (or an object of such lists)")
        for s, e in spans:
            check_number(s, f"{where}: start", minimum=0)
            check_number(e, f"{where}: end", minimum=0)
            if e < s:
                raise ValueError(f"{where}: span [{s}, {e}] ends before it starts")
    return data


def parse_queries(args) -> list:
    from models.chat import check_no_control_tokens
    from models.streaming import QueryEvent

    out = [QueryEvent(0.0, q) for q in (args.query or [])]
    for q in args.query or []:
        if not q.strip():
            raise ValueError("--query is empty")
        check_no_control_tokens(q, "--query")
    for spec in args.query_at or []:
        t, _, text = spec.partition(":")
        try:
            when = float(t)
        except ValueError:
            when = float("nan")
        if not text.strip() or not math.isfinite(when) or when < 0:
            raise ValueError(f"--query_at wants TIME:TEXT (TIME in seconds, finite and >= 0), got {spec!r}")
        out.append(QueryEvent(when, check_no_control_tokens(text, "--query_at")))
    return out


def fmt_time(t: float) -> str:
    """mm:ss.ss, rounded to the centisecond first (else 59.999 s read "00:60.00")."""
    cs = int(round(t * 100))
    return f"{cs // 6000:02d}:{cs % 6000 / 100:05.2f}"


def main(argv=None) -> int:
    ap = ArgumentParser(prog="python -m test.live_infer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", required=True, help="file, frame folder, rtsp/http/hls URL, webcam[:N], follow:PATH, - (stdin)")
    ap.add_argument("--query", action="append", help="a query asked at time 0 (repeatable)")
    ap.add_argument("--query_at", action="append", help="TIME:TEXT, a query asked at TIME seconds")
    ap.add_argument("--output_dir", required=True)
    ap.add_argument("--realtime", action="store_true", help="pace a file at its own rate (a stand-in for a live stream)")
    ap.add_argument("--source_fps", type=float, default=None, help="frame rate of a frame folder")
    ap.add_argument("--degrade", default=None, help="random:SEED[:type,type] or a JSON file holding [[start, end, type], ...]")
    ap.add_argument("--feature_key", default=None, help="the video's key in --features (default: its file name)")
    ap.add_argument("--reel_budget", type=float, default=30.0, help="seconds of highlight reel (0: no reel)")
    ap.add_argument("--gt_spans", default=None, help="JSON list of [start, end] ground-truth spans, or {label: spans} (one shade and legend "
                    "entry per set), drawn on the plot")
    ap.add_argument("--quiet", action="store_true")
    add_engine_args(ap)
    add_debug_flag(ap)
    args = ap.parse_args(argv)
    setup_logging("WARNING" if args.quiet else "INFO")
    # bad input: one line, exit 2, before the model is loaded; a failure later says where the outputs are
    return run_cli("live_infer", lambda: run(args), debug=args.debug, outputs=lambda: _written(args.output_dir))


def _written(out_dir: str) -> str | None:
    return out_dir if Path(out_dir).is_dir() and any(Path(out_dir).iterdir()) else None


class LiveRun:
    """One online run, as steps a driver can watch: the CLI (``run``) prints them, the web demo
    (``test.web_demo``) draws them. The same engine, post-processor and output files either way.

    ``LiveRun(args)`` loads the model the flags name (or takes an already ``loaded`` one), opens
    the source (or takes a ready ``source``, e.g. browser webcam frames) and writes run.json;
    ``events()`` streams, writing scores.jsonl / responses.jsonl as it goes, and yields
    ``("frame", FrameRecord, fused, OnlineStep)`` (``step.peak``: a highlight confirmed online at
    this frame), ``("response", ResponseRecord)`` and ``("query", QueryEvent)`` (a query asked
    with ``ask`` while streaming, as it takes effect); ``close_stream()`` returns the peaks judged
    at the end of the stream (queries asked after the last frame land in ``unused_queries``);
    ``finish()`` post-processes offline and writes highlights.json,
    scores.png and the reel. ``ask`` and ``stop`` may be called from another thread; with
    ``interactive`` the frames go one at a time, so both take effect at the next frame (the scores
    equal a batched or K-frame run's).
    """

    def __init__(self, args, loaded=None, source=None, source_kind: str | None = None, interactive: bool = False):
        import queue

        from data.sources import detect_kind, open_source
        from models.streaming import StreamingEngine
        from test.postprocess import CAUSAL_POLYORDER, SAVGOL_WINDOW, OnlinePeakDetector

        self.args = args
        self.out = out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.fusion = fusion_params(args)
        self.queries = parse_queries(args)
        if loaded is None:
            loaded = load_model(args)
        elif getattr(args, "settings_source", None) is None:  # flags not yet resolved against this model
            apply_settings(args, loaded)
        model, tok = loaded
        self.engine = engine = StreamingEngine(model, tok, engine_config(args))
        features = open_features(args, model) if source is None else None
        key = None
        if features is not None:
            self.kind = kind = "features"
            degradation = None
            key = args.feature_key or Path(args.video).name
            source = feature_frames(features, key, args.fps, engine.frame_size, engine.device, engine.dtype, args.max_frames)
        else:
            self.kind = kind = source_kind or detect_kind(args.video)
            if source is None:
                degradation = make_degradation(args.degrade, args.video)
            else:  # a ready source (browser frames) degrades its frames itself: record what it applies
                degradation = getattr(source, "degradation", None)
                if args.degrade and degradation is None:
                    raise ValueError(f"--degrade {args.degrade}: this source ({kind}) does not apply a degradation")
        if source is None:
            source = open_source(args.video, fps=args.fps, size=engine.frame_size, realtime=args.realtime,
                                 source_fps=args.source_fps, degradation=degradation, end_frame=args.max_frames,
                                 resize=engine.frame_resize)
        self.source = source
        # a live source (or a page asking queries mid-stream): every record before the next frame
        # ``interactive``: queries may be asked and the stream stopped at any frame (the web page)
        read_ahead = kind in ("file", "frames", "features") and not args.realtime and not interactive
        self.vision_batch = args.vision_batch if read_ahead and kind != "features" else 1
        self.frames_per_step = engine.cfg.frames_per_step if read_ahead else 1
        self.detector = OnlinePeakDetector(fps=args.fps, distance_s=args.peak_distance, prominence=args.peak_prominence)
        self.protocol = {
            "video": str(args.video), "source_kind": kind, "queries": [[q.time, q.text] for q in self.queries],
            "fps": args.fps, "max_frames": args.max_frames,  # the stream is cut there: say so
            "source_fps": getattr(args, "source_fps", None) if kind == "frames" else None,  # a frame folder's clock (image k at k / source_fps)
            "tokens_per_frame": engine.tpf, "frame_size": engine.frame_size,
            "frame_resize": engine.frame_resize,
            "model": args.model_record, "settings_source": args.settings_source,
            "prompt_order": args.prompt_order, "system_prompt": engine.system_prompt,
            # the layout that runs (as test.run_benchmark records it): a --window the policy ignores
            # (unbounded, sink) is not the run's window; the sink the policy keeps (0: none)
            "cache": {k: engine.cfg.cache_record()[k] for k in ("policy", "window", "sink_tokens")},
            "decision": {"score_heads": args.score_heads, "threshold": args.threshold, "cumulative_threshold": args.cumulative_threshold,
                         "min_interval_s": args.min_interval, "uncertainty_gate": args.uncertainty_gate,
                         "relevance_gate": args.relevance_gate, "relevance_gate_frames": args.relevance_gate_frames,
                         "max_wait_frames": args.max_wait_frames, "generate": not args.no_generate,
                         "remove_assistant_turns": args.remove_assistant_turns,
                         # the generation settings the responses were made with (not recorded before)
                         "max_new_tokens": engine.cfg.max_new_tokens, "repetition_penalty": engine.cfg.repetition_penalty,
                         "respond_before_query": engine.cfg.respond_before_query,
                         "source": getattr(args, "decision_source", None) or "flags/defaults"},
            "fusion": self.fusion.to_dict(), "fusion_source": getattr(args, "fusion_source", None) or args.params_file or "defaults/flags",
            "tuned_on_this_video": False,
            "smoothing": {"savgol_window": args.savgol_window, "savgol_polyorder": args.savgol_polyorder},
            "peaks": {"height": "mean+0.5std", "prominence": args.peak_prominence, "distance_s": args.peak_distance,
                      "online": {"smoothing": f"causal Savitzky-Golay (window {SAVGOL_WINDOW}, order {CAUSAL_POLYORDER})",
                                 # the detector waits a whole number of frames: round(3 s * fps), at least 1
                                 "confirm_delay_frames": self.detector.delay,
                                 "confirm_delay_s": self.detector.delay / args.fps, "warmup_frames": self.detector.warmup},
                      "offline": "centred Savitzky-Golay (savgol_window, savgol_polyorder) + find_peaks, after the stream"},
            "degradation": None if degradation is None else degradation.to_list(),
            "realtime": args.realtime, "vision_batch": self.vision_batch, "frames_per_step": self.frames_per_step,
            "cache_layout": engine.cfg.cache_record(),
            "features": None if features is None else {"cache": str(features.directory), "key": key, "kind": "frame_embeds"},
        }
        # a previous run's end-of-run files go now, not at the end: a run killed mid-stream left the old
        # highlights.json (its frame count, no error) beside this run's run.json and partial scores
        for stale in STALE_OUTPUTS:
            (out / stale).unlink(missing_ok=True)
        atomic_write_json(out / "run.json", self.protocol)
        self.times, self.info, self.rel, self.unc, self.fused = [], [], [], [], []
        self.responses, self.online_peaks = [], []
        self.error: str | None = None
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()  # queries asked while streaming
        self._asked: list = []  # ... added to the engine, not yet reported
        self.unused_queries: list[str] = []  # ... asked too late: the stream had no frame left
        self._stop: str | None = None
        self._events = None
        self._closed = False  # close_stream has run (it frees the engine)
        self.interrupted = False  # Ctrl-C / SIGTERM ended the stream (the error contract's exit 130)

    # ------------------------------------------------------------------ while streaming
    def ask(self, text: str) -> None:
        """Ask a query now: it is fed to the engine right before the next frame."""
        if self.vision_batch != 1 or self.frames_per_step != 1:
            raise ValueError("queries asked while streaming need frames taken one at a time (vision_batch 1, frames_per_step 1)")
        # refused here, to the asker: fed to the engine it would end the stream with the error
        from models.chat import check_no_control_tokens

        if not text.strip():
            raise ValueError("the query is empty")

        template = getattr(self.engine, "template", None)  # None once the stream is over
        check_no_control_tokens(text, "the query", None if template is None else template.tok)
        self._inbox.put(text)

    def stop(self, reason: str = "stopped by the user") -> None:
        """End the stream before the next frame; what was scored is kept and post-processed."""
        self._stop = self._stop or reason

    def _frames(self):
        import queue

        from models.streaming import QueryEvent

        for item in self.source:  # (time, image) from a video source, or a FrameEvent of cached features
            t = item.time if hasattr(item, "time") else item[0]
            if self._stop is not None:
                return
            while True:  # between frames, so a live query lands right before the frame it precedes
                try:
                    text = self._inbox.get_nowait()
                except queue.Empty:
                    break
                self.engine.add_query(text)
                self._asked.append(QueryEvent(float(t), text))
                self.protocol["queries"].append([float(t), text])
            yield item

    def events(self):
        """Stream the source through the engine (once); see the class docstring."""
        if self._events is not None:
            raise RuntimeError("a LiveRun streams once")
        self._events = self._stream()
        return self._events

    def _stream(self):
        from models.streaming import FrameRecord
        from test.postprocess import fuse

        out = self.out
        with JsonlWriter(out / "scores.jsonl", "w") as sw, JsonlWriter(out / "responses.jsonl", "w") as rw, \
                (self.source if hasattr(self.source, "__enter__") else contextlib.nullcontext()):  # feature frames: a generator
            try:
                for rec in self.engine.run(self._frames(), self.queries, vision_batch=self.vision_batch,
                                               frames_per_step=self.frames_per_step):
                    while self._asked:
                        yield ("query", self._asked.pop(0))
                    if isinstance(rec, FrameRecord):
                        y = float(fuse([rec.informative], [rec.relevance], [rec.uncertainty], self.fusion)[0])
                        sw.write({**rec.to_dict(), "fused": y})
                        self.times.append(rec.time), self.info.append(rec.informative), self.rel.append(rec.relevance)
                        self.unc.append(rec.uncertainty), self.fused.append(y)
                        step = self.detector.push(y, rec.time)
                        if step.peak is not None:
                            self.online_peaks.append(step.peak)
                        yield ("frame", rec, y, step)
                    else:
                        rw.write(rec.to_dict())
                        self.responses.append(rec)
                        yield ("response", rec)
            except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (utils.cli raises it): exit status 130
                self.error, self.interrupted = "interrupted by the user", True
            except Exception as e:  # a source breaking mid-stream: keep and post-process what was scored
                self.error = f"{type(e).__name__}: {e}"
        if self.error is None and self._stop is not None:
            self.error = self._stop

    def close_stream(self) -> list:
        """End the stream (if a driver left it early) and judge its last frames: the peaks
        confirmed at the end of the stream, also appended to ``online_peaks``. Once: a second call
        (a driver cleaning up after ``finish`` failed) returns no peak and changes nothing."""
        if self._closed:
            return []
        self._closed = True
        if self._events is not None:
            self._events.close()  # a no-op once it ran to the end; else closes the files and the source
        if self.error is None and self._stop is not None:
            self.error = self._stop
        self.cache_at_end = self.engine.describe_cache()
        self.engine = None  # the stream is over: free the engine and its KV cache now
        while not self._inbox.empty():  # asked after the last frame: never fed to the model
            self.unused_queries.append(self._inbox.get_nowait())
        # scheduled (--query_at) after the last frame of a stream whose length was not known up front
        last = self.times[-1] if self.times else float("-inf")
        self.unused_queries += [q.text for q in self.queries if q.time > last]
        if self.unused_queries:
            log.warning("never asked (the stream ended first): %s", "; ".join(map(repr, self.unused_queries)))
        found = self.detector.finish()
        self.online_peaks.extend(found)
        self.end_peaks = found
        return found

    # ------------------------------------------------------------------ after the stream
    def finish(self) -> dict:
        """Offline peaks and segments, the plot and the reel; writes and returns highlights.json."""
        import numpy as np

        from test.postprocess import find_highlights, highlight_segments, plot_scores, select_reel_segments

        args, out = self.args, self.out
        for stale in STALE_OUTPUTS:  # (removed at the start too) this run may not rewrite the plot or reel
            (out / stale).unlink(missing_ok=True)
        if len(self.protocol["queries"]) > len(self.queries):  # queries were asked while streaming
            atomic_write_json(out / "run.json", self.protocol)
        result = {"protocol": self.protocol, "n_frames": len(self.times), "error": self.error,
                  "cache_at_end": getattr(self, "cache_at_end", None),
                  "online_highlights": [dict(p.__dict__, confirmed_at_end_of_stream=any(p is q for q in getattr(self, "end_peaks", ())))
                                        for p in self.online_peaks],
                  "offline_peaks": [], "offline_segments": [],
                  "responses": [r.to_dict() for r in self.responses],
                  "legend": {"online_highlights": "confirmed live: causal smoothing, each reported confirm_delay after it "
                                                  "happened (OnlinePeakDetector); printed while streaming. Those with "
                                                  "confirmed_at_end_of_stream were judged when the stream ended, with "
                                                  "fewer frames after them (printed 'confirmed at the end of the stream')",
                             "offline_peaks": "after the stream, over the whole video: centred Savitzky-Golay smoothing "
                                              "and find_peaks (looks ahead: not available live)",
                             "offline_segments": "the offline peaks grown into segments (plot and reel)"}}
        if self.unused_queries:
            result["unused_queries"] = list(self.unused_queries)
        stats = getattr(self.source, "stats", None)  # what a live source left out (FrameSource.stats)
        if callable(stats):
            result["source_stats"] = stats()
            if result["source_stats"].get("dropped_frames"):
                log.warning("the source dropped %d frames while the model was behind: the samples due then show later "
                            "frames", result["source_stats"]["dropped_frames"])
        if self.times:
            t = np.asarray(self.times)
            y = np.asarray(self.fused)
            hl = find_highlights(t, y, args.fps, args.savgol_window, args.savgol_polyorder,
                                 prominence=args.peak_prominence, distance_s=args.peak_distance)
            segs = highlight_segments(t, y, args.fps, args.savgol_window, args.savgol_polyorder,
                                      prominence=args.peak_prominence, distance_s=args.peak_distance)
            result["offline_peaks"] = [{"time": float(a), "height": float(b)} for a, b in zip(hl.times, hl.heights)]
            result["offline_segments"] = [list(s) for s in segs]
            # written before the plot and the reel: should either fail, what the stream found is kept
            atomic_write_json(out / "highlights.json", result)
            gt = read_gt_spans(args.gt_spans) if args.gt_spans else None
            plot_scores(out / "scores.png", t, {"fused": y, "informative": np.asarray(self.info), "relevance": np.asarray(self.rel)},
                        peaks={"fused": hl.times}, gt_spans=gt, segments=segs,
                        title=", ".join(q[1] for q in self.protocol["queries"]) or str(args.video), peak_label="offline peaks",
                        segment_label="highlight segments (offline peaks grown)",
                        markers={"online highlights (printed live)": [p.time for p in self.online_peaks],
                                 "responses": [r.time for r in self.responses]})
            if args.reel_budget > 0 and self.kind == "file" and segs:
                from test.reel import write_highlight_reel

                chosen = select_reel_segments(segs, args.reel_budget)
                info_reel = write_highlight_reel(args.video, chosen, out / "highlights.mp4")
                result["reel"] = {"path": str(out / "highlights.mp4"), "segments": [list(s) for s in chosen],
                                  "frames": info_reel.frames, "duration_s": info_reel.duration_s}
        atomic_write_json(out / "highlights.json", result)
        return result


def run(args) -> int:
    from tqdm import tqdm

    check_live_args(args)  # every argument, before the model loads (one line, exit 2)
    live = LiveRun(args)
    bar = tqdm(desc="frames", unit="frame", disable=args.quiet, dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        for ev in live.events():
            if ev[0] == "frame":
                _, rec, _, step = ev
                if step.peak is not None:
                    _say(f"[{fmt_time(step.peak.time)}] online highlight  smoothed score {step.peak.height:.3f}  "
                         f"(confirmed at {fmt_time(step.time)})", bar)
                bar.update(1)
                bar.set_postfix(fps=f"{bar.n / max(1e-9, time.perf_counter() - t0):.1f}", cache=rec.cache_len)
            elif ev[0] == "response":
                rec = ev[1]
                _say(f"[{fmt_time(rec.time)}] response  score {rec.trigger_score:.3f}: {rec.content}", bar)
    except KeyboardInterrupt:
        live.stop("interrupted by the user")
        live.interrupted = True
    bar.close()
    for p in live.close_stream():
        _say(f"[{fmt_time(p.time)}] online highlight  smoothed score {p.height:.3f}  (confirmed at the end of the stream)", None)
    result = live.finish()
    if not args.quiet:
        print(f"{len(live.times)} frames, {len(live.responses)} responses, {len(live.online_peaks)} online highlights (confirmed "
              f"live, printed above), {len(result['offline_peaks'])} offline peaks and {len(result['offline_segments'])} "
              f"segments (whole-video smoothing after the stream) -> {live.out}")
    if live.interrupted:  # the error contract's exit-130 line (the records so far are post-processed above)
        print(f"live_infer: interrupted after {len(live.times)} frames; partial outputs are in {live.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if live.error:  # the error contract's exit-1 line, last on stderr (the records so far are post-processed above)
        print(f"live_infer: failed: the stream ended early after {len(live.times)} frames: {live.error}; "
              f"partial outputs are in {live.out}", file=sys.stderr)
    return 1 if live.error else 0


def _say(msg: str, bar) -> None:
    if bar is not None:
        bar.write(msg)
    else:
        print(msg, flush=True)


if __name__ == "__main__":
    sys.exit(main())
