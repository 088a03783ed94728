"""Held-out tuning, scoring and the results record of one benchmark run.

    python -m test.benchmark --dataset tvsum --pred PRED.jsonl --gold tvsum_anno.json --out RESULTS.json \
        [--protocol umt|aha|...] [--opt key=value ...] [--split test]
        [--tune kfold|split:IDS.json|pred:TUNE_PRED.jsonl|none] [--folds 5] [--tune_seed 0] [--tune_on_test]
        [--grid default|reference|GRID.json] [--uncertainty_kind logvar|variance]
        [--alpha A --beta B --epsilon E --tau T | --params_file P [--params_key K]]
        [--missing drop|count] [--params_out PARAMS.json] [--plots N]

1. **Tuning** (score-based benchmarks: tvsum, tvsum_degraded, hisum, charades, qvh) of the fusion
   weights alpha, beta, epsilon, tau (``test/tuning.py``), never on the items it reports unless
   asked:
   * ``kfold`` (default): the reported items are split into ``--folds`` seeded folds; each fold is
     scored with the weights tuned on the other folds (every fold's weights are recorded);
   * ``split:IDS.json``: tune on the listed ids (a JSON list, or an object with ``tune_ids``),
     report on the other predicted items;
   * ``pred:TUNE_PRED.jsonl``: tune on every item of another prediction file (e.g. a validation
     split streamed separately), scored against ``--tune_gold`` (default ``--gold``);
   * ``none``: fixed weights from the flags / ``--params_file`` / the paper's zero-shot defaults;
   * ``--tune_on_test``: tune on the reported items themselves (the reference's protocol; §9 item
     23); the record says ``"tuned_on_test": true``.
   The objective is the benchmark's headline metric computed with the scorer's own functions on
   the tuning items: TVSum top-5 mAP, Mr.HiSum mAP@50, Charades-STA R1@0.5, QVHighlights
   HL-min-VeryGood mAP. Response-based benchmarks (youcook2, magqa) have nothing to tune: their
   responses were decided online (``--threshold`` / ``--cumulative_threshold`` at inference).
2. **Scoring** with the benchmark's scorer (``test/scorers``, ``evaluate_files``). Each item's
   fused score (with its own fold's weights) is written to ``<out>_files/scored.jsonl`` as the
   ``relevance`` column and scored with the identity fusion (alpha 0, beta 1, epsilon 0), so the
   scorer sees exactly the tuned scores. Items the scorer should not see (tuning items, gold items
   without prediction under ``--missing drop``) are removed from a copy of the gold file in the
   same folder. ``--missing count`` keeps gold items without prediction in, scored by the
   scorer's own rule (IoU 0, an empty prediction, or an error where the official protocol demands
   every item).
3. **RESULTS.json**: ``{"metrics", "headline", "protocol", "files"}``; ``protocol`` records the
   dataset, split, fps, tokens per frame, cache policy, decision thresholds, fusion weights (per
   fold for k-fold), tuned_on / tuned_on_test, prompt variant and templates, degradation,
   model/checkpoint, coverage (gold / predicted / failed / scored items) and the commands
   (conversion, inference, this one), taken from ``PRED.run.json`` written by
   ``test.run_benchmark``.
"""
from __future__ import annotations

import abc

import argparse
import dataclasses
import logging
import math
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from test.postprocess import FusionParams, fuse_prediction
from test.predictions import StreamPrediction, load_predictions
from test.tuning import TUNED_ON_TEST, apply_params, default_grid, grid_search, reference_grid, save_params
from utils.io import atomic_write_json, atomic_write_text, dumps, iter_jsonl, read_json

log = logging.getLogger("benchmark")

# Fusion that returns the relevance column unchanged: y = 0*i + 1*r - 0*penalty.
IDENTITY = FusionParams(alpha=0.0, beta=1.0, epsilon=0.0, tau=0.0, uncertainty_kind="logvar")
NOT_TUNED = "not tuned (fixed parameters)"
NOT_TUNABLE = "nothing to tune (responses decided at inference)"


