r"""Aggregation: a conv feature map as a set of local descriptors, encoded with a learned vocabulary.

A feature map (C, H, W) is H·W local descriptors of dimension C. Before sum
pooling (SPoC) took over, retrieval aggregated such sets with a vocabulary
learned on a separate set of descriptors. This module provides, in numpy:

* :func:`local_descriptors` / :func:`sample_local_descriptors`: the map's
  cells as rows, and a training sample drawn from many maps.
* :func:`fit_local_pca` → :class:`LocalPCA`: the PCA (optionally whitened)
  that the papers apply to local descriptors before encoding them.
* :func:`fit_kmeans` (centroids) and :func:`fit_gmm` → :class:`DiagonalGMM`
  (a diagonal Gaussian mixture with its posteriors): the vocabularies.
* :func:`nearest_words`: each local descriptor's visual word.
* :func:`vlad` (and :func:`vlad_blocks`, its K × D matrix): vector of locally
  aggregated descriptors (Jégou et al., CVPR 2010), with the intra-normalisation
  of Arandjelović & Zisserman (CVPR 2013).
* :func:`fisher_vector`: the improved Fisher vector (Perronnin, Sánchez &
  Mensink, ECCV 2010).
* :func:`triangulation_directions` / :func:`triangulation_embedding`, with
  :func:`fit_te_whitening` → :class:`TEWhitening`: the triangulation embedding
  with sum aggregation (Jégou & Zisserman, CVPR 2014).
* :func:`encode` / :func:`encode_all`: one encoding by name, for one set of
  descriptors or for a list of feature maps.

Every encoding returns one float32 vector per image; PCA-whitening of those
vectors comes later, in :mod:`cbir_lab.whitening`.

References:
    Jégou, Douze, Schmid & Pérez, "Aggregating local descriptors into a compact
    image representation", CVPR 2010; Arandjelović & Zisserman, "All about
    VLAD", CVPR 2013; Perronnin, Sánchez & Mensink, "Improving the Fisher kernel
    for large-scale image classification", ECCV 2010; Jégou & Zisserman,
    "Triangulation embedding and democratic aggregation for image search",
    CVPR 2014.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from cbir_lab._array import as_matrix, check_finite, l2n, to_numpy

__all__ = [
    "local_descriptors",
    "sample_local_descriptors",
    "LocalPCA",
    "fit_local_pca",
    "fit_kmeans",
    "DiagonalGMM",
    "fit_gmm",
    "nearest_words",
    "vlad",
    "vlad_blocks",
    "fisher_vector",
    "triangulation_directions",
    "TEWhitening",
    "fit_te_whitening",
    "triangulation_embedding",
    "ENCODINGS",
    "encode",
    "encode_all",
]


# ----- input checks ------------------------------------------------------------------------------

def _as_descs(x: Any, name: str = "descs") -> np.ndarray:
    """Local descriptors as a finite float64 matrix (n, D), n ≥ 1."""
    x = as_matrix(x, name, dtype=np.float64)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {x.shape}")
    return x


def _as_centroids(c: Any, name: str = "centroids") -> np.ndarray:
    if isinstance(c, DiagonalGMM):
        raise ValueError(
            f"{name} must be a (k, D) array of centroids, got a DiagonalGMM (that is the Fisher vector's vocabulary)"
        )
    return _as_descs(c, name)


def _check_dim(descs: np.ndarray, dim: int, what: str) -> None:
    if descs.shape[1] != dim:
        raise ValueError(
            f"descs have dimension {descs.shape[1]}, but the {what} has dimension {dim} "
            "(were the descriptors reduced with the same LocalPCA as the vocabulary's training set?)"
        )


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _check_k(k: Any, n: int, name: str = "local_descs") -> int:
    if not (_is_int(k) and k >= 1):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if n < k:
        raise ValueError(f"k={k} needs at least k training descriptors, but {name} has only {n}")
    return int(k)


def _frozen_array(x: Any, name: str, ndim: int) -> np.ndarray:
    # a copy made read-only, so that a frozen dataclass is frozen all the way down
    a = np.array(to_numpy(x), dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {a.shape}")
    check_finite(a, name)
    a.setflags(write=False)
    return a


def _check_power(power: float) -> float:
    if not (isinstance(power, (int, float)) and not isinstance(power, bool) and 0.0 < power <= 1.0):
        raise ValueError(
            f"power must be a number in (0, 1] (1 leaves the vector unchanged, 0.5 is the signed square root), got {power!r}"
        )
    return float(power)


def _signed_power(v: np.ndarray, power: float) -> np.ndarray:
    return v if power == 1.0 else np.sign(v) * np.abs(v) ** power


# ----- local descriptors -------------------------------------------------------------------------

def local_descriptors(feature_map: Any) -> np.ndarray:
    r"""The cells of a feature map as local descriptors: one row per spatial position.

    .. math:: X \in \mathbb{R}^{C \times H \times W} \mapsto
        \{\, X[:, y, x] \,\}_{y, x} \in \mathbb{R}^{HW \times C}

    Rows are in row-major order: row ``y * W + x`` is the cell (y, x).

    Args:
        feature_map: one map of shape (C, H, W), a numpy array or a torch tensor.

    Returns:
        Local descriptors, shape (H·W, C), float32.

    Examples:
        >>> fmap = np.arange(8).reshape(2, 2, 2)  # C = 2 channels on a 2x2 grid
        >>> local_descriptors(fmap)
        array([[0., 4.],
               [1., 5.],
               [2., 6.],
               [3., 7.]], dtype=float32)
    """
    x = to_numpy(feature_map)
    if x.ndim != 3:
        raise ValueError(f"feature_map must have shape (C, H, W), got shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"feature_map is empty: shape {x.shape}")
    c = x.shape[0]
    return np.ascontiguousarray(x.reshape(c, -1).T, dtype=np.float32)


def sample_local_descriptors(maps: Sequence[Any], per_image: int | None = None, seed: int = 0) -> np.ndarray:
    """A training set of local descriptors drawn from many maps, to fit a PCA and a vocabulary on.

    Args:
        maps: feature maps, each (C, H, W), e.g. from
            :func:`cbir_lab.features.extract_feature_maps` on a training set.
        per_image: at most this many cells per map, drawn without replacement so
            that large images do not dominate the vocabulary; ``None`` keeps all.
        seed: seed of the draw.

    Returns:
        Local descriptors, shape (M, C), float32.

    Examples:
        >>> maps = [np.ones((3, 4, 4)), np.zeros((3, 2, 5))]
        >>> sample_local_descriptors(maps).shape
        (26, 3)
        >>> sample_local_descriptors(maps, per_image=5).shape
        (10, 3)
    """
    if len(maps) == 0:
        raise ValueError("maps is empty: no feature maps to sample local descriptors from")
    if per_image is not None and not (_is_int(per_image) and per_image >= 1):
        raise ValueError(f"per_image must be a positive integer or None, got {per_image!r}")
    rng = np.random.default_rng(seed)
    out = []
    for m in maps:
        d = local_descriptors(m)
        if out and d.shape[1] != out[0].shape[1]:
            raise ValueError(f"maps have different channel counts: {out[0].shape[1]} and {d.shape[1]}")
        if per_image is not None and len(d) > per_image:
            d = d[np.sort(rng.choice(len(d), size=per_image, replace=False))]
        out.append(d)
    return np.concatenate(out, axis=0)


# ----- local PCA ---------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LocalPCA:
    r"""A PCA of local descriptors: centre, project, optionally whiten.

    .. math:: x \mapsto \operatorname{diag}(s)^{-1}\, U^\top (x - m)

    with s = 1 (plain PCA) or :math:`s = \sqrt{\lambda}` (whitening).

    Attributes:
        mean: m, shape (D,).
        components: :math:`U^\top`, shape (d, D), one principal axis per row.
        scale: s, shape (d,).
    """

    mean: np.ndarray
    components: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        mean = _frozen_array(self.mean, "mean", 1)
        components = _frozen_array(self.components, "components", 2)
        scale = _frozen_array(self.scale, "scale", 1)
        if components.shape[1] != mean.shape[0]:
            raise ValueError(f"components have dimension {components.shape[1]}, but mean has {mean.shape[0]}")
        if scale.shape[0] != components.shape[0] or not (scale > 0).all():
            raise ValueError(f"scale must hold {components.shape[0]} positive numbers, got {scale}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "components", components)
        object.__setattr__(self, "scale", scale)

    @property
    def dim(self) -> int:
        """D, the input dimension."""
        return self.mean.shape[0]

    @property
    def n_components(self) -> int:
        """d, the output dimension."""
        return self.components.shape[0]

    def transform(self, descs: Any) -> np.ndarray:
        """Reduce local descriptors (n, D) → (n, d), float32."""
        x = _as_descs(descs)
        _check_dim(x, self.dim, "LocalPCA")
        return ((x - self.mean) @ self.components.T / self.scale).astype(np.float32)


def fit_local_pca(local_descs: Any, n_components: int, whiten: bool = False, seed: int = 0, rtol: float = 1e-9) -> LocalPCA:
    r"""Learn a PCA of local descriptors, as the papers do before encoding (to 64–128 dimensions).

    .. math:: C = \frac{1}{n-1} \sum_i (x_i - m)(x_i - m)^\top = U \operatorname{diag}(\lambda) U^\top

    keeping the d eigenvectors of largest eigenvalue. Whitening divides each
    coordinate by :math:`\sqrt{\lambda_j}`, so that every kept direction has
    unit variance on the training set.

    Args:
        local_descs: training descriptors, shape (n, D), e.g. from
            :func:`sample_local_descriptors`.
        n_components: d, at most min(n, D).
        whiten: divide by the square roots of the eigenvalues.
        seed: ``random_state`` of scikit-learn's ``PCA`` (its randomised
            solver, chosen for large inputs).
        rtol: with ``whiten``, eigenvalues below ``rtol`` × the largest count as
            zero; asking for such components is an error instead of dividing by ~0.

    Returns:
        The fitted :class:`LocalPCA`.

    Reference:
        Jégou et al., CVPR 2010 (PCA of SIFT before VLAD); Jégou & Chum, ECCV
        2012 (whitening).

    Examples:
        >>> descs = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])  # on a line
        >>> pca = fit_local_pca(descs, n_components=1, whiten=True)
        >>> pca.components.shape, pca.transform(descs).shape
        ((1, 2), (4, 1))
        >>> round(float(pca.transform(descs).var(ddof=1)), 6)  # whitened: unit variance
        1.0
    """
    x = _as_descs(local_descs, "local_descs")
    n, dim = x.shape
    if n < 2:
        raise ValueError(f"fit_local_pca needs at least 2 descriptors in local_descs, got {n}")
    limit = min(n, dim)
    if not (_is_int(n_components) and 1 <= n_components <= limit):
        raise ValueError(f"n_components must be an integer in [1, min(n, D) = {limit}], got {n_components!r}")
    pca = PCA(n_components=int(n_components), random_state=seed).fit(x)
    if whiten:
        variances = pca.explained_variance_
        useful = int((variances > rtol * max(variances.max(), np.finfo(float).tiny)).sum())
        if useful < n_components:
            raise ValueError(
                f"n_components={n_components} with whiten=True, but only {useful} directions of local_descs "
                f"have non-zero variance (the others would be divided by ~0); use n_components <= {useful}"
            )
        scale = np.sqrt(variances)
    else:
        scale = np.ones(int(n_components))
    return LocalPCA(mean=pca.mean_, components=pca.components_, scale=scale)


# ----- vocabularies ------------------------------------------------------------------------------

def fit_kmeans(local_descs: Any, k: int, seed: int = 0, n_init: int = 3, minibatch_above: int = 20_000) -> np.ndarray:
    r"""Learn a k-means vocabulary of local descriptors (VLAD's and the triangulation embedding's).

    .. math:: \min_{c_1..c_k} \sum_i \min_j \lVert x_i - c_j \rVert^2

    Args:
        local_descs: training descriptors, shape (n, D), n ≥ k.
        k: the vocabulary size.
        seed: ``random_state`` of scikit-learn's clustering; the same seed gives
            the same centroids.
        n_init: how many initialisations scikit-learn tries, keeping the best.
        minibatch_above: above this many descriptors use ``MiniBatchKMeans``
            (a feature map gives hundreds of descriptors per image, so a training
            set quickly reaches 10⁵), else the exact ``KMeans``.

    Returns:
        Centroids, shape (k, D), float32.

    Reference:
        Jégou et al., CVPR 2010.

    Examples:
        >>> descs = np.array([[0.0], [1.0], [10.0], [11.0]])
        >>> np.sort(fit_kmeans(descs, k=2)[:, 0])
        array([ 0.5, 10.5], dtype=float32)
    """
    x = _as_descs(local_descs, "local_descs")
    k = _check_k(k, len(x))
    if len(x) > minibatch_above:
        model = MiniBatchKMeans(n_clusters=k, n_init=n_init, random_state=seed, batch_size=max(1024, 4 * k))
    else:
        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    return model.fit(x).cluster_centers_.astype(np.float32)


@dataclass(frozen=True, eq=False)
class DiagonalGMM:
    r"""A Gaussian mixture with diagonal covariances: the Fisher vector's vocabulary.

    .. math:: p(x) = \sum_{k=1}^{K} w_k\, \mathcal{N}\big(x;\ \mu_k, \operatorname{diag}(\sigma_k^2)\big)

    Attributes:
        weights: :math:`w`, shape (K,), positive, summing to 1.
        means: :math:`\mu`, shape (K, D).
        variances: :math:`\sigma^2`, shape (K, D), positive.
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    def __post_init__(self) -> None:
        weights = _frozen_array(self.weights, "weights", 1)
        means = _frozen_array(self.means, "means", 2)
        variances = _frozen_array(self.variances, "variances", 2)
        if means.shape[0] != weights.shape[0] or variances.shape != means.shape:
            raise ValueError(
                "weights (K,), means (K, D) and variances (K, D) disagree: "
                f"shapes {weights.shape}, {means.shape}, {variances.shape}"
            )
        if not (weights > 0).all() or abs(weights.sum() - 1.0) > 1e-6:
            raise ValueError(f"weights must be positive and sum to 1, got {weights}")
        if not (variances > 0).all():
            raise ValueError("variances must all be > 0")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "variances", variances)

    @property
    def n_components(self) -> int:
        """K, the number of Gaussians."""
        return self.weights.shape[0]

    @property
    def dim(self) -> int:
        """D, the descriptors' dimension."""
        return self.means.shape[1]

    def log_joint(self, descs: Any) -> np.ndarray:
        r""":math:`\log w_k + \log \mathcal{N}(x_i; \mu_k, \sigma_k^2)`, shape (n, K), float64."""
        x = _as_descs(descs)
        _check_dim(x, self.dim, "DiagonalGMM")
        precisions = 1.0 / self.variances
        # ‖(x - μ)/σ‖² expanded into matrix products, as scikit-learn does: one BLAS call instead of a
        # loop over K; rounding can leave it slightly negative, and a squared distance is not
        mahalanobis = (
            (x**2) @ precisions.T - 2.0 * x @ (self.means * precisions).T + (self.means**2 * precisions).sum(axis=1)
        )
        mahalanobis = np.maximum(mahalanobis, 0.0)
        log_norm = self.dim * math.log(2.0 * math.pi) + np.log(self.variances).sum(axis=1)
        return np.log(self.weights) - 0.5 * (log_norm + mahalanobis)

    def posteriors(self, descs: Any) -> np.ndarray:
        r"""Soft assignments :math:`\gamma_i(k) = p(k \mid x_i)`, by log-sum-exp.

        .. math::
            \gamma_i(k) = \frac{w_k \mathcal{N}(x_i; \mu_k, \sigma_k^2)}{\sum_j w_j \mathcal{N}(x_i; \mu_j, \sigma_j^2)}
            = \exp\Big(l_{ik} - \max_j l_{ij} - \log \sum_j e^{l_{ij} - \max_j l_{ij}}\Big)

        with :math:`l_{ik}` from :meth:`log_joint`. Subtracting the row maximum
        keeps the largest term at :math:`e^0 = 1`, so a descriptor far from
        every Gaussian (every density underflowing to 0) still gets a
        posterior, never 0/0 = NaN.

        Args:
            descs: local descriptors, shape (n, D).

        Returns:
            Posteriors, shape (n, K), float64, rows summing to 1.

        Examples:
            >>> gmm = DiagonalGMM(weights=[0.5, 0.5], means=[[0.0], [4.0]], variances=[[1.0], [1.0]])
            >>> gmm.posteriors([[2.0], [1e6]])  # halfway; far beyond the second Gaussian
            array([[0.5, 0.5],
                   [0. , 1. ]])
        """
        log_joint = self.log_joint(descs)
        top = log_joint.max(axis=1, keepdims=True)
        log_evidence = top + np.log(np.exp(log_joint - top).sum(axis=1, keepdims=True))
        return np.exp(log_joint - log_evidence)


