"""Is a video file complete and intact? The checks behind ``data.video``'s truncation and
corruption errors (instructions/errors.md).

A truncated or damaged file often demuxes without any error and simply stops early, or skips what
it cannot read: every reader of a video (``probe``'s packet scan, ``FrameStream``'s decoder) feeds
an ``Integrity`` with what it saw and asks it at the end why the stream is not whole.
"""
from __future__ import annotations

import os
import threading
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


# Containers whose header declares the total duration, written when the file is finalised.
DECLARED_DURATION_FORMATS = frozenset({"matroska", "webm"})
# MPEG transport streams are a whole number of fixed-size packets (188; 192 for M2TS; 204 with FEC).
TS_PACKET_SIZES = (188, 192, 204)


class FFmpegErrors:
    """The errors FFmpeg's demuxers and decoders log (they carry on after most of them: a damaged
    Matroska cluster is skipped, a broken slice concealed), collected while any local file is read.

    One process-wide ``av.logging.Capture`` at ERROR level is open while at least one reader is
    active (readers may interleave: generators), with repeats kept (PyAV would otherwise drop a
    message identical to the previous file's); each reader sees the messages logged since it began.
    The previous log level is restored when the last reader ends."""

    _lock = threading.Lock()
    _users = 0
    _capture = None
    _logs: list = []
    _saved: tuple | None = None

    @classmethod
    def start(cls) -> int:
        import av.logging

        with cls._lock:
            if cls._users == 0:
                cls._saved = (av.logging.get_level(), av.logging.get_skip_repeated())
                level = cls._saved[0]
                av.logging.set_level(av.logging.ERROR if level is None or level < av.logging.ERROR else level)
                av.logging.set_skip_repeated(False)
                cls._capture = av.logging.Capture(local=False)
                cls._logs = cls._capture.__enter__()
            cls._users += 1
            return len(cls._logs)

    @classmethod
    def since(cls, start: int) -> list[str]:
        import av.logging

        return [f"[{name}] {msg.strip()}" for level, name, msg in cls._logs[start:] if level <= av.logging.ERROR]

    @classmethod
    def stop(cls) -> None:
        import av.logging

        with cls._lock:
            cls._users -= 1
            if cls._users == 0 and cls._capture is not None:
                cls._capture.__exit__(None, None, None)
                cls._capture, cls._logs = None, []
                av.logging.set_level(cls._saved[0])
                av.logging.set_skip_repeated(cls._saved[1])


class Integrity:
    """What the demuxer and decoder saw, checked against what the container declares.

    A truncated or corrupt file often demuxes without any error and simply stops early, so a
    stream that ends quietly is checked for (``reason``):

    * MP4/MOV: fewer packets than the sample table lists ("faststart" files open when cut);
    * Matroska/WebM: the packets (of every stream) end before the duration the header declares;
    * MPEG-TS: a size that is not a whole number of transport packets;
    * any container: a last packet the demuxer flags as corrupt (cut inside a frame), a last
      decoded frame the decoder flags as corrupt (a partial frame concealed), and, in a local
      file, any packet or frame flagged corrupt or any error the demuxer or decoder logged
      (damaged data they skipped or concealed; live streams may legitimately start mid-GOP).

    ``close()`` must be called (it ends the collection of FFmpeg's error messages).
    """

    def __init__(self, container, stream, source: Any):
        self.names = set((container.format.name or "").split(","))
        self.header_frames = indexed_frames(container, stream)
        # the other streams' sample tables too (a cut MP4 can keep every video sample and lose audio)
        self.listed = {st.index: indexed_frames(container, st) for st in container.streams if st.index != stream.index}
        self.counts: dict[int, int] = {}
        self.declared_end = None
        if self.names & DECLARED_DURATION_FORMATS and container.duration:
            self.declared_end = ((container.start_time or 0) + container.duration) / av.time_base
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
        self._log_start = FFmpegErrors.start() if self.local_file else None

    def close(self) -> None:
        if self._log_start is not None:
            self._errors = FFmpegErrors.since(self._log_start)
            FFmpegErrors.stop()
            self._log_start = None

    def ffmpeg_errors(self) -> list[str]:
        if self._log_start is not None:
            return FFmpegErrors.since(self._log_start)
        return getattr(self, "_errors", [])

    def see(self, packet) -> None:
        if packet.size == 0:  # flush packet
            return
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
        if self.header_frames and self.packets < self.header_frames:
            return f"truncated: the container lists {self.header_frames} frames but holds {self.packets}"
        for idx, listed in self.listed.items():
            if listed and self.counts.get(idx, 0) < listed:
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
            errors = self.ffmpeg_errors()
            if errors:
                return f"corrupt: FFmpeg reported {len(errors)} error(s) reading it, e.g. {errors[0][:160]!r}"
        return None
