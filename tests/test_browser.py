"""Real-browser tests: the notebooks' widgets in JupyterLab, and the talk mode in Voila.

nbval runs the notebooks without a browser, so a widget that never renders, or a
control that changes nothing on screen, passes it. These tests look at what a user
sees, in headless Debian Chromium driven by Playwright, all on loopback:

* each notebook is copied to a temporary folder, opened in a JupyterLab started for
  the test, and run with *Run → Run All Cells*; every widget view must show its
  controls and an image or figure, and changing each control as a user would (a key
  press on a slider, another dropdown option, another toggle) must change what the
  widget shows;
* ``cbir-lab present`` is started, and the talk mode must load, show the ranking that
  :func:`cbir_lab.index.retrieve` computes, and follow the method switch and
  a click on another query's thumbnail.

A screenshot of each notebook, each widget and each talk-mode step is saved under
``artifacts/screenshots/``. Run them alone with ``pytest -m browser tests/test_browser.py``.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser_support import (
    REPO,
    SCREENSHOTS,
    block_external,
    cell_states,
    controls_of,
    exercise_widget,
    copy_notebooks,
    expected_errors,
    free_port,
    jupyter_env,
    launch_chromium,
    open_notebook,
    require_browser,
    run_all_cells,
    serve,
    shown_images,
    stored_widget_count,
    answer_quick_check,
    is_quick_check,
    is_training_monitor,
    widget_views,
)

pytestmark = pytest.mark.browser

NOTEBOOKS_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("[0-9]*.ipynb"))
#: Voila 0.5's "lab" template links Font Awesome's CSS from a CDN although voila.js bundles it;
#: offline these two requests fail and nothing on the page changes. Nothing else may leave loopback.
VOILA_CDN_CSS = re.compile(r"^https://cdn\.jsdelivr\.net/npm/@fortawesome/fontawesome-free@[^/]+/css/(all|v4-shims)\.min\.css$")
#: Seconds to wait for a control's effect (a retrieval widget may pool and whiten first).
CONTROL_TIMEOUT = 120
#: Buttons may legitimately redraw the same thing (e.g. "show again"): wait less for them.
BUTTON_TIMEOUT = 20


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path


@pytest.fixture(scope="module")
def browser():
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def embedded_features():
    """The embedded set's features, extracted once here: this also fills the on-disk cache that the
    notebooks' kernels and the talk mode read, whatever ran before (in CI the cache starts empty)."""
    require_browser()
    from cbir_lab.datasets import load_dataset
    from cbir_lab.pipeline import extract_dataset

    return extract_dataset(load_dataset(), progress=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory, embedded_features):
    """JupyterLab on a free loopback port with a token, serving *copies* of the notebooks."""
    folder = tmp_path_factory.mktemp("jupyterlab")
    root = folder / "root"
    copy_notebooks(NOTEBOOKS_DIR, root / "notebooks")
    token, port = secrets.token_hex(16), free_port()
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", "--allow-root", f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    url = f"http://127.0.0.1:{port}"
    log = folder / "jupyterlab.log"
    with serve(command, jupyter_env(folder, token), f"{url}/api/status?token={token}", log):
        yield Lab(url, token, root, log)


def _shut_down_sessions(lab: Lab) -> None:
    """End the notebook's kernel (each holds a backbone in memory) before the next notebook."""
    def call(method: str, path: str):
        request = urllib.request.Request(f"{lab.url}{path}", method=method,
                                         headers={"Authorization": f"token {lab.token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read() or b"null")

    for session in call("GET", "/api/sessions"):
        call("DELETE", f"/api/sessions/{session['id']}")


def _screenshot_whole(page, view, path: Path) -> None:
    """Screenshot a widget view whole: a tall widget is clipped by the notebook's scroll area, so the
    window is made tall enough for the moment."""
    size = page.viewport_size
    height = int(view.evaluate("e => e.getBoundingClientRect().height"))
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height + 250)})
    try:
        view.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        view.screenshot(path=str(path))
    finally:
        page.set_viewport_size(size)


def _tracebacks(scope) -> int:
    return scope.evaluate("""root => [...root.querySelectorAll('.jp-OutputArea-output')]
        .filter(e => e.innerText.includes('Traceback (most recent call last)')).length""")


