"""Frame timestamps of ``data/video.py``'s decoder: FFmpeg's best-effort clock and the duration of
the last frame (split out of data/video.py to keep it readable; imported from there)."""
from __future__ import annotations

from dataclasses import dataclass

# Frames looked at before choosing PTS or DTS as the time source (see _BestEffortClock.seed).
# Costs a one-off delay of 8 native frames before the first frame of a live stream.
TIMESTAMP_LOOKAHEAD = 8


@dataclass
class _BestEffortClock:
    """FFmpeg's guess_correct_pts with a monotonic guard, in seconds.

    Uses PTS unless they have gone backwards more often than DTS (AVI with B-frames gets PTS
    attached to the wrong frames, while its DTS are right). ``seed`` pre-counts the faults of the
    first frames so that the choice is already right for the first frame. A time that is missing
    or not after the previous one becomes previous + one nominal frame interval.
    """

    nominal: float | None
    faulty_pts: int = 0
    faulty_dts: int = 0
    last_pts: float | None = None
    last_dts: float | None = None
    last_time: float | None = None

    def seed(self, stamps: list[tuple[float | None, float | None]]) -> None:
        for seq, attr in ((([p for p, _ in stamps]), "faulty_pts"), (([d for _, d in stamps]), "faulty_dts")):
            vals = [v for v in seq if v is not None]
            setattr(self, attr, sum(b <= a for a, b in zip(vals, vals[1:])))

    def __call__(self, pts: float | None, dts: float | None) -> float:
        if dts is not None:
            self.faulty_dts += self.last_dts is not None and dts <= self.last_dts
            self.last_dts = dts
        if pts is not None:
            self.faulty_pts += self.last_pts is not None and pts <= self.last_pts
            self.last_pts = pts
        use_pts = pts is not None and (self.faulty_pts <= self.faulty_dts or dts is None)
        t = pts if use_pts else dts
        if self.last_time is not None and (t is None or t <= self.last_time):
            t = self.last_time + (self.nominal or 1e-3)
        if t is None:
            t = 0.0
        self.last_time = t
        return t


def _last_frame_duration(own: float | None, prev_gap: float | None, nominal: float | None) -> float:
    """How long the last frame lasts: its own duration, else the previous interval, else 1/rate."""
    for d in (own, prev_gap, nominal):
        if d is not None and d > 0:
            return d
    return 0.0
