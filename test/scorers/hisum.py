"""Mr.HiSum scorer: the official protocol (default) and Aha's variant.

Gold: an h5 file with one group per video, ``/<video_id>/{gtscore, change_points, gt_summary}``
(``gtscore``: the Most-Replayed score per second, 0..1; ``change_points``: (S, 2) KTS shots
[start, end] in frames; ``gt_summary``: the 0/1 knapsack summary, (n,) or (users, n)), plus
optionally the split json (``mr_hisum_split.json``; option ``split_file``, key ``split_key``,
default "test_keys") selecting the videos. Without a split file every video of the h5 is scored.

Predictions: stream predictions (fused per-frame scores averaged per second [s, s+1)) or
records ``{"id": video_id, "pred_scores": [one per second]}``.

protocol "official" (official_scorers.md §3.4; MRHiSum/MR.HiSum ``Solver.evaluate``):
  * mAP@50 / mAP@15: ground truth and prediction are averaged over uniform 5-s segments (the
    last one shorter); positives are the top len//2 (top 50) or int(0.15 len) (top 15) GT
    segments (exactly that many; ties: earlier segment first); AP = sklearn
    ``average_precision_score`` of the predicted segment scores (the official softmax over them
    is omitted: it does not change the ranking); mean over videos, in percent. A video whose
    label set has no positive (int(0.15 len) = 0 happens for videos shorter than 35 s; no
    test-split video is, they run 121-300 s) has no defined AP: it is left out of that mean by
    default (option ``zero_positive="zero"`` counts it as 0) and counted in the record.
  * F1: the per-second prediction is averaged over each KTS shot [start, end] (inclusive);
    a 0/1 knapsack (``knapsack_01``) picks shots to maximise the summed shot score within
    floor(0.15 n) frames, where a shot weighs end - start frames (what the official dataset code
    computes; option ``nfps="inclusive"`` uses end - start + 1); the summary concatenates one
    block of that many 0/1 per shot and is compared with ``gt_summary`` (both zero-padded to the
    longer): F1 = 2PR/(P+R) in percent (0 when P+R = 0), averaged over ``gt_summary`` rows, then
    over videos. The official 1e-8 smoothing of P and R is left out.
  * If a prediction covers fewer seconds than ``gtscore`` has, the uncovered tail takes the
    video's lowest predicted score (``ap.pool_by_time``); seconds past the end are ignored.

protocol "aha" (aha_reference.md §6.2; Aha ``test/hisum/hisum_eval.py``):
  * pairs prediction second i with ``gtscore[i]`` over the seconds the prediction covers;
    ``lag_one_frame=True`` reproduces the reference's pairing of pred[i] with gt[i-1] (i >= 1);
  * mAP@50 / mAP@15 on 1-s segments with k = max(1, int(rho n)) positives;
  * F1: uniform 5-s shots, greedily taken by mean predicted score while they fit in
    int(0.15 n) frames, against the frames with gtscore >= its 85th percentile (sklearn f1);
  * also MSE, MAE, Pearson, Spearman (0 when a series is constant).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
from scipy import stats
from sklearn.metrics import f1_score, mean_absolute_error, mean_squared_error

from test.postprocess import FusionParams, fuse
from test.predictions import StreamPrediction
from test.scorers.ap import (as_finite_1d, match_ids, mean_or_none, pool_by_time, rank_desc, sklearn_ap,
                             top_k_mask, uniform_segment_means)
from test.scorers.options import resolve_protocol
from utils.io import iter_jsonl, read_json

DATASET = "mr_hisum"

PROTOCOLS: dict[str, dict[str, Any]] = {
    "official": {"match_number": True, "split_file": None, "split_key": "test_keys", "segment_s": 5,
                 "budget": 0.15, "nfps": "official", "zero_positive": "skip", "clip_pool": "mean"},
    "aha": {"match_number": True, "split_file": None, "split_key": "test_keys", "budget": 0.15,
            "lag_one_frame": False, "f1_shot_s": 5, "clip_pool": "mean"},
}


# ------------------------------------------------------------------------------------ gold


def load_gold(h5_path, video_ids=None, need_summary: bool = True) -> dict[str, dict]:
    """vid -> {"gtscore", "change_points", "gt_summary"} for ``video_ids`` (all groups when None)."""
    gold = {}
    with h5py.File(h5_path, "r") as f:
        ids = list(f.keys()) if video_ids is None else list(video_ids)
        for vid in ids:
            if vid not in f:
                raise ValueError(f"{h5_path}: no group for video {vid!r}")
            grp = f[vid]
            if "gtscore" not in grp:
                raise ValueError(f"{h5_path}: {vid} has no gtscore")
            g = as_finite_1d(np.asarray(grp["gtscore"]), f"{vid} gtscore")
            entry = {"gtscore": g, "change_points": None, "gt_summary": None}
            if need_summary:
                for key in ("change_points", "gt_summary"):
                    if key not in grp:
                        raise ValueError(f"{h5_path}: {vid} has no {key} (needed for the official F1)")
                cps = np.asarray(grp["change_points"], dtype=np.int64).reshape(-1, 2)
                if len(cps) == 0 or cps.min() < 0 or cps.max() >= len(g) or np.any(cps[:, 1] < cps[:, 0]):
                    raise ValueError(f"{h5_path}: {vid} change_points must be [start, end] frame pairs inside the video")
                summ = np.asarray(grp["gt_summary"], dtype=np.float64)
                entry["change_points"] = cps
                entry["gt_summary"] = summ.reshape(1, -1) if summ.ndim == 1 else summ
            gold[vid] = entry
    if not gold:
        raise ValueError(f"{h5_path}: no video to score")
    return gold


def split_videos(split_file, split_key: str) -> list[str]:
    data = read_json(split_file)
    if split_key not in data:
        raise ValueError(f"{split_file}: no key {split_key!r} (has {sorted(data)})")
    return [str(v) for v in data[split_key]]


# ---------------------------------------------------------------------------------- knapsack


def knapsack_01(values, weights, capacity: int) -> list[int]:
    """Indices of the items maximising sum(values) with sum(weights) <= capacity (0/1 knapsack DP).

    Backtracking takes an item only when it changes the optimum, so among equal-value choices the
    one without the later item wins (the vsumm/Mr.HiSum ``knapSack`` convention).
    """
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.int64)
    if len(v) != len(w) or np.any(w < 0) or capacity < 0:
        raise ValueError("knapsack needs as many values as weights, weights >= 0 and capacity >= 0")
    table = np.zeros((len(v) + 1, capacity + 1))
    for i in range(1, len(v) + 1):
        prev, wi = table[i - 1], w[i - 1]
        row = prev.copy()
        if wi <= capacity:
            take = prev[: capacity + 1 - wi] + v[i - 1]
            row[wi:] = np.maximum(prev[wi:], take)
        table[i] = row
    picks, c = [], capacity
    for i in range(len(v), 0, -1):
        if table[i, c] != table[i - 1, c]:
            picks.append(i - 1)
            c -= w[i - 1]
    return picks[::-1]


def knapsack_summary(frame_scores, change_points, budget: float = 0.15, nfps: str = "official") -> np.ndarray:
    """0/1 keyshot summary (official ``generate_summary`` with picks = every frame)."""
    s = as_finite_1d(frame_scores, "frame scores")
    cps = np.asarray(change_points, dtype=np.int64).reshape(-1, 2)
    seg_score = np.array([s[a:b + 1].mean() for a, b in cps])
    if nfps == "official":
        seg_len = cps[:, 1] - cps[:, 0]
    elif nfps == "inclusive":
        seg_len = cps[:, 1] - cps[:, 0] + 1
    else:
        raise ValueError(f"nfps must be 'official' or 'inclusive', got {nfps!r}")
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
    """AP of ``pred`` against the top-rho GT segments (uniform ``segment_len``-frame means), in [0, 1].

    official: k = len//2 for rho = 0.5, else int(rho * len) (may be 0 -> None, no positive);
    aha: k = max(1, int(rho * len)).
    """
    g = uniform_segment_means(gt, segment_len)
    p = uniform_segment_means(pred, segment_len)
    if len(g) != len(p):
        raise ValueError(f"{len(g)} GT segments but {len(p)} predicted segments")
    if protocol == "official":
        k = len(g) // 2 if rho == 0.5 else int(len(g) * rho)
    elif protocol == "aha":
        k = max(1, int(rho * len(g)))
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    return sklearn_ap(top_k_mask(g, k).astype(np.int64), p)


def greedy_shot_summary(pred, shot_len: int = 5, budget: float = 0.15) -> np.ndarray:
    """Aha's F1 summary: uniform shots taken by mean score (ties: earlier) while they fit the budget."""
    p = as_finite_1d(pred, "predicted scores")
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
    """mAP50 / mAP15 in [0, 1] (None: no positive) and F1 in percent for one video."""
    g = as_finite_1d(gtscore, "gtscore")
    p = as_finite_1d(pred, "predicted scores")
    if len(g) != len(p):
        raise ValueError(f"{len(g)} gtscore values but {len(p)} predicted seconds")
    out = {"mAP50": segment_map(g, p, segment_s, 0.5, "official"),
           "mAP15": segment_map(g, p, segment_s, 0.15, "official")}
    if change_points is not None:
        out["F1"] = summary_f1(knapsack_summary(p, change_points, budget, nfps), gt_summary)
    return out


