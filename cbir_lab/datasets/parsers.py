"""Parsers of the papers' benchmarks: unpacked files → a :class:`~cbir_lab.datasets.base.RetrievalDataset`.

One function per benchmark, each under its authors' own protocol:

* :func:`holidays_dataset`: INRIA Holidays (Jégou, Douze & Schmid, ECCV 2008).
* :func:`parse_oxford_gt` and :func:`classic_dataset`: Oxford5k / Paris6k
  (Philbin et al., CVPR 2007 / 2008).
* :func:`read_revisited_gnd` and :func:`revisited_dataset`: ROxford5k / RParis6k
  (Radenović et al., CVPR 2018), reading the ground-truth pickle safely.
* :func:`ukbench_dataset`: UKBench (Nistér & Stewénius, CVPR 2006).

They read folders; what to download, and from where, is in
:mod:`cbir_lab.datasets.registry`.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cbir_lab.datasets.base import RetrievalDataset, gnd_from_groups
from cbir_lab.datasets.download import ChecksumError, file_md5

__all__ = [
    "holidays_dataset",
    "parse_oxford_gt",
    "classic_dataset",
    "read_revisited_gnd",
    "revisited_dataset",
    "ukbench_dataset",
]

_IMAGE_SUFFIXES = (".jpg", ".jpeg")


def _index_images(
    folders: Iterable[Path],
    *,
    name_pattern: str = r".+",
    keep: Callable[[Path], bool] | None = None,
) -> dict[str, Path]:
    """``{stem: path}`` of the JPEG images below ``folders`` whose stem matches."""
    pattern = re.compile(name_pattern)
    index: dict[str, Path] = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                stem, suffix = os.path.splitext(filename)
                if suffix.lower() not in _IMAGE_SUFFIXES or filename.startswith("."):
                    continue
                if not pattern.fullmatch(stem):
                    continue
                path = Path(dirpath) / filename
                if keep is not None and not keep(path):
                    continue
                if stem in index:
                    raise ValueError(f"two images named {stem!r}: {index[stem]} and {path}")
                index[stem] = path
    return index


def _require_images(name: str, index: Mapping[str, Path], folders: Iterable[Path]) -> None:
    if not index:
        where = ", ".join(str(f) for f in folders)
        raise ValueError(f"{name}: no images found in {where}; delete the folder(s) and run again to re-download")


def _positions(names: Iterable[str], position: Mapping[str, int], missing: set[str]) -> list[int]:
    out = []
    for n in names:
        if n in position:
            out.append(position[n])
        else:
            missing.add(n)
    return sorted(set(out))


# --------------------------------------------------------------------------- Holidays


def holidays_dataset(
    image_folders: Iterable[Path], *, rotated: bool = True, name: str = "holidays", licence: str = ""
) -> RetrievalDataset:
    """INRIA Holidays under its authors' protocol.

    The database is every image (1,491); images whose names share their
    first four digits form a group; the query is the group's first image
    (``NNNN00.jpg``, 500 queries). Its positives are the other images of the
    group, and the query itself is marked junk, which removes it from its own
    ranking (:func:`~cbir_lab.datasets.base.gnd_from_groups`).

    Args:
        image_folders: folders holding the ``NNNNNN.jpg`` files (searched recursively).
        rotated: whether these are the community's rotated copies (recorded in
            ``extra['variant']`` only).
        name: dataset name.
        licence: the licence note to attach.

    Returns:
        The dataset, protocol ``"standard"``.
    """
    folders = list(image_folders)
    index = _index_images(folders, name_pattern=r"\d{6}")
    _require_images(name, index, folders)
    names = sorted(index)
    groups = [n[:4] for n in names]
    query_idx = [i for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
    return RetrievalDataset(
        name=name,
        db_images=tuple(index[n] for n in names),
        query_images=tuple(index[names[q]] for q in query_idx),
        gnd=gnd_from_groups(groups, query_idx),
        protocol="standard",
        groups=tuple(groups),
        root=folders[0].parent if folders else None,
        licence=licence,
        extra={"variant": "rotated" if rotated else "original", "query_indices": query_idx},
    )


# --------------------------------------------------------------------------- Oxford / Paris


def parse_oxford_gt(gt_folder: Path) -> list[dict[str, Any]]:
    """Read the Oxford/Paris ground-truth text files.

    Each query ``Q`` (e.g. ``all_souls_1``) has ``Q_query.txt`` holding one
    line ``IMAGE x1 y1 x2 y2`` (Oxford prefixes the image with ``oxc1_``),
    and ``Q_good.txt``, ``Q_ok.txt``, ``Q_junk.txt`` listing image names, one
    per line, without extension.

    Args:
        gt_folder: the unpacked ground-truth archive (searched recursively).

    Returns:
        One dict per query, sorted by query name: ``name``, ``image``,
        ``bbx`` (x1, y1, x2, y2), ``good``, ``ok``, ``junk`` (lists of names).
    """
    query_files = sorted(Path(gt_folder).rglob("*_query.txt"), key=lambda p: p.name)
    if not query_files:
        raise ValueError(f"no *_query.txt ground-truth files in {gt_folder}")
    queries = []
    for qfile in query_files:
        qname = qfile.name[: -len("_query.txt")]
        fields = qfile.read_text(encoding="utf-8").split()
        if len(fields) != 5:
            raise ValueError(f"{qfile}: expected 'IMAGE x1 y1 x2 y2', got {' '.join(fields)!r}")
        image = fields[0][len("oxc1_") :] if fields[0].startswith("oxc1_") else fields[0]
        try:
            bbx = tuple(float(v) for v in fields[1:])
        except ValueError:
            raise ValueError(f"{qfile}: the box {fields[1:]} is not four numbers") from None
        lists = {}
        for kind in ("good", "ok", "junk"):
            path = qfile.with_name(f"{qname}_{kind}.txt")
            if not path.is_file():
                raise ValueError(f"{path} is missing (it goes with {qfile.name})")
            lists[kind] = path.read_text(encoding="utf-8").split()
        queries.append({"name": qname, "image": image, "bbx": bbx, **lists})
    return queries


def classic_dataset(
    name: str,
    image_folders: Iterable[Path],
    gt_folder: Path,
    *,
    exclude: Iterable[str] = (),
    licence: str = "",
) -> RetrievalDataset:
    """Oxford5k / Paris6k under the original protocol (Philbin et al.).

    The database is every image of the archives (less ``exclude``: Paris's
    corrupted files); the 55 queries are cropped to their box. ``good`` and
    ``ok`` images are positives and ``junk`` images are ignored
    (``gnd[q] = {'ok': good + ok, 'junk': junk}``). As in the authors'
    ``compute_ap``, the query image is part of the database and of its own
    ``good`` list, so it counts as a positive (usually found at rank 1).

    Args:
        name: ``"oxford5k"`` or ``"paris6k"``.
        image_folders: unpacked image archives.
        gt_folder: unpacked ground-truth archive.
        exclude: image names to leave out of the database.
        licence: the licence note to attach.

    Returns:
        The dataset, protocol ``"standard"``, with ``query_bboxes``; names of
        ground-truth images not found in the archives in
        ``extra['missing_images']``.
    """
    folders = list(image_folders)
    excluded = set(exclude)
    index = _index_images(
        folders,
        keep=lambda p: p.stem not in excluded and p.stat().st_size > 0,
    )
    _require_images(name, index, folders)
    names = sorted(index)
    position = {n: i for i, n in enumerate(names)}
    queries = parse_oxford_gt(gt_folder)
    missing: set[str] = set()
    gnd = []
    for q in queries:
        if q["image"] not in index:
            raise ValueError(f"{name}: query image {q['image']} (from {q['name']}_query.txt) is not in the archives")
        gnd.append(
            {
                "ok": _positions(q["good"] + q["ok"], position, missing),
                "junk": _positions(q["junk"], position, missing),
            }
        )
    return RetrievalDataset(
        name=name,
        db_images=tuple(index[n] for n in names),
        query_images=tuple(index[q["image"]] for q in queries),
        gnd=tuple(gnd),
        protocol="standard",
        query_bboxes=tuple(q["bbx"] for q in queries),
        root=folders[0].parent if folders else None,
        licence=licence,
        extra={"query_names": [q["name"] for q in queries], "missing_images": sorted(missing)},
    )


# --------------------------------------------------------------------------- Revisited


class _GroundTruthUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a ground-truth file
    needs nothing else, and refusing other classes stops code execution."""

    _ALLOWED = {
        ("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bytes", "bool")
    } | {
        (m, n)
        for m in ("numpy.core.multiarray", "numpy._core.multiarray")
        for n in ("_reconstruct", "scalar")
    } | {("numpy", "ndarray"), ("numpy", "dtype"), ("copyreg", "_reconstructor"), ("_codecs", "encode")}
    # (_codecs.encode: how protocol-2 pickles store the bytes of a numpy array.)

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"ground-truth pickle refers to {module}.{name}, which is not allowed")


