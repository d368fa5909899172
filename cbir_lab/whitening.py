r"""Post-processing: L2-normalisation and PCA-whitening learned on a separate set.

* :func:`l2n`: row-wise L2 normalisation that leaves an all-zero vector at zero
  (never NaN); defined in :mod:`cbir_lab._array` and re-exported here.
* :class:`PCAWhitening`: a scikit-learn transformer doing
  L2 → centre → project on the top-d eigenvectors → divide by
  :math:`\lambda^{\text{power}}` → L2. ``power=0.5`` is full whitening,
  ``0`` plain PCA, values in between "partial whitening" (shrinkage).
  Its settings (d, power) are set in ``__init__``, as scikit-learn does, and
  :meth:`~PCAWhitening.transform` takes data only. One fit serves any (d, power):
  :meth:`~PCAWhitening.at` (the same fit at other settings, without refitting),
  :meth:`~PCAWhitening.projection` (the matrix), :meth:`~PCAWhitening.coordinates`
  and :meth:`~PCAWhitening.whiten_coordinates` (project once, then any (d, power)
  costs a slice: the whitening lab's sweeps). :meth:`PCAWhitening.transform_regions`
  is R-MAC's variant, which whitens each regional vector before summing.
* :func:`matching_pairs` and :class:`LearnedWhitening`: Radenović et al.'s learned
  whitening ("Lw"), fitted in closed form from pairs of images of the same object:
  whiten the differences of matching pairs, then rotate by the PCA of the rest.

The mean and eigenvectors come from the PCA core, :func:`cbir_lab._array.pca_eigen`.
This is the only module that divides by eigenvalue powers of image vectors. It does not import
PyTorch: tensors are accepted where arrays are, converted by :mod:`cbir_lab._array`.

References:
    Jégou & Chum, "Negative evidences and co-occurrences in image retrieval:
    the benefit of PCA and whitening", ECCV 2012; Babenko & Lempitsky, ICCV 2015;
    Tolias, Sicre & Jégou, ICLR 2016; Mikolajczyk & Matas, "Improving descriptors for fast tree
    matching by optimal linear projection", ICCV 2007, and Radenović, Tolias & Chum, ECCV 2016 /
    TPAMI 2018 (the learned whitening).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from cbir_lab._array import as_matrix, l2n, pca_eigen, to_numpy

__all__ = ["l2n", "PCAWhitening", "matching_pairs", "LearnedWhitening"]


def _as_matrix(x, name: str, n_features: int | None = None) -> np.ndarray:
    x = as_matrix(x, name, dtype=np.float64)
    if n_features is not None and x.shape[1] != n_features:
        raise ValueError(f"{name} has dimension {x.shape[1]}, but the whitening was fitted on dimension {n_features}")
    return x


class PCAWhitening(TransformerMixin, BaseEstimator):
    r"""L2 → PCA-whitening → L2, learned on a separate training set.

    .. math::
        x \mapsto \operatorname{L2}\!\Big(\operatorname{diag}(\lambda_{1..d})^{-\text{power}}
        U_{:,1..d}^\top (\operatorname{L2}(x) - m)\Big)

    where m and :math:`C = U \operatorname{diag}(\lambda) U^\top` are the mean
    and covariance of the L2-normalised training vectors. With
    ``power=0.5`` the pairwise similarities equal those of scikit-learn's
    ``PCA(whiten=True)`` followed by L2.

    Args:
        n_components: d, the output dimension; ``None`` keeps every component
            with non-negligible variance (at most n_train - 1 and D).
        power: exponent of the eigenvalues divided by; 0.5 full whitening,
            0 plain PCA (rotation + reduction), 0.25 dirtorch's partial whitening.
        rtol: eigenvalues below ``rtol`` × the largest count as zero; asking
            for such components is an error instead of dividing by ~0.

    Attributes:
        mean_: (D,) training mean.
        components_: (d, D) eigenvectors, by decreasing eigenvalue.
        eigenvalues_: (d,) the kept eigenvalues.
        all_eigenvalues_: every eigenvalue of the training covariance (for spectra).
        n_components_: d.
    """

    def __init__(self, n_components: int | None = None, power: float = 0.5, rtol: float = 1e-9) -> None:
        self.n_components = n_components
        self.power = power
        self.rtol = rtol

    def fit(self, X, y=None) -> "PCAWhitening":
        """Learn the mean and eigenvectors of L2-normalised ``X``, shape (n, D)."""
        X = _as_matrix(X, "X")
        n, dim = X.shape
        if n < 2:
            raise ValueError(f"PCAWhitening needs at least 2 training vectors, got {n}")
        if not (0.0 <= float(self.power) <= 1.0):
            raise ValueError(f"power must be in [0, 1] (0.5 is full whitening), got {self.power!r}")
        self.mean_, eigenvalues, vt, useful = pca_eigen(l2n(X), self.rtol)
        limit = min(n - 1, dim)
        if self.n_components is None:
            d = useful
        else:
            d = int(self.n_components)
            if d < 1 or d != self.n_components:
                raise ValueError(f"n_components must be a positive integer, got {self.n_components!r}")
            if d > limit:
                raise ValueError(
                    f"n_components={d} is more than {n} training vectors of dimension {dim} allow "
                    f"(at most min(n - 1, D) = {limit}); use a larger training set or fewer components"
                )
            if d > useful:
                raise ValueError(
                    f"n_components={d}, but only {useful} components of the training set have non-zero "
                    f"variance (the others would be divided by ~0); use n_components <= {useful}"
                )
        if d < 1:
            raise ValueError("the training vectors have no variance: all identical after L2-normalisation")
        self.all_eigenvalues_ = eigenvalues
        self.eigenvalues_ = eigenvalues[:d]
        self.components_ = vt[:d]
        self.n_components_ = d
        self.n_features_in_ = dim
        return self

    def _settings(self, n_components: int | None, power: float | None) -> tuple[int, float]:
        check_is_fitted(self, "components_")
        d = self.n_components_ if n_components is None else n_components
        if int(d) != d or not 1 <= d <= self.n_components_:
            raise ValueError(f"n_components must be an integer in 1..{self.n_components_} (what was fitted), got {n_components!r}")
        power = self.power if power is None else float(power)
        if not 0.0 <= power <= 1.0:
            raise ValueError(f"power must be in [0, 1] (0.5 is full whitening), got {power!r}")
        return int(d), power

    def projection(self, n_components: int | None = None, power: float | None = None) -> np.ndarray:
        r"""The whitening matrix :math:`P = \operatorname{diag}(\lambda_{1..d})^{-\text{power}} U_{:,1..d}^\top`.

        A whitened vector is :math:`\operatorname{L2}(P(\operatorname{L2}(x) - m))`, with m = ``mean_``.

        Args:
            n_components: d, at most the fitted ``n_components_`` (default: all of them).
            power: the eigenvalue exponent (default: the fitted ``power``).

        Returns:
            P, shape (d, D), float64.

        Examples:
            >>> w = PCAWhitening(power=0.5).fit(np.array([[3.0, 0.0], [0.0, 1.0], [-3.0, 0.0], [0.0, -1.0]]))
            >>> w.projection(1).shape
            (1, 2)
        """
        d, power = self._settings(n_components, power)
        return self.components_[:d] / (self.eigenvalues_[:d] ** power)[:, None]

    def coordinates(self, X) -> np.ndarray:
        """L2(X) centred and projected on every fitted eigenvector, not yet scaled: shape (n, n_components_), float32.

        Project a set once with this, then :meth:`whiten_coordinates` gives it at any (d, power).
        In float32, like the descriptors themselves: a sweep over 10⁴ vectors projects four
        times faster, and rankings do not change at that precision.
        """
        check_is_fitted(self, "components_")
        X = _as_matrix(X, "X", self.n_features_in_).astype(np.float32)
        return (l2n(X) - self.mean_.astype(np.float32)) @ self.components_.T.astype(np.float32)

    def whiten_coordinates(self, coordinates: np.ndarray, n_components: int | None = None,
                           power: float | None = None) -> np.ndarray:
        """Whitened, L2-normalised vectors from :meth:`coordinates`: L2(coords[:, :d] / λ^power), float32.

        The same as ``at(n_components, power).transform(X)``, for the price of a slice.
        """
        d, power = self._settings(n_components, power)
        coordinates = np.asarray(coordinates)
        if coordinates.ndim != 2 or coordinates.shape[1] < d:
            raise ValueError(f"coordinates must have shape (n, >= {d}), from PCAWhitening.coordinates; got {coordinates.shape}")
        scaled = coordinates[:, :d] * (self.eigenvalues_[:d] ** -power).astype(np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", scaled, scaled, dtype=np.float32))
        scaled /= np.maximum(norms, 1e-12)[:, None]  # in place: l2n would allocate a second (n, d) array
        return scaled

    def scaled_coordinates(self, coordinates: np.ndarray, power: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every coordinate divided by λ^power, and the squared norms of every prefix, for sweeps over d.

        Row i whitened to d dimensions is ``scaled[i, :d] / sqrt(prefix[i, d - 1])``: a
        sweep over d then needs no copy of the vectors per d.

        Returns:
            (scaled (n, k), prefix (n, k) with prefix[:, d - 1] = ‖scaled[:, :d]‖²), float32.
        """
        _, power = self._settings(None, power)
        coordinates = np.asarray(coordinates, dtype=np.float32)
        if coordinates.ndim != 2 or coordinates.shape[1] != self.n_components_:
            raise ValueError(f"coordinates must have shape (n, {self.n_components_}), from PCAWhitening.coordinates; "
                             f"got {coordinates.shape}")
        scaled = coordinates * (self.eigenvalues_ ** -power).astype(np.float32)
        return scaled, np.cumsum(scaled * scaled, axis=1, dtype=np.float32)

    def at(self, n_components: int | None = None, power: float | None = None) -> "PCAWhitening":
        """The same fit at other settings, without refitting: a :class:`PCAWhitening` as if fitted with them.

        The fit does not depend on ``power``, and fitting to d components keeps the first
        d of the eigenvectors, so the settings can change for the price of a slice (views
        of this fit's arrays, no copy): the sweeps over d and power of lessons 3, 7 and 8.

        Args:
            n_components: d, at most the fitted ``n_components_`` (default: all of them).
            power: the eigenvalue exponent (default: this one's ``power``).

        Examples:
            >>> w = PCAWhitening().fit(np.array([[3.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-3.0, 0.0, 0.0], [0.0, -1.0, 1.0]]))
            >>> w.n_components_, w.at(1, power=0.0).transform(np.ones((2, 3))).shape
            (3, (2, 1))
        """
        d, power = self._settings(n_components, power)
        other = PCAWhitening(n_components=self.n_components if d == self.n_components_ else d,
                             power=power, rtol=self.rtol)
        other.mean_, other.all_eigenvalues_ = self.mean_, self.all_eigenvalues_
        other.eigenvalues_, other.components_ = self.eigenvalues_[:d], self.components_[:d]
        other.n_components_, other.n_features_in_ = d, self.n_features_in_
        return other

    def project(self, X) -> np.ndarray:
        """The whitened coordinates before the final L2: (L2(X) - m) Pᵀ, shape (n, d), float64."""
        projection = self.projection()
        X = _as_matrix(X, "X", self.n_features_in_)
        return (l2n(X) - self.mean_) @ projection.T

    def transform(self, X) -> np.ndarray:
        """Whiten and L2-normalise ``X`` of shape (n, D) → (n, d), float32, at the fitted settings.

        For other settings of the same fit, see :meth:`at`.
        """
        return l2n(self.project(X)).astype(np.float32)

    def transform_regions(self, regions) -> np.ndarray:
        """R-MAC's variant: whiten each regional vector, L2, sum per image, L2.

        Args:
            regions: regional vectors, shape (n, R, D), or a list of n arrays (R_i, D)
                when images have different numbers of regions (see
                :func:`cbir_lab.pooling.regional_vectors`); the whitening should be
                fitted on regional vectors of another set.

        Returns:
            Global descriptors, shape (n, d), float32.

        Reference:
            Tolias, Sicre & Jégou, ICLR 2016, arXiv:1511.05879.
        """
        if not isinstance(regions, (list, tuple)):
            regions = to_numpy(regions)
        if isinstance(regions, np.ndarray):
            if regions.ndim != 3:
                raise ValueError(f"regions must have shape (n_images, n_regions, dim), got {regions.shape}")
            regions = list(regions)
        counts = [len(r) for r in regions]
        if not counts or min(counts) == 0:
            raise ValueError("transform_regions: every image needs at least one regional vector")
        # Whiten every region of every image in one matrix product, then sum each image's rows.
        whitened = self.transform(np.concatenate([np.asarray(r) for r in regions]))
        owner = np.repeat(np.arange(len(regions)), counts)
        summed = np.zeros((len(regions), whitened.shape[1]), dtype=np.float64)
        np.add.at(summed, owner, whitened)
        return l2n(summed).astype(np.float32)


