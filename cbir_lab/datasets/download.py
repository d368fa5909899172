"""Download, verify and safely unpack the files a benchmark needs.

The pieces a dataset registry is built from:

* :class:`RemoteFile`: one downloadable file (its URLs, md5, the data
  sub-folder it lives in, whether it is an archive to unpack).
* :func:`fetch`: download a file once into the data folder with :mod:`pooch`
  (checksum verified, progress bar), resuming an interrupted transfer with an
  HTTP ``Range`` request (:class:`ResumableHTTPDownloader`).
* :func:`safe_extract`: unpack a ``.tar.gz``/``.tgz``/``.zip`` archive, refusing
  any member that would land outside the target folder (``../`` names,
  absolute names, links pointing out, device files), and never leaving a
  half-unpacked folder behind.
* :func:`verify_file`: check a file already on disk against its pinned md5,
  or against the md5 recorded when it was downloaded (``checksums.json``).

Everything is written below the data folder: downloads go to a ``.part`` file
next to their target, archives are unpacked into a hidden temporary folder
next to their final one and renamed into place when complete.
"""

from __future__ import annotations

import ftplib
import hashlib
import json
import os
import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cbir_lab.paths import atomic_write

__all__ = [
    "RemoteFile",
    "DatasetError",
    "DownloadError",
    "ChecksumError",
    "UnsafeArchiveError",
    "CorruptArchiveError",
    "ResumableHTTPDownloader",
    "MIRROR_ENV",
    "ARCHIVE_SUFFIXES",
    "file_md5",
    "candidate_urls",
    "fetch",
    "verify_file",
    "safe_extract",
    "extracted_folder",
    "read_manifest",
    "human_size",
]

#: Environment variable naming a base URL that replaces every original host:
#: file ``NAME`` is then fetched from ``$CBIR_LAB_MIRROR/NAME``.
MIRROR_ENV = "CBIR_LAB_MIRROR"

#: Archive name endings, longest first, so ``.tar.gz`` wins over ``.gz``.
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")

_MANIFEST = "checksums.json"
_CHUNK = 1 << 20


class DatasetError(RuntimeError):
    """Base class of the errors raised while getting a dataset ready."""


class DownloadError(DatasetError):
    """A file could not be downloaded (offline, host gone, transfer cut)."""


class ChecksumError(DatasetError, ValueError):
    """A file's checksum differs from the pinned (or recorded) one."""


class UnsafeArchiveError(DatasetError, ValueError):
    """An archive member would be written outside the target folder."""


class CorruptArchiveError(DatasetError, ValueError):
    """An archive cannot be read (truncated, not an archive, bad CRC)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a benchmark, as the registry describes it.

    Attributes:
        filename: the file's name on disk (and on a mirror).
        urls: where to get it, tried in order.
        md5: the pinned md5 hex digest, or ``None`` when not pinned yet (the
            md5 of the first download is then recorded and checked later).
        folder: sub-folder of the data folder that holds it.
        size: approximate size in bytes, for listings only (never verified).
        extract: whether it is an archive to unpack next to itself.
    """

    filename: str
    urls: tuple[str, ...]
    md5: str | None
    folder: str
    size: int | None = None
    extract: bool = False

    def target(self, data_root: Path) -> Path:
        """Where the downloaded file lives: ``data_root/folder/filename``."""
        return Path(data_root) / self.folder / self.filename

    def unpacked(self, data_root: Path) -> Path:
        """Where the archive is unpacked (the archive name without its suffix)."""
        return extracted_folder(self.target(data_root))


def human_size(n_bytes: int | None) -> str:
    """``1_938_238_004`` -> ``"1.9 GB"`` (decimal units); ``None`` -> ``"?"``."""
    if n_bytes is None:
        return "?"
    size = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover - unreachable


