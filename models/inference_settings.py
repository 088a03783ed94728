"""The inference settings a checkpoint carries: how its model is meant to be streamed.

A model trained at 2 fps on 12-frame windows scores poorly at 1 fps with a 2048-token window, so
the settings it was trained with travel with it (``aha_model.json``, key ``inference``). Every
online driver (live CLI, benchmark drivers, demo) resolves each setting as: the command-line flag
when given, else the checkpoint's, else the project default (``models.streaming.EngineConfig`` and
``DEFAULT_FPS``), and records which one it took.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from models.cache import sink_fits
from models.streaming import EngineConfig

DEFAULT_FPS = 1.0
_ENGINE_DEFAULTS = EngineConfig()


@dataclass(frozen=True)
class InferenceSettings:
    fps: float = DEFAULT_FPS
    cache_policy: str = _ENGINE_DEFAULTS.cache_policy
    window: int = _ENGINE_DEFAULTS.window
    sink_tokens: int = _ENGINE_DEFAULTS.sink_tokens
    prompt_order: str = _ENGINE_DEFAULTS.prompt_order
    # None: the model config's system prompt (models.chat.system_prompt_of)
    system_prompt: str | None = None
    # what the model's frame pooling produces; informative here, checked against the model on load
    tokens_per_frame: int | None = None

    def __post_init__(self):
        if not (isinstance(self.fps, (int, float)) and not isinstance(self.fps, bool) and math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"inference fps must be a positive number, got {self.fps!r}")
        for name in ("window", "sink_tokens"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"inference {name} must be a non-negative integer, got {v!r}")
        if self.system_prompt is not None and not isinstance(self.system_prompt, str):
            raise ValueError(f"inference system_prompt must be text or null, got {self.system_prompt!r}")
        tpf = self.tokens_per_frame
        if tpf is not None and (isinstance(tpf, bool) or not isinstance(tpf, int) or tpf < 1):
            raise ValueError(f"inference tokens_per_frame must be a positive integer or null, got {tpf!r}")
        if not sink_fits(self.cache_policy, self.window, self.sink_tokens):
            raise ValueError(f"inference sink_tokens ({self.sink_tokens}) must be fewer than the window ({self.window}) "
                             f"under the {self.cache_policy} cache policy")
        # the engine's own checks (policy names, prompt order) run on the same values
        EngineConfig(prompt_order=self.prompt_order, cache_policy=self.cache_policy, window=self.window, sink_tokens=self.sink_tokens)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> InferenceSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown inference settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def resolve(flags: dict, carried: InferenceSettings | None) -> tuple[InferenceSettings, dict[str, str]]:
    """Each setting from its flag (not None), else the checkpoint's, else the default; returns the
    settings and, per setting, where it came from ("flag", "checkpoint" or "default")."""
    names = [f.name for f in dataclasses.fields(InferenceSettings) if f.name != "tokens_per_frame"]
    unknown = set(flags) - set(names)
    if unknown:
        raise ValueError(f"not inference settings: {sorted(unknown)}")
    base = carried or InferenceSettings()
    values, source = {}, {}
    for n in names:
        if flags.get(n) is not None:
            values[n], source[n] = flags[n], "flag"
        else:
            values[n] = getattr(base, n)
            source[n] = "checkpoint" if carried is not None else "default"
    values["tokens_per_frame"] = base.tokens_per_frame
    return InferenceSettings(**values), source
