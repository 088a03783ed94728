"""Stage 0 of the tiny default's recipe: labelled event frames and the vision pretraining script."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from data.synthetic.event_frames import pretrain_scene_seed, render_event_frames
from data.synthetic.scene import COLOURS, KINDS, MOTIONS, SPLITS, sample_scene, video_seed
from tests.script_loader import load_script

REPO = Path(__file__).resolve().parents[1]


def _script():
    return load_script("scripts/pretrain_tiny_vision.py")


def test_samples_are_the_pretraining_scenes_events_in_order_with_their_labels():
    data = render_event_frames(7, seed=3, size=112, frames=2, gap_s=0.5)
    assert data.frames.shape == (7, 2, 112, 112, 3) and data.frames.dtype == np.uint8
    expected = []
    index = 0
    while len(expected) < 7:
        scene = sample_scene(pretrain_scene_seed(3, index))
        expected += [(KINDS.index(e.shape.kind), list(COLOURS).index(e.shape.colour), MOTIONS.index(e.shape.motion))
                     for e in scene.events]
        index += 1
    assert list(zip(data.kind, data.colour, data.motion)) == expected[:7]
    again = render_event_frames(7, seed=3, size=112, frames=2, gap_s=0.5)
    assert np.array_equal(again.frames, data.frames)
    other = render_event_frames(7, seed=4, size=112, frames=2, gap_s=0.5)
    assert not np.array_equal(other.frames, data.frames)


def test_the_labelled_colour_is_on_screen_and_the_two_frames_differ():
    data = render_event_frames(12, seed=0, size=112)
    palette = np.array(list(COLOURS.values()), dtype=np.float32)  # [colours, 3]
    for i in range(len(data)):
        px = data.frames[i, 0].reshape(-1, 3).astype(np.float32)
        dist = np.linalg.norm(px[:, None, :] - palette[None], axis=-1)  # [pixels, colours]
        close = (dist < 40).sum(0)
        # the labelled colour covers a shape's worth of pixels (the shaded marker cap aside)
        assert close[data.colour[i]] >= 60, (i, close)
        assert not np.array_equal(data.frames[i, 0], data.frames[i, 1])  # 0.5 s later, the background has drifted


def test_calm_samples_show_no_event_and_carry_the_nothing_class():
    events_only = render_event_frames(10, seed=0)
    assert (events_only.kind < len(KINDS)).all() and (events_only.motion < len(MOTIONS)).all()
    data = render_event_frames(30, seed=0, calm_fraction=1.0)
    calm = data.kind == len(KINDS)
    assert 0 < calm.sum() < len(data)
    assert (data.colour[calm] == len(COLOURS)).all() and (data.motion[calm] == len(MOTIONS)).all()
    assert (data.kind[~calm] < len(KINDS)).all() and (data.colour[~calm] < len(COLOURS)).all()
    # the same events as without calm samples, in the same order (their start frames are drawn anew)
    assert np.array_equal(data.kind[~calm][:10], events_only.kind)
    assert np.array_equal(data.motion[~calm][:10], events_only.motion)
    palette = np.array(list(COLOURS.values()), dtype=np.float32)
    for i in np.flatnonzero(calm):
        for f in range(2):
            px = data.frames[i, f].reshape(-1, 3).astype(np.float32)
            near = (np.linalg.norm(px[:, None, :] - palette[None], axis=-1) < 40).sum(0)
            assert near.max() < 10, (i, near)  # grey clutter and background only


def test_the_pretraining_stream_is_not_a_benchmark_split():
    seeds = {video_seed(0, split, i) for split in SPLITS for i in range(500)}
    assert not seeds & {pretrain_scene_seed(0, i) for i in range(500)}


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 2, "frames": 0}, {"n": 2, "gap_s": 0.3}, {"n": 2, "size": 0},
                                    {"n": 2, "calm_fraction": 1.5}])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        render_event_frames(**kwargs)


def test_the_script_trains_only_the_tower_and_projector_and_writes_a_loadable_checkpoint(tmp_path, capsys):
    from models.build import build_model, load_preset, train_window_tokens
    from models.checkpoint import load_checkpoint, read_meta

    mod = _script()
    out = tmp_path / "vision"
    args = mod.parse_args(["--out", str(out), "--n_events", "24", "--n_heldout", "8", "--steps", "3",
                           "--batch_size", "4", "--eval_every", "2", "--threads", "1"])
    assert mod.main(args) == 0
    report = json.loads((out / "pretrain_report.json").read_text())
    assert [r["step"] for r in report["history"]] == [2, 3]
    assert set(report["final"]["heldout"]) == {"kind", "colour", "motion"}
    meta = read_meta(out)
    assert meta["kind"] == "full"
    # what stage 1 (train.py --lora_pretrained) carries on: 2 fps and the preset's training window
    assert {k: meta["inference"][k] for k in ("fps", "cache_policy", "window")} == \
        {"fps": 2.0, "cache_policy": "dynamic_sink", "window": train_window_tokens("aha-tiny-synth")}
    assert len(load_file(str(out / "model.safetensors"))) > 0
    loaded = load_checkpoint(out).state_dict()
    fresh = build_model(load_preset("aha-tiny-synth"), seed=0).state_dict()
    assert loaded.keys() == fresh.keys()
    changed = {k for k, v in loaded.items() if not torch.equal(v, fresh[k])}
    # the language model and the heads stay at the seed's random init (train.py continues from them)
    assert changed and all("vision_tower" in k or "multi_modal_projector" in k for k in changed)
    assert any("vision_tower" in k for k in changed) and any("multi_modal_projector" in k for k in changed)
    # a second run into the same folder is refused without --overwrite (exit 2 through the contract)
    rc = mod.entry("pretrain_tiny_vision", lambda argv: mod.main(mod.parse_args(argv)),
                   ["--out", str(out), "--steps", "1", "--n_events", "4"])
    assert rc == 2 and "already holds a checkpoint" in capsys.readouterr().err


def test_pose_labels_follow_the_shape_on_screen_and_are_nan_on_calm_frames():
    from data.synthetic.event_frames import POSE_DIM

    data = render_event_frames(24, seed=0, size=112, frames=3, calm_fraction=1.0)
    assert data.pose.shape == (len(data), 3, POSE_DIM) and data.pose.dtype == np.float32
    calm = data.kind == len(KINDS)
    assert calm.any() and np.isnan(data.pose[calm]).all() and np.isfinite(data.pose[~calm]).all()
    palette = np.array(list(COLOURS.values()), dtype=np.float32)
    for i in np.flatnonzero(~calm):
        for f in range(3):
            px = data.frames[i, f].astype(np.float32)
            mask = np.linalg.norm(px - palette[data.colour[i]], axis=-1) < 40  # the shape's (uncapped) pixels
            ys, xs = np.nonzero(mask)
            # the scene is square (128 px) and letterboxed to 112 px: pose (-1..1) -> pixel centre
            x, y = (data.pose[i, f, :2] + 1) / 2 * 112
            # the darker cap shifts the coloured pixels' centroid off the centre by under a radius
            radius = data.pose[i, f, 2] / 5 * 112
            assert abs(xs.mean() - x) < radius and abs(ys.mean() - y) < radius, (i, f)
            assert abs(np.hypot(*data.pose[i, f, 3:]) - 1) < 1e-5  # a direction (cos, sin)
    # a growing shape's radius grows, a spinning one's position stays and its cap turns
    grows, spins = MOTIONS.index("grows"), MOTIONS.index("spins")
    big = render_event_frames(60, seed=1, size=112, frames=3)
    for i in np.flatnonzero(big.motion == grows):
        assert (np.diff(big.pose[i, :, 2]) > 0).all()
    for i in np.flatnonzero(big.motion == spins):
        assert np.allclose(big.pose[i, :, :3], big.pose[i, :1, :3], atol=1e-6)
        assert not np.allclose(big.pose[i, 0, 3:], big.pose[i, 1, 3:], atol=1e-2)


def test_the_mlp_motion_probe_and_the_pose_regression_train_and_report(tmp_path):
    mod = _script()
    out = tmp_path / "vision"
    args = mod.parse_args(["--out", str(out), "--n_events", "24", "--n_heldout", "8", "--steps", "2",
                           "--batch_size", "4", "--eval_every", "2", "--threads", "1", "--frames", "3",
                           "--motion_probe", "mlp", "--pose_weight", "1"])
    assert mod.main(args) == 0
    report = json.loads((out / "pretrain_report.json").read_text())
    assert set(report["final"]["heldout"]) == {"kind", "colour", "motion", "pose_r2"}
    assert set(report["final"]["loss"]) == {"kind", "colour", "motion", "pose"}
    assert report["final"]["loss"]["pose"] > 0
    probes = mod.Probes(8, frames=3, motion_probe="mlp", pose=True)
    assert isinstance(probes.motion, torch.nn.Sequential) and probes.motion[0].in_features == 24
    assert mod.Probes(8).pose is None  # the default probes (and their initialisation) are the first recipe's
    with pytest.raises(ValueError, match="motion_probe"):
        mod.Probes(8, motion_probe="deep")
    # calm frames carry no pose: their NaN targets are skipped, never turned into a NaN loss
    target = torch.tensor([[float("nan")] * 5, [0.5] * 5])
    assert torch.isclose(mod.pose_loss(torch.zeros(2, 5), target), torch.tensor(0.25))
    assert mod.pose_loss(torch.zeros(1, 5), target[:1]) == 0