# ---------------------------------------------------------------------------- helpers


def fused_prediction(p: StreamPrediction, y: np.ndarray) -> StreamPrediction:
    """``p`` with the fused score in the relevance column and zeros elsewhere (for IDENTITY)."""
    zeros = np.zeros_like(np.asarray(y, dtype=np.float64))
    return dataclasses.replace(p, informative=zeros, relevance=np.asarray(y, dtype=np.float64), uncertainty=zeros)


def fused_record(p: StreamPrediction, y: np.ndarray) -> dict:
    """An in-memory prediction record (arrays kept as numpy) carrying the fused score (IDENTITY)."""
    rec = {"id": p.id, "fps": p.fps, "duration": p.duration, **p.extra,
           "frames": {"time": p.time, "informative": np.zeros(len(y)), "relevance": np.asarray(y, dtype=np.float64),
                      "uncertainty": np.zeros(len(y))}}
    if p.native_frame_index is not None:
        rec["native_frame_index"] = p.native_frame_index
    return rec


def _mean(values) -> float:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else float("nan")


def _write_jsonl(path: Path, records) -> None:
    atomic_write_text(path, "".join(dumps(r) + "\n" for r in records))


def _require(gold: Mapping, ids: Sequence[str], what: str) -> None:
    missing = [i for i in ids if i not in gold]
    if missing:
        raise ValueError(f"{len(missing)} {what} ids are not in the gold file, e.g. {missing[:3]}")


# --------------------------------------------------------------------------- adapters


