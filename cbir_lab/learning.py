r"""Learning the descriptor: matching tuples, hard-negative mining, the contrastive and triplet losses, a training loop.

What lesson 9 trains, on a CPU: the last layers of the backbone, GeM's power p and,
after training, a learned whitening, on maps of the frozen layers below them that are
extracted once (and cached).

* :func:`instance_split`: a retrieval set split by object (by landmark, by source
  photo), so that no object of the test part is ever seen in training.
* :func:`random_positives`, :func:`hardest_negatives`, :func:`random_negatives`:
  the tuples (query, positive, N negatives); the hard negatives are the nearest
  images of other objects under the current network, one per object, re-mined each epoch;
  :func:`negative_distances` shows how many of them the margin still acts on.
* :func:`contrastive_loss` and :func:`triplet_loss`, on L2-normalised descriptors.
* :class:`DescriptorModel`: trainable layers → :class:`~cbir_lab.heads.DescriptorHead`
  (GeM with a learnable p → L2 → optional whitening → L2).
* :class:`TrainingSettings`, :func:`train_descriptor` (seeded: a rerun gives the same
  numbers), :func:`describe_maps`.

Saving a trained model (its settings and checksum beside it) and reloading it instead of
training again is :mod:`cbir_lab.trained_heads`; ``cbir-lab search --head FILE`` searches with it.

References:
    Radenović, Tolias & Chum, "Fine-tuning CNN image retrieval with no human annotation",
    TPAMI 2018, arXiv:1711.02512 (cirtorch: contrastive loss, hard-negative mining, GeM, Lw);
    Gordo, Almazán, Revaud & Larlus, "End-to-end learning of deep visual representations for
    image retrieval", IJCV 2017, arXiv:1610.07940 (the triplet loss for retrieval).
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from cbir_lab._array import l2n
from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.heads import GeM, DescriptorHead

__all__ = [
    "QUICK_ENV",
    "instance_split",
    "random_positives",
    "hardest_negatives",
    "random_negatives",
    "negative_distances",
    "contrastive_loss",
    "triplet_loss",
    "DescriptorModel",
    "describe_maps",
    "TrainingSettings",
    "EpochRecord",
    "TrainingRun",
    "train_descriptor",
]

#: The environment variable that selects the quick training setting (``1``): nbval's run and CI set it.
QUICK_ENV = "CBIR_LAB_QUICK_TRAINING"


# ----- data: a split by object, and tuples -------------------------------------------------------

def _category(cluster: str) -> str:
    """ETH-80's ``cup3`` → ``cup``: clusters of one category are split evenly."""
    return re.sub(r"\d+$", "", cluster)


#: The ground-truth keys that hold database indices (the standard and the revisited protocols).
_INDEX_KEYS = ("ok", "junk", "easy", "hard")


def _restrict(dataset: RetrievalDataset, queries: list[int], db: list[int], name: str) -> RetrievalDataset:
    old_to_new = {old: new for new, old in enumerate(db)}
    gnd = tuple({key: [old_to_new[i] for i in values if i in old_to_new] if key in _INDEX_KEYS else values
                 for key, values in dataset.gnd[q].items()} for q in queries)
    return replace(
        dataset, name=name, db_images=tuple(dataset.db_images[i] for i in db),
        query_images=tuple(dataset.query_images[q] for q in queries), gnd=gnd,
        query_bboxes=None if dataset.query_bboxes is None else tuple(dataset.query_bboxes[q] for q in queries),
        groups=None if dataset.groups is None else tuple(dataset.groups[i] for i in db),
        query_clusters=tuple(dataset.query_clusters[q] for q in queries),
    )


