"""The streaming engine's command-line flags, shared by every driver (``test.live_infer``, the web
demo, ``test.run_benchmark``): adding them to a parser, checking them before a model loads, and
turning them into the loaded model, the engine configuration, the fusion parameters, the frame
source of pre-extracted features and a degradation schedule."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from models.inference_settings import InferenceSettings
from utils.io import read_json

log = logging.getLogger("engine_args")
DEFAULTS = InferenceSettings()  # the project defaults, shown in --help


def add_engine_args(ap: argparse.ArgumentParser) -> None:
    """Model, cache, decision and fusion flags shared by every online driver."""
    g = ap.add_argument_group("model")
    g.add_argument("--model_config", default=None,
                   help="preset name in configs/model or a preset .json; with --checkpoint it must agree with the checkpoint "
                        "(default: the checkpoint's own config; without a checkpoint, the weights' sizes, else aha-tiny)")
    g.add_argument("--weights", default=None, help="local LLaVA-OneVision backbone folder (llava-hf or lmms-lab layout)")
    g.add_argument("--checkpoint", default=None, help="an Aha! checkpoint folder (adapter or merged) or a released adapter")
    g.add_argument("--heads", default=None, help="safetensors file with the three heads, for a bare --weights backbone or a released adapter without them")
    g.add_argument("--tokenizer", default=None)
    g.add_argument("--device", default="cpu")
    g.add_argument("--dtype", default=None, choices=["fp32", "bf16", "fp16"], help="default: fp32 on CPU, bf16 on CUDA (heads stay fp32)")
    g.add_argument("--load_in_4bit", action="store_true", help="bitsandbytes 4-bit weights (CUDA; the optional bitsandbytes package)")
    g.add_argument("--attn", default=None, help="sdpa (default), flash_attention_2, eager")
    g = ap.add_argument_group("stream (default: the checkpoint's inference settings, else the project's)")
    g.add_argument("--fps", type=float, default=None, help=f"frames per second fed to the model (project default {DEFAULTS.fps})")
    g.add_argument("--max_frames", type=int, default=None)
    g.add_argument("--prompt_order", default=None, choices=["training", "reference"], help=f"(project default {DEFAULTS.prompt_order})")
    g.add_argument("--cache_policy", default=None, choices=["unbounded", "sink", "dynamic_sink", "sliding", "sink_reference"],
                   help=f"sink_reference: the reference's SinkCache quirks, to reproduce the released numbers (project default {DEFAULTS.cache_policy})")
    g.add_argument("--window", type=int, default=None, help=f"cache window in tokens (project default {DEFAULTS.window})")
    g.add_argument("--sink_tokens", type=int, default=None, help=f"(project default {DEFAULTS.sink_tokens})")
    g.add_argument("--vision_batch", type=int, default=1,
                   help=">1 only for files: encode frames in batches, on a background thread while the LM steps")
    g.add_argument("--features", default=None,
                   help="feature cache folder (scripts/extract_features.py --kind frame_embeds, same model and fps): "
                        "stream the cached frame tokens instead of decoding and encoding the video")
    g.add_argument("--max_protected", type=int, default=None,
                   help="tokens the cache may protect from eviction (system turn + queries; sink / dynamic_sink)")
    g.add_argument("--frames_per_step", type=int, default=None,
                   help="frames per LM forward, files only (default: 8 with --no_generate, else 1; scores equal one at a time)")
    g.add_argument("--compile", action="store_true", help="torch.compile the frame step (CUDA graphs on CUDA)")
    g.add_argument("--no_merge_lora", action="store_true", help="keep LoRA adapters unmerged at inference (slower)")
    g = ap.add_argument_group("responses")
    g.add_argument("--score_heads", default="informative,relevance")
    g.add_argument("--threshold", type=float, default=None, help="respond when the head sum exceeds this")
    g.add_argument("--cumulative_threshold", type=float, default=None, help="respond when the running sum exceeds this (then reset)")
    g.add_argument("--min_interval", type=float, default=0.0, help="seconds between responses")
    g.add_argument("--uncertainty_gate", type=float, default=None, help="postpone while clamped log-variance exceeds this")
    g.add_argument("--max_wait_frames", type=int, default=3)
    g.add_argument("--relevance_gate", type=float, default=None,
                   help="query prompts: respond only while the mean relevance of the last --relevance_gate_frames "
                        "frames is at least this (models/decision.py)")
    g.add_argument("--relevance_gate_frames", type=int, default=4)
    g.add_argument("--no_generate", action="store_true", help="scores only, never generate text")
    g.add_argument("--respond_before_query", action="store_true", help="allow responses before the first query (the reference did)")
    g.add_argument("--remove_assistant_turns", action="store_true")
    g.add_argument("--max_new_tokens", type=int, default=64)
    g.add_argument("--repetition_penalty", type=float, default=None)
    g = ap.add_argument_group("fusion and highlights")
    g.add_argument("--alpha", type=float, default=None)
    g.add_argument("--beta", type=float, default=None)
    g.add_argument("--epsilon", type=float, default=None)
    g.add_argument("--tau", type=float, default=None)
    g.add_argument("--uncertainty_kind", default=None, choices=[None, "logvar", "variance"])
    g.add_argument("--params_file", default=None, help="fusion parameters JSON (from tuning), with --params_key")
    g.add_argument("--params_key", default=None)
    g.add_argument("--savgol_window", type=int, default=15)
    g.add_argument("--savgol_polyorder", type=int, default=3)
    g.add_argument("--peak_distance", type=float, default=10.0, help="seconds between highlights")
    g.add_argument("--peak_prominence", type=float, default=0.02)


SETTING_FLAGS = ("fps", "cache_policy", "window", "sink_tokens", "prompt_order")
ATTN_IMPLEMENTATIONS = ("sdpa", "flash_attention_2", "eager")


def check_engine_args(args) -> None:
    """Refuse bad engine flags before any model is loaded (ValueError / FileNotFoundError: one line,
    exit 2). Ranges and finiteness of every number, the paths named, the device."""
    from utils.cli import check_number

    for flag, kw in (("fps", {"above": 0}), ("max_frames", {"minimum": 1, "integer": True}),
                     ("window", {"minimum": 1, "integer": True}), ("sink_tokens", {"minimum": 0, "integer": True}),
                     ("vision_batch", {"minimum": 1, "integer": True}), ("threshold", {}), ("cumulative_threshold", {}),
                     ("min_interval", {"minimum": 0}), ("uncertainty_gate", {}), ("relevance_gate", {}),
                     ("relevance_gate_frames", {"minimum": 1, "integer": True}),
                     ("max_wait_frames", {"minimum": 0, "integer": True}), ("max_new_tokens", {"minimum": 1, "integer": True}),
                     ("repetition_penalty", {"above": 0}), ("alpha", {}), ("beta", {}), ("epsilon", {}), ("tau", {}),
                     ("savgol_window", {"minimum": 1, "integer": True}), ("savgol_polyorder", {"minimum": 0, "integer": True}),
                     ("peak_distance", {"above": 0}), ("peak_prominence", {"minimum": 0}),
                     ("max_protected", {"minimum": 0, "integer": True}), ("frames_per_step", {"minimum": 1, "integer": True})):
        check_number(getattr(args, flag, None), f"--{flag}", **kw)
    if (getattr(args, "frames_per_step", None) or 1) > 1 and not args.no_generate:
        raise ValueError("--frames_per_step > 1 is for score-only runs (--no_generate): a response needs each frame's heads")
    if args.window is not None and args.sink_tokens is not None and args.sink_tokens >= args.window:
        raise ValueError(f"--sink_tokens ({args.sink_tokens}) must be smaller than --window ({args.window})")
    w = args.savgol_window - (1 - args.savgol_window % 2)  # the filter uses an odd window
    if args.savgol_polyorder >= w:
        raise ValueError(f"--savgol_polyorder ({args.savgol_polyorder}) must be smaller than the (odd) --savgol_window "
                         f"({w}): the scores would be left unsmoothed")
    if args.attn is not None and args.attn not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"--attn must be one of {ATTN_IMPLEMENTATIONS}, got {args.attn!r}")
    from models.decision import DecisionConfig

    DecisionConfig(score_heads=args.score_heads)  # names checked
    for flag in ("weights", "checkpoint", "features"):
        value = getattr(args, flag, None)
        if value is not None and not Path(value).is_dir():
            raise FileNotFoundError(f"--{flag} {value}: no such folder")
    if args.checkpoint is not None:
        from models.checkpoint import META, is_released_adapter

        if not (Path(args.checkpoint, META).is_file() or is_released_adapter(args.checkpoint)):
            raise FileNotFoundError(f"--checkpoint {args.checkpoint} is not an Aha! checkpoint (no {META}) nor a released "
                                    "adapter (adapter_config.json + adapter_model.safetensors)")
    _check_cache_flags_against_the_model(args)
    for flag in ("heads", "params_file"):
        value = getattr(args, flag, None)
        if value is not None and not Path(value).is_file():
            raise FileNotFoundError(f"--{flag} {value}: no such file")
    if args.params_key is not None and args.params_file is None:
        raise ValueError("--params_key needs --params_file")
    if args.params_file:
        fusion_params(args)  # the file parses and holds the key
    if args.model_config is not None:
        from models.build import load_preset

        load_preset(args.model_config)
    from models.inference import check_device, resolve_tokenizer_dir

    dev = check_device(args.device)
    if args.load_in_4bit and dev.type != "cuda":
        raise ValueError("--load_in_4bit needs a CUDA device (--device cuda) and the optional bitsandbytes package")
    resolve_tokenizer_dir(args.tokenizer, args.checkpoint, args.weights)  # the one a run would use exists
    if getattr(args, "features", None) and getattr(args, "degrade", None):
        raise ValueError("--features streams the cached (clean) frames: it cannot be combined with --degrade")


def _check_cache_flags_against_the_model(args) -> None:
    """Cache flags against the policy / frame size the run will use, before the model loads: a
    --window that cannot hold one frame is refused, --sink_tokens for a policy without sink tokens
    is said (it does nothing). The policy and tokens per frame come from the flags, else the
    checkpoint's inference settings, else the preset."""
    from models.cache import DEFAULT_POLICY, DEFAULT_SINK_TOKENS, DEFAULT_WINDOW, SINK_POLICIES, sink_fits, window_holds_frame

    carried = None
    if args.checkpoint is not None:
        from models.checkpoint import META, config_of, inference_settings

        carried = inference_settings(args.checkpoint)
        if Path(args.checkpoint, META).is_file():
            config_of(args.checkpoint)  # its model config, read as the load will (a bad value named here)
    policy = args.cache_policy or (carried.cache_policy if carried is not None else DEFAULT_POLICY)
    if args.sink_tokens is not None and policy not in SINK_POLICIES:
        # said, not refused: the benchmark scripts pass SINK_TOKENS whatever CACHE_POLICY is, and a
        # run written that way must stay resumable; the records give the sink the policy keeps (0)
        log.warning("--sink_tokens %d does nothing under the %s cache policy (from %s), which has no sink tokens; "
                    "recorded as 0", args.sink_tokens, policy, "--cache_policy" if args.cache_policy else "the checkpoint")
    tpf = carried.tokens_per_frame if carried is not None else None
    if tpf is None and args.model_config is not None:
        from models.build import load_preset

        tpf = load_preset(args.model_config).tokens_per_frame
    if args.window is not None and not window_holds_frame(policy, args.window, tpf):
        raise ValueError(f"--window {args.window} cannot hold one frame ({tpf} tokens) and its turn header")
    if carried is not None and args.window is None and not window_holds_frame(policy, carried.window, tpf):
        # the checkpoint's own window: the run would stop at its first frame, after loading the model
        raise ValueError(f"the window {carried.window} of {args.checkpoint} ({META}, inference) cannot hold one frame "
                         f"({tpf} tokens) and its turn header; pass --window")
    # from a flag, else the checkpoint, else the engine's default (CachePolicy would refuse it only once the model is loaded)
    window = args.window if args.window is not None else carried.window if carried is not None else DEFAULT_WINDOW
    sink = args.sink_tokens if args.sink_tokens is not None else carried.sink_tokens if carried is not None else DEFAULT_SINK_TOKENS
    if not sink_fits(policy, window, sink):
        source = f"{args.checkpoint}'s" if carried is not None else "the default"
        said = lambda flag, v: f"{flag} {v}" if getattr(args, flag[2:]) is not None else f"{source} {flag[2:]} {v}"  # noqa: E731
        raise ValueError(f"sink tokens ({said('--sink_tokens', sink)}) must be fewer than the window "
                         f"({said('--window', window)}) under the {policy} cache policy")


