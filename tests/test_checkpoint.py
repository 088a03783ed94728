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
HEAD_NAMES = ("informative_head.weight", "relevance_head.weight", "uncertainty_head.weight")


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
    # the documented command, on a backbone with the hub's vocab (the conversion's 64 padding rows)
    from models.convert import main as convert_main

    assert json.loads((backbone / "config.json").read_text())["text_config"]["vocab_size"] == 151936 + 64
    convert_main(["--adapter", str(ref), "--out", str(tmp_path / "cli"), "--preset", "aha-tiny", "--weights", str(backbone)])
    via_cli = load_checkpoint(tmp_path / "cli")
    _assert_same(before, _scores(via_cli))
    assert via_cli.get_base_model().load_report.vocab_rows_dropped == 64
    # the released folder loads directly too (converted in memory): the same per-frame scores
    direct = load_checkpoint(ref, weights=backbone, preset="aha-tiny")
    _assert_same(before, _scores(direct))
    assert "dropped the last 64 rows of embed_tokens and lm_head" in direct.get_base_model().load_report.line()
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


# ------------------------------------------------------------------- released adapters: training, heads, MMDuet
REF_LORA_CONFIG = {  # adapter_config.json as peft's save_pretrained writes it for the reference's LoraConfig
    "peft_type": "LORA", "r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "task_type": "CAUSAL_LM", "inference_mode": True,
    "bias": "none", "target_modules": r"model\.layers.*(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$",
    "modules_to_save": ["connector", "mm_projector", "response_head", "lm_head", "informative_head", "relevance_head", "uncertainty_head"],
    "base_model_name_or_path": "lmms-lab/llava-onevision-qwen2-7b-ov"}


def _released_adapter(tiny_model, tmp_path, drop_heads=(), relevance_rows=1):
    """A hub-layout backbone (padded vocab) and a released adapter in the reference's key layout."""
    from peft import get_peft_model_state_dict

    backbone = tmp_path / "hf"
    write_llava_hf(tiny_model, backbone)
    pm = apply_lora(build_model("aha-tiny", weights=backbone))
    _randomise_adapters(pm)
    state = {_to_reference_adapter_key(k): v for k, v in get_peft_model_state_dict(pm).items()}
    for h in drop_heads:
        state.pop(f"base_model.model.{h}.weight")
    if relevance_rows != 1:
        state["base_model.model.relevance_head.weight"] = torch.randn(relevance_rows, state["base_model.model.relevance_head.weight"].shape[1])
    ref = tmp_path / "released"
    ref.mkdir()
    save_file(state, str(ref / "adapter_model.safetensors"))
    mods = [m for m in REF_LORA_CONFIG["modules_to_save"] if m not in drop_heads]
    (ref / "adapter_config.json").write_text(json.dumps({**REF_LORA_CONFIG, "modules_to_save": mods}))
    return ref, backbone, pm


def test_a_released_adapter_loads_trainable_with_the_trainable_set_of_a_fresh_lora(tiny_model, tmp_path):
    """peft writes inference_mode true; a wrap with it froze every LoRA matrix and trained module, so
    fine-tuning from the released adapter trained nothing."""
    ref, backbone, pm = _released_adapter(tiny_model, tmp_path)
    model = load_checkpoint(ref, weights=backbone, preset="aha-tiny", is_trainable=True)
    assert set(trainable_parameter_names(model)) == set(trainable_parameter_names(pm)) != set()
    assert model.peft_config["default"].inference_mode is False
    ids, px = _inputs()
    out = model(input_ids=ids, pixel_values=px)
    out.relevance.sum().backward()  # the error the frozen wrap gave: "element 0 of tensors does not require grad"
    frozen = load_checkpoint(ref, weights=backbone, preset="aha-tiny")
    assert trainable_parameter_names(frozen) == [] and frozen.peft_config["default"].inference_mode is True


def test_train_builds_a_released_adapter_on_its_preset_and_refuses_nothing_to_train(tiny_model, tmp_path, monkeypatch):
    import train

    ref, backbone, _ = _released_adapter(tiny_model, tmp_path)
    margs = train.ModelArguments(preset="aha-tiny", weights=str(backbone), lora_pretrained=str(ref), model_dtype="fp32")
    args = train.AhaTrainingArguments(output_dir=str(tmp_path / "out"), report_to=[])
    model = train.build_trainable_model(margs, args, frozen_projector=False)  # --preset aha-tiny, not aha-7b
    assert model.get_base_model().config.text_config.hidden_size == 64
    assert trainable_parameter_names(model)
    real = train.load_checkpoint
    monkeypatch.setattr(train, "load_checkpoint", lambda *a, **k: real(*a, **{**k, "is_trainable": False}))
    with pytest.raises(ValueError, match=r"no parameter would be trained: every parameter of --lora_pretrained .* was loaded frozen"):
        train.build_trainable_model(margs, args, frozen_projector=False)