def fit_gmm(local_descs: Any, k: int, seed: int = 0, max_iter: int = 100, reg_covar: float = 1e-6) -> DiagonalGMM:
    r"""Learn a diagonal Gaussian mixture of local descriptors by EM (scikit-learn's ``GaussianMixture``).

    .. math:: \max_{w, \mu, \sigma} \sum_i \log \sum_k w_k\, \mathcal{N}(x_i; \mu_k, \operatorname{diag}(\sigma_k^2))

    Args:
        local_descs: training descriptors, shape (n, D), n ≥ k.
        k: the number of Gaussians K.
        seed: ``random_state`` of the k-means initialisation; the same seed
            gives the same mixture.
        max_iter: EM iterations at most.
        reg_covar: added to every variance, so that a Gaussian on a single
            point keeps a positive variance.

    Returns:
        The fitted :class:`DiagonalGMM`.

    Reference:
        Perronnin, Sánchez & Mensink, ECCV 2010.

    Examples:
        >>> descs = np.array([[0.0], [1.0], [10.0], [11.0]])
        >>> gmm = fit_gmm(descs, k=2)
        >>> np.sort(gmm.means[:, 0]), gmm.weights
        (array([ 0.5, 10.5]), array([0.5, 0.5]))
    """
    x = _as_descs(local_descs, "local_descs")
    k = _check_k(k, len(x))
    model = GaussianMixture(
        n_components=k, covariance_type="diag", random_state=seed, max_iter=max_iter, reg_covar=reg_covar
    ).fit(x)
    return DiagonalGMM(weights=model.weights_, means=model.means_, variances=model.covariances_)