def read_revisited_gnd(path: str | os.PathLike, md5: str | None) -> dict[str, Any]:
    """Read a Revisited Oxford/Paris ground-truth pickle, after checking its md5.

    The file is a dict with ``imlist`` (database names, no extension),
    ``qimlist`` (query names) and ``gnd``: one dict per query with ``bbx``
    (x1, y1, x2, y2) and ``easy``, ``hard``, ``junk`` (0-based indices into
    ``imlist``).

    Args:
        path: the ``gnd_*.pkl`` file.
        md5: its expected md5. ``None`` is refused: a pickle can run code, so
            only a pinned file is unpickled (and only with plain containers
            and numpy arrays allowed).

    Returns:
        ``{'imlist': [str], 'qimlist': [str], 'gnd': [{'bbx': (4 floats),
        'easy': [int], 'hard': [int], 'junk': [int]}]}``.

    Raises:
        ChecksumError: the md5 differs or is not pinned.
        ValueError: the content is not in the expected format.
    """
    path = Path(path)
    if md5 is None:
        raise ChecksumError(f"{path}: no md5 is pinned for this pickle, so it will not be unpickled")
    actual = file_md5(path)
    if actual != md5.lower():
        raise ChecksumError(
            f"checksum mismatch for {path}: md5 is {actual}, expected {md5}; it will not be unpickled. "
            f"Delete it and run again to download it afresh."
        )
    try:
        raw = _GroundTruthUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError) as err:
        raise ValueError(f"{path}: not a readable ground-truth pickle ({err})") from err
    if not isinstance(raw, dict) or not {"imlist", "qimlist", "gnd"} <= set(raw):
        raise ValueError(f"{path}: expected a dict with imlist, qimlist and gnd")
    imlist = [str(n) for n in raw["imlist"]]
    qimlist = [str(n) for n in raw["qimlist"]]
    if len(raw["gnd"]) != len(qimlist):
        raise ValueError(f"{path}: {len(raw['gnd'])} gnd entries for {len(qimlist)} queries")
    gnd = []
    for q, entry in enumerate(raw["gnd"]):
        try:
            item = {"bbx": tuple(float(v) for v in entry["bbx"])}
            for key in ("easy", "hard", "junk"):
                item[key] = sorted(int(i) for i in entry[key])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: gnd[{q}] lacks bbx/easy/hard/junk ({err})") from err
        if len(item["bbx"]) != 4:
            raise ValueError(f"{path}: gnd[{q}]['bbx'] has {len(item['bbx'])} values, expected 4")
        bad = [i for key in ("easy", "hard", "junk") for i in item[key] if not 0 <= i < len(imlist)]
        if bad:
            raise ValueError(f"{path}: gnd[{q}] has indices {bad[:5]} outside imlist (size {len(imlist)})")
        gnd.append(item)
    return {"imlist": imlist, "qimlist": qimlist, "gnd": gnd}


