"""The real sets (rparis6k-slice, eth80): pinned tables, the download path on loopback, the ground truth's cut,
and, where ``../shared/data`` is present, the real photos against the real checksums and an independent scorer."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest

from cbir_lab.datasets import load_dataset
from cbir_lab.datasets.download import ChecksumError, DownloadError, RemoteFile
from cbir_lab.datasets.image_sets import ETH80_COMMIT, RPARIS6K_SLICE_COMMIT, IMAGE_SETS, image_set_files
from cbir_lab.datasets.real_photos import (cut_revisited_gnd, eth80_object, how_to_get, landmark_of,
                                           load_real_dataset, present_real_dataset)
from cbir_lab.evaluation import evaluate
from cbir_lab.search import rank
from tests.fixtures_benchmarks import FileServer, jpeg_bytes, md5, pinned_registry, revisited_pickle
from tests.shared_data import SHARED_DATA, download_real_data, needs_shared

# ---------------------------------------------------------------- the pinned tables


def test_slice_table_pins_250_photos_of_five_landmarks_at_one_commit():
    files = image_set_files("rparis6k-slice")
    assert len(files) == IMAGE_SETS["rparis6k-slice"].n_images == 250
    landmarks = {landmark_of(name) for name in files}
    assert landmarks == {"defense", "eiffel", "invalides", "louvre", "moulinrouge"}
    remote = files["paris_louvre_000004.jpg"]
    assert remote.urls[0] == ("https://raw.githubusercontent.com/GrigorySamokhin/Landmark-Image-Retrieval/"
                              f"{RPARIS6K_SLICE_COMMIT}/paris/louvre/paris_louvre_000004.jpg")
    assert remote.md5 == "2345c29d9a77c2b2251f1c16648fd15b" and remote.folder == "rparis6k-slice"


def test_eth80_table_pins_5_views_of_80_objects():
    files = image_set_files("eth80")
    assert len(files) == 400
    objects = {eth80_object(name) for name in files}
    assert len(objects) == 80 and {"apple1", "tomato10", "cup3"} <= objects
    assert files["apple1-090-000.png"].urls[0].endswith(f"chenchkx/ETH-80/{ETH80_COMMIT}/1/1/apple1-090-000.png")
    assert "Leibe & Schiele" in IMAGE_SETS["eth80"].terms and "never redistributed" in IMAGE_SETS["eth80"].terms


def test_names_that_are_not_paris_or_eth80_names_are_refused():
    with pytest.raises(ValueError, match="not a Paris6k file name"):
        landmark_of("IMG_0001.jpg")
    with pytest.raises(ValueError, match="not an ETH-80 view name"):
        eth80_object("apple.png")
    with pytest.raises(ValueError, match="unknown real dataset 'paris'"):
        how_to_get("paris")


# ---------------------------------------------------------------- the ground truth's cut, by hand

GND = {"imlist": ["paris_louvre_000001", "paris_eiffel_000002", "paris_louvre_000003", "paris_louvre_000009"],
       "qimlist": ["paris_louvre_000100", "paris_eiffel_000200"],
       "gnd": [{"bbx": (1.0, 2.0, 10.0, 8.0), "easy": [0], "hard": [2, 3], "junk": [1]},
               {"bbx": (0.0, 0.0, 5.0, 5.0), "easy": [1], "hard": [], "junk": []}]}


def test_the_cut_keeps_imlist_order_renumbers_and_drops_what_is_outside():
    cut = cut_revisited_gnd(GND, ["paris_louvre_000003.jpg", "paris_louvre_000100.jpg", "paris_louvre_000001.jpg"])
    assert cut["imlist"] == ["paris_louvre_000001", "paris_louvre_000003"]
    assert cut["qimlist"] == ["paris_louvre_000100"]
    # easy [0] -> [0]; hard [2, 3] -> [1] (image 3 is not in the slice); junk [1] -> [] (not in the slice)
    assert cut["gnd"] == [{"bbx": (1.0, 2.0, 10.0, 8.0), "easy": [0], "hard": [1], "junk": []}]
    assert cut["dropped"] == 2


def test_a_photo_the_ground_truth_does_not_name_is_an_error_that_names_it():
    with pytest.raises(ValueError, match="not in the ground truth.*paris_louvre_000777"):
        cut_revisited_gnd(GND, ["paris_louvre_000100.jpg", "paris_louvre_000777.jpg"])
    with pytest.raises(ValueError, match="none of the ground truth's queries"):
        cut_revisited_gnd(GND, ["paris_louvre_000001.jpg"])


# ---------------------------------------------------------------- the download path on fixtures

PHOTOS = {f"{n}.jpg": jpeg_bytes(i, (40, 30)) for i, n in enumerate(
    ["paris_louvre_000001", "paris_eiffel_000002", "paris_louvre_000003", "paris_louvre_000100",
     "paris_eiffel_000200"])}


def _fixture_tables(server_url: str, photos: dict[str, bytes], gnd_bytes: bytes):
    files = {name: RemoteFile(name, (f"{server_url}/{name}",), md5(data), "rparis6k-slice")
             for name, data in photos.items()}
    registry = pinned_registry({"gnd_rparis6k.pkl": gnd_bytes})
    registry["gnd_rparis6k.pkl"] = replace(registry["gnd_rparis6k.pkl"], urls=(f"{server_url}/gnd_rparis6k.pkl",))
    return files, registry


def test_the_slice_downloads_verifies_and_is_scored_under_the_revisited_protocol(tmp_path, monkeypatch):
    monkeypatch.delenv("CBIR_LAB_MIRROR", raising=False)
    gnd_bytes = revisited_pickle(GND["imlist"], GND["qimlist"], GND["gnd"])
    with FileServer({**PHOTOS, "gnd_rparis6k.pkl": gnd_bytes}) as server:
        files, registry = _fixture_tables(server.url, PHOTOS, gnd_bytes)
        dataset = load_real_dataset("rparis6k-slice", tmp_path, files=files, registry=registry, progressbar=False)
    assert dataset.protocol == "revisited" and dataset.max_side == 512
    assert [p.name for p in dataset.db_images] == ["paris_louvre_000001.jpg", "paris_eiffel_000002.jpg",
                                                     "paris_louvre_000003.jpg"]
    assert [p.name for p in dataset.query_images] == ["paris_louvre_000100.jpg", "paris_eiffel_000200.jpg"]
    assert dataset.gnd[0] == {"easy": [0], "hard": [2], "junk": [1]} and dataset.extra["dropped_gnd_entries"] == 1
    assert dataset.queries()[0] == (dataset.query_images[0], (1.0, 2.0, 10.0, 8.0))  # cropped to its box
    assert dataset.clusters() == ("louvre", "eiffel") and dataset.cluster_unit == "landmarks"
    assert dataset.groups == ("louvre", "eiffel", "louvre")


def test_a_missing_photo_offline_and_a_wrong_checksum_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("CBIR_LAB_MIRROR", raising=False)
    gnd_bytes = revisited_pickle(GND["imlist"], GND["qimlist"], GND["gnd"])
    files, registry = _fixture_tables("http://127.0.0.1:9", PHOTOS, gnd_bytes)
    with pytest.raises(DownloadError, match="5 of the files of image set 'rparis6k-slice'"):
        load_real_dataset("rparis6k-slice", tmp_path, files=files, registry=registry, download=False)
    assert present_real_dataset("rparis6k-slice", tmp_path) is None
    folder = tmp_path / "rparis6k-slice"
    folder.mkdir()
    for name, data in PHOTOS.items():
        (folder / name).write_bytes(data)
    (folder / "paris_louvre_000003.jpg").write_bytes(b"another photo")
    with pytest.raises(ChecksumError, match="paris_louvre_000003.jpg"):
        load_real_dataset("rparis6k-slice", tmp_path, files=files, registry=registry, download=False)


def test_a_photo_outside_the_ground_truth_stops_the_load_and_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("CBIR_LAB_MIRROR", raising=False)
    photos = {**PHOTOS, "paris_louvre_000777.jpg": jpeg_bytes(99, (40, 30))}
    gnd_bytes = revisited_pickle(GND["imlist"], GND["qimlist"], GND["gnd"])
    with FileServer({**photos, "gnd_rparis6k.pkl": gnd_bytes}) as server:
        files, registry = _fixture_tables(server.url, photos, gnd_bytes)
        with pytest.raises(ValueError, match="paris_louvre_000777"):
            load_real_dataset("rparis6k-slice", tmp_path, files=files, registry=registry, progressbar=False)


def test_how_to_get_says_what_to_run_and_under_which_terms():
    text = how_to_get("rparis6k-slice")
    assert "load_dataset('rparis6k-slice')" in text and RPARIS6K_SLICE_COMMIT[:7] in text
    assert "research" in text and "250 photos" in text


# ---------------------------------------------------------------- the real photos, where ../shared/data has them


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-data")
    download_real_data(root)
    return root


@needs_shared("rparis6k-slice", "eth80", "gnd")
def test_the_real_photos_download_over_loopback_against_the_real_checksums(real_data):
    sliced = load_dataset("rparis6k-slice", root=real_data, download=False)
    assert (sliced.n_db, sliced.n_queries) == (238, 12)
    assert sorted(set(sliced.clusters())) == ["defense", "eiffel", "invalides", "louvre", "moulinrouge"]
    eth80 = present_real_dataset("eth80", real_data)
    assert (eth80.n_db, eth80.n_queries, len(set(eth80.clusters()))) == (400, 400, 80)
    assert all(len(g["ok"]) == 4 and g["junk"] == [q] for q, g in enumerate(eth80.gnd))


def _independent_revisited_maps(names_ranked: list[list[str]], raw: dict, queries: list[str]) -> dict[str, float]:
    """E/M/H written from the papers' protocol and the raw pickle, by image name (revisitop's compute_map)."""
    maps = {}
    for setting in ("easy", "medium", "hard"):
        aps = []
        for query, ranked in zip(queries, names_ranked):
            g = raw["gnd"][raw["qimlist"].index(query)]
            name = [raw["imlist"][i] for i in range(len(raw["imlist"]))]
            easy, hard, junk = ({name[i] for i in g[k]} for k in ("easy", "hard", "junk"))
            positives = {"easy": easy, "medium": easy | hard, "hard": hard}[setting]
            ignored = {"easy": junk | hard, "medium": junk, "hard": junk | easy}[setting]
            positives &= set(ranked)
            if not positives:
                continue
            kept = [n for n in ranked if n not in ignored]
            ranks = [r for r, n in enumerate(kept) if n in positives]
            ap = 0.0
            for j, r in enumerate(ranks):
                precision_before = 1.0 if r == 0 else j / r
                ap += (precision_before + (j + 1) / (r + 1)) / 2
            aps.append(ap / len(positives))
        maps[setting] = float(np.mean(aps))
    return maps


@needs_shared("rparis6k-slice", "eth80", "gnd")
def test_the_slice_scores_as_an_independent_revisited_computation_to_1e_9(real_data):
    sliced = load_dataset("rparis6k-slice", root=real_data, download=False)
    with open(SHARED_DATA / "revisited-gnd" / "gnd_rparis6k.pkl", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    rng = np.random.default_rng(0)
    q, db = rng.normal(size=(sliced.n_queries, 16)), rng.normal(size=(sliced.n_db, 16))
    ranks = rank(q / np.linalg.norm(q, axis=1, keepdims=True), db / np.linalg.norm(db, axis=1, keepdims=True))
    ours = evaluate(ranks, sliced.gnd, "revisited")
    names = [[sliced.db_images[i].stem for i in ranks[:, c]] for c in range(sliced.n_queries)]
    theirs = _independent_revisited_maps(names, raw, [p.stem for p in sliced.query_images])
    for setting in ("easy", "medium", "hard"):
        assert ours[setting] == pytest.approx(theirs[setting], abs=1e-9)
