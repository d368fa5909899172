"""Self-checks for the retrieval lessons (4 and 5): average precision, query expansion, why a match, intervals.

Lessons 4 and 5:

* :func:`check_average_precision`: ``ap_fn(ranking, positives, junk) -> float``,
  AP by the trapezoid rule with junk removed, as the Revisiting Oxford & Paris
  reference code (:func:`cbir_lab.evaluation.average_precision`). Recognises a
  forgotten junk removal, dividing by the positives *found*, the textbook
  (non-interpolated) AP, 1-based positions and percentages.
* :func:`check_query_expansion`: ``aqe_fn(query_vecs, db_vecs, k) -> (n_q, D)``,
  average query expansion (:func:`cbir_lab.rerank.average_query_expansion`).
  Recognises a missing final L2, a forgotten query, the k *least* similar
  images, k ± 1 neighbours.

* :func:`check_contribution_map`: ``map_fn(query_vec, db_map) -> (H, W)``, how
  much each cell of a database image's map adds to its SPoC similarity with a
  query (:func:`cbir_lab.studies.explain.contribution_map`). Recognises a forgotten
  ‖g‖, a per-cell cosine, average pooling, and transposed axes.
* :func:`check_paired_bootstrap`: ``interval_fn(aps_a, aps_b, n_resamples, seed)``,
  the paired bootstrap interval of a difference of mAPs, within ±0.01 of
  :func:`cbir_lab.evaluation.paired_bootstrap` at 20,000 resamples (however the
  resamples are drawn). Recognises an unpaired interval, swapped ends, the
  reflected interval, the normal approximation, a 90 % or 99 % level, and no resampling.

Lesson 6's checks are in :mod:`~cbir_lab.exercises.benchmarks`.

Each check returns a :class:`~cbir_lab.exercises._feedback.CheckResult` and
prints its feedback; a stub that raises ``NotImplementedError`` gets a hint,
never an error, so the notebooks run top to bottom.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cbir_lab.evaluation import average_precision, positive_positions
from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report
from cbir_lab.rerank import alpha_query_expansion, average_query_expansion
from cbir_lab.search import rank

__all__ = [
    "AP_CASES",
    "check_average_precision",
    "check_query_expansion",
    "check_paired_bootstrap",
    "check_contribution_map",
]

# ---------------------------------------------------------------- average precision

#: Hand-checkable cases: (what it tests, ranking, positives, junk, expected AP).
AP_CASES: list[tuple[str, list[int], list[int], list[int], float]] = [
    ("one positive, ranked first", [0, 1, 2, 3], [0], [], 1.0),
    # positives at 0-based positions 1 and 3: ((0/1 + 1/2)/2 + (1/3 + 2/4)/2) / 2 = 1/3
    ("two positives at ranks 2 and 4", [5, 0, 6, 1], [0, 1], [], 1.0 / 3.0),
    # the junk image 9 is removed first, so the positives sit at positions 0 and 1
    ("junk ranked before the positives", [9, 0, 1, 4], [0, 1], [9], 1.0),
    # a truncated ranking finds 1 of 3 positives: (1 + 1)/2 / 3
    ("two of three positives missing from the ranking", [0, 7], [0, 1, 2], [], 1.0 / 3.0),
    # junk between positives: ranking after junk removal is [0, 6, 1]
    ("junk between the positives", [0, 9, 6, 1], [0, 1], [9], (1.0 + (1 / 2 + 2 / 3) / 2) / 2),
]


def _trapezoid_variant(ranking, positives, junk, remove_junk=True, by_found=False, p0_rule=True, p1_rule=True,
                       one_based=False) -> float:
    """AP with one of the usual slips switched on (for diagnosing a student's function)."""
    pos = positive_positions(np.asarray(ranking), positives, junk if remove_junk else ())
    pos = np.asarray(pos, dtype=np.float64) + (1 if one_based else 0)
    j = np.arange(len(pos), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p0 = np.where(pos == 0, 1.0, j / np.where(pos == 0, 1.0, pos))
    p1 = (j + 1) / (pos + 1)
    if p0_rule and p1_rule:
        terms = (p0 + p1) / 2
    else:
        terms = p1 if p1_rule else p0
    denominator = max(len(pos), 1) if by_found else len(positives)
    return float(terms.sum() / denominator)


_AP_SLIPS: list[tuple[str, dict, str]] = [
    ("junk_kept", {"remove_junk": False},
     "the junk images still count as negatives. Remove them from the ranking first: each positive moves up by "
     "the number of junk images ranked before it."),
    ("by_found", {"by_found": True},
     "you divided by the number of positives *found* in the ranking. Divide by all positives of the ground truth: "
     "a positive the ranking misses counts as precision 0."),
    ("textbook", {"p0_rule": False},
     "this is the textbook AP (the mean of the precision at each positive). The reference code uses the trapezoid "
     "rule: average the precision just before (j / r) and at (j + 1) / (r + 1) each positive."),
    ("p0_only", {"p1_rule": False},
     "you only used the precision just *before* each positive (j / r); average it with the precision at the "
     "positive, (j + 1) / (r + 1)."),
    ("one_based", {"one_based": True},
     "your positions look 1-based. With 0-based positions r, the precision at the j-th positive (0-based) is "
     "(j + 1) / (r + 1), and the one before it is j / r (1 when r = 0)."),
]


def check_average_precision(ap_fn: Callable[[Sequence[int], Sequence[int], Sequence[int]], float],
                            verbose: bool = True) -> CheckResult:
    """Check ``ap_fn(ranking, positives, junk) -> float`` on :data:`AP_CASES` and a random case.

    The reference is the Revisiting Oxford & Paris ``compute_map``: remove junk,
    then AP = Σ_j (p0 + p1) / 2 / n_positives over the positives found, with
    p0 = j / r (1 if r = 0) and p1 = (j + 1) / (r + 1) at 0-based position r.

    Args:
        ap_fn: the student's function; ``ranking`` is a list of database indices,
            best first; ``positives`` and ``junk`` are lists of indices.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`; ``failures`` names the slip (``junk_kept``,
        ``by_found``, ``textbook``, ``p0_only``, ``one_based``, ``percent``, ``wrong``, ``error``).
    """
    name = "average precision"
    rng = np.random.default_rng(0)
    ranking = rng.permutation(40)
    random_case = ("a random ranking of 40 images", ranking.tolist(), [3, 17, 22, 31, 35], [5, 8], None)
    for label, ranking, positives, junk, expected in [*AP_CASES, random_case]:
        if expected is None:
            expected = average_precision(positive_positions(np.asarray(ranking), positives, junk), len(positives))
        try:
            got = call_student(name, "Remove junk, find the positives' positions, apply the trapezoid rule.",
                               f"ap_fn({ranking}, {positives}, {junk})", ap_fn, list(ranking), list(positives), list(junk))
        except StudentCodeError as failure:
            return report(failure.result, verbose)
        try:
            got = float(got)
        except (TypeError, ValueError):
            msg = f"✗ {name}: return one number (a float), got {type(got).__name__}"
            return report(CheckResult(name, False, msg, failures=("type",)), verbose)
        if abs(got - expected) < 1e-6:
            continue
        case = f"case '{label}': ranking={list(ranking)[:12]}{'…' if len(ranking) > 12 else ''}, positives={positives}, junk={junk}"
        if abs(got - 100 * expected) < 1e-4:
            key, why = "percent", "you returned a percentage; return AP in [0, 1]."
        else:
            key, why = "wrong", f"expected {expected:.4f}, got {got:.4f}."
            for slip, options, explanation in _AP_SLIPS:
                if abs(got - _trapezoid_variant(ranking, positives, junk, **options)) < 1e-6:
                    key, why = slip, f"expected {expected:.4f}, got {got:.4f}: {explanation}"
                    break
        return report(CheckResult(name, False, f"✗ {name}, {case}\n  {why}", failures=(key,)), verbose)
    message = (f"✓ {name}: right on all {len(AP_CASES) + 1} cases, junk and missing positives included. "
               "It agrees with cbir_lab.evaluation.compute_map, the benchmarks' reference.")
    return report(CheckResult(name, True, message), verbose)


# ---------------------------------------------------------------- query expansion


def _qe_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    db = rng.normal(size=(12, 6))
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    queries = db[[0, 5]] + 0.3 * rng.normal(size=(2, 6))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return queries.astype(np.float32), db.astype(np.float32)


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def check_query_expansion(aqe_fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray], verbose: bool = True) -> CheckResult:
    r"""Check ``aqe_fn(query_vecs, db_vecs, k) -> (n_q, D)``: average query expansion.

    The reference: :math:`q' = \operatorname{L2}(q + \sum_{i \le k} d_i)` over the
    query's k most similar database vectors (by inner product).

    Args:
        aqe_fn: the student's function; ``query_vecs`` (n_q, D) and ``db_vecs``
            (n_db, D) are L2-normalised float32 numpy arrays.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`; ``failures`` names the slip (``no_l2``,
        ``no_query``, ``least_similar``, ``unchanged``, ``alpha``, ``k_off``, ``shape``, ``wrong``, ``error``).
    """
    name = "average query expansion"
    queries, db = _qe_data()
    for k in (1, 3):
        try:
            got = call_student(name, "Rank the database, add the top-k vectors to the query, L2-normalise.",
                               f"aqe_fn(query_vecs of shape {queries.shape}, db_vecs of shape {db.shape}, k={k})",
                               aqe_fn, queries.copy(), db.copy(), k)
        except StudentCodeError as failure:
            return report(failure.result, verbose)
        got = np.asarray(got.detach().cpu().numpy() if hasattr(got, "detach") else got, dtype=np.float64)
        expected = average_query_expansion(queries, db, k=k).astype(np.float64)
        if got.shape == expected.shape and np.allclose(got, expected, atol=1e-5):
            continue
        where = f"with k={k}"
        top = rank(queries, db).T  # (n_q, n_db), best first
        if got.shape != expected.shape:
            key, why = "shape", (f"return one expanded vector per query, shape {expected.shape}; got {got.shape}. "
                                 "Keep the query axis: sum the neighbours with axis=1 (or loop over the queries).")
        else:
            neighbours = db[top[:, :k]].sum(axis=1)
            candidates = [
                ("no_l2", queries + neighbours,
                 "your vectors are not L2-normalised: divide q + Σ d_i by its norm, so that inner products stay cosines."),
                ("no_query", _l2(neighbours),
                 "the query itself is missing: average it *with* its top-k results (q + Σ d_i)."),
                ("least_similar", _l2(queries + db[top[:, ::-1][:, :k]].sum(axis=1)),
                 "you added the k *least* similar images: sort the similarities in decreasing order."),
                ("unchanged", queries, "the query came back unchanged: add its top-k database vectors."),
                ("alpha", alpha_query_expansion(queries, db, k=k, alpha=3.0),
                 "that is α-QE (weighted by similarity³); average QE weights every neighbour by 1."),
            ]
            candidates += [("k_off", average_query_expansion(queries, db, k=kk), f"you used {kk} neighbours instead of k={k}.")
                           for kk in (k - 1, k + 1) if kk >= 1]
            key, why = "wrong", f"expected (first query) {expected[0].round(3)}, got {got[0].round(3)}."
            for slip, vec, explanation in candidates:
                if np.allclose(got, vec, atol=1e-5):
                    key, why = slip, explanation
                    break
        return report(CheckResult(name, False, f"✗ {name} {where}: {why}", failures=(key,)), verbose)
    message = f"✓ {name}: right for k = 1 and k = 3 on {len(queries)} queries."
    return report(CheckResult(name, True, message), verbose)


# ---------------------------------------------------------------- why did this match? (SPoC)


def _contribution_data() -> tuple[np.ndarray, np.ndarray]:
    """A query descriptor and a non-negative (C, H, W) map with H ≠ W, so transposed axes show."""
    rng = np.random.default_rng(5)
    db_map = rng.gamma(1.0, 1.0, size=(6, 3, 4)) * (rng.random((6, 3, 4)) < 0.6)
    query = rng.random(6)
    return query / np.linalg.norm(query), db_map


def check_contribution_map(map_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], verbose: bool = True) -> CheckResult:
    r"""Check ``map_fn(query_vec, db_map) -> (H, W)``: each cell's share of a SPoC similarity.

    With :math:`g = \sum_{y,x} X_{:,y,x}` and the database descriptor
    :math:`g / \lVert g \rVert`, the similarity to the query's descriptor :math:`q` is
    :math:`s = \sum_{y,x} M_{yx}` with :math:`M_{yx} = q^\top X_{:,y,x} / \lVert g \rVert`
    (:func:`cbir_lab.studies.explain.contribution_map`, without whitening).

    Args:
        map_fn: the student's function; ``query_vec`` is (C,), L2-normalised, and
            ``db_map`` a (C, H, W) numpy array.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`; ``failures`` names the slip (``no_norm``,
        ``cell_cosine``, ``mean``, ``transposed``, ``shape``, ``wrong``, ``error``).
    """
    from cbir_lab.studies.explain import contribution_map

    name = "contribution map"
    query, db_map = _contribution_data()
    try:
        got = call_student(name, "Return q · X[:, y, x] / ‖g‖ for every cell, where g sums X over the cells.",
                           f"map_fn(query_vec of shape {query.shape}, db_map of shape {db_map.shape})",
                           map_fn, query.copy(), db_map.copy())
    except StudentCodeError as err:
        return report(err.result, verbose)
    got = np.asarray(got.detach().cpu().numpy() if hasattr(got, "detach") else got, dtype=np.float64)
    expected = contribution_map(db_map, query, "SPoC").map
    score = float(query @ db_map.sum(axis=(1, 2)) / np.linalg.norm(db_map.sum(axis=(1, 2))))
    if got.shape == expected.shape and np.allclose(got, expected, atol=1e-6):
        message = (f"✓ {name}: right on a {db_map.shape[1]}×{db_map.shape[2]} map; the cells add up to the "
                   f"similarity, {got.sum():.4f} = q·L2(g) = {score:.4f}.")
        return report(CheckResult(name, True, message), verbose)
    if got.shape == expected.T.shape and np.allclose(got, expected.T, atol=1e-6):
        key, why = "transposed", f"the values are right but the axes are swapped: return shape (H, W) = {expected.shape}."
    elif got.shape != expected.shape:
        key, why = "shape", f"return one number per cell, shape (H, W) = {expected.shape}; got {got.shape}."
    else:
        per_cell = np.tensordot(query, db_map, axes=1)
        cell_norms = np.linalg.norm(db_map, axis=0)
        slips = [
            ("no_norm", per_cell, "divide by ‖g‖, the norm of the summed map: the descriptor is L2-normalised, and "
                                  "without it the cells add up to q·g instead of the similarity."),
            ("cell_cosine", np.divide(per_cell, cell_norms, out=np.zeros_like(per_cell), where=cell_norms > 0),
             "that is each cell's own cosine with q; divide every cell by the same ‖g‖, so the cells add up to the score."),
            ("mean", per_cell / (db_map.shape[1] * db_map.shape[2]),
             "dividing by the number of cells is average pooling; SPoC's descriptor is g / ‖g‖."),
        ]
        key, why = "wrong", (f"your cells add up to {got.sum():.4f}, the similarity is {score:.4f}. "
                             "Compute q · X[:, y, x] for each cell, then divide by ‖g‖.")
        for slip, candidate, explanation in slips:
            if np.allclose(got, candidate, atol=1e-6):
                key, why = slip, explanation
                break
    return report(CheckResult(name, False, f"✗ {name}: {why}", failures=(key,)), verbose)


