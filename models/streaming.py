"""The one online inference loop: frames and queries in time order in, per-frame records and
responses out. Used by the demo, live input and every benchmark driver.

Per frame: encode it (when it arrives), append its tokens to the KV cache under the cache policy,
read the three heads at the frame's last token, emit a record at once, and generate a response
when the decision rule fires. Nothing after the current frame is ever looked at, and the frames
themselves are not kept: memory is bounded by the cache policy.

Token order (``prompt_order``):
- ``training`` (default, what this project trains with): system turn, user query turn, then
  ``\\n<|im_start|>stream\\n`` and contiguous 49-token frames; a later query closes the stream turn.
- ``reference``: the released Aha! weights were evaluated with the query turn first
  (``\\n<|im_start|>user\\n{q}<|im_end|>\\n<|im_start|>stream\\n``), then the system turn immediately
  followed by frame 0, then frames (aha_reference.md 11.4). Use it to reproduce the paper.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator

import torch
from transformers import RepetitionPenaltyLogitsProcessor, SuppressTokensLogitsProcessor

from models.cache import CachePolicy, model_inv_freq
from models.chat import (IM_END, STREAM_GENERATION_PROMPT, STREAM_PROMPT, ChatTemplate, system_prompt_of,
                         system_turn, user_turn)
from models.decision import DecisionConfig, DecisionRule
from models.frames import to_pixel_values


@dataclass
class FrameEvent:
    time: float
    image: object = None  # uint8 [H, W, 3] letterboxed to the model's frame size
    embeds: torch.Tensor | None = None  # or precomputed frame tokens [tokens_per_frame, D]


@dataclass
class QueryEvent:
    time: float
    text: str


@dataclass
class FrameRecord:
    frame: int
    time: float
    informative: float
    relevance: float
    uncertainty: float  # raw log-variance from the uncertainty head (unclamped)
    cache_len: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ResponseRecord:
    time: float
    frame: int
    content: str
    n_tokens: int
    trigger_score: float
    token_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"role": "assistant", **asdict(self)}


@dataclass
class EngineConfig:
    system_prompt: str | None = None  # None: the model config's (models.chat.system_prompt_of)
    prompt_order: str = "training"  # or "reference"
    cache_policy: str = "sink"
    window: int = 2048
    sink_tokens: int = 32
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    generate: bool = True  # False: scores only (highlight detection / grounding)
    remove_assistant_turns: bool = False
    max_new_tokens: int = 128
    repetition_penalty: float | None = None
    # respond (and run the decision rule) before any query was asked; the reference did, which
    # makes no sense for question answering (MAGQA answers before the question)
    respond_before_query: bool = False

    def __post_init__(self):
        if self.prompt_order not in ("training", "reference"):
            raise ValueError(f"prompt_order must be 'training' or 'reference', got {self.prompt_order!r}")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")


class StreamingEngine:
    def __init__(self, model, tokenizer, cfg: EngineConfig | None = None):
        self.model = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.model.eval()
        self.cfg = cfg or EngineConfig()
        self.tpf = self.model.config.tokens_per_frame
        self.system_prompt = self.cfg.system_prompt if self.cfg.system_prompt is not None else system_prompt_of(self.model.config)
        self.frame_size = self.model.config.frame_size
        self.template = ChatTemplate(tokenizer, self.tpf, self.model.config.frame_placeholder)
        self.tokenizer = tokenizer
        self.eos_id = self.template.eos_id
        self.policy = CachePolicy(self.cfg.cache_policy, self.cfg.window, self.cfg.sink_tokens, model_inv_freq(self.model))
        self.rule = DecisionRule(self.cfg.decision)
        self.reset()

    @property
    def device(self) -> torch.device:
        return self.model.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.lm_head.weight.dtype

    def reset(self) -> None:
        self.policy.reset()
        self.rule.reset()
        self.frame_index = 0
        self.started = False  # system prompt fed
        self.stream_open = False
        self.queries_seen = 0
        self.pending: list[int] = []  # text tokens to feed before the next frame

    # ------------------------------------------------------------------ low level
    @torch.inference_mode()
    def _forward(self, ids: list[int], frame_embeds: torch.Tensor | None = None, logits: bool = False, evict: bool = True):
        n_frames = 0 if frame_embeds is None else frame_embeds.shape[0]
        ids = ids + self.template.frame_ids(n_frames)
        pos_start, _ = self.policy.prepare(len(ids), evict)
        input_ids = torch.tensor([ids], device=self.device)
        # position_ids are the RoPE angles; the causal mask comes from the cache's own length
        # (transformers >= 5.25 derives it there), which is where these tokens land
        pos = torch.arange(pos_start, pos_start + len(ids), device=self.device)
        return self.model(
            input_ids=input_ids,
            frame_embeds=frame_embeds,
            cache=self.policy.cache,
            position_ids=pos.unsqueeze(0),
            use_cache=True,
            logits_to_keep=1,
            compute_lm_logits=logits,
        )

    @torch.inference_mode()
    def encode_images(self, images) -> torch.Tensor:
        """uint8 frames [F, H, W, 3] (letterboxed) -> frame tokens [F, tokens_per_frame, D]."""
        px = to_pixel_values(images, self.frame_size, dtype=self.model.vision_dtype, device=self.device)
        return self.model.encode_frames(px)

    # ------------------------------------------------------------------ events
    def add_query(self, text: str) -> None:
        """Encode a user query now (it takes effect from the next frame on)."""
        if self.cfg.prompt_order == "reference" and not self.started:
            # reference: the query turn comes before the system prompt, and opens the stream turn
            self._forward(self.template.ids(user_turn(text)) + self.template.ids(STREAM_PROMPT))
            self.stream_open = True
        else:
            ids = self._take_prefix(close_for_query=True) + self.template.ids(user_turn(text))
            self._forward(ids)
            self.started = True
            self.stream_open = False
        self.queries_seen += 1
        if self.queries_seen == 1:
            self.policy.mark_sink()

    def _take_prefix(self, close_for_query: bool = False) -> list[int]:
        ids = list(self.pending)
        self.pending = []
        if not self.started:
            ids = self.template.ids(system_turn(self.system_prompt)) + ids
        if close_for_query and self.stream_open:
            ids += self.template.ids(IM_END)
        return ids

    def process_frame(self, time: float, frame_embeds: torch.Tensor) -> tuple[FrameRecord, ResponseRecord | None]:
        """Append one frame (its tokens [tokens_per_frame, D]) and read the heads."""
        if self.cfg.prompt_order == "reference" and not self.started:
            ids = self.template.ids(system_turn(self.system_prompt))  # no stream header after it
            self.started = True
            self.stream_open = True
        else:
            ids = self._take_prefix()
            self.started = True
        if not self.stream_open:
            ids += self.template.ids(STREAM_PROMPT)
            self.stream_open = True
        out = self._forward(ids, frame_embeds.unsqueeze(0) if frame_embeds.dim() == 2 else frame_embeds)
        info = torch.softmax(out.informative_logits[0, -1].float(), dim=-1)[1]
        vals = torch.stack([info, out.relevance[0, -1].float(), out.log_variance[0, -1].float()]).tolist()
        rec = FrameRecord(self.frame_index, float(time), vals[0], vals[1], vals[2], len(self.policy))
        self.frame_index += 1
        response = None
        heads = {"informative": rec.informative, "relevance": rec.relevance, "uncertainty": rec.uncertainty}
        asked = self.queries_seen > 0 or self.cfg.respond_before_query
        if self.cfg.generate and self.cfg.decision.enabled and asked and self.rule.update(rec.time, heads):
            response = self.respond(rec.time, trigger_score=self.rule.score(heads))
        return rec, response

    @torch.inference_mode()
    def respond(self, time: float, trigger_score: float = float("nan")) -> ResponseRecord:
        """Greedy generation of an assistant turn from the current context."""
        before = len(self.policy)
        out = self._forward(self.template.ids(STREAM_GENERATION_PROMPT), logits=True, evict=False)
        tokens: list[int] = []
        penalty = RepetitionPenaltyLogitsProcessor(self.cfg.repetition_penalty) if self.cfg.repetition_penalty else None
        # a generated frame placeholder would be fed back as a frame with no pixels behind it
        no_frame = SuppressTokensLogitsProcessor([self.model.config.image_token_index], device=out.logits.device)
        for _ in range(self.cfg.max_new_tokens):
            logits = out.logits[0, -1:].float()
            if penalty is not None and tokens:  # over this response's tokens
                logits = penalty(torch.tensor([tokens], device=logits.device), logits)
            logits = no_frame(torch.tensor([tokens], dtype=torch.long, device=logits.device), logits)
            nxt = int(torch.argmax(logits[0]))
            if nxt == self.eos_id:
                break
            tokens.append(nxt)
            out = self._forward([nxt], logits=True, evict=False)
        text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        if self.cfg.remove_assistant_turns:
            self.policy.truncate(before)  # the stream turn continues as if nothing was said
        else:
            self.pending = [self.eos_id]  # close the assistant turn; the next frame reopens the stream
            self.stream_open = False
        return ResponseRecord(float(time), self.frame_index - 1, text, len(tokens), trigger_score, tokens)

    # ------------------------------------------------------------------ loop
    def run(self, frames: Iterable, queries: Iterable[QueryEvent] = (), vision_batch: int = 1) -> Iterator:
        """Yield FrameRecord / ResponseRecord objects as they are produced.

        ``frames`` yields FrameEvent or (time, image) pairs. ``vision_batch`` > 1 encodes that many
        frames at once, only over frames the source has already delivered (for files: the records
        are the same, they only come a few frames later).
        """
        if vision_batch < 1:
            raise ValueError("vision_batch must be >= 1")
        queue = sorted(queries, key=lambda q: q.time)
        qi = 0
        batch: list[FrameEvent] = []

        def flush():
            nonlocal qi
            need = [e for e in batch if e.embeds is None]
            if need:
                enc = self.encode_images([e.image for e in need])
                for e, emb in zip(need, enc):
                    e.embeds = emb
            for e in batch:
                while qi < len(queue) and queue[qi].time <= e.time:
                    self.add_query(queue[qi].text)
                    qi += 1
                rec, resp = self.process_frame(e.time, e.embeds)
                yield rec
                if resp is not None:
                    yield resp
            batch.clear()

        try:
            for ev in frames:
                if not isinstance(ev, FrameEvent):
                    t, img = ev
                    ev = FrameEvent(float(t), img)
                batch.append(ev)
                if len(batch) >= vision_batch or (qi < len(queue) and queue[qi].time <= ev.time):
                    yield from flush()
        except Exception:
            # a source that breaks mid-stream: the frames it delivered are still scored, then it raises
            if batch:
                yield from flush()
            raise
        if batch:
            yield from flush()
