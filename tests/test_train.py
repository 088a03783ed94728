"""train.py end to end on CPU with the aha-tiny preset: logging, saving, resume, adapters, features,
gradient checkpointing, full training (``--lora_r 0``, aha-tiny-synth), DDP (torchrun + gloo) and
DeepSpeed ZeRO-2.

The fixture mixture has 4 items of 2-3 frames; runs are a handful of steps. In-process runs call
``train.main``; the distributed runs start ``torchrun`` with two CPU processes.
"""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

import train
from data.feature_cache import FeatureCache, extract_features
from data.mixture import build_mixture
from models.build import build_model
from models.chat import ChatTemplate
from models.checkpoint import load_checkpoint
from tests.test_datasets import write_mixture_fixture

REPO = Path(__file__).resolve().parents[1]
SMALL = {"shot2story_dvc": (1, 3), "shot2story_magqa": (1, 3), "coin_dvc": (0.5, 2), "hihd": (1, 3)}
PARTS = ("lm_loss", "informative_loss", "relevance_loss", "tv_loss", "uncertainty_loss")
DEFAULT_TV = 0.05
DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("train")
    write_mixture_fixture(r, SMALL)
    return r


@pytest.fixture(autouse=True, scope="module")
def no_distributed_env():
    """In-process runs see no torchrun variables at all (train.py must not need them)."""
    with pytest.MonkeyPatch.context() as mp:
        for k in DIST_ENV:
            mp.delenv(k, raising=False)
        yield


def _args(root, out, shared_data, *extra, steps=4):
    return ["--preset", "aha-tiny", "--tokenizer", str(shared_data / "tokenizers" / "qwen2"),
            "--dataset_config", str(root / "mixture.json"), "--data_root", str(root), "--output_dir", str(out),
            "--max_steps", str(steps), "--per_device_train_batch_size", "2", "--logging_steps", "1",
            "--learning_rate", "1e-3", "--seed", "0", "--train_lm_head", "false", "--report_to", "none",
            "--use_cpu", "true", "--save_strategy", "no", "--dataloader_num_workers", "0", *extra]


def _losses(history) -> dict[int, dict]:
    return {h["step"]: h for h in history if "loss" in h}


