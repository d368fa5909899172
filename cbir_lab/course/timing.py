"""How long each lesson takes, estimated from what it asks, and written where the lessons state it.

A lesson states its time twice: each numbered section's header,
``## 2. How big is the map? (≈ 15 min)``, and the summary line of its first cell,
``**About 38 minutes:** from an image to a stack of maps (5 min) · how big is the map (15 min) · …``;
the README's course table repeats each lesson's total. Typed by hand, those times
drifted far below what a student needs. This module computes them instead.

**A section** is a ``## N. Title`` header and everything after it up to the next
``## N.`` header or a closing ``## Summary`` / ``## Papers`` / ``## References``
header (other unnumbered ``##`` headers, such as lesson 9's ``## Use it``, stay
inside the section before them). The opening (title, objectives, set-up cells) and
the closing summary and papers belong to no section and are not timed: about a
minute of reading per lesson.

**What a section asks**, in minutes:

* prose: the words of its Markdown at :data:`PROSE_WORDS_PER_MINUTE` (200, the
  usual figure for careful reading of technical text; fast readers of light prose
  manage 250-300). A word is a whitespace-separated token with a letter or digit in
  it; link targets, images and HTML tags do not count. The ``🤔 Think!`` answers
  folded under *Click for the answer* count: a student opens them;
* formulas (``$…$``, ``$$…$$``): their symbols, the ``\\w+`` runs of the LaTeX
  (``$\\lceil H / s \\rceil$`` is four), at :data:`MATH_SYMBOLS_PER_MINUTE`;
* printed output: the words of what its cells print (``stdout``, text results,
  HTML tables without their tags) at the same rate: every number in a table is a
  word. Warnings on ``stderr`` do not count;
* code: the identifiers, keywords and numbers (``\\w+`` runs) of its code cells at
  :data:`CODE_WORDS_PER_MINUTE` (100): code is read token by token, each argument
  matters, so at half the prose rate. Not counted: a solution region
  (``### BEGIN SOLUTION`` … ``### END SOLUTION``; the student writes it, see below),
  ``# NBVAL_…`` lines (for the tests), and a quick check's cell (its allowance
  covers it);
* each figure a cell draws (an image output): :data:`FIGURE_MINUTES`;
* each graded exercise (a code answer cell, ``metadata.nbgrader.solution`` with a
  solution region; answer cells with no heading between them are one exercise):
  :data:`EXERCISE_MINUTES`, or :data:`STRETCH_EXERCISE_MINUTES` when a heading
  before it carries a ★ (``### Exercise 3 ★ — …``: a stretch exercise, more open or
  more to write). An exercise's text is read as prose besides;
* each open written question (a Markdown answer cell graded by a person):
  :data:`OPEN_QUESTION_MINUTES`;
* each quick check (a cell building ``QuickCheck(``; the answer cell recording
  its letter is part of it, not an exercise): :data:`QUICK_CHECK_MINUTES`;
* each ``🤔 Think!`` prompt: :data:`THINK_MINUTES`;
* each widget to explore (a cell whose output is a widget, a quick check aside):
  :data:`WIDGET_MINUTES`.

Run time is not counted: with the course's caches warm, a lesson's cells run in
seconds (lessons 7 and 10 have one cell of about two minutes), mostly while the
student reads. A section's minutes are its sum rounded to a whole minute, and at
least :data:`MIN_SECTION_MINUTES`; a lesson's time is the sum of its sections'.

**Optional sections.** A lesson should take at most :data:`MAX_CORE_MINUTES`. When
one would take longer, mark sections that later lessons do not build on as optional
in their header, ``## 6. Explore (≈ 10 min, optional)``; the summary then gives the
core time and the optional time apart, ``**About 55 minutes, plus 10 optional:** …
explore (10 min, optional).``, and so does the README's table (``55 min + 10 optional``).
The mark is the author's, in the header: this module keeps it and sets it only when
asked (``--optional 02_pooling.ipynb:3,6``, :func:`mark_optional`).

**Use** (``python -m cbir_lab.course.timing notebooks/ [--write]``, or
``cbir-lab course timing [--write]``): without ``--write`` it prints every lesson's
estimate beside what it states and exits 1 on a mismatch; with ``--write`` it
rewrites the time strings, and only them: the section headers' ``(≈ N min)``, the
summary line's numbers (its section names are kept when it has one per section), the
README's time column and its course total. Outputs, execution counts and metadata are
untouched and nothing is executed. A lesson with no ``## N.`` section is skipped, and
named.

* :func:`prose_words`, :func:`code_words`, :func:`output_words`: the counts.
* :func:`split_sections`, :func:`estimate_sections`: a notebook's sections and their
  :class:`SectionEstimate`.
* :func:`lesson_timing`: a lesson's estimate beside its stated times (:class:`LessonTiming`).
* :func:`mark_optional`, :func:`retime_notebook`, :func:`retime_readme`: the texts rewritten
  (in memory).
* :func:`timing_mismatches`, :func:`write_timings`: a folder of lessons checked or rewritten.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from cbir_lab.paths import atomic_write

__all__ = [
    "PROSE_WORDS_PER_MINUTE",
    "CODE_WORDS_PER_MINUTE",
    "MATH_SYMBOLS_PER_MINUTE",
    "FIGURE_MINUTES",
    "EXERCISE_MINUTES",
    "STRETCH_EXERCISE_MINUTES",
    "OPEN_QUESTION_MINUTES",
    "QUICK_CHECK_MINUTES",
    "THINK_MINUTES",
    "WIDGET_MINUTES",
    "MIN_SECTION_MINUTES",
    "MAX_CORE_MINUTES",
    "REWRITE_HINT",
    "SectionEstimate",
    "Section",
    "LessonTiming",
    "prose_words",
    "math_words",
    "code_words",
    "output_words",
    "split_sections",
    "estimate_sections",
    "round_minutes",
    "lesson_timing",
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

#: Careful reading of technical prose (and of printed results), in words a minute.
PROSE_WORDS_PER_MINUTE = 200
#: Reading code, in ``\w+`` tokens a minute: half the prose rate, since every name and argument matters.
CODE_WORDS_PER_MINUTE = 100
#: Reading formulas, in LaTeX ``\w+`` runs a minute: a formula is read, and re-read, symbol by symbol.
MATH_SYMBOLS_PER_MINUTE = 50
#: Looking at a figure and finding in it what the text points at.
FIGURE_MINUTES = 0.5
#: A graded exercise: write a function of a few lines, run its self-check, fix a slip it names, run it again.
EXERCISE_MINUTES = 6
#: A ★ stretch exercise: more open or more to write; twice an exercise.
STRETCH_EXERCISE_MINUTES = 12
#: An open question graded by a person: look again at what it asks about, then write three to five sentences.
OPEN_QUESTION_MINUTES = 6
#: A quick check: read the question and its options, choose, record the letter, read the feedback.
QUICK_CHECK_MINUTES = 2
#: A 🤔 Think! prompt: write a prediction down before running the cell, then compare it with the answer.
THINK_MINUTES = 2
#: A widget to explore: try the settings the text suggests and look at what changes.
WIDGET_MINUTES = 4
#: The least a section is given: its header promises a step, and a step takes a couple of minutes.
MIN_SECTION_MINUTES = 2
#: The most a lesson's core (its sections not marked optional) may take: one lab session.
MAX_CORE_MINUTES = 60

#: What to run when a stated time differs from the estimate.
REWRITE_HINT = ("run `python -m cbir_lab.course.timing notebooks/ --write` (or `cbir-lab course timing --write`) "
                "to rewrite the lessons' and the README's times from the estimate")

# "## 3. Title (≈ 10 min)" or "## 3. Title (≈ 10 min, optional)" or "## 3. Title" (no time yet)
_SECTION = re.compile(r"^## (\d+)\.\s+(.*?)(?:\s*\(≈ (\d+) min(, optional)?\))?\s*$")
_CLOSING = re.compile(r"^## (?:Summary|Papers|References|Further reading)\b", re.IGNORECASE)
_HEADING = re.compile(r"^#{2,4} ")
_SUMMARY = re.compile(r"^\*\*About (\d+) minutes(?:, plus (\d+) optional)?:\*\*(.*)$", re.M)
_ENTRY = re.compile(r"^(.*?)\s*\((\d+) min(, optional)?\)$")
_THINK = "🤔 Think!"
_QUICK_CHECK = "QuickCheck("
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_README_ROW = re.compile(r"^(\| `(\d\d_[^`|]+\.ipynb)` \|.*\| )([^|]*?)( \|)$", re.M)
_README_TIME = re.compile(r"^(?:\d+ min(?: \+ \d+ optional)?|\?|—|-|)$")
_README_TOTAL = re.compile(r"The whole course: about (?:\d+ h )?\d+ min(?:, plus (?:\d+ h )?\d+ min of optional sections)?\.")


def _words(text: str) -> int:
    """Whitespace-separated tokens holding a letter or a digit."""
    return sum(1 for token in text.split() if re.search(r"\w", token))


_MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", re.S)


def prose_words(markdown: str) -> int:
    """The words a reader reads in a Markdown text, formulas aside (see :func:`math_words`).

    Images and link targets are dropped (a link's text counts), HTML tags too (the
    text between them counts); tokens with no letter or digit (``·``, ``—``, ``|``,
    ``---``) are not words.

    Examples:
        >>> prose_words("A [link](https://example.org/x) and ![a logo](logo.png) — *two* words $x + y$.")
        5
    """
    text = _MATH.sub(" ", markdown)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"https?://\S+", " ", text)
    return _words(text)


def math_words(markdown: str) -> int:
    """The symbols of a Markdown text's formulas (``$…$`` and ``$$…$$``): the ``\\w+`` runs of their LaTeX.

    Examples:
        >>> math_words("so $x^2 + y$, and $$k - 1$$ (a formula)")
        5
    """
    return sum(len(re.findall(r"\w+", formula)) for formula in _MATH.findall(markdown))


def _without_solutions(source: str) -> str:
    """The source less its ``### BEGIN SOLUTION`` … ``### END SOLUTION`` regions and ``# NBVAL_`` lines."""
    kept, inside = [], False
    for line in source.split("\n"):
        if "BEGIN SOLUTION" in line:
            inside = True
        elif "END SOLUTION" in line:
            inside = False
        elif not inside and not line.lstrip().startswith("# NBVAL_"):
            kept.append(line)
    return "\n".join(kept)


