#!/usr/bin/env python
"""Convert raw benchmark annotations into the project's streaming benchmark items (JSONL).

    python datasets/convert.py charades --input charades_sta_test.txt --lengths Charades_v1_test.csv --output charades.jsonl
    python datasets/convert.py youcook2 --input yc2_val.json --output youcook2.jsonl
    python datasets/convert.py qvh      --input highlight_val_release.jsonl --output qvh_val.jsonl
    python datasets/convert.py tvsum    --input ydata-tvsum50-info.tsv --anno ydata-tvsum50-anno.tsv --output tvsum.jsonl [--prompt ambiguous]
    python datasets/convert.py hisum    --input mr_hisum_metadata.csv --split_file mr_hisum_split.json --titles titles.tsv --output hisum.jsonl
    python datasets/convert.py magqa    --input magqa_test.json --output magqa.jsonl

One item per line (the online driver streams ``video`` and asks ``query`` at ``query_time``)::

    {"id", "dataset", "video", "query", "query_time", "duration", "template_id", "gold": {...}}

plus ``prompt_variant`` for TVSum / Mr.HiSum. Next to the output a ``<output>.meta.json`` records
the seed, the template spec, the template list and the input files (path + sha256), so a run
can be reproduced and ``template_id`` decoded.

``datasets/`` is deliberately not a Python package (it would shadow HuggingFace ``datasets``); the
repository root is put on ``sys.path`` below so ``data.prompts`` and ``utils.io`` import.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
from typing import Any, Iterable  # noqa: E402

from data.prompts import (  # noqa: E402
    DVC_INSTRUCTIONS,
    QUERY_TEMPLATES,
    TVSUM_AMBIGUOUS_TITLES,
    TVSUM_CATEGORY_AMBIGUOUS,
    TVSUM_CATEGORY_NAMES,
    item_rng,
    parse_template_mode,
    pick_instruction,
    render_query,
)
from utils.io import atomic_write_json, atomic_write_text, dumps, sha256_file  # noqa: E402

DATASETS = ("charades", "youcook2", "qvh", "tvsum", "hisum", "magqa")
TVSUM_PROMPTS = ("title", "ambiguous", "unrelated", "none")
HISUM_MISSING_TITLE = ("error", "skip", "empty")
QVH_CLIP_SECONDS = 2.0  # QVHighlights saliency is annotated per 2-s clip

# Per benchmark: default template spec and default video file name pattern (placeholders listed
# in VIDEO_FIELDS). QVH queries and MAGQA questions are already natural-language requests, so
# they are used verbatim unless a template is asked for.
DEFAULT_TEMPLATE = {
    "charades": "random", "youcook2": "random", "qvh": "none",
    "tvsum": "random", "hisum": "random", "magqa": "none",
}
DEFAULT_VIDEO_TEMPLATE = {
    "charades": "{vid}.mp4", "youcook2": "{youtube_id}.mp4", "qvh": "{vid}.mp4",
    "tvsum": "{video_id}.mp4", "hisum": "{youtube_id}.mp4", "magqa": "{video}",
}
VIDEO_FIELDS = {
    "charades": ("vid",), "youcook2": ("key", "youtube_id"), "qvh": ("vid", "youtube_id"),
    "tvsum": ("video_id",), "hisum": ("youtube_id", "video_id"), "magqa": ("video", "stem"),
}


# ----------------------------------------------------------------------------------- helpers

def _bad(path: Path | str, msg: str, line: int | None = None) -> ValueError:
    where = f"{path}:{line}" if line is not None else str(path)
    return ValueError(f"{where}: {msg}")


def _require_file(path: Path | str, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} not found: {path}")
    return path


def _load_json(path: Path | str, what: str) -> Any:
    path = _require_file(path, what)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise _bad(path, f"{what} is not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError:
        raise _bad(path, f"{what} is not UTF-8 text") from None


def _read_text_lines(path: Path | str, what: str) -> list[str]:
    path = _require_file(path, what)
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except UnicodeDecodeError:
        raise _bad(path, f"{what} is not UTF-8 text") from None


def _read_table(path: Path | str, what: str, required: Iterable[str], delimiter: str = ",") -> list[dict]:
    lines = _read_text_lines(path, what)
    rows = list(csv.DictReader(lines, delimiter=delimiter))
    header = set(rows[0].keys()) if rows else set(next(csv.reader(lines[:1], delimiter=delimiter), []))
    missing = [c for c in required if c not in header]
    if missing:
        raise _bad(path, f"{what} lacks column(s) {missing}; found {sorted(header)}")
    return rows


def _float(value: Any, path: Path | str, field: str, line: int | None = None) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _bad(path, f"{field} is not a number: {value!r}", line) from None
    if not math.isfinite(x):
        raise _bad(path, f"{field} is not finite: {value!r}", line)
    return x


def format_video(template: str, dataset: str, **fields: str) -> str:
    """Fill a ``--video_template`` (``str.format`` placeholders named in VIDEO_FIELDS)."""
    try:
        return template.format(**fields)
    except (KeyError, IndexError, AttributeError) as e:
        allowed = ", ".join("{" + f + "}" for f in VIDEO_FIELDS[dataset])
        raise ValueError(f"--video_template {template!r}: unknown placeholder {e}; {dataset} allows {allowed}") from None


def make_item(
    item_id: str, dataset: str, video: str, query: str, *, query_time: float = 0.0,
    duration: float | None = None, template_id: int | None = None, gold: dict | None = None,
    **extra: Any,
) -> dict:
    item = {
        "id": item_id, "dataset": dataset, "video": video, "query": query,
        "query_time": float(query_time), "duration": duration, "template_id": template_id,
    }
    if gold is not None:
        item["gold"] = gold
    item.update(extra)
    return item


def check_unique_ids(items: list[dict], source: Path | str) -> None:
    seen: set[str] = set()
    for item in items:
        if item["id"] in seen:
            raise _bad(source, f"duplicate item id {item['id']!r}")
        seen.add(item["id"])



# --------------------------------------------------------------------------------- Charades-STA

def read_charades_lengths(path: Path | str) -> dict[str, float]:
    """Charades_v1_{split}.csv -> {video id: length in seconds}."""
    rows = _read_table(path, "Charades csv", ("id", "length"))
    return {r["id"]: _float(r["length"], path, "length", i + 2) for i, r in enumerate(rows)}


def parse_charades_line(line: str, path: Path | str, line_no: int) -> tuple[str, float, float, str]:
    """``"vid start end##sentence"`` -> (vid, start, end, sentence)."""
    if "##" not in line:
        raise _bad(path, f"expected 'vid start end##sentence', got {line!r}", line_no)
    head, sentence = line.split("##", 1)
    parts = head.split()
    if len(parts) != 3 or not sentence.strip():
        raise _bad(path, f"expected 'vid start end##sentence', got {line!r}", line_no)
    vid = parts[0]
    start = _float(parts[1], path, "start", line_no)
    end = _float(parts[2], path, "end", line_no)
    if end < start:
        raise _bad(path, f"end {end} before start {start}", line_no)
    return vid, start, end, sentence.strip()


def convert_charades(
    input_path: Path | str, lengths_path: Path | str, *, seed: int = 0, template: str = "random",
    video_template: str = DEFAULT_VIDEO_TEMPLATE["charades"],
) -> list[dict]:
    """Items with id ``"{vid}#{i}"`` (``i`` = 0-based line index in the txt) and the span clipped to the video."""
    lengths = read_charades_lengths(lengths_path)
    items = []
    for i, line in enumerate(_read_text_lines(input_path, "Charades-STA annotation")):
        if not line.strip():
            continue  # a blank line keeps its index so ids stay line numbers
        vid, start, end, sentence = parse_charades_line(line, input_path, i + 1)
        if vid not in lengths:
            raise _bad(input_path, f"video {vid!r} has no length in {lengths_path}", i + 1)
        duration = lengths[vid]
        # Annotated ends overshoot the real video length in ~15 % of the test lines.
        s, e = min(max(start, 0.0), duration), min(max(end, 0.0), duration)
        if s >= e:
            raise _bad(input_path, f"span [{start}, {end}] lies outside the {duration}-s video {vid}", i + 1)
        item_id = f"{vid}#{i}"
        query, template_id = render_query(sentence, template, seed, item_id)
        items.append(make_item(
            item_id, "charades", format_video(video_template, "charades", vid=vid), query,
            duration=duration, template_id=template_id,
            gold={"timestamps": [[s, e]], "sentence": sentence},
        ))
    return items


# ------------------------------------------------------------------------------------- YouCook2

def convert_youcook2(
    input_path: Path | str, *, seed: int = 0, template: str = "random",
    video_template: str = DEFAULT_VIDEO_TEMPLATE["youcook2"],
) -> list[dict]:
    """ActivityNet-captions json ``{"v_<ytid>": {duration, timestamps, sentences}}`` -> DVC items.

    ``template`` picks among DVC_INSTRUCTIONS (``random`` seeded per video, or ``fixed:N``).
    Gold spans are kept as annotated (they are whole seconds inside the video).
    """
    data = _load_json(input_path, "YouCook2 caption json")
    if not isinstance(data, dict) or not data:
        raise _bad(input_path, "expected a non-empty object {video key: {duration, timestamps, sentences}}")
    items = []
    for key, rec in data.items():
        if not isinstance(rec, dict) or not {"duration", "timestamps", "sentences"} <= rec.keys():
            raise _bad(input_path, f"video {key!r} lacks duration/timestamps/sentences")
        spans, sentences = rec["timestamps"], rec["sentences"]
        if len(spans) != len(sentences):
            raise _bad(input_path, f"video {key!r}: {len(spans)} timestamps but {len(sentences)} sentences")
        answer = []
        for span, sentence in zip(spans, sentences):
            if not isinstance(span, (list, tuple)) or len(span) != 2:
                raise _bad(input_path, f"video {key!r}: bad timestamp {span!r}")
            s, e = (_float(x, input_path, f"{key} timestamp") for x in span)
            answer.append({"time": [s, e], "content": str(sentence).strip()})
        youtube_id = key[2:] if key.startswith("v_") else key
        query, index = pick_instruction(template, seed, key)
        items.append(make_item(
            key, "youcook2", format_video(video_template, "youcook2", key=key, youtube_id=youtube_id), query,
            duration=_float(rec["duration"], input_path, f"{key} duration"), template_id=index,
            gold={"answer": answer},
        ))
    return items


# --------------------------------------------------------------------------------- QVHighlights

def split_qvh_vid(vid: str) -> tuple[str, float, float]:
    """``"<youtube_id>_<start>_<end>"`` -> (youtube_id, start, end) in the original YouTube video.

    YouTube ids may contain ``_`` themselves, hence the split from the right.
    """
    parts = vid.rsplit("_", 2)
    if len(parts) != 3:
        raise ValueError(f"QVHighlights vid {vid!r} is not '<youtube_id>_<start>_<end>'")
    try:
        return parts[0], float(parts[1]), float(parts[2])
    except ValueError:
        raise ValueError(f"QVHighlights vid {vid!r} is not '<youtube_id>_<start>_<end>'") from None


def qvh_saliency_windows(
    clip_ids: list[int], saliency: list[list[int]], *, min_score: int = 4,
    clip_seconds: float = QVH_CLIP_SECONDS, duration: float | None = None,
) -> list[list[float]]:
    """Spans covering the consecutive clips whose best annotator score is >= ``min_score``.

    A run of clips a..b becomes ``[a*2, (b+1)*2]`` (clipped to ``duration``). The reference's
    ``qvh_to_charades_format`` closed runs as ``[clip*2, clip*2]`` (spec §9 item 27).
    """
    if len(clip_ids) != len(saliency):
        raise ValueError(f"{len(clip_ids)} relevant_clip_ids but {len(saliency)} saliency rows")
    good = sorted(c for c, scores in zip(clip_ids, saliency) if max(scores) >= min_score)
    windows: list[list[float]] = []
    for c in good:
        if windows and windows[-1][1] == c * clip_seconds:
            windows[-1][1] = (c + 1) * clip_seconds
        else:
            windows.append([c * clip_seconds, (c + 1) * clip_seconds])
    if duration is not None:
        windows = [[s, min(e, duration)] for s, e in windows if s < duration]
    return windows


def convert_qvh(
    input_path: Path | str, *, seed: int = 0, template: str = "none",
    video_template: str = DEFAULT_VIDEO_TEMPLATE["qvh"], highlight_min_score: int = 4,
) -> list[dict]:
    """QVHighlights jsonl -> items (id ``str(qid)``); gold absent for the test split (no labels)."""
    items = []
    for i, line in enumerate(_read_text_lines(input_path, "QVHighlights jsonl")):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise _bad(input_path, f"invalid JSON ({e.msg})", i + 1) from None
        if not isinstance(rec, dict) or not {"qid", "query", "vid", "duration"} <= rec.keys():
            raise _bad(input_path, "record lacks qid/query/vid/duration", i + 1)
        vid = rec["vid"]
        try:
            youtube_id, clip_start, clip_end = split_qvh_vid(vid)
        except ValueError as e:
            raise _bad(input_path, str(e), i + 1) from None
        duration = _float(rec["duration"], input_path, "duration", i + 1)
        item_id = str(rec["qid"])
        query, template_id = render_query(str(rec["query"]).strip(), template, seed, item_id)
        gold: dict[str, Any] = {"vid": vid, "youtube_id": youtube_id, "source_start": clip_start, "source_end": clip_end}
        if "saliency_scores" in rec:
            for key in ("relevant_windows", "relevant_clip_ids", "saliency_scores"):
                if key not in rec:
                    raise _bad(input_path, f"record has saliency_scores but no {key}", i + 1)
                gold[key] = rec[key]
            try:
                gold["highlight_windows"] = qvh_saliency_windows(
                    rec["relevant_clip_ids"], rec["saliency_scores"],
                    min_score=highlight_min_score, duration=duration,
                )
            except ValueError as e:
                raise _bad(input_path, str(e), i + 1) from None
            gold["highlight_min_score"] = highlight_min_score
        items.append(make_item(
            item_id, "qvh", format_video(video_template, "qvh", vid=vid, youtube_id=youtube_id), query,
            duration=duration, template_id=template_id, gold=gold,
        ))
    return items


# ----------------------------------------------------------------------------------------- TVSum

def parse_clock(text: str) -> float:
    """``"m:ss"`` / ``"h:mm:ss"`` -> seconds."""
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"length {text!r} is not m:ss")
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + int(p)
    return seconds


def read_tvsum_info(path: Path | str) -> list[dict]:
    """ydata-tvsum50-info.tsv (header: category, video_id, title, url, length) -> rows with ``seconds``."""
    rows = _read_table(path, "TVSum info tsv", ("category", "video_id", "title", "length"), delimiter="\t")
    if not rows:
        raise _bad(path, "TVSum info tsv has no videos")
    for i, r in enumerate(rows):
        if not r["video_id"] or not r["title"] or r["category"] not in TVSUM_CATEGORY_NAMES:
            raise _bad(path, f"bad row (category {r['category']!r}, video {r['video_id']!r})", i + 2)
        try:
            r["seconds"] = parse_clock(r["length"])
        except (ValueError, AttributeError) as e:
            raise _bad(path, str(e), i + 2) from None
    return rows


def read_tvsum_anno_index(path: Path | str) -> dict[str, tuple[str, int]]:
    """ydata-tvsum50-anno.tsv -> {video_id: (category, number of annotator rows)} (scores not parsed)."""
    index: dict[str, tuple[str, int]] = {}
    for i, line in enumerate(_read_text_lines(path, "TVSum anno tsv")):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise _bad(path, "expected 'video_id<TAB>category<TAB>scores'", i + 1)
        vid, cat = parts[0], parts[1]
        prev_cat, n = index.get(vid, (cat, 0))
        if prev_cat != cat:
            raise _bad(path, f"video {vid} listed under categories {prev_cat} and {cat}", i + 1)
        index[vid] = (cat, n + 1)
    return index


def check_tvsum_against_anno(rows: list[dict], anno: dict[str, tuple[str, int]], info_path, anno_path) -> None:
    info = {r["video_id"]: r["category"] for r in rows}
    only_info = sorted(set(info) - set(anno))
    only_anno = sorted(set(anno) - set(info))
    if only_info or only_anno:
        raise ValueError(
            f"TVSum info {info_path} and anno {anno_path} disagree: "
            f"{len(only_info)} videos only in info {only_info[:5]}, {len(only_anno)} only in anno {only_anno[:5]}"
        )
    wrong = sorted(v for v, c in info.items() if anno[v][0] != c)
    if wrong:
        raise ValueError(f"TVSum info {info_path} and anno {anno_path} disagree on the category of {wrong[:5]}")


def tvsum_prompt_title(row: dict, rows: list[dict], variant: str, seed: int) -> tuple[str, str | None]:
    """The text that goes into the template for one TVSum video, and the video it came from."""
    vid, title = row["video_id"], row["title"]
    if variant == "title":
        return title, vid
    if variant == "none":
        return "", None
    if variant == "ambiguous":
        text = TVSUM_AMBIGUOUS_TITLES.get(vid) or TVSUM_CATEGORY_AMBIGUOUS[row["category"]]
        if text.casefold() == title.casefold():
            raise ValueError(f"ambiguous title for {vid} equals its real title {title!r}")
        return text, None
    if variant == "unrelated":
        # Sorted so the choice depends only on (seed, video, pool), not on the file's row order.
        pool = sorted(
            (r for r in rows if r["category"] != row["category"] and r["title"].casefold() != title.casefold()),
            key=lambda r: r["video_id"],
        )
        if not pool:
            raise ValueError(f"no video of another category to borrow an unrelated title for {vid}")
        other = item_rng(seed, vid, "unrelated").choice(pool)
        return other["title"], other["video_id"]
    raise ValueError(f"unknown TVSum prompt variant {variant!r}; choose from {TVSUM_PROMPTS}")


def convert_tvsum(
    input_path: Path | str, *, anno_path: Path | str | None = None, seed: int = 0, template: str = "random",
    prompt: str = "title", video_template: str = DEFAULT_VIDEO_TEMPLATE["tvsum"],
) -> list[dict]:
    """TVSum info tsv -> items (id = video_id). ``prompt``: title | ambiguous | unrelated | none (w/o-Q)."""
    if prompt not in TVSUM_PROMPTS:
        raise ValueError(f"unknown TVSum prompt variant {prompt!r}; choose from {TVSUM_PROMPTS}")
    parse_template_mode(template)  # fail on a bad spec even for the query-free variant
    rows = read_tvsum_info(input_path)
    if anno_path is not None:
        check_tvsum_against_anno(rows, read_tvsum_anno_index(anno_path), input_path, anno_path)
    items = []
    for row in rows:
        vid = row["video_id"]
        text, source = tvsum_prompt_title(row, rows, prompt, seed)
        query, template_id = ("", None) if prompt == "none" else render_query(text, template, seed, vid)
        gold = {"category": row["category"], "category_name": TVSUM_CATEGORY_NAMES[row["category"]], "title": row["title"]}
        if prompt == "unrelated":
            gold["prompt_source_video"] = source
        items.append(make_item(
            vid, "tvsum", format_video(video_template, "tvsum", video_id=vid), query,
            duration=row["seconds"], template_id=template_id, gold=gold, prompt_variant=prompt,
        ))
    return items


# -------------------------------------------------------------------------------------- Mr.HiSum

def parse_label_list(text: str) -> list[int]:
    """YouTube-8M label column, numpy-printed (``"[  11   20 2604]"``) or JSON (``"[11, 20]"``)."""
    return [int(x) for x in re.findall(r"-?\d+", text or "")]


def read_titles(path: Path | str) -> dict[str, str]:
    """Video titles from a JSON object ``{id: title}`` or a csv/tsv with a ``title`` column and an id column
    (``youtube_id`` and/or ``video_id``). Mr.HiSum's public metadata has no titles (see README)."""
    path = _require_file(path, "titles file")
    if path.suffix.lower() == ".json":
        data = _load_json(path, "titles json")
        if not isinstance(data, dict):
            raise _bad(path, "titles json must be an object {youtube_id or video_id: title}")
        return {str(k): str(v) for k, v in data.items()}
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    rows = _read_table(path, "titles table", ("title",), delimiter=delimiter)
    if rows and not ({"youtube_id", "video_id"} & rows[0].keys()):
        raise _bad(path, "titles table needs a youtube_id or video_id column")
    titles = {}
    for r in rows:
        for key in ("video_id", "youtube_id"):
            if r.get(key) and (r.get("title") or "").strip():
                titles[r[key]] = r["title"].strip()
    return titles