class Adapter(abc.ABC):
    """What the benchmark step needs to know about one dataset's scorer."""

    name = ""
    func = ""                     # test.evaluate --func
    default_protocol: str | None = None

    def __init__(self):
        self._cache: dict = {}

    def scorer(self):
        from test.evaluate import load_scorer

        return load_scorer(self.func)

    def protocol(self, protocol: str | None) -> str | None:
        return protocol or self.default_protocol

    def tunable(self, protocol: str | None, options: Mapping) -> bool:
        return True

    @abc.abstractmethod
    def gold_ids(self, gold_file: str, protocol: str | None, options: Mapping) -> list[str]:
        ...

    @abc.abstractmethod
    def restrict(self, gold_file: str, ids: Sequence[str], workdir: Path, options: dict) -> tuple[str, dict]:
        """A gold file (and options) that score exactly ``ids``."""
        ...

    @abc.abstractmethod
    def headline(self, result: Mapping, protocol: str | None) -> tuple[str, float | None]:
        ...

    def objective(self, preds: Mapping[str, StreamPrediction], gold_file: str, protocol: str | None,
                  options: Mapping, ids: Sequence[str]) -> tuple[Callable[[dict], float], str]:
        """(objective(fused {id: scores}) -> headline metric on those items, its name)."""
        raise ValueError(f"{self.name}: {NOT_TUNABLE}")

    def _memo(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


class TVSumAdapter(Adapter):
    name, func, default_protocol = "tvsum", "tvsum", "umt"

    def _gold(self, gold_file, protocol):
        sc = self.scorer()
        if protocol == "aha":
            return self._memo(("frame", gold_file), lambda: sc.load_frame_gold(gold_file))
        return self._memo(("clip", gold_file), lambda: sc.load_clip_gold(gold_file))

    def gold_ids(self, gold_file, protocol, options):
        ids = list(self._gold(gold_file, self.protocol(protocol)))
        if options.get("videos_file"):
            keep = set(self.scorer().read_video_list(options["videos_file"]))
            ids = [i for i in ids if i in keep]
        return ids

    def restrict(self, gold_file, ids, workdir, options):
        path = workdir / "videos.json"
        atomic_write_json(path, list(ids))
        return gold_file, {**options, "videos_file": str(path)}

    def headline(self, result, protocol):
        return "top5_mAP", result.get("top5_mAP")

    def objective(self, preds, gold_file, protocol, options, ids):
        sc = self.scorer()
        name = self.protocol(protocol)
        opts = {**sc.PROTOCOLS[name], **{k: v for k, v in options.items() if k in sc.PROTOCOLS[name]},
                "match_number": True, "videos_file": None}
        gold = self._gold(gold_file, name)
        _require(gold, ids, "tuning")
        if name == "umt":
            def top5_map(fused):
                recs = {i: fused_record(preds[i], y) for i, y in fused.items()}
                return sc.evaluate_umt(recs, {i: gold[i] for i in fused}, IDENTITY, opts)["metrics"]["top5_mAP"]
        else:
            fps_table = {}
            if opts.get("info_file"):
                fps_table = {v: float(r["fps"]) for v, r in read_json(opts["info_file"]).items() if "fps" in r}

            def top5_map(fused):
                recs = {i: fused_record(preds[i], y) for i, y in fused.items()}
                res = sc.evaluate_aha(recs, {i: gold[i] for i in fused}, IDENTITY, opts, fps_table, "info_file")
                return res["metrics"]["top5_mAP"]
        return top5_map, f"tvsum {name} top5_mAP"


class TVSumDegradedAdapter(TVSumAdapter):
    name, func = "tvsum_degraded", "tvsum_degraded"


class HiSumAdapter(Adapter):
    name, func, default_protocol = "hisum", "hisum", "official"

    def gold_ids(self, gold_file, protocol, options):
        sc = self.scorer()
        if options.get("split_file"):
            return sc.split_videos(options["split_file"], options.get("split_key", "test_keys"))
        import h5py

        with h5py.File(gold_file, "r") as f:
            return list(f.keys())

    def restrict(self, gold_file, ids, workdir, options):
        path = workdir / "split.json"
        atomic_write_json(path, {"scored": list(ids)})
        return gold_file, {**options, "split_file": str(path), "split_key": "scored"}

    def headline(self, result, protocol):
        return "mAP50", result.get("mAP50")

    def objective(self, preds, gold_file, protocol, options, ids):
        sc = self.scorer()
        name = self.protocol(protocol)
        opts = {**sc.PROTOCOLS[name], **{k: v for k, v in options.items() if k in sc.PROTOCOLS[name]}}
        gold = self._memo(("h5", gold_file, tuple(sorted(ids))), lambda: sc.load_gold(gold_file, sorted(ids), need_summary=False))

        def map50(fused):
            vals = []
            for i, y in fused.items():
                g = gold[i]["gtscore"]
                rec = fused_record(preds[i], y)
                if name == "official":
                    p, _ = sc.per_second_scores(rec, len(g), IDENTITY, opts["clip_pool"])
                    vals.append(sc.official_video_metrics(g, p, None, None, int(opts["segment_s"]),
                                                          float(opts["budget"]), opts["nfps"])["mAP50"])
                else:
                    p, _ = sc.per_second_scores(rec, None, IDENTITY, opts["clip_pool"])
                    m = min(len(p), len(g))
                    pp, gg = (p[1:m], g[:max(0, m - 1)]) if opts["lag_one_frame"] else (p[:m], g[:m])
                    vals.append(sc.aha_video_metrics(gg, pp, float(opts["budget"]), int(opts["f1_shot_s"]))["mAP50"]
                                if len(pp) else None)
            return 100.0 * _mean(vals)
        return map50, f"hisum {name} mAP50"


class CharadesAdapter(Adapter):
    name, func, default_protocol = "charades", "charades", "standard"

    def tunable(self, protocol, options):
        return self.protocol(protocol) != "text" and options.get("score_source", "fused") == "fused"

    def _gold(self, gold_file, options):
        sc = self.scorer()
        csv = options.get("durations_csv")
        return self._memo(("gold", gold_file, csv), lambda: sc.load_gold(gold_file, csv))

    def gold_ids(self, gold_file, protocol, options):
        return list(self._gold(gold_file, options))

    def restrict(self, gold_file, ids, workdir, options):
        # Ids are line numbers: unwanted lines become blank lines, so the kept ones keep their ids.
        sc = self.scorer()
        keep = set(ids)
        lines = Path(gold_file).read_text(encoding="utf-8").splitlines()
        out = []
        for i, line in enumerate(lines):
            vid = line.split(maxsplit=1)[0] if line.strip() else ""
            out.append(line if f"{vid}#{i}" in keep else "")
        path = workdir / Path(gold_file).name
        atomic_write_text(path, "\n".join(out) + "\n")
        csv = options.get("durations_csv") or str(sc.default_durations_csv(gold_file))
        return str(path), {**options, "durations_csv": csv}

    def headline(self, result, protocol):
        return "R1@0.5", result.get("metrics", {}).get("R1@0.5")

    def objective(self, preds, gold_file, protocol, options, ids):
        sc = self.scorer()
        name = self.protocol(protocol)
        gold = self._gold(gold_file, options)
        _require(gold, ids, "tuning")
        if name == "standard":
            threshold = float(options.get("threshold", sc.CAUSAL_THRESHOLD))
            window = int(options.get("window", sc.CAUSAL_WINDOW))
            anchor = options.get("anchor", sc.CAUSAL_ANCHOR)
            anchor = None if anchor is None else float(anchor)

            def r1(fused):
                fp = {i: fused_prediction(preds[i], y) for i, y in fused.items()}
                return sc.score_standard({i: gold[i] for i in fused}, fp, IDENTITY, threshold, window, anchor,
                                         "fused")["metrics"]["R1@0.5"]
        else:
            w = options.get("window", sc.REFERENCE_WINDOW)
            windows = [int(w)] if isinstance(w, (int, float)) else [int(x) for x in w][:1]

            def r1(fused):
                fp = {i: fused_prediction(preds[i], y) for i, y in fused.items()}
                return sc.score_reference({i: gold[i] for i in fused}, fp, IDENTITY, windows,
                                          sc.REFERENCE_THRESHOLDS, "fused")["metrics"]["R1@0.5"]
        return r1, f"charades {name} R1@0.5"


class QVHAdapter(Adapter):
    name, func, default_protocol = "qvh", "qvh", "official"

    def _gold(self, gold_file):
        return self._memo(("gold", gold_file), lambda: self.scorer().load_gold(gold_file))

    def gold_ids(self, gold_file, protocol, options):
        return list(self._gold(gold_file))

    def restrict(self, gold_file, ids, workdir, options):
        keep = set(ids)
        path = workdir / Path(gold_file).name
        _write_jsonl(path, (r for r in iter_jsonl(gold_file) if str(r.get("qid")) in keep))
        return str(path), options

    def headline(self, result, protocol):
        return "HL-min-VeryGood-mAP", result.get("brief", {}).get("HL-min-VeryGood-mAP")

    def objective(self, preds, gold_file, protocol, options, ids):
        sc = self.scorer()
        name = self.protocol(protocol)
        opts = {**sc.PROTOCOLS[name], **{k: v for k, v in options.items() if k in sc.PROTOCOLS[name]},
                "match_number": True, "round_digits": None}  # unrounded: rounding would create ties
        gold = self._gold(gold_file)
        _require(gold, ids, "tuning")

        def hl_map(fused):
            recs = [fused_record(preds[i], y) for i, y in fused.items()]
            g = {i: gold[i] for i in fused}
            sub, _ = sc.read_submission(recs, g, IDENTITY, opts["clip_pool"])
            sub = {q: {"saliency": s["saliency"], "windows": None} for q, s in sub.items()}  # HD only
            metrics, _ = sc.score_submission(sub, g, opts)
            return metrics["brief"]["HL-min-VeryGood-mAP"]
        return hl_map, f"qvh {name} HL-min-VeryGood-mAP"


class YouCook2Adapter(Adapter):
    name, func, default_protocol = "youcook2", "youcook2", "official"

    def tunable(self, protocol, options):
        return False

    def gold_ids(self, gold_file, protocol, options):
        return list(read_json(gold_file))

    def restrict(self, gold_file, ids, workdir, options):
        data = read_json(gold_file)
        path = workdir / Path(gold_file).name
        atomic_write_json(path, {i: data[i] for i in ids})
        return str(path), options

    def headline(self, result, protocol):
        m = result.get("metrics", {})
        return ("SODA_c", m["SODA_c"]) if "SODA_c" in m else ("F1_Score", m.get("F1_Score"))


class MAGQAAdapter(Adapter):
    name, func, default_protocol = "magqa", "magqa", "in_span"

    def tunable(self, protocol, options):
        return False

    def _records(self, gold_file):
        return list(iter_jsonl(gold_file)) if str(gold_file).endswith(".jsonl") else read_json(gold_file)

    def gold_ids(self, gold_file, protocol, options):
        return [str(r["question_id"]) for r in self._records(gold_file)]

    def restrict(self, gold_file, ids, workdir, options):
        keep = set(ids)
        path = workdir / (Path(gold_file).stem + ".json")
        atomic_write_json(path, [r for r in self._records(gold_file) if str(r["question_id"]) in keep])
        return str(path), options

    def headline(self, result, protocol):
        return "in_span_score", result.get("metrics", {}).get("in_span_score")


ADAPTERS: dict[str, type[Adapter]] = {a.name: a for a in (TVSumAdapter, TVSumDegradedAdapter, HiSumAdapter, CharadesAdapter,
                                                         QVHAdapter, YouCook2Adapter, MAGQAAdapter)}


# ------------------------------------------------------------------------------ inputs


def read_grid(spec: str, kind: str) -> dict:
    if spec == "default":
        return default_grid(kind)
    if spec == "reference":
        return reference_grid(kind)
    grid = read_json(spec)
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"--grid {spec}: expected a JSON object {{param: [values]}}")
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


