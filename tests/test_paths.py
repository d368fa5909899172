"""Where cbir_lab writes, and how: atomic writes whose files others can read."""

from __future__ import annotations

import os
import stat
import sys

import pytest

import cbir_lab.paths as paths_module
from cbir_lab.paths import atomic_write


@pytest.fixture
def umask():
    """Set the process's umask for one test, with cbir_lab's cached copy reset before and after."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_umask(mask: int) -> None:
        os.umask(mask)
        paths_module._UMASK = None

    yield set_umask
    os.umask(saved)
    paths_module._UMASK = None


@pytest.mark.skipif(sys.platform == "win32", reason="Unix permissions")
def test_a_written_file_gets_the_permissions_open_would_give(tmp_path, umask):
    umask(0o022)
    written = atomic_write(tmp_path / "shared" / "a.npy", b"\x00\x01")
    assert stat.S_IMODE(written.stat().st_mode) == 0o644  # 0o666 less the umask, not mkstemp's 0o600
    with open(tmp_path / "by_open", "wb"):
        pass
    assert stat.S_IMODE((tmp_path / "by_open").stat().st_mode) == 0o644


@pytest.mark.skipif(sys.platform == "win32", reason="Unix permissions")
def test_a_stricter_umask_is_followed_too(tmp_path, umask):
    umask(0o077)
    assert stat.S_IMODE(atomic_write(tmp_path / "private.txt", "x").stat().st_mode) == 0o600
    umask(0o002)
    assert stat.S_IMODE(atomic_write(tmp_path / "group.txt", "x").stat().st_mode) == 0o664


def test_the_umask_is_read_once_and_left_as_it_was(umask):
    umask(0o027)
    assert paths_module._umask() == 0o027
    os.umask(0o022)  # a change after the first read is not seen: the value is cached
    assert paths_module._umask() == 0o027
    assert os.umask(0o022) == 0o022  # reading it did not change it


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    atomic_write(tmp_path / "a.txt", "old")

    def fail(handle):
        handle.write(b"half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(tmp_path / "a.txt", fail)
    assert (tmp_path / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
