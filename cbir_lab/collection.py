"""A folder of photos indexed on disk: one descriptor per image, stored once, kept up to date, searched at once.

:class:`PhotoCollection` holds a global descriptor (pooled, L2-normalised) of
every image below a folder, whatever its layout: sub-folders are only where
the photos live, not groups, and nothing is scored. The descriptors are stored
under ``$CBIR_LAB_CACHE/collections/<key>/``, where the key is a hash of the
resolved folder path, the backbone (name, layer, weights), the image size and
the pooling, so each setting has its own store:

* ``descriptors-<token>.npy``: float16, shape (N, C), one row per image;
* ``manifest.json``: the settings and, per image, its path inside the folder
  with its size, ``mtime_ns``, content key (:func:`cbir_lab.images.content_key`)
  and row.
* ``descriptor-network.onnx``: the network that computes the descriptors, exported (below).

The files themselves (the key, reading and writing the pair, what is left over) are
:mod:`cbir_lab.descriptor_store`.

:meth:`PhotoCollection.update` brings the store in line with the folder. An
image whose size and modification time match the manifest is trusted as it is;
otherwise its content is hashed, and only content the store has never seen runs
through the network (a touched, renamed or moved photo keeps its descriptor).
Removed images drop out. Every file is written atomically (:func:`cbir_lab.paths.atomic_write`):
the descriptors first, under a new name, then the manifest that points to them,
so a reader always finds a matching pair; a long update saves its progress every
minute, so an interruption loses at most that. A save then removes the files no
manifest points to any more: the previous descriptors, and those of a damaged
store that was rebuilt or of a save that was interrupted.

:meth:`PhotoCollection.search` keeps the descriptor matrix in memory: a further
query in the same session costs one extraction and one matrix-vector product.

Only descriptors are kept, not feature maps (:class:`cbir_lab.features.FeatureCache`):
a map at max side 384 holds about a hundred times the values of its pooled vector, so
another pooling means extracting the folder again, into its own store.

Queries run through the store's exported network when it has one
(``descriptor-network.onnx``, :mod:`cbir_lab.onnx_network`): an update that
extracts images, or a query that had to run in PyTorch, writes it, once it has
been checked to give PyTorch's descriptors. A later process then opens the
store, finds the folder unchanged and answers a query without importing torch
at all: about half a second in all, where loading torch, timm and the backbone
alone takes about four. A pooling that cannot be exported
(:func:`cbir_lab.onnx_network.why_not_exportable`: R-MAC, SPoC's centre prior)
runs in PyTorch; an export that fails for any other reason is named in a warning
and tried again the next time PyTorch is loaded.

For the same reason this module imports PyTorch only when a network must run in
it, and stays off scikit-learn and the plotting stack: the L2 normalisation comes
from :mod:`cbir_lab._array`, which imports numpy alone.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np
from PIL import Image

from cbir_lab._array import l2n
from cbir_lab.backbone_specs import backbone_spec
from cbir_lab.datasets.folder import list_images, matching_images
from cbir_lab.descriptor_store import (MANIFEST, STORE_VERSION, StoreEntry, collection_key, leftover_files,
                                       read_store, remove_files, write_store)
from cbir_lab.images import ImageItem, ImageLoadError, content_key, network_input
from cbir_lab.onnx_network import (DescriptorSession, ExportedNetworkError, export_descriptor_network,
                                   why_not_exportable)
from cbir_lab.paths import atomic_write, cache_dir
from cbir_lab.pooling import GEM, Pooling

if TYPE_CHECKING:
    from cbir_lab.backbones import Backbone

__all__ = ["SearchResult", "CollectionUpdate", "PhotoCollection"]

_NETWORK = "descriptor-network.onnx"
_CHUNK = 64  # images decoded and run per extraction call
_SAVE_EVERY_S = 60.0
_MAX_LISTED = 10


@dataclass(frozen=True)
class SearchResult:
    """One image found by :meth:`PhotoCollection.search`.

    Attributes:
        path: the image file (absolute).
        relative: its path inside the collection's folder, with ``/`` separators.
        score: cosine similarity to the query (1 for the same image, up to float16 rounding).
        row: its row in :attr:`PhotoCollection.descriptors`.
    """

    path: Path
    relative: str
    score: float
    row: int


@dataclass(frozen=True)
class CollectionUpdate:
    """What :meth:`PhotoCollection.update` changed; every entry is a path inside the folder.

    Attributes:
        added: images new to the store.
        changed: images whose content changed.
        removed: images no longer in the folder.
        rehashed: images whose size or modification time changed, so their content was hashed
            (the changed ones, and those only touched or copied over with the same bytes).
        extracted: images run through the network now (new content only: an added image
            with the content of one already stored, e.g. a moved photo, reuses its descriptor).
        unreadable: images that could not be read (left out, tried again next time).
        total: images in the store after the update.
        seconds: how long the update took.
    """

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rehashed: tuple[str, ...] = ()
    extracted: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
    total: int = 0
    seconds: float = 0.0

    def __bool__(self) -> bool:
        """Whether the store changed."""
        return bool(self.added or self.changed or self.removed)

    def summary(self) -> str:
        """One line, e.g. ``"1,204 images: 4 new, 1 changed, 0 removed; 5 extracted in 2.1 s"``."""
        line = (f"{self.total:,} images: {len(self.added)} new, {len(self.changed)} changed, "
                f"{len(self.removed)} removed; {len(self.extracted)} extracted in {self.seconds:.1f} s")
        if self.unreadable:
            line += f"; {len(self.unreadable)} unreadable, left out"
        return line


def _listing(items: Sequence[str]) -> str:
    shown = "\n  ".join(items[:_MAX_LISTED])
    more = f" ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return f"\n  {shown}{more}"


class PhotoCollection:
    """A folder of photos with a stored descriptor per image; see the module docstring.

    Make one with :meth:`open`, bring it up to date with :meth:`update`, then :meth:`search`.

    Attributes:
        folder: the image folder (resolved).
        pooling: how a feature map becomes a descriptor.
        max_side: the long side of the images fed to the network.
        store: the folder holding the descriptors and the manifest.
        paths: each stored image's path inside :attr:`folder`, in row order.
        descriptors: float32 (N, C), unit rows (float16 values, as stored).

    Examples:
        >>> collection = PhotoCollection.open("my_photos", method="GeM")  # doctest: +SKIP
        >>> collection.update().summary()  # doctest: +SKIP
        '1,204 images: 1,204 new, 0 changed, 0 removed; 1,204 extracted in 31.0 s'
        >>> [(r.relative, round(r.score, 2)) for r in collection.search("query.jpg", k=2)]  # doctest: +SKIP
        [('paris/IMG_0001.JPG', 0.81), ('paris/IMG_0007.JPG', 0.74)]
    """

    def __init__(self, folder: Path, backbone: Backbone | str, layer: str, weights: str, pooling: Pooling,
                 max_side: int, store_root: Path, non_images: Literal["warn", "error"], device=None,
                 head: Path | None = None, head_sha256: str | None = None) -> None:
        self.folder = folder
        self.pooling = pooling
        self.max_side = int(max_side)
        self.non_images = non_images
        self._backbone = None if isinstance(backbone, str) else backbone
        self._backbone_name = backbone if isinstance(backbone, str) else backbone.name
        self._layer = layer
        self._stride = backbone_spec(self._backbone_name).layers[layer][1]
        self._session: DescriptorSession | None = None
        self._session_tried = False
        self._export_tried = False
        self._weights = weights
        self._device = device
        self.head = head
        self._head_model = None
        # A trained head's checksum is part of the store's name: another head, another store.
        self.backbone_tag = f"{self._backbone_name}-{layer}-{weights}" + (f"+head-{head_sha256[:16]}" if head else "")
        self.store = store_root / collection_key(folder, self.backbone_tag, self.max_side, pooling)
        self.read_only = False
        self._entries: dict[str, StoreEntry] = {}
        self.paths: list[str] = []
        self.descriptors = np.zeros((0, 0), np.float32)
        self._descriptor_file: str | None = None
        self._leftovers: list[str] = []
        self._load()

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        folder: str | os.PathLike,
        backbone: Backbone | str = "efficientnet_lite0",
        method: Pooling | str = GEM,
        max_side: int = 384,
        *,
        layer: str | None = None,
        cache: str | os.PathLike | None = None,
        non_images: Literal["warn", "error"] = "warn",
        device=None,
        head: str | os.PathLike | None = None,
    ) -> "PhotoCollection":
        """The collection of a folder, with what its store already holds (nothing is extracted here).

        Args:
            folder: the image folder.
            backbone: a loaded :class:`~cbir_lab.backbones.Backbone`, or a backbone name
                (then loaded on first need: opening and an update that finds nothing
                new never load a network).
            method: the pooling (``"GeM"``, ``"SPoC"``, ``"MAC"``, ``"R-MAC"``, …).
            max_side: the long side fed to the network.
            layer: the backbone's layer (default: its last conv map); only with a name.
            cache: the cache folder (default ``$CBIR_LAB_CACHE``); the store is in its ``collections/``.
            non_images: what :meth:`update` does with files that are not images
                (:func:`cbir_lab.datasets.folder.list_images`).
            device: where a backbone given by name runs (default: CUDA when available).
            head: a trained model's ``.pt`` file (:mod:`cbir_lab.trained_heads`, lesson 9): the
                backbone is cut at the model's frozen layer and the model describes its maps
                (``method`` and ``layer`` are then not used); its checksum is checked here.

        Returns:
            The :class:`PhotoCollection`.

        Raises:
            FileNotFoundError, NotADirectoryError: ``folder`` is not a folder.
            ValueError: unknown backbone, layer or pooling; ``max_side`` not a positive
                integer; a backbone with random weights (its descriptors could not be reused).
        """
        path = Path(folder).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"image folder {path} does not exist")
        if not path.is_dir():
            raise NotADirectoryError(f"{path} is a file, not a folder of images")
        if int(max_side) != max_side or max_side < 1:
            raise ValueError(f"max_side must be a positive integer, got {max_side!r}")
        if non_images not in ("warn", "error"):
            raise ValueError(f"non_images must be 'warn' or 'error', not {non_images!r}")
        pooling = Pooling.parse(method)
        head_path, head_sha256 = None, None
        if head is not None:
            from cbir_lab.trained_heads import read_model_info

            head_path = Path(head).expanduser().resolve()
            info = read_model_info(head_path)
            if not isinstance(backbone, str):
                raise ValueError("head= takes a backbone name: the model says which network and layer it starts from")
            backbone, layer, pooling, head_sha256 = info["backbone"], info["frozen_layer"], GEM, info["sha256"]
        if not isinstance(backbone, str):  # a loaded Backbone
            if layer is not None and layer != backbone.layer:
                raise ValueError(f"layer={layer!r} differs from the given backbone's layer {backbone.layer!r}")
            if backbone.weights is None:
                raise ValueError("a backbone with random weights cannot index a collection: its descriptors "
                                 "would mean nothing to the next process; load it with weights='imagenet'")
            layer, weights = backbone.layer, backbone.weights
        else:
            layer = backbone_spec(backbone).resolve_layer(layer)
            weights = "imagenet"
        return cls(path.resolve(), backbone, layer, weights, pooling, int(max_side),
                   cache_dir(cache) / "collections", non_images, device, head_path, head_sha256)

    @property
    def backbone(self) -> Backbone:
        """The network, loaded on first use when the collection was opened with a name."""
        if self._backbone is None:
            from cbir_lab.backbones import load_backbone

            self._backbone = load_backbone(self._backbone_name, self._layer, device=self._device)
        return self._backbone

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (f"PhotoCollection({str(self.folder)!r}, {len(self)} images, {self.backbone_tag}, "
                f"{self.pooling.name}, max_side={self.max_side})")

    def _settings(self) -> dict:
        return {"version": STORE_VERSION, "folder": str(self.folder), "backbone": self.backbone_tag,
                "max_side": self.max_side, "pooling": self.pooling.name}

    def _load(self) -> None:
        """Read the store if there is a valid one; otherwise start empty (an update rebuilds it).

        Either way, note the store's files that no valid manifest points to
        (:func:`cbir_lab.descriptor_store.leftover_files`): the next save removes them.
        """
        try:
            found = read_store(self.store, self._settings())
        except (OSError, ValueError, KeyError, TypeError) as problem:
            warnings.warn(f"the stored index {self.store} cannot be used ({type(problem).__name__}: {problem}); "
                          f"the next update rebuilds it", stacklevel=3)
            found = None
        if found is None:
            self._leftovers = leftover_files(self.store, None)
            return
        entries, matrix, self._descriptor_file = found
        self._entries = entries
        self.paths = sorted(entries, key=lambda rel: entries[rel].row)
        self.descriptors = matrix.astype(np.float32)
        self._leftovers = leftover_files(self.store, self._descriptor_file)

    # ------------------------------------------------------------------ updating

    def _describe_paths(self, paths: Sequence[Path]) -> np.ndarray:
        """Descriptors (n, C) float32 of image files, by PyTorch; raises ImageLoadError naming an unreadable one."""
        from cbir_lab.features import extract_feature_maps

        maps = extract_feature_maps(list(paths), self.backbone, self.max_side, cache=False, progress=False)
        if self.head is not None:
            from cbir_lab.learning import describe_maps

            return describe_maps(self._trained_head(), maps)
        return l2n(self.pooling.pool_each(maps).numpy()).astype(np.float32)

    def _trained_head(self):
        """The trained model of ``head=``, loaded (and its checksum checked again) on first use."""
        if self._head_model is None:
            from cbir_lab.trained_heads import load_trained_model

            self._head_model, _ = load_trained_model(self.head)
        return self._head_model

    def _describe_chunk(self, paths: Sequence[Path]) -> list[np.ndarray | None]:
        """Each path's descriptor, or None for an unreadable image (the chunk is then redone image by image)."""
        try:
            return list(self._describe_paths(paths))
        except ImageLoadError:
            out: list[np.ndarray | None] = []
            for path in paths:
                try:
                    out.append(self._describe_paths([path])[0])
                except ImageLoadError:
                    out.append(None)
            return out

    def update(self, progress: bool | None = None) -> CollectionUpdate:
        """Bring the store in line with the folder; extract only new content.

        Args:
            progress: show a progress bar over the images to extract (default: for 16 or more).

        Returns:
            A :class:`CollectionUpdate` saying what changed.

        Raises:
            FileNotFoundError, NotADirectoryError: the folder has gone.
            ValueError: the folder has no images; non-image files with ``non_images="error"``.
        """
        start = time.perf_counter()
        images = list_images(self.folder, self.non_images)
        old = self._entries
        old_rows_by_key = {entry.key: entry.row for entry in old.values()}
        vectors: dict[str, np.ndarray] = {}  # path → descriptor, for every image the store will hold
        entries: dict[str, tuple[int, int, str]] = {}  # path → (size, mtime_ns, key)
        todo: list[tuple[str, Path]] = []
        added, changed, rehashed, unreadable = [], [], [], []
        order = []
        prefix = len(os.fspath(self.folder)) + 1
        for path in images:
            rel = os.fspath(path)[prefix:].replace(os.sep, "/")  # list_images' paths start with the folder's
            entry = old.get(rel)
            try:
                info = os.stat(path)  # before hashing: a change during the hash shows up next time
                hashed = entry is None or (entry.size, entry.mtime_ns) != (info.st_size, info.st_mtime_ns)
                key = content_key(path) if hashed else entry.key
            except (OSError, ImageLoadError):  # vanished or unreadable since the scan
                unreadable.append(rel)
                continue
            order.append(rel)
            entries[rel] = (info.st_size, info.st_mtime_ns, key)
            if entry is None:
                added.append(rel)
            elif hashed:
                rehashed.append(rel)
                if key != entry.key:
                    changed.append(rel)
            if key in old_rows_by_key:
                vectors[rel] = self.descriptors[old_rows_by_key[key]]
            else:
                todo.append((rel, path))

        extracted = []
        last_save = time.perf_counter()
        if todo:
            from tqdm import tqdm

            show = len(todo) >= 16 if progress is None else progress
            with tqdm(total=len(todo), desc=f"indexing {self.folder.name}", unit="img", disable=not show) as bar:
                for begin in range(0, len(todo), _CHUNK):
                    chunk = todo[begin : begin + _CHUNK]
                    described = self._describe_chunk([path for _, path in chunk])
                    for (rel, _), vector in zip(chunk, described):
                        if vector is None:
                            unreadable.append(rel)
                            entries.pop(rel)
                            order.remove(rel)
                        else:
                            vectors[rel] = vector
                            extracted.append(rel)
                    bar.update(len(chunk))
                    if time.perf_counter() - last_save > _SAVE_EVERY_S and begin + _CHUNK < len(todo):
                        # Save what is known now (images still to extract are left out), so that an
                        # interrupted update keeps its work.
                        self._commit([rel for rel in order if rel in vectors], vectors, entries)
                        last_save = time.perf_counter()
        if unreadable:
            warnings.warn(f"{self.folder}: {len(unreadable)} image(s) cannot be read and are left out of the "
                          f"index (truncated, or not images):{_listing(unreadable)}", stacklevel=2)
        left_out = set(unreadable)
        added = [rel for rel in added if rel not in left_out]
        changed = [rel for rel in changed if rel not in left_out]
        removed = [rel for rel in old if rel not in entries]  # gone, or unreadable now: its descriptor is stale
        if added or changed or removed or rehashed or not (self.store / MANIFEST).exists():
            self._commit(order, vectors, entries)
        if extracted:
            self._export_network()  # torch is loaded now: spare the next process from loading it
        return CollectionUpdate(tuple(added), tuple(changed), tuple(removed), tuple(rehashed), tuple(extracted),
                                tuple(unreadable), len(self), time.perf_counter() - start)

    def _commit(self, order: list[str], vectors: dict[str, np.ndarray], entries: dict[str, tuple[int, int, str]]) -> None:
        """Make ``order`` the collection's content, in memory and (atomically) on disk."""
        if order:
            matrix = np.stack([vectors[rel] for rel in order]).astype(np.float16)
        else:  # every image unreadable: an empty store
            matrix = np.zeros((0, self.descriptors.shape[1]), np.float16)
        self._entries = {rel: StoreEntry(*entries[rel], row=row) for row, rel in enumerate(order)}
        self.paths = list(order)
        self.descriptors = matrix.astype(np.float32)
        if not self.read_only:
            self._save(matrix)

    def _save(self, matrix: np.ndarray) -> None:
        try:
            name = write_store(self.store, self._settings(), self._entries, matrix)
        except OSError as err:  # a read-only cache: the index still works in memory, for this session
            self.read_only = True
            warnings.warn(f"cannot write the index to {self.store} ({err}); it is kept in memory only. "
                          "Set CBIR_LAB_CACHE to a writable folder to keep it.", stacklevel=3)
            return
        remove_files(self.store, {self._descriptor_file, *self._leftovers} - {None, name})
        self._leftovers = []
        self._descriptor_file = name

    # ------------------------------------------------------------------ searching

    def resolve_query(self, query: ImageItem) -> ImageItem:
        """What a query means: a PIL image or ``(path, bbox)`` as it is; a path as given if it
        exists, else a path or a file name (unique there) inside the folder.

        Raises:
            ValueError: a name that several images share (the message lists their paths).
            ImageLoadError: nothing by that name.
        """
        if isinstance(query, Image.Image) or isinstance(query, tuple):
            return query
        given = Path(query).expanduser()
        if given.exists():
            return given
        hits = matching_images(os.fspath(query), self.paths)
        if len(hits) == 1:
            return self.folder / self.paths[hits[0]]
        if len(hits) > 1:
            raise ValueError(f"query {os.fspath(query)!r} matches {len(hits)} images of {self.folder}; give its "
                             f"path inside the folder instead:{_listing([self.paths[i] for i in hits])}")
        raise ImageLoadError(f"query image {os.fspath(query)!r} does not exist (neither as a path nor as an "
                             f"image of {self.folder})")

    def describe(self, query: ImageItem) -> np.ndarray:
        """One image's descriptor, computed as the stored ones are: float32 (C,), unit norm.

        By the store's exported network when it has one (no PyTorch needed), else by
        PyTorch, after which the network is exported for the next query.

        Args:
            query: a path (as given, else inside the folder: a path or a file name that
                is unique there), a PIL image, or ``(path, (x1, y1, x2, y2))`` to crop.
        """
        item = self.resolve_query(query)
        session = self._exported_network()
        if session is not None:
            return session(network_input(item, self.max_side, self._stride))
        vector = self._describe_paths([item])[0]
        self._export_network()
        return vector

    @property
    def runs_without_torch(self) -> bool:
        """Whether a query is described by the store's exported network, without PyTorch."""
        return self._exported_network() is not None

    def _exported_network(self) -> DescriptorSession | None:
        """The store's exported network, loaded on first use; None if there is none or it cannot run here."""
        if not self._session_tried:
            self._session_tried = True
            path = self.store / _NETWORK
            if path.exists():
                try:
                    self._session = DescriptorSession(path)
                except ImportError as err:
                    warnings.warn(f"queries run in PyTorch, which takes seconds to load: {err} "
                                  f"(pip install onnxruntime)", stacklevel=3)
                except ExportedNetworkError as err:
                    warnings.warn(f"{err}; queries run in PyTorch, and the network is exported again", stacklevel=3)
                    if not self.read_only:
                        path.unlink(missing_ok=True)
        return self._session

    def _export_network(self) -> None:
        """Write the store's exported network, if it has none and can have one (PyTorch is loaded by now)."""
        if self._export_tried or self.read_only or why_not_exportable(self.pooling) \
                or (self.store / _NETWORK).exists():
            return
        self._export_tried = True
        try:
            model = export_descriptor_network(self.backbone, self.pooling, self.max_side,
                                              head=None if self.head is None else self._trained_head())
        except (ExportedNetworkError, ImportError) as err:
            warnings.warn(f"the descriptor network cannot be exported, so searches load PyTorch: {err}",
                          stacklevel=3)
            return
        self._write_quietly(self.store / _NETWORK, model)

    def _write_quietly(self, path: Path, data: bytes) -> None:
        """Write a file of the store if possible: the network is a speed-up, not something a search needs."""
        try:
            atomic_write(path, data)
        except OSError:
            pass

    def search(self, query: ImageItem, k: int = 12) -> list[SearchResult]:
        """The ``k`` stored images most similar to ``query``, best first.

        One extraction (:meth:`describe`) and one product with :attr:`descriptors`,
        already in memory; equal scores keep row order, as :func:`cbir_lab.search.rank`
        does. An image of the collection finds itself first, with a score of 1 up to
        float16 rounding.

        Args:
            query: as for :meth:`describe`.
            k: how many results (at most the collection's size).

        Returns:
            :class:`SearchResult` per result.

        Raises:
            ValueError: ``k`` < 1; an empty collection (call :meth:`update`); a name that
                several images share.
            ImageLoadError: the query cannot be read (the message names it).
        """
        if isinstance(k, bool) or int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if len(self) == 0:
            raise ValueError(f"no image of {self.folder} is indexed yet: call update() first")
        vector = self.describe(query)
        scores = self.descriptors @ vector
        rows = np.argsort(-scores, kind="stable")[: int(k)]
        return [SearchResult(self.folder / self.paths[row], self.paths[row], float(scores[row]), int(row))
                for row in rows]
