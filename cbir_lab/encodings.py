r"""Aggregation, second half: the encodings of a set of local descriptors with a learned vocabulary.

With the local descriptors, the local PCA and the vocabularies of
:mod:`cbir_lab.aggregation`, this module provides, in numpy:

* :func:`vlad` (and :func:`vlad_blocks`, its K × D matrix): vector of locally
  aggregated descriptors (Jégou et al., CVPR 2010), with the intra-normalisation
  of Arandjelović & Zisserman (CVPR 2013).
* :func:`fisher_vector`: the improved Fisher vector (Perronnin, Sánchez &
  Mensink, ECCV 2010).
* :func:`triangulation_directions` / :func:`triangulation_embedding`, with
  :class:`TEWhitening` (a scikit-learn estimator on the PCA core of
  :mod:`cbir_lab._array`): the triangulation embedding with sum aggregation
  (Jégou & Zisserman, CVPR 2014).
* :func:`encode` / :func:`encode_all`: one encoding by name, for one set of
  descriptors or for a list of feature maps.

The encodings are pure functions, the arithmetic in view; every one returns one
float32 vector per image. PCA-whitening of those vectors comes later, in
:mod:`cbir_lab.whitening`.

References:
    Jégou, Douze, Schmid & Pérez, "Aggregating local descriptors into a compact
    image representation", CVPR 2010; Arandjelović & Zisserman, "All about
    VLAD", CVPR 2013; Perronnin, Sánchez & Mensink, "Improving the Fisher kernel
    for large-scale image classification", ECCV 2010; Jégou & Zisserman,
    "Triangulation embedding and democratic aggregation for image search",
    CVPR 2014.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from cbir_lab._array import l2n, pca_eigen
from cbir_lab.aggregation import (DiagonalGMM, LocalPCA, _as_centroids, _as_descs, _check_dim, _is_int, _nearest,
                                  local_descriptors)

__all__ = [
    "vlad",
    "vlad_blocks",
    "fisher_vector",
    "triangulation_directions",
    "TEWhitening",
    "triangulation_embedding",
    "ENCODINGS",
    "encode",
    "encode_all",
]


# ----- normalisations ----------------------------------------------------------------------------

def _check_power(power: float) -> float:
    if not (isinstance(power, (int, float)) and not isinstance(power, bool) and 0.0 < power <= 1.0):
        raise ValueError(
            f"power must be a number in (0, 1] (1 leaves the vector unchanged, 0.5 is the signed square root), got {power!r}"
        )
    return float(power)


def _signed_power(v: np.ndarray, power: float) -> np.ndarray:
    return v if power == 1.0 else np.sign(v) * np.abs(v) ** power


# ----- encodings ---------------------------------------------------------------------------------

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
        centroids: the vocabulary, shape (K, D), from :class:`~cbir_lab.aggregation.KMeansVocabulary` (its ``centroids_``, or the vocabulary itself).
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
        gmm: the vocabulary, a fitted :class:`~cbir_lab.aggregation.DiagonalGMM`.
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
        >>> gmm = DiagonalGMM.from_arrays([1.0], [[0.0, 0.0]], [[1.0, 1.0]])
        >>> descs = np.array([[1.0, 0.0], [-1.0, 2.0]])  # one Gaussian: every posterior is 1
        >>> fisher_vector(descs, gmm, power=1.0, l2=False)  # G_mu = (0, 2)/2, G_sigma = (0, 2)/(2 sqrt 2)
        array([0.        , 1.        , 0.        , 0.70710677], dtype=float32)
    """
    if not isinstance(gmm, DiagonalGMM):
        raise ValueError(f"gmm must be a fitted DiagonalGMM, got {type(gmm).__name__}")
    x = _as_descs(descs)
    check_is_fitted(gmm, "means_")
    _check_dim(x, gmm.n_features_in_, "vocabulary (DiagonalGMM)")
    power = _check_power(power)
    n = len(x)
    gamma = gmm.posteriors(x)
    sigma = np.sqrt(gmm.variances_)
    # the zeroth, first and second order statistics: three matrix products instead of a loop over K
    s0 = gamma.sum(axis=0)[:, None]
    s1 = gamma.T @ x
    s2 = gamma.T @ (x**2)
    mu = gmm.means_
    sum_mu = (s1 - s0 * mu) / sigma  # Σ γ (x − μ)/σ
    sum_sigma = (s2 - 2.0 * mu * s1 + s0 * mu**2) / gmm.variances_ - s0  # Σ γ [(x − μ)²/σ² − 1]
    w = gmm.weights_[:, None]
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
        centroids: the vocabulary, shape (K, D), from :class:`~cbir_lab.aggregation.KMeansVocabulary` (its ``centroids_``, or the vocabulary itself).
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


