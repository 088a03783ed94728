"""Load a model and tokenizer for inference from the usual command-line arguments."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from models.build import build_model
from models.chat import load_tokenizer
from models.checkpoint import META, load_checkpoint

log = logging.getLogger(__name__)


def _has_tokenizer(d: Path) -> bool:
    return (d / "tokenizer.json").is_file() or (d / "tokenizer_config.json").is_file()


def resolve_tokenizer_dir(tokenizer: str | None, checkpoint: str | None, weights: str | None) -> str:
    for cand in (tokenizer, checkpoint, weights):
        if cand and Path(cand).is_dir() and _has_tokenizer(Path(cand)):
            return str(cand)
    from utils.paths import shared_data_dir

    shared = shared_data_dir()
    if shared is not None and _has_tokenizer(shared / "tokenizers" / "qwen2"):
        return str(shared / "tokenizers" / "qwen2")
    raise FileNotFoundError("no tokenizer found: pass --tokenizer (a folder with tokenizer.json), or a checkpoint/weights folder holding one")


def load_for_inference(model_config: str = "aha-tiny", weights: str | None = None, checkpoint: str | None = None,
                       tokenizer: str | None = None, device: str = "cpu", dtype: str | None = None,
                       attn_implementation: str | None = None, seed: int = 0):
    """(model, tokenizer). ``checkpoint``: a folder written by models.checkpoint (adapter or full).

    Without a checkpoint the heads are randomly initialised: that is said loudly (the reference
    only warned and carried on).
    """
    tok = load_tokenizer(resolve_tokenizer_dir(tokenizer, checkpoint, weights))
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, None: None}[dtype]
    if checkpoint:
        if not (Path(checkpoint) / META).is_file():
            raise FileNotFoundError(f"{checkpoint} is not an Aha! checkpoint (no {META}); convert released adapters with models.convert")
        model = load_checkpoint(checkpoint, weights=weights, dtype=dt, device=device, attn_implementation=attn_implementation)
    else:
        log.warning("no --checkpoint: the Aha! heads are untrained (random); scores are meaningless")
        model = build_model(model_config, weights=weights, dtype=dt, attn_implementation=attn_implementation, device=device, seed=seed)
    model.eval()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if len(tok) > base.config.text_config.vocab_size and base.config.frame_placeholder_id >= base.config.text_config.vocab_size:
        log.info("tokenizer has %d ids, model vocabulary %d: the placeholder is never embedded", len(tok), base.config.text_config.vocab_size)
    return model, tok
