"""The papers' benchmarks: Holidays, Oxford5k/Paris6k, ROxford5k/RParis6k and UKBench.

Provides the download table (:data:`REGISTRY`: every URL and md5 in one place),
the benchmark table (:data:`BENCHMARKS`), :func:`load_benchmark` which
downloads, verifies and unpacks what a benchmark needs into the data folder
and parses it into a :class:`~cbir_lab.datasets.base.RetrievalDataset` under
the benchmark authors' own protocol, and :func:`dataset_status` /
:func:`format_dataset_status` for the ``cbir-lab datasets`` listing.

Data folder layout (``data_dir(root)``, i.e. ``root``, ``$CBIR_LAB_DATA`` or
the user cache)::

    holidays/  holidays_rotated.tar.gz  holidays_rotated/...  (or jpg1/, jpg2/)
    oxford5k/  oxbuild_images-v1.tgz  oxbuild_images-v1/  gt_files_170407/
    paris6k/   paris_1-v1/  paris_2-v1/  paris_120310/
    roxford5k/ gnd_roxford5k.pkl        (images: oxford5k/oxbuild_images-v1/)
    rparis6k/  gnd_rparis6k.pkl         (images: paris6k/paris_{1,2}-v1/)
    ukbench/   ukbench.zip  ukbench/full/ukbench00000.jpg ...

Each folder also holds ``checksums.json``: the md5 and sha256 of every file
cbir_lab downloaded there.

Hosts move: when one does, edit :data:`REGISTRY`, or point
``$CBIR_LAB_MIRROR`` (or ``mirror=``) at a server holding the files under
their names, or put the files by hand where the error message says.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.datasets.download import (
    MIRROR_ENV,
    ChecksumError,
    DownloadError,
    RemoteFile,
    fetch,
    file_md5,
    human_size,
    safe_extract,
    verify_file,
)
from cbir_lab.paths import data_dir

__all__ = [
    "REGISTRY",
    "BENCHMARKS",
    "BenchmarkSpec",
    "DatasetStatus",
    "PARIS_CORRUPTED",
    "load_benchmark",
    "ensure_files",
    "required_files",
    "read_revisited_gnd",
    "parse_oxford_gt",
    "holidays_dataset",
    "classic_dataset",
    "revisited_dataset",
    "ukbench_dataset",
    "dataset_status",
    "format_dataset_status",
]

_OXFORD = "https://www.robots.ox.ac.uk/~vgg/data/oxbuildings"
_OXFORD_THOR = "https://thor.robots.ox.ac.uk/datasets/oxford-buildings"
_PARIS = "https://www.robots.ox.ac.uk/~vgg/data/parisbuildings"
_PARIS_THOR = "https://thor.robots.ox.ac.uk/datasets/paris-buildings"
_REVISITOP = "cmp.felk.cvut.cz/revisitop/data/datasets"
_INRIA_FTP = "ftp://ftp.inrialpes.fr/pub/lear/douze/data"

#: Every downloadable file, by name. ``md5=None`` means "not pinned yet": the
#: md5 of the first download is recorded in ``checksums.json`` and checked
#: from then on. Sizes are approximate and only shown in listings.
REGISTRY: dict[str, RemoteFile] = {
    f.filename: f
    for f in (
        # INRIA Holidays, as distributed by the authors (some photos lie on their side).
        RemoteFile("jpg1.tar.gz", (f"{_INRIA_FTP}/jpg1.tar.gz",), None, "holidays", 1_100_000_000, True),
        RemoteFile("jpg2.tar.gz", (f"{_INRIA_FTP}/jpg2.tar.gz",), None, "holidays", 1_600_000_000, True),
        # The community's manually rotated copy (linked from the Gordo et al. /
        # Hoang et al. retrieval code): every photo upright.
        RemoteFile(
            "holidays_rotated.tar.gz",
            ("https://www.dropbox.com/s/f1z8pgzhkf52tcb/holidays_rotated.tar.gz?dl=1",),
            None,
            "holidays",
            None,
            True,
        ),
        RemoteFile(
            "oxbuild_images-v1.tgz",
            (f"{_OXFORD}/oxbuild_images-v1.tgz", f"{_OXFORD_THOR}/oxbuild_images-v1.tgz"),
            "8f0017cc5d671f35011d6968269fbf47",
            "oxford5k",
            1_938_238_004,
            True,
        ),
        RemoteFile(
            "gt_files_170407.tgz",
            (f"{_OXFORD}/gt_files_170407.tgz", f"{_OXFORD_THOR}/gt_files_170407.tgz"),
            "06c4dee0ad954f6ee122c82390548537",
            "oxford5k",
            None,
            True,
        ),
        RemoteFile(
            "paris_1-v1.tgz",
            (f"{_PARIS}/paris_1-v1.tgz", f"{_PARIS_THOR}/paris_1-v1.tgz"),
            None,
            "paris6k",
            1_270_000_000,
            True,
        ),
        RemoteFile(
            "paris_2-v1.tgz",
            (f"{_PARIS}/paris_2-v1.tgz", f"{_PARIS_THOR}/paris_2-v1.tgz"),
            None,
            "paris6k",
            1_250_000_000,
            True,
        ),
        RemoteFile(
            "paris_120310.tgz",
            (f"{_PARIS}/paris_120310.tgz", f"{_PARIS_THOR}/paris_120310.tgz"),
            None,
            "paris6k",
            None,
            True,
        ),
        RemoteFile(
            "gnd_roxford5k.pkl",
            (f"https://{_REVISITOP}/roxford5k/gnd_roxford5k.pkl", f"http://{_REVISITOP}/roxford5k/gnd_roxford5k.pkl"),
            "f2b67579f625a587b5b0828dbf2e8eb0",
            "roxford5k",
            149_871,
        ),
        RemoteFile(
            "gnd_rparis6k.pkl",
            (f"https://{_REVISITOP}/rparis6k/gnd_rparis6k.pkl", f"http://{_REVISITOP}/rparis6k/gnd_rparis6k.pkl"),
            "2feae0a8257a5c6ca1b31b8eb73c8571",
            "rparis6k",
            276_508,
        ),
        RemoteFile(
            "ukbench.zip",
            ("https://archive.org/download/ukbench/ukbench.zip",),
            None,
            "ukbench",
            1_500_000_000,
            True,
        ),
    )
}

#: The 20 Paris images that are corrupted in the original archives (listed on
#: the Paris Buildings page); they are left out of Paris6k's database.
PARIS_CORRUPTED = frozenset(
    {
        "paris_louvre_000136", "paris_louvre_000146", "paris_moulinrouge_000422",
        "paris_museedorsay_001059", "paris_notredame_000188", "paris_pantheon_000284",
        "paris_pantheon_000960", "paris_pantheon_000974", "paris_pompidou_000195",
        "paris_pompidou_000196", "paris_pompidou_000201", "paris_pompidou_000467",
        "paris_pompidou_000640", "paris_sacrecoeur_000299", "paris_sacrecoeur_000330",
        "paris_sacrecoeur_000353", "paris_triomphe_000662", "paris_triomphe_000833",
        "paris_triomphe_000863", "paris_triomphe_000867",
    }
)  # fmt: skip


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark: what to download and how to read it.

    Attributes:
        name: the ``load_dataset`` name.
        title: a human title with the reference.
        files: registry names needed (default variant).
        licence: one-line licence / attribution note.
        n_db: database size under the protocol, for the listing.
        n_queries: number of queries.
        options: keyword options :func:`load_benchmark` accepts for it.
    """

    name: str
    title: str
    files: tuple[str, ...]
    licence: str
    n_db: int
    n_queries: int
    options: tuple[str, ...] = ()


BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in (
        BenchmarkSpec(
            "holidays",
            "INRIA Holidays (Jégou, Douze & Schmid, ECCV 2008)",
            ("holidays_rotated.tar.gz",),
            "personal holiday photos of the authors, for research; cite Jégou et al. 2008",
            1491,
            500,
            ("rotated",),
        ),
        BenchmarkSpec(
            "oxford5k",
            "Oxford Buildings (Philbin et al., CVPR 2007)",
            ("gt_files_170407.tgz", "oxbuild_images-v1.tgz"),
            "Flickr photos under their owners' licences (faces blurred in -v1), research use; cite Philbin et al.",
            5062,
            55,
        ),
        BenchmarkSpec(
            "paris6k",
            "Paris Buildings (Philbin et al., CVPR 2008)",
            ("paris_120310.tgz", "paris_1-v1.tgz", "paris_2-v1.tgz"),
            "Flickr photos under their owners' licences (faces blurred in -v1), research use; cite Philbin et al.",
            6392,
            55,
        ),
        BenchmarkSpec(
            "roxford5k",
            "Revisited Oxford (Radenović et al., CVPR 2018)",
            ("gnd_roxford5k.pkl", "oxbuild_images-v1.tgz"),
            "ground truth by Radenović et al. (cite CVPR 2018); Oxford Buildings photos, owners' licences",
            4993,
            70,
        ),
        BenchmarkSpec(
            "rparis6k",
            "Revisited Paris (Radenović et al., CVPR 2018)",
            ("gnd_rparis6k.pkl", "paris_1-v1.tgz", "paris_2-v1.tgz"),
            "ground truth by Radenović et al. (cite CVPR 2018); Paris Buildings photos, owners' licences",
            6322,
            70,
        ),
        BenchmarkSpec(
            "ukbench",
            "UKBench (Nistér & Stewénius, CVPR 2006)",
            ("ukbench.zip",),
            "photos by the authors, for research; cite Nistér & Stewénius 2006",
            10200,
            10200,
        ),
    )
}

