"""The course as a website: a static HTML book of the self-study edition, built offline.

``cbir-lab course book DIR`` (:func:`build_book`) writes a site that opens from
disk or from any static host, and loads nothing from the network:

* a landing page drawn from the README: its title and introduction, the course
  table with each lesson linked, the editions, and the student edition as a zip
  to download (what ``cbir-lab course student`` writes);
* every lesson in the **self-study** edition (:mod:`cbir_lab.course.editions`),
  never the instructor one, with the outputs stored in the notebook (nothing is
  executed). Solutions stay collapsed: MyST-NB's ``hide-input`` tag (Sphinx
  ignores JupyterLab's ``source_hidden``), under a "Show the solution" bar;
  written model answers are ``<details>`` blocks already;
* each saved widget as its last view (:mod:`cbir_lab.course.stills`), with a note
  that its controls need a running Python and links to run the lesson in Colab;
* the README's "For instructors" section, a page on the talk mode that points to
  ``cbir-lab present``, and the papers the lessons cite;
* the course's reference pages, the cheat sheet and the glossary
  (:data:`cbir_lab.course.editions.REFERENCE_PAGES`, Markdown beside the lessons),
  linked from the landing page and from every lesson's page;
* on each lesson, "Open in Colab" and "Open in Binder": text links in place of
  the notebook's badge (an image on the network), and the theme's launch
  buttons. They open the lesson's **self-study** edition, on the branch the
  publishing workflow writes it to; the landing page links the student
  edition's branch and its zip too. Every address is made from the one in
  ``pyproject.toml`` by :func:`cbir_lab.course.project.edition_links`.

The builder is Sphinx with MyST-NB and the book theme (``pip install
"cbir-lab[book]"``); MathJax 3 comes from the ``django-static-mathjax`` package
(MathJax's own build, on PyPI; Django is not needed) and is copied into the book.

With ``strict=True`` (the default) every Sphinx warning fails the build: a
broken internal link, a missing image, a lesson absent from the table of
contents (the README's course table); so does a page that would load a script,
style sheet, font or image from the network
(:func:`cbir_lab.course.offline.find_remote_loads`).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import html
import importlib.util
import io
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat

from cbir_lab.course.editions import COLAB_BADGE, edition, lesson_paths, reference_pages, write_edition
from cbir_lab.course.offline import find_remote_loads
from cbir_lab.course.project import (
    SELF_STUDY_BRANCH,
    SOURCE_BRANCH,
    STUDENT_BRANCH,
    checkout_root,
    edition_links,
    project_url,
)
from cbir_lab.course.stills import WIDGET_VIEW, still_html, widget_state

__all__ = ["BookBuildError", "STUDENT_ZIP", "build_book"]

#: The student edition's zip, offered on the landing page.
STUDENT_ZIP = "cbir-lab-student.zip"

# Python module → PyPI distribution, for the error that says what to install.
_BUILDER_MODULES = {
    "sphinx": "sphinx",
    "myst_nb": "myst-nb",
    "sphinx_book_theme": "sphinx-book-theme",
    "mathjax": "django-static-mathjax",
}
# The parts of MathJax's es5 build the pages load: the TeX/MathML-in, CommonHTML-out
# component, the TeX extensions it autoloads and the CommonHTML fonts (not the 4 MB
# of speech and exploration tools of the accessibility menu).
_MATHJAX_FILES = ("tex-mml-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2")
_MATHJAX_ENTRY = "mathjax/tex-mml-chtml.js"
_CSS = Path(__file__).with_name("book.css")
# MyST-NB's tags that already hide or remove a cell's input.
_HIDDEN = frozenset({"hide-input", "hide-cell", "remove-input", "remove-cell"})
# Pages the book makes itself: a lesson may not take their names.
_PAGES = ("index", "instructors", "talk", "references", "genindex", "search")
# How the landing page and the lessons name each reference page.
_REFERENCE_TITLES = {"cheat_sheet": "cheat sheet", "glossary": "glossary"}

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_MD_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)((?:\s+\"[^\"]*\")?)\)")


class BookBuildError(RuntimeError):
    """Sphinx failed, or (``strict``) warned, or a page would load something from the network.

    Attributes:
        problems: one line per warning, error or remote load, with the paths of the
            temporary source tree replaced by the files they were made from.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


