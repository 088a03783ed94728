"""scripts/tiny_mixture.py: the embedded default's training annotations, from the TRAIN split only."""
import json
from pathlib import Path

import pytest

from data.mixture import load_mixture_config
from data.synthetic import COLOURS, KINDS, MOTIONS
from tests.script_loader import load_script

REPO = Path(__file__).resolve().parents[1]
tm = load_script("scripts/tiny_mixture.py")


def _ev(start, end, colour, kind, motion):
    return {"start": start, "end": end, "colour": colour, "kind": kind, "motion": motion,
            "caption": f"A {colour} {kind} {motion}."}


GT = [{"video": "a.mp4", "video_id": "a", "events": [
    _ev(1.0, 3.0, "red", "circle", "bounces"), _ev(5.0, 7.0, "blue", "square", "spins"),
    _ev(9.0, 11.0, "red", "circle", "bounces")]}]


def test_contrast_items_one_query_per_shape_with_all_its_events():
    items = tm.contrast_items(GT)
    assert items == [{"video_uid": "a.mp4", "query": "a blue square spins", "timestamps": [[5.0, 7.0]]},
                     {"video_uid": "a.mp4", "query": "a red circle bounces", "timestamps": [[1.0, 3.0], [9.0, 11.0]]}]


def test_counterfactual_items_change_exactly_one_attribute_and_are_seeded():
    items = tm.counterfactual_items(GT, ["colour", "kind", "motion"], seed=0)
    assert len(items) == 2 * 3 and items == tm.counterfactual_items(GT, ["colour", "kind", "motion"], seed=0)
    shapes = sorted(tm.shape_spans(GT[0]))
    for i, it in enumerate(items):
        shape, attr = shapes[i // 3], ("colour", "kind", "motion")[i % 3]
        words = it["query"].split()[1:]
        changed = [a for a, w, s in zip(("colour", "kind", "motion"), words, shape) if w != s]
        assert changed == [attr]
        assert words[0] in COLOURS and words[1] in KINDS and words[2] in MOTIONS
        # positive only on the events of the changed shape, if the video has it
        assert it["timestamps"] == tm.shape_spans(GT[0]).get(tuple(words), [])


def test_attribute_items_name_one_value_and_cover_every_event_with_it():
    items = tm.attribute_items(GT, ["motion", "kind"])
    assert items == [{"video_uid": "a.mp4", "query": "it bounces", "timestamps": [[1.0, 3.0], [9.0, 11.0]]},
                     {"video_uid": "a.mp4", "query": "it spins", "timestamps": [[5.0, 7.0]]},
                     {"video_uid": "a.mp4", "query": "a circle", "timestamps": [[1.0, 3.0], [9.0, 11.0]]},
                     {"video_uid": "a.mp4", "query": "a square", "timestamps": [[5.0, 7.0]]}]
    assert tm.attribute_items(GT, ["colour"])[0]["query"] == "a blue one"


def test_main_writes_a_valid_mixture_from_the_train_split(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "ground_truth.json").write_text(json.dumps(GT))
    (tmp_path / "train" / "shot2story_dvc.json").write_text(json.dumps({"a.mp4": {"0": []}}))
    assert tm.main(["--data", str(tmp_path), "--clip_stride", "6", "--dvc_copies", "2", "--counterfactual", "kind",
                    "--dvc_at", "end"]) == 0
    mix = load_mixture_config(tmp_path / "mixture_tiny.json")
    names = [d["name"] for d in mix["datasets"]]
    assert names == ["grounding", "grounding_contrast", "grounding_counterfactual", "dvc_0", "dvc_1"]
    assert all(d["clip_stride"] == 6 and d["max_frames"] == 12 for d in mix["datasets"])
    dvc = json.loads((tmp_path / "train" / "dvc_tiny.json").read_text())
    assert [n["time"] for n in dvc["a.mp4"]["0"]] == [3.0, 7.0, 11.0]  # said when each event ends
    # clip_stride 0: the first clip of each video only (no clip_stride key); mid: the generator's own captions
    assert tm.main(["--data", str(tmp_path), "--clip_stride", "0"]) == 0
    mix = load_mixture_config(tmp_path / "mixture_tiny.json")
    assert all("clip_stride" not in d for d in mix["datasets"]) and len(mix["datasets"]) == 5
    assert json.loads((tmp_path / "train" / "dvc_tiny.json").read_text()) == {"a.mp4": {"0": []}}
    with pytest.raises(SystemExit, match="unknown attributes"):
        tm.main(["--data", str(tmp_path), "--counterfactual", "size"])
    with pytest.raises(SystemExit, match="unknown attributes"):
        tm.main(["--data", str(tmp_path), "--attribute_queries", "motion,speed"])
    assert tm.main(["--data", str(tmp_path), "--dvc_unseen", "keep", "--clip_stride", "6"]) == 0
    dvc = [d for d in load_mixture_config(tmp_path / "mixture_tiny.json")["datasets"] if d["type"] == "dvc"]
    assert dvc and all(d["unseen_captions"] == "keep" for d in dvc)
    assert tm.main(["--data", str(tmp_path), "--attribute_queries", "motion"]) == 0
    names = [d["name"] for d in load_mixture_config(tmp_path / "mixture_tiny.json")["datasets"]]
    assert names[:3] == ["grounding", "grounding_contrast", "grounding_attribute"]
    assert json.loads((tmp_path / "train" / "grounding_attribute.json").read_text())[0]["query"] == "it bounces"


def test_query_template_random_asks_the_grounding_queries_as_the_benchmark_items_do(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "ground_truth.json").write_text(json.dumps(GT))
    (tmp_path / "train" / "shot2story_dvc.json").write_text(json.dumps({"a.mp4": {"0": []}}))
    assert tm.main(["--data", str(tmp_path)]) == 0
    grounding = [d for d in load_mixture_config(tmp_path / "mixture_tiny.json")["datasets"] if d["type"] == "grounding"]
    assert grounding and all(d["template_spec"] == "none" for d in grounding)  # the shipped recipe: raw text
    assert tm.main(["--data", str(tmp_path), "--query_template", "random"]) == 0
    mix = load_mixture_config(tmp_path / "mixture_tiny.json")
    grounding = [d for d in mix["datasets"] if d["type"] == "grounding"]
    assert grounding and all(d["template_spec"] == "random" for d in grounding)
    assert "queries in random templates" in mix["description"]
