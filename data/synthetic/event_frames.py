"""Labelled event frames for pretraining the tiny vision tower (``scripts/pretrain_tiny_vision.py``).

The embedded default has no pretrained SigLIP (none exists on the development machines), and a
random-init tower trained only through the language model on 480 videos memorises their ~1,800
events instead of learning shape: with direct labels on those events it fits the training set and
stays at chance on held-out ones, while with freshly rendered events it generalises
(instructions/tiny_model.md, session 7). So the recipe first pretrains the tower on events rendered
here, from scenes drawn with the benchmark's own generator (same shapes, colours, motions, clutter
and backgrounds) but from a seed stream disjoint from the benchmark's splits, so no val / test video
is ever seen.

A sample is ``frames`` frames of one event, ``gap_s`` apart, starting at a random time inside it,
rendered at the scene size and letterboxed to the vision size exactly as ``data.video`` does for
decoded videos, with the event's kind / colour / motion as class indices (``KINDS``, ``COLOURS``,
``MOTIONS``) and the shape's pose in every frame (``pose``: where it is, how large, which way its
darker cap points; motion is how the pose changes, which one frame's token can only carry as pose).
With ``calm_fraction`` > 0, calm samples (no event on screen in any of their frames, clutter and
background only) are added, labelled with the extra class ``len(KINDS)`` /
``len(COLOURS)`` / ``len(MOTIONS)`` ("nothing"): a tower that has only ever seen events gives calm
frames an arbitrary token, and the language model then cannot tell an event from calm (session 7).
Pixels skip the video codec: held-out accuracy is measured on decoded frames too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from data.synthetic.render import Renderer
from data.synthetic.scene import COLOURS, KINDS, MOTIONS, SynthConfig, event_pose, sample_scene
from data.video import letterbox

# never one of SPLIT_CODE's values (0, 1, 2): a seed stream no benchmark split draws from
PRETRAIN_STREAM = 1000


@dataclass
class EventFrames:
    frames: np.ndarray  # uint8 [n, frames, size, size, 3]
    kind: np.ndarray    # int64 [n], index into KINDS
    colour: np.ndarray  # int64 [n], index into COLOURS
    motion: np.ndarray  # int64 [n], index into MOTIONS
    # float32 [n, frames, POSE_DIM] (pose_features), NaN where no event is on screen (calm samples)
    pose: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.kind)


POSE_DIM = 5


def pose_features(x: float, y: float, radius: float, angle: float, width: int, height: int) -> tuple[float, ...]:
    """The event shape's pose as five numbers of order 1: centre (x, y) in [-1, 1] of the frame, radius
    relative to the frame's short side (x 5: 0.6-1.4 for the benchmark's shapes, up to ~2.7 grown), and
    the direction of its darker cap (cos, sin: the cap makes every kind's rotation visible)."""
    return (2 * x / width - 1, 2 * y / height - 1, 5 * radius / min(width, height), math.cos(angle), math.sin(angle))


def pretrain_scene_seed(seed: int, index: int) -> int:
    state = np.random.SeedSequence([int(seed), PRETRAIN_STREAM, int(index)]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def _calm_start(scene, rng: np.random.Generator, span: int, margin_s: float = 0.25) -> int | None:
    """A random first frame of ``span`` + 1 frames with no event within ``margin_s`` of any of them."""
    t = np.arange(scene.n_frames) / scene.fps
    busy = np.zeros(scene.n_frames, dtype=bool)
    for e in scene.events:
        busy |= (t >= e.start - margin_s) & (t < e.end + margin_s)
    ok = [f for f in range(scene.n_frames - span) if not busy[f: f + span + 1].any()]
    return int(rng.choice(ok)) if ok else None


def render_event_frames(n: int, seed: int = 0, size: int = 112, frames: int = 2, gap_s: float = 0.5,
                        calm_fraction: float = 0.0, cfg: SynthConfig = SynthConfig()) -> EventFrames:
    """``n`` labelled samples: every event of scene 0, 1, ... of the pretraining stream, each followed
    with probability ``calm_fraction`` by a calm sample of the same scene, until ``n``."""
    if n <= 0 or frames <= 0 or gap_s < 0 or size <= 0 or not 0 <= calm_fraction <= 1:
        raise ValueError(f"need n > 0, frames > 0, gap_s >= 0, size > 0, 0 <= calm_fraction <= 1; "
                         f"got {n}, {frames}, {gap_s}, {size}, {calm_fraction}")
    step = int(round(gap_s * cfg.fps))
    if abs(step - gap_s * cfg.fps) > 1e-9:
        raise ValueError(f"gap_s {gap_s} is not a whole number of frames at {cfg.fps} fps")
    out = np.empty((n, frames, size, size, 3), dtype=np.uint8)
    labels = np.empty((3, n), dtype=np.int64)
    pose = np.full((n, frames, POSE_DIM), np.nan, dtype=np.float32)
    i = scene_index = 0
    while i < n:
        seed_i = pretrain_scene_seed(seed, scene_index)
        scene = sample_scene(seed_i, cfg=cfg, video_id=f"pretrain_{scene_index:06d}")
        scene_index += 1
        renderer = Renderer(scene)
        rng = np.random.default_rng([seed_i, 7])
        for e in scene.events:
            first = int(np.ceil(e.start * scene.fps))
            last = int(np.ceil(e.end * scene.fps)) - 1 - step * (frames - 1)  # every frame inside the event
            if last < first or i >= n:
                continue
            f0 = int(rng.integers(first, last + 1))
            for k in range(frames):
                out[i, k] = letterbox(renderer.frame(f0 + k * step), size)
                pose[i, k] = pose_features(*event_pose(e, (f0 + k * step) / scene.fps, scene.width, scene.height),
                                           scene.width, scene.height)
            labels[:, i] = (KINDS.index(e.shape.kind), list(COLOURS).index(e.shape.colour),
                            MOTIONS.index(e.shape.motion))
            i += 1
            if calm_fraction > 0 and i < n and rng.random() < calm_fraction:
                c0 = _calm_start(scene, rng, step * (frames - 1))
                if c0 is not None:
                    for k in range(frames):
                        out[i, k] = letterbox(renderer.frame(c0 + k * step), size)
                    labels[:, i] = (len(KINDS), len(COLOURS), len(MOTIONS))
                    i += 1
    return EventFrames(out, labels[0], labels[1], labels[2], pose)