class StopAt(TrainerCallback):
    """Interrupt training after ``step`` optimizer steps (a checkpoint is saved there)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True


class GrabTrainable(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from peft import get_peft_model_state_dict

        self.at_start = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


@pytest.fixture(scope="module")
def baseline(root, tmp_path_factory, shared_data):
    """An uninterrupted 4-step run (shared by the resume, adapter, feature and checkpointing tests)."""
    out = tmp_path_factory.mktemp("baseline")
    trainer = train.main(_args(root, out, shared_data))
    return trainer, out


def test_single_process_run_logs_components_and_saves_a_loadable_adapter(baseline):
    trainer, out = baseline
    assert not any(k in os.environ for k in ("RANK", "LOCAL_RANK"))
    logs = _losses(trainer.state.log_history)
    assert sorted(logs) == [1, 2, 3, 4]
    seen = set()
    for h in logs.values():
        seen |= {p for p in PARTS if p in h}
        assert all(torch.isfinite(torch.tensor(h[p])) for p in PARTS if p in h)
    assert seen == set(PARTS)  # every component reached the Trainer's log
    assert {"adapter_model.safetensors", "adapter_config.json", "aha_model.json"} <= {p.name for p in out.iterdir()}
    reloaded = load_checkpoint(out)
    trained = trainer.model
    trained.eval()
    ids = torch.tensor([[1, 2, 3] + [151646] * 49 + [4]])
    px = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        a, b = trained(input_ids=ids, pixel_values=px), reloaded(input_ids=ids, pixel_values=px)
    torch.testing.assert_close(a.relevance, b.relevance, rtol=0, atol=0)
    torch.testing.assert_close(a.informative_logits, b.informative_logits, rtol=0, atol=0)


def test_resume_continues_exactly(baseline, root, tmp_path, shared_data):
    full, _ = baseline
    out = tmp_path / "interrupted"
    first = train.main(_args(root, out, shared_data, "--save_strategy", "steps", "--save_steps", "2"),
                       callbacks=[StopAt(2)])
    assert first.state.global_step == 2 and (out / "checkpoint-2" / "aha_model.json").is_file()
    resumed = train.main(_args(root, out, shared_data, "--save_strategy", "no", "--resume_from_checkpoint", "last"))
    want, got = _losses(full.state.log_history), _losses(resumed.state.log_history)
    for step in (3, 4):
        assert got[step]["loss"] == pytest.approx(want[step]["loss"], abs=1e-4), step
    a = load_file(str(out / "adapter_model.safetensors"))
    b = load_file(str(Path(full.args.output_dir) / "adapter_model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_a_lora_run_on_a_random_base_resumes_on_the_base_it_saved(root, tmp_path, shared_data):
    """The Trainer restores the adapter only; the random-init base is rebuilt from the seed. Resumed
    with another --model_seed it must still be the saved base, not a new draw (another --seed, which
    also orders the data, is refused: tests/test_train_resume_same_run.py)."""
    out = tmp_path / "run"
    train.main(_args(root, out, shared_data, "--save_strategy", "steps", "--save_steps", "2", steps=2))
    saved = load_file(str(out / "checkpoint-2" / "base_model.safetensors"))
    resumed = train.main(_args(root, out, shared_data, "--model_seed", "1", "--resume_from_checkpoint", "last", steps=3))
    base = resumed.model.get_base_model().state_dict()
    frozen = [k for k in saved if k in base]  # the others are wrapped by peft (LoRA layers, trained copies)
    assert len(frozen) > 40 and any("embed_tokens" in k for k in frozen) and any("vision" in k for k in frozen)
    assert all(torch.equal(base[k].to(saved[k].dtype), saved[k]) for k in frozen)


def test_lora_pretrained_continues_from_the_saved_adapter(baseline, root, tmp_path, shared_data):
    full, out = baseline
    grab = GrabTrainable()
    cont = train.main(_args(root, tmp_path / "cont", shared_data, "--lora_pretrained", str(out), "--report_to",
                            "tensorboard", steps=1), callbacks=[grab])
    saved = load_file(str(out / "adapter_model.safetensors"))
    assert set(saved) == set(grab.at_start)
    for k, v in saved.items():
        torch.testing.assert_close(grab.at_start[k], v, rtol=0, atol=0, msg=k)
    assert any(p.requires_grad for p in cont.model.parameters())
    after = load_file(str(tmp_path / "cont" / "adapter_model.safetensors"))
    assert any(not torch.equal(after[k], saved[k]) for k in saved)  # it kept training
    assert list((tmp_path / "cont").rglob("events.out.tfevents*"))  # tensorboard wrote its log


def test_cached_features_and_gradient_checkpointing_reproduce_the_baseline(baseline, root, tmp_path, shared_data,
                                                                            qwen2_tokenizer):
    full, _ = baseline
    want = _losses(full.state.log_history)
    # the model train.py builds for --seed 0 has the same vision tower as this one
    model = build_model("aha-tiny", seed=0)
    template = ChatTemplate(qwen2_tokenizer, 49)
    cache = FeatureCache.for_model(tmp_path / "feats", model, "vision")
    extract_features(model, build_mixture(root / "mixture.json", root, template).frame_needs(), cache, 384)
    cached = train.main(_args(root, tmp_path / "cached", shared_data, "--feature_cache", str(tmp_path / "feats"),
                              steps=2))
    gc = train.main(_args(root, tmp_path / "gc", shared_data, "--activation_checkpointing", "true", steps=2))
    assert gc.model.get_base_model().is_activation_checkpointing
    for run in (cached, gc):
        got = _losses(run.state.log_history)
        for step in (1, 2):
            for key in ("loss", *PARTS):
                if key in want[step]:
                    assert got[step][key] == pytest.approx(want[step][key], rel=1e-4, abs=1e-6), (step, key)
    with pytest.raises(FileNotFoundError, match="extract_features"):
        train.main(_args(root, tmp_path / "nocache", shared_data, "--feature_cache", str(tmp_path / "feats"),
                         "--feature_kind", "frame_embeds", steps=1))


def test_features_extracted_from_other_videos_are_refused(root, tmp_path, shared_data, qwen2_tokenizer):
    # a feature folder made from another video root (same relative names, other files)
    from data.feature_cache import FeatureSourceMismatch

    model = build_model("aha-tiny", seed=0)
    cache = FeatureCache.for_model(tmp_path / "feats", model, "vision")
    needs = build_mixture(root / "mixture.json", root, ChatTemplate(qwen2_tokenizer, 49)).frame_needs()
    extract_features(model, needs, cache, 384)
    first = needs[0]
    source = dict(cache.source(first.key, first.fps, 384, first.degradation), bytes=12345)
    cache.save(first.key, first.fps, 384, cache.load(first.key, first.fps, 0, first.end_frame, 384, first.degradation),
               first.degradation, source=source)
    with pytest.raises(FeatureSourceMismatch, match=r"1 of \d+ feature files .*12345 bytes.*not from"):
        train.main(_args(root, tmp_path / "run", shared_data, "--feature_cache", str(tmp_path / "feats"), steps=1))
    assert not (tmp_path / "run" / "checkpoint-1").exists()


TINY_TOKENIZER = REPO / "configs" / "tokenizers" / "aha-tiny-synth"


def _full_args(root, out, *extra, steps=2):
    """The synthetic preset and its shipped tokenizer: no shared data needed."""
    return ["--preset", "aha-tiny-synth", "--tokenizer", str(TINY_TOKENIZER), "--lora_r", "0",
            "--dataset_config", str(root / "mixture.json"), "--data_root", str(root), "--output_dir", str(out),
            "--max_steps", str(steps), "--per_device_train_batch_size", "2", "--logging_steps", "1",
            "--learning_rate", "1e-2", "--seed", "0", "--report_to", "none", "--use_cpu", "true",
            "--save_strategy", "no", "--dataloader_num_workers", "0", *extra]


def test_full_training_trains_every_parameter_and_saves_a_full_checkpoint(root, tmp_path):
    from models.inference import load_for_inference

    start = build_model("aha-tiny-synth", seed=0)  # what train.py builds for --seed 0
    trainer = train.main(_full_args(root, tmp_path / "full", "--train_vision", "true", "--inference_settings", '{"sink_tokens": 8}'))
    model = trainer.model
    assert not hasattr(model, "peft_config")
    # every parameter the forward reads trains; the ones it never reads are frozen (DDP needs that)
    assert all(p.requires_grad != n.startswith(train.UNUSED_PARAMETERS) for n, p in model.named_parameters())
    assert not model.model.image_newline.requires_grad
    # every module moved: language model (embeddings included), projector, heads and the vision tower
    before = dict(start.named_parameters())
    for prefix in ("model.language_model.embed_tokens", "model.language_model.layers.0.self_attn.q_proj",
                   "model.language_model.norm", "model.multi_modal_projector.linear_1", "informative_head",
                   "relevance_head", "uncertainty_head", "model.vision_tower.embeddings.patch_embedding"):
        name = next(n for n in before if n.startswith(prefix))
        assert not torch.equal(before[name], dict(model.named_parameters())[name]), name
    out = tmp_path / "full"
    meta = json.loads((out / "aha_model.json").read_text())
    assert meta["kind"] == "full" and (out / "model.safetensors").is_file()
    # the checkpoint carries how to stream it: the preset's 12-frame training window (1 token per
    # frame) in a dynamic_sink cache; the mixture mixes frame rates, so the default fps
    assert meta["inference"] == {"fps": 1.0, "cache_policy": "dynamic_sink", "window": 12, "sink_tokens": 8,
                                 "prompt_order": "training", "system_prompt": None, "tokens_per_frame": 1}
    assert not (out / "adapter_model.safetensors").exists()
    reloaded, tok = load_for_inference(checkpoint=str(out))  # the tokenizer saved beside it
    assert tok.convert_tokens_to_ids("<image>") == reloaded.config.image_token_index == 3
    assert reloaded.config.system_prompt == "" == build_model("aha-tiny-synth").config.system_prompt  # the preset's, kept
    # the reload is exact: every tensor bit for bit (lm_head stays tied to the embeddings) ...
    want, got = model.state_dict(), load_checkpoint(out).state_dict()
    assert set(want) == set(got)
    for k in want:
        assert torch.equal(want[k], got[k]), k
    assert reloaded.lm_head.weight is reloaded.get_input_embeddings().weight
    # ... and so are the outputs, up to float summation order (trained tensors may differ in memory layout)
    model.eval()
    ids = torch.tensor([[1, 5, 6] + [3] * reloaded.config.tokens_per_frame + [7]])
    px = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        a, b = model(input_ids=ids, pixel_values=px), reloaded(input_ids=ids, pixel_values=px)
    for key in ("relevance", "informative_logits", "log_variance", "logits"):
        torch.testing.assert_close(getattr(a, key), getattr(b, key), rtol=0, atol=1e-6, msg=lambda m, key=key: f"{key}: {m}")


def test_full_training_keeps_the_vision_tower_frozen_unless_asked(root, tmp_path):
    start = build_model("aha-tiny-synth", seed=0)
    trainer = train.main(_full_args(root, tmp_path / "frozen_tower", steps=1))
    after = dict(trainer.model.named_parameters())
    for n, p in start.named_parameters():
        if n.startswith("model.vision_tower."):
            assert not after[n].requires_grad and torch.equal(p, after[n]), n
    assert after["relevance_head.weight"].requires_grad
    with pytest.raises(ValueError, match="lora_r 0"):
        train.main(_full_args(root, tmp_path / "bad", "--lora_r", "16", "--train_vision", "true", steps=1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(root, out, shared_data, *extra, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in DIST_ENV}
    env.update({"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **(env_extra or {})})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "train.py", *_args(root, out, shared_data, "--per_device_train_batch_size", "1", "--ddp_backend", "gloo",
                              "--save_strategy", "steps", "--save_steps", "2", *extra, steps=2)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    return _losses(state["log_history"]), proc


@pytest.mark.slow
def test_two_process_ddp_with_wandb_offline(root, tmp_path, shared_data):
    out = tmp_path / "ddp"
    logs, _ = _torchrun(root, out, shared_data, "--report_to", "wandb", env_extra={"WANDB_MODE": "offline"})
    # 4 items, 2 processes x 1 item: one epoch in 2 steps (a single process would be at epoch 0.5)
    assert logs[2]["epoch"] == pytest.approx(1.0)
    assert {p for h in logs.values() for p in PARTS if p in h} == set(PARTS)
    assert load_checkpoint(out) is not None
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1  # only the main process reports
    blob = b"".join(p.read_bytes() for p in runs[0].rglob("*.wandb"))
    assert b"lm_loss" in blob and b"relevance_loss" in blob


@pytest.mark.slow
def test_two_process_deepspeed_zero2_and_zero3_match_ddp(root, tmp_path, shared_data):
    # ZeRO-3 partitions the base while it loads: it needs a weights folder (llava-hf layout)
    weights = tmp_path / "weights"
    build_model("aha-tiny", seed=0).save_pretrained(str(weights))
    ddp, _ = _torchrun(root, tmp_path / "ddp", shared_data, "--weights", str(weights))
    want = load_file(str(tmp_path / "ddp" / "adapter_model.safetensors"))
    for stage in ("zero2", "zero3"):
        out = tmp_path / stage
        ds, proc = _torchrun(root, out, shared_data, "--weights", str(weights),
                             "--deepspeed", str(REPO / f"configs/deepspeed/{stage}.json"))
        assert (out / "checkpoint-2" / "global_step2").is_dir()  # DeepSpeed's own optimizer state
        for step in (1, 2):
            for key in ("loss", *PARTS):
                if key in ddp[step]:
                    assert ds[step][key] == pytest.approx(ddp[step][key], rel=1e-4, abs=1e-6), (stage, step, key)
        got = load_file(str(out / "adapter_model.safetensors"))
        assert set(got) == set(want)
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-6, msg=f"{stage} {k}")
        assert load_checkpoint(out) is not None


def test_reference_loss_protocol_is_a_training_flag(root, tmp_path, shared_data):
    trainer = train.main(_args(root, tmp_path / "ref", shared_data, "--loss_protocol", "reference", steps=1))
    base = trainer.model.get_base_model()
    assert base.config.loss_protocol == "reference"
    logs = _losses(trainer.state.log_history)
    # the reference's dummy targets give every batch an LM term, even relevance-only batches
    assert "lm_loss" in logs[1] and math.isfinite(logs[1]["loss"])


def test_loss_weights_and_clip_memory_flags(root, tmp_path, shared_data):
    """--loss_weights changes the named weights only (here: the LM term alone, weight 1, so the
    logged loss is the LM loss); --clip_memory_mb trains on memoised clips; bad weights fail."""
    only_lm = '{"lm": 1.0, "informative": 0, "relevance": 0, "uncertainty": 0}'
    tr = train.main(_args(root, tmp_path / "w", shared_data, "--loss_weights", only_lm, "--clip_memory_mb", "64",
                          steps=2))
    w = tr.model.get_base_model().config.loss_weights
    assert (w["lm"], w["informative"], w["relevance"], w["tv"]) == (1.0, 0.0, 0.0, DEFAULT_TV)
    logs = _losses(tr.state.log_history)
    assert sorted(logs) == [1, 2]
    for h in logs.values():
        assert h["loss"] == pytest.approx(h["lm_loss"], rel=1e-4) and h["informative_loss"] > 0
    memo = tr.train_dataset.datasets[0].clip_memory
    assert memo is not None and memo.misses > 0 and all(m.clip_memory is memo for m in tr.train_dataset.datasets)
    for bad, msg in (('{"bogus": 1}', "unknown"), ('{"lm": -1}', "non-negative"), ("lm=1", "JSON"), ("[1]", "JSON")):
        with pytest.raises(ValueError, match=msg):
            train.main(_args(root, tmp_path / "bad", shared_data, "--loss_weights", bad, steps=1))


# ------------------------------------------------------------------------ resume and checkpoints


def _full_run(root, out, *extra, steps=4, callbacks=None):
    return train.main(_full_args(root, out, *extra, steps=steps), callbacks=callbacks)


def _lrs(trainer) -> dict[int, float]:
    return {h["step"]: h["learning_rate"] for h in trainer.state.log_history if "loss" in h}


@pytest.fixture(scope="module")
def full_baseline(root, tmp_path_factory):
    """Uninterrupted 4-step full-parameter run (aha-tiny-synth) and one stopped at step 2 with a checkpoint."""
    whole = _full_run(root, tmp_path_factory.mktemp("full_whole"))
    out = tmp_path_factory.mktemp("full_cut")
    first = _full_run(root, out, "--save_strategy", "steps", "--save_steps", "2", callbacks=[StopAt(2)])
    assert first.state.global_step == 2
    return whole, out


def test_full_training_resumes_exactly(full_baseline, root):
    whole, out = full_baseline
    resumed = _full_run(root, out, "--resume_from_checkpoint", "last")
    want, got = _losses(whole.state.log_history), _losses(resumed.state.log_history)
    for step in (3, 4):
        assert got[step]["loss"] == pytest.approx(want[step]["loss"], abs=1e-4), step
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert set(a) == set(b)
    for k in a:  # the language model too (it used to restart from its random initialisation)
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)


def test_checkpoints_are_renamed_into_place_with_a_manifest(full_baseline):
    _, out = full_baseline
    ckpt = out / "checkpoint-2"
    manifest = json.loads((ckpt / "aha_checkpoint.json").read_text())
    assert manifest["step"] == 2 and {"optimizer.pt", "scheduler.pt", "trainer_state.json", "model.safetensors"} <= set(manifest["files"])
    assert not [p for p in out.iterdir() if p.name.startswith(".partial-")]  # staging folder gone
    assert train.checkpoint_problems(ckpt) == []


def test_lr_schedule_after_raising_max_steps_is_the_new_one(full_baseline, root, tmp_path):
    """Documented rule (instructions/training.md): after a resume the learning rate is the current
    run's schedule at the resumed step, i.e. that of an uninterrupted run with the new --max_steps."""
    _, out = full_baseline
    import shutil

    shutil.copytree(out / "checkpoint-2", tmp_path / "checkpoint-2")
    longer = _full_run(root, tmp_path, "--resume_from_checkpoint", "last", steps=8)
    reference = _full_run(root, tmp_path / "uninterrupted8", steps=8)
    got, want = _lrs(longer), _lrs(reference)
    assert sorted(got) == list(range(1, 9))
    for step in range(3, 9):
        assert got[step] == pytest.approx(want[step], rel=1e-9), step
    assert got[3] == pytest.approx(1e-2 * (8 - 2) / 8)  # linear decay to 0 at step 8 (not the 4-step rate)
    # resuming a finished schedule with more steps does not train at learning rate 0
    finished = tmp_path / "finished"
    _full_run(root, finished, "--save_strategy", "steps", "--save_steps", "4")
    more = _full_run(root, finished, "--resume_from_checkpoint", str(finished / "checkpoint-4"), steps=6)
    assert _lrs(more)[5] == pytest.approx(1e-2 * (6 - 4) / 6)


