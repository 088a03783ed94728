"""The web demo's streams: one ``live_infer.LiveRun`` per browser page, each in its own thread.

The model is loaded once per server (read-only weights, shared); every page that starts a stream
gets its own ``StreamingEngine`` (its own KV cache, decision rule and online peak detector), so
users never see each other's state. A stream ends at the end of its source, on Stop, or when its
page closes (Gradio's unload event): then its engine is dropped at once (``LiveRun.close_stream``)
and what was scored is post-processed as in the CLI.

Inputs are checked before a stream starts, so a bad file, a URL that is not one, or a missing
query is an error shown in the page, not a failure of the server.
"""
from __future__ import annotations

import copy
import itertools
import queue
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from test.engine_args import apply_settings
from test.live_infer import LiveRun

BROWSER_CODECS = frozenset({"h264", "vp8", "vp9", "av1"})  # what every current browser plays in mp4 / webm


class InputError(ValueError):
    """A problem with what the user gave (shown in the page as is)."""


# ------------------------------------------------------------------------------ browser webcam


class PushedFrames:
    """Frames the browser sends from its webcam, as a frame source for the engine.

    ``put(image)`` (Gradio's stream event, another thread) stamps each frame with its arrival time;
    iterating samples them at ``fps`` with the at-or-after rule every source uses, letter-boxed like
    every source. Ends when ``close()`` is called or no frame came for ``idle_timeout`` seconds
    (the user stopped the camera); raises when none came within ``first_timeout`` seconds.
    Frames that arrive while the queue is full (the engine far behind) are dropped and counted
    (``stats``, recorded in the run's highlights.json as ``source_stats``).
    """

    def __init__(self, fps: float, size: int | None, first_timeout: float = 15.0, idle_timeout: float = 5.0,
                 end_frame: int | None = None, resize: str = "antialias", degradation=None):
        self.fps, self.size, self.end_frame, self.resize = fps, size, end_frame, resize
        self.degradation = degradation  # the server's --degrade schedule (keyed by sample time), as every source
        self.first_timeout, self.idle_timeout = first_timeout, idle_timeout
        self._q: queue.Queue = queue.Queue(maxsize=256)
        self._t0: float | None = None
        self._closed = threading.Event()
        self.received = self.dropped = 0  # frames the browser sent / left out (the run records both)

    def put(self, image) -> None:
        if self._closed.is_set() or image is None:
            return
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self.received += 1
        try:
            self._q.put_nowait((now - self._t0, np.asarray(image)))
        except queue.Full:  # the engine is far behind: drop the newest rather than block the browser
            # counted: the samples due meanwhile show a later frame (at-or-after), which the record must say
            self.dropped += 1

    def stats(self) -> dict:
        return {"received_frames": self.received, "dropped_frames": self.dropped}

    def close(self) -> None:
        self._closed.set()

    def _arrivals(self):
        started = last = time.monotonic()
        while not self._closed.is_set():
            try:
                item = self._q.get(timeout=0.1)
            except queue.Empty:
                now = time.monotonic()
                if self._t0 is None and now - started > self.first_timeout:
                    raise RuntimeError(f"no webcam frames arrived in {self.first_timeout:.0f} s: start the camera in the Webcam "
                                       "panel (and allow this page to use it)") from None
                if self._t0 is not None and now - last > self.idle_timeout:
                    return  # the camera was stopped
                continue
            last = time.monotonic()
            yield item

    def frames(self):
        from data.video import prepare_frame, select_at_or_after

        for _, t, image in select_at_or_after(self._arrivals(), self.fps, end_frame=self.end_frame):
            yield t, prepare_frame(image[..., :3], t, self.size, self.degradation, self.resize)

    def source(self):
        from data.sources import FrameSource

        return FrameSource("webcam", "browser", self.frames, stats=self.stats, degradation=self.degradation)


# ---------------------------------------------------------------------------------- inputs


