"""Benchmark annotation converters (``convert`` of each data/benchmarks module, datasets/convert.py as
their command line) and query templates (data/prompts.py).

The real annotation files in ../shared/data are the inputs; MAGQA (not available offline) uses a
small fixture in its documented format.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from data import prompts
from data.prompts import DVC_INSTRUCTIONS, QUERY_TEMPLATES, REFERENCE_QUERY_TEMPLATES, SYSTEM_PROMPT, choose_template
from utils.io import read_jsonl
from tests.script_loader import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "datasets" / "convert.py"


@pytest.fixture(scope="module")
def conv():
    """The converters under short names, and the command line's main()."""
    from data.benchmarks import charades, hisum, magqa, qvh, tvsum, youcook2

    cli = load_script("datasets/convert.py")
    return SimpleNamespace(
        convert_charades=lambda *a, **kw: charades.convert(*a, **kw)[0], convert_youcook2=youcook2.convert,
        convert_qvh=qvh.convert, convert_tvsum=tvsum.convert, convert_hisum=hisum.convert, convert_magqa=magqa.convert,
        split_qvh_vid=qvh.split_vid, qvh_saliency_windows=qvh.saliency_windows, parse_label_list=hisum.parse_label_list,
        main=cli.main)


@pytest.fixture(scope="module")
def paths(shared_data):
    d = shared_data
    return {
        "sta": d / "charades_sta" / "charades_sta_test.txt",
        "charades_csv": d / "charades_sta" / "Charades_v1_test.csv",
        "yc2": d / "youcook2" / "yc2_val.json",
        "qvh_val": d / "qvhighlights" / "highlight_val_release.jsonl",
        "qvh_test": d / "qvhighlights" / "highlight_test_release.jsonl",
        "tv_info": d / "tvsum" / "ydata-tvsum50-info.reconstructed.tsv",
        "tv_anno": d / "tvsum" / "ydata-tvsum50-anno.tsv",
        "hisum_meta": d / "mr_hisum" / "mr_hisum_metadata.csv",
        "hisum_split": d / "mr_hisum" / "mr_hisum_split.json",
    }


def _fill(template_id: int, text: str) -> str:
    return QUERY_TEMPLATES[template_id].replace("{query}", text)


# ------------------------------------------------------------------------------------ prompts

def test_system_prompt_is_the_reference_string():
    assert SYSTEM_PROMPT == (
        "A multimodal AI assistant is helping users with some activities. Below is their conversation, "
        "interleaved with the list of video frames received by the assistant."
    )


def test_template_list_shape():
    assert len(QUERY_TEMPLATES) == 12
    assert QUERY_TEMPLATES[0] == QUERY_TEMPLATES[1] == "{query}"
    assert all(t.count("{query}") == 1 for t in QUERY_TEMPLATES)
    assert len(set(QUERY_TEMPLATES[1:])) == 11
    assert DVC_INSTRUCTIONS[0] == "Please concisely narrate the video in real time."
    assert len(set(DVC_INSTRUCTIONS)) == len(DVC_INSTRUCTIONS) >= 8


def test_choose_template_is_deterministic_and_ignores_global_rng():
    ids = [f"vid{i}#{i}" for i in range(300)]
    random.seed(1)
    first = [choose_template(7, i) for i in ids]
    random.seed(12345)
    random.random()
    assert [choose_template(7, i) for i in reversed(ids)] == first[::-1]
    assert set(first) == set(range(12))  # every template reachable
    other_seed = [choose_template(8, i) for i in ids]
    # Independent uniform draws agree with probability 1/12; 300 items leave no room for luck.
    assert sum(a != b for a, b in zip(first, other_seed)) > 200


def test_choose_template_is_stable_across_processes():
    code = "from data.prompts import choose_template; print([choose_template(3, f'x{i}') for i in range(20)])"
    env = dict(os.environ, PYTHONHASHSEED="987")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str([choose_template(3, f"x{i}") for i in range(20)])


def test_render_query_modes():
    assert prompts.render_query("a dog {jumps}", "none", 0, "q") == ("a dog {jumps}", None)
    assert prompts.render_query("a dog {jumps}", "fixed:2", 0, "q") == (
        "Find the moments in the video where this happens: a dog {jumps}", 2)
    query, tid = prompts.render_query("x", "random", 5, "item-1")
    assert tid == choose_template(5, "item-1") and query == _fill(tid, "x")
    for bad in ("fixed:", "fixed:two", "sometimes", "fixed:12"):
        with pytest.raises(ValueError):
            prompts.render_query("x", bad, 0, "q")
    with pytest.raises(ValueError, match="instruction"):
        prompts.pick_instruction("none", 0, "v_x")


