"""The web demo: watch the model score a video live in the browser (Gradio).

    bash scripts/demo.sh --web                    # the embedded default model, http://127.0.0.1:7860
    python -m test.demo --web --checkpoint C ...  # any model: the flags of the CLI (python -m test.live_infer -h)

Input: an uploaded video, a URL (http(s), HLS, rtsp, ...) or the browser's webcam, with one or
more queries (more can be asked while the stream runs). While it streams: the video plays in
step with the stream, the fused / relevance / informative / uncertainty curves grow frame by
frame, highlights appear as the online detector confirms them, responses arrive as chat
messages with their time, and the cache length and speed are shown. After: the offline peaks and
segments, the highlight reel and the run's files (scores.jsonl, highlights.json, ...) to
download; clicking a highlight (or the curve) seeks the video.

One code path with the CLI: every stream is a ``live_infer.LiveRun`` built from the same flags
(model, cache, decision, fusion, peaks), so its files and highlights are the CLI's for the same
input. The model is loaded once; each page gets its own engine, freed when its stream ends or
the page closes. Offline: no analytics, no share link, no web fonts; bound to 127.0.0.1 unless
--host says otherwise.
"""
from __future__ import annotations

import html
import itertools
import logging
import os
import time
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no usage reports, no version check (offline, and asked for by no one)
import gradio as gr  # noqa: E402

from test.web_streams import InputError, Streams, StreamInput, check_upload, check_url, parse_queries  # noqa: E402
from test.web_view import View, refused_html  # noqa: E402

log = logging.getLogger("web_demo")

PLOT_INTERVAL_S = 1.0  # the curve (an SVG drawn by matplotlib) is redrawn at most this often while streaming
UPDATE_INTERVAL_S = 0.25  # the rest of the page at most this often

# Page script: clicking anything with data-seek (highlights, segments) or the curve seeks the
# player; while a stream runs, the player is kept in step with the newest scored frame.
PAGE_JS = """
() => {
  const player = () => document.querySelector('#aha-url-player video') || document.querySelector('#aha-player video');
  const seek = (t) => {
    const v = player();
    if (!v || !isFinite(t)) return;
    v.currentTime = Math.max(0, t);
    v.muted = true;
    v.play().catch(() => {});
  };
  document.addEventListener('click', (e) => {
    const el = e.target.closest('[data-seek]');
    if (el) { seek(parseFloat(el.dataset.seek)); return; }
    const plot = e.target.closest('.aha-plot-svg');
    if (plot) {
      const r = plot.getBoundingClientRect();
      const f = (e.clientX - r.left) / r.width;
      const x0 = parseFloat(plot.dataset.x0), x1 = parseFloat(plot.dataset.x1);
      const t0 = parseFloat(plot.dataset.t0), t1 = parseFloat(plot.dataset.t1);
      if (f >= x0 && f <= x1) seek(t0 + (f - x0) / (x1 - x0) * (t1 - t0));
    }
  });
  setInterval(() => {
    const st = document.querySelector('#aha-status .aha-status');
    const v = player();
    if (!st || !v || st.dataset.state !== 'running' || st.dataset.follow !== '1') return;
    const t = parseFloat(st.dataset.t);
    if (!isFinite(t)) return;
    v.muted = true;
    const ahead = v.currentTime - t;
    if (ahead > 1.0) { if (!v.paused) v.pause(); return; }  // the model is behind: wait for it
    if (ahead < -1.5) v.currentTime = t;  // the player is behind: jump to the stream
    if (v.paused) v.play().catch(() => {});
  }, 200);
}
"""

PAGE_CSS = """
.aha-error { color: #b00020; background: #fdecea; border: 1px solid #f5c2c0; border-radius: 6px; padding: 8px 10px; margin-top: 6px; }
.aha-status { font-size: 0.95em; }
.aha-highlights ol { margin: 2px 0 8px 0; padding-left: 1.4em; }
.aha-highlights h4 { margin: 6px 0 2px 0; }
.aha-seek { background: none; border: none; padding: 1px 2px; color: #1a56db; cursor: pointer; text-align: left; font: inherit; }
.aha-seek:hover { text-decoration: underline; }
.aha-plot-svg svg { width: 100%; height: auto; cursor: crosshair; }
.aha-empty { color: #666; margin: 2px 0; }
.aha-note { color: #555; font-size: 0.9em; margin-top: 4px; }
"""


