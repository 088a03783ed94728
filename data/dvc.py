"""Dense video captioning as a stream (Shot2Story human subset, COIN).

Two annotation formats are read (detected from the file):

* **narrations** (the reference's Shot2Story and COIN training files, from MMDuet):
  ``{video_uid: {annotation_uid: [{"text", "time", "timespan": [s, e], "learn"?}, ...]}}``;
  one item per (video, annotation). ``time`` is when the caption is said, ``timespan`` the event
  it describes (informative positives run from its midpoint to ``time``), ``learn`` (default
  true) whether the caption text gets LM labels.
* **COIN** (the official ``COIN.json``): ``{"database": {video_id: {"subset": "training",
  "annotation": [{"segment": [s, e], "label": str}, ...]}}}``; one item per video of the chosen
  subset, each step said when it ends (``time = e``, ``timespan = [s, e]``).

Per item, narrations are sorted by time; a caption equal to the previous one is skipped (the
reference's duplicate rule); turn placement, informative labels and clipping follow
``data/stream.py``; an item with a caption said (or an event centred) past its video's end is skipped
and counted (``data.stream.past_video_end``). The user instruction is one of ``data.prompts.DVC_INSTRUCTIONS``, chosen per
item from the dataset seed. No relevance labels. With ``clip_stride`` (``data/stream.py``) an item
gives one window per stride: the instruction right before the window's first frame, then the
captions answered inside the window (answer frame at or after its first frame) whose event does not
end at or before that frame (``answered_in_window``; ``unseen_captions="keep"`` keeps those too).
"""
from __future__ import annotations

from dataclasses import dataclass

from data.prompts import DVC_INSTRUCTIONS
from data.stream import (TIME_EPS, SkipLog, StreamDataset, StreamSample, Turn, clip_messages, frame_at_or_after, learn_flag,
                         resolve_video, seconds, text_field, time_span, timeline_messages, turns_past_video_end, window_starts)
from utils.io import read_json


@dataclass(frozen=True)
class DVCRecord:
    sample_id: str
    video: str
    n_frames: int
    narrations: tuple[Turn, ...]
    start_frame: int = 0


def parse_narration(n: dict, where: str) -> Turn:
    if not isinstance(n, dict) or "text" not in n or "time" not in n:
        raise ValueError(f"{where}: a narration needs 'text' and a numeric 'time', got {n!r}")
    text, time = text_field(n["text"], where, "narration text"), seconds(n["time"], where, "narration time")
    span = n.get("timespan")
    if span is not None:
        span = time_span(span, where)
    return Turn("assistant", time, text, learn=learn_flag(n.get("learn"), where), span=span)


def coin_narrations(entry: dict, where: str) -> list[dict]:
    out = []
    for a in entry.get("annotation", []):
        if not isinstance(a, dict) or "segment" not in a or "label" not in a:
            raise ValueError(f"{where}: a COIN step needs 'segment' [start, end] and 'label', got {a!r}")
        s, e = time_span(a["segment"], where, "segment")
        label = text_field(a["label"], where, "step label")
        out.append({"text": label, "time": e, "timespan": [s, e]})
    return out


def dedupe_narrations(turns: list[Turn]) -> list[Turn]:
    """Sort by time (stable) and drop a caption repeating the previous one."""
    out: list[Turn] = []
    for t in sorted(turns, key=lambda t: t.time):
        if out and t.content == out[-1].content:
            continue
        out.append(t)
    return out


def answered_in_window(turn: Turn, start: int, fps: float, keep_unseen: bool = False) -> bool:
    """Whether a window starting at frame ``start`` teaches this caption: it is answered inside the
    window (an answer follows frame ceil(time * fps)) and its event (``timespan``) does not end at or
    before the window's first frame (unless ``keep_unseen``). A caption of an event the window never
    shows (one said when its event ends, on the window's first frame) is a label no model can
    predict from the window: a response on a first frame, with a caption guessed from nothing."""
    if frame_at_or_after(turn.time, fps) < start:
        return False
    return keep_unseen or turn.span is None or turn.span[1] * fps > start + TIME_EPS


class DenseVideoCaptioningDataset(StreamDataset):
    kind = "dvc"

    def __init__(self, *args, coin_subset: str = "training", unseen_captions: str = "drop", **kwargs):
        # "keep": also teach a window the captions of events it never shows (before session 11; the
        # shipped aha-tiny-synth v7 was trained so, and scripts/train_tiny.sh reproduces it with it)
        if unseen_captions not in ("drop", "keep"):
            raise ValueError(f"unseen_captions must be 'drop' or 'keep', got {unseen_captions!r}")
        self.coin_subset = coin_subset
        self.unseen_captions = unseen_captions
        super().__init__(*args, **kwargs)

    def _annotation_groups(self):
        """(video_uid, annotation_uid or None, raw narration list) in file order."""
        data = read_json(self.anno_file)
        if not isinstance(data, dict):
            raise ValueError(f"{self.anno_file}: expected a JSON object (narrations or COIN database)")
        if "database" in data and isinstance(data["database"], dict):
            for vid, entry in data["database"].items():
                if entry.get("subset") == self.coin_subset:
                    yield vid, None, coin_narrations(entry, f"{self.anno_file}:{vid}")
            return
        for vid, per_annotation in data.items():
            if not isinstance(per_annotation, dict):
                raise ValueError(f"{self.anno_file}:{vid}: expected {{annotation_uid: [narrations]}}")
            for aid, narrations in per_annotation.items():
                yield vid, aid, narrations

    def build_records(self, skips: SkipLog) -> list[DVCRecord]:
        records = []
        for vid, aid, raw in self._annotation_groups():
            where = f"{self.anno_file}:{vid}" + (f"/{aid}" if aid is not None else "")
            turns = dedupe_narrations([parse_narration(n, where) for n in raw])
            if not turns:
                skips.skip("no narration")
                continue
            rel, why = resolve_video(self.metadata, vid)
            if rel is None:
                skips.skip(why)
                continue
            if turns_past_video_end(turns, float(self.metadata[rel]["duration"]), self.fps):
                # the video is shorter than its captions: they would all be answered on its last frame
                skips.skip("caption after the video's end")
                continue
            sid = vid if aid is None else f"{vid}#{aid}"
            n = self.video_frames(rel)
            if self.clip_stride is None:
                records.append(DVCRecord(sid, rel, n, tuple(turns)))
                continue
            for start in window_starts(n, self.max_frames, self.clip_stride):
                keep = self.unseen_captions == "keep"
                inside = tuple(t for t in turns if answered_in_window(t, start, self.fps, keep))
                if inside:
                    records.append(DVCRecord(f"{sid}@{start}", rel, n, inside, start))
                else:
                    skips.skip("window without a caption to come")
        return records

    def sample(self, index: int) -> StreamSample:
        r: DVCRecord = self.records[index]
        instruction = DVC_INSTRUCTIONS[self.rng(r.sample_id, "instruction").randrange(len(DVC_INSTRUCTIONS))]
        turns = [Turn("user", r.start_frame / self.fps, instruction), *r.narrations]
        msgs = clip_messages(timeline_messages(turns, self.fps, r.n_frames, r.start_frame), self.max_frames)
        return StreamSample(r.sample_id, r.video, self.fps, r.start_frame, msgs)
