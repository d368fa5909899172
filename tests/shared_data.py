"""The real photos in ``../shared/data`` next to the project, served over loopback as a download mirror.

CI and the developers' machines have that folder; a user's machine does not, and
every test that needs it is skipped there. :func:`download_real_data` runs the
package's real download path (pinned md5s, the mirror variable) against a local
HTTP server holding the shared files under their names, so what the tests load is
exactly what a user online downloads.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures_benchmarks import FileServer

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: data set → its folder under SHARED_DATA and the files it serves (relative glob patterns)
_SOURCES = {
    "rparis6k-slice": ("rparis6k-slice", "*.jpg"),
    "eth80": ("eth80-subset", "*/*.png"),
    "imagenet-sample": ("imagenet-sample", "*.JPEG"),
    "gnd": ("revisited-gnd", "gnd_rparis6k.pkl"),
}


def shared_present(*names: str) -> bool:
    """Whether every named source is in ``../shared/data``."""
    return all(any((SHARED_DATA / _SOURCES[n][0]).glob(_SOURCES[n][1])) for n in names)


def needs_shared(*names: str):
    """Skip unless ``../shared/data`` holds these sources."""
    return pytest.mark.skipif(not shared_present(*names), reason=f"../shared/data has no {', '.join(names)}")


def served_files(*names: str) -> dict[str, bytes]:
    """The shared files of these sources, by file name (the names are unique across them)."""
    files = {}
    for name in names:
        folder, pattern = _SOURCES[name]
        files.update({p.name: p.read_bytes() for p in (SHARED_DATA / folder).glob(pattern)})
    return files


def download_real_data(data_root: Path, names=("rparis6k-slice", "eth80")) -> None:
    """Download the named sets into ``data_root`` through the package, from the shared files on loopback."""
    from cbir_lab.datasets.image_sets import load_image_set
    from cbir_lab.datasets.real_photos import REAL_DATASETS, load_real_dataset

    sources = set(names) | ({"gnd"} if "rparis6k-slice" in names else set())
    with FileServer(served_files(*sources)) as server:
        for name in names:
            if name in REAL_DATASETS:
                load_real_dataset(name, data_root, mirror=server.url, progressbar=False)
            else:
                load_image_set(name, data_root, mirror=server.url, progressbar=False)
    os.sync()