# --------------------------------------------------------------------------- Markdown


def _headings(lines: Sequence[str]) -> Iterator[tuple[int, int, str]]:
    """(line index, level, title) of each ATX heading outside fenced code."""
    fence: str | None = None
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if m:
            marker = m.group(1)
            if fence is None:
                fence = marker[0] * len(marker)
            elif marker.startswith(fence):
                fence = None
            continue
        if fence is None and (h := _HEADING.match(line)):
            yield i, len(h.group(1)), h.group(2)


def _span(lines: Sequence[str], title: str) -> tuple[int, int, int] | None:
    """(heading line, level, end line) of the first heading matching ``title`` (a regex, any case);
    the section runs up to the next heading as high or higher."""
    heads = list(_headings(lines))
    for n, (i, level, name) in enumerate(heads):
        if re.fullmatch(title, name.strip(), re.IGNORECASE):
            return i, level, next((j for j, lvl, _ in heads[n + 1:] if lvl <= level), len(lines))
    return None


def _section(text: str, title: str) -> tuple[int, str] | None:
    """(level, body) of the section whose heading matches ``title``."""
    lines = text.splitlines()
    if (span := _span(lines, title)) is None:
        return None
    i, level, end = span
    return level, "\n".join(lines[i + 1:end]).strip("\n")


def _without_section(text: str, title: str) -> str:
    """``text`` less the section whose heading matches ``title``."""
    lines = text.splitlines()
    if (span := _span(lines, title)) is None:
        return text
    return "\n".join(lines[:span[0]] + lines[span[2]:]).strip("\n")


def _shift_headings(text: str, by: int) -> str:
    lines = text.splitlines()
    for i, level, title in _headings(lines):
        lines[i] = "#" * min(6, max(1, level + by)) + " " + title
    return "\n".join(lines)


def _paragraphs(text: str, needle: str) -> list[str]:
    """The paragraphs of ``text`` outside fenced code that contain ``needle``."""
    kept, block, fence = [], [], False
    for line in text.splitlines() + [""]:
        if _FENCE.match(line):
            fence = not fence
            block = []
            continue
        if fence:
            continue
        if line.strip():
            block.append(line)
        else:
            if block and needle in "\n".join(block) and not block[0].lstrip().startswith(("#", "|")):
                kept.append("\n".join(block))
            block = []
    return kept


@dataclass(frozen=True)
class _Readme:
    """The README, made to work inside the book."""

    text: str
    root: Path
    repository: str
    branch: str

    def markdown(self, text: str, src: Path) -> str:
        """``text`` with relative links pointing into the repository, and relative images copied into the book.

        A link to a file of the repository is a link (it is not in the book); an
        image is copied next to the page, so that a missing one fails the build
        like any missing image.
        """

        def fix(m: re.Match[str]) -> str:
            bang, label, target, title = m.groups()
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//", target):
                return m.group(0)
            path, _, anchor = target.partition("#")
            if bang:
                image = self.root / path
                if image.is_file():
                    (src / "_readme" / path).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(image, src / "_readme" / path)
                return f"![{label}](_readme/{path}{title})"
            path = path.removeprefix("./") or "README.md"
            url = f"{self.repository}/blob/{self.branch}/{path}" + (f"#{anchor}" if anchor else "")
            return f"[{label}]({url}{title})"

        return _MD_LINK.sub(fix, text)

    def title_and_intro(self) -> tuple[str, str]:
        """The first ``#`` heading and the text up to the next heading."""
        lines = self.text.splitlines()
        heads = list(_headings(lines))
        first, title = (heads[0][0], heads[0][2]) if heads and heads[0][1] == 1 else (-1, "The course")
        end = next((i for i, _, _ in heads if i > first), len(lines))
        return title, "\n".join(lines[first + 1:end]).strip()


