"""The streaming engine against a brute-force reference of the cache policies (fp32, 1e-5).

The reference keeps a plain list of the tokens the policy says stay (each token's keys as computed,
with the position they were computed at, and its values) and, before every forward, re-rotates every
kept key to the RoPE position of its index among the kept tokens and runs the native decoder on that
explicit past: no ring, no offset, no protected copies, no K-frame groups (a K-frame block is replayed
one frame at a time). The policy it implements is the documented one (models/cache.py): ``sink`` keeps
the system turn, every query turn and the stream's first ``sink_tokens`` tokens plus the newest
tokens, ``window`` in total; ``dynamic_sink`` the system turn and queries plus ``window`` newest;
``sliding`` the ``window`` newest; responses are appended without eviction (the next frame evicts)."""
import pytest
import torch

from models.build import build_model
from models.cache import rotate_half
from models.decision import DecisionConfig
from models.streaming import EngineConfig, FrameEvent, QueryEvent, ResponseRecord, StreamingEngine

TPF = 49
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    return build_model("aha-tiny", seed=0).eval()


def frames(n, d=64, cycle=9):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(cycle, TPF, d, generator=g) * 0.5
    return [FrameEvent(float(i), embeds=base[i % cycle]) for i in range(n)]


class _Past:
    """transformers' cache protocol over an explicit past (keys already at their positions)."""

    def __init__(self, keys, values):
        self.keys, self.values, self.new = keys, values, {}

    def update(self, k, v, layer_idx, *args, **kwargs):
        self.new[layer_idx] = (k, v)
        return torch.cat([self.keys[layer_idx], k], 2), torch.cat([self.values[layer_idx], v], 2)

    def get_seq_length(self, layer_idx=0):
        return self.keys[0].shape[2]


class BruteForce:
    def __init__(self, eng: StreamingEngine, policy: str, window: int, sink_tokens: int):
        self.eng, self.policy, self.window, self.sink = eng, policy, window, sink_tokens
        self.lm = eng.lm
        self.inv_freq = torch.cat([eng.lm.rotary_emb.inv_freq] * 2).double()
        self.tokens = []  # kept tokens in stream order: dict(protected, pos, K [per layer], V [per layer])
        self.next_seq = 0

    def _rotate(self, k, by):
        ang = by * self.inv_freq
        return (k.double() * ang.cos() + rotate_half(k.double()) * ang.sin()).to(k.dtype)

    def _protected(self, kind, seq):
        if self.policy in ("sink", "dynamic_sink") and kind in ("system", "query"):
            return True
        return self.policy == "sink" and seq < self.sink

    @torch.inference_mode()
    def forward(self, text, frame_embeds, evict=True, logits=False):
        eng, nl = self.eng, len(self.lm.layers)
        ids = [t for _, piece, _ in text for t in piece]
        kinds = [kind for kind, piece, _ in text for _ in piece]
        xs = [self.lm.embed_tokens(torch.tensor(ids))[None]] if ids else []
        nf = 0 if frame_embeds is None else frame_embeds.shape[0]
        if nf:
            xs.append(frame_embeds.reshape(1, nf * TPF, -1).to(eng.dtype))
            kinds += ["frame"] * (nf * TPF)
        x = torch.cat(xs, 1)
        q = x.shape[1]
        prot = [self._protected(k, self.next_seq + i) for i, k in enumerate(kinds)]
        if evict and self.policy != "unbounded":
            n_prot = sum(t["protected"] for t in self.tokens) + sum(prot)
            ring = [t for t in self.tokens if not t["protected"]]
            budget = self.window - n_prot if self.policy == "sink" else self.window
            drop = {id(t) for t in ring[: max(0, len(ring) + q - sum(prot) - budget)]}
            self.tokens = [t for t in self.tokens if id(t) not in drop]
        p = len(self.tokens)
        h, d = eng.store.shape[2], eng.store.shape[3]
        keys = [torch.stack([self._rotate(t["K"][layer], i - t["pos"]) for i, t in enumerate(self.tokens)], 2)
                if p else torch.zeros(1, h, 0, d, dtype=eng.dtype) for layer in range(nl)]
        values = [torch.stack([t["V"][layer] for t in self.tokens], 2) if p else torch.zeros(1, h, 0, d, dtype=eng.dtype)
                  for layer in range(nl)]
        past = _Past(keys, values)
        mask = torch.zeros(q, p + q, dtype=eng.dtype)  # the engine's dtype: a bf16 stream has a bf16 brute force
        mask[:, p:] = torch.triu(torch.full((q, q), torch.finfo(eng.dtype).min, dtype=eng.dtype), 1)
        hs = self.lm(inputs_embeds=x, attention_mask={"full_attention": mask[None, None]}, position_ids=torch.arange(p, p + q)[None],
                     cache=past, use_cache=True).last_hidden_state
        for i in range(q):
            self.tokens.append(dict(protected=prot[i], pos=p + i, K=[past.new[layer][0][:, :, i] for layer in range(nl)],
                                    V=[past.new[layer][1][:, :, i] for layer in range(nl)]))
        self.next_seq += q
        heads = None
        if nf:
            out = eng.model.read_heads(hs[:, len(ids) + TPF - 1:: TPF][:, :nf])
            info = torch.softmax(out["informative_logits"].float(), -1)[..., 1]
            heads = torch.stack([info, out["relevance"].float(), out["log_variance"].float()], -1)[0]
        return heads, (eng.model.lm_head(hs[:, -1:]) if logits else None)

    def truncate(self, length):
        self.next_seq -= len(self.tokens) - length
        self.tokens = self.tokens[:length]


