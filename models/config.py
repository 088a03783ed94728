"""The Aha! model configuration: a LLaVA-OneVision config plus the few fields Aha adds.

Kept deliberately small (the reference pushed every command-line argument into the model config):
frame pooling, placeholder, head options and loss weights. The backbone dimensions stay in the
native ``vision_config`` / ``text_config`` so that llava-hf checkpoints load unchanged.

Vision features: the OV checkpoints already hold SigLIP *without* its last layer (26 of 27 layers
for so400m), ``vision_feature_layer=-1`` then means "output of the last kept layer", taken from the
encoder hidden states, i.e. before SigLIP's post-layernorm - exactly what LLaVA-OneVision uses.
"""
from __future__ import annotations

import math

from huggingface_hub.dataclasses import strict
from transformers import LlavaOnevisionConfig

DEFAULT_LOSS_WEIGHTS = {
    "lm": 0.2,
    "informative": 0.5,
    "relevance": 8.0,
    "tv": 0.05,  # inside the relevance term: 8.0 * (smooth_l1 + 0.05 * tv)
    "uncertainty": 0.1,
    "diversity": 1e-3,  # inside the uncertainty term: nll - 1e-3 * std(log-variance)
}


def merge_loss_weights(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` applied; names must be known and weights non-negative numbers."""
    unknown = set(changes) - set(DEFAULT_LOSS_WEIGHTS)
    if unknown:
        raise ValueError(f"unknown loss weights {sorted(unknown)}; known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
    bad = {k: v for k, v in changes.items()
           if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0}
    if bad:
        raise ValueError(f"loss weights must be finite non-negative numbers, got {bad}")
    return {**base, **{k: float(v) for k, v in changes.items()}}


@strict
class AhaConfig(LlavaOnevisionConfig):
    # 27x27 SigLIP grid -> bilinear resize to ceil(27 / stride)^2 tokens per frame (stride 4 -> 7x7 = 49)
    frame_pool_stride: int = 4
    frame_pool_mode: str = "bilinear"
    # average / max pooling: False floors the grid as the reference does (27/4 -> 6x6, the border
    # patches are dropped); True keeps partial border windows (ceil: 7/4 -> 2x2 over the whole grid)
    frame_pool_ceil: bool = False
    # one more token per frame after the pooled grid: the whole grid reduced to one token (max with
    # frame_pool_mode max, else the mean). The heads read a frame's LAST token, which then holds the
    # whole frame's evidence while the grid tokens keep where things are (instructions/tiny_model.md)
    frame_summary_token: bool = False
    frame_placeholder: str = "<image>"
    # how frames are scaled into the frame_size canvas before the vision tower (data.video.RESIZE_MODES):
    # "antialias" (PIL bilinear) or "reference" (OpenCV INTER_LINEAR, no antialiasing: what the reference's
    # loaders did, so what the released Aha! weights were trained on; the aha-7b / aha-0.5b presets)
    frame_resize: str = "antialias"
    # detach the hidden state before the three heads (reference option, off by default)
    head_stop_grad: bool = False
    logvar_min: float = -4.0
    logvar_max: float = 1.5
    loss_weights: dict | None = None
    # "correct" (default) or "reference": the reference's loss defects, to reproduce its training
    loss_protocol: str = "correct"
    # the system turn the model is trained and run with (train.py and the streaming engine read it
    # unless told otherwise); None = models.chat.DEFAULT_SYSTEM_PROMPT, "" = an empty system turn
    system_prompt: str | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.loss_weights = merge_loss_weights(DEFAULT_LOSS_WEIGHTS, self.loss_weights or {})
        if self.frame_pool_mode not in ("bilinear", "average", "max"):
            raise ValueError(f"frame_pool_mode must be bilinear/average/max, got {self.frame_pool_mode!r}")
        if self.frame_resize not in ("antialias", "reference"):
            raise ValueError(f"frame_resize must be 'antialias' or 'reference', got {self.frame_resize!r}")
        if self.loss_protocol not in ("correct", "reference"):
            raise ValueError(f"loss_protocol must be 'correct' or 'reference', got {self.loss_protocol!r}")
        if isinstance(self.frame_pool_stride, bool) or not isinstance(self.frame_pool_stride, int) or self.frame_pool_stride < 1:
            raise ValueError(f"frame_pool_stride must be an integer >= 1, got {self.frame_pool_stride!r}")
        # the uncertainty head's log-variance is clamped to [logvar_min, logvar_max]: reversed or
        # non-finite bounds would clamp every frame to one value (a constant, meaningless uncertainty)
        lo, hi = self.logvar_min, self.logvar_max
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lo, hi)) or lo >= hi:
            raise ValueError(f"logvar_min / logvar_max must be finite numbers with logvar_min < logvar_max, got {lo!r} / {hi!r}")
        # SigLIP has no CLS token: "default" (drop the first token, CLIP's CLS) would drop a patch
        # and every frame would fail at the pooling (728 of 729 patches); said here, at load/build time
        vt = getattr(self.vision_config, "model_type", None)
        if vt == "siglip_vision_model" and self.vision_feature_select_strategy != "full":
            raise ValueError(f"vision_feature_select_strategy must be 'full' for a SigLIP tower (it has no CLS token "
                             f"to drop), got {self.vision_feature_select_strategy!r}")

    @property
    def frame_placeholder_id(self) -> int:
        return self.image_token_index

    @property
    def patch_grid(self) -> int:
        return self.vision_config.image_size // self.vision_config.patch_size

    @property
    def frame_grid(self) -> int:
        g, s = self.patch_grid, self.frame_pool_stride
        # bilinear resizes to ceil(g/s); avg/max pooling with kernel=stride floors (27/4 -> 6)
        # unless frame_pool_ceil
        return math.ceil(g / s) if self.frame_pool_mode == "bilinear" or self.frame_pool_ceil else g // s

    @property
    def tokens_per_frame(self) -> int:
        return self.frame_grid**2 + int(self.frame_summary_token)

    @property
    def frame_size(self) -> int:
        return self.vision_config.image_size
