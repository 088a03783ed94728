"""Many streams advanced together (models/multistream.py): every stream's records equal running it alone.

Real Qwen2 tokenizer, 49-token frames, windows smaller than the streams (the caches evict), streams of
different lengths with queries at different times, more streams than lanes (streams join as others
finish), responses generated in some lanes beside lanes that only score, failures that cost one stream.
"""
import numpy as np
import pytest
import torch

from models.build import build_model
from models.decision import DecisionConfig
from models.multistream import MultiStreamEngine, Stopped
from models.streaming import EngineConfig, FrameEvent, FrameRecord, QueryEvent, ResponseRecord, StreamingEngine

TPF = 49
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    return build_model("aha-tiny", seed=0).eval()


def frames(n, seed, d=64):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(7, TPF, d, generator=g) * 0.5
    return [FrameEvent(float(i), embeds=base[i % 7]) for i in range(n)]


def streams(n=5, lengths=None):
    """Streams of different lengths, queries at different times (odd ones get a second one mid-stream)."""
    out = []
    for i in range(n):
        length = lengths[i] if lengths else 9 + 7 * i
        q = [QueryEvent(float(i), f"query number {i}: when does the red circle bounce?")]
        if i % 2:
            q.append(QueryEvent(length / 2, "and now, when does the blue square slide?"))
        out.append((f"s{i}", frames(length, seed=i), q))
    return out


def alone(model, tok, cfg, specs):
    out = {}
    for key, fr, q in specs:
        out[key] = list(StreamingEngine(model, tok, cfg).run(fr, q))
    return out


def check_equal(want: dict, got: dict, atol=1e-5):
    assert sorted(got) == sorted(want)
    for key in want:
        a, b = want[key], got[key]
        assert [type(r) for r in a] == [type(r) for r in b], key
        fa = np.array([(r.informative, r.relevance, r.uncertainty) for r in a if isinstance(r, FrameRecord)])
        fb = np.array([(r.informative, r.relevance, r.uncertainty) for r in b if isinstance(r, FrameRecord)])
        np.testing.assert_allclose(fb, fa, rtol=0, atol=atol, err_msg=key)
        assert [(r.frame, r.time, r.cache_len) for r in a if isinstance(r, FrameRecord)] == \
               [(r.frame, r.time, r.cache_len) for r in b if isinstance(r, FrameRecord)]
        assert [(r.frame, r.time, r.token_ids, r.content) for r in a if isinstance(r, ResponseRecord)] == \
               [(r.frame, r.time, r.token_ids, r.content) for r in b if isinstance(r, ResponseRecord)]


@pytest.mark.parametrize("k", [1, 4])
def test_streams_of_different_lengths_equal_each_alone(model, qwen2_tokenizer, k):
    """5 streams (9-37 frames, queries at 0-4 s and mid-stream) on 3 lanes: they join as others finish;
    each one's scores and cache lengths equal streaming it alone, while the window (300) evicts."""
    cfg = EngineConfig(generate=False, frames_per_step=k, cache_policy="sink", window=300)
    specs = streams()
    eng = MultiStreamEngine(model, qwen2_tokenizer, cfg, streams=3)
    got, caches = {}, {}

    def job(fr, q):
        def fn(lane):
            lane.reset()
            recs = list(lane.run(fr, q))
            return recs, lane.describe_cache()
        return fn

    order = []
    for key, (recs, cache), err in eng.run_jobs((key, job(fr, q)) for key, fr, q in specs):
        assert err is None
        got[key], caches[key] = recs, cache
        order.append(key)
    want = alone(model, qwen2_tokenizer, cfg, specs)
    check_equal(want, got)
    assert order[:2] == ["s0", "s1"]  # completion order: the short streams end first
    for key, fr, q in specs:  # what each cache holds at the end: the same spans, evictions included
        one = StreamingEngine(model, qwen2_tokenizer, cfg)
        list(one.run(fr, q))
        assert caches[key] == one.describe_cache()
        assert caches[key]["evicted_tokens"] > 0 or len(fr) < 6


