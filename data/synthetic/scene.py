"""Scenes of the synthetic benchmark: configuration, shapes, events, sampling and the exact ground truth."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter


GENERATOR = "data.synthetic"
FORMAT_VERSION = 2  # 2: grey clutter and larger event shapes by default (1: clutter in query colours, radius 0.08-0.12)

KINDS = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 40, 40),
    "green": (40, 195, 65),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 35),
    "magenta": (215, 55, 215),
    "cyan": (45, 215, 230),
}
MOTIONS = ("bounces", "slides", "spins", "grows")
# Static clutter in a query colour puts "a red circle" on screen during every distractor, so naming
# the *event's* colour needs a frame difference; clutter is therefore drawn in these greys by default
# (format 2). clutter_palette "colours" keeps format 1's harder look (instructions/tiny_model.md).
CLUTTER_GREYS: dict[str, tuple[int, int, int]] = {"pale grey": (165, 165, 165), "light grey": (190, 190, 190),
                                                  "silver": (215, 215, 215)}
PALETTE = {**COLOURS, **CLUTTER_GREYS}
MOTION_VERB = {"bounces": "bounce", "slides": "slide", "spins": "spin", "grows": "grow"}
# TVSum needs one of its ten category codes per video; the synthetic set groups videos by the
# query's motion under four fixed (arbitrary) codes, so per-category results are per motion.
MOTION_CATEGORY = {"bounces": "PK", "slides": "VU", "spins": "VT", "grows": "MS"}
DISTRACTOR_TYPES = ("colour", "kind", "motion", "random")
SPLITS = ("train", "val", "test")
SPLIT_CODE = {"train": 0, "val": 1, "test": 2}
# Purposes of the per-video random streams (fixed codes: adding a purpose never shifts another).
PURPOSE = {"scene": 0, "background": 1, "annotators": 2, "replay": 3, "magqa": 4, "captions": 5, "dropout": 6,
           "qvh": 7, "hisum": 8}

DISTRACTOR_LEVEL = 0.2      # importance of a distractor event (a match is 1, calm is 0)
EDGE_S = 0.5                # half-width of the smooth edges of an event's importance window (s)
TVSUM_CLIP_S = 2.0          # TVSum annotators score 2-s shots
TIME_GRID = 0.5             # event boundaries and question times lie on this grid (s)
RESPONSE_GRID = 0.25        # caption / answer times lie on this grid (s)
MIN_DURATION = 12
QVH_CLIP_S = 2.0            # QVHighlights saliency is per 2-s clip, 3 annotators, 0-4
QVH_ANNOTATORS = 3
HISUM_FEATURE_DIM = 1024    # YouTube-8M rgb features (written as zeros: nothing here reads them)
HISUM_BUDGET = 0.15         # Mr.HiSum summaries keep 15 % of the video
HISUM_SHOT_S = (2, 3)       # change-point shots last 2-3 whole seconds (see hisum_change_points)
QVH_VIDEO_TEMPLATE = "{youtube_id}.mp4"   # the synthetic QVH vid names the whole video: <id>_0.0_<duration>
HISUM_FILES = ("mr_hisum.h5", "mr_hisum_split.json", "mr_hisum_metadata.csv", "mr_hisum_titles.tsv")
MARKER_U, MARKER_SHADE = 0.35, 0.55   # darker cap on every shape, so rotation is visible

# Shape geometry in units of the shape's radius: signed distance > 0 outside; EXTENT bounds it.
SQUARE_HALF = 0.85
TRIANGLE_R = 1.3
EXTENT = {"circle": 1.0, "square": SQUARE_HALF * math.sqrt(2), "triangle": TRIANGLE_R}
_TRI_NORMALS = np.array([(math.cos(a), math.sin(a)) for a in np.deg2rad([90.0, 210.0, 330.0])])


# ------------------------------------------------------------------------------ configuration

@dataclass(frozen=True)
class SynthConfig:
    """Everything that shapes a video besides its seed (recorded in the manifest)."""

    fps: int = 8
    width: int = 128
    height: int = 128
    duration: tuple[int, int] = (20, 40)          # whole seconds, inclusive range
    n_annotators: int = 20
    event_s: tuple[float, float] = (3.0, 6.0)
    gap_s: tuple[float, float] = (1.5, 4.0)
    lead_s: tuple[float, float] = (1.0, 3.0)
    tail_min_s: float = 1.0
    max_matches: int = 3
    max_clutter: int = 2
    clutter_palette: str = "grey"                 # grey (CLUTTER_GREYS) | colours (the query colours; format 1)
    event_radius: tuple[float, float] = (0.12, 0.17)  # fraction of the short side (format 1: 0.08-0.12)
    distractor_weights: tuple[float, float, float, float] = (0.35, 0.35, 0.15, 0.15)  # DISTRACTOR_TYPES
    codec: str = "auto"                           # auto | libx264 | mpeg4
    crf: int = 23

    def __post_init__(self):
        lo, hi = self.duration
        if not (isinstance(self.fps, int) and self.fps >= 1):
            raise ValueError(f"fps must be a positive integer, got {self.fps!r}")
        if self.width % 2 or self.height % 2 or min(self.width, self.height) < 32:
            raise ValueError(f"size must be even and at least 32 px, got {self.width}x{self.height}")
        if not MIN_DURATION <= lo <= hi:
            raise ValueError(f"duration range must satisfy {MIN_DURATION} <= lo <= hi, got {self.duration}")
        if self.n_annotators < 1:
            raise ValueError(f"n_annotators must be >= 1, got {self.n_annotators}")
        if self.max_matches < 1 or self.max_clutter < 0:
            raise ValueError("max_matches must be >= 1 and max_clutter >= 0")
        if self.clutter_palette not in ("grey", "colours"):
            raise ValueError(f"clutter_palette must be grey or colours, got {self.clutter_palette!r}")
        r0, r1 = self.event_radius
        if not 0.02 <= r0 <= r1 <= 0.18:
            raise ValueError(f"event_radius must satisfy 0.02 <= lo <= hi <= 0.18 (a growing triangle must fit), "
                             f"got {self.event_radius}")
        w = self.distractor_weights
        if len(w) != len(DISTRACTOR_TYPES) or min(w) < 0 or sum(w) <= 0:
            raise ValueError(f"distractor_weights needs {len(DISTRACTOR_TYPES)} non-negative weights, got {w}")
        if self.codec not in ("auto", "libx264", "mpeg4"):
            raise ValueError(f"codec must be auto, libx264 or mpeg4, got {self.codec!r}")

    def to_dict(self) -> dict:
        return asdict(self)



def _rng(video_seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([int(video_seed), PURPOSE[purpose]])


def video_seed(seed: int, split: str, index: int) -> int:
    """The seed of video ``index`` of ``split`` (distinct streams per split and index)."""
    if split not in SPLIT_CODE:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    state = np.random.SeedSequence([int(seed), SPLIT_CODE[split], int(index)]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def video_id(split: str, index: int) -> str:
    return f"syn_{split}_{index:04d}"


def _grid(x: float, step: float) -> float:
    return round(round(x / step) * step, 6)


# ------------------------------------------------------------------------------------ scenes

@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    motion: str

    @property
    def text(self) -> str:
        return f"a {self.colour} {self.kind} {self.motion}"

    @property
    def caption(self) -> str:
        return f"A {self.colour} {self.kind} {self.motion}."


@dataclass(frozen=True)
class Event:
    start: float
    end: float
    shape: Shape
    match: bool
    differs: tuple[str, ...]      # attributes that differ from the query (empty for a match)
    level: float                  # importance of the event for the query
    motion: dict                  # pose parameters (pixels, seconds, radians)

    @property
    def caption(self) -> str:
        return self.shape.caption

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "kind": self.shape.kind, "colour": self.shape.colour,
                "motion": self.shape.motion, "match": self.match, "differs": list(self.differs),
                "level": self.level, "caption": self.caption, "params": self.motion}


@dataclass(frozen=True)
class Clutter:
    kind: str
    colour: str
    x: float
    y: float
    radius: float
    angle: float


@dataclass(frozen=True)
class Scene:
    video_id: str
    seed: int
    duration: int
    fps: int
    width: int
    height: int
    query: Shape
    events: tuple[Event, ...]
    clutter: tuple[Clutter, ...]
    background: dict = field(repr=False)

    @property
    def n_frames(self) -> int:
        return self.duration * self.fps

    @property
    def matches(self) -> list[Event]:
        return [e for e in self.events if e.match]

    def to_dict(self) -> dict:
        return {
            "video_id": self.video_id, "video": f"{self.video_id}.mp4", "seed": self.seed,
            "duration": self.duration, "fps": self.fps, "width": self.width, "height": self.height,
            "n_frames": self.n_frames, "query": self.query.text,
            "query_shape": asdict(self.query),
            "events": [e.to_dict() for e in self.events],
            "clutter": [asdict(c) for c in self.clutter],
            "importance_per_second": [round(float(x), 4) for x in importance_per_second(self)],
        }


def sample_event_spans(rng: np.random.Generator, duration: int, cfg: SynthConfig) -> list[tuple[float, float]]:
    """Non-overlapping event spans on the TIME_GRID with calm gaps, a calm lead-in and tail."""
    for _ in range(200):
        t = _grid(rng.uniform(*cfg.lead_s), TIME_GRID)
        spans = []
        while True:
            length = _grid(rng.uniform(*cfg.event_s), TIME_GRID)
            if t + length > duration - cfg.tail_min_s:
                break
            spans.append((t, round(t + length, 6)))
            t = round(t + length + _grid(rng.uniform(*cfg.gap_s), TIME_GRID), 6)
        if len(spans) >= 2:
            return spans
    raise ValueError(f"could not place two events in a {duration}-s video with event_s={cfg.event_s}, "
                     f"gap_s={cfg.gap_s}; use a longer duration")


def choose_match_slots(rng: np.random.Generator, n_events: int, max_matches: int) -> list[int]:
    """Indices of the matching events: at least one, never adjacent, at least one distractor left."""
    most = min(max_matches, (n_events + 1) // 2, n_events - 1)
    m = int(rng.integers(1, most + 1))
    while True:
        slots = sorted(int(i) for i in rng.choice(n_events, size=m, replace=False))
        if all(b - a > 1 for a, b in zip(slots, slots[1:])):
            return slots


def _other(rng: np.random.Generator, values: Sequence[str], current: str) -> str:
    pool = [v for v in values if v != current]
    return pool[int(rng.integers(len(pool)))]


def _random_shape(rng: np.random.Generator) -> Shape:
    return Shape(KINDS[int(rng.integers(len(KINDS)))], list(COLOURS)[int(rng.integers(len(COLOURS)))],
                 MOTIONS[int(rng.integers(len(MOTIONS)))])


def sample_distractor(rng: np.random.Generator, query: Shape, weights: Sequence[float],
                      avoid: Sequence[Shape]) -> Shape:
    """A shape that differs from the query (type drawn with ``weights``) and from ``avoid``."""
    p = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    for _ in range(1000):
        kind = DISTRACTOR_TYPES[int(rng.choice(len(DISTRACTOR_TYPES), p=p))]
        if kind == "colour":
            s = replace(query, colour=_other(rng, list(COLOURS), query.colour))
        elif kind == "kind":
            s = replace(query, kind=_other(rng, KINDS, query.kind))
        elif kind == "motion":
            s = replace(query, motion=_other(rng, MOTIONS, query.motion))
        else:
            s = _random_shape(rng)
        if s != query and s not in avoid:
            return s
    raise RuntimeError("no distractor found (vocabulary too small)")  # unreachable with the vocabulary


def sample_motion(rng: np.random.Generator, shape: Shape, width: int, height: int,
                  radius_range: tuple[float, float] = SynthConfig.event_radius) -> dict:
    """Pose parameters of one event (pixels / seconds / radians); see ``event_pose``."""
    side = min(width, height)
    radius = float(rng.uniform(*radius_range) * side)
    angle0 = float(rng.uniform(0, 2 * math.pi))
    ext = EXTENT[shape.kind]
    if shape.motion == "grows":
        s0, s1 = 0.45, 1.6
        margin = radius * ext * s1 + 2
    else:
        s0 = s1 = 1.0
        margin = radius * ext + 2
    p: dict[str, Any] = {"radius": radius, "angle0": angle0, "margin": margin}
    if shape.motion == "bounces":
        ground = height - 0.04 * height - radius * ext
        p.update(x0=float(rng.uniform(margin, width - margin)), vx=float(rng.uniform(-8, 8) * width / 128),
                 ground=ground, amp=float(min(rng.uniform(0.35, 0.55) * height, ground - margin)),
                 period=float(rng.uniform(0.7, 1.2)))
    elif shape.motion == "slides":
        p.update(y0=float(rng.uniform(margin, height - margin)), period=float(rng.uniform(2.0, 3.5)),
                 phase=float(rng.uniform(0, 1)), reverse=bool(rng.integers(2)))
    else:
        p.update(x0=float(rng.uniform(margin, width - margin)), y0=float(rng.uniform(margin, height - margin)))
        if shape.motion == "spins":
            p["omega"] = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 0.9) * 2 * math.pi)
        else:
            p.update(s0=s0, s1=s1)
    return p


def event_pose(event: Event, t: float, width: int, height: int) -> tuple[float, float, float, float]:
    """(x, y, radius, angle) of an event's shape at video time ``t`` (inside the event)."""
    p, tau = event.motion, t - event.start
    x, y, r, a = p.get("x0", 0.0), p.get("y0", 0.0), p["radius"], p["angle0"]
    m = event.shape.motion
    if m == "bounces":
        x = min(max(p["x0"] + p["vx"] * tau, p["margin"]), width - p["margin"])
        y = p["ground"] - p["amp"] * abs(math.sin(math.pi * tau / p["period"]))
    elif m == "slides":
        phase = (tau / p["period"] + p["phase"]) % 1.0
        tri = 1.0 - abs(2.0 * phase - 1.0)
        if p["reverse"]:
            tri = 1.0 - tri
        x = p["margin"] + (width - 2 * p["margin"]) * tri
    elif m == "spins":
        a = p["angle0"] + p["omega"] * tau
    elif m == "grows":
        r = p["radius"] * (p["s0"] + (p["s1"] - p["s0"]) * tau / (event.end - event.start))
    return x, y, r, a


