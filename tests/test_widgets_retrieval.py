"""Tests for cbir_lab.widgets.retrieval: the pure functions, and the widget driven by setting its values."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
from PIL import Image

from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.evaluation import compute_map, precision_recall
from cbir_lab.pipeline import DatasetFeatures, evaluate_methods, global_descriptors
from cbir_lab.search import rank
from cbir_lab.widgets.retrieval import (
    RetrievalExplorer,
    RetrievalIndex,
    comparison_table,
    explain_match,
    precision_recall_by_method,
    query_label,
    retrieve,
    thumbnail_jpeg,
)


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> DatasetFeatures:
    """3 groups × 3 database images, one query per group, 12 training images; random maps with a group signal.

    Group g's maps share a strong channel pattern, so a query's own group ranks first.
    """
    folder = tmp_path_factory.mktemp("images")
    generator = torch.Generator().manual_seed(0)

    def image(name: str, colour) -> str:
        path = folder / f"{name}.png"
        Image.new("RGB", (40, 30), colour).save(path)
        return path

    patterns = torch.rand(3, 16, 1, 1, generator=generator) * 3

    def fmap(group: int | None) -> torch.Tensor:
        noise = torch.rand(16, 4, 5, generator=generator)
        return noise if group is None else noise + patterns[group]

    db = [image(f"g{g}_db{i}", (80 * g, 40 * i, 100)) for g in range(3) for i in range(3)]
    queries = [image(f"g{g}_query", (80 * g, 200, 100)) for g in range(3)]
    train = [image(f"t{i}", (10 * i, 10, 10)) for i in range(12)]
    gnd = tuple({"ok": [3 * g, 3 * g + 1, 3 * g + 2], "junk": []} for g in range(3))
    # Query 2's third positive is junk instead, to see a junk border.
    gnd = gnd[:2] + ({"ok": [6, 7], "junk": [8]},)
    dataset = RetrievalDataset("toy", tuple(db), tuple(queries), gnd, train_images=tuple(train))
    return DatasetFeatures(
        dataset, "toy", 64,
        query_maps=[fmap(g) for g in range(3)],
        db_maps=[fmap(g) for g in range(3) for _ in range(3)],
        train_maps=[fmap(None) for _ in range(12)],
    )


def test_index_matches_the_pipeline(features):
    index = RetrievalIndex(features)
    entry = index.setting("GeM", whiten=True)
    q, db = global_descriptors(features, "GeM", True)
    np.testing.assert_allclose(entry["similarities"], q @ db.T, atol=1e-6)
    np.testing.assert_array_equal(entry["ranks"], rank(q, db))
    assert entry["map"] == pytest.approx(compute_map(entry["ranks"], features.dataset.gnd).map)
    assert index.setting("GeM", True) is entry  # memoised


def test_comparison_table_equals_evaluate_methods(features):
    index = RetrievalIndex(features, qe_k=2)
    rows = comparison_table(index, methods=("SPoC", "R-MAC"))
    expected = evaluate_methods(features, methods=("SPoC", "R-MAC"), query_expansion_k=2)
    assert [(r.method, r.whitened, r.query_expansion, r.dim) for r in rows] == \
        [(r.method, r.whitened, r.query_expansion, r.dim) for r in expected]
    for got, want in zip(rows, expected):
        assert got.scores == pytest.approx(want.scores)


def test_retrieve_returns_the_top_k_with_statuses(features):
    index = RetrievalIndex(features)
    result = retrieve(index, 2, "SPoC", k=4)
    assert len(result.indices) == 4
    assert set(result.indices[:3].tolist()) == {6, 7, 8}  # the query's own group first
    status = dict(zip(result.indices.tolist(), result.statuses))
    assert status[8] == "junk" and status[6] == "correct"
    assert result.statuses[3] == "wrong"
    assert np.all(np.diff(result.scores) <= 1e-7)  # sorted by similarity
    assert result.ap == pytest.approx(1.0)
    assert result.recall[-1] == pytest.approx(1.0)
    assert "SPoC" in result.setting_label
    with pytest.raises(ValueError, match="query"):
        retrieve(index, 3)
    with pytest.raises(ValueError, match="unknown method"):
        retrieve(index, 0, "VLAD")


def test_precision_recall_by_method(features):
    index = RetrievalIndex(features)
    curves, aps = precision_recall_by_method(index, 2, ("SPoC", "MAC"), whiten=True)
    assert list(curves) == list(aps) == ["SPoC", "MAC"]
    for method in ("SPoC", "MAC"):
        ranks = index.setting(method, whiten=True)["ranks"]
        recall, precision = precision_recall(ranks[:, 2], [6, 7], [8])
        np.testing.assert_array_equal(curves[method][0], recall)
        np.testing.assert_array_equal(curves[method][1], precision)
        assert aps[method] == pytest.approx(compute_map(ranks, features.dataset.gnd).aps[2])
    no_positives = dataclasses.replace(features.dataset, gnd=features.dataset.gnd[:2] + ({"ok": [], "junk": []},))
    lonely = RetrievalIndex(DatasetFeatures(no_positives, "toy", 64, features.query_maps, features.db_maps, features.train_maps))
    with pytest.raises(ValueError, match="query 2 has no positives"):
        precision_recall_by_method(lonely, 2)


def test_query_expansion_changes_the_query_vector(features):
    index = RetrievalIndex(features, qe_k=2)
    plain = index.setting("MAC")["query_vecs"]
    expanded = index.setting("MAC", query_expansion=True)["query_vecs"]
    assert not np.allclose(plain, expanded)
    np.testing.assert_allclose(np.linalg.norm(expanded, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("method", ["SPoC", "MAC", "R-MAC", "GeM"])
@pytest.mark.parametrize("whiten", [False, True])
def test_explain_match_sums_to_the_ranking_score(features, method, whiten):
    index = RetrievalIndex(features)
    result = retrieve(index, 1, method, whiten, k=3)
    query_side, result_side = explain_match(index, 1, int(result.indices[0]), method, whiten)
    assert result_side.map.sum() + result_side.offset == pytest.approx(result.scores[0], abs=1e-4)
    assert query_side.score == pytest.approx(result.scores[0], abs=1e-4)
    assert result_side.map.shape == tuple(features.db_maps[0].shape[1:])


def test_thumbnail_and_label(features):
    jpeg = thumbnail_jpeg(str(features.dataset.db_images[0]), 16)
    assert jpeg[:3] == b"\xff\xd8\xff"  # the JPEG signature
    assert Image.open(io.BytesIO(jpeg)).size == (16, 12)  # 40×30 shrunk to fit 16×16
    assert query_label(features.dataset, 0) == "g0"


def test_widget_shows_what_the_controls_say(features):
    widget = RetrievalExplorer(features, k=3)
    assert widget.last_result.query == 0 and widget.last_result.method == "SPoC"
    assert len(widget.results.children) == 3
    assert "cbir-results" in widget.results._dom_classes
    assert all("cbir-query-thumb" in b._dom_classes for b in widget.query_buttons)
    assert widget.query_buttons[0].button_style == "info"

    widget.query_buttons[2].click()  # what a click in the browser does
    assert widget.last_result.query == 2
    assert widget.query_buttons[2].button_style == "info" and widget.query_buttons[0].button_style == ""
    assert "query 2: g2" in widget.header.value and "AP <b>1.000</b>" in widget.header.value
    classes = [c._dom_classes for c in widget.results.children]
    assert sum("cbir-junk" in c for c in classes) == 1

    widget.k.value = 5
    assert len(widget.results.children) == 5 and len(widget.last_result.indices) == 5
    assert "cbir-wrong" in widget.results.children[4]._dom_classes

    widget.method.value = "R-MAC"
    widget.whiten.value = True
    widget.query_expansion.value = True
    assert widget.last_result.setting_label == "R-MAC, whitened, α-QE"
    assert "R-MAC, whitened, α-QE" in widget.header.value

    widget.explain.value = 0
    query_side, result_side = widget.last_explanation
    assert query_side.map.shape == tuple(features.query_maps[2].shape[1:])
    assert result_side.score == pytest.approx(widget.last_result.scores[0], abs=1e-4)
    widget.k.value = 1  # the explained rank stays valid
    assert widget.explain.value == 0
    widget.explain.value = None
    assert widget.last_explanation is None


def test_pure_update_functions_are_fast_enough_to_call_in_loops(features):
    # Not a timing test: it checks that an update reuses the memoised setting (no new descriptors).
    index = RetrievalIndex(features)
    retrieve(index, 0, "GeM", True)
    before = dict(index._settings)
    for q in range(3):
        retrieve(index, q, "GeM", True, k=2)
    assert index._settings == before


def test_widget_precomputes_every_setting(features):
    index = RetrievalIndex(features)
    RetrievalExplorer(index, precompute=False)
    assert set(index._settings) == {("SPoC", False, False)}  # only what it showed
    RetrievalExplorer(index)
    assert len(index._settings) == 4 * 2 * 2  # methods × whitening × α-QE
