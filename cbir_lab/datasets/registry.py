"""The download registry: every benchmark file's URLs and checksum, and every benchmark's spec, in one place.

* :data:`REGISTRY`: each downloadable file (:class:`~cbir_lab.datasets.download.RemoteFile`):
  its mirrors, tried in order, its md5, the data sub-folder it lives in.
* :data:`BENCHMARKS`: each benchmark (:class:`BenchmarkSpec`): the files it needs, its
  licence, its size, and the parser that reads it (from :mod:`cbir_lab.datasets.parsers`).

Hosts move. When one does, add the new address to the file's ``urls`` here (the
old ones stay, as mirrors); or point ``$CBIR_LAB_MIRROR`` at a server holding
the files under their names; or put the files by hand where the error message says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.datasets.download import RemoteFile
from cbir_lab.datasets.parsers import classic_dataset, holidays_dataset, revisited_dataset, ukbench_dataset

__all__ = ["REGISTRY", "BENCHMARKS", "BenchmarkSpec", "PARIS_CORRUPTED"]

# The VGG pages answer with a redirect to thor; sources give thor's files under two paths.
_OXFORD = (
    "https://www.robots.ox.ac.uk/~vgg/data/oxbuildings",
    "https://thor.robots.ox.ac.uk/datasets/oxford-buildings",
    "https://thor.robots.ox.ac.uk/oxbuildings",
)
_PARIS = (
    "https://www.robots.ox.ac.uk/~vgg/data/parisbuildings",
    "https://thor.robots.ox.ac.uk/datasets/paris-buildings",
    "https://thor.robots.ox.ac.uk/parisbuildings",
)
# revisitop's own links fail at times (revisitop issue 12); cirtorch serves the same pickles.
_REVISITED_GND = (
    "https://cmp.felk.cvut.cz/revisitop/data/datasets/{name}/gnd_{name}.pkl",
    "http://cmp.felk.cvut.cz/revisitop/data/datasets/{name}/gnd_{name}.pkl",
    "http://cmp.felk.cvut.cz/cnnimageretrieval/data/test/{name}/gnd_{name}.pkl",
)
# The INRIA FTP is unreliable; the same archives are served over HTTP.
_HOLIDAYS = ("ftp://ftp.inrialpes.fr/pub/lear/douze/data", "http://pascal.inrialpes.fr/data/holidays")


def _mirrors(bases: tuple[str, ...], filename: str) -> tuple[str, ...]:
    return tuple(f"{base}/{filename}" for base in bases)


#: Every downloadable file, by name. ``md5=None`` means "not pinned yet": the
#: md5 of the first download is recorded in ``checksums.json`` and checked
#: from then on. Sizes are approximate and only shown in listings.
REGISTRY: dict[str, RemoteFile] = {
    f.filename: f
    for f in (
        # INRIA Holidays, as distributed by the authors (some photos lie on their side).
        RemoteFile("jpg1.tar.gz", _mirrors(_HOLIDAYS, "jpg1.tar.gz"), None, "holidays", 1_100_000_000, True),
        RemoteFile("jpg2.tar.gz", _mirrors(_HOLIDAYS, "jpg2.tar.gz"), None, "holidays", 1_600_000_000, True),
        # The community's manually rotated copy (linked from the Gordo et al. /
        # Hoang et al. retrieval code): every photo upright.
        RemoteFile("holidays_rotated.tar.gz", ("https://www.dropbox.com/s/f1z8pgzhkf52tcb/holidays_rotated.tar.gz?dl=1",),
                   None, "holidays", None, True),
        RemoteFile("oxbuild_images-v1.tgz", _mirrors(_OXFORD, "oxbuild_images-v1.tgz"),
                   "8f0017cc5d671f35011d6968269fbf47", "oxford5k", 1_938_238_004, True),
        RemoteFile("gt_files_170407.tgz", _mirrors(_OXFORD, "gt_files_170407.tgz"),
                   "06c4dee0ad954f6ee122c82390548537", "oxford5k", None, True),
        RemoteFile("paris_1-v1.tgz", _mirrors(_PARIS, "paris_1-v1.tgz"), None, "paris6k", 1_270_000_000, True),
        RemoteFile("paris_2-v1.tgz", _mirrors(_PARIS, "paris_2-v1.tgz"), None, "paris6k", 1_250_000_000, True),
        RemoteFile("paris_120310.tgz", _mirrors(_PARIS, "paris_120310.tgz"), None, "paris6k", None, True),
        RemoteFile("gnd_roxford5k.pkl", tuple(u.format(name="roxford5k") for u in _REVISITED_GND),
                   "f2b67579f625a587b5b0828dbf2e8eb0", "roxford5k", 149_871),
        RemoteFile("gnd_rparis6k.pkl", tuple(u.format(name="rparis6k") for u in _REVISITED_GND),
                   "2feae0a8257a5c6ca1b31b8eb73c8571", "rparis6k", 276_508),
        RemoteFile("ukbench.zip", ("https://archive.org/download/ukbench/ukbench.zip",), None, "ukbench",
                   1_500_000_000, True),
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

#: parse(paths, registry, **options): registry name → unpacked folder or file, to a dataset.
Parser = Callable[..., RetrievalDataset]


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
        parse: ``parse(spec, paths, registry, **options)``: the ready files to the dataset.
        options: keyword options :func:`cbir_lab.datasets.benchmarks.load_benchmark` accepts.
        alternative_files: the files used instead when ``options`` ask for the other variant
            (Holidays: ``rotated=False`` reads the authors' original archives).
        community_copies: where users have found copies when every mirror fails.
    """

    name: str
    title: str
    files: tuple[str, ...]
    licence: str
    n_db: int
    n_queries: int
    parse: Parser
    options: tuple[str, ...] = ()
    alternative_files: tuple[str, ...] = ()
    community_copies: str = ""

    def files_for(self, **options: Any) -> tuple[str, ...]:
        """The registry names needed with these options (:attr:`alternative_files` for ``rotated=False``)."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            allowed = ", ".join(self.options) or "none"
            raise TypeError(f"load_benchmark({self.name!r}): unknown option(s) {', '.join(unknown)} (accepted: {allowed})")
        if self.alternative_files and not options.get("rotated", True):
            return self.alternative_files
        return self.files

    def read(self, paths: Mapping[str, Path], registry: Mapping[str, RemoteFile], **options: Any) -> RetrievalDataset:
        """Parse the ready files (``paths``: registry name → unpacked folder or file) into the dataset."""
        return self.parse(self, paths, registry, **options)


def _holidays(spec: BenchmarkSpec, paths, registry, rotated: bool = True) -> RetrievalDataset:
    files = spec.files_for(rotated=rotated)
    return holidays_dataset([paths[f] for f in files], rotated=rotated, licence=spec.licence)


def _classic(spec: BenchmarkSpec, paths, registry) -> RetrievalDataset:
    images, gt_folder = [paths[f] for f in spec.files[1:]], paths[spec.files[0]]
    exclude = PARIS_CORRUPTED if spec.name == "paris6k" else ()
    return classic_dataset(spec.name, images, gt_folder, exclude=exclude, licence=spec.licence)


def _revisited(spec: BenchmarkSpec, paths, registry) -> RetrievalDataset:
    gnd_key = spec.files[0]
    images = [paths[f] for f in spec.files[1:]]
    return revisited_dataset(spec.name, images, paths[gnd_key], registry[gnd_key].md5, licence=spec.licence)


def _ukbench(spec: BenchmarkSpec, paths, registry) -> RetrievalDataset:
    return ukbench_dataset([paths[spec.files[0]]], licence=spec.licence)


_FLICKR = "Flickr photos under their owners' licences (faces blurred in -v1), research use; cite Philbin et al."
_FLICKR_COPIES = ("user-made copies of these archives are shared on Kaggle and the Hugging Face hub: search for the "
                  "file's name, and let cbir_lab check its md5")

BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in (
        BenchmarkSpec(
            "holidays", "INRIA Holidays (Jégou, Douze & Schmid, ECCV 2008)", ("holidays_rotated.tar.gz",),
            "personal holiday photos of the authors, for research; cite Jégou et al. 2008", 1491, 500, _holidays,
            options=("rotated",), alternative_files=("jpg1.tar.gz", "jpg2.tar.gz"),
            community_copies="user-made copies of jpg1/jpg2.tar.gz and of the rotated set are shared on Kaggle and "
                             "the Hugging Face hub (search 'INRIA Holidays')",
        ),
        BenchmarkSpec(
            "oxford5k", "Oxford Buildings (Philbin et al., CVPR 2007)", ("gt_files_170407.tgz", "oxbuild_images-v1.tgz"),
            _FLICKR, 5062, 55, _classic, community_copies=_FLICKR_COPIES,
        ),
        BenchmarkSpec(
            "paris6k", "Paris Buildings (Philbin et al., CVPR 2008)",
            ("paris_120310.tgz", "paris_1-v1.tgz", "paris_2-v1.tgz"), _FLICKR, 6392, 55, _classic,
            community_copies=_FLICKR_COPIES,
        ),
        BenchmarkSpec(
            "roxford5k", "Revisited Oxford (Radenović et al., CVPR 2018)", ("gnd_roxford5k.pkl", "oxbuild_images-v1.tgz"),
            "ground truth by Radenović et al. (cite CVPR 2018); Oxford Buildings photos, owners' licences", 4993, 70,
            _revisited, community_copies=_FLICKR_COPIES,
        ),
        BenchmarkSpec(
            "rparis6k", "Revisited Paris (Radenović et al., CVPR 2018)",
            ("gnd_rparis6k.pkl", "paris_1-v1.tgz", "paris_2-v1.tgz"),
            "ground truth by Radenović et al. (cite CVPR 2018); Paris Buildings photos, owners' licences", 6322, 70,
            _revisited, community_copies=_FLICKR_COPIES,
        ),
        BenchmarkSpec(
            "ukbench", "UKBench (Nistér & Stewénius, CVPR 2006)", ("ukbench.zip",),
            "photos by the authors, for research; cite Nistér & Stewénius 2006", 10200, 10200, _ukbench,
            community_copies="user-made copies are shared on Kaggle and the Hugging Face hub (search 'ukbench')",
        ),
    )
}
