"""Ranking by inner product, and recall against it, on vectors small enough to check by eye."""

import tracemalloc

import numpy as np
import pytest

from cbir_lab import search
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


def reference_ranking(q: np.ndarray, db: np.ndarray, k: int) -> np.ndarray:
    """The top k of each query by brute force, (k, n_q): exact float64 products, np.lexsort by (score desc, index asc)."""
    exact = np.atleast_2d(q).astype(np.float64) @ db.astype(np.float64).T
    index = np.arange(db.shape[0])
    return np.stack([np.lexsort((index, -row))[:k] for row in exact], axis=1)


# Scores against Q_TIES (integers, so exact in float32 whatever the BLAS sums first):
#   query 0 ([1, 0]):  2 2 1 2 1 1 2 1 3 2 0 2   (a 3 at index 8, then six 2s straddling every block boundary)
#   query 1 ([0, 1]):  0 0 0 0 0 0 0 0 0 0 0 0   (all tied: the ranking is the database order)
#   query 2 ([-1, 1]): -2 -2 -1 -2 -1 -1 -2 -1 -3 -2 0 -2
DB_TIES = np.array([[2, 0], [2, 0], [1, 0], [2, 0], [1, 0], [1, 0], [2, 0], [1, 0], [3, 0], [2, 0], [0, 0], [2, 0]],
                   dtype=np.float32)
Q_TIES = np.array([[1, 0], [0, 1], [-1, 1]], dtype=np.float32)


@pytest.mark.parametrize("block_size", list(range(1, 14)) + [None])
def test_every_k_and_blocking_equals_brute_force_on_exact_ties(block_size):
    n_db = DB_TIES.shape[0]
    for k in range(1, n_db + 1):
        expected = reference_ranking(Q_TIES, DB_TIES, k)
        assert np.array_equal(rank(Q_TIES, DB_TIES, k=k, block_size=block_size), expected), (k, block_size)
        for query in range(Q_TIES.shape[0]):  # one query alone (a matrix-vector product)
            got = rank(Q_TIES[query], DB_TIES, k=k, block_size=block_size)
            assert np.array_equal(got, expected[:, query : query + 1]), (k, block_size, query)
    assert reference_ranking(Q_TIES, DB_TIES, 4)[:, 0].tolist() == [8, 0, 1, 3]  # the rule, by hand
    assert reference_ranking(Q_TIES, DB_TIES, 3)[:, 2].tolist() == [10, 2, 4]


def test_k_1_and_k_n_db_and_a_block_per_row():
    db = np.array([[0.0], [1.0], [1.0], [0.5], [1.0]], dtype=np.float32)
    q = np.array([[1.0], [-1.0]], dtype=np.float32)
    assert rank(q, db, k=1, block_size=1).tolist() == [[1, 0]]
    assert rank(q, db, k=5, block_size=1)[:, 0].tolist() == [1, 2, 4, 3, 0]
    assert rank(q, db, k=5, block_size=1)[:, 1].tolist() == [0, 3, 1, 2, 4]
    assert np.array_equal(rank(q, db, k=5, block_size=2), rank(q, db))
    assert np.array_equal(rank(q, db, k=50, block_size=3), rank(q, db))  # k beyond the database: all of it


def test_a_tie_at_the_kth_score_in_a_later_block_loses_to_the_smaller_index():
    # Block 1 (rows 0-3) fills the top 2 with scores 5 and 4; block 2 has another 4 (row 6, larger
    # index: stays out) and a 4.5 (row 5: enters); block 3 ties the new second place (row 8: stays out).
    db = np.array([[5], [1], [4], [0], [2], [4.5], [4], [1], [4.5]], dtype=np.float32)
    for block_size in (3, 4):
        assert rank(np.ones(1, np.float32), db, k=2, block_size=block_size)[:, 0].tolist() == [0, 5]
        assert rank(np.ones(1, np.float32), db, k=4, block_size=block_size)[:, 0].tolist() == [0, 5, 8, 2]


def test_a_database_in_increasing_score_order_replaces_the_best_at_every_block():
    # Every block holds k scores above the k best so far: each block hands over its own top k.
    db = np.repeat(np.arange(40, dtype=np.float32), 2)[:, None]  # 0 0 1 1 2 2 ...: ties in pairs
    q = np.array([[1.0], [-1.0]], dtype=np.float32)
    for k, block_size in ((1, 3), (3, 4), (5, 10), (7, 7), (80, 9)):
        assert np.array_equal(rank(q, db, k=k, block_size=block_size), reference_ranking(q, db, k)), (k, block_size)
    assert rank(q, db, k=3, block_size=4)[:, 0].tolist() == [78, 79, 76]


