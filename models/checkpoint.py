"""Saving and loading Aha! checkpoints (safetensors only; nothing is ever unpickled).

A checkpoint folder holds ``aha_model.json``: the full model config (backbone sizes and Aha
fields), where the base weights come from, its kind, and the inference settings the model is
meant to be streamed with (``models.inference_settings``). Besides it:
- adapter checkpoints: ``adapter_model.safetensors`` + ``adapter_config.json`` (peft's format: LoRA
  and the fully trained modules), plus ``base_model.safetensors`` when the base was randomly
  initialised (aha-tiny), so that a reload is exact;
- full checkpoints: the model's own safetensors and config.json (a llava-hf layout with heads).
The released Aha! adapter (LLaVA-NeXT key names, no ``aha_model.json``) loads directly too,
converted in memory (``models.convert`` writes the same conversion to disk).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from models.build import FRAME_FIELDS, build_model, frame_setting_differences, load_preset
from models.config import AhaConfig
from models.inference_settings import InferenceSettings
from models.weights import size_disagreements
from utils.io import atomic_write_json, read_json

META = "aha_model.json"
BASE = "base_model.safetensors"


def _unwrap(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def save_checkpoint(model, out_dir: str | Path, weights: str | Path | None = None, save_base: bool | None = None,
                    inference: InferenceSettings | None = None) -> Path:
    """Save a (peft-wrapped) model. ``weights``: the local backbone folder it was built from, if any;
    ``inference``: the settings it is meant to be streamed with (tokens per frame filled in here)."""
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
    atomic_write_json(out / META, checkpoint_meta(base, weights, "adapter" if is_peft else "full",
                                                  base_saved=bool(save_base and is_peft), inference=inference))
    return out


def checkpoint_meta(base, weights, kind: str, base_saved: bool = False, inference: InferenceSettings | None = None,
                    **extra) -> dict:
    inf = inference or InferenceSettings()
    inf = InferenceSettings(**{**inf.to_dict(), "tokens_per_frame": base.config.tokens_per_frame})
    return {"config": base.config.to_dict(), "weights": None if weights is None else str(weights), "base_saved": base_saved,
            "kind": kind, "inference": inf.to_dict(), **extra}


def _plain_state_dict(base) -> dict[str, torch.Tensor]:
    """Base-model tensors under their original names (strip peft's wrapper infixes, drop adapters)."""
    out = {}
    for k, v in base.state_dict().items():
        if "lora_" in k or ".modules_to_save." in k:
            continue
        k = k.replace(".base_layer.", ".").replace(".original_module.", ".")
        out[k] = v.detach().contiguous().clone()
    return out


KINDS = ("full", "adapter")


def read_meta(ckpt_dir: str | Path) -> dict:
    """``aha_model.json``, its layout checked: a damaged or hand-edited file is a ValueError naming it
    (not a KeyError or a TypeError once the model is half built)."""
    meta_file = Path(ckpt_dir) / META
    if not meta_file.is_file():
        raise FileNotFoundError(f"{ckpt_dir} has no {META}: not an Aha! checkpoint")
    meta = read_json(meta_file)
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_file}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("kind") not in KINDS:
        raise ValueError(f"{meta_file}: 'kind' must be one of {KINDS}, got {meta.get('kind')!r}")
    if meta.get("inference") is not None and not isinstance(meta["inference"], dict):
        raise ValueError(f"{meta_file}: 'inference' must be a JSON object, got {meta['inference']!r:.60}")
    if meta.get("weights") is not None and not isinstance(meta["weights"], str):
        raise ValueError(f"{meta_file}: 'weights' must be a path or null, got {meta['weights']!r:.60}")
    if not isinstance(meta.get("base_saved", False), bool):
        raise ValueError(f"{meta_file}: 'base_saved' must be true or false, got {meta['base_saved']!r}")
    return meta


def config_of(ckpt_dir: str | Path, meta: dict | None = None) -> AhaConfig:
    """The model config a checkpoint holds; a bad value (a wrong type, an out-of-range number) is a
    ValueError naming the file."""
    meta = read_meta(ckpt_dir) if meta is None else meta
    if not isinstance(meta.get("config"), dict):
        raise ValueError(f"{Path(ckpt_dir) / META}: 'config' must be the model config (a JSON object), "
                         f"got {meta.get('config')!r:.60}")
    try:
        return AhaConfig.from_dict(meta["config"])
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ValueError(f"{Path(ckpt_dir) / META}: config: {type(e).__name__}: {e}") from None