def test_a_generating_stream_never_stalls_the_others(model, qwen2_tokenizer):
    """One stream has a query and responds (up to 6 tokens at most frames); three have none and only
    score. Everyone's records equal streaming alone, and the batched forwards number exactly the
    longest lane's own: the scoring lanes never waited for a generated token."""
    cfg = EngineConfig(generate=True, cache_policy="sink", window=400, max_new_tokens=6,
                       decision=DecisionConfig(score_heads="informative", threshold=0.3))
    specs = [("talker", frames(12, seed=1), [QueryEvent(0.0, "describe what happens")])]
    specs += [(f"quiet{i}", frames(12 + 4 * i, seed=10 + i), []) for i in range(3)]
    eng = MultiStreamEngine(model, qwen2_tokenizer, cfg, streams=4)
    steps, per_lane = [], {}
    orig = eng._step

    def spy(reqs):
        steps.append(len(reqs))
        for r in reqs:
            per_lane[r.lane.lane] = per_lane.get(r.lane.lane, 0) + 1
        return orig(reqs)

    eng._step = spy
    got = dict(eng.run_streams(specs))
    check_equal(alone(model, qwen2_tokenizer, cfg, specs), got)
    n_resp = sum(isinstance(r, ResponseRecord) for r in got["talker"])
    assert n_resp >= 3 and all(not isinstance(r, ResponseRecord) for k in got if k != "talker" for r in got[k])
    assert len(steps) == max(per_lane.values())  # ticks = the busiest lane's forwards: nobody waited
    assert max(per_lane.values()) > 12 + n_resp * 2  # the talker's tokens took forwards of their own
    assert steps[1] == 4  # the quiet lanes stepped beside the talker's first tokens


@pytest.mark.parametrize("policy,extra", [
    ("dynamic_sink", {}),
    ("sliding", {}),
    ("sink_reference", {}),
    ("sink", {"remove_assistant_turns": True}),
    ("sink", {"prompt_order": "reference"}),
    pytest.param("unbounded", {}, marks=pytest.mark.slow),
])
def test_every_policy_and_token_order_with_responses(model, qwen2_tokenizer, policy, extra):
    """Responses in every lane, each policy's own eviction and positions (sink_reference's quirks),
    undone responses, the reference token order; unbounded: one lane's ring grows past its first
    allocation (4,096 slots) while the others keep theirs."""
    lengths = [90, 12, 20] if policy == "unbounded" else None
    cfg = EngineConfig(generate=True, cache_policy=policy, window=300, sink_tokens=16, max_new_tokens=3,
                       decision=DecisionConfig(score_heads="informative", threshold=0.45), **extra)
    specs = streams(3, lengths)
    eng = MultiStreamEngine(model, qwen2_tokenizer, cfg, streams=2)
    got = dict(eng.run_streams(specs))
    check_equal(alone(model, qwen2_tokenizer, cfg, specs), got)
    assert sum(isinstance(r, ResponseRecord) for recs in got.values() for r in recs) >= 3
    if policy == "unbounded":
        assert eng.pool.ring_size > 4096 and max(r.cache_len for r in got["s0"] if isinstance(r, FrameRecord)) > 4096


def test_a_failing_stream_costs_that_stream_only(model, qwen2_tokenizer):
    cfg = EngineConfig(generate=False, cache_policy="sink", window=300)
    specs = streams(3)

    def broken():
        yield from frames(5, seed=9)
        raise RuntimeError("decoder error at 5 s")

    too_long = [QueryEvent(0.0, "why " * 400)]  # a query turn that cannot fit the 300-token window

    def job(fr, q):
        def fn(lane):
            lane.reset()
            return list(lane.run(fr, q))
        return fn

    jobs = [(k, job(fr, q)) for k, fr, q in specs]
    jobs.insert(1, ("broken", job(broken(), specs[0][2])))
    jobs.insert(3, ("too_long", job(frames(4, seed=3), too_long)))
    eng = MultiStreamEngine(model, qwen2_tokenizer, cfg, streams=2)
    results = {k: (r, e) for k, r, e in eng.run_jobs(jobs)}
    assert isinstance(results["broken"][1], RuntimeError) and "decoder error" in str(results["broken"][1])
    assert isinstance(results["too_long"][1], ValueError) and "does not fit" in str(results["too_long"][1])
    check_equal(alone(model, qwen2_tokenizer, cfg, specs), {k: results[k][0] for k, _, _ in specs})
    # the engine is reusable after a run, and a lane outside run_jobs refuses to step
    assert len(dict(eng.run_streams(specs[:1]))) == 1
    with pytest.raises(Stopped):
        list(eng.lanes[0].run(frames(2, seed=0), []))


