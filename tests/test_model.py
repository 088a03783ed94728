"""The Aha! model on transformers' LLaVA-OneVision classes: frames, splice, heads, losses, backward."""
import math

import pytest
import torch
import torch.nn.functional as F

from models.build import load_preset
from models.config import AhaConfig

PH = 151646


def test_tokens_per_frame_for_presets_and_strides():
    assert load_preset("aha-7b").tokens_per_frame == 49
    assert load_preset("aha-0.5b").tokens_per_frame == 49
    assert load_preset("aha-tiny").tokens_per_frame == 49
    assert load_preset("aha-tiny", frame_pool_stride=2).tokens_per_frame == 14 * 14
    assert load_preset("aha-tiny", frame_pool_mode="average").tokens_per_frame == 36
    # ceil keeps the partial border windows: 27 / 4 -> 7 (not 6)
    assert load_preset("aha-tiny", frame_pool_mode="max", frame_pool_ceil=True).tokens_per_frame == 49
    with pytest.raises(ValueError):
        AhaConfig(loss_weights={"nonsense": 1.0})


def test_frame_encoding_uses_last_kept_layer_without_post_layernorm(tiny_model):
    m = tiny_model
    px = torch.randn(2, 3, 384, 384)
    with torch.no_grad():
        got = m.encode_frames(px)
        vm = m.model.vision_tower
        x = vm.embeddings(px)
        for layer in vm.encoder.layers:
            x = layer(x, attention_mask=None)
            x = x[0] if isinstance(x, tuple) else x
        proj = m.model.multi_modal_projector(x)  # per patch, before pooling
        grid = proj.view(2, 27, 27, -1).permute(0, 3, 1, 2)
        want = F.interpolate(grid, size=(7, 7), mode="bilinear", align_corners=False).permute(0, 2, 3, 1).reshape(2, 49, -1)
    assert got.shape == (2, 49, m.config.text_config.hidden_size)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the post-layernorm exists in the tower but must not influence frame tokens
    with torch.no_grad():
        vm.post_layernorm.weight.mul_(7.0)
        torch.testing.assert_close(m.encode_frames(px), got)


def test_placeholders_are_replaced_in_order_across_frames_and_samples(tiny_model):
    m = tiny_model
    d = m.config.text_config.hidden_size
    # sample 0: text, frame A, text, frame B ; sample 1: frame C then text
    ids = torch.tensor([[5, 6] + [PH] * 49 + [7] + [PH] * 49 + [8], [PH] * 49 + [9] * 53])
    frames = torch.arange(3 * 49 * d, dtype=torch.float).reshape(3, 49, d)
    with torch.no_grad():
        emb = m.embed_inputs(ids, frame_embeds=frames)
        table = m.get_input_embeddings().weight
    torch.testing.assert_close(emb[0, 2:51], frames[0])
    torch.testing.assert_close(emb[0, 52:101], frames[1])
    torch.testing.assert_close(emb[1, 0:49], frames[2])
    torch.testing.assert_close(emb[0, 0], table[5])
    torch.testing.assert_close(emb[0, 51], table[7])
    torch.testing.assert_close(emb[1, 49], table[9])
    with pytest.raises(ValueError, match="placeholder"):
        m.embed_inputs(ids, frame_embeds=frames[:2])


