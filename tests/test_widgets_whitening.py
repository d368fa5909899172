"""The lesson-3 whitening lab: its pure functions against PCAWhitening, and the widget driven by its controls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.pipeline import DatasetFeatures
from cbir_lab.whitening import PCAWhitening
from cbir_lab.widgets.whitening import (
    WhiteningLab,
    dimension_grid,
    fit_basis,
    map_curve,
    score_vectors,
    whitened_vectors,
)


@pytest.fixture(scope="module")
def features() -> DatasetFeatures:
    """4 groups × 3 database views and 1 query each, 40 training maps; each group shares a channel pattern."""
    generator = torch.Generator().manual_seed(0)
    patterns = torch.rand(4, 24, 1, 1, generator=generator) * 0.6

    def fmap(group=None):
        noise = torch.rand(24, 3, 3, generator=generator)
        return noise if group is None else noise + patterns[group]

    fake = lambda name: Path(f"/nonexistent/{name}.png")  # never read: the maps are given
    dataset = RetrievalDataset(
        name="toy",
        db_images=tuple(fake(f"g{g}_{i}") for g in range(4) for i in range(3)),
        query_images=tuple(fake(f"q{g}") for g in range(4)),
        gnd=tuple({"ok": [3 * g, 3 * g + 1, 3 * g + 2], "junk": []} for g in range(4)),
        train_images=tuple(fake(f"t{i}") for i in range(40)),
        groups=tuple(f"g{g}" for g in range(4) for _ in range(3)),
    )
    return DatasetFeatures(dataset, "toy", 64, [fmap(g) for g in range(4)], [fmap(g) for g in range(4) for _ in range(3)],
                           [fmap() for _ in range(40)])


def test_dimension_grid():
    assert dimension_grid(40) == [16, 32, 40]
    assert dimension_grid(32) == [16, 32]
    assert dimension_grid(10) == [10]


def test_whitened_vectors_equal_pca_whitening(features):
    train, q, db = (features.pooled(p, "SPoC") for p in ("train", "query", "db"))
    basis = fit_basis(train, q, db)
    assert basis.max_dim == 24  # D = 24 < n - 1 = 39
    for power in (0.0, 0.25, 0.5):
        got_q, got_db = whitened_vectors(basis, 10, power)
        reference = PCAWhitening(n_components=10, power=power).fit(train)
        assert np.allclose(got_q, reference.transform(q), atol=1e-5)
        assert np.allclose(got_db, reference.transform(db), atol=1e-5)
    with pytest.raises(ValueError, match="dim must be in 1..24"):
        whitened_vectors(basis, 25, 0.5)


def test_map_curve_scores_each_dimension(features):
    train, q, db = (features.pooled(p, "MAC") for p in ("train", "query", "db"))
    basis = fit_basis(train, q, db)
    ds = features.dataset
    curve = map_curve(basis, [4, 24], 0.5, ds.gnd, ds.protocol)
    expected = score_vectors(*whitened_vectors(basis, 24, 0.5), ds.gnd, ds.protocol)
    assert curve.shape == (2,) and curve[1] == pytest.approx(expected)
    assert 0.0 <= curve.min() <= curve.max() <= 1.0


def test_score_vectors_perfect_ranking():
    # each query equals its group's database vectors: mAP 1
    q = np.eye(2, dtype=np.float32)
    db = np.repeat(np.eye(2, dtype=np.float32), 2, axis=0)
    assert score_vectors(q, db, [{"ok": [0, 1], "junk": []}, {"ok": [2, 3], "junk": []}], "standard") == 1.0


@pytest.fixture
def lab(features):
    return WhiteningLab(features)


def test_lab_initial_state(lab):
    assert lab.dim.max == 24 and lab.dim.value == 24  # min(128, max)
    assert lab.whitening.value == 0.5 and lab.training.value == "train"
    assert set(lab.scores) == {"SPoC", "MAC"}
    assert lab.caption.startswith("d = 24: SPoC")


def test_lab_dimension_and_power_update_scores(lab, features):
    lab.dim.value = 16
    lab.whitening.value = 0.0
    train, q, db = (features.pooled(p, "SPoC") for p in ("train", "query", "db"))
    ds = features.dataset
    expected = score_vectors(*whitened_vectors(fit_basis(train, q, db), 16, 0.0), ds.gnd, ds.protocol)
    assert lab.scores["SPoC"] == pytest.approx(expected)
    assert "d = 16" in lab.caption
    assert "off (PCA only)" in lab.figure.axes[0].get_title()


def test_lab_learning_on_the_test_set_caps_the_dimension(lab):
    lab.training.value = "db"  # 12 database vectors: at most 11 components
    assert lab.dim.max == 11 and lab.dim.value == 11
    assert "test database" in lab.figure.axes[0].get_title()
    lab.training.value = "train"
    assert lab.dim.max == 24


def test_lab_repr_is_stable(lab):
    assert repr(lab) == "WhiteningLab(learn_on='train', power=0.5, dimensions=24)"
    assert lab._repr_mimebundle_()["text/plain"] == repr(lab)


def test_lab_needs_a_training_split(features):
    empty = DatasetFeatures(features.dataset, "toy", 64, features.query_maps, features.db_maps, [])
    with pytest.raises(ValueError, match="no training split"):
        WhiteningLab(empty)
