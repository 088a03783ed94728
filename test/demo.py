"""The project's main job: online highlight detection with the embedded default model.

    python -m test.demo                                  # a generated synthetic test video, its query and ground truth
    python -m test.demo --video V.mp4 --query "..."      # any video (no ground truth, no metrics)
    python -m test.demo --realtime                       # paced as a live stream
    python -m test.demo --web                            # the web demo (test/web_demo.py) on http://127.0.0.1:7860

Runs ``test.live_infer`` (the one streaming loop: highlights and responses are printed as they are
detected; scores.jsonl, responses.jsonl, highlights.json, scores.png, highlights.mp4 are written to
--output_dir) and, for a generated video, ends with metrics against its ground truth. The default
model is the tiny model the project trains on synthetic videos (instructions/tiny_model.md): it is
NOT meant for real footage; pass --model_config/--checkpoint/--weights for real weights.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from test import live_infer
from test.engine_args import add_engine_args
from utils.io import atomic_write_json, read_json, read_jsonl
from utils.log import setup_logging
from utils.paths import REPO_ROOT

DEFAULT_PRESET = "aha-tiny-synth"
DEFAULT_CHECKPOINT = REPO_ROOT / "checkpoints" / "aha-tiny-synth"
DEFAULT_TOKENIZER = REPO_ROOT / "configs" / "tokenizers" / "aha-tiny-synth"
log = logging.getLogger(__name__)
DEMO_SEED = 20251121  # the generated demo video; not one of the synthetic benchmark's videos
# the default model's fusion weights, as tuned on the synthetic VAL split by test/synthetic_eval.py
# (scripts/eval_tiny.sh), for the TVSum/Aha-style protocol whose top-5 AP the demo prints
DEFAULT_RESULTS = REPO_ROOT / "results" / "synthetic_results.json"
FUSION_FLAGS = ("alpha", "beta", "epsilon", "tau", "uncertainty_kind")
DEFAULT_SCORE_HEADS = "informative,relevance"  # test.engine_args' --score_heads default


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=None, help="any video (default: generate a synthetic test video)")
    ap.add_argument("--query", action="append", default=None, help="the query (default: the generated video's)")
    ap.add_argument("--query_at", action="append", default=None)
    ap.add_argument("--output_dir", default=None, help="default: outputs/demo (outputs/web with --web: one folder per run)")
    ap.add_argument("--seed", type=int, default=DEMO_SEED, help="seed of the generated video")
    ap.add_argument("--realtime", action="store_true")
    ap.add_argument("--source_fps", type=float, default=None)
    ap.add_argument("--degrade", default=None)
    ap.add_argument("--reel_budget", type=float, default=12.0)
    ap.add_argument("--gt_spans", default=None)
    ap.add_argument("--quiet", action="store_true")
    g = ap.add_argument_group("web demo")
    g.add_argument("--web", action="store_true", help="serve the web demo instead (same model and flags; --video/--query "
                                                       "become the page's example)")
    g.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes the demo to the network)")
    g.add_argument("--port", type=int, default=None, help="default: 7860, or the next free port")
    g.add_argument("--max_streams", type=int, default=4, help="streams (engines) running at once, all pages together")
    add_engine_args(ap)
    ap.set_defaults(cumulative_threshold=None, threshold=None, peak_distance=4.0, savgol_window=7, max_new_tokens=16)
    return ap


def resolve_model(args) -> None:
    """The shipped tiny model unless the user names a model. Its checkpoint carries the settings it
    was trained with (2 fps, a dynamic_sink cache of the 12 frames of a training clip): the live CLI uses them
    unless a flag says otherwise. For it, fusion weights and the response rule are those tuned on the
    synthetic VAL split for this checkpoint (results/synthetic_results.json), unless flags give them."""
    default_model = args.model_config is None and args.checkpoint is None and args.weights is None
    trained, refused = None, ""
    if default_model:
        if not (DEFAULT_CHECKPOINT / "aha_model.json").is_file():
            raise SystemExit(f"the default checkpoint {DEFAULT_CHECKPOINT} is missing; train it with scripts/train_tiny.sh "
                             "or pass --model_config/--checkpoint")
        args.checkpoint = str(DEFAULT_CHECKPOINT)
        args.tokenizer = args.tokenizer or str(DEFAULT_TOKENIZER)
        trained, check = checked_tuned_record(DEFAULT_RESULTS)
        shown = DEFAULT_RESULTS.relative_to(REPO_ROOT) if DEFAULT_RESULTS.is_relative_to(REPO_ROOT) else DEFAULT_RESULTS
        source = f"{shown} (trained, %s: tuned on val; {check})"
        # settings tuned for another checkpoint: the defaults, and the run record says why
        refused = f" ({shown} {check})" if check.startswith("tuned for another") else ""
        if args.params_file is None and all(getattr(args, k) is None for k in FUSION_FLAGS):
            tuned = tuned_fusion(trained)
            if tuned is not None:
                for k in FUSION_FLAGS:
                    setattr(args, k, tuned[k])
                args.fusion_source = source % "tvsum_aha"
            elif refused:
                args.fusion_source = "defaults" + refused
    if args.threshold is None and args.cumulative_threshold is None and not args.no_generate:
        # a rule of the user's own (--score_heads without a threshold) is not replaced by the tuned one
        own_heads = args.score_heads != DEFAULT_SCORE_HEADS
        rule = tuned_response(trained) if default_model and not own_heads else None
        if rule is not None:
            # the dense-captioning rule of the benchmark: respond when the informative probability passes it,
            # behind the relevance gate tuned for query prompts (the demo always asks a query), unless given
            args.score_heads, args.threshold = rule["score_heads"], rule["threshold"]
            args.decision_source = source % "youcook2"
            if rule.get("relevance_gate") is not None and args.relevance_gate is None:
                args.relevance_gate, args.relevance_gate_frames = rule["relevance_gate"], rule["relevance_gate_frames"]
                args.decision_source = source % "youcook2 threshold, query_responses gate"
        else:
            args.threshold = 1.2  # respond when informative + relevance is high (hand-set)
            args.decision_source = "demo default (hand-set)" + ("" if own_heads else refused)


def tuned_record(results: Path) -> dict | None:
    """The trained system's record in ``results`` when it was tuned on val for the shipped checkpoint
    (None, with a warning, when the file is missing or records another checkpoint or tuning)."""
    return checked_tuned_record(results)[0]


def checked_tuned_record(results: Path) -> tuple[dict | None, str]:
    """(``tuned_record``, what its checkpoint check found): the results' ``checkpoint_sha256`` against the
    content hash of the shipped checkpoint; a results file older than that record is used, said
    ("unknown"), when it names the shipped checkpoint's path."""
    from models.checkpoint import content_hash_of

    try:
        rec = json.loads(results.read_text())
        proto, trained = rec["protocol"], rec["systems"]["trained"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("no val-tuned settings in %s (%s): the defaults are used", results, e)
        return None, "no results"
    if proto.get("tuned_on") != "val" or proto.get("tuned_on_test", True):
        log.warning("%s does not hold val-tuned settings of %s: the defaults are used", results, DEFAULT_CHECKPOINT)
        return None, "not tuned on val"
    recorded = proto.get("checkpoint_sha256")
    if recorded is None:
        if Path(proto.get("checkpoint") or "") != DEFAULT_CHECKPOINT.relative_to(REPO_ROOT):
            log.warning("%s does not hold val-tuned settings of %s: the defaults are used", results, DEFAULT_CHECKPOINT)
            return None, "another checkpoint path"
        log.warning("%s records no checkpoint_sha256: its tuned settings are used for %s unverified", results,
                    DEFAULT_CHECKPOINT)
        return trained, "checkpoint sha256 unknown (not in the results)"
    actual = content_hash_of(DEFAULT_CHECKPOINT)
    if recorded != actual:
        log.warning("%s was tuned for another checkpoint (sha256 %s..., %s is %s...): the defaults are used", results,
                    str(recorded)[:12], DEFAULT_CHECKPOINT, actual[:12])
        return None, f"tuned for another checkpoint (sha256 {str(recorded)[:12]}..., this one {actual[:12]}...)"
    return trained, "checkpoint sha256 matches"


def tuned_fusion(trained: dict | None) -> dict | None:
    """The fusion weights in the trained system's record (``tuned_record``), TVSum/Aha protocol."""
    params = ((trained or {}).get("tvsum_aha") or {}).get("fusion", {}).get("params")
    if not isinstance(params, dict) or set(params) != set(FUSION_FLAGS):
        if trained is not None:  # (None: tuned_record has said why)
            log.warning("the results record holds no fusion weights: the defaults are used")
        return None
    return params


def tuned_response(trained: dict | None) -> dict | None:
    """The dense-captioning response threshold in the trained system's record, tuned on val: the
    engine's per-frame threshold rule on the informative head's probability (test/synthetic_eval.py),
    with the relevance gate tuned on val for query prompts when the record has one (for that threshold)."""
    th = ((trained or {}).get("youcook2") or {}).get("threshold")
    if not isinstance(th, dict) or th.get("tuned_on") != "val" or th.get("score") != "informative head probability" \
            or not isinstance(th.get("value"), (int, float)) or not 0 < th["value"] < 1:
        if trained is not None:
            log.warning("the results record holds no val-tuned response threshold: the demo's hand-set rule is used")
        return None
    rule = {"score_heads": "informative", "threshold": float(th["value"])}
    gate = ((trained or {}).get("query_responses") or {}).get("gate")
    if isinstance(gate, dict) and gate.get("tuned_on") == "val" and isinstance(gate.get("value"), (int, float)) \
            and gate.get("threshold") == rule["threshold"] and isinstance(gate.get("frames"), int) and gate["frames"] >= 1:
        rule.update(relevance_gate=float(gate["value"]), relevance_gate_frames=gate["frames"])
    return rule


def generated_video(args, out: Path):
    """Write the synthetic demo video; return (path, query, scene)."""
    from data.synthetic import generate_video

    video = generate_video(args.seed, out / "input.mp4", video_id=f"demo_{args.seed}")
    return video.path, video.query, video.scene


def gt_metrics(scene, scores: list[dict], fused: np.ndarray) -> dict:
    """Metrics of one stream against its synthetic ground truth (same functions as the benchmarks)."""
    from data.synthetic import importance_at
    from data.benchmarks.charades import interval_iou
    from data.benchmarks.ranking import topk_ap_from_scores
    from data.benchmarks.tvsum import binarize_top
    from test.postprocess import causal_interval

    times = np.array([s["time"] for s in scores])
    gt = importance_at(scene, times)
    spans = [(e.start, e.end) for e in scene.events if e.match]
    interval = causal_interval(times, fused, duration=scene.duration)
    out = {
        "top5_AP_aha": 100 * topk_ap_from_scores(binarize_top(gt, 0.5), fused),
        "grounding_interval": None if interval is None else [round(x, 2) for x in interval],
        "grounding_best_IoU": 100 * max((interval_iou(interval, s) for s in spans), default=0.0),
        "matching_events": [[e.start, e.end] for e in scene.events if e.match],
        "distractor_events": [[e.start, e.end] for e in scene.events if not e.match],
    }
    return out


def check_demo_args(args) -> None:
    """The demo's own numbers, before any model: a negative --seed was numpy's "expected non-negative
    integer", a --port outside 0-65535 an OverflowError (exit 1) once the model was loaded."""
    from utils.cli import check_number

    check_number(args.seed, "--seed", minimum=0, integer=True)
    check_number(args.port, "--port", minimum=0, maximum=65535, integer=True)
    check_number(args.max_streams, "--max_streams", minimum=1, integer=True)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("WARNING" if args.quiet else "INFO")
    check_demo_args(args)
    resolve_model(args)
    if args.web:
        return web(args)
    out = Path(args.output_dir or "outputs/demo")
    out.mkdir(parents=True, exist_ok=True)
    args.output_dir = str(out)  # the live run writes there too
    # an earlier run's metrics (another video, seed or settings) would sit beside this run's outputs as
    # if they were its own: a run on --video, or one that scores no frame, writes none
    (out / "metrics.json").unlink(missing_ok=True)
    scene = None
    if args.video is None:
        path, query, scene = generated_video(args, out)
        args.video = str(path)
        if not args.query and not args.query_at:
            args.query = [query]
        spans = [[e.start, e.end] for e in scene.events if e.match]
        # both kinds of event shaded on the plot, each named in its legend
        (out / "gt_spans.json").write_text(json.dumps({"matching events (the query)": spans, "distractor events": [
            [e.start, e.end] for e in scene.events if not e.match]}))
        args.gt_spans = str(out / "gt_spans.json")
        print(f"generated {args.video}: {scene.duration} s, query {args.query[0]!r}, "
              f"matching events at {', '.join(f'{s:.1f}-{e:.1f} s' for s, e in spans)}", flush=True)
    elif not args.query and not args.query_at:
        raise SystemExit("--video needs --query")
    rc = live_infer.run(args)
    if scene is not None:
        scores = read_jsonl(out / "scores.jsonl", allow_empty=True)
        fused = np.array([s["fused"] for s in scores])
        if len(scores):
            m = gt_metrics(scene, scores, fused)
            run = json.loads((out / "run.json").read_text())
            # what the metrics were computed on (they recorded none): the ground truth is the generated
            # video's query (whatever --query asked), over the frames streamed (--max_frames may cut the
            # stream before the video's end), with the fused score of run.json's fusion weights
            m["protocol"] = {"video": args.video, "seed": args.seed, "ground_truth_query": scene.query.text,
                             "queries_asked": run["queries"], "fps": run["fps"], "max_frames": run["max_frames"],
                             "n_frames_scored": len(scores), "last_frame_s": scores[-1]["time"],
                             "video_duration_s": scene.duration, "fusion": run["fusion"],
                             "fusion_source": run["fusion_source"], "degradation": run["degradation"],
                             # a stream cut short (Ctrl-C, a source that broke): the metrics are of its first frames
                             "stream_error": read_json(out / "highlights.json").get("error"),
                             "run_record": "run.json"}
            atomic_write_json(out / "metrics.json", m)
            print("\nmetrics against the generated video's ground truth" + (f" (over the {len(scores)} frames scored before "
                  f"the stream ended early: {m['protocol']['stream_error']})" if m["protocol"]["stream_error"] else "") + ":")
            print(f"  top-5 AP (TVSum/Aha style): {m['top5_AP_aha']:.1f}")
            print(f"  causal grounding interval {m['grounding_interval']} -> best IoU with a matching event {m['grounding_best_IoU']:.1f}")
            print(f"  matching events {m['matching_events']}, distractors {m['distractor_events']}")
    print(f"outputs in {out}/: scores.jsonl responses.jsonl highlights.json scores.png"
          + (" highlights.mp4" if (out / 'highlights.mp4').exists() else "") + (" metrics.json" if scene is not None else ""))
    return rc


def web(args) -> int:
    """The web demo on the same model and flags; the generated synthetic video (or --video with
    --query) is offered as the page's example."""
    from test import web_demo

    args.output_dir = args.output_dir or "outputs/web"
    out = Path(args.output_dir)
    if args.video is None:
        path, query, _ = generated_video(args, out / "example")
        example = (str(path), query)
    elif args.query:
        example = (args.video, args.query[0])
    else:
        raise SystemExit("--video needs --query")
    return web_demo.serve(args, example)


if __name__ == "__main__":
    import sys

    from utils.cli import entry

    sys.exit(entry("demo", main))  # the error contract: instructions/errors.md
