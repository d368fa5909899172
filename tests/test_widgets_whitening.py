"""The lesson-3 whitening lab, driven by its controls; its numbers come from cbir_lab.index."""

from __future__ import annotations

import pytest
import torch

from cbir_lab.evaluation import compute_map
from cbir_lab.index import RetrievalIndex
from cbir_lab.search import rank
from cbir_lab.whitening import PCAWhitening
from cbir_lab.widgets.whitening import WhiteningLab
from tests.conftest import make_features


@pytest.fixture(scope="module")
def features():
    """4 groups × 3 database views and 1 query each, 40 training maps; each group shares a channel pattern."""
    generator = torch.Generator().manual_seed(0)
    patterns = torch.rand(4, 24, 1, 1, generator=generator) * 0.6

    def fmap(group=None):
        noise = torch.rand(24, 3, 3, generator=generator)
        return noise if group is None else noise + patterns[group]

    return make_features([fmap(g) for g in range(4)], [fmap(g) for g in range(4) for _ in range(3)],
                         [fmap() for _ in range(40)], [{"ok": [3 * g, 3 * g + 1, 3 * g + 2], "junk": []} for g in range(4)])


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
    pca = PCAWhitening(n_components=16, power=0.0).fit(features.pooled("train", "SPoC"))
    ranks = rank(pca.transform(features.pooled("query", "SPoC")), pca.transform(features.pooled("db", "SPoC")))
    assert lab.scores["SPoC"] == pytest.approx(compute_map(ranks, features.dataset.gnd).map)
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
    empty = make_features(features.query_maps, features.db_maps, (), features.dataset.gnd)
    with pytest.raises(ValueError, match="no training split"):
        WhiteningLab(empty)


def test_lab_shares_its_index(features):
    index = RetrievalIndex(features)
    lab = WhiteningLab(index)
    assert lab.index is index
    assert lab.scores["MAC"] == index.whitened_score("MAC", lab.dim.value, 0.5)
