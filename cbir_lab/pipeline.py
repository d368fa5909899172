"""The whole pipeline in a few calls: dataset → feature maps → descriptors → rankings → scores.

This composes the stages (:mod:`~cbir_lab.features`, :mod:`~cbir_lab.pooling`,
:mod:`~cbir_lab.whitening`, :mod:`~cbir_lab.search`, :mod:`~cbir_lab.evaluation`)
the way the course and the ``cbir-lab demo`` use them:

* :func:`extract_dataset` extracts (or loads from the cache) every map once.
* :func:`global_descriptors` pools, optionally whitens (learned on the
  dataset's separate training split), and L2-normalises.
* :func:`evaluate_methods` scores several methods with and without whitening.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from cbir_lab.backbones import Backbone, load_backbone
from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.evaluation import evaluate
from cbir_lab.features import FeatureCache, extract_feature_maps
from cbir_lab.pooling import pool_each, regional_vectors
from cbir_lab.search import alpha_query_expansion, rank
from cbir_lab.whitening import PCAWhitening, l2n

__all__ = [
    "METHODS",
    "DatasetFeatures",
    "extract_dataset",
    "global_descriptors",
    "MethodScore",
    "evaluate_methods",
    "format_scores",
]

#: Display name → pooling name in :data:`cbir_lab.pooling.POOLINGS`.
METHODS: dict[str, str] = {"SPoC": "spoc", "MAC": "mac", "R-MAC": "rmac", "GeM": "gem"}


@dataclass
class DatasetFeatures:
    """The feature maps of a dataset's queries, database and whitening-training images.

    Each list holds one (C, H, W) float32 tensor per image.
    """

    dataset: RetrievalDataset
    backbone: str
    max_side: int
    query_maps: list[torch.Tensor]
    db_maps: list[torch.Tensor]
    train_maps: list[torch.Tensor]
    _pooled: dict = field(default_factory=dict, repr=False)

    def pooled(self, part: str, method: str) -> np.ndarray:
        """Unnormalised pooled vectors (N, C) of ``part`` in {"query", "db", "train"}, memoised."""
        key = (part, method)
        if key not in self._pooled:
            maps = {"query": self.query_maps, "db": self.db_maps, "train": self.train_maps}[part]
            self._pooled[key] = pool_each(maps, METHODS.get(method, method)).numpy()
        return self._pooled[key]

    def regional(self, part: str, levels: int = 3) -> list[np.ndarray]:
        """Per image, its L2-normalised R-MAC regional vectors, shape (R_i, C)."""
        key = (part, "regions", levels)
        if key not in self._pooled:
            maps = {"query": self.query_maps, "db": self.db_maps, "train": self.train_maps}[part]
            self._pooled[key] = [regional_vectors(m.unsqueeze(0), levels)[0].numpy() for m in maps]
        return self._pooled[key]


def extract_dataset(
    dataset: RetrievalDataset,
    backbone: Backbone | str = "efficientnet_lite0",
    max_side: int = 384,
    cache: FeatureCache | bool | None = True,
    progress: bool | None = None,
) -> DatasetFeatures:
    """Feature maps of every image of a dataset (queries cropped to their boxes).

    Args:
        dataset: from :func:`cbir_lab.datasets.load_dataset`.
        backbone: a loaded backbone or a backbone name.
        max_side: the long side fed to the network.
        cache: as in :func:`cbir_lab.features.extract_feature_maps`.
        progress: show a progress bar (default: for long runs).

    Returns:
        The :class:`DatasetFeatures`.
    """
    if isinstance(backbone, str):
        backbone = load_backbone(backbone)
    items = dataset.queries() + list(dataset.db_images) + list(dataset.train_images)
    maps = extract_feature_maps(items, backbone, max_side=max_side, cache=cache, progress=progress)
    nq, ndb = dataset.n_queries, dataset.n_db
    return DatasetFeatures(dataset, backbone.name, max_side, maps[:nq], maps[nq : nq + ndb], maps[nq + ndb :])


def _regional_whitened(features: DatasetFeatures, n_components: int | None, power: float) -> tuple[np.ndarray, np.ndarray]:
    whitening = PCAWhitening(n_components=n_components, power=power).fit(np.concatenate(features.regional("train")))

    def describe(part: str) -> np.ndarray:
        # Whiten every region of every image in one matrix product, then sum each image's rows.
        regions = features.regional(part)
        whitened = whitening.transform(np.concatenate(regions))
        owner = np.repeat(np.arange(len(regions)), [len(r) for r in regions])
        summed = np.zeros((len(regions), whitened.shape[1]), dtype=np.float64)
        np.add.at(summed, owner, whitened)
        return l2n(summed).astype(np.float32)

    return describe("query"), describe("db")


def global_descriptors(
    features: DatasetFeatures,
    method: str,
    whiten: bool = False,
    n_components: int | None = None,
    power: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised global descriptors of queries and database.

    Without whitening: pool, L2. With whitening: pool, then L2 → PCA-whitening
    → L2 learned on the dataset's *training* split (never on test images). For
    R-MAC the whitening is R-MAC's own: learned on, and applied to, each
    regional vector before the sum (Tolias et al. 2016).

    Args:
        features: from :func:`extract_dataset`.
        method: a key of :data:`METHODS` (``"SPoC"``, ``"MAC"``, ``"R-MAC"``, ``"GeM"``)
            or a pooling name.
        whiten: apply PCA-whitening.
        n_components: output dimension with whitening (default: all useful).
        power: 0.5 full whitening, 0 PCA only, between: partial.

    Returns:
        (query_vecs (n_q, d), db_vecs (n_db, d)), float32, unit rows.
    """
    if whiten and not features.train_maps:
        raise ValueError(f"dataset {features.dataset.name!r} has no training split to learn the whitening on")
    if not whiten:
        return l2n(features.pooled("query", method)).astype(np.float32), l2n(features.pooled("db", method)).astype(np.float32)
    if METHODS.get(method, method) == "rmac":
        return _regional_whitened(features, n_components, power)
    whitening = PCAWhitening(n_components=n_components, power=power).fit(features.pooled("train", method))
    return whitening.transform(features.pooled("query", method)), whitening.transform(features.pooled("db", method))