# --------------------------------------------------------------------------------- Charades-STA

def test_charades_real_file(conv, paths):
    items = conv.convert_charades(paths["sta"], paths["charades_csv"], seed=0)
    lines = paths["sta"].read_text().splitlines()
    assert len(items) == len(lines) == 3720
    for i, (item, line) in enumerate(zip(items, lines)):
        assert item["id"] == f"{line.split()[0]}#{i}"
    first = items[0]  # "3MSZA 24.3 30.4##person turn a light on.", length 30.96 s in the csv
    assert first["video"] == "3MSZA.mp4" and first["duration"] == 30.96 and first["query_time"] == 0.0
    assert first["gold"] == {"timestamps": [[24.3, 30.4]], "sentence": "person turn a light on."}
    assert first["query"] == _fill(first["template_id"], "person turn a light on.")
    # Line 19: "AKO6M 12.7 19.9##..." in an 18.58-s video -> end clipped.
    assert items[19]["id"] == "AKO6M#19" and items[19]["gold"]["timestamps"] == [[12.7, 18.58]]
    assert all(it["gold"]["timestamps"][0][1] <= it["duration"] for it in items)
    assert sum(it["gold"]["timestamps"][0][1] == it["duration"] for it in items) > 500
    assert len({it["template_id"] for it in items}) == 12


def test_charades_seed_determinism(conv, paths):
    a = conv.convert_charades(paths["sta"], paths["charades_csv"], seed=0)
    b = conv.convert_charades(paths["sta"], paths["charades_csv"], seed=0)
    c = conv.convert_charades(paths["sta"], paths["charades_csv"], seed=1)
    assert a == b
    changed = sum(x["template_id"] != y["template_id"] for x, y in zip(a, c))
    assert changed > len(a) // 2
    assert [x["gold"] for x in a] == [y["gold"] for y in c]
    fixed = conv.convert_charades(paths["sta"], paths["charades_csv"], template="none")
    assert all(it["query"] == it["gold"]["sentence"] and it["template_id"] is None for it in fixed)