def aha_video_metrics(gt, pred, budget: float = 0.15, f1_shot_s: int = 5) -> dict:
    """Aha's per-video metrics on already paired per-second arrays."""
    g = as_finite_1d(gt, "gtscore")
    p = as_finite_1d(pred, "predicted scores")
    if len(g) != len(p):
        raise ValueError(f"{len(g)} gtscore values but {len(p)} predicted seconds")
    gt_sel = g >= np.percentile(g, 100 * (1 - budget))
    return {
        "mAP50": segment_map(g, p, 1, 0.5, "aha"),
        "mAP15": segment_map(g, p, 1, 0.15, "aha"),
        "F1": 100.0 * float(f1_score(gt_sel, greedy_shot_summary(p, f1_shot_s, budget), zero_division=0)),
        "mse": float(mean_squared_error(g, p)),
        "mae": float(mean_absolute_error(g, p)),
        "pearson": _corr(stats.pearsonr, g, p),
        "spearman": _corr(stats.spearmanr, g, p),
    }


# --------------------------------------------------------------------------- predictions


def _record_id(rec: dict) -> str:
    for k in ("id", "video_id", "vid"):
        if rec.get(k) is not None:
            return str(rec[k])
    raise ValueError("prediction record without an id ('id', 'video_id' or 'vid')")


