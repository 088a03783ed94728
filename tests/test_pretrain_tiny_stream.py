"""Stage 0b of the tiny default's recipe: per-frame labels and the stream pretraining script."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from data.synthetic.scene import COLOURS, KINDS, MOTIONS
from tests.script_loader import load_script

REPO = Path(__file__).resolve().parents[1]
mod = load_script("scripts/pretrain_tiny_stream.py")


def test_frame_labels_name_the_event_on_screen_and_mark_the_frames_where_it_moved():
    events = [{"start": 1.0, "end": 3.0, "colour": "blue", "kind": "square", "motion": "slides"},
              {"start": 3.0, "end": 3.6, "colour": "red", "kind": "circle", "motion": "grows"}]
    labels, moving = mod.frame_labels(events, 9, 2.0)
    nothing = [len(MOTIONS), len(KINDS), len(COLOURS)]
    square = [MOTIONS.index("slides"), KINDS.index("square"), list(COLOURS).index("blue")]
    circle = [MOTIONS.index("grows"), KINDS.index("circle"), list(COLOURS).index("red")]
    # frames at 0, 0.5, ... 4.0 s: the square on frames 2-5 (1.0-2.5 s), the circle on 6-7 (3.0-3.5 s)
    assert labels.tolist() == [nothing, nothing, square, square, square, square, circle, circle, nothing]
    # motion shows from an event's second sampled frame on (a new event's first frame is not moving)
    assert moving.tolist() == [False, False, False, True, True, True, False, True, False]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from data.synthetic import SynthConfig, generate_dataset
    from models.build import build_model, load_preset
    from models.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("stream")
    generate_dataset(root / "syn", seed=2, n_train=2, n_val=1, n_test=0,
                     cfg=SynthConfig(duration=(12, 12), n_annotators=2))
    save_checkpoint(build_model(load_preset("aha-tiny-synth"), seed=0), root / "init")
    return root


def _args(root: Path, out: Path, *extra: str):
    return mod.parse_args(["--init", str(root / "init"), "--data", str(root / "syn"), "--out", str(out),
                           "--tokenizer", str(REPO / "configs/tokenizers/aha-tiny-synth"), "--steps", "3",
                           "--batch_size", "2", "--window", "6", "--eval_every", "2", "--threads", "1", *extra])


def test_the_script_trains_the_language_model_and_projector_only(tiny_set, tmp_path, capsys):
    from models.checkpoint import load_checkpoint, read_meta

    out = tmp_path / "stream"
    assert mod.main(_args(tiny_set, out)) == 0
    report = json.loads((out / "pretrain_report.json").read_text())
    assert [r["step"] for r in report["history"]] == [2, 3]
    assert set(report["final"]["val"]) == {"motion", "kind", "colour", "motion_while_moving"}
    assert all(0.0 <= v <= 1.0 for v in report["final"]["val"].values())
    assert report["n_train_videos"] == 2 and report["n_val_videos"] == 1
    assert read_meta(out)["kind"] == "full" and read_meta(out)["inference"] == read_meta(tiny_set / "init")["inference"]
    before, after = load_checkpoint(tiny_set / "init").state_dict(), load_checkpoint(out).state_dict()
    assert before.keys() == after.keys()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert any("multi_modal_projector" in k for k in changed) and any(".layers." in k for k in changed)
    # the tower, the token embeddings (tied to the LM head) and the Aha! heads are stage 1's
    assert not any("vision_tower" in k or "embed_tokens" in k or "head" in k for k in changed), sorted(changed)
    # the same command gives the same weights
    again = tmp_path / "again"
    assert mod.main(_args(tiny_set, again)) == 0
    assert all(torch.equal(v, load_checkpoint(again).state_dict()[k]) for k, v in after.items())
    # a second run into the same folder is refused without --overwrite (exit 2 through the contract)
    rc = mod.entry("pretrain_tiny_stream", lambda argv: mod.main(mod.parse_args(argv)),
                   ["--init", str(tiny_set / "init"), "--data", str(tiny_set / "syn"), "--out", str(out)])
    assert rc == 2 and "already holds a checkpoint" in capsys.readouterr().err


def test_probe_layer_trains_only_the_layers_below_it(tiny_set, tmp_path):
    from models.checkpoint import load_checkpoint

    out = tmp_path / "l1"
    assert mod.main(_args(tiny_set, out, "--probe_layer", "1")) == 0
    before, after = load_checkpoint(tiny_set / "init").state_dict(), load_checkpoint(out).state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert any(".layers.0." in k for k in changed) and any("multi_modal_projector" in k for k in changed)
    # the layers above the probe and the final norm are left to stage 1
    assert all(".layers.0." in k or "multi_modal_projector" in k for k in changed), sorted(changed)
    with pytest.raises(ValueError, match="--probe_layer"):
        mod.main(_args(tiny_set, tmp_path / "l9", "--probe_layer", "9"))


def test_windows_longer_than_every_video_and_bad_numbers_are_refused(tiny_set, tmp_path):
    with pytest.raises(ValueError, match="no train video has 100 frames"):
        mod.main(_args(tiny_set, tmp_path / "a", "--window", "100"))
    with pytest.raises(ValueError, match="--steps"):
        mod.main(_args(tiny_set, tmp_path / "b", "--steps", "0"))
    with pytest.raises(ValueError, match="no train/ground_truth.json"):
        mod.main(mod.parse_args(["--init", str(tiny_set / "init"), "--data", str(tmp_path), "--out", str(tmp_path / "c")]))


# ------------------------------------------------------------------ query-prompted samples (session 12)

def test_match_targets_compare_the_shape_on_screen_with_the_query_attribute_by_attribute():
    events = [{"start": 0.5, "end": 1.5, "colour": "blue", "kind": "square", "motion": "slides"},
              {"start": 1.5, "end": 2.5, "colour": "red", "kind": "square", "motion": "spins"}]
    labels, _ = mod.frame_labels(events, 6, 2.0)
    query = mod.shape_classes({"colour": "blue", "kind": "square", "motion": "spins"})
    # columns: motion, kind, colour, all; 0 differs, 1 same, 2 nothing on screen
    assert mod.match_targets(labels, query).tolist() == [
        [2, 2, 2, 2],
        [0, 1, 1, 0], [0, 1, 1, 0],  # the blue square that slides: motion differs
        [1, 1, 0, 0], [1, 1, 0, 0],  # the red square that spins: colour differs
        [2, 2, 2, 2]]
    assert mod.match_targets(labels, mod.shape_classes(events[0]))[1:3, -1].tolist() == [1, 1]


def test_video_shapes_put_the_query_first_and_name_each_shape_once_in_stage_1s_words():
    tiny_mixture = load_script("scripts/tiny_mixture.py")
    video = {"query_shape": {"colour": "red", "kind": "circle", "motion": "bounces"},
             "events": [{"colour": "red", "kind": "circle", "motion": "bounces"},
                        {"colour": "red", "kind": "circle", "motion": "grows"},
                        {"colour": "red", "kind": "circle", "motion": "grows"}]}
    shapes = mod.video_shapes(video)
    assert [mod.shape_of(s) for s in shapes] == ["a red circle bounces", "a red circle grows"]
    # the text stage 1's grounding items use for the same shape
    assert mod.shape_of(shapes[1]) == tiny_mixture.shape_text("red", "circle", "grows")


def test_right_padded_prompts_of_different_lengths_give_each_row_its_own_states():
    from models.build import build_model, load_preset
    from models.chat import ChatTemplate, load_tokenizer

    model = build_model(load_preset("aha-tiny-synth"), seed=0).eval()
    template = ChatTemplate(load_tokenizer(str(REPO / "configs/tokenizers/aha-tiny-synth")), 1)
    short = mod.prompt(template, "", "a red circle grows", 4)
    long = mod.prompt(template, "", mod.DVC_INSTRUCTIONS[2], 4)
    assert len(short[0]) < len(long[0])
    torch.manual_seed(0)
    feats = torch.randn(8, model.config.patch_grid ** 2, model.config.vision_config.hidden_size)
    ids, pos = mod.padded([short, long], template.tok.pad_token_id)
    with torch.no_grad():
        both = mod.frame_states(model, ids, feats, pos)
        alone = [mod.frame_states(model, torch.tensor([p[0]]), feats[4 * i: 4 * i + 4], torch.tensor(p[1]))[0]
                 for i, p in enumerate([short, long])]
    assert both.shape == (2, 4, model.config.text_config.hidden_size)
    for i in range(2):
        torch.testing.assert_close(both[i], alone[i], rtol=1e-5, atol=1e-5)


def test_query_fraction_adds_match_probes_and_reports_their_val_scores(tiny_set, tmp_path):
    out = tmp_path / "q"
    assert mod.main(_args(tiny_set, out, "--query_fraction", "0.5", "--steps", "4", "--batch_size", "4")) == 0
    report = json.loads((out / "pretrain_report.json").read_text())
    val = report["final"]["val"]
    assert {"match_motion", "match_kind", "match_colour", "match_all"} <= set(val)
    assert all(0.0 <= v <= 1.0 for v in val.values())
    assert report["match_classes"] == ["differs", "same", "nothing"]
    # some step drew a query-prompted row: its match losses are in the log
    assert any("match_all" in r["loss"] for r in report["history"])
    with pytest.raises(ValueError, match="--query_fraction"):
        mod.main(_args(tiny_set, tmp_path / "bad", "--query_fraction", "1.5"))


def test_query_template_random_wraps_the_queries_in_the_benchmarks_templates():
    import numpy as np

    from data.prompts import QUERY_TEMPLATES
    from models.chat import ChatTemplate, load_tokenizer

    template = ChatTemplate(load_tokenizer(str(REPO / "configs/tokenizers/aha-tiny-synth")), 1)
    labels, _ = mod.frame_labels([{"start": 0.0, "end": 9.0, "colour": "red", "kind": "circle", "motion": "grows"}], 8, 2.0)
    data = mod.VideoFrames([torch.zeros(8, 1, 4)], [labels], [np.zeros(8, bool)],
                           [[mod.shape_classes({"colour": "red", "kind": "circle", "motion": "grows"})]])
    prompts = [mod.prompt(template, "", mod.DVC_INSTRUCTIONS[0], 4)]
    texts = {}
    for spec in ("none", "random"):
        rng = np.random.default_rng(0)
        ids, pos, feats, target, matched, queried = mod.draw_batch(
            rng, data, [0], 32, 4, prompts, 1.0, template, "", template.tok.pad_token_id, spec)
        assert bool(queried.all()) and (matched[..., -1] == 1).all()  # every frame shows the query's shape
        texts[spec] = {template.tok.decode(row[: p[0]]) for row, p in zip(ids.tolist(), pos.tolist())}
    assert all("a red circle grows" in t for t in texts["none"] | texts["random"])
    assert not any("Find the moments" in t for t in texts["none"])
    # several templates drawn (32 rows over 12 templates), every one a benchmark template
    wrapped = {t for t in texts["random"] if any(q.split("{query}")[0] and q.split("{query}")[0] in t
                                                  for q in QUERY_TEMPLATES)}
    assert len(wrapped) >= 3
