"""The papers' protocols end to end, when a benchmark is on disk: ``cbir-lab reproduce``.

For ROxford5k, RParis6k, Holidays or UKBench, :func:`reproduce` takes the
published protocol's choices and computes a table to set beside the published one:

* images at the papers' size (max side 1024 by default), queries cropped to
  their boxes where the benchmark has them;
* PCA-whitening learned on a set the benchmark does not contain: the *other*
  landmark set for ROxford5k ↔ RParis6k, as Tolias et al. (ICLR 2016) learn R-MAC's
  (Radenović et al. 2018's fine-tuned networks learn theirs on retrieval-SfM-120k,
  their training set, which the course does not download), and a large separate
  set (the 1,000 ImageNet photos, :mod:`cbir_lab.datasets.image_sets`) for Holidays
  and UKBench; L2 → PCA-whitening → L2, R-MAC region by region;
* SPoC (with and without the centre prior), MAC, R-MAC and GeM, without
  whitening and whitened to each d of {32, 64, 128, 256, 512} the whitening set allows;
* the benchmark's own scores (Easy / Medium / Hard, mAP, or the N-S score), with a
  95 % bootstrap interval over the queries on the headline score.

:func:`format_markdown` and :func:`format_csv` write the table with the
published figures (:data:`PUBLISHED`, each with its source and its status, one of
:data:`PUBLISHED_STATUSES`) below it,
and :func:`write_report` saves both without overwriting anything. Features are
cached (:mod:`cbir_lab.features`), so a second run only re-scores.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cbir_lab.datasets.image_sets import ImageSet, load_whitening_set
from cbir_lab.evaluation import Interval, bootstrap_interval, score
from cbir_lab.index import RetrievalIndex
from cbir_lab.paths import atomic_write, free_path
from cbir_lab.pooling import Pooling
from cbir_lab.search import rank

__all__ = [
    "REPRODUCIBLE",
    "PAPERS_WHITENING",
    "PROTOCOL_DIMS",
    "REPRODUCED_POOLINGS",
    "PUBLISHED_STATUSES",
    "PublishedFigure",
    "PUBLISHED",
    "ReproducedRow",
    "Reproduction",
    "estimate_extraction",
    "reproduce",
    "format_markdown",
    "format_csv",
    "write_report",
]

#: The benchmarks ``cbir-lab reproduce`` runs.
REPRODUCIBLE = ("roxford5k", "rparis6k", "holidays", "ukbench")
#: Where each benchmark's whitening is learned: a set the benchmark does not contain (the other landmark set, as
#: Tolias et al. 2016 do for R-MAC; the papers' fine-tuned networks use their training set, which the course lacks).
PAPERS_WHITENING = {"roxford5k": "rparis6k", "rparis6k": "roxford5k", "holidays": "imagenet-sample",
                    "ukbench": "imagenet-sample"}
#: The dimensions the papers report after PCA-whitening.
PROTOCOL_DIMS = (32, 64, 128, 256, 512)
#: The poolings compared.
REPRODUCED_POOLINGS = ("SPoC", "SPoC+prior", "MAC", "R-MAC", "GeM")


#: What a published row's ``status`` may say, and what each means.
PUBLISHED_STATUSES = {
    "confirmed": "the figures are in the source named, written by the method's authors, which a reader can open",
    "confirmed (secondary)": "the figures are on a listing of the paper's results (Papers with Code), not in a "
                             "source the course opened itself",
    "unverified": "the figures circulate, but the course found them in no source it could open: do not quote them",
}


@dataclass(frozen=True)
class PublishedFigure:
    """One cited row: figures in %, as printed in their source.

    Attributes:
        method, network: what was run (network with its dimension and training).
        scores: score name (as in :func:`cbir_lab.evaluation.evaluate`) → value in %.
        protocol: how (queries, whitening, image size), as the source states it.
        source: where a reader can open it (for an unverified row, where it is quoted from).
        status: one of :data:`PUBLISHED_STATUSES`: ``"confirmed"``, ``"confirmed (secondary)"``
            or ``"unverified"``.

    Raises:
        ValueError: an unknown status, or no score.
    """

    method: str
    network: str
    scores: dict[str, float]
    protocol: str
    source: str
    status: str

    def __post_init__(self) -> None:
        if self.status not in PUBLISHED_STATUSES:
            raise ValueError(f"status {self.status!r} is not one of {', '.join(map(repr, PUBLISHED_STATUSES))}")
        if not self.scores:
            raise ValueError(f"{self.method} ({self.network}): a published row needs at least one score")


_REVISITOP = "https://github.com/filipradenovic/revisitop (README, 'Evaluate results')"
_CIRTORCH = "https://github.com/filipradenovic/cnnimageretrieval-pytorch (README, 'Testing our pretrained networks')"
_CIRTORCH_E2E = ("https://github.com/filipradenovic/cnnimageretrieval-pytorch (README, 'Testing our pretrained "
                 "networks with whitening learned end-to-end')")
_DIRTORCH = "https://github.com/naver/deep-image-retrieval (README, 'Pre-trained models')"
# The revisited paper's (Radenović et al., CVPR 2018) rows, as Papers with Code lists them on each method's own
# paper's page (not on the page of the revisited paper).
_PWC_SPOC = ("Papers with Code, 'Results from the Paper' on the page of Babenko & Lempitsky, ICCV 2015 "
             "(paperswithcode.com/paper/aggregating-deep-convolutional-features-for): Radenović et al. 2018's "
             "R-[O]-SPoC")
_PWC_MAC = ("Papers with Code, 'Results from the Paper' on the page of MAC's own paper (not that of Radenović et "
            "al. 2018): Radenović et al. 2018's R-[O]-MAC")
_PWC_RMAC = ("Papers with Code, 'Results from the Paper' on the page of Tolias, Sicre & Jégou, ICLR 2016 "
             "(paperswithcode.com/paper/particular-object-retrieval-with-integral-max): Radenović et al. 2018's "
             "R-MAC of Gordo et al.")
_PHAN = ("quoted by Phan et al., ACCV 2022, Table 1; in no source the course could open (the revisited paper's "
         "own table was not checked)")
_SFM = ("fine-tuned on retrieval-SfM-120k; whitening learned on retrieval-SfM-120k (supervised); scales 1, 1/√2, "
        "1/2 of 1024 px; cropped queries")
_SFM_E2E = ("fine-tuned on retrieval-SfM-120k with a triplet loss, whitening learned end to end (an FC layer); "
            "multi-scale; revisited protocol")
_GL18_E2E = ("fine-tuned on google-landmarks-2018 with a triplet loss, whitening learned end to end (an FC layer); "
             "multi-scale; revisited protocol")
_EXAMPLE = ("the benchmark's example features, R-[37]-GeM of the revisited paper (fine-tuned as in Radenović et "
            "al., TPAMI 2018); cropped queries")
_OFF_THE_SHELF = "off-the-shelf ImageNet weights; cropped queries; revisited protocol"
_GORDO = "fine-tuned on Landmarks-clean (Gordo et al., IJCV 2017); cropped queries; revisited protocol"
_LANDMARKS = ("fine-tuned on Landmarks-clean, {loss}; whitening learned on Landmarks-clean; one scale; "
              "revisited protocol")
_AP = _LANDMARKS.format(loss="AP loss (Revaud et al., ICCV 2019)")
_TL = _LANDMARKS.format(loss="triplet loss (Gordo et al., IJCV 2017)")

#: The published figures set beside each reproduction, each with its source and status
#: (:data:`PUBLISHED_STATUSES`); an "unverified" row is listed so that its figures are not quoted as checked.
#: The SPoC paper's own Holidays/UKBench figures are not listed: the course could not check them.
PUBLISHED: dict[str, tuple[PublishedFigure, ...]] = {
    "roxford5k": (
        PublishedFigure("GeM", "ResNet101, 2048-D", {"easy": 84.81, "medium": 64.67, "hard": 38.47}, _EXAMPLE,
                        _REVISITOP, "confirmed"),
        PublishedFigure("GeM", "ResNet101, 2048-D (MatConvNet)", {"medium": 64.7, "hard": 38.5}, _SFM, _CIRTORCH,
                        "confirmed"),
        PublishedFigure("GeM", "ResNet101, 2048-D (PyTorch)", {"medium": 65.4, "hard": 40.1}, _SFM, _CIRTORCH,
                        "confirmed"),
        PublishedFigure("GeM", "ResNet101, rSfM120k-tl-resnet101-gem-w", {"medium": 67.8, "hard": 41.7}, _SFM_E2E,
                        _CIRTORCH_E2E, "confirmed"),
        PublishedFigure("GeM", "ResNet101, gl18-tl-resnet101-gem-w", {"medium": 67.3, "hard": 44.3}, _GL18_E2E,
                        _CIRTORCH_E2E, "confirmed"),
        PublishedFigure("GeM", "ResNet101, Resnet101-AP-GeM", {"medium": 67.1, "hard": 42.3}, _AP, _DIRTORCH,
                        "confirmed"),
        PublishedFigure("MAC", "ResNet101, Resnet101-TL-MAC", {"medium": 63.3, "hard": 35.7}, _TL, _DIRTORCH,
                        "confirmed"),
        PublishedFigure("R-MAC", "ResNet101, 2048-D", {"hard": 32.4}, _GORDO, _PWC_RMAC, "confirmed (secondary)"),
        PublishedFigure("R-MAC", "ResNet101, 2048-D", {"medium": 60.9}, _GORDO, _PHAN, "unverified"),
        PublishedFigure("SPoC", "ResNet101, 2048-D", {"medium": 39.8, "hard": 12.4}, _OFF_THE_SHELF, _PWC_SPOC,
                        "confirmed (secondary)"),
        PublishedFigure("MAC", "ResNet101, 2048-D", {"medium": 41.7, "hard": 18.0}, _OFF_THE_SHELF, _PWC_MAC,
                        "confirmed (secondary)"),
    ),
    "rparis6k": (
        PublishedFigure("GeM", "ResNet101, 2048-D", {"easy": 92.12, "medium": 77.20, "hard": 56.32}, _EXAMPLE,
                        _REVISITOP, "confirmed"),
        PublishedFigure("GeM", "ResNet101, 2048-D (MatConvNet)", {"medium": 77.2, "hard": 56.3}, _SFM, _CIRTORCH,
                        "confirmed"),
        PublishedFigure("GeM", "ResNet101, 2048-D (PyTorch)", {"medium": 76.7, "hard": 55.2}, _SFM, _CIRTORCH,
                        "confirmed"),
        PublishedFigure("GeM", "ResNet101, rSfM120k-tl-resnet101-gem-w", {"medium": 77.6, "hard": 56.3}, _SFM_E2E,
                        _CIRTORCH_E2E, "confirmed"),
        PublishedFigure("GeM", "ResNet101, gl18-tl-resnet101-gem-w", {"medium": 80.6, "hard": 61.5}, _GL18_E2E,
                        _CIRTORCH_E2E, "confirmed"),
        PublishedFigure("GeM", "ResNet101, Resnet101-AP-GeM", {"medium": 80.3, "hard": 60.9}, _AP, _DIRTORCH,
                        "confirmed"),
        PublishedFigure("MAC", "ResNet101, Resnet101-TL-MAC", {"medium": 76.6, "hard": 55.5}, _TL, _DIRTORCH,
                        "confirmed"),
        PublishedFigure("R-MAC", "ResNet101, 2048-D", {"hard": 59.4}, _GORDO, _PWC_RMAC, "confirmed (secondary)"),
        PublishedFigure("R-MAC", "ResNet101, 2048-D", {"medium": 78.9}, _GORDO, _PHAN, "unverified"),
        PublishedFigure("SPoC", "ResNet101, 2048-D", {"medium": 69.2}, _OFF_THE_SHELF, _PWC_SPOC,
                        "confirmed (secondary)"),
        PublishedFigure("MAC", "ResNet101, 2048-D", {"hard": 44.1}, _OFF_THE_SHELF, _PWC_MAC, "confirmed (secondary)"),
    ),
    "holidays": (),
    "ukbench": (),
}


@dataclass(frozen=True)
class ReproducedRow:
    """One computed row.

    Attributes:
        method: the pooling's display name.
        dim: the descriptor's dimension.
        whitened: whether it is PCA-whitened (to ``dim``).
        scores: the benchmark's scores (:func:`cbir_lab.evaluation.evaluate`), in [0, 1] (N-S in [0, 4]).
        headline: the score the interval is for (``"medium"``, ``"mAP"`` or ``"N-S"``).
        interval: its 95 % bootstrap interval over the queries.
    """

    method: str
    dim: int
    whitened: bool
    scores: dict[str, float]
    headline: str
    interval: Interval


@dataclass(frozen=True)
class Reproduction:
    """A computed table and the published figures it stands beside.

    Attributes:
        dataset: the benchmark's name; summary: its one-line summary.
        backbone, max_side: the network and the image size.
        whitening_source: what the whitening was learned on.
        rows: the computed rows; published: :data:`PUBLISHED` for the benchmark.
        skipped: notes on dimensions the whitening set could not give.
        seconds: how long the run took.
    """

    dataset: str
    summary: str
    backbone: str
    max_side: int
    whitening_source: str
    rows: list[ReproducedRow]
    published: tuple[PublishedFigure, ...]
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def estimate_extraction(items: Sequence, backbone, max_side: int, cache=None) -> tuple[int, float]:
    """How many of ``items`` still need extracting, and about how many seconds that takes here.

    The time per image is measured on one image-sized random input after a warm-up
    (decoding and resizing add about a third, which the estimate includes).

    Returns:
        (images to extract, estimated seconds).
    """
    import torch

    from cbir_lab.features import FeatureCache
    from cbir_lab.images import content_key

    cache = FeatureCache() if cache is None else cache
    todo = sum(not cache.path(backbone, max_side, content_key(item)).exists() for item in items)
    if not todo:
        return 0, 0.0
    x = torch.rand(1, 3, max_side, max_side * 3 // 4, device=backbone.device)
    if getattr(backbone, "channels_last", False):
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        backbone(x)
        start = time.perf_counter()
        backbone(x)
        per_image = time.perf_counter() - start
    return todo, todo * per_image * 1.35


def _row(index: RetrievalIndex, method: str, q: np.ndarray, db: np.ndarray, whitened: bool) -> ReproducedRow:
    dataset = index.dataset
    result = score(rank(q, db), dataset)
    interval = bootstrap_interval(result.per_query, clusters=dataset.query_clusters, unit=dataset.cluster_unit)
    return ReproducedRow(method, int(q.shape[1]), whitened, result.scores, result.headline_name, interval)


def reproduce(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    max_side: int = 1024,
    whitening: str | ImageSet | None = None,
    dims: Sequence[int] = PROTOCOL_DIMS,
    poolings: Sequence[str] = REPRODUCED_POOLINGS,
    backbone: str = "efficientnet_lite0",
    download: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
    **load_options,
) -> Reproduction:
    """Run a benchmark under the papers' protocol and score every pooling and d.

    Args:
        name: one of :data:`REPRODUCIBLE`.
        root: the data folder (default ``$CBIR_LAB_DATA``).
        max_side: the long side fed to the network (the papers: 1024).
        whitening: where the whitening is learned (default :data:`PAPERS_WHITENING`): a benchmark,
            an image set, a folder or an :class:`~cbir_lab.datasets.image_sets.ImageSet`
            (:func:`~cbir_lab.datasets.image_sets.load_whitening_set`).
        dims: the whitened dimensions; those the whitening set cannot give are skipped
            (if none fits, its largest d is used), and the report says so.
        poolings: the poolings compared.
        backbone: the network.
        download: allow downloading missing data.
        progress: progress bars for the extraction and the scoring.
        log: where the estimate and the stages are reported.
        **load_options: passed to :func:`cbir_lab.datasets.load_dataset` (e.g. ``registry`` in tests).

    Returns:
        The :class:`Reproduction`.
    """
    from tqdm.auto import tqdm

    from cbir_lab.backbones import load_backbone
    from cbir_lab.datasets import load_dataset
    from cbir_lab.pipeline import extract_dataset

    if name not in REPRODUCIBLE:
        raise ValueError(f"cbir-lab reproduce runs {', '.join(REPRODUCIBLE)}; got {name!r}")
    if int(max_side) != max_side or max_side < 32:
        raise ValueError(f"max_side must be an integer of at least 32, got {max_side!r}")
    started = time.perf_counter()
    choice = PAPERS_WHITENING[name] if whitening is None else whitening
    if choice == name:
        raise ValueError(f"the whitening of {name!r} cannot be learned on {name!r} itself: it would overfit")
    dataset = load_dataset(name, root=root, download=download, **load_options)
    whitening_set = load_whitening_set(choice, root, download=download, not_from=name, **load_options)
    dataset = dataset.with_training_images(whitening_set.images, whitening_set.description)
    net = load_backbone(backbone)
    items = dataset.queries() + list(dataset.db_images) + list(dataset.train_images)
    todo, seconds = estimate_extraction(items, net, max_side)
    if todo:
        log(f"extracting {todo:,} of {len(items):,} images at max side {max_side}: about {_duration(seconds)} on this "
            f"machine (each image's maps are cached: a second run only re-scores; --max-side {max_side // 2} takes "
            f"about a quarter of the time, and is less accurate)")
    features = extract_dataset(dataset, net, max_side=max_side, progress=progress)
    index = RetrievalIndex(features)
    rows, skipped = [], []
    for method in tqdm(poolings, desc="scoring", unit="pooling", disable=not progress):
        pooling = Pooling.parse(method)
        q, db = index.descriptors(pooling)
        rows.append(_row(index, pooling.name, q, db, whitened=False))
        top = index.max_dim(pooling)
        fitting = [d for d in dims if d <= top]
        if len(fitting) < len(dims):
            skipped.append(f"{pooling.name}: d > {top} skipped (the whitening set gives at most {top} dimensions)")
        for d in fitting or [top]:
            rows.append(_row(index, pooling.name, *index.whitened(pooling, d), whitened=True))
    return Reproduction(name, dataset.summary(), backbone, int(max_side), whitening_set.description, rows,
                        PUBLISHED[name], skipped, time.perf_counter() - started)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _score_names(reproduction: Reproduction) -> list[str]:
    names = list(reproduction.rows[0].scores) if reproduction.rows else []
    return [n for n in names if not n.startswith("mP@")]


def format_markdown(reproduction: Reproduction) -> str:
    """The computed table, then the published figures with their sources, as Markdown.

    Computed scores are shown in % like the published ones (the N-S score as it is, out of 4).
    """
    names = _score_names(reproduction)
    headline = reproduction.rows[0].headline if reproduction.rows else ""
    scale = {n: (1.0 if n == "N-S" else 100.0) for n in names}

    def fmt(name: str, value: float) -> str:
        return f"{value * scale[name]:.2f}" if name == "N-S" else f"{value * scale[name]:.1f}"

    lines = [
        f"# cbir-lab reproduce: {reproduction.dataset}",
        "",
        f"**Computed here** ({reproduction.summary}): {reproduction.backbone}, ImageNet weights, off the shelf; "
        f"max side {reproduction.max_side}; queries cropped to their boxes where the benchmark has them; "
        f"L2 → PCA-whitening → L2 learned on {reproduction.whitening_source} (R-MAC: region by region); "
        f"no query expansion. Scores in % (N-S out of 4); the interval is the 95 % bootstrap interval over the "
        f"queries of the {headline} score. Run time {_duration(reproduction.seconds)}.",
        "",
        "| method | whitened | d | " + " | ".join(names) + f" | {headline} 95 % CI |",
        "|---|---|---|" + "---|" * len(names) + "---|",
    ]
    for row in reproduction.rows:
        ci = f"[{fmt(row.headline, row.interval.low)}, {fmt(row.headline, row.interval.high)}]"
        lines.append(f"| {row.method} | {'yes' if row.whitened else 'no'} | {row.dim} | "
                     + " | ".join(fmt(n, row.scores[n]) for n in names) + f" | {ci} |")
    for note in reproduction.skipped:
        lines.append(f"\n*{note}.*")
    lines += ["", "**Published** (cited, not computed; in %):", ""]
    if not reproduction.published:
        lines.append("No published figure for this benchmark has been checked against a source a reader can open; "
                     "see lesson 6 for the figures that circulate and why they are not listed.")
    else:
        published_names = [n for n in names if any(n in p.scores for p in reproduction.published)]
        lines.append("| method | network | " + " | ".join(published_names) + " | protocol | source | status |")
        lines.append("|---|---|" + "---|" * len(published_names) + "---|---|---|")
        for p in reproduction.published:
            cells = [f"{p.scores[n]:g}" if n in p.scores else "—" for n in published_names]
            lines.append(f"| {p.method} | {p.network} | " + " | ".join(cells) + f" | {p.protocol} | {p.source} | {p.status} |")
        shown = [status for status in PUBLISHED_STATUSES if any(p.status == status for p in reproduction.published)]
        lines += ["", "Status: " + "; ".join(f"*{status}*: {PUBLISHED_STATUSES[status]}" for status in shown) + "."]
    lines += ["", "Confounds: the published rows use other networks (ResNet101, mostly fine-tuned for retrieval on "
              "retrieval-SfM-120k, Landmarks-clean or google-landmarks-2018), "
              "other dimensions, multi-scale images and learned whitening; compare methods within one table, "
              "and across the two only with all of that in mind."]
    return "\n".join(lines) + "\n"


def format_csv(reproduction: Reproduction) -> str:
    """Computed and published rows in one CSV: ``kind`` says which; scores as fractions (N-S out of 4)."""
    names = _score_names(reproduction)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["kind", "dataset", "method", "network", "whitened", "dim", *names, "headline", "ci_low",
                     "ci_high", "max_side", "whitening_source", "source", "status"])
    for r in reproduction.rows:
        writer.writerow(["computed", reproduction.dataset, r.method, reproduction.backbone, r.whitened, r.dim,
                         *[f"{r.scores[n]:.4f}" for n in names], r.headline, f"{r.interval.low:.4f}",
                         f"{r.interval.high:.4f}", reproduction.max_side, reproduction.whitening_source, "", ""])
    for p in reproduction.published:
        scale = {n: 1.0 if n == "N-S" else 0.01 for n in names}
        writer.writerow(["published", reproduction.dataset, p.method, p.network, "", "",
                         *[f"{p.scores[n] * scale[n]:.4f}" if n in p.scores else "" for n in names], "", "", "", "",
                         p.protocol, p.source, p.status])
    return out.getvalue()


def write_report(reproduction: Reproduction, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<dataset>.md`` and ``<dataset>.csv`` to ``out_dir``; an existing file is never
    overwritten (the new one gets ``-1``, ``-2``, … in its name).

    Returns:
        (Markdown path, CSV path).
    """
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    markdown = atomic_write(free_path(out / f"{reproduction.dataset}.md"), format_markdown(reproduction))
    table = atomic_write(free_path(out / f"{reproduction.dataset}.csv"), format_csv(reproduction))
    return markdown, table
