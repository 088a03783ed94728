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
@pytest.mark.parametrize("frames_per_step", [1, 4])
def test_strict_causality_for_every_cache_policy(model, qwen2_tokenizer, embeds, policy, frames_per_step):
    """Scores up to frame 6 never depend on frames 7+ nor on a query asked later, whatever the cache
    policy and whether frames share an LM forward (frames 4-7 are one block with K=4)."""
    if policy == "sink_reference" and frames_per_step > 1:
        pytest.skip("sink_reference reproduces one-frame-at-a-time streaming only")
    q = [QueryEvent(0.0, "a red circle bounces"), QueryEvent(2.0, "then a blue square")]  # the second at frame 4
    kw = dict(cache_policy=policy, window=180, sink_tokens=16, generate=False, frames_per_step=frames_per_step)
    a = scores(engine(model, qwen2_tokenizer, **kw).run(frames_of(embeds), q))
    changed = embeds.clone()
    changed[7:] = torch.randn_like(changed[7:])
    b = scores(engine(model, qwen2_tokenizer, **kw).run(frames_of(changed), q + [QueryEvent(4.0, "a late question")]))
    assert a[:7] == b[:7]  # bit-identical up to the last unchanged frame
    assert a[7:] != b[7:]


def test_sink_cache_equals_unbounded_while_the_context_fits(model, qwen2_tokenizer, embeds):
    q = [QueryEvent(0.0, "a dog jumps")]
    a = scores(engine(model, qwen2_tokenizer, cache_policy="unbounded", generate=False).run(frames_of(embeds), q))
    b = scores(engine(model, qwen2_tokenizer, cache_policy="sink", window=2048, sink_tokens=32, generate=False).run(frames_of(embeds), q))
    # the same tokens at the same positions; the keys only sit in other slots (summation order)
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("policy,cap", [("sink", 200), ("sliding", 200), ("dynamic_sink", None)])
def test_cache_length_is_constant_once_the_window_is_full(model, qwen2_tokenizer, embeds, policy, cap):
    eng = engine(model, qwen2_tokenizer, cache_policy=policy, window=200, sink_tokens=16, generate=False)
    recs = list(eng.run(frames_of(embeds), [QueryEvent(0.0, "a dog jumps")]))
    cap = cap or eng.policy.n_protected + 200  # dynamic_sink: the system turn and the query, plus the window
    lens = [r.cache_len for r in recs]
    first_full = next(i for i, n in enumerate(lens) if n == cap)
    assert first_full < len(lens) - 3
    assert all(n == cap for n in lens[first_full:])
    assert max(lens) == cap


def _fed_ids(eng):
    """Spy on the engine's forwards: the token ids each one feeds (frames as placeholder ids)."""
    log = []
    orig = eng._forward

    def spy(text, frame_embeds=None, **kw):
        n = 0 if frame_embeds is None else frame_embeds.shape[0]
        log.append([t for _, ids, _ in text for t in ids] + [151646] * (n * TPF))
        return orig(text, frame_embeds, **kw)

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


def test_two_queries_before_the_first_frame_in_reference_order_close_the_stream_turn(model, qwen2_tokenizer, embeds):
    """Reference order opens a stream turn after the first query; a second query before any frame
    closes it first, as every later query does (it was fed after an unclosed stream header)."""
    from models.chat import IM_END

    tmpl = ChatTemplate(qwen2_tokenizer, TPF)
    eng = engine(model, qwen2_tokenizer, cache_policy="unbounded", prompt_order="reference", generate=False)
    log = _fed_ids(eng)
    list(eng.run(frames_of(embeds[:1]), [QueryEvent(0.0, "a dog"), QueryEvent(0.0, "a cat")]))
    stream = tmpl.ids(STREAM_PROMPT)
    assert log[0] == tmpl.ids(user_turn("a dog")) + stream
    assert log[1] == tmpl.ids(IM_END) + tmpl.ids(user_turn("a cat")) + stream
    assert log[2] == tmpl.ids(system_turn(eng.system_prompt)) + [151646] * TPF


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