@pytest.mark.parametrize("notebook", NOTEBOOKS or [pytest.param("none", marks=pytest.mark.skip(reason="no notebooks yet"))])
def test_notebook_widgets_render_and_respond(lab, browser, notebook):
    stem = Path(notebook).stem
    source = NOTEBOOKS_DIR / notebook
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    external = block_external(context)
    page = context.new_page()
    try:
        open_notebook(page, lab.url, lab.token, f"notebooks/{notebook}", workspace=f"test-{stem}")
        page.keyboard.press("Control+b")  # hide the file browser: more room for the widgets
        seconds = run_all_cells(page)
        print(f"{notebook}: Run All Cells took {seconds:.0f} s")

        states = cell_states(page)
        nb = json.loads(source.read_text())
        n_code = sum(1 for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip())
        executed = [s for s in states if re.fullmatch(r"\[\d+\]:", s)]
        assert len(executed) >= n_code, f"{notebook}: only {len(executed)} of {n_code} code cells ran: {states}"
        notebook_panel = page.query_selector(".jp-NotebookPanel:not(.lm-mod-hidden)")
        assert _tracebacks(notebook_panel) <= expected_errors(source), f"{notebook}: a cell raised an error"

        views = widget_views(page)
        stored = stored_widget_count(source)
        code = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        if not stored and "cbir_lab.widgets" not in code:
            page.screenshot(path=str(SCREENSHOTS / f"{stem}.png"))
            pytest.skip(f"{notebook} shows no widget")
        assert views, f"{notebook}: no widget rendered"
        if stored:
            assert len(views) == stored, f"{notebook}: {len(views)} widget views in the browser, {stored} in the stored notebook"

        problems = []
        for number, view in enumerate(views, start=1):
            view.scroll_into_view_if_needed()
            if is_quick_check(view):
                feedback = answer_quick_check(page, view)
                print(f"{notebook}, widget {number} (quick check): {feedback}")
                if sum(f.startswith("✓") for f in feedback) != 1 or not all(feedback):
                    problems.append(f"widget {number}: the quick check's feedback per option was {feedback}")
                continue
            if is_training_monitor(view):  # shows, takes no input: its curves and its epoch count must be there
                assert shown_images(view) >= 1, f"{notebook}, widget {number}: the training monitor drew no curves"
                assert "epoch" in view.inner_text(), f"{notebook}, widget {number}: the training monitor shows no epoch"
                print(f"{notebook}, widget {number} (training monitor): {view.inner_text()[:120]!r}")
                continue
            controls = controls_of(view)
            assert controls, f"{notebook}, widget {number}: no control rendered"
            assert shown_images(view) >= 1, f"{notebook}, widget {number}: no image or figure rendered"
            print(f"{notebook}, widget {number}:")
            responsive, found = exercise_widget(page, view, CONTROL_TIMEOUT, BUTTON_TIMEOUT)
            problems += [f"widget {number}: {p}" for p in found]
            if not responsive:
                problems.append(f"widget {number}: no control changed what it shows")
            assert shown_images(view) >= 1, f"{notebook}, widget {number}: the image disappeared"
            assert _tracebacks(view) == 0, f"{notebook}, widget {number}: a callback raised:\n{view.inner_text()[-2000:]}"
            _screenshot_whole(page, view, SCREENSHOTS / f"{stem}-widget{number}.png")
        views[0].scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / f"{stem}.png"))
        assert not problems, f"{notebook}: " + "; ".join(problems)
        # Offline, an external image in a Markdown cell shows as broken: reported, not fatal. Anything
        # else (a script, a style sheet, a font, data) would break the page offline.
        for kind, url in external:
            print(f"{notebook}: OFFLINE WARNING: the page asked for an external {kind}: {url}")
        assert [u for kind, u in external if kind != "image"] == [], f"{notebook}: requests left loopback: {external}"
    finally:
        context.close()
        _shut_down_sessions(lab)


# --- talk mode ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def talk_expected(embedded_features):
    """What the talk mode must show, computed here with the pure functions."""
    require_browser("voila")
    from cbir_lab.index import RetrievalIndex, retrieve

    index = RetrievalIndex(embedded_features)
    start = index.typical_query("GeM")  # the talk opens on the median-AP query
    expected = {
        ("GeM", False, start): retrieve(index, start, "GeM", False, k=12),
        ("SPoC", False, start): retrieve(index, start, "SPoC", False, k=12),
        ("SPoC", True, start): retrieve(index, start, "SPoC", True, k=12),
    }
    # Another query: the best one under SPoC + whitening, so the screenshot shows correct results.
    others = [i for i in range(index.dataset.n_queries) if i != start]
    other = max(others, key=lambda i: retrieve(index, i, "SPoC", True).ap)
    expected[("SPoC", True, other)] = retrieve(index, other, "SPoC", True, k=12)
    features = embedded_features
    return features.dataset, start, other, expected


