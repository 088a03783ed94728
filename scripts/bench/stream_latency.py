"""Throughput, latency and memory of the streaming engine per cache policy; old engine vs this one.

    # CPU, aha-tiny, 3,600 frames, old revision vs this checkout, 2 interleaved repetitions
    python scripts/bench/stream_latency.py --old_rev 2d920b5 --frames 3600 --reps 2 --out outputs/bench/cpu_tiny.json
    # memory over a long stream, and the cache-less baseline
    python scripts/bench/stream_latency.py --policies sink --modes file --frames 20000 --mem_every 500 --out outputs/bench/mem.json
    python scripts/bench/stream_latency.py --policies sink --modes frame --frames 300 --naive_frames 300 --out outputs/bench/naive.json
    # GPU: the 7B at random init, bf16, compiled (CUDA graphs)
    python scripts/bench/stream_latency.py --preset aha-7b --device cuda --dtype bf16 --compile --modes frame,file --out outputs/bench/h200.json

Every (engine, policy, mode) runs in its own process, so peak RSS (CPU) / peak allocated memory (GPU)
is that configuration's own; repetitions are interleaved so that load from other jobs hits all alike.
Frames are random letterboxed images through the real ``engine.run`` loop (vision included, scores
only). Modes: ``frame`` = one frame at a time, vision one frame at a time (a live stream); ``file`` =
what each engine does best on a file: vision in batches of 8, plus (new engine) vision on a background
thread and 8 frames per LM forward. Reported: frames per second of wall time and per CPU second, the
per-record interval p50 / p99 (``frame`` mode), cache length, memory against the frame index; fps
over the whole run and after the ``--warmup`` frames (``*_steady``: without compilation / graph capture).

The naive baseline has no cache at all: at frame i it re-encodes all i+1 frames through the vision
tower and runs the language model over the whole context; it is compared with the engine at the same
frame in wall and CPU time.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _compare  # noqa: E402

QUERY = "a red circle bounces off the left wall"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def worker(args) -> dict:
    _compare.import_tree(args.src)
    import numpy as np
    import torch

    from models.build import build_model
    from models.chat import load_tokenizer
    from models.streaming import EngineConfig, FrameEvent, QueryEvent, StreamingEngine

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tok = load_tokenizer(args.tokenizer)
    model = build_model(args.preset, dtype=args.dtype, device=device, seed=0).eval()
    size = model.config.frame_size
    images = np.random.default_rng(0).integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    if args.naive:
        return naive(args, model, tok, images, device)
    new = hasattr(EngineConfig, "cache_record")
    kw = dict(cache_policy=args.policy, window=args.window, sink_tokens=args.sink, generate=False)
    file_mode = args.mode == "file"
    if new:
        kw.update(frames_per_step=8 if file_mode else 1, compile=args.compile)
    eng = StreamingEngine(model, tok, EngineConfig(**kw))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def source():
        for i in range(args.frames):
            yield FrameEvent(i / args.fps, images[i % len(images)])

    run_kw = {"vision_batch": 8} if file_mode else {}
    times, cache, mem = [], [], []
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    warm_cpu = None
    for i, rec in enumerate(eng.run(source(), [QueryEvent(0.0, QUERY)], **run_kw)):
        times.append(time.perf_counter())
        if i == args.warmup - 1:
            warm_cpu = time.process_time()
        cache.append(rec.cache_len)
        if i % args.mem_every == 0 or i == args.frames - 1:
            mem.append((i, torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else rss_mb()))
    sync()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    gaps = np.diff(np.asarray([t0] + times)) * 1000
    n = len(gaps)
    w = args.warmup
    early, late = gaps[w: w + max(1, n // 10)], gaps[-max(1, n // 10):]
    return {
        "frames": n, "wall_s": wall, "cpu_s": cpu, "fps_wall": n / wall, "fps_cpu": n / cpu,
        # after the warm-up frames (compilation, CUDA graph capture, the window filling up)
        "fps_wall_steady": (n - w) / (times[-1] - times[w - 1]) if 0 < w < n else None,
        "fps_cpu_steady": (n - w) / (time.process_time() - warm_cpu) if warm_cpu is not None else None,
        "interval_ms": {"p50": float(np.percentile(gaps[w:], 50)), "p99": float(np.percentile(gaps[w:], 99)),
                        "mean": float(gaps[w:].mean())},
        "late_over_early": float(late.mean() / early.mean()),
        "cache_len_end": cache[-1], "cache_len_max": max(cache),
        "memory_mb_by_frame": mem,
        "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "interval_ms_by_frame": [round(float(x), 3) for x in gaps[:: max(1, n // 2000)]],
        "revision": _revision(args.src),
    }


def naive(args, model, tok, images, device) -> dict:
    """No cache of any kind: frame i re-encodes frames 0..i and re-reads the whole context."""
    import torch

    from models.chat import STREAM_PROMPT, ChatTemplate, system_prompt_of, system_turn, user_turn

    tmpl = ChatTemplate(tok, model.config.tokens_per_frame, model.config.frame_placeholder)
    prefix = tmpl.ids(system_turn(system_prompt_of(model.config))) + tmpl.ids(user_turn(QUERY)) + tmpl.ids(STREAM_PROMPT)
    from models.frames import to_pixel_values

    walls, cpus = [], []
    with torch.inference_mode():
        for i in range(args.frames):
            t, c = time.perf_counter(), time.process_time()
            idx = [k % len(images) for k in range(i + 1)]
            fe = model.encode_frames(to_pixel_values(images[idx], model.config.frame_size, dtype=model.vision_dtype, device=device))
            ids = torch.tensor([prefix + tmpl.frame_ids(i + 1)], device=device)
            out = model(input_ids=ids, frame_embeds=fe, compute_lm_logits=False)
            _ = out.relevance[0, -1].item()
            walls.append((time.perf_counter() - t) * 1000)
            cpus.append((time.process_time() - c) * 1000)
    return {"wall_ms_by_frame": walls, "cpu_ms_by_frame": cpus, "revision": _revision(args.src)}


def _revision(src) -> str:
    p = Path(src) / ".revision"
    return p.read_text().strip() if p.exists() else _compare.head_revision()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old_rev", default=None, help="also run the engine of this git revision (e.g. 2d920b5)")
    ap.add_argument("--preset", default="aha-tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--compile", action="store_true", help="torch.compile the frame step (new engine; CUDA graphs on CUDA)")
    ap.add_argument("--tokenizer", default=str(_compare.REPO.parent / "shared" / "data" / "tokenizers" / "qwen2"))
    ap.add_argument("--frames", type=int, default=3600)
    ap.add_argument("--fps", type=float, default=1.0)
    ap.add_argument("--policies", default="sink,dynamic_sink,sliding,unbounded")
    ap.add_argument("--modes", default="frame,file")
    ap.add_argument("--window", type=int, default=2048)
    ap.add_argument("--sink", type=int, default=32)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--naive_frames", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--mem_every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    ap.add_argument("--out", default="outputs/bench/stream_latency.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--src", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--policy", default="sink", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="frame", help=argparse.SUPPRESS)
    ap.add_argument("--naive", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    sys.path.insert(0, str(_compare.REPO))
    from utils.io import atomic_write_json

    trees = {"new": _compare.REPO}
    if args.old_rev:
        trees["old"] = _compare.export_revision(args.old_rev)
    common = ["--preset", args.preset, "--device", args.device, "--dtype", args.dtype, "--tokenizer", args.tokenizer,
              "--fps", str(args.fps), "--window", str(args.window), "--sink", str(args.sink), "--warmup", str(args.warmup),
              "--mem_every", str(args.mem_every)] + (["--compile"] if args.compile else [])
    jobs = [(engine, pol, mode) for pol in args.policies.split(",") if pol for mode in args.modes.split(",") if mode
            for engine in trees]
    runs: dict[str, list] = {}
    for rep in range(args.reps):
        for engine, pol, mode in jobs:
            key = f"{engine} {pol} {mode}"
            r = _compare.run_worker(Path(__file__), trees[engine], common + ["--frames", str(args.frames), "--policy", pol, "--mode", mode],
                                    args.threads)
            runs.setdefault(key, []).append(r)
            print(f"rep {rep} {key:<28} {r['fps_wall']:7.1f} fps wall {r['fps_cpu']:7.1f} fps/cpu-s  "
                  f"p50 {r['interval_ms']['p50']:.2f} ms p99 {r['interval_ms']['p99']:.2f}  peak {r['peak_memory_mb']:.0f} MB  "
                  f"cache {r['cache_len_end']}  late/early {r['late_over_early']:.2f}", flush=True)
    table = {}
    for key, rs in runs.items():
        table[key] = {
            "fps_wall": {"max": max(r["fps_wall"] for r in rs), "median": statistics.median(r["fps_wall"] for r in rs)},
            "fps_cpu": {"max": max(r["fps_cpu"] for r in rs), "median": statistics.median(r["fps_cpu"] for r in rs)},
            "p50_ms": min(r["interval_ms"]["p50"] for r in rs), "p99_ms": min(r["interval_ms"]["p99"] for r in rs),
            "peak_memory_mb": statistics.median(r["peak_memory_mb"] for r in rs),
            "cache_len_end": rs[0]["cache_len_end"], "late_over_early": statistics.median(r["late_over_early"] for r in rs),
            "memory_mb_first_last": [rs[0]["memory_mb_by_frame"][0][1], rs[0]["memory_mb_by_frame"][-1][1]],
        }
    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") and torch.cuda.is_available() else None
    result = {"machine": {"platform": platform.platform(), "processor": platform.processor(), "python": platform.python_version(),
                          "torch": torch.__version__, "transformers": transformers.__version__, "gpu": gpu},
              "args": vars(args), "table": table, "runs": runs}
    if args.naive_frames:
        nv = _compare.run_worker(Path(__file__), trees["new"], common + ["--frames", str(args.naive_frames), "--naive"], args.threads)
        k = args.naive_frames
        result["naive"] = nv
        for key, rs in runs.items():
            if key.startswith("new") and key.endswith("frame") and len(rs[0]["interval_ms_by_frame"]) >= k:
                eng_ms = statistics.mean(rs[0]["interval_ms_by_frame"][k - 10: k])
                naive_wall, naive_cpu = statistics.mean(nv["wall_ms_by_frame"][-10:]), statistics.mean(nv["cpu_ms_by_frame"][-10:])
                eng_cpu = 1000.0 / rs[0]["fps_cpu"]
                result.setdefault("naive_ratio", {})[key] = {"frame": k, "naive_wall_ms": naive_wall, "naive_cpu_ms": naive_cpu,
                                                             "engine_wall_ms": eng_ms, "engine_cpu_ms_mean": eng_cpu,
                                                             "wall_ratio": naive_wall / eng_ms, "cpu_ratio": naive_cpu / eng_cpu}
                print(f"naive at frame {k}: {naive_wall:.0f} ms wall / {naive_cpu:.0f} ms CPU; {key}: {eng_ms:.2f} ms wall, "
                      f"{eng_cpu:.2f} ms CPU per frame -> {naive_wall / eng_ms:.0f}x wall, {naive_cpu / eng_cpu:.0f}x CPU", flush=True)
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
