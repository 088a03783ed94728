"""TVSum highlight detection: raw files, items, gold, stream adapter and scorer (protocols umt, aha).

protocol "umt" (default; official_scorers.md §3.2, TencentARC/UMT ``TVSum.evaluate(k=5)``):
  Gold: per-2-s-clip scores of the 20 annotators, from ``tvsum_val.jsonl`` (the standard split,
  rows ``{vid, domain, label: [#clips][20]}``) or ``tvsum_anno.json`` (all 50 videos, ``{vid: {anno,
  domain, fps, ...}}``). For each annotator a clip is positive when its score is **strictly** above
  that annotator's median over the video's clips. Clips are ranked by the predicted saliency; AP =
  ``ranking.topk_trapezoid_ap`` over the top 5 (positives counted inside the top 5). Mean over
  videos, then over the 20 annotators, in percent. Predictions: one score per 2-s clip
  (``pred_saliency_scores``) or streams, whose fused per-frame scores are averaged per clip [2c, 2c+2).

protocol "aha" (aha_reference.md §6.1; Aha ``test/tvsum/tvsum_utils.py``):
  Gold: ``ydata-tvsum50-anno.tsv``, the annotators' per-native-frame scores averaged and divided by
  5. Each sampled frame of a stream is paired with the gold at its native frame
  (``native_frame_index``, or floor(time * native fps)). Per video: labels = top 50 % with ties
  (k = max(1, int(0.5 n)), g >= sorted(g)[-k]); top-5 mAP (same trapezoid AP), mAP@50 / mAP@15
  (sklearn AP), Spearman / Kendall (0 when undefined), F1@15. Means over videos, plus per category.

Ties in a ranking: the earlier clip/frame ranks first (a stable sort) in both protocols.

Option ``videos_file`` (both protocols): only the listed videos are scored, gold and predictions;
predictions of the gold file's other videos are set aside and counted (``videos_file_subset``).
UMT / QD-DETR report on the 10 videos of ``tvsum_val.jsonl``.
"""
from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from scipy import stats
from sklearn.metrics import f1_score

from data.benchmarks import items as it
from data.benchmarks.ranking import (mean_or_none, pool_by_time, rank_desc, sklearn_ap, top_k_mask,
                                     topk_ap_from_scores, topk_trapezoid_ap)
from data.benchmarks.validate import (InputError, UniqueIds, as_bool, as_int, choice, item_id, match_ids, number,
                                      numbers, read_json_or_jsonl, read_text, resolve_protocol,
                                      sniff_lines)

NAME = "tvsum"
DATASET = "tvsum"
CLIP_LEN = 2.0
CATEGORIES = ("VT", "VU", "GA", "MS", "PK", "PR", "FM", "BK", "BT", "DS")
DEFAULT_PROTOCOL = "umt"
PROTOCOLS: dict[str, dict[str, Any]] = {
    "umt": {"match_number": True, "k": 5, "clip_pool": "mean", "videos_file": None},
    "aha": {"match_number": True, "k": 5, "native_fps": None, "info_file": None, "videos_file": None},
}
HEADLINE = "top5_mAP"


def resolve(protocol: str | None, options: Mapping | None) -> tuple[str, dict]:
    name, opts = resolve_protocol("TVSum", PROTOCOLS, protocol, DEFAULT_PROTOCOL, options)
    as_int(opts["k"], "k", 1)
    as_bool(opts["match_number"], "match_number")
    if name == "umt":
        choice(opts["clip_pool"], ("mean", "sum"), "clip_pool")
    elif opts["native_fps"] is not None and not isinstance(opts["native_fps"], dict):
        number(opts["native_fps"], "option native_fps", positive=True)
    return name, opts


def tunable(protocol: str, opts: Mapping) -> bool:
    return True


def headline(metrics: Mapping, protocol: str) -> tuple[str, float | None]:
    return HEADLINE, metrics.get(HEADLINE)


# ------------------------------------------------------------------------------------ gold


def _is_anno_tsv(path) -> bool:
    first = sniff_lines(path, "TVSum gold")[0]
    parts = first.split("\t")
    return len(parts) == 3 and "," in parts[2]