def fixed_fusion(args) -> tuple[FusionParams, dict]:
    """Fusion from defaults < --params_file[--params_key] < flags, and where it came from."""
    base: dict[str, Any] = {}
    source: dict[str, Any] = {"defaults": "paper zero-shot (alpha 0.7, beta 1.0, epsilon -2.9, tau 0.3)"}
    if args.params_file:
        data = read_json(args.params_file)
        entry = data.get(args.params_key) if args.params_key else data
        if not isinstance(entry, dict):
            raise ValueError(f"{args.params_file}: no parameters under {args.params_key!r}")
        if "params" in entry and "protocol" in entry:  # a test.tuning.save_params record
            if entry.get("tuned_on_test") and not args.tune_on_test:
                raise ValueError(f"{args.params_file}[{args.params_key}] was tuned on the reported data; "
                                 "pass --tune_on_test to use it (the results are then stamped as such)")
            if entry["params"] is None:
                raise ValueError(f"{args.params_file}[{args.params_key}] holds per-fold parameters (k-fold); "
                                 "tune with --tune kfold instead")
            source["params_file_tuned_on"] = entry["protocol"].get("tuned_on")
            source["params_file_tuned_on_test"] = bool(entry.get("tuned_on_test"))
            entry = entry["params"]
        else:
            from test.evaluate import params_from_file

            entry = params_from_file(args.params_file, args.params_key)
        base.update({k: entry[k] for k in ("alpha", "beta", "epsilon", "tau", "uncertainty_kind") if entry.get(k) is not None})
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
    return {str(r["id"]): r for r in iter_jsonl(path)} if path.exists() else {}


