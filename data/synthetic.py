"""Deterministic synthetic video benchmark: moving shapes, a query, and every annotation format.

No pretrained vision weights exist offline, so the embedded default model is trained on data
whose ground truth is known exactly. Each video shows a calm, slowly drifting background with a
few static "clutter" shapes; at random times an **event** happens: a shape of some *kind*
(circle, square, triangle) and *colour* appears and performs a *motion* (bounces, slides, spins,
grows), then disappears. The video's **query** names one kind + colour + motion ("a red circle
bounces"). Some events match the query; the others are **distractors** that move just as much but
differ in colour, kind, motion or all of them, so motion energy alone cannot find the query
events. Two adjacent events never look the same (dense-captioning loaders drop a caption equal to
the previous one).

Ground truth, all derived from the events:

* importance of time t for the query: ``max_e level_e * w_e(t)`` with level 1 for a matching
  event, ``DISTRACTOR_LEVEL`` for a distractor (a moving object is mildly interesting), 0 when
  calm, and ``w_e`` a window with smoothstep edges ``EDGE_S`` wide on each side of the event's
  boundaries (exactly 0 farther away); per second it is the mean over the native frames of that
  second;
* TVSum: ``n_annotators`` noisy annotators score 2-s clips 1-5 (own lag, gain, bias and noise),
  repeated per native frame (``ydata-tvsum50-anno.tsv``), with an info tsv (title = query,
  category code = ``MOTION_CATEGORY[motion]``) and the UMT per-clip ``tvsum_anno.json``;
* grounding: ``grounding.json`` (training list, every matching span) and Charades-STA
  ``vid start end##query`` lines plus the ``id,length`` csv. A Charades line holds one span, so only
  videos whose query matches exactly one event get a line (a repeated line would make one run
  answer two items);
* dense captioning: one caption per event, as ActivityNet captions (``yc2_<split>.json``) and as
  the Shot2Story DVC training file; each caption is "said" between the event's midpoint and
  three quarters of it (the informative labels run from the midpoint to that time);
* MAGQA: one question per video about one attribute of the query ("What are the red shapes
  doing?"), asked before the first matching event, answered by every later event with that
  attribute (training conversation list and test items);
* HIHD: per-second replay-style scores (importance + slow interest + noise, min-max normalised)
  with a quality-dropout schedule from ``data.degrade.make_schedule``, one CSV for all splits;
* QVHighlights: ``highlight_<split>_release.jsonl`` (relevant windows = the matching events, 3
  annotators' 0-4 saliency of the 2-s clips overlapping them, from the importance curve);
* Mr.HiSum: one ``mr_hisum.h5`` for all splits (gtscore = importance per second, 2-3 s
  change-point shots, the official knapsack summary at 15 %, zero features) with the split json,
  metadata csv and titles tsv of the real layout;
* the benchmark items of ``datasets/convert.py`` (charades, tvsum, youcook2, magqa, qvh, hisum),
  made by the converter's own functions from the files above (default templates, the dataset seed).

Determinism: every random draw comes from ``numpy`` Generators seeded by (video seed, purpose);
the global RNGs are never used. Videos are H.264 (libx264, one thread, bit-exact container flags;
MPEG-4 part 2 when libx264 is absent), so the same seed gives the same bytes on the same install.
Video seeds come from ``SeedSequence((seed, split, index))``: splits are disjoint.

    python -m data.synthetic --out DIR --seed 0 [--n_train 120 --n_val 20 --n_test 20
        --duration 20:40 --fps 8 --size 128 --n_annotators 20 --workers 2]

Layout of DIR (see instructions/synthetic.md)::

    manifest.json  HIHD_metadata.csv  mixture_train.json  videos/<vid>.mp4
    mr_hisum.h5  mr_hisum_split.json  mr_hisum_metadata.csv  mr_hisum_titles.tsv
    <split>/ground_truth.json  ydata-tvsum50-anno.tsv  ydata-tvsum50-info.tsv  tvsum_anno.json
            charades_sta_<split>.txt  Charades_v1_<split>.csv  grounding.json  yc2_<split>.json
            shot2story_dvc.json  magqa_train.json  magqa_test.json  highlight_<split>_release.jsonl
            items/<benchmark>.jsonl
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import math
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Sequence

import av
import numpy as np
from scipy.ndimage import gaussian_filter

from data.degrade import make_schedule
from data.prompts import render_query
from utils.io import atomic_write_json, atomic_write_text, dumps, read_json, sha256_file

REPO_ROOT = Path(__file__).resolve().parents[1]
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


def resolve_codec(requested: str = "auto") -> str:
    """libx264 when the installed PyAV/FFmpeg has it (asked for or auto), else mpeg4."""
    has_x264 = "libx264" in av.codecs_available
    if requested == "libx264" and not has_x264:
        raise ValueError("libx264 is not available in this PyAV build; use --codec mpeg4 or auto")
    return "libx264" if requested in ("auto", "libx264") and has_x264 else "mpeg4"


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


# --------------------------------------------------------------------------------- rendering

class Renderer:
    """Draws the frames of one scene; coordinate grids and the noise texture are made once."""

    def __init__(self, scene: Scene):
        self.scene = scene
        w, h = scene.width, scene.height
        self.px = np.arange(w, dtype=np.float64) + 0.5     # pixel centres
        self.py = np.arange(h, dtype=np.float64) + 0.5
        self.nx = self.px / w - 0.5                         # normalised, for the gradient
        self.ny = self.py / h - 0.5
        bg = scene.background
        noise = np.random.default_rng(bg["noise_seed"]).normal(0.0, 1.0, (h, 2 * w))
        noise = gaussian_filter(noise, sigma=3.0, mode="wrap")  # wraps horizontally: scrolls seamlessly
        noise = noise / max(float(noise.std()), 1e-9) * bg["noise_amp"]
        # one period plus a frame width, so every scroll offset is a plain slice (no np.roll per frame)
        self.noise = np.concatenate([noise, noise[:, :w]], axis=1).astype(np.float32)
        self.period = 2 * w

    def background(self, t: float) -> np.ndarray:
        """float32 [H, W, 3]: drifting two-tint gradient plus the scrolled noise texture."""
        b = self.scene.background
        tint1 = np.asarray(b["tint1"]) * math.cos(2 * math.pi * t / b["periods"][0] + b["phases"][0])
        tint2 = np.asarray(b["tint2"]) * math.cos(2 * math.pi * t / b["periods"][1] + b["phases"][1])
        a = b["angle0"] + b["omega"] * t
        wgt = ((math.cos(a) * math.sqrt(0.5)) * self.nx[None, :] + (math.sin(a) * math.sqrt(0.5)) * self.ny[:, None]
               + 0.5).astype(np.float32)
        low = (b["grey"] + tint1 - b["lum"] / 2).astype(np.float32)
        slope = (tint2 - tint1 + b["lum"]).astype(np.float32)
        shift = int(math.floor(t * b["noise_speed"])) % self.period
        tex = self.noise[:, shift: shift + self.scene.width]
        out = wgt[..., None] * slope
        out += low
        out += tex[..., None]
        return out

    def draw(self, canvas: np.ndarray, kind: str, colour: str, x: float, y: float, radius: float, angle: float) -> None:
        """Alpha-blend one shape (1-px anti-aliased edge, darker cap) into ``canvas`` in place."""
        h, w = canvas.shape[:2]
        half = radius * EXTENT[kind] + 2
        x0, x1 = max(int(x - half), 0), min(int(x + half) + 1, w)
        y0, y1 = max(int(y - half), 0), min(int(y + half) + 1, h)
        if x0 >= x1 or y0 >= y1:
            return
        dx = self.px[None, x0:x1] - x
        dy = self.py[y0:y1, None] - y
        c, s = math.cos(angle), math.sin(angle)
        u = (c * dx + s * dy) / radius
        v = (-s * dx + c * dy) / radius
        if kind == "circle":
            d = np.sqrt(u * u + v * v) - 1.0
        elif kind == "square":
            d = np.maximum(np.abs(u), np.abs(v)) - SQUARE_HALF
        else:
            d = np.maximum.reduce([n[0] * u + n[1] * v for n in _TRI_NORMALS]) - TRIANGLE_R / 2
        alpha = np.clip(0.5 - d * radius, 0.0, 1.0)[..., None]
        shade = np.where(u > MARKER_U, MARKER_SHADE, 1.0)[..., None]
        col = np.asarray(PALETTE[colour], dtype=np.float32) * shade
        region = canvas[y0:y1, x0:x1]
        region += (alpha * (col - region)).astype(np.float32)

    def frame(self, index: int) -> np.ndarray:
        sc = self.scene
        t = index / sc.fps
        canvas = self.background(t)
        for cl in sc.clutter:
            self.draw(canvas, cl.kind, cl.colour, cl.x, cl.y, cl.radius, cl.angle)
        for e in sc.events:
            if e.start <= t < e.end:
                x, y, r, a = event_pose(e, t, sc.width, sc.height)
                self.draw(canvas, e.shape.kind, e.shape.colour, x, y, r, a)
        return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self.scene.n_frames):
            yield self.frame(i)


def rgb_to_yuv420p(img: np.ndarray) -> np.ndarray:
    """BT.601 limited-range planar YUV 4:2:0 ([H * 3 / 2, W] uint8), computed in numpy.

    Letting FFmpeg's swscale convert RGB made the bytes depend on the input buffer's memory
    alignment (it picks SIMD or C paths that round differently), so the same frames could encode
    to different files; this conversion is exact and the same everywhere.
    """
    h, w = img.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {w}x{h}")
    rgb = img.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    cb = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0
    cr = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0

    def sub(c):  # 2x2 mean: the chroma sample sits between its four pixels
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = [np.rint(y), np.rint(sub(cb)), np.rint(sub(cr))]
    out = np.empty((h * 3 // 2, w), dtype=np.uint8)
    out[:h] = np.clip(planes[0], 0, 255)
    out[h: h + h // 4] = np.clip(planes[1], 0, 255).reshape(h // 4, w)
    out[h + h // 4:] = np.clip(planes[2], 0, 255).reshape(h // 4, w)
    return out


def encode_video(frames: Iterator[np.ndarray], path: str | Path, fps: int, width: int, height: int,
                 codec: str = "libx264", crf: int = 23) -> Path:
    """Write RGB frames as an MP4 (yuv420p), bit-exact: one thread, no wall-clock metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # +bitexact keeps the muxer from writing its version string; no creation_time is ever set.
    with av.open(str(tmp), "w", format="mp4", options={"fflags": "+bitexact"}) as out:
        if codec == "libx264":
            # x264's macroblock-tree / lookahead gave different bytes for the same frames from one
            # encode to the next in a process; without them the output is reproducible
            stream = out.add_stream(codec, rate=fps, options={
                "crf": str(crf), "preset": "fast", "threads": "1", "g": str(4 * fps),
                "x264-params": "mbtree=0:rc-lookahead=0:lookahead-threads=1:sliced-threads=0"})
        else:
            stream = out.add_stream(codec, rate=fps, options={"threads": "1", "g": str(4 * fps)})
            stream.bit_rate = 400_000
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        base = Fraction(1, fps)
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(rgb_to_yuv420p(img), format="yuv420p")
            vf.pts, vf.time_base = i, base
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return path



