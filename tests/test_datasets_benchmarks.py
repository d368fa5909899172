"""The papers' benchmarks, end to end: download from a loopback HTTP server,
verify, unpack and parse small archives laid out like the real ones."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from cbir_lab.datasets.benchmarks import load_benchmark
from cbir_lab.datasets.parsers import parse_oxford_gt, read_revisited_gnd
from cbir_lab.datasets.registry import BENCHMARKS, PARIS_CORRUPTED, REGISTRY
from cbir_lab.datasets.status import dataset_status, format_dataset_status
from cbir_lab.datasets.download import ChecksumError, CorruptArchiveError, DownloadError, UnsafeArchiveError
from tests.fixtures_benchmarks import (
    OXFORD_IMAGES,
    FileServer,
    holidays_files,
    jpeg_bytes,
    make_tgz,
    md5,
    oxford_files,
    paris_files,
    pinned_registry,
    revisited_pickle,
    tree,
    ukbench_files,
)


def load(name, files, tmp_path, server, **kw):
    kw.setdefault("registry", pinned_registry(files))
    return load_benchmark(name, tmp_path / "data", mirror=server.url, progressbar=False, **kw)


# --------------------------------------------------------------------------- registry


def test_registry_is_consistent():
    for name, spec in BENCHMARKS.items():
        for f in spec.files:
            assert f in REGISTRY, (name, f)
    for name, remote in REGISTRY.items():
        assert remote.filename == name
        assert remote.urls and all(u.split(":")[0] in ("http", "https", "ftp") for u in remote.urls)
        assert remote.md5 is None or len(remote.md5) == 32
    assert REGISTRY["gnd_roxford5k.pkl"].md5 == "f2b67579f625a587b5b0828dbf2e8eb0"
    assert REGISTRY["gnd_rparis6k.pkl"].md5 == "2feae0a8257a5c6ca1b31b8eb73c8571"
    assert len(PARIS_CORRUPTED) == 20


def test_unknown_benchmark_and_option():
    with pytest.raises(ValueError, match="unknown benchmark 'oxford105k'.*roxford5k"):
        load_benchmark("oxford105k")
    with pytest.raises(TypeError, match="unknown option.*rotated"):
        load_benchmark("ukbench", rotated=True)


# --------------------------------------------------------------------------- Holidays


def test_holidays_rotated_end_to_end(tmp_path):
    files = holidays_files(rotated=True)
    with FileServer(files) as server:
        ds = load("holidays", files, tmp_path, server)
    assert ds.protocol == "standard"
    assert [p.name for p in ds.db_images] == [
        "100000.jpg", "100001.jpg", "100002.jpg", "100100.jpg", "100101.jpg", "100200.jpg", "100201.jpg"
    ]  # fmt: skip
    assert [p.name for p in ds.query_images] == ["100000.jpg", "100100.jpg", "100200.jpg"]
    assert ds.gnd == ({"ok": [1, 2], "junk": [0]}, {"ok": [4], "junk": [3]}, {"ok": [6], "junk": [5]})
    assert ds.groups == ("1000", "1000", "1000", "1001", "1001", "1002", "1002")
    assert ds.extra["variant"] == "rotated"
    assert all(p.is_relative_to(tmp_path / "data" / "holidays" / "holidays_rotated") for p in ds.db_images)


def test_holidays_original_archives(tmp_path):
    files = holidays_files(rotated=False)
    with FileServer(files) as server:
        ds = load("holidays", files, tmp_path, server, rotated=False)
    assert ds.n_db == 7 and ds.n_queries == 3
    assert ds.gnd[0] == {"ok": [1, 2], "junk": [0]}
    assert ds.extra["variant"] == "original"
    assert {p.parent.parent.name for p in ds.db_images} == {"jpg1", "jpg2"}  # jpgN/jpg/NNNNNN.jpg


# --------------------------------------------------------------------------- Oxford / Paris


def test_oxford5k_end_to_end(tmp_path):
    files = oxford_files()
    with FileServer(files) as server:
        ds = load("oxford5k", files, tmp_path, server)
    assert [p.stem for p in ds.db_images] == sorted(OXFORD_IMAGES)
    assert [p.stem for p in ds.query_images] == ["all_souls_000013", "ashmolean_000000"]
    assert ds.query_bboxes == ((136.5, 34.1, 648.5, 955.9), (10.0, 20.0, 30.5, 40.0))
    # all_souls_1: good 13, 26 + ok 40 -> 0, 1, 2; junk ashmolean_000007 -> 4.
    # ashmolean_1: good 000000 + ok 000007 -> 3, 4 (the name missing from the archive is reported).
    assert ds.gnd == ({"ok": [0, 1, 2], "junk": [4]}, {"ok": [3, 4], "junk": []})
    assert ds.extra["missing_images"] == ["not_in_archive_000001"]
    assert ds.queries()[0] == (ds.query_images[0], (136.5, 34.1, 648.5, 955.9))


def test_paris6k_leaves_out_corrupted_images(tmp_path):
    files = paris_files()
    with FileServer(files) as server:
        ds = load("paris6k", files, tmp_path, server)
    assert [p.stem for p in ds.db_images] == [
        "paris_defense_000000", "paris_defense_000605", "paris_louvre_000000", "paris_louvre_000001"
    ]  # fmt: skip
    assert ds.gnd == ({"ok": [0, 1], "junk": [3]},)
    assert ds.extra["missing_images"] == ["paris_louvre_000136"]
    assert ds.query_bboxes == ((130.0, 17.0, 843.0, 732.0),)


def test_parse_oxford_gt_rejects_a_bad_query_line(tmp_path):
    (tmp_path / "a_1_query.txt").write_text("oxc1_a_000001 1 2 3\n")
    with pytest.raises(ValueError, match=r"a_1_query\.txt: expected 'IMAGE x1 y1 x2 y2'"):
        parse_oxford_gt(tmp_path)
    (tmp_path / "a_1_query.txt").write_text("oxc1_a_000001 1 2 3 4\n")
    with pytest.raises(ValueError, match=r"a_1_good\.txt is missing"):
        parse_oxford_gt(tmp_path)


# --------------------------------------------------------------------------- Revisited


def roxford_fixture():
    """imlist in a deliberately unsorted order; queries are not in it."""
    imlist = ["ashmolean_000007", "oxford_000001", "all_souls_000026", "all_souls_000040"]
    gnd = [
        {"bbx": [136.5, 34.1, 648.5, 955.7], "easy": [2], "hard": [3], "junk": [0]},
        {"bbx": np.array([1.0, 2.0, 3.0, 4.0]), "easy": np.array([0]), "hard": [], "junk": [1, 3]},
    ]
    return revisited_pickle(imlist, ["all_souls_000013", "ashmolean_000000"], gnd)


def test_roxford5k_end_to_end_shares_the_oxford_images(tmp_path):
    files = {"gnd_roxford5k.pkl": roxford_fixture(), **oxford_files()}
    registry = pinned_registry(files)
    with FileServer(files) as server:
        ds = load("roxford5k", files, tmp_path, server, registry=registry)
        ox = load("oxford5k", files, tmp_path, server, registry=registry)
        served = [name for name, _ in server.requests]
    assert served.count("oxbuild_images-v1.tgz") == 1  # downloaded once, used by both
    assert ds.protocol == "revisited"
    assert [p.stem for p in ds.db_images] == [
        "ashmolean_000007", "oxford_000001", "all_souls_000026", "all_souls_000040"
    ]  # fmt: skip
    assert [p.stem for p in ds.query_images] == ["all_souls_000013", "ashmolean_000000"]
    assert ds.query_bboxes == ((136.5, 34.1, 648.5, 955.7), (1.0, 2.0, 3.0, 4.0))
    assert ds.gnd == ({"easy": [2], "hard": [3], "junk": [0]}, {"easy": [0], "hard": [], "junk": [1, 3]})
    assert ds.db_images[0] == ox.db_images[4]


def test_rparis6k_drops_missing_database_images_and_renumbers(tmp_path):
    imlist = ["paris_louvre_000000", "paris_louvre_000136", "paris_defense_000000", "paris_gone_000001"]
    gnd = [{"bbx": [130, 17, 843, 732], "easy": [2, 3], "hard": [1], "junk": [0]}]
    files = {"gnd_rparis6k.pkl": revisited_pickle(imlist, ["paris_defense_000605"], gnd), **paris_files()}
    with FileServer(files) as server:
        with pytest.warns(UserWarning, match="1 database image"):
            ds = load("rparis6k", files, tmp_path, server)
    # paris_louvre_000136 is the corrupted file (9 garbage bytes, kept: only empty files are
    # dropped) and paris_gone_000001 is not in the archives.
    assert [p.stem for p in ds.db_images] == ["paris_louvre_000000", "paris_louvre_000136", "paris_defense_000000"]
    assert ds.gnd == ({"easy": [2], "hard": [1], "junk": [0]},)
    assert ds.extra["missing_images"] == ["paris_gone_000001"]


def test_tampered_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = pickle.dumps({"imlist": [], "qimlist": [], "gnd": [Exploit()]})
    path = tmp_path / "gnd_roxford5k.pkl"
    path.write_bytes(evil)
    with pytest.raises(ChecksumError, match="will not be unpickled"):
        read_revisited_gnd(path, REGISTRY["gnd_roxford5k.pkl"].md5)
    with pytest.raises(ChecksumError, match="no md5 is pinned"):
        read_revisited_gnd(path, None)
    # Even with a matching md5, only plain containers and numpy arrays are allowed.
    with pytest.raises(ValueError, match=r"(io|builtins)\.open, which is not allowed"):
        read_revisited_gnd(path, md5(evil))
    assert not marker.exists()


def test_revisited_pickle_with_out_of_range_index(tmp_path):
    data = revisited_pickle(["a", "b"], ["q"], [{"bbx": [0, 0, 1, 1], "easy": [5], "hard": [], "junk": []}])
    path = tmp_path / "g.pkl"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"gnd\[0\] has indices \[5\] outside imlist"):
        read_revisited_gnd(path, md5(data))


# --------------------------------------------------------------------------- UKBench


def test_ukbench_end_to_end(tmp_path):
    files = ukbench_files()
    with FileServer(files) as server:
        ds = load("ukbench", files, tmp_path, server)
    assert ds.protocol == "ukbench"
    assert [p.name for p in ds.db_images] == [f"ukbench{i:05d}.jpg" for i in range(8)]
    assert all(p.parent.name == "full" for p in ds.db_images)  # thumbnails ignored
    assert ds.query_images == ds.db_images
    assert ds.gnd[0] == ds.gnd[3] == {"ok": [0, 1, 2, 3], "junk": []}
    assert ds.gnd[5] == {"ok": [4, 5, 6, 7], "junk": []}
    assert ds.groups == ("0000",) * 4 + ("0001",) * 4


# --------------------------------------------------------------------------- failures


def test_offline_message_says_which_file_goes_where(tmp_path):
    data = tmp_path / "data"
    with pytest.raises(DownloadError) as info:
        load_benchmark("roxford5k", data, download=False)
    message = str(info.value)
    assert "https://cmp.felk.cvut.cz/revisitop/data/datasets/roxford5k/gnd_roxford5k.pkl" in message
    assert f"-> {data / 'roxford5k' / 'gnd_roxford5k.pkl'}" in message
    assert "https://www.robots.ox.ac.uk/~vgg/data/oxbuildings/oxbuild_images-v1.tgz" in message
    assert f"-> {data / 'oxford5k' / 'oxbuild_images-v1.tgz'}" in message
    assert "md5 f2b67579f625a587b5b0828dbf2e8eb0" in message
    assert not tmp_path.joinpath("data").exists()  # nothing written


def test_server_gone_lists_every_missing_file(tmp_path):
    with FileServer({}) as server:  # answers 404 to everything
        with pytest.raises(DownloadError) as info:
            load_benchmark("paris6k", tmp_path / "data", mirror=server.url, progressbar=False, retries=0)
    message = str(info.value)
    for name in ("paris_120310.tgz", "paris_1-v1.tgz", "paris_2-v1.tgz"):
        assert f"{server.url}/{name}: 404" in message
        assert f"-> {tmp_path / 'data' / 'paris6k' / name}" in message
    assert tree(tmp_path) == {"data", "data/paris6k"}


def test_files_put_by_hand_are_used_offline(tmp_path):
    files = ukbench_files()
    (tmp_path / "data" / "ukbench").mkdir(parents=True)
    (tmp_path / "data" / "ukbench" / "ukbench.zip").write_bytes(files["ukbench.zip"])
    registry = pinned_registry(files)
    ds = load_benchmark("ukbench", tmp_path / "data", download=False, progressbar=False, registry=registry)
    assert ds.n_db == 8


def test_checksum_mismatch_of_a_file_put_by_hand(tmp_path):
    files = ukbench_files()
    target = tmp_path / "data" / "ukbench" / "ukbench.zip"
    target.parent.mkdir(parents=True)
    target.write_bytes(files["ukbench.zip"][:-10])
    with pytest.raises(ChecksumError, match="checksum mismatch for .*ukbench.zip"):
        load_benchmark("ukbench", tmp_path / "data", download=False, registry=pinned_registry(files))
    assert target.stat().st_size == len(files["ukbench.zip"]) - 10  # left for the user to inspect
    assert tree(tmp_path) == {"data", "data/ukbench", "data/ukbench/ukbench.zip"}


def test_wrong_pinned_checksum_on_download(tmp_path):
    files = ukbench_files()
    registry = pinned_registry({"ukbench.zip": b"another file"})
    with FileServer(files) as server:
        with pytest.raises(ChecksumError, match="ukbench.zip"):
            load("ukbench", files, tmp_path, server, registry=registry)
    assert tree(tmp_path) == {"data", "data/ukbench"}


def test_corrupted_unpinned_archive(tmp_path):
    files = {"ukbench.zip": b"PK\x03\x04 but then nothing sensible"}
    with FileServer(files) as server:
        with pytest.raises(CorruptArchiveError, match="ukbench.zip is corrupted"):
            load("ukbench", files, tmp_path, server, registry=pinned_registry(files, pin=False))
    assert tree(tmp_path) == {"data", "data/ukbench", "data/ukbench/ukbench.zip", "data/ukbench/checksums.json"}


def test_archive_with_parent_member_is_refused(tmp_path):
    files = {"holidays_rotated.tar.gz": make_tgz({"holidays/100000.jpg": jpeg_bytes(0), "../../escape.jpg": b"x"})}
    with FileServer(files) as server:
        with pytest.raises(UnsafeArchiveError, match="escape.jpg"):
            load("holidays", files, tmp_path, server)
    assert tree(tmp_path) == {"data", "data/holidays", "data/holidays/holidays_rotated.tar.gz",
                              "data/holidays/checksums.json"}  # fmt: skip


def test_interrupted_benchmark_download_resumes(tmp_path):
    files = ukbench_files()
    with FileServer(files) as server:
        server.cut_after["ukbench.zip"] = 1000
        with pytest.raises(DownloadError, match="could not be downloaded"):
            load("ukbench", files, tmp_path, server, retries=0)
        assert dataset_status(tmp_path / "data", pinned_registry(files))[-1].state == "partial"
        ds = load("ukbench", files, tmp_path, server, retries=0)
        assert server.requests == [("ukbench.zip", None), ("ukbench.zip", "bytes=1000-")]
    assert ds.n_db == 8


def test_keep_archives_false_and_reload_offline(tmp_path):
    files = ukbench_files()
    registry = pinned_registry(files)
    with FileServer(files) as server:
        load("ukbench", files, tmp_path, server, keep_archives=False, registry=registry)
    assert not (tmp_path / "data" / "ukbench" / "ukbench.zip").exists()
    ds = load_benchmark("ukbench", tmp_path / "data", download=False, registry=registry)
    assert ds.n_db == 8


# --------------------------------------------------------------------------- status


def test_dataset_status_and_table(tmp_path):
    data = tmp_path / "data"
    rows = dataset_status(data)
    assert [r.name for r in rows] == list(BENCHMARKS)
    assert {r.state for r in rows} == {"absent"}
    assert all(r.bytes_on_disk == 0 for r in rows)

    files = {**ukbench_files(), **holidays_files(rotated=False)}
    registry = pinned_registry(files)
    with FileServer(files) as server:
        load("ukbench", files, tmp_path, server, registry=registry)
        load("holidays", files, tmp_path, server, registry=registry, rotated=False)
    (data / "oxford5k").mkdir()
    (data / "oxford5k" / "oxbuild_images-v1.tgz.part").write_bytes(b"12345")
    status = {r.name: r for r in dataset_status(data, registry)}
    assert status["ukbench"].state == "present"
    assert status["ukbench"].bytes_on_disk > len(files["ukbench.zip"])  # archive + unpacked images
    assert status["holidays"].state == "present"
    assert "rotated=False" in status["holidays"].note
    assert status["holidays"].load_options == {"rotated": False} and status["ukbench"].load_options == {}
    assert status["oxford5k"].state == "partial"
    assert status["roxford5k"].state == "partial"  # shares the Oxford images
    assert status["paris6k"].state == "absent"

    table = format_dataset_status(list(status.values()), root=data)
    lines = table.splitlines()
    assert lines[0] == f"data folder: {data}"
    assert lines[1].split()[:4] == ["dataset", "state", "on", "disk"]
    ukbench_line = next(line for line in lines if line.startswith("ukbench"))
    assert "present" in ukbench_line and "Nistér" in ukbench_line and "~1.5 GB" in ukbench_line
    assert next(line for line in lines if line.startswith("paris6k")).split()[1] == "absent"


def test_load_dataset_dispatches_benchmark_names(tmp_path):
    pytest.importorskip("cbir_lab.datasets.embedded")
    from cbir_lab.datasets import load_dataset

    files = ukbench_files()
    with FileServer(files) as server:
        ds = load_dataset("ukbench", root=tmp_path / "data", mirror=server.url, progressbar=False,
                          registry=pinned_registry(files))  # fmt: skip
    assert ds.name == "ukbench" and ds.n_db == 8
