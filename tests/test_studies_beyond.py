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
    assert np.array_equal(study.plain, plain)
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


def test_dba_and_diffusion_rows_are_lesson_8s_rankings_costed(embedded):
    from cbir_lab.rerank import database_augmentation, diffusion_rank

    dataset, q, db = embedded
    study = beyond_table(dataset, q, db, top_k=5, k1=5, k2=2, verifier=SpatialVerifier(max_side=256), dba_k=3,
                         diffusion=(5, 0.8))
    names = [row.method for row in study.rows]
    assert names[1:4] == ["k-reciprocal (k1=5, k2=2, λ=0.3)", "DBA (k=3)", "diffusion (k=5, α=0.8)"]
    assert study.rows[2].scores == score(rank(q, database_augmentation(db, k=3, alpha=3.0)), dataset).scores
    assert study.rows[3].scores == score(diffusion_rank(q, db, k=5, alpha=0.8, k_query=5), dataset).scores
    baseline, _, dba, diffusion = study.costs[:4]
    assert dba.bytes_per_image == baseline.bytes_per_image and dba.offline_seconds > 0  # the database replaced, once
    assert diffusion.bytes_per_image > baseline.bytes_per_image  # plus the graph's edges


def test_inlier_counts_by_kind_on_a_revisited_toy():
    from types import SimpleNamespace

    from cbir_lab.studies.beyond import format_inlier_counts

    toy = SimpleNamespace(gnd=[{"easy": [0], "hard": [1], "junk": [2]}, {"easy": [3], "hard": [], "junk": []}])
    ranks = np.array([[0, 3], [1, 0], [2, 1]])
    text = format_inlier_counts(toy, ranks, np.array([[50, 20], [9, 4], [30, 0]]), min_inliers=15)
    assert text.splitlines() == [
        "top 3 of 2 queries  results  ≥ 15 inliers  median  most",
        "easy positives            2             2    35.0    50",
        "hard positives            1             0     9.0     9",
        "junk                      1             1    30.0    30",
        "negatives                 2             0     2.0     4",
    ]


def test_side_by_side_puts_descriptors_and_rerankings_in_one_table_with_extraction_costed(tmp_path):
    from cbir_lab.features import FeatureCache
    from cbir_lab.pipeline import extract_dataset, global_descriptors
    from cbir_lab.studies.beyond import side_by_side
    from tests.fixtures_features import photo_dataset

    dataset = photo_dataset(tmp_path, protocol="revisited")
    cache = FeatureCache(tmp_path / "cache")
    result = side_by_side(dataset, backbones=("efficientnet_lite0",), scale_sets=((1.0,), (1.0, 0.5)), max_side=64,
                          top_k=2, k1=2, k2=1, dba_k=1, verifier_settings={"max_side": 64}, timing_images=1,
                          cache=cache)
    assert [row.method for row in result.rows] == [
        "Lite0, 64 px", "Lite0, 64+32 px", "+ k-reciprocal (k1=2, k2=1, λ=0.3)", "+ DBA (k=1)",
        "+ spatial verification (top 2)", "+ verified QE", "+ verified QE + k-reciprocal + SV",
        "Lite0, 64+32 px + verified QE + k-reciprocal + SV"]
    assert [c.method for c in result.costs] == [row.method for row in result.rows]
    assert result.rows[:2] == result.scaling_rows  # the descriptors' rows are the scaling study's
    # the re-rankings are beyond_table's, of the first descriptor
    features = extract_dataset(dataset, "efficientnet_lite0", 64, cache, False, scales=(1.0,))
    q, db = global_descriptors(features, "SPoC")
    assert result.rows[2].scores == score(k_reciprocal_rank(q, db, k1=2, k2=1), dataset).scores
    assert result.rows[-1].scores == result.combined.rows[-1].scores
    # each row's cost includes its descriptor's extraction: per query one image, once the database
    extract = result.scaling_costs[0].seconds_per_image
    for own, cost in zip(result.study.costs[1:], result.costs[2:7]):
        assert cost.seconds_per_query == pytest.approx(own.seconds_per_query + extract)
        assert cost.offline_seconds == pytest.approx(own.offline_seconds + extract * dataset.n_db)
        assert cost.bytes_per_image == own.bytes_per_image
    assert result.costs[0].offline_seconds == pytest.approx(extract * dataset.n_db)
    assert result.costs[1].seconds_per_query > result.scaling_costs[1].seconds_per_image  # plus the ranking
    with pytest.raises(ValueError, match="must be among the study's"):
        side_by_side(dataset, backbones=("efficientnet_lite0",), scale_sets=((1.0,),), combine=("efficientnet_lite1",
                                                                                                  (1.0,)))
