"""The online engine: causality for every cache policy, cache budgets, RoPE re-rotation, token
order, response handling and broken sources."""
import numpy as np
import pytest
import torch

from models.build import build_model
from models.cache import POLICIES
from models.chat import STREAM_PROMPT, ChatTemplate, system_turn, user_turn
from models.decision import DecisionConfig
from models.streaming import EngineConfig, FrameRecord, QueryEvent, ResponseRecord, StreamingEngine

TPF = 49


@pytest.fixture(scope="module")
def model():
    return build_model("aha-tiny", seed=0).eval()


@pytest.fixture(scope="module")
def embeds(model):
    g = torch.Generator().manual_seed(0)
    d = model.config.text_config.hidden_size
    return torch.randn(14, TPF, d, generator=g) * 0.05


def engine(model, tok, **kw):
    return StreamingEngine(model, tok, EngineConfig(**kw))


def frames_of(embeds):
    from models.streaming import FrameEvent

    return [FrameEvent(0.5 * i, embeds=e) for i, e in enumerate(embeds)]


def scores(records):
    return [(r.informative, r.relevance, r.uncertainty) for r in records if isinstance(r, FrameRecord)]


@pytest.mark.parametrize("policy", POLICIES)
def test_strict_causality_for_every_cache_policy(model, qwen2_tokenizer, embeds, policy):
    q = [QueryEvent(0.0, "a red circle bounces")]
    kw = dict(cache_policy=policy, window=180, sink_tokens=16, generate=False)
    a = scores(engine(model, qwen2_tokenizer, **kw).run(frames_of(embeds), q))
    changed = embeds.clone()
    changed[7:] = torch.randn_like(changed[7:])
    b = scores(engine(model, qwen2_tokenizer, **kw).run(frames_of(changed), q))
    assert a[:7] == b[:7]  # bit-identical up to the last unchanged frame
    assert a[7:] != b[7:]


def test_sink_cache_equals_unbounded_while_the_context_fits(model, qwen2_tokenizer, embeds):
    q = [QueryEvent(0.0, "a dog jumps")]
    a = scores(engine(model, qwen2_tokenizer, cache_policy="unbounded", generate=False).run(frames_of(embeds), q))
    b = scores(engine(model, qwen2_tokenizer, cache_policy="sink", window=2048, sink_tokens=32, generate=False).run(frames_of(embeds), q))
    assert a == b


@pytest.mark.parametrize("policy,cap", [("sink", 200), ("sliding", 200), ("dynamic_sink", None)])
def test_cache_length_is_constant_once_the_window_is_full(model, qwen2_tokenizer, embeds, policy, cap):
    eng = engine(model, qwen2_tokenizer, cache_policy=policy, window=200, sink_tokens=16, generate=False)
    recs = list(eng.run(frames_of(embeds), [QueryEvent(0.0, "a dog jumps")]))
    cap = cap or eng.policy.sink_tokens + 200
    lens = [r.cache_len for r in recs]
    first_full = next(i for i, n in enumerate(lens) if n == cap)
    assert first_full < len(lens) - 3
    assert all(n == cap for n in lens[first_full:])
    assert max(lens) == cap


