"""Image thumbnails as encoded bytes, for widgets and HTML pages.

* :func:`thumbnail_jpeg`: an image item shrunk to fit a square, as JPEG bytes,
  memoised (every explorer and the talk mode show the same thumbnails over and over).
* :func:`jpeg_data_uri`: such bytes as a ``data:`` URI, usable in an ``<img>``
  with no server.

JPEG rather than PNG: a photo thumbnail is about five times smaller, which keeps
widget messages (and the widget state saved in a notebook) small.
"""

from __future__ import annotations

import base64
import functools
import io
import os

from cbir_lab.images import ImageItem, load_image

__all__ = ["thumbnail_jpeg", "jpeg_data_uri"]


def _hashable(item: ImageItem):
    """Image items as memo keys: paths as strings, (path, bbox) as nested tuples; None for a PIL image."""
    if isinstance(item, tuple):
        path, bbox = item
        inner = _hashable(path)
        return None if inner is None else (inner, tuple(float(v) for v in bbox))
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    return None


@functools.lru_cache(maxsize=4096)
def _thumbnail_cached(key, side: int, quality: int) -> bytes:
    return _encode(key, side, quality)


def _encode(item, side: int, quality: int) -> bytes:
    image = load_image(item)
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def thumbnail_jpeg(item: ImageItem, side: int = 128, quality: int = 85) -> bytes:
    """JPEG bytes of an image item shrunk to fit ``side`` × ``side`` pixels (memoised for paths).

    Args:
        item: a path, a PIL image, or ``(path, bbox)`` for a cropped query.
        side: the longest side in pixels.
        quality: JPEG quality.

    Returns:
        The encoded JPEG, for ``ipywidgets.Image(format="jpeg")`` or :func:`jpeg_data_uri`.
    """
    if int(side) != side or side < 1:
        raise ValueError(f"side must be a positive integer, got {side!r}")
    key = _hashable(item)
    if key is None:  # a PIL image: nothing stable to remember it by
        return _encode(item, int(side), int(quality))
    return _thumbnail_cached(key, int(side), int(quality))


def jpeg_data_uri(jpeg: bytes) -> str:
    """``"data:image/jpeg;base64,..."`` for JPEG bytes (e.g. from :func:`thumbnail_jpeg`)."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