@pytest.mark.parametrize("remove", [False, True])
def test_a_response_asked_for_after_a_query_opens_the_assistant_turn_once(model, qwen2_tokenizer, embeds, remove):
    """``respond`` called right after ``add_query`` (or on a fresh engine, or twice in a row) follows
    the template: the user turn is already closed, so the assistant header comes without another
    <|im_end|> (it fed <|im_end|><|im_end|>), the system turn comes first on a fresh engine (it was
    left out), and after the frames the stream turn is closed as before."""
    from models.chat import GENERATION_PROMPT, STREAM_GENERATION_PROMPT

    tmpl = ChatTemplate(qwen2_tokenizer, TPF)
    eng = engine(model, qwen2_tokenizer, cache_policy="unbounded", max_new_tokens=2, remove_assistant_turns=remove)
    log = _fed_ids(eng)
    eng.add_query("what is it?")
    r1 = eng.respond(0.0)
    sys_ids = tmpl.ids(system_turn(eng.system_prompt))
    assert [t for step in log for t in step] == (sys_ids + tmpl.ids(user_turn("what is it?")) + tmpl.ids(GENERATION_PROMPT)
                                                 + r1.token_ids)
    del log[:]
    eng.process_frame(0.5, embeds[0])
    r2 = eng.respond(0.5)
    close = [] if remove else [tmpl.eos_id]
    assert [t for step in log for t in step] == (close + tmpl.ids(STREAM_PROMPT) + [151646] * TPF
                                                 + tmpl.ids(STREAM_GENERATION_PROMPT) + r2.token_ids)
    fresh = engine(model, qwen2_tokenizer, cache_policy="unbounded", max_new_tokens=1, remove_assistant_turns=remove)
    log = _fed_ids(fresh)
    r = fresh.respond(0.0)
    assert [t for step in log for t in step] == sys_ids + tmpl.ids(GENERATION_PROMPT) + r.token_ids


def test_remove_assistant_turns_restores_the_cache_exactly(model, qwen2_tokenizer, embeds):
    eng = engine(model, qwen2_tokenizer, cache_policy="sink", window=160, sink_tokens=16, remove_assistant_turns=True, max_new_tokens=4)
    for _ in eng.run(frames_of(embeds[:5]), [QueryEvent(0.0, "narrate")]):
        pass
    def state():
        return [[x.clone() for x in eng.store.kept(eng.policy.oldest_seq, layer)] for layer in range(2)]

    before = (state(), eng.describe_cache(), eng.policy.next_seq, eng.policy.ring_tail)
    n = len(eng.policy)
    resp = eng.respond(99.0)
    assert resp.n_tokens > 0
    assert len(eng.policy) == n
    for got, want in zip(state(), before[0]):  # the same tokens, keys and values, nothing of the response
        assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert (eng.describe_cache(), eng.policy.next_seq, eng.policy.ring_tail) == before[1:]
    keep = engine(model, qwen2_tokenizer, cache_policy="unbounded", max_new_tokens=4)
    list(keep.run(frames_of(embeds[:2]), [QueryEvent(0.0, "narrate")]))
    n = len(keep.policy)
    r = keep.respond(1.0)
    assert len(keep.policy) > n + r.n_tokens - 1
    assert keep.describe_cache()["spans"][-1]["kind"] == "response"


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


def test_a_failing_response_does_not_feed_its_frame_again(model, qwen2_tokenizer, embeds):
    """An error in a frame's step or response (here the first response fails) ends the stream: the
    records so far are kept, and that frame is not fed a second time after the half-made response
    (the flush after an error did, and yielded a record of it at the next frame index)."""
    eng = engine(model, qwen2_tokenizer, cache_policy="unbounded", max_new_tokens=2,
                 decision=DecisionConfig(score_heads="informative", threshold=-1.0))
    respond, calls = eng.respond, []

    def failing(time, trigger_score=float("nan")):
        calls.append(time)
        if len(calls) == 2:
            raise RuntimeError("generation failed")
        return respond(time, trigger_score)

    eng.respond = failing
    log = _fed_ids(eng)
    got = []
    with pytest.raises(RuntimeError, match="generation failed"):
        for r in eng.run(frames_of(embeds[:4]), [QueryEvent(0.0, "narrate")]):
            got.append(r)
    assert [(type(r).__name__, r.frame) for r in got] == [("FrameRecord", 0), ("ResponseRecord", 0)]
    assert sum(step.count(151646) for step in log) == 2 * TPF and calls == [0.0, 0.5]


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
    """aha_reference.md 11.7: append while L + q < W; then keep S + (W - S - q) old + q new tokens; the kept
    old keys move back by q positions whatever the number evicted (26 at the first overflow here, not
    49); the new tokens' positions start at the length before eviction, so they saturate at W."""
    W, S = 200, 16
    eng = engine(model, qwen2_tokenizer, cache_policy="sink_reference", window=W, sink_tokens=S, generate=False)
    pol = eng.policy
    calls = []
    orig = pol.plan

    def spy(segs, **kw):
        before, evicted, off = len(pol), pol.evicted_total, pol.offset
        plan = orig(segs, **kw)
        calls.append(dict(before=before, q=len(plan.pos), evicted=pol.evicted_total - evicted,
                          first_pos=int(plan.pos[0]) - pol.offset, rotated=pol.offset - off, after=len(pol)))
        return plan

    pol.plan = spy
    eng.add_query("a dog jumps")
    for e in frames_of(embeds[:6]):
        eng.process_frame(e.time, e.embeds)
    over = [c for c in calls if c["before"] + c["q"] >= W]
    assert over, "the window never overflowed"
    first = over[0]
    assert first["evicted"] == first["before"] - S - (W - S - first["q"]) and first["evicted"] != first["q"]
    for c in over:
        assert c["rotated"] == c["q"]  # kept old keys move back by q (here: the sink moves forward by q)
        assert c["first_pos"] == c["before"]  # positions start at the length before eviction
        assert c["after"] == W
    for c in calls:
        if c not in over:
            assert c["evicted"] == 0 and c["first_pos"] == c["before"]
    assert all(c["first_pos"] <= W for c in calls)
    spans = eng.describe_cache()["spans"]
    assert spans[0]["protected"] and spans[0]["tokens"] == S  # the first S tokens stay: the sink


