"""How the lessons assess: quick checks, decisions checked with a tolerance, rubrics, and a stretch tier.

These tests read the lessons themselves (``notebooks/``), so a lesson edited back into a
bad state fails them; each rule is also tried on hand-made notebooks that break it.

The capstone (``CAPSTONE``, lesson 11) is a project graded by hand, not a lesson: it has no
quick check, self-checked exercise or open question. It is held instead to rules of its own
(the last section): every part has a written answer with a model answer and a rubric worth
exactly its points, the parts add up to the total the brief states, and the student sees no rubric.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from cbir_lab.course.editions import CAPSTONE, edition, lesson_paths
from cbir_lab.exercises.quiz import Question, option_letter

ROOT = Path(__file__).resolve().parents[1]
#: The taught lessons: every notebook but the capstone, which the last section tests on its own terms.
LESSONS = [path for path in lesson_paths(ROOT / "notebooks") if path.name != CAPSTONE]


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


# ---------------------------------------------------------------- open questions: a rubric for the instructor only

RUBRIC = re.compile(r"[*_]{1,2}Rubric \(3 points")


def has_rubric(region: str) -> bool:
    """A "Rubric (3 points)" heading (bold or italic), then what earns each point: three numbered items
    ("1. …", "2. …", "3. …") or three "1 point: …" clauses."""
    heading = RUBRIC.search(region)
    if not heading:
        return False
    after = region[heading.start():]
    return len(re.findall(r"^[1-3]\. \S", after, flags=re.M)) >= 3 or after.count("1 point:") >= 3


def open_questions(nb) -> list[tuple[int, int]]:
    """(task cell, answer cell) of every open question: a "### Open question" heading, then its graded written answer."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and cell.source.startswith("### Open question"):
            answer = next(j for j in range(i + 1, len(nb.cells))
                          if nb.cells[j].metadata.get("nbgrader", {}).get("solution"))
            found.append((i, answer))
    return found


def without_rubric(nb) -> list[int]:
    """The open questions (their task cells) whose answer region holds no 3-point rubric or no model answer."""
    missing = []
    for task, answer in open_questions(nb):
        source = nb.cells[answer].source
        region = source[source.find("### BEGIN SOLUTION"):source.find("### END SOLUTION")]
        if not has_rubric(region) or "*Model answer.*" not in region:
            missing.append(task)
    return missing


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_every_open_question_has_a_rubric_and_a_model_answer(path):
    nb = nbformat.read(path, as_version=4)
    assert open_questions(nb), f"{path.name} has no open question"
    assert without_rubric(nb) == []
    for task, answer in open_questions(nb):
        assert "3 points" in nb.cells[task].source and nb.cells[answer].metadata["nbgrader"]["points"] == 3


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_the_rubric_is_in_the_instructor_edition_and_not_in_the_students(path):
    nb = nbformat.read(path, as_version=4)
    instructor = "\n".join(c.source for c in edition(nb, "instructor", path.name).cells)
    student = "\n".join(c.source for c in edition(nb, "student", path.name).cells)
    assert len(RUBRIC.findall(instructor)) == len(open_questions(nb))
    assert "Rubric" not in student and "*Model answer.*" not in student


def test_the_rubric_rule_fails_on_an_open_question_without_one():
    task = nbformat.v4.new_markdown_cell("### Open question — why? (manually graded, 3 points)\n\nExplain.")
    meta = {"nbgrader": {"grade": True, "solution": True, "grade_id": "why", "points": 3, "locked": False,
                         "schema_version": 3}}
    bare = nbformat.v4.new_markdown_cell("### BEGIN SOLUTION\n*Model answer.* Because.\n### END SOLUTION", metadata=meta)
    assert without_rubric(new_notebook(cells=[task, bare])) == [0]
    rubric = "**Rubric (3 points).** One point for each:\n\n1. a\n2. b\n3. c\n\n"
    graded = nbformat.v4.new_markdown_cell(f"### BEGIN SOLUTION\n{rubric}*Model answer.* Because.\n### END SOLUTION",
                                           metadata=meta)
    assert without_rubric(new_notebook(cells=[task, graded])) == []
    two_points = graded.source.replace("3. c\n", "")
    assert without_rubric(new_notebook(cells=[task, nbformat.v4.new_markdown_cell(two_points, metadata=meta)])) == [0]
    clauses = ("### BEGIN SOLUTION\n*Model answer.* Because.\n\n*Rubric (3 points).* 1 point: a. 1 point: b. "
               "1 point: c.\n### END SOLUTION")
    assert without_rubric(new_notebook(cells=[task, nbformat.v4.new_markdown_cell(clauses, metadata=meta)])) == []


