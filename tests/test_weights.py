"""Loading weight folders laid out as published: every tensor lands, nothing is left behind silently.

Folders are written by tests/weight_layouts.py with the published key names (llava-hf hub files,
lmms-lab / LLaVA-NeXT, the reference's full Aha! model), never with save_pretrained.
"""
from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import load_file, save_file

from models.build import build_model
from tests.weight_layouts import HEADS, hub_vocab, llava_hf_hub_name, lmms_lab_name, write_llava_hf, write_lmms_lab

TOWER = "tests/tiny-siglip"  # a tower name the project does not know: its head count comes from the preset
PH = 151646


@pytest.fixture(scope="module")
def source():
    """The model whose tensors go into the files (every tensor random, heads included)."""
    m = build_model("aha-tiny", seed=7)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # no two folders share values by accident of init
    return m.eval()


def _assert_model_holds(model, file_state: dict, to_ours) -> None:
    sd = model.state_dict()
    for k, v in file_state.items():
        ours = to_ours[k]
        assert torch.equal(sd[ours], v.to(sd[ours].dtype)), f"{k} -> {ours} differs from the file"


@pytest.mark.parametrize("legacy", [True, False], ids=["hub-legacy-names", "current-names"])
def test_llava_hf_every_tensor_equals_the_file(source, tmp_path, legacy, caplog):
    state = write_llava_hf(source, tmp_path / "hf", legacy=legacy, padded_vocab=False)
    if legacy:
        assert "language_model.lm_head.weight" in state and "vision_tower.vision_model.post_layernorm.weight" in state
    with caplog.at_level(logging.INFO, logger="models.build"):
        m = build_model(None, weights=tmp_path / "hf")
    inv = {(llava_hf_hub_name(k) if legacy else k): k for k in source.state_dict()}
    _assert_model_holds(m, state, inv)
    # the reported bug: lm_head loaded, not left at random init
    assert torch.equal(m.lm_head.weight, source.lm_head.weight)
    r = m.load_report
    assert r.loaded == r.tensors_in_files == len(state) and r.layout == "llava-hf"
    assert r.names == ("hub legacy names" if legacy else "current names")
    lines = [rec.getMessage() for rec in caplog.records if rec.getMessage().startswith("loaded ")]
    assert len(lines) == 1 and f"{len(state)} of {len(state)} tensors" in lines[0] and "seed 0" in lines[0]


def _tied_source():
    from models.build import load_preset

    cfg = load_preset("aha-tiny")
    cfg.tie_word_embeddings = cfg.text_config.tie_word_embeddings = True  # as llava-onevision-qwen2-0.5b-ov
    return build_model(cfg, seed=5).eval()


@pytest.mark.parametrize("tied", [False, True], ids=["7b-like-untied", "0.5b-like-tied"])
def test_hub_vocab_padding_rows_are_dropped_and_said(source, tmp_path, tied):
    """The llava-hf hub folders hold the conversion's random padding rows (152128 rows for Qwen2-7B's
    152064, 152000 for 0.5B's 151936): with the preset's vocab, the first rows load, the rest are
    dropped and the report says so."""
    src = _tied_source() if tied else source
    vocab = src.config.text_config.vocab_size
    assert hub_vocab(152064) == 152128 and hub_vocab(151936) == 152000
    state = write_llava_hf(src, tmp_path / "hf")  # hub names, hub vocab
    assert state["language_model.model.embed_tokens.weight"].shape[0] == hub_vocab(vocab) == vocab + 64
    assert ("language_model.lm_head.weight" in state) is not tied
    m = build_model("aha-tiny", weights=tmp_path / "hf") if not tied else build_model(src.config, weights=tmp_path / "hf")
    assert m.config.text_config.vocab_size == vocab
    assert m.get_input_embeddings().weight.shape[0] == m.lm_head.weight.shape[0] == vocab
    assert (m.lm_head.weight is m.get_input_embeddings().weight) is tied
    sd = m.state_dict()
    inv = {llava_hf_hub_name(k): k for k in src.state_dict()}
    for k, v in state.items():
        kept = v[:vocab] if k in ("language_model.model.embed_tokens.weight", "language_model.lm_head.weight") else v
        assert torch.equal(sd[inv[k]], kept), k
    r = m.load_report
    assert (r.vocab_rows_dropped, r.weights_vocab) == (64, vocab + 64)
    assert f"dropped the last 64 rows of embed_tokens and lm_head (vocab {vocab + 64} -> {vocab}" in r.line()
    assert r.to_dict()["vocab_rows_dropped"] == 64
    # without a preset the folder's own vocab loads whole (nothing dropped)
    whole = build_model(None, weights=tmp_path / "hf")
    assert whole.config.text_config.vocab_size == vocab + 64 and whole.load_report.vocab_rows_dropped == 0


