"""Load a model and tokenizer for inference from the usual command-line arguments.

What was asked (a preset, a weights folder, a checkpoint) and what was loaded (the checkpoint's own
config, content hashes, dtype and device, the load report) are both recorded: a run record must
name the model that produced it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from models.build import build_model, load_preset, resolve_dtype
from models.chat import load_tokenizer
from models.checkpoint import META, content_hash_of, inference_settings, is_released_adapter, load_checkpoint
from models.inference_settings import InferenceSettings

log = logging.getLogger(__name__)
DEFAULT_PRESET = "aha-tiny"


def _has_tokenizer(d: Path) -> bool:
    return (d / "tokenizer.json").is_file() or (d / "tokenizer_config.json").is_file()


def resolve_tokenizer_dir(tokenizer: str | None, checkpoint: str | None, weights: str | None) -> str:
    if tokenizer is not None:  # asked for by name: that one or an error, never a silent fallback
        if not (Path(tokenizer).is_dir() and _has_tokenizer(Path(tokenizer))):
            raise FileNotFoundError(f"--tokenizer {tokenizer}: not a folder holding tokenizer.json / tokenizer_config.json")
        return str(tokenizer)
    for cand in (checkpoint, weights):
        if cand and Path(cand).is_dir() and _has_tokenizer(Path(cand)):
            return str(cand)
    from utils.paths import shared_data_dir

    shared = shared_data_dir()
    if shared is not None and _has_tokenizer(shared / "tokenizers" / "qwen2"):
        return str(shared / "tokenizers" / "qwen2")
    raise FileNotFoundError("no tokenizer found: pass --tokenizer (a folder with tokenizer.json), or a checkpoint/weights folder holding one")


def check_device(device: str) -> torch.device:
    """A device that exists here (checked before any model is loaded)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"--device {device!r}: not a device name ({e})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type not in ("cpu", "mps"):
        raise ValueError(f"--device {device}: use cpu or cuda[:N]")
    return dev


@dataclass
class LoadedModel:
    """The model, its tokenizer, the inference settings its checkpoint carries, and the record of
    what was loaded. Unpacks as ``model, tokenizer = load_for_inference(...)``."""

    model: object
    tokenizer: object
    settings: InferenceSettings | None
    record: dict = field(default_factory=dict)

    def __iter__(self):
        return iter((self.model, self.tokenizer))


def load_for_inference(model_config: str | None = None, weights: str | None = None, checkpoint: str | None = None,
                       tokenizer: str | None = None, device: str = "cpu", dtype: str | None = None,
                       attn_implementation: str | None = None, seed: int = 0, heads: str | None = None,
                       load_in_4bit: bool = False, hash_weights: bool = True) -> LoadedModel:
    """``checkpoint``: a folder written by models.checkpoint (adapter or full) or a released adapter.
    ``model_config``: with a checkpoint, it must agree with the checkpoint's config (or be left out);
    without one, the preset (default aha-tiny). ``dtype`` None: fp32 on CPU, bf16 on CUDA.

    Without a checkpoint the heads are untrained: that is said loudly (the reference only warned).
    """
    dev = check_device(device)
    dt = resolve_dtype(dtype, dev)
    if load_in_4bit:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ValueError("--load_in_4bit needs the optional bitsandbytes package (pip install bitsandbytes) and a CUDA GPU") from None
        if dev.type != "cuda":
            raise ValueError("--load_in_4bit needs a CUDA device (--device cuda)")
    if model_config is not None:
        load_preset(model_config)  # a typo is an error, whatever else is given
    tok_dir = resolve_tokenizer_dir(tokenizer, checkpoint, weights)
    tok = load_tokenizer(tok_dir)
    settings = None
    if checkpoint:
        ck = Path(checkpoint)
        if not ck.is_dir() or not ((ck / META).is_file() or is_released_adapter(ck)):
            raise FileNotFoundError(f"{checkpoint} is not an Aha! checkpoint (no {META}) nor a released adapter "
                                    "(adapter_config.json + adapter_model.safetensors)")
        model = load_checkpoint(ck, weights=weights, dtype=dt, device=dev, attn_implementation=attn_implementation,
                                preset=model_config, load_in_4bit=load_in_4bit, heads=heads)
        settings = inference_settings(ck)
    else:
        log.warning("no --checkpoint: the Aha! heads are untrained; scores are meaningless")
        preset = model_config if model_config is not None else (None if weights is not None else DEFAULT_PRESET)
        model = build_model(preset, weights=weights, dtype=dt, attn_implementation=attn_implementation, device=dev, seed=seed,
                            heads=heads, load_in_4bit=load_in_4bit)
    model.eval()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if settings is not None and settings.tokens_per_frame not in (None, base.config.tokens_per_frame):
        raise ValueError(f"{checkpoint} says {settings.tokens_per_frame} tokens per frame, its model makes {base.config.tokens_per_frame}")
    if len(tok) > base.config.text_config.vocab_size and base.config.frame_placeholder_id >= base.config.text_config.vocab_size:
        log.info("tokenizer has %d ids, model vocabulary %d: the placeholder is never embedded", len(tok), base.config.text_config.vocab_size)
    record = {
        "model_config": model_config,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "checkpoint_sha256": None if checkpoint is None else content_hash_of(checkpoint),
        "weights": None if weights is None else str(weights),
        "weights_sha256": content_hash_of(weights) if weights is not None and hash_weights else None,
        "heads_file": heads,
        "tokenizer": tok_dir,
        "config": {"text": _sizes(base.config.text_config), "vision": _sizes(base.config.vision_config),
                   "tokens_per_frame": base.config.tokens_per_frame},
        "dtype": str(dt).replace("torch.", ""),
        "dtype_source": "flag" if dtype is not None else f"default for {dev.type}",
        "device": str(dev),
        "attn": attn_implementation or "sdpa",
        "load": base.load_report.to_dict() if hasattr(base, "load_report") else None,
    }
    return LoadedModel(model, tok, settings, record)


def _sizes(cfg) -> dict:
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size", "image_size", "patch_size")
    return {k: getattr(cfg, k) for k in keys if hasattr(cfg, k)}
