"""Multi-answer grounded QA (Shot2Story-MAGQA) as a stream.

Annotation: a JSON list of ``{"video_uid", "video_start_time"?, "question_id"?, "conversation":
[{"role": "user", "content", "time"}, {"role": "assistant", "content", "time", "timespan"?,
"learn"?}, ...]}``. The first turn must be a user question asked inside the video
(``0 < time <= duration`` and before the last frame), and no turn may be said (or its event centred) past
the video's end (``data.stream.past_video_end``); other items are skipped and counted when the dataset
is built.

Pre-question context: ``w`` frames before the question are prepended as a stream turn (negative
informative labels: nothing is to be said before the question). ``w`` is drawn uniformly, per
item from the dataset seed, between the number of frames from ``video_start_time`` to the
question and the number from 0 to the question, both capped at ``max_pre_question_frames`` (20
as the reference; the reference drew first and clipped after, piling mass on the cap). The
loaded clip starts ``w`` frames before the question; ``max_frames`` counts from there. Turn
placement and informative labels follow ``data/stream.py``. No relevance labels.
"""
from __future__ import annotations

from dataclasses import dataclass

from data.stream import (SkipLog, StreamDataset, StreamSample, Turn, clip_messages, frame_at_or_after, learn_flag, seconds, text_field,
                         time_span, resolve_video, timeline_messages, turns_past_video_end)
from utils.io import read_json


@dataclass(frozen=True)
class MAGQARecord:
    sample_id: str
    video: str
    n_frames: int
    start_time: float
    turns: tuple[Turn, ...]


def parse_turn(t: dict, where: str) -> Turn:
    if not isinstance(t, dict) or not {"role", "content", "time"} <= t.keys():
        raise ValueError(f"{where}: a turn needs 'role', 'content' and a numeric 'time', got {t!r}")
    role, content, time = t["role"], text_field(t["content"], where, "turn content"), seconds(t["time"], where, "turn time")
    span = t.get("timespan")
    if span is not None:
        span = time_span(span, where)
    return Turn(role, time, content, learn=learn_flag(t.get("learn"), where), span=span)


class MAGQADataset(StreamDataset):
    kind = "magqa"

    def __init__(self, *args, max_pre_question_frames: int = 20, **kwargs):
        if max_pre_question_frames < 0:
            raise ValueError(f"max_pre_question_frames must be >= 0, got {max_pre_question_frames}")
        self.max_pre_question_frames = int(max_pre_question_frames)
        super().__init__(*args, **kwargs)

    def build_records(self, skips: SkipLog) -> list[MAGQARecord]:
        data = read_json(self.anno_file)
        if not isinstance(data, list):
            raise ValueError(f"{self.anno_file}: expected a JSON list of MAGQA items")
        records = []
        for i, item in enumerate(data):
            where = f"{self.anno_file}[{i}]"
            turns = tuple(parse_turn(t, where) for t in item.get("conversation", []))
            if not turns or turns[0].role != "user":
                skips.skip("first turn not a user question")
                continue
            if not any(t.role == "assistant" for t in turns):
                skips.skip("no answer")
                continue
            rel, why = resolve_video(self.metadata, str(item["video_uid"]))
            if rel is None:
                skips.skip(why)
                continue
            duration = float(self.metadata[rel]["duration"])
            n = self.video_frames(rel)
            q = turns[0].time
            if not (0 < q <= duration) or frame_at_or_after(q, self.fps) >= n:
                skips.skip("question time outside the video")
                continue
            if turns_past_video_end(turns, duration, self.fps):
                # a later answer past the video's end would be answered on its last frame, merged with others
                skips.skip("turn after the video's end")
                continue
            sid = str(item["question_id"]) if "question_id" in item else f"{item['video_uid']}#{i}"
            records.append(MAGQARecord(sid, rel, n, seconds(item.get("video_start_time", 0.0), where, "video_start_time"), turns))
        return records

    def pre_question_frames(self, r: MAGQARecord) -> int:
        k_q = frame_at_or_after(r.turns[0].time, self.fps)
        cap = self.max_pre_question_frames
        since_start = max(0, k_q - frame_at_or_after(r.start_time, self.fps))
        lo, hi = min(since_start, cap), min(k_q, cap)
        return self.rng(r.sample_id, "pre_question").randint(lo, hi)

    def sample(self, index: int, pre_question_frames: int | None = None) -> StreamSample:
        r: MAGQARecord = self.records[index]
        w = self.pre_question_frames(r) if pre_question_frames is None else pre_question_frames
        start = frame_at_or_after(r.turns[0].time, self.fps) - w
        msgs = clip_messages(timeline_messages(r.turns, self.fps, r.n_frames, start_frame=start), self.max_frames)
        return StreamSample(r.sample_id, r.video, self.fps, start, msgs)

    def max_end_frame(self, index: int) -> int:
        # the fewest pre-question frames start the clip latest, so max_frames reaches furthest
        r: MAGQARecord = self.records[index]
        k_q = frame_at_or_after(r.turns[0].time, self.fps)
        fewest = min(max(0, k_q - frame_at_or_after(r.start_time, self.fps)), self.max_pre_question_frames)
        return self.sample(index, pre_question_frames=fewest).end_frame
