"""Collection benchmark: a further search of a folder of 10,000 indexed photos, in a new process and in a session.

The folder is simulated: 10,000 small JPEGs (64 × 48, different content each)
are generated once into a temporary folder, so that scanning it (one ``stat``
per file, as every ``cbir-lab search`` does to find new photos) is real. Their
stored index is written by :class:`~cbir_lab.collection.PhotoCollection`'s own
``update`` with the network replaced by random unit vectors of the backbone's
dimension (1,280, stored as float16 like any index): running EfficientNet on
10,000 images would take minutes and measure extraction, which the extraction
section already does. The query is a 1024 × 768 JPEG outside the folder, run
through the real network.

* **New process** (target < 2 s): the wall time of
  ``python -m cbir_lab.cli search --dataset FOLDER QUERY -k 12 --out PAGE``:
  interpreter start, imports, scanning the folder, reading the index, loading the
  exported descriptor network (:mod:`cbir_lab.onnx_network`, written by the
  untimed first search), describing the query, ranking, printing, and writing the
  HTML page (13 thumbnails). Also, for reading it, the floor: a new process that
  only imports what the command needs and loads the exported network; and, for
  comparison, what a search would pay to load the network in PyTorch instead
  (torch, timm, torchvision and the backbone), as every search did before the
  export and as one still does when the folder has new photos.
* **In a session** (target < 100 ms): :meth:`PhotoCollection.search` on an open
  collection, whose descriptors are in memory: one extraction and one ``rank``.
* For information: ``open`` (manifest and descriptors read) and an ``update``
  that finds nothing new.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.report import Result, judge
from benchmarks.timing import format_seconds, format_spread, summarize, time_call

__all__ = ["N_IMAGES", "make_folder", "query_image", "index_with_random_descriptors", "run"]

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 10_000
NEW_PROCESS_TARGET = 2.0
SESSION_TARGET = 0.1
K = 12
BACKBONE = "efficientnet_lite0"


def make_folder(root: Path, n: int = N_IMAGES, per_group: int = 100) -> Path:
    """``n`` small JPEGs with camera names, ``per_group`` per sub-folder (``group000/IMG_0000.JPG`` …)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"group{i // per_group:03d}"
        if i % per_group == 0:
            folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8).repeat(8, axis=0).repeat(8, axis=1)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
        (folder / f"IMG_{i % per_group:04d}.JPG").write_bytes(buffer.getvalue())
    return root