def matching_pairs(labels) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i, j), i < j, of items with the same label: the matching pairs a learned whitening is fitted on.

    Args:
        labels: one label per item (an object, a landmark), shape (n,).

    Returns:
        (first, second): int64 index arrays of equal length, in the order of ``i`` then ``j``.

    Examples:
        >>> first, second = matching_pairs(["cup1", "cup2", "cup1", "cup1"])
        >>> first.tolist(), second.tolist()
        ([0, 0, 2], [2, 3, 3])
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one label per item, shape (n,), got shape {labels.shape}")
    i, j = np.triu_indices(len(labels), k=1)
    same = labels[i] == labels[j]
    return i[same].astype(np.int64), j[same].astype(np.int64)


class LearnedWhitening(TransformerMixin, BaseEstimator):
    r"""Learned whitening ("Lw"): L2 → :math:`P(x - m)` → L2, with P fitted from matching pairs.

    From the pairs :math:`(q_k, p_k)` of images of one object (one landmark), in closed form:

    .. math::
        m = \frac{1}{|Q|} \sum_{q \in Q} x_q, \qquad
        C_S = \frac{1}{K} \sum_k (x_{q_k} - x_{p_k})(x_{q_k} - x_{p_k})^\top = L L^\top, \qquad
        P_1 = L^{-1}

    then :math:`C_D = \frac{1}{n} \sum_i P_1 (x_i - m)(x_i - m)^\top P_1^\top = V \operatorname{diag}(\mu) V^\top`
    (decreasing μ) and :math:`P = V^\top P_1`; the first d rows of P are kept. :math:`P_1` makes the
    differences within an object isotropic (they no longer dominate any direction), and the rotation
    orders the directions by how much the whitened images still differ: between-object spread.
    PCA-whitening instead scales by the spread of all images, whatever the object.

    With fewer matching pairs than dimensions, :math:`C_S` is singular. ``shrinkage`` = α fits
    :math:`(1 - α) C_S + α \frac{\operatorname{tr} C_S}{D} I` instead (a Ledoit–Wolf-style shrinkage
    towards a sphere of the same total variance), which is invertible for any α > 0.

    Args:
        n_components: d, the output dimension (default: D, all of them).
        shrinkage: α in [0, 1), see above; 0 is the paper's estimator.

    Attributes:
        mean_: (D,) m.
        components_: (D, D) P, by decreasing μ.
        eigenvalues_: (D,) μ.
        n_components_, n_features_in_: d and D.

    Reference:
        Radenović, Tolias & Chum, "CNN image retrieval learns from BoW", ECCV 2016, and
        "Fine-tuning CNN image retrieval with no human annotation", TPAMI 2018 (cirtorch ``whitenlearn``);
        after Mikolajczyk & Matas, ICCV 2007.

    Examples:
        >>> X = np.array([[1.0, 0.0, 0.1], [1.0, 0.0, -0.1], [0.0, 1.0, 0.1], [0.0, 1.0, -0.1]])
        >>> w = LearnedWhitening(n_components=1, shrinkage=0.1).fit(X, ["a", "a", "b", "b"])
        >>> Y = w.transform(X)  # the views' difference (the third axis) is gone: views of one object coincide
        >>> np.round(Y @ Y.T, 3).tolist()
        [[1.0, 1.0, -1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [-1.0, -1.0, 1.0, 1.0], [-1.0, -1.0, 1.0, 1.0]]
    """

    def __init__(self, n_components: int | None = None, shrinkage: float = 0.0) -> None:
        self.n_components = n_components
        self.shrinkage = shrinkage

    def fit(self, X, y) -> "LearnedWhitening":
        """Fit on descriptors ``X`` (n, D) and their labels ``y`` (n,); every same-label pair is a matching pair."""
        X = _as_matrix(X, "X")
        first, second = matching_pairs(y)
        if len(np.asarray(y)) != len(X):
            raise ValueError(f"y must hold one label per row of X: {len(np.asarray(y))} labels for {len(X)} rows")
        return self.fit_pairs(X, first, second)

    def fit_pairs(self, X, query_idx, positive_idx) -> "LearnedWhitening":
        """Fit on descriptors ``X`` (n, D) and matching pairs ``(X[query_idx[k]], X[positive_idx[k]])``."""
        X = l2n(_as_matrix(X, "X"))
        n, dim = X.shape
        query_idx, positive_idx = (np.asarray(i, dtype=np.int64) for i in (query_idx, positive_idx))
        if query_idx.shape != positive_idx.shape or query_idx.ndim != 1 or len(query_idx) == 0:
            raise ValueError("LearnedWhitening needs at least one matching pair: query_idx and positive_idx must be "
                             f"1-d index arrays of equal length, got shapes {query_idx.shape} and {positive_idx.shape}")
        if min(query_idx.min(), positive_idx.min()) < 0 or max(query_idx.max(), positive_idx.max()) >= n:
            raise ValueError(f"pair indices must lie in 0..{n - 1} (the rows of X)")
        alpha = float(self.shrinkage)
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"shrinkage must be in [0, 1), got {self.shrinkage!r}")
        d = dim if self.n_components is None else self.n_components
        if isinstance(d, bool) or int(d) != d or not 1 <= d <= dim:
            raise ValueError(f"n_components must be an integer in 1..{dim}, got {self.n_components!r}")
        self.mean_ = X[np.unique(query_idx)].mean(axis=0)
        differences = X[query_idx] - X[positive_idx]
        within = differences.T @ differences / len(differences)
        if alpha > 0:
            within = (1 - alpha) * within + alpha * np.trace(within) / dim * np.eye(dim)
        try:
            lower = np.linalg.cholesky(within)
        except np.linalg.LinAlgError:
            rank = np.linalg.matrix_rank(within)
            raise ValueError(
                f"the within-object covariance of {len(differences)} matching pairs has rank {rank} < D = {dim}, "
                "so it cannot be inverted; use shrinkage > 0 (e.g. 0.1), more pairs, or reduce D first"
            ) from None
        whiten_within = np.linalg.inv(lower)
        spread = (X - self.mean_) @ whiten_within.T
        eigenvalues, vectors = np.linalg.eigh(spread.T @ spread / n)
        order = np.argsort(eigenvalues)[::-1]
        self.eigenvalues_ = np.clip(eigenvalues[order], 0.0, None)
        self.components_ = vectors[:, order].T @ whiten_within
        self.n_components_, self.n_features_in_ = int(d), dim
        return self

    def projection(self, n_components: int | None = None, power: float | None = None) -> np.ndarray:
        """P's first d rows, shape (d, D), float64 (as :meth:`PCAWhitening.projection`; Lw has no ``power``)."""
        check_is_fitted(self, "components_")
        if power is not None:
            raise ValueError("a learned whitening has no power setting: leave power=None")
        d = self.n_components_ if n_components is None else n_components
        if isinstance(d, bool) or int(d) != d or not 1 <= d <= self.n_features_in_:
            raise ValueError(f"n_components must be an integer in 1..{self.n_features_in_}, got {n_components!r}")
        return self.components_[: int(d)]

    def transform(self, X) -> np.ndarray:
        """L2(P (L2(X) - m)), shape (n, d), float32."""
        projection = self.projection()
        X = _as_matrix(X, "X", self.n_features_in_)
        return l2n((l2n(X) - self.mean_) @ projection.T).astype(np.float32)
