"""Image sets for whitening and distractors: the pinned table, and the download path on loopback."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from cbir_lab.datasets.download import ChecksumError, DownloadError, RemoteFile, read_manifest
from cbir_lab.datasets.image_sets import (
    IMAGE_SETS,
    IMAGENET_SAMPLE_COMMIT,
    ImageSet,
    image_set_files,
    image_set_state,
    load_image_set,
    split_image_set,
)
from tests.fixtures_benchmarks import FileServer, jpeg_bytes, make_zip, md5

NAMES = ["n01440764_tench.JPEG", "n01443537_goldfish.JPEG", "n01484850_great_white_shark.JPEG"]


def served_photos() -> dict[str, bytes]:
    return {name: jpeg_bytes(i) for i, name in enumerate(NAMES)}


def table(urls_for, photos: dict[str, bytes], pin: bool = True) -> dict[str, RemoteFile]:
    """A file table laid out as imagenet-sample's (one RemoteFile per photo), served from loopback."""
    return {name: RemoteFile(name, urls_for(name), md5(data) if pin else None, "imagenet-sample")
            for name, data in photos.items()}


# ---------------------------------------------------------------- the pinned table


def test_imagenet_sample_table_pins_every_photo_of_one_commit():
    files = image_set_files("imagenet-sample")
    assert len(files) == IMAGE_SETS["imagenet-sample"].n_images == 1000
    for name, remote in files.items():
        assert re.fullmatch(r"n\d{8}_.+\.JPEG", name)
        assert re.fullmatch(r"[0-9a-f]{32}", remote.md5)
        assert remote.urls[0] == (f"https://raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/"
                                  f"{IMAGENET_SAMPLE_COMMIT}/{name}")
        assert IMAGENET_SAMPLE_COMMIT in remote.urls[1] and remote.urls[1].startswith("https://github.com/")
    assert files["n01440764_tench.JPEG"].md5 == "7dd8d26a6be277d117beda8d955202a8"


def test_every_set_states_its_terms_and_size():
    for spec in IMAGE_SETS.values():
        assert spec.terms and spec.download_bytes > 0 and spec.community_copies
    assert "non-commercial" in IMAGE_SETS["imagenet-sample"].terms
    assert "never redistributed" in IMAGE_SETS["imagenet-sample"].terms


def test_unknown_set():
    with pytest.raises(ValueError, match="unknown image set 'imagenet'; known: imagenet-sample, coco-val2017"):
        load_image_set("imagenet")


# ---------------------------------------------------------------- downloading, on loopback


def test_download_falls_back_to_the_second_address_and_follows_a_redirect(tmp_path):
    photos = served_photos()
    with FileServer(photos) as server:
        server.redirects = {f"github/{n}": f"/{n}" for n in NAMES}  # like github.com → raw.githubusercontent.com
        files = table(lambda n: ("http://127.0.0.1:9/gone/" + n, f"{server.url}/github/{n}"), photos)
        image_set = load_image_set("imagenet-sample", tmp_path, files=files, progressbar=False)
        assert [name for name, _ in server.requests] == [x for n in NAMES for x in (f"github/{n}", n)]
    assert image_set.images == tuple(tmp_path / "imagenet-sample" / n for n in sorted(NAMES))
    assert all(p.read_bytes() == photos[p.name] for p in image_set.images)
    assert read_manifest(tmp_path / "imagenet-sample")[NAMES[0]]["md5"] == md5(photos[NAMES[0]])
    assert image_set.terms == IMAGE_SETS["imagenet-sample"].terms
    assert "3 images" in image_set.description


def test_a_second_load_downloads_nothing_and_verifies_what_is_there(tmp_path):
    photos = served_photos()
    with FileServer(photos) as server:
        files = table(lambda n: (f"{server.url}/{n}",), photos)
        load_image_set("imagenet-sample", tmp_path, files=files, progressbar=False)
        before = len(server.requests)
        again = load_image_set("imagenet-sample", tmp_path, files=files, progressbar=False)
        assert len(server.requests) == before and len(again) == 3
    (tmp_path / "imagenet-sample" / NAMES[1]).write_bytes(b"not the photo")
    with pytest.raises(ChecksumError, match=NAMES[1]):
        load_image_set("imagenet-sample", tmp_path, files=files, progressbar=False)


def test_a_download_with_the_wrong_bytes_is_refused_and_not_kept(tmp_path):
    photos = served_photos()
    with FileServer({**photos, NAMES[0]: b"tampered"}) as server:
        files = table(lambda n: (f"{server.url}/{n}",), photos)
        with pytest.raises(ChecksumError, match="checksum mismatch"):
            load_image_set("imagenet-sample", tmp_path, files=files, progressbar=False)
    assert not (tmp_path / "imagenet-sample" / NAMES[0]).exists()


