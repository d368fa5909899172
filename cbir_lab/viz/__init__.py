"""Visualisation: figures and image panels from arrays, returned (never shown), for notebooks and widgets.

One module per lesson: :mod:`.feature_maps`, :mod:`.pooling`, :mod:`.whitening`,
:mod:`.retrieval`, :mod:`.aggregation`, :mod:`.scale`, :mod:`.learning`, :mod:`.beyond`;
:mod:`.ranking` draws a query's top results,
:mod:`.images` encodes thumbnails, :mod:`.talk` renders the talk mode's page and
:mod:`.search_page` the page ``cbir-lab search`` writes. Nothing here runs a
network or computes a descriptor or a score: the numbers come from
:mod:`cbir_lab.index` and the stages below it.

Every name is importable from here (``from cbir_lab.viz import plot_ranking``),
but a module is imported only when one of its names is first used, so that
``cbir-lab search``, which needs thumbnails and no figure, never loads matplotlib.
"""

from __future__ import annotations

import importlib

#: Each module's public names (its ``__all__``; ``tests/test_packaging.py`` checks they agree).
_EXPORTS: dict[str, tuple[str, ...]] = {
    "ranking": ("RESULT_COLORS", "plot_ranking"),
    "images": ("thumbnail_jpeg", "jpeg_data_uri"),
    "feature_maps": ("format_layers", "format_map_sizes", "strongest_channels", "plot_map_sizes", "plot_cell_grid",
                     "plot_channels", "channel_panel", "feature_map_view"),
    "pooling": ("mac_location", "region_maxima", "plot_pooling_channel", "plot_rmac_grid", "method_channel_panel",
                "pooling_view", "plot_pair_similarities", "format_pair_similarities", "format_similarity_gaps"),
    "whitening": ("covariance", "plot_spectrum", "plot_covariances", "plot_map_curves", "MapCurveFigure",
                  "whitening_view", "format_curves_at", "format_whitening_gains"),
    "retrieval": ("plot_contributions", "plot_precision_recall", "plot_thumbnail_grid", "plot_method_comparison",
                  "format_scores", "format_cluster_means", "format_query_differences"),
    "talk": ("TALK_CSS", "STATUS_MARKS", "talk_method_label", "render_talk_html"),
    "search_page": ("search_page_html",),
    "aggregation": ("word_colours", "visual_words_view"),
    "scale": ("KIND_COLOURS", "TradeoffPicture"),
    "learning": ("plot_training_curves", "plot_negative_distances", "format_whitening_choices"),
    "beyond": ("MATCH_COLOURS", "match_segments", "plot_matches"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name: str):
    """Import a name's module on first use (PEP 562), and a sub-module by its name."""
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    if name in _EXPORTS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_EXPORTS))
