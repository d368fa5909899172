"""The project's one address (cbir_lab.course.project): every copy matches pyproject.toml, and sync-url rewrites them.

The badges open the self-study edition, on the branch the publishing workflow writes it to
(tests/test_workflows.py checks the workflow's side): the URLs are spelled out here by hand
from pyproject.toml's [project.urls], so that a change to the functions that make them shows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from cbir_lab.cli import main
from cbir_lab.course.editions import lesson_paths
from cbir_lab.course.project import (
    SELF_STUDY_BRANCH,
    STUDENT_BRANCH,
    SYNC_HINT,
    binder_url,
    checkout_root,
    colab_url,
    edition_links,
    project_url,
    read_project_urls,
    stale_url_copies,
    sync_url,
    url_copies,
)

ROOT = Path(__file__).resolve().parents[1]
OLD = "https://github.com/old-owner/old-name"
NEW = "https://github.com/new-owner/new-name"


def test_every_copy_of_the_address_matches_pyproject_toml():
    stale = stale_url_copies(ROOT)
    assert not stale, (f"{len(stale)} cop(ies) of the project's address differ from pyproject.toml's "
                       f"{project_url(ROOT)}:\n  " + "\n  ".join(map(str, stale)) + f"\nFix: {SYNC_HINT}")


def repository_from_pyproject() -> tuple[str, str]:
    """(address, OWNER/REPO) as pyproject.toml's [project.urls] spells them, read without the package."""
    import re

    table = (ROOT / "pyproject.toml").read_text().split("[project.urls]", 1)[1]
    url = re.search(r'^Repository = "(https://github\.com/([^/"]+/[^/"]+))"$', table, re.MULTILINE)
    assert url, "pyproject.toml's [project.urls] has no GitHub Repository"
    return url.group(1), url.group(2)


def test_the_edition_links_are_spelled_from_pyproject_toml():
    url, owner_repo = repository_from_pyproject()
    assert project_url(ROOT) == url
    assert (SELF_STUDY_BRANCH, STUDENT_BRANCH) == ("self-study", "student")
    links = edition_links(url)
    assert links.colab("03_pca_whitening.ipynb") == colab_url(url, "03_pca_whitening.ipynb") == (
        f"https://colab.research.google.com/github/{owner_repo}/blob/self-study/notebooks/03_pca_whitening.ipynb")
    assert links.binder("03_pca_whitening.ipynb") == binder_url(url, "03_pca_whitening.ipynb") == (
        f"https://mybinder.org/v2/gh/{owner_repo}/self-study?urlpath=lab/tree/notebooks/03_pca_whitening.ipynb")
    assert links.self_study == f"https://github.com/{owner_repo}/tree/self-study"
    assert links.student == f"https://github.com/{owner_repo}/tree/student"
    assert links.student_zip == f"https://github.com/{owner_repo}/archive/refs/heads/student.zip"
    assert links.source == f"https://github.com/{owner_repo}/tree/main"
    with pytest.raises(ValueError, match="GitHub"):
        edition_links("https://gitlab.com/owner/repo")


def test_each_lesson_spells_its_own_colab_link_and_the_install_cell_and_the_readme_names_the_placeholder():
    url, owner_repo = repository_from_pyproject()
    copies = url_copies(ROOT)
    for path in lesson_paths(ROOT / "notebooks"):
        first = nbformat.read(path, as_version=4).cells[0].source
        badge = f"https://colab.research.google.com/github/{owner_repo}/blob/self-study/notebooks/{path.name}"
        assert badge in first, f"{path.name}: its badge does not open its own self-study edition ({SYNC_HINT})"
        assert "/blob/main/" not in first, f"{path.name}: a link still opens main, the edition with the solutions"
        spellings = {c.spelling for c in copies if c.file == f"notebooks/{path.name}"}
        assert {"Colab link", "pip install"} <= spellings, f"{path.name} has only {spellings}"
    readme = [c for c in copies if c.file == "README.md"]
    assert readme, "the README no longer states the project's address"
    text = (ROOT / "README.md").read_text()
    assert "placeholder" in text and "cbir-lab course sync-url" in text


def test_the_address_is_written_in_pyproject_once():
    assert read_project_urls(ROOT / "pyproject.toml") == {"Repository": project_url(ROOT)}
    assert (ROOT / "pyproject.toml").read_text().count(project_url(ROOT)) == 1


