"""Image sets without queries: learn a PCA-whitening on them, or add them to a database as distractors.

A whitening learned on n images keeps at most n − 1 dimensions, so the embedded
set's 192 training crops cap d at 191. The papers reduce descriptors to 32–1024
dimensions with a whitening learned on thousands of separate images. These sets
bring the course near that:

* ``imagenet-sample``: 1,000 ImageNet photos, one per class, from the GitHub
  repository ``EliSchwartz/imagenet-sample-images`` pinned to one commit (about
  110 MB). The repository states no licence; the photos are ImageNet's, under
  ImageNet's terms (non-commercial research and education). cbir_lab ships only
  their md5 checksums (``checksums/imagenet-sample.md5``); the user downloads the
  photos, which are never redistributed.
* ``coco-val2017``: the 5,000 COCO 2017 validation images (about 0.8 GB, one
  zip), for cleanly licensed photos: each image keeps its Flickr Creative
  Commons licence (COCO's annotations are CC BY 4.0).
* ``rparis6k-slice`` and ``eth80``: the photos of the two real retrieval sets of
  :mod:`cbir_lab.datasets.real_photos` (250 Paris6k photos; 400 ETH-80 views),
  pinned to one commit of a GitHub repository each, like ``imagenet-sample``.
  ``load_dataset("rparis6k-slice")`` / ``load_dataset("eth80")`` add their
  queries and ground truth.

* :func:`load_image_set` downloads a set on first use into the data folder,
  verifying every file, and returns an :class:`ImageSet`.
* :func:`image_set_state` says whether it is there (for ``cbir-lab datasets``);
  :func:`present_image_sets` loads those that are, without downloading anything.
* :func:`split_image_set` splits one into a whitening part and a distractor part.
* :func:`load_whitening_set` resolves any whitening choice (an image set, a
  benchmark's database, a folder) to an :class:`ImageSet`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cbir_lab.datasets.download import MIRROR_ENV, DownloadError, RemoteFile, fetch, human_size, safe_extract, verify_file
from cbir_lab.datasets.folder import IMAGE_EXTENSIONS
from cbir_lab.paths import data_dir

__all__ = [
    "IMAGENET_SAMPLE_COMMIT",
    "RPARIS6K_SLICE_COMMIT",
    "ETH80_COMMIT",
    "ImageSetSpec",
    "ImageSet",
    "IMAGE_SETS",
    "image_set_files",
    "image_set_state",
    "load_image_set",
    "present_image_sets",
    "load_whitening_set",
    "split_image_set",
]

#: The commit of ``EliSchwartz/imagenet-sample-images`` whose files the checksums pin (2022-11-07).
IMAGENET_SAMPLE_COMMIT = "bc69043e2862758a1906c6a24a792bb28c6bb2ff"
#: The commit of ``GrigorySamokhin/Landmark-Image-Retrieval`` that still holds ``paris/<landmark>/`` (2020-03-20;
#: later commits removed the photos, so only this commit serves them).
RPARIS6K_SLICE_COMMIT = "a7bf3c62f809961f5a71bb3824b3e84a3ffb3a45"
#: The commit of ``chenchkx/ETH-80`` whose ``<category>/<instance>/<view>.png`` files the checksums pin.
ETH80_COMMIT = "9243466b9ca5f15765c88fdaf17c4f10c15a8574"
_CHECKSUMS = Path(__file__).resolve().parent / "checksums"


@dataclass(frozen=True)
class ImageSetSpec:
    """One downloadable image set.

    Attributes:
        name: the :func:`load_image_set` name.
        title: a human title with its source.
        folder: its sub-folder of the data folder.
        n_images: how many images it holds.
        download_bytes: the approximate download size.
        terms: the licence or terms of use, in one line.
        community_copies: where to look when every address fails.
        repository, commit: the GitHub repository and commit that serve the files one by one, each
            pinned by an md5 in ``checksums/<name>.md5`` (with its path in the repository); empty
            for a set that is one archive.
        usage: what the set is for, as the ``cbir-lab datasets`` listing says it.
        n_queries: the queries a retrieval protocol makes of it (0: no ground truth).
    """

    name: str
    title: str
    folder: str
    n_images: int
    download_bytes: int
    terms: str
    community_copies: str = ""
    repository: str = ""
    commit: str = ""
    usage: str = "whitening set / distractors: load_image_set"
    n_queries: int = 0


def _clone_and_copy(repository: str, commit: str, what: str) -> str:
    return f"clone https://github.com/{repository}, check out {commit[:7]} and copy its {what} into the folder shown"


IMAGE_SETS: dict[str, ImageSetSpec] = {
    s.name: s
    for s in (
        ImageSetSpec(
            "imagenet-sample", "1,000 ImageNet photos, one per class (GitHub: EliSchwartz/imagenet-sample-images)",
            "imagenet-sample", 1000, 109_576_417,
            "ImageNet's terms: non-commercial research and education (the repository states no licence); "
            "downloaded by you, never redistributed by cbir_lab",
            community_copies=_clone_and_copy("EliSchwartz/imagenet-sample-images", IMAGENET_SAMPLE_COMMIT,
                                             ".JPEG files"),
            repository="EliSchwartz/imagenet-sample-images", commit=IMAGENET_SAMPLE_COMMIT,
        ),
        ImageSetSpec(
            "coco-val2017", "COCO 2017 validation images (Lin et al., ECCV 2014)", "coco-val2017", 5000, 815_585_330,
            "each photo under its own Flickr Creative Commons licence; COCO annotations CC BY 4.0",
            community_copies="copies of val2017.zip are shared on Kaggle and the Hugging Face hub (search 'coco "
                             "val2017')",
        ),
        ImageSetSpec(
            "rparis6k-slice", "250 Paris6k photos of five landmarks (GitHub: GrigorySamokhin/Landmark-Image-Retrieval)",
            "rparis6k-slice", 250, 96_400_000,
            "Flickr photos collected for Paris6k (Philbin et al., CVPR 2008), each under its owner's terms, for "
            "research (the repository states no licence); downloaded by you, never redistributed by cbir_lab",
            community_copies=_clone_and_copy("GrigorySamokhin/Landmark-Image-Retrieval", RPARIS6K_SLICE_COMMIT,
                                             "paris/*/*.jpg files"),
            repository="GrigorySamokhin/Landmark-Image-Retrieval", commit=RPARIS6K_SLICE_COMMIT,
            usage="real landmarks, revisited protocol: load_dataset('rparis6k-slice')", n_queries=12,
        ),
        ImageSetSpec(
            "eth80", "ETH-80, 80 objects × 5 views (Leibe & Schiele, CVPR 2003; GitHub: chenchkx/ETH-80)", "eth80",
            400, 36_000_000,
            "a research dataset, cite Leibe & Schiele 2003 (the repository states no licence); downloaded by you, "
            "never redistributed by cbir_lab",
            community_copies=_clone_and_copy("chenchkx/ETH-80", ETH80_COMMIT, "<category>/<instance>/*.png files"),
            repository="chenchkx/ETH-80", commit=ETH80_COMMIT,
            usage="instance retrieval among look-alikes: load_dataset('eth80')", n_queries=400,
        ),
    )
}


@dataclass(frozen=True)
class ImageSet:
    """The images of a set, ready for feature extraction.

    Attributes:
        name: the set's name (with the part, after a split).
        images: the image paths, in a fixed order.
        description: what to call it where a whitening is described.
        terms: its licence or terms of use.
    """

    name: str
    images: tuple[Path, ...]
    description: str
    terms: str = ""

    def __len__(self) -> int:
        return len(self.images)


def _spec(name: str) -> ImageSetSpec:
    try:
        return IMAGE_SETS[name]
    except KeyError:
        raise ValueError(f"unknown image set {name!r}; known: {', '.join(IMAGE_SETS)}") from None


@lru_cache(maxsize=None)
def _pinned_files(name: str) -> tuple[RemoteFile, ...]:
    """One :class:`RemoteFile` per line of ``checksums/<name>.md5`` (``md5  path/in/the/repository``).

    Each file is kept in the set's folder under its own name (the names are unique in every set), and
    is served from the pinned commit, first by raw.githubusercontent.com, then by github.com, which
    answers with a redirect there: a second route to the same bytes.
    """
    spec = IMAGE_SETS[name]
    bases = (f"https://raw.githubusercontent.com/{spec.repository}/{spec.commit}",
             f"https://github.com/{spec.repository}/raw/{spec.commit}")
    files = []
    for line in (_CHECKSUMS / f"{name}.md5").read_text().splitlines():
        if line.strip():
            md5, path = line.split(maxsplit=1)
            files.append(RemoteFile(path.rsplit("/", 1)[-1], tuple(f"{base}/{path}" for base in bases), md5,
                                    spec.folder))
    return tuple(files)


def image_set_files(name: str) -> dict[str, RemoteFile]:
    """The files a set is made of, by name: photos pinned one by one, or one zip to unpack."""
    spec = _spec(name)
    if spec.commit:
        return {f.filename: f for f in _pinned_files(name)}
    # md5 not pinned here: the first download's md5 is recorded and checked from then on.
    zip_file = RemoteFile("val2017.zip", ("http://images.cocodataset.org/zips/val2017.zip",
                                          "https://images.cocodataset.org/zips/val2017.zip"),
                          None, "coco-val2017", 815_585_330, extract=True)
    return {zip_file.filename: zip_file}


def image_set_state(name: str, root: str | os.PathLike | None = None,
                    files: Mapping[str, RemoteFile] | None = None) -> tuple[str, int]:
    """``("present" | "partial" | "absent", bytes on disk)`` of a set in the data folder (nothing is verified).

    ``files`` replaces the set's file table (:func:`image_set_files`), for tests.
    """
    files = image_set_files(name) if files is None else files
    data_root = data_dir(root)
    ready, size = 0, 0
    for remote in files.values():
        target = remote.target(data_root)
        done = remote.unpacked(data_root).is_dir() if remote.extract else target.is_file()
        ready += done
        if target.is_file():
            size += target.stat().st_size
    if ready == len(files):
        return "present", size
    return ("partial" if ready or size else "absent"), size


def _images_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def load_image_set(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    mirror: str | None = None,
    progressbar: bool = True,
    retries: int = 2,
    files: Mapping[str, RemoteFile] | None = None,
) -> ImageSet:
    """An image set, downloaded and verified on first use.

    Every file is checked against its md5 (pinned for ``imagenet-sample``,
    recorded at download for ``coco-val2017``), also when it is already on disk;
    files already there are never downloaded again.

    Args:
        name: a key of :data:`IMAGE_SETS`.
        root: the data folder (default ``$CBIR_LAB_DATA``, else the user cache).
        download: allow downloading the files that are missing.
        mirror: a base URL serving the files under their names (default ``$CBIR_LAB_MIRROR``).
        progressbar: show one progress bar over the files.
        retries: extra attempts per file after an interrupted transfer.
        files: the set's file table (default :func:`image_set_files`), for tests.

    Returns:
        The :class:`ImageSet`, its images in file-name order.

    Raises:
        ValueError: an unknown set.
        DownloadError: files are missing and could not be downloaded; the message
            says how many, from where, and where to put them.
        ChecksumError: a file on disk or downloaded does not match its md5.
    """
    spec = _spec(name)
    files = image_set_files(name) if files is None else files
    data_root = data_dir(root)
    missing = [f for f in files.values() if not (f.unpacked(data_root).is_dir() if f.extract else f.target(data_root).is_file())]
    for remote in files.values():
        if remote not in missing and not remote.extract:
            verify_file(remote, remote.target(data_root))
    if missing and not download:
        raise DownloadError(_how_to_get(spec, missing, data_root, reasons=[]))
    failures: list[str] = []
    if missing:
        import pooch
        from tqdm.auto import tqdm

        logger = pooch.get_logger()
        level = logger.level
        logger.setLevel("WARNING")  # one bar over the files, not one "Downloading …" line per photo
        try:
            for remote in tqdm(missing, desc=name, unit="file", disable=not progressbar or len(missing) < 2):
                try:
                    fetch(remote, data_root, mirror=mirror, progressbar=progressbar and len(missing) == 1,
                          retries=retries)
                except DownloadError as err:
                    failures.append(str(err))
        finally:
            logger.setLevel(level)
        if failures:
            still = [f for f in missing if not f.target(data_root).is_file()]
            raise DownloadError(_how_to_get(spec, still, data_root, failures))
    images: list[Path] = []
    for remote in sorted(files.values(), key=lambda f: f.filename):
        if remote.extract:  # an archive of images (COCO): every image below its unpacked folder
            images += _images_below(safe_extract(remote.target(data_root), progressbar=progressbar))
        else:
            images.append(remote.target(data_root))
    images = tuple(images)
    return ImageSet(name, images, f"{spec.title}, {len(images)} images", spec.terms)


def _how_to_get(spec: ImageSetSpec, missing: list[RemoteFile], data_root: Path, reasons: list[str]) -> str:
    folder = data_root / spec.folder
    lines = [f"{len(missing)} of the files of image set {spec.name!r} are not in {folder}" +
             (":" if reasons else " (download=False).")]
    lines += [f"  {reason.splitlines()[0]}" for reason in reasons[:3]]
    if len(reasons) > 3:
        lines.append(f"  … and {len(reasons) - 3} more files failed")
    example = missing[0]
    lines.append(f"Each file comes from {example.urls[0].rsplit('/', 1)[0]}/<name> (e.g. {example.urls[0]}); "
                 f"put them in {folder}, where cbir_lab checks their md5.")
    lines.append(f"Or set {MIRROR_ENV} to a server holding the files under their names"
                 + (f", or: {spec.community_copies}." if spec.community_copies else "."))
    lines.append(f"Terms: {spec.terms}. Download size about {human_size(spec.download_bytes)}.")
    return "\n".join(lines)


def present_image_sets(names: Sequence[str] = ("imagenet-sample",),
                       root: str | os.PathLike | None = None) -> list[ImageSet]:
    """The sets among ``names`` that are completely in the data folder, loaded (and verified), never downloaded.

    Offline, and in CI, this is usually empty: a lesson then goes on with its
    dataset's own training split and says so.
    """
    return [load_image_set(name, root, download=False, progressbar=False) for name in names
            if image_set_state(name, root)[0] == "present"]


def load_whitening_set(choice: str | os.PathLike | ImageSet, root: str | os.PathLike | None = None, *,
                       download: bool = True, not_from: str | None = None, **load_options) -> ImageSet:
    """The images a whitening is to be learned on, from any of the ways to name them.

    Args:
        choice: an image set's name (:data:`IMAGE_SETS`); a benchmark's name (its
            database images: ROxford5k's whitening is learned on RParis6k's, as in the
            papers); a folder of images; or an :class:`ImageSet`, returned as it is.
        root: the data folder.
        download: allow downloading what is missing.
        not_from: the dataset being searched: naming it as its own whitening set is an error.
        **load_options: passed to :func:`cbir_lab.datasets.load_dataset` for a benchmark.

    Returns:
        The :class:`ImageSet`.

    Raises:
        ValueError: an unknown choice, or the searched dataset itself.
    """
    from cbir_lab.datasets import load_dataset
    from cbir_lab.datasets.registry import BENCHMARKS

    if isinstance(choice, ImageSet):
        return choice
    choice = str(choice)
    if not_from is not None and choice == not_from:
        raise ValueError(f"the whitening of {not_from!r} cannot be learned on {not_from!r} itself: it would overfit")
    if choice in IMAGE_SETS:
        return load_image_set(choice, root, download=download)
    if choice in BENCHMARKS:
        other = load_dataset(choice, root=root, download=download, **load_options)
        return ImageSet(choice, tuple(other.db_images),
                        f"the {other.n_db:,} database images of {choice} (the papers' protocol)")
    folder = Path(choice).expanduser()
    if folder.is_dir():
        from cbir_lab.datasets.folder import load_folder

        images = load_folder(folder).db_images
        return ImageSet(folder.name, tuple(images), f"the {len(images):,} images of {folder}")
    raise ValueError(f"unknown whitening set {choice!r}: give an image set ({', '.join(IMAGE_SETS)}), a benchmark "
                     f"({', '.join(BENCHMARKS)}) or a folder of images")


def split_image_set(image_set: ImageSet, n_whitening: int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """Split a set into a whitening part and a distractor part, at random but reproducibly.

    The distractors go into a benchmark's database as images that match no query
    (as Oxford105k adds 100k Flickr photos to Oxford5k); the whitening part, now
    smaller, caps d at ``n_whitening − 1``.

    Args:
        image_set: the set to split.
        n_whitening: how many images learn the whitening (the rest are distractors).
        seed: the shuffle's seed.

    Returns:
        (whitening part, distractors), disjoint, each in the set's order.

    Examples:
        >>> s = ImageSet("demo", tuple(Path(f"{i}.jpg") for i in range(5)), "five images")
        >>> whitening, distractors = split_image_set(s, 3)
        >>> len(whitening), len(distractors), set(whitening.images).isdisjoint(distractors.images)
        (3, 2, True)
    """
    if not 1 <= n_whitening < len(image_set):
        raise ValueError(f"n_whitening must be between 1 and {len(image_set) - 1} "
                         f"(the set has {len(image_set)} images), got {n_whitening}")
    order = list(range(len(image_set)))
    random.Random(seed).shuffle(order)
    chosen = set(order[:n_whitening])
    whitening = tuple(p for i, p in enumerate(image_set.images) if i in chosen)
    distractors = tuple(p for i, p in enumerate(image_set.images) if i not in chosen)
    return (ImageSet(f"{image_set.name}[whitening]", whitening,
                     f"{n_whitening} images of {image_set.description}", image_set.terms),
            ImageSet(f"{image_set.name}[distractors]", distractors,
                     f"{len(distractors)} distractors from {image_set.description}", image_set.terms))
