"""Getting frames and step indices onto the device without stalling the LM.

- ``Uploader``: host arrays to the device through pinned staging buffers (asynchronous copies; a
  buffer is reused only after its copy finished, so the host never overwrites data in flight).
- ``encoded_frames``: the source's frames, encoded by the vision tower in batches of ``vision_batch``,
  either inline or on a background thread (decode + encode of the next frames overlap the LM steps).
  Both yield exactly the same embeddings: the batches are the same consecutive groups of frames.
"""
from __future__ import annotations

import contextlib
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch


class Uploader:
    """numpy / uint8 frames -> device tensors, via pinned memory on CUDA (zero-copy on CPU)."""

    def __init__(self, device: torch.device, depth: int = 4):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.depth = depth
        self._pool: dict[tuple, list] = {}

    def _staging(self, shape: tuple, dtype: torch.dtype):
        ring = self._pool.setdefault((shape, dtype), [])
        if len(ring) < self.depth:
            buf = torch.empty(shape, dtype=dtype, pin_memory=True)
            ring.append([buf, None])
        slot = ring.pop(0)
        ring.append(slot)
        if slot[1] is not None:
            slot[1].synchronize()  # the copy that last used this buffer (normally long finished)
        return slot

    def array(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a))
        if not self.cuda:
            return t if self.device.type == "cpu" else t.to(self.device)
        slot = self._staging(tuple(t.shape), t.dtype)
        slot[0].copy_(t)
        out = slot[0].to(self.device, non_blocking=True)
        slot[1] = torch.cuda.Event()
        slot[1].record()
        return out

    def frames(self, images) -> torch.Tensor:
        """A list / array of uint8 [H, W, 3] frames (or [F, H, W, 3]) -> uint8 [F, H, W, 3] on the device."""
        if torch.is_tensor(images) or isinstance(images, np.ndarray):
            arr = images if torch.is_tensor(images) else np.asarray(images)
            if arr.ndim == 3:
                arr = arr[None]
            if torch.is_tensor(arr):
                return arr.to(self.device, non_blocking=self.cuda)
            return self.array(arr)
        imgs = [np.asarray(x) for x in images]
        if not self.cuda:
            return torch.from_numpy(np.stack(imgs)).to(self.device)
        shape = (len(imgs),) + imgs[0].shape
        slot = self._staging(shape, torch.uint8)
        for i, im in enumerate(imgs):  # straight into pinned memory: no intermediate stacked copy
            slot[0][i].copy_(torch.from_numpy(im))
        out = slot[0].to(self.device, non_blocking=True)
        slot[1] = torch.cuda.Event()
        slot[1].record()
        return out


@dataclass
class Encoded:
    event: object  # the FrameEvent, with .embeds set
    ready: object = None  # CUDA event the consumer's stream waits on (background encoding)


def encoded_frames(events: Iterable, encode: Callable, vision_batch: int = 1, background: bool = False,
                   device: torch.device | None = None, depth: int = 2) -> Iterator:
    """FrameEvents with ``embeds`` filled, in source order. A source error is raised after every frame
    delivered before it has been yielded."""
    if vision_batch < 1:
        raise ValueError("vision_batch must be >= 1")
    if not background:
        yield from _inline(events, encode, vision_batch)
        return
    yield from _background(events, encode, vision_batch, device, depth)


def _encode_batch(batch: list, encode: Callable) -> None:
    need = [e for e in batch if e.embeds is None]
    if need:
        for e, emb in zip(need, encode([e.image for e in need])):
            e.embeds = emb
            e.image = None  # the decoded frame is not kept


def _inline(events, encode, vision_batch):
    batch: list = []
    try:
        for ev in events:
            batch.append(ev)
            if len(batch) >= vision_batch:
                _encode_batch(batch, encode)
                yield from batch
                batch = []
    except Exception:
        if batch:  # a source that breaks mid-stream: the frames it delivered are still scored, then it raises
            _encode_batch(batch, encode)
            yield from batch
        raise
    if batch:
        _encode_batch(batch, encode)
        yield from batch


_DONE = object()


def _background(events, encode, vision_batch, device, depth):
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    cuda = device is not None and torch.device(device).type == "cuda"

    def work():
        stream = torch.cuda.Stream(device) if cuda else None
        batch: list = []
        try:
            with torch.inference_mode(), (torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()):
                for ev in _inline(events, encode, vision_batch):
                    batch.append(ev)
                    if len(batch) >= vision_batch:
                        q.put(_ready(batch, stream))
                        batch = []
                    if stop.is_set():
                        return
            if batch:
                q.put(_ready(batch, stream))
        except BaseException as e:  # noqa: B036 - handed to the consumer, which re-raises it after the frames before it
            if batch:
                q.put(_ready(batch, stream))
            q.put(e)
        finally:
            q.put(_DONE)

    t = threading.Thread(target=work, name="vision-ahead", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            for enc in item:
                if enc.ready is not None:
                    torch.cuda.current_stream(device).wait_event(enc.ready)
                    enc.event.embeds.record_stream(torch.cuda.current_stream(device))
                yield enc.event
    finally:
        stop.set()
        while t.is_alive():  # unblock a worker waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(timeout=0.05)


def _ready(batch, stream):
    ev = None
    if stream is not None:
        ev = torch.cuda.Event()
        ev.record(stream)
    return [Encoded(e, ev) for e in batch]
