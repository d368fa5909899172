"""The visual-words explorer of lesson 7: which local features fall in which word, and what VLAD makes of them.

:class:`VisualWordsExplorer` learns a local PCA and one k-means vocabulary per k
once, when it is built (:func:`cbir_lab.studies.encodings.learn_word_vocabularies`, on the
training images); moving a control only assigns the chosen image's cells to words
and re-encodes them (:func:`cbir_lab.studies.encodings.visual_words`). The picture comes from
:func:`cbir_lab.viz.aggregation.visual_words_view`.
"""

from __future__ import annotations

from typing import Sequence

import ipywidgets as widgets
import numpy as np

from cbir_lab.studies.encodings import learn_word_vocabularies, visual_words
from cbir_lab.viz.aggregation import visual_words_view
from cbir_lab.widgets._display import PanelRepr, show_in

__all__ = ["NORMALISATIONS", "VisualWordsExplorer"]

#: VLAD's normalisations: label → (intra, power).
NORMALISATIONS: dict[str, tuple[bool, float]] = {
    "raw sums": (False, 1.0),
    "power (√)": (False, 0.5),
    "intra + √": (True, 0.5),
}


class VisualWordsExplorer(PanelRepr):
    """Image, vocabulary size and normalisation controls over the visual words of one map at a time.

    Args:
        images: network inputs (H, W, 3) uint8, one per map.
        maps: their feature maps (C, h, w).
        names: a label per image.
        train_maps: the training images' maps, which the vocabularies are learned on.
        ks: the vocabulary sizes offered (each learned once, now).
        local_dim: the local PCA's dimension.

    Attributes:
        image, k, normalisation: the controls.
        view: the ``ipywidgets.Image`` the picture is shown in; out: the caption (or an error).
        vocabularies: the learned :class:`~cbir_lab.studies.encodings.WordVocabularies`.
        words, blocks, caption: what the last update computed.
        widget: the whole panel.
    """

    def __init__(self, images: Sequence[np.ndarray], maps: Sequence, names: Sequence[str], train_maps: Sequence,
                 ks: Sequence[int] = (4, 8, 16, 32, 64), local_dim: int = 32) -> None:
        if not (len(images) == len(maps) == len(names)) or not images:
            raise ValueError(f"need as many images, maps and names (at least 1); got {len(images)}, {len(maps)}, "
                             f"{len(names)}")
        self.images = [np.asarray(i, dtype=np.uint8) for i in images]
        self.maps = list(maps)
        self.vocabularies = learn_word_vocabularies(train_maps, ks, local_dim)
        self.image = widgets.Dropdown(options=[(n, i) for i, n in enumerate(names)], value=0, description="image")
        self.k = widgets.SelectionSlider(options=[int(k) for k in ks], value=int(ks[len(ks) // 2]), description="words k")
        self.normalisation = widgets.ToggleButtons(options=list(NORMALISATIONS), value="raw sums", description="VLAD")
        self.view = widgets.Image(format="png")
        self.out = widgets.Output()
        self.error: Exception | None = None
        self.caption = ""
        for control in (self.image, self.k, self.normalisation):
            control.observe(self.update, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.image, self.k]), self.normalisation, self.view, self.out])
        self.update()

    def update(self, change=None) -> None:
        """Assign the chosen image's cells to words, encode them, and redraw."""
        def draw() -> None:
            intra, power = NORMALISATIONS[self.normalisation.value]
            self.words, self.blocks = visual_words(self.maps[self.image.value], self.vocabularies, self.k.value,
                                                   intra=intra, power=power)
            png, self.caption = visual_words_view(self.images[self.image.value], self.words, self.blocks,
                                                  self.normalisation.value)
            self.view.value = png
            show_in(self.out, text=self.caption)

        self._redraw(draw)

    def __repr__(self) -> str:
        return f"VisualWordsExplorer(image={self.image.label!r}, k={self.k.value}, vlad={self.normalisation.value!r})"
