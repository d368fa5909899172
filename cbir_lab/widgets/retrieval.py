"""The retrieval lesson's widget: pick a query, a method and k; see the ranking, its AP and PR curve.

Pure parts (tests, and the talk-mode widget, call them directly):

* :class:`RetrievalIndex`: the descriptors, similarities, rankings and APs of
  every (method, whitening, query expansion) setting of one
  :class:`~cbir_lab.pipeline.DatasetFeatures`, each computed once and memoised,
  so an interaction only indexes arrays.
* :func:`comparison_table`: the methods' scores (as
  :func:`cbir_lab.pipeline.evaluate_methods`) from the same memoised settings.
* :func:`retrieve`: one query's top-k under one setting, as a :class:`QueryResult`
  (indices, scores, correct/junk/wrong, AP, precision-recall points);
  :func:`precision_recall_by_method` compares one query's curves across methods.
* :func:`explain_match`: the "why did this match?" contribution maps of a
  query and one of its results (:func:`cbir_lab.viz.retrieval.contribution_map`).
* :func:`thumbnail_jpeg`: a memoised JPEG thumbnail of an image item.
* :func:`query_label`: a short name for a query (its file name).

:class:`RetrievalExplorer` is the ipywidgets panel over them. Its query
thumbnails are buttons with the CSS class ``cbir-query-thumb``, the ranked
results sit in a box with the class ``cbir-results`` (each result:
``cbir-result`` plus ``cbir-correct`` / ``cbir-junk`` / ``cbir-wrong``), so a
browser test can click and read them.
"""

from __future__ import annotations

import functools
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import ipywidgets as widgets
import numpy as np

from cbir_lab.evaluation import compute_map, evaluate, precision_recall, revisited_gnd
from cbir_lab.features import load_image
from cbir_lab.pipeline import METHODS, DatasetFeatures, MethodScore, global_descriptors
from cbir_lab.search import alpha_query_expansion, rank
from cbir_lab.viz.ranking import RESULT_COLORS, result_status
from cbir_lab.viz.retrieval import Contribution, contribution_map, plot_contributions, plot_precision_recall
from cbir_lab.whitening import PCAWhitening
from cbir_lab.widgets._display import clear, run_showing_errors, show_in, show_png
from cbir_lab.widgets._display import figure_png as _png_bytes

__all__ = [
    "RetrievalIndex",
    "QueryResult",
    "comparison_table",
    "retrieve",
    "precision_recall_by_method",
    "explain_match",
    "thumbnail_jpeg",
    "query_label",
    "RetrievalExplorer",
]

Setting = tuple[str, bool, bool]  # (method, whitened, query expansion)


def query_label(dataset, query: int) -> str:
    """A short name for query ``query``: its file name without the extension (and a ``_query`` suffix)."""
    stem = Path(dataset.query_images[query]).stem
    return stem[: -len("_query")] if stem.endswith("_query") and len(stem) > 6 else stem


