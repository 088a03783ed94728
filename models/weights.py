"""Weight folders of LLaVA-OneVision and Aha!: layouts, key names, sizes, and what a load did.

Every tensor of a folder is accounted for before anything is read: it is mapped to a parameter of
the model, or dropped for a reason the layout is known to have, or the load is refused with its
name. Every parameter of the model is filled, except the three Aha! heads of a bare backbone
(said once, initialised with a seed). Sizes come from the weights' own config; a preset that
disagrees is refused with both values.

Layouts (``detect_layout``):
- ``llava-hf`` (``model_type: llava_onevision``): current names (transformers >= 5:
  ``model.language_model.*``, ``model.vision_tower.*``, ``model.multi_modal_projector.*``,
  ``model.image_newline``, ``lm_head.weight``), the names transformers 4.52-4.57 wrote
  (``model.vision_tower.vision_model.*``) or transformers 5's ``save_pretrained`` writes for this
  class (``model.language_model.model.*``), or the legacy names the hub files carry
  (``language_model.model.*``, ``language_model.lm_head.weight``, ``vision_tower.vision_model.*``,
  ``multi_modal_projector.*``, ``image_newline``). The project's full checkpoints are this layout
  plus the heads.
- ``lmms-lab`` (LLaVA-NeXT, ``model_type: llava`` / ``llava_qwen`` with ``mm_vision_tower``):
  ``model.{embed_tokens,layers,norm}.*``, ``lm_head.weight``, ``model.mm_projector.{0,2}.*``,
  ``model.vision_tower.vision_tower.vision_model.*``, ``model.image_newline``; the reference's full
  Aha! model adds ``{informative,relevance,uncertainty}_head.weight`` and a duplicate tower
  ``vision_encoder.*``. SigLIP is given only by name there: its sizes are read from the tensors.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

HEAD_KEYS = ("informative_head.weight", "relevance_head.weight", "uncertainty_head.weight")

# file name -> model name, applied in order (every matching rule fires, as transformers does)
KEY_MAPPINGS: dict[str, dict[str, str]] = {
    "llava-hf": {
        r"^language_model\.lm_head\.": "lm_head.",
        r"^language_model\.model\.": "model.language_model.",
        r"^model\.language_model\.model\.": "model.language_model.",
        r"^vision_tower\.vision_model\.": "model.vision_tower.",
        r"^model\.vision_tower\.vision_model\.": "model.vision_tower.",
        r"^multi_modal_projector\.": "model.multi_modal_projector.",
        r"^image_newline$": "model.image_newline",
    },
    "lmms-lab": {
        r"^model\.vision_tower\.vision_tower\.vision_model\.": "model.vision_tower.",
        r"^model\.mm_projector\.0\.": "model.multi_modal_projector.linear_1.",
        r"^model\.mm_projector\.2\.": "model.multi_modal_projector.linear_2.",
        r"^model\.(embed_tokens|layers|norm)\.": r"model.language_model.\1.",
    },
}

# tensors a layout is known to carry that LLaVA-OneVision does not use: (pattern on the mapped name, reason)
_KNOWN_UNUSED = {
    "llava-hf": [(r"^model\.vision_tower\.head\.", "SigLIP's pooling head (vision_use_head is off)")],
    "lmms-lab": [
        (r"^model\.vision_tower\.head\.", "SigLIP's pooling head (vision_use_head is off)"),
        (r"^vision_encoder\.", "the reference's duplicate of the vision tower"),
    ],
}

# SigLIP towers lmms-lab configs name (mm_vision_tower): sizes of the full tower; LLaVA-OneVision
# uses every layer but the last
SIGLIP_BY_NAME = {
    "google/siglip-so400m-patch14-384": {"hidden_size": 1152, "intermediate_size": 4304, "num_attention_heads": 16,
                                         "num_hidden_layers": 27, "image_size": 384, "patch_size": 14},
}

# transformers' convert_llava_onevision_weights_to_hf.py (the script that wrote the llava-hf hub
# folders) resizes the embeddings to vocab + 2 rows padded to a multiple of 64 and fills the new rows
# with random samples: llava-onevision-qwen2-7b-ov-hf holds 152128 rows (Qwen2-7B's 152064 + 64),
# 0.5b-ov-hf 152000 (151936 + 64). The rows are past the tokenizer (151648 ids), never produced by the
# lmms-lab original the Aha! adapter was trained on (its lm_head has the original vocab).
CONVERSION_VOCAB_PAD = 64


def conversion_padding_rows(preset_vocab: int, weights_vocab: int) -> int:
    """Rows a llava-hf folder holds past ``preset_vocab`` that are the conversion's padding: exactly
    ``ceil((preset_vocab + 2) / 64) * 64 - preset_vocab`` of them, else 0 (not that padding)."""
    if not isinstance(preset_vocab, int) or not isinstance(weights_vocab, int):
        return 0
    padded = -(-(preset_vocab + 2) // CONVERSION_VOCAB_PAD) * CONVERSION_VOCAB_PAD
    return weights_vocab - preset_vocab if weights_vocab == padded and weights_vocab > preset_vocab else 0


def weights_vocab_size(weights_dir: str | Path) -> int | None:
    """``text_config.vocab_size`` of a llava-hf folder's config.json (None for other layouts)."""
    if detect_layout(weights_dir) != "llava-hf":
        return None
    raw = json.loads((Path(weights_dir) / "config.json").read_text())
    return (raw.get("text_config") or {}).get("vocab_size")


