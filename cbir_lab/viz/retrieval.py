r"""Figures for the retrieval lesson: "why did this match?" maps, precision-recall curves, thumbnail grids.

* :func:`contribution_map` splits the similarity of two images into the share of
  each feature-map cell of one of them (plus a location-free term when the
  descriptors are whitened), for SPoC, MAC, GeM and R-MAC, exactly as
  :func:`cbir_lab.pipeline.global_descriptors` builds the descriptors.
* :func:`plot_contributions` draws those maps over the query and the result.
* :func:`plot_precision_recall` draws one query's precision-recall curves.
* :func:`plot_thumbnail_grid` shows many images at once (a dataset's queries).
* :func:`plot_method_comparison` draws a comparison table of
  :func:`cbir_lab.pipeline.evaluate_methods` as grouped bars.

Every function returns a matplotlib :class:`~matplotlib.figure.Figure`; nothing is shown.

**What the contribution map shows.** Let :math:`q` be the other image's final
descriptor and :math:`X` the (C, H, W) map of the image explained. Every method
writes the pooled vector as a sum over cells, :math:`g = \sum_{y,x} G[:, y, x]`:

* SPoC: :math:`G = X` (times the centre prior for ``spoc_cp``): the natural split.
* MAC: :math:`G[c]` is :math:`g_c` at the arg-max cell of channel c, 0 elsewhere.
* GeM: :math:`G[c, y, x] = g_c\, X_{cyx}^p / \sum_{y'x'} X_{cy'x'}^p`, the share of
  each cell in the p-th power mean (p = 1 gives SPoC's split, p → ∞ MAC's).
* R-MAC: each region's MAC is split like MAC, then scaled by that region's
  normalisation.

Without whitening the score is :math:`s = q^\top g / \lVert g\rVert`, so the map
:math:`M_{yx} = q^\top G[:, y, x] / \lVert g \rVert` sums to the score exactly.
With PCA-whitening :math:`z = P(g/\lVert g\rVert - m)`, :math:`P = \Lambda^{-\text{power}} U^\top`,
the score :math:`q^\top z / \lVert z \rVert` is
:math:`\sum_{yx} (P^\top q)^\top G[:, y, x] / (\lVert g\rVert \lVert z\rVert) - (P^\top q)^\top m / \lVert z\rVert`:
the map holds the first sum and :attr:`Contribution.offset` the second, the
*mean term*, which belongs to no location. In both cases
``map.sum() + offset == score`` up to rounding. For SPoC this is the only way
to split a sum; for MAC, GeM and R-MAC it assigns each channel's value to the
cells it was pooled from, which is what "where did this come from" means for a max.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from cbir_lab.features import load_image
from cbir_lab.pooling import center_prior, rmac_regions
from cbir_lab.viz.ranking import RESULT_COLORS
from cbir_lab.whitening import PCAWhitening

__all__ = [
    "Contribution",
    "contribution_map",
    "plot_contributions",
    "plot_precision_recall",
    "plot_thumbnail_grid",
    "plot_method_comparison",
]

_METHOD_ALIASES = {"spoc": "spoc", "spoc_cp": "spoc_cp", "mac": "mac", "gem": "gem", "rmac": "rmac", "r-mac": "rmac"}


@dataclass(frozen=True)
class Contribution:
    """How much each cell of one image's feature map adds to its similarity with another image.

    Attributes:
        map: (H, W) contribution of each cell (can be negative after whitening).
        offset: the part of the score tied to no cell: the whitening's mean term
            (0 without whitening).
        score: the similarity itself, the inner product of the two final descriptors;
            ``map.sum() + offset == score`` up to float rounding.
        method: the pooling explained.
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


def _argmax_allocation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MAC of x (C, h, w) and G with each channel's maximum at its (first) arg-max cell."""
    c, h, w = x.shape
    flat = x.reshape(c, h * w)
    where = flat.argmax(axis=1)
    pooled = flat[np.arange(c), where]
    allocation = np.zeros_like(flat)
    allocation[np.arange(c), where] = pooled
    return pooled, allocation.reshape(c, h, w)


def _global_allocation(x: np.ndarray, method: str, p: float) -> tuple[np.ndarray, np.ndarray]:
    """(pooled vector g (C,), allocation G (C, H, W)) with G summing to g over the cells."""
    if method == "spoc":
        return x.sum(axis=(1, 2)), x
    if method == "spoc_cp":
        weighted = x * center_prior(x.shape[1], x.shape[2], torch.float64).numpy()
        return weighted.sum(axis=(1, 2)), weighted
    if method == "mac":
        return _argmax_allocation(x)
    # GeM, as cbir_lab.pooling.gem: clamp at eps, power mean.
    powered = np.clip(x, 1e-6, None) ** p
    total = powered.sum(axis=(1, 2))
    pooled = (total / (x.shape[1] * x.shape[2])) ** (1.0 / p)
    return pooled, powered * (pooled / total)[:, None, None]


