"""Lesson 9's widget: a progress bar and training curves that redraw after every epoch, while the network trains.

:class:`TrainingMonitor` is a callback for :func:`cbir_lab.learning.train_descriptor`'s ``on_epoch``:
it keeps the records, shows how many epochs are done as a bar, and draws
:func:`cbir_lab.viz.learning.plot_training_curves` into an ``Output`` widget. It trains nothing
and computes nothing. (The bar is HTML, not a ``FloatProgress``, so that the book's still of a
saved notebook shows it too.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import html

import ipywidgets as widgets

from cbir_lab.widgets._display import run_showing_errors, show_in

__all__ = ["TrainingMonitor", "progress_html"]


def progress_html(name: str, done: int, total: int | None) -> str:
    """A progress bar as HTML: ``done`` of ``total`` epochs (an unknown total shows the count alone).

    Examples:
        >>> "width: 25%" in progress_html("run", 2, 8) and "epoch 2 of 8" in progress_html("run", 2, 8)
        True
    """
    label = f"{html.escape(name)}: epoch {done}" + (f" of {total}" if total else "")
    if not total:
        return f"<div>{label}</div>"
    share = max(0, min(100, round(100 * done / total)))
    return (f'<div style="display: flex; align-items: center; gap: 0.6em">'
            f'<div style="width: 16em; height: 0.8em; background: #e3e3e3; border-radius: 3px">'
            f'<div style="width: {share}%; height: 100%; background: #4c72b0; border-radius: 3px"></div></div>'
            f'<span>{label}</span></div>')


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
        self.epochs: int | None = None
        self.progress = widgets.HTML()
        self.out = widgets.Output()
        self.errors = widgets.Output()
        self.widget = widgets.VBox([self.progress, self.out, self.errors])
        self.widget.add_class("cbir-training-monitor")

    def start(self, name: str, before: float | None = None, epochs: int | None = None) -> None:
        """Begin a new curve named ``name``, starting from the validation score ``before`` training, of ``epochs`` epochs."""
        self.runs[name] = _PartialRun(before)
        self._current = name
        self.epochs = epochs
        self.progress.value = progress_html(name, 0, epochs)

    def update(self, record) -> None:
        """Add one :class:`~cbir_lab.learning.EpochRecord` to the current curve and redraw."""
        if self._current is None:
            self.start("training")
        self.runs[self._current].history.append(record)
        self.progress.value = progress_html(self._current, record.epoch, self.epochs)
        run_showing_errors(self.errors, self._draw)

    def _draw(self) -> None:
        from cbir_lab.viz.learning import plot_training_curves

        last = self.runs[self._current].history[-1]
        show_in(self.out, plot_training_curves(self.runs, self.score_name),
                f"{self._current}: epoch {last.epoch}, loss {last.loss:.4f}, p = {last.p:.3f}"
                + ("" if last.validation is None else f", {self.score_name} {last.validation:.3f}"))
