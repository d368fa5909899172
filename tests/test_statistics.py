"""The bootstrap intervals of cbir_lab.statistics, worked by hand or against a direct resampling."""

import numpy as np
import pytest

from cbir_lab.statistics import MIN_CLUSTERS, _resample_means, bootstrap_interval, cluster_means, paired_bootstrap


# ----- bootstrap intervals ------------------------------------------------------------------------

def test_paired_bootstrap_of_a_constant_gain_is_that_gain():
    interval = paired_bootstrap([0.9, 0.6, 0.3], [0.8, 0.5, 0.2])
    assert interval.estimate == pytest.approx(0.1)
    assert interval.low == pytest.approx(0.1) and interval.high == pytest.approx(0.1)
    assert interval.excludes_zero and interval.n_queries == 3


def test_paired_bootstrap_of_opposite_wins_contains_zero():
    # a wins query 0 by 1, b wins query 1 by 1: mean difference 0; resamples give -1, 0 or +1
    interval = paired_bootstrap([1.0, 0.0], [0.0, 1.0], n_resamples=2000)
    assert interval.estimate == 0.0
    assert interval.low == -1.0 and interval.high == 1.0 and not interval.excludes_zero


def test_paired_bootstrap_matches_a_direct_resampling():
    rng = np.random.default_rng(5)
    a, b = rng.random(25), rng.random(25)
    interval = paired_bootstrap(a, b, n_resamples=4000, seed=3)
    # the same draws written out directly: resample query indices, difference of the two means
    picks = np.random.default_rng(3).integers(0, 25, size=(4000, 25))
    diffs = a[picks].mean(axis=1) - b[picks].mean(axis=1)
    assert interval.low == pytest.approx(np.percentile(diffs, 2.5))
    assert interval.high == pytest.approx(np.percentile(diffs, 97.5))
    # paired is narrower than the two intervals taken separately when the methods move together
    together = paired_bootstrap(a + 0.05, a)
    assert together.high - together.low == pytest.approx(0.0, abs=1e-12)


def test_bootstrap_interval_skips_queries_without_positives():
    interval = bootstrap_interval([1.0, np.nan, 0.0], n_resamples=1000)
    assert interval.estimate == 0.5 and interval.n_queries == 2
    assert interval.low == 0.0 and interval.high == 1.0


@pytest.mark.parametrize("a, b, message", [([1.0], [1.0, 0.5], "same queries"), ([np.nan, 1.0], [0.5, 1.0], "leave out"),
                                            ([np.nan], [np.nan], "no query")])
def test_paired_bootstrap_rejects_mismatched_inputs(a, b, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(a, b)


# ----- the cluster bootstrap --------------------------------------------------------------------------------------

def test_two_clusters_of_identical_queries_give_the_interval_of_two_queries_not_of_2n():
    clustered = bootstrap_interval([1.0] * 5 + [0.0] * 5, clusters=["a"] * 5 + ["b"] * 5, unit="photos")
    two = bootstrap_interval([1.0, 0.0])
    ten = bootstrap_interval([1.0] * 5 + [0.0] * 5)
    assert (clustered.low, clustered.high) == (two.low, two.high) == (0.0, 1.0)
    assert ten.high - ten.low < 0.7  # resampling the 10 queries as if independent: far narrower
    assert (clustered.n_clusters, clustered.n_queries, clustered.resampled) == (2, 10, "G = 2 photos")
    assert clustered.too_few_clusters and MIN_CLUSTERS == 10


def test_a_resample_of_clusters_averages_over_the_queries_it_draws():
    # clusters a = {1, 1} and b = {0}: a draw (a, a) gives 1, (a, b) or (b, a) gives 2/3, (b, b) gives 0
    interval = bootstrap_interval([1.0, 1.0, 0.0], clusters=["a", "a", "b"], n_resamples=20_000)
    assert interval.estimate == pytest.approx(2 / 3)
    assert (interval.low, interval.high) == (0.0, 1.0)
    means = _resample_means(np.array([1.0, 1.0, 0.0]), 20_000, 0, np.array([0, 0, 1]))
    assert set(np.round(means, 6)) == {0.0, round(2 / 3, 6), 1.0}
    assert np.mean(np.isclose(means, 2 / 3)) == pytest.approx(0.5, abs=0.02)


def test_singleton_clusters_are_the_query_bootstrap_exactly_and_nan_queries_leave_their_cluster():
    aps = [0.9, 0.2, 0.5, float("nan"), 0.7]
    clustered = bootstrap_interval(aps, clusters=list("abcde"))
    plain = bootstrap_interval(aps)
    assert (clustered.low, clustered.high, clustered.estimate) == (plain.low, plain.high, plain.estimate)
    assert clustered.n_clusters == 4  # cluster d had only the query without positives


def test_paired_cluster_bootstrap_and_its_errors():
    a, b = [1.0, 1.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]
    interval = paired_bootstrap(a, b, clusters=["x", "x", "y", "y"], unit="landmarks")
    assert interval.estimate == 0.5 and (interval.low, interval.high) == (0.0, 1.0)
    assert interval.resampled == "G = 2 landmarks"
    with pytest.raises(ValueError, match="one label per query"):
        paired_bootstrap(a, b, clusters=["x", "y"])


def test_cluster_means_by_hand():
    assert cluster_means([1.0, 0.5, 0.0, 0.25], ["louvre", "louvre", "eiffel", "eiffel"]) == {
        "eiffel": (0.125, 2), "louvre": (0.75, 2)}
