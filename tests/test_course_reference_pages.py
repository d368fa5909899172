"""The course's reference pages beside the lessons: the cheat sheet and the glossary, in every edition.

The glossary's terms are sorted and each points to a lesson that exists; the terms the
lessons' objectives rest on are all defined. Every function the cheat sheet names beside
a formula exists in the package. Every edition copies both pages, unchanged.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_markdown_cell, new_notebook

from cbir_lab.course.editions import EDITIONS, REFERENCE_PAGES, lesson_paths, reference_pages, write_edition

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LESSONS = lesson_paths(NOTEBOOKS)
GLOSSARY = (NOTEBOOKS / "glossary.md").read_text(encoding="utf-8")
CHEAT_SHEET = (NOTEBOOKS / "cheat_sheet.md").read_text(encoding="utf-8")

ENTRY = re.compile(r"^\* \*\*(?P<term>.+?)\*\* — (?P<text>.+)$", re.M)
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")

#: The terms the lessons' learning objectives rest on, lesson by lesson: each must have a glossary entry (matched
#: case-insensitively inside the entry's bold term).
CORE_TERMS = {
    1: ("feature map", "channel", "cell", "stride", "receptive field", "padding", "broadcasting", "eigenvector"),
    2: ("pooling", "SPoC", "centre prior", "MAC", "R-MAC", "GeM", "descriptor", "hard negative"),
    3: ("PCA-whitening", "partial whitening", "eigen-spectrum", "training set", "whitening"),
    4: ("query", "database", "ground truth", "positives", "junk", "cosine similarity", "average precision", "mAP",
        "mP@k", "precision at k", "paired bootstrap", "cluster bootstrap"),
    5: ("average query expansion", "query expansion (α-QE)", "fully connected layer"),
    6: ("protocol", "Holidays", "Oxford5k", "revisited Oxford", "Easy, Medium, Hard", "UKBench", "N-S score"),
    7: ("local descriptor", "visual word", "VLAD", "Fisher vector", "triangulation embedding", "burstiness",
        "power normalisation", "intra-normalisation"),
    8: ("database-side augmentation", "diffusion", "product quantization", "ADC", "IVF", "recall@k"),
    9: ("contrastive loss", "margin", "triplet loss", "hard negative", "fine-tuning", "learned whitening",
        "validation set"),
    10: ("spatial verification", "SIFT", "ratio test", "MAGSAC++", "inlier", "verified query expansion",
         "k-reciprocal", "Jaccard distance", "multi-scale descriptor"),
}


def glossary_entries(text: str) -> list[tuple[str, str]]:
    return [(m["term"], m["text"]) for m in ENTRY.finditer(text)]


def sort_key(term: str) -> str:
    """What the glossary sorts by: letters and digits only, case-folded ("k-reciprocal" as "kreciprocal")."""
    return re.sub(r"[^0-9a-z]", "", term.casefold())


def test_the_pages_sit_beside_the_lessons():
    assert [p.name for p in reference_pages(NOTEBOOKS)] == list(REFERENCE_PAGES)


def test_the_glossary_is_sorted_and_every_entry_points_to_a_lesson_that_exists():
    entries = glossary_entries(GLOSSARY)
    assert len(entries) >= 60
    terms = [term for term, _ in entries]
    assert terms == sorted(terms, key=sort_key), "the glossary's terms are out of order"
    assert len({sort_key(t) for t in terms}) == len(terms), "a term is defined twice"
    lessons = {p.name for p in LESSONS}
    for term, text in entries:
        targets = [t for t in LINK.findall(text) if t.endswith(".ipynb")]
        assert targets, f"{term!r} names no lesson"
        assert set(targets) <= lessons, f"{term!r} points to a lesson that does not exist: {targets}"
        assert re.search(r"→ \[lesson \d+\]", text), f"{term!r}: end the entry with → [lesson N](NN_name.ipynb)"
    assert len(ENTRY.findall(GLOSSARY)) == GLOSSARY.count("\n* ") + GLOSSARY.startswith("* "), "a malformed entry"


@pytest.mark.parametrize("lesson", sorted(CORE_TERMS))
def test_the_terms_each_lessons_objectives_use_are_defined(lesson):
    terms = [term.casefold() for term, _ in glossary_entries(GLOSSARY)]
    missing = [core for core in CORE_TERMS[lesson] if not any(core.casefold() in term for term in terms)]
    assert not missing, f"lesson {lesson}'s core terms missing from the glossary: {missing}"


def test_the_glossary_rules_catch_a_bad_glossary():
    bad = ("* **zebra** — last. → [lesson 1](01_feature_maps.ipynb)\n"
           "* **apple** — first. → [lesson 99](99_missing.ipynb)\n")
    entries = glossary_entries(bad)
    assert [t for t, _ in entries] != sorted((t for t, _ in entries), key=sort_key)
    assert not set(LINK.findall(entries[1][1])) <= {p.name for p in LESSONS}


def cheat_sheet_functions(text: str) -> list[str]:
    return sorted(set(re.findall(r"`(cbir_lab(?:\.\w+)+)`", text)))


def resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def test_every_function_the_cheat_sheet_names_exists():
    names = cheat_sheet_functions(CHEAT_SHEET)
    assert len(names) >= 45
    for dotted in names:
        assert callable(resolve(dotted)), dotted


def test_every_formula_row_of_the_cheat_sheet_names_its_function():
    rows, header = [], None
    for line in CHEAT_SHEET.splitlines():
        if not line.startswith("|"):
            header = None
        elif header is None:
            header = line
        elif not line.startswith("| ---") and header.rstrip().endswith("| function |"):
            rows.append(line)
    assert len(rows) >= 50
    for row in rows:
        assert re.search(r"`cbir_lab(\.\w+)+`", row.rstrip(" |").rsplit(" | ", 1)[-1]), f"no function for: {row[:80]}"


def test_the_cheat_sheet_gives_the_formulas_the_course_scores_and_pools_with():
    for formula in (r"\frac{p_0(j) + p_1(j)}{2}", r"k_q = \min(\max \rho, k)", r"\sigma = \frac{\min(H,W)}{6}",
                    r"\lfloor (n + 2p - k) / s \rfloor + 1", r"\max(0, \tau - d)^2", r"(I - \alpha S) f = y",
                    r"d^* = (1-\lambda)\, d_J + \lambda\, d", "positives = easy + hard; junk = junk"):
        assert formula in CHEAT_SHEET, formula


@pytest.mark.parametrize("name", REFERENCE_PAGES)
def test_a_page_has_one_title_and_no_skipped_heading_level(name):
    # The book builds with MyST in strict mode: a jump from # to ### is a warning, so an error.
    levels = [len(m) for m in re.findall(r"^(#+) ", (NOTEBOOKS / name).read_text(encoding="utf-8"), flags=re.M)]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:]))


def test_lesson_1_links_both_pages():
    first = nbformat.read(LESSONS[0], as_version=4)
    text = "\n".join(c.source for c in first.cells if c.cell_type == "markdown")
    assert "(cheat_sheet.md)" in text and "(glossary.md)" in text


@pytest.mark.parametrize("name", EDITIONS)
def test_every_edition_holds_the_pages_unchanged(tmp_path, name):
    source = tmp_path / "lessons"
    source.mkdir()
    nbformat.write(new_notebook(cells=[new_markdown_cell("# Toy\n\nSee the [glossary](glossary.md).")]),
                   source / "01_toy.ipynb")
    for page in REFERENCE_PAGES:
        (source / page).write_text(f"# {page}\n\nTHE-PAGE {page}\n", encoding="utf-8")
    written = write_edition(name, tmp_path / name, source)
    assert [p.name for p in written] == ["01_toy.ipynb", *REFERENCE_PAGES]
    for page in REFERENCE_PAGES:
        assert (tmp_path / name / page).read_text(encoding="utf-8") == (source / page).read_text(encoding="utf-8")


def test_an_edition_never_overwrites_a_page_already_there(tmp_path):
    out = tmp_path / "lab"
    out.mkdir()
    (out / "glossary.md").write_text("my notes")
    with pytest.raises(FileExistsError, match="glossary.md"):
        write_edition("student", out)
    assert (out / "glossary.md").read_text() == "my notes"
    assert not (out / LESSONS[0].name).exists()  # nothing was written


def test_the_real_editions_carry_the_pages(tmp_path):
    written = write_edition("student", tmp_path)
    assert [p.name for p in written] == [p.name for p in LESSONS] + list(REFERENCE_PAGES)
