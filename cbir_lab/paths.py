"""Where cbir_lab keeps what it downloads, generates and caches.

Every location can be moved with an environment variable, so that a lab machine
can point all students at one shared, read-only data folder, and CI can start
from an empty cache:

* ``CBIR_LAB_DATA``: datasets (downloaded benchmarks, the generated embedded set).
* ``CBIR_LAB_CACHE``: cached feature maps and descriptors.

Both default to folders under the user's cache directory (``~/.cache/cbir_lab``
on Linux, the platform's equivalent elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir", "cache_dir"]


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