# ---------------------------------------------------------------- a stretch tier, and a way in for everyone

EXERCISE = re.compile(r"^### Exercise \d+( ★)? — ", re.M)


def exercise_headings(nb) -> list[str]:
    return [line for cell in nb.cells if cell.cell_type == "markdown" for line in cell.source.splitlines()
            if EXERCISE.match(line)]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_each_lesson_has_an_exercise_without_a_star(path):
    headings = exercise_headings(nbformat.read(path, as_version=4))
    assert headings, f"{path.name} has no exercise heading"
    assert [h for h in headings if "★" not in h], f"{path.name}: every exercise is a stretch (★); keep one for everyone"


def test_the_course_has_a_stretch_tier():
    stars = [h for path in LESSONS for h in exercise_headings(nbformat.read(path, as_version=4)) if "★" in h]
    assert len(stars) >= len(LESSONS) // 2


def test_the_star_rule_fails_on_a_lesson_of_stretch_exercises_only():
    nb = new_notebook(cells=[nbformat.v4.new_markdown_cell("### Exercise 1 ★ — hard (3 points)\n\nDo it.")])
    assert exercise_headings(nb) == ["### Exercise 1 ★ — hard (3 points)"]
    assert not [h for h in exercise_headings(nb) if "★" not in h]


# ---------------------------------------------------------------- each lesson asks for a decision checked with a tolerance