@pytest.mark.parametrize("seed", range(4))
def test_random_ties_against_brute_force(seed):
    # Small integer vectors: most scores tie. Every combination of sizes, k and blocking is drawn.
    rng = np.random.default_rng(seed)
    for _ in range(150):
        n_db, n_q, dim = int(rng.integers(1, 80)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
        db = rng.integers(-2, 3, (n_db, dim)).astype(np.float32)
        q = rng.integers(-2, 3, (n_q, dim)).astype(np.float32)
        k, block_size = int(rng.integers(1, n_db + 1)), int(rng.integers(1, n_db + 2))
        assert np.array_equal(rank(q, db, k=k, block_size=block_size), reference_ranking(q, db, k)), \
            (n_db, n_q, dim, k, block_size)


def test_keys_order_by_score_desc_then_index_asc_and_keep_the_score():
    # Every kind of float32: ±0 (equal scores), subnormals, the extremes, exact ties, both signs.
    tiny, big = np.finfo(np.float32).smallest_subnormal, np.finfo(np.float32).max
    values = np.array([0.0, -0.0, tiny, -tiny, 1.0, -1.0, 0.5, -0.5, big, -big, 1e-30, -1e-30, 3.0, -3.0],
                      dtype=np.float32)
    rng = np.random.default_rng(4)
    scores = np.concatenate([values, rng.choice(values, 50), rng.standard_normal(50).astype(np.float32)])
    index = rng.permutation(2**32 - 1 - np.arange(scores.size, dtype=np.int64))  # indices up to 2**32 - 1
    keys = search._keys(scores[None, :], index)[0]
    expected = np.lexsort((index, -scores.astype(np.float64)))  # -0.0 == 0.0 for np.lexsort too
    assert np.array_equal(np.argsort(keys, kind="stable"), expected)
    assert np.unique(keys).size == keys.size
    assert np.array_equal(search._key_index(keys), index)
    assert np.array_equal(search._key_scores(keys), scores)  # == : -0.0 and 0.0 compare equal
    assert search._keys(np.array([[0.0, -0.0]], np.float32), np.array([1, 0]))[0].tolist() == \
        search._keys(np.array([[0.0, 0.0]], np.float32), np.array([1, 0]))[0].tolist()


def test_blocks_cover_the_database_in_nearly_equal_parts():
    assert search._blocks(10, 4) == [(0, 4), (4, 7), (7, 10)]  # not (0, 4), (4, 8), (8, 10)
    assert search._blocks(5, 1) == [(i, i + 1) for i in range(5)]
    assert search._blocks(3, 10) == [(0, 3)]
    for n_db in range(1, 60):
        for block_size in range(1, n_db + 2):
            blocks = search._blocks(n_db, block_size)
            sizes = [stop - start for start, stop in blocks]
            assert blocks[0][0] == 0 and blocks[-1][1] == n_db
            assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
            assert max(sizes) <= block_size and max(sizes) - min(sizes) <= 1
            assert len(blocks) == -(-n_db // block_size)


def test_similarities_are_the_scores_rank_orders_by_bit_for_bit(monkeypatch):
    # Random floats, default blocks made small so that there are several: similarities equals
    # numpy's product block by block, and rank's order is a stable sort of exactly these scores.
    monkeypatch.setattr(search, "_default_block_size", lambda n_queries: 700)
    rng = np.random.default_rng(5)
    db = rng.standard_normal((3000, 64)).astype(np.float32)
    db[1500:1510] = db[100]  # duplicates: exact ties in different blocks
    q = rng.standard_normal((6, 64)).astype(np.float32)
    q[5] = db[100]
    scores = similarities(q, db)
    assert search._blocks(3000, 700) == [(0, 600), (600, 1200), (1200, 1800), (1800, 2400), (2400, 3000)]
    for start, stop in search._blocks(3000, 700):
        assert np.array_equal(scores[:, start:stop], q @ db[start:stop].T)
    by_scores = np.argsort(-scores, axis=1, kind="stable").T
    assert np.array_equal(rank(q, db), by_scores)
    assert np.array_equal(rank(q, db, k=40), by_scores[:40])
    assert by_scores[:11, 5].tolist() == [100] + list(range(1500, 1510))


def test_memory_beyond_the_data_is_bounded_by_the_block_not_the_database():
    # numpy reports its arrays to tracemalloc: the peak of a top-k search is a few block-sized
    # work arrays (scores, a byte mask, the candidates), far from the (n_q, n_db) score matrix.
    rng = np.random.default_rng(3)
    n_q, n_db, block_size, k = 100, 50_000, 500, 10
    db = rng.standard_normal((n_db, 4)).astype(np.float32)
    q = rng.standard_normal((n_q, 4)).astype(np.float32)
    block_bytes = n_q * (block_size + k) * 4
    # random scores; every score tied; every block better than the last (each block's own top k)
    for data in (db, np.ones_like(db), np.sort(db, axis=0)):
        tracemalloc.start()
        try:
            rank(q, data, k=k, block_size=block_size)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 * block_bytes and peak < n_q * n_db * 4 / 10, (peak, block_bytes)


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
