"""Training datasets: conversations, labels and frames against hand-built expectations.

Every dataset format of aha_reference.md 2.6 is exercised on tiny fixtures written here
(``write_mixture_fixture`` is shared with the collator, feature-cache and training tests).
Fixture videos are 4 s at 10 fps (64x48, frame index encoded in stripes), so at 2 fps a video has
8 sampled frames, frame i at i / 2 s, made from native frame 5 i.
"""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
import torch

from data.dvc import DenseVideoCaptioningDataset
from data.grounding import GroundingDataset, span_relevance
from data.hihd import HIHDDataset, frame_scores
from data.magqa import MAGQADataset
from data.metadata import NoValidItemError, build_metadata
from data.mixture import build_mixture, load_mixture_config
from data.prompts import DVC_INSTRUCTIONS, SYSTEM_PROMPT
from data.stream import Turn, clip_messages, frame_at_or_after, timeline_messages, window_starts
from models.chat import ChatTemplate
from tests.videos import read_frame_index, write_test_video

IMG_BOX = (0, 48, 384, 288)  # 64x48 letterboxed into 384x384

DVC_ANNO = {
    "v_001.mp4": {"0": [
        {"text": "A man slices an onion.", "time": 1.2, "timespan": [0.0, 1.0]},
        {"text": "He adds it to the pan.", "time": 3.0, "timespan": [1.5, 3.0]},
    ]},
    "v_broken.mp4": {"0": [{"text": "never loaded", "time": 1.0}]},
}
MAGQA_ANNO = [{
    "video_uid": "v_002.mp4", "video_start_time": 0.0, "question_id": 17, "conversation": [
        {"role": "user", "content": "What are the people doing?", "time": 1.0},
        {"role": "assistant", "content": "Two kids play ball.", "time": 2.5, "timespan": [1.5, 2.5]},
        {"role": "user", "content": "And now?", "time": 3.0},
        {"role": "assistant", "content": "They stop.", "time": 3.4},
    ]}]
GROUNDING_ANNO = [{"video_uid": "v_001.mp4", "query": "a man slices an onion", "timestamps": [[1.0, 2.0]]}]
COIN_ANNO = {"database": {
    "c_01": {"subset": "training", "annotation": [{"segment": [0.5, 1.5], "label": "open the lid"},
                                                  {"segment": [2.0, 3.5], "label": "pour the water"}]},
    "c_02": {"subset": "testing", "annotation": [{"segment": [0.0, 1.0], "label": "never used"}]},
}}
HIHD_ROWS = [
    {"youtube_id": "abc123", "training_split": "train", "query": "Which moments of 'Cooking' are the best?",
     "duration": "4.0", "scores": "[0.1, 0.5, 0.9, 0.3]", "quality_dropout": '[[1, 2, "blackout"]]'},
    {"youtube_id": "abc123", "training_split": "test", "query": "held out", "duration": "4.0",
     "scores": "[0.2, 0.2, 0.2, 0.2]", "quality_dropout": "[]"},
    {"youtube_id": "missing", "training_split": "train", "query": "no video", "duration": "4.0",
     "scores": "[0.2]", "quality_dropout": "[]"},
]