# ----- encodings ---------------------------------------------------------------------------------

def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    # the ‖x‖² term is the same for every centroid, so it drops out of the argmin
    scores = (centroids**2).sum(axis=1) - 2.0 * x @ centroids.T
    return scores.argmin(axis=1)


def nearest_words(descs: Any, centroids: Any) -> np.ndarray:
    r"""Each local descriptor's visual word: the index of its nearest centroid, :math:`\arg\min_k \lVert x - c_k \rVert`.

    Args:
        descs: local descriptors, shape (n, D).
        centroids: the vocabulary, shape (K, D).

    Returns:
        int64, shape (n,), values in 0..K-1.

    Examples:
        >>> nearest_words([[1.0, 0.0], [9.0, 1.0]], [[0.0, 0.0], [10.0, 0.0]]).tolist()
        [0, 1]
    """
    x, c = _as_descs(descs), _as_centroids(centroids)
    _check_dim(x, c.shape[1], "vocabulary (centroids)")
    return _nearest(x, c).astype(np.int64)


def vlad_blocks(descs: Any, centroids: Any, intra: bool = False, power: float = 1.0) -> np.ndarray:
    """VLAD before its final L2, as a (K, D) matrix: row k is centroid k's (normalised) residual sum.

    :func:`vlad` is this matrix flattened and L2-normalised; the matrix shows
    which words an image's descriptors fall in, and how much each weighs.

    Examples:
        >>> vlad_blocks([[1.0, 0.0], [2.0, 0.0], [10.0, 4.0]], [[0.0, 0.0], [10.0, 0.0]])
        array([[3., 0.],
               [0., 4.]], dtype=float32)
    """
    c = _as_centroids(centroids)
    return vlad(descs, c, intra=intra, power=power, l2=False).reshape(len(c), -1)


