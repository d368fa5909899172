"""Lesson 7's visual-words explorer, driven by its controls; its numbers come from cbir_lab.studies.encodings."""

import numpy as np
import torch

from cbir_lab.studies.encodings import visual_words
from cbir_lab.widgets import VisualWordsExplorer
from cbir_lab.widgets.aggregation import NORMALISATIONS


def make_explorer():
    generator = torch.Generator().manual_seed(0)
    maps = [torch.rand(8, 3, 4, generator=generator) for _ in range(2)]
    train = [torch.rand(8, 3, 4, generator=generator) for _ in range(12)]
    images = [np.full((96, 128, 3), 60 * i, dtype=np.uint8) for i in range(2)]
    return VisualWordsExplorer(images, maps, ["a", "b"], train, ks=(2, 4, 8), local_dim=4), maps


def test_the_explorer_learns_every_vocabulary_once_and_shows_the_chosen_one():
    explorer, maps = make_explorer()
    assert sorted(explorer.vocabularies.centroids) == [2, 4, 8]
    assert explorer.k.value == 4 and bytes(explorer.view.value).startswith(b"\x89PNG")
    vocabularies = explorer.vocabularies
    explorer.k.value = 8
    explorer.image.value = 1
    explorer.normalisation.value = "intra + √"
    assert explorer.vocabularies is vocabularies  # nothing relearned
    words, blocks = visual_words(maps[1], vocabularies, 8, *NORMALISATIONS["intra + √"])
    assert np.array_equal(explorer.words, words) and np.allclose(explorer.blocks, blocks)
    assert explorer.caption.startswith("k = 8: the 12 cells fall in") and "intra + √" in explorer.caption
    assert explorer.error is None
    assert repr(explorer) == "VisualWordsExplorer(image='b', k=8, vlad='intra + √')"


def test_normalisations_narrow_the_spread_of_the_word_blocks():
    explorer, _ = make_explorer()
    explorer.k.value = 8

    def spread():
        norms = np.linalg.norm(explorer.blocks, axis=1)
        return norms.max() / norms[norms > 0].min()

    raw = spread()
    explorer.normalisation.value = "power (√)"
    rooted = spread()
    explorer.normalisation.value = "intra + √"
    assert spread() < rooted < raw  # the burst's block shrinks most
