"""Stream every item of a benchmark through the online engine and write one prediction per item.

    python -m test.run_benchmark --items ITEMS.jsonl --video_root DIR --output PRED.jsonl \
        [engine flags: --model_config --checkpoint --weights --fps --cache_policy --no_generate ...] \
        [--degrade random:SEED[:type,type]] [--features FEATS] [--limit N] [--fail_fast]

``ITEMS.jsonl`` is the converter's format (``datasets/convert.py``): ``{"id", "dataset", "video",
"query", "query_time", "duration", "gold", ...}``. Each item's ``video`` (relative to
``--video_root``) is streamed at ``--fps`` and its query asked at ``query_time``; nothing after the
current frame is ever looked at (``models.streaming.StreamingEngine``, reset between videos).

Outputs, next to ``PRED.jsonl``:

* ``PRED.jsonl``: one ``StreamPrediction`` line per item (``test/predictions.py``): per-frame
  ``time / informative / relevance / uncertainty`` (raw log-variance), the responses, the native
  frame index of every sampled frame, the streamed video's duration and native fps, the query,
  and the degradation schedule when ``--degrade`` is given. Append-only, one flushed line per
  finished item, so a crash loses at most the item being streamed.
* ``PRED.errors.jsonl``: one line per item that failed (missing or undecodable video, ...), with
  the reason. Failed items are skipped, counted and reported at the end, and retried by the next
  run.
* ``PRED.run.json``: the settings of the run (model, engine, decision rule, items file and its
  converter record, degradation) and one entry per invocation. ``test.benchmark`` copies it into
  the results' protocol record.

``--features FEATS`` streams frame tokens cached by ``scripts/extract_features.py --items ITEMS``
(the same model, dtype and fps; key = the item's ``video``) instead of decoding and encoding each
video: the videos are not needed, and the model's vision tower does not run. Where an item's video
is there, the features must have been extracted from it (size, packet count and duration, recorded
at extraction): another video under the same key, or a file that does not record its video (older
extraction: re-extract), is a recorded skip naming both files.

Scale-out (``test/scale_out.py``): ``--streams N`` streams N items at a time in one batched LM
forward per step (each item's record equals streaming it alone); under ``torchrun --nproc_per_node G
[--nnodes ...] -m test.run_benchmark ...`` every rank streams its own share of the items into
``PRED.rank{r}-of-{W}.jsonl`` (resumable on its own) and rank 0 merges them into ``PRED.jsonl`` in the
items' order once all have finished; a dead rank is resumed by re-running the same command.

Resuming: items whose id is already in ``PRED.jsonl`` are skipped (a torn last line left by a
crash is cut off first, and said). Resuming with different model/engine settings (``SETTING_KEYS``),
changed model files (the content sha256 of --checkpoint / --weights / --heads), another items file
or another --video_root is refused (exit 2), so one file never mixes two configurations. The model
is loaded only when some item still needs it. A bad line in the *middle* of ``PRED.jsonl`` (a disk
or copy error) stops the run with ``file:line``;
``--repair_output`` drops such lines (kept verbatim in ``PRED.dropped_lines.txt``, recorded in
``PRED.run.json``) and predicts their items again.

Errors (instructions/errors.md): a bad argument or items file is one line and exit 2, before the
model loads; a video that is missing, truncated or corrupt, or an item whose query_time is at or after
the end of its stream (the query would never be asked), is a recorded skip (``PRED.errors.jsonl``),
and the run goes on (exit 0, or 1 when no item could be predicted). Every invocation records its end
in ``PRED.run.json``: ``status`` done / failed / interrupted (Ctrl-C, SIGTERM); one killed outright
(SIGKILL) is finalised as interrupted by the next run.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Iterator

from test.engine_args import (add_engine_args, check_degrade_spec, check_engine_args, engine_config, feature_frames, load_model,
                              make_degradation, open_features)
from test.run_record import (FUSION_FLAGS, MODEL_FILE_FLAGS, NOT_SETTING_KEYS, PATH_SETTINGS, SETTING_KEYS,  # noqa: F401 (re-exported)
                             _comparable, engine_record, model_file_differences, model_files, open_run_record, other_cut,
                             _now, recorded_model_files, run_record_path, setting_differences, settings_of)
from test.scale_out import Shard, check_streams, merge, predictions, split_rows_arg
from utils.cli import ArgumentParser, add_debug_flag, check_output_file, run_cli
from utils.io import (JsonlWriter, LineError, atomic_write_json, atomic_write_text, cut_torn_tail, drop_bad_lines,
                      read_json, read_jsonl_lines, read_own_jsonl)
from utils.log import setup_logging

log = logging.getLogger("run_benchmark")


# ------------------------------------------------------------------------------------ paths


def errors_path(output: str | os.PathLike) -> Path:
    """``PRED.jsonl`` -> ``PRED.errors.jsonl``."""
    p = Path(output)
    return p.with_name(p.stem + ".errors" + (p.suffix or ".jsonl"))




# ------------------------------------------------------------------------------------ items


def load_items(path: str | os.PathLike, limit: int | None = None) -> list[dict]:
    """Benchmark items in file order (the first ``limit`` of them); a bad line is an error with
    ``file:line`` (every line is read, also past ``limit``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"items file not found: {path}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    items, seen = [], {}
    for n, rec in read_jsonl_lines(path, "items file", objects=True):
        if "id" not in rec or not isinstance(rec.get("video"), str) or not rec["video"].strip():
            raise LineError("the item lacks 'id' or 'video' (expected the datasets/convert.py format)", path, n)
        if rec["id"] is None or isinstance(rec["id"], (bool, dict, list, float)) or not str(rec["id"]).strip():
            raise LineError(f"invalid item id {rec['id']!r}", path, n)
        rec["id"] = str(rec["id"])
        if rec["id"] in seen:
            raise LineError(f"duplicate item id {rec['id']!r} (first on line {seen[rec['id']]})", path, n)
        seen[rec["id"]] = n
        qt = rec.get("query_time", 0.0)
        if qt is None or isinstance(qt, bool) or not isinstance(qt, (int, float)) or not math.isfinite(qt) or qt < 0:
            raise LineError(f"item {rec['id']!r} has an invalid query_time {qt!r}", path, n)
        q = rec.get("query")
        if q is not None and not isinstance(q, str):
            raise LineError(f"item {rec['id']!r} has a query that is not text: {q!r}", path, n)
        d = rec.get("duration")
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d <= 0):
            raise LineError(f"item {rec['id']!r} has an invalid duration {d!r}", path, n)
        if Path(rec["video"]).is_absolute() or ".." in Path(rec["video"]).parts:
            raise LineError(f"item {rec['id']!r}: video {rec['video']!r} must be relative to --video_root", path, n)
        items.append(rec)
    return items[:limit] if limit is not None else items


