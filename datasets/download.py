#!/usr/bin/env python
"""Download, verify and prepare the videos of a benchmark split (resumable).

    python -m datasets.download qvh --out /data/qvh/videos [--split val] [--anno_dir DIR | --items ITEMS]
    python -m datasets.download charades --out /data/charades/videos            # the Charades zip
    python -m datasets.download --ids ids.txt --out DIR [--url_template URL]    # generic: ids
    python -m datasets.download --urls urls.txt --out DIR                       # generic: URLs
    (python datasets/download.py ... works the same from anywhere)

What to fetch comes from the benchmark items of ``datasets/convert.py``: ``--items`` (a converted
JSONL) or ``--anno_dir`` + ``--split`` (converted here, in memory, with the converter's defaults);
each item's ``video`` is the file written under ``--out``. Videos come from YouTube (or any
``--url_template``) through yt-dlp, or from an archive (``--archive``, checked against a sha256,
unpacked member by member). Every file is verified (``data.metadata.inspect_video``: decodable to
the end; its duration within ``max(--duration_atol, --duration_rtol * annotated)``) before it is
moved into place; QVHighlights windows are cut from the source video with ffmpeg.

``--out/download_manifest.jsonl`` (``data.download_manifest``) records every file as done / failed
/ skipped with the reason; a re-run continues where the last one stopped, re-verifies files that
changed on disk (``--reverify``: all of them) and replaces corrupt ones, and retries failures only
with ``--retry_failed`` (``--retry_skipped`` for sources that said "gone"). Each run ends with
the coverage of every split (``data.coverage``; also in ``--out/coverage.json``) and writes
``--out/titles.tsv`` (``youtube_id<TAB>title``, the ``--titles`` file of ``convert.py hisum``).
Exit status: 0 when nothing failed (skipped files are expected: videos disappear), 1 when some
file failed, 2 on a usage error, 130 when interrupted. The fetching itself (benchmark-agnostic) is
``data/download_jobs.py`` on ``data/fetch.py``; this file knows the benchmarks.

``datasets/`` is not a Python package (a ``datasets/__init__.py`` would shadow HuggingFace
``datasets``): ``python -m datasets.download`` runs it as a namespace package from the repository
root when HuggingFace ``datasets`` is *not* installed; ``python datasets/download.py`` always works.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse  # noqa: E402
import fcntl  # noqa: E402
import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

from data import fetch  # noqa: E402
from data.coverage import DURATION_ATOL, DURATION_RTOL, duration_is_lower_bound  # noqa: E402
from data.download_jobs import Context, Source, Target, execute  # noqa: E402
from utils.io import LineError, read_jsonl  # noqa: E402
from utils.paths import shared_data_dir  # noqa: E402

YOUTUBE = "https://www.youtube.com/watch?v={youtube_id}"


@dataclass(frozen=True)
class Benchmark:
    splits: tuple[str, ...]                 # the first is the default
    anno_subdir: str | None                 # folder name under the shared data dir
    source: str                             # default source: "url" (YouTube) | "archive" | "none"
    archive_url: str | None = None          # the official archive, when there is one
    archive_sha256: str | None = None       # None: not published; the first download's is recorded


BENCHMARKS = {
    "charades": Benchmark(("test", "train"), "charades_sta", "archive",
                          "https://ai2-public-datasets.s3-us-west-2.amazonaws.com/charades/Charades_v1_480.zip"),
    "qvh": Benchmark(("val", "test", "train"), "qvhighlights", "url",
                     "https://nlp.cs.unc.edu/data/jielei/qvh/qvhilights_videos.tar.gz"),
    "youcook2": Benchmark(("val", "train", "test"), "youcook2", "url"),
    "tvsum": Benchmark(("all",), "tvsum", "url"),
    "hisum": Benchmark(("test", "val", "train"), "mr_hisum", "url"),
    "magqa": Benchmark(("test",), None, "none"),
}



# ------------------------------------------------------------------------------------- items

def _load_convert():
    """datasets/convert.py by path (``datasets`` is not a package; see the module docstring)."""
    name = "aha_datasets_convert"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("convert.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]


def _need(path: Path, what: str) -> str:
    if not path.is_file():
        raise ValueError(f"{what} not found: {path} (see datasets/README.md for where it comes from)")
    return str(path)


def annotation_argv(benchmark: str, anno_dir: Path | None, split: str, anno: str | None) -> list[str]:
    """The ``convert.py`` command line of one benchmark split."""
    d = anno_dir or Path(".")
    if benchmark == "charades":
        return ["charades", "--input", _need(d / f"charades_sta_{split}.txt", "Charades-STA annotation"),
                "--lengths", _need(d / f"Charades_v1_{split}.csv", "Charades video table")]
    if benchmark == "qvh":
        return ["qvh", "--input", _need(d / f"highlight_{split}_release.jsonl", "QVHighlights annotation")]
    if benchmark == "youcook2":
        return ["youcook2", "--input", _need(d / f"yc2_{split}.json", "YouCook2 annotation")]
    if benchmark == "tvsum":
        info = next((p for p in (d / "ydata-tvsum50-info.tsv", d / "ydata-tvsum50-info.reconstructed.tsv") if p.is_file()),
                    d / "ydata-tvsum50-info.tsv")
        return ["tvsum", "--input", _need(info, "TVSum info tsv")]
    if benchmark == "hisum":  # titles do not matter for what to download
        return ["hisum", "--input", _need(d / "mr_hisum_metadata.csv", "Mr.HiSum metadata"),
                "--split_file", _need(d / "mr_hisum_split.json", "Mr.HiSum split json"),
                "--split", f"{split}_keys", "--missing_title", "empty"]
    if benchmark == "magqa":
        if not anno:
            raise ValueError("magqa needs --anno magqa_test.json (from MMDuetIT; see datasets/README.md)")
        return ["magqa", "--input", _need(Path(anno), "MAGQA annotation")]
    raise ValueError(f"unknown benchmark {benchmark!r}")


def load_items(args: argparse.Namespace) -> dict[str, list[dict]]:
    """{split: items} from --items files, or converted from the annotations."""
    if args.items:
        out = {}
        for path in args.items:
            items = read_jsonl(path)
            wrong = {it.get("dataset") for it in items} - {args.benchmark}
            if wrong:
                raise ValueError(f"{path}: items of {sorted(map(str, wrong))}, not {args.benchmark}")
            out[Path(path).stem] = items
        return out
    spec = BENCHMARKS[args.benchmark]
    anno_dir = Path(args.anno_dir) if args.anno_dir else None
    if anno_dir is None and spec.anno_subdir and shared_data_dir() is not None:
        anno_dir = shared_data_dir() / spec.anno_subdir  # type: ignore[operator]
    if anno_dir is None and args.benchmark != "magqa":
        raise ValueError("pass --anno_dir (the benchmark's annotation folder) or --items")
    convert = _load_convert()
    out = {}
    for split in args.split or spec.splits[:1]:
        if split not in spec.splits:
            raise ValueError(f"{args.benchmark} has splits {spec.splits}, not {split!r}")
        argv = annotation_argv(args.benchmark, anno_dir, split, args.anno) + ["--output", os.devnull]
        if args.video_template:
            argv += ["--video_template", args.video_template]
        try:
            items = convert.convert_from_args(convert.build_parser().parse_args(argv))[0]
        except LineError as e:
            if "--on_invalid" not in e.reason:
                raise
            # the converter's hint names its own flag, which this command does not take
            raise type(e)(f"{e.reason.split(' (pass --on_invalid')[0]} (download.py converts with the converter's "
                          f"defaults: convert the split with `python datasets/convert.py {args.benchmark} ... "
                          f"--on_invalid skip --output ITEMS.jsonl` and pass --items ITEMS.jsonl)",
                          e.path, e.line) from None
        out[split] = items
    return out


def generic_items(path: str, kind: str) -> list[dict]:
    """``--ids``: lines ``ID [START END]``; ``--urls``: lines ``URL [NAME]`` (``#`` comments)."""
    items, seen = [], set()
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = raw.split("#", 1)[0].split() if kind == "ids" else raw.strip().split()
        if not parts or parts[0].startswith("#"):
            continue
        if kind == "ids":
            if len(parts) not in (1, 3):
                raise ValueError(f"{path}:{n}: expected 'ID' or 'ID START END', got {raw!r}")
            vid, window, duration = parts[0], None, None
            name = f"{vid}.mp4"
            if len(parts) == 3:
                try:
                    window = (float(parts[1]), float(parts[2]))
                except ValueError:
                    raise ValueError(f"{path}:{n}: START and END must be seconds, got {raw!r}") from None
                if not window[1] > window[0] >= 0:
                    raise ValueError(f"{path}:{n}: need 0 <= START < END, got {raw!r}")
                name, duration = f"{vid}_{parts[1]}_{parts[2]}.mp4", window[1] - window[0]
            item = {"id": name[:-4], "video": name, "duration": duration, "source_id": vid, "window": window}
        else:
            if len(parts) > 2:
                raise ValueError(f"{path}:{n}: expected 'URL [NAME]', got {raw!r}")
            url = parts[0]
            name = parts[1] if len(parts) == 2 else _name_from_url(url)
            if Path(name).is_absolute() or ".." in Path(name).parts:
                raise ValueError(f"{path}:{n}: NAME must be a relative path inside --out, got {name!r}")
            item = {"id": name, "video": name, "duration": None, "url": url}
        if name in seen:
            raise ValueError(f"{path}:{n}: duplicate output name {name!r}")
        seen.add(name)
        items.append(item)
    if not items:
        raise ValueError(f"{path}: no entries")
    return items


def _name_from_url(url: str) -> str:
    """The URL's file name (sanitised), or ``<stem>-<hash>.mp4`` when it has no extension."""
    tail = Path(re.sub(r"[?#].*$", "", url).rstrip("/").rsplit("/", 1)[-1])
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", tail.stem) or "video"
    return f"{stem}{tail.suffix.lower()}" if tail.suffix else f"{stem}-{hashlib.sha1(url.encode()).hexdigest()[:8]}.mp4"


# -------------------------------------------------------------------------------------- plan

def item_fields(benchmark: str, item: dict) -> dict[str, Any]:
    """The placeholders of ``--url_template`` for one item, and ``window`` for cut clips."""
    gold = item.get("gold") or {}
    stem = Path(item["video"]).stem
    if benchmark == "charades":
        return {"vid": item["id"].split("#")[0]}
    if benchmark == "qvh":
        vid = gold.get("vid") or stem
        parts = vid.rsplit("_", 2)
        if len(parts) != 3 and not {"youtube_id", "source_start", "source_end"} <= gold.keys():
            raise ValueError(f"QVHighlights item {item['id']}: vid {vid!r} is not <youtube_id>_<start>_<end>")
        return {"vid": vid, "youtube_id": gold.get("youtube_id", parts[0]),
                "window": (float(gold.get("source_start", parts[-2])), float(gold.get("source_end", parts[-1])))}
    if benchmark == "youcook2":
        return {"key": item["id"], "youtube_id": item["id"][2:] if item["id"].startswith("v_") else item["id"]}
    if benchmark == "tvsum":
        return {"video_id": item["id"], "youtube_id": item["id"]}
    if benchmark == "hisum":
        return {"video_id": item["id"], "youtube_id": gold.get("youtube_id", stem)}
    if benchmark == "magqa":
        return {"video": item["video"], "stem": stem}
    if benchmark == "ids":
        return {"id": item["source_id"], "youtube_id": item["source_id"], "window": item["window"]}
    return {"url": item["url"]}


def plan(benchmark: str, items_by_split: dict[str, list[dict]], mode: str, url_template: str | None) -> list[Source]:
    """Group the items' videos into sources. ``mode``: url | archive | none."""
    targets: dict[str, Target] = {}
    for items in items_by_split.values():
        for item in items:
            if item["video"] in targets:
                continue
            f = item_fields(benchmark, item)
            window = f.pop("window", None) if mode != "archive" else None
            # archives name their videos <vid>.mp4 (Charades, QVHighlights) or as the items do
            member = (f"{f['vid']}.mp4" if "vid" in f else Path(item["video"]).name) if mode == "archive" else None
            targets[item["video"]] = Target(item["video"], item.get("duration"), window, member, f,
                                            duration_is_lower_bound(benchmark, item.get("duration")))
    if mode == "archive":
        return [Source("archive", None, list(targets.values()))]
    sources: dict[str, Source] = {}
    for t in targets.values():
        if mode == "none":
            url = None
        elif "url" in t.fields and url_template is None:
            url = t.fields["url"]
        else:
            try:
                url = (url_template or YOUTUBE).format(**t.fields)
            except (KeyError, IndexError) as e:
                allowed = ", ".join("{" + k + "}" for k in t.fields)
                raise ValueError(f"--url_template {url_template!r}: unknown placeholder {e}; {benchmark} allows {allowed}") from None
        key = str(t.fields.get("youtube_id") or url or t.name)
        sources.setdefault(url or f"none:{t.name}", Source(key, url)).targets.append(t)
    return list(sources.values())



def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m datasets.download", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("benchmark", nargs="?", choices=sorted(BENCHMARKS), help="omit with --ids / --urls")
    ap.add_argument("--out", required=True, help="video folder (the benchmark's VIDEO_ROOT)")
    g = ap.add_argument_group("what to fetch")
    g.add_argument("--split", nargs="+", default=None, help="splits (default: the benchmark's first: test/val/all)")
    g.add_argument("--anno_dir", default=None, help="the benchmark's annotation folder (default: ../shared/data/<folder>)")
    g.add_argument("--anno", default=None, help="magqa: the MAGQA test json")
    g.add_argument("--items", nargs="+", default=None, help="converted items JSONL (one per split; named by its stem)")
    g.add_argument("--video_template", default=None, help="convert.py --video_template (file names under --out)")
    g.add_argument("--ids", default=None, help="generic: file of 'ID [START END]' lines (YouTube ids by default)")
    g.add_argument("--urls", default=None, help="generic: file of 'URL [NAME]' lines")
    g = ap.add_argument_group("where from")
    g.add_argument("--url_template", default=None,
                   help=f"video URL with the item's placeholders (default {YOUTUBE}; e.g. a mirror)")
    g.add_argument("--archive", default=None,
                   help="URL or local path of a zip/tar holding the videos, or 'official' for the benchmark's")
    g.add_argument("--sha256", default=None, help="expected sha256 of the archive (refused otherwise)")
    g = ap.add_argument_group("network (passed to yt-dlp / httpx)")
    g.add_argument("--workers", type=int, default=4, help="parallel downloads (default %(default)s)")
    g.add_argument("--rate_per_min", type=float, default=None, help="request starts per minute, all workers")
    g.add_argument("--limit_rate", default=None, help="bytes/s per download, e.g. 2M")
    g.add_argument("--retries", type=int, default=3, help="retries of a transient failure (default %(default)s)")
    g.add_argument("--backoff", type=float, default=5.0, help="first back-off in seconds, doubled per retry")
    g.add_argument("--timeout", type=float, default=30.0, help="socket timeout, seconds")
    g.add_argument("--max_time", type=float, default=3600.0, help="wall-clock limit of one attempt, seconds (0: none)")
    g.add_argument("--cookies", default=None, help="Netscape cookies.txt")
    g.add_argument("--cookies_from_browser", default=None, help="e.g. firefox (yt-dlp)")
    g.add_argument("--proxy", default=None, help="e.g. socks5://127.0.0.1:1080")
    g.add_argument("--format", default=fetch.DEFAULT_FORMAT, help="yt-dlp format (default %(default)s)")
    g = ap.add_argument_group("verification and resuming")
    g.add_argument("--duration_atol", type=float, default=DURATION_ATOL)
    g.add_argument("--duration_rtol", type=float, default=DURATION_RTOL)
    g.add_argument("--full_decode", action="store_true", help="decode every frame to verify")
    g.add_argument("--reverify", action="store_true", help="verify every existing file again, not only changed ones")
    g.add_argument("--retry_failed", action="store_true")
    g.add_argument("--retry_skipped", action="store_true", help="also try sources that said the video is gone")
    g.add_argument("--keep_sources", action="store_true", help="keep full source videos of cut clips in _sources/")
    g.add_argument("--list", action="store_true", help="print 'URL<TAB>files' per source and exit")
    return ap


def check_flags(args) -> None:
    """The numeric flags, before any request: argparse's float() takes "nan" and "inf", and a NaN
    --duration_atol made every download fail verification (an inf one accepted any length)."""
    from utils.cli import check_number

    for flag, kw in (("workers", {"minimum": 1, "integer": True}), ("rate_per_min", {"above": 0}),
                     ("retries", {"minimum": 0, "integer": True}), ("backoff", {"minimum": 0}),
                     ("timeout", {"above": 0}), ("max_time", {"minimum": 0}),
                     ("duration_atol", {"minimum": 0}), ("duration_rtol", {"minimum": 0, "maximum": 1})):
        check_number(getattr(args, flag), f"--{flag}", **kw)


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    logging.basicConfig(level=os.environ.get("AHA_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    generic = "ids" if args.ids else "urls" if args.urls else None
    if bool(generic) == bool(args.benchmark) or (args.ids and args.urls):
        ap.error("give a benchmark, or one of --ids / --urls")
    try:
        check_flags(args)
        settings = fetch.FetchSettings(
            timeout=args.timeout, max_time=args.max_time or None, retries=args.retries, backoff=args.backoff,
            rate_per_min=args.rate_per_min, limit_rate=args.limit_rate, cookies=args.cookies,
            cookies_from_browser=args.cookies_from_browser, proxy=args.proxy, format=args.format)
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        name = args.benchmark or generic
        if generic:
            path = args.ids or args.urls
            items_by_split = {Path(path).name: generic_items(path, generic)}
        else:
            items_by_split = load_items(args)
        spec = BENCHMARKS.get(args.benchmark or "", Benchmark(("all",), None, "url"))
        args.archive_location = None
        if args.archive or (spec.source == "archive" and not args.url_template):
            location = args.archive if args.archive not in (None, "official") else spec.archive_url
            if location is None:
                raise ValueError(f"{name} has no official archive: pass --archive URL_OR_PATH")
            args.archive_location = location
            args.sha256 = args.sha256 or (spec.archive_sha256 if location == spec.archive_url else None)
        if args.sha256 and not args.archive_location:
            raise ValueError("--sha256 checks an archive: give --archive too")
        mode = "archive" if args.archive_location else "url" if (spec.source != "none" or args.url_template) else "none"
        sources = plan(name, items_by_split, mode, args.url_template)
    except (OSError, ValueError) as e:
        ap.exit(2, f"download {args.benchmark or ''}: error: {e}\n")
    if args.list:
        for src in sources:
            print(f"{args.archive_location or src.url or '-'}\t{' '.join(t.name for t in src.targets)}")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".download.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            ap.exit(2, f"download: error: another download is running into {out}\n")
        ctx = Context(out, settings, fetch.RateLimiter(args.rate_per_min), workers=args.workers,
                      atol=args.duration_atol, rtol=args.duration_rtol, full_decode=args.full_decode,
                      keep_sources=args.keep_sources, reverify=args.reverify, retry_failed=args.retry_failed,
                      retry_skipped=args.retry_skipped, archive=args.archive_location, sha256=args.sha256)
        run = {"benchmark": name, "splits": sorted(items_by_split), "source": mode,
               "command": [fetch.redact(str(a)) for a in (sys.argv if argv is None else argv)],
               "settings": settings.for_record(),
               "archive": args.archive_location and fetch.redact(args.archive_location),
               "url_template": args.url_template and fetch.redact(args.url_template)}
        return execute(sources, items_by_split, ctx, run, label=None if generic else name)


if __name__ == "__main__":
    import sys

    from utils.cli import entry

    sys.exit(entry("download", main))  # the error contract: instructions/errors.md