def write_mixture_fixture(root: Path, fps_max: dict[str, tuple[float, int]] | None = None) -> Path:
    """Videos, annotations, metadata and a mixture config under ``root``; returns the config path.

    ``fps_max`` overrides (fps, max_frames) per dataset name: shot2story_dvc, shot2story_magqa,
    coin_dvc, hihd.
    """
    s2s, coin, hihd = root / "shot2story", root / "coin", root / "HIHD"
    for name in ("v_001.mp4", "v_002.mp4"):
        write_test_video(s2s / "videos" / name, 40, 10)
    (s2s / "videos" / "v_broken.mp4").write_text("not a video")
    write_test_video(coin / "videos" / "c_01.mp4", 40, 10)
    write_test_video(hihd / "videos" / "abc123.mp4", 40, 10)
    (s2s / "annotations").mkdir(parents=True)
    (s2s / "annotations" / "dvc.json").write_text(json.dumps(DVC_ANNO))
    (s2s / "annotations" / "magqa.json").write_text(json.dumps(MAGQA_ANNO))
    (coin / "annotations").mkdir(parents=True)
    (coin / "annotations" / "coin.json").write_text(json.dumps(COIN_ANNO))
    (hihd / "annotations").mkdir(parents=True)
    with open(hihd / "annotations" / "HIHD_metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(HIHD_ROWS[0]))
        w.writeheader()
        w.writerows(HIHD_ROWS)
    for d in (s2s, coin, hihd):
        build_metadata(d / "videos", d / "videos_metadata.json", workers=0, progress=False)
    spec = {"shot2story_dvc": (2, 128), "shot2story_magqa": (2, 128), "coin_dvc": (0.5, 120), "hihd": (1, 128)}
    spec.update(fps_max or {})

    def entry(name, typ, folder, anno):
        fps, mx = spec[name]
        return {"name": name, "type": typ, "video_root": f"{folder}/videos", "anno_file": f"{folder}/annotations/{anno}",
                "metadata": f"{folder}/videos_metadata.json", "fps": fps, "max_frames": mx}

    cfg = {"datasets": [entry("shot2story_dvc", "dvc", "shot2story", "dvc.json"),
                        entry("shot2story_magqa", "magqa", "shot2story", "magqa.json"),
                        entry("coin_dvc", "dvc", "coin", "coin.json"),
                        entry("hihd", "hihd", "HIHD", "HIHD_metadata.csv")]}
    path = root / "mixture.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    write_mixture_fixture(root)
    return root


@pytest.fixture(scope="module")
def template(qwen2_tokenizer):
    return ChatTemplate(qwen2_tokenizer, tokens_per_frame=49)


def _dataset(cls, root, folder, anno, template, fps=2.0, max_frames=128, **kw):
    return cls(root / folder / "annotations" / anno, root / folder / "videos", root / folder / "videos_metadata.json",
               template, fps=fps, max_frames=max_frames, **kw)


def _frame_labels(item, key):
    v = item[key]
    return [x.item() for x in v[v != -100]]


def _lm_text(item, tok):
    lab = item["labels"]
    return tok.decode(lab[lab != -100].tolist())


def _frame_indices(frames):
    return [read_frame_index(f.numpy(), box=IMG_BOX) for f in frames]


# ------------------------------------------------------------------ pure conversation rules

def test_frame_at_or_after_absorbs_float_noise():
    assert frame_at_or_after(6.5, 2) == 13
    assert frame_at_or_after(0.1 * 3, 10) == 3
    assert frame_at_or_after(1.2, 2) == 3
    assert frame_at_or_after(0.0, 2) == 0


def test_timeline_places_turns_like_the_online_engine():
    turns = [Turn("user", 0.0, "narrate"),
             Turn("assistant", 1.2, "one", span=(0.0, 1.0)),   # after frame ceil(2.4)=3; positives from frame 1
             Turn("assistant", 3.0, "two", span=(1.5, 3.0))]   # after frame 6; positives from ceil(4.5)=5
    msgs = timeline_messages(turns, fps=2, n_frames=8)
    assert msgs == [
        {"role": "user", "content": "narrate"},
        {"role": "stream", "num_frames": 4, "informative": [0, 1, 1, 1]},
        {"role": "assistant", "content": "one", "learn": True},
        {"role": "stream", "num_frames": 3, "informative": [0, 1, 1]},
        {"role": "assistant", "content": "two", "learn": True},
    ]


def test_response_frames_are_clamped_to_their_stream_turn():
    # the second event's midpoint (0.5 s) lies before the previous answer: all 3 frames positive, not 7
    turns = [Turn("user", 0.0, "q"), Turn("assistant", 1.2, "a"), Turn("assistant", 3.0, "b", span=(0.0, 1.0))]
    msgs = timeline_messages(turns, fps=2, n_frames=8)
    assert msgs[1]["informative"] == [0, 0, 0, 1]  # no span: only the answer frame
    assert msgs[3] == {"role": "stream", "num_frames": 3, "informative": [1, 1, 1]}


def test_same_frame_answers_merge_and_early_answers_move_after_the_question():
    turns = [Turn("user", 0.0, "q"), Turn("assistant", 2.8, "first"), Turn("assistant", 3.0, "second", learn=False)]
    msgs = timeline_messages(turns, fps=2, n_frames=8)  # both answers follow frame 6
    assert [m["role"] for m in msgs] == ["user", "stream", "assistant"]
    assert msgs[1]["num_frames"] == 7 and msgs[2] == {"role": "assistant", "content": "second", "learn": False}
    # an answer timed before its question is placed after the first frame after the question
    msgs = timeline_messages([Turn("user", 1.0, "q"), Turn("assistant", 0.5, "a")], fps=2, n_frames=8)
    assert msgs == [{"role": "stream", "num_frames": 2, "informative": [0, 0]}, {"role": "user", "content": "q"},
                    {"role": "stream", "num_frames": 1, "informative": [1]}, {"role": "assistant", "content": "a", "learn": True}]


def test_answers_after_the_end_and_trailing_questions():
    turns = [Turn("user", 0.0, "q"), Turn("assistant", 99.0, "late"), Turn("user", 99.0, "unanswered")]
    msgs = timeline_messages(turns, fps=2, n_frames=8)  # clamped to the last frame; trailing question dropped
    assert msgs == [{"role": "user", "content": "q"}, {"role": "stream", "num_frames": 8, "informative": [0] * 7 + [1]},
                    {"role": "assistant", "content": "late", "learn": True}]


@pytest.mark.parametrize("max_frames, expected_roles, last_stream", [
    (4, ["user", "stream", "assistant"], {"num_frames": 4, "informative": [0, 1, 1, 1]}),  # boundary: answer kept
    (5, ["user", "stream", "assistant", "stream"], {"num_frames": 1, "informative": [0]}),
    (6, ["user", "stream", "assistant", "stream"], {"num_frames": 2, "informative": [0, 1]}),
    (3, ["user", "stream"], {"num_frames": 3, "informative": [0, 1, 1]}),
])
def test_clip_keeps_the_first_frames_and_their_labels(max_frames, expected_roles, last_stream):
    turns = [Turn("user", 0.0, "q"), Turn("assistant", 1.2, "one", span=(0.0, 1.0)),
             Turn("assistant", 3.0, "two", span=(1.5, 3.0))]
    msgs = clip_messages(timeline_messages(turns, fps=2, n_frames=8), max_frames)
    assert [m["role"] for m in msgs] == expected_roles
    stream = [m for m in msgs if m["role"] == "stream"][-1]
    assert {k: stream[k] for k in ("num_frames", "informative")} == last_stream
    assert sum(m["num_frames"] for m in msgs if m["role"] == "stream") == min(max_frames, 7)


def test_relevance_helpers():
    assert span_relevance([(1.0, 2.0)], 8, 2.0) == [0, 0, 1, 1, 1, 0, 0, 0]
    assert frame_scores([0.1, 0.5, 0.9], n_video_frames=8, fps=2, max_frames=None) == [0.1, 0.1, 0.5, 0.5, 0.9, 0.9]
    assert frame_scores([0.1, 0.5, 0.9], n_video_frames=8, fps=2, max_frames=4) == [0.1, 0.1, 0.5, 0.5]
    assert frame_scores([0.1, 0.5, 0.9, 0.3], n_video_frames=2, fps=0.5, max_frames=None) == [0.1, 0.9]


# ------------------------------------------------------------------ datasets on fixtures

def test_dvc_item_tokens_labels_and_frames(fixture_root, template, qwen2_tokenizer, caplog):
    with caplog.at_level(logging.WARNING):
        ds = _dataset(DenseVideoCaptioningDataset, fixture_root, "shot2story", "dvc.json", template)
    assert len(ds) == 1  # v_broken.mp4 is marked invalid in the metadata and skipped up front
    assert "1 invalid video" in caplog.text
    item = ds[0]
    assert item["sample_id"] == "dvc:v_001.mp4#0"
    instruction = next(t for t in DVC_INSTRUCTIONS if t in qwen2_tokenizer.decode(item["input_ids"]))
    expected = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": instruction},
                {"role": "stream", "num_frames": 4, "informative": [0, 1, 1, 1]},
                {"role": "assistant", "content": "A man slices an onion."},
                {"role": "stream", "num_frames": 3, "informative": [0, 1, 1]},
                {"role": "assistant", "content": "He adds it to the pan."}]
    enc = template.encode(template.pieces(expected)).tensors()
    for key in ("input_ids", "labels", "informative_labels", "relevance_labels"):
        assert torch.equal(item[key], enc[key]), key
    assert _frame_labels(item, "informative_labels") == [0, 1, 1, 1, 0, 1, 1]
    assert _frame_labels(item, "relevance_labels") == []
    assert _lm_text(item, qwen2_tokenizer) == "A man slices an onion.<|im_end|>He adds it to the pan.<|im_end|>"
    # system, then the user query, then the stream: the online engine's order
    text = qwen2_tokenizer.decode(item["input_ids"])
    assert text.index("<|im_start|>system") < text.index("<|im_start|>user") < text.index("<|im_start|>stream")
    # informative labels sit on the last placeholder of each frame
    ph = (item["input_ids"] == 151646).nonzero().flatten()
    assert torch.equal((item["informative_labels"] != -100).nonzero().flatten(), ph[48::49])
    assert item["frames"].dtype == torch.uint8 and tuple(item["frames"].shape) == (7, 384, 384, 3)
    assert _frame_indices(item["frames"]) == [0, 5, 10, 15, 20, 25, 30]
    assert ds[0]["input_ids"].tolist() == item["input_ids"].tolist()  # deterministic


