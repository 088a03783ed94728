"""Per-frame latency, throughput and memory of the streaming engine, per cache policy.

    python -m scripts.bench.stream_latency --preset aha-tiny --frames 3600 --naive_frames 600 --out outputs/bench/cpu.json
    python -m scripts.bench.stream_latency --preset aha-7b --device cuda --dtype bf16 --frames 3600   # on a GPU

Frames are random letterboxed images fed through the real engine (vision encoding included, one
frame per step, no generation). For every policy it records per-frame latency (p50/p90/p99), frames
per second, peak memory (GPU: torch.cuda.max_memory_allocated; CPU: process RSS high-water mark),
and latency / cache length / memory against frame index. ``--naive_frames`` adds the baseline that
re-encodes the whole context (all frames so far) at every frame with no cache. The JSON records
the machine, versions and arguments.
"""
from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.build import build_model  # noqa: E402
from models.chat import load_tokenizer  # noqa: E402
from models.streaming import EngineConfig, StreamingEngine  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402
from utils.paths import shared_data_dir  # noqa: E402


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def mem_mb(device) -> float:
    return torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else current_rss_mb()


def summary(lat_ms: list[float]) -> dict:
    a = np.asarray(lat_ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "fps": float(1000.0 / a.mean())}


def run_policy(model, tok, policy, args, images, device):
    eng = StreamingEngine(model, tok, EngineConfig(cache_policy=policy, window=args.window, sink_tokens=args.sink, generate=False))
    eng.add_query("a red circle bounces")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    lat, mem, cache = [], [], []
    for i in range(args.frames):
        img = images[i % len(images)]
        sync(device)
        t = time.perf_counter()
        emb = eng.encode_images(img[None])[0]
        rec, _ = eng.process_frame(i / args.fps, emb)
        sync(device)
        lat.append((time.perf_counter() - t) * 1000)
        cache.append(rec.cache_len)
        if i % args.mem_every == 0 or i == args.frames - 1:
            mem.append((i, mem_mb(device)))
    out = {"policy": policy, **summary(lat[args.warmup:]), "latency_ms": [round(x, 3) for x in lat],
           "cache_len": cache, "memory_mb_by_frame": mem}
    out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else rss_mb()
    n = len(lat)
    # flatness: mean latency of the last 10 % against the 10 % after warm-up
    a, b = lat[args.warmup: args.warmup + max(1, n // 10)], lat[-max(1, n // 10):]
    out["late_over_early"] = float(np.mean(b) / np.mean(a))
    return out


@torch.inference_mode()
def run_naive(model, tok, args, images, device):
    """No cache: at frame i the model re-reads the prompt and all i+1 frames (their tokens are cached
    as embeddings so that only the language model is repeated, as a cache-less streaming LLM would)."""
    eng = StreamingEngine(model, tok, EngineConfig(cache_policy="unbounded", generate=False))
    from models.chat import STREAM_PROMPT, system_turn, user_turn

    prefix = eng.template.ids(system_turn(eng.cfg.system_prompt)) + eng.template.ids(user_turn("a red circle bounces")) + eng.template.ids(STREAM_PROMPT)
    frames, lat = [], []
    for i in range(args.naive_frames):
        sync(device)
        t = time.perf_counter()
        frames.append(eng.encode_images(images[i % len(images)][None])[0])
        fe = torch.stack(frames)
        ids = torch.tensor([prefix + eng.template.frame_ids(len(frames))], device=device)
        out = model(input_ids=ids, frame_embeds=fe, compute_lm_logits=False)
        _ = out.relevance[0, -1].item()
        sync(device)
        lat.append((time.perf_counter() - t) * 1000)
    return {"policy": "naive_recompute", **summary(lat[args.warmup:]), "latency_ms": [round(x, 3) for x in lat],
            "last_frame_ms": lat[-1]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="aha-tiny")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the weights folder, else shared data's qwen2)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--fps", type=float, default=1.0)
    ap.add_argument("--policies", default="sink,unbounded,sliding,dynamic_sink")
    ap.add_argument("--window", type=int, default=2048)
    ap.add_argument("--sink", type=int, default=32)
    ap.add_argument("--naive_frames", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--mem_every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--out", default="outputs/bench/stream_latency.json")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tok_dir = args.tokenizer or args.weights or (shared_data_dir() / "tokenizers" / "qwen2" if shared_data_dir() else None)
    if tok_dir is None:
        raise SystemExit("no tokenizer: pass --tokenizer")
    tok = load_tokenizer(str(tok_dir))
    model = build_model(args.preset, weights=args.weights, dtype=args.dtype, attn_implementation=args.attn, device=device, seed=0).eval()
    size = model.config.frame_size
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    results = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_threads": torch.get_num_threads(),
                    "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
        "args": vars(args),
        "runs": [],
    }
    for policy in [p for p in args.policies.split(",") if p]:
        r = run_policy(model, tok, policy, args, images, device)
        print(f"{policy:>14}: p50 {r['p50_ms']:.1f} ms  p90 {r['p90_ms']:.1f}  p99 {r['p99_ms']:.1f}  {r['fps']:.1f} fps  "
              f"peak {r['peak_memory_mb']:.0f} MB  late/early {r['late_over_early']:.2f}", flush=True)
        results["runs"].append(r)
    if args.naive_frames:
        r = run_naive(model, tok, args, images, device)
        print(f"{'naive':>14}: p50 {r['p50_ms']:.1f} ms  last frame {r['last_frame_ms']:.1f} ms", flush=True)
        results["runs"].append(r)
        sink = next((x for x in results["runs"] if x["policy"] == "sink"), None)
        if sink and len(sink["latency_ms"]) >= args.naive_frames:
            k = args.naive_frames
            sink_at = float(np.mean(sink["latency_ms"][k - 10:k]))
            naive_at = float(np.mean(r["latency_ms"][-10:]))
            results["speedup_at_naive_frames"] = naive_at / sink_at
            print(f"sink vs naive at frame {k}: {naive_at / sink_at:.1f}x faster", flush=True)
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
