"""Fusion of the three heads into one per-frame score (the first step of the post-processor)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # only for annotations
    from test.predictions import StreamPrediction

LOGVAR_MIN, LOGVAR_MAX = -4.0, 1.5  # the clamp the uncertainty loss trains with

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
        return np.exp(lv)
    raise ValueError(f"uncertainty_kind must be 'logvar' or 'variance', got {kind!r}")


def uncertainty_penalty(raw_logvar, tau: float, kind: str = "logvar") -> np.ndarray:
    """(u - tau) * [u >= tau]: the part of the fusion that epsilon multiplies."""
    u = uncertainty_value(raw_logvar, kind)
    return np.where(u >= tau, u - tau, 0.0)


def fuse(informative, relevance, uncertainty, params: FusionParams = FusionParams()) -> np.ndarray:
    i = np.asarray(informative, dtype=np.float64)
    r = np.asarray(relevance, dtype=np.float64)
    pen = uncertainty_penalty(uncertainty, params.tau, params.uncertainty_kind)
    if not (i.shape == r.shape == pen.shape):
        raise ValueError(f"score arrays differ in shape: {i.shape}, {r.shape}, {pen.shape}")
    return params.alpha * i + params.beta * r - params.epsilon * pen


def fuse_prediction(pred: "StreamPrediction", params: FusionParams = FusionParams()) -> np.ndarray:
    """Fused per-frame score of one streaming prediction (aligned with ``pred.time``)."""
    return fuse(pred.informative, pred.relevance, pred.uncertainty, params)