def test_dvc_max_frames_and_coin_format(fixture_root, template, qwen2_tokenizer):
    ds = _dataset(DenseVideoCaptioningDataset, fixture_root, "shot2story", "dvc.json", template, max_frames=5)
    item = ds[0]
    assert item["frames"].shape[0] == 5
    assert _frame_labels(item, "informative_labels") == [0, 1, 1, 1, 0]
    assert _lm_text(item, qwen2_tokenizer) == "A man slices an onion.<|im_end|>"
    coin = _dataset(DenseVideoCaptioningDataset, fixture_root, "coin", "coin.json", template, fps=0.5, max_frames=120)
    assert len(coin) == 1  # the testing-subset video is not used
    item = coin[0]
    # 0.5 fps, 4 s -> frames at 0 and 2 s; "open the lid" after frame ceil(0.75)=1, "pour the water" after frame 2 -> clamped to 1
    assert item["frames"].shape[0] == 2
    assert _frame_labels(item, "informative_labels") == [0, 1]  # the merged turn keeps the first event's labels
    assert _lm_text(item, qwen2_tokenizer) == "pour the water<|im_end|>"  # both answers follow frame 1: the later wins
    assert _frame_indices(item["frames"]) == [0, 20]


def test_magqa_item(fixture_root, template, qwen2_tokenizer):
    ds = _dataset(MAGQADataset, fixture_root, "shot2story", "magqa.json", template)
    item = ds[0]
    assert item["sample_id"] == "magqa:17"
    text = qwen2_tokenizer.decode(item["input_ids"])
    img = "<image>" * 49
    assert text.endswith(
        "<|im_start|>stream\n" + img * 2 + "<|im_end|>\n<|im_start|>user\nWhat are the people doing?<|im_end|>"
        "\n<|im_start|>stream\n" + img * 4 + "<|im_end|>\n<|im_start|>assistant\nTwo kids play ball.<|im_end|>"
        "\n<|im_start|>user\nAnd now?<|im_end|>"
        "\n<|im_start|>stream\n" + img * 2 + "<|im_end|>\n<|im_start|>assistant\nThey stop.<|im_end|>")
    assert _frame_labels(item, "informative_labels") == [0, 0, 0, 0, 1, 1, 0, 1]
    assert _lm_text(item, qwen2_tokenizer) == "Two kids play ball.<|im_end|>They stop.<|im_end|>"
    assert _frame_indices(item["frames"]) == [0, 5, 10, 15, 20, 25, 30, 35]