def test_heads_are_read_from_the_final_hidden_state(tiny_model):
    m = tiny_model
    ids = torch.tensor([[1, 2] + [PH] * 98])
    px = torch.randn(2, 3, 384, 384)
    with torch.no_grad():
        out = m(input_ids=ids, pixel_values=px)
        h = out.last_hidden_state
        for pos in (2 + 48, 2 + 97):  # the last token of each frame
            hp = h[0, pos]
            # The model applies each head to the whole [1, S, D] batch (a matrix product), the check
            # to one vector (a dot product): the two sum D products in a different order, so they
            # agree only up to float rounding. The standard bound for a D-term fp32 sum is
            # gamma_D * sum|h_i w_i| (gamma_D = D u / (1 - D u), u = 2^-24); a relative tolerance
            # (the former rel=1e-6) fails whenever the sum cancels to a small value.
            def bound(w, hp=hp):
                terms = (hp.abs() * w.abs()).sum(-1)
                u = torch.finfo(torch.float32).eps / 2
                d = hp.numel()
                return (d * u / (1 - d * u)) * terms
            z = m.relevance_head(hp).squeeze()
            # sigmoid is 1/4-Lipschitz: the logit's bound shrinks by 4, plus one rounding of the sigmoid
            rel_tol = float(bound(m.relevance_head.weight[0])) / 4 + torch.finfo(torch.float32).eps
            assert abs(out.relevance[0, pos].item() - torch.sigmoid(z).item()) <= rel_tol
            info_tol = bound(m.informative_head.weight)
            assert ((out.informative_logits[0, pos] - m.informative_head(hp)).abs() <= info_tol).all()
            unc_tol = float(bound(m.uncertainty_head.weight[0]))
            assert abs(out.log_variance[0, pos].item() - m.uncertainty_head(hp).item()) <= unc_tol
            # the bound is tight enough to tell a different hidden state apart
            other = h[0, pos - 1]
            assert abs(out.log_variance[0, pos].item() - m.uncertainty_head(other).item()) > unc_tol
    for head in (m.informative_head, m.relevance_head, m.uncertainty_head):
        assert head.bias is None


def _batch():
    ids = torch.tensor([[1, 2, 3] + [PH] * 98 + [4, 5, 6]])
    lab = torch.full_like(ids, -100)
    lab[0, -3:-1] = torch.tensor([5, 6])
    il = torch.full_like(ids, -100)
    il[0, 3 + 48], il[0, 3 + 97] = 0, 1
    rl = torch.full(ids.shape, -100.0)
    rl[0, 3 + 48], rl[0, 3 + 97] = 0.2, 0.9
    return ids, lab, il, rl


def test_model_loss_equals_weighted_sum_of_its_parts(tiny_model):
    m = tiny_model
    ids, lab, il, rl = _batch()
    px = torch.randn(2, 3, 384, 384)
    out = m(input_ids=ids, pixel_values=px, labels=lab, informative_labels=il, relevance_labels=rl)
    h = out.last_hidden_state.detach()
    lm = F.cross_entropy(m.lm_head(h[0, [101, 102]]), torch.tensor([5, 6]))
    assert out.lm_loss.item() == pytest.approx(lm.item(), rel=1e-5)
    w = m.config.loss_weights
    expect = (w["lm"] * out.lm_loss + w["informative"] * out.informative_loss
              + w["relevance"] * (out.relevance_loss + w["tv"] * out.tv_loss) + w["uncertainty"] * out.uncertainty_loss)
    assert out.loss.item() == pytest.approx(expect.item(), rel=1e-5)
    assert out.logits is None  # no full-vocabulary logits in training


def test_missing_label_types_are_skipped_but_every_head_stays_in_the_graph(tiny_model):
    m = tiny_model
    m.train()
    ids, lab, il, rl = _batch()
    out = m(input_ids=ids, pixel_values=torch.randn(2, 3, 384, 384), relevance_labels=rl)
    assert out.lm_loss is None and out.informative_loss is None
    assert out.relevance_loss is not None
    w = m.config.loss_weights
    expect = w["relevance"] * (out.relevance_loss + w["tv"] * out.tv_loss) + w["uncertainty"] * out.uncertainty_loss
    assert out.loss.item() == pytest.approx(expect.item(), rel=1e-6)
    out.loss.backward()
    # heads without labels get a gradient tensor (zeros), so DDP/ZeRO ranks reduce the same set
    assert m.informative_head.weight.grad is not None and torch.all(m.informative_head.weight.grad == 0)
    assert m.lm_head.weight.grad is not None and torch.all(m.lm_head.weight.grad == 0)
    assert m.relevance_head.weight.grad.abs().sum() > 0