def load_clip_gold(path) -> dict[str, dict]:
    """vid -> {"labels": (#clips, #annotators), "category", "fps"} from tvsum_val/train.jsonl or tvsum_anno.json."""
    kind, data = read_json_or_jsonl(path, "TVSum clip gold", record_keys=("vid", "label"))
    rows: list[tuple[int | None, str, Any, Any, Any]] = []
    if kind == "jsonl":
        for line, rec in data:
            vid = item_id(rec.get("vid", rec.get("qid")), "vid", path, line)
            rows.append((line, vid, rec.get("label"), rec.get("domain"), None))
    elif isinstance(data, dict):
        for vid, rec in data.items():
            if not isinstance(rec, dict):
                raise InputError(f"video {vid!r}: expected an object with 'anno'", path)
            rows.append((None, vid, rec.get("anno"), rec.get("domain"), rec.get("fps")))
    else:
        raise InputError("expected tvsum_anno.json ({vid: {anno, ...}}) or tvsum_val.jsonl rows", path)
    gold, ids = {}, UniqueIds("video")
    for line, vid, labels, domain, fps in rows:
        ids.add(vid, path, line)
        lab = numbers(labels, f"video {vid} per-clip annotator scores", path, line, ndim=2)
        gold[vid] = {"labels": lab, "category": domain,
                     "fps": None if fps is None else number(fps, f"video {vid} fps", path, line, positive=True)}
    return gold


def check_annotator_rows(rows: Mapping[str, list[tuple[int, str]]], path) -> dict:
    """The annotator rows of ydata-tvsum50-anno.tsv, ``{vid: [(line, digest of the scores text)]}``, checked:
    every video must have the same number of rows (the real file: 20 for each of the 50 videos), else
    a missing or duplicated line would silently change the per-frame mean. Returns ``{"n_annotators",
    "identical_rows": {vid: [[line, first line], ...]}}``: rows identical to an earlier row of the same
    video are named in the error when the counts differ, and otherwise recorded, not refused (two
    annotators may agree exactly: the synthetic data's short clip-constant rows often do)."""
    identical: dict[str, list[list[int]]] = {}
    for vid, lines in rows.items():
        first: dict[str, int] = {}
        for line, digest in lines:
            if digest in first:
                identical.setdefault(vid, []).append([line, first[digest]])
            else:
                first[digest] = line
    counts: dict[int, list[str]] = defaultdict(list)
    for vid, lines in rows.items():
        counts[len(lines)].append(vid)
    if len(counts) > 1:
        usual = max(counts, key=lambda c: len(counts[c]))
        detail = ", ".join(f"{len(counts[c])} with {c}" for c in sorted(counts))
        vid = next(v for v in rows if len(rows[v]) != usual)
        n = len(rows[vid])
        if identical.get(vid):
            line, earlier = identical[vid][0]
            why, at = f"its line {line} repeats line {earlier} (a duplicated line)", line
        else:
            why, at = f"{'more' if n > usual else 'fewer'} than the {usual} of most videos", rows[vid][-1][0]
        raise InputError(f"videos have different annotator row counts ({detail} rows): video {vid} has {n} rows, "
                         f"{why}; every video needs the same annotators (20 in ydata-tvsum50-anno.tsv)", path, at)
    return {"n_annotators": next(iter(counts)) if counts else 0, "identical_rows": identical}


def _digest(text: str) -> str:
    return hashlib.sha1(text.strip().encode()).hexdigest()


