"""Claim exercises: the right comparison passes however its interval was drawn; each flawed one is named."""

from __future__ import annotations

import random

import numpy as np
import pytest

from cbir_lab.exercises.claims import ClaimCase, check_claim_test, check_queries_needed
from cbir_lab.statistics import paired_bootstrap


# ----- designing the comparison that tests a claim (lesson 4) ----------------------------------------------------


def test_claim(aps, clusters):
    interval = paired_bootstrap(aps["SPoC whitened"] - aps["SPoC"], aps["MAC whitened"] - aps["MAC"], clusters=clusters)
    verdict = "supported" if interval.low > 0 else "contradicted" if interval.high < 0 else "undecided"
    return verdict, (interval.low, interval.high)


test_claim.__test__ = False  # a student's answer, not a test


def claim_by_hand(aps, clusters):
    """Right, drawn another way: Python's random module over the photos, 3,000 resamples."""
    draw = random.Random(5)
    gains = (aps["SPoC whitened"] - aps["SPoC"]) - (aps["MAC whitened"] - aps["MAC"])
    labels = sorted(set(clusters))
    means = []
    for _ in range(3000):
        picked = [label for label in draw.choices(labels, k=len(labels))]
        means.append(np.concatenate([gains[clusters == label] for label in picked]).mean())
    low, high = np.percentile(means, [2.5, 97.5])
    return ("supported" if low > 0 else "contradicted" if high < 0 else "undecided"), (low, high)


@pytest.mark.parametrize("answer", [test_claim, claim_by_hand], ids=["package bootstrap", "by hand"])
def test_the_right_comparison_passes(answer):
    result = check_claim_test(answer, verbose=False)
    assert result.passed, result.message
    assert ": supported." in result.message and ": undecided." in result.message and ": contradicted." in result.message


def _interval_of(a, b, clustered=True):
    def answer(aps, clusters):
        i = paired_bootstrap(a(aps), b(aps), clusters=clusters if clustered else None)
        return ("supported" if i.low > 0 else "contradicted" if i.high < 0 else "undecided"), (i.low, i.high)
    return answer


def _gain(name):
    return lambda aps: aps[f"{name} whitened"] - aps[name]


@pytest.mark.parametrize("slip, answer, says", [
    ("after_whitening", _interval_of(lambda a: a["SPoC whitened"], lambda a: a["MAC whitened"]), "after* whitening"),
    ("one_gain", _interval_of(lambda a: a["SPoC whitened"], lambda a: a["SPoC"]), "SPoC's gain alone"),
    ("reversed", _interval_of(_gain("MAC"), _gain("SPoC")), "sign is reversed"),
    ("unclustered", _interval_of(_gain("SPoC"), _gain("MAC"), clustered=False), "resample the source photos"),
    ("verdict", lambda aps, c: ("supported", test_claim(aps, c)[1]), "does not support 'supported'"),
    ("verdict", lambda aps, c: ("yes", test_claim(aps, c)[1]), "must be one of"),
    ("format", lambda aps, c: test_claim(aps, c)[1], "return a pair (verdict, (low, high))"),
])
def test_each_flawed_comparison_is_named(slip, answer, says):
    result = check_claim_test(answer, verbose=False)
    assert not result.passed and result.failures == (slip,)
    assert says in result.message, result.message


def test_a_lesson_case_is_tested_after_the_synthetic_ones():
    rng = np.random.default_rng(1)
    clusters = np.repeat([f"p{i}" for i in range(12)], 2)
    base = rng.uniform(0.4, 0.9, 24)
    aps = {"SPoC": base, "SPoC whitened": base + 0.01, "MAC": base - 0.02, "MAC whitened": base - 0.05}
    result = check_claim_test(test_claim, ClaimCase("the lesson's queries", aps, clusters), verbose=False)
    assert result.passed and "the lesson's queries: SPoC's gain − MAC's gain = +0.040" in result.message


# ----- how many queries a benchmark needs (lesson 6) -------------------------------------------------------------


def needed(differences, half_width):
    return (1.96 * np.std(differences, ddof=1) / half_width) ** 2


def needed_by_bootstrap(differences, half_width):
    """Right within the tolerance: measure today's width by the bootstrap, then scale it by 1/√n."""
    rng = np.random.default_rng(0)
    means = rng.choice(differences, size=(4000, differences.size)).mean(axis=1)
    width = (np.percentile(means, 97.5) - np.percentile(means, 2.5)) / 2
    return differences.size * (width / half_width) ** 2


@pytest.mark.parametrize("answer", [needed, needed_by_bootstrap, lambda d, w: int(np.ceil(needed(d, w)))],
                         ids=["formula", "bootstrap", "rounded up"])
def test_queries_needed_passes_within_20_percent(answer):
    assert check_queries_needed(answer, verbose=False).passed


@pytest.mark.parametrize("slip, answer, says", [
    ("linear", lambda d, w: d.size * (1.96 * np.std(d, ddof=1) / np.sqrt(d.size)) / w, "square"),
    ("no_z", lambda d, w: (np.std(d, ddof=1) / w) ** 2, "1.96"),
    ("standard_error", lambda d, w: (1.96 * np.std(d, ddof=1) / np.sqrt(d.size) / w) ** 2, "standard error"),
    ("wrong", lambda d, w: 100, "expected about"),
    ("format", lambda d, w: "many", "return one number"),
])
def test_queries_needed_slips_are_named(slip, answer, says):
    result = check_queries_needed(answer, verbose=False)
    assert result.failures == (slip,) and says in result.message
