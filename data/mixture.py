"""A training mixture from a dataset config (``configs/datasets/*.json``): one ConcatDataset.

Config format::

    {"description": "...",
     "datasets": [
       {"name": "shot2story_dvc", "type": "dvc",
        "video_root": "shot2story/videos", "anno_file": "shot2story/annotations/....json",
        "metadata": "shot2story/videos_metadata.json", "fps": 2, "max_frames": 128}, ...]}

Paths are relative to ``data_root`` (absolute paths are kept). ``type`` is one of ``TYPES``;
``fps`` and ``max_frames`` are honoured per dataset (the reference forwarded neither from the
command line and silently used its defaults); a few type-specific options are accepted
(``OPTIONS``), anything else is an error. The datasets are concatenated and sampled uniformly,
as in the reference (no re-weighting). The config's ``video_root`` string also names the
dataset's videos in the feature cache, so one cache serves every machine with the same layout.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

from torch.utils.data import ConcatDataset

from data.dvc import DenseVideoCaptioningDataset
from data.grounding import GroundingDataset
from data.hihd import HIHDDataset
from data.magqa import MAGQADataset
from data.prompts import SYSTEM_PROMPT
from utils.io import read_json

log = logging.getLogger(__name__)

TYPES = {"dvc": DenseVideoCaptioningDataset, "magqa": MAGQADataset, "grounding": GroundingDataset, "hihd": HIHDDataset}
REQUIRED = ("name", "type", "video_root", "anno_file", "metadata", "fps", "max_frames")
OPTIONS = {
    "dvc": {"coin_subset", "clip_stride", "unseen_captions"},
    "magqa": {"max_pre_question_frames"},
    "grounding": {"template_spec", "clip_stride"},
    "hihd": {"split", "quality_dropout"},
}


def load_mixture_config(path: str | Path) -> dict:
    return validate_mixture_config(read_json(path), str(path))


def validate_mixture_config(cfg: dict, path: str = "mixture config") -> dict:
    if not isinstance(cfg, dict) or not isinstance(cfg.get("datasets"), list) or not cfg["datasets"]:
        raise ValueError(f"{path}: expected {{'datasets': [ ... ]}} with at least one dataset")
    names = set()
    for i, d in enumerate(cfg["datasets"]):
        where = f"{path}: datasets[{i}]"
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected an object, got {d!r}")
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise ValueError(f"{where}: missing keys {missing}")
        if not isinstance(d["type"], str) or d["type"] not in TYPES:
            raise ValueError(f"{where}: unknown type {d['type']!r}; known: {sorted(TYPES)}")
        unknown = set(d) - set(REQUIRED) - OPTIONS[d["type"]]
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)} for type {d['type']!r}")
        fps, mx = d["fps"], d["max_frames"]
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or not fps > 0 \
                or (mx is not None and (isinstance(mx, bool) or not isinstance(mx, int) or mx < 1)):
            raise ValueError(f"{where}: fps must be a finite number > 0 and max_frames an integer >= 1 (or null), "
                             f"got {fps!r} and {mx!r}")
        for key in ("name", "video_root", "anno_file", "metadata"):
            if not isinstance(d[key], str) or not d[key]:
                raise ValueError(f"{where}: {key} must be a non-empty string, got {d[key]!r}")
        if d["name"] in names:
            raise ValueError(f"{where}: duplicate dataset name {d['name']!r}")
        names.add(d["name"])
    return cfg


class Mixture(ConcatDataset):
    """ConcatDataset that remembers its members by name."""

    def __init__(self, datasets: list):
        super().__init__(datasets)
        self.names = [d.name for d in datasets]

    def summary(self) -> dict[str, int]:
        return {d.name: len(d) for d in self.datasets}

    def frame_needs(self) -> list:
        return [need for d in self.datasets for need in d.frame_needs()]


def _resolve(root: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else root / q


def build_mixture(
    config: str | Path | dict,
    data_root: str | Path,
    template,
    frame_size: int = 384,
    seed: int = 0,
    feature_cache=None,
    max_tries: int = 5,
    system_prompt: str = SYSTEM_PROMPT,
    clip_memory=None,
    frame_resize: str = "antialias",
    max_tokens: int | None = None,
) -> Mixture:
    """``max_tokens``: the language model's context (``max_position_embeddings``); longer items are
    skipped and counted (``data.stream.StreamDataset.too_long``)."""
    cfg = validate_mixture_config(config) if isinstance(config, dict) else load_mixture_config(config)
    root = Path(data_root)
    members = []
    for d in cfg["datasets"]:
        cls = TYPES[d["type"]]
        options = {k: d[k] for k in OPTIONS[d["type"]] if k in d}
        ds = cls(
            _resolve(root, d["anno_file"]), _resolve(root, d["video_root"]), _resolve(root, d["metadata"]),
            template, fps=float(d["fps"]), max_frames=None if d["max_frames"] is None else int(d["max_frames"]),
            frame_size=frame_size, system_prompt=system_prompt, seed=seed, name=d["name"],
            feature_cache=feature_cache, max_tries=max_tries, video_namespace=str(d["video_root"]),
            clip_memory=clip_memory, frame_resize=frame_resize, max_tokens=max_tokens, **options,
        )
        if len(ds) == 0:  # a wrong metadata / video root, not a choice: training without it would exit 0
            raise ValueError(f"dataset {d['name']} of the mixture has no usable item ({ds.anno_file}; its skip log "
                             "above says why): fix data_root, its metadata or video_root, or remove it from the mixture")
        members.append(ds)
    mix = Mixture(members)
    if len(mix) == 0:
        raise ValueError("the training mixture has no item: check data_root, the annotations and the videos metadata")
    log.info("training mixture: %s (total %d)", mix.summary(), len(mix))
    return mix