def test_a_vocab_difference_other_than_the_padding_is_refused(source, tmp_path):
    from models.build import load_preset

    write_llava_hf(source, tmp_path / "hf")  # 151936 + 64 rows
    cfg = load_preset("aha-tiny")
    cfg.text_config.vocab_size = 151900  # padded, 151900 would give 151936, not 152000
    with pytest.raises(ValueError, match=r"text_config\.vocab_size: preset 151900, weights 152000"):
        build_model(cfg, weights=tmp_path / "hf")
    cfg.text_config.vocab_size = 152064  # fewer rows in the file than the preset: never padding
    with pytest.raises(ValueError, match=r"text_config\.vocab_size: preset 152064, weights 152000"):
        build_model(cfg, weights=tmp_path / "hf")


def test_bare_backbone_heads_are_seeded_once_and_said(source, tmp_path):
    write_llava_hf(source, tmp_path / "hf")
    a = build_model(None, weights=tmp_path / "hf", seed=1)
    b = build_model(None, weights=tmp_path / "hf", seed=1)
    c = build_model(None, weights=tmp_path / "hf", seed=2)
    for h in HEADS:
        assert torch.equal(a.get_parameter(h), b.get_parameter(h))
        assert not torch.equal(a.get_parameter(h), c.get_parameter(h))
        assert not torch.equal(a.get_parameter(h), source.get_parameter(h))
    assert "initialised with seed 1 (untrained)" in a.load_report.line()


@pytest.mark.parametrize("extra_layer", [False, True])
def test_lmms_lab_every_tensor_equals_the_file(source, tmp_path, extra_layer):
    state = write_lmms_lab(source, tmp_path / "lmms", TOWER, extra_siglip_layer=extra_layer)
    assert "model.layers.0.self_attn.q_proj.weight" in state and "model.mm_projector.0.weight" in state
    if extra_layer:  # an unknown tower: its layer count is what the files hold, and the preset disagrees
        with pytest.raises(ValueError, match=r"vision_config.num_hidden_layers: preset 2, weights 3"):
            build_model("aha-tiny", weights=tmp_path / "lmms")
        return
    m = build_model("aha-tiny", weights=tmp_path / "lmms")
    _assert_model_holds(m, state, {lmms_lab_name(k): k for k in source.state_dict()})
    assert m.load_report.loaded == len(state) and not m.load_report.dropped


def test_lmms_lab_known_tower_drops_its_unused_last_layer(source, tmp_path, monkeypatch):
    import models.weights as W

    vc = source.config.vision_config
    monkeypatch.setitem(W.SIGLIP_BY_NAME, TOWER, {"hidden_size": vc.hidden_size, "intermediate_size": vc.intermediate_size,
                                                   "num_attention_heads": vc.num_attention_heads,
                                                   "num_hidden_layers": vc.num_hidden_layers + 1,
                                                   "image_size": vc.image_size, "patch_size": vc.patch_size})
    state = write_lmms_lab(source, tmp_path / "lmms", TOWER, extra_siglip_layer=True)
    m = build_model(None, weights=tmp_path / "lmms")  # sizes from the weights alone
    assert m.config.vision_config.num_hidden_layers == vc.num_hidden_layers
    kept = {k: v for k, v in state.items() if f".encoder.layers.{vc.num_hidden_layers}." not in k}
    _assert_model_holds(m, kept, {lmms_lab_name(k): k for k in source.state_dict()})
    assert m.load_report.dropped == {"SigLIP's last layer, which LLaVA-OneVision does not use": len(state) - len(kept)}


