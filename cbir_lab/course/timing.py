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
* each self-check of a prerequisite (an exercise under a ``### Self-check …``
  heading, lesson 1's "Before you start"): :data:`PREREQUISITE_CHECK_MINUTES`;
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

**The core, ★ exercises and optional sections.** A lesson's core should take at most
:data:`MAX_CORE_MINUTES`, one lab session. A ★ exercise is a stretch, beyond what the
lesson asks of everyone, so its allowance is counted apart: the summary says
``**About 48 minutes, plus 12 for ★ exercises:** …``. When the core would still take
longer, mark sections that later lessons do not build on, and that hold no graded
exercise, quick check or open question, as optional in their header,
``## 6. Explore (≈ 10 min, optional)``; the summary then gives those apart too,
``**About 55 minutes, plus 12 for ★ exercises and 10 optional:** … explore (10 min, optional).``,
and so does the README's table (``55 min + 12 ★ + 10 optional``). Each section's header
states its whole time, ★ exercises included. The optional mark is the author's, in the
header: this module keeps it and sets it only when asked (``--optional 02_pooling.ipynb:3``,
:func:`~cbir_lab.course.retime.mark_optional`).

**A project** (the capstone; its notebook's metadata says ``"cbir_lab": {"kind": "project"}``,
see :func:`is_project`) asks for hours of the student's own work, which no reading rate
measures: its brief states its time, and it is not estimated.

Checking and writing these times into the lessons and the README is
:mod:`cbir_lab.course.retime` (``cbir-lab course timing [--write]``).

* :func:`prose_words`, :func:`math_words`, :func:`code_words`, :func:`output_words`: the counts.
* :func:`split_sections`, :func:`estimate_sections`: a notebook's sections and their
  :class:`SectionEstimate`.
* :func:`lesson_timing`: a lesson's estimate beside its stated times (:class:`LessonTiming`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

__all__ = [
    "PROSE_WORDS_PER_MINUTE",
    "CODE_WORDS_PER_MINUTE",
    "MATH_SYMBOLS_PER_MINUTE",
    "FIGURE_MINUTES",
    "EXERCISE_MINUTES",
    "STRETCH_EXERCISE_MINUTES",
    "PREREQUISITE_CHECK_MINUTES",
    "OPEN_QUESTION_MINUTES",
    "QUICK_CHECK_MINUTES",
    "THINK_MINUTES",
    "WIDGET_MINUTES",
    "MIN_SECTION_MINUTES",
    "MAX_CORE_MINUTES",
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
    "is_project",
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
#: A self-check of a prerequisite: a one-line answer on what the student should already know, like a quick check.
#: A student who needs longer is sent to revise it, which is preparation, not the lesson's time.
PREREQUISITE_CHECK_MINUTES = 2
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

# "## 3. Title (≈ 10 min)" or "## 3. Title (≈ 10 min, optional)" or "## 3. Title" (no time yet)
_SECTION = re.compile(r"^## (\d+)\.\s+(.*?)(?:\s*\(≈ (\d+) min(, optional)?\))?\s*$")
_CLOSING = re.compile(r"^## (?:Summary|Papers|References|Further reading)\b", re.IGNORECASE)
_HEADING = re.compile(r"^#{2,4} ")
_PREREQUISITE = re.compile(r"^### Self-check\b")
_SUMMARY = re.compile(r"^\*\*About (\d+) minutes(?:, plus (?:(\d+) for ★ exercises)?(?: and )?(?:(\d+) optional)?)?:\*\*(.*)$",
                      re.M)
_ENTRY = re.compile(r"^(.*?)\s*\((\d+) min(, optional)?\)$")
_THINK = "🤔 Think!"
_QUICK_CHECK = "QuickCheck("
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

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
    prerequisite_checks: int = 0
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
                + self.stretch_exercises * STRETCH_EXERCISE_MINUTES
                + self.prerequisite_checks * PREREQUISITE_CHECK_MINUTES + self.open_questions * OPEN_QUESTION_MINUTES
                + self.quick_checks * QUICK_CHECK_MINUTES + self.think_prompts * THINK_MINUTES
                + self.widgets * WIDGET_MINUTES)

    @property
    def raw_minutes(self) -> float:
        return self.reading_minutes + self.activity_minutes

    @property
    def minutes(self) -> int:
        return round_minutes(self.raw_minutes)

    @property
    def core_minutes(self) -> int:
        """The section's minutes without its ★ exercises: a stretch goes beyond what the lesson needs of everyone."""
        if not self.stretch_exercises:
            return self.minutes
        return round_minutes(self.raw_minutes - self.stretch_exercises * STRETCH_EXERCISE_MINUTES)

    def breakdown(self) -> str:
        """One line: what the minutes are made of."""
        parts = [f"read {self.reading_minutes:.1f} ({self.prose_words} words, {self.math_words} maths, "
                 f"{self.output_words} printed, {self.code_words} code)"]
        for count, what in ((self.figures, "figure"), (self.exercises, "exercise"),
                            (self.stretch_exercises, "★ exercise"), (self.prerequisite_checks, "prerequisite check"),
                            (self.open_questions, "open question"),
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
    prerequisite: set[int] = set()  # answer cells of a self-check of a prerequisite
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
            if any(_PREREQUISITE.match(line) for line in headings):
                prerequisite.add(i)
        headings = []
    estimates = []
    for section in sections:
        counts = dict(prose_words=0, math_words=0, code_words=0, output_words=0, figures=0, exercises=0, stretch_exercises=0,
                      prerequisite_checks=0, open_questions=0, quick_checks=0, think_prompts=0, widgets=0)
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
            if i in prerequisite:
                counts["prerequisite_checks"] += 1
            elif i in exercise_star:
                counts["stretch_exercises" if exercise_star[i] else "exercises"] += 1
        estimates.append(SectionEstimate(section.number, section.title, section.optional, **counts))
    return estimates


@dataclass
class LessonTiming:
    """A lesson's estimate beside the times it states.

    ``sections`` are the estimates; ``stated_sections`` each header's minutes (``None``
    where a header has none); ``stated_summary`` the summary line's (core, ★, optional)
    minutes and ``stated_entries`` its per-section minutes (``None`` where the first
    cell has no ``**About N minutes:**`` line).
    """

    name: str
    sections: list[SectionEstimate]
    stated_sections: list[int | None]
    stated_summary: tuple[int, int, int] | None
    stated_entries: list[int] | None

    @property
    def core_minutes(self) -> int:
        """The sections not marked optional, less their ★ exercises: what the lesson asks of everyone."""
        return sum(s.core_minutes for s in self.sections if not s.optional)

    @property
    def stretch_minutes(self) -> int:
        """The ★ exercises of the sections not marked optional."""
        return sum(s.minutes - s.core_minutes for s in self.sections if not s.optional)

    @property
    def optional_minutes(self) -> int:
        return sum(s.minutes for s in self.sections if s.optional)

    @property
    def minutes(self) -> tuple[int, int, int]:
        """(core, ★, optional) minutes."""
        return self.core_minutes, self.stretch_minutes, self.optional_minutes

    def mismatches(self) -> list[str]:
        """What the lesson states that differs from the estimate, one line each, naming the lesson."""
        found = []
        for section, stated in zip(self.sections, self.stated_sections):
            if stated != section.minutes:
                found.append(f"{self.name}: section {section.number} ({section.title}) states "
                             f"{'no time' if stated is None else f'{stated} min'}, the estimate is "
                             f"{section.minutes} min ({section.breakdown()})")
        expected = self.minutes
        if self.stated_summary is None:
            found.append(f"{self.name}: the first cell has no '**About N minutes:**' line")
        elif self.stated_summary != expected or self.stated_entries != [s.minutes for s in self.sections]:
            found.append(f"{self.name}: the first cell says {_about(*self.stated_summary)} with sections "
                         f"{self.stated_entries}; the estimate is {_about(*expected)} with sections "
                         f"{[s.minutes for s in self.sections]}")
        return found


def _about(core: int, stretch: int = 0, optional: int = 0) -> str:
    """``55 min``, ``55 min + 12 ★``, ``55 min + 12 ★ + 10 optional``: the README's form."""
    return f"{core} min" + (f" + {stretch} ★" if stretch else "") + (f" + {optional} optional" if optional else "")


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
        stated_summary = (int(summary.group(1)), int(summary.group(2) or 0), int(summary.group(3) or 0))
        entries = _summary_entries(summary.group(4))
        stated_entries = [minutes for _, minutes, _ in entries] if entries is not None else None
    return LessonTiming(name, estimate_sections(nb), [s.stated for s in sections], stated_summary, stated_entries)


def is_project(nb) -> bool:
    """Whether a notebook is a project (metadata ``cbir_lab.kind == "project"``), timed by its brief, not estimated.

    Examples:
        >>> from nbformat.v4 import new_notebook
        >>> is_project(new_notebook(metadata={"cbir_lab": {"kind": "project"}})), is_project(new_notebook())
        (True, False)
    """
    return (nb.metadata.get("cbir_lab") or {}).get("kind") == "project"
