"""Build an Aha! model from a preset (random init), or from a local weights folder.

Layouts, key names and the checks made on them: ``models.weights``. Loading goes through
transformers' ``from_pretrained`` with the layout's key mapping (meta-device init, shards read
straight into the target dtype and device, ZeRO-3, 4-bit), after a plan made from the file headers
has accounted for every tensor. Nothing is downloaded: the folder must exist locally.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import torch

from models.aha import AhaForStreaming
from models.chat import system_prompt_of
from models.config import AhaConfig
from models.weights import (HEAD_KEYS, KEY_MAPPINGS, LoadReport, conversion_padding_rows, count_reasons, detect_layout, map_key,
                            plan_load, read_index, size_disagreements, weights_backbone_config, weights_vocab_size)
from utils.io import read_json
from utils.paths import REPO_ROOT

log = logging.getLogger(__name__)
PRESET_DIR = REPO_ROOT / "configs" / "model"
AHA_FIELDS = ("frame_pool_stride", "frame_pool_mode", "frame_pool_ceil", "frame_summary_token", "frame_placeholder", "frame_resize", "head_stop_grad", "logvar_min", "logvar_max",
              "loss_weights", "loss_protocol", "system_prompt")
# what a trained Aha! model's heads depend on: tokens per frame, their layout, the resize, the system turn
FRAME_FIELDS = ("frame_pool_stride", "frame_pool_mode", "frame_pool_ceil", "frame_summary_token", "frame_resize", "system_prompt")


def preset_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".json" and p.is_file():
        return p
    cand = PRESET_DIR / f"{name_or_path}.json"
    if cand.is_file():
        return cand
    known = sorted(x.stem for x in PRESET_DIR.glob("*.json"))
    raise FileNotFoundError(f"no model preset {name_or_path!r}; known presets: {known} (or a path to a .json)")


PRESET_KEYS = ("config", "description", "train_window_frames")


@functools.lru_cache(maxsize=1)
def _config_keys() -> frozenset:
    return frozenset(AhaConfig().to_dict())


def read_preset(name_or_path: str | Path) -> tuple[Path, dict]:
    """A preset file, its layout checked: bad JSON, a missing ``config``, a key the config does not
    know (a misspelt ``frame_pool_strid`` was kept as an inert attribute: the default stride ran) or a
    bad ``train_window_frames`` is a ValueError naming the file."""
    path = preset_path(name_or_path)
    spec = read_json(path)
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValueError(f"{path}: a model preset is a JSON object with a 'config' object")
    unknown = sorted(set(spec) - set(PRESET_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown preset key(s) {unknown}; known: {list(PRESET_KEYS)}")
    unknown = sorted(set(spec["config"]) - _config_keys())
    if unknown:
        raise ValueError(f"{path}: unknown config key(s) {unknown} (not fields of the Aha! / LLaVA-OneVision config)")
    frames = spec.get("train_window_frames")
    if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or frames < 1):
        raise ValueError(f"{path}: train_window_frames must be a positive integer, got {frames!r}")
    return path, spec


def load_preset(name_or_path: str | Path, **overrides) -> AhaConfig:
    path, spec = read_preset(name_or_path)
    kwargs = dict(spec["config"])
    kwargs.update(overrides)
    try:
        return AhaConfig(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: config: {type(e).__name__}: {e}") from None


def train_window_tokens(name_or_path: str | Path) -> int | None:
    """Cache window (recent tokens) matching the clips a preset was trained on: its top-level
    ``train_window_frames`` times its tokens per frame; None when the preset does not say.

    Exactly the frames a training clip shows after its prompt, no room added for text: a response
    is generated one token at a time and is evicted like a frame. Until session 13 the window had
    32 more tokens "for one text turn", so a score-only stream held 44 frames after the query where
    training never showed more than 12, and the tiny model lost the query on later frames: on the
    synthetic selection split (v9, 60 val videos) relevance AUC match vs distractor 0.90 with 44,
    0.97 with 20, 0.98 with 16 / 14, 0.99 with 12; mean relevance on matching events starting after
    15 s 0.64 with 44, 0.93 with 12 (instructions/tiny_model.md, session 13)."""
    frames = read_preset(name_or_path)[1].get("train_window_frames")
    if frames is None:
        return None
    return frames * load_preset(name_or_path).tokens_per_frame


def _frame_setting(key: str, value):
    """A frame setting as the model uses it: a null system prompt is the default one."""
    return system_prompt_of(SimpleNamespace(system_prompt=value)) if key == "system_prompt" else value


def frame_setting_differences(preset: AhaConfig, values: dict, other: str) -> list[str]:
    """The ``FRAME_FIELDS`` in ``values`` (a checkpoint's or a weights folder's config) on which a preset
    differs, as "key: preset X, <other> Y"; a null system prompt is the default one."""
    return [f"{k}: preset {getattr(preset, k)!r}, {other} {values[k]!r}" for k in FRAME_FIELDS
            if k in values and _frame_setting(k, values[k]) != _frame_setting(k, getattr(preset, k))]


def config_from_weights(weights_dir: str | Path, preset: AhaConfig | None = None,
                        index: dict | None = None) -> AhaConfig:
    """The weights' own backbone sizes plus the preset's Aha fields (AhaConfig defaults without a
    preset). A preset whose backbone sizes disagree with the weights is refused, naming both.

    One difference is not a disagreement: a llava-hf folder whose vocab is the preset's plus the
    conversion's padding rows (``models.weights.conversion_padding_rows``: 152128 for 152064, 152000
    for 151936). The config then keeps the preset's vocab and the load drops those rows, saying so."""
    backbone = weights_backbone_config(weights_dir, index, preset)
    if preset is not None and detect_layout(weights_dir) == "llava-hf":
        pv, text = preset.text_config.vocab_size, backbone.get("text_config") or {}
        if conversion_padding_rows(pv, text.get("vocab_size")):
            backbone["text_config"] = {**text, "vocab_size": pv}
    aha = {k: getattr(preset, k) for k in AHA_FIELDS} if preset is not None else {}
    if preset is not None:
        # a project full checkpoint's config carries how its frames were made: a preset may not override it
        said = frame_setting_differences(preset, backbone, "weights")
        if said:
            raise ValueError(f"{weights_dir} is an Aha! model made with other frame settings than the model preset: "
                             + "; ".join(said) + " (leave the preset out to use the model's own)")
    if "image_token_index" not in backbone and preset is not None:
        backbone["image_token_index"] = preset.image_token_index
    try:
        cfg = AhaConfig(**{**backbone, **aha})
    except ValueError as e:
        raise ValueError(f"{Path(weights_dir) / 'config.json'}: {e}") from None
    if preset is not None:
        bad = size_disagreements(preset, cfg)
        if bad:
            raise ValueError(f"the model preset and the weights in {weights_dir} disagree on the backbone: " + "; ".join(bad))
    return cfg


