"""Ranking by inner product, and query expansion, on vectors small enough to check by eye."""

import numpy as np
import pytest

from cbir_lab.search import alpha_query_expansion, average_query_expansion, rank, similarities

DB = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]], dtype=np.float32)


def test_rank_returns_db_indices_by_column_most_similar_first():
    q = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    ranks = rank(q, DB)
    assert ranks.shape == (4, 2)
    assert ranks[:, 0].tolist() == [0, 3, 2, 1]  # similarities 1, .8, .6, 0
    assert ranks[:, 1].tolist() == [1, 2, 3, 0]


def test_rank_top_k_and_a_single_query_vector():
    assert rank(np.array([1.0, 0.0]), DB, k=2).tolist() == [[0], [3]]


def test_ties_are_broken_by_the_smaller_index():
    db = np.array([[1.0, 0.0]] * 5, dtype=np.float32)
    assert rank(db[:1], db)[:, 0].tolist() == [0, 1, 2, 3, 4]
    assert rank(db[:1], db, k=3, block_size=2)[:, 0].tolist() == [0, 1, 2]


def test_blocked_search_equals_one_block():
    rng = np.random.default_rng(0)
    db = rng.standard_normal((1000, 16)).astype(np.float32)
    q = rng.standard_normal((7, 16)).astype(np.float32)
    assert np.array_equal(rank(q, db, k=50, block_size=64), rank(q, db, k=50, block_size=10**6))
    assert np.array_equal(rank(q, db, block_size=100), np.argsort(-(q @ db.T), axis=1, kind="stable").T)


def test_faiss_backend_matches_numpy():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    db = rng.standard_normal((300, 8)).astype(np.float32)
    q = rng.standard_normal((4, 8)).astype(np.float32)
    assert np.array_equal(rank(q, db, k=10, backend="faiss"), rank(q, db, k=10))


def test_mismatched_dimensions_and_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="query_vecs have dimension 3 but db_vecs have dimension 2"):
        rank(np.ones((1, 3)), DB)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        rank(DB, DB, k=0)
    with pytest.raises(ValueError, match="NaN"):
        rank(np.array([[np.nan, 0.0]]), DB)
    with pytest.raises(ValueError, match="unknown backend"):
        rank(DB, DB, backend="annoy")


def test_similarities_are_inner_products():
    assert similarities(DB[2], DB)[0].tolist() == pytest.approx([0.6, 0.8, 1.0, 0.96])


def test_average_query_expansion_by_hand():
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    # top-2 of q are DB[0] = (1, 0) and DB[3] = (.8, .6): q + both = (2.8, 0.6), then L2
    expected = np.array([2.8, 0.6]) / np.hypot(2.8, 0.6)
    np.testing.assert_allclose(average_query_expansion(q, DB, k=2)[0], expected, rtol=1e-6)


def test_alpha_query_expansion_weights_by_similarity_power():
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    # weights 1^3 = 1 and .8^3 = .512
    v = np.array([1.0, 0.0]) + 1.0 * np.array([1.0, 0.0]) + 0.512 * np.array([0.8, 0.6])
    np.testing.assert_allclose(alpha_query_expansion(q, DB, k=2, alpha=3)[0], v / np.linalg.norm(v), rtol=1e-6)
    assert np.allclose(alpha_query_expansion(q, DB, k=2, alpha=0), average_query_expansion(q, DB, k=2))
