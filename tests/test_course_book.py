"""The course book (cbir_lab.course.book): a two-lesson course made here, the real book, and the real book in Chromium.

The builder is the [book] extra (in [dev]): without it these tests skip, except in CI
(``$CI`` set), where they fail. Every build is offline; the browser test opens the
built pages from disk and fails on any request that is not for a file.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import os
import re
import socket
import struct
import zipfile
import zlib
from pathlib import Path

import ipywidgets as widgets
import nbformat
import pytest
from ipywidgets.embed import embed_data
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from cbir_lab.cli import main
from cbir_lab.course.book import STUDENT_ZIP, BookBuildError, build_book
from cbir_lab.course.offline import find_remote_loads
from cbir_lab.course.editions import REFERENCE_PAGES, lesson_paths
from cbir_lab.course.project import binder_url, colab_url, project_url
from cbir_lab.course.stills import WIDGET_STATE, WIDGET_VIEW

ROOT = Path(__file__).resolve().parents[1]
URL = "https://github.com/owner/course-repo"
# What the lessons' pages must link to, spelled out by hand from URL: the self-study branch, never main.
COLAB_01 = "https://colab.research.google.com/github/owner/course-repo/blob/self-study/notebooks/01_maths.ipynb"
BINDER_01 = "https://mybinder.org/v2/gh/owner/course-repo/self-study?urlpath=lab/tree/notebooks/01_maths.ipynb"


@pytest.fixture(scope="module", autouse=True)
def builder():
    missing = [m for m in ("sphinx", "myst_nb", "sphinx_book_theme", "mathjax") if importlib.util.find_spec(m) is None]
    if missing:
        message = f'the course book needs {", ".join(missing)}: pip install -e ".[book]"'
        if os.environ.get("CI"):
            pytest.fail(message + "; CI is set, so this is a failure, not a skip")
        pytest.skip(message)


# --------------------------------------------------------------------------- a course made here

README = """# tiny course

**A two-lesson course** for the book's tests. See [the data](data/ATTRIBUTION.md).

## Quick start

`pip install tiny`

## The course

| notebook | what you learn |
| --- | --- |
| `01_maths.ipynb` | a formula and a figure |
| `02_more.ipynb` | a second lesson |

Each lesson ends with its papers.

### The book

BUILD-AND-PUBLISH: for maintainers, not on the landing page.

## For instructors

Give each lesson 30 minutes.

### Before the lab

Install everything the day before.

## The command line

```bash
cbir-lab present   # in a code block: not a paragraph of the talk page
```

`cbir-lab present` serves TALK-MODE-PARAGRAPH with Voila.
"""


def png_bytes(size: int = 4) -> bytes:
    """A small valid grey PNG, made without any image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes([128] * size) for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def solution_meta(grade_id: str, code: bool) -> dict:
    return {"nbgrader": {"grade_id": grade_id, "solution": True, "grade": not code, "locked": False,
                         "schema_version": 3, **({} if code else {"points": 3})}}


def lesson_one(extra_markdown: str = ""):
    figure = new_output("display_data", data={"image/png": base64.b64encode(png_bytes()).decode(), "text/plain": "<Figure>"})
    panel = widgets.VBox([widgets.HTML("<b>WIDGET-HEADER</b>"), widgets.Image(value=png_bytes(8), format="png"),
                          widgets.IntSlider(7, min=0, max=9, description="channel")])
    saved = embed_data(views=[panel], drop_defaults=False)
    view = new_output("display_data", data={WIDGET_VIEW: saved["view_specs"][0], "text/plain": "VBox(...)"})
    plot = new_code_cell("plot()", execution_count=1, outputs=[figure])
    answer = new_code_cell("def size(h, s):\n    ### BEGIN SOLUTION\n    return -(-h // s)  # THE-SOLUTION-CODE\n"
                           "    ### END SOLUTION", metadata=solution_meta("size", code=True))
    written = new_markdown_cell("### BEGIN SOLUTION\nTHE-MODEL-ANSWER, with $x^2$.\n### END SOLUTION",
                                metadata=solution_meta("why", code=False))
    explorer = new_code_cell("Explorer()", execution_count=2, outputs=[view])
    nb = new_notebook(cells=[
        new_markdown_cell(
            "# Lesson 1 — Maths\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url('https://github.com/elsewhere/old', '01_maths.ipynb')})\n\n"
            "The map size:\n\n$$H' = \\lceil H / s \\rceil$$\n" + extra_markdown),
        plot, new_markdown_cell("## Exercise\n\nWrite `size`."), answer,
        new_markdown_cell("## Open question\n\nWhy?"), written, explorer,
        new_markdown_cell("## Papers\n\n* A. Author. *A paper on maps.* 2020."),
    ], metadata={"widgets": {WIDGET_STATE: {"state": saved["manager_state"]["state"], "version_major": 2, "version_minor": 0}}})
    return nb


