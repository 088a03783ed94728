"""Coverage of a benchmark split: how many annotated items have a valid video under a video root.

    python -m data.coverage --items outputs/qvh/items_val.jsonl --video_root /data/qvh/videos \
        [--check auto|probe|exists] [--json coverage.json] [--min_coverage 95]

An item is covered when its ``video`` (relative to the root) exists, decodes
(``data.metadata.inspect_video``: the container opens, demuxes to the end without a truncation
sign, and the first frame decodes) and lasts as long as the annotation says (``duration_ok``;
items without a duration only need a valid file; a duration at a benchmark's cap,
``DURATION_CAPS``, is a lower bound). Statuses: ``valid``, ``missing``, ``invalid``,
``duration_mismatch``. Coverage is counted over items (what a benchmark scores) and over videos.

``--check auto`` (default) trusts the downloader's manifest (``data.download_manifest``) for a file
whose size and mtime are still the recorded ones and probes every other file; ``probe`` probes
everything; ``exists`` only looks for the file (fast, says nothing about decodability).

The benchmark scripts (``scripts/inference/*.sh``) print this summary before they run, and
``datasets/download.py`` prints it at the end of every download.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Iterable

from data.download_manifest import MANIFEST_NAME, Manifest, is_fresh
from data.metadata import inspect_video
from utils.io import atomic_write_json, read_jsonl

CHECKS = ("auto", "probe", "exists")
COVER_STATUSES = ("valid", "missing", "invalid", "duration_mismatch")
# An annotation's duration is rounded (TVSum: whole seconds) and re-encodes shift the last frame;
# a different cut or a re-upload differs by far more than this.
DURATION_ATOL = 2.0   # seconds
DURATION_RTOL = 0.05  # of the annotated duration


# Benchmarks whose annotated durations are capped: a duration at the cap is a lower bound.
# mr_hisum_metadata.csv: no duration above 300 s and 203 of 31,892 videos at exactly 300 s (its
# scores come from YouTube-8M frame features, which stop there), so a longer video is the right one.
DURATION_CAPS = {"hisum": 300.0}


def duration_ok(actual: float | None, expected: float | None, atol: float = DURATION_ATOL,
                rtol: float = DURATION_RTOL, at_least: bool = False) -> bool:
    """``|actual - expected| <= max(atol, rtol * expected)`` (``at_least``: only ``actual`` not
    shorter than that); True when nothing is expected."""
    if expected is None:
        return True
    if actual is None:
        return False
    tol = max(atol, rtol * expected)
    return actual >= expected - tol if at_least else abs(actual - expected) <= tol


def duration_is_lower_bound(dataset: str | None, expected: float | None) -> bool:
    cap = DURATION_CAPS.get(dataset or "")
    return cap is not None and expected is not None and expected >= cap


def check_video(path: str | Path, expected: float | None, atol: float = DURATION_ATOL, rtol: float = DURATION_RTOL,
                full_decode: bool = False, at_least: bool = False) -> tuple[dict[str, Any], str | None]:
    """(``inspect_video`` entry, the problem or None): what the downloader requires of a file."""
    entry = inspect_video(path, full_decode=full_decode)
    if not entry["valid"]:
        return entry, f"not a valid video: {entry['error']}"
    if not duration_ok(entry["duration"], expected, atol, rtol, at_least):
        return entry, (f"duration {entry['duration']:.2f} s but the annotation says {'at least ' if at_least else ''}"
                       f"{expected:.2f} s (tolerance max({atol:g} s, {100 * rtol:g} %))")
    return entry, None


def video_state(root: Path, name: str, manifest: Manifest | None, check: str) -> dict[str, Any]:
    """{"exists", "valid", "duration", "error", "from"} of one file (``from``: manifest | probe | exists)."""
    path = root / name
    if not path.is_file():
        return {"exists": False, "valid": False, "duration": None, "error": "missing", "from": "exists"}
    if check == "exists":
        return {"exists": True, "valid": True, "duration": None, "error": None, "from": "exists"}
    rec = manifest.get("video", name) if manifest is not None else None
    if check == "auto" and is_fresh(rec, path):
        return {"exists": True, "valid": True, "duration": rec.get("duration"), "error": None, "from": "manifest"}
    entry = inspect_video(path)
    return {"exists": True, "valid": bool(entry["valid"]), "duration": entry["duration"],
            "error": entry["error"], "from": "probe"}


def coverage(items: Iterable[dict[str, Any]], video_root: str | Path, *, check: str = "auto",
             manifest: Manifest | None = None, atol: float = DURATION_ATOL, rtol: float = DURATION_RTOL,
             max_examples: int = 5) -> dict[str, Any]:
    """The coverage record of ``items`` over ``video_root`` (see the module docstring)."""
    if check not in CHECKS:
        raise ValueError(f"check must be one of {CHECKS}, got {check!r}")
    root = Path(video_root)
    if not root.is_dir():
        raise ValueError(f"video root is not a folder: {root}")
    if manifest is None and (root / MANIFEST_NAME).exists():
        manifest = Manifest(root)
    items = list(items)
    states: dict[str, dict[str, Any]] = {}
    by_item = dict.fromkeys(COVER_STATUSES, 0)
    by_video: dict[str, str] = {}
    examples: dict[str, list[str]] = {s: [] for s in COVER_STATUSES if s != "valid"}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("video"), str):
            raise ValueError(f"item without a 'video' path: {str(item)[:120]}")
        name = item["video"]
        if name not in states:
            states[name] = video_state(root, name, manifest, check)
        st = states[name]
        if not st["exists"]:
            status = "missing"
        elif not st["valid"]:
            status = "invalid"
        elif check != "exists" and not duration_ok(st["duration"], item.get("duration"), atol, rtol,
                                                   duration_is_lower_bound(item.get("dataset"), item.get("duration"))):
            status = "duration_mismatch"
        else:
            status = "valid"
        by_item[status] += 1
        # a video is as good as the worst of its items (they share one file)
        if by_video.get(name, "valid") == "valid":
            by_video[name] = status
        if status != "valid" and name not in examples[status] and len(examples[status]) < max_examples:
            examples[status].append(name)
    video_counts = dict.fromkeys(COVER_STATUSES, 0)
    for status in by_video.values():
        video_counts[status] += 1
    n = len(items)
    return {
        "video_root": str(root.resolve()), "check": check, "duration_tolerance": {"atol_s": atol, "rtol": rtol},
        "items": n, "items_valid": by_item["valid"], "coverage": by_item["valid"] / n if n else None,
        "items_by_status": by_item,
        "videos": len(by_video), "videos_valid": video_counts["valid"], "videos_by_status": video_counts,
        "examples": {k: v for k, v in examples.items() if v},
        "checked_by": {src: sum(1 for s in states.values() if s["from"] == src) for src in ("manifest", "probe", "exists")},
    }


def format_coverage(label: str, cov: dict[str, Any]) -> str:
    """One summary line (plus one line per kind of problem, with examples)."""
    pct = "n/a" if cov["coverage"] is None else f"{100 * cov['coverage']:.1f} %"
    lines = [f"coverage {label}: {cov['items_valid']:,} / {cov['items']:,} items ({pct}) have a valid video; "
             f"videos {cov['videos_valid']:,} / {cov['videos']:,} valid (check={cov['check']})"]
    for status in COVER_STATUSES[1:]:
        n = cov["items_by_status"][status]
        if n:
            shown = ", ".join(cov["examples"].get(status, []))
            lines.append(f"  {status}: {cov['videos_by_status'][status]:,} videos, {n:,} items (e.g. {shown})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data.coverage", description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", required=True, action="append", help="benchmark items JSONL (repeatable: one per split)")
    ap.add_argument("--video_root", required=True)
    ap.add_argument("--check", choices=CHECKS, default="auto")
    ap.add_argument("--duration_atol", type=float, default=DURATION_ATOL, help="seconds (default %(default)s)")
    ap.add_argument("--duration_rtol", type=float, default=DURATION_RTOL, help="fraction (default %(default)s)")
    ap.add_argument("--json", default=None, help="also write the coverage records here")
    ap.add_argument("--min_coverage", type=float, default=None,
                    help="exit with status 3 when a split's item coverage is below this percentage")
    args = ap.parse_args(argv)
    try:
        root = Path(args.video_root)
        manifest = Manifest(root) if (root / MANIFEST_NAME).exists() else None
        records = {}
        for path in args.items:
            records[path] = coverage(read_jsonl(path), root, check=args.check, manifest=manifest,
                                     atol=args.duration_atol, rtol=args.duration_rtol)
    except (OSError, ValueError) as e:
        ap.exit(2, f"data.coverage: error: {e}\n")
    for path, cov in records.items():
        print(format_coverage(Path(path).name, cov))
    if args.json:
        atomic_write_json(args.json, records)
    if args.min_coverage is not None:
        low = [p for p, c in records.items() if c["coverage"] is None or 100 * c["coverage"] < args.min_coverage]
        if low:
            print(f"data.coverage: coverage below {args.min_coverage} % for {', '.join(low)}", file=sys.stderr)
            return 3
    return 0


if __name__ == "__main__":
    import sys

    from utils.cli import entry

    sys.exit(entry("data.coverage", main))  # the error contract: instructions/errors.md
