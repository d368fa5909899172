"""Figures redrawn in place (cbir_lab.viz._live and the widgets' live figures) and their PNG rendering."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cbir_lab.viz._live import LiveFigure
from cbir_lab.viz.whitening import MapCurveFigure
from cbir_lab.widgets._display import figure_png


class CountingFigure(LiveFigure):
    """One line per label; counts how often it is built."""

    def __init__(self):
        super().__init__(figsize=(3.0, 2.0))
        self.builds = 0

    def _structure(self, curves):
        return tuple(curves)

    def _build(self, curves):
        self.builds += 1
        self.ax = self.figure.subplots()
        self.lines = {label: self.ax.plot([], [])[0] for label in curves}

    def _update(self, curves):
        for label, ys in curves.items():
            self.lines[label].set_data(np.arange(len(ys)), ys)
        self.ax.set_title(" / ".join(curves))


def test_same_structure_redraws_in_place_and_keeps_the_layout():
    live = CountingFigure()
    fig = live.draw({"a": [1, 2]})
    line, position = live.lines["a"], live.ax.get_position().bounds
    assert live.draw({"a": [5, 6, 7]}) is fig
    assert live.builds == 1 and live.lines["a"] is line
    assert list(line.get_ydata()) == [5, 6, 7]
    assert live.ax.get_position().bounds == position  # laid out once, then frozen
    assert type(fig.get_layout_engine()).__name__ == "PlaceHolderLayoutEngine"


def test_another_structure_rebuilds_the_same_figure():
    live = CountingFigure()
    fig = live.draw({"a": [1, 2]})
    assert live.draw({"a": [1], "b": [2]}) is fig
    assert live.builds == 2
    assert len(fig.axes) == 1 and len(live.ax.lines) == 2  # the old axes were cleared, not stacked


def test_map_curve_figure_rescales_to_new_values():
    live = MapCurveFigure()
    live.draw([16, 32], {"SPoC": np.array([0.5, 0.6])}, {"SPoC": 0.55}, 16, {"SPoC": 0.5}, "first")
    line = live.curves["SPoC"]
    live.draw([16, 32, 48], {"SPoC": np.array([0.1, 0.2, 0.9])}, {"SPoC": 0.55}, 48, {"SPoC": 0.9}, "second")
    assert live.curves["SPoC"] is line and line.get_xdata().tolist() == [16, 32, 48]
    low, high = live.ax.get_ylim()
    assert low < 0.1 and high > 0.9
    assert list(live.current["SPoC"].get_xdata()) == [48]
    assert live.ax.get_title() == "second"


def test_figure_png_renders_at_the_asked_dpi_and_leaves_the_figure_alone():
    live = CountingFigure()  # 3 × 2 inches
    fig = live.draw({"a": [1, 2]})
    fig.set_dpi(100)
    png = figure_png(fig, dpi=50)
    assert Image.open(io.BytesIO(png)).size == (150, 100)
    assert fig.dpi == 100