@dataclass
class StreamInput:
    video: str  # what the run records as its video (a path, a URL, or "browser webcam")
    kind: str  # live_infer source kind
    realtime: bool
    player: str | None  # what the page's player plays in step (None: nothing it can play)
    duration: float | None  # seconds, when known before streaming (fixes the plot's time axis)
    pushed: PushedFrames | None = None
    note: str | None = None  # said in the page beside the status


def parse_queries(text: str | None) -> list[str]:
    from models.chat import check_no_control_tokens

    queries = [q.strip() for q in (text or "").splitlines() if q.strip()]
    if not queries:
        raise InputError("give at least one query (one per line): the model scores frames against it")
    for q in queries:
        try:
            check_no_control_tokens(q, f"the query {q!r}")
        except ValueError as e:
            raise InputError(str(e)) from None
    return queries


def check_upload(path: str | None, pace: bool) -> StreamInput:
    from data.video import probe

    if not path:
        raise InputError("upload a video file first (or choose the URL or Webcam tab)")
    name = Path(path).name
    try:
        info = probe(path)
    except Exception as e:  # PyAV's own error types: the file is not a video it can read
        why = str(e).replace(str(path), name)  # the upload's temporary path means nothing to the user
        raise InputError(f"{name} is not a video this server can read ({type(e).__name__}: {why})") from None
    if not info.duration or info.duration <= 0 or not info.n_frames:
        raise InputError(f"{name} holds no video frames")
    playable = info.codec in BROWSER_CODECS and Path(path).suffix.lower() in (".mp4", ".m4v", ".webm", ".mov")
    note = None if playable else (f"browsers cannot play this file ({info.codec} in {Path(path).suffix or 'no extension'}): "
                                  "the curves follow the stream without the video")
    return StreamInput(str(path), "file", pace, str(path) if playable else None, info.duration, note=note)


def check_url(url: str | None) -> StreamInput:
    from data.sources import detect_kind

    url = (url or "").strip()
    if not url:
        raise InputError("give a video URL (http(s)://, rtsp://, rtmp://, udp://, srt://, HLS .m3u8)")
    try:
        kind = detect_kind(url)
    except FileNotFoundError:
        kind = None
    if kind != "url":
        raise InputError(f"not a URL the server can read: {url!r} (give http(s)://, rtsp://, rtmp://, udp://, srt://, HLS .m3u8)")
    # the browser plays http(s) files and HLS itself; rtsp / udp it cannot
    player = url if url.lower().startswith(("http://", "https://")) else None
    note = None if player else "browsers cannot play this kind of URL: the curves follow the stream without the video"
    # a live stream comes at its own pace (pacing then never waits); a remote file is paced like an upload
    return StreamInput(url, "url", True, player, None, note=note)


# --------------------------------------------------------------------------------- streams


class Stream:
    """One LiveRun streaming in a worker thread; ``updates()`` hands its events to the page."""

    def __init__(self, live: LiveRun, spec: StreamInput, on_end=None):
        self.live, self.spec = live, spec
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._on_end = on_end
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._work, name=f"aha-stream-{live.out.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _work(self) -> None:
        live = self.live
        try:
            for ev in live.events():
                self._events.put(ev)
            for p in live.close_stream():
                self._events.put(("end_peak", p))
            for text in live.unused_queries:
                self._events.put(("unused_query", text))
            self._events.put(("done", live.finish()))
        except Exception as e:  # post-processing failed: the page shows it; the server keeps running
            live.close_stream()
            self._events.put(("failed", f"{type(e).__name__}: {e}"))
        finally:
            self.ended.set()
            if self._on_end is not None:
                self._on_end(self)

    def stop(self, reason: str) -> None:
        self.live.stop(reason)
        if self.spec.pushed is not None:
            self.spec.pushed.close()

    def ask(self, text: str) -> None:
        self.live.ask(text)

    def updates(self, interval: float = 0.25):
        """Lists of events, at most one list per ``interval`` seconds; the last ends with
        ("done", highlights) or ("failed", message)."""
        while True:
            batch = [self._events.get()]
            deadline = time.monotonic() + interval
            while batch[-1][0] not in ("done", "failed"):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(self._events.get(timeout=left))
                except queue.Empty:
                    break
            yield batch
            if batch[-1][0] in ("done", "failed"):
                return


