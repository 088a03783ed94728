"""Online highlight detection on one video, frame folder, live URL or webcam.

    python -m test.live_infer --video V --query "a red circle bounces" --model_config aha-tiny \
        --checkpoint ckpt/ --output_dir out/

    python -m test.live_infer --video V --features FEATS --query ... # frame tokens from scripts/extract_features.py

Writes, as it goes (one flushed line per frame / response):
  out/scores.jsonl     frame, time, informative, relevance, uncertainty (raw log-variance), fused, cache_len
  out/responses.jsonl  time, frame, content, trigger score
and at the end (also after a source breaks mid-stream, with what was scored):
  out/highlights.json  "online_highlights": the peaks confirmed live (causal smoothing, each one
                       reported confirm_delay seconds after it happened; printed as they come),
                       "offline_peaks" / "offline_segments": the whole-video post-processing after
                       the stream (centred Savitzky-Golay + find_peaks: looks ahead, so not live),
                       and the full protocol record
  out/scores.png       the score curves with peaks (and ground truth when given)
  out/highlights.mp4   a highlight reel under --reel_budget seconds (file sources only)
  out/run.json         every setting of the run
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from pathlib import Path

from models.inference_settings import InferenceSettings
from utils.io import JsonlWriter, atomic_write_json, read_json
from utils.log import setup_logging

DEFAULTS = InferenceSettings()  # the project defaults, shown in --help

log = logging.getLogger("live_infer")


def add_engine_args(ap: argparse.ArgumentParser) -> None:
    """Model, cache, decision and fusion flags shared by every online driver."""
    g = ap.add_argument_group("model")
    g.add_argument("--model_config", default=None,
                   help="preset name in configs/model or a preset .json; with --checkpoint it must agree with the checkpoint "
                        "(default: the checkpoint's own config; without a checkpoint, the weights' sizes, else aha-tiny)")
    g.add_argument("--weights", default=None, help="local LLaVA-OneVision backbone folder (llava-hf or lmms-lab layout)")
    g.add_argument("--checkpoint", default=None, help="an Aha! checkpoint folder (adapter or merged) or a released adapter")
    g.add_argument("--heads", default=None, help="safetensors file with the three heads, for a bare --weights backbone")
    g.add_argument("--tokenizer", default=None)
    g.add_argument("--device", default="cpu")
    g.add_argument("--dtype", default=None, choices=["fp32", "bf16", "fp16"], help="default: fp32 on CPU, bf16 on CUDA (heads stay fp32)")
    g.add_argument("--load_in_4bit", action="store_true", help="bitsandbytes 4-bit weights (CUDA; the optional bitsandbytes package)")
    g.add_argument("--attn", default=None, help="sdpa (default), flash_attention_2, eager")
    g = ap.add_argument_group("stream (default: the checkpoint's inference settings, else the project's)")
    g.add_argument("--fps", type=float, default=None, help=f"frames per second fed to the model (project default {DEFAULTS.fps})")
    g.add_argument("--max_frames", type=int, default=None)
    g.add_argument("--prompt_order", default=None, choices=["training", "reference"], help=f"(project default {DEFAULTS.prompt_order})")
    g.add_argument("--cache_policy", default=None, choices=["unbounded", "sink", "dynamic_sink", "sliding", "sink_reference"],
                   help=f"sink_reference: the reference's SinkCache quirks, to reproduce the released numbers (project default {DEFAULTS.cache_policy})")
    g.add_argument("--window", type=int, default=None, help=f"cache window in tokens (project default {DEFAULTS.window})")
    g.add_argument("--sink_tokens", type=int, default=None, help=f"(project default {DEFAULTS.sink_tokens})")
    g.add_argument("--vision_batch", type=int, default=1, help=">1 only for files: encode frames already read in small batches")
    g.add_argument("--features", default=None,
                   help="feature cache folder (scripts/extract_features.py --kind frame_embeds, same model and fps): "
                        "stream the cached frame tokens instead of decoding and encoding the video")
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


SETTING_FLAGS = ("fps", "cache_policy", "window", "sink_tokens", "prompt_order")


def load_model(args, loader=None):
    """Load the model the flags name and resolve the inference settings into ``args`` (the flag when
    given, else the checkpoint's, else the project default). Sets ``args.settings_source`` and
    ``args.model_record``; returns the LoadedModel."""
    from models.inference import load_for_inference
    from models.inference_settings import resolve

    loader = loader or load_for_inference
    loaded = loader(model_config=args.model_config, weights=args.weights, checkpoint=args.checkpoint, tokenizer=args.tokenizer,
                    device=args.device, dtype=args.dtype, attn_implementation=args.attn, heads=getattr(args, "heads", None),
                    load_in_4bit=getattr(args, "load_in_4bit", False))
    carried = getattr(loaded, "settings", None)
    settings, sources = resolve({k: getattr(args, k) for k in SETTING_FLAGS}, carried)
    for k in SETTING_FLAGS:
        setattr(args, k, getattr(settings, k))
    if carried is not None and carried.system_prompt is not None and getattr(args, "system_prompt", None) is None:
        args.system_prompt = carried.system_prompt
    args.settings_source = sources
    args.model_record = getattr(loaded, "record", {})
    return loaded


def open_features(args, model):
    """The ``--features`` cache of this model's frame tokens (None without the flag)."""
    if not getattr(args, "features", None):
        return None
    if getattr(args, "degrade", None):
        raise ValueError("--features streams the cached (clean) frames: it cannot be combined with --degrade")
    from data.feature_cache import FeatureCache

    cache = FeatureCache.for_model(args.features, model, "frame_embeds")
    if not cache.exists():
        raise FileNotFoundError(f"--features {args.features}: no frame_embeds features of this model (fingerprint "
                                f"{cache.fingerprint}); extract them with scripts/extract_features.py --kind frame_embeds "
                                "and the same model, dtype and fps")
    return cache


def feature_frames(cache, key: str, fps: float, size: int, device, dtype, max_frames: int | None = None):
    """FrameEvents of the cached frame tokens of video ``key`` (frame i at i / fps, as the decoder samples)."""
    from models.streaming import FrameEvent

    n = cache.frames_cached(key, fps, size)
    if n == 0:
        from data.feature_cache import FeatureCacheMiss

        raise FeatureCacheMiss(f"{key} ({fps:g} fps, {size} px) is not in the feature cache {cache.directory}")
    n = n if max_frames is None else min(n, max_frames)
    feats = cache.load(key, fps, 0, n, size)
    for i in range(n):
        yield FrameEvent(i / fps, None, feats[i].to(device=device, dtype=dtype))


def engine_config(args):
    from models.decision import DecisionConfig
    from models.streaming import EngineConfig

    return EngineConfig(
        system_prompt=getattr(args, "system_prompt", None),
        prompt_order=args.prompt_order, cache_policy=args.cache_policy, window=args.window, sink_tokens=args.sink_tokens,
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
    ap.add_argument("--feature_key", default=None, help="the video's key in --features (default: its file name)")
    ap.add_argument("--reel_budget", type=float, default=30.0, help="seconds of highlight reel (0: no reel)")
    ap.add_argument("--gt_spans", default=None, help="JSON list of [start, end] ground-truth spans, or {label: spans} (one shade and legend "
                    "entry per set), drawn on the plot")
    ap.add_argument("--quiet", action="store_true")
    add_engine_args(ap)
    args = ap.parse_args(argv)
    setup_logging("WARNING" if args.quiet else "INFO")
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as e:  # bad input found before streaming: one line, exit 2
        print(f"live_infer: error: {e}", file=sys.stderr)
        return 2


def run(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from data.sources import detect_kind, open_source
    from models.streaming import FrameRecord, StreamingEngine
    from test.postprocess import (CAUSAL_POLYORDER, CONFIRM_DELAY_S, SAVGOL_WINDOW, OnlinePeakDetector, find_highlights, fuse,
                                  highlight_segments, plot_scores, select_reel_segments)

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    fusion = fusion_params(args)
    queries = parse_queries(args)
    model, tok = load_model(args)
    engine = StreamingEngine(model, tok, engine_config(args))
    features = open_features(args, model)
    if features is not None:
        kind, degradation = "features", None
        key = args.feature_key or Path(args.video).name
        source = contextlib.nullcontext(feature_frames(features, key, args.fps, engine.frame_size, engine.device,
                                                       engine.dtype, args.max_frames))
    else:
        kind = detect_kind(args.video)
        degradation = make_degradation(args.degrade, args.video)
        source = open_source(args.video, fps=args.fps, size=engine.frame_size, realtime=args.realtime,
                             source_fps=args.source_fps, degradation=degradation, end_frame=args.max_frames)
    vision_batch = args.vision_batch if kind in ("file", "frames") and not args.realtime else 1
    protocol = {
        "video": str(args.video), "source_kind": kind, "queries": [[q.time, q.text] for q in queries],
        "fps": args.fps, "tokens_per_frame": engine.tpf, "frame_size": engine.frame_size,
        "model": args.model_record, "settings_source": args.settings_source,
        "prompt_order": args.prompt_order, "system_prompt": engine.system_prompt,
        "cache": {"policy": args.cache_policy, "window": args.window, "sink_tokens": args.sink_tokens},
        "decision": {"score_heads": args.score_heads, "threshold": args.threshold, "cumulative_threshold": args.cumulative_threshold,
                     "min_interval_s": args.min_interval, "uncertainty_gate": args.uncertainty_gate,
                     "max_wait_frames": args.max_wait_frames, "generate": not args.no_generate,
                     "remove_assistant_turns": args.remove_assistant_turns},
        "fusion": fusion.to_dict(), "fusion_source": args.params_file or "defaults/flags",
        "tuned_on_this_video": False,
        "smoothing": {"savgol_window": args.savgol_window, "savgol_polyorder": args.savgol_polyorder},
        "peaks": {"height": "mean+0.5std", "prominence": args.peak_prominence, "distance_s": args.peak_distance,
                  "online": {"smoothing": f"causal Savitzky-Golay (window {SAVGOL_WINDOW}, order {CAUSAL_POLYORDER})",
                             "confirm_delay_s": CONFIRM_DELAY_S},
                  "offline": "centred Savitzky-Golay (savgol_window, savgol_polyorder) + find_peaks, after the stream"},
        "degradation": None if degradation is None else degradation.to_list(),
        "realtime": args.realtime, "vision_batch": vision_batch,
        "features": None if features is None else {"cache": str(features.directory), "key": key, "kind": "frame_embeds"},
    }
    atomic_write_json(out / "run.json", protocol)

    detector = OnlinePeakDetector(fps=args.fps, distance_s=args.peak_distance, prominence=args.peak_prominence)
    times, info, rel, unc, fused_all = [], [], [], [], []
    responses, online_peaks = [], []
    error = None
    bar = tqdm(desc="frames", unit="frame", disable=args.quiet, dynamic_ncols=True)
    t0 = time.perf_counter()
    with JsonlWriter(out / "scores.jsonl", "w") as sw, JsonlWriter(out / "responses.jsonl", "w") as rw, source as frames:
        try:
            for rec in engine.run(frames, queries, vision_batch=vision_batch):
                if isinstance(rec, FrameRecord):
                    y = float(fuse([rec.informative], [rec.relevance], [rec.uncertainty], fusion)[0])
                    sw.write({**rec.to_dict(), "fused": y})
                    times.append(rec.time), info.append(rec.informative), rel.append(rec.relevance)
                    unc.append(rec.uncertainty), fused_all.append(y)
                    step = detector.push(y, rec.time)
                    if step.peak is not None:
                        online_peaks.append(step.peak)
                        _say(f"[{fmt_time(step.peak.time)}] online highlight  score {step.peak.height:.3f}  "
                             f"(confirmed at {fmt_time(step.time)})", bar)
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
        _say(f"[{fmt_time(p.time)}] online highlight  score {p.height:.3f}  (confirmed at the end of the stream)", None)
    if error:
        print(f"error: the stream ended early after {len(times)} frames: {error}. Records so far are kept in {out}.", file=sys.stderr)

    result = {"protocol": protocol, "n_frames": len(times), "error": error,
              "online_highlights": [dict(p.__dict__) for p in online_peaks],
              "offline_peaks": [], "offline_segments": [],
              "responses": [r.to_dict() for r in responses],
              "legend": {"online_highlights": "confirmed live: causal smoothing, each reported confirm_delay after it "
                                              "happened (OnlinePeakDetector); printed while streaming",
                         "offline_peaks": "after the stream, over the whole video: centred Savitzky-Golay smoothing "
                                          "and find_peaks (looks ahead: not available live)",
                         "offline_segments": "the offline peaks grown into segments (plot and reel)"}}
    if times:
        t = np.asarray(times)
        y = np.asarray(fused_all)
        hl = find_highlights(t, y, args.fps, args.savgol_window, args.savgol_polyorder,
                             prominence=args.peak_prominence, distance_s=args.peak_distance)
        segs = highlight_segments(t, y, args.fps, args.savgol_window, args.savgol_polyorder,
                                  prominence=args.peak_prominence, distance_s=args.peak_distance)
        result["offline_peaks"] = [{"time": float(a), "height": float(b)} for a, b in zip(hl.times, hl.heights)]
        result["offline_segments"] = [list(s) for s in segs]
        gt = json.loads(Path(args.gt_spans).read_text()) if args.gt_spans else None
        plot_scores(out / "scores.png", t, {"fused": y, "informative": np.asarray(info), "relevance": np.asarray(rel)},
                    peaks={"fused": hl.times}, gt_spans=gt, segments=segs, title=", ".join(q.text for q in queries) or str(args.video),
                    peak_label="offline peaks", segment_label="highlight segments (offline peaks grown)")
        if args.reel_budget > 0 and kind == "file" and segs:
            from test.reel import write_highlight_reel

            chosen = select_reel_segments(segs, args.reel_budget)
            info_reel = write_highlight_reel(args.video, chosen, out / "highlights.mp4")
            result["reel"] = {"path": str(out / "highlights.mp4"), "segments": [list(s) for s in chosen],
                              "frames": info_reel.frames, "duration_s": info_reel.duration_s}
    atomic_write_json(out / "highlights.json", result)
    if not args.quiet:
        print(f"{len(times)} frames, {len(responses)} responses, {len(online_peaks)} online highlights (confirmed "
              f"live, printed above), {len(result['offline_peaks'])} offline peaks and {len(result['offline_segments'])} "
              f"segments (whole-video smoothing after the stream) -> {out}")
    return 1 if error else 0


def _say(msg: str, bar) -> None:
    if bar is not None:
        bar.write(msg)
    else:
        print(msg, flush=True)


if __name__ == "__main__":
    sys.exit(main())