@pytest.mark.parametrize("convert", [False, True], ids=["direct", "converted"])
def test_a_head_missing_from_a_released_adapter_is_an_error_naming_it(tiny_model, tmp_path, convert):
    ref, backbone, _ = _released_adapter(tiny_model, tmp_path, drop_heads=("uncertainty_head",))
    if convert:
        with pytest.raises(ValueError, match=r"holds no \['uncertainty_head'\]"):
            convert_adapter(ref, tmp_path / "c", preset="aha-tiny", weights=backbone)
        return
    with pytest.raises(ValueError, match=r"holds no \['uncertainty_head'\] and the backbone has none"):
        load_checkpoint(ref, weights=backbone, preset="aha-tiny")
    # allowed explicitly: the report says which head is untrained
    m = load_checkpoint(ref, weights=backbone, preset="aha-tiny", allow_untrained_heads=True)
    heads = m.get_base_model().load_report.heads
    assert heads.startswith("informative_head, relevance_head from the released adapter") and "uncertainty_head not in this backbone" in heads
    assert "untrained" in heads


def test_an_mmduet_adapter_is_refused_as_such(tiny_model, tmp_path):
    ref, backbone, _ = _released_adapter(tiny_model, tmp_path, drop_heads=("uncertainty_head",), relevance_rows=2)
    for call in (lambda: load_checkpoint(ref, weights=backbone, preset="aha-tiny"),
                 lambda: convert_adapter(ref, tmp_path / "c", preset="aha-tiny", weights=backbone)):
        with pytest.raises(ValueError, match=r"relevance_head has 2 outputs, Aha!'s has 1 \(MMDuet's two-class relevance head"):
            call()


def test_a_released_adapter_on_a_config_read_from_the_padded_hub_folder(tiny_model, tmp_path):
    """The config of the hub folder says 152000 (0.5b-like): the adapter's lm_head (151936 rows) decides."""
    from models.build import config_from_weights

    ref, backbone, pm = _released_adapter(tiny_model, tmp_path)
    cfg = config_from_weights(backbone)
    assert cfg.text_config.vocab_size == 151936 + 64
    m = load_checkpoint(ref, weights=backbone, preset=cfg)
    _assert_same(_scores(pm), _scores(m))
    assert m.get_base_model().load_report.vocab_rows_dropped == 64


