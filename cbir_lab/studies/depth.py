"""Conv against FC descriptors: pooled maps at several depths of a network beside its fully connected outputs.

* :func:`score_descriptors` scores any descriptors of a dataset as a table row.
* :func:`depth_comparison` pools maps at several depths of a network and sets them
  beside its own fully connected outputs (lesson 5).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cbir_lab.evaluation import score
from cbir_lab.pipeline import global_descriptors
from cbir_lab.pooling import GEM, SPOC, Pooling
from cbir_lab.search import rank
from cbir_lab.studies.methods import MethodScore, scored_row
from cbir_lab.whitening import l2n

__all__ = ["score_descriptors", "depth_comparison"]


def score_descriptors(name: str, dataset, query_vecs: np.ndarray, db_vecs: np.ndarray) -> MethodScore:
    """Any descriptors of a dataset's queries and database, ranked and scored as one table row.

    Args:
        name: the row's label.
        dataset: the :class:`~cbir_lab.datasets.base.RetrievalDataset` (with ground truth).
        query_vecs, db_vecs: (n_q, D) and (n_db, D), L2-normalised.

    Returns:
        A :class:`~cbir_lab.studies.methods.MethodScore` (not whitened, no QE) with the protocol's scores and per-query APs.
    """
    if not dataset.has_ground_truth:
        raise ValueError(f"dataset {dataset.name!r} has no ground truth: nothing to score")
    result = score(rank(query_vecs, db_vecs), dataset)
    return scored_row(dataset, name, np.asarray(db_vecs).shape[1], result.scores, result.aps)


def depth_comparison(
    dataset,
    backbone: str = "efficientnet_lite0",
    layers: Sequence[str] | None = None,
    poolings: Sequence[Pooling | str] = (SPOC, GEM),
    heads: bool = True,
    max_side: int = 384,
    weights: str | None = "imagenet",
    progress: bool | None = False,
) -> list[MethodScore]:
    """Pooled conv maps at several depths of a network, and its own fully connected outputs, on one dataset.

    Before pooled conv maps, retrieval used a classification network's fully
    connected layers as descriptors (Razavian et al. 2014; Babenko et al.'s "Neural
    Codes", 2014: VGG's fc6 and fc7). EfficientNet-Lite0 has a single fully connected
    layer, the classifier; its only input is the global average pool of ``conv_head``,
    that is SPoC, so its 1000 class logits are SPoC seen through a classification layer.

    Args:
        dataset: the dataset (queries are cropped to their boxes, as usual).
        backbone: the network.
        layers: the conv layers to pool (default: the last four the backbone offers).
        poolings: how to pool each of them.
        heads: also score the network's fully connected outputs
            (:attr:`cbir_lab.backbones.Backbone.heads` after its default layer).
        max_side: the long side fed to the network.
        weights: ``"imagenet"``, or ``None`` for random weights (tests).
        progress: show extraction progress bars.

    Returns:
        One :class:`~cbir_lab.studies.methods.MethodScore` per (layer, pooling), named ``"<layer> <pooling>"``, then
        one per head, named ``"<head> (FC, <dim>-D)"``; L2-normalised, no whitening.
    """
    from dataclasses import replace

    from cbir_lab.backbones import available_backbones, load_backbone
    from cbir_lab.pipeline import extract_dataset

    spec = available_backbones()[backbone]
    layers = list(spec.layers)[-4:] if layers is None else list(layers)
    searched = replace(dataset, train_images=())  # nothing here is whitened: no training maps needed
    rows = []
    for layer in layers:
        net = load_backbone(backbone, layer=layer, weights=weights)
        features = extract_dataset(searched, net, max_side=max_side, cache=weights is not None, progress=progress)
        for pooling in map(Pooling.parse, poolings):
            q, db = global_descriptors(features, pooling)
            rows.append(score_descriptors(f"{layer} {pooling.name}", dataset, q, db))
        if heads and layer == spec.default_layer and net.heads:
            outputs = {part: [net.head_outputs(m.unsqueeze(0)) for m in features.maps(part)] for part in ("query", "db")}
            for head in net.heads:
                q, db = (l2n(np.concatenate([o[head].numpy() for o in outputs[part]])) for part in ("query", "db"))
                rows.append(score_descriptors(f"{head} (FC, {q.shape[1]}-D)", dataset, q.astype(np.float32),
                                              db.astype(np.float32)))
    return rows
