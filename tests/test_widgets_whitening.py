"""The lesson-3 whitening lab: its pure functions against PCAWhitening, and the widget driven by its controls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.pipeline import DatasetFeatures
from cbir_lab.whitening import PCAWhitening, l2n
from cbir_lab.widgets.whitening import (
    WhiteningGain,
    WhiteningLab,
    dimension_grid,
    fit_basis,
    format_curves_at,
    format_whitening_gains,
    map_curve,
    score_vectors,
    train_vs_test_curves,
    whitened_vectors,
    whitening_gains,
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
    assert dimension_grid(256) == list(range(16, 257, 16))  # 16 points: the plain grid
    # beyond 16 points the step grows by whole multiples of 16: 1280 / (16 · 16) → 5 · 16 = 80
    assert dimension_grid(1280) == list(range(16, 1281, 80)) + [1280]
    with pytest.raises(ValueError, match="max_dim"):
        dimension_grid(0)


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


def _score_with_pca(features, method, part, d, power):
    """The mAP of ``PCAWhitening`` learned on ``part``: the independent reference of the sweeps."""
    pca = PCAWhitening(n_components=d, power=power).fit(features.pooled(part, method))
    ds = features.dataset
    return score_vectors(pca.transform(features.pooled("query", method)), pca.transform(features.pooled("db", method)),
                         ds.gnd, ds.protocol)


def test_train_vs_test_curves(features):
    curves, baselines = train_vs_test_curves(features, ("MAC",))
    assert list(curves) == ["MAC (learned on the training set)", "MAC (learned on the test set)"]
    train_dims, train_values = curves["MAC (learned on the training set)"]
    test_dims, test_values = curves["MAC (learned on the test set)"]
    assert train_dims == [16, 24] and test_dims == [11]  # 12 database vectors give at most 11 components
    assert train_values[0] == pytest.approx(_score_with_pca(features, "MAC", "train", 16, 0.5))
    assert test_values[0] == pytest.approx(_score_with_pca(features, "MAC", "db", 11, 0.5))
    ds = features.dataset
    assert baselines == {"MAC": pytest.approx(score_vectors(l2n(features.pooled("query", "MAC")),
                                                           l2n(features.pooled("db", "MAC")), ds.gnd, ds.protocol))}


def test_whitening_gains(features):
    (gain,) = whitening_gains(features, ("SPoC",))
    assert gain.method == "SPoC"
    assert gain.full == pytest.approx(_score_with_pca(features, "SPoC", "train", 24, 0.5))
    assert gain.partial == pytest.approx(_score_with_pca(features, "SPoC", "train", 24, 0.25))
    assert gain.best >= gain.full and gain.best_dim in (16, 24)
    assert gain.best == pytest.approx(_score_with_pca(features, "SPoC", "train", gain.best_dim, 0.5))


def test_text_tables():
    curves = {"A": ([16, 32, 48], np.array([0.5, 0.6, 0.7])), "longer label": ([16], np.array([0.25]))}
    assert format_curves_at(curves, dims=(16, 32)).splitlines() == [
        "whitening      d=16   d=32    all",
        "A              0.50   0.60   0.70",
        "longer label   0.25      —   0.25",
    ]
    table = format_whitening_gains([WhiteningGain("MAC", 0.5, 0.625, 0.25, 0.75, 32)]).splitlines()
    assert table[1] == "MAC       0.500  0.625 +0.125    0.250 -0.250    0.750 @32  "


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


def test_lab_announces_slow_work_on_large_databases(lab):
    shown = []
    lab.out.observe(lambda change: shown.append(change["new"]), names="outputs")
    lab.whitening.value = 0.25  # a new setting, on 12 database vectors: no note
    assert all(output["output_type"] != "stream" or "learning" not in output["text"] for out in shown for output in out)
    lab.slow_database_size = 10  # now 12 vectors count as large
    shown.clear()
    lab.whitening.value = 0.0
    assert "learning the PCA and scoring every dimension on 12 database vectors" in shown[0][0]["text"]
    assert "image/png" in shown[-1][0]["data"]  # then the figure replaces the note
    shown.clear()
    lab.whitening.value = 0.25  # memoised: no note
    assert len(shown) == 1 and "image/png" in shown[0][0]["data"]


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
