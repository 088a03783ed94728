"""The ChatML stream template with the real Qwen2 tokenizer, learn ranges and frame labels."""
import pytest

from data.prompts import SYSTEM_PROMPT
from models.chat import GENERATION_PROMPT, STREAM_GENERATION_PROMPT, STREAM_PROMPT, ChatTemplate, prepare_tokenizer

B, E = "<|im_start|>", "<|im_end|>"


def _dvc_messages():
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "Please concisely narrate the video in real time."},
        {"role": "stream", "num_frames": 2, "informative": [0, 1]},
        {"role": "assistant", "content": "A man slices an onion."},
        {"role": "stream", "num_frames": 1, "informative": [1], "relevance": [0.75]},
        {"role": "assistant", "content": "He adds it to the pan.", "learn": False},
    ]


def test_placeholder_is_151646_with_the_real_qwen2_tokenizer(qwen2_tokenizer):
    assert qwen2_tokenizer.convert_tokens_to_ids("<image>") == 151646
    assert qwen2_tokenizer.convert_tokens_to_ids(E) == 151645
    assert qwen2_tokenizer("Hello world", add_special_tokens=False).input_ids == [9707, 1879]


def test_rendered_text_matches_the_reference_template(qwen2_tokenizer):
    t = ChatTemplate(qwen2_tokenizer, tokens_per_frame=49)
    text = t.render(t.pieces(_dvc_messages()))
    img = "<image>" * 49
    want = (f"{B}system\n{SYSTEM_PROMPT}{E}\n{B}user\nPlease concisely narrate the video in real time.{E}"
            f"\n{B}stream\n{img * 2}{E}\n{B}assistant\nA man slices an onion.{E}"
            f"\n{B}stream\n{img}{E}\n{B}assistant\nHe adds it to the pan.{E}")
    assert text == want
    # the reference's online transition strings
    assert STREAM_PROMPT == f"\n{B}stream\n"
    assert STREAM_GENERATION_PROMPT == f"{E}\n{B}assistant\n"
    assert GENERATION_PROMPT == f"\n{B}assistant\n"
    assert SYSTEM_PROMPT.startswith("A multimodal AI assistant is helping users with some activities.")


def test_piecewise_ids_equal_whole_string_tokenisation(qwen2_tokenizer):
    t = ChatTemplate(qwen2_tokenizer, tokens_per_frame=49)
    pieces = t.pieces(_dvc_messages())
    enc = t.encode(pieces, with_text=True)
    whole = qwen2_tokenizer(enc.text, add_special_tokens=False).input_ids
    assert enc.input_ids == whole


def test_labels_are_pre_shifted_learn_ranges_and_frame_labels_sit_on_last_placeholder(qwen2_tokenizer):
    t = ChatTemplate(qwen2_tokenizer, tokens_per_frame=49)
    enc = t.encode(t.pieces(_dvc_messages()))
    ids, labels = enc.input_ids, enc.labels
    learned = [labels[p] for p in range(len(ids)) if labels[p] != -100]
    # only the first (learn=True) caption and its closing <|im_end|> are learned
    assert qwen2_tokenizer.decode(learned) == "A man slices an onion." + E
    for p in range(len(ids) - 1):
        if labels[p] != -100:
            assert labels[p] == ids[p + 1]
    assert len(enc.frame_last_positions) == 3
    placeholders = [p for p, i in enumerate(ids) if i == 151646]
    assert enc.frame_last_positions == placeholders[48::49]
    info = {p: enc.informative_labels[p] for p in range(len(ids)) if enc.informative_labels[p] != -100}
    assert info == dict(zip(enc.frame_last_positions, [0, 1, 1]))
    rel = {p: enc.relevance_labels[p] for p in range(len(ids)) if enc.relevance_labels[p] != -100}
    assert rel == {enc.frame_last_positions[2]: 0.75}


def test_template_errors_are_clear(qwen2_tokenizer):
    t = ChatTemplate(qwen2_tokenizer, tokens_per_frame=49)
    with pytest.raises(ValueError, match="labels"):
        t.pieces([{"role": "stream", "num_frames": 2, "informative": [1]}])
    with pytest.raises(ValueError, match="role"):
        t.pieces([{"role": "narrator", "content": "x"}])


def test_any_hf_tokenizer_gets_the_placeholder(qwen2_tokenizer, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz .\n")}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="."))
    raw.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok = prepare_tokenizer(PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="."))
    t = ChatTemplate(tok, tokens_per_frame=4)
    enc = t.encode(t.pieces([{"role": "user", "content": "hi"}, {"role": "stream", "num_frames": 1}]))
    assert enc.input_ids.count(t.placeholder_id) == 4


def test_load_tokenizer_never_goes_to_the_hub(tmp_path, monkeypatch):
    """A hub name, None or a missing folder fails at once with the path named (no download attempt)."""
    from models.chat import load_tokenizer

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the guard must not rely on the test env
    for bad in (None, "Qwen/Qwen2-7B-Instruct", str(tmp_path / "missing")):
        with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
            load_tokenizer(bad)


def test_control_tokens_in_user_text_are_refused(qwen2_tokenizer):
    """Text the tokenizer would read as control tokens: "<image>" a frame placeholder, "<|im_end|>" the
    end of the turn. Found with the tokenizer's own added tokens, and (before a tokenizer is loaded, for
    the CLIs' argument checks) by their ChatML / Qwen2 forms."""
    from models.chat import control_tokens_in

    tmpl = ChatTemplate(qwen2_tokenizer, 49)
    assert control_tokens_in("a dog <image> jumps<|im_end|>", qwen2_tokenizer) == ["<image>", "<|im_end|>"]
    assert control_tokens_in("a <b>dog</b> | jumps", qwen2_tokenizer) == []
    assert control_tokens_in("x <|vision_start|> <video> <|im_start|>") == ["<video>", "<|im_start|>", "<|vision_start|>"]
    assert control_tokens_in("a <b>dog</b> <|> | 3 < 4 > 2") == []
    placeholder = tmpl.ids("<image>")
    assert placeholder == [tmpl.placeholder_id]  # why it matters: the text would become a frame slot
    with pytest.raises(ValueError, match=r"a user turn contains '<image>', which the tokenizer reads as a control token"):
        tmpl.pieces([{"role": "user", "content": "what is <image>?"}])
    with pytest.raises(ValueError, match=r"an assistant turn contains '<\|im_end\|>'"):
        tmpl.pieces([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a<|im_end|>b"}])


def test_the_engine_refuses_a_query_with_control_tokens(qwen2_tokenizer):
    from models.build import build_model
    from models.streaming import EngineConfig, StreamingEngine

    eng = StreamingEngine(build_model("aha-tiny", seed=0).eval(), qwen2_tokenizer, EngineConfig(generate=False))
    with pytest.raises(ValueError, match=r"the query contains '<\|endoftext\|>'"):
        eng.add_query("stop here<|endoftext|>")
    assert eng.queries_seen == 0 and len(eng.policy) == 0  # nothing was fed
    eng.add_query("a dog jumps")
    assert eng.queries_seen == 1
    with pytest.raises(ValueError, match="the system prompt contains"):
        StreamingEngine(build_model("aha-tiny", seed=0).eval(), qwen2_tokenizer,
                        EngineConfig(generate=False, system_prompt="You watch <video> frames."))
