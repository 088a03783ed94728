#!/usr/bin/env python
"""Train Aha! with the HF Trainer: LoRA on the language model (projector and heads fully trained),
or full training (``--lora_r 0`` [``--train_vision true``]) for small random-init models.

One entry for every set-up (instructions/training.md)::

    python train.py --preset aha-tiny --tokenizer TOK --dataset_config CFG --data_root DATA --output_dir OUT
    torchrun --nproc_per_node 4 train.py ... [--deepspeed configs/deepspeed/zero2.json] [--bf16 true]

Arguments: the HF ``TrainingArguments`` (all of them: ``--bf16``, ``--gradient_checkpointing``,
``--deepspeed``, ``--resume_from_checkpoint``, ``--report_to wandb|tensorboard|none``, ...) plus
``ModelArguments`` and ``DataArguments`` below (``--activation_checkpointing`` is transformers 5's
name for gradient checkpointing; ``--gradient_checkpointing`` still works). No environment variable is required: the device,
world size and rank come from the Trainer's own arguments (torchrun sets them when used), and
a CUDA device is never assumed.

What is logged: besides ``loss`` / ``grad_norm`` / ``learning_rate``, the unweighted loss components
``lm_loss``, ``informative_loss``, ``relevance_loss``, ``tv_loss`` and ``uncertainty_loss``, each the
mean over the micro-batches (on every rank) since the last log that had that label type; they go
through ``Trainer.log`` to whatever ``--report_to`` names (the model itself never logs).

Saving: checkpoints (``--save_steps``) and the final model are Aha! checkpoints
(``models.checkpoint.save_checkpoint``: peft adapter + ``aha_model.json`` [+ the base when it was
randomly initialised], or with ``--lora_r 0`` a full ``model.safetensors`` + ``aha_model.json``)
loadable with ``models.checkpoint.load_checkpoint``; the Trainer adds its
optimizer / scheduler / RNG state to checkpoints for ``--resume_from_checkpoint``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path


def _hide_tools_folder_named_datasets() -> None:
    """Keep transformers from mistaking the repository's ``datasets/`` folder for HF ``datasets``.

    With the repository root on ``sys.path`` that folder is a PEP 420 namespace package, so
    ``importlib.util.find_spec("datasets")`` succeeds, transformers' (cached)
    ``is_datasets_available()`` says True, and ``Trainer.get_train_dataloader`` fails on
    ``datasets.Dataset``. A real HF ``datasets`` install (a regular package) is left alone.
    """
    try:
        spec = importlib.util.find_spec("datasets")
    except ValueError:  # sys.modules entry without a spec
        return
    if spec is not None and spec.origin is None and spec.submodule_search_locations is not None:
        sys.modules["datasets"] = None  # find_spec now returns None, import raises ImportError
        if "transformers" in sys.modules:
            from transformers.utils import import_utils

            import_utils.is_datasets_available.cache_clear()


_hide_tools_folder_named_datasets()

import torch  # noqa: E402
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed  # noqa: E402

from data.collator import StreamCollator  # noqa: E402
from data.feature_cache import FeatureCache  # noqa: E402
from data.stream import ClipMemory  # noqa: E402
from data.mixture import build_mixture  # noqa: E402
from models.build import PRESET_DIR, build_model, load_preset, train_window_tokens  # noqa: E402
from models.config import merge_loss_weights  # noqa: E402
from models.cache import window_holds_frame  # noqa: E402
from models.chat import ChatTemplate, load_tokenizer, system_prompt_of  # noqa: E402
from models.checkpoint import (BASE, META, checkpoint_meta, inference_settings, is_released_adapter, load_checkpoint,  # noqa: E402
                               load_saved_base, save_checkpoint)
from models.resume import (RUN_RECORD, STAGING_PREFIX, check_same_run, checkpoint_problems, fsync_dir,  # noqa: E402,F401 (re-exported)
                           load_full_weights, reposition_schedule, resolve_resume, run_record, training_checkpoints,
                           write_manifest)
from models.inference_settings import InferenceSettings  # noqa: E402
from models.lora import LoraSettings, apply_lora  # noqa: E402
from utils.io import DuplicateKeyError, atomic_write_json, loads_strict, read_json  # noqa: E402
from utils.log import setup_logging  # noqa: E402

log = logging.getLogger("train")

LOSS_PARTS = ("lm_loss", "informative_loss", "relevance_loss", "tv_loss", "uncertainty_loss")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass
class ModelArguments:
    preset: str = field(default="aha-7b", metadata={"help": "model preset name (configs/model) or a preset .json path"})
    weights: str | None = field(default=None, metadata={"help": "local LLaVA-OneVision weights folder (llava-hf or lmms-lab layout); none: random init"})
    tokenizer: str | None = field(default=None, metadata={"help": "tokenizer folder (default: --weights)"})
    model_dtype: str = field(default="auto", metadata={"help": "auto (bf16 with --bf16, fp16 with --fp16, else fp32), bf16, fp16 or fp32"})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa, eager or flash_attention_2"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank; 0 = full training: no LoRA, every parameter of the language model "
                                                      "(embeddings and norms included), projector and heads is trained"})
    lora_alpha: int = field(default=32)
    lora_dropout: float = field(default=0.05)
    train_lm_head: bool = field(default=True, metadata={"help": "train a full copy of lm_head (reference: yes, ~1 GB adapter for 7B)"})
    train_projector: bool = field(default=True, metadata={"help": "train the multi-modal projector"})
    lora_pretrained: str | None = field(default=None, metadata={"help": "continue training from this Aha! adapter checkpoint (its LoRA settings are used)"})
    model_seed: int | None = field(default=None, metadata={"help": "seed of the random initialisation (default: --seed)"})
    loss_protocol: str = field(default="correct", metadata={"help": "correct (default) or reference: the reference's loss "
                                                             "defects, to reproduce its training (instructions/reference_differences.md)"})
    loss_weights: str | None = field(default=None, metadata={"help": "JSON of loss weights to change, e.g. '{\"lm\": 1.0}' "
                                                                     "(the rest keep the Aha! defaults, models/config.py)"})
    train_vision: bool = field(default=False, metadata={"help": "also train the SigLIP vision tower (needs --lora_r 0; a random-init "
                                                                 "tower is otherwise a fixed random feature extractor)"})


@dataclass
class DataArguments:
    dataset_config: str = field(default="configs/datasets/aha_config.json", metadata={"help": "mixture config (configs/datasets/*.json)"})
    data_root: str | None = field(default=None, metadata={"help": "root of the mixture's relative paths (default: $AHA_DATA_ROOT or .)"})
    feature_cache: str | None = field(default=None, metadata={"help": "root of pre-extracted features (scripts/extract_features.py)"})
    feature_kind: str = field(default="vision", metadata={"help": "vision (projector trains) or frame_embeds (projector frozen)"})
    clip_memory_mb: float = field(default=0, metadata={"help": "keep decoded clips in memory (MiB per data process, "
                                                                "0 = off): short clips reused for many epochs decode once"})
    max_item_tries: int = field(default=5, metadata={"help": "items tried before giving up when videos are broken"})
    system_prompt: str | None = field(default=None, metadata={"help": "system turn of every item (default: the model "
                                                                       "config's system_prompt, else the reference's); "
                                                                       "saved in the checkpoint for inference"})
    inference_settings: str | None = field(default=None, metadata={
        "help": "JSON of the inference settings the checkpoint carries (fps, cache_policy, window, sink_tokens, prompt_order); "
                "default: the mixture's fps when all its datasets share one, and a dynamic_sink cache of the preset's "
                "train_window_frames when it names them, else the project defaults (models/inference_settings.py)"})


@dataclass
class AhaTrainingArguments(TrainingArguments):
    # batches carry frame tensors and label kinds the generic column filter would drop
    remove_unused_columns: bool = field(default=False, metadata={"help": "keep False: every batch key is a model input"})
    # every trainable parameter takes part in every step (absent label types add a zero that
    # touches their head; parameters the forward never reads are frozen: set_full_training), so
    # DDP needs no search for unused parameters
    ddp_find_unused_parameters: bool | None = field(default=False)
    reset_optimizer: bool = field(default=False, metadata={
        "help": "with --resume_from_checkpoint: resume the weights, step and data order but start a fresh optimizer "
                "(its state is missing or unwanted); the learning rate follows the schedule from the resumed step"})


def parse_loss_weights(text: str) -> dict:
    """--loss_weights: a JSON object (names and values are checked by models.config.merge_loss_weights)."""
    return json_object_flag(text, "--loss_weights")


def json_object_flag(text: str | None, flag: str) -> dict:
    """A flag whose value is a JSON object ({} when not given)."""
    if not text:
        return {}
    try:
        given = loads_strict(text)
    except (json.JSONDecodeError, DuplicateKeyError) as e:
        raise ValueError(f"{flag} must be a JSON object, got {text!r}: {e}") from None
    if not isinstance(given, dict):
        raise ValueError(f"{flag} must be a JSON object, got {text!r}")
    return given


class AhaTrainer(Trainer):
    """Trainer that logs each loss component and saves Aha! checkpoints."""

    def __init__(self, *args, aha_weights: str | None = None, aha_inference: InferenceSettings | None = None,
                 aha_run: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.aha_weights = aha_weights
        self.aha_inference = aha_inference
        self.aha_run = aha_run  # models.resume.run_record, written into every checkpoint
        # the model returns a per-batch mean: let the Trainer divide by the accumulation steps
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False
        self._parts: torch.Tensor | None = None  # [2, parts]: sums and counts since the last log

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = {k: v for k, v in inputs.items() if k != "sample_ids"}
        outputs = model(**inputs)
        if model.training:
            self._record_parts(outputs)
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def _record_parts(self, outputs) -> None:
        if self._parts is None:
            self._parts = torch.zeros(2, len(LOSS_PARTS), dtype=torch.float64, device=self.args.device)
        for j, name in enumerate(LOSS_PARTS):
            value = getattr(outputs, name, None)
            if value is not None:
                self._parts[0, j] += value.detach().to(self._parts)
                self._parts[1, j] += 1

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        # training logs (the ones with "loss") happen on every rank at the same step, so the
        # component sums can be reduced here
        if "loss" in logs:
            parts = self._parts if self._parts is not None else torch.zeros(2, len(LOSS_PARTS), dtype=torch.float64, device=self.args.device)
            if self.args.world_size > 1:
                parts = self.accelerator.reduce(parts.clone(), reduction="sum")
            for j, name in enumerate(LOSS_PARTS):
                if parts[1, j] > 0:
                    logs[name] = float(parts[0, j] / parts[1, j])
            if self._parts is not None:
                self._parts.zero_()
        super().log(logs, start_time)

    # ---------------------------------------------------------------- checkpoints: atomic, verified

    def _get_output_dir(self, trial) -> str:
        run_dir = super()._get_output_dir(trial)
        # while a checkpoint is saved, the Trainer writes it inside a staging folder (see _save_checkpoint)
        return os.path.join(run_dir, self._staging) if getattr(self, "_staging", None) else run_dir

    def _save_checkpoint(self, model, trial) -> None:
        """Write ``checkpoint-N`` atomically: every process writes into ``.partial-checkpoint-N/``,
        the main process then adds the manifest (the list of files, written last) and renames the
        folder into place. A run killed while saving leaves no ``checkpoint-N`` behind."""
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
        from transformers.trainer_utils import rotate_checkpoints

        run_dir = super()._get_output_dir(trial)
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging = os.path.join(run_dir, STAGING_PREFIX + name)
        if self.args.should_save and os.path.exists(staging):
            shutil.rmtree(staging)  # left by a run killed while saving
        self.accelerator.wait_for_everyone()
        self._staging = STAGING_PREFIX + name
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = None
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            written, final = os.path.join(staging, name), os.path.join(run_dir, name)
            if self.aha_run is not None:
                atomic_write_json(Path(written) / RUN_RECORD, self.aha_run)
            write_manifest(written, self.state.global_step)
            if os.path.exists(final):  # saved again at the same step
                shutil.rmtree(final)
            os.replace(written, final)
            os.rmdir(staging)
            fsync_dir(run_dir)
            rotate_checkpoints(output_dir=run_dir, save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
        self.accelerator.wait_for_everyone()

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        model = model if model is not None else self.model
        if hasattr(model, "peft_config") or self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        # full training: the Trainer's own loader matches file keys to module names as they are and
        # silently leaves the language model at its initial weights when transformers renamed them on
        # save; the project's planned load maps every tensor or refuses
        load_full_weights(unwrap(model), resume_from_checkpoint)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None:
            return super()._load_optimizer_and_scheduler(checkpoint)
        from torch.optim.lr_scheduler import LambdaLR

        fresh = list(self.lr_scheduler.base_lrs) if isinstance(self.lr_scheduler, LambdaLR) else None
        if self.args.reset_optimizer:
            log.warning("--reset_optimizer: a fresh optimizer; the learning rate resumes on the schedule at the checkpoint's step")
            step = int(json.loads(Path(checkpoint, "trainer_state.json").read_text())["global_step"])
        else:
            super()._load_optimizer_and_scheduler(checkpoint)
            step = getattr(self.lr_scheduler, "last_epoch", None)
        if fresh is not None and step is not None:
            reposition_schedule(self.lr_scheduler, fresh, int(step))
        elif fresh is None:
            log.warning("the learning-rate scheduler is not a LambdaLR: its saved state is used as it is")

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir or self.args.output_dir
        if zero_stage(self) == 3:
            # parameters are partitioned: the Trainer gathered state_dict for us (adapter only)
            super()._save(output_dir, state_dict=state_dict)
            if self.args.should_save:
                write_adapter_meta(self.model, output_dir, self.aha_weights, self.aha_inference)
            return
        if not self.args.should_save:
            return
        save_checkpoint(self.model, output_dir, weights=self.aha_weights, inference=self.aha_inference)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        Path(output_dir, "training_args.json").write_text(self.args.to_json_string())


def zero_stage(trainer: Trainer) -> int:
    if not trainer.is_deepspeed_enabled:
        return 0
    return int(trainer.accelerator.state.deepspeed_plugin.deepspeed_config.get("zero_optimization", {}).get("stage", 0))


def write_adapter_meta(model, out_dir: str | os.PathLike, weights: str | None, inference: InferenceSettings | None) -> None:
    """aha_model.json beside an adapter written by the Trainer itself (ZeRO-3 checkpoints)."""
    atomic_write_json(Path(out_dir) / META, checkpoint_meta(unwrap(model), weights, "adapter", inference=inference))


def training_inference_settings(text: str | None, preset: str, dataset_config: str,
                                continued_from: str | None = None) -> InferenceSettings:
    """What the checkpoint will carry: the clips the model was trained on (or the settings of the
    checkpoint training continues from), with --inference_settings on top."""
    carried = inference_settings(continued_from) if continued_from else None
    if carried is not None:
        derived = carried.to_dict()
        tpf = derived.pop("tokens_per_frame")
        return _holds_a_frame(InferenceSettings.from_dict({**derived, **json_object_flag(text, "--inference_settings")}), tpf)
    fps_all = {float(d["fps"]) for d in read_json(dataset_config)["datasets"]}
    derived: dict = {}
    if len(fps_all) == 1:
        derived["fps"] = fps_all.pop()
    else:
        log.info("the mixture mixes frame rates %s: the checkpoint carries the default inference fps", sorted(fps_all))
    window = train_window_tokens(preset) if Path(preset).suffix == ".json" or (PRESET_DIR / f"{preset}.json").is_file() else None
    if window is not None:
        derived.update(cache_policy="dynamic_sink", window=window)
    settings = InferenceSettings.from_dict({**derived, **json_object_flag(text, "--inference_settings")})
    return _holds_a_frame(settings, load_preset(preset).tokens_per_frame)


def _holds_a_frame(settings: InferenceSettings, tokens_per_frame: int | None) -> InferenceSettings:
    """The window the checkpoint will carry must hold one frame: else every online run of it would stop
    at its first frame (found here, before training, not when the checkpoint is first streamed)."""
    if not window_holds_frame(settings.cache_policy, settings.window, tokens_per_frame):
        raise ValueError(f"--inference_settings: window {settings.window} cannot hold one frame ({tokens_per_frame} "
                         "tokens) and its turn header")
    return settings


def save_final(trainer: AhaTrainer, out_dir: str) -> None:
    """The final adapter checkpoint, written by the main process; ZeRO-3 gathers on every rank."""
    model = trainer.model
    gather = contextlib.nullcontext()
    if zero_stage(trainer) == 3:
        import deepspeed

        trainable = [p for p in model.parameters() if p.requires_grad]
        gather = deepspeed.zero.GatheredParameters(trainable, modifier_rank=None)
    with gather:
        if trainer.is_world_process_zero():
            save_checkpoint(model, out_dir, weights=trainer.aha_weights, inference=trainer.aha_inference)
            if trainer.processing_class is not None:
                trainer.processing_class.save_pretrained(out_dir)
            log.info("saved the final adapter checkpoint to %s", out_dir)
    trainer.accelerator.wait_for_everyone()


def resolve_dtype(name: str, args: TrainingArguments) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else torch.float32
    if name not in DTYPES:
        raise ValueError(f"--model_dtype must be auto, bf16, fp16 or fp32, got {name!r}")
    return DTYPES[name]


def unwrap(model):
    """The AhaForStreaming inside a PeftModel (or the model itself after full training)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


