"""Reduced precision in the streaming engine: RoPE frequencies stay fp32 whatever the model's dtype, and
a bf16 engine stays as close to a bf16 brute force of its cache policy over a stream far past the window
(many evictions, protected-key rotations and re-bases) as it is at the start (no drift)."""
import pytest
import torch

from models.build import build_model
from models.streaming import EngineConfig, FrameEvent, QueryEvent, StreamingEngine

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _angle_error(model, distance: int) -> float:
    """Largest error (rad) of the relative RoPE angle between two tokens ``distance`` apart, as the
    model's rotary embedding computes it, against the exact angle (float64 frequencies)."""
    rot = model.model.language_model.rotary_emb
    cfg = rot.config
    dim = cfg.hidden_size // cfg.num_attention_heads
    exact = 1.0 / (cfg.rope_parameters["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    x = torch.zeros(1, 1, dim, dtype=torch.float32)
    cos, sin = rot(x, torch.tensor([[0, distance]]))
    ang = torch.atan2(sin[0, 1, : dim // 2].double(), cos[0, 1, : dim // 2].double())
    want = torch.remainder(distance * exact + torch.pi, 2 * torch.pi) - torch.pi
    err = torch.remainder(ang - want + torch.pi, 2 * torch.pi) - torch.pi
    return err.abs().max().item()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_reduced_precision_model_keeps_its_rope_frequencies_in_fp32(qwen2_tokenizer, dtype):
    """``AhaForStreaming(cfg).to(bf16)`` (a preset model, a saved base under an adapter) rounded the
    rotary inverse frequencies to bf16 (up to 0.4%): two tokens 2048 positions apart (the default
    window) were 0.24 rad off in the tiny model's frequencies, 2.4 rad in Qwen2-7B's; the streaming
    cache rotates its protected and re-based keys with the same buffer."""
    fp32 = build_model("aha-tiny", seed=0)
    want = fp32.model.language_model.rotary_emb.inv_freq.clone()
    for model in (build_model("aha-tiny", seed=0, dtype=dtype), fp32.to(dtype)):
        model.heads_to_fp32()  # what every cast path calls after its cast
        rot = model.model.language_model.rotary_emb
        assert rot.inv_freq.dtype == torch.float32 and torch.equal(rot.inv_freq, want)
        assert torch.equal(rot.original_inv_freq, want)
        assert _angle_error(model, 2048) < 1e-3
        eng = StreamingEngine(model, qwen2_tokenizer, EngineConfig(window=300, sink_tokens=8, generate=False))
        assert torch.equal(eng.store.inv_freq2, torch.cat([want, want]))


def test_bf16_scores_do_not_drift_from_a_bf16_brute_force_over_a_long_stream(qwen2_tokenizer):
    """60 frames through a 200-token window: ~2800 evicted tokens, the protected keys rotated forward
    at every frame and the ring re-based ~14 times. The bf16 engine against the bf16 brute force (the
    kept tokens at their intended positions through the plain decoder) was 2e-6 at most on this stream
    (2e-4 over 1000 frames of a model with 3x sharper attention, flat from the first quarter to the
    last), while bf16 itself (brute force bf16 vs fp32) is ~1e-3: a coarse guard against drift. The
    positions stay below the re-base bound (never near max_position_embeddings), and bf16 heads do not tie."""
    from test_stream_bruteforce import TPF, replayed

    model = build_model("aha-tiny", seed=0, dtype=torch.bfloat16).eval()
    eng = StreamingEngine(model, qwen2_tokenizer, EngineConfig(cache_policy="sink", window=200, sink_tokens=8, generate=False))
    ref, pairs = replayed(eng, "sink", 200, 8)
    forward, top = eng._forward, []

    def spy(*args, **kw):
        out = forward(*args, **kw)
        top.append(int(out[2].pos.max()))
        return out

    eng._forward = spy
    g = torch.Generator().manual_seed(0)
    base = torch.randn(13, TPF, 64, generator=g) * 2.0
    list(eng.run([FrameEvent(float(i), embeds=base[i % 13]) for i in range(60)],
                 [QueryEvent(0.0, "a red circle bounces off the left wall"), QueryEvent(20.0, "when does the dog catch the ball?")]))
    assert eng.policy.evicted_total > 2000
    got = torch.cat([a for a, b in pairs if a.ndim == 2])
    want = torch.cat([b for a, b in pairs if b.ndim == 2])
    assert len(got) == 60
    assert (got - want).abs().max() < 1e-4, (got - want).abs().max(0).values
    assert max(top) < 2 * 200 + eng.policy.n_protected + TPF  # window + re-base threshold + protected + a frame
    assert got[:, 0].unique().numel() >= 13 and got[:, 1].unique().numel() >= 13  # 13 distinct frames: 13 distinct scores
