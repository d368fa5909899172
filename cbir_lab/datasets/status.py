"""What is on disk: the ``cbir-lab datasets`` listing.

* :func:`dataset_status`: the state of every benchmark in the data folder
  (present, partial or absent), its size, licence, and how to load what is there.
* :func:`image_set_status`: the same for the image sets that learn a whitening or
  serve as distractors (:mod:`cbir_lab.datasets.image_sets`).
* :func:`format_datasets`: the whole listing, the embedded set first, as text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cbir_lab.datasets import embedded, embedded_recipe
from cbir_lab.datasets.download import RemoteFile, human_size
from cbir_lab.datasets.image_sets import IMAGE_SETS, image_set_state
from cbir_lab.datasets.registry import BENCHMARKS, REGISTRY
from cbir_lab.paths import data_dir

__all__ = ["DatasetStatus", "dataset_status", "image_set_status", "format_dataset_status", "format_datasets"]


@dataclass(frozen=True)
class DatasetStatus:
    """One row of the ``cbir-lab datasets`` listing.

    Attributes:
        name: the ``load_dataset`` name.
        state: ``"present"``, ``"partial"`` or ``"absent"``.
        bytes_on_disk: size of its files in the data folder.
        download_bytes: approximate download size (``None`` if unknown).
        n_db: database size; n_queries: number of queries.
        licence: licence / attribution note.
        folder: its folder in the data folder.
        note: anything else worth saying (e.g. which Holidays variant is there).
        load_options: keyword arguments ``load_dataset`` needs for what is
            there (``{"rotated": False}`` when only the original Holidays
            archives are).
    """

    name: str
    state: str
    bytes_on_disk: int
    download_bytes: int | None
    n_db: int
    n_queries: int
    licence: str
    folder: Path
    note: str = ""
    load_options: Mapping[str, object] = field(default_factory=dict)


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for f in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _is_ready(remote: RemoteFile, data_root: Path) -> bool:
    if remote.extract:
        return remote.unpacked(data_root).is_dir()
    return remote.target(data_root).is_file()


def _files_state(keys: Iterable[str], data_root: Path, registry: Mapping[str, RemoteFile]) -> tuple[str, int]:
    ready, started, size = 0, 0, 0
    keys = list(keys)
    for key in keys:
        remote = registry[key]
        target = remote.target(data_root)
        part = target.with_name(target.name + ".part")
        parts = [target, part] + ([remote.unpacked(data_root)] if remote.extract else [])
        size += sum(_tree_size(p) for p in parts if p.exists())
        if _is_ready(remote, data_root):
            ready += 1
        elif target.exists() or part.exists():
            started += 1
    if ready == len(keys):
        return "present", size
    return ("partial" if ready or started else "absent"), size


def dataset_status(
    root: str | os.PathLike | None = None,
    registry: Mapping[str, RemoteFile] | None = None,
) -> list[DatasetStatus]:
    """The state of every benchmark in the data folder.

    A benchmark is ``present`` when all its files are there (archives
    unpacked), ``partial`` when some are (or a download was interrupted), and
    ``absent`` otherwise. ROxford5k/RParis6k share their images with
    Oxford5k/Paris6k, so those bytes count in both rows.

    Args:
        root: data folder (see :func:`cbir_lab.paths.data_dir`).
        registry: the download table (default :data:`REGISTRY`).

    Returns:
        One :class:`DatasetStatus` per benchmark, in :data:`BENCHMARKS` order.
    """
    registry = REGISTRY if registry is None else registry
    data_root = data_dir(root)
    rows = []
    for spec in BENCHMARKS.values():
        state, size = _files_state(spec.files, data_root, registry)
        note, load_options = "", {}
        download = sum(registry[f].size or 0 for f in spec.files) or None
        if spec.alternative_files:  # Holidays: the rotated copy, or the authors' original archives
            alt_state, alt_size = _files_state(spec.alternative_files, data_root, registry)
            size += alt_size
            note = "rotated copy (default)"
            if alt_state == "present" and state != "present":
                state, note = "present", "original archives only: load with rotated=False"
                load_options = {"rotated": False}
            elif alt_state != "absent":
                note += f"; original archives {alt_state}"
        rows.append(
            DatasetStatus(
                name=spec.name,
                state=state,
                bytes_on_disk=size,
                download_bytes=download,
                n_db=spec.n_db,
                n_queries=spec.n_queries,
                licence=spec.licence,
                folder=data_root / registry[spec.files[0]].folder,
                note=note,
                load_options=load_options,
            )
        )
    return rows


def image_set_status(root: str | os.PathLike | None = None) -> list[DatasetStatus]:
    """The state of every image set (:data:`~cbir_lab.datasets.image_sets.IMAGE_SETS`) in the data folder.

    Its images count as database images (a whitening set, distractors, or the
    photos of a real retrieval set, whose queries are counted). The licence
    column gives the set's terms.
    """
    data_root = data_dir(root)
    rows = []
    for spec in IMAGE_SETS.values():
        state, size = image_set_state(spec.name, root)
        rows.append(DatasetStatus(
            name=spec.name, state=state, bytes_on_disk=size, download_bytes=spec.download_bytes,
            n_db=spec.n_images, n_queries=spec.n_queries, licence=spec.terms, folder=data_root / spec.folder,
            note=spec.usage,
        ))
    return rows


def format_dataset_status(rows: Iterable[DatasetStatus] | None = None, root: str | os.PathLike | None = None) -> str:
    """The ``cbir-lab datasets`` table: name, state, size on disk, download size, licence.

    Args:
        rows: from :func:`dataset_status` (computed for ``root`` if omitted);
            other loaders may add their own rows.
        root: data folder.

    Returns:
        A plain-text table, one dataset per line, headed by the data folder.
    """
    rows = list(dataset_status(root) if rows is None else rows)
    header = ("dataset", "state", "on disk", "download", "images", "queries", "licence / notes")
    table = [header] + [
        (
            r.name,
            r.state,
            human_size(r.bytes_on_disk) if r.bytes_on_disk else "-",
            ("~" + human_size(r.download_bytes)) if r.download_bytes else "?",
            str(r.n_db),
            str(r.n_queries),
            r.licence + (f" [{r.note}]" if r.note else ""),
        )
        for r in rows
    ]
    widths = [max(len(row[c]) for row in table) for c in range(len(header) - 1)]
    lines = [f"data folder: {data_dir(root)}"]
    for row in table:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return "\n".join(lines)


def format_datasets(root: str | os.PathLike | None = None) -> str:
    """The ``cbir-lab datasets`` table: the embedded set, every benchmark, then every image set,
    with state, size and licence (or terms)."""
    folder = data_dir(root) / embedded.EMBEDDED_VERSION
    present = (folder / "manifest.json").exists()
    size = sum(p.stat().st_size for p in folder.glob("*.png")) if present else 0
    n_test = len(embedded_recipe.scenes("test"))
    row = DatasetStatus(
        name="embedded",
        state="present" if present else "absent",
        bytes_on_disk=size,
        download_bytes=None,
        n_db=n_test * embedded_recipe.N_DB_VIEWS,
        n_queries=n_test,
        licence=embedded.LICENCE_NOTE.split(";")[0],
        folder=folder,
        note="offline default; generated on first use in seconds" if not present else "offline default",
    )
    return format_dataset_status([row, *dataset_status(root), *image_set_status(root)], root=root)
