"""Talk mode: a full-screen retrieval demo for a projector (served with Voila).

A speaker picks a query from a strip of thumbnails, switches the pooling (SPoC,
MAC, R-MAC, GeM, each without or with PCA-whitening) and the audience sees a
large grid of the top results, each marked correct (✓, green) or wrong (✗, red),
with the query's average precision. Large fonts, no code on screen.

:class:`TalkWidget` holds only the controls: the rankings come from
:class:`cbir_lab.index.RetrievalIndex` (the same numbers the course and the CLI
show) and the page from :func:`cbir_lab.viz.talk.render_talk_html`.
``cbir-lab present`` (see :mod:`cbir_lab.talk`) serves it with Voila.
"""

from __future__ import annotations

import html

from cbir_lab.index import RetrievalIndex, retrieve
from cbir_lab.pooling import GEM, STANDARD_POOLINGS, Pooling
from cbir_lab.viz.images import jpeg_data_uri, thumbnail_jpeg
from cbir_lab.viz.talk import TALK_CSS, render_talk_html
from cbir_lab.widgets._display import clear, show_in

__all__ = ["TalkWidget"]

#: The results' thumbnail size, as :func:`cbir_lab.viz.talk.render_talk_html` draws them.
THUMB_SIDE = 256


class TalkWidget:
    """The talk-mode demo: query strip, pooling switch, whitening switch and results grid.

    Args:
        source: a :class:`~cbir_lab.index.RetrievalIndex`, or
            :class:`~cbir_lab.pipeline.DatasetFeatures` to index.
        k: results shown.
        columns: results per row.
        query: the query shown first (default: :meth:`RetrievalIndex.typical_query
            <cbir_lab.index.RetrievalIndex.typical_query>` under ``method``).
        method: the pooling shown first (a :class:`~cbir_lab.pooling.Pooling` or its name).

    Attributes:
        index: the :class:`~cbir_lab.index.RetrievalIndex`.
        method, whitening: the switches; query: the query shown.
        results: the ``HTML`` widget holding the grid.
        view: the whole page.
    """

    def __init__(self, source, k: int = 12, columns: int = 6, query: int | None = None,
                 method: Pooling | str = GEM) -> None:
        import ipywidgets as widgets

        self.index = source if isinstance(source, RetrievalIndex) else RetrievalIndex(source)
        if int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k = int(k)
        self.columns = columns
        ds = self.index.dataset
        if ds.n_queries == 0:
            raise ValueError(f"dataset {ds.name!r} has no queries to show")
        method = Pooling.parse(method)
        query = self.index.typical_query(method) if query is None else query
        if not 0 <= query < ds.n_queries:
            raise ValueError(f"query must be in 0..{ds.n_queries - 1}, got {query}")
        self._query_items = ds.queries()
        # every setting the switches can show, and every thumbnail they can put on screen, now:
        # the speaker never waits in front of the room
        poolings = tuple(dict.fromkeys(STANDARD_POOLINGS + (method,)))
        self.index.precompute(poolings)
        shown = set()
        for setting in self.index.computed_settings():
            if setting[0] in poolings and not setting[2]:
                shown.update(self.index.setting(*setting).ranks[: self.k].ravel().tolist())
        for i in shown:
            thumbnail_jpeg(ds.db_images[i], THUMB_SIDE)

        options = [(p.name, p) for p in dict.fromkeys(STANDARD_POOLINGS + (method,))]
        self.method = widgets.ToggleButtons(options=options, value=method, style={"button_width": "140px"})
        self.whitening = widgets.ToggleButtons(
            options=[("raw", False), ("PCA-whitened", True)], value=False, disabled=not self.index.can_whiten,
            style={"button_width": "220px"},
            tooltips=["no whitening", "PCA-whitening learned on the training split"],
        )
        self.query_buttons = []
        for i, item in enumerate(self._query_items):
            button = widgets.Button(description="", tooltip=f"query {i + 1}",
                                    layout=widgets.Layout(width="64px", height="64px", margin="2px"))
            button.add_class("cbir-talk-query")
            button.add_class(f"cbir-talk-query-{i}")
            button.on_click(lambda _, i=i: self.select_query(i))
            self.query_buttons.append(button)
        self.query = query
        # Each query button shows its thumbnail as a CSS background, so the image itself is what one clicks.
        thumbs = "".join(
            f".cbir-talk .cbir-talk-query-{i} {{ background-image: url({jpeg_data_uri(thumbnail_jpeg(item, 128))}); }}\n"
            for i, item in enumerate(self._query_items)
        )
        self.style = widgets.HTML(f"<style>{TALK_CSS}\n{thumbs}</style>")
        self.title = widgets.HTML(
            f'<div class="cbir-talk-title">Image retrieval with CNN features</div>'
            f'<div class="cbir-talk-subtitle">{html.escape(ds.name)}: {ds.n_queries} queries, '
            f"{ds.n_db} database images · pick a query, switch the method</div>"
        )
        self.results = widgets.HTML()
        self.results.add_class("cbir-talk-results-view")
        self.errors = widgets.Output()
        self.method.observe(self._on_change, names="value")
        self.whitening.observe(self._on_change, names="value")
        strip = widgets.HBox(self.query_buttons, layout=widgets.Layout(flex_flow="row wrap", width="100%"))
        strip.add_class("cbir-talk-queries")
        controls = widgets.HBox([self.method, self.whitening], layout=widgets.Layout(flex_flow="row wrap", grid_gap="32px"))
        self.view = widgets.VBox([self.style, self.title, strip, controls, self.results, self.errors])
        self.view.add_class("cbir-talk")
        self.update()

    def current(self):
        """The :class:`~cbir_lab.index.QueryResult` the controls select."""
        return retrieve(self.index, self.query, self.method.value, bool(self.whitening.value), k=self.k)

    def select_query(self, query: int) -> None:
        """Show another query (what clicking its thumbnail does)."""
        self.query = int(query)
        self.update()

    def _on_change(self, _change) -> None:
        self.update()

    def update(self) -> None:
        """Redraw the grid; an error is shown on the page, not lost in a log."""
        clear(self.errors)
        for i, button in enumerate(self.query_buttons):
            if i == self.query:
                button.add_class("cbir-talk-selected")
            else:
                button.remove_class("cbir-talk-selected")
        try:
            self.results.value = render_talk_html(self.current(), self._query_items[self.query],
                                                  self.index.dataset.db_images, self.columns, thumb_side=THUMB_SIDE)
        except Exception as err:  # shown to the speaker instead of vanishing in the kernel log
            self.results.value = f'<div class="cbir-talk-error">Could not show this: {html.escape(str(err))}</div>'
            show_in(self.errors, error=err)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.view)
