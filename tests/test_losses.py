"""Every loss term against values computed by hand (plain Python math) on small examples."""
import math

import pytest
import torch

from models import losses as L

IGN = -100


def smooth_l1(d):
    d = abs(d)
    return 0.5 * d * d if d < 1 else d - 0.5


def test_informative_cross_entropy_by_hand():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0], [1.0, 3.0]]])
    labels = torch.tensor([[0, IGN, 1]])
    got = L.informative_loss(logits, labels).item()
    ce0 = -math.log(math.exp(2) / (math.exp(2) + 1))
    ce2 = -math.log(math.exp(3) / (math.exp(1) + math.exp(3)))
    assert got == pytest.approx((ce0 + ce2) / 2, rel=1e-6)
    assert L.informative_loss(logits, torch.full((1, 3), IGN)) is None


def test_tv_only_between_consecutive_labelled_frames_of_one_sample():
    r = torch.tensor([[0.1, 0.9, 0.3, 0.5], [0.7, 0.2, 0.2, 0.6]])
    valid = torch.tensor([[True, False, True, True], [False, True, False, True]])
    # sample 0 frames: 0.1, 0.3, 0.5 -> diffs 0.2, 0.2 ; sample 1: 0.2, 0.6 -> 0.4
    # the pair (0.5 of sample 0, 0.2 of sample 1) must not count; unlabelled 0.9 is skipped
    expect = (0.2**2 + 0.2**2 + 0.4**2) / 3
    assert L.tv_loss(r, valid).item() == pytest.approx(expect, rel=1e-5)


def test_gaussian_nll_pairs_each_variance_with_its_own_residual():
    res = torch.tensor([0.5, -1.0])
    lv = torch.tensor([0.0, 1.0])
    expect = sum(e * e / (2 * math.exp(v)) + 0.5 * math.log(2 * math.pi * math.exp(v)) for e, v in [(0.5, 0.0), (-1.0, 1.0)]) / 2
    assert L.gaussian_nll(res, lv).item() == pytest.approx(expect, rel=1e-6)
    # the reference's broadcast (every variance against every residual) gives another number
    broadcast = (res.unsqueeze(0) ** 2 / (2 * lv.exp().unsqueeze(1)) + 0.5 * torch.log(2 * math.pi * lv.exp().unsqueeze(1))).mean()
    assert abs(broadcast.item() - expect) > 1e-3


def test_relevance_terms_by_hand_with_clamp_and_diversity():
    rel = torch.tensor([[0.2, 0.5, 0.9]])
    raw_lv = torch.tensor([[-6.0, 0.0, 3.0]])  # clamps to -4 and 1.5
    labels = torch.tensor([[0.0, IGN, 1.0]])
    out = L.relevance_losses(rel, raw_lv, labels, -4.0, 1.5, 1e-3)
    assert out["relevance"].item() == pytest.approx((smooth_l1(0.2) + smooth_l1(0.1)) / 2, rel=1e-5)
    assert out["tv"].item() == pytest.approx((0.9 - 0.2) ** 2, rel=1e-5)
    lvs = [-4.0, 1.5]
    nll = sum(e * e / (2 * math.exp(v)) + 0.5 * math.log(2 * math.pi * math.exp(v)) for e, v in zip([-0.2, 0.1], lvs)) / 2
    mean = sum(lvs) / 2
    std = math.sqrt(sum((v - mean) ** 2 for v in lvs) / (len(lvs) - 1))  # unbiased, as torch.std
    assert out["uncertainty"].item() == pytest.approx(nll - 1e-3 * std, rel=1e-5)
    assert L.relevance_losses(rel, raw_lv, torch.full((1, 3), float(IGN)), -4, 1.5, 1e-3) is None


def test_combine_uses_the_paper_weights_and_skips_absent_terms():
    w = {"lm": 0.2, "informative": 0.5, "relevance": 8.0, "tv": 0.05, "uncertainty": 0.1, "diversity": 1e-3}
    parts = {k: torch.tensor(v) for k, v in dict(lm=1.0, informative=2.0, relevance=3.0, tv=4.0, uncertainty=5.0).items()}
    assert L.combine(parts, w).item() == pytest.approx(0.2 + 1.0 + 8.0 * (3.0 + 0.2) + 0.5)
    only_info = {"informative": torch.tensor(2.0)}
    assert L.combine(only_info, w).item() == pytest.approx(1.0)


def test_reference_protocol_reproduces_the_reference_defects_by_hand():
    ids = torch.tensor([[10, 11, 12, 13]])
    rel = torch.tensor([[0.2, 0.6, 0.4, 0.9]])
    raw_lv = torch.tensor([[0.0, -5.0, 1.0, 2.0]])  # clamps to 0, -4, 1, 1.5
    rel_labels = torch.tensor([[IGN, 1.0, IGN, 0.5]])
    info_logits = torch.zeros(1, 4, 2)
    vocab = 20
    lm = lambda mask: torch.zeros(int(mask.sum()), vocab)  # uniform logits
    parts = L.reference_losses(ids, lm, None, info_logits, None, rel, raw_lv, rel_labels, -4.0, 1.5, 1e-3)
    # dummy LM target (input_ids[:, 1] at position 0) with uniform logits -> log(vocab)
    assert parts["lm"].item() == pytest.approx(math.log(vocab), rel=1e-6)
    # dummy informative target 0 at token 0 with zero logits -> log 2
    assert parts["informative"].item() == pytest.approx(math.log(2), rel=1e-6)
    # TV over every adjacent token pair, labelled or not
    assert parts["tv"].item() == pytest.approx(((0.4) ** 2 + (0.2) ** 2 + (0.5) ** 2) / 3, rel=1e-5)
    assert parts["relevance"].item() == pytest.approx((smooth_l1(0.4) + smooth_l1(0.4)) / 2, rel=1e-5)
    # N x N broadcast: every labelled variance against every labelled residual
    res = [1.0 - 0.6, 0.5 - 0.9]
    lvs = [-4.0, 1.5]
    nll = sum(e * e / (2 * math.exp(v) + 1e-6) + 0.5 * math.log(2 * math.pi * math.exp(v)) for v in lvs for e in res) / 4
    all_lv = [0.0, -4.0, 1.0, 1.5]
    m = sum(all_lv) / 4
    std = math.sqrt(sum((v - m) ** 2 for v in all_lv) / 3)
    assert parts["uncertainty"].item() == pytest.approx(max(0.0, nll - 1e-3 * std), rel=1e-5)


def test_model_switches_loss_protocol_by_config():
    from models.build import build_model

    m = build_model("aha-tiny", seed=0)
    ref = build_model(m.config.__class__(**{**m.config.to_dict(), "loss_protocol": "reference"}), seed=0)
    ids = torch.tensor([[1, 2, 3] + [151646] * 49 + [4]])
    rl = torch.full(ids.shape, -100.0)
    rl[0, 51] = 0.7
    px = torch.randn(1, 3, 384, 384)
    a = m(input_ids=ids, pixel_values=px, relevance_labels=rl)
    b = ref(input_ids=ids, pixel_values=px, relevance_labels=rl)
    assert a.lm_loss is None and b.lm_loss is not None  # the reference adds a dummy LM target
    assert a.loss.item() != pytest.approx(b.loss.item())
