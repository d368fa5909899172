"""Conv against FC descriptors (cbir_lab.studies.depth)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cbir_lab.studies.depth import depth_comparison, score_descriptors
from tests.fixtures_features import make_features, unit_maps


DB = [[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]]  # cosine with the query (1, 0): 0, 1, 0.6


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from PIL import Image

    from cbir_lab.datasets import load_dataset

    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for group in ("a", "b"):
        (root / group).mkdir()
        base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        for i in range(3):
            noisy = np.clip(base.astype(int) + rng.integers(-10, 10, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(root / group / f"{group}{i}.png")
    return load_dataset(str(root))


@pytest.mark.parametrize("backbone, layers, heads", [("efficientnet_lite0", ("blocks.6", "conv_head"), ["logits"]),
                                                     ("vgg16", ("conv5_3",), ["fc6", "fc7"])])
def test_depth_comparison_pools_each_layer_and_scores_the_heads(tiny_folder, backbone, layers, heads):
    torch.manual_seed(0)  # random weights: the shapes and the scoring are what is tested
    rows = depth_comparison(tiny_folder, backbone, layers=layers, poolings=("SPoC", "GeM"), max_side=64, weights=None)
    expected = [f"{layer} {p}" for layer in layers for p in ("SPoC", "GeM")]
    expected += [f"{head} (FC, {1000 if head == 'logits' else 4096}-D)" for head in heads]
    assert [r.method for r in rows] == expected
    for row in rows:
        assert 0 <= row.scores["mAP"] <= 1 and row.aps.shape == (tiny_folder.n_queries,)


def test_score_descriptors_by_hand():
    features = make_features(unit_maps([[1.0, 0.0]]), unit_maps(DB), gnd=[{"ok": [2], "junk": [1]}])
    row = score_descriptors("hand", features.dataset, np.array([[1.0, 0.0]]), np.array(DB))
    assert row.method == "hand" and row.dim == 2
    assert row.scores["mAP"] == pytest.approx(1.0) and row.aps.tolist() == [1.0]  # db2 first once junk db1 goes

