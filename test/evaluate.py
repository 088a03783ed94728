"""``python -m test.evaluate``: score a prediction file with one benchmark's scorer.

    python -m test.evaluate --func tvsum --pred_file P --gold_file G [--output_file O]
        [--protocol X] [--alpha A --beta B --epsilon E --tau T --uncertainty_kind K]
        [--params_file grid_search_params.json --params_key tvsum] [--opt key=value ...]

Prints the metrics as JSON on stdout and, with --output_file, writes the same JSON atomically.
Every scorer module exposes ``evaluate_files(pred_file, gold_file, protocol, fusion, options)``;
modules are imported only when their --func is asked for.

Fusion weights: the FusionParams defaults, overridden by --params_file[--params_key] (keys alpha,
beta, epsilon, tau; the reference's "uncertainty_threshold" is read as tau, and a null epsilon
falls back to its "uncertainty_penalty"), overridden by the explicit flags.
--opt values are parsed as JSON when possible (true, 3, 0.5, null, [1,2]), else kept as strings.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import replace
from typing import Any

from test.postprocess import FusionParams
from utils.io import atomic_write_json, dumps, read_json

# --func name -> scorer module (aliases share a module)
REGISTRY: dict[str, str] = {
    "tvsum": "test.scorers.tvsum",
    "tvsum_degraded": "test.scorers.tvsum",
    "hisum": "test.scorers.hisum",
    "qvh": "test.scorers.qvh",
    "charades": "test.scorers.charades",
    "grounding": "test.scorers.charades",
    "youcook2": "test.scorers.youcook2",
    "dense_captioning": "test.scorers.youcook2",
    "magqa": "test.scorers.magqa",
}

FUSION_KEYS = ("alpha", "beta", "epsilon", "tau", "uncertainty_kind")


def load_scorer(func: str):
    """The scorer module for ``func``; a clear error for an unknown name or a module not written yet."""
    if func not in REGISTRY:
        raise ValueError(f"unknown --func {func!r}; choose from {sorted(REGISTRY)}")
    name = REGISTRY[func]
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == name:
            raise ValueError(f"--func {func}: scorer module {name} is not available") from e
        raise
    if not hasattr(module, "evaluate_files"):
        raise ValueError(f"scorer module {name} has no evaluate_files()")
    return module


def parse_opt(items: list[str] | None) -> dict[str, Any]:
    """["k=5", "match_number=false", "split_file=a.json"] -> {"k": 5, "match_number": False, ...}."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--opt expects key=value, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def params_from_file(path: str, key: str | None) -> dict[str, Any]:
    """Fusion parameters from a grid-search JSON (a flat dict, or a dict of dataset -> dict)."""
    data = read_json(path)
    if key is not None:
        if key not in data:
            raise ValueError(f"{path}: no key {key!r} (has {sorted(data)})")
        data = data[key]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: fusion parameters must be a JSON object")
    out: dict[str, Any] = {}
    for k in ("alpha", "beta", "epsilon", "tau", "uncertainty_kind"):
        if data.get(k) is not None:
            out[k] = data[k]
    if "tau" not in out and data.get("uncertainty_threshold") is not None:
        out["tau"] = data["uncertainty_threshold"]
    if "epsilon" not in out and data.get("uncertainty_penalty") is not None:
        out["epsilon"] = data["uncertainty_penalty"]
    return out


def build_fusion(args: argparse.Namespace) -> tuple[FusionParams, dict[str, str]]:
    """FusionParams from defaults < params file < flags, and where each value came from."""
    fusion = FusionParams()
    source = {k: "default" for k in FUSION_KEYS}
    if args.params_file:
        from_file = params_from_file(args.params_file, args.params_key)
        fusion = replace(fusion, **{k: (v if k == "uncertainty_kind" else float(v)) for k, v in from_file.items()})
        source.update({k: f"params_file[{args.params_key}]" if args.params_key else "params_file" for k in from_file})
    flags = {k: getattr(args, k) for k in FUSION_KEYS if getattr(args, k) is not None}
    fusion = replace(fusion, **flags)
    source.update({k: "flag" for k in flags})
    return fusion, source


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m test.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--func", required=True, help=f"one of {sorted(REGISTRY)}")
    p.add_argument("--pred_file", required=True)
    p.add_argument("--gold_file", required=True)
    p.add_argument("--output_file", default=None)
    p.add_argument("--protocol", default=None, help="scorer protocol (default: the scorer's official one)")
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--beta", type=float, default=None)
    p.add_argument("--epsilon", type=float, default=None)
    p.add_argument("--tau", type=float, default=None)
    p.add_argument("--uncertainty_kind", choices=("logvar", "variance"), default=None)
    p.add_argument("--params_file", default=None, help="JSON of fusion parameters (e.g. grid-search output)")
    p.add_argument("--params_key", default=None, help="key inside --params_file (e.g. the dataset name)")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="scorer option (repeatable)")
    return p


def run(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    scorer = load_scorer(args.func)
    fusion, fusion_source = build_fusion(args)
    options = parse_opt(args.opt)
    metrics = scorer.evaluate_files(args.pred_file, args.gold_file, protocol=args.protocol,
                                    fusion=fusion, options=options or None)
    record = metrics.setdefault("protocol", {})
    record["func"] = args.func
    record["options_given"] = options
    if record.get("fusion") is not None:
        record["fusion_source"] = fusion_source
    if args.output_file:
        atomic_write_json(args.output_file, metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    try:
        metrics = run(argv)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
