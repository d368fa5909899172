"""The talk mode's page (cbir_lab.viz.talk) and thumbnails (cbir_lab.viz.images), read back from the HTML."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from cbir_lab.index import RetrievalIndex, retrieve
from cbir_lab.viz.images import jpeg_data_uri, thumbnail_jpeg
from cbir_lab.viz.talk import STATUS_MARKS, TALK_CSS, render_talk_html, talk_method_label
from tests.fixtures_features import make_features


@pytest.fixture
def images(tmp_path):
    """Three 40x20 solid images (red, green, blue) and a 30x30 grey query."""
    paths = []
    for name, color in [("red", (255, 0, 0)), ("green", (0, 255, 0)), ("blue", (0, 0, 255))]:
        path = tmp_path / f"{name}.png"
        Image.new("RGB", (40, 20), color).save(path)
        paths.append(path)
    query = tmp_path / "query.png"
    Image.new("RGB", (30, 30), (128, 128, 128)).save(query)
    return query, paths


def _decode(uri: str) -> Image.Image:
    assert uri.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def _result(gnd=None, k=3, whiten=False):
    """Query (1, 0) against db0 = (0, 1), db1 = (1, 0), db2 = (0.6, 0.8): MAC ranks 1, 2, 0."""
    maps = lambda rows: [torch.tensor(r, dtype=torch.float32).reshape(2, 1, 1) for r in rows]
    rng = np.random.default_rng(0)
    features = make_features(maps([[1.0, 0.0]]), maps([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]]),
                             maps(rng.uniform(0.1, 1.0, size=(6, 2)).tolist()), gnd)
    return retrieve(RetrievalIndex(features), 0, "MAC", whiten=whiten, k=k)


def test_thumbnail_jpeg_shrinks_and_keeps_the_colour(images):
    _, paths = images
    jpeg = thumbnail_jpeg(paths[1], side=16)
    assert jpeg[:3] == b"\xff\xd8\xff"  # the JPEG signature
    thumb = _decode(jpeg_data_uri(jpeg))
    assert thumb.size == (16, 8)  # 40×20 shrunk to fit 16×16
    assert int(np.argmax(thumb.getpixel((8, 4)))) == 1  # green


def test_thumbnail_jpeg_crops_a_query_box(tmp_path):
    path = tmp_path / "half.png"
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 20))  # right half blue
    image.save(path)
    thumb = _decode(jpeg_data_uri(thumbnail_jpeg((path, (20, 0, 40, 20)), side=64)))
    assert thumb.size == (20, 20)
    assert thumb.getpixel((10, 10))[2] > 200


def test_thumbnail_jpeg_takes_a_pil_image_and_rejects_a_bad_side(images):
    assert thumbnail_jpeg(Image.new("RGB", (10, 10)), side=4)[:3] == b"\xff\xd8\xff"
    with pytest.raises(ValueError, match="side"):
        thumbnail_jpeg(images[1][0], side=0)


def test_render_talk_html_shows_each_result_in_order_with_its_mark(images):
    query, paths = images
    page = render_talk_html(_result([{"ok": [2], "junk": [1]}]), query, paths, columns=3)
    assert re.findall(r'data-db-index="(\d+)" data-status="(\w+)"', page) == [("1", "junk"), ("2", "correct"), ("0", "wrong")]
    assert page.count(STATUS_MARKS["correct"]) == 1 and page.count(STATUS_MARKS["wrong"]) == 1
    assert 'data-method="MAC"' in page
    assert 'data-method="MAC + whitening"' in render_talk_html(_result(whiten=True), query, paths)
    assert "1 of 3 shown are correct" in page and "AP <b>1.00</b>" in page
    assert "repeat(3," in page
    assert "<script" not in page
    # one query image + three results, all inlined (nothing to fetch from a server)
    assert len(re.findall(r'<img src="data:image/jpeg;base64,', page)) == 4


def test_render_talk_html_shows_each_similarity_by_rank(images):
    query, paths = images
    page = render_talk_html(_result(), query, paths)
    assert re.findall(r"<figcaption>(#\d · [0-9.]+)</figcaption>", page) == ["#1 · 1.00", "#2 · 0.60", "#3 · 0.00"]


def test_render_talk_html_result_images_are_the_ranked_database_images(images):
    query, paths = images
    page = render_talk_html(_result(), query, paths)
    uris = re.findall(r'<figure[^>]*><img src="([^"]+)"', page)
    # ranking 1, 2, 0 → green, blue, red
    assert [int(np.argmax(_decode(u).getpixel((2, 2)))) for u in uris] == [1, 2, 0]
    assert "shown are correct" not in page and "AP <b>" not in page  # no ground truth, no scores


def test_render_talk_html_rejects_zero_columns(images):
    query, paths = images
    with pytest.raises(ValueError, match="columns"):
        render_talk_html(_result(), query, paths, columns=0)


def test_talk_css_uses_large_type():
    sizes = [int(s) for s in re.findall(r"font-size:\s*(\d+)px", TALK_CSS)]
    assert sizes and min(sizes) >= 22


def test_talk_method_label():
    assert talk_method_label("GeM", False) == "GeM"
    assert talk_method_label("R-MAC", True) == "R-MAC + whitening"
