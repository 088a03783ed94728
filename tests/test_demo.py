"""The demo entry on a generated video: every output file, printed highlights, metrics vs ground truth."""
import json

from test import demo
from utils.io import read_jsonl


def test_demo_on_a_generated_video_writes_outputs_and_metrics(shared_data, tmp_path, capsys):
    out = tmp_path / "demo"
    rc = demo.main(["--model_config", "aha-tiny", "--tokenizer", str(shared_data / "tokenizers" / "qwen2"),
                    "--output_dir", str(out), "--seed", "3", "--window", "600", "--threshold", "-1",
                    "--min_interval", "8", "--max_new_tokens", "2", "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "generated" in text and "metrics against the generated video's ground truth" in text
    assert "response" in text  # responses are printed as they happen
    for name in ("scores.jsonl", "responses.jsonl", "highlights.json", "scores.png", "metrics.json", "input.mp4"):
        assert (out / name).is_file(), name
    scores = read_jsonl(out / "scores.jsonl")
    m = json.loads((out / "metrics.json").read_text())
    assert 0 <= m["top5_AP_aha"] <= 100 and 0 <= m["grounding_best_IoU"] <= 100
    assert m["matching_events"]
    duration = json.loads((out / "highlights.json").read_text())["n_frames"] / 2.0
    assert len(scores) == int(duration * 2)
    assert [r["time"] for r in read_jsonl(out / "responses.jsonl")][:2] == [0.0, 8.0]
    h = json.loads((out / "highlights.json").read_text())
    assert {"online_highlights", "offline_peaks", "offline_segments"} <= set(h)  # both kinds, named
    assert h["legend"]["online_highlights"].startswith("confirmed live")
    if h["offline_segments"]:  # a reel is cut whenever there is a highlight segment, within the budget
        assert (out / "highlights.mp4").is_file()
        assert 0 < h["reel"]["duration_s"] <= 12.0 + 0.5


def test_demo_needs_a_query_for_a_user_video(tmp_path):
    import pytest

    with pytest.raises(SystemExit, match="--query"):
        demo.main(["--model_config", "aha-tiny", "--video", str(tmp_path / "v.mp4"), "--output_dir", str(tmp_path)])


def test_default_demo_runs_the_shipped_model_without_shared_data(tmp_path, monkeypatch, capsys):
    """As the README runs it (``bash scripts/demo.sh`` = ``python -m test.demo``, no flag): the shipped
    model, the generated video, the default output folder (outputs/demo, relative to where it runs)."""
    import utils.paths

    monkeypatch.setattr(utils.paths, "shared_data_dir", lambda: None)  # nothing from ../shared is needed
    monkeypatch.chdir(tmp_path)
    assert demo.main(["--quiet"]) == 0
    out = tmp_path / "outputs" / "demo"
    for name in ("input.mp4", "scores.jsonl", "highlights.json", "scores.png", "metrics.json", "run.json"):
        assert (out / name).is_file(), name
    assert "metrics against the generated video's ground truth" in capsys.readouterr().out
    run = json.loads((out / "run.json").read_text())
    model = run["model"]
    assert model["checkpoint"].endswith("checkpoints/aha-tiny-synth") and len(model["checkpoint_sha256"]) == 64
    assert model["dtype"] == "float32" and model["dtype_source"] == "default for cpu"
    assert model["config"]["tokens_per_frame"] == 1 and model["load"]["heads"] == "from the weights"
    # the checkpoint carries the settings it was trained with: 2 fps, and a cache of the 12 frames
    # the tiny model was trained on after its prompt (its preset's train_window_frames, one token per
    # frame); no flag overrode them
    from models.build import train_window_tokens

    assert train_window_tokens("aha-tiny-synth") == 12 and train_window_tokens("aha-tiny") is None
    assert run["cache"] == {"policy": "dynamic_sink", "window": 12, "sink_tokens": 0}  # the sink it keeps: none
    assert run["fps"] == 2.0 and set(run["settings_source"].values()) == {"checkpoint"}
    # and the fusion weights recorded for it, tuned on the synthetic val split (results/synthetic_results.json)
    recorded = json.loads(demo.DEFAULT_RESULTS.read_text())["systems"]["trained"]["tvsum_aha"]["fusion"]["params"]
    assert run["fusion"] == recorded and run["fusion_source"].startswith("results/synthetic_results.json")
    # and it responds by the dense-captioning rule tuned on val: the informative probability's threshold
    th = json.loads(demo.DEFAULT_RESULTS.read_text())["systems"]["trained"]["youcook2"]["threshold"]["value"]
    assert (run["decision"]["score_heads"], run["decision"]["threshold"]) == ("informative", th)
    gate = json.loads(demo.DEFAULT_RESULTS.read_text())["systems"]["trained"]["query_responses"]["gate"]
    assert (run["decision"]["relevance_gate"], run["decision"]["relevance_gate_frames"]) == (gate["value"], gate["frames"])
    assert run["decision"]["source"].startswith("results/synthetic_results.json")
    m = json.loads((out / "metrics.json").read_text())
    assert 0 <= m["top5_AP_aha"] <= 100
    assert (out / "scores.png").is_file() and read_jsonl(out / "scores.jsonl")

    # issue #18's demo targets (README): every printed (online) highlight on a matching event, one
    # on each; the responses (behind the val-tuned relevance gate) are said at the matches only, each
    # naming the query's shape, and every match is answered
    from data.synthetic import sample_scene

    scene = sample_scene(demo.build_parser().parse_args([]).seed)  # the demo video's scene, not rendered
    matches = [(e.start, e.end) for e in scene.events if e.match]
    assert [list(x) for x in matches] == m["matching_events"] and len(matches) < len(scene.events)
    online = [p["time"] for p in json.loads((out / "highlights.json").read_text())["online_highlights"]]
    assert online and all(any(a <= t <= b for a, b in matches) for t in online), online
    assert all(any(a <= t <= b for t in online) for a, b in matches), online
    responses = read_jsonl(out / "responses.jsonl")
    assert all(any(a <= r["time"] <= b for a, b in matches) for r in responses), responses
    assert all(any(a <= r["time"] <= b for r in responses) for a, b in matches), responses
    assert all(r["content"] == scene.query.caption for r in responses), responses


def test_demo_fusion_weights_come_from_the_results_of_the_shipped_checkpoint_only(tmp_path):
    results = json.loads(demo.DEFAULT_RESULTS.read_text())
    assert demo.tuned_fusion(demo.tuned_record(demo.DEFAULT_RESULTS)) == results["systems"]["trained"]["tvsum_aha"]["fusion"]["params"]
    # another checkpoint: by its content hash, or (a results file without one) by its path
    for change in ({"checkpoint_sha256": "0" * 64}, {"checkpoint": "outputs/other", "checkpoint_sha256": None},
                   {"tuned_on_test": True}, {"tuned_on": "test"}):
        f = tmp_path / "r.json"
        f.write_text(json.dumps({**results, "protocol": {**results["protocol"], **change}}))
        assert demo.tuned_fusion(demo.tuned_record(f)) is None, change
    assert demo.tuned_fusion(demo.tuned_record(tmp_path / "missing.json")) is None
    # a fusion flag or a params file: nothing is taken from the results
    args = demo.build_parser().parse_args(["--alpha", "0.3"])
    demo.resolve_model(args)
    assert (args.alpha, args.beta, getattr(args, "fusion_source", None)) == (0.3, None, None)
    args = demo.build_parser().parse_args([])
    demo.resolve_model(args)
    assert args.beta == results["systems"]["trained"]["tvsum_aha"]["fusion"]["params"]["beta"]



def test_demo_response_rule_is_the_val_tuned_one_unless_flags_give_another(tmp_path):
    results = json.loads(demo.DEFAULT_RESULTS.read_text())
    th = results["systems"]["trained"]["youcook2"]["threshold"]
    assert th["tuned_on"] == "val"
    gate = results["systems"]["trained"]["query_responses"]["gate"]
    assert gate["tuned_on"] == "val" and gate["value"] is not None and gate["threshold"] == th["value"]
    assert demo.tuned_response(demo.tuned_record(demo.DEFAULT_RESULTS)) == {
        "score_heads": "informative", "threshold": th["value"], "relevance_gate": gate["value"],
        "relevance_gate_frames": gate["frames"]}
    # a gate tuned for another threshold, on test, or none: the threshold alone
    for change in ({"threshold": 0.7}, {"tuned_on": "test"}, {"value": None}, {"frames": 0}):
        bad = json.loads(json.dumps(results))
        bad["systems"]["trained"]["query_responses"]["gate"].update(change)
        f = tmp_path / "g.json"
        f.write_text(json.dumps(bad))
        assert demo.tuned_response(demo.tuned_record(f)) == {"score_heads": "informative", "threshold": th["value"]}, change
    f = tmp_path / "r.json"
    for change in ({"tuned_on": "test"}, {"score": "relevance"}, {"value": 1.5}, {"value": None}):
        bad = json.loads(json.dumps(results))
        bad["systems"]["trained"]["youcook2"]["threshold"].update(change)
        f.write_text(json.dumps(bad))
        assert demo.tuned_response(demo.tuned_record(f)) is None, change
        assert demo.tuned_fusion(demo.tuned_record(f)) is not None  # the fusion weights are judged on their own
    f.write_text(json.dumps({**results, "protocol": {**results["protocol"], "checkpoint_sha256": "f" * 64}}))
    assert demo.tuned_response(demo.tuned_record(f)) is None
    # no flag: the tuned rule; a threshold flag, or score heads of the user's own, keep the user's rule
    args = demo.build_parser().parse_args([])
    demo.resolve_model(args)
    assert (args.score_heads, args.threshold) == ("informative", th["value"])
    assert (args.relevance_gate, args.relevance_gate_frames) == (gate["value"], gate["frames"])
    args = demo.build_parser().parse_args(["--relevance_gate", "0.9"])  # the user's gate is kept
    demo.resolve_model(args)
    assert (args.threshold, args.relevance_gate, args.relevance_gate_frames) == (th["value"], 0.9, 4)
    args = demo.build_parser().parse_args(["--threshold", "0.9"])
    demo.resolve_model(args)
    assert (args.score_heads, args.threshold) == ("informative,relevance", 0.9)
    args = demo.build_parser().parse_args(["--score_heads", "relevance"])
    demo.resolve_model(args)
    assert (args.score_heads, args.threshold, args.decision_source) == ("relevance", 1.2, "demo default (hand-set)")
    # a user's model never takes the shipped model's settings
    args = demo.build_parser().parse_args(["--model_config", "aha-tiny", "--checkpoint", str(tmp_path)])
    demo.resolve_model(args)
    assert (args.score_heads, args.threshold) == ("informative,relevance", 1.2)


def test_without_a_usable_results_file_the_demo_warns_once_and_uses_its_defaults(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(demo, "DEFAULT_RESULTS", tmp_path / "missing.json")
    args = demo.build_parser().parse_args([])
    with caplog.at_level("WARNING", logger=demo.log.name):
        demo.resolve_model(args)
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
    assert (args.alpha, args.threshold, args.decision_source) == (None, 1.2, "demo default (hand-set)")
    assert getattr(args, "fusion_source", None) is None


def test_demo_takes_the_tuned_settings_only_for_the_checkpoint_they_were_tuned_for(tmp_path, monkeypatch, caplog):
    """results/synthetic_results.json records the checkpoint's content hash: the demo compares it with the
    shipped checkpoint's (not only the path); another hash: the defaults, said and recorded; a results
    file without the hash (older): used, said, recorded as unknown."""
    from models.checkpoint import content_hash_of

    results = json.loads(demo.DEFAULT_RESULTS.read_text())
    assert results["protocol"]["checkpoint_sha256"] == content_hash_of(demo.DEFAULT_CHECKPOINT)
    args = demo.build_parser().parse_args([])
    demo.resolve_model(args)
    assert args.fusion_source.endswith("checkpoint sha256 matches)") and "matches" in args.decision_source

    f = tmp_path / "r.json"
    f.write_text(json.dumps({**results, "protocol": {**results["protocol"], "checkpoint_sha256": "0" * 64}}))
    monkeypatch.setattr(demo, "DEFAULT_RESULTS", f)
    assert demo.tuned_record(f) is None
    args = demo.build_parser().parse_args([])
    with caplog.at_level("WARNING", logger=demo.log.name):
        demo.resolve_model(args)
    assert "was tuned for another checkpoint (sha256 000000000000..." in caplog.text
    assert (args.alpha, args.threshold) == (None, 1.2)
    assert args.fusion_source.startswith("defaults (") and "tuned for another checkpoint" in args.fusion_source
    assert args.decision_source.startswith("demo default (hand-set) (") and "another checkpoint" in args.decision_source

    old = {k: v for k, v in results["protocol"].items() if k != "checkpoint_sha256"}
    f.write_text(json.dumps({**results, "protocol": old}))
    caplog.clear()
    args = demo.build_parser().parse_args([])
    with caplog.at_level("WARNING", logger=demo.log.name):
        demo.resolve_model(args)
    assert "records no checkpoint_sha256" in caplog.text
    assert args.beta == results["systems"]["trained"]["tvsum_aha"]["fusion"]["params"]["beta"]
    assert "checkpoint sha256 unknown" in args.fusion_source and "checkpoint sha256 unknown" in args.decision_source


def test_metrics_record_what_they_were_computed_on_and_no_stale_metrics_stay(tmp_path):
    """metrics.json recorded no protocol (a --max_frames cut, the fps, the fusion, the query the ground
    truth is for), and a later run on --video left the earlier run's metrics.json in the folder."""
    from data.synthetic import generate_video

    out = tmp_path / "demo"
    assert demo.main(["--output_dir", str(out), "--seed", "3", "--fps", "1.5", "--max_frames", "12",
                      "--alpha", "0.3", "--beta", "0.7", "--epsilon", "0.2", "--tau", "1.5", "--reel_budget", "0",
                      "--quiet"]) == 0
    p = json.loads((out / "metrics.json").read_text())["protocol"]
    assert (p["fps"], p["max_frames"], p["n_frames_scored"], p["seed"]) == (1.5, 12, 12, 3)
    assert p["last_frame_s"] < p["video_duration_s"]
    assert p["fusion"] == {"alpha": 0.3, "beta": 0.7, "epsilon": 0.2, "tau": 1.5, "uncertainty_kind": "logvar"}
    assert p["queries_asked"] == [[0.0, p["ground_truth_query"]]]
    video = generate_video(4, tmp_path / "other.mp4").path
    assert demo.main(["--output_dir", str(out), "--video", str(video), "--query", "a red circle bounces",
                      "--max_frames", "4", "--reel_budget", "0", "--quiet"]) == 0
    assert not (out / "metrics.json").exists()


def test_metrics_of_a_stream_cut_short_say_so(tmp_path, monkeypatch, capsys):
    """A demo stream that ended early (Ctrl-C, a source that broke) printed and wrote its metrics over
    the frames scored as if of the whole run: metrics.json did not carry the stream's error."""
    import models.streaming
    from tests import fakes

    fakes.install(monkeypatch)

    class Broken(fakes.FakeEngine):
        def run(self, frames, *a, **k):
            for i, rec in enumerate(super().run(frames, *a, **k)):
                if i == 5:
                    raise KeyboardInterrupt
                yield rec

    monkeypatch.setattr(models.streaming, "StreamingEngine", lambda model, tok, cfg: Broken(cfg))
    out = tmp_path / "demo"
    assert demo.main(["--output_dir", str(out), "--seed", "3", "--reel_budget", "0", "--quiet"]) == 130  # interrupted
    p = json.loads((out / "metrics.json").read_text())["protocol"]
    assert p["n_frames_scored"] == 5 and p["stream_error"] == "interrupted by the user"
    assert "over the 5 frames scored before the stream ended early: interrupted by the user" in capsys.readouterr().out
