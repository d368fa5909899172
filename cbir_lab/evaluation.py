r"""Evaluation: mAP and friends, exactly as the benchmarks' reference code computes them.

* :func:`average_precision` and :func:`compute_map`: the Revisiting Oxford &
  Paris reference (``revisitop``'s ``compute_map``): junk images are removed
  from the ranking before AP, AP uses the trapezoid rule, queries without
  positives are left out, and mP@k uses that code's own definition.
* :func:`revisited_map`: the Easy / Medium / Hard protocols of ROxford5k and RParis6k.
* :func:`scoring_gnd`: any dataset's ground truth as one ``{'ok', 'junk'}`` per
  query (revisited datasets: one setting, Medium by default): the one place
  ground truth is normalised for rankings shown to a person.
* :func:`ns_score`: UKBench's N-S score (images of the group in the top 4).
* :func:`precision_at_k`: the textbook P@k (kept apart from mP@k, which differs).
* :func:`precision_recall`: a query's precision-recall points, for plots.
* :func:`evaluate`: dispatch on a dataset's protocol.
* :func:`median_ap_query`: the query whose AP is the median one (a typical
  example to show, with hits and misses).
* :func:`similarity_gaps`: how far a descriptor puts matching from non-matching
  images, on average.
* :func:`bootstrap_interval` and :func:`paired_bootstrap`: 95 % intervals for a
  mAP and for the difference of two methods' mAPs, by resampling the queries, or
  the clusters they come in (a cluster bootstrap) when queries share a source;
  :func:`cluster_means` gives each cluster's own mean, for when there are too few.

References:
    Radenović, Iscen, Tolias, Avrithis & Chum, "Revisiting Oxford and Paris",
    CVPR 2018; Philbin et al. CVPR 2007; Jégou et al. ECCV 2008; Nistér &
    Stewénius CVPR 2006.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = [
    "CannotScoreError",
    "MapResult",
    "positive_positions",
    "average_precision",
    "compute_map",
    "ranked_positions",
    "aps_from_scores",
    "map_from_scores",
    "revisited_gnd",
    "revisited_map",
    "ns_hits",
    "ns_score",
    "precision_at_k",
    "precision_recall",
    "evaluate",
    "scoring_gnd",
    "median_ap_query",
    "similarity_gaps",
    "Interval",
    "bootstrap_interval",
    "paired_bootstrap",
    "cluster_means",
    "MIN_CLUSTERS",
]

#: Below this many clusters a percentile bootstrap is too coarse to claim anything: show each cluster instead.
MIN_CLUSTERS = 10


class CannotScoreError(ValueError):
    """The dataset has no ground truth (e.g. a flat folder of images)."""


@dataclass(frozen=True)
class MapResult:
    """What :func:`compute_map` returns.

    Attributes:
        map: mean AP over the queries that have positives.
        aps: per-query AP, shape (n_queries,); NaN for queries left out (no positives),
            as in the reference code.
        mpk: mP@k for each kappa, shape (len(kappas),).
        prs: per-query P@k (reference definition), shape (n_queries, len(kappas)); NaN rows as ``aps``.
        kappas: the k values.
        n_scored: how many queries were scored.
    """

    map: float
    aps: np.ndarray
    mpk: np.ndarray
    prs: np.ndarray
    kappas: tuple[int, ...]
    n_scored: int


def _check_ranks(ranks) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim == 1:
        ranks = ranks[:, None]
    if ranks.ndim != 2:
        raise ValueError(f"ranks must have shape (n_db, n_queries), got {ranks.shape}")
    if not np.issubdtype(ranks.dtype, np.integer):
        raise ValueError(f"ranks must hold integer database indices, got dtype {ranks.dtype}")
    return ranks


def positive_positions(ranking: np.ndarray, positives, junk=()) -> np.ndarray:
    """0-based positions of the positives in one ranking, after removing junk.

    Each position is shifted down by the number of junk images ranked before it.

    Args:
        ranking: database indices of one query, best first, shape (n,).
        positives: indices of the relevant images.
        junk: indices to ignore.

    Returns:
        Sorted shifted positions, shape (n_found,).
    """
    ranking = np.asarray(ranking)
    pos = np.flatnonzero(np.isin(ranking, np.asarray(positives, dtype=np.int64)))
    if len(junk):
        junk_pos = np.flatnonzero(np.isin(ranking, np.asarray(junk, dtype=np.int64)))
        pos = pos - np.searchsorted(junk_pos, pos)
    return pos


def average_precision(pos: np.ndarray, n_positives: int) -> float:
    r"""AP by the trapezoid rule from shifted 0-based positions of the positives.

    .. math::
        AP = \sum_j \frac{p_0(j) + p_1(j)}{2\, n_{pos}},\quad
        p_0 = \begin{cases}1 & r_j = 0\\ j / r_j & \text{else}\end{cases},\quad
        p_1 = \frac{j + 1}{r_j + 1}

    for the j-th found positive (0-based) at position :math:`r_j`. Positives
    missing from a truncated ranking contribute 0.

    Args:
        pos: sorted positions, shape (n_found,).
        n_positives: the number of positives in the ground truth.

    Returns:
        AP in [0, 1].
    """
    if n_positives <= 0:
        raise ValueError("average_precision needs at least one positive")
    pos = np.asarray(pos, dtype=np.float64)
    j = np.arange(len(pos), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p0 = np.where(pos == 0, 1.0, j / np.where(pos == 0, 1.0, pos))
    p1 = (j + 1) / (pos + 1)
    return float(((p0 + p1) / 2.0).sum() / n_positives)


def compute_map(ranks, gnd: Sequence[dict], kappas: Sequence[int] = (1, 5, 10)) -> MapResult:
    """mAP and mP@k over queries, as the Revisiting Oxford & Paris reference code.

    Args:
        ranks: database indices, shape (n_db or k, n_queries), column q best first
            (as :func:`cbir_lab.search.rank` returns).
        gnd: one dict per query with ``'ok'`` (positives) and optionally ``'junk'``.
        kappas: the k of mP@k. Per query, with 1-based shifted positions,
            kq = min(max position, k) and P@k = #(positions ≤ kq) / kq.

    Returns:
        A :class:`MapResult`.

    Raises:
        ValueError: shapes disagree, or no query has a positive.
    """
    ranks = _check_ranks(ranks)
    kappas = tuple(int(k) for k in kappas)
    if any(k < 1 for k in kappas):
        raise ValueError(f"kappas must be >= 1, got {kappas}")
    nq = len(gnd)
    if ranks.shape[1] != nq:
        raise ValueError(f"ranks has {ranks.shape[1]} query columns but gnd has {nq} queries")
    aps = np.full(nq, np.nan)
    prs = np.full((nq, len(kappas)), np.nan)
    for q, g in enumerate(gnd):
        if "ok" not in g:
            raise ValueError(f"gnd[{q}] has no 'ok' list (keys: {sorted(g)}); for revisited gnd use revisited_map")
        ok = np.asarray(g["ok"], dtype=np.int64)
        if ok.size == 0:
            continue
        pos = positive_positions(ranks[:, q], ok, g.get("junk", ()))
        aps[q] = average_precision(pos, ok.size)
        pos1 = pos + 1
        for j, k in enumerate(kappas):
            if pos1.size == 0:
                prs[q, j] = 0.0
            else:
                kq = min(int(pos1.max()), k)
                prs[q, j] = (pos1 <= kq).sum() / kq
    scored = ~np.isnan(aps)
    if not scored.any():
        raise ValueError("no query has any positive image: mAP is undefined")
    return MapResult(
        map=float(aps[scored].mean()),
        aps=aps,
        mpk=prs[scored].mean(axis=0),
        prs=prs,
        kappas=kappas,
        n_scored=int(scored.sum()),
    )


def ranked_positions(scores, items) -> np.ndarray:
    """0-based positions of ``items`` in the ranking of ``scores`` (descending; ties by the smaller index).

    The same positions :func:`cbir_lab.search.rank` gives them, found by counting
    (item j is preceded by every score above its own, and by the equal scores of
    smaller indices), which costs O(n_db) per item instead of a sort of the database.

    Args:
        scores: one query's similarity to every database item, shape (n_db,).
        items: database indices, shape (m,).

    Returns:
        Their positions, shape (m,), int64.

    Examples:
        >>> ranked_positions(np.array([0.2, 0.9, 0.5, 0.9]), [0, 3, 1]).tolist()
        [3, 1, 0]
    """
    scores = np.asarray(scores)
    items = np.asarray(items, dtype=np.int64)
    if items.size == 0:
        return np.zeros(0, dtype=np.int64)
    own = scores[items][:, None]
    earlier = np.arange(scores.shape[0])[None, :] < items[:, None]
    return ((scores[None, :] > own) | ((scores[None, :] == own) & earlier)).sum(axis=1).astype(np.int64)


def aps_from_scores(scores, gnd: Sequence[dict]) -> np.ndarray:
    """Per-query APs from a (n_queries, n_db) score matrix, as :func:`compute_map` of its ranking gives them.

    Args:
        scores: similarities, shape (n_queries, n_db).
        gnd: one ``{'ok', 'junk'}`` per query.

    Returns:
        Shape (n_queries,); NaN for a query without positives.
    """
    scores = np.asarray(scores)
    aps = np.full(len(gnd), np.nan)
    for q, g in enumerate(gnd):
        ok = np.asarray(g["ok"], dtype=np.int64)
        if ok.size == 0:
            continue
        pos = np.sort(ranked_positions(scores[q], ok))
        junk = np.sort(ranked_positions(scores[q], g.get("junk", ())))
        aps[q] = average_precision(pos - np.searchsorted(junk, pos), ok.size)
    return aps


def map_from_scores(scores, gnd: Sequence[dict]) -> float:
    """mAP from a (n_queries, n_db) score matrix, as :func:`compute_map` of its ranking would give it.

    Raises:
        ValueError: no query has a positive.
    """
    aps = aps_from_scores(scores, gnd)
    if np.isnan(aps).all():
        raise ValueError("no query has any positive image: mAP is undefined")
    return float(np.nanmean(aps))


def revisited_gnd(gnd: Sequence[dict], setting: str) -> list[dict]:
    """The 'ok'/'junk' ground truth of one revisited setting.

    * easy: ok = easy; junk = junk + hard.
    * medium: ok = easy + hard; junk = junk.
    * hard: ok = hard; junk = junk + easy.
    """
    out = []
    for g in gnd:
        easy, hard, junk = list(g["easy"]), list(g["hard"]), list(g["junk"])
        if setting == "easy":
            out.append({"ok": easy, "junk": junk + hard})
        elif setting == "medium":
            out.append({"ok": easy + hard, "junk": junk})
        elif setting == "hard":
            out.append({"ok": hard, "junk": junk + easy})
        else:
            raise ValueError(f"setting must be 'easy', 'medium' or 'hard', got {setting!r}")
    return out


def revisited_map(ranks, gnd: Sequence[dict], kappas: Sequence[int] = (1, 5, 10)) -> dict[str, MapResult]:
    """Easy, Medium and Hard results of ROxford5k / RParis6k.

    Args:
        ranks: shape (n_db, n_queries).
        gnd: per query, dicts with ``'easy'``, ``'hard'`` and ``'junk'``.
        kappas: the k of mP@k.

    Returns:
        ``{"easy": MapResult, "medium": MapResult, "hard": MapResult}``.
    """
    return {s: compute_map(ranks, revisited_gnd(gnd, s), kappas) for s in ("easy", "medium", "hard")}


def ns_hits(ranks, gnd: Sequence[dict]) -> np.ndarray:
    """Per query, how many images of its group are in its top 4 (UKBench; 0 to 4).

    Args:
        ranks: shape (≥ 4, n_queries); the query itself is in the database and counts.
        gnd: per query, ``'ok'`` = the indices of its group (4 images, itself included).

    Returns:
        Shape (n_queries,), integers as floats; their mean is :func:`ns_score`.

    Examples:
        >>> ns_hits(np.array([[0, 1], [2, 0], [1, 3], [3, 2]]), [{"ok": [0, 1]}, {"ok": [0, 1]}])
        array([2., 2.])
    """
    ranks = _check_ranks(ranks)
    if ranks.shape[1] != len(gnd):
        raise ValueError(f"ranks has {ranks.shape[1]} query columns but gnd has {len(gnd)} queries")
    if ranks.shape[0] < 4:
        raise ValueError(f"the N-S score needs at least the top 4 of each ranking, got {ranks.shape[0]}")
    return np.array([np.isin(ranks[:4, q], np.asarray(g["ok"], dtype=np.int64)).sum() for q, g in enumerate(gnd)],
                    dtype=np.float64)


def ns_score(ranks, gnd: Sequence[dict]) -> float:
    """UKBench's N-S score: the mean number of the query's group found in the top 4 (max 4).

    Args:
        ranks: shape (≥ 4, n_queries); the query itself is in the database and counts.
        gnd: per query, ``'ok'`` = the indices of its group (4 images, itself included).

    Returns:
        The score in [0, 4], the mean of :func:`ns_hits`.
    """
    return float(np.mean(ns_hits(ranks, gnd)))


def precision_at_k(ranks, gnd: Sequence[dict], k: int) -> np.ndarray:
    """Textbook precision@k per query: positives among the first k after junk removal, divided by k.

    Unlike the reference mP@k, the denominator is always k.

    Returns:
        Shape (n_queries,).
    """
    ranks = _check_ranks(ranks)
    out = np.zeros(len(gnd))
    for q, g in enumerate(gnd):
        pos = positive_positions(ranks[:, q], g["ok"], g.get("junk", ()))
        out[q] = (pos < k).sum() / k
    return out


def precision_recall(ranking, positives, junk=()) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall after each retrieved image (junk removed), for a PR curve.

    Args:
        ranking: one query's database indices, best first.
        positives: relevant indices.
        junk: ignored indices.

    Returns:
        (recall, precision), each of shape (n_ranked_without_junk,).
    """
    ranking = np.asarray(ranking)
    positives = np.asarray(positives, dtype=np.int64)
    if positives.size == 0:
        raise ValueError("precision_recall needs at least one positive")
    kept = ranking[~np.isin(ranking, np.asarray(junk, dtype=np.int64))]
    hits = np.cumsum(np.isin(kept, positives))
    n = np.arange(1, len(kept) + 1)
    return hits / positives.size, hits / n


