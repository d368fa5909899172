"""Tests for cbir_lab.exercises.benchmarks: the protocol checks pass right answers and name typical slips."""

from __future__ import annotations

import numpy as np
import pytest

from cbir_lab.evaluation import revisited_gnd
from cbir_lab.exercises.benchmarks import check_holidays_gnd, check_ns_score, check_revisited_gnd

# ---------------------------------------------------------------- Holidays


def _holidays(names, query_positive=False, junk=True, all_queries=False):
    groups = {}
    for i, n in enumerate(names):
        groups.setdefault(n[:4], []).append(i)
    queries = list(range(len(names))) if all_queries else [m[0] for m in groups.values()]
    gnd = []
    for q in queries:
        ok = [i for i in groups[names[q][:4]] if query_positive or i != q]
        gnd.append({"ok": ok, "junk": [q] if junk and not query_positive else []})
    return queries, gnd


def test_right_holidays_gnd_passes():
    assert check_holidays_gnd(_holidays, verbose=False).passed


@pytest.mark.parametrize(
    "slip,key",
    [({"query_positive": True}, "query_positive"), ({"junk": False}, "no_junk"), ({"all_queries": True}, "all_queries")],
)
def test_holidays_slips_are_named(slip, key):
    result = check_holidays_gnd(lambda names: _holidays(names, **slip), verbose=False)
    assert result.failures == (key,)


# ---------------------------------------------------------------- revisited


def _revisited(gnd, setting, hard_junk=True, easy_junk=True, medium_hard=True):
    out = []
    for g in gnd:
        if setting == "easy":
            out.append({"ok": g["easy"], "junk": g["junk"] + (g["hard"] if hard_junk else [])})
        elif setting == "medium":
            out.append({"ok": g["easy"] + (g["hard"] if medium_hard else []), "junk": g["junk"]})
        else:
            out.append({"ok": g["hard"], "junk": g["junk"] + (g["easy"] if easy_junk else [])})
    return out


def test_right_revisited_gnd_passes():
    assert check_revisited_gnd(_revisited, verbose=False).passed
    assert check_revisited_gnd(revisited_gnd, verbose=False).passed


@pytest.mark.parametrize(
    "slip,key",
    [({"hard_junk": False}, "hard_not_junk"), ({"easy_junk": False}, "easy_not_junk"), ({"medium_hard": False}, "medium_without_hard")],
)
def test_revisited_slips_are_named(slip, key):
    result = check_revisited_gnd(lambda gnd, s: _revisited(gnd, s, **slip), verbose=False)
    assert result.failures == (key,)
    assert not result.passed



# ---------------------------------------------------------------- UKBench's N-S score


def test_ns_score_check():
    def ns(ranks, groups):
        groups = np.asarray(groups)
        return np.mean([(groups[ranks[:4, q]] == groups[q]).sum() for q in range(ranks.shape[1])])

    assert check_ns_score(ns, verbose=False).passed
    assert check_ns_score(lambda r, g: ns(r, g) / 4, verbose=False).failures == ("fraction",)

    def without_self(ranks, groups):
        groups = np.asarray(groups)
        return np.mean([((groups[ranks[:4, q]] == groups[q]) & (ranks[:4, q] != q)).sum() for q in range(ranks.shape[1])])

    assert check_ns_score(without_self, verbose=False).failures == ("no_self",)
