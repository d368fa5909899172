"""The lessons' stated times checked against :mod:`cbir_lab.course.timing`'s estimates, or rewritten from them.

A lesson states its time in each section's header (``## 2. How big is the map? (≈ 21 min)``)
and in the summary line of its first cell (``**About 48 minutes, plus 12 for ★ exercises:** …``);
the README's course table repeats each lesson's (core, ★, optional) minutes and states the
course's total.

**Use** (``python -m cbir_lab.course.retime notebooks/ [--write]``, or
``cbir-lab course timing [--write]``): without ``--write`` it prints every lesson's
estimate beside what it states and exits 1 on a mismatch; with ``--write`` it
rewrites the time strings, and only them: the section headers' ``(≈ N min)``, the
summary line's numbers (its section names are kept when it has one per section), the
README's time column and its course total. Outputs, execution counts and metadata are
untouched and nothing is executed. A lesson with no ``## N.`` section is skipped, and
named.

* :func:`format_summary`, :func:`format_readme_time`, :func:`format_course_total`: the time strings.
* :func:`mark_optional`, :func:`retime_notebook`, :func:`retime_readme`: the texts rewritten
  (in memory).
* :func:`timing_mismatches`, :func:`write_timings`: a folder of lessons checked or rewritten.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import nbformat

from cbir_lab.course.timing import (
    _SUMMARY,
    SectionEstimate,
    _about,
    _header,
    _summary_entries,
    is_project,
    lesson_timing,
    split_sections,
)
from cbir_lab.paths import atomic_write

__all__ = [
    "REWRITE_HINT",
    "format_summary",
    "format_readme_time",
    "format_course_total",
    "mark_optional",
    "retime_notebook",
    "retime_readme",
    "timing_mismatches",
    "write_timings",
    "main",
]

#: What to run when a stated time differs from the estimate.
REWRITE_HINT = ("run `python -m cbir_lab.course.retime notebooks/ --write` (or `cbir-lab course timing --write`) "
                "to rewrite the lessons' and the README's times from the estimate")

_README_ROW = re.compile(r"^(\| `(\d\d_[^`|]+\.ipynb)` \|.*\| )([^|]*?)( \|)$", re.M)
_README_TIME = re.compile(r"^(?:\d+ min(?: \+ \d+ ★)?(?: \+ \d+ optional)?|\?|—|-|)$")
_README_TOTAL = re.compile(r"The whole course: about (?:\d+ h)? ?(?:\d+ min)?(?:, plus (?:(?:\d+ h)? ?(?:\d+ min)? of ★ exercises)?"
                           r"(?: and )?(?:(?:\d+ h)? ?(?:\d+ min)? of optional sections)?)?\.")



def _entry_name(title: str) -> str:
    """A summary entry's name from a section title: 'How big is the map?' -> 'how big is the map'."""
    name = title.rstrip("?.:! ")
    first = name.split(" ", 1)[0]
    if first[:1].isupper() and first[1:] == first[1:].lower() and len(first) > 1:  # not 'GeM', 'R-MAC', 'I'
        name = name[0].lower() + name[1:]
    return name


def format_summary(estimates: list[SectionEstimate], names: list[str] | None = None) -> str:
    """The first cell's summary line for these sections.

    Args:
        estimates: the sections' estimates, in order.
        names: each section's name in the line (default: from its title, see :func:`_entry_name`).

    Examples:
        >>> format_summary([SectionEstimate(1, "Why learn?", exercises=1), SectionEstimate(2, "Explore", True, widgets=2)])
        '**About 6 minutes, plus 8 optional:** why learn (6 min) · explore (8 min, optional).'
        >>> format_summary([SectionEstimate(1, "GeM", exercises=1, stretch_exercises=1)])
        '**About 6 minutes, plus 12 for ★ exercises:** GeM (18 min).'
    """
    names = [_entry_name(s.title) for s in estimates] if names is None else names
    core = sum(s.core_minutes for s in estimates if not s.optional)
    stretch = sum(s.minutes - s.core_minutes for s in estimates if not s.optional)
    optional = sum(s.minutes for s in estimates if s.optional)
    extras = [f"{stretch} for ★ exercises"] * bool(stretch) + [f"{optional} optional"] * bool(optional)
    head = f"**About {core} minutes" + (f", plus {' and '.join(extras)}" if extras else "") + ":**"
    entries = " · ".join(f"{name} ({s.minutes} min{', optional' if s.optional else ''})"
                         for name, s in zip(names, estimates))
    return f"{head} {entries}."


