"""Lesson 9's widget: training curves that redraw after every epoch, while the network trains.

:class:`TrainingMonitor` is a callback for :func:`cbir_lab.learning.train_descriptor`'s ``on_epoch``:
it keeps the records and draws :func:`cbir_lab.viz.learning.plot_training_curves` into an
``Output`` widget. It trains nothing and computes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ipywidgets as widgets

from cbir_lab.widgets._display import run_showing_errors, show_in

__all__ = ["TrainingMonitor"]


@dataclass
class _PartialRun:
    before: float | None
    history: list = field(default_factory=list)


class TrainingMonitor:
    """Live curves of one or more training runs: loss, validation score and GeM's p per epoch.

    Args:
        score_name: the label of the validation axis.

    Examples:
        >>> monitor = TrainingMonitor()  # doctest: +SKIP
        >>> monitor.start("hard negatives", before=0.66); display(monitor.widget)  # doctest: +SKIP
        >>> train_descriptor(model, maps, labels, validate=..., on_epoch=monitor.update)  # doctest: +SKIP
    """

    def __init__(self, score_name: str = "validation mAP") -> None:
        self.score_name = score_name
        self.runs: dict[str, _PartialRun] = {}
        self._current: str | None = None
        self.out = widgets.Output()
        self.errors = widgets.Output()
        self.widget = widgets.VBox([self.out, self.errors])

    def start(self, name: str, before: float | None = None) -> None:
        """Begin a new curve named ``name``, starting from the validation score ``before`` training."""
        self.runs[name] = _PartialRun(before)
        self._current = name

    def update(self, record) -> None:
        """Add one :class:`~cbir_lab.learning.EpochRecord` to the current curve and redraw."""
        if self._current is None:
            self.start("training")
        self.runs[self._current].history.append(record)
        run_showing_errors(self.errors, self._draw)

    def _draw(self) -> None:
        from cbir_lab.viz.learning import plot_training_curves

        last = self.runs[self._current].history[-1]
        show_in(self.out, plot_training_curves(self.runs, self.score_name),
                f"{self._current}: epoch {last.epoch}, loss {last.loss:.4f}, p = {last.p:.3f}"
                + ("" if last.validation is None else f", {self.score_name} {last.validation:.3f}"))
