"""Post-processor: fusion, smoothing (offline and causal), peaks, segments, reel selection, plots."""
import numpy as np
import pytest
from scipy.signal import peak_widths, savgol_filter

from test.postprocess import (
    CausalSmoother,
    FusionParams,
    OnlinePeakDetector,
    Segment,
    causal_smooth,
    distance_frames,
    effective_window,
    find_highlights,
    fuse,
    fuse_prediction,
    grow_segments,
    highlight_segments,
    merge_segments,
    parse_height,
    plot_scores,
    score_figure,
    resolve_height,
    select_reel_segments,
    smooth,
)
from test.predictions import StreamPrediction


def bumps(n, centres_heights, sigma=3.0, start=0.0, fps=1.0):
    t = start + np.arange(n) / fps
    x = np.zeros(n)
    for c, h in centres_heights:
        x += h * np.exp(-0.5 * ((t - c) / sigma) ** 2)
    return t, x


# ------------------------------------------------------------------------------- fusion


def test_fuse_prediction_hand_computed():
    # i=0.5, r=0.2, raw logvar 0 -> variance u=1 >= tau=0.4: 1*0.5 + 2*0.2 - 0.5*(1-0.4) = 0.6
    # second frame: raw logvar log(0.1) -> u=0.1 < tau: no penalty -> 0.1 + 2*0.3 = 0.7
    pred = StreamPrediction(id="a", time=np.array([0.0, 1.0]), informative=np.array([0.5, 0.1]),
                            relevance=np.array([0.2, 0.3]), uncertainty=np.array([0.0, np.log(0.1)]))
    p = FusionParams(alpha=1.0, beta=2.0, epsilon=0.5, tau=0.4, uncertainty_kind="variance")
    np.testing.assert_allclose(fuse_prediction(pred, p), [0.6, 0.7])
    np.testing.assert_allclose(fuse_prediction(pred, p), fuse(pred.informative, pred.relevance, pred.uncertainty, p))


# ---------------------------------------------------------------------------- smoothing


def test_effective_window_rules():
    assert effective_window(100) == 15
    assert effective_window(10) == 9  # capped at the largest odd number <= n
    assert effective_window(16, 16) == 15  # even windows drop to odd
    assert effective_window(5, 15, 3) == 5
    assert effective_window(4, 15, 3) is None  # 3 is not > polyorder 3
    with pytest.raises(ValueError):
        effective_window(10, 0)


