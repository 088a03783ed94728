"""Is a video file complete and intact? The checks behind ``data.video``'s truncation and
corruption errors (instructions/errors.md).

A truncated or damaged file often demuxes without any error and simply stops early, or skips what
it cannot read: every reader of a video (``probe``'s packet scan, ``FrameStream``'s decoder) feeds
an ``Integrity`` with what it saw and asks it at the end why the stream is not whole.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import av


def nominal_interval(stream: av.video.stream.VideoStream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(1 / rate) if rate else None


def indexed_frames(container: av.container.InputContainer, stream) -> int:
    """Frame count of an MP4/MOV sample table (exact); 0 for other containers, whose header
    counts (AVI's, say) may include empty dropped-frame chunks the demuxer never returns."""
    names = (container.format.name or "").split(",")
    return stream.frames if "mov" in names or "mp4" in names else 0


# Containers that declare no length (the decoder's flag on a partial last frame is the only sign
# of a cut): decoded without frame threads, whose timing decides whether that flag is set.
NO_LENGTH_FORMATS = frozenset({"mpegts", "nut"})

# Containers whose header declares the total duration, written when the file is finalised.
DECLARED_DURATION_FORMATS = frozenset({"matroska", "webm"})
# MPEG transport streams are a whole number of fixed-size packets (188; 192 for M2TS; 204 with FEC).
TS_PACKET_SIZES = (188, 192, 204)


class Integrity:
    """What the demuxer and decoder saw, checked against what the container declares.

    A truncated or corrupt file often demuxes without any error and simply stops early, so a
    stream that ends quietly is checked for (``reason``):

    * MP4/MOV: fewer packets than the sample table lists ("faststart" files open when cut), unless an
      edit list trims the stream (the demuxer then leaves samples past the edit's end out of its index);
    * Matroska/WebM: the packets (of every stream) end before the duration the header declares;
    * MPEG-TS: a size that is not a whole number of transport packets;
    * any container: a last packet the demuxer flags as corrupt (cut inside a frame), a last
      decoded frame the decoder flags as corrupt (a partial frame concealed);
    * in a local file also: any packet or frame flagged corrupt, and, in a constant-rate stream
      (every packet declares the same frame duration and the frame times follow it exactly, but
      for a few places), a hole or a repeat in the frame times: data the demuxer skipped silently
      (a damaged Matroska cluster is passed over with only a log line). A constant-rate file with
      frames dropped in the middle is refused too; variable-rate streams are not judged.
      Live sources are exempt: a stream joined mid-GOP legitimately starts damaged.

    Frame-threaded decoding sets the decoder's corrupt flag on a partial frame only sometimes: local
    MPEG-TS and NUT files, which declare no length, are decoded without frame threads
    (``NO_LENGTH_FORMATS``).

    FFmpeg's own log is deliberately not read: enabling PyAV's log callback can deadlock
    frame-threaded decoders (a worker waiting for the GIL held by a thread waiting for it).
    """

    def __init__(self, container, stream, source: Any):
        self.names = set((container.format.name or "").split(","))
        self.header_frames = indexed_frames(container, stream)
        # the other streams' sample tables too (a cut MP4 can keep every video sample and lose audio)
        self.listed = {st.index: indexed_frames(container, st) for st in container.streams if st.index != stream.index}
        self.counts: dict[int, int] = {}
        self.declared_end = None
        if self.names & DECLARED_DURATION_FORMATS and container.duration:
            # Matroska's Duration is the segment's length, but FFmpeg's muxer writes the last timestamp there (the
            # same thing for a file starting at 0): a file that starts later is held to the earlier of the two ends
            self.declared_end = (container.duration + min(0, container.start_time or 0)) / av.time_base
        self.local_file = isinstance(source, (str, os.PathLike)) and "://" not in str(source) and Path(source).is_file()
        self.size = Path(source).stat().st_size if self.local_file else None
        self.nominal = nominal_interval(stream)
        self.video = stream.index
        self.packets = 0
        self.last_packet_corrupt = False
        self.ends: dict[int, tuple[float, float, float | None]] = {}  # stream -> (last start, its duration, previous start)
        self.corrupt_frames: list[int] = []
        self.last_frame_corrupt = False
        self.n_frames = 0
        self.corrupt_packets = 0
        self.video_times: list[float] = []  # presentation time and declared duration of every video packet
        self.video_durations: list[float] = []
        self.trimmed: set[int] = set()  # streams with packets an edit list discards (trimmed MP4/MOV)

    def close(self) -> None:
        """Nothing to release (kept so readers need not know)."""

    def see(self, packet) -> None:
        if packet.size == 0:  # flush packet
            return
        if getattr(packet, "is_discard", False):  # cut away by an edit list: the sample table no longer counts
            self.trimmed.add(packet.stream.index)
        if packet.stream.index == self.video:
            self.packets += 1
            self.last_packet_corrupt = packet.is_corrupt
            self.corrupt_packets += bool(packet.is_corrupt)
        else:
            self.counts[packet.stream.index] = self.counts.get(packet.stream.index, 0) + 1
        ts = packet.pts if packet.pts is not None else packet.dts
        if ts is None or packet.time_base is None:
            return
        t = float(ts * packet.time_base)
        d = float(packet.duration * packet.time_base) if packet.duration else 0.0
        if packet.stream.index == self.video:
            self.video_times.append(t)
            self.video_durations.append(d)
        last = self.ends.get(packet.stream.index)
        if last is None or t > last[0]:
            self.ends[packet.stream.index] = (t, d, None if last is None else last[0])

    def frame(self, frame) -> None:
        self.last_frame_corrupt = bool(frame.is_corrupt)
        if frame.is_corrupt:
            self.corrupt_frames.append(self.n_frames)
        self.n_frames += 1

    def end(self) -> float | None:
        out = None
        for idx, (t, d, prev) in self.ends.items():
            if d <= 0:
                d = (t - prev) if prev is not None else (self.nominal or 0.0) if idx == self.video else 0.0
            out = t + d if out is None else max(out, t + d)
        return out

    def reason(self) -> str | None:
        """Why a stream that ended without an error is nevertheless cut short or corrupt (else None)."""
        # an edit list that trims a stream drops samples beyond its end from the index: the table's count is moot
        if self.header_frames and self.packets < self.header_frames and self.video not in self.trimmed:
            return f"truncated: the container lists {self.header_frames} frames but holds {self.packets}"
        for idx, listed in self.listed.items():
            if listed and self.counts.get(idx, 0) < listed and idx not in self.trimmed:
                return f"truncated: the container lists {listed} packets of stream {idx} but holds {self.counts.get(idx, 0)}"
        if self.last_packet_corrupt:
            return "truncated: the file ends inside a frame (last packet corrupt)"
        if self.size is not None and "mpegts" in self.names and all(self.size % k for k in TS_PACKET_SIZES):
            return (f"truncated: the MPEG-TS file ends inside a transport packet ({self.size} bytes is not a whole "
                    "number of 188-, 192- or 204-byte packets)")
        end = self.end()
        if self.declared_end is not None and end is not None:
            slack = 0.5 * (self.nominal or 0.0) + 0.002  # half a frame, plus Matroska's millisecond rounding
            if self.declared_end - end > slack:
                return (f"truncated: the container declares {self.declared_end:.3f} s but its packets end at "
                        f"{end:.3f} s")
        if self.last_frame_corrupt:
            return "truncated: the last frame is incomplete (decoded with errors)"
        if self.local_file:
            if self.corrupt_frames:
                k = self.corrupt_frames
                return f"corrupt: {len(k)} frame(s) decoded with errors (native frames {k[:5]}{' ...' if len(k) > 5 else ''})"
            if self.corrupt_packets:
                return f"corrupt: the demuxer flagged {self.corrupt_packets} damaged packet(s)"
            hole = self.hole_in_constant_rate()
            if hole:
                return hole
        return None

    def hole_in_constant_rate(self) -> str | None:
        """Frames missing or repeated where every packet declares the same duration ``d``: the
        frame times must then follow each other ``d`` apart (a variable-rate stream is not judged)."""
        durs = [d for d in self.video_durations if d > 0]
        if len(self.video_times) < 3 or len(durs) < 0.9 * len(self.video_durations):
            return None
        d = sorted(durs)[len(durs) // 2]
        if any(abs(x - d) > 0.001 for x in durs):
            return None
        times = sorted(self.video_times)
        gaps = [(a, b - a) for a, b in zip(times, times[1:])]
        odd = [(a, g) for a, g in gaps if abs(g - d) > 0.001]
        # judged only when the stream is otherwise exactly regular: a muxer may declare a nominal
        # duration over variable-rate timestamps (ffmpeg's Matroska muxer does), whose gaps vary
        if not odd or any(1e-6 <= g <= 1.5 * d + 0.002 for _, g in odd) or len(odd) > 0.1 * len(gaps):
            return None
        a, g = odd[0]
        if g < 1e-6:
            return f"corrupt: two frames at {a:.3f} s (damaged or duplicated data)"
        return (f"corrupt: frames missing between {a:.3f} s and {a + g:.3f} s in a constant-rate stream (every "
                f"frame declares {d:.4f} s): the demuxer skipped damaged data")