def load_frame_gold(tsv_path) -> dict[str, dict]:
    """vid -> {"scores": per-native-frame mean annotator score / 5, "category", "n_annotators",
    "identical_annotator_rows"}; annotator row counts checked (``check_annotator_rows``)."""
    sums: dict[str, np.ndarray] = {}
    count: dict[str, int] = defaultdict(int)
    category: dict[str, str] = {}
    rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for line_no, line in enumerate(read_text(tsv_path, "ydata-tvsum50-anno.tsv").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 3:
            raise InputError("expected 'video_id<TAB>category<TAB>scores'", tsv_path, line_no)
        vid, cat, values = parts
        try:
            s = np.asarray(values.split(","), dtype=np.float64)
        except ValueError:
            raise InputError(f"{vid}: annotator scores must be comma-separated numbers", tsv_path, line_no) from None
        s = numbers(s, f"{vid} annotator scores", tsv_path, line_no)
        if vid in sums and len(sums[vid]) != len(s):
            raise InputError(f"{vid}: annotators disagree on the frame count", tsv_path, line_no)
        sums[vid] = s if vid not in sums else sums[vid] + s
        count[vid] += 1
        category[vid] = cat
        rows[vid].append((line_no, _digest(values)))
    identical = check_annotator_rows(rows, tsv_path)["identical_rows"]
    return {vid: {"scores": sums[vid] / count[vid] / 5.0, "category": category[vid], "n_annotators": count[vid],
                  "identical_annotator_rows": len(identical.get(vid, []))}
            for vid in sums}


def read_video_list(path) -> list[str]:
    """Video ids from a JSONL (``vid``/``qid``/``id`` per row), a JSON list, or a JSON object's keys."""
    kind, data = read_json_or_jsonl(path, "video list", record_keys=("vid", "qid", "id"))
    if kind == "jsonl":
        return [item_id(r.get("vid", r.get("qid", r.get("id"))), "video id", path, ln) for ln, r in data]
    return [item_id(v, "video id", path) for v in (data if isinstance(data, list) else data.keys())]


def load_gold(path, protocol: str, opts: Mapping) -> dict[str, dict]:
    """The gold of ``protocol``: per-clip labels (umt) or per-native-frame scores (aha); format by content."""
    tsv = _is_anno_tsv(path)
    if protocol == "umt":
        if tsv:
            raise ValueError(f"{path} is ydata-tvsum50-anno.tsv (per-frame scores): the umt protocol needs per-clip "
                             "labels (tvsum_anno.json or tvsum_val.jsonl); use protocol aha for the tsv")
        gold = load_clip_gold(path)
    else:
        if not tsv:
            raise ValueError(f"the aha protocol reads ydata-tvsum50-anno.tsv (per-frame scores), got {path}")
        gold = load_frame_gold(path)
        fps_table = _native_fps_table(opts, path)
        for vid, g in gold.items():
            g["fps"] = fps_table.get(vid)
    if opts.get("videos_file"):
        keep = read_video_list(opts["videos_file"])
        ids = UniqueIds("video in the videos_file")
        for v in keep:
            ids.add(v, opts["videos_file"])
        unknown = [v for v in keep if v not in gold]
        if unknown:
            raise InputError(f"{len(unknown)} listed videos are not in the gold, e.g. {unknown[:5]}", opts["videos_file"])
        # the gold file's other videos stay known, so their predictions are set aside (counted by
        # ``score``) rather than refused: a prediction file of all 50 videos scores on the 10 listed
        listed = set(keep)
        gold = {v: {**gold[v], IN_VIDEOS_FILE: v in listed} for v in [*keep, *(v for v in gold if v not in listed)]}
    return gold


IN_VIDEOS_FILE = "in_videos_file"  # gold item flag set by load_gold under the videos_file option


def restrict_to_videos_file(preds: Mapping[str, Any], gold: Mapping[str, dict]) -> tuple[dict, dict, dict | None]:
    """(predictions, gold, record) of the videos the videos_file lists, when ``load_gold`` flagged them:
    predictions of the gold file's other videos are set aside and counted; ids unknown to the gold file
    stay in (``match_ids`` refuses them). Unflagged gold (no videos_file) passes unchanged, record None."""
    flags = [g.get(IN_VIDEOS_FILE) for g in gold.values()]
    if not flags or any(f is None for f in flags):
        return dict(preds), dict(gold), None
    outside = {v for v, g in gold.items() if not g[IN_VIDEOS_FILE]}
    set_aside = [v for v in preds if v in outside]
    kept_gold = {v: g for v, g in gold.items() if v not in outside}
    if not kept_gold:
        raise ValueError("none of the videos_file's videos is among the gold videos to score")
    record = {"restricts": "the gold and the predictions: only the videos it lists are scored",
              "n_listed_scored": len(kept_gold), "n_predictions_set_aside": len(set_aside),
              "set_aside_ids": set_aside}
    return {v: p for v, p in preds.items() if v not in outside}, kept_gold, record


def _native_fps_table(opts: Mapping, gold_file) -> dict[str, float]:
    if isinstance(opts.get("native_fps"), dict):
        return {str(k): number(v, f"native_fps[{k}]", positive=True) for k, v in opts["native_fps"].items()}
    info = opts.get("info_file")
    if info is None:
        sibling = Path(gold_file).with_name("tvsum_anno.json")
        info = sibling if sibling.exists() else None
    if info is None:
        return {}
    return {vid: g["fps"] for vid, g in load_clip_gold(info).items() if g["fps"] is not None}


# ---------------------------------------------------------------------------- predictions


def from_stream(stream, gold_item: Mapping, protocol: str, opts: Mapping) -> dict:
    """A ``ProcessedStream`` -> this benchmark's prediction for one video."""
    if protocol == "umt":
        s, counts = pool_by_time(stream.time, stream.fused, CLIP_LEN, len(gold_item["labels"]), opts["clip_pool"])
        return {"clip_scores": s, "pool": counts}
    n_native = len(gold_item["scores"])
    check_native_clock(stream, gold_item.get("fps"), n_native)
    if stream.native_frame_index is not None:
        idx = np.asarray(stream.native_frame_index, dtype=np.int64)
        if len(idx) != len(stream.time) or np.any(idx < 0) or np.any(np.diff(idx) < 0):
            raise InputError(f"video {stream.id}: native_frame_index must give one non-negative, non-decreasing "
                             f"index per frame ({len(idx)} for {len(stream.time)} frames)")
        source = "native_frame_index"
    else:
        opt = opts.get("native_fps")
        fps = stream.native_fps or (opt if isinstance(opt, (int, float)) else None) or gold_item.get("fps")
        if fps is None:
            raise InputError(f"video {stream.id}: no native_frame_index and no native fps; pass the option "
                             "native_fps=<number> or info_file=<tvsum_anno.json>")
        idx = np.floor(np.asarray(stream.time) * float(fps) + 1e-6).astype(np.int64)
        source = "native fps"
    clipped = int(np.sum(idx >= n_native))
    return {"frame_scores": np.asarray(stream.fused, dtype=np.float64), "native_index": np.minimum(idx, n_native - 1),
            "clipped": clipped, "alignment": source}


def check_native_clock(stream, annotated_fps: float | None, n_native: int) -> None:
    """The aha protocol pairs each sampled frame with the gold of its native frame: that is right only
    when the streamed file's native frames are the annotation's. A file at another frame rate (a
    25-fps re-encode of a 29.97-fps video) or with another frame count (another cut) is refused,
    since its native indices (or times x its fps) point at other gold frames, silently."""
    nfps, dur = stream.native_fps, stream.duration
    if not nfps:
        return
    if annotated_fps and abs(nfps - annotated_fps) > 0.01 * annotated_fps:
        raise InputError(f"video {stream.id}: the streamed file runs at {nfps:g} fps, the annotated video at "
                         f"{annotated_fps:g} fps: its native frames are not the annotation's (another encoding); "
                         "stream the original TVSum video, or score with the umt protocol (per 2-s clip, by time)")
    if dur:
        n_file = nfps * dur
        if abs(n_file - n_native) > max(0.02 * n_native, nfps):
            raise InputError(f"video {stream.id}: the streamed file has about {n_file:.0f} native frames ({dur:g} s at "
                             f"{nfps:g} fps), the annotation {n_native}: another cut or encoding of the video, whose "
                             "native frames are not the annotated ones; stream the original TVSum video")


def from_record(rec: Mapping, gold_item: Mapping, protocol: str, opts: Mapping, path=None, line=None) -> dict:
    """An official-format record (``pred_saliency_scores``, one per 2-s clip) -> a prediction."""
    vid = rec.get("vid", rec.get("id", rec.get("qid")))
    if protocol != "umt":
        raise InputError(f"video {vid}: the aha protocol needs stream predictions (per-frame 'frames')", path, line)
    if "pred_saliency_scores" not in rec:
        raise InputError(f"video {vid}: neither 'frames' (stream) nor 'pred_saliency_scores'", path, line)
    s = numbers(rec["pred_saliency_scores"], f"video {vid} pred_saliency_scores", path, line)
    n = len(gold_item["labels"])
    if len(s) != n:
        raise InputError(f"video {vid}: {len(s)} pred_saliency_scores for {n} annotated 2-s clips", path, line)
    return {"clip_scores": s, "pool": None}


def record_id(rec: Mapping, path=None, line=None) -> str:
    for k in ("id", "vid", "qid", "video_id"):
        if k in rec:
            return item_id(rec[k], k, path, line)
    raise InputError("prediction record without an id ('id', 'vid', 'qid' or 'video_id')", path, line)


# ---------------------------------------------------------------------------------- metrics


def umt_top5_map(clip_scores: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], k: int = 5) -> dict:
    """UMT TVSum top-k mAP (percent) with per-video and per-annotator means; same #annotators per video."""
    vids = list(clip_scores)
    if not vids:
        raise ValueError("no video to score")
    n_ann = {labels[v].shape[1] for v in vids}
    if len(n_ann) != 1:
        raise ValueError(f"videos have different annotator counts: {sorted(n_ann)}")
    ap = np.zeros((len(vids), n_ann.pop()))  # (video, annotator)
    for vi, vid in enumerate(vids):
        pred = numbers(clip_scores[vid], f"video {vid} clip scores")
        anno = labels[vid]
        if len(pred) != len(anno):
            raise ValueError(f"video {vid}: {len(pred)} clip scores for {len(anno)} annotated clips")
        ranked = anno[rank_desc(pred)]
        positive = ranked > np.median(anno, axis=0)  # strict: ties at the median are negative
        ap[vi] = [topk_trapezoid_ap(positive[:, i].astype(np.float64), k) for i in range(anno.shape[1])]
    per_annotator = ap.mean(axis=0)  # mean over videos first, as UMT
    return {"top5_mAP": 100.0 * float(per_annotator.mean()),
            "per_video": {vid: 100.0 * float(ap[vi].mean()) for vi, vid in enumerate(vids)},
            "per_annotator": [100.0 * float(v) for v in per_annotator]}


