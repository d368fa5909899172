"""Tests for cbir_lab.exercises.retrieval: the checks pass right answers and name typical slips."""

from __future__ import annotations

import numpy as np
import pytest

from cbir_lab.evaluation import average_precision, positive_positions
from cbir_lab.exercises.retrieval import (
    check_contribution_map,
    check_paired_bootstrap,
    AP_CASES,
    check_average_precision,
    check_query_expansion,
)

# ---------------------------------------------------------------- average precision


def _ap(ranking, positives, junk, remove_junk=True, by_found=False, textbook=False, one_based=False, scale=1.0):
    """A from-scratch AP with switchable slips (independent of the module under test)."""
    kept = [i for i in ranking if not (remove_junk and i in set(junk))]
    hits, total = 0, 0.0
    for r, index in enumerate(kept):
        if index in set(positives):
            rr = r + 1 if one_based else r
            before = 1.0 if rr == 0 else hits / rr
            hits += 1
            at = hits / (rr + 1)
            total += at if textbook else (before + at) / 2
    return scale * total / (max(hits, 1) if by_found else len(positives))


def test_ap_cases_agree_with_the_reference_code():
    for _, ranking, positives, junk, expected in AP_CASES:
        pos = positive_positions(np.array(ranking), positives, junk)
        assert average_precision(pos, len(positives)) == pytest.approx(expected)
        assert _ap(ranking, positives, junk) == pytest.approx(expected)


def test_right_ap_passes(capsys):
    result = check_average_precision(_ap)
    assert result.passed and bool(result)
    assert "✓" in capsys.readouterr().out


@pytest.mark.parametrize(
    "slip,key,words",
    [
        ({"remove_junk": False}, "junk_kept", "junk"),
        ({"by_found": True}, "by_found", "all positives"),
        ({"textbook": True}, "textbook", "trapezoid"),
        ({"one_based": True}, "one_based", "1-based"),
        ({"scale": 100.0}, "percent", "percentage"),
    ],
)
def test_ap_slips_are_named(slip, key, words):
    result = check_average_precision(lambda r, p, j: _ap(r, p, j, **slip), verbose=False)
    assert not result.passed
    assert result.failures == (key,)
    assert words in result.message


def test_ap_stub_and_crash_get_feedback_not_errors():
    def stub(ranking, positives, junk):
        raise NotImplementedError

    result = check_average_precision(stub, verbose=False)
    assert not result.implemented and "not implemented" in result.message
    crash = check_average_precision(lambda r, p, j: 1 / 0, verbose=False)
    assert crash.failures == ("error",) and "ZeroDivisionError" in crash.message


# ---------------------------------------------------------------- query expansion