def test_only_the_missing_files_are_downloaded(tmp_path):
    photos = served_photos()
    folder = tmp_path / "imagenet-sample"
    folder.mkdir()
    (folder / NAMES[0]).write_bytes(photos[NAMES[0]])
    with FileServer(photos) as server:
        files = table(lambda n: (f"{server.url}/{n}",), photos)
        assert image_set_state("imagenet-sample", tmp_path, files)[0] == "partial"
        load_image_set("imagenet-sample", tmp_path, files=files, progressbar=False)
        assert sorted(name for name, _ in server.requests) == sorted(NAMES[1:])
    assert image_set_state("imagenet-sample", tmp_path, files) == ("present", sum(map(len, photos.values())))


def test_offline_the_error_says_what_is_missing_where_and_under_which_terms(tmp_path, monkeypatch):
    monkeypatch.delenv("CBIR_LAB_MIRROR", raising=False)
    photos = served_photos()
    files = table(lambda n: ("http://127.0.0.1:9/gone/" + n,), photos)
    assert image_set_state("imagenet-sample", tmp_path, files) == ("absent", 0)
    with pytest.raises(DownloadError) as err:
        load_image_set("imagenet-sample", tmp_path, files=files, download=False)
    message = str(err.value)
    assert "3 of the files of image set 'imagenet-sample'" in message
    assert str(tmp_path / "imagenet-sample") in message and "non-commercial" in message
    assert "CBIR_LAB_MIRROR" in message and IMAGENET_SAMPLE_COMMIT[:7] in message
    with pytest.raises(DownloadError, match="could not download"):
        load_image_set("imagenet-sample", tmp_path, files=files, progressbar=False, retries=0)


def test_a_mirror_serving_the_files_by_name_replaces_every_host(tmp_path, monkeypatch):
    photos = served_photos()
    with FileServer(photos) as server:
        monkeypatch.setenv("CBIR_LAB_MIRROR", server.url)
        files = table(lambda n: ("http://127.0.0.1:9/gone/" + n,), photos)
        assert len(load_image_set("imagenet-sample", tmp_path, files=files, progressbar=False)) == 3


def test_coco_is_one_zip_unpacked_into_its_images(tmp_path):
    archive = make_zip({"val2017/000000000139.jpg": jpeg_bytes(1), "val2017/000000000285.jpg": jpeg_bytes(2),
                        "val2017/LICENSE.txt": b"not an image"})
    with FileServer({"val2017.zip": archive}) as server:
        coco = image_set_files("coco-val2017")["val2017.zip"]
        files = {"val2017.zip": replace(coco, urls=(f"{server.url}/val2017.zip",))}
        image_set = load_image_set("coco-val2017", tmp_path, files=files, progressbar=False)
    assert [p.name for p in image_set.images] == ["000000000139.jpg", "000000000285.jpg"]
    assert image_set_state("coco-val2017", tmp_path, files)[0] == "present"


# ---------------------------------------------------------------- splitting


def test_split_is_disjoint_reproducible_and_checked():
    image_set = ImageSet("s", tuple(Path(f"{i}.jpg") for i in range(10)), "ten images")
    whitening, distractors = split_image_set(image_set, 6, seed=3)
    assert len(whitening) == 6 and len(distractors) == 4
    assert sorted(whitening.images + distractors.images) == sorted(image_set.images)
    assert split_image_set(image_set, 6, seed=3) == (whitening, distractors)
    assert split_image_set(image_set, 6, seed=4)[0] != whitening
    assert "6 images of ten images" == whitening.description
    for bad in (0, 10):
        with pytest.raises(ValueError, match="n_whitening must be between 1 and 9"):
            split_image_set(image_set, bad)


def test_present_image_sets_loads_only_complete_sets_and_never_downloads(tmp_path, monkeypatch):
    from cbir_lab.datasets import image_sets

    photos = served_photos()
    files = table(lambda n: ("http://127.0.0.1:9/gone/" + n,), photos)
    monkeypatch.setattr(image_sets, "image_set_files", lambda name: files)
    assert image_sets.present_image_sets(root=tmp_path) == []
    folder = tmp_path / "imagenet-sample"
    folder.mkdir()
    for name, data in list(photos.items())[:2]:
        (folder / name).write_bytes(data)
    assert image_sets.present_image_sets(root=tmp_path) == []  # partial: not used
    (folder / NAMES[2]).write_bytes(photos[NAMES[2]])
    (present,) = image_sets.present_image_sets(root=tmp_path)
    assert present.name == "imagenet-sample" and len(present) == 3