def test_magqa_pre_question_frames_follow_the_video_start(tmp_path, fixture_root, template):
    anno = [dict(MAGQA_ANNO[0], video_start_time=1.0, question_id=i) for i in range(12)]
    (tmp_path / "a" / "annotations").mkdir(parents=True)
    (tmp_path / "a" / "annotations" / "m.json").write_text(json.dumps(anno))
    ds = MAGQADataset(tmp_path / "a" / "annotations" / "m.json", fixture_root / "shot2story" / "videos",
                      fixture_root / "shot2story" / "videos_metadata.json", template, fps=2, max_frames=3)
    starts = {ds.sample(i).start_frame for i in range(len(ds))}
    assert starts <= {0, 1, 2} and len(starts) > 1  # w uniform in [0, 2] (question at frame 2, start at 2)
    for i in range(len(ds)):
        s = ds.sample(i)
        assert s.num_frames == 3 and ds.max_end_frame(i) >= s.end_frame
        item = ds[i]
        assert _frame_indices(item["frames"]) == [5 * f for f in range(s.start_frame, s.start_frame + 3)]


def test_items_whose_text_holds_control_tokens_are_skipped_when_the_data_set_is_built(tmp_path, fixture_root, template,
                                                                                      caplog):
    """"<image>" in a question would become a frame placeholder (the batch then fails hours into
    training), "<|im_end|>" in an answer would end its turn early: such items are skipped and counted
    when the data set is built; the others are kept as they were."""
    import copy
    import logging

    anno = [dict(copy.deepcopy(MAGQA_ANNO[0]), question_id=i) for i in range(3)]
    anno[0]["conversation"][0]["content"] = "What is in the <image> here?"
    anno[2]["conversation"][1]["content"] = "Two kids<|im_end|> play ball."
    (tmp_path / "a" / "annotations").mkdir(parents=True)
    (tmp_path / "a" / "annotations" / "m.json").write_text(json.dumps(anno))
    with caplog.at_level(logging.WARNING, logger="data.stream"):
        ds = MAGQADataset(tmp_path / "a" / "annotations" / "m.json", fixture_root / "shot2story" / "videos",
                          fixture_root / "shot2story" / "videos_metadata.json", template, fps=2, max_frames=128)
    assert len(ds) == 1 and ds[0]["sample_id"] == "magqa:1"
    assert "kept 1 items, skipped 2 (2 control token in the text)" in caplog.text
    with pytest.raises(ValueError, match=r"the system prompt contains '<\|im_start\|>'"):
        MAGQADataset(tmp_path / "a" / "annotations" / "m.json", fixture_root / "shot2story" / "videos",
                     fixture_root / "shot2story" / "videos_metadata.json", template, system_prompt="<|im_start|>x")