def instance_split(dataset: RetrievalDataset, every: int = 2, seed: int = 0) -> tuple[RetrievalDataset, RetrievalDataset]:
    """Split a dataset by its query clusters (objects, landmarks, source photos) into two disjoint datasets.

    The clusters are ordered by category (the cluster's name without its trailing number:
    ``cup3`` → ``cup``), in a seeded random order within each, and every ``every``-th one goes
    to the second part: with ETH-80's 10 objects per category and ``every=2``, 5 of each
    category on each side, so the held-out part has look-alikes of every training object.
    A database image goes with the cluster of the queries it is a positive (or junk) of;
    images no query claims (distractors) stay in both parts.

    Args:
        dataset: a dataset with ground truth, ``query_clusters`` and database ``groups``.
        every: one cluster in ``every`` is held out (2: half; 5: a fifth).
        seed: the order within each category.

    Returns:
        (kept, held_out): datasets of the same protocol, their ground truth re-indexed.

    Raises:
        ValueError: no ground truth or clusters, ``every`` < 2, or fewer than 2 clusters.
    """
    if dataset.gnd is None or dataset.query_clusters is None:
        raise ValueError(f"dataset {dataset.name!r}: instance_split needs ground truth and query clusters")
    if isinstance(every, bool) or int(every) != every or every < 2:
        raise ValueError(f"every must be an integer >= 2, got {every!r}")
    clusters = sorted(set(dataset.query_clusters))
    if len(clusters) < 2:
        raise ValueError(f"dataset {dataset.name!r} has {len(clusters)} query cluster(s); a split needs at least 2")
    rng = np.random.default_rng(seed)
    ordered: list[str] = []
    for category in sorted({_category(c) for c in clusters}):
        members = [c for c in clusters if _category(c) == category]
        ordered += [members[i] for i in rng.permutation(len(members))]
    held = {c for position, c in enumerate(ordered) if position % every == every - 1}
    owner: dict[int, set[str]] = {}
    for q, entry in enumerate(dataset.gnd):
        for key in _INDEX_KEYS:
            for i in entry.get(key, ()):
                owner.setdefault(int(i), set()).add(dataset.query_clusters[q])
    parts = []
    for side in (False, True):
        queries = [q for q, c in enumerate(dataset.query_clusters) if (c in held) == side]
        db = [i for i in range(dataset.n_db) if i not in owner or any((c in held) == side for c in owner[i])]
        parts.append(_restrict(dataset, queries, db, f"{dataset.name} ({'held-out' if side else 'kept'} {dataset.cluster_unit})"))
    return parts[0], parts[1]


def random_positives(labels: Sequence, rng: np.random.Generator) -> np.ndarray:
    """For each item, another item with the same label, drawn at random.

    Args:
        labels: (n,) one label per item (an object); every label needs at least two items.
        rng: the random generator (seeded by the caller).

    Returns:
        (n,) int64 indices, ``positives[i] != i`` and ``labels[positives[i]] == labels[i]``.
    """
    labels = np.asarray(labels)
    positives = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            raise ValueError(f"label {label!r} has a single item: a positive needs another image of the same object")
        for i in members:
            others = members[members != i]
            positives[i] = others[rng.integers(len(others))]
    return positives


def hardest_negatives(descriptors: np.ndarray, labels: Sequence, n_negatives: int) -> np.ndarray:
    """For each item, its ``n_negatives`` nearest items of other labels, at most one per label.

    The negatives a training step learns from: those the current network confuses with the
    query. One per label (object) keeps a single look-alike object from filling the tuple.
    Ties go to the smaller index.

    Args:
        descriptors: (n, D) L2-normalised descriptors under the current network.
        labels: (n,) one label per item.
        n_negatives: N, at most the number of other labels.

    Returns:
        (n, N) int64 indices, nearest first.

    Reference:
        Radenović, Tolias & Chum, TPAMI 2018, section 3.3 (hard-negative mining).

    Examples:
        >>> x = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
        >>> hardest_negatives(x, ["a", "b", "b", "c"], 2).tolist()  # for 0: items 1 and 2 are both "b"
        [[1, 3], [0, 3], [3, 0], [2, 0]]
    """
    descriptors = np.asarray(descriptors, dtype=np.float32)
    labels = np.asarray(labels)
    if descriptors.ndim != 2 or len(descriptors) != len(labels):
        raise ValueError(f"descriptors must be (n, D) with one label per row; got {descriptors.shape} and {len(labels)} labels")
    n_labels = len(np.unique(labels))
    if isinstance(n_negatives, bool) or int(n_negatives) != n_negatives or not 1 <= n_negatives <= n_labels - 1:
        raise ValueError(f"n_negatives must be an integer in 1..{n_labels - 1} (the other labels), got {n_negatives!r}")
    order = np.argsort(-(descriptors @ descriptors.T), axis=1, kind="stable")
    negatives = np.empty((len(labels), int(n_negatives)), dtype=np.int64)
    for i, row in enumerate(order):
        seen = {labels[i]}
        found = 0
        for j in row:
            if labels[j] not in seen:
                seen.add(labels[j])
                negatives[i, found] = j
                found += 1
                if found == n_negatives:
                    break
    return negatives


