r"""Self-checks for the prerequisites the course assumes, asked at the start of lesson 1 ("Before you start").

Three small exercises, one per prerequisite; each check names the slip and says
where to revise when the answer is wrong:

* :func:`check_squared_distances`: NumPy broadcasting. ``fn(a, b)`` with ``a``
  (n, D) and ``b`` (m, D) returns the (n, m) squared Euclidean distances,
  :math:`\lVert a_i - b_j \rVert^2`, without a Python loop (the computation
  behind VLAD's and product quantization's nearest centroids, lessons 7 and 8).
* :func:`check_conv_output_size`: a convolution's output size,
  :math:`\lfloor (n + 2p - k) / s \rfloor + 1` for an input of n cells, kernel k,
  stride s and padding p on each side (Dumoulin & Visin, "A guide to convolution
  arithmetic for deep learning", 2016, relationship 6).
* :func:`check_top_eigenvector`: the unit eigenvector of a symmetric matrix's
  largest eigenvalue (what PCA keeps first, lesson 3); either sign is right.
"""

from __future__ import annotations

import numbers
from typing import Callable

import numpy as np

from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report

__all__ = [
    "BROADCASTING_REVISION",
    "CONV_ARITHMETIC_REVISION",
    "EIGENVECTOR_REVISION",
    "distance_test_data",
    "reference_squared_distances",
    "check_squared_distances",
    "CONV_OUTPUT_CASES",
    "reference_conv_output_size",
    "check_conv_output_size",
    "EIGENVECTOR_MATRICES",
    "reference_top_eigenvector",
    "check_top_eigenvector",
]

#: Where to revise when a check fails.
BROADCASTING_REVISION = ("NumPy's guide to broadcasting, https://numpy.org/doc/stable/user/basics.broadcasting.html "
                         "(the rules, and the example of `x[:, None] - y[None, :]`)")
CONV_ARITHMETIC_REVISION = ("Dumoulin & Visin, 'A guide to convolution arithmetic for deep learning' (2016, "
                            "arXiv:1603.07285), chapter 2, relationship 6")
EIGENVECTOR_REVISION = ("an eigenvector v of a matrix A is a non-zero vector with A v = λ v; revise it in any linear "
                        "algebra text (Strang, 'Introduction to Linear Algebra', chapter 6) and read numpy's "
                        "documentation of np.linalg.eigh (its eigenvalues come in ascending order, its eigenvectors "
                        "are the columns)")


def _revise(where: str) -> str:
    return f"To revise: {where}."


# --------------------------------------------------------------------------- broadcasting


def distance_test_data(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pairs (a, b) the broadcasting check runs on: n ≠ m ≠ D, so that a transposed result shows.

    Returns:
        [(a (4, 3), b (5, 3)), (a (2, 6), b (3, 6)), (a (1, 2), b (1, 2))], float64.
    """
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(4, 3)), rng.normal(size=(5, 3))),
            (rng.normal(size=(2, 6)), rng.normal(size=(3, 6))),
            (np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]))]


def reference_squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""Every squared Euclidean distance between the rows of ``a`` and those of ``b``, by broadcasting.

    .. math:: D_{ij} = \lVert a_i - b_j \rVert^2 = \sum_d (a_{id} - b_{jd})^2

    Args:
        a: (n, D).
        b: (m, D).

    Returns:
        (n, m).

    Examples:
        >>> reference_squared_distances(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [1.0, 0.0]])).tolist()
        [[25.0, 1.0]]
    """
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)


