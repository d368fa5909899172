r"""Aggregation, first half: a conv feature map as a set of local descriptors, and what is learned on them.

A feature map (C, H, W) is H·W local descriptors of dimension C. Before sum
pooling (SPoC) took over, retrieval aggregated such sets with a vocabulary
learned on a separate set of descriptors. This module provides, in numpy, the
pipeline's steps up to the vocabulary:

* :func:`local_descriptors` / :func:`sample_local_descriptors`: the map's
  cells as rows, and a training sample drawn from many maps.
* :class:`LocalPCA`: the PCA (optionally whitened) that the papers apply to
  local descriptors before encoding them (the PCA core of :mod:`cbir_lab._array`,
  or scikit-learn's randomised PCA on samples where scikit-learn would use it).
* :class:`KMeansVocabulary` (centroids, VLAD's and the triangulation embedding's)
  and :class:`DiagonalGMM` (a diagonal Gaussian mixture with its posteriors, the
  Fisher vector's): the vocabularies.
* :func:`nearest_words`: each local descriptor's visual word.

What is learned follows scikit-learn's convention: settings in ``__init__``,
``fit(X)`` returns the estimator, the learned state ends in ``_``. The encodings
themselves (VLAD, Fisher vector, triangulation embedding) are in
:mod:`cbir_lab.encodings`.

References:
    Jégou, Douze, Schmid & Pérez, "Aggregating local descriptors into a compact
    image representation", CVPR 2010; Perronnin, Sánchez & Mensink, "Improving
    the Fisher kernel for large-scale image classification", ECCV 2010.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.utils.validation import check_is_fitted

from cbir_lab._array import as_matrix, check_finite, pca_eigen, to_numpy

__all__ = [
    "local_descriptors",
    "sample_local_descriptors",
    "LocalPCA",
    "KMeansVocabulary",
    "DiagonalGMM",
    "nearest_words",
]


# ----- input checks (shared with cbir_lab.encodings) ---------------------------------------------

def _as_descs(x: Any, name: str = "descs") -> np.ndarray:
    """Local descriptors as a finite float64 matrix (n, D), n ≥ 1."""
    x = as_matrix(x, name, dtype=np.float64)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {x.shape}")
    return x


def _as_centroids(c: Any, name: str = "centroids") -> np.ndarray:
    """Centroids (k, D) as float64, from an array or a fitted :class:`KMeansVocabulary`."""
    if isinstance(c, DiagonalGMM):
        raise ValueError(
            f"{name} must be a (k, D) array of centroids or a KMeansVocabulary, got a DiagonalGMM "
            "(that is the Fisher vector's vocabulary)"
        )
    if isinstance(c, KMeansVocabulary):
        check_is_fitted(c, "centroids_")
        c = c.centroids_
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


def _float_array(x: Any, name: str, ndim: int) -> np.ndarray:
    a = np.array(to_numpy(x), dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {a.shape}")
    check_finite(a, name)
    return a


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

class LocalPCA(TransformerMixin, BaseEstimator):
    r"""A PCA of local descriptors, as the papers do before encoding (to 64–128 dimensions): centre, project, optionally whiten.

    .. math:: C = \frac{1}{n-1} \sum_i (x_i - m)(x_i - m)^\top = U \operatorname{diag}(\lambda) U^\top,
        \qquad x \mapsto \operatorname{diag}(s)^{-1}\, U_{:,1..d}^\top (x - m)

    keeping the d eigenvectors of largest eigenvalue, with s = 1 (plain PCA) or
    :math:`s = \sqrt{\lambda}` (whitening: every kept direction has unit variance
    on the training set). Learned exactly by :func:`cbir_lab._array.pca_eigen`,
    with scikit-learn's signs (each component's largest entry positive), except
    where scikit-learn's ``PCA`` would choose its randomised solver: there
    ``solver="auto"`` still uses it, so that the course's numbers stay those of
    scikit-learn's ``PCA``.

    Args:
        n_components: d, at most min(n, D) of the training set.
        whiten: divide by the square roots of the eigenvalues.
        rtol: with ``whiten``, eigenvalues below ``rtol`` × the largest count as
            zero; asking for such components is an error instead of dividing by ~0.
        solver: ``"exact"`` (the PCA core), ``"randomized"`` (scikit-learn's
            randomised SVD, Halko et al. 2011: approximate) or ``"auto"``, scikit-learn's
            choice: randomised when D > 1000 or n < 10·D, and max(n, D) > 500, and
            d < 0.8·min(n, D); exact otherwise. On lesson 7's 18,196 × 1,280 sample
            the exact one is about 4 times faster, but its 64 axes differ in the
            tail (near-equal eigenvalues), which moves lesson 7's mAPs.
        seed: ``random_state`` of the randomised solver.

    Attributes:
        mean_: m, shape (D,).
        components_: :math:`U_{:,1..d}^\top`, shape (d, D), one principal axis per row.
        explained_variance_: :math:`\lambda_{1..d}`, shape (d,).
        scale_: s, shape (d,).
        n_features_in_: D.

    Reference:
        Jégou et al., CVPR 2010 (PCA of SIFT before VLAD); Jégou & Chum, ECCV
        2012 (whitening).

    Examples:
        >>> descs = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])  # on a line
        >>> pca = LocalPCA(n_components=1, whiten=True).fit(descs)
        >>> pca.components_.shape, pca.transform(descs).shape
        ((1, 2), (4, 1))
        >>> round(float(pca.transform(descs).var(ddof=1)), 6)  # whitened: unit variance
        1.0
    """

    def __init__(self, n_components: int = 64, whiten: bool = False, rtol: float = 1e-9, solver: str = "auto",
                 seed: int = 0) -> None:
        self.n_components = n_components
        self.whiten = whiten
        self.rtol = rtol
        self.solver = solver
        self.seed = seed

    def fit(self, X: Any, y: Any = None) -> "LocalPCA":
        """Learn the mean and the top ``n_components`` eigenvectors of training descriptors (n, D)."""
        x = _as_descs(X, "local_descs")
        n, dim = x.shape
        if n < 2:
            raise ValueError(f"LocalPCA needs at least 2 descriptors in local_descs, got {n}")
        d, limit = self.n_components, min(n, dim)
        if not (_is_int(d) and 1 <= d <= limit):
            raise ValueError(f"n_components must be an integer in [1, min(n, D) = {limit}], got {d!r}")
        d = int(d)
        if self.solver not in ("auto", "exact", "randomized"):
            raise ValueError(f"solver must be 'auto', 'exact' or 'randomized', got {self.solver!r}")
        randomized = self.solver == "randomized" or self.solver == "auto" and (
            not (dim <= 1000 and n >= 10 * dim) and max(n, dim) > 500 and d < 0.8 * limit)
        if randomized:
            pca = PCA(n_components=d, svd_solver="randomized", random_state=self.seed).fit(x)
            mean, components, variances = pca.mean_, pca.components_, pca.explained_variance_
            n_useful = int((variances > self.rtol * max(variances.max(), np.finfo(float).tiny)).sum())
        else:
            mean, eigenvalues, components, n_useful = pca_eigen(x, self.rtol, fix_signs=True)
            components, variances = components[:d], eigenvalues[:d]
        if self.whiten:
            if n_useful < d:
                raise ValueError(
                    f"n_components={d} with whiten=True, but only {n_useful} directions of local_descs "
                    f"have non-zero variance (the others would be divided by ~0); use n_components <= {n_useful}"
                )
            self.scale_ = np.sqrt(variances)
        else:
            self.scale_ = np.ones(d)
        self.mean_, self.components_, self.explained_variance_ = mean, components, variances
        self.n_features_in_ = dim
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Reduce local descriptors (n, D) → (n, d), float32."""
        check_is_fitted(self, "components_")
        x = _as_descs(X)
        _check_dim(x, self.n_features_in_, "LocalPCA")
        return ((x - self.mean_) @ self.components_.T / self.scale_).astype(np.float32)


