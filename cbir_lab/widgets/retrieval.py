"""The retrieval lesson's widget: pick a query, a pooling, whitening, α-QE and k; see the ranking.

:class:`RetrievalExplorer` holds only the controls and what is on display.
Rankings, APs and "why did this match?" maps come from
:mod:`cbir_lab.index` (one :class:`~cbir_lab.index.RetrievalIndex`, shared with
the lesson's tables); pictures from :mod:`cbir_lab.viz`.

Its query thumbnails are buttons with the CSS class ``cbir-query-thumb``, the
ranked results sit in a box with the class ``cbir-results`` (each result:
``cbir-result`` plus ``cbir-correct`` / ``cbir-junk`` / ``cbir-wrong``), so a
browser test can click and read them.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np

from cbir_lab.index import QueryResult, RetrievalIndex, retrieve
from cbir_lab.studies.explain import Contribution, explain_match
from cbir_lab.pooling import SPOC, STANDARD_POOLINGS, Pooling
from cbir_lab.viz.images import thumbnail_jpeg
from cbir_lab.viz.ranking import RESULT_COLORS
from cbir_lab.viz.retrieval import plot_contributions, plot_precision_recall
from cbir_lab.widgets._display import clear, figure_png, run_showing_errors, show_in, show_png

__all__ = ["RetrievalExplorer"]


class RetrievalExplorer(widgets.VBox):
    """Pick a query (thumbnail buttons), a method, whitening, α-QE and k; see the ranking, AP and PR curve.

    Args:
        source: a :class:`~cbir_lab.index.RetrievalIndex`, or :class:`~cbir_lab.pipeline.DatasetFeatures` to index.
        method: the initial pooling (a :class:`~cbir_lab.pooling.Pooling` or its name).
        k: the initial number of results shown.
        query: the initial query.
        thumb_side: size of the thumbnails in pixels.
        max_k: the slider's maximum.
        precompute: compute every setting (method × whitening × α-QE) now, so that
            no interaction waits for descriptors or a whitening to be learned
            (free when a comparison table already computed them).

    Attributes:
        index: the :class:`~cbir_lab.index.RetrievalIndex`.
        query_buttons: one ``Button`` per query (CSS class ``cbir-query-thumb``).
        method, whiten, query_expansion, k, explain: the controls.
        results: the ``Box`` of ranked results (CSS class ``cbir-results``), one ``cbir-result`` cell each.
        header: the ``HTML`` line with the query, the setting, AP and mAP.
        last_result: the :class:`~cbir_lab.index.QueryResult` on display.
        last_explanation: the (query, result) :class:`~cbir_lab.studies.explain.Contribution` pair on display, or None.
    """

    def __init__(self, source, method: Pooling | str = SPOC, k: int = 8, query: int = 0, thumb_side: int = 96,
                 max_k: int = 20, precompute: bool = True) -> None:
        self.index = source if isinstance(source, RetrievalIndex) else RetrievalIndex(source)
        dataset = self.index.dataset
        method = Pooling.parse(method)
        poolings = tuple(dict.fromkeys(STANDARD_POOLINGS + (method,)))
        if precompute:
            self.index.precompute(poolings)
        self.thumb_side = thumb_side
        self.query_index = int(query)
        self.last_result: QueryResult | None = None
        self.last_explanation: tuple[Contribution, Contribution] | None = None

        queries = dataset.queries()
        self.query_buttons: list[widgets.Button] = []
        cells = []
        # One Layout shared by all thumbnails (and one by all buttons, cells): fewer widget models to sync and save.
        button_layout = widgets.Layout(width=f"{thumb_side + 8}px", height="28px", padding="0px")
        image_layout = widgets.Layout(width=f"{thumb_side}px", height=f"{thumb_side}px", object_fit="contain")
        cell_layout = widgets.Layout(align_items="center", margin="2px")
        for i, item in enumerate(queries):
            button = widgets.Button(description=dataset.query_label(i), tooltip=f"query {i}: {dataset.query_label(i)}",
                                    layout=button_layout)
            button.add_class("cbir-query-thumb")
            button.query_index = i
            button.on_click(self._on_query_click)
            self.query_buttons.append(button)
            image = widgets.Image(value=thumbnail_jpeg(item, thumb_side), format="jpeg", layout=image_layout)
            cells.append(widgets.VBox([image, button], layout=cell_layout))
        self.query_grid = widgets.Box(cells, layout=widgets.Layout(display="flex", flex_flow="row wrap",
                                                                  max_height="260px", overflow="auto"))
        self.query_grid.add_class("cbir-query-grid")

        self.method = widgets.ToggleButtons(options=[(p.name, p) for p in poolings], value=method, description="method")
        self.whiten = widgets.Checkbox(value=False, description="PCA-whitening", indent=False)
        self.query_expansion = widgets.Checkbox(value=False, description=f"α-QE (k={self.index.qe_k})", indent=False)
        if not self.index.can_whiten:
            self.whiten.disabled = True
        self.k = widgets.IntSlider(value=k, min=1, max=max_k, description="k", continuous_update=False)
        self.explain = widgets.Dropdown(options=self._explain_options(k), value=None, description="explain")
        self.header = widgets.HTML()
        self.header.add_class("cbir-header")
        self.results = widgets.Box(layout=widgets.Layout(display="flex", flex_flow="row wrap"))
        self.results.add_class("cbir-results")
        self.pr_out = widgets.Output()
        self._cells = [self._make_result_cell() for _ in range(max_k)]
        self._pr_png: dict[tuple, bytes] = {}
        self.explain_out = widgets.Output()
        self.errors = widgets.Output()

        for control in (self.method, self.whiten, self.query_expansion, self.k):
            control.observe(self._on_change, names="value")
        self.explain.observe(self._on_explain, names="value")

        controls = widgets.HBox([self.method, self.whiten, self.query_expansion])
        super().__init__([
            widgets.HTML("<b>Pick a query</b> (click its name):"),
            self.query_grid,
            controls,
            widgets.HBox([self.k, self.explain]),
            self.header,
            widgets.HBox([self.results, self.pr_out], layout=widgets.Layout(align_items="flex-start")),
            self.explain_out,
            self.errors,
        ])
        self.add_class("cbir-retrieval-explorer")
        self.update()

    # ------------------------------------------------------------------ state → view

    @staticmethod
    def _explain_options(k: int) -> list[tuple[str, int | None]]:
        return [("—", None)] + [(f"result #{i + 1}", i) for i in range(k)]

    def select_query(self, query: int) -> None:
        """Show query ``query`` (what clicking its thumbnail does)."""
        self.query_index = int(query)
        self.update()

    def update(self) -> QueryResult:
        """Recompute the ranking for the controls' values and redraw; returns the :class:`QueryResult`."""
        result = retrieve(self.index, self.query_index, self.method.value, self.whiten.value,
                          self.query_expansion.value, self.k.value)
        self.last_result = result
        for button in self.query_buttons:
            button.button_style = "info" if button.query_index == self.query_index else ""
        self.header.value = self._header_html(result)
        self.results.children = [self._fill_result_cell(pos, result) for pos in range(len(result.indices))]
        self._draw_pr(result)
        if self.explain.value is not None and self.explain.value < len(result.indices):
            self._draw_explanation()
        else:
            self.last_explanation = None
            clear(self.explain_out)
        return result

    def _header_html(self, result: QueryResult) -> str:
        name = html.escape(self.index.dataset.query_label(result.query))
        text = f"<b>query {result.query}: {name}</b> · {html.escape(result.setting_label)}"
        if result.ap is not None:
            ap = "n/a (no positives)" if np.isnan(result.ap) else f"{result.ap:.3f}"
            text += f" · AP <b>{ap}</b> ({result.n_positives} positives) · mAP over all queries {result.mean_ap:.3f}"
        return text

    def _make_result_cell(self) -> tuple[widgets.VBox, widgets.Image, widgets.HTML]:
        image = widgets.Image(format="jpeg", layout=widgets.Layout(
            width=f"{self.thumb_side}px", height=f"{self.thumb_side}px", object_fit="contain"))
        label = widgets.HTML()
        cell = widgets.VBox([image, label], layout=widgets.Layout(align_items="center", margin="2px"))
        cell.add_class("cbir-result")
        return cell, image, label

    def _fill_result_cell(self, pos: int, result: QueryResult) -> widgets.VBox:
        """Reuse the pos-th cell (widgets are made once; an update only changes values)."""
        cell, image, label = self._cells[pos]
        db_index = int(result.indices[pos])
        status = result.statuses[pos]
        color = RESULT_COLORS[status]
        image.value = thumbnail_jpeg(self.index.dataset.db_images[db_index], self.thumb_side)
        image.layout.border = f"4px solid {color}"
        label.value = (f"<small>#{pos + 1} · {result.scores[pos]:.3f}<br>"
                       f"<span style='color:{color}'>{status}</span></small>")
        for other in RESULT_COLORS:
            if other != status:
                cell.remove_class(f"cbir-{other}")
        cell.add_class(f"cbir-{status}")
        return cell

    def _draw_pr(self, result: QueryResult) -> None:
        if result.recall is None:
            show_in(self.pr_out, text="no ground truth for this query: no precision-recall curve")
            return
        key = (result.query, result.pooling, result.whitened, result.query_expansion)
        if key not in self._pr_png:  # memoised: drawing is the slowest part of an update
            fig = plot_precision_recall({result.setting_label: (result.recall, result.precision)},
                                        {result.setting_label: result.ap}, figsize=(3.4, 2.8))
            self._pr_png[key] = figure_png(fig)
        show_png(self.pr_out, self._pr_png[key])

    def _draw_explanation(self) -> None:
        result = self.last_result
        pos = self.explain.value
        db_index = int(result.indices[pos])
        pair = explain_match(self.index, result.query, db_index, result.pooling, result.whitened, result.query_expansion)
        self.last_explanation = pair
        dataset = self.index.dataset
        fig = plot_contributions(dataset.queries()[result.query], dataset.db_images[db_index], *pair,
                                 status=result.statuses[pos],
                                 title=f"why did result #{pos + 1} match? ({result.setting_label}, score {pair[1].score:.3f})")
        show_in(self.explain_out, fig=fig)

    # ------------------------------------------------------------------ callbacks

    def _on_query_click(self, button: widgets.Button) -> None:
        run_showing_errors(self.errors, self.select_query, button.query_index)

    def _on_change(self, change) -> None:
        run_showing_errors(self.errors, self._apply_change, change)

    def _apply_change(self, change) -> None:
        if change["owner"] is self.k:
            current = self.explain.value
            self.explain.options = self._explain_options(self.k.value)
            self.explain.value = current if current is not None and current < self.k.value else None
        self.update()

    def _on_explain(self, change) -> None:
        run_showing_errors(self.errors, self._apply_explain, change)

    def _apply_explain(self, change) -> None:
        if change["new"] is None:
            self.last_explanation = None
            clear(self.explain_out)
        elif self.last_result is not None:
            self._draw_explanation()
