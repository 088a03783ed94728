"""Mr.HiSum highlight detection: raw files, items, gold, stream adapter and scorer (official, aha).

Gold: an h5 file, one group per video ``/<video_id>/{gtscore, change_points, gt_summary}``
(``gtscore``: the Most-Replayed score per second, 0..1; ``change_points``: (S, 2) KTS shots
[start, end] in frames; ``gt_summary``: the 0/1 knapsack summary, (n,) or (users, n)), plus
optionally the split json (option ``split_file``, key ``split_key``, default "test_keys").
``change_points`` and ``gt_summary`` are only needed for F1: without them mAP is still reported
and F1 is reported as unavailable (null, with the reason in the record).

Predictions: streams (fused per-frame scores averaged per second [s, s+1)) or records
``{"id": video_id, "pred_scores": [one per second]}``.

protocol "official" (official_scorers.md §3.4; MRHiSum/MR.HiSum ``Solver.evaluate``):
  * mAP@50 / mAP@15: GT and prediction averaged over uniform 5-s segments (the last one shorter);
    positives = the top len//2 (top 50) or int(0.15 len) (top 15) GT segments (ties: earlier
    first); AP = sklearn ``average_precision_score`` (the official softmax is omitted: it keeps
    the ranking); mean over videos, in percent. A video without a positive (int(0.15 len) = 0
    below 35 s) has no AP: left out of that mean by default (``zero_positive="zero"``: counted 0).
  * F1: the per-second prediction averaged per KTS shot, a 0/1 knapsack within floor(0.15 n)
    frames (shot weight end - start as the official dataset code; ``nfps="inclusive"``: + 1),
    against ``gt_summary``; F1 in percent averaged over its rows, then videos.
  * A prediction shorter than ``gtscore``: the uncovered tail takes the video's lowest predicted
    score; seconds past the end are ignored (both counted).

protocol "aha" (Aha ``test/hisum/hisum_eval.py``): pairs prediction second i with ``gtscore[i]``
over the seconds the prediction covers (``lag_one_frame=True``: the reference's pred[i] with
gt[i-1]); mAP on 1-s segments with k = max(1, int(rho n)); F1 of uniform 5-s shots taken greedily
against the frames with gtscore >= its 85th percentile; MSE, MAE, Pearson, Spearman.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy import stats
from sklearn.metrics import f1_score, mean_absolute_error, mean_squared_error

from data.benchmarks import items as it
from data.benchmarks.ranking import mean_or_none, pool_by_time, rank_desc, sklearn_ap, top_k_mask, uniform_segment_means
from data.benchmarks.validate import (InputError, as_bool, as_int, choice, item_id, match_ids, number, numbers,
                                      read_json_or_jsonl, require_file, resolve_protocol)

log = logging.getLogger(__name__)

NAME = "hisum"
DATASET = "mr_hisum"
DEFAULT_PROTOCOL = "official"
PROTOCOLS: dict[str, dict[str, Any]] = {
    "official": {"match_number": True, "split_file": None, "split_key": "test_keys", "segment_s": 5,
                 "budget": 0.15, "nfps": "official", "zero_positive": "skip", "clip_pool": "mean"},
    "aha": {"match_number": True, "split_file": None, "split_key": "test_keys", "budget": 0.15,
            "lag_one_frame": False, "f1_shot_s": 5, "clip_pool": "mean"},
}
HEADLINE = "mAP50"
F1_UNAVAILABLE = "unavailable: the gold has no change_points / gt_summary (KTS shots and the reference summary)"


def resolve(protocol: str | None, options: Mapping | None) -> tuple[str, dict]:
    name, opts = resolve_protocol("Mr.HiSum", PROTOCOLS, protocol, DEFAULT_PROTOCOL, options)
    if not 0 < number(opts["budget"], "option budget") < 1:
        raise ValueError(f"budget must be in (0, 1), got {opts['budget']}")
    as_bool(opts["match_number"], "match_number")
    choice(opts["clip_pool"], ("mean", "sum"), "clip_pool")
    if name == "official":
        choice(opts["zero_positive"], ("skip", "zero"), "zero_positive")
        choice(opts["nfps"], ("official", "inclusive"), "nfps")
        as_int(opts["segment_s"], "segment_s", 1)
    else:
        as_bool(opts["lag_one_frame"], "lag_one_frame")
        as_int(opts["f1_shot_s"], "f1_shot_s", 1)
    return name, opts


def tunable(protocol: str, opts: Mapping) -> bool:
    return True


def headline(metrics: Mapping, protocol: str) -> tuple[str, float | None]:
    return HEADLINE, metrics.get(HEADLINE)


# ------------------------------------------------------------------------------------ gold


def split_videos(split_file, split_key: str) -> list[str]:
    kind, data = read_json_or_jsonl(split_file, "Mr.HiSum split json")
    if kind != "json" or not isinstance(data, dict):
        raise InputError("expected a JSON object {split_key: [video ids]}", split_file)
    if split_key not in data:
        raise InputError(f"no key {split_key!r} (has {sorted(data)})", split_file)
    return [item_id(v, f"{split_key} id", split_file) for v in data[split_key]]


def load_gold(h5_path, protocol: str = DEFAULT_PROTOCOL, opts: Mapping | None = None) -> dict[str, dict]:
    """vid -> {"gtscore", "change_points" or None, "gt_summary" or None} for the split (else every group)."""
    import h5py

    opts = opts or {}
    require_file(h5_path, "Mr.HiSum h5")
    gold = {}
    try:
        f = h5py.File(h5_path, "r")
    except OSError as e:
        raise InputError(f"not an HDF5 file ({e})", h5_path) from None
    with f:
        ids = split_videos(opts["split_file"], opts.get("split_key", "test_keys")) if opts.get("split_file") \
            else list(f.keys())
        absent = [v for v in ids if v not in f]
        if absent:
            if opts.get("match_number") is not False:
                raise InputError(f"{len(absent)} videos of the split have no group in the h5, e.g. {absent[:3]} "
                                 "(option match_number=false scores the ones present)", h5_path)
            log.warning("%s: %d split videos have no group; left out (match_number=false)", h5_path, len(absent))
            ids = [v for v in ids if v in f]
        for vid in ids:
            grp = f[vid]
            if "gtscore" not in grp:
                raise InputError(f"{vid} has no gtscore", h5_path)
            g = numbers(np.asarray(grp["gtscore"]).tolist(), f"{vid} gtscore", h5_path)
            entry = {"gtscore": g, "change_points": None, "gt_summary": None}
            if "change_points" in grp and "gt_summary" in grp:
                cps = np.asarray(grp["change_points"], dtype=np.int64).reshape(-1, 2)
                if len(cps) == 0 or cps.min() < 0 or cps.max() >= len(g) or np.any(cps[:, 1] < cps[:, 0]):
                    raise InputError(f"{vid} change_points must be [start, end] frame pairs inside the video", h5_path)
                summ = numbers(np.asarray(grp["gt_summary"], dtype=np.float64).tolist(), f"{vid} gt_summary", h5_path,
                               ndim=np.asarray(grp["gt_summary"]).ndim)
                if not np.all((summ == 0) | (summ == 1)):
                    # the official evaluate_summary casts to int and ANDs bitwise (0.6 -> 0, 2 & 1 -> 0);
                    # anything but a 0/1 keyshot summary (e.g. gtscore stored by mistake) is not a summary
                    bad = summ[(summ != 0) & (summ != 1)]
                    raise InputError(f"{vid} gt_summary must be a 0/1 keyshot summary, found {bad.size} other "
                                     f"values (e.g. {bad.flat[0]:g})", h5_path)
                entry["change_points"] = cps
                entry["gt_summary"] = summ.reshape(1, -1) if summ.ndim == 1 else summ
            gold[vid] = entry
    if not gold:
        raise InputError("no video to score", h5_path)
    return gold


# ---------------------------------------------------------------------------------- knapsack


def knapsack_01(values, weights, capacity: int) -> list[int]:
    """Indices maximising sum(values) with sum(weights) <= capacity (0/1 knapsack DP), as the
    vsumm/Mr.HiSum ``knapSack``: backtracking takes an item only when it changes the optimum, and the
    table's capacity-0 column stays 0 (``if i == 0 or w == 0: K[i][w] = 0``). With the official shot
    weights (end - start) a one-frame shot weighs 0, and that column rule can then leave it out or
    change the others' choice (not the optimum); with weights >= 1 the rule changes nothing."""
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.int64)
    if len(v) != len(w) or np.any(w < 0) or capacity < 0:
        raise ValueError("knapsack needs as many values as weights, weights >= 0 and capacity >= 0")
    table = np.zeros((len(v) + 1, capacity + 1))
    for i in range(1, len(v) + 1):
        prev, wi = table[i - 1], w[i - 1]
        row = prev.copy()
        if wi <= capacity:
            row[wi:] = np.maximum(prev[wi:], prev[: capacity + 1 - wi] + v[i - 1])
        row[0] = 0.0  # the official table's w == 0 column
        table[i] = row
    picks, c = [], capacity
    for i in range(len(v), 0, -1):
        if table[i, c] != table[i - 1, c]:
            picks.append(i - 1)
            c -= w[i - 1]
    return picks[::-1]


