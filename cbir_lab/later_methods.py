"""What came after the course's methods: published figures on the revisited benchmarks, each with its source.

Lesson 12 reads these. :data:`LATER_METHODS` holds figures in the style of
:data:`cbir_lab.reproduce.PUBLISHED`: each row names the method, the network, the
training set, the setting (scales, query cropping, re-ranking), the benchmark and its
distractors, the score(s) in %, where a reader can open it (a URL, with the commit when
the source is a repository file) and a status (:data:`LATER_STATUSES`). The course
opened every source listed; a figure it could not open is not here.

:data:`TRAINING_OVERLAP` holds what Song et al. (arXiv 2404.01524) report on the
overlap of Google Landmarks v2 clean, a common training set, with ROxford and RParis.

:func:`like_for_like_gain` compares two rows only when they share a benchmark, its
distractors and the training set; :func:`format_later_table` and
:func:`plot_hard_map` show the rows. Nothing here is computed from data: these are the
papers' and repositories' numbers, and they differ from the course's own in scale
(the full benchmarks, 70 queries, against the 12 queries of ``rparis6k-slice``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "LATER_STATUSES",
    "LATER_SCORES",
    "LaterFigure",
    "LATER_METHODS",
    "OverlapFinding",
    "TRAINING_OVERLAP",
    "later_figures",
    "comparable",
    "like_for_like_gain",
    "format_later_table",
    "format_overlap",
    "plot_hard_map",
]

#: What a row's ``status`` may say, and what each means.
LATER_STATUSES = {
    "confirmed": "the figure is in the source named, written by the method's authors, and the course opened it",
    "confirmed (secondary)": "the figure is on a listing of the paper's results (Papers with Code), not in the "
                             "authors' own text; the course opened the listing",
    "re-measured by others": "someone other than the authors ran the authors' released model and posted this figure "
                             "(an issue thread the course opened); it is not the authors' figure",
}

#: The revisited protocol's scores a row may carry.
LATER_SCORES = ("easy", "medium", "hard")

_BENCHMARKS = ("roxford5k", "rparis6k")
_DISTRACTORS = ("none", "+1M", "not stated")


@dataclass(frozen=True)
class LaterFigure:
    """One published figure set, as its source prints it (in %).

    Attributes:
        method: the method's name, as the source writes it.
        year: the year of the method's paper, as the source names it (its venue or arXiv number).
        family: ``"global descriptor"``, ``"foundation model"``, ``"local features, aggregated"`` or
            ``"re-ranking"``.
        network: the backbone and the model's name.
        training: the training set, or what the source leaves unsaid.
        setting: how it was run: image scales, query cropping, re-ranking, whatever the source states.
        benchmark: ``"roxford5k"`` or ``"rparis6k"``.
        distractors: ``"none"``, ``"+1M"`` (the revisited 1M distractors) or ``"not stated"``.
        scores: score name (one of :data:`LATER_SCORES`) → mAP in %.
        source: a URL a reader can open, with the commit for a repository file.
        status: one of :data:`LATER_STATUSES`.

    Raises:
        ValueError: an unknown status, benchmark, distractor setting, family or score name; no score;
            a score outside [0, 100]; an empty setting or training; a source that is not a URL.
    """

    method: str
    year: int
    family: str
    network: str
    training: str
    setting: str
    benchmark: str
    distractors: str
    scores: dict[str, float]
    source: str
    status: str

    def __post_init__(self) -> None:
        where = f"{self.method} ({self.network}, {self.benchmark})"
        if self.status not in LATER_STATUSES:
            raise ValueError(f"{where}: status {self.status!r} is not one of {', '.join(map(repr, LATER_STATUSES))}")
        if self.benchmark not in _BENCHMARKS:
            raise ValueError(f"{where}: benchmark {self.benchmark!r} is not one of {_BENCHMARKS}")
        if self.distractors not in _DISTRACTORS:
            raise ValueError(f"{where}: distractors {self.distractors!r} is not one of {_DISTRACTORS}")
        if self.family not in _FAMILIES:
            raise ValueError(f"{where}: family {self.family!r} is not one of {_FAMILIES}")
        if not self.scores:
            raise ValueError(f"{where}: a row needs at least one score")
        for name, value in self.scores.items():
            if name not in LATER_SCORES:
                raise ValueError(f"{where}: score {name!r} is not one of {LATER_SCORES}")
            if not 0.0 <= value <= 100.0:
                raise ValueError(f"{where}: score {name} = {value} is not a percentage in [0, 100]")
        if not self.setting.strip() or not self.training.strip():
            raise ValueError(f"{where}: say the setting and the training set (or that the source does not)")
        if not self.source.startswith("https://"):
            raise ValueError(f"{where}: source {self.source!r} is not a URL a reader can open")


_FAMILIES = ("global descriptor", "foundation model", "local features, aggregated", "re-ranking")

# The sources, as opened (a repository file at the commit read).
_CIRTORCH = ("https://github.com/filipradenovic/cnnimageretrieval-pytorch/blob/"
             "c3405405e988ec214f4d5969a8f2d04a85a9869b/README.md (table under 'Testing our pretrained networks')")
_DELG = ("https://github.com/tensorflow/models/blob/454e0275cf6a03cc36a8e846c1c8676ad8de3750/"
         "research/delf/delf/python/delg/DELG_INSTRUCTIONS.md (metrics.txt, 'the results presented in Table 3')")
_GLDV2 = ("https://github.com/tensorflow/models/blob/e4009b236c08afc812b18060c9976f0a3764ee52/"
          "research/delf/delf/python/datasets/google_landmarks_dataset/README.md (metrics.txt)")
_DOLG = ("https://github.com/feymanpriv/DOLG/blob/4bfe215937f49e669166526a6a9e1e99ba5db9e5/README.md "
         "('modified results (should follow cropping results)')")
_DOLG_RETEST = "https://github.com/feymanpriv/DOLG-paddle/issues/3 (the first comment's table, 'my re-test')"
_HOW = "https://github.com/gtolias/how/blob/ca9a68437f455d2c8dc704b4c60d39edccbddc2d/README.md (Table 2 models)"
_DINOV2 = ("https://github.com/facebookresearch/dinov2/blob/81b2b6419385a321287de91e00282ef7cbd26f94/"
           "MODEL_CARD.md (Evaluation table, 'Oxford-H, retrieval (mAP), nearest neighbor')")
_SUPERGLOBAL_PWC = ("https://www.paperswithcode.com/paper/global-features-are-all-you-need-for-image "
                    "('Results from the Paper')")

_CIRTORCH_SETTING = ("GeM, whitening learned on retrieval-SfM-120k; scales 1, 1/√2, 1/2 (the README's test "
                     "command); cropped queries")
_DELG_NETWORK = "ResNet-50, delg_gld_20200520"
_DELG_BACKBONE = ("the backbone as the DELG author names it in https://github.com/naver/kapture-localization/issues/4 "
                  "(the instructions do not)")
_DELG_TRAINING = "Google Landmarks v1 ('DELG-GLD model'; v1 per naver/kapture-localization#4)"
_DELG_SETTING = ("DELG's global descriptor only; cropped queries (the instructions' extract_features, "
                 f"image_set=query); {_DELG_BACKBONE}")
_DELG_GV_SETTING = ("DELG's global descriptor, then geometric verification of the top results with its DELF-style "
                    f"local features; cropped queries; {_DELG_BACKBONE}")
_DOLG_TRAINING = "not stated in the README (the paper's, which the course did not open)"
_DOLG_SETTING = "one stage (global descriptor with fused local features); 'with query cropping'"
_DOLG_RETEST_SETTING = ("the authors' released R101-DOLG weights, 5 scales, cropped queries, revisitop's evaluation "
                        "code (as the issue states)")
_HOW_TRAINING = "not stated in the README (it installs cirtorch; the paper's set was not checked)"
_DINO_SETTING = ("frozen features, nearest-neighbour retrieval; the card names the benchmark 'Oxford-H' and refers "
                 "to the paper (not opened) for the protocol: resolution, scales and distractors are not stated")
_SUPERGLOBAL_SETTING = ("as listed: 'SuperGlobal', ROxford (Hard) and RParis (Hard); backbone, re-ranking and "
                        "distractors are not stated on the listing")

#: Published figures for the methods lesson 12 reads, each with its source and status (:data:`LATER_STATUSES`).
#: Figures in %, as printed. CVNet's repository README and SuperGlobal's state no mAP figures (both read), so
#: CVNet has no row and SuperGlobal's row comes from a listing.
LATER_METHODS: tuple[LaterFigure, ...] = (
    LaterFigure("GeM (fine-tuned)", 2018, "global descriptor", "ResNet101-GeM (PyTorch), 2048-D",
                "retrieval-SfM-120k", _CIRTORCH_SETTING, "roxford5k", "none", {"medium": 65.4, "hard": 40.1},
                _CIRTORCH, "confirmed"),
    LaterFigure("GeM (fine-tuned)", 2018, "global descriptor", "ResNet101-GeM (PyTorch), 2048-D",
                "retrieval-SfM-120k", _CIRTORCH_SETTING, "rparis6k", "none", {"medium": 76.7, "hard": 55.2},
                _CIRTORCH, "confirmed"),
    LaterFigure("DELG (global)", 2020, "global descriptor", _DELG_NETWORK, _DELG_TRAINING, _DELG_SETTING,
                "roxford5k", "none", {"medium": 69.71, "hard": 45.11}, _DELG, "confirmed"),
    LaterFigure("DELG + geometric verification", 2020, "re-ranking", _DELG_NETWORK, _DELG_TRAINING,
                _DELG_GV_SETTING, "roxford5k", "none", {"medium": 75.42, "hard": 53.72}, _DELG, "confirmed"),
    LaterFigure("ArcFace (GLDv2 baseline)", 2020, "global descriptor", "ResNet101, rn101_af_gldv2clean_20200814",
                "Google Landmarks v2 clean", "global descriptor; cropped queries", "roxford5k", "none",
                {"medium": 76.23, "hard": 55.54}, _GLDV2, "confirmed"),
    LaterFigure("HOW + ASMK", 2020, "local features, aggregated", "-R50-HOW",
                _HOW_TRAINING, "n = 1000 HOW local descriptors per image, aggregated by ASMK", "roxford5k", "none", {"medium": 78.3},
                _HOW, "confirmed"),
    LaterFigure("HOW + ASMK", 2020, "local features, aggregated", "-R50-HOW",
                _HOW_TRAINING, "n = 1000 HOW local descriptors per image, aggregated by ASMK", "rparis6k", "none", {"medium": 80.1},
                _HOW, "confirmed"),
    LaterFigure("DOLG", 2021, "global descriptor", "DOLG-R101", _DOLG_TRAINING, _DOLG_SETTING, "roxford5k", "none",
                {"medium": 82.37, "hard": 64.93}, _DOLG, "confirmed"),
    LaterFigure("DOLG", 2021, "global descriptor", "DOLG-R101", _DOLG_TRAINING, _DOLG_SETTING, "rparis6k", "none",
                {"medium": 90.97, "hard": 81.71}, _DOLG, "confirmed"),
    LaterFigure("DOLG (re-tested)", 2021, "global descriptor", "DOLG-R101", _DOLG_TRAINING, _DOLG_RETEST_SETTING,
                "roxford5k", "none", {"medium": 80.12, "hard": 60.10}, _DOLG_RETEST, "re-measured by others"),
    LaterFigure("DOLG (re-tested)", 2021, "global descriptor", "DOLG-R101", _DOLG_TRAINING, _DOLG_RETEST_SETTING,
                "roxford5k", "+1M", {"medium": 66.64, "hard": 39.94}, _DOLG_RETEST, "re-measured by others"),
    LaterFigure("DINOv2", 2023, "foundation model", "ViT-S/14, 384-D", "LVD-142M (no landmark labels)",
                _DINO_SETTING, "roxford5k", "not stated", {"hard": 43.2}, _DINOV2, "confirmed"),
    LaterFigure("DINOv2", 2023, "foundation model", "ViT-B/14, 768-D", "LVD-142M (no landmark labels)",
                _DINO_SETTING, "roxford5k", "not stated", {"hard": 49.5}, _DINOV2, "confirmed"),
    LaterFigure("DINOv2", 2023, "foundation model", "ViT-L/14, 1024-D", "LVD-142M (no landmark labels)",
                _DINO_SETTING, "roxford5k", "not stated", {"hard": 54.0}, _DINOV2, "confirmed"),
    LaterFigure("DINOv2", 2023, "foundation model", "ViT-g/14, 1536-D", "LVD-142M (no landmark labels)",
                _DINO_SETTING, "roxford5k", "not stated", {"hard": 52.3}, _DINOV2, "confirmed"),
    LaterFigure("SuperGlobal", 2023, "re-ranking", "not stated on the listing", "not stated on the listing",
                _SUPERGLOBAL_SETTING, "roxford5k", "not stated", {"hard": 80.2}, _SUPERGLOBAL_PWC,
                "confirmed (secondary)"),
    LaterFigure("SuperGlobal", 2023, "re-ranking", "not stated on the listing", "not stated on the listing",
                _SUPERGLOBAL_SETTING, "rparis6k", "not stated", {"hard": 86.7}, _SUPERGLOBAL_PWC,
                "confirmed (secondary)"),
)


@dataclass(frozen=True)
class OverlapFinding:
    """How much of a benchmark a training set also holds, as a source reports it.

    Attributes:
        benchmark: ``"roxford5k"`` or ``"rparis6k"``.
        training: the training set.
        overlapping, out_of: the count found in both, and the count the source divides it by.
        wording: the source's own words for the count.
        source: where it is written.
    """

    benchmark: str
    training: str
    overlapping: int
    out_of: int
    wording: str
    source: str

    def __post_init__(self) -> None:
        if not 0 <= self.overlapping <= self.out_of or self.out_of <= 0:
            raise ValueError(f"{self.benchmark}: overlapping = {self.overlapping} must lie in [0, out_of = "
                             f"{self.out_of}]")

    @property
    def share(self) -> float:
        """``overlapping / out_of``, in [0, 1]."""
        return self.overlapping / self.out_of


_RGLDV2 = ("https://github.com/dealicious-inc/RGLDv2-clean/blob/04a2e89aee10af3a4842b24324979f8662a4f3a5/README.md "
           "('Cleaning Results'), the dataset of Song et al., 'On Train-Test Class Overlap and Detection for Image "
           "Retrieval', CVPR 2024, arXiv 2404.01524")

_WORDING = ("'ROxford and RParis have 36 and 38 overlapping landmarks out of 70, respectively'; each benchmark has 70 "
            "queries and far fewer landmarks, so the 70 are the queries: those whose landmark the training set holds")

#: The overlap Song et al. found between Google Landmarks v2 clean and the revisited benchmarks, as their README
#: words it ("36 and 38 overlapping landmarks out of 70"): 36 of ROxford's and 38 of RParis' 70 queries. Removing
#: the overlapping classes made RGLDv2-clean, 1,565 images and 17 classes smaller than GLDv2-clean
#: (:data:`RGLDV2_REMOVED`).
TRAINING_OVERLAP: tuple[OverlapFinding, ...] = (
    OverlapFinding("roxford5k", "Google Landmarks v2 clean", 36, 70, _WORDING, _RGLDV2),
    OverlapFinding("rparis6k", "Google Landmarks v2 clean", 38, 70, _WORDING, _RGLDV2),
)
#: What RGLDv2-clean removed from GLDv2-clean, as the same README states it.
RGLDV2_REMOVED = {"images": 1565, "classes": 17}
__all__.append("RGLDV2_REMOVED")


def later_figures(benchmark: str | None = None, score: str | None = None, distractors: str | None = None,
                  figures: Sequence[LaterFigure] = LATER_METHODS) -> list[LaterFigure]:
    """The rows for one benchmark, that report one score, on one distractor setting (``None``: any).

    Raises:
        ValueError: an unknown benchmark, score or distractor setting.
    """
    if benchmark is not None and benchmark not in _BENCHMARKS:
        raise ValueError(f"benchmark {benchmark!r} is not one of {_BENCHMARKS}")
    if score is not None and score not in LATER_SCORES:
        raise ValueError(f"score {score!r} is not one of {LATER_SCORES}")
    if distractors is not None and distractors not in _DISTRACTORS:
        raise ValueError(f"distractors {distractors!r} is not one of {_DISTRACTORS}")
    return [f for f in figures if (benchmark is None or f.benchmark == benchmark)
            and (score is None or score in f.scores) and (distractors is None or f.distractors == distractors)]


def comparable(a: LaterFigure, b: LaterFigure) -> tuple[bool, str]:
    """Whether two rows measure the same thing closely enough to subtract: (yes or no, why).

    They must share the benchmark, a *stated* distractor setting and a *stated* training set (the
    same data behind both, as for one model with and without a re-ranking, or one model run twice).
    """
    if a.benchmark != b.benchmark:
        return False, f"different benchmarks ({a.benchmark} and {b.benchmark})"
    if "not stated" in (a.distractors, b.distractors):
        return False, "a distractor setting is not stated"
    if a.distractors != b.distractors:
        return False, f"different distractors ({a.distractors} and {b.distractors})"
    if a.training != b.training or "not stated on the listing" in a.training:
        return False, f"different or unstated training sets ({a.training!r} and {b.training!r})"
    return True, "same benchmark, distractors and training set"


def like_for_like_gain(before: LaterFigure, after: LaterFigure) -> dict[str, float]:
    """``after`` − ``before`` in mAP points, on each score both rows report, when they are :func:`comparable`.

    Args:
        before, after: two rows.

    Returns:
        score name → difference in points (rounded to 1e-9), for the scores the two share.

    Raises:
        ValueError: the rows are not comparable (the reason is in the message), or share no score.

    Examples:
        >>> delg = [f for f in LATER_METHODS if f.method.startswith("DELG")]
        >>> {k: round(v, 2) for k, v in like_for_like_gain(delg[0], delg[1]).items()}
        {'medium': 5.71, 'hard': 8.61}
    """
    ok, why = comparable(before, after)
    if not ok:
        raise ValueError(f"{before.method} and {after.method} are not comparable: {why}")
    shared = [s for s in LATER_SCORES if s in before.scores and s in after.scores]
    if not shared:
        raise ValueError(f"{before.method} and {after.method} share no score")
    return {s: round(after.scores[s] - before.scores[s], 9) for s in shared}


def format_later_table(figures: Sequence[LaterFigure] = LATER_METHODS, settings: bool = False) -> str:
    """A plain-text table: method, year, network, benchmark, distractors, Medium, Hard, status (and the settings).

    Args:
        figures: the rows.
        settings: add each row's training set and setting under it.
    """
    header = f"{'method':32s} {'year':>4s}  {'network':40s} {'benchmark':9s} {'+1M?':10s} {'M':>6s} {'H':>6s}  status"
    lines = [header, "-" * len(header)]
    for f in figures:
        m, h = (f"{_as_printed(f.scores[s]):>6s}" if s in f.scores else f"{'—':>6s}" for s in ("medium", "hard"))
        lines.append(f"{f.method:32.32s} {f.year:4d}  {f.network:40.40s} {f.benchmark:9s} {f.distractors:10s} "
                     f"{m} {h}  {f.status}")
        if settings:
            lines.append(f"    trained on: {f.training}; setting: {f.setting}")
    return "\n".join(lines)


def _as_printed(value: float) -> str:
    """A figure with the decimals its source gives: 69.71 as 69.71, 65.4 and 54.0 with one decimal."""
    return f"{value:.2f}" if round(value, 1) != value else f"{value:.1f}"


def format_overlap(findings: Sequence[OverlapFinding] = TRAINING_OVERLAP) -> str:
    """One line per finding: the count in both sets, its share, the source's wording, and the source."""
    lines = [f"{f.benchmark}: {f.overlapping} of its {f.out_of} queries show a landmark that {f.training} also holds "
             f"({f.share:.0%})" for f in findings]
    lines += [f"the source's words: {w}" for w in sorted({f.wording for f in findings})]
    lines.append(f"RGLDv2-clean removes them: {RGLDV2_REMOVED['images']:,} images and {RGLDV2_REMOVED['classes']} "
                 "classes fewer than GLDv2-clean")
    sources = sorted({f.source for f in findings})
    return "\n".join(lines + [f"source: {s}" for s in sources])