def offline_theme():
    """Gradio's default theme with the system's fonts: the page asks no font server for anything."""
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def build_app(args, loaded, out_root: Path, example: tuple[str, str] | None = None, max_streams: int = 4):
    """The page (a gr.Blocks) and the server's Streams, for a model ``loaded`` by test.engine_args.load_model(args)."""
    streams = Streams(args, loaded, out_root, max_streams)
    presses = itertools.count(1)

    def start(mode, upload, url, queries_text, pace, request: gr.Request):
        session = request.session_hash
        run = next(presses)
        try:
            queries = parse_queries(queries_text)
            if mode == "upload":
                spec = check_upload(upload, bool(pace))
            elif mode == "url":
                spec = check_url(url)
            else:
                spec = streams.webcam_input()
            stream = streams.start(session, spec, queries)
        except (InputError, ValueError, FileNotFoundError, RuntimeError) as e:  # shown in the page; the server carries on
            log.info("refused a stream: %s", e)
            yield {status: refused_html(str(e), run)}
            return
        except Exception as e:  # a bug, or a model that cannot run: still the page's error, not the server's end
            log.exception("could not start a stream")
            yield {status: refused_html(f"could not start the stream: {type(e).__name__}: {e}", run)}
            return
        view = View(queries, run, spec.duration, follow=spec.player is not None, note=spec.note)
        in_page = spec.player if spec.kind == "file" else None  # Gradio serves the file
        by_url = spec.player if spec.kind == "url" else None  # the browser fetches the URL itself
        url_video = (f'<video src="{html.escape(by_url, quote=True)}" muted playsinline controls preload="auto" '
                     f'style="width:100%;max-height:300px"></video>') if by_url else ""
        yield {player: gr.update(value=in_page, visible=by_url is None), url_player: url_video, status: view.status_html(),
               plot: view.plot_html(), highlights: view.highlights_html(), chat: view.chat(), files: None, reel: None}
        last_plot = 0.0
        try:
            for batch in stream.updates(UPDATE_INTERVAL_S):
                view.apply(batch)
                out = {status: view.status_html(), highlights: view.highlights_html(), chat: view.chat()}
                now = time.monotonic()
                if view.result is not None or view.state == "failed" or now - last_plot >= PLOT_INTERVAL_S:
                    out[plot] = view.plot_html()
                    last_plot = now
                yield out
            if view.result is not None:
                run_dir = stream.live.out
                names = ("highlights.mp4", "highlights.json", "scores.jsonl", "responses.jsonl", "run.json", "scores.png")
                outputs = [str(run_dir / n) for n in names if (run_dir / n).is_file()]
                yield {files: outputs, reel: str(run_dir / "highlights.mp4") if (run_dir / "highlights.mp4").is_file() else None}
        finally:  # also when Gradio drops this generator (the page went away): never leave a stream running
            if not stream.ended.is_set():
                streams.release(session)

    def stop(request: gr.Request):
        streams.stop(request.session_hash)

    def ask(text, queries_text, request: gr.Request):
        text = (text or "").strip()
        if not text:
            return gr.skip(), gr.skip()
        stream = streams.get(request.session_hash)
        if stream is None or stream.ended.is_set():  # nothing running: it joins the queries of the next run
            return "", (queries_text.rstrip("\n") + "\n" + text).strip("\n")
        try:
            stream.ask(text)
        except ValueError as e:
            gr.Warning(str(e))
            return gr.skip(), gr.skip()
        return "", gr.skip()

    def push(frame, request: gr.Request):
        streams.push(request.session_hash, frame)

    def unload(request: gr.Request):
        streams.release(request.session_hash)

    with gr.Blocks(title="Aha! live highlights", analytics_enabled=False, delete_cache=(3600, 24 * 3600)) as page:
        gr.Markdown("## Aha! — online highlight detection, live\nThe model watches the video one frame at a time, "
                    "never looking ahead. Choose a video, give queries, press **Run**.")
        mode = gr.State("upload")
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                with gr.Tabs():
                    with gr.Tab("Upload", id="upload") as tab_upload:
                        upload = gr.File(label="video file", file_count="single", type="filepath", elem_id="aha-upload")
                    with gr.Tab("URL", id="url") as tab_url:
                        url = gr.Textbox(label="video URL", placeholder="http(s)://…/video.mp4, rtsp://…, …/stream.m3u8",
                                         elem_id="aha-url")
                    with gr.Tab("Webcam", id="webcam") as tab_cam:
                        # 640x480 is plenty (frames are letter-boxed to the model's 384 or less) and keeps the
                        # browser's per-frame encoding cheap; Gradio's default asks the camera for 1920x1440
                        cam = gr.Image(label="webcam (press Record; its frames stream while Run is active)",
                                       sources=["webcam"], streaming=True, type="numpy", elem_id="aha-webcam",
                                       webcam_options=gr.WebcamOptions(constraints={"video": {"width": {"ideal": 640},
                                                                                              "height": {"ideal": 480}}}))
                queries = gr.Textbox(label="queries (one per line)", lines=2, elem_id="aha-queries")
                pace = gr.Checkbox(value=True, label="stream at the video's own speed (the player follows)",
                                   elem_id="aha-pace")
                with gr.Row():
                    run_btn = gr.Button("Run", variant="primary", elem_id="aha-run")
                    stop_btn = gr.Button("Stop", elem_id="aha-stop")
                with gr.Row():
                    ask_box = gr.Textbox(label="ask while streaming", scale=4, elem_id="aha-ask")
                    ask_btn = gr.Button("Ask", scale=1, elem_id="aha-ask-btn")
                if example is not None:
                    gr.Examples([list(example)], inputs=[upload, queries], label="the synthetic demo video and its query")
            with gr.Column(scale=3, min_width=420):
                player = gr.Video(label="video", interactive=False, elem_id="aha-player", height=300)
                url_player = gr.HTML(elem_id="aha-url-player")  # a URL's video, played by the browser from the URL
                status = gr.HTML(elem_id="aha-status")
        plot = gr.HTML(elem_id="aha-plot")
        with gr.Row():
            with gr.Column(scale=2):
                highlights = gr.HTML(elem_id="aha-highlights")
            with gr.Column(scale=3):
                chat = gr.Chatbot(label="queries and responses (time in the stream)", height=260, elem_id="aha-chat")
        with gr.Row():
            reel = gr.Video(label="highlight reel", interactive=False, elem_id="aha-reel", height=240)
            files = gr.File(label="downloads", file_count="multiple", interactive=False, elem_id="aha-files")

        tab_upload.select(lambda: "upload", None, mode)
        tab_url.select(lambda: "url", None, mode)
        tab_cam.select(lambda: "webcam", None, mode)
        run_btn.click(start, [mode, upload, url, queries, pace],
                      [player, url_player, status, plot, highlights, chat, files, reel], concurrency_limit=None,
                      show_progress="hidden")  # the status line is the progress; an overlay would block seeking while it streams
        stop_btn.click(stop, None, None, concurrency_limit=None)
        ask_btn.click(ask, [ask_box, queries], [ask_box, queries], concurrency_limit=None)
        ask_box.submit(ask, [ask_box, queries], [ask_box, queries], concurrency_limit=None)
        # two camera frames per model frame: the at-or-after sampling then never waits long for one
        cam.stream(push, [cam], None, stream_every=0.5 / streams.args.fps, time_limit=None, concurrency_limit=None,
                   show_progress="hidden")
        page.unload(unload)
    page.aha_streams = streams  # for tests and the screenshot script
    return page, streams


