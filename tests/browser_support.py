"""Support for the real-browser tests: servers on loopback, headless Chromium, widget probes.

* :func:`require_browser`: skip (locally) or fail (when ``$CI`` is set) without Debian's
  ``chromium`` or the ``playwright`` Python package. Nothing here downloads a browser.
* :func:`jupyter_env`: an isolated Jupyter environment in a temporary folder (fresh
  JupyterLab settings and workspaces, a ``python3`` kernel spec that is *this* Python).
* :func:`serve`: a server process in its own process group, waited for, and killed
  with its kernels however the test ends.
* :func:`launch_chromium` / :func:`block_external`: Chromium with the flags that keep it
  off the network, and a request filter that records any non-loopback request.
* JupyterLab helpers (:func:`open_notebook`, :func:`run_all_cells`, :func:`widget_views`,
  :func:`fingerprint`, :func:`change_control`, :func:`exercise_widget`), driven through the
  menus, the mouse and the keyboard, since JupyterLab 4 does not expose ``window.jupyterapp``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "REPO",
    "SCREENSHOTS",
    "copy_notebooks",
    "require_browser",
    "free_port",
    "jupyter_env",
    "serve",
    "launch_chromium",
    "block_external",
    "open_notebook",
    "run_all_cells",
    "cell_states",
    "widget_views",
    "controls_of",
    "is_enabled",
    "exercise_widget",
    "fingerprint",
    "shown_images",
    "wait_settled",
    "change_control",
    "stored_widget_count",
    "expected_errors",
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage",
]
REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
#: Marks every process we start (servers and their kernels), so that cleanup kills exactly those.
MARKER_ENV = "CBIR_LAB_BROWSER_TEST_RUN"


def require_browser(*modules: str) -> None:
    """Skip unless Chromium, playwright and ``modules`` are installed; fail instead when ``$CI`` is set."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    for module in ("playwright", *modules):
        if importlib.util.find_spec(module) is None:
            missing.append(f"the {module} package (pip install {module})")
    if missing:
        message = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + "; CI is set, so this is a failure, not a skip")
        pytest.skip(message)


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))


def jupyter_env(folder: Path, marker: str) -> dict[str, str]:
    """Environment for a Jupyter server that touches nothing of the user's.

    Fresh JupyterLab settings (no news or update checks, all cells attached to the
    page, no autosave) and workspaces; config, runtime and IPython folders in
    ``folder``; a ``python3`` kernel spec that runs this interpreter, first on
    ``JUPYTER_PATH``. ``CBIR_LAB_DATA`` / ``CBIR_LAB_CACHE`` are inherited, so the
    notebooks reuse the feature cache.
    """
    settings = folder / "lab-settings"
    _write_json(settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings",
                {"fetchNews": "false", "checkForUpdates": False})
    # 'none': every cell is in the DOM, so widgets below the fold render and can be found.
    _write_json(settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings",
                {"windowingMode": "none"})
    _write_json(settings / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings",
                {"autosave": False})
    data = folder / "jupyter-data"
    _write_json(data / "kernels" / "python3" / "kernel.json",
                {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                 "display_name": "Python 3 (ipykernel)", "language": "python"})
    for name in ("workspaces", "config", "runtime", "ipython"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(folder / "config"),
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "JUPYTER_PATH": str(data),
        "IPYTHONDIR": str(folder / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        MARKER_ENV: marker,
    })
    env.pop("JUPYTER_DATA_DIR", None)
    # CI exports MPLBACKEND=Agg for headless runs; a kernel must keep its inline backend, or plt.show()
    # in a widget's Output draws nothing in the browser.
    env.pop("MPLBACKEND", None)
    return env


