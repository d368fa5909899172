"""The whitening lab of lesson 3: fit PCA-whitening interactively and watch mAP.

The pure functions do the work, fast enough for live updates:

* :func:`fit_basis` learns one PCA (mean, eigenvalues, eigenvectors) on a training
  set and projects queries and database on every useful component once;
* :func:`whitened_vectors` then only slices the first d coordinates, divides by
  λ^power and L2-normalises, so any (d, power) costs a few matrix slices;
* :func:`map_curve` scores a list of dimensions;
* :func:`train_vs_test_curves` and :func:`whitening_gains` are the lesson's
  comparisons (learning on the test set; the gain of each method), with
  :func:`format_curves_at` and :func:`format_whitening_gains` as text tables.

:class:`WhiteningLab` has controls for the dimension (16 up to the maximum the
training set allows), whitening off / partial / on, and the training set (the
separate training split, or the test database itself, which overfits). SPoC's
and MAC's mAP update live, with the curve of mAP against dimensions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from cbir_lab.evaluation import evaluate
from cbir_lab.pipeline import DatasetFeatures
from cbir_lab.search import rank
from cbir_lab.whitening import PCAWhitening, l2n
from cbir_lab.viz.whitening import MapCurveFigure
from cbir_lab.widgets._display import PanelRepr, show_in

__all__ = [
    "WHITENING_POWERS",
    "TRAINING_SETS",
    "WhiteningBasis",
    "fit_basis",
    "whitened_vectors",
    "headline_score",
    "score_vectors",
    "l2_only_score",
    "map_curve",
    "dimension_grid",
    "train_vs_test_curves",
    "format_curves_at",
    "WhiteningGain",
    "whitening_gains",
    "format_whitening_gains",
    "whitening_view",
    "WhiteningLab",
]

#: The whitening choices: label → power (0 = PCA only, 0.25 = partial, 0.5 = full).
WHITENING_POWERS: dict[str, float] = {"off (PCA only)": 0.0, "partial (λ^-1/4)": 0.25, "on (λ^-1/2)": 0.5}

#: The training-set choices: label → part of :class:`~cbir_lab.pipeline.DatasetFeatures`.
TRAINING_SETS: dict[str, str] = {"separate training set": "train", "test database (cheating)": "db"}


@dataclass(frozen=True)
class WhiteningBasis:
    """One PCA learned on a training set, with queries and database projected on it.

    Attributes:
        eigenvalues: (k,) the useful eigenvalues, decreasing.
        all_eigenvalues: every eigenvalue of the training covariance.
        query_proj: (n_q, k) float32 centred, unscaled coordinates of L2(query) on the eigenvectors.
        db_proj: (n_db, k) the same for the database.
    """

    eigenvalues: np.ndarray
    all_eigenvalues: np.ndarray
    query_proj: np.ndarray
    db_proj: np.ndarray

    @property
    def max_dim(self) -> int:
        return int(self.eigenvalues.size)


def fit_basis(train: np.ndarray, query: np.ndarray, db: np.ndarray) -> WhiteningBasis:
    """Learn the PCA on ``train`` (after L2) and project ``query`` and ``db`` once.

    Args:
        train: (n, D) unnormalised pooled vectors to learn on.
        query, db: (n_q, D), (n_db, D) vectors to project.

    Returns:
        The :class:`WhiteningBasis` (at most n - 1 components).
    """
    pca = PCAWhitening(n_components=None, power=0.0).fit(train)
    # float32 coordinates: every sweep step reads them, and rankings do not need float64
    return WhiteningBasis(pca.eigenvalues_, pca.all_eigenvalues_, pca.project(query).astype(np.float32),
                          pca.project(db).astype(np.float32))


def whitened_vectors(basis: WhiteningBasis, dim: int, power: float) -> tuple[np.ndarray, np.ndarray]:
    r"""Queries and database whitened to ``dim`` dimensions: L2(coords[:, :d] / λ^power).

    The same as ``PCAWhitening(dim, power)`` learned on the basis' training set.

    Args:
        basis: from :func:`fit_basis`.
        dim: d, 1 .. ``basis.max_dim``.
        power: 0.5 full whitening, 0 PCA only.

    Returns:
        (query (n_q, d), db (n_db, d)), float32, unit rows.
    """
    if not 1 <= dim <= basis.max_dim:
        raise ValueError(f"dim must be in 1..{basis.max_dim} for this training set, got {dim}")
    inverse_scale = (basis.eigenvalues[:dim] ** -power).astype(np.float32)
    return l2n(basis.query_proj[:, :dim] * inverse_scale), l2n(basis.db_proj[:, :dim] * inverse_scale)


def headline_score(scores: dict[str, float]) -> float:
    """The one number a curve plots: mAP, or the Medium mAP of the revisited protocol."""
    return float(scores["mAP"] if "mAP" in scores else scores["medium"])


def score_vectors(query: np.ndarray, db: np.ndarray, gnd, protocol: str) -> float:
    """Rank ``db`` for each query and return the headline mAP."""
    return headline_score(evaluate(rank(query, db), gnd, protocol))


def l2_only_score(features: DatasetFeatures, method: str) -> float:
    """The headline mAP of ``method``'s L2-normalised descriptors, without PCA: every curve's baseline."""
    ds = features.dataset
    return score_vectors(l2n(features.pooled("query", method)), l2n(features.pooled("db", method)), ds.gnd, ds.protocol)


def dimension_grid(max_dim: int, start: int = 16, step: int = 16, max_points: int = 16) -> list[int]:
    """start, start + step, … up to ``max_dim``, with ``max_dim`` itself last.

    The step grows in multiples of ``step`` so that the grid has about
    ``max_points`` points: each point costs one ranking and one evaluation, and
    a 1,280-d descriptor would otherwise need 80.
    """
    if max_dim < 1:
        raise ValueError(f"max_dim must be at least 1, got {max_dim}")
    step *= max(1, math.ceil(max_dim / (step * max_points)))
    dims = list(range(start, max_dim + 1, step))
    if not dims or dims[-1] != max_dim:
        dims.append(max_dim)
    return dims


def map_curve(basis: WhiteningBasis, dims: Sequence[int], power: float, gnd, protocol: str) -> np.ndarray:
    """mAP at each dimension of ``dims`` (each at most ``basis.max_dim``)."""
    return np.array([score_vectors(*whitened_vectors(basis, d, power), gnd, protocol) for d in dims])


def train_vs_test_curves(
    features: DatasetFeatures, methods: Sequence[str] = ("SPoC", "MAC"), power: float = 0.5
) -> tuple[dict[str, tuple[list[int], np.ndarray]], dict[str, float]]:
    """mAP against d with the whitening learned on the training split, and on the test database itself.

    Learning on the test database is the overfit lesson 3 shows: its curves
    are what a paper that did so would report.

    Args:
        features: the extracted dataset (needs a training split).
        methods: pooling methods (keys of :data:`cbir_lab.pipeline.METHODS`).
        power: 0.5 full whitening, 0.25 partial, 0 PCA only.

    Returns:
        (curves, baselines): ``"<method> (learned on the training set)"`` and
        ``"<method> (learned on the test set)"`` → (dims, mAP at each), and
        method → mAP with L2 only.
    """
    ds = features.dataset
    curves: dict[str, tuple[list[int], np.ndarray]] = {}
    baselines: dict[str, float] = {}
    for method in methods:
        query, db = features.pooled("query", method), features.pooled("db", method)
        baselines[method] = l2_only_score(features, method)
        for part, label in (("train", "training set"), ("db", "test set")):
            basis = fit_basis(features.pooled(part, method), query, db)
            dims = dimension_grid(basis.max_dim)
            curves[f"{method} (learned on the {label})"] = (dims, map_curve(basis, dims, power, ds.gnd, ds.protocol))
    return curves, baselines


def format_curves_at(curves: dict[str, tuple[Sequence[int], np.ndarray]], dims: Sequence[int] = (32, 64, 128)) -> str:
    """A text table of each curve's mAP at a few dimensions and at its last (largest) one.

    Args:
        curves: label → (dims, values), e.g. from :func:`train_vs_test_curves`.
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


