"""Image panels composed in numpy and Pillow: what the explorers redraw at every step.

A widget that shows an image with a heat map over it needs no plotting library:
colouring the map, stretching its cells over the image, blending, drawing a few
lines and marks, and encoding a PNG take a few milliseconds, where building and
rendering a matplotlib figure takes tens. Matplotlib stays for real plots
(curves, spectra, bars).

* :func:`colorize`: a 2-D array through a matplotlib colour map, as RGB bytes.
* :func:`stretch`: cells (h, w, …) stretched over (H, W) pixels, each cell a block.
* :class:`Canvas`: a Pillow image with the marks the lessons draw (cell grid,
  star, dot, rectangle, ellipse, text, colour bar).
* :func:`side_by_side` and :func:`png_bytes` assemble and encode.
"""

from __future__ import annotations

import functools
import io
import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["colorize", "stretch", "blend", "Canvas", "side_by_side", "png_bytes"]

Colour = tuple[int, int, int]


@functools.lru_cache(maxsize=16)
def _lut(cmap: str) -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def colorize(values: np.ndarray, cmap: str = "inferno", vmin: float | None = None,
             vmax: float | None = None) -> np.ndarray:
    """Map values through a matplotlib colour map: (h, w) → uint8 (h, w, 3).

    Args:
        values: the array.
        cmap: a matplotlib colour map name.
        vmin, vmax: the range mapped to the ends of the map (default: the values' range;
            a constant array gets the bottom colour).

    Examples:
        >>> colorize(np.array([[0.0, 1.0]]), "gray").tolist()
        [[[0, 0, 0], [255, 255, 255]]]
    """
    values = np.asarray(values, dtype=np.float64)
    low = float(values.min()) if vmin is None else float(vmin)
    high = float(values.max()) if vmax is None else float(vmax)
    scale = 255.0 / (high - low) if high > low else 0.0
    index = np.clip((values - low) * scale, 0, 255).astype(np.uint8)
    return _lut(cmap)[index]


def stretch(cells: np.ndarray, height: int, width: int) -> np.ndarray:
    """Stretch an (h, w, …) array of cells over (height, width) pixels, each cell a solid block.

    Pixel row y shows cell row ⌊y·h/height⌋, as a map cell covers about stride × stride pixels.

    Examples:
        >>> stretch(np.array([[1, 2]]), 2, 4).tolist()
        [[1, 1, 2, 2], [1, 1, 2, 2]]
    """
    cells = np.asarray(cells)
    h, w = cells.shape[:2]
    rows = np.arange(height) * h // height
    cols = np.arange(width) * w // width
    return cells[rows[:, None], cols[None, :]]


def blend(base: np.ndarray, top: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - alpha)·base + alpha·top`` in uint8, for two RGB arrays of one shape."""
    mixed = base.astype(np.float32) * (1.0 - alpha) + top.astype(np.float32) * alpha
    return mixed.round().astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


class Canvas:
    """An RGB image to draw the lessons' marks on, in pixel coordinates.

    Args:
        pixels: uint8 (H, W, 3), or a size (width, height) for a blank canvas.
        background: the blank canvas' colour.

    Attributes:
        image: the :class:`PIL.Image.Image` drawn on.
    """

    def __init__(self, pixels: np.ndarray | tuple[int, int], background: Colour = (255, 255, 255)) -> None:
        if isinstance(pixels, tuple):
            self.image = Image.new("RGB", pixels, background)
        else:
            self.image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "RGB")
        self.draw = ImageDraw.Draw(self.image)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def cell_grid(self, cells: tuple[int, int], colour: Colour = (255, 255, 255)) -> None:
        """Lines along the borders of an (h, w) grid of cells stretched over the whole image."""
        width, height = self.image.size
        h, w = cells
        for row in range(1, h):
            y = math.ceil(row * height / h)
            self.draw.line([(0, y), (width - 1, y)], fill=colour)
        for col in range(1, w):
            x = math.ceil(col * width / w)
            self.draw.line([(x, 0), (x, height - 1)], fill=colour)

    def star(self, x: float, y: float, radius: float = 9, colour: Colour = (0, 255, 255)) -> None:
        """A five-pointed star centred on (x, y), outlined in black."""
        points = []
        for i in range(10):
            r = radius if i % 2 == 0 else radius * 0.45
            angle = -math.pi / 2 + i * math.pi / 5
            points.append((x + r * math.cos(angle), y + r * math.sin(angle)))
        self.draw.polygon(points, fill=colour, outline=(0, 0, 0))

    def dot(self, x: float, y: float, radius: float = 4, colour: Colour = (255, 255, 255)) -> None:
        """A filled dot outlined in black."""
        self.draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour, outline=(0, 0, 0))

    def rectangle(self, box: Sequence[float], colour: Colour, width: int = 2) -> None:
        """An outline (x0, y0, x1, y1)."""
        self.draw.rectangle(list(box), outline=colour, width=width)

    def ellipse(self, box: Sequence[float], colour: Colour, width: int = 1) -> None:
        """An outline inside the box (x0, y0, x1, y1)."""
        self.draw.ellipse(list(box), outline=colour, width=width)

    def text(self, x: float, y: float, text: str, colour: Colour = (0, 0, 0), size: int = 12,
             background: Colour | None = None) -> None:
        """Text with its top-left corner at (x, y), on a small box of ``background`` if given."""
        font = _font(size)
        if background is not None:
            left, top, right, bottom = self.draw.textbbox((x, y), text, font=font)
            self.draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=background)
        self.draw.text((x, y), text, fill=colour, font=font)

    def colour_bar(self, box: tuple[int, int, int, int], cmap: str, low: float, high: float, size: int = 11) -> None:
        """A vertical colour bar in box (x0, y0, x1, y1), high at the top, its range written beside it."""
        x0, y0, x1, y1 = box
        ramp = colorize(np.linspace(1.0, 0.0, y1 - y0)[:, None].repeat(x1 - x0, axis=1), cmap, 0.0, 1.0)
        self.image.paste(Image.fromarray(ramp, "RGB"), (x0, y0))
        self.draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(0, 0, 0))
        self.text(x1 + 3, y0 - 2, f"{high:.3g}", size=size)
        self.text(x1 + 3, y1 - size - 1, f"{low:.3g}", size=size)


def side_by_side(images: Sequence[Image.Image], gap: int = 10, background: Colour = (255, 255, 255)) -> Image.Image:
    """Images in a row, top-aligned, ``gap`` pixels apart."""
    width = sum(im.size[0] for im in images) + gap * (len(images) - 1)
    height = max(im.size[1] for im in images)
    row = Image.new("RGB", (width, height), background)
    x = 0
    for im in images:
        row.paste(im, (x, 0))
        x += im.size[0] + gap
    return row


def png_bytes(image: Image.Image, compress_level: int = 1) -> bytes:
    """PNG bytes of an image; zlib level 1 encodes several times faster than the default for a slightly larger file."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()
