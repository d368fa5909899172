r"""The retrieval core: descriptors → rankings → scores, each computed once and shared.

Widgets, the talk mode, the CLI and the notebooks all go through this module,
so a number shown in a widget is the number the CLI prints: it comes from the
same object.

* :class:`RetrievalIndex`: for one :class:`~cbir_lab.pipeline.DatasetFeatures`,
  the descriptors, similarities, rankings and per-query APs of every setting
  (pooling, whitening, query expansion), the fitted whitenings, the typical
  query, and the whitening sweeps of lesson 3, each memoised.
* :func:`retrieve`: one query's top-k under one setting, as a :class:`QueryResult`;
  :func:`precision_recall_by_method` compares one query across poolings.
* :func:`comparison_table`: the methods' scores under
  the dataset's own protocol, as :class:`MethodScore` rows with per-query APs
  (for bootstrap intervals); :func:`compare_methods` gives the paired interval of
  each method against a reference.
* :func:`contribution_map` / :func:`explain_match`: "why did this match?", the
  similarity of two images split over the cells of one of them.
* :func:`pair_similarities`: a few images compared under several poolings.
* :func:`score_descriptors` scores any descriptors of a dataset as a table row, and
  :func:`depth_comparison` pools maps at several depths of a network and sets them
  beside its own fully connected outputs (conv against FC descriptors).
* :func:`dimension_grid`, :func:`train_vs_test_curves`, :func:`whitening_gains`:
  what PCA-whitening does as the dimension d changes.

**What the contribution map shows.** Let :math:`q` be the other image's final
descriptor and :math:`X` the (C, H, W) map of the image explained. Every global
pooling writes its vector as a sum over cells, :math:`g = \sum_{y,x} G[:, y, x]`
(:func:`cbir_lab.pooling.cell_allocation`); R-MAC splits each region's MAC the
same way and scales it by that region's normalisation. Without whitening the
score is :math:`s = q^\top g / \lVert g\rVert`, so the map
:math:`M_{yx} = q^\top G[:, y, x] / \lVert g \rVert` sums to the score exactly.
With PCA-whitening :math:`z = P(g/\lVert g\rVert - m)` (P from
:meth:`~cbir_lab.whitening.PCAWhitening.projection`), the score
:math:`q^\top z / \lVert z \rVert` is
:math:`\sum_{yx} (P^\top q)^\top G[:, y, x] / (\lVert g\rVert \lVert z\rVert) - (P^\top q)^\top m / \lVert z\rVert`:
the map holds the first sum and :attr:`Contribution.offset` the second, the
*mean term*, which belongs to no location. In both cases
``map.sum() + offset == score`` up to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from cbir_lab import aggregation, encodings
from cbir_lab.evaluation import (
    Interval,
    compute_map,
    evaluate,
    aps_from_scores,
    bootstrap_interval,
    median_ap_query,
    paired_bootstrap,
    precision_recall,
    score,
    scoring_gnd,
)
from cbir_lab.pipeline import DatasetFeatures, describe, global_descriptors, learn_whitening
from cbir_lab.pooling import GEM, MAC, SPOC, STANDARD_POOLINGS, Pooling, cell_allocation, rmac_regions
from cbir_lab.search import (alpha_query_expansion, database_augmentation, diffusion_rank, rank,
                             reached_only_by_diffusion, similarities)
from cbir_lab.whitening import PCAWhitening, l2n

__all__ = [
    "RetrievalIndex",
    "QueryResult",
    "result_status",
    "retrieve",
    "precision_recall_by_method",
    "MethodScore",
    "comparison_table",
    "headline_score",
    "compare_methods",
    "scored_row",
    "score_intervals",
    "interval_vs",
    "compare_settings",
    "Contribution",
    "contribution_map",
    "explain_match",
    "compare_images",
    "pair_similarities",
    "score_descriptors",
    "depth_comparison",
    "dimension_grid",
    "train_vs_test_curves",
    "whitening_curves",
    "whitening_table",
    "encoding_comparison",
    "reranking_table",
    "diffusion_recoveries",
    "WordVocabularies",
    "learn_word_vocabularies",
    "visual_words",
    "WhiteningGain",
    "whitening_gains",
    "held_out_dimension",
]


def headline_score(scores: dict[str, float]) -> float:
    """The one number a curve or a bar plots: mAP, or the Medium mAP of the revisited protocol."""
    return float(scores["mAP"] if "mAP" in scores else scores["medium"])


def result_status(index: int, gnd: dict | None) -> str:
    """``"correct"``, ``"junk"`` or ``"wrong"`` for a database index, ``"unknown"`` without ground truth.

    Args:
        index: a database index.
        gnd: the query's ``{'ok', 'junk'}`` (see :func:`cbir_lab.evaluation.scoring_gnd`), or None.

    Examples:
        >>> result_status(3, {"ok": [3], "junk": [4]}), result_status(4, {"ok": [3], "junk": [4]})
        ('correct', 'junk')
    """
    if gnd is None:
        return "unknown"
    if index in gnd["ok"]:
        return "correct"
    if index in gnd["junk"]:
        return "junk"
    return "wrong"


Setting = tuple[Pooling, bool, bool]  # (pooling, whitened, query expansion)


class RetrievalIndex:
    """Everything the course computes on one dataset's features, each thing once.

    A *setting* is (pooling, whitened, query expansion). The first request for a
    setting computes its descriptors, the (n_queries, n_db) similarities, the
    full rankings and every query's AP; later requests only index arrays.
    Whitenings are learned on the features' training images
    (:func:`cbir_lab.pipeline.learn_whitening`) and kept, so the descriptors, the
    "why did this match?" maps and the whitening lab use the same fitted object.

    Args:
        features: from :func:`cbir_lab.pipeline.extract_dataset`.
        qe_k: how many top results α-QE averages.
        qe_alpha: α of α-QE (α = 0 is average QE).

    Attributes:
        features, dataset: what was indexed.
        gnd: per query, ``{'ok', 'junk'}`` (the Medium setting for revisited
            datasets; :func:`cbir_lab.evaluation.scoring_gnd`), or ``None`` without
            ground truth. Rankings shown to a person, their APs and the typical
            query use it; :meth:`scores` uses the dataset's full protocol.

    Examples:
        >>> index = RetrievalIndex(features)  # doctest: +SKIP
        >>> index.setting("GeM")["map"]  # doctest: +SKIP
        0.758
    """

    def __init__(self, features: DatasetFeatures, qe_k: int = 5, qe_alpha: float = 3.0) -> None:
        if int(qe_k) != qe_k or qe_k < 1:
            raise ValueError(f"qe_k must be a positive integer, got {qe_k!r}")
        self.features = features
        self.dataset = features.dataset
        self.qe_k = int(qe_k)
        self.qe_alpha = float(qe_alpha)
        ds = self.dataset
        self.gnd = scoring_gnd(ds.gnd, ds.protocol) if ds.has_ground_truth else None
        self._whitenings: dict[tuple[Pooling, str], PCAWhitening] = {}
        self._descriptors: dict[tuple[Pooling, bool], tuple[np.ndarray, np.ndarray]] = {}
        self._settings: dict[Setting, dict] = {}
        self._coordinates: dict[tuple[Pooling, str], tuple[np.ndarray, np.ndarray]] = {}
        self._sweep: dict[tuple[Pooling, str, float, int], float] = {}
        self._scaled: dict[Pooling, tuple] = {}

    # ------------------------------------------------------------------ descriptors

    @property
    def can_whiten(self) -> bool:
        """Whether the features have training images to learn a whitening on."""
        return bool(self.features.train_maps)

    def whitening(self, pooling: Pooling | str, part: str = "train") -> PCAWhitening:
        """The PCA-whitening of ``pooling`` learned on ``part`` (every useful component, λ^-1/2), memoised.

        For R-MAC it is learned on the regional vectors, as R-MAC whitens them.
        """
        key = (Pooling.parse(pooling), part)
        if key not in self._whitenings:
            self._whitenings[key] = learn_whitening(self.features, key[0], part=part)
        return self._whitenings[key]

    def descriptors(self, pooling: Pooling | str, whiten: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(query_vecs, db_vecs) of :func:`cbir_lab.pipeline.global_descriptors`, memoised."""
        key = (Pooling.parse(pooling), bool(whiten))
        if key not in self._descriptors:
            whitening = self.whitening(key[0]) if whiten else False
            self._descriptors[key] = global_descriptors(self.features, key[0], whitening)
        return self._descriptors[key]

    def setting(self, pooling: Pooling | str, whiten: bool = False, query_expansion: bool = False) -> dict:
        """The memoised arrays of one setting.

        Returns:
            A dict with ``query_vecs`` (n_q, d) (expanded when ``query_expansion``),
            ``db_vecs`` (n_db, d), ``similarities`` (n_q, n_db), ``ranks`` (n_db, n_q)
            and, with ground truth, ``aps`` (n_q,; NaN for queries without positives)
            and ``map``.
        """
        key = (Pooling.parse(pooling), bool(whiten), bool(query_expansion))
        if key not in self._settings:
            q, db = self.descriptors(key[0], key[1])
            ranks = rank(q, db)
            if query_expansion:
                q = alpha_query_expansion(q, db, k=self.qe_k, alpha=self.qe_alpha, ranks=ranks)
                ranks = rank(q, db)
            entry = {"query_vecs": q, "db_vecs": db, "similarities": similarities(q, db), "ranks": ranks}
            if self.gnd is not None:
                result = compute_map(ranks, self.gnd)
                entry["aps"], entry["map"] = result.aps, result.map
            self._settings[key] = entry
        return self._settings[key]

    def scores(self, pooling: Pooling | str, whiten: bool = False, query_expansion: bool = False) -> dict[str, float]:
        """The setting's scores under the dataset's own protocol (:func:`cbir_lab.evaluation.evaluate`), memoised."""
        entry = self.setting(pooling, whiten, query_expansion)
        if "scores" not in entry:
            entry["scores"] = evaluate(entry["ranks"], self.dataset.gnd, self.dataset.protocol)
        return entry["scores"]

    def precompute(self, poolings: Sequence[Pooling | str] = STANDARD_POOLINGS) -> None:
        """Compute every setting of ``poolings`` now (whitened ones when a training split exists).

        A pooling that cannot be computed (R-MAC on pooled vectors without maps, say)
        is skipped: asking for it later raises the same error where it can be shown.
        """
        for pooling in poolings:
            try:
                for whiten in (False, True) if self.can_whiten else (False,):
                    for query_expansion in (False, True):
                        self.setting(pooling, whiten, query_expansion)
            except ValueError:
                continue

    def computed_settings(self) -> list[tuple[Pooling, bool, bool]]:
        """The (pooling, whitened, query expansion) settings computed so far."""
        return list(self._settings)

    def typical_query(self, pooling: Pooling | str = GEM, whiten: bool = False) -> int:
        """The query whose AP is the median AP under ``pooling``: a ranking with hits and misses.

        The best query makes every method look perfect and the worst makes none
        work; the median one shows what the method switch changes. Revisited
        datasets count easy and hard images as positives (Medium), like :attr:`gnd`.

        Returns:
            A query index; 0 when the dataset has no ground truth.
        """
        if self.gnd is None:
            return 0
        aps = self.setting(pooling, whiten)["aps"]
        return 0 if np.isnan(aps).all() else median_ap_query(aps)

    # ------------------------------------------------------------------ the whitening sweep (lesson 3)

    def _sweep_coordinates(self, pooling: Pooling, part: str) -> tuple[np.ndarray, np.ndarray]:
        key = (pooling, part)
        if key not in self._coordinates:
            whitening = self.whitening(pooling, part)
            self._coordinates[key] = (whitening.coordinates(self.features.pooled("query", pooling)),
                                      whitening.coordinates(self.features.pooled("db", pooling)))
        return self._coordinates[key]

    def prepare_sweeps(self, poolings: Sequence[Pooling | str], part: str = "train",
                       dims: Sequence[int] | None = None, power: float = 0.5) -> None:
        """Learn each pooling's whitening on ``part``, project on it, and score ``dims``: the poolings side by side.

        What :meth:`whitening_curve` computes, for several poolings at once. Each
        pooling's chain (covariance, eigendecomposition, projection, then one ranking
        per d) is BLAS and numpy work with serial stretches; run one per core, each with
        its share of the BLAS threads, the chains fill each other's gaps. For SPoC and
        MAC learned on 10,000 × 1,280 vectors on 2 cores, the whitening lab's refit
        takes about 1.8 s this way against 2.3 s one pooling after the other. The
        results are the same computations, memoised as :meth:`whitening` and
        :meth:`whitened_aps` memoise them.

        Args:
            poolings: the global poolings (regional ones are skipped: their sweep whitens
                regional vectors per d).
            part: what the whitenings are learned on.
            dims: the dimensions to score (each at most :meth:`max_dim`); ``None``
                prepares the projections only.
            power: the eigenvalue exponent of the scored whitenings.
        """
        import os
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        def prepare(pooling: Pooling) -> None:
            self._sweep_coordinates(pooling, part)
            if dims is not None:
                self.whitening_curve(pooling, dims, power, part)

        todo = [p for p in dict.fromkeys(map(Pooling.parse, poolings)) if not p.regional]
        cores = os.cpu_count() or 1
        if len(todo) < 2 or cores < 2:
            for pooling in todo:
                prepare(pooling)
            return
        workers = min(len(todo), cores)
        with threadpool_limits(limits=max(1, cores // workers)), ThreadPoolExecutor(workers) as pool:
            list(pool.map(prepare, todo))

    def max_dim(self, pooling: Pooling | str, part: str = "train") -> int:
        """The largest d a whitening of ``pooling`` learned on ``part`` supports (at most n - 1)."""
        return self.whitening(pooling, part).n_components_

    def whitened(self, pooling: Pooling | str, d: int, power: float = 0.5, part: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Queries and database whitened to d dimensions by the whitening learned on ``part``.

        Equal to :func:`cbir_lab.pipeline.global_descriptors` with
        ``learn_whitening(features, pooling, d, power, part)``; for global poolings it
        slices coordinates projected once, so a sweep over d costs one projection.
        """
        pooling = Pooling.parse(pooling)
        whitening = self.whitening(pooling, part)
        if pooling.regional:
            regions = self.features.regional
            return (whitening.at(d, power).transform_regions(regions("query", pooling.levels)),
                    whitening.at(d, power).transform_regions(regions("db", pooling.levels)))
        query, db = self._sweep_coordinates(pooling, part)
        return whitening.whiten_coordinates(query, d, power), whitening.whiten_coordinates(db, d, power)

    def whitened_aps(self, pooling: Pooling | str, d: int, power: float = 0.5, part: str = "train") -> np.ndarray:
        """Per-query APs (Medium for revisited datasets) of :meth:`whitened` descriptors, memoised."""
        pooling = Pooling.parse(pooling)
        key = (pooling, part, float(power), int(d))
        if key not in self._sweep:
            if self.gnd is None:
                raise ValueError(f"dataset {self.dataset.name!r} has no ground truth: nothing to score")
            if pooling.regional:
                scores = similarities(*self.whitened(pooling, d, power, part))
            else:
                scores = self._sweep_similarities(pooling, int(d), float(power), part)
            self._sweep[key] = aps_from_scores(scores, self.gnd)
        return self._sweep[key]

    def whitened_score(self, pooling: Pooling | str, d: int, power: float = 0.5, part: str = "train") -> float:
        """The mAP (Medium for revisited datasets) of :meth:`whitened` descriptors, memoised."""
        return float(np.nanmean(self.whitened_aps(pooling, d, power, part)))

    def _sweep_similarities(self, pooling: Pooling, d: int, power: float, part: str) -> np.ndarray:
        """Cosine similarities of the queries and the database whitened to d, without a copy of them per d."""
        setting = (part, power)
        if self._scaled.get(pooling, (None,))[0] != setting:  # one setting per pooling kept: 2 × (n_db, k) floats
            whitening = self.whitening(pooling, part)
            self._scaled[pooling] = (setting, *(whitening.scaled_coordinates(c, power)
                                                for c in self._sweep_coordinates(pooling, part)))
        _, (query, query_prefix), (db, db_prefix) = self._scaled[pooling]
        if not 1 <= d <= query.shape[1]:
            raise ValueError(f"d must be in 1..{query.shape[1]} for this whitening, got {d}")
        dots = query[:, :d] @ db[:, :d].T
        norms = np.sqrt(np.maximum(query_prefix[:, d - 1], 1e-24))[:, None] * np.sqrt(np.maximum(db_prefix[:, d - 1], 1e-24))
        return dots / norms

    def l2_score(self, pooling: Pooling | str) -> float:
        """The headline mAP of L2-normalised descriptors without PCA: every whitening curve's baseline."""
        return headline_score(self.scores(pooling))

    def curve_is_ready(self, pooling: Pooling | str, dims: Sequence[int], power: float = 0.5, part: str = "train") -> bool:
        """Whether the whitening and every point of this curve are already computed
        (a widget that must compute them first can say so before it starts)."""
        pooling = Pooling.parse(pooling)
        if (pooling, part) not in self._whitenings:
            return False
        return all((pooling, part, float(power), int(d)) in self._sweep for d in dims)

    def whitening_curve(self, pooling: Pooling | str, dims: Sequence[int], power: float = 0.5,
                        part: str = "train") -> np.ndarray:
        """The headline mAP at each d of ``dims`` (each at most :meth:`max_dim`)."""
        return np.array([self.whitened_score(pooling, d, power, part) for d in dims])


# --------------------------------------------------------------------------- one query


@dataclass(frozen=True)
class QueryResult:
    """One query's top-k under one setting.

    Attributes:
        query: the query's index.
        pooling, whitened, query_expansion: the setting.
        indices: (k,) database indices, best first.
        scores: (k,) their similarities to the (expanded) query.
        statuses: per result ``"correct"``, ``"junk"``, ``"wrong"`` (``"unknown"`` without ground truth).
        ap: the query's AP over the full ranking (NaN without positives, None without ground truth).
        mean_ap: the setting's mAP over all queries (None without ground truth).
        recall, precision: the full ranking's PR points (junk removed), or None.
        n_positives: how many positives the query has (None without ground truth).
    """

    query: int
    pooling: Pooling
    whitened: bool
    query_expansion: bool
    indices: np.ndarray
    scores: np.ndarray
    statuses: tuple[str, ...]
    ap: float | None
    mean_ap: float | None
    recall: np.ndarray | None
    precision: np.ndarray | None
    n_positives: int | None

    @property
    def method(self) -> str:
        """The pooling's display name, e.g. ``"GeM"``."""
        return self.pooling.name

    @property
    def setting_label(self) -> str:
        """E.g. ``"GeM, whitened, α-QE"``."""
        return ", ".join([self.method] + (["whitened"] if self.whitened else []) + (["α-QE"] if self.query_expansion else []))

    @property
    def n_correct(self) -> int:
        """How many of the shown results are correct."""
        return sum(status == "correct" for status in self.statuses)


def retrieve(index: RetrievalIndex, query: int, pooling: Pooling | str = SPOC, whiten: bool = False,
             query_expansion: bool = False, k: int = 8) -> QueryResult:
    """One query's top-k results, their status, its AP and its precision-recall curve.

    Ties are broken by the smaller database index (as :func:`cbir_lab.search.rank`).

    Args:
        index: the :class:`RetrievalIndex`.
        query: 0-based query index.
        pooling: a :class:`~cbir_lab.pooling.Pooling` or its name.
        whiten: PCA-whitening learned on the training split.
        query_expansion: α-QE (``index.qe_k``, ``index.qe_alpha``).
        k: how many results to return (clipped to the database size).

    Returns:
        The :class:`QueryResult`.
    """
    n_q = index.dataset.n_queries
    if int(query) != query or not 0 <= query < n_q:
        raise ValueError(f"query must be an integer in 0..{n_q - 1}, got {query!r}")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    query = int(query)
    pooling = Pooling.parse(pooling)
    entry = index.setting(pooling, whiten, query_expansion)
    ranking = entry["ranks"][:, query]
    top = ranking[: min(int(k), len(ranking))]
    gnd = index.gnd[query] if index.gnd is not None else None
    statuses = tuple(result_status(int(i), gnd) for i in top)
    ap = recall = precision = n_positives = None
    if gnd is not None:
        n_positives = len(gnd["ok"])
        ap = float(entry["aps"][query])
        if n_positives:
            recall, precision = precision_recall(ranking, gnd["ok"], gnd["junk"])
    return QueryResult(query, pooling, bool(whiten), bool(query_expansion), top.copy(),
                       entry["similarities"][query, top].copy(), statuses, ap, entry.get("map"), recall, precision,
                       n_positives)


def precision_recall_by_method(
    index: RetrievalIndex, query: int, poolings: Sequence[Pooling | str] = STANDARD_POOLINGS,
    whiten: bool = False, query_expansion: bool = False,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, float]]:
    """One query's precision-recall curve and AP under several poolings, for one plot.

    Args:
        index: the :class:`RetrievalIndex`.
        query: 0-based query index (it must have positives).
        poolings: the poolings compared.
        whiten, query_expansion: the setting, the same for every pooling.

    Returns:
        (curves, aps): name → (recall, precision), and name → AP, as
        :func:`cbir_lab.viz.retrieval.plot_precision_recall` takes them.
    """
    curves, aps = {}, {}
    for pooling in poolings:
        result = retrieve(index, query, pooling, whiten, query_expansion)
        if result.recall is None:
            raise ValueError(f"query {query} has no positives (or the dataset no ground truth): no precision-recall curve")
        curves[result.method] = (result.recall, result.precision)
        aps[result.method] = result.ap
    return curves, aps


# --------------------------------------------------------------------------- comparison tables


@dataclass(frozen=True)
class MethodScore:
    """One row of a comparison table.

    Attributes:
        method: the pooling's display name.
        whitened, query_expansion: the setting.
        dim: the descriptors' dimension.
        scores: the dataset protocol's scores (:func:`cbir_lab.evaluation.evaluate`).
        aps: the per-query APs behind the headline score (Medium for revisited
            datasets), for bootstrap intervals.
        clusters, cluster_unit: per query, the cluster it shares with other queries, and
            what a cluster is (the dataset's :meth:`~cbir_lab.datasets.base.RetrievalDataset.clusters`):
            the intervals resample clusters, not queries.
    """

    method: str
    whitened: bool
    query_expansion: bool
    dim: int
    scores: dict[str, float]
    aps: np.ndarray | None = field(default=None, compare=False, repr=False)
    clusters: tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    cluster_unit: str = "queries"

    @property
    def setting_label(self) -> str:
        """E.g. ``"GeM, whitened"``."""
        return ", ".join([self.method] + (["whitened"] if self.whitened else []) + (["α-QE"] if self.query_expansion else []))


def scored_row(dataset, name: str, dim: int, scores: dict[str, float], aps: np.ndarray | None,
               whitened: bool = False, query_expansion: bool = False) -> MethodScore:
    """A :class:`MethodScore` that carries ``dataset``'s query clusters, so its intervals resample them."""
    return MethodScore(name, whitened, query_expansion, int(dim), scores, aps, dataset.clusters(),
                       dataset.cluster_unit)


def interval_vs(aps, base_aps, dataset, n_resamples: int = 10_000, seed: int = 0) -> Interval:
    """The paired bootstrap interval of mAP(aps) − mAP(base_aps), resampling ``dataset``'s query clusters."""
    return paired_bootstrap(aps, base_aps, n_resamples=n_resamples, seed=seed, clusters=dataset.clusters(),
                            unit=dataset.cluster_unit)


def score_intervals(rows: Sequence[MethodScore], n_resamples: int = 10_000, seed: int = 0) -> dict[str, Interval]:
    """Each row's headline mAP with its bootstrap 95 % interval, resampling the rows' query clusters."""
    return {row.setting_label: bootstrap_interval(row.aps, n_resamples=n_resamples, seed=seed, clusters=row.clusters,
                                                  unit=row.cluster_unit) for row in rows}


def comparison_table(
    index: RetrievalIndex,
    poolings: Sequence[Pooling | str] = STANDARD_POOLINGS,
    whitening: Sequence[bool] = (False, True),
    query_expansion: Sequence[bool] = (False, True),
) -> list[MethodScore]:
    """Each pooling's scores with and without whitening and α-QE, under the dataset's protocol.

    Args:
        index: the :class:`RetrievalIndex` (α-QE uses its ``qe_k`` and ``qe_alpha``).
        poolings: the poolings compared.
        whitening: which of (without, with) whitening to run.
        query_expansion: which of (without, with) α-QE to run.

    Returns:
        One :class:`MethodScore` per (pooling, whitening, QE), in that order, for
        :func:`cbir_lab.viz.retrieval.format_scores`.
    """
    rows = []
    dataset = index.features.dataset
    for pooling in poolings:
        for whiten in whitening:
            for qe in query_expansion:
                entry = index.setting(pooling, whiten, qe)
                rows.append(scored_row(dataset, Pooling.parse(pooling).name, entry["db_vecs"].shape[1],
                                       index.scores(pooling, whiten, qe), entry.get("aps"), bool(whiten), bool(qe)))
    return rows


def compare_methods(rows: Sequence[MethodScore], reference: int | str = 0, n_resamples: int = 10_000,
                    seed: int = 0) -> dict[str, Interval]:
    """Each row's headline score against a reference row's, with a paired bootstrap 95 % interval.

    The bootstrap resamples the rows' query clusters (:attr:`MethodScore.clusters`).

    Args:
        rows: from :func:`comparison_table` (same queries in every row).
        reference: the reference row, by position or by :attr:`MethodScore.setting_label`.
        n_resamples, seed: see :func:`cbir_lab.evaluation.paired_bootstrap`.

    Returns:
        setting label → the :class:`~cbir_lab.evaluation.Interval` of (row − reference),
        for every row but the reference.
    """
    labels = [row.setting_label for row in rows]
    position = labels.index(reference) if isinstance(reference, str) else int(reference)
    base = rows[position]
    if base.aps is None or any(row.aps is None for row in rows):
        raise ValueError("compare_methods needs rows with per-query APs (a dataset with ground truth)")
    return {row.setting_label: paired_bootstrap(row.aps, base.aps, n_resamples=n_resamples, seed=seed,
                                                clusters=row.clusters, unit=row.cluster_unit)
            for i, row in enumerate(rows) if i != position}


def compare_settings(rows: Sequence[MethodScore], change: str, n_resamples: int = 10_000,
                     seed: int = 0) -> dict[str, Interval]:
    """What one change of setting does to each pooling: every row with it against the same row without it.

    For ``change="whitened"`` the row "GeM, whitened" is compared with "GeM", and
    "GeM, whitened, α-QE" with "GeM, α-QE"; likewise for ``"query_expansion"``.

    Args:
        rows: from :func:`comparison_table` (same queries in every row).
        change: ``"whitened"`` or ``"query_expansion"``.
        n_resamples, seed: see :func:`cbir_lab.evaluation.paired_bootstrap`.

    Returns:
        setting label of each row with the change → the paired 95 % interval of
        (row − the row without it); rows whose counterpart is absent are left out.

    Raises:
        ValueError: an unknown ``change``, or rows without per-query APs.
    """
    if change not in ("whitened", "query_expansion"):
        raise ValueError(f"change must be 'whitened' or 'query_expansion', got {change!r}")
    if any(row.aps is None for row in rows):
        raise ValueError("compare_settings needs rows with per-query APs (a dataset with ground truth)")
    by_setting = {(row.method, row.whitened, row.query_expansion): row for row in rows}
    intervals = {}
    for row in rows:
        if not getattr(row, change):
            continue
        without = (row.method, row.whitened and change != "whitened",
                   row.query_expansion and change != "query_expansion")
        if without in by_setting:
            intervals[row.setting_label] = paired_bootstrap(row.aps, by_setting[without].aps,
                                                            n_resamples=n_resamples, seed=seed,
                                                            clusters=row.clusters, unit=row.cluster_unit)
    return intervals


# --------------------------------------------------------------------------- why did this match?


@dataclass(frozen=True)
class Contribution:
    """How much each cell of one image's feature map adds to its similarity with another image.

    Attributes:
        map: (H, W) contribution of each cell (can be negative after whitening).
        offset: the part of the score tied to no cell: the whitening's mean term
            (0 without whitening).
        score: the similarity itself, the inner product of the two final descriptors;
            ``map.sum() + offset == score`` up to float rounding.
        method: the pooling explained (display name).
    """

    map: np.ndarray
    offset: float
    score: float
    method: str

    @property
    def located(self) -> float:
        """The part of the score the map places: ``map.sum()``."""
        return float(self.map.sum())


def _as_map(feature_map) -> np.ndarray:
    if isinstance(feature_map, torch.Tensor):
        feature_map = feature_map.detach().cpu().numpy()
    x = np.asarray(feature_map, dtype=np.float64)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3 or min(x.shape) == 0:
        raise ValueError(f"feature_map must have shape (C, H, W), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("feature_map contains NaN or infinite values")
    return x


def _channel_weights(other: np.ndarray, whitening: PCAWhitening | None,
                     dim: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(v, P, m): v = Pᵀ q brings the other descriptor back to the C channels."""
    if whitening is None:
        if other.shape[0] != dim:
            raise ValueError(f"the other descriptor has dimension {other.shape[0]}, the feature map {dim} channels "
                             "(pass the whitening the descriptors were made with)")
        return other, None, None
    if not hasattr(whitening, "components_"):
        raise ValueError("whitening must be a fitted PCAWhitening")
    if whitening.n_features_in_ != dim:
        raise ValueError(f"the whitening was fitted on dimension {whitening.n_features_in_}, the map has {dim} channels")
    if other.shape[0] != whitening.n_components_:
        raise ValueError(f"the other descriptor has dimension {other.shape[0]}, the whitening outputs {whitening.n_components_}")
    projection = whitening.projection()
    return projection.T @ other, projection, whitening.mean_


def contribution_map(feature_map, other, pooling: Pooling | str, whitening: PCAWhitening | None = None) -> Contribution:
    r"""Split the similarity ⟨other, descriptor(feature_map)⟩ into per-cell contributions.

    The descriptor is built as :func:`cbir_lab.pipeline.global_descriptors`
    builds it: pool, L2 (and without whitening that is all); or pool, L2,
    PCA-whiten, L2 — for R-MAC region by region. See the module docstring for
    the exact decomposition.

    Args:
        feature_map: the explained image's map, shape (C, H, W) (or (1, C, H, W)).
        other: the other image's final descriptor, shape (D,) (e.g. the query's,
            after query expansion if any).
        pooling: a :class:`~cbir_lab.pooling.Pooling` or its name.
        whitening: the fitted whitening the descriptors were whitened with (for
            R-MAC: fitted on regional vectors), or ``None``.

    Returns:
        A :class:`Contribution` with ``map`` of shape (H, W).

    Raises:
        ValueError: unknown pooling, or shapes that do not fit together.

    Examples:
        >>> x = np.zeros((2, 1, 2)); x[0, 0, 0] = 3.0; x[1, 0, 1] = 4.0  # two cells, one channel each
        >>> contribution_map(x, np.array([1.0, 0.0]), "SPoC").map.tolist()  # q·X[:, y, x] / ‖g‖ = 3/5, 0
        [[0.6, 0.0]]
    """
    pooling = Pooling.parse(pooling)
    x = _as_map(feature_map)
    other = np.asarray(other.detach().cpu().numpy() if isinstance(other, torch.Tensor) else other, dtype=np.float64).ravel()
    v, projection, mean = _channel_weights(other, whitening, x.shape[0])
    tiny = 1e-12

    if not pooling.regional:
        pooled, allocation = cell_allocation(x, pooling)
        norm = max(np.linalg.norm(pooled), tiny)
        if projection is None:
            contributions = np.tensordot(v, allocation, axes=1) / norm
            offset = 0.0
        else:
            z = projection @ (pooled / norm - mean)
            z_norm = max(np.linalg.norm(z), tiny)
            contributions = np.tensordot(v, allocation, axes=1) / (norm * z_norm)
            offset = -float(v @ mean) / z_norm
    else:
        parts, terms = [], []
        for top, left, rh, rw in rmac_regions(x.shape[1], x.shape[2], pooling.levels):
            pooled, allocation = cell_allocation(x[:, top : top + rh, left : left + rw], MAC)
            # As regional_vectors (norm clamped at eps), then whitening's own L2.
            region_norm = max(np.linalg.norm(pooled), tiny)
            unit = pooled / region_norm
            if projection is None:
                vec, coef, const = unit, 1.0 / region_norm, 0.0
            else:
                scale = 1.0 / (region_norm * max(np.linalg.norm(unit), tiny))
                z = projection @ (pooled * scale - mean)
                z_norm = max(np.linalg.norm(z), tiny)
                vec, coef, const = z / z_norm, scale / z_norm, -float(v @ mean) / z_norm
            parts.append(vec)
            cell_map = np.zeros(x.shape[1:])
            cell_map[top : top + rh, left : left + rw] = np.tensordot(v, allocation, axes=1) * coef
            terms.append((cell_map, const))
        total = max(np.linalg.norm(np.sum(parts, axis=0)), tiny)
        contributions = sum(m for m, _ in terms) / total
        offset = sum(c for _, c in terms) / total
    score = float(contributions.sum() + offset)
    return Contribution(map=contributions, offset=float(offset), score=score, method=pooling.name)


def explain_match(index: RetrievalIndex, query: int, db_index: int, pooling: Pooling | str = SPOC, whiten: bool = False,
                  query_expansion: bool = False) -> tuple[Contribution, Contribution]:
    """Contribution maps of a query and one database image under one setting.

    The query's map explains the score with the database descriptor held fixed, and
    vice versa; both sum (with the whitening's mean term) to the same score, the
    one the ranking used. With query expansion the database image's map explains
    its score against the *expanded* query (the ranking's score), while the query's
    map explains the plain query–result score (the expanded query has no map of its own).

    Args:
        index: the :class:`RetrievalIndex`.
        query: 0-based query index.
        db_index: 0-based database index of the result to explain.
        pooling, whiten, query_expansion: the setting.

    Returns:
        (query contribution, result contribution), see :func:`contribution_map`.
    """
    entry = index.setting(pooling, whiten, query_expansion)
    whitening = index.whitening(pooling) if whiten else None
    features = index.features
    db = entry["db_vecs"]
    if not (0 <= int(db_index) < len(db)):
        raise ValueError(f"db_index must be in 0..{len(db) - 1}, got {db_index}")
    result = contribution_map(features.db_maps[db_index], entry["query_vecs"][query], pooling, whitening)
    query_side = contribution_map(features.query_maps[query], db[db_index], pooling, whitening)
    return query_side, result


# --------------------------------------------------------------------------- a few images


def compare_images(maps: Sequence, pooling: Pooling | str) -> tuple[np.ndarray, np.ndarray]:
    """A few images' descriptors under one pooling, and the anchor's cosine similarity to the others.

    Args:
        maps: feature maps (C, H, W), at least two; ``maps[0]`` is the anchor.
        pooling: a :class:`~cbir_lab.pooling.Pooling` or its name.

    Returns:
        (descriptors (n, C), L2-normalised; similarities (n - 1,)).

    Examples:
        >>> same, other = np.ones((2, 2, 2)), np.zeros((2, 2, 2)); other[0] = 1.0
        >>> [round(float(s), 4) for s in compare_images([same, same, other], "SPoC")[1]]
        [1.0, 0.7071]
    """
    if len(maps) < 2:
        raise ValueError(f"compare_images needs an anchor and at least one other map, got {len(maps)}")
    vectors = describe(maps, pooling)
    return vectors, vectors[1:] @ vectors[0]


def pair_similarities(maps: Sequence, poolings: Sequence[Pooling | str] = STANDARD_POOLINGS) -> dict[str, np.ndarray]:
    """Cosine similarity of the first map's descriptor to each other map's, per pooling.

    Args:
        maps: feature maps (C, H, W); ``maps[0]`` is the anchor.
        poolings: the poolings compared.

    Returns:
        pooling name → similarities, shape (len(maps) - 1,).
    """
    return {Pooling.parse(pooling).name: compare_images(maps, pooling)[1] for pooling in poolings}


# --------------------------------------------------------------------------- conv against FC descriptors


def score_descriptors(name: str, dataset, query_vecs: np.ndarray, db_vecs: np.ndarray) -> MethodScore:
    """Any descriptors of a dataset's queries and database, ranked and scored as one table row.

    Args:
        name: the row's label.
        dataset: the :class:`~cbir_lab.datasets.base.RetrievalDataset` (with ground truth).
        query_vecs, db_vecs: (n_q, D) and (n_db, D), L2-normalised.

    Returns:
        A :class:`MethodScore` (not whitened, no QE) with the protocol's scores and per-query APs.
    """
    if not dataset.has_ground_truth:
        raise ValueError(f"dataset {dataset.name!r} has no ground truth: nothing to score")
    result = score(rank(query_vecs, db_vecs), dataset)
    return scored_row(dataset, name, np.asarray(db_vecs).shape[1], result.scores, result.aps)


def depth_comparison(
    dataset,
    backbone: str = "efficientnet_lite0",
    layers: Sequence[str] | None = None,
    poolings: Sequence[Pooling | str] = (SPOC, GEM),
    heads: bool = True,
    max_side: int = 384,
    weights: str | None = "imagenet",
    progress: bool | None = False,
) -> list[MethodScore]:
    """Pooled conv maps at several depths of a network, and its own fully connected outputs, on one dataset.

    Before pooled conv maps, retrieval used a classification network's fully
    connected layers as descriptors (Razavian et al. 2014; Babenko et al.'s "Neural
    Codes", 2014: VGG's fc6 and fc7). EfficientNet-Lite0 has a single fully connected
    layer, the classifier; its only input is the global average pool of ``conv_head``,
    that is SPoC, so its 1000 class logits are SPoC seen through a classification layer.

    Args:
        dataset: the dataset (queries are cropped to their boxes, as usual).
        backbone: the network.
        layers: the conv layers to pool (default: the last four the backbone offers).
        poolings: how to pool each of them.
        heads: also score the network's fully connected outputs
            (:attr:`cbir_lab.backbones.Backbone.heads` after its default layer).
        max_side: the long side fed to the network.
        weights: ``"imagenet"``, or ``None`` for random weights (tests).
        progress: show extraction progress bars.

    Returns:
        One :class:`MethodScore` per (layer, pooling), named ``"<layer> <pooling>"``, then
        one per head, named ``"<head> (FC, <dim>-D)"``; L2-normalised, no whitening.
    """
    from dataclasses import replace

    from cbir_lab.backbones import available_backbones, load_backbone
    from cbir_lab.pipeline import extract_dataset

    spec = available_backbones()[backbone]
    layers = list(spec.layers)[-4:] if layers is None else list(layers)
    searched = replace(dataset, train_images=())  # nothing here is whitened: no training maps needed
    rows = []
    for layer in layers:
        net = load_backbone(backbone, layer=layer, weights=weights)
        features = extract_dataset(searched, net, max_side=max_side, cache=weights is not None, progress=progress)
        for pooling in map(Pooling.parse, poolings):
            q, db = global_descriptors(features, pooling)
            rows.append(score_descriptors(f"{layer} {pooling.name}", dataset, q, db))
        if heads and layer == spec.default_layer and net.heads:
            outputs = {part: [net.head_outputs(m.unsqueeze(0)) for m in features.maps(part)] for part in ("query", "db")}
            for head in net.heads:
                q, db = (l2n(np.concatenate([o[head].numpy() for o in outputs[part]])) for part in ("query", "db"))
                rows.append(score_descriptors(f"{head} (FC, {q.shape[1]}-D)", dataset, q.astype(np.float32),
                                              db.astype(np.float32)))
    return rows


# --------------------------------------------------------------------------- PCA-whitening and d (lesson 3)


def dimension_grid(max_dim: int, start: int = 16, step: int = 16, max_points: int = 16) -> list[int]:
    """start, start + step, … up to ``max_dim``, with ``max_dim`` itself last.

    The step grows in multiples of ``step`` so that the grid has about
    ``max_points`` points: each point costs one ranking and one evaluation, and
    a 1,280-d descriptor would otherwise need 80.

    Examples:
        >>> dimension_grid(60)
        [16, 32, 48, 60]
    """
    if max_dim < 1:
        raise ValueError(f"max_dim must be at least 1, got {max_dim}")
    step *= max(1, math.ceil(max_dim / (step * max_points)))
    dims = list(range(start, max_dim + 1, step))
    if not dims or dims[-1] != max_dim:
        dims.append(max_dim)
    return dims


def whitening_curves(
    index: RetrievalIndex, poolings: Sequence[Pooling | str], parts: Mapping[str, str], power: float = 0.5
) -> tuple[dict[str, tuple[list[int], np.ndarray]], dict[str, float]]:
    """mAP against d for whitenings learned on each of several parts, up to the d each allows.

    Args:
        index: the :class:`RetrievalIndex`.
        poolings: the poolings compared.
        parts: part of the features (``"train"``, ``"db"`` or a whitening set's name) → how to
            name it in the curves' labels.
        power: 0.5 full whitening, 0.25 partial, 0 PCA only.

    Returns:
        (curves, baselines): ``"<pooling> (learned on the <label>)"`` → (dims, mAP at each),
        and pooling name → mAP with L2 only.
    """
    curves: dict[str, tuple[list[int], np.ndarray]] = {}
    baselines: dict[str, float] = {}
    for pooling in map(Pooling.parse, poolings):
        baselines[pooling.name] = index.l2_score(pooling)
        for part, label in parts.items():
            dims = dimension_grid(index.max_dim(pooling, part))
            curves[f"{pooling.name} (learned on the {label})"] = (dims, index.whitening_curve(pooling, dims, power, part))
    return curves, baselines


def train_vs_test_curves(
    index: RetrievalIndex, poolings: Sequence[Pooling | str] = (SPOC, MAC), power: float = 0.5
) -> tuple[dict[str, tuple[list[int], np.ndarray]], dict[str, float]]:
    """mAP against d with the whitening learned on the training split, and on the test database itself.

    Learning on the test database is the overfit lesson 3 shows: its curves
    are what a paper that did so would report. See :func:`whitening_curves`.

    Returns:
        (curves, baselines): ``"<name> (learned on the training set)"`` and
        ``"<name> (learned on the test set)"`` → (dims, mAP at each), and
        name → mAP with L2 only.
    """
    return whitening_curves(index, poolings, {"train": "training set", "db": "test set"}, power)


def whitening_table(
    index: RetrievalIndex,
    poolings: Sequence[Pooling | str] = (SPOC, MAC, GEM),
    dims: Sequence[int] = (32, 64, 128, 256, 512),
    part: str = "train",
    power: float = 0.5,
) -> tuple[list[MethodScore], dict[str, Interval]]:
    """Each pooling with L2 only, then whitened to each d of ``dims`` that ``part`` allows, with intervals.

    The papers report whitened descriptors at a few dimensions (32 to 1024); this
    puts our whitening at the same ones, each against the same pooling without it.

    Args:
        index: the :class:`RetrievalIndex`.
        poolings: the poolings.
        dims: the dimensions; those above the part's largest d are left out, and that
            largest d is added last.
        part: what the whitening is learned on (``"train"`` or a whitening set's name).
        power: 0.5 full whitening, 0.25 partial.

    Returns:
        (rows, intervals): :class:`MethodScore` rows named ``"<pooling>"`` (L2 only) and
        ``"<pooling> @<d>"`` (whitened), scored by the headline mAP; and each whitened
        row's label → the paired 95 % interval of its gain over L2 only, for
        :func:`cbir_lab.viz.retrieval.format_scores` (``versus="L2 only"``).
    """
    rows, intervals = [], {}
    for pooling in map(Pooling.parse, poolings):
        plain = index.setting(pooling)
        rows.append(scored_row(index.dataset, pooling.name, plain["db_vecs"].shape[1],
                               {"mAP": index.l2_score(pooling)}, plain["aps"]))
        top = index.max_dim(pooling, part)
        for d in [d for d in dims if d < top] + [top]:
            aps = index.whitened_aps(pooling, d, power, part)
            row = scored_row(index.dataset, f"{pooling.name} @{d}", d, {"mAP": float(np.nanmean(aps))}, aps, True)
            rows.append(row)
            intervals[row.setting_label] = interval_vs(aps, plain["aps"], index.dataset)
    return rows, intervals


def encoding_comparison(
    index: RetrievalIndex,
    encodings: Sequence,
    dims: Sequence[int] = (32, 64, 128),
    part: str = "train",
    pooling: Pooling | str = SPOC,
) -> tuple[list[MethodScore], dict[str, Interval]]:
    """SPoC against vocabulary encodings, all PCA-whitened to the same d, with paired intervals.

    The comparison of Babenko & Lempitsky (2015): every descriptor is reduced by
    PCA-whitening learned on ``part`` (never the test set) to each d of ``dims``
    (those above what ``part`` allows are left out; its largest d is added last),
    then ranked and scored.

    Args:
        index: the :class:`RetrievalIndex` of the features the encodings come from.
        encodings: :class:`~cbir_lab.pipeline.EncodedFeatures`, e.g. VLAD, FV and TE.
        dims: the whitened dimensions.
        part: what the whitenings are learned on (``"train"`` or a whitening set).
        pooling: the pooling compared with (SPoC).

    Returns:
        (rows, intervals): per d, the pooling's row then each encoding's, named
        ``"<name> @<d>"``, scored by the headline mAP; and each encoding row's label
        → the paired 95 % interval of (encoding − pooling) at the same d.
    """
    pooling = Pooling.parse(pooling)
    for encoded in encodings:
        if part not in encoded.vectors:
            raise ValueError(f"{encoded.name} has no vectors for part {part!r}; encode the features that carry it")
    whitenings = {encoded.name: PCAWhitening().fit(encoded.vectors[part]) for encoded in encodings}
    top = min([index.max_dim(pooling, part), *(w.n_components_ for w in whitenings.values())])
    rows, intervals = [], {}
    for d in [d for d in dims if d < top] + [top]:
        base_aps = index.whitened_aps(pooling, d, 0.5, part)
        rows.append(scored_row(index.dataset, f"{pooling.name} @{d}", d, {"mAP": float(np.nanmean(base_aps))}, base_aps,
                               True))
        for encoded in encodings:
            whitening = whitenings[encoded.name]
            q, db = (whitening.at(d).transform(encoded.vectors[p]) for p in ("query", "db"))
            aps = compute_map(rank(q, db), _scored_gnd(index)).aps
            row = scored_row(index.dataset, f"{encoded.name} @{d}", d, {"mAP": float(np.nanmean(aps))}, aps, True)
            rows.append(row)
            intervals[row.setting_label] = interval_vs(aps, base_aps, index.dataset)
    return rows, intervals


def _scored_gnd(index: RetrievalIndex) -> list[dict]:
    """The index's scoring ground truth, or a clear error when the dataset has none."""
    if index.gnd is None:
        raise ValueError(f"dataset {index.dataset.name!r} has no ground truth: nothing to score")
    return index.gnd


def _ranked_row(index: RetrievalIndex, name: str, dim: int, ranks: np.ndarray) -> MethodScore:
    _scored_gnd(index)
    result = score(ranks, index.dataset)
    return scored_row(index.dataset, name, dim, result.scores, result.aps)


def reranking_table(
    index: RetrievalIndex,
    pooling: Pooling | str = SPOC,
    dba_k: int = 3,
    graph_k: int = 5,
    alpha: float = 0.8,
    k_query: int = 5,
    paper_k: int = 50,
    paper_alpha: float = 0.99,
) -> list[MethodScore]:
    """One pooling's ranking, then re-ranked five ways, each scored under the dataset's protocol.

    Rows: the plain ranking; α-QE (the index's ``qe_k``, ``qe_alpha``); database-side
    augmentation (DBA: each database vector replaced by its α-weighted mean with its
    ``dba_k`` nearest neighbours); DBA then α-QE; diffusion on the database's
    reciprocal k-NN graph (:func:`cbir_lab.search.diffusion_rank`) with ``graph_k`` and
    ``alpha``; and diffusion with the paper's ``paper_k`` (capped at the database) and ``paper_alpha``.

    Returns:
        :class:`MethodScore` rows, named ``"<pooling> + …"``, with per-query APs for
        :func:`compare_methods` (reference: the first row).
    """
    pooling = Pooling.parse(pooling)
    q, db = index.descriptors(pooling)
    dim = db.shape[1]
    plain = rank(q, db)
    expanded = alpha_query_expansion(q, db, k=index.qe_k, alpha=index.qe_alpha, ranks=plain)
    augmented = database_augmentation(db, k=dba_k, alpha=index.qe_alpha)
    dba_ranks = rank(q, augmented)
    dba_qe = alpha_query_expansion(q, augmented, k=index.qe_k, alpha=index.qe_alpha, ranks=dba_ranks)
    paper_k = min(paper_k, len(db) - 1)
    return [
        _ranked_row(index, pooling.name, dim, plain),
        _ranked_row(index, f"{pooling.name} + α-QE", dim, rank(expanded, db)),
        _ranked_row(index, f"{pooling.name} + DBA (k={dba_k})", dim, dba_ranks),
        _ranked_row(index, f"{pooling.name} + DBA + α-QE", dim, rank(dba_qe, augmented)),
        _ranked_row(index, f"{pooling.name} + diffusion (k={graph_k}, α={alpha})", dim,
                    diffusion_rank(q, db, k=graph_k, alpha=alpha, k_query=k_query)),
        _ranked_row(index, f"{pooling.name} + diffusion (k={paper_k}, α={paper_alpha})", dim,
                    diffusion_rank(q, db, k=paper_k, alpha=paper_alpha, k_query=k_query)),
    ]


def diffusion_recoveries(index: RetrievalIndex, pooling: Pooling | str = SPOC, top: int = 10, graph_k: int = 5,
                         alpha: float = 0.8, k_query: int = 5) -> list[np.ndarray]:
    """Per query, the positives diffusion brings into its top ``top`` that α-QE leaves out.

    The images "reachable only through a chain of neighbours"
    (:func:`cbir_lab.search.reached_only_by_diffusion`), for the parameters of
    :func:`reranking_table`'s diffusion row.
    """
    pooling = Pooling.parse(pooling)
    q, db = index.descriptors(pooling)
    expanded = rank(alpha_query_expansion(q, db, k=index.qe_k, alpha=index.qe_alpha), db)
    diffused = diffusion_rank(q, db, k=graph_k, alpha=alpha, k_query=k_query)
    return reached_only_by_diffusion(expanded, diffused, [g["ok"] for g in _scored_gnd(index)], top=top)


@dataclass(frozen=True)
class WordVocabularies:
    """k-means vocabularies of several sizes over one local PCA, learned once (lesson 7's explorer).

    Attributes:
        local_pca: reduces a map's local descriptors before they meet a vocabulary.
        centroids: k → (k, d) centroids.
    """

    local_pca: "aggregation.LocalPCA"
    centroids: dict[int, np.ndarray]


def learn_word_vocabularies(train_maps: Sequence, ks: Sequence[int] = (4, 8, 16, 32, 64), local_dim: int = 32,
                            per_image: int = 50, seed: int = 0, n_init: int = 1) -> WordVocabularies:
    """A local PCA and one k-means vocabulary per k, all learned on training maps (never test images).

    Args:
        train_maps: feature maps (C, H, W) of the training images.
        ks: the vocabulary sizes.
        local_dim: the local PCA's dimension.
        per_image: local descriptors sampled per map.
        seed: for the sample and k-means.
        n_init: k-means restarts per vocabulary (one keeps a widget quick to build).
    """
    sample = aggregation.sample_local_descriptors(train_maps, per_image=per_image, seed=seed)
    pca = aggregation.LocalPCA(local_dim, seed=seed).fit(sample)
    reduced = pca.transform(sample)
    return WordVocabularies(pca, {int(k): aggregation.KMeansVocabulary(int(k), seed=seed, n_init=n_init).fit(reduced)
                                  .centroids_ for k in ks})


def visual_words(feature_map, vocabularies: WordVocabularies, k: int, intra: bool = False,
                 power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Which visual word each cell of a map falls in, and the VLAD blocks those cells make.

    Args:
        feature_map: (C, H, W).
        vocabularies: from :func:`learn_word_vocabularies`.
        k: which vocabulary.
        intra, power: VLAD's normalisations (:func:`cbir_lab.encodings.vlad_blocks`).

    Returns:
        (words (H, W) int64, blocks (k, d) float32).
    """
    if k not in vocabularies.centroids:
        raise ValueError(f"no vocabulary of size {k}; learned: {sorted(vocabularies.centroids)}")
    x = _as_map(feature_map)
    descs = vocabularies.local_pca.transform(aggregation.local_descriptors(x))
    centroids = vocabularies.centroids[k]
    words = aggregation.nearest_words(descs, centroids).reshape(x.shape[1:])
    return words, encodings.vlad_blocks(descs, centroids, intra=intra, power=power)


@dataclass(frozen=True)
class WhiteningGain:
    """What PCA-whitening learned on the training split does to one pooling.

    Attributes:
        method: the pooling's display name.
        l2_only: mAP without PCA.
        full, partial: mAP with every useful component, whitened by λ^-1/2 and λ^-1/4.
        best, best_dim: the best full-whitening mAP over the dimension grid, and its d.
        full_gain: full − L2 only, with its paired bootstrap 95 % interval.
        best_gain: best − L2 only, with its interval (the best d is chosen on these same
            queries, so this interval flatters it).
        held_out, held_out_dims: the honest version: the query clusters split in two halves,
            each half scored at the d that is best on the *other* half (:func:`held_out_dimension`);
            the mAP over all queries, and the d each half got.
        held_out_gain: held_out − L2 only, with its interval.
    """

    method: str
    l2_only: float
    full: float
    partial: float
    best: float
    best_dim: int
    full_gain: Interval | None = None
    best_gain: Interval | None = None
    held_out: float | None = None
    held_out_dims: tuple[int, ...] = ()
    held_out_gain: Interval | None = None


def held_out_dimension(aps_by_dim: np.ndarray, dims: Sequence[int], clusters: Sequence[str]
                       ) -> tuple[np.ndarray, tuple[int, int]]:
    """Choose d on held-out queries: each half of the clusters is scored at the d that is best on the other half.

    Picking the best d on the queries one then reports flatters the result. Here the
    query clusters (sorted by name) are dealt alternately into two halves; for each
    half, d is chosen by the mean AP of the *other* half's queries, and that half's
    queries keep their APs at that d. No query's AP helped choose its own d.

    Args:
        aps_by_dim: per-query APs at each d, shape (len(dims), n_queries) (NaN: no positives).
        dims: the candidate dimensions.
        clusters: per query, its cluster (a query on its own is its own cluster).

    Returns:
        (per-query APs at the d chosen for their half, shape (n_queries,);
        the d chosen for half 0 and for half 1).

    Examples:
        Halves {a, c} and {b, d}; d = 8 suits a and c, d = 16 suits b and d. Each half gets the
        other's favourite, so no query is flattered (in-sample, either d would score 0.5):

        >>> aps = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]])
        >>> held_out_dimension(aps, [8, 16], ["a", "b", "c", "d"])
        (array([0., 0., 0., 0.]), (16, 8))
    """
    aps_by_dim = np.asarray(aps_by_dim, dtype=np.float64)
    labels = np.asarray(clusters)
    order = {label: i % 2 for i, label in enumerate(sorted(set(labels.tolist())))}
    half = np.array([order[label] for label in labels])
    chosen, held_out = [], np.full(aps_by_dim.shape[1], np.nan)
    for h in (0, 1):
        others = half != h
        best = int(np.argmax(np.nanmean(aps_by_dim[:, others], axis=1))) if others.any() else 0
        chosen.append(int(dims[best]))
        held_out[half == h] = aps_by_dim[best, half == h]
    return held_out, (chosen[0], chosen[1])


def whitening_gains(index: RetrievalIndex, poolings: Sequence[Pooling | str] = (SPOC, MAC, GEM),
                    part: str = "train") -> list[WhiteningGain]:
    """Each pooling's mAP without PCA, with full and partial whitening, and at its best d, with intervals.

    Args:
        index: the :class:`RetrievalIndex` (its features need a training split).
        poolings: the poolings compared.
        part: what the whitening is learned on: ``"train"``, or one of the features'
            other whitening sets (:attr:`~cbir_lab.pipeline.DatasetFeatures.whitening_sets`).

    Returns:
        One :class:`WhiteningGain` per pooling.
    """
    gains = []
    for pooling in map(Pooling.parse, poolings):
        top = index.max_dim(pooling, part)
        dims = dimension_grid(top)
        full = index.whitening_curve(pooling, dims, 0.5, part)
        best = int(np.argmax(full))
        plain = index.setting(pooling)["aps"]
        held_out, held_out_dims = held_out_dimension([index.whitened_aps(pooling, d, 0.5, part) for d in dims], dims,
                                                     index.dataset.clusters())
        gains.append(WhiteningGain(
            pooling.name, l2_only=index.l2_score(pooling), full=float(full[-1]),
            partial=index.whitened_score(pooling, top, 0.25, part), best=float(full[best]), best_dim=dims[best],
            full_gain=interval_vs(index.whitened_aps(pooling, top, 0.5, part), plain, index.dataset),
            best_gain=interval_vs(index.whitened_aps(pooling, dims[best], 0.5, part), plain, index.dataset),
            held_out=float(np.nanmean(held_out)), held_out_dims=held_out_dims,
            held_out_gain=interval_vs(held_out, plain, index.dataset),
        ))
    return gains
