"""Temporal grounding as a stream with binary relevance (MMDuet's DiDeMo / HiREST / QueryD format).

Annotation: a JSON list of ``{"video_uid", "query", "timestamps": [[s, e], ...]}``. The user turn
is the query wrapped in one of ``data.prompts.QUERY_TEMPLATES`` (chosen per item from the dataset
seed; the first two templates are the bare query), then ONE stream turn over the video (at most
``max_frames`` frames) whose frames are relevant (1.0) when their time ``i / fps`` lies in some
span ``[s, e]`` (closed: a span shorter than a frame interval still marks the frame at its start
if it falls on one), else 0.0. An item without a span, or with a span starting past its video's end
(``data.stream.past_video_end``), is skipped and counted. No informative labels. Not part of the reference mixture.
With ``clip_stride`` (``data/stream.py``) every item gives one window per stride, each with the
same query and its own frames' labels.
"""
from __future__ import annotations

from dataclasses import dataclass

from data.prompts import render_query
from data.stream import (SkipLog, StreamDataset, StreamSample, TIME_EPS, past_video_end, relevance_messages, resolve_video,
                         text_field, time_span, window_starts)
from utils.io import read_json


@dataclass(frozen=True)
class GroundingRecord:
    sample_id: str
    video: str
    n_frames: int
    query: str
    spans: tuple[tuple[float, float], ...]
    start_frame: int = 0


def span_relevance(spans, n_frames: int, fps: float, start_frame: int = 0) -> list[float]:
    """Relevance of frames ``start_frame .. start_frame + n_frames - 1`` (frame i at time i / fps)."""
    out = []
    for i in range(start_frame, start_frame + n_frames):
        t = i / fps
        out.append(1.0 if any(s - TIME_EPS <= t <= e + TIME_EPS for s, e in spans) else 0.0)
    return out


class GroundingDataset(StreamDataset):
    kind = "grounding"

    def __init__(self, *args, template_spec: str = "random", **kwargs):
        self.template_spec = template_spec
        super().__init__(*args, **kwargs)

    def build_records(self, skips: SkipLog) -> list[GroundingRecord]:
        data = read_json(self.anno_file)
        if not isinstance(data, list):
            raise ValueError(f"{self.anno_file}: expected a JSON list of grounding items")
        records = []
        for i, item in enumerate(data):
            where = f"{self.anno_file}[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("timestamps"), list) or "query" not in item:
                raise ValueError(f"{where}: need 'query' and 'timestamps' [[s, e], ...], got {item!r}")
            spans = tuple(time_span(sp, where, "timestamp") for sp in item["timestamps"])
            query = text_field(item["query"], where, "query")
            rel, why = resolve_video(self.metadata, str(item["video_uid"]))
            if rel is None:
                skips.skip(why)
                continue
            if not query.strip():  # checked before a query template wraps it in text
                skips.skip("empty question or answer")
                continue
            if not spans:
                # no relevant moment: every frame would be taught irrelevant to its own query
                skips.skip("no timestamp")
                continue
            if any(past_video_end(s, float(self.metadata[rel]["duration"]), self.fps) for s, _ in spans):
                # the video is shorter than its annotation: the span would mark no frame
                skips.skip("timestamp after the video's end")
                continue
            total = self.video_frames(rel)
            n = total if self.max_frames is None else min(total, self.max_frames)
            if self.clip_stride is None:
                records.append(GroundingRecord(f"{item['video_uid']}#{i}", rel, n, query, spans))
                continue
            for start in window_starts(total, self.max_frames, self.clip_stride):
                records.append(GroundingRecord(f"{item['video_uid']}#{i}@{start}", rel, n, query, spans, start))
        return records

    def sample(self, index: int) -> StreamSample:
        r: GroundingRecord = self.records[index]
        query, _ = render_query(r.query, self.template_spec, self.seed, f"{self.name}:{r.sample_id}")
        msgs = relevance_messages(query, span_relevance(r.spans, r.n_frames, self.fps, r.start_frame))
        return StreamSample(r.sample_id, r.video, self.fps, r.start_frame, msgs)