def planned_fps(args) -> float:
    """The frame rate a run will stream at, known before the model loads: --fps, else the
    checkpoint's inference settings, else the project default (the rule of ``apply_settings``)."""
    if args.fps is not None:
        return float(args.fps)
    if getattr(args, "checkpoint", None) is not None:
        from models.checkpoint import inference_settings

        carried = inference_settings(args.checkpoint)
        if carried is not None and carried.fps is not None:
            return float(carried.fps)
    return float(DEFAULTS.fps)


def check_degrade_spec(spec: str) -> tuple[int, str]:
    """(seed, comma-separated types or "") of a ``random:SEED[:types]`` spec; ValueError otherwise."""
    parts = spec.split(":")
    if parts[0] != "random" or len(parts) not in (2, 3) or not parts[1].lstrip("-").isdigit():
        raise ValueError(f"--degrade must be random:SEED or random:SEED:type,type, got {spec!r}")
    if len(parts) == 3:
        from data.degrade import KINDS

        bad = [t for t in parts[2].split(",") if t not in KINDS]
        if bad or not parts[2]:
            raise ValueError(f"--degrade {spec!r}: unknown degradation(s) {bad}; choose from {KINDS}")
    return int(parts[1]), parts[2] if len(parts) == 3 else ""


def load_model(args, loader=None):
    """Load the model the flags name and resolve the inference settings into ``args`` (the flag when
    given, else the checkpoint's, else the project default). Sets ``args.settings_source`` and
    ``args.model_record``; returns the LoadedModel."""
    from models.inference import load_for_inference

    loader = loader or load_for_inference
    loaded = loader(model_config=args.model_config, weights=args.weights, checkpoint=args.checkpoint, tokenizer=args.tokenizer,
                    device=args.device, dtype=args.dtype, attn_implementation=args.attn, heads=getattr(args, "heads", None),
                    load_in_4bit=getattr(args, "load_in_4bit", False))
    apply_settings(args, loaded)
    return loaded


