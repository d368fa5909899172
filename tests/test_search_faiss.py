"""faiss indexes for large databases (exact and IVF), checked against ``rank`` on small, separable data."""

import numpy as np
import pytest

from cbir_lab.search import build_faiss_index, rank, search_index

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
