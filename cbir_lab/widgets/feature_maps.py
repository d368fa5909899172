"""The feature-map explorer of lesson 1: pick an image, a layer and a channel.

:class:`FeatureMapExplorer` reads each image once and runs the backbone once per
image (all layers in one pass, :func:`cbir_lab.features.layer_feature_maps`),
when it is built, so changing image, layer or channel only redraws. The picture
comes from :func:`cbir_lab.viz.feature_maps.feature_map_view`, composed in numpy
and sent to an ``ipywidgets.Image`` as PNG bytes.
"""

from __future__ import annotations

from typing import Sequence

import ipywidgets as widgets
import numpy as np
from PIL import Image

from cbir_lab.features import layer_feature_maps
from cbir_lab.viz.feature_maps import feature_map_view, strongest_channels
from cbir_lab.viz.panels import png_bytes
from cbir_lab.widgets._display import PanelRepr, show_in

__all__ = ["FeatureMapExplorer"]


class FeatureMapExplorer(PanelRepr):
    """Image, layer and channel controls over :func:`cbir_lab.viz.feature_maps.feature_map_view`.

    Args:
        images: the images to choose from (paths, PIL images or (path, bbox)).
        backbone: a loaded backbone; its shallower layers come for free.
        names: a label per image (default: ``image 0``, ``image 1``, …).
        max_side: the long side fed to the network.

    Attributes:
        image, layer, channel: the controls (``Dropdown``, ``Dropdown``, ``IntSlider``).
        view: the ``ipywidgets.Image`` the picture is shown in.
        out: the ``Output`` for the caption (or an error).
        error: the exception of the last update, or ``None``.
        picture, caption: what the last update showed (a Pillow image and its text).
        widget: the whole panel (displayed when the explorer is the cell's result).
    """

    def __init__(self, images: Sequence, backbone, names: Sequence[str] | None = None,
                 max_side: int = 384) -> None:
        if len(images) == 0:
            raise ValueError("FeatureMapExplorer needs at least one image")
        names = [f"image {i}" for i in range(len(images))] if names is None else list(names)
        if len(names) != len(images):
            raise ValueError(f"got {len(names)} names for {len(images)} images")
        self.images = list(images)
        self.backbone = backbone
        self.max_side = max_side
        # every image's maps now: a few forward passes here spare the student a wait at each switch
        self._maps = [layer_feature_maps(item, backbone, max_side) for item in self.images]
        self._updating = False
        first_maps = self.maps(0)[1]
        self.image = widgets.Dropdown(options=[(n, i) for i, n in enumerate(names)], value=0, description="image")
        self.layer = widgets.Dropdown(options=list(first_maps), value=backbone.layer, description="layer")
        top = first_maps[backbone.layer]
        self.channel = widgets.IntSlider(value=strongest_channels(top, 1)[0], min=0, max=top.shape[0] - 1,
                                         description="channel", continuous_update=False)
        self.view = widgets.Image(format="png")
        self.out = widgets.Output()
        self.picture: Image.Image | None = None
        self.caption = ""
        self.error: Exception | None = None
        for control in (self.image, self.layer, self.channel):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.image, self.layer]), self.channel, self.view, self.out])
        self.update()

    def maps(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(network input, layer → map) of image ``index``."""
        return self._maps[index]

    def update(self, change=None) -> None:
        """Redraw for the controls' current values (the channel range follows the layer)."""
        if self._updating:
            return
        def draw() -> None:
            image, maps = self.maps(self.image.value)
            n_channels = maps[self.layer.value].shape[0]
            if self.channel.max != n_channels - 1:
                self._updating = True  # the slider's own change event must not redraw twice
                try:
                    self.channel.value = min(self.channel.value, n_channels - 1)
                    self.channel.max = n_channels - 1
                finally:
                    self._updating = False
            self.picture, self.caption = feature_map_view(image, maps, self.layer.value, self.channel.value)
            self.view.value = png_bytes(self.picture)
            self.view.width = str(self.picture.size[0])  # its own size: a front end would stretch it to the page
            show_in(self.out, text=self.caption)

        self._redraw(draw)

    def __repr__(self) -> str:
        return f"FeatureMapExplorer(image={self.image.label!r}, layer={self.layer.value!r}, channel={self.channel.value})"
