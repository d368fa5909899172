"""Widgets: one interactive ipywidgets panel per lesson, and the talk mode.

Each widget builds its controls and wires them to :mod:`cbir_lab.index` and the
lessons' studies (:mod:`cbir_lab.studies`; the numbers) and :mod:`cbir_lab.viz` (the
pictures); it holds only the controls and what is on display, and computes nothing itself. Figures are drawn into an ``Output`` widget (no Jupyter
extension needed: JupyterLab, Notebook 7, VS Code, Colab).
"""

from cbir_lab.widgets.feature_maps import *  # noqa: F401,F403
from cbir_lab.widgets.pooling import *  # noqa: F401,F403
from cbir_lab.widgets.whitening import *  # noqa: F401,F403
from cbir_lab.widgets.retrieval import *  # noqa: F401,F403
from cbir_lab.widgets.talk import *  # noqa: F401,F403
from cbir_lab.widgets.aggregation import *  # noqa: F401,F403
from cbir_lab.widgets.scale import *  # noqa: F401,F403
from cbir_lab.widgets.learning import *  # noqa: F401,F403
from cbir_lab.widgets.beyond import *  # noqa: F401,F403
from cbir_lab.widgets import aggregation, beyond, feature_maps, learning, pooling, retrieval, scale, talk, whitening

__all__ = [*feature_maps.__all__, *pooling.__all__, *whitening.__all__, *retrieval.__all__, *talk.__all__,
           *aggregation.__all__, *scale.__all__, *learning.__all__, *beyond.__all__]