def file_md5(path: str | os.PathLike) -> str:
    """The md5 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def extracted_folder(archive: Path) -> Path:
    """The folder an archive unpacks into: its path without the archive suffix."""
    name = archive.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return archive.with_name(name[: -len(suffix)])
    return archive.with_name(name + ".d")


def candidate_urls(remote: RemoteFile, mirror: str | None = None) -> list[str]:
    """The URLs to try for ``remote``: only the mirror's when one is set.

    Args:
        remote: the file.
        mirror: base URL replacing the original hosts; ``None`` reads
            ``$CBIR_LAB_MIRROR``; ``""`` forces the original hosts.
    """
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV) or ""
    if mirror:
        return [mirror.rstrip("/") + "/" + remote.filename]
    return list(remote.urls)


# --------------------------------------------------------------------------- manifest


def _manifest_path(folder: Path) -> Path:
    return folder / _MANIFEST


def read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """What was downloaded into ``folder``: ``{filename: {url, md5, sha256, bytes, ...}}``."""
    path = _manifest_path(folder)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record_download(target: Path, url: str, pinned: bool) -> dict[str, Any]:
    from pooch import file_hash

    entry = {
        "url": url,
        "md5": file_md5(target),
        "sha256": file_hash(str(target)),
        "bytes": target.stat().st_size,
        "md5_pinned": pinned,
        "downloaded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    manifest = read_manifest(target.parent)
    manifest[target.name] = entry
    atomic_write(_manifest_path(target.parent), json.dumps(manifest, indent=2, sort_keys=True))
    return entry


# --------------------------------------------------------------------------- download


class ResumableHTTPDownloader:
    """A pooch downloader that resumes an interrupted HTTP(S) transfer.

    Bytes are appended to a stable ``<target>.part`` file next to the target;
    a later call asks the server for the rest with ``Range: bytes=N-``. A
    server that ignores the range (status 200) is read again from the start.
    When the transfer is complete the ``.part`` file is moved to the file
    name pooch asked for, and pooch then checks its hash.

    Args:
        part_path: the ``.part`` file.
        progressbar: show a tqdm progress bar on stderr.
        timeout: seconds to wait for the server (connect and each read).
    """

    def __init__(self, part_path: Path, progressbar: bool = True, timeout: float = 60.0):
        self.part_path = Path(part_path)
        self.progressbar = progressbar
        self.timeout = timeout

    def __call__(self, url: str, output_file: Any, pooch: Any = None, check_only: bool = False):
        import requests

        if check_only:
            response = requests.head(url, allow_redirects=True, timeout=self.timeout)
            return response.status_code == 200

        offset = self.part_path.stat().st_size if self.part_path.exists() else 0
        # identity: byte offsets must refer to the file itself, not to a compressed transfer.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            if response.status_code == 416 and offset:
                # The .part file is as long as, or longer than, the remote file:
                # it cannot be a prefix of it, so start again.
                self.part_path.unlink()
                return self(url, output_file, pooch)
            response.raise_for_status()
            if offset and response.status_code != 206:
                offset = 0  # the server ignored Range and sends the whole file
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            mode = "ab" if offset else "wb"
            # Keep the bytes of a transfer cut short (urllib3 would discard the last
            # chunk); the length check below then reports the interruption.
            response.raw.enforce_content_length = False
            with open(self.part_path, mode) as out, self._bar(total, offset, url) as bar:
                for chunk in response.iter_content(chunk_size=_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
        received = self.part_path.stat().st_size
        if total is not None and received < total:
            raise requests.exceptions.ConnectionError(
                f"transfer of {url} stopped at {received} of {total} bytes"
            )
        if hasattr(output_file, "write"):
            with open(self.part_path, "rb") as source:
                shutil.copyfileobj(source, output_file)
            self.part_path.unlink()
        else:
            os.replace(self.part_path, output_file)
        return None

    def _bar(self, total: int | None, initial: int, url: str):
        from tqdm.auto import tqdm

        return tqdm(
            total=total,
            initial=initial,
            unit="B",
            unit_scale=True,
            desc=url.rsplit("/", 1)[-1][:40],
            disable=not self.progressbar,
            leave=True,
        )


def _downloader_for(url: str, part_path: Path, progressbar: bool):
    if url.lower().startswith("ftp://"):
        from pooch import FTPDownloader

        return FTPDownloader(progressbar=progressbar)  # no resume over FTP
    return ResumableHTTPDownloader(part_path, progressbar=progressbar)


def verify_file(remote: RemoteFile, target: Path) -> str:
    """Check a file on disk against the pinned md5, else the recorded one.

    Args:
        remote: the registry entry.
        target: the file.

    Returns:
        The file's md5.

    Raises:
        ChecksumError: naming the file, the expected and the actual md5.
    """
    actual = file_md5(target)
    expected = remote.md5
    source = "pinned in the registry"
    if expected is None:
        expected = read_manifest(target.parent).get(target.name, {}).get("md5")
        source = f"recorded in {_manifest_path(target.parent)} when it was downloaded"
    if expected is not None and actual.lower() != expected.lower():
        raise ChecksumError(
            f"checksum mismatch for {target}: md5 is {actual}, expected {expected} "
            f"({source}). The file is corrupted or is not the right file; delete it "
            f"and run again to download it afresh."
        )
    return actual


def fetch(
    remote: RemoteFile,
    data_root: Path,
    *,
    mirror: str | None = None,
    progressbar: bool = True,
    retries: int = 2,
) -> Path:
    """Make sure ``remote`` is in the data folder, downloading it if needed.

    A file already present is verified (:func:`verify_file`), never replaced.
    A missing one is downloaded with :func:`pooch.retrieve` through a
    :class:`ResumableHTTPDownloader`: each URL is tried, and an interrupted
    transfer is resumed up to ``retries`` times. The md5 (and sha256) of what
    was downloaded is recorded in ``checksums.json`` next to it.

    Args:
        remote: the registry entry.
        data_root: the data folder.
        mirror: see :func:`candidate_urls`.
        progressbar: show download progress.
        retries: extra attempts per URL after an interrupted transfer.

    Returns:
        The path of the verified file.

    Raises:
        ChecksumError: the download (or the file already there) does not
            match the pinned md5; a bad download is not kept.
        DownloadError: no URL worked; its message lists what was tried.
    """
    import pooch
    import requests

    target = remote.target(data_root)
    if target.is_file():
        verify_file(remote, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    known_hash = f"md5:{remote.md5}" if remote.md5 else None
    failures: list[str] = []
    for url in candidate_urls(remote, mirror):
        downloader = _downloader_for(url, part, progressbar)
        for attempt in range(retries + 1):
            try:
                pooch.retrieve(
                    url,
                    known_hash=known_hash,
                    fname=target.name,
                    path=target.parent,
                    downloader=downloader,
                    progressbar=progressbar,
                )
            except ValueError as err:
                if "hash" not in str(err):
                    failures.append(f"{url}: {_short_reason(err)}")
                    break
                # pooch found a hash mismatch and deleted the download.
                part.unlink(missing_ok=True)
                raise ChecksumError(
                    f"checksum mismatch for {remote.filename} downloaded from {url}: "
                    f"{err} Nothing was kept. If the host changed the file on purpose, "
                    f"update its md5 in the registry (cbir_lab/datasets/registry.py)."
                ) from err
            except (requests.exceptions.RequestException, *ftplib.all_errors) as err:
                failures.append(f"{url}: {_short_reason(err)}")
                resumable = part.exists() and isinstance(
                    err, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)
                )
                if resumable and attempt < retries:
                    continue
                break
            else:
                _record_download(target, url, pinned=remote.md5 is not None)
                return target
    kept = f" The bytes received so far are kept in {part} and the next try resumes." if part.exists() else ""
    raise DownloadError(
        f"could not download {remote.filename}:\n  " + "\n  ".join(failures) + kept
    )


def _short_reason(err: BaseException) -> str:
    """One line on why a transfer failed, without urllib3's nested reprs."""
    text = " ".join((str(err) or type(err).__name__).split())
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status is not None:
        return f"{status} {getattr(err.response, 'reason', '') or ''}".strip()
    for needle, meaning in (
        ("Failed to resolve", "cannot resolve the host name (offline?)"),
        ("Name or service not known", "cannot resolve the host name (offline?)"),
        ("Connection refused", "connection refused (server down?)"),
        ("timed out", "timed out"),
        ("Network is unreachable", "network unreachable (offline?)"),
    ):
        if needle in text:
            return meaning
    return text if len(text) < 200 else text[:200] + "..."