def test_charades_clipping_and_errors_on_fixture(conv, tmp_path):
    csv_path = tmp_path / "lengths.csv"
    csv_path.write_text("id,length\nABC,30.5\nDEF,10\n")
    sta = tmp_path / "sta.txt"
    sta.write_text("ABC 2.0 40.0##person sits down.\n\nDEF 0 4##person opens a door.\n")
    items = conv.convert_charades(sta, csv_path, template="fixed:0", video_template="videos/{vid}.mp4")
    assert [it["id"] for it in items] == ["ABC#0", "DEF#2"]  # blank line keeps its index
    assert items[0]["gold"]["timestamps"] == [[2.0, 30.5]]
    assert items[1]["video"] == "videos/DEF.mp4" and items[1]["query"] == "person opens a door."
    sta.write_text("ABC 31 40##beyond the end.\n")
    with pytest.raises(ValueError, match=r"sta.txt:1: .*starts at or after the video's end"):
        conv.convert_charades(sta, csv_path)
    sta.write_text("ABC 1 5 person without separator\n")
    with pytest.raises(ValueError, match=r"sta.txt:1: expected 'vid start end##sentence'"):
        conv.convert_charades(sta, csv_path)
    sta.write_text("XYZ 1 5##unknown video.\n")
    with pytest.raises(ValueError, match="XYZ"):
        conv.convert_charades(sta, csv_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        conv.convert_charades(tmp_path / "missing.txt", csv_path)
    csv_path.write_text("video,len\nABC,3\n")
    with pytest.raises(ValueError, match="lacks column"):
        conv.convert_charades(sta, csv_path)


# ------------------------------------------------------------------------------------- YouCook2

def test_youcook2_real_file(conv, paths):
    items = conv.convert_youcook2(paths["yc2"], seed=0)
    raw = json.loads(paths["yc2"].read_text())
    assert len(items) == len(raw) == 457
    by_id = {it["id"]: it for it in items}
    item = by_id["v_xHr8X2Wpmno"]
    assert item["video"] == "xHr8X2Wpmno.mp4" and item["duration"] == 206.86
    assert item["gold"]["answer"][0] == {"time": [47.0, 60.0], "content": "pick the ends off the verdalago"}
    assert len(item["gold"]["answer"]) == 6
    assert item["query"] == DVC_INSTRUCTIONS[item["template_id"]]
    assert len({it["template_id"] for it in items}) == len(DVC_INSTRUCTIONS)
    keyed = conv.convert_youcook2(paths["yc2"], template="fixed:0", video_template="yc2/{key}.mp4")
    assert keyed[0]["video"] == f"yc2/{keyed[0]['id']}.mp4"
    assert {it["query"] for it in keyed} == {"Please concisely narrate the video in real time."}
    with pytest.raises(ValueError, match="placeholder"):
        conv.convert_youcook2(paths["yc2"], video_template="{vid}.mp4")


def test_youcook2_mismatched_sentences(conv, tmp_path):
    bad = tmp_path / "yc.json"
    bad.write_text(json.dumps({"v_a": {"duration": 9.0, "timestamps": [[0, 1], [2, 3]], "sentences": ["one"]}}))
    with pytest.raises(ValueError, match="2 timestamps but 1 sentences"):
        conv.convert_youcook2(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        conv.convert_youcook2(bad)


def test_youcook2_test_split_has_no_labels_and_is_not_scored(conv, paths, tmp_path, caplog):
    # yc2_test.json gives every video the placeholder "None" / [0, 1]: a prediction "None" at 1 s
    # scored F1 100 against it
    from data.benchmarks import youcook2

    test_file = paths["yc2"].with_name("yc2_test.json")
    with caplog.at_level("WARNING"):
        items = conv.convert_youcook2(test_file)
    assert len(items) == 210 and all("gold" not in item for item in items)
    assert "labels not public" in caplog.text
    with pytest.raises(ValueError, match="placeholder.*score the val split"):
        youcook2.load_gold(test_file)
    # one real video among placeholders is a labelled file (val / train are never all placeholders)
    raw = json.loads(test_file.read_text())
    first = next(iter(raw))
    raw[first] = {"duration": 30.0, "timestamps": [[1, 5]], "sentences": ["crack the eggs"]}
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps(raw))
    assert len(youcook2.load_gold(mixed)) == 210


def test_youcook2_gold_clipped_at_the_video_end_is_counted(tmp_path):
    from data.benchmarks import youcook2

    gold_file = tmp_path / "yc.json"
    gold_file.write_text(json.dumps({"v_a": {"duration": 10.0, "timestamps": [[0, 4], [5, 12.5]], "sentences": ["a", "b"]},
                                     "v_b": {"duration": 10.0, "timestamps": [[0, 4]], "sentences": ["c"]}}))
    gold = youcook2.load_gold(gold_file)
    assert gold["v_a"].segments.tolist() == [[0, 4], [5, 10]] and gold["v_a"].n_clipped == 1
    preds = {"v_a": youcook2.DenseCaptions([[0, 4]], ["a"]), "v_b": youcook2.DenseCaptions([[0, 4]], ["c"])}
    record = youcook2.score(preds, gold, options={"captions": False})["record"]
    assert record["n_gt_segments_clipped"] == 1


# --------------------------------------------------------------------------------- QVHighlights

def test_qvh_real_files(conv, paths):
    val = conv.convert_qvh(paths["qvh_val"])
    n_val = sum(1 for line in paths["qvh_val"].read_text().splitlines() if line.strip())
    assert len(val) == n_val == 1550
    first = val[0]
    assert first["id"] == "2579" and first["video"] == "NUsG9BgSes0_210.0_360.0.mp4"
    assert first["query"] == "A girl and her mother cooked while talking with each other on facetime."
    assert first["template_id"] is None and first["duration"] == 150.0
    gold = first["gold"]
    assert (gold["youtube_id"], gold["source_start"], gold["source_end"]) == ("NUsG9BgSes0", 210.0, 360.0)
    assert gold["relevant_windows"] == [[82, 150]] and gold["relevant_clip_ids"][0] == 41
    assert len(gold["saliency_scores"]) == len(gold["relevant_clip_ids"])
    test = conv.convert_qvh(paths["qvh_test"])
    assert len(test) == 1542 and all("saliency_scores" not in it["gold"] for it in test)
    templated = conv.convert_qvh(paths["qvh_val"], template="random", seed=4)
    assert templated[0]["query"] == _fill(templated[0]["template_id"], first["query"])


def test_qvh_vid_and_highlight_windows(conv):
    assert conv.split_qvh_vid("_6hnl_BrFvs_360.0_510.0") == ("_6hnl_BrFvs", 360.0, 510.0)
    with pytest.raises(ValueError):
        conv.split_qvh_vid("novid")
    # clips 0,1 (max 4) -> [0,4]; clip 2 max 3 breaks the run; clip 5 -> [10,12]; clip 6 max 2.
    w = conv.qvh_saliency_windows([0, 1, 2, 5, 6], [[4, 0, 0], [1, 4, 2], [3, 3, 3], [0, 0, 4], [2, 2, 2]])
    assert w == [[0.0, 4.0], [10.0, 12.0]]
    # Unordered ids, a threshold of 3 and a last clip cut by a 125-s duration.
    w = conv.qvh_saliency_windows([62, 60, 61], [[3, 1, 1], [0, 3, 0], [4, 4, 4]], min_score=3, duration=125)
    assert w == [[120.0, 125.0]]
    with pytest.raises(ValueError):
        conv.qvh_saliency_windows([1, 2], [[4, 4, 4]])


# ----------------------------------------------------------------------------------------- TVSum

def test_tvsum_title_prompt_real_files(conv, paths):
    items = conv.convert_tvsum(paths["tv_info"], anno_path=paths["tv_anno"], seed=0)
    assert len(items) == 50
    by_cat = {}
    for it in items:
        by_cat.setdefault(it["gold"]["category"], []).append(it)
        assert it["prompt_variant"] == "title" and it["video"] == f"{it['id']}.mp4"
        assert it["query"] == _fill(it["template_id"], it["gold"]["title"])
    assert sorted(len(v) for v in by_cat.values()) == [5] * 10
    flat = next(it for it in items if it["id"] == "J0nA4VgnoCo")
    assert flat["duration"] == 9 * 60 + 44 and flat["gold"]["title"] == "#0001: FLAT TIRE"
    assert flat["gold"]["category_name"] == "Changing Vehicle Tire"
    assert conv.convert_tvsum(paths["tv_info"], seed=0) == items
    assert [it["template_id"] for it in conv.convert_tvsum(paths["tv_info"], seed=1)] != [it["template_id"] for it in items]


def test_tvsum_ablation_prompts(conv, paths):
    info = paths["tv_info"]
    titles = {it["id"]: it["gold"]["title"] for it in conv.convert_tvsum(info, template="none")}
    category = {it["id"]: it["gold"]["category"] for it in conv.convert_tvsum(info, template="none")}

    amb = conv.convert_tvsum(info, prompt="ambiguous", template="none")
    for it in amb:
        assert it["prompt_variant"] == "ambiguous" and it["query"]
        assert it["query"].casefold() != titles[it["id"]].casefold()
        assert it["query"].casefold() not in titles[it["id"]].casefold()
    assert all(it["id"] in prompts.TVSUM_AMBIGUOUS_TITLES for it in amb)

    unrel = conv.convert_tvsum(info, prompt="unrelated", template="none", seed=0)
    for it in unrel:
        src = it["gold"]["prompt_source_video"]
        assert it["query"] == titles[src] != titles[it["id"]]
        assert category[src] != category[it["id"]]
    assert conv.convert_tvsum(info, prompt="unrelated", template="none", seed=0) == unrel
    other = conv.convert_tvsum(info, prompt="unrelated", template="none", seed=1)
    assert sum(a["query"] != b["query"] for a, b in zip(unrel, other)) > 25

    templated = conv.convert_tvsum(info, prompt="unrelated", template="random", seed=0)
    assert all(t["query"] == _fill(t["template_id"], u["query"]) for t, u in zip(templated, unrel))

    none = conv.convert_tvsum(info, prompt="none")
    assert all(it["query"] == "" and it["template_id"] is None and it["prompt_variant"] == "none" for it in none)
    with pytest.raises(ValueError, match="prompt variant"):
        conv.convert_tvsum(info, prompt="vague")


def test_tvsum_reference_ablation_prompts(conv, paths):
    # the reference's own tables (test/tvsum/tvsum_tasks.py), which the paper's ablations used
    info = paths["tv_info"]
    titles = {it["id"]: it["gold"]["title"] for it in conv.convert_tvsum(info, template="none")}
    amb = {it["id"]: it for it in conv.convert_tvsum(info, prompt="ambiguous_reference", template="none")}
    assert len(amb) == 50 and amb["J0nA4VgnoCo"]["query"] == "Automotive Problem"
    assert amb["akI8YFjEmUw"]["query"] == "Environmental Technology"
    unrel = {it["id"]: it for it in conv.convert_tvsum(info, prompt="unrelated_reference", template="none")}
    assert unrel["J0nA4VgnoCo"]["query"] == "Will A Cat Eat Dog Food?"
    assert unrel["J0nA4VgnoCo"]["gold"]["prompt_source_video"] == "-esJrBWj2d8"
    for vid, it in unrel.items():  # every borrowed title is the named video's (quotes as the reference wrote it)
        assert it["query"].strip('"') == titles[it["gold"]["prompt_source_video"]].strip('"')
        assert it["gold"]["prompt_source_video"] != vid
    templated = conv.convert_tvsum(info, prompt="ambiguous_reference", template="reference:fixed:2")
    assert templated[0]["query"] == f"What segment of the video addresses the topic '{amb[templated[0]['id']]['query']}'?"


def test_tvsum_anno_mismatch(conv, paths, tmp_path):
    anno = tmp_path / "anno.tsv"
    anno.write_text("akI8YFjEmUw\tVU\t1,2,3\n")
    with pytest.raises(ValueError, match="disagree"):
        conv.convert_tvsum(paths["tv_info"], anno_path=anno)
    info = tmp_path / "info.tsv"
    info.write_text("category\tvideo_id\ttitle\turl\tlength\nVU\takI8YFjEmUw\tA title\tu\t2:1x\n")
    with pytest.raises(ValueError, match="info.tsv:2"):
        conv.convert_tvsum(info)


@pytest.mark.parametrize("edit", ["duplicate_last", "drop_last"])
def test_tvsum_anno_annotator_count_checked(conv, paths, tmp_path, edit):
    """A duplicated or missing annotator line (21 or 19 rows for one video) would change the per-frame
    mean the aha protocol scores against: the converter and the scorer's reader refuse it, naming the
    line; the clean file records 20 annotators in the meta."""
    from data.benchmarks import tvsum

    lines = paths["tv_anno"].read_text().splitlines(keepends=True)
    lines = lines + [lines[-1]] if edit == "duplicate_last" else lines[:-1]
    bad = tmp_path / "anno.tsv"
    bad.write_text("".join(lines))
    n = len(lines)
    expect = (f"anno.tsv:{n}: .*49 with 20, 1 with 21 rows.*line {n} repeats line {n - 1}" if edit == "duplicate_last"
              else f"anno.tsv:{n}: .*1 with 19, 49 with 20 rows.*has 19 rows, fewer")
    with pytest.raises(ValueError, match=expect):
        conv.convert_tvsum(paths["tv_info"], anno_path=bad)
    with pytest.raises(ValueError, match=expect):
        tvsum.load_frame_gold(bad)
    out = tmp_path / "tv.jsonl"
    assert conv.main(["tvsum", "--input", str(paths["tv_info"]), "--anno", str(bad), "--output", str(out)]) == 2
    assert conv.main(["tvsum", "--input", str(paths["tv_info"]), "--anno", str(paths["tv_anno"]),
                      "--output", str(out)]) == 0
    meta = json.loads(out.with_name("tv.jsonl.meta.json").read_text())
    assert meta["n_annotators"] == 20 and meta["identical_annotator_rows"] == 0


def test_tvsum_identical_annotator_rows_recorded_not_refused(tmp_path):
    """Two annotators may agree exactly (short synthetic videos do): with equal counts it is recorded."""
    from data.benchmarks import tvsum

    anno = tmp_path / "anno.tsv"
    anno.write_text("a\tVT\t1,2,3\na\tVT\t1,2,3\nb\tVT\t3,2,1\nb\tVT\t2,2,1\n")
    gold = tvsum.load_frame_gold(anno)
    assert gold["a"]["identical_annotator_rows"] == 1 and gold["b"]["identical_annotator_rows"] == 0
    assert {g["n_annotators"] for g in gold.values()} == {2}


# -------------------------------------------------------------------------------------- Mr.HiSum

def test_hisum_real_files(conv, paths, tmp_path):
    split = json.loads(paths["hisum_split"].read_text())
    with pytest.raises(ValueError, match="--titles"):
        conv.convert_hisum(paths["hisum_meta"], paths["hisum_split"])
    empty = conv.convert_hisum(paths["hisum_meta"], paths["hisum_split"], missing_title="empty")
    assert [it["id"] for it in empty] == split["test_keys"] and len(empty) == 2000
    first = empty[0]  # video_22692,train2597,KMP3,35e2DaRxpfg,185,56217,[   2   83  252 1488 1616]
    assert first["video"] == "35e2DaRxpfg.mp4" and first["duration"] == 185.0
    assert first["gold"] == {"h5_key": "video_22692", "youtube_id": "35e2DaRxpfg", "categories": [2, 83, 252, 1488, 1616]}
    assert first["query"] == "" and first["prompt_variant"] == "none"

    titles = tmp_path / "titles.tsv"
    titles.write_text("youtube_id\ttitle\n35e2DaRxpfg\tHow to bake bread\nGJ7IAm-IzE8\tMy trip\n")
    titled = conv.convert_hisum(paths["hisum_meta"], paths["hisum_split"], titles_path=titles,
                                missing_title="skip", template="fixed:4")
    assert [it["id"] for it in titled] == ["video_22692", "video_31205"]
    assert titled[0]["query"] == "Which parts of the video show this? How to bake bread"
    assert titled[0]["template_id"] == 4 and titled[0]["prompt_variant"] == "title"
    by_video_id = tmp_path / "titles.json"
    by_video_id.write_text(json.dumps({"video_25090": "A video_id keyed title"}))
    one = conv.convert_hisum(paths["hisum_meta"], paths["hisum_split"], titles_path=by_video_id,
                             missing_title="skip", template="none")
    assert [(it["id"], it["query"]) for it in one] == [("video_25090", "A video_id keyed title")]
    val = conv.convert_hisum(paths["hisum_meta"], paths["hisum_split"], split="val_keys", missing_title="empty")
    assert len(val) == len(split["val_keys"])
    with pytest.raises(ValueError, match="no key 'dev_keys'"):
        conv.convert_hisum(paths["hisum_meta"], paths["hisum_split"], split="dev_keys")


def test_hisum_video_root_filters_before_the_title_check(conv, paths, tmp_path):
    """Only the downloaded videos need a title (yt-dlp gives none for the others); videos skipped for
    want of a title are listed in the meta and the printed line, as the ones without a video file."""
    split = json.loads(paths["hisum_split"].read_text())["test_keys"]
    rows = {}
    for line in paths["hisum_meta"].read_text().splitlines()[1:]:
        f = line.split(",")
        rows[f[0]] = f[3]
    videos = tmp_path / "videos"
    videos.mkdir()
    have = split[:6]
    for vid in have:
        (videos / f"{rows[vid]}.mp4").write_bytes(b"")
    titles = tmp_path / "titles.tsv"
    titles.write_text("youtube_id\ttitle\n" + "".join(f"{rows[v]}\tTitle {v}\n" for v in have[:5]))
    out = tmp_path / "hisum.jsonl"
    base = ["hisum", "--input", str(paths["hisum_meta"]), "--split_file", str(paths["hisum_split"]),
            "--titles", str(titles), "--video_root", str(videos), "--output", str(out), "--template", "none"]
    # one downloaded video lacks a title: refused, counted among the 6 downloaded, not the 2000
    with pytest.raises(ValueError, match=r"1 of 6 Mr.HiSum test_keys videos with a video under"):
        conv.convert_hisum(paths["hisum_meta"], paths["hisum_split"], titles_path=titles, video_root=videos)
    assert conv.main(base) == 2
    titles.write_text(titles.read_text() + f"{rows[have[5]]}\tTitle {have[5]}\n")
    assert conv.main(base) == 0
    meta = json.loads(out.with_name("hisum.jsonl.meta.json").read_text())
    assert [it["id"] for it in read_jsonl(out)] == have
    assert meta["n_items"] == 6 and meta["n_converted"] == 2000 and len(meta["dropped_missing_video"]) == 1994
    assert meta["skipped_no_title"] == []
    titles.write_text("youtube_id\ttitle\n" + "".join(f"{rows[v]}\tTitle {v}\n" for v in have[:4]))
    assert conv.main([*base, "--missing_title", "skip"]) == 0
    meta = json.loads(out.with_name("hisum.jsonl.meta.json").read_text())
    assert meta["skipped_no_title"] == have[4:] and meta["n_items"] == 4 and meta["n_converted"] == 1998
    assert [it["id"] for it in read_jsonl(out)] == have[:4]


def test_hisum_missing_title_skip_is_recorded(conv, paths, tmp_path, capsys):
    titles = tmp_path / "titles.tsv"
    titles.write_text("youtube_id\ttitle\n35e2DaRxpfg\tHow to bake bread\n")
    out = tmp_path / "hisum.jsonl"
    assert conv.main(["hisum", "--input", str(paths["hisum_meta"]), "--split_file", str(paths["hisum_split"]),
                      "--titles", str(titles), "--missing_title", "skip", "--output", str(out)]) == 0
    meta = json.loads(out.with_name("hisum.jsonl.meta.json").read_text())
    assert meta["n_items"] == 1 and len(meta["skipped_no_title"]) == 1999 and "video_22692" not in meta["skipped_no_title"]
    assert "1999 skipped, no title" in capsys.readouterr().out


def test_hisum_metadata_repeated_video_id(conv, tmp_path):
    """video_id is the key: a second, different row for it is refused (file:line); an identical repeat
    is harmless; the same youtube_id under two video_ids (6 in the real file) is legitimate."""
    head = "video_id,yt8m_file,random_id,youtube_id,duration,views,labels\n"
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"test_keys": ["v1", "v2"]}))
    meta = tmp_path / "meta.csv"
    meta.write_text(head + "v1,f,r,yt1,100,5,[1]\nv2,f,r,yt1,100,5,[1]\nv1,f,r,yt1,90,5,[1]\n")
    with pytest.raises(ValueError, match=r"meta.csv:4: .*video_id 'v1' listed twice with different values "
                                         r"\(first at line 2; differing column\(s\) \['duration'\]\)"):
        conv.convert_hisum(meta, split, missing_title="empty")
    meta.write_text(head + "v1,f,r,yt1,100,5,[1]\nv2,f,r,yt1,100,5,[1]\nv1,f,r,yt1,100,5,[1]\n")
    items = conv.convert_hisum(meta, split, missing_title="empty")
    assert [(it["id"], it["duration"]) for it in items] == [("v1", 100.0), ("v2", 100.0)]