def code_words(source: str) -> int:
    """The tokens a reader reads in a code cell: ``\\w+`` runs, outside solution regions and ``# NBVAL_`` lines.

    Examples:
        >>> code_words("# NBVAL_CHECK_OUTPUT\\nx = load(3)\\n### BEGIN SOLUTION\\nsecret()\\n### END SOLUTION")
        3
    """
    return len(re.findall(r"\w+", _without_solutions(source)))


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def output_words(outputs) -> int:
    """The words a cell prints: ``stdout``, and results shown as text, HTML (tags dropped) or Markdown.

    Figures and widgets are not words (see :data:`FIGURE_MINUTES`, :data:`WIDGET_MINUTES`);
    nor are ``stderr`` (warnings, progress) and errors.

    Examples:
        >>> from nbformat.v4 import new_output
        >>> output_words([new_output("stream", name="stdout", text="mAP 0.75 [0.61, 0.88]\\n"),
        ...               new_output("stream", name="stderr", text="a warning\\n")])
        4
    """
    words = 0
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            words += _words(_text(out.get("text", ""))) if out.get("name") == "stdout" else 0
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            if _WIDGET_MIME in data or any(mime.startswith("image/") for mime in data):
                continue
            if "text/html" in data:
                words += _words(re.sub(r"<[^>]+>", " ", _text(data["text/html"])))
            elif "text/markdown" in data:
                words += prose_words(_text(data["text/markdown"]))
            elif "text/plain" in data:
                words += _words(_text(data["text/plain"]))
    return words


