"""Download, verify and safe-extraction helpers, against a real HTTP server on loopback."""

from __future__ import annotations

import json
import os
import socket
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from cbir_lab.datasets.download import (
    ChecksumError,
    CorruptArchiveError,
    DownloadError,
    RemoteFile,
    UnsafeArchiveError,
    candidate_urls,
    extracted_folder,
    fetch,
    human_size,
    safe_extract,
    verify_file,
)
from tests.fixtures_benchmarks import FileServer, make_tgz, make_zip, md5, tree

PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes, every byte value


def remote(md5_hex: str | None, name: str = "payload.bin", extract: bool = False) -> RemoteFile:
    return RemoteFile(name, ("http://127.0.0.1:9/unreachable/" + name,), md5_hex, "things", 10_240, extract)


@pytest.fixture
def server():
    with FileServer({"payload.bin": PAYLOAD}) as srv:
        yield srv


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more


# --------------------------------------------------------------------------- fetch


def test_fetch_downloads_verifies_and_records_the_hash(server, tmp_path):
    path = fetch(remote(md5(PAYLOAD)), tmp_path, mirror=server.url, progressbar=False)
    assert path == tmp_path / "things" / "payload.bin"
    assert path.read_bytes() == PAYLOAD
    manifest = json.loads((tmp_path / "things" / "checksums.json").read_text())
    assert manifest["payload.bin"]["md5"] == md5(PAYLOAD)
    assert manifest["payload.bin"]["bytes"] == 10_240
    assert manifest["payload.bin"]["url"] == server.url + "/payload.bin"
    assert manifest["payload.bin"]["md5_pinned"] is True
    # A second call finds the file and verifies it, without asking the server.
    fetch(remote(md5(PAYLOAD)), tmp_path, mirror=server.url, progressbar=False)
    assert server.requests == [("payload.bin", None)]
    assert tree(tmp_path) == {"things", "things/payload.bin", "things/checksums.json"}


def test_fetch_shows_a_progress_bar_only_when_asked(server, tmp_path, capsys):
    fetch(remote(md5(PAYLOAD), name="payload.bin"), tmp_path / "quiet", mirror=server.url, progressbar=False)
    assert "100%" not in capsys.readouterr().err
    fetch(remote(md5(PAYLOAD)), tmp_path / "loud", mirror=server.url, progressbar=True)
    err = capsys.readouterr().err
    assert "100%" in err and "10.2k/10.2k" in err  # tqdm's bar: 10,240 bytes received


def test_wrong_checksum_keeps_nothing(server, tmp_path):
    wrong = "0" * 32
    with pytest.raises(ChecksumError, match=r"payload\.bin.*0{32}") as info:
        fetch(remote(wrong), tmp_path, mirror=server.url, progressbar=False)
    assert server.url + "/payload.bin" in str(info.value)
    assert tree(tmp_path) == {"things"}  # no file, no .part, no temporary file


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    server.cut_after["payload.bin"] = 3000
    with pytest.raises(DownloadError, match=r"payload\.bin\.part"):
        fetch(remote(md5(PAYLOAD)), tmp_path, mirror=server.url, progressbar=False, retries=0)
    part = tmp_path / "things" / "payload.bin.part"
    assert part.read_bytes() == PAYLOAD[:3000]
    assert not (tmp_path / "things" / "payload.bin").exists()

    path = fetch(remote(md5(PAYLOAD)), tmp_path, mirror=server.url, progressbar=False, retries=0)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("payload.bin", None), ("payload.bin", "bytes=3000-")]
    assert not part.exists()


def test_interrupted_download_resumes_within_one_call(server, tmp_path):
    server.cut_after["payload.bin"] = 5000
    path = fetch(remote(md5(PAYLOAD)), tmp_path, mirror=server.url, progressbar=False, retries=1)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("payload.bin", None), ("payload.bin", "bytes=5000-")]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    (tmp_path / "things").mkdir()
    (tmp_path / "things" / "payload.bin.part").write_bytes(b"stale bytes")
    server.ignore_range = True
    path = fetch(remote(md5(PAYLOAD)), tmp_path, mirror=server.url, progressbar=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("payload.bin", "bytes=11-")]


def test_part_file_longer_than_remote_starts_again(server, tmp_path):
    (tmp_path / "things").mkdir()
    (tmp_path / "things" / "payload.bin.part").write_bytes(b"x" * 20_000)
    path = fetch(remote(md5(PAYLOAD)), tmp_path, mirror=server.url, progressbar=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("payload.bin", "bytes=20000-"), ("payload.bin", None)]


