"""Ranking figures: a query and its top results, bordered by correctness.

:data:`RESULT_COLORS` are the colours every view uses for a result's status
(:func:`cbir_lab.index.result_status`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from cbir_lab.images import load_image

__all__ = ["RESULT_COLORS", "plot_ranking"]

#: Border colours of results: correct, junk, wrong.
RESULT_COLORS = {"correct": "#2ca02c", "junk": "#ff9f1c", "wrong": "#d62728", "unknown": "#7f7f7f"}


def _thumb(ax, item, title: str, color: str | None, thumb_side: int) -> None:
    image = load_image(item)
    image.thumbnail((thumb_side, thumb_side))
    ax.imshow(np.asarray(image))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    if color is not None:
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(5)


def plot_ranking(query, db_items: Sequence, result, title: str | None = None, thumb_side: int = 256) -> Figure:
    """The query and its top results, bordered green (correct), orange (junk) or red (wrong).

    Args:
        query: the query image item (path, PIL image or (path, bbox)).
        db_items: database image items.
        result: what to show, e.g. a :class:`cbir_lab.index.QueryResult`: anything with
            ``indices`` (database indices, best first), ``scores`` (their similarities)
            and ``statuses`` (``"correct"``, ``"junk"``, ``"wrong"`` or ``"unknown"``).
        title: the figure's title.
        thumb_side: thumbnail size in pixels.

    Returns:
        The figure.
    """
    k = len(result.indices)
    if k == 0:
        raise ValueError("plot_ranking: the result has no images to show")
    fig = Figure(figsize=(2.0 * (k + 1), 2.6), layout="constrained")
    axes = fig.subplots(1, k + 1, squeeze=False)[0]
    _thumb(axes[0], query, "query", "#1f77b4", thumb_side)
    for pos in range(k):
        label = f"#{pos + 1}  {result.scores[pos]:.2f}"
        _thumb(axes[pos + 1], db_items[int(result.indices[pos])], label, RESULT_COLORS[result.statuses[pos]], thumb_side)
    if title:
        fig.suptitle(title)
    return fig
