"""Aggregate throughput of scale-out inference: streams per process (``--streams N``) and processes
(torchrun ranks), score-only, as ``test.run_benchmark`` runs a benchmark.

    # CPU, aha-tiny: N = 1, 4, 16 streams, 1 and 2 processes, 3 interleaved repetitions
    python scripts/bench/scale_out.py --streams 1,4,16 --procs 1,2 --reps 3 --out results/scale_out/cpu_tiny.json
    # GPU: the 7B (random init, bf16), N = 1..32, one process
    python scripts/bench/scale_out.py --preset aha-7b --device cuda --dtype bf16 --streams 1,2,4,8,16,32 --procs 1 \\
        --out results/scale_out/h200_7b.json

The workload is a benchmark's: ``--items`` items whose lengths vary from half to 1.5x ``--frames``
(queries asked at different times), each item's frames given as frame tokens (49 per frame, as
``test.run_benchmark --features`` streams them: the vision tower does not run), scores only
(``generate=False``), ``--frames_per_step`` frames per LM forward (the driver's score-only default,
8). N = 1 is the single-stream engine (``models.streaming.StreamingEngine``, what ``--streams 1``
runs); N > 1 the multi-stream engine with N lanes (``models.multistream``). With P processes, rank r
streams items r, r + P, ... (``test.scale_out.Shard.share``), launched by torchrun (gloo); the ranks
start together after a barrier, once their model is built and warmed up.

Each (P, N) runs in fresh processes; repetitions are interleaved (every configuration once, then
again) so that load from other jobs on a shared machine hits all alike. Reported per configuration:
aggregate frames per second of wall time (all frames of all ranks / the slowest rank's time), frames
per CPU second (all ranks' process CPU time), min and median over the repetitions, and the speed-up
over (P=1, N=1) measured within each repetition (median of those ratios).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _compare  # noqa: E402
QUERY = "when does the person open the door?"


# ------------------------------------------------------------------------------ worker


def _items(n: int, frames: int) -> list[tuple[str, int, float]]:
    """(id, number of frames, query time in frames) of every item: lengths 0.5x .. 1.5x ``frames``."""
    out = []
    for i in range(n):
        length = max(2, round(frames * (0.5 + (i * 7 % 11) / 10)))
        out.append((f"item{i:04d}", length, float(i % 5)))
    return out


def worker(args) -> None:
    sys.path.insert(0, str(REPO))
    import torch

    from models.build import build_model
    from models.chat import load_tokenizer
    from models.multistream import MultiStreamEngine
    from models.streaming import EngineConfig, FrameEvent, FrameRecord, QueryEvent, StreamingEngine
    from test.scale_out import Shard, split_rows_arg

    torch.set_num_threads(args.threads)
    shard = Shard.from_env()
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    model = build_model(args.preset, seed=0, dtype=dtype, device=torch.device(args.device)).eval()
    tok = load_tokenizer(args.tokenizer)
    cfg = EngineConfig(generate=False, frames_per_step=args.frames_per_step, cache_policy=args.cache_policy,
                       window=args.window, compile=args.compile)
    engine = (StreamingEngine(model, tok, cfg) if args.lanes == 1
              else MultiStreamEngine(model, tok, cfg, streams=args.lanes, split_rows=split_rows_arg(args.split_rows)))
    tpf = engine.tpf
    d = model.config.text_config.hidden_size
    g = torch.Generator().manual_seed(1234)
    pool = (torch.randn(16, tpf, d, generator=g) * 0.5).to(args.device, dtype)  # frame tokens, cycled

    def specs(items):
        for j, (key, length, qt) in enumerate(items):
            yield key, [FrameEvent(float(t), embeds=pool[(t + 3 * j) % 16]) for t in range(length)], \
                [QueryEvent(qt, QUERY)]

    def run(items) -> int:
        n = 0
        if args.lanes == 1:
            for _, frames, queries in specs(items):
                engine.reset()
                n += sum(isinstance(r, FrameRecord) for r in engine.run(frames, queries))
        else:
            for _, records in engine.run_streams(specs(items)):
                n += sum(isinstance(r, FrameRecord) for r in records)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return n

    share = shard.share(_items(args.items, args.frames))
    run([(f"warm{i}", args.frames_per_step * 3, 0.0) for i in range(args.lanes)])  # allocations, lazy inits
    shard.init()
    shard.barrier()  # every rank starts together
    if args.lanes > 1:
        engine.stats = dict.fromkeys(engine.stats, 0)
    w0, c0 = time.perf_counter(), time.process_time()
    frames = run(share)
    res = {"rank": shard.rank, "frames": frames, "items": len(share), "wall_s": time.perf_counter() - w0,
           "cpu_s": time.process_time() - c0}
    if args.lanes > 1:  # how full the batched forwards were (padding rows, forwards the compiled step could take)
        res["forwards"] = dict(engine.stats)
    ranks = shard.gather(res)
    shard.close()
    if ranks is not None:
        print(json.dumps({"ranks": ranks}))


# ------------------------------------------------------------------------------ driver


def measure(args, procs: int, n: int, split: str) -> dict:
    common = ["--worker", "--lanes", str(n), "--preset", args.preset, "--device", args.device, "--dtype", args.dtype,
              "--tokenizer", args.tokenizer, "--items", str(args.items), "--frames", str(args.frames),
              "--frames_per_step", str(args.frames_per_step), "--cache_policy", args.cache_policy,
              "--window", str(args.window), "--threads", str(args.threads), "--split_rows", split] \
        + (["--compile"] if args.compile else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}  # keep the caller's
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    launch = [sys.executable] if procs == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)]
    proc = subprocess.run([*launch, str(Path(__file__).resolve()), *common], capture_output=True, text=True, env=env,
                          cwd=str(REPO))
    if proc.returncode != 0:
        raise RuntimeError(f"worker (P={procs}, N={n}) failed:\n{proc.stderr[-3000:]}")
    ranks = next(json.loads(ln)["ranks"] for ln in reversed(proc.stdout.splitlines()) if ln.startswith('{"ranks"'))
    frames = sum(r["frames"] for r in ranks)
    wall = max(r["wall_s"] for r in ranks)
    cpu = sum(r["cpu_s"] for r in ranks)
    out = {"procs": procs, "streams": n, "split_rows": split, "frames": frames, "wall_s": round(wall, 4),
           "cpu_s": round(cpu, 4), "fps_wall": frames / wall, "fps_cpu": frames / cpu, "ranks": ranks}
    if all("forwards" in r for r in ranks):
        fw = {k: sum(r["forwards"][k] for r in ranks) for k in ranks[0]["forwards"]}
        out["forwards"] = {**fw, "real_row_share": fw["rows"] / max(1, fw["padded_rows"]),
                           "compiled_share": fw["compiled_forwards"] / max(1, fw["forwards"]),
                           "mean_lanes": fw["lanes"] / max(1, fw["forwards"])}
    return out


def summarise(runs: list[dict], configs: list[tuple[int, int, str]], reps: int) -> list[dict]:
    base = [r for r in runs if (r["procs"], r["streams"]) == (1, 1)]
    rows = []
    for p, n, split in configs:
        mine = [r for r in runs if (r["procs"], r["streams"], r["split_rows"]) == (p, n, split)]
        row = {"procs": p, "streams": n, "split_rows": split, "reps": len(mine), "frames": mine[0]["frames"]}
        for k in ("fps_wall", "fps_cpu"):
            vals = [r[k] for r in mine]
            row[f"{k}_min"], row[f"{k}_median"], row[f"{k}_max"] = min(vals), statistics.median(vals), max(vals)
        if "forwards" in mine[0]:  # the same in every repetition (the batching is deterministic)
            row["forwards"] = mine[0]["forwards"]
        if len(base) == len(mine):  # speed-up within each repetition (the same load), then the median
            row["speedup_wall_median"] = statistics.median(r["fps_wall"] / b["fps_wall"] for r, b in zip(mine, base))
            row["speedup_cpu_median"] = statistics.median(r["fps_cpu"] / b["fps_cpu"] for r, b in zip(mine, base))
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    out = ["| processes | streams per process | split_rows | aggregate frames/s (wall) min / median | frames per CPU-s min / median "
           "| speed-up vs 1x1 (wall / CPU, median of per-rep ratios) | forwards (per step of the lanes) | real rows / rows computed |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sp = (f"{r['speedup_wall_median']:.2f}x / {r['speedup_cpu_median']:.2f}x" if "speedup_wall_median" in r else "-")
        fw = r.get("forwards")
        batching = (f"{fw['forwards']} ({fw['forwards'] / fw['ticks']:.2f}) | {fw['real_row_share']:.0%}" if fw else "- | -")
        out.append(f"| {r['procs']} | {r['streams']} | {r['split_rows']} | {r['fps_wall_min']:.0f} / {r['fps_wall_median']:.0f} "
                   f"| {r['fps_cpu_min']:.0f} / {r['fps_cpu_median']:.0f} | {sp} | {batching} |")
    return "\n".join(out)


def _torch_version() -> str:
    import torch
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return torch.__version__ + (f" on {cuda}" if cuda else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _compare.add_model_args(ap)
    ap.add_argument("--streams", default="1,4,16", help="streams per process to measure (comma-separated)")
    ap.add_argument("--procs", default="1,2", help="processes (torchrun ranks) to measure (comma-separated)")
    ap.add_argument("--items", type=int, default=32, help="items of the benchmark, shared among the ranks")
    ap.add_argument("--frames", type=int, default=48, help="mean frames per item (lengths 0.5x .. 1.5x)")
    ap.add_argument("--frames_per_step", type=int, default=8, help="frames per LM forward (the driver's score-only default)")
    ap.add_argument("--cache_policy", default="sink")
    ap.add_argument("--window", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    ap.add_argument("--compile", action="store_true", help="torch.compile the frame-only step (CUDA graphs on CUDA)")
    ap.add_argument("--split_rows", default="auto",
                    help="MultiStreamEngine's split_rows for N > 1: 'auto', 'none' or rows; comma-separated to compare")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="outputs/bench/scale_out.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--lanes", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    streams = [int(x) for x in args.streams.split(",")]
    procs = [int(x) for x in args.procs.split(",")]
    sys.path.insert(0, str(REPO))
    from test.scale_out import split_rows_arg

    splits = [x for x in args.split_rows.split(",") if x]
    for x in splits:
        split_rows_arg(x)  # a bad value fails here, not in a worker
    configs = [(1, 1, "-")] + [(p, n, sp) for p in procs for n in streams for sp in (splits if n > 1 else ["-"])
                               if (p, n) != (1, 1)]
    load = [os.getloadavg()]
    runs = []
    for rep in range(args.reps):  # interleaved: every configuration once per repetition
        for p, n, split in configs:
            r = measure(args, p, n, split)
            r["rep"] = rep
            runs.append(r)
            fw = r.get("forwards")
            batching = (f"; {fw['forwards']} forwards, {fw['mean_lanes']:.1f} lanes each, real rows "
                        f"{fw['real_row_share']:.0%} of those computed, all lanes in full blocks {fw['full_block_forwards']}, compiled "
                        f"{fw['compiled_forwards']}") if fw else ""
            print(f"rep {rep} P={p} N={n} split_rows={split}: {r['fps_wall']:.0f} frames/s wall, {r['fps_cpu']:.0f} per CPU-s "
                  f"({r['frames']} frames, {r['wall_s']:.2f} s){batching}", flush=True)
    load.append(os.getloadavg())
    rows = summarise(runs, configs, args.reps)
    record = {
        "what": "aggregate frames/s of test.run_benchmark's scale-out (score-only), streams per process x processes",
        "protocol": {"preset": args.preset, "weights": "random init (seed 0)", "device": args.device, "dtype": args.dtype,
                     "tokens_per_frame": 49, "frames_from": "frame tokens (no vision tower)", "generate": False,
                     "frames_per_step": args.frames_per_step, "compiled": args.compile,
                     "torch": _torch_version(),
                     "cache": {"policy": args.cache_policy, "window": args.window, "sink_tokens": 32},
                     "items": args.items, "frames_per_item": f"{args.frames} mean (0.5x .. 1.5x)",
                     "threads_per_process": args.threads, "launcher": "torchrun --standalone (gloo) for P > 1",
                     "single_stream": "StreamingEngine (N=1); MultiStreamEngine for N > 1",
                     "split_rows": args.split_rows,
                     "repetitions": args.reps, "order": "interleaved"},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_before_after": load},
        "revision": _compare.head_revision(), "command": ["python", "scripts/bench/scale_out.py", *(argv or sys.argv[1:])],
        "rows": rows, "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(table(rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
