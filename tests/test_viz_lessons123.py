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
from cbir_lab.evaluation import Interval
from cbir_lab.studies.explain import pair_similarities
from cbir_lab.studies.whitening import WhiteningGain
from cbir_lab.viz.feature_maps import (
    format_layers,
    format_map_sizes,
    plot_cell_grid,
    plot_channels,
    plot_map_sizes,
    strongest_channels,
)
from cbir_lab.viz.pooling import (
    format_pair_similarities,
    format_similarity_gaps,
    mac_location,
    plot_pair_similarities,
    plot_pooling_channel,
    plot_rmac_grid,
    pooling_view,
    region_maxima,
)
from cbir_lab.viz.whitening import (
    MapCurveFigure,
    covariance,
    format_curves_at,
    format_whitening_gains,
    plot_covariances,
    plot_map_curves,
    plot_spectrum,
    whitening_view,
)


# ----- lesson 1 -----------------------------------------------------------------------------------

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
                plot_channels(image, fmap, [0, 1])):
        assert isinstance(fig, Figure)


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


def test_pooling_view_caption_names_the_setting():
    image = np.zeros((20, 20, 3), np.uint8)
    maps = [np.ones((2, 2, 2)), np.ones((2, 2, 2))]
    _, caption, sims = pooling_view([image] * 2, maps, ["a", "b"], "R-MAC (L=2)", 1, np.eye(2)[[0, 0]])
    assert caption.splitlines() == ["R-MAC, L = 2: 5 regions, one max each; channel 1",
                                    "R-MAC (L=2): descriptor[1] = 0.000 | cos(a, b) = 1.000"]
    assert sims.tolist() == [1.0]


def test_text_tables():
    curves = {"A": ([16, 32, 48], np.array([0.5, 0.6, 0.7])), "longer label": ([16], np.array([0.25]))}
    assert format_curves_at(curves, dims=(16, 32)).splitlines() == [
        "whitening      d=16   d=32    all",
        "A              0.50   0.60   0.70",
        "longer label   0.25      —   0.25",
    ]
    table = format_whitening_gains([WhiteningGain("MAC", 0.5, 0.625, 0.25, 0.75, 32)]).splitlines()
    assert table[1] == "MAC       0.500  0.625 +0.125    0.250 -0.250    0.750 @32"
    with_intervals = WhiteningGain("MAC", 0.5, 0.625, 0.25, 0.75, 32, Interval(0.125, -0.05, 0.3, 0.95, 25, 10),
                                   Interval(0.25, 0.1, 0.4, 0.95, 25, 10))
    assert format_whitening_gains([with_intervals]).splitlines()[1].endswith("@32    [-0.050, +0.300]     [+0.100, +0.400]")




def test_whitening_view_caption_and_a_blitted_frame_equals_a_full_render():
    live = MapCurveFigure()
    limits = ((0, 40), (0.4, 0.7))
    args = ({"SPoC": np.array([0.5, 0.6])}, [16, 32], {"SPoC": 0.55})
    png, caption = whitening_view(*args, 32, {"SPoC": 0.6}, "full whitening", live, limits)
    assert caption == "full whitening · d = 32: SPoC 0.600 (+0.050 vs L2 only 0.550)"
    whitening_view(*args, 16, {"SPoC": 0.5}, "full whitening", live, limits)  # blitted: only the curves redrawn
    blitted, _ = whitening_view(*args, 32, {"SPoC": 0.6}, "full whitening", live, limits)
    live.invalidate()
    assert whitening_view(*args, 32, {"SPoC": 0.6}, "full whitening", live, limits)[0] == blitted == png