# ---------------------------------------------------------------- a paired bootstrap interval

def _bootstrap_data() -> tuple[np.ndarray, np.ndarray]:
    """Per-query APs of two methods on 25 queries that move together, as real methods do."""
    rng = np.random.default_rng(11)
    hardness = rng.random(25)
    a = np.clip(hardness + rng.normal(0.0, 0.08, 25), 0, 1)
    b = np.clip(hardness + 0.03 + rng.normal(0.0, 0.08, 25), 0, 1)
    return a, b


def _skewed_bootstrap_data() -> tuple[np.ndarray, np.ndarray]:
    """25 queries: method a wins big on 2 and loses a little on 23, so the resampled differences are skewed.

    Here the percentile interval is far from symmetric: the normal approximation and the
    reflected ("basic") interval miss its ends by 0.02 or more, where any correct resampling
    lands within a few thousandths of it.
    """
    rng = np.random.default_rng(12)
    b = rng.uniform(0.2, 0.3, 25)
    a = np.clip(b + np.where(np.arange(25) < 2, 0.7, -0.02) + rng.normal(0.0, 0.01, 25), 0, 1)
    return a, b


#: The check's resamples for the reference interval, and the tolerance on each end: a correct
#: implementation that draws its resamples differently (``rng.choice``, a loop, another seed) lands
#: within a few thousandths of the reference at a few thousand resamples.
BOOTSTRAP_RESAMPLES, BOOTSTRAP_TOLERANCE = 20_000, 0.01


