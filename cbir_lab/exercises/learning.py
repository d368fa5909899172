"""Self-checks for lesson 9 (learning the descriptor): the contrastive loss, one step of hard-negative mining,
the closed form of the learned whitening.

Each check runs the student's function on small inputs, compares it with the package's
(:func:`cbir_lab.learning.contrastive_loss`, :func:`cbir_lab.learning.hardest_negatives`,
:class:`cbir_lab.whitening.LearnedWhitening`) and names the usual slip when it differs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report
from cbir_lab.whitening import l2n

__all__ = ["check_contrastive_loss", "check_hard_negatives", "check_learned_whitening", "learning_test_data"]


def learning_test_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """12 unit descriptors of 4 objects (3 views each) in 6-D, objects close to each other: (X (12, 6), labels (12,))."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 6)) + 2.0
    X = l2n(np.repeat(centres, 3, axis=0) + 0.6 * rng.normal(size=(12, 6)))
    return X, np.repeat(np.array(["cup1", "cup2", "pear1", "pear2"]), 3)


def _pairs_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    X, _ = learning_test_data()
    # three matching pairs, a non-matching one inside the margin, and one far outside it (d = 2)
    anchors, others = X[[0, 0, 3, 6, 9]], np.vstack([X[[1, 4, 5, 8]], -X[9]])
    return anchors, others, np.array([1.0, 0.0, 1.0, 1.0, 0.0]), 0.7


def _contrastive(a, o, y, margin, *, square_in_margin=False, no_clamp=False, no_half=False, mean=False):
    d = np.linalg.norm(a - o, axis=1)
    push = margin - (d**2 if square_in_margin else d)
    push = push if no_clamp else np.maximum(push, 0.0)
    per_pair = (1.0 if no_half else 0.5) * (y * d**2 + (1 - y) * push**2)
    return float(per_pair.mean() if mean else per_pair.sum())


def check_contrastive_loss(loss_fn: Callable, verbose: bool = True) -> CheckResult:
    r"""Check ``loss_fn(anchors, others, is_match, margin) -> float``: the contrastive loss, summed over pairs.

    .. math:: L = \sum \tfrac12 y d^2 + \tfrac12 (1 - y) \max(0, \tau - d)^2, \quad d = \lVert a - o \rVert

    The inputs are torch tensors (anchors and others (n, D), is_match (n,)) and a float margin.
    """
    import torch

    name = "contrastive loss"
    a, o, y, margin = _pairs_case()
    try:
        out = call_student(name, "Compute d for each pair, then the two terms, and sum over the pairs.",
                           f"loss_fn(anchors {a.shape}, others {o.shape}, is_match {y.tolist()}, margin={margin})",
                           loss_fn, torch.tensor(a), torch.tensor(o), torch.tensor(y), margin)
    except StudentCodeError as failure:
        return report(failure.result, verbose)
    try:
        value = float(out)
    except (TypeError, ValueError):
        msg = f"✗ {name}: return one number (a 0-d tensor or a float), got {type(out).__name__}."
        return report(CheckResult(name, False, msg, failures=("shape",)), verbose)
    expected = _contrastive(a, o, y, margin)
    if np.isclose(value, expected, rtol=1e-5, atol=1e-7):
        message = (f"✓ {name}: {value:.5f}, as cbir_lab.learning.contrastive_loss. The matching pairs pull; the "
                   f"non-matching ones push only while they are closer than τ = {margin}.")
        return report(CheckResult(name, True, message), verbose)
    diagnoses = [
        ("mean", _contrastive(a, o, y, margin, mean=True), "you averaged over the pairs; cirtorch (and this lesson) sums."),
        ("no_half", _contrastive(a, o, y, margin, no_half=True), "each term has a factor ½."),
        ("square_in_margin", _contrastive(a, o, y, margin, square_in_margin=True),
         "the margin is on the distance d, not on d²: max(0, τ − d)²."),
        ("no_clamp", _contrastive(a, o, y, margin, no_clamp=True),
         "a non-matching pair farther than τ must cost nothing: clamp τ − d at 0 before squaring."),
        ("swapped", _contrastive(a, o, 1 - y, margin), "y = 1 marks a *matching* pair, which is pulled together (y·d²)."),
    ]
    for key, candidate, why in diagnoses:
        if np.isclose(value, candidate, rtol=1e-5, atol=1e-7):
            return report(CheckResult(name, False, f"✗ {name}: {why}", failures=(key,)), verbose)
    msg = f"✗ {name}: expected {expected:.5f} on these 5 pairs, got {value:.5f}."
    return report(CheckResult(name, False, msg, failures=("wrong",)), verbose)


