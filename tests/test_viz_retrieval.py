"""Tests for cbir_lab.viz.retrieval: contribution maps (exact decompositions) and figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from cbir_lab.pipeline import MethodScore
from cbir_lab.pooling import POOLINGS, regional_vectors
from cbir_lab.viz.retrieval import (
    Contribution,
    contribution_map,
    plot_contributions,
    plot_method_comparison,
    plot_precision_recall,
    plot_thumbnail_grid,
)
from cbir_lab.whitening import PCAWhitening, l2n


def _maps(seed: int, n: int, c: int = 6, h: int = 5, w: int = 7) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=generator, dtype=torch.float64).clamp(min=0) + 0.01


def _descriptor(x: torch.Tensor, pooling: str, whitening: PCAWhitening | None = None) -> np.ndarray:
    """The pipeline's descriptor of one (C, H, W) map, built independently of contribution_map."""
    if whitening is not None and pooling == "rmac":
        return whitening.transform_regions(regional_vectors(x[None]).numpy())[0].astype(np.float64)
    pooled = POOLINGS[pooling](x[None]).numpy()
    if whitening is None:
        return l2n(pooled)[0]
    return whitening.transform(pooled)[0].astype(np.float64)


def test_spoc_map_by_hand():
    # One channel, 1×2 map with values 3 and 4: g = 7, ||g|| = 7; q = (1,) → score 1, map (3/7, 4/7).
    x = torch.tensor([[[3.0, 4.0]]])
    result = contribution_map(x, np.array([1.0]), "SPoC")
    assert result.map.shape == (1, 2)
    np.testing.assert_allclose(result.map, [[3 / 7, 4 / 7]])
    assert result.offset == 0.0
    assert result.score == pytest.approx(1.0)


def test_mac_map_by_hand():
    # Two channels on a 2×2 map; channel 0 peaks at (0, 1) with 3, channel 1 at (1, 0) with 4.
    # MAC = (3, 4), ||·|| = 5; q = (0.6, 0.8) → score 0.6·3/5 + 0.8·4/5 = 1.
    x = torch.tensor([[[0.0, 3.0], [1.0, 0.0]], [[0.0, 2.0], [4.0, 1.0]]])
    result = contribution_map(x, np.array([0.6, 0.8]), "MAC")
    np.testing.assert_allclose(result.map, [[0.0, 0.36], [0.64, 0.0]])
    assert result.score == pytest.approx(1.0)


@pytest.mark.parametrize("method,pooling", [("SPoC", "spoc"), ("spoc_cp", "spoc_cp"), ("MAC", "mac"), ("GeM", "gem"), ("R-MAC", "rmac")])
def test_map_sums_to_the_pipeline_score_without_whitening(method, pooling):
    maps = _maps(1, 3)
    query = _descriptor(maps[0], pooling)
    for x in maps[1:]:
        expected = float(query @ _descriptor(x, pooling))
        result = contribution_map(x, query, method)
        assert result.offset == 0.0
        assert result.map.shape == x.shape[1:]
        assert result.map.sum() == pytest.approx(expected, abs=1e-9)
        assert result.score == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("method,pooling", [("SPoC", "spoc"), ("MAC", "mac"), ("GeM", "gem"), ("R-MAC", "rmac")])
def test_map_plus_mean_term_is_the_whitened_score(method, pooling):
    train = _maps(2, 40, h=6, w=6)
    if pooling == "rmac":
        vectors = np.concatenate([regional_vectors(t[None])[0].numpy() for t in train])
    else:
        vectors = POOLINGS[pooling](train).numpy()
    whitening = PCAWhitening(n_components=4).fit(vectors)
    maps = _maps(3, 3)
    query = _descriptor(maps[0], pooling, whitening)
    assert query.shape == (4,)
    for x in maps[1:]:
        expected = float(query @ _descriptor(x, pooling, whitening))
        result = contribution_map(x, query, method, whitening=whitening)
        assert result.offset != 0.0  # the mean term is real after whitening
        assert result.map.sum() + result.offset == pytest.approx(expected, abs=1e-5)
        assert result.located == pytest.approx(result.map.sum())


def test_mac_contributions_sit_on_the_maxima_only():
    x = _maps(4, 1)[0]
    query = np.ones(x.shape[0]) / np.sqrt(x.shape[0])
    result = contribution_map(x, query, "MAC")
    flat = x.reshape(x.shape[0], -1)
    argmax_cells = {int(i) for i in flat.argmax(dim=1)}
    nonzero = set(np.flatnonzero(result.map.ravel()).tolist())
    assert nonzero <= argmax_cells


def test_bad_inputs_are_named():
    x = _maps(5, 1)[0]
    with pytest.raises(ValueError, match="unknown method"):
        contribution_map(x, np.ones(6), "VLAD")
    with pytest.raises(ValueError, match="dimension"):
        contribution_map(x, np.ones(5), "SPoC")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        contribution_map(torch.ones(6, 5), np.ones(6), "SPoC")
    with pytest.raises(ValueError, match="fitted"):
        contribution_map(x, np.ones(6), "SPoC", whitening=PCAWhitening())


def test_plot_contributions_returns_a_figure():
    a = Image.new("RGB", (64, 48), (200, 30, 30))
    b = Image.new("RGB", (48, 64), (30, 30, 200))
    c = Contribution(np.array([[0.2, -0.1], [0.3, 0.1]]), 0.0, 0.5, "SPoC")
    fig = plot_contributions(a, b, c, c, status="correct")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 5  # four panels and the colour bar
    assert "0.500" in fig._suptitle.get_text()


def test_plot_precision_recall_labels_the_ap():
    fig = plot_precision_recall({"SPoC": (np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]))}, {"SPoC": 0.79})
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["SPoC (AP 0.790)"]
    with pytest.raises(ValueError):
        plot_precision_recall({})


def test_plot_thumbnail_grid_layout():
    images = [Image.new("RGB", (20, 10), (i * 40, 0, 0)) for i in range(5)]
    fig = plot_thumbnail_grid(images, labels=[f"q{i}" for i in range(5)], statuses=["correct", None, "wrong", None, "junk"], ncols=3)
    assert len(fig.axes) == 6  # 2 rows × 3 columns, the last one hidden
    assert [ax.get_title() for ax in fig.axes[:5]] == ["q0", "q1", "q2", "q3", "q4"]
    with pytest.raises(ValueError, match="labels"):
        plot_thumbnail_grid(images, labels=["a"])


def test_plot_method_comparison_draws_one_bar_per_row():
    rows = [
        MethodScore("SPoC", False, False, 8, {"mAP": 0.5}),
        MethodScore("SPoC", True, False, 8, {"mAP": 0.6}),
        MethodScore("MAC", False, False, 8, {"mAP": 0.4}),
        MethodScore("MAC", True, False, 8, {"mAP": 0.45}),
    ]
    fig = plot_method_comparison(rows)
    heights = sorted(round(p.get_height(), 2) for p in fig.axes[0].patches)
    assert heights == [0.4, 0.45, 0.5, 0.6]
    with pytest.raises(ValueError, match="no score"):
        plot_method_comparison(rows, score="N-S")