def vlad(descs: Any, centroids: Any, intra: bool = False, power: float = 1.0, l2: bool = True) -> np.ndarray:
    r"""Vector of locally aggregated descriptors (VLAD).

    Each descriptor is assigned to its nearest centroid, and each centroid
    sums the residuals of its descriptors:

    .. math:: v_k = \sum_{i:\ \operatorname{NN}(x_i) = k} (x_i - c_k), \qquad
        \operatorname{NN}(x) = \arg\min_j \lVert x - c_j \rVert

    :math:`v = [v_1; \dots; v_K]` is then, in this order, intra-normalised
    (:math:`v_k \leftarrow v_k / \lVert v_k \rVert`, so that a centroid with
    many descriptors, a "burst", does not dominate), signed-power-normalised
    (:math:`v \leftarrow \operatorname{sign}(v) |v|^\alpha`) and L2-normalised.
    A centroid with no descriptor gives a zero block.

    Args:
        descs: local descriptors, shape (n, D).
        centroids: the vocabulary, shape (K, D), from :func:`fit_kmeans`.
        intra: L2-normalise each centroid's block.
        power: α in (0, 1]; 1 leaves the vector as is, 0.5 is the signed square root.
        l2: L2-normalise the result.

    Returns:
        The VLAD, shape (K·D,), float32, centroid by centroid.

    Reference:
        Jégou, Douze, Schmid & Pérez, CVPR 2010; Arandjelović & Zisserman,
        "All about VLAD", CVPR 2013 (intra-normalisation).

    Examples:
        >>> centroids = np.array([[0.0, 0.0], [10.0, 0.0]])
        >>> descs = np.array([[1.0, 0.0], [2.0, 0.0], [10.0, 4.0]])  # residuals (1, 0), (2, 0) | (0, 4)
        >>> vlad(descs, centroids, l2=False)
        array([3., 0., 0., 4.], dtype=float32)
        >>> vlad(descs, centroids)
        array([0.6, 0. , 0. , 0.8], dtype=float32)
    """
    x = _as_descs(descs)
    c = _as_centroids(centroids)
    _check_dim(x, c.shape[1], "vocabulary (centroids)")
    power = _check_power(power)
    k = len(c)
    assignment = np.zeros((len(x), k))
    assignment[np.arange(len(x)), _nearest(x, c)] = 1.0
    # Σ_{i→k} (x_i − c_k) = Σ_{i→k} x_i − n_k c_k
    v = assignment.T @ x - assignment.sum(axis=0)[:, None] * c
    if intra:
        v = l2n(v)
    v = _signed_power(v.ravel(), power)
    return (l2n(v) if l2 else v).astype(np.float32)


