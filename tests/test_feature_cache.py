"""Pre-extracted features: storage, fingerprints, extraction, and identity with on-the-fly frames."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data.collator import StreamCollator
from data.degrade import DegradationSchedule
from data.feature_cache import (FeatureCache, FeatureCacheMiss, FeatureSourceMismatch, extract_features, model_fingerprint,
                                source_identity)
from data.mixture import build_mixture
from models.build import build_model
from models.chat import ChatTemplate
from models.frames import to_pixel_values
from tests.test_datasets import write_mixture_fixture
from tests.videos import write_test_video

SMALL = {"shot2story_dvc": (1, 3), "shot2story_magqa": (1, 3), "coin_dvc": (0.5, 2), "hihd": (1, 3)}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("feat")
    write_mixture_fixture(r, SMALL)
    return r


@pytest.fixture(scope="module")
def model():
    m = build_model("aha-tiny", seed=0)
    m.eval()
    return m


@pytest.fixture(scope="module")
def template(qwen2_tokenizer):
    return ChatTemplate(qwen2_tokenizer, tokens_per_frame=49)


def test_save_load_slices_and_misses(tmp_path):
    cache = FeatureCache(tmp_path, "abc", "vision")
    feats = torch.arange(5 * 3 * 2, dtype=torch.float32).reshape(5, 3, 2)
    sched = DegradationSchedule.from_list([[1, 2, "blackout"]], seed=4)
    p_clean = cache.save("s2s/videos/v.mp4", 2.0, 384, feats)
    p_dirty = cache.save("s2s/videos/v.mp4", 2.0, 384, feats + 1, degradation=sched)
    assert p_clean != p_dirty and p_clean.is_file() and p_dirty.is_file()
    assert p_clean.relative_to(tmp_path).as_posix() == "vision-abc/fps2_s384/s2s/videos/v.mp4.safetensors"
    assert torch.equal(cache.load("s2s/videos/v.mp4", 2.0, 1, 4, 384), feats[1:4])
    assert torch.equal(cache.load("s2s/videos/v.mp4", 2.0, 0, 2, 384, sched), feats[:2] + 1)
    assert cache.frames_cached("s2s/videos/v.mp4", 2.0, 384) == 5
    assert cache.frames_cached("s2s/videos/v.mp4", 1.0, 384) == 0
    with pytest.raises(FeatureCacheMiss, match="holds 5 frames"):
        cache.load("s2s/videos/v.mp4", 2.0, 3, 6, 384)
    with pytest.raises(FeatureCacheMiss, match="extract_features"):
        cache.load("s2s/videos/other.mp4", 2.0, 0, 1, 384)
    with pytest.raises(ValueError, match="relative path"):
        cache.path("../escape.mp4", 2.0, 384)
    with pytest.raises(ValueError, match="kind"):
        FeatureCache(tmp_path, "abc", "pixels")
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


def test_fingerprint_follows_weights_dtype_and_kind(model):
    fp = model_fingerprint(model, "vision")
    assert fp == model_fingerprint(build_model("aha-tiny", seed=0), "vision")
    assert fp != model_fingerprint(build_model("aha-tiny", seed=1), "vision")
    assert fp != model_fingerprint(build_model("aha-tiny", seed=0, dtype="bf16"), "vision")
    assert fp != model_fingerprint(model, "frame_embeds")
    other_projector = build_model("aha-tiny", seed=0)
    with torch.no_grad():
        other_projector.model.multi_modal_projector.linear_1.weight.add_(1.0)
    # the projector matters for final frame embeddings only
    assert model_fingerprint(other_projector, "vision") == fp
    assert model_fingerprint(other_projector, "frame_embeds") != model_fingerprint(model, "frame_embeds")


@pytest.mark.parametrize("kind", ["vision", "frame_embeds"])
def test_cached_features_give_the_same_embeddings_as_decoded_frames(root, model, template, tmp_path, kind):
    plain = build_mixture(root / "mixture.json", root, template, seed=3)
    cache = FeatureCache.for_model(tmp_path, model, kind)
    stats = extract_features(model, plain.frame_needs(), cache, 384, batch_frames=2)
    assert stats == {"videos": 4, "extracted": 4, "skipped": 0, "failed": 0, "short": 0}
    again = extract_features(model, plain.frame_needs(), cache, 384)
    assert again["skipped"] == 4 and again["extracted"] == 0
    cached = build_mixture(root / "mixture.json", root, template, seed=3, feature_cache=cache)
    collate = StreamCollator(151643)
    key = cache.item_key
    for i in range(len(plain)):
        a, b = plain[i], cached[i]
        assert a["sample_id"] == b["sample_id"] and key in b and "frames" not in b
        for k in ("input_ids", "labels", "informative_labels", "relevance_labels"):
            assert torch.equal(a[k], b[k])
        ba, bb = collate([a]), collate([b])
        with torch.no_grad():
            px = to_pixel_values(a["frames"], 384)
            direct = model.vision_features(px) if kind == "vision" else model.encode_frames(px)
            torch.testing.assert_close(bb[key], direct)
            ea = model.embed_inputs(ba["input_ids"], pixel_values=ba["pixel_values"])
            eb = model.embed_inputs(bb["input_ids"], **{key: bb[key]})
        # bit-identical on the CI CPU; the tolerance only absorbs BLAS blocking that may differ by batch size
        torch.testing.assert_close(ea, eb)


def test_degraded_videos_are_cached_with_their_schedule(root, model, template, tmp_path):
    mix = build_mixture(root / "mixture.json", root, template)
    hihd = [n for n in mix.frame_needs() if n.key.startswith("HIHD/")]
    assert len(hihd) == 1 and hihd[0].degradation is not None and hihd[0].end_frame == 3
    cache = FeatureCache.for_model(tmp_path, model, "vision")
    extract_features(model, hihd, cache, 384)
    feats = cache.load(hihd[0].key, 1.0, 0, 3, 384, hihd[0].degradation)
    with torch.no_grad():
        frames = mix.datasets[3][0]["frames"]  # decoded with the blackout at second 1
        torch.testing.assert_close(feats, model.vision_features(to_pixel_values(frames, 384)), rtol=1e-6, atol=1e-6)
    with pytest.raises(FeatureCacheMiss):
        cache.load(hihd[0].key, 1.0, 0, 3, 384)  # the clean video was never cached


def test_shards_split_the_videos_and_the_cli_runs(root, model, template, tmp_path, shared_data):
    mix = build_mixture(root / "mixture.json", root, template)
    cache = FeatureCache.for_model(tmp_path / "a", model, "vision")
    s0 = extract_features(model, mix.frame_needs(), cache, 384, shard=(0, 2))
    s1 = extract_features(model, mix.frame_needs(), cache, 384, shard=(1, 2))
    assert (s0["videos"], s1["videos"]) == (2, 2) and s0["extracted"] + s1["extracted"] == 4
    from scripts.extract_features import main

    stats = main(["--dataset_config", str(root / "mixture.json"), "--data_root", str(root), "--cache_dir",
                  str(tmp_path / "cli"), "--preset", "aha-tiny", "--seed", "0", "--tokenizer",
                  str(shared_data / "tokenizers" / "qwen2"), "--num_workers", "0"])
    assert stats["extracted"] == 4 and stats["cache"].endswith(f"vision-{model_fingerprint(model)}")


# ------------------------------------------------------- features stand for one video, checked


@pytest.fixture()
def two_roots(tmp_path):
    """rootA/b.mp4 (3 s) and rootB/b.mp4 (2 s): another video under the same key."""
    a = write_test_video(tmp_path / "rootA" / "b.mp4", n_frames=30, fps=10)
    b = write_test_video(tmp_path / "rootB" / "b.mp4", n_frames=20, fps=10)
    return a, b


def test_a_feature_file_is_checked_against_its_video(tmp_path, two_roots):
    a, b = two_roots
    cache = FeatureCache(tmp_path / "feats", "abc", "frame_embeds")
    cache.save("b.mp4", 1.0, 384, torch.zeros(3, 2, 2), source=source_identity(a))
    cache.check_source("b.mp4", 1.0, 384, a)
    cache.check_source("b.mp4", 1.0, 384, tmp_path / "rootA" / ".." / "rootA" / "b.mp4")  # the same file, named otherwise
    with pytest.raises(FeatureSourceMismatch, match="rootA/b.mp4.*not from .*rootB/b.mp4"):
        cache.check_source("b.mp4", 1.0, 384, b)
    cache.save("b.mp4", 1.0, 384, torch.zeros(3, 2, 2))  # as an older version wrote it: no source
    with pytest.raises(FeatureSourceMismatch, match="does not record which video.*re-extract"):
        cache.check_source("b.mp4", 1.0, 384, a)
    cache.check_source("other.mp4", 1.0, 384, a)  # nothing cached: the miss is the loader's to report


def test_extraction_replaces_the_features_of_another_video_under_the_same_key(tmp_path, model, two_roots):
    from data.stream import VideoNeed

    a, b = two_roots
    cache = FeatureCache.for_model(tmp_path / "feats", model, "frame_embeds")
    assert extract_features(model, [VideoNeed("b.mp4", a, 1.0, 3)], cache, 384)["extracted"] == 1
    assert extract_features(model, [VideoNeed("b.mp4", a, 1.0, 3)], cache, 384)["skipped"] == 1
    # rootB's b.mp4 needs fewer frames than rootA's file holds: not a reason to skip it
    stats = extract_features(model, [VideoNeed("b.mp4", b, 1.0, 2)], cache, 384)
    assert stats["extracted"] == 1 and stats["skipped"] == 0
    assert cache.source("b.mp4", 1.0, 384)["path"] == str(b.resolve()) and cache.frames_cached("b.mp4", 1.0, 384) == 2
    cache.check_source("b.mp4", 1.0, 384, b)
    # a file written without its source (older version) is extracted again, not skipped
    cache.save("b.mp4", 1.0, 384, cache.load("b.mp4", 1.0, 0, 2, 384))
    assert extract_features(model, [VideoNeed("b.mp4", b, 1.0, 2)], cache, 384)["extracted"] == 1
    assert cache.source("b.mp4", 1.0, 384) is not None


@pytest.mark.slow
def test_live_infer_refuses_the_features_of_another_video_with_the_same_name(tmp_path, two_roots, shared_data, capsys):
    """scripts/extract_features.py --video rootA/b.mp4, then test.live_infer --video rootB/b.mp4
    --features: the key is the bare file name, so the check against the video itself refuses it."""
    from test import live_infer
    from tests.script_loader import load_script

    a, b = two_roots
    tok = str(shared_data / "tokenizers" / "qwen2")
    feats = str(tmp_path / "feats")
    stats = load_script("scripts/extract_features.py").main(["--video", str(a), "--fps", "1", "--cache_dir", feats,
                                                            "--tokenizer", tok, "--num_workers", "0"])
    assert stats["extracted"] == 1
    base = ["--query", "q", "--tokenizer", tok, "--fps", "1", "--no_generate", "--reel_budget", "0", "--quiet",
            "--features", feats]
    assert live_infer.main(["--video", str(a), "--output_dir", str(tmp_path / "ok"), *base]) == 0
    capsys.readouterr()
    assert live_infer.main(["--video", str(b), "--output_dir", str(tmp_path / "bad"), *base]) == 2
    err = capsys.readouterr().err
    assert err.startswith("live_infer: error:") and "rootA/b.mp4" in err and "rootB/b.mp4" in err and "another video" in err


def test_training_checks_feature_sources_by_size(tmp_path, two_roots):
    from data.stream import VideoNeed

    a, b = two_roots
    cache = FeatureCache(tmp_path / "feats", "abc", "vision")
    cache.save("b.mp4", 1.0, 384, torch.zeros(3, 2, 2), source=source_identity(a))
    assert cache.check_sources_by_size([VideoNeed("b.mp4", a, 1.0, 3)], 384) == {"checked": 1, "video_absent": 0,
                                                                                  "features_absent": 0}
    with pytest.raises(FeatureSourceMismatch, match=r"1 of 1 feature files.*rootA/b.mp4.*not from .*rootB/b.mp4"):
        cache.check_sources_by_size([VideoNeed("b.mp4", b, 1.0, 2)], 384)
    # videos deleted after extraction (training from features only) and videos never extracted: counted
    stats = cache.check_sources_by_size([VideoNeed("b.mp4", tmp_path / "gone" / "b.mp4", 1.0, 3),
                                         VideoNeed("c.mp4", a, 1.0, 3)], 384)
    assert stats == {"checked": 0, "video_absent": 1, "features_absent": 1}
    cache.save("b.mp4", 1.0, 384, torch.zeros(3, 2, 2))  # written before sources were recorded
    with pytest.raises(FeatureSourceMismatch, match="does not record its video"):
        cache.check_sources_by_size([VideoNeed("b.mp4", a, 1.0, 3)], 384)


def test_a_video_needed_by_two_datasets_is_extracted_once_with_all_its_frames(tmp_path, model, two_roots):
    """Shot2Story's captioning and MAGQA share a video root and fps: one video, two needs under one
    key. The shorter need must not replace the file the longer one needs (its items would miss)."""
    from data.stream import VideoNeed

    a, b = two_roots
    cache = FeatureCache.for_model(tmp_path / "feats", model, "vision")
    needs = [VideoNeed("s2s/b.mp4", a, 1.0, 3), VideoNeed("s2s/b.mp4", a, 1.0, 2)]
    stats = extract_features(model, needs, cache, 384)
    assert stats["videos"] == 1 and stats["extracted"] == 1
    assert cache.frames_cached("s2s/b.mp4", 1.0, 384) == 3
    assert extract_features(model, needs[::-1], cache, 384)["skipped"] == 1
    # the same key for two different files: their features would overwrite each other
    with pytest.raises(ValueError, match="names two videos"):
        extract_features(model, [VideoNeed("s2s/b.mp4", a, 1.0, 3), VideoNeed("s2s/b.mp4", b, 1.0, 2)], cache, 384)


def test_features_extracted_with_fewer_frames_are_not_streamed_as_the_whole_video(tmp_path, model, two_roots):
    """extract_features.py --max_frames 2, then a driver without --max_frames: decoding the video gives
    its 3 frames at 1 fps; the cache must not silently cut the stream to 2."""
    from data.stream import VideoNeed
    from test.engine_args import feature_frames

    a, _ = two_roots
    cache = FeatureCache.for_model(tmp_path / "feats", model, "frame_embeds")
    extract_features(model, [VideoNeed("b.mp4", a, 1.0, 2)], cache, 384)
    for video_of in (lambda key: a, None):  # checked against the video, or its recorded duration
        cache.video_of = video_of
        with pytest.raises(FeatureCacheMiss, match="holds 2 frames.*has 3 at 1 fps"):
            feature_frames(cache, "b.mp4", 1.0, 384, "cpu", torch.float32)
        assert len(list(feature_frames(cache, "b.mp4", 1.0, 384, "cpu", torch.float32, max_frames=2))) == 2
    extract_features(model, [VideoNeed("b.mp4", a, 1.0, 3)], cache, 384)  # the rerun extends the file
    assert [e.time for e in feature_frames(cache, "b.mp4", 1.0, 384, "cpu", torch.float32)] == [0.0, 1.0, 2.0]


def test_shards_split_the_videos_of_benchmark_items(tmp_path, shared_data):
    """--items ... --shard i/n: each process takes its share (the flag was ignored for --items / --video)."""
    import json

    from tests.script_loader import load_script

    for name in ("x.mp4", "y.mp4"):
        write_test_video(tmp_path / "videos" / name, n_frames=10, fps=10)
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": n, "video": n}) + "\n" for n in ("x.mp4", "y.mp4")))
    main = load_script("scripts/extract_features.py").main
    base = ["--items", str(items), "--video_root", str(tmp_path / "videos"), "--fps", "1", "--cache_dir",
            str(tmp_path / "feats"), "--tokenizer", str(shared_data / "tokenizers" / "qwen2"), "--num_workers", "0"]
    s0, s1 = main([*base, "--shard", "0/2"]), main([*base, "--shard", "1/2"])
    assert (s0["videos"], s0["extracted"], s1["videos"], s1["extracted"]) == (1, 1, 1, 1)


def test_a_damaged_feature_file_is_named_and_extracted_again(tmp_path, model, two_roots):
    """A file cut short after it was written (a copy or disk error) is a named FeatureCacheMiss for the
    readers, and a rerun of the extraction writes it again instead of stopping on it."""
    from data.feature_cache import FeatureCacheCorrupt
    from data.stream import VideoNeed

    a, _ = two_roots
    cache = FeatureCache.for_model(tmp_path / "feats", model, "frame_embeds")
    need = VideoNeed("b.mp4", a, 1.0, 3)
    extract_features(model, [need], cache, 384)
    p = cache.path("b.mp4", 1.0, 384)
    p.write_bytes(p.read_bytes()[:-16])
    for read in (lambda: cache.frames_cached("b.mp4", 1.0, 384), lambda: cache.load("b.mp4", 1.0, 0, 3, 384)):
        with pytest.raises(FeatureCacheCorrupt, match=f"{p.name}: unreadable"):
            read()
    assert extract_features(model, [need], cache, 384)["extracted"] == 1
    assert cache.load("b.mp4", 1.0, 0, 3, 384).shape[0] == 3


def test_the_projector_activation_is_part_of_the_frame_embeds_fingerprint(model, tmp_path):
    """A preset that differs only in the projector's activation makes other frame tokens from the same
    weights: its cache is another folder."""
    import json

    spec = json.loads((Path(__file__).resolve().parents[1] / "configs" / "model" / "aha-tiny.json").read_text())
    spec["config"]["projector_hidden_act"] = "relu"
    (tmp_path / "relu.json").write_text(json.dumps(spec))
    relu = build_model(str(tmp_path / "relu.json"), seed=0)
    x = torch.randn(1, 729, relu.config.vision_config.hidden_size)
    with torch.no_grad():
        assert not torch.allclose(relu.project_frames(x), model.project_frames(x))
    assert model_fingerprint(relu, "frame_embeds") != model_fingerprint(model, "frame_embeds")
    assert model_fingerprint(relu, "vision") == model_fingerprint(model, "vision")
