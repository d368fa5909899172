"""faiss indexes for large databases (exact and IVF), checked against ``rank`` on small, separable data."""

import numpy as np
import pytest

from cbir_lab.indexes import build_faiss_index, index_bytes_per_vector, search_index
from cbir_lab.search import rank, recall_at_k

faiss = pytest.importorskip("faiss")

DB = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]], dtype=np.float32)


def _random_unit(n, dim, seed):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_index_ranks_like_rank_in_the_same_layout():
    q = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    ids = search_index(build_faiss_index(DB, kind="flat"), q, k=3)
    assert ids.dtype == np.int64 and ids.shape == (3, 2)
    assert ids[:, 0].tolist() == [0, 3, 2]  # similarities 1, .8, .6
    assert ids[:, 1].tolist() == [1, 2, 3]
    assert search_index(build_faiss_index(DB), DB[0], k=10).shape == (4, 1)  # k clipped to the database


def test_ivf_scanning_every_cell_is_exact():
    db, q = _random_unit(2000, 16, 0), _random_unit(5, 16, 1)
    index = build_faiss_index(db, kind="ivf", nlist=8, nprobe=8)
    assert np.array_equal(search_index(index, q, k=20), rank(q, db, k=20))


def test_ivf_scanning_one_cell_sees_only_that_cluster_and_pads_with_minus_one():
    # Two tight clusters: 40 vectors near +x (ids 0..39), 40 near -x (ids 40..79).
    rng = np.random.default_rng(2)
    near_x = np.array([1.0, 0.0, 0.0]) + 0.01 * rng.standard_normal((40, 3))
    near_minus_x = np.array([-1.0, 0.0, 0.0]) + 0.01 * rng.standard_normal((40, 3))
    db = np.concatenate([near_x, near_minus_x]).astype(np.float32)
    index = build_faiss_index(db, kind="ivf", nlist=2, nprobe=1)
    ids = search_index(index, np.array([[1.0, 0.0, 0.0]], dtype=np.float32), k=50)
    assert sorted(ids[:40, 0].tolist()) == list(range(40))
    assert ids[40:, 0].tolist() == [-1] * 10


def test_default_nlist_is_sqrt_n_but_keeps_39_points_per_cell():
    assert build_faiss_index(_random_unit(400, 4, 3), kind="ivf").nlist == 10  # sqrt 20 > 400 // 39 = 10
    assert build_faiss_index(_random_unit(5, 4, 3), kind="ivf").nlist == 1


def test_bad_arguments_are_reported():
    with pytest.raises(ValueError, match="unknown index kind 'hnsw'"):
        build_faiss_index(DB, kind="hnsw")
    with pytest.raises(ValueError, match="nlist must be an integer in 1..n_db=4"):
        build_faiss_index(DB, kind="ivf", nlist=5)
    with pytest.raises(ValueError, match="nprobe must be a positive integer"):
        build_faiss_index(DB, kind="ivf", nlist=1, nprobe=0)
    with pytest.raises(ValueError, match="db_vecs is empty"):
        build_faiss_index(np.zeros((0, 2), dtype=np.float32))
    index = build_faiss_index(DB)
    with pytest.raises(ValueError, match="query_vecs have dimension 3 but the index has dimension 2"):
        search_index(index, np.ones((1, 3)), k=1)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        search_index(index, DB, k=0)


def _grid_vectors(n: int = 300, dim: int = 4, levels: int = 4, seed: int = 0) -> np.ndarray:
    """Vectors whose coordinates take only ``levels`` values each: a PQ with one sub-vector per
    coordinate and ≥ levels centroids stores them exactly."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, levels, size=(n, dim)).astype(np.float32) + 1.0) / levels


def test_pq_that_stores_every_vector_exactly_ranks_like_exact_search():
    db = _grid_vectors()
    q = _grid_vectors(5, seed=1)
    exact = search_index(build_faiss_index(db), q, k=10)
    for kind in ("pq", "ivfpq"):
        index = build_faiss_index(db, kind=kind, m=4, nbits=4, nlist=4, nprobe=4)
        approx = search_index(index, q, k=10)
        # same scores; ties between equal vectors may come in another order, so compare the scores
        assert np.allclose(np.sort((db[approx] * q[None]).sum(-1), axis=0), np.sort((db[exact] * q[None]).sum(-1), axis=0))
        assert recall_at_k(approx, exact, 10) >= 0.5


def test_memory_per_vector_by_hand():
    db = _random_unit(512, 16, 4)
    assert index_bytes_per_vector(build_faiss_index(db)) == 4 * 16
    assert index_bytes_per_vector(build_faiss_index(db, kind="pq", m=8, nbits=8)) == 8
    assert index_bytes_per_vector(build_faiss_index(db, kind="ivf", nlist=4)) == 4 * 16 + 8
    assert index_bytes_per_vector(build_faiss_index(db, kind="ivfpq", nlist=4, m=4, nbits=8)) == 4 + 8


def test_pq_arguments_are_checked():
    db = _random_unit(300, 6, 4)
    with pytest.raises(ValueError, match="m must be a positive integer dividing the dimension D=6"):
        build_faiss_index(db, kind="pq", m=4)
    with pytest.raises(ValueError, match="needs at least that many vectors, got 300"):
        build_faiss_index(db, kind="pq", m=3, nbits=9)
