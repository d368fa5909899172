"""Self-checks for lesson 3 (PCA-whitening): whiten with numpy, and what partial whitening does.

:func:`check_whitened_variances` checks the variance each coordinate has after
dividing by λ^power (partial whitening, the power dirtorch defaults to 0.25).

:func:`check_whitening` compares a student's ``whiten_fn(train, x, d)`` with
:class:`cbir_lab.whitening.PCAWhitening` on synthetic data. Eigenvectors are
only defined up to sign, so it compares what retrieval uses, the inner products
between the whitened vectors, and it recognises the usual slips: no final L2,
plain PCA, dividing by λ instead of √λ, no centring, no first L2, the smallest
eigenvectors (``np.linalg.eigh`` sorts ascending), or learning on ``x``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report
from cbir_lab.whitening import PCAWhitening, l2n

__all__ = [
    "check_whitening",
    "whitening_test_data",
    "WHITENED_VARIANCE_CASES",
    "reference_whitened_variances",
    "check_whitened_variances",
]


def whitening_test_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Synthetic descriptors with a few dominant directions, like pooled CNN features.

    Returns:
        (train (80, 12), x (9, 12), d = 5): non-negative, unnormalised, float64.
    """
    rng = np.random.default_rng(seed)
    scales = np.geomspace(4.0, 0.2, 12)
    basis, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    train = np.abs(rng.normal(size=(80, 12)) * scales @ basis.T + 3.0)
    x = np.abs(rng.normal(size=(9, 12)) * scales @ basis.T + 3.0)
    return train, x, 5


