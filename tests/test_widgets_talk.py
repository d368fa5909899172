"""The talk-mode widget, driven by its controls as a speaker would (no browser)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from cbir_lab.index import RetrievalIndex, retrieve
from cbir_lab.pooling import SPOC
from cbir_lab.widgets.talk import TalkWidget
from tests.fixtures_features import make_features


@pytest.fixture
def features(tmp_path):
    """2 queries, 3 database images whose (2, 1, 1) maps are chosen by hand, and 6 training maps."""
    maps = lambda rows: [torch.tensor(r, dtype=torch.float32).reshape(2, 1, 1) for r in rows]
    rng = np.random.default_rng(0)
    return make_features(maps([[1.0, 0.1], [0.1, 1.0]]), maps([[0.1, 1.0], [1.0, 0.0], [0.9, 0.2]]),
                         maps(rng.uniform(0.1, 1.0, size=(6, 2)).tolist()),
                         [{"ok": [2], "junk": []}, {"ok": [0], "junk": []}], image_dir=tmp_path)


def _shown(widget: TalkWidget) -> tuple[int, list[int]]:
    query = int(re.search(r'data-query="(\d+)"', widget.results.value).group(1))
    return query, [int(i) for i in re.findall(r'data-db-index="(\d+)"', widget.results.value)]


def test_talk_widget_shows_what_its_controls_select(features):
    widget = TalkWidget(features, k=3, columns=3)
    index = widget.index
    assert _shown(widget) == (index.typical_query(), retrieve(index, index.typical_query(), "GeM", k=3).indices.tolist())
    widget.method.value = SPOC
    widget.whitening.value = True
    assert 'data-method="SPoC + whitening"' in widget.results.value
    widget.query_buttons[1].click()  # what clicking the second query's thumbnail does
    assert _shown(widget) == (1, retrieve(index, 1, "SPoC", True, k=3).indices.tolist())
    assert "cbir-talk-selected" in widget.query_buttons[1]._dom_classes
    assert "cbir-talk-selected" not in widget.query_buttons[0]._dom_classes
    # query 1 ∝ (0.1, 1) under MAC: db0 (0.1, 1) first, then db2 (0.9, 0.2), then db1 (1, 0)
    widget.method.value = widget.method.options[1][1]
    widget.whitening.value = False
    assert _shown(widget) == (1, [0, 2, 1])


def test_talk_widget_opens_on_the_typical_query_and_shares_the_index(features):
    index = RetrievalIndex(features)
    widget = TalkWidget(index)
    assert widget.index is index and widget.query == index.typical_query("GeM")


def test_talk_widget_disables_whitening_without_a_training_split(features, tmp_path):
    bare = make_features(features.query_maps, features.db_maps, (), features.dataset.gnd, image_dir=tmp_path)
    assert TalkWidget(bare).whitening.disabled


def test_talk_widget_rejects_bad_arguments(features):
    with pytest.raises(ValueError, match=r"query must be in 0\.\.1"):
        TalkWidget(features, query=2)
    with pytest.raises(ValueError, match="k must be"):
        TalkWidget(features, k=0)
    with pytest.raises(ValueError, match="unknown pooling"):
        TalkWidget(features, method="VLAD")