def knapsack_summary(frame_scores, change_points, budget: float = 0.15, nfps: str = "official") -> np.ndarray:
    """0/1 keyshot summary (official ``generate_summary`` with picks = every frame)."""
    s = numbers(frame_scores, "frame scores")
    cps = np.asarray(change_points, dtype=np.int64).reshape(-1, 2)
    seg_score = np.array([s[a:b + 1].mean() for a, b in cps])
    seg_len = cps[:, 1] - cps[:, 0] + (1 if choice(nfps, ("official", "inclusive"), "nfps") == "inclusive" else 0)
    picks = set(knapsack_01(seg_score, seg_len, int(np.floor(len(s) * budget))))
    return np.concatenate([np.full(n, 1.0 if i in picks else 0.0) for i, n in enumerate(seg_len)] or [np.zeros(0)])


def summary_f1(machine, user_summaries) -> float:
    """Official ``evaluate_summary(..., 'avg')`` F-score in percent (mean over user rows)."""
    m = np.asarray(machine, dtype=np.float64).reshape(-1) > 0
    users = np.atleast_2d(np.asarray(user_summaries, dtype=np.float64)) > 0
    n = max(len(m), users.shape[1])
    S = np.zeros(n, dtype=bool)
    S[: len(m)] = m
    scores = []
    for u in users:
        G = np.zeros(n, dtype=bool)
        G[: len(u)] = u
        overlap = np.sum(S & G)
        p = overlap / S.sum() if S.sum() else 0.0
        r = overlap / G.sum() if G.sum() else 0.0
        scores.append(0.0 if p + r == 0 else 200.0 * p * r / (p + r))
    return float(np.mean(scores))


