"""What PCA-whitening does as the dimension d changes (lesson 3), over the index's whitening sweeps.

* :func:`dimension_grid`: the d a curve is scored at.
* :func:`whitening_curves`, :func:`train_vs_test_curves`: mAP against d for whitenings
  learned on several parts (the training split, the test database itself).
* :func:`whitening_table`: each pooling at a few d, with paired intervals against L2 only.
* :func:`whitening_gains`: full and partial whitening, the best d, and the best d chosen
  on held-out queries (:func:`held_out_dimension`), as :class:`WhiteningGain` rows.

The sweeps themselves (a projection learned once, sliced per d, memoised, prepared
side by side on threads) are the index's: :meth:`cbir_lab.index.RetrievalIndex.whitened_aps`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from cbir_lab.evaluation import Interval
from cbir_lab.index import RetrievalIndex
from cbir_lab.pooling import GEM, MAC, SPOC, Pooling
from cbir_lab.studies.methods import MethodScore, interval_vs, scored_row

__all__ = [
    "dimension_grid",
    "whitening_curves",
    "train_vs_test_curves",
    "whitening_table",
    "WhiteningGain",
    "held_out_dimension",
    "whitening_gains",
]


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
        index: the :class:`~cbir_lab.index.RetrievalIndex`.
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
        index: the :class:`~cbir_lab.index.RetrievalIndex`.
        poolings: the poolings.
        dims: the dimensions; those above the part's largest d are left out, and that
            largest d is added last.
        part: what the whitening is learned on (``"train"`` or a whitening set's name).
        power: 0.5 full whitening, 0.25 partial.

    Returns:
        (rows, intervals): :class:`~cbir_lab.studies.methods.MethodScore` rows named ``"<pooling>"`` (L2 only) and
        ``"<pooling> @<d>"`` (whitened), scored by the headline mAP; and each whitened
        row's label → the paired 95 % interval of its gain over L2 only, for
        :func:`cbir_lab.viz.retrieval.format_scores` (``versus="L2 only"``).
    """
    rows, intervals = [], {}
    for pooling in map(Pooling.parse, poolings):
        plain = index.setting(pooling)
        rows.append(scored_row(index.dataset, pooling.name, plain.dim, {"mAP": index.l2_score(pooling)}, plain.aps))
        top = index.max_dim(pooling, part)
        for d in [d for d in dims if d < top] + [top]:
            aps = index.whitened_aps(pooling, d, power, part)
            row = scored_row(index.dataset, f"{pooling.name} @{d}", d, {"mAP": float(np.nanmean(aps))}, aps, True)
            rows.append(row)
            intervals[row.setting_label] = interval_vs(aps, plain.aps, index.dataset)
    return rows, intervals


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
        index: the :class:`~cbir_lab.index.RetrievalIndex` (its features need a training split).
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
        plain = index.setting(pooling).aps
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
