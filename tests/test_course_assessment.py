"""How the lessons assess: quick checks, and decisions checked with a tolerance.

These tests read the lessons themselves (``notebooks/``), so a lesson edited back into a
bad state fails them; each rule is also tried on hand-made notebooks that break it.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from cbir_lab.course.editions import edition, lesson_paths
from cbir_lab.exercises.quiz import Question, option_letter

ROOT = Path(__file__).resolve().parents[1]
LESSONS = lesson_paths(ROOT / "notebooks")


def quick_checks(nb) -> list[tuple[int, Question]]:
    """(cell index, question) of every ``QuickCheck(Question(...))`` in a notebook, read from its source."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "QuickCheck(Question(" not in cell.source:
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Question":
                found.append((i, Question(*(ast.literal_eval(arg) for arg in node.args))))
    return found


def crowded_positions(notebooks) -> dict[str, int]:
    """Answer positions (as letters) that hold more than half of the quick checks across ``notebooks``."""
    positions = Counter(option_letter(q.answer) for nb in notebooks for _, q in quick_checks(nb))
    total = sum(positions.values())
    return {letter: n for letter, n in positions.items() if n > total / 2}


def test_no_answer_position_holds_more_than_half_of_the_courses_quick_checks():
    notebooks = [nbformat.read(path, as_version=4) for path in LESSONS]
    assert sum(len(quick_checks(nb)) for nb in notebooks) >= len(LESSONS)
    assert crowded_positions(notebooks) == {}


def toy_quick_check(answer: int):
    return new_code_cell(f'quick = QuickCheck(Question("q?", ("a", "b", "c"), {answer}, ("x", "y", "z")))\nquick')


def test_the_position_rule_fails_when_the_answer_sits_in_one_place():
    # The state the course was in: the right answer in the middle in 7 of 8 lessons.
    course = [new_notebook(cells=[toy_quick_check(1)]) for _ in range(7)] + [new_notebook(cells=[toy_quick_check(2)])]
    assert crowded_positions(course) == {"B": 7}
    balanced = [new_notebook(cells=[toy_quick_check(answer)]) for answer in (0, 1, 2, 0, 1, 2, 2, 0)]
    assert crowded_positions(balanced) == {}


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_each_quick_check_is_followed_by_a_recorded_answer_that_nbgrader_grades(path):
    nb = nbformat.read(path, as_version=4)
    checks = quick_checks(nb)
    assert checks, f"{path.name} has no quick check"
    for i, question in checks:
        assert nb.cells[i].source.startswith("quick = QuickCheck(")
        answer, graded = nb.cells[i + 1], nb.cells[i + 2]
        assert answer.metadata["nbgrader"]["solution"] and "def quick_check_answer()" in answer.source
        assert f'return "{option_letter(question.answer)}"' in answer.source, "the solution records the right option"
        assert graded.metadata["nbgrader"]["grade"] and graded.metadata["nbgrader"]["points"] >= 1
        assert graded.source.strip() == "quick.check_answer(quick_check_answer).require();"
        student = edition(nb, "student", path.name)
        assert f'return "{option_letter(question.answer)}"' not in student.cells[i + 1].source


# ---------------------------------------------------------------- each lesson asks for a decision checked with a tolerance

DECISION_CHECKS = ("check_effective_radius", "check_p_choice", "check_dimension_choice", "check_claim_test",
                   "check_layer_choice", "check_queries_needed", "check_fisher_mean_gradient", "check_adc_distances",
                   "check_paired_bootstrap")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_each_lesson_has_an_exercise_checked_with_a_tolerance(path):
    nb = nbformat.read(path, as_version=4)
    graded = [c.source for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    assert any(name in source for source in graded for name in DECISION_CHECKS), path.name
