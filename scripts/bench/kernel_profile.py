"""Where a step's time goes, kernel by kernel: a ``torch.profiler`` trace of the engine's steps per mode,
grouped by kind (GEMM, attention, fused / elementwise, copy / index, other), with the device's busy
and idle time per step. It answers what instructions/performance.md leaves open: why the compiled 7B
LM step takes 2.6x the weight-reading floor, and why N = 16 streams reach only ~36 % of the GEMM rate.

    # GPU: the 7B (random init, bf16), compiled, every mode (one lease: ~3 minutes)
    python scripts/bench/kernel_profile.py --preset aha-7b --device cuda --dtype bf16 --compile --out outputs/bench/kernels.json
    # CPU, aha-tiny (the same code path; on CPU the "kernels" are aten ops and time is CPU time)
    python scripts/bench/kernel_profile.py --steps 8 --out outputs/bench/kernels_cpu.json

Modes (``--modes``):
- ``frame``: one stream, one frame per LM forward (a live stream), window full and evicting every
  frame, a device sync after each step (as a live stream consumes its scores); frame tokens given
  (the vision tower is its own mode);
- ``block``: one stream, ``--frames_per_step`` frames per forward (score-only on a file);
- ``vision``: the vision tower on one frame (the compiled tower with ``--compile``, as a live stream
  runs it) and on a batch of ``--frames_per_step`` frames (eager, as the file mode's worker runs it);
- ``batch``: the multi-stream engine, ``--streams`` lanes, ``--frames_per_step`` frames per forward,
  frame tokens (``scripts/bench/scale_out.py``'s workload), every lane streaming from the start.

Per mode: wall ms per step (median over the profiled steps, measured without the profiler and again
under it), kernels per step, device busy ms per step (the union of the kernels' intervals: CUDA only)
and idle = wall - busy, time per kind and the top kernels. Also a *derived* floor, not a measurement:
the bytes of weights a step reads / ``--bandwidth_tbs`` and its FLOPs / ``--tflops``.
Random init (time does not depend on the values); seed 0.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _compare  # noqa: E402

QUERY = "when does the person open the door?"
# kernel / aten-op name -> kind; first match wins. cuBLAS(Lt) GEMMs on Hopper are "nvjet_*" or
# "sm90_xmma_gemm_*", cutlass ones "cutlass_*"; inductor's fused kernels are "triton_*".
KINDS = (
    ("attention", r"flash|fmha|attention|sdpa|scaled_dot"),
    ("gemm", r"gemm|nvjet|cutlass|cublas|xmma|matmul|aten::(addmm|mm|bmm|linear|baddbmm)$|splitkreduce"),
    ("copy / index", r"memcpy|memset|copy|index|scatter|gather|aten::(cat|where|clone|contiguous|to|_to_copy)$|cat"),
    ("fused (inductor)", r"^triton_|^cpp_fused|fused"),
    ("elementwise / reduction", r"elementwise|vectorized|unrolled|reduce|softmax|norm|silu|gelu|mul|add|sub|div|exp|pow|"
                                r"rsqrt|mean|sum|sin|cos|neg|where|aten::"),
)


def kind_of(name: str) -> str:
    for kind, pattern in KINDS:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return kind
    return "other"


def _union_ms(intervals: list[tuple[float, float]]) -> float:
    """Total length (ms) of the union of [start, end] intervals given in microseconds."""
    total, end = 0.0, float("-inf")
    for s, e in sorted(intervals):
        if s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total / 1e3


def summarise(prof, steps: int, wall_ms: list[float], cuda: bool, top: int) -> dict:
    """Kernels (CUDA) or leaf aten ops (CPU) of a profiled window of ``steps`` steps, per step."""
    from torch.autograd import DeviceType

    if cuda:
        events = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
        timed = [(e.name, e.time_range.end - e.time_range.start, (e.time_range.start, e.time_range.end)) for e in events]
    else:  # aten ops on the CPU: their self time (what the CPU spent in the op itself)
        events = [e for e in prof.events() if e.name.startswith("aten::")]  # self times add up without overlap
        timed = [(e.name, e.self_cpu_time_total, (e.time_range.start, e.time_range.end)) for e in events]
    by_kind: dict[str, float] = {}
    by_name: dict[str, list] = {}
    for name, us, _ in timed:
        by_kind[kind_of(name)] = by_kind.get(kind_of(name), 0.0) + us
        acc = by_name.setdefault(name, [0, 0.0])
        acc[0] += 1
        acc[1] += us
    total_us = sum(by_kind.values())
    wall = statistics.median(wall_ms)
    busy = _union_ms([iv for _, _, iv in timed]) / steps
    out = {
        "steps": steps,
        "wall_ms_median_profiled": wall,
        ("kernels_per_step" if cuda else "aten_ops_per_step"): len(timed) / steps,
        "time_ms_per_step": total_us / steps / 1e3,
        "by_kind_ms_per_step": {k: v / steps / 1e3 for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        "by_kind_share": {k: v / total_us for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])} if total_us else {},
        "top": [{"name": n[:160], "kind": kind_of(n), "calls_per_step": c / steps, "ms_per_step": us / steps / 1e3,
                 "us_per_call": us / c}
                for n, (c, us) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:top]],
    }
    if cuda:  # the device's busy time per step (overlapping kernels counted once) and the gaps between kernels
        out["device_busy_ms_per_step"] = busy
        out["device_idle_ms_per_step"] = max(0.0, wall - busy)
    return out


def weight_bytes(module, skip=()) -> int:
    return sum(p.numel() * p.element_size() for n, p in module.named_parameters() if not any(s in n for s in skip))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _compare.add_model_args(ap)
    ap.add_argument("--compile", action="store_true", help="the engines' compiled steps (CUDA graphs on CUDA)")
    ap.add_argument("--modes", default="frame,block,vision,batch")
    ap.add_argument("--steps", type=int, default=24, help="steps profiled per mode")
    ap.add_argument("--warmup", type=int, default=60, help="frames before profiling (window full, graphs captured)")
    ap.add_argument("--frames_per_step", type=int, default=8)
    ap.add_argument("--streams", type=int, default=16, help="lanes of the batch mode")
    ap.add_argument("--window", type=int, default=2048)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--bandwidth_tbs", type=float, default=4.8, help="for the derived floor (H200: 4.8 TB/s)")
    ap.add_argument("--tflops", type=float, default=790.0, help="for the derived floor (bf16 GEMM rate measured on the H200)")
    ap.add_argument("--trace_dir", default=None, help="also write a Chrome trace per mode here")
    ap.add_argument("--out", default="outputs/bench/kernel_profile.json")
    args = ap.parse_args(argv)

    import torch
    from torch.profiler import ProfilerActivity, profile

    from models.build import build_model
    from models.chat import load_tokenizer
    from models.multistream import MultiStreamEngine
    from models.streaming import EngineConfig, FrameEvent, QueryEvent, StreamingEngine

    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    tok = load_tokenizer(args.tokenizer)
    model = build_model(args.preset, dtype=dtype, device=dev, seed=0).eval()
    cfg = model.config
    tpf, k = cfg.tokens_per_frame, args.frames_per_step
    g = torch.Generator().manual_seed(1234)
    pool = (torch.randn(16, tpf, cfg.text_config.hidden_size, generator=g) * 0.5).to(dev, dtype)  # frame tokens, cycled
    images = torch.randint(0, 256, (k, cfg.frame_size, cfg.frame_size, 3), generator=g, dtype=torch.uint8).numpy()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    lm_bytes = weight_bytes(model.model.language_model, skip=("embed_tokens",))  # a lookup reads only its rows
    lm_params = lm_bytes // torch.tensor([], dtype=dtype).element_size()
    vision_bytes = weight_bytes(model.model.vision_tower) + weight_bytes(model.model.multi_modal_projector)
    record = {
        "what": "torch.profiler per engine step: kernels (CUDA) / aten ops (CPU) by kind, device busy vs idle",
        "protocol": {"preset": args.preset, "weights": "random init (seed 0)", "device": args.device, "dtype": args.dtype,
                     "compiled": args.compile, "tokens_per_frame": tpf, "frames_per_step": k, "streams": args.streams,
                     "cache": {"policy": "sink", "window": args.window, "sink_tokens": 32}, "query": "at 0 s",
                     "warmup_frames": args.warmup, "steps_profiled": args.steps},
        "machine": {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if cuda else None},
        "revision": _compare.head_revision(), "command": ["python", "scripts/bench/kernel_profile.py", *(argv or sys.argv[1:])],
        "derived_floor_not_measured": {
            "lm_weight_bytes_read_per_forward": lm_bytes, "vision_weight_bytes_per_forward": vision_bytes,
            "bandwidth_tbs": args.bandwidth_tbs, "tflops": args.tflops,
            "lm_read_ms": lm_bytes / args.bandwidth_tbs / 1e9,
            "lm_flop_ms_per_frame": 2 * lm_params * tpf / args.tflops / 1e9,
            "vision_read_ms": vision_bytes / args.bandwidth_tbs / 1e9,
        },
        "modes": {},
    }

    def profiled(name: str, step, steps: int) -> None:
        """Time ``steps`` calls of ``step(i)`` without, then with the profiler (a sync after each)."""
        plain = []
        for i in range(steps):
            t = time.perf_counter()
            step(i)
            sync()
            plain.append((time.perf_counter() - t) * 1e3)
        walls = []
        with profile(activities=activities) as prof:
            for i in range(steps):
                t = time.perf_counter()
                step(steps + i)
                sync()
                walls.append((time.perf_counter() - t) * 1e3)
        res = summarise(prof, steps, walls, cuda, args.top)
        res["wall_ms_median"] = statistics.median(plain)
        res["wall_ms_min"] = min(plain)
        record["modes"][name] = res
        if args.trace_dir:
            Path(args.trace_dir).mkdir(parents=True, exist_ok=True)
            prof.export_chrome_trace(str(Path(args.trace_dir) / f"{name}.json"))
        kinds = ", ".join(f"{kk} {v:.2f}" for kk, v in res["by_kind_ms_per_step"].items())
        count = res.get("kernels_per_step", res.get("aten_ops_per_step"))
        busy = f", device busy {res['device_busy_ms_per_step']:.2f} ms" if cuda else ""
        print(f"{name}: {res['wall_ms_median']:.2f} ms per step (median), {count:.0f} {'kernels' if cuda else 'aten ops'} "
              f"per step{busy}; ms per step by kind: {kinds}", flush=True)

    def engine(frames_per_step: int) -> StreamingEngine:
        eng = StreamingEngine(model, tok, EngineConfig(cache_policy="sink", window=args.window, generate=False,
                                                       frames_per_step=frames_per_step, compile=args.compile))
        eng.add_query(QUERY, 0.0)
        return eng

    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - {"frame", "block", "vision", "batch"}
    if unknown:
        raise SystemExit(f"unknown modes {sorted(unknown)}; choose from frame, block, vision, batch")
    if "frame" in modes:
        eng = engine(1)
        for i in range(args.warmup):
            eng.process_frame(float(i), pool[i % 16])
        base = args.warmup
        profiled("frame", lambda i: eng.process_frame(float(base + i), pool[i % 16]), args.steps)
    if "block" in modes:
        eng = engine(k)
        for i in range(0, args.warmup, k):
            eng.process_frames([float(i + j) for j in range(k)], pool[:k])
        base = args.warmup + k

        def block(i):
            eng.process_frames([float(base + i * k + j) for j in range(k)], pool[(i % 2) * k: (i % 2) * k + k])
        profiled("block", block, args.steps)
    if "vision" in modes:
        eng = engine(1)
        for _ in range(3):
            eng.encode_images(images[:1])
            eng.encode_images(images, compiled=False)
        profiled("vision_one_frame", lambda i: eng.encode_images(images[i % k: i % k + 1]), args.steps)
        profiled("vision_batch", lambda i: eng.encode_images(images, compiled=False), max(2, args.steps // k))
    if "batch" in modes:
        n = args.streams
        multi = MultiStreamEngine(model, tok, EngineConfig(cache_policy="sink", window=args.window, generate=False,
                                                           frames_per_step=k, compile=args.compile), streams=n)
        frames = args.warmup + 2 * args.steps * k  # every lane streams the whole time: no tail of idle lanes

        def run(length: int) -> None:
            items = ((f"item{j}", [FrameEvent(float(t), embeds=pool[(t + 3 * j) % 16]) for t in range(length)],
                      [QueryEvent(0.0, QUERY)]) for j in range(n))
            for _ in multi.run_streams(items):
                pass
            sync()

        run(args.warmup)  # compilation, allocation
        before = multi.stats["forwards"]  # the engine counts its batched forwards
        t = time.perf_counter()
        run(frames)
        plain_ms = (time.perf_counter() - t) * 1e3 / (multi.stats["forwards"] - before)
        before = multi.stats["forwards"]
        with profile(activities=activities) as prof:
            t = time.perf_counter()
            run(frames)
            wall = (time.perf_counter() - t) * 1e3
        steps = multi.stats["forwards"] - before
        res = summarise(prof, steps, [wall / steps], cuda, args.top)
        res.update(wall_ms_median=plain_ms, wall_ms_min=plain_ms, forwards=steps, frames_per_forward=n * frames / steps,
                   note="per batched forward, averaged over a whole run (the lanes' first text-only forwards included)")
        record["modes"][f"batch_{n}"] = res
        if args.trace_dir:
            prof.export_chrome_trace(str(Path(args.trace_dir) / f"batch_{n}.json"))
        kinds = ", ".join(f"{kk} {v:.2f}" for kk, v in res["by_kind_ms_per_step"].items())
        print(f"batch_{n}: {plain_ms:.2f} ms per forward ({n * frames / steps:.1f} frames), ms per forward by kind: {kinds}",
              flush=True)

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