def sample_background(rng: np.random.Generator, width: int, height: int) -> dict:
    """Parameters of the slowly drifting gradient + scrolling low-pass noise texture."""
    return {
        "grey": float(rng.uniform(55, 95)),
        "tint1": [float(v) for v in rng.uniform(-18, 18, 3)],
        "tint2": [float(v) for v in rng.uniform(-18, 18, 3)],
        "periods": [float(v) for v in rng.uniform(20, 50, 2)],
        "phases": [float(v) for v in rng.uniform(0, 2 * math.pi, 2)],
        "lum": float(rng.uniform(-30, 30)),
        "angle0": float(rng.uniform(0, 2 * math.pi)),
        "omega": float(rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.06)),
        "noise_amp": float(rng.uniform(4, 8)),
        "noise_speed": float(rng.uniform(1, 3) * width / 128),
        "noise_seed": int(rng.integers(2**31)),
    }


def sample_scene(seed: int, duration: int | None = None, cfg: SynthConfig = SynthConfig(),
                 video_id: str = "syn") -> Scene:
    """The full description of one video (no pixels): query, events, clutter, background."""
    rng = _rng(seed, "scene")
    # always drawn, so a given duration does not shift the draws that follow (the query)
    drawn = int(rng.integers(cfg.duration[0], cfg.duration[1] + 1))
    duration = drawn if duration is None else int(duration)
    if duration < MIN_DURATION:
        raise ValueError(f"duration must be >= {MIN_DURATION} s, got {duration}")
    query = _random_shape(rng)
    spans = sample_event_spans(rng, duration, cfg)
    slots = set(choose_match_slots(rng, len(spans), cfg.max_matches))
    events: list[Event] = []
    for i, (s, e) in enumerate(spans):
        if i in slots:
            shape = query
        else:
            # never the same look as the previous event (distractors differ from the query anyway)
            avoid = [events[-1].shape] if events else []
            shape = sample_distractor(rng, query, cfg.distractor_weights, avoid)
        differs = tuple(a for a in ("kind", "colour", "motion") if getattr(shape, a) != getattr(query, a))
        events.append(Event(s, e, shape, i in slots, differs, 1.0 if i in slots else DISTRACTOR_LEVEL,
                            sample_motion(rng, shape, cfg.width, cfg.height, cfg.event_radius)))
    side = min(cfg.width, cfg.height)
    clutter = []
    palette = list(CLUTTER_GREYS if cfg.clutter_palette == "grey" else COLOURS)
    for _ in range(int(rng.integers(0, cfg.max_clutter + 1))):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        r = float(rng.uniform(0.07, 0.1) * side)
        m = r * EXTENT[kind] + 2
        clutter.append(Clutter(kind, palette[int(rng.integers(len(palette)))],
                               float(rng.uniform(m, cfg.width - m)), float(rng.uniform(m, cfg.height - m)),
                               r, float(rng.uniform(0, 2 * math.pi))))
    background = sample_background(_rng(seed, "background"), cfg.width, cfg.height)
    return Scene(video_id, int(seed), int(duration), cfg.fps, cfg.width, cfg.height, query, tuple(events),
                 tuple(clutter), background)


