"""Tokenizer set-up and the ChatML stream template (roles system / user / assistant / stream).

A conversation is rendered as a list of *pieces*; each text piece is tokenised on its own and
frames are inserted as ``tokens_per_frame`` placeholder ids. The streaming engine feeds exactly the
same pieces one at a time, so training and online inference see identical token sequences (the
reference tokenised whole strings in training but pieces online, and put the system prompt after
the query online). Rendered text, e.g. for a dense-captioning sample::

    <|im_start|>system\n{SYS}<|im_end|>\n<|im_start|>user\n{instruction}<|im_end|>
    \n<|im_start|>stream\n<image>*49*n1<|im_end|>\n<|im_start|>assistant\n{caption}<|im_end|>...
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
END_OF_TEXT = "<|endoftext|>"  # Qwen2's end of a document: its generation config stops on it too
PLACEHOLDER = "<image>"
IGNORE = -100

# The reference's system prompt, verbatim: the released LoRA weights were trained with exactly
# this text at the start of every conversation.
DEFAULT_SYSTEM_PROMPT = (
    "A multimodal AI assistant is helping users with some activities. Below is their "
    "conversation, interleaved with the list of video frames received by the assistant."
)

# transitions the online engine appends between turns (names follow the reference's template flags)
STREAM_PROMPT = f"\n{IM_START}stream\n"  # add_stream_prompt: open a stream turn
GENERATION_PROMPT = f"\n{IM_START}assistant\n"  # add_generation_prompt
STREAM_GENERATION_PROMPT = f"{IM_END}\n{IM_START}assistant\n"  # add_stream_generation_prompt


# ChatML / Qwen2 control-token forms (<|im_end|>, <|endoftext|>, ...) and the frame placeholders, for
# checks made before a tokenizer is loaded (the CLIs' argument checks)
_CONTROL_FORMS = re.compile(r"<\|[^<>|\s]{1,40}\|>|<image>|<video>")


def control_tokens_in(text: str, tokenizer=None) -> list[str]:
    """The strings in ``text`` that would be read as control tokens, not as text: the tokenizer's added
    tokens (chat markers, the frame placeholder) when it is given, else their ChatML / Qwen2 forms.
    A user's "<image>" would otherwise become a frame placeholder and "<|im_end|>" end the turn."""
    if tokenizer is not None:
        return sorted(t for t in tokenizer.get_added_vocab() if t in text)
    return sorted(set(_CONTROL_FORMS.findall(text)))


def check_no_control_tokens(text: str, what: str, tokenizer=None) -> str:
    found = control_tokens_in(text, tokenizer)
    if found:
        raise ValueError(f"{what} contains {', '.join(map(repr, found))}, which the tokenizer reads as a control "
                         "token (a frame placeholder, a turn marker), not as text; remove or rephrase it")
    return text


def system_prompt_of(config) -> str:
    """The system prompt a model was trained with: its config's ``system_prompt``, else the default."""
    text = getattr(config, "system_prompt", None)
    return DEFAULT_SYSTEM_PROMPT if text is None else text


def system_turn(text: str) -> str:
    return f"{IM_START}system\n{text}{IM_END}"


def user_turn(text: str, close_stream: bool = False) -> str:
    # close_stream == add_stream_query_prompt: a query arriving mid-stream first closes the stream turn
    return (IM_END if close_stream else "") + f"\n{IM_START}user\n{text}{IM_END}"


def assistant_header() -> str:
    return GENERATION_PROMPT


def load_tokenizer(path: str, placeholder: str = PLACEHOLDER, padding_side: str = "left"):
    """AutoTokenizer from a local folder, with the frame placeholder added as a special token (Qwen2:
    id 151646). Nothing is downloaded: a hub name or a missing folder is a clear error (without this
    transformers would try the hub, retrying for half a minute before failing)."""
    from transformers import AutoTokenizer

    if path is None or not Path(path).is_dir():
        raise FileNotFoundError(f"tokenizer folder {path!r} does not exist (a local folder with tokenizer.json / "
                                "tokenizer_config.json is needed; nothing is downloaded)")
    tok = AutoTokenizer.from_pretrained(path, padding_side=padding_side, local_files_only=True)
    return prepare_tokenizer(tok, placeholder)


def prepare_tokenizer(tok, placeholder: str = PLACEHOLDER):
    if placeholder not in tok.get_vocab():
        tok.add_special_tokens({"additional_special_tokens": [placeholder]})
    for special in (IM_START, IM_END):
        if special not in tok.get_vocab():
            tok.add_special_tokens({"additional_special_tokens": [special]})
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or IM_END
    return tok


@dataclass
class Piece:
    """A text fragment (tokenised alone) or a run of ``n_frames`` frames."""

    text: str = ""
    n_frames: int = 0
    learn: bool = False  # LM labels on this text (assistant content + closing <|im_end|>)
    frame_informative: Sequence[int] | None = None  # one label per frame (or -100)
    frame_relevance: Sequence[float] | None = None  # one label per frame (or -100)


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # pre-shifted LM labels: labels[p] = input_ids[p + 1] where learned
    informative_labels: list[int]  # at the last placeholder of each frame
    relevance_labels: list[float]
    frame_last_positions: list[int] = field(default_factory=list)
    text: str = ""

    def tensors(self) -> dict:
        import torch

        return {
            "input_ids": torch.tensor(self.input_ids, dtype=torch.long),
            "labels": torch.tensor(self.labels, dtype=torch.long),
            "informative_labels": torch.tensor(self.informative_labels, dtype=torch.long),
            "relevance_labels": torch.tensor(self.relevance_labels, dtype=torch.float),
        }


