"""Two real retrieval sets small enough for a laptop: 250 Paris6k photos, and ETH-80's 80 objects.

The embedded set is made of synthetic edits of a dozen photos: near-duplicate
detection. These two are real photographs of real things, with real ground truth:

* ``rparis6k-slice``: 250 photos of five Paris landmarks (La Défense, the Eiffel
  Tower, Les Invalides, the Louvre, the Moulin Rouge; 50 each), kept by the
  GitHub repository ``GrigorySamokhin/Landmark-Image-Retrieval`` at one commit.
  Their names are Paris6k's, so the real revisited ground truth applies: 238 are
  RParis6k database images and 12 are RParis6k queries. :func:`cut_revisited_gnd`
  cuts ``gnd_rparis6k.pkl`` (downloaded and md5-checked like the full benchmark's)
  to the slice, and the slice is scored Easy / Medium / Hard with the queries
  cropped to their boxes. It is *not* comparable with published RParis6k figures:
  6,084 of the 6,322 database images are missing, the distractors among them.
* ``eth80``: ETH-80 (Leibe & Schiele, CVPR 2003), 8 categories × 10 objects, 5
  views of each (four side views and one from above), 256 × 256. Every view is a
  query; its positives are the 4 other views of the *same object*, and the other
  9 objects of its category (another apple, another cup) are look-alikes that
  count as negatives: instance retrieval, where ImageNet features are weakest.

Queries that share a landmark or an object are not independent: each dataset
says so in ``query_clusters``, and the bootstrap resamples those clusters.

* :func:`load_real_dataset`: either set, downloaded and verified on first use.
* :func:`present_real_dataset`: the set if it is on disk, else ``None`` (never downloads).
* :func:`how_to_get`: the one paragraph a lesson prints when a set is absent.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cbir_lab.datasets.base import RetrievalDataset, gnd_from_groups
from cbir_lab.datasets.benchmarks import ensure_files
from cbir_lab.datasets.download import DatasetError, RemoteFile
from cbir_lab.datasets.image_sets import IMAGE_SETS, image_set_state, load_image_set
from cbir_lab.datasets.parsers import read_revisited_gnd
from cbir_lab.datasets.registry import REGISTRY

__all__ = [
    "REAL_DATASETS",
    "landmark_of",
    "eth80_object",
    "cut_revisited_gnd",
    "load_real_dataset",
    "present_real_dataset",
    "how_to_get",
]

#: The real sets, and the long side each is fed to the network at by default (the slice's photos are 1024 px
#: Flickr images, ETH-80's views are 256 × 256).
REAL_DATASETS: dict[str, int] = {"rparis6k-slice": 512, "eth80": 256}

_GND_FILE = "gnd_rparis6k.pkl"
_SLICE_TERMS = "250 of Paris6k's Flickr photos, owners' terms, research use; ground truth by Radenović et al. 2018"


def _name_part(pattern: str, name: str, what: str) -> str:
    match = re.fullmatch(pattern, Path(name).stem)
    if match is None:
        raise ValueError(f"{name!r} is not {what}")
    return match.group(1)


def landmark_of(name: str) -> str:
    """The landmark in a Paris6k file name.

    Examples:
        >>> landmark_of("paris_moulinrouge_000422")
        'moulinrouge'
    """
    return _name_part(r"paris_(.+)_\d+", name, "a Paris6k file name (paris_<landmark>_<number>)")


def eth80_object(name: str) -> str:
    """The object (category and instance) in an ETH-80 file name, ``<object>-<elevation>-<azimuth>``.

    Examples:
        >>> eth80_object("tomato10-090-180.png")
        'tomato10'
    """
    return _name_part(r"([a-z]+\d+)-\d{3}-\d{3}", name, "an ETH-80 view name (<object>-<elevation>-<azimuth>.png)")


def cut_revisited_gnd(cfg: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The revisited ground truth cut to a subset of its images.

    The database keeps ``imlist``'s order, restricted to ``names``; the queries are
    the ``qimlist`` entries among ``names``, with their boxes. Each query's ``easy``,
    ``hard`` and ``junk`` lists are renumbered into the cut database; entries that
    name an image outside the subset are dropped (and counted), as a positive that
    is not in the database cannot be found.

    Args:
        cfg: a ground truth as :func:`cbir_lab.datasets.parsers.read_revisited_gnd` returns it.
        names: the images of the subset (file names, with or without extension).

    Returns:
        ``{'imlist', 'qimlist', 'gnd', 'dropped'}``: the cut lists, one ``{'bbx', 'easy',
        'hard', 'junk'}`` per kept query, and how many ground-truth entries were dropped.

    Raises:
        ValueError: an image of the subset is neither a database image nor a query of the
            ground truth (it cannot be scored), or the subset holds no query.

    Examples:
        >>> cfg = {"imlist": ["a", "b", "c"], "qimlist": ["q", "r"],
        ...        "gnd": [{"bbx": (0, 0, 1, 1), "easy": [0, 2], "hard": [1], "junk": []},
        ...                {"bbx": (0, 0, 1, 1), "easy": [1], "hard": [], "junk": [0]}]}
        >>> cut = cut_revisited_gnd(cfg, ["q", "c", "a"])
        >>> cut["imlist"], cut["qimlist"], cut["gnd"][0]["easy"], cut["gnd"][0]["hard"], cut["dropped"]
        (['a', 'c'], ['q'], [0, 1], [], 1)
    """
    stems = [Path(n).stem for n in names]
    unknown = sorted(set(stems) - set(cfg["imlist"]) - set(cfg["qimlist"]))
    if unknown:
        raise ValueError(f"{len(unknown)} image(s) of the subset are not in the ground truth, so they cannot be "
                         f"scored: {', '.join(unknown[:5])}")
    wanted = set(stems)
    renumber = {old: new for new, old in enumerate(i for i, n in enumerate(cfg["imlist"]) if n in wanted)}
    imlist = [n for n in cfg["imlist"] if n in wanted]
    kept = [q for q, n in enumerate(cfg["qimlist"]) if n in wanted]
    if not kept:
        raise ValueError("the subset holds none of the ground truth's queries")
    gnd, dropped = [], 0
    for q in kept:
        entry = cfg["gnd"][q]
        cut = {"bbx": tuple(entry["bbx"])}
        for key in ("easy", "hard", "junk"):
            cut[key] = [renumber[i] for i in entry[key] if i in renumber]
            dropped += len(entry[key]) - len(cut[key])
        gnd.append(cut)
    return {"imlist": imlist, "qimlist": [cfg["qimlist"][q] for q in kept], "gnd": gnd, "dropped": dropped}


