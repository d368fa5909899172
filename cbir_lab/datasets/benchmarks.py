"""Getting a paper's benchmark ready: download what it needs, verify it, unpack it, parse it.

* :func:`load_benchmark`: the entry point behind ``load_dataset(name)``.
* :func:`ensure_files`: download, verify and unpack a list of registry files,
  or say exactly which file to put where when that cannot be done.
* :func:`required_files`: which registry files a benchmark needs.

Data folder layout (``data_dir(root)``, i.e. ``root``, ``$CBIR_LAB_DATA`` or
the user cache)::

    holidays/  holidays_rotated.tar.gz  holidays_rotated/...  (or jpg1/, jpg2/)
    oxford5k/  oxbuild_images-v1.tgz  oxbuild_images-v1/  gt_files_170407/
    paris6k/   paris_1-v1/  paris_2-v1/  paris_120310/
    roxford5k/ gnd_roxford5k.pkl        (images: oxford5k/oxbuild_images-v1/)
    rparis6k/  gnd_rparis6k.pkl         (images: paris6k/paris_{1,2}-v1/)
    ukbench/   ukbench.zip  ukbench/full/ukbench00000.jpg ...

Each folder also holds ``checksums.json``: the md5 and sha256 of every file
cbir_lab downloaded there. The URLs and checksums are in
:mod:`cbir_lab.datasets.registry`, the parsers in :mod:`cbir_lab.datasets.parsers`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.datasets.download import MIRROR_ENV, DownloadError, RemoteFile, fetch, human_size, safe_extract, verify_file
from cbir_lab.datasets.registry import BENCHMARKS, REGISTRY, BenchmarkSpec
from cbir_lab.paths import data_dir

__all__ = ["load_benchmark", "ensure_files", "required_files"]


def required_files(name: str, **options: Any) -> tuple[str, ...]:
    """The registry names :func:`load_benchmark` needs for ``name`` and options."""
    return _spec(name).files_for(**options)


def _spec(name: str) -> BenchmarkSpec:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None


def _manual_instructions(name: str, remotes: Iterable[RemoteFile], data_root: Path, reasons: list[str]) -> str:
    lines = [f"The files of {name!r} could not be downloaded" + (":" if reasons else " (download=False).")]
    lines += [f"  {reason}" for reason in reasons]
    lines.append(
        "Download each file by hand (browser, wget or curl) and put it at the path shown; "
        "cbir_lab checks its md5 and unpacks it on the next call:"
    )
    for remote in remotes:
        md5 = f"md5 {remote.md5}" if remote.md5 else "md5 not pinned"
        lines.append(f"  {remote.urls[0]}")
        for alternative in remote.urls[1:]:
            lines.append(f"    (or {alternative})")
        lines.append(f"    -> {remote.target(data_root)}   [{md5}, about {human_size(remote.size)}]")
    lines.append(
        f"Or set {MIRROR_ENV} to a server holding these files under the same names, "
        f"or CBIR_LAB_DATA (or root=) to a folder that already has them."
    )
    spec = BENCHMARKS.get(name)
    if spec is not None and spec.community_copies:
        lines.append(f"If every address above fails: {spec.community_copies}.")
    if any(r.filename == "holidays_rotated.tar.gz" for r in remotes):
        lines.append("Or use the authors' original Holidays archives: load_dataset('holidays', rotated=False).")
    return "\n".join(lines)


def ensure_files(
    name: str,
    files: Iterable[str],
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    mirror: str | None = None,
    progressbar: bool = True,
    retries: int = 2,
    keep_archives: bool = True,
    registry: Mapping[str, RemoteFile] | None = None,
) -> dict[str, Path]:
    """Download, verify and unpack ``files`` into the data folder, as needed.

    Args:
        name: the benchmark (for messages).
        files: registry names.
        root: data folder (see :func:`cbir_lab.paths.data_dir`).
        download: allow network access; if False, only what is on disk is used.
        mirror: base URL replacing the original hosts (default ``$CBIR_LAB_MIRROR``).
        progressbar: show download and unpack progress.
        retries: extra attempts per URL after an interrupted transfer (each resumes).
        keep_archives: keep an archive after unpacking it.
        registry: the download table (default :data:`REGISTRY`).

    Returns:
        ``{registry name: path}``: the unpacked folder of an archive, the file
        itself otherwise.

    Raises:
        DownloadError: some files are missing and cannot be downloaded; the
            message lists every missing file's URL and where to put it.
        ChecksumError: a file does not match its md5.
        CorruptArchiveError, UnsafeArchiveError: an archive cannot be unpacked.
    """
    registry = REGISTRY if registry is None else registry
    data_root = data_dir(root)
    paths: dict[str, Path] = {}
    missing: list[RemoteFile] = []
    reasons: list[str] = []
    for key in files:
        remote = registry[key]
        if remote.extract and remote.unpacked(data_root).is_dir():
            paths[key] = remote.unpacked(data_root)
            continue
        target = remote.target(data_root)
        if target.is_file():
            verify_file(remote, target)
        elif not download:
            missing.append(remote)
            continue
        else:
            try:
                fetch(remote, data_root, mirror=mirror, progressbar=progressbar, retries=retries)
            except DownloadError as err:
                missing.append(remote)
                reasons.append(str(err))
                continue
        if remote.extract:
            paths[key] = safe_extract(target, progressbar=progressbar)
            if not keep_archives:
                target.unlink()
        else:
            paths[key] = target
    if missing:
        raise DownloadError(_manual_instructions(name, missing, data_root, reasons))
    return paths


def load_benchmark(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    mirror: str | None = None,
    progressbar: bool = True,
    retries: int = 2,
    keep_archives: bool = True,
    registry: Mapping[str, RemoteFile] | None = None,
    **options: Any,
) -> RetrievalDataset:
    """Load a paper's benchmark, downloading it into the data folder on first use.

    Args:
        name: ``"holidays"``, ``"oxford5k"``, ``"paris6k"``, ``"roxford5k"``,
            ``"rparis6k"`` or ``"ukbench"``.
        root: data folder (default ``$CBIR_LAB_DATA``, else the user cache).
        download: allow downloading; with ``False`` a missing file raises
            :class:`DownloadError` saying where to put it.
        mirror: base URL replacing every original host (default
            ``$CBIR_LAB_MIRROR``); file ``NAME`` is fetched from ``mirror/NAME``.
        progressbar: show download and unpack progress bars.
        retries: extra attempts after an interrupted transfer (each resumes).
        keep_archives: keep the archives after unpacking (needed to re-verify).
        registry: the download table (default :data:`REGISTRY`).
        **options: per benchmark. Holidays: ``rotated`` (default ``True``)
            uses the community's manually rotated copy, where every photo is
            upright, as most CNN papers do; ``rotated=False`` uses the
            authors' original archives, where about 5% of the photos lie on
            their side (:func:`cbir_lab.images.load_image` honours an EXIF
            orientation tag, which fixes only the photos that record one).
            Say which version you report.

    Returns:
        The dataset under the benchmark's protocol (see :mod:`cbir_lab.datasets.parsers`).

    Raises:
        ValueError: unknown benchmark. TypeError: unknown option.
        DownloadError, ChecksumError, CorruptArchiveError, UnsafeArchiveError:
            see :func:`ensure_files`.
    """
    files = required_files(name, **options)
    registry = REGISTRY if registry is None else registry
    paths = ensure_files(
        name,
        files,
        root,
        download=download,
        mirror=mirror,
        progressbar=progressbar,
        retries=retries,
        keep_archives=keep_archives,
        registry=registry,
    )
    return _spec(name).read(paths, registry, **options)