def apply_settings(args, loaded) -> None:
    """The settings part of ``load_model``, for flags whose model was loaded already (by an earlier
    ``load_model`` on the same flags: the web demo loads once and streams many times)."""
    from models.inference_settings import resolve

    carried = getattr(loaded, "settings", None)
    settings, sources = resolve({k: getattr(args, k) for k in SETTING_FLAGS}, carried)
    for k in SETTING_FLAGS:
        setattr(args, k, getattr(settings, k))
    if carried is not None and carried.system_prompt is not None and getattr(args, "system_prompt", None) is None:
        args.system_prompt = carried.system_prompt
    args.settings_source = sources
    args.model_record = getattr(loaded, "record", {})


def open_features(args, model):
    """The ``--features`` cache of this model's frame tokens (None without the flag)."""
    if not getattr(args, "features", None):
        return None
    if getattr(args, "degrade", None):
        raise ValueError("--features streams the cached (clean) frames: it cannot be combined with --degrade")
    from data.feature_cache import FeatureCache

    cache = FeatureCache.for_model(args.features, model, "frame_embeds")
    if not cache.exists():
        raise FileNotFoundError(f"--features {args.features}: no frame_embeds features of this model (fingerprint "
                                f"{cache.fingerprint}); extract them with scripts/extract_features.py --kind frame_embeds "
                                "and the same model, dtype and fps")
    # where the video a key stands for is, to check its features against it before they are streamed:
    # a benchmark item's key is its path under --video_root; a single --video is the video itself
    if getattr(args, "video_root", None):
        cache.video_of = lambda key: Path(args.video_root) / key
    elif getattr(args, "video", None):
        cache.video_of = lambda key: Path(args.video)
    return cache


