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


# ---------------------------------------------------------------- shuffled options, and the recorded answer


def test_shuffling_moves_the_answer_but_keeps_each_options_feedback():
    question = Question("Which pooling keeps one cell per channel?", ("SPoC", "MAC", "GeM, p = 3", "R-MAC"), 1,
                        ("sums", "maxima", "powers", "regions"))
    seen = set()
    for seed in range(8):
        shuffled = question.shuffled(seed)
        assert sorted(shuffled.options) == sorted(question.options)
        assert shuffled.options[shuffled.answer] == "MAC"
        for option, why in zip(question.options, question.why):  # each option keeps its own explanation
            assert shuffled.why[shuffled.options.index(option)] == why
            right, feedback = answer_feedback(shuffled, shuffled.options.index(option))
            assert right == (option == "MAC") and feedback.endswith(why)
        assert shuffled == question.shuffled(seed)  # a fixed seed, a fixed order
        seen.add(shuffled.answer)
    assert len(seen) > 1  # the right option does not stay in one place


def test_the_options_are_lettered_so_that_a_choice_can_be_recorded():
    check = QuickCheck(QUESTION)
    assert [label for label, _ in check.choice.options] == ["A. SPoC", "B. MAC", "C. GeM, p = 3"]
    assert [value for _, value in check.choice.options] == [0, 1, 2]


@pytest.mark.parametrize("recorded, passed, failure, says", [
    ("B", True, None, "✓ Right: MAC keeps each channel's maximum."),
    (" b. ", True, None, "✓ Right"),
    ("MAC", True, None, "✓ Right"),  # the option's own text is accepted too
    ("A", False, "wrong", "✗ Not quite: SPoC sums every cell."),
    ("C", False, "wrong", "GeM averages powers"),
    ("D", False, "format", "return one letter, A, B or C"),
    (1, False, "format", "as a string; got 1"),
])
def test_a_recorded_answer_gets_the_feedback_of_its_option(recorded, passed, failure, says):
    result = QuickCheck(QUESTION).check_answer(lambda: recorded, verbose=False)
    assert result.passed is passed and says in result.message
    assert result.failures == (() if passed else (failure,))


def test_an_unrecorded_answer_is_not_implemented_and_raises_only_when_required():
    def stub():
        raise NotImplementedError()

    result = QuickCheck(QUESTION).check_answer(stub, verbose=False)
    assert not result.implemented and "not implemented yet" in result.message and "A, B, C" in result.message
    with pytest.raises(ExerciseNotPassed):
        result.require()
