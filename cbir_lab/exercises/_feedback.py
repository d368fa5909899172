"""The result every self-check returns: passed or not, and the feedback a student reads.

Shared by the lessons' exercise modules; checks print the feedback and return a
:class:`CheckResult`, so a notebook cell shows the message and a test can assert
on ``result.passed`` and ``result.message``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CheckResult", "not_implemented"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a self-check.

    Attributes:
        exercise: which exercise was checked.
        passed: every case was right.
        message: the feedback, one finding per line.
        implemented: ``False`` when the student's function is still the stub.
        failures: a short key per failed diagnosis (e.g. ``"floor"``), for tests.
    """

    exercise: str
    passed: bool
    message: str
    implemented: bool = True
    failures: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        # Notebooks print the feedback themselves; the repr stays short and stable.
        status = "passed" if self.passed else ("not implemented" if not self.implemented else "not yet")
        return f"<CheckResult {self.exercise}: {status}>"


def not_implemented(exercise: str, what: str) -> CheckResult:
    """The result for a stub that still raises ``NotImplementedError``."""
    return CheckResult(
        exercise,
        False,
        f"⏳ {exercise}: not implemented yet. {what}\n"
        "Replace the `...` and the `raise NotImplementedError` line, then run this cell again.",
        implemented=False,
        failures=("not_implemented",),
    )


def report(result: CheckResult, verbose: bool = True) -> CheckResult:
    """Print the feedback (when ``verbose``) and return the result."""
    if verbose:
        print(result.message)
    return result