class ChatTemplate:
    """Builds pieces from messages and encodes them with any HF tokenizer."""

    def __init__(self, tokenizer, tokens_per_frame: int, placeholder: str = PLACEHOLDER):
        self.tok = tokenizer
        self.tokens_per_frame = tokens_per_frame
        self.placeholder = placeholder
        self.placeholder_id = tokenizer.convert_tokens_to_ids(placeholder)
        if self.placeholder_id is None or self.placeholder_id == tokenizer.unk_token_id:
            raise ValueError(f"tokenizer has no {placeholder!r} token; call prepare_tokenizer first")
        self.eos_id = tokenizer.convert_tokens_to_ids(IM_END)
        self.stop_ids = frozenset(self._stop_ids())
        self._cache: dict[str, list[int]] = {}

    def _stop_ids(self) -> set[int]:
        """The ids that end a generated turn: <|im_end|>, and the tokenizer's eos and <|endoftext|> when it
        has them (Qwen2's generation config stops on both <|im_end|> and <|endoftext|>; a model that
        emits <|endoftext|> would otherwise run on to max_new_tokens and keep the garbage as its turn)."""
        out = {self.eos_id}
        for t in (getattr(self.tok, "eos_token", None), END_OF_TEXT):
            # looked up as the placeholder is (get_vocab built the whole 150k-entry dict: 0.25 s a template)
            i = None if t is None else self.tok.convert_tokens_to_ids(t)
            if i is not None and i != self.tok.unk_token_id:
                out.add(i)
        return out

    def ids(self, text: str) -> list[int]:
        """Token ids of one piece (memoised: headers and the system prompt repeat constantly)."""
        got = self._cache.get(text)
        if got is None:
            got = self.tok(text, add_special_tokens=False).input_ids
            if len(self._cache) < 4096:
                self._cache[text] = got
        return list(got)

    def checked(self, text: str, what: str) -> str:
        """``text`` if it holds no control token of this tokenizer, else a ValueError naming it."""
        return check_no_control_tokens(text, what, self.tok)

    def frame_ids(self, n_frames: int) -> list[int]:
        return [self.placeholder_id] * (n_frames * self.tokens_per_frame)

    # ------------------------------------------------------------ messages -> pieces
    def pieces(self, messages: Iterable[dict], add_generation_prompt: bool = False) -> list[Piece]:
        """messages: dicts with role in {system, user, assistant, stream}.

        stream: ``num_frames``, optional ``informative`` / ``relevance`` lists (one per frame).
        assistant: ``content``, optional ``learn`` (default True).
        """
        out: list[Piece] = []
        last_role = None
        for i, m in enumerate(messages):
            role = m["role"]
            if role == "system":
                if i != 0:
                    raise ValueError("the system message must come first")
                out.append(Piece(system_turn(self.checked(m["content"], "the system prompt"))))
            elif role == "user":
                out.append(Piece(user_turn(self.checked(m["content"], "a user turn"))))
            elif role == "assistant":
                out.append(Piece(GENERATION_PROMPT))
                out.append(Piece(self.checked(m["content"], "an assistant turn") + IM_END, learn=bool(m.get("learn", True))))
            elif role == "stream":
                n = int(m["num_frames"])
                if n <= 0:
                    continue
                out.append(Piece(STREAM_PROMPT))
                out.append(
                    Piece(
                        n_frames=n,
                        frame_informative=_check_len(m.get("informative"), n, "informative"),
                        frame_relevance=_check_len(m.get("relevance"), n, "relevance"),
                    )
                )
                out.append(Piece(IM_END))
            else:
                raise ValueError(f"unknown role {role!r}")
            last_role = role
        if add_generation_prompt and last_role != "assistant":
            out.append(Piece(GENERATION_PROMPT))
        return out

    def render(self, pieces: Sequence[Piece]) -> str:
        return "".join(p.text if not p.n_frames else self.placeholder * (p.n_frames * self.tokens_per_frame) for p in pieces)

    # ------------------------------------------------------------ pieces -> ids and labels
    def encode(self, pieces: Sequence[Piece], with_text: bool = False) -> Encoded:
        ids: list[int] = []
        learn: list[bool] = []
        info: list[int] = []
        rel: list[float] = []
        frame_last: list[int] = []
        for p in pieces:
            if p.n_frames:
                t = self.tokens_per_frame
                start = len(ids)
                ids += self.frame_ids(p.n_frames)
                learn += [False] * (p.n_frames * t)
                info += [IGNORE] * (p.n_frames * t)
                rel += [float(IGNORE)] * (p.n_frames * t)
                for f in range(p.n_frames):
                    pos = start + (f + 1) * t - 1  # heads are read at the frame's last token
                    frame_last.append(pos)
                    if p.frame_informative is not None:
                        info[pos] = int(p.frame_informative[f])
                    if p.frame_relevance is not None:
                        rel[pos] = float(p.frame_relevance[f])
            else:
                piece_ids = self.ids(p.text)
                ids += piece_ids
                learn += [p.learn] * len(piece_ids)
                info += [IGNORE] * len(piece_ids)
                rel += [float(IGNORE)] * len(piece_ids)
        # pre-shift: position p predicts token p + 1
        labels = [IGNORE] * len(ids)
        for q in range(1, len(ids)):
            if learn[q]:
                labels[q - 1] = ids[q]
        return Encoded(ids, labels, info, rel, frame_last, self.render(pieces) if with_text else "")


def _check_len(values, n: int, name: str):
    if values is None:
        return None
    if len(values) != n:
        raise ValueError(f"stream turn has {n} frames but {len(values)} {name} labels")
    return list(values)
