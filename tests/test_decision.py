"""Decision rules on scripted score sequences."""
import pytest

from models.decision import DecisionConfig, DecisionRule


def run(rule, scores, unc=None, fps=1.0):
    fired = []
    for t, s in enumerate(scores):
        heads = {"informative": s, "relevance": 0.0, "uncertainty": 0.0 if unc is None else unc[t]}
        if rule.update(t / fps, heads):
            fired.append(t)
    return fired


def test_per_frame_threshold_on_selected_heads():
    rule = DecisionRule(DecisionConfig(score_heads="informative", threshold=0.5))
    assert run(rule, [0.1, 0.6, 0.5, 0.9, 0.2]) == [1, 3]
    both = DecisionRule(DecisionConfig(score_heads="informative,relevance", threshold=1.0))
    assert both.update(0, {"informative": 0.6, "relevance": 0.5, "uncertainty": 0}) is True
    assert both.update(1, {"informative": 0.6, "relevance": 0.3, "uncertainty": 0}) is False


def test_cumulative_threshold_resets_after_firing():
    rule = DecisionRule(DecisionConfig(score_heads="informative", cumulative_threshold=1.0))
    # sums: .4 .8 1.2(fire, reset) .4 .8 1.2(fire)
    assert run(rule, [0.4] * 6) == [2, 5]


def test_minimum_interval_keeps_the_response_due():
    rule = DecisionRule(DecisionConfig(score_heads="informative", threshold=0.5, min_interval_s=3.0))
    # due at 0 (fires), 1 and 2 blocked, 3 allowed again; at 5 due, blocked until 6
    assert run(rule, [0.9, 0.9, 0.9, 0.9, 0.1, 0.9, 0.1, 0.1]) == [0, 3, 6]


def test_uncertainty_gate_postpones_at_most_k_frames():
    cfg = DecisionConfig(score_heads="informative", threshold=0.5, uncertainty_gate=0.5, max_wait_frames=2)
    rule = DecisionRule(cfg)
    # due at 0 with high uncertainty: waits frames 0, 1, fires at 2 regardless
    assert run(rule, [0.9, 0.1, 0.1, 0.1], unc=[1.0, 1.0, 1.0, 1.0]) == [2]
    rule.reset()
    # uncertainty drops at frame 1: fires there
    assert run(rule, [0.9, 0.1, 0.1], unc=[1.0, 0.0, 1.0]) == [1]
    rule.reset()
    # the gate reads the clamped log-variance: a raw -10 is -4, below the gate
    assert run(rule, [0.9], unc=[-10.0]) == [0]


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError):
        DecisionConfig(score_heads="loudness")
    assert not DecisionConfig().enabled


def run_rel(rule, informative, relevance):
    return [t for t, (s, r) in enumerate(zip(informative, relevance))
            if rule.update(float(t), {"informative": s, "relevance": r, "uncertainty": 0.0})]


def test_relevance_gate_reads_the_trailing_mean_of_the_relevance():
    cfg = DecisionConfig(score_heads="informative", threshold=0.5, relevance_gate=0.5, relevance_gate_frames=3)
    rule = DecisionRule(cfg)
    # an event that matches (relevance high for 3 frames) ends at 3; one that does not ends at 7,
    # with a one-frame relevance spike on its last frame (mean of the last 3: 0.3 < 0.5): only 3 speaks
    informative = [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    relevance = [0.0, 0.9, 0.9, 0.8, 0.0, 0.0, 0.0, 0.9]
    assert run_rel(rule, informative, relevance) == [3]
    # no gate: both events are answered (the informative head does not read the query)
    assert run_rel(DecisionRule(DecisionConfig(score_heads="informative", threshold=0.5)), informative, relevance) == [3, 7]
    # a one-frame window is the frame's own relevance: the spike opens it
    one = DecisionRule(DecisionConfig(score_heads="informative", threshold=0.5, relevance_gate=0.5, relevance_gate_frames=1))
    assert run_rel(one, informative, relevance) == [3, 7]
    # the window starts empty after reset (the mean is over the frames seen so far)
    rule.reset()
    assert run_rel(rule, [1.0], [0.6]) == [0]


def test_relevance_gate_drops_a_due_response_and_keeps_the_cumulative_sum_still():
    # due at 0 but the minimum interval holds it; the gate closes at 1: dropped, never fires
    rule = DecisionRule(DecisionConfig(score_heads="informative", threshold=0.5, min_interval_s=5.0,
                                       relevance_gate=0.5, relevance_gate_frames=1))
    rule.last_fire_time = -1.0
    assert run_rel(rule, [0.9, 0.0, 0.0], [0.9, 0.0, 0.9]) == []
    # cumulative: frames with the gate closed add nothing
    cum = DecisionRule(DecisionConfig(score_heads="informative", cumulative_threshold=1.0, relevance_gate=0.5,
                                      relevance_gate_frames=1))
    assert run_rel(cum, [0.6, 0.6, 0.6, 0.6], [0.9, 0.0, 0.0, 0.9]) == [3]


@pytest.mark.parametrize("bad", [{"relevance_gate": float("nan")}, {"relevance_gate_frames": 0},
                                 {"relevance_gate_frames": 2.5}, {"relevance_gate_frames": True}])
def test_bad_relevance_gate_is_rejected(bad):
    with pytest.raises(ValueError):
        DecisionConfig(score_heads="informative", threshold=0.5, **bad)


def test_non_finite_heads_and_thresholds_are_refused():
    """A NaN informative score used to poison the cumulative sum (no response ever again), and a NaN
    uncertainty passed the uncertainty gate (NaN > gate is False)."""
    rule = DecisionRule(DecisionConfig(score_heads="informative", cumulative_threshold=1.0))
    assert run(rule, [0.6]) == []
    with pytest.raises(ValueError, match="non-finite"):
        rule.update(1.0, {"informative": float("nan"), "relevance": 0.0, "uncertainty": 0.0})
    gated = DecisionRule(DecisionConfig(score_heads="informative", threshold=0.5, uncertainty_gate=0.0))
    with pytest.raises(ValueError, match="non-finite"):
        gated.update(0.0, {"informative": 0.9, "relevance": 0.0, "uncertainty": float("nan")})
    # a head the rule does not read may be anything
    assert DecisionRule(DecisionConfig(score_heads="informative", threshold=0.5)).update(
        0.0, {"informative": 0.9, "relevance": 0.0, "uncertainty": float("nan")}) is True
    for bad in ({"threshold": float("nan")}, {"cumulative_threshold": float("inf")}, {"min_interval_s": -1.0},
                {"threshold": 0.5, "uncertainty_gate": float("nan")}):
        with pytest.raises(ValueError):
            DecisionConfig(score_heads="informative", **bad)