def lesson(url: str, name: str, branch: str = SELF_STUDY_BRANCH):
    badge = new_markdown_cell(
        f"# Lesson\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(url, name, branch)})\n\nSee also [the code]({url}/blob/main/cbir_lab) and {url}.")
    install = new_code_cell(f'if "google.colab" in sys.modules:\n    %pip install -q "cbir-lab @ git+{url}"')
    kept = new_code_cell("print(1)", execution_count=3)
    kept.outputs = [new_output("stream", name="stdout", text=f"printed {url}\n")]
    other = new_markdown_cell("Not ours: https://github.com/old-owner/old-name-extra and https://github.com/someone/else.")
    return new_notebook(cells=[badge, install, kept, other], metadata={"widgets": {"saved": True}})


def make_clone(root: Path, pyproject_url: str, copies_url: str, branch: str = SELF_STUDY_BRANCH) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "x"\n\n[project.urls]\nRepository = "{pyproject_url}"\n')
    (root / "README.md").write_text(f"# x\n\n```bash\ngit clone {copies_url} && cd x\n```\n\nThe address, {copies_url}, is a placeholder.\n")
    for name in ("01_a.ipynb", "02_b.ipynb"):
        nbformat.write(lesson(copies_url, name, branch), root / "notebooks" / name)
    return root


def test_stale_copies_are_named_one_by_one(tmp_path):
    make_clone(tmp_path, NEW, OLD)
    stale = {(c.file, c.where, c.spelling) for c in stale_url_copies(tmp_path)}
    assert stale == {
        ("README.md", "line 4", "git clone"), ("README.md", "line 7", "link"),
        *{(f"notebooks/{n}", where, spelling) for n in ("01_a.ipynb", "02_b.ipynb")
          for where, spelling in (("cell 0", "Colab link"), ("cell 0", "link"), ("cell 0", "link"), ("cell 1", "pip install"))},
    }
    assert all(c.url == OLD for c in stale_url_copies(tmp_path))


def test_sync_url_rewrites_every_copy_and_keeps_outputs_ids_and_metadata(tmp_path, capsys):
    root = make_clone(tmp_path, NEW, OLD)
    before = {p.name: nbformat.read(p, as_version=4) for p in lesson_paths(root / "notebooks")}
    assert main(["course", "sync-url", str(root)]) == 0
    assert "in 3 file(s)" in capsys.readouterr().out
    assert stale_url_copies(root) == []
    assert OLD + " " not in (root / "README.md").read_text() and f"git clone {NEW} " in (root / "README.md").read_text()
    for path in lesson_paths(root / "notebooks"):
        nb, old = nbformat.read(path, as_version=4), before[path.name]
        assert [c.id for c in nb.cells] == [c.id for c in old.cells]
        assert nb.cells[2].outputs == old.cells[2].outputs  # outputs are never touched, nor re-executed
        assert nb.metadata == old.metadata
        assert colab_url(NEW, path.name) in nb.cells[0].source and f"git+{NEW}" in nb.cells[1].source
        assert "old-owner/old-name-extra" in nb.cells[3].source  # another repository's address is left alone
    assert sync_url(root) == []  # nothing left to do
    assert main(["course", "sync-url", str(root)]) == 0
    assert "already matches" in capsys.readouterr().out


