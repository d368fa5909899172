"""Comparison tables and their intervals (cbir_lab.studies.methods), against hand-worked values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cbir_lab.evaluation import compute_map, precision_recall
from cbir_lab.index import RetrievalIndex
from cbir_lab.studies.methods import (
    MethodScore,
    compare_methods,
    compare_settings,
    comparison_table,
    precision_recall_by_method,
)
from tests.fixtures_features import make_features


def test_comparison_table_rows_and_a_separable_set_scores_perfectly():
    # queries fire on channels 0 and 1; db images 0, 1 fire on 0, images 2, 3 on 1
    def one_hot(channel, value=1.0):
        m = torch.zeros(4, 3, 3)
        m[channel, 1, 1] = value
        return m

    rng = torch.Generator().manual_seed(0)
    features = make_features([one_hot(0), one_hot(1)], [one_hot(0), one_hot(0, 2.0), one_hot(1), one_hot(1, 3.0)],
                             [torch.rand(4, 3, 3, generator=rng) for _ in range(8)],
                             [{"ok": [0, 1], "junk": []}, {"ok": [2, 3], "junk": []}])
    rows = comparison_table(RetrievalIndex(features), whitening=(False,), query_expansion=(False,))
    assert [r.method for r in rows] == ["SPoC", "MAC", "R-MAC", "GeM"]
    assert all(r.scores["mAP"] == pytest.approx(1.0) for r in rows)
    assert all(r.aps.tolist() == [1.0, 1.0] for r in rows)
    rows = comparison_table(RetrievalIndex(features), ["SPoC"], (False, True), (False, True))
    assert [r.setting_label for r in rows] == ["SPoC", "SPoC, α-QE", "SPoC, whitened", "SPoC, whitened, α-QE"]
    assert rows[2].dim <= 7  # whitened on 8 training vectors: at most 7 components


def test_compare_methods_gives_paired_intervals():
    rows = [MethodScore("A", False, False, 4, {"mAP": 0.5}, np.array([1.0, 0.0])),
            MethodScore("B", False, False, 4, {"mAP": 1.0}, np.array([1.0, 1.0]))]
    intervals = compare_methods(rows, reference="A")
    assert list(intervals) == ["B"]
    # differences per query: 0 and 1, so every resample's mean lies in {0, 0.5, 1}
    assert intervals["B"].estimate == pytest.approx(0.5)
    assert {intervals["B"].low, intervals["B"].high} <= {0.0, 0.5, 1.0}
    with pytest.raises(ValueError, match="per-query APs"):
        compare_methods([rows[0], MethodScore("C", False, False, 4, {"mAP": 1.0})])


def test_compare_settings_pairs_each_row_with_its_counterpart():
    def row(method, whitened, qe, aps):
        return MethodScore(method, whitened, qe, 4, {"mAP": float(np.mean(aps))}, np.array(aps, dtype=float))

    rows = [row("A", False, False, [0.5, 0.5]), row("A", True, False, [1.0, 0.5]),
            row("A", False, True, [0.5, 0.0]), row("A", True, True, [0.5, 0.5]),
            row("B", True, False, [1.0, 1.0])]  # B has no unwhitened row: left out
    whitened = compare_settings(rows, "whitened")
    assert list(whitened) == ["A, whitened", "A, whitened, α-QE"]
    # per-query differences (0.5, 0) and (0, 0.5): both mean 0.25
    assert whitened["A, whitened"].estimate == pytest.approx(0.25)
    assert whitened["A, whitened, α-QE"].estimate == pytest.approx(0.25)
    qe = compare_settings(rows, "query_expansion")
    assert list(qe) == ["A, α-QE", "A, whitened, α-QE"]
    assert qe["A, α-QE"].estimate == pytest.approx(-0.25)  # (0, -0.5)
    assert qe["A, whitened, α-QE"].estimate == pytest.approx(-0.25)  # (-0.5, 0)
    with pytest.raises(ValueError, match="change must be"):
        compare_settings(rows, "power")
    with pytest.raises(ValueError, match="per-query APs"):
        compare_settings([MethodScore("C", False, False, 4, {"mAP": 1.0})], "whitened")


def test_precision_recall_by_method(grouped_features):
    index = RetrievalIndex(grouped_features)
    curves, aps = precision_recall_by_method(index, 2, ("SPoC", "MAC"), whiten=True)
    assert list(curves) == list(aps) == ["SPoC", "MAC"]
    for method in ("SPoC", "MAC"):
        ranks = index.setting(method, whiten=True).ranks
        recall, precision = precision_recall(ranks[:, 2], [6, 7], [8])
        np.testing.assert_array_equal(curves[method][0], recall)
        np.testing.assert_array_equal(curves[method][1], precision)
        assert aps[method] == pytest.approx(compute_map(ranks, grouped_features.dataset.gnd).aps[2])
    dataset = grouped_features.dataset
    lonely = dataclasses.replace(grouped_features, dataset=dataclasses.replace(
        dataset, gnd=dataset.gnd[:2] + ({"ok": [], "junk": []},)), _pooled={})
    with pytest.raises(ValueError, match="query 2 has no positives"):
        precision_recall_by_method(RetrievalIndex(lonely), 2)

