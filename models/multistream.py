"""Many independent streams advanced together: one LM forward over the frames of all of them.

    engine = MultiStreamEngine(model, tokenizer, EngineConfig(generate=False, frames_per_step=8), streams=16)
    for key, records in engine.run_streams((item_id, frames, queries) for ...):   # as each stream ends
        ...
    # or any per-stream work: fn(lane) runs on a lane, a StreamingEngine
    for key, result, error in engine.run_jobs((item_id, fn) for ...):
        ...

Each stream runs on a *lane*: a ``models.streaming.StreamingEngine`` of its own (cache policy, token
order, queries, decision rule, responses, frame blocks: the single-stream code, unchanged) whose
device step is handed to this engine instead of being run. Every lane runs its stream on a thread of
its own (host work: decoding, the cache book-keeping, the decision rule); when every lane in flight
has handed in its next forward, the engine runs them as one batched forward over the shared cache
(``models.kv_batch.BatchKVStore``: one lane per stream, each with its own slots, positions, mask and
protected copies), and gives each lane its heads and logits. Lanes whose forward is shorter (a query
turn, a stream's last partial block, one generated token) are padded; padding rows write to a scratch
slot no real row sees. A step whose short requests would cost more than ``split_rows`` padding rows
runs as two forwards instead (the longest requests, then the others; lanes swapped into place between
them): every item starts with a text-only query turn and ends with a partial block, so with one padded
forward per step a quarter of the rows computed were padding (instructions/performance.md).

Streams of any length join and finish at any time: a finished lane takes the next job at once, and
the streams in flight are kept at the front of the lane axis, so a forward costs the streams in
flight, not the lane count. A lane that generates a response feeds one token per forward while the
other lanes go on with their frames: the others are never stalled by it; each of its tokens rides
along with their next forward. Every stream's records equal running it alone (the same plans, the
same arithmetic per row; batched matrix products only change the summation blocking: fp32 within 1e-5).
A stream's own errors (a decision rule refusing a NaN head, a failed response, frame tokens of the
wrong shape, a cache that cannot hold a query) are raised in its lane's host code before any forward
and cost that stream only, its records stopping where a StreamingEngine's would; a lane is zeroed
when it takes its next stream (``BatchKVStore.reset_lane``). Only a failing batched forward stops all.

``compile``: the frame-only batched step (every lane a full K-frame block, static shapes: all lanes,
all slots) is compiled as the single-stream step is; other forwards run eagerly. A split step's
forward of full blocks takes the compiled step; with one padded forward per step, hardly any step of a
benchmark has every lane in a full block. The split rule counts rows as eager forwards compute them: a
compiled forward computes every lane (the others as padding), so with ``compile`` a split can compute
more rows than one padded forward; whether the compiled step repays that is a GPU measurement
(instructions/performance.md). Between the two forwards of a split step lanes are swapped into place
(two lanes' K/V copied each), typically about two swaps per split step. ``stats`` counts forwards,
rows and padding.
"""
from __future__ import annotations

import dataclasses
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from models.cache import Plan, model_inv_freq
from models.kv_batch import BatchKVStore
from models.kv_store import BIG
from models.stream_io import Uploader
from models.streaming import EngineConfig, StreamingEngine, compiled_step, frame_heads, inference_model


class Stopped(RuntimeError):
    """Raised in a lane whose engine stopped (another lane's forward failed, or the caller stopped reading)."""


@dataclass
class _Request:
    lane: "_Lane"
    plan: Plan
    ids: list
    frames: torch.Tensor | None  # [n, tokens_per_frame, D]
    logits: bool

    @property
    def n_frames(self) -> int:
        return 0 if self.frames is None else self.frames.shape[0]


class _LaneStore:
    """What the single-stream host code asks of its cache, answered by the lane's part of the shared store."""

    def __init__(self, lane: "_Lane"):
        self.lane = lane
        self.length = 0

    def reset(self) -> None:
        self.lane.hub.pool.reset_lane(self.lane.lane)
        self.length = 0

    def clear(self, slots: list[int]) -> None:  # ring slots: the same in both layouts
        self.lane.hub.pool.clear(self.lane.lane, slots)

    def kept(self, lo: int, layer: int = 0, copy: int = 0):
        return self.lane.hub.pool.kept(self.lane.lane, lo, layer, copy)


