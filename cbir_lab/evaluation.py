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
* :func:`score`: the one scoring entry: a ranking under its dataset's protocol, as
  :class:`Scores` (the headline, the per-query values behind it, every score of
  the protocol, and which queries were scored); :func:`evaluate` is its ``scores``.
* :func:`median_ap_query`: the query whose AP is the median one (a typical
  example to show, with hits and misses).
* :func:`similarity_gaps`: how far a descriptor puts matching from non-matching
  images, on average.
* :func:`bootstrap_interval` and :func:`paired_bootstrap`: 95 % intervals for a
  mAP and for the difference of two methods' mAPs, by resampling the queries, or
  the clusters they come in (a cluster bootstrap) when queries share a source;
  :func:`cluster_means` gives each cluster's own mean, for when there are too few.
  They live in :mod:`cbir_lab.statistics` and are re-exported here.

References:
    Radenović, Iscen, Tolias, Avrithis & Chum, "Revisiting Oxford and Paris",
    CVPR 2018; Philbin et al. CVPR 2007; Jégou et al. ECCV 2008; Nistér &
    Stewénius CVPR 2006.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from cbir_lab.statistics import (  # the bootstrap section lives there; re-exported so imports from here keep working
    MIN_CLUSTERS,
    Interval,
    bootstrap_interval,
    cluster_means,
    paired_bootstrap,
)

__all__ = [
    "CannotScoreError",
    "MapResult",
    "positive_positions",
    "average_precision",
    "compute_map",
    "ranked_positions",
    "aps_from_scores",
    "revisited_gnd",
    "revisited_map",
    "ns_hits",
    "ns_score",
    "precision_at_k",
    "precision_recall",
    "evaluate",
    "HEADLINES",
    "Scores",
    "score",
    "scoring_gnd",
    "median_ap_query",
    "similarity_gaps",
    "Interval",
    "bootstrap_interval",
    "paired_bootstrap",
    "cluster_means",
    "MIN_CLUSTERS",
]


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
    """Score rankings under a dataset's protocol: the ``scores`` of :func:`score`.

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
    return _score(ranks, gnd, protocol, kappas).scores


# --------------------------------------------------------------------------- one scoring entry

#: Per protocol, the score a paper leads with (a key of :attr:`Scores.scores`).
HEADLINES = {"standard": "mAP", "revisited": "medium", "ukbench": "N-S"}


@dataclass(frozen=True)
class Scores:
    """A ranking scored under its dataset's protocol: what :func:`score` returns.

    Attributes:
        headline: the one number a paper leads with: the mAP (standard), the
            Medium mAP (revisited; Radenović et al., CVPR 2018) or the N-S score (ukbench).
        per_query: the per-query values behind ``headline``, shape (n_queries,):
            APs (NaN for the queries left out), or, for ukbench, N-S hits (0 to 4).
            Their mean over the scored queries is ``headline``; bootstrap intervals
            resample them (:func:`cbir_lab.statistics.bootstrap_interval`).
        aps: per-query APs under :func:`scoring_gnd` (Medium for revisited), shape
            (n_queries,), NaN for queries without positives. The same array as
            ``per_query`` except for ukbench, where they are the APs of its ``"mAP"``.
        scores: every score of the protocol, as :func:`evaluate` returns them.
        protocol: ``"standard"``, ``"revisited"`` or ``"ukbench"``.
        headline_name: the key of ``headline`` in ``scores`` (:data:`HEADLINES`).
        n_scored: how many queries ``headline`` is a mean over.
        left_out: the queries ``headline`` leaves out for having no positives
            (ascending; always empty for the N-S score, which counts every query).
    """

    headline: float
    per_query: np.ndarray = field(compare=False, repr=False)
    aps: np.ndarray = field(compare=False, repr=False)
    scores: dict[str, float]
    protocol: str
    headline_name: str
    n_scored: int
    left_out: tuple[int, ...] = ()


def _score(ranks, gnd: Sequence[dict] | None, protocol: str, kappas: Sequence[int]) -> Scores:
    if protocol == "none" or gnd is None:
        raise CannotScoreError("this dataset has no ground truth (a flat folder?): rankings cannot be scored")
    if protocol == "revisited":
        settings = revisited_map(ranks, gnd, kappas)
        behind, scores = settings["medium"], {s: r.map for s, r in settings.items()}
    elif protocol == "ukbench":
        hits = ns_hits(ranks, gnd)
        behind = compute_map(ranks, gnd, kappas)
        scores = {"N-S": float(np.mean(hits)), "mAP": behind.map}
    elif protocol == "standard":
        behind = compute_map(ranks, gnd, kappas)
        scores = {"mAP": behind.map, **{f"mP@{k}": float(v) for k, v in zip(behind.kappas, behind.mpk)}}
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    name = HEADLINES[protocol]
    if protocol == "ukbench":
        return Scores(scores[name], hits, behind.aps, scores, protocol, name, int(hits.size))
    left_out = tuple(int(q) for q in np.flatnonzero(np.isnan(behind.aps)))
    return Scores(scores[name], behind.aps, behind.aps, scores, protocol, name, behind.n_scored, left_out)


def score(ranking, dataset, kappas: Sequence[int] = (1, 5, 10)) -> Scores:
    """Score a ranking under its dataset's own protocol: the one entry for a headline and what is behind it.

    * standard (Oxford5k / Paris6k, Holidays, the embedded set): mAP with junk
      removed, and mP@k (:func:`compute_map`); the headline is the mAP.
    * revisited (ROxford5k / RParis6k): the Easy, Medium and Hard mAPs
      (:func:`revisited_map`); the headline is Medium, as the papers lead with it.
    * ukbench: the N-S score (:func:`ns_hits`) and the mAP; the headline is N-S.

    Args:
        ranking: database indices, shape (n_db or k, n_queries), column q query q's
            ranking, best first (as :func:`cbir_lab.search.rank` returns; N-S needs k >= 4).
        dataset: anything with ``gnd`` and ``protocol``, such as a
            :class:`~cbir_lab.datasets.base.RetrievalDataset`.
        kappas: the k of mP@k (standard protocol).

    Returns:
        The :class:`Scores`: ``scores`` is exactly what :func:`evaluate` returns.

    Raises:
        CannotScoreError: the dataset has no ground truth.
        ValueError: an unknown protocol, shapes that disagree, or no query with a positive.

    Examples:
        >>> from types import SimpleNamespace
        >>> toy = SimpleNamespace(gnd=[{"ok": [0, 2], "junk": [1]}, {"ok": []}], protocol="standard")
        >>> ranking = np.array([[0, 3], [3, 2], [1, 1], [2, 0]])  # query 0: 0, 3, 1 (junk), 2
        >>> result = score(ranking, toy)
        >>> result.headline_name, round(result.headline, 4), result.n_scored, result.left_out
        ('mAP', 0.7917, 1, (1,))
    """
    return _score(ranking, getattr(dataset, "gnd", None), getattr(dataset, "protocol", "none"), kappas)


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
