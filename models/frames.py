"""Pixel normalisation for SigLIP: uint8 RGB -> (x / 255 - 0.5) / 0.5 in [-1, 1].

Frames arrive already letterboxed to the vision size (data/video.py); a wrong size is an error here
rather than a silent resize, so the geometry is decided in one place.
"""
from __future__ import annotations

import numpy as np
import torch

SIGLIP_MEAN = 0.5
SIGLIP_STD = 0.5


def to_pixel_values(frames, size: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """frames: uint8 array/tensor [F, H, W, 3] (or [H, W, 3]) or [F, 3, H, W] -> float [F, 3, size, size]."""
    x = torch.as_tensor(np.asarray(frames) if not torch.is_tensor(frames) else frames)
    if x.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 RGB, got {x.dtype}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"frames must be [F, H, W, 3] or [F, 3, H, W], got {tuple(x.shape)}")
    if x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    if tuple(x.shape[1:]) != (3, size, size):
        raise ValueError(f"frames must be letterboxed to {size}x{size} RGB, got {tuple(x.shape[1:])}")
    x = x.to(device=device, dtype=torch.float32)
    return ((x / 255.0 - SIGLIP_MEAN) / SIGLIP_STD).to(dtype)
