#!/usr/bin/env python
"""Pre-extract frame features for a training mixture (data/feature_cache.py).

    python scripts/extract_features.py --dataset_config configs/datasets/aha_config.json --data_root DATA \\
        --cache_dir FEATS --preset aha-7b --weights WEIGHTS --dtype bf16 --device cuda:0 [--shard 0/4]

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
    p.add_argument("--dataset_config", required=True)
    p.add_argument("--data_root", default=os.environ.get("AHA_DATA_ROOT", "."))
    p.add_argument("--cache_dir", required=True)
    p.add_argument("--kind", default="vision", choices=["vision", "frame_embeds"])
    p.add_argument("--preset", default="aha-7b")
    p.add_argument("--weights", default=None, help="local LLaVA-OneVision weights folder (none: random init)")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: --weights)")
    p.add_argument("--lora_pretrained", default=None, help="adapter checkpoint whose projector to use (frame_embeds)")
    p.add_argument("--dtype", default="fp32", choices=["bf16", "fp16", "fp32"],
                   help="model dtype; must equal the training run's --model_dtype (bf16 for --bf16 runs)")
    p.add_argument("--seed", type=int, default=42, help="random-init seed (the Trainer's default --seed is 42)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch_frames", type=int, default=32)
    p.add_argument("--num_workers", type=int, default=2, help="decoding processes")
    p.add_argument("--shard", default="0/1", help="i/n: this process takes every n-th video from the i-th")
    p.add_argument("--overwrite", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    setup_logging()
    import torch

    from data.feature_cache import FeatureCache, extract_features
    from data.mixture import build_mixture
    from models.build import build_model
    from models.chat import ChatTemplate, load_tokenizer
    from models.checkpoint import load_checkpoint

    try:
        shard = tuple(int(x) for x in args.shard.split("/"))
        assert len(shard) == 2
    except (ValueError, AssertionError):
        raise SystemExit(f"--shard must look like i/n, got {args.shard!r}") from None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
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
                             device=args.device, num_workers=args.num_workers, overwrite=args.overwrite, shard=shard,
                             progress=True)
    stats["cache"] = str(cache.directory)
    log.info("done: %s", json.dumps(stats))
    return stats


if __name__ == "__main__":
    main()
