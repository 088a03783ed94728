"""data/degrade.py: the four degradations, immutable schedules, seeded schedule generation."""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from data.degrade import (
    KINDS,
    DegradationSchedule,
    Segment,
    block_noise,
    color_banding,
    degrade,
    frame_rng,
    make_schedule,
    quality,
)


def test_color_banding_hand_values():
    frame = np.repeat(np.array([0, 63, 64, 127, 128, 191, 192, 255], np.uint8)[None, :, None], 3, axis=2)
    out = color_banding(frame)
    assert out[0, :, 0].tolist() == [0, 0, 64, 64, 128, 128, 192, 192]
    assert (out[..., 1] == out[..., 0]).all() and (out[..., 2] == out[..., 0]).all()


def test_blackout_and_inputs_untouched():
    frame = np.full((10, 12, 3), 77, np.uint8)
    before = frame.copy()
    for kind in KINDS:
        out = degrade(frame, kind, seed=3, time_s=1.0)
        assert out.shape == frame.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(frame, before)
    assert (degrade(frame, "blackout") == 0).all()
    with pytest.raises(ValueError):
        degrade(frame, "sepia")
    with pytest.raises(ValueError):
        degrade(frame.astype(np.float32), "quality")


def test_quality_keeps_flat_images_and_kills_fine_detail():
    flat = np.full((90, 120, 3), 140, np.uint8)
    np.testing.assert_array_equal(quality(flat), flat)
    # a 1-pixel checkerboard averages to ~127.5 when shrunk to 64x64, then stays flat
    yy, xx = np.mgrid[:128, :128]
    checker = np.repeat((((yy + xx) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)
    out = quality(checker)
    assert checker.std() > 120
    assert out.std() < 3 and abs(out.mean() - 127.5) < 3


def test_block_noise_blocks_and_determinism():
    frame = np.full((200, 330, 3), 200, np.uint8)   # 7 x 11 blocks, the last row/column partial
    a = block_noise(frame, frame_rng(5, 12.0))
    b = degrade(frame, "block_noise", seed=5, time_s=12.0)
    np.testing.assert_array_equal(a, b)              # same (seed, time) -> same noise
    c = degrade(frame, "block_noise", seed=5, time_s=13.0)
    d = degrade(frame, "block_noise", seed=6, time_s=12.0)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)
    noisy_blocks = 0
    for y in range(0, 200, 32):
        for x in range(0, 330, 32):
            block = a[y:y + 32, x:x + 32]
            if (block == 200).all():
                continue
            assert (block < 50).all()                # a replaced block is replaced entirely
            noisy_blocks += 1
    assert 0 < noisy_blocks < 7 * 11 // 2            # p = 0.1 per block


def test_segment_and_schedule_lookup():
    sched = DegradationSchedule.from_list([[40, 44, "block_noise"], [3, 5, "blackout"]], seed=1)
    assert sched.to_list() == [[3.0, 5.0, "blackout"], [40.0, 44.0, "block_noise"]]  # sorted
    assert sched.kind_at(40.0) == "block_noise" and sched.kind_at(43.999) == "block_noise"
    assert sched.kind_at(44.0) is None and sched.kind_at(39.999) is None          # [start, end)
    assert sched.kind_at(3.0) == "blackout" and sched.kind_at(5.0) is None
    assert sched.covered_seconds() == 6.0
    with pytest.raises(ValueError):
        DegradationSchedule.from_list([[0, 5, "quality"], [4, 6, "blackout"]])
    with pytest.raises(ValueError):
        Segment(2.0, 1.0, "quality")
    with pytest.raises(ValueError):
        Segment(0.0, 1.0, "sepia")


def test_applying_a_schedule_never_consumes_it():
    # the reference popped intervals, so a video's dropout happened only on its first load
    sched = DegradationSchedule.from_list([[1, 3, "block_noise"], [5, 6, "color_banding"]], seed=9)
    snapshot = sched.to_list()
    frame = np.full((64, 96, 3), 180, np.uint8)
    first = [sched(frame, t) for t in np.arange(0, 7, 0.5)]
    second = [sched.apply(frame, t) for t in np.arange(0, 7, 0.5)]
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)
    assert sched.to_list() == snapshot
    for k, t in [(2, 1.0), (3, 1.5), (5, 2.5)]:   # inside [1, 3): block noise keyed by (9, t)
        np.testing.assert_array_equal(first[k], degrade(frame, "block_noise", seed=9, time_s=t))
    assert (first[10] == 128).all()      # t = 5.0: banding, 180 -> 128
    assert first[0] is frame             # outside every segment: the frame itself, untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        sched.segments = ()              # frozen


def test_make_schedule_is_seeded_and_leaves_global_rngs_alone():
    random.seed(123)
    np.random.seed(123)
    py_state, np_state = random.getstate(), np.random.get_state()
    a = make_schedule(600, seed=7)
    b = make_schedule(600, seed=7)
    assert a == b and a.to_list() == b.to_list()
    assert make_schedule(600, seed=8) != a
    assert random.getstate() == py_state
    np_after = np.random.get_state()
    assert np_after[0] == np_state[0] and (np_after[1] == np_state[1]).all() and np_after[2:] == np_state[2:]


@pytest.mark.parametrize("seed", range(6))
def test_make_schedule_constraints(seed):
    duration = 600.0
    sched = make_schedule(duration, seed=seed, min_frac=0.05, max_frac=0.20, seg_len=(1, 5))
    segs = sched.segments
    assert segs, "a 10-minute video gets at least one segment"
    covered = sched.covered_seconds()
    assert 0.05 * duration <= covered < 0.20 * duration + 1.0
    for s in segs:
        assert s.start == int(s.start) and s.end == int(s.end)   # integer seconds
        assert 0 <= s.start < s.end <= duration
        assert s.end - s.start <= 5
        assert s.kind in KINDS
    for x, y in zip(segs, segs[1:]):
        assert x.end <= y.start                                    # no overlap
    assert sched.seed == seed


def test_blackout_runs_are_limited():
    sched = make_schedule(300, seed=1, min_frac=0.2, max_frac=0.2, types=("blackout",), max_blackout_run_s=2)
    segs = sched.segments
    assert len(segs) >= 30
    assert all(s.end - s.start <= 2 for s in segs)
    assert all(x.end < y.start for x, y in zip(segs, segs[1:]))   # never touching: runs stay <= 2 s


def test_short_videos_and_bad_arguments():
    assert make_schedule(0.5, seed=0).segments == ()
    tiny = make_schedule(3, seed=0, min_frac=0.5, max_frac=0.5)
    assert tiny.covered_seconds() <= 3
    with pytest.raises(ValueError):
        make_schedule(10, seed=0, min_frac=0.3, max_frac=0.2)
    with pytest.raises(ValueError):
        make_schedule(10, seed=0, types=("sepia",))
