"""A query and its results as one self-contained HTML page (what ``cbir-lab search`` writes).

:func:`search_page_html` embeds every thumbnail as a ``data:`` URI
(:mod:`cbir_lab.viz.images`), so the page is a single file that opens in any
browser, offline, and can be mailed or moved; each thumbnail also links to
its original file.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Sequence

from cbir_lab.images import ImageItem, ImageLoadError
from cbir_lab.viz.images import jpeg_data_uri, thumbnail_jpeg

__all__ = ["search_page_html"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; background: #fafafa; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
p.subtitle { color: #555; margin: 0 0 16px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; width: SIDEpx; }
figure img { width: SIDEpx; height: SIDEpx; object-fit: contain; background: #fff; border: 1px solid #ddd; }
figure.query img { border: 3px solid #1f77b4; }
figcaption { font-size: 13px; margin-top: 4px; overflow-wrap: anywhere; }
.score { font-weight: bold; }
.missing { width: SIDEpx; height: SIDEpx; display: flex; align-items: center; justify-content: center;
           background: #eee; color: #900; font-size: 13px; text-align: center; }
"""


def _figure(item: ImageItem, caption: str, side: int, css_class: str = "") -> str:
    """One ``<figure>``: the thumbnail (linked to its file when it is one), or a note if it cannot be read."""
    try:
        picture = f'<img src="{jpeg_data_uri(thumbnail_jpeg(item, side))}" alt="">'
    except ImageLoadError as err:  # e.g. deleted since it was indexed: say so, keep the page
        picture = f'<div class="missing">cannot be shown:<br>{html.escape(str(err))}</div>'
    source = item[0] if isinstance(item, tuple) else item
    if isinstance(source, (str, os.PathLike)):
        picture = f'<a href="{html.escape(Path(source).resolve().as_uri())}">{picture}</a>'
    css = f' class="{css_class}"' if css_class else ""
    return f"<figure{css}>{picture}<figcaption>{caption}</figcaption></figure>"


def search_page_html(
    query: ImageItem,
    results: Sequence[tuple[ImageItem, str, float]],
    title: str = "Search results",
    subtitle: str = "",
    query_label: str = "query",
    thumb_side: int = 224,
) -> str:
    """An HTML page of a query and its ranked results, thumbnails embedded.

    Args:
        query: the query image (a path, a PIL image or ``(path, bbox)``).
        results: per result, best first: (image, label shown under it, score).
        title: the page's heading.
        subtitle: a line under it (the folder, the settings).
        query_label: shown under the query.
        thumb_side: thumbnail size in pixels.

    Returns:
        The page, a complete HTML document that needs no other file.

    Examples:
        >>> from PIL import Image
        >>> page = search_page_html(Image.new("RGB", (8, 6)), [(Image.new("RGB", (6, 8)), "a/IMG_1.JPG", 0.5)])
        >>> page.count("data:image/jpeg;base64,"), "#1" in page, "0.500" in page
        (2, True, True)
    """
    if int(thumb_side) != thumb_side or thumb_side < 1:
        raise ValueError(f"thumb_side must be a positive integer, got {thumb_side!r}")
    side = int(thumb_side)
    cells = [_figure(query, f"<b>query</b><br>{html.escape(query_label)}", side, "query")]
    for position, (item, label, score) in enumerate(results, start=1):
        caption = f'#{position} · <span class="score">{score:.3f}</span><br>{html.escape(label)}'
        cells.append(_figure(item, caption, side))
    sub = f'<p class="subtitle">{html.escape(subtitle)}</p>' if subtitle else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS.replace('SIDE', str(side))}</style></head>\n"
        f"<body><h1>{html.escape(title)}</h1>{sub}\n"
        f'<div class="grid">\n' + "\n".join(cells) + "\n</div></body></html>\n"
    )