class _Lane(StreamingEngine):
    """A StreamingEngine whose forwards are batched with the other lanes' by ``hub``."""

    def __init__(self, hub: "MultiStreamEngine", index: int, model, tokenizer, cfg: EngineConfig):
        super().__init__(model, tokenizer, cfg)
        self.hub, self.lane = hub, index
        self.store = _LaneStore(self)

    def compile(self, backend=None, mode=None) -> None:
        raise ValueError("compile the MultiStreamEngine, not one of its lanes")

    def _execute(self, plan, ids, frame_embeds, logits):
        return self.hub._submit(self, _Request(self, plan, ids, frame_embeds, logits))


AUTO_SPLIT_FRAMES = 8  # split_rows="auto": a step splits when that saves more than this many frames' rows


def check_split_rows(split_rows) -> None:
    if not (split_rows is None or split_rows == "auto" or (isinstance(split_rows, int) and not isinstance(split_rows, bool)
                                                             and split_rows >= 0)):
        raise ValueError(f"split_rows must be None, 'auto' or an integer >= 0, got {split_rows!r}")


class MultiStreamEngine:
    def __init__(self, model, tokenizer, cfg: EngineConfig | None = None, streams: int = 4, split_rows: int | str | None = "auto"):
        if not isinstance(streams, int) or streams < 1:
            raise ValueError(f"streams must be an integer >= 1, got {streams!r}")
        check_split_rows(split_rows)
        self.cfg = cfg or EngineConfig()
        # a tick whose lanes ask for forwards of very different lengths (a query turn or a stream's last
        # partial block beside full K-frame blocks) runs as two forwards when that computes more than
        # ``split_rows`` fewer padding rows; None: always one forward; "auto": 8 frames' rows (392 at 49
        # tokens per frame), whatever frames_per_step is: an extra forward of the 7B on a GPU costs about
        # what a few hundred rows do (reading the weights once more; more when eager), so a generated
        # token (1 row) beside 1-frame requests is not worth a forward of its own. On a CPU with aha-tiny
        # a forward is cheap and 0 is faster still (instructions/performance.md).
        self.split_rows = split_rows
        self.model = inference_model(model, self.cfg.merge_lora).eval()  # merged once, shared by the lanes
        lane_cfg = dataclasses.replace(self.cfg, compile=False, merge_lora=False)
        self.lanes = [_Lane(self, i, self.model, tokenizer, lane_cfg) for i in range(streams)]
        first = self.lanes[0]
        self.tpf, self.lm, self.frame_size, self.system_prompt = first.tpf, first.lm, first.frame_size, first.system_prompt
        self.frame_resize = first.frame_resize
        tc = self.model.config.text_config
        head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
        self.pool = BatchKVStore(streams, tc.num_hidden_layers, tc.num_key_value_heads, head_dim, self.dtype, self.device,
                                 model_inv_freq(self.model))
        self.uploader = Uploader(self.device)
        # how well the lanes filled the batched forwards (scripts/bench/scale_out.py records it): rows
        # = new tokens of the lanes in flight, padded_rows = the rows computed (lanes x the longest)
        self.stats = dict.fromkeys(("ticks", "forwards", "full_block_forwards", "compiled_forwards", "lanes", "rows",
                                    "padded_rows"), 0)
        self._compiled = None
        self._cond = threading.Condition()
        self._running = False
        if self.cfg.compile:
            self.compile()

    @property
    def streams(self) -> int:
        return len(self.lanes)

    @property
    def device(self) -> torch.device:
        return self.model.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.lm_head.weight.dtype

    def compile(self, backend: str | None = None, mode: str | None = None) -> None:
        """Compile the frame-only batched step (static shapes: every lane, every slot read, masked)."""
        if self.cfg.cache_policy == "unbounded":
            raise ValueError("compile needs a bounded cache (its shapes grow with an unbounded one)")
        if mode is None and backend is None and self.device.type == "cuda":
            mode = "reduce-overhead"
        self.pool.static = True
        self._compiled = compiled_step(self._frame_step, self.lanes[0].policy, backend, mode)

    # ------------------------------------------------------------------ scheduling
    def run_streams(self, streams: Iterable[tuple[Any, Iterable, Iterable]], **run_kw) -> Iterator[tuple[Any, list]]:
        """(key, frames, queries) per stream -> (key, its records: FrameRecord / ResponseRecord) as each
        stream ends; ``run_kw`` go to ``StreamingEngine.run``. A failing stream raises."""
        def job(frames, queries):
            def fn(lane):
                lane.reset()
                return list(lane.run(frames, queries, **run_kw))
            return fn

        for key, records, error in self.run_jobs((key, job(frames, queries)) for key, frames, queries in streams):
            if error is not None:
                raise error
            yield key, records

    def run_jobs(self, jobs: Iterable[tuple[Any, Callable[[StreamingEngine], Any]]]) -> Iterator[tuple[Any, Any, BaseException | None]]:
        """Run ``fn(lane)`` for every ``(key, fn)`` of ``jobs``, up to ``streams`` at a time, each on a lane
        (a StreamingEngine; reset it first) whose LM forwards are batched with the other lanes'. Yields
        ``(key, result, None)`` or ``(key, None, error)`` as jobs finish (completion order). Jobs are
        taken from ``jobs`` lazily, as lanes free up. An error in a batched forward stops every lane and
        is raised here."""
        with self._cond:
            if self._running:
                raise RuntimeError("this MultiStreamEngine is already running jobs")
            self._running = True
        self._jobs = iter(jobs)
        self._stop = False
        self._busy = len(self.lanes)  # lanes doing host work (not waiting for a forward)
        self._alive = set(self.lanes)
        self._requests: dict = {}
        self._results: dict = {}
        self._done: deque = deque()
        self._fatal: BaseException | None = None
        threads = [threading.Thread(target=self._lane_main, args=(lane,), name=f"stream-lane-{lane.lane}", daemon=True)
                   for lane in self.lanes]
        for t in threads:
            t.start()
        try:
            while True:
                with self._cond:
                    while self._busy and not self._done:
                        self._cond.wait()
                    done = list(self._done)
                    self._done.clear()
                    reqs = list(self._requests.values()) if not self._busy else []
                    self._requests.clear() if reqs else None
                    over = not self._alive and not self._busy
                    fatal = self._fatal
                if fatal is not None:
                    raise fatal
                yield from done
                if reqs:
                    try:
                        out = self._step(reqs)
                    except BaseException as e:
                        self._post(reqs, [Stopped(f"stopped: a batched forward failed ({type(e).__name__}: {e})")] * len(reqs))
                        raise
                    self._post(reqs, out)
                elif over:
                    break
        finally:
            with self._cond:
                self._stop = True
                for lane in list(self._requests):
                    self._results[lane] = Stopped("stopped")
                    self._busy += 1
                self._requests.clear()
                self._cond.notify_all()
            for t in threads:
                t.join(timeout=30)
            self._fatal = None
            with self._cond:
                self._running = False

    def _post(self, reqs, out) -> None:
        with self._cond:
            for r, o in zip(reqs, out):
                self._results[r.lane] = o
            self._busy += len(reqs)
            self._cond.notify_all()

    def _lane_main(self, lane: "_Lane") -> None:
        while True:
            with self._cond:
                job = None
                if not self._stop:
                    try:
                        job = next(self._jobs, None)
                    except BaseException as e:  # noqa: B036 - a broken job source ends the run, raised by run_jobs
                        self._fatal, self._stop = e, True
                if job is None:
                    self._busy -= 1
                    self._alive.discard(lane)
                    self._cond.notify_all()
                    return
            key, fn = job
            try:
                result, error = fn(lane), None
            except BaseException as e:  # noqa: B036 - handed to the caller with its key
                result, error = None, e
            with self._cond:
                self._done.append((key, result, error))
                self._cond.notify_all()

    def _submit(self, lane: "_Lane", req: _Request):
        with self._cond:
            if not self._running or self._stop:
                raise Stopped("a lane's forward runs only inside MultiStreamEngine.run_jobs")
            self._requests[lane] = req
            self._busy -= 1
            self._cond.notify_all()
            while lane not in self._results:
                self._cond.wait()
            out = self._results.pop(lane)
        if isinstance(out, BaseException):
            raise out
        return out

    # ------------------------------------------------------------------ the batched forward
    def _compact(self, reqs: list[_Request], active: set) -> list[_Request]:
        """Bring the lanes of this forward to indices 0..m-1; sorted by index. A lane in the way is swapped
        out when it is ``active`` (in the tick's other forward), else overwritten (a finished stream's)."""
        m = len(reqs)
        flying = {r.lane for r in reqs}
        at = {lane.lane: lane for lane in self.lanes}
        holes = sorted(i for i in range(m) if at[i] not in flying)
        movers = sorted((lane for lane in flying if lane.lane >= m), key=lambda lane: lane.lane)
        for lane, dst in zip(movers, holes):
            other = at[dst]
            (self.pool.swap if other in active else self.pool.move)(lane.lane, dst)
            other.lane, lane.lane = lane.lane, dst
        return sorted(reqs, key=lambda r: r.lane.lane)

    def _groups(self, reqs: list[_Request]) -> list[list[_Request]]:
        """The tick's requests as one forward, or as two (the longest ones, then the others) when that
        computes more than ``split_rows`` fewer rows (each forward pads its lanes to its longest)."""
        if self.split_rows is None or len(reqs) < 2:
            return [reqs]
        rows = sorted(reqs, key=lambda r: -len(r.plan.slots))
        n = [len(r.plan.slots) for r in rows]
        extra = AUTO_SPLIT_FRAMES * self.tpf if self.split_rows == "auto" else self.split_rows
        saved, cut = max((len(n) * n[0] - (c * n[0] + (len(n) - c) * n[c]), c) for c in range(1, len(n)))
        return [rows[:cut], rows[cut:]] if saved > extra else [reqs]

    def _attend(self, policy) -> int:
        return self.pool.ring_size + policy.n_protected * policy.copies if policy.n_protected else policy.ring_high

    def _step(self, reqs: list[_Request]) -> list[tuple]:
        """One tick: a batched forward for these requests (two when split); (heads, logits) per request, in their order."""
        self.stats["ticks"] += 1
        active, out = {r.lane for r in reqs}, {}
        for group in self._groups(reqs):
            order = self._compact(group, active)
            out.update(zip(map(id, order), self._step_sorted(order)))
        return [out[id(r)] for r in reqs]

    @torch.inference_mode()
    def _step_sorted(self, reqs: list[_Request]) -> list[tuple]:
        pool = self.pool
        pols = [r.lane.policy for r in reqs]
        pool.ensure(max(p.protected_size for p in pols), pols[0].copies, max(p.ring_size for p in pols))
        for r in reqs:
            pool.rotate_ring(r.lane.lane, r.plan.rotate_ring)
        full = all(not r.ids and not r.logits and r.n_frames == pols[0].copies for r in reqs)  # frame blocks only
        compiled = self._compiled is not None and full
        m = pool.lanes if compiled else len(reqs)  # the compiled step has static shapes: every lane
        q = max(len(r.plan.slots) for r in reqs)
        st = self.stats
        st["forwards"] += 1
        st["compiled_forwards"] += compiled
        st["full_block_forwards"] += full  # what a compiled engine would run compiled
        st["lanes"] += len(reqs)
        st["rows"] += sum(len(r.plan.slots) for r in reqs)
        st["padded_rows"] += m * q
        c = pool.copies
        idx = np.zeros((4, m, q), np.int64)
        idx[0], idx[1] = pool.scratch, BIG  # padding rows: the scratch slot, never visible to a real row
        group_lo = np.zeros((m, c), np.int64)
        for i, (r, p) in enumerate(zip(reqs, pols)):
            n = len(r.plan.slots)
            idx[0, i, :n] = pool.phys(r.plan.slots, p.ring_size)
            idx[1, i, :n], idx[2, i, :n], idx[3, i, :n] = r.plan.row_seq, r.plan.row_group, r.plan.pos
            group_lo[i] = r.plan.group_lo
        pool.attend = max(self._attend(p) for p in pols)
        dev = self.uploader.array(np.concatenate([idx.ravel(), group_lo.ravel()]))
        slots, row_seq, row_group, pos = dev[: 4 * m * q].view(4, m, q)
        group_lo_t = dev[4 * m * q:].view(m, c)
        shift = None
        if pool.protected_size and (compiled or any(r.plan.shift is not None for r in reqs)):
            sh = np.zeros((m, c, pool.protected_size), np.int64)
            # the compiled step refreshes every lane's protected copies: those of lanes outside this forward
            # (the other forward of a split step, idle lanes) are rewritten with their own shift, unchanged
            for lane in (self.lanes if compiled else [r.lane for r in reqs]):
                ls = lane.policy.last_shift
                if ls is not None:
                    k = min(ls.shape[1], pool.protected_size)  # a lane outside may have booked more (grown later)
                    sh[lane.lane, :, :k] = ls[:, :k]
            shift = self.uploader.array(sh)
        x = self._inputs(reqs, m, q)
        if compiled:
            heads = self._compiled(x, slots, row_seq, row_group, pos, group_lo_t, shift)
            lg = None
        else:
            heads, lg = self._batched(reqs, x, slots, row_seq, row_group, pos, group_lo_t, shift)
        heads = None if heads is None else heads.float().cpu()  # the one host round trip of the step
        out = []
        for i, r in enumerate(reqs):
            h = heads[i, : r.n_frames] if r.n_frames else None
            out.append((h, None if lg is None or lg[i] is None else lg[i]))
            if r.plan.new_protected:
                pool.add_protected(r.lane.lane, r.plan.new_protected, pols[i].ring_size)
        return out

    def _inputs(self, reqs: list[_Request], m: int, q: int) -> torch.Tensor:
        """Input embeddings [m, q, D]: each lane's text tokens, then its frames; zeros for padding."""
        x = torch.zeros(m, q, self.model.config.text_config.hidden_size, dtype=self.dtype, device=self.device)
        ids = [t for r in reqs for t in r.ids]
        emb = self.lm.embed_tokens(self.uploader.array(np.asarray(ids, dtype=np.int64))) if ids else None
        off = 0
        for i, r in enumerate(reqs):
            a = len(r.ids)
            if a:
                x[i, :a] = emb[off: off + a]
                off += a
            if r.n_frames:
                x[i, a: a + r.n_frames * self.tpf] = r.frames.to(self.device, self.dtype).reshape(r.n_frames * self.tpf, -1)
        return x

    def _forward_lm(self, x, slots, row_seq, row_group, pos, group_lo, shift):
        if shift is not None:
            self.pool.refresh(shift)
        mask = self.pool.begin(slots, row_seq, row_group, group_lo)
        return self.lm(inputs_embeds=x, attention_mask={"full_attention": mask}, position_ids=pos, cache=self.pool,
                       use_cache=True).last_hidden_state

    def _frame_step(self, x, slots, row_seq, row_group, pos, group_lo, shift):
        """Every lane a block of frames only (compiled): heads [lanes, frames per block, 3]."""
        h = self._forward_lm(x, slots, row_seq, row_group, pos, group_lo, shift)
        return frame_heads(self.model, h[:, self.tpf - 1:: self.tpf])

    def _batched(self, reqs, x, slots, row_seq, row_group, pos, group_lo, shift):
        h = self._forward_lm(x, slots, row_seq, row_group, pos, group_lo, shift)
        kmax = max(r.n_frames for r in reqs)
        heads = None
        if kmax:  # the heads read only each frame's last token
            rows = np.array([[len(r.ids) + self.tpf - 1 + k * self.tpf if k < r.n_frames else 0 for k in range(kmax)]
                             for r in reqs])
            rows_t = self.uploader.array(rows)
            lanes = torch.arange(len(reqs), device=h.device)[:, None]
            heads = frame_heads(self.model, h[lanes, rows_t])
        lg = [None] * len(reqs)
        want = [i for i, r in enumerate(reqs) if r.logits]
        if want:
            last = self.uploader.array(np.array([len(reqs[i].plan.slots) - 1 for i in want]))
            logits = self.model.lm_head(h[torch.tensor(want, device=h.device), last])  # [n, vocab]
            for j, i in enumerate(want):
                lg[i] = logits[j: j + 1, None]  # [1, 1, vocab], as the single-stream step returns
        return heads, lg
