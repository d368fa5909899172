"""Ranking by inner product, and recall against it, on vectors small enough to check by eye."""

import numpy as np
import pytest

from cbir_lab.search import rank, recall_at_k, similarities

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


def test_a_tie_at_the_top_k_boundary_keeps_the_smaller_index_in_every_blocking():
    # scores against q: 0.5, 1, 0.5, 0.5, 0.9, 0.5; the third place is a four-way tie at 0.5 (images 0, 2, 3, 5)
    db = np.array([[0.5, 0.0], [1.0, 0.0], [0.5, 0.0], [0.5, 0.0], [0.9, 0.0], [0.5, 0.0]], dtype=np.float32)
    q = np.array([1.0, 0.0], dtype=np.float32)
    for block_size in range(1, 7):
        assert rank(q, db, k=3, block_size=block_size)[:, 0].tolist() == [1, 4, 0], block_size
        assert rank(q, db, k=4, block_size=block_size)[:, 0].tolist() == [1, 4, 0, 2], block_size


@pytest.mark.parametrize("k, block_size", [(1, 7), (5, 64), (20, 16), (64, 5), (300, 128), (999, 250)])
def test_top_k_equals_a_plain_full_argsort(k, block_size):
    # small integers: every inner product is exact whatever the BLAS sums first, and many of them tie
    rng = np.random.default_rng(k)
    db = rng.integers(-2, 3, (1000, 6)).astype(np.float32)
    q = rng.integers(-2, 3, (9, 6)).astype(np.float32)
    exact = q.astype(np.float64) @ db.astype(np.float64).T
    expected = np.argsort(-exact, axis=1, kind="stable").T[:k]  # score desc, then the smaller index
    got = rank(q, db, k=k, block_size=block_size)
    assert got.dtype == np.int64 and got.flags.c_contiguous and got.shape == (k, 9)
    assert np.array_equal(got, expected)


def test_top_k_of_random_vectors_is_the_full_ranking_cut():
    rng = np.random.default_rng(2)
    db = rng.standard_normal((3000, 32)).astype(np.float32)
    q = rng.standard_normal((12, 32)).astype(np.float32)
    full = np.argsort(-similarities(q, db), axis=1, kind="stable").T  # the same product, one block
    assert np.array_equal(rank(q, db, k=100, block_size=3000), full[:100])
    assert np.array_equal(rank(q, db), full)


def test_faiss_backend_matches_numpy():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    db = rng.standard_normal((300, 8)).astype(np.float32)
    q = rng.standard_normal((4, 8)).astype(np.float32)
    ranks = rank(q, db, k=10, backend="faiss")
    assert np.array_equal(ranks, rank(q, db, k=10))
    assert ranks.dtype == np.int64 and ranks.flags.c_contiguous  # the same layout as the numpy backend's


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


def test_recall_at_k_checks_its_inputs():
    exact = np.array([[0, 1], [2, 3]])
    assert recall_at_k(exact, exact, 2) == 1.0
    assert recall_at_k(np.array([[-1, 1], [-1, 3]]), exact, 2) == 0.5  # padding counts as a miss
    with pytest.raises(ValueError, match="k=3 needs the top 3"):
        recall_at_k(exact, exact, 3)
    with pytest.raises(ValueError, match="same queries"):
        recall_at_k(exact[:, :1], exact, 1)
