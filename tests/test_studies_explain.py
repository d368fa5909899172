"""Contribution maps (cbir_lab.studies.explain): each sums to the score the pipeline computes, built independently."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cbir_lab.index import RetrievalIndex, retrieve
from cbir_lab.pooling import Pooling, regional_vectors
from cbir_lab.studies.explain import contribution_map, explain_match, pair_similarities
from cbir_lab.whitening import PCAWhitening, l2n


def _maps(seed: int, n: int, c: int = 6, h: int = 5, w: int = 7) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=generator, dtype=torch.float64).clamp(min=0) + 0.01


def _descriptor(x: torch.Tensor, pooling: str, whitening: PCAWhitening | None = None) -> np.ndarray:
    """The pipeline's descriptor of one (C, H, W) map, built independently of contribution_map."""
    pooling = Pooling.parse(pooling)
    if whitening is not None and pooling.regional:
        return whitening.transform_regions(regional_vectors(x[None]).numpy())[0].astype(np.float64)
    pooled = pooling(x[None]).numpy()
    if whitening is None:
        return l2n(pooled)[0]
    return whitening.transform(pooled)[0].astype(np.float64)


def test_spoc_map_by_hand():
    # One channel, 1×2 map with values 3 and 4: g = 7, ||g|| = 7; q = (1,) → score 1, map (3/7, 4/7).
    result = contribution_map(torch.tensor([[[3.0, 4.0]]]), np.array([1.0]), "SPoC")
    np.testing.assert_allclose(result.map, [[3 / 7, 4 / 7]])
    assert result.offset == 0.0 and result.score == pytest.approx(1.0)


def test_mac_map_by_hand():
    # Channel 0 peaks at (0, 1) with 3, channel 1 at (1, 0) with 4: MAC = (3, 4), ||·|| = 5;
    # q = (0.6, 0.8) → score 0.6·3/5 + 0.8·4/5 = 1.
    x = torch.tensor([[[0.0, 3.0], [1.0, 0.0]], [[0.0, 2.0], [4.0, 1.0]]])
    result = contribution_map(x, np.array([0.6, 0.8]), "MAC")
    np.testing.assert_allclose(result.map, [[0.0, 0.36], [0.64, 0.0]])
    assert result.score == pytest.approx(1.0)


@pytest.mark.parametrize("pooling", ["SPoC", "SPoC+prior", "MAC", "GeM", "R-MAC"])
def test_map_sums_to_the_pipeline_score_without_whitening(pooling):
    maps = _maps(1, 3)
    query = _descriptor(maps[0], pooling)
    for x in maps[1:]:
        expected = float(query @ _descriptor(x, pooling))
        result = contribution_map(x, query, pooling)
        assert result.offset == 0.0 and result.map.shape == x.shape[1:]
        assert result.map.sum() == pytest.approx(expected, abs=1e-9)
        assert result.score == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("pooling", ["SPoC", "MAC", "GeM", "R-MAC"])
def test_map_plus_mean_term_is_the_whitened_score(pooling):
    train = _maps(2, 40, h=6, w=6)
    if Pooling.parse(pooling).regional:
        vectors = np.concatenate([regional_vectors(t[None])[0].numpy() for t in train])
    else:
        vectors = Pooling.parse(pooling)(train).numpy()
    whitening = PCAWhitening(n_components=4).fit(vectors)
    maps = _maps(3, 3)
    query = _descriptor(maps[0], pooling, whitening)
    for x in maps[1:]:
        expected = float(query @ _descriptor(x, pooling, whitening))
        result = contribution_map(x, query, pooling, whitening=whitening)
        assert result.offset != 0.0  # the mean term is real after whitening
        assert result.map.sum() + result.offset == pytest.approx(expected, abs=1e-5)
        assert result.located == pytest.approx(result.map.sum())


def test_mac_contributions_sit_on_the_maxima_only():
    x = _maps(4, 1)[0]
    result = contribution_map(x, np.ones(x.shape[0]) / np.sqrt(x.shape[0]), "MAC")
    argmax_cells = {int(i) for i in x.reshape(x.shape[0], -1).argmax(dim=1)}
    assert set(np.flatnonzero(result.map.ravel()).tolist()) <= argmax_cells


def test_contribution_map_names_bad_inputs():
    x = _maps(5, 1)[0]
    with pytest.raises(ValueError, match="unknown pooling"):
        contribution_map(x, np.ones(6), "VLAD")
    with pytest.raises(ValueError, match="dimension"):
        contribution_map(x, np.ones(5), "SPoC")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        contribution_map(torch.ones(6, 5), np.ones(6), "SPoC")
    with pytest.raises(ValueError, match="fitted"):
        contribution_map(x, np.ones(6), "SPoC", whitening=PCAWhitening())


@pytest.mark.parametrize("pooling", ["SPoC", "MAC", "R-MAC", "GeM"])
@pytest.mark.parametrize("whiten", [False, True])
def test_explain_match_sums_to_the_ranking_score(grouped_features, pooling, whiten):
    index = RetrievalIndex(grouped_features)
    result = retrieve(index, 1, pooling, whiten, k=3)
    query_side, result_side = explain_match(index, 1, int(result.indices[0]), pooling, whiten)
    assert result_side.map.sum() + result_side.offset == pytest.approx(result.scores[0], abs=1e-4)
    assert query_side.score == pytest.approx(result.scores[0], abs=1e-4)
    assert result_side.map.shape == tuple(grouped_features.db_maps[0].shape[1:])


def test_pair_similarities_by_hand():
    same = np.ones((2, 2, 2), np.float32)
    other = np.zeros((2, 2, 2), np.float32)
    other[0, 0, 0] = 1.0  # MAC (1, 0), SPoC (1, 0): cos with (1, 1)/√2 is 1/√2
    table = pair_similarities([same, same, other], ["MAC", "SPoC", "GeM (p=4)"])
    assert list(table) == ["MAC", "SPoC", "GeM (p=4)"]
    np.testing.assert_allclose(table["MAC"], [1.0, 2 ** -0.5], rtol=1e-6)
    np.testing.assert_allclose(table["SPoC"], [1.0, 2 ** -0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="anchor"):
        pair_similarities([same], ["MAC"])


def test_pair_similarities_of_identical_maps_is_one():
    fmap = np.random.default_rng(0).random((8, 3, 4))
    sims = pair_similarities([fmap, fmap, fmap[::-1].copy()])
    assert list(sims) == ["SPoC", "MAC", "R-MAC", "GeM"]
    for name, values in sims.items():
        assert values[0] == pytest.approx(1.0, abs=1e-6), name
        assert values[1] < 1.0

