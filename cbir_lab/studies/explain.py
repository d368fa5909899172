r"""Why did this match? The similarity of two images split over the cells of one of them.

* :func:`contribution_map`: one feature map's per-cell share of its similarity with
  another descriptor, as a :class:`Contribution`.
* :func:`explain_match`: the maps of a query and one of its results under one setting
  of a :class:`~cbir_lab.index.RetrievalIndex`.
* :func:`pair_similarities`: a few images compared under several poolings.

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

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from cbir_lab._array import as_feature_map
from cbir_lab.index import RetrievalIndex
from cbir_lab.pipeline import describe
from cbir_lab.pooling import MAC, SPOC, STANDARD_POOLINGS, Pooling, cell_allocation, rmac_regions
from cbir_lab.whitening import PCAWhitening

__all__ = ["Contribution", "contribution_map", "explain_match", "pair_similarities"]


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
    x = as_feature_map(feature_map)
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
        index: the :class:`~cbir_lab.index.RetrievalIndex`.
        query: 0-based query index.
        db_index: 0-based database index of the result to explain.
        pooling, whiten, query_expansion: the setting.

    Returns:
        (query contribution, result contribution), see :func:`contribution_map`.
    """
    entry = index.setting(pooling, whiten, query_expansion)
    whitening = index.whitening(pooling) if whiten else None
    features = index.features
    db = entry.db_vecs
    if not (0 <= int(db_index) < len(db)):
        raise ValueError(f"db_index must be in 0..{len(db) - 1}, got {db_index}")
    result = contribution_map(features.db_maps[db_index], entry.query_vecs[query], pooling, whitening)
    query_side = contribution_map(features.query_maps[query], db[db_index], pooling, whitening)
    return query_side, result


def pair_similarities(maps: Sequence, poolings: Sequence[Pooling | str] = STANDARD_POOLINGS) -> dict[str, np.ndarray]:
    """Cosine similarity of the first map's descriptor to each other map's, per pooling.

    The descriptors are :func:`cbir_lab.pipeline.describe`'s (pooled, L2-normalised, no whitening).

    Args:
        maps: feature maps (C, H, W), at least two; ``maps[0]`` is the anchor.
        poolings: the poolings compared.

    Returns:
        pooling name → similarities, shape (len(maps) - 1,).

    Examples:
        >>> same, other = np.ones((2, 2, 2)), np.zeros((2, 2, 2)); other[0] = 1.0
        >>> [round(float(s), 4) for s in pair_similarities([same, same, other], ["SPoC"])["SPoC"]]
        [1.0, 0.7071]
    """
    if len(maps) < 2:
        raise ValueError(f"pair_similarities needs an anchor and at least one other map, got {len(maps)}")
    similarities = {}
    for pooling in map(Pooling.parse, poolings):
        vectors = describe(maps, pooling)
        similarities[pooling.name] = vectors[1:] @ vectors[0]
    return similarities