def _rparis6k_slice(photos: Sequence[Path], gnd_file: Path, gnd_md5: str | None) -> RetrievalDataset:
    cfg = cut_revisited_gnd(read_revisited_gnd(gnd_file, gnd_md5), [p.name for p in photos])
    by_stem = {p.stem: p for p in photos}
    return RetrievalDataset(
        name="rparis6k-slice",
        db_images=tuple(by_stem[n] for n in cfg["imlist"]),
        query_images=tuple(by_stem[n] for n in cfg["qimlist"]),
        gnd=tuple({k: entry[k] for k in ("easy", "hard", "junk")} for entry in cfg["gnd"]),
        protocol="revisited",
        query_bboxes=tuple(entry["bbx"] for entry in cfg["gnd"]),
        groups=tuple(landmark_of(n) for n in cfg["imlist"]),
        root=photos[0].parent,
        licence=_SLICE_TERMS,
        query_clusters=tuple(landmark_of(n) for n in cfg["qimlist"]),
        cluster_unit="landmarks",
        max_side=REAL_DATASETS["rparis6k-slice"],
        extra={"gnd_file": gnd_file, "dropped_gnd_entries": cfg["dropped"],
               "train_source": "no training images (learn the whitening on imagenet-sample)"},
    )


def _eth80(photos: Sequence[Path]) -> RetrievalDataset:
    photos = sorted(photos, key=lambda p: p.name)
    objects = tuple(eth80_object(p.name) for p in photos)
    return RetrievalDataset(
        name="eth80",
        db_images=tuple(photos),
        query_images=tuple(photos),
        # every view is a query; it stays in the database as junk, so it is left out of its own ranking
        gnd=gnd_from_groups(objects, range(len(photos))),
        protocol="standard",
        groups=objects,
        root=photos[0].parent,
        licence=IMAGE_SETS["eth80"].terms,
        query_clusters=objects,
        cluster_unit="objects",
        max_side=REAL_DATASETS["eth80"],
        extra={"categories": tuple(re.sub(r"\d+$", "", o) for o in objects),
               "train_source": "no training images (learn the whitening on imagenet-sample)"},
    )


