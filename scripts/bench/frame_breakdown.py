"""Where one live frame's time goes (frame mode, one stream): the vision tower alone, the LM step alone
(compiled and eager) and the whole step, wall and CPU time per frame, plus a cProfile of the whole step.

    python scripts/bench/frame_breakdown.py --preset aha-7b --device cuda --dtype bf16 --out outputs/bench/breakdown.json

Random init (speed does not depend on the values); random letterboxed frames; sink cache, window 2048.
Each part is timed over ``--frames`` frames after ``--warmup`` frames (compilation, CUDA graph capture,
the window filling up), with a device sync after every frame, as a live stream consumes its scores.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="aha-tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--tokenizer", default=str(REPO.parent / "shared" / "data" / "tokenizers" / "qwen2"))
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--out", default="outputs/bench/frame_breakdown.json")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from models.build import build_model
    from models.chat import load_tokenizer
    from models.streaming import EngineConfig, StreamingEngine

    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    tok = load_tokenizer(args.tokenizer)
    t = time.perf_counter()
    model = build_model(args.preset, dtype=args.dtype, device=dev, seed=0).eval()
    sync()
    build_s = time.perf_counter() - t
    size = model.config.frame_size
    images = np.random.default_rng(0).integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    out = {"preset": args.preset, "device": args.device, "dtype": args.dtype, "build_s": build_s,
           "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None}

    def timed(fn, n):
        walls, cpus = [], []
        for i in range(n):
            w, c = time.perf_counter(), time.process_time()
            fn(i)
            sync()
            walls.append((time.perf_counter() - w) * 1e3)
            cpus.append((time.process_time() - c) * 1e3)
        return {"wall_ms_median": statistics.median(walls), "wall_ms_min": min(walls),
                "cpu_ms_median": statistics.median(cpus), "cpu_ms_min": min(cpus)}

    def measure(compiled: bool) -> None:
        eng = StreamingEngine(model, tok, EngineConfig(cache_policy="sink", window=2048, generate=False, compile=compiled))
        eng.add_query("a red circle bounces off the left wall", 0.0)
        emb = eng.encode_images(images[:1])[0]
        t = time.perf_counter()
        for i in range(args.warmup):
            eng.process_frame(float(i), emb)
        sync()
        label = "compiled" if compiled else "eager"
        out[f"warmup_s_{label}"] = time.perf_counter() - t
        out[f"lm_step_{label}"] = timed(lambda i: eng.process_frame(float(args.warmup + i), emb), args.frames)
        if not compiled:
            return
        out["vision_one_frame"] = timed(lambda i: eng.encode_images(images[i % 16: i % 16 + 1]), args.frames)
        base = args.warmup + args.frames

        def whole(i):
            eng.process_frame(float(base + i), eng.encode_images(images[i % 16: i % 16 + 1])[0])
        out["whole_step_compiled"] = timed(whole, args.frames)
        prof = cProfile.Profile()
        prof.enable()
        for i in range(args.frames // 2):
            whole(args.frames + i)
        sync()
        prof.disable()
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
        out["cprofile_whole_step_tottime"] = s.getvalue().splitlines()[:60]

    measure(compiled=True)
    measure(compiled=False)
    print(json.dumps({k: v for k, v in out.items() if not k.startswith("cprofile")}, indent=1))
    print("\n".join(out["cprofile_whole_step_tottime"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
