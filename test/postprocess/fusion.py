"""Fusion of the three heads into one per-frame score (the first step of the post-processor)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from utils.io import read_json

if TYPE_CHECKING:  # only for annotations
    from test.predictions import StreamPrediction

LOGVAR_MIN, LOGVAR_MAX = -4.0, 1.5  # the clamp the uncertainty loss trains with
FUSION_KEYS = ("alpha", "beta", "epsilon", "tau", "uncertainty_kind")
# every key a params file's parameter object may hold: ours, the reference's names for tau and
# epsilon, and the smoothing a tuning record was tuned with
PARAMS_FILE_KEYS = FUSION_KEYS + ("uncertainty_threshold", "uncertainty_penalty", "smooth_window")

@dataclass(frozen=True)
class FusionParams:
    """y = alpha*informative + beta*relevance - epsilon*(u - tau)*[u >= tau].

    ``uncertainty_kind``: "logvar" -> u = clamp(raw log-variance, -4, 1.5) (the paper's definition);
    "variance" -> u = exp(raw log-variance), unclamped (what the reference code fuses).
    """

    alpha: float = 0.7
    beta: float = 1.0
    epsilon: float = -2.9
    tau: float = 0.3
    uncertainty_kind: str = "logvar"

    def to_dict(self) -> dict:
        return asdict(self)


def uncertainty_value(raw_logvar, kind: str = "logvar") -> np.ndarray:
    lv = np.asarray(raw_logvar, dtype=np.float64)
    if kind == "logvar":
        return np.clip(lv, LOGVAR_MIN, LOGVAR_MAX)
    if kind == "variance":
        with np.errstate(over="ignore"):
            u = np.exp(lv)
        if not np.isfinite(u).all():  # exp(lv) past float64 (lv > ~709): no number to fuse
            raise ValueError(f"uncertainty_kind variance: exp of the log-variance {float(lv[~np.isfinite(u)].flat[0]):g} "
                             "overflows; use uncertainty_kind logvar (clamped) for such scores")
        return u
    raise ValueError(f"uncertainty_kind must be 'logvar' or 'variance', got {kind!r}")


def uncertainty_penalty(raw_logvar, tau: float, kind: str = "logvar") -> np.ndarray:
    """(u - tau) * [u >= tau]: the part of the fusion that epsilon multiplies."""
    u = uncertainty_value(raw_logvar, kind)
    return np.where(u >= tau, u - tau, 0.0)


def fuse(informative, relevance, uncertainty, params: FusionParams = FusionParams()) -> np.ndarray:
    i = np.asarray(informative, dtype=np.float64)
    r = np.asarray(relevance, dtype=np.float64)
    # epsilon 0: no uncertainty term at all (as the tuner computes it), whatever the scores' range
    pen = (uncertainty_penalty(uncertainty, params.tau, params.uncertainty_kind) if params.epsilon != 0
           else np.zeros(np.shape(uncertainty)))
    if not (i.shape == r.shape == pen.shape):
        raise ValueError(f"score arrays differ in shape: {i.shape}, {r.shape}, {pen.shape}")
    # NaN compares False against tau, so a NaN uncertainty used to add no penalty at all (a finite,
    # wrong fused score); NaN/inf heads would flow on into smoothing and pooling. Refuse them here.
    for name, a in (("informative", i), ("relevance", r)) + ((("uncertainty", np.asarray(uncertainty, dtype=np.float64)),)
                                                             if params.epsilon != 0 else ()):
        if not np.all(np.isfinite(a)):
            k = int(np.flatnonzero(~np.isfinite(a.reshape(-1)))[0])
            raise ValueError(f"{name} score {a.reshape(-1)[k]} at frame {k} is not finite")
    return params.alpha * i + params.beta * r - params.epsilon * pen


def fuse_prediction(pred: "StreamPrediction", params: FusionParams = FusionParams()) -> np.ndarray:
    """Fused per-frame score of one streaming prediction (aligned with ``pred.time``)."""
    try:
        return fuse(pred.informative, pred.relevance, pred.uncertainty, params)
    except ValueError as e:
        raise ValueError(f"item {getattr(pred, 'id', '?')!r}: {e}") from None


def read_fusion_file(path, key: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fusion parameters from a JSON file, and what the file says of their tuning: the one reader of
    ``--params_file`` for the benchmark driver, the offline scorer and the live engine.

    Accepted layouts: a flat object of parameters; an object of ``key`` -> parameters (the
    reference's ``grid_search_params.json``: its ``uncertainty_threshold`` / ``uncertainty_penalty``
    are ``tau`` / ``epsilon``, and such a file's ``uncertainty_kind`` defaults to ``variance``, the
    quantity the reference tuned them on); a saved tuning record (``test.tuning.save_params``: ``params`` +
    ``protocol`` + ``tuned_on_test``). Null values are left to the defaults. Returns ``(params,
    tuning)``, ``tuning`` = ``{"tuned_on", "tuned_on_test"}`` for a tuning record, else ``{}``, plus
    ``smooth_window`` when the parameters were tuned with the fused score smoothed (every reader must
    apply it, or say it cannot).
    Anything else (a missing key, per-fold parameters, a non-number, a key not in ``PARAMS_FILE_KEYS``,
    an empty object) is a ValueError."""
    data = read_json(path)
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            raise ValueError(f"{path}: no key {key!r} (has {sorted(data) if isinstance(data, dict) else type(data).__name__})")
        data = data[key]
    where = f"{path}" + (f"[{key}]" if key is not None else "")
    tuning: dict[str, Any] = {}
    if isinstance(data, dict) and "params" in data and "protocol" in data:
        if data["params"] is None:
            raise ValueError(f"{where} holds per-fold parameters (k-fold tuning): there is no single set to apply")
        proto = data["protocol"] if isinstance(data["protocol"], dict) else {}
        tuning = {"tuned_on": proto.get("tuned_on"), "tuned_on_test": bool(data.get("tuned_on_test")),
                  "tune_ids": [str(i) for i in data.get("tune_ids") or []]}
        data = data["params"]
    elif isinstance(data, dict) and isinstance(data.get("params"), dict):
        data = data["params"]
    if not isinstance(data, dict):
        raise ValueError(f"{where}: fusion parameters must be a JSON object, got {type(data).__name__}")
    # a misspelt key ("alhpa") would leave its parameter at the default without a word: refused
    unknown = sorted(set(data) - set(PARAMS_FILE_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown fusion parameter(s) {unknown}; known: {list(PARAMS_FILE_KEYS)}")
    if not data:
        raise ValueError(f"{where}: holds no fusion parameter (known: {list(PARAMS_FILE_KEYS)})")
    out: dict[str, Any] = {k: data[k] for k in FUSION_KEYS if data.get(k) is not None}
    for ours, theirs in (("tau", "uncertainty_threshold"), ("epsilon", "uncertainty_penalty")):
        if ours not in out and data.get(theirs) is not None:
            out[ours] = data[theirs]
            # the reference's key names: its tau was tuned on what its inference reports, exp(raw
            # log-variance); read on the clamped log-variance (this project's default) the same tau
            # penalises other frames. The flag --uncertainty_kind still overrides it.
            out.setdefault("uncertainty_kind", "variance")
    for k in ("alpha", "beta", "epsilon", "tau"):
        v = out.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise ValueError(f"{where}: {k} must be a finite number, got {v!r}")
        if v is not None:
            out[k] = float(v)
    if out.get("uncertainty_kind", "logvar") not in ("logvar", "variance"):
        raise ValueError(f"{where}: uncertainty_kind must be logvar or variance, got {out['uncertainty_kind']!r}")
    sw = data.get("smooth_window")  # tuned with a grid over it: the fused score was smoothed causally
    if sw is not None and sw != 0:
        if isinstance(sw, bool) or not isinstance(sw, int) or sw < 0:
            raise ValueError(f"{where}: smooth_window must be a non-negative integer, got {sw!r}")
        tuning["smooth_window"] = sw
    return out, tuning


def fusion_provenance(tuning: Mapping[str, Any], reported_ids, allowed: bool, where: str, flag: str) -> dict[str, Any]:
    """What applying a params file's tuned parameters to ``reported_ids`` means. Parameters tuned on
    the reported data (the file says so, or its ``tune_ids`` include reported items: a split: or pred:
    tuning reused on the items it was tuned on) are refused unless ``allowed`` (``flag``); then the
    result is stamped tuned on test. Returns {"tuned_on", "tuned_on_test", "n_reported_in_tune_ids"}
    ({} for a file that is not a tuning record)."""
    if not tuning or "tuned_on_test" not in tuning:
        return {}
    overlap = sorted(set(tuning.get("tune_ids") or ()) & {str(i) for i in reported_ids})
    on_test = bool(tuning["tuned_on_test"]) or bool(overlap)
    if on_test and not allowed:
        why = ("were tuned on the reported data" if tuning["tuned_on_test"] else
               f"were tuned on {len(overlap)} of the {len(reported_ids)} reported items (e.g. {overlap[:3]})")
        raise ValueError(f"{where}: its parameters {why}; pass {flag} to use them (the results are then stamped as "
                         "tuned on test)")
    return {"tuned_on": tuning.get("tuned_on"), "tuned_on_test": on_test, "n_reported_in_tune_ids": len(overlap)}
