"""The optional decord backend of ``data.video.decode_clip`` (``backend="decord"``): random access,
the same sampling rule (``select_at_or_after``) on decord's frame timestamps, no truncation
detection. Only used when decord is installed; PyAV (``data.video``) is the project's loader."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data.video import Degradation, SampledFrame, VideoDecodeError, prepare_frame, select_at_or_after


def decord_available() -> bool:
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def decord_samples(path: Any, fps: float, size: int | None, start_frame: int, end_frame: int | None,
                    degradation: Degradation | None, resize: str = "antialias") -> list[SampledFrame]:
    try:
        import decord
    except ImportError as e:
        raise ImportError("backend='decord' needs the optional package decord (pip install decord)") from e
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"video not found: {p}")
    if p.stat().st_size == 0:
        raise VideoDecodeError(p, "empty file (0 bytes)")
    import av

    with av.open(str(p)) as container:  # decord gives the stored pixels: a stretched picture would be wrong
        sar = container.streams.video[0].sample_aspect_ratio if container.streams.video else None
    if sar and sar != 1:
        raise VideoDecodeError(p, f"has non-square pixels (sample aspect ratio {sar}), which backend='decord' "
                                  "ignores; use backend='pyav'")
    try:
        reader = decord.VideoReader(str(p), num_threads=1)
        n = len(reader)
        spans = np.asarray(reader.get_frame_timestamp(list(range(n))), dtype=np.float64)
        avg_fps = float(reader.get_avg_fps())
    except Exception as e:  # decord raises its own DECORDError (a RuntimeError) and others
        raise VideoDecodeError(p, f"decord cannot read the video ({e})") from e
    if n == 0:
        raise VideoDecodeError(p, "the video stream has no decodable frames")
    starts, ends = spans[:, 0], spans[:, 1]
    if (starts < 0).any() or (np.diff(starts) <= 0).any():  # AVI & co: no usable timestamps
        starts = np.arange(n) / avg_fps
        ends = starts + 1.0 / avg_fps
    origin = starts[0]
    picks = list(select_at_or_after(((t - origin, k) for k, t in enumerate(starts)), fps,
                                    start_frame, end_frame, lambda: float(ends[-1] - origin)))
    wanted = sorted({k for _, _, k in picks})
    try:
        batch = reader.get_batch(wanted).asnumpy() if wanted else np.zeros((0,))
    except Exception as e:
        raise VideoDecodeError(p, f"decord failed while decoding ({e})") from e
    rgb = {k: batch[j] for j, k in enumerate(wanted)}
    return [SampledFrame(i, t, float(starts[k] - origin), k, prepare_frame(rgb[k], t, size, degradation, resize))
            for i, t, k in picks]
