"""Aha! training losses, each term returned on its own.

Differences from the reference (aha_reference.md 1.4, 9.2 items 12-15), on purpose:
- TV is taken between *consecutive labelled frames of the same sample* (the reference's mask was a
  no-op and penalised every adjacent token pair, text included);
- the Gaussian NLL pairs every frame's variance with its own residual (the reference broadcast an
  [N] by [N, 1] tensor into an N x N matrix);
- the diversity term uses the log-variance of labelled frames only and the result is not clamped at 0;
- a batch lacking a label type skips that term: no dummy targets on token 0. The term is replaced by
  ``0 * output.sum()`` so every head still takes part in the graph and DDP / DeepSpeed ranks reduce
  the same set of gradients (no hang, no spurious gradient).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE = -100


def zero_touch(*tensors: torch.Tensor) -> torch.Tensor:
    """A zero that depends on ``tensors`` (keeps their producers in the autograd graph)."""
    return sum(t.sum() * 0.0 for t in tensors)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over already-gathered labelled positions: logits [N, V], targets [N]."""
    return F.cross_entropy(logits.float(), targets)


def informative_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
    """logits [B, S, 2], labels [B, S] in {0, 1, -100}; None when nothing is labelled."""
    valid = labels != IGNORE
    if not valid.any():
        return None
    return F.cross_entropy(logits[valid].float(), labels[valid].long())


def tv_loss(relevance: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between consecutive labelled frames of the same sample.

    relevance [B, S], valid [B, S] bool. Labelled positions are the frames; pairs never cross samples.
    """
    idx = valid.nonzero()  # row-major: sorted by sample, then position
    r = relevance[valid]
    if r.numel() < 2:
        return relevance.sum() * 0.0
    same = idx[1:, 0] == idx[:-1, 0]
    diffs = (r[1:] - r[:-1])[same]
    if diffs.numel() == 0:
        return relevance.sum() * 0.0
    return diffs.float().pow(2).mean()


def gaussian_nll(residual: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-frame Gaussian NLL with mean over frames; residual and logvar have the same shape [N]."""
    if residual.shape != logvar.shape:
        raise ValueError(f"residual {tuple(residual.shape)} and logvar {tuple(logvar.shape)} must match")
    return (residual.pow(2) / (2.0 * logvar.exp()) + 0.5 * (math.log(2 * math.pi) + logvar)).mean()


def relevance_losses(
    relevance: torch.Tensor,
    raw_logvar: torch.Tensor,
    labels: torch.Tensor,
    logvar_min: float,
    logvar_max: float,
    diversity_weight: float,
) -> dict[str, torch.Tensor] | None:
    """SmoothL1 + TV on the sigmoid relevance, and the uncertainty term, at labelled frames.

    relevance [B, S] in (0, 1); raw_logvar [B, S]; labels [B, S] floats in [0, 1] or -100.
    """
    valid = labels != IGNORE
    if not valid.any():
        return None
    r = relevance[valid].float()
    y = labels[valid].float()
    lv = raw_logvar[valid].float().clamp(logvar_min, logvar_max)
    nll = gaussian_nll(y - r, lv)
    diversity = lv.std() if lv.numel() > 1 else lv.sum() * 0.0
    return {
        "relevance": F.smooth_l1_loss(r, y, beta=1.0),
        "tv": tv_loss(relevance, valid),
        "uncertainty": nll - diversity_weight * diversity,
    }


def combine(parts: dict[str, torch.Tensor | None], weights: dict[str, float]) -> torch.Tensor:
    """0.2 lm + 0.5 informative + 8 (relevance + 0.05 tv) + 0.1 uncertainty; absent terms skipped."""
    total = None

    def add(x):
        nonlocal total
        total = x if total is None else total + x

    if parts.get("lm") is not None:
        add(weights["lm"] * parts["lm"])
    if parts.get("informative") is not None:
        add(weights["informative"] * parts["informative"])
    if parts.get("relevance") is not None:
        add(weights["relevance"] * (parts["relevance"] + weights["tv"] * parts["tv"]))
    if parts.get("uncertainty") is not None:
        add(weights["uncertainty"] * parts["uncertainty"])
    if parts.get("zero") is not None:
        add(parts["zero"])
    return total


def reference_losses(
    input_ids: torch.Tensor,
    lm_logits_fn,
    labels: torch.Tensor | None,
    informative_logits: torch.Tensor,
    informative_labels: torch.Tensor | None,
    relevance: torch.Tensor,
    raw_logvar: torch.Tensor,
    relevance_labels: torch.Tensor | None,
    logvar_min: float,
    logvar_max: float,
    diversity_weight: float,
) -> dict[str, torch.Tensor]:
    """The reference implementation's loss terms, defects included (aha_reference.md 1.4), to
    reproduce its training: dummy targets on token 0 for missing label types, TV over every adjacent
    token pair, the N x N broadcast NLL, diversity over all tokens, and the result clamped at 0.
    ``lm_logits_fn(mask)`` returns the LM logits at the positions of a [B, S] mask.
    """
    b, s = input_ids.shape
    lab = torch.full_like(input_ids, IGNORE) if labels is None else labels.clone()
    if not (lab != IGNORE).any() and s > 1:
        lab[:, 0] = input_ids[:, 1]
    lm_valid = lab != IGNORE
    parts = {"lm": lm_loss(lm_logits_fn(lm_valid), lab[lm_valid])}
    info = torch.full_like(input_ids, IGNORE) if informative_labels is None else informative_labels.clone()
    if not (info != IGNORE).any():
        info[:, 0] = 0
    parts["informative"] = informative_loss(informative_logits, info)
    rel = torch.full(input_ids.shape, float(IGNORE), device=relevance.device) if relevance_labels is None else relevance_labels.clone()
    if not (rel != IGNORE).any():
        rel[:, 0] = 0.0
    valid = rel != IGNORE
    r = relevance.float()
    if s > 1 and valid[:, 1:].any():
        parts["tv"] = (r[:, 1:] - r[:, :-1]).pow(2).mean()
    else:
        parts["tv"] = r.sum() * 0.0
    y = rel[valid].float()
    parts["relevance"] = F.smooth_l1_loss(r[valid], y) if y.numel() > 1 else r.sum() * 0.0
    lv = raw_logvar.float().clamp(logvar_min, logvar_max)
    var = lv.exp()
    res = y - r[valid]  # [N]
    var_valid = var[valid].unsqueeze(-1)  # [N, 1]: broadcasts against [N] into N x N, as the reference did
    nll = res.pow(2) / (2 * var_valid + 1e-6) + 0.5 * torch.log(2 * math.pi * var_valid)
    unc = nll.mean() - diversity_weight * lv.std()
    parts["uncertainty"] = unc.clamp(min=0)
    return parts
