"""LoRA trainable set, save/load round trips, merged weights, released adapters (converted or direct), inference settings."""
import json

import pytest
import torch
from safetensors.torch import save_file

from models.build import build_model
from models.checkpoint import load_checkpoint, merge_and_save, save_checkpoint
from models.convert import convert_adapter
from models.lora import apply_lora, trainable_parameter_names
from tests.weight_layouts import write_llava_hf

PH = 151646


def _inputs():
    torch.manual_seed(1)
    ids = torch.tensor([[1, 2, 3] + [PH] * 98 + [4, 5]])
    return ids, torch.randn(2, 3, 384, 384)


def _scores(model):
    ids, px = _inputs()
    model.eval()
    with torch.no_grad():
        o = model(input_ids=ids, pixel_values=px)
    return o.relevance, o.informative_logits, o.log_variance, o.logits[:, -1]


def _randomise_adapters(pm):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in pm.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


def _assert_same(a, b):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_exact_lora_trainable_set(tiny_model):
    pm = apply_lora(tiny_model)
    names = set(trainable_parameter_names(pm))
    layers = tiny_model.config.text_config.num_hidden_layers
    want = set()
    for i in range(layers):
        for mod in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
            for ab in ("lora_A", "lora_B"):
                want.add(f"base_model.model.model.language_model.layers.{i}.{mod}.{ab}.default.weight")
    for lin in ("linear_1", "linear_2"):
        for wb in ("weight", "bias"):
            want.add(f"base_model.model.model.multi_modal_projector.modules_to_save.default.{lin}.{wb}")
    for head in ("lm_head", "informative_head", "relevance_head", "uncertainty_head"):
        want.add(f"base_model.model.{head}.modules_to_save.default.weight")
    assert names == want
    assert not any("vision_tower" in n for n in names)
    cfg = pm.peft_config["default"]
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout) == (16, 32, 0.05)


def test_adapter_save_load_gives_identical_outputs(tiny_model, tmp_path):
    pm = apply_lora(tiny_model)
    _randomise_adapters(pm)
    before = _scores(pm)
    save_checkpoint(pm, tmp_path / "ckpt")
    files = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "aha_model.json", "base_model.safetensors"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    _assert_same(before, _scores(load_checkpoint(tmp_path / "ckpt")))
    # trainable reload continues from the same adapter values
    again = load_checkpoint(tmp_path / "ckpt", is_trainable=True)
    assert any(p.requires_grad for p in again.parameters())


def test_merged_weights_round_trip(tiny_model, tmp_path):
    pm = apply_lora(tiny_model)
    _randomise_adapters(pm)
    before = _scores(pm)
    merge_and_save(pm, tmp_path / "merged")
    merged = load_checkpoint(tmp_path / "merged")
    for a, b in zip(before, _scores(merged)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _to_reference_adapter_key(k):
    k = k.replace("base_model.model.model.language_model.", "base_model.model.model.")
    k = k.replace("multi_modal_projector.linear_1.", "mm_projector.0.").replace("multi_modal_projector.linear_2.", "mm_projector.2.")
    return k


def test_converter_loads_adapters_written_in_the_reference_key_layout(tiny_model, tmp_path):
    from peft import get_peft_model_state_dict

    backbone = tmp_path / "hf"
    write_llava_hf(tiny_model, backbone)  # hub key names
    pm = apply_lora(build_model("aha-tiny", weights=backbone))
    with torch.no_grad():  # heads come from the adapter, not the backbone folder
        for head in ("informative_head", "relevance_head", "uncertainty_head"):
            getattr(pm.base_model.model, head).modules_to_save["default"].weight.copy_(torch.randn_like(getattr(tiny_model, head).weight))
    _randomise_adapters(pm)
    before = _scores(pm)
    # write the adapter as the reference's LLaVA-NeXT model would have
    ref = tmp_path / "released"
    ref.mkdir()
    state = {_to_reference_adapter_key(k): v for k, v in get_peft_model_state_dict(pm).items()}
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in state
    assert "base_model.model.model.mm_projector.0.weight" in state
    save_file(state, str(ref / "adapter_model.safetensors"))
    (ref / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "task_type": "CAUSAL_LM",
        "target_modules": r"model\.layers.*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$",
        "modules_to_save": ["connector", "mm_projector", "response_head", "lm_head", "informative_head", "relevance_head", "uncertainty_head"],
        "base_model_name_or_path": "lmms-lab/llava-onevision-qwen2-7b-ov"}))
    out = convert_adapter(ref, tmp_path / "converted", preset="aha-tiny", weights=backbone)
    _assert_same(before, _scores(load_checkpoint(out)))
    # the released folder loads directly too (converted in memory): the same per-frame scores
    direct = load_checkpoint(ref, weights=backbone, preset="aha-tiny")
    _assert_same(before, _scores(direct))
    assert "released adapter" in direct.get_base_model().load_report.heads
    # and a tensor the model has no place for is refused by name
    save_file({**state, "base_model.model.model.layers.0.self_attn.q_proj.lora_C.weight": torch.zeros(1)},
              str(ref / "adapter_model.safetensors"))
    with pytest.raises(ValueError, match="lora_C"):
        load_checkpoint(ref, weights=backbone, preset="aha-tiny")
    with pytest.raises(ValueError, match="unexpected key"):
        from models.convert import convert_key

        convert_key("base_model.model.something_else.weight")


def test_trained_head_copies_drive_the_scores(tiny_model):
    """The heads are computed in fp32 from their weights: with LoRA, the weights of the trained
    copy (modules_to_save), not of the frozen original."""
    pm = apply_lora(tiny_model)
    before = _scores(pm)[0]
    with torch.no_grad():
        pm.base_model.model.relevance_head.modules_to_save["default"].weight.add_(0.5)
    after = _scores(pm)[0]
    assert not torch.allclose(before, after)
    with torch.no_grad():
        pm.base_model.model.relevance_head.original_module.weight.add_(0.5)
    torch.testing.assert_close(_scores(pm)[0], after, rtol=0, atol=0)


def test_inference_settings_round_trip(tiny_model, tmp_path):
    from models.checkpoint import inference_settings
    from models.inference_settings import InferenceSettings

    want = InferenceSettings(fps=2.0, cache_policy="dynamic_sink", window=44, sink_tokens=8, prompt_order="reference",
                             system_prompt="")
    pm = apply_lora(tiny_model)
    save_checkpoint(pm, tmp_path / "a", inference=want)
    got = inference_settings(tmp_path / "a")
    assert got == InferenceSettings(**{**want.to_dict(), "tokens_per_frame": 49})
    merge_and_save(pm, tmp_path / "m", inference=want)
    assert inference_settings(tmp_path / "m") == got
    with pytest.raises(ValueError, match="unknown inference settings"):
        InferenceSettings.from_dict({"fps": 2, "windw": 3})
    with pytest.raises(ValueError, match="fps must be a positive number"):
        InferenceSettings(fps=float("nan"))


def test_a_preset_that_contradicts_the_checkpoint_is_refused(tiny_model, tmp_path):
    save_checkpoint(apply_lora(tiny_model), tmp_path / "a")
    with pytest.raises(ValueError, match=r"contradicts the checkpoint .*text_config.hidden_size: preset 128, checkpoint 64"):
        load_checkpoint(tmp_path / "a", preset="aha-tiny-synth")
    with pytest.raises(FileNotFoundError, match="no model preset 'aha-tnyi'"):
        load_checkpoint(tmp_path / "a", preset="aha-tnyi")
    load_checkpoint(tmp_path / "a", preset="aha-tiny")  # the same model: fine
