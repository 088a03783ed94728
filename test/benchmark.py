"""Held-out tuning, scoring and the results record of one benchmark run.

    python -m test.benchmark --dataset tvsum --pred PRED.jsonl --gold tvsum_anno.json --out RESULTS.json \
        [--protocol umt|aha|...] [--opt key=value ...] [--split test]
        [--tune kfold|split:IDS.json|pred:TUNE_PRED.jsonl|none] [--allow_tune_mismatch] [--folds 5] [--tune_seed 0] [--tune_on_test]
        [--grid default|reference|GRID.json] [--uncertainty_kind logvar|variance]
        [--alpha A --beta B --epsilon E --tau T | --params_file P [--params_key K]]
        [--missing drop|count] [--params_out PARAMS.json] [--plots N]

Everything happens in memory through the benchmark's module (``data/benchmarks/<name>.py``): the
gold is loaded and checked once, stream predictions go through the post-processor
(``test.postprocess.ProcessedStream``) and the module's stream adapter, and one pure function,
``score(predictions, gold, protocol)``, gives both the tuning objective and the reported metrics.

1. **Tuning** (score-based benchmarks: tvsum, tvsum_degraded, hisum, charades, qvh) of the fusion
   weights alpha, beta, epsilon, tau (``test/tuning.py``), never on the items it reports unless
   asked: ``kfold`` (default: each fold reported with weights tuned on the other folds),
   ``split:IDS.json`` (tune on the listed ids, report the others), ``pred:TUNE_PRED.jsonl`` (tune on
   another prediction file, e.g. the validation split, against ``--tune_gold``; its ``TUNE_PRED.run.json``
   must record the reported run's settings and model files, else refused unless
   ``--allow_tune_mismatch``; recorded under ``fusion.tuning_run``), ``none`` (fixed
   weights), ``--tune_on_test`` (the reference's protocol, stamped ``"tuned_on_test": true``). The
   objective is the headline metric of ``score()`` on the tuning items: TVSum top-5 mAP, Mr.HiSum
   mAP@50, Charades-STA R1@0.5, QVHighlights HL-min-VeryGood mAP. Smoothing in a tuning grid is
   causal; a constant fused score is never chosen (``test/tuning.py``). Response-based benchmarks
   (youcook2, magqa) have nothing to tune: their responses were decided online.
2. **Scoring** of the reported items, each fused with its own fold's weights. ``--missing drop``
   (default) scores the predicted items and records the missing ones; ``--missing count`` keeps the
   gold items without prediction in, scored by the benchmark's rule (IoU 0, an empty prediction, or
   an error where the official protocol demands every item).
3. **RESULTS.json**: ``{"headline", "metrics", "per_item", "protocol", "files"}``; ``protocol``
   records the dataset, split, fps, tokens per frame, cache policy, decision thresholds, fusion
   weights (per fold for k-fold), tuned_on / tuned_on_test, prompt variant and templates,
   degradation, model/checkpoint, coverage (gold / predicted / failed / scored items), the scorer's
   own record and the commands (conversion, inference, this one), from ``PRED.run.json``. The
   terminal gets a one-line summary.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from data import benchmarks
from data.benchmarks.validate import InputError, UniqueIds
from test.evaluate import inference_protocol, parse_opt, read_prediction_records, run_record
from test.postprocess import FusionParams, ProcessedStream, fuse_prediction, read_fusion_file
from test.postprocess.fusion import fusion_provenance
from test.predictions import StreamPrediction
from test.run_record import other_cut
from test.tuning import SMOOTH_KEY, TUNED_ON_TEST, apply_params, default_grid, grid_search, reference_grid, save_params
from data.benchmarks.magqa import JudgeIncomplete
from utils.cli import ArgumentParser, add_debug_flag, check_number, check_output_file, run_cli
from utils.io import atomic_write_json, iter_jsonl, read_json

log = logging.getLogger("benchmark")

NOT_TUNED = "not tuned (fixed parameters)"
NOT_TUNABLE = "nothing to tune (responses decided at inference)"
SPLIT_OPTIONS = ("split_file", "videos_file")  # options that restrict a gold file to one split


# ------------------------------------------------------------------------------ inputs


def read_grid(spec: str, kind: str) -> dict:
    if spec == "default":
        return default_grid(kind)
    if spec == "reference":
        return reference_grid(kind)
    grid = read_json(spec)
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"--grid {spec}: expected a JSON object {{param: [values]}}")
    # the objective reads the fused score only: any other key ("alhpa") would be searched over without
    # changing anything while its parameter stayed fixed
    known = ("alpha", "beta", "epsilon", "tau", SMOOTH_KEY)
    unknown = sorted(set(grid) - set(known))
    if unknown:
        raise ValueError(f"--grid {spec}: unknown key(s) {unknown}; known: {list(known)}")
    for key, values in grid.items():
        values = [values] if isinstance(values, (int, float)) and not isinstance(values, bool) else values
        if not isinstance(values, list) or not values:
            raise ValueError(f"--grid {spec}: {key} must be a non-empty list of numbers, got {values!r}")
        for v in values:  # smoothing window 0: no smoothing
            check_number(v, f"--grid {spec}: {key}", **({"minimum": 0, "integer": True} if key == SMOOTH_KEY else {}))
    return grid


def read_ids(path: str) -> list[str]:
    data = read_json(path)
    if isinstance(data, dict):
        for key in ("tune_ids", "ids"):
            if key in data:
                data = data[key]
                break
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON list of item ids (or {{\"tune_ids\": [...]}})")
    return [str(x) for x in data]


def fixed_fusion(args, report_ids) -> tuple[FusionParams, dict]:
    """Fusion from defaults < --params_file[--params_key] < flags, and where it came from. A params
    file tuned on the reported data (so flagged, or tuned on some of ``report_ids``) needs --tune_on_test."""
    base: dict[str, Any] = {}
    source: dict[str, Any] = {"defaults": "paper zero-shot (alpha 0.7, beta 1.0, epsilon -2.9, tau 0.3)"}
    if args.params_file:
        entry, tuning = read_fusion_file(args.params_file, args.params_key)
        where = f"--params_file {args.params_file}" + (f"[{args.params_key}]" if args.params_key else "")
        prov = fusion_provenance(tuning, report_ids, args.tune_on_test, where, "--tune_on_test")
        if prov:
            source["params_file_tuned_on"] = prov["tuned_on"]
            source["params_file_tuned_on_test"] = prov["tuned_on_test"]
            if prov["n_reported_in_tune_ids"]:
                source["params_file_tuned_on_reported_items"] = prov["n_reported_in_tune_ids"]
        if tuning.get("smooth_window"):  # tuned on the causally smoothed fused score: applied the same way
            source["smooth_window"] = tuning["smooth_window"]
        base.update(entry)
        source["params_file"] = f"{args.params_file}" + (f"[{args.params_key}]" if args.params_key else "")
    flags = {k: getattr(args, k) for k in ("alpha", "beta", "epsilon", "tau") if getattr(args, k) is not None}
    base.update(flags)
    if flags:
        source["flags"] = sorted(flags)
    # the flag wins; else a params file's kind; else the paper's clamped log-variance
    base["uncertainty_kind"] = args.uncertainty_kind or base.get("uncertainty_kind") or "logvar"
    return FusionParams(**{k: (v if k == "uncertainty_kind" else float(v)) for k, v in base.items()}), source


def error_ids(pred_file: str) -> dict[str, dict]:
    """Items that failed at inference (``PRED.errors.jsonl``): id -> last error record."""
    from test.run_benchmark import errors_path

    path = errors_path(pred_file)
    return {str(r["id"]): r for r in iter_jsonl(path, "inference errors file", allow_empty=True)} if path.exists() else {}




# Settings not compared between a tuning run and the reported run: where each split's cached frames
# are (the model they come from is checked by its files' hashes)
TUNE_RUN_LOCAL_KEYS = ("features",)


def tuning_run_check(args, tune_file: str) -> dict:
    """The run record of ``--tune pred:TUNE_FILE`` against the reported run's: weights tuned on
    predictions made with other settings (fps, cache, prompt order, decision, degradation, ...) or
    another model do not fit the reported run; refused unless --allow_tune_mismatch (then said and
    recorded). A tuning file without a run record: its settings are unknown (said, recorded)."""
    from test.run_record import (MODEL_FILE_FLAGS, PATH_SETTINGS, SETTING_KEYS, _comparable, model_file_differences,
                                    recorded_model_files, run_record_path, setting_differences)

    tune_run, run = run_record(tune_file), run_record(args.pred)
    if tune_run is None or run is None:
        which = run_record_path(tune_file if tune_run is None else args.pred)
        log.warning("--tune pred:%s: no %s: the tuning run's settings cannot be compared with the reported run's",
                    tune_file, which)
        return {"run_record": str(run_record_path(tune_file)) if tune_run is not None else "unknown",
                "engine": (tune_run or {}).get("engine"),
                "settings_match": f"unknown: no {which.name}"}
    tuned, reported = tune_run.get("settings") or {}, run.get("settings") or {}
    files_t, files_r = recorded_model_files(tune_run), recorded_model_files(run)
    keys = [k for k in SETTING_KEYS if k not in TUNE_RUN_LOCAL_KEYS]
    # a model file named by another path with the same content (both hashed) is the same model
    same_content = {MODEL_FILE_FLAGS[k] for k in MODEL_FILE_FLAGS if files_t.get(k) and files_t.get(k) == files_r.get(k)}
    diff = [k for k in setting_differences(tuned, reported, keys) if not (k in PATH_SETTINGS and k in same_content)]
    acting_t, acting_r = _comparable(tuned), _comparable(reported)  # as they act (e.g. max_protected 0 under sliding)
    problems = [f"{k}: {acting_t[k]!r} (tuning run) vs {acting_r[k]!r} (reported run)" for k in diff]
    problems += [f"{MODEL_FILE_FLAGS[k]} content sha256 {files_t[k][:12]}... (tuning run) vs {files_r[k][:12]}... "
                 "(reported run)" for k in model_file_differences(files_t, files_r)]
    if problems and not args.allow_tune_mismatch:
        raise ValueError(f"--tune pred:{tune_file} was predicted with other settings than {args.pred} "
                         f"({'; '.join(problems)}): its tuned weights do not fit the reported run; tune on predictions "
                         "made the same way, or pass --allow_tune_mismatch (recorded)")
    if problems:
        log.warning("--allow_tune_mismatch: the tuning predictions differ from the reported run (%s)", "; ".join(problems))
    return {"run_record": str(run_record_path(tune_file)), "engine": tune_run.get("engine"),
            "model_files": files_t or None, "settings_match": not problems,
            **({"mismatches": problems, "allowed_by": "--allow_tune_mismatch"} if problems else {})}


# ------------------------------------------------------------------------------ predictions


def read_streams(bench, path, gold: Mapping, opts: Mapping) -> tuple[dict[str, StreamPrediction], dict[str, Any]]:
    """(stream predictions, other prediction records) of a prediction file, ids checked against the gold."""
    kind, data = read_prediction_records(path)
    if kind == "json":
        if not hasattr(bench, "from_document"):
            raise InputError(f"{bench.NAME} predictions are JSONL, this is one JSON document", path)
        return {}, {"__document__": bench.from_document(data, path)}
    streams, others, ids = {}, {}, UniqueIds("prediction id")
    for line, rec in data:
        i = ids.add(bench.record_id(rec, path, line), path, line)
        if i not in gold and opts.get("match_number") is not False:
            raise InputError(f"id {i!r} is not in the gold file (predictions of another split or data set?)", path, line)
        if "frames" in rec:
            streams[i] = StreamPrediction.from_record(rec, path, line)
        else:
            others[i] = (line, rec)
    return streams, others


def check_degraded(dataset: str, streams: Mapping, others: Mapping, path) -> None:
    """``--dataset tvsum_degraded`` reports a degraded-frames result: every prediction must carry the
    degradation schedule it was streamed with (``test.run_benchmark --degrade``); clean predictions
    would be reported as the degraded benchmark."""
    if not dataset.endswith("_degraded"):
        return
    clean = [i for i, s in streams.items() if not s.extra.get("degradation")]
    clean += [i for i, o in others.items() if not (isinstance(o, tuple) and o[1].get("degradation"))]
    if clean:
        raise ValueError(f"--dataset {dataset}: {len(clean)} of {len(streams) + len(others)} predictions in {path} "
                         f"carry no degradation schedule (e.g. {sorted(clean)[:3]}): they were streamed from clean "
                         f"frames; score them as --dataset {dataset[:-len('_degraded')]}, or stream with --degrade")


def adapt_all(bench, protocol: str, opts: Mapping, streams: Mapping, gold: Mapping, fused: Mapping[str, np.ndarray],
              ids) -> dict:
    """The benchmark's predictions of ``ids`` from streams with their fused scores."""
    return {i: bench.from_stream(ProcessedStream(streams[i], fused=fused[i]), gold[i], protocol, opts) for i in ids}


