"""Shared fixtures: small hand-made datasets whose feature maps are given, not computed.

* ``make_grouped_features``: a factory of datasets in groups, each group's maps sharing a
  channel pattern over random noise, so that a query's own group ranks first. The maps
  are built with :func:`tests.fixtures_features.make_features`, which tests import from
  there to build datasets of their own maps.
* ``grouped_features``: 3 groups × 3 database views, one query per group, 12
  training maps, with image files; query 2's third positive is junk instead.
* ``whitening_features``: 4 groups × 3 database views, one query per group, 40
  training maps of 24 channels: enough for the whitening sweeps.
* ``photo``: a 90 × 60 PNG of random pixels, for the tests that read one file.

The test run trains lesson 9's descriptor in its quick setting (one epoch): this file sets
``CBIR_LAB_QUICK_TRAINING=1`` unless the environment already says otherwise, and the kernels
nbval starts inherit it. The slow tier's check of the stored real-photo outputs unsets it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from cbir_lab.learning import QUICK_ENV
from cbir_lab.pipeline import DatasetFeatures
from tests.fixtures_features import make_features

os.environ.setdefault(QUICK_ENV, "1")


@pytest.fixture
def photo(tmp_path) -> Path:
    """A 90 × 60 PNG of random pixels (seeded)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="session")
def make_grouped_features(tmp_path_factory) -> Callable[..., DatasetFeatures]:
    """A factory of grouped datasets: ``make_grouped_features(groups, views, channels, size, signal, n_train)``.

    Each group g has a channel pattern (uniform in [0, ``signal``), one value per channel,
    the same in every cell); its query and its ``views`` database maps are uniform noise
    in [0, 1) plus that pattern, the ``n_train`` training maps noise alone. Group g's
    database maps are rows ``views·g .. views·g + views - 1``, all positives of query g.
    Random numbers come from one generator seeded 0, drawn in this order: the patterns,
    the queries, the database, the training maps.

    Keyword Args:
        junk_last: the last group's last view is junk rather than a positive.
        named_groups: give the database its group labels ``g0``, ``g1``, …
        images: write a small PNG per image (for views that show thumbnails).
    """

    def make(groups: int, views: int, channels: int, size: tuple[int, int], signal: float, n_train: int, *,
             junk_last: bool = False, named_groups: bool = False, images: bool = False) -> DatasetFeatures:
        generator = torch.Generator().manual_seed(0)
        patterns = torch.rand(groups, channels, 1, 1, generator=generator) * signal

        def fmap(group: int | None = None) -> torch.Tensor:
            noise = torch.rand(channels, *size, generator=generator)
            return noise if group is None else noise + patterns[group]

        gnd = [{"ok": [views * g + i for i in range(views)], "junk": []} for g in range(groups)]
        if junk_last:
            gnd[-1] = {"ok": gnd[-1]["ok"][:-1], "junk": gnd[-1]["ok"][-1:]}
        return make_features(
            [fmap(g) for g in range(groups)], [fmap(g) for g in range(groups) for _ in range(views)],
            [fmap() for _ in range(n_train)], gnd,
            groups=[f"g{g}" for g in range(groups) for _ in range(views)] if named_groups else None,
            image_dir=tmp_path_factory.mktemp("images") if images else None,
        )

    return make


@pytest.fixture(scope="module")
def grouped_features(make_grouped_features) -> DatasetFeatures:
    """3 groups × 3 database images, one query per group, 12 training images; random maps with a group signal."""
    return make_grouped_features(3, 3, 16, (4, 5), 3.0, 12, junk_last=True, named_groups=True, images=True)


@pytest.fixture(scope="module")
def whitening_features(make_grouped_features) -> DatasetFeatures:
    """4 groups × 3 database views and 1 query each, 40 training maps of 24 channels; a weak group signal."""
    return make_grouped_features(4, 3, 24, (3, 3), 0.6, 40)


@pytest.fixture(scope="module")
def unit_descriptors():
    """25 descriptors, a 4-word vocabulary and a 3-component GMM learned on 300 others, all of unit scale,
    so that plain Gaussian densities in the encodings' loop re-implementations never underflow."""
    from cbir_lab.aggregation import DiagonalGMM, KMeansVocabulary

    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 3))
    descs = rng.normal(size=(25, 3))
    centroids = KMeansVocabulary(k=4, seed=0).fit(train).centroids_.astype(np.float64)
    gmm = DiagonalGMM(k=3, seed=0).fit(train)
    return descs, centroids, gmm