def _l2(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _aqe(q, db, k, include_query=True, normalise=True, reverse=False, k_shift=0):
    order = np.argsort(-(q @ db.T), axis=1, kind="stable")
    if reverse:
        order = order[:, ::-1]
    top = order[:, : k + k_shift]
    out = db[top].sum(axis=1) + (q if include_query else 0)
    return _l2(out) if normalise else out


def test_right_query_expansion_passes():
    assert check_query_expansion(_aqe, verbose=False).passed


@pytest.mark.parametrize(
    "slip,key",
    [
        ({"normalise": False}, "no_l2"),
        ({"include_query": False}, "no_query"),
        ({"reverse": True}, "least_similar"),
        ({"k_shift": 1}, "k_off"),
    ],
)
def test_query_expansion_slips_are_named(slip, key):
    result = check_query_expansion(lambda q, db, k: _aqe(q, db, k, **slip), verbose=False)
    assert result.failures == (key,)


def test_query_expansion_shape_and_unchanged():
    assert check_query_expansion(lambda q, db, k: _aqe(q, db, k)[0], verbose=False).failures == ("shape",)
    assert check_query_expansion(lambda q, db, k: q, verbose=False).failures == ("unchanged",)


# ----- a paired bootstrap interval -----------------------------------------------------------------------

def _paired(a, b, n, seed):
    picks = np.random.default_rng(seed).integers(0, len(a), size=(n, len(a)))
    return np.percentile(a[picks].mean(axis=1) - b[picks].mean(axis=1), [2.5, 97.5])


def test_paired_bootstrap_check_recognises_the_recipe_and_the_unpaired_slip():
    assert check_paired_bootstrap(_paired, verbose=False).passed

    def unpaired(a, b, n, seed):
        rng = np.random.default_rng(seed)
        pa, pb = rng.integers(0, len(a), size=(n, len(a))), rng.integers(0, len(a), size=(n, len(a)))
        return np.percentile(a[pa].mean(axis=1) - b[pb].mean(axis=1), [2.5, 97.5])

    result = check_paired_bootstrap(unpaired, verbose=False)
    assert result.failures == ("unpaired",) and "*same* indices for both methods" in result.message

    def normal(a, b, n, seed):
        d = a - b
        return d.mean() + np.array([-1.96, 1.96]) * d.std(ddof=1) / np.sqrt(d.size)

    result = check_paired_bootstrap(normal, verbose=False)
    assert result.failures == ("normal",) and "2 large wins" in result.message and "skewed" in result.message
    assert check_paired_bootstrap(lambda a, b, n, s: ((a - b).mean(),) * 2, verbose=False).failures == ("no_resampling",)


def _choice_bootstrap(a, b, n, seed):
    """A correct interval drawn another way: rng.choice, one resample at a time, its own seed."""
    rng = np.random.default_rng(seed + 1000)
    d = np.asarray(a) - np.asarray(b)
    means = [rng.choice(d, size=d.size, replace=True).mean() for _ in range(n)]
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _few_resamples(a, b, n, seed):
    """Correct too, with only 2,000 resamples whatever the check asks for, and Python's own random module."""
    import random

    draw = random.Random(seed)
    d = list(np.asarray(a) - np.asarray(b))
    means = sorted(sum(draw.choices(d, k=len(d))) / len(d) for _ in range(2000))
    return means[int(0.025 * 2000)], means[int(0.975 * 2000) - 1]


@pytest.mark.parametrize("fn", [_paired, _choice_bootstrap, _few_resamples], ids=["recipe", "rng.choice", "2000 draws"])
def test_a_correct_but_differently_drawn_bootstrap_passes(fn):
    result = check_paired_bootstrap(fn, verbose=False)
    assert result.passed, result.message
    assert "within ±0.01" in result.message and "2 large wins among 23 small losses" in result.message


def _swapped(a, b, n, seed):
    low, high = _paired(a, b, n, seed)
    return high, low


def _basic(a, b, n, seed):
    low, high = _paired(a, b, n, seed)
    mean = float(np.mean(np.asarray(a) - np.asarray(b)))
    return 2 * mean - high, 2 * mean - low


def _ninety(a, b, n, seed):
    picks = np.random.default_rng(seed).integers(0, len(a), size=(n, len(a)))
    return np.percentile(a[picks].mean(axis=1) - b[picks].mean(axis=1), [5, 95])


@pytest.mark.parametrize("fn, key, says", [
    (_swapped, "swapped", "low is the 2.5th percentile"),
    (_basic, "basic", "reflected"),
    (_ninety, "level", "90 % interval"),
    (lambda a, b, n, s: _paired(a, b, n, s) + 0.05, "wrong", "Draw n queries with replacement"),
    (lambda a, b, n, s: 0.5, "wrong", "return a pair"),
])
def test_a_wrong_bootstrap_fails_and_the_feedback_says_why(fn, key, says):
    result = check_paired_bootstrap(fn, verbose=False)
    assert not result.passed and result.failures == (key,)
    assert says in result.message, result.message


# ---------------------------------------------------------------- why did this match?


def test_contribution_map_check_accepts_the_formula_and_names_the_slips():
    def good(q, x):
        return np.tensordot(q, x, axes=1) / np.linalg.norm(x.sum(axis=(1, 2)))

    assert check_contribution_map(good, verbose=False).passed
    assert check_contribution_map(lambda q, x: np.tensordot(q, x, axes=1), verbose=False).failures == ("no_norm",)
    assert check_contribution_map(lambda q, x: good(q, x).T, verbose=False).failures == ("transposed",)
    assert check_contribution_map(lambda q, x: good(q, x)[0], verbose=False).failures == ("shape",)
    assert check_contribution_map(lambda q, x: np.tensordot(q, x, axes=1) / 12, verbose=False).failures == ("mean",)

    def cell_cosine(q, x):
        norms = np.linalg.norm(x, axis=0)
        return np.divide(np.tensordot(q, x, axes=1), norms, out=np.zeros(norms.shape), where=norms > 0)

    assert check_contribution_map(cell_cosine, verbose=False).failures == ("cell_cosine",)
    assert check_contribution_map(lambda q, x: good(q, x) + 0.01, verbose=False).failures == ("wrong",)


def test_contribution_map_check_by_hand():
    # Two cells, one channel each: g = (3, 4), ‖g‖ = 5; q = (1, 0) gets 3/5 from the first cell, 0 from the second.
    from cbir_lab.studies.explain import contribution_map

    x = np.zeros((2, 1, 2))
    x[0, 0, 0], x[1, 0, 1] = 3.0, 4.0
    np.testing.assert_allclose(contribution_map(x, np.array([1.0, 0.0]), "SPoC").map, [[0.6, 0.0]])
    stub = check_contribution_map(lambda q, x: (_ for _ in ()).throw(NotImplementedError), verbose=False)
    assert not stub.implemented
