"""The one stream-dataset base: annotation record -> conversation -> (token ids, labels, frames).

Every training dataset (``dvc``, ``magqa``, ``grounding``, ``hihd``) turns one annotation record
into a ``StreamSample``: the messages for ``models.chat.ChatTemplate`` (user / assistant / stream
turns, the system turn is added here), the range of sampled frames to load and an optional
degradation schedule. This module owns the rules that make labels and frames agree:

Time and frames (same as the online engine, ``models/streaming.py``)
    Frame ``i`` is the sample at ``i / fps`` (``data.video``: ``n = ceil(duration * fps)`` frames).
    A **user** turn at time ``t`` comes right before the first frame at or after ``t``, i.e. before
    frame ``ceil(t * fps)`` (the engine encodes a queued query before the frame whose time reaches
    it). An **assistant** turn at time ``t`` comes right after frame ``ceil(t * fps)`` (clamped to
    the last frame): the engine answers after reading a frame and reports that frame's time. So
    the frames of a stream turn are exactly those the engine has seen between two turns. (The
    reference trained the assistant turn one frame earlier than its engine answered.)

Ordering rules (``timeline_messages``)
    Turns keep their annotation order. A user turn never moves back in time; an assistant turn
    needs at least one new frame after a user turn (an answer timed before its question is moved
    to the first frame after it); two assistant turns after the same frame are one turn, the
    later text replacing the earlier one (the reference's "equal times overwrite" rule). The
    conversation ends with its last assistant turn (no trailing frames, as the reference);
    trailing user turns without anything after them are dropped.

Informative labels (one per frame of a learned stream turn)
    Before an assistant turn, the last ``k`` frames are positive, ``k`` = frames from the frame of
    the described event's midpoint (``ceil(mid * fps)``) to the answer frame, **clamped to
    [1, frames of this stream turn]** (the reference did not clamp for dense captioning, so labels
    could spill into earlier turns). Frames before a user turn are negative.

``clip_stride`` (dense captioning and grounding)
    Without it an item covers its video from frame 0 (at most ``max_frames`` frames). With it,
    every annotation gives one item per window of ``max_frames`` frames starting at frames
    0, ``clip_stride``, 2 ``clip_stride``, ... (whole windows only: the last ``(n - max_frames) %
    clip_stride`` frames of a video are in no window, and a caption answered after its window's end
    is not taught there; a video shorter than one window gives its one item from frame 0), so a
    short-clip budget sees (nearly) whole videos, and clips start at any time, as the online
    engine's sliding cache window does. A window's conversation
    starts at its first frame (the instruction or query comes right before it) and holds only
    what is said inside it (``window_starts``).

``max_frames`` (``clip_messages``)
    Keeps the first ``max_frames`` loaded frames. A stream turn that crosses the limit is cut and
    the conversation ends there; its frames keep the labels they had in the full conversation.
    An assistant turn whose stream turn ends *exactly* at the limit is **kept** (all its frames are
    inside the clip; the reference's ``>=`` dropped it).
    An item with more tokens than ``max_tokens`` (the model's context; ``train.py`` passes
    ``max_position_embeddings``) is skipped and counted when the dataset is built (``too_long``).

Broken items
    Videos missing from the metadata or marked ``valid: false`` are skipped when the dataset is
    built (one log line with the counts; no ``self[0]`` probe). A video that still fails to decode,
    decodes fewer frames than its metadata promised, or is missing from the feature cache is
    replaced by another item through ``data.metadata.load_with_retries`` (bounded, logged, then
    raises). Randomness (instruction choice, pre-question frames, block noise) comes from
    ``data.prompts.item_rng(seed, sample_id)``: an item is the same in every worker, epoch and
    resumed run.

Items are dicts: ``input_ids``, ``labels`` (pre-shifted), ``informative_labels``,
``relevance_labels`` (tensors of one length), ``frames`` (uint8 ``[F, size, size, 3]``) or the cached
``vision_features`` / ``frame_embeds``, and ``sample_id`` (``"{dataset}:{id}"``).
"""
from __future__ import annotations

import abc

