"""KV-cache policies for the streaming engine, on top of transformers' ``DynamicCache``.

Positions are always the cache index: a token appended to a cache of length L gets position L.
When a policy evicts tokens, the kept keys *after* the evicted span are re-rotated by minus the
number of evicted tokens (RoPE rotations compose: R(p - s) = R(-s) R(p)), so every kept key again
carries the position of its current index and positions never exceed the window (StreamingLLM).
Values carry no position and are kept as they are.

Policies (``make_policy(name, ...)``):
- ``unbounded``: never evicts (memory grows with the video);
- ``sink``: the first ``sink_tokens`` entries plus the most recent ones, ``window`` in total;
- ``dynamic_sink``: the sink is the whole prefix up to the end of the task-query turn (system prompt
  and query), fixed when the engine marks it, plus ``window`` recent tokens;
- ``sliding``: the most recent ``window`` tokens only (a sink of 0);
- ``sink_reference``: the reference's SinkCache, quirks included, to reproduce the released
  numbers (aha_reference.md 11.5-11.7): a forward of q tokens is appended while ``L + q < window``;
  otherwise the first ``sink_tokens`` entries, the last ``window - sink_tokens - q`` old entries and
  the new ones are kept, and the kept old keys are rotated by -q whatever the number evicted; RoPE
  positions of a forward start at the cache length *before* eviction (so they saturate at the
  window and can jump). Attention stays causal over the kept entries (flash-attention semantics,
  what the released numbers used).
Eviction happens only in ``make_room`` before new frame / query tokens are appended; tokens that a
response adds are evicted at the next ``make_room``, or cropped away exactly by ``truncate`` when
assistant turns are removed.
"""
from __future__ import annotations

import torch
from transformers import DynamicCache

POLICIES = ("unbounded", "sink", "dynamic_sink", "sliding", "sink_reference")


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class CachePolicy:
    """Owns a ``DynamicCache`` and keeps it within budget. ``inv_freq`` is the model's RoPE inverse frequencies."""

    def __init__(self, name: str = "sink", window: int = 2048, sink_tokens: int = 32, inv_freq: torch.Tensor | None = None,
                 rerotate: bool = True):
        if name not in POLICIES:
            raise ValueError(f"cache policy must be one of {POLICIES}, got {name!r}")
        if name != "unbounded" and window <= 0:
            raise ValueError("window must be positive")
        if name in ("sink", "sink_reference") and sink_tokens >= window:
            raise ValueError(f"sink_tokens ({sink_tokens}) must be smaller than the window ({window})")
        self.name = name
        self.window = window
        self.sink_tokens = 0 if name == "sliding" else sink_tokens
        self.rerotate = rerotate
        self.inv_freq = inv_freq
        self.cache = DynamicCache()
        self.evicted_total = 0

    # ------------------------------------------------------------------ state
    def __len__(self) -> int:
        return self.cache.get_seq_length()

    def reset(self) -> None:
        self.cache = DynamicCache()
        self.evicted_total = 0
        if self.name == "dynamic_sink":
            self.sink_tokens = 0

    def mark_sink(self) -> None:
        """dynamic_sink: everything in the cache now (system + task query) becomes the sink."""
        if self.name == "dynamic_sink":
            self.sink_tokens = len(self)

    @property
    def capacity(self) -> int | None:
        if self.name in ("unbounded", "sink_reference"):  # sink_reference evicts in prepare()
            return None
        if self.name == "dynamic_sink":
            return self.sink_tokens + self.window
        return self.window

    # ------------------------------------------------------------------ edits
    def prepare(self, n_new: int, evict: bool = True) -> tuple[int, int]:
        """Make room for ``n_new`` tokens; returns (first RoPE position, first cache index) for them."""
        if self.name == "sink_reference" and evict:
            before = len(self)
            if before + n_new >= self.window:
                keep_old = self.window - self.sink_tokens - n_new
                if keep_old < 0:
                    raise ValueError(f"{n_new} new tokens do not fit a window of {self.window} with {self.sink_tokens} sink tokens")
                self._evict(self.sink_tokens, before - self.sink_tokens - keep_old, rotate_by=n_new)
            return before, len(self)
        if evict:
            self.make_room(n_new)
        return len(self), len(self)

    def make_room(self, n_new: int) -> int:
        """Evict so that ``n_new`` tokens fit; returns how many tokens were evicted."""
        cap = self.capacity
        if cap is None:
            return 0
        cur = len(self)
        if n_new > cap - self.sink_tokens:
            raise ValueError(f"{n_new} new tokens do not fit a window of {cap} with {self.sink_tokens} sink tokens")
        excess = cur + n_new - cap
        if excess <= 0:
            return 0
        self._evict(self.sink_tokens, excess)
        return excess

    def truncate(self, length: int) -> None:
        """Drop everything after ``length`` (undo a response; nothing was evicted in between)."""
        cur = len(self)
        if length > cur:
            raise ValueError(f"cannot truncate a cache of {cur} to {length}")
        if length < cur:
            for layer in self.cache.layers:
                layer.keys = layer.keys[..., :length, :]
                layer.values = layer.values[..., :length, :]

    def _evict(self, start: int, count: int, rotate_by: int | None = None) -> None:
        shift = count if rotate_by is None else rotate_by
        for layer in self.cache.layers:
            k, v = layer.keys, layer.values
            kept_k = k[..., start + count:, :]
            if self.rerotate and kept_k.shape[-2] and shift:
                kept_k = self._rotate(kept_k, -shift)
            layer.keys = torch.cat([k[..., :start, :], kept_k], dim=-2)
            layer.values = torch.cat([v[..., :start, :], v[..., start + count:, :]], dim=-2)
        self.evicted_total += count

    def _rotate(self, k: torch.Tensor, shift: int) -> torch.Tensor:
        if self.inv_freq is None:
            raise ValueError("re-rotation needs the model's RoPE inv_freq")
        ang = shift * self.inv_freq.to(device=k.device, dtype=torch.float32)
        emb = torch.cat((ang, ang))
        cos, sin = emb.cos(), emb.sin()
        kf = k.float()
        return (kf * cos + rotate_half(kf) * sin).to(k.dtype)


def model_inv_freq(model) -> torch.Tensor:
    """The RoPE inverse frequencies of the language model (raw, without attention scaling)."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    return lm.model.language_model.rotary_emb.inv_freq.detach().clone()