REPAIR_HINT = ("rerun with --repair_output to drop such lines (kept aside in PRED.dropped_lines.txt) and "
               "predict their items again")


def finished_ids(output: str | os.PathLike) -> set[str]:
    """Ids already predicted. A torn last line (a crash mid-write) is cut off, and said; any other
    bad line is an error (``--repair_output`` drops it and the items it held are predicted again)."""
    path = Path(output)
    out = set()
    for n, rec in read_own_jsonl(path, "prediction file", log=log, repair_hint=REPAIR_HINT):
        if "id" not in rec:
            raise LineError(f"a prediction without 'id'; {REPAIR_HINT}", path, n)
        out.add(str(rec["id"]))
    return out


def dropped_lines_path(output: str | os.PathLike) -> Path:
    """``PRED.jsonl`` -> ``PRED.dropped_lines.txt`` (lines ``--repair_output`` removed, kept verbatim)."""
    p = Path(output)
    return p.with_name(p.stem + ".dropped_lines.txt")


def repair_output(output: str | os.PathLike) -> dict | None:
    """``--repair_output``: drop the lines of ``PRED.jsonl`` that are not prediction records (kept
    verbatim in ``PRED.dropped_lines.txt``); returns the record of the repair (None: nothing to do)."""
    path = Path(output)
    if not path.exists():
        return None
    dropped = drop_bad_lines(path, objects=True)
    # a valid JSON object without an id is not a prediction either
    kept_lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    no_id = [ln for ln in kept_lines if ln.strip() and "id" not in json.loads(ln)]
    if no_id:
        atomic_write_text(path, "".join(ln for ln in kept_lines if ln not in no_id))
        dropped += [(None, ln.rstrip("\n")) for ln in no_id]
    if not dropped:
        return None
    side = dropped_lines_path(output)
    with open(side, "a", encoding="utf-8") as f:
        for n, text in dropped:
            f.write(f"# {_now()} line {n}\n{text}\n")
    log.warning("%s: dropped %d bad line(s) %s (kept in %s); their items are predicted again", path, len(dropped),
                [n for n, _ in dropped][:10], side)
    return {"time": _now(), "lines": [n for n, _ in dropped], "kept_in": str(side)}