def per_second_scores(rec: dict, n_seconds: int | None, fusion: FusionParams, clip_pool: str
                      ) -> tuple[np.ndarray, dict | None]:
    """Per-second prediction: ``pred_scores`` as given, or fused stream scores pooled per second.

    ``n_seconds`` None -> as many seconds as the prediction covers (last frame's second + 1).
    """
    vid = _record_id(rec)
    if "frames" in rec:
        p = StreamPrediction.from_record(rec)
        if len(p.time) == 0:
            raise ValueError(f"video {vid}: the prediction has no frame")
        fused = fuse(p.informative, p.relevance, p.uncertainty, fusion)
        covered = int(np.floor(np.max(p.time) + 1e-9)) + 1  # seconds up to the last frame
        return pool_by_time(p.time, fused, 1.0, covered if n_seconds is None else n_seconds, clip_pool)
    if rec.get("pred_scores") is None:
        raise ValueError(f"video {vid}: neither 'frames' (stream prediction) nor 'pred_scores'")
    s = as_finite_1d(rec["pred_scores"], f"video {vid} pred_scores")
    if n_seconds is None or len(s) == n_seconds:
        return s, None
    if len(s) > n_seconds:
        return s[:n_seconds], {"interpolated_bins": 0, "edge_filled_bins": 0, "frames_past_end": len(s) - n_seconds}
    padded = np.full(n_seconds, s.min())
    padded[: len(s)] = s
    return padded, {"interpolated_bins": 0, "edge_filled_bins": n_seconds - len(s), "frames_past_end": 0}


def _resolve_options(protocol: str | None, options: dict | None) -> tuple[str, dict]:
    name, opts = resolve_protocol("Mr.HiSum", PROTOCOLS, protocol, "official", options)
    if not 0 < float(opts["budget"]) < 1:
        raise ValueError(f"budget must be in (0, 1), got {opts['budget']}")
    if opts.get("zero_positive", "skip") not in ("skip", "zero"):
        raise ValueError(f"zero_positive must be 'skip' or 'zero', got {opts['zero_positive']!r}")
    return name, opts


def _add_counts(total: dict, counts: dict | None) -> None:
    if counts:
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v


