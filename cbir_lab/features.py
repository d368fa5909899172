"""Feature maps: images (paths or PIL images) → conv feature maps, cached on disk.

Images are read and resized by :mod:`cbir_lab.images`; this module runs the network on them.

* :func:`pixels_to_tensor` normalises the pixels for a backbone, and
  :func:`prepare_image` resizes and normalises a loaded image.
* :func:`layer_feature_maps` gives one image's pixels and the maps of every
  layer of a backbone, from one read of the file and one forward pass.
* :func:`extract_feature_maps` runs the backbone, batching images of equal
  size, with a progress bar on long runs, and an on-disk :class:`FeatureCache`
  keyed by backbone, layer, image size and image *content*
  (:func:`cbir_lab.images.content_key`), so a changed image is recomputed and an
  unchanged one never is.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from cbir_lab.backbones import Backbone
from cbir_lab.images import ImageItem, content_key, load_image, network_input, resize_for_network
from cbir_lab.paths import atomic_write, cache_dir

__all__ = [
    "pixels_to_tensor",
    "prepare_image",
    "layer_feature_maps",
    "cell_saliency",
    "FeatureCache",
    "extract_feature_maps",
]


# Bump when preprocessing changes, so that old cache entries are never served.
_CACHE_VERSION = "v1"


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
        image: an RGB PIL image (see :func:`cbir_lab.images.load_image`).
        backbone: gives the normalisation and the stride (the minimum side).
        max_side: the long side in pixels after resizing (up or down).

    Returns:
        A float32 tensor of shape (3, H, W), normalised.
    """
    return pixels_to_tensor(np.asarray(resize_for_network(image, max_side, backbone.stride), dtype=np.uint8), backbone)


def layer_feature_maps(item: ImageItem, backbone: Backbone, max_side: int = 384) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One image's pixels and the feature maps of every layer the backbone computes.

    The file is read and resized once; the maps come from one forward pass
    (:meth:`cbir_lab.backbones.Backbone.layer_maps`).

    Args:
        item: the image (see :func:`cbir_lab.images.load_image`).
        backbone: from :func:`cbir_lab.backbones.load_backbone`; its shallower layers come with it.
        max_side: the long side fed to the network.

    Returns:
        (pixels (H, W, 3) uint8, layer name → float32 map (C, H', W'), shallow to deep).
    """
    pixels = network_input(item, max_side, backbone.stride)
    maps = backbone.layer_maps(pixels_to_tensor(pixels, backbone).unsqueeze(0))
    return pixels, {name: fmap[0].numpy() for name, fmap in maps.items()}


def cell_saliency(pixels: np.ndarray, backbone: Backbone, cell: tuple[int, int] | None = None
                  ) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
    """How much each input pixel moves one cell of the backbone's map: the gradient of the cell's channels' sum.

    Luo et al.'s *effective* receptive field (NeurIPS 2016): the gradient of the
    cell's activations (summed over the channels) with respect to the normalised
    input, summed over the three colour channels. It is signed; its magnitude says
    where the cell really looks.

    Args:
        pixels: the image as the network sees it, uint8 (H, W, 3) (:func:`cbir_lab.images.network_input`).
        backbone: from :func:`cbir_lab.backbones.load_backbone`.
        cell: (row, column) of the cell in the map; default the map's central cell.

    Returns:
        (saliency (H, W) float64, the cell, the pixel at the centre of the cell's patch:
        ``(row · s + s // 2, column · s + s // 2)`` for the stride s, inside the image).
    """
    x = pixels_to_tensor(pixels, backbone).unsqueeze(0).to(backbone.device).requires_grad_(True)
    with torch.enable_grad():
        maps = backbone(x)
        h, w = maps.shape[-2:]
        cy, cx = (h // 2, w // 2) if cell is None else cell
        if not (0 <= cy < h and 0 <= cx < w):
            raise ValueError(f"cell {cell} is outside the {h} × {w} map")
        maps[0, :, cy, cx].sum().backward()
    saliency = x.grad[0].sum(dim=0).double().cpu().numpy()
    s = backbone.stride
    centre = (min(cy * s + s // 2, pixels.shape[0] - 1), min(cx * s + s // 2, pixels.shape[1] - 1))
    return saliency, (int(cy), int(cx)), centre


class FeatureCache:
    """An on-disk cache of feature maps, one ``.npy`` file per image (float16).

    Entries live under ``root / <backbone>-<layer>-<weights> / s<max_side> / <key>.npy``
    where key is :func:`cbir_lab.images.content_key`, so a stale entry is impossible: new
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
        items: paths, PIL images, or ``(path, bbox)`` pairs (see :func:`cbir_lab.images.load_image`).
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