def test_sync_url_writes_nothing_for_an_address_colab_cannot_open(tmp_path):
    root = make_clone(tmp_path, "https://gitlab.com/new-owner/new-name", OLD)
    readme = (root / "README.md").read_text()
    with pytest.raises(ValueError, match="GitHub"):
        sync_url(root)
    assert (root / "README.md").read_text() == readme


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a clone"):
        checkout_root(tmp_path)
    make_clone(tmp_path, NEW, NEW)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(ValueError, match=r"\[project.urls\]"):
        project_url(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project.urls]\nHomepage = "https://example.org"\n')
    with pytest.raises(ValueError, match="no Repository"):
        project_url(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[project.urls]\nRepository = "https://example.org/"\n')
    with pytest.raises(ValueError, match="HOST/OWNER/REPO"):
        project_url(tmp_path)


def test_a_copy_of_the_repository_checks_itself(tmp_path):
    """The command works on any clone: here a copy of this one, moved to another address."""
    root = tmp_path / "clone"
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    shutil.copy(ROOT / "README.md", root)
    (root / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text().replace(project_url(ROOT), NEW))
    stale = stale_url_copies(root)
    assert {c.file for c in stale} == {"README.md", *(f"notebooks/{p.name}" for p in lesson_paths(ROOT / "notebooks"))}
    sync_url(root)
    assert stale_url_copies(root) == [] and len(url_copies(root)) == len(url_copies(ROOT))
    for path in lesson_paths(root / "notebooks"):  # only the address changed, byte for byte
        original = (ROOT / "notebooks" / path.name).read_text(encoding="utf-8")
        assert path.read_text(encoding="utf-8") == original.replace(project_url(ROOT), NEW).replace(
            "github/cbir-lab/cbir-lab/", "github/new-owner/new-name/")


def test_without_tomllib_the_table_is_still_read(tmp_path, monkeypatch):
    """Python 3.10 has no tomllib: the [project.urls] table is read line by line."""
    import sys

    monkeypatch.setitem(sys.modules, "tomllib", None)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    assert read_project_urls(tmp_path / "pyproject.toml") == {"Repository": project_url(ROOT)}
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[project.urls]\n"Bug Tracker" = "https://a/b"\n[tool.x]\ny = "z"\n')
    assert read_project_urls(tmp_path / "pyproject.toml") == {"Bug Tracker": "https://a/b"}


def test_an_old_address_off_github_is_rewritten_too(tmp_path):
    root = make_clone(tmp_path, NEW, NEW)
    readme = root / "README.md"
    readme.write_text(readme.read_text() + "\nOr: pip install \"cbir-lab @ git+https://gitlab.com/a/b\"\n")
    assert [c.url for c in stale_url_copies(root)] == ["https://gitlab.com/a/b"]
    assert sync_url(root) == [readme] and stale_url_copies(root) == []


def test_a_badge_that_opens_main_is_stale_and_sync_url_points_it_at_the_self_study_branch(tmp_path):
    """The lessons' badges of before the editions were published: blob/main/notebooks/, the solutions."""
    root = make_clone(tmp_path, NEW, NEW, branch="main")
    first = root / "notebooks" / "01_a.ipynb"
    assert "github/new-owner/new-name/blob/main/notebooks/01_a.ipynb" in first.read_text()
    stale = stale_url_copies(root)
    assert [(c.file, c.where, c.spelling, c.url, c.branch) for c in stale] == [
        ("notebooks/01_a.ipynb", "cell 0", "Colab link", NEW, "main"),
        ("notebooks/02_b.ipynb", "cell 0", "Colab link", NEW, "main")]
    assert "on branch 'main'" in str(stale[0])
    readme = (root / "README.md").read_text()
    assert sync_url(root) == [first, root / "notebooks" / "02_b.ipynb"]  # the README had no badge
    assert (root / "README.md").read_text() == readme
    badge = nbformat.read(first, as_version=4).cells[0].source
    assert ("(https://colab.research.google.com/github/new-owner/new-name/blob/self-study/notebooks/01_a.ipynb)"
            in badge)
    assert "blob/main/notebooks" not in badge and f"{NEW}/blob/main/cbir_lab" in badge  # a link to the source stays
    assert stale_url_copies(root) == [] and sync_url(root) == []


def test_an_old_address_and_an_old_branch_are_rewritten_together_and_binder_links_too(tmp_path):
    root = make_clone(tmp_path, NEW, OLD, branch="main")
    path = root / "notebooks" / "02_b.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(new_markdown_cell(
        "[Binder](https://mybinder.org/v2/gh/old-owner/old-name/main?urlpath=lab/tree/notebooks/02_b.ipynb)"))
    nbformat.write(nb, path)
    assert ("notebooks/02_b.ipynb", "Binder link", OLD, "main") in {
        (c.file, c.spelling, c.url, c.branch) for c in stale_url_copies(root)}
    sync_url(root)
    cells = nbformat.read(path, as_version=4).cells
    assert "(https://colab.research.google.com/github/new-owner/new-name/blob/self-study/notebooks/02_b.ipynb)" in cells[0].source
    assert cells[-1].source == (
        "[Binder](https://mybinder.org/v2/gh/new-owner/new-name/self-study?urlpath=lab/tree/notebooks/02_b.ipynb)")
    assert stale_url_copies(root) == []
