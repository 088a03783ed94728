"""The deterministic synthetic benchmark (data/synthetic.py): determinism, formats, ground truth.

A tiny set (4 fps, 64x48, 12-16 s videos, 5 annotators) is generated once per module; every
annotation file (TVSum, Charades-STA, YouCook2, MAGQA, HIHD, QVHighlights, Mr.HiSum) is parsed back
with the project's own readers (converters, scorers, training loaders) and checked against the
scene descriptions in ground_truth.json.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from data import synthetic as syn
from data.degrade import KINDS as DROPOUT_KINDS
from data.prompts import TVSUM_CATEGORY_NAMES
from data.video import iter_sampled, probe
from utils.io import read_json, read_jsonl

REPO = Path(__file__).resolve().parents[1]
TINY = syn.SynthConfig(fps=4, width=64, height=48, duration=(12, 16), n_annotators=5)
COUNTS = {"train": 3, "val": 2, "test": 4}
CHARADES_LINE = re.compile(r"^(\S+) (\d+(?:\.\d+)?) (\d+(?:\.\d+)?)##(.+)$")


def _make(out: Path, seed: int = 0, workers: int = 1) -> dict:
    return syn.generate_dataset(out, seed, COUNTS["train"], COUNTS["val"], COUNTS["test"], TINY, workers=workers)


def _csv_rows(path: Path, delimiter: str = ",") -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "set"
    manifest = _make(out)
    return out, manifest


@pytest.fixture(scope="module")
def truth(dataset):
    out, _ = dataset
    return {s: read_json(out / s / "ground_truth.json") for s in syn.SPLITS}


def _all_truth(truth) -> list[dict]:
    return [g for s in syn.SPLITS for g in truth[s]]


# ------------------------------------------------------------------------------ determinism

def test_same_seed_same_bytes_serial_and_parallel(dataset, tmp_path):
    out, manifest = dataset
    again = tmp_path / "again"
    manifest2 = _make(again, seed=0, workers=2)  # worker count must not matter
    assert manifest2 == manifest
    assert _tree_digest(again) == _tree_digest(out)
    # the manifest's hashes are the real ones
    for vid, entry in manifest["videos"].items():
        assert syn.sha256_file(out / "videos" / f"{vid}.mp4") == entry["sha256"]
    for rel, sha in manifest["files"].items():
        assert syn.sha256_file(out / rel) == sha


def test_different_seed_changes_videos_and_annotations(dataset, tmp_path):
    out, manifest = dataset
    other = _make(tmp_path / "other", seed=1)
    assert set(other["videos"]) == set(manifest["videos"])  # same ids, other content
    assert all(other["videos"][v]["sha256"] != manifest["videos"][v]["sha256"] for v in manifest["videos"])
    for rel in ("test/ground_truth.json", "test/ydata-tvsum50-anno.tsv", "train/shot2story_dvc.json",
                "train/magqa_train.json", "HIHD_metadata.csv", "test/highlight_test_release.jsonl", "mr_hisum.h5",
                "mr_hisum_metadata.csv"):
        assert other["files"][rel] != manifest["files"][rel], rel


def test_video_seeds_are_distinct_across_splits(dataset):
    _, manifest = dataset
    seeds = [v["seed"] for v in manifest["videos"].values()]
    assert len(set(seeds)) == len(seeds) == sum(COUNTS.values())
    assert manifest["counts"] == COUNTS and manifest["seed"] == 0 and manifest["complete"] is True
    assert {v["split"] for v in manifest["videos"].values()} == set(syn.SPLITS)


def test_generate_video_frames_are_deterministic_and_match_the_file(tmp_path):
    a = syn.generate_video(7, duration=12, cfg=TINY)
    b = syn.generate_video(7, tmp_path / "b.mp4", duration=12, cfg=TINY, keep_frames=True)
    c = syn.generate_video(8, duration=12, cfg=TINY)
    assert a.frames.shape == (48, 48, 64, 3) and a.frames.dtype == np.uint8
    assert np.array_equal(a.frames, b.frames)
    assert a.scene == b.scene
    assert not np.array_equal(a.frames, c.frames)
    assert b.sha256 == syn.sha256_file(tmp_path / "b.mp4")
    info = probe(tmp_path / "b.mp4")
    assert info.duration == pytest.approx(12.0) and info.n_frames == 48 and (info.width, info.height) == (64, 48)
    decoded = np.stack([s.image for s in iter_sampled(tmp_path / "b.mp4", fps=4, size=None)]).astype(np.float64)
    assert decoded.shape == a.frames.shape
    mse = ((decoded - a.frames) ** 2).mean(axis=(1, 2, 3))
    assert np.all(10 * np.log10(255.0**2 / mse) > 28)  # lossy, but frame i is rendered frame i


def test_dataset_videos_show_their_ground_truth_scene(dataset, truth):
    """The file of a set video is the rendering of the scene its annotations describe."""
    out, manifest = dataset
    for split in ("train", "test"):
        g = truth[split][0]
        scene = syn.sample_scene(g["seed"], None, TINY, g["video_id"])
        assert scene.to_dict() == g  # the seed alone reproduces the recorded scene
        assert manifest["videos"][g["video_id"]]["duration"] == g["duration"]
        rendered = syn.render_scene(scene, cfg=TINY).frames.astype(np.float64)
        path = out / "videos" / f"{g['video_id']}.mp4"
        decoded = np.stack([s.image for s in iter_sampled(path, fps=TINY.fps, size=None)]).astype(np.float64)
        assert decoded.shape == rendered.shape
        assert np.all(10 * np.log10(255.0**2 / ((decoded - rendered) ** 2).mean(axis=(1, 2, 3))) > 28)
    # a given duration keeps the seed's query (the events are drawn for the new length)
    g = truth["val"][0]
    longer = syn.sample_scene(g["seed"], 40, TINY, g["video_id"])
    assert longer.query.text == g["query"] and longer.duration == 40 and longer.events[-1].end < 40


# ------------------------------------------------------------------------- ground truth rules

def _two_event_scene():
    """A 20-s scene with a matching event at 4-8 s and a motion distractor at 12-15 s."""
    scene = syn.sample_scene(3, 20, TINY, "x")
    q = scene.query
    match = syn.Event(4.0, 8.0, q, True, (), 1.0, {})
    other = syn.Event(12.0, 15.0, replace(q, motion="spins" if q.motion != "spins" else "grows"),
                      False, ("motion",), syn.DISTRACTOR_LEVEL, {})
    return replace(scene, events=(match, other))


def test_importance_hand_computed_values():
    scene = _two_event_scene()
    t = np.array([0.0, 3.4, 4.0, 4.25, 6.0, 8.0, 8.6, 13.0, 12.0])
    # smoothstep edges of half-width 0.5 s: u = (x + 1) / 2, w = u^2 (3 - 2u), x = distance / 0.5
    expected = [0.0, 0.0, 0.5, 0.84375, 1.0, 0.5, 0.0, 0.2, 0.1]
    assert syn.importance_at(scene, t) == pytest.approx(expected)
    per_second = syn.importance_per_second(scene)
    assert len(per_second) == 20
    assert per_second[5] == pytest.approx(1.0) and per_second[0] == 0.0 and per_second[13] == pytest.approx(0.2)


def test_scene_rules(truth):
    for g in _all_truth(truth):
        ev = g["events"]
        assert 12 <= g["duration"] <= 16 and g["n_frames"] == g["duration"] * 4
        assert any(e["match"] for e in ev) and not all(e["match"] for e in ev)
        for e in ev:
            assert 0 < e["start"] < e["end"] < g["duration"]
            is_query = all(e[k] == g["query_shape"][k] for k in ("kind", "colour", "motion"))
            assert e["match"] == is_query and (e["level"] == 1.0) == e["match"]
            assert e["caption"] == f"A {e['colour']} {e['kind']} {e['motion']}."
        for a, b in zip(ev, ev[1:]):
            assert a["end"] < b["start"]                       # calm gap between events
            assert a["caption"] != b["caption"]                # adjacent events never look alike
        assert g["query"] == "a {colour} {kind} {motion}".format(**g["query_shape"])


def test_matching_events_more_important_than_distractors(dataset, truth):
    out, _ = dataset
    from data.benchmarks.tvsum import load_frame_gold

    for split in syn.SPLITS:
        gold = load_frame_gold(out / split / "ydata-tvsum50-anno.tsv")
        hihd = {r["youtube_id"]: json.loads(r["scores"]) for r in _csv_rows(out / "HIHD_metadata.csv")}
        for g in truth[split]:
            imp = np.asarray(g["importance_per_second"])
            frames = gold[g["video_id"]]["scores"]
            replay = np.asarray(hihd[g["video_id"]])

            def inside(e, per_s=1):  # whole seconds (or their frames) clear of the 0.5-s edges
                return slice(int(math.ceil(e["start"] + 0.5)) * per_s, int(math.floor(e["end"] - 0.5)) * per_s)

            m = [e for e in g["events"] if e["match"]]
            d = [e for e in g["events"] if not e["match"]]
            assert min(imp[inside(e)].min() for e in m) > max(imp[inside(e)].max() for e in d)
            assert np.mean([frames[inside(e, 4)].mean() for e in m]) > np.mean([frames[inside(e, 4)].mean() for e in d])
            assert np.mean([replay[inside(e)].mean() for e in m]) > np.mean([replay[inside(e)].mean() for e in d])


def test_motion_energy_finds_events_but_not_the_query():
    """Frame differences separate events from calm time, but not query events from distractors."""
    energy, is_event, is_match = [], [], []
    cfg = replace(TINY, width=96, height=96)
    for seed in range(10):
        v = syn.generate_video(seed, duration=16, cfg=cfg)
        f = v.frames.astype(np.float32)
        e = np.concatenate([[0.0], np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3))])
        t = np.arange(len(f)) / cfg.fps
        calm = np.ones(len(t), bool)
        for ev in v.events:
            inside = (t > ev.start) & (t < ev.end)  # skips the frame where the shape pops in
            energy += list(e[inside])
            is_event += [1] * int(inside.sum())
            is_match.append((ev.match, e[inside]))
            calm &= ~((t >= ev.start - 0.5) & (t <= ev.end + 0.5))
        energy += list(e[calm])
        is_event += [0] * int(calm.sum())
    assert roc_auc_score(is_event, energy) > 0.75
    labels = np.concatenate([[m] * len(x) for m, x in is_match])
    values = np.concatenate([x for _, x in is_match])
    assert 0.35 < roc_auc_score(labels, values) < 0.65


# ------------------------------------------------------------------------------ file formats

def test_tvsum_files(dataset, truth):
    out, _ = dataset
    for split in syn.SPLITS:
        d = out / split
        rows = [line.split("\t") for line in (d / "ydata-tvsum50-anno.tsv").read_text().splitlines()]
        assert len(rows) == TINY.n_annotators * len(truth[split])
        anno = read_json(d / "tvsum_anno.json")
        info = _csv_rows(d / "ydata-tvsum50-info.tsv", "\t")
        assert [r["video_id"] for r in info] == [g["video_id"] for g in truth[split]]
        for g, r in zip(truth[split], info):
            vid_rows = [x for x in rows if x[0] == g["video_id"]]
            assert len(vid_rows) == TINY.n_annotators
            scores = np.array([[int(v) for v in x[2].split(",")] for x in vid_rows])
            assert scores.shape == (TINY.n_annotators, g["n_frames"])
            assert scores.min() >= 1 and scores.max() <= 5
            cat = syn.MOTION_CATEGORY[g["query_shape"]["motion"]]
            assert {x[1] for x in vid_rows} == {cat} and r["category"] == cat and cat in TVSUM_CATEGORY_NAMES
            assert r["title"] == g["query"] and r["length"] == f"0:{g['duration']:02d}"
            clips = np.array(anno[g["video_id"]]["anno"])
            assert clips.shape == (math.ceil(g["duration"] / 2), TINY.n_annotators)
            assert anno[g["video_id"]]["fps"] == 4.0 and anno[g["video_id"]]["domain"] == cat
            # frame f carries the score of 2-s clip floor(f / fps / 2)
            assert np.array_equal(scores, clips.T[:, np.arange(g["n_frames"]) // 8])


def test_charades_files(dataset, truth):
    out, _ = dataset
    for split in syn.SPLITS:
        lines = (out / split / f"charades_sta_{split}.txt").read_text().splitlines()
        lengths = {r["id"]: float(r["length"]) for r in _csv_rows(out / split / f"Charades_v1_{split}.csv")}
        by_id = {g["video_id"]: g for g in truth[split]}
        assert lengths == {v: float(g["duration"]) for v, g in by_id.items()}
        single = [g["video_id"] for g in truth[split] if sum(e["match"] for e in g["events"]) == 1]
        assert [CHARADES_LINE.match(line).group(1) for line in lines] == single
        for line in lines:
            vid, s, e, sentence = CHARADES_LINE.match(line).groups()
            (match,) = [x for x in by_id[vid]["events"] if x["match"]]
            assert (float(s), float(e)) == (match["start"], match["end"]) and 0 <= float(s) < float(e) <= lengths[vid]
            assert sentence == by_id[vid]["query"]
        grounding = read_json(out / split / "grounding.json")
        assert [r["timestamps"] for r in grounding] == [
            [[e["start"], e["end"]] for e in g["events"] if e["match"]] for g in truth[split]]


def test_dense_caption_files(dataset, truth):
    from data.benchmarks import youcook2

    out, _ = dataset
    for split in syn.SPLITS:
        yc2 = read_json(out / split / f"yc2_{split}.json")
        gold = youcook2.load_gold(out / split / f"yc2_{split}.json")  # the scorer's reader
        assert sorted(gold) == sorted(f"v_{g['video_id']}" for g in truth[split])
        dvc = read_json(out / split / "shot2story_dvc.json")
        for g in truth[split]:
            entry = yc2[f"v_{g['video_id']}"]
            spans = entry["timestamps"]
            assert entry["duration"] == g["duration"] and entry["sentences"] == [e["caption"] for e in g["events"]]
            assert all(0 <= s < e <= g["duration"] for s, e in spans)
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # ordered, non-overlapping
            narr = dvc[f"{g['video_id']}.mp4"]["0"]
            assert [n["timespan"] for n in narr] == spans and [n["text"] for n in narr] == entry["sentences"]
            for n in narr:
                s, e = n["timespan"]
                assert (s + e) / 2 <= n["time"] <= s + 0.75 * (e - s) + 1e-9
                assert n["time"] * 4 == int(n["time"] * 4)  # on the 0.25-s grid


def test_magqa_files(dataset, truth):
    from data.benchmarks import magqa

    out, _ = dataset
    for split in syn.SPLITS:
        train = read_json(out / split / "magqa_train.json")
        test = read_json(out / split / "magqa_test.json")
        gold = magqa.load_gold(out / split / "magqa_test.json")  # the scorer's reader
        assert [len(gold[t["question_id"]].answers) for t in test] == [len(t["answer"]) for t in test]
        for g, tr, te in zip(truth[split], train, test):
            user, *answers = tr["conversation"]
            assert user["role"] == "user" and 0 < user["time"] <= g["duration"]
            assert te["conversation"] == [user] and te["question_id"] == tr["question_id"] == f"{g['video_id']}_q0"
            assert [a["timespan"] for a in answers] == [a["time"] for a in te["answer"]]
            assert [a["content"] for a in answers] == [a["content"] for a in te["answer"]]
            spans = [a["timespan"] for a in answers]
            for e in g["events"]:
                if e["match"]:
                    assert [e["start"], e["end"]] in spans  # the query's events always answer
            for a in answers:
                assert a["role"] == "assistant" and user["time"] <= a["timespan"][0]
                assert a["timespan"][0] <= a["time"] <= a["timespan"][1]
            q = g["query_shape"]
            attr = {f"What are the {q['colour']} shapes doing?": "colour", f"What are the {q['kind']}s doing?": "kind",
                    f"Which shapes {syn.MOTION_VERB[q['motion']]}?": "motion"}[user["content"]]
            assert spans == [[e["start"], e["end"]] for e in g["events"]
                             if e[attr] == q[attr] and e["start"] >= user["time"]]


def test_hihd_csv(dataset, truth):
    out, _ = dataset
    rows = _csv_rows(out / "HIHD_metadata.csv")
    assert list(rows[0]) == list(syn.HIHD_COLUMNS) and len(rows) == sum(COUNTS.values())
    split_of = {g["video_id"]: s for s in syn.SPLITS for g in truth[s]}
    duration = {g["video_id"]: g["duration"] for g in _all_truth(truth)}
    for r in rows:
        vid = r["youtube_id"]
        assert r["training_split"] == split_of[vid] and float(r["duration"]) == duration[vid]
        scores = json.loads(r["scores"])
        assert len(scores) == duration[vid] and min(scores) == 0.0 and max(scores) == 1.0
        for s, e, kind in json.loads(r["quality_dropout"]):
            assert kind in DROPOUT_KINDS and 0 <= s < e <= duration[vid]


def _clips_overlapping(spans, duration):
    return [c for c in range(int(duration // 2)) if any(2 * c < e and 2 * c + 2 > s for s, e in spans)]


def test_qvh_files(dataset, truth):
    from data.benchmarks import qvh

    out, _ = dataset
    inside, partial = [], []
    for split in syn.SPLITS:
        path = out / split / f"highlight_{split}_release.jsonl"
        recs = read_jsonl(path)
        gold = qvh.load_gold(path)  # the scorer's reader
        assert [r["qid"] for r in recs] == [syn.SPLIT_CODE[split] * 100000 + i for i in range(COUNTS[split])]
        for g, r in zip(truth[split], recs):
            d = g["duration"]
            assert list(r) == ["qid", "query", "duration", "vid", "relevant_clip_ids", "saliency_scores",
                               "relevant_windows"]
            assert r["query"] == g["query"] and r["duration"] == d and r["vid"] == f"{g['video_id']}_0.0_{d}.0"
            spans = [[e["start"], e["end"]] for e in g["events"] if e["match"]]
            assert r["relevant_windows"] == spans
            assert r["relevant_clip_ids"] == _clips_overlapping(spans, d)
            sal = np.array(r["saliency_scores"])
            assert sal.shape == (len(r["relevant_clip_ids"]), 3) and sal.min() >= 0 and sal.max() <= 4
            m = gold[str(r["qid"])]["gt_scores"]
            assert m.shape == (d // 2, 3) and m[r["relevant_clip_ids"]].tolist() == r["saliency_scores"]
            others = [c for c in range(d // 2) if c not in r["relevant_clip_ids"]]
            assert not m[others].any()
            for k, c in enumerate(r["relevant_clip_ids"]):
                (inside if any(s <= 2 * c and 2 * c + 2 <= e for s, e in spans) else partial).append(sal[k])
    # a clip inside a match has importance ~1 (4 * gain >= 2.8 before noise); one that only
    # overlaps a match's edge is rated lower
    assert len(inside) >= 5 and len(partial) >= 5
    assert np.mean(inside) >= 3.0 and np.mean(inside) > np.mean(partial) + 1.0


def test_hisum_change_points_and_summary_hand_computed():
    scene = _two_event_scene()
    match, other = scene.events
    # cuts 4, 8, 12, 15 -> stretches 4, 4, 4, 3, 5 s -> 2+2, 2+2, 2+2, 3, 2+3
    cps = syn.hisum_change_points(scene)
    assert cps.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11], [12, 14], [15, 16], [17, 19]]
    # a cut 1 s after the previous one (6 -> 7) and one 1 s before the end (12 in 13 s) are dropped
    close = replace(scene, duration=13,
                    events=(replace(other, start=1.5, end=5.5), replace(match, start=7.0, end=12.0)))
    assert syn.hisum_change_points(close).tolist() == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 12]]
    # budget floor(0.15 * 20) = 3, shot weight end - start: the two match shots [4, 5] (mean 0.918) and
    # [6, 7] (0.980) weigh 1 each; the best third unit is [8, 9] (0.082, the match's falling edge),
    # worth more than [6, 7] + the distractor shot [12, 14] (weight 2, 0.186) would be
    gt = syn.importance_per_second(scene)
    summary = syn.hisum_gt_summary(gt, cps)
    assert summary.tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]  # blocks of end - start entries (11 = 20 - 9)


def test_hisum_files(dataset, truth):
    import h5py

    out, _ = dataset
    meta = _csv_rows(out / "mr_hisum_metadata.csv")
    assert (out / "mr_hisum_metadata.csv").read_text().splitlines()[0] == \
        "video_id,yt8m_file,random_id,youtube_id,duration,views,labels"  # Mr.HiSum's own header
    split = read_json(out / "mr_hisum_split.json")
    assert split == {f"{s}_keys": [g["video_id"] for g in truth[s]] for s in syn.SPLITS}
    titles = _csv_rows(out / "mr_hisum_titles.tsv", "\t")
    assert {r["youtube_id"]: r["title"] for r in titles} == {g["video_id"]: g["query"] for g in _all_truth(truth)}
    by_id = {r["video_id"]: r for r in meta}
    with h5py.File(out / "mr_hisum.h5", "r") as f:
        assert sorted(f) == sorted(g["video_id"] for g in _all_truth(truth))
        for s in syn.SPLITS:
            for g in truth[s]:
                vid, d = g["video_id"], g["duration"]
                r = by_id[vid]
                assert (r["youtube_id"], r["yt8m_file"], int(r["duration"])) == (vid, f"synthetic_{s}", d)
                assert int(r["views"]) >= 50_000 and len(r["random_id"]) == 4
                assert r["labels"] == f"[{syn.MOTIONS.index(g['query_shape']['motion'])}]"
                grp = f[vid]
                assert set(grp) == {"features", "gtscore", "change_points", "gt_summary"}
                assert grp["features"].shape == (d, 1024) and not np.asarray(grp["features"]).any()
                gtscore = np.asarray(grp["gtscore"])
                assert gtscore == pytest.approx(g["importance_per_second"], abs=5e-5)
                cps = np.asarray(grp["change_points"])
                assert cps[0, 0] == 0 and cps[-1, 1] == d - 1 and np.all(cps[1:, 0] == cps[:-1, 1] + 1)
                assert np.all((cps[:, 1] - cps[:, 0] >= 1) & (cps[:, 1] - cps[:, 0] <= 2))  # 2-3 s shots
                summary = np.asarray(grp["gt_summary"])
                assert len(summary) == d - len(cps) and set(summary.tolist()) <= {0.0, 1.0}
                assert summary.sum() <= int(0.15 * d)  # the official knapsack budget


# ------------------------------------------------------------- the project's own consumers

@pytest.mark.parametrize("name,args", [
    ("charades", ["--input", "{d}/charades_sta_{s}.txt", "--lengths", "{d}/Charades_v1_{s}.csv"]),
    ("tvsum", ["--input", "{d}/ydata-tvsum50-info.tsv", "--anno", "{d}/ydata-tvsum50-anno.tsv"]),
    ("youcook2", ["--input", "{d}/yc2_{s}.json"]),
    ("magqa", ["--input", "{d}/magqa_test.json"]),
    ("qvh", ["--input", "{d}/highlight_{s}_release.jsonl", "--video_template", syn.QVH_VIDEO_TEMPLATE]),
    ("hisum", ["--input", "{r}/mr_hisum_metadata.csv", "--split_file", "{r}/mr_hisum_split.json", "--split", "{s}_keys",
               "--titles", "{r}/mr_hisum_titles.tsv"]),
])
def test_converter_cli_accepts_the_files(dataset, truth, tmp_path, name, args):
    out, _ = dataset
    d, s = out / "test", "test"
    target = tmp_path / f"{name}.jsonl"
    # str.format leaves the "{youtube_id}" inside the qvh template's value alone: it is an argument
    cmd = [sys.executable, str(REPO / "datasets" / "convert.py"), name,
           *[a if "{youtube_id}" in a else a.format(d=d, s=s, r=out) for a in args],
           "--output", str(target), "--video_root", str(out / "videos"),
           "--template_set", "project"]  # the generator's (and the tiny model's) wording; the CLI defaults to the reference's
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    items = read_jsonl(target)
    assert items == read_jsonl(d / "items" / f"{name}.jsonl")  # the generator's items are the converter's
    n_single = sum(1 for g in truth["test"] if sum(e["match"] for e in g["events"]) == 1)
    assert len(items) == (n_single if name == "charades" else COUNTS["test"])
    assert all((out / "videos" / it["video"]).is_file() for it in items)


def test_scorers_rank_an_oracle_above_an_any_event_baseline(dataset, truth, tmp_path):
    """TVSum (aha protocol) and Charades-STA score the synthetic gold: the query oracle wins."""
    from test.evaluate import evaluate_files
    from test.postprocess import FusionParams

    out, _ = dataset
    d = out / "test"
    fusion = FusionParams(alpha=0.0, beta=1.0, epsilon=0.0)
    lines = (d / "charades_sta_test.txt").read_text().splitlines()

    def write(path, ids_of, relevance_of):
        with open(path, "w") as f:
            for g in truth["test"]:
                t = np.arange(0, g["duration"], 0.5)
                r = relevance_of(g, t)
                frames = {"time": t.tolist(), "informative": [0.0] * len(t), "relevance": r.tolist(),
                          "uncertainty": [-4.0] * len(t)}  # low log-variance: no penalty
                for rid in ids_of(g):
                    f.write(json.dumps({"id": rid, "frames": frames}) + "\n")

    def spans(g, t, only_match):
        return np.array([any(e["start"] <= x < e["end"] for e in g["events"] if e["match"] or not only_match)
                         for x in t], dtype=float)

    write(tmp_path / "oracle.jsonl", lambda g: [g["video_id"]], lambda g, t: spans(g, t, True))
    write(tmp_path / "any.jsonl", lambda g: [g["video_id"]], lambda g, t: spans(g, t, False))
    gold = d / "ydata-tvsum50-anno.tsv"
    oracle = evaluate_files("tvsum", str(tmp_path / "oracle.jsonl"), str(gold), "aha", fusion)
    anyev = evaluate_files("tvsum", str(tmp_path / "any.jsonl"), str(gold), "aha", fusion)["metrics"]
    assert len(oracle["per_item"]) == COUNTS["test"]
    oracle = oracle["metrics"]
    assert oracle["mAP50"] > anyev["mAP50"] and oracle["top5_mAP"] >= anyev["top5_mAP"]

    ids = lambda g: [f"{g['video_id']}#{i}" for i, line in enumerate(lines) if line.split()[0] == g["video_id"]]
    write(tmp_path / "c_oracle.jsonl", ids, lambda g, t: spans(g, t, True))
    res = evaluate_files("charades", str(tmp_path / "c_oracle.jsonl"), str(d / "charades_sta_test.txt"), None, fusion)
    assert len(res["per_item"]) == len(lines) and res["metrics"]["R1@0.7"] == 100.0


def test_qvh_and_hisum_scorers_accept_the_files(dataset, truth, tmp_path):
    """QVHighlights and Mr.HiSum (official) score the synthetic gold: the importance oracle wins."""
    from test.evaluate import evaluate_files
    from test.postprocess import FusionParams

    out, _ = dataset
    fusion = FusionParams(alpha=0.0, beta=1.0, epsilon=0.0)

    def write(path, id_of, relevance_of):
        with open(path, "w") as f:
            for i, g in enumerate(truth["test"]):
                t = np.arange(g["duration"], dtype=float)  # 1 fps: one frame per second
                frames = {"time": t.tolist(), "informative": [0.0] * len(t), "relevance": relevance_of(g, t),
                          "uncertainty": [-4.0] * len(t)}
                f.write(json.dumps({"id": id_of(i, g), "frames": frames}) + "\n")

    oracle = lambda g, t: g["importance_per_second"]
    any_event = lambda g, t: [float(any(e["start"] <= x < e["end"] for e in g["events"])) for x in t]
    qid = lambda i, g: str(200000 + i)
    write(tmp_path / "q_oracle.jsonl", qid, oracle)
    write(tmp_path / "q_any.jsonl", qid, any_event)
    gold = out / "test" / "highlight_test_release.jsonl"
    q_oracle = evaluate_files("qvh", str(tmp_path / "q_oracle.jsonl"), str(gold), None, fusion)["metrics"]["brief"]
    q_any = evaluate_files("qvh", str(tmp_path / "q_any.jsonl"), str(gold), None, fusion)["metrics"]["brief"]
    assert q_oracle["HL-min-Good-mAP"] > q_any["HL-min-Good-mAP"]
    assert q_oracle["HL-min-Fair-Hit1"] == 100.0  # the best second is always inside a match

    vid = lambda i, g: g["video_id"]
    write(tmp_path / "h_oracle.jsonl", vid, oracle)
    write(tmp_path / "h_any.jsonl", vid, any_event)
    opts = {"split_file": str(out / "mr_hisum_split.json")}  # test_keys by default
    h5 = str(out / "mr_hisum.h5")
    h_oracle = evaluate_files("hisum", str(tmp_path / "h_oracle.jsonl"), h5, "official", fusion, opts)["metrics"]
    h_any = evaluate_files("hisum", str(tmp_path / "h_any.jsonl"), h5, "official", fusion, opts)["metrics"]
    assert h_oracle["n_videos"] == COUNTS["test"]
    # gtscore itself: the same top segments and the same knapsack summary as the ground truth
    assert h_oracle["mAP50"] == pytest.approx(100.0) and h_oracle["F1"] == pytest.approx(100.0)
    assert h_any["F1"] < 100.0


def test_training_loaders_read_the_train_split(dataset, qwen2_tokenizer):
    from data.metadata import build_metadata
    from data.mixture import build_mixture
    from models.chat import ChatTemplate

    out, _ = dataset
    build_metadata(out / "videos", out / "videos_metadata.json", workers=0, progress=False)
    mix = build_mixture(out / "mixture_train.json", out, ChatTemplate(qwen2_tokenizer, tokens_per_frame=49),
                        frame_size=32)
    assert len(mix) == 4 * COUNTS["train"]
    by_name = {ds.name: ds for ds in mix.datasets}
    grounding = by_name["synthetic_grounding"][0]
    rel = grounding["relevance_labels"][grounding["relevance_labels"] != -100]
    g0 = read_json(out / "train" / "ground_truth.json")[0]
    t = np.arange(len(rel)) / 2.0  # mixture fps 2
    expected = [any(e["start"] - 1e-6 <= x <= e["end"] + 1e-6 for e in g0["events"] if e["match"]) for x in t]
    assert rel.tolist() == [float(x) for x in expected]
    dvc = by_name["synthetic_dvc"][0]
    assert int((dvc["informative_labels"] == 1).sum()) >= len(g0["events"])
    hihd = by_name["synthetic_hihd"][0]
    assert int((hihd["relevance_labels"] != -100).sum()) == g0["duration"] * 2