def _shown(page) -> tuple[int, str, list[int], list[str]]:
    results = page.locator(".cbir-talk-results")
    figures = page.locator(".cbir-talk-result")
    return (
        int(results.get_attribute("data-query")),
        results.get_attribute("data-method"),
        [int(i) for i in figures.evaluate_all("fs => fs.map(f => f.dataset.dbIndex)")],
        figures.evaluate_all("fs => fs.map(f => f.dataset.status)"),
    )


def _wait_for(page, query: int, method: str, timeout: float = CONTROL_TIMEOUT) -> None:
    page.wait_for_selector(f'.cbir-talk-results[data-query="{query}"][data-method="{method}"]', timeout=timeout * 1000)


def test_talk_mode_in_voila(browser, talk_expected, tmp_path):
    dataset, start, other, expected = talk_expected
    first, spoc, whitened, picked = (expected[k] for k in [("GeM", False, start), ("SPoC", False, start),
                                                           ("SPoC", True, start), ("SPoC", True, other)])
    # The steps below must each change the grid, or the test could not tell a dead control.
    first, spoc, whitened, picked = (r.indices.tolist() for r in (first, spoc, whitened, picked))
    first_statuses = list(expected[("GeM", False, start)].statuses)
    picked_statuses = list(expected[("SPoC", True, other)].statuses)
    assert first != spoc and spoc != whitened and whitened != picked

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = jupyter_env(tmp_path / "jupyter", secrets.token_hex(8))
    command = [sys.executable, "-m", "cbir_lab.cli", "present", f"--port={port}", "--no-browser"]  # `cbir-lab present`
    with serve(command, env, port, tmp_path / "voila.log"):
        context = browser.new_context(viewport={"width": 1920, "height": 1080})
        external = block_external(context)
        page = context.new_page()
        try:
            began = time.monotonic()
            page.goto(f"http://127.0.0.1:{port}/", wait_until="commit", timeout=120_000)
            page.wait_for_selector(".cbir-talk-results", timeout=300_000)
            print(f"talk mode loaded in {time.monotonic() - began:.0f} s")

            # It loads: title, one thumbnail per query, the method switch, and GeM's ranking of the median-AP query.
            assert page.locator(".cbir-talk-title").inner_text() == "Image retrieval with CNN features"
            assert page.locator(".cbir-talk-query").count() == dataset.n_queries
            assert page.locator(".cbir-talk-result img").count() == len(first)
            assert _shown(page) == (start, "GeM", first, first_statuses)
            assert page.locator(f".cbir-talk-query-{start}.cbir-talk-selected").count() == 1
            # No code on screen.
            assert page.locator(".jp-InputArea-editor, .cm-editor, .jp-InputPrompt").count() == 0
            assert "TalkWidget" not in page.inner_text("body")
            page.screenshot(path=str(SCREENSHOTS / "talk-1-loaded.png"))

            # Switching the method changes the results to that method's ranking.
            page.locator(".widget-toggle-button", has_text=re.compile(r"^SPoC$")).click()
            _wait_for(page, start, "SPoC")
            assert _shown(page)[2] == spoc
            page.screenshot(path=str(SCREENSHOTS / "talk-2-spoc.png"))
            page.locator(".widget-toggle-button", has_text="PCA-whitened").click()
            _wait_for(page, start, "SPoC + whitening")
            assert _shown(page)[2] == whitened
            page.screenshot(path=str(SCREENSHOTS / "talk-3-spoc-whitened.png"))

            # Picking another query's thumbnail changes the grid to that query's ranking.
            page.locator(f".cbir-talk-query-{other}").click()
            _wait_for(page, other, "SPoC + whitening")
            assert _shown(page) == (other, "SPoC + whitening", picked, picked_statuses)
            assert page.locator(f".cbir-talk-query-{other}.cbir-talk-selected").count() == 1
            assert page.locator(".cbir-talk-selected").count() == 1
            page.screenshot(path=str(SCREENSHOTS / f"talk-4-query{other + 1}.png"))

            assert page.locator(".cbir-talk-error").count() == 0
            unexpected = [u for _, u in external if not VOILA_CDN_CSS.match(u)]
            assert unexpected == [], f"the talk mode requested resources off loopback: {unexpected}"
        finally:
            context.close()