def _marked_pids(marker: str) -> list[int]:
    """Processes whose environment carries ``MARKER_ENV=marker`` (our servers and kernels)."""
    needle = f"{MARKER_ENV}={marker}".encode() + b"\0"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _kill(process: subprocess.Popen, marker: str) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # Kernels run in sessions of their own: end any that outlived the server, by pid.
    for pid in _marked_pids(marker):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def serve(command: list[str], env: dict[str, str], ready_url: str | int, log: Path, timeout: float = 120) -> Iterator[subprocess.Popen]:
    """Run a server in a new process group until ``ready_url`` answers 200 (or, for a port number, until it
    accepts connections); kill it and its kernels on exit, however the block ends."""
    marker = env[MARKER_ENV]
    with open(log, "wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{command[2:4]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
                if _answers(ready_url):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
            yield process
        finally:
            _kill(process, marker)


def _answers(ready: str | int) -> bool:
    try:
        if isinstance(ready, int):
            socket.create_connection(("127.0.0.1", ready), timeout=2).close()
            return True
        with urllib.request.urlopen(ready, timeout=5) as answer:
            return answer.status == 200
    except OSError:
        return False


def launch_chromium(playwright):
    """Headless Debian Chromium (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def block_external(context) -> list[tuple[str, str]]:
    """Abort every request that leaves the loopback interface, as if offline.

    Returns the (growing) list of ``(resource type, url)`` of the aborted requests.
    """
    external: list[tuple[str, str]] = []

    def handle(route) -> None:
        url = route.request.url
        if re.match(r"^(https?|wss?)://(127\.0\.0\.1|localhost)(:\d+)?/", url) or url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            external.append((route.request.resource_type, url))
            route.abort()

    context.route("**/*", handle)
    return external


# --- JupyterLab -----------------------------------------------------------------------------------

def _dismiss_popups(page) -> None:
    # The "get notified about news" toast (if settings did not stop it) covers the bottom right.
    for label in ("No", "Dismiss"):
        button = page.locator(".jp-toast-button", has_text=label)
        if button.count():
            with contextlib.suppress(Exception):
                button.first.click(timeout=1000)


def open_notebook(page, base_url: str, token: str, path: str, workspace: str) -> None:
    """Open a notebook alone in a fresh JupyterLab workspace and wait until its kernel is idle."""
    # A workspace of its own, reset: JupyterLab would otherwise reopen the previous test's notebook too.
    page.goto(f"{base_url}/lab/workspaces/{workspace}/tree/{path}?token={token}&reset")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell", timeout=90_000)
    wait_kernel_idle(page, timeout=90)
    _dismiss_popups(page)


def kernel_status(page) -> str:
    """The notebook's kernel status as the toolbar shows it ("idle", "busy", ...)."""
    indicator = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator").first
    if indicator.count():
        status = indicator.get_attribute("data-status")
        if status:
            return status
    text = page.locator(".jp-KernelStatus, .jp-StatusBar-TextItem").all_inner_texts()
    return next((t.split("|")[-1].strip().lower() for t in text if "|" in t), "unknown")


def wait_kernel_idle(page, timeout: float = 120, quiet: float = 1.0) -> None:
    """Wait until the kernel has been idle for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    idle_since = None
    while time.monotonic() < deadline:
        if kernel_status(page) == "idle":
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= quiet:
                return
        else:
            idle_since = None
        page.wait_for_timeout(250)
    raise TimeoutError(f"kernel not idle after {timeout:.0f} s (status {kernel_status(page)!r})")


def menu_command(page, menu: str, command: str) -> None:
    """Click ``menu`` in the menu bar, then the item running ``command`` (Lumino's data-command)."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{re.escape(menu)}$")).first.click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').first.click()


def cell_states(page) -> list[str]:
    """Each code cell's prompt text, e.g. ``"[3]:"``, ``"[*]:"`` or ``"[ ]:"``."""
    return page.eval_on_selector_all(
        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt",
        "els => els.map(e => e.textContent.trim())",
    )


def _started(page) -> bool:
    return any(re.fullmatch(r"\[(\*|\d+)\]:", s) for s in cell_states(page)) or kernel_status(page) == "busy"


def run_all_cells(page, timeout: float = 600) -> float:
    """Clear all outputs, then Run → Run All Cells; wait until done. Returns the seconds it took."""
    menu_command(page, "Edit", "editmenu:clear-all")
    start = time.monotonic()
    for _attempt in range(3):
        menu_command(page, "Run", "runmenu:run-all")
        # The menu item does nothing while the kernel is still connecting: check that cells started.
        for _ in range(20):
            page.wait_for_timeout(500)
            if _started(page):
                break
        else:
            page.keyboard.press("Escape")
            wait_kernel_idle(page, timeout=60)
            continue
        break
    deadline = start + timeout
    while time.monotonic() < deadline:
        states = cell_states(page)
        if not any("*" in s for s in states) and kernel_status(page) == "idle":
            page.wait_for_timeout(1000)  # let the last outputs and widget views render
            if not any("*" in s for s in cell_states(page)) and kernel_status(page) == "idle":
                return time.monotonic() - start
        page.wait_for_timeout(500)
    raise TimeoutError(f"Run All Cells not finished after {timeout:.0f} s: {cell_states(page)}")


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: Controls a user changes, by kind; each is found inside a widget view.
CONTROL_SELECTORS = {
    "slider": ".widget-slider",
    "dropdown": ".widget-dropdown select",
    "toggle-buttons": ".widget-toggle-buttons",
    "radio": ".widget-radio-box",
    "select": ".widget-select select",
    "checkbox": ".widget-checkbox input[type=checkbox]",
    "toggle-button": "button.widget-toggle-button:not(.widget-toggle-buttons button)",
    "button": "button.widget-button",
}


def widget_views(page):
    """The top-level widget views of the open notebook (not those nested in an Output widget)."""
    handles = page.query_selector_all(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output > .jupyter-widgets")
    return [h for h in handles if not h.evaluate("e => !!e.parentElement.closest('.jupyter-widgets')")]


def controls_of(view) -> list[tuple[str, object]]:
    """(kind, element) for each visible control in a widget view, in page order (disabled ones too)."""
    found = []
    for kind, selector in CONTROL_SELECTORS.items():
        for element in view.query_selector_all(selector):
            if element.is_visible():
                found.append((kind, element))
    found.sort(key=lambda item: item[1].evaluate(
        "e => { const r = e.getBoundingClientRect(); return r.top * 10000 + r.left; }"))
    return found


def is_enabled(element) -> bool:
    """False for a disabled control (ipywidgets disables e.g. GeM's p while MAC is selected)."""
    # A disabled <select>/<input>/<button> has .disabled; a disabled slider's noUi target or a disabled
    # toggle-buttons group carries a [disabled] child.
    return not element.evaluate("e => e.disabled || !!e.closest('.mod-disabled') || !!e.querySelector('[disabled]')")


_FINGERPRINT_JS = """view => {
  const parts = [];
  for (const img of view.querySelectorAll('img')) parts.push('img:' + img.src);
  for (const svg of view.querySelectorAll('svg')) parts.push('svg:' + svg.outerHTML);
  for (const c of view.querySelectorAll('canvas')) { try { parts.push('canvas:' + c.toDataURL()); } catch (e) {} }
  for (const el of view.querySelectorAll('.widget-output, .widget-html-content')) parts.push('text:' + el.innerText);
  for (const el of view.querySelectorAll('[style*="background-image"]')) parts.push('bg:' + el.style.backgroundImage);
  return parts.join('\\n');
}"""


def fingerprint(view) -> str:
    """A digest of what a widget view shows: its images, figures and output text (not the controls)."""
    return hashlib.sha256(view.evaluate(_FINGERPRINT_JS).encode()).hexdigest()


def shown_images(view) -> int:
    """How many visible images, SVG figures or canvases a widget view shows."""
    return view.evaluate("""view => [...view.querySelectorAll('img, svg.main-svg, .widget-output svg, canvas')]
        .filter(e => { const r = e.getBoundingClientRect(); return r.width > 20 && r.height > 20; }).length""")


def wait_settled(page, view, before: str, timeout: float = 60) -> str:
    """Wait for the view to differ from ``before`` (or time out), then for it and the kernel to be still."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and fingerprint(view) == before:
        page.wait_for_timeout(250)
    wait_kernel_idle(page, timeout=max(5.0, deadline - time.monotonic()), quiet=0.75)
    last = fingerprint(view)
    while time.monotonic() < deadline:
        page.wait_for_timeout(500)
        now = fingerprint(view)
        if now == last:
            return now
        last = now
    return last


def _slider_value(element) -> str:
    readout = element.query_selector(".widget-readout")
    return (readout.inner_text() if readout else "") + "|" + (element.query_selector(".noUi-handle").get_attribute("aria-valuenow") or "")


def change_control(page, kind: str, element) -> str:
    """Change a control as a user would; returns a short description of what was done."""
    element.scroll_into_view_if_needed()
    if kind == "slider":
        handle = element.query_selector(".noUi-handle")
        before = _slider_value(element)
        handle.focus()
        handle.press("ArrowRight")
        page.wait_for_timeout(300)
        if _slider_value(element) == before:  # already at its maximum
            handle.press("ArrowLeft")
            return "pressed ArrowLeft on the slider"
        return "pressed ArrowRight on the slider"
    if kind in ("dropdown", "select"):
        options = element.eval_on_selector_all("option", "os => os.map(o => o.value)")
        current = element.evaluate("e => e.selectedIndex")
        if len(options) < 2:
            return "nothing to choose"
        # The next option; with nothing selected (a widget value of None), the last one: the first
        # is then usually the "none" placeholder, which would change nothing.
        choice = options[(current + 1) % len(options)] if current >= 0 else options[-1]
        element.select_option(choice)
        return f"chose {choice!r}"
    if kind in ("toggle-buttons", "radio"):  # ``element`` is the option to pick (see exercise_widget)
        label = element.inner_text() or element.get_attribute("title") or element.get_attribute("value")
        element.click()
        return f"picked {label!r}"
    if kind in ("checkbox", "toggle-button", "button"):
        label = element.inner_text() or element.get_attribute("title") or kind
        element.click()
        return f"clicked {label.strip()!r}"
    raise ValueError(f"unknown control kind {kind!r}")


#: Order in which control kinds are exercised: parameters first, then mode switches (which may
#: enable other parameters, tested right after), then plain buttons.
_PARAMETERS = ("slider", "dropdown", "select", "checkbox", "toggle-button")
_SWITCHES = ("toggle-buttons", "radio")


def exercise_widget(page, view, timeout: float, button_timeout: float, max_buttons: int = 2, log=print) -> tuple[int, list[str]]:
    """Change every control of a widget view as a user would; see that what it shows changes.

    Parameters (sliders, dropdowns, ...) that are enabled are changed first. Then each other option
    of each switch (toggle buttons, radio buttons) is picked, and the parameters it enabled are
    changed in that state. Then up to ``max_buttons`` buttons are clicked (a button may redraw the
    same thing, so an unchanged view is not a problem for a button).

    Returns:
        (how many actions changed the view, problems: controls that changed nothing).
    """
    controls = controls_of(view)
    tested: set[int] = set()
    problems: list[str] = []
    changed_count = 0

    def act(index: int, kind: str, element) -> None:
        nonlocal changed_count
        before = fingerprint(view)
        done = change_control(page, kind, element)
        after = wait_settled(page, view, before, button_timeout if kind == "button" else timeout)
        changed = after != before
        changed_count += changed
        log(f"  {kind}: {done} -> {'changed' if changed else 'NO CHANGE'}")
        if not changed and kind != "button":
            problems.append(f"{kind} ({done}) changed nothing on screen")
        tested.add(index)

    def parameters_now() -> None:
        for index, (kind, element) in enumerate(controls):
            if kind in _PARAMETERS and index not in tested and is_enabled(element):
                act(index, kind, element)

    parameters_now()
    for index, (kind, element) in enumerate(controls):
        if kind not in _SWITCHES or not is_enabled(element):
            continue
        n_options = element.evaluate("e => e.querySelectorAll('button, input[type=radio]').length")
        for _ in range(n_options - 1):  # visit every other option once, in order
            act(index, kind, _next_option(element, kind))
            parameters_now()
    # Buttons not marked as the current choice (a selected query is styled "info"/active).
    buttons = [(i, k, e) for i, (k, e) in enumerate(controls) if k == "button" and is_enabled(e)
               and not e.evaluate("e => /\\b(mod-info|mod-active|mod-primary|selected)\\b/.test(e.className)")]
    for index, kind, element in buttons[:max_buttons]:
        act(index, kind, element)
    for index, (kind, element) in enumerate(controls):
        if index not in tested and kind != "button":
            log(f"  {kind}: disabled in every state tried, not changed")
    return changed_count, problems


def _next_option(element, kind: str):
    """The switch option after the active one (wrapping), as an element to click."""
    options = element.query_selector_all("button" if kind == "toggle-buttons" else "input[type=radio]")
    active = next((i for i, o in enumerate(options)
                   if o.evaluate("o => o.classList.contains('mod-active') || o.checked")), -1)
    return options[(active + 1) % len(options)]


# --- reading the stored notebooks -------------------------------------------------------------------

def is_quick_check(view) -> bool:
    """Whether a widget view is a multiple-choice quick check (:class:`cbir_lab.exercises.QuickCheck`)."""
    return view.evaluate("e => e.classList.contains('cbir-quick-check') || !!e.querySelector('.cbir-quick-check')")


def is_training_monitor(view) -> bool:
    """Whether a widget view is lesson 9's training monitor (:class:`cbir_lab.widgets.learning.TrainingMonitor`).

    It has no controls by design: it shows a progress bar and the curves as the network trains.
    """
    return view.evaluate("e => e.classList.contains('cbir-training-monitor') || !!e.querySelector('.cbir-training-monitor')")


def answer_quick_check(page, view, timeout: float = 20) -> list[str]:
    """Pick each option of a quick check in turn and press Check; return the feedback shown for each."""
    feedback = []
    options = view.query_selector_all("input[type=radio]")
    check = view.query_selector("button.widget-button")
    for option in options:
        option.check()
        before = view.inner_text()
        check.click()
        deadline = time.monotonic() + timeout
        while view.inner_text() == before and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        text = view.inner_text()
        feedback.append(next((line for line in text.splitlines() if line.startswith(("✓", "✗"))), ""))
    return feedback


def stored_widget_count(notebook: Path) -> int:
    """How many widget views the stored (executed) notebook displays at top level."""
    nb = json.loads(notebook.read_text())
    return sum(WIDGET_MIME in output.get("data", {})
               for cell in nb["cells"] if cell["cell_type"] == "code" for output in cell.get("outputs", []))


def expected_errors(notebook: Path) -> int:
    """How many cells are meant to raise (tag ``raises-exception`` or ``# NBVAL_RAISES_EXCEPTION``)."""
    nb = json.loads(notebook.read_text())
    return sum(
        "raises-exception" in cell.get("metadata", {}).get("tags", [])
        or "NBVAL_RAISES_EXCEPTION" in "".join(cell["source"])
        for cell in nb["cells"] if cell["cell_type"] == "code"
    )


def copy_notebooks(source: Path, target: Path) -> Path:
    """Copy the course's notebooks folder, so running them in the browser never writes to the repo's."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return target
