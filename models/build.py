"""Build an Aha! model from a preset, optionally with real backbone weights from a local folder.

Two on-disk layouts of LLaVA-OneVision are understood:
- llava-hf (``model_type: llava_onevision``; keys ``language_model.model.*``, ``vision_tower.*``,
  ``multi_modal_projector.linear_{1,2}.*``): loaded with transformers' own ``from_pretrained``;
- lmms-lab original (``model_type: llava`` / ``llava_qwen``, ``mm_vision_tower`` set; keys
  ``model.layers.*``, ``model.mm_projector.{0,2}.*``, ``model.vision_tower.vision_tower.vision_model.*``):
  keys are renamed here and SigLIP's last layer (unused by OV) is dropped.
Nothing is downloaded: the weights folder must exist locally (HF_HUB_OFFLINE is respected anyway).
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch

from models.aha import AhaForStreaming
from models.config import AhaConfig
from utils.paths import REPO_ROOT

log = logging.getLogger(__name__)
PRESET_DIR = REPO_ROOT / "configs" / "model"
AHA_FIELDS = ("frame_pool_stride", "frame_pool_mode", "frame_pool_ceil", "frame_placeholder", "head_stop_grad", "logvar_min", "logvar_max",
              "loss_weights", "loss_protocol", "system_prompt")


def preset_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".json" and p.is_file():
        return p
    cand = PRESET_DIR / f"{name_or_path}.json"
    if cand.is_file():
        return cand
    known = sorted(x.stem for x in PRESET_DIR.glob("*.json"))
    raise FileNotFoundError(f"no model preset {name_or_path!r}; known presets: {known} (or a path to a .json)")


def load_preset(name_or_path: str | Path, **overrides) -> AhaConfig:
    spec = json.loads(preset_path(name_or_path).read_text())
    kwargs = dict(spec["config"])
    kwargs.update(overrides)
    return AhaConfig(**kwargs)


# room for one text turn (a templated query or a short response) beside the frames: one forward
# must fit the cache window whole
WINDOW_TEXT_TOKENS = 32


def train_window_tokens(name_or_path: str | Path) -> int | None:
    """Cache window (recent tokens) matching the clips a preset was trained on: its top-level
    ``train_window_frames`` times its tokens per frame, plus WINDOW_TEXT_TOKENS; None when the
    preset does not say."""
    frames = json.loads(preset_path(name_or_path).read_text()).get("train_window_frames")
    if frames is None:
        return None
    return int(frames) * load_preset(name_or_path).tokens_per_frame + WINDOW_TEXT_TOKENS


def detect_layout(weights_dir: str | Path) -> str:
    cfg_file = Path(weights_dir) / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{weights_dir} has no config.json: not a model folder")
    cfg = json.loads(cfg_file.read_text())
    if cfg.get("model_type") == "llava_onevision":
        return "llava-hf"
    if "mm_vision_tower" in cfg or cfg.get("model_type") in ("llava", "llava_qwen"):
        return "lmms-lab"
    raise ValueError(f"{weights_dir}: unrecognised model_type {cfg.get('model_type')!r} (want llava-hf or lmms-lab LLaVA-OneVision)")


def config_from_weights(weights_dir: str | Path, preset: AhaConfig) -> AhaConfig:
    """The checkpoint's backbone dimensions plus the preset's Aha fields."""
    aha = {k: getattr(preset, k) for k in AHA_FIELDS}
    layout = detect_layout(weights_dir)
    raw = json.loads((Path(weights_dir) / "config.json").read_text())
    if layout == "llava-hf":
        raw = {k: v for k, v in raw.items() if k not in ("architectures", "transformers_version", "torch_dtype", "dtype")}
        return AhaConfig(**{**raw, **aha})
    # lmms-lab: Qwen2 fields at the top level, SigLIP given only by name (so400m/14 at 384)
    text_keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                 "vocab_size", "max_position_embeddings", "rope_theta", "rms_norm_eps", "tie_word_embeddings", "hidden_act")
    text = {"model_type": "qwen2", **{k: raw[k] for k in text_keys if k in raw}}
    vision = preset.vision_config.to_dict()
    return AhaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=preset.image_token_index,
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        **aha,
    )


_LMMS_RULES = [
    (r"^model\.vision_tower\.vision_tower\.vision_model\.", "model.vision_tower."),
    (r"^model\.mm_projector\.0\.", "model.multi_modal_projector.linear_1."),
    (r"^model\.mm_projector\.2\.", "model.multi_modal_projector.linear_2."),
    (r"^model\.image_newline$", "model.image_newline"),
    (r"^model\.(embed_tokens|layers|norm)\b", r"model.language_model.\1"),
    (r"^lm_head\.", "lm_head."),
]


def rename_lmms_lab_key(key: str, n_vision_layers: int) -> str | None:
    """lmms-lab key -> our key; None for keys OV does not use (extra SigLIP layers, head, duplicates)."""
    if key.startswith("vision_encoder.") or ".vision_model.head." in key:
        return None  # the reference's duplicate tower / SigLIP pooling head
    m = re.search(r"vision_model\.encoder\.layers\.(\d+)\.", key)
    if m and int(m.group(1)) >= n_vision_layers:
        return None
    for pat, rep in _LMMS_RULES:
        if re.search(pat, key):
            return re.sub(pat, rep, key)
    return None


def _load_safetensors_dir(d: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(d.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{d}: no .safetensors files (pickled checkpoints are not loaded)")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def build_model(
    preset: str | Path | AhaConfig = "aha-tiny",
    weights: str | Path | None = None,
    dtype: torch.dtype | str | None = None,
    attn_implementation: str | None = None,
    device: str | torch.device | None = None,
    load_in_4bit: bool = False,
    seed: int | None = None,
) -> AhaForStreaming:
    """A ready model. ``attn_implementation``: sdpa (default), flash_attention_2 if installed, eager."""
    cfg = preset if isinstance(preset, AhaConfig) else load_preset(preset)
    attn = attn_implementation or "sdpa"
    if attn == "flash_attention_2":
        try:
            import flash_attn  # noqa: F401
        except ImportError as e:
            raise ImportError("attn_implementation=flash_attention_2 needs the optional flash-attn package") from e
    if isinstance(dtype, str):
        dtype = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
                 "fp32": torch.float32, "float32": torch.float32}[dtype]
    if weights is None:
        if load_in_4bit:
            raise ValueError("load_in_4bit needs real weights (--weights)")
        if seed is not None:
            torch.manual_seed(seed)
        cfg._attn_implementation = attn
        model = AhaForStreaming(cfg)
        if dtype is not None:
            model = model.to(dtype)
    else:
        weights = Path(weights)
        full_cfg = config_from_weights(weights, cfg)
        layout = detect_layout(weights)
        quant = _bnb_config() if load_in_4bit else None
        if layout == "llava-hf":
            model = AhaForStreaming.from_pretrained(
                str(weights), config=full_cfg, dtype=dtype or "auto", attn_implementation=attn,
                quantization_config=quant, local_files_only=True,
            )
        else:
            if quant is not None:
                raise ValueError("4-bit loading is supported for the llava-hf layout; convert lmms-lab weights first")
            full_cfg._attn_implementation = attn
            model = AhaForStreaming(full_cfg)
            n_vis = full_cfg.vision_config.num_hidden_layers
            state = {}
            for k, v in _load_safetensors_dir(weights).items():
                nk = rename_lmms_lab_key(k, n_vis)
                if nk is not None:
                    state[nk] = v
            missing, unexpected = model.load_state_dict(state, strict=False)
            missing = [k for k in missing if not re.search(r"(informative|relevance|uncertainty)_head", k)]
            if missing or unexpected:
                raise ValueError(f"lmms-lab weights do not fit: missing {missing[:8]}..., unexpected {unexpected[:8]}...")
            if dtype is not None:
                model = model.to(dtype)
    if device is not None and not load_in_4bit:
        model = model.to(device)
    return model


def _bnb_config():
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as e:
        raise ImportError("load_in_4bit needs the optional bitsandbytes package (and a CUDA GPU)") from e
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        llm_int8_skip_modules=["multi_modal_projector", "lm_head", "informative_head", "relevance_head", "uncertainty_head", "vision_tower"],
    )