class TEWhitening(TransformerMixin, BaseEstimator):
    r"""The triangulation embedding's centring and whitening, learned on training descriptors' embeddings.

    .. math:: \frac{1}{n-1}\sum_i (R(x_i) - R_0)(R(x_i) - R_0)^\top = U \operatorname{diag}(\lambda) U^\top,
        \qquad \phi(x) = P\, (R(x) - R_0), \quad P = \operatorname{diag}(\lambda)^{-1/2} U^\top

    learned by :func:`cbir_lab._array.pca_eigen`. The paper whitens the
    per-descriptor embedding :math:`R(x)` and then discards the first
    (largest-eigenvalue) components; ``drop`` is that number (the paper drops as
    many as the descriptors' dimension D, 128 for its SIFT).

    Args:
        drop: how many of the leading components to discard.
        rtol: eigenvalues below ``rtol`` × the largest count as zero and are
            left out instead of being divided by ~0 (with n ≤ K·D training
            descriptors the covariance is rank-deficient).

    Attributes:
        mean_: :math:`R_0`, shape (K·D,).
        projection_: P, shape (d, K·D).
        eigenvalues_: the kept :math:`\lambda`, shape (d,).
        n_features_in_: K·D.

    Reference:
        Jégou & Zisserman, CVPR 2014 (section 3).

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> centroids, train = rng.normal(size=(2, 3)), rng.normal(size=(100, 3))
        >>> white = TEWhitening(drop=1).fit(triangulation_directions(train, centroids))
        >>> white.projection_.shape  # K·D = 6 components, the first dropped
        (5, 6)
    """

    def __init__(self, drop: int = 0, rtol: float = 1e-9) -> None:
        self.drop = drop
        self.rtol = rtol

    def fit(self, X: Any, y: Any = None) -> "TEWhitening":
        """Learn :math:`R_0` and P on :func:`triangulation_directions` of training descriptors, shape (n, K·D),
        with n well above K·D for a stable covariance."""
        r = _as_descs(X, "embeddings")
        n = len(r)
        if n < 2:
            raise ValueError(f"TEWhitening needs at least 2 rows in embeddings, got {n}")
        drop = self.drop
        if not (_is_int(drop) and drop >= 0):
            raise ValueError(f"drop must be a non-negative integer, got {drop!r}")
        pca = pca_eigen(r, self.rtol)
        if drop >= pca.n_useful:
            raise ValueError(f"drop={drop}, but the embeddings have only {pca.n_useful} components of non-zero variance")
        keep = slice(int(drop), pca.n_useful)
        self.mean_, self.eigenvalues_ = pca.mean, pca.eigenvalues[keep]
        self.projection_ = pca.components[keep] / np.sqrt(self.eigenvalues_)[:, None]
        self.n_features_in_ = r.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """φ for each row of :func:`triangulation_directions`' output (n, K·D) → (n, d), float32."""
        check_is_fitted(self, "projection_")
        r = _as_descs(X, "embeddings")
        if r.shape[1] != self.n_features_in_:
            raise ValueError(f"embeddings have dimension {r.shape[1]}, "
                             f"but the TEWhitening was fitted on dimension {self.n_features_in_}")
        return ((r - self.mean_) @ self.projection_.T).astype(np.float32)


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
    (:class:`TEWhitening`, offered here for comparison). The paper's
    democratic aggregation (weights that equalise each descriptor's
    contribution) is not implemented.

    Args:
        descs: local descriptors, shape (n, D).
        centroids: the vocabulary, shape (K, D), from :class:`~cbir_lab.aggregation.KMeansVocabulary` (its ``centroids_``, or the vocabulary itself)
            (the paper uses a small one, K = 16 to 64).
        whitening: a fitted :class:`TEWhitening` to apply to each descriptor's
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
                f"whitening must be a fitted TEWhitening or None, got {type(whitening).__name__}"
            )
        check_is_fitted(whitening, "projection_")
        if whitening.n_features_in_ != total.shape[0]:
            raise ValueError(f"whitening was fitted on dimension {whitening.n_features_in_}, but K·D = {total.shape[0]} here")
        # φ is affine, so the sum of the whitened embeddings is the whitening of their sum, less n times the mean
        total = whitening.projection_ @ (total - len(x) * whitening.mean_)
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
        vocabulary: centroids (K, D) or a fitted :class:`~cbir_lab.aggregation.KMeansVocabulary`
            for ``"vlad"`` and ``"te"``, a fitted :class:`~cbir_lab.aggregation.DiagonalGMM` for ``"fv"``.
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
        raise ValueError(f"vocabulary for 'fv' must be a fitted DiagonalGMM, got {type(vocabulary).__name__}")
    return fn(descs, vocabulary, **options)


def encode_all(maps: Sequence[Any], pca: LocalPCA | None, vocabulary: Any, method: str, **options: Any) -> np.ndarray:
    """Encode a list of feature maps, one image each: local descriptors → local PCA → encoding.

    Args:
        maps: feature maps, each (C, H, W), of any spatial sizes.
        pca: the fitted :class:`~cbir_lab.aggregation.LocalPCA` the vocabulary was trained after, or ``None``.
        vocabulary: centroids, a :class:`~cbir_lab.aggregation.KMeansVocabulary` or a :class:`~cbir_lab.aggregation.DiagonalGMM`, see :func:`encode`.
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