def _check_name(name: str) -> None:
    if name not in REAL_DATASETS:
        raise ValueError(f"unknown real dataset {name!r}; known: {', '.join(REAL_DATASETS)}")


def load_real_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    mirror: str | None = None,
    progressbar: bool = True,
    files: Mapping[str, RemoteFile] | None = None,
    registry: Mapping[str, RemoteFile] | None = None,
) -> RetrievalDataset:
    """``rparis6k-slice`` or ``eth80``, downloaded from its pinned commit and verified on first use.

    Every photo is checked against the md5 that cbir_lab ships (``checksums/<name>.md5``),
    also when it is already on disk. The slice's ground truth is the real
    ``gnd_rparis6k.pkl``, fetched and checked like the full benchmark's.

    Args:
        name: ``"rparis6k-slice"`` or ``"eth80"``.
        root: the data folder (default ``$CBIR_LAB_DATA``, else the user cache).
        download: allow downloading what is missing.
        mirror: a base URL serving every file under its name (default ``$CBIR_LAB_MIRROR``).
        progressbar: show one progress bar over the photos.
        files: the photos' file table (default: the pinned one), for tests.
        registry: the download table holding ``gnd_rparis6k.pkl`` (default: the registry's), for tests.

    Returns:
        The dataset (see the module docstring for its protocol).

    Raises:
        ValueError: an unknown name, or a ground truth that does not cover the photos.
        DownloadError: files are missing and could not be downloaded; the message says where to put them.
        ChecksumError: a file does not match its md5.
    """
    _check_name(name)
    photos = load_image_set(name, root, download=download, mirror=mirror, progressbar=progressbar, files=files)
    if name == "eth80":
        return _eth80(photos.images)
    registry = REGISTRY if registry is None else registry
    gnd = ensure_files("rparis6k", [_GND_FILE], root, download=download, mirror=mirror, progressbar=False,
                       registry=registry)[_GND_FILE]
    return _rparis6k_slice(photos.images, gnd, registry[_GND_FILE].md5)


def present_real_dataset(name: str, root: str | os.PathLike | None = None) -> RetrievalDataset | None:
    """The set if all of it is in the data folder (verified), else ``None``; nothing is downloaded.

    Lessons call this: offline, and in CI, the real photos are usually absent, and the
    lesson then prints :func:`how_to_get` instead of a table.
    """
    _check_name(name)
    if image_set_state(name, root)[0] != "present":
        return None
    try:
        return load_real_dataset(name, root, download=False, progressbar=False)
    except DatasetError:  # the slice's ground truth is not there yet
        return None


def how_to_get(name: str, instead: str = "so this step is skipped") -> str:
    """What to run to get a real set, its size and its terms, in a few lines.

    Args:
        name: the set.
        instead: what the lesson does without it, after "<name> is not on disk here, ".
    """
    _check_name(name)
    spec = IMAGE_SETS[name]
    return (f"{name} is not on disk here, {instead}. To see it on real photos, run once, online:\n"
            f"    from cbir_lab.datasets import load_dataset; load_dataset({name!r})\n"
            f"(or `cbir-lab demo --dataset {name}`): {spec.n_images} photos, about {spec.download_bytes / 1e6:.0f} MB, "
            f"from {spec.repository} at commit {spec.commit[:7]}, every file checked.\n"
            f"Terms: {spec.terms}.")