def launch(page, out_root: Path, host: str = "127.0.0.1", port: int | None = None, block: bool = True, extra_paths=()):
    """Start the server (offline: no analytics, no share link, no SSR, no MCP); returns the local URL."""
    page.queue(default_concurrency_limit=None)
    _, url, _ = page.launch(server_name=host, server_port=port, share=False, inbrowser=False, ssr_mode=False, mcp_server=False,
                            pwa=False, enable_monitoring=False, show_error=True, quiet=True, prevent_thread_lock=not block,
                            allowed_paths=[str(out_root), *map(str, extra_paths)], theme=offline_theme(), css=PAGE_CSS, js=PAGE_JS)
    return url


def serve(args, example: tuple[str, str] | None = None) -> int:
    """``python -m test.demo --web``: load the model once, then serve until interrupted."""
    from test.engine_args import load_model

    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests to itself

    loaded = load_model(args)
    out_root = Path(args.output_dir)
    page, _ = build_app(args, loaded, out_root, example, args.max_streams)
    url = launch(page, out_root, args.host, args.port, block=False, extra_paths=[Path(example[0]).parent] if example else ())
    print(f"web demo on {url} (Ctrl+C stops it); runs are written to {out_root}/", flush=True)
    try:
        page.block_thread()
    finally:
        page.close()
    return 0


__all__ = ["build_app", "launch", "serve", "StreamInput"]