# ---------------------------------------------------------------------------- degradation


def item_degradation(spec: str | None, item_id: str, video: Path):
    """The schedule for one item from ``random:SEED[:types]``: the seed is derived from (SEED, id), so
    every video gets its own schedule and a rerun gets the same one (reference: unseeded)."""
    if not spec:
        return None
    seed, types = check_degrade_spec(spec)
    from data.prompts import item_rng

    item_seed = item_rng(seed, item_id, "degrade").getrandbits(31)
    return make_degradation(f"random:{item_seed}:{types}" if types else f"random:{item_seed}", str(video))


# ------------------------------------------------------------------------------ streaming


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


class QueryNotAsked(ValueError):
    """The item's query time is at or after the end of the stream: the model never saw the query,
    so its scores are no answer to it (a recorded skip, not a prediction)."""


def _query_not_asked(item: dict, qtime: float, last_frame: float | None, duration: float | None) -> QueryNotAsked:
    where = [f"last frame at {last_frame:g} s" if last_frame is not None else None,
             f"video {duration:g} s long" if duration is not None else None]
    return QueryNotAsked(f"item {item['id']!r}: query_time {qtime:g} s is at or after the end of the stream "
                         f"({', '.join(w for w in where if w)}): the query is never asked, so there is nothing to predict")


