"""The run record of ``test.run_benchmark`` (``PRED.run.json``): the settings a run was made with,
what a resumed run must share with it, and the engine's record.

A resumed run must use the same settings (``SETTING_KEYS``, compared as they act: ``_comparable``),
the same model files (content sha256 of --checkpoint / --weights / --heads), the same items file and
--video_root; ``open_run_record`` refuses anything else. ``test.benchmark`` reads the same record
(``--tune pred:`` compares a tuning run's with the reported run's).
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from utils.io import read_json, sha256_file

# Settings that change the predictions: a resumed run must use the same ones. A key missing from an
# older run record is not compared (that record predates it). The model files' contents are checked
# beside these (model_files), the items file and --video_root too (open_run_record).
SETTING_KEYS = (
    "model_config", "weights", "checkpoint", "dtype", "fps", "max_frames", "prompt_order", "cache_policy",
    "window", "sink_tokens", "score_heads", "threshold", "cumulative_threshold", "min_interval",
    "uncertainty_gate", "max_wait_frames", "relevance_gate", "relevance_gate_frames", "no_generate",
    "remove_assistant_turns", "max_new_tokens", "repetition_penalty", "degrade", "features",
    "heads", "tokenizer", "load_in_4bit", "attn", "max_protected", "respond_before_query",
    # kernels that round differently: the same model gives other low bits, hence other decisions
    "compile", "no_merge_lora",
    "device_type",  # cpu / cuda: other kernels and another default dtype (the index is not: it differs per rank)
)
# Post-processing flags (shared with test.live_infer): this driver writes the raw head scores and
# test.benchmark fuses them, so here they are refused when given (they would do nothing)
FUSION_FLAGS = ("alpha", "beta", "epsilon", "tau", "uncertainty_kind", "params_file", "params_key",
                "savgol_window", "savgol_polyorder", "peak_distance", "peak_prominence")
# The parser's other flags, and why a resumed run may change them:
NOT_SETTING_KEYS = (
    "items", "video_root",  # checked on their own (sha256 of the items file, the resolved folder)
    "output", "limit", "fail_fast", "repair_output", "quiet", "debug",  # which items and how failures are handled
    "device",  # only its type matters (device_type); under torchrun every rank has its own index
    # speed only: records equal those of the plain run (tests/test_multistream.py, tests/test_stream_cache.py)
    "vision_batch", "frames_per_step", "streams", "split_rows",
    *FUSION_FLAGS,
)
PATH_SETTINGS = ("weights", "checkpoint", "heads", "tokenizer", "features")
# The model files whose contents a resumed run must share (what models.inference records of them)
MODEL_FILE_FLAGS = {"checkpoint_sha256": "checkpoint", "weights_sha256": "weights", "heads_sha256": "heads"}


def run_record_path(output: str | os.PathLike) -> Path:
    """``PRED.jsonl`` -> ``PRED.run.json``."""
    p = Path(output)
    return p.with_name(p.stem + ".run.json")



# the parts of a run record its readers index: each an object when present ("engine" may be null)
RECORD_OBJECTS = ("settings", "items", "model_files", "engine")


def read_run_record(path: str | os.PathLike) -> dict:
    """A run record (``PRED.run.json``) read back, its layout checked: a damaged or edited record (a list,
    a ``settings`` that is not an object, ...) is a ValueError naming it, not an AttributeError or a
    KeyError while a resume or a tuning check reads it."""
    record = read_json(path)
    if not isinstance(record, dict):
        raise ValueError(f"{path}: not a run record of test.run_benchmark (a JSON object), got {type(record).__name__}")
    for key in RECORD_OBJECTS:
        if record.get(key) is not None and not isinstance(record[key], dict):
            raise ValueError(f"{path}: '{key}' must be a JSON object, got {record[key]!r:.60}")
    for key in ("settings", "items", "model_files"):
        if key in record and record[key] is None:
            raise ValueError(f"{path}: '{key}' must be a JSON object, got null")
    if "runs" in record and not isinstance(record["runs"], list):
        raise ValueError(f"{path}: 'runs' must be a JSON list, got {record['runs']!r:.60}")
    return record


def settings_of(args) -> dict:
    derived = {"device_type": str(args.device).split(":")[0]}
    return {k: derived[k] if k in derived else getattr(args, k) for k in SETTING_KEYS}


def _comparable(settings: dict) -> dict:
    """Settings as they act: --sink_tokens does nothing under a policy without sink tokens (runs
    written with one, or without it, are the same run; without a --cache_policy flag the policy is
    the checkpoint's, not known here: compared as given); paths compared resolved."""
    from models.cache import effective_max_protected, effective_sink_tokens, effective_window

    out = dict(settings)
    if out.get("cache_policy") is not None:  # likewise --max_protected / --window where the policy ignores them
        p = out["cache_policy"]
        out["max_protected"] = effective_max_protected(p, out.get("max_protected"), out.get("sink_tokens"))
        out["window"] = effective_window(p, out.get("window"))
        out["sink_tokens"] = effective_sink_tokens(p, out.get("sink_tokens"))
    for k in PATH_SETTINGS:  # the same folder named relatively or absolutely (from where the run is started)
        if isinstance(out.get(k), str):
            out[k] = str(Path(out[k]).resolve())
    return out


def setting_differences(old: dict, new: dict, keys=SETTING_KEYS) -> list[str]:
    """The settings (of ``keys``) two runs recorded differently, compared as they act (``_comparable``);
    a key one record lacks (an older record) is not compared."""
    old_cmp, new_cmp = _comparable(old), _comparable(new)
    return sorted(k for k in keys if k in old and k in new and old_cmp[k] != new_cmp[k])


def recorded_model_files(record: dict) -> dict:
    """The model files' hashes of a run record (older records: only in the loaded model's record)."""
    return record.get("model_files") or ((record.get("engine") or {}).get("model") or {})


def model_file_differences(old: dict, new: dict) -> list[str]:
    """The model-file hashes (``MODEL_FILE_FLAGS`` keys) both records hold and that differ."""
    return [k for k in MODEL_FILE_FLAGS if old.get(k) and new.get(k) and old[k] != new[k]]


def model_files(args) -> dict:
    """Content hashes of the model files the flags name (None: flag not given). Cached by path, size,
    mtime, inode and ctime (utils.io.folder_hash), so only a new or changed file is read; the model load hashes
    the same files anyway."""
    from models.checkpoint import content_hash_of

    return {"checkpoint_sha256": content_hash_of(args.checkpoint) if args.checkpoint else None,
            "weights_sha256": content_hash_of(args.weights) if args.weights else None,
            "heads_sha256": sha256_file(args.heads) if getattr(args, "heads", None) else None}


def other_cut(streamed: float | None, annotated) -> bool:
    """Whether a streamed video's duration differs from its annotation's by more than max(2 s, 5 %):
    another cut of the video than the one annotated (the scorers place the gold by the annotation)."""
    if streamed is None or isinstance(annotated, bool) or not isinstance(annotated, (int, float)) or annotated <= 0:
        return False
    return abs(float(streamed) - annotated) > max(2.0, 0.05 * annotated)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def open_run_record(args, items_path: Path, argv: list[str]) -> dict:
    """Load (resume) or start the run record; refuse to resume under different settings."""
    path = run_record_path(args.output)
    settings = settings_of(args)
    items_sha = sha256_file(items_path)
    video_root = str(Path(args.video_root).resolve())
    if path.exists() and Path(args.output).exists():
        record = read_run_record(path)
        if not isinstance(record.get("runs"), list):
            raise ValueError(f"{path}: not a run record of test.run_benchmark")
        old = record.get("settings", {})
        diff = setting_differences(old, settings)
        if diff:
            raise ValueError(f"{args.output} was written with other settings ({', '.join(f'{k}: {old[k]!r} -> {settings[k]!r}' for k in diff)}); "
                             "write to a new --output, or delete the old one to start over")
        if record.get("items", {}).get("sha256") not in (None, items_sha):
            raise ValueError(f"{args.output} was written for another items file (sha256 differs from {items_path}); "
                             "write to a new --output")
        if record.get("video_root") not in (None, video_root):
            raise ValueError(f"{args.output} was written with the videos of --video_root {record['video_root']}, not "
                             f"{video_root}; write to a new --output")
        files = model_files(args)
        old_files = recorded_model_files(record)
        changed = model_file_differences(old_files, files)
        if changed:
            raise ValueError(f"{args.output} was written with other model files: "
                             + ", ".join(f"--{MODEL_FILE_FLAGS[k]} {getattr(args, MODEL_FILE_FLAGS[k])} changed since "
                                         f"(content sha256 {old_files[k][:12]}... -> {files[k][:12]}...)" for k in changed)
                             + "; write to a new --output, or delete the old one to start over")
        record["model_files"] = files
        return record
    meta_path = items_path.with_name(items_path.name + ".meta.json")
    meta = read_json(meta_path) if meta_path.is_file() else None
    return {
        "settings": settings,
        "items": {"path": str(items_path.resolve()), "sha256": items_sha, "converter": meta},
        "video_root": video_root,
        "model_files": model_files(args),
        "engine": None,  # filled when the model is loaded
        "runs": [],
    }


def engine_record(engine, args) -> dict:
    cfg = engine.cfg
    layout = cfg.cache_record()  # the policy's effective values (sink 0 where none is kept, window None if unbounded)
    return {
        "fps": args.fps, "max_frames": args.max_frames, "tokens_per_frame": engine.tpf, "frame_size": engine.frame_size,
        "frame_resize": engine.frame_resize,
        "prompt_order": cfg.prompt_order, "system_prompt": engine.system_prompt,
        "cache": {k: layout[k] for k in ("policy", "window", "sink_tokens")},
        "cache_layout": layout,
        "decision": {"score_heads": list(cfg.decision.score_heads), "threshold": cfg.decision.threshold,
                     "cumulative_threshold": cfg.decision.cumulative_threshold,
                     "min_interval_s": cfg.decision.min_interval_s, "uncertainty_gate": cfg.decision.uncertainty_gate,
                     "max_wait_frames": cfg.decision.max_wait_frames, "relevance_gate": cfg.decision.relevance_gate,
                     "relevance_gate_frames": cfg.decision.relevance_gate_frames},
        "generate": cfg.generate, "remove_assistant_turns": cfg.remove_assistant_turns,
        "max_new_tokens": cfg.max_new_tokens, "repetition_penalty": cfg.repetition_penalty,
        # changes when responses may come (a SETTING_KEYS entry the engine block lacked)
        "respond_before_query": cfg.respond_before_query,
        "model": {**getattr(args, "model_record", {}), "dtype": str(engine.dtype).replace("torch.", ""),
                  "device": str(engine.device)},
        "settings_source": getattr(args, "settings_source", None),
        "degrade": args.degrade, "features": args.features,
    }
