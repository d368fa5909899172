"""The descriptor store's files: written as a matching pair, read back checked, and what is left over."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from cbir_lab.descriptor_store import (MANIFEST, STORE_VERSION, StoreEntry, collection_key, leftover_files, read_store,
                                       remove_files, write_store)

SETTINGS = {"version": STORE_VERSION, "folder": "/photos", "backbone": "net-layer-imagenet", "max_side": 64,
            "pooling": "GeM"}
ENTRIES = {"a.jpg": StoreEntry(10, 1, "ka", 0), "b/c.jpg": StoreEntry(20, 2, "kc", 1)}
MATRIX = np.arange(6, dtype=np.float16).reshape(2, 3)


def test_a_written_store_reads_back_and_its_manifest_points_to_its_descriptors(tmp_path):
    name = write_store(tmp_path, SETTINGS, ENTRIES, MATRIX)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["descriptors"] == name and name.startswith("descriptors-") and name.endswith(".npy")
    assert (manifest["count"], manifest["dim"]) == (2, 3)
    assert manifest["images"]["b/c.jpg"] == {"size": 20, "mtime_ns": 2, "key": "kc", "row": 1}
    entries, matrix, found = read_store(tmp_path, SETTINGS)
    assert entries == ENTRIES and found == name
    assert matrix.dtype == np.float16 and np.array_equal(matrix, MATRIX)


def test_no_manifest_is_no_store_and_other_settings_or_rows_are_refused(tmp_path):
    assert read_store(tmp_path, SETTINGS) is None
    write_store(tmp_path, SETTINGS, ENTRIES, MATRIX)
    with pytest.raises(ValueError, match="settings differ"):
        read_store(tmp_path, {**SETTINGS, "pooling": "MAC"})
    write_store(tmp_path, SETTINGS, {"a.jpg": StoreEntry(10, 1, "ka", 3)}, MATRIX[:1])
    with pytest.raises(ValueError, match="manifest lists rows"):
        read_store(tmp_path, SETTINGS)


def test_leftovers_are_other_descriptor_files_and_old_temporary_files(tmp_path):
    assert leftover_files(tmp_path / "no store yet", None) == []
    first = write_store(tmp_path, SETTINGS, ENTRIES, MATRIX)
    second = write_store(tmp_path, SETTINGS, ENTRIES, MATRIX)
    old_tmp, new_tmp = tmp_path / ".manifest.json.x.tmp", tmp_path / ".descriptors-0.npy.y.tmp"
    old_tmp.write_bytes(b"{half")
    new_tmp.write_bytes(b"...")
    two_hours_ago = old_tmp.stat().st_mtime - 7200
    os.utime(old_tmp, (two_hours_ago, two_hours_ago))
    leftovers = leftover_files(tmp_path, second)
    assert leftovers == sorted([first, old_tmp.name])
    remove_files(tmp_path, leftovers + ["already-gone.npy"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([new_tmp.name, second, MANIFEST])


def test_the_key_changes_with_every_setting():
    key = collection_key("/photos", "net-layer-imagenet", 64, "GeM")
    assert len(key) == 24 and key == collection_key("/photos/./", "net-layer-imagenet", 64, "gem")
    others = {collection_key("/other", "net-layer-imagenet", 64, "GeM"),
              collection_key("/photos", "net-layer-random", 64, "GeM"),
              collection_key("/photos", "net-layer-imagenet", 96, "GeM"),
              collection_key("/photos", "net-layer-imagenet", 64, "MAC")}
    assert key not in others and len(others) == 4
