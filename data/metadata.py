"""``videos_metadata.json``: duration, fps, frame count and validity of every video under a root.

Format: ``{relpath: {"duration": s, "fps": f, "frames": n, "valid": bool, "error": str|null}}``
with POSIX relative paths, sorted. ``duration``/``fps``/``frames`` come from ``data.video.probe``
(packet timestamps; null when unknown); ``valid`` means the container opens, its packets demux to
the end without a truncation sign, and the first frame decodes (``full_decode=True`` decodes every
frame). A broken file never stops the build: it is recorded ``valid: false`` with the reason.

The build is parallel (``concurrent.futures``; processes by default), shows a tqdm bar, writes
the file atomically every ``save_every`` videos / ``save_interval_s`` seconds and on any exit
(including Ctrl-C), and resumes: entries already in the output file are kept and not probed again.
Only files with a video extension (``data.video.VIDEO_EXTENSIONS``) are considered.

``load_with_retries`` is the dataset-side helper: load item ``i``, and if its video is broken
log it and try other items, up to a bounded number of tries.
"""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import numpy as np
from tqdm import tqdm

from data.video import VIDEO_EXTENSIONS, VideoDecodeError, iter_sampled, probe
from utils.io import atomic_write_json, read_json

log = logging.getLogger("data.metadata")  # stable name also under python -m
T = TypeVar("T")

ENTRY_KEYS = ("duration", "fps", "frames", "valid", "error")