def run_record(pred_file: str) -> dict | None:
    from test.run_benchmark import run_record_path

    path = run_record_path(pred_file)
    return read_json(path) if path.exists() else None


# ------------------------------------------------------------------------------- steps


def tune(args, adapter: Adapter, protocol: str | None, options: dict, preds: dict[str, StreamPrediction],
         report_ids: list[str], fixed: FusionParams) -> tuple[dict, dict[str, np.ndarray], dict]:
    """(tuning result or fixed record, fused scores of the reported items, extra predictions used)."""
    mode = args.tune
    if mode == "none":
        fused = {i: fuse_prediction(preds[i], fixed) for i in report_ids}
        return {"mode": "fixed", "params": fixed.to_dict()}, fused, {}
    pool = dict(preds)
    tune_ids = None
    tune_gold = args.tune_gold or args.gold
    if mode.startswith("split:"):
        tune_ids = read_ids(mode[len("split:"):])
        missing = [i for i in tune_ids if i not in preds]
        if missing:
            raise ValueError(f"{len(missing)} tuning ids have no prediction in {args.pred}, e.g. {missing[:3]}")
    elif mode.startswith("pred:"):
        extra = load_predictions(mode[len("pred:"):])
        overlap = sorted(set(extra) & set(preds))
        if overlap:
            raise ValueError(f"the tuning predictions share {len(overlap)} ids with {args.pred}, e.g. {overlap[:3]}")
        pool.update(extra)
        tune_ids = sorted(extra)
    elif mode != "kfold":
        raise ValueError(f"--tune must be kfold, split:IDS.json, pred:PRED.jsonl or none, got {mode!r}")
    kind = fixed.uncertainty_kind
    objective_ids = tune_ids if tune_ids is not None else report_ids
    objective, name = adapter.objective(pool, tune_gold if tune_ids is not None else args.gold, protocol, options,
                                        objective_ids)
    grid = read_grid(args.grid, kind)
    result = grid_search(pool, objective, grid=grid, tune_ids=tune_ids,
                         report_ids=report_ids, k_folds=args.folds if mode == "kfold" and not args.tune_on_test else None,
                         seed=args.tune_seed, uncertainty_kind=kind, base=fixed,
                         allow_tune_on_test=args.tune_on_test, objective_name=name)
    if mode.startswith("pred:") and not result["tuned_on_test"]:
        # grid_search calls any disjoint tuning set "train split"; here it is another prediction file
        # (hisum.sh TUNE_SPLIT=val_keys: the validation videos), so say which
        result["protocol"]["tuned_on"] = f"held-out predictions ({Path(mode[len('pred:'):]).name})"
    fused = apply_params(pool, result, report_ids)
    if args.params_out:
        save_params(args.params_out, args.dataset, result, note=f"test.benchmark --tune {mode}")
    return result, fused, pool