def binarize_top(g: np.ndarray, rho: float) -> np.ndarray:
    """Aha ``binarize_gt``: positives = g >= the k-th largest value, k = max(1, int(rho*n)) (ties included)."""
    k = max(1, int(rho * len(g)))
    return (g >= np.sort(g)[-k]).astype(np.int64)


def _corr(fn, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) <= 1 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0  # undefined correlation: counted as 0 (Aha: 0 when n <= 1)
    return float(fn(a, b).statistic)


def aha_video_metrics(gt, pred, k: int = 5) -> dict:
    """Aha's per-video metrics on paired per-frame gold and prediction (AP/F1 in [0, 1])."""
    g = numbers(gt, "gold scores")
    p = numbers(pred, "predicted scores")
    if len(g) != len(p):
        raise ValueError(f"{len(g)} gold scores for {len(p)} predictions")
    top50, top15 = binarize_top(g, 0.5), binarize_top(g, 0.15)
    pred15 = top_k_mask(p, max(1, int(0.15 * len(g)))).astype(np.int64)
    return {"top5_mAP": topk_ap_from_scores(top50, p, k), "mAP50": sklearn_ap(top50, p), "mAP15": sklearn_ap(top15, p),
            "spearman": _corr(stats.spearmanr, g, p), "kendall": _corr(stats.kendalltau, g, p),
            "F1_15": float(f1_score(top15, pred15, zero_division=0))}


