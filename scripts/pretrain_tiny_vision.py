"""Stage 0 of the tiny default's recipe: pretrain its vision tower on labelled synthetic events.

The real Aha! starts from a pretrained SigLIP; the embedded default (``aha-tiny-synth``) has none, and
its random-init tower trained through the language model alone never learned the shape of an event
(kind AUC 0.50, instructions/tiny_model.md). This stage trains the tower and the projector, through
the model's own frame pooling (the token the LM will see), with three linear probes: kind and colour
from one frame's token, motion from the tokens of two frames ``gap_s`` apart. The probes are thrown
away; the result is a full Aha! checkpoint (random-init LM and heads, trained tower and projector)
that ``train.py --lora_pretrained`` continues from.

Events are rendered (``data.synthetic.event_frames``) from a seed stream no benchmark split uses;
held-out accuracy is reported on other rendered events and, with ``--data``, on events decoded from
the val videos of a synthetic set (the codec's view). Seeded and single-process: the same command on
the same machine gives the same weights.

    python scripts/pretrain_tiny_vision.py --out outputs/tiny_vision --data outputs/synthetic
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.synthetic.event_frames import POSE_DIM, EventFrames, render_event_frames  # noqa: E402
from data.synthetic.scene import COLOURS, KINDS, MOTIONS  # noqa: E402
from models.build import build_model, load_preset, train_window_tokens  # noqa: E402
from models.checkpoint import save_checkpoint  # noqa: E402
from models.inference_settings import InferenceSettings  # noqa: E402
from models.frames import to_pixel_values  # noqa: E402
from utils.cli import check_number, check_output_dir, entry  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402

log = logging.getLogger("pretrain_tiny_vision")


class Probes(torch.nn.Module):
    """Heads on the frame tokens, thrown away after the stage. ``motion_probe``: ``linear`` over the
    concatenated tokens of the sample's frames (the first recipe), or ``mlp`` (one hidden layer): a
    linear map of two tokens can tell how a pose changed but not by how much in any direction (|dx|,
    the angle turned), so a linear motion probe asks the tower for features that are motion-specific
    rather than for the pose the language model can compare across frames itself."""

    def __init__(self, dim: int, frames: int = 2, motion_probe: str = "linear", pose: bool = False):
        super().__init__()
        # one more class each: "nothing on screen" (calm samples, --calm_fraction)
        self.kind = torch.nn.Linear(dim, len(KINDS) + 1)
        self.colour = torch.nn.Linear(dim, len(COLOURS) + 1)
        n_motion = len(MOTIONS) + 1
        if motion_probe == "linear":
            self.motion = torch.nn.Linear(frames * dim, n_motion)
        elif motion_probe == "mlp":
            self.motion = torch.nn.Sequential(torch.nn.Linear(frames * dim, 2 * dim), torch.nn.GELU(),
                                              torch.nn.Linear(2 * dim, n_motion))
        else:
            raise ValueError(f"motion_probe must be 'linear' or 'mlp', got {motion_probe!r}")
        # per frame, only with --pose_weight > 0 (made last: the other probes' initialisation is unchanged)
        self.pose = torch.nn.Linear(dim, POSE_DIM) if pose else None


def frame_tokens(model, frames: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [B, T, S, S, 3] -> the last (summary) token the LM sees for each frame, [B, T, D]."""
    b, t = frames.shape[:2]
    px = to_pixel_values(frames.reshape(b * t, size, size, 3), size)
    return model.encode_frames(px)[:, -1].reshape(b, t, -1)