# Parameters of LLaVA-OneVision that the Aha! forward never reads: the image-newline token (frames
# are pooled to a grid without it) and SigLIP's post-layernorm (the projector reads the last hidden
# state before it). Trainable, they get no gradient, and DDP without find_unused_parameters stops.
UNUSED_PARAMETERS = ("model.image_newline", "model.vision_tower.post_layernorm.")


def set_full_training(model, model_args: ModelArguments) -> None:
    """Full training (``--lora_r 0``): every parameter trains except the vision tower (unless
    ``--train_vision``), an untied ``lm_head`` with ``--train_lm_head false``, and the parameters
    the forward never reads (``UNUSED_PARAMETERS``)."""
    model.requires_grad_(True)
    for name, p in model.named_parameters():
        if name.startswith(UNUSED_PARAMETERS):
            p.requires_grad_(False)
    if not model_args.train_vision:
        model.model.vision_tower.requires_grad_(False)
    tied = model.lm_head.weight is model.get_input_embeddings().weight
    if not model_args.train_lm_head and not tied:
        model.lm_head.requires_grad_(False)


def build_trainable_model(model_args: ModelArguments, args: AhaTrainingArguments, frozen_projector: bool,
                          resume: str | None = None):
    dtype = resolve_dtype(model_args.model_dtype, args)
    if model_args.lora_r < 0:
        raise ValueError(f"--lora_r must be >= 0 (0 = full training), got {model_args.lora_r}")
    full = model_args.lora_r == 0
    if model_args.train_vision and not full:
        raise ValueError("--train_vision true needs full training (--lora_r 0): LoRA adapters cover the language model only")
    if model_args.lora_pretrained:
        log.info("continuing from checkpoint %s (its LoRA settings and trained modules are used)", model_args.lora_pretrained)
        # a released adapter carries no config of its own: it is built on --preset (a project
        # checkpoint brings its config, and --preset defaults to aha-7b, so it is not passed there)
        released = is_released_adapter(model_args.lora_pretrained)
        model = load_checkpoint(model_args.lora_pretrained, weights=model_args.weights, is_trainable=True,
                                dtype=dtype, attn_implementation=model_args.attn_implementation,
                                preset=load_preset(model_args.preset, loss_protocol=model_args.loss_protocol) if released else None)
        if not hasattr(model, "peft_config"):  # a full checkpoint continues as full training
            set_full_training(model, model_args)
        cfg0 = model.get_base_model().config if hasattr(model, "peft_config") else model.config
        # a project checkpoint brings its own config: the flag still decides the losses (as for a released adapter)
        cfg0.loss_protocol = model_args.loss_protocol
        if model_args.loss_weights:
            cfg0.loss_weights = merge_loss_weights(cfg0.loss_weights, parse_loss_weights(model_args.loss_weights))
    else:
        seed = args.seed if model_args.model_seed is None else model_args.model_seed
        preset = load_preset(model_args.preset, loss_protocol=model_args.loss_protocol,
                             **({"loss_weights": parse_loss_weights(model_args.loss_weights)} if model_args.loss_weights else {}))
        base = build_model(preset, weights=model_args.weights, dtype=dtype,
                           attn_implementation=model_args.attn_implementation, seed=seed)
        if not full and model_args.weights is None and resume is not None and Path(resume, BASE).is_file():
            # a LoRA run on a randomly initialised base resumes on the base it saved, not on one drawn
            # again from this run's seed (the Trainer restores the adapter only)
            load_saved_base(base, Path(resume, BASE))
            log.info("resuming on the base saved in %s", Path(resume, BASE))
        if full:
            model = base
            set_full_training(model, model_args)
        else:
            settings = LoraSettings(r=model_args.lora_r, alpha=model_args.lora_alpha, dropout=model_args.lora_dropout,
                                    train_projector=model_args.train_projector and not frozen_projector,
                                    train_lm_head=model_args.train_lm_head)
            # LoRA matrices draw from the global RNG: reseed so their values do not depend on how the
            # base was loaded (random init, weights folder, ZeRO-3 partitioned loading)
            set_seed(seed)
            model = apply_lora(base, settings)
    if frozen_projector or not model_args.train_projector:
        for name, p in model.named_parameters():
            if "multi_modal_projector" in name:
                p.requires_grad_(False)
    if not model_args.train_lm_head and hasattr(model, "peft_config"):
        # a continued adapter's lm_head copy, frozen when asked (as the projector above)
        for name, p in model.named_parameters():
            if ".lm_head." in f".{name}" and "lora_" not in name:
                p.requires_grad_(False)
    if not args.deepspeed and dtype != torch.float32:
        # the optimizer must hold fp32 weights (AMP autocasts the compute); DeepSpeed keeps its own fp32 master copy
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    if n_train == 0:
        raise ValueError("no parameter would be trained: " + (
            f"every parameter of --lora_pretrained {model_args.lora_pretrained} was loaded frozen"
            if model_args.lora_pretrained else "every parameter is frozen by the flags given")
            + " (the optimizer would step nothing and the loss would have no gradient)")
    log.info("%s: trainable parameters: %d of %d (%.2f%%)", "full training" if not hasattr(model, "peft_config") else "LoRA",
             n_train, n_all, 100.0 * n_train / max(n_all, 1))
    return model


