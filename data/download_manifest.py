"""``download_manifest.jsonl``: what the downloader did to every file of a video folder.

An append-only journal (one JSON record per line, flushed per record), so a run killed at any
moment loses at most the line it was writing (``utils.io.read_own_jsonl`` cuts off a torn last line, and says so) and
a re-run continues from the last record of every file. Records (``kind``):

* ``video``: ``name`` (path relative to the folder, = the benchmark items' ``video``), ``status``
  ``done`` | ``failed`` | ``skipped``, ``reason`` (why it failed or was skipped; null when done),
  ``attempts``, ``source`` (what was downloaded: a YouTube id, a URL, an archive), ``url``,
  ``window`` ([start, end] of the source when the file is a cut, else null), ``duration``
  (measured by ``data.video.probe``), ``expected_duration`` (the annotation's), ``size`` and
  ``mtime_ns`` of the verified file (a later change of either means it must be verified again),
  ``title`` (from the source, when it has one), ``time`` (UTC).
* ``archive``: ``name`` (file name), ``status``, ``sha256``, ``size``, ``url``, ``time``.
* ``run``: one per run: the command, benchmark, splits, settings and the counts at its end.

``done`` = the file exists and passed verification; ``failed`` = tried and failed (transient errors
that outlived the retries, or a file that failed verification); ``skipped`` = not obtainable (the
source says it is gone, or no source is known). ``compact`` rewrites the journal atomically with
the last record of every file and archive and every run record.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import time
from pathlib import Path
from typing import Any

from utils.io import JsonlWriter, atomic_write_text, dumps, read_own_jsonl

MANIFEST_NAME = "download_manifest.jsonl"
STATUSES = ("done", "failed", "skipped")
KINDS = ("video", "archive", "run")

log = logging.getLogger(__name__)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def file_stamp(path: str | os.PathLike) -> dict[str, int]:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_fresh(record: dict[str, Any] | None, path: str | os.PathLike) -> bool:
    """A ``done`` record still describes ``path``: the file exists with the recorded size and mtime."""
    if not record or record.get("status") != "done":
        return False
    try:
        stamp = file_stamp(path)
    except OSError:
        return False
    return stamp["size"] == record.get("size") and stamp["mtime_ns"] == record.get("mtime_ns")


class Manifest:
    """The journal of one video folder: ``get`` the last record of a file, ``record`` a new one."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.path = self.root / MANIFEST_NAME
        self.state: dict[tuple[str, str], dict[str, Any]] = {}
        self.runs: list[dict[str, Any]] = []
        if self.path.exists():
            for n, rec in read_own_jsonl(self.path, "download manifest", log=log):
                if rec.get("kind") not in KINDS or not isinstance(rec.get("name"), str):
                    raise ValueError(f"{self.path}:{n}: not a manifest record: {str(rec)[:120]}")
                self._apply(rec)
        self._writer: JsonlWriter | None = None

    def _apply(self, rec: dict[str, Any]) -> None:
        if rec["kind"] == "run":
            self.runs.append(rec)
        else:
            self.state[(rec["kind"], rec["name"])] = rec

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.state.get((kind, name))

    def records(self, kind: str = "video") -> dict[str, dict[str, Any]]:
        return {name: rec for (k, name), rec in self.state.items() if k == kind}

    def record(self, kind: str, name: str, **fields: Any) -> dict[str, Any]:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if kind != "run" and fields.get("status") not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {fields.get('status')!r}")
        rec = {"kind": kind, "name": name, **fields, "time": fields.get("time") or utc_now()}
        if self._writer is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._writer = JsonlWriter(self.path)
        self._writer.write(rec)
        self._apply(rec)
        return rec

    def counts(self, names: list[str] | None = None) -> dict[str, int]:
        """Files per status (over ``names`` when given; a name without a record counts as ``pending``)."""
        videos = self.records("video")
        counts = dict.fromkeys((*STATUSES, "pending"), 0)
        for name in (names if names is not None else videos):
            rec = videos.get(name)
            counts[rec["status"] if rec else "pending"] += 1
        return counts

    def write_titles(self, path: str | os.PathLike) -> int:
        """``youtube_id<TAB>title`` of every fetched YouTube video (``convert.py hisum --titles``)."""
        rows = {}
        for rec in self.records("video").values():
            if rec.get("status") == "done" and rec.get("title") and str(rec.get("extractor") or "").startswith("youtube"):
                rows[rec["source"]] = " ".join(str(rec["title"]).split())  # one line, no tabs
        if rows:
            buf = io.StringIO()
            writer = csv.writer(buf, delimiter="\t", lineterminator="\n")  # quotes what needs it, as csv reads it
            writer.writerow(["youtube_id", "title"])
            writer.writerows(sorted(rows.items()))
            atomic_write_text(path, buf.getvalue())
        return len(rows)

    def compact(self) -> None:
        """Rewrite the journal with the last record of every file and archive, and every run."""
        self.close()
        lines = [dumps(r) for _, r in sorted(self.state.items())] + [dumps(r) for r in self.runs]
        atomic_write_text(self.path, "".join(line + "\n" for line in lines))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "Manifest":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