def fisher_vector(descs: Any, gmm: DiagonalGMM, power: float = 0.5, l2: bool = True) -> np.ndarray:
    r"""The improved Fisher vector: gradients of the log-likelihood w.r.t. the means and deviations.

    With the posteriors :math:`\gamma_i(k)` of :meth:`DiagonalGMM.posteriors`
    and the Fisher information's diagonal approximation as the normalisation:

    .. math::
        \mathcal{G}^{\mu}_k = \frac{1}{n \sqrt{w_k}} \sum_{i=1}^{n} \gamma_i(k)\, \frac{x_i - \mu_k}{\sigma_k},
        \qquad
        \mathcal{G}^{\sigma}_k = \frac{1}{n \sqrt{2 w_k}} \sum_{i=1}^{n} \gamma_i(k)
            \left[ \frac{(x_i - \mu_k)^2}{\sigma_k^2} - 1 \right]

    (element-wise in the D dimensions). The gradient w.r.t. :math:`\sigma_k`
    and the one w.r.t. :math:`\sigma_k^2` give this same expression once each
    is normalised by its Fisher information; the gradient w.r.t. the weights
    is left out, as in the paper. Then signed power normalisation and L2, the
    "improved" part.

    Args:
        descs: local descriptors, shape (n, D).
        gmm: the vocabulary, from :func:`fit_gmm`.
        power: α in (0, 1] of :math:`\operatorname{sign}(v)|v|^\alpha`; 0.5 as in
            the paper, 1 to switch it off.
        l2: L2-normalise the result.

    Returns:
        :math:`[\mathcal{G}^{\mu}_1; \dots; \mathcal{G}^{\mu}_K; \mathcal{G}^{\sigma}_1; \dots; \mathcal{G}^{\sigma}_K]`,
        shape (2·K·D,), float32: all the mean gradients first, then all the
        deviation gradients.

    Reference:
        Perronnin, Sánchez & Mensink, "Improving the Fisher kernel for
        large-scale image classification", ECCV 2010; Sánchez et al., IJCV 2013.

    Examples:
        >>> gmm = DiagonalGMM(weights=[1.0], means=[[0.0, 0.0]], variances=[[1.0, 1.0]])
        >>> descs = np.array([[1.0, 0.0], [-1.0, 2.0]])  # one Gaussian: every posterior is 1
        >>> fisher_vector(descs, gmm, power=1.0, l2=False)  # G_mu = (0, 2)/2, G_sigma = (0, 2)/(2 sqrt 2)
        array([0.        , 1.        , 0.        , 0.70710677], dtype=float32)
    """
    if not isinstance(gmm, DiagonalGMM):
        raise ValueError(f"gmm must be a DiagonalGMM (from fit_gmm), got {type(gmm).__name__}")
    x = _as_descs(descs)
    _check_dim(x, gmm.dim, "vocabulary (DiagonalGMM)")
    power = _check_power(power)
    n = len(x)
    gamma = gmm.posteriors(x)
    sigma = np.sqrt(gmm.variances)
    # the zeroth, first and second order statistics: three matrix products instead of a loop over K
    s0 = gamma.sum(axis=0)[:, None]
    s1 = gamma.T @ x
    s2 = gamma.T @ (x**2)
    mu = gmm.means
    sum_mu = (s1 - s0 * mu) / sigma  # Σ γ (x − μ)/σ
    sum_sigma = (s2 - 2.0 * mu * s1 + s0 * mu**2) / gmm.variances - s0  # Σ γ [(x − μ)²/σ² − 1]
    w = gmm.weights[:, None]
    g_mu = sum_mu / (n * np.sqrt(w))
    g_sigma = sum_sigma / (n * np.sqrt(2.0 * w))
    v = _signed_power(np.concatenate([g_mu.ravel(), g_sigma.ravel()]), power)
    return (l2n(v) if l2 else v).astype(np.float32)