def test_a_failing_batched_forward_stops_every_lane(model, qwen2_tokenizer):
    eng = MultiStreamEngine(model, qwen2_tokenizer, EngineConfig(generate=False, window=300), streams=2)
    calls = []

    def failing(reqs):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("out of device memory")
        return orig(reqs)

    orig, eng._step = eng._step, failing
    with pytest.raises(MemoryError):
        list(eng.run_streams(streams(4)))
    eng._step = orig
    assert len(dict(eng.run_streams(streams(2)))) == 2  # nothing left hanging


def test_the_batched_frame_step_compiles_once_per_cache_layout(model, qwen2_tokenizer):
    """fullgraph=True; one graph per cache layout serves every full K-frame block of every lane, evictions
    and re-bases included (text steps and the last partial blocks run eagerly, in a forward of their own)."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    cfg = EngineConfig(generate=False, frames_per_step=4, cache_policy="sink", window=300)
    specs = streams(3, [30, 22, 41])
    eng = MultiStreamEngine(model, qwen2_tokenizer, cfg, streams=3, split_rows=0)
    eng.compile(backend=backend)
    layouts, compiled = set(), eng._compiled

    def step(*a):
        layouts.add(eng.pool.K.shape)
        return compiled(*a)
    eng._compiled = step
    got = dict(eng.run_streams(specs))
    # one graph per cache layout: the protected region grows (64 tokens at a time) when a longer query
    # turn arrives in some lane, which changes the buffers' shapes; frames and evictions never do
    assert len(graphs) == len(layouts) == 2
    check_equal(alone(model, qwen2_tokenizer, cfg, specs), got)
    # ticks that mix full blocks with query turns or partial blocks are split, so the full blocks still
    # take the compiled step (one padded forward per tick would have run them eagerly)
    assert eng.stats["compiled_forwards"] > eng.stats["ticks"] - eng.stats["compiled_forwards"] > 0
    torch._dynamo.reset()


@pytest.mark.parametrize("generate", [False, True])
def test_split_ticks_equal_each_alone_and_pad_less(model, qwen2_tokenizer, generate):
    """split_rows=0: every tick whose lanes ask for different lengths (query turns, last partial blocks,
    generated tokens beside frame blocks) runs as two forwards, lanes swapped between them; every
    stream's records still equal streaming it alone, and fewer padding rows are computed than with
    one padded forward per tick (split_rows=None), over the same ticks."""
    extra = dict(generate=True, max_new_tokens=3, decision=DecisionConfig(score_heads="informative", threshold=0.45)) \
        if generate else dict(generate=False, frames_per_step=4)
    cfg = EngineConfig(cache_policy="sink", window=300, **extra)
    specs = streams(5)
    stats, swaps = {}, {}
    for split in (None, 0):
        eng = MultiStreamEngine(model, qwen2_tokenizer, cfg, streams=3, split_rows=split)
        swaps[split] = 0
        orig_swap = eng.pool.swap

        def swap(a, b, orig_swap=orig_swap, split=split):
            swaps[split] += 1
            orig_swap(a, b)
        eng.pool.swap = swap
        got = dict(eng.run_streams(specs))
        check_equal(alone(model, qwen2_tokenizer, cfg, specs), got)
        stats[split] = dict(eng.stats)
    one, two = stats[None], stats[0]
    assert one["forwards"] == one["ticks"] and swaps[None] == 0
    assert two["ticks"] == one["ticks"] and two["forwards"] > two["ticks"] and swaps[0] > 0
    assert two["rows"] == one["rows"] and two["padded_rows"] < one["padded_rows"]
    if not generate:  # the full K-frame blocks get forwards of their own: the ones a compiled engine runs compiled
        assert two["full_block_forwards"] > one["full_block_forwards"]
    if generate:
        assert any(isinstance(r, ResponseRecord) for recs in got.values() for r in recs)


def test_bad_split_rows_is_refused(model, qwen2_tokenizer):
    for bad in (-1, "block", 1.5, True):
        with pytest.raises(ValueError, match="split_rows"):
            MultiStreamEngine(model, qwen2_tokenizer, EngineConfig(generate=False), streams=2, split_rows=bad)


@pytest.mark.parametrize("split_rows, lengths, want", [
    ("auto", [392] * 12 + [70] * 4, [[392] * 12, [70] * 4]),  # 4 query turns padded to full blocks: 1,288 rows
    ("auto", [392] * 15 + [70], None),  # one query turn: 322 padding rows, less than 8 frames' (392)
    ("auto", [49] * 8 + [1] * 8, None),  # generated tokens beside single frames: 384 rows, not worth a forward
    ("auto", [392] * 8 + [200] * 4 + [1] * 4, [[392] * 8 + [200] * 4, [1] * 4]),  # the best of the cuts (1,564 rows)
    (0, [392] * 15 + [70], [[392] * 15, [70]]),
    (0, [392] * 4, None),  # nothing to save
    (None, [392] * 4 + [1] * 12, None),
])
def test_a_step_splits_where_it_saves_more_rows_than_split_rows(model, qwen2_tokenizer, split_rows, lengths, want):
    from types import SimpleNamespace

    eng = MultiStreamEngine(model, qwen2_tokenizer, EngineConfig(generate=False), streams=2, split_rows=split_rows)
    reqs = [SimpleNamespace(plan=SimpleNamespace(slots=[0] * n)) for n in lengths]
    groups = eng._groups(reqs)
    got = [[len(r.plan.slots) for r in g] for g in groups]
    assert got == ([lengths] if want is None else want)


@pytest.mark.parametrize("extra", [{}, {"remove_assistant_turns": True}])
def test_a_compiled_split_step_leaves_the_other_lanes_protected_keys_alone(model, qwen2_tokenizer, extra):
    """Generation with the compiled frame step and split steps (split_rows=0): the frames of some lanes take
    the compiled step (static shapes: it refreshes every lane's protected copies) while other lanes feed
    generated tokens in a forward of their own, under a window that evicts (protected keys rotated). Every
    stream's records, responses included, still equal streaming it alone, and after every step each
    lane's protected copies are its own keys rotated by its own shift. (With remove_assistant_turns a
    lane's token forwards need not evict, so they read copies no later eviction has refreshed: an
    unrotated copy would change its responses.)"""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    cfg = EngineConfig(generate=True, cache_policy="sink", window=300, max_new_tokens=4,
                       decision=DecisionConfig(score_heads="informative", threshold=0.3), **extra)
    specs = streams(4, [26, 18, 30, 22])
    eng = MultiStreamEngine(model, qwen2_tokenizer, cfg, streams=3, split_rows=0)
    eng.compile(backend=backend)
    orig, checked = eng._step, []

    def step(reqs):  # after every step: each lane's protected copies are its pristine keys rotated by its own shift
        out = orig(reqs)
        pool = eng.pool
        for r in reqs:
            shift = r.lane.policy.last_shift
            if pool.protected_size and shift is not None:
                full = np.zeros((pool.copies, pool.protected_size), np.int64)
                full[:, : shift.shape[1]] = shift
                ang = torch.from_numpy(full).float()[..., None] * pool.inv_freq2
                cos, sin = ang.cos().transpose(0, 1), ang.sin().transpose(0, 1)  # [P, copies, d]
                lane, (rs, p, c) = r.lane.lane, (pool.ring_size, pool.protected_size, pool.copies)
                want = pool.Kp[:, lane, ..., None, :] * cos + pool.Kp_rot[:, lane, ..., None, :] * sin
                region = pool.K[:, lane, :, rs: rs + p * c, :].reshape(want.shape)
                used = r.lane.policy.n_protected
                torch.testing.assert_close(region[:, :, :used], want[:, :, :used], rtol=0, atol=1e-5)
                checked.append(lane)
        return out
    eng._step = step
    got = dict(eng.run_streams(specs))
    check_equal(alone(model, qwen2_tokenizer, cfg, specs), got)
    assert len(checked) > 100
    assert eng.stats["compiled_forwards"] > 0 and eng.stats["forwards"] > eng.stats["ticks"]
    assert sum(isinstance(r, ResponseRecord) for recs in got.values() for r in recs) >= 4
    torch._dynamo.reset()


def test_a_stream_that_fails_on_a_nan_head_or_a_response_costs_that_stream_only(model, qwen2_tokenizer):
    """Generating streams on 2 lanes: one stream's frame 3 has NaN features (the decision rule refuses its
    NaN head), another's second response fails. Each failed stream's records stop where streaming it
    alone stops them (that frame is not fed again); the streams after them on the same lanes equal
    streaming alone: the NaN keys and values the failed stream left in its lane used to spoil every
    later stream of that lane (a masked slot still reads 0 * NaN), as they did a reused StreamingEngine."""
    cfg = EngineConfig(generate=True, cache_policy="sink", window=300, max_new_tokens=3,
                       decision=DecisionConfig(score_heads="informative", threshold=0.3))
    nan = frames(6, seed=5)
    nan[3] = FrameEvent(3.0, embeds=torch.full_like(nan[3].embeds, float("nan")))
    ask = [QueryEvent(0.0, "what happens?")]
    specs = streams(3)

    def failing_response(lane):
        respond, calls = lane.respond, []

        def fn(time, trigger_score=float("nan")):
            calls.append(time)
            if len(calls) == 2:
                raise RuntimeError("generation failed")
            return respond(time, trigger_score)
        return fn

    def job(fr, q, sink, fail=False):
        def fn(lane):
            lane.reset()
            if fail:
                lane.respond = failing_response(lane)
            try:
                sink.extend(lane.run(fr, q))
            finally:
                lane.__dict__.pop("respond", None)
            return sink
        return fn

    got = {key: [] for key in ["nan", "fails", *(k for k, _, _ in specs)]}
    jobs = [("nan", job(nan, ask, got["nan"])), ("fails", job(frames(6, seed=6), ask, got["fails"], fail=True))]
    jobs += [(k, job(fr, q, got[k])) for k, fr, q in specs]
    eng = MultiStreamEngine(model, qwen2_tokenizer, cfg, streams=2)
    errors = {k: e for k, _, e in eng.run_jobs(jobs)}
    assert "non-finite" in str(errors.pop("nan")) and "generation failed" in str(errors.pop("fails"))
    assert all(e is None for e in errors.values())
    check_equal(alone(model, qwen2_tokenizer, cfg, specs), {k: got[k] for k, _, _ in specs})

    one = StreamingEngine(model, qwen2_tokenizer, cfg)
    for key, fr, fail in (("nan", nan, False), ("fails", frames(6, seed=6), True)):
        one.reset()
        if fail:
            one.respond = failing_response(one)
        want = []
        with pytest.raises((ValueError, RuntimeError)):
            want.extend(one.run(fr, ask))
        one.__dict__.pop("respond", None)
        check_equal({key: want}, {key: got[key]})
    frames_of = {k: [r.frame for r in got[k] if isinstance(r, FrameRecord)] for k in ("nan", "fails")}
    # the failing frame (3; 1, the second response) has no record and is not fed again
    assert frames_of == {"nan": [0, 1, 2], "fails": [0]} and len(got["fails"]) == 2
    # a StreamingEngine reused after the NaN stream (reset between streams) equals a fresh one too
    key, fr, q = specs[0]
    one.reset()
    with pytest.raises(ValueError, match="non-finite"):
        list(one.run(nan, ask))
    one.reset()
    check_equal(alone(model, qwen2_tokenizer, cfg, specs[:1]), {key: list(one.run(fr, q))})


def test_lanes_follow_the_single_stream_response_rules(model, qwen2_tokenizer):
    """The response rules live in StreamingEngine and lanes inherit them (no copy of their own): a response
    stops at the generation config's eos ids (and <|endoftext|>: the same stop_ids), under a repetition
    penalty; ``respond`` right after ``add_query`` or on a fresh (or reused) lane opens the assistant turn
    once, after the system turn; two queries before the first frame in reference order close the stream
    turn. Every lane's records equal the same calls on a StreamingEngine."""
    cfg = EngineConfig(generate=True, cache_policy="sink", window=300, max_new_tokens=4, repetition_penalty=1.3,
                       decision=DecisionConfig(score_heads="informative", threshold=0.3))
    specs = streams(3)
    free = alone(model, qwen2_tokenizer, cfg, specs)
    said = [r.token_ids for recs in free.values() for r in recs if isinstance(r, ResponseRecord)]
    stop = next(ids[1] for ids in said if len(ids) > 1)  # a token some response says after its first
    eot = qwen2_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.generation_config.eos_token_id = [qwen2_tokenizer.convert_tokens_to_ids("<|im_end|>"), stop]
    try:
        eng = MultiStreamEngine(model, qwen2_tokenizer, cfg, streams=2)
        assert all(lane.stop_ids == StreamingEngine(model, qwen2_tokenizer, cfg).stop_ids for lane in eng.lanes)
        assert {stop, eot} <= eng.lanes[0].stop_ids
        got = dict(eng.run_streams(specs))
        check_equal(alone(model, qwen2_tokenizer, cfg, specs), got)
    finally:
        model.generation_config.eos_token_id = None
    cut = [r.token_ids for recs in got.values() for r in recs if isinstance(r, ResponseRecord)]
    assert all(stop not in ids for ids in cut) and len(cut) == len(said) and cut != said

    emb = [f.embeds for f in frames(3, seed=4)]

    def calls(ask_first):
        def fn(e):
            e.reset()
            out = []
            if ask_first:
                e.add_query("what is it?", 0.0)
            out.append(e.respond(0.0))
            for i in range(3):
                out.extend(r for r in e.process_frame(0.5 + i, emb[i]) if r is not None)
            out.append(e.respond(3.0))
            return out
        return fn

    eng = MultiStreamEngine(model, qwen2_tokenizer, cfg, streams=2)
    jobs = [("asked", calls(True)), ("fresh", calls(False)), ("asked again", calls(True))]  # the third reuses a lane
    got = {k: r for k, r, e in eng.run_jobs(jobs) if e is None}
    check_equal({k: fn(StreamingEngine(model, qwen2_tokenizer, cfg)) for k, fn in jobs}, got)

    ref = EngineConfig(generate=True, prompt_order="reference", cache_policy="sink", window=300, max_new_tokens=3,
                       decision=DecisionConfig(score_heads="informative", threshold=0.3))
    two = [(f"r{i}", frames(8, seed=20 + i), [QueryEvent(0.0, "a dog"), QueryEvent(0.0, "a cat")]) for i in range(3)]
    got = dict(MultiStreamEngine(model, qwen2_tokenizer, ref, streams=2).run_streams(two))
    check_equal(alone(model, qwen2_tokenizer, ref, two), got)


