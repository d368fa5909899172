"""Feature maps: images (paths or PIL images) → conv feature maps, cached on disk.

* :func:`load_image` reads any image a user may have (EXIF rotation honoured,
  16-bit, palette, alpha and CMYK converted to 8-bit RGB), optionally cropped.
* :func:`network_input` resizes it to a maximum side, keeping the aspect
  ratio: the pixels the network sees; :func:`pixels_to_tensor` normalises them
  for a backbone, and :func:`prepare_image` does both.
* :func:`layer_feature_maps` gives one image's pixels and the maps of every
  layer of a backbone, from one read of the file and one forward pass.
* :func:`extract_feature_maps` runs the backbone, batching images of equal
  size, with a progress bar on long runs, and an on-disk :class:`FeatureCache`
  keyed by backbone, layer, image size and image *content*, so a changed image
  is recomputed and an unchanged one never is.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from cbir_lab.backbones import Backbone
from cbir_lab.paths import atomic_write, cache_dir

__all__ = [
    "ImageItem",
    "ImageLoadError",
    "load_image",
    "to_rgb",
    "resized_size",
    "network_input",
    "pixels_to_tensor",
    "prepare_image",
    "layer_feature_maps",
    "content_key",
    "FeatureCache",
    "extract_feature_maps",
]

BBox = tuple[float, float, float, float]
ImageItem = Union[str, os.PathLike, Image.Image, tuple]  # path, PIL image, or (path | image, bbox)

# Bump when preprocessing changes, so that old cache entries are never served.
_CACHE_VERSION = "v1"


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


def _resize(image: Image.Image, max_side: int, stride: int) -> Image.Image:
    size = resized_size(*image.size, max_side=max_side, min_side=stride)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
    return image


def network_input(item: ImageItem, max_side: int = 384, stride: int = 32) -> np.ndarray:
    """The image as the network sees it: resized to ``max_side``, aspect kept (no normalisation).

    Args:
        item: a path, PIL image or (path, bbox) (see :func:`load_image`).
        max_side: the long side in pixels.
        stride: the smallest allowed short side (the backbone's stride).

    Returns:
        uint8 array (H, W, 3).
    """
    return np.asarray(_resize(load_image(item), max_side, stride))


def pixels_to_tensor(pixels: np.ndarray, backbone: Backbone) -> torch.Tensor:
    """Normalise uint8 RGB pixels (H, W, 3) for the backbone: a float32 tensor (3, H, W)."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be a uint8 array of shape (H, W, 3), got {pixels.dtype} {pixels.shape}")
    tensor = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
    return backbone.normalize(tensor.float().div_(255.0).unsqueeze(0))[0]


def prepare_image(image: Image.Image, backbone: Backbone, max_side: int) -> torch.Tensor:
    """Resize to a maximum side (aspect kept) and normalise for the backbone.

    Args:
        image: an RGB PIL image (see :func:`load_image`).
        backbone: gives the normalisation and the stride (the minimum side).
        max_side: the long side in pixels after resizing (up or down).

    Returns:
        A float32 tensor of shape (3, H, W), normalised.
    """
    return pixels_to_tensor(np.asarray(_resize(image, max_side, backbone.stride), dtype=np.uint8), backbone)


