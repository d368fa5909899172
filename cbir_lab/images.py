"""Images: any photo a user may have, read as the 8-bit RGB pixels a network sees.

* :func:`load_image` reads an image (EXIF rotation honoured; 16-bit, palette,
  alpha and CMYK converted to 8-bit RGB by :func:`to_rgb`), optionally cropped.
* :func:`network_input` resizes it to a maximum side, keeping the aspect ratio
  (:func:`resized_size`, :func:`resize_for_network`): the pixels the network sees.
  :func:`scaled_sides` gives the maximum sides of a multi-scale extraction.
* :func:`content_key` names what the network will see by its content, so caches
  and stored indexes know a changed image from a renamed one.

Nothing here needs PyTorch (normalising the pixels for a backbone is
:func:`cbir_lab.features.pixels_to_tensor`'s job), so a process that only reads
images and runs an exported network (``cbir-lab search``) never imports it.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ImageItem",
    "ImageLoadError",
    "load_image",
    "to_rgb",
    "resized_size",
    "resize_for_network",
    "scaled_sides",
    "network_input",
    "content_key",
]

BBox = tuple[float, float, float, float]
ImageItem = Union[str, os.PathLike, Image.Image, tuple]  # path, PIL image, or (path | image, bbox)


class ImageLoadError(ValueError):
    """An image could not be read or converted; the message names the file."""


def _describe(item: ImageItem) -> str:
    if isinstance(item, Image.Image):
        return f"<PIL image {item.mode} {item.size[0]}x{item.size[1]}>"
    return repr(str(item))


def to_rgb(image: Image.Image, name: str = "image") -> Image.Image:
    """Convert any PIL mode to 8-bit RGB without silently wrong pixels.

    * 16-bit and 32-bit integer greyscale (``I;16``, ``I``) are scaled by
      their bit depth (65535 → 255), not clipped as ``Image.convert`` would.
    * float images (``F``) in [0, 1] are scaled by 255, others clipped to [0, 255].
    * transparency (``LA``, ``RGBA``, ``PA``, ``P`` with a transparent index) is
      composited on white, because fully transparent pixels hold arbitrary colours.
    * ``L``, ``1``, ``P``, ``CMYK``, ``YCbCr`` use Pillow's conversions.

    Args:
        image: any PIL image.
        name: how to name the image in errors.

    Returns:
        An RGB image of the same size.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(image).astype(np.float64)
        if mode == "F":
            scale = 255.0 if np.nanmax(arr, initial=0.0) <= 1.0 else 1.0
        elif mode == "I" and np.max(arr, initial=0) > 65535:
            scale = 255.0 / np.max(arr)
        else:
            scale = 255.0 / 65535.0
        arr = np.nan_to_num(arr * scale, nan=0.0).clip(0, 255).round().astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("LA", "RGBA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as err:
        raise ImageLoadError(f"cannot convert {name} from mode {mode!r} to RGB: {err}") from err


def _split_item(item: ImageItem) -> tuple[str | os.PathLike | Image.Image, BBox | None]:
    if isinstance(item, tuple):
        if len(item) != 2:
            raise ImageLoadError(f"an image item tuple must be (path, bbox), got {item!r}")
        return item[0], item[1]
    return item, None


def _crop(image: Image.Image, bbox: BBox, name: str) -> Image.Image:
    x1, y1, x2, y2 = (float(v) for v in bbox)
    w, h = image.size
    left, top = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
    right, bottom = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
    if right <= left or bottom <= top:
        raise ImageLoadError(f"bounding box {tuple(bbox)} of {name} is empty inside its {w}x{h} image")
    return image.crop((left, top, right, bottom))


def load_image(item: ImageItem) -> Image.Image:
    """Read an image as 8-bit RGB, honouring EXIF orientation, optionally cropped.

    Args:
        item: a path, a PIL image, or ``(path or image, (x1, y1, x2, y2))`` to crop
            to a box in pixels of the (orientation-corrected) image.

    Returns:
        An RGB PIL image.

    Raises:
        ImageLoadError: the file is missing, unreadable, truncated or not an image.
    """
    source, bbox = _split_item(item)
    name = _describe(source)
    if isinstance(source, Image.Image):
        image = source
    else:
        try:
            with Image.open(source) as opened:
                opened.load()
                image = opened
        except FileNotFoundError as err:
            raise ImageLoadError(f"image file {name} does not exist") from err
        except UnidentifiedImageError as err:
            raise ImageLoadError(f"{name} is not an image file Pillow can read") from err
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageLoadError(f"cannot read image {name} (corrupt or truncated?): {err}") from err
    try:
        image = ImageOps.exif_transpose(image)
    except Exception as err:  # malformed EXIF must not hide the pixels
        warnings.warn(f"ignoring unreadable EXIF orientation of {name}: {err}", stacklevel=2)
    image = to_rgb(image, name)
    if bbox is not None:
        image = _crop(image, bbox, name)
    return image


def resized_size(width: int, height: int, max_side: int, min_side: int = 1) -> tuple[int, int]:
    """The (width, height) with the long side equal to ``max_side`` and the aspect ratio kept.

    The short side is rounded and raised to at least ``min_side`` (the network's
    stride), so that even a thin sliver of an image gives a non-empty feature map.

    Args:
        width, height: the image size in pixels.
        max_side: the target long side.
        min_side: the smallest allowed short side.

    Returns:
        (new_width, new_height).
    """
    if width < 1 or height < 1:
        raise ValueError(f"image has an empty size {width}x{height}")
    if max_side < min_side:
        raise ValueError(f"max_side={max_side} is smaller than the network's stride {min_side}")
    scale = max_side / max(width, height)
    new_w = max(min_side, int(round(width * scale)))
    new_h = max(min_side, int(round(height * scale)))
    return min(new_w, max_side), min(new_h, max_side)


def resize_for_network(image: Image.Image, max_side: int, stride: int) -> Image.Image:
    """``image`` resized (bilinear) to the size :func:`resized_size` gives it, or itself when that is its size."""
    size = resized_size(*image.size, max_side=max_side, min_side=stride)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
    return image


def scaled_sides(max_side: int, scales, min_side: int = 1) -> tuple[int, ...]:
    """The long side each scale of a multi-scale extraction feeds: round(s · max_side), at least ``min_side``.

    Args:
        max_side: the long side at scale 1.
        scales: the scales s, a non-empty sequence of finite numbers > 0 (cirtorch's 1, 1/√2, 1/2).
        min_side: the smallest side (the network's stride).

    Returns:
        One long side per scale, in order.

    Raises:
        ValueError: ``scales`` empty or not a sequence of finite positive numbers.

    Examples:
        >>> scaled_sides(384, (1, 2 ** -0.5, 0.5))
        (384, 272, 192)
    """
    try:
        if isinstance(scales, (str, bytes)):
            raise TypeError
        values = [float(s) for s in scales]
    except (TypeError, ValueError):
        raise ValueError(f"scales must be a sequence of numbers, got {scales!r}") from None
    if not values or not all(np.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"scales must be a non-empty sequence of finite numbers > 0, got {scales!r}")
    return tuple(max(int(min_side), int(round(s * max_side))) for s in values)


def network_input(item: ImageItem, max_side: int = 384, stride: int = 32) -> np.ndarray:
    """The image as the network sees it: resized to ``max_side``, aspect kept (no normalisation).

    Args:
        item: a path, PIL image or (path, bbox) (see :func:`load_image`).
        max_side: the long side in pixels.
        stride: the smallest allowed short side (the backbone's stride).

    Returns:
        uint8 array (H, W, 3).
    """
    return np.asarray(resize_for_network(load_image(item), max_side, stride))



def content_key(item: ImageItem) -> str:
    """A SHA-256 of what the network will see: file bytes (or pixels) and the crop box.

    Args:
        item: as for :func:`load_image`.

    Returns:
        A hex digest; the same content under another file name gives the same key.
    """
    source, bbox = _split_item(item)
    digest = hashlib.sha256()
    if isinstance(source, Image.Image):
        digest.update(f"pil:{source.mode}:{source.size}".encode())
        digest.update(source.tobytes())
    else:
        try:
            with open(source, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        except FileNotFoundError as err:
            raise ImageLoadError(f"image file {_describe(source)} does not exist") from err
        except OSError as err:
            raise ImageLoadError(f"cannot read image {_describe(source)}: {err}") from err
    if bbox is not None:
        digest.update(repr(tuple(float(v) for v in bbox)).encode())
    return digest.hexdigest()

