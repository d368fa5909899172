"""Figures for lesson 2 (pooling): where each pooling takes its value from.

* :func:`plot_pooling_channel` shows, for one channel, where MAC's maximum falls,
  what SPoC sums, the centre-prior weights and the weighted sum;
  :func:`plot_rmac_grid` draws the R-MAC regions on the image with each region's
  maximum; :func:`plot_pair_similarities` compares two views of one scene with
  two different scenes; :func:`method_channel_panel` is the pooling explorer's
  picture of one pooling, composed in numpy, and :func:`pooling_view` adds its caption.
* :func:`mac_location` and :func:`region_maxima` say where maxima fall;
  :func:`format_pair_similarities` and :func:`format_similarity_gaps` print the
  comparisons of :func:`cbir_lab.studies.explain.pair_similarities` and
  :func:`cbir_lab.evaluation.similarity_gaps` as text tables.

Every plot returns a :class:`matplotlib.figure.Figure` and never shows it. The
arithmetic is the pooling module's own (:func:`cbir_lab.pooling.center_prior`,
:func:`cbir_lab.pooling.rmac_regions`, :func:`cbir_lab.pooling.cell_allocation`).
"""

from __future__ import annotations

from typing import Sequence

import math

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image as PILImage

from cbir_lab.pooling import Pooling, cell_allocation, center_prior, rmac_regions
from cbir_lab.viz._live import hide_axes
from cbir_lab.viz.feature_maps import _overlay
from cbir_lab.viz.panels import Canvas, blend, colorize, stretch

__all__ = [
    "mac_location",
    "region_maxima",
    "plot_pooling_channel",
    "plot_rmac_grid",
    "method_channel_panel",
    "pooling_view",
    "plot_pair_similarities",
    "format_pair_similarities",
    "format_similarity_gaps",
]

_REGION_COLORS = ("#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#e377c2", "#bcbd22", "#d62728")


def mac_location(channel_map: np.ndarray) -> tuple[int, int]:
    """(y, x) of the channel's maximum: the single cell MAC keeps (the first one on ties)."""
    channel_map = np.asarray(channel_map)
    y, x = np.unravel_index(int(np.argmax(channel_map)), channel_map.shape)
    return int(y), int(x)


def region_maxima(channel_map: np.ndarray, levels: int = 3) -> list[tuple[tuple[int, int, int, int], float, tuple[int, int]]]:
    """Each R-MAC region of one channel with its maximum and where it falls.

    Args:
        channel_map: (H, W).
        levels: R-MAC's number of scales.

    Returns:
        ``(region, value, (y, x))`` per region of :func:`cbir_lab.pooling.rmac_regions`,
        with region ``(top, left, height, width)`` and (y, x) in map cells.
    """
    channel_map = np.asarray(channel_map)
    result = []
    for top, left, rh, rw in rmac_regions(*channel_map.shape, levels=levels):
        window = channel_map[top : top + rh, left : left + rw]
        y, x = mac_location(window)
        result.append(((top, left, rh, rw), float(window[y, x]), (top + y, left + x)))
    return result


def _cell_size(image: np.ndarray, channel_map: np.ndarray) -> tuple[float, float]:
    return image.shape[0] / channel_map.shape[0], image.shape[1] / channel_map.shape[1]


