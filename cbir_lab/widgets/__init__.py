"""Widgets: one interactive ipywidgets control panel per lesson, thin over pure functions.

Each widget builds its controls, wires them to a pure update function that
tests call directly, and draws matplotlib figures into an ``Output`` widget
(no Jupyter extension needed: JupyterLab, Notebook 7, VS Code, Colab).
"""

from cbir_lab.widgets.feature_maps import *  # noqa: F401,F403
from cbir_lab.widgets.pooling import *  # noqa: F401,F403
from cbir_lab.widgets.whitening import *  # noqa: F401,F403
from cbir_lab.widgets.retrieval import *  # noqa: F401,F403
from cbir_lab.widgets.talk import *  # noqa: F401,F403
from cbir_lab.widgets import feature_maps, pooling, retrieval, talk, whitening

__all__ = [*feature_maps.__all__, *pooling.__all__, *whitening.__all__, *retrieval.__all__, *talk.__all__]