def format_readme_time(core: int, stretch: int = 0, optional: int = 0) -> str:
    """The README table's time cell: ``38 min``, ``55 min + 12 ★`` or ``55 min + 12 ★ + 10 optional``."""
    return _about(core, stretch, optional)


def _hours(minutes: int) -> str:
    hours, minutes = divmod(minutes, 60)
    return (f"{hours} h {minutes} min" if minutes else f"{hours} h") if hours else f"{minutes} min"


def format_course_total(core: int, stretch: int = 0, optional: int = 0) -> str:
    """The README's course total.

    Examples:
        >>> format_course_total(545, 70, 20)
        'The whole course: about 9 h 5 min, plus 1 h 10 min of ★ exercises and 20 min of optional sections.'
        >>> format_course_total(50)
        'The whole course: about 50 min.'
    """
    extras = ([f"{_hours(stretch)} of ★ exercises"] * bool(stretch)
              + [f"{_hours(optional)} of optional sections"] * bool(optional))
    return f"The whole course: about {_hours(core)}" + (f", plus {' and '.join(extras)}" if extras else "") + "."


def _insert_summary(first: str, line: str) -> str:
    """The first cell with the summary line inserted after its title and badge paragraphs."""
    paragraphs = first.split("\n\n")
    at = 0
    while at < len(paragraphs) and (paragraphs[at].lstrip().startswith("#") or "colab-badge" in paragraphs[at]
                                    or not paragraphs[at].strip()):
        at += 1
    return "\n\n".join(paragraphs[:at] + [line] + paragraphs[at:])


def mark_optional(nb, numbers, name: str = "notebook") -> list[str]:
    """Mark sections optional in their headers, in place: ``(≈ N min)`` becomes ``(≈ N min, optional)``.

    Run :func:`retime_notebook` after it, so that the summary line follows.

    Args:
        nb: the lesson.
        numbers: the section numbers to mark.
        name: the lesson's name, for errors.

    Returns:
        What changed, one line each.

    Raises:
        ValueError: a number names no section of the lesson.
    """
    sections = {s.number: s for s in split_sections(nb)}
    missing = sorted(set(numbers) - set(sections))
    if missing:
        raise ValueError(f"{name}: no section {', '.join(map(str, missing))} to mark optional "
                         f"(sections: {', '.join(map(str, sorted(sections)))})")
    changes = []
    for number in sorted(set(numbers)):
        section = sections[number]
        cell = nb.cells[section.cell]
        lines = cell.source.split("\n")
        for k, line in enumerate(lines):
            match = _header(line)
            if match and int(match.group(1)) == number and not match.group(4):
                minutes = f"≈ {match.group(3)} min" if match.group(3) else "≈ 0 min"
                lines[k] = f"## {number}. {section.title} ({minutes}, optional)"
                changes.append(f"{name}: '{line}' -> '{lines[k]}'")
                break
        cell.source = "\n".join(lines)
    return changes


def retime_notebook(nb, name: str = "notebook") -> list[str]:
    """Rewrite the notebook's time strings from its estimate, in place; what changed, one line each.

    Only cell sources change, and in them only a section header's ``(≈ N min[, optional])``
    (appended when the header has none) and the first cell's ``**About N minutes…:**``
    line (inserted after the title and badge when missing). The summary's section names
    are kept when it names one entry per section; otherwise they are made from the titles.

    Raises:
        ValueError: the notebook has no numbered section (naming ``name``).
    """
    timing = lesson_timing(nb, name)
    estimates = {s.number: s for s in timing.sections}
    changes = []
    for section in split_sections(nb):
        cell = nb.cells[section.cell]
        lines = cell.source.split("\n")
        for k, line in enumerate(lines):
            match = _header(line)
            if match and int(match.group(1)) == section.number and match.group(2).strip() == section.title:
                estimate = estimates[section.number]
                new = (f"## {section.number}. {section.title} "
                       f"(≈ {estimate.minutes} min{', optional' if section.optional else ''})")
                if new != line:
                    lines[k] = new
                    changes.append(f"{name}: '{line}' -> '{new}'")
                break
        cell.source = "\n".join(lines)
    first = nb.cells[0]
    summary = _SUMMARY.search(first.source) if first.cell_type == "markdown" else None
    entries = _summary_entries(summary.group(4)) if summary else None
    names = [n for n, _, _ in entries] if entries is not None and len(entries) == len(timing.sections) else None
    line = format_summary(timing.sections, names)
    if first.cell_type != "markdown":
        raise ValueError(f"{name}: the first cell is not Markdown: no place for the '**About N minutes:**' line")
    if summary is None:
        first.source = _insert_summary(first.source, line)
        changes.append(f"{name}: inserted '{line}'")
    elif summary.group(0) != line:
        first.source = first.source[:summary.start()] + line + first.source[summary.end():]
        changes.append(f"{name}: '{summary.group(0)}' -> '{line}'")
    return changes


