"""data.synthetic.metrics: query-binding AUCs by what a distractor changes, and what responses name."""
import json
from pathlib import Path

import pytest

from data.synthetic.metrics import binding_aucs, event_at, named, query_responses, response_accuracy


def _event(start, end, colour, kind, motion, query=("red", "circle", "bounces")):
    shape = {"colour": colour, "kind": kind, "motion": motion}
    differs = [a for a, q in zip(("colour", "kind", "motion"), query) if shape[a] != q]
    return {"start": start, "end": end, **shape, "match": not differs, "differs": differs}


GT = [{"video_id": "v1", "events": [
    _event(1.0, 3.0, "red", "circle", "bounces"),     # match
    _event(4.0, 6.0, "blue", "circle", "bounces"),    # colour
    _event(7.0, 9.0, "red", "square", "bounces"),     # kind
    _event(10.0, 12.0, "red", "circle", "spins"),     # motion
    _event(13.0, 15.0, "green", "triangle", "grows"),  # several
]}]


def _pred(relevance_of, responses=()):
    times = [i / 2 for i in range(32)]
    return {"id": "q1", "video": "v1.mp4", "frames": {"time": times, "relevance": [relevance_of(t) for t in times]},
            "responses": list(responses)}


def test_event_at_and_named():
    ev = GT[0]["events"]
    assert event_at(ev, 1.0)["match"] and event_at(ev, 3.0) is None  # [start, end)
    assert event_at(ev, 3.5, grace=1.0)["end"] == 3.0 and event_at(ev, 4.5, grace=1.0)["colour"] == "blue"
    assert named("A blue square slides.") == {"colour": "blue", "kind": "square", "motion": "slides"}
    assert named("a red or blue thing") == {"colour": None, "kind": None, "motion": None}


def test_binding_aucs_split_by_what_the_distractor_changes():
    # the score reads colour and kind but not motion
    def rel(t):
        e = event_at(GT[0]["events"], t)
        if e is None:
            return 0.0
        return 0.2 if e["colour"] != "red" or e["kind"] != "circle" else 0.9

    got = binding_aucs([_pred(rel)], GT)
    assert got["n_videos"] == 1 and got["frames"]["match"] == 4 and got["frames"]["differs:motion"] == 4
    assert got["match_vs_colour"] == got["match_vs_kind"] == got["match_vs_several"] == 1.0
    assert got["match_vs_motion"] == 0.5  # ties: the motion distractor scores like the match
    assert got["event_vs_calm"] == pytest.approx(1.0)
    assert 0.5 < got["match_vs_distractor"] < 1.0
    with pytest.raises(ValueError, match="not in the ground truth"):
        binding_aucs([dict(_pred(rel), video="other.mp4")], GT)


def test_response_accuracy_checks_each_word_against_the_event_on_screen():
    responses = [
        {"role": "assistant", "time": 2.0, "content": "A red circle bounces."},   # right
        {"role": "assistant", "time": 5.0, "content": "A blue circle spins."},    # motion wrong
        {"role": "assistant", "time": 9.5, "content": "A red square bounces."},   # ended 0.5 s ago: right
        {"role": "assistant", "time": 16.5, "content": "A green triangle grows."},  # nothing on screen
        {"role": "user", "time": 0.0, "content": "ignored"},
    ]
    got = response_accuracy([_pred(lambda t: 0.0, responses)], GT)
    assert got["n_responses"] == 4 and got["during_calm"] == 1 and got["responses_per_video"] == 4
    assert got["correct"] == {"colour": 0.75, "kind": 0.75, "motion": 0.5, "all": 0.5}


