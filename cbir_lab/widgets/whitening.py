"""The whitening lab of lesson 3: fit PCA-whitening interactively and watch mAP.

:class:`WhiteningLab` has controls for the dimension (16 up to the maximum the
training set allows), whitening off / partial / on, and the training set (the
separate training split, the test database itself, which overfits, or any larger
whitening set the features carry, such as the 1,000 ImageNet photos). The
poolings' mAP update live, with the curve of mAP against dimensions.

The numbers come from :class:`cbir_lab.index.RetrievalIndex` (which learns each
whitening once and projects each set once, so a new (d, power) costs a slice and
a ranking); the picture from :func:`cbir_lab.viz.whitening.whitening_view`.
"""

from __future__ import annotations

from typing import Sequence

import ipywidgets as widgets
import numpy as np

from cbir_lab.index import RetrievalIndex
from cbir_lab.studies.whitening import dimension_grid
from cbir_lab.pooling import MAC, SPOC, Pooling
from cbir_lab.viz.whitening import MapCurveFigure, whitening_view
from cbir_lab.widgets._display import PanelRepr, show_in

__all__ = ["WHITENING_POWERS", "TRAINING_SETS", "WhiteningLab"]

#: The whitening choices: label → power (0 = PCA only, 0.25 = partial, 0.5 = full).
WHITENING_POWERS: dict[str, float] = {"off (PCA only)": 0.0, "partial (λ^-1/4)": 0.25, "on (λ^-1/2)": 0.5}

#: The training-set choices: label → part of :class:`~cbir_lab.pipeline.DatasetFeatures`.
TRAINING_SETS: dict[str, str] = {"separate training set": "train", "test database (cheating)": "db"}


class WhiteningLab(PanelRepr):
    """Dimension, whitening and training-set controls; SPoC's and MAC's mAP update live.

    Args:
        source: a :class:`~cbir_lab.index.RetrievalIndex`, or
            :class:`~cbir_lab.pipeline.DatasetFeatures` to index (it needs a training split).
        methods: the poolings compared (default SPoC and MAC).

    Attributes:
        dim, whitening, training: the controls (``IntSlider``, ``ToggleButtons``, ``Dropdown``).
        view: the ``ipywidgets.Image`` the curves are shown in (PNG).
        out: the ``Output`` for the caption, a "computing…" note, or an error.
        error: the exception of the last update, or ``None``.
        figure: the :class:`~cbir_lab.viz.whitening.MapCurveFigure` drawn (one, redrawn in place).
        caption, scores: what the last update showed (``scores``: method → mAP at the chosen d).
        widget: the whole panel.
    """

    #: from this many database vectors on, a new setting first shows a "computing…" note
    slow_database_size = 2000

    def __init__(self, source, methods: Sequence[Pooling | str] = (SPOC, MAC)) -> None:
        self.index = source if isinstance(source, RetrievalIndex) else RetrievalIndex(source)
        if not self.index.can_whiten:
            raise ValueError(f"dataset {self.index.dataset.name!r} has no training split to learn the whitening on")
        self.methods = tuple(Pooling.parse(m) for m in methods)
        self._max_dims: dict[tuple[Pooling, str], int] = {}
        self.baselines = {m.name: self.index.l2_score(m) for m in self.methods}
        features = self.index.features
        more = [(f"{name} ({len(features.maps(name)):,} images)", name) for name in features.whitening_sets]
        self.training = widgets.Dropdown(options=list(TRAINING_SETS.items()) + more, value="train",
                                         description="learn on")
        self.whitening = widgets.ToggleButtons(options=list(WHITENING_POWERS.items()), value=0.5, description="whitening")
        top = self.max_dim("train")
        self.dim = widgets.IntSlider(value=min(128, top), min=min(16, top), max=top, description="dimensions",
                                     continuous_update=False)
        self.figure = MapCurveFigure()
        self.view = widgets.Image(format="png", width=str(round(self.figure.figure.bbox.width)))
        self.out = widgets.Output()
        self.caption = ""
        self.error: Exception | None = None
        self.scores: dict[str, float] = {}
        for control in (self.training, self.whitening, self.dim):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.training, self.dim]), self.whitening, self.view, self.out])
        self._updating = False
        # every curve a control can ask for, now; learning on a large test database (a refit on
        # thousands of vectors) is left for when it is chosen, and says so while it runs
        parts = ("train", "db") if self.index.dataset.n_db < self.slow_database_size else ("train",)
        for part in parts + tuple(features.whitening_sets):
            dims = dimension_grid(self.max_dim(part))
            for power in WHITENING_POWERS.values():
                for method in self.methods:
                    self.index.whitening_curve(method, dims, power, part)
        self.update()

    def _limits(self, part: str, dims: list[int], shown: dict[str, np.ndarray]) -> tuple[tuple[float, float], tuple[float, float]]:
        """Axis limits that hold every curve of ``part`` computed so far, so that moving d redraws only the curves."""
        values = [v for m in self.methods for power in WHITENING_POWERS.values()
                  if self.index.curve_is_ready(m, dims, power, part)
                  for v in self.index.whitening_curve(m, dims, power, part)]
        values += [v for curve in shown.values() for v in curve] + list(self.baselines.values())
        low, high = min(values), max(values)
        pad = max(0.02, 0.05 * (high - low))
        x_pad = max(1.0, 0.03 * dims[-1])
        return (dims[0] - x_pad, dims[-1] + x_pad), (max(0.0, low - pad), min(1.02, high + pad))

    def max_dim(self, part: str) -> int:
        """The largest d every pooling's whitening learned on ``part`` supports."""
        for m in self.methods:
            if (m, part) not in self._max_dims:
                self._max_dims[(m, part)] = self.index.max_dim(m, part)  # fits the whitening: once
        return min(self._max_dims[(m, part)] for m in self.methods)

    def update(self, change=None) -> None:
        """Recompute and redraw for the controls' current values."""
        if self._updating:
            return
        def draw() -> None:
            part, power = self.training.value, self.whitening.value
            n_db = self.index.dataset.n_db
            fresh = any((m, part) not in self._max_dims or not self.index.curve_is_ready(
                m, dimension_grid(self.max_dim(part)), power, part) for m in self.methods)
            if fresh and n_db >= self.slow_database_size:
                # seconds of work ahead: say so, rather than leave a frozen figure
                show_in(self.out, text=f"learning the PCA and scoring every dimension on {n_db:,} database vectors…")
                self.index.prepare_sweeps(self.methods, part)  # the poolings' PCAs side by side
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
            dims = dimension_grid(top)
            if fresh and n_db >= self.slow_database_size:
                self.index.prepare_sweeps(self.methods, part, dims, power)  # every point of every curve
            curves = {m.name: self.index.whitening_curve(m, dims, power, part) for m in self.methods}
            self.scores = {m.name: self.index.whitened_score(m, d, power, part) for m in self.methods}
            setting = f"whitening {self.whitening.label}, learned on the {self.training.label}"
            png, self.caption = whitening_view(curves, dims, self.baselines, d, self.scores, setting, self.figure,
                                               self._limits(part, dims, curves))
            self.view.value = png
            show_in(self.out, text=self.caption)

        self._redraw(draw)

    def __repr__(self) -> str:
        return (f"WhiteningLab(learn_on={self.training.value!r}, power={self.whitening.value}, "
                f"dimensions={self.dim.value})")
