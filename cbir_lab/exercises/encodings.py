"""Self-checks for lessons 7 and 8: encoding local descriptors, and compressing descriptors for search at scale.

* :func:`check_vlad`: ``vlad_fn(descs, centroids) -> (K·D,)``, VLAD's residual
  sums, L2-normalised (:func:`cbir_lab.encodings.vlad`). Recognises sums of the
  descriptors instead of their residuals, means instead of sums, a missing L2,
  the blocks flattened dimension by dimension, and assignment to the farthest word.
* :func:`check_fisher_mean_gradient`: ``grad_fn(descs, posteriors, weight, mean, sigma) -> (D,)``,
  one Gaussian's block of the Fisher vector, the gradient with respect to its mean
  (:func:`cbir_lab.encodings.fisher_vector`), within a relative 1e-4. Recognises a
  forgotten 1/σ (or σ² in its place), a forgotten 1/√w, dividing by the posteriors'
  sum instead of n, and the posteriors left out.
* :func:`check_pq_encode`: ``encode_fn(x, codebooks) -> (n, m)``, product
  quantization's codes (Jégou, Douze & Schmid, TPAMI 2011). Recognises the
  largest inner product instead of the nearest sub-centroid, strided sub-vectors,
  and codes transposed.
* :func:`check_adc_distances`: ``adc_fn(query, codes, codebooks) -> (n,)``, asymmetric
  distance computation: squared distances from an uncompressed query to the coded
  vectors, through one table per sub-space, within a relative 1e-4. Recognises the
  symmetric distance (the query quantized too), distances not squared, a square root
  per sub-space, strided sub-vectors, and inner products.

Each check prints its feedback and returns a
:class:`~cbir_lab.exercises._feedback.CheckResult`; a stub that raises
``NotImplementedError`` gets a hint, never an error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cbir_lab.encodings import vlad
from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report

__all__ = ["check_vlad", "check_fisher_mean_gradient", "pq_example", "check_pq_encode", "check_adc_distances"]


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


# ---------------------------------------------------------------- one component of the Fisher vector


def _fisher_example() -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
    """Ten 3-D descriptors, their posteriors for one Gaussian (weight 0.3), its mean and deviations (σ ≠ 1)."""
    rng = np.random.default_rng(8)
    descs = rng.normal(0.0, 1.5, (10, 3))
    posteriors = rng.uniform(0.05, 0.95, 10)
    return descs, posteriors, 0.3, np.array([0.5, -1.0, 0.0]), np.array([0.5, 2.0, 1.5])


def _fisher_mean(descs, posteriors, weight, mean, sigma, n=None, use_sigma=1, use_weight=True, use_gamma=True):
    gamma = posteriors if use_gamma else np.ones_like(posteriors)
    n = len(descs) if n is None else n
    scaled = (descs - mean) / sigma**use_sigma
    return (gamma[:, None] * scaled).sum(axis=0) / (n * (np.sqrt(weight) if use_weight else 1.0))


def check_fisher_mean_gradient(grad_fn: Callable, verbose: bool = True) -> CheckResult:
    r"""Check ``grad_fn(descs, posteriors, weight, mean, sigma) -> (D,)``: the Fisher vector's block for one Gaussian's mean.

    .. math:: \mathcal{G}^{\mu}_k = \frac{1}{n \sqrt{w_k}} \sum_{i=1}^{n} \gamma_i(k)\, \frac{x_i - \mu_k}{\sigma_k}

    (element-wise in the D dimensions), before power and L2 normalisation: the block
    :func:`cbir_lab.encodings.fisher_vector` computes for word k. Compared with a
    relative tolerance of 1e-4 (float32 sums pass).

    Args:
        grad_fn: the student's function; ``descs`` (n, D), ``posteriors`` (n,) the γ_i(k) of
            this Gaussian, ``weight`` its mixture weight w_k, ``mean`` and ``sigma`` (D,)
            its mean and standard deviations.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`; ``failures``: ``no_sigma``, ``variance``, ``no_weight``,
        ``by_posteriors``, ``no_posteriors``, ``shape``, ``wrong``, ``error``.
    """
    name = "Fisher vector, one mean's gradient"
    descs, posteriors, weight, mean, sigma = _fisher_example()
    try:
        got = call_student(name, "Sum γ_i (x_i − μ)/σ over the descriptors, then divide by n·√w.",
                           f"grad_fn(descs of shape {descs.shape}, posteriors of shape {posteriors.shape}, "
                           f"weight={weight}, mean, sigma)", grad_fn, descs.copy(), posteriors.copy(), weight,
                           mean.copy(), sigma.copy())
    except StudentCodeError as err:
        return report(err.result, verbose)
    got = _as_array(got)
    expected = _fisher_mean(descs, posteriors, weight, mean, sigma)
    if got.shape == expected.shape and np.allclose(got, expected, rtol=1e-4, atol=1e-7):
        message = (f"✓ {name}: {np.round(got, 4)} for a Gaussian of weight {weight} over {len(descs)} descriptors. "
                   "fisher_vector concatenates this block for every Gaussian, then the deviations' blocks.")
        return report(CheckResult(name, True, message), verbose)
    if got.size != expected.size:
        return report(CheckResult(name, False, f"✗ {name}: return one value per dimension, shape {expected.shape}; "
                                               f"got {got.shape}. Sum over the descriptors (axis 0).",
                                  failures=("shape",)), verbose)
    got = got.ravel()
    slips = [
        ("no_sigma", _fisher_mean(descs, posteriors, weight, mean, sigma, use_sigma=0),
         "divide each residual x − μ by σ (per dimension): the gradient is measured in units of the Gaussian's spread."),
        ("variance", _fisher_mean(descs, posteriors, weight, mean, sigma, use_sigma=2),
         "you divided by σ²: that is the raw gradient of the log-likelihood; the Fisher vector normalises it by the "
         "Fisher information, which leaves (x − μ)/σ."),
        ("no_weight", _fisher_mean(descs, posteriors, weight, mean, sigma, use_weight=False),
         "divide by √w as well: without it, a Gaussian that many descriptors fall into dominates the vector."),
        ("by_posteriors", _fisher_mean(descs, posteriors, weight, mean, sigma, n=posteriors.sum()),
         "divide by n, the number of descriptors, not by the sum of this Gaussian's posteriors: the 1/(n√w) is the "
         "Fisher information's normalisation."),
        ("no_posteriors", _fisher_mean(descs, posteriors, weight, mean, sigma, use_gamma=False),
         "weight each residual by its posterior γ_i(k): a descriptor far from this Gaussian should hardly count."),
    ]
    key, why = "wrong", f"expected {np.round(expected, 4)}, got {np.round(got, 4)}."
    for slip, candidate, explanation in slips:
        if np.allclose(got, candidate, rtol=1e-4, atol=1e-7):
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


# ---------------------------------------------------------------- asymmetric distances


def _adc_example() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A query, codebooks (m = 2, K = 3, 2-D sub-vectors of different norms) and the codes of six vectors."""
    x, codebooks = pq_example()
    m, _, sub = codebooks.shape
    codes = np.stack([((x[:, j * sub:(j + 1) * sub][:, None, :] - codebooks[j][None]) ** 2).sum(-1).argmin(1)
                      for j in range(m)], axis=1)
    query = np.random.default_rng(9).normal(0, 1, x.shape[1])
    return query, codes.astype(np.uint8), codebooks


def check_adc_distances(adc_fn: Callable, verbose: bool = True) -> CheckResult:
    r"""Check ``adc_fn(query, codes, codebooks) -> (n,)``: asymmetric distance computation (Jégou et al. 2011).

    With sub-vector j of the query :math:`q^{(j)}` (the contiguous slice) and one table per
    sub-space, :math:`T_j[k] = \lVert q^{(j)} - c^{(j)}_k \rVert^2`, the squared distance to a
    coded vector is :math:`\sum_j T_j[\mathrm{code}_j]`: the distance to its reconstruction,
    the query itself never quantized. Compared with a relative tolerance of 1e-4.

    Args:
        adc_fn: the student's function; ``query`` (D,), ``codes`` (n, m) integers,
            ``codebooks`` (m, K, D/m).
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`; ``failures``: ``symmetric``, ``not_squared``, ``sqrt_per_subspace``,
        ``strided``, ``inner_product``, ``shape``, ``wrong``, ``error``.
    """
    name = "ADC distances"
    query, codes, codebooks = _adc_example()
    m, k, sub = codebooks.shape
    try:
        got = call_student(name, "Build one table of squared distances per sub-space, then add up the entries the "
                                 "codes select.", f"adc_fn(query of shape {query.shape}, codes of shape {codes.shape}, "
                                 f"codebooks of shape {codebooks.shape})", adc_fn, query.copy(), codes.copy(),
                           codebooks.copy())
    except StudentCodeError as err:
        return report(err.result, verbose)
    got = _as_array(got).ravel()

    def tables(split, score):
        return np.stack([score(split(j), codebooks[j]) for j in range(m)])  # (m, K)

    def contiguous(j):
        return query[j * sub:(j + 1) * sub]

    def strided(j):
        return query[j::m]

    def squared(v, c):
        return ((c - v[None]) ** 2).sum(-1)

    def lookup(table):
        return table[np.arange(m)[None, :], codes].sum(axis=1)

    expected = lookup(tables(contiguous, squared))
    if got.shape == expected.shape and np.allclose(got, expected, rtol=1e-4, atol=1e-7):
        message = (f"✓ {name}: right for {len(codes)} coded vectors, with {m} tables of {k} entries: each distance is "
                   f"{m} look-ups and {m - 1} addition{'s' if m > 2 else ''}, whatever the dimension.")
        return report(CheckResult(name, True, message), verbose)
    if got.shape != expected.shape:
        return report(CheckResult(name, False, f"✗ {name}: return one distance per coded vector, shape {expected.shape}; "
                                               f"got {got.shape}.", failures=("shape",)), verbose)
    query_codes = tables(contiguous, squared).argmin(axis=1)  # the query's own code, for the symmetric version
    symmetric = np.array([sum(((codebooks[j][query_codes[j]] - codebooks[j][codes[i, j]]) ** 2).sum() for j in range(m))
                          for i in range(len(codes))])
    slips = [
        ("symmetric", symmetric, "you quantized the query too (symmetric distance). ADC keeps the query exact: "
                                 "compare its own sub-vectors with the sub-centroids; only the database is compressed."),
        ("not_squared", np.sqrt(expected), "return squared distances, the sum of the tables' squared entries: the square "
                                           "root is not needed to rank, and it breaks the sum over sub-spaces."),
        ("sqrt_per_subspace", lookup(np.sqrt(tables(contiguous, squared))),
         "you added per-sub-space distances; add their *squares*: ‖q − x̂‖² = Σ_j ‖q⁽ʲ⁾ − c⁽ʲ⁾‖²."),
        ("strided", lookup(tables(strided, squared)),
         "sub-vector j is the contiguous slice query[j*D/m:(j+1)*D/m], as the codes were made, not every m-th coordinate."),
        ("inner_product", lookup(tables(contiguous, lambda v, c: c @ v)),
         "those are inner products; ADC adds squared distances (smaller is closer)."),
    ]
    key, why = "wrong", f"expected {np.round(expected, 3)}, got {np.round(got, 3)}."
    for slip, candidate, explanation in slips:
        if np.allclose(got, candidate, rtol=1e-4, atol=1e-7):
            key, why = slip, explanation
            break
    return report(CheckResult(name, False, f"✗ {name}: {why}", failures=(key,)), verbose)