@dataclass(frozen=True)
class _CourseTable:
    before: str  # the course section's text before the table
    header: list[str]
    rows: list[list[str]]
    column: int  # the column naming the notebook
    notebooks: list[str]
    after: str  # the section's text after the table

    @classmethod
    def parse(cls, readme: str, where: Path) -> _CourseTable:
        found = _section(readme, r"(the\s+)?course")
        if found is None:
            raise ValueError(f"{where}: no '## The course' section (the book's table of lessons)")
        body = found[1].splitlines()
        start = next((i for i, line in enumerate(body) if line.lstrip().startswith("|")), None)
        if start is None:
            raise ValueError(f"{where}: the 'The course' section has no table")
        end = next((i for i in range(start, len(body)) if not body[i].lstrip().startswith("|")), len(body))
        split = [[c.strip() for c in line.strip().strip("|").split("|")] for line in body[start:end]
                 if not re.fullmatch(r"\s*\|?[\s:|-]+\|?\s*", line)]
        header, rows = split[0], split[1:]
        column, notebooks = -1, []
        for row in rows:
            hit = next(((c, m.group(1)) for c, cell in enumerate(row)
                        if (m := re.fullmatch(r"`?([^`/\\]+\.ipynb)`?", cell))), None)
            if hit is None:
                raise ValueError(f"{where}: a row of the course table names no notebook: {' | '.join(row)!r}")
            column = hit[0] if column < 0 else column
            notebooks.append(hit[1])
        if not notebooks:
            raise ValueError(f"{where}: the course table lists no notebook")
        return cls("\n".join(body[:start]).strip(), header, rows, column, notebooks, "\n".join(body[end:]).strip())

    def linked(self, titles: dict[str, str]) -> str:
        """The table, its notebook column turned into links to the lessons' pages."""
        header = list(self.header)
        header[self.column] = "lesson"
        rows = [list(row) for row in self.rows]
        for row, name in zip(rows, self.notebooks):
            row[self.column] = f"[{titles.get(name, name)}]({name})"
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _toctree(caption: str, pages: Sequence[str]) -> str:
    return "\n".join(["```{toctree}", ":hidden:", f":caption: {caption}", "", *pages, "```"])


# --------------------------------------------------------------------------- the lessons


def _title(nb) -> str | None:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for _, level, title in _headings(cell.source.splitlines()):
                if level == 1:
                    return title
    return None


def _widget_note(colab: str, saved: bool) -> str:
    what = ("A still of this widget as the lesson saved it: its controls need a running Python."
            if saved else "An interactive widget: the lesson did not save its view.")
    return (f'<p class="cbir-still-note">{what} <a href="{html.escape(colab)}">Open the lesson in Colab</a>, '
            "or run it locally (<code>jupyter lab notebooks/</code>), to use it.</p>")


def _reference_links(pages: Sequence[Path]) -> str:
    """" · "-separated links to the reference pages, by their titles."""
    return " · ".join(f"[{_REFERENCE_TITLES.get(p.stem, p.stem.replace('_', ' '))}]({p.name})" for p in pages)


def _book_notebook(nb, colab: str, binder: str, pages: Sequence[Path] = ()):
    """A self-study lesson as the book renders it (a new notebook); ``pages``: the reference pages to link."""
    nb = copy.deepcopy(nb)
    state = widget_state(nb)
    launch = f"[Open in Colab]({colab}) · [Open in Binder]({binder})"
    if pages:
        launch += " · " + _reference_links(pages)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = COLAB_BADGE.sub(launch, cell.source)
            continue
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.setdefault("tags", [])
        if "solution" in tags:
            cell.metadata["mystnb"] = {"code_prompt_show": "Show the solution", "code_prompt_hide": "Hide the solution"}
        if cell.metadata.get("jupyter", {}).get("source_hidden") and not _HIDDEN & set(tags):
            tags.append("hide-input")  # JupyterLab's collapsed input, which Sphinx ignores
        outputs = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(out)
                continue
            still = still_html(str(view.get("model_id", "")), state)
            page = (still or "") + _widget_note(colab, still is not None)
            outputs.append(nbformat.v4.new_output("display_data", data={"text/html": page, "text/plain": "A widget"}))
        if "outputs" in cell:
            cell.outputs = outputs
    nb.metadata.pop("widgets", None)  # else MyST-NB would load the widget manager from a CDN
    return nb


# --------------------------------------------------------------------------- the build