def fusion_record(result: dict, args) -> dict:
    """The fusion part of the protocol record (compatible with tuning.params_for)."""
    if result.get("mode") == "fixed":
        return {"mode": "fixed", "params": result["params"], "source": result.get("source")}
    proto = result["protocol"]
    common = {"objective": proto["objective"], "grid": proto["grid"], "n_combos": proto["n_combos"],
              "seed": proto["seed"], "uncertainty_kind": proto["uncertainty_kind"], "tune_score": result["tune_score"]}
    if result.get("folds"):
        return {"mode": "k-fold", "k": proto["k_folds"], **common,
                "folds": [{"fold": f["fold"], "report_ids": f["report_ids"], "n_tune": len(f["tune_ids"]),
                           "best_params": f["best_params"], "tune_score": f["tune_score"]} for f in result["folds"]]}
    mode = "tuned on the reported items" if result["tuned_on_test"] else (
        "prediction file" if args.tune.startswith("pred:") else "split")
    return {"mode": mode, "params": result["best_params"], **common,
            "tune_ids": result["tune_ids"] if len(result["tune_ids"]) <= 2000 else f"{len(result['tune_ids'])} ids",
            "tune_source": args.tune if not result["tuned_on_test"] else "the reported items"}


def protocol_record(args, argv, adapter, protocol, options, result, coverage, run, scorer_record, tunable,
                    prompt_variants) -> dict:
    eng = (run or {}).get("engine") or {}
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
        "scorer": {"func": adapter.func, "protocol": protocol, "options": options, "record": scorer_record},
        "fps": eng.get("fps"),
        "max_frames": eng.get("max_frames"),
        "tokens_per_frame": eng.get("tokens_per_frame"),
        "frame_size": eng.get("frame_size"),
        "cache_policy": eng.get("cache"),
        "prompt_order": eng.get("prompt_order"),
        "decision": eng.get("decision"),
        "generate": eng.get("generate"),
        "remove_assistant_turns": eng.get("remove_assistant_turns"),
        "max_new_tokens": eng.get("max_new_tokens"),
        "fusion": fusion_record(result, args) if tunable else None,
        "tuned_on": tuned_on,
        "tuned_on_test": on_test,
        "prompt_variant": variants[0] if len(variants) == 1 else (variants or None),
        "query_templates": {k: (conv.get("options") or {}).get(k) for k in ("template", "seed", "prompt")} if conv else None,
        "degradation": eng.get("degrade", (run or {}).get("settings", {}).get("degrade")),
        "model": eng.get("model"),
        "coverage": coverage,
        "command": {"convert": conv.get("command"),
                    "inference": [r.get("command") for r in (run or {}).get("runs", [])] or None,
                    "benchmark": ["python", "-m", "test.benchmark", *argv]},
        "inference_record": "found" if run else "missing: no PRED.run.json next to the predictions (settings unknown)",
    }