def test_reference_full_model_brings_its_heads_and_drops_the_duplicate_tower(source, tmp_path):
    state = write_lmms_lab(source, tmp_path / "ref", TOWER, heads=True, duplicate_tower=True)
    m = build_model("aha-tiny", weights=tmp_path / "ref")
    for h in HEADS:
        assert torch.equal(m.get_parameter(h), state[h])
    n_dup = sum(k.startswith("vision_encoder.") for k in state)
    assert m.load_report.dropped == {"the reference's duplicate of the vision tower": n_dup}
    assert m.load_report.heads == "from the weights"
    _assert_model_holds(m, {k: v for k, v in state.items() if not k.startswith("vision_encoder.")},
                        {lmms_lab_name(k): k for k in source.state_dict()})


def _rewrite(d, change):
    """Apply ``change`` to the folder's tensors (name -> tensor dict), in place."""
    for f in sorted(d.glob("*.safetensors")):
        st = load_file(str(f))
        change(st)
        save_file(st, str(f))
    idx = d / "model.safetensors.index.json"
    if idx.is_file():
        idx.unlink()  # the shards then speak for themselves


def test_a_missing_tensor_is_refused_by_name(source, tmp_path):
    write_llava_hf(source, tmp_path / "hf")
    _rewrite(tmp_path / "hf", lambda st: st.pop("language_model.model.layers.1.mlp.up_proj.weight", None))
    with pytest.raises(ValueError, match=r"missing tensor 'model\.language_model\.layers\.1\.mlp\.up_proj\.weight'"):
        build_model(None, weights=tmp_path / "hf")


def test_an_unknown_tensor_is_refused_by_name(source, tmp_path):
    write_llava_hf(source, tmp_path / "hf")
    _rewrite(tmp_path / "hf", lambda st: st.update({"language_model.model.layers.0.mlp.extra_proj.weight": torch.zeros(2, 2)})
             if "language_model.model.embed_tokens.weight" in st else None)
    with pytest.raises(ValueError, match=r"unexpected tensor 'language_model\.model\.layers\.0\.mlp\.extra_proj\.weight'"):
        build_model(None, weights=tmp_path / "hf")


def test_a_wrong_shape_is_refused_by_name(source, tmp_path):
    write_llava_hf(source, tmp_path / "hf")
    _rewrite(tmp_path / "hf", lambda st: st.update({"image_newline": torch.zeros(3)}) if "image_newline" in st else None)
    with pytest.raises(ValueError, match=r"'image_newline' has shape \[3\], the model's 'model\.image_newline' has \[64\]"):
        build_model(None, weights=tmp_path / "hf")


def test_a_preset_that_contradicts_the_weights_is_refused_naming_both(source, tmp_path):
    write_llava_hf(source, tmp_path / "hf")
    with pytest.raises(ValueError, match=r"text_config\.hidden_size: preset 896, weights 64"):
        build_model("aha-0.5b", weights=tmp_path / "hf")
    write_lmms_lab(source, tmp_path / "lmms", "google/siglip-so400m-patch14-384")
    with pytest.raises(ValueError, match=r"names google/siglip-so400m-patch14-384 \(hidden_size=1152\) but its tensors say hidden_size=32"):
        build_model("aha-7b", weights=tmp_path / "lmms")


def test_a_partial_set_of_heads_is_refused(source, tmp_path):
    write_lmms_lab(source, tmp_path / "ref", TOWER, heads=True)
    _rewrite(tmp_path / "ref", lambda st: st.pop("uncertainty_head.weight", None))
    with pytest.raises(ValueError, match="partial set of heads"):
        build_model("aha-tiny", weights=tmp_path / "ref")


def test_heads_from_a_file_beside_the_backbone(source, tmp_path):
    write_llava_hf(source, tmp_path / "hf")
    f = tmp_path / "hf" / "aha_heads.bin.safetensors"
    heads = {f"base_model.model.{h}": source.get_parameter(h).detach().clone() for h in HEADS}
    save_file(heads, str(tmp_path / "heads.safetensors"))
    m = build_model(None, weights=tmp_path / "hf", heads=tmp_path / "heads.safetensors")
    for h in HEADS:
        assert torch.equal(m.get_parameter(h), source.get_parameter(h))
    assert m.load_report.heads.startswith("from ")
    save_file({**heads, "base_model.model.lm_head.weight": torch.zeros(1)}, str(f))
    with pytest.raises(ValueError, match="unexpected tensor 'base_model.model.lm_head.weight'"):
        build_model(None, weights=tmp_path / "hf", heads=f)


