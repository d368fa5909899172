"""Talk mode: a full-screen retrieval demo for a projector (served with Voila).

A speaker picks a query from a strip of thumbnails, switches the method (SPoC,
MAC, R-MAC, GeM, each without or with PCA-whitening) and the audience sees a
large grid of the top results, each marked correct (✓, green) or wrong (✗, red),
with the query's average precision. Large fonts, no code on screen.

* :func:`talk_ranking`: the top-k of one query from descriptors, with a
  correct/junk/wrong flag per result and the query's AP (pure, array in, data out).
* :func:`talk_results`: the same from a dataset's features and a method name.
* :func:`render_talk_html`: the results grid as a self-contained HTML string
  (thumbnails inlined as data URIs, so it works offline and inside Voila).
* :class:`TalkWidget`: the controls, wired to the functions above.

``cbir-lab present`` (see :mod:`cbir_lab.talk`) serves it with Voila.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from cbir_lab.evaluation import average_precision, median_ap_query, positive_positions
from cbir_lab.features import load_image
from cbir_lab.pipeline import METHODS, DatasetFeatures, extract_dataset, global_descriptors
from cbir_lab.search import rank
from cbir_lab.viz.ranking import RESULT_COLORS, result_status
from cbir_lab.widgets._display import clear, show_in

__all__ = [
    "TALK_CSS",
    "STATUS_MARKS",
    "TalkResult",
    "TalkRanking",
    "talk_ranking",
    "talk_results",
    "typical_query",
    "method_label",
    "thumbnail_data_uri",
    "render_talk_html",
    "TalkWidget",
]

#: The mark drawn on each result, by status (see :func:`cbir_lab.viz.ranking.result_status`).
STATUS_MARKS: dict[str, str] = {"correct": "✓", "junk": "–", "wrong": "✗", "unknown": "?"}

#: Style of the talk mode: large type and controls, readable from the back of a room.
TALK_CSS = """
.cbir-talk { font-size: 24px; line-height: 1.25; }
.cbir-talk .widget-label, .cbir-talk .widget-toggle-button, .cbir-talk .jupyter-button {
  font-size: 24px; }