import logging
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from data.degrade import DegradationSchedule
from data.feature_cache import FeatureCacheMiss
from data.metadata import load_metadata, load_with_retries
from data.prompts import SYSTEM_PROMPT, item_rng
from data.video import VideoDecodeError, check_resize, load_clip, num_sampled_frames
from models.chat import ChatTemplate, check_no_control_tokens, control_tokens_in

log = logging.getLogger(__name__)

# ceil(t * fps) with slack for float noise: 6.5 s at 2 fps must be frame 13, not 14.
TIME_EPS = 1e-6


class ShortVideoError(VideoDecodeError):
    """The decoder produced fewer frames than the conversation needs (stale metadata, cut file)."""


def frame_at_or_after(t: float, fps: float) -> int:
    """Index of the first sampled frame whose time ``i / fps`` is at or after ``t`` (>= 0)."""
    return max(0, int(math.ceil(t * fps - TIME_EPS)))


# How far an annotation time may lie past the video's end (its metadata duration) and still be placed
# on the last frame: the larger of this and one sampled frame interval (the annotation's clock and the
# decoder's duration differ by rounding). Further out, the video is shorter than its annotation (a cut
# file, stale metadata, another video under the same name): placed on the last frame, every later
# caption would merge into one answer there and a grounding span would mark no frame, so the item is
# skipped and counted instead (``past_video_end``).
END_SLACK_S = 1.0


def past_video_end(t: float, duration: float, fps: float) -> bool:
    """Whether an annotation time ``t`` lies past a video of ``duration`` seconds (``END_SLACK_S``)."""
    return t > duration + max(END_SLACK_S, 1.0 / fps) + TIME_EPS


def turns_past_video_end(turns: Iterable["Turn"], duration: float, fps: float) -> bool:
    """Whether a turn is said, or the event it describes is centred, past the video's end."""
    return any(past_video_end(t.time, duration, fps)
               or (t.span is not None and past_video_end((t.span[0] + t.span[1]) / 2.0, duration, fps))
               for t in turns)


def learn_flag(value: Any, where: str) -> bool:
    """An annotation's ``learn`` field: a JSON boolean (absent: true). ``bool("false")`` is True, so
    a string or a number would silently teach (or hide) a caption: refused."""
    if value is None:
        return True
    if not isinstance(value, bool):
        raise ValueError(f"{where}: 'learn' must be true or false, got {value!r}")
    return value


# --------------------------------------------------------------------------- conversations

@dataclass(frozen=True)
class Turn:
    """A timed user or assistant turn of an annotation."""

    role: str  # "user" | "assistant"
    time: float
    content: str
    learn: bool = True  # assistant: LM labels on its text
    span: tuple[float, float] | None = None  # assistant: the event it describes

    def __post_init__(self):
        if self.role not in ("user", "assistant"):
            raise ValueError(f"turn role must be user or assistant, got {self.role!r}")


@dataclass
class StreamSample:
    """What one item becomes before tokenisation and decoding."""

    sample_id: str
    video: str  # path relative to the dataset's video root
    fps: float
    start_frame: int
    messages: list[dict]  # user / assistant / stream turns (no system turn)
    degradation: DegradationSchedule | None = None

    @property
    def num_frames(self) -> int:
        return sum(int(m["num_frames"]) for m in self.messages if m["role"] == "stream")

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.num_frames


def _stream(n: int, informative: Sequence[int] | None = None, relevance: Sequence[float] | None = None) -> dict:
    m: dict[str, Any] = {"role": "stream", "num_frames": int(n)}
    if informative is not None:
        m["informative"] = list(informative)
    if relevance is not None:
        m["relevance"] = list(relevance)
    return m


