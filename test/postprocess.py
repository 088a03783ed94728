"""The one post-processor: score fusion (more to come: smoothing, peaks, segments, reels)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

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


def fuse(informative, relevance, uncertainty, params: FusionParams = FusionParams()) -> np.ndarray:
    i = np.asarray(informative, dtype=np.float64)
    r = np.asarray(relevance, dtype=np.float64)
    u = uncertainty_value(uncertainty, params.uncertainty_kind)
    if not (i.shape == r.shape == u.shape):
        raise ValueError(f"score arrays differ in shape: {i.shape}, {r.shape}, {u.shape}")
    penalty = np.where(u >= params.tau, params.epsilon * (u - params.tau), 0.0)
    return params.alpha * i + params.beta * r - penalty
