"""The pooling explorer of lesson 2: method, R-MAC levels, centre prior, GeM's p and channel.

:class:`PoolingExplorer` holds an anchor image, a second view of the same scene
and a different scene (their cached feature maps). Each change draws what the
method does with one channel of the anchor, and how similar the anchor's
descriptor is to the other two. Descriptors are memoised per setting, so an
interaction only pools three small maps once and redraws. The picture and the
numbers come from the pure :func:`pooling_view`, which tests call directly.
"""

from __future__ import annotations

from typing import Sequence

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from cbir_lab.viz.feature_maps import strongest_channels
from cbir_lab.viz.pooling import POOLING_METHODS, MethodChannelFigure, pooled_descriptor
from cbir_lab.widgets._display import PanelRepr, show_in

__all__ = ["pooling_view", "PoolingExplorer"]


def pooling_view(
    images: Sequence[np.ndarray],
    maps: Sequence[np.ndarray],
    names: Sequence[str],
    method: str,
    channel: int,
    levels: int = 3,
    center: bool = False,
    p: float = 3.0,
    descriptors: Sequence[np.ndarray] | None = None,
    figure: MethodChannelFigure | None = None,
) -> tuple[Figure, str, np.ndarray]:
    """The explorer's picture, caption and similarities for one setting.

    Args:
        images: network inputs (H, W, 3): the anchor, then the images compared with it.
        maps: their feature maps (C, H', W').
        names: a label per image.
        method: one of :data:`cbir_lab.viz.pooling.POOLING_METHODS`.
        channel: the anchor's channel to draw.
        levels, center, p: R-MAC's scales, SPoC's centre prior, GeM's power.
        descriptors: the images' descriptors for this setting, if already computed.
        figure: a :class:`~cbir_lab.viz.pooling.MethodChannelFigure` to redraw (default: a new one).

    Returns:
        (figure, caption, similarities of the anchor to each other image).
    """
    if descriptors is None:
        descriptors = [pooled_descriptor(m, method, levels=levels, center=center, p=p) for m in maps]
    vecs = np.stack(descriptors)
    sims = vecs[1:] @ vecs[0]
    fig = (figure or MethodChannelFigure()).draw(images[0], maps[0], method, channel, levels=levels, center=center, p=p)
    settings = {"SPoC": f"centre prior {'on' if center else 'off'}", "R-MAC": f"L = {levels}", "GeM": f"p = {p:g}"}.get(method, "")
    parts = [f"{method}{' (' + settings + ')' if settings else ''}: descriptor[{channel}] = {vecs[0][channel]:.3f}"]
    parts += [f"cos({names[0]}, {name}) = {s:.3f}" for name, s in zip(names[1:], sims)]
    if len(sims) >= 2:
        parts.append(f"margin = {sims[0] - sims[1]:+.3f}")
    return fig, " | ".join(parts), sims


class PoolingExplorer(PanelRepr):
    """Method, levels, centre prior, p and channel controls over :func:`pooling_view`.

    Args:
        images: network inputs (H, W, 3), the anchor first (e.g. a query, a view of
            the same scene, a view of another scene).
        maps: their feature maps (C, H', W'), e.g. from the feature cache.
        names: a label per image.
        method, channel: the initial setting (default: SPoC and the anchor's strongest channel).

    Attributes:
        method, levels, center, p, channel: the controls.
        out: the ``Output`` the figure (or an error) is drawn in.
        error: the exception of the last update, or ``None``.
        figure, caption, similarities: what the last update computed.
        widget: the whole panel.
    """

    def __init__(self, images: Sequence[np.ndarray], maps: Sequence[np.ndarray], names: Sequence[str],
                 method: str = "SPoC", channel: int | None = None) -> None:
        if not (len(images) == len(maps) == len(names)) or len(images) < 2:
            raise ValueError(f"need as many images, maps and names (at least 2); got {len(images)}, {len(maps)}, {len(names)}")
        self.images = [np.asarray(i) for i in images]
        self.maps = [np.asarray(m, dtype=np.float32) for m in maps]
        self.names = list(names)
        self._descriptors: dict[tuple, list[np.ndarray]] = {}
        n_channels = self.maps[0].shape[0]
        channel = strongest_channels(self.maps[0], 1)[0] if channel is None else channel
        self.method = widgets.ToggleButtons(options=list(POOLING_METHODS), value=method, description="method")
        wide = {"description_width": "initial"}  # room for the whole label ("R-MAC levels" was cut)
        self.levels = widgets.IntSlider(value=3, min=1, max=5, description="R-MAC levels", continuous_update=False,
                                        style=wide)
        self.center = widgets.Checkbox(value=False, description="SPoC centre prior", style=wide)
        self.p = widgets.FloatSlider(value=3.0, min=1.0, max=10.0, step=0.5, description="GeM p", continuous_update=False,
                                     style=wide)
        self.channel = widgets.IntSlider(value=channel, min=0, max=n_channels - 1, description="channel",
                                         continuous_update=False)
        self.out = widgets.Output()
        self._method_figure = MethodChannelFigure()
        self.figure: Figure | None = None
        self.caption = ""
        self.error: Exception | None = None
        self.similarities = np.zeros(len(images) - 1)
        for control in (self.method, self.levels, self.center, self.p, self.channel):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([self.method, widgets.HBox([self.levels, self.center, self.p]), self.channel, self.out])
        self.update()

    def descriptors(self, method: str, levels: int, center: bool, p: float) -> list[np.ndarray]:
        """The images' descriptors for one setting, computed once (settings a method ignores share an entry)."""
        key = (method, levels if method == "R-MAC" else None, center if method == "SPoC" else None,
               p if method == "GeM" else None)
        if key not in self._descriptors:
            self._descriptors[key] = [pooled_descriptor(m, method, levels=levels, center=center, p=p) for m in self.maps]
        return self._descriptors[key]

    def update(self, change=None) -> None:
        """Recompute and redraw for the controls' current values."""
        def draw() -> None:
            setting = dict(levels=self.levels.value, center=self.center.value, p=self.p.value)
            self.levels.disabled = self.method.value != "R-MAC"
            self.center.disabled = self.method.value != "SPoC"
            self.p.disabled = self.method.value != "GeM"
            descriptors = self.descriptors(self.method.value, **setting)
            self.figure, self.caption, self.similarities = pooling_view(
                self.images, self.maps, self.names, self.method.value, self.channel.value, descriptors=descriptors,
                figure=self._method_figure, **setting
            )
            show_in(self.out, self.figure, self.caption)

        self._redraw(draw)

    def __repr__(self) -> str:
        return (f"PoolingExplorer(method={self.method.value!r}, levels={self.levels.value}, "
                f"center={self.center.value}, p={self.p.value:g}, channel={self.channel.value})")