@dataclass(frozen=True)
class WhiteningGain:
    """What PCA-whitening learned on the training split does to one method.

    Attributes:
        method: the pooling method.
        l2_only: mAP without PCA.
        full, partial: mAP with every useful component, whitened by λ^-1/2 and λ^-1/4.
        best, best_dim: the best full-whitening mAP over the dimension grid, and its d.
    """

    method: str
    l2_only: float
    full: float
    partial: float
    best: float
    best_dim: int


def whitening_gains(features: DatasetFeatures, methods: Sequence[str] = ("SPoC", "MAC", "GeM")) -> list[WhiteningGain]:
    """Each method's mAP without PCA, with full and partial whitening, and at its best d (learned on the training split).

    Args:
        features: the extracted dataset (needs a training split).
        methods: pooling methods.

    Returns:
        One :class:`WhiteningGain` per method.
    """
    ds = features.dataset
    gains = []
    for method in methods:
        query, db = features.pooled("query", method), features.pooled("db", method)
        basis = fit_basis(features.pooled("train", method), query, db)
        dims = dimension_grid(basis.max_dim)
        full = map_curve(basis, dims, 0.5, ds.gnd, ds.protocol)
        best = int(np.argmax(full))
        gains.append(WhiteningGain(
            method,
            l2_only=l2_only_score(features, method),
            full=float(full[-1]),
            partial=float(map_curve(basis, [basis.max_dim], 0.25, ds.gnd, ds.protocol)[0]),
            best=float(full[best]),
            best_dim=dims[best],
        ))
    return gains