def _channel_weights(other: np.ndarray, whitening: PCAWhitening | None, dim: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(v, P, m): v = Pᵀ q projects the other descriptor back to the C channels."""
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
    projection = whitening.components_ / (whitening.eigenvalues_**whitening.power)[:, None]  # P, (d, C)
    return projection.T @ other, projection, whitening.mean_


def contribution_map(
    feature_map,
    other,
    method: str,
    whitening: PCAWhitening | None = None,
    levels: int = 3,
    p: float = 3.0,
) -> Contribution:
    r"""Split the similarity ⟨other, descriptor(feature_map)⟩ into per-cell contributions.

    The descriptor is built as :func:`cbir_lab.pipeline.global_descriptors`
    builds it: pool, L2 (and without whitening that is all); or pool, L2, PCA-whiten,
    L2 — for R-MAC region by region, as :meth:`PCAWhitening.transform_regions`.
    See the module docstring for the exact decomposition.

    Args:
        feature_map: the explained image's map, shape (C, H, W) (or (1, C, H, W)).
        other: the other image's final descriptor, shape (D,) (e.g. the query's,
            after query expansion if any).
        method: ``"SPoC"``, ``"MAC"``, ``"GeM"``, ``"R-MAC"`` (or the pooling names
            ``spoc``, ``spoc_cp``, ``mac``, ``gem``, ``rmac``).
        whitening: the fitted :class:`~cbir_lab.whitening.PCAWhitening` the
            descriptors were whitened with (for R-MAC: fitted on regional vectors),
            or ``None``.
        levels: R-MAC's number of scales.
        p: GeM's power.

    Returns:
        A :class:`Contribution` with ``map`` of shape (H, W).

    Raises:
        ValueError: unknown method, or shapes that do not fit together.
    """
    key = _METHOD_ALIASES.get(str(method).lower())
    if key is None:
        raise ValueError(f"contribution_map: unknown method {method!r}; use SPoC, MAC, GeM or R-MAC")
    x = _as_map(feature_map)
    other = np.asarray(other.detach().cpu().numpy() if isinstance(other, torch.Tensor) else other, dtype=np.float64).ravel()
    v, projection, mean = _channel_weights(other, whitening, x.shape[0])
    tiny = 1e-12

    if key != "rmac":
        pooled, allocation = _global_allocation(x, key, p)
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
        regions = rmac_regions(x.shape[1], x.shape[2], levels)
        parts, terms = [], []
        for top, left, rh, rw in regions:
            pooled, allocation = _argmax_allocation(x[:, top : top + rh, left : left + rw])
            # As regional_vectors (norm + eps), then whitening's own l2n (max(norm, eps)).
            region_norm = np.linalg.norm(pooled) + tiny
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
    return Contribution(map=contributions, offset=float(offset), score=score, method=str(method))


# --------------------------------------------------------------------------- figures


def _image_array(item, max_side: int = 384) -> np.ndarray:
    image = load_image(item)
    image.thumbnail((max_side, max_side))
    return np.asarray(image)


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _frame(ax, color: str, width: float = 5) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(width)


def plot_contributions(
    query_item,
    result_item,
    query_contribution: Contribution,
    result_contribution: Contribution,
    status: str | None = None,
    title: str | None = None,
    alpha: float = 0.6,
) -> Figure:
    """"Why did this match?": the query and a result, each overlaid with its contribution map.

    Both maps explain the same score (the similarity is symmetric): the left one
    says which cells of the query, the right one which cells of the result, carry it.
    One colour scale serves both, centred at 0 (red adds, blue subtracts). The map
    is stretched over the whole image (its cells are about ``stride`` pixels; the
    last row and column may cover a little padding).

    Args:
        query_item, result_item: image items (path, PIL image or (path, bbox)).
        query_contribution: :func:`contribution_map` of the query's map against the result's descriptor.
        result_contribution: :func:`contribution_map` of the result's map against the query's descriptor.
        status: ``"correct"``, ``"junk"``, ``"wrong"`` to colour the result's frame.
        title: the figure's title (default: the score and its split).
        alpha: opacity of the maps.

    Returns:
        The figure (2 × 2: images on top, maps over them below).
    """
    fig = Figure(figsize=(8.0, 6.4), layout="constrained")
    axes = fig.subplots(2, 2)
    limit = max(np.abs(query_contribution.map).max(), np.abs(result_contribution.map).max(), 1e-12)
    image_obj = None
    for col, (item, contribution, label, color) in enumerate(
        [
            (query_item, query_contribution, "query", "#1f77b4"),
            (result_item, result_contribution, "result", RESULT_COLORS.get(status or "unknown", "#7f7f7f")),
        ]
    ):
        pixels = _image_array(item)
        height, width = pixels.shape[:2]
        axes[0, col].imshow(pixels)
        axes[0, col].set_title(label + (f" ({status})" if status and col == 1 else ""), fontsize=10)
        axes[1, col].imshow(pixels, alpha=0.45)
        image_obj = axes[1, col].imshow(
            contribution.map, cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=alpha,
            extent=(0, width, height, 0), interpolation="nearest",
        )
        share = contribution.located
        axes[1, col].set_title(f"cells: {share:+.3f}" + (f", mean term {contribution.offset:+.3f}" if contribution.offset else ""), fontsize=9)
        for ax in axes[:, col]:
            _bare(ax)
            _frame(ax, color)
    fig.colorbar(image_obj, ax=axes[1, :].tolist(), shrink=0.8, label="contribution to the score")
    score = result_contribution.score
    fig.suptitle(title or f"{result_contribution.method}: score {score:.3f}, and where it comes from")
    return fig


def plot_precision_recall(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    aps: Mapping[str, float] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (4.0, 3.4),
) -> Figure:
    """Precision-recall curves of one query (one curve per method or setting).

    Each curve is drawn as steps through (recall, precision) after every retrieved
    image, junk removed, from (0, 1). The area under the linear interpolation
    between consecutive positives is the trapezoid AP of the reference code.

    Args:
        curves: label → (recall, precision), e.g. from :func:`cbir_lab.evaluation.precision_recall`.
        aps: label → AP, shown in the legend.
        title: the axes' title.
        figsize: the figure size in inches.

    Returns:
        The figure.
    """
    if not curves:
        raise ValueError("plot_precision_recall: no curves given")
    # A fixed layout: constrained layout would double the drawing time, and widgets redraw this often.
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(left=0.17, bottom=0.16, right=0.97, top=0.88 if title else 0.96)
    ax = fig.subplots()
    for label, (recall, precision) in curves.items():
        recall = np.concatenate([[0.0], np.asarray(recall, dtype=float)])
        precision = np.concatenate([[1.0], np.asarray(precision, dtype=float)])
        legend = label if aps is None or label not in aps else f"{label} (AP {aps[label]:.3f})"
        ax.plot(recall, precision, drawstyle="steps-post", label=legend)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.9)  # PR curves fill any corner; let matplotlib find the emptiest
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def plot_thumbnail_grid(
    items: Sequence,
    labels: Sequence[str] | None = None,
    statuses: Sequence[str | None] | None = None,
    ncols: int = 8,
    thumb_side: int = 160,
    title: str | None = None,
) -> Figure:
    """A grid of image thumbnails, optionally labelled and framed by status.

    Args:
        items: image items (paths, PIL images or (path, bbox)).
        labels: a title per image.
        statuses: per image, a key of :data:`cbir_lab.viz.ranking.RESULT_COLORS` (frame colour) or ``None``.
        ncols: images per row.
        thumb_side: thumbnail size in pixels.
        title: the figure's title.

    Returns:
        The figure.
    """
    n = len(items)
    if n == 0:
        raise ValueError("plot_thumbnail_grid: no images given")
    if labels is not None and len(labels) != n:
        raise ValueError(f"plot_thumbnail_grid: {len(labels)} labels for {n} images")
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig = Figure(figsize=(1.6 * ncols, 1.75 * nrows + (0.4 if title else 0)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        _bare(ax)
        if i >= n:
            ax.set_axis_off()
            continue
        ax.imshow(_image_array(items[i], thumb_side))
        if labels is not None:
            ax.set_title(labels[i], fontsize=8)
        if statuses is not None and statuses[i] is not None:
            _frame(ax, RESULT_COLORS.get(statuses[i], "#7f7f7f"), 4)
    if title:
        fig.suptitle(title)
    return fig


def plot_method_comparison(rows: Sequence, score: str | None = None, title: str | None = None) -> Figure:
    """Grouped bars of a comparison table: one group per method, one bar per setting.

    Args:
        rows: :class:`cbir_lab.pipeline.MethodScore` rows from :func:`cbir_lab.pipeline.evaluate_methods`.
        score: which score to draw (default: ``"mAP"``, or ``"medium"`` for revisited tables).
        title: the axes' title.

    Returns:
        The figure.
    """
    if not rows:
        raise ValueError("plot_method_comparison: no rows given")
    names = list(rows[0].scores)
    score = score or ("mAP" if "mAP" in names else ("medium" if "medium" in names else names[0]))
    if score not in names:
        raise ValueError(f"plot_method_comparison: no score {score!r}; the rows have {names}")
    methods = list(dict.fromkeys(r.method for r in rows))
    settings = list(dict.fromkeys(_setting(r) for r in rows))
    values = {(r.method, _setting(r)): r.scores[score] for r in rows}
    fig = Figure(figsize=(1.4 + 1.3 * len(methods), 3.4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(settings)
    for j, setting in enumerate(settings):
        xs = [i + (j - (len(settings) - 1) / 2) * width for i in range(len(methods))]
        heights = [values.get((m, setting), np.nan) for m in methods]
        bars = ax.bar(xs, heights, width, label=setting)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(range(len(methods)), methods)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel(score)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or f"{score} by method", fontsize=10)
    return fig


def _setting(row) -> str:
    parts = ["whitened" if row.whitened else "L2 only"]
    if row.query_expansion:
        parts.append("+ α-QE")
    return " ".join(parts)
