"""The page `cbir-lab search` writes (cbir_lab.viz.search_page), read back from its HTML."""

from __future__ import annotations

import base64
import io
import re

from PIL import Image

from cbir_lab.viz.search_page import search_page_html


def test_the_page_embeds_every_thumbnail_and_escapes_names(tmp_path):
    query = tmp_path / "query.png"
    Image.new("RGB", (300, 200), (200, 30, 30)).save(query)
    hit = tmp_path / "a & b" / "IMG_0001.JPG"
    hit.parent.mkdir()
    Image.new("RGB", (200, 300), (30, 30, 200)).save(hit, "JPEG")
    page = search_page_html(query, [(hit, "a & b/IMG_0001.JPG", 0.8125)], title="<top 1>", subtitle="photos",
                            query_label="query.png", thumb_side=64)
    assert page.startswith("<!DOCTYPE html>") and "<title>&lt;top 1&gt;</title>" in page
    assert "#1 · <span class=\"score\">0.812</span><br>a &amp; b/IMG_0001.JPG" in page
    thumbs = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)
    sizes = [Image.open(io.BytesIO(base64.b64decode(t))).size for t in thumbs]
    assert sizes == [(64, 43), (43, 64)]  # the query, then the result, each fitted into 64 × 64
    assert f'href="{hit.resolve().as_uri()}"' in page  # each thumbnail opens its file


def test_a_result_that_cannot_be_read_is_shown_as_a_note(tmp_path):
    query = Image.new("RGB", (8, 8))
    page = search_page_html(query, [(tmp_path / "gone.jpg", "gone.jpg", 0.5)])
    assert page.count('src="data:image/jpeg') == 1 and "cannot be shown" in page and "gone.jpg" in page
