"""Figures and helpers of lessons 1-3 (cbir_lab.viz.feature_maps, .pooling, .whitening) on small hand-made inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from cbir_lab.backbones import load_backbone
from cbir_lab.pooling import rmac_regions
from cbir_lab.viz.feature_maps import (
    format_layers,
    format_map_sizes,
    layer_feature_maps,
    measure_map_sizes,
    network_input,
    plot_cell_grid,
    plot_channel,
    plot_channels,
    plot_map_sizes,
    strongest_channels,
)
from cbir_lab.viz.pooling import (
    mac_location,
    pair_similarities,
    plot_method_channel,
    plot_pair_similarities,
    plot_pooling_channel,
    plot_rmac_grid,
    pooled_descriptor,
    format_pair_similarities,
    format_similarity_gaps,
    region_maxima,
    similarity_gaps,
)
from cbir_lab.viz.whitening import covariance, plot_covariances, plot_map_curves, plot_spectrum


@pytest.fixture(scope="module")
def random_backbone():
    """EfficientNet-Lite0 with random weights: the right shapes, no weight file needed."""
    torch.manual_seed(0)
    return load_backbone("efficientnet_lite0", weights=None, device="cpu")


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (50, 100, 3), dtype=np.uint8))


# ----- lesson 1 -----------------------------------------------------------------------------------

def test_network_input_keeps_the_aspect_ratio(photo):
    assert network_input(photo, max_side=64).shape == (32, 64, 3)


def test_layer_feature_maps_gives_every_layer_at_its_stride(random_backbone, photo):
    maps = layer_feature_maps(random_backbone, photo, max_side=96)  # a 48 x 96 input
    assert list(maps) == ["blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.6", "conv_head"]
    assert maps["blocks.0"].shape == (16, 24, 48)  # stride 2
    assert maps["blocks.2"].shape == (40, 6, 12)  # stride 8
    assert maps["conv_head"].shape == (1280, 2, 3)  # ceil(48 / 32), ceil(96 / 32)


def test_measured_sizes_round_up(random_backbone):
    assert measure_map_sizes(random_backbone, [32, 33, 64, 65]) == [(1, 2), (2, 2), (2, 2), (3, 2)]
    assert measure_map_sizes(random_backbone, [32], width=97) == [(1, 4)]


def test_strongest_channels_breaks_ties_by_mean():
    fmap = np.zeros((4, 2, 2))
    fmap[1, 0, 0] = 6.0  # peak 6, mean 1.5
    fmap[2] = 6.0  # peak 6, mean 6: wins the tie
    fmap[3, 1, 1] = 2.0
    assert strongest_channels(fmap, 3) == [2, 1, 3]


def test_lesson1_text_tables():
    assert format_layers({"blocks.0": (16, 2), "conv_head": (1280, 32)}).splitlines() == [
        "layer     channels C  stride s",
        "blocks.0          16         2",
        "conv_head       1280        32",
    ]
    maps = {"a": np.zeros((3, 2, 3)), "b": np.zeros((5, 1, 1))}
    layers = {"a": (3, 32), "b": (5, 64)}
    lines = format_map_sizes((50, 90), maps, layers).splitlines()
    assert lines[0] == "input: 50 x 90 pixels"
    assert lines[1] == "a C=3     H'=2    W'=3    formula: (2, 3)"  # ⌈50/32⌉ = 2, ⌈90/32⌉ = 3
    assert lines[2].endswith("formula: (1, 2)")  # ⌈50/64⌉ = 1, ⌈90/64⌉ = 2
    floor = format_map_sizes((50, 90), maps, layers, size_fn=lambda h, w, s: (h // s, w // s))
    assert floor.splitlines()[1].endswith("formula: (1, 2)")  # a student's ⌊⌋ shows up as a mismatch


def test_lesson1_figures_are_figures():
    image = np.zeros((64, 96, 3), np.uint8)
    fmap = np.random.default_rng(0).random((5, 2, 3))
    for fig in (plot_map_sizes([32, 64], [(1, 2), (2, 4)], 32), plot_cell_grid(image, {"a": fmap}),
                plot_channels(image, fmap, [0, 1]), plot_channel(image, fmap, 4)):
        assert isinstance(fig, Figure)
    with pytest.raises(ValueError, match="channel must be in 0..4"):
        plot_channel(image, fmap, 5)


# ----- lesson 2 -----------------------------------------------------------------------------------

def test_mac_location_first_maximum():
    assert mac_location(np.array([[0, 3, 1], [3, 0, 0]])) == (0, 1)


def test_region_maxima_on_a_square_map():
    values = np.zeros((4, 4))
    values[3, 0] = 5.0
    values[0, 3] = 2.0
    result = region_maxima(values, levels=2)
    assert [r for r, _, _ in result] == rmac_regions(4, 4, 2)  # 1 + 4 regions
    whole, *quarters = result
    assert whole[1:] == (5.0, (3, 0))
    # the level-2 regions are 2x2 quadrants (side floor(2*4/3) = 2); the top-right one holds the 2
    assert ((0, 2, 2, 2), 2.0, (0, 3)) in quarters


def test_pooled_descriptor_matches_hand_values():
    fmap = np.zeros((2, 2, 2), np.float32)
    fmap[0] = [[3.0, 0.0], [0.0, 0.0]]
    fmap[1] = [[1.0, 1.0], [1.0, 1.0]]
    # MAC (3, 1); SPoC (3, 4): both L2-normalised
    assert np.allclose(pooled_descriptor(fmap, "MAC"), np.array([3, 1]) / math.sqrt(10))
    assert np.allclose(pooled_descriptor(fmap, "SPoC"), [0.6, 0.8])
    with pytest.raises(ValueError, match="unknown method"):
        pooled_descriptor(fmap, "max")


def test_pair_similarities_of_identical_maps_is_one():
    fmap = np.random.default_rng(0).random((8, 3, 4))
    sims = pair_similarities([fmap, fmap, fmap[::-1].copy()])
    for method, values in sims.items():
        assert values[0] == pytest.approx(1.0, abs=1e-6), method
        assert values[1] < 1.0


def test_similarity_gaps_by_hand():
    # 1 query; database: 2 views of its scene "a-1", one of "a-2" (same photo), one of "b"
    q = np.array([[1.0, 0.0]])
    db = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.0, 1.0]])
    gaps = similarity_gaps(q, db, [{"ok": [0, 1]}], ["a-1", "a-1", "a-2", "b"])
    assert gaps["positive"] == pytest.approx(0.5)
    assert gaps["negative"] == pytest.approx(0.3)
    assert gaps["hard negative"] == pytest.approx(0.6)
    assert gaps["hard gap"] == pytest.approx(-0.1)


def test_lesson2_text_tables():
    table = format_pair_similarities({"SPoC": np.array([0.75, 0.5]), "R-MAC": np.array([0.25, 0.5])})
    assert table.splitlines() == [
        "method same scene other scene  margin",
        "SPoC         0.75        0.50   +0.25",
        "R-MAC        0.25        0.50   -0.25",
    ]
    gaps = {"MAC": {"positive": 0.75, "negative": 0.5, "hard negative": 0.625, "gap": 0.25, "hard gap": 0.125}}
    assert format_similarity_gaps(gaps, digits=3).splitlines()[1] == "MAC       0.750    0.500    0.625    0.250    0.125"


def test_lesson2_figures_are_figures():
    image = np.zeros((60, 80, 3), np.uint8)
    fmap = np.random.default_rng(0).random((3, 6, 8))
    figs = [plot_pooling_channel(image, fmap, 1), plot_rmac_grid(image, fmap, 2, levels=3),
            plot_pair_similarities([image] * 3, ["a", "b", "c"], pair_similarities([fmap, fmap, fmap * 0.5]))]
    figs += [plot_method_channel(image, fmap, m, 0, center=True) for m in ("SPoC", "MAC", "R-MAC", "GeM")]
    assert all(isinstance(f, Figure) for f in figs)
    # one rectangle per R-MAC region, over the level panels
    assert sum(len(ax.patches) for ax in figs[1].axes) == len(rmac_regions(6, 8, 3))


# ----- lesson 3 -----------------------------------------------------------------------------------

def test_covariance_by_hand():
    vectors = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 1.0], [2.0, -1.0]])
    # mean (2, 0); var x = (1 + 1 + 0 + 0) / 3; var y = 2 / 3; cov 0
    assert np.allclose(covariance(vectors), np.diag([2 / 3, 2 / 3]))
    with pytest.raises(ValueError, match="n >= 2"):
        covariance(np.ones((1, 3)))


def test_lesson3_figures_are_figures():
    figs = [plot_spectrum({"SPoC": np.array([4.0, 2.0, 1.0, 0.0])}),
            plot_covariances({"a": np.eye(3), "b": np.ones((3, 3))}),
            plot_map_curves([16, 32], {"SPoC": np.array([0.5, 0.6])}, baselines={"SPoC": 0.55}, marker=16,
                            current={"SPoC": 0.5}),
            plot_map_curves([], {"MAC (x)": ([16, 32], np.array([0.4, 0.5]))}, styles={"MAC (x)": "--"})]
    assert all(isinstance(f, Figure) for f in figs)
    assert len(figs[2].axes[0].lines) == 4  # the curve, the baseline, the marker line, the current dot
