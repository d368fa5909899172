"""The lesson-3 whitening lab, driven by its controls; its numbers come from cbir_lab.index."""

from __future__ import annotations

import pytest
import torch

from cbir_lab.evaluation import compute_map
from cbir_lab.index import RetrievalIndex
from cbir_lab.search import rank
from cbir_lab.whitening import PCAWhitening
from cbir_lab.widgets.whitening import WhiteningLab
from tests.fixtures_features import make_features


@pytest.fixture(scope="module")
def features(whitening_features):
    """4 groups × 3 database views and 1 query each, 40 training maps (``whitening_features`` of conftest)."""
    return whitening_features


@pytest.fixture
def lab(features):
    return WhiteningLab(features)


def test_lab_initial_state(lab):
    assert lab.dim.max == 24 and lab.dim.value == 24  # min(128, max)
    assert lab.whitening.value == 0.5 and lab.training.value == "train"
    assert set(lab.scores) == {"SPoC", "MAC"}
    assert lab.caption.startswith("whitening on (λ^-1/2), learned on the separate training set · d = 24: SPoC")
    assert lab.view.value[:4] == b"\x89PNG"


def test_lab_dimension_and_power_update_scores(lab, features):
    lab.dim.value = 16
    lab.whitening.value = 0.0
    pca = PCAWhitening(n_components=16, power=0.0).fit(features.pooled("train", "SPoC"))
    ranks = rank(pca.transform(features.pooled("query", "SPoC")), pca.transform(features.pooled("db", "SPoC")))
    assert lab.scores["SPoC"] == pytest.approx(compute_map(ranks, features.dataset.gnd).map)
    assert "d = 16" in lab.caption and "off (PCA only)" in lab.caption


def test_lab_precomputes_its_curves_and_announces_a_refit_on_a_large_database(features, monkeypatch):
    # 12 database vectors count as large here: the lab precomputes the training split's curves only
    monkeypatch.setattr(WhiteningLab, "slow_database_size", 10)
    lab = WhiteningLab(features)
    shown = []
    lab.out.observe(lambda change: shown.append(change["new"]), names="outputs")
    lab.whitening.value = 0.25  # precomputed when built: no note
    assert len(shown) == 1 and shown[0][0]["text"].startswith("whitening partial")
    shown.clear()
    lab.training.value = "db"  # a whitening learned on the database: computed now, and said first
    assert "learning the PCA and scoring every dimension on 12 database vectors" in shown[0][0]["text"]
    assert shown[-1][0]["text"].startswith("whitening partial (λ^-1/4), learned on the test database")
    shown.clear()
    lab.training.value = "train"
    lab.training.value = "db"  # now memoised: no note
    assert all("learning the PCA" not in out[0]["text"] for out in shown)


def test_lab_learning_on_the_test_set_caps_the_dimension(lab):
    lab.training.value = "db"  # 12 database vectors: at most 11 components
    assert lab.dim.max == 11 and lab.dim.value == 11
    assert "test database" in lab.caption
    lab.training.value = "train"
    assert lab.dim.max == 24


def test_lab_repr_is_stable(lab):
    assert repr(lab) == "WhiteningLab(learn_on='train', power=0.5, dimensions=24)"
    assert lab._repr_mimebundle_()["text/plain"] == repr(lab)


def test_lab_needs_a_training_split(features):
    empty = make_features(features.query_maps, features.db_maps, (), features.dataset.gnd)
    with pytest.raises(ValueError, match="no training split"):
        WhiteningLab(empty)


def test_lab_shares_its_index(features):
    index = RetrievalIndex(features)
    lab = WhiteningLab(index)
    assert lab.index is index
    assert lab.scores["MAC"] == index.whitened_score("MAC", lab.dim.value, 0.5)


def test_lab_offers_a_larger_whitening_set_when_the_features_carry_one(features):
    from dataclasses import replace

    generator = torch.Generator().manual_seed(1)
    big = [torch.rand(features.train_maps[0].shape, generator=generator) for _ in range(10)]
    with_set = replace(features, whitening_sets={"imagenet-sample": big},
                       whitening_set_sources={"imagenet-sample": "10 random maps"}, _pooled={})
    lab = WhiteningLab(with_set)
    assert lab.training.options[-1] == ("imagenet-sample (10 images)", "imagenet-sample")
    lab.training.value = "imagenet-sample"  # 10 vectors: at most 9 components
    assert lab.dim.max == 9
    pca = PCAWhitening(n_components=lab.dim.value).fit(with_set.pooled("imagenet-sample", "SPoC"))
    expected = compute_map(rank(*(pca.transform(with_set.pooled(p, "SPoC")) for p in ("query", "db"))),
                           features.dataset.gnd).map
    assert lab.scores["SPoC"] == pytest.approx(expected)
    assert "imagenet-sample (10 images)" in lab.caption