def _bootstrap_slips(a: np.ndarray, b: np.ndarray, reference, n_resamples: int, seed: int) -> list[tuple[str, tuple, str]]:
    """The intervals the usual slips give on (a, b), with what to tell the student."""
    from cbir_lab.evaluation import paired_bootstrap

    rng = np.random.default_rng(seed)
    picks_a = rng.integers(0, a.size, size=(n_resamples, a.size))
    picks_b = rng.integers(0, a.size, size=(n_resamples, a.size))
    unpaired = tuple(np.percentile(a[picks_a].mean(axis=1) - b[picks_b].mean(axis=1), [2.5, 97.5]))
    diff = a - b
    normal = tuple(diff.mean() + np.array([-1.96, 1.96]) * diff.std(ddof=1) / np.sqrt(diff.size))
    basic = (2 * diff.mean() - reference.high, 2 * diff.mean() - reference.low)
    ninety = paired_bootstrap(a, b, n_resamples=n_resamples, seed=seed, level=0.90)
    ninety_nine = paired_bootstrap(a, b, n_resamples=n_resamples, seed=seed, level=0.99)
    return [
        ("unpaired", unpaired,
         "your interval is much wider than the paired one: you resampled the two methods' queries independently. "
         "Draw the query indices once per resample and use the *same* indices for both methods, so that a hard "
         "query lowers both means and cancels out of the difference."),
        ("swapped", (reference.high, reference.low),
         "your ends are swapped: low is the 2.5th percentile of the resampled differences, high the 97.5th."),
        ("basic", basic,
         "that is the reflected ('basic') interval, 2·mean − the percentiles. Take the 2.5th and 97.5th percentiles "
         "of the resampled differences themselves: with a few large wins among many small losses the "
         "differences are skewed, and the percentile interval keeps that skew."),
        ("normal", normal,
         "that is the normal approximation (mean ± 1.96 standard errors). Take the percentiles of the resampled "
         "differences instead: with a few large wins the differences are skewed, and a symmetric interval "
         "misplaces both ends."),
        ("level", (ninety.low, ninety.high), "that is a 90 % interval (5th and 95th percentiles); use 2.5 and 97.5."),
        ("level", (ninety_nine.low, ninety_nine.high),
         "that is a 99 % interval (0.5th and 99.5th percentiles); use 2.5 and 97.5."),
    ]


