"""A stand-in for the streaming engine that reads every pixel it is given (for the error-contract and
fuzz tests: decoding, validation, skipping and recording are exercised without a model's cost).

Its scores are functions of the frame content (mean and spread of the pixels), so a frame that a
damaged file changes, drops or repeats changes the predictions: a "silently changed result"
cannot hide behind a model that ignores its input.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from models.streaming import EngineConfig, FrameRecord

FRAME_SIZE = 32


class FakeEngine:
    tpf = 1
    frame_size = FRAME_SIZE
    frame_resize = "antialias"  # the model config's default (the drivers pass it to every frame source)
    device = "cpu"
    dtype = "float32"
    system_prompt = ""

    def __init__(self, cfg: EngineConfig | None = None):
        self.cfg = cfg or EngineConfig()
        self.model = SimpleNamespace(config=SimpleNamespace(frame_size=FRAME_SIZE, tokens_per_frame=1, frame_resize="antialias"))
        self.frames_seen = 0

    def reset(self) -> None:
        pass

    def add_query(self, text: str) -> None:
        pass

    def describe_cache(self) -> dict:
        return {"fake": True, "frames": self.frames_seen}

    def run(self, frames, queries=(), vision_batch: int = 1, frames_per_step: int | None = None, background: bool | None = None):
        for i, ev in enumerate(frames):
            t, img = (ev.time, ev.image) if hasattr(ev, "time") else ev
            a = np.asarray(img, dtype=np.float64)
            self.frames_seen += 1
            yield FrameRecord(frame=i, time=float(t), informative=float(a.mean() / 255.0),
                              relevance=float(min(1.0, a.std() / 128.0)), uncertainty=0.0, cache_len=i + 1)


def fake_load_model(args, loader=None):
    """``test.live_infer.load_model`` without a model: resolves the settings as a run without a
    checkpoint does and returns (None, None)."""
    from models.inference_settings import resolve
    from test.engine_args import SETTING_FLAGS

    settings, sources = resolve({k: getattr(args, k) for k in SETTING_FLAGS}, None)
    for k in SETTING_FLAGS:
        setattr(args, k, getattr(settings, k))
    args.settings_source = sources
    args.model_record = {"fake": True}
    return None, None


def install(monkeypatch, count: dict | None = None) -> dict:
    """Route test.live_infer and test.run_benchmark to FakeEngine; returns a dict counting loads."""
    import models.streaming
    from test import live_infer, run_benchmark

    count = count if count is not None else {"loads": 0}

    def load(args, loader=None):
        count["loads"] += 1
        return fake_load_model(args)

    monkeypatch.setattr(live_infer, "load_model", load)
    monkeypatch.setattr(models.streaming, "StreamingEngine", lambda model, tok, cfg: FakeEngine(cfg))

    def make_engine(args, lanes=None):
        count["loads"] += 1
        fake_load_model(args)
        return FakeEngine(live_infer.engine_config(args))

    monkeypatch.setattr(run_benchmark, "_make_engine", make_engine)
    return count
