"""Saving and loading Aha! checkpoints (safetensors only; nothing is ever unpickled).

An adapter checkpoint folder holds:
- ``adapter_model.safetensors`` + ``adapter_config.json``: peft's own format (LoRA + trained modules);
- ``aha_model.json``: the full model config (backbone dims and Aha fields) and where the base
  weights come from (a local weights folder, or ``base_model.safetensors`` beside it when the base
  was randomly initialised, as for aha-tiny, so that a reload is exact).
``merge_and_save`` writes merged full weights that ``AhaForStreaming.from_pretrained`` reads.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from models.aha import AhaForStreaming
from models.build import build_model
from models.config import AhaConfig
from utils.io import atomic_write_json

META = "aha_model.json"
BASE = "base_model.safetensors"


def _unwrap(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def save_checkpoint(model, out_dir: str | Path, weights: str | Path | None = None, save_base: bool | None = None) -> Path:
    """Save a (peft-wrapped) model. ``weights``: the local backbone folder it was built from, if any."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = _unwrap(model)
    is_peft = hasattr(model, "peft_config")
    if save_base is None:
        save_base = weights is None
    if is_peft:
        model.save_pretrained(str(out), safe_serialization=True)
        if save_base:
            # the frozen base, without adapter layers (peft names carry .base_layer / modules_to_save)
            save_file(_plain_state_dict(base), str(out / BASE))
    else:
        base.save_pretrained(str(out), safe_serialization=True)
    atomic_write_json(
        out / META,
        {
            "config": base.config.to_dict(),
            "weights": None if weights is None else str(weights),
            "base_saved": bool(save_base and is_peft),
            "kind": "adapter" if is_peft else "full",
        },
    )
    return out


def _plain_state_dict(base) -> dict[str, torch.Tensor]:
    """Base-model tensors under their original names (strip peft's wrapper infixes, drop adapters)."""
    out = {}
    for k, v in base.state_dict().items():
        if "lora_" in k or ".modules_to_save." in k:
            continue
        k = k.replace(".base_layer.", ".").replace(".original_module.", ".")
        out[k] = v.detach().contiguous().clone()
    return out


def load_checkpoint(ckpt_dir: str | Path, weights: str | Path | None = None, is_trainable: bool = False,
                    dtype=None, device=None, attn_implementation: str | None = None):
    """Rebuild the model a checkpoint was saved from. Returns a PeftModel or an AhaForStreaming."""
    from peft import PeftModel
    from safetensors.torch import load_file

    ckpt = Path(ckpt_dir)
    meta_file = ckpt / META
    if not meta_file.is_file():
        raise FileNotFoundError(f"{ckpt} has no {META}: not an Aha! checkpoint (convert released adapters first)")
    meta = json.loads(meta_file.read_text())
    cfg = AhaConfig.from_dict(meta["config"])
    if meta["kind"] == "full":
        return AhaForStreaming.from_pretrained(str(ckpt), dtype=dtype or "auto", local_files_only=True,
                                               attn_implementation=attn_implementation or "sdpa").to(device or "cpu")
    weights = weights or meta.get("weights")
    if meta.get("base_saved"):
        base = build_model(cfg, dtype=None, attn_implementation=attn_implementation)
        missing, unexpected = base.load_state_dict(load_file(str(ckpt / BASE)), strict=False)
        if unexpected or missing:
            raise ValueError(f"{ckpt / BASE} does not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    elif weights is not None:
        base = build_model(cfg, weights=weights, attn_implementation=attn_implementation)
    else:
        raise ValueError(f"{ckpt} is an adapter for a base that was not saved: pass weights=<local backbone folder>")
    if dtype is not None:
        base = base.to(dtype)
    model = PeftModel.from_pretrained(base, str(ckpt), is_trainable=is_trainable)
    if not is_trainable:
        model.requires_grad_(False)
    return model.to(device) if device is not None else model


def merge_and_save(peft_model, out_dir: str | Path) -> Path:
    """Fold LoRA into the base weights and write a plain full checkpoint (safetensors)."""
    merged = peft_model.merge_and_unload()
    out = save_checkpoint(merged, out_dir)
    return out