def test_query_responses_count_answers_on_the_queries_events_and_elsewhere():
    gt = [{**GT[0], "query_shape": {"colour": "red", "kind": "circle", "motion": "bounces"},
           "events": GT[0]["events"] + [_event(20.0, 22.0, "red", "circle", "bounces")]}]  # a second match
    said = [{"role": "assistant", "time": 3.0, "content": "A red circle bounces."},   # the first match's end (grace)
            {"role": "assistant", "time": 2.0, "content": "A blue circle bounces."},  # on the match, wrong words
            {"role": "assistant", "time": 6.5, "content": "A blue circle bounces."},  # the colour distractor
            {"role": "assistant", "time": 17.0, "content": "A red circle bounces."},  # calm
            {"role": "user", "time": 18.0, "content": "a question"}]                  # not a response
    m = query_responses([_pred(lambda t: 0.0, said)], gt)
    assert (m["n_responses"], m["on_match"], m["on_distractor"], m["during_calm"]) == (4, 2, 1, 1)
    assert (m["n_matching_events"], m["matching_events_answered"]) == (2, 1)
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["F1"] == pytest.approx(0.5)
    assert m["names_query"] == 0.5
    silent = query_responses([_pred(lambda t: 0.0)], gt)
    assert silent["precision"] is None and silent["recall"] == 0.0 and silent["F1"] is None
    with pytest.raises(ValueError, match="not in the ground truth"):
        query_responses([{**_pred(lambda t: 0.0), "video": "other.mp4"}], gt)


def test_synthetic_eval_records_the_command_of_the_set_it_read():
    # the results' reproduce command must regenerate THIS set (its seed and sizes), not the default one
    from data.synthetic import SynthConfig
    from test.synthetic_eval import generator_command

    default = json.loads(json.dumps(SynthConfig().to_dict()))
    cmd = generator_command(Path("/d/sel"), {"seed": 1, "counts": {"train": 0, "val": 60, "test": 2}, "config": default})
    assert cmd == "python -m data.synthetic --out /d/sel --seed 1 --n_train 0 --n_val 60 --n_test 2"
    other = dict(default, clutter_palette="colours")
    assert "non-default generator options" in generator_command(Path("/d"), {"seed": 0, "counts": {}, "config": other})


def test_synthetic_eval_records_the_content_hash_of_the_checkpoint(tmp_path, monkeypatch):
    """The results' protocol records checkpoint_sha256 (what the demo checks before it takes the tuned
    settings); the shipped results record the shipped checkpoint's."""
    from models.checkpoint import content_hash_of
    from test import synthetic_eval
    from utils.paths import REPO_ROOT

    data = tmp_path / "syn"
    (data / "test" / "items").mkdir(parents=True)
    (data / "manifest.json").write_text(json.dumps({"seed": 0, "counts": {}, "config": {}}))
    for b in ("tvsum", "charades", "youcook2"):
        (data / "test" / "items" / f"{b}.jsonl").write_text(json.dumps({"id": b}) + "\n")
    monkeypatch.setattr(synthetic_eval, "evaluate_system", lambda *a: {})  # no model run: the protocol only
    monkeypatch.setattr(synthetic_eval, "markdown", lambda out: "")
    ckpt = REPO_ROOT / "checkpoints" / "aha-tiny-synth"
    out = tmp_path / "r.json"
    assert synthetic_eval.main(["--data", str(data), "--checkpoint", str(ckpt), "--systems", "trained",
                                "--results", str(out), "--work", str(tmp_path / "w")]) == 0
    assert json.loads(out.read_text())["protocol"]["checkpoint_sha256"] == content_hash_of(ckpt)
    shipped = json.loads((REPO_ROOT / "results" / "synthetic_results.json").read_text())["protocol"]
    assert shipped["checkpoint_sha256"] == content_hash_of(REPO_ROOT / shipped["checkpoint"])


def test_synthetic_eval_rewrites_a_baseline_written_with_other_settings(tmp_path):
    """evaluate_system reused any existing baseline file: a rerun at another --fps scored the earlier
    predictions while the results' protocol stated the new fps."""
    from data.synthetic import SynthConfig, generate_dataset
    from test import synthetic_eval
    from utils.io import read_jsonl

    data = tmp_path / "syn"
    generate_dataset(data, seed=5, n_train=0, n_val=0, n_test=1, cfg=SynthConfig(duration=(12, 12)), workers=1)
    items, videos, out = data / "test" / "items" / "tvsum.jsonl", data / "videos", tmp_path / "motion.jsonl"
    synthetic_eval.write_baseline(items, videos, out, "motion", 2.0, 64, 0)
    assert synthetic_eval.baseline_is_current(out, items, videos, "motion", 2.0, 64, 0)
    for fps, size, seed in ((1.0, 64, 0), (2.0, 112, 0), (2.0, 64, 1)):
        assert not synthetic_eval.baseline_is_current(out, items, videos, "motion", fps, size, seed)
    assert not synthetic_eval.baseline_is_current(out, items, videos, "random", 2.0, 64, 0)
    assert [len(r["frames"]["time"]) for r in read_jsonl(out)] == [24]


