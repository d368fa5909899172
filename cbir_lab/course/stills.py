"""A widget's last view as static HTML, drawn from the state a notebook saved.

A notebook saved from JupyterLab keeps each widget's state (``metadata.widgets``):
its images, texts, and the value of each control. :func:`still_html` turns one
widget view into plain HTML from that state, with no JavaScript: boxes become
flex boxes laid out as their ``Layout`` says, an ``Image`` an ``<img>`` of its
saved bytes, ``HTML`` its markup, an ``Output`` its saved outputs, and each
control (slider, dropdown, toggle and radio buttons, checkbox, button) a
disabled form element showing its value. The book (:mod:`cbir_lab.course.book`)
shows that still with a note that the controls need a running Python.

* :func:`widget_state`: the saved state of a notebook, by model id.
* :func:`still_html`: one view's still, or None when its state was not saved.

Only ipywidgets' own models are drawn; any other shows its name in a grey box.
The classes are ipywidgets' (``widget-vbox``, ``widget-button``, …) with a
``cbir-still`` prefix for the book's style sheet.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

__all__ = ["WIDGET_VIEW", "WIDGET_STATE", "widget_state", "still_html"]

#: The output MIME type of a widget view.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: The notebook metadata key of the saved widget state.
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

_REF = "IPY_MODEL_"
_BUTTON_STYLES = {"primary", "success", "info", "warning", "danger"}


def widget_state(nb: Mapping[str, Any]) -> dict[str, dict]:
    """The widget models a notebook saved, by model id (empty when it saved none)."""
    return dict(nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {}))


def still_html(model_id: str, state: Mapping[str, Mapping]) -> str | None:
    """The saved last view of a widget as static HTML.

    Args:
        model_id: the view's model (an output's ``application/vnd.jupyter.widget-view+json`` ``model_id``).
        state: :func:`widget_state` of its notebook.

    Returns:
        A ``<div class="cbir-still">`` holding the view, or None when the notebook did not save its state.

    Examples:
        >>> state = {"b": {"model_name": "ButtonModel", "state": {"description": "Go"}}}
        >>> still_html("b", state)
        '<div class="cbir-still"><button class="cbir-still-button widget-button" disabled>Go</button></div>'
        >>> still_html("gone", state) is None
        True
    """
    if model_id not in state:
        return None
    return f'<div class="cbir-still">{_Still(state).draw(model_id)}</div>'


class _Still:
    """Draws models of one notebook's state, each at most once along a path (no cycles)."""

    def __init__(self, state: Mapping[str, Mapping]) -> None:
        self.state = state
        self.path: set[str] = set()

    def model(self, ref: Any) -> Mapping | None:
        mid = ref[len(_REF):] if isinstance(ref, str) and ref.startswith(_REF) else ref
        return self.state.get(mid) if isinstance(mid, str) else None

    def draw(self, ref: Any) -> str:
        mid = ref[len(_REF):] if isinstance(ref, str) and ref.startswith(_REF) else ref
        model = self.model(ref)
        if model is None or mid in self.path:
            return ""
        self.path.add(mid)
        try:
            return self._draw(model)
        finally:
            self.path.discard(mid)

    # -- helpers ------------------------------------------------------------------------------------

    def style(self, s: Mapping) -> str:
        """The CSS of a widget's Layout (ipywidgets maps each trait to the property of that name)."""
        layout = self.model(s.get("layout"))
        props = {}
        for name, value in (layout or {}).get("state", {}).items():
            if not name.startswith("_") and isinstance(value, str) and value:
                props[name.replace("_", "-")] = value
        return "; ".join(f"{k}: {v}" for k, v in props.items())

    def open(self, tag: str, kind: str, s: Mapping, extra: str = "", classes: tuple[str, ...] = ()) -> str:
        names = [f"cbir-still-{kind}", f"widget-{kind}", *classes, *(c for c in s.get("_dom_classes", []) if isinstance(c, str))]
        style = self.style(s)
        attrs = f' class="{html.escape(" ".join(names))}"' + (f' style="{html.escape(style)}"' if style else "")
        return f"<{tag}{attrs}{extra}>"

    @staticmethod
    def label(s: Mapping) -> str:
        text = s.get("description") or ""
        if not text:
            return ""
        allow_html = s.get("description_allow_html", False)
        return f'<span class="cbir-still-label">{text if allow_html else html.escape(text)}</span>'

    @staticmethod
    def options(s: Mapping) -> list[str]:
        return [str(o) for o in s.get("_options_labels", [])]

    # -- the models ---------------------------------------------------------------------------------

    def _draw(self, model: Mapping) -> str:
        name = str(model.get("model_name", "")).removesuffix("Model")
        s = model.get("state", {})
        if name in ("Box", "HBox", "VBox", "GridBox"):
            kind = {"Box": "box", "HBox": "hbox", "VBox": "vbox", "GridBox": "gridbox"}[name]
            children = "".join(self.draw(child) for child in s.get("children", []))
            return self.open("div", kind, s) + children + "</div>"
        if name in ("HTML", "HTMLMath", "Label"):
            value = s.get("value") or ""
            body = html.escape(value) if name == "Label" else value
            return self.open("div", name.lower(), s) + self.label(s) + f"<span>{body}</span></div>"
        if name == "Image":
            return self.image(model, s)
        if name in ("Button", "ToggleButton"):
            style = s.get("button_style") or ""
            pressed = ("mod-active",) if s.get("value") else ()
            classes = (f"mod-{style}",) if style in _BUTTON_STYLES else ()
            return (self.open("button", "button", s, " disabled", classes + pressed)
                    + html.escape(s.get("description") or "") + "</button>")
        if name in ("Dropdown", "Select"):
            index = s.get("index")
            options = "".join(f'<option{" selected" if i == index else ""}>{html.escape(o)}</option>'
                              for i, o in enumerate(self.options(s)))
            return (self.open("div", "dropdown", s) + self.label(s)
                    + f"<select disabled>{options}</select></div>")
        if name == "RadioButtons":
            index = s.get("index")
            items = "".join(f'<label><input type="radio" disabled{" checked" if i == index else ""}> {html.escape(o)}</label>'
                            for i, o in enumerate(self.options(s)))
            return self.open("div", "radio", s) + self.label(s) + f'<div class="cbir-still-options">{items}</div></div>'
        if name == "ToggleButtons":
            index = s.get("index")
            buttons = "".join(f'<button disabled class="widget-toggle-button{" mod-active" if i == index else ""}">'
                              f"{html.escape(o)}</button>" for i, o in enumerate(self.options(s)))
            return self.open("div", "toggle-buttons", s) + self.label(s) + f"<span>{buttons}</span></div>"
        if name == "Checkbox":
            checked = " checked" if s.get("value") else ""
            return (self.open("div", "checkbox", s) + f'<label><input type="checkbox" disabled{checked}> '
                    f'{html.escape(s.get("description") or "")}</label></div>')
        if name.endswith("Slider") or name.endswith("Text") or name in ("BoundedIntText", "BoundedFloatText"):
            return self.slider(name, s)
        if name == "Output":
            return self.open("div", "output", s) + "".join(self.output(o) for o in s.get("outputs", [])) + "</div>"
        return self.open("div", "unknown", s) + f"[{html.escape(name or 'widget')}]</div>"

    def image(self, model: Mapping, s: Mapping) -> str:
        data = next((b.get("data") for b in model.get("buffers", [])
                     if b.get("path") == ["value"] and b.get("encoding", "base64") == "base64"), None)
        if not data:
            return ""
        size = "".join(f' {dim}="{html.escape(str(s[dim]))}"' for dim in ("width", "height") if s.get(dim))
        fmt = html.escape(str(s.get("format") or "png"))
        return self.open("img", "image", s, f' src="data:image/{fmt};base64,{data}" alt=""{size}')

    def slider(self, name: str, s: Mapping) -> str:
        value = s.get("value")
        if isinstance(value, list):  # a range slider
            shown = " – ".join(str(v) for v in value)
            value = value[0]
        else:
            shown = str(value)
        if "Slider" in name:
            bounds = "".join(f' {k}="{s[k]}"' for k in ("min", "max", "step") if isinstance(s.get(k), (int, float)))
            control = f'<input type="range" disabled{bounds} value="{html.escape(str(value))}">'
        else:
            control = ""
        return (self.open("div", "slider", s) + self.label(s) + control
                + f'<span class="widget-readout">{html.escape(shown)}</span></div>')

    def output(self, output: Mapping) -> str:
        """One saved output of an ``Output`` widget, as HTML."""
        kind = output.get("output_type")
        if kind == "stream":
            return f'<pre class="cbir-still-stream">{html.escape(_text(output.get("text")))}</pre>'
        if kind == "error":
            error = f"{output.get('ename')}: {output.get('evalue')}"
            return f'<pre class="cbir-still-stream">{html.escape(error)}</pre>'
        data = output.get("data", {})
        if WIDGET_VIEW in data:  # a widget shown inside the Output
            return self.draw(str(data[WIDGET_VIEW].get("model_id", "")))
        for mime in ("image/png", "image/jpeg", "image/gif"):
            if mime in data:
                return f'<img src="data:{mime};base64,{_text(data[mime]).strip()}" alt="">'
        for mime in ("image/svg+xml", "text/html"):
            if mime in data:
                return _text(data[mime])
        if "text/plain" in data:
            return f"<pre>{html.escape(_text(data['text/plain']))}</pre>"
        return ""


def _text(value: Any) -> str:
    """A notebook's multi-line string, saved as one string or a list of lines."""
    return "".join(value) if isinstance(value, list) else str(value or "")