# --------------------------------------------------------------------------- extraction


def _archive_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "tar"
    raise ValueError(f"{path}: not an archive cbir_lab knows ({', '.join(ARCHIVE_SUFFIXES)})")


def _check_member_name(archive: Path, name: str) -> PurePosixPath:
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or (posix.parts and ":" in posix.parts[0]):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing to unpack")
    if ".." in posix.parts:
        raise UnsafeArchiveError(
            f"{archive}: member {name!r} would be written outside the target folder; refusing to unpack"
        )
    return posix


def _escapes(base: PurePosixPath, link: str) -> bool:
    """Whether ``link`` (relative to folder ``base``) leaves the archive root."""
    target = PurePosixPath(link.replace("\\", "/"))
    if target.is_absolute():
        return True
    depth = 0
    for part in (base / target).parts:
        if part == "..":
            depth -= 1
        elif part not in ("", "."):
            depth += 1
        if depth < 0:
            return True
    return False


def _check_tar_members(archive: Path, members: list[tarfile.TarInfo]) -> None:
    for member in members:
        posix = _check_member_name(archive, member.name)
        if member.issym() and _escapes(posix.parent, member.linkname):
            raise UnsafeArchiveError(
                f"{archive}: symbolic link {member.name!r} -> {member.linkname!r} points outside "
                f"the target folder; refusing to unpack"
            )
        if member.islnk() and _escapes(PurePosixPath(), member.linkname):
            raise UnsafeArchiveError(
                f"{archive}: hard link {member.name!r} -> {member.linkname!r} points outside "
                f"the target folder; refusing to unpack"
            )
        if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
            raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a device or pipe; refusing to unpack")