@functools.lru_cache(maxsize=4096)
def thumbnail_jpeg(item, side: int = 128, quality: int = 85) -> bytes:
    """JPEG bytes of an image item shrunk to fit ``side``×``side`` pixels (memoised).

    JPEG rather than PNG: a photo thumbnail is ~5 times smaller, which keeps
    widget messages (and the widget state saved in a notebook) small.

    Args:
        item: a path, or ``(path, bbox)`` for a cropped query (hashable items only).
        side: the longest side in pixels.
        quality: JPEG quality.

    Returns:
        The encoded JPEG, for ``ipywidgets.Image(format="jpeg")``.
    """
    image = load_image(item)
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class RetrievalIndex:
    """Everything an interaction needs, for every setting, computed once per setting.

    A setting is (method, whitened, query expansion). The first request for a
    setting computes its descriptors, the (n_queries, n_db) similarities, the
    full rankings and every query's AP; later requests only index arrays.

    Args:
        features: from :func:`cbir_lab.pipeline.extract_dataset`.
        qe_k: how many top results α-QE averages.
        qe_alpha: α of α-QE (α = 0 is average QE).

    Attributes:
        features, dataset: what was indexed.
        gnd: per query, ``{'ok', 'junk'}`` (the Medium protocol for revisited datasets),
            or ``None`` without ground truth.
    """

    def __init__(self, features: DatasetFeatures, qe_k: int = 5, qe_alpha: float = 3.0) -> None:
        self.features = features
        self.dataset = features.dataset
        self.qe_k = int(qe_k)
        self.qe_alpha = float(qe_alpha)
        ds = self.dataset
        if not ds.has_ground_truth:
            self.gnd = None
        elif ds.protocol == "revisited":
            self.gnd = revisited_gnd(ds.gnd, "medium")
        else:
            self.gnd = [{"ok": list(g["ok"]), "junk": list(g.get("junk", []))} for g in ds.gnd]
        self._descriptors: dict[tuple[str, bool], tuple[np.ndarray, np.ndarray]] = {}
        self._settings: dict[Setting, dict] = {}
        self._whitenings: dict[str, PCAWhitening] = {}

    @staticmethod
    def _check_method(method: str) -> str:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
        return method

    def descriptors(self, method: str, whiten: bool) -> tuple[np.ndarray, np.ndarray]:
        """(query_vecs, db_vecs) of :func:`cbir_lab.pipeline.global_descriptors`, memoised."""
        key = (self._check_method(method), bool(whiten))
        if key not in self._descriptors:
            self._descriptors[key] = global_descriptors(self.features, method, whiten)
        return self._descriptors[key]

    def whitening(self, method: str) -> PCAWhitening:
        """The PCA-whitening ``global_descriptors`` learns for ``method`` (on the training split), memoised.

        For R-MAC it is learned on the regional vectors, as R-MAC whitens them.
        """
        method = self._check_method(method)
        if method not in self._whitenings:
            if METHODS[method] == "rmac":
                train = np.concatenate(self.features.regional("train"))
            else:
                train = self.features.pooled("train", method)
            self._whitenings[method] = PCAWhitening().fit(train)
        return self._whitenings[method]

    def setting(self, method: str, whiten: bool = False, query_expansion: bool = False) -> dict:
        """The memoised arrays of one setting.

        Returns:
            A dict with ``query_vecs`` (n_q, d) (expanded when ``query_expansion``),
            ``db_vecs`` (n_db, d), ``similarities`` (n_q, n_db), ``ranks`` (n_db, n_q)
            and, with ground truth, ``aps`` (n_q,; NaN for queries without positives)
            and ``map``.
        """
        key = (self._check_method(method), bool(whiten), bool(query_expansion))
        if key not in self._settings:
            q, db = self.descriptors(method, whiten)
            ranks = rank(q, db)
            if query_expansion:
                q = alpha_query_expansion(q, db, k=self.qe_k, alpha=self.qe_alpha, ranks=ranks)
                ranks = rank(q, db)
            entry = {"query_vecs": q, "db_vecs": db, "similarities": q @ db.T, "ranks": ranks}
            if self.gnd is not None:
                result = compute_map(ranks, self.gnd)
                entry["aps"], entry["map"] = result.aps, result.map
            self._settings[key] = entry
        return self._settings[key]

    def scores(self, method: str, whiten: bool = False, query_expansion: bool = False) -> dict[str, float]:
        """The setting's scores under the dataset's own protocol (:func:`cbir_lab.evaluation.evaluate`), memoised."""
        entry = self.setting(method, whiten, query_expansion)
        if "scores" not in entry:
            entry["scores"] = evaluate(entry["ranks"], self.dataset.gnd, self.dataset.protocol)
        return entry["scores"]


def comparison_table(
    index: RetrievalIndex,
    methods: tuple[str, ...] = ("SPoC", "MAC", "R-MAC", "GeM"),
    whitening: tuple[bool, ...] = (False, True),
    query_expansion: tuple[bool, ...] = (False, True),
) -> list[MethodScore]:
    """The comparison table of :func:`cbir_lab.pipeline.evaluate_methods`, from the index's memoised settings.

    Same numbers (same descriptors, α-QE with ``index.qe_k`` and ``index.qe_alpha``), but
    the widget and the table share one computation of each setting.

    Returns:
        One :class:`~cbir_lab.pipeline.MethodScore` per (method, whitening, QE), for
        :func:`cbir_lab.pipeline.format_scores`.
    """
    rows = []
    for method in methods:
        for whiten in whitening:
            for qe in query_expansion:
                entry = index.setting(method, whiten, qe)
                rows.append(MethodScore(method, whiten, qe, entry["db_vecs"].shape[1], index.scores(method, whiten, qe)))
    return rows


