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
video: the videos are not needed, and the model's vision tower does not run.

Scale-out (``test/scale_out.py``): ``--streams N`` streams N items at a time in one batched LM
forward per step (each item's record equals streaming it alone); under ``torchrun --nproc_per_node G
[--nnodes ...] -m test.run_benchmark ...`` every rank streams its own share of the items into
``PRED.rank{r}-of-{W}.jsonl`` (resumable on its own) and rank 0 merges them into ``PRED.jsonl`` in the
items' order once all have finished; a dead rank is resumed by re-running the same command.

Resuming: items whose id is already in ``PRED.jsonl`` are skipped (a torn last line left by a
crash is cut off first). Resuming with different model/engine settings is refused, so one file
never mixes two configurations. The model is loaded only when some item still needs it.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import logging
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Iterator

from test.live_infer import add_engine_args, engine_config, feature_frames, load_model, make_degradation, open_features
from test.scale_out import Shard, check_streams, merge, predictions
from utils.io import JsonlWriter, atomic_write_json, iter_jsonl, read_json, sha256_file
from utils.log import setup_logging

log = logging.getLogger("run_benchmark")

# Settings that change the predictions: a resumed run must use the same ones.
SETTING_KEYS = (
    "model_config", "weights", "checkpoint", "dtype", "fps", "max_frames", "prompt_order", "cache_policy",
    "window", "sink_tokens", "score_heads", "threshold", "cumulative_threshold", "min_interval",
    "uncertainty_gate", "max_wait_frames", "no_generate", "remove_assistant_turns", "max_new_tokens",
    "repetition_penalty", "degrade", "features",
)


# ------------------------------------------------------------------------------------ paths


def errors_path(output: str | os.PathLike) -> Path:
    """``PRED.jsonl`` -> ``PRED.errors.jsonl``."""
    p = Path(output)
    return p.with_name(p.stem + ".errors" + (p.suffix or ".jsonl"))


def run_record_path(output: str | os.PathLike) -> Path:
    """``PRED.jsonl`` -> ``PRED.run.json``."""
    p = Path(output)
    return p.with_name(p.stem + ".run.json")


# ------------------------------------------------------------------------------------ items


def load_items(path: str | os.PathLike, limit: int | None = None) -> list[dict]:
    """Benchmark items in file order (the first ``limit`` of them); clear errors on bad input."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"items file not found: {path}")
    items, seen = [], set()
    for n, rec in enumerate(iter_jsonl(path), 1):
        if not isinstance(rec, dict) or "id" not in rec or not rec.get("video"):
            raise ValueError(f"{path}: item {n} lacks 'id' or 'video' (expected the datasets/convert.py format)")
        rec["id"] = str(rec["id"])
        if rec["id"] in seen:
            raise ValueError(f"{path}: duplicate item id {rec['id']!r}")
        seen.add(rec["id"])
        qt = rec.get("query_time", 0.0)
        if qt is None or not isinstance(qt, (int, float)) or not math.isfinite(qt) or qt < 0:
            raise ValueError(f"{path}: item {rec['id']!r} has an invalid query_time {qt!r}")
        items.append(rec)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be >= 1, got {limit}")
        items = items[:limit]
    return items


def finished_ids(output: str | os.PathLike) -> set[str]:
    """Ids already predicted; a torn last line (a crash mid-write) is cut off so appending stays valid."""
    path = Path(output)
    if not path.exists():
        return set()
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            f.truncate(keep)
            log.warning("%s: cut off a torn last line (%d bytes) left by an interrupted run", path, len(data) - keep)
    return {str(rec["id"]) for rec in iter_jsonl(path) if isinstance(rec, dict) and "id" in rec}



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
            for s in iter_sampled(str(video), fps, engine.frame_size, end_frame=max_frames, degradation=degradation):
                native.append(int(s.native_index))
                yield FrameEvent(s.time, s.image)
        else:
            with open_source(video, fps=fps, size=engine.frame_size, degradation=degradation, end_frame=max_frames) as src:
                for t, img in src:
                    yield FrameEvent(t, img)

    query, qtime = item.get("query"), float(item.get("query_time") or 0.0)
    queries = [] if query is None else [QueryEvent(qtime, str(query))]
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
    bad = [k for k, v in cols.items() if not all(math.isfinite(x) for x in v)]
    if bad:
        raise FloatingPointError(f"non-finite head scores in {bad} (model or dtype problem)")
    out = {
        "id": item["id"], "dataset": item.get("dataset"), "video": item["video"], "query": query,
        "query_time": qtime, "query_asked": bool(queries) and cols["time"][-1] >= qtime,
        "duration": info.duration if info is not None else None, "fps": fps,
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


# ----------------------------------------------------------------------------- run record


def settings_of(args) -> dict:
    return {k: getattr(args, k) for k in SETTING_KEYS}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def open_run_record(args, items_path: Path, argv: list[str]) -> dict:
    """Load (resume) or start the run record; refuse to resume under different settings."""
    path = run_record_path(args.output)
    settings = settings_of(args)
    items_sha = sha256_file(items_path)
    if path.exists() and Path(args.output).exists():
        record = read_json(path)
        old = record.get("settings", {})
        diff = sorted(k for k in SETTING_KEYS if k in old and old[k] != settings[k])
        if diff:
            raise ValueError(f"{args.output} was written with other settings ({', '.join(f'{k}: {old[k]!r} -> {settings[k]!r}' for k in diff)}); "
                             "write to a new --output, or delete the old one to start over")
        if record.get("items", {}).get("sha256") not in (None, items_sha):
            raise ValueError(f"{args.output} was written for another items file (sha256 differs from {items_path}); "
                             "write to a new --output")
        return record
    meta_path = items_path.with_name(items_path.name + ".meta.json")
    meta = read_json(meta_path) if meta_path.is_file() else None
    return {
        "settings": settings,
        "items": {"path": str(items_path.resolve()), "sha256": items_sha, "converter": meta},
        "video_root": str(Path(args.video_root).resolve()),
        "engine": None,  # filled when the model is loaded
        "runs": [],
    }


def engine_record(engine, args) -> dict:
    cfg = engine.cfg
    return {
        "fps": args.fps, "max_frames": args.max_frames, "tokens_per_frame": engine.tpf, "frame_size": engine.frame_size,
        "prompt_order": cfg.prompt_order, "system_prompt": engine.system_prompt,
        "cache": {"policy": cfg.cache_policy, "window": cfg.window, "sink_tokens": cfg.sink_tokens},
        "cache_layout": cfg.cache_record(),
        "decision": {"score_heads": list(cfg.decision.score_heads), "threshold": cfg.decision.threshold,
                     "cumulative_threshold": cfg.decision.cumulative_threshold,
                     "min_interval_s": cfg.decision.min_interval_s, "uncertainty_gate": cfg.decision.uncertainty_gate,
                     "max_wait_frames": cfg.decision.max_wait_frames},
        "generate": cfg.generate, "remove_assistant_turns": cfg.remove_assistant_turns,
        "max_new_tokens": cfg.max_new_tokens, "repetition_penalty": cfg.repetition_penalty,
        "model": {**getattr(args, "model_record", {}), "dtype": str(engine.dtype).replace("torch.", ""),
                  "device": str(engine.device)},
        "settings_source": getattr(args, "settings_source", None),
        "degrade": args.degrade, "features": args.features,
    }


# ------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m test.run_benchmark", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", required=True, help="benchmark items JSONL (datasets/convert.py)")
    ap.add_argument("--video_root", required=True, help="folder the items' 'video' paths are relative to")
    ap.add_argument("--output", required=True, help="prediction JSONL (appended to; resumable)")
    ap.add_argument("--degrade", default=None, help="random:SEED[:type,type]: a seeded degradation schedule per video "
                    "(types: quality, block_noise, color_banding, blackout)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N items of the file")
    ap.add_argument("--fail_fast", action="store_true", help="stop at the first failing item instead of logging it")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--streams", type=int, default=1, help="items streamed together, one batched LM forward per step "
                    "(models/multistream.py); under torchrun: per process")
    add_engine_args(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    setup_logging("WARNING" if args.quiet else "INFO")
    try:
        return run(args, list(sys.argv[1:] if argv is None else argv))
    except (ValueError, FileNotFoundError) as e:
        print(f"run_benchmark: error: {e}", file=sys.stderr)
        return 2


def load_for_inference(*a, **kw):  # indirection so tests can count or forbid model loads
    from models.inference import load_for_inference as load

    return load(*a, **kw)


def run(args, argv: list[str]) -> int:
    from tqdm import tqdm

    items_path = Path(args.items)
    items = load_items(items_path, args.limit)
    root = Path(args.video_root)
    if not root.is_dir():
        raise FileNotFoundError(f"--video_root is not a folder: {root}")
    if args.degrade:
        check_degrade_spec(args.degrade)  # fail before any work, not on the first item
    if args.degrade and args.features:
        raise ValueError("--features streams the cached (clean) frames: it cannot be combined with --degrade")
    check_streams(args.streams)
    shard, all_items, merged_output = Shard.from_env(), items, args.output
    if shard.active:  # torchrun: this rank's share, into its own files (test/scale_out.py)
        if Path(args.output).exists():
            open_run_record(args, items_path, argv)  # the merged output's settings must match too
        args.output, args.device, items = str(shard.output(args.output)), shard.device(args.device), shard.share(items)
        shard.init()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    record = open_run_record(args, items_path, argv)
    done = finished_ids(args.output) | (finished_ids(merged_output) if shard.active else set())
    todo = [it for it in items if it["id"] not in done]
    invocation = {"command": ["python", "-m", "test.run_benchmark", *argv], "started": _now(),
                  "n_items": len(items), "n_already_done": len(items) - len(todo), "streams": args.streams,
                  **(shard.describe() if shard.active else {})}
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

    def start_engine():
        # only when an item has a video to stream (a run with nothing left to stream never loads the
        # model); a model that cannot be loaded stops the run instead of failing every item
        nonlocal features
        engine = _make_engine(args)
        features = open_features(args, engine.model)
        record["engine"] = engine_record(engine, args)
        return engine

    def stream(engine, item: dict, video: Path) -> dict:
        degradation = item_degradation(args.degrade, item["id"], video)
        return stream_item(engine, item, video, args.fps, args.max_frames, degradation, args.vision_batch, features)

    status = "interrupted"
    try:
        with JsonlWriter(args.output, "a") as out, errs:
            for item, video, pred, error in predictions(todo, root, args.streams, start_engine, stream, not args.features):
                bar.update(1)
                if error is not None:
                    if args.fail_fast and (args.features or video.exists()):
                        raise error
                    failed(item, video, error)
                    continue
                out.write(pred)
                n_new += 1
                bar.set_postfix(errors=n_err, fps=f"{pred['n_frames'] / max(pred['elapsed_s'], 1e-9):.1f}")
        status = "finished"
    finally:
        bar.close()
        invocation.update({status: _now()}, n_predicted=n_new, n_errors=n_err)
        atomic_write_json(run_record_path(args.output), record)
    total = len(finished_ids(args.output) & {it["id"] for it in items})
    msg = (f"{n_new} items predicted now, {len(items) - len(todo)} already done, {total}/{len(items)} in {args.output}")
    if shard.active:  # every rank waits for the others; rank 0 merges their files
        if shard.gather(total) is not None:
            n = merge(merged_output, shard, [it["id"] for it in all_items], errors_path, run_record_path)
            msg += f"; merged the {shard.world} ranks: {n}/{len(all_items)} in {merged_output}"
        shard.close()
    if n_err:
        msg += f"; {n_err} FAILED and skipped (reasons in {errors_path(args.output)})"
    print(msg, file=sys.stderr if n_err else sys.stdout)
    # failure only when nothing could be predicted at all; partial failures are counted, not fatal
    return 1 if n_err and total == 0 else 0


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


def check_degrade_spec(spec: str) -> tuple[int, str]:
    """(seed, comma-separated types or "") of a ``random:SEED[:types]`` spec; ValueError otherwise."""
    parts = spec.split(":")
    if parts[0] != "random" or len(parts) not in (2, 3) or not parts[1].lstrip("-").isdigit():
        raise ValueError(f"--degrade must be random:SEED or random:SEED:type,type, got {spec!r}")
    if len(parts) == 3:
        from data.degrade import KINDS

        bad = [t for t in parts[2].split(",") if t not in KINDS]
        if bad or not parts[2]:
            raise ValueError(f"--degrade {spec!r}: unknown degradation(s) {bad}; choose from {KINDS}")
    return int(parts[1]), parts[2] if len(parts) == 3 else ""


def _make_engine(args):
    from models.streaming import StreamingEngine

    model, tok = load_model(args, loader=load_for_inference)
    if args.streams > 1:
        from models.multistream import MultiStreamEngine

        return MultiStreamEngine(model, tok, engine_config(args), streams=args.streams)
    return StreamingEngine(model, tok, engine_config(args))


if __name__ == "__main__":
    sys.exit(main())
