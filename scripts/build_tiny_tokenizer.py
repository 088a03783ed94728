#!/usr/bin/env python
"""Build the small byte-level BPE tokenizer of the embedded default model (aha-tiny-synth).

    python scripts/build_tiny_tokenizer.py [--out configs/tokenizers/aha-tiny-synth] [--vocab_size 512]

The corpus is every text the synthetic benchmark and the project's prompts can produce: the
system prompt, the chat-template headers, the query templates and dense-captioning instructions of
``data/prompts.py``, and every synthetic query, caption and MAGQA question (all kind x colour x
motion combinations of ``data/synthetic.py``). The special tokens come first, in a fixed order,
so their ids never change: ``<|endoftext|>`` 0, ``<|im_start|>`` 1, ``<|im_end|>`` 2, ``<image>`` 3
(the frame placeholder, the model's ``image_token_index``). Byte-level pre-tokenisation keeps every
string encodable (unseen words fall back to bytes).

Deterministic: the corpus is built in a fixed order and BPE training is single-threaded and
tie-broken by the library, so the same inputs give a byte-identical ``tokenizer.json`` (the test
rebuilds it and compares).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>")
DEFAULT_OUT = REPO / "configs" / "tokenizers" / "aha-tiny-synth"
DEFAULT_VOCAB = 512


def corpus() -> list[str]:
    """Every prompt, query, caption and question text, in a fixed order."""
    from data.prompts import DVC_INSTRUCTIONS, QUERY_TEMPLATES, SYSTEM_PROMPT
    from data.synthetic import COLOURS, KINDS, MOTION_VERB, MOTIONS

    texts = [SYSTEM_PROMPT, "system\n", "user\n", "assistant\n", "stream\n", "\n"]
    texts += list(DVC_INSTRUCTIONS)
    for kind in KINDS:
        texts += [f"What are the {kind}s doing?"]
        for colour in COLOURS:
            for motion in MOTIONS:
                query = f"a {colour} {kind} {motion}"
                texts += [query, f"A {colour} {kind} {motion}."]
                texts += [t.replace("{query}", query) for t in QUERY_TEMPLATES]
    texts += [f"What are the {c} shapes doing?" for c in COLOURS]
    texts += [f"Which shapes {MOTION_VERB[m]}?" for m in MOTIONS]
    return texts


def build(vocab_size: int = DEFAULT_VOCAB):
    """A ``tokenizers.Tokenizer`` trained on ``corpus()``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer=trainer)
    for i, s in enumerate(SPECIALS):
        if tok.token_to_id(s) != i:
            raise RuntimeError(f"special token {s!r} got id {tok.token_to_id(s)}, expected {i}")
    return tok


def write(out: str | os.PathLike = DEFAULT_OUT, vocab_size: int = DEFAULT_VOCAB) -> Path:
    """Write tokenizer.json + tokenizer_config.json (loadable with transformers.AutoTokenizer)."""
    from utils.io import atomic_write_json, atomic_write_text

    # a single-threaded Rust trainer: merge ties are then broken the same way on every run
    os.environ["RAYON_NUM_THREADS"] = "1"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = build(vocab_size)
    atomic_write_text(out / "tokenizer.json", tok.to_str(pretty=True) + "\n")
    atomic_write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "TokenizersBackend",
        "backend": "tokenizers",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<image>"],
        "model_max_length": 32768,
        "clean_up_tokenization_spaces": False,
    })
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--vocab_size", type=int, default=DEFAULT_VOCAB)
    args = ap.parse_args(argv)
    out = write(args.out, args.vocab_size)
    from tokenizers import Tokenizer

    print(f"wrote {out} ({Tokenizer.from_file(str(out / 'tokenizer.json')).get_vocab_size()} tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
