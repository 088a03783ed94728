"""Training items against the limits of the run (the language model's context) and annotation
fields of the wrong kind.

Real Qwen2 tokenizer, 49 tokens per frame, the shared mixture fixture (4 s videos).
"""
from __future__ import annotations

import copy
import json
import logging

import pytest

from data.dvc import DenseVideoCaptioningDataset
from data.grounding import GroundingDataset
from data.magqa import MAGQADataset
from data.mixture import build_mixture, load_mixture_config
from models.chat import ChatTemplate
from tests.test_datasets import COIN_ANNO, DVC_ANNO, GROUNDING_ANNO, MAGQA_ANNO, write_mixture_fixture


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits")
    write_mixture_fixture(root)
    return root


@pytest.fixture(scope="module")
def template(qwen2_tokenizer):
    return ChatTemplate(qwen2_tokenizer, tokens_per_frame=49)


def _dvc_only(root, max_frames=None):
    cfg = load_mixture_config(root / "mixture.json")
    cfg["datasets"] = [dict(cfg["datasets"][0], max_frames=max_frames)]  # shot2story_dvc, the whole video
    return cfg


def test_items_longer_than_the_models_context_are_skipped_and_counted(fixture_root, template, caplog):
    """With ``max_frames: null`` a long video gives more tokens than the model has positions (49 a
    frame: 32768 positions are 5.5 min at 2 fps). Rotary positions raise nothing there, so such an
    item trained silently past the context; it is skipped and counted when the data set is built."""
    whole = build_mixture(_dvc_only(fixture_root), fixture_root, template)[0]
    n = int(whole["input_ids"].shape[0])  # 7 frames (343 placeholders) and the text
    assert n > 7 * 49
    # exactly the context: kept, the same item
    fits = build_mixture(_dvc_only(fixture_root), fixture_root, template, max_tokens=n)
    assert len(fits) == 1 and fits[0]["input_ids"].tolist() == whole["input_ids"].tolist()
    # one position short (the text, not the frames, crosses it) / far short: no usable item, said so
    for limit in (n - 1, 7 * 49 - 1):
        with caplog.at_level(logging.WARNING, logger="data.stream"):
            caplog.clear()
            with pytest.raises(ValueError, match="no usable item"):
                build_mixture(_dvc_only(fixture_root), fixture_root, template, max_tokens=limit)
        assert f"1 longer than the model's {limit} positions)" in caplog.text
    # max_frames is the way to fit: the first 4 frames of the same video fit the short context
    short = build_mixture(_dvc_only(fixture_root, max_frames=4), fixture_root, template, max_tokens=n - 1)
    assert len(short) == 1 and int(short[0]["input_ids"].shape[0]) <= n - 1


class _Built(Exception):
    pass


def test_train_passes_the_models_context_to_the_mixture(fixture_root, tmp_path, shared_data, monkeypatch):
    """train.py builds its training mixture with the language model's max_position_embeddings."""
    import train

    real, seen = train.build_mixture, {}

    def spy(config, data_root, template, **kw):
        if template is None:  # check_inputs parses the annotations before any model
            return real(config, data_root, template, **kw)
        seen.update(kw)
        raise _Built

    monkeypatch.setattr(train, "build_mixture", spy)
    with pytest.raises(_Built):
        train.main(["--preset", "aha-tiny", "--tokenizer", str(shared_data / "tokenizers" / "qwen2"),
                    "--dataset_config", str(fixture_root / "mixture.json"), "--data_root", str(fixture_root),
                    "--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--use_cpu", "true", "--report_to", "none"])
    assert seen["max_tokens"] == 32768  # aha-tiny's Qwen2 context


