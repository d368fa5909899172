"""The retrieval core: descriptors → rankings → scores, each computed once and shared.

Widgets, the talk mode, the CLI, the lessons' studies (:mod:`cbir_lab.studies`) and
the notebooks all go through this module, so a number shown in a widget is the
number the CLI prints: it comes from the same object.

* :class:`RetrievalIndex`: for one :class:`~cbir_lab.pipeline.DatasetFeatures`,
  the descriptors, similarities, rankings, per-query APs and scores of every setting
  (pooling, whitening, query expansion) as a frozen :class:`SettingResult`, the fitted
  whitenings, the typical query, and the whitening sweeps of lesson 3 (prepared
  side by side on threads), each memoised.
* :func:`retrieve`: one query's top-k under one setting, as a :class:`QueryResult`;
  :func:`result_status` says whether a result is correct, junk or wrong.
* :func:`headline_score`: the one number a curve or a bar plots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from cbir_lab.evaluation import (
    CannotScoreError,
    aps_from_scores,
    compute_map,
    evaluate,
    median_ap_query,
    precision_recall,
    scoring_gnd,
)
from cbir_lab.pipeline import DatasetFeatures, global_descriptors, learn_whitening
from cbir_lab.pooling import GEM, SPOC, STANDARD_POOLINGS, Pooling
from cbir_lab.rerank import alpha_query_expansion
from cbir_lab.search import rank, similarities
from cbir_lab.whitening import PCAWhitening

__all__ = [
    "RetrievalIndex",
    "SettingResult",
    "QueryResult",
    "result_status",
    "retrieve",
    "headline_score",
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


@dataclass(frozen=True)
class SettingResult:
    """What one setting (pooling, whitening, query expansion) computes on an index's features, all at once.

    Made complete by :meth:`RetrievalIndex.setting` and never changed after; the
    arrays are shared with the index's memo (read them, do not write them).

    Attributes:
        pooling, whitened, query_expansion: the setting.
        query_vecs: (n_q, d) query descriptors (expanded when ``query_expansion``).
        db_vecs: (n_db, d) database descriptors.
        similarities: (n_q, n_db) cosine similarities of ``query_vecs`` and ``db_vecs``.
        ranks: (n_db, n_q) database indices, column q query q's full ranking, best first.
        aps: (n_q,) per-query APs under :attr:`RetrievalIndex.gnd` (Medium for revisited
            datasets; NaN for queries without positives), or None without ground truth.
        mean_ap: their mean (the mAP), or None without ground truth.
        scores: every score of the dataset's own protocol (:func:`cbir_lab.evaluation.evaluate`),
            or None without ground truth.
    """

    pooling: Pooling
    whitened: bool
    query_expansion: bool
    query_vecs: np.ndarray = field(repr=False, compare=False)
    db_vecs: np.ndarray = field(repr=False, compare=False)
    similarities: np.ndarray = field(repr=False, compare=False)
    ranks: np.ndarray = field(repr=False, compare=False)
    aps: np.ndarray | None = field(default=None, repr=False, compare=False)
    mean_ap: float | None = None
    scores: dict[str, float] | None = None

    @property
    def dim(self) -> int:
        """The descriptors' dimension d."""
        return int(self.db_vecs.shape[1])


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
        >>> index.setting("GeM").mean_ap  # doctest: +SKIP
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
        self._settings: dict[Setting, SettingResult] = {}
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

    def setting(self, pooling: Pooling | str, whiten: bool = False, query_expansion: bool = False) -> SettingResult:
        """Everything one setting computes, memoised: the first request computes it, later ones return the same object.

        Returns:
            The :class:`SettingResult` (its arrays are shared: read them, do not write them).
        """
        key = (Pooling.parse(pooling), bool(whiten), bool(query_expansion))
        if key not in self._settings:
            q, db = self.descriptors(key[0], key[1])
            ranks = rank(q, db)
            if query_expansion:
                q = alpha_query_expansion(q, db, k=self.qe_k, alpha=self.qe_alpha, ranks=ranks)
                ranks = rank(q, db)
            aps = mean_ap = scores = None
            if self.gnd is not None:
                result = compute_map(ranks, self.gnd)
                aps, mean_ap = result.aps, result.map
                scores = evaluate(ranks, self.dataset.gnd, self.dataset.protocol)
            self._settings[key] = SettingResult(*key, query_vecs=q, db_vecs=db, similarities=similarities(q, db),
                                                ranks=ranks, aps=aps, mean_ap=mean_ap, scores=scores)
        return self._settings[key]

    def scores(self, pooling: Pooling | str, whiten: bool = False, query_expansion: bool = False) -> dict[str, float]:
        """The setting's scores under the dataset's own protocol (:func:`cbir_lab.evaluation.evaluate`), memoised.

        Raises:
            CannotScoreError: the dataset has no ground truth.
        """
        scores = self.setting(pooling, whiten, query_expansion).scores
        if scores is None:
            raise CannotScoreError(f"dataset {self.dataset.name!r} has no ground truth: rankings cannot be scored")
        return scores

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

    def scored_gnd(self) -> list[dict]:
        """:attr:`gnd`, or a :class:`ValueError` that says the dataset has no ground truth (nothing to score)."""
        if self.gnd is None:
            raise ValueError(f"dataset {self.dataset.name!r} has no ground truth: nothing to score")
        return self.gnd

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
        aps = self.setting(pooling, whiten).aps
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
            at = whitening.at(d, power)
            return at.transform_regions(regions("query", pooling.levels)), at.transform_regions(regions("db", pooling.levels))
        query, db = self._sweep_coordinates(pooling, part)
        return whitening.whiten_coordinates(query, d, power), whitening.whiten_coordinates(db, d, power)

    def whitened_aps(self, pooling: Pooling | str, d: int, power: float = 0.5, part: str = "train") -> np.ndarray:
        """Per-query APs (Medium for revisited datasets) of :meth:`whitened` descriptors, memoised."""
        pooling = Pooling.parse(pooling)
        key = (pooling, part, float(power), int(d))
        if key not in self._sweep:
            gnd = self.scored_gnd()
            if pooling.regional:
                scores = similarities(*self.whitened(pooling, d, power, part))
            else:
                scores = self._sweep_similarities(pooling, int(d), float(power), part)
            self._sweep[key] = aps_from_scores(scores, gnd)
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
    ranking = entry.ranks[:, query]
    top = ranking[: min(int(k), len(ranking))]
    gnd = index.gnd[query] if index.gnd is not None else None
    statuses = tuple(result_status(int(i), gnd) for i in top)
    ap = recall = precision = n_positives = None
    if gnd is not None:
        n_positives = len(gnd["ok"])
        ap = float(entry.aps[query])
        if n_positives:
            recall, precision = precision_recall(ranking, gnd["ok"], gnd["junk"])
    return QueryResult(query, pooling, bool(whiten), bool(query_expansion), top.copy(),
                       entry.similarities[query, top].copy(), statuses, ap, entry.mean_ap, recall, precision,
                       n_positives)