@dataclass
class SyntheticVideo:
    """One generated video: its scene (events = ground truth), frames if kept, file and hash."""

    scene: Scene
    frames: np.ndarray | None = None      # uint8 [T, H, W, 3] when keep_frames
    path: Path | None = None
    sha256: str | None = None
    codec: str | None = None

    @property
    def events(self) -> tuple[Event, ...]:
        return self.scene.events

    @property
    def query(self) -> str:
        return self.scene.query.text


def render_scene(scene: Scene, path: str | Path | None = None, *, cfg: SynthConfig = SynthConfig(),
                 keep_frames: bool | None = None) -> SyntheticVideo:
    """Render a scene: frames kept in memory and/or encoded to ``path`` (codec and crf from ``cfg``).

    With ``path`` the frames are not kept unless ``keep_frames``; without it they are returned.
    """
    keep = (path is None) if keep_frames is None else keep_frames
    renderer = Renderer(scene)
    frames = np.stack(list(renderer)) if keep else None
    result = SyntheticVideo(scene, frames)
    if path is not None:
        codec = resolve_codec(cfg.codec)
        encode_video(iter(frames) if frames is not None else iter(renderer), path, scene.fps, scene.width,
                     scene.height, codec, cfg.crf)
        result.path, result.sha256, result.codec = Path(path), sha256_file(path), codec
    return result