# ----- vocabularies ------------------------------------------------------------------------------

def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    # the ‖x‖² term is the same for every centroid, so it drops out of the argmin
    scores = (centroids**2).sum(axis=1) - 2.0 * x @ centroids.T
    return scores.argmin(axis=1)


class KMeansVocabulary(BaseEstimator):
    r"""A k-means vocabulary of local descriptors (VLAD's and the triangulation embedding's): the visual words.

    .. math:: \min_{c_1..c_k} \sum_i \min_j \lVert x_i - c_j \rVert^2

    Args:
        k: the vocabulary size.
        seed: ``random_state`` of scikit-learn's clustering; the same seed gives
            the same centroids.
        n_init: how many initialisations scikit-learn tries, keeping the best.
        minibatch_above: above this many descriptors use ``MiniBatchKMeans``
            (a feature map gives hundreds of descriptors per image, so a training
            set quickly reaches 10⁵), else the exact ``KMeans``.

    Attributes:
        centroids_: :math:`c_1..c_k`, shape (k, D), float32; pass them (or the
            vocabulary itself) to :func:`cbir_lab.encodings.vlad`.
        n_features_in_: D.

    Reference:
        Jégou et al., CVPR 2010.

    Examples:
        >>> descs = np.array([[0.0], [1.0], [10.0], [11.0]])
        >>> words = KMeansVocabulary(k=2).fit(descs)
        >>> np.sort(words.centroids_[:, 0])
        array([ 0.5, 10.5], dtype=float32)
        >>> words.predict([[2.0], [9.0]]).tolist() == words.predict([[0.0], [11.0]]).tolist()
        True
    """

    def __init__(self, k: int = 64, seed: int = 0, n_init: int = 3, minibatch_above: int = 20_000) -> None:
        self.k = k
        self.seed = seed
        self.n_init = n_init
        self.minibatch_above = minibatch_above

    def fit(self, X: Any, y: Any = None) -> "KMeansVocabulary":
        """Cluster training descriptors (n, D), n ≥ k."""
        x = _as_descs(X, "local_descs")
        k = _check_k(self.k, len(x))
        if len(x) > self.minibatch_above:
            model = MiniBatchKMeans(n_clusters=k, n_init=self.n_init, random_state=self.seed,
                                    batch_size=max(1024, 4 * k))
        else:
            model = KMeans(n_clusters=k, n_init=self.n_init, random_state=self.seed)
        self.centroids_ = model.fit(x).cluster_centers_.astype(np.float32)
        self.n_features_in_ = x.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Each descriptor's visual word, as :func:`nearest_words`: int64, shape (n,)."""
        return nearest_words(X, self)