def feature_frames(cache, key: str, fps: float, size: int, device, dtype, max_frames: int | None = None):
    """FrameEvents of the cached frame tokens of video ``key`` (frame i at i / fps, as the decoder samples).

    When the video the key stands for is there (``open_features``), the features must have been
    extracted from it (``FeatureCache.check_source``: FeatureSourceMismatch otherwise); without it
    they are streamed as they are, and that is logged. The file must hold every frame decoding the
    video would give (its duration at ``fps``, at most ``max_frames``): FeatureCacheMiss otherwise."""
    from models.streaming import FrameEvent

    n = cache.frames_cached(key, fps, size)
    if n == 0:
        from data.feature_cache import FeatureCacheMiss

        raise FeatureCacheMiss(f"{key} ({fps:g} fps, {size} px) is not in the feature cache {cache.directory}")
    video = cache.video_of(key) if cache.video_of is not None else None
    duration = None
    if video is not None and video.exists():
        cache.check_source(key, fps, size, video)
        from data.feature_cache import probe_once

        duration = probe_once(video).duration
    else:
        if video is not None:
            import logging

            logging.getLogger(__name__).warning("--features: %s is not there; the cached features of %r are streamed "
                                                "unchecked", video, key)
        duration = (cache.source(key, fps, size) or {}).get("duration")
    if duration is not None:
        # the frames decoding the video would give (data.video's one frame-count rule): a file extracted
        # with a smaller --max_frames, or from a stream that broke off, would silently cut the stream
        from data.video import num_sampled_frames

        want = num_sampled_frames(float(duration), fps, max_frames)
        if n < want:
            from data.feature_cache import FeatureCacheMiss

            raise FeatureCacheMiss(
                f"{cache.path(key, fps, size)} holds {n} frames of {key!r}, the video has {want} at {fps:g} fps"
                + ("" if max_frames is None else f" (--max_frames {max_frames})") + ": extracted with a smaller "
                "--max_frames (or its decoding broke off); rerun scripts/extract_features.py with this run's "
                "--fps / --max_frames (it extends the file), or give this run the --max_frames it was extracted with")
    n = n if max_frames is None else min(n, max_frames)
    feats = cache.load(key, fps, 0, n, size)

    def events():  # the checks above run when called, before a driver starts streaming
        for i in range(n):
            yield FrameEvent(i / fps, None, feats[i].to(device=device, dtype=dtype))

    return events()


