"""The streaming prediction format shared by every benchmark driver and scorer.

One JSONL line per benchmark item (a video, or a video+query pair)::

    {"id": "<item id>", "video": "<path or id>", "query": "...", "duration": 183.4, "fps": 1.0,
     "frames": {"time": [...], "informative": [...], "relevance": [...], "uncertainty": [...]},
     "responses": [{"time": 12.0, "content": "..."}],
     "native_frame_index": [...]}            # optional: source frame of each sampled frame

``informative`` is the softmax probability of the "respond now" class, ``relevance`` the sigmoid
relevance, ``uncertainty`` the *raw* log-variance from the uncertainty head (unclamped); fusion
decides how to turn it into a penalty (see ``test.postprocess.fuse``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from utils.io import iter_jsonl

FRAME_KEYS = ("time", "informative", "relevance", "uncertainty")


@dataclass
class StreamPrediction:
    id: str
    time: np.ndarray
    informative: np.ndarray
    relevance: np.ndarray
    uncertainty: np.ndarray
    duration: float | None = None
    fps: float | None = None
    video: str | None = None
    query: str | None = None
    responses: list[dict] = field(default_factory=list)
    native_frame_index: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, rec: dict) -> "StreamPrediction":
        if "id" not in rec:
            raise ValueError("prediction record without 'id'")
        frames = rec.get("frames") or {}
        missing = [k for k in FRAME_KEYS if k not in frames]
        if missing:
            raise ValueError(f"prediction {rec['id']!r}: frames lack {missing}")
        arrays = {k: np.asarray(frames[k], dtype=np.float64) for k in FRAME_KEYS}
        n = {len(v) for v in arrays.values()}
        if len(n) != 1:
            raise ValueError(f"prediction {rec['id']!r}: frame arrays differ in length")
        nfi = rec.get("native_frame_index")
        known = {"id", "frames", "duration", "fps", "video", "query", "responses", "native_frame_index"}
        return cls(
            id=str(rec["id"]),
            duration=rec.get("duration"),
            fps=rec.get("fps"),
            video=rec.get("video"),
            query=rec.get("query"),
            responses=list(rec.get("responses") or []),
            native_frame_index=None if nfi is None else np.asarray(nfi, dtype=np.int64),
            extra={k: v for k, v in rec.items() if k not in known},
            **arrays,
        )

    def to_record(self) -> dict:
        rec = {
            "id": self.id,
            "video": self.video,
            "query": self.query,
            "duration": self.duration,
            "fps": self.fps,
            "frames": {k: getattr(self, k).tolist() for k in FRAME_KEYS},
            "responses": self.responses,
        }
        if self.native_frame_index is not None:
            rec["native_frame_index"] = self.native_frame_index.tolist()
        rec.update(self.extra)
        return rec


def load_predictions(path) -> dict[str, StreamPrediction]:
    """Read a prediction JSONL; a later line for the same id replaces an earlier one (resumed runs)."""
    out: dict[str, StreamPrediction] = {}
    for rec in iter_jsonl(path):
        p = StreamPrediction.from_record(rec)
        out[p.id] = p
    return out