def _figures(outputs) -> int:
    return sum(1 for out in outputs if any(mime.startswith("image/") for mime in out.get("data", {})))


def _shows_widget(outputs) -> bool:
    return any(_WIDGET_MIME in out.get("data", {}) for out in outputs)


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


@dataclass(frozen=True)
class SectionEstimate:
    """What one section asks, and the minutes it takes.

    ``raw_minutes`` is the unrounded sum (see the module's docstring), ``minutes`` the
    stated time: rounded to a whole minute, at least :data:`MIN_SECTION_MINUTES`.
    """

    number: int
    title: str
    optional: bool = False
    prose_words: int = 0
    math_words: int = 0
    code_words: int = 0
    output_words: int = 0
    figures: int = 0
    exercises: int = 0
    stretch_exercises: int = 0
    open_questions: int = 0
    quick_checks: int = 0
    think_prompts: int = 0
    widgets: int = 0

    @property
    def reading_minutes(self) -> float:
        """Prose, printed output, formulas and code, at their reading rates."""
        return ((self.prose_words + self.output_words) / PROSE_WORDS_PER_MINUTE
                + self.math_words / MATH_SYMBOLS_PER_MINUTE + self.code_words / CODE_WORDS_PER_MINUTE)

    @property
    def activity_minutes(self) -> float:
        """The allowances: figures, exercises, open questions, quick checks, Think! prompts, widgets."""
        return (self.figures * FIGURE_MINUTES + self.exercises * EXERCISE_MINUTES
                + self.stretch_exercises * STRETCH_EXERCISE_MINUTES + self.open_questions * OPEN_QUESTION_MINUTES
                + self.quick_checks * QUICK_CHECK_MINUTES + self.think_prompts * THINK_MINUTES
                + self.widgets * WIDGET_MINUTES)

    @property
    def raw_minutes(self) -> float:
        return self.reading_minutes + self.activity_minutes

    @property
    def minutes(self) -> int:
        return round_minutes(self.raw_minutes)

    def breakdown(self) -> str:
        """One line: what the minutes are made of."""
        parts = [f"read {self.reading_minutes:.1f} ({self.prose_words} words, {self.math_words} maths, "
                 f"{self.output_words} printed, {self.code_words} code)"]
        for count, what in ((self.figures, "figure"), (self.exercises, "exercise"),
                            (self.stretch_exercises, "★ exercise"), (self.open_questions, "open question"),
                            (self.quick_checks, "quick check"), (self.think_prompts, "Think!"),
                            (self.widgets, "widget")):
            if count:
                parts.append(f"{count} {what}{'s' if count > 1 and not what.endswith('!') else ''}")
        return ", ".join(parts)