AHA_METRICS = ("top5_mAP", "mAP50", "mAP15", "spearman", "kendall", "F1_15")
AHA_PERCENT = ("top5_mAP", "mAP50", "mAP15", "F1_15")


def _aha_block(per_video: Mapping[str, dict], vids) -> dict:
    out = {}
    for m in AHA_METRICS:
        v = mean_or_none(per_video[x][m] for x in vids)
        out[m] = None if v is None else (100.0 * v if m in AHA_PERCENT else v)
    out["n_videos"] = len(vids)
    return out


def _categories(gold: Mapping, vids) -> dict[str, list[str]]:
    by_cat = defaultdict(list)
    for v in vids:
        by_cat[gold[v].get("category") or "unknown"].append(v)
    order = [c for c in CATEGORIES if c in by_cat] + sorted(c for c in by_cat if c not in CATEGORIES)
    return {c: by_cat[c] for c in order}


def _one_count(counts: list) -> int | None:
    """The annotator count shared by the scored videos (None when the gold does not say)."""
    known = {c for c in counts if c is not None}
    if len(known) > 1:
        raise ValueError(f"videos have different annotator counts: {sorted(known)}")
    return known.pop() if known else None


def score(preds: Mapping[str, dict], gold: Mapping[str, dict], protocol: str | None = None,
          options: Mapping | None = None) -> dict:
    """Pure scorer: {vid: prediction} against {vid: gold} -> {"metrics", "per_item", "record"}."""
    name, opts = resolve(protocol, options)
    preds, gold, subset = restrict_to_videos_file(preds, gold)
    vids, id_record = match_ids(preds, gold, missing="error" if opts["match_number"] else "drop",
                                extra="error", what="video")
    k = int(opts["k"])
    if name == "umt":
        res = umt_top5_map({v: preds[v]["clip_scores"] for v in vids}, {v: gold[v]["labels"] for v in vids}, k)
        cats = _categories(gold, vids)
        metrics = {"top5_mAP": res["top5_mAP"], "n_videos": len(vids),
                   "per_category": {c: float(np.mean([res["per_video"][v] for v in vs])) for c, vs in cats.items()},
                   "per_annotator": res["per_annotator"]}
        per_item = {v: {"top5_AP": res["per_video"][v]} for v in vids}
        pooled = [preds[v]["pool"] for v in vids if preds[v].get("pool")]
        record = {
            "labels": "per annotator: clip score > that annotator's median over the video's 2-s clips (strict)",
            "ap": f"top-{k} trapezoid AP (UMT TVSum.evaluate), positives counted inside the top {k}",
            "averaging": "mean over videos, then over annotators; per_category = mean of the category's video APs",
            "clip_length_s": CLIP_LEN, "n_annotators": len(res["per_annotator"]),
            "stream_clips": (f"fused per-frame scores pooled per 2-s clip [2c, 2c+2) ({opts['clip_pool']}; empty "
                             "interior clips interpolated, edge clips = the lowest clip score)") if pooled else None,
            "clip_pooling_counts": {key: sum(c[key] for c in pooled) for key in pooled[0]} if pooled else None}
    else:
        per_video = {v: aha_video_metrics(gold[v]["scores"][preds[v]["native_index"]], preds[v]["frame_scores"], k)
                     for v in vids}
        cats = _categories(gold, vids)
        metrics = {**_aha_block(per_video, vids), "per_category": {c: _aha_block(per_video, vs) for c, vs in cats.items()}}
        per_item = {v: {**per_video[v], "n_native_clipped": preds[v]["clipped"], "alignment": preds[v]["alignment"]}
                    for v in vids}
        record = {
            "gold": "ydata-tvsum50-anno.tsv: mean of the annotators per native frame, / 5",
            "alignment": "each sampled frame paired with the gold at its native frame (native_frame_index, else "
                         "floor(time * native fps)); indices past the end clipped (n_native_clipped per item)",
            "labels": "top-rho with ties: k = max(1, int(rho * n)), positive = g >= sorted(g)[-k]",
            "top5_mAP": f"top-{k} trapezoid AP against the rho = 0.5 labels",
            "mAP50_mAP15": "sklearn average_precision_score against the rho = 0.5 / 0.15 labels",
            "correlations": "scipy spearmanr / kendalltau (tau-b) per video; 0 when n <= 1 or a series is constant",
            "F1_15": "top max(1, int(0.15 n)) predicted frames vs the rho = 0.15 labels, sklearn f1_score",
            "averaging": "mean over videos (and per category); AP/F1 in percent, correlations in [-1, 1]",
            "n_annotators": _one_count([gold[v].get("n_annotators") for v in vids]),
            "identical_annotator_rows": sum(gold[v].get("identical_annotator_rows") or 0 for v in vids)}
    record.update(dataset=DATASET, protocol=name, k=k, ties="stable ranking: the earlier clip/frame first",
                  videos_file=None if opts["videos_file"] is None else str(opts["videos_file"]),
                  videos_file_subset=subset, ids=id_record)
    return {"metrics": metrics, "per_item": per_item, "record": record}


