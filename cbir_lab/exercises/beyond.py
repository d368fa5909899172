"""Self-checks for lesson 10 (beyond one global vector): the inliers of a given model, the k-reciprocal set,
the multi-scale descriptor.

Each check runs the student's function on small inputs worked out so that each usual slip
gives a different answer, compares it with the package's
(:func:`cbir_lab.verification.count_inliers`, :func:`cbir_lab.kreciprocal.k_reciprocal_sets`,
:func:`cbir_lab.pooling.multiscale_combine`) and names the slip when it differs.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report

__all__ = ["inlier_test_case", "reciprocal_test_sims", "multiscale_test_vectors", "check_inlier_count",
           "check_reciprocal_set", "check_multiscale_pooling"]


# ---------------------------------------------------------------- the inliers of a given model


def inlier_test_case() -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A homography and 12 matches, built so that each usual slip counts differently: (H, src, dst, threshold).

    H scales by 2 and shifts, and its last row is not (0, 0, 1), so forgetting the
    division by the third coordinate changes the count. The errors ‖π(H x) − x'‖ of the
    matches, in pixels, at t = 3: 0, 0.5, 1, 2 and 2.9 (the 5 inliers); exactly 3, at a
    point where no rounding happens (not an inlier: the test is strict); 4, 8, 20, 50
    and 100; and one match that is right only for the model read backwards (src = π(H x')).
    """
    H = np.array([[2.0, 0.0, 10.0], [0.0, 2.0, -4.0], [0.001, 0.0, 1.0]])
    src = np.array([[10.0, 20.0], [5.0, 5.0], [30.0, 60.0], [80.0, 40.0], [120.0, 90.0], [0.0, 100.0],
                    [60.0, 70.0], [90.0, 10.0], [40.0, 35.0], [70.0, 15.0], [25.0, 80.0], [0.0, 0.0]])
    mapped = np.hstack([src, np.ones((len(src), 1))]) @ H.T
    mapped = mapped[:, :2] / mapped[:, 2:]
    errors = np.array([0.0, 0.5, 1.0, 2.0, 2.9, 3.0, 4.0, 8.0, 20.0, 50.0, 100.0])
    angles = np.linspace(0.3, 2.5, len(errors))
    angles[5] = 0.0  # x = 0: w = 1, so the point and its error of exactly 3 pixels are exact in floating point
    dst = mapped.copy()
    dst[: len(errors)] += errors[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    # the last match: dst is the point H sends to src (right only for a model read backwards)
    back = np.linalg.solve(H, np.array([0.0, 0.0, 1.0]))
    dst[-1] = back[:2] / back[2]
    return H, src, dst, 3.0


def _count(H, src, dst, t, *, divide=True, squared=False, strict=True, backwards=False, outliers=False) -> int:
    a, b = (dst, src) if backwards else (src, dst)
    m = np.hstack([a, np.ones((len(a), 1))]) @ np.asarray(H, dtype=np.float64).T
    p = m[:, :2] / m[:, 2:] if divide else m[:, :2]
    e = np.linalg.norm(p - b, axis=1)
    e = e**2 if squared else e
    inside = e < t if strict else e <= t
    return int((~inside).sum() if outliers else inside.sum())


def check_inlier_count(count_fn: Callable, verbose: bool = True) -> CheckResult:
    r"""Check ``count_fn(H, src, dst, threshold) -> int``: how many matches the model H explains.

    .. math:: \#\{i : \lVert \pi(H\,[x_i, y_i, 1]^\top) - x'_i \rVert_2 < t\}, \qquad \pi(u, v, w) = (u / w, v / w)
    """
    from cbir_lab.verification import count_inliers

    name = "inlier count"
    H, src, dst, t = inlier_test_case()
    try:
        out = call_student(name, "Map each src point with H (homogeneous coordinates), divide by the third "
                           "coordinate, and count the errors below the threshold.",
                           f"count_fn(H (3, 3), src {src.shape}, dst {dst.shape}, threshold={t:g})",
                           count_fn, H.copy(), src.copy(), dst.copy(), t)
    except StudentCodeError as failure:
        return report(failure.result, verbose)
    try:
        value = int(out)
        if value != out:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        msg = f"✗ {name}: return one whole number (how many matches are inliers), got {out!r}."
        return report(CheckResult(name, False, msg, failures=("type",)), verbose)
    expected = count_inliers(H, src, dst, t)
    if value == expected:
        wide = 10.0  # the same matches at a looser threshold: a count that ignores its inputs fails here
        try:
            other = call_student(name, "", f"count_fn(H, src, dst, threshold={wide:g})", count_fn, H.copy(), src.copy(),
                                 dst.copy(), wide)
        except StudentCodeError as failure:
            return report(failure.result, verbose)
        if other != count_inliers(H, src, dst, wide):
            msg = (f"✗ {name}: right at t = {t:g}, but at t = {wide:g} expected {count_inliers(H, src, dst, wide)} "
                   f"inliers, got {other!r}: use the threshold you are given.")
            return report(CheckResult(name, False, msg, failures=("threshold",)), verbose)
        message = (f"✓ {name}: {value} of {len(src)} matches lie within {t:g} pixels of where H sends their point, "
                   "as cbir_lab.verification.count_inliers counts them.")
        return report(CheckResult(name, True, message), verbose)
    diagnoses = [
        ("no_division", _count(H, src, dst, t, divide=False),
         "divide by the third homogeneous coordinate: (u, v, w) is the point (u / w, v / w). An affine model has "
         "w = 1 everywhere; a homography does not."),
        ("squared", _count(H, src, dst, t, squared=True),
         "you compared the *squared* error with t: compare the distance itself (or its square with t²)."),
        ("not_strict", _count(H, src, dst, t, strict=False),
         "a match exactly t pixels away is not an inlier: the test is strict, error < t."),
        ("backwards", _count(H, src, dst, t, backwards=True),
         "H maps src to dst: transform the src points and compare them with dst, not the other way round."),
        ("outliers", _count(H, src, dst, t, outliers=True), "you counted the outliers: count the matches *within* t."),
    ]
    for key, candidate, why in diagnoses:
        if value == candidate:
            return report(CheckResult(name, False, f"✗ {name}: {why}", failures=(key,)), verbose)
    msg = f"✗ {name}: expected {expected} inliers among these {len(src)} matches at t = {t:g}, got {value}."
    return report(CheckResult(name, False, msg, failures=("wrong",)), verbose)


# ---------------------------------------------------------------- the k-reciprocal set


def reciprocal_test_sims() -> np.ndarray:
    """Similarities of 7 images, chosen so that R(p, k), N(p, k) and their usual misreadings all differ.

    Image 0 is the p of the check (k = 3): its 3 nearest others are 1, 2 and 3; 1 and 2
    have 0 among their own 3 nearest, 3 does not (3's nearest are 4, 5, 6), so
    R(0, 3) = {0, 1, 2} while N(0, 3) = {0, 1, 2, 3}. Image 2 has 0 only as its 3rd
    nearest, so reading "k nearest" as k − 1 others (0 itself counted among the k)
    drops it.
    """
    sims = np.full((7, 7), 0.1)
    pairs = {(0, 1): 0.9, (0, 2): 0.8, (0, 3): 0.7, (0, 4): 0.3, (1, 2): 0.85, (1, 3): 0.2, (2, 5): 0.95,
             (2, 6): 0.75, (3, 4): 0.92, (3, 5): 0.91, (3, 6): 0.9, (4, 5): 0.5, (1, 4): 0.6, (5, 6): 0.4}
    for (a, b), s in pairs.items():
        sims[a, b] = sims[b, a] = s
    np.fill_diagonal(sims, 1.0)
    return sims


def _nearest(sims: np.ndarray, p: int, k: int) -> list[int]:
    """N(p, k): p, then its k most similar others (ties: the smaller index)."""
    row = sims[p].astype(np.float64).copy()
    row[p] = np.inf
    return [int(j) for j in np.argsort(-row, kind="stable")[: k + 1]]


def _reciprocal(sims: np.ndarray, p: int, k: int, *, self_in=True, mutual=True) -> list[int]:
    near = _nearest(sims, p, k) if self_in else _nearest(sims, p, k + 1)[1:]
    out = [g for g in near if not mutual or p in _nearest(sims, g, k)]
    return sorted(set(out) | ({p} if self_in else set())) if self_in else sorted(out)


def check_reciprocal_set(reciprocal_fn: Callable, verbose: bool = True) -> CheckResult:
    r"""Check ``reciprocal_fn(sims, p, k) -> indices``: :math:`R(p, k) = \{g \in N(p, k) : p \in N(g, k)\}`.

    N(p, k) is p itself and its k most similar others (so p ∈ R(p, k)), as in
    :func:`cbir_lab.kreciprocal.neighbour_lists`. The order of the returned indices does not matter.
    """
    from cbir_lab.kreciprocal import k_reciprocal_sets, neighbour_lists

    name = "k-reciprocal set"
    sims = reciprocal_test_sims()
    p, k = 0, 3
    try:
        out = call_student(name, "Take N(p, k); keep each g whose own N(g, k) holds p.",
                           f"reciprocal_fn(sims {sims.shape}, p={p}, k={k})", reciprocal_fn, sims.copy(), p, k)
    except StudentCodeError as failure:
        return report(failure.result, verbose)
    try:
        got = sorted(int(g) for g in (out if isinstance(out, (set, frozenset)) else np.asarray(out).ravel()))
    except (TypeError, ValueError):
        msg = f"✗ {name}: return the image indices of R(p, k) (a list or an array), got {type(out).__name__}."
        return report(CheckResult(name, False, msg, failures=("type",)), verbose)
    expected = [int(g) for g in k_reciprocal_sets(neighbour_lists(sims, k), k)[p]]
    if got == expected:
        message = (f"✓ {name}: R({p}, {k}) = {expected}: image 3 is among 0's {k} nearest, but 0 is not among 3's, "
                   "so it is left out, as cbir_lab.kreciprocal.k_reciprocal_sets does.")
        return report(CheckResult(name, True, message), verbose)
    if len(got) != len(set(got)):
        msg = f"✗ {name}: an image appears twice in {got}: return each member once."
        return report(CheckResult(name, False, msg, failures=("duplicates",)), verbose)
    diagnoses = [
        ("not_mutual", sorted(_nearest(sims, p, k)),
         "that is N(p, k), the k nearest: keep only the g that also have p among *their* k nearest."),
        ("without_p", _reciprocal(sims, p, k, self_in=False),
         "p belongs to its own set: N(p, k) holds p and its k nearest others, so p ∈ R(p, k)."),
        ("k_includes_p", sorted(set(_reciprocal(sims, p, k - 1)) | {p}),
         "N(p, k) is p *and* k others (k + 1 images): with k − 1 others, image 2 (0 is its 3rd nearest) drops out."),
    ]
    for key, candidate, why in diagnoses:
        if got == candidate:
            return report(CheckResult(name, False, f"✗ {name}: {why}", failures=(key,)), verbose)
    msg = f"✗ {name}: R({p}, {k}) should be {expected}, got {got}."
    return report(CheckResult(name, False, msg, failures=("wrong",)), verbose)


# ---------------------------------------------------------------- the multi-scale descriptor


def multiscale_test_vectors(seed: int = 0) -> np.ndarray:
    """Pooled GeM vectors of 4 images at 3 scales, shape (3, 4, 6), non-negative, of different norms per scale."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(3, 4, 6)) ** 2
    return x * np.array([4.0, 1.0, 0.25])[:, None, None]  # the first scale's maps are larger: larger sums


def _combine(x: np.ndarray, p: float, *, per_scale_l2=True, final_l2=True, root=True, power=True) -> np.ndarray:
    def l2(v):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)
    u = l2(x) if per_scale_l2 else x
    e = p if power else 1.0
    m = (u**e).mean(axis=0)
    m = m ** (1.0 / e) if root else m
    return l2(m) if final_l2 else m


def check_multiscale_pooling(combine_fn: Callable, verbose: bool = True) -> CheckResult:
    r"""Check ``combine_fn(vectors, p) -> (N, C)``: cirtorch's multi-scale descriptor.

    .. math:: v = \operatorname{L2}\Big(\big(\tfrac1S \textstyle\sum_s f_s^{\,p}\big)^{1/p}\Big),
              \qquad f_s = \operatorname{L2}(\text{pooled vector at scale } s)

    ``vectors`` has shape (S, N, C): S scales of N images.
    """
    from cbir_lab.pooling import multiscale_combine

    name = "multi-scale descriptor"
    x, p = multiscale_test_vectors(), 3.0
    try:
        out = call_student(name, "L2-normalise each scale's vectors, take their power mean over the scales, then L2.",
                           f"combine_fn(vectors {x.shape}, p={p:g})", combine_fn, x.copy(), p)
    except StudentCodeError as failure:
        return report(failure.result, verbose)
    got = np.asarray(out.detach().cpu() if hasattr(out, "detach") else out, dtype=np.float64)
    expected = multiscale_combine(x, p=p)
    if got.shape != expected.shape:
        why = ("you returned every scale's vectors: combine over axis 0 (the scales) into one vector per image."
               if got.shape == x.shape else f"expected shape {expected.shape} (N, C), got {got.shape}.")
        return report(CheckResult(name, False, f"✗ {name}: {why}", failures=("shape",)), verbose)
    if np.allclose(got, expected, rtol=1e-5, atol=1e-7):
        message = (f"✓ {name}: each image's {x.shape[0]} scales, each L2-normalised, averaged as GeM averages cells "
                   f"(p = {p:g}), then L2-normalised, as cbir_lab.pooling.multiscale_combine.")
        return report(CheckResult(name, True, message), verbose)
    norms = np.linalg.norm(got, axis=1)
    if np.all(norms > 0) and not np.allclose(norms, 1.0, rtol=1e-4) and np.allclose(
            got / norms[:, None], expected, rtol=1e-5, atol=1e-7):
        msg = f"✗ {name}: L2-normalise the combined vector: descriptors are unit vectors."
        return report(CheckResult(name, False, msg, failures=("no_final_l2",)), verbose)
    diagnoses = [
        ("no_scale_l2", _combine(x, p, per_scale_l2=False),
         "L2-normalise each scale's vector first: unnormalised, the scale with the largest map outweighs the others."),
        ("no_root", _combine(x, p, root=False), "take the 1/p-th root of the mean of the p-th powers (a power mean)."),
        ("plain_mean", _combine(x, p, power=False),
         f"that is the plain mean of the scales (p = 1); with GeM, average them with its own p = {p:g}."),
        ("max", _l2_rows(_l2_rows(x).max(axis=0)), "the scales are averaged (a power mean), not max-pooled."),
    ]
    for key, candidate, why in diagnoses:
        if candidate.shape == got.shape and np.allclose(got, candidate, rtol=1e-5, atol=1e-7):
            return report(CheckResult(name, False, f"✗ {name}: {why}", failures=(key,)), verbose)
    msg = f"✗ {name}: image 0 should be {np.round(expected[0], 4).tolist()}, got {np.round(got[0], 4).tolist()}."
    return report(CheckResult(name, False, msg, failures=("wrong",)), verbose)


def _l2_rows(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)
