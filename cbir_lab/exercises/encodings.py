"""Self-checks for lessons 7 and 8: encoding local descriptors, and compressing descriptors for search at scale.

* :func:`check_vlad`: ``vlad_fn(descs, centroids) -> (K·D,)``, VLAD's residual
  sums, L2-normalised (:func:`cbir_lab.encodings.vlad`). Recognises sums of the
  descriptors instead of their residuals, means instead of sums, a missing L2,
  the blocks flattened dimension by dimension, and assignment to the farthest word.
* :func:`check_pq_encode`: ``encode_fn(x, codebooks) -> (n, m)``, product
  quantization's codes (Jégou, Douze & Schmid, TPAMI 2011). Recognises the
  largest inner product instead of the nearest sub-centroid, strided sub-vectors,
  and codes transposed.

Each check prints its feedback and returns a
:class:`~cbir_lab.exercises._feedback.CheckResult`; a stub that raises
``NotImplementedError`` gets a hint, never an error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cbir_lab.encodings import vlad
from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report

__all__ = ["check_vlad", "pq_example", "check_pq_encode"]


def _as_array(x) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)


def _l2(v: np.ndarray) -> np.ndarray:
    return v / max(np.linalg.norm(v), 1e-12)


# ---------------------------------------------------------------- VLAD


def check_vlad(vlad_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], verbose: bool = True) -> CheckResult:
    r"""Check ``vlad_fn(descs, centroids) -> (K·D,)``: :math:`\operatorname{L2}([v_1; \dots; v_K])`,
    :math:`v_k = \sum_{i \to k} (x_i - c_k)`, blocks in word order (no intra or power normalisation).

    Args:
        vlad_fn: the student's function; ``descs`` (n, D) and ``centroids`` (K, D) are numpy arrays.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`; ``failures`` names the slip (``no_residual``, ``mean``,
        ``no_l2``, ``transposed``, ``farthest``, ``shape``, ``wrong``, ``error``).
    """
    name = "VLAD"
    rng = np.random.default_rng(4)
    centroids = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])
    descs = centroids[rng.integers(0, 3, 14)] + rng.normal(0, 0.8, (14, 3))
    descs[:3] = centroids[0] + rng.normal(0, 0.8, (3, 3))  # every word gets descriptors ...
    descs[3] = centroids[1] + 0.3
    try:
        got = call_student(name, "Assign each descriptor to its nearest centroid, sum the residuals x - c per centroid, "
                                 "concatenate and L2-normalise.",
                           f"vlad_fn(descs of shape {descs.shape}, centroids of shape {centroids.shape})",
                           vlad_fn, descs.copy(), centroids.copy())
    except StudentCodeError as err:
        return report(err.result, verbose)
    got = _as_array(got)
    expected = vlad(descs, centroids).astype(np.float64)
    if got.shape == expected.shape and np.allclose(got, expected, atol=1e-5):
        return report(CheckResult(name, True, f"✓ {name}: right on {len(descs)} descriptors and {len(centroids)} words "
                                               f"({expected.size} dimensions). It matches cbir_lab.encodings.vlad."),
                      verbose)
    if got.size != expected.size:
        return report(CheckResult(name, False, f"✗ {name}: return one vector of K·D = {expected.size} numbers, got shape "
                                               f"{got.shape}.", failures=("shape",)), verbose)
    got = got.ravel()
    words = ((descs[:, None, :] - centroids[None]) ** 2).sum(-1)
    nearest, farthest = words.argmin(1), words.argmax(1)
    onehot = np.eye(len(centroids))[nearest]
    sums = onehot.T @ descs
    residuals = sums - onehot.sum(0)[:, None] * centroids
    means = residuals / np.maximum(onehot.sum(0)[:, None], 1)
    far = np.eye(len(centroids))[farthest]
    slips = [
        ("no_residual", _l2(sums.ravel()), "you summed the descriptors themselves: VLAD sums their *residuals* "
                                           "x - c_k to the word's centroid, which is what makes it discriminative."),
        ("mean", _l2(means.ravel()), "you averaged the residuals; VLAD sums them (a word with many descriptors weighs "
                                     "more: that is the burstiness power and intra-normalisation later tame)."),
        ("no_l2", residuals.ravel(), "right sums, but L2-normalise the concatenated vector at the end."),
        ("transposed", _l2(residuals.T.ravel()), "the blocks are flattened dimension by dimension: concatenate "
                                                  "v_1, v_2, … (word by word), e.g. residuals.ravel() of a (K, D) array."),
        ("farthest", _l2((far.T @ descs - far.sum(0)[:, None] * centroids).ravel()),
         "each descriptor went to its *farthest* centroid: take the argmin of the distances."),
    ]
    key, why = "wrong", f"expected {expected.round(3)[:6]}…, got {got.round(3)[:6]}…"
    for slip, candidate, explanation in slips:
        if np.allclose(got, candidate, atol=1e-5):
            key, why = slip, explanation
            break
    return report(CheckResult(name, False, f"✗ {name}: {why}", failures=(key,)), verbose)


# ---------------------------------------------------------------- product quantization


def pq_example(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Six 4-D vectors and m = 2 codebooks of 3 two-dimensional sub-centroids of different norms."""
    rng = np.random.default_rng(seed)
    codebooks = rng.normal(0, 1, (2, 3, 2)) * np.array([0.5, 1.0, 2.0])[None, :, None]
    x = rng.normal(0, 1, (6, 4))
    return x, codebooks


