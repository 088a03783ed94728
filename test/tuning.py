"""Held-out tuning of the fusion parameters (alpha, beta, epsilon, tau, optional smoothing/threshold).

The reference tuned on the data it reported (§7.2, §9 item 23). Here the grid search only ever
sees a split that is disjoint from the reported one:

* an explicit tuning split (``tune_ids``; the reported items are the rest or ``report_ids``), or
* k-fold over the reported items (``k_folds``): each fold is reported with parameters tuned on
  the other folds; every fold's parameters are kept.

Tuning on the reported items needs ``allow_tune_on_test=True`` and is stamped
``"tuned_on_test": true`` / ``"tuned_on": "TEST (tuned on the reported data)"``.

Smoothing (the grid key ``smooth_window``) is the *causal* Savitzky-Golay filter of the
post-processor (``causal_smooth``): tuned results are online results, and an online result must not
look ahead (the centred filter would use window//2 future frames).

Degenerate fusions: a grid point whose fused score is constant on every tuning item (alpha = beta
= 0 with no active penalty) ranks frames by tie-breaking alone. Such points are never chosen; if one
of them would have won, the result says so (``degenerate``) and a warning is logged, and when every
point is degenerate the search is refused with an error.

Speed: the items' informative, relevance and per-tau penalty series are concatenated once; a grid
point costs three vector operations (plus the window's taps when smoothed) and the objective. The
fused (and smoothed) scores are computed with the same operations, in the same order, as the
reported path (``fuse`` then ``causal_smooth``), so the objective is the reported metric to the bit. Grid points that fuse
identically (epsilon = 0 makes tau irrelevant) are evaluated once.
"""
from __future__ import annotations

import datetime as _dt
import inspect
import itertools
import logging
import math
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from test.postprocess import CAUSAL_POLYORDER, LOGVAR_MAX, FusionParams, causal_smooth, fuse_prediction, uncertainty_penalty
from test.postprocess.smoothing import causal_savgol_items
from test.predictions import StreamPrediction
from utils.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

FUSION_KEYS = ("alpha", "beta", "epsilon", "tau")
SMOOTH_KEY = "smooth_window"  # 0 or None: no smoothing; else the causal savgol(window, SMOOTH_POLYORDER)
SMOOTH_POLYORDER = CAUSAL_POLYORDER

TUNED_ON_TRAIN = "train split"
TUNED_ON_KFOLD = "k-fold"
TUNED_ON_TEST = "TEST (tuned on the reported data)"

Objective = Callable[..., float]  # objective(fused) or objective(fused, params) -> higher is better


def reference_grid(uncertainty_kind: str = "variance") -> dict[str, list[float]]:
    """The reference's 15,000-point grid (§7.2). Its tau range is for exp(log-variance); for the
    clamped log-variance ("logvar") tau spans the clamp range [-4, 1.5] instead."""
    return {
        "alpha": np.linspace(0, 1.5, 10).tolist(),
        "beta": np.linspace(0, 1.5, 10).tolist(),
        "epsilon": np.linspace(-5, 5, 15).tolist(),
        "tau": _tau_values(uncertainty_kind, 10),
    }


def default_grid(uncertainty_kind: str = "variance") -> dict[str, list[float]]:
    """A coarse 240-point version of ``reference_grid`` (same ranges) for quick runs and tests."""
    return {
        "alpha": np.linspace(0, 1.5, 4).tolist(),
        "beta": np.linspace(0, 1.5, 4).tolist(),
        "epsilon": np.linspace(-5, 5, 5).tolist(),
        "tau": _tau_values(uncertainty_kind, 3),
    }


def _tau_values(kind: str, n: int) -> list[float]:
    if kind == "variance":
        return np.linspace(0.04, 0.15, n).tolist()
    if kind == "logvar":
        return np.linspace(-4.0, 1.5, n).tolist()
    raise ValueError(f"uncertainty_kind must be 'logvar' or 'variance', got {kind!r}")


# ------------------------------------------------------------------------------- splits


