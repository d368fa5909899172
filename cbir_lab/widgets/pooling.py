"""The pooling explorer of lesson 2: pooling, R-MAC levels, centre prior, GeM's p and channel.

:class:`PoolingExplorer` holds an anchor image, a second view of the same scene
and a different scene (their feature maps). Each change draws what the pooling
does with one channel of the anchor, and how similar the anchor's descriptor is
to the other two. The descriptors come from :func:`cbir_lab.pipeline.describe`
(memoised per setting), the picture from :func:`cbir_lab.viz.pooling.pooling_view`,
composed in numpy and sent to an ``ipywidgets.Image`` as PNG bytes.
"""

from __future__ import annotations

from typing import Sequence

import ipywidgets as widgets
import numpy as np
from PIL import Image

from cbir_lab.pipeline import describe
from cbir_lab.pooling import SPOC, STANDARD_POOLINGS, Pooling
from cbir_lab.viz.feature_maps import strongest_channels
from cbir_lab.viz.panels import png_bytes
from cbir_lab.viz.pooling import pooling_view
from cbir_lab.widgets._display import PanelRepr, show_in

__all__ = ["PoolingExplorer"]


class PoolingExplorer(PanelRepr):
    """Pooling, levels, centre prior, p and channel controls over :func:`cbir_lab.viz.pooling.pooling_view`.

    Args:
        images: network inputs (H, W, 3), the anchor first (e.g. a query, a view of
            the same scene, a view of another scene).
        maps: their feature maps (C, H', W'), e.g. from the feature cache.
        names: a label per image.
        method, channel: the initial setting (default: SPoC and the anchor's strongest channel);
            ``method`` is a :class:`~cbir_lab.pooling.Pooling` or its name, and its settings
            set the levels, centre prior and p controls.

    Attributes:
        method, levels, center, p, channel: the controls (``method``'s value is the method,
            e.g. ``"rmac"``; :attr:`pooling` is the whole setting).
        view: the ``ipywidgets.Image`` the picture is shown in.
        out: the ``Output`` for the caption (or an error).
        error: the exception of the last update, or ``None``.
        picture, caption, similarities: what the last update computed.
        widget: the whole panel.
    """

    def __init__(self, images: Sequence[np.ndarray], maps: Sequence[np.ndarray], names: Sequence[str],
                 method: Pooling | str = SPOC, channel: int | None = None) -> None:
        if not (len(images) == len(maps) == len(names)) or len(images) < 2:
            raise ValueError(f"need as many images, maps and names (at least 2); got {len(images)}, {len(maps)}, {len(names)}")
        self.images = [np.asarray(i) for i in images]
        self.maps = [np.asarray(m, dtype=np.float32) for m in maps]
        self.names = list(names)
        self._descriptors: dict[Pooling, np.ndarray] = {}
        n_channels = self.maps[0].shape[0]
        channel = strongest_channels(self.maps[0], 1)[0] if channel is None else channel
        start = Pooling.parse(method)
        self.method = widgets.ToggleButtons(options=[(p.name, p.method) for p in STANDARD_POOLINGS], value=start.method,
                                            description="method")
        wide = {"description_width": "initial"}  # room for the whole label ("R-MAC levels" was cut)
        self.levels = widgets.IntSlider(value=start.levels, min=1, max=5, description="R-MAC levels",
                                        continuous_update=False, style=wide)
        self.center = widgets.Checkbox(value=start.center_prior, description="SPoC centre prior", style=wide)
        self.p = widgets.FloatSlider(value=start.p, min=1.0, max=10.0, step=0.5, description="GeM p",
                                     continuous_update=False, style=wide)
        self.channel = widgets.IntSlider(value=channel, min=0, max=n_channels - 1, description="channel",
                                         continuous_update=False)
        self.view = widgets.Image(format="png")
        self.out = widgets.Output()
        self.picture: Image.Image | None = None
        self.caption = ""
        self.error: Exception | None = None
        self.similarities = np.zeros(len(images) - 1)
        for control in (self.method, self.levels, self.center, self.p, self.channel):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([self.method, widgets.HBox([self.levels, self.center, self.p]), self.channel,
                                    self.view, self.out])
        self.update()

    @property
    def pooling(self) -> Pooling:
        """The setting the controls select (settings the method ignores are left out)."""
        return Pooling(self.method.value, p=self.p.value, levels=self.levels.value, center_prior=self.center.value)

    def descriptors(self, pooling: Pooling) -> np.ndarray:
        """The images' L2-normalised descriptors under ``pooling``, computed once per setting."""
        if pooling not in self._descriptors:
            self._descriptors[pooling] = describe(self.maps, pooling)
        return self._descriptors[pooling]

    def update(self, change=None) -> None:
        """Recompute and redraw for the controls' current values."""
        def draw() -> None:
            self.levels.disabled = self.method.value != "rmac"
            self.center.disabled = self.method.value != "spoc"
            self.p.disabled = self.method.value != "gem"
            pooling = self.pooling
            self.picture, self.caption, self.similarities = pooling_view(
                self.images, self.maps, self.names, pooling, self.channel.value, self.descriptors(pooling))
            self.view.value = png_bytes(self.picture)
            self.view.width = str(self.picture.size[0])  # its own size: a front end would stretch it to the page
            show_in(self.out, text=self.caption)

        self._redraw(draw)

    def __repr__(self) -> str:
        return (f"PoolingExplorer(method={self.method.label!r}, levels={self.levels.value}, "
                f"center={self.center.value}, p={self.p.value:g}, channel={self.channel.value})")