# ------------------------------------------------------------------------- raw annotations


# ``*_reference``: the reference's own tables (data.prompts.REFERENCE_TVSUM_*), which the paper's
# ambiguous / unrelated evaluations used; ``ambiguous`` / ``unrelated``: this project's wording and
# a seeded draw of another category's title
TVSUM_PROMPTS = ("title", "ambiguous", "unrelated", "none", "ambiguous_reference", "unrelated_reference")
DEFAULT_TEMPLATE = "random"
DEFAULT_VIDEO_TEMPLATE = "{video_id}.mp4"
VIDEO_FIELDS = ("video_id",)
INFO_COLUMNS = ("category", "video_id", "title", "url", "length")


def parse_clock(text: str) -> float:
    """``"m:ss"`` / ``"h:mm:ss"`` -> seconds."""
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"length {text!r} is not m:ss")
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + int(p)
    return seconds


def clock(seconds: int) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def read_info(path) -> list[dict]:
    """ydata-tvsum50-info.tsv (header: category, video_id, title, url, length) -> rows with ``seconds``."""
    from data.prompts import TVSUM_CATEGORY_NAMES

    rows = []
    ids = UniqueIds("video")
    for line, r in it.read_table(path, "TVSum info tsv", ("category", "video_id", "title", "length"), delimiter="\t"):
        if not r["video_id"] or not r["title"] or r["category"] not in TVSUM_CATEGORY_NAMES:
            raise InputError(f"bad row (category {r['category']!r}, video {r['video_id']!r})", path, line)
        ids.add(r["video_id"], path, line)
        try:
            r["seconds"] = parse_clock(r["length"])
        except (ValueError, AttributeError) as e:
            raise InputError(str(e), path, line) from None
        if not r["seconds"] > 0:
            raise InputError(f"video {r['video_id']}: zero length {r['length']!r}", path, line)
        rows.append(r)
    if not rows:
        raise InputError("TVSum info tsv has no videos", path)
    return rows


