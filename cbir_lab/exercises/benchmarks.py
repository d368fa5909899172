"""Self-checks for the benchmarks lesson (6): each benchmark's protocol, built from its files.

* :func:`check_holidays_gnd`: ``gnd_fn(names) -> (query_indices, gnd)``, the
  INRIA Holidays protocol from file names (as
  :func:`cbir_lab.datasets.parsers.holidays_dataset`).
* :func:`check_revisited_gnd`: ``gnd_fn(gnd, setting) -> list of {'ok', 'junk'}``,
  the Easy / Medium / Hard protocols (:func:`cbir_lab.evaluation.revisited_gnd`).
* :func:`check_ns_score`: ``ns_fn(ranks, groups)``, UKBench's N-S score
  (:func:`cbir_lab.evaluation.ns_score`).

Each check returns a :class:`~cbir_lab.exercises._feedback.CheckResult` and
prints its feedback; a stub that raises ``NotImplementedError`` gets a hint,
never an error, so the notebooks run top to bottom.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from cbir_lab.evaluation import revisited_gnd
from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report
from cbir_lab.search import rank

__all__ = [
    "check_holidays_gnd",
    "check_revisited_gnd",
    "holidays_example_names",
    "revisited_example_gnd",
    "check_ns_score",
]

# ---------------------------------------------------------------- Holidays protocol


def holidays_example_names() -> list[str]:
    """Twelve Holidays-style file names in 4 groups (sorted, as on disk)."""
    return ["100000.jpg", "100001.jpg", "100002.jpg", "100100.jpg", "100101.jpg",
            "100200.jpg", "100201.jpg", "100202.jpg", "100203.jpg", "124000.jpg", "124001.jpg", "124002.jpg"]


def _holidays_reference(names: Sequence[str]) -> tuple[list[int], list[dict]]:
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        groups.setdefault(n[:4], []).append(i)
    queries = [members[0] for members in groups.values()]
    gnd = [{"ok": [i for i in groups[names[q][:4]] if i != q], "junk": [q]} for q in queries]
    return queries, gnd


def _as_index_set(values) -> set[int]:
    return {int(v) for v in np.asarray(list(values)).ravel()}


def check_holidays_gnd(gnd_fn: Callable[[Sequence[str]], tuple[Sequence[int], Sequence[dict]]], verbose: bool = True) -> CheckResult:
    """Check ``gnd_fn(names) -> (query_indices, gnd)``: the Holidays protocol from file names.

    The protocol (Jégou et al. 2008): the first 4 digits of a name are its group;
    each group's first image (``NNNN00.jpg``) is a query; the database is every
    image, so the query is in it: its positives are the *other* images of its
    group, and the query itself is junk (removed from its own ranking).

    Args:
        gnd_fn: the student's function; ``names`` are sorted file names.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`.
    """
    name = "Holidays ground truth"
    cases = [holidays_example_names(), ["200000.jpg", "200001.jpg", "200100.jpg", "200101.jpg", "200102.jpg", "200103.jpg"]]
    for names in cases:
        try:
            out = call_student(name, "Group the names by their first 4 digits; each group's first image is a query.",
                               f"gnd_fn({names[:3]}…)", gnd_fn, list(names))
        except StudentCodeError as failure:
            return report(failure.result, verbose)
        exp_queries, exp_gnd = _holidays_reference(names)
        try:
            queries, gnd = out
            queries = [int(q) for q in queries]
            gnd = list(gnd)
        except (TypeError, ValueError):
            msg = f"✗ {name}: return a pair (query_indices, gnd), got {type(out).__name__}"
            return report(CheckResult(name, False, msg, failures=("type",)), verbose)
        where = f"for the names {names}"
        if queries != exp_queries:
            if len(queries) == len(names):
                key, why = "all_queries", f"every image became a query; only each group's first image is (expected {exp_queries})."
            else:
                key, why = "queries", (f"expected the queries {exp_queries} (the first image of each group, "
                                       f"group = first 4 digits), got {queries}.")
            return report(CheckResult(name, False, f"✗ {name} {where}: {why}", failures=(key,)), verbose)
        if len(gnd) != len(exp_gnd) or not all(isinstance(g, dict) and "ok" in g for g in gnd):
            why = f"gnd must hold one dict with 'ok' and 'junk' per query ({len(exp_gnd)} of them)."
            return report(CheckResult(name, False, f"✗ {name} {where}: {why}", failures=("format",)), verbose)
        for q, g, e in zip(queries, gnd, exp_gnd):
            ok, junk = _as_index_set(g["ok"]), _as_index_set(g.get("junk", []))
            if ok == set(e["ok"]) and junk == set(e["junk"]):
                continue
            if q in ok:
                key, why = "query_positive", (f"query {q} is among its own positives. It is in the database too, so it "
                                              "would always be found first and inflate AP: make it junk instead.")
            elif ok == set(e["ok"]) and not junk:
                key, why = "no_junk", (f"query {q} is not marked junk. It is in the database, and it is not a positive, "
                                       "so it would count as a wrong result ranked first: put it in 'junk'.")
            else:
                key, why = "wrong", f"for query {q} expected ok={e['ok']}, junk={e['junk']}; got ok={sorted(ok)}, junk={sorted(junk)}."
            return report(CheckResult(name, False, f"✗ {name} {where}: {why}", failures=(key,)), verbose)
    message = f"✓ {name}: right on {len(cases)} name lists. It matches cbir_lab.datasets.benchmarks.holidays_dataset."
    return report(CheckResult(name, True, message), verbose)


# ---------------------------------------------------------------- revisited protocols


def revisited_example_gnd() -> list[dict]:
    """Two queries in the revisited format (indices into a 10-image database)."""
    return [{"easy": [0, 1], "hard": [2], "junk": [3]}, {"easy": [4], "hard": [5, 6], "junk": []}]


def check_revisited_gnd(gnd_fn: Callable[[Sequence[dict], str], Sequence[dict]], verbose: bool = True) -> CheckResult:
    """Check ``gnd_fn(gnd, setting) -> [{'ok', 'junk'}, ...]`` for Easy, Medium and Hard.

    * easy: ok = easy; junk = junk + hard (a hard positive is not held against a method).
    * medium: ok = easy + hard; junk = junk.
    * hard: ok = hard; junk = junk + easy (the easy ones are neither rewarded nor punished).

    Args:
        gnd_fn: the student's function; ``gnd`` has ``'easy'``, ``'hard'``, ``'junk'`` per query.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`.
    """
    name = "revisited protocols"
    gnd = revisited_example_gnd()
    for setting in ("easy", "medium", "hard"):
        try:
            out = call_student(name, "Build 'ok' and 'junk' from 'easy', 'hard' and 'junk' for the setting.",
                               f"gnd_fn(gnd, {setting!r})", gnd_fn, [dict(g) for g in gnd], setting)
        except StudentCodeError as failure:
            return report(failure.result, verbose)
        expected = revisited_gnd(gnd, setting)
        try:
            got = [(_as_index_set(g["ok"]), _as_index_set(g.get("junk", []))) for g in out]
        except (TypeError, KeyError):
            msg = f"✗ {name} ({setting}): return one dict with 'ok' and 'junk' per query."
            return report(CheckResult(name, False, msg, failures=("format",)), verbose)
        if len(got) != len(expected):
            msg = f"✗ {name} ({setting}): expected {len(expected)} queries, got {len(got)}."
            return report(CheckResult(name, False, msg, failures=("format",)), verbose)
        for q, ((ok, junk), e) in enumerate(zip(got, expected)):
            if ok == set(e["ok"]) and junk == set(e["junk"]):
                continue
            g = gnd[q]
            easy, hard = set(g["easy"]), set(g["hard"])
            if setting == "easy" and ok == easy and not hard <= junk:
                key, why = "hard_not_junk", ("in Easy the hard positives must be junk: otherwise a method that finds them "
                                             "is punished for it, as if they were wrong.")
            elif setting == "hard" and ok == hard and not easy <= junk:
                key, why = "easy_not_junk", ("in Hard the easy positives must be junk: they are neither the goal nor wrong, "
                                             "so they are removed from the ranking.")
            elif setting == "medium" and ok == easy:
                key, why = "medium_without_hard", "in Medium both easy and hard images are positives."
            elif setting == "medium" and (easy | hard) & junk:
                key, why = "medium_positives_junk", "in Medium no positive is junk: junk is only the original 'junk' list."
            elif setting != "medium" and ok == easy | hard:
                key, why = "all_positives", f"in {setting.capitalize()} only the {setting} images are positives."
            else:
                key, why = "wrong", f"query {q}: expected ok={e['ok']}, junk={e['junk']}; got ok={sorted(ok)}, junk={sorted(junk)}."
            return report(CheckResult(name, False, f"✗ {name} ({setting}): {why}", failures=(key,)), verbose)
    message = f"✓ {name}: Easy, Medium and Hard are right. They match cbir_lab.evaluation.revisited_gnd."
    return report(CheckResult(name, True, message), verbose)


# ---------------------------------------------------------------- UKBench's N-S score

def check_ns_score(ns_fn: Callable[[np.ndarray, Sequence[int]], float], verbose: bool = True) -> CheckResult:
    """Check ``ns_fn(ranks, groups) -> score``, UKBench's N-S score, against :func:`cbir_lab.evaluation.ns_score`.

    ``ranks`` has shape (n_db, n_queries), column q best first, and every image is a
    query (queries are database images, in order); ``groups[i]`` is image i's group
    of four. The score is the mean, over the queries, of how many of the top 4 are in
    the query's group, the query itself included (at most 4).

    Args:
        ns_fn: the student's function.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`; it recognises leaving the query itself out, a top 5,
        a sum instead of a mean, and a fraction instead of a count.
    """
    from cbir_lab.evaluation import ns_score

    name = "UKBench N-S score"
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(4), 4)
    vectors = np.eye(4)[groups] + rng.normal(0, 0.45, (16, 4))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ranks = rank(vectors, vectors)
    gnd = [{"ok": np.flatnonzero(groups == g).tolist()} for g in groups]
    expected = ns_score(ranks, gnd)
    try:
        got = call_student(name, "Return the mean number of the query's group in its top 4 (itself included).",
                           "ns_fn(ranks, groups)", ns_fn, ranks.copy(), groups.tolist())
    except StudentCodeError as err:
        return report(err.result, verbose)
    try:
        got = float(got)
    except (TypeError, ValueError):
        return report(CheckResult(name, False, f"✗ {name}: return one number, got {got!r:.60}", failures=("wrong",)),
                      verbose)
    if np.isclose(got, expected):
        return report(CheckResult(name, True, f"✓ {name}: {got:.2f} of 4. A perfect system scores 4.00: the query "
                                  "itself (always first) and its three companions."), verbose)
    hits = [np.isin(ranks[:, q], gnd[q]["ok"]) for q in range(ranks.shape[1])]
    others = np.mean([(h[:4] & (ranks[:4, q] != q)).sum() for q, h in enumerate(hits)])
    slips = {
        "no_self": (others, "Count the query itself: it is in the database, ranked first, and UKBench counts it."),
        "top5": (np.mean([h[:5].sum() for h in hits]), "Look at the top 4, not 5."),
        "sum": (expected * len(hits), "Average over the queries: the score is at most 4."),
        "fraction": (expected / 4, "The score counts images (0 to 4), not a fraction of 4."),
    }
    key, hint = next(((k, h) for k, (v, h) in slips.items() if np.isclose(got, v)),
                     ("wrong", "For each query: how many of its top 4 are in its group? Then the mean."))
    return report(CheckResult(name, False, f"{name}: expected {expected:.3f}, got {got:.3f}.\nHint: {hint}",
                              failures=(key,)), verbose)
