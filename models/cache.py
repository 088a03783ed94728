"""KV-cache policies for the streaming engine: which tokens stay, where they sit, what position they carry.

Semantics (what the model sees). The cache holds tokens in stream order; the *logical index* of a kept
token is its rank among the kept tokens, and attention sees every kept token at the RoPE position of
its logical index (StreamingLLM: positions never grow past the budget). A forward appends its tokens
at the next indices; the mask is causal over kept tokens.

Policies (``CachePolicy(name, ...)``):
- ``sink`` (default): *protected* tokens (the system turn, every query turn whenever it arrives, and
  the first ``sink_tokens`` tokens, StreamingLLM's attention sink) are never evicted; the other tokens
  (frames, stream headers, responses) are evicted oldest first so that everything fits ``window``
  tokens in total. A query that would leave no room for a frame is a clear error.
- ``dynamic_sink``: the same protected spans (without the first-tokens sink) plus ``window`` recent
  tokens: the budget grows by each query's length (the paper's "Dynamic SinkCache" kept the query
  turn plus 2048 recent tokens).
- ``sliding``: the most recent ``window`` tokens, nothing protected (opt-in; loses the task).
- ``unbounded``: never evicts (memory grows with the video).
- ``sink_reference``: the reference's SinkCache, quirks included, to reproduce the released numbers
  (aha_reference.md 11.5-11.7): a forward of q tokens is appended while ``L + q < window``; otherwise
  the first ``sink_tokens`` tokens, the last ``window - sink_tokens - q`` old ones and the q new ones
  are kept, the kept old keys move back by q positions whatever the number evicted, and the new
  tokens' positions start at the length *before* eviction (they saturate at the window).

Representation (how it is done without rewriting the window). RoPE scores depend only on the
difference of positions, so a key need not carry its logical index, only ``index + D`` for one offset
D shared by all kept keys. Evicting c tokens from the front of the evictable tokens lowers the index
of everything after them by c: instead of re-rotating that whole window (O(window) per frame, and in
bf16 each key re-rounded ~40 times before it leaves), D grows by c and only the protected keys *before*
the evicted tokens are rotated forward, from a pristine fp32 copy, so each key is rounded once. When D
grows large the ring is re-based once (positions back to the logical index; O(window) every ~window
tokens). ``rotate="window"`` re-bases at every eviction instead, which is the classic full
re-rotation; it is kept as the reference the tests compare against. ``rotate="none"`` reproduces the
reference's SlidingWindowCache (no re-rotation: kept keys keep their positions while new tokens take
positions from the cache length, so distances shrink); Python API only.

Storage (``models.kv_store.KVStore``): one preallocated buffer per K and V for all layers, written in
place; evictable tokens live in a ring (eviction only moves its head), protected tokens in a region
after it, replicated per frame of a K-frame block (frame j of a block sees the protected keys as they
would be after the evictions one-at-a-time streaming would have made before frame j, and the mask
hides from it the ring tokens one-at-a-time would already have evicted: K-frame scores equal
one-at-a-time scores). Physical order does not matter to attention: the mask compares per-slot
sequence numbers. This module is the host-side book-keeping (plain Python, no device work);
``plan`` returns the small index arrays one forward needs.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

POLICIES = ("unbounded", "sink", "dynamic_sink", "sliding", "sink_reference")
# The CLI default for the real models (aha-7b / aha-0.5b / aha-tiny): the reference's evaluated budget
# (2048 tokens in total, the best of the paper's sweep, Table 14), with the task protected. The tiny
# default model uses ``dynamic_sink`` with the window it was trained on (models.build.train_window_tokens).
DEFAULT_POLICY = "sink"
DEFAULT_WINDOW = 2048
DEFAULT_SINK_TOKENS = 32
# protected tokens (system turn + queries) one stream may hold; the region grows on demand up to this
DEFAULT_MAX_PROTECTED = 1024
PROTECTED_KINDS = ("system", "query")
# The protected region's slots: 64 tokens, doubled whenever a query turn does not fit (64, 128, 256,
# ...). Each size is a cache layout, and a compiled step (static shapes) compiles once per layout:
# doubling keeps a whole run to a handful (5 up to the default 1024; 64-token steps took 9 layouts
# for 14 queries of ~40 tokens, past dynamo's recompile limit of 8, after which the step silently
# ran eagerly). Unused slots cost nothing in eager steps (attention reads the used prefix) and are
# masked reads in compiled ones.
_GROW = 64


SINK_POLICIES = ("sink", "sink_reference")  # the policies that keep the stream's first tokens


def sink_fits(policy: str, window: int, sink_tokens: int) -> bool:
    """Whether a policy's sink tokens leave room in its window (only ``SINK_POLICIES`` keep any)."""
    return policy not in SINK_POLICIES or sink_tokens < window