def inference_settings(ckpt_dir: str | Path) -> InferenceSettings | None:
    """The settings a checkpoint carries (None for older checkpoints and released adapters)."""
    if not (Path(ckpt_dir) / META).is_file():
        return None
    d = read_meta(ckpt_dir).get("inference")
    if d is None:
        return None
    try:
        return InferenceSettings.from_dict(d)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{Path(ckpt_dir) / META}: {e}") from None


def is_released_adapter(ckpt_dir: str | Path) -> bool:
    d = Path(ckpt_dir)
    return not (d / META).is_file() and (d / "adapter_config.json").is_file() and (d / "adapter_model.safetensors").is_file()


def check_preset_agrees(preset: str | Path | AhaConfig, cfg: AhaConfig, what: str) -> None:
    """A preset named next to a checkpoint must describe the same model (a typo is an error too)."""
    p = load_preset(preset) if isinstance(preset, (str, Path)) else preset
    bad = size_disagreements(p, cfg, other="checkpoint")
    bad += frame_setting_differences(p, {k: getattr(cfg, k) for k in FRAME_FIELDS}, "checkpoint")
    if p.image_token_index != cfg.image_token_index:
        bad.append(f"image_token_index: preset {p.image_token_index!r}, checkpoint {cfg.image_token_index!r}")
    if bad:
        raise ValueError(f"the model preset {preset if isinstance(preset, (str, Path)) else '(given)'} contradicts {what}: "
                         + "; ".join(bad) + " (leave the preset out to use the checkpoint's own)")


