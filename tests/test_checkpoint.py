"""LoRA trainable set, save/load round trips, merged weights, backbone layouts, released-adapter converter."""
import json
import re

import pytest
import torch
from safetensors.torch import save_file

from models.build import build_model, detect_layout
from models.checkpoint import load_checkpoint, merge_and_save, save_checkpoint
from models.convert import convert_adapter
from models.lora import apply_lora, trainable_parameter_names

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


def _llava_hf_dir(model, path):
    """A backbone folder in the llava-hf layout (what transformers writes for LLaVA-OneVision)."""
    model.save_pretrained(str(path))
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["model_type"] == "llava_onevision"
    return path


def test_llava_hf_layout_loads_backbone(tiny_model, tmp_path):
    d = _llava_hf_dir(tiny_model, tmp_path / "hf")
    assert detect_layout(d) == "llava-hf"
    m2 = build_model("aha-tiny", weights=d)
    sd1, sd2 = tiny_model.state_dict(), m2.state_dict()
    for k in sd1:
        if "_head" in k and "lm_head" not in k:
            continue  # heads are not part of a backbone folder
        torch.testing.assert_close(sd1[k], sd2[k], rtol=0, atol=0, msg=k)


def _to_lmms_lab_key(k):
    # hand-written inverse of the original LLaVA-NeXT layout, independent of models/build.py
    k = k.replace("model.vision_tower.", "model.vision_tower.vision_tower.vision_model.")
    k = k.replace("model.multi_modal_projector.linear_1.", "model.mm_projector.0.")
    k = k.replace("model.multi_modal_projector.linear_2.", "model.mm_projector.2.")
    return k.replace("model.language_model.", "model.")


def test_lmms_lab_layout_loads_backbone_and_drops_extra_siglip_layer(tiny_model, tmp_path):
    d = tmp_path / "lmms"
    d.mkdir()
    state = {_to_lmms_lab_key(k): v.clone() for k, v in tiny_model.state_dict().items() if "_head" not in k or "lm_head" in k}
    # the original SigLIP has one more layer than OV uses; it must be ignored
    state["model.vision_tower.vision_tower.vision_model.encoder.layers.2.mlp.fc1.weight"] = torch.zeros(64, 32)
    half = len(state) // 2
    keys = sorted(state)
    save_file({k: state[k] for k in keys[:half]}, str(d / "model-00001-of-00002.safetensors"))
    save_file({k: state[k] for k in keys[half:]}, str(d / "model-00002-of-00002.safetensors"))
    tc = tiny_model.config.text_config
    (d / "config.json").write_text(json.dumps({
        "model_type": "llava", "mm_vision_tower": "google/siglip-so400m-patch14-384", "hidden_size": tc.hidden_size,
        "intermediate_size": tc.intermediate_size, "num_hidden_layers": tc.num_hidden_layers,
        "num_attention_heads": tc.num_attention_heads, "num_key_value_heads": tc.num_key_value_heads,
        "vocab_size": tc.vocab_size, "rope_theta": tc.rope_theta if hasattr(tc, "rope_theta") else 1e6, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False}))
    assert detect_layout(d) == "lmms-lab"
    m2 = build_model("aha-tiny", weights=d)
    sd1, sd2 = tiny_model.state_dict(), m2.state_dict()
    for k in sd1:
        if re.search(r"(informative|relevance|uncertainty)_head", k):
            continue
        torch.testing.assert_close(sd1[k], sd2[k], rtol=0, atol=0, msg=k)


def _to_reference_adapter_key(k):
    k = k.replace("base_model.model.model.language_model.", "base_model.model.model.")
    k = k.replace("multi_modal_projector.linear_1.", "mm_projector.0.").replace("multi_modal_projector.linear_2.", "mm_projector.2.")
    return k


def test_converter_loads_adapters_written_in_the_reference_key_layout(tiny_model, tmp_path):
    from peft import get_peft_model_state_dict

    backbone = _llava_hf_dir(tiny_model, tmp_path / "hf")
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
    with pytest.raises(ValueError, match="unexpected key"):
        from models.convert import convert_key

        convert_key("base_model.model.something_else.weight")
