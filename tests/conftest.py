"""Shared fixtures: small hand-made datasets whose feature maps are given, not computed.

* :func:`make_features` builds a :class:`~cbir_lab.pipeline.DatasetFeatures` from maps
  chosen by a test (image files are only made when ``image_dir`` is given: views
  that show thumbnails need them, the numbers do not).
* ``grouped_features``: 3 groups × 3 database views, one query per group, 12
  training maps; each group's maps share a strong channel pattern, so a query's
  own group ranks first. Query 2's third positive is junk instead.
* ``photo``: a 90 × 60 PNG of random pixels, for the tests that read one file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
import torch
from PIL import Image

from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.pipeline import DatasetFeatures


def make_features(
    query_maps: Sequence[torch.Tensor],
    db_maps: Sequence[torch.Tensor],
    train_maps: Sequence[torch.Tensor] = (),
    gnd: Sequence[dict] | None = None,
    *,
    protocol: str = "standard",
    groups: Sequence[str] | None = None,
    image_dir: Path | None = None,
    name: str = "toy",
) -> DatasetFeatures:
    """A dataset of the given maps. With ``image_dir``, each image is a small solid PNG there
    (query q: ``q{q}_query.png``; database: ``db{i}.png``); otherwise paths that are never read."""

    def paths(prefix: str, n: int, suffix: str = "") -> tuple[Path, ...]:
        if image_dir is None:
            return tuple(Path(f"/nonexistent/{prefix}{i}{suffix}.png") for i in range(n))
        made = []
        for i in range(n):
            path = Path(image_dir) / f"{prefix}{i}{suffix}.png"
            Image.new("RGB", (40, 30), ((53 * i) % 256, 97 if prefix == "q" else 180, 40 * len(prefix))).save(path)
            made.append(path)
        return tuple(made)

    dataset = RetrievalDataset(
        name=name,
        db_images=paths("db", len(db_maps)),
        query_images=paths("q", len(query_maps), "_query"),
        gnd=None if gnd is None else tuple(gnd),
        protocol=protocol if gnd is not None else "none",
        train_images=paths("t", len(train_maps)),
        groups=None if groups is None else tuple(groups),
    )
    return DatasetFeatures(dataset, "toy", 64, list(query_maps), list(db_maps), list(train_maps))


@pytest.fixture
def photo(tmp_path) -> Path:
    """A 90 × 60 PNG of random pixels (seeded)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def grouped_features(tmp_path_factory) -> DatasetFeatures:
    """3 groups × 3 database images, one query per group, 12 training images; random maps with a group signal."""
    generator = torch.Generator().manual_seed(0)
    patterns = torch.rand(3, 16, 1, 1, generator=generator) * 3

    def fmap(group: int | None) -> torch.Tensor:
        noise = torch.rand(16, 4, 5, generator=generator)
        return noise if group is None else noise + patterns[group]

    gnd = [{"ok": [0, 1, 2], "junk": []}, {"ok": [3, 4, 5], "junk": []}, {"ok": [6, 7], "junk": [8]}]
    return make_features(
        [fmap(g) for g in range(3)], [fmap(g) for g in range(3) for _ in range(3)], [fmap(None) for _ in range(12)],
        gnd, groups=[f"g{g}" for g in range(3) for _ in range(3)], image_dir=tmp_path_factory.mktemp("images"),
    )
