"""LoRA on the language model only (peft); projector and heads (and lm_head) fully trained.

r=16, alpha=32, dropout 0.05 on q, k, v, o, gate, up, down of every Qwen2 decoder layer; the SigLIP
tower, embeddings and norms stay frozen. ``train_lm_head`` (default on, as the reference) makes the
full lm_head a trained copy; turning it off shrinks an adapter from ~1 GB (7B, bf16) to ~100 MB.
"""
from __future__ import annotations

from dataclasses import dataclass

LORA_TARGET_REGEX = r".*language_model\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))"
HEAD_MODULES = ["informative_head", "relevance_head", "uncertainty_head"]


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    train_projector: bool = True
    train_lm_head: bool = True

    def modules_to_save(self) -> list[str]:
        mods = list(HEAD_MODULES)
        if self.train_projector:
            mods.append("multi_modal_projector")
        if self.train_lm_head:
            mods.append("lm_head")
        return mods


def lora_config(settings: LoraSettings | None = None):
    from peft import LoraConfig

    settings = settings or LoraSettings()
    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=LORA_TARGET_REGEX,
        modules_to_save=settings.modules_to_save(),
        bias="none",
    )


def apply_lora(model, settings: LoraSettings | None = None):
    """Wrap ``model`` with fresh LoRA adapters; returns the PeftModel (vision tower frozen)."""
    from peft import get_peft_model

    model.model.vision_tower.requires_grad_(False)
    return get_peft_model(model, lora_config(settings))


def trainable_parameter_names(model) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]