def lesson_two():
    return new_notebook(cells=[
        new_markdown_cell("# Lesson 2 — More\n\nBack to [lesson 1](01_maths.ipynb)."),
        new_code_cell("answer = 42", execution_count=1, outputs=[new_output("stream", name="stdout", text="42\n")]),
        new_markdown_cell("## Papers\n\n* B. Author. *Another paper.* 2021."),
    ])


KERNEL = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
          "language_info": {"name": "python"}}


def write_course(root: Path, first=None, extra: dict | None = None, readme: str = README, pages: bool = False) -> Path:
    """A clone with two lessons (and ``extra`` ones), saved like the real ones with their kernel's metadata;
    with ``pages``, the reference pages beside them."""
    (root / "notebooks").mkdir(parents=True)
    if pages:
        (root / "notebooks" / "cheat_sheet.md").write_text("# Cheat sheet\n\nTHE-CHEAT-SHEET: $H' = \\lceil H / s \\rceil$, "
                                                          "see [lesson 1](01_maths.ipynb) and the [glossary](glossary.md).\n")
        (root / "notebooks" / "glossary.md").write_text("# Glossary\n\n* **map** — THE-GLOSSARY. → [lesson 1](01_maths.ipynb)\n")
    (root / "pyproject.toml").write_text(f'[project]\nname = "tiny"\n\n[project.urls]\nRepository = "{URL}"\n')
    (root / "README.md").write_text(readme)
    lessons = {"01_maths.ipynb": first or lesson_one(), "02_more.ipynb": lesson_two(), **(extra or {})}
    for name, nb in lessons.items():
        nb.metadata.update(KERNEL)
        nbformat.write(nb, root / "notebooks" / name)
    return root


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    """The two-lesson book, built with every socket refusing to connect: the build needs no network."""
    root = write_course(tmp_path_factory.mktemp("course"))

    def offline(*args, **kwargs):
        raise OSError("the book's build tried to reach the network")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", offline)
        patch.setattr(socket.socket, "connect_ex", offline)
        patch.setattr(socket, "create_connection", offline)
        return build_book(root / "book", root).parent


@pytest.fixture(scope="module")
def book_with_pages(tmp_path_factory) -> Path:
    """The two-lesson book with the reference pages beside its lessons."""
    root = write_course(tmp_path_factory.mktemp("course-pages"), pages=True)
    return build_book(root / "book", root).parent


def page(book: Path, name: str) -> str:
    return (book / name).read_text(encoding="utf-8")


def visible_text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def test_the_landing_page_is_drawn_from_the_readme_and_links_every_lesson(book):
    for name in ("index.html", "01_maths.html", "02_more.html", "instructors.html", "talk.html", "references.html"):
        assert (book / name).is_file(), name
    index = page(book, "index.html")
    assert 'href="01_maths.html"' in index and "Lesson 1 — Maths" in index and "a second lesson" in index
    assert "A two-lesson course" in index and "Each lesson ends with its papers." in index
    assert f"{URL}/blob/main/data/ATTRIBUTION.md" in index  # a file of the repository, not of the book
    assert "BUILD-AND-PUBLISH" not in index  # the README's "The book" subsection is for maintainers
    assert f'pip install "cbir-lab @ git+{URL}"' in visible_text(index)
    assert (book / ".nojekyll").is_file()  # GitHub Pages serves _static/


