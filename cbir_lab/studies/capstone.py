"""The capstone (lesson 11): build a retrieval system, choose its settings on tuning queries, report on test queries.

The lessons each compare a few settings on one set of queries. A system is a
*combination* — a pooling, a whitened dimension d, a re-ranking — and choosing the
best of many combinations on the queries one then reports flatters the result
(lesson 3's held-out d, on a larger scale). The capstone does it the honest way:

* :func:`capstone_index`: the photos: the Paris slice when it is on disk, a folder of
  the student's own photos (one sub-folder per place or object), or the embedded set,
  saying so when it falls back to it.
* :func:`split_queries`: tuning and test queries, whole clusters (landmarks, source
  photos, sub-folders) on one side, so that no test query shares its landmark with a
  tuning query (``by="cluster"``); or every cluster's queries dealt to both sides
  (``by="query"``).
* :func:`candidate_grid` and :func:`evaluate_grid`: every combination's per-query APs,
  as :class:`Candidate` s in a :class:`CandidateGrid`, whose :meth:`CandidateGrid.table`
  shows each one's tuning mAP with its cluster-bootstrap interval.
* :func:`choose_setting`: the choice the tuning queries defend (the cheapest candidate
  whose interval overlaps the best one's, or the best itself).
* :func:`final_report`: the choice on the test queries, never seen while choosing: its
  score and interval, its paired difference to a baseline, and the candidate that would
  have looked best there in hindsight, through :func:`~cbir_lab.studies.real_photos.evidence_table`.
* :func:`worst_query`, :func:`ranked_list` and :func:`failure_summary`: the failure to
  explain: the test query the choice serves worst, its top results, where its positives went.

Intervals are :func:`cbir_lab.statistics.bootstrap_interval` and
:func:`~cbir_lab.statistics.paired_bootstrap`, resampling clusters (Field & Welsh, JRSS B
2007). References for the settings: Babenko & Lempitsky, ICCV 2015 (SPoC); Tolias, Sicre &
Jégou, ICLR 2016 (MAC, R-MAC); Radenović, Tolias & Chum, TPAMI 2018 (GeM, α-QE); Jégou &
Chum, ECCV 2012 (PCA-whitening); Zhong et al., CVPR 2017 (k-reciprocal re-ranking).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from cbir_lab.datasets import load_dataset
from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.datasets.image_sets import present_image_sets
from cbir_lab.datasets.real_photos import REAL_DATASETS, how_to_get, present_real_dataset
from cbir_lab.evaluation import score
from cbir_lab.index import RetrievalIndex, result_status
from cbir_lab.kreciprocal import k_reciprocal_rank
from cbir_lab.pipeline import extract_dataset
from cbir_lab.pooling import STANDARD_POOLINGS, Pooling
from cbir_lab.rerank import alpha_query_expansion
from cbir_lab.search import rank
from cbir_lab.statistics import MIN_CLUSTERS, Interval, bootstrap_interval, paired_bootstrap
from cbir_lab.studies.methods import MethodScore
from cbir_lab.studies.real_photos import WHITENING_SET, evidence_table, real_photo_index

__all__ = [
    "RERANKINGS",
    "Candidate",
    "candidate_grid",
    "QuerySplit",
    "split_queries",
    "capstone_index",
    "candidate_aps",
    "CandidateGrid",
    "evaluate_grid",
    "choose_setting",
    "final_report",
    "worst_query",
    "RankedList",
    "ranked_list",
    "missed_positives",
    "failure_summary",
]

#: The re-rankings a candidate may use, cheapest first: none, α-QE (a second search), k-reciprocal (neighbour lists).
RERANKINGS = ("none", "α-QE", "k-reciprocal")


# ---------------------------------------------------------------- the settings


@dataclass(frozen=True)
class Candidate:
    """One retrieval system: a pooling, a dimension, a re-ranking.

    Attributes:
        pooling: the pooling's name (``"SPoC"``, ``"MAC"``, ``"R-MAC"``, ``"GeM"``).
        dim: the PCA-whitened dimension d, or ``None`` for L2-normalised descriptors without PCA.
        reranking: one of :data:`RERANKINGS`.
        k1, k2: k-reciprocal's neighbourhood sizes (used only with ``reranking="k-reciprocal"``).
    """

    pooling: str
    dim: int | None = None
    reranking: str = "none"
    k1: int = 20
    k2: int = 6

    def __post_init__(self) -> None:
        object.__setattr__(self, "pooling", Pooling.parse(self.pooling).name)
        if self.reranking != "k-reciprocal":  # k1, k2 mean nothing here: the same system, whatever they say
            object.__setattr__(self, "k1", 20)
            object.__setattr__(self, "k2", 6)
        if self.dim is not None and (int(self.dim) != self.dim or self.dim < 1):
            raise ValueError(f"Candidate: dim must be a positive integer or None, got {self.dim!r}")
        if self.reranking not in RERANKINGS:
            raise ValueError(f"Candidate: reranking must be one of {RERANKINGS}, got {self.reranking!r}")
        if self.reranking == "k-reciprocal" and not 1 <= self.k2 <= self.k1:
            raise ValueError(f"Candidate: k-reciprocal needs 1 <= k2 <= k1, got k1={self.k1}, k2={self.k2}")

    @property
    def label(self) -> str:
        """E.g. ``"GeM, d=256, α-QE"`` or ``"SPoC, no PCA"``.

        Examples:
            >>> Candidate("gem", 256, "α-QE").label, Candidate("SPoC").label
            ('GeM, d=256, α-QE', 'SPoC, no PCA')
            >>> Candidate("MAC", 64, "k-reciprocal", k1=6, k2=2).label
            'MAC, d=64, k-reciprocal (k1=6)'
        """
        parts = [self.pooling, "no PCA" if self.dim is None else f"d={self.dim}"]
        if self.reranking == "k-reciprocal":
            parts.append(f"k-reciprocal (k1={self.k1})")
        elif self.reranking != "none":
            parts.append(self.reranking)
        return ", ".join(parts)

    @property
    def without_dim(self) -> str:
        """The label without its d (a table with a "dim" column), e.g. ``"GeM, α-QE"``."""
        return ", ".join(part for part in self.label.split(", ") if not part.startswith("d=") and part != "no PCA")

    def cost(self, full_dim: int) -> tuple[int, int]:
        """What the system costs, for ordering candidates: (re-ranking's rank in :data:`RERANKINGS`, floats per image).

        Args:
            full_dim: the descriptor's dimension without PCA.
        """
        return RERANKINGS.index(self.reranking), int(full_dim if self.dim is None else self.dim)


def candidate_grid(poolings: Sequence[Pooling | str] = STANDARD_POOLINGS, dims: Sequence[int | None] = (None, 128, 512),
                   rerankings: Sequence[str] = RERANKINGS, k1: int = 20, k2: int = 6) -> list[Candidate]:
    """Every combination of ``poolings`` × ``dims`` × ``rerankings``, as :class:`Candidate` s.

    Examples:
        >>> [c.label for c in candidate_grid(["SPoC"], [None, 64], ["none", "α-QE"])]
        ['SPoC, no PCA', 'SPoC, no PCA, α-QE', 'SPoC, d=64', 'SPoC, d=64, α-QE']
    """
    if not poolings or not dims or not rerankings:
        raise ValueError("candidate_grid: poolings, dims and rerankings must each name at least one setting")
    return [Candidate(Pooling.parse(p).name, d, r, k1, k2) for p in poolings for d in dims for r in rerankings]


# ---------------------------------------------------------------- the photos and the split


@dataclass(frozen=True)
class QuerySplit:
    """Which queries tune the settings and which are kept for the final report.

    Attributes:
        tuning: per query, True when it tunes, False when it is a test query, shape (n_queries,).
        clusters: per query, its cluster (landmark, source photo, sub-folder).
        unit: what a cluster is, plural.
        by: ``"cluster"`` (whole clusters on one side) or ``"query"`` (each cluster on both sides).
    """

    tuning: np.ndarray
    clusters: tuple[str, ...]
    unit: str
    by: str

    def part(self, name: str) -> np.ndarray:
        """The query indices of ``"tuning"`` or ``"test"``."""
        if name not in ("tuning", "test"):
            raise ValueError(f"part must be 'tuning' or 'test', got {name!r}")
        return np.flatnonzero(self.tuning if name == "tuning" else ~self.tuning)

    def summary(self) -> str:
        """Both sides in one line each: how many queries, of which clusters."""
        lines = []
        for name in ("tuning", "test"):
            labels = sorted({self.clusters[i] for i in self.part(name)})
            shown = ", ".join(labels) if len(labels) <= 8 else ", ".join(labels[:8]) + ", …"
            lines.append(f"{name:<7} {len(self.part(name)):>3} queries of {len(labels)} {self.unit}: {shown}")
        return "\n".join(lines)


def split_queries(clusters: Sequence[str], unit: str = "clusters", by: str = "cluster") -> QuerySplit:
    """Split the queries into tuning and test halves, deterministically.

    ``by="cluster"``: the clusters, sorted by name, are dealt alternately to tuning and
    test (as :func:`cbir_lab.studies.whitening.held_out_dimension` deals them), so a test
    query never shares its landmark or source photo with a tuning query: the report then
    says how the system does on *new* places. ``by="query"``: each cluster's queries, in
    order, are dealt alternately, so both halves see every cluster: more clusters behind
    each interval, but a test query's landmark helped choose the settings.

    Args:
        clusters: per query, its cluster.
        unit: what a cluster is, plural (for the summary and the intervals).
        by: ``"cluster"`` or ``"query"``.

    Returns:
        The :class:`QuerySplit`.

    Raises:
        ValueError: an unknown ``by``, or a side left empty (a single cluster with ``by="cluster"``,
            or a single query).

    Examples:
        >>> split_queries(["b", "a", "b", "c"]).tuning.tolist()
        [False, True, False, True]
        >>> split_queries(["b", "a", "b", "c"], by="query").tuning.tolist()
        [True, True, False, True]
    """
    labels = tuple(str(c) for c in clusters)
    if by == "cluster":
        first_side = {label: i % 2 == 0 for i, label in enumerate(sorted(set(labels)))}
        tuning = np.array([first_side[label] for label in labels], dtype=bool)
    elif by == "query":
        seen: dict[str, int] = {}
        tuning = np.zeros(len(labels), dtype=bool)
        for i, label in enumerate(labels):
            tuning[i] = seen.get(label, 0) % 2 == 0
            seen[label] = seen.get(label, 0) + 1
    else:
        raise ValueError(f"split_queries: by must be 'cluster' or 'query', got {by!r}")
    if tuning.all() or not tuning.any():
        raise ValueError(f"split_queries: {len(labels)} queries in {len(set(labels))} {unit} cannot be split by {by} "
                         f"into two non-empty halves")
    return QuerySplit(tuning, labels, unit, by)


def capstone_index(photos: str | os.PathLike = "rparis6k-slice", root: str | os.PathLike | None = None,
                   max_side: int = 512, backbone: str = "efficientnet_lite0") -> RetrievalIndex:
    """The retrieval index of the capstone's photos; the embedded set, saying so, when the real ones are absent.

    Nothing is downloaded here (a lesson runs offline).

    Args:
        photos: ``"rparis6k-slice"`` or ``"eth80"`` (used when on disk; otherwise the embedded set,
            with a note on how to get them), ``"embedded"``, or the path of a folder of your own
            photos: one sub-folder per place or object, at least two photos in a sub-folder for it to
            give queries. Every photo of a sub-folder with two or more is a query once
            (``queries="all"``), its positives the other photos of its sub-folder, and the intervals
            resample sub-folders.
        root: the data folder (default ``$CBIR_LAB_DATA``, else the user cache).
        max_side: the long side your own photos are fed at (the real sets use their own).
        backbone: the network.

    Returns:
        The :class:`~cbir_lab.index.RetrievalIndex`; its whitening is learned on ``imagenet-sample``
        when that is on disk (for the real sets and your folder), on the embedded set's own training
        photos for the embedded set, and absent otherwise (then every d is left out of the grid).

    Raises:
        FileNotFoundError, NotADirectoryError, ValueError: a folder that cannot be used, from
            :func:`cbir_lab.datasets.folder.load_folder`, naming the folder.
    """
    name = os.fspath(photos)
    if name in REAL_DATASETS:
        if present_real_dataset(name, root) is not None:
            index = real_photo_index(name, backbone=backbone, root=root)
            assert index is not None  # present a moment ago
            return index
        print(how_to_get(name, "so this run uses the embedded set instead (25 queries of edited views of 12 photos: "
                               "near-duplicates, not landmarks; the stored outputs show the Paris slice)"))
        name = "embedded"
    if name == "embedded":
        dataset = load_dataset("embedded", root=root)
        return RetrievalIndex(extract_dataset(dataset, backbone, progress=False))
    dataset = _own_folder(name, max_side)
    sets = present_image_sets((WHITENING_SET,), root)
    if sets:
        dataset = dataset.with_training_images(sets[0].images, sets[0].description)
    else:
        print(f"({WHITENING_SET} is not on disk, so your photos have no whitening: only 'no PCA' candidates; "
              f"load_image_set({WHITENING_SET!r}) gets it)")
    return RetrievalIndex(extract_dataset(dataset, backbone, max_side=dataset.max_side, progress=False))


def _own_folder(path: str, max_side: int) -> RetrievalDataset:
    """A grouped folder of the student's photos, every photo a query, its sub-folder its cluster."""
    dataset = load_dataset(path, queries="all")
    if dataset.groups is None:
        raise ValueError(f"{path}: the capstone needs one sub-folder per place or object (a flat folder has no "
                         f"ground truth to score)")
    by_path = dict(zip(dataset.db_images, dataset.groups))
    clusters = tuple(by_path[q] for q in dataset.query_images)
    return replace(dataset, query_clusters=clusters, cluster_unit="sub-folders", max_side=int(max_side))


# ---------------------------------------------------------------- every candidate's APs


def _ranking(index: RetrievalIndex, candidate: Candidate) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ranks (n_db, n_q), query vectors, database vectors) of one candidate."""
    if candidate.dim is None:
        q, db = index.descriptors(candidate.pooling)
    else:
        top = index.max_dim(candidate.pooling)
        if candidate.dim > top:
            raise ValueError(f"{candidate.label}: d={candidate.dim} is above the {top} this whitening supports")
        q, db = index.whitened(candidate.pooling, candidate.dim)
    if candidate.reranking == "k-reciprocal":
        return k_reciprocal_rank(q, db, k1=min(candidate.k1, len(db) - 1), k2=candidate.k2), q, db
    ranks = rank(q, db)
    if candidate.reranking == "α-QE":
        q = alpha_query_expansion(q, db, k=index.qe_k, alpha=index.qe_alpha, ranks=ranks)
        ranks = rank(q, db)
    return ranks, q, db


def candidate_aps(index: RetrievalIndex, candidate: Candidate) -> np.ndarray:
    """Every query's AP under one candidate, scored by the dataset's protocol (Medium for the revisited one).

    Returns:
        Shape (n_queries,), NaN for a query without positives.
    """
    ranks, _, _ = _ranking(index, candidate)
    return np.asarray(score(ranks, index.dataset).aps, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class CandidateGrid:
    """Every candidate's per-query APs, and the split they are read through.

    Attributes:
        candidates: the candidates evaluated.
        aps: per candidate, every query's AP, shape (len(candidates), n_queries).
        split: the :class:`QuerySplit`.
        full_dim: the descriptors' dimension without PCA (for :meth:`Candidate.cost`).
        left_out: candidates not evaluated, with why (a d above what the whitening supports).
        n_resamples: bootstrap resamples of every interval.
    """

    candidates: tuple[Candidate, ...]
    aps: np.ndarray
    split: QuerySplit
    full_dim: int
    left_out: tuple[str, ...] = ()
    n_resamples: int = 10_000

    def aps_of(self, candidate: Candidate, part: str) -> np.ndarray:
        """One candidate's APs on the ``"tuning"`` or ``"test"`` queries."""
        return self.aps[self.candidates.index(candidate), self.split.part(part)]

    def interval(self, candidate: Candidate, part: str = "tuning") -> Interval:
        """One candidate's mAP on a part with its 95 % cluster-bootstrap interval."""
        clusters = np.asarray(self.split.clusters)[self.split.part(part)]
        return bootstrap_interval(self.aps_of(candidate, part), n_resamples=self.n_resamples, seed=0,
                                  clusters=clusters, unit=self.split.unit)

    def versus(self, candidate: Candidate, other: Candidate, part: str = "tuning") -> Interval:
        """mAP(candidate) − mAP(other) on a part, with its paired 95 % cluster-bootstrap interval."""
        clusters = np.asarray(self.split.clusters)[self.split.part(part)]
        return paired_bootstrap(self.aps_of(candidate, part), self.aps_of(other, part), n_resamples=self.n_resamples,
                                seed=0, clusters=clusters, unit=self.split.unit)

    def mean(self, candidate: Candidate, part: str = "tuning") -> float:
        """One candidate's mAP on a part."""
        return float(np.nanmean(self.aps_of(candidate, part)))

    def ranked(self, part: str = "tuning") -> list[Candidate]:
        """The candidates, best mAP on ``part`` first (ties: the cheaper first)."""
        return sorted(self.candidates, key=lambda c: (-round(self.mean(c, part), 12), c.cost(self.full_dim)))

    def table(self, top: int = 12, part: str = "tuning") -> str:
        """The ``top`` candidates on ``part``, best first, each with its interval, then how many were tried."""
        ranked = self.ranked(part)
        shown = ranked[:top]
        width = max(len(c.label) for c in shown)
        first = self.interval(shown[0], part)
        lines = [f"{'candidate':<{width}}  mAP on the {first.n_queries} {part} queries [95 % CI, {first.resampled}]"]
        lines += [f"{c.label:<{width}}  {self.interval(c, part).estimate:.3f} "
                  f"[{self.interval(c, part).low:.3f}, {self.interval(c, part).high:.3f}]" for c in shown]
        lines.append(f"({len(shown)} of {len(self.candidates)} candidates shown; the worst, {ranked[-1].label}: "
                     f"{self.mean(ranked[-1], part):.3f})")
        if first.too_few_clusters:
            lines.append(f"Only {first.resampled}, fewer than {MIN_CLUSTERS}: these intervals are too coarse to rule "
                         f"much out; read them with each {self.split.unit[:-1] if self.split.unit.endswith('s') else self.split.unit}'s own result.")
        if self.left_out:
            lines.append(f"left out, {len(self.left_out)}: " + "; ".join(self.left_out))
        return "\n".join(lines)


