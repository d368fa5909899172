r"""The basement: array helpers every stage shares, in numpy alone.

* :func:`l2n`: row-wise L2 normalisation, the one definition of it in cbir_lab.
* :func:`as_matrix`: an input as a 2-D, finite float array, or a :class:`ValueError`
  that names the parameter and what is wrong with it.
* :func:`check_finite`: the finiteness check :func:`as_matrix` makes, fast on large arrays.
* :func:`to_numpy`: a numpy array from an array-like or a torch tensor.
* :func:`as_feature_map`: one image's (C, H, W) feature map as a finite float64 array.
* :func:`covariance` and :func:`pca_eigen` → :class:`PCAEigen`: the one PCA core (mean,
  float64 covariance, eigenvalues in decreasing order, the rank rule) that the image
  whitening, the local PCA (its exact solver) and the triangulation embedding's
  whitening all use.

This module imports nothing of cbir_lab and never imports torch: a torch tensor is
recognised by its class, so the numpy-only stages (aggregation, whitening, the stored
collections) can use it without paying seconds for torch.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["l2n", "as_matrix", "as_feature_map", "check_finite", "to_numpy", "covariance", "PCAEigen", "pca_eigen"]


def _is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (or a subclass: ``nn.Parameter``), known by its class alone.

    Not by ``isinstance(x, sys.modules["torch"].Tensor)``: a stage that imports torch lazily
    (:mod:`cbir_lab.pooling`) leaves a stand-in there, whose ``.Tensor`` would import torch.
    """
    return any(cls.__name__ == "Tensor" and cls.__module__ == "torch" for cls in type(x).__mro__)


def to_numpy(x: Any) -> np.ndarray:
    """``x`` as a numpy array: a torch tensor is detached and copied to the CPU, anything else goes
    through :func:`numpy.asarray` (no copy when it is already an array).

    Examples:
        >>> to_numpy([[1, 2]]).shape
        (1, 2)
    """
    if _is_tensor(x):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def l2n(x: Any, eps: float = 1e-12) -> Any:
    r"""L2-normalise each row (the last axis): :math:`x / \max(\lVert x \rVert_2, \epsilon)`.

    A row of norm below ``eps`` is divided by ``eps`` instead: an all-zero row stays
    all zero (never NaN), and a row of tiny norm is scaled up but stays shorter than 1.

    Args:
        x: vectors, shape (..., D): a numpy array (or array-like) or a torch tensor.
            Integers are converted to float32.
        eps: the smallest norm divided by.

    Returns:
        The same type and shape as ``x`` (a numpy array for an array-like), the float
        dtype kept: rows of unit norm, or zero.

    Examples:
        >>> l2n(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
        [[0.6, 0.8], [0.0, 0.0]]
    """
    if _is_tensor(x):
        return x / x.norm(dim=-1, keepdim=True).clamp(min=eps)
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    # einsum sums the squares without the (n, D) temporary that linalg.norm makes
    norms = np.sqrt(np.einsum("...i,...i->...", x, x))[..., None]
    return x / np.maximum(norms, eps)


def check_finite(x: np.ndarray, name: str) -> None:
    """Raise a :class:`ValueError` naming ``name`` if ``x`` holds a NaN or an infinity.

    The sum of squares (one BLAS dot, no (n, D) mask) is finite when every value is,
    barring overflow; only when it is not are the values checked one by one, which
    also counts them for the message. Over 10⁵ descriptors this was half of one
    query's time as a plain ``np.isfinite(x).all()``.

    Args:
        x: a float array of any shape.
        name: the parameter's name, for the message.

    Raises:
        ValueError: e.g. ``"query_vecs contains NaN or infinite values (3 of 12)"``.

    Examples:
        >>> check_finite(np.array([[1.0, np.nan], [np.inf, 0.0]]), "query_vecs")
        Traceback (most recent call last):
        ...
        ValueError: query_vecs contains NaN or infinite values (2 of 4)
    """
    flat = np.ravel(x)
    if not np.issubdtype(flat.dtype, np.inexact):
        return  # integers and booleans are always finite
    with np.errstate(over="ignore", invalid="ignore"):
        sum_of_squares = np.dot(flat, flat)
    if np.isfinite(sum_of_squares):
        return
    bad = int(flat.size - np.count_nonzero(np.isfinite(flat)))
    if bad:
        raise ValueError(f"{name} contains NaN or infinite values ({bad} of {flat.size})")


def as_matrix(x: Any, name: str, *, dtype: Any = np.float32, vector: bool = False) -> np.ndarray:
    """``x`` as a 2-D, finite, C-contiguous float array (n, D), or an error that names ``name``.

    Args:
        x: an array-like or a torch tensor.
        name: the parameter's name, for the messages.
        dtype: the float dtype returned (a copy is made only when needed).
        vector: accept one vector of shape (D,), returned as (1, D).

    Returns:
        The array, shape (n, D), of ``dtype``.

    Raises:
        ValueError: not 2-D (or 1-D with ``vector``); a NaN or an infinite value.

    Examples:
        >>> as_matrix([1, 2], "query_vecs", vector=True)
        array([[1., 2.]], dtype=float32)
        >>> as_matrix([1.0, 2.0], "db_vecs")
        Traceback (most recent call last):
        ...
        ValueError: db_vecs must be a 2-D array (n, dim), got shape (2,)
    """
    x = to_numpy(x)
    if vector and x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, dim), got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=dtype)
    check_finite(x, name)
    return x


