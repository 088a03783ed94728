"""Per-frame cost of the streaming step on a model with the 7B's layer structure at toy width:
aten ops (vision / LM / inside eviction), ``torch.cat`` count, host time (wall and CPU) of the LM
step and of eviction. Old engine (a git revision) vs this one, each run in its own process,
repetitions interleaved.

    python scripts/bench/engine_ops.py --old_rev 2d920b5 --reps 3 --out outputs/bench/engine_ops.json

Model: the 7B's layer structure (SigLIP 384 px / patch 14 with 26 layers, Qwen2 with 28 layers, GQA, the
Qwen2 vocabulary, 49 tokens per frame) at aha-tiny's width (vision 32, LM 64 with 4 query / 2 KV
heads), fp32 on CPU. At toy width the arithmetic is
negligible: what is measured is the work the host does per frame (every aten op is a kernel launch on
a GPU). The cache is full (sink, window 2048) so every frame evicts. Op counts come from a
TorchDispatchMode over single frames; timings from separate frames without it.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _compare  # noqa: E402

CONFIGS = {  # name: (tree, extra worker args)
    "old": ("old", []),
    "new": ("new", []),
    "new K=8": ("new", ["--k", "8"]),
    "old +LoRA (unmerged)": ("old", ["--lora"]),
    "new +LoRA merged": ("new", ["--lora"]),
    "new +LoRA unmerged": ("new", ["--lora", "--no_merge"]),
}


def toy_7b_config():
    from models.config import AhaConfig

    return AhaConfig(
        vision_config={"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 26,
                       "num_attention_heads": 2, "image_size": 384, "patch_size": 14, "vision_use_head": False},
        text_config={"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 28,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 152064, "max_position_embeddings": 32768,
                     "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "tie_word_embeddings": False},
        image_token_index=151646, frame_pool_stride=4)


def worker(args) -> dict:
    _compare.import_tree(args.src)
    import numpy as np
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from models.build import build_model
    from models.chat import load_tokenizer
    from models.streaming import EngineConfig, StreamingEngine

    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.tokenizer)
    model = build_model(toy_7b_config(), seed=0).eval()
    if args.lora:
        from models.lora import apply_lora

        model = apply_lora(model)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.01)
    kw = dict(cache_policy="sink", window=2048, sink_tokens=32, generate=False)
    new = hasattr(EngineConfig, "cache_record")
    if new:
        kw.update(frames_per_step=args.k, merge_lora=not args.no_merge)
    eng = StreamingEngine(model, tok, EngineConfig(**kw))
    eng.add_query("a red circle bounces off the left wall")
    d = model.config.text_config.hidden_size
    k = args.k

    def lm_step(emb):
        if k == 1:
            eng.process_frame(0.0, emb[0])
        else:
            eng.process_frames([0.0] * k, emb)

    g = torch.Generator().manual_seed(0)
    warm = torch.randn(k, eng.tpf, d, generator=g)
    for _ in range(0, 60, k):  # fill the 2048-token window: every later frame evicts
        lm_step(warm)

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops, self.evict, self.inside = Counter(), Counter(), 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            self.ops[name] += 1
            if self.inside:
                self.evict[name] += 1
            return func(*args, **(kwargs or {}))

    timers = {"evict_wall": 0.0}
    counter: list = [None]

    def wrap(obj, name):
        fn = getattr(obj, name)

        def timed(*a, **kw):
            if counter[0] is not None:
                counter[0].inside += 1
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timers["evict_wall"] += time.perf_counter() - t
                if counter[0] is not None:
                    counter[0].inside -= 1
        setattr(obj, name, timed)

    if new:  # eviction = the book-keeping, the protected-copy refresh and the (rare) ring re-base
        wrap(eng.policy, "_make_room"), wrap(eng.store, "refresh"), wrap(eng.store, "rotate_ring")
    else:
        wrap(eng.policy, "_evict")

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (k, eng.frame_size, eng.frame_size, 3), dtype=np.uint8)
    res = {"vision_wall": [], "vision_cpu": [], "lm_wall": [], "lm_cpu": [], "evict_wall": []}
    for _ in range(max(1, args.frames // k)):
        t, c = time.perf_counter(), time.process_time()
        emb = eng.encode_images(images)
        t2, c2 = time.perf_counter(), time.process_time()
        timers["evict_wall"] = 0.0
        lm_step(emb)
        t3, c3 = time.perf_counter(), time.process_time()
        for key, v in (("vision_wall", t2 - t), ("vision_cpu", c2 - c), ("lm_wall", t3 - t2), ("lm_cpu", c3 - c2),
                       ("evict_wall", timers["evict_wall"])):
            res[key].append(v * 1000 / k)
    counts = []
    for _ in range(args.count_frames):
        vis, lm = Count(), Count()
        with vis:
            emb = eng.encode_images(images)
        counter[0] = lm
        with lm:
            lm_step(emb)
        counter[0] = None
        counts.append({"vision_ops": sum(vis.ops.values()) / k, "lm_ops": sum(lm.ops.values()) / k,
                       "cat": (vis.ops["cat"] + lm.ops["cat"]) / k, "evict_ops": sum(lm.evict.values()) / k,
                       "top_lm_ops": lm.ops.most_common(12)})
    return {"timings_ms_per_frame": res, "counts_per_frame": counts, "cache_len": len(eng.policy),
            "evicted": eng.policy.evicted_total, "revision": (Path(args.src) / ".revision").read_text().strip()
            if (Path(args.src) / ".revision").exists() else _compare.head_revision()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old_rev", default=None, help="git revision of the old engine (e.g. 2d920b5)")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--count_frames", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokenizer", default=str(_compare.REPO.parent / "shared" / "data" / "tokenizers" / "qwen2"))
    ap.add_argument("--out", default="outputs/bench/engine_ops.json")
    # worker mode
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--src", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--lora", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no_merge", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    sys.path.insert(0, str(_compare.REPO))
    from utils.io import atomic_write_json

    names = [c for c in args.configs.split(",") if c]
    trees = {"new": _compare.REPO}
    if any(CONFIGS[n][0] == "old" for n in names):
        if not args.old_rev:
            raise SystemExit("--old_rev is needed for the old configurations")
        trees["old"] = _compare.export_revision(args.old_rev)
    common = ["--frames", str(args.frames), "--count_frames", str(args.count_frames), "--tokenizer", args.tokenizer]
    runs: dict[str, list] = {n: [] for n in names}
    for rep in range(args.reps):  # interleaved: a burst of load hits every configuration alike
        for n in names:
            tree, extra = CONFIGS[n]
            runs[n].append(_compare.run_worker(Path(__file__), trees[tree], common + extra, args.threads))
            print(f"rep {rep} {n} done", flush=True)
    table = {}
    for n, rs in runs.items():
        row = {}
        for key in ("vision_wall", "vision_cpu", "lm_wall", "lm_cpu", "evict_wall"):
            vals = [v for r in rs for v in r["timings_ms_per_frame"][key]]
            row[key] = {"min": min(vals), "median": statistics.median(vals)}
        c = rs[0]["counts_per_frame"]
        for key in ("vision_ops", "lm_ops", "cat", "evict_ops"):
            row[key] = statistics.median(x[key] for x in c)
        row["evict_share_of_lm_step"] = row["evict_wall"]["median"] / row["lm_wall"]["median"]
        row["revision"] = rs[0]["revision"]
        table[n] = row
    print(f"{'config':<24}{'vision ops':>11}{'LM ops':>8}{'cat':>6}{'evict ops':>10}{'LM ms wall min/med':>21}"
          f"{'LM ms cpu min/med':>20}{'evict %':>9}")
    for n, r in table.items():
        print(f"{n:<24}{r['vision_ops']:>11.0f}{r['lm_ops']:>8.0f}{r['cat']:>6.0f}{r['evict_ops']:>10.0f}"
              f"{r['lm_wall']['min']:>10.2f}/{r['lm_wall']['median']:<10.2f}{r['lm_cpu']['min']:>9.2f}/{r['lm_cpu']['median']:<10.2f}"
              f"{100 * r['evict_share_of_lm_step']:>8.1f}")
    atomic_write_json(args.out, {"args": vars(args), "table": table, "runs": runs})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