def test_hisum_label_parsing(conv):
    assert conv.parse_label_list("[  11   20   22   29   32 2604]") == [11, 20, 22, 29, 32, 2604]
    assert conv.parse_label_list("[8]") == [8]
    assert conv.parse_label_list("[3, 4]") == [3, 4]


# ----------------------------------------------------------------------------------------- MAGQA

MAGQA_FIXTURE = [
    {"question_id": 17, "video": "shot2story/abc.mp4", "duration": 40.0,
     "conversation": [{"role": "user", "content": "What is the man holding?", "time": 3.5}],
     "answer": [{"content": "A red umbrella.", "time": [4.0, 9.0]},
                {"content": "He opens it.", "time": [12.0, 15.0]}]},
    {"question_id": "q2", "video": "def.mkv",
     "conversation": [{"role": "user", "content": " Who enters the room? ", "time": 0}],
     "answer": [{"content": "A woman.", "time": [1.0, 2.0]}]},
]


def test_magqa_fixture(conv, tmp_path):
    path = tmp_path / "magqa_test.json"
    path.write_text(json.dumps(MAGQA_FIXTURE))
    items = conv.convert_magqa(path)
    assert [it["id"] for it in items] == ["17", "q2"]
    assert items[0]["query"] == "What is the man holding?" and items[0]["query_time"] == 3.5
    assert items[0]["duration"] == 40.0 and items[1]["duration"] is None
    assert items[0]["gold"]["answer"] == MAGQA_FIXTURE[0]["answer"]
    assert items[1]["query"] == "Who enters the room?" and items[1]["video"] == "def.mkv"
    assert conv.convert_magqa(path, video_template="{stem}.mp4")[1]["video"] == "def.mp4"
    path.write_text(json.dumps([{"question_id": 1, "video": "a.mp4",
                                 "conversation": [{"role": "assistant", "content": "hi", "time": 1}]}]))
    with pytest.raises(ValueError, match="no user turn"):
        conv.convert_magqa(path)


