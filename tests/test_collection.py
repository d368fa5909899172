"""A folder of photos indexed on disk: what an update extracts, what the store holds, what a search returns."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import cbir_lab.collection as collection_module
import cbir_lab.features as features_module
from cbir_lab.backbones import load_backbone
from cbir_lab.collection import PhotoCollection
from cbir_lab.descriptor_store import collection_key
from cbir_lab.features import extract_feature_maps
from cbir_lab.images import ImageLoadError
from cbir_lab.onnx_network import ExportedNetworkError
from cbir_lab.pipeline import describe
from cbir_lab.pooling import GEM
from cbir_lab.search import rank
from tests.fixtures_benchmarks import jpeg_bytes, write_photos

SIDE = 64  # small images, small network input: every extraction here takes milliseconds


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet_lite0", device="cpu")


@pytest.fixture
def trip(tmp_path):
    """Camera file names that repeat across folders, and a stray README."""
    return write_photos(tmp_path / "trip", {
        "paris/IMG_0001.JPG": 1, "paris/IMG_0002.JPG": 2, "rome/IMG_0001.JPG": 3, "rome/IMG_0002.JPG": 4,
        "README.txt": b"photos of the trip",
    })


@pytest.fixture
def extractions(monkeypatch):
    """Every image the collection runs through the network in PyTorch, in order."""
    seen: list[str] = []
    real = features_module.extract_feature_maps

    def counting(items, *args, **kwargs):
        seen.extend(Path(i).name if not isinstance(i, tuple) else Path(i[0]).name for i in items)
        return real(items, *args, **kwargs)

    monkeypatch.setattr(features_module, "extract_feature_maps", counting)
    return seen


def open_trip(folder: Path, lite0, tmp_path: Path, **kwargs) -> PhotoCollection:
    return PhotoCollection.open(folder, lite0, "GeM", SIDE, cache=tmp_path / "cache", **kwargs)


def quiet_update(collection: PhotoCollection):
    """An update of the trip folder: its one warning is about the README."""
    with pytest.warns(UserWarning, match=r"(?s)skipping 1 file.*README\.txt"):
        return collection.update()


def test_first_update_extracts_every_image_and_the_next_one_nothing(trip, lite0, tmp_path, extractions):
    collection = open_trip(trip, lite0, tmp_path)
    assert len(collection) == 0
    changes = quiet_update(collection)
    assert changes.added == ("paris/IMG_0001.JPG", "paris/IMG_0002.JPG", "rome/IMG_0001.JPG", "rome/IMG_0002.JPG")
    assert changes.extracted == changes.added and changes.total == 4 and bool(changes)
    assert collection.paths == list(changes.added)
    assert collection.descriptors.shape == (4, lite0.out_channels)
    np.testing.assert_allclose(np.linalg.norm(collection.descriptors, axis=1), 1.0, atol=1e-3)
    assert len(extractions) == 4

    again = open_trip(trip, lite0, tmp_path)  # as a new process would: read back from the store
    assert again.paths == collection.paths
    np.testing.assert_array_equal(again.descriptors, collection.descriptors)
    changes = quiet_update(again)
    assert not changes and changes.extracted == () and changes.rehashed == () and changes.total == 4
    assert len(extractions) == 4  # nothing more ran through the network
    assert changes.summary() == f"4 images: 0 new, 0 changed, 0 removed; 0 extracted in {changes.seconds:.1f} s"


def test_a_touched_file_is_hashed_again_but_not_extracted(trip, lite0, tmp_path, extractions):
    collection = open_trip(trip, lite0, tmp_path)
    quiet_update(collection)
    before = collection.descriptors.copy()
    touched = trip / "rome" / "IMG_0001.JPG"
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    changes = quiet_update(collection)
    assert changes.rehashed == ("rome/IMG_0001.JPG",)
    assert changes.changed == () and changes.extracted == () and len(extractions) == 4
    np.testing.assert_array_equal(collection.descriptors, before)
    # The new modification time is stored: the next update does not hash it again.
    assert quiet_update(open_trip(trip, lite0, tmp_path)).rehashed == ()


def test_a_changed_file_is_extracted_again_alone(trip, lite0, tmp_path, extractions):
    collection = open_trip(trip, lite0, tmp_path)
    quiet_update(collection)
    before = collection.descriptors.copy()
    (trip / "paris" / "IMG_0002.JPG").write_bytes(jpeg_bytes(99, size=(48, 36)))
    changes = quiet_update(collection)
    assert changes.changed == changes.rehashed == changes.extracted == ("paris/IMG_0002.JPG",)
    assert changes.added == changes.removed == ()
    assert extractions[4:] == ["IMG_0002.JPG"]
    row = collection.paths.index("paris/IMG_0002.JPG")
    others = [i for i in range(4) if i != row]
    np.testing.assert_array_equal(collection.descriptors[others], before[others])
    assert not np.allclose(collection.descriptors[row], before[row])


def test_a_deleted_file_drops_out_and_a_moved_one_keeps_its_descriptor(trip, lite0, tmp_path, extractions):
    collection = open_trip(trip, lite0, tmp_path)
    quiet_update(collection)
    moved = collection.descriptors[collection.paths.index("rome/IMG_0002.JPG")].copy()
    (trip / "paris" / "IMG_0001.JPG").unlink()
    (trip / "rome" / "best of").mkdir()
    (trip / "rome" / "IMG_0002.JPG").rename(trip / "rome" / "best of" / "IMG_0002.JPG")
    changes = quiet_update(collection)
    assert changes.removed == ("paris/IMG_0001.JPG", "rome/IMG_0002.JPG")
    assert changes.added == ("rome/best of/IMG_0002.JPG",) and changes.extracted == ()
    assert collection.paths == ["paris/IMG_0002.JPG", "rome/best of/IMG_0002.JPG", "rome/IMG_0001.JPG"]
    np.testing.assert_array_equal(collection.descriptors[1], moved)
    assert len(extractions) == 4
    reopened = open_trip(trip, lite0, tmp_path)
    assert reopened.paths == collection.paths and reopened.descriptors.shape == (3, lite0.out_channels)


def test_search_equals_a_direct_rank_over_freshly_extracted_descriptors(trip, lite0, tmp_path):
    collection = open_trip(trip, lite0, tmp_path)
    quiet_update(collection)
    images = [trip / rel for rel in collection.paths]
    fresh = describe(extract_feature_maps(images, lite0, SIDE, cache=False, progress=False), GEM)
    stored = fresh.astype(np.float16).astype(np.float32)  # the store keeps float16
    np.testing.assert_array_equal(collection.descriptors, stored)

    query = trip / "rome" / "IMG_0002.JPG"
    assert collection.runs_without_torch  # the update exported the network: the query runs in it
    results = collection.search(query, k=3)
    q = describe(extract_feature_maps([query], lite0, SIDE, cache=False, progress=False), GEM)
    assert [r.row for r in results] == rank(q, stored, k=3)[:, 0].tolist()
    # The exported network's descriptor equals PyTorch's up to float rounding (its export was checked at 1e-4).
    np.testing.assert_allclose([r.score for r in results], (stored @ q[0])[[r.row for r in results]], atol=1e-5)
    # The query is one of the images: it comes first, with a score of 1 up to float16 rounding.
    assert results[0].relative == "rome/IMG_0002.JPG" and results[0].path == query.resolve()
    assert results[0].score == pytest.approx(1.0, abs=2e-3)
    assert len(collection.search(query, k=100)) == 4  # k beyond the collection: every image


def test_queries_by_name_inside_the_folder(trip, lite0, tmp_path, monkeypatch):
    collection = open_trip(trip, lite0, tmp_path)
    quiet_update(collection)
    monkeypatch.chdir(tmp_path)  # not inside the folder: names are looked up in it
    assert collection.resolve_query("rome/IMG_0002") == trip.resolve() / "rome" / "IMG_0002.JPG"
    with pytest.raises(ValueError, match=r"(?s)'IMG_0001.JPG' matches 2 images.*paris/IMG_0001\.JPG.*rome/IMG_0001\.JPG"):
        collection.search("IMG_0001.JPG")
    with pytest.raises(ImageLoadError, match="'nowhere.jpg' does not exist"):
        collection.search("nowhere.jpg")


def test_the_store_is_one_manifest_and_one_descriptor_file(trip, lite0, tmp_path):
    collection = open_trip(trip, lite0, tmp_path)
    quiet_update(collection)
    (trip / "rome" / "IMG_0003.JPG").write_bytes(jpeg_bytes(5, size=(48, 36)))
    quiet_update(collection)  # a second save replaces the first descriptor file
    assert collection.store.parent == tmp_path / "cache" / "collections"
    assert collection.store.name == collection_key(trip, lite0.cache_tag, SIDE, "GeM")
    files = sorted(p.name for p in collection.store.iterdir())
    assert len(files) == 3 and files[0] == "descriptor-network.onnx" and files[2] == "manifest.json"
    files = files[1:]
    assert files[0].startswith("descriptors-")
    manifest = json.loads((collection.store / "manifest.json").read_text())
    assert manifest["descriptors"] == files[0] and (manifest["count"], manifest["dim"]) == (5, lite0.out_channels)
    entry = manifest["images"]["rome/IMG_0003.JPG"]
    stat = (trip / "rome" / "IMG_0003.JPG").stat()
    assert (entry["size"], entry["mtime_ns"], entry["row"]) == (stat.st_size, stat.st_mtime_ns, 4)
    assert np.load(collection.store / files[0]).dtype == np.float16
    # Another pooling or image size is another store.
    assert open_trip(trip, lite0, tmp_path).store == collection.store
    assert PhotoCollection.open(trip, lite0, "MAC", SIDE, cache=tmp_path / "cache").store != collection.store
    assert PhotoCollection.open(trip, lite0, "GeM", 96, cache=tmp_path / "cache").store != collection.store


def store_files(collection: PhotoCollection) -> list[str]:
    """The store's file names, with the descriptor file's random token replaced by the manifest's check."""
    manifest = json.loads((collection.store / "manifest.json").read_text())
    return sorted("descriptors-<manifest's>.npy" if p.name == manifest["descriptors"] else p.name
                  for p in collection.store.iterdir())