def test_unpinned_file_is_checked_against_its_recorded_md5(server, tmp_path):
    path = fetch(remote(None), tmp_path, mirror=server.url, progressbar=False)
    manifest = json.loads((tmp_path / "things" / "checksums.json").read_text())
    assert manifest["payload.bin"] | {"md5_pinned": False} == manifest["payload.bin"]
    assert manifest["payload.bin"]["md5"] == md5(PAYLOAD)
    path.write_bytes(PAYLOAD[:-1] + b"!")  # bit rot after the download
    with pytest.raises(ChecksumError, match="recorded"):
        verify_file(remote(None), path)


def test_file_put_by_hand_with_wrong_md5_is_reported_not_replaced(server, tmp_path):
    target = tmp_path / "things" / "payload.bin"
    target.parent.mkdir()
    target.write_bytes(b"something else")
    with pytest.raises(ChecksumError, match=str(target)):
        fetch(remote(md5(PAYLOAD)), tmp_path, mirror=server.url, progressbar=False)
    assert target.read_bytes() == b"something else"
    assert server.requests == []


def test_server_gone_names_every_url_tried(tmp_path):
    dead = closed_port_url()
    with FileServer({}) as empty:
        with pytest.raises(DownloadError) as info:
            fetch(
                RemoteFile("payload.bin", (empty.url + "/payload.bin", dead + "/payload.bin"), None, "things"),
                tmp_path,
                mirror="",
                progressbar=False,
            )
    message = str(info.value)
    assert empty.url + "/payload.bin: 404" in message
    assert dead + "/payload.bin" in message
    assert tree(tmp_path) == {"things"}


def test_a_dead_first_mirror_falls_back_to_the_second_which_redirects(server, tmp_path):
    # as thor.robots.ox.ac.uk behind the VGG page: the second address answers 302 with the file's real place
    server.redirects = {"vgg/payload.bin": "/payload.bin"}
    urls = (closed_port_url() + "/payload.bin", server.url + "/vgg/payload.bin")
    path = fetch(RemoteFile("payload.bin", urls, md5(PAYLOAD), "things"), tmp_path, mirror="", progressbar=False)
    assert path.read_bytes() == PAYLOAD
    assert [name for name, _ in server.requests] == ["vgg/payload.bin", "payload.bin"]
    assert json.loads((tmp_path / "things" / "checksums.json").read_text())["payload.bin"]["url"] == urls[1]


def test_a_hash_mismatch_on_the_first_mirror_is_an_error_not_a_silent_fallback(server, tmp_path):
    with FileServer({"payload.bin": b"another file"}) as wrong:
        urls = (wrong.url + "/payload.bin", server.url + "/payload.bin")
        with pytest.raises(ChecksumError, match="checksum mismatch for payload.bin downloaded from"):
            fetch(RemoteFile("payload.bin", urls, md5(PAYLOAD), "things"), tmp_path, mirror="", progressbar=False)
    assert not (tmp_path / "things" / "payload.bin").exists() and server.requests == []


def test_when_every_mirror_fails_the_message_names_the_community_copies(tmp_path, monkeypatch):
    from cbir_lab.datasets.benchmarks import ensure_files
    from cbir_lab.datasets.registry import REGISTRY

    monkeypatch.delenv("CBIR_LAB_MIRROR", raising=False)
    dead = closed_port_url()
    registry = {name: replace(remote, urls=(f"{dead}/{name}",)) for name, remote in REGISTRY.items()}
    with pytest.raises(DownloadError) as info:
        ensure_files("roxford5k", ["gnd_roxford5k.pkl"], tmp_path, registry=registry, progressbar=False, retries=0)
    assert "Kaggle and the Hugging Face hub" in str(info.value) and "gnd_roxford5k.pkl" in str(info.value)


def test_mirror_from_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("CBIR_LAB_MIRROR", server.url + "/")
    assert candidate_urls(remote(None)) == [server.url + "/payload.bin"]
    fetch(remote(md5(PAYLOAD)), tmp_path, progressbar=False)
    assert server.requests == [("payload.bin", None)]
    monkeypatch.setenv("CBIR_LAB_MIRROR", "")
    assert candidate_urls(remote(None)) == ["http://127.0.0.1:9/unreachable/payload.bin"]


def test_human_size():
    assert human_size(None) == "?"
    assert human_size(999) == "999 B"
    assert human_size(1_938_238_004) == "1.9 GB"
    assert human_size(149_871) == "149.9 kB"


# --------------------------------------------------------------------------- extraction


def test_extracted_folder_strips_archive_suffix():
    assert extracted_folder(Path("/d/oxbuild_images-v1.tgz")) == Path("/d/oxbuild_images-v1")
    assert extracted_folder(Path("/d/jpg1.tar.gz")) == Path("/d/jpg1")
    assert extracted_folder(Path("/d/ukbench.zip")) == Path("/d/ukbench")