class DiagonalGMM(BaseEstimator):
    r"""A Gaussian mixture with diagonal covariances, learned by EM: the Fisher vector's vocabulary.

    .. math:: p(x) = \sum_{k=1}^{K} w_k\, \mathcal{N}\big(x;\ \mu_k, \operatorname{diag}(\sigma_k^2)\big), \qquad
        \max_{w, \mu, \sigma} \sum_i \log p(x_i)

    fitted by scikit-learn's ``GaussianMixture``; :meth:`from_arrays` makes one by hand.

    Args:
        k: the number of Gaussians K.
        seed: ``random_state`` of the k-means initialisation; the same seed
            gives the same mixture.
        max_iter: EM iterations at most.
        reg_covar: added to every variance, so that a Gaussian on a single
            point keeps a positive variance.

    Attributes:
        weights_: :math:`w`, shape (K,), positive, summing to 1.
        means_: :math:`\mu`, shape (K, D).
        variances_: :math:`\sigma^2`, shape (K, D), positive.
        n_features_in_: D.

    Reference:
        Perronnin, Sánchez & Mensink, ECCV 2010.

    Examples:
        >>> descs = np.array([[0.0], [1.0], [10.0], [11.0]])
        >>> gmm = DiagonalGMM(k=2).fit(descs)
        >>> np.sort(gmm.means_[:, 0]), gmm.weights_
        (array([ 0.5, 10.5]), array([0.5, 0.5]))
    """

    def __init__(self, k: int = 16, seed: int = 0, max_iter: int = 100, reg_covar: float = 1e-6) -> None:
        self.k = k
        self.seed = seed
        self.max_iter = max_iter
        self.reg_covar = reg_covar

    def fit(self, X: Any, y: Any = None) -> "DiagonalGMM":
        """Learn the mixture on training descriptors (n, D), n ≥ k."""
        x = _as_descs(X, "local_descs")
        k = _check_k(self.k, len(x))
        model = GaussianMixture(n_components=k, covariance_type="diag", random_state=self.seed,
                                max_iter=self.max_iter, reg_covar=self.reg_covar).fit(x)
        return self._set(model.weights_, model.means_, model.covariances_)

    @classmethod
    def from_arrays(cls, weights: Any, means: Any, variances: Any) -> "DiagonalGMM":
        """A fitted mixture made by hand, from its weights (K,), means (K, D) and variances (K, D).

        Examples:
            >>> DiagonalGMM.from_arrays([0.25, 0.75], [[0.0], [4.0]], [[1.0], [2.0]]).means_.shape
            (2, 1)
        """
        weights = _float_array(weights, "weights", 1)
        return cls(k=len(weights))._set(weights, means, variances)

    def _set(self, weights: Any, means: Any, variances: Any) -> "DiagonalGMM":
        weights = _float_array(weights, "weights", 1)
        means = _float_array(means, "means", 2)
        variances = _float_array(variances, "variances", 2)
        if means.shape[0] != weights.shape[0] or variances.shape != means.shape:
            raise ValueError(
                "weights (K,), means (K, D) and variances (K, D) disagree: "
                f"shapes {weights.shape}, {means.shape}, {variances.shape}"
            )
        if not (weights > 0).all() or abs(weights.sum() - 1.0) > 1e-6:
            raise ValueError(f"weights must be positive and sum to 1, got {weights}")
        if not (variances > 0).all():
            raise ValueError("variances must all be > 0")
        self.weights_, self.means_, self.variances_ = weights, means, variances
        self.n_features_in_ = means.shape[1]
        return self

    def log_joint(self, descs: Any) -> np.ndarray:
        r""":math:`\log w_k + \log \mathcal{N}(x_i; \mu_k, \sigma_k^2)`, shape (n, K), float64."""
        check_is_fitted(self, "means_")
        x = _as_descs(descs)
        _check_dim(x, self.n_features_in_, "DiagonalGMM")
        precisions = 1.0 / self.variances_
        # ‖(x - μ)/σ‖² expanded into matrix products, as scikit-learn does: one BLAS call instead of a
        # loop over K; rounding can leave it slightly negative, and a squared distance is not
        mahalanobis = (
            (x**2) @ precisions.T - 2.0 * x @ (self.means_ * precisions).T + (self.means_**2 * precisions).sum(axis=1)
        )
        mahalanobis = np.maximum(mahalanobis, 0.0)
        log_norm = self.n_features_in_ * math.log(2.0 * math.pi) + np.log(self.variances_).sum(axis=1)
        return np.log(self.weights_) - 0.5 * (log_norm + mahalanobis)

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
            >>> gmm = DiagonalGMM.from_arrays([0.5, 0.5], [[0.0], [4.0]], [[1.0], [1.0]])
            >>> gmm.posteriors([[2.0], [1e6]])  # halfway; far beyond the second Gaussian
            array([[0.5, 0.5],
                   [0. , 1. ]])
        """
        log_joint = self.log_joint(descs)
        top = log_joint.max(axis=1, keepdims=True)
        log_evidence = top + np.log(np.exp(log_joint - top).sum(axis=1, keepdims=True))
        return np.exp(log_joint - log_evidence)


def nearest_words(descs: Any, centroids: Any) -> np.ndarray:
    r"""Each local descriptor's visual word: the index of its nearest centroid, :math:`\arg\min_k \lVert x - c_k \rVert`.

    Args:
        descs: local descriptors, shape (n, D).
        centroids: the vocabulary, shape (K, D), or a fitted :class:`KMeansVocabulary`.

    Returns:
        int64, shape (n,), values in 0..K-1.

    Examples:
        >>> nearest_words([[1.0, 0.0], [9.0, 1.0]], [[0.0, 0.0], [10.0, 0.0]]).tolist()
        [0, 1]
    """
    x, c = _as_descs(descs), _as_centroids(centroids)
    _check_dim(x, c.shape[1], "vocabulary (centroids)")
    return _nearest(x, c).astype(np.int64)
