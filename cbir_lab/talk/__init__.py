"""Talk mode: serve the full-screen retrieval demo (``present.ipynb``) with Voila.

``cbir-lab present`` (or :func:`present`) starts Voila on the notebook shipped
in this folder, which shows :class:`cbir_lab.widgets.talk.TalkWidget` with no
code on screen. The dataset is the embedded one by default (offline); another
is passed to the notebook's kernel through ``$CBIR_LAB_TALK_DATASET``.

* :func:`talk_widget`: the widget the notebook shows, for a dataset name or folder.
* :func:`voila_command`: the command line that serves the notebook (pure).
* :func:`talk_env`: the environment for it (pure).
* :func:`present`: run it, with a kernel that uses this very Python.

Voila is an optional extra: ``pip install "cbir-lab[talk]"``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Mapping

__all__ = ["NOTEBOOK", "DATASET_ENV", "DEFAULT_PORT", "talk_widget", "voila_command", "talk_env", "present"]

#: The talk-mode notebook that Voila serves.
NOTEBOOK: Path = Path(__file__).with_name("present.ipynb")
#: Environment variable that tells the notebook which dataset to show.
DATASET_ENV = "CBIR_LAB_TALK_DATASET"
#: Voila's usual port.
DEFAULT_PORT = 8866


def talk_widget(dataset: str | None = None, backbone: str = "efficientnet_lite0", max_side: int = 384, **kwargs):
    """The talk-mode widget for a dataset (the embedded one by default), its features extracted or loaded from the cache.

    Args:
        dataset: a benchmark name or a folder of images; None for the embedded set.
        backbone, max_side: the feature extraction's settings.
        **kwargs: passed to :class:`cbir_lab.widgets.talk.TalkWidget` (``k``, ``columns``, ``query``, ``method``).

    Returns:
        The :class:`~cbir_lab.widgets.talk.TalkWidget`.
    """
    from cbir_lab.datasets import load_dataset
    from cbir_lab.pipeline import extract_dataset
    from cbir_lab.widgets.talk import TalkWidget

    features = extract_dataset(load_dataset(dataset), backbone, max_side=max_side, progress=False)
    return TalkWidget(features, **kwargs)


def voila_command(
    port: int = DEFAULT_PORT,
    open_browser: bool = True,
    ip: str = "127.0.0.1",
    theme: str = "light",
    notebook: str | os.PathLike = NOTEBOOK,
    python: str = sys.executable,
) -> list[str]:
    """The command that serves the talk notebook with Voila.

    Args:
        port: the TCP port (1–65535).
        open_browser: open the default web browser on the page.
        ip: the address to listen on (loopback by default: a talk needs no network).
        theme: Voila's ``"light"`` or ``"dark"`` theme.
        notebook: the notebook to serve.
        python: the Python that runs Voila.

    Returns:
        The argument list for :func:`subprocess.run`.
    """
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be in 1..65535, got {port}")
    if theme not in ("light", "dark"):
        raise ValueError(f"theme must be 'light' or 'dark', got {theme!r}")
    command = [
        python, "-m", "voila", str(notebook),
        f"--port={int(port)}", f"--Voila.ip={ip}", f"--theme={theme}",
        "--show_tracebacks=True",  # a failing cell says why on the page, not only in the terminal
        "--VoilaExecutor.timeout=900",  # the first run extracts features: minutes on a laptop
    ]
    if not open_browser:
        command.append("--no-browser")
    return command


def talk_env(dataset: str | None = None, kernel_dir: str | os.PathLike | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for Voila: the dataset for the notebook, and where the kernel spec is.

    Args:
        dataset: a dataset name or folder for :func:`cbir_lab.datasets.load_dataset`;
            None for the embedded set.
        kernel_dir: a Jupyter data folder put first on ``JUPYTER_PATH`` (it holds a
            ``kernels/python3`` spec for this Python).
        base: the environment to start from (default: ``os.environ``).

    Returns:
        A new dict; ``base`` is not modified.
    """
    env = dict(os.environ if base is None else base)
    env.pop(DATASET_ENV, None)
    if dataset:
        env[DATASET_ENV] = str(dataset)
    if kernel_dir is not None:
        env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(kernel_dir), env.get("JUPYTER_PATH", "")) if p)
    return env


def _write_kernel_spec(data_dir: Path, python: str) -> None:
    # The notebook asks for "python3"; make that this interpreter, whatever kernel specs the user has.
    spec_dir = data_dir / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (cbir-lab)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))


def _check_dataset(dataset: str | None) -> None:
    if dataset in (None, "", "embedded"):
        return
    from cbir_lab.datasets.registry import BENCHMARKS

    if dataset not in BENCHMARKS and not Path(dataset).expanduser().is_dir():
        raise ValueError(
            f"--dataset {dataset!r} is neither a benchmark ({', '.join(sorted(BENCHMARKS))}) nor a folder of images"
        )


def present(dataset: str | None = None, port: int = DEFAULT_PORT, open_browser: bool = True, theme: str = "light") -> int:
    """Serve the talk-mode demo with Voila until interrupted (Ctrl-C).

    Args:
        dataset: a benchmark name or a folder of images; None for the embedded set.
        port: the port to serve on.
        open_browser: open the page in the default browser.
        theme: ``"light"`` or ``"dark"``.

    Returns:
        Voila's exit status (0 after Ctrl-C).

    Raises:
        ImportError: Voila is not installed.
        ValueError: the dataset is unknown, or a bad port/theme.
    """
    if importlib.util.find_spec("voila") is None:
        raise ImportError('talk mode needs Voila: pip install "cbir-lab[talk]"  (or: pip install voila)')
    _check_dataset(dataset)
    command = voila_command(port, open_browser, theme=theme)
    with tempfile.TemporaryDirectory(prefix="cbir-lab-talk-") as kernel_dir:
        _write_kernel_spec(Path(kernel_dir), sys.executable)
        print(f"Talk mode on http://127.0.0.1:{port}/  (Ctrl-C to stop)", flush=True)
        process = subprocess.Popen(command, env=talk_env(dataset, kernel_dir))
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            return 0