def _as_array(value) -> np.ndarray | None:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def check_squared_distances(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], verbose: bool = True) -> CheckResult:
    """Check ``fn(a, b) -> (n, m)`` squared distances on :func:`distance_test_data`.

    Names the usual slips: subtracting (n, D) and (m, D) directly (an error, or the
    wrong shape), the differences not summed over D (shape (n, m, D)), a sum over
    the wrong axis, the distances not squared, the result transposed.

    Args:
        fn: the student's function.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`.
    """
    name = "broadcasting"
    for a, b in distance_test_data():
        call = f"fn(a of shape {a.shape}, b of shape {b.shape})"
        try:
            got = call_student(name, "Return the (n, m) squared distances between the rows of a and those of b, without a loop.",
                               call, fn, a.copy(), b.copy())
        except StudentCodeError as failure:
            result = failure.result
            if "error" in result.failures:  # most often: a - b of shapes (n, D) and (m, D) does not broadcast
                result = CheckResult(name, False, f"{result.message}\nHint: a - b needs shapes that broadcast: give "
                                     "a an axis for b's rows and b one for a's rows, a[:, None, :] - b[None, :, :] "
                                     f"has shape (n, m, D). {_revise(BROADCASTING_REVISION)}", failures=("error",))
            return report(result, verbose)
        expected = reference_squared_distances(a, b)
        out = _as_array(got)
        if out is not None and out.shape == expected.shape and np.allclose(out, expected):
            continue
        diff = a[:, None, :] - b[None, :, :]
        if out is None:
            key, why = "wrong", f"return a numpy array of shape {expected.shape}, got {type(got).__name__}."
        elif out.shape == diff.shape and np.allclose(out, diff**2):
            key, why = "no_sum", (f"your result has shape {out.shape}, (n, m, D): the squared differences are not "
                                  "summed over the D coordinates; add .sum(axis=2) (or axis=-1).")
        elif out.shape == expected.T.shape and np.allclose(out, expected.T):
            key, why = "transposed", (f"your result is transposed: shape {out.shape}; row i must be a's row i, "
                                      f"column j b's row j, so shape {expected.shape}.")
        elif out.shape == expected.shape and np.allclose(out, np.sqrt(expected)):
            key, why = "not_squared", "you returned the distances themselves: square them (skip the square root)."
        elif out.shape == expected.shape and np.allclose(out, (diff.sum(axis=2)) ** 2):
            key, why = "sum_first", "you summed the differences before squaring them: square each coordinate, then sum."
        elif out.shape != expected.shape:
            key, why = "shape", (f"the result must have shape (n, m) = {expected.shape}, one distance per pair of "
                                 f"rows; yours has shape {out.shape}. Broadcast a[:, None, :] against "
                                 "b[None, :, :], then sum over the last axis.")
        else:
            key, why = "wrong", (f"for a = {np.round(a[0], 3).tolist()}, … expected {np.round(expected[0], 4).tolist()} "
                                 f"(first row), got {np.round(out[0], 4).tolist()}.")
        message = f"✗ {name}, {call}: {why}\n{_revise(BROADCASTING_REVISION)}"
        return report(CheckResult(name, False, message, failures=(key,)), verbose)
    return report(CheckResult(name, True, f"✓ {name}: right on {len(distance_test_data())} cases. The (n, m, D) "
                              "array of differences is what broadcasting builds; lessons 7 and 8 use it to find each "
                              "descriptor's nearest centroid."), verbose)


# --------------------------------------------------------------------------- a convolution's output size

#: (input size n, kernel k, stride s, padding p) cases the check runs, each telling a slip apart.
CONV_OUTPUT_CASES: tuple[tuple[int, int, int, int], ...] = (
    (5, 3, 1, 0),
    (5, 3, 1, 1),
    (7, 3, 2, 1),
    (8, 3, 2, 1),
    (224, 7, 2, 3),
    (6, 4, 3, 0),
    (13, 5, 2, 2),
    (10, 3, 1, 2),
)


def reference_conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    r"""The output size of a convolution (or pooling) along one axis.

    .. math:: n' = \left\lfloor \frac{n + 2p - k}{s} \right\rfloor + 1

    for n input cells, kernel k, stride s and p cells of padding on *each* side.
    With k = 3, s = 2, p = 1 this is :math:`\lceil n / 2 \rceil`, lesson 1's halving.

    Args:
        n: the input size.
        kernel: k.
        stride: s.
        padding: p, added on each side.

    Returns:
        n'.

    Reference:
        Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016,
        arXiv:1603.07285 (relationship 6).

    Examples:
        >>> reference_conv_output_size(224, 7, 2, 3)  # ResNet's first convolution
        112
    """
    return (n + 2 * padding - kernel) // stride + 1