def convert_hisum(
    input_path: Path | str, split_path: Path | str, *, split: str = "test_keys",
    titles_path: Path | str | None = None, missing_title: str = "error", seed: int = 0,
    template: str = "random", video_template: str = DEFAULT_VIDEO_TEMPLATE["hisum"],
) -> list[dict]:
    """Mr.HiSum split keys -> items (id = video_id, gold h5_key = video_id).

    Title lookup: a non-empty ``title`` column of the metadata, else ``titles_path`` by video_id,
    else by youtube_id. ``missing_title``: error | skip (drop the video) | empty (query-free item,
    ``prompt_variant`` "none").
    """
    if missing_title not in HISUM_MISSING_TITLE:
        raise ValueError(f"missing_title must be one of {HISUM_MISSING_TITLE}, got {missing_title!r}")
    parse_template_mode(template)
    rows = _read_table(input_path, "Mr.HiSum metadata csv", ("video_id", "youtube_id", "duration", "labels"))
    meta = {r["video_id"]: r for r in rows}
    splits = _load_json(split_path, "Mr.HiSum split json")
    if not isinstance(splits, dict) or split not in splits:
        keys = sorted(splits) if isinstance(splits, dict) else type(splits).__name__
        raise _bad(split_path, f"no split {split!r}; available: {keys}")
    titles = read_titles(titles_path) if titles_path is not None else {}
    unknown = [k for k in splits[split] if k not in meta]
    if unknown:
        raise _bad(split_path, f"{len(unknown)} {split} keys are not in {input_path}, e.g. {unknown[:5]}")
    items, untitled = [], []
    for key in splits[split]:
        r = meta[key]
        title = (r.get("title") or "").strip() or titles.get(key) or titles.get(r["youtube_id"])
        if title:
            query, template_id = render_query(title, template, seed, key)
            variant = "title"
        elif missing_title == "error":
            untitled.append(key)
            continue
        elif missing_title == "skip":
            continue
        else:
            query, template_id, variant = "", None, "none"
        items.append(make_item(
            key, "hisum", format_video(video_template, "hisum", youtube_id=r["youtube_id"], video_id=key), query,
            duration=_float(r["duration"], input_path, f"{key} duration"), template_id=template_id,
            gold={"h5_key": key, "youtube_id": r["youtube_id"], "categories": parse_label_list(r["labels"])},
            prompt_variant=variant,
        ))
    if untitled:
        raise ValueError(
            f"{len(untitled)} of {len(splits[split])} Mr.HiSum {split} videos have no title "
            f"(e.g. {untitled[:3]}): {input_path} {'has empty titles' if 'title' in rows[0] else 'has no title column'}; "
            f"pass --titles FILE "
            f"(see datasets/README.md) or --missing_title skip|empty"
        )
    return items


