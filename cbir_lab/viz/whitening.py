"""Figures for lesson 3 (PCA-whitening): the eigen-spectrum, the covariance before and after, mAP against d.

* :func:`covariance` is the covariance of a set of vectors (rows), the matrix
  whitening turns into the identity on its training set (the PCA core's, from
  :mod:`cbir_lab._array`, re-exported here).
* :func:`plot_spectrum` draws eigenvalues on a log scale;
  :func:`plot_covariances` shows covariance matrices side by side;
  :func:`plot_map_curves` plots mAP against the number of dimensions, with the
  no-PCA baselines (the overfit figure; :class:`MapCurveFigure`, the whitening
  widget's picture, redrawn in place), and :func:`whitening_view` the lab's
  picture and caption.
* :func:`format_curves_at` and :func:`format_whitening_gains` print the
  comparisons of :func:`cbir_lab.studies.whitening.train_vs_test_curves` and
  :func:`cbir_lab.studies.whitening.whitening_gains` as text tables.

Every plot returns a :class:`matplotlib.figure.Figure` and never shows it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from cbir_lab._array import covariance
from cbir_lab.viz._live import LiveFigure

__all__ = [
    "covariance",
    "plot_spectrum",
    "plot_covariances",
    "plot_map_curves",
    "MapCurveFigure",
    "whitening_view",
    "format_curves_at",
    "format_whitening_gains",
]

_COLORS = {"SPoC": "#1f77b4", "MAC": "#d62728", "R-MAC": "#2ca02c", "GeM": "#9467bd"}


def plot_spectrum(eigenvalues: dict[str, np.ndarray], title: str = "eigen-spectrum of the training vectors") -> Figure:
    """Eigenvalues, largest first, on a log scale, and the share of variance they explain.

    Args:
        eigenvalues: label → eigenvalues (decreasing).
        title: the figure's title.

    Returns:
        The figure (two panels).
    """
    fig = Figure(figsize=(10.0, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2)
    for label, values in eigenvalues.items():
        values = np.asarray(values, dtype=np.float64)
        values = values[values > values[0] * 1e-12]
        color = _COLORS.get(label.split()[0])
        ranks = np.arange(1, values.size + 1)
        left.semilogy(ranks, values, label=label, color=color)
        right.plot(ranks, np.cumsum(values) / values.sum(), label=label, color=color)
    left.set_xlabel("component k")
    left.set_ylabel("eigenvalue λ_k (log)")
    left.set_title("a few directions hold most of the variance", fontsize=10)
    right.set_xlabel("number of components d")
    right.set_ylabel("share of variance kept")
    right.set_ylim(0, 1.02)
    right.set_title("variance kept by the first d components", fontsize=10)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return fig


def plot_covariances(matrices: dict[str, np.ndarray], size: int = 48) -> Figure:
    """Covariance matrices side by side (their top-left ``size`` × ``size`` block), on one colour scale each.

    Args:
        matrices: panel title → (D, D) covariance.
        size: how many dimensions to show.

    Returns:
        The figure.
    """
    fig = Figure(figsize=(3.7 * len(matrices), 3.5), layout="constrained")
    axes = fig.subplots(1, len(matrices), squeeze=False)[0]
    for ax, (title, matrix) in zip(axes, matrices.items()):
        block = np.asarray(matrix)[:size, :size]
        limit = float(np.abs(block).max()) or 1.0
        shown = ax.imshow(block, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
        fig.colorbar(shown, ax=ax, shrink=0.8)
        diag = np.diag(block)
        off = block[~np.eye(block.shape[0], dtype=bool)]
        ax.set_title(f"{title}\ndiag {diag.min():.2g}…{diag.max():.2g}, |off-diag| mean {np.abs(off).mean():.2g}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


class MapCurveFigure(LiveFigure):
    """mAP against the number of dimensions d, one line per curve; the whitening lab redraws it in place.

    :meth:`draw` takes the arguments of :func:`plot_map_curves`. The same labels
    (and styles) redraw in place; other labels rebuild the figure. The curves,
    the marker and the current values are animated (:meth:`LiveFigure.png` blits
    them over the kept axes, legend and baselines); fixed ``limits`` keep the
    axes still from frame to frame, so a slider step only draws those.
    """

    def __init__(self) -> None:
        super().__init__(figsize=(9.6, 3.6))
        self._still: tuple | None = None

    @staticmethod
    def _structure(dims, curves, baselines=None, marker=None, current=None, title="", styles=None, limits=None):
        return (tuple(curves), tuple(baselines or ()), tuple(current or ()), marker is None,
                tuple(sorted((styles or {}).items())))

    def _build(self, dims, curves, baselines=None, marker=None, current=None, title="", styles=None, limits=None) -> None:
        ax = self.ax = self.figure.subplots()
        styles = styles or {}
        self.curves = {label: ax.plot([], [], styles.get(label, "-"), marker=".", color=_COLORS.get(label.split()[0]),
                                      label=f"{label} + PCA-whitening")[0] for label in curves}
        self.baselines = {label: ax.axhline(0, color=_COLORS.get(label.split()[0]), ls=":", lw=1.5,
                                            label=f"{label}, L2 only") for label in baselines or {}}
        self.marker = None if marker is None else ax.axvline(marker, color="k", lw=0.8, alpha=0.6)
        self.current = {label: ax.plot([], [], "o", color=_COLORS.get(label.split()[0]), ms=8, mec="k")[0]
                        for label in current or {}}
        self.animate(*self.curves.values(), *self.current.values(), *([self.marker] if self.marker else []))
        ax.set_xlabel("dimensions d")
        ax.set_ylabel("mAP")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))  # outside: never hides a curve

    def _update(self, dims, curves, baselines=None, marker=None, current=None, title="", styles=None, limits=None) -> None:
        for label, values in curves.items():
            xs, ys = values if isinstance(values, tuple) else (dims, values)
            self.curves[label].set_data(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
        for label, value in (baselines or {}).items():
            self.baselines[label].set_ydata([value, value])
        if marker is not None:
            self.marker.set_xdata([marker, marker])
        for label, value in (current or {}).items():
            self.current[label].set_data([marker], [value])
        if limits is None:
            self.ax.relim(visible_only=False)
            self.ax.autoscale_view()
        else:
            self.ax.set_xlim(*limits[0])
            self.ax.set_ylim(*limits[1])
        self.ax.set_title(title, fontsize=10)
        still = (self.ax.get_xlim(), self.ax.get_ylim(), title, tuple(sorted((baselines or {}).items())))
        if still != self._still:  # the axes, the title or a baseline moved: render the still part afresh
            self._still = still
            self.invalidate()


def plot_map_curves(
    dims: Sequence[int],
    curves: dict[str, np.ndarray],
    baselines: dict[str, float] | None = None,
    marker: int | None = None,
    current: dict[str, float] | None = None,
    title: str = "",
    styles: dict[str, str] | None = None,
    limits: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> Figure:
    """mAP against the number of dimensions d: :class:`MapCurveFigure`, drawn once.

    Args:
        dims: the x values (one list for all curves), or use ``curves[label] = (dims, values)``.
        curves: label → mAP at each of ``dims`` (or (dims, values) pairs).
        baselines: method → mAP without PCA, drawn dotted in the method's colour.
        marker: a chosen d to mark with a vertical line.
        current: label → mAP at ``marker``, drawn as dots.
        title: the figure's title.
        styles: label → matplotlib line style (e.g. ``"--"`` for the test-set curves).
        limits: ((x_min, x_max), (y_min, y_max)), or None to fit the data.

    Returns:
        The figure.
    """
    fig = MapCurveFigure().draw(dims, curves, baselines, marker, current, title, styles, limits)
    for line in fig.axes[0].lines:  # a figure drawn once is shown whole: nothing is blitted
        line.set_animated(False)
    return fig


def whitening_view(
    curves: dict[str, np.ndarray],
    dims: Sequence[int],
    baselines: dict[str, float],
    dim: int,
    current: dict[str, float],
    setting: str,
    figure: MapCurveFigure,
    limits: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> tuple[bytes, str]:
    """The whitening lab's picture (PNG bytes) and caption.

    Args:
        curves: method → mAP at each of ``dims``.
        dims: the dimensions of the curves.
        baselines: method → mAP without PCA (L2 only).
        dim: the chosen dimension (marked).
        current: method → mAP at ``dim``.
        setting: what the curves are (the whitening and where it was learned), for the caption.
        figure: the :class:`MapCurveFigure` to redraw.
        limits: fixed axis limits, so that a new d redraws only the curves (see :class:`MapCurveFigure`).

    Returns:
        (PNG bytes, caption).
    """
    figure.draw(dims, curves, baselines, dim, current, "", None, limits)
    caption = f"{setting} · d = {dim}: " + " | ".join(
        f"{m} {current[m]:.3f} ({current[m] - baselines[m]:+.3f} vs L2 only {baselines[m]:.3f})" for m in current
    )
    return figure.png(), caption


def format_curves_at(curves: dict[str, tuple[Sequence[int], np.ndarray]], dims: Sequence[int] = (32, 64, 128)) -> str:
    """A text table of each curve's mAP at a few dimensions and at its last (largest) one.

    Args:
        curves: label → (dims, values), e.g. from :func:`cbir_lab.studies.whitening.train_vs_test_curves`.
        dims: the columns; a curve without a column's d shows "—".

    Returns:
        The table, one line per curve.
    """
    width = max([len("whitening")] + [len(label) for label in curves])
    lines = [f"{'whitening':<{width}} " + " ".join(f"{f'd={d}':>6}" for d in dims) + f" {'all':>6}"]
    for label, (xs, values) in curves.items():
        at = dict(zip(xs, values))
        cells = [f"{at[d]:>6.2f}" if d in at else f"{'—':>6}" for d in dims]
        lines.append(f"{label:<{width}} " + " ".join(cells) + f" {values[-1]:>6.2f}")
    return "\n".join(lines)


def format_whitening_gains(gains: Sequence) -> str:
    """A text table of :func:`cbir_lab.studies.whitening.whitening_gains`: mAP and gain over L2 only, full and partial,
    the best d (chosen on the same queries, which flatters it), the d chosen on held-out queries, and the
    gains' 95 % intervals when the rows have them."""
    intervals = all(getattr(g, "full_gain", None) is not None for g in gains)
    held_out = all(getattr(g, "held_out", None) is not None for g in gains)
    header = f"{'method':<6} {'L2 only':>8} {'full':>6} {'gain':>6} {'partial':>8} {'gain':>6} {'best d (full)':>14}"
    if held_out:
        header += f"  {'held-out d':>19}"
    if intervals:
        header += "  full gain [95 % CI]  " + ("held-out gain [95 % CI]" if held_out else "best gain [95 % CI]")
    lines = [header]
    for g in gains:
        line = (f"{g.method:<6} {g.l2_only:>8.3f} {g.full:>6.3f} {g.full - g.l2_only:>+6.3f} {g.partial:>8.3f} "
                f"{g.partial - g.l2_only:>+6.3f} {g.best:>8.3f} @{g.best_dim:<4}")
        if held_out:
            line += f"  {g.held_out:>8.3f} @{'/'.join(map(str, g.held_out_dims)):<9}"
        if intervals:
            line += f"  {_bracket(g.full_gain):<19}  {_bracket(g.held_out_gain if held_out else g.best_gain)}"
        lines.append(line.rstrip())
    if intervals:
        lines.append(f"(intervals: {gains[0].full_gain.resampled}; best d is chosen on the same queries it is scored on, "
                     f"which flatters it; held-out d is chosen on the other half of the {gains[0].full_gain.unit})")
    return "\n".join(lines)


def _bracket(interval) -> str:
    return f"[{interval.low:+.3f}, {interval.high:+.3f}]"