def evaluate_grid(index: RetrievalIndex, candidates: Sequence[Candidate], split: QuerySplit,
                  n_resamples: int = 10_000) -> CandidateGrid:
    """Every candidate's per-query APs on every query (the split says which ones a choice may look at).

    A candidate whose d is above what the whitening supports (the embedded set's 192
    training crops stop at d = 191), or that needs a whitening the index lacks, is left
    out and named in :attr:`CandidateGrid.left_out`.

    Args:
        index: the :class:`~cbir_lab.index.RetrievalIndex`.
        candidates: from :func:`candidate_grid`.
        split: from :func:`split_queries` (over the same queries).
        n_resamples: bootstrap resamples of the intervals.

    Returns:
        The :class:`CandidateGrid`.
    """
    if len(split.tuning) != index.dataset.n_queries:
        raise ValueError(f"evaluate_grid: the split has {len(split.tuning)} queries, the index "
                         f"{index.dataset.n_queries}")
    kept, rows, left_out = [], [], []
    for candidate in dict.fromkeys(candidates):
        if candidate.dim is not None:
            if not index.can_whiten:
                left_out.append(f"{candidate.label} (no whitening set: only 'no PCA' candidates)")
                continue
            top = index.max_dim(candidate.pooling)
            if candidate.dim > top:
                left_out.append(f"{candidate.label} (this whitening supports d <= {top})")
                continue
        kept.append(candidate)
        rows.append(candidate_aps(index, candidate))
    if not kept:
        raise ValueError("evaluate_grid: no candidate could be evaluated: " + "; ".join(left_out))
    full_dim = int(index.descriptors(kept[0].pooling)[1].shape[1])
    return CandidateGrid(tuple(kept), np.vstack(rows), split, full_dim, tuple(left_out), n_resamples)