STORE = ["descriptor-network.onnx", "descriptors-<manifest's>.npy", "manifest.json"]


def test_a_broken_store_is_rebuilt_with_a_warning_and_leaves_no_orphaned_files(trip, lite0, tmp_path):
    collection = open_trip(trip, lite0, tmp_path)
    quiet_update(collection)
    (old_descriptors,) = collection.store.glob("descriptors-*.npy")
    (collection.store / "manifest.json").write_text("{not json")
    with pytest.warns(UserWarning, match="cannot be used.*the next update rebuilds it"):
        rebuilt = open_trip(trip, lite0, tmp_path)
    assert len(rebuilt) == 0
    assert old_descriptors.exists()  # nothing is removed before the rebuild has replaced it
    assert len(quiet_update(rebuilt).extracted) == 4
    assert not old_descriptors.exists()  # the damaged store's descriptors, which nothing points to
    assert store_files(rebuilt) == STORE


def test_files_of_an_interrupted_save_are_removed_by_the_next_save(trip, lite0, tmp_path):
    collection = open_trip(trip, lite0, tmp_path)
    quiet_update(collection)
    # A process killed between writing its descriptors and its manifest, and one killed mid-write.
    (collection.store / "descriptors-0123456789abcdef.npy").write_bytes(b"never pointed to")
    killed = collection.store / ".manifest.json.x1y2z3.tmp"
    killed.write_bytes(b"{half")
    two_hours_ago = killed.stat().st_mtime - 7200
    os.utime(killed, (two_hours_ago, two_hours_ago))
    in_progress = collection.store / ".descriptors-fedcba9876543210.npy.a1b2c3.tmp"  # another process writing now
    in_progress.write_bytes(b"...")
    reopened = open_trip(trip, lite0, tmp_path)
    assert len(reopened) == 4
    (trip / "rome" / "IMG_0002.JPG").unlink()
    assert quiet_update(reopened).removed == ("rome/IMG_0002.JPG",)
    in_progress.unlink()  # it was left alone
    assert store_files(reopened) == STORE


