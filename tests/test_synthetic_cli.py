"""The synthetic benchmark's command line and configuration (data/synthetic.py): the CLI writes a
set and refuses bad input, config validation, the clutter palette and event sizes, the default-set check."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from data import synthetic as syn
from tests.test_synthetic import TINY  # the tiny set of the format tests
from utils.io import read_json

REPO = Path(__file__).resolve().parents[1]


def test_cli_writes_a_set_and_rejects_bad_input(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "data.synthetic", "--out", str(out), "--seed", "3", "--n_train", "1", "--n_val", "0",
           "--n_test", "1", "--duration", "12", "--fps", "4", "--size", "64x48", "--n_annotators", "5",
           "--workers", "1", "--quiet"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    manifest = read_json(out / "manifest.json")
    assert manifest["counts"] == {"train": 1, "val": 0, "test": 1} and manifest["config"]["width"] == 64
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["syn_test_0000.mp4", "syn_train_0000.mp4"]
    assert not (out / "val").exists()
    # rerunning into our own folder replaces it
    assert subprocess.run(cmd, capture_output=True, text=True, cwd=REPO).returncode == 0
    assert read_json(out / "manifest.json") == manifest

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not ours")
    bad = subprocess.run([*cmd[:4], str(foreign), *cmd[5:]], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "not empty" in bad.stderr and (foreign / "keep.txt").exists()
    bad = subprocess.run([*cmd, "--size", "63"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and "even" in bad.stderr
    for radius, msg in (("0.1", "LO:HI"), ("0.2:0.1", "event_radius")):
        bad = subprocess.run([*cmd, "--event_radius", radius], capture_output=True, text=True, cwd=REPO)
        assert bad.returncode == 2 and msg in bad.stderr


@pytest.mark.parametrize("kwargs,message", [
    ({"duration": (8, 10)}, "duration"),
    ({"fps": 0}, "fps"),
    ({"width": 65}, "even"),
    ({"n_annotators": 0}, "n_annotators"),
    ({"distractor_weights": (1.0, 1.0)}, "distractor_weights"),
    ({"codec": "vp9"}, "codec"),
    ({"clutter_palette": "neon"}, "clutter_palette"),
    ({"event_radius": (0.15, 0.1)}, "event_radius"),
    ({"event_radius": (0.1, 0.3)}, "event_radius"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        syn.SynthConfig(**kwargs)


def test_clutter_palette_and_event_size():
    """Clutter is grey by default (format 2) and takes the query colours with
    ``clutter_palette="colours"`` (format 1's harder set); event radii follow ``event_radius``."""
    grey, colours = syn.SynthConfig(), syn.SynthConfig(clutter_palette="colours", event_radius=(0.08, 0.12))
    assert (grey.clutter_palette, grey.event_radius) == ("grey", (0.12, 0.17))
    seen = {"grey": set(), "colours": set()}
    for seed in range(40):
        for name, cfg in (("grey", grey), ("colours", colours)):
            sc = syn.sample_scene(seed, cfg=cfg)
            seen[name] |= {c.colour for c in sc.clutter}
            lo, hi = cfg.event_radius
            side = min(cfg.width, cfg.height)
            assert all(lo * side <= e.motion["radius"] <= hi * side for e in sc.events)
    assert seen["grey"] and seen["grey"] <= set(syn.CLUTTER_GREYS)
    assert seen["colours"] and seen["colours"] <= set(syn.COLOURS)
    assert not set(syn.CLUTTER_GREYS) & set(syn.COLOURS)


def test_is_default_set_accepts_only_a_complete_default_set_of_this_format(tmp_path):
    out = tmp_path / "d"
    syn.generate_dataset(out, 0, 1, 0, 0, syn.SynthConfig(duration=(12, 12)), workers=1)
    assert not syn.is_default_set(out)  # a non-default config (duration)
    man = json.loads((out / "manifest.json").read_text())
    man["config"] = json.loads(json.dumps(syn.SynthConfig().to_dict()))
    (out / "manifest.json").write_text(json.dumps(man))
    assert syn.is_default_set(out) and syn.is_default_set(out, 0, {"train": 1, "val": 0, "test": 0})
    assert not syn.is_default_set(out, 1) and not syn.is_default_set(out, 0, {"train": 2, "val": 0, "test": 0})
    for key, value in (("format_version", syn.FORMAT_VERSION - 1), ("complete", False)):
        (out / "manifest.json").write_text(json.dumps({**man, key: value}))
        assert not syn.is_default_set(out), key
    assert not syn.is_default_set(tmp_path / "missing")


def test_bad_arguments_raise_value_errors(tmp_path):
    with pytest.raises(ValueError, match="split"):
        syn.video_seed(0, "dev", 0)
    with pytest.raises(ValueError, match="not all 0"):
        syn.generate_dataset(tmp_path / "x", 0, 0, 0, 0, TINY)
    with pytest.raises(ValueError, match="WxH"):
        syn.parse_size("12x12x3")
    with pytest.raises(ValueError, match="LO:HI"):
        syn.parse_duration("20-40")
    with pytest.raises(ValueError, match=">= 12"):
        syn.sample_scene(0, 10, TINY)
