"""Quick checks: multiple-choice questions with immediate feedback, one widget per question.

* :class:`Question`: the question, its options, the right one, and a word of
  feedback per option (why a wrong choice is wrong, why the right one is right).
* :func:`answer_feedback`: the feedback for a choice (pure; tests call it).
* :meth:`Question.shuffled`: the same question with its options in a seeded random
  order, each option keeping its feedback (so the right one is not always in the
  same place).
* :class:`QuickCheck`: radio buttons lettered A, B, C…, a "Check" button and the
  feedback, a thin layer over :func:`answer_feedback`; :meth:`QuickCheck.check_answer`
  grades the letter a student records in an answer cell, which is what nbgrader sees
  (a widget's state is not saved with the notebook).

No dependency beyond ipywidgets, so it runs in JupyterLab, Notebook 7, VS Code
and Colab alike; ``repr`` stays short and stable for nbval.
"""

from __future__ import annotations

import html
import string
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report

__all__ = ["Question", "answer_feedback", "option_letter", "QuickCheck"]


def option_letter(index: int) -> str:
    """The letter an option is shown with: 0 → ``"A"``, 1 → ``"B"``…

    Examples:
        >>> option_letter(2)
        'C'
    """
    return string.ascii_uppercase[index]


@dataclass(frozen=True)
class Question:
    """A multiple-choice question.

    Attributes:
        text: the question.
        options: the choices, in the order shown.
        answer: the index of the right choice.
        why: one explanation per option, shown when that option is picked.
    """

    text: str
    options: tuple[str, ...]
    answer: int
    why: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.options) < 2:
            raise ValueError(f"a question needs at least two options, got {len(self.options)}")
        if len(self.why) != len(self.options):
            raise ValueError(f"give one explanation per option: {len(self.why)} for {len(self.options)} options")
        if not 0 <= self.answer < len(self.options):
            raise ValueError(f"answer must index an option (0..{len(self.options) - 1}), got {self.answer}")
        if len(self.options) > 26:
            raise ValueError(f"at most 26 options (lettered A to Z), got {len(self.options)}")

    def shuffled(self, seed: int) -> "Question":
        """The same question with its options in a random order fixed by ``seed``.

        Each option keeps its explanation, and ``answer`` follows the right option,
        so the feedback a choice gets does not change; only where it is shown does.

        Examples:
            >>> q = Question("2 + 2?", ("3", "4", "5"), 1, ("one short", "yes", "one over"))
            >>> s = q.shuffled(seed=1)
            >>> s.options[s.answer], s.why[s.answer]
            ('4', 'yes')
            >>> s == q.shuffled(seed=1)
            True
        """
        order = np.random.default_rng(seed).permutation(len(self.options))
        return Question(self.text, tuple(self.options[i] for i in order), int(np.flatnonzero(order == self.answer)[0]),
                        tuple(self.why[i] for i in order))


def answer_feedback(question: Question, choice: int | None) -> tuple[bool, str]:
    """Whether ``choice`` is right, and what to tell the student.

    Args:
        question: the :class:`Question`.
        choice: the index of the option picked, or None.

    Returns:
        (right, feedback).

    Examples:
        >>> q = Question("2 + 2?", ("3", "4"), 1, ("one short", "yes"))
        >>> answer_feedback(q, 0)
        (False, '✗ Not quite: one short')
        >>> answer_feedback(q, 1)
        (True, '✓ Right: yes')
    """
    if choice is None:
        return False, "Pick an option first."
    if not 0 <= choice < len(question.options):
        raise ValueError(f"choice must be in 0..{len(question.options) - 1}, got {choice}")
    if choice == question.answer:
        return True, f"✓ Right: {question.why[choice]}"
    return False, f"✗ Not quite: {question.why[choice]}"


class QuickCheck:
    """One question as radio buttons with a Check button; the feedback appears below.

    The options are lettered (A, B, C…) so that a student can record a choice in an
    answer cell, graded by :meth:`check_answer`.

    Args:
        question: the :class:`Question`.

    Attributes:
        choice: the ``RadioButtons`` (value: the option's index).
        check: the ``Button``.
        feedback: the ``HTML`` the feedback is written in.
        last: (right, feedback) of the last check, or None.
        widget: the whole panel.
    """

    def __init__(self, question: Question) -> None:
        self.question = question
        self.choice = widgets.RadioButtons(options=[(f"{option_letter(i)}. {text}", i)
                                                    for i, text in enumerate(question.options)], value=None,
                                           layout=widgets.Layout(width="auto"))
        self.check = widgets.Button(description="Check", button_style="primary")
        self.feedback = widgets.HTML()
        self.last: tuple[bool, str] | None = None
        self.check.on_click(lambda _: self.grade())
        self.widget = widgets.VBox([widgets.HTML(f"<b>Quick check.</b> {html.escape(question.text)}"), self.choice,
                                    self.check, self.feedback])
        self.widget.add_class("cbir-quick-check")

    def grade(self) -> tuple[bool, str]:
        """Show and return the feedback for the current choice (what the Check button does)."""
        right, text = answer_feedback(self.question, self.choice.value)
        colour = "#2ca02c" if right else "#d62728"
        self.feedback.value = f'<span style="color:{colour}">{html.escape(text)}</span>'
        self.last = (right, text)
        return self.last

    def check_answer(self, answer_fn, verbose: bool = True) -> CheckResult:
        """Grade the option a student recorded: ``answer_fn()`` returns its letter (``"B"``) or its text.

        The recorded answer is what nbgrader grades (the widget's choice is not saved
        with the notebook); the feedback is the same as the Check button's.

        Args:
            answer_fn: the student's function, taking no argument.
            verbose: print the feedback.

        Returns:
            The :class:`~cbir_lab.exercises._feedback.CheckResult`; ``failures``: ``wrong``,
            ``format`` (not a letter of an option, nor an option's text), ``not_implemented``, ``error``.
        """
        name = "quick check"
        letters = [option_letter(i) for i in range(len(self.question.options))]
        try:
            got = call_student(name, f"Return the letter of the option you chose above ({', '.join(letters)}).",
                               "answer_fn()", answer_fn)
        except StudentCodeError as err:
            return report(err.result, verbose)
        picked = None
        if isinstance(got, str):
            text = got.strip().rstrip(".)").strip()
            if text.upper() in letters:
                picked = letters.index(text.upper())
            elif got.strip() in self.question.options:
                picked = self.question.options.index(got.strip())
        if picked is None:
            message = (f"✗ {name}: return one letter, {', '.join(letters[:-1])} or {letters[-1]} "
                       f"(the option you chose above), as a string; got {got!r:.60}")
            return report(CheckResult(name, False, message, failures=("format",)), verbose)
        right, feedback = answer_feedback(self.question, picked)
        message = f"{option_letter(picked)}: {feedback}"
        return report(CheckResult(name, right, message, failures=() if right else ("wrong",)), verbose)

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        return f"QuickCheck({self.question.text[:40]!r})"