# ----------------------------------------------------------------------------------------- MAGQA

def convert_magqa(
    input_path: Path | str, *, seed: int = 0, template: str = "none",
    video_template: str = DEFAULT_VIDEO_TEMPLATE["magqa"],
) -> list[dict]:
    """MAGQA test json (list of {question_id, video, conversation, answer}) -> items.

    The query is the first user turn, asked at its own time; gold keeps the answer turns as given.
    """
    data = _load_json(input_path, "MAGQA json")
    if not isinstance(data, list) or not data:
        raise _bad(input_path, "expected a non-empty list of {question_id, video, conversation, answer}")
    items = []
    for n, rec in enumerate(data):
        if not isinstance(rec, dict) or not {"question_id", "video", "conversation"} <= rec.keys():
            raise _bad(input_path, f"entry {n} lacks question_id/video/conversation")
        item_id = str(rec["question_id"])
        user = next((t for t in rec["conversation"] if isinstance(t, dict) and t.get("role") == "user"), None)
        if user is None or not str(user.get("content", "")).strip():
            raise _bad(input_path, f"question {item_id}: no user turn with content")
        query_time = _float(user.get("time", 0.0), input_path, f"question {item_id} time")
        if query_time < 0:
            raise _bad(input_path, f"question {item_id}: negative query time {query_time}")
        video = str(rec["video"])
        query, template_id = render_query(str(user["content"]).strip(), template, seed, item_id)
        duration = rec.get("duration")
        items.append(make_item(
            item_id, "magqa", format_video(video_template, "magqa", video=video, stem=Path(video).stem), query,
            query_time=query_time, template_id=template_id,
            duration=None if duration is None else _float(duration, input_path, f"question {item_id} duration"),
            gold={"answer": rec.get("answer", [])},
        ))
    return items


