"""The streaming benchmark items format that every converter writes and ``test.run_benchmark`` reads.

One item per line (the online driver streams ``video`` and asks ``query`` at ``query_time``)::

    {"id", "dataset", "video", "query", "query_time", "duration", "template_id", "gold": {...}}

plus ``prompt_variant`` for TVSum / Mr.HiSum. Next to the items a ``<items>.meta.json`` records how
they were made (converter options, input files with sha256, templates). The converters themselves
live in each benchmark's module (``convert``); these are the pieces they share.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable

from data.benchmarks.validate import InputError, UniqueIds, read_text
from utils.io import atomic_write_json, atomic_write_text, dumps

# what a converter does with an invalid annotation line (a reversed span, a zero duration ...)
INVALID_POLICIES = ("refuse", "skip")


def make_item(item_id: str, dataset: str, video: str, query: str, *, query_time: float = 0.0,
              duration: float | None = None, template_id: int | None = None, gold: dict | None = None,
              **extra: Any) -> dict:
    item = {"id": item_id, "dataset": dataset, "video": video, "query": query, "query_time": float(query_time),
            "duration": duration, "template_id": template_id}
    if gold is not None:
        item["gold"] = gold
    item.update(extra)
    return item


def format_video(template: str, dataset: str, allowed: Iterable[str], **fields: str) -> str:
    """Fill a ``--video_template`` (``str.format`` placeholders named in ``allowed``)."""
    try:
        return template.format(**fields)
    except (KeyError, IndexError, AttributeError, ValueError) as e:
        names = ", ".join("{" + f + "}" for f in allowed)
        raise ValueError(f"--video_template {template!r}: bad placeholder {e}; {dataset} allows {names}") from None


def read_table(path: str | Path, what: str, required: Iterable[str], delimiter: str = ",") -> list[tuple[int, dict]]:
    """(line number, row) of a CSV/TSV with a header; missing columns refused."""
    lines = read_text(path, what).splitlines()
    reader = csv.DictReader(lines, delimiter=delimiter)
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{what} lacks column(s) {missing}; found {sorted(header)}", path, 1)
    rows = []
    for row in reader:
        if None in row:  # more fields than the header names
            raise InputError(f"{what}: more fields than columns", path, reader.line_num)
        rows.append((reader.line_num, row))
    return rows


def rows_by_key(rows: Iterable[tuple[int, dict]], key: str, path: str | Path, what: str) -> dict[str, tuple[int, dict]]:
    """{row[key]: (line, row)} of ``read_table`` rows. A key listed twice is refused (``file:line``,
    naming the first line) unless the two rows are identical (a harmless repeat, kept once): a
    lookup table must not silently keep whichever of two conflicting rows comes last."""
    out: dict[str, tuple[int, dict]] = {}
    for line, row in rows:
        k = row[key]
        if k in out:
            first_line, first = out[k]
            if first != row:
                diff = sorted(c for c in set(first) | set(row) if first.get(c) != row.get(c))
                raise InputError(f"{what}: {key} {k!r} listed twice with different values (first at line "
                                 f"{first_line}; differing column(s) {diff})", path, line)
            continue
        out[k] = (line, row)
    return out


def check_unique_ids(items: list[dict], source: str | Path) -> None:
    ids = UniqueIds("item id")
    for it in items:
        ids.add(it["id"], source)


class Skipped:
    """Invalid annotation lines a converter dropped under ``--on_invalid skip`` (recorded in the meta)."""

    def __init__(self, policy: str = "refuse"):
        if policy not in INVALID_POLICIES:
            raise ValueError(f"on_invalid must be one of {INVALID_POLICIES}, got {policy!r}")
        self.policy = policy
        self.lines: list[str] = []

    def handle(self, error: InputError) -> None:
        """Re-raise under "refuse", else remember the reason."""
        if self.policy == "refuse":
            raise InputError(f"{error.reason} (pass --on_invalid skip to drop such lines, recorded)",
                             error.path, error.line) from None
        self.lines.append(str(error))


def keep_existing_videos(items: list[dict], video_root: str | Path) -> tuple[list[dict], list[str]]:
    """Drop items whose video file is absent under ``video_root`` (benchmarks use what could be downloaded)."""
    root = Path(video_root)
    if not root.is_dir():
        raise ValueError(f"--video_root is not a folder: {root}")
    kept = [it for it in items if (root / it["video"]).is_file()]
    dropped = [it["id"] for it in items if not (root / it["video"]).is_file()]
    return kept, dropped


def write_items(items: list[dict], output: str | Path, meta: dict) -> Path:
    """Write the JSONL atomically and ``<output>.meta.json`` beside it; returns the meta path."""
    output = Path(output)
    atomic_write_text(output, "".join(dumps(it) + "\n" for it in items))
    meta_path = output.with_name(output.name + ".meta.json")
    atomic_write_json(meta_path, meta)
    return meta_path