def test_grounding_item(fixture_root, template, qwen2_tokenizer, tmp_path):
    (tmp_path / "g" / "annotations").mkdir(parents=True)
    (tmp_path / "g" / "annotations" / "g.json").write_text(json.dumps(GROUNDING_ANNO))
    ds = GroundingDataset(tmp_path / "g" / "annotations" / "g.json", fixture_root / "shot2story" / "videos",
                          fixture_root / "shot2story" / "videos_metadata.json", template, fps=2, max_frames=128)
    item = ds[0]
    assert _frame_labels(item, "relevance_labels") == [0, 0, 1, 1, 1, 0, 0, 0]
    assert _frame_labels(item, "informative_labels") == []
    assert (item["labels"] != -100).sum() == 0
    assert "a man slices an onion" in qwen2_tokenizer.decode(item["input_ids"])


def test_window_starts():
    assert window_starts(80, 12, None) == [0]          # no stride: one item from frame 0
    assert window_starts(80, 12, 12) == [0, 12, 24, 36, 48, 60]
    assert window_starts(30, 12, 6) == [0, 6, 12, 18]  # whole windows only (18 + 12 = 30)
    assert window_starts(10, 12, 6) == [0]             # shorter than one window: its one item


def test_clip_stride_is_checked(fixture_root, template):
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="clip_stride"):
            _dataset(GroundingDataset, fixture_root, "shot2story", "dvc.json", template, clip_stride=bad)
    with pytest.raises(ValueError, match="needs max_frames"):
        _dataset(DenseVideoCaptioningDataset, fixture_root, "shot2story", "dvc.json", template, max_frames=None, clip_stride=2)


def test_grounding_windows_cover_the_video_with_their_own_labels(fixture_root, template, tmp_path):
    (tmp_path / "g" / "annotations").mkdir(parents=True)
    (tmp_path / "g" / "annotations" / "g.json").write_text(json.dumps(GROUNDING_ANNO))
    # 4 s at 2 fps = 8 frames; windows of 3 frames every 2: starts 0, 2, 4
    ds = GroundingDataset(tmp_path / "g" / "annotations" / "g.json", fixture_root / "shot2story" / "videos",
                          fixture_root / "shot2story" / "videos_metadata.json", template, fps=2, max_frames=3,
                          clip_stride=2)
    assert [ds.records[i].start_frame for i in range(len(ds))] == [0, 2, 4]
    # the span [1, 2] s covers frames 2, 3, 4
    expected = {0: [0, 0, 1], 2: [1, 1, 1], 4: [1, 0, 0]}
    for i in range(len(ds)):
        item, start = ds[i], ds.records[i].start_frame
        assert _frame_labels(item, "relevance_labels") == expected[start]
        assert _frame_indices(item["frames"]) == [5 * f for f in range(start, start + 3)]
        assert item["sample_id"].endswith(f"@{start}")