# -------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m test.benchmark", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=sorted(ADAPTERS))
    ap.add_argument("--pred", required=True, help="prediction JSONL from test.run_benchmark")
    ap.add_argument("--gold", required=True, help="the scorer's gold file (see instructions/benchmarks.md)")
    ap.add_argument("--out", required=True, help="RESULTS.json")
    ap.add_argument("--protocol", default=None, help="scorer protocol (default: the scorer's official one)")
    ap.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="scorer option (repeatable)")
    ap.add_argument("--split", default=None, help="name of the evaluated split, recorded (e.g. test, val)")
    g = ap.add_argument_group("tuning")
    g.add_argument("--tune", default=None, help="kfold (default) | split:IDS.json | pred:TUNE_PRED.jsonl | none")
    g.add_argument("--tune_on_test", action="store_true", help="tune on the reported items (stamped tuned_on_test)")
    g.add_argument("--tune_gold", default=None, help="gold file of the tuning items for --tune pred: (default --gold)")
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
    return ap


def main(argv: list[str] | None = None) -> int:
    from utils.log import setup_logging

    setup_logging("INFO")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        results = run(args, argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"benchmark: error: {e}", file=sys.stderr)
        return 2
    h = results["headline"]
    p = results["protocol"]
    cov = p["coverage"]
    print(f"{args.dataset}: {h['name']} = {h['value']}  (scored {cov['n_scored']} of {cov['n_gold']} gold items; "
          f"tuned_on: {p['tuned_on']}) -> {args.out}")
    return 0


