"""Test helpers for the retrieval tests: a :class:`~cbir_lab.pipeline.DatasetFeatures` built from maps a test chooses.

Import :func:`make_features` (and :func:`unit_maps`, :func:`score_with_pca`) from here
(``tests.conftest`` is pytest's, not a module to import);
the grouped datasets built with it are the ``make_grouped_features`` fixture of ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.pipeline import DatasetFeatures

__all__ = ["make_features", "photo_dataset", "unit_maps", "score_with_pca"]


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


def photo_dataset(image_dir: Path, protocol: str = "standard"):
    """A dataset of 2 queries, 4 database and 3 training photos of random pixels (seeded), 90 × 60, in ``image_dir``.

    Queries 0 and 1 have database images (0, 1) and (2, 3) as positives (for ``"revisited"``: the first easy, the
    second hard)."""
    if protocol == "revisited":
        gnd = [{"easy": [0], "hard": [1], "junk": []}, {"easy": [2], "hard": [3], "junk": []}]
    else:
        gnd = [{"ok": [0, 1], "junk": []}, {"ok": [2, 3], "junk": []}]
    blank = [torch.zeros(1, 1, 1)]
    dataset = make_features(blank * 2, blank * 4, blank * 3, gnd=gnd, protocol=protocol, image_dir=image_dir).dataset
    rng = np.random.default_rng(0)
    for path in dataset.query_images + dataset.db_images + dataset.train_images:
        Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(path)
    return dataset


def unit_maps(rows) -> list[torch.Tensor]:
    """(D, 1, 1) maps whose MAC / SPoC descriptor is the row itself (then L2-normalised)."""
    return [torch.tensor(r, dtype=torch.float32).reshape(-1, 1, 1) for r in rows]


def score_with_pca(features: DatasetFeatures, pooling: str, part: str, d: int, power: float) -> float:
    """The mAP of a PCAWhitening fitted here on ``part``: the independent reference of the whitening sweeps."""
    from cbir_lab.evaluation import evaluate
    from cbir_lab.index import headline_score
    from cbir_lab.search import rank
    from cbir_lab.whitening import PCAWhitening

    pca = PCAWhitening(n_components=d, power=power).fit(features.pooled(part, pooling))
    ds = features.dataset
    ranks = rank(pca.transform(features.pooled("query", pooling)), pca.transform(features.pooled("db", pooling)))
    return headline_score(evaluate(ranks, ds.gnd, ds.protocol))