def split_ids(ids: Sequence[str], tune_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded random (tune, report) split; the ids are sorted first so dict order does not matter."""
    if not 0 < tune_fraction < 1:
        raise ValueError(f"tune_fraction must be in (0, 1), got {tune_fraction}")
    order = np.random.default_rng(seed).permutation(sorted(map(str, ids)))
    n_tune = int(round(tune_fraction * len(order)))
    if n_tune == 0 or n_tune == len(order):
        raise ValueError(f"{len(order)} items cannot be split {tune_fraction:.2f} / {1 - tune_fraction:.2f}")
    return sorted(order[:n_tune].tolist()), sorted(order[n_tune:].tolist())


def kfold_ids(ids: Sequence[str], k: int, seed: int, groups: Mapping[str, str] | None = None) -> list[list[str]]:
    """Seeded shuffle of the sorted ids into k folds whose sizes differ by at most one.

    ``groups`` (id -> group, e.g. the video of a query): items of one group always share a fold, so a
    fold is never reported with weights tuned on another query of its own video. The sorted groups
    are shuffled (seeded) and each goes to the fold with the fewest items so far (ties: the lowest
    fold); sizes then differ by at most the largest group. Without ``groups`` (or with one item per
    group) the folds are those of the ungrouped split."""
    ids = sorted(map(str, ids))
    if groups is not None:
        missing = [i for i in ids if i not in groups]
        if missing:
            raise ValueError(f"{len(missing)} ids have no group, e.g. {missing[:3]}")
        members: dict[str, list[str]] = {}
        for i in ids:
            members.setdefault(str(groups[i]), []).append(i)
        if any(len(m) > 1 for m in members.values()):
            if not 2 <= k <= len(members):
                raise ValueError(f"k_folds must be between 2 and the number of groups ({len(members)} videos for "
                                 f"{len(ids)} items), got {k}")
            folds: list[list[str]] = [[] for _ in range(k)]
            for g in np.random.default_rng(seed).permutation(sorted(members)).tolist():
                min(folds, key=len).extend(members[g])  # min() keeps the first (lowest) of equal folds
            return [sorted(f) for f in folds]
    if not 2 <= k <= len(ids):
        raise ValueError(f"k_folds must be between 2 and the number of items ({len(ids)}), got {k}")
    order = np.random.default_rng(seed).permutation(ids)
    return [sorted(f.tolist()) for f in np.array_split(order, k)]


# -------------------------------------------------------------------- vectorised fusion


class _FusedSeries:
    """Fused (and optionally smoothed) scores of a fixed item set for any grid point."""

    def __init__(self, preds: Sequence[StreamPrediction], kind: str):
        self.ids = [p.id for p in preds]
        self.kind = kind
        lengths = [len(p.time) for p in preds]
        self.bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        self.info = np.concatenate([p.informative for p in preds]) if preds else np.zeros(0)
        self.rel = np.concatenate([p.relevance for p in preds]) if preds else np.zeros(0)
        self.unc = np.concatenate([p.uncertainty for p in preds]) if preds else np.zeros(0)
        self._cache: dict[tuple, np.ndarray] = {}

    def _penalty(self, tau: float) -> np.ndarray:
        key = ("penalty", float(tau))
        if key not in self._cache:
            self._cache[key] = uncertainty_penalty(self.unc, tau, self.kind)
        return self._cache[key]

    def fused(self, alpha, beta, epsilon, tau, window=None) -> dict[str, np.ndarray]:
        return self.split(self.concat(alpha, beta, epsilon, tau, window))

    def concat(self, alpha, beta, epsilon, tau, window=None) -> np.ndarray:
        # the operations of fuse() then causal_smooth(), in their order: the scores are bit-identical to
        # the reported ones. (Smoothing each head once and combining them is equal only up to rounding,
        # and rounding decides ties in rank-based metrics: on quantised heads the objective was off by
        # 0.03 mAP50 from the score of the same weights on the reported path.)
        y = alpha * self.info + beta * self.rel
        if epsilon != 0:
            y = y - epsilon * self._penalty(tau)
        if window:
            y = causal_savgol_items(y, self.bounds, int(window), SMOOTH_POLYORDER)
        return y

    def split(self, y: np.ndarray) -> dict[str, np.ndarray]:
        b = self.bounds
        return {i: y[b[j]:b[j + 1]] for j, i in enumerate(self.ids)}

    def constant(self, y: np.ndarray) -> bool:
        """True when the fused score is constant within every item (a degenerate fusion)."""
        starts = np.asarray(self.bounds[:-1])[np.diff(self.bounds) > 0]
        if len(starts) == 0:
            return True
        spread = np.maximum.reduceat(y, starts) - np.minimum.reduceat(y, starts)
        return bool(np.all(spread <= 1e-12 * max(1.0, float(np.abs(y).max()))))


def _wants_params(objective: Objective) -> bool:
    """True when the objective takes (fused, params) rather than (fused)."""
    try:
        sig = inspect.signature(objective)
    except (TypeError, ValueError):
        return False
    params = list(sig.parameters.values())
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2


def _normalise_grid(grid: Mapping[str, Sequence], base: FusionParams) -> dict[str, list]:
    out = {}
    # each key's values sorted (and repeats dropped): ties keep the first point in grid order, so the
    # chosen point must not depend on the order a grid file lists its values in
    for key in FUSION_KEYS:
        values = grid.get(key, [getattr(base, key)])
        out[key] = sorted({float(v) for v in np.atleast_1d(values)})
    for key in sorted(k for k in grid if k not in FUSION_KEYS):
        vals = list(np.atleast_1d(grid[key]).tolist())
        if key == SMOOTH_KEY:
            vals = [0 if not v else int(v) for v in vals]
        out[key] = sorted(set(vals))
    for key, vals in out.items():
        if len(vals) == 0:
            raise ValueError(f"grid[{key!r}] is empty")
    return out


def _penalty_off(epsilon: float, tau: float, kind: str) -> bool:
    """The uncertainty term is zero for every score: epsilon 0, or (logvar) tau at or above the
    clamp's maximum LOGVAR_MAX, which the clamped log-variance never exceeds."""
    return epsilon == 0 or (kind == "logvar" and tau >= LOGVAR_MAX)


def _search(series: _FusedSeries, objective: Objective, grid: dict[str, list], kind: str) -> tuple[dict, float, dict]:
    """Exhaustive search in grid order (each key's values ascending); ties keep the first point; degenerate points (a constant fused
    score on every item) are never chosen. Returns (params, score, stats)."""
    with_params = _wants_params(objective)
    extras = [k for k in grid if k not in FUSION_KEYS]
    keys = list(FUSION_KEYS) + extras
    seen: dict[tuple, tuple[float, bool]] = {}
    best, best_score = None, -math.inf
    degenerate_best, n_degenerate = None, 0
    for values in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, values))
        window = params.get(SMOOTH_KEY) or None
        # a penalty that is off (epsilon 0, or tau at the clamped log-variance's maximum, which u never
        # exceeds) gives the same fused score whatever epsilon and tau are: evaluate such points once
        off = _penalty_off(params["epsilon"], params["tau"], kind)
        canon = tuple(None if (k in ("epsilon", "tau") and off) else params[k] for k in keys)
        if canon in seen:
            score, flat = seen[canon]
        else:
            y = series.concat(params["alpha"], params["beta"], params["epsilon"], params["tau"], window)
            flat = series.constant(y)
            fused = series.split(y)
            full = {**params, "uncertainty_kind": kind}
            score = float(objective(fused, full) if with_params else objective(fused))
            seen[canon] = (score, flat)
            n_degenerate += flat
        if math.isnan(score):
            continue
        if flat:
            if degenerate_best is None or score > degenerate_best[1]:
                degenerate_best = (params, score)
        elif score > best_score:
            best, best_score = params, score
    if best is None:
        if degenerate_best is not None:
            raise ValueError("every grid point gives a constant fused score on the tuning items (alpha = beta = 0 "
                             "and no active uncertainty penalty?): its metric would come from tie-breaking alone; "
                             "refusing. Use a grid with alpha or beta > 0, or more tuning items")
        raise ValueError("the objective returned NaN for every grid point")
    stats = {"n_evaluated": len(seen), "n_degenerate": n_degenerate, "degenerate_refused": None,
             # ties keep the first point in grid order (keys alpha, beta, epsilon, tau, then the others; values ascending)
             "n_tied_best": sum(1 for s, flat in seen.values() if s == best_score and not flat)}
    if _penalty_off(best["epsilon"], best["tau"], kind) and best["epsilon"] != 0:
        # the first such point in grid order carries an epsilon that does nothing: recorded as 0
        stats["penalty_off"] = (f"at tau {best['tau']:g} the clamped log-variance never exceeds tau: the uncertainty "
                                f"penalty is off, recorded as epsilon 0 (grid point epsilon {best['epsilon']:g})")
        best = {**best, "epsilon": 0.0}
    if degenerate_best is not None and degenerate_best[1] > best_score:
        stats["degenerate_refused"] = {"params": degenerate_best[0], "score": degenerate_best[1], "chosen_score": best_score,
                                       "note": "a constant fused score (ranking by tie-breaking) scored higher than "
                                               "every fusion of the heads; it was refused"}
        log.warning("tuning: a constant fused score %s (%.4g) beat every fusion of the heads (best %.4g); refused, "
                    "the best non-constant point is used", degenerate_best[0], degenerate_best[1], best_score)
    return {**best, "uncertainty_kind": kind}, best_score, stats