def pose_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the frames that show an event (calm frames' targets are NaN)."""
    seen = torch.isfinite(target)
    if not seen.any():
        return pred.sum() * 0.0
    return F.mse_loss(pred[seen], target[seen])


def losses(model, probes: Probes, frames, kind, colour, motion, size: int, pose=None,
           pose_weight: float = 0.0) -> dict[str, torch.Tensor]:
    z = frame_tokens(model, frames, size)
    out = {"kind": F.cross_entropy(probes.kind(z[:, 0]), kind),
           "colour": F.cross_entropy(probes.colour(z[:, 0]), colour),
           "motion": F.cross_entropy(probes.motion(z.flatten(1)), motion)}
    if pose_weight > 0:
        out["pose"] = pose_weight * pose_loss(probes.pose(z), pose)
    return out


@torch.no_grad()
def accuracy(model, probes: Probes, data: EventFrames, size: int, batch: int = 128) -> dict[str, float]:
    """Held-out accuracy of each class probe; with poses, the pose probe's R^2 over event frames."""
    hits = {"kind": 0, "colour": 0, "motion": 0}
    pred, true = [], []
    for i in range(0, len(data), batch):
        z = frame_tokens(model, torch.from_numpy(data.frames[i: i + batch]), size)
        for name, logits in (("kind", probes.kind(z[:, 0])), ("colour", probes.colour(z[:, 0])),
                             ("motion", probes.motion(z.flatten(1)))):
            hits[name] += int((logits.argmax(-1).numpy() == getattr(data, name)[i: i + batch]).sum())
        if data.pose is not None and probes.pose is not None:
            pred.append(probes.pose(z).numpy())
            true.append(data.pose[i: i + batch])
    out = {k: round(v / len(data), 4) for k, v in hits.items()}
    if pred:
        p, t = np.concatenate(pred), np.concatenate(true)
        seen = np.isfinite(t).all(-1)
        if seen.any():
            p, t = p[seen], t[seen]
            out["pose_r2"] = round(float(1 - ((p - t) ** 2).sum() / ((t - t.mean(0)) ** 2).sum()), 4)
    return out


def decoded_val_events(data_dir: Path, size: int, fps: float = 2.0, n_frames: int = 2) -> EventFrames:
    """``n_frames`` frames 1 / fps apart from the start of every val event of a synthetic set, decoded from its videos."""
    from data.video import load_clip

    gt_path = data_dir / "val" / "ground_truth.json"
    if not gt_path.is_file():
        raise FileNotFoundError(f"{gt_path} not found: --data must be a synthetic set (python -m data.synthetic)")
    frames, labels = [], []
    for video in json.loads(gt_path.read_text()):
        for e in video["events"]:
            f = int(math.ceil(e["start"] * fps))
            if (f + n_frames - 1) / fps >= e["end"]:
                continue
            clip = load_clip(data_dir / "videos" / video["video"], fps, f, f + n_frames, size=size)
            if len(clip) == n_frames:
                frames.append(clip)
                labels.append((KINDS.index(e["kind"]), list(COLOURS).index(e["colour"]), MOTIONS.index(e["motion"])))
    if not frames:
        raise ValueError(f"no val events could be decoded from {data_dir}")
    lab = np.asarray(labels, dtype=np.int64).T
    return EventFrames(np.stack(frames), lab[0], lab[1], lab[2])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder: a full Aha! checkpoint + pretrain_report.json")
    p.add_argument("--preset", default="aha-tiny-synth")
    p.add_argument("--data", default=None, help="a synthetic set: also report accuracy on its decoded val events")
    p.add_argument("--n_events", type=int, default=12000, help="rendered training samples (events and calm)")
    p.add_argument("--n_heldout", type=int, default=500, help="rendered held-out events (another seed)")
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--gap_s", type=float, default=0.5, help="time between the frames of a sample (2 fps: 0.5)")
    p.add_argument("--frames", type=int, default=2, help="frames per sample (motion is read from all of them)")
    p.add_argument("--motion_probe", choices=("linear", "mlp"), default="linear",
                   help="the motion head over the frames' tokens (see Probes)")
    p.add_argument("--pose_weight", type=float, default=0.0,
                   help="weight of a per-frame pose regression (centre, size, cap direction; 0: off)")
    p.add_argument("--calm_fraction", type=float, default=0.5,
                   help="a calm sample (no event on screen, class 'nothing') after each event with this probability")
    p.add_argument("--eval_every", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--overwrite", action="store_true")
    return p.parse_args(argv)


def main(args) -> int:
    for name in ("n_events", "n_heldout", "steps", "batch_size", "eval_every", "frames"):
        check_number(getattr(args, name), f"--{name}", minimum=1, integer=True)
    check_number(args.learning_rate, "--learning_rate", above=0)
    check_number(args.gap_s, "--gap_s", above=0)
    check_number(args.calm_fraction, "--calm_fraction", minimum=0, maximum=1)
    check_number(args.pose_weight, "--pose_weight", minimum=0)
    check_output_dir(args.out, "--out")
    out = Path(args.out)
    if (out / "model.safetensors").exists() and not args.overwrite:
        raise ValueError(f"--out {out} already holds a checkpoint (--overwrite to replace it)")
    if args.data and not (Path(args.data) / "val" / "ground_truth.json").is_file():
        raise ValueError(f"--data {args.data}: no val/ground_truth.json (a data.synthetic folder is expected)")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_preset(args.preset)
    size = cfg.vision_config.image_size
    t0, c0 = time.time(), time.process_time()
    train = render_event_frames(args.n_events, seed=args.seed, size=size, frames=args.frames, gap_s=args.gap_s,
                                calm_fraction=args.calm_fraction)
    heldout = render_event_frames(args.n_heldout, seed=args.seed + 1, size=size, frames=args.frames, gap_s=args.gap_s,
                                  calm_fraction=args.calm_fraction)
    decoded = decoded_val_events(Path(args.data), size, 1.0 / args.gap_s, args.frames) if args.data else None
    render_s = time.time() - t0
    log.info("rendered %d + %d events in %.0f s", len(train), len(heldout), render_s)

    model = build_model(cfg, seed=args.seed)
    torch.manual_seed(args.seed)
    probes = Probes(cfg.text_config.hidden_size, args.frames, args.motion_probe, pose=args.pose_weight > 0)
    trained = list(model.model.vision_tower.parameters()) + list(model.model.multi_modal_projector.parameters())
    model.requires_grad_(False)
    for p in trained:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trained + list(probes.parameters()), lr=args.learning_rate)
    gen = torch.Generator().manual_seed(args.seed)
    history = []
    model.train()
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(train), (args.batch_size,), generator=gen).numpy()
        parts = losses(model, probes, torch.from_numpy(train.frames[idx]), torch.from_numpy(train.kind[idx]),
                       torch.from_numpy(train.colour[idx]), torch.from_numpy(train.motion[idx]), size,
                       torch.from_numpy(train.pose[idx]), args.pose_weight)
        loss = sum(parts.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}: {({k: float(v) for k, v in parts.items()})}")
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            row = {"step": step, "loss": {k: round(v.item(), 4) for k, v in parts.items()},
                   "heldout": accuracy(model, probes, heldout, size),
                   "cpu_s": round(time.process_time() - c0, 1), "wall_s": round(time.time() - t0, 1)}
            if decoded is not None:
                row["decoded_val"] = accuracy(model, probes, decoded, size)
            model.train()
            history.append(row)
            log.info("%s", json.dumps(row))
    model.eval()
    model.requires_grad_(False)
    # train.py --lora_pretrained carries these on (what stage 1 trains on: frames 1 / gap_s apart and the
    # preset's training window), never the engine's real-model defaults (1 fps, a 2048-token window)
    window = train_window_tokens(args.preset)
    settings = {"fps": 1.0 / args.gap_s, **({"cache_policy": "dynamic_sink", "window": window} if window else {})}
    save_checkpoint(model, out, inference=InferenceSettings.from_dict(settings))
    report = {"stage": "vision pretraining (scripts/pretrain_tiny_vision.py)", "preset": args.preset,
              "args": vars(args), "n_train_events": len(train), "n_heldout_events": len(heldout),
              "n_decoded_val_events": None if decoded is None else len(decoded),
              "classes": {"kind": [*KINDS, "nothing"], "colour": [*COLOURS, "nothing"], "motion": [*MOTIONS, "nothing"]},
              "history": history, "final": history[-1], "render_s": round(render_s, 1),
              "wall_s": round(time.time() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
              "torch_threads": torch.get_num_threads()}
    atomic_write_json(out / "pretrain_report.json", report)
    log.info("saved %s (final held-out accuracy %s)", out, history[-1]["heldout"])
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    raise SystemExit(entry("pretrain_tiny_vision", lambda argv: main(parse_args(argv))))