def load_saved_base(base, path: str | Path) -> None:
    """Load a saved random-init base (``BASE``) into ``base``: every tensor, or a ValueError."""
    from safetensors.torch import load_file

    missing, unexpected = base.load_state_dict(load_file(str(path)), strict=False)
    if unexpected or missing:
        raise ValueError(f"{path} does not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    base.heads_to_fp32()
    base.load_report.source, base.load_report.layout = str(path), "project base"


def load_checkpoint(ckpt_dir: str | Path, weights: str | Path | None = None, is_trainable: bool = False,
                    dtype=None, device=None, attn_implementation: str | None = None,
                    preset: str | Path | AhaConfig | None = None, load_in_4bit: bool = False,
                    allow_untrained_heads: bool = False, heads: str | Path | None = None):
    """Rebuild the model a checkpoint was saved from. Returns a PeftModel or an AhaForStreaming.

    ``preset``, if given, must agree with the checkpoint's config. ``dtype`` None: fp32 on CPU, bf16 on CUDA.
    ``heads``: a heads file, only for a released adapter that lacks heads (a project checkpoint brings its own).
    """
    from peft import PeftModel

    ckpt = Path(ckpt_dir)
    if is_released_adapter(ckpt):
        return load_released_adapter(ckpt, weights, preset or "aha-7b", is_trainable, dtype, device, attn_implementation,
                                     load_in_4bit, heads=heads, allow_untrained_heads=allow_untrained_heads)
    if heads is not None:
        raise ValueError(f"a heads file ({heads}) with the Aha! checkpoint {ckpt}: the checkpoint brings its own heads, "
                         "the file would not be used (a heads file is for a bare backbone or a released adapter without heads)")
    meta = read_meta(ckpt)
    cfg = config_of(ckpt, meta)
    if preset is not None:
        check_preset_agrees(preset, cfg, f"the checkpoint {ckpt}")
    if meta["kind"] == "full":
        model = build_model(cfg, weights=ckpt, dtype=dtype, attn_implementation=attn_implementation, device=device,
                            load_in_4bit=load_in_4bit)
        if model.load_report.heads != "from the weights":
            raise ValueError(f"{ckpt} is a full Aha! checkpoint without its heads")
        return model
    weights = weights or meta.get("weights")
    if meta.get("base_saved"):
        base = build_model(cfg, dtype=dtype, attn_implementation=attn_implementation)
        load_saved_base(base, ckpt / BASE)
    elif weights is not None:
        refuse_merged_base(weights, ckpt, meta.get("weights"))
        base = build_model(cfg, weights=weights, dtype=dtype, attn_implementation=attn_implementation, device=device,
                           load_in_4bit=load_in_4bit)
    else:
        raise ValueError(f"{ckpt} is an adapter for a base that was not saved: pass weights=<local backbone folder>")
    before = base.load_report.heads
    model = PeftModel.from_pretrained(base, str(ckpt), is_trainable=is_trainable)
    _check_adapter_landed(model, ckpt / "adapter_model.safetensors")
    base.heads_to_fp32()
    saved = set(model.peft_config["default"].modules_to_save or [])
    from models.lora import HEAD_MODULES

    base.load_report.heads = _heads_source(before, [h for h in HEAD_MODULES if h in saved], f"the adapter {ckpt}",
                                           allow_untrained_heads)
    if not is_trainable:
        model.requires_grad_(False)
    return model.to(device) if device is not None and not load_in_4bit else model


MERGED = "merged_adapter"  # aha_model.json of a merge_and_save folder: LoRA already folded into its weights


def refuse_merged_base(weights, adapter: Path, trained_on) -> None:
    """An adapter put on a folder that merge_and_save wrote (its LoRA already in the weights) would add
    a LoRA on top of itself: refused, unless the adapter was trained on that very folder."""
    if not (Path(weights) / META).is_file() or not read_meta(weights).get(MERGED):
        return
    if trained_on is not None and Path(trained_on).resolve() == Path(weights).resolve():
        return
    raise ValueError(f"{weights} is a merged checkpoint (an adapter already folded into its weights): putting the adapter "
                     f"{adapter} on it would apply LoRA twice (a second one on top of the merged one); load the merged folder "
                     f"alone (--checkpoint {weights}) or the adapter on the backbone it was trained on")


def _check_adapter_landed(model, adapter_file: Path) -> None:
    """Every tensor the adapter's config asks for is in its file and every tensor of the file has a
    place (peft only warns: a LoRA matrix left at init, B = 0, silently drops that adapter)."""
    from peft import get_peft_model_state_dict
    from peft.utils.constants import EMBEDDING_LAYER_NAMES
    from safetensors import safe_open

    want = set(get_peft_model_state_dict(model, save_embedding_layers=False))
    with safe_open(str(adapter_file), "pt") as f:
        have = set(f.keys())
    missing = sorted(want - have)
    # the embedding layers peft's save_pretrained adds by itself when it finds the vocab resized (its
    # save_embedding_layers="auto"): embed_tokens and lm_head, which its loader reads back
    unexpected = sorted(k for k in have - want if not any(k.endswith(f"{n}.weight") for n in EMBEDDING_LAYER_NAMES))
    if missing or unexpected:
        raise ValueError(f"{adapter_file} does not fit its adapter_config.json and the model: missing {missing[:8]}"
                         + (f" and {len(missing) - 8} more" if len(missing) > 8 else "") + f", unexpected {unexpected[:8]}")


def load_released_adapter(adapter_dir: str | Path, weights: str | Path | None, preset: str | Path | AhaConfig = "aha-7b",
                          is_trainable: bool = False, dtype=None, device=None, attn_implementation: str | None = None,
                          load_in_4bit: bool = False, heads: str | Path | None = None, allow_untrained_heads: bool = False):
    """A released Aha! adapter (reference key names) on a local backbone, converted in memory;
    every adapter tensor must land in the model, and each of the three heads must come from the
    adapter, the weights folder or a ``heads`` file (else an error naming it, unless
    ``allow_untrained_heads``: then the report says which heads are untrained)."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    from models.convert import check_released_heads, convert_adapter_state, converted_lora_config
    from models.lora import HEAD_MODULES

    src = Path(adapter_dir)
    if weights is None:
        raise ValueError(f"{src} is a released adapter: pass the local backbone folder it was trained on (--weights)")
    refuse_merged_base(weights, src, None)
    ref_cfg = json.loads((src / "adapter_config.json").read_text())
    state = convert_adapter_state(load_file(str(src / "adapter_model.safetensors")))
    check_released_heads(state, src)
    if heads is not None and all(f"base_model.model.{h}.weight" in state for h in HEAD_MODULES):
        raise ValueError(f"{src} holds all three heads and a heads file ({heads}) was given too: the adapter's "
                         "would replace every one of the file's; give the file only for an adapter without them")
    cfg = load_preset(preset) if isinstance(preset, (str, Path)) else preset
    cfg = _vocab_of_adapter(cfg, state, src)
    base = build_model(cfg, weights=weights, dtype=dtype, attn_implementation=attn_implementation, device=device,
                       load_in_4bit=load_in_4bit, heads=heads)
    lcfg = converted_lora_config(ref_cfg, weights, is_trainable=is_trainable)
    lcfg.pop("peft_type")
    model = get_peft_model(base, LoraConfig(**lcfg))
    # shapes first: a wrong one is named here, not as a size mismatch deep in torch
    expected = {k.replace(".modules_to_save.default.", ".").replace(".default.", "."): tuple(v.shape)
                for k, v in model.state_dict().items()}
    wrong = [f"{k} {list(v.shape)} (the model's {list(expected[k])})" for k, v in state.items()
             if k in expected and tuple(v.shape) != expected[k]]
    if wrong:
        raise ValueError(f"{src} does not fit the model: shapes differ: {wrong[:8]}")
    result = set_peft_model_state_dict(model, state)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    missing = [k for k in getattr(result, "missing_keys", []) or [] if "lora_" in k or "modules_to_save" in k]
    if unexpected or missing:
        raise ValueError(f"{src} does not fit the model: unexpected {unexpected[:8]}, missing {missing[:8]}")
    base.heads_to_fp32()
    base.load_report.heads = _heads_source(base.load_report.heads, [h for h in HEAD_MODULES
                                                                    if f"base_model.model.{h}.weight" in state],
                                           f"the released adapter {src}", allow_untrained_heads)
    if not is_trainable:
        model.requires_grad_(False)
    return model.to(device) if device is not None and not load_in_4bit else model


def _vocab_of_adapter(cfg: AhaConfig, state: dict, src: Path) -> AhaConfig:
    """The adapter's lm_head says the vocab it was trained with: a config read from a llava-hf folder
    (vocab padded by the conversion) takes it, so that the padding rows are dropped at load."""
    from models.weights import conversion_padding_rows

    w = state.get("base_model.model.lm_head.weight")
    if w is None or w.shape[0] == cfg.text_config.vocab_size:
        return cfg
    if conversion_padding_rows(w.shape[0], cfg.text_config.vocab_size):
        cfg = AhaConfig.from_dict(cfg.to_dict())
        cfg.text_config.vocab_size = w.shape[0]
        return cfg
    raise ValueError(f"{src}: its lm_head has {w.shape[0]} rows, the model preset's vocab is {cfg.text_config.vocab_size}")


def _heads_source(before: str, from_adapter: list[str], adapter: str, allow_untrained: bool) -> str:
    """The load report's heads line after an adapter: each head from the adapter, else from where the
    base took it (the weights, a heads file); an untrained head is an error unless allowed."""
    from models.lora import HEAD_MODULES

    rest = [h for h in HEAD_MODULES if h not in from_adapter]
    if not rest:
        return f"from {adapter}"
    if "untrained" in before or before == "random":
        if not allow_untrained:
            raise ValueError(f"{adapter} holds no {rest} and the backbone has none: {', '.join(rest)} would stay at "
                             "random init (give a heads file, or allow untrained heads explicitly)")
    return f"{', '.join(from_adapter) or 'none'} from {adapter}; {', '.join(rest)} {before}"


def merge_and_save(peft_model, out_dir: str | Path, inference: InferenceSettings | None = None) -> Path:
    """Fold LoRA into the base weights and write a plain full checkpoint (safetensors)."""
    merged = peft_model.merge_and_unload()
    head = merged.get_output_embeddings()
    if head is not None and head.weight is not merged.get_input_embeddings().weight:
        # a tied model whose lm_head was trained (modules_to_save) is untied now: its config says so,
        # or the reload would tie the trained lm_head back to the embeddings (or refuse the folder)
        merged.config.tie_word_embeddings = False
        merged.config.get_text_config().tie_word_embeddings = False
    out = save_checkpoint(merged, out_dir, inference=inference)
    atomic_write_json(out / META, {**read_meta(out), MERGED: True})
    return out


def content_hash_of(model_dir: str | Path) -> str:
    """sha256 over the weight and config files of a folder (cached by path, size, mtime, inode and ctime)."""
    from utils.io import folder_hash

    return folder_hash(model_dir, patterns=("*.safetensors", "*.json"))