# --------------------------------------------------------------------------- grid search


def grid_search(predictions: Mapping[str, StreamPrediction], objective: Objective,
                grid: Mapping[str, Sequence] | None = None, tune_ids: Sequence[str] | None = None,
                report_ids: Sequence[str] | None = None, k_folds: int | None = None, seed: int = 0,
                uncertainty_kind: str | None = None, base: FusionParams | None = None,
                allow_tune_on_test: bool = False, objective_name: str | None = None,
                groups: Mapping[str, str] | None = None) -> dict:
    """Grid-search fusion parameters on items disjoint from the reported ones.

    ``objective(fused)`` or ``objective(fused, params)`` gets {id: fused score array} for the
    tuning items only (smoothed when the grid has "smooth_window"; other extra grid keys such as a
    decision "threshold" reach it through ``params``) and returns a number, higher is better
    (NaN = unusable). Fusion keys missing from ``grid`` stay at ``base``'s values.

    Protocols: ``tune_ids`` (report = ``report_ids`` or every other item) | ``k_folds`` over
    ``report_ids`` (default all items; seeded shuffle) | neither, with ``allow_tune_on_test`` ->
    tuned on the reported items, stamped as such. ``groups`` (id -> video): k-fold keeps each group in
    one fold (several queries of one video). Returns a JSON-ready dict: best_params (None for
    k-fold), tune_score, tune_ids, report_ids, folds (k-fold), protocol, tuned_on_test.
    """
    # the kind defaults to base's, else the post-processor's default (what the benchmarks apply)
    uncertainty_kind = uncertainty_kind or (base or FusionParams()).uncertainty_kind
    base = base or FusionParams(uncertainty_kind=uncertainty_kind)
    if base.uncertainty_kind != uncertainty_kind:
        raise ValueError("base.uncertainty_kind differs from uncertainty_kind")
    g = _normalise_grid(default_grid(uncertainty_kind) if grid is None else grid, base)
    all_ids = sorted(predictions)
    report = _check_ids(predictions, report_ids, "report_ids")
    tune = _check_ids(predictions, tune_ids, "tune_ids")
    name = objective_name or getattr(objective, "__name__", type(objective).__name__)
    protocol = {"seed": seed, "k_folds": k_folds, "grid": g, "objective": name,
                "uncertainty_kind": uncertainty_kind,
                "n_combos": int(np.prod([len(v) for v in g.values()]))}

    def run(ids: list[str]) -> tuple[dict, float, dict]:
        return _search(_FusedSeries([predictions[i] for i in ids], uncertainty_kind), objective, g, uncertainty_kind)

    if k_folds is not None:
        if tune is not None:
            raise ValueError("give either tune_ids or k_folds, not both")
        items = report if report is not None else all_ids
        folds, n_eval = [], 0
        if groups is not None:
            protocol["folds_grouped_by"] = "video (the queries of one video share a fold)"
        for f, held_out in enumerate(kfold_ids(items, k_folds, seed, groups)):
            held = set(held_out)
            train = [i for i in items if i not in held]
            params, score, st = run(train)
            n_eval += st["n_evaluated"]
            folds.append({"fold": f, "report_ids": held_out, "tune_ids": train, "best_params": params,
                          "tune_score": score, "degenerate_refused": st["degenerate_refused"], **_ties(st)})
        protocol.update(tuned_on=TUNED_ON_KFOLD, tuned_on_test=False, n_evaluated=n_eval)
        # tune_score: mean of the folds' tuning scores; each fold lists the ids it was tuned on
        return {"best_params": None, "tune_score": float(np.mean([f["tune_score"] for f in folds])),
                "tune_score_is": "the mean of the folds' tuning scores",
                "tune_ids": None, "report_ids": items, "folds": folds, "protocol": protocol,
                "tuned_on_test": False}

    if tune is None:
        if not allow_tune_on_test:
            raise ValueError("no held-out split: pass tune_ids (disjoint from report_ids) or k_folds; "
                             "tuning on the reported data needs allow_tune_on_test=True")
        report = report if report is not None else all_ids
        tune = report
    else:
        if report is None:
            report = [i for i in all_ids if i not in set(tune)]
        if not allow_tune_on_test and set(tune) & set(report):
            raise ValueError(f"tune_ids and report_ids overlap ({len(set(tune) & set(report))} items); "
                             "tuning on reported data needs allow_tune_on_test=True")
    on_test = bool(set(tune) & set(report))
    params, score, st = run(tune)
    protocol.update(tuned_on=TUNED_ON_TEST if on_test else TUNED_ON_TRAIN, tuned_on_test=on_test,
                    n_evaluated=st["n_evaluated"])
    return {"best_params": params, "tune_score": score, "tune_ids": tune, "report_ids": report,
            "protocol": protocol, "tuned_on_test": on_test, "degenerate_refused": st["degenerate_refused"], **_ties(st)}