def format_whitening_gains(gains: Sequence[WhiteningGain]) -> str:
    """A text table of :func:`whitening_gains`: mAP and gain over L2 only, full and partial, and the best d."""
    lines = [f"{'method':<6} {'L2 only':>8} {'full':>6} {'gain':>6} {'partial':>8} {'gain':>6} {'best d (full)':>14}"]
    for g in gains:
        lines.append(f"{g.method:<6} {g.l2_only:>8.3f} {g.full:>6.3f} {g.full - g.l2_only:>+6.3f} {g.partial:>8.3f} "
                     f"{g.partial - g.l2_only:>+6.3f} {g.best:>8.3f} @{g.best_dim:<4}")
    return "\n".join(lines)


def whitening_view(
    curves: dict[str, np.ndarray],
    dims: Sequence[int],
    baselines: dict[str, float],
    dim: int,
    current: dict[str, float],
    title: str,
    figure: MapCurveFigure | None = None,
) -> tuple[Figure, str]:
    """The lab's picture and caption.

    Args:
        curves: method → mAP at each of ``dims``.
        dims: the dimensions of the curves.
        baselines: method → mAP without PCA (L2 only).
        dim: the chosen dimension (marked).
        current: method → mAP at ``dim``.
        title: the figure's title (the setting).
        figure: a :class:`~cbir_lab.viz.whitening.MapCurveFigure` to redraw (default: a new one).

    Returns:
        (figure, caption).
    """
    fig = (figure or MapCurveFigure()).draw(dims, curves, baselines, dim, current, title)
    caption = f"d = {dim}: " + " | ".join(
        f"{m} {current[m]:.3f} ({current[m] - baselines[m]:+.3f} vs L2 only {baselines[m]:.3f})" for m in current
    )
    return fig, caption


