"""Vocabulary encodings (lesson 7): VLAD, FV and TE against SPoC, and the visual words of one map.

* :func:`encoding_comparison`: SPoC against encodings of the same features, all
  PCA-whitened to the same d, with paired intervals.
* :func:`learn_word_vocabularies`: one local PCA and k-means vocabularies of several
  sizes (:class:`WordVocabularies`), learned as :func:`cbir_lab.pipeline.encode_dataset`
  learns its own; :func:`visual_words`: which word each cell of a map falls in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from cbir_lab import aggregation, encodings
from cbir_lab._array import as_feature_map
from cbir_lab.evaluation import Interval, compute_map
from cbir_lab.index import RetrievalIndex
from cbir_lab.pipeline import learn_local_pca
from cbir_lab.pooling import SPOC, Pooling
from cbir_lab.search import rank
from cbir_lab.studies.methods import MethodScore, interval_vs, scored_row
from cbir_lab.whitening import PCAWhitening

__all__ = ["encoding_comparison", "WordVocabularies", "learn_word_vocabularies", "visual_words"]


def encoding_comparison(
    index: RetrievalIndex,
    encodings: Sequence,
    dims: Sequence[int] = (32, 64, 128),
    part: str = "train",
    pooling: Pooling | str = SPOC,
) -> tuple[list[MethodScore], dict[str, Interval]]:
    """SPoC against vocabulary encodings, all PCA-whitened to the same d, with paired intervals.

    The comparison of Babenko & Lempitsky (2015): every descriptor is reduced by
    PCA-whitening learned on ``part`` (never the test set) to each d of ``dims``
    (those above what ``part`` allows are left out; its largest d is added last),
    then ranked and scored.

    Args:
        index: the :class:`~cbir_lab.index.RetrievalIndex` of the features the encodings come from.
        encodings: :class:`~cbir_lab.pipeline.EncodedFeatures`, e.g. VLAD, FV and TE.
        dims: the whitened dimensions.
        part: what the whitenings are learned on (``"train"`` or a whitening set).
        pooling: the pooling compared with (SPoC).

    Returns:
        (rows, intervals): per d, the pooling's row then each encoding's, named
        ``"<name> @<d>"``, scored by the headline mAP; and each encoding row's label
        → the paired 95 % interval of (encoding − pooling) at the same d.
    """
    pooling = Pooling.parse(pooling)
    for encoded in encodings:
        if part not in encoded.vectors:
            raise ValueError(f"{encoded.name} has no vectors for part {part!r}; encode the features that carry it")
    whitenings = {encoded.name: PCAWhitening().fit(encoded.vectors[part]) for encoded in encodings}
    top = min([index.max_dim(pooling, part), *(w.n_components_ for w in whitenings.values())])
    rows, intervals = [], {}
    for d in [d for d in dims if d < top] + [top]:
        base_aps = index.whitened_aps(pooling, d, 0.5, part)
        rows.append(scored_row(index.dataset, f"{pooling.name} @{d}", d, {"mAP": float(np.nanmean(base_aps))}, base_aps,
                               True))
        for encoded in encodings:
            whitening = whitenings[encoded.name]
            q, db = (whitening.at(d).transform(encoded.vectors[p]) for p in ("query", "db"))
            aps = compute_map(rank(q, db), index.scored_gnd()).aps
            row = scored_row(index.dataset, f"{encoded.name} @{d}", d, {"mAP": float(np.nanmean(aps))}, aps, True)
            rows.append(row)
            intervals[row.setting_label] = interval_vs(aps, base_aps, index.dataset)
    return rows, intervals


@dataclass(frozen=True)
class WordVocabularies:
    """k-means vocabularies of several sizes over one local PCA, learned once (lesson 7's explorer).

    Attributes:
        local_pca: reduces a map's local descriptors before they meet a vocabulary.
        centroids: k → (k, d) centroids.
    """

    local_pca: "aggregation.LocalPCA"
    centroids: dict[int, np.ndarray]


def learn_word_vocabularies(train_maps: Sequence, ks: Sequence[int] = (4, 8, 16, 32, 64), local_dim: int = 32,
                            per_image: int = 50, seed: int = 0, n_init: int = 1) -> WordVocabularies:
    """A local PCA and one k-means vocabulary per k, all learned on training maps (never test images).

    The local PCA is :func:`cbir_lab.pipeline.learn_local_pca`'s, as :func:`cbir_lab.pipeline.encode_dataset`
    learns it; only the vocabularies differ (one per k, k-means only).

    Args:
        train_maps: feature maps (C, H, W) of the training images.
        ks: the vocabulary sizes.
        local_dim: the local PCA's dimension.
        per_image: local descriptors sampled per map.
        seed: for the sample and k-means.
        n_init: k-means restarts per vocabulary (one keeps a widget quick to build).
    """
    pca, reduced = learn_local_pca(train_maps, local_dim, per_image, seed)
    return WordVocabularies(pca, {int(k): aggregation.KMeansVocabulary(int(k), seed=seed, n_init=n_init).fit(reduced).centroids_
                                  for k in ks})


def visual_words(feature_map, vocabularies: WordVocabularies, k: int, intra: bool = False,
                 power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Which visual word each cell of a map falls in, and the VLAD blocks those cells make.

    Args:
        feature_map: (C, H, W).
        vocabularies: from :func:`learn_word_vocabularies`.
        k: which vocabulary.
        intra, power: VLAD's normalisations (:func:`cbir_lab.encodings.vlad_blocks`).

    Returns:
        (words (H, W) int64, blocks (k, d) float32).
    """
    if k not in vocabularies.centroids:
        raise ValueError(f"no vocabulary of size {k}; learned: {sorted(vocabularies.centroids)}")
    x = as_feature_map(feature_map)
    descs = vocabularies.local_pca.transform(aggregation.local_descriptors(x))
    centroids = vocabularies.centroids[k]
    words = aggregation.nearest_words(descs, centroids).reshape(x.shape[1:])
    return words, encodings.vlad_blocks(descs, centroids, intra=intra, power=power)
