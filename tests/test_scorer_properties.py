"""Property tests (hypothesis) of the Charades, YouCook2 and MAGQA scorer invariants."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.benchmarks import charades, magqa, youcook2
from test.postprocess import causal_interval

span = st.tuples(st.floats(0, 100), st.floats(0.1, 50)).map(lambda t: (t[0], t[0] + t[1]))
FAST = settings(max_examples=60, deadline=None)


@FAST
@given(span, span)
def test_interval_iou_is_symmetric_bounded_and_one_on_itself(a, b):
    x = charades.interval_iou(a, b)
    assert 0.0 <= x <= 1.0
    assert x == pytest.approx(charades.interval_iou(b, a))
    assert charades.interval_iou(a, a) == pytest.approx(1.0)
    assert charades.interval_iou(None, a) == 0.0


@FAST
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_charades_summary_stays_in_percent_and_perfect_is_maximal(ious):
    s = charades.summarize_ious(ious)
    assert all(0.0 <= v <= 100.0 for v in s.values())
    perfect = charades.summarize_ious([1.0] * len(ious))
    assert all(perfect[k] >= s[k] for k in s) and perfect["R1@0.7"] == 100.0


@FAST
@given(st.integers(0, 30), st.integers(2, 30), st.integers(40, 80))
def test_causal_interval_recovers_a_clean_step(start, length, n):
    end = min(start + length, n)
    times = np.arange(n) / 2.0
    scores = np.zeros(n)
    scores[start:end] = 1.0
    got = causal_interval(times, scores, window=0, duration=n / 2.0)
    assert got is not None
    assert charades.interval_iou(got, (start / 2.0, end / 2.0)) == pytest.approx(1.0)
    # causality: the interval found by t only depends on frames <= t (changing later frames after the
    # step has ended cannot move it earlier)
    later = scores.copy()
    later[end:] = 0.0
    assert causal_interval(times, later, window=0, duration=n / 2.0) == got


@FAST
@given(st.lists(span, min_size=1, max_size=6))
def test_dense_caption_detection_is_perfect_on_gold_and_bounded_otherwise(gold):
    g = np.array(gold)
    p, r = youcook2.detection_scores(youcook2.iou_matrix(g, g))
    assert all(x == pytest.approx(1.0) for x in p + r)
    shifted = g + 1000.0  # far away: nothing matches
    p, r = youcook2.detection_scores(youcook2.iou_matrix(shifted, g))
    assert all(x == 0.0 for x in p + r)
    assert 0.0 <= youcook2.f1(0.3, 0.7) <= 1.0


@FAST
@given(st.lists(st.floats(0, 1), min_size=1, max_size=5), st.lists(st.floats(0, 1), min_size=1, max_size=5))
def test_soda_assignment_is_bounded_by_the_best_rows(a, b):
    s = np.outer(np.array(a), np.array(b))
    total = youcook2.ordered_assignment_score(s)
    assert 0.0 <= total <= min(len(a), len(b)) * float(s.max()) + 1e-9


@FAST
@given(st.lists(st.tuples(span, st.integers(1, 5)), min_size=1, max_size=4))
def test_magqa_in_span_score_is_within_the_rubric_and_perfect_answers_score_five(turns):
    ex = magqa.MagqaExample("q", "what?", tuple(magqa.GoldTurn(f"a{i}", s, e) for i, ((s, e), _) in enumerate(turns)))
    resp = [magqa.Response((s + e) / 2, f"a{i}") for i, ((s, e), _) in enumerate(turns)]
    judged = {(g, p): float(turns[g][1]) for g, p in magqa.in_span_pairs(ex, resp)}
    x = magqa.example_score(ex, resp, judged)
    assert 1.0 <= x <= 5.0
    perfect = {k: 5.0 for k in judged}
    assert magqa.example_score(ex, resp, perfect) == pytest.approx(5.0)
    assert magqa.example_score(ex, [], {}) == pytest.approx(1.0)  # nothing said: the floor
