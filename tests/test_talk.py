"""Tests of the talk mode's pure parts: cbir_lab.widgets.talk and cbir_lab.talk (no browser)."""

from __future__ import annotations

import base64
import io
import json
import re
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.pipeline import DatasetFeatures, global_descriptors
from cbir_lab.talk import DATASET_ENV, NOTEBOOK, _check_dataset, talk_env, voila_command
from cbir_lab.widgets.talk import (
    STATUS_MARKS,
    TALK_CSS,
    TalkWidget,
    method_label,
    render_talk_html,
    talk_ranking,
    talk_results,
    thumbnail_data_uri,
    typical_query,
)

# Query (1, 0) against three unit vectors: similarities db0 = 0, db1 = 1, db2 = 0.6.
QUERY = np.array([[1.0, 0.0]], dtype=np.float32)
DB = np.array([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]], dtype=np.float32)


# --- talk_ranking ------------------------------------------------------------------------------

def test_talk_ranking_orders_by_similarity_and_flags_each_result():
    ranking = talk_ranking(QUERY, DB, 0, [{"ok": [2], "junk": [1]}], k=3)
    assert ranking.indices == [1, 2, 0]
    assert [r.rank for r in ranking.results] == [1, 2, 3]
    assert [r.status for r in ranking.results] == ["junk", "correct", "wrong"]
    assert [round(r.score, 6) for r in ranking.results] == [1.0, 0.6, 0.0]
    assert ranking.n_correct == 1 and ranking.n_positives == 1


def test_talk_ranking_ap_ignores_junk():
    # The only positive (db2) is 2nd, after a junk image: with junk removed it is 1st, so AP = 1.
    assert talk_ranking(QUERY, DB, 0, [{"ok": [2], "junk": [1]}]).average_precision == pytest.approx(1.0)


def test_talk_ranking_ap_uses_the_full_ranking_not_only_the_shown_results():
    # db0 is last (position 2). Trapezoid AP: p0 = 0/2, p1 = 1/3 → (0 + 1/3) / 2 = 1/6, although k = 1.
    ranking = talk_ranking(QUERY, DB, 0, [{"ok": [0], "junk": []}], k=1)
    assert ranking.indices == [1]
    assert ranking.results[0].status == "wrong"
    assert ranking.average_precision == pytest.approx(1 / 6)


def test_talk_ranking_revisited_ground_truth_counts_easy_and_hard_as_correct():
    ranking = talk_ranking(QUERY, DB, 0, [{"easy": [1], "hard": [0], "junk": [2]}], k=3)
    assert [r.status for r in ranking.results] == ["correct", "junk", "correct"]
    assert ranking.n_positives == 2


def test_talk_ranking_ties_go_to_the_smaller_database_index():
    db = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    assert talk_ranking(QUERY, db, 0, None, k=3).indices == [1, 2, 0]


def test_talk_ranking_without_ground_truth_is_unknown_and_has_no_ap():
    ranking = talk_ranking(QUERY, DB, 0, None, k=2)
    assert [r.status for r in ranking.results] == ["unknown", "unknown"]
    assert ranking.average_precision is None and ranking.n_positives is None


def test_talk_ranking_k_larger_than_database_shows_everything():
    assert len(talk_ranking(QUERY, DB, 0, None, k=50).results) == 3


@pytest.mark.parametrize("query, k, message", [(1, 3, "query must be in 0..0"), (-1, 3, "query"), (0, 0, "k must be")])
def test_talk_ranking_rejects_bad_arguments(query, k, message):
    with pytest.raises(ValueError, match=message):
        talk_ranking(QUERY, DB, query, None, k=k)


def test_method_label():
    assert method_label("GeM", False) == "GeM"
    assert method_label("R-MAC", True) == "R-MAC + whitening"


# --- rendering ---------------------------------------------------------------------------------

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
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")


def test_thumbnail_data_uri_shrinks_and_keeps_the_colour(images):
    _, paths = images
    thumb = _decode(thumbnail_data_uri(paths[2], side=10))
    assert thumb.size == (10, 5)
    r, g, b = thumb.getpixel((5, 2))
    assert b > 200 and r < 40 and g < 40


def test_thumbnail_data_uri_crops_a_query_box(tmp_path):
    path = tmp_path / "half.png"
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (20, 0, 40, 20))  # right half blue
    image.save(path)
    thumb = _decode(thumbnail_data_uri((path, (20, 0, 40, 20)), side=64))
    assert thumb.size == (20, 20)
    assert thumb.getpixel((10, 10))[2] > 200


