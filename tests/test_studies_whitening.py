"""PCA-whitening against d (cbir_lab.studies.whitening), against whitenings fitted here."""

from __future__ import annotations

import pytest

from cbir_lab.evaluation import compute_map
from cbir_lab.index import RetrievalIndex
from cbir_lab.search import rank
from cbir_lab.studies.whitening import dimension_grid, train_vs_test_curves, whitening_gains, whitening_table
from cbir_lab.whitening import l2n
from tests.fixtures_features import score_with_pca


def test_dimension_grid():
    assert dimension_grid(40) == [16, 32, 40]
    assert dimension_grid(32) == [16, 32]
    assert dimension_grid(10) == [10]
    assert dimension_grid(256) == list(range(16, 257, 16))  # 16 points: the plain grid
    # beyond 16 points the step grows by whole multiples of 16: 1280 / (16 · 16) → 5 · 16 = 80
    assert dimension_grid(1280) == list(range(16, 1281, 80)) + [1280]
    with pytest.raises(ValueError, match="max_dim"):
        dimension_grid(0)


def test_train_vs_test_curves(whitening_features):
    index = RetrievalIndex(whitening_features)
    curves, baselines = train_vs_test_curves(index, ("MAC",))
    assert list(curves) == ["MAC (learned on the training set)", "MAC (learned on the test set)"]
    train_dims, train_values = curves["MAC (learned on the training set)"]
    test_dims, test_values = curves["MAC (learned on the test set)"]
    assert train_dims == [16, 24] and test_dims == [11]  # 12 database vectors give at most 11 components
    assert train_values[0] == pytest.approx(score_with_pca(whitening_features, "MAC", "train", 16, 0.5))
    assert test_values[0] == pytest.approx(score_with_pca(whitening_features, "MAC", "db", 11, 0.5))
    ds = whitening_features.dataset
    l2_ranks = rank(l2n(whitening_features.pooled("query", "MAC")), l2n(whitening_features.pooled("db", "MAC")))
    assert baselines == {"MAC": pytest.approx(compute_map(l2_ranks, ds.gnd).map)}


def test_whitening_gains(whitening_features):
    (gain,) = whitening_gains(RetrievalIndex(whitening_features), ("SPoC",))
    assert gain.method == "SPoC"
    assert gain.full == pytest.approx(score_with_pca(whitening_features, "SPoC", "train", 24, 0.5))
    assert gain.partial == pytest.approx(score_with_pca(whitening_features, "SPoC", "train", 24, 0.25))
    assert gain.best >= gain.full and gain.best_dim in (16, 24)
    assert gain.best == pytest.approx(score_with_pca(whitening_features, "SPoC", "train", gain.best_dim, 0.5))


def test_whitening_table_lists_the_allowed_dimensions_with_paired_gains(grouped_features):
    index = RetrievalIndex(grouped_features)
    top = index.max_dim("SPoC")  # 12 training images: 11 directions at most
    rows, intervals = whitening_table(index, ("SPoC",), dims=(4, 8, 64))
    assert [(r.method, r.whitened, r.dim) for r in rows] == [("SPoC", False, 16), ("SPoC @4", True, 4),
                                                            ("SPoC @8", True, 8), (f"SPoC @{top}", True, top)]
    assert rows[1].scores["mAP"] == pytest.approx(index.whitened_score("SPoC", 4))
    assert list(intervals) == ["SPoC @4, whitened", "SPoC @8, whitened", f"SPoC @{top}, whitened"]
    assert intervals["SPoC @4, whitened"].estimate == pytest.approx(rows[1].scores["mAP"] - rows[0].scores["mAP"])

