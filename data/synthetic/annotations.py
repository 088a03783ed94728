"""Every annotation file of the synthetic set, written in each benchmark's raw format."""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from data.benchmarks import charades, hisum, magqa, qvh, tvsum, youcook2
from data.degrade import make_schedule
from data.prompts import render_query
from utils.io import atomic_write_json, atomic_write_text, dumps
from data.synthetic.scene import Event, HISUM_BUDGET, HISUM_FEATURE_DIM, HISUM_SHOT_S, MOTIONS, MOTION_CATEGORY, MOTION_VERB, QVH_ANNOTATORS, QVH_CLIP_S, QVH_VIDEO_TEMPLATE, SPLITS, SPLIT_CODE, Scene, SynthConfig, TIME_GRID, _grid, _rng, annotator_clip_scores, annotator_frame_scores, frame_times, importance_at, importance_per_second, replay_scores, response_time



# ------------------------------------------------------------------------------ annotations

def tvsum_files(scenes: Sequence[Scene], n_annotators: int) -> tuple[str, str, dict]:
    """(ydata-tvsum50-anno.tsv text, info tsv text, tvsum_anno.json object) for ``scenes``."""
    anno_rows, info_rows, anno_json = [], [], {}
    for sc in scenes:
        cat = MOTION_CATEGORY[sc.query.motion]
        clips = annotator_clip_scores(sc, n_annotators)
        anno_rows += [(sc.video_id, cat, row) for row in annotator_frame_scores(sc, clips)]
        info_rows.append({"category": cat, "video_id": sc.video_id, "title": sc.query.text,
                          "url": f"synthetic://{sc.video_id}", "length": tvsum.clock(sc.duration)})
        anno_json[sc.video_id] = {
            "fps": float(sc.fps), "frames": str(sc.n_frames), "domain": cat, "title": sc.query.text,
            "url": f"synthetic://{sc.video_id}", "length": tvsum.clock(sc.duration),
            "anno": clips.T.astype(float).tolist(),  # [#clips][#annotators], as the UMT file
        }
    return tvsum.anno_tsv_text(anno_rows), tvsum.info_tsv_text(info_rows), anno_json


def charades_files(scenes: Sequence[Scene]) -> tuple[str, str]:
    """(charades_sta txt, Charades csv): a line only for a query with exactly one matching event."""
    rows = [(sc.video_id, sc.matches[0].start, sc.matches[0].end, sc.query.text) for sc in scenes if len(sc.matches) == 1]
    return charades.sta_text(rows), charades.lengths_csv_text([(sc.video_id, sc.duration) for sc in scenes])


def grounding_records(scenes: Sequence[Scene]) -> list[dict]:
    """data/grounding.py training list: every matching span of the query."""
    return [{"video_uid": f"{sc.video_id}.mp4", "query": sc.query.text,
             "timestamps": [[e.start, e.end] for e in sc.matches]} for sc in scenes]


def activitynet_captions(scenes: Sequence[Scene]) -> dict:
    """yc2_val.json layout: {"v_<id>": {duration, timestamps, sentences}} with one caption per event."""
    return {f"v_{sc.video_id}": youcook2.gold_record(sc.duration, [[e.start, e.end] for e in sc.events],
                                                    [e.caption for e in sc.events]) for sc in scenes}


def dvc_records(scenes: Sequence[Scene]) -> dict:
    """Shot2Story DVC training layout: {video_uid: {annotation_uid: [{text, time, timespan}]}}."""
    out = {}
    for sc in scenes:
        rng = _rng(sc.seed, "captions")
        out[f"{sc.video_id}.mp4"] = {"0": [
            {"text": e.caption, "time": response_time(rng, e.start, e.end), "timespan": [e.start, e.end]}
            for e in sc.events]}
    return out


@dataclass(frozen=True)
class MagqaExample:
    question_id: str
    question: str
    ask_time: float
    answers: tuple[tuple[Event, float], ...]   # (answered event, response time)


def magqa_example(scene: Scene) -> MagqaExample:
    """One multi-answer grounded question for a video.

    The question names one attribute of the query; it is asked on the TIME_GRID between 0.5 s and
    the first matching event, and every event with that attribute starting at or after the
    question is answered with its caption (so the matching events always are), at a response time
    between the event's midpoint and three quarters of it.
    """
    rng = _rng(scene.seed, "magqa")
    attr = ("colour", "kind", "motion")[int(rng.integers(3))]
    q = scene.query
    text = {"colour": f"What are the {q.colour} shapes doing?",
            "kind": f"What are the {q.kind}s doing?",
            "motion": f"Which shapes {MOTION_VERB[q.motion]}?"}[attr]
    first = scene.matches[0].start
    ask = float(min(max(_grid(rng.uniform(0.5, max(first, 0.5)), TIME_GRID), 0.5), first))
    answered = [e for e in scene.events if e.start >= ask and getattr(e.shape, attr) == getattr(q, attr)]
    return MagqaExample(f"{scene.video_id}_q0", text, ask,
                        tuple((e, response_time(rng, e.start, e.end)) for e in answered))