def replayed(eng, policy, window, sink_tokens):
    """Replay every forward of ``eng`` through the brute force (one frame at a time); returns the list of
    (engine heads, brute-force heads) and (engine logits, brute-force logits) pairs it fills."""
    ref, pairs = BruteForce(eng, policy, window, sink_tokens), []
    forward, truncate = eng._forward, eng.policy.truncate

    def spy(text, frame_embeds=None, logits=False, evict=True, **kw):
        heads, lg, plan = forward(text, frame_embeds, logits=logits, evict=evict, **kw)
        nf = 0 if frame_embeds is None else frame_embeds.shape[0]
        want, want_lg = [], None
        for j in range(max(nf, 1)):
            last = j == max(nf, 1) - 1  # logits: of the forward's last token
            h, out_lg = ref.forward(text if j == 0 else [], frame_embeds[j: j + 1] if nf else None, evict, logits and last)
            want_lg = out_lg if out_lg is not None else want_lg
            if h is not None:
                want.append(h)
        if want:
            pairs.append((heads.clone(), torch.cat(want)))
        if logits:
            pairs.append((lg[0, -1].clone(), want_lg[0, -1]))
        return heads, lg, plan

    def undo(length):
        ref.truncate(length)
        return truncate(length)

    eng._forward, eng.policy.truncate = spy, undo
    return ref, pairs


def check(eng, ref, pairs):
    assert len(eng.policy) == len(ref.tokens)
    for got, want in pairs:
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


QUERIES = [QueryEvent(0.0, "a red circle bounces off the left wall and then rolls away"),
           QueryEvent(7.0, "when does the dog catch the ball?")]


@pytest.mark.parametrize("policy,k", [("sink", 1), ("sink", 4), ("dynamic_sink", 4), ("sliding", 1)])
def test_scores_equal_the_brute_force_policy_on_a_stream_longer_than_the_window(model, qwen2_tokenizer, policy, k):
    eng = StreamingEngine(model, qwen2_tokenizer, EngineConfig(cache_policy=policy, window=300, sink_tokens=8, generate=False,
                                                               frames_per_step=k))
    ref, pairs = replayed(eng, policy, 300, 8)
    list(eng.run(frames(24), QUERIES))
    assert eng.policy.evicted_total > 600
    check(eng, ref, pairs)


@pytest.mark.parametrize("remove", [False, True])
@pytest.mark.parametrize("sink_tokens", [8, 128])
def test_responses_equal_the_brute_force_policy(model, qwen2_tokenizer, remove, sink_tokens):
    """Kept responses stay in the stream (in the sink too, when it is not full yet: its first tokens);
    removed ones leave the cache as it was, also while the sink is filling (128 tokens: the system
    turn, the query, the header and the first frame; removing a response there used to fail)."""
    eng = StreamingEngine(model, qwen2_tokenizer, EngineConfig(cache_policy="sink", window=300, sink_tokens=sink_tokens,
                                                               max_new_tokens=4, remove_assistant_turns=remove,
                                                               decision=DecisionConfig(score_heads="informative", threshold=-1.0)))
    ref, pairs = replayed(eng, "sink", 300, sink_tokens)
    recs = list(eng.run(frames(12), QUERIES))
    assert sum(isinstance(r, ResponseRecord) for r in recs) == 12 and eng.policy.evicted_total > 0
    check(eng, ref, pairs)


@pytest.mark.parametrize("queries", [QUERIES[:1], []])
def test_k_frame_blocks_see_a_sink_that_reaches_into_the_frames(model, qwen2_tokenizer, queries):
    """A sink longer than the system turn and the queries holds the stream header and the first frames'
    tokens: each frame of a K-frame block must see them (they were written to the first frame's
    protected copy only, so frames 1..K-1 of the first block lost them, and their own sink tokens)."""
    eng = StreamingEngine(model, qwen2_tokenizer, EngineConfig(cache_policy="sink", window=400, sink_tokens=100, generate=False,
                                                               frames_per_step=3))
    ref, pairs = replayed(eng, "sink", 400, 100)
    list(eng.run(frames(14), queries))
    assert eng.describe_cache()["spans"][-2]["protected"]  # frames in the sink
    check(eng, ref, pairs)