def _conv_slips(n: int, k: int, s: int, p: int) -> dict[str, float]:
    """What the usual slips give for one case, to name them in the feedback."""
    return {
        "no_plus_one": (n + 2 * p - k) // s,
        "padding_once": (n + p - k) // s + 1,
        "no_padding": (n - k) // s + 1,
        "ceil": -(-(n + 2 * p - k) // s) + 1,
        "not_floored": (n + 2 * p - k) / s + 1,
        "no_stride": n + 2 * p - k + 1,
    }


def check_conv_output_size(fn: Callable[[int, int, int, int], int], verbose: bool = True) -> CheckResult:
    """Check ``fn(n, kernel, stride, padding) -> output size`` on :data:`CONV_OUTPUT_CASES`.

    Args:
        fn: the student's function.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`, naming each failing case and the likely slip.
    """
    name = "convolution output size"
    hints = {
        "no_plus_one": "Count the positions of the kernel: the first one sits at 0, so add 1 after dividing.",
        "padding_once": "The padding p is added on *each* side: the padded input has n + 2p cells.",
        "no_padding": "You left out the padding: the padded input has n + 2p cells.",
        "ceil": ("You rounded up. A kernel position must fit inside the padded input, so the partial step at the end "
                 "does not count: round (n + 2p - k) / s *down*."),
        "not_floored": "An output has a whole number of cells: round (n + 2p - k) / s down (//), then add 1.",
        "no_stride": "The kernel moves s cells at a time: divide (n + 2p - k) by the stride before adding 1.",
        "not_int": "Sizes are whole cells: return an int (use //), not a float.",
    }
    lines, candidates = [], []
    for n, k, s, p in CONV_OUTPUT_CASES:
        expected = reference_conv_output_size(n, k, s, p)
        call = f"fn({n}, kernel={k}, stride={s}, padding={p})"
        try:
            got = call_student(name, "Return how many cells the convolution outputs along this axis.", call, fn, n, k, s, p)
        except StudentCodeError as failure:
            return report(failure.result, verbose)
        if isinstance(got, numbers.Integral) and got == expected:
            continue
        if isinstance(got, numbers.Real) and got == expected:
            slips = ["not_int"]
        else:
            slips = [slip for slip, value in _conv_slips(n, k, s, p).items()
                     if isinstance(got, numbers.Real) and got == value and value != expected]
        lines.append(f"✗ n = {n}, kernel {k}, stride {s}, padding {p}: expected {expected}, got {got!r}")
        candidates.append(slips or ["wrong"])
    # One slip explains every failing case better than a coincidence in one of them: name it alone when there is one.
    shared = [slip for slip in candidates[0] if all(slip in c for c in candidates)] if candidates else []
    failures = [shared[0]] * len(candidates) if shared else [c[0] for c in candidates]
    if not failures:
        return report(CheckResult(name, True, f"✓ {name}: all {len(CONV_OUTPUT_CASES)} cases right. With kernel 3, "
                                  "stride 2 and padding 1 the formula gives ⌈n / 2⌉: each stride-2 layer of section 2 "
                                  "halves the map, rounding up."), verbose)
    header = f"{name}: {len(failures)} of {len(CONV_OUTPUT_CASES)} cases wrong."
    advice = [f"Hint: {hints[key]}" for key in dict.fromkeys(failures) if key in hints]
    message = "\n".join([header, *lines, *advice, _revise(CONV_ARITHMETIC_REVISION)])
    return report(CheckResult(name, False, message, failures=tuple(failures)), verbose)


# --------------------------------------------------------------------------- an eigenvector

#: Symmetric matrices the eigenvector check runs on. The 3 × 3 one has an eigenvector matrix that is not symmetric,
#: so a row taken for a column shows; the second has a negative eigenvalue, so a largest |λ| is not the largest λ.
EIGENVECTOR_MATRICES: tuple[np.ndarray, ...] = (
    np.array([[2.0, 1.0], [1.0, 2.0]]),
    np.array([[1.0, 2.0], [2.0, -2.0]]),
    np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 1.0]]),
)