def revisited_dataset(
    name: str,
    image_folders: Iterable[Path],
    gnd_file: Path,
    md5: str | None,
    licence: str = "",
) -> RetrievalDataset:
    """ROxford5k / RParis6k under the revisited protocol (Radenović et al. 2018).

    The database is ``imlist`` (4,993 / 6,322 images), the 70 queries are
    ``qimlist`` cropped to their ``bbx`` and are not in the database.
    ``gnd[q]`` keeps ``easy``, ``hard`` and ``junk``; the evaluation scores
    Easy (easy positive; hard and junk ignored), Medium (easy and hard
    positive) and Hard (hard positive; easy and junk ignored).

    A database image missing from the archives (Paris has 20 known-corrupted
    files) is dropped with a warning and the indices renumbered; its name is
    kept in ``extra['missing_images']``.

    Args:
        name: ``"roxford5k"`` or ``"rparis6k"``.
        image_folders: unpacked Oxford or Paris image archives.
        gnd_file: the ``gnd_*.pkl`` file.
        md5: its pinned md5 (checked before unpickling).
        licence: the licence note to attach.

    Returns:
        The dataset, protocol ``"revisited"``, with ``query_bboxes``.
    """
    folders = list(image_folders)
    cfg = read_revisited_gnd(gnd_file, md5)
    index = _index_images(folders, keep=lambda p: p.stat().st_size > 0)
    _require_images(name, index, folders)
    missing_queries = [q for q in cfg["qimlist"] if q not in index]
    if missing_queries:
        raise ValueError(f"{name}: query images missing from the archives: {', '.join(missing_queries[:10])}")
    present = [n for n in cfg["imlist"] if n in index]
    missing = sorted(set(cfg["imlist"]) - set(present))
    renumber = {}
    for old, n in enumerate(cfg["imlist"]):
        if n in index:
            renumber[old] = len(renumber)
    if missing:
        warnings.warn(
            f"{name}: {len(missing)} database image(s) are missing or empty in the archives and were left out "
            f"(e.g. {', '.join(missing[:3])})",
            stacklevel=3,
        )
    gnd = tuple(
        {key: [renumber[i] for i in entry[key] if i in renumber] for key in ("easy", "hard", "junk")}
        for entry in cfg["gnd"]
    )
    return RetrievalDataset(
        name=name,
        db_images=tuple(index[n] for n in present),
        query_images=tuple(index[q] for q in cfg["qimlist"]),
        gnd=gnd,
        protocol="revisited",
        query_bboxes=tuple(entry["bbx"] for entry in cfg["gnd"]),
        root=folders[0].parent if folders else None,
        licence=licence,
        extra={"missing_images": missing, "gnd_file": Path(gnd_file)},
    )