def test_bf16_backbone_keeps_fp32_heads_and_untied_scores(source, tmp_path):
    """300 random frames through a bf16 model: the heads run in fp32, so relevance and informative
    take (almost) as many values as there are frames; the same heads in bf16 collapse onto a few."""
    write_llava_hf(source, tmp_path / "hf", dtype=torch.bfloat16)
    m = build_model(None, weights=tmp_path / "hf", dtype="bf16").eval()
    assert m.lm_head.weight.dtype == torch.bfloat16
    assert all(m.get_parameter(h).dtype == torch.float32 for h in HEADS)
    tpf, n = m.config.tokens_per_frame, 300
    g = torch.Generator().manual_seed(0)
    frames = torch.randn(n, tpf, m.config.text_config.hidden_size, generator=g).to(torch.bfloat16)
    ids = torch.full((1, n * tpf), PH)
    with torch.no_grad():
        out = m(input_ids=ids, frame_embeds=frames, compute_lm_logits=False)
    last = torch.arange(n) * tpf + tpf - 1
    rel = out.relevance[0, last]
    info = out.informative_logits[0, last].softmax(-1)[:, 1]
    assert rel.dtype == torch.float32
    assert len(set(rel.tolist())) >= 0.95 * n and len(set(info.tolist())) >= 0.95 * n
    # what bf16 heads gave (the test would fail on them)
    h = out.last_hidden_state[0, last].to(torch.bfloat16)
    rel_bf16 = torch.sigmoid(m.relevance_head.weight.to(torch.bfloat16) @ h.T)
    assert len(set(rel_bf16.float().tolist()[0])) < 0.95 * n


@pytest.mark.parametrize("cut", [100, -10], ids=["inside-the-header", "inside-the-data"])
def test_a_truncated_shard_is_refused_with_its_name(source, tmp_path, cut):
    write_llava_hf(source, tmp_path / "hf", shards=1)
    f = tmp_path / "hf" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:cut])
    with pytest.raises(ValueError, match="model.safetensors: not a readable safetensors file"):
        build_model(None, weights=tmp_path / "hf")


def test_a_cls_dropping_feature_strategy_is_refused_at_load_naming_the_field(source, tmp_path):
    """SigLIP has no CLS token: 'default' would drop a patch and fail only at the first frame
    ("expected 729 patch tokens per frame, got 728")."""
    import json

    from models.config import AhaConfig

    write_llava_hf(source, tmp_path / "hf")
    cfg_file = tmp_path / "hf" / "config.json"
    cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), "vision_feature_select_strategy": "default"}))
    with pytest.raises(ValueError, match=r"hf/config\.json: vision_feature_select_strategy must be 'full' for a SigLIP tower"):
        build_model("aha-tiny", weights=tmp_path / "hf")
    with pytest.raises(ValueError, match="vision_feature_select_strategy must be 'full'"):
        AhaConfig(vision_feature_select_strategy="default")


def test_a_tied_config_with_an_lm_head_of_other_values_is_refused(tmp_path):
    """A 0.5B-like folder (tie_word_embeddings true) that also holds an lm_head: equal to the
    embeddings it loads tied; with other values transformers silently untied the two and scored
    with the file's lm_head (the original ties them and scores with the embeddings): refused."""
    src = _tied_source()
    state = write_lmms_lab(src, tmp_path / "lmms", TOWER, shards=1)
    f = tmp_path / "lmms" / "model.safetensors"
    emb = state["model.embed_tokens.weight"]
    save_file({**state, "lm_head.weight": emb.clone()}, str(f), metadata={"format": "pt"})
    m = build_model(src.config, weights=tmp_path / "lmms")
    assert m.lm_head.weight is m.get_input_embeddings().weight and torch.equal(m.lm_head.weight, emb)
    save_file({**state, "lm_head.weight": emb + 1}, str(f), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="ties lm_head to embed_tokens .* holds an lm_head.weight with other values"):
        build_model(src.config, weights=tmp_path / "lmms")


