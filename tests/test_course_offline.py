"""The offline check (cbir_lab.course.offline): what a built site would fetch from the network, on pages made here."""

from __future__ import annotations

from cbir_lab.course.offline import find_remote_loads


def test_a_self_contained_site_loads_nothing(tmp_path):
    (tmp_path / "index.html").write_text(
        '<html><head><script src="_static/app.js"></script><link rel="stylesheet" href="_static/book.css"></head>'
        '<body><a href="https://example.org/paper.pdf">a link is not a load</a><img src="img/one.png"></body></html>'
    )
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "book.css").write_text("body { background: url('../img/bg.png'); }")
    assert find_remote_loads(tmp_path) == []


def test_every_kind_of_remote_load_is_named_with_its_page(tmp_path):
    (tmp_path / "lesson").mkdir()
    (tmp_path / "lesson" / "one.html").write_text(
        '<script src="https://cdn.example.org/x.js"></script>'
        '<img srcset="local.png 1x, //cdn.example.org/big.png 2x">'
        '<div style="background: url(http://example.org/bg.png)"></div>'
        "<style>/* url(https://in.a/comment.png) */ @import 'https://fonts.example.org/f.css';</style>"
    )
    (tmp_path / "theme.css").write_text("@font-face { src: url(\"https://fonts.example.org/f.woff2\"); }")
    assert find_remote_loads(tmp_path) == [
        "lesson/one.html: <script src='https://cdn.example.org/x.js'>",
        "lesson/one.html: <img srcset='//cdn.example.org/big.png'>",
        "lesson/one.html: <div style> http://example.org/bg.png",
        "lesson/one.html: <style> https://fonts.example.org/f.css",
        "theme.css: url(https://fonts.example.org/f.woff2)",
    ]