def layer_feature_maps(item: ImageItem, backbone: Backbone, max_side: int = 384) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One image's pixels and the feature maps of every layer the backbone computes.

    The file is read and resized once; the maps come from one forward pass
    (:meth:`cbir_lab.backbones.Backbone.layer_maps`).

    Args:
        item: the image (see :func:`load_image`).
        backbone: from :func:`cbir_lab.backbones.load_backbone`; its shallower layers come with it.
        max_side: the long side fed to the network.

    Returns:
        (pixels (H, W, 3) uint8, layer name → float32 map (C, H', W'), shallow to deep).
    """
    pixels = network_input(item, max_side, backbone.stride)
    maps = backbone.layer_maps(pixels_to_tensor(pixels, backbone).unsqueeze(0))
    return pixels, {name: fmap[0].numpy() for name, fmap in maps.items()}


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


class FeatureCache:
    """An on-disk cache of feature maps, one ``.npy`` file per image (float16).

    Entries live under ``root / <backbone>-<layer>-<weights> / s<max_side> / <key>.npy``
    where key is :func:`content_key`, so a stale entry is impossible: new
    content gets a new key. Writes are atomic (temporary file, then rename), so
    an interrupted run leaves no half-written entry. float16 keeps the cache
    small; its relative error (< 1e-3) is far below what changes a ranking.

    A cache folder this process cannot write to (a lab's shared, read-only cache)
    is still read; new maps are then computed and used without being stored, after
    one warning.

    Args:
        root: the cache folder; default ``$CBIR_LAB_CACHE`` or the user cache.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = cache_dir(root)
        self.read_only = False

    def path(self, backbone: Backbone, max_side: int, key: str) -> Path:
        if backbone.cache_tag is None:
            raise ValueError("randomly initialised backbones are not cached")
        return self.root / _CACHE_VERSION / backbone.cache_tag / f"s{max_side}" / key[:2] / f"{key}.npy"

    def get(self, backbone: Backbone, max_side: int, key: str) -> torch.Tensor | None:
        path = self.path(backbone, max_side, key)
        if not path.exists():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # unreadable entry: recompute and overwrite it
        if arr.ndim != 3 or arr.shape[0] != backbone.out_channels:
            return None
        return torch.from_numpy(arr.astype(np.float32))

    def put(self, backbone: Backbone, max_side: int, key: str, fmap: torch.Tensor) -> None:
        if self.read_only:
            return
        values = fmap.detach().cpu().numpy().astype(np.float16)
        try:
            atomic_write(self.path(backbone, max_side, key), lambda handle: np.save(handle, values, allow_pickle=False))
        except OSError as err:  # read-only share, full disk, no permission: the maps are still right, only not kept
            self.read_only = True
            warnings.warn(f"cannot write to the feature cache {self.root} ({err}); feature maps are computed but "
                          "not cached. Set CBIR_LAB_CACHE to a writable folder to keep them.", stacklevel=2)


def _progress(total: int, enabled: bool | None, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not (total >= 16 if enabled is None else enabled))


def extract_feature_maps(
    items: Sequence[ImageItem],
    backbone: Backbone,
    max_side: int = 384,
    batch_size: int = 16,
    cache: FeatureCache | bool | None = True,
    progress: bool | None = None,
) -> list[torch.Tensor]:
    """Feature maps of images at a maximum side, aspect ratio kept.

    Images whose resized sizes are equal run in one batch; the others run
    alone (padding would change the maps). Runs under ``torch.inference_mode``
    on the backbone's device.

    Args:
        items: paths, PIL images, or ``(path, bbox)`` pairs (see :func:`load_image`).
        backbone: from :func:`cbir_lab.backbones.load_backbone`.
        max_side: the long side of each image fed to the network.
        batch_size: the largest batch.
        cache: ``True`` for the default :class:`FeatureCache`, a cache, or
            ``False``/``None`` for none. Random-weight backbones are never cached.
        progress: show a tqdm bar; ``None`` shows it for 16 or more images to compute.

    Returns:
        One float32 CPU tensor of shape (C, H', W') per item, in order.

    Raises:
        ImageLoadError: an image could not be read (the message names it).
    """
    if isinstance(items, (str, os.PathLike, Image.Image)):
        raise TypeError("items must be a sequence of images; wrap a single image in a list")
    if int(max_side) != max_side or max_side < backbone.stride:
        raise ValueError(f"max_side must be an integer >= the stride {backbone.stride}, got {max_side!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if cache is True:
        cache = FeatureCache()
    if backbone.cache_tag is None or cache is False:
        cache = None

    results: list[torch.Tensor | None] = [None] * len(items)
    keys: list[str | None] = [None] * len(items)
    todo: list[int] = []
    for i, item in enumerate(items):
        if cache is not None:
            keys[i] = content_key(item)
            hit = cache.get(backbone, max_side, keys[i])
            if hit is not None:
                results[i] = hit
                continue
        todo.append(i)

    with _progress(len(todo), progress, f"{backbone.name} features") as bar:
        # Decode a chunk at a time so memory stays bounded, batching equal sizes within it.
        chunk = max(batch_size * 4, 32)
        for start in range(0, len(todo), chunk):
            by_size: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = defaultdict(list)
            for i in todo[start : start + chunk]:
                tensor = prepare_image(load_image(items[i]), backbone, max_side)
                by_size[tuple(tensor.shape)].append((i, tensor))
            for group in by_size.values():
                for b in range(0, len(group), batch_size):
                    batch = group[b : b + batch_size]
                    with torch.inference_mode():
                        maps = backbone(torch.stack([t for _, t in batch]).to(backbone.device)).float().cpu()
                    for (i, _), fmap in zip(batch, maps):
                        if cache is not None:
                            cache.put(backbone, max_side, keys[i], fmap)
                            # Serve what the cache holds, so cached and fresh runs agree exactly.
                            fmap = fmap.half().float()
                        results[i] = fmap.clone()
                    bar.update(len(batch))
    return results  # type: ignore[return-value]