def test_dvc_windows_hold_the_captions_answered_inside_them(fixture_root, template, qwen2_tokenizer):
    # captions answered after frame 3 (event [0, 1] s: positives from frame 1) and after frame 6
    # (event [1.5, 3] s: positives from frame 5); windows of 4 frames every 2: starts 0, 2, 4
    ds = _dataset(DenseVideoCaptioningDataset, fixture_root, "shot2story", "dvc.json", template, max_frames=4,
                  clip_stride=2)
    got = {}
    for i in range(len(ds)):
        item, s = ds[i], ds.sample(i)
        text = qwen2_tokenizer.decode(item["input_ids"])
        # the instruction comes right before the window's first frame
        assert text.index("<|im_start|>user") < text.index("<|im_start|>stream")
        got[s.start_frame] = (_frame_indices(item["frames"]), _frame_labels(item, "informative_labels"),
                              _lm_text(item, qwen2_tokenizer))
    one, two = "A man slices an onion.<|im_end|>", "He adds it to the pan.<|im_end|>"
    assert got == {0: ([0, 5, 10, 15], [0, 1, 1, 1], one),
                   # the first caption's event [0, 1] s ends at frame 2: this window never shows it, so it
                   # is not taught here (answered_in_window); the second one's positives start at frame 5
                   2: ([10, 15, 20, 25], [0, 0, 0, 1], ""),
                   4: ([20, 25, 30], [0, 1, 1], two)}          # the first caption was said before the window
    # unseen_captions="keep" (before session 11): the window from frame 2 is also taught the first
    # caption, with positives from its event's midpoint clamped to the window
    keep = _dataset(DenseVideoCaptioningDataset, fixture_root, "shot2story", "dvc.json", template, max_frames=4,
                    clip_stride=2, unseen_captions="keep")
    at2 = next(i for i in range(len(keep)) if keep.sample(i).start_frame == 2)
    assert _frame_labels(keep[at2], "informative_labels") == [1, 1, 0, 1] and _lm_text(keep[at2], qwen2_tokenizer) == one
    with pytest.raises(ValueError, match="unseen_captions"):
        _dataset(DenseVideoCaptioningDataset, fixture_root, "shot2story", "dvc.json", template, unseen_captions="x")


def test_dvc_window_drops_a_caption_of_an_event_it_never_shows():
    from data.dvc import answered_in_window
    from data.stream import Turn

    # said when its event [2.5, 3] s ends: answered after frame 6 (2 fps), the first frame AFTER the event
    at_end = Turn("assistant", 3.0, "a red circle spins", span=(2.5, 3.0))
    assert answered_in_window(at_end, 4, 2.0)          # frames 4, 5 show the event
    assert not answered_in_window(at_end, 6, 2.0)      # a window from frame 6 never shows it
    assert answered_in_window(at_end, 6, 2.0, keep_unseen=True) and not answered_in_window(at_end, 8, 2.0, True)
    # said mid-event [2, 4] s at 3.2 s (frame 7): a window from frame 6 shows frames 6, 7 of it
    mid = Turn("assistant", 3.2, "he stirs", span=(2.0, 4.0))
    assert answered_in_window(mid, 6, 2.0) and not answered_in_window(mid, 8, 2.0)
    # no timespan: only the answer time counts
    assert answered_in_window(Turn("assistant", 3.0, "x"), 6, 2.0)
    assert not answered_in_window(Turn("assistant", 3.0, "x"), 7, 2.0)


