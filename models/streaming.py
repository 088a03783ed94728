"""The one online inference loop: frames and queries in time order in, per-frame records and
responses out. Used by the demo, live input and every benchmark driver.

Per frame: encode it (when it arrives), append its tokens to the KV cache under the cache policy
(``models.cache``), read the three heads at the frame's last token, emit a record at once, and
generate a response when the decision rule fires. Nothing after the current frame is ever looked at,
and the frames themselves are not kept: memory is bounded by the cache policy.

Hot path. Frames go to the device as uint8 (normalised there) and through the vision tower in
batches when several are available, optionally on a background thread (``models.stream_io``). The LM
step runs the native Qwen2 decoder on a preallocated cache (``models.kv_store``) with a mask built once
per step; the heads read only the last token of each frame; the only host round trip is reading the
records the caller consumes. In score-only runs ``frames_per_step`` = K frames share one LM forward
with scores equal to one-at-a-time streaming (the cache books the block as K single steps). A
frame-only step has static shapes and compiles (``compile``: ``torch.compile(fullgraph=True)``, CUDA
graphs on CUDA) without recompiling across frames or evictions.

Token order (``prompt_order``):
- ``training`` (default, what this project trains with): system turn, user query turn, then
  ``\\n<|im_start|>stream\\n`` and contiguous 49-token frames; a later query closes the stream turn.
- ``reference``: the released Aha! weights were evaluated with the query turn first
  (``\\n<|im_start|>user\\n{q}<|im_end|>\\n<|im_start|>stream\\n``), then the system turn immediately
  followed by frame 0, then frames (aha_reference.md 11.4). Use it to reproduce the paper.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator

import numpy as np
import torch
from transformers import RepetitionPenaltyLogitsProcessor, SuppressTokensLogitsProcessor

from models.cache import DEFAULT_MAX_PROTECTED, DEFAULT_POLICY, DEFAULT_SINK_TOKENS, DEFAULT_WINDOW, CachePolicy, Segment, effective_max_protected, effective_sink_tokens, effective_window, model_inv_freq, protected_layouts
from models.chat import GENERATION_PROMPT, IM_END, STREAM_GENERATION_PROMPT, STREAM_PROMPT, ChatTemplate, system_prompt_of, system_turn, user_turn
from models.decision import DecisionConfig, DecisionRule
from models.frames import to_pixel_values
from models.kv_store import KVStore
from models.stream_io import Uploader, encoded_frames

log = logging.getLogger(__name__)

# frames per LM forward for score-only benchmark runs: amortises the per-forward cost (8x fewer
# launches) while the extra ring slots it needs stay small (7 frames)
SCORE_FRAMES_PER_STEP = 8
def default_frames_per_step(generate: bool) -> int:
    """K for a run reading a file: one frame per forward when responses may be generated, else
    SCORE_FRAMES_PER_STEP (the scores are the same; only the work per forward changes)."""
    return 1 if generate else SCORE_FRAMES_PER_STEP


TEXT_ROOM = 32  # tokens of text (stream headers, a closing <|im_end|>) a frame step may carry


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
    cache_policy: str = DEFAULT_POLICY
    window: int = DEFAULT_WINDOW
    sink_tokens: int = DEFAULT_SINK_TOKENS
    max_protected: int = DEFAULT_MAX_PROTECTED  # system turn + queries the cache may protect
    frames_per_step: int = 1  # K frames per LM forward (score-only: generate=False)
    rotate: str = "protected"  # "window": classic full re-rotation at every eviction (reference / tests)
    merge_lora: bool = True  # merge LoRA adapters into the weights for inference (in place)
    compile: bool = False  # torch.compile the frame step (CUDA graphs on CUDA)
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
        if self.frames_per_step < 1:
            raise ValueError("frames_per_step must be >= 1")
        rp = self.repetition_penalty
        if rp is not None and not (isinstance(rp, (int, float)) and not isinstance(rp, bool) and np.isfinite(rp) and rp > 0):
            # 0 was read as "no penalty" without a word; a negative or NaN one failed at the first response
            raise ValueError(f"repetition_penalty must be None or a finite number > 0, got {rp!r}")
        if self.frames_per_step > 1 and self.generate:
            raise ValueError("frames_per_step > 1 is for score-only runs (generate=False): a response needs each frame's heads")

    def cache_record(self) -> dict:
        """The cache layout that runs (the policy's effective values, not settings it ignores)."""
        p = self.cache_policy
        return {"policy": p, "window": effective_window(p, self.window),
                "sink_tokens": effective_sink_tokens(p, self.sink_tokens),
                "max_protected": effective_max_protected(p, self.max_protected, self.sink_tokens),
                "frames_per_step": self.frames_per_step}


def inference_model(model, merge_lora: bool = True):
    """The plain model to run: a peft model's LoRA merged into its weights (in place), unless asked not
    to or the base is quantised (merging into 4-bit weights would change them)."""
    if not hasattr(model, "get_base_model"):
        return model
    base = model.get_base_model()
    quantised = getattr(base, "is_loaded_in_4bit", False) or getattr(base, "hf_quantizer", None) is not None
    if merge_lora and not quantised:
        return model.merge_and_unload()
    if merge_lora:
        log.info("LoRA kept unmerged: the base model is quantised")
    return base


def compiled_step(fn, policy: CachePolicy, backend: str | None, mode: str | None):
    """``torch.compile`` a frame step: fullgraph, static shapes, one graph per cache layout. The layouts
    a run can meet are the protected region's sizes; dynamo's recompile limit is raised to cover them
    (past it, dynamo would run the step eagerly without saying so in the results)."""
    layouts = len(protected_layouts(policy.max_protected)) or 1
    dyn = torch._dynamo.config
    if dyn.recompile_limit < layouts:
        log.info("raising torch._dynamo.config.recompile_limit %d -> %d (protected-region layouts up to max_protected=%d)",
                 dyn.recompile_limit, layouts, policy.max_protected)
        dyn.recompile_limit = layouts
    return torch.compile(fn, fullgraph=True, dynamic=False, backend=backend or "inductor", mode=mode)


def frame_heads(model, hidden: torch.Tensor) -> torch.Tensor:
    """The three heads read at frames' last tokens ``hidden`` [..., D] -> [..., 3] fp32: informative
    (probability of the "respond now" class), relevance, raw log-variance (both engines read them so)."""
    out = model.read_heads(hidden)
    info = torch.softmax(out["informative_logits"].float(), dim=-1)[..., 1]
    return torch.stack([info, out["relevance"].float(), out["log_variance"].float()], dim=-1)


def _config_eos_ids(model) -> frozenset:
    """The eos ids a model's generation config names (Qwen2-Instruct: <|im_end|> and <|endoftext|>)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    return frozenset([] if eos is None else [eos] if isinstance(eos, int) else eos)


class StreamingEngine:
    def __init__(self, model, tokenizer, cfg: EngineConfig | None = None):
        self.cfg = cfg or EngineConfig()
        self.model = inference_model(model, self.cfg.merge_lora)
        self.model.eval()
        mc = self.model.config
        self.tpf = mc.tokens_per_frame
        self.system_prompt = self.cfg.system_prompt if self.cfg.system_prompt is not None else system_prompt_of(mc)
        self.frame_size = mc.frame_size
        self.frame_resize = mc.frame_resize  # how a frame source scales frames into the canvas (data.video.letterbox)
        self.template = ChatTemplate(tokenizer, self.tpf, mc.frame_placeholder)
        self.template.checked(self.system_prompt, "the system prompt")
        self.tokenizer = tokenizer
        self.eos_id = self.template.eos_id  # closes an assistant turn in the cache
        self.stop_ids = self.template.stop_ids | _config_eos_ids(self.model)  # end a response (not fed back)
        self.lm = self.model.model.language_model
        attn = mc.text_config._attn_implementation
        if attn not in (None, "sdpa", "eager"):
            raise ValueError(f"the streaming engine needs sdpa or eager attention (its cache is a ring read through a mask), got {attn}")
        if getattr(self.lm, "has_sliding_layers", False):
            raise ValueError("sliding-window attention layers are not supported by the streaming cache")
        k = self.cfg.frames_per_step
        headroom = self.cfg.max_new_tokens + 16 if self.cfg.generate else 0
        self.policy = CachePolicy(self.cfg.cache_policy, self.cfg.window, self.cfg.sink_tokens, self.cfg.max_protected,
                                  copies=k, block_extra=(k - 1) * self.tpf, headroom=headroom, rotate=self.cfg.rotate,
                                  min_room=self.tpf + TEXT_ROOM)
        sys_len = len(self.template.ids(system_turn(self.system_prompt)))
        if self.policy.protects("system") and sys_len > self.policy.max_protected:
            # said now, not at the first frame of the first stream
            raise ValueError(f"max_protected={self.policy.max_protected} cannot hold the system turn ({sys_len} tokens), "
                             f"which the {self.cfg.cache_policy} cache protects")
        tc = mc.text_config
        head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
        self.store = KVStore(tc.num_hidden_layers, tc.num_key_value_heads, head_dim, self.dtype, self.device, model_inv_freq(self.model))
        self.uploader = Uploader(self.device)  # step indices and text ids (the LM's thread)
        self.frame_uploader = Uploader(self.device)  # pixels (possibly the vision worker's thread)
        self.rule = DecisionRule(self.cfg.decision)
        self._compiled = None
        self._vision_compiled = None
        if self.cfg.compile:
            self.compile()
        self.reset()

    @property
    def device(self) -> torch.device:
        return self.model.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.lm_head.weight.dtype

    def reset(self) -> None:
        self.policy.reset()
        self.store.reset()
        self.rule.reset()
        self.frame_index = 0
        self.started = False  # system prompt fed
        self.stream_open = False
        self.queries_seen = 0
        self.pending: list[int] = []  # text tokens to feed before the next frame

    def describe_cache(self) -> dict:
        """What the cache holds now: protected spans (system turn, queries), frames kept, text, responses."""
        return self.policy.describe()

    def compile(self, backend: str | None = None, mode: str | None = None) -> None:
        """Compile the frame-only step (static shapes: every slot is read, masked)."""
        if self.cfg.cache_policy == "unbounded":
            raise ValueError("compile needs a bounded cache (its shapes grow with an unbounded one)")
        if mode is None and backend is None and self.device.type == "cuda":
            mode = "reduce-overhead"  # CUDA graphs: one launch per step
        self.store.static = True
        self._compiled = compiled_step(self._frame_step, self.policy, backend, mode)
        # The vision tower of a live frame too: eager, SigLIP-so400m costs ~11 ms of kernel launches per
        # frame on an H200, more than the compiled LM step (instructions/performance.md). Only single
        # frames on the caller's thread use it (one static shape; CUDA graphs are not for worker threads).
        # Not fullgraph: once anything has asked the tower for output_hidden_states, transformers leaves
        # capture hooks on its layers that dynamo cannot trace; they cost graph breaks, not a crash.
        self._vision_compiled = torch.compile(self.model.encode_frames, fullgraph=False, dynamic=False,
                                              backend=backend or "inductor", mode=mode)

    # ------------------------------------------------------------------ device step
    def _step(self, x, slots, row_seq, row_group, pos, group_lo, shift, first_row: int, n_frames: int, logits: bool):
        if shift is not None:
            self.store.refresh(shift)
        mask = self.store.begin(slots, row_seq, row_group, group_lo)
        h = self.lm(inputs_embeds=x, attention_mask={"full_attention": mask}, position_ids=pos[None], cache=self.store,
                    use_cache=True).last_hidden_state
        heads = None
        if n_frames:  # the heads read only each frame's last token
            heads = frame_heads(self.model, h[:, first_row:: self.tpf][:, :n_frames])[0]
        return heads, (self.model.lm_head(h[:, -1:]) if logits else None)

    def _frame_step(self, x, slots, row_seq, row_group, pos, group_lo, shift):
        return self._step(x, slots, row_seq, row_group, pos, group_lo, shift, self.tpf - 1, x.shape[1] // self.tpf, False)[0]

    @torch.inference_mode()
    def _forward(self, text: list[tuple[str, list[int], dict]], frame_embeds: torch.Tensor | None = None,
                 logits: bool = False, evict: bool = True, transient: bool = False):
        """One LM forward: text pieces (kind, ids, meta), then frames [n, tokens_per_frame, D]."""
        n_frames = 0 if frame_embeds is None else frame_embeds.shape[0]
        segs = [Segment(kind, len(ids), meta) for kind, ids, meta in text if ids]
        segs += [Segment("frame", self.tpf, {"frame": self.frame_index + i}) for i in range(n_frames)]
        q = sum(s.n for s in segs)
        self.policy.grow_ring(q)
        plan = self.policy.plan(segs, frame_groups=n_frames > 1, evict=evict, transient=transient)
        heads, lg = self._execute(plan, [t for _, piece, _ in text for t in piece], frame_embeds, logits)
        if plan.new_protected:
            self.policy.last_shift = None  # the other copies of the new tokens are written at the next refresh
        return heads, lg, plan

    def _execute(self, plan, ids: list[int], frame_embeds: torch.Tensor | None, logits: bool):
        """The device part of one planned forward on this engine's own cache: (heads [n_frames, 3] or
        None, logits of the last token or None). A lane of ``models.multistream`` batches it instead."""
        n_frames = 0 if frame_embeds is None else frame_embeds.shape[0]
        self.store.ensure(self.policy.protected_size, self.policy.copies, self.policy.ring_size)
        self.store.attend, self.store.length = self.policy.attend_slots, len(self.policy)
        self.store.rotate_ring(plan.rotate_ring)
        parts = []
        if ids:
            parts.append(self.lm.embed_tokens(self.uploader.array(np.asarray(ids, dtype=np.int64))[None]))
        if n_frames:
            parts.append(frame_embeds.to(self.device, self.dtype).reshape(1, n_frames * self.tpf, -1))
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        idx = self.uploader.array(np.concatenate([plan.slots, plan.row_seq, plan.row_group, plan.pos, plan.group_lo]))
        q = len(plan.slots)
        idx = (idx[:q], idx[q: 2 * q], idx[2 * q: 3 * q], idx[3 * q: 4 * q], idx[4 * q:])  # one upload, five views
        shift = None if plan.shift is None else self.uploader.array(plan.shift)
        if self._compiled is not None and shift is None and self.policy.protected_size:
            shift = self.uploader.array(self.policy.last_shift)  # the compiled step always refreshes
        if self._compiled is not None and not ids and not logits and n_frames == self.policy.copies:
            heads, lg = self._compiled(x, *idx, shift), None
        else:
            heads, lg = self._step(x, *idx, shift, len(ids) + self.tpf - 1, n_frames, logits)
        if plan.new_protected:
            self.store.add_protected(plan.new_protected)
        return heads, lg

    @torch.inference_mode()
    def encode_images(self, images, compiled: bool = True) -> torch.Tensor:
        """uint8 frames [F, H, W, 3] (letterboxed) -> frame tokens [F, tokens_per_frame, D]. The uint8
        pixels go to the device and are normalised there (4x fewer bytes than fp32). ``compiled``: a
        single frame goes through the compiled tower when the engine is compiled (False on a worker
        thread)."""
        px = self.frame_uploader.frames(images)
        px = to_pixel_values(px, self.frame_size, dtype=self.model.vision_dtype, device=self.device)
        if compiled and self._vision_compiled is not None and px.shape[0] == 1:
            # a copy: a CUDA graph's output buffer is rewritten by its next replay
            return self._vision_compiled(px).clone()
        return self.model.encode_frames(px)

    # ------------------------------------------------------------------ events
    def add_query(self, text: str, time: float | None = None) -> None:
        """Encode a user query now (it takes effect from the next frame on). Its turn is protected
        from eviction under sink / dynamic_sink."""
        if not isinstance(text, str) or not text.strip():
            # an empty user turn would be protected and streamed as if it were the task
            raise ValueError(f"the query is empty: {text!r}")
        meta = {"index": self.queries_seen, "text": text, "time": time}
        turn = self.template.ids(user_turn(self.template.checked(text, "the query")))
        meta["ids"] = turn
        if self.cfg.prompt_order == "reference" and not self.started:
            # reference: the query turn comes before the system prompt, and opens the stream turn (a second
            # query before the first frame closes the empty stream turn the first one opened)
            close = [("text", self.template.ids(IM_END), {})] if self.stream_open else []
            self._forward(close + [("query", turn, meta), ("text", self.template.ids(STREAM_PROMPT), {})])
            self.stream_open = True
        else:
            self._forward(self._take_prefix(close_for_query=True) + [("query", turn, meta)])
            self.started = True
            self.stream_open = False
        self.queries_seen += 1

    def _take_prefix(self, close_for_query: bool = False) -> list:
        out = [("text", list(self.pending), {})] if self.pending else []
        self.pending = []
        if not self.started:
            sys_ids = self.template.ids(system_turn(self.system_prompt))
            out.insert(0, ("system", sys_ids, {"ids": sys_ids}))
        if close_for_query and self.stream_open:
            out.append(("text", self.template.ids(IM_END), {}))
        return out

    def _frame_prefix(self) -> list:
        if self.cfg.prompt_order == "reference" and not self.started:
            sys_ids = self.template.ids(system_turn(self.system_prompt))  # no stream header after it
            out = [("system", sys_ids, {"ids": sys_ids})]
            self.started = self.stream_open = True
        else:
            out = self._take_prefix()
            self.started = True
        if not self.stream_open:
            out.append(("text", self.template.ids(STREAM_PROMPT), {}))
            self.stream_open = True
        return out

    def process_frame(self, time: float, frame_embeds: torch.Tensor) -> tuple[FrameRecord, ResponseRecord | None]:
        """Append one frame (its tokens [tokens_per_frame, D]) and read the heads."""
        emb = frame_embeds.unsqueeze(0) if frame_embeds.dim() == 2 else frame_embeds
        rec = self.process_frames([time], emb)[0]
        response = None
        heads = {"informative": rec.informative, "relevance": rec.relevance, "uncertainty": rec.uncertainty}
        asked = self.queries_seen > 0 or self.cfg.respond_before_query
        if self.cfg.generate and self.cfg.decision.enabled and asked and self.rule.update(rec.time, heads):
            response = self.respond(rec.time, trigger_score=self.rule.score(heads))
        return rec, response

    def process_frames(self, times: list[float], frame_embeds: torch.Tensor) -> list[FrameRecord]:
        """Append frames [n, tokens_per_frame, D] in one forward (n <= frames_per_step) and read their
        heads; the scores equal feeding them one at a time. No responses (score-only)."""
        want = (self.tpf, self.model.config.text_config.hidden_size)
        if frame_embeds.dim() != 3 or tuple(frame_embeds.shape[1:]) != want:
            # said here, in the stream's own host code: a lane of models.multistream failed the batched
            # forward of every stream with it (one bad feature file stopped the whole run)
            raise ValueError(f"frame tokens must be [frames, {want[0]}, {want[1]}] (tokens per frame, hidden size), "
                             f"got {list(frame_embeds.shape)}")
        n = frame_embeds.shape[0]
        if n != len(times):
            raise ValueError(f"{len(times)} times for {n} frames")
        prefix = self._frame_prefix()
        # the stream's first sink_tokens tokens are protected too (sink): while the sink is not full, a
        # block's header and frames may fall into it (a sink longer than the system turn and queries)
        sink_open = self.policy.next_seq < self.policy.sink_tokens
        if n > 1 and (sink_open or any(kind in ("system", "query") for kind, _, _ in prefix)):
            # new protected tokens in a block are written to the first frame's copy only: the later
            # frames of the block would not see them (nor their own sink tokens); take it alone
            first = self._records(times[:1], *self._forward(prefix, frame_embeds[:1])[::2])
            return first + self.process_frames(times[1:], frame_embeds[1:])
        heads, _, plan = self._forward(prefix, frame_embeds)
        return self._records(times, heads, plan)

    def _records(self, times, heads, plan) -> list[FrameRecord]:
        vals = heads.tolist()  # the one host round trip: the caller consumes these numbers
        lengths = plan.frame_lengths
        out = []
        for t, v, length in zip(times, vals, lengths):
            out.append(FrameRecord(self.frame_index, float(t), v[0], v[1], v[2], length))
            self.frame_index += 1
        return out

    @torch.inference_mode()
    def respond(self, time: float, trigger_score: float = float("nan")) -> ResponseRecord:
        """Greedy generation of an assistant turn from the current context (``process_frame`` calls it
        after a frame; called directly, e.g. right after ``add_query``, the turn opens after whatever
        the context ends with: a stream turn is closed first, a closed turn is not closed twice)."""
        # what is due before it (the system turn of a fresh stream, a kept response's closing <|im_end|>):
        # part of the context, never undone with the response; it ends with a closed turn
        prefix = self._take_prefix()
        if prefix:
            self._forward(prefix)
            self.started = True
        header = STREAM_GENERATION_PROMPT if self.stream_open and not prefix else GENERATION_PROMPT
        before = len(self.policy)
        # a response that will be removed is never part of the sink (a sink not yet full, longer than the
        # system turn and queries, took its tokens as protected, and undoing them failed)
        undo = self.cfg.remove_assistant_turns
        _, lg, _ = self._forward([("response", self.template.ids(header), {"frame": self.frame_index - 1})],
                                 logits=True, evict=False, transient=undo)
        tokens: list[int] = []
        penalty = RepetitionPenaltyLogitsProcessor(self.cfg.repetition_penalty) if self.cfg.repetition_penalty else None
        # a generated frame placeholder would be fed back as a frame with no pixels behind it
        no_frame = SuppressTokensLogitsProcessor([self.model.config.image_token_index], device=lg.device)
        for _ in range(self.cfg.max_new_tokens):
            logits = lg[0, -1:].float()
            if penalty is not None and tokens:  # over this response's tokens
                logits = penalty(torch.tensor([tokens], device=logits.device), logits)
            logits = no_frame(torch.tensor([tokens], dtype=torch.long, device=logits.device), logits)
            nxt = int(torch.argmax(logits[0]))
            if nxt in self.stop_ids:  # <|endoftext|> too: the turn is closed with <|im_end|> all the same
                break
            tokens.append(nxt)
            _, lg, _ = self._forward([("response", [nxt], {"frame": self.frame_index - 1})], logits=True, evict=False,
                                     transient=undo)
        text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
        if self.cfg.remove_assistant_turns:
            self.store.clear(self.policy.truncate(before))  # the stream turn continues as if nothing was said
            self.store.length = len(self.policy)
        else:
            self.pending = [self.eos_id]  # close the assistant turn; the next frame reopens the stream
            self.stream_open = False
        return ResponseRecord(float(time), self.frame_index - 1, text, len(tokens), trigger_score, tokens)

    # ------------------------------------------------------------------ loop
    def run(self, frames: Iterable, queries: Iterable[QueryEvent] = (), vision_batch: int = 1,
            frames_per_step: int | None = None, background: bool | None = None) -> Iterator:
        """Yield FrameRecord / ResponseRecord objects as they are produced.

        ``frames`` yields FrameEvent or (time, image) pairs. ``vision_batch`` > 1 encodes that many
        frames at once (for files: the records are the same, they only come a few frames later);
        ``background`` (default: when vision_batch > 1) encodes them on a worker thread while the LM
        steps; ``frames_per_step`` (default: the config's) feeds that many frames per LM forward.
        """
        k = frames_per_step or self.cfg.frames_per_step
        if k > self.cfg.frames_per_step:
            raise ValueError(f"frames_per_step {k} exceeds the engine's {self.cfg.frames_per_step} (its cache layout)")
        background = vision_batch > 1 if background is None else background
        queue = sorted(queries, key=lambda q: q.time)
        bad = [q.time for q in queue if not np.isfinite(q.time)]
        if bad:  # a NaN time never compares <= a frame's: that query, and every one sorted after it, would be lost
            raise ValueError(f"query times must be finite seconds, got {bad}")
        qi = 0
        block: list[FrameEvent] = []

        def events():
            for ev in frames:
                yield ev if isinstance(ev, FrameEvent) else FrameEvent(float(ev[0]), ev[1])

        def flush():
            if not block:
                return
            # taken out first: frames whose step (or response) failed are not fed again by the flush
            # that follows an error (it fed the frame twice, after a half-generated response)
            todo = list(block)
            block.clear()
            if k == 1:
                rec, resp = self.process_frame(todo[0].time, todo[0].embeds)
                yield rec
                if resp is not None:
                    yield resp
            else:
                yield from self.process_frames([e.time for e in todo], torch.stack([e.embeds for e in todo]))

        try:
            encode = functools.partial(self.encode_images, compiled=not background)
            for ev in encoded_frames(events(), encode, vision_batch, background, self.device):
                if qi < len(queue) and queue[qi].time <= ev.time:
                    yield from flush()
                    while qi < len(queue) and queue[qi].time <= ev.time:
                        self.add_query(queue[qi].text, queue[qi].time)
                        qi += 1
                block.append(ev)
                if len(block) >= k:
                    yield from flush()
        except Exception:
            # a source that breaks mid-stream: the frames it delivered are still scored, then it raises
            yield from flush()
            raise
        yield from flush()
