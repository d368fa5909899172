"""The common shape of every retrieval dataset: database, queries, ground truth.

Every loader in :mod:`cbir_lab.datasets` (the embedded set, the papers'
benchmarks, a user's own folder) returns a :class:`RetrievalDataset`, so the
rest of the pipeline never needs to know where the images came from.

Ground truth follows the conventions of the Revisiting Oxford & Paris code:
``gnd[q]`` is a dict of 0-based indices into ``db_images``:

* ``protocol="standard"`` (Oxford5k/Paris6k, Holidays, the embedded set,
  a user's folder): keys ``'ok'`` (positives) and ``'junk'`` (ignored).
* ``protocol="revisited"`` (ROxford5k/RParis6k): keys ``'easy'``, ``'hard'``,
  ``'junk'``, scored as Easy / Medium / Hard.
* ``protocol="ukbench"``: every image is a query, scored with the N-S score.
* ``protocol="none"``: no ground truth (exploratory search in a flat folder).

:func:`gnd_from_groups` writes the rule shared by Holidays, UKBench and a user's
grouped folder once: the other images of a query's group are its positives.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Sequence

__all__ = ["RetrievalDataset", "Protocol", "BBox", "gnd_from_groups"]

Protocol = Literal["standard", "revisited", "ukbench", "none"]
BBox = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


@dataclass(frozen=True)
class RetrievalDataset:
    """A ground-truthed image collection, ready for feature extraction.

    Attributes:
        name: short identifier (``"embedded"``, ``"roxford5k"``, a folder name).
        db_images: paths of the database images, in ranking-index order.
        query_images: paths of the query images (may overlap ``db_images``,
            as in Holidays and UKBench; the ground truth then marks the query
            itself as junk so it is left out of its own ranking).
        gnd: one dict per query (see the module docstring), or ``None``.
        protocol: how ``gnd`` is scored.
        query_bboxes: per query, ``(x1, y1, x2, y2)`` to crop before
            extraction, or ``None`` for the whole image.
        train_images: a disjoint image set for learning PCA-whitening.
        groups: per database image, the label of its group (object/scene),
            or ``None``; used for plots and for per-group summaries.
        root: the folder the images live in.
        licence: a one-line licence / attribution note.
        query_clusters: per query, the unit it shares with other queries (the source
            photo of the embedded set, the landmark of the Paris slice, the object of
            ETH-80), or ``None`` when every query stands alone. Queries of one cluster
            are not independent, so the bootstrap resamples clusters
            (:func:`cbir_lab.evaluation.bootstrap_interval`).
        cluster_unit: what a cluster is, in words, plural (``"source photos"``).
        max_side: the long side its images are fed to the network at by default.
    """

    name: str
    db_images: tuple[Path, ...]
    query_images: tuple[Path, ...]
    gnd: tuple[dict, ...] | None
    protocol: Protocol = "standard"
    query_bboxes: tuple[BBox | None, ...] | None = None
    train_images: tuple[Path, ...] = ()
    groups: tuple[str, ...] | None = None
    root: Path | None = None
    licence: str = ""
    extra: dict = field(default_factory=dict, compare=False, repr=False)
    query_clusters: tuple[str, ...] | None = None
    cluster_unit: str = "queries"
    max_side: int = 384

    def __post_init__(self) -> None:
        per_query = {"ground-truth entries": self.gnd, "query boxes": self.query_bboxes,
                     "query clusters": self.query_clusters}
        for what, values in per_query.items():
            if values is not None and len(values) != len(self.query_images):
                raise ValueError(f"dataset {self.name!r}: {len(values)} {what} for {len(self.query_images)} queries")
        if self.groups is not None and len(self.groups) != len(self.db_images):
            raise ValueError(
                f"dataset {self.name!r}: {len(self.groups)} group labels "
                f"for {len(self.db_images)} database images"
            )

    @property
    def n_db(self) -> int:
        return len(self.db_images)

    @property
    def n_queries(self) -> int:
        return len(self.query_images)

    def clusters(self) -> tuple[str, ...]:
        """Per query, its cluster (:attr:`query_clusters`), or its own index when queries stand alone."""
        return self.query_clusters if self.query_clusters is not None else tuple(map(str, range(self.n_queries)))

    @property
    def has_ground_truth(self) -> bool:
        return self.gnd is not None and self.protocol != "none"

    def queries(self) -> list[Path | tuple[Path, BBox]]:
        """Query items for :func:`cbir_lab.features.extract_feature_maps`: a path, or
        ``(path, bbox)`` when the protocol crops the query."""
        if self.query_bboxes is None:
            return list(self.query_images)
        return [p if b is None else (p, b) for p, b in zip(self.query_images, self.query_bboxes)]

    def label(self, path: Path) -> str:
        """How an image is named on screen: its path inside the dataset's folder when names
        can repeat there (a user's folder of camera files), else its file name, without extension."""
        path = Path(path)
        if self.extra.get("labels") == "relative" and self.root is not None:
            try:
                return path.relative_to(self.root).with_suffix("").as_posix()
            except ValueError:
                pass  # an outside query image
        return path.stem

    def query_label(self, query: int) -> str:
        """A short name for query ``query``: :meth:`label` of its image, less a ``_query`` suffix."""
        label = self.label(self.query_images[query])
        return label[: -len("_query")] if label.endswith("_query") and len(label) > 6 else label

    @property
    def train_source(self) -> str:
        """What the whitening-training images are, in words (shown where a whitening is described)."""
        if "train_source" in self.extra:
            return self.extra["train_source"]
        return f"the {self.name} training split" if self.train_images else "no training images"

    def with_training_images(self, images: Sequence[Path], source: str) -> "RetrievalDataset":
        """The same dataset with another set of whitening-training images.

        Args:
            images: the images to learn the whitening on (never the queries or the
                database: the whitening must not see the test set).
            source: what they are, in words (e.g. "1,000 ImageNet photos").

        Returns:
            A new dataset; this one is unchanged.

        Raises:
            ValueError: no images, or some of them are queries or database images.
        """
        images = tuple(Path(p) for p in images)
        if not images:
            raise ValueError(f"dataset {self.name!r}: the whitening-training set {source!r} has no images")
        test = set(map(Path, self.db_images)) | set(map(Path, self.query_images))
        overlap = [p for p in images if p in test]
        if overlap:
            raise ValueError(f"dataset {self.name!r}: {len(overlap)} whitening-training images are test images "
                             f"(e.g. {overlap[0]}); a whitening learned on them would overfit")
        return replace(self, train_images=images, extra={**self.extra, "train_source": source})

    def with_distractors(self, images: Sequence[Path], source: str) -> "RetrievalDataset":
        """The same dataset with images that match no query added at the end of the database.

        As Oxford105k adds 100k Flickr photos to Oxford5k: the queries and their
        ground truth are unchanged (the new images come after every indexed one),
        and every distractor a ranking puts above a positive costs precision.

        Args:
            images: the distractors (none of them may be a query, a database or a training image).
            source: what they are, in words.

        Returns:
            A new dataset named ``<name>+<n>``; this one is unchanged.
        """
        images = tuple(Path(p) for p in images)
        known = set(map(Path, self.db_images)) | set(map(Path, self.query_images)) | set(map(Path, self.train_images))
        overlap = [p for p in images if p in known]
        if overlap:
            raise ValueError(f"dataset {self.name!r}: {len(overlap)} distractors are already in the dataset "
                             f"(e.g. {overlap[0]})")
        groups = None if self.groups is None else self.groups + ("distractor",) * len(images)
        return replace(self, name=f"{self.name}+{len(images)}", db_images=self.db_images + images, groups=groups,
                       extra={**self.extra, "distractors": f"{len(images)} distractors: {source}"})

    def summary(self) -> str:
        """One line: name, sizes and protocol."""
        return (
            f"{self.name}: {self.n_db} database images, {self.n_queries} queries, "
            f"{len(self.train_images)} whitening-training images, protocol={self.protocol}"
        )


def gnd_from_groups(groups: Sequence[str], query_indices: Sequence[int], query_in_database: bool = True) -> tuple[dict, ...]:
    """Ground truth from group labels: a query's positives are the other images of its group.

    Args:
        groups: per database image, its group label.
        query_indices: each query's own database index.
        query_in_database: the query stays in the database and is marked junk, so it
            is left out of its own ranking (Holidays, a user's folder); with ``False`` it
            counts among its own positives (UKBench's N-S score counts it).

    Returns:
        One ``{'ok': [...], 'junk': [...]}`` per query, indices into the database.

    Examples:
        >>> gnd_from_groups(["a", "a", "b", "b", "b"], [0, 2])
        ({'ok': [1], 'junk': [0]}, {'ok': [3, 4], 'junk': [2]})
        >>> gnd_from_groups(["a", "a"], [0, 1], query_in_database=False)
        ({'ok': [0, 1], 'junk': []}, {'ok': [0, 1], 'junk': []})
    """
    members: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    if query_in_database:
        return tuple({"ok": [i for i in members[groups[q]] if i != q], "junk": [q]} for q in query_indices)
    return tuple({"ok": list(members[groups[q]]), "junk": []} for q in query_indices)