def negative_distances(descriptors: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """The distance ‖x_i − x_n‖ from each item to each of its negatives: what the contrastive loss's margin acts on.

    Args:
        descriptors: (n, D) L2-normalised.
        negatives: (n, N) indices (:func:`hardest_negatives`, :func:`random_negatives`).

    Returns:
        (n, N) distances, in [0, 2].

    Examples:
        >>> negative_distances(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1], [0]])).round(4).tolist()
        [[1.4142], [1.4142]]
    """
    descriptors = np.asarray(descriptors, dtype=np.float64)
    negatives = np.asarray(negatives)
    return np.linalg.norm(descriptors[:, None, :] - descriptors[negatives], axis=-1)


def random_negatives(labels: Sequence, n_negatives: int, rng: np.random.Generator) -> np.ndarray:
    """For each item, ``n_negatives`` items of other labels drawn at random, at most one per label:
    the baseline that shows why mining matters (most random negatives are already far, and teach nothing).

    Returns:
        (n, N) int64 indices.
    """
    labels = np.asarray(labels)
    unique = np.unique(labels)
    if isinstance(n_negatives, bool) or int(n_negatives) != n_negatives or not 1 <= n_negatives <= len(unique) - 1:
        raise ValueError(f"n_negatives must be an integer in 1..{len(unique) - 1} (the other labels), got {n_negatives!r}")
    negatives = np.empty((len(labels), int(n_negatives)), dtype=np.int64)
    for i, label in enumerate(labels):
        chosen = rng.choice(unique[unique != label], size=int(n_negatives), replace=False)
        negatives[i] = [rng.choice(np.flatnonzero(labels == c)) for c in chosen]
    return negatives


# ----- losses ------------------------------------------------------------------------------------

def contrastive_loss(anchors: torch.Tensor, others: torch.Tensor, is_match: torch.Tensor, margin: float = 0.7) -> torch.Tensor:
    r"""The contrastive loss of pairs of L2-normalised descriptors, summed over the pairs (as cirtorch).

    .. math:: L = \sum_{\text{pairs}} \tfrac12\, y\, d^2 + \tfrac12\, (1 - y) \max(0, \tau - d)^2,
              \qquad d = \lVert a - o \rVert

    A matching pair (y = 1) is pulled together; a non-matching one is pushed apart until
    it is at least τ away, and then left alone.

    Args:
        anchors, others: (..., D) descriptors, paired element by element.
        is_match: (...) 1 for a matching pair, 0 for a non-matching one.
        margin: τ > 0 (cirtorch's default 0.7).

    Returns:
        The loss, a 0-d tensor.

    Reference:
        Hadsell, Chopra & LeCun, CVPR 2006; Radenović, Tolias & Chum, TPAMI 2018 (eq. 3).

    Examples:
        >>> a = torch.tensor([[1.0, 0.0], [1.0, 0.0]]); o = torch.tensor([[0.6, 0.8], [0.6, 0.8]])
        >>> contrastive_loss(a, o, torch.tensor([1.0, 0.0]), margin=1.0)  # d² = 0.8: ½·0.8 + ½·(1 − √0.8)²
        tensor(0.4056)
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin!r}")
    distance = (anchors - others).pow(2).sum(dim=-1).clamp_min(1e-12).sqrt()
    y = is_match.to(distance.dtype)
    return (0.5 * y * distance.pow(2) + 0.5 * (1 - y) * (margin - distance).clamp_min(0).pow(2)).sum()


def triplet_loss(anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    r"""The triplet (ranking) loss on squared distances, summed over the triplets (as cirtorch).

    .. math:: L = \sum \max\big(0,\ \lVert a - p \rVert^2 - \lVert a - n \rVert^2 + m\big)

    Unlike the contrastive loss it asks only that each positive be nearer than each
    negative, by m; how near, it does not care.

    Args:
        anchors, positives: (T, D) descriptors; negatives: (T, N, D), N negatives per anchor.
        margin: m > 0 (cirtorch's default 0.1).

    Returns:
        The loss, a 0-d tensor.

    Reference:
        Gordo et al., IJCV 2017 (eq. 1); Schroff, Kalenichenko & Philbin, CVPR 2015.

    Examples:
        >>> a = torch.tensor([[1.0, 0.0]]); p = torch.tensor([[0.6, 0.8]]); n = torch.tensor([[[0.0, 1.0]]])
        >>> triplet_loss(a, p, n, margin=0.5)  # max(0, 0.8 − 2 + 0.5)
        tensor(0.)
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin!r}")
    positive = (anchors - positives).pow(2).sum(dim=-1)
    negative = (anchors.unsqueeze(1) - negatives).pow(2).sum(dim=-1)
    return (positive.unsqueeze(1) - negative + margin).clamp_min(0).sum()


# ----- the model and its training ----------------------------------------------------------------

class DescriptorModel(nn.Module):
    """Trainable layers, then a :class:`~cbir_lab.heads.DescriptorHead`: maps of a frozen layer → descriptors.

    Args:
        tail: the backbone's layers above the frozen ones (:func:`cbir_lab.backbones.backbone_tail`),
            or ``nn.Identity()`` to train the head alone.
        head: the head (default: GeM with p = 3, learnable, then L2).

    Examples:
        >>> model = DescriptorModel(nn.Identity())
        >>> model(torch.ones(2, 3, 4, 4)).shape, round(model.p, 1)
        (torch.Size([2, 3]), 3.0)
    """

    def __init__(self, tail: nn.Module, head: DescriptorHead | None = None) -> None:
        super().__init__()
        self.tail = tail
        self.head = head if head is not None else DescriptorHead(GeM(p=3.0))

    @property
    def p(self) -> float:
        """GeM's power now (``nan`` for another pooling)."""
        pool = self.head.pool
        return float(pool.p.detach()) if isinstance(pool, GeM) else math.nan

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.head(self.tail(maps))

    def with_whitening(self, whitening, n_components: int | None = None) -> "DescriptorModel":
        """A copy of this model whose head ends with ``whitening`` (a fitted :class:`~cbir_lab.whitening.PCAWhitening`
        or :class:`~cbir_lab.whitening.LearnedWhitening`) as a linear layer: what a search then uses."""
        import copy

        pool = copy.deepcopy(self.head.pool)
        return DescriptorModel(copy.deepcopy(self.tail), DescriptorHead.from_whitening(pool, whitening, n_components))


def _forward(model: nn.Module, maps: Sequence[torch.Tensor], indices: Sequence[int], batch_size: int = 256) -> torch.Tensor:
    """``model`` on ``maps[i]`` for each i of ``indices``, (len(indices), d): maps of one size run as one batch
    (padding would change them), and the rows come back in the order of ``indices``."""
    by_size: dict[tuple[int, ...], list[int]] = {}
    for position, i in enumerate(indices):
        by_size.setdefault(tuple(maps[i].shape), []).append(position)
    rows: list[torch.Tensor | None] = [None] * len(indices)
    for positions in by_size.values():
        for start in range(0, len(positions), batch_size):
            chunk = positions[start : start + batch_size]
            for position, row in zip(chunk, model(torch.stack([maps[indices[p]] for p in chunk]))):
                rows[position] = row
    return torch.stack(rows)


def describe_maps(model: nn.Module, maps: Sequence[torch.Tensor], batch_size: int = 64) -> np.ndarray:
    """Descriptors of maps (C, H, W) of any sizes, in eval mode and without gradients.

    Returns:
        (n, d) float32, in the order of ``maps``.
    """
    if len(maps) == 0:
        raise ValueError("describe_maps needs at least one map")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = _forward(model, maps, range(len(maps)), batch_size).numpy().astype(np.float32)
    model.train(was_training)
    return out


@dataclass(frozen=True)
class TrainingSettings:
    """How :func:`train_descriptor` trains (defaults: lesson 9's, chosen on validation objects).

    Attributes:
        epochs: passes over the training images (each image is a query once per epoch).
        lr: Adam's learning rate for the trainable layers (weight decay ``weight_decay``).
        p_lr: the learning rate of GeM's p (no weight decay), as cirtorch gives the pooling its own.
        loss: ``"contrastive"`` (margin ``margin``) or ``"triplet"`` (margin ``triplet_margin``).
        negatives: ``"hard"`` (mined each epoch) or ``"random"``.
        n_negatives: N negatives per tuple.
        tuples_per_step: tuples per optimiser step.
        seed: seeds the tuples and torch, so that a rerun gives the same numbers.
    """

    epochs: int = 6
    lr: float = 3e-4
    p_lr: float = 1e-2
    weight_decay: float = 1e-6
    loss: str = "contrastive"
    margin: float = 0.7
    triplet_margin: float = 0.1
    negatives: str = "hard"
    n_negatives: int = 5
    tuples_per_step: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in ("contrastive", "triplet"):
            raise ValueError(f"loss must be 'contrastive' or 'triplet', got {self.loss!r}")
        if self.negatives not in ("hard", "random"):
            raise ValueError(f"negatives must be 'hard' or 'random', got {self.negatives!r}")
        for name in ("epochs", "n_negatives", "tuples_per_step"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lr", "p_lr", "margin", "triplet_margin"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")

    @classmethod
    def for_lesson(cls, **changes) -> "TrainingSettings":
        """The lesson's settings; with ``CBIR_LAB_QUICK_TRAINING=1`` (nbval, CI) the quick ones: one epoch."""
        quick = os.environ.get(QUICK_ENV, "").strip() not in ("", "0")
        return replace(cls(epochs=1) if quick else cls(), **changes)


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of training: its mean loss per tuple, GeM's p after it, the validation score, the time."""

    epoch: int
    loss: float
    p: float
    validation: float | None
    seconds: float


@dataclass(frozen=True)
class TrainingRun:
    """What :func:`train_descriptor` returns: the settings, the score before training, and one record per epoch."""

    settings: TrainingSettings
    before: float | None
    history: tuple[EpochRecord, ...] = field(default_factory=tuple)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.history)


