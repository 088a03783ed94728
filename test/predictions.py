"""The streaming prediction format shared by every benchmark driver and scorer.

One JSONL line per benchmark item (a video, or a video+query pair)::

    {"id": "<item id>", "video": "<path or id>", "query": "...", "duration": 183.4, "fps": 1.0,
     "frames": {"time": [...], "informative": [...], "relevance": [...], "uncertainty": [...]},
     "responses": [{"time": 12.0, "content": "..."}],
     "native_frame_index": [...]}            # optional: source frame of each sampled frame

``informative`` is the softmax probability of the "respond now" class, ``relevance`` the sigmoid
relevance, ``uncertainty`` the *raw* log-variance from the uncertainty head (unclamped); fusion
decides how to turn it into a penalty (see ``test.postprocess.fuse``).

Reading checks every line (``data.benchmarks.validate``): times finite, >= 0, strictly increasing
and not past the streamed video's duration; head scores finite numbers (no booleans, no null);
arrays of one length; ids present, not null and unique. A bad line is an error naming ``file:line``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data.benchmarks.validate import InputError, UniqueIds, frame_times, item_id, number, numbers, read_jsonl

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
    def from_record(cls, rec: dict, path=None, line=None) -> "StreamPrediction":
        if not isinstance(rec, dict) or "id" not in rec:
            raise InputError("prediction record without 'id'", path, line)
        pid = item_id(rec["id"], "prediction id", path, line)
        frames = rec.get("frames")
        if not isinstance(frames, dict):
            raise InputError(f"prediction {pid!r}: 'frames' must be an object of per-frame arrays", path, line)
        missing = [k for k in FRAME_KEYS if k not in frames]
        if missing:
            raise InputError(f"prediction {pid!r}: frames lack {missing}", path, line)
        duration = rec.get("duration")
        duration = None if duration is None else number(duration, f"prediction {pid!r} duration", path, line, positive=True)
        fps = rec.get("fps")
        fps = None if fps is None else number(fps, f"prediction {pid!r} fps", path, line, positive=True)
        arrays = {"time": frame_times(frames["time"], f"prediction {pid!r} frame times", path, line, duration)}
        for k in FRAME_KEYS[1:]:
            arrays[k] = numbers(frames[k], f"prediction {pid!r} {k} scores", path, line)
        n = {len(v) for v in arrays.values()}
        if len(n) != 1:
            raise InputError(f"prediction {pid!r}: frame arrays differ in length "
                             f"({ {k: len(v) for k, v in arrays.items()} })", path, line)
        nfi = rec.get("native_frame_index")
        if nfi is not None:
            nfi = numbers(nfi, f"prediction {pid!r} native_frame_index", path, line, min_value=0.0)
            if len(nfi) != len(arrays["time"]) or np.any(nfi != np.round(nfi)):
                raise InputError(f"prediction {pid!r}: native_frame_index must hold one integer per frame", path, line)
            nfi = nfi.astype(np.int64)
        responses = rec.get("responses") or []
        if not isinstance(responses, list):
            raise InputError(f"prediction {pid!r}: 'responses' must be a list", path, line)
        known = {"id", "frames", "duration", "fps", "video", "query", "responses", "native_frame_index"}
        return cls(id=pid, duration=duration, fps=fps, video=rec.get("video"), query=rec.get("query"),
                   responses=list(responses), native_frame_index=nfi,
                   extra={k: v for k, v in rec.items() if k not in known}, **arrays)

    def to_record(self) -> dict:
        rec = {
            "id": self.id, "video": self.video, "query": self.query, "duration": self.duration, "fps": self.fps,
            "frames": {k: getattr(self, k).tolist() for k in FRAME_KEYS}, "responses": self.responses,
        }
        if self.native_frame_index is not None:
            rec["native_frame_index"] = self.native_frame_index.tolist()
        rec.update(self.extra)
        return rec


def load_predictions(path) -> dict[str, StreamPrediction]:
    """Read a prediction JSONL (every line checked; an id twice, an empty file or a non-object line
    is refused with ``file:line``)."""
    out: dict[str, StreamPrediction] = {}
    ids = UniqueIds("prediction id")
    for line, rec in read_jsonl(path, "prediction file"):
        p = StreamPrediction.from_record(rec, path, line)
        ids.add(p.id, path, line)
        out[p.id] = p
    return out