def magqa_files(scenes: Sequence[Scene]) -> tuple[list[dict], list[dict]]:
    """(training conversations, test items) in the MAGQA formats."""
    train, test = [], []
    for sc in scenes:
        ex = magqa_example(sc)
        user = {"role": "user", "content": ex.question, "time": ex.ask_time}
        train.append({"video_uid": f"{sc.video_id}.mp4", "video_start_time": 0.0, "question_id": ex.question_id,
                      "conversation": [user] + [
                          {"role": "assistant", "content": e.caption, "time": t, "timespan": [e.start, e.end]}
                          for e, t in ex.answers]})
        test.append({"question_id": ex.question_id, "video": f"{sc.video_id}.mp4", "duration": float(sc.duration),
                     "conversation": [dict(user)],
                     "answer": [{"content": e.caption, "time": [e.start, e.end]} for e, _ in ex.answers]})
    return train, test


HIHD_COLUMNS = ("youtube_id", "training_split", "query", "duration", "scores", "quality_dropout")


def hihd_rows(scenes: Sequence[Scene], split: str, seed: int) -> list[dict]:
    rows = []
    for sc in scenes:
        query, _ = render_query(sc.query.text, "random", seed, sc.video_id)
        dropout_seed = int(_rng(sc.seed, "dropout").integers(2**31))
        dropout = make_schedule(float(sc.duration), dropout_seed).to_list()
        rows.append({"youtube_id": sc.video_id, "training_split": split, "query": query,
                     "duration": float(sc.duration),
                     "scores": json.dumps([round(float(x), 4) for x in replay_scores(sc)]),
                     "quality_dropout": json.dumps(dropout)})
    return rows


def qvh_clip_saliency(scene: Scene) -> tuple[list[int], list[list[int]]]:
    """(relevant_clip_ids, saliency_scores) of the query, QVHighlights style.

    The relevant clips are the 2-s clips [2c, 2c + 2) that overlap a matching event, among the
    int(duration / 2) whole clips the scorer's ground-truth matrix has. Each of 3 annotators rates
    them 0-4: ``round(4 * gain * clip importance + noise)`` with the clip importance taken after a
    reaction lag U(-0.5, 0.75) s, gain U(0.7, 1.3) and noise N(0, 0.35) per clip (as the TVSum
    annotators, on QVHighlights' 0-4 scale).
    """
    rng = _rng(scene.seed, "qvh")
    n_clips = int(scene.duration / QVH_CLIP_S)
    ids = [c for c in range(n_clips)
           if any(c * QVH_CLIP_S < e.end and (c + 1) * QVH_CLIP_S > e.start for e in scene.matches)]
    t = frame_times(scene)
    clip_of_frame = np.floor(t / QVH_CLIP_S + 1e-9).astype(np.int64)
    whole = clip_of_frame < n_clips          # an odd last second is no whole clip
    counts = np.bincount(clip_of_frame[whole], minlength=n_clips)
    scores = np.zeros((len(ids), QVH_ANNOTATORS), dtype=np.int64)
    for a in range(QVH_ANNOTATORS):
        lag, gain = rng.uniform(-0.5, 0.75), rng.uniform(0.7, 1.3)
        imp = importance_at(scene, t - lag)[whole]
        clip_imp = np.bincount(clip_of_frame[whole], weights=imp, minlength=n_clips) / counts
        raw = 4.0 * gain * clip_imp[ids] + rng.normal(0.0, 0.35, len(ids))
        scores[:, a] = np.clip(np.rint(raw), 0, 4)
    return ids, scores.tolist()


def qvh_vid(scene: Scene) -> str:
    """QVHighlights ``vid`` = ``<youtube_id>_<start>_<end>``: here the whole video is the clip, so
    ``datasets/convert.py qvh --video_template "{youtube_id}.mp4"`` names its file."""
    return f"{scene.video_id}_0.0_{float(scene.duration):.1f}"


