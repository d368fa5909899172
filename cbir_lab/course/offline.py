"""The offline check: everything a built site would load from the network when read.

:func:`find_remote_loads` reads every HTML page and style sheet of a built site
(the course book, :mod:`cbir_lab.course.book`, whose strict build fails on any)
and names each script, style sheet, font, image, frame or medium it would fetch
from another host. Links a reader follows (``<a href>``) are not loads.
"""

from __future__ import annotations

import html.parser
import re
from pathlib import Path

__all__ = ["find_remote_loads"]


class _RemoteLoads(html.parser.HTMLParser):
    """Collects the attributes through which a page would load something from another host."""

    _ATTRS = {"script": ("src",), "link": ("href",), "img": ("src", "srcset"), "source": ("src", "srcset"),
              "iframe": ("src",), "video": ("src", "poster"), "audio": ("src",), "embed": ("src",),
              "object": ("data",), "input": ("src",)}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in self._ATTRS.get(tag, ()):
                urls = [u.strip().split()[0] for u in value.split(",") if u.strip()] if name == "srcset" else [value]
                self.found += [f"<{tag} {name}={u!r}>" for u in urls if _remote(u)]
            elif name == "style":
                self.found += [f"<{tag} style> {u}" for u in _css_remote(value)]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.found += [f"<style> {u}" for u in _css_remote(data)]


def _remote(url: str) -> bool:
    return bool(re.match(r"^\s*(https?:)?//", url, re.IGNORECASE))


def _css_remote(css: str) -> list[str]:
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    urls = re.findall(r"url\(\s*['\"]?([^'\")]+)", css) + re.findall(r"@import\s+['\"]([^'\"]+)", css)
    return [u for u in urls if _remote(u)]


def find_remote_loads(html_dir: str | Path) -> list[str]:
    """Everything a built book would fetch from the network when read.

    Looks at every HTML page (``src``/``href`` of scripts, style sheets, images,
    frames and media; inline styles) and every CSS file (``url(...)``,
    ``@import``). Links a reader follows (``<a href>``) are not loads.

    Returns:
        One line per remote load, ``"page.html: <script src='https://...'>"``; empty when the book is self-contained.
    """
    root = Path(html_dir)
    found = []
    for page in sorted(root.rglob("*.html")):
        parser = _RemoteLoads()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        found += [f"{page.relative_to(root)}: {hit}" for hit in parser.found]
    for css in sorted(root.rglob("*.css")):
        found += [f"{css.relative_to(root)}: url({u})" for u in _css_remote(css.read_text(encoding="utf-8", errors="replace"))]
    return found
