"""The second pass's corrections stay made: each reads the lessons' text for a claim that was wrong.

Each rule is checked on a made-up cell too, so a rule that cannot fail is caught here.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
LESSONS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _markdown(path: Path) -> list[str]:
    return ["".join(c.source) for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]


def _code(path: Path) -> list[str]:
    return ["".join(c.source) for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def _lesson(number: str) -> Path:
    return next(p for p in LESSONS if p.name.startswith(number))


def mpk_defined_as_the_protocol(markdown: list[str]) -> bool:
    """mP@k's k_q = min(position of the last positive, k) is written out, as the revisitop code computes it."""
    return any("mP@k" in text and re.search(r"\\min\s*\(|min\(", text) for text in markdown)


def calls_mpk_textbook_precision(markdown: list[str]) -> bool:
    """Lesson 4's old wording: mP@k as "the precision of the top 1, 5, 10 results"."""
    return any(re.search(r"mP@.{0,60}precision of the top", text) for text in markdown)


def test_mpk_is_defined_as_the_protocol_computes_it_with_the_textbook_p_at_k_beside_it():
    lesson = _lesson("04")
    assert mpk_defined_as_the_protocol(_markdown(lesson))
    assert any("precision_at_k" in code for code in _code(lesson)), "lesson 4 no longer shows the textbook P@k"
    assert not any(calls_mpk_textbook_precision(_markdown(path)) for path in LESSONS)


def test_the_mpk_rules_fail_on_the_old_wording():
    old = ["**mP@k** is the precision of the top 1, 5, 10 results, averaged over the queries."]
    assert calls_mpk_textbook_precision(old) and not mpk_defined_as_the_protocol(old)


def exercise_numbers(markdown: list[str]) -> list[int]:
    return [int(m.group(1)) for text in markdown for m in re.finditer(r"^#+ Exercise (\d+)", text, re.MULTILINE)]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_exercises_are_numbered_1_2_3_in_each_lesson(path):
    numbers = exercise_numbers(_markdown(path))
    assert numbers == list(range(1, len(numbers) + 1)), f"{path.name}: exercises numbered {numbers}"


def test_the_numbering_rule_fails_on_a_lone_exercise_2():
    assert exercise_numbers(["### Exercise 2 — asymmetric distances (3 points)"]) == [2] != [1]


#: Lesson 7's old descriptions of the triangulation embedding, which the lesson's code does not do.
WRONG_ON_TE = (r"whitens and sums", r"every descriptor contributes the same", r"outperforms")


def wrong_te_claims(markdown: list[str]) -> list[str]:
    return [pattern for pattern in WRONG_ON_TE for text in markdown if re.search(pattern, text, re.IGNORECASE)]


def test_lesson_7_describes_the_embedding_as_built_and_quotes_the_abstract():
    markdown = _markdown(_lesson("07"))
    assert wrong_te_claims(markdown) == []
    assert any('"provides arguably the best performance"' in text for text in markdown)
    assert wrong_te_claims(["The embedding whitens and sums the residuals."]) == ["whitens and sums"]


def test_lesson_8_cites_alpha_dba_and_diffusions_k_for_global_descriptors():
    text = "\n".join(_markdown(_lesson("08")))
    assert re.search(r"α-DBA.{0,40}Radenović et al\., TPAMI 2018", text)
    assert re.search(r"k = 50.{0,80}global descriptors", text)
