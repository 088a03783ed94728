"""Online highlight detection on one video, frame folder, live URL or webcam.

    python -m test.live_infer --video V --query "a red circle bounces" --model_config aha-tiny \
        --checkpoint ckpt/ --output_dir out/

Writes, as it goes (one flushed line per frame / response):
  out/scores.jsonl     frame, time, informative, relevance, uncertainty (raw log-variance), fused, cache_len
  out/responses.jsonl  time, frame, content, trigger score
and at the end (also after a source breaks mid-stream, with what was scored):
  out/highlights.json  offline peaks and segments of the smoothed fused score, the peaks confirmed
                       online (causal, printed live), and the full protocol record
  out/scores.png       the score curves with peaks (and ground truth when given)
  out/highlights.mp4   a highlight reel under --reel_budget seconds (file sources only)
  out/run.json         every setting of the run
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from utils.io import JsonlWriter, atomic_write_json, read_json
from utils.log import setup_logging

log = logging.getLogger("live_infer")


def add_engine_args(ap: argparse.ArgumentParser) -> None:
    """Model, cache, decision and fusion flags shared by every online driver."""
    g = ap.add_argument_group("model")
    g.add_argument("--model_config", default="aha-tiny", help="preset name in configs/model or a preset .json")
    g.add_argument("--weights", default=None, help="local LLaVA-OneVision backbone folder (llava-hf or lmms-lab layout)")
    g.add_argument("--checkpoint", default=None, help="an Aha! checkpoint folder (adapter or merged)")
    g.add_argument("--tokenizer", default=None)
    g.add_argument("--device", default="cpu")
    g.add_argument("--dtype", default=None, choices=[None, "fp32", "bf16", "fp16"])
    g.add_argument("--attn", default=None, help="sdpa (default), flash_attention_2, eager")
    g = ap.add_argument_group("stream")
    g.add_argument("--fps", type=float, default=1.0)
    g.add_argument("--max_frames", type=int, default=None)
    g.add_argument("--prompt_order", default="training", choices=["training", "reference"])
    g.add_argument("--cache_policy", default="sink", choices=["unbounded", "sink", "dynamic_sink", "sliding", "sink_reference"],
                   help="sink_reference: the reference's SinkCache quirks, to reproduce the released numbers")
    g.add_argument("--window", type=int, default=2048)
    g.add_argument("--sink_tokens", type=int, default=32)
    g.add_argument("--vision_batch", type=int, default=1,
                   help=">1 only for files: encode frames in batches, on a background thread while the LM steps")
    g.add_argument("--max_protected", type=int, default=None,
                   help="tokens the cache may protect from eviction (system turn + queries; sink / dynamic_sink)")
    g.add_argument("--frames_per_step", type=int, default=None,
                   help="frames per LM forward, files only (default: 8 with --no_generate, else 1; scores equal one at a time)")
    g.add_argument("--compile", action="store_true", help="torch.compile the frame step (CUDA graphs on CUDA)")
    g.add_argument("--no_merge_lora", action="store_true", help="keep LoRA adapters unmerged at inference (slower)")
    g = ap.add_argument_group("responses")
    g.add_argument("--score_heads", default="informative,relevance")
    g.add_argument("--threshold", type=float, default=None, help="respond when the head sum exceeds this")
    g.add_argument("--cumulative_threshold", type=float, default=None, help="respond when the running sum exceeds this (then reset)")
    g.add_argument("--min_interval", type=float, default=0.0, help="seconds between responses")
    g.add_argument("--uncertainty_gate", type=float, default=None, help="postpone while clamped log-variance exceeds this")
    g.add_argument("--max_wait_frames", type=int, default=3)
    g.add_argument("--no_generate", action="store_true", help="scores only, never generate text")
    g.add_argument("--respond_before_query", action="store_true", help="allow responses before the first query (the reference did)")
    g.add_argument("--remove_assistant_turns", action="store_true")
    g.add_argument("--max_new_tokens", type=int, default=64)
    g.add_argument("--repetition_penalty", type=float, default=None)
    g = ap.add_argument_group("fusion and highlights")
    g.add_argument("--alpha", type=float, default=None)
    g.add_argument("--beta", type=float, default=None)
    g.add_argument("--epsilon", type=float, default=None)
    g.add_argument("--tau", type=float, default=None)
    g.add_argument("--uncertainty_kind", default=None, choices=[None, "logvar", "variance"])
    g.add_argument("--params_file", default=None, help="fusion parameters JSON (from tuning), with --params_key")
    g.add_argument("--params_key", default=None)
    g.add_argument("--savgol_window", type=int, default=15)
    g.add_argument("--savgol_polyorder", type=int, default=3)
    g.add_argument("--peak_distance", type=float, default=10.0, help="seconds between highlights")
    g.add_argument("--peak_prominence", type=float, default=0.02)


def engine_config(args):
    from models.cache import DEFAULT_MAX_PROTECTED
    from models.decision import DecisionConfig
    from models.streaming import EngineConfig, default_frames_per_step

    return EngineConfig(
        prompt_order=args.prompt_order, cache_policy=args.cache_policy, window=args.window, sink_tokens=args.sink_tokens,
        max_protected=getattr(args, "max_protected", None) or DEFAULT_MAX_PROTECTED,
        frames_per_step=getattr(args, "frames_per_step", None) or default_frames_per_step(not args.no_generate),
        compile=getattr(args, "compile", False), merge_lora=not getattr(args, "no_merge_lora", False),
        decision=DecisionConfig(score_heads=args.score_heads, threshold=args.threshold,
                                cumulative_threshold=args.cumulative_threshold, min_interval_s=args.min_interval,
                                uncertainty_gate=args.uncertainty_gate, max_wait_frames=args.max_wait_frames),
        generate=not args.no_generate, remove_assistant_turns=args.remove_assistant_turns,
        max_new_tokens=args.max_new_tokens, repetition_penalty=args.repetition_penalty,
        respond_before_query=getattr(args, "respond_before_query", False),
    )


def fusion_params(args):
    from test.postprocess import FusionParams

    base = {}
    if args.params_file:
        table = read_json(args.params_file)
        entry = table.get(args.params_key, table) if args.params_key else table
        entry = entry.get("params", entry)
        base = {k: entry[k] for k in ("alpha", "beta", "epsilon", "tau", "uncertainty_kind") if k in entry and entry[k] is not None}
    for k in ("alpha", "beta", "epsilon", "tau", "uncertainty_kind"):
        if getattr(args, k) is not None:
            base[k] = getattr(args, k)
    return FusionParams(**base)


def parse_queries(args) -> list:
    from models.streaming import QueryEvent

    out = [QueryEvent(0.0, q) for q in (args.query or [])]
    for spec in args.query_at or []:
        t, _, text = spec.partition(":")
        if not text:
            raise SystemExit(f"--query_at wants TIME:TEXT, got {spec!r}")
        out.append(QueryEvent(float(t), text))
    return out


def make_degradation(spec: str | None, video: str):
    if not spec:
        return None
    from data.degrade import DegradationSchedule, make_schedule

    if spec.startswith("random:"):
        parts = spec.split(":")
        seed = int(parts[1])
        types = parts[2].split(",") if len(parts) > 2 and parts[2] else None
        from data.video import probe

        dur = probe(video).duration
        return make_schedule(dur, seed, types=types) if types else make_schedule(dur, seed)
    items = read_json(spec)
    return DegradationSchedule.from_list(items["segments"] if isinstance(items, dict) else items)


def fmt_time(t: float) -> str:
    return f"{int(t // 60):02d}:{t % 60:05.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", required=True, help="file, frame folder, rtsp/http/hls URL, webcam[:N], follow:PATH, - (stdin)")
    ap.add_argument("--query", action="append", help="a query asked at time 0 (repeatable)")
    ap.add_argument("--query_at", action="append", help="TIME:TEXT, a query asked at TIME seconds")
    ap.add_argument("--output_dir", required=True)
    ap.add_argument("--realtime", action="store_true", help="pace a file at its own rate (a stand-in for a live stream)")
    ap.add_argument("--source_fps", type=float, default=None, help="frame rate of a frame folder")
    ap.add_argument("--degrade", default=None, help="random:SEED[:type,type] or a JSON list of [start, end, type]")
    ap.add_argument("--reel_budget", type=float, default=30.0, help="seconds of highlight reel (0: no reel)")
    ap.add_argument("--gt_spans", default=None, help="JSON list of [start, end] ground-truth spans, drawn on the plot")
    ap.add_argument("--quiet", action="store_true")
    add_engine_args(ap)
    args = ap.parse_args(argv)
    setup_logging("WARNING" if args.quiet else "INFO")
    return run(args)


def run(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from data.sources import detect_kind, open_source
    from models.inference import load_for_inference
    from models.streaming import FrameRecord, StreamingEngine
    from test.postprocess import OnlinePeakDetector, fuse, highlight_segments, find_highlights, plot_scores, select_reel_segments

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    fusion = fusion_params(args)
    queries = parse_queries(args)
    model, tok = load_for_inference(args.model_config, args.weights, args.checkpoint, args.tokenizer, args.device, args.dtype, args.attn)
    engine = StreamingEngine(model, tok, engine_config(args))
    kind = detect_kind(args.video)
    degradation = make_degradation(args.degrade, args.video)
    source = open_source(args.video, fps=args.fps, size=engine.frame_size, realtime=args.realtime,
                         source_fps=args.source_fps, degradation=degradation, end_frame=args.max_frames)
    read_ahead = kind in ("file", "frames") and not args.realtime  # a live source: every record before the next frame
    vision_batch = args.vision_batch if read_ahead else 1
    frames_per_step = engine.cfg.frames_per_step if read_ahead else 1
    protocol = {
        "video": str(args.video), "source_kind": kind, "queries": [[q.time, q.text] for q in queries],
        "fps": args.fps, "tokens_per_frame": engine.tpf, "frame_size": engine.frame_size,
        "model_config": args.model_config, "weights": args.weights, "checkpoint": args.checkpoint,
        "prompt_order": args.prompt_order,
        "cache": {"policy": args.cache_policy, "window": args.window, "sink_tokens": args.sink_tokens},
        "decision": {"score_heads": args.score_heads, "threshold": args.threshold, "cumulative_threshold": args.cumulative_threshold,
                     "min_interval_s": args.min_interval, "uncertainty_gate": args.uncertainty_gate,
                     "max_wait_frames": args.max_wait_frames, "generate": not args.no_generate,
                     "remove_assistant_turns": args.remove_assistant_turns},
        "fusion": fusion.to_dict(), "fusion_source": args.params_file or "defaults/flags",
        "tuned_on_this_video": False,
        "smoothing": {"savgol_window": args.savgol_window, "savgol_polyorder": args.savgol_polyorder},
        "peaks": {"height": "mean+0.5std", "prominence": args.peak_prominence, "distance_s": args.peak_distance},
        "degradation": None if degradation is None else degradation.to_list(),
        "realtime": args.realtime, "vision_batch": vision_batch, "frames_per_step": frames_per_step,
        "cache_layout": engine.cfg.cache_record(),
    }
    atomic_write_json(out / "run.json", protocol)

    detector = OnlinePeakDetector(fps=args.fps, distance_s=args.peak_distance, prominence=args.peak_prominence)
    times, info, rel, unc, fused_all = [], [], [], [], []
    responses, online_peaks = [], []
    error = None
    bar = tqdm(desc="frames", unit="frame", disable=args.quiet, dynamic_ncols=True)
    t0 = time.perf_counter()
    with JsonlWriter(out / "scores.jsonl", "w") as sw, JsonlWriter(out / "responses.jsonl", "w") as rw, source:
        try:
            for rec in engine.run(source, queries, vision_batch=vision_batch, frames_per_step=frames_per_step):
                if isinstance(rec, FrameRecord):
                    y = float(fuse([rec.informative], [rec.relevance], [rec.uncertainty], fusion)[0])
                    sw.write({**rec.to_dict(), "fused": y})
                    times.append(rec.time), info.append(rec.informative), rel.append(rec.relevance)
                    unc.append(rec.uncertainty), fused_all.append(y)
                    step = detector.push(y, rec.time)
                    if step.peak is not None:
                        online_peaks.append(step.peak)
                        _say(f"[{fmt_time(step.peak.time)}] highlight  score {step.peak.height:.3f}  (confirmed at {fmt_time(step.time)})", bar)
                    bar.update(1)
                    bar.set_postfix(fps=f"{bar.n / max(1e-9, time.perf_counter() - t0):.1f}", cache=rec.cache_len)
                else:
                    rw.write(rec.to_dict())
                    responses.append(rec)
                    _say(f"[{fmt_time(rec.time)}] response  score {rec.trigger_score:.3f}: {rec.content}", bar)
        except KeyboardInterrupt:
            error = "interrupted by the user"
        except Exception as e:  # a source breaking mid-stream: keep and post-process what was scored
            error = f"{type(e).__name__}: {e}"
    bar.close()
    for p in detector.finish():
        online_peaks.append(p)
        _say(f"[{fmt_time(p.time)}] highlight  score {p.height:.3f}  (confirmed at end of stream)", None)
    if error:
        print(f"error: the stream ended early after {len(times)} frames: {error}. Records so far are kept in {out}.", file=sys.stderr)

    result = {"protocol": protocol, "n_frames": len(times), "error": error, "cache_at_end": engine.describe_cache(),
              "online_peaks": [p.__dict__ if hasattr(p, "__dict__") else p._asdict() for p in online_peaks],
              "responses": [r.to_dict() for r in responses]}
    if times:
        t = np.asarray(times)
        y = np.asarray(fused_all)
        hl = find_highlights(t, y, args.fps, args.savgol_window, args.savgol_polyorder,
                             prominence=args.peak_prominence, distance_s=args.peak_distance)
        segs = highlight_segments(t, y, args.fps, args.savgol_window, args.savgol_polyorder,
                                  prominence=args.peak_prominence, distance_s=args.peak_distance)
        result["peaks"] = [{"time": float(a), "height": float(b)} for a, b in zip(hl.times, hl.heights)]
        result["segments"] = [list(s) for s in segs]
        gt = json.loads(Path(args.gt_spans).read_text()) if args.gt_spans else None
        plot_scores(out / "scores.png", t, {"fused": y, "informative": np.asarray(info), "relevance": np.asarray(rel)},
                    peaks={"fused": hl.times}, gt_spans=gt, segments=segs, title=", ".join(q.text for q in queries) or str(args.video))
        if args.reel_budget > 0 and kind == "file" and segs:
            from test.reel import write_highlight_reel

            chosen = select_reel_segments(segs, args.reel_budget)
            info_reel = write_highlight_reel(args.video, chosen, out / "highlights.mp4")
            result["reel"] = {"path": str(out / "highlights.mp4"), "segments": [list(s) for s in chosen],
                              "frames": info_reel.frames, "duration_s": info_reel.duration_s}
    atomic_write_json(out / "highlights.json", result)
    if not args.quiet:
        print(f"{len(times)} frames, {len(responses)} responses, {len(result.get('peaks', []))} highlights -> {out}")
    return 1 if error else 0


def _say(msg: str, bar) -> None:
    if bar is not None:
        bar.write(msg)
    else:
        print(msg, flush=True)


if __name__ == "__main__":
    sys.exit(main())
