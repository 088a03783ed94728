#!/usr/bin/env python
"""Cut a video into one file per shot with ffmpeg.

    python datasets/cut_shots.py VIDEO --output_dir DIR                      # detect shot changes
    python datasets/cut_shots.py VIDEO --output_dir DIR --cuts cuts.json     # given boundaries

Boundaries come from ``--cuts`` (JSON or CSV, see ``read_cut_file``) or are detected by content
change: frames are decoded with ``data/video.py`` (at the native rate by default, letter-boxed to
``--analysis_size`` pixels), the mean absolute difference of consecutive frames (0..1) is computed,
and every frame whose difference exceeds ``--threshold`` starts a new shot, strongest changes
first, keeping shots at least ``--min_shot`` seconds long.

Each shot ``[start, end)`` is re-encoded (libx264, ``--crf``) so that cuts are frame-accurate;
``--copy`` copies the streams instead (fast, lossless, but cuts snap to key frames). ffmpeg is
imageio-ffmpeg's binary unless ``--ffmpeg`` names another. Output: ``DIR/<stem>_shotNNN.mp4`` and
``DIR/<stem>_shots.json`` (video, duration, method, parameters, and each shot's start, end and
file). Each shot is written to a hidden ``.part`` file and renamed when ffmpeg succeeds; the JSON is
removed before cutting and written last, so it exists only when every listed shot does; shots of an
earlier run beyond this run's last are deleted.

``datasets/`` is not a Python package (it would shadow HuggingFace ``datasets``): the repository
root is put on ``sys.path`` below so ``data.video`` imports.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse  # noqa: E402
import csv  # noqa: E402
import glob  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
from typing import Sequence  # noqa: E402

import numpy as np  # noqa: E402

from data.fetch import cut_command, ffmpeg_exe  # noqa: E402
from data.video import iter_frames, probe  # noqa: E402
from utils.io import atomic_write_json, read_json  # noqa: E402

log = logging.getLogger("cut_shots")

Shot = tuple[float, float]


# ------------------------------------------------------------------------------ cut files

def read_cut_file(path: str | Path, duration: float) -> list[Shot]:
    """Shots from a JSON or CSV file of cut times or of (start, end) spans.

    JSON: ``[t1, t2, ...]`` (cut points), ``[[start, end], ...]`` (spans), or an object with a
    ``"boundaries"`` (cut points) or ``"shots"`` (spans, lists or ``{"start", "end"}``) key.
    CSV: one number per row (cut points) or two (start, end); a non-numeric first row is a header.
    Cut points give the shots between consecutive cuts, from 0 to ``duration``.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = read_json(path)  # strict: a repeated key is an error naming the file
        if isinstance(data, dict):
            if "boundaries" in data:
                data = data["boundaries"]
            elif "shots" in data:
                data = [[s["start"], s["end"]] if isinstance(s, dict) else s for s in data["shots"]]
            else:
                raise ValueError(f"{path}: expected a 'boundaries' or 'shots' key")
        rows = [r if isinstance(r, list) else [r] for r in data]
    else:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [[c.strip() for c in r if c.strip()] for r in csv.reader(f)]
        rows = [r for r in rows if r]
        if rows and not _is_number(rows[0][0]):
            rows = rows[1:]
    try:
        values = [[float(c) for c in r] for r in rows]
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: non-numeric cut time ({e})") from e
    widths = {len(r) for r in values}
    if widths == {1}:
        outside = [r[0] for r in values if not 0 <= r[0] <= duration]
        if outside:  # a cut that cuts nothing: another video's times, or not seconds
            raise ValueError(f"{path}: cut time(s) {outside} outside the video (0 - {duration:g} s)")
        return shots_from_boundaries([r[0] for r in values], duration)
    if widths == {2}:
        shots = []
        for s, e in values:
            if not 0 <= s < e:
                raise ValueError(f"{path}: invalid shot [{s}, {e}]")
            if s >= duration:
                raise ValueError(f"{path}: shot [{s:g}, {e:g}] starts at or after the video's end ({duration:g} s)")
            if e > duration:
                log.warning("%s: shot [%g, %g] ends after the video; clipped to %g s", path, s, e, duration)
                e = float(duration)
            shots.append((s, e))
        return sorted(shots)
    raise ValueError(f"{path}: rows must all hold one cut time or a start,end pair")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def shots_from_boundaries(boundaries: Sequence[float], duration: float) -> list[Shot]:
    """Consecutive shots split at the cut times strictly inside ``(0, duration)``."""
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    inner = sorted({float(b) for b in boundaries if 0 < b < duration})
    edges = [0.0, *inner, float(duration)]
    return list(zip(edges[:-1], edges[1:]))


# ------------------------------------------------------------------------------ detection

