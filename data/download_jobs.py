"""Fetching the files of a video folder: the jobs behind ``datasets/download.py``, benchmark-agnostic.

A **Target** is one output file (a path under the folder, an expected duration, optionally a window
of its source to cut or the archive member it comes from); a **Source** is one download (a URL) and
the targets made from it. ``execute`` runs them under a ``Context``:

1. ``triage`` each target against the manifest (``data.download_manifest``): a fresh ``done`` file is
   left alone; a file that is new or changed on disk (every file with ``reverify``) is verified and
   recorded, or deleted and fetched again when corrupt; ``failed`` / ``skipped`` targets are retried
   only when asked.
2. ``run_source`` in a thread pool (``workers``): download with retries (``data.fetch``), check the
   download decodes, then cut / remux / copy each target, verify it (``data.coverage.check_video``)
   and move it into place; or ``run_archive``: fetch the archive, check its sha256, unpack the
   wanted members in one pass and verify each.
3. Journal every result as it arrives, compact the journal, write ``titles.tsv`` and print (and
   save in ``coverage.json``) the coverage of every split.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data import fetch
from data.coverage import DURATION_ATOL, DURATION_RTOL, check_video, coverage, format_coverage
from data.download_manifest import Manifest, file_stamp, is_fresh, utc_now
from data.metadata import inspect_video
from utils.io import atomic_write_json, read_json

_log = logging.getLogger("data.download_jobs")

STAGING = ".staging"     # under the folder: downloads in progress (yt-dlp .part files resume from here)
ARCHIVES_DIR = "_archives"


@dataclass
class Target:
    """One output file (= the ``video`` of one or more items)."""
    name: str
    expected: float | None
    window: tuple[float, float] | None = None   # cut this span of the source
    member: str | None = None                    # archive member base name
    fields: dict[str, Any] = field(default_factory=dict)
    at_least: bool = False                       # ``expected`` is a lower bound (a capped annotation)


@dataclass
class Source:
    """One download (a video URL) and the files made from it."""
    key: str                    # YouTube id (or the URL when there is none)
    url: str | None             # None: no known source
    targets: list[Target] = field(default_factory=list)


@dataclass
class Context:
    """Everything a run needs besides its sources."""
    out: Path                                  # the video folder (files, manifest, staging)
    settings: fetch.FetchSettings
    limiter: fetch.RateLimiter
    stop: threading.Event = field(default_factory=threading.Event)
    workers: int = 4
    atol: float = DURATION_ATOL
    rtol: float = DURATION_RTOL
    full_decode: bool = False
    keep_sources: bool = False
    reverify: bool = False
    retry_failed: bool = False
    retry_skipped: bool = False
    archive: str | None = None                 # URL or path: the sources are members of this archive
    sha256: str | None = None                  # its expected checksum


def _record(t: Target, src: Source | None, status: str, reason: str | None, attempts: int = 0, **extra) -> dict:
    # a reason may quote the URL (an HTTP error, yt-dlp's "Unsupported URL: ..."): redacted like it
    return {"name": t.name, "status": status, "reason": fetch.redact(reason) if reason else reason, "attempts": attempts,
            "source": fetch.redact(src.key) if src else None, "url": fetch.redact(src.url) if src and src.url else None,
            "window": list(t.window) if t.window else None, "expected_duration": t.expected, **extra}


def install(t: Target, made: Path, src: Source | None, ctx: Context, attempts: int, **extra) -> dict:
    """Verify ``made`` and move it to ``out/t.name``; the manifest record either way."""
    entry, problem = check_video(made, t.expected, ctx.atol, ctx.rtol, ctx.full_decode, t.at_least)
    if problem:
        made.unlink(missing_ok=True)
        return _record(t, src, "failed", problem, attempts, duration=entry["duration"], **extra)
    dest = ctx.out / t.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(made, dest)
    return _record(t, src, "done", None, attempts, duration=entry["duration"], **file_stamp(dest), **extra)


def _stage(ctx: Context, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", fetch.redact(key))[:80]  # no credentials in folder names
    return ctx.out / STAGING / f"{safe}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def run_source(src: Source, ctx: Context) -> list[dict]:
    """Download one source (with retries), then make, verify and install each of its targets."""
    if src.url is None:
        return [_record(t, src, "skipped", "no source known: pass --url_template or --archive") for t in src.targets]
    stage = _stage(ctx, src.url)

    def attempt(n: int) -> tuple[Path, dict, dict]:
        ctx.limiter.acquire(ctx.stop)
        path, info = fetch.fetch_video(src.url, stage, ctx.settings, ctx.stop)
        entry = inspect_video(path, full_decode=ctx.full_decode)
        if not entry["valid"]:
            path.unlink(missing_ok=True)  # fetch it whole next time, not resumed
            raise fetch.FetchError(f"downloaded file is not a valid video: {entry['error']}")
        return path, info, entry

    def on_retry(n: int, e: fetch.FetchError, wait: float) -> None:
        _log.info("%s: attempt %d failed (%s); retrying in %.1f s", fetch.redact(src.key), n, fetch.redact(e.reason), wait)

    try:
        (path, info, entry), attempts = fetch.with_retries(attempt, ctx.settings, on_retry, stop=ctx.stop)
    except fetch.FetchError as e:
        if ctx.stop.is_set():
            return []  # interrupted: stays pending
        if not e.retry:
            shutil.rmtree(stage, ignore_errors=True)
        status = "skipped" if e.unavailable else "failed"
        return [_record(t, src, status, e.reason, getattr(e, "attempts", 1)) for t in src.targets]
    extra = {"title": info.get("title"), "extractor": info.get("extractor")}
    records = []
    for k, t in enumerate(src.targets):
        made = stage / f"made-{k}{Path(t.name).suffix or '.mp4'}"
        try:
            if t.window is not None:
                if entry["duration"] is not None and t.window[0] >= entry["duration"]:
                    raise fetch.FetchError(f"window starts at {t.window[0]} s, after the end of the "
                                           f"{entry['duration']:.1f}-s source", retry=False)
                fetch.cut(path, made, t.window[0], t.window[1], ctx.settings)
            elif path.suffix.lower() != Path(t.name).suffix.lower():
                fetch.remux(path, made, ctx.settings)
            else:
                shutil.copyfile(path, made)
        except fetch.FetchError as e:
            records.append(_record(t, src, "failed", e.reason, attempts, **extra))
            continue
        records.append(install(t, made, src, ctx, attempts, **extra))
    if ctx.keep_sources:
        kept = ctx.out / "_sources" / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', fetch.redact(src.key))}{path.suffix}"
        kept.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, kept)
    shutil.rmtree(stage, ignore_errors=True)
    return records


def run_archive(todo: list[Target], ctx: Context, manifest: Manifest, location: str, sha256: str | None) -> list[dict]:
    """Fetch (or open) the archive, check its sha256, unpack the wanted members and verify them."""
    downloaded = "://" in location
    local = Path(location).resolve() if not downloaded else Path()
    if not downloaded:
        location = str(local)
    else:
        local = ctx.out / ARCHIVES_DIR / (re.sub(r"[?#].*$", "", location).rsplit("/", 1)[-1] or "archive")
    rec = manifest.get("archive", local.name)
    src = Source(local.name, location, todo)
    try:
        if downloaded and not local.is_file():
            def attempt(n: int) -> Path:
                ctx.limiter.acquire(ctx.stop)
                return fetch.fetch_file(location, local, ctx.settings, ctx.stop)
            fetch.with_retries(attempt, ctx.settings, stop=ctx.stop)
        if not local.is_file():
            raise fetch.FetchError(f"archive not found: {local}", retry=False)
        known = sha256 or (rec or {}).get("sha256")
        if known and is_fresh(rec, local) and rec.get("sha256") == known.lower():
            digest = known.lower()  # verified before and unchanged since
        else:
            print(f"archive {local.name}: computing sha256 ...", flush=True)
            digest = fetch.check_sha256(local, known) if known else fetch.sha256_of(local)
        if not known:
            print(f"archive {local.name}: no published checksum; recorded sha256 {digest} "
                  f"(pass --sha256 {digest} elsewhere to refuse any other file)")
        manifest.record("archive", local.name, status="done", reason=None, sha256=digest, url=fetch.redact(location),
                        **file_stamp(local))
    except fetch.FetchError as e:
        if ctx.stop.is_set():
            return []
        if downloaded and local.is_file() and "sha256 mismatch" in e.reason:
            local.unlink()  # a re-run downloads it again
        manifest.record("archive", local.name, status="skipped" if e.unavailable else "failed", reason=fetch.redact(e.reason),
                        url=fetch.redact(location))
        return [_record(t, src, "failed", f"archive {local.name} refused: {e.reason}") for t in todo]
    stage = _stage(ctx, "archive:" + local.name)
    wanted = {t.member: stage / f"made-{k}{Path(t.name).suffix or '.mp4'}" for k, t in enumerate(todo)}
    try:
        found = fetch.extract_by_basename(local, dict(wanted))
    except Exception as e:  # noqa: BLE001 - a broken archive (bad CRC, truncated) is recorded, not raised
        shutil.rmtree(stage, ignore_errors=True)
        return [_record(t, src, "failed", f"unpacking {local.name} failed: {type(e).__name__}: {e}") for t in todo]
    records = []
    for t in todo:
        if t.member not in found:
            records.append(_record(t, src, "skipped", f"{t.member} is not in {local.name}"))
        else:
            records.append(install(t, wanted[t.member], src, ctx, 1, member=found[t.member]))
    shutil.rmtree(stage, ignore_errors=True)
    return records


# ------------------------------------------------------------------------------------- a run

def triage(targets: list[Target], manifest: Manifest, ctx: Context) -> list[Target]:
    """The targets to (re)fetch. Files that are new or changed on disk (all with --reverify) are
    verified first: a good one is recorded done, a corrupt one is deleted and fetched again."""
    todo = []
    for t in targets:
        rec = manifest.get("video", t.name)
        path = ctx.out / t.name
        if is_fresh(rec, path) and not ctx.reverify:
            continue
        if path.is_file():
            entry, problem = check_video(path, t.expected, ctx.atol, ctx.rtol, ctx.full_decode, t.at_least)
            if problem is None:
                if not is_fresh(rec, path):
                    fields = {k: v for k, v in (rec or {}).items() if k not in ("kind", "name", "time")}
                    fields.update(status="done", reason=None, duration=entry["duration"], expected_duration=t.expected,
                                  note="verified the file found on disk", **file_stamp(path))
                    manifest.record("video", t.name, **fields)
                continue
            print(f"{t.name}: {problem}; replacing it")
            path.unlink()
            manifest.record("video", t.name, status="failed", reason=f"corrupt on disk, replaced: {problem}",
                            attempts=0, expected_duration=t.expected)
            todo.append(t)
        elif rec is None or rec["status"] == "done" \
                or (rec["status"] == "failed" and ctx.retry_failed) or (rec["status"] == "skipped" and ctx.retry_skipped):
            todo.append(t)
    return todo


def download(sources: list[Source], ctx: Context, manifest: Manifest) -> dict[str, int]:
    """Fetch what triage leaves to do; every result is journaled as it arrives."""
    counts = {"done": 0, "failed": 0, "skipped": 0}

    def keep(records: list[dict]) -> None:
        for r in records:
            name = r.pop("name")
            manifest.record("video", name, **r)
            counts[r["status"]] += 1
            if r["status"] != "done":
                print(f"{r['status']}: {name} (from {r.get('source')}): {r['reason']}", flush=True)

    if ctx.archive is not None:
        todo = [t for src in sources for t in triage(src.targets, manifest, ctx)]
        if todo:
            keep(run_archive(todo, ctx, manifest, ctx.archive, ctx.sha256))
        return counts
    jobs = []
    for src in sources:
        todo = triage(src.targets, manifest, ctx)
        if todo:
            jobs.append(Source(src.key, src.url, todo))
    print(f"{sum(len(s.targets) for s in jobs)} files from {len(jobs)} sources to fetch "
          f"({ctx.workers} workers)", flush=True)
    pool = ThreadPoolExecutor(max_workers=ctx.workers)
    try:
        futures = [pool.submit(run_source, src, ctx) for src in jobs]
        for n, fut in enumerate(as_completed(futures), 1):
            keep(fut.result())
            if n % 25 == 0 or n == len(futures):
                print(f"[{n}/{len(futures)} sources] done {counts['done']}, failed {counts['failed']}, "
                      f"skipped {counts['skipped']}", flush=True)
    except BaseException:
        ctx.stop.set()  # Ctrl-C: running downloads abort at their next progress tick
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return counts


def execute(sources: list[Source], items_by_split: dict[str, list[dict]], ctx: Context, run: dict[str, Any],
            label: str | None) -> int:
    """One run into ``ctx.out`` (the caller holds its lock): download, journal, titles, coverage per split;
    returns the exit status."""
    out = ctx.out
    with Manifest(out) as manifest:
        started = utc_now()
        manifest.record("run", started, event="start", **run)
        try:
            counts = download(sources, ctx, manifest)
        except KeyboardInterrupt:
            print(f"interrupted: finished files are recorded in {manifest.path}; run the same command to continue",
                  file=sys.stderr)
            return 130
        finally:
            manifest.compact()
        manifest.record("run", started, event="end", **run, counts=counts)
        manifest.write_titles(out / "titles.tsv")
        targets = [t.name for s in sources for t in s.targets]
        print(f"{run['benchmark']}: this run done {counts['done']}, failed {counts['failed']}, "
              f"skipped {counts['skipped']}; manifest: {manifest.counts(targets)}")
        report_path = out / "coverage.json"
        report = read_json(report_path) if report_path.exists() else {}
        for split, items in items_by_split.items():
            cov = coverage(items, out, manifest=manifest, atol=ctx.atol, rtol=ctx.rtol)
            report[f"{run['benchmark']}/{split}"] = cov
            print(format_coverage(f"{label} {split}" if label else split, cov))
        atomic_write_json(report_path, report)
    try:
        (out / STAGING).rmdir()  # only when empty: partial downloads stay for the next run
    except OSError:
        pass
    return 1 if counts["failed"] else 0