def test_hihd_item_one_stream_turn_and_immutable_dropout(fixture_root, template, qwen2_tokenizer, caplog):
    with caplog.at_level(logging.WARNING):
        ds = _dataset(HIHDDataset, fixture_root, "HIHD", "HIHD_metadata.csv", template, fps=1, max_frames=128)
    assert len(ds) == 1 and "not in metadata" in caplog.text
    item = ds[0]
    rel = _frame_labels(item, "relevance_labels")
    assert rel == pytest.approx([0.1, 0.5, 0.9, 0.3])
    assert _frame_labels(item, "informative_labels") == [] and (item["labels"] != -100).sum() == 0
    text = qwen2_tokenizer.decode(item["input_ids"])
    # every frame in ONE stream turn, contiguous, as at inference
    assert text.count("<|im_start|>stream") == 1 and "<image>" * 196 + "<|im_end|>" in text
    frames = item["frames"]
    assert frames.shape[0] == 4
    assert _frame_indices(frames[[0, 2, 3]]) == [0, 20, 30]
    assert int(frames[1].max()) == 0  # second 1 is blacked out (native frame 10 has white stripes)
    again = ds[0]["frames"]  # the schedule is not consumed by use
    assert torch.equal(again, frames)
    clipped = _dataset(HIHDDataset, fixture_root, "HIHD", "HIHD_metadata.csv", template, fps=1, max_frames=2)
    assert _frame_labels(clipped[0], "relevance_labels") == pytest.approx([0.1, 0.5])
    clean = _dataset(HIHDDataset, fixture_root, "HIHD", "HIHD_metadata.csv", template, fps=1, quality_dropout=False)
    assert int(clean[0]["frames"][1].max()) == 255


def test_broken_videos_are_retried_a_bounded_number_of_times(tmp_path, template, caplog):
    videos = tmp_path / "videos"
    write_test_video(videos / "good.mp4", 40, 10)
    build_metadata(videos, tmp_path / "meta.json", workers=0, progress=False)
    meta = json.loads((tmp_path / "meta.json").read_text())
    # a file that the metadata calls valid but that is broken by now
    meta["gone.mp4"] = dict(meta["good.mp4"])
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    anno = {"gone.mp4": {"0": [{"text": "x", "time": 1.0}]}, "good.mp4": {"0": [{"text": "y", "time": 1.0}]}}
    (tmp_path / "a.json").write_text(json.dumps(anno))
    ds = DenseVideoCaptioningDataset(tmp_path / "a.json", videos, tmp_path / "meta.json", template, fps=2, max_tries=3)
    assert len(ds) == 2
    with caplog.at_level(logging.WARNING):
        item = ds[0]
    assert item["sample_id"] == "dvc:good.mp4#0" and "gone.mp4" in caplog.text
    only_broken = DenseVideoCaptioningDataset(tmp_path / "a.json", videos, tmp_path / "meta.json", template, fps=2,
                                              max_tries=3)
    only_broken.records = only_broken.records[:1]
    with pytest.raises(NoValidItemError):
        only_broken[0]


def test_mixture_honours_per_dataset_fps_and_max_frames(fixture_root, template):
    cfg = load_mixture_config(fixture_root / "mixture.json")
    cfg["datasets"][0]["max_frames"] = 3
    cfg["datasets"][3]["fps"] = 2
    mix = build_mixture(cfg, fixture_root, template, seed=0)
    assert mix.summary() == {"shot2story_dvc": 1, "shot2story_magqa": 1, "coin_dvc": 1, "hihd": 1}
    frames = {mix[i]["sample_id"].split(":")[0]: mix[i]["frames"].shape[0] for i in range(len(mix))}
    assert frames == {"shot2story_dvc": 3, "shot2story_magqa": 8, "coin_dvc": 2, "hihd": 8}
    bad = json.loads((fixture_root / "mixture.json").read_text())
    bad["datasets"][0]["frame_fps"] = 2
    with pytest.raises(ValueError, match="unknown keys"):
        build_mixture(bad, fixture_root, template)
    needs = {n.key: n.end_frame for n in mix.frame_needs()}
    assert needs["shot2story/videos/v_001.mp4"] == 3 and needs["HIHD/videos/abc123.mp4"] == 8
    # a member with no usable item (here HIHD pointed at another folder's metadata) is an error: the
    # run would train without it (HIHD is the mixture's only source of relevance labels) and exit 0
    wrong = load_mixture_config(fixture_root / "mixture.json")
    wrong["datasets"][3]["metadata"] = "shot2story/videos_metadata.json"
    with pytest.raises(ValueError, match="dataset hihd of the mixture has no usable item"):
        build_mixture(wrong, fixture_root, template)