def timeline_messages(
    turns: Iterable[Turn],
    fps: float,
    n_frames: int,
    start_frame: int = 0,
    informative: bool = True,
) -> list[dict]:
    """Timed turns -> user / stream / assistant messages with informative labels (module doc)."""
    if n_frames < 1:
        raise ValueError(f"a stream conversation needs at least one frame, got n_frames={n_frames}")
    if not 0 <= start_frame < n_frames:
        raise ValueError(f"start_frame {start_frame} outside [0, {n_frames})")
    msgs: list[dict] = []
    seen = start_frame  # frames consumed so far
    prev_role: str | None = None

    def add_stream(end: int, positives: int) -> None:
        n = end - seen
        labels = None
        if informative:
            k = min(max(positives, 0), n)
            labels = [0] * (n - k) + [1] * k
        msgs.append(_stream(n, labels))

    for turn in turns:
        if turn.role == "user":
            b = min(max(frame_at_or_after(turn.time, fps), seen), n_frames)
            if b > seen:
                add_stream(b, 0)
                seen = b
            msgs.append({"role": "user", "content": turn.content})
            prev_role = "user"
            continue
        answer = min(frame_at_or_after(turn.time, fps), n_frames - 1)
        b = answer + 1  # the answer follows its frame
        if prev_role == "assistant" and b <= seen:
            # answered after the same frame as the previous turn: one turn, the later text wins
            msgs[-1] = {"role": "assistant", "content": turn.content, "learn": turn.learn}
            continue
        b = max(b, seen + 1)
        if b > n_frames:
            break  # nothing left to watch before this answer
        if turn.span is not None:
            first_positive = frame_at_or_after((turn.span[0] + turn.span[1]) / 2.0, fps)
        else:
            first_positive = b - 1
        add_stream(b, max(1, b - max(first_positive, seen)))
        seen = b
        msgs.append({"role": "assistant", "content": turn.content, "learn": turn.learn})
        prev_role = "assistant"
    return _drop_trailing_users(msgs)


def relevance_messages(query: str, relevance: Sequence[float]) -> list[dict]:
    """A query then ONE stream turn with a relevance label per frame (HIHD, grounding).

    All frames sit in one stream turn, contiguous, exactly as the online engine feeds them (the
    reference wrapped every HIHD frame in its own stream turn, unlike its inference).
    """
    if len(relevance) < 1:
        raise ValueError("a relevance conversation needs at least one frame")
    return [{"role": "user", "content": query}, _stream(len(relevance), relevance=relevance)]


def clip_messages(messages: Sequence[dict], max_frames: int | None) -> list[dict]:
    """Keep the first ``max_frames`` frames (module doc: boundary rule)."""
    if max_frames is None:
        return [dict(m) for m in messages]
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    out: list[dict] = []
    total = 0
    for m in messages:
        if m["role"] != "stream":
            out.append(dict(m))
            continue
        n = int(m["num_frames"])
        if total + n <= max_frames:
            out.append(dict(m))
            total += n
            continue
        keep = max_frames - total
        if keep > 0:
            cut = dict(m, num_frames=keep)
            for key in ("informative", "relevance"):
                if key in m:
                    cut[key] = list(m[key])[:keep]
            out.append(cut)
        break
    return _drop_trailing_users(out)


def window_starts(n_frames: int, max_frames: int | None, clip_stride: int | None) -> list[int]:
    """First frames of an annotation's clips (module doc, ``clip_stride``): [0] without a stride."""
    if clip_stride is None or max_frames is None or n_frames <= max_frames:
        return [0]
    return list(range(0, n_frames - max_frames + 1, clip_stride))


def _drop_trailing_users(msgs: list[dict]) -> list[dict]:
    while msgs and msgs[-1]["role"] == "user":
        msgs.pop()
    return msgs


# --------------------------------------------------------------------------- dataset base

def resolve_video(metadata: dict[str, dict], uid: str, extensions: Sequence[str] = (".mp4",)) -> tuple[str | None, str]:
    """(relpath, "ok") or (None, reason) for an annotation's video id.

    The id is looked up as given, then with each extension appended (annotations often drop it).
    A usable entry has ``valid: true`` and a positive ``duration`` (the reference's metadata
    format, with ``frame_count`` / ``path``, is accepted as well).
    """
    for key in (uid, *(uid + e for e in extensions)):
        entry = metadata.get(key)
        if entry is None:
            continue
        if not entry.get("valid", False):
            return None, "invalid video"
        d = entry.get("duration")
        if d is None or not d > 0:
            return None, "no duration"
        return key, "ok"
    return None, "not in metadata"


@dataclass
class SkipLog:
    """Counts of records dropped while building a dataset, logged once."""

    reasons: Counter = field(default_factory=Counter)

    def skip(self, reason: str) -> None:
        self.reasons[reason] += 1

    def report(self, name: str, kept: int) -> None:
        if self.reasons:
            detail = ", ".join(f"{n} {r}" for r, n in sorted(self.reasons.items()))
            log.warning("%s: kept %d items, skipped %d (%s)", name, kept, sum(self.reasons.values()), detail)
        else:
            log.info("%s: %d items", name, kept)


