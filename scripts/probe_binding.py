"""Does a model read the query? Relevance AUCs on a synthetic split, by what separates the frames.

For every video of the split and every distinct shape among its events and its query, the query
"a <colour> <kind> <motion>" is asked over the first ``--max_frames`` frames (one teacher-forced
forward, exactly the training token stream); every frame during an event is then a *match*
(the event has the query's shape) or a *non-match* whose shape differs in colour, kind and / or
motion. Printed (JSON): AUC event vs calm frames, AUC match vs non-match overall and by the
attributes that differ. A model that ignores the query scores ~0.5 on the second line however
well it finds events. Used to pick the tiny model's recipe (instructions/tiny_model.md); val
split only by default, never the test split's numbers for a choice.

    python scripts/probe_binding.py --data outputs/synthetic --checkpoint checkpoints/aha-tiny-synth
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.collator import StreamCollator  # noqa: E402
from data.grounding import GroundingDataset  # noqa: E402
from data.synthetic import Shape  # noqa: E402
from models.chat import IGNORE, ChatTemplate, system_prompt_of  # noqa: E402
from models.inference import load_for_inference  # noqa: E402

ATTRS = ("colour", "kind", "motion")


def shape_query(e: dict) -> str:
    """The generator's own query text for a shape (ground-truth event or query_shape dict)."""
    return Shape(e["kind"], e["colour"], e["motion"]).text


def probe_items(ground_truth: list[dict]) -> list[dict]:
    """One grounding item per (video, distinct shape of its events or its query): the window's
    events then match one of the video's queries and not the others."""
    items = []
    for v in ground_truth:
        shapes = {shape_query(v["query_shape"]): []}
        for e in v["events"]:
            shapes.setdefault(shape_query(e), []).append([e["start"], e["end"]])
        items += [{"video_uid": v["video"], "query": q, "timestamps": t} for q, t in sorted(shapes.items())]
    return items


def frame_event(events: list[dict], t: float) -> dict | None:
    for e in events:
        if e["start"] <= t < e["end"]:
            return e
    return None


def frame_classes(events: list[dict], query: str, n_frames: int, fps: float) -> list[str]:
    """Per frame: "calm" (no event on screen), "match" (the event has the query's shape) or
    "differs:<attr>" / "differs:several" (which of colour, kind, motion differ from the query)."""
    words = query.split()
    want = dict(zip(ATTRS, words[1:]))
    if len(words) != 4 or shape_query(want) != query:
        raise ValueError(f"probe queries are the generator's 'a <colour> <kind> <motion>', got {query!r}")
    out = []
    for f in range(n_frames):
        e = frame_event(events, f / fps)
        if e is None:
            out.append("calm")
            continue
        diff = [a for a in ATTRS if e[a] != want[a]]
        out.append("match" if not diff else f"differs:{diff[0]}" if len(diff) == 1 else "differs:several")
    return out


def auc(pos: list[float], neg: list[float]) -> float | None:
    if not pos or not neg:
        return None
    return round(float(roc_auc_score([1] * len(pos) + [0] * len(neg), pos + neg)), 4)


def probe(model, tokenizer, data: str | Path, split: str = "val", fps: float = 2.0, max_frames: int = 12,
          batch_size: int = 8, system_prompt: str | None = None, template_spec: str = "fixed:0") -> dict:
    """The report (module doc) for an in-memory model, e.g. during a training experiment; the
    system prompt defaults to the model's own (models.chat.system_prompt_of)."""
    data = Path(data)
    gt = json.loads((data / split / "ground_truth.json").read_text())
    by_video = {v["video_id"]: v for v in gt}
    cfg = model.config
    template = ChatTemplate(tokenizer, cfg.tokens_per_frame, cfg.frame_placeholder)
    was_training = model.training
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        anno = Path(tmp) / "probe.json"
        anno.write_text(json.dumps(probe_items(gt)))
        ds = GroundingDataset(anno, data / "videos", data / "videos_metadata.json", template, fps=fps,
                              max_frames=max_frames, frame_size=cfg.frame_size, seed=0, name="probe",
                              template_spec=template_spec,
                              system_prompt=system_prompt_of(cfg) if system_prompt is None else system_prompt)
        collate = StreamCollator(pad_token_id=tokenizer.pad_token_id, frame_size=cfg.frame_size)
        scores = {"calm": [], "match": [], "nonmatch": [], **{f"differs:{a}": [] for a in ATTRS}, "differs:several": []}
        for start in range(0, len(ds), batch_size):
            items = [ds[i] for i in range(start, min(start + batch_size, len(ds)))]
            batch = collate(items)
            ids = batch.pop("sample_ids")
            with torch.no_grad():
                out = model(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "pixel_values")})
            for b in range(len(ids)):
                rec = ds.records[start + b]
                video = by_video[Path(rec.video).stem]
                pos = (batch["relevance_labels"][b] != IGNORE).nonzero().squeeze(-1).tolist()
                for p, cls in zip(pos, frame_classes(video["events"], rec.query, len(pos), fps)):
                    score = float(out.relevance[b, p])
                    scores[cls].append(score)
                    if cls.startswith("differs:"):
                        scores["nonmatch"].append(score)
    model.train(was_training)
    events = scores["match"] + scores["nonmatch"]
    return {
        "split": split, "max_frames": max_frames, "fps": fps,
        "n_items": len(ds), "frames": {k: len(v) for k, v in scores.items()},
        "auc_event_vs_calm": auc(events, scores["calm"]),
        "auc_match_vs_nonmatch": auc(scores["match"], scores["nonmatch"]),
        **{f"auc_match_vs_{k}": auc(scores["match"], scores[k]) for k in scores if k.startswith("differs:")},
        "mean_relevance": {k: round(float(np.mean(v)), 4) if v else None for k, v in scores.items()},
    }


def run(args) -> dict:
    model, tok = load_for_inference(args.model_config, checkpoint=args.checkpoint, tokenizer=args.tokenizer,
                                    seed=args.seed)
    report = probe(model, tok, args.data, args.split, args.fps, args.max_frames, args.batch_size,
                   template_spec=args.template)
    return {"checkpoint": args.checkpoint, **report}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a data.synthetic folder (with videos_metadata.json)")
    p.add_argument("--split", default="val")
    p.add_argument("--checkpoint", default=None, help="omit for the untrained model")
    p.add_argument("--model_config", default="aha-tiny-synth")
    p.add_argument("--tokenizer", default="configs/tokenizers/aha-tiny-synth")
    p.add_argument("--fps", type=float, default=2.0)
    p.add_argument("--max_frames", type=int, default=12)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--template", default="fixed:0", help="query template spec (data.prompts): fixed:N, none, random")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="also write the report here (JSON)")
    args = p.parse_args(argv)
    with torch.no_grad():  # scoped: main() is also called in-process (tests)
        report = run(args)
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