def stream_item(engine, item: dict, video: Path, fps: float, max_frames: int | None = None,
                degradation=None, vision_batch: int = 1, features=None) -> dict:
    """Stream one item's video (or its cached frame tokens: ``features``) through ``engine`` (reset
    first); returns its prediction record."""
    from data.sources import detect_kind, open_source
    from data.video import iter_sampled, probe
    from models.streaming import FrameEvent, FrameRecord, QueryEvent

    kind = "features" if features is not None else detect_kind(video)
    native: list[int] = []
    info = probe(video) if kind == "file" or (kind == "features" and video.is_file()) else None

    def frames() -> Iterator[FrameEvent]:
        if kind == "features":
            yield from feature_frames(features, item["video"], fps, engine.frame_size, engine.device, engine.dtype,
                                      max_frames)
        elif kind == "file":
            # iter_sampled is what open_source() uses for files; called directly it also says which
            # native frame each sample is (TVSum's ground truth is per native frame).
            for s in iter_sampled(str(video), fps, engine.frame_size, end_frame=max_frames, degradation=degradation,
                                  resize=engine.frame_resize):
                native.append(int(s.native_index))
                yield FrameEvent(s.time, s.image)
        else:
            with open_source(video, fps=fps, size=engine.frame_size, degradation=degradation, end_frame=max_frames,
                             resize=engine.frame_resize) as src:
                for t, img in src:
                    yield FrameEvent(t, img)

    query, qtime = item.get("query"), float(item.get("query_time") or 0.0)
    queries = [] if query is None else [QueryEvent(qtime, str(query))]
    if queries and info is not None and qtime >= info.duration:  # known before streaming: no model work
        raise _query_not_asked(item, qtime, None, info.duration)
    annotated = item.get("duration")
    if info is not None and other_cut(info.duration, annotated):
        # another cut of the video than the one annotated: the scorer places the gold by the annotation
        log.warning("%s: %s lasts %.1f s, its annotation says %.1f s (another cut of the video?)",
                    item["id"], video, info.duration, annotated)
    cols: dict[str, list[float]] = {"time": [], "informative": [], "relevance": [], "uncertainty": []}
    responses: list[dict] = []
    max_cache = 0
    engine.reset()
    t0 = time.perf_counter()
    for rec in engine.run(frames(), queries, vision_batch=vision_batch):
        if isinstance(rec, FrameRecord):
            cols["time"].append(rec.time)
            cols["informative"].append(rec.informative)
            cols["relevance"].append(rec.relevance)
            cols["uncertainty"].append(rec.uncertainty)
            max_cache = max(max_cache, rec.cache_len)
        else:
            responses.append({"role": "assistant", "time": rec.time, "frame": rec.frame, "content": rec.content,
                              "n_tokens": rec.n_tokens, "trigger_score": _finite(rec.trigger_score)})
    if not cols["time"]:
        raise ValueError(f"{video}: no frame was decoded")
    if queries and cols["time"][-1] < qtime:  # the engine asks a query before the first frame at or after it
        raise _query_not_asked(item, qtime, cols["time"][-1], info.duration if info is not None else None)
    bad = [k for k, v in cols.items() if not all(math.isfinite(x) for x in v)]
    if bad:
        raise FloatingPointError(f"non-finite head scores in {bad} (model or dtype problem)")
    out = {
        "id": item["id"], "dataset": item.get("dataset"), "video": item["video"], "query": query,
        "query_time": qtime, "query_asked": bool(queries),  # an item whose query is not asked is a skip
        "duration": info.duration if info is not None else None, "annotated_duration": annotated, "fps": fps,
        "frames": cols, "responses": responses,
        "native_frame_index": native if kind == "file" else None, "frames_from": "features" if kind == "features" else "video",
        "native_fps": info.fps if info is not None else None,
        "annotation_duration": item.get("duration"),
        "template_id": item.get("template_id"), "prompt_variant": item.get("prompt_variant"),
        "degradation": None if degradation is None else degradation.to_list(),
        "n_frames": len(cols["time"]), "max_cache_len": max_cache, "cache_at_end": engine.describe_cache(),
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
    if out["native_frame_index"] is None:
        del out["native_frame_index"]
    return out


# ------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="python -m test.run_benchmark", description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", required=True, help="benchmark items JSONL (datasets/convert.py)")
    ap.add_argument("--video_root", required=True, help="folder the items' 'video' paths are relative to")
    ap.add_argument("--output", required=True, help="prediction JSONL (appended to; resumable)")
    ap.add_argument("--degrade", default=None, help="random:SEED[:type,type]: a seeded degradation schedule per video "
                    "(types: quality, block_noise, color_banding, blackout)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N items of the file")
    ap.add_argument("--fail_fast", action="store_true", help="stop at the first failing item instead of logging it")
    ap.add_argument("--repair_output", action="store_true",
                    help="drop bad lines in the middle of --output (a disk or copy error; kept verbatim in "
                         "PRED.dropped_lines.txt, recorded in PRED.run.json) and predict their items again")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--streams", type=int, default=1, help="items streamed together, one batched LM forward per step "
                    "(models/multistream.py); under torchrun: per process")
    ap.add_argument("--split_rows", type=split_rows_arg, default="auto",
                    help="with --streams > 1: run a step whose lanes ask for very different lengths (query turns, last "
                         "partial blocks beside full frame blocks) as two forwards when that computes more than this many "
                         "fewer padding rows; 'auto' (default): 8 frames' rows; 'none': always one forward. "
                         "Records do not depend on it")
    add_engine_args(ap)
    add_debug_flag(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    setup_logging("WARNING" if args.quiet else "INFO")
    return run_cli("run_benchmark", lambda: run(args, list(sys.argv[1:] if argv is None else argv)), debug=args.debug,
                   outputs=lambda: args.output if Path(args.output).exists() else None)


def load_for_inference(*a, **kw):  # indirection so tests can count or forbid model loads
    from models.inference import load_for_inference as load

    return load(*a, **kw)


def run(args, argv: list[str]) -> int:
    from tqdm import tqdm

    # every input checked before anything is written or loaded
    defaults = build_parser()
    fused = [k for k in FUSION_FLAGS if getattr(args, k) != defaults.get_default(k)]
    if fused:  # they would be accepted and do nothing: the records hold the raw head scores
        raise ValueError(f"--{fused[0]}: this driver writes the raw head scores; fusion, smoothing and peaks are "
                         "chosen when scoring (python -m test.benchmark / test.evaluate take these flags)")
    check_engine_args(args)
    items_path = Path(args.items)
    items = load_items(items_path, args.limit)
    root = Path(args.video_root)
    if not root.is_dir():
        raise FileNotFoundError(f"--video_root is not a folder: {root}")
    if args.degrade:
        check_degrade_spec(args.degrade)  # fail before any work, not on the first item
    check_streams(args.streams)
    check_output_file(args.output, "--output")
    shard, all_items, merged_output = Shard.from_env(), items, args.output
    merged_done: set[str] = set()
    if shard.active:  # torchrun: this rank's share, into its own files (test/scale_out.py)
        shard.init()
        merged_done = merged_finished_ids(args, items_path, argv, shard)
        args.output, args.device, items = str(shard.output(args.output)), shard.device(args.device), shard.share(items)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    record = open_run_record(args, items_path, argv)
    repair = repair_output(args.output) if args.repair_output else None
    cut_torn_tail(errors_path(args.output), log)  # appending after a torn line would corrupt the file
    done = finished_ids(args.output) | merged_done
    todo = [it for it in items if it["id"] not in done]
    finalise_unfinished(record)
    invocation = {"command": ["python", "-m", "test.run_benchmark", *argv], "started": _now(), "status": "running",
                  "n_items": len(items), "n_already_done": len(items) - len(todo), "streams": args.streams,
                  "split_rows": args.split_rows if args.streams > 1 else None,
                  **(shard.describe() if shard.active else {})}
    if repair is not None:
        invocation["repaired"] = repair
    record["runs"].append(invocation)
    atomic_write_json(run_record_path(args.output), record)

    features = None
    n_new = n_err = 0
    bar = tqdm(total=len(todo), desc="items" + (f" rank {shard.rank}" if shard.active else ""), unit="item",
               disable=args.quiet, dynamic_ncols=True)
    errs = _LazyWriter(errors_path(args.output))  # no errors file unless something fails

    def failed(item: dict, video: Path, e: Exception) -> None:
        nonlocal n_err
        n_err += 1
        errs.write({"id": item["id"], "video": str(video), "error": type(e).__name__, "message": str(e),
                    "where": _where(e), "time": _now()})
        bar.write(f"[{item['id']}] skipped: {type(e).__name__}: {e}")
        bar.set_postfix(errors=n_err)

    def start_engine(lanes: int):
        # only when an item has a video to stream (a run with nothing left to stream never loads the
        # model); a model that cannot be loaded stops the run instead of failing every item
        nonlocal features
        engine = _make_engine(args, lanes)
        invocation["lanes"] = lanes  # --streams, or fewer: the items left to stream
        features = open_features(args, engine.model)
        record["engine"] = engine_record(engine, args)
        return engine

    def stream(engine, item: dict, video: Path) -> dict:
        degradation = item_degradation(args.degrade, item["id"], video)
        return stream_item(engine, item, video, args.fps, args.max_frames, degradation, args.vision_batch, features)

    status, error = "interrupted", None
    try:
        with JsonlWriter(args.output, "a") as out, errs:
            for item, video, pred, item_error in predictions(todo, root, args.streams, start_engine, stream,
                                                             not args.features):
                bar.update(1)
                if item_error is not None:
                    if args.fail_fast and (args.features or video.exists()):
                        raise item_error
                    failed(item, video, item_error)
                    continue
                out.write(pred)
                n_new += 1
                bar.set_postfix(errors=n_err, fps=f"{pred['n_frames'] / max(pred['elapsed_s'], 1e-9):.1f}")
        status = "done"
    except Exception as e:
        status, error = "failed", f"{type(e).__name__}: {e}"
        raise
    finally:
        bar.close()
        invocation.update(status=status, ended=_now(), n_predicted=n_new, n_errors=n_err)
        if error:
            invocation["error"] = error
        atomic_write_json(run_record_path(args.output), record)
    total = len(finished_ids(args.output) & {it["id"] for it in items})
    msg = (f"{n_new} items predicted now, {len(items) - len(todo)} already done, {total}/{len(items)} in {args.output}")
    any_err = n_err > 0
    if shard.active:  # every rank waits for the others; rank 0 merges their files; then all end together
        counts = shard.gather((n_err, total))
        merged = None
        if counts is not None:
            merged = (merge(merged_output, shard, [it["id"] for it in all_items], errors_path, run_record_path,
                            finalise_unfinished, [t for _, t in counts]), sum(e for e, _ in counts) > 0)
        total, any_err = shard.broadcast(merged)
        msg += f"; merged the {shard.world} ranks: {total}/{len(all_items)} in {merged_output}"
        shard.close()
    if n_err:
        msg += f"; {n_err} FAILED and skipped (reasons in {errors_path(args.output)})"
    print(msg, file=sys.stderr if n_err else sys.stdout)
    # failure only when nothing could be predicted at all; partial failures are counted, not fatal
    return 1 if any_err and total == 0 else 0


def merged_finished_ids(args, items_path: Path, argv: list[str], shard: Shard) -> set[str]:
    """Under torchrun, before the ranks start: the items already in the merged ``PRED.jsonl`` (an
    earlier single-process run, a previous merge), which no rank streams again. Every rank refuses
    one written with other settings; rank 0 alone cuts its torn tail (and ``PRED.errors.jsonl``'s)
    or repairs it (``--repair_output``) while the others wait, so no two processes rewrite it."""
    output = Path(args.output)
    if output.exists() and run_record_path(output).exists():
        open_run_record(args, items_path, argv)  # raises on other settings or another items file
    if shard.rank == 0:
        repair = repair_output(output) if args.repair_output else None
        if repair is not None and run_record_path(output).exists():
            rec = read_json(run_record_path(output))
            rec.setdefault("repairs", []).append(repair)
            atomic_write_json(run_record_path(output), rec)
        finished_ids(output)  # a torn tail is cut here; a bad line stops the run (file:line)
        # and the errors file's, as a single process cuts it before appending: rank 0 merges the ranks'
        # error lines after its last line, where a torn line would become a bad line in the middle
        cut_torn_tail(errors_path(output), log)
    shard.barrier()
    return finished_ids(output)


class _LazyWriter:
    """A JsonlWriter (append) opened at the first record."""

    def __init__(self, path: Path):
        self.path, self._w = path, None

    def write(self, record: dict) -> None:
        if self._w is None:
            self._w = JsonlWriter(self.path, "a")
        self._w.write(record)

    def __enter__(self) -> "_LazyWriter":
        return self

    def __exit__(self, *exc) -> None:
        if self._w is not None:
            self._w.close()


def _where(e: BaseException) -> str | None:
    tb = traceback.extract_tb(e.__traceback__)
    return f"{tb[-1].filename}:{tb[-1].lineno} in {tb[-1].name}" if tb else None


def finalise_unfinished(record: dict) -> None:
    """Invocations that never recorded their end (the process was killed: SIGKILL, power, OOM)
    are finalised as interrupted by the next run."""
    for inv in record.get("runs", []):
        if inv.get("status") in (None, "running") and not any(k in inv for k in ("finished", "interrupted", "ended")):
            inv.update(status="interrupted", ended=None, finalised=_now(),
                       note="never recorded its end (killed); finalised by the next run")
        elif inv.get("status") is None:  # records of older versions: {"finished": time} or {"interrupted": time}
            inv["status"] = "done" if "finished" in inv else "interrupted"


def _make_engine(args, lanes: int | None = None):
    from models.streaming import StreamingEngine

    model, tok = load_model(args, loader=load_for_inference)
    if args.streams > 1:  # a MultiStreamEngine (its run_jobs) even when fewer items than --streams are left
        from models.multistream import MultiStreamEngine

        return MultiStreamEngine(model, tok, engine_config(args), streams=lanes or args.streams, split_rows=args.split_rows)
    return StreamingEngine(model, tok, engine_config(args))


if __name__ == "__main__":
    sys.exit(main())