def check_pq_encode(encode_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], verbose: bool = True) -> CheckResult:
    r"""Check ``encode_fn(x, codebooks) -> (n, m)``: product quantization's codes.

    ``x`` is (n, D); ``codebooks`` is (m, K, D/m): sub-vector j of x is
    ``x[:, j*D/m:(j+1)*D/m]``, and its code is the index of its *nearest* sub-centroid
    in ``codebooks[j]``, :math:`\arg\min_k \lVert x^{(j)} - c^{(j)}_k \rVert`.

    Returns:
        The :class:`CheckResult`; ``failures``: ``inner_product``, ``strided``, ``transposed``,
        ``shape``, ``wrong``, ``error``.
    """
    name = "PQ codes"
    x, codebooks = pq_example()
    try:
        got = call_student(name, "Cut each vector into m sub-vectors and give each the index of its nearest sub-centroid.",
                           f"encode_fn(x of shape {x.shape}, codebooks of shape {codebooks.shape})",
                           encode_fn, x.copy(), codebooks.copy())
    except StudentCodeError as err:
        return report(err.result, verbose)
    got = np.asarray(got)
    m, k, sub = codebooks.shape

    def codes(split, score):
        return np.stack([score(split(j), codebooks[j]) for j in range(m)], axis=1)

    def contiguous(j):
        return x[:, j * sub:(j + 1) * sub]

    def strided(j):
        return x[:, j::m]

    def nearest(v, c):
        return ((v[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)

    def inner(v, c):
        return (v @ c.T).argmax(1)

    expected = codes(contiguous, nearest)
    n_bytes = m * int(np.ceil(np.log2(k) / 8))
    if got.shape == expected.shape and np.array_equal(got, expected):
        return report(CheckResult(name, True, f"✓ {name}: right for {len(x)} vectors. Each is now {m} small integers: "
                                               f"{n_bytes} bytes instead of {4 * x.shape[1]} in float32."), verbose)
    if got.shape == expected.T.shape and np.array_equal(got, expected.T):
        key, why = "transposed", f"return one row per vector, shape (n, m) = {expected.shape}."
    elif got.shape != expected.shape:
        key, why = "shape", f"return shape (n, m) = {expected.shape}, got {got.shape}."
    elif np.array_equal(got, codes(contiguous, inner)):
        key, why = "inner_product", ("you took the largest inner product; PQ takes the *nearest* sub-centroid "
                                     "(they differ when sub-centroids have different norms, as here).")
    elif np.array_equal(got, codes(strided, nearest)):
        key, why = "strided", "sub-vector j is the contiguous slice x[:, j*D/m:(j+1)*D/m], not every m-th coordinate."
    else:
        key, why = "wrong", f"expected {expected.tolist()}, got {got.tolist()}."
    return report(CheckResult(name, False, f"✗ {name}: {why}", failures=(key,)), verbose)
