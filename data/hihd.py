"""HIHD (the paper's Human Intuition Highlight Dataset): relevance supervision with quality dropout.

Annotation: a CSV with columns ``youtube_id``, ``training_split``, ``query``, ``duration``,
``scores`` (JSON list, one replay score in [0, 1] per second) and ``quality_dropout`` (JSON list
of ``[start_s, end_s, kind]``, kind in ``data.degrade.KINDS``; may be empty). Rows of the chosen
split (``train``) whose ``{youtube_id}.mp4`` is valid in the metadata are kept; a row with
malformed scores or dropout segments is skipped and counted.

An item is the query, then ONE stream turn with every frame contiguous (as the online engine
feeds them; the reference gave each frame its own stream turn) and a relevance label per frame:
frame ``i`` (time ``i / fps``) takes the score of second ``floor(i / fps)``. Frames are those of the
video that have a score, at most ``max_frames`` (the first ones: at 1 fps and 128 frames the first
128 s, as the reference). The row's dropout segments become an immutable
``DegradationSchedule`` applied by target time to the native frames before letter-boxing, so the
same frame is degraded the same way in every epoch and worker (the reference consumed each segment
on first use). No informative labels.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass

from data.degrade import DegradationSchedule
from data.stream import (SkipLog, StreamDataset, StreamSample, TIME_EPS, check_relevance, relevance_messages,
                         resolve_video)
from data.video import num_sampled_frames

REQUIRED_COLUMNS = ("youtube_id", "training_split", "query", "scores")


@dataclass(frozen=True)
class HIHDRecord:
    sample_id: str
    video: str
    query: str
    relevance: tuple[float, ...]  # one per frame, already clipped to max_frames
    degradation: DegradationSchedule | None


def frame_scores(scores: list[float], n_video_frames: int, fps: float, max_frames: int | None) -> list[float]:
    """Per-frame labels from per-second scores (frames without a score are not used)."""
    n = min(n_video_frames, num_sampled_frames(len(scores), fps))
    if max_frames is not None:
        n = min(n, max_frames)
    return [scores[int(math.floor(i / fps + TIME_EPS))] for i in range(n)]


class HIHDDataset(StreamDataset):
    kind = "hihd"

    def __init__(self, *args, split: str = "train", quality_dropout: bool = True, **kwargs):
        if not isinstance(quality_dropout, bool):
            # bool("false") is True: a string or number would silently decide whether frames degrade
            raise ValueError(f"quality_dropout must be true or false, got {quality_dropout!r}")
        self.split = split
        self.quality_dropout = quality_dropout
        super().__init__(*args, **kwargs)

    def build_records(self, skips: SkipLog) -> list[HIHDRecord]:
        records = []
        with open(self.anno_file, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{self.anno_file}: missing CSV columns {missing} (have {reader.fieldnames})")
            for line, row in enumerate(reader, start=2):
                if row["training_split"] != self.split:
                    continue
                where = f"{self.anno_file}:{line}"
                try:
                    scores = check_relevance(json.loads(row["scores"]), where)
                except (ValueError, TypeError):
                    skips.skip("bad scores")
                    continue
                rel, why = resolve_video(self.metadata, row["youtube_id"])
                if rel is None:
                    skips.skip(why)
                    continue
                relevance = frame_scores(scores, self.video_frames(rel), self.fps, self.max_frames)
                if not relevance:
                    skips.skip("no scored frame")
                    continue
                try:
                    schedule = self._schedule(row, row["youtube_id"])
                except (ValueError, TypeError, IndexError):
                    skips.skip("bad quality_dropout")
                    continue
                records.append(HIHDRecord(row["youtube_id"], rel, row["query"], tuple(relevance), schedule))
        return records

    def _schedule(self, row: dict, sample_id: str) -> DegradationSchedule | None:
        raw = (row.get("quality_dropout") or "").strip()
        if not self.quality_dropout or not raw:
            return None
        segments = json.loads(raw)
        if not segments:
            return None
        # block noise is seeded per video from the dataset seed: fixed across epochs and workers
        seed = self.rng(sample_id, "quality_dropout").getrandbits(32)
        return DegradationSchedule.from_list(segments, seed=seed)

    def sample(self, index: int) -> StreamSample:
        r: HIHDRecord = self.records[index]
        return StreamSample(r.sample_id, r.video, self.fps, 0, relevance_messages(r.query, r.relevance), r.degradation)
