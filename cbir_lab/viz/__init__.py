"""Visualisation: matplotlib figures for each lesson, returned (never shown) so widgets and tests can use them.

One module per lesson: :mod:`.feature_maps`, :mod:`.pooling`, :mod:`.whitening`,
:mod:`.retrieval`; :mod:`.ranking` draws a query's top results.
"""

from cbir_lab.viz.ranking import *  # noqa: F401,F403
from cbir_lab.viz.feature_maps import *  # noqa: F401,F403
from cbir_lab.viz.pooling import *  # noqa: F401,F403
from cbir_lab.viz.whitening import *  # noqa: F401,F403
from cbir_lab.viz.retrieval import *  # noqa: F401,F403
from cbir_lab.viz import feature_maps, pooling, ranking, retrieval, whitening

__all__ = [*ranking.__all__, *feature_maps.__all__, *pooling.__all__, *whitening.__all__, *retrieval.__all__]