def test_an_unreadable_image_is_left_out_with_a_warning(tmp_path, lite0):
    good = jpeg_bytes(1, size=(48, 36))
    folder = write_photos(tmp_path / "f", {"a.jpg": good, "b.jpg": 2, "cut.jpg": good[: len(good) // 3]})
    collection = PhotoCollection.open(folder, lite0, "GeM", SIDE, cache=tmp_path / "cache")
    with pytest.warns(UserWarning, match=r"(?s)1 image\(s\) cannot be read.*cut\.jpg"):
        changes = collection.update()
    assert changes.unreadable == ("cut.jpg",) and changes.added == ("a.jpg", "b.jpg")
    assert collection.paths == ["a.jpg", "b.jpg"]


def test_bad_input_is_named(tmp_path, lite0, trip):
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        PhotoCollection.open(tmp_path / "nowhere", lite0)
    with pytest.raises(NotADirectoryError, match="is a file"):
        PhotoCollection.open(trip / "README.txt", lite0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images in .*empty"):
        PhotoCollection.open(tmp_path / "empty", lite0, cache=tmp_path / "cache").update()
    with pytest.raises(ValueError, match="unknown pooling 'median'"):
        PhotoCollection.open(trip, lite0, "median")
    with pytest.raises(ValueError, match="random weights"):
        PhotoCollection.open(trip, load_backbone("efficientnet_lite0", weights=None, device="cpu"))
    collection = open_trip(trip, lite0, tmp_path)
    with pytest.raises(ValueError, match="call update"):
        collection.search(trip / "paris" / "IMG_0001.JPG")
    quiet_update(collection)
    for k in (0, -1, 2.5):
        with pytest.raises(ValueError, match=f"k must be a positive integer, got {k}"):
            collection.search(trip / "paris" / "IMG_0001.JPG", k=k)
    with pytest.raises(ImageLoadError, match="README.txt"):
        collection.search(trip / "README.txt")


# ----- the exported network: a query without PyTorch --------------------------------------------------

def test_a_later_collection_describes_queries_in_the_exported_network_without_running_torch(trip, lite0, tmp_path,
                                                                                         extractions):
    quiet_update(open_trip(trip, lite0, tmp_path))
    assert len(extractions) == 4
    again = PhotoCollection.open(trip, "efficientnet_lite0", "GeM", SIDE, cache=tmp_path / "cache")  # by name
    query = trip / "paris" / "IMG_0002.JPG"
    vector = again.describe(query)
    assert len(extractions) == 4 and again._backbone is None  # no network ran in PyTorch, none was loaded
    expected = describe(extract_feature_maps([query], lite0, SIDE, cache=False, progress=False), GEM)[0]
    np.testing.assert_allclose(vector, expected, atol=1e-4)
    assert vector.dtype == np.float32 and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_a_pooling_that_cannot_be_exported_runs_in_torch_and_no_export_is_tried(trip, lite0, tmp_path, monkeypatch,
                                                                               extractions):
    def must_not_run(*args, **kwargs):
        raise AssertionError("an export was tried")

    monkeypatch.setattr(collection_module, "export_descriptor_network", must_not_run)
    collection = PhotoCollection.open(trip, lite0, "R-MAC", SIDE, cache=tmp_path / "cache")
    quiet_update(collection)
    assert not (collection.store / "descriptor-network.onnx").exists() and not collection.runs_without_torch
    results = PhotoCollection.open(trip, lite0, "R-MAC", SIDE, cache=tmp_path / "cache").search(
        trip / "rome" / "IMG_0001.JPG", k=2)
    assert results[0].relative == "rome/IMG_0001.JPG" and results[0].score == pytest.approx(1.0, abs=2e-3)
    assert len(extractions) == 5  # four images, then the query, in PyTorch


def test_a_failed_export_is_named_and_tried_again_when_torch_is_next_loaded(trip, lite0, tmp_path, monkeypatch):
    real = collection_module.export_descriptor_network

    def failing(*args, **kwargs):
        raise ExportedNetworkError("the exported efficientnet_lite0 with GeM differs from PyTorch by 3.0e-02")

    monkeypatch.setattr(collection_module, "export_descriptor_network", failing)
    collection = open_trip(trip, lite0, tmp_path)
    with pytest.warns(UserWarning, match=r"(?s)cannot be exported, so searches load PyTorch: .*differs"):
        quiet_update(collection)
    assert not (collection.store / "descriptor-network.onnx").exists()
    monkeypatch.setattr(collection_module, "export_descriptor_network", real)
    again = open_trip(trip, lite0, tmp_path)
    again.search(trip / "rome" / "IMG_0001.JPG", k=1)  # in PyTorch, which then exports
    assert open_trip(trip, lite0, tmp_path).runs_without_torch


def test_a_broken_exported_network_is_named_and_exported_again(trip, lite0, tmp_path, extractions):
    collection = open_trip(trip, lite0, tmp_path)
    quiet_update(collection)
    network = collection.store / "descriptor-network.onnx"
    network.write_bytes(b"not a model")
    again = open_trip(trip, lite0, tmp_path)
    with pytest.warns(UserWarning, match=r"cannot load the exported network .*descriptor-network\.onnx.*exported again"):
        results = again.search(trip / "rome" / "IMG_0002.JPG", k=1)
    assert results[0].relative == "rome/IMG_0002.JPG"
    assert len(extractions) == 5  # the query ran in PyTorch
    assert open_trip(trip, lite0, tmp_path).runs_without_torch  # and the network was written anew
