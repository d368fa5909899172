"""Widget stills (cbir_lab.course.stills): state saved by ipywidgets itself, and the lessons' saved widgets."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import ipywidgets as widgets
import nbformat
import pytest
from ipywidgets.embed import embed_data

from cbir_lab.course.editions import CAPSTONE, lesson_paths
from cbir_lab.course.stills import WIDGET_VIEW, still_html, widget_state

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n-not-a-real-image"


def saved(view: widgets.Widget) -> tuple[str, dict]:
    """The view's model id and the state JupyterLab would save (ipywidgets' own embedding format)."""
    data = embed_data(views=[view], drop_defaults=False)
    return data["view_specs"][0]["model_id"], data["manager_state"]["state"]


def test_a_panel_is_drawn_from_its_saved_state_with_every_control_showing_its_value():
    out = widgets.Output()
    out.outputs = ({"output_type": "stream", "name": "stdout", "text": "mAP 0.75 <ok>\n"},
                   {"output_type": "display_data", "data": {"image/png": base64.b64encode(PNG).decode()}, "metadata": {}})
    panel = widgets.VBox([
        widgets.HTML("<b>query 6</b> · AP 0.83"),
        widgets.HBox([widgets.Dropdown(options=["blocks.6", "conv_head"], value="conv_head", description="layer"),
                      widgets.IntSlider(933, min=0, max=1279, description="channel")]),
        widgets.ToggleButtons(options=["SPoC", "MAC", "GeM"], value="MAC", description="method"),
        widgets.Checkbox(True, description="PCA-whitening"),
        widgets.RadioButtons(options=["A < B", "a tie"], value=None),
        widgets.Button(description="Check", button_style="primary"),
        widgets.Label("1 < 2"),
        widgets.Image(value=PNG, format="png", width=300, layout=widgets.Layout(border="4px solid #2ca02c")),
        out,
    ], layout=widgets.Layout(max_width="800px"))
    panel.add_class("cbir-retrieval-explorer")
    page = still_html(*saved(panel))
    assert page.startswith('<div class="cbir-still">') and "cbir-retrieval-explorer" in page
    assert "<b>query 6</b> · AP 0.83" in page  # HTML stays HTML
    assert "1 &lt; 2" in page and "mAP 0.75 &lt;ok&gt;" in page  # a Label and printed text are text
    assert re.search(r"<option selected>conv_head</option>", page) and "<option>blocks.6</option>" in page
    assert re.search(r'<input type="range" disabled min="0" max="1279" step="1" value="933">', page)
    assert re.search(r'class="widget-toggle-button mod-active">MAC<', page)
    assert '<input type="checkbox" disabled checked> PCA-whitening' in page
    assert page.count('type="radio" disabled>') == 2  # nothing picked yet
    assert re.search(r'<button class="[^"]*mod-primary[^"]*" disabled>Check</button>', page)
    image = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    assert page.count(image) == 2  # the Image widget's bytes and the Output's figure
    assert 'width="300"' in page and "border-top: 4px solid #2ca02c" in page and "max-width: 800px" in page
    assert "<script" not in page and "disabled" in page  # a still: nothing runs, nothing can be clicked


def test_unknown_models_are_named_and_missing_state_is_none():
    model_id, state = saved(widgets.VBox([widgets.ColorPicker(value="red")]))
    assert "[ColorPicker]" in still_html(model_id, state)
    assert still_html("not-saved", state) is None
    assert widget_state({"metadata": {}}) == {}


def test_a_cycle_in_the_state_ends():
    state = {"a": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_a", "IPY_MODEL_b"]}},
             "b": {"model_name": "LabelModel", "state": {"value": "leaf"}}}
    assert "leaf" in still_html("a", state)


# the capstone, a project graded by hand, has no widget: its figures are the student's own
@pytest.mark.parametrize("path", [p for p in lesson_paths(ROOT / "notebooks") if p.name != CAPSTONE], ids=lambda p: p.name)
def test_every_widget_in_the_lessons_was_saved_and_its_still_shows_it(path):
    """The book shows each widget's last view: the lessons must be saved with their widget state."""
    nb = nbformat.read(path, as_version=4)
    state = widget_state(nb)
    views = [out["data"][WIDGET_VIEW]["model_id"] for cell in nb.cells if cell.cell_type == "code"
             for out in cell.get("outputs", []) if WIDGET_VIEW in out.get("data", {})]
    assert views, f"{path.name} shows no widget"
    for model_id in views:
        page = still_html(model_id, state)
        assert page is not None, f"{path.name}: widget {model_id} was not saved (save the notebook with its widget state)"
        assert "cbir-still-unknown" not in page, f"{path.name}: a widget the still cannot draw"
        text = html.unescape(re.sub(r"<[^>]+>", " ", page))
        if "cbir-quick-check" in page:
            assert "Quick check." in text and "Check" in text
        elif "cbir-training-monitor" in page:  # lesson 9's live curves: a bar and a figure, no controls
            assert "data:image/" in page and "epoch" in text, f"{path.name}: {text[:200]}"
        else:  # an explorer: its pictures and its controls
            assert "data:image/" in page and re.search(r"<(select|input|button)", page), f"{path.name}: {text[:200]}"