def triangulation_directions(descs: Any, centroids: Any, eps: float = 1e-12) -> np.ndarray:
    r"""The triangulation embedding of each descriptor: its unit direction from every centroid.

    .. math:: r_k(x) = \frac{x - c_k}{\lVert x - c_k \rVert}, \qquad
        R(x) = [r_1(x); \dots; r_K(x)] \in \mathbb{R}^{K D}

    Unlike VLAD, every centroid sees every descriptor, and only the direction
    counts, not the distance. A descriptor equal to a centroid gets a zero
    block there (0 / ε), not NaN.

    Args:
        descs: local descriptors, shape (n, D).
        centroids: the vocabulary, shape (K, D), from :func:`fit_kmeans`.
        eps: the smallest distance divided by.

    Returns:
        :math:`R(x_i)` for every descriptor, shape (n, K·D), float32; each
        D-block has unit norm (or is zero).

    Reference:
        Jégou & Zisserman, CVPR 2014 (section 3).

    Examples:
        >>> centroids = np.array([[0.0, 0.0], [4.0, 0.0]])
        >>> triangulation_directions([[0.0, 3.0]], centroids)  # (0, 3)/3 and (-4, 3)/5
        array([[ 0. ,  1. , -0.8,  0.6]], dtype=float32)
    """
    x = _as_descs(descs)
    c = _as_centroids(centroids)
    _check_dim(x, c.shape[1], "vocabulary (centroids)")
    n, dim = x.shape
    out = np.empty((n, len(c) * dim), dtype=np.float32)
    for k, ck in enumerate(c):
        out[:, k * dim : (k + 1) * dim] = l2n(x - ck, eps)
    return out