def retime_readme(readme: str, totals: dict[str, tuple[int, int, int]]) -> tuple[str, list[str]]:
    """The README with its course table's time column and its course total rewritten from ``totals``.

    Args:
        readme: the README's text.
        totals: each lesson's file name -> (core, ★, optional) minutes.

    Returns:
        The new text, and what changed (one line each). Rows of lessons not in ``totals``
        are left alone; the total (``The whole course: about …``) is rewritten where the
        README states one and counts every lesson in ``totals``.
    """
    changes = []

    def row(match: re.Match) -> str:
        lesson, cell = match.group(2), match.group(3)
        if lesson not in totals or not _README_TIME.match(cell.strip()):
            return match.group(0)
        new = format_readme_time(*totals[lesson])
        if new != cell:
            changes.append(f"README.md, {lesson}: '{cell}' -> '{new}'")
        return match.group(1) + new + match.group(4)

    text = _README_ROW.sub(row, readme)
    total = format_course_total(*(sum(column) for column in zip(*totals.values())))
    stated = _README_TOTAL.search(text)
    if stated and stated.group(0) != total:
        changes.append(f"README.md: '{stated.group(0)}' -> '{total}'")
        text = text[:stated.start()] + total + text[stated.end():]
    return text, changes


def _readme_mismatches(readme: str, totals: dict[str, tuple[int, int, int]]) -> list[str]:
    """What the README states that differs from ``totals``, or that it lacks (a lesson's row)."""
    found = []
    rows = {m.group(2): m.group(3) for m in _README_ROW.finditer(readme)}
    for lesson, minutes in totals.items():
        if lesson not in rows:
            found.append(f"README.md: the course table has no row for {lesson} (a last column '{format_readme_time(*minutes)}')")
        elif rows[lesson].strip() != format_readme_time(*minutes):
            found.append(f"README.md: {lesson} states '{rows[lesson]}', the lesson {format_readme_time(*minutes)}")
    _, changes = retime_readme(readme, totals)
    found += [c for c in changes if not c.startswith("README.md, ")]
    return found


def _lessons(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder of lessons (NN_name.ipynb)")
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"{folder} holds no lesson (NN_name.ipynb)")
    return paths


def _timed(folder: Path) -> tuple[list[tuple[Path, object]], list[str]]:
    """The lessons that have sections, read, and a note for each skipped one."""
    timed, skipped = [], []
    for path in _lessons(folder):
        nb = nbformat.read(path, as_version=4)
        if is_project(nb):
            skipped.append(f"{path.name}: a project: its brief states its time, not estimated")
        elif split_sections(nb):
            timed.append((path, nb))
        else:
            skipped.append(f"{path.name}: no numbered section ('## 1. Title'): not timed")
    return timed, skipped


def _default_readme(folder: Path) -> Path | None:
    readme = folder.resolve().parent / "README.md"
    return readme if readme.is_file() else None


def timing_mismatches(folder: str | os.PathLike, readme: str | os.PathLike | None = None) -> list[str]:
    """Every stated time in the lessons of ``folder`` (and the README) that differs from the estimate.

    Args:
        folder: the lessons (``NN_name.ipynb``); lessons with no numbered section are skipped.
        readme: the README to check too (default: ``folder/../README.md`` when there is one).

    Returns:
        One line per mismatch, naming the file (empty when all agree); see :data:`REWRITE_HINT`.
    """
    folder = Path(folder)
    timed, _ = _timed(folder)
    found, totals = [], {}
    for path, nb in timed:
        timing = lesson_timing(nb, path.name)
        found += timing.mismatches()
        totals[path.name] = timing.minutes
    readme = _default_readme(folder) if readme is None else Path(readme)
    if readme is not None:
        found += _readme_mismatches(readme.read_text(encoding="utf-8"), totals)
    return found