def window_holds_frame(policy: str, window: int, tokens_per_frame: int | None) -> bool:
    """Whether a policy's window holds one frame and its turn header (unbounded, or the frame size
    unknown: not checked); a window that does not stops a stream at its first frame."""
    return policy == "unbounded" or not tokens_per_frame or window > tokens_per_frame


def effective_sink_tokens(policy: str, sink_tokens: int | None) -> int | None:
    """The sink tokens a policy keeps: only ``SINK_POLICIES`` have any (records say this value, not a
    flag or checkpoint setting the policy ignores)."""
    return sink_tokens if policy in SINK_POLICIES else 0


def effective_max_protected(policy: str, max_protected: int | None, sink_tokens: int | None) -> int | None:
    """The protected tokens a policy allows: sliding / unbounded protect nothing (0), sink_reference
    exactly its sink tokens; the others the setting (records say this value, not the flag)."""
    if policy == "sink_reference":
        return effective_sink_tokens(policy, sink_tokens)
    return 0 if policy in ("sliding", "unbounded") else max_protected


def effective_window(policy: str, window: int | None) -> int | None:
    """The window a policy keeps to: None under unbounded (no budget), else the setting."""
    return None if policy == "unbounded" else window


def protected_layouts(max_protected: int) -> list[int]:
    """Every size the protected region can take, in order (the cache layouts a compiled step meets)."""
    sizes = []
    while max_protected > 0 and (not sizes or sizes[-1] < max_protected):
        sizes.append(min(max_protected, _GROW << len(sizes)))
    return sizes


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def model_inv_freq(model) -> torch.Tensor:
    """The RoPE inverse frequencies of the language model (raw, without attention scaling)."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    return lm.model.language_model.rotary_emb.inv_freq.detach().clone()


@dataclass
class Segment:
    """Tokens of one kind appended by a forward (text piece or one frame)."""

    kind: str  # system | query | text | frame | response
    n: int
    meta: dict = field(default_factory=dict)


@dataclass
class _Run:  # consecutive evictable tokens of one segment, in the ring
    kind: str
    seq: int
    n: int
    meta: dict


@dataclass
class _Span:  # protected tokens of one segment
    kind: str
    seq: int
    n: int
    slot: int  # first index in the protected region
    shift: int  # positions the keys are rotated forward from where they were computed
    meta: dict


@dataclass
class Plan:
    """Everything the device needs for one forward (host numpy arrays)."""

    slots: np.ndarray  # [q] physical slot of each new token
    row_seq: np.ndarray  # [q] its sequence number (causal mask)
    row_group: np.ndarray  # [q] protected copy the row reads (its frame in a K-frame block)
    group_lo: np.ndarray  # [copies] oldest evictable sequence number each group's rows may see
    pos: np.ndarray  # [q] RoPE positions
    shift: np.ndarray | None  # [copies, protected capacity] rotation of every protected copy, None: unchanged
    rotate_ring: int  # rotate every ring key by this many positions before the forward (re-base)
    new_protected: list  # (protected index, slot of copy 0, seq) of protected tokens written now
    frame_rows: list  # row of each frame's last token
    frame_lengths: list  # tokens in the cache once each frame is in (as one-at-a-time streaming reports it)


class CachePolicy:
    """Host book-keeping of a bounded KV cache (see the module docstring)."""

    def __init__(self, name: str = DEFAULT_POLICY, window: int = DEFAULT_WINDOW, sink_tokens: int = DEFAULT_SINK_TOKENS,
                 max_protected: int = DEFAULT_MAX_PROTECTED, copies: int = 1, block_extra: int = 0, headroom: int = 0,
                 rotate: str = "protected", min_room: int = 0):
        if name not in POLICIES:
            raise ValueError(f"cache policy must be one of {POLICIES}, got {name!r}")
        if name != "unbounded" and window <= 0:
            raise ValueError("window must be positive")
        for what, value in (("sink_tokens", sink_tokens), ("max_protected", max_protected)):
            # a negative count would be taken as 0 by the book-keeping but recorded as given
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{what} must be a whole number >= 0, got {value!r}")
        if not sink_fits(name, window, sink_tokens):
            raise ValueError(f"sink_tokens ({sink_tokens}) must be smaller than the window ({window})")
        if rotate not in ("protected", "window", "none"):
            raise ValueError("rotate must be 'protected' (O(sink)), 'window' (full re-rotation) or 'none' (the reference's "
                             "sliding window: kept keys keep their positions, new ones saturate)")
        if copies > 1 and name == "sink_reference":
            raise ValueError("sink_reference reproduces one-frame-at-a-time streaming only (frames_per_step 1)")
        self.name, self.window, self.rotate = name, window, rotate
        self.sink_tokens = effective_sink_tokens(name, sink_tokens)
        self.max_protected = effective_max_protected(name, max_protected, self.sink_tokens)
        self.copies = copies
        self.min_room = min_room  # evictable tokens a frame step needs (sink: what protected spans must leave)
        # ring slots: the budget, plus the extra tokens a K-frame block keeps visible to its first
        # frames, plus the room a response takes before the next frame evicts it
        budget = {"sink_reference": window - self.sink_tokens}.get(name, window)
        self.ring_size = 4096 if name == "unbounded" else budget + block_extra + headroom
        self.protected_size = self.sink_tokens if name == "sink_reference" else 0
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self.ring: deque[_Run] = deque()
        self.spans: list[_Span] = []
        self.ring_count = 0  # evictable tokens kept
        self.ring_tail = 0  # physical ring index of the next evictable token
        self.ring_high = 0  # ring slots ever written (attention reads only those)
        self.n_protected = 0
        self.next_seq = 0
        self.offset = 0  # D: keys carry position index + D
        self.evicted_total = 0
        self.last_shift: np.ndarray | None = None

    def __len__(self) -> int:
        return self.n_protected + self.ring_count

    @property
    def oldest_seq(self) -> int:
        """Sequence number of the oldest evictable token kept (everything older was evicted)."""
        return self.ring[0].seq if self.ring else self.next_seq

    @property
    def budget(self) -> int | None:
        """Evictable tokens that may stay (None: unbounded)."""
        if self.name == "unbounded":
            return None
        if self.name == "sink":
            return self.window - self.n_protected
        if self.name == "sink_reference":
            return self.window - self.sink_tokens
        return self.window

    @property
    def capacity(self) -> int | None:
        """Tokens the cache holds once full (protected included); None when unbounded."""
        b = self.budget
        return None if b is None else b + self.n_protected

    def protects(self, kind: str) -> bool:
        return self.name in ("sink", "dynamic_sink") and kind in PROTECTED_KINDS

    # ------------------------------------------------------------------ planning
    def plan(self, segments: list[Segment], frame_groups: bool = False, evict: bool = True, transient: bool = False) -> Plan:
        """Book a forward of ``segments`` (text pieces, then frames) and return its device plan.

        ``frame_groups``: each frame after the first is its own row group (a K-frame block, booked as
        one-at-a-time streaming would book it); otherwise the whole forward is one group.
        ``transient``: the tokens will be undone (``truncate``: a response under remove_assistant_turns),
        so they are never sink tokens; the tokens after the undo take their place in the stream.
        """
        groups: list[list[Segment]] = [[]]  # group 0: everything up to the first frame included
        seen_frame = False
        for s in segments:
            if s.kind == "frame" and seen_frame and frame_groups:
                groups.append([])
            groups[-1].append(s)
            seen_frame = seen_frame or s.kind == "frame"
        if len(groups) > self.copies:
            raise ValueError(f"{len(groups)} frames in one block but the cache keeps {self.copies} protected copies")
        q = sum(s.n for s in segments)
        slots = np.empty(q, np.int64)
        row_seq = np.arange(self.next_seq, self.next_seq + q, dtype=np.int64)
        row_group = np.empty(q, np.int64)
        group_lo = np.empty(self.copies, np.int64)
        pos = np.empty(q, np.int64)
        new_protected, frame_rows, frame_lengths, shift_rows = [], [], [], []
        rotate_ring = 0
        if evict and self.offset and (self.rotate == "window" or self.offset >= self._rebase_at()):
            rotate_ring = self._rebase()
        row = 0
        for j, group in enumerate(groups):
            pieces = [[seg] for seg in group] if transient else self._split_sink(group)
            n_prot = sum(p.n for seg in pieces for p in seg if self._is_protected(p))
            n_all = sum(s.n for s in group)
            if n_prot:
                self._check_protected(n_prot)
            l_before = len(self)
            evicted = self._make_room(n_all - n_prot, n_prot, n_all, l_before) if evict else 0
            if self.rotate == "window" and evicted:
                rotate_ring += self._rebase()
            # sink_reference quirk: positions start at the length before eviction
            first_pos = (l_before if self.name == "sink_reference" else len(self)) + self.offset
            lo = self.oldest_seq
            if self.ring_count + n_all - n_prot > self.ring_size:
                raise ValueError(f"{n_all - n_prot} new tokens overflow the {self.ring_size}-slot ring holding {self.ring_count}"
                                 " (a response longer than the headroom the engine reserved?)")
            row_group[row: row + n_all], group_lo[j:] = j, lo  # unused groups: as the last one
            pos[row: row + n_all] = first_pos + np.arange(n_all)
            for seg, seg_pieces in zip(group, pieces):
                for p in seg_pieces:
                    idx = np.arange(row, row + p.n)
                    if self._is_protected(p):
                        t0 = self.n_protected
                        slots[idx] = self.ring_size + (t0 + np.arange(p.n)) * self.copies  # copy 0 of each token
                        self.spans.append(_Span(p.kind, self.next_seq, p.n, t0, 0, _public(p.meta)))
                        new_protected += [(t0 + i, int(slots[row + i]), self.next_seq + i) for i in range(p.n)]
                        self.n_protected += p.n
                    else:
                        slots[idx] = (self.ring_tail + np.arange(p.n)) % self.ring_size
                        end = self.ring_tail + p.n  # slots written so far: attention reads no further
                        self.ring_high = self.ring_size if end >= self.ring_size else max(self.ring_high, end)
                        self.ring_tail = int(end % self.ring_size)
                        self.ring_count += p.n
                        self.ring.append(_Run(p.kind, self.next_seq, p.n, _public(p.meta)))
                    self.next_seq += p.n
                    row += p.n
                if seg.kind == "frame":
                    frame_rows.append(row - 1)
                    frame_lengths.append(len(self))
            if self.protected_size:
                shift_rows.append(self._shift_row())
        shift = None
        if self.protected_size:
            shift_rows += [shift_rows[-1]] * (self.copies - len(shift_rows))  # unused copies: as the last frame
            shift = np.stack(shift_rows)
            if self.last_shift is not None and self.last_shift.shape == shift.shape and np.array_equal(shift, self.last_shift) \
                    and not new_protected:
                shift = None  # nothing moved: the device copies are current
            else:
                self.last_shift = shift
        return Plan(slots, row_seq, row_group, group_lo, pos, shift, rotate_ring, new_protected, frame_rows, frame_lengths)

    # ------------------------------------------------------------------ internals
    @property
    def n_slots(self) -> int:
        return self.ring_size + self.protected_size * self.copies

    @property
    def attend_slots(self) -> int:
        """Slots attention reads (a prefix): the ring as far as written, then the used protected slots."""
        if not self.n_protected:
            return self.ring_high
        return self.ring_size + self.n_protected * self.copies

    def _rebase_at(self) -> int:
        # re-base when positions reach about twice the budget: every ~window tokens, O(window) each time
        return max(self.window, 256)

    def _rebase(self) -> int:
        """Positions back to the logical index: ring keys rotate by -D, protected shifts drop by D."""
        d = self.offset
        for s in self.spans:
            s.shift -= d
        self.offset = 0
        return -d

    def _is_protected(self, seg: Segment) -> bool:
        return seg.meta.get("_sink", False) or self.protects(seg.kind)

    def _split_sink(self, group: list[Segment]) -> list[list[Segment]]:
        """Per segment, its pieces: the first ``sink_tokens`` tokens of the stream are protected (sink, sink_reference)."""
        out, start, s = [], self.next_seq, self.sink_tokens
        for seg in group:
            if not s or start >= s or self.protects(seg.kind):
                out.append([seg])
            else:
                k = min(seg.n, s - start)
                head = Segment(seg.kind, k, {**seg.meta, "_sink": True})
                out.append([head] if k == seg.n else [head, Segment(seg.kind, seg.n - k, seg.meta)])
            start += seg.n
        return out

    def _check_protected(self, n_new: int) -> None:
        """New protected tokens (a query turn, the system turn) must fit and leave room for a frame step."""
        need = self.n_protected + n_new
        if need > self.max_protected:
            raise ValueError(f"the query turn does not fit: protected spans (system turn, queries) would hold {need} tokens, "
                             f"more than max_protected={self.max_protected}")
        if self.name == "sink" and self.window - need < self.min_room:
            raise ValueError(f"the query turn does not fit a {self.window}-token cache: the system turn and queries would take "
                             f"{need} tokens, leaving less than the {self.min_room} a frame step needs; raise --window or use dynamic_sink")
        if need > self.protected_size:
            self.protected_size = next(n for n in protected_layouts(self.max_protected) if n >= need)
            self.last_shift = None

    def _make_room(self, n_ring: int, n_prot: int, n_total: int, l_before: int) -> int:
        """Evict (oldest evictable first) so that ``n_ring`` new evictable tokens fit; returns the count."""
        if self.name == "unbounded":
            return 0
        if self.name == "sink_reference":
            if l_before + n_total < self.window:
                return 0
            keep_old = self.window - self.sink_tokens - n_total
            if keep_old < 0:
                raise ValueError(f"{n_total} new tokens do not fit a window of {self.window} with {self.sink_tokens} sink tokens")
            c = max(0, self.ring_count - keep_old)
            self._evict(c)
            for s in self.spans:  # quirk: the kept old keys move back by the forward's length
                s.shift += n_total
            self.offset += n_total
            return c
        budget = self.budget - (n_prot if self.name == "sink" else 0)  # sink: the new protected tokens count too
        if n_ring > budget:
            raise ValueError(f"{n_ring} new tokens do not fit a window of {self.window} with {self.n_protected} protected tokens")
        c = max(0, self.ring_count + n_ring - budget)
        if c:
            self._evict(c, shift_spans=self.rotate != "none")
            if self.rotate != "none":  # "none": the keys keep the positions they were written at
                self.offset += c
        return c

    def _evict(self, c: int, shift_spans: bool = False) -> None:
        left = c
        while left:
            run = self.ring[0]
            k = min(left, run.n)
            if shift_spans:
                for s in self.spans:  # protected keys before the evicted tokens keep their distance to the rest
                    if s.seq < run.seq:
                        s.shift += k
            if k == run.n:
                self.ring.popleft()
            else:
                run.seq += k
                run.n -= k
                run.meta = {**run.meta, "partial": True}
            left -= k
        self.ring_count -= c
        self.evicted_total += c

    def _shift_row(self) -> np.ndarray:
        row = np.zeros(self.protected_size, np.int64)
        for s in self.spans:
            row[s.slot: s.slot + s.n] = s.shift
        return row

    # ------------------------------------------------------------------ undo
    def truncate(self, length: int) -> list[int]:
        """Drop the newest evictable tokens back to ``length`` (undo a response); returns their slots."""
        drop = len(self) - length
        if drop < 0:
            raise ValueError(f"cannot truncate a cache of {len(self)} to {length}")
        if drop > self.ring_count or any(s.seq >= self.next_seq - drop for s in self.spans):
            raise ValueError("truncate can only undo evictable tokens appended without eviction")
        slots = [(self.ring_tail - 1 - i) % self.ring_size for i in range(drop)]
        left = drop
        while left:
            run = self.ring[-1]
            k = min(left, run.n)
            if k == run.n:
                self.ring.pop()
            else:
                run.n -= k
            left -= k
        self.ring_count -= drop
        self.ring_tail = (self.ring_tail - drop) % self.ring_size
        self.next_seq -= drop
        return slots

    def grow_ring(self, need: int) -> bool:
        """Unbounded: double the ring when ``need`` more tokens would not fit; True when it grew."""
        if self.name != "unbounded" or self.ring_count + need <= self.ring_size:
            return False
        while self.ring_count + need > self.ring_size:
            self.ring_size *= 2
        return True

    # ------------------------------------------------------------------ description
    def describe(self) -> dict:
        """What the cache holds, in stream order: protected spans, frame ranges, text, responses."""
        items = [(s.seq, s.n, s.kind, True, s.meta) for s in self.spans]
        items += [(r.seq, r.n, r.kind, False, r.meta) for r in self.ring]
        spans: list[dict] = []
        for _seq, n, kind, prot, meta in sorted(items, key=lambda x: x[0]):
            # consecutive frames of one kind of keeping: sink frames (protected) are not merged with the
            # evictable frames after them (the whole span was said to be protected)
            if kind == "frame" and spans and spans[-1]["kind"] == "frames" and spans[-1]["last_frame"] == meta["frame"] - 1 \
                    and spans[-1]["protected"] == prot:
                spans[-1]["last_frame"] = meta["frame"]
                spans[-1]["tokens"] += n
                continue
            d = {"kind": "frames" if kind == "frame" else kind, "tokens": n, "protected": prot}
            if kind == "frame":
                d.update(first_frame=meta["frame"], last_frame=meta["frame"], first_partial=bool(meta.get("partial")))
            else:
                d.update({k: v for k, v in meta.items() if k in ("index", "time", "text", "frame", "partial")})
            spans.append(d)
        # the window the policy keeps to (None under unbounded), as EngineConfig.cache_record says
        return {"policy": self.name, "window": effective_window(self.name, self.window), "sink_tokens": self.sink_tokens,
                "tokens": len(self), "protected_tokens": self.n_protected, "capacity": self.capacity,
                "evicted_tokens": self.evicted_total, "spans": spans}

    def protected_ids(self) -> list[list[int]]:
        """Token ids of every protected span (system turn, queries), in stream order."""
        return [list(s.meta.get("ids", [])) for s in sorted(self.spans, key=lambda s: s.seq)]


def _public(meta: dict) -> dict:
    return {k: v for k, v in meta.items() if k != "_sink"}