def _eig(train: np.ndarray, l2_first: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, eigenvalues (descending) and eigenvectors (columns) of the training covariance."""
    data = l2n(train) if l2_first else train
    mean = data.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(data - mean, rowvar=False))
    order = np.argsort(values)[::-1]
    return mean, values[order], vectors[:, order]


def _variant(train, x, d, *, power=0.5, center=True, l2_first=True, l2_last=True, smallest=False) -> np.ndarray:
    mean, values, vectors = _eig(train, l2_first)
    keep = slice(len(values) - d, None) if smallest else slice(0, d)
    data = l2n(x) if l2_first else x
    projected = (data - (mean if center else 0.0)) @ vectors[:, keep] / values[keep] ** power
    return l2n(projected) if l2_last else projected


def _gram(v: np.ndarray) -> np.ndarray:
    return v @ v.T


def check_whitening(whiten_fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray], verbose: bool = True) -> CheckResult:
    r"""Check ``whiten_fn(train, x, d) -> (len(x), d)``: L2 → centre → PCA-whiten to d dims → L2, learned on ``train``.

    .. math:: x \mapsto \operatorname{L2}\big(\operatorname{diag}(\lambda_{1..d})^{-1/2} U_{:,1..d}^\top(\operatorname{L2}(x) - m)\big)

    Args:
        whiten_fn: the student's function; ``train`` (n, D) and ``x`` (m, D) are
            unnormalised float64 arrays.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`.
    """
    name = "PCA-whitening"
    train, x, d = whitening_test_data()
    try:
        out = call_student(name, "Learn the mean and eigenvectors on `train`, then whiten `x` to d dimensions.",
                           f"whiten_fn(train {train.shape}, x {x.shape}, d={d})", whiten_fn, train.copy(), x.copy(), d)
    except StudentCodeError as failure:
        return report(failure.result, verbose)
    out = np.asarray(out, dtype=np.float64)
    expected = PCAWhitening(n_components=d).fit(train).transform(x).astype(np.float64)
    if out.shape != expected.shape:
        hint = ""
        if out.shape == (x.shape[0], x.shape[1]):
            hint = " You kept every dimension: keep only the d eigenvectors with the largest eigenvalues."
        elif out.shape == expected.shape[::-1]:
            hint = " It is transposed: one row per vector of x."
        msg = f"✗ {name}: expected shape {expected.shape} (one row of d = {d} numbers per vector of x), got {out.shape}.{hint}"
        return report(CheckResult(name, False, msg, failures=("shape",)), verbose)
    if not np.isfinite(out).all():
        msg = f"✗ {name}: your result has NaN or inf. Did you divide by a zero eigenvalue, or normalise a zero vector?"
        return report(CheckResult(name, False, msg, failures=("nan",)), verbose)

    def same(candidate: np.ndarray) -> bool:
        return bool(np.allclose(_gram(out), _gram(candidate), atol=1e-6))

    if same(expected):
        message = (f"✓ {name}: your vectors give the same similarities as PCAWhitening(n_components={d}) "
                   "(eigenvector signs are arbitrary, so we compare inner products).")
        return report(CheckResult(name, True, message), verbose)
    norms = np.linalg.norm(out, axis=1)
    diagnoses = [
        ("no_l2_last", not np.allclose(norms, 1.0, atol=1e-6) and same(l2n(out)),
         "right directions, but the rows are not unit length: L2-normalise after whitening."),
        ("pca_only", same(_variant(train, x, d, power=0.0)),
         "this is plain PCA (a rotation): divide each coordinate by √λ of its component to whiten."),
        ("power_one", same(_variant(train, x, d, power=1.0)),
         "you divided by λ; whitening divides by √λ (the standard deviation), i.e. λ ** 0.5."),
        ("smallest", same(_variant(train, x, d, smallest=True)),
         "you kept the d *smallest* eigenvalues. np.linalg.eigh sorts them ascending: reverse the order first."),
        ("no_center", same(_variant(train, x, d, center=False)),
         "subtract the training mean m before projecting."),
        ("no_l2_first", same(_variant(train, x, d, l2_first=False)),
         "L2-normalise the vectors (train and x) *before* learning and applying the whitening."),
        ("fit_on_x", same(PCAWhitening(n_components=d).fit(x).transform(x)),
         "you learned the whitening on x itself. Learn it on `train` (a separate set) and apply it to x."),
    ]
    for key, hit, why in diagnoses:
        if hit:
            return report(CheckResult(name, False, f"✗ {name}: {why}", failures=(key,)), verbose)
    if not np.allclose(norms, 1.0, atol=1e-6):
        msg = f"✗ {name}: the rows should have unit length after the final L2; yours have norms {norms[:3].round(3)}…"
        return report(CheckResult(name, False, msg, failures=("no_l2_last",)), verbose)
    msg = (f"✗ {name}: the similarities between your whitened vectors differ from PCAWhitening's "
           f"(e.g. first pair: expected {_gram(expected)[0, 1]:.4f}, got {_gram(out)[0, 1]:.4f}).")
    return report(CheckResult(name, False, msg, failures=("wrong",)), verbose)


# --------------------------------------------------------------------------- partial whitening

#: (eigenvalues, power) cases: full whitening, plain PCA, the partial power, a spectrum spanning 10⁴.
WHITENED_VARIANCE_CASES: tuple[tuple[tuple[float, ...], float], ...] = (
    ((4.0, 1.0, 0.25), 0.5),
    ((4.0, 1.0, 0.25), 0.0),
    ((16.0, 1.0, 0.0625), 0.25),
    ((1.0, 1e-2, 1e-4), 0.25),
)


def reference_whitened_variances(eigenvalues, power: float) -> np.ndarray:
    r"""The variance of each coordinate after dividing by :math:`\lambda^{\text{power}}`: :math:`\lambda^{1 - 2\,\text{power}}`.

    A coordinate of variance λ divided by λ^p has variance λ / λ^{2p}. Power 0.5
    makes every variance 1 (full whitening), 0 keeps them (PCA), 0.25 takes their
    square root: a spread of 10⁴ becomes 10².

    Examples:
        >>> reference_whitened_variances([4.0, 1.0, 0.25], 0.25).tolist()
        [2.0, 1.0, 0.5]
    """
    return np.asarray(eigenvalues, dtype=np.float64) ** (1.0 - 2.0 * power)


def check_whitened_variances(variances_fn: Callable[[np.ndarray, float], np.ndarray], verbose: bool = True) -> CheckResult:
    """Check ``variances_fn(eigenvalues, power)`` on :data:`WHITENED_VARIANCE_CASES`.

    Args:
        variances_fn: the student's function: the variance of each whitened coordinate.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`, naming the usual slips (returning the scale λ^-p,
        or λ^(1-p), forgetting that a variance scales with the square).
    """
    name = "variances after partial whitening"
    hints = {
        "scale": "You returned the factor each coordinate is multiplied by (λ^-power), not the resulting variance.",
        "not_squared": ("Dividing a coordinate by c divides its variance by c², so the variance is "
                        "λ / (λ^power)² = λ^(1 - 2·power), not λ^(1 - power)."),
    }
    lines, failures = [], []
    for eigenvalues, power in WHITENED_VARIANCE_CASES:
        values = np.array(eigenvalues)
        expected = reference_whitened_variances(values, power)
        try:
            got = call_student(name, "Return the variance of each coordinate after dividing it by λ^power.",
                               f"variances_fn({list(eigenvalues)}, {power})", variances_fn, values.copy(), power)
        except StudentCodeError as err:
            if "not_implemented" in err.result.failures:
                return report(err.result, verbose)
            lines.append(err.result.message)
            failures.append("error")
            continue
        got = np.asarray(got, dtype=np.float64)
        if got.shape == expected.shape and np.allclose(got, expected, rtol=1e-6):
            continue
        if got.shape == expected.shape and np.allclose(got, values ** -power, rtol=1e-6):
            key = "scale"
        elif got.shape == expected.shape and np.allclose(got, values ** (1 - power), rtol=1e-6):
            key = "not_squared"
        else:
            key = "wrong"
        lines.append(f"✗ eigenvalues {list(eigenvalues)}, power {power}: expected {np.round(expected, 4).tolist()}, "
                     f"got {np.round(got, 4).tolist()}")
        failures.append(key)
    if not failures:
        return report(CheckResult(name, True, f"✓ {name}: all {len(WHITENED_VARIANCE_CASES)} cases right. Power 0.25 "
                                  "turns a spread of 10⁴ between variances into 10²: noise directions are "
                                  "boosted less than by full whitening."), verbose)
    header = f"{name}: {len(failures)} of {len(WHITENED_VARIANCE_CASES)} cases wrong."
    advice = [f"Hint: {hints[key]}" for key in dict.fromkeys(failures) if key in hints]
    return report(CheckResult(name, False, "\n".join([header, *lines, *advice]), failures=tuple(failures)), verbose)