# ---------------------------------------------------------------- choosing, and the report


def choose_setting(grid: CandidateGrid, rule: str = "cheapest tied with the best") -> Candidate:
    """The setting the tuning queries defend.

    * ``"best"``: the highest tuning mAP (ties: the cheaper).
    * ``"cheapest tied with the best"``: among the candidates whose paired 95 % interval of
      (candidate − best) on the tuning queries reaches 0 (the data cannot tell them apart), the
      cheapest by :meth:`Candidate.cost` (no re-ranking before α-QE before k-reciprocal, then
      fewer floats per image), ties broken by the tuning mAP. A paired interval, because every
      candidate is scored on the same queries: a landmark that is hard for one is hard for all,
      and two separate intervals would overlap even where every query agrees.

    Args:
        grid: from :func:`evaluate_grid`.
        rule: one of the two above.

    Returns:
        The chosen :class:`Candidate`.
    """
    ranked = grid.ranked("tuning")
    if rule == "best":
        return ranked[0]
    if rule != "cheapest tied with the best":
        raise ValueError(f"choose_setting: rule must be 'best' or 'cheapest tied with the best', got {rule!r}")
    best = ranked[0]
    tied = [c for c in ranked if grid.versus(c, best).high >= 0]
    return min(tied, key=lambda c: (c.cost(grid.full_dim), -grid.mean(c)))