class Streams:
    """Every stream of this server, at most one per page (Gradio session) and ``max_streams`` at once."""

    def __init__(self, args, loaded, out_root: Path, max_streams: int = 4):
        if getattr(args, "settings_source", None) is None:  # flags not yet resolved against this model (fps, cache, ...)
            apply_settings(args, loaded)
        self.args, self.loaded = args, loaded
        self.out_root = Path(out_root)
        self.max_streams = max_streams
        self._lock = threading.Lock()
        self._by_session: dict[str, Stream] = {}  # the newest stream of each open page
        self._running: set[Stream] = set()  # streams whose worker still runs (a closed page's too, until it stops)
        self._ids = itertools.count(1)
        self._engines: weakref.WeakSet = weakref.WeakSet()  # every engine still in memory
        self.most_at_once = 0  # the most streams that ran at the same time (reported, and tested)

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def engines_alive(self) -> int:
        """Engines not yet garbage-collected (each holds a KV cache)."""
        return len(self._engines)

    def start(self, session: str, spec: StreamInput, queries: list[str]) -> Stream:
        with self._lock:
            old = self._by_session.get(session)
            if old is not None and not old.ended.is_set():
                raise InputError("a stream is already running in this page: stop it first")
            busy = len(self._running)
            if busy >= self.max_streams:
                raise InputError(f"the server is busy ({busy} streams running, --max_streams {self.max_streams}): try again shortly")
            run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{next(self._ids):04d}"
            args = copy.copy(self.args)
            args.video, args.query, args.query_at = spec.video, queries, None
            args.output_dir, args.realtime, args.gt_spans = str(self.out_root / run_id), spec.realtime, None
            if spec.kind != "file" and (args.degrade or "").startswith("random:"):
                args.degrade = None  # a random schedule is drawn over a file's duration
            source = spec.pushed.source() if spec.pushed is not None else None
            live = LiveRun(args, loaded=self.loaded, source=source, source_kind=spec.kind if source is not None else None,
                           interactive=True)  # the page asks and stops at any frame
            self._engines.add(live.engine)
            stream = Stream(live, spec, self._ended)
            self._by_session[session] = stream
            self._running.add(stream)
            self.most_at_once = max(self.most_at_once, busy + 1)
        stream.start()
        return stream

    def _ended(self, stream: Stream) -> None:
        with self._lock:
            self._running.discard(stream)

    def get(self, session: str) -> Stream | None:
        with self._lock:
            return self._by_session.get(session)

    def stop(self, session: str, reason: str = "stopped by the user") -> bool:
        stream = self.get(session)
        if stream is None or stream.ended.is_set():
            return False
        stream.stop(reason)
        return True

    def release(self, session: str, reason: str = "the page was closed") -> None:
        """The page is gone: stop its stream (its engine is dropped when the stream ends)."""
        with self._lock:
            stream = self._by_session.pop(session, None)
        if stream is not None and not stream.ended.is_set():
            stream.stop(reason)

    def push(self, session: str, image) -> None:
        stream = self.get(session)
        if stream is not None and stream.spec.pushed is not None and not stream.ended.is_set():
            stream.spec.pushed.put(image)

    def webcam_input(self) -> StreamInput:
        from test.engine_args import make_degradation

        model = self.loaded.model if hasattr(self.loaded, "model") else self.loaded[0]
        degrade = self.args.degrade
        if (degrade or "").startswith("random:"):
            degrade = None  # drawn over a file's duration (``start`` drops it for every other source too)
        # the run records the server's schedule: the browser's frames must get it too
        pushed = PushedFrames(self.args.fps, model.config.frame_size, end_frame=self.args.max_frames,
                              resize=model.config.frame_resize, degradation=make_degradation(degrade, "browser webcam"))
        return StreamInput("browser webcam", "webcam", False, None, None, pushed)
