"""How frames are scaled into the model's canvas (``AhaConfig.frame_resize``): the antialiased PIL
filter, or the reference's OpenCV INTER_LINEAR (no antialiasing), which the released weights saw."""
from __future__ import annotations

import json

import numpy as np
import pytest

from data.video import letterbox, letterbox_geometry
from tests.videos import write_test_video


def _bilinear_half_pixel(frame: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """OpenCV INTER_LINEAR's sampling, written out: source = (dst + 0.5) * scale - 0.5 (clamped to
    the image), a weighted mean of the 2x2 nearest source pixels, no antialiasing."""
    h, w = frame.shape[:2]

    def axis(n_out, n_in):
        src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, None)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    y0, y1, wy = axis(new_h, h)
    x0, x1, wx = axis(new_w, w)
    f = frame.astype(np.float64)
    top = f[y0][:, x0] * (1 - wx)[None, :, None] + f[y0][:, x1] * wx[None, :, None]
    bottom = f[y1][:, x0] * (1 - wx)[None, :, None] + f[y1][:, x1] * wx[None, :, None]
    out = top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(720, 1280), (480, 640), (100, 37), (50, 300)])
def test_reference_resize_is_half_pixel_bilinear_without_antialiasing(shape):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    size = 96
    x0, y0, new_w, new_h = letterbox_geometry(shape[1], shape[0], size)
    got = letterbox(frame, size, "reference")
    want = _bilinear_half_pixel(frame, new_w, new_h)
    inside = got[y0:y0 + new_h, x0:x0 + new_w].astype(int)
    # equal but where the exact value is a half (weights in sixths, ...): float32 and float64 (and
    # OpenCV's 11-bit fixed point) round those either way
    diff = np.abs(inside - want.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.1
    # the bars stay black, as with the antialiased filter
    mask = np.ones((size, size), bool)
    mask[y0:y0 + new_h, x0:x0 + new_w] = False
    assert not got[mask].any()


def test_the_two_filters_differ_where_antialiasing_matters():
    # one-pixel stripes shrunk 3x: the antialiased filter averages them to grey, the reference's
    # sampling (source x = 3j + 1, a whole pixel) keeps alternate stripes: full contrast (aliasing)
    frame = np.zeros((192, 192, 3), np.uint8)
    frame[:, ::2] = 255
    anti, ref = letterbox(frame, 64, "antialias"), letterbox(frame, 64, "reference")
    assert anti.std() < 20 and ref.std() > 120
    same = np.full((64, 64, 3), 77, np.uint8)  # no resampling needed: both return the frame
    assert (letterbox(same, 64, "reference") == same).all() and (letterbox(same, 64, "antialias") == same).all()
    with pytest.raises(ValueError, match="frame resize must be one of"):
        letterbox(frame, 64, "bicubic")


def test_sources_and_clips_letterbox_with_the_mode_asked(tmp_path):
    from data.sources import open_source
    from data.video import iter_sampled, load_clip

    video = write_test_video(tmp_path / "v.mp4", n_frames=20, fps=10, size=(320, 240), pattern="noisy_index")
    native = [s.image for s in iter_sampled(str(video), 2.0, None)]
    for mode in ("antialias", "reference"):
        want = np.stack([letterbox(img, 96, mode) for img in native])
        with open_source(video, fps=2.0, size=96, resize=mode) as src:
            assert (np.stack([img for _, img in src]) == want).all()
        assert (load_clip(video, 2.0, size=96, resize=mode) == want).all()
    assert (want != np.stack([letterbox(img, 96, "antialias") for img in native])).any()


def test_presets_and_checkpoints_carry_the_mode(tmp_path):
    from models.build import build_model, load_preset
    from models.checkpoint import check_preset_agrees, load_checkpoint, save_checkpoint

    # the released weights were trained on the reference's frames; the project's tiny models on PIL's
    assert load_preset("aha-7b").frame_resize == "reference" and load_preset("aha-0.5b").frame_resize == "reference"
    assert load_preset("aha-tiny").frame_resize == "antialias" and load_preset("aha-tiny-synth").frame_resize == "antialias"
    model = build_model(load_preset("aha-tiny", frame_resize="reference"), seed=0)
    save_checkpoint(model, tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["frame_resize"] == "reference"
    assert load_checkpoint(tmp_path / "ckpt").config.frame_resize == "reference"
    with pytest.raises(ValueError, match="frame_resize: preset 'antialias', checkpoint 'reference'"):
        check_preset_agrees("aha-tiny", load_checkpoint(tmp_path / "ckpt").config, "the checkpoint")
    with pytest.raises(ValueError, match="frame_resize must be"):
        load_preset("aha-tiny", frame_resize="nearest")


def test_the_engine_and_its_records_use_the_models_mode(tmp_path, monkeypatch, qwen2_tokenizer):
    import data.video as video_mod
    from models.build import build_model, load_preset
    from models.streaming import StreamingEngine
    from test.run_benchmark import stream_item
    from test.run_record import engine_record

    model = build_model(load_preset("aha-tiny", frame_resize="reference"), seed=0)
    engine = StreamingEngine(model, qwen2_tokenizer)
    assert engine.frame_resize == "reference"
    seen = []
    real = video_mod.letterbox
    monkeypatch.setattr(video_mod, "letterbox", lambda f, size, resize="antialias": seen.append(resize) or real(f, size, resize))
    video = write_test_video(tmp_path / "v.mp4", n_frames=20, fps=10, size=(128, 96))
    item = {"id": "a", "video": "v.mp4", "query": "a dog", "query_time": 0.0}
    stream_item(engine, item, video, fps=2.0)
    assert seen and set(seen) == {"reference"}

    class Args:
        fps, max_frames, degrade, features = 2.0, None, None, None

    assert engine_record(engine, Args())["frame_resize"] == "reference"
    from models.multistream import MultiStreamEngine  # the --streams engine reads its lanes' mode

    multi = MultiStreamEngine(model, qwen2_tokenizer, streams=2)
    assert multi.frame_resize == "reference" and engine_record(multi, Args())["frame_resize"] == "reference"


def test_feature_fingerprints_follow_the_mode():
    from data.feature_cache import model_fingerprint
    from models.build import build_model, load_preset

    anti = build_model(load_preset("aha-tiny"), seed=0)
    ref = build_model(load_preset("aha-tiny", frame_resize="reference"), seed=0)
    for kind in ("vision", "frame_embeds"):
        assert model_fingerprint(anti, kind) != model_fingerprint(ref, kind)  # other pixels, other features
