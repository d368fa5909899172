"""Beyond one global vector (cbir_lab.studies.beyond): the re-ranking modules' rankings, scored and costed,
on the embedded set's real photos with deliberately weak descriptors (8 x 8 thumbnails) and a small top k."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from cbir_lab.datasets import load_dataset
from cbir_lab.evaluation import score
from cbir_lab.images import load_image
from cbir_lab.kreciprocal import k_reciprocal_rank
from cbir_lab.search import rank
from cbir_lab.studies.beyond import MethodCost, beyond_table, format_costs
from cbir_lab.verification import SpatialVerifier, rerank_by_inliers

pytestmark = pytest.mark.skipif(importlib.util.find_spec("cv2") is None,
                                reason="needs OpenCV: pip install opencv-python-headless")


def thumbnail(item) -> np.ndarray:
    """A weak global descriptor: the 8 x 8 greyscale thumbnail, centred and L2-normalised."""
    x = np.asarray(load_image(item).convert("L").resize((8, 8)), dtype=np.float32).ravel()
    x -= x.mean()
    return x / np.linalg.norm(x)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    dataset = load_dataset("embedded", root=tmp_path_factory.mktemp("data"))
    q = np.stack([thumbnail(item) for item in dataset.queries()])
    db = np.stack([thumbnail(path) for path in dataset.db_images])
    return dataset, q, db


@pytest.fixture(scope="module")
def study(embedded):
    dataset, q, db = embedded
    return beyond_table(dataset, q, db, top_k=5, k1=5, k2=2, verifier=SpatialVerifier(max_side=256))


def test_the_rows_are_the_modules_rankings_scored(embedded, study):
    dataset, q, db = embedded
    names = ["baseline", "k-reciprocal (k1=5, k2=2, λ=0.3)", "spatial verification (top 5)", "verified QE",
             "verified QE + k-reciprocal + SV"]
    assert [row.method for row in study.rows] == names == [cost.method for cost in study.costs]
    plain = rank(q, db)
    assert study.rows[0].scores == score(plain, dataset).scores
    assert study.rows[1].scores == score(k_reciprocal_rank(q, db, k1=5, k2=2), dataset).scores
    assert study.inliers.shape == (5, dataset.n_queries)
    assert study.rows[2].scores == score(rerank_by_inliers(plain, study.inliers), dataset).scores
    assert all(row.clusters == dataset.clusters() for row in study.rows)  # intervals resample source photos


def test_verification_on_real_views_keeps_out_every_negative(embedded, study):
    dataset, q, db = embedded
    plain = rank(q, db)
    positive = np.array([[plain[r, i] in dataset.gnd[i]["ok"] for i in range(dataset.n_queries)] for r in range(5)])
    verified = study.inliers >= 15
    assert not (verified & ~positive).any()  # no unrelated view reaches 15 inliers
    assert (verified & positive).sum() > 0.8 * positive.sum()  # most of the true ones do
    assert study.rows[-1].scores["mAP"] > study.rows[0].scores["mAP"] + 0.05


def test_the_costs_add_up(embedded, study):
    dataset, q, db = embedded
    baseline, reciprocal, verified, expanded, combined = study.costs
    assert baseline.bytes_per_image == db.shape[1] * 4 and baseline.offline_seconds == 0.0
    assert reciprocal.bytes_per_image == baseline.bytes_per_image + (5 + 1) * 16  # the lists: index + similarity
    assert verified.bytes_per_image > 10 * baseline.bytes_per_image  # local features outweigh a 64-D vector
    assert verified.offline_seconds > 0 and verified.seconds_per_query > baseline.seconds_per_query
    assert combined.seconds_per_query >= expanded.seconds_per_query
    text = format_costs(study.costs)
    assert text.splitlines()[0].split("  ")[0] == "method" and len(text.splitlines()) == 6


def test_descriptors_of_another_dataset_are_refused(embedded):
    dataset, q, db = embedded
    with pytest.raises(ValueError, match=r"^query_vecs and db_vecs have 2 and 150 rows, but the dataset has 25"):
        beyond_table(dataset, q[:2], db)


def test_format_costs_by_hand():
    text = format_costs([MethodCost("a", 0.5, 2.0, 2048.0), MethodCost("longer name", 0.25, 0.0, 512.0)])
    assert text.splitlines() == [
        "method       per query (s)  database, once (s)  per image (KiB)",
        "a                   0.5000                 2.0              2.0",
        "longer name         0.2500                 0.0              0.5",
    ]
