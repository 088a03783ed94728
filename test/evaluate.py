"""``python -m test.evaluate``: score prediction files with one benchmark's module (``data/benchmarks``).

    python -m test.evaluate --func tvsum --pred_file P [--pred_file P2 ...] --gold_file G [--output_file O]
        [--protocol X] [--opt key=value ...] [--alpha A --beta B --epsilon E --tau T --uncertainty_kind K]
        [--params_file grid_search_params.json --params_key tvsum] [--smooth_window W]

Prints a summary (headline and metrics, no per-item rows) for every prediction file on stdout;
``--output_file`` receives everything (per-item results and the protocol record, with the
inference settings of ``PRED.run.json`` under ``record.inference``) as JSON, written atomically. Several ``--pred_file`` are scored against one gold load (YouCook2: one METEOR process
for all of them). The prediction format is told by content: stream records (``frames``) are
post-processed (fusion, and optional *causal* smoothing) and handed to the benchmark's stream
adapter; other records go to its official-format reader.

Fusion weights (stream predictions only): the FusionParams defaults, overridden by --params_file
[--params_key] (keys alpha, beta, epsilon, tau; the reference's "uncertainty_threshold" is read as
tau, and a null epsilon falls back to its "uncertainty_penalty"; such a file fuses exp(log-variance),
uncertainty_kind variance, what the reference tuned it on), overridden by the explicit flags.
--opt values are parsed as JSON when possible (true, 3, 0.5, null, [1,2]), else kept as strings;
an option the protocol does not define is refused.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from data import benchmarks
from data.benchmarks.validate import InputError, UniqueIds, read_json_or_jsonl
from test.postprocess import FUSION_KEYS, FusionParams, ProcessedStream, read_fusion_file
from test.postprocess.fusion import fusion_provenance
from test.predictions import StreamPrediction
from data.benchmarks.magqa import JudgeIncomplete
from utils.cli import ArgumentParser, add_debug_flag, check_number, check_output_file, run_cli
from utils.io import atomic_write_json, dumps


# ------------------------------------------------------------------------------ predictions


def read_prediction_records(path) -> tuple[str, Any]:
    """("jsonl", [(line, record)]) or ("json", document), told apart by content."""
    kind, data = read_json_or_jsonl(path, "prediction file", record_keys=("id", "qid", "vid", "video_id", "frames"))
    if kind == "json" and not isinstance(data, dict):
        raise InputError(f"each line of a prediction file must be a JSON object, got a {type(data).__name__}", path, 1)
    return kind, data


def adapt(bench, records, gold: Mapping, protocol: str, opts: Mapping, fusion: FusionParams | None = None,
          smooth_window: int | None = None, path=None) -> tuple[dict, dict]:
    """(predictions {id: benchmark prediction}, counts) from JSONL records: stream records through the
    post-processor and ``bench.from_stream``, other records through ``bench.from_record``.

    A prediction for an id the gold does not know is an error (``file:line``), except under protocols
    that drop unmatched ids (``match_number=false``, the reference's silent drop: counted)."""
    drop_unknown = opts.get("match_number") is False
    out, ids = {}, UniqueIds("prediction id")
    counts = {"stream": 0, "record": 0, "unknown_dropped": 0}
    for line, rec in records:
        i = ids.add(bench.record_id(rec, path, line), path, line)
        if i not in gold:
            if drop_unknown:
                counts["unknown_dropped"] += 1
                continue
            raise InputError(f"id {i!r} is not in the gold (predictions of another split or data set?)", path, line)
        if "frames" in rec:
            stream = ProcessedStream(StreamPrediction.from_record(rec, path, line), fusion, smooth_window=smooth_window)
            out[i] = bench.from_stream(stream, gold[i], protocol, opts)
            counts["stream"] += 1
        else:
            out[i] = bench.from_record(rec, gold[i], protocol, opts, path, line)
            counts["record"] += 1
    return out, counts


def load_prediction_file(bench, path, gold: Mapping, protocol: str, opts: Mapping, fusion: FusionParams | None = None,
                         smooth_window: int | None = None) -> tuple[dict, dict]:
    kind, data = read_prediction_records(path)
    if kind == "json":
        if not hasattr(bench, "from_document"):
            raise InputError(f"{bench.NAME} predictions are JSONL (one record per line), this is one JSON document", path)
        preds = bench.from_document(data, path)
        unknown = sorted(set(preds) - set(gold))
        if unknown and opts.get("match_number") is not False:
            raise InputError(f"{len(unknown)} predicted ids are not in the gold, e.g. {unknown[:5]}", path)
        return {k: v for k, v in preds.items() if k in gold}, {"document": len(preds), "unknown_dropped": len(unknown)}
    return adapt(bench, data, gold, protocol, opts, fusion, smooth_window, path)


# ----------------------------------------------------------------------- inference record


def run_record(pred_file) -> dict | None:
    """The run record beside a prediction file (``PRED.run.json``, test.run_benchmark), None without one."""
    from test.run_record import read_run_record, run_record_path

    path = run_record_path(pred_file)
    return read_run_record(path) if path.exists() else None


MISSING_RUN_RECORD = "missing: no PRED.run.json next to the predictions (settings unknown)"


def inference_protocol(run: Mapping | None) -> dict:
    """The inference protocol of a prediction file from its run record's engine block: fps, frames,
    tokens per frame, cache, prompt order, decision, generation, degradation, model (with the
    model files' hashes); all None and ``inference_record`` "missing: ..." without a record. The
    results of test.benchmark and test.evaluate record these."""
    eng = (run or {}).get("engine") or {}
    return {
        "fps": eng.get("fps"),
        "max_frames": eng.get("max_frames"),
        "tokens_per_frame": eng.get("tokens_per_frame"),
        "frame_size": eng.get("frame_size"),
        # records written before frame_resize existed letter-boxed with the antialiased filter
        "frame_resize": eng.get("frame_resize", "antialias" if eng else None),
        "cache_policy": eng.get("cache"),
        "prompt_order": eng.get("prompt_order"),
        "decision": eng.get("decision"),
        "generate": eng.get("generate"),
        "remove_assistant_turns": eng.get("remove_assistant_turns"),
        "max_new_tokens": eng.get("max_new_tokens"),
        # the other generation settings the responses were made with (youcook2 / magqa score them)
        "repetition_penalty": eng.get("repetition_penalty"),
        "respond_before_query": eng.get("respond_before_query"),
        "system_prompt": eng.get("system_prompt"),
        "degradation": eng.get("degrade", (run or {}).get("settings", {}).get("degrade")),
        "model": eng.get("model"),
        "inference_record": "found" if run else MISSING_RUN_RECORD,
    }


# --------------------------------------------------------------------------------- scoring


def score_files(func: str, pred_files: Sequence[str], gold_file: str, protocol: str | None = None,
                fusion: FusionParams | None = None, options: Mapping | None = None,
                smooth_window: int | None = None) -> list[dict]:
    """One result per prediction file: {"headline", "metrics", "per_item", "record"}."""
    bench = benchmarks.get(func)
    name, opts = bench.resolve(protocol, options)
    gold = bench.load_gold(gold_file, name, opts)
    fusion = fusion or FusionParams()
    loaded = [load_prediction_file(bench, p, gold, name, opts, fusion, smooth_window) for p in pred_files]
    if hasattr(bench, "score_many"):
        results = bench.score_many([p for p, _ in loaded], gold, name, options)
    else:
        results = [bench.score(p, gold, name, options) for p, _ in loaded]
    out = []
    for path, (_, counts), res in zip(pred_files, loaded, results):
        h_name, h_value = bench.headline(res["metrics"], name)
        res["record"].update(gold_file=str(gold_file), prediction_file=str(path), prediction_records=counts,
                             fusion=fusion.to_dict() if counts.get("stream") else None,
                             smoothing=(f"causal Savitzky-Golay, window {smooth_window}" if smooth_window else None)
                             if counts.get("stream") else None,
                             inference=inference_protocol(run_record(path)))
        out.append({"headline": {"name": h_name, "value": h_value}, **res})
    return out


def evaluate_files(func: str, pred_file: str, gold_file: str, protocol: str | None = None,
                   fusion: FusionParams | None = None, options: Mapping | None = None) -> dict:
    """``score_files`` for one prediction file."""
    return score_files(func, [pred_file], gold_file, protocol, fusion, options)[0]


# ------------------------------------------------------------------------------------- CLI


def parse_opt(items: list[str] | None) -> dict[str, Any]:
    """["k=5", "match_number=false", "split_file=a.json"] -> {"k": 5, "match_number": False, ...}."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--opt expects key=value, got {item!r}")
        if key in out:
            raise ValueError(f"--opt {key} given twice")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def build_fusion(args: argparse.Namespace) -> tuple[FusionParams, dict[str, str]]:
    """FusionParams from defaults < params file < flags, and where each value came from (the params
    file's tuning record, if any, in ``args.params_tuning``: checked against the scored items later)."""
    fusion = FusionParams()
    source = {k: "default" for k in FUSION_KEYS}
    args.params_tuning = {}
    if args.params_file:
        from_file, tuning = read_fusion_file(args.params_file, args.params_key)
        args.params_tuning = tuning
        fusion = replace(fusion, **from_file)
        source.update({k: f"params_file[{args.params_key}]" if args.params_key else "params_file" for k in from_file})
        if tuning.get("smooth_window") and args.smooth_window is None:  # tuned smoothed: scored smoothed
            args.smooth_window = tuning["smooth_window"]
            source["smooth_window"] = "params_file"
    flags = {k: getattr(args, k) for k in FUSION_KEYS if getattr(args, k) is not None}
    fusion = replace(fusion, **flags)
    source.update({k: "flag" for k in flags})
    return fusion, source


def stream_provenance(args: argparse.Namespace, pred_file: str) -> dict[str, Any]:
    """{"tuned_on", "tuned_on_test"} of the fusion applied to ``pred_file``'s stream records. A params
    file tuned on those very items (its record says tuned on test, or its tune_ids include them) is
    refused without --tuned_on_test."""
    if not args.params_file:
        return {"tuned_on": "not tuned (fixed parameters)", "tuned_on_test": False}
    kind, data = read_prediction_records(pred_file)
    bench = benchmarks.get(args.func)
    ids = [] if kind == "json" else [bench.record_id(rec, pred_file, line) for line, rec in data if "frames" in rec]
    where = f"--params_file {args.params_file}" + (f"[{args.params_key}]" if args.params_key else "")
    prov = fusion_provenance(args.params_tuning, ids, args.tuned_on_test, where, "--tuned_on_test")
    if not prov:
        return {"tuned_on": "unknown (the params file is not a tuning record)", "tuned_on_test": False}
    from test.tuning import TUNED_ON_TEST

    # a file tuned on some of the scored items (its tune_ids) is tuned on test, whatever its own label says
    # ("train split" beside tuned_on_test true before); the label is kept, as test.benchmark keeps it
    return {"tuned_on": TUNED_ON_TEST if prov["tuned_on_test"] else prov["tuned_on"],
            "tuned_on_test": prov["tuned_on_test"], "params_file_tuned_on": prov["tuned_on"],
            "n_scored_in_tune_ids": prov["n_reported_in_tune_ids"]}


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m test.evaluate", description=__doc__.split("\n\n")[0])
    names = sorted(benchmarks.MODULES) + sorted(benchmarks.ALIASES)
    p.add_argument("--func", "--benchmark", dest="func", required=True, choices=names)
    p.add_argument("--pred_file", required=True, action="append", help="prediction file (repeatable)")
    p.add_argument("--gold_file", required=True)
    p.add_argument("--output_file", default=None, help="full results JSON (per-item rows and the protocol record)")
    p.add_argument("--protocol", default=None, help="scorer protocol (default: the benchmark's official one)")
    for k in ("alpha", "beta", "epsilon", "tau"):
        p.add_argument(f"--{k}", type=float, default=None)
    p.add_argument("--uncertainty_kind", choices=("logvar", "variance"), default=None)
    p.add_argument("--params_file", default=None, help="JSON of fusion parameters (e.g. grid-search output)")
    p.add_argument("--params_key", default=None, help="key inside --params_file (e.g. the dataset name)")
    p.add_argument("--smooth_window", type=int, default=None, help="causal Savitzky-Golay smoothing of the fused score")
    p.add_argument("--tuned_on_test", action="store_true",
                   help="accept a --params_file tuned on the scored items (the result is then stamped tuned_on_test)")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="scorer option (repeatable)")
    add_debug_flag(p)
    return p


def run(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    if len(set(args.pred_file)) != len(args.pred_file):
        raise ValueError("a --pred_file is given twice")
    for k in ("alpha", "beta", "epsilon", "tau"):  # argparse's float() takes "nan" and "inf"
        check_number(getattr(args, k), f"--{k}")
    check_number(args.smooth_window, "--smooth_window", minimum=0)
    fusion, fusion_source = build_fusion(args)
    options = parse_opt(args.opt)
    if args.output_file:
        check_output_file(args.output_file, "--output_file")
    if benchmarks.get(args.func).NAME == "magqa" and args.output_file and "judge_cache" not in options:
        # an LLM judge is slow and may fail half-way: keep its judgements so a rerun resumes
        options["judge_cache"] = str(args.output_file) + ".judge_cache.jsonl"
    provenance = {p: stream_provenance(args, p) for p in args.pred_file}  # refused before any (slow) scoring
    try:
        results = score_files(args.func, args.pred_file, args.gold_file, args.protocol, fusion, options, args.smooth_window)
    except JudgeIncomplete as e:  # recorded per item, no score; the same command resumes from the cache
        if args.output_file:
            atomic_write_json(args.output_file, e.record())
        raise
    for path, res in zip(args.pred_file, results):
        res["record"].update(func=args.func, options_given=options,
                             fusion_source=fusion_source if res["record"].get("fusion") else None)
        if res["record"].get("fusion"):
            res["record"].update(provenance[path])
    if args.output_file:
        atomic_write_json(args.output_file, results[0] if len(results) == 1 else
                          {"results": {str(p): r for p, r in zip(args.pred_file, results)}})
    return results


def adjustments(record: Mapping) -> dict:
    """The non-zero counts of how predictions were fitted to the gold's time bins (bins filled where a
    prediction stops early, frames past the end dropped): they change the numbers, so the summary
    shows them, not only --output_file."""
    out = {}
    for key, counts in record.items():
        if key.endswith("pooling_counts") and isinstance(counts, Mapping):
            nonzero = {k: v for k, v in counts.items() if v}
            if nonzero:
                out[key] = nonzero
    return out


def summary(result: Mapping, pred_file: str) -> dict:
    out = {"pred_file": pred_file, "headline": result["headline"], "metrics": result["metrics"],
           "n_items": len(result.get("per_item") or {})}
    adjusted = adjustments(result.get("record") or {})
    if adjusted:
        out["adjusted"] = adjusted
    return out


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list)
    return run_cli("evaluate", lambda: _main(args_list, args.pred_file), debug=args.debug, outputs=args.output_file)


def _main(args_list: list[str], pred_files: list[str]) -> int:
    results = run(args_list)
    for res, p in zip(results, pred_files):
        brief = summary(res, str(Path(p)))
        print(dumps(brief, indent=2))
        if "adjusted" in brief:
            print(f"note: {p}: predictions were fitted to the gold's time bins ({dumps(brief['adjusted'])}); "
                  "the per-item counts are in --output_file", file=sys.stderr)
    if not any(a == "--output_file" or a.startswith("--output_file=") for a in args_list):
        print("(per-item results: pass --output_file)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
