"""Stage 0b of the tiny default's recipe: the language model learns to read motion across frames.

After stage 0 (``scripts/pretrain_tiny_vision.py``) every frame token carries the pose of the shape
on screen (where, how large, which way its cap points), and an MLP over two frames' tokens reads the
motion (held-out 0.93). Motion is a change of pose, so the language model has to compare frames to
read it, and stage 1's signals (captions at an event's end, relevance of whole queries) did not
teach it: its captions named "grows" (one frame shows a large shape) 29 times in 30 but told
slides, bounces and spins apart no better than chance (instructions/tiny_model.md, session 11).

This stage streams the TRAIN videos of a synthetic set exactly as stage 1 and the engine do (the
preset's empty system turn, a dense-captioning instruction, then one stream turn of ``--window``
frames at ``--fps``) and puts linear probes on the language model's last hidden state at every
frame (where the Aha! heads read): the motion, kind and colour of the event on screen, or
"nothing". The tower is frozen (its features are computed once); the projector and the language
model's layers are trained (the token embeddings, hence the tied LM head, are not: stage 1 trains
them). The probes are thrown away; the result is a full Aha! checkpoint that ``train.py
--lora_pretrained`` continues from. Held-out accuracy on the val videos' frames is reported, motion
separately on the frames after an event's first (the ones where motion can be seen). Seeded and
single-process: the same command on the same machine gives the same weights.

``--query_fraction F`` (session 12) prompts that fraction of the samples with a shape query instead of
the captioning instruction (stage 1's grounding prompt: the raw query "a red circle slides" as the
user turn, drawn from the video's own shapes) and adds per-frame *match* probes for them: is the
shape on screen of the query's colour, kind, motion, all three (or is nothing on screen). With the
instruction only, the language model learned to read the frames and stage 1's relevance then
stopped reading the query (session 11, runs E-I); the match probes make the comparison with the
query part of what this stage teaches. With the default 0 the stage draws exactly what it drew
before (session 11's runs are reproduced).

    python scripts/pretrain_tiny_stream.py --init outputs/tiny_vision --data outputs/synthetic --out outputs/tiny_stream
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.prompts import DVC_INSTRUCTIONS, QUERY_TEMPLATES, apply_template  # noqa: E402
from data.synthetic.metrics import event_at  # noqa: E402
from data.synthetic.scene import COLOURS, KINDS, MOTIONS, Shape  # noqa: E402
from models.chat import ChatTemplate, load_tokenizer, system_prompt_of  # noqa: E402
from models.checkpoint import inference_settings, load_checkpoint, save_checkpoint  # noqa: E402
from models.frames import to_pixel_values  # noqa: E402
from utils.cli import check_number, check_output_dir, entry  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402

log = logging.getLogger("pretrain_tiny_stream")

# label name -> its values; the last class of each is "nothing on screen"
ATTRIBUTES = {"motion": tuple(MOTIONS), "kind": tuple(KINDS), "colour": tuple(COLOURS)}
# match probes (query-prompted samples): does the shape on screen agree with the query in this attribute
# (or in all three)? classes: 0 differs, 1 same, 2 nothing on screen
MATCHES = ("motion", "kind", "colour", "all")


class VideoFrames:
    """One split's videos at ``fps``: frozen SigLIP features per frame and per-frame labels."""

    def __init__(self, features: list[torch.Tensor], labels: list[np.ndarray], moving: list[np.ndarray],
                 shapes: list[list[np.ndarray]]):
        self.features = features  # per video [T, patches, vision_dim]
        self.labels = labels  # per video int64 [T, 3]: motion, kind, colour class ("nothing" last)
        self.moving = moving  # per video bool [T]: an event frame after its event's first sampled frame
        self.shapes = shapes  # per video: its distinct shapes (query first) as class triples, like labels


def shape_classes(shape: dict) -> np.ndarray:
    return np.array([values.index(shape[name]) for name, values in ATTRIBUTES.items()], dtype=np.int64)


def shape_of(classes: np.ndarray) -> str:
    """Class triple -> the query text stage 1 and the engine use ("a red circle slides")."""
    named = {name: values[int(c)] for (name, values), c in zip(ATTRIBUTES.items(), classes)}
    return Shape(**named).text