def test_no_response_before_the_first_query_unless_asked(model, qwen2_tokenizer, embeds):
    kw = dict(cache_policy="unbounded", max_new_tokens=1, decision=DecisionConfig(score_heads="informative", threshold=-1.0))
    q = [QueryEvent(1.0, "what happens?")]
    times = [r.time for r in engine(model, qwen2_tokenizer, **kw).run(frames_of(embeds[:4]), q) if isinstance(r, ResponseRecord)]
    assert times == [1.0, 1.5]
    early = engine(model, qwen2_tokenizer, respond_before_query=True, **kw)
    times = [r.time for r in early.run(frames_of(embeds[:4]), q) if isinstance(r, ResponseRecord)]
    assert times == [0.0, 0.5, 1.0, 1.5]


def test_repetition_penalty_applies_to_the_tokens_of_the_response(model, qwen2_tokenizer):
    def scripted(eng):
        def fwd(text, frame_embeds=None, logits=False, evict=True, transient=False):
            out = torch.full((1, 1, 20), -10.0)
            out[0, 0, 7], out[0, 0, 8] = 5.0, 4.0
            return None, out, None

        eng._forward = fwd
        return eng

    plain = scripted(engine(model, qwen2_tokenizer, max_new_tokens=3, remove_assistant_turns=True))
    assert plain.respond(0.0).token_ids == [7, 7, 7]
    pen = scripted(engine(model, qwen2_tokenizer, max_new_tokens=3, remove_assistant_turns=True, repetition_penalty=2.0))
    # 7 (5.0) -> 7 penalised to 2.5 < 4.0 -> 8 -> 7 (2.5) beats 8 (2.0)
    assert pen.respond(0.0).token_ids == [7, 8, 7]


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_a_repetition_penalty_that_is_not_a_positive_number_is_refused(bad):
    """0 ran unpenalised without a word (read as no penalty); a negative or NaN one failed only at the
    stream's first response, after its frames were scored."""
    with pytest.raises(ValueError, match="repetition_penalty"):
        EngineConfig(repetition_penalty=bad)
    assert EngineConfig(repetition_penalty=1.2).repetition_penalty == 1.2


def test_the_frame_placeholder_is_never_generated(model, qwen2_tokenizer):
    """A generated <image> would be fed back as a frame without pixels (the tiny model, whose input
    and output embeddings are tied, did produce it): it is suppressed, the next best token wins."""
    ph = model.config.image_token_index
    eng = engine(model, qwen2_tokenizer, max_new_tokens=2, remove_assistant_turns=True)

    def fwd(text, frame_embeds=None, logits=False, evict=True, transient=False):
        out = torch.full((1, 1, ph + 10), -10.0)
        out[0, 0, ph], out[0, 0, 7] = 9.0, 4.0
        return None, out, None

    eng._forward = fwd
    assert eng.respond(0.0).token_ids == [7, 7]