def test_safe_extract_tar_and_zip(tmp_path):
    (tmp_path / "a.tgz").write_bytes(make_tgz({"top/x.txt": b"x", "y.txt": b"yy"}, symlinks={"top/link": "x.txt"}))
    out = safe_extract(tmp_path / "a.tgz")
    assert out == tmp_path / "a"
    assert (out / "top" / "x.txt").read_bytes() == b"x"
    assert (out / "y.txt").read_bytes() == b"yy"
    assert (out / "top" / "link").read_bytes() == b"x"  # a link inside the archive is fine
    (tmp_path / "b.zip").write_bytes(make_zip({"full/u.jpg": b"u"}))
    assert (safe_extract(tmp_path / "b.zip") / "full" / "u.jpg").read_bytes() == b"u"
    assert tree(tmp_path) == {"a.tgz", "a", "a/top", "a/top/x.txt", "a/top/link", "a/y.txt",
                              "b.zip", "b", "b/full", "b/full/u.jpg"}  # fmt: skip


@pytest.mark.parametrize(
    "entries, symlinks, message",
    [
        ({"ok.txt": b"1", "../evil.txt": b"2"}, None, r"'\.\./evil\.txt' would be written outside"),
        ({"ok.txt": b"1", "sub/../../evil.txt": b"2"}, None, "outside"),
        ({"/tmp/evil.txt": b"2"}, None, "absolute path"),
        ({"ok.txt": b"1"}, {"sub/link": "../../outside.txt"}, "symbolic link 'sub/link'"),
        ({"ok.txt": b"1"}, {"link": "/etc/passwd"}, "points outside"),
    ],
)
def test_safe_extract_refuses_members_escaping_the_folder(tmp_path, entries, symlinks, message):
    data = tmp_path / "data"
    data.mkdir()
    (data / "bad.tgz").write_bytes(make_tgz(entries, symlinks))
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract(data / "bad.tgz")
    assert tree(tmp_path) == {"data", "data/bad.tgz"}  # nothing unpacked, no temporary folder left


def test_safe_extract_refuses_zip_escaping_or_symlink_members(tmp_path):
    (tmp_path / "bad.zip").write_bytes(make_zip({"ok.txt": b"1", "../evil.txt": b"2"}))
    with pytest.raises(UnsafeArchiveError, match="outside"):
        safe_extract(tmp_path / "bad.zip")
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)  # a symlink entry, as Info-ZIP stores them
        zf.writestr(info, "../../outside.txt")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract(tmp_path / "link.zip")
    assert tree(tmp_path) == {"bad.zip", "link.zip"}


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupted_tar_archive_gives_a_clear_error(tmp_path, damage):
    good = make_tgz({f"jpg/{i}.jpg": os.urandom(2000) for i in range(5)})
    bad = good[: len(good) // 2] if damage == "truncate" else b"this is not an archive" * 10
    (tmp_path / "jpg1.tar.gz").write_bytes(bad)
    with pytest.raises(CorruptArchiveError, match=r"jpg1\.tar\.gz is corrupted or truncated.*Delete it"):
        safe_extract(tmp_path / "jpg1.tar.gz")
    assert tree(tmp_path) == {"jpg1.tar.gz"}


def test_corrupted_zip_archive_gives_a_clear_error(tmp_path):
    good = make_zip({"full/ukbench00000.jpg": b"A" * 5000})
    damaged = good.replace(b"A" * 100, b"B" * 100, 1)  # payload changed: CRC no longer matches
    (tmp_path / "ukbench.zip").write_bytes(damaged)
    with pytest.raises(CorruptArchiveError, match="ukbench.zip"):
        safe_extract(tmp_path / "ukbench.zip")
    assert tree(tmp_path) == {"ukbench.zip"}


def test_safe_extract_clears_a_killed_unpack(tmp_path):
    (tmp_path / ".a.unpacking-99999" / "half").mkdir(parents=True)
    (tmp_path / "a.tgz").write_bytes(make_tgz({"x.txt": b"x"}))
    safe_extract(tmp_path / "a.tgz")
    assert tree(tmp_path) == {"a.tgz", "a", "a/x.txt"}


def test_safe_extract_keeps_an_existing_folder(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "mine.txt").write_text("user's")
    (tmp_path / "a.tgz").write_bytes(make_tgz({"x.txt": b"x"}))
    assert safe_extract(tmp_path / "a.tgz") == tmp_path / "a"
    assert tree(tmp_path) == {"a", "a/mine.txt", "a.tgz"}
