"""Pictures for lesson 7: which visual word each cell of a map falls in, and the VLAD blocks they make.

:func:`visual_words_view` composes, in numpy and Pillow (a widget redraws it at
every step): the image with each feature-map cell tinted by its word, a bar per
word with its number of cells, and the word-by-dimension matrix of VLAD blocks.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from cbir_lab.viz.panels import Canvas, blend, colorize, png_bytes, side_by_side, stretch

__all__ = ["word_colours", "visual_words_view"]


def word_colours(k: int) -> np.ndarray:
    """k distinct RGB colours (uint8, (k, 3)), the same for a given k on every call."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"] if k <= 20 else colormaps["hsv"]
    values = np.arange(k) / (20 if k <= 20 else k)
    return (cmap(values)[:, :3] * 255).round().astype(np.uint8)


def visual_words_view(image: np.ndarray, words: np.ndarray, blocks: np.ndarray, setting: str,
                      side: int = 240) -> tuple[bytes, str]:
    """The image with its cells tinted by visual word, the words' cell counts, and the VLAD block matrix.

    Args:
        image: (H, W, 3) uint8, the network's input (the map's cells cover it).
        words: (h, w) each cell's word, from :func:`cbir_lab.studies.encodings.visual_words`.
        blocks: (k, d) VLAD blocks (row k: the residual sum of word k, normalised as set).
        setting: the normalisation, for the caption.
        side: the panels' height in pixels.

    Returns:
        (PNG bytes, caption).
    """
    image = np.asarray(image, dtype=np.uint8)
    k = blocks.shape[0]
    colours = word_colours(k)
    height, width = side, max(1, round(image.shape[1] * side / image.shape[0]))
    photo = np.asarray(Image.fromarray(image).resize((width, height)))
    tint = stretch(colours[words], height, width)
    left = Canvas(blend(photo, tint, 0.55))
    left.cell_grid(words.shape)

    counts = np.bincount(words.ravel(), minlength=k)
    bars = Canvas((90, height))
    row = height / k
    for word in np.flatnonzero(counts):
        length = 80 * counts[word] / counts.max()
        top = word * row
        bars.draw.rectangle([0, top, max(length, 1), top + max(row - 1, 1)], fill=tuple(int(c) for c in colours[word]))

    norms = np.linalg.norm(blocks, axis=1)
    scale = float(np.abs(blocks).max()) or 1.0
    matrix = colorize(blocks, "RdBu_r", -scale, scale)
    matrix = stretch(matrix, height, min(240, max(60, blocks.shape[1] * 4)))
    picture = side_by_side([left.image, bars.image, Image.fromarray(matrix)], gap=8)
    used = int((counts > 0).sum())
    share = counts.max() / counts.sum()
    nonzero = norms[norms > 0]
    spread = nonzero.max() / nonzero.min() if nonzero.size else 1.0
    caption = (f"k = {k}: the {words.size} cells fall in {used} words; the largest holds {counts.max()} cells "
               f"({share:.0%}). VLAD ({setting}): {blocks.size} dimensions; its largest word block is "
               f"{spread:.1f}× the smallest non-empty one.")
    return png_bytes(picture), caption
