"""Rendering and bit-exact encoding of synthetic scenes."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from scipy.ndimage import gaussian_filter

from utils.io import sha256_file
from data.synthetic.scene import MARKER_SHADE, MARKER_U, EXTENT, Event, PALETTE, SQUARE_HALF, Scene, SynthConfig, TRIANGLE_R, _TRI_NORMALS, event_pose, sample_scene



def resolve_codec(requested: str = "auto") -> str:
    """libx264 when the installed PyAV/FFmpeg has it (asked for or auto), else mpeg4."""
    has_x264 = "libx264" in av.codecs_available
    if requested == "libx264" and not has_x264:
        raise ValueError("libx264 is not available in this PyAV build; use --codec mpeg4 or auto")
    return "libx264" if requested in ("auto", "libx264") and has_x264 else "mpeg4"



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

