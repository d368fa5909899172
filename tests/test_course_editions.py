"""The course's editions: hand-made notebooks for the rules, the real lessons for the structure, nbgrader for grading.

The slow tests execute every lesson: the student edition through nbgrader's autograder
(a blank copy scores 0, a solved copy full marks, and only the unanswered exercises'
graded cells raise), the self-study edition with nbclient, and the instructor edition
through ``nbgrader validate``. nbval runs the instructor edition itself (``notebooks/``).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from cbir_lab.cli import main
from cbir_lab.course.editions import (
    CAPSTONE,
    CODE_STUB,
    COLAB_BADGE,
    EDITIONS,
    REFERENCE_PAGES,
    STUDENT_COLAB_NOTE,
    TEXT_STUB,
    ClearSolutionRegions,
    edition,
    lesson_paths,
    lessons_dir,
    write_edition,
)

ROOT = Path(__file__).resolve().parents[1]
LESSONS = lesson_paths(ROOT / "notebooks")


def nbgrader_meta(grade_id: str, solution: bool, grade: bool, points: int | None = None) -> dict:
    meta = {"grade_id": grade_id, "solution": solution, "grade": grade, "locked": not solution, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def toy_lesson():
    """An exercise (answer + graded check), a written answer, and a plain cell with an output."""
    answer = new_code_cell("def double(x):\n    \"\"\"2x.\"\"\"\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                           metadata=nbgrader_meta("double-answer", True, False))
    answer.outputs = [new_output("stream", name="stdout", text="defined\n")]
    graded = new_code_cell("assert double(2) == 4", metadata=nbgrader_meta("double-check", False, True, 2))
    written = new_markdown_cell("### BEGIN SOLUTION\nBecause it is linear.\n### END SOLUTION",
                                metadata=nbgrader_meta("why-answer", True, True, 3))
    plain = new_code_cell("print(1)")
    plain.outputs = [new_output("stream", name="stdout", text="1\n")]
    nb = new_notebook(cells=[new_markdown_cell("# Toy"), answer, graded, written, plain])
    nbformat.validate(nb)
    return nb


# ---------------------------------------------------------------- the rules, on a hand-made lesson


def test_instructor_edition_is_the_source_unchanged():
    nb = toy_lesson()
    assert edition(nb, "instructor") == nb


def test_student_edition_replaces_solutions_by_nbgraders_stubs_and_clears_outputs():
    nb = toy_lesson()
    student = edition(nb, "student")
    answer, graded, written, plain = student.cells[1:]
    assert answer.source == 'def double(x):\n    """2x."""\n    # YOUR CODE HERE\n    raise NotImplementedError()'
    assert graded.source == "assert double(2) == 4"  # the check stays
    assert written.source == TEXT_STUB
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    assert answer.metadata["nbgrader"]["grade_id"] == "double-answer"  # nbgrader can still grade it
    assert "return 2 * x" in nb.cells[1].source and nb.cells[4].outputs  # the source notebook is untouched


def test_self_study_edition_follows_each_answer_with_its_solution_one_click_away():
    student_answer, solution, graded, written, model, plain = edition(toy_lesson(), "self-study").cells[1:]
    assert "raise NotImplementedError()" in student_answer.source and not student_answer.outputs
    assert solution.source.startswith("# Solution") and "return 2 * x" in solution.source
    assert "BEGIN SOLUTION" not in solution.source
    assert solution.metadata["jupyter"]["source_hidden"] is True
    assert {"solution", "hide-input"} <= set(solution.metadata["tags"])
    assert "nbgrader" not in solution.metadata  # the student's cell is the one graded
    assert graded.source == "assert double(2) == 4"
    assert written.source == TEXT_STUB
    assert model.source.startswith("<details>") and "Because it is linear." in model.source
    assert plain.outputs  # outputs kept: the edition reads like a book


def test_a_self_study_answer_that_raises_at_once_lets_run_all_go_on_to_its_solution():
    project = new_code_cell("### BEGIN SOLUTION\nsplit = 2\n### END SOLUTION", metadata=nbgrader_meta("split", True, False))
    nb = new_notebook(cells=[project, toy_lesson().cells[1]])
    blank, solution, function, _ = edition(nb, "self-study").cells
    assert blank.source == CODE_STUB and "raises-exception" in blank.metadata["tags"]
    assert "raises-exception" not in solution.metadata["tags"]
    assert "raises-exception" not in function.metadata.get("tags", [])  # a function's stub raises only when called


def test_self_study_cell_ids_stay_unique_and_valid():
    nb = edition(toy_lesson(), "self-study")
    nbformat.validate(nb)
    ids = [c["id"] for c in nb.cells]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("source, message", [
    ("x = 1\n### BEGIN SOLUTION\nx = 2", "BEGIN SOLUTION without END"),
    ("### END SOLUTION", "END SOLUTION without BEGIN"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "starts inside another"),
])
def test_malformed_solution_regions_are_errors_that_name_the_cell(source, message):
    nb = toy_lesson()
    nb.cells[1].source = source
    with pytest.raises(ValueError, match=message) as err:
        edition(nb, "student", "toy.ipynb")
    assert "toy.ipynb, cell 1" in str(err.value)


def test_a_solution_region_in_an_unmarked_cell_is_an_error():
    nb = toy_lesson()
    nb.cells[4].source = "### BEGIN SOLUTION\nsecret = 1\n### END SOLUTION"
    with pytest.raises(ValueError, match="not marked as a solution cell"):
        edition(nb, "student", "toy.ipynb")


def test_unknown_edition():
    with pytest.raises(ValueError, match="unknown edition 'teacher'"):
        edition(toy_lesson(), "teacher")
    with pytest.raises(ValueError, match="unknown edition"):
        write_edition("teacher", "anywhere")


# ---------------------------------------------------------------- writing an edition


def test_the_student_edition_trades_the_colab_badge_for_an_upload_note():
    # The badge opens the lesson in the repository, solutions and all: a graded lab must not link to it.
    badge = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
             "(https://colab.research.google.com/github/owner/repo/blob/main/notebooks/01_toy.ipynb)")
    nb = toy_lesson()
    nb.cells[0].source = f"# Toy\n\n{badge}\n\nAbout 5 minutes."
    student = edition(nb, "student").cells[0].source
    assert student == f"# Toy\n\n{STUDENT_COLAB_NOTE}\n\nAbout 5 minutes."
    assert "File → Upload notebook" in STUDENT_COLAB_NOTE
    assert edition(nb, "self-study").cells[0].source == nb.cells[0].source  # solutions one click away there anyway


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_no_student_lesson_links_to_the_lessons_with_their_solutions(path):
    source = nbformat.read(path, as_version=4)
    assert any(COLAB_BADGE.search(c.source) for c in source.cells)  # the lessons have a badge to replace
    student = edition(source, "student", path.name)
    assert not any("colab.research.google.com/github" in c.source for c in student.cells)


def test_write_edition_never_overwrites_a_students_work(tmp_path):
    source = tmp_path / "lessons"
    source.mkdir()
    nbformat.write(toy_lesson(), source / "01_toy.ipynb")
    out = tmp_path / "lab"
    assert [p.name for p in write_edition("student", out, source)] == ["01_toy.ipynb"]
    (out / "01_toy.ipynb").write_text("my answers")
    with pytest.raises(FileExistsError, match="01_toy.ipynb"):
        write_edition("self-study", out, source)
    assert (out / "01_toy.ipynb").read_text() == "my answers"
    assert sorted(p.name for p in out.iterdir()) == ["01_toy.ipynb"]  # no temporary file left behind


def test_cli_writes_an_edition_and_reports_a_clash(tmp_path, capsys):
    assert main(["course", "student", str(tmp_path / "lab")]) == 0
    assert sorted(p.name for p in (tmp_path / "lab").glob("*.ipynb")) == [p.name for p in LESSONS]
    assert main(["course", "student", str(tmp_path / "lab")]) == 1
    assert "already exist" in capsys.readouterr().err


def test_lessons_come_from_the_checkout():
    assert lessons_dir() == ROOT / "notebooks"
    assert [p.name[:2] for p in LESSONS] == [f"{i:02d}" for i in range(1, len(LESSONS) + 1)]


# ---------------------------------------------------------------- the real lessons


def nbgrader_cells(nb, **flags):
    return [c for c in nb.cells if c.metadata.get("nbgrader") and
            all(c.metadata["nbgrader"].get(k) == v for k, v in flags.items())]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_each_exercise_has_an_answer_cell_and_a_graded_check_that_requires_it(path):
    nb = nbformat.read(path, as_version=4)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nbgrader_cells(nb)]
    assert len(ids) == len(set(ids)), "grade ids must be unique within a lesson"
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
            if path.name == CAPSTONE:  # graded by hand: the part's written answer, next, grades this code with it
                written = nb.cells[i + 1]
                assert not meta["grade"] and written.cell_type == "markdown" and written.metadata["nbgrader"]["grade"]
                continue
            check = nb.cells[i + 1]
            assert check.metadata["nbgrader"]["grade"] and check.metadata["nbgrader"]["locked"]
            # a self-check of the package, or a quick check grading the option the student recorded
            assert re.search(r"(check_\w+|\w+\.check_answer)\(\w+(, \w+)?\)\.require\(\)", check.source), check.source
    # the capstone has no self-checked exercise (tests/test_course_assessment.py holds it to its rubrics)
    assert len(nbgrader_cells(nb, grade=True, solution=False)) >= (path.name != CAPSTONE)


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_later_cells_never_call_the_students_functions(path):
    if path.name == CAPSTONE:
        pytest.skip("the capstone's answers are code, not functions: each part builds on the one before, by design")
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            name = re.search(r"def (\w+)\(", cell.source).group(1)
            users = [j for j, later in enumerate(nb.cells[i + 2:], i + 2)
                     if later.cell_type == "code" and re.search(rf"\b{name}\b", later.source)]
            assert not users, f"{path.name}: cells {users} call the student's {name}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_each_lesson_is_timed_and_asks_before_it_reveals(path):
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    if path.name == CAPSTONE:  # a project of 2 to 3 hours, graded by hand: its brief states its time
        minutes = int(re.search(r"\*\*About (\d+) minutes:\*\*", nb.cells[0].source).group(1))
        sections = re.findall(r"^## \d+\..*\(≈ (\d+) min\)", text, flags=re.M)
        assert sections and sum(map(int, sections)) == minutes
        assert 120 <= minutes <= 180 and "2–3 hours" in nb.cells[0].source
        assert nbgrader_cells(nb, grade=True, solution=True)
        return
    # a lesson's times, estimated and stated, are tests/test_course_timing.py's
    assert re.search(r"\*\*About \d+ minutes", nb.cells[0].source) and re.search(r"^## \d+\..*\(≈ \d+ min", text, flags=re.M)
    assert text.count("🤔 Think!") >= 2
    assert all("<details>" in c.source for c in nb.cells if "🤔 Think!" in c.source)
    assert "QuickCheck(Question(" in text
    assert nbgrader_cells(nb, grade=True, solution=True), "an open, manually graded question"


def test_clear_solution_regions_matches_nbgraders_clear_solutions():
    from nbgrader.preprocessors import ClearSolutions

    for path in LESSONS:
        nb = nbformat.read(path, as_version=4)
        ours, _ = ClearSolutionRegions().preprocess(copy.deepcopy(nb), {})
        theirs, _ = ClearSolutions().preprocess(copy.deepcopy(nb), {})
        assert [c.source for c in ours.cells] == [c.source for c in theirs.cells], path.name
    assert ClearSolutions().code_stub["python"] == CODE_STUB


def test_the_wheel_ships_the_lessons(tmp_path):
    # Built from a copy: an in-tree build would leave build/ in the checkout.
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(".git", ".venv", ".ci-venv", "build", "dist", "*.egg-info",
                                                                  "__pycache__", ".ipynb_checkpoints", "artifacts"))
    stale = checkout / "build" / "lib" / "cbir_lab" / "course" / "lessons"
    stale.mkdir(parents=True)
    (stale / "04_renamed_long_ago.ipynb").write_text("{}")  # an earlier build's lesson must not ship
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(checkout)], check=True)
    wheel = next(tmp_path.glob("cbir_lab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(Path(n).name for n in names if n.startswith("cbir_lab/course/lessons/"))
    assert shipped == sorted([p.name for p in LESSONS] + list(REFERENCE_PAGES))  # the lessons and the pages they link
    assert "cbir_lab/datasets/checksums/imagenet-sample.md5" in names  # the image set's pinned checksums
    assert "cbir_lab/course/book.css" in names  # the course book's style sheet
    # Installed from the wheel alone (no checkout next to it), the command finds its lessons.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    out = tmp_path / "handout"
    code = ("import sys; from cbir_lab.course.editions import lessons_dir, write_edition; "
            f"print(lessons_dir()); write_edition('student', {str(out)!r})")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": ""},
                         capture_output=True, text=True, check=True)
    assert run.stdout.strip() == str(target / "cbir_lab" / "course" / "lessons")
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in LESSONS] + list(REFERENCE_PAGES))


# ---------------------------------------------------------------- executing the editions (slow)

NBGRADER_CONFIG = """\
c = get_config()
c.CourseDirectory.course_id = "cbir-lab"
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = "sqlite:///{root}/gradebook.db"
c.Execute.timeout = 600
"""


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory):
    """An nbgrader course holding the lessons as assignment "lab", autograded for a blank and a solved copy."""
    course = tmp_path_factory.mktemp("course")
    (course / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(root=str(course)))
    write_edition("instructor", course / "source" / "lab")
    nbgrader(course, "generate_assignment", "lab", "--force")
    write_edition("student", course / "submitted" / "blank" / "lab")  # what the class is handed, unanswered
    write_edition("instructor", course / "submitted" / "solved" / "lab")
    for student in ("blank", "solved"):
        nbgrader(course, "db", "student", "add", student)
    nbgrader(course, "autograde", "lab")
    return course


@pytest.mark.slow
def test_a_blank_student_copy_scores_zero(graded_course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded_course}/gradebook.db") as gradebook:
        notebooks = gradebook.find_submission("lab", "blank").notebooks
        assert sorted(nb.name for nb in notebooks) == [p.stem for p in LESSONS]
        assert all(nb.max_code_score > 0 for nb in notebooks if nb.name != Path(CAPSTONE).stem)
        capstone = next(nb for nb in notebooks if nb.name == Path(CAPSTONE).stem)
        assert capstone.max_code_score == 0 and capstone.max_written_score == 20  # graded by hand alone
        assert sum(nb.score for nb in notebooks) == 0


@pytest.mark.slow
def test_a_solved_copy_gets_full_marks_on_the_autograded_part(graded_course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded_course}/gradebook.db") as gradebook:
        for nb in gradebook.find_submission("lab", "solved").notebooks:
            assert nb.code_score == nb.max_code_score > (-1 if nb.name == Path(CAPSTONE).stem else 0), nb.name
            assert nb.max_written_score > 0 and nb.needs_manual_grade, nb.name  # the open question waits for a person


@pytest.mark.slow
def test_in_the_student_edition_only_unanswered_graded_checks_raise_after_their_feedback(graded_course):
    for path in LESSONS:
        nb = nbformat.read(graded_course / "autograded" / "blank" / "lab" / path.name, as_version=4)
        graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            errors = [o for o in cell.outputs if o.output_type == "error"]
            if path.name == CAPSTONE and cell.metadata.get("nbgrader", {}).get("solution"):
                # a blank part of the project raises where the student's code goes, and nowhere else
                assert [e.ename for e in errors] == ["NotImplementedError"], f"{path.name}: {cell.source[:80]}"
            elif cell in graded:
                assert [e.ename for e in errors] == ["ExerciseNotPassed"], f"{path.name}: {cell.source}"
                printed = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
                assert "not implemented yet" in printed, f"{path.name}: no feedback before the error"
            else:
                assert not errors, f"{path.name}: {cell.source[:80]} raised {errors[0].ename}: {errors[0].evalue}"


@pytest.mark.slow
def test_nbgrader_validates_the_instructor_edition(tmp_path):
    written = [p for p in write_edition("instructor", tmp_path) if p.suffix == ".ipynb"]  # not the reference pages
    # nbgrader's default is 30 s a cell; a lesson's longest cells (a 10^5-vector index, the capstone's grid) take longer
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\nc.Execute.timeout = 600\n")
    run = subprocess.run([sys.executable, "-m", "nbgrader", "validate", *map(str, written)], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("Success! Your notebook passes all the tests.") == len(written), run.stdout[-3000:]


@pytest.mark.slow
def test_the_self_study_edition_runs_top_to_bottom_without_an_error(tmp_path):
    from nbclient import NotebookClient

    for path in [p for p in write_edition("self-study", tmp_path) if p.suffix == ".ipynb"]:  # not the reference pages
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises on error
        solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
        assert solutions and all(c.metadata["jupyter"]["source_hidden"] for c in solutions)


def test_every_edition_is_a_valid_notebook():
    for path in LESSONS:
        nb = nbformat.read(path, as_version=4)
        for name in EDITIONS:
            nbformat.validate(edition(nb, name, path.name))
