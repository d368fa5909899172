r"""Statistics of a benchmark score: bootstrap intervals over queries, or over the clusters they come in.

* :class:`Interval`: a statistic with its percentile bootstrap interval.
* :func:`bootstrap_interval` and :func:`paired_bootstrap`: 95 % intervals for a
  mAP and for the difference of two methods' mAPs, by resampling the queries, or
  the clusters they come in (a cluster bootstrap) when queries share a source;
  :func:`cluster_means` gives each cluster's own mean, for when there are too few
  (fewer than :data:`MIN_CLUSTERS`).

:mod:`cbir_lab.evaluation` re-exports every name here, so
``from cbir_lab.evaluation import paired_bootstrap`` works as before.

References:
    Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993; Sakai,
    "Evaluating evaluation metrics based on the bootstrap", SIGIR 2006; Field &
    Welsh, "Bootstrapping clustered data", JRSS B 2007.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Interval",
    "bootstrap_interval",
    "paired_bootstrap",
    "cluster_means",
    "MIN_CLUSTERS",
]

#: Below this many clusters a percentile bootstrap is too coarse to claim anything: show each cluster instead.
MIN_CLUSTERS = 10


@dataclass(frozen=True)
class Interval:
    """A statistic and its bootstrap confidence interval.

    Attributes:
        estimate: the statistic on the queries as they are (a mAP, or a difference of mAPs).
        low, high: the interval's ends (percentiles of the resampled statistic).
        level: the confidence level, e.g. 0.95.
        n_queries: how many queries the estimate is over.
        n_resamples: how many resamples.
        n_clusters: how many units were resampled (G): the queries themselves, or their clusters.
        unit: what was resampled, in words, plural (``"queries"``, ``"landmarks"``).
    """

    estimate: float
    low: float
    high: float
    level: float
    n_queries: int
    n_resamples: int
    n_clusters: int = 0
    unit: str = "queries"

    def __post_init__(self) -> None:
        if not self.n_clusters:  # made without clusters: every query was its own
            object.__setattr__(self, "n_clusters", self.n_queries)

    @property
    def too_few_clusters(self) -> bool:
        """Fewer than :data:`MIN_CLUSTERS` units: show each cluster's result and claim no significance."""
        return self.n_clusters < MIN_CLUSTERS

    @property
    def resampled(self) -> str:
        """What was resampled, e.g. ``"G = 12 source photos"``."""
        return f"G = {self.n_clusters} {self.unit}"

    @property
    def excludes_zero(self) -> bool:
        """Whether 0 lies outside the interval: for a difference, the two methods differ at this level."""
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.estimate:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def _scored(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-query APs, got shape {values.shape}")
    return values


def _cluster_codes(clusters, n: int, name: str) -> np.ndarray | None:
    if clusters is None:
        return None
    labels = np.asarray(clusters)
    if labels.shape != (n,):
        raise ValueError(f"{name}: clusters must give one label per query ({n}), got shape {labels.shape}")
    return np.unique(labels, return_inverse=True)[1].reshape(-1)


def _resample_means(values: np.ndarray, n_resamples: int, seed: int, codes: np.ndarray | None = None) -> np.ndarray:
    """Bootstrap means of ``values``, drawing queries (``codes`` None) or whole clusters with replacement.

    A resample of clusters draws G of the G clusters, and its mean is over every query of the
    clusters drawn: sum of their values / number of their queries.
    """
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    if codes is None:
        picks = rng.integers(0, values.shape[0], size=(int(n_resamples), values.shape[0]))
        return values[picks].mean(axis=1)
    n_clusters = int(codes.max()) + 1
    sums = np.bincount(codes, weights=values, minlength=n_clusters)
    counts = np.bincount(codes, minlength=n_clusters).astype(np.float64)
    picks = rng.integers(0, n_clusters, size=(int(n_resamples), n_clusters))
    return sums[picks].sum(axis=1) / counts[picks].sum(axis=1)


def _interval(estimate: float, resampled: np.ndarray, level: float, n: int, codes: np.ndarray | None = None,
              unit: str = "queries") -> Interval:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    n_clusters = n if codes is None else int(np.unique(codes).size)
    return Interval(float(estimate), float(low), float(high), float(level), n, int(resampled.shape[0]), n_clusters,
                    unit if codes is not None else "queries")


def cluster_means(aps, clusters) -> dict[str, tuple[float, int]]:
    """Each cluster's mean AP and its number of queries (queries without an AP left out).

    Args:
        aps: per-query APs, shape (n_queries,).
        clusters: per query, its cluster's label.

    Returns:
        label → (mean AP, n queries), in label order.

    Examples:
        >>> cluster_means([1.0, 0.5, 0.0, float("nan")], ["louvre", "louvre", "eiffel", "eiffel"])
        {'eiffel': (0.0, 1), 'louvre': (0.75, 2)}
    """
    values = _scored(aps, "aps")
    labels = np.asarray(clusters)
    _cluster_codes(labels, values.size, "cluster_means")
    kept = ~np.isnan(values)
    return {str(label): (float(values[kept & (labels == label)].mean()), int((kept & (labels == label)).sum()))
            for label in np.unique(labels[kept])}


def bootstrap_interval(aps, n_resamples: int = 10_000, level: float = 0.95, seed: int = 0, clusters=None,
                       unit: str = "clusters") -> Interval:
    """A percentile bootstrap interval for a mAP, resampling the queries (or their clusters) with replacement.

    Queries without an AP (NaN: no positives) are left out, as in :func:`compute_map`.

    When queries share a source (four Louvre queries, five views of one object), they
    are not independent draws, and resampling them one by one understates the
    interval. With ``clusters``, a resample draws whole clusters instead (a cluster
    bootstrap; Field & Welsh, JRSS B 2007): G of the G clusters with replacement,
    and the mAP of every query of the clusters drawn.

    Args:
        aps: per-query APs, shape (n_queries,).
        n_resamples: bootstrap resamples.
        level: the confidence level.
        seed: the random seed, so an interval is reproducible.
        clusters: per query, its cluster's label (``None``: every query is its own).
        unit: what a cluster is, in words, plural, for :attr:`Interval.unit`.

    Returns:
        The :class:`Interval` around the mAP.

    Examples:
        >>> interval = bootstrap_interval([1.0, 1.0, 1.0])
        >>> (interval.estimate, interval.low, interval.high)
        (1.0, 1.0, 1.0)
    """
    values = _scored(aps, "aps")
    codes = _cluster_codes(clusters, values.size, "bootstrap_interval")
    kept = ~np.isnan(values)
    values = values[kept]
    if values.size == 0:
        raise ValueError("bootstrap_interval: no query has an AP")
    codes = None if codes is None else np.unique(codes[kept], return_inverse=True)[1].reshape(-1)
    return _interval(values.mean(), _resample_means(values, n_resamples, seed, codes), level, values.size, codes, unit)


def paired_bootstrap(aps_a, aps_b, n_resamples: int = 10_000, level: float = 0.95, seed: int = 0, clusters=None,
                     unit: str = "clusters") -> Interval:
    r"""A paired bootstrap interval for mAP(a) − mAP(b) on the same queries.

    Each resample draws the queries with replacement and recomputes *both*
    methods' mAP on the same draw, so the interval reflects how much the
    difference depends on which queries happen to be in the benchmark. Its
    2.5 and 97.5 percentiles give the 95 % interval; when it contains 0, the
    data do not say which method is better.

    Args:
        aps_a, aps_b: per-query APs of the two methods, shape (n_queries,), same
            queries in the same order. A query without positives (NaN in both) is left out.
        n_resamples: bootstrap resamples.
        level: the confidence level.
        seed: the random seed.
        clusters: per query, its cluster's label: resample whole clusters, as
            :func:`bootstrap_interval` explains (``None``: every query is its own).
        unit: what a cluster is, in words, plural.

    Returns:
        The :class:`Interval` of the difference a − b.

    Raises:
        ValueError: the arrays differ in length, or a query has an AP in one and not the other.

    Reference:
        Sakai, "Evaluating evaluation metrics based on the bootstrap", SIGIR 2006;
        Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993.

    Examples:
        >>> paired_bootstrap([1.0, 0.5, 0.5], [0.5, 0.0, 0.0]).estimate  # every query gains 0.5
        0.5
        >>> str(paired_bootstrap([1.0, 0.5, 0.5], [0.5, 0.0, 0.0]))
        '+0.500 [+0.500, +0.500]'
    """
    a, b = _scored(aps_a, "aps_a"), _scored(aps_b, "aps_b")
    if a.shape != b.shape:
        raise ValueError(f"aps_a and aps_b must hold the same queries, got {a.size} and {b.size} APs")
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        raise ValueError("aps_a and aps_b must leave out the same queries (NaN in one but not in the other)")
    codes = _cluster_codes(clusters, a.size, "paired_bootstrap")
    kept = ~np.isnan(a)
    difference = a[kept] - b[kept]
    if difference.size == 0:
        raise ValueError("paired_bootstrap: no query has an AP")
    codes = None if codes is None else np.unique(codes[kept], return_inverse=True)[1].reshape(-1)
    return _interval(difference.mean(), _resample_means(difference, n_resamples, seed, codes), level,
                     difference.size, codes, unit)