@pytest.mark.parametrize("change, message", [
    ({"answer": [{"content": "late", "time": [41.0, 45.0]}]}, r"\[41, 45\] starts at or after the video's end \(40 s\)"),
    ({"answer": [{"time": [4.0, 9.0]}]}, "an answer without content"),
    ({"answer": [{"content": "  ", "time": [4.0, 9.0]}]}, "an answer without content"),
    ({"conversation": [{"role": "user", "content": "Q?", "time": 40.0}]}, "asked at 40 s, at or after the video's end"),
])
def test_magqa_spans_and_query_times_are_checked_against_the_video(conv, tmp_path, change, message):
    path = tmp_path / "magqa.json"
    path.write_text(json.dumps([{**MAGQA_FIXTURE[0], **change}]))
    with pytest.raises(ValueError, match=message):
        conv.convert_magqa(path)


def test_magqa_answer_past_the_video_is_clipped_and_counted(conv, tmp_path):
    from data.benchmarks import magqa

    path = tmp_path / "magqa.json"
    path.write_text(json.dumps([{**MAGQA_FIXTURE[0], "answer": [{"content": "A red umbrella.", "time": [4.0, 50.0]}]}]))
    assert conv.convert_magqa(path)[0]["gold"]["answer"] == [{"content": "A red umbrella.", "time": [4.0, 40.0]}]
    assert magqa.load_gold(path)["17"].n_clipped == 1