def read_anno_index(path, report: dict | None = None) -> dict[str, tuple[str, int]]:
    """ydata-tvsum50-anno.tsv -> {video_id: (category, number of annotator rows)} (scores not parsed);
    the row counts checked as the scorer does (``check_annotator_rows``; ``report`` receives
    ``n_annotators`` and ``identical_annotator_rows``)."""
    index: dict[str, tuple[str, int]] = {}
    rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for i, line in enumerate(read_text(path, "TVSum anno tsv").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise InputError("expected 'video_id<TAB>category<TAB>scores'", path, i)
        vid, cat = parts[0], parts[1]
        prev_cat, n = index.get(vid, (cat, 0))
        if prev_cat != cat:
            raise InputError(f"video {vid} listed under categories {prev_cat} and {cat}", path, i)
        index[vid] = (cat, n + 1)
        rows[vid].append((i, _digest(parts[2])))
    checked = check_annotator_rows(rows, path)
    if report is not None:
        report.update(n_annotators=checked["n_annotators"],
                      identical_annotator_rows=sum(len(v) for v in checked["identical_rows"].values()))
    return index


def _prompt_title(row: dict, rows: list[dict], variant: str, seed: int) -> tuple[str, str | None]:
    """The text that goes into the template for one video, and the video it came from."""
    from data.prompts import TVSUM_AMBIGUOUS_TITLES, TVSUM_CATEGORY_AMBIGUOUS, item_rng

    vid, title = row["video_id"], row["title"]
    if variant == "title":
        return title, vid
    if variant == "none":
        return "", None
    if variant in ("ambiguous_reference", "unrelated_reference"):
        from data.prompts import REFERENCE_TVSUM_AMBIGUOUS_TITLES, REFERENCE_TVSUM_UNRELATED_TITLES

        table = REFERENCE_TVSUM_AMBIGUOUS_TITLES if variant == "ambiguous_reference" else REFERENCE_TVSUM_UNRELATED_TITLES
        if vid not in table:  # the reference's tables hold the 50 official videos only
            raise ValueError(f"--prompt {variant}: video {vid} is not in the reference's table (the 50 TVSum videos)")
        if variant == "ambiguous_reference":
            return table[vid], None
        source, text = table[vid]
        return text, source
    if variant == "ambiguous":
        text = TVSUM_AMBIGUOUS_TITLES.get(vid) or TVSUM_CATEGORY_AMBIGUOUS[row["category"]]
        if text.casefold() == title.casefold():
            raise ValueError(f"ambiguous title for {vid} equals its real title {title!r}")
        return text, None
    # unrelated: sorted, so the choice depends only on (seed, video, pool), not on the row order
    pool = sorted((r for r in rows if r["category"] != row["category"] and r["title"].casefold() != title.casefold()),
                  key=lambda r: r["video_id"])
    if not pool:
        raise ValueError(f"no video of another category to borrow an unrelated title for {vid}")
    other = item_rng(seed, vid, "unrelated").choice(pool)
    return other["title"], other["video_id"]


def convert(input_path, *, anno_path=None, seed: int = 0, template: str = DEFAULT_TEMPLATE, prompt: str = "title",
            video_template: str = DEFAULT_VIDEO_TEMPLATE, report: dict | None = None) -> list[dict]:
    """TVSum info tsv -> items (id = video_id). ``prompt``: title | ambiguous | unrelated | none (w/o-Q).
    With ``anno_path``, ``report`` (if given) receives ``n_annotators`` (``read_anno_index``)."""
    from data.prompts import TVSUM_CATEGORY_NAMES, parse_template_mode, render_query

    choice(prompt, TVSUM_PROMPTS, "TVSum prompt variant")
    parse_template_mode(template)  # fail on a bad spec even for the query-free variant
    rows = read_info(input_path)
    if anno_path is not None:
        anno = read_anno_index(anno_path, report)
        info = {r["video_id"]: r["category"] for r in rows}
        only_info, only_anno = sorted(set(info) - set(anno)), sorted(set(anno) - set(info))
        if only_info or only_anno:
            raise ValueError(f"TVSum info {input_path} and anno {anno_path} disagree: {len(only_info)} videos only in "
                             f"info {only_info[:5]}, {len(only_anno)} only in anno {only_anno[:5]}")
        wrong = sorted(v for v, c in info.items() if anno[v][0] != c)
        if wrong:
            raise ValueError(f"TVSum info {input_path} and anno {anno_path} disagree on the category of {wrong[:5]}")
    out = []
    for row in rows:
        vid = row["video_id"]
        text, source = _prompt_title(row, rows, prompt, seed)
        query, template_id = ("", None) if prompt == "none" else render_query(text, template, seed, vid)
        gold = {"category": row["category"], "category_name": TVSUM_CATEGORY_NAMES[row["category"]], "title": row["title"]}
        if prompt in ("unrelated", "unrelated_reference"):
            gold["prompt_source_video"] = source
        out.append(it.make_item(vid, "tvsum", it.format_video(video_template, "tvsum", VIDEO_FIELDS, video_id=vid),
                                query, duration=row["seconds"], template_id=template_id, gold=gold,
                                prompt_variant=prompt))
    return out


def anno_tsv_text(rows) -> str:
    """ydata-tvsum50-anno.tsv text from (video_id, category, per-native-frame integer scores) rows."""
    return "".join(f"{vid}\t{cat}\t{','.join(str(int(v)) for v in scores)}\n" for vid, cat, scores in rows)


def info_tsv_text(rows) -> str:
    """ydata-tvsum50-info.tsv text from dicts with INFO_COLUMNS (length as m:ss)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(INFO_COLUMNS), delimiter="\t", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()

