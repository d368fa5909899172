"""The descriptor store on disk: one collection's descriptors and manifest, read and written atomically.

A store is a folder ``<cache>/collections/<key>/`` (:func:`collection_key`) holding

* ``descriptors-<token>.npy``: float16, shape (N, C), one row per image, under a
  new random name at every save;
* ``manifest.json``: the settings the descriptors depend on, the name of the
  descriptor file, and per image (a path inside the folder) its size,
  ``mtime_ns``, content key and row (:class:`StoreEntry`).

:func:`write_store` writes the descriptors first, then the manifest that points
to them (both with :func:`cbir_lab.paths.atomic_write`), so a reader always finds
a matching pair; :func:`read_store` reads them back, checked against the expected
settings; :func:`leftover_files` names the files no manifest points to any more
(a replaced descriptor file, a damaged store's, a killed write's temporary file),
which :func:`remove_files` deletes once a save has succeeded.

What goes into a store, and when, is :class:`cbir_lab.collection.PhotoCollection`'s
business; this module only knows the files. It imports numpy alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cbir_lab.paths import atomic_write
from cbir_lab.pooling import Pooling

__all__ = ["STORE_VERSION", "MANIFEST", "StoreEntry", "collection_key", "read_store", "write_store",
           "leftover_files", "remove_files"]

#: Bump when the store's layout or the descriptors' computation changes: old stores are then rebuilt.
STORE_VERSION = 1
#: The manifest's file name in a store.
MANIFEST = "manifest.json"
_STALE_TMP_S = 3600.0  # a temporary file this old is a killed write's, not one in progress


class StoreEntry(NamedTuple):
    """One stored image: what tells whether its file changed, its content key, and its descriptor's row.

    Attributes:
        size: the file's size in bytes.
        mtime_ns: the file's modification time.
        key: its content key (:func:`cbir_lab.images.content_key`).
        row: its row in the descriptor matrix.
    """

    size: int
    mtime_ns: int
    key: str
    row: int


def collection_key(folder: str | os.PathLike, backbone_tag: str, max_side: int, pooling: Pooling | str) -> str:
    """The name of a collection's store: a hash of everything its descriptors depend on.

    Args:
        folder: the image folder (resolved here, so any spelling of one folder gives one key).
        backbone_tag: :attr:`cbir_lab.backbones.Backbone.cache_tag` (name, layer, weights).
        max_side: the long side fed to the network.
        pooling: the pooling or its name.

    Returns:
        24 hex digits.

    Examples:
        >>> collection_key("/photos", "efficientnet_lite0-conv_head-imagenet", 384, "GeM") == \\
        ...     collection_key("/photos/", "efficientnet_lite0-conv_head-imagenet", 384, "gem")
        True
    """
    settings = {"folder": str(Path(folder).expanduser().resolve()), "backbone": backbone_tag,
                "max_side": int(max_side), "pooling": Pooling.parse(pooling).name, "version": STORE_VERSION}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]


def read_store(store: Path, settings: Mapping) -> tuple[dict[str, StoreEntry], np.ndarray, str] | None:
    """The store's entries, descriptors (float16, as stored) and descriptor file name, if its manifest is there.

    A manifest that vanishes between the two reads (another process replacing the store)
    is read again once.

    Args:
        store: the store's folder.
        settings: what the manifest must record (``version``, ``folder``, ``backbone``, …).

    Returns:
        ``(entries by path, matrix, descriptor file name)``, or None when the store has no manifest.

    Raises:
        OSError, ValueError, KeyError, TypeError: the store cannot be used (unreadable,
            other settings, a manifest that does not match its descriptors).

    Examples:
        >>> import tempfile
        >>> settings, entries = {"version": STORE_VERSION}, {"a.jpg": StoreEntry(10, 7, "k", 0)}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     before = read_store(Path(tmp), settings)
        ...     name = write_store(Path(tmp), settings, entries, np.ones((1, 2), np.float16))
        ...     read, matrix, found = read_store(Path(tmp), settings)
        >>> before is None, read == entries, matrix.shape, found == name
        (True, True, (1, 2), True)
    """
    manifest_path = store / MANIFEST
    for attempt in range(2):
        if not manifest_path.exists():
            return None
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if {k: manifest.get(k) for k in settings} != dict(settings):
                raise ValueError("its settings differ from this collection's")
            matrix = np.load(store / manifest["descriptors"], allow_pickle=False)
            entries = {rel: StoreEntry(int(e["size"]), int(e["mtime_ns"]), str(e["key"]), int(e["row"]))
                       for rel, e in manifest["images"].items()}
            rows = sorted(e.row for e in entries.values())
            if matrix.ndim != 2 or rows != list(range(matrix.shape[0])):
                raise ValueError(f"its manifest lists rows {rows[:3]}... for {matrix.shape} descriptors")
            return entries, matrix, manifest["descriptors"]
        except FileNotFoundError:
            if attempt == 0:
                continue  # another process replaced the store between our two reads: read it again
            raise
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def write_store(store: Path, settings: Mapping, entries: Mapping[str, StoreEntry], matrix: np.ndarray) -> str:
    """Write ``matrix`` under a new name, then the manifest that points to it; return the new file's name.

    The previous descriptor file is left in place (a reader may still be loading it):
    remove it with :func:`remove_files` once this has returned.

    Args:
        store: the store's folder (created if needed).
        settings: what the manifest records first (as :func:`read_store` expects it).
        entries: each image's :class:`StoreEntry`, by path inside the collection's folder.
        matrix: the descriptors, (N, C), saved as given (a collection stores float16).

    Raises:
        OSError: the store cannot be written; the new descriptor file is then removed
            where possible, and the previous pair stays as it was.
    """
    name = f"descriptors-{secrets.token_hex(8)}.npy"
    manifest = {**settings, "descriptors": name, "count": int(matrix.shape[0]),
                "dim": int(matrix.shape[1]),
                "images": {rel: e._asdict() for rel, e in entries.items()}}
    try:
        atomic_write(store / name, lambda handle: np.save(handle, matrix, allow_pickle=False))
        atomic_write(store / MANIFEST, json.dumps(manifest, ensure_ascii=False))
    except OSError:
        try:
            (store / name).unlink(missing_ok=True)
        except OSError:
            pass
        raise
    return name


def leftover_files(store: Path, current: str | None) -> list[str]:
    """The store's files that nothing will read: descriptor files other than ``current`` (those of
    a damaged store, or of a save interrupted before its manifest) and temporary files of killed writes.

    Only the files present now are named, so a descriptor file another process writes later
    is not touched (a process saving at this very moment could lose its file; its manifest
    then fails to load and the store is rebuilt), and a temporary file counts only once it
    is an hour old (a write in progress takes seconds at most).

    Args:
        store: the store's folder (missing: nothing is left over).
        current: the descriptor file the manifest points to, or None.

    Returns:
        File names, sorted.
    """
    leftovers = []
    try:
        for entry in os.scandir(store):
            if entry.name == current:
                continue
            if entry.name.startswith("descriptors-") and entry.name.endswith(".npy"):
                leftovers.append(entry.name)
            elif entry.name.startswith(".") and entry.name.endswith(".tmp") \
                    and time.time() - entry.stat().st_mtime > _STALE_TMP_S:
                leftovers.append(entry.name)
    except OSError:  # no store yet, or a file that vanished meanwhile: nothing to note
        pass
    return sorted(leftovers)


def remove_files(store: Path, names: Iterable[str]) -> None:
    """Delete these files of the store where possible; one that cannot be removed is left, silently."""
    for name in names:
        try:
            (store / name).unlink(missing_ok=True)
        except OSError:  # e.g. another user's file in a shared cache: harmless, only space
            pass
