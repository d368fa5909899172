"""The project's one address (cbir_lab.course.project): every copy matches pyproject.toml, and sync-url rewrites them."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from cbir_lab.cli import main
from cbir_lab.course.editions import lesson_paths
from cbir_lab.course.project import (
    SYNC_HINT,
    checkout_root,
    colab_url,
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


def test_each_lesson_spells_its_own_colab_link_and_the_install_cell_and_the_readme_names_the_placeholder():
    url = project_url(ROOT)
    copies = url_copies(ROOT)
    for path in lesson_paths(ROOT / "notebooks"):
        first = nbformat.read(path, as_version=4).cells[0].source
        assert colab_url(url, path.name) in first, f"{path.name}: its badge does not open {path.name} itself"
        spellings = {c.spelling for c in copies if c.file == f"notebooks/{path.name}"}
        assert {"Colab link", "pip install"} <= spellings, f"{path.name} has only {spellings}"
    readme = [c for c in copies if c.file == "README.md"]
    assert readme, "the README no longer states the project's address"
    text = (ROOT / "README.md").read_text()
    assert "placeholder" in text and "cbir-lab course sync-url" in text


def test_the_address_is_written_in_pyproject_once():
    assert read_project_urls(ROOT / "pyproject.toml") == {"Repository": project_url(ROOT)}
    assert (ROOT / "pyproject.toml").read_text().count(project_url(ROOT)) == 1


def lesson(url: str, name: str):
    badge = new_markdown_cell(
        f"# Lesson\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(url, name)})\n\nSee also [the code]({url}/blob/main/cbir_lab) and {url}.")
    install = new_code_cell(f'if "google.colab" in sys.modules:\n    %pip install -q "cbir-lab @ git+{url}"')
    kept = new_code_cell("print(1)", execution_count=3)
    kept.outputs = [new_output("stream", name="stdout", text=f"printed {url}\n")]
    other = new_markdown_cell("Not ours: https://github.com/old-owner/old-name-extra and https://github.com/someone/else.")
    return new_notebook(cells=[badge, install, kept, other], metadata={"widgets": {"saved": True}})


def make_clone(root: Path, pyproject_url: str, copies_url: str) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "x"\n\n[project.urls]\nRepository = "{pyproject_url}"\n')
    (root / "README.md").write_text(f"# x\n\n```bash\ngit clone {copies_url} && cd x\n```\n\nThe address, {copies_url}, is a placeholder.\n")
    for name in ("01_a.ipynb", "02_b.ipynb"):
        nbformat.write(lesson(copies_url, name), root / "notebooks" / name)
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
