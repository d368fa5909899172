"""Pictures for lesson 8: the recall / time trade-off of approximate indexes.

:class:`TradeoffPicture` draws every measured index setting once with matplotlib
(recall@k against milliseconds per query), keeps the rendered pixels, and marks
the chosen setting on a copy with Pillow: a widget step costs a few milliseconds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from cbir_lab.viz.panels import Canvas, png_bytes

__all__ = ["KIND_COLOURS", "TradeoffPicture"]

#: Marker colour per index kind.
KIND_COLOURS = {"flat": "#000000", "ivf": "#1f77b4", "pq": "#2ca02c", "ivfpq": "#ff7f0e"}


class TradeoffPicture:
    """Recall@k against time per query for measured index settings, with one of them marked.

    Args:
        measures: :class:`cbir_lab.scale.IndexMeasure` of every setting to show.
        k: the recall's cut-off, for the axis label.
        dpi: the rendering resolution.
    """

    def __init__(self, measures: Sequence, k: int, dpi: float = 80) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.measures = list(measures)
        fig = Figure(figsize=(6.2, 3.4), dpi=dpi, layout="constrained")
        ax = fig.add_subplot()
        for kind, colour in KIND_COLOURS.items():
            points = [m for m in self.measures if m.kind == kind]
            if points:
                label = {"flat": "exact", "ivf": "IVF-Flat", "pq": "PQ", "ivfpq": "IVF-PQ"}[kind]
                ax.scatter([m.ms_per_query for m in points], [m.recall for m in points], s=28 if kind != "flat" else 90,
                           c=colour, marker="*" if kind == "flat" else "o", label=label, alpha=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("milliseconds per query (log scale)")
        ax.set_ylabel(f"recall@{k}")
        ax.set_ylim(-0.02, 1.04)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        self.pixels = np.asarray(canvas.buffer_rgba())[..., :3].copy()
        height = self.pixels.shape[0]
        self.positions = [(float(x), float(height - y)) for x, y in
                          ax.transData.transform([(m.ms_per_query, m.recall) for m in self.measures])]

    def png(self, chosen: int) -> bytes:
        """The picture with setting number ``chosen`` (an index into ``measures``) circled in red."""
        canvas = Canvas(self.pixels)
        x, y = self.positions[chosen]
        canvas.ellipse((x - 9, y - 9, x + 9, y + 9), (214, 39, 40), width=3)
        return png_bytes(canvas.image)