def test_a_folder_with_both_a_single_file_and_a_sharded_index_is_refused(source, tmp_path):
    """transformers reads model.safetensors whenever it is there, the index never: the plan (and the
    report) described the shards while the values came from the other file."""
    write_llava_hf(source, tmp_path / "hf", legacy=False, padded_vocab=False, shards=2)
    stale = {k: v + 1 for k, v in load_file(str(next((tmp_path / "hf").glob("model-00001-*.safetensors")))).items()}
    for f in sorted((tmp_path / "hf").glob("model-00002-*.safetensors")):
        stale.update(load_file(str(f)))
    save_file(stale, str(tmp_path / "hf" / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="both model.safetensors and model.safetensors.index.json"):
        build_model("aha-tiny", weights=tmp_path / "hf")


def test_a_heads_file_keeps_its_fp32_values_in_a_bf16_model(source, tmp_path):
    """A random-init bf16 model (preset, no --weights) was cast whole, heads included: the heads file
    was copied into bf16 heads (rounded) and only then put back to fp32."""
    g = torch.Generator().manual_seed(4)
    heads = {h: torch.randn(tuple(source.get_parameter(h).shape), generator=g) for h in HEADS}
    save_file(heads, str(tmp_path / "heads.safetensors"))
    m = build_model("aha-tiny", dtype="bf16", heads=tmp_path / "heads.safetensors")
    for h in HEADS:
        assert m.get_parameter(h).dtype == torch.float32 and torch.equal(m.get_parameter(h), heads[h]), h


def test_a_heads_file_inside_a_single_file_backbone_folder(source, tmp_path):
    """The plan read every *.safetensors of a folder, transformers only model.safetensors: a heads file
    put beside the backbone inside its folder made the load fail ('did not go as planned')."""
    write_llava_hf(source, tmp_path / "hf", shards=1)
    save_file({h: source.get_parameter(h).detach().clone() for h in HEADS}, str(tmp_path / "hf" / "heads.safetensors"))
    m = build_model("aha-tiny", weights=tmp_path / "hf", heads=tmp_path / "hf" / "heads.safetensors")
    for h in HEADS:
        assert torch.equal(m.get_parameter(h), source.get_parameter(h))


def test_a_preset_may_not_override_the_frame_settings_of_a_full_aha_checkpoint(tmp_path):
    """A project full checkpoint given as --weights with a preset: the preset's frame settings replaced
    the model's own (its heads trained on 16 tokens per frame, run on 49) without a word."""
    from models.build import load_preset
    from models.checkpoint import save_checkpoint

    m = build_model(load_preset("aha-tiny", frame_pool_stride=7), seed=3)
    save_checkpoint(m, tmp_path / "full")
    assert build_model(None, weights=tmp_path / "full").config.frame_pool_stride == 7
    with pytest.raises(ValueError, match=r"other frame settings than the model preset: frame_pool_stride: preset 4, weights 7"):
        build_model("aha-tiny", weights=tmp_path / "full")
    # a null system prompt is the default one: a checkpoint saying null and a preset naming the default
    # prompt agree (a ZeRO-3 run on a saved aha-tiny base was refused for it)
    from models.chat import DEFAULT_SYSTEM_PROMPT

    m = build_model(load_preset("aha-tiny", system_prompt=None), seed=3)
    save_checkpoint(m, tmp_path / "null_prompt")
    cfg = build_model(load_preset("aha-tiny", system_prompt=DEFAULT_SYSTEM_PROMPT), weights=tmp_path / "null_prompt").config
    assert cfg.system_prompt == DEFAULT_SYSTEM_PROMPT
    with pytest.raises(ValueError, match=r"system_prompt: preset 'another', weights None"):
        build_model(load_preset("aha-tiny", system_prompt="another"), weights=tmp_path / "null_prompt")


def test_a_preset_next_to_a_checkpoint_agrees_on_a_null_system_prompt_as_the_default():
    """check_preset_agrees (--model_config with --checkpoint) reads the frame settings as
    config_from_weights does: a null system prompt is the default one, another prompt differs."""
    from models.build import load_preset
    from models.chat import DEFAULT_SYSTEM_PROMPT
    from models.checkpoint import check_preset_agrees

    ckpt = load_preset("aha-tiny", system_prompt=None)
    check_preset_agrees(load_preset("aha-tiny", system_prompt=DEFAULT_SYSTEM_PROMPT), ckpt, "the checkpoint")
    with pytest.raises(ValueError, match=r"system_prompt: preset 'another', checkpoint None"):
        check_preset_agrees(load_preset("aha-tiny", system_prompt="another"), ckpt, "the checkpoint")
    with pytest.raises(ValueError, match=r"frame_pool_stride: preset 4, checkpoint 7"):
        check_preset_agrees("aha-tiny", load_preset("aha-tiny", frame_pool_stride=7), "the checkpoint")
