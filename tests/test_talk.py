"""cbir_lab.talk: serving the talk-mode notebook with Voila (no browser; see test_browser for that)."""

from __future__ import annotations

import json
import sys

import pytest

from cbir_lab.talk import DATASET_ENV, NOTEBOOK, _check_dataset, talk_env, voila_command


# --- cbir_lab.talk: serving with Voila ---------------------------------------------------------

def test_voila_command_serves_the_packaged_notebook_on_loopback():
    command = voila_command(port=9000, open_browser=False)
    assert command[:4] == [sys.executable, "-m", "voila", str(NOTEBOOK)]
    assert "--port=9000" in command and "--Voila.ip=127.0.0.1" in command and "--no-browser" in command
    assert "--no-browser" not in voila_command(port=9000, open_browser=True)


@pytest.mark.parametrize("kwargs, message", [({"port": 0}, "port"), ({"port": 70000}, "port"), ({"theme": "neon"}, "theme")])
def test_voila_command_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        voila_command(**kwargs)


def test_talk_env_passes_the_dataset_and_kernel_dir_without_touching_the_base():
    base = {"PATH": "/bin", DATASET_ENV: "old", "JUPYTER_PATH": "/a"}
    env = talk_env("holidays", kernel_dir="/k", base=base)
    assert env[DATASET_ENV] == "holidays"
    assert env["JUPYTER_PATH"].split(":") == ["/k", "/a"]
    assert base == {"PATH": "/bin", DATASET_ENV: "old", "JUPYTER_PATH": "/a"}
    assert DATASET_ENV not in talk_env(None, base=base)  # the embedded set: no variable


def test_check_dataset_names_an_unknown_dataset(tmp_path):
    _check_dataset(None)
    _check_dataset("embedded")
    _check_dataset(str(tmp_path))  # a folder of the user's images
    with pytest.raises(ValueError, match="'no-such-set' is neither a benchmark"):
        _check_dataset("no-such-set")


def test_present_notebook_is_shipped_clean_and_reads_the_dataset_variable():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] for c in code)  # Voila runs it; nothing stale is stored
    assert [c for c in nb["cells"] if c["cell_type"] == "markdown"] == []  # nothing but the demo on screen
    source = "".join("".join(c["source"]) for c in code)
    assert "DATASET_ENV" in source and "talk_widget(" in source
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_talk_widget_builds_the_talk_for_a_folder(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    from cbir_lab.talk import talk_widget

    monkeypatch.setenv("CBIR_LAB_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for group in ("a", "b"):
        (tmp_path / "photos" / group).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "photos" / group / f"{group}{i}.png")
    widget = talk_widget(str(tmp_path / "photos"), max_side=64, k=3)
    assert widget.index.dataset.n_queries == 2 and "cbir-talk-results" in widget.results.value