def test_synthetic_eval_limit_scores_the_baselines_on_the_models_items(tmp_path, monkeypatch):
    """--limit N streamed the models on the first N items of each file while the baselines were written for
    every item, so a quick check compared the model's N videos with the baselines' whole split."""
    import argparse

    from data.synthetic import SynthConfig, generate_dataset
    from test import synthetic_eval
    from utils.io import read_jsonl

    data = tmp_path / "syn"
    generate_dataset(data, seed=5, n_train=0, n_val=2, n_test=2, cfg=SynthConfig(duration=(12, 12)), workers=1)
    scored: dict[str, list[str]] = {}

    def fake_benchmark(dataset, pred, gold, out, protocol=None, tune_pred=None, tune_gold=None, opts=(), split="test"):
        scored[Path(pred).name] = [r["id"] for r in read_jsonl(pred)]
        return {"metrics": {}, "per_item": {}, "protocol": {"fusion": {}, "tuned_on": "-",
                                                            "coverage": {"n_gold": 0, "n_scored": 0, "complete": True}}}

    monkeypatch.setattr(synthetic_eval, "benchmark", fake_benchmark)
    monkeypatch.setattr(synthetic_eval, "val_f1", lambda pred, gold: 0.0)
    args = argparse.Namespace(data=str(data), fps=2.0, frame_size=32, seed=0, limit=1)
    synthetic_eval.evaluate_system("motion", args, tmp_path / "work")
    for split, name in (("test", "tvsum"), ("test", "youcook2")):
        first = [json.loads(line)["id"] for line in (data / split / "items" / f"{name}.jsonl").read_text().splitlines()][:1]
        assert [r["id"] for r in read_jsonl(tmp_path / "work" / "motion" / f"{split}_{name}.jsonl")] == first
    assert len(scored["test_tvsum.jsonl"]) == 1 and len(scored["test_youcook2_responses.jsonl"]) == 1
    # a file written without the limit is not reused for a limited run (nor the other way round)
    items, videos = data / "test" / "items" / "tvsum.jsonl", data / "videos"
    assert not synthetic_eval.baseline_is_current(tmp_path / "work" / "motion" / "test_tvsum.jsonl", items, videos,
                                                  "motion", 2.0, 32, 0, None)


def test_synthetic_eval_markdown_counts_the_videos_it_pooled():
    """The notes said 'pooled over the 20 test videos' whatever the split size or --limit."""
    from test.synthetic_eval import markdown

    res = json.loads((Path(__file__).resolve().parents[1] / "results" / "synthetic_results.json").read_text())
    assert "pooled over the 20 test videos" in markdown(res)
    res["protocol"]["n_test"] = {"tvsum": 3, "charades": 1, "youcook2": 3}
    assert "pooled over the 3 test videos" in markdown(res)


def test_synthetic_eval_limit_refuses_a_model_file_holding_later_items(tmp_path, monkeypatch):
    """A --limit run reuses (resumes) the model's prediction file of an earlier call in the same --work:
    one without --limit left all the items there, and the scorer scored all of them while the baselines
    and the recorded n_test had the first N."""
    import argparse

    import test.run_benchmark as rb
    from test import synthetic_eval

    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"v{i}", "video": f"v{i}.mp4"}) + "\n" for i in range(3)))
    out = tmp_path / "pred.jsonl"
    out.write_text("".join(json.dumps({"id": f"v{i}"}) + "\n" for i in range(3)))  # an earlier full run
    monkeypatch.setattr(rb, "main", lambda argv: 0)  # every limited item is done already
    args = argparse.Namespace(tokenizer="t", fps=2.0, window=12, limit=2, max_new_tokens=4)
    with pytest.raises(ValueError, match="beyond --limit 2"):
        synthetic_eval.stream_model(items, tmp_path, out, None, args)
    out.write_text("".join(json.dumps({"id": f"v{i}"}) + "\n" for i in range(2)))
    assert synthetic_eval.stream_model(items, tmp_path, out, None, args) == out