# --------------------------------------------------------------------------------- command line

def test_cli_writes_items_and_meta_from_any_cwd(paths, tmp_path):
    out = tmp_path / "out" / "charades.jsonl"
    cmd = [sys.executable, str(SCRIPT), "charades", "--input", str(paths["sta"]),
           "--lengths", str(paths["charades_csv"]), "--output", str(out), "--seed", "3"]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)  # not the repo root
    assert res.returncode == 0, res.stderr
    items = read_jsonl(out)
    assert len(items) == 3720
    assert set(items[0]) == {"id", "dataset", "video", "query", "query_time", "duration", "template_id", "gold"}
    assert items[0]["template_id"] == choose_template(3, "3MSZA#0")
    meta = json.loads(out.with_name("charades.jsonl.meta.json").read_text())
    assert meta["n_items"] == 3720 and meta["options"]["seed"] == 3 and meta["options"]["template"] == "random"
    assert meta["inputs"]["input"]["sha256"] == "fab341679c20b0917173dcffffde367a71113fe63f3a645558cef2ebfbfefb55"
    # the command line's default wording is the reference's (the released weights were trained with it)
    assert meta["template_set"] == "reference" and meta["template_spec"] == "reference:random"
    assert meta["query_templates"] == list(REFERENCE_QUERY_TEMPLATES)
    first = items[0]["query"]
    assert first == REFERENCE_QUERY_TEMPLATES[items[0]["template_id"]].replace("{query}", "person turn a light on.")