def plot_hard_map(figures: Sequence[LaterFigure] = LATER_METHODS, benchmark: str = "roxford5k",
                  course: tuple[str, float] | None = None, ax=None):
    """A horizontal bar per row with a Hard mAP on ``benchmark``, by year; the course's own figure apart.

    Bars are coloured by family and hatched when the row is not the authors' own figure
    (a listing or a re-test); a row on +1M distractors or with unstated distractors says so
    in its label. ``course`` (label, Hard mAP in %) is drawn as a grey bar in its own panel
    below, with its own axis label: it is measured on another set and is not comparable.

    Args:
        figures: the rows.
        benchmark: ``"roxford5k"`` or ``"rparis6k"``.
        course: the course's own (label, value in %), or ``None``.
        ax: a Matplotlib axes for the published rows (a new figure when ``None``; then the course's bar,
            when given, gets a second axes below).

    Returns:
        The Matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = sorted(later_figures(benchmark, "hard", figures=figures), key=lambda f: (f.year, f.scores["hard"]))
    if not rows:
        raise ValueError(f"no row reports a Hard mAP on {benchmark}")
    colours = {"global descriptor": "tab:blue", "foundation model": "tab:green",
               "local features, aggregated": "tab:purple", "re-ranking": "tab:orange"}
    if ax is None:
        if course is not None:
            fig, (ax, course_ax) = plt.subplots(2, 1, figsize=(8, 0.38 * len(rows) + 2.2),
                                                gridspec_kw={"height_ratios": [len(rows), 1.4]})
        else:
            fig, ax = plt.subplots(figsize=(8, 0.38 * len(rows) + 1.2))
            course_ax = None
    else:
        fig, course_ax = ax.figure, None
    labels = []
    for i, f in enumerate(rows):
        own = f.status == "confirmed"
        ax.barh(i, f.scores["hard"], color=colours[f.family], hatch=None if own else "//",
                edgecolor="white" if own else "black")
        ax.text(f.scores["hard"] + 0.5, i, f"{f.scores['hard']:.1f}", va="center", fontsize=8)
        note = "" if f.distractors == "none" else f" [{'+1M' if f.distractors == '+1M' else 'distractors?'}]"
        network = "network not stated" if f.network.startswith("not stated") else f.network.split(",")[0][:26]
        labels.append(f"{f.year} {f.method} · {network}{note}")
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"{benchmark} Hard mAP (%), as published")
    handles = [Patch(facecolor=colour, label=family) for family, colour in colours.items()]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="not the authors' own figure"))
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.set_title(f"Published Hard mAP on {benchmark}: settings differ row by row (see the table)", fontsize=9)
    if course is not None and course_ax is not None:
        label, value = course
        course_ax.barh(0, value, color="0.6")
        course_ax.text(value + 0.5, 0, f"{value:.1f}", va="center", fontsize=8)
        course_ax.set_yticks([0], [label], fontsize=8)
        course_ax.set_xlim(0, 100)
        course_ax.set_xlabel("the course's own Hard mAP (%), on another set: not comparable")
    fig.tight_layout()
    return fig