def _to_pixels(image, channel_map, y, x) -> tuple[float, float]:
    sy, sx = _cell_size(image, channel_map)
    return (x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5


def _show_map(ax, image: np.ndarray | None, values: np.ndarray, cmap: str = "inferno", vmin=None, vmax=None):
    """The map over the image (if given), each cell stretched over its pixels."""
    if image is not None:
        return _overlay(ax, image, values, cmap, vmin, vmax)[1]
    shown = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    hide_axes(ax)
    return shown


def plot_pooling_channel(image: np.ndarray, fmap: np.ndarray, channel: int) -> Figure:
    """One channel through MAC, SPoC and SPoC with the centre prior, side by side.

    Panels: MAC's maximum (a star); SPoC's sum of all cells; the centre-prior
    weights α(y, x); the prior-weighted map and its sum.

    Args:
        image: the network input (H, W, 3).
        fmap: its feature map (C, H', W').
        channel: which channel.

    Returns:
        The figure.
    """
    values = np.asarray(fmap[channel], dtype=np.float64)
    h, w = values.shape
    prior = center_prior(h, w, dtype=torch.float64).numpy()
    fig = Figure(figsize=(13.0, 3.3), layout="constrained")
    axes = fig.subplots(1, 4)
    vmax = max(float(values.max()), 1e-6)
    _show_map(axes[0], image, values, vmin=0, vmax=vmax)
    y, x = mac_location(values)
    axes[0].plot(*_to_pixels(image, values, y, x), marker="*", ms=18, color="cyan", mec="k")
    axes[0].set_title(f"MAC: max = {values.max():.2f}\nat cell (y={y}, x={x}); the rest is ignored", fontsize=10)
    _show_map(axes[1], image, values, vmin=0, vmax=vmax)
    axes[1].set_title(f"SPoC: sum of all {h * w} cells = {values.sum():.1f}\n({(values > 0).sum()} cells > 0)", fontsize=10)
    shown = _show_map(axes[2], None, prior, cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(shown, ax=axes[2], shrink=0.8)
    axes[2].set_title(f"centre prior α(y, x)\nσ = min(H, W)/6 = {min(h, w) / 6:.2f} cells", fontsize=10)
    _show_map(axes[3], image, values * prior, vmin=0, vmax=vmax)
    axes[3].set_title(f"SPoC with centre prior:\nΣ α·x = {(values * prior).sum():.1f}", fontsize=10)
    fig.suptitle(f"channel {channel} of a {fmap.shape[0]} × {h} × {w} map", fontsize=11)
    return fig


def plot_rmac_grid(image: np.ndarray, fmap: np.ndarray, channel: int, levels: int = 3) -> Figure:
    """The R-MAC regions, one panel per level, drawn on the image with each region's maximum of one channel.

    Args:
        image: the network input (H, W, 3).
        fmap: its feature map (C, H', W').
        channel: which channel's maxima to mark.
        levels: R-MAC's number of scales.

    Returns:
        The figure.
    """
    values = np.asarray(fmap[channel], dtype=np.float64)
    h, w = values.shape
    all_regions = rmac_regions(h, w, levels)
    sides = sorted({r[2] for r in all_regions}, reverse=True)
    fig = Figure(figsize=(3.6 * len(sides), 3.4), layout="constrained")
    axes = fig.subplots(1, len(sides), squeeze=False)[0]
    for ax, side in zip(axes, sides):
        _show_map(ax, image, values, vmin=0, vmax=max(float(values.max()), 1e-6))
        sy, sx = _cell_size(image, values)
        regions = [r for r in region_maxima(values, levels) if r[0][2] == side]
        for k, ((top, left, rh, rw), value, (y, x)) in enumerate(regions):
            # one colour per region, slightly inset, so that overlapping regions stay apart
            color = _REGION_COLORS[k % len(_REGION_COLORS)]
            inset = 1.5 * (k % 4)
            ax.add_patch(Rectangle((left * sx - 0.5 + inset, top * sy - 0.5 + inset), rw * sx - 2 * inset,
                                   rh * sy - 2 * inset, fill=False, ec=color, lw=1.8))
            px, py = _to_pixels(image, values, y, x)
            ax.plot(px, py, "o", color=color, ms=8, mec="k")
            ax.annotate(f"{value:.1f}", (px, py), xytext=(4, 4), textcoords="offset points", fontsize=8, color="w",
                        bbox={"boxstyle": "round,pad=0.1", "fc": color, "alpha": 0.8, "lw": 0})
        ax.set_title(f"{len(regions)} region(s) of {side}×{side} cells", fontsize=10)
    fig.suptitle(f"R-MAC grid on a {h}×{w} map, L = {levels}: {len(all_regions)} regions; "
                 f"dots: channel {channel}'s maximum in each region", fontsize=11)
    return fig


_PANEL_LEVEL_COLOURS = ((31, 119, 180), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75))


def method_channel_panel(image: np.ndarray, fmap: np.ndarray, pooling: Pooling | str, channel: int,
                         height: int = 300) -> tuple[PILImage.Image, str]:
    """What one pooling does with one channel, over the image: the pooling explorer's picture.

    MAC: the maximum's cell (a star); SPoC: the map it sums (times the centre prior,
    whose contours are drawn, when on); R-MAC: the region grid, each region's
    maximum (a dot, coloured by level) and its value; GeM: each cell's share of the
    power mean (:func:`cbir_lab.pooling.cell_allocation`; large p leaves only the
    peaks, like MAC). Composed in numpy (:mod:`cbir_lab.viz.panels`).

    Args:
        image: the network input (H, W, 3), uint8.
        fmap: its map (C, H', W').
        pooling: a :class:`~cbir_lab.pooling.Pooling` or its name.
        channel: which channel.
        height: the panel's height in pixels.

    Returns:
        (picture, title): a Pillow image, and one line saying what it shows.
    """
    pooling = Pooling.parse(pooling)
    if not 0 <= channel < fmap.shape[0]:
        raise ValueError(f"channel must be in 0..{fmap.shape[0] - 1}, got {channel}")
    values = np.asarray(fmap[channel], dtype=np.float64)
    h, w = values.shape
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    sx, sy = width / w, height / h
    shown = values
    if pooling.method in ("spoc", "gem"):
        pooled, shares = cell_allocation(values[None], pooling)
        shown = shares[0]
    colours = colorize(shown, "inferno", 0.0, max(float(shown.max()), 1e-12))
    photo = np.asarray(PILImage.fromarray(np.asarray(image, dtype=np.uint8)).resize((width, height), PILImage.BILINEAR))
    canvas = Canvas(blend(photo, stretch(colours, height, width), 0.65))
    if pooling.method == "mac":
        y, x = mac_location(values)
        canvas.star((x + 0.5) * sx, (y + 0.5) * sy, radius=11)
        title = f"MAC keeps one cell: max = {values.max():.2f} at (y={y}, x={x})"
    elif pooling.method == "spoc":
        if pooling.center_prior:
            sigma = min(h, w) / 6.0  # the prior's contours are circles in cells: α = level at radius σ·√(-2 ln level)
            for level in (0.25, 0.5, 0.75):
                radius = sigma * math.sqrt(-2.0 * math.log(level))
                canvas.ellipse(((w / 2 - radius) * sx, (h / 2 - radius) * sy, (w / 2 + radius) * sx, (h / 2 + radius) * sy),
                               colour=(0, 255, 255))
        title = f"{pooling.name}: sums all cells = {pooled[0]:.1f}"
    elif pooling.method == "rmac":
        regions = region_maxima(values, pooling.levels)
        sides = sorted({r[2] for r, _, _ in regions}, reverse=True)
        for k, ((top, left, rh, rw), value, (y, x)) in enumerate(regions):
            colour = _PANEL_LEVEL_COLOURS[sides.index(rh) % len(_PANEL_LEVEL_COLOURS)]
            inset = 2 * (k % 4)  # overlapping regions of a level stay apart
            canvas.rectangle((left * sx + inset, top * sy + inset, (left + rw) * sx - 1 - inset, (top + rh) * sy - 1 - inset),
                             colour)
            px, py = (x + 0.5) * sx, (y + 0.5) * sy
            canvas.dot(px, py, colour=colour)
            if len(regions) <= 30:
                canvas.text(px + 4, py + 2, f"{value:.1f}", colour=(255, 255, 255), size=10, background=colour)
        title = f"R-MAC, L = {pooling.levels}: {len(regions)} regions, one max each"
    else:
        title = f"GeM, p = {pooling.p:g}: each cell's share of (mean x^p)^(1/p) = {pooled[0]:.2f}"
    return canvas.image, f"{title}; channel {channel}"


def pooling_view(
    images: Sequence[np.ndarray],
    maps: Sequence[np.ndarray],
    names: Sequence[str],
    pooling: Pooling | str,
    channel: int,
    descriptors: np.ndarray,
) -> tuple[PILImage.Image, str, np.ndarray]:
    """The pooling explorer's picture, caption and similarities for one setting.

    Args:
        images: network inputs (H, W, 3): the anchor, then the images compared with it.
        maps: their feature maps (C, H', W').
        names: a label per image.
        pooling: the pooling shown.
        channel: the anchor's channel to draw.
        descriptors: the images' L2-normalised descriptors under ``pooling``, (n, C)
            (:func:`cbir_lab.pipeline.describe`).

    Returns:
        (picture, caption, similarities of the anchor to each other image): the
        caption's first line says what the picture shows, its second the numbers.
    """
    pooling = Pooling.parse(pooling)
    vecs = np.asarray(descriptors)
    sims = vecs[1:] @ vecs[0]
    picture, title = method_channel_panel(images[0], maps[0], pooling, channel)
    parts = [f"{pooling.name}: descriptor[{channel}] = {vecs[0][channel]:.3f}"]
    parts += [f"cos({names[0]}, {name}) = {s:.3f}" for name, s in zip(names[1:], sims)]
    if len(sims) >= 2:
        parts.append(f"margin = {sims[0] - sims[1]:+.3f}")
    return picture, title + "\n" + " | ".join(parts), sims


def plot_pair_similarities(images: Sequence[np.ndarray], names: Sequence[str], similarities: dict[str, np.ndarray]) -> Figure:
    """An anchor image, the images compared with it, and their cosine similarity under each method.

    Args:
        images: the anchor first, then the others (each (H, W, 3)).
        names: a label per image.
        similarities: pooling name → similarity of each other image to the anchor
            (from :func:`cbir_lab.studies.explain.pair_similarities`).

    Returns:
        The figure: thumbnails on the left, grouped bars on the right.
    """
    n_other = len(images) - 1
    fig = Figure(figsize=(3.0 * len(images) + 4.5, 3.2), layout="constrained")
    grid = fig.add_gridspec(1, len(images) + 2)
    colors = ["#2ca02c", "#d62728", "#7f7f7f", "#9467bd"]
    for i, (image, name) in enumerate(zip(images, names)):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(image)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=9)
        if i > 0:
            for spine in ax.spines.values():
                spine.set_edgecolor(colors[(i - 1) % len(colors)])
                spine.set_linewidth(4)
    ax = fig.add_subplot(grid[0, len(images):])
    methods = list(similarities)
    width = 0.8 / n_other
    for j in range(n_other):
        xs = np.arange(len(methods)) + (j - (n_other - 1) / 2) * width
        vals = [float(similarities[m][j]) for m in methods]
        bars = ax.bar(xs, vals, width, color=colors[j % len(colors)], label=f"anchor vs {names[j + 1]}")
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(np.arange(len(methods)), methods)
    ax.set_ylabel("cosine similarity")
    lows = min(float(v.min()) for v in similarities.values())
    ax.set_ylim(max(0.0, lows - 0.1), 1.25)  # head room for the legend
    ax.legend(fontsize=8, loc="upper center", ncols=2)
    ax.set_title("higher = more alike; we want green ≫ red", fontsize=10)
    return fig


