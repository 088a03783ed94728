"""Convert the released Aha! adapter (LLaVA-NeXT module names) to this implementation.

The released adapter was saved by peft from LLaVA-NeXT's ``LlavaQwenForCausalLM``; its keys::

    base_model.model.model.layers.N.{self_attn,mlp}.X.lora_{A,B}.weight
    base_model.model.model.mm_projector.{0,2}.{weight,bias}
    base_model.model.lm_head.weight
    base_model.model.{informative,relevance,uncertainty}_head.weight

Here the language model lives at ``model.language_model`` and the projector at
``model.multi_modal_projector.linear_{1,2}``. The output folder is a regular checkpoint of this
project (adapter + ``aha_model.json``) that ``models.checkpoint.load_checkpoint`` reads with the
local backbone weights. MMDuet adapters (same names) are refused: their relevance head has two
outputs and they have no uncertainty head. Usage::

    python -m models.convert --adapter aha_weights/ --preset aha-7b --weights /models/llava-onevision-qwen2-7b-ov-hf --out ckpt/aha-7b
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from models.build import config_from_weights, load_preset
from models.checkpoint import META, refuse_merged_base
from models.inference_settings import InferenceSettings
from models.lora import HEAD_MODULES, LORA_TARGET_REGEX
from utils.io import atomic_write_json

_RULES = [
    (r"^base_model\.model\.model\.layers\.", "base_model.model.model.language_model.layers."),
    (r"^base_model\.model\.model\.embed_tokens\.", "base_model.model.model.language_model.embed_tokens."),
    (r"^base_model\.model\.model\.norm\.", "base_model.model.model.language_model.norm."),
    (r"^base_model\.model\.model\.mm_projector\.0\.", "base_model.model.model.multi_modal_projector.linear_1."),
    (r"^base_model\.model\.model\.mm_projector\.2\.", "base_model.model.model.multi_modal_projector.linear_2."),
    (r"^base_model\.model\.(lm_head|informative_head|relevance_head|uncertainty_head)\.", r"base_model.model.\1."),
]
_MODULE_NAMES = {"mm_projector": "multi_modal_projector", "lm_head": "lm_head", "informative_head": "informative_head",
                 "relevance_head": "relevance_head", "uncertainty_head": "uncertainty_head"}


def convert_key(key: str) -> str:
    key = key.replace(".default.", ".")  # some peft versions keep the adapter name
    for pat, rep in _RULES:
        if re.search(pat, key):
            return re.sub(pat, rep, key)
    raise ValueError(f"unexpected key in a released adapter: {key!r}")


def convert_adapter_state(state: dict) -> dict:
    out = {}
    for k, v in state.items():
        nk = convert_key(k)
        if nk in out:
            raise ValueError(f"two keys map to {nk!r}")
        out[nk] = v
    return out


def check_released_heads(state: dict, source) -> None:
    """The heads of a converted adapter state must be Aha!'s: informative 2 outputs, relevance 1,
    uncertainty 1, bias-free. MMDuet's relevance head has 2 outputs and it has no uncertainty head:
    said as such, not as a size mismatch deep in peft."""
    want = {"informative_head": 2, "relevance_head": 1, "uncertainty_head": 1}
    for head, rows in want.items():
        w = state.get(f"base_model.model.{head}.weight")
        if w is not None and w.shape[0] != rows:
            mmduet = " (MMDuet's two-class relevance head: MMDuet adapters are not Aha! adapters and do not load here)" \
                if head == "relevance_head" and w.shape[0] == 2 else ""
            raise ValueError(f"{source}: {head} has {w.shape[0]} outputs, Aha!'s has {rows}{mmduet}")
        if f"base_model.model.{head}.bias" in state:
            raise ValueError(f"{source}: {head} has a bias; Aha!'s heads are bias-free")


def converted_lora_config(ref_cfg: dict, weights: str | Path | None = None, is_trainable: bool = False) -> dict:
    """The reference's adapter_config.json for this implementation's module names (no-op names of
    the reference, 'connector' and 'response_head', are dropped). ``inference_mode`` is
    ``not is_trainable``: peft's save_pretrained writes true, and a wrap with it freezes every LoRA
    matrix and trained module (fine-tuning from it would train nothing)."""
    modules = sorted({_MODULE_NAMES[m] for m in ref_cfg.get("modules_to_save") or [] if m in _MODULE_NAMES})
    return {
        **{k: v for k, v in ref_cfg.items() if k not in ("target_modules", "modules_to_save", "task_type", "base_model_name_or_path")},
        "inference_mode": not is_trainable,
        "peft_type": "LORA",
        "target_modules": LORA_TARGET_REGEX,
        "modules_to_save": modules,
        "task_type": None,
        "base_model_name_or_path": None if weights is None else str(weights),
    }


def convert_adapter(adapter_dir: str | Path, out_dir: str | Path, preset: str = "aha-7b", weights: str | Path | None = None,
                    inference: InferenceSettings | None = None) -> Path:
    from safetensors.torch import load_file, save_file

    src, out = Path(adapter_dir), Path(out_dir)
    cfg_file, w_file = src / "adapter_config.json", src / "adapter_model.safetensors"
    if not cfg_file.is_file() or not w_file.is_file():
        raise FileNotFoundError(f"{src} needs adapter_config.json and adapter_model.safetensors (pickled .bin adapters are not read)")
    ref_cfg = json.loads(cfg_file.read_text())
    state = convert_adapter_state(load_file(str(w_file)))
    check_released_heads(state, src)
    missing = [h for h in HEAD_MODULES if f"base_model.model.{h}.weight" not in state]
    if missing:
        raise ValueError(f"{src} holds no {missing}: a converted checkpoint must bring all three Aha! heads "
                         "(load the released folder directly with --weights and --heads to take them from elsewhere)")
    cfg = load_preset(preset)
    if weights is not None:
        refuse_merged_base(weights, src, None)
        cfg = config_from_weights(weights, cfg)
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / "adapter_model.safetensors"))
    atomic_write_json(out / "adapter_config.json", converted_lora_config(ref_cfg, weights))
    inf = InferenceSettings(**{**(inference or InferenceSettings()).to_dict(), "tokens_per_frame": cfg.tokens_per_frame})
    atomic_write_json(out / META, {"config": cfg.to_dict(), "weights": None if weights is None else str(weights),
                                   "base_saved": False, "kind": "adapter", "converted_from": str(src),
                                   "inference": inf.to_dict()})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adapter", required=True, help="released adapter folder (adapter_config.json + adapter_model.safetensors)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", default="aha-7b")
    ap.add_argument("--weights", default=None, help="local LLaVA-OneVision backbone folder (llava-hf or lmms-lab layout)")
    a = ap.parse_args(argv)
    print(convert_adapter(a.adapter, a.out, a.preset, a.weights))


if __name__ == "__main__":
    import sys

    from utils.cli import entry

    sys.exit(entry("models.convert", main))  # the error contract: instructions/errors.md