_IMAGE_SUFFIXES = (".jpg", ".jpeg")


# --------------------------------------------------------------------------- files


def required_files(name: str, **options: Any) -> tuple[str, ...]:
    """The registry names :func:`load_benchmark` needs for ``name`` and options."""
    spec = _spec(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        allowed = ", ".join(spec.options) or "none"
        raise TypeError(f"load_benchmark({name!r}): unknown option(s) {', '.join(unknown)} (accepted: {allowed})")
    if name == "holidays" and not options.get("rotated", True):
        return ("jpg1.tar.gz", "jpg2.tar.gz")
    return spec.files


def _spec(name: str) -> BenchmarkSpec:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None


def _is_ready(remote: RemoteFile, data_root: Path) -> bool:
    if remote.extract:
        return remote.unpacked(data_root).is_dir()
    return remote.target(data_root).is_file()


def _manual_instructions(name: str, remotes: Iterable[RemoteFile], data_root: Path, reasons: list[str]) -> str:
    lines = [f"The files of {name!r} could not be downloaded" + (":" if reasons else " (download=False).")]
    lines += [f"  {reason}" for reason in reasons]
    lines.append(
        "Download each file by hand (browser, wget or curl) and put it at the path shown; "
        "cbir_lab checks its md5 and unpacks it on the next call:"
    )
    for remote in remotes:
        md5 = f"md5 {remote.md5}" if remote.md5 else "md5 not pinned"
        lines.append(f"  {remote.urls[0]}")
        for alternative in remote.urls[1:]:
            lines.append(f"    (or {alternative})")
        lines.append(f"    -> {remote.target(data_root)}   [{md5}, about {human_size(remote.size)}]")
    lines.append(
        f"Or set {MIRROR_ENV} to a server holding these files under the same names, "
        f"or CBIR_LAB_DATA (or root=) to a folder that already has them."
    )
    if any(r.filename == "holidays_rotated.tar.gz" for r in remotes):
        lines.append("Or use the authors' original Holidays archives: load_dataset('holidays', rotated=False).")
    return "\n".join(lines)


def ensure_files(
    name: str,
    files: Iterable[str],
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    mirror: str | None = None,
    progressbar: bool = True,
    retries: int = 2,
    keep_archives: bool = True,
    registry: Mapping[str, RemoteFile] | None = None,
) -> dict[str, Path]:
    """Download, verify and unpack ``files`` into the data folder, as needed.

    Args:
        name: the benchmark (for messages).
        files: registry names.
        root: data folder (see :func:`cbir_lab.paths.data_dir`).
        download: allow network access; if False, only what is on disk is used.
        mirror: base URL replacing the original hosts (default ``$CBIR_LAB_MIRROR``).
        progressbar: show download and unpack progress.
        retries: extra attempts per URL after an interrupted transfer (each resumes).
        keep_archives: keep an archive after unpacking it.
        registry: the download table (default :data:`REGISTRY`).

    Returns:
        ``{registry name: path}``: the unpacked folder of an archive, the file
        itself otherwise.

    Raises:
        DownloadError: some files are missing and cannot be downloaded; the
            message lists every missing file's URL and where to put it.
        ChecksumError: a file does not match its md5.
        CorruptArchiveError, UnsafeArchiveError: an archive cannot be unpacked.
    """
    registry = REGISTRY if registry is None else registry
    data_root = data_dir(root)
    paths: dict[str, Path] = {}
    missing: list[RemoteFile] = []
    reasons: list[str] = []
    for key in files:
        remote = registry[key]
        if remote.extract and remote.unpacked(data_root).is_dir():
            paths[key] = remote.unpacked(data_root)
            continue
        target = remote.target(data_root)
        if target.is_file():
            verify_file(remote, target)
        elif not download:
            missing.append(remote)
            continue
        else:
            try:
                fetch(remote, data_root, mirror=mirror, progressbar=progressbar, retries=retries)
            except DownloadError as err:
                missing.append(remote)
                reasons.append(str(err))
                continue
        if remote.extract:
            paths[key] = safe_extract(target, progressbar=progressbar)
            if not keep_archives:
                target.unlink()
        else:
            paths[key] = target
    if missing:
        raise DownloadError(_manual_instructions(name, missing, data_root, reasons))
    return paths


# --------------------------------------------------------------------------- parsing helpers


def _index_images(
    folders: Iterable[Path],
    *,
    name_pattern: str = r".+",
    keep: Callable[[Path], bool] | None = None,
) -> dict[str, Path]:
    """``{stem: path}`` of the JPEG images below ``folders`` whose stem matches."""
    pattern = re.compile(name_pattern)
    index: dict[str, Path] = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                stem, suffix = os.path.splitext(filename)
                if suffix.lower() not in _IMAGE_SUFFIXES or filename.startswith("."):
                    continue
                if not pattern.fullmatch(stem):
                    continue
                path = Path(dirpath) / filename
                if keep is not None and not keep(path):
                    continue
                if stem in index:
                    raise ValueError(f"two images named {stem!r}: {index[stem]} and {path}")
                index[stem] = path
    return index


def _require_images(name: str, index: Mapping[str, Path], folders: Iterable[Path]) -> None:
    if not index:
        where = ", ".join(str(f) for f in folders)
        raise ValueError(f"{name}: no images found in {where}; delete the folder(s) and run again to re-download")


def _positions(names: Iterable[str], position: Mapping[str, int], missing: set[str]) -> list[int]:
    out = []
    for n in names:
        if n in position:
            out.append(position[n])
        else:
            missing.add(n)
    return sorted(set(out))


# --------------------------------------------------------------------------- Holidays


def holidays_dataset(
    image_folders: Iterable[Path], *, rotated: bool = True, name: str = "holidays"
) -> RetrievalDataset:
    """INRIA Holidays under its authors' protocol.

    The database is every image (1,491); images whose names share their
    first four digits form a group; the query is the group's first image
    (``NNNN00.jpg``, 500 queries). Its positives are the other images of the
    group, and the query itself is marked junk, which removes it from its own
    ranking (``gnd[q] = {'ok': others, 'junk': [q's index]}``).

    Args:
        image_folders: folders holding the ``NNNNNN.jpg`` files (searched recursively).
        rotated: whether these are the community's rotated copies (recorded in
            ``extra['variant']`` only).
        name: dataset name.

    Returns:
        The dataset, protocol ``"standard"``.
    """
    folders = list(image_folders)
    index = _index_images(folders, name_pattern=r"\d{6}")
    _require_images(name, index, folders)
    names = sorted(index)
    groups = [n[:4] for n in names]
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    query_idx = [idx[0] for idx in members.values()]
    gnd = tuple(
        {"ok": [i for i in members[groups[q]] if i != q], "junk": [q]} for q in query_idx
    )
    return RetrievalDataset(
        name=name,
        db_images=tuple(index[n] for n in names),
        query_images=tuple(index[names[q]] for q in query_idx),
        gnd=gnd,
        protocol="standard",
        groups=tuple(groups),
        root=folders[0].parent if folders else None,
        licence=BENCHMARKS["holidays"].licence,
        extra={"variant": "rotated" if rotated else "original", "query_indices": query_idx},
    )


# --------------------------------------------------------------------------- Oxford / Paris


def parse_oxford_gt(gt_folder: Path) -> list[dict[str, Any]]:
    """Read the Oxford/Paris ground-truth text files.

    Each query ``Q`` (e.g. ``all_souls_1``) has ``Q_query.txt`` holding one
    line ``IMAGE x1 y1 x2 y2`` (Oxford prefixes the image with ``oxc1_``),
    and ``Q_good.txt``, ``Q_ok.txt``, ``Q_junk.txt`` listing image names, one
    per line, without extension.

    Args:
        gt_folder: the unpacked ground-truth archive (searched recursively).

    Returns:
        One dict per query, sorted by query name: ``name``, ``image``,
        ``bbx`` (x1, y1, x2, y2), ``good``, ``ok``, ``junk`` (lists of names).
    """
    query_files = sorted(Path(gt_folder).rglob("*_query.txt"), key=lambda p: p.name)
    if not query_files:
        raise ValueError(f"no *_query.txt ground-truth files in {gt_folder}")
    queries = []
    for qfile in query_files:
        qname = qfile.name[: -len("_query.txt")]
        fields = qfile.read_text(encoding="utf-8").split()
        if len(fields) != 5:
            raise ValueError(f"{qfile}: expected 'IMAGE x1 y1 x2 y2', got {' '.join(fields)!r}")
        image = fields[0][len("oxc1_") :] if fields[0].startswith("oxc1_") else fields[0]
        try:
            bbx = tuple(float(v) for v in fields[1:])
        except ValueError:
            raise ValueError(f"{qfile}: the box {fields[1:]} is not four numbers") from None
        lists = {}
        for kind in ("good", "ok", "junk"):
            path = qfile.with_name(f"{qname}_{kind}.txt")
            if not path.is_file():
                raise ValueError(f"{path} is missing (it goes with {qfile.name})")
            lists[kind] = path.read_text(encoding="utf-8").split()
        queries.append({"name": qname, "image": image, "bbx": bbx, **lists})
    return queries


def classic_dataset(
    name: str,
    image_folders: Iterable[Path],
    gt_folder: Path,
    *,
    exclude: Iterable[str] = (),
) -> RetrievalDataset:
    """Oxford5k / Paris6k under the original protocol (Philbin et al.).

    The database is every image of the archives (less ``exclude``: Paris's
    corrupted files); the 55 queries are cropped to their box. ``good`` and
    ``ok`` images are positives and ``junk`` images are ignored
    (``gnd[q] = {'ok': good + ok, 'junk': junk}``). As in the authors'
    ``compute_ap``, the query image is part of the database and of its own
    ``good`` list, so it counts as a positive (usually found at rank 1).

    Args:
        name: ``"oxford5k"`` or ``"paris6k"``.
        image_folders: unpacked image archives.
        gt_folder: unpacked ground-truth archive.
        exclude: image names to leave out of the database.

    Returns:
        The dataset, protocol ``"standard"``, with ``query_bboxes``; names of
        ground-truth images not found in the archives in
        ``extra['missing_images']``.
    """
    folders = list(image_folders)
    excluded = set(exclude)
    index = _index_images(
        folders,
        keep=lambda p: p.stem not in excluded and p.stat().st_size > 0,
    )
    _require_images(name, index, folders)
    names = sorted(index)
    position = {n: i for i, n in enumerate(names)}
    queries = parse_oxford_gt(gt_folder)
    missing: set[str] = set()
    gnd = []
    for q in queries:
        if q["image"] not in index:
            raise ValueError(f"{name}: query image {q['image']} (from {q['name']}_query.txt) is not in the archives")
        gnd.append(
            {
                "ok": _positions(q["good"] + q["ok"], position, missing),
                "junk": _positions(q["junk"], position, missing),
            }
        )
    return RetrievalDataset(
        name=name,
        db_images=tuple(index[n] for n in names),
        query_images=tuple(index[q["image"]] for q in queries),
        gnd=tuple(gnd),
        protocol="standard",
        query_bboxes=tuple(q["bbx"] for q in queries),
        root=folders[0].parent if folders else None,
        licence=BENCHMARKS[name].licence if name in BENCHMARKS else "",
        extra={"query_names": [q["name"] for q in queries], "missing_images": sorted(missing)},
    )


# --------------------------------------------------------------------------- Revisited


class _GroundTruthUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a ground-truth file
    needs nothing else, and refusing other classes stops code execution."""

    _ALLOWED = {
        ("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "str", "bytes", "bool")
    } | {
        (m, n)
        for m in ("numpy.core.multiarray", "numpy._core.multiarray")
        for n in ("_reconstruct", "scalar")
    } | {("numpy", "ndarray"), ("numpy", "dtype"), ("copyreg", "_reconstructor"), ("_codecs", "encode")}
    # (_codecs.encode: how protocol-2 pickles store the bytes of a numpy array.)

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"ground-truth pickle refers to {module}.{name}, which is not allowed")


def read_revisited_gnd(path: str | os.PathLike, md5: str | None) -> dict[str, Any]:
    """Read a Revisited Oxford/Paris ground-truth pickle, after checking its md5.

    The file is a dict with ``imlist`` (database names, no extension),
    ``qimlist`` (query names) and ``gnd``: one dict per query with ``bbx``
    (x1, y1, x2, y2) and ``easy``, ``hard``, ``junk`` (0-based indices into
    ``imlist``).

    Args:
        path: the ``gnd_*.pkl`` file.
        md5: its expected md5. ``None`` is refused: a pickle can run code, so
            only a pinned file is unpickled (and only with plain containers
            and numpy arrays allowed).

    Returns:
        ``{'imlist': [str], 'qimlist': [str], 'gnd': [{'bbx': (4 floats),
        'easy': [int], 'hard': [int], 'junk': [int]}]}``.

    Raises:
        ChecksumError: the md5 differs or is not pinned.
        ValueError: the content is not in the expected format.
    """
    path = Path(path)
    if md5 is None:
        raise ChecksumError(f"{path}: no md5 is pinned for this pickle, so it will not be unpickled")
    actual = file_md5(path)
    if actual != md5.lower():
        raise ChecksumError(
            f"checksum mismatch for {path}: md5 is {actual}, expected {md5}; it will not be unpickled. "
            f"Delete it and run again to download it afresh."
        )
    try:
        raw = _GroundTruthUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError) as err:
        raise ValueError(f"{path}: not a readable ground-truth pickle ({err})") from err
    if not isinstance(raw, dict) or not {"imlist", "qimlist", "gnd"} <= set(raw):
        raise ValueError(f"{path}: expected a dict with imlist, qimlist and gnd")
    imlist = [str(n) for n in raw["imlist"]]
    qimlist = [str(n) for n in raw["qimlist"]]
    if len(raw["gnd"]) != len(qimlist):
        raise ValueError(f"{path}: {len(raw['gnd'])} gnd entries for {len(qimlist)} queries")
    gnd = []
    for q, entry in enumerate(raw["gnd"]):
        try:
            item = {"bbx": tuple(float(v) for v in entry["bbx"])}
            for key in ("easy", "hard", "junk"):
                item[key] = sorted(int(i) for i in entry[key])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: gnd[{q}] lacks bbx/easy/hard/junk ({err})") from err
        if len(item["bbx"]) != 4:
            raise ValueError(f"{path}: gnd[{q}]['bbx'] has {len(item['bbx'])} values, expected 4")
        bad = [i for key in ("easy", "hard", "junk") for i in item[key] if not 0 <= i < len(imlist)]
        if bad:
            raise ValueError(f"{path}: gnd[{q}] has indices {bad[:5]} outside imlist (size {len(imlist)})")
        gnd.append(item)
    return {"imlist": imlist, "qimlist": qimlist, "gnd": gnd}


def revisited_dataset(
    name: str,
    image_folders: Iterable[Path],
    gnd_file: Path,
    md5: str | None,
) -> RetrievalDataset:
    """ROxford5k / RParis6k under the revisited protocol (Radenović et al. 2018).

    The database is ``imlist`` (4,993 / 6,322 images), the 70 queries are
    ``qimlist`` cropped to their ``bbx`` and are not in the database.
    ``gnd[q]`` keeps ``easy``, ``hard`` and ``junk``; the evaluation scores
    Easy (easy positive; hard and junk ignored), Medium (easy and hard
    positive) and Hard (hard positive; easy and junk ignored).

    A database image missing from the archives (Paris has 20 known-corrupted
    files) is dropped with a warning and the indices renumbered; its name is
    kept in ``extra['missing_images']``.

    Args:
        name: ``"roxford5k"`` or ``"rparis6k"``.
        image_folders: unpacked Oxford or Paris image archives.
        gnd_file: the ``gnd_*.pkl`` file.
        md5: its pinned md5 (checked before unpickling).

    Returns:
        The dataset, protocol ``"revisited"``, with ``query_bboxes``.
    """
    folders = list(image_folders)
    cfg = read_revisited_gnd(gnd_file, md5)
    index = _index_images(folders, keep=lambda p: p.stat().st_size > 0)
    _require_images(name, index, folders)
    missing_queries = [q for q in cfg["qimlist"] if q not in index]
    if missing_queries:
        raise ValueError(f"{name}: query images missing from the archives: {', '.join(missing_queries[:10])}")
    present = [n for n in cfg["imlist"] if n in index]
    missing = sorted(set(cfg["imlist"]) - set(present))
    renumber = {}
    for old, n in enumerate(cfg["imlist"]):
        if n in index:
            renumber[old] = len(renumber)
    if missing:
        warnings.warn(
            f"{name}: {len(missing)} database image(s) are missing or empty in the archives and were left out "
            f"(e.g. {', '.join(missing[:3])})",
            stacklevel=3,
        )
    gnd = tuple(
        {key: [renumber[i] for i in entry[key] if i in renumber] for key in ("easy", "hard", "junk")}
        for entry in cfg["gnd"]
    )
    return RetrievalDataset(
        name=name,
        db_images=tuple(index[n] for n in present),
        query_images=tuple(index[q] for q in cfg["qimlist"]),
        gnd=gnd,
        protocol="revisited",
        query_bboxes=tuple(entry["bbx"] for entry in cfg["gnd"]),
        root=folders[0].parent if folders else None,
        licence=BENCHMARKS[name].licence if name in BENCHMARKS else "",
        extra={"missing_images": missing, "gnd_file": Path(gnd_file)},
    )


# --------------------------------------------------------------------------- UKBench


def ukbench_dataset(image_folders: Iterable[Path], name: str = "ukbench") -> RetrievalDataset:
    """UKBench under its authors' protocol (Nistér & Stewénius 2006).

    Images ``ukbench00000.jpg`` ... ``ukbench10199.jpg`` (from the archive's
    ``full/`` folder; thumbnails are ignored) come in groups of four
    consecutive numbers. Every image is a query and its four group members,
    itself included, are its positives (``gnd[q] = {'ok': group, 'junk': []}``);
    the N-S score counts how many of them are in the top 4 (maximum 4).

    Returns:
        The dataset, protocol ``"ukbench"``.
    """
    folders = list(image_folders)
    index = _index_images(folders, name_pattern=r"ukbench\d{5}", keep=lambda p: p.parent.name == "full")
    _require_images(name, index, folders)
    names = sorted(index, key=lambda n: int(n[7:]))
    group_of = [int(n[7:]) // 4 for n in names]
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group_of):
        members.setdefault(g, []).append(i)
    paths = tuple(index[n] for n in names)
    return RetrievalDataset(
        name=name,
        db_images=paths,
        query_images=paths,
        gnd=tuple({"ok": list(members[g]), "junk": []} for g in group_of),
        protocol="ukbench",
        groups=tuple(f"{g:04d}" for g in group_of),
        root=folders[0].parent if folders else None,
        licence=BENCHMARKS["ukbench"].licence,
    )


# --------------------------------------------------------------------------- entry point


def load_benchmark(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    mirror: str | None = None,
    progressbar: bool = True,
    retries: int = 2,
    keep_archives: bool = True,
    registry: Mapping[str, RemoteFile] | None = None,
    **options: Any,
) -> RetrievalDataset:
    """Load a paper's benchmark, downloading it into the data folder on first use.

    Args:
        name: ``"holidays"``, ``"oxford5k"``, ``"paris6k"``, ``"roxford5k"``,
            ``"rparis6k"`` or ``"ukbench"``.
        root: data folder (default ``$CBIR_LAB_DATA``, else the user cache).
        download: allow downloading; with ``False`` a missing file raises
            :class:`DownloadError` saying where to put it.
        mirror: base URL replacing every original host (default
            ``$CBIR_LAB_MIRROR``); file ``NAME`` is fetched from ``mirror/NAME``.
        progressbar: show download and unpack progress bars.
        retries: extra attempts after an interrupted transfer (each resumes).
        keep_archives: keep the archives after unpacking (needed to re-verify).
        registry: the download table (default :data:`REGISTRY`).
        **options: per benchmark. Holidays: ``rotated`` (default ``True``)
            uses the community's manually rotated copy, where every photo is
            upright, as most CNN papers do; ``rotated=False`` uses the
            authors' original archives, where about 5% of the photos lie on
            their side (:func:`cbir_lab.features.load_image` honours an EXIF
            orientation tag, which fixes only the photos that record one).
            Say which version you report.

    Returns:
        The dataset under the benchmark's protocol (see :func:`holidays_dataset`,
        :func:`classic_dataset`, :func:`revisited_dataset`, :func:`ukbench_dataset`).

    Raises:
        ValueError: unknown benchmark. TypeError: unknown option.
        DownloadError, ChecksumError, CorruptArchiveError, UnsafeArchiveError:
            see :func:`ensure_files`.
    """
    files = required_files(name, **options)
    registry = REGISTRY if registry is None else registry
    paths = ensure_files(
        name,
        files,
        root,
        download=download,
        mirror=mirror,
        progressbar=progressbar,
        retries=retries,
        keep_archives=keep_archives,
        registry=registry,
    )
    if name == "holidays":
        return holidays_dataset([paths[f] for f in files], rotated=options.get("rotated", True))
    if name == "oxford5k":
        return classic_dataset(name, [paths["oxbuild_images-v1.tgz"]], paths["gt_files_170407.tgz"])
    if name == "paris6k":
        return classic_dataset(
            name,
            [paths["paris_1-v1.tgz"], paths["paris_2-v1.tgz"]],
            paths["paris_120310.tgz"],
            exclude=PARIS_CORRUPTED,
        )
    if name in ("roxford5k", "rparis6k"):
        gnd_key = f"gnd_{name}.pkl"
        images = [paths[f] for f in files if f != gnd_key]
        return revisited_dataset(name, images, paths[gnd_key], registry[gnd_key].md5)
    if name == "ukbench":
        return ukbench_dataset([paths["ukbench.zip"]])
    raise AssertionError(f"no parser for {name!r}")  # pragma: no cover - BENCHMARKS and this list agree


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class DatasetStatus:
    """One row of the ``cbir-lab datasets`` listing.

    Attributes:
        name: the ``load_dataset`` name.
        state: ``"present"``, ``"partial"`` or ``"absent"``.
        bytes_on_disk: size of its files in the data folder.
        download_bytes: approximate download size (``None`` if unknown).
        n_db: database size; n_queries: number of queries.
        licence: licence / attribution note.
        folder: its folder in the data folder.
        note: anything else worth saying (e.g. which Holidays variant is there).
        load_options: keyword arguments ``load_dataset`` needs for what is
            there (``{"rotated": False}`` when only the original Holidays
            archives are).
    """

    name: str
    state: str
    bytes_on_disk: int
    download_bytes: int | None
    n_db: int
    n_queries: int
    licence: str
    folder: Path
    note: str = ""
    load_options: Mapping[str, object] = field(default_factory=dict)


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for f in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _files_state(keys: Iterable[str], data_root: Path, registry: Mapping[str, RemoteFile]) -> tuple[str, int]:
    ready, started, size = 0, 0, 0
    keys = list(keys)
    for key in keys:
        remote = registry[key]
        target = remote.target(data_root)
        part = target.with_name(target.name + ".part")
        parts = [target, part] + ([remote.unpacked(data_root)] if remote.extract else [])
        size += sum(_tree_size(p) for p in parts if p.exists())
        if _is_ready(remote, data_root):
            ready += 1
        elif target.exists() or part.exists():
            started += 1
    if ready == len(keys):
        return "present", size
    return ("partial" if ready or started else "absent"), size


def dataset_status(
    root: str | os.PathLike | None = None,
    registry: Mapping[str, RemoteFile] | None = None,
) -> list[DatasetStatus]:
    """The state of every benchmark in the data folder.

    A benchmark is ``present`` when all its files are there (archives
    unpacked), ``partial`` when some are (or a download was interrupted), and
    ``absent`` otherwise. ROxford5k/RParis6k share their images with
    Oxford5k/Paris6k, so those bytes count in both rows.

    Args:
        root: data folder (see :func:`cbir_lab.paths.data_dir`).
        registry: the download table (default :data:`REGISTRY`).

    Returns:
        One :class:`DatasetStatus` per benchmark, in :data:`BENCHMARKS` order.
    """
    registry = REGISTRY if registry is None else registry
    data_root = data_dir(root)
    rows = []
    for spec in BENCHMARKS.values():
        state, size = _files_state(spec.files, data_root, registry)
        note, load_options = "", {}
        download = sum(registry[f].size or 0 for f in spec.files) or None
        if spec.name == "holidays":
            alt_state, alt_size = _files_state(required_files("holidays", rotated=False), data_root, registry)
            size += alt_size
            note = "rotated copy (default)"
            if alt_state == "present" and state != "present":
                state, note = "present", "original archives only: load with rotated=False"
                load_options = {"rotated": False}
            elif alt_state != "absent":
                note += f"; original archives {alt_state}"
        rows.append(
            DatasetStatus(
                name=spec.name,
                state=state,
                bytes_on_disk=size,
                download_bytes=download,
                n_db=spec.n_db,
                n_queries=spec.n_queries,
                licence=spec.licence,
                folder=data_root / registry[spec.files[0]].folder,
                note=note,
                load_options=load_options,
            )
        )
    return rows


def format_dataset_status(rows: Iterable[DatasetStatus] | None = None, root: str | os.PathLike | None = None) -> str:
    """The ``cbir-lab datasets`` table: name, state, size on disk, download size, licence.

    Args:
        rows: from :func:`dataset_status` (computed for ``root`` if omitted);
            other loaders may add their own rows.
        root: data folder.

    Returns:
        A plain-text table, one dataset per line, headed by the data folder.
    """
    rows = list(dataset_status(root) if rows is None else rows)
    header = ("dataset", "state", "on disk", "download", "images", "queries", "licence / notes")
    table = [header] + [
        (
            r.name,
            r.state,
            human_size(r.bytes_on_disk) if r.bytes_on_disk else "-",
            ("~" + human_size(r.download_bytes)) if r.download_bytes else "?",
            str(r.n_db),
            str(r.n_queries),
            r.licence + (f" [{r.note}]" if r.note else ""),
        )
        for r in rows
    ]
    widths = [max(len(row[c]) for row in table) for c in range(len(header) - 1)]
    lines = [f"data folder: {data_dir(root)}"]
    for row in table:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return "\n".join(lines)
