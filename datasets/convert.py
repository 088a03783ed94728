#!/usr/bin/env python
"""Convert raw benchmark annotations into the project's streaming benchmark items (JSONL).

    python datasets/convert.py charades --input charades_sta_test.txt --lengths Charades_v1_test.csv --output charades.jsonl
    python datasets/convert.py youcook2 --input yc2_val.json --output youcook2.jsonl
    python datasets/convert.py qvh      --input highlight_val_release.jsonl --output qvh_val.jsonl
    python datasets/convert.py tvsum    --input ydata-tvsum50-info.tsv --anno ydata-tvsum50-anno.tsv --output tvsum.jsonl [--prompt ambiguous]
    python datasets/convert.py hisum    --input mr_hisum_metadata.csv --split_file mr_hisum_split.json --titles titles.tsv --output hisum.jsonl
    python datasets/convert.py magqa    --input magqa_test.json --output magqa.jsonl

The conversion of each benchmark lives in its module (``data/benchmarks/<name>.py``, ``convert``);
this is the command-line face. One item per line (``data/benchmarks/items.py``)::

    {"id", "dataset", "video", "query", "query_time", "duration", "template_id", "gold": {...}}

plus ``prompt_variant`` for TVSum / Mr.HiSum. Next to the output a ``<output>.meta.json`` records
the seed, the template spec, the template list and the input files (path + sha256). Invalid
annotations (a reversed or out-of-video span, a zero duration, a null id) are refused with
``file:line``; Charades-STA also takes ``--on_invalid skip`` (the real train split has reversed
spans), which drops such lines and lists them in the meta file.

``datasets/`` is deliberately not a Python package (it would shadow HuggingFace ``datasets``); the
repository root is put on ``sys.path`` below so ``data`` and ``utils`` import.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import argparse  # noqa: E402

from data import benchmarks  # noqa: E402
from data.benchmarks import items as it  # noqa: E402
from data.prompts import TEMPLATE_SETS, template_set_of  # noqa: E402
from utils.cli import ArgumentParser, add_debug_flag, check_output_file, run_cli  # noqa: E402
from utils.io import sha256_file  # noqa: E402

DATASETS = ("charades", "youcook2", "qvh", "tvsum", "hisum", "magqa")


def _add_common(p: argparse.ArgumentParser, dataset: str) -> None:
    mod = benchmarks.get(dataset)
    p.add_argument("--output", required=True, help="items JSONL to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-item template choice")
    p.add_argument("--template", default=mod.DEFAULT_TEMPLATE, help="random | fixed:N | none (default %(default)s)")
    p.add_argument("--template_set", default="reference", choices=sorted(TEMPLATE_SETS),
                   help="wording of the query templates / captioning instructions: reference (default: the reference's, "
                        "which the released weights were trained and evaluated with) or project (this project's own, "
                        "which its tiny model was trained with)")
    fields = ", ".join("{" + f + "}" for f in mod.VIDEO_FIELDS)
    p.add_argument("--video_template", default=mod.DEFAULT_VIDEO_TEMPLATE,
                   help=f"video file name relative to the video root; placeholders {fields} (default %(default)s)")
    p.add_argument("--video_root", default=None, help="if given, keep only items whose video exists under this folder")
    add_debug_flag(p)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="convert.py", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="dataset", required=True)

    p = sub.add_parser("charades", help="Charades-STA txt + Charades csv")
    p.add_argument("--input", required=True, help="charades_sta_test.txt")
    p.add_argument("--lengths", required=True, help="Charades_v1_test.csv (video lengths)")
    p.add_argument("--on_invalid", choices=it.INVALID_POLICIES, default="refuse",
                   help="an invalid line (reversed span, unknown video ...): refuse (default) or skip (recorded)")
    _add_common(p, "charades")

    p = sub.add_parser("youcook2", help="YouCook2 in ActivityNet-captions format")
    p.add_argument("--input", required=True, help="yc2_val.json")
    _add_common(p, "youcook2")

    p = sub.add_parser("qvh", help="QVHighlights jsonl")
    p.add_argument("--input", required=True, help="highlight_val_release.jsonl")
    p.add_argument("--highlight_min_score", type=int, default=4,
                   help="saliency (max over annotators) that makes a clip part of gold highlight_windows")
    _add_common(p, "qvh")

    p = sub.add_parser("tvsum", help="TVSum info tsv")
    p.add_argument("--input", required=True, help="ydata-tvsum50-info.tsv")
    p.add_argument("--anno", default=None, help="ydata-tvsum50-anno.tsv, to check the video list and categories")
    p.add_argument("--prompt", choices=benchmarks.get("tvsum").TVSUM_PROMPTS, default="title",
                   help="title (default) | ambiguous | unrelated | none (query-free ablation) | ambiguous_reference | "
                        "unrelated_reference (the reference's own title tables, as the paper evaluated)")
    _add_common(p, "tvsum")

    p = sub.add_parser("hisum", help="Mr.HiSum metadata csv + split json")
    p.add_argument("--input", required=True, help="mr_hisum_metadata.csv")
    p.add_argument("--split_file", required=True, help="mr_hisum_split.json")
    p.add_argument("--split", default="test_keys", help="key of the split json (default %(default)s)")
    p.add_argument("--titles", default=None, help="titles json/csv/tsv (the public metadata has none)")
    p.add_argument("--missing_title", choices=benchmarks.get("hisum").MISSING_TITLE, default="error",
                   help="what to do with a video without a title (default %(default)s)")
    _add_common(p, "hisum")

    p = sub.add_parser("magqa", help="MAGQA test json")
    p.add_argument("--input", required=True, help="MAGQA test json (or jsonl)")
    _add_common(p, "magqa")
    return parser


def template_spec(args: argparse.Namespace) -> str:
    """``--template`` in ``--template_set`` (a spec that names its own set keeps it)."""
    if args.template.strip() == "none" or args.template.partition(":")[0] in TEMPLATE_SETS:
        return args.template
    return f"{args.template_set}:{args.template}"


def convert_from_args(args: argparse.Namespace, report: dict | None = None) -> tuple[list[dict], dict[str, str], list[str]]:
    """Run one sub-command's converter; returns (items, {input name: path}, skipped invalid lines).

    ``report`` receives what a converter records besides (Mr.HiSum: ``dropped_missing_video`` and
    ``skipped_no_title``, its --video_root filter coming before the title check; TVSum:
    ``n_annotators``)."""
    common = {"seed": args.seed, "template": template_spec(args), "video_template": args.video_template}
    d, mod, skipped = args.dataset, benchmarks.get(args.dataset), []
    report = {} if report is None else report
    inputs = {"input": args.input}
    if d == "charades":
        inputs["lengths"] = args.lengths
        items, skipped = mod.convert(args.input, args.lengths, on_invalid=args.on_invalid, **common)
    elif d == "qvh":
        from utils.cli import check_number

        # saliency scores are 0-4: above 4 every item's gold highlight_windows would be empty
        check_number(args.highlight_min_score, "--highlight_min_score", minimum=0, maximum=4, integer=True)
        items = mod.convert(args.input, highlight_min_score=args.highlight_min_score, **common)
    elif d == "tvsum":
        inputs.update({"anno": args.anno} if args.anno else {})
        items = mod.convert(args.input, anno_path=args.anno, prompt=args.prompt, report=report, **common)
    elif d == "hisum":
        inputs.update({"split_file": args.split_file, **({"titles": args.titles} if args.titles else {})})
        items = mod.convert(args.input, args.split_file, split=args.split, titles_path=args.titles,
                            missing_title=args.missing_title, video_root=args.video_root, report=report, **common)
    else:  # youcook2, magqa: one input file
        items = mod.convert(args.input, **common)
    if not items:
        raise ValueError(f"{args.input}: no item to write")
    it.check_unique_ids(items, args.input)
    return items, inputs, skipped


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_cli(f"convert.py {args.dataset}", lambda: _main(args, argv), debug=args.debug)


def _main(args: argparse.Namespace, argv: list[str] | None) -> int:
    check_output_file(args.output, "--output")
    report: dict = {}
    items, inputs, skipped = convert_from_args(args, report)
    dropped: list[str] = list(report.pop("dropped_missing_video", []))  # Mr.HiSum filters before its title check
    no_title: list[str] | None = report.pop("skipped_no_title", None)
    n_source = len(items) + len(dropped)
    if args.video_root:
        items, more = it.keep_existing_videos(items, args.video_root)
        dropped += more
    options = {k: v for k, v in vars(args).items() if k not in ("output", "dataset", "debug", *inputs)}
    meta = {
        "dataset": args.dataset,
        "converter": f"datasets/convert.py -> data/benchmarks/{benchmarks.get(args.dataset).__name__.rsplit('.', 1)[1]}.py",
        "command": ["python", "datasets/convert.py", *(argv if argv is not None else sys.argv[1:])],
        "inputs": {k: {"path": str(Path(p).resolve()), "sha256": sha256_file(p)} for k, p in inputs.items()},
        "options": options,
        "n_items": len(items),
        "n_converted": n_source,
        "skipped_invalid": skipped,
        "dropped_missing_video": dropped,
        **({"skipped_no_title": no_title} if no_title is not None else {}),
        **report,
        "template_spec": template_spec(args),
        "template_set": template_set_of(template_spec(args)),
        "query_templates": list(TEMPLATE_SETS[template_set_of(template_spec(args))][0]),
        "dvc_instructions": list(TEMPLATE_SETS[template_set_of(template_spec(args))][1]),
    }
    meta_path = it.write_items(items, args.output, meta)
    print(f"{args.dataset}: wrote {len(items)} items to {args.output} (meta {meta_path.name})"
          + (f"; {len(skipped)} invalid lines skipped" if skipped else "")
          + (f"; {len(dropped)} dropped, video missing" if dropped else "")
          + (f"; {len(no_title)} skipped, no title" if no_title else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
