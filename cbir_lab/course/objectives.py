"""Which graded exercise assesses which learning objective: the instructors' map, read from the lessons.

Every lesson opens with numbered **learning objectives** and grades exercises,
quick checks and an open question (nbgrader cells with ``grade: true``). Which
graded cell assesses which objective is a judgement, kept in one table here,
:data:`ASSESSES` (grade id → the objectives it assesses, ``"lesson.objective"``);
everything else is read from the lessons: the objectives' text, the graded cells,
their titles (the ``### Exercise …``, ``### Self-check …`` or ``### Open question …``
heading above them) and points.

* :func:`lesson_objectives` and :func:`graded_items` read one lesson.
* :func:`objective_map` joins them with :data:`ASSESSES` for the whole course,
  and fails on a graded cell the table does not place, or a table entry that
  names no graded cell or no objective.
* :func:`objectives_table` is the map as a Markdown table, the one in the
  README's "For instructors" section (between :data:`TABLE_START` and
  :data:`TABLE_END`); :func:`sync_objectives_table` rewrites it there
  (``cbir-lab course sync-objectives``), and the tests fail while it is stale.

Objective 0 of a lesson is not an objective: it stands for lesson 1's
"Before you start" self-checks of the prerequisites.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from cbir_lab.course.editions import lesson_paths
from cbir_lab.paths import atomic_write

__all__ = [
    "ASSESSES",
    "PREREQUISITES",
    "TABLE_START",
    "TABLE_END",
    "GradedItem",
    "Objective",
    "lesson_objectives",
    "graded_items",
    "objective_map",
    "unassessed",
    "objectives_table",
    "sync_objectives_table",
]

#: Each graded cell's grade id → the objectives it assesses, as "lesson.objective" ("3.4": lesson 3's objective 4).
#: An exercise may assess an objective of another lesson (lesson 4's claim test is lesson 3's objective 4 too).
ASSESSES: dict[str, tuple[str, ...]] = {
    # lesson 1
    "l1-prereq-broadcasting-check": ("1.0",),
    "l1-prereq-conv-size-check": ("1.0",),
    "l1-prereq-eigenvector-check": ("1.0",),
    "l1-map-size-check": ("1.1", "1.2"),
    "l1-receptive-field-check": ("1.3",),
    "l1-quick-check": ("1.3",),
    "l1-erf-check": ("1.3",),
    "l1-layers-answer": ("1.1", "1.4"),
    # lesson 2
    "l2-rmac-grid-check": ("2.3",),
    "l2-power-mean-check": ("2.2",),
    "l2-gem-check": ("2.2",),
    "l2-spoc-prior-check": ("2.2",),
    "l2-choose-p-check": ("2.5", "2.1"),
    "l2-quick-check": ("2.2", "2.4"),
    "l2-breaks-answer": ("2.4", "2.5"),
    # lesson 3
    "l3-variances-check": ("3.1", "3.2"),
    "l3-whiten-check": ("3.1",),
    "l3-choose-d-check": ("3.3",),
    "l3-quick-check": ("3.3",),
    "l3-sweep-answer": ("3.2", "3.3"),
    # lesson 4
    "l4-ap-check": ("4.1", "4.2", "2.1"),
    "l4-bootstrap-check": ("4.3", "2.1"),
    "l4-claim-check": ("4.3", "4.4", "3.4"),
    "l4-quick-check": ("4.3", "4.4"),
    "l4-metric-answer": ("4.1", "4.2", "4.4"),
    # lesson 5
    "l5-aqe-check": ("5.1",),
    "l5-contributions-check": ("5.2",),
    "l5-choose-layer-check": ("5.3",),
    "l5-quick-check": ("5.1",),
    "l5-layer-answer": ("5.3",),
    # lesson 6
    "l6-holidays-check": ("6.1", "6.2"),
    "l6-revisited-check": ("6.1", "6.2"),
    "l6-ns-check": ("6.1", "6.2"),
    "l6-queries-needed-check": ("6.4",),
    "l6-quick-check": ("6.4",),
    "l6-gap-answer": ("6.3", "6.4"),
    # lesson 7
    "l7-vlad-check": ("7.1", "7.2"),
    "l7-fisher-check": ("7.2",),
    "l7-quick-check": ("7.3",),
    "l7-verdict-answer": ("7.1", "7.4"),
    # lesson 8
    "l8-pq-check": ("8.2",),
    "l8-adc-check": ("8.2",),
    "l8-quick-check": ("8.2", "8.3"),
    "l8-index-answer": ("8.2", "8.3"),
    # lesson 9
    "l9-contrastive-check": ("9.1",),
    "l9-mining-check": ("9.2",),
    "l9-lw-check": ("9.4",),
    "l9-lw-d-check": ("9.4",),
    "l9-quick-check": ("9.1", "9.2"),
    "l9-ship-answer": ("9.4", "9.5"),
    # lesson 10
    "l10-inliers-check": ("10.1",),
    "l10-reciprocal-check": ("10.2",),
    "l10-multiscale-check": ("10.3",),
    "l10-quick-check": ("10.1", "10.4"),
    "l10-choose-answer": ("10.3", "10.4"),
    # lesson 11, the capstone (graded by hand)
    "capstone-photos-answer": ("11.1",),
    "capstone-split-answer": ("11.2",),
    "capstone-choose-answer": ("11.2",),
    "capstone-report-answer": ("11.3",),
    "capstone-failure-answer": ("11.4",),
    "capstone-defence-answer": ("11.5", "11.3"),
    # lesson 12
    "l12-gain-check": ("12.3",),
    "l12-quick-check": ("12.2",),
    "l12-quote-answer": ("12.1", "12.2", "12.4"),
}

#: How the table names objective 0, the prerequisites self-checked before lesson 1.
PREREQUISITES = "*Before you start:* the prerequisites (not an objective)"
#: The markers around the table in the README.
TABLE_START = "<!-- objectives-table: start (cbir-lab course sync-objectives writes it) -->"
TABLE_END = "<!-- objectives-table: end -->"

_OBJECTIVES = re.compile(r"\*\*Learning objectives\.\*\*")
_ITEM = re.compile(r"^(\d+)\. (.+)$")
_TITLE = re.compile(r"^### ((?:Exercise|Self-check|Open question|Part)\b.*?)\s*\((?:manually graded, |graded by hand, )?\d+ points?\)\s*$")


@dataclass(frozen=True)
class GradedItem:
    """One graded cell of a lesson.

    Attributes:
        lesson: the lesson's number (1 for ``01_feature_maps.ipynb``).
        grade_id: its nbgrader id.
        title: what the table calls it, e.g. "Exercise 1 — the feature-map size", "quick check".
        points: its nbgrader points.
    """

    lesson: int
    grade_id: str
    title: str
    points: float

    def label(self, home: int | None = None) -> str:
        """The title with its points, prefixed by its lesson when that is not ``home``."""
        points = f"{self.points:g} point" + ("" if self.points == 1 else "s")
        where = "" if home == self.lesson else f"lesson {self.lesson}, "
        return f"{where}{self.title} ({points})"


@dataclass(frozen=True)
class Objective:
    """One objective of one lesson (number 0: the prerequisites), and the graded items that assess it."""

    lesson: int
    number: int
    text: str
    assessed_by: tuple[GradedItem, ...]


def _lesson_number(path: Path) -> int:
    return int(path.name[:2])


def lesson_objectives(nb) -> list[str]:
    """The numbered learning objectives of a lesson, in order, from the list after "**Learning objectives.**".

    Raises:
        ValueError: no such list, or it is not numbered 1, 2, 3, … in order.
    """
    for cell in nb.cells:
        if cell.cell_type != "markdown" or not _OBJECTIVES.search(cell.source):
            continue
        lines = cell.source[_OBJECTIVES.search(cell.source).end():].splitlines()
        found: list[str] = []
        for line in lines:
            if m := _ITEM.match(line.strip()):
                if int(m.group(1)) != len(found) + 1:
                    raise ValueError(f"learning objective {m.group(1)} comes after {len(found)}: number them 1, 2, 3, …")
                found.append(m.group(2).strip())
            elif found and line.strip():
                break
        if found:
            return found
    raise ValueError("no numbered list after '**Learning objectives.**'")


def graded_items(nb, lesson: int) -> list[GradedItem]:
    """Every graded cell of a lesson (nbgrader ``grade: true``), titled by the heading above it.

    A quick check's graded cell is "quick check"; an exercise's or an open question's
    is its ``### Exercise …``, ``### Self-check …``, ``### Open question …`` or (the
    capstone's) ``### Part …`` heading,
    without the points.

    Raises:
        ValueError: a graded cell with no such heading above it.
    """
    items, heading = [], None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if m := _TITLE.match(line):
                    heading = m.group(1)
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade"):
            continue
        if cell.cell_type == "code" and "quick.check_answer(" in cell.source:
            title = "quick check"
        elif heading is None:
            raise ValueError(f"lesson {lesson}: graded cell {meta.get('grade_id')!r} has no exercise heading above it")
        else:
            title = heading[0].lower() + heading[1:]
        items.append(GradedItem(lesson, meta["grade_id"], title, float(meta.get("points", 0))))
    return items


def _key(code: str, grade_id: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)\.(\d+)", code)
    if match is None:
        raise ValueError(f"ASSESSES[{grade_id!r}]: {code!r} is not 'lesson.objective'")
    return int(match.group(1)), int(match.group(2))


def objective_map(folder: str | os.PathLike | None = None,
                  assesses: dict[str, tuple[str, ...]] | None = None) -> list[Objective]:
    """Every objective of every lesson in ``folder`` (default: the lessons), with what assesses it.

    Args:
        folder: the lessons' folder.
        assesses: grade id → objectives (default :data:`ASSESSES`).

    Returns:
        Lesson by lesson: objective 0 (the prerequisites) where some graded cell assesses it,
        then objectives 1, 2, …; each with its graded items, in lesson order.

    Raises:
        ValueError: a graded cell that ``assesses`` does not place, an entry naming a graded
            cell that does not exist, or an objective a lesson does not have.
    """
    assesses = ASSESSES if assesses is None else assesses
    objectives: dict[tuple[int, int], str] = {}
    items: list[GradedItem] = []
    for path in lesson_paths(folder):
        nb = nbformat.read(path, as_version=4)
        lesson = _lesson_number(path)
        for number, text in enumerate(lesson_objectives(nb), 1):
            objectives[lesson, number] = text
        items += graded_items(nb, lesson)
    known = {item.grade_id for item in items}
    unplaced = [item.grade_id for item in items if item.grade_id not in assesses]
    if unplaced:
        raise ValueError(f"graded cells that no objective lists: {', '.join(unplaced)}; add them to "
                         "cbir_lab.course.objectives.ASSESSES")
    stale = sorted(set(assesses) - known)
    if stale:
        raise ValueError(f"ASSESSES names graded cells the lessons do not have: {', '.join(stale)}")
    by_objective: dict[tuple[int, int], list[GradedItem]] = {}
    for item in items:
        for code in assesses[item.grade_id]:
            key = _key(code, item.grade_id)
            if key[1] != 0 and key not in objectives:
                raise ValueError(f"ASSESSES[{item.grade_id!r}] names objective {code}, which lesson {key[0]} does not have")
            by_objective.setdefault(key, []).append(item)
    for key in by_objective:
        if key[1] == 0:
            objectives.setdefault(key, PREREQUISITES)
    return [Objective(lesson, number, objectives[lesson, number], tuple(by_objective.get((lesson, number), ())))
            for lesson, number in sorted(objectives)]


def unassessed(objectives: list[Objective]) -> list[str]:
    """The objectives no graded item assesses, as "lesson.objective"."""
    return [f"{o.lesson}.{o.number}" for o in objectives if not o.assessed_by]


def objectives_table(folder: str | os.PathLike | None = None) -> str:
    """The objective → exercise map as a Markdown table: lesson, objective, and what assesses it.

    An exercise of another lesson is named with its lesson; an objective nothing assesses says so.
    """
    lines = ["| lesson | objective | assessed by |", "| --- | --- | --- |"]
    for o in objective_map(folder):
        text = o.text if o.number == 0 else f"{o.number}. {o.text}"
        by = "; ".join(item.label(o.lesson) for item in o.assessed_by) or "**no graded exercise yet**"
        lines.append(f"| {o.lesson} | {text.replace('|', '∣')} | {by.replace('|', '∣')} |")
    return "\n".join(lines)


def sync_objectives_table(root: str | os.PathLike | None = None) -> Path | None:
    """Rewrite the table between :data:`TABLE_START` and :data:`TABLE_END` in the README of ``root``.

    Args:
        root: the clone (default: the one this package runs from).

    Returns:
        The README, when it changed; ``None`` when the table was already current.

    Raises:
        ValueError: the README lacks the markers.
    """
    from cbir_lab.course.project import checkout_root

    root = checkout_root(root)
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"{readme} has no '{TABLE_START}' … '{TABLE_END}' markers for the objectives table")
    table = objectives_table(root / "notebooks")
    new = text[: start + len(TABLE_START)] + "\n\n" + table + "\n\n" + text[end:]
    if new == text:
        return None
    return atomic_write(readme, new)