@pytest.mark.parametrize("shape", [(TPF, 63), (TPF + 1, 64)])
def test_a_stream_with_malformed_frame_tokens_costs_that_stream_only(model, qwen2_tokenizer, shape):
    """One stream's frame 2 has tokens of the wrong size (another model's feature file: hidden size 63, or 50
    tokens a frame): that stream fails with the error a StreamingEngine gives, at the same record; the
    other streams go on and equal streaming alone (the shape error was raised inside the batched forward
    and stopped every lane)."""
    cfg = EngineConfig(generate=False, cache_policy="sink", window=300)
    bad = frames(4, seed=3)
    bad[2] = FrameEvent(2.0, embeds=torch.randn(*shape))
    specs = streams(2)
    sink = []

    def job(fr, q, out=None):
        def fn(lane):
            lane.reset()
            recs = [] if out is None else out
            recs.extend(lane.run(fr, q))
            return recs
        return fn

    eng = MultiStreamEngine(model, qwen2_tokenizer, cfg, streams=2)
    res = {k: (r, e) for k, r, e in eng.run_jobs([("bad", job(bad, [], sink))] + [(k, job(fr, q)) for k, fr, q in specs])}
    want = []
    with pytest.raises(ValueError, match="frame tokens must be") as single:
        want.extend(StreamingEngine(model, qwen2_tokenizer, cfg).run(bad, []))
    assert isinstance(res["bad"][1], ValueError) and str(res["bad"][1]) == str(single.value)
    check_equal({"bad": want}, {"bad": sink})
    assert [r.frame for r in sink] == [0, 1]
    check_equal(alone(model, qwen2_tokenizer, cfg, specs), {k: res[k][0] for k, _, _ in specs})
