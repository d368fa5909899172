"""Figures for lesson 1 (feature maps): what a conv feature map is and how big it is.

* :func:`format_layers` and :func:`format_map_sizes` print a backbone's layers
  and an image's map sizes (measured by
  :func:`cbir_lab.features.layer_feature_maps` and
  :meth:`cbir_lab.backbones.Backbone.map_sizes`).
* :func:`plot_map_sizes`, :func:`plot_cell_grid` and :func:`plot_channels`
  draw the figures; each returns a :class:`matplotlib.figure.Figure` and never
  shows it. :func:`channel_panel` is the explorer's picture, composed in numpy
  (a slider step costs milliseconds), and :func:`feature_map_view` adds its caption.

Maps come in as arrays; nothing here runs a network.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from PIL import Image as PILImage

from cbir_lab.viz._live import hide_axes
from cbir_lab.viz.panels import Canvas, blend, colorize, side_by_side, stretch

__all__ = [
    "format_layers",
    "format_map_sizes",
    "strongest_channels",
    "plot_map_sizes",
    "plot_cell_grid",
    "plot_channels",
    "channel_panel",
    "feature_map_view",
]


def strongest_channels(fmap: np.ndarray, k: int = 8) -> list[int]:
    """The k channels with the largest maximum activation, strongest first.

    Ties (common: ReLU6 caps many channels at exactly 6) go to the channel with
    the larger mean activation, then to the smaller index.

    Args:
        fmap: (C, H, W).
        k: how many.

    Returns:
        Channel indices.
    """
    flat = np.asarray(fmap, dtype=np.float64).reshape(fmap.shape[0], -1)
    order = np.lexsort((np.arange(flat.shape[0]), -flat.mean(axis=1), -flat.max(axis=1)))
    return [int(c) for c in order[:k]]


def format_layers(layers: dict[str, tuple[int, int]]) -> str:
    """A text table of a backbone's selectable layers: channels C and total stride s.

    Args:
        layers: layer name → (channels, stride), e.g. ``available_backbones()[name].layers``.

    Returns:
        One line per layer, shallow to deep.
    """
    width = max([len("layer")] + [len(name) for name in layers])
    lines = [f"{'layer':<{width}} {'channels C':>10} {'stride s':>9}"]
    lines += [f"{name:<{width}} {channels:>10} {stride:>9}" for name, (channels, stride) in layers.items()]
    return "\n".join(lines)


def format_map_sizes(image_hw: tuple[int, int], maps: dict[str, np.ndarray], layers: dict[str, tuple[int, int]],
                     size_fn: Callable[[int, int, int], tuple[int, int]] | None = None) -> str:
    """Each layer's measured map shape next to what a size formula predicts from the input size and stride.

    Args:
        image_hw: the network input's (H, W).
        maps: layer → map (C, H', W'), e.g. from :func:`cbir_lab.features.layer_feature_maps`.
        layers: layer → (channels, total stride s), as in :func:`format_layers`.
        size_fn: ``size_fn(H, W, s) -> (H', W')`` to compare with (a student's
            exercise answer); default ⌈H/s⌉, ⌈W/s⌉.

    Returns:
        The input size, then one line per layer.
    """
    size_fn = size_fn or (lambda h, w, s: (math.ceil(h / s), math.ceil(w / s)))
    width = max(len(name) for name in maps)
    lines = [f"input: {image_hw[0]} x {image_hw[1]} pixels"]
    for name, fmap in maps.items():
        c, h, w = fmap.shape
        lines.append(f"{name:<{width}} C={c:<5} H'={h:<4} W'={w:<4} formula: {size_fn(*image_hw, layers[name][1])}")
    return "\n".join(lines)


def plot_map_sizes(sides: Sequence[int], measured: Sequence[tuple[int, int]], stride: int) -> Figure:
    """Measured map height against input height, with ⌈H/s⌉ and ⌊H/s⌋ drawn for comparison.

    Args:
        sides: input heights.
        measured: (H', W') per input, from :meth:`cbir_lab.backbones.Backbone.map_sizes`.
        stride: the layer's total stride s.

    Returns:
        The figure.
    """
    sides = np.asarray(sides)
    fig = Figure(figsize=(6.4, 3.2), layout="constrained")
    ax = fig.subplots()
    fine = np.arange(sides.min(), sides.max() + 1)
    ax.step(fine, np.ceil(fine / stride), where="post", color="#2ca02c", label=f"⌈H / {stride}⌉")
    ax.step(fine, np.floor(fine / stride), where="post", color="#d62728", ls="--", label=f"⌊H / {stride}⌋")
    ax.plot(sides, [h for h, _ in measured], "o", color="k", ms=4, label="measured H'")
    ax.set_xlabel("input height H (pixels)")
    ax.set_ylabel("feature-map height H' (cells)")
    ax.set_title(f"Map size follows the stride: each cell covers {stride}×{stride} input pixels")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return fig


def _cell_lines(map_hw: tuple[int, int], image_hw: tuple[int, int], cell_hw: tuple[float, float]) -> list:
    """Segments along the borders of the map's cells, in image pixels (cells of ``cell_hw`` pixels)."""
    (h, w), (height, width), (cell_h, cell_w) = map_hw, image_hw, cell_hw
    rows = [[(-0.5, y * cell_h - 0.5), (width - 0.5, y * cell_h - 0.5)] for y in range(h + 1)]
    cols = [[(x * cell_w - 0.5, -0.5), (x * cell_w - 0.5, height - 0.5)] for x in range(w + 1)]
    return rows + cols


