"""Resuming training from a Trainer checkpoint: written atomically, verified before use, weights
loaded tensor by tensor, the learning-rate schedule placed (instructions/training.md, section 5).

A ``checkpoint-N`` folder is written by every process into ``.partial-checkpoint-N/`` and renamed into
place by the main process after it wrote ``aha_checkpoint.json`` (every file and its size), so a run
killed while saving never leaves a ``checkpoint-N`` behind; ``checkpoint_problems`` says why a folder
cannot be resumed from, ``resolve_resume`` picks the one to use.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch

from models.checkpoint import META
from utils.io import atomic_write_json, read_json

log = logging.getLogger("train")

MANIFEST = "aha_checkpoint.json"  # written last, after every other file: its presence means "complete"
OPTIMIZER_FILES = ("optimizer.pt", "optimizer.bin")
SCHEDULER = "scheduler.pt"
TRAINER_STATE = "trainer_state.json"


def write_manifest(ckpt_dir: str | Path, step: int) -> None:
    """Record every file of a finished training checkpoint (relative path -> size), atomically."""
    ckpt = Path(ckpt_dir)
    files = {str(p.relative_to(ckpt)): p.stat().st_size for p in sorted(ckpt.rglob("*")) if p.is_file() and p.name != MANIFEST}
    atomic_write_json(ckpt / MANIFEST, {"step": int(step), "files": files})


def checkpoint_problems(ckpt_dir: str | Path, need_optimizer: bool = True) -> list[str]:
    """Why a Trainer checkpoint cannot be resumed from ([] when it can): files its manifest lists
    missing or of another size (a checkpoint without a manifest, from an older version, is checked
    by its content only), no trainer state, no readable weights, unreadable JSON, a truncated
    safetensors file, no optimizer / scheduler state (unless ``need_optimizer`` is False)."""
    from models.weights import _read_header

    ckpt = Path(ckpt_dir)
    if not ckpt.is_dir():
        return [f"{ckpt} is not a folder"]
    problems = []
    manifest = ckpt / MANIFEST
    if manifest.is_file():
        try:
            listed = json.loads(manifest.read_text())["files"]
        except (ValueError, KeyError, TypeError) as e:
            return [f"{MANIFEST} is unreadable ({type(e).__name__})"]
        for rel, size in listed.items():
            p = ckpt / rel
            if not need_optimizer and rel in (*OPTIMIZER_FILES, SCHEDULER):
                continue
            if not p.is_file():
                problems.append(f"{rel} is missing")
            elif p.stat().st_size != size:
                problems.append(f"{rel} has {p.stat().st_size} bytes, {size} were written")
    for name in (TRAINER_STATE, META):
        p = ckpt / name
        if not p.is_file():
            problems.append(f"{name} is missing")
            continue
        try:
            json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError):
            problems.append(f"{name} is not valid JSON (truncated?)")
    deepspeed = any(p.is_dir() and p.name.startswith("global_step") for p in ckpt.iterdir())
    weights = [p for p in ckpt.glob("*.safetensors")]
    if not weights and not deepspeed:
        problems.append("no weights (model.safetensors / adapter_model.safetensors)")
    for p in weights:
        try:
            _read_header(p)
        except (ValueError, OSError) as e:
            problems.append(str(e).replace(str(p), p.name))
    if need_optimizer and not deepspeed:
        if not any((ckpt / n).is_file() for n in OPTIMIZER_FILES):
            problems.append("no optimizer state (optimizer.pt)")
        if not (ckpt / SCHEDULER).is_file():
            problems.append(f"no learning-rate scheduler state ({SCHEDULER})")
    return problems


def training_checkpoints(output_dir: str | Path) -> list[Path]:
    """``checkpoint-N`` folders of a training output folder, newest (largest N) first."""
    import re

    d = Path(output_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name))]
    return [p for _, p in sorted(found, reverse=True)]


STAGING_PREFIX = ".partial-"
RUN_RECORD = "aha_run.json"  # what decides which items each step trains on (check_same_run)


def run_record(seed: int, data_seed: int | None, per_device_batch: int, accumulation: int, world_size: int,
               mixture: dict[str, int]) -> dict:
    """What a resumed run must share with the checkpoint's run for "resume" to continue it: the data
    order and item randomness (the seeds), how batches are cut (batch size, accumulation, processes:
    the Trainer skips ``global_step x accumulation`` batches of the *current* size) and the mixture
    (its members and their item counts, which the shuffled order depends on)."""
    return {"seed": int(seed), "data_seed": int(seed if data_seed is None else data_seed),
            "per_device_train_batch_size": int(per_device_batch), "gradient_accumulation_steps": int(accumulation),
            "world_size": int(world_size), "mixture": {str(k): int(v) for k, v in mixture.items()}}


def check_same_run(ckpt: str | Path, record: dict) -> None:
    """Refuse to resume ``ckpt`` under another data order or batching than it was trained with: the
    Trainer would skip the checkpoint's number of batches of a *different* sequence, training some
    items twice and others never, with exit 0 (a checkpoint without the record, from an older
    version, is not checked). The schedule flags (--max_steps, --learning_rate, ...) may change."""
    path = Path(ckpt) / RUN_RECORD
    if not path.is_file():
        log.warning("%s has no %s (an older checkpoint): the data order and batching are not checked", ckpt, RUN_RECORD)
        return
    saved = read_json(path)
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: expected a JSON object (the run record {RUN_RECORD}), got {type(saved).__name__}")
    diff = [f"{k}: checkpoint {saved.get(k)!r}, now {v!r}" for k, v in record.items() if saved.get(k) != v]
    if diff:
        raise ValueError(f"--resume_from_checkpoint {ckpt} was trained with another data order or batching ("
                         + "; ".join(diff) + "): resuming would skip its steps' batches of a different sequence; use "
                         "the checkpoint's --seed / --data_seed, batch size, accumulation, process count and mixture, "
                         "or start a new run (--lora_pretrained continues its weights with a fresh optimizer)")


def fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def reposition_schedule(scheduler, base_lrs: list[float], step: int) -> None:
    """The learning rate after a resume is the current run's schedule (its --learning_rate,
    --max_steps, warm-up and type) at the resumed step: exactly what an uninterrupted run with these
    flags would use from there on. (Loaded as saved, the first step would use the old schedule's
    rate: 0 when --max_steps was raised at the end of a finished schedule.)"""
    scheduler.base_lrs = list(base_lrs)
    scheduler.last_epoch = step
    lrs = [base * fn(step) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs


def load_full_weights(model, ckpt: str | os.PathLike) -> None:
    """Every tensor of a full checkpoint (``model.safetensors``, any of the key namings the
    project reads) into ``model``, each one accounted for (``models.weights.plan_load``)."""
    from safetensors.torch import load_file

    from models.weights import tied_keys, plan_load, read_index

    index = read_index(ckpt)
    plan = plan_load(model, index, "llava-hf", str(ckpt))
    plan.raise_if_bad()
    if plan.missing_heads:
        raise ValueError(f"{ckpt}: a full training checkpoint without the heads {plan.missing_heads}")
    state = model.state_dict()
    by_file: dict[str, list[str]] = {}
    for k in plan.mapping:
        by_file.setdefault(index[k].file, []).append(k)
    tied, tied_in_file = tied_keys(model), {}
    with torch.no_grad():
        for f, keys in by_file.items():
            tensors = load_file(str(Path(ckpt) / f))
            for k in keys:
                state[plan.mapping[k]].copy_(tensors[k])
                if plan.mapping[k] in tied:
                    tied_in_file[k] = tensors[k]
    # a tied lm_head shares the embeddings' storage: a file holding it with other values would be
    # overwritten by (or overwrite) the embeddings, whichever came last
    for k, v in tied_in_file.items():
        if not torch.equal(state[plan.mapping[k]], v.to(state[plan.mapping[k]].dtype)):
            raise ValueError(f"{ckpt}: {k!r} differs from the tensor it is tied to in this model "
                             "(tie_word_embeddings): the checkpoint is not of this model")
    log.info("resumed %d tensors of %s (%s)", len(plan.mapping), ckpt, plan.names)


def resolve_resume(value: str | None, output_dir: str, need_optimizer: bool = True) -> str | None:
    """The checkpoint to resume from, verified (``models.checkpoint.checkpoint_problems``).

    ``last`` / ``true``: the newest complete ``checkpoint-N`` of ``output_dir``; newer incomplete
    ones (a run killed while saving with an older version, a damaged disk) are skipped with a
    warning. A named folder must be complete. A missing optimizer state is an error unless
    ``need_optimizer`` is False (``--reset_optimizer``)."""
    if value is None or value.lower() in ("", "false", "none"):
        return None
    if value.lower() in ("true", "last"):
        found = training_checkpoints(output_dir)
        if not found:
            raise FileNotFoundError(f"--resume_from_checkpoint {value}: no checkpoint-* folder in {output_dir}")
        for ckpt in found:
            problems = checkpoint_problems(ckpt, need_optimizer)
            if not problems:
                return str(ckpt)
            log.warning("skipping the incomplete checkpoint %s: %s", ckpt, "; ".join(problems))
        raise ValueError(f"--resume_from_checkpoint {value}: no complete checkpoint in {output_dir} "
                         f"(the newest, {found[0].name}: {'; '.join(checkpoint_problems(found[0], need_optimizer))})"
                         + ("" if not need_optimizer else "; --reset_optimizer resumes one without optimizer state"))
    if not os.path.isdir(value):
        raise FileNotFoundError(f"--resume_from_checkpoint: {value} is not a folder")
    problems = checkpoint_problems(value, need_optimizer)
    if problems:
        hint = " (--reset_optimizer resumes it with a fresh optimizer)" if any("optimizer" in p or "scheduler" in p
                                                                              for p in problems) else ""
        raise ValueError(f"--resume_from_checkpoint {value} cannot be resumed: {'; '.join(problems)}{hint}")
    return value