def test_thumbnail_data_uri_rejects_a_bad_side(images):
    with pytest.raises(ValueError, match="side"):
        thumbnail_data_uri(images[1][0], side=0)


def test_render_talk_html_shows_each_result_in_order_with_its_mark(images):
    query, paths = images
    ranking = talk_ranking(QUERY, DB, 0, [{"ok": [2], "junk": [1]}], k=3, method="GeM + whitening")
    page = render_talk_html(ranking, query, paths, columns=3)
    assert re.findall(r'data-db-index="(\d+)" data-status="(\w+)"', page) == [("1", "junk"), ("2", "correct"), ("0", "wrong")]
    assert page.count(STATUS_MARKS["correct"]) == 1 and page.count(STATUS_MARKS["wrong"]) == 1
    assert "GeM + whitening" in page
    assert "1 of 3 shown are correct" in page and "AP <b>1.00</b>" in page
    assert "#2 · 0.60" in page
    assert "repeat(3," in page
    assert "<script" not in page
    # one query image + three results, all inlined (nothing to fetch from a server)
    assert len(re.findall(r'<img src="data:image/jpeg;base64,', page)) == 4


def test_render_talk_html_result_images_are_the_ranked_database_images(images):
    query, paths = images
    page = render_talk_html(talk_ranking(QUERY, DB, 0, None, k=3), query, paths)
    uris = re.findall(r'<figure[^>]*><img src="([^"]+)"', page)
    # ranking 1, 2, 0 → green, blue, red
    colours = [_decode(u).getpixel((2, 2)) for u in uris]
    assert [int(np.argmax(c)) for c in colours] == [1, 2, 0]
    assert "shown are correct" not in page and "AP <b>" not in page  # no ground truth, no scores


def test_render_talk_html_rejects_zero_columns(images):
    query, paths = images
    with pytest.raises(ValueError, match="columns"):
        render_talk_html(talk_ranking(QUERY, DB, 0, None), query, paths, columns=0)


def test_talk_css_uses_large_type():
    sizes = [int(s) for s in re.findall(r"font-size:\s*(\d+)px", TALK_CSS)]
    assert sizes and min(sizes) >= 22


# --- on a small hand-made dataset --------------------------------------------------------------

@pytest.fixture
def features(images):
    """A 2-query, 3-image dataset whose (2, 1, 1) feature maps are chosen by hand, and 6 training maps."""
    query, paths = images
    ds = RetrievalDataset(
        name="tiny", db_images=tuple(paths), query_images=(query, query),
        gnd=({"ok": [2], "junk": []}, {"ok": [0], "junk": []}), train_images=tuple(paths) * 2,
    )
    maps = lambda rows: [torch.tensor(r, dtype=torch.float32).reshape(2, 1, 1) for r in rows]
    rng = np.random.default_rng(0)
    return DatasetFeatures(
        ds, "hand-made", 0,
        query_maps=maps([[1.0, 0.1], [0.1, 1.0]]),
        db_maps=maps([[0.1, 1.0], [1.0, 0.0], [0.9, 0.2]]),
        train_maps=maps(rng.uniform(0.1, 1.0, size=(6, 2)).tolist()),
    )


def test_talk_results_matches_talk_ranking_on_the_methods_descriptors(features):
    ranking = talk_results(features, 1, "MAC", whiten=False, k=3)
    # query 1 ∝ (0.1, 1): most similar to db0 (0.1, 1), then db2 (0.9, 0.2), then db1 (1, 0)
    assert ranking.indices == [0, 2, 1]
    assert ranking.method == "MAC" and ranking.results[0].status == "correct"
    q, db = global_descriptors(features, "GeM", whiten=True)
    assert talk_results(features, 0, "GeM", whiten=True, k=3) == talk_ranking(q, db, 0, features.dataset.gnd, 3, "GeM + whitening")


def test_talk_results_rejects_an_unknown_method(features):
    with pytest.raises(ValueError, match="method must be one of"):
        talk_results(features, 0, "VLAD")


def _shown(widget: TalkWidget) -> tuple[int, list[int]]:
    query = int(re.search(r'data-query="(\d+)"', widget.results.value).group(1))
    return query, [int(i) for i in re.findall(r'data-db-index="(\d+)"', widget.results.value)]