def format_pair_similarities(similarities: dict[str, np.ndarray], digits: int = 2) -> str:
    """A text table of :func:`cbir_lab.studies.explain.pair_similarities` for an anchor, a view of the same scene and another scene.

    Args:
        similarities: method → (same scene, other scene) cosines.
        digits: decimals shown.

    Returns:
        One line per method: both cosines and the margin same − other.
    """
    width = max([len("method")] + [len(m) for m in similarities])
    lines = [f"{'method':<{width}} {'same scene':>10} {'other scene':>11} {'margin':>7}"]
    for method, (same, other) in similarities.items():
        lines.append(f"{method:<{width}} {same:>10.{digits}f} {other:>11.{digits}f} {same - other:>+7.{digits}f}")
    return "\n".join(lines)


def format_similarity_gaps(gaps: dict[str, dict[str, float]], digits: int = 2) -> str:
    """A text table of :func:`cbir_lab.evaluation.similarity_gaps`, one line per method.

    Args:
        gaps: method label → the dict :func:`cbir_lab.evaluation.similarity_gaps` returns.
        digits: decimals shown.

    Returns:
        Columns positive, negative, hard negative, gap and hard gap.
    """
    columns = ("positive", "negative", "hard negative", "gap", "hard gap")
    headers = ("positive", "negative", "hard neg", "gap", "hard gap")
    width = max([len("method")] + [len(label) for label in gaps])
    lines = [f"{'method':<{width}} " + " ".join(f"{h:>8}" for h in headers)]
    for label, values in gaps.items():
        lines.append(f"{label:<{width}} " + " ".join(f"{values[c]:>8.{digits}f}" for c in columns))
    return "\n".join(lines)