def qvh_records(scenes: Sequence[Scene], split: str) -> list[dict]:
    """``highlight_<split>_release.jsonl`` records, in the official key order; ``scenes`` are the
    split's videos in index order (qid = 100000 * split code + index)."""
    recs = []
    for i, sc in enumerate(scenes):
        ids, saliency = qvh_clip_saliency(sc)
        recs.append(qvh.release_record(SPLIT_CODE[split] * 100000 + i, sc.query.text, sc.duration, qvh_vid(sc), ids,
                                       saliency, [[e.start, e.end] for e in sc.matches]))
    return recs


def hisum_change_points(scene: Scene) -> np.ndarray:
    """(S, 2) int64 shots [start, end] in seconds (inclusive) tiling the video, standing in for KTS.

    Cuts at every event boundary rounded to the nearest second; a cut closer than 2 s to the
    previous kept one (or to the end) is dropped (its stretch joins the previous one), and a
    stretch longer than 3 s is cut into near-equal shots of 2-3 s. Every shot thus lasts 2-3 s
    (the official shot weight end - start is never 0); most lie inside one event or calm gap.
    """
    n, (lo, hi) = scene.duration, HISUM_SHOT_S
    cuts = sorted({int(math.floor(b + 0.5)) for e in scene.events for b in (e.start, e.end)} - {0, n})
    kept = [0]
    for c in cuts:
        if c - kept[-1] >= lo and n - c >= lo:
            kept.append(c)
    kept.append(n)
    shots = []
    for a, b in zip(kept, kept[1:]):
        k = math.ceil((b - a) / hi)
        edges = [a + (j * (b - a)) // k for j in range(k + 1)]
        shots += [[s, e - 1] for s, e in zip(edges, edges[1:])]
    return np.asarray(shots, dtype=np.int64)


def hisum_gt_summary(gtscore: np.ndarray, change_points: np.ndarray) -> np.ndarray:
    """The 0/1 knapsack summary of ``gtscore`` at 15 %, as the official code builds it: shot value
    = mean score, shot weight = end - start, one block of end - start entries per shot (so the
    summary has n - #shots entries; the scorer makes the machine summary the same way, so the
    ground truth used as a prediction scores F1 = 100)."""
    return hisum.knapsack_summary(gtscore, change_points, HISUM_BUDGET, "official")


HISUM_COLUMNS = hisum.METADATA_COLUMNS
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def hisum_metadata_row(scene: Scene, split: str) -> dict:
    """A ``mr_hisum_metadata.csv`` row: video_id = youtube_id = the synthetic id (the file is
    ``<youtube_id>.mp4``), yt8m_file = ``synthetic_<split>``, a random 4-letter random_id, views
    >= 50,000 as in Mr.HiSum, labels = ``[index of the query's motion in MOTIONS]`` (numpy-printed)."""
    rng = _rng(scene.seed, "hisum")
    random_id = "".join(_ID_ALPHABET[int(k)] for k in rng.integers(0, len(_ID_ALPHABET), 4))
    return {"video_id": scene.video_id, "yt8m_file": f"synthetic_{split}", "random_id": random_id,
            "youtube_id": scene.video_id, "duration": scene.duration, "views": int(rng.integers(50_000, 2_000_000)),
            "labels": f"[{MOTIONS.index(scene.query.motion)}]"}


def write_hisum_files(out: Path, scenes: dict[str, Sequence[Scene]]) -> None:
    """Mr.HiSum's layout for every split at once (one h5, split json, metadata, titles), as the real
    data set: ``mr_hisum.h5`` ``/<video_id>/{features, gtscore, change_points, gt_summary}``
    (features are zeros: nothing in the project reads them; gtscore = importance per second),
    ``mr_hisum_split.json`` {train,val,test}_keys, ``mr_hisum_metadata.csv`` and the titles
    (``youtube_id<TAB>title``, title = the query) that ``datasets/convert.py hisum --titles`` reads."""
    videos = {}
    for split in SPLITS:
        for sc in scenes[split]:
            gt, cps = importance_per_second(sc), hisum_change_points(sc)
            videos[sc.video_id] = {"gtscore": gt, "change_points": cps, "gt_summary": hisum_gt_summary(gt, cps)}
    hisum.write_gold_h5(out / "mr_hisum.h5", videos, HISUM_FEATURE_DIM)
    atomic_write_json(out / "mr_hisum_split.json", {f"{s}_keys": [sc.video_id for sc in scenes[s]] for s in SPLITS})
    rows = [hisum_metadata_row(sc, s) for s in SPLITS for sc in scenes[s]]
    atomic_write_text(out / "mr_hisum_metadata.csv", _csv_text(rows, HISUM_COLUMNS))
    titles = [{"youtube_id": sc.video_id, "title": sc.query.text} for s in SPLITS for sc in scenes[s]]
    atomic_write_text(out / "mr_hisum_titles.tsv", _csv_text(titles, ("youtube_id", "title"), delimiter="\t"))


def _csv_text(rows: Sequence[dict], columns: Sequence[str], delimiter: str = ",") -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), delimiter=delimiter, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def benchmark_items(split_dir: Path, split: str, seed: int) -> dict[str, list[dict]]:
    """The converters' items for the split's files (the benchmark modules, templates seeded by ``seed``)."""
    items = {
        "tvsum": tvsum.convert(split_dir / "ydata-tvsum50-info.tsv", anno_path=split_dir / "ydata-tvsum50-anno.tsv",
                               seed=seed),
        "youcook2": youcook2.convert(split_dir / f"yc2_{split}.json", seed=seed),
        "magqa": magqa.convert(split_dir / "magqa_test.json", seed=seed),
    }
    sta = split_dir / f"charades_sta_{split}.txt"
    items["charades"] = (charades.convert(sta, split_dir / f"Charades_v1_{split}.csv", seed=seed)[0]
                         if sta.stat().st_size else [])
    items["qvh"] = qvh.convert(split_dir / f"highlight_{split}_release.jsonl", seed=seed,
                               video_template=QVH_VIDEO_TEMPLATE)
    root = split_dir.parent
    items["hisum"] = hisum.convert(root / "mr_hisum_metadata.csv", root / "mr_hisum_split.json",
                                   split=f"{split}_keys", titles_path=root / "mr_hisum_titles.tsv", seed=seed)
    return items


