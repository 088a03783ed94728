"""scripts/probe_binding.py: the query-binding diagnostic used to choose the tiny model's recipe."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.script_loader import load_script

REPO = Path(__file__).resolve().parents[1]


def _probe():
    return load_script("scripts/probe_binding.py")


def _event(start, end, colour, kind, motion):
    return {"start": start, "end": end, "colour": colour, "kind": kind, "motion": motion}


def test_frames_are_classed_by_what_differs_from_the_query():
    probe = _probe()
    events = [_event(1.0, 2.0, "red", "circle", "bounces"), _event(3.0, 4.0, "blue", "circle", "bounces"),
              _event(5.0, 6.0, "blue", "square", "spins")]
    got = probe.frame_classes(events, "a red circle bounces", 14, 2.0)
    assert got == ["calm", "calm", "match", "match", "calm", "calm", "differs:colour", "differs:colour",
                   "calm", "calm", "differs:several", "differs:several", "calm", "calm"]
    # the same frames against another query: only the query decides
    got = probe.frame_classes(events, "a blue circle spins", 14, 2.0)
    assert got[2] == "differs:several" and got[6] == "differs:motion" and got[10] == "differs:kind"
    with pytest.raises(ValueError, match="probe queries"):
        probe.frame_classes(events, "red circle", 4, 2.0)


def test_items_ask_every_event_shape_and_the_video_query_once():
    probe = _probe()
    gt = [{"video": "v.mp4", "query_shape": {"colour": "red", "kind": "circle", "motion": "bounces"},
           "events": [_event(1.0, 2.0, "blue", "circle", "bounces"), _event(3.0, 4.0, "blue", "circle", "bounces"),
                      _event(5.0, 6.0, "red", "square", "spins")]}]
    items = probe.probe_items(gt)
    assert sorted(i["query"] for i in items) == ["a blue circle bounces", "a red circle bounces", "a red square spins"]
    spans = {i["query"]: i["timestamps"] for i in items}
    assert spans["a blue circle bounces"] == [[1.0, 2.0], [3.0, 4.0]] and spans["a red circle bounces"] == []


def test_probe_runs_on_a_generated_split_with_the_shipped_checkpoint(tmp_path, one_torch_thread):
    from data.metadata import build_metadata
    from data.synthetic import SynthConfig, generate_dataset

    data = tmp_path / "syn"
    generate_dataset(data, seed=3, n_train=0, n_val=2, n_test=0, cfg=SynthConfig(duration=(12, 14), n_annotators=2))
    build_metadata(data / "videos", data / "videos_metadata.json", workers=1, executor="thread", progress=False)
    out = tmp_path / "probe.json"
    probe = _probe()
    assert probe.main(["--data", str(data), "--checkpoint", str(REPO / "checkpoints" / "aha-tiny-synth"),
                       "--max_frames", "8", "--output", str(out)]) == 0
    # main() runs in-process here: it must not leave autograd switched off for later tests
    assert torch.is_grad_enabled()
    report = json.loads(out.read_text())
    gt = json.loads((data / "val" / "ground_truth.json").read_text())
    n = report["frames"]
    assert report["n_items"] == len(probe.probe_items(gt))
    assert n["calm"] + n["match"] + n["nonmatch"] == 8 * report["n_items"]
    assert n["nonmatch"] == sum(v for k, v in n.items() if k.startswith("differs:"))
    for k, v in report.items():
        if k.startswith("auc_") and v is not None:
            assert 0.0 <= v <= 1.0

