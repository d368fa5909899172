"""Image panels composed in numpy (cbir_lab.viz.panels) and the explorers' pictures, read back pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cbir_lab.viz.feature_maps import channel_panel
from cbir_lab.viz.panels import Canvas, blend, colorize, png_bytes, side_by_side, stretch
from cbir_lab.viz.pooling import method_channel_panel

CYAN = (0, 255, 255)


def test_colorize_maps_the_range_to_the_ends_of_the_map():
    rgb = colorize(np.array([[0.0, 0.5, 1.0]]), "gray")
    assert rgb.dtype == np.uint8 and rgb[0, 0].tolist() == [0, 0, 0] and rgb[0, 2].tolist() == [255, 255, 255]
    assert colorize(np.array([[2.0, 2.0]]), "gray").tolist() == [[[0, 0, 0], [0, 0, 0]]]  # constant: no NaN
    assert colorize(np.array([[5.0]]), "gray", vmin=0, vmax=10)[0, 0, 0] == 127


def test_stretch_gives_each_cell_a_block_of_pixels():
    cells = np.array([[1, 2, 3], [4, 5, 6]])
    pixels = stretch(cells, 4, 6)
    assert pixels.shape == (4, 6)
    assert pixels[:2, :2].tolist() == [[1, 1], [1, 1]] and pixels[3, 5] == 6


def test_blend_mixes_in_proportion():
    assert blend(np.zeros((1, 1, 3), np.uint8), np.full((1, 1, 3), 200, np.uint8), 0.25).tolist() == [[[50, 50, 50]]]


def test_canvas_marks_land_where_asked():
    canvas = Canvas((40, 20), background=(0, 0, 0))
    canvas.cell_grid((2, 4))  # lines at y = 10 and x = 10, 20, 30
    pixels = np.asarray(canvas.image)
    assert pixels[10, 5].tolist() == [255, 255, 255] and pixels[5, 20].tolist() == [255, 255, 255]
    assert pixels[5, 5].tolist() == [0, 0, 0]
    canvas.star(30, 5, radius=4)
    assert np.asarray(canvas.image)[5, 30].tolist() == list(CYAN)
    assert side_by_side([canvas.image, canvas.image], gap=2).size == (82, 20)
    assert png_bytes(canvas.image)[:4] == b"\x89PNG"


def test_channel_panel_puts_the_star_on_the_channels_maximum():
    image = np.zeros((60, 90, 3), np.uint8)
    fmap = np.zeros((2, 2, 3), np.float32)
    fmap[1, 1, 2] = 5.0  # channel 1 peaks at (y=1, x=2): the bottom-right cell
    panel = np.asarray(channel_panel(image, fmap, 1, height=60))
    # the overlay is 90 × 60 pixels, 30 × 30 per cell: the peak cell's centre is (75, 45)
    assert panel[45, 75].tolist() == list(CYAN)
    assert panel[15, 15].tolist() != list(CYAN)
    with pytest.raises(ValueError, match="channel must be in 0..1"):
        channel_panel(image, fmap, 2)
    assert channel_panel(image, np.full((1, 2, 2), -1.0), 0).size[1] == 280  # a constant channel draws


def test_method_panels_show_what_each_pooling_keeps():
    image = np.zeros((60, 60, 3), np.uint8)
    fmap = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6)
    picture, title = method_channel_panel(image, fmap, "MAC", 1, height=60)
    assert title == "MAC keeps one cell: max = 71.00 at (y=5, x=5); channel 1"
    assert np.asarray(picture)[55, 55].tolist() == list(CYAN)  # 10 px a cell: cell (5, 5)'s centre
    _, title = method_channel_panel(image, fmap, "R-MAC", 0, height=60)
    assert title.startswith("R-MAC, L = 3: 14 regions")
    _, title = method_channel_panel(image, fmap, "SPoC+prior", 0, height=60)
    assert title.startswith("SPoC+prior: sums all cells = ")
    gem_map = np.zeros((1, 2, 2))
    gem_map[0] = [[1.0, 2.0], [2.0, 3.0]]  # cubes 1, 8, 8, 27: GeM = (44 / 4) ** (1/3) = 2.22
    _, title = method_channel_panel(np.zeros((20, 20, 3), np.uint8), gem_map, "GeM", 0)
    assert "= 2.22" in title