@pytest.mark.parametrize("kind", ["dvc", "coin", "magqa", "grounding"])
@pytest.mark.parametrize("value", [None, 5])
def test_a_text_that_is_not_a_string_is_an_error_naming_its_place(fixture_root, template, tmp_path, kind, value):
    """A caption, step label, answer or query that is JSON null (or a number) became the text "None"
    ("5") through str() and was trained as the caption of the video, exit 0."""
    if kind == "dvc":
        anno = copy.deepcopy(DVC_ANNO)
        anno["v_001.mp4"]["0"][1]["text"] = value
        cls, folder, what = DenseVideoCaptioningDataset, "shot2story", "narration text"
    elif kind == "coin":
        anno = copy.deepcopy(COIN_ANNO)
        anno["database"]["c_01"]["annotation"][0]["label"] = value
        cls, folder, what = DenseVideoCaptioningDataset, "coin", "step label"
    elif kind == "magqa":
        anno = copy.deepcopy(MAGQA_ANNO)
        anno[0]["conversation"][3]["content"] = value
        cls, folder, what = MAGQADataset, "shot2story", "turn content"
    else:
        anno = copy.deepcopy(GROUNDING_ANNO)
        anno[0]["query"] = value
        cls, folder, what = GroundingDataset, "shot2story", "query"
    path = tmp_path / "anno.json"
    path.write_text(json.dumps(anno))
    with pytest.raises(ValueError, match=f"{path}.*{what} must be a string, got {value}"):
        cls(path, fixture_root / folder / "videos", fixture_root / folder / "videos_metadata.json", template, fps=2)
    # the same file with a string there builds
    if kind == "dvc":
        anno["v_001.mp4"]["0"][1]["text"] = "He adds it to the pan."
        path.write_text(json.dumps(anno))
        assert len(cls(path, fixture_root / folder / "videos", fixture_root / folder / "videos_metadata.json", template,
                       fps=2)) == 1


@pytest.mark.parametrize("value", ["false", 0, None])
def test_quality_dropout_option_must_be_a_boolean(fixture_root, template, value):
    """``"quality_dropout": "false"`` in a mixture config was bool("false") = True: HIHD frames were
    degraded while the config said not to."""
    cfg = load_mixture_config(fixture_root / "mixture.json")
    cfg["datasets"] = [dict(cfg["datasets"][3], quality_dropout=value)]  # hihd
    with pytest.raises(ValueError, match=f"quality_dropout must be true or false, got {value!r}"):
        build_mixture(cfg, fixture_root, template)
    cfg["datasets"][0]["quality_dropout"] = False
    assert build_mixture(cfg, fixture_root, template).datasets[0].records[0].degradation is None


def test_an_adapter_continued_with_lora_r_0_is_refused(fixture_root, tmp_path, shared_data, capsys, monkeypatch):
    """--lora_r 0 asks for full training; with --lora_pretrained ADAPTER the run trained LoRA instead
    (the adapter's kind decides), exit 0. Like a full checkpoint with --lora_r 16, it is refused."""
    import train

    monkeypatch.setattr(train, "build_trainable_model", lambda *a, **k: pytest.fail("a model was built"))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "aha_model.json").write_text(json.dumps({"kind": "adapter"}))  # only its kind is read up front
    rc = train.cli(["--preset", "aha-tiny", "--tokenizer", str(shared_data / "tokenizers" / "qwen2"),
                    "--dataset_config", str(fixture_root / "mixture.json"), "--data_root", str(fixture_root),
                    "--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--use_cpu", "true", "--report_to", "none",
                    "--lora_pretrained", str(adapter), "--lora_r", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "is a LoRA adapter: it continues as LoRA, so --lora_r 0 (full training) cannot be honoured" in err


def test_train_lm_head_false_is_honoured_when_an_adapter_is_continued(tmp_path):
    """--train_lm_head false with --lora_pretrained ADAPTER (trained with its lm_head copy) trained the
    1 GB (7B) lm_head anyway: the adapter's modules stayed trainable, while --train_projector false was
    honoured. Now frozen like the projector; the heads and LoRA still train."""
    import torch

    import train
    from models.build import build_model
    from models.checkpoint import save_checkpoint
    from models.lora import LoraSettings, apply_lora

    torch.manual_seed(0)
    save_checkpoint(apply_lora(build_model("aha-tiny", seed=0), LoraSettings(train_lm_head=True)), tmp_path / "adapter")

    def trainable(*extra):
        model_args, _, args = train.parse_args(["--lora_pretrained", str(tmp_path / "adapter"), "--output_dir",
                                                str(tmp_path / "o"), "--use_cpu", "true", "--report_to", "none", *extra])
        model = train.build_trainable_model(model_args, args, frozen_projector=False)
        return [n for n, p in model.named_parameters() if p.requires_grad]

    assert any("lm_head" in n for n in trainable())  # default: the adapter's lm_head copy trains on
    kept = trainable("--train_lm_head", "false")
    assert not any("lm_head" in n for n in kept)
    assert any("informative_head" in n for n in kept) and any("lora_A" in n for n in kept)