def generate_video(seed: int, path: str | Path | None = None, *, duration: int | None = None,
                   cfg: SynthConfig = SynthConfig(), video_id: str = "syn", keep_frames: bool | None = None
                   ) -> SyntheticVideo:
    """Make one video from ``seed``: its scene (the exact ground truth) and its frames / file.

    ``duration`` (whole seconds) overrides the drawn one; the query stays the seed's, the events
    are drawn for the new length.
    """
    return render_scene(sample_scene(seed, duration, cfg, video_id), path, cfg=cfg, keep_frames=keep_frames)


# ------------------------------------------------------------------------------ annotations

def _length_clock(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


def tvsum_files(scenes: Sequence[Scene], n_annotators: int) -> tuple[str, str, dict]:
    """(ydata-tvsum50-anno.tsv text, info tsv text, tvsum_anno.json object) for ``scenes``."""
    anno_lines, anno_json = [], {}
    info = io.StringIO()
    writer = csv.writer(info, delimiter="\t", lineterminator="\n")
    writer.writerow(["category", "video_id", "title", "url", "length"])
    for sc in scenes:
        cat = MOTION_CATEGORY[sc.query.motion]
        clips = annotator_clip_scores(sc, n_annotators)
        for row in annotator_frame_scores(sc, clips):
            anno_lines.append(f"{sc.video_id}\t{cat}\t{','.join(str(int(v)) for v in row)}")
        writer.writerow([cat, sc.video_id, sc.query.text, f"synthetic://{sc.video_id}", _length_clock(sc.duration)])
        anno_json[sc.video_id] = {
            "fps": float(sc.fps), "frames": str(sc.n_frames), "domain": cat, "title": sc.query.text,
            "url": f"synthetic://{sc.video_id}", "length": _length_clock(sc.duration),
            "anno": clips.T.astype(float).tolist(),  # [#clips][#annotators], as the UMT file
        }
    return "\n".join(anno_lines) + "\n", info.getvalue(), anno_json


def charades_files(scenes: Sequence[Scene]) -> tuple[str, str]:
    """(charades_sta txt, Charades csv): a line only for a query with exactly one matching event."""
    lines = []
    for sc in scenes:
        m = sc.matches
        if len(m) == 1:
            lines.append(f"{sc.video_id} {m[0].start:.2f} {m[0].end:.2f}##{sc.query.text}")
    lengths = io.StringIO()
    w = csv.writer(lengths, lineterminator="\n")
    w.writerow(["id", "length"])
    for sc in scenes:
        w.writerow([sc.video_id, f"{sc.duration:.2f}"])
    return "\n".join(lines) + ("\n" if lines else ""), lengths.getvalue()


def grounding_records(scenes: Sequence[Scene]) -> list[dict]:
    """data/grounding.py training list: every matching span of the query."""
    return [{"video_uid": f"{sc.video_id}.mp4", "query": sc.query.text,
             "timestamps": [[e.start, e.end] for e in sc.matches]} for sc in scenes]


def activitynet_captions(scenes: Sequence[Scene]) -> dict:
    """yc2_val.json layout: {"v_<id>": {duration, timestamps, sentences}} with one caption per event."""
    return {f"v_{sc.video_id}": {"duration": float(sc.duration),
                                 "timestamps": [[e.start, e.end] for e in sc.events],
                                 "sentences": [e.caption for e in sc.events]} for sc in scenes}


def dvc_records(scenes: Sequence[Scene]) -> dict:
    """Shot2Story DVC training layout: {video_uid: {annotation_uid: [{text, time, timespan}]}}."""
    out = {}
    for sc in scenes:
        rng = _rng(sc.seed, "captions")
        out[f"{sc.video_id}.mp4"] = {"0": [
            {"text": e.caption, "time": response_time(rng, e.start, e.end), "timespan": [e.start, e.end]}
            for e in sc.events]}
    return out


@dataclass(frozen=True)
class MagqaExample:
    question_id: str
    question: str
    ask_time: float
    answers: tuple[tuple[Event, float], ...]   # (answered event, response time)


def magqa_example(scene: Scene) -> MagqaExample:
    """One multi-answer grounded question for a video.

    The question names one attribute of the query; it is asked on the TIME_GRID between 0.5 s and
    the first matching event, and every event with that attribute starting at or after the
    question is answered with its caption (so the matching events always are), at a response time
    between the event's midpoint and three quarters of it.
    """
    rng = _rng(scene.seed, "magqa")
    attr = ("colour", "kind", "motion")[int(rng.integers(3))]
    q = scene.query
    text = {"colour": f"What are the {q.colour} shapes doing?",
            "kind": f"What are the {q.kind}s doing?",
            "motion": f"Which shapes {MOTION_VERB[q.motion]}?"}[attr]
    first = scene.matches[0].start
    ask = float(min(max(_grid(rng.uniform(0.5, max(first, 0.5)), TIME_GRID), 0.5), first))
    answered = [e for e in scene.events if e.start >= ask and getattr(e.shape, attr) == getattr(q, attr)]
    return MagqaExample(f"{scene.video_id}_q0", text, ask,
                        tuple((e, response_time(rng, e.start, e.end)) for e in answered))


def magqa_files(scenes: Sequence[Scene]) -> tuple[list[dict], list[dict]]:
    """(training conversations, test items) in the MAGQA formats."""
    train, test = [], []
    for sc in scenes:
        ex = magqa_example(sc)
        user = {"role": "user", "content": ex.question, "time": ex.ask_time}
        train.append({"video_uid": f"{sc.video_id}.mp4", "video_start_time": 0.0, "question_id": ex.question_id,
                      "conversation": [user] + [
                          {"role": "assistant", "content": e.caption, "time": t, "timespan": [e.start, e.end]}
                          for e, t in ex.answers]})
        test.append({"question_id": ex.question_id, "video": f"{sc.video_id}.mp4", "duration": float(sc.duration),
                     "conversation": [dict(user)],
                     "answer": [{"content": e.caption, "time": [e.start, e.end]} for e, _ in ex.answers]})
    return train, test


HIHD_COLUMNS = ("youtube_id", "training_split", "query", "duration", "scores", "quality_dropout")


def hihd_rows(scenes: Sequence[Scene], split: str, seed: int) -> list[dict]:
    rows = []
    for sc in scenes:
        query, _ = render_query(sc.query.text, "random", seed, sc.video_id)
        dropout_seed = int(_rng(sc.seed, "dropout").integers(2**31))
        dropout = make_schedule(float(sc.duration), dropout_seed).to_list()
        rows.append({"youtube_id": sc.video_id, "training_split": split, "query": query,
                     "duration": float(sc.duration),
                     "scores": json.dumps([round(float(x), 4) for x in replay_scores(sc)]),
                     "quality_dropout": json.dumps(dropout)})
    return rows


def qvh_clip_saliency(scene: Scene) -> tuple[list[int], list[list[int]]]:
    """(relevant_clip_ids, saliency_scores) of the query, QVHighlights style.

    The relevant clips are the 2-s clips [2c, 2c + 2) that overlap a matching event, among the
    int(duration / 2) whole clips the scorer's ground-truth matrix has. Each of 3 annotators rates
    them 0-4: ``round(4 * gain * clip importance + noise)`` with the clip importance taken after a
    reaction lag U(-0.5, 0.75) s, gain U(0.7, 1.3) and noise N(0, 0.35) per clip (as the TVSum
    annotators, on QVHighlights' 0-4 scale).
    """
    rng = _rng(scene.seed, "qvh")
    n_clips = int(scene.duration / QVH_CLIP_S)
    ids = [c for c in range(n_clips)
           if any(c * QVH_CLIP_S < e.end and (c + 1) * QVH_CLIP_S > e.start for e in scene.matches)]
    t = frame_times(scene)
    clip_of_frame = np.floor(t / QVH_CLIP_S + 1e-9).astype(np.int64)
    whole = clip_of_frame < n_clips          # an odd last second is no whole clip
    counts = np.bincount(clip_of_frame[whole], minlength=n_clips)
    scores = np.zeros((len(ids), QVH_ANNOTATORS), dtype=np.int64)
    for a in range(QVH_ANNOTATORS):
        lag, gain = rng.uniform(-0.5, 0.75), rng.uniform(0.7, 1.3)
        imp = importance_at(scene, t - lag)[whole]
        clip_imp = np.bincount(clip_of_frame[whole], weights=imp, minlength=n_clips) / counts
        raw = 4.0 * gain * clip_imp[ids] + rng.normal(0.0, 0.35, len(ids))
        scores[:, a] = np.clip(np.rint(raw), 0, 4)
    return ids, scores.tolist()


def qvh_vid(scene: Scene) -> str:
    """QVHighlights ``vid`` = ``<youtube_id>_<start>_<end>``: here the whole video is the clip, so
    ``datasets/convert.py qvh --video_template "{youtube_id}.mp4"`` names its file."""
    return f"{scene.video_id}_0.0_{float(scene.duration):.1f}"


def qvh_records(scenes: Sequence[Scene], split: str) -> list[dict]:
    """``highlight_<split>_release.jsonl`` records, in the official key order; ``scenes`` are the
    split's videos in index order (qid = 100000 * split code + index)."""
    recs = []
    for i, sc in enumerate(scenes):
        ids, saliency = qvh_clip_saliency(sc)
        recs.append({"qid": SPLIT_CODE[split] * 100000 + i, "query": sc.query.text, "duration": sc.duration,
                     "vid": qvh_vid(sc), "relevant_clip_ids": ids, "saliency_scores": saliency,
                     "relevant_windows": [[e.start, e.end] for e in sc.matches]})
    return recs


def hisum_change_points(scene: Scene) -> np.ndarray:
    """(S, 2) int64 shots [start, end] in seconds (inclusive) tiling the video, standing in for KTS.

    Cuts at every event boundary rounded to the nearest second; a cut closer than 2 s to the
    previous kept one (or to the end) is dropped (its stretch joins the previous one), and a
    stretch longer than 3 s is cut into near-equal shots of 2-3 s. Every shot thus lasts 2-3 s
    (the official shot weight end - start is never 0); most lie inside one event or calm gap.
    """
    n, (lo, hi) = scene.duration, HISUM_SHOT_S
    cuts = sorted({int(math.floor(b + 0.5)) for e in scene.events for b in (e.start, e.end)} - {0, n})
    kept = [0]
    for c in cuts:
        if c - kept[-1] >= lo and n - c >= lo:
            kept.append(c)
    kept.append(n)
    shots = []
    for a, b in zip(kept, kept[1:]):
        k = math.ceil((b - a) / hi)
        edges = [a + (j * (b - a)) // k for j in range(k + 1)]
        shots += [[s, e - 1] for s, e in zip(edges, edges[1:])]
    return np.asarray(shots, dtype=np.int64)


def hisum_gt_summary(gtscore: np.ndarray, change_points: np.ndarray) -> np.ndarray:
    """The 0/1 knapsack summary of ``gtscore`` at 15 %, as the official code builds it: shot value
    = mean score, shot weight = end - start, one block of end - start entries per shot (so the
    summary has n - #shots entries; the scorer makes the machine summary the same way, so the
    ground truth used as a prediction scores F1 = 100)."""
    from test.scorers.hisum import knapsack_summary

    return knapsack_summary(gtscore, change_points, HISUM_BUDGET, "official")


HISUM_COLUMNS = ("video_id", "yt8m_file", "random_id", "youtube_id", "duration", "views", "labels")
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def hisum_metadata_row(scene: Scene, split: str) -> dict:
    """A ``mr_hisum_metadata.csv`` row: video_id = youtube_id = the synthetic id (the file is
    ``<youtube_id>.mp4``), yt8m_file = ``synthetic_<split>``, a random 4-letter random_id, views
    >= 50,000 as in Mr.HiSum, labels = ``[index of the query's motion in MOTIONS]`` (numpy-printed)."""
    rng = _rng(scene.seed, "hisum")
    random_id = "".join(_ID_ALPHABET[int(k)] for k in rng.integers(0, len(_ID_ALPHABET), 4))
    return {"video_id": scene.video_id, "yt8m_file": f"synthetic_{split}", "random_id": random_id,
            "youtube_id": scene.video_id, "duration": scene.duration, "views": int(rng.integers(50_000, 2_000_000)),
            "labels": f"[{MOTIONS.index(scene.query.motion)}]"}


def write_hisum_files(out: Path, scenes: dict[str, Sequence[Scene]]) -> None:
    """Mr.HiSum's layout for every split at once (one h5, split json, metadata, titles), as the real
    data set: ``mr_hisum.h5`` ``/<video_id>/{features, gtscore, change_points, gt_summary}``
    (features are zeros: nothing in the project reads them; gtscore = importance per second),
    ``mr_hisum_split.json`` {train,val,test}_keys, ``mr_hisum_metadata.csv`` and the titles
    (``youtube_id<TAB>title``, title = the query) that ``datasets/convert.py hisum --titles`` reads."""
    import h5py

    tmp = out / ".mr_hisum.h5.tmp"
    with h5py.File(tmp, "w") as f:  # track_times=False: no timestamps, the same bytes every run
        for split in SPLITS:
            for sc in scenes[split]:
                gt = importance_per_second(sc)
                cps = hisum_change_points(sc)
                g = f.create_group(sc.video_id)
                g.create_dataset("features", data=np.zeros((sc.duration, HISUM_FEATURE_DIM), np.float32),
                                 compression="gzip", track_times=False)
                g.create_dataset("gtscore", data=gt, track_times=False)
                g.create_dataset("change_points", data=cps, track_times=False)
                g.create_dataset("gt_summary", data=hisum_gt_summary(gt, cps), track_times=False)
    os.replace(tmp, out / "mr_hisum.h5")
    atomic_write_json(out / "mr_hisum_split.json", {f"{s}_keys": [sc.video_id for sc in scenes[s]] for s in SPLITS})
    rows = [hisum_metadata_row(sc, s) for s in SPLITS for sc in scenes[s]]
    atomic_write_text(out / "mr_hisum_metadata.csv", _csv_text(rows, HISUM_COLUMNS))
    titles = [{"youtube_id": sc.video_id, "title": sc.query.text} for s in SPLITS for sc in scenes[s]]
    atomic_write_text(out / "mr_hisum_titles.tsv", _csv_text(titles, ("youtube_id", "title"), delimiter="\t"))


def _csv_text(rows: Sequence[dict], columns: Sequence[str], delimiter: str = ",") -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), delimiter=delimiter, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _load_converter():
    """datasets/convert.py (a script, not a package) loaded by path."""
    spec = importlib.util.spec_from_file_location("aha_datasets_convert", REPO_ROOT / "datasets" / "convert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def benchmark_items(split_dir: Path, split: str, seed: int) -> dict[str, list[dict]]:
    """The converter's items for the split's files (its own functions, templates seeded by ``seed``)."""
    conv = _load_converter()
    items = {
        "tvsum": conv.convert_tvsum(split_dir / "ydata-tvsum50-info.tsv",
                                    anno_path=split_dir / "ydata-tvsum50-anno.tsv", seed=seed),
        "youcook2": conv.convert_youcook2(split_dir / f"yc2_{split}.json", seed=seed),
        "magqa": conv.convert_magqa(split_dir / "magqa_test.json", seed=seed),
    }
    sta = split_dir / f"charades_sta_{split}.txt"
    items["charades"] = (conv.convert_charades(sta, split_dir / f"Charades_v1_{split}.csv", seed=seed)
                         if sta.stat().st_size else [])
    items["qvh"] = conv.convert_qvh(split_dir / f"highlight_{split}_release.jsonl", seed=seed,
                                    video_template=QVH_VIDEO_TEMPLATE)
    root = split_dir.parent
    items["hisum"] = conv.convert_hisum(root / "mr_hisum_metadata.csv", root / "mr_hisum_split.json",
                                        split=f"{split}_keys", titles_path=root / "mr_hisum_titles.tsv", seed=seed)
    return items


def write_split_annotations(split_dir: Path, split: str, scenes: Sequence[Scene], cfg: SynthConfig,
                            seed: int) -> list[dict]:
    """Every annotation file of one split; returns its HIHD rows (the CSV spans all splits).

    The Mr.HiSum files (one set for all splits, ``write_hisum_files``) must exist already: the
    split's hisum items are converted from them."""
    split_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(split_dir / "ground_truth.json", [sc.to_dict() for sc in scenes])
    anno, info, anno_json = tvsum_files(scenes, cfg.n_annotators)
    atomic_write_text(split_dir / "ydata-tvsum50-anno.tsv", anno)
    atomic_write_text(split_dir / "ydata-tvsum50-info.tsv", info)
    atomic_write_json(split_dir / "tvsum_anno.json", anno_json)
    sta, lengths = charades_files(scenes)
    atomic_write_text(split_dir / f"charades_sta_{split}.txt", sta)
    atomic_write_text(split_dir / f"Charades_v1_{split}.csv", lengths)
    atomic_write_json(split_dir / "grounding.json", grounding_records(scenes))
    atomic_write_json(split_dir / f"yc2_{split}.json", activitynet_captions(scenes))
    atomic_write_json(split_dir / "shot2story_dvc.json", dvc_records(scenes))
    train, test = magqa_files(scenes)
    atomic_write_json(split_dir / "magqa_train.json", train)
    atomic_write_json(split_dir / "magqa_test.json", test)
    atomic_write_text(split_dir / f"highlight_{split}_release.jsonl",
                      "".join(dumps(r) + "\n" for r in qvh_records(scenes, split)))
    for name, items in benchmark_items(split_dir, split, seed).items():
        atomic_write_text(split_dir / "items" / f"{name}.jsonl", "".join(dumps(it) + "\n" for it in items))
    return hihd_rows(scenes, split, seed)


def mixture_config(fps: float = 2, max_frames: int = 128) -> dict:
    """A training mixture (data/mixture.py format) over the train split, paths relative to DIR."""
    common = {"video_root": "videos", "metadata": "videos_metadata.json", "fps": fps, "max_frames": max_frames}
    return {
        "description": "Synthetic shapes benchmark (data/synthetic.py), train split. Build the metadata first: "
                       "python -m data.metadata DIR/videos DIR/videos_metadata.json; then use DIR as data_root.",
        "datasets": [
            {"name": "synthetic_dvc", "type": "dvc", "anno_file": "train/shot2story_dvc.json", **common},
            {"name": "synthetic_magqa", "type": "magqa", "anno_file": "train/magqa_train.json", **common},
            {"name": "synthetic_grounding", "type": "grounding", "anno_file": "train/grounding.json", **common},
            {"name": "synthetic_hihd", "type": "hihd", "anno_file": "HIHD_metadata.csv", "split": "train", **common},
        ],
    }


# ------------------------------------------------------------------------------- the data set

def _render_job(args: tuple[Scene, SynthConfig, str]) -> tuple[str, str, str]:
    scene, cfg, path = args
    result = render_scene(scene, path, cfg=cfg)  # the very scene the annotations were made from
    return scene.video_id, result.sha256, result.codec


def _prepare_out(out: Path) -> None:
    """Create ``out``, or clear a previous synthetic set there; refuse a folder that is not ours."""
    if out.exists() and any(out.iterdir()):
        manifest = out / "manifest.json"
        try:
            ours = read_json(manifest).get("generator") == GENERATOR
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise ValueError(f"{out} is not empty and holds no synthetic manifest.json; choose an empty folder")
        for name in ("videos", *SPLITS):
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        for name in ("manifest.json", "HIHD_metadata.csv", "mixture_train.json", "videos_metadata.json", *HISUM_FILES):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def is_default_set(folder: str | Path, seed: int = 0, counts: dict[str, int] | None = None) -> bool:
    """Whether ``folder`` holds a complete set of this format, made with the default SynthConfig
    and ``seed`` (and these split sizes, if given): the scripts reuse such a folder instead of
    generating it again."""
    try:
        m = read_json(Path(folder) / "manifest.json")
    except (OSError, ValueError):
        return False
    return (m.get("complete") is True and m.get("format_version") == FORMAT_VERSION and m.get("seed") == seed
            and m.get("config") == json.loads(json.dumps(SynthConfig().to_dict()))
            and (counts is None or m.get("counts") == counts))


def generate_dataset(out: str | Path, seed: int = 0, n_train: int = 120, n_val: int = 20, n_test: int = 20,
                     cfg: SynthConfig = SynthConfig(), workers: int = 1, progress: bool = False) -> dict:
    """Write the whole synthetic set under ``out`` (layout in the module doc); returns the manifest."""
    counts = {"train": n_train, "val": n_val, "test": n_test}
    if any(n < 0 for n in counts.values()) or sum(counts.values()) == 0:
        raise ValueError(f"split sizes must be >= 0 and not all 0, got {counts}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out)
    codec = resolve_codec(cfg.codec)
    _prepare_out(out)
    # a stub first, so a run that dies half-way leaves a folder the next run may clear
    atomic_write_json(out / "manifest.json", {"generator": GENERATOR, "complete": False})
    scenes = {s: [sample_scene(video_seed(seed, s, i), None, cfg, video_id(s, i)) for i in range(n)]
              for s, n in counts.items()}
    jobs = [(sc, cfg, str(out / "videos" / f"{sc.video_id}.mp4")) for s in SPLITS for sc in scenes[s]]
    started = time.perf_counter()
    if workers == 1:
        results = map(_render_job, jobs)
        done = _collect(results, len(jobs), progress)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            done = _collect(pool.map(_render_job, jobs, chunksize=1), len(jobs), progress)
    render_s = time.perf_counter() - started

    write_hisum_files(out, scenes)
    hihd = []
    for s in SPLITS:
        if scenes[s]:
            hihd += write_split_annotations(out / s, s, scenes[s], cfg, seed)
    atomic_write_text(out / "HIHD_metadata.csv", _csv_text(hihd, HIHD_COLUMNS))
    if scenes["train"]:
        atomic_write_json(out / "mixture_train.json", mixture_config())

    files = {p.relative_to(out).as_posix(): sha256_file(p) for p in sorted(out.rglob("*"))
             if p.is_file() and p.parent.name != "videos" and p.name != "manifest.json"}
    manifest = {
        "generator": GENERATOR, "complete": True, "format_version": FORMAT_VERSION, "seed": int(seed),
        "counts": counts, "config": cfg.to_dict(), "codec": codec,
        "versions": {"numpy": np.__version__, "av": av.__version__},
        "converter_items": "datasets/convert.py convert_{charades,tvsum,youcook2,magqa,qvh,hisum}, default templates, "
                           f"this seed; qvh with --video_template {QVH_VIDEO_TEMPLATE}",
        "videos": {sc.video_id: {"split": s, "seed": sc.seed, "duration": sc.duration, "n_frames": sc.n_frames,
                                 "query": sc.query.text, "n_events": len(sc.events), "n_matches": len(sc.matches),
                                 "sha256": done[sc.video_id]}
                   for s in SPLITS for sc in scenes[s]},
        "files": files,
    }
    atomic_write_json(out / "manifest.json", manifest)
    if progress:
        print(f"{len(jobs)} videos ({codec}) in {render_s:.1f} s -> {out}", file=sys.stderr)
    return manifest


def _collect(results, total: int, progress: bool) -> dict[str, str]:
    done = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="synthetic videos", unit="video")
    for vid, sha, _ in results:
        done[vid] = sha
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return done


# ------------------------------------------------------------------------------------- CLI

def parse_size(text: str) -> tuple[int, int]:
    """"128" -> (128, 128); "160x120" -> (160, 120)."""
    parts = text.lower().split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--size must be W or WxH, got {text!r}") from None
    if len(dims) == 1:
        return dims[0], dims[0]
    if len(dims) == 2:
        return dims[0], dims[1]
    raise ValueError(f"--size must be W or WxH, got {text!r}")


def parse_duration(text: str) -> tuple[int, int]:
    """"30" -> (30, 30); "20:40" -> (20, 40) (whole seconds, drawn uniformly per video)."""
    parts = text.split(":")
    try:
        vals = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--duration must be S or LO:HI in whole seconds, got {text!r}") from None
    if len(vals) == 1:
        return vals[0], vals[0]
    if len(vals) == 2:
        return vals[0], vals[1]
    raise ValueError(f"--duration must be S or LO:HI in whole seconds, got {text!r}")


def parse_fraction_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"--event_radius must be LO:HI (fractions), got {text!r}") from None
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m data.synthetic",
                                description="Generate the deterministic synthetic shapes benchmark.")
    p.add_argument("--out", required=True, help="output folder (empty, or a previous synthetic set to replace)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n_train", type=int, default=120)
    p.add_argument("--n_val", type=int, default=20)
    p.add_argument("--n_test", type=int, default=20)
    p.add_argument("--duration", default="20:40", help="seconds per video: S or LO:HI (default %(default)s)")
    p.add_argument("--fps", type=int, default=8)
    p.add_argument("--size", default="128", help="W (square) or WxH, even (default %(default)s)")
    p.add_argument("--n_annotators", type=int, default=20, help="TVSum-style annotators per video")
    p.add_argument("--codec", choices=("auto", "libx264", "mpeg4"), default="auto")
    p.add_argument("--clutter_palette", choices=("colours", "grey"), default="grey",
                   help="static clutter in greys (default) or in the query colours (format 1's harder set)")
    p.add_argument("--event_radius", default="0.12:0.17",
                   help="event shape radius LO:HI, fraction of the short side (format 1: 0.08:0.12)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="encoding processes")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        width, height = parse_size(args.size)
        cfg = SynthConfig(fps=args.fps, width=width, height=height, duration=parse_duration(args.duration),
                          n_annotators=args.n_annotators, codec=args.codec, clutter_palette=args.clutter_palette,
                          event_radius=parse_fraction_range(args.event_radius))
        manifest = generate_dataset(args.out, args.seed, args.n_train, args.n_val, args.n_test, cfg,
                                    workers=args.workers, progress=not args.quiet)
    except ValueError as e:
        parser.exit(2, f"python -m data.synthetic: error: {e}\n")
    n = sum(manifest["counts"].values())
    print(f"synthetic: {n} videos {manifest['counts']} seed {args.seed} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