def make_objective(bench, protocol: str, opts: Mapping, streams: Mapping, gold: Mapping):
    """objective(fused {id: scores}) -> the headline of ``bench.score`` on those items (what is reported)."""
    topts = bench.tuning_options(protocol, opts) if hasattr(bench, "tuning_options") else dict(opts)
    missing = [i for i in streams if i not in gold]
    if missing:
        raise ValueError(f"{len(missing)} tuning ids are not in the tuning gold, e.g. {missing[:3]}")

    def objective(fused: Mapping[str, np.ndarray]) -> float:
        res = bench.score(adapt_all(bench, protocol, topts, streams, gold, fused, fused), {i: gold[i] for i in fused},
                          protocol, topts)
        value = bench.headline(res["metrics"], protocol)[1]
        return float("nan") if value is None else float(value)
    objective.__name__ = f"{bench.NAME} {protocol} {bench.headline({}, protocol)[0]}"
    objective.options = topts
    return objective


# ------------------------------------------------------------------------------- steps


def fixed_values_under_tuning(args, grid: dict, fixed_smooth: int | None) -> tuple[dict, dict]:
    """(grid, record): under tuning, fixed values (flags, a params file) only fill the keys the grid
    does not search. A flag for a searched key would be silently replaced by the tuned value: refused.
    A params file's values for searched keys are replaced (recorded); its smooth_window pins the
    grid's when the grid does not search one (the parameters were tuned on the smoothed score)."""
    searched = sorted(k for k in grid if k in ("alpha", "beta", "epsilon", "tau"))
    flagged = [k for k in searched if getattr(args, k) is not None]
    if flagged:
        raise ValueError(f"--{', --'.join(flagged)}: the tuning grid searches {'it' if len(flagged) == 1 else 'them'} "
                         f"(--grid {args.grid}), so the flag would be replaced by the tuned value; pass --tune none to "
                         "apply fixed values, or a --grid JSON without that key to keep it fixed while tuning the others")
    record: dict[str, Any] = {"searched": searched + sorted(k for k in grid if k == SMOOTH_KEY),
                              "fixed": {k: ("flag" if getattr(args, k) is not None else
                                            "params_file" if args.params_file else "default")
                                        for k in ("alpha", "beta", "epsilon", "tau") if k not in grid}}
    if args.params_file:
        record["params_file_values_replaced_by_the_grid"] = searched
    if fixed_smooth:
        if SMOOTH_KEY in grid:
            record["params_file_smooth_window_replaced_by_the_grid"] = fixed_smooth
        else:
            grid = {**grid, SMOOTH_KEY: [fixed_smooth]}
            record["fixed"][SMOOTH_KEY] = "params_file"
    return grid, record


