"""Vocabulary encodings against SPoC, and visual words (cbir_lab.studies.encodings)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cbir_lab import aggregation, encodings
from cbir_lab.evaluation import compute_map
from cbir_lab.index import RetrievalIndex
from cbir_lab.pipeline import encode_dataset
from cbir_lab.search import rank
from cbir_lab.studies.encodings import encoding_comparison, learn_word_vocabularies, visual_words
from cbir_lab.whitening import PCAWhitening


def test_encoding_comparison_whitens_every_descriptor_to_the_same_d(grouped_features):
    index = RetrievalIndex(grouped_features)
    vlad = encode_dataset(grouped_features, "vlad", k=2, local_dim=4, per_image=9)
    rows, intervals = encoding_comparison(index, [vlad], dims=(4, 99))
    top = min(index.max_dim("SPoC"), 8)  # 12 training images: 11 directions; VLAD has 2·4 = 8 dimensions
    assert [r.method for r in rows] == ["SPoC @4", "VLAD k=2 @4", f"SPoC @{top}", f"VLAD k=2 @{top}"]
    assert rows[0].scores["mAP"] == pytest.approx(index.whitened_score("SPoC", 4))
    whitening = PCAWhitening().fit(vlad.vectors["train"])
    q, db = (whitening.at(4).transform(vlad.vectors[p]) for p in ("query", "db"))
    assert rows[1].scores["mAP"] == pytest.approx(compute_map(rank(q, db), index.gnd).map)
    assert intervals["VLAD k=2 @4, whitened"].estimate == pytest.approx(rows[1].scores["mAP"] - rows[0].scores["mAP"])


def test_visual_words_assign_each_cell_to_its_nearest_word():
    generator = torch.Generator().manual_seed(2)
    train = [torch.rand(6, 3, 3, generator=generator) for _ in range(10)]
    vocabularies = learn_word_vocabularies(train, ks=(2, 4), local_dim=3, per_image=9)
    assert sorted(vocabularies.centroids) == [2, 4] and vocabularies.centroids[4].shape == (4, 3)
    fmap = torch.rand(6, 2, 5, generator=generator)
    words, blocks = visual_words(fmap, vocabularies, 4, intra=True, power=0.5)
    descs = vocabularies.local_pca.transform(aggregation.local_descriptors(fmap))
    distances = ((descs[:, None] - vocabularies.centroids[4][None]) ** 2).sum(-1)
    assert words.shape == (2, 5) and words.ravel().tolist() == distances.argmin(1).tolist()
    np.testing.assert_allclose(blocks.ravel(), encodings.vlad(descs, vocabularies.centroids[4], intra=True, power=0.5,
                                                                l2=False), rtol=1e-6)
    with pytest.raises(ValueError, match="no vocabulary of size 3"):
        visual_words(fmap, vocabularies, 3)

