"""Weight folders written the way they are published, for loader tests.

The key names are written out by hand from the published checkpoints (hub llava-hf files,
lmms-lab / LLaVA-NeXT files, the reference's full Aha! model), independently of models/weights.py,
and the files are written with safetensors directly (never save_pretrained, which would only test
that the project reads what transformers writes).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

HEADS = ("informative_head.weight", "relevance_head.weight", "uncertainty_head.weight")


def _ours(model) -> dict[str, torch.Tensor]:
    """The model's tensors under its own (transformers 5) names, tied duplicates left out."""
    seen, out = set(), {}
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            continue
        seen.add(id(p))
        out[name] = p.detach().clone().contiguous()
    return out


def llava_hf_hub_name(k: str) -> str:
    """Our name -> the name in the llava-hf hub files (llava-onevision-qwen2-*-ov-hf)."""
    if k == "lm_head.weight":
        return "language_model.lm_head.weight"
    if k.startswith("model.language_model."):
        return "language_model.model." + k[len("model.language_model."):]
    if k.startswith("model.vision_tower."):
        return "vision_tower.vision_model." + k[len("model.vision_tower."):]
    if k.startswith("model.multi_modal_projector."):
        return k[len("model."):]
    if k == "model.image_newline":
        return "image_newline"
    return k


def lmms_lab_name(k: str) -> str:
    """Our name -> the name in lmms-lab / LLaVA-NeXT files (and the reference's full model)."""
    if k.startswith("model.language_model."):
        return "model." + k[len("model.language_model."):]
    if k.startswith("model.vision_tower."):
        return "model.vision_tower.vision_tower.vision_model." + k[len("model.vision_tower."):]
    if k.startswith("model.multi_modal_projector.linear_1."):
        return "model.mm_projector.0." + k[len("model.multi_modal_projector.linear_1."):]
    if k.startswith("model.multi_modal_projector.linear_2."):
        return "model.mm_projector.2." + k[len("model.multi_modal_projector.linear_2."):]
    return k  # lm_head.weight, model.image_newline, the heads


def _write_shards(state: dict[str, torch.Tensor], d: Path, shards: int) -> None:
    d.mkdir(parents=True, exist_ok=True)
    keys = sorted(state)
    if shards == 1:
        save_file(state, str(d / "model.safetensors"), metadata={"format": "pt"})
        return
    weight_map = {}
    per = -(-len(keys) // shards)
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: state[k] for k in keys[i * per:(i + 1) * per]}
        save_file(part, str(d / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def hub_vocab(vocab: int) -> int:
    """The vocab of a llava-hf hub folder converted from an lmms-lab model of ``vocab`` rows:
    transformers' convert_llava_onevision_weights_to_hf.py (4.45, lines 170-186) resizes to vocab + 2
    padded to a multiple of 64 (152064 -> 152128 for 7b-ov-hf, 151936 -> 152000 for 0.5b-ov-hf) and
    fills the new rows with random samples."""
    return -(-(vocab + 2) // 64) * 64


def write_llava_hf(model, d: Path, legacy: bool = True, shards: int = 2, dtype: torch.dtype | None = None,
                   padded_vocab: bool | None = None) -> dict[str, torch.Tensor]:
    """A llava-hf backbone folder (no heads): hub names when ``legacy``, else current names.
    ``padded_vocab`` (default: as the hub files, i.e. when ``legacy``) writes embed_tokens and lm_head
    with the conversion's random padding rows (``hub_vocab``) and that vocab in config.json.
    Returns the file's tensors by file name."""
    padded_vocab = legacy if padded_vocab is None else padded_vocab
    cfg = model.config
    vocab = cfg.text_config.vocab_size
    rows = hub_vocab(vocab) - vocab if padded_vocab else 0
    g = torch.Generator().manual_seed(11)
    state = {}
    for k, v in _ours(model).items():
        if k in HEADS:
            continue
        if rows and k in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
            v = torch.cat([v, torch.randn(rows, v.shape[1], generator=g).to(v.dtype)])
        state[llava_hf_hub_name(k) if legacy else k] = v if dtype is None else v.to(dtype)
    _write_shards(state, d, shards)
    (d / "config.json").write_text(json.dumps({
        "architectures": ["LlavaOnevisionForConditionalGeneration"], "model_type": "llava_onevision",
        "image_token_index": cfg.image_token_index, "projector_hidden_act": "gelu",
        "vision_feature_layer": -1, "vision_feature_select_strategy": "full", "vision_aspect_ratio": "anyres_max_9",
        "use_image_newline_parameter": True, "tie_word_embeddings": cfg.tie_word_embeddings, "torch_dtype": "bfloat16",
        "transformers_version": "4.45.0.dev0",
        "text_config": {**{k: getattr(cfg.text_config, k) for k in (
            "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings")}, "vocab_size": vocab + rows,
            "rope_theta": cfg.text_config.rope_parameters["rope_theta"],
            "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "torch_dtype": "bfloat16"},
        "vision_config": {**{k: getattr(cfg.vision_config, k) for k in (
            "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size")},
            "model_type": "siglip_vision_model", "vision_use_head": False},
    }))
    return state


def write_lmms_lab(model, d: Path, tower: str, heads: bool = False, duplicate_tower: bool = False,
                   extra_siglip_layer: bool = False, shards: int = 2) -> dict[str, torch.Tensor]:
    """An lmms-lab (LLaVA-NeXT) folder; ``heads`` + ``duplicate_tower`` make it the reference's full
    Aha! model. ``extra_siglip_layer`` adds the tower's last layer, which OV does not use."""
    state = {}
    for k, v in _ours(model).items():
        if k in HEADS and not heads:
            continue
        state[lmms_lab_name(k)] = v
    if duplicate_tower:
        for k, v in list(state.items()):
            if k.startswith("model.vision_tower.vision_tower."):
                state["vision_encoder." + k[len("model.vision_tower.vision_tower."):]] = v.clone()
    if extra_siglip_layer:
        n = model.config.vision_config.num_hidden_layers
        pre = "model.vision_tower.vision_tower.vision_model.encoder.layers."
        for k, v in list(state.items()):
            if k.startswith(pre + "0."):
                state[pre + f"{n}." + k[len(pre + "0."):]] = torch.randn_like(v)
    _write_shards(state, d, shards)
    tc = model.config.text_config
    (d / "config.json").write_text(json.dumps({
        "architectures": ["LlavaQwenForCausalLM"], "model_type": "llava", "mm_vision_tower": tower,
        "mm_projector_type": "mlp2x_gelu", "mm_spatial_pool_mode": "bilinear", "image_aspect_ratio": "anyres_max_9",
        "hidden_size": tc.hidden_size, "intermediate_size": tc.intermediate_size, "num_hidden_layers": tc.num_hidden_layers,
        "num_attention_heads": tc.num_attention_heads, "num_key_value_heads": tc.num_key_value_heads,
        "vocab_size": tc.vocab_size, "rope_theta": tc.rope_parameters["rope_theta"], "rms_norm_eps": tc.rms_norm_eps,
        "max_position_embeddings": tc.max_position_embeddings, "tie_word_embeddings": model.config.tie_word_embeddings,
        "hidden_act": "silu", "torch_dtype": "bfloat16",
    }))
    return state