def evaluate_files(pred_file: str, gold_file: str, protocol: str | None = None,
                   fusion: FusionParams | None = None, options: dict | None = None) -> dict:
    """Mr.HiSum scores of a prediction jsonl against the h5 gold (see the module doc)."""
    name, opts = _resolve_options(protocol, options)
    fusion = fusion or FusionParams()
    preds = {}
    for rec in iter_jsonl(pred_file):
        preds[_record_id(rec)] = rec
    if not preds:
        raise ValueError(f"{pred_file}: no prediction")
    selected = split_videos(opts["split_file"], opts["split_key"]) if opts["split_file"] else None
    if selected is None:
        with h5py.File(gold_file, "r") as f:
            selected = list(f.keys())
    vids, id_record = match_ids(preds.keys(), selected, opts["match_number"], "video")
    gold = load_gold(gold_file, vids, need_summary=(name == "official"))
    pool_totals: dict[str, int] = {}
    per_video, streams = {}, False
    for vid in vids:
        g = gold[vid]["gtscore"]
        streams = streams or "frames" in preds[vid]
        if name == "official":
            p, counts = per_second_scores(preds[vid], len(g), fusion, opts["clip_pool"])
            _add_counts(pool_totals, counts)
            per_video[vid] = official_video_metrics(g, p, gold[vid]["change_points"], gold[vid]["gt_summary"],
                                                    int(opts["segment_s"]), float(opts["budget"]), opts["nfps"])
        else:
            p, counts = per_second_scores(preds[vid], None, fusion, opts["clip_pool"])
            _add_counts(pool_totals, counts)
            m = min(len(p), len(g))
            if opts["lag_one_frame"]:
                pp, gg = p[1:m], g[: max(0, m - 1)]
            else:
                pp, gg = p[:m], g[:m]
            if len(pp) == 0:
                raise ValueError(f"video {vid}: nothing to pair (prediction covers {len(p)} s)")
            per_video[vid] = aha_video_metrics(gg, pp, float(opts["budget"]), int(opts["f1_shot_s"]))
    metrics: dict[str, Any] = {}
    skipped = {}
    for key in ("mAP50", "mAP15"):
        vals = [v[key] for v in per_video.values()]
        skipped[key] = sum(x is None for x in vals)
        if name == "official" and opts["zero_positive"] == "zero":
            vals = [0.0 if x is None else x for x in vals]
        m = mean_or_none(x for x in vals if x is not None)
        metrics[key] = None if m is None else 100.0 * m
    metrics["F1"] = mean_or_none(v["F1"] for v in per_video.values())
    if name == "aha":
        for key in ("mse", "mae", "pearson", "spearman"):
            metrics[key] = mean_or_none(v[key] for v in per_video.values())
    metrics["n_videos"] = len(vids)
    metrics["per_video"] = {vid: {k: (None if v is None else (100.0 * v if k.startswith("mAP") else v))
                                  for k, v in d.items()} for vid, d in per_video.items()}
    record: dict[str, Any] = {"dataset": DATASET, "protocol": name, "gold_file": Path(gold_file).name,
                              "split_file": None if opts["split_file"] is None else str(opts["split_file"]),
                              "split_key": opts["split_key"] if opts["split_file"] else None,
                              "budget": float(opts["budget"]),
                              "ties": "stable ranking: the earlier segment first",
                              "prediction_seconds": "stream: fused per-frame scores averaged per second [s, s+1)"
                              if streams else "pred_scores as given",
                              "fusion": fusion.to_dict() if streams else None,
                              "clip_pool": opts["clip_pool"] if streams else None,
                              "pooling_counts": pool_totals or None,
                              "units": "mAP and F1 in percent" + ("; mse/mae raw, correlations in [-1, 1]"
                                                                   if name == "aha" else ""),
                              **id_record}
    if name == "official":
        record.update({
            "map": f"uniform {opts['segment_s']}-s segment means (GT and prediction); positives = top len//2 "
                   "(mAP50) / int(0.15 len) (mAP15) GT segments; sklearn AP (softmax omitted: rank-preserving)",
            "segment_s": int(opts["segment_s"]),
            "zero_positive": "videos without a positive segment left out of the mean" if opts["zero_positive"] == "skip"
            else "videos without a positive segment count as AP 0",
            "n_videos_without_positive": skipped,
            "f1": "per-second prediction averaged over each change_points shot [start, end]; 0/1 knapsack "
                  "within floor(budget * n) frames; summary vs gt_summary, F1 averaged over its rows then videos",
            "nfps": "shot weight = end - start (official dataset code)" if opts["nfps"] == "official"
            else "shot weight = end - start + 1",
            "tail": "seconds of gtscore past the prediction's last frame take the video's lowest predicted score",
        })
    else:
        record.update({
            "pairing": "pred[i] with gtscore[i - 1] for i >= 1 (the reference's one-frame lag)"
            if opts["lag_one_frame"] else "pred[i] with gtscore[i] over the seconds the prediction covers",
            "lag_one_frame": bool(opts["lag_one_frame"]),
            "map": "1-s segments; positives = top max(1, int(rho n)) GT seconds; sklearn AP",
            "f1": f"uniform {opts['f1_shot_s']}-s shots taken greedily by mean score within int(budget n) frames "
                  "vs frames with gtscore >= its (1 - budget) percentile; sklearn f1",
            "f1_shot_s": int(opts["f1_shot_s"]),
        })
    metrics["protocol"] = record
    return metrics