def degradation_tag(d: DegradationSchedule | None) -> str:
    """Names a degradation schedule (its per-frame values and seed); "" for none."""
    return "" if d is None else repr(d.to_list()) + str(d.seed)


class ClipMemory:
    """Decoded clips kept in memory, least recently used first out, at most ``max_mb`` MiB.

    A small model trained for many epochs on short clips spends most of a step decoding the same
    frames again; this keeps them. Each DataLoader worker holds its own copy (the dataset is
    pickled into it), so the bound is per process. Keys name the exact request (file, fps, frame
    range, size, degradation), so a hit returns the very frames ``load_clip`` would give.
    """

    def __init__(self, max_mb: float):
        if not max_mb > 0:
            raise ValueError(f"max_mb must be positive, got {max_mb}")
        self.max_bytes = int(max_mb * 2**20)
        self.bytes = 0
        self.hits = self.misses = 0
        self._clips: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def get(self, key: tuple, load: Callable[[], np.ndarray]) -> np.ndarray:
        clip = self._clips.get(key)
        if clip is not None:
            self._clips.move_to_end(key)
            self.hits += 1
            return clip
        self.misses += 1
        clip = load()
        clip.setflags(write=False)  # shared by every later hit
        if clip.nbytes <= self.max_bytes:
            self._clips[key] = clip
            self.bytes += clip.nbytes
            while self.bytes > self.max_bytes:
                _, old = self._clips.popitem(last=False)
                self.bytes -= old.nbytes
        return clip