# the backbone sizes a preset and a weights folder must agree on
SIZE_FIELDS = {
    "text_config": ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                    "vocab_size", "rope_theta", "tie_word_embeddings"),
    "vision_config": ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size", "patch_size"),
}


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


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: str
    file: str


def read_index(weights_dir: str | Path) -> dict[str, TensorInfo]:
    """Name -> shape, dtype and file of every tensor in a folder's safetensors (headers only)."""
    d = Path(weights_dir)
    index_file = d / "model.safetensors.index.json"
    if index_file.is_file():
        if (d / "model.safetensors").is_file():
            # transformers loads model.safetensors and never reads the index: which one is meant?
            raise ValueError(f"{d} holds both model.safetensors and {index_file.name} (with its shards): two sets of "
                             "weights; remove the one that is not meant")
        files = sorted(set(json.loads(index_file.read_text())["weight_map"].values()))
        missing = [f for f in files if not (d / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{index_file} names shards that are not there: {missing}")
    elif (d / "model.safetensors").is_file():
        files = ["model.safetensors"]  # what transformers reads; other files beside it (a heads file) are not the model's
    else:
        files = sorted(p.name for p in d.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{d}: no .safetensors files (pickled checkpoints are not loaded)")
    out: dict[str, TensorInfo] = {}
    for f in files:
        for k, info in _read_header(d / f).items():
            if k in out:
                raise ValueError(f"{d}: tensor {k!r} is in both {out[k].file} and {f}")
            out[k] = info
    return out


def _read_header(path: Path) -> dict[str, TensorInfo]:
    """A safetensors header, checked against the file's size (a truncated shard is caught here,
    before any weight is read)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw_len = fh.read(8)
        n = int.from_bytes(raw_len, "little") if len(raw_len) == 8 else -1
        if n < 2 or 8 + n > size:
            raise ValueError(f"{path}: not a readable safetensors file (header of {n} bytes in a file of {size})")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable safetensors file (header: {e})") from None
    header.pop("__metadata__", None)
    out, end = {}, 0
    for k, t in header.items():
        out[k] = TensorInfo(tuple(t["shape"]), t["dtype"], path.name)
        end = max(end, t["data_offsets"][1])
    if 8 + n + end != size:
        raise ValueError(f"{path}: not a readable safetensors file (truncated: {size} bytes, the header needs {8 + n + end})")
    return out


def map_key(key: str, layout: str) -> str:
    for pat, rep in KEY_MAPPINGS[layout].items():
        key = re.sub(pat, rep, key, count=1)
    return key


# --------------------------------------------------------------------------- sizes
def _lmms_vision_sizes(raw: dict, index: dict[str, TensorInfo], preset=None) -> dict:
    """SigLIP sizes of an lmms-lab folder, read from its tensors (its config only names the tower).
    The head count is not in any shape: it comes from the named tower's known sizes, else from the
    preset."""
    pre = "model.vision_tower.vision_tower.vision_model."
    try:
        patch = index[pre + "embeddings.patch_embedding.weight"].shape
        n_pos = index[pre + "embeddings.position_embedding.weight"].shape[0]
        fc1 = index[pre + "encoder.layers.0.mlp.fc1.weight"].shape
    except KeyError as e:
        raise ValueError(f"lmms-lab weights without the SigLIP tensor {e.args[0]!r}: cannot tell the vision tower's size") from None
    layers = {int(m.group(1)) for k in index if (m := re.match(re.escape(pre) + r"encoder\.layers\.(\d+)\.", k))}
    grid = math.isqrt(n_pos)
    # the grid is floor(image_size / patch): 384 px at patch 14 gives 27, so the image size itself is
    # not in the shapes; it comes from the named tower or the preset when they fit the grid
    sizes = {"hidden_size": patch[0], "patch_size": patch[-1], "image_size": grid * patch[-1], "intermediate_size": fc1[0],
             "num_hidden_layers": max(layers) + 1}
    named = SIGLIP_BY_NAME.get(raw.get("mm_vision_tower", ""))
    if named is not None:
        for k in ("hidden_size", "patch_size", "intermediate_size"):
            if named[k] != sizes[k]:
                raise ValueError(f"the config names {raw['mm_vision_tower']} ({k}={named[k]}) but its tensors say {k}={sizes[k]}")
        if named["image_size"] // named["patch_size"] != grid:
            raise ValueError(f"the config names {raw['mm_vision_tower']} ({named['image_size'] // named['patch_size']}^2 patches) "
                             f"but its position embeddings hold {grid}^2")
        sizes["image_size"] = named["image_size"]
        sizes["num_attention_heads"] = named["num_attention_heads"]
        # OV keeps all layers but the last; a folder may still hold that last layer (it is dropped then)
        if sizes["num_hidden_layers"] == named["num_hidden_layers"]:
            sizes["num_hidden_layers"] -= 1
    elif preset is not None:
        sizes["num_attention_heads"] = preset.vision_config.num_attention_heads
        if preset.vision_config.image_size // sizes["patch_size"] == grid:
            sizes["image_size"] = preset.vision_config.image_size
    else:
        raise ValueError(f"the vision tower {raw.get('mm_vision_tower')!r} is not one this project knows the sizes of "
                         f"({sorted(SIGLIP_BY_NAME)}): give a model preset for its number of attention heads")
    return sizes


def weights_backbone_config(weights_dir: str | Path, index: dict[str, TensorInfo] | None = None, preset=None) -> dict:
    """The backbone part of an AhaConfig (vision_config, text_config, image_token_index when known,
    tie_word_embeddings) as the weights' own config says."""
    d = Path(weights_dir)
    layout = detect_layout(d)
    raw = json.loads((d / "config.json").read_text())
    if layout == "llava-hf":
        drop = ("architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path", "auto_map")
        return {k: v for k, v in raw.items() if k not in drop}
    index = read_index(d) if index is None else index
    text_keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                 "vocab_size", "max_position_embeddings", "rope_theta", "rms_norm_eps", "tie_word_embeddings", "hidden_act")
    text = {"model_type": "qwen2", **{k: raw[k] for k in text_keys if k in raw}}
    vision = {"model_type": "siglip_vision_model", "vision_use_head": False, **_lmms_vision_sizes(raw, index, preset)}
    return {"vision_config": vision, "text_config": text, "tie_word_embeddings": bool(raw.get("tie_word_embeddings", False))}


def size_disagreements(preset, weights_cfg, other: str = "weights") -> list[str]:
    """Backbone sizes on which a preset (AhaConfig) and the weights' config (AhaConfig) differ."""
    out = []
    for sub, names in SIZE_FIELDS.items():
        a, b = getattr(preset, sub), getattr(weights_cfg, sub)
        for n in names:
            va, vb = getattr(a, n, None), getattr(b, n, None)
            if n == "rope_theta":  # transformers 5 keeps it inside rope_parameters
                va, vb = _rope_theta(a), _rope_theta(b)
            if va != vb:
                out.append(f"{sub}.{n}: preset {va!r}, {other} {vb!r}")
    return out


def _rope_theta(cfg):
    params = getattr(cfg, "rope_parameters", None) or {}
    return params.get("rope_theta", getattr(cfg, "rope_theta", None))


# --------------------------------------------------------------------------- the plan
@dataclass
class LoadPlan:
    """What loading a folder into a model will do, worked out from the file headers alone."""

    source: str
    layout: str
    names: str  # which key naming the folder uses (key_names)
    mapping: dict[str, str]  # file key -> model key
    dropped: dict[str, str]  # file key -> reason
    missing_heads: list[str]
    errors: list[str] = field(default_factory=list)

    def raise_if_bad(self) -> None:
        if self.errors:
            shown = "\n  ".join(self.errors[:20])
            more = f"\n  ... and {len(self.errors) - 20} more" if len(self.errors) > 20 else ""
            raise ValueError(f"{self.source} ({self.layout} layout) does not fit the model:\n  {shown}{more}")


def plan_load(model, index: dict[str, TensorInfo], layout: str, source: str) -> LoadPlan:
    """Map every file tensor onto ``model``'s state dict (the model may live on the meta device)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    tied = tied_keys(model)
    mapping, dropped, errors = {}, {}, []
    n_vis = model.config.vision_config.num_hidden_layers
    for k, info in sorted(index.items()):
        mk = map_key(k, layout)
        m = re.match(r"^model\.vision_tower\.encoder\.layers\.(\d+)\.", mk)
        if m and int(m.group(1)) >= n_vis and layout == "lmms-lab":
            dropped[k] = "SigLIP's last layer, which LLaVA-OneVision does not use"
            continue
        reason = next((r for pat, r in _KNOWN_UNUSED[layout] if re.search(pat, mk)), None)
        if reason is not None:
            dropped[k] = reason
            continue
        if mk not in expected:
            errors.append(f"unexpected tensor {k!r}" + (f" (read as {mk!r})" if mk != k else "") + ": the model has no such parameter")
            continue
        if tuple(info.shape) != expected[mk]:
            errors.append(f"tensor {k!r} has shape {list(info.shape)}, the model's {mk!r} has {list(expected[mk])}")
            continue
        if mk in mapping.values():
            errors.append(f"two tensors map to {mk!r}")
            continue
        mapping[k] = mk
    got = set(mapping.values())
    heads_present = [h for h in HEAD_KEYS if h in got]
    missing_heads = [h for h in HEAD_KEYS if h not in got]
    if heads_present and missing_heads:
        errors.append(f"the folder holds {heads_present} but not {missing_heads}: a partial set of heads")
    for k in sorted(expected):
        if k in got or k in HEAD_KEYS or k in tied:
            continue
        errors.append(f"missing tensor {k!r}: the folder has nothing for it")
    return LoadPlan(source, layout, key_names(index, layout), mapping, dropped, missing_heads if not heads_present else [], errors)


def key_names(index, layout: str) -> str:
    """Which naming a llava-hf folder uses (said in the load report)."""
    if layout != "llava-hf":
        return layout
    if any(k.startswith("language_model.") for k in index):
        return "hub legacy names"
    if any(k.startswith("model.language_model.model.") for k in index):
        return "transformers 5 save names"
    if any(k.startswith("model.vision_tower.vision_model.") for k in index):
        return "transformers 4.52-4.57 names"
    return "current names"


def tied_keys(model) -> set[str]:
    """Parameters that share storage with another one (lm_head tied to the embeddings)."""
    seen, tied = {}, set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            tied.add(name)
        seen.setdefault(id(p), name)
    return tied


# --------------------------------------------------------------------------- the report
@dataclass
class LoadReport:
    source: str
    layout: str
    tensors_in_files: int
    loaded: int
    dtype: str
    device: str
    names: str = ""
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count
    heads: str = "from the weights"
    # rows of embed_tokens and lm_head past the model's vocab that a llava-hf conversion padded with
    # random samples (conversion_padding_rows): not loaded, said here
    vocab_rows_dropped: int = 0
    weights_vocab: int | None = None

    def line(self) -> str:
        names = f", {self.names}" if self.names and self.names != self.layout else ""
        out = (f"loaded {self.source} ({self.layout}{names}): {self.loaded} of {self.tensors_in_files} tensors, "
               f"{self.dtype} on {self.device}; heads {self.heads}")
        if self.dropped:
            out += "; dropped " + ", ".join(f"{n} ({r})" for r, n in self.dropped.items())
        if self.vocab_rows_dropped:
            out += (f"; dropped the last {self.vocab_rows_dropped} rows of embed_tokens and lm_head (vocab "
                    f"{self.weights_vocab} -> {self.weights_vocab - self.vocab_rows_dropped}: the llava-hf conversion's "
                    f"random padding rows, past the tokenizer)")
        return out

    def to_dict(self) -> dict:
        return {"source": self.source, "layout": self.layout, "names": self.names,
                "tensors_in_files": self.tensors_in_files, "loaded": self.loaded, "dtype": self.dtype,
                "device": self.device, "dropped": dict(self.dropped), "heads": self.heads,
                "vocab_rows_dropped": self.vocab_rows_dropped, "weights_vocab": self.weights_vocab}


def count_reasons(dropped: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in dropped.values():
        out[r] = out.get(r, 0) + 1
    return out