def round_minutes(raw: float) -> int:
    """A section's stated minutes: ``raw`` rounded half up to a whole minute, at least :data:`MIN_SECTION_MINUTES`.

    Examples:
        >>> round_minutes(0.4), round_minutes(7.5), round_minutes(7.49)
        (2, 8, 7)
    """
    return max(MIN_SECTION_MINUTES, math.floor(raw + 0.5))


@dataclass
class Section:
    """A numbered section: its header (cell index and line), and the pieces of the notebook inside it.

    ``parts`` are ``(cell index, text)`` pairs: a whole code cell's source, or the lines
    of a Markdown cell that lie inside the section (a Markdown cell can hold a header
    mid-way). The header's own line is kept without its ``(≈ N min)``, so that writing
    the time never changes the estimate.
    """

    number: int
    title: str
    stated: int | None
    optional: bool
    cell: int
    parts: list[tuple[int, str]] = field(default_factory=list)


def _header(line: str):
    return _SECTION.match(line)


def split_sections(nb) -> list[Section]:
    """The numbered sections of a notebook, in order, each with its parts (see :class:`Section`).

    Returns an empty list when the notebook has no ``## N.`` header.
    """
    sections: list[Section] = []
    current: Section | None = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            if current is not None:
                current.parts.append((i, cell.source))
            continue
        chunk: list[str] = []
        for line in cell.source.split("\n"):
            match = _header(line)
            if match or _CLOSING.match(line):
                if current is not None and chunk:
                    current.parts.append((i, "\n".join(chunk)))
                chunk = []
                current = None
                if match:
                    current = Section(int(match.group(1)), match.group(2).strip(),
                                      int(match.group(3)) if match.group(3) else None, bool(match.group(4)), i)
                    sections.append(current)
                    line = f"## {current.number}. {current.title}"  # its stated time is not read as words
            chunk.append(line)
        if current is not None and chunk:
            current.parts.append((i, "\n".join(chunk)))
    return sections