def _copy_ckpt(src, dst_root, step):
    import shutil

    dst = dst_root / f"checkpoint-{step}"
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage", ["optimizer", "trainer_state", "truncated_weights", "manifest_size"])
def test_an_incomplete_newest_checkpoint_is_skipped_with_a_warning(full_baseline, tmp_path, caplog, damage):
    _, out = full_baseline
    good = _copy_ckpt(out / "checkpoint-2", tmp_path, 2)
    bad = _copy_ckpt(out / "checkpoint-2", tmp_path, 3)
    if damage == "optimizer":
        (bad / "optimizer.pt").unlink()
    elif damage == "trainer_state":
        (bad / "trainer_state.json").unlink()
    elif damage == "truncated_weights":
        w = bad / "model.safetensors"
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    else:
        (bad / "rng_state.pth").write_bytes(b"x")
    with caplog.at_level("WARNING", logger="train"):
        assert train.resolve_resume("last", str(tmp_path)) == str(good)
    assert "skipping the incomplete checkpoint" in caplog.text and "checkpoint-3" in caplog.text
    with pytest.raises(ValueError, match="cannot be resumed"):  # named explicitly: an error
        train.resolve_resume(str(bad), str(tmp_path))


def test_missing_optimizer_state_is_an_error_unless_reset_optimizer(full_baseline, root, tmp_path):
    _, out = full_baseline
    ckpt = _copy_ckpt(out / "checkpoint-2", tmp_path, 2)
    (ckpt / "optimizer.pt").unlink()
    with pytest.raises(ValueError, match="reset_optimizer"):
        _full_run(root, tmp_path, "--resume_from_checkpoint", "last")
    resumed = _full_run(root, tmp_path, "--resume_from_checkpoint", "last", "--reset_optimizer", "true")
    lrs = _lrs(resumed)
    assert lrs[3] == pytest.approx(1e-2 * (4 - 2) / 4) and resumed.state.global_step == 4  # on the schedule at step 2
    with pytest.raises(ValueError, match="only applies with --resume_from_checkpoint"):
        _full_run(root, tmp_path / "fresh", "--reset_optimizer", "true")