class StreamDataset(Dataset, abc.ABC):
    """Base of the training datasets: subclasses build ``records`` and ``sample(index)``.

    ``feature_cache`` (``data.feature_cache.FeatureCache``): items carry cached SigLIP features
    (or final frame embeddings) instead of decoded frames. ``clip_memory`` (``ClipMemory``, may be
    shared by several datasets): decoded clips are kept in memory across epochs.
    """

    kind = "stream"

    def __init__(
        self,
        anno_file: str | Path,
        video_root: str | Path,
        metadata_path: str | Path,
        template: ChatTemplate,
        fps: float = 2.0,
        max_frames: int | None = 128,
        frame_size: int = 384,
        system_prompt: str = SYSTEM_PROMPT,
        seed: int = 0,
        name: str | None = None,
        feature_cache=None,
        frame_resize: str = "antialias",
        max_tries: int = 5,
        video_namespace: str | None = None,
        clip_memory: ClipMemory | None = None,
        clip_stride: int | None = None,
        max_tokens: int | None = None,
    ):
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
            raise ValueError(f"max_tokens must be a positive number of tokens or None, got {max_tokens!r}")
        self.max_tokens = max_tokens
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
        if clip_stride is not None and (isinstance(clip_stride, bool) or not isinstance(clip_stride, int) or clip_stride < 1):
            raise ValueError(f"clip_stride must be a positive number of frames or None, got {clip_stride!r}")
        if clip_stride is not None and max_frames is None:
            raise ValueError("clip_stride needs max_frames (the window length)")
        self.clip_stride = clip_stride
        self.anno_file = Path(anno_file)
        self.video_root = Path(video_root)
        self.metadata_path = Path(metadata_path)
        if not self.anno_file.is_file():
            raise FileNotFoundError(f"annotation file not found: {self.anno_file}")
        if not self.metadata_path.is_file():
            raise FileNotFoundError(
                f"videos metadata not found: {self.metadata_path} (build it with "
                f"python -m data.metadata {self.video_root} {self.metadata_path})"
            )
        self.template = template
        self.fps = float(fps)
        self.max_frames = max_frames
        self.frame_size = int(frame_size)
        self.frame_resize = check_resize(frame_resize)  # the model config's (data.video.RESIZE_MODES)
        self.system_prompt = system_prompt
        self.seed = int(seed)
        self.name = name or self.kind
        self.feature_cache = feature_cache
        self.max_tries = int(max_tries)
        self.clip_memory = clip_memory
        # names this dataset's videos in the feature cache (the mixture passes the video root
        # relative to --data_root, so moving the data keeps the cache valid)
        self.video_namespace = video_namespace if video_namespace is not None else self.video_root.as_posix()
        self.metadata = load_metadata(self.metadata_path)
        skips = SkipLog()
        try:
            self.records: list[Any] = self.build_records(skips)
        except (KeyError, TypeError, AttributeError, IndexError, OverflowError) as e:
            # a field missing or of the wrong kind: a clear error naming the file, not a traceback
            raise ValueError(f"{self.anno_file}: malformed annotation ({type(e).__name__}: {e})") from None
        except ValueError as e:
            if str(self.anno_file) in str(e):
                raise
            raise ValueError(f"{self.anno_file}: {e}") from None
        self._skip_control_tokens(skips)
        skips.report(self.name, len(self.records))

    def _skip_control_tokens(self, skips: SkipLog) -> None:
        """Skip (and count) items with a blank user or assistant text, or whose text holds a control token of the tokenizer ("<image>" in a
        question would become a frame placeholder, "<|im_end|>" would end the turn): found here, when
        the data set is built, not as a failed batch hours into training. Without a template (train.py
        parses the annotations before any tokenizer is loaded) by their ChatML / Qwen2 forms."""
        tok = None if self.template is None else self.template.tok
        check_no_control_tokens(self.system_prompt, f"{self.name}: the system prompt", tok)
        keep = []
        for i, rec in enumerate(self.records):
            sample = self.sample(i)
            texts = [m["content"] for m in sample.messages if isinstance(m.get("content"), str)]
            if any(control_tokens_in(t, tok) for t in texts):
                skips.skip("control token in the text")
            elif any(not t.strip() for t in texts):
                # a blank caption or answer teaches an empty response, a blank query asks nothing
                skips.skip("empty question or answer")
            elif self.too_long(sample):
                skips.skip(f"longer than the model's {self.max_tokens} positions")
            else:
                keep.append(rec)
        self.records = keep

    def too_long(self, sample: StreamSample) -> bool:
        """Whether an item's ``sample`` has more tokens than ``max_tokens`` (the model's context: rotary
        positions raise nothing past it, so such an item trained silently there; no tokenizer: False)."""
        if self.max_tokens is None or self.template is None:
            return False
        frames = sample.num_frames * self.template.tokens_per_frame
        if frames > self.max_tokens:
            return True
        texts = [p.text for p in self.template.pieces(self.messages(sample)) if not p.n_frames]
        # at most one token per UTF-8 byte (+1 a piece): items well inside the context are not tokenised
        if frames + sum(len(t.encode("utf-8")) + 1 for t in texts) <= self.max_tokens:
            return False
        return frames + sum(len(self.template.ids(t)) for t in texts) > self.max_tokens

    # -- subclass API
    @abc.abstractmethod
    def build_records(self, skips: SkipLog) -> list[Any]:
        ...

    @abc.abstractmethod
    def sample(self, index: int) -> StreamSample:
        """The conversation of item ``index`` (deterministic; no decoding)."""
        ...

    # -- helpers for subclasses
    def video_frames(self, relpath: str) -> int:
        """Number of sampled frames of a video at this dataset's fps (the one frame-count rule)."""
        return num_sampled_frames(float(self.metadata[relpath]["duration"]), self.fps)

    def rng(self, sample_id: str, purpose: str):
        return item_rng(self.seed, f"{self.name}:{sample_id}", purpose)

    # -- Dataset
    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range [0, {len(self)})")
        return load_with_retries(
            self.load, index, len(self), self.max_tries,
            retry_on=(VideoDecodeError, FileNotFoundError, FeatureCacheMiss),
        )

    def messages(self, sample: StreamSample) -> list[dict]:
        return [{"role": "system", "content": self.system_prompt}, *sample.messages]

    def encode(self, sample: StreamSample) -> dict:
        """Token ids and labels of a sample (no video access)."""
        enc = self.template.encode(self.template.pieces(self.messages(sample)))
        item = enc.tensors()
        item["sample_id"] = f"{self.name}:{sample.sample_id}"
        return item

    def load(self, index: int) -> dict:
        sample = self.sample(index)
        item = self.encode(sample)
        n = sample.num_frames
        if self.feature_cache is not None:
            feats = self.feature_cache.load(
                self.video_key(sample.video), sample.fps, sample.start_frame, sample.end_frame,
                self.frame_size, sample.degradation,
            )
            item[self.feature_cache.item_key] = feats
            got = feats.shape[0]
        else:
            def decode() -> np.ndarray:
                return load_clip(
                    self.video_root / sample.video, sample.fps, sample.start_frame, sample.end_frame,
                    size=self.frame_size, degradation=sample.degradation, resize=self.frame_resize,
                )

            if self.clip_memory is None:
                frames = decode()
            else:
                key = (str(self.video_root / sample.video), sample.fps, sample.start_frame, sample.end_frame,
                       self.frame_size, self.frame_resize, degradation_tag(sample.degradation))
                frames = self.clip_memory.get(key, decode)
            # a copy when memoised: the collator and the model may write into a batch's frames
            item["frames"] = torch.from_numpy(frames if self.clip_memory is None else frames.copy())
            got = frames.shape[0]
        if got != n:
            raise ShortVideoError(
                self.video_root / sample.video,
                f"got {got} frames for [{sample.start_frame}, {sample.end_frame}) at {sample.fps} fps, "
                f"the conversation needs {n} (metadata duration stale or file cut)",
            )
        n_ph = int((item["input_ids"] == self.template.placeholder_id).sum())
        if n_ph != n * self.template.tokens_per_frame:  # a template bug, never a data problem
            raise AssertionError(f"{n_ph} placeholders for {n} frames")
        return item

    def video_key(self, relpath: str) -> str:
        return f"{self.video_namespace}/{relpath}"

    def frame_needs(self) -> list["VideoNeed"]:
        """Frames each video must provide (from frame 0), one entry per (video, degradation).

        Feature extraction caches exactly these; the bound holds for every item because samples
        are deterministic.
        """
        need: dict[tuple[str, str], VideoNeed] = {}
        for i in range(len(self)):
            s = self.sample(i)
            key = (s.video, degradation_tag(s.degradation))
            old = need.get(key)
            end = self.max_end_frame(i)
            end = end if old is None else max(old.end_frame, end)
            need[key] = VideoNeed(self.video_key(s.video), self.video_root / s.video, s.fps, end, s.degradation)
        return list(need.values())

    def max_end_frame(self, index: int) -> int:
        """The last frame (exclusive) item ``index`` can need under any seed."""
        return self.sample(index).end_frame