def _require_builder() -> Path:
    """Check that the builder's packages are there; returns MathJax's ``es5`` folder."""
    missing = [dist for module, dist in _BUILDER_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ImportError(f"building the course book needs {', '.join(missing)}, which are not installed: "
                          'pip install "cbir-lab[book]" (or pip install -e ".[book]" in a clone)')
    spec = importlib.util.find_spec("mathjax")
    for location in (spec.submodule_search_locations or []) if spec else []:
        es5 = Path(location) / "static" / "mathjax" / "es5"
        if (es5 / "tex-mml-chtml.js").is_file():
            return es5
    raise ImportError("the installed 'mathjax' package has no static/mathjax/es5/tex-mml-chtml.js: it is not "
                      'django-static-mathjax\'s MathJax 3: pip install "cbir-lab[book]"')


def _copy_mathjax(es5: Path, static: Path) -> None:
    dest = static / "mathjax"
    for rel in _MATHJAX_FILES:
        if (es5 / rel).is_dir():
            shutil.copytree(es5 / rel, dest / rel)
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(es5 / rel, dest / rel)
    if (es5.parent / "LICENSE").is_file():
        shutil.copyfile(es5.parent / "LICENSE", dest / "LICENSE")


def _clear_out_dir(out_dir: Path) -> None:
    """Make ``out_dir`` an empty folder; only an earlier book is ever deleted."""
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} is a file, not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / ".buildinfo").is_file():
            raise FileExistsError(f"{out_dir} is not empty and holds no earlier book (no .buildinfo): "
                                  "give a new or empty folder; nothing was written")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def _conf_py(title: str, repository: str, launch_branch: str) -> str:
    settings = {
        "project": title,
        "author": "the cbir-lab developers",
        "extensions": ["myst_nb", "sphinx.ext.mathjax", "sphinx.ext.githubpages"],  # githubpages: .nojekyll
        "root_doc": "index",
        "exclude_patterns": ["_build", "**.ipynb_checkpoints"],
        "nb_execution_mode": "off",  # the outputs stored in the lessons, never executed
        "nb_ipywidgets_js": {},  # widgets are stills: no widget manager (which would come from a CDN)
        "nb_merge_streams": True,
        "myst_enable_extensions": ["dollarmath", "amsmath"],
        "myst_heading_anchors": 3,
        "mathjax_path": _MATHJAX_ENTRY,  # MathJax 3 from _static, not from a CDN
        "nitpicky": True,  # with -W, an unresolved reference fails the build too
        "html_theme": "sphinx_book_theme",
        "html_title": title,
        "html_static_path": ["_static"],
        "html_css_files": [_CSS.name],
        "html_show_copyright": False,
        "html_last_updated_fmt": None,
        "html_theme_options": {
            "repository_url": repository,
            "repository_branch": launch_branch,  # the launch buttons open this branch's lessons
            "path_to_docs": "notebooks",  # a lesson's page is notebooks/<name>.ipynb in the repository
            "use_repository_button": True,
            "use_download_button": True,
            "home_page_in_toc": True,
            "show_toc_level": 2,
            "launch_buttons": {"colab_url": "https://colab.research.google.com",
                               "binderhub_url": "https://mybinder.org", "notebook_interface": "jupyterlab"},
        },
    }
    lines = ['"""Sphinx configuration of the cbir-lab course book, written by cbir_lab.course.book."""', ""]
    return "\n".join(lines + [f"{name} = {value!r}" for name, value in settings.items()]) + "\n"


def _run_sphinx(src: Path, out: Path, work: Path, strict: bool) -> tuple[int, str, str]:
    """Run sphinx-build in this process; returns (exit status, warnings, console output)."""
    from sphinx.cmd.build import build_main

    warning_file = work / "warnings.txt"
    args = ["-b", "html", "-E", "-a", "-q", "-N", "-w", str(warning_file), "-d", str(work / "doctrees")]
    if strict:
        args += ["-W", "--keep-going"]
    console = io.StringIO()
    with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the theme's use of APIs that Sphinx will remove
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        status = build_main([*args, str(src), str(out)])
    text = warning_file.read_text(encoding="utf-8") if warning_file.is_file() else ""
    return status, text, console.getvalue()