def write_split_annotations(split_dir: Path, split: str, scenes: Sequence[Scene], cfg: SynthConfig,
                            seed: int) -> list[dict]:
    """Every annotation file of one split; returns its HIHD rows (the CSV spans all splits).

    The Mr.HiSum files (one set for all splits, ``write_hisum_files``) must exist already: the
    split's hisum items are converted from them."""
    split_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(split_dir / "ground_truth.json", [sc.to_dict() for sc in scenes])
    anno, info, anno_json = tvsum_files(scenes, cfg.n_annotators)
    atomic_write_text(split_dir / "ydata-tvsum50-anno.tsv", anno)
    atomic_write_text(split_dir / "ydata-tvsum50-info.tsv", info)
    atomic_write_json(split_dir / "tvsum_anno.json", anno_json)
    sta, lengths = charades_files(scenes)
    atomic_write_text(split_dir / f"charades_sta_{split}.txt", sta)
    atomic_write_text(split_dir / f"Charades_v1_{split}.csv", lengths)
    atomic_write_json(split_dir / "grounding.json", grounding_records(scenes))
    atomic_write_json(split_dir / f"yc2_{split}.json", activitynet_captions(scenes))
    atomic_write_json(split_dir / "shot2story_dvc.json", dvc_records(scenes))
    train, test = magqa_files(scenes)
    atomic_write_json(split_dir / "magqa_train.json", train)
    atomic_write_json(split_dir / "magqa_test.json", test)
    atomic_write_text(split_dir / f"highlight_{split}_release.jsonl",
                      "".join(dumps(r) + "\n" for r in qvh_records(scenes, split)))
    for name, items in benchmark_items(split_dir, split, seed).items():
        atomic_write_text(split_dir / "items" / f"{name}.jsonl", "".join(dumps(it) + "\n" for it in items))
    return hihd_rows(scenes, split, seed)


def mixture_config(fps: float = 2, max_frames: int = 128) -> dict:
    """A training mixture (data/mixture.py format) over the train split, paths relative to DIR."""
    common = {"video_root": "videos", "metadata": "videos_metadata.json", "fps": fps, "max_frames": max_frames}
    return {
        "description": "Synthetic shapes benchmark (data/synthetic), train split. Build the metadata first: "
                       "python -m data.metadata DIR/videos DIR/videos_metadata.json; then use DIR as data_root.",
        "datasets": [
            {"name": "synthetic_dvc", "type": "dvc", "anno_file": "train/shot2story_dvc.json", **common},
            {"name": "synthetic_magqa", "type": "magqa", "anno_file": "train/magqa_train.json", **common},
            {"name": "synthetic_grounding", "type": "grounding", "anno_file": "train/grounding.json", **common},
            {"name": "synthetic_hihd", "type": "hihd", "anno_file": "HIHD_metadata.csv", "split": "train", **common},
        ],
    }

