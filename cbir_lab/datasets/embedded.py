"""The embedded benchmark: a small, ground-truthed retrieval set made offline from real photos.

``load_dataset()`` with no argument returns this set. It needs no download: every
image is derived from a real photograph that ships inside an installed dependency
(scikit-image's ``skimage.data``, scikit-learn's sample images, matplotlib's sample
data). The recipe follows INRIA Copydays (Douze et al., 2009) and the Oxford
protocol:

* Each **source photo** is cut into one or more non-overlapping **scenes**. Scenes
  cut from the same photo (six patches of the Hubble deep field, four quadrants of
  the astronaut photo) look alike without showing the same thing: they are hard
  negatives for each other, like two façades of one building.
* Each **test scene** gives one **query** (a mild crop, held out from the database,
  as in Oxford) and :data:`~cbir_lab.datasets.embedded_recipe.N_DB_VIEWS`
  **database views**: crops down to about 30 % of the scene, scale changes,
  rotations, perspective warps, illumination and colour shifts, blur, JPEG
  compression and partial occlusion, one or two at a time.
  ``gnd[q]['ok']`` lists the database views of query ``q``'s scene.
* The **training scenes** come from other source photos (whole photos are either
  train or test, never both), and give
  :data:`~cbir_lab.datasets.embedded_recipe.N_TRAIN_VIEWS` views each for learning
  PCA-whitening (``train_images``). Test images are never used for whitening.

Generation is deterministic (a fixed seed, parameters drawn from a numpy Generator
and rounded, the image operations done by Pillow) and takes a few seconds. The
images are written once as PNG files to ``data_dir(root) / "embedded-v1"`` with a
JSON manifest, and are checked and reused by later calls.

The recipe (source photos, scenes, views) is :mod:`cbir_lab.datasets.embedded_recipe`;
this module writes its views to disk with a manifest, checks them and loads them.

Sources and licences: :func:`cbir_lab.datasets.embedded_recipe.source_photos`, and
``data/ATTRIBUTION.md`` in the repository.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.datasets.embedded_recipe import (N_DB_VIEWS, N_TRAIN_VIEWS, SEED, Role, Scene, View, _load_photo,
                                               render_scene, scenes, source_photos)
from cbir_lab.paths import atomic_write, data_dir

__all__ = [
    "EMBEDDED_VERSION",
    "EXPECTED_SHA256",
    "LICENCE_NOTE",
    "generate_embedded",
    "load_embedded",
    "pixel_sha256",
    "dataset_sha256",
]

EMBEDDED_VERSION = "embedded-v1"
"""Name of the recipe, and of the folder it is written to. Bump it when the recipe changes."""

EXPECTED_SHA256 = "a03915f087889ccafb7129d3ddd54fffdc773eb4a1901d6a3a4583b265d91ec0"
"""sha256 over the RGB pixel bytes of every image, in manifest order (see
:func:`dataset_sha256`), as generated with Pillow 13.0, numpy 2.4, scikit-image 0.26,
scikit-learn 1.9 and matplotlib 3.11 on x86-64 Linux. Per-image digests are listed in
``data/embedded-v1.sha256``. Six photos are JPEG files and one view operation is a
JPEG round trip, so another libjpeg build may change a few images by a grey level."""

_MANIFEST = "manifest.json"
LICENCE_NOTE = (
    "Derived from public-domain, CC0 and CC-BY 2.0 photos shipped with scikit-image, "
    "scikit-learn and matplotlib; see cbir_lab.datasets.embedded_recipe.source_photos() "
    "and data/ATTRIBUTION.md."
)


# --------------------------------------------------------------------------- files


def _expected_files() -> list[tuple[str, str, Role]]:
    """(file, scene, role) of every image, in manifest order, without rendering anything."""
    out: list[tuple[str, str, Role]] = []
    for scene in scenes():
        if scene.split == "test":
            out.append((f"{scene.name}_query.png", scene.name, "query"))
            out += [(f"{scene.name}_db{k}.png", scene.name, "db") for k in range(N_DB_VIEWS)]
        else:
            out += [(f"{scene.name}_train{k:02d}.png", scene.name, "train") for k in range(N_TRAIN_VIEWS)]
    return out


def pixel_sha256(image: Image.Image | np.ndarray | str | os.PathLike) -> str:
    """sha256 of an image's RGB pixel bytes (row-major, uint8), independent of the file format.

    Args:
        image: a PIL image, an (H, W, 3) uint8 array or the path of an image file.

    Returns:
        The hex digest.
    """
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as im:
            image = im.convert("RGB")
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


def dataset_sha256(folder: str | os.PathLike) -> str:
    """sha256 over all images' RGB pixel bytes, in the order of the folder's manifest.

    Args:
        folder: a generated ``embedded-v1`` folder.

    Returns:
        The hex digest, to compare with :data:`EXPECTED_SHA256`.
    """
    folder = Path(folder)
    manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    digest = hashlib.sha256()
    for entry in manifest["images"]:
        with Image.open(folder / entry["file"]) as im:
            digest.update(np.asarray(im.convert("RGB")).tobytes())
    return digest.hexdigest()


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # fast; the pixels are what count
    return buffer.getvalue()


def _entry(view: View, png: bytes) -> dict:
    return {
        "file": view.file,
        "group": view.scene,
        "role": view.role,
        "sha256": pixel_sha256(view.image),
        "shape": [view.image.height, view.image.width, 3],
        "file_sha256": hashlib.sha256(png).hexdigest(),
        "recipe": list(view.recipe),
    }


def _file_ok(folder: Path, entry: dict) -> bool:
    """Whether a file holds the manifest's pixels: its bytes' hash, else its decoded pixels' hash."""
    path = folder / entry["file"]
    try:
        if hashlib.sha256(path.read_bytes()).hexdigest() == entry.get("file_sha256"):
            return True
        # Same pixels, other PNG encoder (a data folder shared between machines).
        with Image.open(path) as im:
            im.load()
            if im.mode != "RGB" or [im.height, im.width, 3] != entry["shape"]:
                return False
            return pixel_sha256(im) == entry["sha256"]
    except (OSError, ValueError, SyntaxError):
        return False