def check_inputs(model_args: ModelArguments, data_args: DataArguments, args: AhaTrainingArguments) -> str | None:
    """Refuse bad arguments and data before a model is built (one line, exit 2 from the command
    line); returns the verified checkpoint to resume from (None: a fresh run)."""
    from data.mixture import load_mixture_config
    from utils.cli import check_number, check_output_dir

    if data_args.feature_kind not in ("vision", "frame_embeds"):
        raise ValueError(f"--feature_kind must be vision or frame_embeds, got {data_args.feature_kind!r}")
    # flags the Trainer accepts that would do nothing here (said, not silently ignored)
    if data_args.feature_kind != "vision" and not data_args.feature_cache:
        raise ValueError("--feature_kind frame_embeds reads --feature_cache; without one, frames are decoded and "
                         "encoded (and the projector trains): drop --feature_kind or give --feature_cache")
    if args.label_smoothing_factor:
        raise ValueError("--label_smoothing_factor is not applied: the Aha! loss (models/losses.py) replaces the "
                         "Trainer's; leave it at 0")
    if args.reset_optimizer and args.deepspeed:
        raise ValueError("--reset_optimizer cannot be honoured with --deepspeed: DeepSpeed restores its optimizer "
                         "state with the weights; resume without DeepSpeed, or drop the flag")
    check_number(model_args.lora_r, "--lora_r", minimum=0, integer=True)
    check_number(model_args.lora_alpha, "--lora_alpha", above=0)
    check_number(model_args.lora_dropout, "--lora_dropout", minimum=0, maximum=0.999)
    check_number(data_args.clip_memory_mb, "--clip_memory_mb", minimum=0)
    check_number(data_args.max_item_tries, "--max_item_tries", minimum=1, integer=True)
    check_number(args.learning_rate, "--learning_rate", minimum=0)
    # the Trainer's own numbers: argparse's float() takes "nan" / "inf", and the Trainer checks few of them
    # (0 epochs train nothing; a NaN weight decay or gradient clip turns the weights NaN; a batch size
    # or accumulation of 0 fails only once the model is built and the data read)
    for flag, kw in (("per_device_train_batch_size", {"minimum": 1, "integer": True}),
                     ("gradient_accumulation_steps", {"minimum": 1, "integer": True}),
                     ("weight_decay", {"minimum": 0}), ("max_grad_norm", {"minimum": 0}),
                     ("adam_beta1", {"minimum": 0, "maximum": 0.999999}), ("adam_beta2", {"minimum": 0, "maximum": 0.999999}),
                     ("adam_epsilon", {"minimum": 0}), ("num_train_epochs", {"minimum": 0}), ("seed", {"minimum": 0})):
        check_number(getattr(args, flag), f"--{flag}", **kw)
    if (args.max_steps is None or args.max_steps <= 0) and not args.num_train_epochs > 0:
        raise ValueError(f"--num_train_epochs {args.num_train_epochs:g} trains nothing (give a positive number, or --max_steps)")
    if model_args.train_vision and model_args.lora_r != 0:
        raise ValueError("--train_vision true needs full training (--lora_r 0): LoRA adapters cover the language model only")
    if data_args.feature_cache and model_args.train_vision:
        raise ValueError("--feature_cache holds frozen-tower features: it cannot be used with --train_vision true")
    tok_path = model_args.tokenizer or model_args.weights
    if tok_path is None:
        raise ValueError("give --tokenizer (or --weights holding a tokenizer)")
    for flag, value in (("--tokenizer", tok_path), ("--weights", model_args.weights),
                        ("--lora_pretrained", model_args.lora_pretrained), ("--feature_cache", data_args.feature_cache)):
        if value is not None and not Path(value).is_dir():
            raise FileNotFoundError(f"{flag} {value}: no such folder")
    if model_args.lora_pretrained is None:
        load_preset(model_args.preset)  # a typo is an error
    else:  # what the checkpoint is decides how training continues: flags that say otherwise are refused
        from models.checkpoint import is_released_adapter, read_meta

        ckpt = model_args.lora_pretrained
        kind = "adapter" if is_released_adapter(ckpt) else read_meta(ckpt).get("kind")
        if kind == "full" and model_args.lora_r != 0:
            raise ValueError(f"--lora_pretrained {ckpt} is a full checkpoint: it continues as full training; "
                             "say so with --lora_r 0")
        if kind != "full" and model_args.train_vision:
            raise ValueError(f"--lora_pretrained {ckpt} is a LoRA adapter: it continues as LoRA, whose adapters cover the "
                             "language model only, so --train_vision true cannot be honoured")
        if kind != "full" and model_args.lora_r == 0:
            raise ValueError(f"--lora_pretrained {ckpt} is a LoRA adapter: it continues as LoRA, so --lora_r 0 (full "
                             "training) cannot be honoured; drop --lora_r 0, or merge the adapter into a full "
                             "checkpoint first (models.checkpoint.merge_and_save)")
    parse_loss_weights(model_args.loss_weights)
    json_object_flag(data_args.inference_settings, "--inference_settings")
    check_output_dir(args.output_dir, "--output_dir")
    # the annotations: parsed now (bad lines are errors with their place, bad videos recorded skips)
    cfg = load_mixture_config(data_args.dataset_config)
    data_root = data_args.data_root or os.environ.get("AHA_DATA_ROOT", ".")
    if not Path(data_root).is_dir():
        raise FileNotFoundError(f"--data_root {data_root}: no such folder")
    build_mixture(cfg, data_root, None, max_tries=data_args.max_item_tries)
    if args.reset_optimizer and not args.resume_from_checkpoint:
        raise ValueError("--reset_optimizer only applies with --resume_from_checkpoint")
    resume = resolve_resume(args.resume_from_checkpoint, args.output_dir, need_optimizer=not args.reset_optimizer)
    if resume is None and training_checkpoints(args.output_dir):
        # a fresh run here would mix its checkpoints with the earlier run's, and a later
        # --resume_from_checkpoint last would pick whichever has the highest step
        raise ValueError(f"--output_dir {args.output_dir} holds checkpoints of an earlier run "
                         f"({', '.join(p.name for p in training_checkpoints(args.output_dir)[:3])}): resume it with "
                         "--resume_from_checkpoint last, or write to a new --output_dir")
    return resume