def estimate_sections(nb) -> list[SectionEstimate]:
    """Each numbered section's :class:`SectionEstimate` (see the module's docstring for what counts).

    Args:
        nb: a notebook (``nbformat`` v4), with its outputs: printed words, figures and
            widgets are read from them, so estimate an executed lesson.
    """
    sections = split_sections(nb)
    if not sections:
        return []
    # which answer cells start an exercise, and which of those are ★: an answer cell starts one when a heading
    # lies between it and the previous answer cell (or it is the first); a ★ in one of those headings marks a stretch
    exercise_star: dict[int, bool] = {}  # answer cell -> stretch?
    headings: list[str] = []  # heading lines since the previous answer cell
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            headings += [line for line in cell.source.split("\n") if _HEADING.match(line)]
            continue
        if not (_nbgrader(cell).get("solution") and "BEGIN SOLUTION" in cell.source):
            continue
        following = next((c for c in nb.cells[i + 1:] if c.cell_type == "code"), None)
        records_letter = following is not None and ".check_answer(" in following.source
        if not records_letter and (headings or not exercise_star):  # else: a second answer cell of one exercise
            exercise_star[i] = any("★" in line for line in headings)
        headings = []
    estimates = []
    for section in sections:
        counts = dict(prose_words=0, math_words=0, code_words=0, output_words=0, figures=0, exercises=0, stretch_exercises=0,
                      open_questions=0, quick_checks=0, think_prompts=0, widgets=0)
        for i, text in section.parts:
            cell = nb.cells[i]
            if cell.cell_type == "markdown":
                if _nbgrader(cell).get("solution"):
                    counts["open_questions"] += 1  # the answer cell: its model answer is not the student's to read
                    continue
                counts["prose_words"] += prose_words(text)
                counts["math_words"] += math_words(text)
                counts["think_prompts"] += text.count(_THINK)
                continue
            outputs = cell.get("outputs", [])
            counts["output_words"] += output_words(outputs)
            counts["figures"] += _figures(outputs)
            if _QUICK_CHECK in cell.source:
                counts["quick_checks"] += 1
                continue
            counts["code_words"] += code_words(text)
            counts["widgets"] += _shows_widget(outputs)
            if i in exercise_star:
                counts["stretch_exercises" if exercise_star[i] else "exercises"] += 1
        estimates.append(SectionEstimate(section.number, section.title, section.optional, **counts))
    return estimates


@dataclass
class LessonTiming:
    """A lesson's estimate beside the times it states.

    ``sections`` are the estimates; ``stated_sections`` each header's minutes (``None``
    where a header has none); ``stated_summary`` the summary line's (core, optional)
    minutes and ``stated_entries`` its per-section minutes (``None`` where the first
    cell has no ``**About N minutes:**`` line).
    """

    name: str
    sections: list[SectionEstimate]
    stated_sections: list[int | None]
    stated_summary: tuple[int, int] | None
    stated_entries: list[int] | None

    @property
    def core_minutes(self) -> int:
        return sum(s.minutes for s in self.sections if not s.optional)

    @property
    def optional_minutes(self) -> int:
        return sum(s.minutes for s in self.sections if s.optional)

    def mismatches(self) -> list[str]:
        """What the lesson states that differs from the estimate, one line each, naming the lesson."""
        found = []
        for section, stated in zip(self.sections, self.stated_sections):
            if stated != section.minutes:
                found.append(f"{self.name}: section {section.number} ({section.title}) states "
                             f"{'no time' if stated is None else f'{stated} min'}, the estimate is "
                             f"{section.minutes} min ({section.breakdown()})")
        expected = (self.core_minutes, self.optional_minutes)
        if self.stated_summary is None:
            found.append(f"{self.name}: the first cell has no '**About N minutes:**' line")
        elif self.stated_summary != expected or self.stated_entries != [s.minutes for s in self.sections]:
            found.append(f"{self.name}: the first cell says {_about(*self.stated_summary)} with sections "
                         f"{self.stated_entries}; the estimate is {_about(*expected)} with sections "
                         f"{[s.minutes for s in self.sections]}")
        return found


