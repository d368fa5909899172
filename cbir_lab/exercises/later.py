"""Self-check for lesson 12 (what came after): a gain in mAP points, quoted only between comparable rows.

The student writes ``gain_fn(before, after) -> {score: points}`` for two
:class:`~cbir_lab.later_methods.LaterFigure` rows; the check compares it with
:func:`cbir_lab.later_methods.like_for_like_gain` on hand-made rows, to a tolerance of
:data:`GAIN_TOLERANCE` points, and requires a ``ValueError`` for pairs that do not
measure the same thing (another benchmark, other distractors, another training set).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report

__all__ = ["GAIN_TOLERANCE", "gain_test_rows", "check_like_for_like_gain"]

#: How far a returned gain may be from the reference, in mAP points.
GAIN_TOLERANCE = 0.005


def gain_test_rows():
    """Hand-made rows: (before, after, incomparable pairs with what differs).

    ``before`` and ``after`` are one model on ROxford without distractors, without and with a
    re-ranking: Medium 60.00 → 66.50 (+6.50), Hard 30.00 → 38.25 (+8.25); ``after`` also has an
    Easy score that ``before`` lacks, so only Medium and Hard may be returned.
    """
    from cbir_lab.later_methods import LaterFigure

    before = LaterFigure("toy", 2020, "global descriptor", "R50", "set A", "global only", "roxford5k", "none",
                         {"medium": 60.0, "hard": 30.0}, "https://example.org/toy", "confirmed")
    after = replace(before, family="re-ranking", setting="global, then re-ranked",
                    scores={"easy": 90.0, "medium": 66.5, "hard": 38.25})
    incomparable = [
        ("another benchmark", replace(after, benchmark="rparis6k")),
        ("1M distractors added", replace(after, distractors="+1M")),
        ("another training set", replace(after, training="set B")),
    ]
    return before, after, incomparable


def check_like_for_like_gain(gain_fn: Callable, verbose: bool = True) -> CheckResult:
    """Check ``gain_fn(before, after) -> dict``: after − before in points, on the shared scores of comparable rows.

    Passes when, on :func:`gain_test_rows`, the comparable pair gives ``{"medium": 6.5, "hard": 8.25}``
    (within :data:`GAIN_TOLERANCE`, no other key) and each incomparable pair raises ``ValueError``.

    Returns:
        The :class:`CheckResult`; ``failures`` names the slip: ``sign`` (before − after), ``keys``
        (a score only one row has, or one missing), ``compared`` (an incomparable pair gave a number),
        ``wrong``, ``error``, ``not_implemented``.
    """
    from cbir_lab.later_methods import like_for_like_gain

    name = "like-for-like gain"
    before, after, incomparable = gain_test_rows()
    expected = like_for_like_gain(before, after)
    try:
        got = call_student(name, "Return {score: after − before} for the scores both rows report; raise ValueError "
                           "when the rows are not comparable.", "gain_fn(before, after)", gain_fn, before, after)
    except StudentCodeError as failure:
        return report(failure.result, verbose)
    if not isinstance(got, dict):
        return report(CheckResult(name, False, f"✗ {name}: return a dict {{score: points}}, got {got!r:.60}",
                                  failures=("wrong",)), verbose)
    if set(got) != set(expected):
        why = (f"return the scores both rows report, {sorted(expected)}; you returned {sorted(got)} "
               "(Easy is in one row only: there is nothing to subtract it from).")
        return report(CheckResult(name, False, f"✗ {name}: {why}", failures=("keys",)), verbose)
    try:
        values = {k: float(v) for k, v in got.items()}
    except (TypeError, ValueError):
        return report(CheckResult(name, False, f"✗ {name}: the gains must be numbers, got {got!r:.60}",
                                  failures=("wrong",)), verbose)
    if all(abs(values[k] + expected[k]) <= GAIN_TOLERANCE for k in expected):
        msg = f"✗ {name}: that is before − after; a gain is after − before (Hard: +{expected['hard']:.2f} points)."
        return report(CheckResult(name, False, msg, failures=("sign",)), verbose)
    if not all(abs(values[k] - expected[k]) <= GAIN_TOLERANCE for k in expected):
        msg = f"✗ {name}: expected {expected} (within {GAIN_TOLERANCE} points), got {values}."
        return report(CheckResult(name, False, msg, failures=("wrong",)), verbose)
    for what, other in incomparable:
        try:
            answer = gain_fn(before, other)
        except ValueError:
            continue
        except Exception as err:  # noqa: BLE001 - the student's own error becomes feedback
            msg = f"✗ {name}: for two rows with {what}, raise ValueError; you raised {type(err).__name__}: {err}"
            return report(CheckResult(name, False, msg, failures=("error",)), verbose)
        msg = (f"✗ {name}: the two rows differ in one more thing than the method ({what}), yet you returned "
               f"{answer!r:.60}. Raise ValueError: that difference is not the method's gain.")
        return report(CheckResult(name, False, msg, failures=("compared",)), verbose)
    msg = (f"✓ {name}: +{expected['medium']:.2f} Medium and +{expected['hard']:.2f} Hard, and no number for the "
           f"{len(incomparable)} pairs that differ in benchmark, distractors or training set.")
    return report(CheckResult(name, True, msg), verbose)
