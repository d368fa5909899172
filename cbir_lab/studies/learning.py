"""Lesson 9's study: a descriptor fine-tuned on some objects, tested on others, on landmarks and on the embedded set.

* :func:`learning_dataset`: ETH-80 when its photos are on disk, else the embedded set (and how to get ETH-80).
* :func:`learning_split`: a dataset cut by object into training, validation and held-out
  test objects, with the frozen layer's maps of each (extracted once, cached).
* :func:`train_or_load`: the lesson's training run, or the model it saved before (settings and
  checksum checked), under the cache: :mod:`cbir_lab.trained_heads`.
* :func:`fixed_p_scores`: the off-the-shelf network at several fixed GeM powers (lesson 2's sweep).
* :func:`headline_test_sets`: the held-out objects, ``rparis6k-slice`` when present, the embedded set.
* :func:`frozen_maps`: any dataset's queries and database as maps of the frozen layer.
* :func:`off_the_shelf_model`: the ImageNet network's own layers above the frozen one, and GeM (p = 3).
* :func:`validation_score`: the headline score of a model on a test set (training's live curve).
* :func:`whitening_choices`: PCA-whitening and the learned whitening (Lw) at several d, scored on
  the validation objects, so that d is chosen without looking at the test objects.
* :func:`descriptor_table`: off-the-shelf, PCA-whitened, Lw-whitened and fine-tuned (with and without
  Lw) descriptors on each test set, as rows with per-query APs and clusters for
  :func:`cbir_lab.studies.real_photos.evidence_table`.

Reference:
    Radenović, Tolias & Chum, "Fine-tuning CNN image retrieval with no human annotation", TPAMI 2018.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cbir_lab.backbones import Backbone, backbone_tail, load_backbone
from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.datasets.real_photos import how_to_get, present_real_dataset
from cbir_lab.features import extract_feature_maps
from cbir_lab.heads import DescriptorHead, GeM
from cbir_lab.learning import (DescriptorModel, EpochRecord, TrainingRun, TrainingSettings, describe_maps,
                               instance_split, train_descriptor)
from cbir_lab.trained_heads import load_trained_model, save_trained_model, trained_model_path
from cbir_lab.studies.depth import score_descriptors
from cbir_lab.studies.methods import MethodScore
from cbir_lab.whitening import LearnedWhitening, PCAWhitening

__all__ = ["FROZEN_LAYER", "FrozenMaps", "LearningSplit", "learning_dataset", "frozen_maps", "learning_split",
           "off_the_shelf_model", "validation_score", "fixed_p_scores", "train_or_load", "whitening_choices",
           "lw_dimension_aps",
           "headline_test_sets", "descriptor_table"]

#: The deepest layer kept frozen: EfficientNet-Lite0's last block and head convolution above it are trained.
FROZEN_LAYER = "blocks.5"


@dataclass
class FrozenMaps:
    """A dataset with the frozen layer's maps of its queries (cropped to their boxes) and database images."""

    dataset: RetrievalDataset
    query_maps: list[torch.Tensor]
    db_maps: list[torch.Tensor]

    def descriptors(self, model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
        """(queries (n_q, d), database (n_db, d)) under ``model``."""
        return describe_maps(model, self.query_maps), describe_maps(model, self.db_maps)


@dataclass
class LearningSplit:
    """A dataset cut by object: training images (with their objects), validation and test objects.

    Attributes:
        train_maps, train_labels: the training objects' database images and their object.
        validation: the validation objects (chosen from the training half: settings are chosen on them).
        test: the held-out objects, seen once, at the end.
        trunk: the frozen network (cut at :data:`FROZEN_LAYER`); network: the whole one.
    """

    dataset: RetrievalDataset
    train: RetrievalDataset
    train_maps: list[torch.Tensor]
    train_labels: np.ndarray
    validation: FrozenMaps
    test: FrozenMaps
    trunk: Backbone
    network: Backbone

    def summary(self) -> str:
        unit = self.dataset.cluster_unit
        count = lambda d: len(set(d.query_clusters))  # noqa: E731
        return (f"{self.dataset.name}: {count(self.train)} training {unit} ({len(self.train_maps)} images), "
                f"{count(self.validation.dataset)} validation {unit}, {count(self.test.dataset)} held-out test {unit} "
                f"({self.test.dataset.n_queries} queries, {self.test.dataset.n_db} database images)")


def learning_dataset(root=None, quiet: bool = False) -> RetrievalDataset:
    """ETH-80 (80 objects, 5 views each) when its photos are on disk; otherwise the embedded set, saying so.

    Nothing is downloaded: the lesson runs offline. The embedded set's 12 source photos are far too few
    to learn from; it keeps the code running, and the stored outputs show the ETH-80 run.
    """
    from cbir_lab.datasets import load_dataset

    dataset = present_real_dataset("eth80", root)
    if dataset is not None:
        return dataset
    if not quiet:
        print(how_to_get("eth80", "so this run learns on the embedded set instead (12 source photos: too few to "
                                  "learn from; the stored outputs show the ETH-80 run)"))
    return load_dataset("embedded")


def frozen_maps(dataset: RetrievalDataset, trunk: Backbone, progress: bool | None = None) -> FrozenMaps:
    """The frozen layer's maps of ``dataset``'s queries and database, at the dataset's own max side (cached)."""
    maps = extract_feature_maps(dataset.queries() + list(dataset.db_images), trunk, max_side=dataset.max_side,
                                progress=progress)
    return FrozenMaps(dataset, maps[: dataset.n_queries], maps[dataset.n_queries:])


def learning_split(dataset: RetrievalDataset, backbone: str = "efficientnet_lite0", frozen: str = FROZEN_LAYER,
                   seed: int = 0, progress: bool | None = None) -> LearningSplit:
    """Cut ``dataset`` by object: half the objects held out for testing, half of the rest for validation.

    Args:
        dataset: a dataset whose queries have clusters (objects) and whose database images have
            groups (their object): ETH-80, or the embedded set (source photos).
        backbone: the network.
        frozen: the deepest frozen layer.
        seed: the order of objects within each category (:func:`cbir_lab.learning.instance_split`).
        progress: show extraction progress bars.

    Returns:
        The :class:`LearningSplit`.
    """
    if dataset.groups is None:
        raise ValueError(f"dataset {dataset.name!r} has no database groups: which object each image shows is unknown")
    trunk = load_backbone(backbone, layer=frozen)
    network = load_backbone(backbone)
    kept, test = instance_split(dataset, every=2, seed=seed)
    train, validation = instance_split(kept, every=2, seed=seed)
    train_maps = extract_feature_maps(list(train.db_images), trunk, max_side=dataset.max_side, progress=progress)
    return LearningSplit(dataset, train, train_maps, np.asarray(train.groups), frozen_maps(validation, trunk, progress),
                         frozen_maps(test, trunk, progress), trunk, network)


def off_the_shelf_model(split: LearningSplit, p: float = 3.0) -> DescriptorModel:
    """The ImageNet network's layers above the frozen one, then GeM (p, learnable) and L2: training's starting point."""
    return DescriptorModel(backbone_tail(split.network, split.trunk.layer), DescriptorHead(GeM(p=p)))


def validation_score(model: torch.nn.Module, data: FrozenMaps) -> float:
    """The headline score (mAP, Medium mAP) of ``model``'s descriptors on ``data``."""
    queries, db = data.descriptors(model)
    return float(score_descriptors("model", data.dataset, queries, db).scores[_headline_key(data.dataset)])


def fixed_p_scores(split: LearningSplit, powers: Sequence[float] = (1.0, 2.0, 3.0, 4.0, 6.0)) -> dict[float, float]:
    """The off-the-shelf network with GeM at each fixed p, scored on the validation objects (lesson 2's sweep)."""
    return {float(p): validation_score(off_the_shelf_model(split, p), split.validation) for p in powers}


def _run_from_info(info: dict) -> TrainingRun:
    settings = TrainingSettings(**info["settings"]) if info.get("settings") else TrainingSettings()
    return TrainingRun(settings, info.get("before"), tuple(EpochRecord(**r) for r in info.get("history", [])))


def train_or_load(split: LearningSplit, settings: TrainingSettings, name: str = "lesson09", on_epoch=None,
                  progress: bool | None = None) -> tuple[DescriptorModel, TrainingRun, Path]:
    """Fine-tune the off-the-shelf model on the split's training objects, or reload the model a run with the
    same settings on the same images saved before.

    The model is saved under the cache (:func:`cbir_lab.trained_heads.trained_model_path`: its name
    hashes the settings, the backbone, the frozen layer and the training images), with its settings,
    history and checksum; the validation objects give the curve.

    Returns:
        (the model in eval mode, the run (reloaded: its stored history, each record passed to ``on_epoch``
        as training would), the model's ``.pt`` file).
    """
    path = trained_model_path(name, settings=asdict(settings), backbone=split.network.name,
                              frozen=split.trunk.layer, images=[p.name for p in split.train.db_images])
    if path.exists():
        try:
            model, info = load_trained_model(path)
            run = _run_from_info(info)
            for record in run.history if on_epoch is not None else ():  # the saved run's curves, as they were drawn
                on_epoch(record)
            return model, run, path
        except (OSError, ValueError) as problem:
            print(f"The saved model cannot be used ({problem}); training again.")
    model = off_the_shelf_model(split)
    run = train_descriptor(model, split.train_maps, split.train_labels, settings,
                           validate=lambda m: validation_score(m, split.validation), on_epoch=on_epoch, progress=progress)
    save_trained_model(model, path, backbone=split.network.name, frozen_layer=split.trunk.layer,
                       trained_on=split.summary(), run=run)
    return model.eval(), run, path


def headline_test_sets(split: LearningSplit, root=None, progress: bool | None = None) -> dict[str, FrozenMaps]:
    """The test sets of the lesson's headline: the held-out objects, ``rparis6k-slice`` (when on disk),
    and the embedded set (when it is not what the model was trained on)."""
    from cbir_lab.datasets import load_dataset

    sets = {f"held-out {split.dataset.cluster_unit} of {split.dataset.name}": split.test}
    paris = present_real_dataset("rparis6k-slice", root)
    if paris is not None:
        sets["rparis6k-slice"] = frozen_maps(paris, split.trunk, progress)
    if split.dataset.name != "embedded":
        sets["embedded"] = frozen_maps(load_dataset("embedded"), split.trunk, progress)
    return sets


def _headline_key(dataset: RetrievalDataset) -> str:
    return "medium" if dataset.protocol == "revisited" else "mAP"


def _fit_whitening(kind: str, train: np.ndarray, labels: np.ndarray, dim: int, shrinkage: float):
    if kind == "PCA":
        return PCAWhitening(n_components=dim).fit(train)
    return LearnedWhitening(n_components=dim, shrinkage=shrinkage).fit(train, labels)


def whitening_choices(model: torch.nn.Module, split: LearningSplit, dims: Sequence[int] = (16, 32, 64, 96),
                      shrinkage: float = 0.1) -> dict[str, dict[int, float]]:
    """PCA-whitening and Lw learned on the training objects, scored on the validation objects at each d.

    A d above n_train − 1 is left out: n training images span at most n − 1 directions for PCA.

    Returns:
        ``{"PCA": {d: score}, "Lw": {d: score}}`` (headline scores on the validation objects).
    """
    train = describe_maps(model, split.train_maps)
    dims = [int(d) for d in dims if d <= len(train) - 1]
    if not dims:
        raise ValueError(f"every d is above what {len(train)} training images allow (at most {len(train) - 1})")
    queries, db = split.validation.descriptors(model)
    key = _headline_key(split.validation.dataset)
    out: dict[str, dict[int, float]] = {}
    for kind in ("PCA", "Lw"):
        out[kind] = {}
        for dim in dims:
            whitening = _fit_whitening(kind, train, split.train_labels, dim, shrinkage)
            row = score_descriptors(kind, split.validation.dataset, whitening.transform(queries), whitening.transform(db))
            out[kind][int(dim)] = float(row.scores[key])
    return out


def lw_dimension_aps(model: torch.nn.Module, split: LearningSplit, dims: Sequence[int] = (16, 32, 64, 96),
                     shrinkage: float = 0.1) -> tuple[list[int], list[np.ndarray], tuple[str, ...]]:
    """Lw learned on the training objects at each d: the validation queries' APs, for choosing d with intervals.

    Returns:
        (the dims kept (at most n_train − 1), per d the validation queries' APs, each query's object) — what
        :func:`cbir_lab.exercises.choice_case` takes.
    """
    train = describe_maps(model, split.train_maps)
    queries, db = split.validation.descriptors(model)
    dims = [int(d) for d in dims if d <= len(train) - 1]
    aps = [score_descriptors("Lw", split.validation.dataset, *(w.transform(x) for x in (queries, db))).aps
           for w in (_fit_whitening("Lw", train, split.train_labels, d, shrinkage) for d in dims)]
    return dims, aps, split.validation.dataset.clusters()


def descriptor_table(off_the_shelf: torch.nn.Module, fine_tuned: torch.nn.Module, split: LearningSplit,
                     test_sets: dict[str, FrozenMaps], dim: int, shrinkage: float = 0.1) -> dict[str, list[MethodScore]]:
    """The lesson's headline: each descriptor on each test set, every whitening learned on the training objects.

    Rows, in order: off-the-shelf GeM; off-the-shelf + PCA-whitening; off-the-shelf + Lw;
    fine-tuned GeM; fine-tuned + Lw (refitted on the fine-tuned descriptors). No whitening
    ever sees a test image.

    Args:
        off_the_shelf, fine_tuned: descriptor models of the frozen layer's maps.
        split: the training objects (for the whitenings).
        test_sets: name → :class:`FrozenMaps` (e.g. the held-out objects, ``rparis6k-slice``, the embedded set).
        dim: the whitenings' d (chosen on the validation objects, :func:`whitening_choices`).
        shrinkage: Lw's shrinkage.

    Returns:
        test-set name → rows (:class:`~cbir_lab.studies.methods.MethodScore`, with the test set's clusters).
    """
    train = {"off": describe_maps(off_the_shelf, split.train_maps), "tuned": describe_maps(fine_tuned, split.train_maps)}
    fitted = {
        "PCA": _fit_whitening("PCA", train["off"], split.train_labels, dim, shrinkage),
        "Lw": _fit_whitening("Lw", train["off"], split.train_labels, dim, shrinkage),
        "tuned Lw": _fit_whitening("Lw", train["tuned"], split.train_labels, dim, shrinkage),
    }
    tables = {}
    for name, data in test_sets.items():
        off_q, off_db = data.descriptors(off_the_shelf)
        tuned_q, tuned_db = data.descriptors(fine_tuned)

        def whitened(label: str, whitening, queries: np.ndarray, db: np.ndarray) -> MethodScore:
            row = score_descriptors(label, data.dataset, whitening.transform(queries), whitening.transform(db))
            return replace(row, whitened=True)

        tables[name] = [
            score_descriptors("off-the-shelf GeM", data.dataset, off_q, off_db),
            whitened(f"off-the-shelf GeM → PCA-w (d={dim})", fitted["PCA"], off_q, off_db),
            whitened(f"off-the-shelf GeM → Lw (d={dim})", fitted["Lw"], off_q, off_db),
            score_descriptors("fine-tuned GeM", data.dataset, tuned_q, tuned_db),
            whitened(f"fine-tuned GeM → Lw (d={dim})", fitted["tuned Lw"], tuned_q, tuned_db),
        ]
    return tables