def _check_zip_members(archive: Path, infos: list[zipfile.ZipInfo]) -> None:
    for info in infos:
        _check_member_name(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(
                f"{archive}: member {info.filename!r} is a symbolic link; refusing to unpack"
            )


def safe_extract(archive: Path, dest: Path | None = None, *, progressbar: bool = False) -> Path:
    """Unpack ``archive`` into ``dest`` (default :func:`extracted_folder`), safely.

    Every member is checked before anything is written: an absolute name, a
    ``..`` component, a link whose target leaves ``dest``, or a device file
    makes the whole archive refused. Members are unpacked into a hidden
    temporary folder next to ``dest`` (tar with Python's ``"data"`` filter as a
    second guard) which is renamed to ``dest`` only when complete, so an
    interrupted unpack never looks finished. An existing ``dest`` is returned
    as it is.

    Args:
        archive: a ``.tar.gz``, ``.tgz``, ``.tar`` or ``.zip`` file.
        dest: the folder to create.
        progressbar: show a progress bar over the members.

    Returns:
        ``dest``.

    Raises:
        UnsafeArchiveError: a member would escape ``dest``.
        CorruptArchiveError: the archive cannot be read.
    """
    from tqdm.auto import tqdm

    archive = Path(archive)
    dest = Path(dest) if dest is not None else extracted_folder(archive)
    if dest.is_dir():
        return dest
    kind = _archive_kind(archive)
    for stale in dest.parent.glob(f".{dest.name}.unpacking-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by an unpack that was killed
    tmp = dest.with_name(f".{dest.name}.unpacking-{os.getpid()}")
    tmp.mkdir(parents=True)
    try:
        if kind == "tar":
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()  # reads the whole archive: finds truncation early
                _check_tar_members(archive, members)
                # Python's "data" filter (3.10.12+, 3.11.4+) is a second guard after our checks.
                guard = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                for member in tqdm(members, desc=f"unpack {archive.name}", disable=not progressbar):
                    tar.extract(member, tmp, **guard)
        else:
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                _check_zip_members(archive, infos)
                for info in tqdm(infos, desc=f"unpack {archive.name}", disable=not progressbar):
                    zf.extract(info, tmp)
        os.replace(tmp, dest)
    except UnsafeArchiveError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, tarfile.FilterError):
            raise UnsafeArchiveError(f"{archive}: {err}; refusing to unpack") from err
        if isinstance(err, OSError) and not isinstance(err, (EOFError,)) and err.errno is not None:
            raise  # a real I/O problem (disk full, permissions), not a bad archive
        reason = " ".join(str(err).split())  # tarfile's reasons span several lines
        raise CorruptArchiveError(
            f"{archive} is corrupted or truncated ({type(err).__name__}: {reason}). "
            f"Delete it and run again to download it afresh."
        ) from err
    return dest