# ---------------------------------------------------------------------------------------- output

def keep_existing_videos(items: list[dict], video_root: Path | str) -> tuple[list[dict], list[str]]:
    """Drop items whose video file is absent under ``video_root`` (benchmarks use what could be downloaded)."""
    root = Path(video_root)
    if not root.is_dir():
        raise ValueError(f"--video_root is not a folder: {root}")
    kept = [it for it in items if (root / it["video"]).is_file()]
    dropped = [it["id"] for it in items if not (root / it["video"]).is_file()]
    return kept, dropped


def write_items(items: list[dict], output: Path | str, meta: dict) -> Path:
    """Write the JSONL atomically and ``<output>.meta.json`` beside it; returns the meta path."""
    output = Path(output)
    atomic_write_text(output, "".join(dumps(it) + "\n" for it in items))
    meta_path = output.with_name(output.name + ".meta.json")
    atomic_write_json(meta_path, meta)
    return meta_path


def _add_common(p: argparse.ArgumentParser, dataset: str) -> None:
    p.add_argument("--output", required=True, help="items JSONL to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-item template choice")
    p.add_argument("--template", default=DEFAULT_TEMPLATE[dataset],
                   help="random | fixed:N | none (default %(default)s)")
    fields = ", ".join("{" + f + "}" for f in VIDEO_FIELDS[dataset])
    p.add_argument("--video_template", default=DEFAULT_VIDEO_TEMPLATE[dataset],
                   help=f"video file name relative to the video root; placeholders {fields} (default %(default)s)")
    p.add_argument("--video_root", default=None,
                   help="if given, keep only items whose video exists under this folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="dataset", required=True)

    p = sub.add_parser("charades", help="Charades-STA txt + Charades csv")
    p.add_argument("--input", required=True, help="charades_sta_test.txt")
    p.add_argument("--lengths", required=True, help="Charades_v1_test.csv (video lengths)")
    _add_common(p, "charades")

    p = sub.add_parser("youcook2", help="YouCook2 in ActivityNet-captions format")
    p.add_argument("--input", required=True, help="yc2_val.json")
    _add_common(p, "youcook2")

    p = sub.add_parser("qvh", help="QVHighlights jsonl")
    p.add_argument("--input", required=True, help="highlight_val_release.jsonl")
    p.add_argument("--highlight_min_score", type=int, default=4,
                   help="saliency (max over annotators) that makes a clip part of gold highlight_windows")
    _add_common(p, "qvh")

    p = sub.add_parser("tvsum", help="TVSum info tsv")
    p.add_argument("--input", required=True, help="ydata-tvsum50-info.tsv")
    p.add_argument("--anno", default=None, help="ydata-tvsum50-anno.tsv, to check the video list and categories")
    p.add_argument("--prompt", choices=TVSUM_PROMPTS, default="title",
                   help="title (default) | ambiguous | unrelated | none (query-free ablation)")
    _add_common(p, "tvsum")

    p = sub.add_parser("hisum", help="Mr.HiSum metadata csv + split json")
    p.add_argument("--input", required=True, help="mr_hisum_metadata.csv")
    p.add_argument("--split_file", required=True, help="mr_hisum_split.json")
    p.add_argument("--split", default="test_keys", help="key of the split json (default %(default)s)")
    p.add_argument("--titles", default=None, help="titles json/csv/tsv (the public metadata has none)")
    p.add_argument("--missing_title", choices=HISUM_MISSING_TITLE, default="error",
                   help="what to do with a video without a title (default %(default)s)")
    _add_common(p, "hisum")

    p = sub.add_parser("magqa", help="MAGQA test json")
    p.add_argument("--input", required=True, help="MAGQA test json")
    _add_common(p, "magqa")
    return parser


def convert_from_args(args: argparse.Namespace) -> tuple[list[dict], dict[str, str]]:
    """Run one sub-command's converter; returns (items, {input name: path})."""
    common = {"seed": args.seed, "template": args.template, "video_template": args.video_template}
    d = args.dataset
    if d == "charades":
        inputs = {"input": args.input, "lengths": args.lengths}
        items = convert_charades(args.input, args.lengths, **common)
    elif d == "youcook2":
        inputs = {"input": args.input}
        items = convert_youcook2(args.input, **common)
    elif d == "qvh":
        inputs = {"input": args.input}
        items = convert_qvh(args.input, highlight_min_score=args.highlight_min_score, **common)
    elif d == "tvsum":
        inputs = {"input": args.input, **({"anno": args.anno} if args.anno else {})}
        items = convert_tvsum(args.input, anno_path=args.anno, prompt=args.prompt, **common)
    elif d == "hisum":
        inputs = {"input": args.input, "split_file": args.split_file, **({"titles": args.titles} if args.titles else {})}
        items = convert_hisum(args.input, args.split_file, split=args.split, titles_path=args.titles,
                              missing_title=args.missing_title, **common)
    elif d == "magqa":
        inputs = {"input": args.input}
        items = convert_magqa(args.input, **common)
    else:  # argparse restricts the choices; kept for a clear message if a sub-command is added
        raise ValueError(f"unknown dataset {d!r}")
    check_unique_ids(items, args.input)
    return items, inputs


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        items, inputs = convert_from_args(args)
        n_source = len(items)
        dropped: list[str] = []
        if args.video_root:
            items, dropped = keep_existing_videos(items, args.video_root)
    except ValueError as e:
        parser.exit(2, f"convert.py {args.dataset}: error: {e}\n")
    options = {k: v for k, v in vars(args).items() if k not in ("output", "dataset", *inputs)}
    meta = {
        "dataset": args.dataset,
        "converter": "datasets/convert.py",
        "command": ["python", "datasets/convert.py", *(argv if argv is not None else sys.argv[1:])],
        "inputs": {k: {"path": str(Path(p).resolve()), "sha256": sha256_file(p)} for k, p in inputs.items()},
        "options": options,
        "n_items": len(items),
        "n_converted": n_source,
        "dropped_missing_video": dropped,
        "query_templates": list(QUERY_TEMPLATES),
        "dvc_instructions": list(DVC_INSTRUCTIONS),
    }
    meta_path = write_items(items, args.output, meta)
    print(f"{args.dataset}: wrote {len(items)} items to {args.output} (meta {meta_path.name})"
          + (f"; {len(dropped)} dropped, video missing" if dropped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