@dataclass(frozen=True)
class QueryResult:
    """One query's top-k under one setting.

    Attributes:
        query: the query's index.
        method, whitened, query_expansion: the setting.
        indices: (k,) database indices, best first.
        scores: (k,) their similarities to the (expanded) query.
        statuses: per result ``"correct"``, ``"junk"``, ``"wrong"`` (``"unknown"`` without ground truth).
        ap: the query's AP over the full ranking (NaN without positives, None without ground truth).
        mean_ap: the setting's mAP over all queries (None without ground truth).
        recall, precision: the full ranking's PR points (junk removed), or None.
        n_positives: how many positives the query has.
    """

    query: int
    method: str
    whitened: bool
    query_expansion: bool
    indices: np.ndarray
    scores: np.ndarray
    statuses: tuple[str, ...]
    ap: float | None
    mean_ap: float | None
    recall: np.ndarray | None
    precision: np.ndarray | None
    n_positives: int

    @property
    def setting_label(self) -> str:
        """E.g. ``"GeM, whitened, α-QE"``."""
        return ", ".join([self.method] + (["whitened"] if self.whitened else []) + (["α-QE"] if self.query_expansion else []))


def retrieve(index: RetrievalIndex, query: int, method: str = "SPoC", whiten: bool = False,
             query_expansion: bool = False, k: int = 8) -> QueryResult:
    """One query's top-k results, their status, its AP and its precision-recall curve.

    Args:
        index: the :class:`RetrievalIndex`.
        query: 0-based query index.
        method: a key of :data:`cbir_lab.pipeline.METHODS`.
        whiten: PCA-whitening learned on the training split.
        query_expansion: α-QE (``index.qe_k``, ``index.qe_alpha``).
        k: how many results to return (clipped to the database size).

    Returns:
        The :class:`QueryResult`.
    """
    n_q = index.dataset.n_queries
    if not (0 <= int(query) < n_q):
        raise ValueError(f"query must be in 0..{n_q - 1}, got {query}")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    query = int(query)
    entry = index.setting(method, whiten, query_expansion)
    ranking = entry["ranks"][:, query]
    top = ranking[: min(int(k), len(ranking))]
    gnd = index.gnd[query] if index.gnd is not None else None
    statuses = tuple(result_status(int(i), gnd) for i in top)
    ap = recall = precision = None
    mean_ap = entry.get("map")
    n_positives = 0
    if gnd is not None:
        n_positives = len(gnd["ok"])
        ap = float(entry["aps"][query])
        if n_positives:
            recall, precision = precision_recall(ranking, gnd["ok"], gnd["junk"])
    return QueryResult(query, method, bool(whiten), bool(query_expansion), top.copy(),
                       entry["similarities"][query, top].copy(), statuses, ap, mean_ap, recall, precision, n_positives)


def precision_recall_by_method(
    index: RetrievalIndex, query: int, methods: Sequence[str] = ("SPoC", "MAC", "R-MAC", "GeM"),
    whiten: bool = False, query_expansion: bool = False,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, float]]:
    """One query's precision-recall curve and AP under several methods, for one plot.

    Args:
        index: the :class:`RetrievalIndex`.
        query: 0-based query index (it must have positives).
        methods: keys of :data:`cbir_lab.pipeline.METHODS`.
        whiten, query_expansion: the setting, the same for every method.

    Returns:
        (curves, aps): method → (recall, precision), and method → AP, as
        :func:`cbir_lab.viz.retrieval.plot_precision_recall` takes them.
    """
    curves, aps = {}, {}
    for method in methods:
        result = retrieve(index, query, method, whiten, query_expansion)
        if result.recall is None:
            raise ValueError(f"query {query} has no positives (or the dataset no ground truth): no precision-recall curve")
        curves[method] = (result.recall, result.precision)
        aps[method] = result.ap
    return curves, aps


def explain_match(index: RetrievalIndex, query: int, db_index: int, method: str = "SPoC", whiten: bool = False,
                  query_expansion: bool = False) -> tuple[Contribution, Contribution]:
    """Contribution maps of a query and one database image under one setting.

    The query's map explains the score with the database descriptor held fixed, and
    vice versa; both sum (with the whitening's mean term) to the same score, the
    one the ranking used. With query expansion the database image's map explains
    its score against the *expanded* query (the ranking's score), while the query's
    map explains the plain query–result score (the expanded query has no map of its own).

    Args:
        index: the :class:`RetrievalIndex`.
        query: 0-based query index.
        db_index: 0-based database index of the result to explain.
        method, whiten, query_expansion: the setting.

    Returns:
        (query contribution, result contribution), see :func:`cbir_lab.viz.retrieval.contribution_map`.
    """
    entry = index.setting(method, whiten, query_expansion)
    whitening = index.whitening(method) if whiten else None
    features = index.features
    db = entry["db_vecs"]
    if not (0 <= int(db_index) < len(db)):
        raise ValueError(f"db_index must be in 0..{len(db) - 1}, got {db_index}")
    result = contribution_map(features.db_maps[db_index], entry["query_vecs"][query], method, whitening)
    query_side = contribution_map(features.query_maps[query], db[db_index], method, whitening)
    return query_side, result