def _draw_cells(ax, segments: list) -> LineCollection:
    # one collection renders much faster than a line per border
    cells = LineCollection(segments, colors="white", linewidths=0.6, alpha=0.8)
    ax.add_collection(cells, autolim=False)
    return cells


def plot_cell_grid(image: np.ndarray, maps: dict[str, np.ndarray]) -> Figure:
    """The network's input with each layer's grid of map cells drawn over it.

    Args:
        image: the network input (H, W, 3), from :func:`cbir_lab.images.network_input`.
        maps: layer name → its map (C, H', W'), e.g. two layers of different stride.

    Returns:
        The figure, one panel per layer, titled with C × H' × W' and the stride.
    """
    fig = Figure(figsize=(3.6 * len(maps), 3.6), layout="constrained")
    axes = fig.subplots(1, len(maps), squeeze=False)[0]
    height, width = image.shape[:2]
    for ax, (name, fmap) in zip(axes, maps.items()):
        c, h, w = fmap.shape
        stride = math.ceil(height / h) if h > 1 else height
        ax.imshow(image)
        cell = height / h if height % h == 0 else stride
        _draw_cells(ax, _cell_lines((h, w), (height, width), (cell, cell)))
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        ax.set_title(f"{name}: {c} × {h} × {w}\n≈ {height / h:.0f} px per cell", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"input {height} × {width} px", fontsize=10)
    return fig


def _overlay(ax, image: np.ndarray, channel_map: np.ndarray, cmap: str = "inferno", vmin: float | None = None,
             vmax: float | None = None) -> tuple[AxesImage, AxesImage]:
    """Draw a channel over the image, each cell stretched over (image size / map size) pixels.

    Returns the (image, channel) artists, for :func:`_set_overlay`.
    """
    artists = ax.imshow(image, alpha=0.5), ax.imshow(channel_map, cmap=cmap, alpha=0.65, interpolation="nearest")
    hide_axes(ax)
    _set_overlay(ax, artists, image, channel_map, vmin, vmax)
    return artists


def _set_overlay(ax, artists: tuple[AxesImage, AxesImage], image: np.ndarray, channel_map: np.ndarray,
                 vmin: float | None = None, vmax: float | None = None) -> None:
    """Show another image and/or channel in artists made by :func:`_overlay`.

    The colour range defaults to [min(0, min), max] of the channel.
    """
    height, width = image.shape[:2]
    background, channel = artists
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)
    background.set_data(image)
    background.set_extent(extent)
    channel.set_data(channel_map)
    channel.set_extent(extent)
    channel.set_clim(min(0.0, float(channel_map.min())) if vmin is None else vmin,
                     float(channel_map.max()) if vmax is None else vmax)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)