def test_forward_backward_with_lora_is_fast_and_updates_only_trainable(tiny_model):
    import time

    from models.lora import apply_lora

    pm = apply_lora(tiny_model)
    ids, lab, il, rl = _batch()
    t = time.time()
    out = pm(input_ids=ids, pixel_values=torch.randn(2, 3, 384, 384), labels=lab, informative_labels=il, relevance_labels=rl)
    out.loss.backward()
    assert time.time() - t < 20
    assert math.isfinite(out.loss.item())
    for n, p in pm.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, n
    grads = {n: p.grad for n, p in pm.named_parameters() if p.requires_grad}
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)


def test_cached_vision_features_give_the_same_embeddings_as_pixels(tiny_model):
    m = tiny_model
    ids = torch.tensor([[1] + [PH] * 98])
    px = torch.randn(2, 3, 384, 384)
    with torch.no_grad():
        a = m.embed_inputs(ids, pixel_values=px)
        b = m.embed_inputs(ids, vision_features=m.vision_features(px))
        c = m.embed_inputs(ids, frame_embeds=m.encode_frames(px))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, c, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["average", "max"])
def test_ceil_pooling_covers_the_border_patches(mode):
    """frame_pool_ceil: a 7x7 grid with stride 4 pools to 2x2 over every patch; the reference's
    floor pooling gives 1x1 over the first 4x4 and ignores the rest."""
    from models.aha import AhaForStreaming

    base = dict(frame_pool_stride=4, frame_pool_mode=mode)
    floor = AhaForStreaming(load_preset("aha-tiny-synth", frame_pool_ceil=False, **base)).eval()
    ceil = AhaForStreaming(load_preset("aha-tiny-synth", frame_pool_ceil=True, **base)).eval()
    assert (floor.config.tokens_per_frame, ceil.config.tokens_per_frame) == (1, 4)
    g = floor.config.patch_grid
    assert g == 7
    feats = torch.zeros(1, g * g, 3)
    feats.view(1, g, g, 3)[0, 6, 6] = torch.tensor([4.0, 2.0, 1.0])  # the last border patch only
    got_floor, got_ceil = floor._pool(feats), ceil._pool(feats)
    assert torch.count_nonzero(got_floor) == 0  # floor never sees patch (6, 6)
    assert torch.count_nonzero(got_ceil[0, :3]) == 0
    # the bottom-right window holds rows / columns 4..6 only: 3x3 patches
    want = torch.tensor([4.0, 2.0, 1.0]) / (9 if mode == "average" else 1)
    torch.testing.assert_close(got_ceil[0, 3], want)


@pytest.mark.parametrize("mode", ["average", "max"])
def test_summary_token_comes_last_and_reduces_the_whole_grid(mode):
    """frame_summary_token: the pooled grid tokens unchanged, then one token over every patch (max or
    mean), last, where the heads read a frame."""
    from models.aha import AhaForStreaming

    base = dict(frame_pool_stride=4, frame_pool_mode=mode, frame_pool_ceil=True)
    plain = AhaForStreaming(load_preset("aha-tiny-synth", **base)).eval()
    summ = AhaForStreaming(load_preset("aha-tiny-synth", frame_summary_token=True, **base)).eval()
    assert (plain.config.tokens_per_frame, summ.config.tokens_per_frame) == (4, 5)
    g = plain.config.patch_grid
    feats = torch.randn(3, g * g, 8, generator=torch.Generator().manual_seed(0))
    got = summ._pool(feats)
    assert got.shape == (3, 5, 8)
    torch.testing.assert_close(got[:, :4], plain._pool(feats), rtol=0, atol=0)
    want = feats.amax(dim=1) if mode == "max" else feats.mean(dim=1)
    torch.testing.assert_close(got[:, 4], want, rtol=0, atol=0)
    # the flag travels with the config: a checkpoint of one cannot load as the other
    assert AhaConfig(**summ.config.to_dict()).frame_summary_token is True
