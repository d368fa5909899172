"""Decision exercises: a defensible choice passes however it was computed; each typical slip fails, and says why."""

from __future__ import annotations

import numpy as np
import pytest

from cbir_lab.exercises import (
    ChoiceCase,
    check_dimension_choice,
    check_effective_radius,
    check_held_out_choice,
    check_layer_choice,
    check_p_choice,
    choice_case,
    effective_radius,
    tuning_half,
)
from cbir_lab.statistics import bootstrap_interval

CHOICE_CHECKS = [check_p_choice, check_dimension_choice, check_layer_choice]


# ----- choosing a setting on held-out queries (lessons 2, 3, 5) -------------------------------------------------


def smallest_overlapping(aps_by, clusters):
    """The cheapest candidate whose interval reaches the best one's: the model answer."""
    intervals = {c: bootstrap_interval(a, clusters=clusters) for c, a in aps_by.items()}
    best = max(intervals, key=lambda c: intervals[c].estimate)
    chosen = next(c for c in intervals if intervals[c].high >= intervals[best].low)
    return chosen, (intervals[chosen].low, intervals[chosen].high)


def best_by_hand(aps_by, clusters):
    """The best candidate, its interval drawn by hand: rng.choice of whole clusters, 2,000 resamples, another seed."""
    rng = np.random.default_rng(123)
    labels = np.unique(clusters)
    best = max(aps_by, key=lambda c: np.nanmean(aps_by[c]))
    aps = aps_by[best]
    means = [np.concatenate([aps[clusters == label] for label in rng.choice(labels, labels.size)]).mean()
             for _ in range(2000)]
    low, high = np.percentile(means, [2.5, 97.5])
    return best, (low, high)


