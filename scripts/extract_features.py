#!/usr/bin/env python
"""Pre-extract frame features for a training mixture, benchmark items or one video (data/feature_cache.py).

    python scripts/extract_features.py --dataset_config configs/datasets/aha_config.json --data_root DATA \\
        --cache_dir FEATS --preset aha-7b --weights WEIGHTS --dtype bf16 --device cuda:0 [--shard 0/4]
    python scripts/extract_features.py --items ITEMS.jsonl --video_root DIR --fps 1 --cache_dir FEATS \\
        --checkpoint CKPT [--weights W] [--max_frames N]        # then test.run_benchmark --features FEATS
    python scripts/extract_features.py --video V.mp4 --fps 2 --cache_dir FEATS --checkpoint CKPT
                                                                # then test.live_infer --features FEATS

Benchmark items and single videos: the model is loaded as the online drivers load it
(``models.inference.load_for_inference``: the same --checkpoint / --weights / --preset / --dtype;
an adapter's LoRA merged as their engine merges it, unless --no_merge_lora as theirs),
features are the final frame tokens (``frame_embeds``) and each video's key is the item's
``video`` (relative to --video_root), or the file name for --video, which is what
``test.run_benchmark --features`` / ``test.live_infer --features`` look up at the same --fps.
Each feature file records its video's size, packet count and duration: the drivers refuse the
features of another video under the same key (another --video_root, another folder's file of the
same name), and a re-run here extracts such a key again for the video it now names.

then train with ``--feature_cache FEATS`` (and ``--feature_kind`` as here). The cache folder is
named by a fingerprint of the model's vision tower (and projector for ``frame_embeds``) and
dtype, so train with the same ``--preset/--weights`` and ``--model_dtype`` (a random-init preset
also needs the same ``--seed``; for ``frame_embeds`` the same ``--lora_pretrained``). Every video
of the mixture is decoded once at its dataset's fps (with its degradation schedule) up to the last
frame any item can use. Re-running skips what is cached; ``--shard i/n`` splits the videos over
processes or GPUs.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from utils.log import setup_logging  # noqa: E402

log = logging.getLogger("extract_features")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset_config", help="a training mixture")
    src.add_argument("--items", help="benchmark items JSONL (datasets/convert.py): every item's video")
    src.add_argument("--video", help="one video file (key: its file name)")
    p.add_argument("--video_root", default=None, help="with --items: the folder the items' videos are relative to")
    p.add_argument("--fps", type=float, default=None, help="with --items / --video: the streaming fps")
    p.add_argument("--max_frames", type=int, default=None, help="with --items / --video: at most this many frames")
    p.add_argument("--checkpoint", default=None, help="with --items / --video: the Aha! checkpoint the drivers will load")
    p.add_argument("--data_root", default=os.environ.get("AHA_DATA_ROOT", "."))
    p.add_argument("--cache_dir", required=True)
    p.add_argument("--kind", default=None, choices=["vision", "frame_embeds"],
                   help="default: vision for a mixture, frame_embeds (what the streaming engine takes) for --items / --video")
    p.add_argument("--preset", default=None, help="model preset (default aha-7b for a mixture; for --items / --video "
                                                 "the drivers' rule: the checkpoint's config, else aha-tiny)")
    p.add_argument("--weights", default=None, help="local LLaVA-OneVision weights folder (none: random init)")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: --weights)")
    p.add_argument("--lora_pretrained", default=None, help="adapter checkpoint whose projector to use (frame_embeds)")
    p.add_argument("--no_merge_lora", action="store_true",
                   help="with --items / --video: for drivers run with --no_merge_lora (LoRA kept unmerged)")
    p.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"],
                   help="model dtype; must equal the training run's --model_dtype (bf16 for --bf16 runs); default fp32 for "
                        "a mixture, the drivers' default (fp32 on CPU, bf16 on CUDA) for --items / --video")
    p.add_argument("--seed", type=int, default=None, help="random-init seed (default 42, the Trainer's default --seed, "
                                                        "for a mixture; 0, the drivers' default, for --items / --video)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch_frames", type=int, default=32)
    p.add_argument("--num_workers", type=int, default=2, help="decoding processes")
    p.add_argument("--shard", default="0/1", help="i/n: this process takes every n-th video from the i-th")
    p.add_argument("--overwrite", action="store_true")
    return p.parse_args(argv)


def stream_needs(args) -> list:
    """VideoNeeds of benchmark items or one video: key, path, fps, frames to cache."""
    from data.stream import VideoNeed
    from data.feature_cache import probe_once  # the scan extraction repeats for the source identity
    from data.video import num_sampled_frames

    if args.fps is None or not 0 < args.fps < float("inf"):
        raise SystemExit("--items / --video need --fps (the fps the drivers will stream at)")
    if args.video:
        if not Path(args.video).is_file():
            raise FileNotFoundError(f"--video {args.video}: no such file")
        videos = {Path(args.video).name: Path(args.video)}
    else:
        if not args.video_root:
            raise SystemExit("--items needs --video_root")
        from data.benchmarks.validate import read_jsonl

        videos = {}
        for line, rec in read_jsonl(args.items, "items file"):
            if not rec.get("video"):
                raise SystemExit(f"{args.items}:{line}: item without 'video'")
            videos[str(rec["video"])] = Path(args.video_root) / rec["video"]
    needs = []
    for key, path in videos.items():
        if not path.is_file():
            log.warning("feature extraction: %s is missing; skipped", path)
            continue
        needs.append(VideoNeed(key, path, args.fps, num_sampled_frames(probe_once(path).duration, args.fps, args.max_frames)))
    return needs


def main_streams(args) -> dict:
    """Frame tokens of benchmark items / one video, with the model the online drivers load."""
    from data.feature_cache import FeatureCache, extract_features
    from models.inference import load_for_inference

    if args.kind not in (None, "frame_embeds"):
        raise SystemExit("--items / --video cache the frame tokens the streaming engine takes: use --kind frame_embeds")
    needs = stream_needs(args)  # inputs checked before the model loads
    loaded = load_for_inference(model_config=args.preset, weights=args.weights, checkpoint=args.checkpoint,
                                tokenizer=args.tokenizer, device=args.device, dtype=args.dtype,
                                seed=0 if args.seed is None else args.seed)
    # the model as the drivers' engine runs it (models.streaming.inference_model): an adapter
    # checkpoint's LoRA merged, unless --no_merge_lora as theirs. The fingerprint hashes the projector
    # as it is held, and a peft-wrapped one (original + trained copy) is not the merged one the
    # drivers look for: those features were extracted and then never found by --features
    from models.streaming import inference_model

    model = inference_model(loaded.model, merge_lora=not args.no_merge_lora)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cache = FeatureCache.for_model(args.cache_dir, model, "frame_embeds")
    log.info("caching frame_embeds features in %s", cache.directory)
    stats = extract_features(model, needs, cache, base.config.frame_size, batch_frames=args.batch_frames,
                             device=args.device, num_workers=args.num_workers, overwrite=args.overwrite,
                             shard=args.shard_tuple, progress=True)
    stats["cache"] = str(cache.directory)
    log.info("done: %s", json.dumps(stats))
    return stats


def main(argv=None) -> dict:
    args = parse_args(argv)
    setup_logging()
    # parsed for every source: --items with --shard i/n used to extract every video in each process
    try:
        args.shard_tuple = tuple(int(x) for x in args.shard.split("/"))
        assert len(args.shard_tuple) == 2
    except (ValueError, AssertionError):
        raise SystemExit(f"--shard must look like i/n, got {args.shard!r}") from None
    if not 0 <= args.shard_tuple[0] < args.shard_tuple[1]:
        raise SystemExit(f"--shard i/n needs 0 <= i < n, got {args.shard!r}")
    # before the model is built (these were found after it, --max_frames 0 not at all: nothing cached, exit 0)
    from utils.cli import check_number

    for flag, kw in (("fps", {"above": 0}), ("max_frames", {"minimum": 1, "integer": True}),
                     ("batch_frames", {"minimum": 1, "integer": True}), ("num_workers", {"minimum": 0, "integer": True})):
        check_number(getattr(args, flag), f"--{flag}", **kw)
    if args.items or args.video:
        return main_streams(args)
    args.kind = args.kind or "vision"
    args.preset = args.preset or "aha-7b"
    args.seed = 42 if args.seed is None else args.seed
    import torch

    from data.feature_cache import FeatureCache, extract_features
    from data.mixture import build_mixture
    from models.build import build_model
    from models.chat import ChatTemplate, load_tokenizer
    from models.checkpoint import load_checkpoint

    # the mixture and its annotations are checked before the model is built
    build_mixture(args.dataset_config, args.data_root, None)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype or "fp32"]
    if args.lora_pretrained:
        model = load_checkpoint(args.lora_pretrained, weights=args.weights, dtype=dtype)
    else:
        if args.kind == "frame_embeds":
            log.warning("frame_embeds without --lora_pretrained: the projector is the base model's")
        model = build_model(args.preset, weights=args.weights, dtype=dtype, seed=args.seed)
    model.to(args.device)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    tok_path = args.tokenizer or args.weights
    if tok_path is None:
        raise SystemExit("give --tokenizer (or --weights holding a tokenizer)")
    template = ChatTemplate(load_tokenizer(tok_path), base.config.tokens_per_frame, base.config.frame_placeholder)
    mixture = build_mixture(args.dataset_config, args.data_root, template, frame_size=base.config.frame_size)
    cache = FeatureCache.for_model(args.cache_dir, model, args.kind)
    log.info("caching %s features in %s", args.kind, cache.directory)
    stats = extract_features(model, mixture.frame_needs(), cache, base.config.frame_size, batch_frames=args.batch_frames,
                             device=args.device, num_workers=args.num_workers, overwrite=args.overwrite, shard=args.shard_tuple,
                             progress=True)
    stats["cache"] = str(cache.directory)
    log.info("done: %s", json.dumps(stats))
    return stats


if __name__ == "__main__":
    import sys

    from utils.cli import entry

    sys.exit(entry("extract_features", main))  # the error contract: instructions/errors.md
