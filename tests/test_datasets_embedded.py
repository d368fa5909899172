"""Tests of the embedded benchmark's files (cbir_lab.datasets.embedded): generation, checks, loading.

One generation into a temporary folder is shared by most tests (a few seconds);
tests that modify files work on a copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cbir_lab.datasets import load_dataset
from cbir_lab.datasets.embedded import (
    EMBEDDED_VERSION,
    EXPECTED_SHA256,
    _read_manifest,
    dataset_sha256,
    load_embedded,
    pixel_sha256,
)
from cbir_lab.datasets.embedded_recipe import N_DB_VIEWS, N_TRAIN_VIEWS, VIEW_MAX_SIDE, scenes

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    load_embedded(root=root)
    return root


@pytest.fixture(scope="module")
def dataset(root):
    return load_embedded(root=root)


@pytest.fixture
def copied_root(root, tmp_path) -> Path:
    shutil.copytree(root, tmp_path / "data")
    return tmp_path / "data"


def _scene_of(path: Path) -> str:
    """The scene encoded in a file name, e.g. 'hubble-r0c1_db3.png' -> 'hubble-r0c1'."""
    return path.name.rsplit("_", 1)[0]


# ------------------------------------------------------------------ the dataset


def test_counts_and_ground_truth(dataset):
    n_test, n_train = len(scenes("test")), len(scenes("train"))
    assert dataset.name == "embedded" and dataset.protocol == "standard"
    assert dataset.n_queries == n_test == 25
    assert dataset.n_db == n_test * N_DB_VIEWS == 150
    assert len(dataset.train_images) == n_train * N_TRAIN_VIEWS == 192
    assert dataset.n_queries + dataset.n_db + len(dataset.train_images) <= 450
    for query, g in zip(dataset.query_images, dataset.gnd):
        assert g["junk"] == []
        assert len(g["ok"]) == N_DB_VIEWS >= 1
        # independent truth: the positives are exactly the database files named after the query's scene
        expected = [i for i, p in enumerate(dataset.db_images) if _scene_of(p) == _scene_of(query)]
        assert sorted(g["ok"]) == expected
    assert list(dataset.groups) == [_scene_of(p) for p in dataset.db_images]
    assert dataset.extra["query_groups"] == tuple(_scene_of(p) for p in dataset.query_images)


def test_queries_are_held_out_and_train_is_disjoint(dataset):
    queries, db, train = set(dataset.query_images), set(dataset.db_images), set(dataset.train_images)
    assert not queries & db and not queries & train and not db & train
    test_groups = {_scene_of(p) for p in queries | db}
    train_groups = {_scene_of(p) for p in train}
    assert not test_groups & train_groups


def test_load_dataset_default_is_embedded(root, dataset):
    assert load_dataset(root=root) == dataset


def test_files_are_rgb_images_matching_the_manifest(root, dataset):
    manifest = json.loads((root / EMBEDDED_VERSION / "manifest.json").read_text())
    assert manifest["version"] == EMBEDDED_VERSION
    assert len(manifest["images"]) == dataset.n_queries + dataset.n_db + len(dataset.train_images)
    for i, entry in enumerate(manifest["images"]):
        with Image.open(root / EMBEDDED_VERSION / entry["file"]) as im:  # reads the header only
            assert im.format == "PNG" and im.mode == "RGB"
            assert [im.height, im.width, 3] == entry["shape"]
            assert 100 <= max(im.size) <= VIEW_MAX_SIDE
            if i % 10 == 0:  # decoding every file is the checksum test's job
                assert pixel_sha256(im) == entry["sha256"]
        assert entry["role"] in ("query", "db", "train") and entry["recipe"]


def test_views_all_differ(root):
    manifest = json.loads((root / EMBEDDED_VERSION / "manifest.json").read_text())
    hashes = [e["sha256"] for e in manifest["images"]]
    assert len(set(hashes)) == len(hashes)


def test_database_views_are_distorted_and_queries_are_plain_crops(dataset):
    recipes = dataset.extra["recipes"]
    for path in dataset.query_images:
        assert len(recipes[path.name]) == 1 and recipes[path.name][0].startswith("crop")
    for path in dataset.db_images + dataset.train_images:
        steps = recipes[path.name]
        assert steps[0].startswith("crop") and 2 <= len(steps) <= 3


def test_checksum_matches_the_recorded_one(root):
    """Same pixels on every machine (with the pinned Pillow/libjpeg); see data/embedded-v1.sha256."""
    folder = root / EMBEDDED_VERSION
    listed = REPO / "data" / f"{EMBEDDED_VERSION}.sha256"
    if listed.exists():  # name the images that differ, which says which operation drifted
        expected = dict(
            line.split()[::-1] for line in listed.read_text().splitlines() if line and not line.startswith("#")
        )
        manifest = json.loads((folder / "manifest.json").read_text())
        differing = [e["file"] for e in manifest["images"] if expected.get(e["file"]) != e["sha256"]]
        assert differing == [], f"{len(differing)} images differ from {listed.name}: {differing[:10]}"
    assert dataset_sha256(folder) == EXPECTED_SHA256


# ------------------------------------------------------------------ reuse and repair


def test_second_call_reuses_files(copied_root):
    folder = copied_root / EMBEDDED_VERSION
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    load_embedded(root=copied_root)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_missing_and_corrupt_files_are_regenerated_and_nothing_else_is_touched(copied_root):
    folder = copied_root / EMBEDDED_VERSION
    manifest = json.loads((folder / "manifest.json").read_text())
    by_name = {e["file"]: e for e in manifest["images"]}
    deleted, truncated, flipped = "hubble-r0c0_db2.png", "coffee-r0c1_query.png", "cell-r1c0_train03.png"
    untouched = "camera_db0.png"
    (folder / deleted).unlink()
    data = (folder / truncated).read_bytes()
    (folder / truncated).write_bytes(data[: len(data) // 2])
    data = bytearray((folder / flipped).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / flipped).write_bytes(bytes(data))
    users_file = folder / "my_notes.txt"
    users_file.write_text("mine")
    untouched_mtime = (folder / untouched).stat().st_mtime_ns

    ds = load_embedded(root=copied_root)

    for name in (deleted, truncated, flipped):
        assert pixel_sha256(folder / name) == by_name[name]["sha256"], name
    assert (folder / untouched).stat().st_mtime_ns == untouched_mtime
    assert users_file.read_text() == "mine"
    assert not list(folder.glob(".*.tmp"))
    assert ds.n_db == 150


def test_same_pixels_in_another_png_encoding_are_accepted(copied_root):
    """A folder shared between machines may hold other PNG bytes for the same pixels."""
    path = copied_root / EMBEDDED_VERSION / "grass_db3.png"
    with Image.open(path) as im:
        im.load()
        im.save(path, format="PNG", compress_level=9, optimize=True)
    mtime = path.stat().st_mtime_ns
    load_embedded(root=copied_root)
    assert path.stat().st_mtime_ns == mtime


def test_missing_damaged_or_foreign_manifest_is_not_trusted(copied_root):
    """load_embedded regenerates everything when _read_manifest says None (as on a first call)."""
    folder = copied_root / EMBEDDED_VERSION
    manifest = json.loads((folder / "manifest.json").read_text())
    assert _read_manifest(folder) == manifest
    for key, stale in (("version", "embedded-v0"), ("recipe_sha256", "0" * 64)):
        (folder / "manifest.json").write_text(json.dumps({**manifest, key: stale}))
        assert _read_manifest(folder) is None, key
    (folder / "manifest.json").write_text(json.dumps({**manifest, "images": manifest["images"][:-1]}))
    assert _read_manifest(folder) is None
    (folder / "manifest.json").write_text("{not json")
    assert _read_manifest(folder) is None
    (folder / "manifest.json").unlink()
    assert _read_manifest(folder) is None


def test_respects_cbir_lab_data(monkeypatch, root):
    monkeypatch.setenv("CBIR_LAB_DATA", str(root))
    assert load_embedded().root == root / EMBEDDED_VERSION