@dataclass(frozen=True)
class VideoNeed:
    key: str  # feature-cache key (namespace/relpath)
    path: Path
    fps: float
    end_frame: int
    degradation: DegradationSchedule | None = None


def seconds(x: Any, where: str, what: str = "time") -> float:
    """A time in seconds read from an annotation: a finite number >= 0 (numeric text is accepted;
    a boolean, NaN or infinity is refused: it would place a label nowhere or everywhere)."""
    if isinstance(x, bool):
        raise ValueError(f"{where}: {what} must be a number of seconds, got {x!r}")
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {what} must be a number of seconds, got {x!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{where}: {what} must be finite and >= 0, got {x!r}")
    return v


def text_field(x: Any, where: str, what: str = "text") -> str:
    """An annotation's caption, answer, question or label: a JSON string (``str(null)`` trained "None")."""
    if not isinstance(x, str):
        raise ValueError(f"{where}: {what} must be a string, got {x!r}")
    return x


def time_span(span: Any, where: str, what: str = "timespan") -> tuple[float, float]:
    """[start, end] in seconds, start <= end."""
    if not isinstance(span, (list, tuple)) or len(span) != 2:
        raise ValueError(f"{where}: {what} must be [start, end], got {span!r}")
    s, e = seconds(span[0], where, f"{what} start"), seconds(span[1], where, f"{what} end")
    if e < s:
        raise ValueError(f"{where}: {what} must be [start, end] with start <= end, got {span!r}")
    return s, e


def check_relevance(values: Sequence[float], where: str) -> list[float]:
    out = [float(v) for v in values]
    bad = [v for v in out if not (0.0 <= v <= 1.0)]
    if bad:
        raise ValueError(f"{where}: relevance scores must lie in [0, 1], got {bad[:3]}")
    return out