def frame_differences(video: str | Path, analysis_fps: float, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(times, diffs): diffs[k] = mean |frame_k - frame_{k-1}| / 255 (diffs[0] = 0)."""
    times, diffs = [], []
    previous = None
    for t, frame in iter_frames(video, analysis_fps, size=size):
        current = frame.astype(np.int16)
        diffs.append(0.0 if previous is None else float(np.abs(current - previous).mean()) / 255.0)
        times.append(t)
        previous = current
    return np.asarray(times), np.asarray(diffs)


def detect_boundaries(times: np.ndarray, diffs: np.ndarray, duration: float, threshold: float = 0.1,
                      min_shot_s: float = 1.0) -> list[float]:
    """Cut times: frames whose change exceeds ``threshold``, strongest first, shots >= min_shot_s."""
    if threshold <= 0 or min_shot_s < 0:
        raise ValueError(f"need threshold > 0 and min_shot_s >= 0, got {threshold}, {min_shot_s}")
    order = np.argsort(-diffs, kind="stable")
    chosen: list[float] = []
    for k in order:
        if diffs[k] <= threshold:
            break
        t = float(times[k])
        far_from_ends = t >= min_shot_s and duration - t >= min_shot_s
        if far_from_ends and all(abs(t - c) >= min_shot_s for c in chosen):
            chosen.append(t)
    return sorted(chosen)


# ------------------------------------------------------------------------------ cutting

def cut_video(video: str | Path, shots: Sequence[Shot], output_dir: str | Path, native_fps: float,
              ffmpeg: str | None = None, copy: bool = False, crf: int = 18,
              preset: str = "veryfast") -> list[Path]:
    """Write one mp4 per shot; returns their paths.

    Both ends are moved half a native frame earlier so that the frame starting exactly at a cut
    time belongs to the shot it starts (floating-point cut times never drop or repeat it): a shot
    ``[start, end)`` holds the frames shown in ``[start - half, end - half)``. Re-encoded shots are
    selected on the decoded frames' timestamps (``data.fetch.cut_command``), so that holds on
    MP4, MKV/WebM and MPEG-TS sources alike.
    """
    video, output_dir = Path(video), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    ffmpeg = ffmpeg or ffmpeg_exe()
    half = 0.5 / native_fps if native_fps > 0 else 0.0
    paths = []
    for k, (start, end) in enumerate(shots):
        out = output_dir / f"{video.stem}_shot{k:03d}.mp4"
        part = out.with_name(f".{out.name}.part")  # an interrupted ffmpeg leaves no half shot under its name
        s = max(0.0, start - half)
        if copy:  # packets, not frames: the cut snaps to key frames whatever the seek
            cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-ss", f"{s:.6f}",
                   "-t", f"{end - half - s:.6f}", "-i", str(video), "-map", "0:v:0", "-map", "0:a?",
                   "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(part)]
        else:
            cmd = cut_command(ffmpeg, video, part, s, end - half, crf=crf, preset=preset, fmt="mp4")
        try:
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"ffmpeg failed on shot {k} [{start}, {end}) of {video}: {result.stderr.strip()}")
            os.replace(part, out)
        finally:
            part.unlink(missing_ok=True)
        paths.append(out)
    # shots of an earlier run that cut this video into more pieces would pass for this run's
    keep = {p.name for p in paths}
    for old in output_dir.glob(f"{glob.escape(video.stem)}_shot*.mp4"):
        if old.name not in keep and re.fullmatch(re.escape(video.stem) + r"_shot\d{3,}\.mp4", old.name):
            old.unlink()
    return paths


def cut_shots(video: str | Path, output_dir: str | Path, cuts: str | Path | None = None,
              analysis_fps: float | None = None, analysis_size: int = 64, threshold: float = 0.1,
              min_shot_s: float = 1.0, copy: bool = False, crf: int = 18, ffmpeg: str | None = None) -> dict:
    """Find (or read) the shots of ``video``, cut them, write and return the manifest."""
    video = Path(video)
    info = probe(video)
    if cuts is not None:
        shots = read_cut_file(cuts, info.duration)
        method = {"method": "given", "cuts": str(cuts)}
    else:
        fps = analysis_fps or info.fps
        times, diffs = frame_differences(video, fps, analysis_size)
        shots = shots_from_boundaries(detect_boundaries(times, diffs, info.duration, threshold, min_shot_s),
                                      info.duration)
        method = {"method": "content_change", "analysis_fps": fps, "analysis_size": analysis_size,
                  "threshold": threshold, "min_shot_s": min_shot_s}
    # the list of shots says the folder is complete: gone until this run's shots are all written
    Path(output_dir, f"{video.stem}_shots.json").unlink(missing_ok=True)
    files = cut_video(video, shots, output_dir, info.fps, ffmpeg=ffmpeg, copy=copy, crf=crf)
    manifest = {
        "video": str(video), "duration": info.duration, "fps": info.fps, **method,
        "encoding": "stream copy (key-frame aligned)" if copy else f"libx264 crf {crf}",
        "shots": [{"index": k, "start": s, "end": e, "file": p.name} for k, ((s, e), p) in enumerate(zip(shots, files))],
    }
    atomic_write_json(Path(output_dir) / f"{video.stem}_shots.json", manifest)
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="cut_shots.py")
    ap.add_argument("video")
    ap.add_argument("--output_dir", required=True)
    ap.add_argument("--cuts", help="JSON/CSV of cut times or start,end spans (default: detect)")
    ap.add_argument("--analysis_fps", type=float, default=None, help="detection rate (default: native)")
    ap.add_argument("--analysis_size", type=int, default=64)
    ap.add_argument("--threshold", type=float, default=0.1, help="mean absolute frame difference, 0..1")
    ap.add_argument("--min_shot", type=float, default=1.0, help="shortest shot, seconds")
    ap.add_argument("--copy", action="store_true", help="stream copy (cuts snap to key frames)")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--ffmpeg", default=None, help="ffmpeg binary (default: imageio-ffmpeg's)")
    args = ap.parse_args(argv)
    try:
        manifest = cut_shots(args.video, args.output_dir, args.cuts, args.analysis_fps, args.analysis_size,
                             args.threshold, args.min_shot, args.copy, args.crf, args.ffmpeg)
    except (ValueError, OSError, RuntimeError) as e:
        ap.error(str(e))
    for shot in manifest["shots"]:
        print(f"{shot['start']:9.3f} {shot['end']:9.3f}  {shot['file']}")
    return 0


if __name__ == "__main__":
    import sys

    from utils.cli import entry

    sys.exit(entry("cut_shots.py", main))  # the error contract: instructions/errors.md
