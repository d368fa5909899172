"""The lessons' stored real-photo outputs are what the package computes now.

nbval's checked cells cannot guard numbers that need data a CI machine may not
have, so the lessons' real-photo cells (tagged ``real-photos``) are not checked by
nbval. Where ``../shared/data`` holds the real photos, this test downloads them
through the package over loopback into a fresh data folder, runs each lesson's
real-photo cells in a new kernel, in order, and compares every text they print with
the notebook's stored output: a stored table that the code no longer produces fails.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest

from tests.shared_data import download_real_data, needs_shared

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TAG = "real-photos"


def _real_cells(path: Path) -> list:
    cells = nbformat.read(path, as_version=4).cells
    return [c for c in cells if c.cell_type == "code" and TAG in c.metadata.get("tags", [])]


def _texts(cell: dict) -> list[str]:
    """The text a cell printed or returned (figures and widgets are not compared)."""
    texts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            texts.append("".join(output["text"]))
        elif output["output_type"] in ("execute_result", "display_data") and "text/plain" in output["data"]:
            shown = "".join(output["data"]["text/plain"])
            # a figure or a widget is compared by its pictures' absence of errors, not by its repr
            if not any(k.startswith("image/") or "widget" in k for k in output["data"]) and not shown.startswith("<Figure"):
                texts.append(shown)
        elif output["output_type"] == "error":
            texts.append(f"ERROR {output['ename']}: {output['evalue']}")
    return ["".join(texts)]


LESSONS = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb") if _real_cells(p))


def test_every_lesson_has_a_real_photo_step():
    assert [name[:2] for name in LESSONS] == [p.name[:2] for p in sorted(NOTEBOOKS.glob("*.ipynb"))]


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-data")
    download_real_data(root, ("rparis6k-slice", "eth80", "imagenet-sample"))
    return root


@pytest.mark.slow
@needs_shared("rparis6k-slice", "eth80", "gnd", "imagenet-sample")
@pytest.mark.parametrize("lesson", LESSONS)
def test_the_stored_real_photo_tables_are_recomputed_exactly(lesson, real_data, monkeypatch, tmp_path):
    from nbclient import NotebookClient

    stored = _real_cells(NOTEBOOKS / lesson)
    assert all(c.get("execution_count") for c in stored), f"{lesson}: a real-photo cell was stored unexecuted"
    run = nbformat.v4.new_notebook()
    for cell in stored:
        fresh = copy.deepcopy(cell)
        fresh.outputs, fresh.execution_count = [], None
        run.cells.append(fresh)
    monkeypatch.setenv("CBIR_LAB_DATA", str(real_data))
    NotebookClient(run, kernel_name="python3", timeout=1200, resources={"metadata": {"path": str(tmp_path)}}).execute()
    for number, (old, new) in enumerate(zip(stored, run.cells)):
        assert _texts(new) == _texts(old), f"{lesson}: real-photo cell {number} prints something else now"