def evaluate(ranks, gnd: Sequence[dict] | None, protocol: str, kappas: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Score rankings under a dataset's protocol.

    Args:
        ranks: shape (n_db, n_queries).
        gnd: the dataset's ground truth.
        protocol: ``"standard"``, ``"revisited"``, ``"ukbench"`` or ``"none"``.

    Returns:
        ``{"mAP": …, "mP@k": …}`` (standard), ``{"easy": …, "medium": …, "hard": …}``
        mAPs (revisited), or ``{"N-S": …, "mAP": …}`` (ukbench).

    Raises:
        CannotScoreError: the dataset has no ground truth.
    """
    if protocol == "none" or gnd is None:
        raise CannotScoreError("this dataset has no ground truth (a flat folder?): rankings cannot be scored")
    if protocol == "revisited":
        return {s: r.map for s, r in revisited_map(ranks, gnd, kappas).items()}
    if protocol == "ukbench":
        return {"N-S": ns_score(ranks, gnd), "mAP": compute_map(ranks, gnd, kappas).map}
    if protocol == "standard":
        res = compute_map(ranks, gnd, kappas)
        return {"mAP": res.map, **{f"mP@{k}": float(v) for k, v in zip(res.kappas, res.mpk)}}
    raise ValueError(f"unknown protocol {protocol!r}")


def median_ap_query(aps) -> int:
    """The query whose AP is closest to the median AP (ties: the smaller index).

    A demo that opens on this query shows a typical ranking, with hits and
    misses, rather than the best or the worst case.

    Args:
        aps: (n_queries,) APs; NaN for queries that cannot be scored.

    Returns:
        The query's index.

    Raises:
        ValueError: no query has an AP.
    """
    aps = np.asarray(aps, dtype=np.float64)
    scored = np.flatnonzero(~np.isnan(aps))
    if scored.size == 0:
        raise ValueError("no query has an AP: there is no median query")
    return int(scored[np.argmin(np.abs(aps[scored] - np.median(aps[scored])))])


def scoring_gnd(gnd: Sequence[dict] | None, protocol: str = "standard", setting: str = "medium") -> list[dict] | None:
    """One ``{'ok': positives, 'junk': ignored}`` per query, whatever the protocol.

    Revisited ground truth (``easy``/``hard``/``junk``) becomes one of its settings
    (:func:`revisited_gnd`; Medium by default, the one papers lead with); standard
    and UKBench ground truth is copied as it is.

    Args:
        gnd: the dataset's ground truth, or ``None``.
        protocol: the dataset's protocol (``"standard"``, ``"revisited"``, ``"ukbench"``, ``"none"``).
        setting: for revisited ground truth, ``"easy"``, ``"medium"`` or ``"hard"``.

    Returns:
        The list, or ``None`` when the dataset has no ground truth.

    Examples:
        >>> scoring_gnd([{"easy": [1], "hard": [2], "junk": [3]}], "revisited")
        [{'ok': [1, 2], 'junk': [3]}]
        >>> scoring_gnd([{"ok": [0]}])
        [{'ok': [0], 'junk': []}]
    """
    if gnd is None or protocol == "none":
        return None
    if protocol == "revisited":
        return revisited_gnd(gnd, setting)
    return [{"ok": [int(i) for i in g["ok"]], "junk": [int(i) for i in g.get("junk", ())]} for g in gnd]


def similarity_gaps(query_vecs: np.ndarray, db_vecs: np.ndarray, gnd: Sequence[dict], groups: Sequence[str],
                    source_of=lambda group: group.split("-")[0]) -> dict[str, float]:
    """How far apart a descriptor puts matching and non-matching images, averaged over queries.

    Args:
        query_vecs, db_vecs: L2-normalised descriptors (n_q, D), (n_db, D).
        gnd: per query, ``{"ok": [...], ...}`` (the standard protocol).
        groups: per database image, its scene label.
        source_of: maps a scene label to its source photo; scenes cut from one photo
            are the *hard* negatives (embedded set: ``"astronaut-r0c1"`` → ``"astronaut"``).

    Returns:
        ``positive`` (mean cosine to the query's own scene), ``negative`` (to every
        other scene), ``hard negative`` (to other scenes of the same photo, over the
        queries that have them; NaN if none do) and the gaps ``positive - negative``,
        ``positive - hard``.
    """
    sims = np.asarray(query_vecs) @ np.asarray(db_vecs).T
    pos, neg, hard = [], [], []
    for q, entry in enumerate(gnd):
        ok = np.asarray(entry["ok"], dtype=int)
        if ok.size == 0:
            continue
        own = groups[ok[0]]
        others = np.array([g != own for g in groups])
        same_photo = np.array([g != own and source_of(g) == source_of(own) for g in groups])
        pos.append(sims[q, ok].mean())
        neg.append(sims[q, others].mean())
        if same_photo.any():
            hard.append(sims[q, same_photo].mean())
    result = {"positive": float(np.mean(pos)), "negative": float(np.mean(neg))}
    result["hard negative"] = float(np.mean(hard)) if hard else float("nan")
    result["gap"] = result["positive"] - result["negative"]
    result["hard gap"] = result["positive"] - result["hard negative"]
    return result


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