def test_smooth_preserves_cubics_and_handles_short_series():
    t = np.arange(30.0)
    cubic = 0.01 * t ** 3 - 0.2 * t ** 2 + t - 4  # Savitzky-Golay (order 3) reproduces cubics exactly
    np.testing.assert_allclose(smooth(cubic), cubic, atol=1e-8)
    x = np.random.default_rng(0).normal(size=10)
    np.testing.assert_allclose(smooth(x), savgol_filter(x, 9, 3))
    short = np.array([1.0, 5.0, 2.0, 7.0])
    out = smooth(short)
    np.testing.assert_array_equal(out, short)
    out[0] = 99.0
    assert short[0] == 1.0  # a copy, not the caller's array
    assert len(smooth([])) == 0
    with pytest.raises(ValueError):
        smooth([1.0, np.nan, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError):
        smooth(np.zeros((3, 3)))


def test_causal_smooth_hand_values():
    # line through (0,0),(1,0),(2,3): slope 1.5, mean (1,1) -> value at x=2 is 2.5
    assert causal_smooth([0.0, 0.0, 3.0], window=3, polyorder=1)[-1] == pytest.approx(2.5)
    # warm-up: with one or two samples a line interpolates them exactly
    np.testing.assert_allclose(causal_smooth([0.0, 0.0, 3.0], window=3, polyorder=1)[:2], [0.0, 0.0], atol=1e-12)
    # EMA with span 3 -> alpha 0.5: 2, 0.5*4+0.5*2=3, 0.5*0+0.5*3=1.5
    np.testing.assert_allclose(causal_smooth([2.0, 4.0, 0.0], window=3, method="ema"), [2.0, 3.0, 1.5])
    quad = 0.05 * np.arange(40.0) ** 2 - np.arange(40.0)
    np.testing.assert_allclose(causal_smooth(quad, 15, 2), quad, atol=1e-8)  # exact for degree <= polyorder
    with pytest.raises(ValueError):
        causal_smooth([1.0, 2.0], method="median")


@pytest.mark.parametrize("method", ["savgol", "ema"])
def test_causal_output_ignores_the_future(method):
    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    for k in (0, 5, 14, 30, 58):
        changed = x.copy()
        changed[k + 1:] = rng.normal(size=len(x) - k - 1) * 10
        np.testing.assert_array_equal(causal_smooth(x, method=method)[: k + 1],
                                      causal_smooth(changed, method=method)[: k + 1])
    # while the offline filter does look ahead
    changed = x.copy()
    changed[31:] += 5
    assert not np.allclose(smooth(x)[:31], smooth(changed)[:31])


@pytest.mark.parametrize("method", ["savgol", "ema"])
def test_incremental_smoother_matches_batch(method):
    x = np.random.default_rng(2).normal(size=50)
    sm = CausalSmoother(window=15, polyorder=2, method=method)
    np.testing.assert_allclose([sm.push(v) for v in x], causal_smooth(x, 15, 2, method=method), atol=1e-12)


# -------------------------------------------------------------------------------- peaks


def test_height_spec_parsing():
    assert parse_height("mean+0.5std") == ("std", 0.5)
    assert parse_height(" mean - 1 * std ") == ("std", -1.0)
    assert parse_height("mean") == ("std", 0.0)
    assert parse_height(0.3) == ("abs", 0.3)
    assert parse_height(None) is None
    for bad in ("median", "mean+std2", True):
        with pytest.raises(ValueError):
            parse_height(bad)
    s = np.array([1.0, 3.0])  # mean 2, population std 1
    assert resolve_height("mean+0.5std", s) == pytest.approx(2.5)
    assert resolve_height("mean-2std", s) == pytest.approx(0.0)


def test_distance_frames():
    assert distance_frames(10.0, 1.0) == 10
    assert distance_frames(10.0, 2.0) == 20
    assert distance_frames(10.0, 0.5) == 5
    assert distance_frames(0.1, 1.0) == 1  # find_peaks needs >= 1


def near(found, expected, tol=1):
    """Same number of peaks, each within ``tol`` of the expected position (smoothing may shift by one)."""
    found = np.asarray(found, dtype=float)
    return len(found) == len(expected) and bool(np.all(np.abs(found - np.asarray(expected, float)) <= tol))


def tents(n, centres_heights, half_width=2.0, start=0.0):
    """Triangular bumps: exact peaks with no smoothing artefacts, for hand-checked peak picking."""
    t = start + np.arange(n, dtype=float)
    x = np.zeros(n)
    for c, h in centres_heights:
        x = np.maximum(x, h * np.clip(1 - np.abs(t - c) / half_width, 0, None))
    return t, x


def test_find_highlights_height_distance_prominence():
    # already-smoothed tents at 130 (1.0), 136 (0.8, within 10 s of the higher one), 180 (0.9),
    # 250 (0.05, tiny); mean = (1+0.8+0.9+0.05)*2/200 = 0.0275, well under the big peaks
    t, x = tents(200, [(130, 1.0), (136, 0.8), (180, 0.9), (250, 0.05)], start=100.0)
    hl = find_highlights(t, x, fps=1.0, smoothed=True)
    np.testing.assert_array_equal(hl.times, [130.0, 180.0])  # times, not index/fps (starts at 100 s)
    np.testing.assert_array_equal(hl.indices, [30, 80])
    np.testing.assert_array_equal(hl.heights, [1.0, 0.9])
    assert hl.height_threshold == pytest.approx(x.mean() + 0.5 * x.std())
    # without a height threshold the tiny tent counts (prominence 0.05 >= 0.02); 136 still loses to 130
    np.testing.assert_array_equal(find_highlights(t, x, 1.0, height=None, smoothed=True).indices, [30, 80, 150])
    np.testing.assert_allclose(find_highlights(t, x, 1.0, height=None, smoothed=True).prominences,
                               [1.0, 0.9, 0.05])
    np.testing.assert_array_equal(
        find_highlights(t, x, 1.0, height=None, prominence=0.1, smoothed=True).indices, [30, 80])
    np.testing.assert_array_equal(find_highlights(t, x, 1.0, height=0.95, smoothed=True).indices, [30])
    # a 5 s distance lets the 136 tent through; at 2 fps the same 10 s is 20 frames
    np.testing.assert_array_equal(find_highlights(t, x, 1.0, distance_s=5.0, smoothed=True).indices, [30, 36, 80])
    np.testing.assert_array_equal(find_highlights(t / 2, x, 2.0, distance_s=5.0, smoothed=True).indices, [30, 80])
    # fps inferred from the times
    assert find_highlights(t, x, smoothed=True).fps == pytest.approx(1.0)


def test_find_highlights_smooths_with_savgol_15_3():
    rng = np.random.default_rng(4)
    t, x = bumps(200, [(50, 1.0), (130, 0.8)], sigma=5.0)
    noisy = x + 0.05 * rng.normal(size=len(x))
    hl = find_highlights(t, noisy, 1.0)
    np.testing.assert_allclose(hl.smoothed, savgol_filter(noisy, 15, 3))
    assert abs(hl.indices - np.array([50, 130])).max() <= 2


def test_find_highlights_degenerate_inputs():
    assert len(find_highlights(np.arange(50.0), np.ones(50), 1.0).indices) == 0  # flat: no peak
    assert len(find_highlights([0.0, 1.0], [0.0, 1.0], 1.0).indices) == 0
    with pytest.raises(ValueError):
        find_highlights(np.arange(5.0), np.ones(4), 1.0)
    with pytest.raises(ValueError):
        find_highlights(np.arange(5.0), np.ones(5), 0.0)


# ----------------------------------------------------------------------------- segments


def test_grow_segments_hand_computed():
    s = np.array([0, 1, 3, 5, 4, 2, 1, 0, 0], dtype=float)
    t = np.arange(len(s), dtype=float)
    # level 5 - 0.5*5 = 2.5 -> frames 2..4 -> [2, 4+1)
    assert grow_segments(t, s, [3], [5.0], fps=1.0) == [Segment(2.0, 5.0, 5.0)]
    assert grow_segments(t, s, [3], [5.0], fps=1.0, floor=3.5) == [(3.0, 5.0, 5.0)]
    assert grow_segments(t, s, [3], None, fps=1.0, floor=0.5) == [(1.0, 7.0, 5.0)]
    # max 2 frames out of 2..4 (3, 5, 4): the weaker end (frame 2, score 3) goes
    assert grow_segments(t, s, [3], [5.0], fps=1.0, max_len_s=2.0) == [(3.0, 5.0, 5.0)]
    assert grow_segments(t, s, [3], [5.0], fps=1.0, max_len_s=1.0) == [(3.0, 4.0, 5.0)]
    assert grow_segments(t, s, [3], [5.0], fps=1.0, floor=3.5, duration=4.5) == [(3.0, 4.5, 5.0)]
    # 2 fps: frames last 0.5 s
    assert grow_segments(t / 2, s, [3], [5.0], fps=2.0) == [(1.0, 2.5, 5.0)]
    with pytest.raises(ValueError):
        grow_segments(t, s, [3], None)
    with pytest.raises(ValueError):
        grow_segments(t, s, [20], [1.0])


def test_grow_segments_agrees_with_peak_widths():
    t, x = bumps(120, [(30, 1.0), (80, 0.6)], sigma=4.0)
    hl = find_highlights(t, x, 1.0, height=None)
    segs = grow_segments(t, hl.smoothed, hl.indices, hl.prominences, 1.0, rel_height=0.5, max_len_s=None)
    _, _, left, right = peak_widths(hl.smoothed, hl.indices, rel_height=0.5)
    for g, lo, hi in zip(segs, left, right):
        assert g.start == np.ceil(lo)
        assert g.end == np.floor(hi) + 1.0


def test_merge_and_highlight_segments():
    merged = merge_segments([(5, 6, 0.5), (0, 2, 1.0), (1, 3, 2.0), (3, 4, 0.1)])
    assert merged == [(0.0, 4.0, 2.0), (5.0, 6.0, 0.5)]
    assert merge_segments([(0, 2, 1.0), (2.5, 3, 1.0)], gap_s=1.0) == [(0.0, 3.0, 1.0)]
    with pytest.raises(ValueError):
        merge_segments([(3, 1, 0.0)])
    t, x = bumps(200, [(40, 1.0), (120, 0.8)], sigma=3.0)
    segs = highlight_segments(t, x, 1.0, duration=200.0)
    assert len(segs) == 2
    assert segs[0].start < 40 < segs[0].end and segs[1].start < 120 < segs[1].end
    assert all(g.duration <= 30.0 for g in segs)


def test_select_reel_segments_budget():
    segs = [(0, 5, 0.9), (10, 20, 0.8), (30, 33, 0.7), (40, 42, 0.95)]
    # by score: 40-42 (2 s), 0-5 (7 s), 10-20 does not fit (17 > 10), 30-33 fills to 10 s
    assert select_reel_segments(segs, 10.0) == [(0.0, 5.0, 0.9), (30.0, 33.0, 0.7), (40.0, 42.0, 0.95)]
    assert select_reel_segments(segs, 0.0) == []
    # nothing fits: the best segment, cut to the budget around its centre
    assert select_reel_segments([(10.0, 24.5, 0.8), (30.0, 50.0, 0.6)], 12.0) == [(11.25, 23.25, 0.8)]
    assert select_reel_segments(segs, 100.0) == [Segment(*map(float, g)) for g in segs[:3]] + [(40.0, 42.0, 0.95)]
    with pytest.raises(ValueError):
        select_reel_segments(segs, -1.0)


# ------------------------------------------------------------------------- online peaks


def run_online(x, fps=1.0, **kw):
    det = OnlinePeakDetector(fps, **kw)
    steps = [det.push(v) for v in x]
    return det, steps


def test_online_peaks_confirmed_after_the_documented_delay():
    t, x = bumps(200, [(50, 1.0), (130, 0.8)], sigma=4.0)
    det, steps = run_online(x, confirm_delay_s=3.0)
    offline = find_highlights(t, x, 1.0).indices
    assert len(det.peaks) == len(offline) == 2
    for p, q in zip(det.peaks, offline):
        assert p.confirmed_index - p.index == 3
        assert abs(p.index - q) <= 2
        assert steps[p.confirmed_index].peak is p
    det2, _ = run_online(np.repeat(x, 2), fps=2.0, confirm_delay_s=3.0)
    assert all(p.confirmed_index - p.index == 6 for p in det2.peaks) and len(det2.peaks) == 2


def test_online_detector_is_causal():
    rng = np.random.default_rng(3)
    _, x = bumps(150, [(40, 1.0), (100, 0.7)], sigma=4.0)
    x = x + 0.01 * rng.normal(size=len(x))
    k = 70
    changed = x.copy()
    changed[k:] = rng.uniform(0, 2, size=len(x) - k)
    _, a = run_online(x)
    _, b = run_online(changed)
    for sa, sb in zip(a[:k], b[:k]):
        assert sa.smoothed == sb.smoothed and sa.peak == sb.peak


def test_online_distance_keeps_the_earlier_peak_and_warmup():
    # 0.7 at 40 then 1.0 at 46: offline keeps the higher one; online already announced the first
    _, x = bumps(100, [(40, 0.7), (46, 1.0)], sigma=1.5)
    det, _ = run_online(x, window=5, confirm_delay_s=2.0)
    assert [p.index for p in det.peaks] == [40]
    assert list(find_highlights(np.arange(100.0), x, 1.0, window=5).indices) == [46]
    # warm-up: no peak before frame polyorder + 1 (3 with the causal order 2); an event in a stream's
    # first seconds is announced (until session 13 the warm-up was window - 1 = 14 frames: 7 s at 2 fps)
    _, early = bumps(60, [(5, 1.0), (40, 1.0)], sigma=1.5)
    det, _ = run_online(early, window=15)
    assert det.warmup == 3
    assert near([p.index for p in det.peaks], [5, 40], tol=1)
    det, _ = run_online(early, window=15, warmup=14)  # the old rule, by flag
    assert near([p.index for p in det.peaks], [40], tol=2)
    _, first = bumps(60, [(1, 1.0), (40, 1.0)], sigma=1.0)  # inside the warm-up: never reported
    det, _ = run_online(first, window=15)
    assert near([p.index for p in det.peaks], [40], tol=2)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            OnlinePeakDetector(1.0, warmup=bad)


def test_online_finish_judges_the_tail():
    _, x = bumps(60, [(57, 1.0)], sigma=1.5)
    det, _ = run_online(x, window=5, confirm_delay_s=5.0)
    assert det.peaks == []  # not enough frames after it yet
    tail = det.finish()
    assert [p.index for p in tail] == [57]


# -------------------------------------------------------------------------------- plots


def test_score_figure_legend_names_every_curve_marker_and_shaded_span_set():
    t, x = bumps(60, [(30, 1.0)], sigma=3.0)
    fig = score_figure(t, {"fused": x, "relevance": x / 2}, peaks={"fused": [30.0]},
                       gt_spans={"matching events": [(25, 35), (40, 45)], "distractor events": [(5, 10)]},
                       gt_curve=x / 3, segments=[(27, 33, 1.0), (41, 44, 0.5)], peak_label="offline peaks",
                       segment_label="highlight segments")
    ax = fig.axes[0]
    labels = [txt.get_text() for txt in ax.get_legend().get_texts()]
    # every shaded set once (not once per span), every curve, the peaks, the twin axis's curve
    assert sorted(labels) == sorted(["matching events", "distractor events", "highlight segments", "fused",
                                     "relevance", "fused offline peaks", "ground truth (right axis)"])
    shaded = [p for p in ax.patches]
    assert len(shaded) == 5  # 3 event spans + 2 segments, drawn although labelled once per set
    # labelled instants (online highlights, responses) on the first series; an empty set is not named
    fig = score_figure(t, {"fused": x}, markers={"online highlights": [30.0], "responses": [31.0, 40.0], "none": []})
    ax = fig.axes[0]
    assert [txt.get_text() for txt in ax.get_legend().get_texts()] == ["fused", "online highlights", "responses"]
    drawn = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(drawn["responses"].get_xdata()) == [31.0, 40.0]
    assert drawn["online highlights"].get_ydata()[0] == pytest.approx(x[30])
    with pytest.raises(ValueError, match="marker sets"):
        score_figure(t, {"fused": x}, markers={str(i): [1.0] for i in range(5)})
    # a plain list of spans is one set under gt_label
    fig = score_figure(t, {"fused": x}, gt_spans=[(25, 35)], gt_label="query spans")
    assert [txt.get_text() for txt in fig.axes[0].get_legend().get_texts()] == ["query spans", "fused"]


def test_plot_scores_writes_png(tmp_path):
    t, x = bumps(100, [(30, 1.0)], sigma=3.0)
    hl = find_highlights(t, x, 1.0)
    out = plot_scores(tmp_path / "sub" / "p.png", t, {"fused": x, "smoothed": hl.smoothed},
                      peaks={"smoothed": hl.times}, gt_spans=[(25, 35)], gt_curve=x / 2,
                      segments=[(27, 33, 1.0)], title="demo")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind
    with pytest.raises(ValueError):
        plot_scores(tmp_path / "q.png", t, {"fused": x}, peaks={"other": [1.0]})
    with pytest.raises(ValueError):
        plot_scores(tmp_path / "q.png", t, {"fused": x[:-1]})


def test_running_minmax_flat_tolerance_is_causal():
    """The zero-range tolerance was scaled by max |score| of the *whole* series: a huge later score
    turned a small but real early contrast into "flat" (0), so frame t depended on future frames."""
    from test.postprocess import causal_normalised, running_minmax

    early = np.array([0.0, 5e-9, 2e-9])
    later = np.concatenate([early, [1e3]])
    for anchor in (0.0, None):
        np.testing.assert_array_equal(running_minmax(later, anchor)[:3], running_minmax(early, anchor))
    np.testing.assert_array_equal(running_minmax(later)[:3], [0.0, 1.0, 0.4])
    np.testing.assert_array_equal(causal_normalised(later, 0)[:3], causal_normalised(early, 0))


@pytest.mark.parametrize("times", [[0.0, 2.0, 1.0, 3.0], [0.0, 1.0, 1.0, 2.0], [0.0, 1.0, float("nan"), 3.0]])
def test_unsorted_or_repeated_times_are_refused(times):
    """Spans are read off times[lo] .. times[hi]: unsorted or repeated times used to give a silently
    wrong interval ([0, 2] for frames at 0, 2, 1 all on) or a confusing error later on."""
    from test.postprocess import causal_interval, frame_step, online_segments

    scores = [1.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="increasing|NaN"):
        causal_interval(times, scores, step=1.0)
    with pytest.raises(ValueError, match="increasing|NaN"):
        find_highlights(times, scores, fps=1.0)
    with pytest.raises(ValueError, match="increasing|NaN"):
        grow_segments(times, scores, [1], floor=0.5, fps=1.0)
    with pytest.raises(ValueError, match="increasing|NaN"):
        online_segments(times, scores, fps=1.0)
    with pytest.raises(ValueError, match="increasing|NaN"):
        frame_step(times)
    det = OnlinePeakDetector(1.0)
    with pytest.raises(ValueError, match="finite and after"):
        for s, t in zip(scores, times):
            det.push(s, t)
    with pytest.raises(ValueError, match="fps"):
        frame_step([0.0, 1.0], float("nan"))


def test_segments_past_the_video_end_are_clipped_or_left_out():
    """Frame times may run a little past ``duration``: a segment there used to come out reversed
    (start > end; online_segments / merge_segments then raised) or with zero length."""
    from test.postprocess import online_segments

    t = np.arange(13.0)
    y = np.r_[np.zeros(10), 1.0, 5.0, 0.0]
    assert grow_segments(t, y, [11], floor=2.0, fps=1.0, duration=10.5) == []
    assert grow_segments(t, y, [11], floor=0.5, fps=1.0, duration=10.5) == [Segment(10.0, 10.5, 5.0)]
    segs = online_segments(t, y, fps=1.0, window=3, polyorder=1, distance_s=1, confirm_delay_s=1, duration=10.5)
    assert all(g.start < g.end <= 10.5 for g in segs)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_fuse_refuses_non_finite_heads(bad):
    """A NaN uncertainty compared False against tau and added no penalty: a finite, wrong fused score."""
    with pytest.raises(ValueError, match="not finite"):
        fuse([0.5, 0.5], [0.5, 0.5], [0.0, bad])
    with pytest.raises(ValueError, match="not finite"):
        fuse([0.5, bad], [0.5, 0.5], [0.0, 0.0])
    # epsilon 0: the uncertainty is not part of the fusion
    np.testing.assert_allclose(fuse([0.5, 0.5], [0.5, 0.5], [0.0, bad], FusionParams(epsilon=0.0)), [0.85, 0.85])