def final_report(grid: CandidateGrid, choice: Candidate, baseline: Candidate) -> str:
    """The chosen setting on the test queries, against a baseline and against hindsight.

    Rows, all on the test queries only: the baseline; the choice; and, when it differs, the
    candidate that scores best *on the test queries* (what choosing on them would have
    reported: an optimistic number, shown to measure the optimism, never to be claimed).
    Then the choice's tuning mAP beside its test mAP.

    Returns:
        :func:`~cbir_lab.studies.real_photos.evidence_table` of those rows (each mAP with its
        cluster interval, each difference to the baseline with its paired interval, each
        cluster's own mAP when there are fewer than ten), then the tuning-to-test line.
    """
    for who, candidate in (("choice", choice), ("baseline", baseline)):
        if candidate not in grid.candidates:
            raise ValueError(f"final_report: the {who} {candidate.label} is not in the grid")
    hindsight = grid.ranked("test")[0]
    picked = [(baseline, "baseline"), (choice, "chosen on tuning")]
    if hindsight not in (choice, baseline):
        picked.append((hindsight, "best on test, in hindsight"))
    test = grid.split.part("test")
    clusters = tuple(np.asarray(grid.split.clusters)[test].tolist())
    rows = []
    for candidate, role in picked:
        aps = grid.aps_of(candidate, "test")
        dim = grid.full_dim if candidate.dim is None else candidate.dim
        rows.append(MethodScore(f"{role}: {candidate.without_dim}", candidate.dim is not None, False, dim,
                                {"mAP": float(np.nanmean(aps))}, aps, clusters, grid.split.unit))
    tuned, tested = grid.interval(choice, "tuning"), grid.interval(choice, "test")
    return (evidence_table(rows) + f"\n\nThe choice, {choice.label}: mAP {tuned.estimate:.3f} on the tuning queries, "
            f"{tested.estimate:.3f} on the test queries ({tested.estimate - tuned.estimate:+.3f}).")


