"""A user's own folder of images as a retrieval dataset.

Two layouts:

* **Grouped** -- one sub-folder per group (photos of one object or place,
  relevant to each other)::

      my_photos/
        paris/  IMG_0001.JPG  IMG_0002.JPG  IMG_0003.JPG
        rome/   IMG_0001.JPG  IMG_0002.JPG

  The database is every image of the folder. By default the query of each
  group is its first image (natural order of the paths inside the group:
  ``img2`` before ``img10``);
  its positives are the other images of the group and the query itself is
  marked junk, so it stays in the database but is left out of its own
  ranking, exactly as in Holidays. With ``queries="all"`` every image of a
  group with two or more images is a query once, in the same way (UKBench and
  leave-one-out evaluations). Groups with a single image give no query
  (nothing could be found), but their image stays in the database.
* **Flat** -- images directly in the folder: exploratory search without
  ground truth (protocol ``"none"``; the evaluation says it cannot score).
  The default query is the first image.

Images are identified by their path inside the folder, so camera file names
that repeat across sub-folders (``paris/IMG_0001.JPG``, ``rome/IMG_0001.JPG``)
are fine, and that path (without extension) is how an image is named on screen
(:meth:`~cbir_lab.datasets.base.RetrievalDataset.label`). Queries can be listed
explicitly, by file name when it is unique in the folder, or by path (a flat
folder also accepts images from outside it). Image files inside a group's
nested sub-folders belong to that group.

:func:`list_images` is the scan every user folder goes through: hidden files
and folders (``.name``) and the usual system files (``Thumbs.db``,
``desktop.ini``) are skipped silently; other files that are not images
(``README.txt``, ``notes.pdf``) are skipped with one warning naming them, or
refused with ``non_images="error"``.

Nothing is written anywhere: the folder is only read.
"""

from __future__ import annotations

import os
import re
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath, PurePosixPath
from typing import Literal

from cbir_lab.datasets.base import RetrievalDataset, gnd_from_groups

__all__ = ["IMAGE_EXTENSIONS", "list_images", "matching_images", "load_folder", "check_images"]

#: File name endings taken as images (compared case-insensitively).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_SYSTEM_FILES = frozenset({"thumbs.db", "desktop.ini", ".ds_store"})
_MAX_LISTED = 10


def _name_key(name: str) -> str:
    """How names are compared: Unicode NFC, case-folded (macOS and Windows agree)."""
    return unicodedata.normalize("NFC", name).casefold()


