"""Ranking figures: a query and its top results, bordered by correctness."""

from __future__ import annotations

from typing import Sequence


import numpy as np
from matplotlib.figure import Figure

from cbir_lab.features import load_image

__all__ = ["RESULT_COLORS", "result_status", "plot_ranking"]

#: Border colours of results: correct, junk, wrong.
RESULT_COLORS = {"correct": "#2ca02c", "junk": "#ff9f1c", "wrong": "#d62728", "unknown": "#7f7f7f"}


def result_status(index: int, gnd: dict | None) -> str:
    """``"correct"``, ``"junk"``, ``"wrong"`` (or ``"unknown"`` without ground truth) for a database index."""
    if gnd is None:
        return "unknown"
    positives = gnd.get("ok", list(gnd.get("easy", [])) + list(gnd.get("hard", [])))
    if index in set(np.asarray(positives).tolist()):
        return "correct"
    if index in set(np.asarray(gnd.get("junk", [])).tolist()):
        return "junk"
    return "wrong"


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


def plot_ranking(
    query,
    db_items: Sequence,
    ranking: Sequence[int],
    gnd: dict | None = None,
    k: int = 8,
    scores: Sequence[float] | None = None,
    title: str | None = None,
    thumb_side: int = 256,
) -> Figure:
    """The query and its top-k results, bordered green (correct), orange (junk) or red (wrong).

    Args:
        query: the query image item (path, PIL image or (path, bbox)).
        db_items: database image items.
        ranking: database indices, best first (one column of :func:`cbir_lab.search.rank`).
        gnd: the query's ground truth (``'ok'``/``'junk'``, or revisited keys), or None.
        k: how many results to show.
        scores: similarity of each *ranked* result, for the titles.
        title: the figure's title.
        thumb_side: thumbnail size in pixels.

    Returns:
        The figure.
    """
    k = min(k, len(ranking))
    fig = Figure(figsize=(2.0 * (k + 1), 2.6), layout="constrained")
    axes = fig.subplots(1, k + 1, squeeze=False)[0]
    _thumb(axes[0], query, "query", "#1f77b4", thumb_side)
    for pos in range(k):
        index = int(ranking[pos])
        status = result_status(index, gnd)
        label = f"#{pos + 1}" + (f"  {scores[pos]:.2f}" if scores is not None else "")
        _thumb(axes[pos + 1], db_items[index], label, RESULT_COLORS[status], thumb_side)
    if title:
        fig.suptitle(title)
    return fig