def test_every_trainable_parameter_gets_a_gradient_in_full_training(root, tmp_path):
    """DDP without find_unused_parameters stops on a trainable parameter without gradient (it did
    on image_newline): every one must take part in the loss."""
    class NoGrad(TrainerCallback):
        missing: list = []

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            NoGrad.missing += [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]

    _full_run(root, tmp_path / "grads", "--train_vision", "true", steps=1, callbacks=[NoGrad()])
    assert NoGrad.missing == []


def test_bad_training_inputs_are_one_line_before_any_model(root, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(train, "build_trainable_model", lambda *a, **k: pytest.fail("a model was built"))
    earlier = tmp_path / "earlier"
    (earlier / "checkpoint-4").mkdir(parents=True)
    full_ckpt, adapter_ckpt = tmp_path / "full_ckpt", tmp_path / "adapter_ckpt"
    for d, kind in ((full_ckpt, "full"), (adapter_ckpt, "adapter")):  # only their kind is read up front
        d.mkdir()
        (d / "aha_model.json").write_text(json.dumps({"kind": kind}))
    cases = [
        (["--lora_r", "-1"], "--lora_r"),
        (["--learning_rate", "nan"], "--learning_rate"),
        (["--dataset_config", str(tmp_path / "none.json")], "none.json"),
        (["--data_root", str(tmp_path / "nowhere")], "nowhere"),
        (["--resume_from_checkpoint", "last"], "no checkpoint"),
        (["--reset_optimizer", "true"], "reset_optimizer"),
        (["--tokenizer", str(tmp_path / "tok")], "tok"),
        (["--bogus_flag", "1"], "bogus_flag"),
        # accepted by the Trainer's parser, but they would do nothing here
        (["--label_smoothing_factor", "0.1"], "--label_smoothing_factor is not applied"),
        (["--feature_kind", "frame_embeds"], "--feature_kind frame_embeds reads --feature_cache"),
        # another run's checkpoints: a later --resume_from_checkpoint last would take the highest step
        (["--output_dir", str(earlier)], "holds checkpoints of an earlier run (checkpoint-4)"),
        # continuing a checkpoint: its kind decides how training goes on, flags saying otherwise are refused
        (["--lora_pretrained", str(full_ckpt), "--lora_r", "16"], "is a full checkpoint: it continues as full training"),
        (["--lora_pretrained", str(adapter_ckpt), "--train_vision", "true"], "--train_vision true cannot be honoured"),
    ]
    for extra, message in cases:
        args = _full_args(root, tmp_path / "o", steps=1)
        for i in range(0, len(extra), 2):
            if extra[i] in args:
                args[args.index(extra[i]) + 1] = extra[i + 1]
            else:
                args += extra[i:i + 2]
        assert train.cli(args) == 2, extra
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("train.py: error:") and message in err, err


@pytest.mark.slow
def test_full_training_under_ddp_saves_and_resumes(root, tmp_path):
    """--lora_r 0 with two processes (gloo): trains, saves an atomic checkpoint, resumes from it."""
    def run(*extra):
        env = {k: v for k, v in os.environ.items() if k not in DIST_ENV}
        env.update({"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
               "train.py", *_full_args(root, tmp_path / "ddp", "--per_device_train_batch_size", "1", "--ddp_backend", "gloo",
                                       "--train_vision", "true", *extra, steps=3)]
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
        return proc

    run("--save_strategy", "steps", "--save_steps", "2")
    assert train.checkpoint_problems(tmp_path / "ddp" / "checkpoint-2") == []
    state = json.loads((tmp_path / "ddp" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    import shutil

    shutil.rmtree(tmp_path / "ddp" / "checkpoint-3")
    proc = run("--resume_from_checkpoint", "last", "--save_strategy", "no")
    assert "resumed" in proc.stderr and "checkpoint-2" in proc.stderr
