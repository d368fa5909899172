"""Where cbir_lab keeps what it downloads, generates and caches, and how it writes there.

Every location can be moved with an environment variable, so that a lab machine
can point all students at one shared, read-only data folder, and CI can start
from an empty cache:

* ``CBIR_LAB_DATA``: datasets (downloaded benchmarks, the generated embedded set).
* ``CBIR_LAB_CACHE``: cached feature maps and descriptors.

Both default to folders under the user's cache directory (``~/.cache/cbir_lab``
on Linux, the platform's equivalent elsewhere).

Every file cbir_lab writes goes through :func:`atomic_write`: a temporary file
next to the target, renamed over it when complete, so an interrupted run never
leaves half a file that a later run would trust. The file gets the permissions
``open()`` would give it (``0o666`` less the process's umask), so a lab folder
shared by several Unix users stays readable to all of them.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Callable, Union

__all__ = ["data_dir", "cache_dir", "atomic_write", "free_path"]


def _user_cache_root() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "cbir_lab"
    if os.name == "nt":
        local = os.environ.get("LOCALAPPDATA")
        if local:
            return Path(local) / "cbir_lab" / "Cache"
    return Path.home() / ".cache" / "cbir_lab"


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """Folder for datasets: ``root`` if given, else ``$CBIR_LAB_DATA``, else the user cache.

    Args:
        root: an explicit folder, which wins over everything else.

    Returns:
        The folder's path (not created here).
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("CBIR_LAB_DATA")
    return Path(env).expanduser() if env else _user_cache_root() / "data"


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """Folder for cached features: ``root`` if given, else ``$CBIR_LAB_CACHE``, else the user cache."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("CBIR_LAB_CACHE")
    return Path(env).expanduser() if env else _user_cache_root() / "features"


_UMASK: int | None = None
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask, read once and cached (``os.umask`` can only be read by setting it).

    The set-and-restore below changes a process-wide setting for an instant, so it runs
    once, under a lock; tests that change the umask reset ``_UMASK`` to ``None``.
    """
    global _UMASK
    if _UMASK is None:
        with _UMASK_LOCK:
            if _UMASK is None:
                mask = os.umask(0o022)
                os.umask(mask)
                _UMASK = mask
    return _UMASK


def atomic_write(path: str | os.PathLike, data: Union[bytes, str, Callable[[BinaryIO], None]]) -> Path:
    """Write a file so that no reader ever sees it half-written.

    The content goes to a temporary file in the same folder, which is then
    renamed over ``path`` (an atomic replace on every platform Python supports).
    On any error the temporary file is removed and ``path`` is left as it was.
    The file's permissions are those ``open()`` gives a new file, ``0o666`` less the
    umask (``0o644`` under the usual umask 022), not the ``0o600`` of a bare
    :func:`tempfile.mkstemp`, so another user of a shared folder can read it.

    Args:
        path: the file to write (its folder is created if needed).
        data: bytes, text (written as UTF-8), or a function that writes to an open binary file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> atomic_write(folder / "a.txt", "hello").read_text()
        'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.chmod(tmp, 0o666 & ~_umask())
            if callable(data):
                data(handle)
            else:
                handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def free_path(path: str | os.PathLike) -> Path:
    """``path`` if nothing is there, else ``stem-1.ext``, ``stem-2.ext``…: the first name that is free,
    so that a file someone made is never overwritten.

    Examples:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> (folder / "a.png").write_bytes(b"")
        0
        >>> free_path(folder / "a.png").name, free_path(folder / "b.png").name
        ('a-1.png', 'b.png')
    """
    path = Path(path)
    if not path.exists():
        return path
    for i in range(1, 10_000):
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"too many files named like {path}")