DECISION_CHECKS = ("check_effective_radius", "check_p_choice", "check_dimension_choice", "check_claim_test",
                   "check_layer_choice", "check_queries_needed", "check_fisher_mean_gradient", "check_adc_distances",
                   "check_paired_bootstrap",
                   # lesson 10: implement a component (the multi-scale power mean), checked to a tolerance, like the
                   # Fisher-vector block and the ADC distances above
                   "check_multiscale_pooling",
                   # lesson 12 (a reading lesson): a gain quoted only between comparable published rows, checked to
                   # 0.005 points, and refused for rows that differ in benchmark, distractors or training set
                   "check_like_for_like_gain")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_each_lesson_has_an_exercise_checked_with_a_tolerance(path):
    nb = nbformat.read(path, as_version=4)
    graded = [c.source for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    assert any(name in source for source in graded for name in DECISION_CHECKS), (
        f"{path.name}: no graded exercise asks for a decision checked with a tolerance; add one, or name its "
        "tolerance-based check in DECISION_CHECKS")


# ---------------------------------------------------------------- the capstone: a project graded by hand, with a rubric per part

CAPSTONE_PATH = ROOT / "notebooks" / CAPSTONE
PART = re.compile(r"^### Part (\d+) — .*\(graded by hand, (\d+) points?\)", re.M)
POINTS_RUBRIC = re.compile(r"[*_]{1,2}Rubric \((\d+) points?\)")


def capstone_parts(nb) -> list[tuple[int, int, int]]:
    """(part, points the task announces, index of its written answer) for each "### Part N — …" task cell."""
    parts = []
    for i, cell in enumerate(nb.cells):
        found = PART.match(cell.source) if cell.cell_type == "markdown" else None
        if found:
            answer = next(j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "markdown"
                          and nb.cells[j].metadata.get("nbgrader", {}).get("grade"))
            parts.append((int(found.group(1)), int(found.group(2)), answer))
    return parts


def rubric_problems(nb) -> list[str]:
    """What is wrong with the capstone's grading: parts out of order, an answer whose points, rubric or model answer
    does not match its task, or parts that do not add up to the brief's total."""
    problems, total = [], 0
    parts = capstone_parts(nb)
    if [part for part, _, _ in parts] != list(range(1, len(parts) + 1)) or not parts:
        problems.append(f"parts are not numbered 1..n: {[part for part, _, _ in parts]}")
    for part, points, answer in parts:
        cell = nb.cells[answer]
        meta = cell.metadata["nbgrader"]
        region = cell.source[cell.source.find("### BEGIN SOLUTION"):cell.source.find("### END SOLUTION")]
        rubric = POINTS_RUBRIC.search(region)
        if not (meta.get("solution") and meta.get("points") == points):
            problems.append(f"part {part}: its written answer is not a graded solution worth {points} points")
        if "*Model answer.*" not in region:
            problems.append(f"part {part}: no model answer")
        if not rubric or int(rubric.group(1)) != points:
            problems.append(f"part {part}: no rubric worth {points} points")
        elif region[rubric.start():].count("1 point:") != points:
            problems.append(f"part {part}: its rubric does not say what earns each of its {points} points")
        total += points
    stated = re.search(r"\*\*Total: (\d+) points\.\*\*", "\n".join(c.source for c in nb.cells))
    if not stated or int(stated.group(1)) != total:
        problems.append(f"the parts add up to {total} points, the brief says {stated.group(1) if stated else 'nothing'}")
    return problems


def test_the_capstone_grades_every_part_by_hand_with_a_rubric_worth_its_points():
    nb = nbformat.read(CAPSTONE_PATH, as_version=4)
    assert rubric_problems(nb) == []
    parts = capstone_parts(nb)
    assert len(parts) == 6 and sum(points for _, points, _ in parts) == 20
    # the brief's table gives each part the points its task announces
    brief = next(c.source for c in nb.cells if "**Total:" in c.source)
    for part, points, _ in parts:
        assert re.search(rf"^\| {part}\. .* \| {points} \|$", brief, flags=re.M), f"part {part} in the brief's table"
    assert "(20 points)" in nb.cells[0].source and "graded by hand" in nb.cells[0].source


def test_the_capstone_is_graded_by_a_person_alone():
    nb = nbformat.read(CAPSTONE_PATH, as_version=4)
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert graded and all(c.cell_type == "markdown" and c.metadata["nbgrader"]["solution"] for c in graded)
    answers = [c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]
    assert len(answers) >= 4 and all("### BEGIN SOLUTION" in c.source for c in answers)
    assert not quick_checks(nb) and not open_questions(nb)


def test_the_capstones_rubrics_are_for_the_instructor_only():
    nb = nbformat.read(CAPSTONE_PATH, as_version=4)
    instructor = "\n".join(c.source for c in edition(nb, "instructor", CAPSTONE).cells)
    student = "\n".join(c.source for c in edition(nb, "student", CAPSTONE).cells)
    assert len(POINTS_RUBRIC.findall(instructor)) == len(capstone_parts(nb))
    assert "Rubric" not in student and "*Model answer.*" not in student


def test_the_capstone_rules_fail_on_a_rubric_worth_other_points_and_on_a_wrong_total():
    def part(points: int, rubric_points: int, clauses: int, total: int):
        meta = {"nbgrader": {"grade": True, "solution": True, "grade_id": "p1", "points": points, "locked": False,
                             "schema_version": 3}}
        return new_notebook(cells=[
            nbformat.v4.new_markdown_cell(f"**Total: {total} points.**"),
            nbformat.v4.new_markdown_cell(f"### Part 1 — why (graded by hand, {points} points)\n\nExplain."),
            nbformat.v4.new_markdown_cell("### BEGIN SOLUTION\n*Model answer.* Because.\n\n"
                                          f"*Rubric ({rubric_points} points).* " + "1 point: a. " * clauses +
                                          "\n### END SOLUTION", metadata=meta)])

    assert rubric_problems(part(2, 2, 2, 2)) == []
    assert rubric_problems(part(2, 3, 3, 2)) == ["part 1: no rubric worth 2 points"]
    assert rubric_problems(part(2, 2, 1, 2)) == ["part 1: its rubric does not say what earns each of its 2 points"]
    assert rubric_problems(part(2, 2, 2, 5)) == ["the parts add up to 2 points, the brief says 5"]