def _student_zip(notebooks: Path, dest: Path) -> None:
    """The student edition (``cbir-lab course student``) as a zip, its lessons in a folder ``cbir-lab-student/``."""
    with tempfile.TemporaryDirectory(prefix="cbir-lab-student-") as tmp:
        written = write_edition("student", Path(tmp) / "cbir-lab-student", source=notebooks)
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in written:
                archive.write(path, f"cbir-lab-student/{path.name}")


def build_book(out_dir: str | Path, root: str | Path | None = None, *, strict: bool = True,
               branch: str = SOURCE_BRANCH) -> Path:
    """Build the course book, static HTML that needs no network to read.

    Writes a Sphinx source tree into a temporary folder (``conf.py``; ``index.md``
    from the README; each lesson in the self-study edition; ``instructors.md``,
    ``talk.md`` and ``references.md``; the reference pages found beside the lessons; MathJax, the style sheet and the student
    edition's zip) and runs Sphinx on it, in this process.

    Args:
        out_dir: the folder for the HTML: new, empty, or an earlier book (replaced whole).
        root: the clone (``README.md`` with ``## The course`` and ``## For instructors``,
            ``pyproject.toml`` with the address, ``notebooks/``); default, the one
            this package was imported from.
        strict: fail on any Sphinx warning and on any load from the network; without it
            they are a Python warning and the book is written.
        branch: the branch holding the source: the README's links to files of the repository
            point there. Colab, Binder and the theme's launch buttons open the self-study
            edition's branch, and the landing page links the student edition's
            (:func:`cbir_lab.course.project.edition_links`).

    Returns:
        The book's ``index.html``.

    Raises:
        ImportError: the builder is not installed (``pip install "cbir-lab[book]"``).
        FileNotFoundError: ``root`` is not a clone, or has no lessons.
        FileExistsError: ``out_dir`` holds files that are not an earlier book.
        ValueError: the README lacks the course table or (``strict``) the instructors'
            section, a lesson takes a name the book uses, or the address is not on GitHub.
        BookBuildError: Sphinx failed or (``strict``) warned, or a page would load from
            the network; ``problems`` lists each.
    """
    es5 = _require_builder()
    root = checkout_root(root)
    out_dir = Path(out_dir).expanduser()
    lessons = lesson_paths(root / "notebooks")
    if not lessons:
        raise FileNotFoundError(f"{root / 'notebooks'} holds no lesson (NN_name.ipynb)")
    clash = [p.name for p in lessons if p.stem in _PAGES]
    if clash:
        raise ValueError(f"{', '.join(clash)} takes a page name the book makes itself")
    repository = project_url(root)
    links = edition_links(repository)
    readme_path = root / "README.md"
    readme = _Readme(readme_path.read_text(encoding="utf-8"), root, repository, branch)
    table = _CourseTable.parse(readme.text, readme_path)
    title, intro = readme.title_and_intro()
    instructors = _section(readme.text, r"for\s+instructors")
    if instructors is None and strict:
        raise ValueError(f"{readme_path}: no '## For instructors' section (the book's page for instructors)")

    _clear_out_dir(out_dir)
    with tempfile.TemporaryDirectory(prefix="cbir-lab-book-") as tmp:
        work = Path(tmp)
        src = work / "src"
        static = src / "_static"
        static.mkdir(parents=True)

        pages = reference_pages(root / "notebooks")
        for page in pages:  # the lessons link to them by these names
            shutil.copyfile(page, src / page.name)
        titles, papers = {}, {}
        for path in lessons:
            nb = edition(nbformat.read(path, as_version=4), "self-study", path.name)
            nb = _book_notebook(nb, links.colab(path.name), links.binder(path.name), pages)
            nbformat.write(nb, src / path.name)
            titles[path.name] = _title(nb) or path.stem
            text = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
            if found := _section(text, r"papers|references|bibliography"):
                papers[path.name] = _shift_headings(found[1], 2 - found[0])

        md = functools.partial(readme.markdown, src=src)
        install = f'pip install "cbir-lab @ git+{repository}"'
        _student_zip(root / "notebooks", src / STUDENT_ZIP)
        index = [
            f"# {title}", md(intro),
            "## The course", md(table.before), table.linked(titles),
            md(_without_section(table.after, r"the\s+book")),  # how to build and publish the book: not for its readers
            "## Run the lessons",
            f"Each lesson's page opens the lesson's self-study edition in Colab or Binder (the links under its "
            f"title, or the rocket at the top of the page): the branch [`{SELF_STUDY_BRANCH}`]({links.self_study}) "
            f"of the repository. To run them on your machine: `{install}`, then `jupyter lab` "
            f"in a folder of lessons (a clone's `notebooks/`, or an edition written by `cbir-lab course`). "
            f"The source is at <{repository}>.",
            f"**For a lab:** {{download}}`the student edition <{STUDENT_ZIP}>` (a zip of what "
            f"`cbir-lab course student` writes: the {len(lessons)} lessons with blank exercises and no outputs), "
            f"also the branch [`{STUDENT_BRANCH}`]({links.student}) of the repository "
            f"([download it as a zip]({links.student_zip})).",
            "Also: [for instructors](instructors.md) · [the talk mode](talk.md) · [references](references.md)"
            + (" · " + _reference_links(pages) if pages else "") + ".",
            _toctree("Lessons", [Path(name).stem for name in table.notebooks]),
            _toctree("Course", ["instructors", "talk", "references", *(page.stem for page in pages)]),
        ]
        (src / "index.md").write_text("\n\n".join(p for p in index if p) + "\n", encoding="utf-8")

        body = (md(_shift_headings(instructors[1], 1 - instructors[0])) if instructors
                else "*The README has no 'For instructors' section yet.*")
        (src / "instructors.md").write_text(f"# For instructors\n\n{body}\n", encoding="utf-8")

        talk = [
            "# Talk mode",
            "The talk mode is a full-screen retrieval demo for a projector, with no code on screen. It runs a "
            "live Python kernel, so a static page cannot show it: start it on your machine with "
            f"[`cbir-lab present`]({repository}/blob/{branch}/README.md#the-command-line):",
            f'```bash\npip install "cbir-lab[talk] @ git+{repository}"\ncbir-lab present\n```',
            *(md(p) for p in _paragraphs(readme.text, "`cbir-lab present")),
        ]
        (src / "talk.md").write_text("\n\n".join(talk) + "\n", encoding="utf-8")

        refs = ["# References", "The papers each lesson cites, lesson by lesson."]
        for name in table.notebooks:
            if name in papers:
                refs += [f"## {titles[name]}", f"From [{titles[name]}]({name}).", papers[name]]
        (src / "references.md").write_text("\n\n".join(refs) + "\n", encoding="utf-8")

        _copy_mathjax(es5, static)
        shutil.copyfile(_CSS, static / _CSS.name)
        (src / "conf.py").write_text(_conf_py(title, repository, SELF_STUDY_BRANCH), encoding="utf-8")
        status, warning_text, console = _run_sphinx(src, out_dir, work, strict)

        def origin(line: str) -> str:
            for path in lessons:
                line = line.replace(str(src / path.name), f"{path} (self-study edition)")
            for page in ("index.md", "instructors.md", "talk.md", "references.md"):
                line = line.replace(str(src / page), f"{page} (made from {readme_path})")
            for page in pages:
                line = line.replace(str(src / page.name), str(page))
            return line.replace(str(src), "<book source>")

        problems = [origin(line) for line in warning_text.splitlines() if line.strip()]
        if status != 0:
            detail = problems or [origin(line) for line in console.splitlines() if line.strip()][-20:]
            raise BookBuildError(f"Sphinx could not build the book into {out_dir} (exit status {status}"
                                 + (", warnings are errors when strict" if strict and problems else "")
                                 + "):\n  " + "\n  ".join(detail), detail)

    remote = find_remote_loads(out_dir)
    if remote and strict:
        raise BookBuildError(f"the book in {out_dir} would load from the network:\n  " + "\n  ".join(remote), remote)
    if remote or problems:
        warnings.warn(f"the book in {out_dir} was built with {len(problems)} Sphinx warning(s) and {len(remote)} "
                      "remote load(s):\n  " + "\n  ".join(problems + remote), stacklevel=2)
    return out_dir / "index.html"