def test_the_student_edition_is_a_download(book):
    index = page(book, "index.html")
    link = re.search(rf'href="(_downloads/[^"]+/{re.escape(STUDENT_ZIP)})"', index)
    assert link, "no download link to the student edition"
    with zipfile.ZipFile(book / link.group(1)) as archive:
        assert sorted(archive.namelist()) == ["cbir-lab-student/01_maths.ipynb", "cbir-lab-student/02_more.ipynb"]
        nb = nbformat.reads(archive.read("cbir-lab-student/01_maths.ipynb").decode(), as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert "raise NotImplementedError()" in nb.cells[3].source and "THE-SOLUTION-CODE" not in json.dumps(nb)


def test_instructors_talk_and_references_pages(book):
    instructors = page(book, "instructors.html")
    assert "Give each lesson 30 minutes." in instructors and "Before the lab" in instructors
    talk = page(book, "talk.html")
    assert "TALK-MODE-PARAGRAPH" in talk and "not a paragraph" not in talk
    link = re.search(rf'href="{re.escape(URL)}/blob/main/README.md#the-command-line"[^>]*>(.*?)</a>', talk, re.S)
    assert link and visible_text(link.group(1)).strip() == "cbir-lab present"
    references = page(book, "references.html")
    assert "A paper on maps." in references and "Another paper." in references


def test_the_reference_pages_are_pages_linked_from_the_landing_page_and_every_lesson(book, book_with_pages):
    cheat_sheet, glossary = page(book_with_pages, "cheat_sheet.html"), page(book_with_pages, "glossary.html")
    assert "THE-CHEAT-SHEET" in cheat_sheet and r"\lceil H / s \rceil" in cheat_sheet
    assert 'href="01_maths.html"' in cheat_sheet and 'href="glossary.html"' in cheat_sheet
    assert "THE-GLOSSARY" in glossary and 'href="01_maths.html"' in glossary
    index = page(book_with_pages, "index.html")
    assert 'href="cheat_sheet.html"' in index and 'href="glossary.html"' in index
    for lesson in ("01_maths.html", "02_more.html"):
        text = page(book_with_pages, lesson)
        assert 'href="cheat_sheet.html"' in text and 'href="glossary.html"' in text, lesson
    link = re.search(rf'href="(_downloads/[^"]+/{re.escape(STUDENT_ZIP)})"', index)
    with zipfile.ZipFile(book_with_pages / link.group(1)) as archive:
        assert "cbir-lab-student/glossary.md" in archive.namelist()
    # without pages beside the lessons, the book has none and links none
    assert not (book / "glossary.html").exists() and "glossary" not in page(book, "01_maths.html")


def test_maths_is_rendered_by_a_local_mathjax(book):
    lesson = page(book, "01_maths.html")
    assert r"\lceil H / s \rceil" in lesson
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', lesson)
    assert scripts and all(s.startswith("_static/mathjax/") for s in scripts), scripts
    assert (book / "_static" / "mathjax" / "tex-mml-chtml.js").is_file()
    assert list((book / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))


def test_stored_outputs_are_shown_and_nothing_loads_from_the_network(book):
    lesson = page(book, "01_maths.html")
    images = re.findall(r'<img[^>]*src="([^"]+\.png)"', lesson)
    assert images and all((book / src).is_file() for src in images)
    assert "42" in page(book, "02_more.html")
    assert find_remote_loads(book) == []


def test_colab_and_binder_links_come_from_pyproject_and_open_the_self_study_branch(book):
    lesson = page(book, "01_maths.html")
    assert colab_url(URL, "01_maths.ipynb") == COLAB_01 and binder_url(URL, "01_maths.ipynb") == BINDER_01
    assert f'href="{COLAB_01}"' in lesson  # the text link in place of the badge
    assert f'href="{BINDER_01}"' in lesson
    assert "elsewhere/old" not in lesson and "colab-badge.svg" not in lesson
    # the theme's launch buttons (the rocket) open the same branch
    assert re.search(rf'<a href="{re.escape(COLAB_01)}"[^>]*title="Launch on Colab"', lesson)
    assert re.search(rf'<a href="{re.escape(BINDER_01)}"[^>]*title="Launch on Binder"', lesson)
    assert "/blob/main/notebooks/" not in lesson and "course-repo/main?urlpath" not in lesson


def test_the_landing_page_links_the_published_editions_branches(book):
    index = page(book, "index.html")
    assert 'href="https://github.com/owner/course-repo/tree/self-study"' in index
    assert 'href="https://github.com/owner/course-repo/tree/student"' in index
    assert 'href="https://github.com/owner/course-repo/archive/refs/heads/student.zip"' in index


def test_the_book_is_the_self_study_edition_with_solutions_collapsed(book):
    lesson = page(book, "01_maths.html")
    details = re.findall(r'<details class="[^"]*hide above-input[^"]*">(.*?)</details>', lesson, re.S)
    assert any("THE-SOLUTION-CODE" in d for d in details), "the solution is not inside a collapsed <details>"
    assert "Show the solution" in lesson
    assert "NotImplementedError" in lesson  # the student's answer cell comes first
    outside = re.sub(r"<details.*?</details>", "", lesson, flags=re.S)
    assert "THE-SOLUTION-CODE" not in outside and "THE-MODEL-ANSWER" not in outside
    assert re.search(r"<details>\s*<summary>Model answer</summary>.*THE-MODEL-ANSWER", lesson, re.S)
    assert not re.search(r"<details[^>]*\bopen\b", lesson)


def test_a_saved_widget_is_its_last_view_with_a_note(book):
    lesson = page(book, "01_maths.html")
    assert 'class="cbir-still"' in lesson and "WIDGET-HEADER" in lesson and 'value="7"' in lesson
    assert "data:image/png;base64," in lesson
    note = re.search(r'<p class="cbir-still-note">(.*?)</p>', lesson, re.S)
    assert note and "Colab" in note.group(1) and COLAB_01 in note.group(1)
    assert WIDGET_STATE not in lesson and "require.js" not in lesson and "embed-amd" not in lesson


def build(root: Path, **kwargs) -> Path:
    return build_book(root / "book", root, **kwargs)


@pytest.mark.parametrize("broken, expected", [
    ("\nSee [the next lesson](03_missing.ipynb).", "03_missing"),
    ("\n![a figure](figures/missing.png)", "missing.png"),
    ("\n![remote](https://example.org/figure.png)", "example.org/figure.png"),
], ids=["broken-link", "missing-image", "remote-image"])
def test_a_broken_link_a_missing_image_or_a_remote_load_fails_the_build(tmp_path, broken, expected):
    write_course(tmp_path, first=lesson_one(broken))
    with pytest.raises(BookBuildError, match=re.escape(expected)) as error:
        build(tmp_path)
    assert any("01_maths.ipynb" in p or expected in p for p in error.value.problems)


def test_a_lesson_missing_from_the_course_table_fails_the_build(tmp_path):
    write_course(tmp_path, extra={"03_extra.ipynb": new_notebook(cells=[new_markdown_cell("# Lesson 3 — Extra")])})
    with pytest.raises(BookBuildError, match=r"03_extra\.ipynb.*toctree"):
        build(tmp_path)


def test_without_strict_a_broken_link_is_a_warning_and_an_earlier_book_is_replaced(tmp_path):
    write_course(tmp_path, first=lesson_one("\nSee [the next lesson](03_missing.ipynb)."))
    with pytest.warns(UserWarning, match="03_missing"):
        index = build(tmp_path, strict=False)
    (index.parent / "stale.html").write_text("from an earlier build")
    with pytest.warns(UserWarning):
        build(tmp_path, strict=False)
    assert not (index.parent / "stale.html").exists()


def test_clear_errors(tmp_path, monkeypatch, capsys):
    with pytest.raises(FileNotFoundError, match="not a clone"):
        build_book(tmp_path / "book", tmp_path)
    write_course(tmp_path, readme=README.replace("## For instructors", "## Teaching"))
    with pytest.raises(ValueError, match="For instructors"):
        build(tmp_path)
    (tmp_path / "README.md").write_text(README)
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "thesis.tex").write_text("keep me")
    with pytest.raises(FileExistsError, match="occupied"):
        build_book(tmp_path / "occupied", tmp_path)
    assert (tmp_path / "occupied" / "thesis.tex").is_file()
    assert main(["course", "book"]) == 1 and "needs the folder" in capsys.readouterr().err
    import cbir_lab.course.book as book_module

    monkeypatch.setitem(book_module._BUILDER_MODULES, "no_such_builder_module", "no-such-builder")
    with pytest.raises(ImportError, match=r'pip install "cbir-lab\[book\]"'):
        build(tmp_path)


