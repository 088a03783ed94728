"""Batches of stream items for the model.

Padding is on the **right** by default: every sample keeps positions 0..L-1 (the model computes
position ids from the cache position, so right padding needs none) and, the attention being
causal, no real token ever sees a pad, so each sample's outputs are exactly its unpadded ones.
Left padding is available (``padding_side="left"``); the collator then also returns
``position_ids`` counted from each sample's first real token, with the same guarantee.
Pads: ``input_ids`` = the tokenizer's pad id, ``attention_mask`` = 0, ``labels`` and
``informative_labels`` = -100, ``relevance_labels`` = -100.0.

Frames of all samples are concatenated in sample order (the model fills placeholders row-major:
every frame of sample 0, then sample 1, ...). Raw uint8 frames become SigLIP pixel values
(``models.frames.to_pixel_values``); cached ``vision_features`` / ``frame_embeds`` are
concatenated as they are. A batch must not mix the three.

Loss reduction over a batch (``models/losses.py``): each term is a mean over the labelled
positions of the whole batch (LM: target tokens; informative, relevance, uncertainty: labelled
frames; TV: consecutive labelled frames within a sample), i.e. samples weigh by their label counts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from models.chat import IGNORE
from models.frames import to_pixel_values

FRAME_KEYS = ("frames", "vision_features", "frame_embeds")
PAD_VALUES = {"input_ids": None, "labels": IGNORE, "informative_labels": IGNORE, "relevance_labels": float(IGNORE)}


@dataclass
class StreamCollator:
    pad_token_id: int
    frame_size: int = 384
    padding_side: str = "right"
    pixel_dtype: torch.dtype = torch.float32

    def __post_init__(self):
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")

    def __call__(self, items: list[dict]) -> dict:
        if not items:
            raise ValueError("cannot collate an empty batch")
        lengths = [int(it["input_ids"].shape[0]) for it in items]
        for it, n in zip(items, lengths):
            for key in PAD_VALUES:
                if key in it and int(it[key].shape[0]) != n:
                    raise ValueError(f"{it.get('sample_id')}: {key} has {it[key].shape[0]} entries for {n} tokens")
        width = max(lengths)
        batch: dict = {}
        for key, pad in PAD_VALUES.items():
            pad = self.pad_token_id if pad is None else pad
            dtype = torch.float if key == "relevance_labels" else torch.long
            out = torch.full((len(items), width), pad, dtype=dtype)
            for b, (it, n) in enumerate(zip(items, lengths)):
                values = it[key] if key in it else torch.full((n,), pad, dtype=dtype)
                sl = slice(0, n) if self.padding_side == "right" else slice(width - n, width)
                out[b, sl] = values.to(dtype)
            batch[key] = out
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for b, n in enumerate(lengths):
            if self.padding_side == "right":
                mask[b, :n] = 1
            else:
                mask[b, width - n:] = 1
        batch["attention_mask"] = mask
        if self.padding_side == "left":
            batch["position_ids"] = (mask.cumsum(dim=1) - 1).clamp(min=0)
        batch.update(self._frames(items))
        batch["sample_ids"] = [it.get("sample_id") for it in items]
        return batch

    def _frames(self, items: list[dict]) -> dict:
        kinds = {k for it in items for k in FRAME_KEYS if k in it}
        if len(kinds) > 1:
            raise ValueError(f"a batch mixes frame kinds {sorted(kinds)}; use one feature cache for every dataset")
        if not kinds:
            return {}
        kind = kinds.pop()
        if any(kind not in it for it in items):
            raise ValueError(f"some samples of the batch have no {kind!r}")
        if kind == "frames":
            frames = torch.cat([torch.as_tensor(it["frames"]) for it in items])
            return {"pixel_values": to_pixel_values(frames, self.frame_size, dtype=self.pixel_dtype)}
        return {kind: torch.cat([it[kind] for it in items])}
