"""The pipeline up to descriptors: dataset → feature maps → pooled, whitened, L2-normalised vectors.

This composes the stages (:mod:`~cbir_lab.features`, :mod:`~cbir_lab.pooling`,
:mod:`~cbir_lab.whitening`) the way the course, the CLI and the widgets use them:

* :func:`extract_dataset` extracts (or loads from the cache) every map once,
  into a :class:`DatasetFeatures`, which memoises each pooling of each part.
  With ``scales=`` it extracts every image at several sizes, into a
  :class:`MultiScaleFeatures`, whose pooled vectors combine the scales
  (:func:`~cbir_lab.pooling.multiscale_combine`); every later step takes it as it is.
* :func:`learn_whitening` fits PCA-whitening on the whitening-training images
  (never on test images); R-MAC's is fitted on regional vectors.
* :func:`global_descriptors` pools, optionally whitens, and L2-normalises the
  queries and the database.
* :func:`describe` does the same for a few maps (no whitening), for lessons that
  compare a handful of images.
* :func:`encode_dataset` encodes every image's map as a set of local descriptors
  (VLAD, Fisher vector, triangulation embedding; :mod:`~cbir_lab.aggregation`, :mod:`~cbir_lab.encodings`),
  with the local PCA and the vocabulary learned on the training images;
  :func:`learn_local_pca` is that first step alone (lesson 7's vocabularies start from it too).

Rankings and scores come next, in :mod:`cbir_lab.index`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from cbir_lab import aggregation, encodings
from cbir_lab.backbones import Backbone, load_backbone
from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.datasets.image_sets import ImageSet
from cbir_lab.features import FeatureCache, extract_feature_maps
from cbir_lab.images import scaled_sides
from cbir_lab.pooling import Pooling, multiscale_combine, regional_vectors
from cbir_lab.whitening import PCAWhitening, l2n

__all__ = [
    "PARTS",
    "DatasetFeatures",
    "DEFAULT_SCALES",
    "MultiScaleFeatures",
    "extract_dataset",
    "learn_whitening",
    "global_descriptors",
    "describe",
    "EncodedFeatures",
    "learn_local_pca",
    "encode_dataset",
]

#: The parts of every :class:`DatasetFeatures`: queries, database, whitening-training images
#: (a features object may add other whitening sets, by name: :attr:`DatasetFeatures.parts`).
PARTS = ("query", "db", "train")


@dataclass
class DatasetFeatures:
    """The feature maps of a dataset's queries, database and whitening-training images.

    Each list holds one (C, H, W) float32 tensor per image.

    Attributes:
        dataset: the dataset the maps belong to.
        backbone: the backbone's name.
        max_side: the long side the images were fed at.
        query_maps, db_maps, train_maps: the maps.
        train_source: what the training maps are (shown where a whitening is described).
        whitening_sets: more image sets to learn a whitening on, by name (e.g.
            ``"imagenet-sample"``) → their maps; each is a part of its own.
        whitening_set_sources: name → what that set is, in words.
    """

    dataset: RetrievalDataset
    backbone: str
    max_side: int
    query_maps: list[torch.Tensor]
    db_maps: list[torch.Tensor]
    train_maps: list[torch.Tensor]
    train_source: str = "the dataset's training split"
    whitening_sets: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    whitening_set_sources: dict[str, str] = field(default_factory=dict)
    _pooled: dict = field(default_factory=dict, repr=False)

    @property
    def parts(self) -> tuple[str, ...]:
        """:data:`PARTS`, then the names of :attr:`whitening_sets`."""
        return PARTS + tuple(self.whitening_sets)

    def maps(self, part: str) -> list[torch.Tensor]:
        """The maps of ``part``, one of :attr:`parts`."""
        if part in self.whitening_sets:
            return self.whitening_sets[part]
        if part not in PARTS:
            raise ValueError(f"part must be one of {self.parts}, got {part!r}")
        return {"query": self.query_maps, "db": self.db_maps, "train": self.train_maps}[part]

    def source(self, part: str) -> str:
        """What the images of a whitening part are, in words: ``"train"``, ``"db"`` or a whitening set."""
        if part == "train":
            return self.train_source
        if part == "db":
            return "the test database itself"
        if part in self.whitening_set_sources:
            return self.whitening_set_sources[part]
        raise ValueError(f"part must be one of {self.parts}, got {part!r}")

    def pooled(self, part: str, pooling: Pooling | str) -> np.ndarray:
        """Unnormalised pooled vectors (N, C) of ``part`` (see :data:`PARTS`), memoised."""
        pooling = Pooling.parse(pooling)
        key = (part, pooling)
        if key not in self._pooled:
            self._pooled[key] = pooling.pool_each(self.maps(part)).numpy()
        return self._pooled[key]

    def regional(self, part: str, levels: int = 3) -> list[np.ndarray]:
        """Per image, its L2-normalised R-MAC regional vectors, shape (R_i, C), memoised."""
        key = (part, "regions", levels)
        if key not in self._pooled:
            self._pooled[key] = [regional_vectors(m.unsqueeze(0), levels)[0].numpy() for m in self.maps(part)]
        return self._pooled[key]


#: cirtorch's multi-scale setting: the image at its full size, 1/√2 of it and half of it.
DEFAULT_SCALES = (1.0, 2 ** -0.5, 0.5)


@dataclass
class MultiScaleFeatures(DatasetFeatures):
    """A dataset's feature maps at several input scales; :meth:`pooled` combines the scales.

    Its own maps (:meth:`~DatasetFeatures.maps`, what local encodings and the feature-map
    views use) are those of the first scale; :attr:`at_scale` holds every scale's.
    :meth:`pooled` gives each image's multi-scale vector (cirtorch's ``extract_ms``):
    per scale the pooled vector, L2-normalised, then their power mean with
    :attr:`~cbir_lab.pooling.Pooling.multiscale_p` (GeM's p, else 1), then L2
    (:func:`~cbir_lab.pooling.multiscale_combine`). Whitening is learned on, and applied
    to, these combined vectors, as cirtorch's learned whitening is, so
    :func:`global_descriptors`, :func:`learn_whitening` and
    :class:`~cbir_lab.index.RetrievalIndex` take the features unchanged, except R-MAC's
    region-wise whitening (its regions belong to one scale): whiten R-MAC single-scale.

    **Equal cost accounting.** A network's FLOPs grow with the pixels it is fed, so
    scales s cost about Σ s² times one scale: 1 + 1/2 + 1/4 = 1.75 for
    :data:`DEFAULT_SCALES` (:attr:`relative_cost`, from the sides actually fed). A fair
    comparison sets a multi-scale score against a single scale given the same time,
    e.g. a larger ``max_side``.

    Attributes:
        scales: the scales s, in order.
        at_scale: one :class:`DatasetFeatures` per scale, fed at ``round(s · max_side)``
            (each cached under its own side).
        seconds: the wall time each scale's extraction took (a cache read when the maps
            were cached: time uncached extractions to compare costs).
    """

    scales: tuple[float, ...] = (1.0,)
    at_scale: tuple[DatasetFeatures, ...] = ()
    seconds: tuple[float, ...] = ()

    @property
    def max_sides(self) -> tuple[int, ...]:
        """The long side each scale was fed at."""
        return tuple(f.max_side for f in self.at_scale)

    @property
    def relative_cost(self) -> float:
        """Σ (side_s / max_side)²: the pixels, so about the FLOPs, against one scale at ``max_side``."""
        return float(sum((side / self.max_side) ** 2 for side in self.max_sides))

    def pooled(self, part: str, pooling: Pooling | str) -> np.ndarray:
        """Multi-scale vectors (N, C) of ``part``, unit rows, memoised (each scale's pooling too)."""
        pooling = Pooling.parse(pooling)
        key = (part, pooling, "multiscale")
        if key not in self._pooled:
            per_scale = np.stack([f.pooled(part, pooling) for f in self.at_scale])
            self._pooled[key] = multiscale_combine(per_scale, pooling.multiscale_p)
        return self._pooled[key]

    def regional(self, part: str, levels: int = 3) -> list[np.ndarray]:
        """Not defined across scales: R-MAC's regions belong to one scale's map."""
        raise ValueError("multi-scale features have no regional vectors: R-MAC's regions belong to one scale, so "
                         "whiten R-MAC on single-scale features (extract_dataset without scales=)")


def extract_dataset(
    dataset: RetrievalDataset,
    backbone: Backbone | str = "efficientnet_lite0",
    max_side: int = 384,
    cache: FeatureCache | bool | None = True,
    progress: bool | None = None,
    whitening_sets: Sequence[ImageSet] = (),
    scales: Sequence[float] | None = None,
) -> DatasetFeatures:
    """Feature maps of every image of a dataset (queries cropped to their boxes), at one scale or several.

    Args:
        dataset: from :func:`cbir_lab.datasets.load_dataset`.
        backbone: a loaded backbone or a backbone name.
        max_side: the long side fed to the network.
        cache: as in :func:`cbir_lab.features.extract_feature_maps`.
        progress: show a progress bar (default: for long runs).
        whitening_sets: more image sets to learn whitenings on, besides the dataset's
            own training split (:func:`cbir_lab.datasets.image_sets.load_image_set`);
            each becomes a part of the features, named after the set. To make a set
            *the* training split instead, use
            :meth:`~cbir_lab.datasets.base.RetrievalDataset.with_training_images`.
        scales: ``None`` for one scale; else the scales s (e.g. :data:`DEFAULT_SCALES`): every
            image is also fed at a long side of ``round(s · max_side)`` (resized from the file,
            where cirtorch interpolates the full-size tensor), each side cached apart.

    Returns:
        The :class:`DatasetFeatures`; with ``scales``, a :class:`MultiScaleFeatures`.

    Raises:
        ValueError: ``scales`` empty, or holding a number that is not finite and > 0.
    """
    if scales is not None:
        scaled_sides(max_side, scales)  # bad scales are named before a network loads
    if isinstance(backbone, str):
        backbone = load_backbone(backbone)
    if scales is not None:
        sides = scaled_sides(max_side, scales, backbone.stride)
        per_scale, seconds = [], []
        for side in sides:
            start = time.perf_counter()
            per_scale.append(extract_dataset(dataset, backbone, side, cache, progress, whitening_sets))
            seconds.append(time.perf_counter() - start)
        first = per_scale[0]
        return MultiScaleFeatures(dataset, backbone.name, max_side, first.query_maps, first.db_maps, first.train_maps,
                                  first.train_source, first.whitening_sets, first.whitening_set_sources,
                                  scales=tuple(float(s) for s in scales), at_scale=tuple(per_scale),
                                  seconds=tuple(seconds))
    items = dataset.queries() + list(dataset.db_images) + list(dataset.train_images)
    for image_set in whitening_sets:
        items += list(image_set.images)
    maps = extract_feature_maps(items, backbone, max_side=max_side, cache=cache, progress=progress)
    nq, ndb, ntrain = dataset.n_queries, dataset.n_db, len(dataset.train_images)
    start = nq + ndb + ntrain
    sets, sources = {}, {}
    for image_set in whitening_sets:
        sets[image_set.name] = maps[start : start + len(image_set)]
        sources[image_set.name] = image_set.description
        start += len(image_set)
    return DatasetFeatures(dataset, backbone.name, max_side, maps[:nq], maps[nq : nq + ndb], maps[nq + ndb : nq + ndb + ntrain],
                           train_source=dataset.train_source, whitening_sets=sets, whitening_set_sources=sources)


def learn_whitening(
    features: DatasetFeatures,
    pooling: Pooling | str,
    n_components: int | None = None,
    power: float = 0.5,
    part: str = "train",
) -> PCAWhitening:
    """Fit PCA-whitening for ``pooling`` on one part of the features (the training images by default).

    For R-MAC the whitening is learned on the regional vectors, because R-MAC
    whitens each region before the sum (Tolias et al. 2016).

    Args:
        features: from :func:`extract_dataset`.
        pooling: a :class:`~cbir_lab.pooling.Pooling` or its name.
        n_components: d (default: every useful component).
        power: 0.5 full whitening, 0 PCA only, between: partial.
        part: ``"train"``; ``"db"`` learns on the test database itself, which
            overfits (lesson 3 shows by how much); or the name of one of the
            features' :attr:`~DatasetFeatures.whitening_sets`.

    Returns:
        The fitted :class:`~cbir_lab.whitening.PCAWhitening`.

    Raises:
        ValueError: the part has no images (e.g. no training split).
    """
    pooling = Pooling.parse(pooling)
    try:
        if pooling.regional:
            vectors = np.concatenate(features.regional(part, pooling.levels))
        else:
            vectors = features.pooled(part, pooling)
    except ValueError:  # no maps in that part (and nothing pooled from them before), or another error to pass on
        what = "training split" if part == "train" else f"{part!r} images"
        if part not in features.parts or features.maps(part):
            raise
        raise ValueError(f"dataset {features.dataset.name!r} has no {what} to learn the whitening on") from None
    return PCAWhitening(n_components=n_components, power=power).fit(vectors)


def global_descriptors(
    features: DatasetFeatures,
    pooling: Pooling | str,
    whitening: PCAWhitening | bool = False,
    n_components: int | None = None,
    power: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised global descriptors of queries and database.

    Without whitening: pool, L2. With whitening: pool, then L2 → PCA-whitening
    → L2. For R-MAC the whitening is applied to each regional vector before the
    sum (:meth:`~cbir_lab.whitening.PCAWhitening.transform_regions`).

    Args:
        features: from :func:`extract_dataset`.
        pooling: a :class:`~cbir_lab.pooling.Pooling` or its name (``"SPoC"``, ``"MAC"``,
            ``"R-MAC"``, ``"GeM"``, …).
        whitening: ``False``; ``True`` to learn one on the training split with
            ``n_components`` and ``power`` (:func:`learn_whitening`); or an already
            fitted whitening to apply.
        n_components, power: the whitening's settings when ``whitening`` is ``True``.

    Returns:
        (query_vecs (n_q, d), db_vecs (n_db, d)), float32, unit rows.
    """
    pooling = Pooling.parse(pooling)
    if whitening is False:
        return (l2n(features.pooled("query", pooling)).astype(np.float32),
                l2n(features.pooled("db", pooling)).astype(np.float32))
    if whitening is True:
        whitening = learn_whitening(features, pooling, n_components, power)
    if pooling.regional:
        return (whitening.transform_regions(features.regional("query", pooling.levels)),
                whitening.transform_regions(features.regional("db", pooling.levels)))
    return whitening.transform(features.pooled("query", pooling)), whitening.transform(features.pooled("db", pooling))


def describe(maps: Sequence, pooling: Pooling | str) -> np.ndarray:
    """L2-normalised descriptors of a few maps (no whitening): one row per map.

    Args:
        maps: feature maps (C, H, W), numpy arrays or tensors, of any sizes.
        pooling: a :class:`~cbir_lab.pooling.Pooling` or its name.

    Returns:
        float32 (n, C), unit rows (or zero).

    Examples:
        >>> describe([np.ones((2, 3, 3), np.float32)], "MAC")
        array([[0.70710677, 0.70710677]], dtype=float32)
    """
    pooling = Pooling.parse(pooling)
    tensors = [torch.as_tensor(np.asarray(m, dtype=np.float32)) for m in maps]
    return l2n(pooling.pool_each(tensors).numpy()).astype(np.float32)


@dataclass(frozen=True)
class EncodedFeatures:
    """Every image of a dataset encoded from its local descriptors with one learned vocabulary.

    Attributes:
        method: ``"vlad"``, ``"fv"`` or ``"te"``.
        name: how tables show it, e.g. ``"VLAD k=64"``.
        k: the vocabulary's size.
        local_pca: the PCA the local descriptors are reduced with.
        vocabulary: the fitted :class:`~cbir_lab.aggregation.KMeansVocabulary` or
            :class:`~cbir_lab.aggregation.DiagonalGMM`.
        vectors: part (``"query"``, ``"db"``, ``"train"``, a whitening set) → (n, dim) float32, unit rows.
    """

    method: str
    name: str
    k: int
    local_pca: aggregation.LocalPCA
    vocabulary: object
    vectors: dict[str, np.ndarray]


_ENCODING_NAMES = {"vlad": "VLAD", "fv": "FV", "te": "TE"}


def learn_local_pca(train_maps: Sequence, local_dim: int, per_image: int, seed: int = 0
                    ) -> tuple[aggregation.LocalPCA, np.ndarray]:
    """A local PCA learned on a sample of the training maps' cells, and the sample reduced: what vocabularies learn on.

    Args:
        train_maps: feature maps (C, H, W) of the training images (never test images).
        local_dim: the local PCA's dimension.
        per_image: local descriptors drawn per map.
        seed: for the sample and the PCA.

    Returns:
        (the :class:`~cbir_lab.aggregation.LocalPCA`, the sample reduced by it, (n, local_dim)).
    """
    sample = aggregation.sample_local_descriptors(train_maps, per_image=per_image, seed=seed)
    pca = aggregation.LocalPCA(local_dim, seed=seed).fit(sample)
    return pca, pca.transform(sample)


def encode_dataset(features: DatasetFeatures, method: str, k: int, local_dim: int = 64, per_image: int = 100,
                   seed: int = 0, te_whitening: bool = False, te_whitening_sample: int = 10_000,
                   **options) -> EncodedFeatures:
    """Encode every part of ``features`` with a vocabulary learned on the training images only.

    Each map's H·W cells are local descriptors; a PCA reduces them to ``local_dim``
    (as the papers reduce SIFT or conv features before encoding); k-means (VLAD, TE)
    or a diagonal GMM (Fisher vector) with ``k`` words is learned on a sample of the
    *training* images' descriptors, never on the test set; then every image is encoded.

    Args:
        features: from :func:`extract_dataset` (needs training images).
        method: ``"vlad"`` (intra-normalised and square-rooted by default), ``"fv"`` or
            ``"te"`` (square-rooted by default).
        k: vocabulary size.
        local_dim: the local PCA's dimension.
        per_image: local descriptors drawn per training image for the PCA and the vocabulary.
        seed: for the sample and the vocabulary.
        te_whitening: for ``"te"``, the paper's own step: each descriptor's embedding is
            centred and whitened (:class:`~cbir_lab.encodings.TEWhitening`, its first
            ``local_dim`` components dropped, as Jégou & Zisserman drop D) before the sum.
        te_whitening_sample: how many of the sampled training descriptors that whitening is
            learned on (their K·d-dimensional embeddings make its covariance).
        **options: passed to the encoding (e.g. ``intra=False``, ``power=1.0``).

    Returns:
        The :class:`EncodedFeatures`; its vectors have K·d (VLAD), 2·K·d (FV) or K·d (TE; K·d − d with its own
        whitening) dimensions.
    """
    if method not in _ENCODING_NAMES:
        raise ValueError(f"unknown encoding {method!r}; choose one of {sorted(_ENCODING_NAMES)}")
    if not features.train_maps:
        raise ValueError(f"dataset {features.dataset.name!r} has no training images to learn a vocabulary on")
    pca, reduced = learn_local_pca(features.train_maps, local_dim, per_image, seed)
    if method == "fv":  # EM on thousands of 64-D descriptors needs more than scikit-learn's 100 iterations
        vocabulary = aggregation.DiagonalGMM(k, seed=seed, max_iter=200).fit(reduced)
    else:
        vocabulary = aggregation.KMeansVocabulary(k, seed=seed).fit(reduced)
    if method == "vlad":
        options = {"intra": True, "power": 0.5, **options}
    elif method == "te":
        options = {"power": 0.5, **options}
    name = f"{_ENCODING_NAMES[method]} k={k}"
    if te_whitening:
        if method != "te":
            raise ValueError(f"te_whitening is the triangulation embedding's own step, not {method!r}'s")
        picked = np.random.default_rng(seed).permutation(len(reduced))[:te_whitening_sample]
        directions = encodings.triangulation_directions(reduced[np.sort(picked)], vocabulary.centroids_)
        options["whitening"] = encodings.TEWhitening(drop=local_dim).fit(directions)
        name += ", own whitening"
    vectors = {part: encodings.encode_all(features.maps(part), pca, vocabulary, method, **options)
               for part in features.parts if features.maps(part)}
    return EncodedFeatures(method, name, int(k), pca, vocabulary, vectors)