def plot_channels(image: np.ndarray, fmap: np.ndarray, channels: Sequence[int] | None = None, ncols: int = 4) -> Figure:
    """Several channels of one map, each drawn over the image.

    Args:
        image: the network input (H, W, 3).
        fmap: its feature map (C, H', W').
        channels: which channels; default the 8 strongest (:func:`strongest_channels`).
        ncols: panels per row.

    Returns:
        The figure, one panel per channel, titled with the channel and its maximum.
    """
    channels = strongest_channels(fmap, 8) if channels is None else list(channels)
    nrows = math.ceil(len(channels) / ncols)
    aspect = image.shape[0] / image.shape[1]
    fig = Figure(figsize=(2.4 * ncols, 2.4 * nrows * aspect + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, c in zip(axes, channels):
        _overlay(ax, image, fmap[c])
        ax.set_title(f"channel {c}  (max {fmap[c].max():.1f})", fontsize=9)
    for ax in axes[len(channels):]:
        ax.set_axis_off()
    return fig


def channel_panel(image: np.ndarray, fmap: np.ndarray, channel: int, height: int = 280) -> PILImage.Image:
    """One channel over the image (with its cell grid) and as the raw H'×W' grid of cells, with a colour bar.

    The feature-map explorer's picture, composed in numpy (:mod:`cbir_lab.viz.panels`),
    so a slider step costs milliseconds. The star marks the channel's maximum.

    Args:
        image: the network input (H, W, 3), uint8.
        fmap: the layer's map (C, H', W').
        channel: which channel.
        height: the panel's height in pixels.

    Returns:
        A Pillow image: the overlay, the cells, the colour bar, side by side.
    """
    c, h, w = fmap.shape
    if not 0 <= channel < c:
        raise ValueError(f"channel must be in 0..{c - 1} for a map with {c} channels, got {channel}")
    values = np.asarray(fmap[channel], dtype=np.float64)
    low, high = min(0.0, float(values.min())), float(values.max())
    high = high if high > low else low + 1.0  # a constant channel (often all zeros) still gets a valid range
    colours = colorize(values, "inferno", low, high)
    y, x = np.unravel_index(int(np.argmax(values)), values.shape)

    width = max(1, round(image.shape[1] * height / image.shape[0]))
    photo = np.asarray(PILImage.fromarray(np.asarray(image, dtype=np.uint8)).resize((width, height), PILImage.BILINEAR))
    left = Canvas(blend(photo, stretch(colours, height, width), 0.65))
    if max(h, w) <= 48:  # finer grids hide the image
        left.cell_grid((h, w))
    left.star((x + 0.5) * width / w, (y + 0.5) * height / h)

    cells_width = max(1, min(round(height * w / h), 2 * height))
    right = Canvas(stretch(colours, height, cells_width))
    if max(h, w) <= 48:
        right.cell_grid((h, w), colour=(90, 90, 90))
    right.star((x + 0.5) * cells_width / w, (y + 0.5) * height / h)
    right.text(4, 3, f"{h} x {w} cells", colour=(255, 255, 255), background=(0, 0, 0))  # the panel font has no ×

    bar = Canvas((70, height))
    bar.colour_bar((4, 8, 20, height - 8), "inferno", low, high)
    return side_by_side([left.image, right.image, bar.image])


def feature_map_view(image: np.ndarray, maps: dict[str, np.ndarray], layer: str, channel: int) -> tuple[PILImage.Image, str]:
    """The feature-map explorer's picture and caption for one (image, layer, channel).

    Args:
        image: the network input (H, W, 3).
        maps: layer → map (C, H', W'), from :func:`cbir_lab.features.layer_feature_maps`.
        layer: which layer.
        channel: which channel of it.

    Returns:
        (picture, caption): :func:`channel_panel`, and a caption stating the map's shape,
        the stride it implies and the channel's range.
    """
    if layer not in maps:
        raise ValueError(f"unknown layer {layer!r}; choose one of {list(maps)}")
    fmap = maps[layer]
    picture = channel_panel(image, fmap, channel)  # checks the channel
    c, h, w = fmap.shape
    height, width = image.shape[:2]
    values = fmap[channel]
    y, x = np.unravel_index(int(np.argmax(values)), values.shape)
    caption = (f"{layer}: {c} channels × {h} × {w} cells for a {height} × {width} input "
               f"→ stride ≈ {height / h:.0f} (⌈{height}/{height / h:.0f}⌉ = {h}).\n"
               f"Channel {channel}, left over the image, right as its {h} × {w} cells: min {values.min():.2f}, "
               f"max {values.max():.2f} at (y={y}, x={x}) (★), {(values > 0).mean():.0%} of cells > 0.")
    return picture, caption
