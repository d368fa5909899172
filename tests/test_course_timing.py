"""The lessons' times (cbir_lab.course.timing): estimated from what a section asks, and stated where they are.

A tiny lesson made here, with word counts one can check by hand, gives the minutes
worked out in the comments; the real lessons and the README must state exactly the
estimate, so a lesson that grows without its times being rewritten fails, naming
the command that rewrites them.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from cbir_lab.course import retime
from cbir_lab.course.retime import (
    REWRITE_HINT,
    format_summary,
    mark_optional,
    retime_notebook,
    retime_readme,
    timing_mismatches,
    write_timings,
)
from cbir_lab.course.timing import (
    is_project,
    CODE_WORDS_PER_MINUTE,
    EXERCISE_MINUTES,
    FIGURE_MINUTES,
    MATH_SYMBOLS_PER_MINUTE,
    MAX_CORE_MINUTES,
    OPEN_QUESTION_MINUTES,
    PROSE_WORDS_PER_MINUTE,
    PREREQUISITE_CHECK_MINUTES,
    QUICK_CHECK_MINUTES,
    STRETCH_EXERCISE_MINUTES,
    THINK_MINUTES,
    WIDGET_MINUTES,
    code_words,
    estimate_sections,
    lesson_timing,
    math_words,
    output_words,
    prose_words,
    round_minutes,
    split_sections,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: The lessons whose times are estimated: a project (the capstone) states its own, hours of the student's work.
LESSONS = [p for p in NOTEBOOKS if not is_project(nbformat.read(p, as_version=4))]


def words(n: int) -> str:
    return " ".join(["word"] * n)


def graded(cell, solution: bool, grade: bool, grade_id: str):
    cell.metadata["nbgrader"] = {"grade": grade, "grade_id": grade_id, "locked": not solution,
                                 "schema_version": 3, "solution": solution, **({"points": 1} if grade else {})}
    return cell


def widget_output():
    return new_output("execute_result", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                              "text/plain": "Explorer(a='b')"}, execution_count=1)


def tiny_lesson():
    """Two sections; the minutes each asks are worked out beside its cells."""
    figure = new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 1 with 1 Axes>"})
    printed = new_output("stream", name="stdout", text=words(200) + "\n")
    warning = new_output("stream", name="stderr", text="a warning nobody reads\n")
    return new_notebook(cells=[
        new_markdown_cell("# Toy lesson\n\n**About 1 minutes:** reading (1 min) · doing (1 min).\n\nIntro " + words(50)),
        new_code_cell("import numpy"),  # before section 1: not timed
        # Section 1: prose 2 (header: "1.", "Reading") + 196 + 2 ("Think!**", "Predict.") = 200 words -> 1 min;
        # code 100 tokens -> 1 min; printed 200 words -> 1 min; a figure 0.5; a Think! 2: 5.5 -> 6 min.
        new_markdown_cell("## 1. Reading (≈ 9 min)\n\n" + words(196)),
        new_markdown_cell("**🤔 Think!** Predict."),
        new_code_cell("# NBVAL_CHECK_OUTPUT\n" + " ".join(f"a{i}" for i in range(100)),
                      outputs=[printed, warning, figure]),
        # Section 2 (optional): prose 2 (header: "2.", "Doing") + 3 ("Exercise", "1", "stretch") + 5 ("Open",
        # "question", "why?", "(3", "points)") + 2 ("Use", "it") = 12 words -> 0.06; maths 2 ("p", "3") -> 0.04;
        # code 2 + 2 + 2 + 3 + 1 = 10 tokens -> 0.1 (not the quick check's cell, nor the solutions);
        # a ★ exercise 12, a quick check 2, an open question 6, a widget 4: 24.2 -> 24 min.
        new_markdown_cell("## 2. Doing (≈ 1 min, optional)\n\n### Exercise 1 ★ — stretch"),
        graded(new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"), True, False, "f"),
        graded(new_code_cell("check(f)"), False, True, "f-check"),
        new_code_cell('quick = QuickCheck(Question("a long question " * 50, ("b", "c"), 0))', outputs=[widget_output()]),
        graded(new_code_cell('def quick_check_answer():\n    ### BEGIN SOLUTION\n    return "A"\n    ### END SOLUTION'),
               True, False, "qc"),
        graded(new_code_cell("quick.check_answer(quick_check_answer)"), False, True, "qc-check"),
        graded(new_markdown_cell("### Open question — why? (3 points) $p = 3$"), False, False, "open-task"),
        graded(new_markdown_cell("### BEGIN SOLUTION\n" + words(300) + "\n### END SOLUTION"), True, True, "open"),
        new_markdown_cell("## Use it"),
        new_code_cell("Explorer", outputs=[widget_output()]),
        new_markdown_cell("## Summary\n\n" + words(100)),  # closing: not timed
    ])


def test_words_are_counted_as_a_reader_reads_them():
    assert prose_words("[![badge](b.svg)](https://x.org) A [link](https://x.org/a) <b>bold</b> — · $x^2$ end.") == 4
    assert math_words("$$r \\leftarrow r + (k - 1)\\, j$$ and $s$") == 7  # r, leftarrow, r, k, 1, j; s
    assert code_words("# NBVAL_CHECK_OUTPUT\nx = f(1)  # why\n### BEGIN SOLUTION\nhidden()\n### END SOLUTION") == 4
    assert output_words([new_output("execute_result", data={"text/plain": "0.75"}, execution_count=1),
                         new_output("display_data", data={"text/html": "<table><tr><td>mAP</td><td>0.7</td></tr></table>"}),
                         new_output("display_data", data={"image/png": "x", "text/plain": "<Figure>"}),
                         widget_output()]) == 3


def test_the_tiny_lesson_takes_the_minutes_worked_out_by_hand():
    first, second = estimate_sections(tiny_lesson())
    assert (first.prose_words, first.math_words, first.code_words, first.output_words) == (200, 0, 100, 200)
    assert (first.figures, first.think_prompts, first.exercises, first.widgets) == (1, 1, 0, 0)
    assert first.raw_minutes == pytest.approx(200 / PROSE_WORDS_PER_MINUTE + 100 / CODE_WORDS_PER_MINUTE
                                              + 200 / PROSE_WORDS_PER_MINUTE + FIGURE_MINUTES + THINK_MINUTES)
    assert first.raw_minutes == pytest.approx(5.5) and first.minutes == 6 and not first.optional
    assert (second.prose_words, second.math_words, second.code_words, second.output_words) == (12, 2, 10, 0)
    assert (second.exercises, second.stretch_exercises, second.quick_checks, second.open_questions,
            second.widgets, second.figures) == (0, 1, 1, 1, 1, 0)
    assert second.raw_minutes == pytest.approx(12 / PROSE_WORDS_PER_MINUTE + 2 / MATH_SYMBOLS_PER_MINUTE
                                               + 10 / CODE_WORDS_PER_MINUTE + STRETCH_EXERCISE_MINUTES
                                               + QUICK_CHECK_MINUTES + OPEN_QUESTION_MINUTES + WIDGET_MINUTES)
    assert second.raw_minutes == pytest.approx(24.2) and second.minutes == 24 and second.optional


def test_an_unstarred_exercise_and_a_second_answer_cell():
    nb = new_notebook(cells=[
        new_markdown_cell("## 1. Two exercises\n\n### Exercise 1 — plain"),
        graded(new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION"), True, False, "a"),
        graded(new_code_cell("### BEGIN SOLUTION\ny = 2\n### END SOLUTION"), True, False, "b"),  # the same exercise
        new_markdown_cell("### Exercise 2 — plain too"),
        graded(new_code_cell("### BEGIN SOLUTION\nz = 3\n### END SOLUTION"), True, False, "c"),
    ])
    (section,) = estimate_sections(nb)
    assert (section.exercises, section.stretch_exercises) == (2, 0)
    assert section.minutes == round_minutes(2 * EXERCISE_MINUTES + section.reading_minutes) == 12


def test_a_self_check_of_a_prerequisite_counts_as_long_as_a_quick_check():
    nb = new_notebook(cells=[
        new_markdown_cell("## 0. Before you start\n\n### Self-check A — broadcasting (1 point)"),
        graded(new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION"), True, False, "a"),
        graded(new_code_cell("check_a(a).require();"), False, True, "a-check"),
        new_markdown_cell("### Self-check B — an eigenvector (1 point)"),
        graded(new_code_cell("### BEGIN SOLUTION\ny = 2\n### END SOLUTION"), True, False, "b"),
    ])
    (section,) = estimate_sections(nb)
    assert (section.prerequisite_checks, section.exercises, section.stretch_exercises) == (2, 0, 0)
    assert PREREQUISITE_CHECK_MINUTES == QUICK_CHECK_MINUTES
    assert section.minutes == round_minutes(2 * PREREQUISITE_CHECK_MINUTES + section.reading_minutes) == 4
    assert "2 prerequisite checks" in section.breakdown()
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"self-checks of the prerequisites count {PREREQUISITE_CHECK_MINUTES} minutes each" in readme


def test_rounding_and_the_shortest_section():
    assert [round_minutes(x) for x in (0.0, 1.4, 2.5, 2.49, 59.5)] == [2, 2, 3, 2, 60]


def test_a_section_ends_at_the_next_numbered_or_closing_header_even_mid_cell():
    nb = new_notebook(cells=[new_markdown_cell("intro\n## 1. A (≈ 3 min)\none two\n## 2. B\nthree\n## Papers\nfour")])
    sections = split_sections(nb)
    assert [(s.number, s.title, s.stated, s.optional) for s in sections] == [(1, "A", 3, False), (2, "B", None, False)]
    assert [text for _, text in sections[0].parts] == ["## 1. A\none two"]
    assert [text for _, text in sections[1].parts] == ["## 2. B\nthree"]


def test_retiming_changes_only_the_time_strings_and_is_idempotent():
    nb = tiny_lesson()
    before = copy.deepcopy(nb)
    changes = retime_notebook(nb, "toy.ipynb")
    assert len(changes) == 3 and all(c.startswith("toy.ipynb: ") for c in changes)
    assert nb.cells[2].source.startswith("## 1. Reading (≈ 6 min)\n\n")
    assert nb.cells[5].source.startswith("## 2. Doing (≈ 24 min, optional)\n\n")
    assert ("**About 6 minutes, plus 24 optional:** reading (6 min) · doing (24 min, optional).\n\nIntro"
            in nb.cells[0].source)
    for old, new in zip(before.cells, nb.cells):
        assert old.get("outputs") == new.get("outputs") and old.metadata == new.metadata
        if old.source != new.source:
            assert len(old.source.split("\n")) == len(new.source.split("\n"))  # one line rewritten, nothing else
    assert retime_notebook(nb, "toy.ipynb") == []
    timing_ = lesson_timing(nb, "toy.ipynb")
    assert timing_.mismatches() == [] and timing_.minutes == (6, 0, 24)


def test_a_missing_time_and_a_missing_summary_are_written():
    badge = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/x)"
    nb = new_notebook(cells=[new_markdown_cell(f"# Capstone\n\n{badge}\n\nWhat you build."),
                             new_markdown_cell("## 1. How big is it?\n\n" + words(400))])
    assert lesson_timing(nb, "11_capstone.ipynb").mismatches()[1] == (
        "11_capstone.ipynb: the first cell has no '**About N minutes:**' line")
    retime_notebook(nb, "11_capstone.ipynb")
    assert nb.cells[1].source.startswith("## 1. How big is it? (≈ 2 min)\n")
    assert nb.cells[0].source == f"# Capstone\n\n{badge}\n\n**About 2 minutes:** how big is it (2 min).\n\nWhat you build."


def test_a_summary_that_names_other_sections_is_rebuilt_from_the_titles():
    nb = new_notebook(cells=[new_markdown_cell("# L\n\n**About 5 minutes:** old (5 min)."),
                             new_markdown_cell("## 1. First steps (≈ 2 min)"), new_markdown_cell("## 2. GeM (≈ 2 min)")])
    retime_notebook(nb)
    assert "**About 4 minutes:** first steps (2 min) · GeM (2 min)." in nb.cells[0].source
    assert format_summary(estimate_sections(nb), ["one", "two"]) == "**About 4 minutes:** one (2 min) · two (2 min)."


def test_marking_sections_optional():
    nb = tiny_lesson()
    assert mark_optional(nb, [1], "toy.ipynb") == ["toy.ipynb: '## 1. Reading (≈ 9 min)' -> '## 1. Reading (≈ 9 min, optional)'"]
    assert mark_optional(nb, [1, 2]) == []  # already optional
    with pytest.raises(ValueError, match=r"toy.ipynb: no section 7 to mark optional \(sections: 1, 2\)"):
        mark_optional(nb, [7], "toy.ipynb")


def test_a_notebook_without_sections_is_named_and_skipped(tmp_path):
    with pytest.raises(ValueError, match="12_reading.ipynb: no numbered section"):
        lesson_timing(new_notebook(cells=[new_markdown_cell("# Just reading")]), "12_reading.ipynb")
    folder = tmp_path / "notebooks"  # no README beside it
    folder.mkdir()
    nbformat.write(new_notebook(cells=[new_markdown_cell("# Just reading")]), folder / "12_reading.ipynb")
    assert timing_mismatches(folder) == [] and write_timings(folder) == []
    assert retime.main([str(folder)]) == 0


README = """# Toy

