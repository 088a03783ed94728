"""Ranking metrics shared by the benchmark modules: one implementation of each AP variant.

* ``voc_interpolated_ap`` - the video2gif / Moment-DETR highlight AP (QVHighlights HD).
* ``topk_trapezoid_ap`` - the UMT top-5 AP (TVSum, used by both the UMT and the Aha protocol).
* ``detection_ap`` - ActivityNet-style temporal detection AP at several IoU thresholds (QVH MR).
* ``sklearn_ap`` - ``sklearn.metrics.average_precision_score`` with an explicit no-positive rule.

and the few array helpers the benchmarks share (ranking, time pooling, uniform segments, input
checks). Ties in a ranking are always broken the same way here: the earlier item ranks first
(a stable sort); the reference implementations left it to the sort algorithm.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score

# ------------------------------------------------------------------------------ input checks


def as_finite_1d(x, name: str, allow_empty: bool = False) -> np.ndarray:
    """A float64 1-D array, or a ValueError naming ``name`` (NaN/inf/empty/wrong shape)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if not allow_empty and a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def rank_desc(scores) -> np.ndarray:
    """Indices that sort ``scores`` from high to low; ties keep their original (earlier-first) order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


# ------------------------------------------------------------------------ VOC-interpolated AP


def voc_interpolated_ap(y_true, y_score) -> np.ndarray | float:
    """Interpolated AP of video2gif / Moment-DETR ``get_ap`` (interpolate=True, point_11=False).

    Walking the ranking from the highest score down, one operating point per distinct score
    value (tied scores enter together, like ``precision_recall_curve``): precision is made
    monotone (at each point, the best precision reached at this or any higher recall), and the
    AP is the plain **mean** of that precision over the points where recall increases (not
    recall-weighted as in sklearn). All-negative labels give 0, all-positive labels give 1.

    ``y_true`` may be (n,) or (n, k): k label columns ranked by the same ``y_score`` (n,), which
    returns an array of k APs (one sort for all columns; this keeps QVH scoring fast).
    """
    s = as_finite_1d(y_score, "y_score")
    y = np.asarray(y_true, dtype=np.float64)
    if y.ndim not in (1, 2):
        raise ValueError(f"y_true must be 1-D or 2-D, got shape {y.shape}")
    single = y.ndim == 1
    y = y.reshape(len(y), -1)
    if y.shape[0] != len(s):
        raise ValueError(f"y_true has {y.shape[0]} rows for {len(s)} scores")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y_true must contain only 0 and 1")
    order = rank_desc(s)
    s_sorted = s[order]
    # last position of each block of equal scores = one operating point per distinct threshold
    ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])
    tp = np.cumsum(y[order], axis=0)[ends]  # (m, k)
    precision = tp / (ends + 1)[:, None]
    # monotone precision: max over this and every later (higher-recall) point
    interp = np.maximum.accumulate(precision[::-1], axis=0)[::-1]
    prev = np.vstack([np.zeros((1, tp.shape[1])), tp[:-1]])
    counted = tp > prev  # recall increased at this point
    n_counted = counted.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(counted, interp, 0.0).sum(axis=0) / n_counted
    npos = y.sum(axis=0)
    ap = np.where(npos == 0, 0.0, np.where(npos == len(s), 1.0, ap))
    return float(ap[0]) if single else ap


# --------------------------------------------------------------------- UMT top-k trapezoid AP


def topk_trapezoid_ap(labels_in_rank_order, k: int = 5) -> float:
    """UMT ``TVSum.evaluate`` AP for one ranking (labels already ordered by predicted score).

    Over the first ``k`` labels l_1..l_k with P = sum(l) (positives *inside the top k*):
    AP = sum_j (R_j - R_{j-1}) * (Pr_j + Pr_{j-1}) / 2, R_j = hits_j / P, Pr_j = hits_j / j,
    R_0 = 0, Pr_0 = 1; AP = 0 when P = 0. In [0, 1].
    """
    lab = np.asarray(labels_in_rank_order, dtype=np.float64)[:k]
    if lab.ndim != 1 or lab.size == 0:
        raise ValueError("topk_trapezoid_ap needs a non-empty 1-D label sequence")
    if not np.all((lab == 0) | (lab == 1)):
        raise ValueError("labels must contain only 0 and 1")
    npos = lab.sum()
    if npos == 0:
        return 0.0
    hits = np.cumsum(lab)
    rec = hits / npos
    prec = hits / np.arange(1, len(lab) + 1)
    rec_prev = np.r_[0.0, rec[:-1]]
    prec_prev = np.r_[1.0, prec[:-1]]
    return float(np.sum((rec - rec_prev) * (prec + prec_prev) / 2.0))


def topk_ap_from_scores(y_true, y_score, k: int = 5) -> float:
    """``topk_trapezoid_ap`` of ``y_true`` ranked by ``y_score`` (ties: earlier item first)."""
    s = as_finite_1d(y_score, "y_score")
    y = np.asarray(y_true, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError(f"y_true {y.shape} and y_score {s.shape} differ in shape")
    return topk_trapezoid_ap(y[rank_desc(s)], k)


# -------------------------------------------------------------------------------- sklearn AP


def sklearn_ap(y_true, y_score) -> float | None:
    """``average_precision_score``; None when there is no positive (the AP is undefined).

    Callers decide what an undefined AP means for their protocol (count as 0, or skip) and say
    so in their protocol record, instead of relying on sklearn's warning-and-return-0.
    """
    s = as_finite_1d(y_score, "y_score")
    y = np.asarray(y_true)
    if y.shape != s.shape:
        raise ValueError(f"y_true {y.shape} and y_score {s.shape} differ in shape")
    if not np.any(y):
        return None
    return float(average_precision_score(y, s))


# -------------------------------------------------------------- ActivityNet-style detection AP


def temporal_iou_cross(a, b) -> np.ndarray:
    """IoU of every window in ``a`` (N, 2) with every window in ``b`` (M, 2); 0 where the union is 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def voc2011_area(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """Area under the monotone precision envelope (VOC 2011 / ActivityNet), row-wise.

    ``precision``/``recall``: (T, P) cumulative curves over a ranking. Envelope padded with
    (recall 0, precision 0) in front and (recall 1, precision 0) at the end, as ActivityNet does.
    """
    T = precision.shape[0]
    mprec = np.hstack([np.zeros((T, 1)), precision, np.zeros((T, 1))])
    mrec = np.hstack([np.zeros((T, 1)), recall, np.ones((T, 1))])
    mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
    return np.sum((mrec[:, 1:] - mrec[:, :-1]) * mprec[:, 1:], axis=1)


def detection_ap(gt_windows, pred_windows, pred_scores, iou_thresholds) -> np.ndarray:
    """ActivityNet ``compute_average_precision_detection`` for one query (one "video").

    Predictions are visited by decreasing score (ties: listed order). At each IoU threshold a
    prediction is a true positive when some not-yet-matched GT window has IoU >= threshold with
    it; it takes the highest-IoU such window (ties: the later GT, as the reference's reversed
    argsort). AP = ``voc2011_area`` of the resulting precision/recall curve, with recall over all
    GT windows. Returns one AP per threshold; zeros when there is no prediction.
    """
    gt = np.asarray(gt_windows, dtype=np.float64).reshape(-1, 2)
    pred = np.asarray(pred_windows, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    thr = np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    if len(gt) == 0:
        raise ValueError("detection_ap needs at least one ground-truth window")
    if len(scores) != len(pred):
        raise ValueError(f"{len(pred)} windows but {len(scores)} scores")
    if len(pred) == 0:
        return np.zeros(len(thr))
    order = np.argsort(-scores, kind="stable")
    iou = temporal_iou_cross(pred[order], gt)  # (P, G)
    locked = np.zeros((len(thr), len(gt)), dtype=bool)
    tp = np.zeros((len(thr), len(pred)))
    for i in range(len(pred)):
        g_order = np.argsort(iou[i], kind="stable")[::-1]
        ok = (iou[i, g_order][None, :] >= thr[:, None]) & ~locked[:, g_order]
        rows = np.flatnonzero(ok.any(axis=1))
        locked[rows, g_order[ok[rows].argmax(axis=1)]] = True
        tp[rows, i] = 1.0
    tp_c = np.cumsum(tp, axis=1)
    fp_c = np.cumsum(1.0 - tp, axis=1)
    return voc2011_area(tp_c / (tp_c + fp_c), tp_c / len(gt))


# ----------------------------------------------------------------------------- array pooling


def pool_by_time(times, values, bin_len: float, n_bins: int, reduce: str = "mean") -> tuple[np.ndarray, dict]:
    """Per-bin scores from per-frame ``values`` at ``times``: bin b covers [b*bin_len, (b+1)*bin_len).

    A frame at time t stands for [t, t + 1/fps) (the project's frame convention), so it lands in
    bin floor(t / bin_len). ``reduce``: "mean" (default) or "sum" (MMDuet/Aha summed over each
    2-s block). Frames past the last bin are ignored. Bins that get no frame are filled, so every
    bin has a score: interior gaps by linear interpolation between the neighbouring filled bins,
    bins before the first / after the last covered bin with the video's lowest pooled score (they
    never outrank anything the model scored; they tie with its lowest bin). Returns (scores, counts) with counts saying how many
    bins were interpolated / edge-filled and how many frames fell past the end.
    """
    t = as_finite_1d(times, "frame times")
    v = as_finite_1d(values, "frame scores")
    if len(t) != len(v):
        raise ValueError(f"{len(t)} frame times but {len(v)} scores")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if np.any(t < 0):
        raise ValueError("frame times must be >= 0")
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
    # the small epsilon keeps t = 2.0 computed as 1.9999999 (k/fps) in bin 1
    b = np.floor(t / bin_len + 1e-9).astype(np.int64)
    inside = b < n_bins
    b, v = b[inside], v[inside]
    if len(b) == 0:
        raise ValueError(f"no frame falls inside the {n_bins} bins of {bin_len} s")
    sums = np.bincount(b, weights=v, minlength=n_bins)
    cnt = np.bincount(b, minlength=n_bins)
    have = cnt > 0
    out = np.zeros(n_bins)
    out[have] = sums[have] / cnt[have] if reduce == "mean" else sums[have]
    idx = np.arange(n_bins)
    first, last = idx[have][0], idx[have][-1]
    interior_gap = ~have & (idx > first) & (idx < last)
    out[interior_gap] = np.interp(idx[interior_gap], idx[have], out[have])
    edge = ~have & ~interior_gap
    out[edge] = out[have].min()
    counts = {"interpolated_bins": int(interior_gap.sum()), "edge_filled_bins": int(edge.sum()),
              "frames_past_end": int((~inside).sum())}
    return out, counts


def uniform_segment_means(x, seg_len: int) -> np.ndarray:
    """Means of consecutive blocks of ``seg_len`` values (the last block may be shorter)."""
    a = as_finite_1d(x, "scores")
    if seg_len < 1:
        raise ValueError(f"seg_len must be >= 1, got {seg_len}")
    starts = np.arange(0, len(a), seg_len)
    return np.add.reduceat(a, starts) / np.diff(np.r_[starts, len(a)])


def top_k_mask(scores, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` highest scores (exactly k; ties: earlier first)."""
    s = np.asarray(scores, dtype=np.float64)
    mask = np.zeros(len(s), dtype=bool)
    mask[rank_desc(s)[:max(0, int(k))]] = True
    return mask


def mean_or_none(values) -> float | None:
    """Mean of a list; None (JSON null) for an empty list instead of NaN."""
    vals = list(values)
    return float(np.mean(vals)) if vals else None
