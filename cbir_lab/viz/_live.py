"""Figures that widgets redraw in place.

Building a matplotlib figure (its axes, ticks and texts) and running its
constrained layout take most of a widget's redraw: about 150 ms of a 200 ms
slider step on a 2-core laptop. A :class:`LiveFigure` builds its artists at the
first :meth:`~LiveFigure.draw`, computes the layout once, and afterwards only
changes the artists' data and texts, which leaves rendering and PNG encoding.
"""

from __future__ import annotations

from typing import Hashable

from matplotlib.figure import Figure

__all__ = ["LiveFigure", "hide_axes"]

_UNBUILT = object()


def hide_axes(ax) -> None:
    """No ticks, tick labels or axis labels on ``ax``; the frame stays.

    Hiding the axes, rather than emptying their ticks, also skips their layout
    at every draw, a good part of an image panel's drawing time.
    """
    ax.xaxis.set_visible(False)
    ax.yaxis.set_visible(False)


class LiveFigure:
    """Base class of a figure built once and then updated in place.

    Subclasses implement ``_build(*args)``, which creates the artists for the
    first data, and ``_update(*args)``, which sets every artist's data and text
    (it runs after ``_build`` too, so the two never duplicate). When
    ``_structure(*args)`` returns a different key (another set of curves, say),
    the figure is cleared and built again. ``_reserve()`` may widen texts whose
    size changes with the data (tick labels) before the layout is frozen, so that
    later frames find room for them; the frame is then updated once more.

    Args:
        figsize: (width, height) in inches.
        dpi: the resolution the widgets render at; a figure kept at that dpi
            needs no rescaling per frame.

    Attributes:
        figure: the :class:`matplotlib.figure.Figure`, the same object after every draw.
    """

    def __init__(self, figsize: tuple[float, float], dpi: float = 80) -> None:
        self.figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")
        self._built_for: Hashable = _UNBUILT

    def _structure(self, *args, **kwargs) -> Hashable:
        return None

    def _build(self, *args, **kwargs) -> None:
        raise NotImplementedError

    def _update(self, *args, **kwargs) -> None:
        raise NotImplementedError

    def _reserve(self) -> None:
        pass

    def draw(self, *args, **kwargs) -> Figure:
        """Show new data (the subclass' arguments) and return :attr:`figure`."""
        key = self._structure(*args, **kwargs)
        first = key != self._built_for
        if first:
            self.figure.clear()
            self.figure.set_layout_engine("constrained")
            self._build(*args, **kwargs)
        self._update(*args, **kwargs)
        if first:
            # Lay out once, with the first titles in place, then keep the positions: later
            # frames change data and texts of similar size, not the panels' arrangement.
            self._reserve()
            self.figure.get_layout_engine().execute(self.figure)
            self.figure.set_layout_engine("none")
            self._built_for = key
            self._update(*args, **kwargs)
        return self.figure