def query_image(path: Path, size: tuple[int, int] = (1024, 768)) -> Path:
    """A smooth, photo-like JPEG (gradients and waves, not noise, which decodes unlike a photo)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = [128 + 100 * np.sin(x / (37 + 11 * c) + y / (53 - 7 * c)) * np.cos(y / (29 + 5 * c)) for c in range(3)]
    Image.fromarray(np.stack(channels, axis=-1).clip(0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)
    return path


def index_with_random_descriptors(folder: Path, cache: Path) -> float:
    """Write the folder's stored index through PhotoCollection.update, with random unit vectors for descriptors.

    Returns:
        The seconds it took (scanning, hashing every file, writing the store).
    """
    from cbir_lab.backbones import available_backbones
    from cbir_lab.collection import PhotoCollection

    spec = available_backbones()[BACKBONE]
    dim = spec.layers[spec.default_layer][0]

    class RandomDescriptors(PhotoCollection):
        def _describe_paths(self, paths):
            rng = np.random.default_rng(len(self.paths) + len(paths))
            x = rng.standard_normal((len(paths), dim)).astype(np.float32)
            return x / np.linalg.norm(x, axis=1, keepdims=True)

    start = time.perf_counter()
    collection = RandomDescriptors.open(folder, BACKBONE, "GeM", 384, cache=cache)
    collection.update(progress=False)
    if len(collection) != N_IMAGES:
        raise RuntimeError(f"indexed {len(collection)} images, expected {N_IMAGES}")
    return time.perf_counter() - start


def _timed_command(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}… exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return seconds


def run(quick: bool = False) -> list[Result]:
    """Every figure of the collection section (quick: fewer runs)."""
    from cbir_lab.collection import PhotoCollection

    with tempfile.TemporaryDirectory(prefix="cbir-collection-bench-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        folder = make_folder(tmp / "photos", N_IMAGES)
        t_make = time.perf_counter() - start
        t_index = index_with_random_descriptors(folder, tmp / "cache")
        query = query_image(tmp / "query.jpg")
        env = {**os.environ, "CBIR_LAB_CACHE": str(tmp / "cache"), "PYTHONPATH": str(ROOT)}
        repeat = 3 if quick else 7

        command = [sys.executable, "-m", "cbir_lab.cli", "search", "--dataset", str(folder), str(query),
                   "-k", str(K), "--out", str(tmp / "page.html")]
        # Warm-up: the OS file cache, as on a machine in use; and the store's exported network, which the
        # first search writes (the descriptors above were not extracted, so no update has written it).
        _timed_command(command, env)
        store = PhotoCollection.open(folder, BACKBONE, "GeM", 384, cache=tmp / "cache").store
        if not (store / "descriptor-network.onnx").exists():
            raise RuntimeError(f"the first search wrote no exported network to {store}")
        new_process = summarize([_timed_command(command, env) for _ in range(repeat)])
        floor_code = ("import cbir_lab.cli, cbir_lab.collection, cbir_lab.viz.search_page\n"
                      "from cbir_lab.onnx_network import DescriptorSession\n"
                      f"DescriptorSession({str(store / 'descriptor-network.onnx')!r})")
        floor = summarize([_timed_command([sys.executable, "-c", floor_code], env) for _ in range(repeat)])
        torch_code = f"from cbir_lab.backbones import load_backbone; load_backbone({BACKBONE!r})"
        torch_floor = summarize([_timed_command([sys.executable, "-c", torch_code], env) for _ in range(repeat)])

        t_open = time_call(lambda: PhotoCollection.open(folder, BACKBONE, "GeM", 384, cache=tmp / "cache"),
                           repeat=repeat, warmup=1)
        collection = PhotoCollection.open(folder, BACKBONE, "GeM", 384, cache=tmp / "cache")
        t_update = time_call(lambda: collection.update(progress=False), repeat=repeat, warmup=1)
        session = time_call(lambda: collection.search(query, k=K), repeat=10 if quick else 30, warmup=2)

    setup = (f"{N_IMAGES:,} JPEGs of 64×48 in 100 sub-folders (made in {format_seconds(t_make)}), indexed with "
             f"random float16 descriptors of dimension 1,280 by PhotoCollection.update ({format_seconds(t_index)}); "
             f"query: a 1024×768 JPEG run through {BACKBONE} at max side 384.")
    return [
        Result("collection", f"`cbir-lab search` in a new process, {N_IMAGES:,} indexed images, top {K}",
               format_seconds(new_process.median), format_spread(new_process),
               f"< {format_seconds(NEW_PROCESS_TARGET)}", judge(new_process.median, NEW_PROCESS_TARGET),
               "Interpreter start, imports, folder scan, index read, backbone load, query extraction, rank, "
               "and the HTML page. " + setup),
        Result("collection", "of which the floor: a new process importing the command's modules and loading the "
               "exported network", format_seconds(floor.median), format_spread(floor), "", "info",
               "numpy, Pillow and ONNX Runtime; no torch."),
        Result("collection", "for comparison: a new process loading the backbone in PyTorch",
               format_seconds(torch_floor.median), format_spread(torch_floor), "", "info",
               "torch, and timm (which imports torchvision, which imports torch._dynamo) for the backbone: what "
               "every search paid before the exported network, and what one still pays when the folder has new "
               f"photos to extract: {torch_floor.median / new_process.median:.1f}× the whole search above."),
        Result("collection", f"PhotoCollection.search in a session, {N_IMAGES:,} descriptors in memory, top {K}",
               format_seconds(session.median), format_spread(session),
               f"< {format_seconds(SESSION_TARGET)}", judge(session.median, SESSION_TARGET),
               "One extraction of the 1024×768 query and one rank over 10,000 × 1,280."),
        Result("collection", f"PhotoCollection.open ({N_IMAGES:,}-image manifest and descriptors read)",
               format_seconds(t_open.median), format_spread(t_open)),
        Result("collection", f"PhotoCollection.update finding nothing new ({N_IMAGES:,} files scanned and stat'ed)",
               format_seconds(t_update.median), format_spread(t_update)),
    ]
