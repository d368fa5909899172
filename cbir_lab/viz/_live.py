"""Figures that widgets redraw in place.

Building a matplotlib figure (its axes, ticks and texts) and running its
constrained layout take most of a widget's redraw: about 150 ms of a 200 ms
slider step on a 2-core laptop. A :class:`LiveFigure` builds its artists at the
first :meth:`~LiveFigure.draw`, computes the layout once, and afterwards only
changes the artists' data and texts, which leaves rendering and PNG encoding.

Rendering text is the slowest part of what is left (axes, ticks, legend). A
figure whose subclass marks its changing artists with :meth:`~LiveFigure.animate`
is rendered by :meth:`~LiveFigure.png` with *blitting*: the still part (axes,
labels, legend) is rendered once and kept as pixels, and each frame only pastes
it back and draws the changing artists over it. Anything that changes the still
part calls :meth:`~LiveFigure.invalidate`.
"""

from __future__ import annotations

import io
from typing import Hashable

from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

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
        self._animated: list[Artist] = []
        self._background = None

    def animate(self, *artists: Artist) -> None:
        """Mark artists as the ones that change from frame to frame: :meth:`png` draws them over
        the kept still part. Call from ``_build``."""
        for artist in artists:
            artist.set_animated(True)
            self._animated.append(artist)

    def invalidate(self) -> None:
        """The still part changed (limits, a title): the next :meth:`png` renders it afresh."""
        self._background = None

    def png(self, compress_level: int = 1) -> bytes:
        """The current frame as PNG bytes (at the figure's dpi), blitted when the still part is kept."""
        canvas = self.figure.canvas if isinstance(self.figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(self.figure)
        if self._background is None:
            canvas.draw()  # animated artists are left out of a full draw
            self._background = canvas.copy_from_bbox(self.figure.bbox)
        else:
            canvas.restore_region(self._background)
        for artist in self._animated:
            if artist.get_visible():
                self.figure.draw_artist(artist)
        rgba = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        buffer = io.BytesIO()
        rgba.save(buffer, format="png", compress_level=compress_level)
        return buffer.getvalue()

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
            self._animated = []
            self.invalidate()
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