def test_template_sets():
    from data.prompts import (DVC_INSTRUCTIONS, REFERENCE_DVC_INSTRUCTIONS, parse_template_spec, pick_instruction,
                              render_query)

    # the same seeded draw indexes either set; a spec without a set is the project's (training, tiny model)
    assert render_query("a dog", "reference:fixed:2", 0, "x") == ("What segment of the video addresses the topic 'a dog'?", 2)
    assert render_query("a dog", "fixed:2", 0, "x") == (QUERY_TEMPLATES[2].replace("{query}", "a dog"), 2)
    assert render_query("a dog", "random", 5, "id")[1] == render_query("a dog", "reference:random", 5, "id")[1]
    assert render_query("a dog", "none", 0, "x") == ("a dog", None)
    assert pick_instruction("reference:fixed:1", 0, "v") == ("Help me to illustrate my view in short.", 1)
    assert pick_instruction("project:fixed:1", 0, "v") == (DVC_INSTRUCTIONS[1], 1)
    drawn = {pick_instruction("reference:random", 0, f"v{i}")[0] for i in range(200)}
    assert drawn == set(REFERENCE_DVC_INSTRUCTIONS)
    assert parse_template_spec("reference:fixed:3") == ("reference", "fixed", 3)
    with pytest.raises(ValueError, match="SET: project | reference"):
        parse_template_spec("other:random")