def video_shapes(video: dict) -> list[np.ndarray]:
    """The video's own query, then every other distinct shape among its events."""
    out: list[np.ndarray] = []
    for shape in [video["query_shape"], *video["events"]]:
        c = shape_classes(shape)
        if not any((c == o).all() for o in out):
            out.append(c)
    return out


def match_targets(labels: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Per-frame attribute labels [T, 3] and a query's classes [3] -> match classes [T, 4] (MATCHES)."""
    nothing = labels[:, :1] == len(ATTRIBUTES["motion"])  # no event on screen: every attribute is "nothing"
    same = labels == query[None]
    out = np.concatenate([same, same.all(1, keepdims=True)], 1).astype(np.int64)
    return np.where(nothing, 2, out)


def frame_labels(events: list[dict], n_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros((n_frames, len(ATTRIBUTES)), dtype=np.int64)
    moving = np.zeros(n_frames, dtype=bool)
    for t in range(n_frames):
        e = event_at(events, t / fps)
        for j, (name, values) in enumerate(ATTRIBUTES.items()):
            labels[t, j] = len(values) if e is None else values.index(e[name])
        moving[t] = e is not None and t > 0 and event_at(events, (t - 1) / fps) is e
    return labels, moving


@torch.no_grad()
def load_split(model, data_dir: Path, split: str, fps: float, size: int, limit: int | None = None) -> VideoFrames:
    from data.video import load_clip

    gt = json.loads((data_dir / split / "ground_truth.json").read_text())[:limit]
    feats, labels, moving, shapes = [], [], [], []
    for video in gt:
        frames = load_clip(data_dir / "videos" / video["video"], fps, 0, None, size=size)
        if len(frames) == 0:
            raise ValueError(f"{video['video']}: no frames decoded")
        feats.append(torch.cat([model.vision_features(to_pixel_values(torch.from_numpy(frames[i: i + 64]), size))
                                for i in range(0, len(frames), 64)]))
        lab, mov = frame_labels(video["events"], len(frames), fps)
        labels.append(lab)
        moving.append(mov)
        shapes.append(video_shapes(video))
    return VideoFrames(feats, labels, moving, shapes)


class Probes(torch.nn.Module):
    def __init__(self, dim: int, match: bool = False):
        super().__init__()
        self.heads = torch.nn.ModuleDict({k: torch.nn.Linear(dim, len(v) + 1) for k, v in ATTRIBUTES.items()})
        # built only when asked, after the attribute probes: the default run's initialisation is unchanged
        self.match = torch.nn.ModuleDict({k: torch.nn.Linear(dim, 3) for k in MATCHES}) if match else None

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: head(h) for k, head in self.heads.items()}

    def matches(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: head(h) for k, head in self.match.items()}


def frame_states(model, ids: torch.Tensor, feats: torch.Tensor, frame_pos: torch.Tensor,
                 layer: int | None = None) -> torch.Tensor:
    """ids [B, S] with the window's placeholders, feats [B * window, patches, dim] -> hidden states at
    each frame's last token [B, window, D]: the last hidden state (where the Aha! heads read), or with
    ``layer`` the output of that many decoder layers. ``frame_pos`` is [window] (one prompt for the
    batch) or [B, window] (per row: prompts of different lengths, right-padded; causal attention keeps
    the padding out of every earlier position)."""
    embeds = model.embed_inputs(ids, vision_features=feats)
    out = model.model.language_model(inputs_embeds=embeds, return_dict=True, output_hidden_states=layer is not None)
    h = out.last_hidden_state if layer is None else out.hidden_states[layer]
    if frame_pos.dim() == 2:
        return h[torch.arange(h.shape[0])[:, None], frame_pos]
    return h[:, frame_pos]


def padded(prompts: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths -> right-padded ids [B, S] and frame positions [B, window]."""
    width = max(len(ids) for ids, _ in prompts)
    ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids, _ in prompts])
    return ids, torch.tensor([pos for _, pos in prompts])


def prompt(template: ChatTemplate, system: str, instruction: str, window: int) -> tuple[list[int], list[int]]:
    enc = template.encode(template.pieces([{"role": "system", "content": system},
                                           {"role": "user", "content": instruction},
                                           {"role": "stream", "num_frames": window}]))
    return enc.input_ids, enc.frame_last_positions


@torch.no_grad()
def evaluate(model, probes: Probes, data: VideoFrames, template, system: str, window: int,
             layer: int | None = None) -> dict[str, float]:
    """Per-frame accuracy over whole windows of the split's videos (every frame once)."""
    ids, pos = prompt(template, system, DVC_INSTRUCTIONS[0], window)
    ids_t, pos_t = torch.tensor([ids]), torch.tensor(pos)
    hits = {k: 0 for k in ATTRIBUTES}
    moving_hits, n, n_moving = 0, 0, 0
    for feats, labels, moving in zip(data.features, data.labels, data.moving):
        for s in range(0, len(feats) - window + 1, window):
            logits = probes(frame_states(model, ids_t, feats[s: s + window], pos_t, layer)[0])
            for j, k in enumerate(ATTRIBUTES):
                pred = logits[k].argmax(-1).numpy()
                hits[k] += int((pred == labels[s: s + window, j]).sum())
                if k == "motion":
                    m = moving[s: s + window]
                    moving_hits += int((pred[m] == labels[s: s + window, j][m]).sum())
                    n_moving += int(m.sum())
            n += window
    out = {k: round(v / max(n, 1), 4) for k, v in hits.items()}
    out["motion_while_moving"] = round(moving_hits / max(n_moving, 1), 4)
    return out


@torch.no_grad()
def evaluate_match(model, probes: Probes, data: VideoFrames, template, system: str, window: int,
                   layer: int | None = None) -> dict[str, float]:
    """Query-prompted windows of the split's videos (every distinct shape of a video as the query, in raw
    text whatever ``--query_template``; every frame once per query): accuracy of each match probe, and the AUC of the "all" probe's P(same) for
    frames of a matching event against frames of another shape, overall and by the attribute that differs."""
    from sklearn.metrics import roc_auc_score

    hits = {k: 0 for k in MATCHES}
    n = 0
    scores, truth, differs = [], [], []
    for feats, labels, shapes in zip(data.features, data.labels, data.shapes):
        for query in shapes:
            ids, pos = prompt(template, system, shape_of(query), window)
            ids_t, pos_t = torch.tensor([ids]), torch.tensor(pos)
            target = match_targets(labels, query)
            for s in range(0, len(feats) - window + 1, window):
                logits = probes.matches(frame_states(model, ids_t, feats[s: s + window], pos_t, layer)[0])
                t = target[s: s + window]
                for j, k in enumerate(MATCHES):
                    hits[k] += int((logits[k].argmax(-1).numpy() == t[:, j]).sum())
                event = t[:, -1] != 2
                scores.extend(logits["all"].softmax(-1)[:, 1].numpy()[event].tolist())
                truth.extend(t[event, -1].tolist())
                differs.extend((t[event, :-1] == 0).tolist())
                n += window
    out = {f"match_{k}": round(v / max(n, 1), 4) for k, v in hits.items()}
    scores, truth, differs = np.array(scores), np.array(truth), np.array(differs, dtype=bool).reshape(-1, 3)
    if 0 < truth.sum() < len(truth):
        out["match_auc"] = round(float(roc_auc_score(truth, scores)), 4)
    for j, k in enumerate(ATTRIBUTES):
        keep = (truth == 1) | differs[:, j]
        if 0 < truth[keep].sum() < keep.sum():
            out[f"match_auc_vs_{k}"] = round(float(roc_auc_score(truth[keep], scores[keep])), 4)
    return out


def draw_batch(rng: np.random.Generator, data: VideoFrames, usable: list[int], batch_size: int, window: int,
               prompts: list, query_fraction: float, template, system: str, pad_id: int,
               query_template: str = "none"):
    """One training batch: (ids, frame positions, features, attribute targets, match targets or None, which
    rows are query-prompted). With ``query_fraction`` 0, one instruction for the whole batch, drawn first
    (session 11's draws, so its runs are reproduced); otherwise each row draws its own prompt."""
    if query_fraction == 0:
        ids, pos = prompts[int(rng.integers(len(prompts)))]
    feats, labels, rows, queried, matched = [], [], [], [], []
    for v in rng.choice(usable, size=batch_size):
        s = int(rng.integers(len(data.features[v]) - window + 1))
        feats.append(data.features[v][s: s + window])
        labels.append(data.labels[v][s: s + window])
        if query_fraction == 0:
            continue
        if rng.random() < query_fraction:
            query = data.shapes[v][int(rng.integers(len(data.shapes[v])))]
            text = shape_of(query)
            if query_template == "random":
                text = apply_template(int(rng.integers(len(QUERY_TEMPLATES))), text)
            rows.append(prompt(template, system, text, window))
            matched.append(match_targets(labels[-1], query))
            queried.append(True)
        else:
            rows.append(prompts[int(rng.integers(len(prompts)))])
            matched.append(np.zeros((window, len(MATCHES)), dtype=np.int64))
            queried.append(False)
    target = torch.from_numpy(np.stack(labels))
    if query_fraction == 0:
        return torch.tensor([ids] * batch_size), torch.tensor(pos), torch.cat(feats), target, None, None
    ids_t, pos_t = padded(rows, pad_id)
    return ids_t, pos_t, torch.cat(feats), target, torch.from_numpy(np.stack(matched)), torch.tensor(queried)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--init", required=True, help="a full Aha! checkpoint (stage 0's)")
    p.add_argument("--data", required=True, help="a synthetic set (python -m data.synthetic): its train and val videos")
    p.add_argument("--out", required=True, help="output folder: a full Aha! checkpoint + pretrain_report.json")
    p.add_argument("--tokenizer", default="configs/tokenizers/aha-tiny-synth")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--window", type=int, default=12, help="frames per sample (stage 1's clips: 12)")
    p.add_argument("--fps", type=float, default=2.0)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--probe_layer", type=int, default=None,
                   help="probe the output of this many decoder layers and train only those (default: all, the "
                        "last hidden state); the layers above are left to stage 1 (comparing with the query)")
    p.add_argument("--query_fraction", type=float, default=0.0,
                   help="fraction of samples prompted with one of the video's shape queries instead of a captioning "
                        "instruction, with per-frame match probes (module doc); 0: instructions only")
    p.add_argument("--query_template", choices=("none", "random"), default="none",
                   help="the queries as raw text, or each wrapped in a random benchmark query template (data.prompts)")
    p.add_argument("--n_train_videos", type=int, default=None, help="the first N train videos (default: all)")
    p.add_argument("--n_val_videos", type=int, default=None, help="the first N val videos (default: all)")
    p.add_argument("--eval_every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--overwrite", action="store_true")
    return p.parse_args(argv)


def main(args) -> int:
    for name in ("steps", "batch_size", "window", "eval_every"):
        check_number(getattr(args, name), f"--{name}", minimum=1, integer=True)
    for name in ("n_train_videos", "n_val_videos"):
        if getattr(args, name) is not None:
            check_number(getattr(args, name), f"--{name}", minimum=1, integer=True)
    check_number(args.learning_rate, "--learning_rate", above=0)
    check_number(args.fps, "--fps", above=0)
    check_number(args.query_fraction, "--query_fraction", minimum=0, maximum=1)
    check_output_dir(args.out, "--out")
    out, data_dir = Path(args.out), Path(args.data)
    if (out / "model.safetensors").exists() and not args.overwrite:
        raise ValueError(f"--out {out} already holds a checkpoint (--overwrite to replace it)")
    for split in ("train", "val"):
        if not (data_dir / split / "ground_truth.json").is_file():
            raise ValueError(f"--data {data_dir}: no {split}/ground_truth.json (a data.synthetic folder is expected)")
    if args.threads:
        torch.set_num_threads(args.threads)
    t0, c0 = time.time(), time.process_time()
    model = load_checkpoint(args.init)
    if model.tokens_per_frame != 1:
        raise ValueError("this stage reads one token per frame (the aha-tiny-synth preset)")
    lm = model.model.language_model
    n_layers = len(lm.layers)
    # refused before the videos are decoded (the slow part)
    if args.probe_layer is not None and not 1 <= args.probe_layer <= n_layers:
        raise ValueError(f"--probe_layer must be in [1, {n_layers}], got {args.probe_layer}")
    size = model.config.vision_config.image_size
    model.eval()
    train = load_split(model, data_dir, "train", args.fps, size, args.n_train_videos)
    val = load_split(model, data_dir, "val", args.fps, size, args.n_val_videos)
    usable = [i for i, f in enumerate(train.features) if len(f) >= args.window]
    if not usable:
        raise ValueError(f"no train video has {args.window} frames at {args.fps:g} fps")
    load_s = time.time() - t0
    log.info("features of %d train + %d val videos in %.0f s", len(train.features), len(val.features), load_s)

    template = ChatTemplate(load_tokenizer(args.tokenizer), 1)
    system = system_prompt_of(model.config)
    prompts = [prompt(template, system, text, args.window) for text in DVC_INSTRUCTIONS]
    torch.manual_seed(args.seed)
    probes = Probes(model.config.text_config.hidden_size, match=args.query_fraction > 0)
    pad_id = template.tok.pad_token_id
    layer = None if args.probe_layer in (None, n_layers) else args.probe_layer
    model.requires_grad_(False)
    trained = ([p for n, p in lm.named_parameters() if not n.startswith("embed_tokens")] if layer is None
               else [p for block in lm.layers[:layer] for p in block.parameters()])
    trained += list(model.model.multi_modal_projector.parameters())
    for p in trained:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trained + list(probes.parameters()), lr=args.learning_rate, weight_decay=0.01)
    rng = np.random.default_rng(args.seed)
    history = []
    for step in range(1, args.steps + 1):
        model.train()
        ids, pos, feats, target, matched, queried = draw_batch(
            rng, train, usable, args.batch_size, args.window, prompts, args.query_fraction, template, system, pad_id,
            args.query_template)
        h = frame_states(model, ids, feats, pos, layer)
        logits = probes(h)
        parts = {k: F.cross_entropy(logits[k].flatten(0, 1), target[..., j].flatten())
                 for j, k in enumerate(ATTRIBUTES)}
        if queried is not None and queried.any():
            m = probes.matches(h[queried])
            parts.update({f"match_{k}": F.cross_entropy(m[k].flatten(0, 1), matched[queried][..., j].flatten())
                          for j, k in enumerate(MATCHES)})
        loss = sum(parts.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}: {({k: float(v) for k, v in parts.items()})}")
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            scores = evaluate(model, probes, val, template, system, args.window, layer)
            if probes.match is not None:
                scores.update(evaluate_match(model, probes, val, template, system, args.window, layer))
            row = {"step": step, "loss": {k: round(v.item(), 4) for k, v in parts.items()}, "val": scores,
                   "cpu_s": round(time.process_time() - c0, 1), "wall_s": round(time.time() - t0, 1)}
            history.append(row)
            log.info("%s", json.dumps(row))
    model.eval()
    model.requires_grad_(False)
    save_checkpoint(model, out, inference=inference_settings(args.init))
    report = {"stage": "stream pretraining (scripts/pretrain_tiny_stream.py)", "init": str(args.init),
              "args": vars(args), "n_train_videos": len(train.features), "n_val_videos": len(val.features),
              "classes": {k: [*v, "nothing"] for k, v in ATTRIBUTES.items()},
              "match_classes": ["differs", "same", "nothing"] if probes.match is not None else None,
              "history": history, "final": history[-1], "load_s": round(load_s, 1),
              "wall_s": round(time.time() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
              "torch_threads": torch.get_num_threads()}
    atomic_write_json(out / "pretrain_report.json", report)
    log.info("saved %s (final val accuracy %s)", out, history[-1]["val"])
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    raise SystemExit(entry("pretrain_tiny_stream", lambda argv: main(parse_args(argv))))
