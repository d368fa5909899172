"""The index explorer of lesson 8: nprobe and the PQ code size, and what they cost in recall, time and memory.

:class:`IndexTradeoffExplorer` takes a :class:`cbir_lab.scale.IndexStudy` (its
indexes trained once) and measures every setting its controls offer when it is
built; moving a control then only shows a measured point
(:class:`cbir_lab.viz.scale.TradeoffPicture`) and its numbers.
"""

from __future__ import annotations

from typing import Sequence

import ipywidgets as widgets

from cbir_lab.scale import IndexStudy, memory_at_scale
from cbir_lab.viz.scale import TradeoffPicture
from cbir_lab.widgets._display import PanelRepr, show_in

__all__ = ["IndexTradeoffExplorer"]


class IndexTradeoffExplorer(PanelRepr):
    """Index kind, PQ code size and nprobe controls over a study's measured settings.

    Args:
        study: the :class:`~cbir_lab.scale.IndexStudy` (indexes already trained).
        nprobes: the ``nprobe`` values offered (each measured now, for every IVF index).
        repeats: timed searches per setting (the best is kept); settings the study already
            measured keep their figures.

    Attributes:
        kind, code_size, nprobe: the controls.
        measures: every setting measured, (kind, m, nprobe) → :class:`~cbir_lab.scale.IndexMeasure`.
        current: the shown setting's measure; caption: its text.
        view: the ``ipywidgets.Image``; out: the caption (or an error); widget: the whole panel.
    """

    def __init__(self, study: IndexStudy, nprobes: Sequence[int] = (1, 4, 16, 64), repeats: int = 1) -> None:
        self.study = study
        sizes = list(study.code_sizes)
        nprobes = [p for p in nprobes if p <= study.n_lists]
        settings = [("flat", 0, 0)] + [("ivf", 0, p) for p in nprobes] + [("pq", m, 0) for m in sizes]
        settings += [("ivfpq", m, p) for m in sizes for p in nprobes]
        self.measures = {s: study.measure(*s, repeats=repeats) for s in settings}
        self._order = list(self.measures)
        self.picture = TradeoffPicture(list(self.measures.values()), study.k)
        self.kind = widgets.ToggleButtons(options=[("exact", "flat"), ("IVF-Flat", "ivf"), ("PQ", "pq"),
                                                   ("IVF-PQ", "ivfpq")], value="ivfpq", description="index")
        self.code_size = widgets.ToggleButtons(options=[(f"{m} B", m) for m in sizes], value=sizes[len(sizes) // 2],
                                               description="PQ code")
        self.nprobe = widgets.SelectionSlider(options=nprobes, value=nprobes[min(3, len(nprobes) - 1)],
                                              description="nprobe")
        self.view = widgets.Image(format="png")
        self.out = widgets.Output()
        self.error: Exception | None = None
        self.caption = ""
        for control in (self.kind, self.code_size, self.nprobe):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([self.kind, widgets.HBox([self.code_size, self.nprobe]), self.view, self.out])
        self.update()

    def setting(self) -> tuple[str, int, int]:
        """The (kind, m, nprobe) the controls select (m and nprobe are 0 where they do not apply)."""
        kind = self.kind.value
        return (kind, self.code_size.value if kind in ("pq", "ivfpq") else 0,
                self.nprobe.value if kind in ("ivf", "ivfpq") else 0)

    def update(self, change=None) -> None:
        """Show the selected setting's point and numbers."""
        def draw() -> None:
            kind = self.kind.value
            self.code_size.disabled = kind not in ("pq", "ivfpq")
            self.nprobe.disabled = kind not in ("ivf", "ivfpq")
            key = self.setting()
            self.current = m = self.measures[key]
            self.view.value = self.picture.png(self._order.index(key))
            exact = self.measures[("flat", 0, 0)]
            # The probes are mostly synthetic; the queries' own recall is the one their mAP follows.
            queries_recall = ("" if m.query_recall is None else
                              f" ({m.query_recall:.3f} on the {len(self.study.database.query_vecs)} queries)")
            self.caption = (f"{m.name}{f', nprobe {m.nprobe}' if m.nprobe else ''}: recall@{self.study.k} "
                            f"{m.recall:.3f}{queries_recall}, {m.ms_per_query:.3f} ms per query ({exact.ms_per_query / m.ms_per_query:.0f}× "
                            f"faster than exact), {m.bytes_per_vector:.0f} bytes per vector "
                            f"({memory_at_scale(m.bytes_per_vector, 1e9):,.0f} GiB for 10⁹ vectors), mAP {m.map:.3f} "
                            f"(exact: {exact.map:.3f}).")
            show_in(self.out, text=self.caption)

        self._redraw(draw)

    def __repr__(self) -> str:
        kind, m, nprobe = self.setting()
        return f"IndexTradeoffExplorer(kind={kind!r}, code_size={m}, nprobe={nprobe})"