def _read_manifest(folder: Path) -> dict | None:
    """The manifest if it exists, parses and lists exactly the files of this recipe, else None."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
        listed = [(e["file"], e["group"], e["role"]) for e in manifest["images"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # The recorded checksum names the recipe: a manifest written by another recipe is stale.
    if (
        manifest.get("version") != EMBEDDED_VERSION
        or manifest.get("recipe_sha256") != EXPECTED_SHA256
        or listed != _expected_files()
    ):
        return None
    return manifest


def generate_embedded(
    folder: str | os.PathLike,
    only: Iterable[str] | None = None,
    manifest: dict | None = None,
) -> dict:
    """Render the embedded set into ``folder`` and write its manifest.

    Args:
        folder: target folder (created if needed). Only files named in the manifest and
            ``manifest.json`` itself are written; nothing is deleted.
        only: file names to (re)write; ``None`` writes every image.
        manifest: an existing manifest to update when ``only`` is given.

    Returns:
        The manifest: ``{"version", "recipe_sha256", "seed", "made_with", "images":
        [{"file", "group", "role", "sha256", "shape", "file_sha256", "recipe"}, ...]}``,
        images in manifest order. ``sha256`` hashes the RGB pixel bytes,
        ``file_sha256`` the PNG file.

    Raises:
        PermissionError: naming the folder, when it cannot be written.
    """
    folder = Path(folder)
    wanted = None if only is None else set(only)
    old = {e["file"]: e for e in manifest["images"]} if manifest and wanted is not None else {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        photos = {p.name: p for p in source_photos()}
        todo = [
            scene for scene in scenes()
            if wanted is None or wanted.intersection(f for f, s, _ in _expected_files() if s == scene.name)
        ]
        loaded = {name: _load_photo(photos[name]) for name in dict.fromkeys(s.photo for s in todo)}

        def render_and_encode(scene: Scene) -> list[tuple[View, bytes]]:
            return [(v, _png_bytes(v.image)) for v in render_scene(scene, loaded[scene.photo])
                    if wanted is None or v.file in wanted]

        # Pillow releases the GIL while it resizes, warps and encodes, so scenes render in
        # parallel; each scene has its own random stream, so the order does not matter.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            rendered = dict(zip((s.name for s in todo), pool.map(render_and_encode, todo)))
        new_entries: dict[str, dict] = {}
        for views in rendered.values():
            for view, png in views:
                atomic_write(folder / view.file, png)
                new_entries[view.file] = _entry(view, png)
        entries = [new_entries[f] if f in new_entries else old[f] for f, _, _ in _expected_files()]
        result = {
            "version": EMBEDDED_VERSION,
            "recipe_sha256": EXPECTED_SHA256,
            "seed": SEED,
            "made_with": {"numpy": np.__version__, "pillow": Image.__version__},
            "images": entries,
        }
        atomic_write(folder / _MANIFEST, json.dumps(result, indent=1).encode("utf-8"))
    except PermissionError as err:
        raise PermissionError(
            f"cannot write the embedded dataset to {folder}: {err.strerror}. "
            "Point CBIR_LAB_DATA (or root=) at a writable folder."
        ) from err
    return result


def load_embedded(root: str | os.PathLike | None = None, *, force: bool = False) -> RetrievalDataset:
    """The embedded benchmark, generated on first use and reused afterwards.

    The images live in ``data_dir(root) / "embedded-v1"``. A later call checks every
    file against the manifest and regenerates only those that are missing or damaged.

    Args:
        root: data folder (default: ``$CBIR_LAB_DATA`` or the user cache).
        force: regenerate every image even if the folder looks complete.

    Returns:
        A :class:`RetrievalDataset` with protocol ``"standard"``: one query per test
        scene (not in the database), ``gnd[q] = {'ok': [that scene's database
        views], 'junk': []}``, ``groups`` = the scene of each database image, and
        ``train_images`` = the views of the training scenes (disjoint photos).
        ``query_clusters`` = the source photo of each query (the unit a bootstrap
        resamples: scenes cut from one photo are not independent). ``extra`` holds
        ``query_groups``, ``recipes`` (file → operations) and ``manifest`` (its path).
    """
    folder = data_dir(root) / EMBEDDED_VERSION
    manifest = None if force else _read_manifest(folder)
    if manifest is None:
        manifest = generate_embedded(folder)
    else:
        damaged = [e["file"] for e in manifest["images"] if not _file_ok(folder, e)]
        if damaged:
            manifest = generate_embedded(folder, only=damaged, manifest=manifest)

    entries = manifest["images"]
    db = [e for e in entries if e["role"] == "db"]
    queries = [e for e in entries if e["role"] == "query"]
    index_of_group: dict[str, list[int]] = {}
    for i, e in enumerate(db):
        index_of_group.setdefault(e["group"], []).append(i)
    gnd = tuple({"ok": list(index_of_group[q["group"]]), "junk": []} for q in queries)
    photo_of = {scene.name: scene.photo for scene in scenes("test")}
    return RetrievalDataset(
        name="embedded",
        db_images=tuple(folder / e["file"] for e in db),
        query_images=tuple(folder / e["file"] for e in queries),
        gnd=gnd,
        protocol="standard",
        train_images=tuple(folder / e["file"] for e in entries if e["role"] == "train"),
        groups=tuple(e["group"] for e in db),
        root=folder,
        licence=LICENCE_NOTE,
        query_clusters=tuple(photo_of[q["group"]] for q in queries),
        cluster_unit="source photos",
        extra={
            "query_groups": tuple(q["group"] for q in queries),
            "recipes": {e["file"]: tuple(e["recipe"]) for e in entries},
            "manifest": folder / _MANIFEST,
            "version": EMBEDDED_VERSION,
        },
    )
