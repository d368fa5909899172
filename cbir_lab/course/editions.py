"""The course's editions, written from one source: the lessons in ``notebooks/``.

The lessons mark their exercises the way nbgrader (Jupyter's grading tool) does:
an answer cell holds its solution between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` and carries ``metadata.nbgrader`` (``solution``,
``grade_id``, …); the graded test cell after it calls the exercise's self-check,
which prints its feedback and raises when the answer is missing or wrong. An
instructor can import the lessons into nbgrader unchanged.

* ``instructor``: the lessons as they are, complete and executed.
* ``student``: every solution region replaced by nbgrader's stub
  (``raise NotImplementedError()`` in code, ``YOUR ANSWER HERE`` in written
  answers), every output cleared, the self-checks left in place. The "Open in
  Colab" badge becomes a note on uploading the notebook to Colab: the badge opens
  the lesson's self-study edition (:func:`cbir_lab.course.project.colab_url`),
  whose solutions are one click away.
* ``self-study``: the student's answer cell, then the solution one click away:
  a code cell collapsed in JupyterLab (``source_hidden``) and tagged
  ``hide-input`` for the book, or a ``<details>`` block for a written answer.
  Outputs are kept, so the edition reads like a book and runs top to bottom: a
  blank answer whose stub raises as soon as it runs (the capstone's answers are
  code, not a function to define) is tagged ``raises-exception``, so that running
  every cell goes on to the solution after it.

The capstone (:data:`CAPSTONE`) is a project graded by hand: its answers are code
cells that build on each other and written answers with a rubric each, and it has
no self-checked exercise or quick check; the course's tests hold it to rules of its own.

:func:`edition` transforms one notebook (pure); :func:`write_edition` writes a
whole edition to a folder without overwriting anything; :func:`lessons_dir`
finds the lessons in a checkout or in the installed package.

Beside the lessons live the course's reference pages (:data:`REFERENCE_PAGES`: the
cheat sheet of notation and formulas, and the glossary), Markdown files that the
lessons link to. They are the same in every edition, so :func:`write_edition`
copies them as they are, and the book (:mod:`cbir_lab.course.book`) makes a page
of each.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearOutputPreprocessor, Preprocessor

from cbir_lab.paths import atomic_write

__all__ = [
    "EDITIONS",
    "CODE_STUB",
    "TEXT_STUB",
    "COLAB_BADGE",
    "CAPSTONE",
    "STUDENT_COLAB_NOTE",
    "REFERENCE_PAGES",
    "lessons_dir",
    "lesson_paths",
    "reference_pages",
    "ClearSolutionRegions",
    "edition",
    "write_edition",
]

#: The editions ``cbir-lab course EDITION DIR`` writes.
EDITIONS = ("student", "self-study", "instructor")
#: What replaces a code solution: nbgrader's own stub, so that its tools treat our student edition as theirs.
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
#: What replaces a written answer (nbgrader's text stub).
TEXT_STUB = "YOUR ANSWER HERE"
#: The project that closes the course: graded by hand, with its own rules (``tests/test_course_assessment.py``).
CAPSTONE = "11_capstone.ipynb"

#: A lesson's "Open in Colab" badge: a Markdown image (Colab's badge) linking to the lesson on Colab.
COLAB_BADGE = re.compile(
    r"\[!\[[^\]]*\]\(https?://colab\.research\.google\.com/assets/colab-badge\.svg\)\]\([^)\s]*\)")

#: What replaces the Colab badge in the student edition.
STUDENT_COLAB_NOTE = ("*To run this notebook in Colab, upload it there (File → Upload notebook); its first code "
                      "cell installs the course package.*")

_BEGIN, _END = "BEGIN SOLUTION", "END SOLUTION"

#: The course's reference pages, Markdown files beside the lessons that the lessons link to, in the book's order.
REFERENCE_PAGES = ("cheat_sheet.md", "glossary.md")


def lessons_dir() -> Path:
    """The folder holding the lessons: ``notebooks/`` of a checkout, else the copy shipped in the package.

    A clone (or an editable install) reads the source itself; a wheel carries a copy
    made when it was built (see ``setup.py``).
    """
    checkout = Path(__file__).resolve().parents[2] / "notebooks"
    if checkout.is_dir() and any(checkout.glob("[0-9]*.ipynb")):
        return checkout
    shipped = Path(__file__).resolve().parent / "lessons"
    if shipped.is_dir():
        return shipped
    raise FileNotFoundError(f"no lessons found: neither {checkout} nor {shipped} holds any (a broken install?)")


def lesson_paths(folder: str | os.PathLike | None = None) -> list[Path]:
    """The lessons of ``folder`` (default :func:`lessons_dir`), in order: ``01_….ipynb``, ``02_….ipynb``, …"""
    folder = lessons_dir() if folder is None else Path(folder)
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def reference_pages(folder: str | os.PathLike | None = None) -> list[Path]:
    """The reference pages of :data:`REFERENCE_PAGES` that ``folder`` (default :func:`lessons_dir`) holds, in order."""
    folder = lessons_dir() if folder is None else Path(folder)
    return [folder / name for name in REFERENCE_PAGES if (folder / name).is_file()]


def _is_solution(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution", False))


def _replace_regions(source: str, stub: str, where: str) -> tuple[str, bool]:
    """The source with each BEGIN/END SOLUTION region replaced by ``stub``, indented like the BEGIN line."""
    kept, inside, replaced = [], False, False
    for line in source.split("\n"):
        if _BEGIN in line:
            if inside:
                raise ValueError(f"{where}: a solution region starts inside another")
            inside = replaced = True
            indent = re.match(r"\s*", line).group(0)
            kept += [indent + stub_line for stub_line in stub.split("\n")]
        elif _END in line:
            if not inside:
                raise ValueError(f"{where}: END SOLUTION without BEGIN SOLUTION")
            inside = False
        elif not inside:
            kept.append(line)
    if inside:
        raise ValueError(f"{where}: BEGIN SOLUTION without END SOLUTION")
    return "\n".join(kept), replaced


def _strip_markers(source: str) -> str:
    """The source with the BEGIN/END SOLUTION lines removed and the solution kept."""
    return "\n".join(line for line in source.split("\n") if _BEGIN not in line and _END not in line)


class ClearSolutionRegions(Preprocessor):
    """Replace every solution region by nbgrader's stub, in cells marked ``nbgrader.solution``.

    The same rule as nbgrader's ``ClearSolutions`` (the grading tests check that
    both give the same notebooks), written on nbconvert's preprocessor so that
    ``cbir-lab course`` needs no grading tools. A region in a cell that is not
    marked as a solution is an error, as it is for nbgrader: it would reach the
    student unmarked.
    """

    def preprocess_cell(self, cell, resources, index):
        where = f"{resources.get('lesson', 'notebook')}, cell {index}"
        stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
        source, replaced = _replace_regions(cell.source, stub, where)
        if replaced and not _is_solution(cell):
            raise ValueError(f"{where} has a solution region but is not marked as a solution cell (metadata.nbgrader)")
        cell.source = source
        return cell, resources


def _solution_cell(cell):
    """The collapsed cell that follows a student's answer in the self-study edition."""
    shown = copy.deepcopy(cell)
    if "id" in shown:
        shown["id"] = f"{cell['id']}-solution"[:64]  # cell ids are unique within a notebook
    shown.source = _strip_markers(cell.source)
    shown.metadata.pop("nbgrader", None)  # not a cell to grade: the answer cell before it is
    if cell.cell_type == "code":
        shown.metadata.setdefault("jupyter", {})["source_hidden"] = True
        tags = shown.metadata.setdefault("tags", [])
        for tag in ("solution", "hide-input"):
            if tag not in tags:
                tags.append(tag)
        shown.source = "# Solution (run this cell to use it)\n" + shown.source
        return shown
    shown.source = f"<details>\n<summary>Model answer</summary>\n\n{shown.source.strip()}\n\n</details>"
    return shown