# --------------------------------------------------------------------------- UKBench


def ukbench_dataset(image_folders: Iterable[Path], name: str = "ukbench", licence: str = "") -> RetrievalDataset:
    """UKBench under its authors' protocol (Nistér & Stewénius 2006).

    Images ``ukbench00000.jpg`` ... ``ukbench10199.jpg`` (from the archive's
    ``full/`` folder; thumbnails are ignored) come in groups of four
    consecutive numbers. Every image is a query and its four group members,
    itself included, are its positives (``gnd[q] = {'ok': group, 'junk': []}``);
    the N-S score counts how many of them are in the top 4 (maximum 4).

    Returns:
        The dataset, protocol ``"ukbench"``.
    """
    folders = list(image_folders)
    index = _index_images(folders, name_pattern=r"ukbench\d{5}", keep=lambda p: p.parent.name == "full")
    _require_images(name, index, folders)
    names = sorted(index, key=lambda n: int(n[7:]))
    groups = [f"{int(n[7:]) // 4:04d}" for n in names]
    paths = tuple(index[n] for n in names)
    return RetrievalDataset(
        name=name,
        db_images=paths,
        query_images=paths,
        gnd=gnd_from_groups(groups, range(len(paths)), query_in_database=False),
        protocol="ukbench",
        groups=tuple(groups),
        root=folders[0].parent if folders else None,
        licence=licence,
    )