# --------------------------------------------------------------------------- the real book

LESSONS = lesson_paths(ROOT / "notebooks")


@pytest.fixture(scope="module")
def real_book(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real-book") / "book"
    assert main(["course", "book", str(out)]) == 0
    return out


def test_the_real_book_has_every_lesson_in_its_navigation_with_launch_buttons(real_book):
    index = page(real_book, "index.html")
    url = project_url(ROOT)
    for path in LESSONS:
        lesson = page(real_book, f"{path.stem}.html")
        assert f'href="{path.stem}.html"' in index, f"{path.name} is not in the book's navigation"
        assert f'href="{colab_url(url, path.name)}"' in lesson and f'href="{binder_url(url, path.name)}"' in lesson
        views = sum(WIDGET_VIEW in o.get("data", {}) for c in nbformat.read(path, as_version=4).cells
                    for o in c.get("outputs", []))
        assert lesson.count('class="cbir-still-note"') == views, f"{path.name}: a widget without its still and note"
        assert "cbir-still-unknown" not in lesson
    assert find_remote_loads(real_book) == []


def test_the_real_book_offers_the_student_edition(real_book):
    link = re.search(rf'href="(_downloads/[^"]+/{re.escape(STUDENT_ZIP)})"', page(real_book, "index.html"))
    with zipfile.ZipFile(real_book / link.group(1)) as archive:
        assert sorted(archive.namelist()) == sorted(f"cbir-lab-student/{name}" for name in
                                                    [p.name for p in LESSONS] + list(REFERENCE_PAGES))


def test_the_real_book_has_the_reference_pages(real_book):
    index = page(real_book, "index.html")
    for name in REFERENCE_PAGES:
        stem = Path(name).stem
        assert (real_book / f"{stem}.html").is_file() and f'href="{stem}.html"' in index
    assert 'href="04_ranking_and_scoring.html"' in page(real_book, "glossary.html")
    assert 'href="glossary.html"' in page(real_book, "01_feature_maps.html")
    instructors = page(real_book, "instructors.html")
    assert "Which exercise assesses which objective" in instructors and "self-check A" in instructors


# --------------------------------------------------------------------------- in a real browser


@pytest.mark.browser
def test_the_real_book_opens_from_disk_in_chromium_with_rendered_maths_and_no_request_off_the_machine(real_book):
    from tests.browser_support import SCREENSHOTS, launch_chromium, require_browser

    require_browser()
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    requests, external = [], []

    def only_files(route) -> None:
        url = route.request.url
        requests.append(url)
        if url.startswith(("file:", "data:", "blob:", "about:")):
            route.continue_()
        else:
            external.append(url)
            route.abort()

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", only_files)
            view = context.new_page()
            errors = []
            view.on("pageerror", lambda error: errors.append(str(error)))

            view.goto((real_book / "index.html").as_uri())
            nav = view.locator("nav.bd-links a.reference.internal").all_inner_texts()
            for path in LESSONS:
                title = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0].lstrip("# ").strip()
                assert any(title[:20] in t for t in nav), f"{title!r} not in the navigation {nav}"
            assert view.locator("table a[href='01_feature_maps.html']").is_visible()
            view.screenshot(path=str(SCREENSHOTS / "book-landing.png"))

            view.goto((real_book / "01_feature_maps.html").as_uri())
            view.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
            view.evaluate("() => MathJax.startup.promise")
            maths = view.evaluate("""() => ({version: MathJax.version,
                rendered: document.querySelectorAll('mjx-container').length,
                errors: document.querySelectorAll('mjx-merror').length,
                raw: [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length})""")
            assert maths["version"].startswith("3") and maths["rendered"] >= 10, maths
            assert maths["errors"] == 0 and maths["raw"] == 0, maths
            mathjax = [u for u in requests if "tex-mml-chtml.js" in u]
            assert mathjax and all(u.startswith((real_book / "_static" / "mathjax").as_uri()) for u in mathjax), mathjax
            assert view.locator("div.cell_input div.highlight pre").first.is_visible()
            figure = view.locator("div.cell_output img").first
            figure.scroll_into_view_if_needed()
            assert figure.is_visible() and figure.evaluate("img => img.naturalWidth > 0")
            assert view.get_by_role("link", name="Open in Colab").first.is_visible()
            assert view.locator(".dropdown-launch-buttons, [class*='launch']").count() > 0  # the theme's rocket
            view.screenshot(path=str(SCREENSHOTS / "book-lesson-01.png"))
            view.locator("mjx-container[display='true']").first.scroll_into_view_if_needed()
            view.screenshot(path=str(SCREENSHOTS / "book-lesson-01-maths.png"))
            solution = view.locator("details.hide.above-input").first
            solution.scroll_into_view_if_needed()
            assert not solution.evaluate("d => d.open")
            solution.locator("summary").click()
            assert solution.evaluate("d => d.open")
            view.wait_for_timeout(500)  # the theme fades the solution in
            view.screenshot(path=str(SCREENSHOTS / "book-lesson-01-solution.png"))
            still = view.locator(".cbir-still").last
            still.scroll_into_view_if_needed()
            assert still.locator("img").first.evaluate("img => img.naturalWidth > 0")
            view.screenshot(path=str(SCREENSHOTS / "book-lesson-01-widget.png"))
            assert not errors, errors
        finally:
            browser.close()
    assert not external, f"requests that left the machine: {external}"
    assert requests and all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests)