# ----------------------------------------------------------------------------- ground truth

def smooth_edge(x: np.ndarray) -> np.ndarray:
    """0 for x <= -1, 1 for x >= 1, a C1 smoothstep in between (0.5 at x = 0)."""
    u = np.clip((x + 1.0) / 2.0, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def importance_at(scene: Scene, times: np.ndarray) -> np.ndarray:
    """Query importance at ``times`` (s): max over events of level * window.

    The window rises from 0 at ``start - EDGE_S`` to 1 at ``start + EDGE_S`` (0.5 at the boundary)
    and falls likewise around ``end``; it is exactly 0 farther away, so calm time scores 0.
    """
    t = np.asarray(times, dtype=np.float64)
    out = np.zeros_like(t)
    for e in scene.events:
        w = smooth_edge((t - e.start) / EDGE_S) * smooth_edge((e.end - t) / EDGE_S)
        out = np.maximum(out, e.level * w)
    return out


def frame_times(scene: Scene) -> np.ndarray:
    return np.arange(scene.n_frames) / scene.fps


def importance_per_second(scene: Scene) -> np.ndarray:
    """Mean importance over the native frames of each second [k, k+1)."""
    return importance_at(scene, frame_times(scene)).reshape(scene.duration, scene.fps).mean(axis=1)


def annotator_clip_scores(scene: Scene, n_annotators: int) -> np.ndarray:
    """[n_annotators, n_clips] integer scores 1-5 of the 2-s clips (TVSum style).

    Each annotator has a reaction lag, a gain and a bias; every clip gets its own noise. The score
    is ``round(1 + 4 * gain * mean importance of the clip + bias + noise)`` clipped to 1..5.
    """
    rng = _rng(scene.seed, "annotators")
    n_clips = math.ceil(scene.duration / TVSUM_CLIP_S)
    clip_of_frame = np.floor(frame_times(scene) / TVSUM_CLIP_S + 1e-9).astype(np.int64)
    counts = np.bincount(clip_of_frame, minlength=n_clips)
    scores = np.empty((n_annotators, n_clips), dtype=np.int64)
    for a in range(n_annotators):
        lag, gain, bias = rng.uniform(-0.5, 0.75), rng.uniform(0.7, 1.3), rng.normal(0.0, 0.3)
        imp = importance_at(scene, frame_times(scene) - lag)
        clip_imp = np.bincount(clip_of_frame, weights=imp, minlength=n_clips) / counts
        raw = 1.0 + 4.0 * gain * clip_imp + bias + rng.normal(0.0, 0.45, n_clips)
        scores[a] = np.clip(np.rint(raw), 1, 5)
    return scores


def annotator_frame_scores(scene: Scene, clip_scores: np.ndarray) -> np.ndarray:
    """[n_annotators, n_frames]: each native frame takes its 2-s clip's score."""
    clip_of_frame = np.floor(frame_times(scene) / TVSUM_CLIP_S + 1e-9).astype(np.int64)
    return clip_scores[:, clip_of_frame]


def replay_scores(scene: Scene) -> np.ndarray:
    """Per-second replay-style scores in [0, 1] (HIHD / Mr.HiSum style, min-max normalised)."""
    rng = _rng(scene.seed, "replay")
    imp = importance_per_second(scene)
    interest = gaussian_filter(rng.normal(0.0, 1.0, len(imp)), sigma=2.0, mode="nearest")
    raw = imp + 0.08 * interest / max(float(np.std(interest)), 1e-9) + rng.normal(0.0, 0.02, len(imp))
    span = float(raw.max() - raw.min())
    return (raw - raw.min()) / span if span > 0 else np.zeros_like(raw)


def response_time(rng: np.random.Generator, start: float, end: float) -> float:
    """When a caption / answer about [start, end] is said: between its midpoint and 3/4 of it."""
    t = _grid(start + rng.uniform(0.5, 0.75) * (end - start), RESPONSE_GRID)
    return float(min(max(t, (start + end) / 2), end))