def check_paired_bootstrap(interval_fn: Callable, verbose: bool = True) -> CheckResult:
    """Check ``interval_fn(aps_a, aps_b, n_resamples, seed) -> (low, high)``, the paired 95 % interval of mAP(a) − mAP(b).

    Any correct resampling passes: each end must lie within :data:`BOOTSTRAP_TOLERANCE`
    (±0.01) of :func:`cbir_lab.evaluation.paired_bootstrap` at :data:`BOOTSTRAP_RESAMPLES`
    (20,000) resamples, on two cases: queries on which both methods move together, and
    two large wins among 23 small losses (skewed differences). The check passes
    ``n_resamples`` = 20,000; the student's own random draws need not match the
    reference's (``rng.integers``, ``rng.choice`` and a loop all pass).

    Args:
        interval_fn: the student's function.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`; ``failures`` names the slip: ``unpaired`` (the two methods
        resampled independently: much wider), ``swapped`` (low and high exchanged), ``basic``
        (the reflected interval), ``normal`` (mean ± 1.96 standard errors), ``level`` (a 90 %
        or 99 % interval), ``no_resampling``, ``wrong``, ``error``.
    """
    from cbir_lab.evaluation import paired_bootstrap

    name = "paired bootstrap interval"
    seed, tol = 7, BOOTSTRAP_TOLERANCE
    cases = [("25 queries on which both methods move together", *_bootstrap_data()),
             ("2 large wins among 23 small losses", *_skewed_bootstrap_data())]
    lines = []
    for label, a, b in cases:
        expected = paired_bootstrap(a, b, n_resamples=BOOTSTRAP_RESAMPLES, seed=seed)
        try:
            got = call_student(name, "Return (low, high), the 2.5th and 97.5th percentiles of the resampled differences.",
                               f"interval_fn(aps_a, aps_b, {BOOTSTRAP_RESAMPLES}, {seed})", interval_fn, a.copy(),
                               b.copy(), BOOTSTRAP_RESAMPLES, seed)
        except StudentCodeError as err:
            return report(err.result, verbose)
        try:
            low, high = (float(v) for v in got)
        except (TypeError, ValueError):
            return report(CheckResult(name, False, f"✗ {name}: return a pair (low, high), got {got!r:.60}",
                                      failures=("wrong",)), verbose)
        miss = max(abs(low - expected.low), abs(high - expected.high))
        if miss <= tol:
            lines.append(f"  {label}: [{low:+.3f}, {high:+.3f}], the reference [{expected.low:+.3f}, "
                         f"{expected.high:+.3f}]")
            continue
        slips = _bootstrap_slips(a, b, expected, BOOTSTRAP_RESAMPLES, seed)
        key, hint = "wrong", ("Draw n queries with replacement (the same draw for both methods), take the "
                              "difference of the two means, repeat n_resamples times, and return the 2.5th and "
                              "97.5th percentiles of those differences.")
        distances = [(max(abs(low - lo), abs(high - hi)), k, h) for k, (lo, hi), h in slips]
        close = [slip for slip in distances if slip[0] <= tol]
        if close:
            _, key, hint = min(close)
        elif np.isclose(low, high):
            key, hint = "no_resampling", "both ends are equal: resample the queries (with replacement), many times."
        elif high - low > 1.5 * (expected.high - expected.low):
            key, hint = "unpaired", next(h for k, _, h in slips if k == "unpaired")
        message = (f"✗ {name}, case '{label}': expected [{expected.low:+.4f}, {expected.high:+.4f}] (±{tol} on each "
                   f"end), got [{low:+.4f}, {high:+.4f}].\nHint: {hint}")
        return report(CheckResult(name, False, message, failures=(key,)), verbose)
    message = (f"✓ {name}: both ends within ±{tol} of the reference at {BOOTSTRAP_RESAMPLES:,} resamples, on both "
               "cases.\n" + "\n".join(lines) + "\nBoth methods are resampled on the same queries, so the easy and "
               "hard queries cancel out of the difference; with two large wins, the interval is lopsided and "
               "reaches below 0.")
    return report(CheckResult(name, True, message), verbose)


