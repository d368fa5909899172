"""The result every self-check returns: passed or not, and the feedback a student reads.

Shared by the lessons' exercise modules; checks print the feedback and return a
:class:`CheckResult`, so a notebook cell shows the message and a test can assert
on ``result.passed`` and ``result.message``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CheckResult", "ExerciseNotPassed", "StudentCodeError", "not_implemented", "call_student", "report"]


class ExerciseNotPassed(AssertionError):
    """A graded check found the answer missing or wrong (the feedback was printed above it).

    An ``AssertionError``: nbgrader gives a test cell that raises 0 points.
    """


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

    def require(self) -> "CheckResult":
        """Raise :class:`ExerciseNotPassed` unless the check passed: what a graded test cell ends with.

        The feedback is printed by the check itself; the exception only marks the cell
        as failed (0 points in nbgrader), and says where to look.
        """
        if not self.passed:
            raise ExerciseNotPassed(f"{self.exercise}: not yet, see the feedback printed above")
        return self


def not_implemented(exercise: str, what: str) -> CheckResult:
    """The result for a stub that still raises ``NotImplementedError``."""
    return CheckResult(
        exercise,
        False,
        f"⏳ {exercise}: not implemented yet. {what}\n"
        "Write your code in place of `raise NotImplementedError()` in the answer cell, run it, then run this cell again.",
        implemented=False,
        failures=("not_implemented",),
    )


class StudentCodeError(Exception):
    """The student's function raised; :attr:`result` is the feedback to report instead of a traceback."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.message)
        self.result = result


def call_student(exercise: str, hint: str, call: str, fn, *args):
    """Return ``fn(*args)``, the student's code; a stub or an error becomes feedback.

    Args:
        exercise: the exercise's name.
        hint: what to write, shown while ``fn`` still raises ``NotImplementedError``.
        call: how the call reads in the feedback, e.g. ``"gem_fn(x of shape (2, 3, 4, 4), p=3)"``.
        fn, args: the function and its arguments.

    Raises:
        StudentCodeError: ``fn`` raised; its ``result`` says so (``failures``:
            ``not_implemented`` or ``error``).
    """
    try:
        return fn(*args)
    except NotImplementedError:
        raise StudentCodeError(not_implemented(exercise, hint)) from None
    except Exception as err:  # show the student's own error, not a traceback from the check
        message = f"✗ {exercise}: {call} raised {type(err).__name__}: {err}"
        raise StudentCodeError(CheckResult(exercise, False, message, failures=("error",))) from None


def report(result: CheckResult, verbose: bool = True) -> CheckResult:
    """Print the feedback (when ``verbose``) and return the result."""
    if verbose:
        print(result.message)
    return result