def edition(nb, name: str, lesson: str = "notebook"):
    """One lesson in one edition.

    Args:
        nb: the lesson, an :mod:`nbformat` notebook (the source; not modified).
        name: one of :data:`EDITIONS`.
        lesson: how to name the lesson in errors.

    Returns:
        A new notebook.

    Raises:
        ValueError: unknown edition, or a malformed solution region.
    """
    if name not in EDITIONS:
        raise ValueError(f"unknown edition {name!r}; choose one of {', '.join(EDITIONS)}")
    nb = copy.deepcopy(nb)
    resources = {"lesson": lesson}
    if name == "instructor":
        return nb
    if name == "student":
        nb, _ = ClearSolutionRegions().preprocess(nb, resources)
        nb, _ = ClearOutputPreprocessor().preprocess(nb, resources)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = COLAB_BADGE.sub(STUDENT_COLAB_NOTE, cell.source)
        return nb
    cells = []
    for index, cell in enumerate(nb.cells):
        if _is_solution(cell) and _BEGIN in cell.source:
            student = copy.deepcopy(cell)
            student, _ = ClearSolutionRegions().preprocess_cell(student, resources, index)
            if student.cell_type == "code":
                student.outputs, student.execution_count = [], None
                if re.search(r"^raise NotImplementedError\(\)", student.source, flags=re.M):
                    # a stub at the top level raises when run; let "run all" go on to the solution below it
                    tags = student.metadata.setdefault("tags", [])
                    if "raises-exception" not in tags:
                        tags.append("raises-exception")
            cells += [student, _solution_cell(cell)]
        else:
            cells.append(cell)
    nb.cells = cells
    return nb


def write_edition(name: str, out_dir: str | os.PathLike, source: str | os.PathLike | None = None) -> list[Path]:
    """Write every lesson in one edition, and the reference pages, to ``out_dir``; nothing already there is overwritten.

    Args:
        name: one of :data:`EDITIONS`.
        out_dir: the folder to write to (created if needed).
        source: the lessons' folder (default :func:`lessons_dir`).

    Returns:
        The files written: the notebooks, in order, then the reference pages
        (:func:`reference_pages`, copied unchanged: every edition links to them).

    Raises:
        ValueError: unknown edition.
        FileExistsError: a lesson or a page of that name is already in ``out_dir`` (a student's
            work, perhaps): the message names it, and nothing is written.
    """
    if name not in EDITIONS:
        raise ValueError(f"unknown edition {name!r}; choose one of {', '.join(EDITIONS)}")
    lessons = lesson_paths(source)
    if not lessons:
        raise FileNotFoundError(f"no lessons (NN_name.ipynb) in {source or lessons_dir()}")
    pages = reference_pages(lessons[0].parent)
    out = Path(out_dir).expanduser()
    taken = [out / p.name for p in lessons + pages if (out / p.name).exists()]
    if taken:
        names = ", ".join(str(p) for p in taken[:3]) + (" …" if len(taken) > 3 else "")
        raise FileExistsError(f"{len(taken)} lesson(s) or page(s) already exist in {out} ({names}); nothing was "
                              "written. Choose another folder, or move them away first.")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in lessons:
        nb = edition(nbformat.read(path, as_version=4), name, path.name)
        written.append(atomic_write(out / path.name, nbformat.writes(nb)))
    for page in pages:
        written.append(atomic_write(out / page.name, page.read_text(encoding="utf-8")))
    return written
