"""The talk mode's page: large-type HTML for a projector, built from a query's results.

* :func:`talk_method_label`: ``"GeM"`` or ``"GeM + whitening"``.
* :func:`render_talk_html`: one query's results (a :class:`cbir_lab.index.QueryResult`)
  as a self-contained HTML block: the query, then a grid of results each marked
  correct (✓, green) or wrong (✗, red), with the query's AP. Thumbnails are
  inlined as data URIs, so the page works offline and inside Voila.
* :data:`TALK_CSS`: its style, readable from the back of a room.

The widget that serves it is :class:`cbir_lab.widgets.talk.TalkWidget`.
"""

from __future__ import annotations

import html
from typing import Sequence

from cbir_lab.viz.images import jpeg_data_uri, thumbnail_jpeg
from cbir_lab.viz.ranking import RESULT_COLORS

__all__ = ["TALK_CSS", "STATUS_MARKS", "talk_method_label", "render_talk_html"]

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


def talk_method_label(method: str, whiten: bool) -> str:
    """``"GeM"`` or ``"GeM + whitening"``: how the talk mode names a setting."""
    return f"{method} + whitening" if whiten else method


def render_talk_html(
    result,
    query_item,
    db_items: Sequence,
    columns: int = 6,
    thumb_side: int = 256,
    query_side: int = 320,
) -> str:
    """One query's results as an HTML block for a projector.

    A summary line (setting, correct results among those shown, AP), the query
    on the left and a grid of the results, each with a large ✓ / ✗ mark, a
    coloured border (:data:`cbir_lab.viz.ranking.RESULT_COLORS`), its rank and
    its similarity. The block carries ``data-query`` and ``data-method``, each
    result ``data-db-index`` and ``data-status``, so that tests can read what is shown.

    Args:
        result: a :class:`cbir_lab.index.QueryResult` (``query``, ``method``,
            ``whitened``, ``indices``, ``scores``, ``statuses``, ``ap``, ``n_positives``).
        query_item: the query's image item.
        db_items: the database image items (indexed by the result).
        columns: results per row.
        thumb_side: result thumbnails' longest side in pixels.
        query_side: the query image's longest side in pixels.

    Returns:
        An HTML string (no scripts; images inlined).
    """
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    label = talk_method_label(result.method, result.whitened)
    shown = len(result.indices)
    n_correct = sum(status == "correct" for status in result.statuses)
    summary = [f"<b>{html.escape(label)}</b>"]
    if result.n_positives is not None:
        summary.append(f"{n_correct} of {shown} shown are correct ({result.n_positives} correct images in the database)")
    if result.ap is not None and result.ap == result.ap:  # NaN: the query has no positives
        summary.append(f"AP <b>{result.ap:.2f}</b>")
    cells = []
    for pos in range(shown):
        index, status = int(result.indices[pos]), result.statuses[pos]
        color = RESULT_COLORS[status]
        cells.append(
            f'<figure class="cbir-talk-result" data-db-index="{index}" data-status="{status}">'
            f'<img src="{jpeg_data_uri(thumbnail_jpeg(db_items[index], thumb_side))}" style="border-color:{color}" '
            f'alt="result {pos + 1}: {status}">'
            f'<span class="cbir-talk-mark" style="color:{color}">{STATUS_MARKS[status]}</span>'
            f"<figcaption>#{pos + 1} · {result.scores[pos]:.2f}</figcaption></figure>"
        )
    return (
        f'<div class="cbir-talk-results" data-query="{result.query}" data-method="{html.escape(label)}">'
        f'<div class="cbir-talk-summary">{" · ".join(summary)}</div>'
        f'<div class="cbir-talk-body"><div class="cbir-talk-querybox">'
        f'<img src="{jpeg_data_uri(thumbnail_jpeg(query_item, query_side))}" alt="query {result.query + 1}" '
        f'style="max-width:{query_side}px">query {result.query + 1}</div>'
        f'<div class="cbir-talk-grid" style="grid-template-columns:repeat({columns}, minmax(0, 1fr))">'
        + "".join(cells)
        + "</div></div></div>"
    )