| lesson | what | time |
| --- | --- | --- |
| `01_toy.ipynb` | a toy | 5 min |
| `02_other.ipynb` | not in the folder | 7 min |

The whole course: about 5 min.
"""


def test_a_folder_and_its_readme_are_checked_then_written_then_agree(tmp_path, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(tiny_lesson(), folder / "01_toy.ipynb")
    (tmp_path / "README.md").write_text(README, encoding="utf-8")
    found = timing_mismatches(folder)
    assert any(line.startswith("01_toy.ipynb: section 1 (Reading) states 9 min, the estimate is 6 min") for line in found)
    assert "README.md: 01_toy.ipynb states '5 min', the lesson 6 min + 24 optional" in found
    assert retime.main([str(folder), "--quiet"]) == 1
    assert REWRITE_HINT in capsys.readouterr().out
    changes = write_timings(folder)
    assert "README.md, 01_toy.ipynb: '5 min' -> '6 min + 24 optional'" in changes
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "| `01_toy.ipynb` | a toy | 6 min + 24 optional |" in readme and "| 7 min |" in readme
    assert "The whole course: about 6 min, plus 24 min of optional sections." in readme
    assert timing_mismatches(folder) == [] and write_timings(folder) == []
    assert retime.main([str(folder), "--quiet"]) == 0
    # a lesson that grows without its times being rewritten fails, and says how to rewrite them
    nb = nbformat.read(folder / "01_toy.ipynb", as_version=4)
    nb.cells[2].source += " " + words(300)
    nbformat.write(nb, folder / "01_toy.ipynb")
    assert timing_mismatches(folder)[0].startswith("01_toy.ipynb: section 1 (Reading) states 6 min, the estimate is 7 min")


def test_writing_keeps_the_notebook_byte_for_byte_but_the_time_strings(tmp_path):
    source = LESSONS[0]
    copy_ = tmp_path / "notebooks" / source.name
    copy_.parent.mkdir()
    shutil.copy(source, copy_)
    text = source.read_text(encoding="utf-8")
    assert write_timings(copy_.parent) == []  # no README beside this copy
    # change one stated time by hand: writing restores exactly the original file
    stated = lesson_timing(nbformat.read(source, as_version=4)).stated_sections[0]
    copy_.write_text(text.replace(f"(≈ {stated} min)", f"(≈ {stated + 7} min)", 1), encoding="utf-8")
    assert write_timings(copy_.parent) != []
    assert copy_.read_text(encoding="utf-8") == text


def test_the_command_line(tmp_path):
    with pytest.raises(SystemExit):
        retime.main(["--help"])
    assert retime.main([str(tmp_path / "nowhere")]) == 1
    assert retime.main([str(ROOT / "notebooks"), "--optional", "01_x.ipynb:1"]) == 1  # --optional needs --write


def test_cbir_lab_course_timing(tmp_path, capsys):
    from cbir_lab.cli import main

    assert main(["course", "timing", str(ROOT / "notebooks")]) == 0  # the real lessons agree with their estimate
    assert "Every stated time matches the estimate." in capsys.readouterr().out
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(tiny_lesson(), folder / "01_toy.ipynb")
    assert main(["course", "timing", str(folder)]) == 1
    assert main(["course", "timing", str(folder), "--write"]) == 0
    assert main(["course", "timing", str(folder)]) == 0
    assert main(["course", "sync-url", str(tmp_path), "--write"]) == 1  # --write is timing's alone
    assert "--write is for cbir-lab course timing" in capsys.readouterr().err


# The real lessons: every stated time is the estimate, every core fits a session, the README agrees.

@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.stem)
def test_each_lesson_states_the_estimated_times(path):
    lesson = lesson_timing(nbformat.read(path, as_version=4), path.name)
    mismatches = lesson.mismatches()
    assert not mismatches, "\n".join(mismatches) + f"\n{REWRITE_HINT}"
    assert sum(lesson.stated_summary) == sum(lesson.stated_sections), "the summary's parts add up to the sections"
    assert lesson.core_minutes <= MAX_CORE_MINUTES, (
        f"{path.name}'s core takes {lesson.core_minutes} min, over an hour: mark sections that no later lesson "
        f"builds on optional (python -m cbir_lab.course.retime notebooks/ --write --optional {path.name}:N)")
    graded = [s.number for s in lesson.sections if s.optional and _graded(s)]
    assert not graded, f"{path.name}: optional section(s) {graded} hold graded work; what is graded is not optional"


def _graded(section) -> bool:
    """Whether a section holds work every student is graded on (a ★ exercise is a stretch, so it does not count)."""
    return bool(section.exercises or section.open_questions or section.quick_checks)


def test_a_stretch_exercise_is_counted_apart_from_the_core():
    nb = new_notebook(cells=[new_markdown_cell("# L\n\n**About 1 minutes:** x (1 min)."),
                             new_markdown_cell("## 1. GeM\n\n### Exercise 1 — p\n\nWrite it."),
                             new_code_cell("### BEGIN SOLUTION\n### END SOLUTION", metadata={"nbgrader": {"solution": True}}),
                             new_markdown_cell("### Exercise 2 ★ — p learned\n\nWrite it."),
                             new_code_cell("### BEGIN SOLUTION\n### END SOLUTION", metadata={"nbgrader": {"solution": True}})])
    lesson = lesson_timing(nb, "l.ipynb")
    (section,) = lesson.sections
    # reading: 13 words ("## 1. GeM" is 2, "### Exercise 1 — p" 3, "Write it." 2, twice) / 200 + 0 code tokens = 0.07 min
    assert (section.exercises, section.stretch_exercises) == (1, 1)
    assert section.minutes == 18 and section.core_minutes == 6  # 6 + 12 + 0.07, and without the 12
    assert lesson.minutes == (6, 12, 0) and _graded(section)
    retime_notebook(nb, "l.ipynb")
    assert "**About 6 minutes, plus 12 for ★ exercises:** x (18 min)." in nb.cells[0].source  # its entry name kept


def test_the_readme_states_each_lessons_time_and_the_course_total():
    mismatches = timing_mismatches(ROOT / "notebooks", ROOT / "README.md")
    assert not mismatches, "\n".join(mismatches) + f"\n{REWRITE_HINT}"
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "The whole course: about " in readme
    # the README's account of the estimate quotes the module's constants
    for phrase in (f"reading at {PROSE_WORDS_PER_MINUTE} words a minute", f"code at {CODE_WORDS_PER_MINUTE} tokens",
                   f"formulas at {MATH_SYMBOLS_PER_MINUTE} symbols", f"plus {EXERCISE_MINUTES} minutes per exercise",
                   f"{STRETCH_EXERCISE_MINUTES} for a ★ stretch exercise", f"{OPEN_QUESTION_MINUTES} per open question",
                   f"{WIDGET_MINUTES} per widget to explore",
                   f"{QUICK_CHECK_MINUTES} per quick check or 🤔 Think! prompt and half a minute per figure",
                   f"core takes at most an hour"):
        assert phrase in readme, f"README.md: the account of the lessons' times should say {phrase!r}"
    assert FIGURE_MINUTES == 0.5 and THINK_MINUTES == QUICK_CHECK_MINUTES and MAX_CORE_MINUTES == 60


def test_the_capstone_is_a_project_timed_by_its_brief_and_left_out_of_the_estimates(tmp_path):
    projects = [p.name for p in NOTEBOOKS if p not in LESSONS]
    assert projects == ["11_capstone.ipynb"]
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(NOTEBOOKS[0], folder / "01_lesson.ipynb")
    nb = nbformat.read(ROOT / "notebooks" / projects[0], as_version=4)
    nbformat.write(nb, folder / "02_project.ipynb")
    assert timing_mismatches(folder, readme=None) == []  # its hand-stated times are not compared with an estimate
    nb.metadata["cbir_lab"] = {}
    nbformat.write(nb, folder / "02_project.ipynb")
    assert any(line.startswith("02_project.ipynb: ") for line in timing_mismatches(folder, readme=None))