def _tuple_loss(out: torch.Tensor, settings: TrainingSettings) -> torch.Tensor:
    anchors, positives, negatives = out[:, 0], out[:, 1], out[:, 2:]
    if settings.loss == "triplet":
        return triplet_loss(anchors, positives, negatives, settings.triplet_margin)
    others = out[:, 1:]
    is_match = torch.zeros(others.shape[:2])
    is_match[:, 0] = 1
    return contrastive_loss(anchors.unsqueeze(1).expand_as(others), others, is_match, settings.margin)


def train_descriptor(
    model: DescriptorModel,
    maps: Sequence[torch.Tensor],
    labels: Sequence,
    settings: TrainingSettings = TrainingSettings(),
    validate: Callable[[DescriptorModel], float] | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    progress: bool | None = None,
) -> TrainingRun:
    """Train ``model`` in place on tuples (query, positive, N negatives) of labelled maps.

    Each epoch: describe every training image with the current model; for each image as the
    query, draw a positive of its label and choose N negatives (the hardest, one per other
    label, or random ones); then step Adam over the tuples in a seeded order.

    Args:
        model: the model to train (its ``tail`` and its head's GeM p are trained).
        maps: the training images' maps of the frozen layer, (C, H, W) each (maps of one size run as a batch).
        labels: (n,) the object of each image; each needs at least two images.
        settings: see :class:`TrainingSettings`.
        validate: scores the model on held-out validation objects (e.g. mAP); called before
            training and after each epoch.
        on_epoch: called with each :class:`EpochRecord` (a live plot).
        progress: show a tqdm bar over the steps (default: yes).

    Returns:
        The :class:`TrainingRun`.
    """
    labels = np.asarray(labels)
    if len(maps) != len(labels):
        raise ValueError(f"{len(maps)} maps but {len(labels)} labels")
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    maps = list(maps)
    pool_params = list(model.head.pool.parameters())
    pool_ids = {id(p) for p in pool_params}
    other_params = [p for p in model.parameters() if id(p) not in pool_ids]
    optimiser = torch.optim.Adam([
        {"params": other_params, "lr": settings.lr, "weight_decay": settings.weight_decay},
        {"params": pool_params, "lr": settings.p_lr, "weight_decay": 0.0},
    ])
    before = validate(model) if validate is not None else None
    from tqdm.auto import tqdm

    steps = math.ceil(len(labels) / settings.tuples_per_step)
    history: list[EpochRecord] = []
    with tqdm(total=settings.epochs * steps, desc="training", unit="step", disable=progress is False) as bar:
        for epoch in range(1, settings.epochs + 1):
            start = time.perf_counter()
            positives = random_positives(labels, rng)
            if settings.negatives == "hard":
                negatives = hardest_negatives(describe_maps(model, maps), labels, settings.n_negatives)
            else:
                negatives = random_negatives(labels, settings.n_negatives, rng)
            tuples = np.column_stack([np.arange(len(labels)), positives, negatives])[rng.permutation(len(labels))]
            model.train()
            total = 0.0
            for s in range(0, len(tuples), settings.tuples_per_step):
                chunk = tuples[s : s + settings.tuples_per_step]
                out = _forward(model, maps, chunk.reshape(-1).tolist()).view(len(chunk), chunk.shape[1], -1)
                loss = _tuple_loss(out, settings)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach())
                bar.update(1)
            model.eval()
            score = validate(model) if validate is not None else None
            record = EpochRecord(epoch, total / len(tuples), model.p, score, time.perf_counter() - start)
            history.append(record)
            bar.set_postfix(loss=f"{record.loss:.4f}", p=f"{record.p:.2f}",
                            **({} if score is None else {"val": f"{score:.3f}"}))
            if on_epoch is not None:
                on_epoch(record)
    return TrainingRun(settings, before, tuple(history))