@dataclass(frozen=True)
class MethodScore:
    """One row of a comparison table."""

    method: str
    whitened: bool
    query_expansion: bool
    dim: int
    scores: dict[str, float]


def evaluate_methods(
    features: DatasetFeatures,
    methods: tuple[str, ...] = ("SPoC", "MAC", "R-MAC", "GeM"),
    whitening: tuple[bool, ...] = (False, True),
    n_components: int | None = None,
    query_expansion_k: int | None = None,
) -> list[MethodScore]:
    """Score each method with and without whitening (and optionally with α-QE).

    Args:
        features: from :func:`extract_dataset`.
        methods: keys of :data:`METHODS`.
        whitening: which of (without, with) whitening to run.
        n_components: whitening dimension (default: all useful).
        query_expansion_k: also score α-QE (α = 3) with this k.

    Returns:
        One :class:`MethodScore` per (method, whitening[, QE]) combination.
    """
    ds = features.dataset
    rows = []
    for method in methods:
        for whiten in whitening:
            q, db = global_descriptors(features, method, whiten, n_components)
            ranks = rank(q, db)
            rows.append(MethodScore(method, whiten, False, q.shape[1], evaluate(ranks, ds.gnd, ds.protocol)))
            if query_expansion_k:
                q_exp = alpha_query_expansion(q, db, k=query_expansion_k, alpha=3.0, ranks=ranks)
                rows.append(MethodScore(method, whiten, True, q.shape[1], evaluate(rank(q_exp, db), ds.gnd, ds.protocol)))
    return rows


def format_scores(rows: list[MethodScore], digits: int = 3) -> str:
    """A plain-text table of :func:`evaluate_methods` rows (one column per score)."""
    if not rows:
        return "(no results)"
    score_names = list(rows[0].scores)
    header = ["method", "whitening", "QE", "dim", *score_names]
    body = [
        [r.method, "yes" if r.whitened else "no", "α-QE" if r.query_expansion else "-", str(r.dim),
         *[f"{r.scores[s]:.{digits}f}" for s in score_names]]
        for r in rows
    ]
    if not any(r.query_expansion for r in rows):
        header.pop(2)
        body = [b[:2] + b[3:] for b in body]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(b) for b in body])