def test_evicted_cache_keys_carry_their_new_positions(model, qwen2_tokenizer, embeds):
    """After eviction + re-rotation the layer-0 keys equal a fresh encoding of the kept tokens."""
    eng = engine(model, qwen2_tokenizer, cache_policy="sink", window=200, sink_tokens=16, generate=False)
    fed = []
    orig = eng._forward

    def spy(ids, frame_embeds=None, **kw):
        with torch.no_grad():
            n = 0 if frame_embeds is None else frame_embeds.shape[0]
            fe = None if frame_embeds is None else frame_embeds
            fed.append(model.embed_inputs(torch.tensor([ids + [151646] * (n * TPF)]), frame_embeds=fe)[0])
        return orig(ids, frame_embeds, **kw)

    eng._forward = spy
    list(eng.run(frames_of(embeds[:8]), [QueryEvent(0.0, "a dog jumps")]))
    assert eng.policy.evicted_total > 0
    seq = torch.cat(fed)
    kept = torch.cat([seq[:16], seq[-(len(eng.policy) - 16):]])
    fresh = engine(model, qwen2_tokenizer, cache_policy="unbounded")
    with torch.no_grad():
        pos = torch.arange(kept.shape[0])
        model(inputs_embeds=kept[None], cache=fresh.policy.cache, position_ids=pos[None],
              use_cache=True, compute_lm_logits=False)
    torch.testing.assert_close(eng.policy.cache.layers[0].keys, fresh.policy.cache.layers[0].keys, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(eng.policy.cache.layers[0].values, fresh.policy.cache.layers[0].values, rtol=1e-5, atol=1e-6)


def _fed_ids(eng):
    log = []
    orig = eng._forward

    def spy(ids, frame_embeds=None, **kw):
        n = 0 if frame_embeds is None else frame_embeds.shape[0]
        log.append(list(ids) + [151646] * (n * TPF))
        return orig(ids, frame_embeds, **kw)

    eng._forward = spy
    return log


def test_token_order_matches_training_and_reference_mode_reproduces_the_reference(model, qwen2_tokenizer, embeds):
    tmpl = ChatTemplate(qwen2_tokenizer, TPF)
    eng = engine(model, qwen2_tokenizer, generate=False)
    log = _fed_ids(eng)
    list(eng.run(frames_of(embeds[:3]), [QueryEvent(0.0, "a dog jumps")]))
    stream = [t for step in log for t in step]
    want = tmpl.encode(tmpl.pieces([
        {"role": "system", "content": eng.system_prompt},
        {"role": "user", "content": "a dog jumps"},
        {"role": "stream", "num_frames": 3},
    ])).input_ids
    assert stream == want[:-1]  # the stream turn is still open: no closing <|im_end|> yet

    ref = engine(model, qwen2_tokenizer, generate=False, prompt_order="reference")
    log = _fed_ids(ref)
    list(ref.run(frames_of(embeds[:2]), [QueryEvent(0.0, "a dog jumps")]))
    assert log[0] == tmpl.ids(user_turn("a dog jumps")) + tmpl.ids(STREAM_PROMPT)
    assert log[1] == tmpl.ids(system_turn(ref.system_prompt)) + [151646] * TPF
    assert log[2] == [151646] * TPF


def test_the_system_prompt_is_the_models_own_unless_the_engine_names_one(model, qwen2_tokenizer, embeds):
    """A checkpoint records the system prompt it was trained with (train.py); the engine uses it."""
    from models.chat import DEFAULT_SYSTEM_PROMPT

    tmpl = ChatTemplate(qwen2_tokenizer, TPF)
    assert model.config.system_prompt is None and engine(model, qwen2_tokenizer).system_prompt == DEFAULT_SYSTEM_PROMPT
    model.config.system_prompt = ""
    try:
        eng = engine(model, qwen2_tokenizer, generate=False)
        log = _fed_ids(eng)
        list(eng.run(frames_of(embeds[:1]), [QueryEvent(0.0, "a dog jumps")]))
        assert eng.system_prompt == "" and log[0][: len(tmpl.ids(system_turn("")))] == tmpl.ids(system_turn(""))
        assert engine(model, qwen2_tokenizer, system_prompt="be brief").system_prompt == "be brief"
    finally:
        model.config.system_prompt = None


def test_kept_responses_follow_the_training_template(model, qwen2_tokenizer, embeds):
    from models.chat import GENERATION_PROMPT, IM_END, STREAM_GENERATION_PROMPT

    tmpl = ChatTemplate(qwen2_tokenizer, TPF)
    eng = engine(model, qwen2_tokenizer, cache_policy="unbounded", max_new_tokens=3,
                 decision=DecisionConfig(score_heads="informative", threshold=-1.0))  # fires every frame
    log = _fed_ids(eng)
    recs = list(eng.run(frames_of(embeds[:3]), [QueryEvent(0.0, "narrate")]))
    r1, r2, r3 = [r for r in recs if isinstance(r, ResponseRecord)]
    assert r1.n_tokens == 3 and len(r1.token_ids) == 3
    frame = [151646] * TPF
    want = (tmpl.ids(system_turn(eng.system_prompt)) + tmpl.ids(user_turn("narrate"))
            + tmpl.ids(STREAM_PROMPT) + frame + tmpl.ids(STREAM_GENERATION_PROMPT) + r1.token_ids
            + [tmpl.eos_id] + tmpl.ids(STREAM_PROMPT) + frame + tmpl.ids(STREAM_GENERATION_PROMPT) + r2.token_ids
            + [tmpl.eos_id] + tmpl.ids(STREAM_PROMPT) + frame + tmpl.ids(STREAM_GENERATION_PROMPT) + r3.token_ids)
    assert [t for step in log for t in step] == want
    # the online transition is the training template's closing <|im_end|> + assistant header
    assert tmpl.ids(IM_END) + tmpl.ids(GENERATION_PROMPT) == tmpl.ids(STREAM_GENERATION_PROMPT)


def test_remove_assistant_turns_restores_the_cache_exactly(model, qwen2_tokenizer, embeds):
    eng = engine(model, qwen2_tokenizer, cache_policy="sink", window=160, sink_tokens=16, remove_assistant_turns=True, max_new_tokens=4)
    for _ in eng.run(frames_of(embeds[:5]), [QueryEvent(0.0, "narrate")]):
        pass
    before = [(layer.keys.clone(), layer.values.clone()) for layer in eng.policy.cache.layers]
    n = len(eng.policy)
    resp = eng.respond(99.0)
    assert resp.n_tokens > 0
    assert len(eng.policy) == n
    for (k, v), layer in zip(before, eng.policy.cache.layers):
        assert torch.equal(k, layer.keys) and torch.equal(v, layer.values)
    keep = engine(model, qwen2_tokenizer, cache_policy="unbounded", max_new_tokens=4)
    list(keep.run(frames_of(embeds[:2]), [QueryEvent(0.0, "narrate")]))
    n = len(keep.policy)
    r = keep.respond(1.0)
    assert len(keep.policy) > n + r.n_tokens - 1


def test_records_are_emitted_before_the_next_frame_is_read(model, qwen2_tokenizer, embeds):
    pulled = []

    def source():
        for i, e in enumerate(frames_of(embeds[:4])):
            pulled.append(i)
            yield e

    seen = []
    for rec in engine(model, qwen2_tokenizer, generate=False).run(source()):
        seen.append((rec.frame, list(pulled)))
    assert seen == [(0, [0]), (1, [0, 1]), (2, [0, 1, 2]), (3, [0, 1, 2, 3])]


def test_a_source_breaking_mid_stream_keeps_the_records_so_far(model, qwen2_tokenizer, embeds):
    def broken():
        yield from frames_of(embeds[:3])
        raise RuntimeError("decoder error at 1.5 s")

    got = []
    with pytest.raises(RuntimeError, match="decoder error"):
        for rec in engine(model, qwen2_tokenizer, generate=False).run(broken(), vision_batch=4):
            got.append(rec)
    assert [r.frame for r in got] == [0, 1, 2]


def test_images_are_encoded_like_the_model_does(model, qwen2_tokenizer):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, (3, 384, 384, 3), dtype=np.uint8)
    eng = engine(model, qwen2_tokenizer, generate=False)
    a = scores(eng.run([(i, im) for i, im in enumerate(imgs)], vision_batch=1))
    eng.reset()
    b = scores(eng.run([(i, im) for i, im in enumerate(imgs)], vision_batch=3))
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="letterboxed"):
        eng.encode_images(rng.integers(0, 255, (1, 100, 80, 3), dtype=np.uint8))


