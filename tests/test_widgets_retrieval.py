"""The retrieval explorer, driven by setting its controls' values as a browser would."""

from __future__ import annotations

import pytest

from cbir_lab.index import RetrievalIndex
from cbir_lab.pooling import RMAC, SPOC
from cbir_lab.widgets.retrieval import RetrievalExplorer


def test_widget_shows_what_the_controls_say(grouped_features):
    widget = RetrievalExplorer(grouped_features, k=3)
    assert widget.last_result.query == 0 and widget.last_result.method == "SPoC"
    assert [label for label, _ in widget.method.options] == ["SPoC", "MAC", "R-MAC", "GeM"]
    assert len(widget.results.children) == 3
    assert "cbir-results" in widget.results._dom_classes
    assert all("cbir-query-thumb" in b._dom_classes for b in widget.query_buttons)
    assert widget.query_buttons[0].button_style == "info"

    widget.query_buttons[2].click()  # what a click in the browser does
    assert widget.last_result.query == 2
    assert widget.query_buttons[2].button_style == "info" and widget.query_buttons[0].button_style == ""
    assert "query 2: q2" in widget.header.value and "AP <b>1.000</b>" in widget.header.value
    classes = [c._dom_classes for c in widget.results.children]
    assert sum("cbir-junk" in c for c in classes) == 1

    widget.k.value = 5
    assert len(widget.results.children) == 5 and len(widget.last_result.indices) == 5
    assert "cbir-wrong" in widget.results.children[4]._dom_classes

    widget.method.value = RMAC
    widget.whiten.value = True
    widget.query_expansion.value = True
    assert widget.last_result.setting_label == "R-MAC, whitened, α-QE"
    assert "R-MAC, whitened, α-QE" in widget.header.value

    widget.explain.value = 0
    query_side, result_side = widget.last_explanation
    assert query_side.map.shape == tuple(grouped_features.query_maps[2].shape[1:])
    assert result_side.score == pytest.approx(widget.last_result.scores[0], abs=1e-4)
    widget.k.value = 1  # the explained rank stays valid
    assert widget.explain.value == 0
    widget.explain.value = None
    assert widget.last_explanation is None


def test_widget_precomputes_every_setting(grouped_features):
    index = RetrievalIndex(grouped_features)
    RetrievalExplorer(index, precompute=False)
    assert set(index._settings) == {(SPOC, False, False)}  # only what it showed
    RetrievalExplorer(index)
    assert len(index._settings) == 4 * 2 * 2  # methods × whitening × α-QE
