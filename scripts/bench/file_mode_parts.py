"""What each part of the file mode buys: frames per LM forward (K), vision batch, vision on a background
thread, in one process with interleaved repetitions (the same load for all), CPU time beside wall time.

    python scripts/bench/file_mode_parts.py --frames 1200 --reps 3 --out results/engine_v2/file_mode_parts.json

Configurations (scores only, sink cache, window 2048, a query at 0 s, random letterboxed frames through
``engine.run``, vision included): ``K1 vb1`` (a live stream), ``K1 vb8 inline``, ``K8 vb8 inline``,
``K1 vb8 background``, ``K8 vb8 background`` (the file mode of ``test.run_benchmark``). Also the vision tower alone
per frame at batch 1 and batch 8. One torch thread: the background thread is the only parallelism.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _compare  # noqa: E402

CONFIGS = {"K1 vb1": (1, 1, False), "K1 vb8 inline": (1, 8, False), "K8 vb8 inline": (8, 8, False),
           "K1 vb8 background": (1, 8, True), "K8 vb8 background": (8, 8, True)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="aha-tiny")
    ap.add_argument("--tokenizer", default=str(REPO.parent / "shared" / "data" / "tokenizers" / "qwen2"))
    ap.add_argument("--frames", type=int, default=1200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="outputs/bench/file_mode_parts.json")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from models.build import build_model
    from models.chat import load_tokenizer
    from models.streaming import EngineConfig, FrameEvent, QueryEvent, StreamingEngine
    from utils.io import atomic_write_json

    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.tokenizer)
    model = build_model(args.preset, dtype="fp32", device="cpu", seed=0).eval()
    size = model.config.frame_size
    images = np.random.default_rng(0).integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    engines = {k: StreamingEngine(model, tok, EngineConfig(generate=False, frames_per_step=c[0])) for k, c in CONFIGS.items()}

    def source(n):
        for i in range(n):
            yield FrameEvent(float(i), images[i % 16])

    runs: dict[str, list] = {k: [] for k in CONFIGS}
    for _ in range(args.reps):  # interleaved
        for key, (_, vb, bg) in CONFIGS.items():
            eng = engines[key]
            eng.reset()
            w, c = time.perf_counter(), time.process_time()
            n = sum(1 for _ in eng.run(source(args.frames), [QueryEvent(0.0, "a red circle")], vision_batch=vb, background=bg))
            runs[key].append({"cpu_ms_per_frame": (time.process_time() - c) / n * 1e3,
                              "wall_ms_per_frame": (time.perf_counter() - w) / n * 1e3})
        for vb in (1, 8):
            c = time.process_time()
            for _ in range(40):
                engines["K1 vb1"].encode_images(images[:vb])
            runs.setdefault(f"vision alone, batch {vb}", []).append({"cpu_ms_per_frame": (time.process_time() - c) / (40 * vb) * 1e3})
    table = {}
    for key, rs in runs.items():
        row = {}
        for m in ("cpu_ms_per_frame", "wall_ms_per_frame"):
            vals = [r[m] for r in rs if m in r]
            if vals:
                row[m] = {"min": min(vals), "median": statistics.median(vals)}
        table[key] = row
        print(f"{key:22s} " + "  ".join(f"{m} min {v['min']:.2f} median {v['median']:.2f}" for m, v in row.items()), flush=True)
    atomic_write_json(args.out, {
        "what": "CPU / wall ms per frame of the file mode's parts (aha-tiny, scores only)",
        "protocol": {"preset": args.preset, "weights": "random init (seed 0)", "dtype": "fp32", "threads": args.threads,
                     "frames": args.frames, "repetitions": args.reps, "order": "interleaved, one process",
                     "cache": {"policy": "sink", "window": 2048, "sink_tokens": 32}, "tokens_per_frame": 49},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__},
        "revision": _compare.head_revision(), "command": ["python", "scripts/bench/file_mode_parts.py", *(argv or sys.argv[1:])],
        "table": table, "runs": runs})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