def _about(core: int, optional: int) -> str:
    return f"{core} min" + (f" + {optional} optional" if optional else "")


def _summary_entries(rest: str) -> list[tuple[str, int, bool]] | None:
    """The summary line's entries after ``**About N minutes:**``: (name, minutes, optional); None if unparsable."""
    rest = rest.strip()
    if rest.endswith("."):
        rest = rest[:-1]
    entries = []
    for piece in rest.split(" · "):
        match = _ENTRY.match(piece.strip())
        if not match:
            return None
        entries.append((match.group(1), int(match.group(2)), bool(match.group(3))))
    return entries


def lesson_timing(nb, name: str = "notebook") -> LessonTiming:
    """The lesson's estimate and its stated times (see :class:`LessonTiming`).

    Raises:
        ValueError: the notebook has no ``## N.`` section (naming ``name``).
    """
    sections = split_sections(nb)
    if not sections:
        raise ValueError(f"{name}: no numbered section ('## 1. Title'): nothing to time")
    summary = _SUMMARY.search(nb.cells[0].source) if nb.cells and nb.cells[0].cell_type == "markdown" else None
    stated_summary = stated_entries = None
    if summary:
        stated_summary = (int(summary.group(1)), int(summary.group(2) or 0))
        entries = _summary_entries(summary.group(3))
        stated_entries = [minutes for _, minutes, _ in entries] if entries is not None else None
    return LessonTiming(name, estimate_sections(nb), [s.stated for s in sections], stated_summary, stated_entries)


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
    """
    names = [_entry_name(s.title) for s in estimates] if names is None else names
    core = sum(s.minutes for s in estimates if not s.optional)
    optional = sum(s.minutes for s in estimates if s.optional)
    head = f"**About {core} minutes" + (f", plus {optional} optional" if optional else "") + ":**"
    entries = " · ".join(f"{name} ({s.minutes} min{', optional' if s.optional else ''})"
                         for name, s in zip(names, estimates))
    return f"{head} {entries}."


def format_readme_time(core: int, optional: int) -> str:
    """The README table's time cell: ``38 min``, or ``55 min + 10 optional``."""
    return f"{core} min" + (f" + {optional} optional" if optional else "")


def _hours(minutes: int) -> str:
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def format_course_total(core: int, optional: int) -> str:
    """The README's course total.

    Examples:
        >>> format_course_total(545, 20)
        'The whole course: about 9 h 5 min, plus 20 min of optional sections.'
        >>> format_course_total(50, 0)
        'The whole course: about 50 min.'
    """
    return f"The whole course: about {_hours(core)}" + (
        f", plus {_hours(optional)} of optional sections" if optional else "") + "."


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
    entries = _summary_entries(summary.group(3)) if summary else None
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


def retime_readme(readme: str, totals: dict[str, tuple[int, int]]) -> tuple[str, list[str]]:
    """The README with its course table's time column and its course total rewritten from ``totals``.

    Args:
        readme: the README's text.
        totals: each lesson's file name -> (core, optional) minutes.

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
    total = format_course_total(sum(c for c, _ in totals.values()), sum(o for _, o in totals.values()))
    stated = _README_TOTAL.search(text)
    if stated and stated.group(0) != total:
        changes.append(f"README.md: '{stated.group(0)}' -> '{total}'")
        text = text[:stated.start()] + total + text[stated.end():]
    return text, changes


def _readme_mismatches(readme: str, totals: dict[str, tuple[int, int]]) -> list[str]:
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
        if split_sections(nb):
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
        totals[path.name] = (timing.core_minutes, timing.optional_minutes)
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
        totals[path.name] = (timing.core_minutes, timing.optional_minutes)
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
        lines.append(f"{path.name}: {_about(timing.core_minutes, timing.optional_minutes)} "
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
    """``python -m cbir_lab.course.timing FOLDER [--write] [--readme README.md] [--quiet]``.

    Prints each lesson's estimate beside its stated times; without ``--write`` exits 1
    when any stated time differs from the estimate, with ``--write`` rewrites them.
    """
    parser = argparse.ArgumentParser(prog="python -m cbir_lab.course.timing",
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