def test_merged_weights_of_a_tied_model_with_a_trained_lm_head_round_trip(tmp_path):
    """0.5B-like (tie_word_embeddings true): LoRA trains a copy of lm_head, so the merged model is
    untied; its checkpoint must say so, or the reload ties the trained lm_head back to the embeddings."""
    from models.build import load_preset

    cfg = load_preset("aha-tiny")
    cfg.tie_word_embeddings = cfg.text_config.tie_word_embeddings = True
    pm = apply_lora(build_model(cfg, seed=0).eval())
    _randomise_adapters(pm)
    before = _scores(pm)
    merge_and_save(pm, tmp_path / "merged")
    saved = json.loads((tmp_path / "merged" / "config.json").read_text())
    assert saved["tie_word_embeddings"] is False and saved["text_config"]["tie_word_embeddings"] is False
    merged = load_checkpoint(tmp_path / "merged")
    assert merged.lm_head.weight is not merged.get_input_embeddings().weight
    for a, b in zip(before, _scores(merged)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_heads_file_with_a_checkpoint_is_used_or_refused_never_ignored(tiny_model, tmp_path):
    """load_for_inference(checkpoint=..., heads=...) dropped the heads file without a word (only the
    no-checkpoint path passed it on): a released adapter without a head now takes it from the file;
    a checkpoint that brings its own heads refuses it."""
    from pathlib import Path

    from models.inference import load_for_inference

    ref, backbone, _ = _released_adapter(tiny_model, tmp_path, drop_heads=("uncertainty_head",))
    heads = {f"{h}.weight": torch.randn_like(getattr(tiny_model, h).weight) for h in ("informative_head", "relevance_head",
                                                                                      "uncertainty_head")}
    save_file(heads, str(tmp_path / "heads.safetensors"))
    tok = Path(__file__).resolve().parents[1] / "configs" / "tokenizers" / "aha-tiny-synth"
    m = load_for_inference("aha-tiny", weights=str(backbone), checkpoint=str(ref), tokenizer=str(tok),
                           heads=str(tmp_path / "heads.safetensors"), hash_weights=False).model
    assert torch.equal(m.get_base_model().uncertainty_head.weight, heads["uncertainty_head.weight"])
    assert "uncertainty_head from" in m.get_base_model().load_report.heads
    full = tmp_path / "full"
    save_checkpoint(tiny_model, full)
    with pytest.raises(ValueError, match="the checkpoint brings its own heads"):
        load_for_inference(checkpoint=str(full), tokenizer=str(tok), heads=str(tmp_path / "heads.safetensors"))
    ref_all, _, _ = _released_adapter(tiny_model, tmp_path / "all")
    with pytest.raises(ValueError, match="holds all three heads and a heads file"):
        load_checkpoint(ref_all, weights=backbone, preset="aha-tiny", heads=tmp_path / "heads.safetensors")


def test_resuming_a_tied_model_refuses_a_file_whose_lm_head_differs_from_its_embeddings(tmp_path):
    """load_full_weights copied lm_head and then the embeddings into the one tied storage: the file's
    lm_head was dropped without a word."""
    from safetensors.torch import load_file

    from models.build import load_preset
    from models.resume import load_full_weights

    cfg = load_preset("aha-tiny")
    cfg.tie_word_embeddings = cfg.text_config.tie_word_embeddings = True
    src = build_model(cfg, seed=1)
    write_llava_hf(src, tmp_path / "ck", legacy=False, shards=1, padded_vocab=False)
    f = tmp_path / "ck" / "model.safetensors"
    state = {**load_file(str(f)), **{h: src.get_parameter(h).detach().clone() for h in HEAD_NAMES}}
    emb = state["model.language_model.embed_tokens.weight"]
    save_file({**state, "lm_head.weight": emb.clone()}, str(f))
    model = build_model(cfg, seed=2)
    load_full_weights(model, tmp_path / "ck")  # equal values: loads
    assert torch.equal(model.lm_head.weight, emb)
    save_file({**state, "lm_head.weight": emb + 1}, str(f))
    with pytest.raises(ValueError, match="'lm_head.weight' differs from the tensor it is tied to"):
        load_full_weights(build_model(cfg, seed=2), tmp_path / "ck")


@pytest.mark.parametrize("change", ["missing", "unexpected"])
def test_an_adapter_checkpoint_whose_file_does_not_fit_is_refused_by_name(tiny_model, tmp_path, change):
    """peft loads an adapter file with a LoRA matrix missing (left at init: B = 0, that adapter
    silently off) or a tensor with no place, and only warns: a project / converted checkpoint now
    fails as the released-adapter path does."""
    from safetensors.torch import load_file

    pm = apply_lora(tiny_model)
    _randomise_adapters(pm)
    save_checkpoint(pm, tmp_path / "ckpt")
    f = tmp_path / "ckpt" / "adapter_model.safetensors"
    state = load_file(str(f))
    key = "base_model.model.model.language_model.layers.1.mlp.down_proj.lora_B.weight"
    if change == "missing":
        state.pop(key)
    else:
        state[key.replace("lora_B", "lora_C")] = torch.zeros(1)
    save_file(state, str(f))
    with pytest.raises(ValueError, match=f"does not fit its adapter_config.json.*{key if change == 'missing' else 'lora_C'}"):
        load_checkpoint(tmp_path / "ckpt")


def test_an_adapter_on_a_merged_checkpoint_of_itself_is_refused(tiny_model, tmp_path):
    """--checkpoint ADAPTER --weights MERGED put the LoRA on weights that already hold it (applied twice)."""
    backbone = tmp_path / "hf"
    write_llava_hf(tiny_model, backbone, padded_vocab=False)
    pm = apply_lora(build_model("aha-tiny", weights=backbone))
    _randomise_adapters(pm)
    before = _scores(pm)
    save_checkpoint(pm, tmp_path / "adapter", weights=backbone)
    merge_and_save(pm, tmp_path / "merged")
    with pytest.raises(ValueError, match="merged checkpoint .* would apply LoRA twice"):
        load_checkpoint(tmp_path / "adapter", weights=tmp_path / "merged")
    for a, b in zip(before, _scores(load_checkpoint(tmp_path / "adapter"))):  # on its own backbone: as saved
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    ref, _, _ = _released_adapter(tiny_model, tmp_path / "released")
    for call in (lambda: load_checkpoint(ref, weights=tmp_path / "merged", preset="aha-tiny"),
                 lambda: convert_adapter(ref, tmp_path / "conv", preset="aha-tiny", weights=tmp_path / "merged")):
        with pytest.raises(ValueError, match="would apply LoRA twice"):
            call()


def test_an_adapter_file_with_the_embedding_layers_peft_saves_itself_loads(tiny_model, tmp_path):
    """peft's save_pretrained adds embed_tokens and lm_head to the adapter file when it finds the
    vocab resized (save_embedding_layers="auto"), and its loader reads them back: such a file fits."""
    from peft import get_peft_model_state_dict

    from models.lora import LoraSettings

    pm = apply_lora(tiny_model, LoraSettings(train_lm_head=False))
    _randomise_adapters(pm)
    save_checkpoint(pm, tmp_path / "ckpt")
    state = get_peft_model_state_dict(pm, save_embedding_layers=True)
    assert {"base_model.model.lm_head.weight", "base_model.model.model.language_model.embed_tokens.weight"} <= set(state)
    save_file({k: v.clone().contiguous() for k, v in state.items()}, str(tmp_path / "ckpt" / "adapter_model.safetensors"))
    load_checkpoint(tmp_path / "ckpt")
