"""Quick checks: multiple-choice questions with immediate feedback, one widget per question.

* :class:`Question`: the question, its options, the right one, and a word of
  feedback per option (why a wrong choice is wrong, why the right one is right).
* :func:`answer_feedback`: the feedback for a choice (pure; tests call it).
* :class:`QuickCheck`: radio buttons, a "Check" button and the feedback, a thin
  layer over :func:`answer_feedback`.

No dependency beyond ipywidgets, so it runs in JupyterLab, Notebook 7, VS Code
and Colab alike; ``repr`` stays short and stable for nbval.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as widgets

__all__ = ["Question", "answer_feedback", "QuickCheck"]


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
        self.choice = widgets.RadioButtons(options=[(text, i) for i, text in enumerate(question.options)], value=None,
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

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        return f"QuickCheck({self.question.text[:40]!r})"