def resolve_dtype(dtype: torch.dtype | str | None, device: str | torch.device | None = None) -> torch.dtype:
    """A dtype name or None; None means fp32 on CPU and bf16 on CUDA (stated in every run record)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        return torch.bfloat16 if torch.device(device or "cpu").type == "cuda" else torch.float32
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}") from None


DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
          "fp32": torch.float32, "float32": torch.float32}


def build_model(
    preset: str | Path | AhaConfig | None = "aha-tiny",
    weights: str | Path | None = None,
    dtype: torch.dtype | str | None = None,
    attn_implementation: str | None = None,
    device: str | torch.device | None = None,
    load_in_4bit: bool = False,
    seed: int | None = None,
    heads: str | Path | None = None,
) -> AhaForStreaming:
    """A ready model: random init from a preset, or a weights folder (any layout of models.weights).

    ``dtype`` None: fp32 on CPU, bf16 on CUDA; the three heads stay fp32 whatever it is.
    ``heads``: a safetensors file holding the three heads (e.g. beside a bare backbone).
    ``attn_implementation``: sdpa (default), flash_attention_2 if installed, eager.
    The load's one-line report is logged and kept as ``model.load_report``.
    """
    cfg = load_preset(preset) if isinstance(preset, (str, Path)) else preset
    attn = attn_implementation or "sdpa"
    if attn == "flash_attention_2":
        try:
            import flash_attn  # noqa: F401
        except ImportError as e:
            raise ImportError("attn_implementation=flash_attention_2 needs the optional flash-attn package") from e
    dt = resolve_dtype(dtype, device)
    if weights is None:
        if cfg is None:
            raise ValueError("give a model preset or a weights folder")
        if load_in_4bit:
            raise ValueError("load_in_4bit needs real weights (--weights)")
        if seed is not None:
            torch.manual_seed(seed)
        cfg._attn_implementation = attn
        # A random 7B built on the CPU takes minutes (fp32 init of 8B values); on a GPU, seconds.
        # CPU builds are unchanged, so a seed gives the same values it always gave there.
        on_gpu = device is not None and torch.device(device).type == "cuda"
        with torch.device(device) if on_gpu else contextlib.nullcontext():
            model = AhaForStreaming(cfg).to(dt)
        model.load_report = LoadReport(source="random init" + (f" (seed {seed})" if seed is not None else ""), layout="preset",
                                       tensors_in_files=0, loaded=0, dtype=str(dt).replace("torch.", ""),
                                       device=str(device or "cpu"), heads="random")
    else:
        model = _load_weights(Path(weights), cfg, dt, attn, device, load_in_4bit, seed)
    model.heads_to_fp32()  # before a heads file is copied in: into bf16 heads it would be rounded
    if heads is not None:
        load_heads(model, heads)
        model.load_report.heads = f"from {heads}"
    if device is not None and not load_in_4bit:
        model = model.to(device)
    log.info("%s", model.load_report.line())
    return model


def _load_weights(weights: Path, preset: AhaConfig | None, dtype: torch.dtype, attn: str, device, load_in_4bit: bool,
                  seed: int | None) -> AhaForStreaming:
    """Plan from the file headers (every tensor mapped, dropped for a known reason, or an error),
    then transformers' own from_pretrained: meta-device init, shards read straight into ``dtype``
    (and onto ``device``), DeepSpeed ZeRO-3 partitioned loading, bitsandbytes 4-bit."""
    layout = detect_layout(weights)
    index = read_index(weights)
    cfg = config_from_weights(weights, preset, index)
    cfg._attn_implementation = attn
    # a llava-hf folder padded by its conversion loads at its own vocab; the padding rows are cut after
    file_vocab = weights_vocab_size(weights)
    pad = conversion_padding_rows(cfg.text_config.vocab_size, file_vocab) if layout == "llava-hf" else 0
    load_cfg = cfg
    if pad:
        load_cfg = copy.deepcopy(cfg)
        load_cfg.text_config.vocab_size = file_vocab
    elif layout == "llava-hf" and file_vocab is not None and file_vocab != cfg.text_config.vocab_size:
        raise ValueError(f"{weights}: text_config.vocab_size is {file_vocab}, the model's {cfg.text_config.vocab_size}: "
                         "only the llava-hf conversion's padding rows (ceil((vocab + 2) / 64) * 64) can be dropped")
    plan = plan_load(_meta_model(load_cfg), index, layout, str(weights))
    plan.raise_if_bad()
    quant = _bnb_config() if load_in_4bit else None
    # missing heads are initialised by transformers from the global RNG: seed it, so that a bare
    # backbone gives the same (untrained) heads every time
    torch.manual_seed(0 if seed is None else seed)
    device_map = None if device is None else {"": torch.device(device)}
    with _transformers_quiet():
        model, info = AhaForStreaming.from_pretrained(
            str(weights), config=load_cfg, dtype=dtype, attn_implementation=attn, quantization_config=quant,
            key_mapping=KEY_MAPPINGS[layout], device_map=device_map if quant is None else (device_map or "auto"),  # bitsandbytes places it itself
            output_loading_info=True, local_files_only=True,
        )
    _check_against_plan(info, plan, weights)
    _check_tied_head(model, plan, weights)
    # save_pretrained would otherwise write the source's key names back (transformers reverts the
    # renaming it loaded with): the project writes its own names
    model._weight_conversions = None
    if pad:
        _drop_padding_rows(model, cfg.text_config.vocab_size)
    heads = "from the weights"
    if plan.missing_heads:
        heads = f"not in this backbone: initialised with seed {0 if seed is None else seed} (untrained)"
    model.load_report = LoadReport(
        source=str(weights), layout=layout, names=plan.names, tensors_in_files=len(index),
        loaded=len(plan.mapping), dtype=str(dtype).replace("torch.", "") + (" (4-bit)" if load_in_4bit else ""),
        device=str(device or "cpu"), dropped=count_reasons(plan.dropped), heads=heads,
        vocab_rows_dropped=pad, weights_vocab=file_vocab if pad else None,
    )
    return model


def _drop_padding_rows(model: AhaForStreaming, vocab: int) -> None:
    """Keep the first ``vocab`` rows of embed_tokens and lm_head (transformers' resize: ties,
    ZeRO-3 gathering and the config's vocab_size are its business), then check that it did."""
    model.resize_token_embeddings(vocab, mean_resizing=False)
    head = model.get_output_embeddings()
    rows = {model.get_input_embeddings().num_embeddings, model.config.text_config.vocab_size}
    if head is not None:
        rows.add(head.out_features)
    if rows != {vocab}:
        raise RuntimeError(f"cutting the vocab to {vocab} rows left {sorted(rows)}")


def _meta_model(cfg: AhaConfig) -> AhaForStreaming:
    """The model on the meta device: names and shapes only, for the plan. Built with transformers'
    DeepSpeed ZeRO-3 hook switched off: it would partition (and gather across ranks) parameters
    that hold no data."""
    import transformers.integrations.deepspeed as hf_ds

    saved = hf_ds._hf_deepspeed_config_weak_ref
    hf_ds._hf_deepspeed_config_weak_ref = None
    try:
        with torch.device("meta"):
            return AhaForStreaming(cfg)
    finally:
        hf_ds._hf_deepspeed_config_weak_ref = saved


def _check_against_plan(info: dict, plan, weights: Path) -> None:
    """transformers must have done what the plan says (a guard against a changed loader)."""
    missing = set(info.get("missing_keys") or [])
    unexpected = {k for k in info.get("unexpected_keys") or []}
    want_dropped = {map_key(k, plan.layout) for k in plan.dropped}
    problems = []
    if missing - set(plan.missing_heads):
        problems.append(f"left unloaded: {sorted(missing - set(plan.missing_heads))[:8]}")
    if unexpected - want_dropped - set(plan.dropped):
        problems.append(f"not loaded from the files: {sorted(unexpected - want_dropped - set(plan.dropped))[:8]}")
    if info.get("mismatched_keys"):
        problems.append(f"shape mismatches: {list(info['mismatched_keys'])[:8]}")
    if problems:
        raise RuntimeError(f"loading {weights} did not go as planned: " + "; ".join(problems))


def _check_tied_head(model: AhaForStreaming, plan, weights: Path) -> None:
    """A config that ties lm_head to the embeddings, with a folder that holds an lm_head of other
    values: transformers then keeps the two apart (a warning, silenced here) and scores with the file's
    lm_head, where the original (transformers 4, LLaVA-NeXT) tied them and scored with the embeddings.
    Neither is safe to guess: refused, saying how to choose."""
    head = model.get_output_embeddings()
    if not model.config.get_text_config().tie_word_embeddings or head is None:
        return
    if "lm_head.weight" in plan.mapping.values() and head.weight is not model.get_input_embeddings().weight:
        raise ValueError(f"{weights}: config.json ties lm_head to embed_tokens (tie_word_embeddings true) but the "
                         "folder holds an lm_head.weight with other values: set tie_word_embeddings false (text_config "
                         "and top level) to score with that lm_head, or remove it from the folder to tie them")


class _transformers_quiet:
    """transformers' own load report and progress bar would repeat ours, less exactly."""

    def __enter__(self):
        from transformers.utils import logging as hf_logging

        self._level = hf_logging.get_verbosity()
        self._bar = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        return self

    def __exit__(self, *exc):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(self._level)
        if self._bar:
            hf_logging.enable_progress_bar()
        return False


def load_heads(model: AhaForStreaming, path: str | Path) -> None:
    """The three heads from a safetensors file: exactly those tensors, under their own names or the
    peft / reference prefixes (``base_model.model.``); the shapes must fit."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    got = {}
    for k, v in state.items():
        name = re.sub(r"^(base_model\.model\.)?", "", k).replace(".modules_to_save.default.", ".").replace(".original_module.", ".")
        if name not in HEAD_KEYS:
            raise ValueError(f"{path}: unexpected tensor {k!r} (a heads file holds only {list(HEAD_KEYS)})")
        if name in got:
            raise ValueError(f"{path}: two tensors for {name!r}")
        got[name] = v
    missing = [h for h in HEAD_KEYS if h not in got]
    if missing:
        raise ValueError(f"{path}: missing {missing}")
    for name, v in got.items():
        p = model.get_parameter(name)
        if tuple(v.shape) != tuple(p.shape):
            raise ValueError(f"{path}: {name} has shape {list(v.shape)}, the model's has {list(p.shape)}")
        with torch.no_grad():
            p.copy_(v.to(p.dtype))


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