def _natural_key(name: str) -> list:
    """Sort key with digit runs compared as numbers: ``img2`` < ``img10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", _name_key(name))]


def _listing(items: Sequence[object]) -> str:
    shown = [str(i) for i in items[:_MAX_LISTED]]
    more = f" ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return "\n  " + "\n  ".join(shown) + more


def _scan(folder: Path) -> tuple[list[Path], list[Path]]:
    """Images and other (non-hidden, non-system) files below ``folder``, each in natural order of its path there."""
    images, others = [], []
    top = os.fspath(folder)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        # Paths inside the folder as strings: pathlib's relative_to costs more than the scan itself
        # on a folder of 10,000 photos, which every `cbir-lab search` scans.
        inside = os.path.relpath(dirpath, top).replace(os.sep, "/")
        prefix = "" if inside == "." else inside + "/"
        for filename in filenames:
            if filename.startswith(".") or filename.lower() in _SYSTEM_FILES:
                continue
            found = images if os.path.splitext(filename)[1].lower() in IMAGE_EXTENSIONS else others
            found.append((_natural_key(prefix + filename), os.path.join(dirpath, filename)))
    return [Path(p) for _, p in sorted(images)], [Path(p) for _, p in sorted(others)]


def list_images(path: str | os.PathLike, non_images: Literal["warn", "error"] = "warn") -> list[Path]:
    """Every image file below a folder, in natural order of their paths inside it.

    Hidden files and folders and system files (``Thumbs.db``, ``desktop.ini``)
    are skipped silently. Any other file whose extension is not in
    :data:`IMAGE_EXTENSIONS` (a ``README.txt``, ``notes.pdf``) is skipped with
    one warning that names the files, or refused.

    Args:
        path: the folder.
        non_images: ``"warn"`` (default): skip other files with one
            ``UserWarning``; ``"error"``: raise instead.

    Returns:
        Absolute paths of the images, inside ``path`` resolved (symbolic links followed).

    Raises:
        FileNotFoundError, NotADirectoryError: ``path`` is not a folder.
        ValueError: no images; non-image files with ``non_images="error"``;
            an unknown ``non_images``.
    """
    if non_images not in ("warn", "error"):
        raise ValueError(f"non_images must be 'warn' or 'error', not {non_images!r}")
    folder = Path(path).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder of images")
    folder = folder.resolve()
    images, others = _scan(folder)
    if others:
        listed = [p.relative_to(folder).as_posix() for p in others]
        kinds = ", ".join(sorted(IMAGE_EXTENSIONS))
        if non_images == "error":
            raise ValueError(
                f"{folder} holds {len(others)} file(s) that are not images ({kinds}); move them out, "
                f"or pass non_images='warn' to skip them:{_listing(listed)}"
            )
        warnings.warn(f"{folder}: skipping {len(others)} file(s) that are not images ({kinds}):{_listing(listed)}",
                      stacklevel=2)
    if not images:
        raise ValueError(
            f"no images in {folder} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}, "
            f"in the folder and its sub-folders)"
        )
    return images


def check_images(paths: Iterable[Path]) -> None:
    """Decode every image (at reduced resolution) to find broken files early.

    Args:
        paths: image files.

    Raises:
        ValueError: naming every file that cannot be read (truncated, empty,
            not really an image), with the reason.
    """
    from PIL import Image, ImageFile

    if ImageFile.LOAD_TRUNCATED_IMAGES:
        warnings.warn("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: truncated images will not be detected", stacklevel=2)
    bad = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.draft("RGB", (64, 64))  # JPEG: decode at 1/8 scale, still reads every byte
                image.load()
        except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... all mean "broken"
            bad.append(f"{path}: {type(err).__name__}: {err}")
    if bad:
        raise ValueError(f"{len(bad)} image file(s) cannot be read (truncated or not images):{_listing(bad)}")


def matching_images(name: str | os.PathLike, relative_paths: Sequence[str]) -> list[int]:
    """Which images a name typed by a user means, among images known by their path inside a folder.

    Names are compared case- and Unicode-insensitively. A bare file name
    matches every image with that file name, with or without its extension (so
    it can match several: ``IMG_0001`` in ``paris/`` and in ``rome/``); a name
    with folders matches the image at that path, with or without extension.

    Args:
        name: what the user typed (``"IMG_0001.JPG"``, ``"img_0001"``, ``"rome/IMG_0001"``).
        relative_paths: each image's path inside the folder, with ``/`` separators.

    Returns:
        Indices into ``relative_paths``, in order; empty when nothing matches.

    Examples:
        >>> photos = ["paris/IMG_0001.JPG", "rome/IMG_0001.JPG", "rome/IMG_0002.JPG"]
        >>> matching_images("IMG_0001", photos)
        [0, 1]
        >>> matching_images("rome/img_0001.jpg", photos), matching_images("rome/IMG_0002", photos)
        ([1], [2])
    """
    typed = PurePath(os.fspath(name))
    bare = len(typed.parts) == 1
    key = _name_key(typed.as_posix())
    hits = []
    for i, rel in enumerate(relative_paths):
        path = PurePosixPath(rel)
        if bare:
            forms = (path.name, path.stem)
        else:
            forms = (rel, path.with_suffix("").as_posix())
        if key in (_name_key(f) for f in forms):
            hits.append(i)
    return hits


def _resolve_queries(
    queries: Iterable[str | os.PathLike],
    folder: Path,
    db: list[Path],
    grouped: bool,
) -> list[tuple[Path, int | None]]:
    """Each query as (path, database index or None for an outside image)."""
    by_path = {os.path.normcase(os.path.realpath(p)): i for i, p in enumerate(db)}
    relative = [p.relative_to(folder).as_posix() for p in db]
    resolved = []
    for query in queries:
        text = os.fspath(query)
        candidate = Path(text).expanduser()
        if not candidate.is_absolute():
            hits = matching_images(text, relative)
            if len(hits) == 1:
                resolved.append((db[hits[0]], hits[0]))
                continue
            if len(hits) > 1:
                raise ValueError(
                    f"query {text!r} matches {len(hits)} images of {folder}; give its path inside the folder "
                    f"instead, e.g. {relative[hits[0]]!r}:{_listing([relative[i] for i in hits])}"
                )
            if len(candidate.parts) == 1:  # a bare name is looked up in the image folder only
                candidate = folder / candidate
        real = os.path.normcase(os.path.realpath(candidate))
        if real in by_path:  # e.g. the folder's image given by a path from the working folder
            resolved.append((db[by_path[real]], by_path[real]))
            continue
        if not candidate.is_file():
            raise ValueError(
                f"query {text!r} is not an image of {folder} (give a file name or a path); "
                f"images there include:{_listing(relative[:5])}"
            )
        if grouped:
            raise ValueError(
                f"query {text!r} is outside {folder}: in a grouped folder every query must be one of its "
                f"images, since its group defines what is relevant"
            )
        if candidate.suffix.lower() not in IMAGE_EXTENSIONS:
            raise ValueError(f"query {text!r} is not an image file ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        resolved.append((candidate.resolve(), None))
    if not resolved:
        raise ValueError("queries is empty; give at least one, 'all', or None for the default")
    return resolved


def load_folder(
    path: str | os.PathLike,
    queries: Iterable[str | os.PathLike] | Literal["all"] | None = None,
    *,
    name: str | None = None,
    non_images: Literal["warn", "error"] = "warn",
    validate: bool = True,
) -> RetrievalDataset:
    """A folder of the user's images as a :class:`RetrievalDataset`.

    See the module docstring for the two layouts and the protocol.

    Args:
        path: the folder.
        queries: ``None`` for the default (first image of each group with at
            least two images; the first image of a flat folder); ``"all"``
            for every image of every group with at least two images, each
            kept in the database as junk in its own ranking (grouped folders
            only); or file names (with or without extension, unique in the
            folder) / paths of the queries (an image named ``all`` is
            ``["all"]``).
        name: dataset name (default: the folder's name).
        non_images: what to do with files that are not images
            (:data:`IMAGE_EXTENSIONS`), see :func:`list_images`: ``"warn"``
            (default) skips them with one warning naming them; ``"error"``
            refuses the folder.
        validate: decode every image first, so a truncated file is reported
            now, by name, rather than deep inside feature extraction.

    Returns:
        Grouped folder: protocol ``"standard"``, ``gnd[q] = {'ok': other
        images of q's group, 'junk': [q's own index]}``, ``groups`` = the
        sub-folder names. Flat folder: protocol ``"none"``, ``gnd=None``.
        ``extra['query_indices']`` holds each query's database index (``None``
        for an outside image); ``extra['labels'] == "relative"``, so images
        are named by their path inside the folder.

    Raises:
        FileNotFoundError, NotADirectoryError: ``path`` is not a folder.
        ValueError: no images; non-image files (with ``non_images="error"``);
            images both at the top and in sub-folders; unreadable images;
            unknown queries, or a file name that several images share (the
            message lists them: give a path inside the folder instead);
            ``queries="all"`` on a flat folder.
    """
    images = list_images(path, non_images)
    folder = Path(path).expanduser().resolve()

    top = [p for p in images if p.parent == folder]
    nested = [p for p in images if p.parent != folder]
    if top and nested:
        raise ValueError(
            f"{folder} has images both at its top level and in sub-folders. Use sub-folders only "
            f"(one per group) or a flat folder only; top-level images:{_listing([p.name for p in top])}"
        )

    if validate:
        check_images(images)

    grouped = bool(nested)
    groups = [p.relative_to(folder).parts[0] for p in images] if grouped else None
    if grouped:
        relative = [p.relative_to(folder).parts[1:] for p in images]
        order = sorted(range(len(images)),
                       key=lambda i: (_natural_key(groups[i]), _natural_key("/".join(relative[i]))))
        images = [images[i] for i in order]
        groups = [groups[i] for i in order]
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups or []):
        members.setdefault(g, []).append(i)

    if queries is None or (isinstance(queries, str) and queries == "all"):
        every = queries == "all"
        if every and not grouped:
            raise ValueError(
                f"queries='all' needs a grouped folder (one sub-folder per group of related images): "
                f"{folder} is flat, so no image has anything to find"
            )
        if grouped:
            singletons = [g for g, idx in members.items() if len(idx) < 2]
            chosen = [(images[i], i) for idx in members.values() if len(idx) >= 2 for i in (idx if every else idx[:1])]
            if not chosen:
                raise ValueError(
                    f"{folder}: every group has a single image, so no query has anything to find; "
                    f"put at least two images in some sub-folder"
                )
            if singletons:
                warnings.warn(
                    f"{folder}: group(s) with one image give no query (their image stays in the database): "
                    f"{', '.join(singletons[:_MAX_LISTED])}",
                    stacklevel=2,
                )
        else:
            chosen = [(images[0], 0)]
    else:
        if isinstance(queries, (str, os.PathLike)):
            queries = [queries]
        chosen = _resolve_queries(queries, folder, images, grouped)

    gnd = gnd_from_groups(groups, [q for _, q in chosen]) if grouped else None
    return RetrievalDataset(
        name=name or folder.name,
        db_images=tuple(images),
        query_images=tuple(p for p, _ in chosen),
        gnd=gnd,
        protocol="standard" if grouped else "none",
        groups=tuple(groups) if grouped else None,
        root=folder,
        licence="the user's own images",
        extra={"query_indices": [q for _, q in chosen], "layout": "grouped" if grouped else "flat",
               "labels": "relative"},
    )
