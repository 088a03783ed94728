"""train.py flags honoured when training continues from a checkpoint (``--lora_pretrained``).

``--loss_protocol`` was applied to a fresh model and to a released adapter (built on the preset), but
a project checkpoint brought its own config and the flag was silently dropped: ``--loss_protocol
reference`` trained with the corrected losses (and a checkpoint trained with the reference protocol
kept it under the default ``correct``).
"""
from __future__ import annotations

import pytest
import torch

import train
from models.build import build_model
from models.checkpoint import save_checkpoint
from models.lora import LoraSettings, apply_lora


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("ckpts")
    save_checkpoint(apply_lora(build_model("aha-tiny", seed=0), LoraSettings(train_lm_head=False)), root / "adapter")
    save_checkpoint(build_model("aha-tiny", seed=0), root / "full")
    return root


def _model(ckpt, tmp_path, *extra):
    model_args, _, args = train.parse_args(["--lora_pretrained", str(ckpt), "--output_dir", str(tmp_path / "o"),
                                            "--use_cpu", "true", "--report_to", "none", *extra])
    return train.unwrap(train.build_trainable_model(model_args, args, frozen_projector=False))


@pytest.mark.parametrize("kind, extra", [("adapter", ()), ("full", ("--lora_r", "0"))])
def test_loss_protocol_applies_to_a_continued_checkpoint(checkpoints, tmp_path, kind, extra):
    assert _model(checkpoints / kind, tmp_path, *extra, "--loss_protocol", "reference").config.loss_protocol == "reference"
    assert _model(checkpoints / kind, tmp_path, *extra).config.loss_protocol == "correct"
