"""Figures for the retrieval lesson: "why did this match?" maps, precision-recall curves, thumbnail grids.

* :func:`plot_contributions` draws :func:`cbir_lab.studies.explain.contribution_map` maps
  over the query and the result.
* :func:`plot_precision_recall` draws one query's precision-recall curves.
* :func:`plot_thumbnail_grid` shows many images at once (a dataset's queries).
* :func:`plot_method_comparison` draws a comparison table
  (:func:`cbir_lab.studies.methods.comparison_table`) as grouped bars, and
  :func:`format_scores` prints it, optionally with bootstrap intervals;
  :func:`format_query_differences` lists the queries on which two settings differ most.

Every function returns a matplotlib :class:`~matplotlib.figure.Figure` (or text);
nothing is shown, and nothing here computes a descriptor or a score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from cbir_lab.images import load_image
from cbir_lab.viz.ranking import RESULT_COLORS

__all__ = [
    "plot_contributions",
    "plot_precision_recall",
    "plot_thumbnail_grid",
    "plot_method_comparison",
    "format_scores",
    "format_cluster_means",
    "format_query_differences",
]


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
        query_contribution: :func:`cbir_lab.studies.explain.contribution_map` of the query's map against the
            result's descriptor (a :class:`cbir_lab.studies.explain.Contribution`).
        result_contribution: the result's map against the query's descriptor.
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
        rows: :class:`cbir_lab.studies.methods.MethodScore` rows from :func:`cbir_lab.studies.methods.comparison_table`.
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


def format_scores(rows: Sequence, digits: int = 3, intervals: Mapping | None = None,
                  versus: str = "reference", score_intervals: Mapping | None = None) -> str:
    """A plain-text table of comparison rows (one column per score).

    Args:
        rows: :class:`cbir_lab.studies.methods.MethodScore` rows.
        digits: decimals shown.
        intervals: optionally, setting label → :class:`cbir_lab.evaluation.Interval`
            of the row's difference to another row, shown in a last column: to one reference
            row (:func:`cbir_lab.studies.methods.compare_methods`; that row shows "reference"), or to
            the same row without a change (:func:`cbir_lab.studies.methods.compare_settings`; rows
            without the change show "-").
        versus: what the intervals compare with, for the column's header.
        score_intervals: optionally, setting label → the :class:`cbir_lab.evaluation.Interval`
            of the row's own headline score (:func:`cbir_lab.studies.methods.score_intervals`), shown
            after the scores.

    Returns:
        The table; the QE column only when some row uses query expansion.
    """
    if not rows:
        return "(no results)"
    score_names = list(rows[0].scores)
    header = ["method", "whitening", "QE", "dim", *score_names]
    body = [
        [r.method, "yes" if r.whitened else "no", "α-QE" if r.query_expansion else "-", str(r.dim),
         *[f"{r.scores[s]:.{digits}f}" for s in score_names]]
        for r in rows
    ]
    if score_intervals is not None:
        resampled = next((f", {i.resampled}" for i in score_intervals.values()), "")
        header.append(f"{'medium' if 'medium' in score_names else score_names[0]} 95 % CI{resampled}")
        for cells, row in zip(body, rows):
            interval = score_intervals[row.setting_label]
            cells.append(f"[{interval.low:.{digits}f}, {interval.high:.{digits}f}]")
    if intervals is not None:
        resampled = next((f", {i.resampled}" for i in intervals.values()), "")
        header.append(f"Δ vs {versus} [95 % CI{resampled}]")
        missing = "reference" if versus == "reference" else "-"
        for cells, row in zip(body, rows):
            interval = intervals.get(row.setting_label)
            cells.append(missing if interval is None else
                         f"{interval.estimate:+.{digits}f} [{interval.low:+.{digits}f}, {interval.high:+.{digits}f}]")
    if not any(r.query_expansion for r in rows):
        header.pop(2)
        body = [b[:2] + b[3:] for b in body]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(b) for b in body])


def format_cluster_means(rows: Sequence, digits: int = 3) -> str:
    """Each row's headline mAP within each query cluster (landmark, object, source photo), as a text table.

    With fewer than ten clusters a bootstrap interval says little: this table shows
    instead whether a method's lead holds in every cluster or comes from one.

    Args:
        rows: :class:`cbir_lab.studies.methods.MethodScore` rows carrying ``clusters``.
        digits: decimals shown.

    Returns:
        One line per row, one column per cluster (its query count in the header).
    """
    from cbir_lab.evaluation import cluster_means

    per_row = [cluster_means(r.aps, r.clusters) for r in rows]
    names = list(per_row[0])
    header = ["method"] + [f"{n} ({per_row[0][n][1]})" for n in names]
    body = [[r.setting_label] + [f"{means[n][0]:.{digits}f}" for n in names] for r, means in zip(rows, per_row)]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in [header, body[0]] + body[1:]]
    return "\n".join(lines[:1] + ["  ".join("-" * w for w in widths)] + lines[1:])


def format_query_differences(labels: Sequence[str], aps_a, aps_b, name_a: str, name_b: str, top: int = 5,
                             digits: int = 2) -> str:
    """The queries on which setting a beats setting b by the most, by AP, as a text table.

    Args:
        labels: a name per query.
        aps_a, aps_b: the two settings' per-query APs (NaN for queries without positives).
        name_a, name_b: their names, for the header.
        top: how many queries to list.
        digits: decimals shown.

    Returns:
        One line per query, the largest AP(a) − AP(b) first.

    Examples:
        >>> print(format_query_differences(["q0", "q1"], [0.5, 1.0], [0.75, 0.25], "MAC", "SPoC", top=1))
        query  MAC   SPoC  MAC - SPoC
        q1     1.00  0.25  +0.75
    """
    a, b = np.asarray(aps_a, dtype=float), np.asarray(aps_b, dtype=float)
    if not (len(labels) == a.size == b.size):
        raise ValueError(f"format_query_differences: {len(labels)} labels for {a.size} and {b.size} APs")
    order = [q for q in np.argsort(-(a - b), kind="stable") if not np.isnan(a[q] - b[q])][:top]
    header = ["query", name_a, name_b, f"{name_a} - {name_b}"]
    body = [[labels[q], f"{a[q]:.{digits}f}", f"{b[q]:.{digits}f}", f"{a[q] - b[q]:+.{digits}f}"] for q in order]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *body])
