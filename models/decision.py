"""When to respond: per-frame decision rules over the heads, fed one frame at a time.

s_t = sum of the selected heads at frame t (``informative`` = probability of the respond class,
``relevance`` = sigmoid relevance). Rules (combinable, checked in this order):
- ``threshold``: fire when s_t > threshold;
- ``cumulative``: add s_t to a running sum; fire when the sum exceeds ``cumulative_threshold``
  and reset the sum to 0 (the reference's ``stream_end_score_sum_threshold``);
- ``min_interval_s``: a due response waits until this long after the previous one;
- uncertainty gate: while the frame's uncertainty exceeds ``uncertainty_gate`` a due response is
  postponed, at most ``max_wait_frames`` frames; then it fires anyway. (The reference's version
  never counted its wait and so suppressed responses indefinitely.) Uncertainty here is the
  clamped log-variance, as in the paper.
- relevance gate (query prompts): a frame may make a response due only while the mean relevance
  of the last ``relevance_gate_frames`` frames (this one included) is at least ``relevance_gate``;
  frames with the gate closed neither trigger nor add to the cumulative sum, and a due response is
  dropped when the gate closes. The informative head says *that* something just happened, not
  whether it is what the query asks for: without the gate, a model trained to caption every event
  (the tiny default) also speaks after every distractor (instructions/tiny_model.md, session 13).
  Off by default; it only means something when the prompt is a query.
A postponed or interval-blocked response stays due; the cumulative sum is reset only when a
response actually fires.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

HEADS = ("informative", "relevance")


@dataclass
class DecisionConfig:
    score_heads: tuple[str, ...] = ("informative", "relevance")
    threshold: float | None = None
    cumulative_threshold: float | None = None
    min_interval_s: float = 0.0
    uncertainty_gate: float | None = None
    max_wait_frames: int = 3
    logvar_min: float = -4.0
    logvar_max: float = 1.5
    relevance_gate: float | None = None
    relevance_gate_frames: int = 4

    def __post_init__(self):
        if isinstance(self.score_heads, str):
            self.score_heads = tuple(h.strip() for h in self.score_heads.split(",") if h.strip())
        bad = [h for h in self.score_heads if h not in HEADS]
        if bad or not self.score_heads:
            raise ValueError(f"score_heads must be a non-empty subset of {HEADS}, got {self.score_heads}")
        if self.max_wait_frames < 0:
            raise ValueError("max_wait_frames must be >= 0")
        if self.relevance_gate is not None and not math.isfinite(self.relevance_gate):
            raise ValueError(f"relevance_gate must be a finite number, got {self.relevance_gate}")
        for name in ("threshold", "cumulative_threshold", "uncertainty_gate"):
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):  # a NaN threshold silently never (or always) fires
                raise ValueError(f"{name} must be a finite number or None, got {v}")
        if not (math.isfinite(self.min_interval_s) and self.min_interval_s >= 0):
            raise ValueError(f"min_interval_s must be a finite number >= 0, got {self.min_interval_s}")
        n = self.relevance_gate_frames
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"relevance_gate_frames must be a whole number of frames >= 1, got {n!r}")

    @property
    def enabled(self) -> bool:
        return self.threshold is not None or self.cumulative_threshold is not None


@dataclass
class DecisionRule:
    cfg: DecisionConfig = field(default_factory=DecisionConfig)
    running_sum: float = 0.0
    last_fire_time: float | None = None
    due: bool = False
    waited: int = 0
    recent_relevance: deque = field(init=False)  # the gate's window: the last relevance_gate_frames values
    read_heads: tuple = field(init=False)  # the heads the rule reads (checked finite every frame)

    def __post_init__(self):
        self.recent_relevance = deque(maxlen=self.cfg.relevance_gate_frames)
        c = self.cfg
        self.read_heads = tuple(sorted(set(c.score_heads) | ({"uncertainty"} if c.uncertainty_gate is not None else set())
                                       | ({"relevance"} if c.relevance_gate is not None else set())))

    def reset(self) -> None:
        self.running_sum, self.last_fire_time, self.due, self.waited = 0.0, None, False, 0
        self.recent_relevance.clear()

    def gate_open(self, heads: dict) -> bool:
        """Feed this frame's relevance to the gate; whether it is open (always, without a gate)."""
        c = self.cfg
        if c.relevance_gate is None:
            return True
        r = self.recent_relevance
        r.append(float(heads["relevance"]))
        return sum(r) / len(r) >= c.relevance_gate

    def score(self, heads: dict) -> float:
        return float(sum(heads[h] for h in self.cfg.score_heads))

    def update(self, time: float, heads: dict) -> bool:
        """Feed one frame's head values (informative, relevance, uncertainty=raw log-variance)."""
        c = self.cfg
        # A NaN head would be silently wrong: in the cumulative sum it makes every later sum NaN (the
        # rule never fires again), in the gates NaN compares False (an uncertainty gate lets it
        # through, a relevance gate stays shut for relevance_gate_frames frames). Refuse it.
        bad = {h: heads[h] for h in self.read_heads if not math.isfinite(float(heads[h]))}
        if bad or not math.isfinite(float(time)):
            raise ValueError(f"decision rule at time {time}: non-finite head values {bad or ''} (or time)")
        s = self.score(heads)
        if not self.gate_open(heads):
            self.due, self.waited = False, 0
            return False
        if c.threshold is not None and s > c.threshold:
            self.due = True
        if c.cumulative_threshold is not None:
            self.running_sum += s
            if self.running_sum > c.cumulative_threshold:
                self.due = True
        if not self.due:
            return False
        if self.last_fire_time is not None and time - self.last_fire_time < c.min_interval_s - 1e-9:
            return False
        if c.uncertainty_gate is not None:
            u = min(max(float(heads["uncertainty"]), c.logvar_min), c.logvar_max)
            if u > c.uncertainty_gate and self.waited < c.max_wait_frames:
                self.waited += 1
                return False
        self.due, self.waited, self.last_fire_time = False, 0, time
        if c.cumulative_threshold is not None:
            self.running_sum = 0.0
        return True
