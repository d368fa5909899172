"""Lesson 10's widget: a ranking's top results checked against the query, match by match.

:class:`MatchExplorer` picks a query and a result of its ranking; the pair is verified by
:class:`cbir_lab.verification.SpatialVerifier` (its local features kept, so going back to a
pair costs only the matching) and drawn by :func:`cbir_lab.viz.beyond.plot_matches`.
"""

from __future__ import annotations

from typing import Sequence

import ipywidgets as widgets
import numpy as np

from cbir_lab.widgets._display import PanelRepr, figure_png, show_in

__all__ = ["MatchExplorer"]


class MatchExplorer(PanelRepr):
    """Query, result and what to draw: the pair's matches, its inliers and the fitted model's frame.

    Args:
        verifier: the :class:`~cbir_lab.verification.SpatialVerifier` (its settings, and the features it holds).
        queries: one image per query (``dataset.queries()``: cropped to their boxes where the protocol says so).
        images: the database images, in ranking-index order (``dataset.db_images``).
        ranks: (≥ top_k, n_queries) database indices, best first (:func:`cbir_lab.search.rank`).
        top_k: how far down each ranking the position control goes.
        labels: a name per query (default: its number).
        positives: per query, the database indices that show its object (``dataset.gnd[q]["ok"]``), to say
            whether a result is right; ``None``: not said.
        min_inliers: the fewest inliers that count as verified (as :func:`~cbir_lab.verification.rerank_by_inliers`).

    Attributes:
        query, position, show: the controls.
        current: the shown pair's :class:`~cbir_lab.verification.Verification`; caption: its text.
        view: the ``ipywidgets.Image``; out: the caption (or an error); widget: the whole panel.
    """

    def __init__(self, verifier, queries: Sequence, images: Sequence, ranks, top_k: int = 10,
                 labels: Sequence[str] | None = None, positives: Sequence | None = None, min_inliers: int = 15) -> None:
        ranking = np.asarray(ranks)
        if ranking.ndim != 2 or ranking.shape[1] != len(queries):
            raise ValueError(f"ranks must have shape (n, {len(queries)}) for {len(queries)} queries, got {ranking.shape}")
        self.verifier, self.queries, self.images = verifier, list(queries), list(images)
        self.top_k = max(1, min(int(top_k), ranking.shape[0]))
        self.ranks = ranking[: self.top_k]
        self.labels = [str(i) for i in range(len(queries))] if labels is None else [str(x) for x in labels]
        self.positives = None if positives is None else [set(map(int, p)) for p in positives]
        self.min_inliers = int(min_inliers)
        self.query = widgets.Dropdown(options=[(label, q) for q, label in enumerate(self.labels)], value=0,
                                      description="query")
        self.position = widgets.IntSlider(value=1, min=1, max=self.top_k, description="result")
        self.show = widgets.ToggleButtons(options=[("inliers and the rest", "both"), ("inliers only", "inliers"),
                                                   ("every match", "matches")], value="both", description="draw")
        self.view = widgets.Image(format="png")
        self.out = widgets.Output()
        self.error: Exception | None = None
        self.current = None
        self.caption = ""
        for control in (self.query, self.position, self.show):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.query, self.position]), self.show, self.view, self.out])
        self.update()

    def pair(self) -> tuple[int, int]:
        """The (query, database image) the controls select."""
        return self.query.value, int(self.ranks[self.position.value - 1, self.query.value])

    def update(self, change=None) -> None:
        """Verify the selected pair (its features are extracted once) and draw it."""
        def draw() -> None:
            from cbir_lab.viz.beyond import plot_matches

            q, i = self.pair()
            query, image = self.queries[q], self.images[i]
            self.current = v = self.verifier.verify(query, image)
            status = ""
            if self.positives is not None:
                status = ", shows the query's object" if i in self.positives[q] else ", another object"
            verdict = "verified" if v.n_inliers >= self.min_inliers else "not verified"
            self.caption = (f"query {self.labels[q]}, result {self.position.value} (database image {i}{status}): "
                            f"{v.n_matches} matches, {v.n_inliers} inliers: {verdict} (at least {self.min_inliers}).")
            fig = plot_matches(query, image, self.verifier.features(query), self.verifier.features(image), v,
                               show=self.show.value, titles=(f"query {self.labels[q]}", f"database image {i}"))
            self.view.value = figure_png(fig)
            show_in(self.out, text=self.caption)

        self._redraw(draw)

    def __repr__(self) -> str:
        q, i = self.pair()
        return f"MatchExplorer(query={self.labels[q]!r}, result={self.position.value}, image={i}, show={self.show.value!r})"
