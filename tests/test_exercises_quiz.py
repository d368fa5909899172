"""Quick checks (cbir_lab.exercises.quiz): the feedback, and the widget driven by its controls."""

from __future__ import annotations

import pytest

from cbir_lab.exercises._feedback import CheckResult, ExerciseNotPassed
from cbir_lab.exercises.quiz import Question, QuickCheck, answer_feedback

QUESTION = Question("Which pooling keeps one cell per channel?", ("SPoC", "MAC", "GeM, p = 3"), 1,
                    ("SPoC sums every cell.", "MAC keeps each channel's maximum.", "GeM averages powers of every cell."))


def test_answer_feedback_explains_each_choice():
    assert answer_feedback(QUESTION, 1) == (True, "✓ Right: MAC keeps each channel's maximum.")
    assert answer_feedback(QUESTION, 0) == (False, "✗ Not quite: SPoC sums every cell.")
    assert answer_feedback(QUESTION, None) == (False, "Pick an option first.")
    with pytest.raises(ValueError, match="choice must be in 0..2"):
        answer_feedback(QUESTION, 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(options=("a",), answer=0, why=("x",)), "at least two options"),
    (dict(options=("a", "b"), answer=0, why=("x",)), "one explanation per option"),
    (dict(options=("a", "b"), answer=2, why=("x", "y")), "answer must index"),
])
def test_a_malformed_question_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Question("q", **kwargs)


def test_the_widget_shows_the_feedback_of_the_choice_when_checked():
    check = QuickCheck(QUESTION)
    check.check.click()
    assert check.last == (False, "Pick an option first.")
    check.choice.value = 2
    check.check.click()  # what a click in the browser does
    assert check.last[0] is False and "GeM averages" in check.feedback.value and "#d62728" in check.feedback.value
    check.choice.value = 1
    check.check.click()
    assert check.last[0] is True and "#2ca02c" in check.feedback.value
    assert repr(check) == "QuickCheck('Which pooling keeps one cell per channel')"
    assert check._repr_mimebundle_()["text/plain"] == repr(check)


def test_require_raises_for_a_graded_cell():
    assert CheckResult("x", True, "ok").require().passed
    with pytest.raises(ExerciseNotPassed, match="x: not yet"):
        CheckResult("x", False, "no").require()
    assert issubclass(ExerciseNotPassed, AssertionError)  # nbgrader scores a raising test cell 0
