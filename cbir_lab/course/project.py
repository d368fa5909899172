"""The project's one public URL, and every copy of it that cannot ask the package.

``pyproject.toml``'s ``[project.urls]`` ``Repository`` is the one place a person
edits the project's address. A few texts must spell it out all the same: each
lesson's Colab badge and its install cell (``%pip install "cbir-lab @ git+URL"``)
run before the package is installed, and the README is read on the repository's
page. They are rewritten from ``pyproject.toml``, never edited by hand:

* :func:`read_project_urls` / :func:`project_url`: the table and its ``Repository``.
* Where each edition is published, every address derived here and nowhere else: the
  publishing workflow (``.github/workflows/publish.yml``) writes the self-study edition
  to the branch :data:`SELF_STUDY_BRANCH` and the student edition to
  :data:`STUDENT_BRANCH` on each push to :data:`SOURCE_BRANCH`.

  * :func:`colab_url` / :func:`binder_url`: where a lesson opens in Colab or Binder,
    by default its **self-study** edition (the source, ``notebooks/`` on main, holds
    every solution);
  * :func:`branch_url` / :func:`branch_zip_url`: a branch on GitHub, and its zip;
  * :func:`edition_links`: all of them for one address (:class:`EditionLinks`), what the
    book's pages link to.
* :func:`url_copies`: every copy in the README and the lessons, in the spellings that
  name the project: ``git+URL``, ``git clone URL``, a Colab or Binder link
  (``colab.research.google.com/github/OWNER/REPO/blob/BRANCH/…``,
  ``mybinder.org/v2/gh/OWNER/REPO/BRANCH``), and any other occurrence of an address
  one of those spells.
* :func:`stale_url_copies`: those that differ from ``pyproject.toml``, and the Colab and
  Binder links that open another branch than :data:`SELF_STUDY_BRANCH`; a test fails on any.
* :func:`sync_url`: rewrite them (``cbir-lab course sync-url``): lesson cells are edited
  with nbformat, outputs and cell ids kept; nothing is executed. A badge of the older
  form (``…/blob/main/notebooks/NN_x.ipynb``) becomes ``…/blob/self-study/notebooks/NN_x.ipynb``.

:func:`checkout_root` finds the clone these files live in.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import nbformat

from cbir_lab.course.editions import lesson_paths
from cbir_lab.paths import atomic_write

__all__ = [
    "SYNC_HINT",
    "SOURCE_BRANCH",
    "SELF_STUDY_BRANCH",
    "STUDENT_BRANCH",
    "UrlCopy",
    "EditionLinks",
    "checkout_root",
    "read_project_urls",
    "project_url",
    "colab_url",
    "binder_url",
    "branch_url",
    "branch_zip_url",
    "edition_links",
    "url_copies",
    "stale_url_copies",
    "sync_url",
]

#: What to run when a copy is stale.
SYNC_HINT = "run `cbir-lab course sync-url` to rewrite every copy from pyproject.toml's [project.urls]"

#: The branch that holds the source: the lessons complete (the instructor edition), the package, the README.
SOURCE_BRANCH = "main"
#: The branch the publishing workflow writes the self-study edition to: every Colab and Binder link opens it.
SELF_STUDY_BRANCH = "self-study"
#: The branch the publishing workflow writes the student edition to: blank exercises, no outputs.
STUDENT_BRANCH = "student"

_COLAB = "https://colab.research.google.com/github/"
_BINDER = "https://mybinder.org/v2/gh/"
# An address ends at whitespace, a quote, a bracket, a backslash (JSON's escaped quote), or pip's @ / #.
_URL = r"https?://[^\s\"'<>()\[\]\\`@#]+"
# An address ends where no name character follows (a full stop may end the sentence).
_END = r"(?![\w-]|\.[\w-])"
_SPELLINGS = {
    "pip install": re.compile(rf"git\+({_URL})"),
    "git clone": re.compile(rf"git clone\s+({_URL})"),
    # OWNER, REPO, then the branch (a Colab link without blob/BRANCH/ names no branch)
    "Colab link": re.compile(r"https://colab\.research\.google\.com/github/([\w.-]+)/([\w.-]+)/(?:blob/([\w.-]+)/)?"),
    "Binder link": re.compile(r"https://mybinder\.org/v2/gh/([\w.-]+)/([\w.-]+)/([\w.-]+)"),
}
#: The spellings that open a branch: they must open the self-study edition.
_LAUNCH = ("Colab link", "Binder link")


@dataclass(frozen=True)
class UrlCopy:
    """One copy of the project's address.

    Attributes:
        file: the file, relative to the checkout.
        where: the cell (``cell 3``) or line (``line 42``) it is on.
        spelling: ``pip install``, ``git clone``, ``Colab link``, ``Binder link`` or ``link``.
        url: the repository address it names (a Colab or Binder link's ``https://github.com/OWNER/REPO``).
        branch: the branch a Colab or Binder link opens (``""`` for the other spellings, and for a
            Colab link that names none).
    """

    file: str
    where: str
    spelling: str
    url: str
    branch: str = ""

    def __str__(self) -> str:
        return f"{self.file}, {self.where}: {self.spelling} to {self.url}" + (
            f" on branch {self.branch!r}" if self.spelling in _LAUNCH else "")


def checkout_root(start: str | os.PathLike | None = None) -> Path:
    """The clone of the repository: the folder holding ``pyproject.toml``, ``README.md`` and ``notebooks/``.

    Args:
        start: the folder to check (default: the one this package was imported from).

    Raises:
        FileNotFoundError: not a clone (an installed wheel has no README or pyproject.toml).
    """
    root = Path(start) if start is not None else Path(__file__).resolve().parents[2]
    missing = [name for name in ("pyproject.toml", "README.md", "notebooks") if not (root / name).exists()]
    if missing:
        raise FileNotFoundError(f"{root} is not a clone of cbir-lab (no {', '.join(missing)}): "
                                "this command works on the repository; clone it first")
    return root


def read_project_urls(pyproject: str | os.PathLike) -> dict[str, str]:
    """The ``[project.urls]`` table of a ``pyproject.toml``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: it has no ``[project.urls]`` table.
    """
    path = Path(pyproject)
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the table is simple enough to read line by line
        table = re.search(r"^\[project\.urls\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
        urls = dict(re.findall(r'^\s*"?([\w .-]+?)"?\s*=\s*"([^"]*)"', table.group(1), re.MULTILINE)) if table else {}
    else:
        urls = tomllib.loads(text).get("project", {}).get("urls", {})
    if not urls:
        raise ValueError(f'{path} has no [project.urls] table: add one, e.g. Repository = "https://github.com/OWNER/REPO"')
    return {str(k): str(v) for k, v in urls.items()}


def project_url(root: str | os.PathLike | None = None) -> str:
    """The project's address: ``Repository`` in ``[project.urls]`` of the clone's ``pyproject.toml``.

    Raises:
        ValueError: no ``Repository`` entry, or not an http(s) address of a repository (``https://HOST/OWNER/REPO``).
    """
    pyproject = checkout_root(root) / "pyproject.toml"
    url = read_project_urls(pyproject).get("Repository")
    if not url:
        raise ValueError(f"{pyproject}: [project.urls] has no Repository entry, the project's one address")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or len([p for p in parsed.path.split("/") if p]) != 2 or url.endswith("/"):
        raise ValueError(f"{pyproject}: Repository = {url!r} is not a repository's address, https://HOST/OWNER/REPO")
    return url


def _on_github(url: str) -> bool:
    return urlparse(url).netloc.lower() in ("github.com", "www.github.com")


def _github_path(url: str) -> str:
    """``OWNER/REPO`` of a GitHub address."""
    if not _on_github(url):
        raise ValueError(f"Colab and Binder open notebooks from GitHub; {url} is not a GitHub repository")
    return urlparse(url).path.strip("/").removesuffix(".git")


def colab_url(repository: str, notebook: str, branch: str = SELF_STUDY_BRANCH, folder: str = "notebooks") -> str:
    """The address that opens a lesson of the repository in Google Colab: by default its self-study edition.

    Examples:
        >>> colab_url("https://github.com/owner/repo", "01_feature_maps.ipynb")
        'https://colab.research.google.com/github/owner/repo/blob/self-study/notebooks/01_feature_maps.ipynb'
    """
    return f"{_COLAB}{_github_path(repository)}/blob/{branch}/{folder}/{notebook}"


def binder_url(repository: str, notebook: str, branch: str = SELF_STUDY_BRANCH, folder: str = "notebooks") -> str:
    """The address that opens a lesson in JupyterLab on Binder (built from the branch's ``environment.yml``):
    by default its self-study edition.

    Examples:
        >>> binder_url("https://github.com/owner/repo", "01_feature_maps.ipynb")
        'https://mybinder.org/v2/gh/owner/repo/self-study?urlpath=lab/tree/notebooks/01_feature_maps.ipynb'
    """
    return f"{_BINDER}{_github_path(repository)}/{branch}?urlpath=lab/tree/{folder}/{notebook}"


def branch_url(repository: str, branch: str) -> str:
    """A branch of the repository on its host's web page.

    Examples:
        >>> branch_url("https://github.com/owner/repo", "student")
        'https://github.com/owner/repo/tree/student'
    """
    return f"{repository}/tree/{branch}"


def branch_zip_url(repository: str, branch: str) -> str:
    """A zip of a branch of a GitHub repository (folder ``REPO-BRANCH/`` inside).

    Examples:
        >>> branch_zip_url("https://github.com/owner/repo", "student")
        'https://github.com/owner/repo/archive/refs/heads/student.zip'
    """
    _github_path(repository)
    return f"{repository}/archive/refs/heads/{branch}.zip"


@dataclass(frozen=True)
class EditionLinks:
    """Where each edition of the course is published, for one repository address.

    Attributes:
        repository: the address (``[project.urls]`` ``Repository``).
        self_study: the self-study edition's branch, on the web.
        student: the student edition's branch, on the web.
        student_zip: a zip of the student edition's branch.
        source: the branch with the source (the lessons complete), on the web.
    """

    repository: str
    self_study: str
    student: str
    student_zip: str
    source: str

    def colab(self, notebook: str) -> str:
        """The lesson's self-study edition in Colab (:func:`colab_url`)."""
        return colab_url(self.repository, notebook)

    def binder(self, notebook: str) -> str:
        """The lesson's self-study edition on Binder (:func:`binder_url`)."""
        return binder_url(self.repository, notebook)


def edition_links(repository: str) -> EditionLinks:
    """Every address of the published editions, derived from the repository's address.

    Raises:
        ValueError: not a GitHub address (Colab, Binder and branch zips need one).

    Examples:
        >>> links = edition_links("https://github.com/owner/repo")
        >>> links.student_zip
        'https://github.com/owner/repo/archive/refs/heads/student.zip'
        >>> links.binder("02_pooling.ipynb")
        'https://mybinder.org/v2/gh/owner/repo/self-study?urlpath=lab/tree/notebooks/02_pooling.ipynb'
    """
    return EditionLinks(repository, branch_url(repository, SELF_STUDY_BRANCH), branch_url(repository, STUDENT_BRANCH),
                        branch_zip_url(repository, STUDENT_BRANCH), branch_url(repository, SOURCE_BRANCH))


def _texts(root: Path) -> list[tuple[str, str, str]]:
    """(file, where, text) for each line of the README and each cell source of the lessons."""
    texts = [("README.md", f"line {n}", line)
             for n, line in enumerate((root / "README.md").read_text(encoding="utf-8").splitlines(), start=1)]
    for path in lesson_paths(root / "notebooks"):
        nb = nbformat.read(path, as_version=4)
        texts += [(f"notebooks/{path.name}", f"cell {i}", cell.source) for i, cell in enumerate(nb.cells)]
    return texts


def _spelled(text: str) -> list[tuple[str, str, str]]:
    """(spelling, repository address, branch) of each copy spelled in one of the ways that name the project."""
    found = []
    for spelling, pattern in _SPELLINGS.items():
        for match in pattern.finditer(text):
            if spelling in _LAUNCH:
                found.append((spelling, f"https://github.com/{match.group(1)}/{match.group(2)}", match.group(3) or ""))
            else:
                found.append((spelling, match.group(1).rstrip(".,;:"), ""))
    return found


def _mentions(text: str, url: str) -> int:
    """How often ``url`` occurs in ``text`` as an address (not as the start of a longer name)."""
    return len(re.findall(re.escape(url) + _END, text))


def url_copies(root: str | os.PathLike | None = None) -> list[UrlCopy]:
    """Every copy of the project's address in the README and the lessons' cells.

    A copy is spelled ``git+URL``, ``git clone URL``, or as a Colab or Binder link; any other
    occurrence of an address spelled so (a plain link, say) counts too, as ``link``.
    """
    root = checkout_root(root)
    texts = _texts(root)
    copies = [UrlCopy(file, where, spelling, url, branch)
              for file, where, text in texts for spelling, url, branch in _spelled(text)]
    for address in sorted({c.url for c in copies}):
        for file, where, text in texts:
            # git+URL and git clone URL spell the address itself; a Colab or Binder link spells OWNER/REPO only
            literal = sum(1 for spelling, url, _ in _spelled(text) if url == address and spelling not in _LAUNCH)
            copies += [UrlCopy(file, where, "link", address)] * (_mentions(text, address) - literal)
    return copies


def _stale(copy: UrlCopy, url: str) -> bool:
    return copy.url != url or (copy.spelling in _LAUNCH and copy.branch != SELF_STUDY_BRANCH)


def stale_url_copies(root: str | os.PathLike | None = None) -> list[UrlCopy]:
    """The copies of the address that differ from ``pyproject.toml``'s, and the Colab and Binder
    links that open another branch than :data:`SELF_STUDY_BRANCH` (see :data:`SYNC_HINT`)."""
    url = project_url(root)
    return [copy for copy in url_copies(root) if _stale(copy, url)]


def _relaunch(text: str, new: str) -> str:
    """``text`` with every Colab and Binder link opening the self-study branch of ``new``; the lesson
    and folder each link opens are kept."""
    path = _github_path(new)
    text = _SPELLINGS["Colab link"].sub(f"{_COLAB}{path}/blob/{SELF_STUDY_BRANCH}/", text)
    return _SPELLINGS["Binder link"].sub(f"{_BINDER}{path}/{SELF_STUDY_BRANCH}", text)


def _rewrite(text: str, old: set[str], new: str, launch: bool) -> str:
    for address in old:
        text = re.sub(re.escape(address) + _END, new, text)
    return _relaunch(text, new) if launch else text


def sync_url(root: str | os.PathLike | None = None) -> list[Path]:
    """Rewrite every stale copy of the address from ``pyproject.toml`` (``cbir-lab course sync-url``).

    Only cell sources change: the lessons keep their outputs, cell ids and
    metadata, and are not executed.

    Returns:
        The files rewritten (none when every copy already matches).
    """
    root = checkout_root(root)
    new = project_url(root)
    stale = [copy for copy in url_copies(root) if _stale(copy, new)]
    launch = any(copy.spelling in _LAUNCH for copy in stale)
    if launch:
        _github_path(new)  # a Colab or Binder link needs a GitHub address: fail before writing anything
    old = {copy.url for copy in stale if copy.url != new}
    if not stale:
        return []
    written = []
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    if (rewritten := _rewrite(text, old, new, launch)) != text:
        written.append(atomic_write(readme, rewritten))
    for path in lesson_paths(root / "notebooks"):
        nb = nbformat.read(path, as_version=4)
        changed = False
        for cell in nb.cells:
            source = _rewrite(cell.source, old, new, launch)
            changed |= source != cell.source
            cell.source = source
        if changed:
            written.append(atomic_write(path, nbformat.writes(nb) + "\n"))
    return written
