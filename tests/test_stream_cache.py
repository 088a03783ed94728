"""Streaming engine v2: a cache that keeps the task, O(sink) eviction equal to full re-rotation,
K-frame steps equal to one-at-a-time, merged LoRA, vision ahead of the LM, a compilable step.

Real Qwen2 tokenizer, 49-token frames, streams far longer than the window."""
import copy

import numpy as np
import pytest
import torch
from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb

from models.build import build_model
from models.cache import protected_layouts
from models.chat import ChatTemplate, system_turn, user_turn
from models.streaming import EngineConfig, FrameEvent, FrameRecord, QueryEvent, StreamingEngine

TPF = 49
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    return build_model("aha-tiny", seed=0).eval()


def frames(n, d=64, seed=0, scale=0.5, cycle=None):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(cycle or n, TPF, d, generator=g) * scale
    return [FrameEvent(float(i), embeds=base[i % len(base)]) for i in range(n)]


def scores(records):
    return np.array([(r.informative, r.relevance, r.uncertainty) for r in records if isinstance(r, FrameRecord)])


def engine(model, tok, **kw):
    return StreamingEngine(model, tok, EngineConfig(generate=False, **kw))


def layer0_values(model, ids):
    """Layer-0 values of token ids: they carry no position, so they identify the tokens in the cache."""
    lm = model.model.language_model
    with torch.no_grad():
        x = lm.layers[0].input_layernorm(lm.embed_tokens(torch.tensor(ids)))
        v = lm.layers[0].self_attn.v_proj(x)
    return v.view(len(ids), -1, model.config.text_config.hidden_size // model.config.text_config.num_attention_heads).transpose(0, 1)


QUERIES = [QueryEvent(0.0, "a red circle bounces off the left wall"), QueryEvent(60.0, "when does the dog catch the ball?"),
           QueryEvent(120.0, "now tell me when the lights go out")]


@pytest.mark.parametrize("policy,k", [("sink", 8), ("dynamic_sink", 8), pytest.param("sink", 1, marks=pytest.mark.slow)])
def test_the_task_stays_in_the_cache_for_an_hour(model, qwen2_tokenizer, policy, k):
    """3,600 frames at 1 fps (the window holds ~41): the system turn and all three queries (at 0, 60 and
    120 s) are still in the cache, token for token, under the CLI default policy and dynamic_sink."""
    eng = engine(model, qwen2_tokenizer, cache_policy=policy, window=2048, frames_per_step=k)
    recs = list(eng.run(frames(3600, cycle=16), QUERIES))
    assert len(recs) == 3600 and eng.policy.evicted_total > 150_000
    tmpl = ChatTemplate(qwen2_tokenizer, TPF)
    want = [tmpl.ids(system_turn(eng.system_prompt))] + [tmpl.ids(user_turn(q.text)) for q in QUERIES]
    assert eng.policy.protected_ids() == want
    desc = eng.describe_cache()
    kinds = [(s["kind"], s["protected"]) for s in desc["spans"]]
    assert kinds[:4] == [("system", True)] + [("query", True)] * 3
    assert [s["time"] for s in desc["spans"][1:4]] == [0.0, 60.0, 120.0]
    assert desc["spans"][-1]["kind"] == "frames" and desc["spans"][-1]["last_frame"] == 3599
    assert desc["tokens"] == (2048 if policy == "sink" else 2048 + desc["protected_tokens"])
    # on the device: the layer-0 values (position-free) of the protected slots are those tokens' values
    seq, _, v = eng.store.kept(eng.policy.oldest_seq, layer=0)
    seq = seq.tolist()
    for span, ids in zip(sorted(eng.policy.spans, key=lambda s: s.seq), want):
        at = [seq.index(span.seq + i) for i in range(span.n)]
        torch.testing.assert_close(v[0][:, at], layer0_values(model, ids), rtol=1e-6, atol=1e-6)


def test_a_sliding_window_loses_the_task(model, qwen2_tokenizer):
    """The opt-in without protection: after the window moves on, neither the system turn nor the query is left."""
    eng = engine(model, qwen2_tokenizer, cache_policy="sliding", window=2048, frames_per_step=8)
    list(eng.run(frames(120, cycle=16), QUERIES[:1]))
    assert eng.policy.protected_ids() == []
    assert {s["kind"] for s in eng.describe_cache()["spans"]} <= {"frames", "text"}


def test_a_query_that_cannot_fit_is_a_clear_error(model, qwen2_tokenizer):
    long_query = "describe every object " * 40
    eng = engine(model, qwen2_tokenizer, cache_policy="sink", window=200)
    with pytest.raises(ValueError, match="does not fit a 200-token cache"):
        list(eng.run(frames(3), [QueryEvent(0.0, long_query)]))
    eng = engine(model, qwen2_tokenizer, cache_policy="dynamic_sink", window=200, max_protected=100)
    list(eng.run(frames(3), [QueryEvent(0.0, "a dog")]))
    with pytest.raises(ValueError, match="max_protected=100"):
        eng.add_query(long_query)


def test_the_cache_description_names_what_it_holds(model, qwen2_tokenizer):
    eng = engine(model, qwen2_tokenizer, cache_policy="sink", window=300)
    list(eng.run(frames(12), [QueryEvent(0.0, "a dog"), QueryEvent(5.0, "a cat")]))
    d = eng.describe_cache()
    assert d["policy"] == "sink" and d["tokens"] == 300 and d["evicted_tokens"] > 0
    spans = d["spans"]
    assert [s["kind"] for s in spans[:3]] == ["system", "query", "query"] and all(s["protected"] for s in spans[:3])
    assert spans[1]["text"] == "a dog" and spans[2]["time"] == 5.0
    frames_kept = [s for s in spans if s["kind"] == "frames"]
    assert frames_kept[-1]["last_frame"] == 11 and not frames_kept[-1]["protected"]
    assert sum(s["tokens"] for s in spans) == d["tokens"]


def _fed_embeddings(eng):
    """Spy: the input embedding of every token fed, in stream order."""
    rows = []
    orig = eng._forward
    lm = eng.model.model.language_model

    def spy(text, frame_embeds=None, **kw):
        ids = [t for _, piece, _ in text for t in piece]
        with torch.no_grad():
            if ids:
                rows.append(lm.embed_tokens(torch.tensor(ids)))
            if frame_embeds is not None:
                rows.append(frame_embeds.reshape(-1, frame_embeds.shape[-1]))
        return orig(text, frame_embeds, **kw)

    eng._forward = spy
    return rows


@pytest.mark.parametrize("policy", ["sink", "dynamic_sink", "sliding"])
def test_kept_keys_carry_their_index_plus_one_shared_offset(model, qwen2_tokenizer, policy):
    """After hundreds of evictions and a late query, every kept layer-0 key (protected ones rotated from
    their pristine copy, window keys never touched) equals a fresh RoPE encoding of its token at
    position (logical index + the cache's offset): attention sees exactly the compacted sequence."""
    eng = engine(model, qwen2_tokenizer, cache_policy=policy, window=250, sink_tokens=8)
    rows = _fed_embeddings(eng)
    list(eng.run(frames(40, cycle=7), [QueryEvent(0.0, "a dog jumps"), QueryEvent(20.0, "a cat sits")]))
    assert eng.policy.evicted_total > 1000 and eng.policy.offset > 0  # positions not re-based at the end
    seq, keys, _ = eng.store.kept(eng.policy.oldest_seq, layer=0)
    x = torch.cat(rows)[seq]
    lm = model.model.language_model
    attn = lm.layers[0].self_attn
    pos = (torch.arange(len(seq)) + eng.policy.offset)[None]
    with torch.no_grad():
        k = attn.k_proj(lm.layers[0].input_layernorm(x[None])).view(1, len(seq), -1, attn.head_dim).transpose(1, 2)
        cos, sin = lm.rotary_emb(x[None], pos)
        _, fresh = apply_rotary_pos_emb(k, k, cos, sin)
    torch.testing.assert_close(keys, fresh, rtol=1e-4, atol=1e-5)


def test_the_reference_sliding_window_keeps_keys_where_they_were_written(model, qwen2_tokenizer):
    """rotate="none" (the reference's SlidingWindowCache): no key is ever rotated, new tokens take their
    positions from the cache length (they saturate), so kept keys are fresh encodings at the positions
    they were written at."""
    eng = engine(model, qwen2_tokenizer, cache_policy="sliding", window=250, rotate="none")
    rows, written = _fed_embeddings(eng), {}
    orig = eng.policy.plan

    def spy(segs, **kw):
        plan = orig(segs, **kw)
        written.update(zip(plan.row_seq.tolist(), plan.pos.tolist()))
        assert plan.pos[0] == len(eng.policy) - len(plan.pos)  # positions from the length after eviction
        return plan

    eng.policy.plan = spy
    list(eng.run(frames(20, cycle=7), [QueryEvent(0.0, "a dog jumps")]))
    assert eng.policy.evicted_total > 500 and eng.policy.offset == 0
    seq, keys, _ = eng.store.kept(eng.policy.oldest_seq, layer=0)
    x = torch.cat(rows)[seq]
    lm = model.model.language_model
    attn = lm.layers[0].self_attn
    with torch.no_grad():
        k = attn.k_proj(lm.layers[0].input_layernorm(x[None])).view(1, len(seq), -1, attn.head_dim).transpose(1, 2)
        cos, sin = lm.rotary_emb(x[None], torch.tensor([[written[s] for s in seq.tolist()]]))
        _, fresh = apply_rotary_pos_emb(k, k, cos, sin)
    torch.testing.assert_close(keys, fresh, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_o_sink_eviction_equals_full_rerotation_over_thousands_of_evictions(model, qwen2_tokenizer):
    """fp32: rotating the protected keys forward (and re-basing rarely) gives the scores of re-rotating
    the whole window at every eviction, over 2,500 evictions with queries arriving mid-stream."""
    q = [QueryEvent(0.0, "a dog jumps"), QueryEvent(800.0, "a cat sits"), QueryEvent(1600.0, "the lights go out")]
    kw = dict(cache_policy="sink", window=300)
    a = engine(model, qwen2_tokenizer, rotate="protected", **kw)
    b = engine(model, qwen2_tokenizer, rotate="window", **kw)
    sa, sb = scores(a.run(frames(2500, cycle=9), q)), scores(b.run(frames(2500, cycle=9), q))
    assert a.policy.evicted_total == b.policy.evicted_total > 2500 * 40
    np.testing.assert_allclose(sa, sb, rtol=0, atol=1e-5)
    assert np.abs(sa[1:] - sa[:-1]).max() > 1e-3  # the scores move: the comparison can fail


@pytest.mark.parametrize("policy", ["sink", "dynamic_sink", "sliding", "unbounded"])
def test_k_frame_steps_equal_one_at_a_time(model, qwen2_tokenizer, policy):
    """K frames per LM forward give each frame the heads, and the cache length, of one-at-a-time
    streaming, also while evicting (each frame sees the context one-at-a-time would have kept) and
    around a query arriving mid-block."""
    q = [QueryEvent(0.0, "a dog jumps"), QueryEvent(13.0, "now a cat sits on the mat")]
    one = list(engine(model, qwen2_tokenizer, cache_policy=policy, window=300).run(frames(40, cycle=11), q))
    blk = engine(model, qwen2_tokenizer, cache_policy=policy, window=300, frames_per_step=4)
    many = list(blk.run(frames(40, cycle=11), q))
    np.testing.assert_allclose(scores(many), scores(one), rtol=0, atol=1e-6)
    assert [r.cache_len for r in many] == [r.cache_len for r in one]
    if policy != "unbounded":
        assert blk.policy.evicted_total > 0


def test_merged_lora_equals_unmerged(model, qwen2_tokenizer):
    from models.lora import apply_lora

    torch.manual_seed(1)
    peft_model = apply_lora(copy.deepcopy(model))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # a trained adapter (B starts at zero)
    q = [QueryEvent(0.0, "a dog jumps")]
    merged = engine(copy.deepcopy(peft_model), qwen2_tokenizer, window=300)
    unmerged = engine(peft_model, qwen2_tokenizer, window=300, merge_lora=False)
    assert not any("lora_" in n for n, _ in merged.model.named_modules())
    assert any("lora_" in n for n, _ in unmerged.model.named_modules())
    a, b = scores(merged.run(frames(12), q)), scores(unmerged.run(frames(12), q))
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    plain = scores(engine(model, qwen2_tokenizer, window=300).run(frames(12), q))
    assert np.abs(plain - a).max() > 1e-4  # the adapter matters


def test_background_vision_equals_inline(model, qwen2_tokenizer):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (7, 384, 384, 3), dtype=np.uint8)
    q = [QueryEvent(1.0, "a dog")]
    eng = engine(model, qwen2_tokenizer, window=400)
    inline = list(eng.run([(i, im) for i, im in enumerate(imgs)], q, vision_batch=3, background=False))
    eng.reset()
    ahead = list(eng.run([(i, im) for i, im in enumerate(imgs)], q, vision_batch=3, background=True))
    assert [r.to_dict() for r in ahead] == [r.to_dict() for r in inline]

    def broken():
        yield from [(i, im) for i, im in enumerate(imgs[:4])]
        raise RuntimeError("decoder error at 4 s")

    eng.reset()
    got = []
    with pytest.raises(RuntimeError, match="decoder error"):
        for rec in eng.run(broken(), q, vision_batch=3, background=True):
            got.append(rec)
    assert [r.to_dict() for r in got] == [r.to_dict() for r in inline[:4]]


@pytest.mark.parametrize("k", [1, 4])
def test_the_frame_step_compiles_once_without_graph_breaks(model, qwen2_tokenizer, k):
    """fullgraph=True (a graph break is an error); one graph serves the window filling up, every
    eviction and a late query: no recompiles."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    q = [QueryEvent(0.0, "a dog jumps"), QueryEvent(20.0, "a cat")]
    eng = engine(model, qwen2_tokenizer, cache_policy="sink", window=300, frames_per_step=k)
    eng.compile(backend=backend)
    got = scores(eng.run(frames(40, cycle=5), q))
    assert eng.policy.evicted_total > 0 and len(graphs) == 1
    want = scores(engine(model, qwen2_tokenizer, cache_policy="sink", window=300, frames_per_step=k).run(frames(40, cycle=5), q))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    torch._dynamo.reset()


def test_a_stream_with_many_queries_compiles_a_handful_of_layouts(model, qwen2_tokenizer):
    """Each query turn that does not fit grows the protected region, a new cache layout and so a new
    graph. The region doubles (64, 128, ...), so 14 queries of ~40 tokens (a MAGQA-like stream) make 4
    layouts, not 9: in 64-token steps the 9th layout passed dynamo's recompile limit (8) and its
    frames silently ran eagerly. Every layout the step meets is compiled once and serves its frames;
    scores equal the eager engine's."""
    graphs, layouts = [], []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    text = "find the moment when " + " ".join(["the red car overtakes the blue truck on the left lane"] * 2)
    q = [QueryEvent(5.0 * i, f"{i}: {text}") for i in range(14)]
    torch._dynamo.reset()
    eng = engine(model, qwen2_tokenizer, cache_policy="sink", window=1500)
    eng.compile(backend=backend)
    compiled = eng._compiled

    def step(*a):
        layouts.append(eng.policy.protected_size)
        return compiled(*a)
    eng._compiled = step
    got = scores(eng.run(frames(80, cycle=5), q))
    sizes = sorted(set(layouts))
    assert sizes == [n for n in protected_layouts(eng.policy.max_protected) if n >= sizes[0]][: len(sizes)]
    assert eng.policy.n_protected > 512 and len(sizes) == len(graphs) == 4  # 128 .. 1024, each compiled once
    assert layouts.count(1024) >= 80 - 5 * 13 - 1  # the frames after the last growth took the compiled step
    want = scores(engine(model, qwen2_tokenizer, cache_policy="sink", window=1500).run(frames(80, cycle=5), q))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    torch._dynamo.reset()


def test_compiling_allows_every_protected_layout(model, qwen2_tokenizer):
    """A max_protected with more layouts than dynamo's recompile limit raises the limit to cover them."""
    dyn = torch._dynamo.config
    before = dyn.recompile_limit
    try:
        dyn.recompile_limit = 8
        eng = engine(model, qwen2_tokenizer, cache_policy="sink", window=20000, max_protected=16384)
        assert protected_layouts(16384) == [64 << i for i in range(9)]
        eng.compile(backend="eager")
        assert dyn.recompile_limit == 9
        engine(model, qwen2_tokenizer, cache_policy="sink", window=300).compile(backend="eager")
        assert dyn.recompile_limit == 9  # never lowered
    finally:
        dyn.recompile_limit = before
        torch._dynamo.reset()


def test_vision_features_keep_one_hidden_state_and_equal_the_towers(model):
    from models.frames import to_pixel_values

    px = to_pixel_values(np.random.default_rng(0).integers(0, 255, (2, 384, 384, 3), dtype=np.uint8), 384)
    with torch.no_grad():
        want = model.model.vision_tower(px, output_hidden_states=True).hidden_states[model.config.vision_feature_layer]
        assert torch.equal(model.vision_features(px), want)


def test_a_compiled_engine_compiles_the_vision_of_single_frames_once(qwen2_tokenizer):
    """Live frames (one at a time, the caller's thread) go through one compiled vision graph, the
    LM step through another, with no recompiles and no graph breaks; a file's batches on the
    background worker stay eager. Scores equal the eager engine's. (A model of its own: another
    test asks the tower for output_hidden_states, which leaves capture hooks that break graphs.)"""
    model = build_model("aha-tiny", seed=0).eval()
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    size = model.config.frame_size
    imgs = np.random.default_rng(3).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    src = [(float(i), imgs[i % 4]) for i in range(12)]
    q = [QueryEvent(0.0, "a dog jumps")]
    torch._dynamo.reset()
    eng = engine(model, qwen2_tokenizer, cache_policy="sink", window=300)
    eng.compile(backend=backend)
    live = scores(eng.run(src, q))
    assert len(graphs) == 2  # the LM step and the vision tower, each once
    eng.reset()
    batched = scores(eng.run(src, q, vision_batch=3))
    assert len(graphs) == 2  # the background worker's batches of 3 ran eagerly
    want = scores(engine(model, qwen2_tokenizer, cache_policy="sink", window=300).run(src, q))
    np.testing.assert_allclose(live, want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(batched, want, rtol=0, atol=1e-5)
    # once transformers' capture hooks are on the tower's layers, the vision graph breaks but runs
    from models.frames import to_pixel_values

    with torch.no_grad():
        model.model.vision_tower(to_pixel_values(imgs[:1], size), output_hidden_states=True)
    torch._dynamo.reset()
    eng = engine(model, qwen2_tokenizer, cache_policy="sink", window=300)
    eng.compile(backend=backend)
    np.testing.assert_allclose(scores(eng.run(src, q)), want, rtol=0, atol=1e-5)
    torch._dynamo.reset()


@pytest.mark.parametrize("policy, want", [
    ("sink", {"window": 2048, "sink_tokens": 32, "max_protected": 1024}),
    ("dynamic_sink", {"window": 2048, "sink_tokens": 0, "max_protected": 1024}),
    ("sliding", {"window": 2048, "sink_tokens": 0, "max_protected": 0}),
    ("sink_reference", {"window": 2048, "sink_tokens": 32, "max_protected": 32}),
    ("unbounded", {"window": None, "sink_tokens": 0, "max_protected": 0}),
])
def test_the_recorded_cache_layout_is_the_one_that_runs(model, qwen2_tokenizer, policy, want):
    """cache_record (in every run.json / PRED.run.json) gives the policy's effective values, those of
    the engine's CachePolicy: no protected region under sliding / unbounded, the sink alone under
    sink_reference, no window under unbounded."""
    cfg = EngineConfig(cache_policy=policy, window=2048, sink_tokens=32, max_protected=1024, generate=False)
    rec = cfg.cache_record()
    assert {k: rec[k] for k in want} == want
    pol = StreamingEngine(model, qwen2_tokenizer, cfg).policy
    assert (pol.sink_tokens, pol.max_protected) == (rec["sink_tokens"], rec["max_protected"])
    assert pol.budget is None if rec["window"] is None else pol.window == rec["window"]