class RetrievalExplorer(widgets.VBox):
    """Pick a query (thumbnail buttons), a method, whitening, α-QE and k; see the ranking, AP and PR curve.

    Args:
        source: a :class:`RetrievalIndex`, or :class:`~cbir_lab.pipeline.DatasetFeatures` to index.
        method: the initial method (a key of :data:`cbir_lab.pipeline.METHODS`).
        k: the initial number of results shown.
        query: the initial query.
        thumb_side: size of the thumbnails in pixels.
        max_k: the slider's maximum.
        precompute: compute every setting (method × whitening × α-QE) now, so that
            no interaction waits for descriptors or a whitening to be learned
            (free when a comparison table already computed them).

    Attributes:
        index: the :class:`RetrievalIndex`.
        query_buttons: one ``Button`` per query (CSS class ``cbir-query-thumb``).
        method, whiten, query_expansion, k, explain: the controls.
        results: the ``Box`` of ranked results (CSS class ``cbir-results``), one ``cbir-result`` cell each.
        header: the ``HTML`` line with the query, the setting, AP and mAP.
        last_result: the :class:`QueryResult` on display.
        last_explanation: the (query, result) :class:`Contribution` pair on display, or None.
    """

    def __init__(self, source, method: str = "SPoC", k: int = 8, query: int = 0, thumb_side: int = 96,
                 max_k: int = 20, precompute: bool = True) -> None:
        self.index = source if isinstance(source, RetrievalIndex) else RetrievalIndex(source)
        dataset = self.index.dataset
        if precompute:
            for name in METHODS:
                try:
                    for whiten in (False, True) if dataset.train_images else (False,):
                        for qe in (False, True):
                            self.index.setting(name, whiten, qe)
                except ValueError:
                    # Only an optimisation: e.g. R-MAC without feature maps (pooled vectors only).
                    # Choosing that method later shows the same error to the student.
                    continue
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
            button = widgets.Button(description=query_label(dataset, i), tooltip=f"query {i}: {query_label(dataset, i)}",
                                    layout=button_layout)
            button.add_class("cbir-query-thumb")
            button.query_index = i
            button.on_click(self._on_query_click)
            self.query_buttons.append(button)
            image = widgets.Image(value=thumbnail_jpeg(_hashable(item), thumb_side), format="jpeg", layout=image_layout)
            cells.append(widgets.VBox([image, button], layout=cell_layout))
        self.query_grid = widgets.Box(cells, layout=widgets.Layout(display="flex", flex_flow="row wrap",
                                                                  max_height="260px", overflow="auto"))
        self.query_grid.add_class("cbir-query-grid")

        self.method = widgets.ToggleButtons(options=list(METHODS), value=method, description="method")
        self.whiten = widgets.Checkbox(value=False, description="PCA-whitening", indent=False)
        self.query_expansion = widgets.Checkbox(value=False, description=f"α-QE (k={self.index.qe_k})", indent=False)
        if not dataset.train_images:
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
        name = html.escape(query_label(self.index.dataset, result.query))
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
        image.value = thumbnail_jpeg(_hashable(self.index.dataset.db_images[db_index]), self.thumb_side)
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
        key = (result.query, result.method, result.whitened, result.query_expansion)
        if key not in self._pr_png:  # memoised: drawing is the slowest part of an update
            fig = plot_precision_recall({result.setting_label: (result.recall, result.precision)},
                                        {result.setting_label: result.ap}, figsize=(3.4, 2.8))
            self._pr_png[key] = _png_bytes(fig)
        show_png(self.pr_out, self._pr_png[key])

    def _draw_explanation(self) -> None:
        result = self.last_result
        pos = self.explain.value
        db_index = int(result.indices[pos])
        pair = explain_match(self.index, result.query, db_index, result.method, result.whitened, result.query_expansion)
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


def _hashable(item):
    """Image items as lru_cache keys: paths as strings, (path, bbox) as nested tuples."""
    if isinstance(item, tuple):
        path, bbox = item
        return (str(path), tuple(float(v) for v in bbox))
    return str(item)
