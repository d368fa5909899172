"""A user's own folder of images as a retrieval dataset.

Two layouts:

* **Grouped** -- one sub-folder per group (photos of one object or place,
  relevant to each other)::

      my_photos/
        sacre_coeur/  a.jpg  b.jpg  c.jpg
        eiffel/       d.jpg  e.jpg

  The database is every image of the folder. By default the query of each
  group is its first image (natural name order: ``img2`` before ``img10``);
  its positives are the other images of the group and the query itself is
  marked junk, so it stays in the database but is left out of its own
  ranking, exactly as in Holidays. Groups with a single image give no query
  (nothing could be found), but their image stays in the database.
* **Flat** -- images directly in the folder: exploratory search without
  ground truth (protocol ``"none"``; the evaluation says it cannot score).
  The default query is the first image.

Queries can instead be listed explicitly, by file name or path (a flat folder
also accepts images from outside it). Image files inside a group's nested
sub-folders belong to that group. Hidden files and folders (``.name``) and
the usual system files (``Thumbs.db``, ``desktop.ini``) are skipped.

Nothing is written anywhere: the folder is only read.
"""

from __future__ import annotations

import os
import re
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from cbir_lab.datasets.base import RetrievalDataset, gnd_from_groups

__all__ = ["IMAGE_EXTENSIONS", "load_folder", "check_images"]

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
    """Images and other (non-hidden, non-system) files below ``folder``."""
    images, others = [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for filename in filenames:
            if filename.startswith(".") or filename.lower() in _SYSTEM_FILES:
                continue
            path = Path(dirpath) / filename
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                images.append(path)
            else:
                others.append(path)
    images.sort(key=lambda p: _natural_key(p.relative_to(folder).as_posix()))
    return images, others


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


def _resolve_queries(
    queries: Iterable[str | os.PathLike],
    folder: Path,
    db: list[Path],
    grouped: bool,
) -> list[tuple[Path, int | None]]:
    """Each query as (path, database index or None for an outside image)."""
    by_path = {os.path.normcase(os.path.realpath(p)): i for i, p in enumerate(db)}
    by_name: dict[str, list[int]] = {}
    for i, p in enumerate(db):
        by_name.setdefault(_name_key(p.name), []).append(i)
        by_name.setdefault(_name_key(p.stem), []).append(i)
    resolved = []
    for query in queries:
        text = os.fspath(query)
        candidate = Path(text).expanduser()
        looks_like_path = candidate.is_absolute() or len(candidate.parts) > 1
        if not looks_like_path:
            hits = sorted(set(by_name.get(_name_key(text), [])))
            if len(hits) == 1:
                resolved.append((db[hits[0]], hits[0]))
                continue
            if len(hits) > 1:
                names = [db[i].relative_to(folder).as_posix() for i in hits]
                raise ValueError(f"query {text!r} matches several images; give its file name or path:{_listing(names)}")
            candidate = folder / candidate
        if not candidate.is_absolute():
            # A relative path is read from the image folder first, then from the working folder.
            inside = folder / candidate
            candidate = inside if inside.exists() or not candidate.exists() else candidate.resolve()
        real = os.path.normcase(os.path.realpath(candidate))
        if real in by_path:
            resolved.append((db[by_path[real]], by_path[real]))
            continue
        if not candidate.is_file():
            examples = [p.relative_to(folder).as_posix() for p in db[:5]]
            raise ValueError(
                f"query {text!r} is not an image of {folder} (give a file name or a path); "
                f"images there include:{_listing(examples)}"
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
        raise ValueError("queries is empty; give at least one, or None for the default")
    return resolved


def load_folder(
    path: str | os.PathLike,
    queries: Iterable[str | os.PathLike] | None = None,
    *,
    name: str | None = None,
    non_images: Literal["error", "ignore"] = "error",
    validate: bool = True,
) -> RetrievalDataset:
    """A folder of the user's images as a :class:`RetrievalDataset`.

    See the module docstring for the two layouts and the protocol.

    Args:
        path: the folder.
        queries: ``None`` for the default (first image of each group with at
            least two images; the first image of a flat folder), or file
            names (with or without extension) / paths of the queries.
        name: dataset name (default: the folder's name).
        non_images: what to do with files that are not images
            (:data:`IMAGE_EXTENSIONS`): ``"error"`` (default) lists them;
            ``"ignore"`` skips them with a warning.
        validate: decode every image first, so a truncated file is reported
            now, by name, rather than deep inside feature extraction.

    Returns:
        Grouped folder: protocol ``"standard"``, ``gnd[q] = {'ok': other
        images of q's group, 'junk': [q's own index]}``, ``groups`` = the
        sub-folder names. Flat folder: protocol ``"none"``, ``gnd=None``.
        ``extra['query_indices']`` holds each query's database index (``None``
        for an outside image).

    Raises:
        FileNotFoundError, NotADirectoryError: ``path`` is not a folder.
        ValueError: no images; non-image files (with ``non_images="error"``);
            images both at the top and in sub-folders; two images with the
            same name (compared case- and Unicode-insensitively), which would
            make names ambiguous; unreadable images; unknown queries.
    """
    folder = Path(path).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder of images")
    folder = folder.resolve()
    images, others = _scan(folder)
    if others:
        listed = [p.relative_to(folder).as_posix() for p in others]
        if non_images == "error":
            raise ValueError(
                f"{folder} holds {len(others)} file(s) that are not images "
                f"({', '.join(sorted(IMAGE_EXTENSIONS))}); move them out, or pass "
                f"non_images='ignore':{_listing(listed)}"
            )
        if non_images != "ignore":
            raise ValueError(f"non_images must be 'error' or 'ignore', not {non_images!r}")
        warnings.warn(f"{folder}: ignoring {len(others)} non-image file(s):{_listing(listed)}", stacklevel=2)
    if not images:
        raise ValueError(
            f"no images in {folder} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}, "
            f"in the folder and its sub-folders)"
        )

    top = [p for p in images if p.parent == folder]
    nested = [p for p in images if p.parent != folder]
    if top and nested:
        raise ValueError(
            f"{folder} has images both at its top level and in sub-folders. Use sub-folders only "
            f"(one per group) or a flat folder only; top-level images:{_listing([p.name for p in top])}"
        )

    seen: dict[str, Path] = {}
    clashes = []
    for p in images:
        key = _name_key(p.name)
        if key in seen:
            clashes.append(f"{seen[key].relative_to(folder).as_posix()}  and  {p.relative_to(folder).as_posix()}")
        else:
            seen[key] = p
    if clashes:
        raise ValueError(
            f"{folder}: images must have distinct file names (queries and results are shown by name); "
            f"rename these:{_listing(clashes)}"
        )

    if validate:
        check_images(images)

    grouped = bool(nested)
    groups = [p.relative_to(folder).parts[0] for p in images] if grouped else None
    if grouped:
        order = sorted(range(len(images)), key=lambda i: (_natural_key(groups[i]), _natural_key(images[i].name)))
        images = [images[i] for i in order]
        groups = [groups[i] for i in order]
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups or []):
        members.setdefault(g, []).append(i)

    if queries is None:
        if grouped:
            singletons = [g for g, idx in members.items() if len(idx) < 2]
            chosen = [(images[idx[0]], idx[0]) for idx in members.values() if len(idx) >= 2]
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
        extra={"query_indices": [q for _, q in chosen], "layout": "grouped" if grouped else "flat"},
    )