def _ties(stats: dict) -> dict:
    """How many grid points tied for the best (the first in grid order wins), and an inactive penalty."""
    return {"n_tied_best": stats["n_tied_best"], **({"penalty_off": stats["penalty_off"]} if "penalty_off" in stats else {})}


def _check_ids(predictions: Mapping[str, StreamPrediction], ids, what: str) -> list[str] | None:
    if ids is None:
        return None
    ids = sorted(dict.fromkeys(map(str, ids)))
    if not ids:
        raise ValueError(f"{what} is empty")
    missing = [i for i in ids if i not in predictions]
    if missing:
        raise ValueError(f"{what}: {len(missing)} ids have no prediction, e.g. {missing[:3]}")
    return ids


# --------------------------------------------------------------------- applying results


def params_for(result: Mapping, item_id: str) -> dict:
    """The parameters a grid-search result (or saved record) assigns to one reported item."""
    folds = result.get("folds")
    if folds:
        for f in folds:
            if item_id in f["report_ids"]:
                return f["best_params"]
        raise ValueError(f"{item_id!r} is in no fold of this k-fold result")
    params = result.get("best_params", result.get("params"))
    if params is None:
        raise ValueError("result holds no parameters")
    return params


def fusion_params(params: Mapping) -> FusionParams:
    return FusionParams(**{k: float(params[k]) for k in FUSION_KEYS},
                        uncertainty_kind=params.get("uncertainty_kind", "logvar"))