def reference_top_eigenvector(matrix: np.ndarray) -> np.ndarray:
    r"""The unit eigenvector of a symmetric matrix's largest eigenvalue: :math:`A v = \lambda_1 v`, :math:`\lVert v \rVert = 1`.

    Args:
        matrix: (D, D), symmetric.

    Returns:
        v, shape (D,); its sign is arbitrary (−v is as right).

    Examples:
        >>> np.abs(reference_top_eigenvector(np.array([[2.0, 1.0], [1.0, 2.0]]))).round(4).tolist()  # λ = 3
        [0.7071, 0.7071]
    """
    values, vectors = np.linalg.eigh(matrix)
    return vectors[:, np.argmax(values)]


def check_top_eigenvector(fn: Callable[[np.ndarray], np.ndarray], verbose: bool = True) -> CheckResult:
    """Check ``fn(matrix) -> v`` on :data:`EIGENVECTOR_MATRICES`: a unit eigenvector of the largest eigenvalue.

    Either sign passes. Names the usual slips: the eigenvector of the smallest (or
    another) eigenvalue (``np.linalg.eigh`` sorts them in ascending order), a row of
    the eigenvector matrix instead of a column, a vector not of unit length, the
    eigenvalue instead of the vector.

    Args:
        fn: the student's function.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`.
    """
    name = "eigenvector"
    for matrix in EIGENVECTOR_MATRICES:
        call = f"fn({matrix.tolist()})"
        try:
            got = call_student(name, "Return the unit eigenvector of the largest eigenvalue (np.linalg.eigh helps).",
                               call, fn, matrix.copy())
        except StudentCodeError as failure:
            return report(failure.result, verbose)
        values, vectors = np.linalg.eigh(matrix)
        expected = vectors[:, np.argmax(values)]
        v = _as_array(got)
        if v is not None and v.shape == expected.shape and np.isclose(abs(v @ expected), 1.0, atol=1e-6) \
                and np.isclose(np.linalg.norm(v), 1.0, atol=1e-6):
            continue
        norm = np.linalg.norm(v) if v is not None and v.shape == expected.shape else 0.0
        if v is None or v.shape != expected.shape:
            if v is not None and v.size == 1 and np.isclose(float(v.ravel()[0]), values.max()):
                key, why = "eigenvalue", "you returned the eigenvalue λ; return its eigenvector v (A v = λ v)."
            else:
                shape = None if v is None else v.shape
                key, why = "shape", (f"return one vector of shape {expected.shape}, got "
                                     f"{type(got).__name__ if v is None else 'shape ' + str(shape)}.")
        elif norm > 0 and np.allclose(matrix @ v, (v @ matrix @ v / norm**2) * v, atol=1e-6):
            value = v @ matrix @ v / norm**2
            if not np.isclose(value, values.max()):
                smallest = np.isclose(value, values.min())
                key = "smallest" if smallest else "other_eigenvalue"
                why = (f"your vector is an eigenvector, of λ = {value:.4g}, not of the largest eigenvalue "
                       f"{values.max():.4g}" + (": np.linalg.eigh sorts the eigenvalues in *ascending* order, so the "
                                                "largest one's vector is the last column" if smallest else "") + ".")
            else:
                key, why = "not_unit", (f"the direction is right but its length is {norm:.4g}: divide by its norm, "
                                        "so that ‖v‖ = 1.")
        elif any(np.isclose(abs(v @ row) / max(norm, 1e-300), 1.0, atol=1e-6) for row in vectors):
            key, why = "row", ("you took a row of the eigenvector matrix; np.linalg.eigh returns the eigenvectors as "
                               "its *columns*: vectors[:, i].")
        else:
            key, why = "wrong", (f"A v is not a multiple of v: A v = {np.round(matrix @ v, 4).tolist()} for "
                                 f"v = {np.round(v, 4).tolist()}.")
        message = f"✗ {name}, {call}: {why}\n{_revise(EIGENVECTOR_REVISION)}"
        return report(CheckResult(name, False, message, failures=(key,)), verbose)
    return report(CheckResult(name, True, f"✓ {name}: right on {len(EIGENVECTOR_MATRICES)} matrices (either sign is "
                              "right). PCA (lesson 3) keeps the eigenvectors of the largest eigenvalues of a "
                              "covariance matrix first."), verbose)
