"""Comparison tables: the methods' scores under the dataset's protocol, with bootstrap intervals.

* :func:`comparison_table`: each pooling's scores with and without whitening and
  α-QE, as :class:`MethodScore` rows with per-query APs (for bootstrap intervals);
  :func:`scored_row` makes such a row from any scores.
* :func:`compare_methods` gives the paired interval of each row against a reference,
  :func:`compare_settings` of each row against the same row without one change,
  :func:`score_intervals` each row's own interval, :func:`interval_vs` one paired
  interval of two sets of per-query APs.
* :func:`precision_recall_by_method`: one query's precision-recall curve under several poolings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from cbir_lab.evaluation import Interval, bootstrap_interval, paired_bootstrap
from cbir_lab.index import RetrievalIndex, retrieve
from cbir_lab.pooling import STANDARD_POOLINGS, Pooling

__all__ = [
    "MethodScore",
    "scored_row",
    "interval_vs",
    "score_intervals",
    "comparison_table",
    "compare_methods",
    "compare_settings",
    "precision_recall_by_method",
]


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
        index: the :class:`~cbir_lab.index.RetrievalIndex` (α-QE uses its ``qe_k`` and ``qe_alpha``).
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
                rows.append(scored_row(dataset, entry.pooling.name, entry.dim, index.scores(pooling, whiten, qe),
                                       entry.aps, bool(whiten), bool(qe)))
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


def precision_recall_by_method(
    index: RetrievalIndex, query: int, poolings: Sequence[Pooling | str] = STANDARD_POOLINGS,
    whiten: bool = False, query_expansion: bool = False,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, float]]:
    """One query's precision-recall curve and AP under several poolings, for one plot.

    Args:
        index: the :class:`~cbir_lab.index.RetrievalIndex`.
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