# ---------------------------------------------------------------- one failure, shown


def worst_query(grid: CandidateGrid, candidate: Candidate, part: str = "test") -> int:
    """The query of ``part`` with the lowest AP under ``candidate`` (ties: the first); its index among all queries."""
    queries = grid.split.part(part)
    aps = grid.aps_of(candidate, part)
    if np.isnan(aps).all():
        raise ValueError(f"worst_query: no {part} query has an AP")
    return int(queries[int(np.nanargmin(aps))])


@dataclass(frozen=True)
class RankedList:
    """One query's top results under one candidate, in the form :func:`cbir_lab.viz.plot_ranking` draws.

    Attributes:
        query: the query's index.
        indices: database indices, best first, shape (k,).
        scores: their cosine similarity to the query under the candidate's descriptors (before any
            re-ranking: α-QE and k-reciprocal change the order, not this similarity).
        statuses: per result ``"correct"``, ``"junk"`` or ``"wrong"``.
        ap: the query's AP under the candidate.
        positive_ranks: the 1-based rank of each of the query's positives in the full list, ascending.
    """

    query: int
    indices: np.ndarray
    scores: np.ndarray
    statuses: tuple[str, ...]
    ap: float
    positive_ranks: np.ndarray


def ranked_list(index: RetrievalIndex, candidate: Candidate, query: int, k: int = 8) -> RankedList:
    """One query's top ``k`` under ``candidate``, each marked correct, junk or wrong (Medium for revisited sets)."""
    if int(query) != query or not 0 <= query < index.dataset.n_queries:
        raise ValueError(f"query must be an integer in 0..{index.dataset.n_queries - 1}, got {query!r}")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    ranks, q, db = _ranking(index, candidate)
    ranking = ranks[:, int(query)]
    top = ranking[: int(k)]
    gnd = index.scored_gnd()[int(query)]
    original = q if candidate.reranking != "α-QE" else _ranking(index, replace(candidate, reranking="none"))[1]
    where = np.empty(len(ranking), dtype=np.int64)
    where[ranking] = np.arange(1, len(ranking) + 1)
    # a junk image is left out of the AP; a positive's rank is counted in the full list, junk included
    return RankedList(int(query), top.copy(), (db[top] @ original[int(query)]).astype(np.float64),
                      tuple(result_status(int(i), gnd) for i in top),
                      float(score(ranks, index.dataset).aps[int(query)]), np.sort(where[np.asarray(gnd["ok"], int)]))