def test_cli_template_set_project_and_explicit_specs(paths, tmp_path, conv):
    out = tmp_path / "yc.jsonl"
    assert conv.main(["youcook2", "--input", str(paths["yc2"]), "--output", str(out), "--template_set", "project"]) == 0
    meta = json.loads(out.with_name("yc.jsonl.meta.json").read_text())
    from data.prompts import DVC_INSTRUCTIONS

    assert meta["template_set"] == "project" and meta["dvc_instructions"] == list(DVC_INSTRUCTIONS)
    assert {item["query"] for item in read_jsonl(out)} <= set(DVC_INSTRUCTIONS)
    out2 = tmp_path / "yc2.jsonl"  # a spec naming its set wins over --template_set
    assert conv.main(["youcook2", "--input", str(paths["yc2"]), "--output", str(out2), "--template", "reference:fixed:4",
                      "--template_set", "project"]) == 0
    assert {item["query"] for item in read_jsonl(out2)} == {"Do concise real-time narration."}


def test_cli_bad_input_is_a_clear_error(paths, tmp_path):
    bad = tmp_path / "broken.txt"
    bad.write_text("3MSZA 24.3 thirty##person turn a light on.\n")
    out = tmp_path / "o.jsonl"
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "charades", "--input", str(bad), "--lengths", str(paths["charades_csv"]),
         "--output", str(out)], capture_output=True, text=True)
    assert res.returncode == 2
    assert "broken.txt:1: end is not a number: 'thirty'" in res.stderr
    assert "Traceback" not in res.stderr and not out.exists()


def test_main_video_root_filter_and_duplicate_ids(conv, tmp_path):
    path = tmp_path / "magqa.json"
    path.write_text(json.dumps(MAGQA_FIXTURE))
    videos = tmp_path / "videos"
    (videos / "shot2story").mkdir(parents=True)
    (videos / "shot2story" / "abc.mp4").write_bytes(b"")
    out = tmp_path / "magqa.jsonl"
    assert conv.main(["magqa", "--input", str(path), "--output", str(out), "--video_root", str(videos)]) == 0
    assert [it["id"] for it in read_jsonl(out)] == ["17"]
    meta = json.loads((tmp_path / "magqa.jsonl.meta.json").read_text())
    assert meta["dropped_missing_video"] == ["q2"] and meta["n_converted"] == 2
    path.write_text(json.dumps([MAGQA_FIXTURE[0], MAGQA_FIXTURE[0]]))
    assert conv.main(["magqa", "--input", str(path), "--output", str(out)]) == 2


def test_datasets_folder_is_not_a_package():
    # A datasets/__init__.py would shadow HuggingFace `datasets` for code run from the repo root.
    assert not (REPO / "datasets" / "__init__.py").exists()