def check_hard_negatives(mine_fn: Callable, verbose: bool = True) -> CheckResult:
    """Check ``mine_fn(descriptors, labels, n_negatives) -> (n, N)``: each item's N nearest items of
    other objects, at most one per object, nearest first."""
    from cbir_lab.learning import hardest_negatives

    name = "hard-negative mining"
    X, labels = learning_test_data()
    n_negatives = 2
    try:
        out = call_student(name, "Sort the others by similarity, skip the item's own object, take one per object.",
                           f"mine_fn(descriptors {X.shape}, labels, n_negatives={n_negatives})",
                           mine_fn, X.copy(), labels.copy(), n_negatives)
    except StudentCodeError as failure:
        return report(failure.result, verbose)
    out = np.asarray(out)
    expected = hardest_negatives(X, labels, n_negatives)
    if out.shape != expected.shape:
        msg = f"✗ {name}: expected shape {expected.shape} (one row of {n_negatives} indices per item), got {out.shape}."
        return report(CheckResult(name, False, msg, failures=("shape",)), verbose)
    if np.array_equal(out, expected):
        message = f"✓ {name}: the {n_negatives} nearest other objects of each of the 12 items, one image each."
        return report(CheckResult(name, True, message), verbose)
    rows = np.arange(len(X))[:, None]
    if (out == rows).any():
        why = "an item is its own negative: leave the item itself (and its object) out."
        key = "self"
    elif (labels[out] == labels[:, None]).any():
        why = "a negative shows the same object as the query: those are positives."
        key = "same_object"
    elif any(len(set(labels[row])) < len(row) for row in out):
        why = "two negatives of one row show the same object: keep the nearest image of each object only."
        key = "one_per_object"
    elif np.array_equal(out, _farthest(X, labels, n_negatives)):
        why = "these are the *farthest* images of other objects: hard negatives are the nearest ones (largest similarity)."
        key = "farthest"
    else:
        why = f"row 0 should be {expected[0].tolist()}, got {out[0].tolist()}."
        key = "wrong"
    return report(CheckResult(name, False, f"✗ {name}: {why}", failures=(key,)), verbose)


def _farthest(X: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    out = []
    for i in range(len(X)):
        chosen, seen = [], {labels[i]}
        for j in np.argsort(X @ X[i], kind="stable"):
            if labels[j] not in seen:
                seen.add(labels[j])
                chosen.append(j)
                if len(chosen) == n:
                    break
        out.append(chosen)
    return np.array(out)


def check_learned_whitening(learn_fn: Callable, verbose: bool = True) -> CheckResult:
    r"""Check ``learn_fn(X, query_idx, positive_idx) -> (m, P)``: the closed form of the learned whitening.

    m is the mean of the query rows, P (D, D) with :math:`P^\top P = C_S^{-1}` (the differences whitened) and
    :math:`P C_D P^\top` diagonal in decreasing order (the rotation). ``X`` is L2-normalised already.
    """
    name = "learned whitening"
    X, labels = learning_test_data(1)
    X = np.vstack([X, learning_test_data(2)[0]])  # 24 rows: enough pairs for an invertible C_S in 6-D
    labels = np.concatenate([labels, np.char.add(learning_test_data(2)[1], "b")])
    i, j = np.triu_indices(len(labels), k=1)
    same = labels[i] == labels[j]
    q, p = i[same], j[same]
    try:
        out = call_student(name, "m from the queries; C_S from the differences; P₁ = inverse Cholesky; then rotate.",
                           f"learn_fn(X {X.shape}, query_idx ({len(q)},), positive_idx ({len(p)},))",
                           learn_fn, X.copy(), q.copy(), p.copy())
    except StudentCodeError as failure:
        return report(failure.result, verbose)
    if not (isinstance(out, tuple) and len(out) == 2):
        msg = f"✗ {name}: return the pair (m, P), got {type(out).__name__}."
        return report(CheckResult(name, False, msg, failures=("shape",)), verbose)
    m, P = (np.asarray(v, dtype=np.float64) for v in out)
    dim = X.shape[1]
    if m.shape != (dim,) or P.shape != (dim, dim):
        msg = f"✗ {name}: m should have shape ({dim},) and P ({dim}, {dim}); got {m.shape} and {P.shape}."
        return report(CheckResult(name, False, msg, failures=("shape",)), verbose)
    m_expected = X[np.unique(q)].mean(axis=0)
    diff = X[q] - X[p]
    within = diff.T @ diff / len(diff)
    spread = (X - m_expected) @ P.T
    # cirtorch takes the second moment about m; np.cov centres on the mean of all rows: either rotation is accepted
    candidates = [spread.T @ spread / len(X), np.cov(spread, rowvar=False)]
    off_diagonals = [np.abs(c - np.diag(np.diag(c))).max() for c in candidates]
    between = candidates[int(np.argmin(off_diagonals))]
    off_diagonal = min(off_diagonals)
    checks = [
        ("mean", np.allclose(m, m_expected, atol=1e-8),
         "m is the mean of the *query* rows X[query_idx] (each query once)."
         if not np.allclose(m, X.mean(axis=0), atol=1e-8) else "m is the mean of the query rows, not of all rows."),
        ("within", np.allclose(P.T @ P, np.linalg.inv(within), rtol=1e-6, atol=1e-6),
         "P does not whiten the differences of matching pairs: with C_S = mean of (x_q − x_p)(x_q − x_p)ᵀ and "
         "C_S = L Lᵀ (Cholesky), start from P₁ = L⁻¹ (divide by the number of pairs, not pairs − 1)."),
        ("rotation", off_diagonal < 1e-6,
         "P₁ whitens the pairs, but the result is not rotated: take the eigenvectors V of the covariance of "
         "P₁(x − m) and set P = Vᵀ P₁."),
        ("order", bool(np.all(np.diff(np.diag(between)) <= 1e-9)),
         "sort the eigenvectors by *decreasing* eigenvalue (np.linalg.eigh returns them increasing)."),
    ]
    for key, ok, why in checks:
        if not ok:
            return report(CheckResult(name, False, f"✗ {name}: {why}", failures=(key,)), verbose)
    message = (f"✓ {name}: m, and a P that whitens the within-object differences (PᵀP = C_S⁻¹) and orders the "
               "remaining directions by decreasing spread, as cbir_lab.whitening.LearnedWhitening.")
    return report(CheckResult(name, True, message), verbose)