def list_videos(root: str | os.PathLike, extensions: Iterable[str] = VIDEO_EXTENSIONS) -> list[str]:
    """Relative POSIX paths of the video files under ``root`` (recursive, sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"video root is not a directory: {root}")
    exts = {e.lower() for e in extensions}
    found = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            if Path(name).suffix.lower() in exts:
                found.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(found)


def inspect_video(path: str | os.PathLike, full_decode: bool = False) -> dict[str, Any]:
    """One metadata entry; never raises for a bad video (the reason goes to ``error``)."""
    entry: dict[str, Any] = {"duration": None, "fps": None, "frames": None, "valid": False, "error": None}
    try:
        info = probe(path)
        entry.update(duration=info.duration, fps=info.fps, frames=info.n_frames)
        if info.duration <= 0:
            raise VideoDecodeError(path, f"non-positive duration {info.duration}")
        # size=None: no letter-boxing, this is only a decodability check.
        frames = iter_sampled(path, fps=max(info.fps, 1.0), size=None, end_frame=None if full_decode else 1)
        for _ in frames:
            pass
        entry["valid"] = True
    except VideoDecodeError as e:
        entry["error"] = e.reason
    except Exception as e:  # noqa: BLE001 - a metadata build must survive any broken file
        entry["error"] = f"{type(e).__name__}: {e}"
    return entry


def _inspect_one(root: str, relpath: str, full_decode: bool) -> tuple[str, dict[str, Any]]:
    return relpath, inspect_video(Path(root) / relpath, full_decode)


def _results(inspect, root: str, todo: list[str], full_decode: bool, workers: int, executor: str):
    """(relpath, entry) as they complete; workers=0 runs lazily in this thread (debugging, tests)."""
    if workers == 0:
        for rel in todo:
            yield inspect(root, rel, full_decode)
        return
    if executor == "process":
        pool: Executor = ProcessPoolExecutor(max_workers=workers)
    elif executor == "thread":
        pool = ThreadPoolExecutor(max_workers=workers)
    else:
        raise ValueError(f"executor must be 'process' or 'thread', got {executor!r}")
    try:
        futures = [pool.submit(inspect, root, rel, full_decode) for rel in todo]
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        # Ctrl-C or a crash: drop pending work instead of waiting for it.
        pool.shutdown(wait=False, cancel_futures=True)


def load_metadata(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{relpath: entry}}")
    return data


def build_metadata(
    video_root: str | os.PathLike,
    output: str | os.PathLike,
    workers: int = 4,
    executor: str = "process",
    extensions: Iterable[str] = VIDEO_EXTENSIONS,
    full_decode: bool = False,
    save_every: int = 100,
    save_interval_s: float = 60.0,
    progress: bool = True,
    inspect: Callable[[str, str, bool], tuple[str, dict[str, Any]]] = _inspect_one,
) -> dict[str, dict[str, Any]]:
    """Build (or finish building) the metadata file of ``video_root`` at ``output``.

    ``workers=0`` runs serially. ``inspect(root, relpath, full_decode) -> (relpath, entry)`` is
    replaceable (it must be picklable for the process executor). Returns the full mapping.
    """
    if save_every < 1:
        raise ValueError(f"save_every must be >= 1, got {save_every}")
    if executor not in ("process", "thread") or workers < 0:
        raise ValueError(f"need executor 'process' or 'thread' and workers >= 0, got {executor!r}, {workers}")
    output = Path(output)
    done: dict[str, dict[str, Any]] = load_metadata(output) if output.exists() else {}
    todo = [p for p in list_videos(video_root, extensions) if p not in done]
    if done:
        log.info("resuming %s: %d entries kept, %d videos to inspect", output, len(done), len(todo))

    def save() -> None:
        atomic_write_json(output, dict(sorted(done.items())), indent=2)

    unsaved, last_save = 0, time.monotonic()
    results = _results(inspect, str(video_root), todo, full_decode, workers, executor)
    try:
        for rel, entry in tqdm(results, total=len(todo), desc="videos metadata",
                               disable=not progress, unit="video"):
            done[rel] = entry
            unsaved += 1
            if unsaved >= save_every or time.monotonic() - last_save >= save_interval_s:
                save()
                unsaved, last_save = 0, time.monotonic()
    finally:
        results.close()
        if unsaved or not output.exists():  # keep whatever finished, also on Ctrl-C
            save()
    invalid = sum(1 for e in done.values() if not e.get("valid"))
    if invalid:
        log.warning("%s: %d of %d videos are invalid", output, invalid, len(done))
    return dict(sorted(done.items()))


def valid_videos(metadata: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(k for k, e in metadata.items() if e.get("valid"))


class NoValidItemError(RuntimeError):
    """Every try of ``load_with_retries`` hit a broken item."""


def load_with_retries(
    load: Callable[[int], T],
    index: int,
    num_items: int,
    max_tries: int = 5,
    retry_on: tuple[type[BaseException], ...] = (VideoDecodeError, FileNotFoundError),
    rng: np.random.Generator | None = None,
) -> T:
    """``load(index)``; on a broken video log it and try another item, at most ``max_tries`` loads.

    The next index is ``rng.integers(num_items)`` when an ``rng`` is given (datasets seed it per
    worker/epoch), else the following index ``(index + k) % num_items`` (deterministic).
    Raises NoValidItemError listing every failure when all tries fail; other exceptions (bugs)
    propagate at once.
    """
    if num_items < 1 or max_tries < 1:
        raise ValueError(f"need num_items >= 1 and max_tries >= 1, got {num_items}, {max_tries}")
    failures: list[str] = []
    current = index
    for attempt in range(max_tries):
        try:
            return load(current)
        except retry_on as e:
            failures.append(f"item {current}: {e}")
            log.warning("skipping item %d (try %d/%d): %s", current, attempt + 1, max_tries, e)
            current = int(rng.integers(num_items)) if rng is not None else (index + attempt + 1) % num_items
    raise NoValidItemError(f"no loadable item after {max_tries} tries starting at {index}: " + "; ".join(failures))


def main(argv: list[str] | None = None) -> int:
    """python -m data.metadata VIDEO_ROOT OUTPUT [--workers N] [--full_decode]"""
    import argparse

    from utils.log import setup_logging

    ap = argparse.ArgumentParser(prog="python -m data.metadata", description="Build or resume videos_metadata.json.")
    ap.add_argument("video_root")
    ap.add_argument("output")
    ap.add_argument("--workers", type=int, default=4, help="0 = serial")
    ap.add_argument("--executor", choices=("process", "thread"), default="process")
    ap.add_argument("--full_decode", action="store_true", help="decode every frame to validate")
    ap.add_argument("--save_every", type=int, default=100)
    args = ap.parse_args(argv)
    setup_logging()
    meta = build_metadata(args.video_root, args.output, args.workers, args.executor,
                          full_decode=args.full_decode, save_every=args.save_every)
    print(f"{len(meta)} videos, {len(valid_videos(meta))} valid -> {args.output}")
    return 0


if __name__ == "__main__":
    import sys

    from utils.cli import entry

    sys.exit(entry("data.metadata", main))  # the error contract: instructions/errors.md