def parse_args(argv: list[str] | None = None):
    from utils.cli import one_line_errors

    parser = one_line_errors(HfArgumentParser((ModelArguments, DataArguments, AhaTrainingArguments)))
    if argv is None:
        argv = sys.argv[1:]
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv: list[str] | None = None, callbacks: list | None = None) -> AhaTrainer:
    """Parse ``argv`` (default: the command line), train, save; returns the trainer.

    ``callbacks``: extra ``transformers.TrainerCallback`` objects (programmatic use).
    """
    model_args, data_args, args = parse_args(argv)
    setup_logging()
    # data-loader workers fork after the parent has tokenised: keep the Rust tokenizer single-threaded
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # every argument, the checkpoint to resume and the annotations, before any model is built
    resume = check_inputs(model_args, data_args, args)
    if args.activation_checkpointing and not args.activation_checkpointing_kwargs:
        # non-reentrant checkpointing needs no input that requires grad (frozen embeddings, cached frame embeds)
        args.activation_checkpointing_kwargs = args.gradient_checkpointing_kwargs = {"use_reentrant": False}
    if "wandb" in (args.report_to or []):
        os.environ.setdefault("WANDB_PROJECT", "aha")
        os.environ.setdefault("WANDB_DIR", args.output_dir)
        Path(os.environ["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)
    # initialises torch.distributed (under torchrun) before any model is built: ZeRO-3 partitions
    # weights while they load and needs the process group by then
    log.info("device %s, process %d of %d", args.device, args.process_index, args.world_size)
    if args.deepspeed and torch.distributed.is_available() and torch.distributed.is_initialized():
        # with --use_cpu accelerate starts plain torch.distributed; DeepSpeed's own comm layer must
        # adopt it now, or ZeRO-3's partitioned loading sees a world of one process
        import deepspeed

        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend())
    set_seed(args.seed)

    tok_path = model_args.tokenizer or model_args.weights
    if tok_path is None:
        raise ValueError("give --tokenizer (or --weights holding a tokenizer)")
    tokenizer = load_tokenizer(tok_path)
    frozen_projector = bool(data_args.feature_cache) and data_args.feature_kind == "frame_embeds"
    inference = training_inference_settings(data_args.inference_settings, model_args.preset, data_args.dataset_config,
                                            continued_from=model_args.lora_pretrained)
    model = build_trainable_model(model_args, args, frozen_projector, resume)
    base = unwrap(model)
    cfg = base.config
    if tokenizer.convert_tokens_to_ids(cfg.frame_placeholder) != cfg.image_token_index:
        raise ValueError(f"tokenizer id of {cfg.frame_placeholder!r} is {tokenizer.convert_tokens_to_ids(cfg.frame_placeholder)}, "
                         f"the model expects {cfg.image_token_index}")
    template = ChatTemplate(tokenizer, cfg.tokens_per_frame, cfg.frame_placeholder)
    # the checkpoint records the prompt it was trained with, so inference uses the same one
    cfg.system_prompt = data_args.system_prompt if data_args.system_prompt is not None else system_prompt_of(cfg)

    cache = None
    if data_args.feature_cache:
        cache = FeatureCache.for_model(data_args.feature_cache, model, data_args.feature_kind)
        if not cache.exists():
            raise FileNotFoundError(f"no {data_args.feature_kind} features for this model under {data_args.feature_cache} "
                                    f"(expected {cache.directory}); run scripts/extract_features.py with the same "
                                    "--preset/--weights/--model_dtype (and --lora_pretrained for frame_embeds)")
        log.info("reading %s features from %s", data_args.feature_kind, cache.directory)
    data_root = data_args.data_root or os.environ.get("AHA_DATA_ROOT", ".")
    data_seed = args.data_seed if args.data_seed is not None else args.seed
    dataset = build_mixture(data_args.dataset_config, data_root, template, frame_size=cfg.frame_size, frame_resize=cfg.frame_resize,
                            seed=data_seed,
                            feature_cache=cache, max_tries=data_args.max_item_tries, system_prompt=cfg.system_prompt,
                            clip_memory=ClipMemory(data_args.clip_memory_mb) if data_args.clip_memory_mb > 0 else None,
                            max_tokens=getattr(cfg.text_config, "max_position_embeddings", None))
    if cache is not None:
        # a feature folder made from another video root holds other videos under the same keys
        checked = cache.check_sources_by_size(dataset.frame_needs(), cfg.frame_size)
        log.info("feature sources: %d checked against their videos (by size), %d videos absent (not checked), "
                 "%d without features", checked["checked"], checked["video_absent"], checked["features_absent"])
    collator = StreamCollator(pad_token_id=tokenizer.pad_token_id, frame_size=cfg.frame_size)
    run = run_record(args.seed, args.data_seed, args.per_device_train_batch_size, args.gradient_accumulation_steps,
                     args.world_size, dataset.summary())
    if resume is not None:
        check_same_run(resume, run)

    trainer = AhaTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                         processing_class=tokenizer, aha_weights=model_args.weights, callbacks=callbacks,
                         aha_inference=inference, aha_run=run)
    if zero_stage(trainer) == 3 and model_args.weights is None:
        raise ValueError("ZeRO-3 partitions the base model, which then cannot be saved: train a random-init base "
                         "without ZeRO-3, or give --weights")
    trainer.train(resume_from_checkpoint=resume)
    save_final(trainer, args.output_dir)
    return trainer


def cli(argv: list[str] | None = None) -> int:
    """The command line under the error contract (instructions/errors.md): bad arguments or data are
    one line and exit 2 before a model is built; a failure names the output folder. A bare
    ``--debug`` (no value: TrainingArguments' own ``--debug OPTION`` is left alone) shows tracebacks."""
    from utils.cli import debug_wanted, run_cli

    argv = list(sys.argv[1:] if argv is None else argv)
    bare = [i for i, a in enumerate(argv) if a == "--debug" and (i + 1 == len(argv) or argv[i + 1].startswith("--"))]
    debug = bool(bare) or debug_wanted([])
    argv = [a for i, a in enumerate(argv) if i not in bare]
    out = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--output_dir"), None)
    return run_cli("train.py", lambda: [main(argv)] and 0, debug=debug,
                   outputs=lambda: out if out and Path(out).is_dir() and any(Path(out).iterdir()) else None)


if __name__ == "__main__":
    sys.exit(cli())