# --------------------------------------------------------------------------- metric functions


def segment_map(gt, pred, segment_len: int, rho: float, protocol: str = "official") -> float | None:
    """AP of ``pred`` against the top-rho GT segments (uniform segment means), in [0, 1]; None: no positive.

    official: k = len//2 for rho = 0.5, else int(rho * len); aha: k = max(1, int(rho * len))."""
    g = uniform_segment_means(gt, segment_len)
    p = uniform_segment_means(pred, segment_len)
    if len(g) != len(p):
        raise ValueError(f"{len(g)} GT segments but {len(p)} predicted segments")
    k = (len(g) // 2 if rho == 0.5 else int(len(g) * rho)) if protocol == "official" else max(1, int(rho * len(g)))
    return sklearn_ap(top_k_mask(g, k).astype(np.int64), p)


def greedy_shot_summary(pred, shot_len: int = 5, budget: float = 0.15) -> np.ndarray:
    """Aha's F1 summary: uniform shots taken by mean score (ties: earlier) while they fit the budget."""
    p = numbers(pred, "predicted scores")
    n = len(p)
    starts = np.arange(0, n, shot_len)
    ends = np.minimum(starts + shot_len, n)
    total = int(budget * n)
    selected = np.zeros(n, dtype=bool)
    used = 0
    for i in rank_desc(uniform_segment_means(p, shot_len)):
        length = ends[i] - starts[i]
        if used + length <= total:
            selected[starts[i]:ends[i]] = True
            used += length
        if used >= total:
            break
    return selected


def _corr(fn, a, b) -> float:
    if len(a) <= 1 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    return float(fn(a, b).statistic)


def official_video_metrics(gtscore, pred, change_points, gt_summary, segment_s: int = 5,
                           budget: float = 0.15, nfps: str = "official") -> dict:
    """mAP50 / mAP15 in [0, 1] (None: no positive) and F1 in percent (None without change points)."""
    g = numbers(gtscore, "gtscore")
    p = numbers(pred, "predicted scores")
    if len(g) != len(p):
        raise ValueError(f"{len(g)} gtscore values but {len(p)} predicted seconds")
    out = {"mAP50": segment_map(g, p, segment_s, 0.5, "official"), "mAP15": segment_map(g, p, segment_s, 0.15, "official"),
           "F1": None}
    if change_points is not None:
        out["F1"] = summary_f1(knapsack_summary(p, change_points, budget, nfps), gt_summary)
    return out


def aha_video_metrics(gt, pred, budget: float = 0.15, f1_shot_s: int = 5) -> dict:
    """Aha's per-video metrics on already paired per-second arrays."""
    g = numbers(gt, "gtscore")
    p = numbers(pred, "predicted scores")
    if len(g) != len(p):
        raise ValueError(f"{len(g)} gtscore values but {len(p)} predicted seconds")
    gt_sel = g >= np.percentile(g, 100 * (1 - budget))
    return {"mAP50": segment_map(g, p, 1, 0.5, "aha"), "mAP15": segment_map(g, p, 1, 0.15, "aha"),
            "F1": 100.0 * float(f1_score(gt_sel, greedy_shot_summary(p, f1_shot_s, budget), zero_division=0)),
            "mse": float(mean_squared_error(g, p)), "mae": float(mean_absolute_error(g, p)),
            "pearson": _corr(stats.pearsonr, g, p), "spearman": _corr(stats.spearmanr, g, p)}


# ---------------------------------------------------------------------------- predictions


def record_id(rec: Mapping, path=None, line=None) -> str:
    for k in ("id", "video_id", "vid"):
        if k in rec:
            return item_id(rec[k], k, path, line)
    raise InputError("prediction record without an id ('id', 'video_id' or 'vid')", path, line)


def from_stream(stream, gold_item: Mapping, protocol: str, opts: Mapping) -> dict:
    """Fused per-frame scores pooled per second: len(gtscore) seconds (official) or the covered ones (aha)."""
    covered = int(np.floor(float(stream.time[-1]) + 1e-9)) + 1
    n = len(gold_item["gtscore"]) if protocol == "official" else covered
    s, counts = pool_by_time(stream.time, stream.fused, 1.0, n, opts["clip_pool"])
    return {"seconds": s, "pool": counts}


def from_record(rec: Mapping, gold_item: Mapping, protocol: str, opts: Mapping, path=None, line=None) -> dict:
    vid = record_id(rec, path, line)
    if "pred_scores" not in rec:
        raise InputError(f"video {vid}: neither 'frames' (stream prediction) nor 'pred_scores'", path, line)
    s = numbers(rec["pred_scores"], f"video {vid} pred_scores", path, line)
    n = len(gold_item["gtscore"])
    if protocol != "official" or len(s) == n:
        return {"seconds": s, "pool": None}
    if len(s) > n:
        return {"seconds": s[:n], "pool": {"interpolated_bins": 0, "edge_filled_bins": 0, "frames_past_end": len(s) - n}}
    padded = np.full(n, s.min())
    padded[: len(s)] = s
    return {"seconds": padded, "pool": {"interpolated_bins": 0, "edge_filled_bins": n - len(s), "frames_past_end": 0}}


# ------------------------------------------------------------------------------------ score


def score(preds: Mapping[str, dict], gold: Mapping[str, dict], protocol: str | None = None,
          options: Mapping | None = None) -> dict:
    """Pure scorer: {vid: {"seconds"}} against {vid: gold} -> {"metrics", "per_item", "record"}."""
    name, opts = resolve(protocol, options)
    vids, id_record = match_ids(preds, gold, missing="error" if opts["match_number"] else "drop", what="video")
    budget = float(opts["budget"])
    per_video = {}
    for vid in vids:
        g, p = gold[vid]["gtscore"], preds[vid]["seconds"]
        if name == "official":
            per_video[vid] = official_video_metrics(g, p, gold[vid]["change_points"], gold[vid]["gt_summary"],
                                                    int(opts["segment_s"]), budget, opts["nfps"])
        else:
            m = min(len(p), len(g))
            pp, gg = (p[1:m], g[: max(0, m - 1)]) if opts["lag_one_frame"] else (p[:m], g[:m])
            if len(pp) == 0:
                raise InputError(f"video {vid}: nothing to pair (the prediction covers {len(p)} s)")
            per_video[vid] = aha_video_metrics(gg, pp, budget, int(opts["f1_shot_s"]))
    metrics: dict[str, Any] = {}
    no_positive = {}
    for key in ("mAP50", "mAP15"):
        vals = [v[key] for v in per_video.values()]
        no_positive[key] = sum(x is None for x in vals)
        if name == "official" and opts["zero_positive"] == "zero":
            vals = [0.0 if x is None else x for x in vals]
        m = mean_or_none(x for x in vals if x is not None)
        metrics[key] = None if m is None else 100.0 * m
    f1s = [v["F1"] for v in per_video.values()]
    f1_missing = sum(x is None for x in f1s)
    metrics["F1"] = None if f1_missing else mean_or_none(f1s)
    if name == "aha":
        for key in ("mse", "mae", "pearson", "spearman"):
            metrics[key] = mean_or_none(v[key] for v in per_video.values())
    metrics["n_videos"] = len(vids)
    per_item = {vid: {k: (None if v is None else (100.0 * v if k.startswith("mAP") else v)) for k, v in d.items()}
                for vid, d in per_video.items()}
    pooled = [preds[v]["pool"] for v in vids if preds[v].get("pool")]
    record: dict[str, Any] = {
        "dataset": DATASET, "protocol": name, "budget": budget,
        "split_file": None if opts["split_file"] is None else str(opts["split_file"]),
        "split_key": opts["split_key"] if opts["split_file"] else None,
        "ties": "stable ranking: the earlier segment first",
        "stream_seconds": f"fused per-frame scores pooled per second [s, s+1) ({opts['clip_pool']})",
        "pooling_counts": {k: sum(c[k] for c in pooled) for k in pooled[0]} if pooled else None,
        "units": "mAP and F1 in percent" + ("; mse/mae raw, correlations in [-1, 1]" if name == "aha" else ""),
        "ids": id_record}
    if name == "official":
        record.update(
            map=f"uniform {opts['segment_s']}-s segment means (GT and prediction); positives = top len//2 (mAP50) / "
                "int(0.15 len) (mAP15) GT segments; sklearn AP (softmax omitted: rank-preserving)",
            segment_s=int(opts["segment_s"]),
            zero_positive="videos without a positive segment left out of the mean" if opts["zero_positive"] == "skip"
            else "videos without a positive segment count as AP 0",
            n_videos_without_positive=no_positive,
            f1=(F1_UNAVAILABLE + f" ({f1_missing} of {len(vids)} videos)") if f1_missing else
            "per-second prediction averaged over each change_points shot [start, end]; 0/1 knapsack within "
            "floor(budget * n) frames; summary vs gt_summary, F1 averaged over its rows then videos",
            nfps="shot weight = end - start (official dataset code)" if opts["nfps"] == "official"
            else "shot weight = end - start + 1",
            tail="seconds of gtscore past the prediction's last frame take the video's lowest predicted score")
    else:
        record.update(
            pairing="pred[i] with gtscore[i - 1] for i >= 1 (the reference's one-frame lag)" if opts["lag_one_frame"]
            else "pred[i] with gtscore[i] over the seconds the prediction covers",
            lag_one_frame=bool(opts["lag_one_frame"]),
            map="1-s segments; positives = top max(1, int(rho n)) GT seconds; sklearn AP",
            f1=f"uniform {opts['f1_shot_s']}-s shots taken greedily by mean score within int(budget n) frames vs "
               "frames with gtscore >= its (1 - budget) percentile; sklearn f1", f1_shot_s=int(opts["f1_shot_s"]))
    return {"metrics": metrics, "per_item": per_item, "record": record}


# ------------------------------------------------------------------------- raw annotations


MISSING_TITLE = ("error", "skip", "empty")
DEFAULT_TEMPLATE = "random"
DEFAULT_VIDEO_TEMPLATE = "{youtube_id}.mp4"
VIDEO_FIELDS = ("youtube_id", "video_id")
METADATA_COLUMNS = ("video_id", "yt8m_file", "random_id", "youtube_id", "duration", "views", "labels")


def parse_label_list(text: str) -> list[int]:
    """YouTube-8M label column, numpy-printed (``"[  11   20 2604]"``) or JSON (``"[11, 20]"``)."""
    return [int(x) for x in re.findall(r"-?\d+", text or "")]


def read_titles(path) -> dict[str, str]:
    """Titles from a JSON object ``{id: title}`` or a csv/tsv with a ``title`` column and ``youtube_id``
    and/or ``video_id`` (told apart by content). Mr.HiSum's public metadata has no titles."""
    path = require_file(path, "titles file")
    head = path.read_text(encoding="utf-8").lstrip()[:1]
    if head in ("{", "["):
        kind, data = read_json_or_jsonl(path, "titles json")
        if kind != "json" or not isinstance(data, dict):
            raise InputError("titles json must be an object {youtube_id or video_id: title}", path)
        return {str(k): str(v) for k, v in data.items()}
    first = path.read_text(encoding="utf-8").splitlines()[0]
    delimiter = "\t" if "\t" in first else ","
    rows = it.read_table(path, "titles table", ("title",), delimiter=delimiter)
    if rows and not ({"youtube_id", "video_id"} & rows[0][1].keys()):
        raise InputError("titles table needs a youtube_id or video_id column", path, 1)
    titles = {}
    for _, r in rows:
        for key in ("video_id", "youtube_id"):
            if r.get(key) and (r.get("title") or "").strip():
                titles[r[key]] = r["title"].strip()
    return titles


def convert(input_path, split_path, *, split: str = "test_keys", titles_path=None, missing_title: str = "error",
            seed: int = 0, template: str = DEFAULT_TEMPLATE, video_template: str = DEFAULT_VIDEO_TEMPLATE,
            video_root=None, report: dict | None = None) -> list[dict]:
    """Mr.HiSum split keys -> items (id = video_id, gold h5_key = video_id).

    Title: a non-empty ``title`` column of the metadata, else ``titles_path`` by video_id, else by
    youtube_id. ``missing_title``: error | skip (drop the video, recorded) | empty (query-free item).
    ``video_root``: only the split videos whose file exists there are converted, and this filter comes
    before the title check (a video never downloaded has no yt-dlp title either). ``report``, if given,
    receives ``dropped_missing_video`` and ``skipped_no_title`` (video ids, split order)."""
    from data.prompts import parse_template_mode, render_query

    choice(missing_title, MISSING_TITLE, "missing_title")
    parse_template_mode(template)
    rows = it.read_table(input_path, "Mr.HiSum metadata csv", ("video_id", "youtube_id", "duration", "labels"))
    meta = {}
    # video_id is the key (the same youtube_id under two video_ids is legitimate: 6 in the real file)
    for line, r in it.rows_by_key(rows, "video_id", input_path, "Mr.HiSum metadata csv").values():
        vid = item_id(r["video_id"] or None, "video_id", input_path, line)
        item_id(r["youtube_id"] or None, "youtube_id", input_path, line)
        r["seconds"] = number(r["duration"], f"{vid} duration", input_path, line, positive=True)
        meta[vid] = r
    keys = split_videos(split_path, split)
    titles = read_titles(titles_path) if titles_path is not None else {}
    unknown = [k for k in keys if k not in meta]
    if unknown:
        raise InputError(f"{len(unknown)} {split} keys are not in {input_path}, e.g. {unknown[:5]}", split_path)
    root = None
    if video_root is not None:
        root = Path(video_root)
        if not root.is_dir():
            raise ValueError(f"--video_root is not a folder: {root}")
    out, untitled, no_title, no_video = [], [], [], []
    for key in keys:
        r = meta[key]
        video = it.format_video(video_template, "hisum", VIDEO_FIELDS, youtube_id=r["youtube_id"], video_id=key)
        if root is not None and not (root / video).is_file():
            no_video.append(key)
            continue
        title = (r.get("title") or "").strip() or titles.get(key) or titles.get(r["youtube_id"])
        if title:
            query, template_id = render_query(title, template, seed, key)
            variant = "title"
        elif missing_title == "error":
            untitled.append(key)
            continue
        elif missing_title == "skip":
            no_title.append(key)
            continue
        else:
            query, template_id, variant = "", None, "none"
        out.append(it.make_item(key, "hisum", video, query, duration=r["seconds"], template_id=template_id,
                                gold={"h5_key": key, "youtube_id": r["youtube_id"],
                                      "categories": parse_label_list(r["labels"])},
                                prompt_variant=variant))
    if untitled:
        has_col = "title" in rows[0][1]
        among = f" with a video under {root}" if root is not None else ""
        raise ValueError(f"{len(untitled)} of {len(keys) - len(no_video)} Mr.HiSum {split} videos{among} have no title "
                         f"(e.g. {untitled[:3]}): {input_path} {'has empty titles' if has_col else 'has no title column'}"
                         f"{' and ' + str(titles_path) + ' lacks them' if titles_path is not None else ''}; pass "
                         "--titles FILE (see datasets/README.md) or --missing_title skip|empty")
    if report is not None:
        report.update(dropped_missing_video=no_video, skipped_no_title=no_title)
    return out


def write_gold_h5(path, videos: Mapping[str, Mapping[str, np.ndarray]], feature_dim: int = 1024) -> None:
    """``mr_hisum.h5``: ``/<video_id>/{features, gtscore, change_points, gt_summary}`` (features zeros),
    written without timestamps (the same bytes every run) and moved into place atomically."""
    import os

    import h5py

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as f:
        for vid, v in videos.items():
            g = f.create_group(vid)
            n = len(v["gtscore"])
            g.create_dataset("features", data=np.zeros((n, feature_dim), np.float32), compression="gzip",
                             track_times=False)
            for key in ("gtscore", "change_points", "gt_summary"):
                g.create_dataset(key, data=v[key], track_times=False)
    os.replace(tmp, path)


def split_json_text(splits: Mapping[str, list[str]]) -> str:
    return json.dumps({f"{s}_keys": list(ids) for s, ids in splits.items()}, indent=2) + "\n"
