"""Training annotations that do not fit their video (or carry nothing to learn) are skipped and
counted when the data set is built, not trained on with moved labels.

A video shorter than its annotation (a cut file, stale metadata, another video under the same name)
used to give: every caption past its end answered on the last frame, merged into one answer (the
earlier captions lost), and a grounding span past its end marking no frame (an item teaching that its
query matches nothing); a grounding item without any span did the same. A ``learn`` field written as
text ("false") was read with ``bool()`` and taught the caption.

Fixture videos (tests/test_datasets.py) are 4 s long.
"""
from __future__ import annotations

import copy
import json
import logging

import pytest

from data.dvc import DenseVideoCaptioningDataset
from data.grounding import GroundingDataset
from data.magqa import MAGQADataset
from tests.test_datasets import GROUNDING_ANNO, MAGQA_ANNO, fixture_root, template  # noqa: F401 (fixtures)


def _build(cls, tmp_path, fixture_root, template, anno, name="a.json", **kw):  # noqa: F811
    path = tmp_path / name
    path.write_text(json.dumps(anno))
    return cls(path, fixture_root / "shot2story" / "videos", fixture_root / "shot2story" / "videos_metadata.json",
               template, fps=2, max_frames=128, **kw)


def test_past_video_end_allows_rounding_only():
    from data.stream import past_video_end

    assert not past_video_end(4.0, 4.0, 2)
    assert not past_video_end(4.9, 4.0, 2)  # within the slack: placed on the last frame as before
    assert past_video_end(9.0, 4.0, 2)
    assert not past_video_end(5.5, 4.0, 0.5)  # one frame interval at a low rate (2 s) is rounding too


def test_dvc_captions_past_the_video_end_skip_the_item(tmp_path, fixture_root, template, caplog):  # noqa: F811
    anno = {"v_001.mp4": {
        "ok": [{"text": "A man slices an onion.", "time": 1.2, "timespan": [0.0, 1.0]},
               {"text": "He adds it.", "time": 4.3, "timespan": [3.0, 4.0]}],  # rounding past 4 s: kept
        "cut": [{"text": "A man slices an onion.", "time": 1.2, "timespan": [0.0, 1.0]},
                {"text": "He fries it.", "time": 9.0, "timespan": [8.0, 9.0]},
                {"text": "He serves it.", "time": 12.0, "timespan": [10.0, 12.0]}],
        "event": [{"text": "Late event.", "time": 3.0, "timespan": [2.0, 20.0]}],  # centred at 11 s
    }}
    with caplog.at_level(logging.WARNING, logger="data.stream"):
        ds = _build(DenseVideoCaptioningDataset, tmp_path, fixture_root, template, anno)
    assert [ds.sample(i).sample_id for i in range(len(ds))] == ["v_001.mp4#ok"]
    assert "skipped 2 (2 caption after the video's end)" in caplog.text


def test_magqa_answers_past_the_video_end_skip_the_item(tmp_path, fixture_root, template, caplog):  # noqa: F811
    late = copy.deepcopy(MAGQA_ANNO[0])
    late["question_id"] = 99
    late["conversation"][3]["time"] = 30.0
    with caplog.at_level(logging.WARNING, logger="data.stream"):
        ds = _build(MAGQADataset, tmp_path, fixture_root, template, [MAGQA_ANNO[0], late])
    assert len(ds) == 1 and ds.sample(0).sample_id == "17"
    assert "1 turn after the video's end" in caplog.text


def test_grounding_items_without_a_span_in_the_video_are_skipped(tmp_path, fixture_root, template, caplog):  # noqa: F811
    anno = [GROUNDING_ANNO[0],
            dict(GROUNDING_ANNO[0], timestamps=[]),
            dict(GROUNDING_ANNO[0], timestamps=[[20.0, 25.0]]),
            dict(GROUNDING_ANNO[0], timestamps=[[3.0, 6.0]])]  # ends past the video: its frames are kept
    with caplog.at_level(logging.WARNING, logger="data.stream"):
        ds = _build(GroundingDataset, tmp_path, fixture_root, template, anno)
    assert [ds.sample(i).sample_id for i in range(len(ds))] == ["v_001.mp4#0", "v_001.mp4#3"]
    assert "1 no timestamp" in caplog.text and "1 timestamp after the video's end" in caplog.text
    labels = ds.sample(1).messages[-1]["relevance"]
    assert labels == [0, 0, 0, 0, 0, 0, 1, 1]


@pytest.mark.parametrize("value", ["false", 0, 1, "yes"])
def test_a_learn_field_that_is_not_a_boolean_is_an_error(tmp_path, fixture_root, template, value):  # noqa: F811
    anno = {"v_001.mp4": {"0": [{"text": "A man slices an onion.", "time": 1.2, "learn": value}]}}
    with pytest.raises(ValueError, match="'learn' must be true or false"):
        _build(DenseVideoCaptioningDataset, tmp_path, fixture_root, template, anno)
    conv = copy.deepcopy(MAGQA_ANNO[0])
    conv["conversation"][1]["learn"] = value
    with pytest.raises(ValueError, match="'learn' must be true or false"):
        _build(MAGQADataset, tmp_path, fixture_root, template, [conv], name="m.json")


def test_boolean_learn_fields_are_honoured(tmp_path, fixture_root, template, qwen2_tokenizer):  # noqa: F811
    anno = {"v_001.mp4": {"0": [{"text": "said", "time": 1.2, "learn": False}, {"text": "taught", "time": 3.0, "learn": True}]}}
    ds = _build(DenseVideoCaptioningDataset, tmp_path, fixture_root, template, anno)
    lab = ds.encode(ds.sample(0))["labels"]
    assert qwen2_tokenizer.decode(lab[lab != -100].tolist()) == "taught<|im_end|>"


def test_blank_captions_answers_and_queries_skip_their_item(tmp_path, fixture_root, template, caplog):  # noqa: F811
    dvc = {"v_001.mp4": {"ok": [{"text": "A man slices an onion.", "time": 1.2}], "blank": [{"text": "  ", "time": 1.2}]}}
    conv = copy.deepcopy(MAGQA_ANNO[0])
    conv["question_id"] = 5
    conv["conversation"][1]["content"] = ""
    with caplog.at_level(logging.WARNING, logger="data.stream"):
        assert len(_build(DenseVideoCaptioningDataset, tmp_path, fixture_root, template, dvc)) == 1
        assert len(_build(MAGQADataset, tmp_path, fixture_root, template, [MAGQA_ANNO[0], conv], name="m.json")) == 1
        g = _build(GroundingDataset, tmp_path, fixture_root, template, [GROUNDING_ANNO[0], dict(GROUNDING_ANNO[0], query=" ")],
                   name="g.json")
        assert len(g) == 1
    assert caplog.text.count("1 empty question or answer") == 3