def run(args, argv: list[str]) -> dict:
    from test.evaluate import parse_opt

    adapter = ADAPTERS[args.dataset]()
    protocol = adapter.protocol(args.protocol)
    options = parse_opt(args.opt)
    tunable = adapter.tunable(protocol, options)
    if args.tune_on_test and args.tune not in (None, "kfold", "none"):
        raise ValueError("--tune_on_test tunes on the reported items: it cannot be combined with --tune " + args.tune)
    if args.tune_on_test and args.tune == "none" and not args.params_file:
        raise ValueError("--tune none --tune_on_test only serves to accept a --params_file tuned on the reported data")
    if not tunable:
        if args.tune not in (None, "none") or args.tune_on_test:
            raise ValueError(f"{args.dataset} ({protocol}): {NOT_TUNABLE}; drop --tune/--tune_on_test")
        args.tune = "none"
    args.tune = args.tune or "kfold"
    out = Path(args.out)
    workdir = out.with_name(out.stem + "_files")
    workdir.mkdir(parents=True, exist_ok=True)

    preds = load_predictions(args.pred)
    if not preds:
        raise ValueError(f"{args.pred}: no prediction")
    gold_ids = adapter.gold_ids(args.gold, protocol, options)
    gold_set = set(gold_ids)
    tune_set = set()
    if args.tune.startswith("split:"):
        tune_set = set(read_ids(args.tune[len("split:"):]))
    report_ids = [i for i in preds if i in gold_set and i not in tune_set]
    if not report_ids:
        raise ValueError(f"no predicted item of {args.pred} is in the gold file {args.gold} (outside the tuning ids)")
    errors = error_ids(args.pred)
    fixed, fixed_source = fixed_fusion(args)

    # 1. tuning (or fixed weights) -> one fused series per reported item
    if tunable:
        result, fused, _ = tune(args, adapter, protocol, options, preds, report_ids, fixed)
        if result.get("mode") == "fixed":
            result["source"] = fixed_source
        scored = [{**fused_prediction(preds[i], fused[i]).to_record(), "raw_frames": preds[i].to_record()["frames"],
                   "scored_as": "relevance = fused score; score with identity fusion (alpha 0, beta 1, epsilon 0)"}
                  for i in report_ids]
        scored_file = workdir / "scored.jsonl"
        _write_jsonl(scored_file, scored)
    else:
        result, scored_file = {"mode": "none"}, Path(args.pred)

    # 2. scoring on exactly the reported items (plus, with --missing count, the unpredicted gold items)
    report_set = set(report_ids)
    score_ids = [i for i in gold_ids if i not in tune_set and (args.missing == "count" or i in report_set)]
    gold_file, score_options = args.gold, dict(options)
    if score_ids != gold_ids:
        gold_file, score_options = adapter.restrict(args.gold, score_ids, workdir, dict(options))
    scorer = adapter.scorer()
    try:
        metrics = scorer.evaluate_files(str(scored_file), str(gold_file), protocol=protocol,
                                        fusion=IDENTITY if tunable else None, options=score_options or None)
    except ValueError as e:
        if args.missing == "count" and len(score_ids) > len(report_ids):
            raise ValueError(f"{e} [--missing count kept {len(score_ids) - len(report_ids)} unpredicted gold items; "
                             "--missing drop scores the predicted ones]") from None
        raise
    scorer_record = metrics.pop("protocol", None)
    if tunable and isinstance(scorer_record, dict) and "fusion" in scorer_record:
        scorer_record["fusion"] = "identity: each item's fused score was computed before scoring (protocol.fusion)"

    missing = [i for i in gold_ids if i not in tune_set and i not in preds]
    coverage = {
        "n_gold": len(gold_ids), "n_predicted": sum(1 for i in gold_ids if i in preds),
        "n_tuning_only": len([i for i in gold_ids if i in tune_set]),
        "n_reported": len(report_ids), "n_scored": len(score_ids) if args.missing == "count" else len(report_ids),
        "n_missing": len(missing), "missing_policy": args.missing,
        "missing_ids": missing[:50], "n_failed_at_inference": len([i for i in errors if i not in preds]),
        "failed_examples": [{k: errors[i].get(k) for k in ("id", "error", "message")} for i in errors if i not in preds][:10],
        "n_extra_predictions": len([i for i in preds if i not in gold_set]),
        "complete": not missing,
    }
    if missing:
        log.warning("%d of %d gold items have no prediction (%s)", len(missing), len(gold_ids),
                    "left out of the scores" if args.missing == "drop" else "scored by the scorer's rule")
    run = run_record(args.pred)
    protocol_rec = protocol_record(args, argv, adapter, protocol, options, result, coverage, run, scorer_record, tunable,
                                   [preds[i].extra.get("prompt_variant") for i in report_ids])
    name, value = adapter.headline(metrics, protocol)
    results = {
        "metrics": metrics,
        "headline": {"name": name, "value": value},
        "protocol": protocol_rec,
        "files": {"predictions": str(Path(args.pred).resolve()), "gold": str(Path(args.gold).resolve()),
                  "scored_predictions": str(scored_file.resolve()), "scored_gold": str(Path(gold_file).resolve()),
                  "items": ((run or {}).get("items") or {}).get("path")},
    }
    atomic_write_json(out, results)
    if args.plots > 0:
        from test.visualize import plot_results

        plot_results(out, workdir / "plots", max_show=args.plots)
    return results


if __name__ == "__main__":
    sys.exit(main())