.cbir-talk .widget-toggle-buttons .widget-toggle-button { height: 52px; padding: 0 18px; }
.cbir-talk-title { font-size: 40px; font-weight: 700; margin: 4px 0 2px 0; }
.cbir-talk-subtitle { font-size: 22px; color: #555; margin-bottom: 6px; }
.cbir-talk-queries .cbir-talk-query {
  background-size: cover; background-position: center; background-color: #ddd;
  border: 4px solid transparent; border-radius: 6px; flex: 0 0 auto; }
.cbir-talk-queries .cbir-talk-query.cbir-talk-selected { border-color: #1f77b4;
  box-shadow: 0 0 0 3px #1f77b4; }
.cbir-talk-summary { font-size: 30px; margin: 8px 0; }
.cbir-talk-summary b { font-size: 34px; }
.cbir-talk-body { display: flex; gap: 24px; align-items: flex-start; }
.cbir-talk-querybox { flex: 0 0 auto; text-align: center; font-size: 26px; }
.cbir-talk-querybox img { border: 8px solid #1f77b4; border-radius: 6px; display: block; }
.cbir-talk-grid { display: grid; gap: 14px; flex: 1 1 auto; }
.cbir-talk-result { margin: 0; position: relative; text-align: center; }
.cbir-talk-result img { width: 100%; aspect-ratio: 1 / 1; object-fit: cover; border-radius: 6px;
  border: 8px solid; box-sizing: border-box; display: block; }
.cbir-talk-result figcaption { font-size: 24px; }
.cbir-talk-mark { position: absolute; top: 6px; right: 10px; font-size: 44px; font-weight: 900;
  text-shadow: 0 0 4px #fff, 0 0 8px #fff; }
.cbir-talk-error { color: #d62728; font-size: 24px; }
"""


@dataclass(frozen=True)
class TalkResult:
    """One shown result: its 1-based rank, database index, similarity and status."""

    rank: int
    index: int
    score: float
    status: str


@dataclass(frozen=True)
class TalkRanking:
    """The top-k of one query under one method.

    Attributes:
        query: the query's index.
        results: the top-k, best first.
        average_precision: the query's AP over the *full* ranking (junk ignored),
            or None without ground truth.
        n_positives: how many database images are correct for the query (None
            without ground truth).
        method: display name of the method (e.g. ``"GeM + whitening"``), or "".
    """

    query: int
    results: tuple[TalkResult, ...]
    average_precision: float | None
    n_positives: int | None
    method: str = ""

    @property
    def indices(self) -> list[int]:
        """Database indices of the shown results, best first."""
        return [r.index for r in self.results]

    @property
    def n_correct(self) -> int:
        """How many shown results are correct."""
        return sum(r.status == "correct" for r in self.results)


def method_label(method: str, whiten: bool) -> str:
    """``"GeM"`` or ``"GeM + whitening"``."""
    return f"{method} + whitening" if whiten else method


def _positives_and_junk(gnd: dict) -> tuple[list[int], list[int]]:
    # Standard protocol: 'ok'; revisited: easy + hard are positive (the Medium setting).
    positives = list(gnd.get("ok", list(gnd.get("easy", [])) + list(gnd.get("hard", []))))
    return [int(i) for i in positives], [int(i) for i in gnd.get("junk", [])]


def talk_ranking(
    query_vecs: np.ndarray,
    db_vecs: np.ndarray,
    query: int,
    gnd: Sequence[dict] | None = None,
    k: int = 12,
    method: str = "",
) -> TalkRanking:
    """The top-k results of one query, flagged correct / junk / wrong, with its AP.

    Similarity is the inner product (cosine on L2-normalised descriptors), ties
    broken by the smaller database index (as :func:`cbir_lab.search.rank`).

    Args:
        query_vecs: (n_queries, D) query descriptors.
        db_vecs: (n_db, D) database descriptors.
        query: which query, 0-based.
        gnd: per query, ``{'ok', 'junk'}`` or ``{'easy', 'hard', 'junk'}`` index lists; None
            when there is no ground truth (every result is then ``"unknown"``).
        k: how many results to return (at most n_db).
        method: a label kept in the result, for display.

    Returns:
        The :class:`TalkRanking`.
    """
    query_vecs = np.asarray(query_vecs)
    if query_vecs.ndim != 2:
        raise ValueError(f"query_vecs must have shape (n_queries, dim), got {query_vecs.shape}")
    if not 0 <= query < len(query_vecs):
        raise ValueError(f"query must be in 0..{len(query_vecs) - 1}, got {query}")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    ranking = rank(query_vecs[query : query + 1], db_vecs)[:, 0]
    scores = np.asarray(db_vecs, dtype=np.float32)[ranking] @ query_vecs[query].astype(np.float32)
    query_gnd = gnd[query] if gnd is not None else None
    results = tuple(
        TalkResult(pos + 1, int(ranking[pos]), float(scores[pos]), result_status(int(ranking[pos]), query_gnd))
        for pos in range(min(int(k), len(ranking)))
    )
    ap = n_positives = None
    if query_gnd is not None:
        positives, junk = _positives_and_junk(query_gnd)
        n_positives = len(positives)
        if n_positives:
            ap = average_precision(positive_positions(ranking, positives, junk), n_positives)
    return TalkRanking(query, results, ap, n_positives, method)


def talk_results(features: DatasetFeatures, query: int, method: str = "GeM", whiten: bool = False, k: int = 12) -> TalkRanking:
    """The top-k of one query of a dataset under a method (see :func:`talk_ranking`).

    Args:
        features: from :func:`cbir_lab.pipeline.extract_dataset`.
        query: which query, 0-based.
        method: ``"SPoC"``, ``"MAC"``, ``"R-MAC"`` or ``"GeM"``.
        whiten: PCA-whitening learned on the dataset's training split.
        k: how many results.

    Returns:
        The :class:`TalkRanking`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    q, db = global_descriptors(features, method, whiten)
    ds = features.dataset
    return talk_ranking(q, db, query, ds.gnd if ds.has_ground_truth else None, k, method_label(method, whiten))


def typical_query(features: DatasetFeatures, method: str = "GeM", whiten: bool = False) -> int:
    """The query a talk opens on: the one whose AP is the median AP under ``method``.

    The best query makes every method look perfect and the worst makes none
    work; the median one shows hits and misses that the method switch changes.
    Revisited datasets count easy and hard images as positives (Medium).

    Args:
        features: from :func:`cbir_lab.pipeline.extract_dataset`.
        method, whiten: the setting the talk opens with.

    Returns:
        A query index; 0 when the dataset has no ground truth.
    """
    ds = features.dataset
    if not ds.has_ground_truth:
        return 0
    q, db = global_descriptors(features, method, whiten)
    ranks = rank(q, db)
    aps = np.full(ds.n_queries, np.nan)
    for i, g in enumerate(ds.gnd):
        positives, junk = _positives_and_junk(g)
        if positives:
            aps[i] = average_precision(positive_positions(ranks[:, i], positives, junk), len(positives))
    return median_ap_query(aps) if not np.isnan(aps).all() else 0


@lru_cache(maxsize=2048)
def _thumbnail_cached(item, side: int) -> str:
    image = load_image(item)
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnail_data_uri(item, side: int = 256) -> str:
    """A JPEG thumbnail (long side ≤ ``side``) of an image item, as a ``data:`` URI.

    Args:
        item: a path, or ``(path, (x1, y1, x2, y2))`` for a cropped query.
        side: the thumbnail's longest side in pixels.

    Returns:
        ``"data:image/jpeg;base64,..."``, usable as an ``<img src>`` with no server.
    """
    if side < 1:
        raise ValueError(f"side must be >= 1, got {side}")
    try:
        return _thumbnail_cached(item, int(side))
    except TypeError:  # unhashable item (a PIL image): no memo
        return _thumbnail_cached.__wrapped__(item, int(side))


def render_talk_html(
    ranking: TalkRanking,
    query_item,
    db_items: Sequence,
    columns: int = 6,
    thumb_side: int = 256,
    query_side: int = 320,
) -> str:
    """The results of a :class:`TalkRanking` as an HTML block for a projector.

    A summary line (method, correct results among those shown, AP), the query
    on the left and a grid of the results, each with a large ✓ / ✗ mark, a
    coloured border (:data:`cbir_lab.viz.ranking.RESULT_COLORS`), its rank and
    its similarity. Each result element carries ``data-db-index`` and
    ``data-status`` so that tests can read what is shown.

    Args:
        ranking: from :func:`talk_ranking` or :func:`talk_results`.
        query_item: the query's image item.
        db_items: the database image items (indexed by the ranking).
        columns: results per row.
        thumb_side: result thumbnails' longest side in pixels.
        query_side: the query image's longest side in pixels.

    Returns:
        An HTML string (no scripts; images inlined).
    """
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    summary = [f"<b>{html.escape(ranking.method)}</b>" if ranking.method else ""]
    if ranking.n_positives is not None:
        summary.append(f"{ranking.n_correct} of {len(ranking.results)} shown are correct "
                       f"({ranking.n_positives} correct images in the database)")
    if ranking.average_precision is not None:
        summary.append(f"AP <b>{ranking.average_precision:.2f}</b>")
    cells = []
    for result in ranking.results:
        color = RESULT_COLORS[result.status]
        cells.append(
            f'<figure class="cbir-talk-result" data-db-index="{result.index}" data-status="{result.status}">'
            f'<img src="{thumbnail_data_uri(db_items[result.index], thumb_side)}" style="border-color:{color}" '
            f'alt="result {result.rank}: {result.status}">'
            f'<span class="cbir-talk-mark" style="color:{color}">{STATUS_MARKS[result.status]}</span>'
            f"<figcaption>#{result.rank} · {result.score:.2f}</figcaption></figure>"
        )
    return (
        f'<div class="cbir-talk-results" data-query="{ranking.query}" data-method="{html.escape(ranking.method)}">'
        f'<div class="cbir-talk-summary">{" · ".join(s for s in summary if s)}</div>'
        f'<div class="cbir-talk-body"><div class="cbir-talk-querybox">'
        f'<img src="{thumbnail_data_uri(query_item, query_side)}" alt="query {ranking.query + 1}" '
        f'style="max-width:{query_side}px">query {ranking.query + 1}</div>'
        f'<div class="cbir-talk-grid" style="grid-template-columns:repeat({columns}, minmax(0, 1fr))">'
        + "".join(cells)
        + "</div></div></div>"
    )


class TalkWidget:
    """The talk-mode demo: query strip, method switch, whitening switch and results grid.

    State is real here (the controls' values and the descriptors already
    computed), so this is a class; everything it shows comes from
    :func:`talk_ranking` and :func:`render_talk_html`.

    Args:
        features: from :func:`cbir_lab.pipeline.extract_dataset`.
        k: results shown.
        columns: results per row.
        query: the query shown first (default: :func:`typical_query`).
        method: the method shown first.
    """

    def __init__(self, features: DatasetFeatures, k: int = 12, columns: int = 6, query: int | None = None,
                 method: str = "GeM") -> None:
        import ipywidgets as widgets

        self.features = features
        self.k = k
        self.columns = columns
        ds = features.dataset
        if ds.n_queries == 0:
            raise ValueError(f"dataset {ds.name!r} has no queries to show")
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
        query = typical_query(features, method) if query is None else query
        if not 0 <= query < ds.n_queries:
            raise ValueError(f"query must be in 0..{ds.n_queries - 1}, got {query}")
        self._descriptors: dict[tuple[str, bool], tuple[np.ndarray, np.ndarray]] = {}
        self._query_items = ds.queries()

        self.method = widgets.ToggleButtons(options=list(METHODS), value=method, style={"button_width": "140px"})
        self.whitening = widgets.ToggleButtons(
            options=[("raw", False), ("PCA-whitened", True)], value=False, disabled=not ds.train_images,
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
            f".cbir-talk .cbir-talk-query-{i} {{ background-image: url({thumbnail_data_uri(item, 128)}); }}\n"
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

    @classmethod
    def from_dataset(cls, dataset: str | None = None, backbone: str = "efficientnet_lite0", max_side: int = 384, **kwargs) -> "TalkWidget":
        """Load a dataset (the embedded one by default), extract or load its cached features, build the widget."""
        from cbir_lab.datasets import load_dataset

        features = extract_dataset(load_dataset(dataset), backbone, max_side=max_side, progress=False)
        return cls(features, **kwargs)

    def descriptors(self, method: str, whiten: bool) -> tuple[np.ndarray, np.ndarray]:
        """Query and database descriptors of a method, computed once."""
        key = (method, whiten)
        if key not in self._descriptors:
            self._descriptors[key] = global_descriptors(self.features, method, whiten)
        return self._descriptors[key]

    def current(self) -> TalkRanking:
        """The ranking the controls select."""
        method, whiten = self.method.value, bool(self.whitening.value)
        q, db = self.descriptors(method, whiten)
        ds = self.features.dataset
        return talk_ranking(q, db, self.query, ds.gnd if ds.has_ground_truth else None, self.k, method_label(method, whiten))

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
            ranking = self.current()
            ds = self.features.dataset
            self.results.value = render_talk_html(ranking, self._query_items[self.query], ds.db_images, self.columns)
        except Exception as err:  # shown to the speaker instead of vanishing in the kernel log
            self.results.value = f'<div class="cbir-talk-error">Could not show this: {html.escape(str(err))}</div>'
            show_in(self.errors, error=err)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.view)