def as_feature_map(feature_map: Any) -> np.ndarray:
    """One image's feature map (C, H, W) (or (1, C, H, W)) as a finite float64 array, or a :class:`ValueError`.

    Examples:
        >>> as_feature_map(np.ones((1, 2, 3, 4), np.float32)).shape
        (2, 3, 4)
        >>> as_feature_map(np.ones((2, 3)))
        Traceback (most recent call last):
        ...
        ValueError: feature_map must have shape (C, H, W), got (2, 3)
    """
    x = np.asarray(to_numpy(feature_map), dtype=np.float64)
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3 or min(x.shape) == 0:
        raise ValueError(f"feature_map must have shape (C, H, W), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("feature_map contains NaN or infinite values")
    return x
# ----- the PCA core ------------------------------------------------------------------------------

def covariance(vectors: Any) -> np.ndarray:
    r"""The covariance of row vectors, in float64: :math:`C = \frac{1}{n-1}(X - \bar X)^\top (X - \bar X)`.

    Args:
        vectors: (n, D), n ≥ 2.

    Returns:
        C, shape (D, D), float64.

    Examples:
        >>> covariance([[0.0, 0.0], [2.0, 2.0]])
        array([[2., 2.],
               [2., 2.]])
    """
    vectors = np.asarray(to_numpy(vectors), dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] < 2:
        raise ValueError(f"covariance needs an (n, D) array with n >= 2, got shape {vectors.shape}")
    centred = vectors - vectors.mean(axis=0)
    return centred.T @ centred / (vectors.shape[0] - 1)


class PCAEigen(NamedTuple):
    """What :func:`pca_eigen` learns from n rows of dimension D.

    Attributes:
        mean: m, shape (D,), float64.
        eigenvalues: λ, decreasing, ≥ 0: min(n, D) of them (n ≤ D) or D (n > D).
        components: the eigenvectors :math:`U^\top`, one per row, in the order of ``eigenvalues``.
        n_useful: how many eigenvalues count as non-zero (the rank rule of :func:`pca_eigen`).
    """

    mean: np.ndarray
    eigenvalues: np.ndarray
    components: np.ndarray
    n_useful: int


def pca_eigen(x: Any, rtol: float = 1e-9, *, fix_signs: bool = False) -> PCAEigen:
    r"""Mean and eigen-decomposition of the covariance of rows: the PCA every stage of cbir_lab learns.

    .. math:: m = \frac{1}{n} \sum_i x_i, \qquad
        \frac{1}{n-1} \sum_i (x_i - m)(x_i - m)^\top = U \operatorname{diag}(\lambda) U^\top,
        \quad \lambda_1 \ge \lambda_2 \ge \dots \ge 0

    in float64. Few, long vectors (n ≤ D, a few hundred training images): the SVD of
    the centred data, :math:`\lambda = s^2 / (n-1)`, costs O(n²D) and never forms a
    D × D matrix. Many vectors (n > D): ``eigh`` of the D × D covariance costs
    O(nD² + D³), several times less than the SVD's O(nD²) with its larger constant.

    The rank rule: an eigenvalue counts as non-zero when it is above ``rtol`` × the
    largest, and at most min(n - 1, D) do (n centred points span n - 1 dimensions);
    dividing by the others would divide by rounding noise.

    Args:
        x: rows, shape (n, D), n ≥ 2 (converted to float64).
        rtol: the relative tolerance of the rank rule.
        fix_signs: flip each eigenvector so that its entry of largest magnitude is
            positive (scikit-learn's ``svd_flip(u_based_decision=False)``); otherwise
            the signs are LAPACK's, arbitrary but unchanged for the same input.

    Returns:
        :class:`PCAEigen` (mean, eigenvalues, components, n_useful).

    Reference:
        Jolliffe, "Principal Component Analysis", 2002; Jégou & Chum, ECCV 2012 (PCA-whitening).

    Examples:
        >>> pca = pca_eigen([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], fix_signs=True)  # on a line
        >>> pca.mean.tolist(), pca.n_useful
        ([1.5, 1.5], 1)
        >>> np.round(pca.eigenvalues, 6).tolist(), np.round(pca.components[0], 6).tolist()
        ([3.333333, 0.0], [0.707107, 0.707107])
    """
    x = np.asarray(to_numpy(x), dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"a PCA needs an (n, D) array with n >= 2 rows, got shape {x.shape}")
    n, dim = x.shape
    mean = x.mean(axis=0)
    centred = x - mean
    if n <= dim:
        _, singular, components = np.linalg.svd(centred, full_matrices=False)
        eigenvalues = singular**2 / (n - 1)
    else:
        eigenvalues, vectors = np.linalg.eigh(centred.T @ centred / (n - 1))
        eigenvalues = np.clip(eigenvalues[::-1], 0.0, None)
        components = np.ascontiguousarray(vectors[:, ::-1].T)
    if fix_signs:
        signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
        components *= np.where(signs == 0, 1.0, signs)[:, None]
    n_useful = int((eigenvalues > rtol * max(eigenvalues[0], np.finfo(float).tiny)).sum())
    return PCAEigen(mean, eigenvalues, components, min(n_useful, n - 1, dim))
