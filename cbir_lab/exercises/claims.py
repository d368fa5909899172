"""Claim exercises: design the comparison that tests a claim, and size the benchmark that could settle it.

Like the decision exercises (:mod:`~cbir_lab.exercises.decisions`), these accept any answer the
data can defend and judge with a tolerance:

* :func:`check_claim_test`: ``test_fn(aps, clusters) -> (verdict, (low, high))``, the
  comparison that tests "whitening helps sum pooling more than max pooling" (lesson 4):
  the paired interval of the difference of the two gains, and a verdict the interval
  supports. Recognises comparing the whitened descriptors instead of the gains, one gain
  alone, the sign reversed, query-level resampling, and a verdict the interval does not allow.
* :func:`check_queries_needed`: ``needed_fn(differences, half_width) -> n``, how many
  independent queries a benchmark needs to pin a difference down to ±half_width
  (lesson 6), within 20 %. Recognises scaling with 1/w instead of 1/w², a forgotten
  1.96, and the standard error used as the standard deviation.

Each check prints its feedback and returns a
:class:`~cbir_lab.exercises._feedback.CheckResult`; a stub that raises
``NotImplementedError`` gets a hint, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report
from cbir_lab.exercises.decisions import CHOICE_RESAMPLES, INTERVAL_TOLERANCE, _interval_pair, _near
from cbir_lab.statistics import Interval, paired_bootstrap

__all__ = ["CLAIM_SETTINGS", "VERDICTS", "ClaimCase", "check_claim_test", "check_queries_needed"]

# ---------------------------------------------------------------- designing the comparison that tests a claim

#: The settings a claim test receives, by name.
CLAIM_SETTINGS = ("SPoC", "SPoC whitened", "MAC", "MAC whitened")
#: The verdicts a claim test may return.
VERDICTS = ("supported", "contradicted", "undecided")


@dataclass(frozen=True, eq=False)
class ClaimCase:
    """Per-query APs of SPoC and MAC, with and without whitening, to test "whitening helps SPoC more than MAC".

    Attributes:
        label: the case, in words.
        aps: setting name (:data:`CLAIM_SETTINGS`) → per-query APs.
        clusters: per query, its source.
        unit: what a cluster is, plural.
    """

    label: str
    aps: dict
    clusters: np.ndarray
    unit: str = "source photos"


def _claim_interval(case: ClaimCase, a: np.ndarray, b: np.ndarray, clustered: bool = True) -> Interval:
    return paired_bootstrap(a, b, n_resamples=CHOICE_RESAMPLES, seed=0, clusters=case.clusters if clustered else None,
                            unit=case.unit)


def _synthetic_claim_case(label: str, spoc_gain: float, mac_gain: float, seed: int) -> ClaimCase:
    rng = np.random.default_rng(seed)
    n_clusters, per = 12, 4
    photo = np.repeat(rng.normal(0.0, 0.15, n_clusters), per)
    base = np.clip(0.6 + photo + rng.normal(0.0, 0.05, photo.size), 0, 1)
    spoc = np.clip(base + rng.normal(0.0, 0.02, base.size), 0, 1)
    mac = np.clip(base - 0.02 + rng.normal(0.0, 0.02, base.size), 0, 1)
    # each photo reacts to whitening in its own way, shared by its queries: the gains are clustered too
    react_spoc, react_mac = (np.repeat(rng.normal(0.0, 0.08, n_clusters), per) for _ in range(2))
    aps = {"SPoC": spoc, "SPoC whitened": spoc + spoc_gain + react_spoc + rng.normal(0, 0.02, base.size),
           "MAC": mac, "MAC whitened": mac + mac_gain + react_mac + rng.normal(0, 0.02, base.size)}
    return ClaimCase(label, aps, np.repeat([f"photo{i:02d}" for i in range(n_clusters)], per))


def _claim_cases() -> list[ClaimCase]:
    return [
        _synthetic_claim_case("whitening lifts SPoC by 0.12 and MAC by 0.03", 0.12, 0.03, 21),
        _synthetic_claim_case("whitening lifts both by 0.03", 0.03, 0.03, 22),
        _synthetic_claim_case("whitening lowers SPoC by 0.06 and lifts MAC by 0.04", -0.06, 0.04, 23),
    ]


def _verdict_of(interval: Interval) -> str:
    if interval.low > 0:
        return "supported"
    if interval.high < 0:
        return "contradicted"
    return "undecided"


def check_claim_test(test_fn: Callable, case: ClaimCase | None = None, verbose: bool = True) -> CheckResult:
    """Check ``test_fn(aps, clusters) -> (verdict, (low, high))``: does whitening help SPoC more than MAC?

    The comparison that tests the claim is the paired interval of the *difference of the
    gains*, per query (SPoC whitened − SPoC) − (MAC whitened − MAC), resampling the
    sources; the verdict is ``"supported"`` when the interval lies above 0,
    ``"contradicted"`` below it, ``"undecided"`` when it contains 0. Each end must be
    within ±0.02 of the reference at 20,000 resamples; where the reference's end is that
    close to 0, either verdict on that side passes.

    Args:
        test_fn: the student's function; ``aps`` maps each of :data:`CLAIM_SETTINGS` to per-query APs.
        case: the lesson's own data, tested after the synthetic cases.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`; ``failures``: ``after_whitening``, ``one_gain``, ``reversed``,
        ``unclustered``, ``verdict``, ``interval``, ``format``, ``not_implemented``, ``error``.
    """
    name = "the comparison that tests the claim"
    cases = _claim_cases() + ([case] if case is not None else [])
    lines = []
    for c in cases:
        aps = {k: np.asarray(v, dtype=np.float64) for k, v in c.aps.items()}
        try:
            got = call_student(name, 'Return (verdict, (low, high)): "supported", "contradicted" or "undecided", and '
                                     "the interval it rests on.", "test_fn(aps, clusters)", test_fn,
                               {k: v.copy() for k, v in aps.items()}, c.clusters.copy())
        except StudentCodeError as err:
            return report(err.result, verbose)
        try:
            verdict, interval = got
            pair = _interval_pair(interval)
        except (TypeError, ValueError):
            pair = None
        if pair is None or not isinstance(verdict, str):
            message = f"✗ {name}: return a pair (verdict, (low, high)), the verdict a string; got {got!r:.80}"
            return report(CheckResult(name, False, message, failures=("format",)), verbose)
        gain_spoc = aps["SPoC whitened"] - aps["SPoC"]
        gain_mac = aps["MAC whitened"] - aps["MAC"]
        reference = _claim_interval(c, gain_spoc, gain_mac)
        where = f"case '{c.label}'"
        if not _near(pair, reference):
            slips = [
                ("after_whitening", _claim_interval(c, aps["SPoC whitened"], aps["MAC whitened"]),
                 "you compared the two whitened descriptors: that asks which is better *after* whitening, not which "
                 "whitening helps more. The claim is about two gains: per query, (SPoC whitened − SPoC) − "
                 "(MAC whitened − MAC)."),
                ("one_gain", _claim_interval(c, aps["SPoC whitened"], aps["SPoC"]),
                 "that is SPoC's gain alone. The claim compares it with MAC's gain: pair the two gains query by query."),
                ("one_gain", _claim_interval(c, aps["MAC whitened"], aps["MAC"]),
                 "that is MAC's gain alone. The claim compares SPoC's gain with it: pair the two gains query by query."),
                ("reversed", _claim_interval(c, gain_mac, gain_spoc),
                 "your interval is MAC's gain minus SPoC's: the sign is reversed, so 'above 0' would mean the opposite "
                 "of the claim. Take SPoC's gain minus MAC's."),
                ("unclustered", _claim_interval(c, gain_spoc, gain_mac, clustered=False),
                 f"right difference, but you resampled the queries one by one. Queries cut from one photo react to "
                 f"whitening together: resample the {c.unit} (paired_bootstrap(..., clusters=clusters)); the interval "
                 f"widens."),
            ]
            key, why = "interval", (f"expected an interval near [{reference.low:+.3f}, {reference.high:+.3f}] (±"
                                    f"{INTERVAL_TOLERANCE}), got [{pair[0]:+.3f}, {pair[1]:+.3f}]. Pair the two gains "
                                    f"query by query and resample the {c.unit}.")
            for slip, interval, explanation in slips:
                if _near(pair, interval, 0.005):
                    key, why = slip, explanation
                    break
            return report(CheckResult(name, False, f"✗ {name}, {where}: {why}", failures=(key,)), verbose)
        allowed = {_verdict_of(reference)}
        # an end within the tolerance of 0: the student's own resamples may put it on either side
        if abs(reference.low) <= INTERVAL_TOLERANCE:
            allowed |= {"supported", "undecided"}
        if abs(reference.high) <= INTERVAL_TOLERANCE:
            allowed |= {"contradicted", "undecided"}
        said = verdict.strip().lower()
        if said not in allowed:
            if said not in VERDICTS:
                why = f"the verdict must be one of {', '.join(map(repr, VERDICTS))}; got {verdict!r}."
            else:
                why = (f"your interval [{pair[0]:+.3f}, {pair[1]:+.3f}] does not support {verdict!r}: "
                       + ("it contains 0, so the data cannot tell which gain is larger: 'undecided'."
                          if _verdict_of(reference) == "undecided" else
                          f"it lies {'above' if reference.low > 0 else 'below'} 0: '{_verdict_of(reference)}'."))
            return report(CheckResult(name, False, f"✗ {name}, {where}: {why}", failures=("verdict",)), verbose)
        lines.append(f"  {c.label}: SPoC's gain − MAC's gain = {reference} ({reference.resampled}): {said}.")
    message = (f"✓ {name}: the right difference, its interval and a verdict it supports, on all {len(cases)} "
               f"cases.\n" + "\n".join(lines))
    return report(CheckResult(name, True, message), verbose)


# ---------------------------------------------------------------- how many queries a benchmark needs


def _needed(differences: np.ndarray, half_width: float) -> float:
    return (1.96 * float(np.std(differences, ddof=1)) / half_width) ** 2


def check_queries_needed(needed_fn: Callable, verbose: bool = True) -> CheckResult:
    r"""Check ``needed_fn(differences, half_width) -> n``: independent queries for a 95 % interval of ±half_width.

    The half-width of a mean's 95 % interval is about :math:`1.96\, s / \sqrt{n}`, with
    :math:`s` the standard deviation of the per-query differences; so
    :math:`n = (1.96\, s / w)^2`. Any answer within 20 % of it passes (a bootstrap
    estimate of the width does too).

    Args:
        needed_fn: the student's function; ``differences`` are per-query (or per-source)
            differences of AP between two methods, ``half_width`` the target.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`; ``failures``: ``linear``, ``no_z``, ``standard_error``,
        ``variance``, ``wrong``, ``format``, ``not_implemented``, ``error``.
    """
    name = "queries a benchmark needs"
    rng = np.random.default_rng(31)
    cases = [("12 units, a spread of 0.035", rng.normal(0.033, 0.035, 12), 0.01),
             ("55 queries, a spread of 0.1", rng.normal(0.01, 0.1, 55), 0.02),
             ("500 queries, a spread of 0.2", rng.normal(0.0, 0.2, 500), 0.005)]
    lines = []
    for label, diffs, w in cases:
        try:
            got = call_student(name, "Return n, the number of queries for which 1.96·s/√n equals half_width.",
                               f"needed_fn(differences of {diffs.size} values, half_width={w})", needed_fn,
                               diffs.copy(), w)
        except StudentCodeError as err:
            return report(err.result, verbose)
        try:
            got = float(got)
        except (TypeError, ValueError):
            return report(CheckResult(name, False, f"✗ {name}: return one number, got {got!r:.60}",
                                      failures=("format",)), verbose)
        expected = _needed(diffs, w)
        if abs(got - expected) <= 0.2 * expected:
            lines.append(f"  {label}, ±{w}: {got:,.0f} queries (the formula gives {expected:,.0f})")
            continue
        s, n = float(np.std(diffs, ddof=1)), diffs.size
        now = 1.96 * s / math.sqrt(n)
        slips = [
            ("linear", n * now / w, "you scaled n by (current width / target width); the width shrinks as 1/√n, so n "
                                    "grows with the *square* of that ratio."),
            ("no_z", (s / w) ** 2, "you left out the 1.96: a 95 % interval reaches 1.96 standard errors each side."),
            ("standard_error", (1.96 * s / math.sqrt(n) / w) ** 2,
             "you used the standard error of the mean (s/√n) where the formula needs the spread of one query's "
             "difference, s: n = (1.96·s / w)²."),
            ("variance", 1.96 * s**2 / w**2, "use the standard deviation inside the square, (1.96·s / w)², not s²."),
        ]
        key, why = "wrong", f"expected about {expected:,.0f} (n = (1.96·s / w)², s the differences' standard deviation)."
        for slip, value, explanation in slips:
            if abs(got - value) <= 0.05 * abs(value):
                key, why = slip, explanation
                break
        message = f"✗ {name}, case '{label}', ±{w}: got {got:,.1f}, expected about {expected:,.0f}.\n  {why}"
        return report(CheckResult(name, False, message, failures=(key,)), verbose)
    message = f"✓ {name}: within 20 % on all {len(cases)} cases.\n" + "\n".join(lines)
    return report(CheckResult(name, True, message), verbose)