class WhiteningLab(PanelRepr):
    """Dimension, whitening and training-set controls; SPoC and MAC mAP update live.

    Args:
        features: from :func:`cbir_lab.pipeline.extract_dataset` (needs a training split).
        methods: the methods compared (default SPoC and MAC).

    Attributes:
        dim, whitening, training: the controls (``IntSlider``, ``ToggleButtons``, ``Dropdown``).
        out: the ``Output`` the figure (or an error) is drawn in.
        error: the exception of the last update, or ``None``.
        figure, caption, scores: what the last update showed (``scores``: method → mAP at the chosen d).
        widget: the whole panel.
    """

    #: from this many database vectors on, a new setting first shows a "computing…" note
    slow_database_size = 2000

    def __init__(self, features: DatasetFeatures, methods: Sequence[str] = ("SPoC", "MAC")) -> None:
        if not features.train_maps:
            raise ValueError(f"dataset {features.dataset.name!r} has no training split to learn the whitening on")
        self.features = features
        self.methods = tuple(methods)
        self._bases: dict[tuple[str, str], WhiteningBasis] = {}
        self._curves: dict[tuple[str, str, float], tuple[list[int], np.ndarray]] = {}
        self._scores: dict[tuple[str, str, float, int], float] = {}
        self.baselines = {m: l2_only_score(features, m) for m in self.methods}
        self.training = widgets.Dropdown(options=list(TRAINING_SETS.items()), value="train", description="learn on")
        self.whitening = widgets.ToggleButtons(options=list(WHITENING_POWERS.items()), value=0.5, description="whitening")
        top = self.max_dim("train")
        self.dim = widgets.IntSlider(value=min(128, top), min=min(16, top), max=top, description="dimensions",
                                     continuous_update=False)
        self.out = widgets.Output()
        self._curve_figure = MapCurveFigure()
        self.figure: Figure | None = None
        self.caption = ""
        self.error: Exception | None = None
        self.scores: dict[str, float] = {}
        for control in (self.training, self.whitening, self.dim):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.training, self.dim]), self.whitening, self.out])
        self._updating = False
        self.update()

    def basis(self, method: str, part: str) -> WhiteningBasis:
        """The PCA of ``method``'s vectors learned on ``part`` ("train" or "db"), computed once."""
        key = (method, part)
        if key not in self._bases:
            f = self.features
            self._bases[key] = fit_basis(f.pooled(part, method), f.pooled("query", method), f.pooled("db", method))
        return self._bases[key]

    def max_dim(self, part: str) -> int:
        """The largest d every method's PCA on ``part`` supports."""
        return min(self.basis(m, part).max_dim for m in self.methods)

    def curve(self, method: str, part: str, power: float) -> tuple[list[int], np.ndarray]:
        """(dims, mAP at each) for one method and setting, computed once."""
        key = (method, part, power)
        if key not in self._curves:
            dims = dimension_grid(self.max_dim(part))
            ds = self.features.dataset
            self._curves[key] = (dims, map_curve(self.basis(method, part), dims, power, ds.gnd, ds.protocol))
        return self._curves[key]

    def score(self, method: str, part: str, power: float, dim: int) -> float:
        """mAP of one method and setting at ``dim`` dimensions, computed once."""
        key = (method, part, power, dim)
        if key not in self._scores:
            dims, values = self.curve(method, part, power)
            if dim in dims:
                self._scores[key] = float(values[dims.index(dim)])
            else:
                ds = self.features.dataset
                self._scores[key] = score_vectors(*whitened_vectors(self.basis(method, part), dim, power), ds.gnd, ds.protocol)
        return self._scores[key]

    def update(self, change=None) -> None:
        """Recompute and redraw for the controls' current values."""
        if self._updating:
            return
        def draw() -> None:
            part, power = self.training.value, self.whitening.value
            n_db = self.features.dataset.n_db
            fresh = any((m, part, power) not in self._curves for m in self.methods)
            if fresh and n_db >= self.slow_database_size:
                # seconds of work ahead: say so, rather than leave a frozen figure
                show_in(self.out, text=f"learning the PCA and scoring every dimension on {n_db:,} database vectors…")
            top = self.max_dim(part)
            if self.dim.max != top:
                self._updating = True  # clamp the slider without a second redraw
                try:
                    low = min(16, top)
                    if low < self.dim.min:
                        self.dim.min = low  # before max, so that min <= max holds throughout
                    self.dim.value = min(self.dim.value, top)
                    self.dim.max = top
                    self.dim.min = low
                finally:
                    self._updating = False
            d = self.dim.value
            curves, dims = {}, []
            for m in self.methods:
                dims, curves[m] = self.curve(m, part, power)
            self.scores = {m: self.score(m, part, power, d) for m in self.methods}
            title = f"whitening {self.whitening.label}, learned on the {self.training.label}"
            self.figure, self.caption = whitening_view(curves, dims, self.baselines, d, self.scores, title,
                                                         self._curve_figure)
            show_in(self.out, self.figure, self.caption)

        self._redraw(draw)

    def __repr__(self) -> str:
        return (f"WhiteningLab(learn_on={self.training.value!r}, power={self.whitening.value}, "
                f"dimensions={self.dim.value})")