def write_timings(folder: str | os.PathLike, readme: str | os.PathLike | None = None) -> list[str]:
    """Rewrite the time strings of every lesson in ``folder`` and of the README from the estimates.

    Idempotent: a second run changes nothing. A lesson is written (atomically, as
    nbformat writes it) only when one of its time strings changed; nothing else in it
    changes, and nothing is executed.

    Returns:
        What changed, one line each.
    """
    folder = Path(folder)
    timed, _ = _timed(folder)
    changes, totals = [], {}
    for path, nb in timed:
        lesson_changes = retime_notebook(nb, path.name)
        if lesson_changes:
            atomic_write(path, nbformat.writes(nb) + "\n")
            changes += lesson_changes
        timing = lesson_timing(nb, path.name)
        totals[path.name] = timing.minutes
    readme = _default_readme(folder) if readme is None else Path(readme)
    if readme is not None:
        text = readme.read_text(encoding="utf-8")
        new, readme_changes = retime_readme(text, totals)
        if new != text:
            atomic_write(readme, new)
        changes += readme_changes
    return changes


def _report(folder: Path) -> str:
    """Every timed lesson's sections: estimate, stated, and what the estimate is made of."""
    timed, skipped = _timed(folder)
    lines = []
    for path, nb in timed:
        timing = lesson_timing(nb, path.name)
        lines.append(f"{path.name}: {_about(*timing.minutes)} "
                     f"(states {_about(*timing.stated_summary) if timing.stated_summary else 'nothing'})")
        for estimate, stated in zip(timing.sections, timing.stated_sections):
            flag = ", optional" if estimate.optional else ""
            lines.append(f"  {estimate.number}. {estimate.title[:48]:48} {estimate.minutes:3d} min{flag} "
                         f"(states {stated if stated is not None else '-'}): {estimate.breakdown()}")
    return "\n".join(lines + skipped)


def _mark(folder: Path, spec: str) -> None:
    """``--optional LESSON:N[,N]``: mark the sections optional in the lesson's file."""
    lesson, _, numbers = spec.partition(":")
    path = folder / lesson
    if not path.is_file() or not re.fullmatch(r"\d+(,\d+)*", numbers):
        raise ValueError(f"--optional {spec!r}: expected LESSON:N[,N] with LESSON a file of {folder}, "
                         "e.g. 02_pooling.ipynb:3,6")
    nb = nbformat.read(path, as_version=4)
    if mark_optional(nb, [int(n) for n in numbers.split(",")], path.name):
        atomic_write(path, nbformat.writes(nb) + "\n")


def main(argv: list[str] | None = None) -> int:
    """``python -m cbir_lab.course.retime FOLDER [--write] [--readme README.md] [--quiet]``.

    Prints each lesson's estimate beside its stated times; without ``--write`` exits 1
    when any stated time differs from the estimate, with ``--write`` rewrites them.
    """
    parser = argparse.ArgumentParser(prog="python -m cbir_lab.course.retime",
                                     description="Estimate each lesson section's minutes from what it asks; "
                                                 "check or rewrite the times the lessons and the README state.")
    parser.add_argument("folder", nargs="?", default="notebooks", help="the lessons (default: notebooks)")
    parser.add_argument("--write", action="store_true",
                        help="rewrite the time strings (section headers, the first cell's summary line, the README's "
                             "time column and course total); nothing else changes")
    parser.add_argument("--readme", default=None,
                        help="the README to check or rewrite (default: the one beside the lessons' folder)")
    parser.add_argument("--optional", action="append", default=[], metavar="LESSON:N[,N]",
                        help="with --write: first mark these sections of this lesson optional, e.g. "
                             "02_pooling.ipynb:3,6 (repeatable; to make a section core again, delete ', optional' "
                             "from its header)")
    parser.add_argument("--quiet", action="store_true", help="print only mismatches or changes")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    try:
        if args.optional and not args.write:
            raise ValueError("--optional changes the lessons: give --write too")
        for spec in args.optional:
            _mark(folder, spec)
        if not args.quiet:
            print(_report(folder))
        if args.write:
            changes = write_timings(folder, args.readme)
            print("\n".join(changes) if changes else "Every stated time already matches the estimate.")
            return 0
        found = timing_mismatches(folder, args.readme)
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        print(f"timing: error: {err}", file=sys.stderr)
        return 1
    if found:
        print("\n".join(found) + f"\n{len(found)} mismatch(es): {REWRITE_HINT}.")
        return 1
    print("Every stated time matches the estimate.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