def test_a_response_ends_at_endoftext_as_at_im_end(model, qwen2_tokenizer):
    """Qwen2's generation config stops on <|endoftext|> as well as <|im_end|>: a response that emits it
    ends there (it ran on to max_new_tokens, the tokens after it became the response and stayed in
    the cache), and a kept turn is closed with <|im_end|> (the stop token is not fed back)."""
    eot = qwen2_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    eng = engine(model, qwen2_tokenizer, max_new_tokens=6)
    fed, order = [], iter([7, eot, 9, 9, 9, 9, 9])

    def fwd(text, frame_embeds=None, logits=False, evict=True, transient=False):
        fed.extend(t for _, ids, _ in text for t in ids)
        out = torch.full((1, 1, eot + 10), -10.0)
        if logits:
            out[0, 0, next(order)] = 5.0
        return None, out, None

    eng._forward = fwd
    r = eng.respond(0.0)
    assert r.token_ids == [7] and r.n_tokens == 1 and r.content == qwen2_tokenizer.decode([7])
    assert eot not in fed and eng.pending == [eng.eos_id]  # the kept turn closes with <|im_end|>
    # the ids a model's generation config names stop it too
    model.generation_config.eos_token_id = [eng.eos_id, 9]
    try:
        eng = engine(model, qwen2_tokenizer, max_new_tokens=6)
        order = iter([7, 9, 8, 8, 8, 8])
        eng._forward = fwd
        assert eng.respond(0.0).token_ids == [7]
    finally:
        model.generation_config.eos_token_id = None


def test_bad_queries_and_cache_settings_are_refused(model, qwen2_tokenizer, embeds):
    """An empty query (it would be protected and streamed as the task), a query time that is not a
    number (NaN never compares <= a frame time: it and every later query were lost without a word),
    negative sink / protected counts (booked as 0, recorded as given) are errors."""
    eng = engine(model, qwen2_tokenizer, generate=False)
    for text in ("", "   \n"):
        with pytest.raises(ValueError, match="query is empty"):
            eng.add_query(text)
    with pytest.raises(ValueError, match="finite"):
        list(eng.run(frames_of(embeds[:2]), [QueryEvent(float("nan"), "a dog"), QueryEvent(0.0, "a cat")]))
    for kw in (dict(sink_tokens=-4), dict(max_protected=-1), dict(cache_policy="dynamic_sink", sink_tokens=-1)):
        with pytest.raises(ValueError, match=">= 0"):
            engine(model, qwen2_tokenizer, generate=False, **kw)


def test_the_cache_description_of_an_unbounded_cache_has_no_window(model, qwen2_tokenizer, embeds):
    """describe_cache (cache_at_end in highlights.json and the predictions) says the window the policy
    keeps to, as cache_record does: none under unbounded (it said the unused --window setting)."""
    eng = engine(model, qwen2_tokenizer, cache_policy="unbounded", window=300, generate=False)
    list(eng.run(frames_of(embeds[:8]), [QueryEvent(0.0, "a dog jumps")]))
    d = eng.describe_cache()
    assert d["window"] is None is eng.cfg.cache_record()["window"] and d["tokens"] > 300 and d["capacity"] is None
    assert engine(model, qwen2_tokenizer, cache_policy="sink", window=300).describe_cache()["window"] == 300


def test_max_protected_zero_is_used_as_given_and_refused_where_it_cannot_work(model, qwen2_tokenizer):
    """--max_protected 0 became the default (1024) without a word (``or``); it is now the value used:
    fine under sliding (nothing protected), an error at construction under sink / dynamic_sink, whose
    protected region must hold the system turn."""
    import argparse

    from test.engine_args import add_engine_args, engine_config

    ap = argparse.ArgumentParser()
    add_engine_args(ap)
    args = ap.parse_args(["--max_protected", "0", "--no_generate"])
    args.prompt_order, args.cache_policy, args.window, args.sink_tokens = "training", "sink", 300, 8
    cfg = engine_config(args)
    assert cfg.max_protected == 0
    with pytest.raises(ValueError, match="cannot hold the system turn"):
        StreamingEngine(model, qwen2_tokenizer, cfg)
    with pytest.raises(ValueError, match="cannot hold the system turn"):
        engine(model, qwen2_tokenizer, cache_policy="dynamic_sink", max_protected=20, generate=False)
    args.cache_policy = "sliding"
    assert StreamingEngine(model, qwen2_tokenizer, engine_config(args)).policy.max_protected == 0


def test_the_cache_description_keeps_sink_frames_apart_from_evictable_ones(model, qwen2_tokenizer, embeds):
    """A sink that ends on a frame boundary: frame 0 is protected, frames 1-2 are not (they were merged
    into one span said to be protected)."""
    eng = engine(model, qwen2_tokenizer, cache_policy="sink", window=600, sink_tokens=87, generate=False)
    list(eng.run(frames_of(embeds[:3])))  # system turn (34) + stream header (4) + frame 0 (49) = 87
    spans = [s for s in eng.describe_cache()["spans"] if s["kind"] == "frames"]
    assert [(s["first_frame"], s["last_frame"], s["tokens"], s["protected"]) for s in spans] == [(0, 0, 49, True), (1, 2, 98, False)]