def tune(args, bench, protocol, opts, streams, gold, report_ids, fixed: FusionParams,
         fixed_smooth: int | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """(tuning result or fixed record, fused scores of the reported items)."""
    mode = args.tune
    if mode == "none":
        fixed_params = {**fixed.to_dict(), **({SMOOTH_KEY: fixed_smooth} if fixed_smooth else {})}
        return {"mode": "fixed", "params": fixed_params}, apply_params(streams, {"params": fixed_params}, report_ids)
    pool, tune_gold = dict(streams), gold
    tune_ids = None
    if mode.startswith("split:"):
        tune_ids = read_ids(mode[len("split:"):])
        missing = [i for i in tune_ids if i not in streams]
        if missing:
            raise ValueError(f"{len(missing)} tuning ids have no prediction in {args.pred}, e.g. {missing[:3]}")
    elif mode.startswith("pred:"):
        tuning_run = tuning_run_check(args, mode[len("pred:"):])
        # the tuning file's gold: the whole gold file (split restrictions lifted), matched by id
        gopts = {**opts, **{k: None for k in SPLIT_OPTIONS if k in opts}}
        tune_gold = bench.load_gold(args.tune_gold or args.gold, protocol, gopts)
        extra, others = read_streams(bench, mode[len("pred:"):], tune_gold, opts)
        if others or not extra:
            raise ValueError(f"--tune {mode}: the tuning file must hold stream predictions (with 'frames')")
        overlap = sorted(set(extra) & set(streams))
        if overlap:
            raise ValueError(f"the tuning predictions share {len(overlap)} ids with {args.pred}, e.g. {overlap[:3]}")
        pool.update(extra)
        tune_ids = sorted(extra)
    elif mode != "kfold":
        raise ValueError(f"--tune must be kfold, split:IDS.json, pred:PRED.jsonl or none, got {mode!r}")
    objective_ids = tune_ids if tune_ids is not None else report_ids
    objective = make_objective(bench, protocol, opts, {i: pool[i] for i in objective_ids}, tune_gold)
    grid, base_source = fixed_values_under_tuning(args, read_grid(args.grid, fixed.uncertainty_kind), fixed_smooth)
    groups = None
    if mode == "kfold" and hasattr(bench, "item_group"):
        # several queries of one video (Charades-STA, QVHighlights): a fold reported with weights tuned on
        # the other queries of its own videos would not be held out; a query of unknown video is its own group
        groups = {i: f"video:{g}" if (g := bench.item_group(gold[i])) is not None else f"item:{i}" for i in report_ids}
    result = grid_search(pool, objective, grid=grid, tune_ids=tune_ids, groups=groups,
                         report_ids=report_ids, k_folds=args.folds if mode == "kfold" and not args.tune_on_test else None,
                         seed=args.tune_seed, uncertainty_kind=fixed.uncertainty_kind, base=fixed,
                         allow_tune_on_test=args.tune_on_test, objective_name=objective.__name__)
    result["protocol"]["objective_options"] = {k: v for k, v in objective.options.items() if opts.get(k) != v}
    if mode.startswith("pred:") and not result["tuned_on_test"]:
        result["protocol"]["tuned_on"] = f"held-out predictions ({Path(mode[len('pred:'):]).name})"
    if mode.startswith("pred:"):
        result["tuning_run"] = tuning_run
    result["fixed_values"] = base_source
    if tune_ids is not None and hasattr(bench, "item_group"):
        # a split or tuning file that holds other queries of reported videos: not quite held out; said and recorded
        tuned_videos = {g for i in tune_ids if (g := bench.item_group(tune_gold[i])) is not None}
        shared = [i for i in report_ids if i in streams and bench.item_group(gold[i]) in tuned_videos]
        if shared:
            result["report_ids_sharing_a_video_with_tune_ids"] = {"n": len(shared), "examples": shared[:10]}
            log.warning("--tune %s: %d reported queries share their video with tuning queries (e.g. %s): their weights "
                        "were tuned on other queries of the same videos (recorded)", mode, len(shared), shared[:3])
    fused = apply_params(pool, result, report_ids)
    if args.params_out:
        save_params(args.params_out, args.dataset, result, note=f"test.benchmark --tune {mode}")
    return result, fused


def fusion_record(result: dict, args) -> dict:
    """The fusion part of the protocol record (compatible with tuning.params_for)."""
    if result.get("mode") == "fixed":
        return {"mode": "fixed", "params": result["params"], "source": result.get("source")}
    proto = result["protocol"]
    common = {"objective": proto["objective"], "grid": proto["grid"], "n_combos": proto["n_combos"],
              "seed": proto["seed"], "uncertainty_kind": proto["uncertainty_kind"], "tune_score": result["tune_score"]}
    common["fixed_values"] = result.get("fixed_values")
    if result.get("folds"):
        return {"mode": "k-fold", "k": proto["k_folds"], **common, "tune_score_is": result.get("tune_score_is"),
                "folds": [{"fold": f["fold"], "report_ids": f["report_ids"], "n_tune": len(f["tune_ids"]),
                           "tune_ids": f["tune_ids"] if len(f["tune_ids"]) <= 2000 else f"{len(f['tune_ids'])} ids",
                           "best_params": f["best_params"], "tune_score": f["tune_score"],
                           "degenerate_refused": f.get("degenerate_refused"), "n_tied_best": f.get("n_tied_best"),
                           **({"penalty_off": f["penalty_off"]} if "penalty_off" in f else {})} for f in result["folds"]]}
    mode = "tuned on the reported items" if result["tuned_on_test"] else (
        "prediction file" if args.tune.startswith("pred:") else "split")
    common["degenerate_refused"] = result.get("degenerate_refused")
    common["n_tied_best"] = result.get("n_tied_best")
    if "penalty_off" in result:
        common["penalty_off"] = result["penalty_off"]
    return {"mode": mode, "params": result["best_params"], **common,
            "tune_ids": result["tune_ids"] if len(result["tune_ids"]) <= 2000 else f"{len(result['tune_ids'])} ids",
            "tune_source": args.tune if not result["tuned_on_test"] else "the reported items",
            **({"tuning_run": result["tuning_run"]} if "tuning_run" in result else {}),
            **({k: result[k] for k in ("report_ids_sharing_a_video_with_tune_ids",) if k in result})}


def protocol_record(args, argv, protocol, options, result, coverage, run, scorer_record, tunable,
                    prompt_variants) -> dict:
    inf = inference_protocol(run)
    conv = ((run or {}).get("items") or {}).get("converter") or {}
    variants = sorted({str(v) for v in prompt_variants if v is not None})
    if not tunable:
        tuned_on, on_test = NOT_TUNABLE, False
    elif result.get("mode") == "fixed":
        on_test = bool(result.get("source", {}).get("params_file_tuned_on_test"))
        tuned_on = TUNED_ON_TEST if on_test else NOT_TUNED
    else:
        tuned_on, on_test = result["protocol"]["tuned_on"], bool(result["tuned_on_test"])
    return {
        "dataset": args.dataset,
        "split": args.split,
        "scorer": {"benchmark": args.dataset, "protocol": protocol, "options": options, "record": scorer_record},
        **{k: inf[k] for k in ("fps", "max_frames", "tokens_per_frame", "frame_size", "frame_resize", "cache_policy", "prompt_order",
                               "decision", "generate", "remove_assistant_turns", "max_new_tokens",
                               # generation settings of the run record that the protocol left out
                               "repetition_penalty", "respond_before_query", "system_prompt")},
        "fusion": fusion_record(result, args) if tunable else None,
        "tuned_on": tuned_on,
        "tuned_on_test": on_test,
        "prompt_variant": variants[0] if len(variants) == 1 else (variants or None),
        "query_templates": {**{k: (conv.get("options") or {}).get(k) for k in ("template", "seed", "prompt")},
                            # items converted before template sets existed used the project's wording
                            "template_set": conv.get("template_set", "project")} if conv else None,
        "degradation": inf["degradation"],
        "model": inf["model"],
        "coverage": coverage,
        "command": {"convert": conv.get("command"),
                    "inference": [r.get("command") for r in (run or {}).get("runs", [])] or None,
                    "benchmark": ["python", "-m", "test.benchmark", *argv]},
        "inference_record": inf["inference_record"],
    }


# -------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(prog="python -m test.benchmark", description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=sorted(benchmarks.MODULES))
    ap.add_argument("--pred", required=True, help="prediction JSONL from test.run_benchmark")
    ap.add_argument("--gold", required=True, help="the benchmark's gold file (see instructions/benchmarks.md)")
    ap.add_argument("--out", required=True, help="RESULTS.json")
    ap.add_argument("--protocol", default=None, help="scoring protocol (default: the benchmark's official one)")
    ap.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="scorer option (repeatable)")
    ap.add_argument("--split", default=None, help="name of the evaluated split, recorded (e.g. test, val)")
    g = ap.add_argument_group("tuning")
    g.add_argument("--tune", default=None, help="kfold (default) | split:IDS.json | pred:TUNE_PRED.jsonl | none")
    g.add_argument("--tune_on_test", action="store_true", help="tune on the reported items (stamped tuned_on_test)")
    g.add_argument("--tune_gold", default=None, help="gold file of the tuning items for --tune pred: (default --gold)")
    g.add_argument("--allow_tune_mismatch", action="store_true",
                   help="--tune pred: accept a tuning file predicted with other settings or another model than --pred "
                        "(said and recorded under protocol.fusion.tuning_run)")
    g.add_argument("--folds", type=int, default=5)
    g.add_argument("--tune_seed", type=int, default=0)
    g.add_argument("--grid", default="default", help="default (240 points) | reference (the reference's 15,000) | GRID.json")
    g.add_argument("--uncertainty_kind", default=None, choices=["logvar", "variance"],
                   help="logvar: clamped log-variance (paper; default) | variance: exp(log-variance) (reference code)")
    g.add_argument("--params_out", default=None, help="also record the tuned parameters here (test.tuning.save_params)")
    g = ap.add_argument_group("fixed fusion (--tune none; also the values of grid keys not searched)")
    for k in ("alpha", "beta", "epsilon", "tau"):
        g.add_argument(f"--{k}", type=float, default=None)
    g.add_argument("--params_file", default=None)
    g.add_argument("--params_key", default=None)
    ap.add_argument("--missing", default="drop", choices=["drop", "count"],
                    help="gold items without a prediction: drop (score the predicted ones; recorded) or count "
                         "(the scorer's own rule for missing items)")
    ap.add_argument("--plots", type=int, default=0, help="plot the first N scored items next to RESULTS.json")
    add_debug_flag(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    from utils.log import setup_logging

    setup_logging("INFO")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return run_cli("benchmark", lambda: _main(args, argv), debug=args.debug,
                   outputs=lambda: args.out if Path(args.out).exists() else None)


def _main(args, argv: list[str]) -> int:
    results = run(args, argv)
    h, p = results["headline"], results["protocol"]
    cov = p["coverage"]
    value = "n/a" if h["value"] is None else f"{h['value']:.4g}"
    of = (f"the {cov['n_scored']} videos_file videos; {cov['n_set_aside_by_videos_file']} other predictions set aside"
          if "n_set_aside_by_videos_file" in cov else f"{cov['n_gold']} gold items")
    print(f"{args.dataset} ({p['scorer']['protocol']}): {h['name']} = {value}  (scored {cov['n_scored']} of "
          f"{of}; tuned_on: {p['tuned_on']}) -> {args.out} (per-item results inside)")
    return 0


def run(args, argv: list[str]) -> dict:
    bench = benchmarks.get(args.dataset)
    options = parse_opt(args.opt)
    check_output_file(args.out, "--out")
    for k in ("alpha", "beta", "epsilon", "tau"):  # argparse's float() takes "nan" and "inf"
        check_number(getattr(args, k), f"--{k}")
    check_number(args.folds, "--folds", minimum=2)
    check_number(args.plots, "--plots", minimum=0)
    check_number(args.tune_seed, "--tune_seed", minimum=0)
    if args.grid not in ("default", "reference"):
        read_grid(args.grid, "logvar")  # its keys and values, before the gold and predictions are read
    if bench.NAME == "magqa" and "judge_cache" not in options:
        # an LLM judge is slow and may fail half-way: keep its judgements so a rerun resumes
        options["judge_cache"] = str(args.out) + ".judge_cache.jsonl"
    protocol, opts = bench.resolve(args.protocol, options)
    if args.tune_on_test and args.tune not in (None, "kfold", "none"):
        raise ValueError("--tune_on_test tunes on the reported items: it cannot be combined with --tune " + args.tune)
    if args.tune_on_test and args.tune == "none" and not args.params_file:
        raise ValueError("--tune none --tune_on_test only serves to accept a --params_file tuned on the reported data")
    gold = bench.load_gold(args.gold, protocol, opts)
    streams, others = read_streams(bench, args.pred, gold, opts)
    check_degraded(args.dataset, streams, others, args.pred)
    tunable = bench.tunable(protocol, opts) and not others
    if not tunable:
        if args.tune not in (None, "none") or args.tune_on_test:
            why = NOT_TUNABLE if not bench.tunable(protocol, opts) else "the predictions are not score streams"
            raise ValueError(f"{args.dataset} ({protocol}): {why}; drop --tune/--tune_on_test")
        args.tune = "none"
    args.tune = args.tune or "kfold"
    out = Path(args.out)
    predicted = set(streams) | set(others)
    document = others.pop("__document__", None)
    if document is not None:
        predicted = set(document)
    tune_set = set(read_ids(args.tune[len("split:"):])) if args.tune.startswith("split:") else set()
    report_ids = [i for i in gold if i in predicted and i not in tune_set]
    if not report_ids:
        raise ValueError(f"no predicted item of {args.pred} is in the gold file {args.gold} (outside the tuning ids)")
    fixed, fixed_source = fixed_fusion(args, report_ids)

    # 1. tuning (or fixed weights) -> one fused series per reported stream
    if tunable:
        result, fused = tune(args, bench, protocol, opts, streams, gold, report_ids, fixed, fixed_source.get("smooth_window"))
        if result.get("mode") == "fixed":
            result["source"] = fixed_source
    else:
        result, fused = {"mode": "none"}, {i: fuse_prediction(streams[i], fixed) for i in report_ids if i in streams}
    # 2. scoring: the reported items (plus, with --missing count, the unpredicted gold items)
    preds = adapt_all(bench, protocol, opts, streams, gold, fused, [i for i in report_ids if i in streams])
    for i in report_ids:
        if i in others:
            preds[i] = bench.from_record(others[i][1], gold[i], protocol, opts, args.pred, others[i][0])
        elif document is not None:
            preds[i] = document[i]
    score_ids = [i for i in gold if i not in tune_set and (args.missing == "count" or i in predicted)]
    try:
        res = bench.score(preds, {i: gold[i] for i in score_ids}, protocol, opts)
    except JudgeIncomplete as e:  # recorded per item, no score; the same command resumes from the cache
        atomic_write_json(out, e.record())
        raise
    except ValueError as e:
        if args.missing == "count" and len(score_ids) > len(report_ids):
            raise ValueError(f"{e} [--missing count kept {len(score_ids) - len(report_ids)} unpredicted gold items; "
                             "--missing drop scores the predicted ones]") from None
        raise

    errors = error_ids(args.pred)
    missing = [i for i in gold if i not in tune_set and i not in predicted]
    coverage = {
        "n_gold": len(gold), "n_predicted": sum(1 for i in gold if i in predicted),
        "n_tuning_only": len([i for i in gold if i in tune_set]), "n_reported": len(report_ids),
        "n_scored": len(score_ids), "n_missing": len(missing), "missing_policy": args.missing,
        "missing_ids": missing[:50], "n_failed_at_inference": len([i for i in errors if i not in predicted]),
        "failed_examples": [{k: errors[i].get(k) for k in ("id", "error", "message")} for i in errors
                            if i not in predicted][:10],
        "complete": not missing,
    }
    # videos streamed from another cut than the annotated one (test.run_benchmark warned): their gold is
    # placed on the annotation's clock, so their scores are not those of the annotated video
    cuts = [i for i in report_ids if i in streams
            and other_cut(streams[i].duration, streams[i].extra.get("annotated_duration"))]
    coverage["n_other_cut"] = len(cuts)
    if cuts:
        coverage["other_cut_examples"] = [{"id": i, "streamed_duration": streams[i].duration,
                                           "annotated_duration": streams[i].extra["annotated_duration"]} for i in cuts[:10]]
        log.warning("%d scored items were streamed from a video whose duration differs from the annotation's by more "
                    "than max(2 s, 5 %%), e.g. %s (another cut: its scores are not those of the annotated video); "
                    "counted as coverage.n_other_cut", len(cuts), coverage["other_cut_examples"][0])
    ids = res["record"].get("ids") or {}
    if isinstance(ids.get("n_scored"), int) and ids["n_scored"] < len(score_ids):
        # the protocol's scorer left out gold items it was given (YouCook2 / MAGQA "reference": videos without
        # a prediction skipped, as the reference driver did, whatever --missing asked): say what was scored
        coverage.update(n_scored=ids["n_scored"], n_left_out_by_scorer=len(score_ids) - ids["n_scored"],
                        scorer_missing_policy=ids.get("missing_policy"))
    subset = res["record"].get("videos_file_subset")
    if subset:  # the scorer scored only the videos a videos_file lists (TVSum): the coverage says so
        coverage.update(n_scored=subset["n_listed_scored"], n_set_aside_by_videos_file=subset["n_predictions_set_aside"],
                        scored_of="the videos_file's videos")
    if missing:
        log.warning("%d of %d gold items have no prediction (%s)", len(missing), len(gold),
                    "left out of the scores" if args.missing == "drop" else "scored by the benchmark's rule")
    run_rec = run_record(args.pred)
    protocol_rec = protocol_record(args, argv, protocol, options, result, coverage, run_rec, res["record"], tunable,
                                   [streams[i].extra.get("prompt_variant") for i in report_ids if i in streams])
    name, value = bench.headline(res["metrics"], protocol)
    results = {
        "headline": {"name": name, "value": value},
        "metrics": res["metrics"],
        "protocol": protocol_rec,
        "files": {"predictions": str(Path(args.pred).resolve()), "gold": str(Path(args.gold).resolve()),
                  "items": ((run_rec or {}).get("items") or {}).get("path")},
        "per_item": res["per_item"],
    }
    atomic_write_json(out, results)
    if args.plots > 0:
        from test.visualize import plot_results

        plot_results(out, out.with_name(out.stem + "_files") / "plots", max_show=args.plots)
    return results


if __name__ == "__main__":
    sys.exit(main())