@pytest.mark.parametrize("check", CHOICE_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("rule", [smallest_overlapping, best_by_hand], ids=["smallest overlapping", "best, by hand"])
def test_a_defensible_choice_passes_however_its_interval_was_drawn(check, rule):
    result = check(rule, verbose=False)
    assert result.passed, result.message
    assert ("the intervals overlap (the held-out queries cannot tell them apart" in result.message
            if rule is smallest_overlapping else "the best on these queries" in result.message)


def _with_interval(pick):
    def rule(aps_by, clusters):
        chosen = pick(list(aps_by))
        interval = bootstrap_interval(aps_by[chosen], clusters=clusters)
        return chosen, (interval.low, interval.high)
    return rule


@pytest.mark.parametrize("check", CHOICE_CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("pick", [lambda cs: cs[0], lambda cs: cs[-1]], ids=["always the cheapest", "always the largest"])
def test_a_fixed_choice_is_ruled_out_somewhere_and_the_feedback_says_by_what(check, pick):
    result = check(_with_interval(pick), verbose=False)
    assert not result.passed and result.failures == ("ruled_out",)
    assert "do not overlap" in result.message and "rule" in result.message and "the best" in result.message


@pytest.mark.parametrize("check", CHOICE_CHECKS, ids=lambda c: c.__name__)
def test_an_interval_that_resamples_queries_instead_of_photos_is_named(check):
    def unclustered(aps_by, clusters):
        chosen, _ = smallest_overlapping(aps_by, clusters)
        interval = bootstrap_interval(aps_by[chosen])
        return chosen, (interval.low, interval.high)

    result = check(unclustered, verbose=False)
    assert result.failures == ("unclustered",) and "resample the source photos" in result.message


@pytest.mark.parametrize("check", CHOICE_CHECKS, ids=lambda c: c.__name__)
def test_the_interval_of_another_candidate_is_named(check):
    def mixed_up(aps_by, clusters):
        chosen, _ = smallest_overlapping(aps_by, clusters)
        best = max(aps_by, key=lambda c: np.nanmean(aps_by[c]))
        if best == chosen:  # make sure the interval belongs to another candidate
            best = next(c for c in aps_by if c != chosen)
        interval = bootstrap_interval(aps_by[best], clusters=clusters)
        return chosen, (interval.low, interval.high)

    result = check(mixed_up, verbose=False)
    assert result.failures == ("other_interval",) and "not of the" in result.message


def test_a_score_instead_of_a_candidate_and_a_malformed_answer_are_named():
    def returns_map(aps_by, clusters):
        _, (low, high) = smallest_overlapping(aps_by, clusters)
        return 0.7, (low, high)

    result = check_dimension_choice(returns_map, verbose=False)
    assert result.failures == ("not_a_candidate",) and "return the d itself" in result.message
    assert check_dimension_choice(lambda a, c: 64, verbose=False).failures == ("format",)

    def stub(aps_by, clusters):
        raise NotImplementedError()

    assert check_dimension_choice(stub, verbose=False).failures == ("not_implemented",)


def test_a_lesson_case_tunes_on_half_of_the_photos_and_reports_the_other_half():
    rng = np.random.default_rng(0)
    clusters = np.repeat(list("abcdefghijkl"), 2)
    aps = [np.clip(m + rng.normal(0, 0.1, 24), 0, 1) for m in (0.4, 0.7, 0.72)]
    case = choice_case("a lesson", (16, 64, 128), aps, clusters)
    assert case.aps.shape == (3, 12) and case.test_aps.shape == (3, 12)
    assert not set(case.clusters) & set(case.test_clusters)  # no photo both tunes and reports
    assert tuning_half(clusters).sum() == 12
    result = check_dimension_choice(smallest_overlapping, case, verbose=False)
    assert result.passed and "case 'a lesson'" not in result.message
    assert "On the other half of the source photos, never seen by your rule" in result.message
    # 6 photos tune: too few for the intervals to rule anything out, and the feedback says so
    assert "Only G = 6 source photos tune here, fewer than 10" in result.message


def test_the_overlap_rule_itself():
    clusters = np.repeat([f"p{i}" for i in range(10)], 2)
    low = np.full(20, 0.3) + np.tile([0.0, 0.02], 10)
    high = np.full(20, 0.8) + np.tile([0.0, 0.02], 10)
    case = ChoiceCase("two far apart", ("small", "large"), np.array([low, high]), clusters, what="layer")
    assert check_held_out_choice(_with_interval(lambda cs: cs[1]), [case], verbose=False).passed
    assert check_held_out_choice(_with_interval(lambda cs: cs[0]), [case], verbose=False).failures == ("ruled_out",)


# ----- the effective receptive field (lesson 1) ------------------------------------------------------------------


def radius_by_hand(saliency, centre, share):
    mass = np.abs(saliency)
    cy, cx = centre
    r = 0
    while mass[max(cy - r, 0):cy + r + 1, max(cx - r, 0):cx + r + 1].sum() < share * mass.sum():
        r += 1
    return r


def signed_radius(saliency, centre, share):
    cy, cx = centre
    for r in range(max(saliency.shape)):
        if abs(saliency[max(cy - r, 0):cy + r + 1, max(cx - r, 0):cx + r + 1].sum()) >= share * abs(saliency.sum()):
            return r


def peak_radius(saliency, centre, share):
    mass = np.abs(saliency)
    return int(np.abs(np.argwhere(mass >= share * mass.max()) - np.array(centre)).max())


@pytest.mark.parametrize("answer", [effective_radius, radius_by_hand, lambda s, c, share: radius_by_hand(s, c, share) + 1],
                         ids=["reference", "by hand", "one pixel more"])
def test_an_effective_radius_within_a_pixel_passes(answer):
    assert check_effective_radius(answer, verbose=False).passed


@pytest.mark.parametrize("slip, answer, says", [
    ("side", lambda s, c, share: 2 * effective_radius(s, c, share) + 1, "half-side"),
    ("signed", signed_radius, "np.abs"),
    ("peak", peak_radius, "*mass*"),
    ("format", lambda s, c, share: None, "return one number"),
])
def test_effective_radius_slips_are_named(slip, answer, says):
    result = check_effective_radius(answer, verbose=False)
    assert result.failures == (slip,) and says in result.message