def test_talk_widget_shows_what_its_controls_select(features):
    widget = TalkWidget(features, k=3, columns=3)
    assert _shown(widget) == (0, talk_results(features, 0, "GeM", False, 3).indices)
    widget.method.value = "SPoC"
    widget.whitening.value = True
    assert 'data-method="SPoC + whitening"' in widget.results.value
    assert _shown(widget) == (0, talk_results(features, 0, "SPoC", True, 3).indices)
    widget.query_buttons[1].click()  # what clicking the second query's thumbnail does
    assert _shown(widget) == (1, talk_results(features, 1, "SPoC", True, 3).indices)
    assert "cbir-talk-selected" in widget.query_buttons[1]._dom_classes
    assert "cbir-talk-selected" not in widget.query_buttons[0]._dom_classes


def test_talk_widget_disables_whitening_without_a_training_split(features):
    ds = features.dataset
    bare = RetrievalDataset(ds.name, ds.db_images, ds.query_images, ds.gnd)
    widget = TalkWidget(DatasetFeatures(bare, "hand-made", 0, features.query_maps, features.db_maps, []))
    assert widget.whitening.disabled


def test_typical_query_is_the_median_ap_query(features):
    # MAC on the hand-made maps: query (1, 0.1) ranks db1, db2, db0; query (0.1, 1) ranks db0, db2, db1
    ds = features.dataset
    three = RetrievalDataset(ds.name, ds.db_images, ds.query_images + ds.query_images[:1],
                             ({"ok": [1], "junk": []},   # db1 first: AP 1
                              {"ok": [1], "junk": []},   # db1 third: AP (0 + 1/3) / 2 = 1/6
                              {"ok": [2], "junk": []}))  # db2 second: AP (0 + 1/2) / 2 = 1/4, the median
    maps = features.query_maps + features.query_maps[:1]
    assert typical_query(DatasetFeatures(three, "hand-made", 0, maps, features.db_maps, []), "MAC") == 2
    bare = RetrievalDataset(ds.name, ds.db_images, ds.query_images, None)  # no ground truth: the first query
    assert typical_query(DatasetFeatures(bare, "hand-made", 0, features.query_maps, features.db_maps, [])) == 0


def test_talk_widget_rejects_a_bad_first_query(features):
    with pytest.raises(ValueError, match="query must be in 0..1"):
        TalkWidget(features, query=2)


# --- cbir_lab.talk: serving with Voila ---------------------------------------------------------

def test_voila_command_serves_the_packaged_notebook_on_loopback():
    command = voila_command(port=9000, open_browser=False)
    assert command[:4] == [sys.executable, "-m", "voila", str(NOTEBOOK)]
    assert "--port=9000" in command and "--Voila.ip=127.0.0.1" in command and "--no-browser" in command
    assert "--no-browser" not in voila_command(port=9000, open_browser=True)


@pytest.mark.parametrize("kwargs, message", [({"port": 0}, "port"), ({"port": 70000}, "port"), ({"theme": "neon"}, "theme")])
def test_voila_command_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        voila_command(**kwargs)


def test_talk_env_passes_the_dataset_and_kernel_dir_without_touching_the_base():
    base = {"PATH": "/bin", DATASET_ENV: "old", "JUPYTER_PATH": "/a"}
    env = talk_env("holidays", kernel_dir="/k", base=base)
    assert env[DATASET_ENV] == "holidays"
    assert env["JUPYTER_PATH"].split(":") == ["/k", "/a"]
    assert base == {"PATH": "/bin", DATASET_ENV: "old", "JUPYTER_PATH": "/a"}
    assert DATASET_ENV not in talk_env(None, base=base)  # the embedded set: no variable


def test_check_dataset_names_an_unknown_dataset(tmp_path):
    _check_dataset(None)
    _check_dataset("embedded")
    _check_dataset(str(tmp_path))  # a folder of the user's images
    with pytest.raises(ValueError, match="'no-such-set' is neither a benchmark"):
        _check_dataset("no-such-set")


def test_present_notebook_is_shipped_clean_and_reads_the_dataset_variable():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] for c in code)  # Voila runs it; nothing stale is stored
    assert [c for c in nb["cells"] if c["cell_type"] == "markdown"] == []  # nothing but the demo on screen
    source = "".join("".join(c["source"]) for c in code)
    assert "DATASET_ENV" in source and "TalkWidget" in source
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