@dataclass(frozen=True, eq=False)
class TEWhitening:
    r"""The triangulation embedding's centring and whitening, learned on training descriptors.

    .. math:: \phi(x) = P\, (R(x) - R_0), \qquad P = \operatorname{diag}(\lambda)^{-1/2} U^\top

    Attributes:
        mean: :math:`R_0`, shape (K·D,).
        projection: P, shape (d, K·D).
    """

    mean: np.ndarray
    projection: np.ndarray

    def __post_init__(self) -> None:
        mean = _frozen_array(self.mean, "mean", 1)
        projection = _frozen_array(self.projection, "projection", 2)
        if projection.shape[1] != mean.shape[0]:
            raise ValueError(f"projection has dimension {projection.shape[1]}, but mean has {mean.shape[0]}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "projection", projection)

    @property
    def dim(self) -> int:
        """K·D, the input dimension."""
        return self.mean.shape[0]

    @property
    def n_components(self) -> int:
        """d, the output dimension."""
        return self.projection.shape[0]

    def transform(self, embeddings: Any) -> np.ndarray:
        """φ for each row of :func:`triangulation_directions`' output (n, K·D) → (n, d), float32."""
        r = _as_descs(embeddings, "embeddings")
        if r.shape[1] != self.dim:
            raise ValueError(
                f"embeddings have dimension {r.shape[1]}, but the TEWhitening was fitted on dimension {self.dim}"
            )
        return ((r - self.mean) @ self.projection.T).astype(np.float32)


def fit_te_whitening(embeddings: Any, drop: int = 0, rtol: float = 1e-9) -> TEWhitening:
    r"""Learn the triangulation embedding's centring and whitening on training descriptors.

    .. math:: \frac{1}{n-1}\sum_i (R(x_i) - R_0)(R(x_i) - R_0)^\top = U \operatorname{diag}(\lambda) U^\top

    The paper whitens the per-descriptor embedding :math:`R(x)` and then
    discards the first (largest-eigenvalue) components; ``drop`` is that
    number (the paper drops as many as the descriptors' dimension D, 128 for
    its SIFT).

    Args:
        embeddings: :func:`triangulation_directions` of training descriptors,
            shape (n, K·D), with n well above K·D for a stable covariance.
        drop: how many of the leading components to discard.
        rtol: eigenvalues below ``rtol`` × the largest count as zero and are
            left out instead of being divided by ~0 (with n ≤ K·D training
            descriptors the covariance is rank-deficient).

    Returns:
        The fitted :class:`TEWhitening`; pass it to :func:`triangulation_embedding`.

    Reference:
        Jégou & Zisserman, CVPR 2014 (section 3).

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> centroids, train = rng.normal(size=(2, 3)), rng.normal(size=(100, 3))
        >>> white = fit_te_whitening(triangulation_directions(train, centroids), drop=1)
        >>> white.projection.shape  # K·D = 6 components, the first dropped
        (5, 6)
    """
    r = _as_descs(embeddings, "embeddings")
    n = len(r)
    if n < 2:
        raise ValueError(f"fit_te_whitening needs at least 2 rows in embeddings, got {n}")
    if not (_is_int(drop) and drop >= 0):
        raise ValueError(f"drop must be a non-negative integer, got {drop!r}")
    mean = r.mean(axis=0)
    centred = r - mean
    values, vectors = np.linalg.eigh(centred.T @ centred / (n - 1))
    values, vectors = values[::-1], vectors[:, ::-1]
    useful = int((values > rtol * max(values[0], np.finfo(float).tiny)).sum())
    if drop >= useful:
        raise ValueError(f"drop={drop}, but the embeddings have only {useful} components of non-zero variance")
    keep = slice(drop, useful)
    projection = vectors[:, keep].T / np.sqrt(values[keep])[:, None]
    return TEWhitening(mean=mean, projection=projection)


def triangulation_embedding(
    descs: Any,
    centroids: Any,
    whitening: TEWhitening | None = None,
    power: float = 1.0,
    l2: bool = True,
    eps: float = 1e-12,
) -> np.ndarray:
    r"""Triangulation embedding with sum aggregation.

    .. math:: \psi = \sum_{i=1}^{n} R(x_i) \quad \text{or, with a whitening,} \quad
        \psi = \sum_{i=1}^{n} P\,(R(x_i) - R_0) = P \Big(\sum_i R(x_i) - n R_0\Big)

    with :math:`R` of :func:`triangulation_directions`; then optional signed
    power normalisation and L2. Without ``whitening`` this is the raw
    embedding: the course then learns its own PCA-whitening of the image
    vectors (:class:`cbir_lab.whitening.PCAWhitening`), instead of the
    paper's whitening of each descriptor's embedding before the sum
    (:func:`fit_te_whitening`, offered here for comparison). The paper's
    democratic aggregation (weights that equalise each descriptor's
    contribution) is not implemented.

    Args:
        descs: local descriptors, shape (n, D).
        centroids: the vocabulary, shape (K, D), from :func:`fit_kmeans`
            (the paper uses a small one, K = 16 to 64).
        whitening: a :class:`TEWhitening` to apply to each descriptor's
            embedding before the sum, or ``None``.
        power: α in (0, 1] of the signed power normalisation; 1 switches it off.
        l2: L2-normalise the result.
        eps: the smallest distance divided by in :func:`triangulation_directions`.

    Returns:
        The embedding, shape (K·D,) or (d,) with a whitening, float32.

    Reference:
        Jégou & Zisserman, "Triangulation embedding and democratic aggregation
        for image search", CVPR 2014.

    Examples:
        >>> centroids = np.array([[0.0, 0.0], [4.0, 0.0]])
        >>> descs = np.array([[0.0, 3.0], [4.0, 3.0]])
        >>> triangulation_embedding(descs, centroids, l2=False)  # (0, 1) + (0.8, 0.6) | (-0.8, 0.6) + (0, 1)
        array([ 0.8,  1.6, -0.8,  1.6], dtype=float32)
    """
    x = _as_descs(descs)
    c = _as_centroids(centroids)
    _check_dim(x, c.shape[1], "vocabulary (centroids)")
    power = _check_power(power)
    # one centroid at a time, so that the (n, K·D) matrix of all directions is never held
    total = np.concatenate([l2n(x - ck, eps).sum(axis=0) for ck in c])
    if whitening is not None:
        if not isinstance(whitening, TEWhitening):
            raise ValueError(
                f"whitening must be a TEWhitening (from fit_te_whitening) or None, got {type(whitening).__name__}"
            )
        if whitening.dim != total.shape[0]:
            raise ValueError(f"whitening was fitted on dimension {whitening.dim}, but K·D = {total.shape[0]} here")
        # φ is affine, so the sum of the whitened embeddings is the whitening of their sum, less n times the mean
        total = whitening.projection @ (total - len(x) * whitening.mean)
    v = _signed_power(total, power)
    return (l2n(v) if l2 else v).astype(np.float32)


ENCODINGS: dict[str, Callable[..., np.ndarray]] = {
    "vlad": vlad,
    "fv": fisher_vector,
    "te": triangulation_embedding,
}


def encode(descs: Any, vocabulary: Any, method: str, **options: Any) -> np.ndarray:
    """Encode one set of local descriptors with a method named in :data:`ENCODINGS`.

    Args:
        descs: local descriptors, shape (n, D).
        vocabulary: centroids (K, D) for ``"vlad"`` and ``"te"``, a
            :class:`DiagonalGMM` for ``"fv"``.
        method: ``"vlad"``, ``"fv"`` or ``"te"``.
        **options: passed on, e.g. ``intra=True`` or ``power=0.5``.

    Returns:
        The encoding, shape (dim,), float32.

    Examples:
        >>> encode([[1.0, 0.0], [2.0, 0.0], [10.0, 4.0]], [[0.0, 0.0], [10.0, 0.0]], "vlad")
        array([0.6, 0. , 0. , 0.8], dtype=float32)
    """
    try:
        fn = ENCODINGS[method]
    except KeyError:
        raise ValueError(f"unknown encoding method {method!r}; choose one of {sorted(ENCODINGS)}") from None
    if method == "fv" and not isinstance(vocabulary, DiagonalGMM):
        raise ValueError(f"vocabulary for 'fv' must be a DiagonalGMM (from fit_gmm), got {type(vocabulary).__name__}")
    return fn(descs, vocabulary, **options)


def encode_all(maps: Sequence[Any], pca: LocalPCA | None, vocabulary: Any, method: str, **options: Any) -> np.ndarray:
    """Encode a list of feature maps, one image each: local descriptors → local PCA → encoding.

    Args:
        maps: feature maps, each (C, H, W), of any spatial sizes.
        pca: the :class:`LocalPCA` the vocabulary was trained after, or ``None``.
        vocabulary: centroids or a :class:`DiagonalGMM`, see :func:`encode`.
        method: ``"vlad"``, ``"fv"`` or ``"te"``.
        **options: passed on to the encoding.

    Returns:
        One encoding per map, shape (N, dim), float32.

    Examples:
        >>> maps = [np.ones((2, 3, 3)), np.zeros((2, 4, 2))]  # C = 2, 9 and 8 cells
        >>> encode_all(maps, None, np.array([[0.0, 0.0], [2.0, 2.0]]), "vlad", l2=False)  # 9 × (1, 1) | none
        array([[9., 9., 0., 0.],
               [0., 0., 0., 0.]], dtype=float32)
    """
    if len(maps) == 0:
        raise ValueError("maps is empty: no feature maps to encode")
    rows = []
    for m in maps:
        descs = local_descriptors(m)
        if pca is not None:
            descs = pca.transform(descs)
        rows.append(encode(descs, vocabulary, method, **options))
    return np.stack(rows)