def test_clip_memory_gives_the_decoded_frames_once_per_clip(fixture_root, template, monkeypatch):
    import data.stream as stream
    from data.stream import ClipMemory

    plain = build_mixture(fixture_root / "mixture.json", fixture_root, template, seed=0)
    memo = ClipMemory(max_mb=64)
    mix = build_mixture(fixture_root / "mixture.json", fixture_root, template, seed=0, clip_memory=memo)
    calls = []
    real = stream.load_clip
    monkeypatch.setattr(stream, "load_clip", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    first = [mix[i] for i in range(len(mix))]
    n_decoded = len(calls)
    again = [mix[i] for i in range(len(mix))]
    assert len(calls) == n_decoded == memo.misses and memo.hits == len(mix)  # epoch 2 decodes nothing
    for a, b, c in zip(first, again, (plain[i] for i in range(len(plain)))):
        assert torch.equal(a["frames"], c["frames"]) and torch.equal(b["frames"], c["frames"])
    a = mix[0]["frames"]
    a += 1  # an item's frames are its own: writing them leaves the memory intact
    assert torch.equal(mix[0]["frames"], plain[0]["frames"])
    # the bound holds: a memory smaller than any clip keeps nothing and decodes every time
    tiny = ClipMemory(max_mb=1e-6)
    mix = build_mixture(fixture_root / "mixture.json", fixture_root, template, seed=0, clip_memory=tiny)
    for _ in range(2):
        mix[0]
    assert (tiny.hits, tiny.misses, tiny.bytes) == (0, 2, 0)
    with pytest.raises(ValueError, match="positive"):
        ClipMemory(0)


def test_reference_mixture_config_is_valid():
    cfg = load_mixture_config(Path(__file__).resolve().parents[1] / "configs" / "datasets" / "aha_config.json")
    got = {d["name"]: (d["type"], d["fps"], d["max_frames"]) for d in cfg["datasets"]}
    assert got == {"shot2story_dvc": ("dvc", 2, 128), "shot2story_magqa": ("magqa", 2, 128),
                   "coin_dvc": ("dvc", 0.5, 120), "hihd": ("hihd", 1, 128)}


def test_item_tokens_are_the_online_engines_tokens(fixture_root, template, qwen2_tokenizer):
    """What the engine feeds while streaming the same events equals the training item, token for token."""
    from models.build import build_model
    from models.streaming import EngineConfig, FrameEvent, QueryEvent, StreamingEngine

    model = build_model("aha-tiny", seed=0)
    fed: list[int] = []
    zeros = torch.zeros(49, model.config.text_config.hidden_size)
    frame_id = model.config.image_token_index

    def stream(item_frames: int, fps: float, queries, answer_after: int | None = None):
        fed.clear()
        engine = StreamingEngine(model, qwen2_tokenizer, EngineConfig(generate=False, max_new_tokens=1))
        forward = engine._forward  # every token the LM sees enters here: text ids, then frame embeddings

        def recording_forward(text, frame_embeds=None, **kwargs):
            fed.extend(t for _, ids, _ in text for t in ids)
            fed.extend([frame_id] * (0 if frame_embeds is None else frame_embeds.shape[0] * frame_embeds.shape[1]))
            return forward(text, frame_embeds, **kwargs)

        engine._forward = recording_forward
        frames = [FrameEvent(i / fps, embeds=zeros) for i in range(item_frames)]
        list(engine.run(frames, queries))
        if answer_after is not None:
            engine.respond(answer_after / fps)
        return list(fed)

    # HIHD: query, then every frame in one open stream turn (the item closes it with <|im_end|>)
    hihd = _dataset(HIHDDataset, fixture_root, "HIHD", "HIHD_metadata.csv", template, fps=1)[0]
    query = qwen2_tokenizer.decode(hihd["input_ids"]).split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
    ids = hihd["input_ids"].tolist()
    assert stream(4, 1.0, [QueryEvent(0.0, query)]) == ids[:-1] and ids[-1] == 151645
    # MAGQA: two frames, the question at 1.0 s, four frames, then the engine's answer prompt
    magqa = _dataset(MAGQADataset, fixture_root, "shot2story", "magqa.json", template)[0]
    got = stream(6, 2.0, [QueryEvent(1.0, "What are the people doing?")], answer_after=5)
    ids = magqa["input_ids"].tolist()
    prompt = int((magqa["labels"] != -100).nonzero()[0]) + 1  # labels are pre-shifted: first answer token
    assert qwen2_tokenizer.decode(ids[prompt:]).startswith("Two kids play ball.")
    assert got[:prompt] == ids[:prompt] and len(got) - prompt in (0, 1)  # (+ the one token the engine generated)
