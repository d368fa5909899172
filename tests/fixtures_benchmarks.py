"""Test helpers for the dataset tests: tiny archives laid out like the real
benchmarks, and an HTTP file server on 127.0.0.1 that honours Range requests
and can cut a transfer short."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

from cbir_lab.datasets.registry import REGISTRY
from cbir_lab.datasets.download import RemoteFile

__all__ = [
    "jpeg_bytes",
    "make_tgz",
    "make_zip",
    "md5",
    "FileServer",
    "pinned_registry",
    "holidays_files",
    "oxford_files",
    "paris_files",
    "revisited_pickle",
    "ukbench_files",
    "tree",
]


def jpeg_bytes(seed: int, size: tuple[int, int] = (16, 12)) -> bytes:
    """A small, valid JPEG with content that depends on ``seed``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_photos(root: Path, files: dict[str, int | bytes]) -> Path:
    """``{relative path: seed of a small random JPEG, or the file's bytes}``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(content, size=(48, 36)) if isinstance(content, int) else content)
    return root


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def make_tgz(entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    """A .tar.gz of ``{member name: content}`` plus ``{link name: target}`` symlinks.

    Member names are written verbatim, so ``../evil.txt`` stays as it is.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def make_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return buffer.getvalue()


# --------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        owner = self.server.owner
        name = self.path.lstrip("/").split("?", 1)[0]
        range_header = self.headers.get("Range")
        owner.requests.append((name, range_header))
        if name in owner.redirects:
            self.send_response(302)
            self.send_header("Location", owner.redirects[name])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = owner.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if range_header and not owner.ignore_range:
            spec = range_header.removeprefix("bytes=")
            first, _, last = spec.partition("-")
            start = int(first)
            end = int(last) if last else len(data) - 1
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            payload = data[start : end + 1]
        else:
            self.send_response(200)
            payload = data
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if not body:
            return
        cut = owner.cut_after.pop(name, None)
        if cut is not None and cut < len(payload):
            # Send part of the body, then drop the connection: an interrupted transfer.
            self.wfile.write(payload[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FileServer


class FileServer:
    """Serves ``files`` (``{name: bytes}``) at ``http://127.0.0.1:PORT/name``.

    Attributes:
        files: what is served (may be changed while running).
        cut_after: ``{name: n}``: the next GET of ``name`` sends only n bytes
            of the body and closes the connection (once).
        ignore_range: answer every request with the whole file (status 200).
        redirects: ``{name: location}``: a GET of ``name`` answers 302 to ``location`` (a path or a URL).
        requests: ``(name, Range header or None)`` of every request, in order.
    """

    def __init__(self, files: dict[str, bytes] | None = None):
        self.files = dict(files or {})
        self.cut_after: dict[str, int] = {}
        self.ignore_range = False
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def pinned_registry(files: dict[str, bytes], pin: bool = True) -> dict[str, RemoteFile]:
    """The real registry with each served file's md5 pinned to the fixture's
    (or unpinned with ``pin=False``), and original URLs that cannot be reached."""
    registry = dict(REGISTRY)
    for name, data in files.items():
        registry[name] = replace(
            REGISTRY[name], md5=md5(data) if pin else None, urls=("http://127.0.0.1:9/unreachable/" + name,)
        )
    return registry


# --------------------------------------------------------------------------- benchmark fixtures


def holidays_files(rotated: bool = True) -> dict[str, bytes]:
    """Holidays groups 1000 (3 images), 1001 (2), 1002 (2) as the archives hold them.

    Original: ``jpg1.tar.gz`` and ``jpg2.tar.gz``, each holding ``jpg/NNNNNN.jpg``.
    Rotated copy: ``holidays_rotated.tar.gz`` holding ``holidays/NNNNNN.jpg``.
    """
    names = ["100000", "100001", "100002", "100100", "100101", "100200", "100201"]
    images = {n: jpeg_bytes(int(n)) for n in names}
    if rotated:
        return {"holidays_rotated.tar.gz": make_tgz({f"holidays/{n}.jpg": b for n, b in images.items()})}
    first, second = names[:4], names[4:]
    return {
        "jpg1.tar.gz": make_tgz({f"jpg/{n}.jpg": images[n] for n in first}),
        "jpg2.tar.gz": make_tgz({f"jpg/{n}.jpg": images[n] for n in second}),
    }


OXFORD_IMAGES = [
    "all_souls_000013",
    "all_souls_000026",
    "all_souls_000040",
    "ashmolean_000000",
    "ashmolean_000007",
    "oxford_000001",
]


def _gt_files(queries: dict[str, dict]) -> dict[str, bytes]:
    out = {}
    for qname, q in queries.items():
        out[f"{qname}_query.txt"] = (q["query"] + "\n").encode()
        for kind in ("good", "ok", "junk"):
            out[f"{qname}_{kind}.txt"] = "".join(f"{n}\n" for n in q[kind]).encode()
    return out


def oxford_files() -> dict[str, bytes]:
    """Oxford5k: images at the archive's top level; gt files at the top of gt_files_170407.tgz.

    Sorted database: all_souls_000013 (0), all_souls_000026 (1), all_souls_000040 (2),
    ashmolean_000000 (3), ashmolean_000007 (4), oxford_000001 (5).
    """
    images = {f"{n}.jpg": jpeg_bytes(i) for i, n in enumerate(OXFORD_IMAGES)}
    gt = _gt_files(
        {
            "all_souls_1": {
                "query": "oxc1_all_souls_000013 136.5 34.1 648.5 955.9",
                "good": ["all_souls_000013", "all_souls_000026"],
                "ok": ["all_souls_000040"],
                "junk": ["ashmolean_000007"],
            },
            "ashmolean_1": {
                "query": "oxc1_ashmolean_000000 10 20 30.5 40",
                "good": ["ashmolean_000000"],
                "ok": ["ashmolean_000007", "not_in_archive_000001"],
                "junk": [],
            },
        }
    )
    return {"oxbuild_images-v1.tgz": make_tgz(images), "gt_files_170407.tgz": make_tgz(gt)}


def paris_files() -> dict[str, bytes]:
    """Paris6k: ``paris/<landmark>/paris_<landmark>_NNNNNN.jpg`` split over two
    archives, one of the known-corrupted files present as garbage bytes.

    Sorted database (corrupted file left out): paris_defense_000000 (0),
    paris_defense_000605 (1), paris_louvre_000000 (2), paris_louvre_000001 (3).
    """
    first = {
        "paris/defense/paris_defense_000605.jpg": jpeg_bytes(1),
        "paris/defense/paris_defense_000000.jpg": jpeg_bytes(2),
    }
    second = {
        "paris/louvre/paris_louvre_000000.jpg": jpeg_bytes(3),
        "paris/louvre/paris_louvre_000001.jpg": jpeg_bytes(4),
        "paris/louvre/paris_louvre_000136.jpg": b"corrupted",
    }
    gt = _gt_files(
        {
            "defense_1": {
                "query": "paris_defense_000605 130 17 843 732",
                "good": ["paris_defense_000605", "paris_defense_000000"],
                "ok": [],
                "junk": ["paris_louvre_000136", "paris_louvre_000001"],
            }
        }
    )
    return {
        "paris_1-v1.tgz": make_tgz(first),
        "paris_2-v1.tgz": make_tgz(second),
        "paris_120310.tgz": make_tgz(gt),
    }


def revisited_pickle(imlist: list[str], qimlist: list[str], gnd: list[dict]) -> bytes:
    """A ground-truth pickle in the revisitop format (protocol 2, as distributed)."""
    return pickle.dumps({"imlist": imlist, "qimlist": qimlist, "gnd": gnd}, protocol=2)


def ukbench_files() -> dict[str, bytes]:
    """UKBench: 8 images (2 groups) in ``full/``, thumbnails of the same names beside."""
    full = {f"full/ukbench{i:05d}.jpg": jpeg_bytes(100 + i) for i in range(8)}
    thumbs = {f"thumbnails/ukbench{i:05d}.jpg": jpeg_bytes(200 + i, (4, 3)) for i in range(8)}
    return {"ukbench.zip": make_zip({**full, **thumbs})}


def tree(path: Path) -> set[str]:
    """Every file and folder below ``path``, relative (to check nothing else was written)."""
    return {p.relative_to(path).as_posix() for p in Path(path).rglob("*")}