def test_reference_sink_cache_reproduces_the_reference_quirks(model, qwen2_tokenizer, embeds):
    from models.cache import rotate_half

    W, S = 200, 16
    eng = engine(model, qwen2_tokenizer, cache_policy="sink_reference", window=W, sink_tokens=S, generate=False)
    calls = []
    orig_model = eng.model.forward

    def spy(*a, **kw):
        # the mask offset is the cache length at the call (transformers reads it from the cache)
        calls.append((kw["position_ids"][0, 0].item(), kw["cache"].get_seq_length(), kw["input_ids"].shape[1]))
        return orig_model(*a, **kw)

    eng.model.forward = spy
    try:
        eng.add_query("a dog jumps")
        snap = None
        for e in frames_of(embeds[:6]):
            before = len(eng.policy)
            if before + TPF >= W and snap is None:
                snap = (before, eng.policy.cache.layers[0].keys.clone())
            eng.process_frame(e.time, e.embeds)
            if snap is not None and snap[0] == before:
                after_keys = eng.policy.cache.layers[0].keys
                evicted = before - S - (W - S - TPF)
                assert len(eng.policy) == W
                # a kept old key moved back by `evicted` slots and was rotated by -q (not -evicted)
                old = snap[1][..., before - 1, :].float()
                ang = -TPF * eng.policy.inv_freq
                cos, sin = torch.cat((ang, ang)).cos(), torch.cat((ang, ang)).sin()
                want = old * cos + rotate_half(old) * sin
                torch.testing.assert_close(after_keys[..., before - 1 - evicted, :].float(), want, rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(after_keys[..., :S, :], snap[1][..., :S, :])
    finally:
        eng.model.forward = orig_model
    assert snap is not None
    # RoPE positions start at the cache length before eviction (they saturate at the window);
    # the mask positions are the true cache indices
    frame_calls = [c for c in calls if c[2] >= TPF]
    assert all(p <= W for p, _, _ in frame_calls)
    assert any(p == W and c == W - n for p, c, n in frame_calls)


def test_no_response_before_the_first_query_unless_asked(model, qwen2_tokenizer, embeds):
    kw = dict(cache_policy="unbounded", max_new_tokens=1, decision=DecisionConfig(score_heads="informative", threshold=-1.0))
    q = [QueryEvent(1.0, "what happens?")]
    times = [r.time for r in engine(model, qwen2_tokenizer, **kw).run(frames_of(embeds[:4]), q) if isinstance(r, ResponseRecord)]
    assert times == [1.0, 1.5]
    early = engine(model, qwen2_tokenizer, respond_before_query=True, **kw)
    times = [r.time for r in early.run(frames_of(embeds[:4]), q) if isinstance(r, ResponseRecord)]
    assert times == [0.0, 0.5, 1.0, 1.5]


def test_repetition_penalty_applies_to_the_tokens_of_the_response(model, qwen2_tokenizer):
    from types import SimpleNamespace

    def scripted(eng):
        def fwd(ids, frame_embeds=None, logits=False, evict=True):
            out = torch.full((1, 1, 20), -10.0)
            out[0, 0, 7], out[0, 0, 8] = 5.0, 4.0
            return SimpleNamespace(logits=out)

        eng._forward = fwd
        return eng

    plain = scripted(engine(model, qwen2_tokenizer, max_new_tokens=3, remove_assistant_turns=True))
    assert plain.respond(0.0).token_ids == [7, 7, 7]
    pen = scripted(engine(model, qwen2_tokenizer, max_new_tokens=3, remove_assistant_turns=True, repetition_penalty=2.0))
    # 7 (5.0) -> 7 penalised to 2.5 < 4.0 -> 8 -> 7 (2.5) beats 8 (2.0)
    assert pen.respond(0.0).token_ids == [7, 8, 7]


def test_the_frame_placeholder_is_never_generated(model, qwen2_tokenizer):
    """A generated <image> would be fed back as a frame without pixels (the tiny model, whose input
    and output embeddings are tied, did produce it): it is suppressed, the next best token wins."""
    from types import SimpleNamespace

    ph = model.config.image_token_index
    eng = engine(model, qwen2_tokenizer, max_new_tokens=2, remove_assistant_turns=True)

    def fwd(ids, frame_embeds=None, logits=False, evict=True):
        out = torch.full((1, 1, ph + 10), -10.0)
        out[0, 0, ph], out[0, 0, 7] = 9.0, 4.0
        return SimpleNamespace(logits=out)

    eng._forward = fwd
    assert eng.respond(0.0).token_ids == [7, 7]
