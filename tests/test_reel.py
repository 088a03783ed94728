"""Highlight reel writer: cut known frames out of a synthetic video and read them back."""
import av
import numpy as np
import pytest

from test.reel import available_codec, write_highlight_reel

FPS, N_FRAMES, STEP = 10, 60, 4  # frame i is a flat grey image of brightness STEP*i


def make_source(path, pts_offset=0):
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"qp": "0"}
        s.codec_context.gop_size = 10  # key frames every second, so seeking lands mid-video
        for i in range(N_FRAMES):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), STEP * i, np.uint8), format="rgb24")
            f.pts = i + pts_offset
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_source(tmp_path_factory.mktemp("reel") / "src.mp4")


def read_back(path):
    """Frame indices (recovered from brightness), the stream's rate, size and the brightness errors."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        means = np.array([f.to_ndarray(format="gray").mean() for f in c.decode(vs)])
        rate, size = vs.average_rate, (vs.codec_context.width, vs.codec_context.height)
    idx = np.rint(means / STEP).astype(int)
    return idx, rate, size, np.abs(means - STEP * idx)


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
@pytest.mark.parametrize("seek", [True, False])
def test_reel_keeps_exactly_the_segment_frames(source, tmp_path, codec, seek):
    # (1.0, 2.0) and (1.5, 2.5) overlap -> one cut 1.0-2.5 s = frames 10..24; 4.0-4.5 s = frames 40..44
    segs = [(4.0, 4.5, 0.9), (1.0, 2.0, 0.5), (1.5, 2.5, 0.7)]
    out = tmp_path / "reel.mp4"
    info = write_highlight_reel(source, segs, out, codec=codec, seek=seek)
    expected = list(range(10, 25)) + list(range(40, 45))
    assert info.frames == len(expected) == 20
    assert info.duration_s == pytest.approx(2.0)
    assert info.fps == pytest.approx(10.0)
    assert [(g.start, g.end) for g in info.segments] == [(1.0, 2.5), (4.0, 4.5)]
    idx, rate, size, err = read_back(out)
    assert list(idx) == expected
    assert err.max() < 1.5  # each frame really is the expected one, not a neighbour
    assert rate == FPS and size == (64, 48)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reel.mp4"]  # no temporary left


def test_reel_clips_downscales_and_rejects_empty(source, tmp_path):
    # a segment running past the end keeps the frames that exist (5.5-6.0 s = frames 55..59)
    info = write_highlight_reel(source, [(5.5, 99.0)], tmp_path / "tail.mp4", max_side=32)
    idx, _, size, _ = read_back(tmp_path / "tail.mp4")
    assert list(idx) == [55, 56, 57, 58, 59] and info.frames == 5
    assert size == (32, 24)
    with pytest.raises(ValueError):
        write_highlight_reel(source, [], tmp_path / "none.mp4")
    with pytest.raises(ValueError):
        write_highlight_reel(source, [(10.0, 12.0)], tmp_path / "after.mp4")  # past the end
    assert not (tmp_path / "after.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tail.mp4"]


@pytest.mark.parametrize("seek", [True, False])
def test_segment_times_count_from_the_first_frame(tmp_path, seek):
    # the stream starts at 2.5 s (pts offset 25 at 10 fps); segment times are relative to frame 0
    src = make_source(tmp_path / "late.mp4", pts_offset=25)
    write_highlight_reel(src, [(1.0, 1.5)], tmp_path / "r.mp4", seek=seek)
    idx, *_ = read_back(tmp_path / "r.mp4")
    assert list(idx) == [10, 11, 12, 13, 14]


def test_available_codec():
    assert available_codec(["no-such-codec", "mpeg4"]) == "mpeg4"
    with pytest.raises(ValueError):
        available_codec(["no-such-codec"])