def missed_positives(index: RetrievalIndex, candidate: Candidate, query: int, k: int = 8) -> RankedList:
    """The ``k`` positives of one query that ``candidate`` ranks lowest, lowest last: what the system missed.

    Returns:
        A :class:`RankedList` whose ``indices`` are those positives in rank order (every status
        ``"correct"``) and whose ``positive_ranks`` are their 1-based ranks in the full list.
    """
    shown = ranked_list(index, candidate, query, k=1)
    ranks, q, db = _ranking(index, candidate)
    ranking = ranks[:, int(query)]
    where = np.empty(len(ranking), dtype=np.int64)
    where[ranking] = np.arange(1, len(ranking) + 1)
    positives = np.asarray(index.scored_gnd()[int(query)]["ok"], dtype=np.int64)
    if positives.size == 0:
        raise ValueError(f"query {query} has no positives: nothing can be missed")
    lowest = positives[np.argsort(where[positives], kind="stable")][-int(k):]
    original = q if candidate.reranking != "α-QE" else _ranking(index, replace(candidate, reranking="none"))[1]
    return RankedList(int(query), lowest, (db[lowest] @ original[int(query)]).astype(np.float64),
                      ("correct",) * len(lowest), shown.ap, where[lowest])


def failure_summary(index: RetrievalIndex, result: RankedList) -> str:
    """What went wrong for one query, in a few lines: its AP, where its positives are, what came first instead.

    The wrong results are named by their group (landmark, source photo, sub-folder) when the
    database has groups, so a confusion between two places shows as such.
    """
    dataset = index.dataset
    positives = result.positive_ranks
    n_db = dataset.n_db
    lines = [f"query {result.query} ({dataset.query_label(result.query)}): AP {result.ap:.3f}, "
             f"{len(positives)} positives among {n_db} images"]
    if len(positives):
        lines.append(f"its positives sit at ranks {', '.join(map(str, positives[:10]))}"
                     + (", …" if len(positives) > 10 else "")
                     + f"; the median positive at rank {int(np.median(positives))}")
    wrong = [int(i) for i, s in zip(result.indices, result.statuses) if s == "wrong"]
    if wrong and dataset.groups is not None:
        from collections import Counter

        counts = Counter(dataset.groups[i] for i in wrong)
        lines.append(f"wrong results in its top {len(result.indices)}: "
                     + ", ".join(f"{n} × {group}" for group, n in counts.most_common()))
    elif not wrong:
        lines.append(f"no wrong result in its top {len(result.indices)}: its positives come later or are junk")
    return "\n".join(lines)