def apply_params(predictions: Mapping[str, StreamPrediction], result: Mapping,
                 ids: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Fused (and smoothed, if tuned with smoothing) scores of the reported items with their params."""
    out = {}
    for i in (result["report_ids"] if ids is None else ids):
        p = params_for(result, i)
        y = fuse_prediction(predictions[i], fusion_params(p))
        if p.get(SMOOTH_KEY):
            y = causal_smooth(y, int(p[SMOOTH_KEY]), SMOOTH_POLYORDER)
        out[i] = y
    return out


# ---------------------------------------------------------------------- params JSON file


def save_params(path, dataset: str, result: Mapping, note: str | None = None) -> dict:
    """Record a grid-search result under ``dataset`` in a params JSON (other datasets kept; atomic).

    The record says how the numbers were obtained (protocol, tuning ids, score), so a reader can
    tell held-out parameters from ones tuned on the reported data.
    """
    path = Path(path)
    data = read_json(path) if path.exists() else {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by dataset")
    record = {
        "params": result.get("best_params"),
        "folds": [{"fold": f["fold"], "report_ids": f["report_ids"], "tune_ids": f.get("tune_ids"),
                   "best_params": f["best_params"], "tune_score": f["tune_score"],
                   "degenerate_refused": f.get("degenerate_refused")} for f in result.get("folds") or []] or None,
        "tune_score": result.get("tune_score"),
        "tune_ids": result.get("tune_ids"),
        "report_ids": result.get("report_ids"),
        "protocol": result["protocol"],
        "tuned_on_test": bool(result.get("tuned_on_test", False)),
        "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "note": note,
    }
    data[dataset] = record
    atomic_write_json(path, data)
    return record


def load_params(path, dataset: str, allow_tuned_on_test: bool = False) -> dict:
    """The record saved for ``dataset`` (see ``params_for`` / ``fusion_params`` to use it).

    Parameters tuned on the reported data are refused unless ``allow_tuned_on_test``.
    """
    data = read_json(path)
    if dataset not in data:
        raise ValueError(f"{path}: no parameters for {dataset!r} (has {sorted(data)})")
    record = data[dataset]
    if record.get("tuned_on_test") and not allow_tuned_on_test:
        raise ValueError(f"{path}[{dataset!r}] was tuned on the reported data; "
                         "pass allow_tuned_on_test=True to use it (and report it as such)")
    return record
