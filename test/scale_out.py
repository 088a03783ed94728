"""Scale-out for ``test.run_benchmark``: many streams per process, many processes per benchmark.

**Streams** (``--streams N``): the items are streamed N at a time by ``models.multistream``: one LM
forward per step over the frames of all N, each item on its own lane (its own cache, positions,
query, decision rule, responses). A finished item's lane takes the next item at once. Predictions are
written as items finish (completion order, one flushed line each, so a crash loses at most the items
in flight); each item's record equals streaming it alone (fp32: 1e-5; ``elapsed_s`` aside).
``--split_rows`` (``split_rows_arg``) says when a step of lanes asking for very different lengths runs
as two forwards instead of one padded one (``models.multistream.MultiStreamEngine``).

**Processes** (``torchrun --nproc_per_node G [--nnodes M ...] -m test.run_benchmark ...``): rank r of
W streams items r, r + W, r + 2W, ... of the items file (a deterministic share: the same on every
rerun of the same command) into its own files, ``PRED.rank{r}-of-{W}.jsonl`` (with its own
``.errors.jsonl`` and ``.run.json``), resumable on its own exactly as a single process's output. When
every rank has finished (a barrier over a gloo process group: host-side only, also on GPUs), rank 0
merges everything into ``PRED.jsonl`` / ``PRED.errors.jsonl`` / ``PRED.run.json``: predictions in the
items file's order, i.e. what one process writes (timing fields aside). A rank that dies takes the
others down with it (torchrun); re-running the same command resumes every rank from its own file
and merges. Items already in ``PRED.jsonl`` (an earlier single-process run, a previous merge) are
not streamed again; before the ranks start, rank 0 alone cuts its torn tail or repairs it
(``--repair_output``) while the others wait. Several nodes need ``--output`` on a shared file
system: a rank's file that rank 0 sees short stops the merge. On CUDA a bare ``--device cuda``
means ``cuda:LOCAL_RANK``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from utils.io import atomic_write_json, read_json

# the barrier waits for the slowest rank: a share of a large benchmark can take days
DIST_TIMEOUT = _dt.timedelta(days=7)


# ------------------------------------------------------------------------------ streams


def predictions(todo: list[dict], root: Path, streams: int, start_engine: Callable, stream: Callable,
                need_video: bool = True) -> Iterator[tuple[dict, Path, dict | None, Exception | None]]:
    """``(item, video, prediction, None)`` or ``(item, video, None, error)`` for every item of ``todo``.

    ``start_engine(lanes)`` loads the engine (called once, only when some item has a video to stream)
    with ``lanes`` streams: ``streams``, or fewer when fewer items are left to stream (a lane without an
    item would still hold its share of the batched cache, and a compiled step computes every lane);
    ``stream(engine, item, video)`` streams one item on a StreamingEngine (a lane when ``streams`` > 1)
    and returns its prediction. Items whose video is missing are errors without any model work."""
    engine = None
    if streams == 1:
        for item in todo:
            video = root / item["video"]
            if need_video and not video.exists():
                yield item, video, None, FileNotFoundError(f"video not found: {video}")
                continue
            if engine is None:
                engine = start_engine(1)
            try:
                pred = stream(engine, item, video)
            except Exception as e:  # a bad video (or a failure on it) costs that item only
                yield item, video, None, e
                continue
            yield item, video, pred, None
        return
    ready = []
    for item in todo:
        video = root / item["video"]
        if need_video and not video.exists():
            yield item, video, None, FileNotFoundError(f"video not found: {video}")
        else:
            ready.append((item, video))
    if not ready:
        return
    engine = start_engine(min(streams, len(ready)))

    def job(item, video):
        return lambda lane: stream(lane, item, video)

    by_id = {item["id"]: (item, video) for item, video in ready}
    for key, pred, error in engine.run_jobs((item["id"], job(item, video)) for item, video in ready):
        item, video = by_id[key]
        if isinstance(error, Exception):
            yield item, video, None, error
        elif error is not None:  # KeyboardInterrupt, SystemExit in a lane: not an item's failure
            raise error
        else:
            yield item, video, pred, None


def check_streams(streams) -> None:
    if not isinstance(streams, int) or streams < 1:
        raise ValueError(f"--streams must be an integer >= 1, got {streams!r}")


def split_rows_arg(text: str):
    """``--split_rows``: 'auto' (default), 'none' or a number of rows (models.multistream.MultiStreamEngine)."""
    if text in ("auto", "none"):
        return None if text == "none" else text
    if text.isascii() and text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"--split_rows must be 'auto', 'none' or an integer >= 0, got {text!r}")


# ------------------------------------------------------------------------------ processes


@dataclass(frozen=True)
class Shard:
    """This process's place in a torchrun launch (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, env=None) -> "Shard":
        env = os.environ if env is None else env
        try:
            rank, world = int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1))
            local = int(env.get("LOCAL_RANK", rank))
        except ValueError as e:
            raise ValueError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers (set by torchrun): {e}") from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise ValueError(f"invalid torchrun environment: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local}")
        return cls(rank, world, local)

    @property
    def active(self) -> bool:
        return self.world > 1

    def share(self, items: list) -> list:
        """Items r, r + W, r + 2W, ... in file order: deterministic, balanced by count."""
        return items[self.rank:: self.world]

    def output(self, output: str | os.PathLike) -> Path:
        """``PRED.jsonl`` -> ``PRED.rank{r}-of-{W}.jsonl`` (the output itself for one process)."""
        p = Path(output)
        if not self.active:
            return p
        return p.with_name(f"{p.stem}.rank{self.rank}-of-{self.world}{p.suffix or '.jsonl'}")

    def all_outputs(self, output: str | os.PathLike) -> list[Path]:
        return [Shard(r, self.world).output(output) for r in range(self.world)]

    def device(self, device: str | None) -> str | None:
        """A bare ``cuda`` is this rank's GPU (``cuda:LOCAL_RANK``); anything else as given."""
        return f"cuda:{self.local_rank}" if self.active and device == "cuda" else device

    def describe(self) -> dict:
        return {"rank": self.rank, "world_size": self.world, "local_rank": self.local_rank, "host": socket.gethostname(),
                "pid": os.getpid()}

    # -------------------------------------------------------------- process group
    def init(self) -> None:
        """Join the launch's process group (gloo: it only synchronises the end of the run)."""
        import torch.distributed as dist

        if self.active and not dist.is_initialized():
            dist.init_process_group("gloo", timeout=DIST_TIMEOUT)

    def gather(self, obj) -> list | None:
        """Wait for every rank (a barrier) and return every rank's ``obj`` on rank 0 (None elsewhere)."""
        import torch.distributed as dist

        if not self.active:
            return [obj]
        out = [None] * self.world if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank (a barrier too)."""
        import torch.distributed as dist

        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.active:
            dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if self.active and dist.is_initialized():
            dist.destroy_process_group()


# ------------------------------------------------------------------------------ merging


def _index(path: Path) -> list[tuple[str, int, int]]:
    """(id, byte offset, length) of every line of a prediction file; a bad line is an error."""
    out = []
    with open(path, "rb") as f:
        offset = 0
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rec = json.loads(line)
                    key = str(rec["id"])
                except (ValueError, KeyError, TypeError) as e:
                    raise ValueError(f"{path}:{n}: not a prediction record ({e})") from None
                out.append((key, offset, len(line) if line.endswith(b"\n") else len(line) + 1))
            offset += len(line)
    return out


def _atomic_write_bytes(path: Path, chunks) -> None:
    tmp = path.with_name(f".{path.name}.merge-{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def merge_predictions(output: Path, parts: list[Path], order: list[str]) -> int:
    """Write ``output`` from itself (earlier records) and ``parts`` (the ranks' files, newer): one line
    per id, the ids of ``order`` first in that order, then any others as found. Returns the count."""
    where: dict[str, tuple[Path, int, int]] = {}
    found: list[str] = []
    for path in [output, *parts]:
        if path.exists():
            for key, off, n in _index(path):
                if key not in where:
                    found.append(key)
                where[key] = (path, off, n)  # a rank's file wins over an older merge
    keys = [k for k in order if k in where]
    ordered = set(keys)
    keys += [k for k in found if k not in ordered]
    handles: dict[Path, object] = {}

    def lines():
        for key in keys:
            path, off, n = where[key]
            f = handles.get(path) or handles.setdefault(path, open(path, "rb"))
            f.seek(off)
            data = f.read(n)
            yield data if data.endswith(b"\n") else data + b"\n"

    try:
        _atomic_write_bytes(output, lines())
    finally:
        for f in handles.values():
            f.close()
    return len(keys)


def merge_lines(output: Path, parts: list[Path]) -> int:
    """``output`` = its own lines, then every new line of ``parts`` (exact duplicates once): error logs."""
    seen, out = set(), []
    for path in [output, *parts]:
        if path.exists():
            for line in path.read_bytes().splitlines():
                if line.strip() and line not in seen:
                    seen.add(line)
                    out.append(line + b"\n")
    if out or output.exists():
        _atomic_write_bytes(output, out)
    return len(out)


def merge_run_records(output: Path, parts: list[Path], shard: Shard, part_outputs: list[Path],
                      finalise: Callable[[dict], None] | None = None, keep_existing: bool = True) -> dict:
    """The run record of the merged output: settings / items / engine as the ranks recorded them, and
    every rank's invocations (with its rank), each once, in the state its rank last recorded (a killed
    invocation, finalised as interrupted by the rerun, replaces its earlier copy). ``finalise``: what
    finalises the merged record's own unfinished invocations (a killed single-process run).
    ``keep_existing`` False: an existing ``output`` is a stale record (its predictions file was gone
    before this merge, e.g. deleted to start over with other settings) and is replaced, as a single
    process replaces a run record without its predictions (``open_run_record``)."""
    records = [read_json(p) for p in parts if p.exists()]
    if not records:
        raise ValueError(f"no rank run record to merge into {output}")
    keep = keep_existing and output.exists()
    base = read_json(output) if keep else {k: v for k, v in records[0].items() if k != "runs"}
    base.setdefault("runs", [])
    if base.get("engine") is None:
        base["engine"] = next((r["engine"] for r in records if r.get("engine")), None)

    def key(inv: dict) -> tuple:
        return inv.get("rank"), inv.get("world_size"), inv.get("started"), inv.get("pid")

    at = {key(inv): i for i, inv in enumerate(base["runs"])}
    for rec in records:
        for inv in rec.get("runs", []):
            if key(inv) in at:
                base["runs"][at[key(inv)]] = inv
            else:
                at[key(inv)] = len(base["runs"])
                base["runs"].append(inv)
    if finalise is not None:
        finalise(base)
    base["shards"] = {"world_size": shard.world, "files": [p.name for p in part_outputs],
                      "merged": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    atomic_write_json(output, base)
    return base


def merge(output: str | os.PathLike, shard: Shard, order: list[str], errors_path: Callable, run_record_path: Callable,
          finalise: Callable[[dict], None] | None = None, rank_totals: list[int] | None = None) -> int:
    """Rank 0, after every rank finished: the ranks' files -> ``output`` and its errors and run record.
    ``rank_totals``: how many predictions each rank says its file holds; a file that rank 0 sees with
    fewer (another node's file on a disk that is not shared) is an error, not a silently short merge.
    Returns how many of ``order`` the merged output holds."""
    output = Path(output)
    parts = shard.all_outputs(output)
    for r, (part, n) in enumerate(zip(parts, rank_totals or [])):
        seen = len(_index(part)) if part.exists() else 0
        if seen < n:
            raise RuntimeError(f"rank {r} wrote {n} predictions to {part}, rank 0 sees {seen}: with several nodes, "
                               "--output must be on a file system every node shares")
    # the merged run record is kept only beside the predictions it describes: with PRED.jsonl gone, a
    # PRED.run.json left behind was never compared with this run's settings (merged_finished_ids), and
    # keeping it would record another run's settings and engine for these predictions
    had_predictions = output.exists()
    merge_predictions(output, parts, order)
    merge_lines(errors_path(output), [errors_path(p) for p in parts])
    merge_run_records(run_record_path(output), [run_record_path(p) for p in parts], shard, parts, finalise,
                      keep_existing=had_predictions)
    return len({k for k, _, _ in _index(output)} & set(order)) if output.exists() else 0
