"""The training annotations and mixture of the embedded default model (scripts/train_tiny.sh).

    python scripts/tiny_mixture.py --data DATA [--clip_stride 12] [--dvc_copies 3] [--counterfactual kind,motion]
        [--attribute_queries motion,kind] [--dvc_at end]

Everything comes from the synthetic TRAIN split's ``ground_truth.json`` (never val or test) and is
written under ``DATA/train/`` plus ``DATA/mixture_tiny.json``:

* ``grounding_contrast.json``: one item per distinct event shape of a video, query
  ``"a <colour> <kind> <motion>"`` (the generator's raw text), relevance 1 on that shape's events.
  The same frames are then positive for one query and negative for the video's other shapes.
* ``grounding_counterfactual.json`` (``--counterfactual``): for every distinct shape and every named
  attribute, the shape's query with that ONE attribute changed (another value, drawn with a seeded
  generator), relevance 1 on the events of that changed shape if the video has any (usually none).
  Without them a query can be refused on its colour alone most of the time; with them kind and
  motion must be read too (instructions/tiny_model.md, session 5).
* ``grounding_attribute.json`` (``--attribute_queries``): for every video and every value of the named
  attributes that one of its events has, a query naming that value ALONE (``ATTRIBUTE_QUERY``: motion
  "it slides", kind "a square", colour "a red one"), relevance 1 on every event with that value. A
  full query can be told from its distractors by one attribute at a time; these make each attribute's
  reading a task of its own, frame by frame (motion has to be read across frames: which way the shape
  moved, whether it turned).
* ``dvc_tiny.json`` (``--dvc_at``): the dense-captioning narrations, one caption per event, said
  ``mid`` (the generator's own times: between the midpoint and three quarters of the event, as in
  ``train/shot2story_dvc.json``) or at the event's ``end`` (the first frame after it; one informative
  positive, that frame). The dense-captioning scorer ends a caption's segment at its last emission,
  so a caption said when its event ends gives a segment that ends with the event.
* ``mixture_tiny.json``: grounding (the video's query), the two files above and ``--dvc_copies``
  copies of the captions, 2 fps, clips of ``--max_frames`` frames every ``--clip_stride`` frames
  (0: the first ``--max_frames`` frames of each video only, the recipe of the checkpoint shipped in session 4).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.synthetic import COLOURS, KINDS, MOTIONS  # noqa: E402

VALUES = {"colour": tuple(COLOURS), "kind": KINDS, "motion": MOTIONS}


def shape_text(colour: str, kind: str, motion: str) -> str:
    return f"a {colour} {kind} {motion}"


def shape_spans(video: dict) -> dict[tuple[str, str, str], list[list[float]]]:
    spans: dict[tuple[str, str, str], list[list[float]]] = {}
    for e in video["events"]:
        spans.setdefault((e["colour"], e["kind"], e["motion"]), []).append([e["start"], e["end"]])
    return spans


def contrast_items(ground_truth: list[dict]) -> list[dict]:
    return [{"video_uid": v["video"], "query": shape_text(*shape), "timestamps": t}
            for v in ground_truth for shape, t in sorted(shape_spans(v).items())]


def counterfactual_items(ground_truth: list[dict], attrs: list[str], seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for v in ground_truth:
        spans = shape_spans(v)
        for shape in sorted(spans):
            for attr in attrs:
                i = ("colour", "kind", "motion").index(attr)
                others = [x for x in VALUES[attr] if x != shape[i]]
                changed = list(shape)
                changed[i] = others[int(rng.integers(len(others)))]
                items.append({"video_uid": v["video"], "query": shape_text(*changed),
                              "timestamps": spans.get(tuple(changed), [])})
    return items


ATTRIBUTE_QUERY = {"motion": "it {}", "kind": "a {}", "colour": "a {} one"}


def attribute_items(ground_truth: list[dict], attrs: list[str]) -> list[dict]:
    items = []
    for v in ground_truth:
        for attr in attrs:
            spans: dict[str, list[list[float]]] = {}
            for e in v["events"]:
                spans.setdefault(e[attr], []).append([e["start"], e["end"]])
            items += [{"video_uid": v["video"], "query": ATTRIBUTE_QUERY[attr].format(value), "timestamps": t}
                      for value, t in sorted(spans.items())]
    return items


def dvc_items(ground_truth: list[dict], at: str, generator_file: Path) -> dict:
    if at == "mid":
        return json.loads(generator_file.read_text())
    return {v["video"]: {"0": [{"text": e["caption"], "time": e["end"], "timespan": [e["end"], e["end"]]}
                               for e in v["events"]]} for v in ground_truth}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="a data.synthetic folder with videos_metadata.json")
    ap.add_argument("--clip_stride", type=int, default=12,
                    help="a clip every N frames over the whole video; 0: only the first --max_frames frames")
    ap.add_argument("--max_frames", type=int, default=12)
    ap.add_argument("--fps", type=float, default=2.0)
    ap.add_argument("--dvc_copies", type=int, default=3)
    ap.add_argument("--counterfactual", default="", help="attributes to change one at a time: any of colour,kind,motion")
    ap.add_argument("--attribute_queries", default="",
                    help="one-attribute queries (module doc) for any of colour,kind,motion")
    ap.add_argument("--dvc_unseen", choices=("drop", "keep"), default="drop",
                    help="captions of events a window never shows (data/dvc.py answered_in_window): dropped (the "
                         "shipped v9 recipe), or kept as before session 11 (session 10's v7)")
    ap.add_argument("--dvc_at", choices=("mid", "end"), default="mid")
    ap.add_argument("--query_template", choices=("none", "random"), default="none",
                    help="grounding queries as raw text (v7's recipe), or each item wrapped in a seeded random query "
                         "template (data.prompts), as the benchmark items ask them (the shipped v9 recipe)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    root = Path(args.data)
    attrs = [a.strip() for a in args.counterfactual.split(",") if a.strip()]
    single = [a.strip() for a in args.attribute_queries.split(",") if a.strip()]
    bad = [a for a in attrs + single if a not in VALUES]
    if args.clip_stride < 0 or args.max_frames < 1 or args.dvc_copies < 0:
        raise SystemExit("--clip_stride must be >= 0, --max_frames >= 1, --dvc_copies >= 0")
    if bad:
        raise SystemExit(f"--counterfactual / --attribute_queries: unknown attributes {bad}; choose from {list(VALUES)}")
    gt = json.loads((root / "train" / "ground_truth.json").read_text())
    train = root / "train"
    (train / "grounding_contrast.json").write_text(json.dumps(contrast_items(gt)))
    names = ["grounding", "grounding_contrast"]
    if attrs:
        (train / "grounding_counterfactual.json").write_text(json.dumps(counterfactual_items(gt, attrs, args.seed)))
        names.append("grounding_counterfactual")
    if single:
        (train / "grounding_attribute.json").write_text(json.dumps(attribute_items(gt, single)))
        names.append("grounding_attribute")
    (train / "dvc_tiny.json").write_text(json.dumps(dvc_items(gt, args.dvc_at, train / "shot2story_dvc.json")))
    common = {"video_root": "videos", "metadata": "videos_metadata.json", "fps": args.fps, "max_frames": args.max_frames}
    if args.clip_stride:
        common["clip_stride"] = args.clip_stride
    datasets = [{"name": n, "type": "grounding", "anno_file": f"train/{n}.json", "template_spec": args.query_template, **common}
                for n in names]
    datasets += [{"name": f"dvc_{i}", "type": "dvc", "anno_file": "train/dvc_tiny.json", **common,
                  **({"unseen_captions": "keep"} if args.dvc_unseen == "keep" else {})}
                 for i in range(args.dvc_copies)]
    wording = "raw query text" if args.query_template == "none" else "queries in random templates"
    desc = (f"aha-tiny-synth recipe (scripts/train_tiny.sh): synthetic train split; {', '.join(names)} ({wording}"
            f"{', counterfactual ' + '/'.join(attrs) if attrs else ''}"
            f"{', one-attribute queries ' + '/'.join(single) if single else ''}), dense captioning said at the event "
            f"{args.dvc_at} x{args.dvc_copies}; {args.fps:g} fps, {args.max_frames}-frame clips "
            + (f"every {args.clip_stride} frames" if args.clip_stride else "(the first of each video)"))
    (root / "mixture_tiny.json").write_text(json.dumps({"description": desc, "datasets": datasets}, indent=1) + "\n")
    print(f"{root / 'mixture_tiny.json'}: {desc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