def engine_config(args):
    from models.cache import DEFAULT_MAX_PROTECTED
    from models.decision import DecisionConfig
    from models.streaming import EngineConfig, default_frames_per_step

    return EngineConfig(
        system_prompt=getattr(args, "system_prompt", None),
        prompt_order=args.prompt_order, cache_policy=args.cache_policy, window=args.window, sink_tokens=args.sink_tokens,
        # the value given, 0 included (`or` made --max_protected 0 the default 1024 without a word)
        max_protected=DEFAULT_MAX_PROTECTED if getattr(args, "max_protected", None) is None else args.max_protected,
        frames_per_step=getattr(args, "frames_per_step", None) or default_frames_per_step(not args.no_generate),
        compile=getattr(args, "compile", False), merge_lora=not getattr(args, "no_merge_lora", False),
        decision=DecisionConfig(score_heads=args.score_heads, threshold=args.threshold,
                                cumulative_threshold=args.cumulative_threshold, min_interval_s=args.min_interval,
                                uncertainty_gate=args.uncertainty_gate, max_wait_frames=args.max_wait_frames,
                                relevance_gate=getattr(args, "relevance_gate", None),
                                relevance_gate_frames=getattr(args, "relevance_gate_frames", 4)),
        generate=not args.no_generate, remove_assistant_turns=args.remove_assistant_turns,
        max_new_tokens=args.max_new_tokens, repetition_penalty=args.repetition_penalty,
        respond_before_query=getattr(args, "respond_before_query", False),
    )


def fusion_params(args):
    # lazily, as the other post-processor imports here: the engine flags module stays light
    from test.postprocess import FUSION_KEYS, FusionParams, read_fusion_file

    base = {}
    if args.params_file:
        base, tuning = read_fusion_file(args.params_file, args.params_key)
        if tuning.get("smooth_window"):
            # the scorers smooth the fused score with it (test.benchmark, test.evaluate); the live
            # score stays raw (its peaks have their own smoothing: --savgol_window, the online detector)
            log.warning("%s was tuned on the fused score smoothed causally (smooth_window %d): the live fused score "
                        "is written unsmoothed; score the run with test.evaluate --params_file to apply it",
                        args.params_file, tuning["smooth_window"])
    for k in FUSION_KEYS:
        if getattr(args, k) is not None:
            base[k] = getattr(args, k)
    if base.get("uncertainty_kind", "logvar") not in ("logvar", "variance"):
        raise ValueError(f"uncertainty_kind must be logvar or variance, got {base['uncertainty_kind']!r}")
    return FusionParams(**base)


def make_degradation(spec: str | None, video: str):
    if not spec:
        return None
    from data.degrade import DegradationSchedule, make_schedule

    if spec.startswith("random:"):
        parts = spec.split(":")
        seed = int(parts[1])
        types = parts[2].split(",") if len(parts) > 2 and parts[2] else None
        from data.video import probe

        dur = probe(video).duration
        return make_schedule(dur, seed, types=types) if types else make_schedule(dur, seed)
    if not Path(spec).is_file():
        raise FileNotFoundError(f"--degrade {spec}: neither random:SEED[:types] nor a JSON file")
    items = read_json(spec)
    try:
        return DegradationSchedule.from_list(items["segments"] if isinstance(items, dict) else items)
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"--degrade {spec}: expected a JSON list of [start, end, type] ({type(e).__name__}: {e})") from None
    except ValueError as e:  # a segment's own check (its range, its type): name the file it came from
        raise ValueError(f"--degrade {spec}: {e}") from None
