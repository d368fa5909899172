"""Visualisation: figures and image panels from arrays, returned (never shown), for notebooks and widgets.

One module per lesson: :mod:`.feature_maps`, :mod:`.pooling`, :mod:`.whitening`,
:mod:`.retrieval`, :mod:`.aggregation`, :mod:`.scale`; :mod:`.ranking` draws a query's top results, :mod:`.images`
encodes thumbnails and :mod:`.talk` renders the talk mode's page. Nothing here
runs a network or computes a descriptor or a score: the numbers come from
:mod:`cbir_lab.index` and the stages below it.
"""

from cbir_lab.viz.ranking import *  # noqa: F401,F403
from cbir_lab.viz.images import *  # noqa: F401,F403
from cbir_lab.viz.feature_maps import *  # noqa: F401,F403
from cbir_lab.viz.pooling import *  # noqa: F401,F403
from cbir_lab.viz.whitening import *  # noqa: F401,F403
from cbir_lab.viz.retrieval import *  # noqa: F401,F403
from cbir_lab.viz.talk import *  # noqa: F401,F403
from cbir_lab.viz.aggregation import *  # noqa: F401,F403
from cbir_lab.viz.scale import *  # noqa: F401,F403
from cbir_lab.viz import aggregation, feature_maps, images, pooling, ranking, retrieval, scale, talk, whitening

__all__ = [*ranking.__all__, *images.__all__, *feature_maps.__all__, *pooling.__all__, *whitening.__all__,
           *retrieval.__all__, *talk.__all__, *aggregation.__all__, *scale.__all__]
