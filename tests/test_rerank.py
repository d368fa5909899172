"""Re-ranking: query expansion, DBA and diffusion, on inputs small enough to check by hand."""

import numpy as np
import pytest
import scipy.sparse

from cbir_lab.rerank import (
    alpha_query_expansion,
    average_query_expansion,
    database_augmentation,
    diffusion_rank,
    diffusion_scores,
    knn_affinity,
    normalized_affinity,
    reached_only_by_diffusion,
)
from cbir_lab.search import rank

# Four unit vectors whose inner products are round numbers:
# 0·1 = .8, 0·2 = .6, 0·3 = 0, 1·2 = .96, 1·3 = .6, 2·3 = .8
FOUR = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


# ---------------------------------------------------------------- query expansion

DB = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, 0.6]], dtype=np.float32)


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


# ---------------------------------------------------------------- DBA


def test_dba_with_one_neighbour_and_alpha_0_adds_the_nearest_vector():
    db = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    # nearest neighbours: 0 -> 1 (.8), 1 -> 0 (.8 beats .6), 2 -> 1 (.6 beats 0)
    out = database_augmentation(db, k=1, alpha=0.0)
    assert out.shape == (3, 2) and out.dtype == np.float32
    expected = [unit([1.8, 0.6]), unit([1.8, 0.6]), unit([0.8, 1.6])]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_dba_weights_neighbours_by_similarity_to_the_power_alpha():
    db = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    out = database_augmentation(db, k=1, alpha=3.0)
    # d0' = L2(d0 + .8^3 d1) = L2((1 + .512 * .8, .512 * .6))
    np.testing.assert_allclose(out[0], unit([1.4096, 0.3072]), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)


def test_dba_excludes_the_vectors_own_index_even_when_another_ties_with_it():
    # (1, 0) has inner product 1 with itself and with (1, 1), which has the smaller
    # index and so ranks first: dropping "the first result" would keep (1, 0) itself.
    db = np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    out = database_augmentation(db, k=1, alpha=0.0)
    # 0: self 2, then 1 and 2 tie at 1 -> 1;  1: 0 (tie with self);  2: 0 (tie with self)
    expected = [unit([2.0, 1.0]), unit([2.0, 1.0]), unit([1.0, 2.0])]
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_dba_clips_k_to_the_other_vectors_and_keeps_a_lone_vector():
    db = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    everything = unit(db.sum(axis=0))
    np.testing.assert_allclose(database_augmentation(db, k=10, alpha=0.0), [everything] * 3, atol=1e-6)
    np.testing.assert_allclose(database_augmentation([[3.0, 4.0]], k=5), [[0.6, 0.8]], atol=1e-6)


# ---------------------------------------------------------------- k-NN graph


def test_knn_affinity_mutual_keeps_only_reciprocal_neighbours():
    # nearest neighbours (k = 1): 0 -> 1, 1 -> 2, 2 -> 1, 3 -> 2; only 1 <-> 2 is reciprocal
    A = knn_affinity(FOUR, k=1, gamma=1.0)
    assert isinstance(A, scipy.sparse.csr_matrix) and A.shape == (4, 4)
    expected = np.zeros((4, 4))
    expected[1, 2] = expected[2, 1] = 0.96
    np.testing.assert_allclose(A.toarray(), expected, atol=1e-6)


def test_knn_affinity_non_mutual_keeps_an_edge_if_either_end_chose_it():
    A = knn_affinity(FOUR, k=1, gamma=1.0, mutual=False).toarray()
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[1, 0] = 0.8
    expected[1, 2] = expected[2, 1] = 0.96
    expected[2, 3] = expected[3, 2] = 0.8
    np.testing.assert_allclose(A, expected, atol=1e-6)


def test_knn_affinity_raises_similarities_to_gamma_is_symmetric_with_zero_diagonal():
    A = knn_affinity(FOUR, k=2, gamma=3.0, mutual=False)
    dense = A.toarray()
    assert np.array_equal(dense, dense.T)
    assert np.all(np.diag(dense) == 0)
    assert dense[1, 2] == pytest.approx(0.96**3, abs=1e-6)


def test_knn_affinity_links_duplicates_to_each_other_never_to_themselves():
    v, w = [1.0, 0.0], [0.0, 1.0]
    A = knn_affinity(np.array([v, v, w]), k=1, gamma=3.0).toarray()
    assert np.all(np.diag(A) == 0)
    assert A[0, 1] == A[1, 0] == pytest.approx(1.0)
    # Three copies, k = 1: copy 2's top 2 is (0, 1), without itself; its neighbour is 0,
    # while 0 and 1 choose each other, so 2 is linked to 0 only when mutual=False.
    u = [0.6, 0.8]
    triple = np.array([v, v, v, u])
    mutual = knn_affinity(triple, k=1, gamma=1.0).toarray()
    either = knn_affinity(triple, k=1, gamma=1.0, mutual=False).toarray()
    assert np.all(np.diag(mutual) == 0) and np.all(np.diag(either) == 0)
    assert {(i, j) for i, j in zip(*np.nonzero(mutual)) if i < j} == {(0, 1)}
    assert {(i, j) for i, j in zip(*np.nonzero(either)) if i < j} == {(0, 1), (0, 2), (0, 3)}  # 3's nearest: 0 (.6)


def test_knn_affinity_drops_edges_of_negative_similarity():
    A = knn_affinity(np.array([[1.0, 0.0], [-1.0, 0.0]]), k=1, mutual=False)
    assert A.nnz == 0  # max(0, -1)^gamma = 0, not even stored


def test_an_isolated_node_has_a_zero_row_and_no_nan_after_normalisation():
    A = knn_affinity(FOUR, k=1, gamma=1.0)  # nodes 0 and 3 have no reciprocal neighbour
    S = normalized_affinity(A).toarray()
    assert np.isfinite(S).all()
    assert np.all(S[[0, 3]] == 0) and np.all(S[:, [0, 3]] == 0)
    assert S[1, 2] == pytest.approx(1.0)  # .96 / sqrt(.96 * .96)


# ---------------------------------------------------------------- normalisation and the closed form

# A chain a - b - c - d and an unrelated pair e - f, weights chosen by hand.
CHAIN_AND_PAIR = np.zeros((6, 6))
for i, j, w in [(0, 1, 1.0), (1, 2, 0.5), (2, 3, 0.25), (4, 5, 1.0)]:
    CHAIN_AND_PAIR[i, j] = CHAIN_AND_PAIR[j, i] = w


def test_normalized_affinity_by_hand_symmetric_with_eigenvalues_in_minus_one_one():
    S = normalized_affinity(scipy.sparse.csr_matrix(CHAIN_AND_PAIR)).toarray()
    # degrees: a 1, b 1.5, c .75, d .25, e 1, f 1
    assert S[0, 1] == pytest.approx(1.0 / np.sqrt(1.0 * 1.5))
    assert S[2, 3] == pytest.approx(0.25 / np.sqrt(0.75 * 0.25))
    assert S[4, 5] == pytest.approx(1.0)
    assert np.array_equal(S, S.T)
    eigenvalues = np.linalg.eigvalsh(S)
    assert eigenvalues.min() >= -1 - 1e-12 and eigenvalues.max() <= 1 + 1e-12
    # both components are bipartite: eigenvalues 1 (D^1/2 1) and -1 are reached
    assert eigenvalues.max() == pytest.approx(1.0) and eigenvalues.min() == pytest.approx(-1.0)
    np.testing.assert_array_equal(normalized_affinity(CHAIN_AND_PAIR).toarray(), S)  # a dense A works too


def test_diffusion_on_two_linked_nodes_by_hand():
    # S = [[0, 1], [1, 0]], y = (1, 0): f = (1, alpha) / (1 - alpha^2) = (4/3, 2/3) for alpha = 1/2
    S = normalized_affinity(np.array([[0.0, 2.0], [2.0, 0.0]]))
    f = diffusion_scores([1.0, 0.0], np.eye(2), S, alpha=0.5, k_query=1, gamma=1.0)
    np.testing.assert_allclose(f, [[4 / 3, 2 / 3]], rtol=1e-6)


def test_diffusion_scores_equal_the_dense_solution():
    S = normalized_affinity(CHAIN_AND_PAIR)
    db = np.eye(6)  # image i is the unit vector e_i, so q^T d_i is q's i-th coordinate
    # (values exact in float32, the precision vectors are searched in, so y is exact too)
    q = np.array([[0.75, 0.5, 0.25, 0, 0, 0], [0, 0, 0.5, 0.75, 0, 0]])
    alpha = 0.9
    f = diffusion_scores(q, db, S, alpha=alpha, k_query=2, gamma=2.0, tol=1e-12, maxiter=None)
    y = np.array([[0.5625, 0.25, 0, 0, 0, 0], [0, 0, 0.25, 0.5625, 0, 0]])  # max(0, q^T d)^2 on the top 2 only
    expected = np.linalg.solve(np.eye(6) - alpha * S.toarray(), y.T).T
    assert f.shape == (2, 6)
    np.testing.assert_allclose(f, expected, rtol=1e-9, atol=1e-12)
    assert np.all(f[:, 4:] == 0)  # the pair e - f is not connected to the chain: never reached
    # the paper's 20 iterations are plenty on a 4-node chain
    np.testing.assert_allclose(diffusion_scores(q, db, S, alpha=alpha, k_query=2, gamma=2.0), expected, rtol=1e-5)
    # queries are solved one by one: a batch gives the rows of single queries
    np.testing.assert_allclose(
        diffusion_scores(q[1], db, S, alpha=alpha, k_query=2, gamma=2.0, tol=1e-12, maxiter=None), f[1:], rtol=1e-12
    )


def test_diffusion_rank_breaks_ties_by_the_smaller_index():
    # no edges: f = y, non-zero only on the query's nearest image; the rest tie at 0
    S = scipy.sparse.csr_matrix((4, 4))
    assert diffusion_rank([0.0, 0.0, 1.0, 0.0], np.eye(4), k_query=1, S=S)[:, 0].tolist() == [2, 0, 1, 3]


# ---------------------------------------------------------------- the chain effect

# Thirteen images along an arc of the xy-plane, -30° to 90° in steps of 10°
# (index i at 10 i - 30 degrees), and one off the arc, 45° out of the plane.
ARC_DEGREES = np.arange(-30, 91, 10)
ARC = np.stack([np.cos(np.deg2rad(ARC_DEGREES)), np.sin(np.deg2rad(ARC_DEGREES)), 0 * ARC_DEGREES], axis=1)
OFF_ARC = np.array([np.cos(np.deg2rad(45)), 0.0, np.sin(np.deg2rad(45))])
CHAIN_DB = np.vstack([ARC, OFF_ARC])
FAR_END, DISTRACTOR = 12, 13  # the arc's end at 90°, and the off-arc image
QUERY = np.array([1.0, 0.0, 0.0])  # the arc at 0° (image 3)


def test_the_chain_graph_links_neighbours_along_the_arc_and_isolates_the_distractor():
    A = knn_affinity(CHAIN_DB, k=2, gamma=3.0).toarray()
    edges = {(i, j) for i, j in zip(*np.nonzero(A)) if i < j}
    assert edges == {(i, i + 1) for i in range(12)}  # 10° apart: reciprocal; 20°: never both ways
    assert np.all(A[DISTRACTOR] == 0)  # its nearest images (.707, .696) prefer their arc neighbours (.985)


def test_diffusion_ranks_the_far_end_of_the_chain_above_a_closer_distractor():
    sims = CHAIN_DB @ QUERY
    assert sims[DISTRACTOR] == pytest.approx(np.sqrt(0.5)) and sims[FAR_END] == pytest.approx(0.0)
    baseline = rank(QUERY, CHAIN_DB)
    assert baseline[-1, 0] == FAR_END  # the least similar of all
    assert FAR_END not in baseline[:10, 0] and DISTRACTOR in baseline[:10, 0]

    S = normalized_affinity(knn_affinity(CHAIN_DB, k=2, gamma=3.0))
    f = diffusion_scores(QUERY, CHAIN_DB, S, alpha=0.99, k_query=10, gamma=3.0)[0]
    # The distractor is among the query's 10 neighbours but isolated: f = y = .707^3 ...
    assert f[DISTRACTOR] == pytest.approx(np.sqrt(0.5) ** 3, rel=1e-6)
    # ... while the whole chain, its far end included, is reached through the arc.
    assert f[FAR_END] > f[DISTRACTOR]
    assert np.all(f[:13] > f[DISTRACTOR])

    diffused = diffusion_rank(QUERY, CHAIN_DB, k=2, alpha=0.99, k_query=10, gamma=3.0)
    assert diffused[-1, 0] == DISTRACTOR
    assert np.array_equal(diffused, np.argsort(-f, kind="stable")[:, None])
    positives = [range(13)]  # the arc is one object seen from 13 viewpoints
    reached = reached_only_by_diffusion(baseline, diffused, positives, top=13)
    assert len(reached) == 1 and reached[0].tolist() == [FAR_END]
    assert reached_only_by_diffusion(baseline, baseline, positives, top=13)[0].tolist() == []


def test_diffusion_rank_with_a_precomputed_graph_is_the_same():
    S = normalized_affinity(knn_affinity(CHAIN_DB, k=2, gamma=3.0))
    queries = np.stack([QUERY, CHAIN_DB[8]])
    assert np.array_equal(diffusion_rank(queries, CHAIN_DB, k=2, S=S), diffusion_rank(queries, CHAIN_DB, k=2))


def test_reached_only_by_diffusion_keeps_diffusions_order():
    baseline = np.array([[0, 0], [5, 1], [6, 2], [1, 3]])
    diffused = np.array([[0, 0], [3, 1], [1, 2], [2, 3]])
    out = reached_only_by_diffusion(baseline, diffused, positives=[{1, 2, 3}, [9]], top=4)
    assert [o.tolist() for o in out] == [[3, 2], []]  # 1 was already in the baseline's top 4


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: database_augmentation(FOUR, k=0), r"^k must"),
        (lambda: database_augmentation(FOUR, k=1.5), r"^k must"),
        (lambda: database_augmentation(FOUR, alpha=-1.0), r"^alpha must"),
        (lambda: database_augmentation(FOUR, alpha=np.nan), r"^alpha must"),
        (lambda: database_augmentation([[np.nan, 0.0]]), r"^db_vecs contains NaN"),
        (lambda: knn_affinity(FOUR, k=0), r"^k must"),
        (lambda: knn_affinity(FOUR, gamma=0.0), r"^gamma must"),
        (lambda: knn_affinity(np.zeros((0, 2))), r"^db_vecs is empty"),
        (lambda: normalized_affinity(np.zeros((2, 3))), r"^A must be a square"),
        (lambda: normalized_affinity(np.array([[0.0, 1.0], [0.0, 0.0]])), r"^A must be symmetric"),
        (lambda: normalized_affinity(np.array([[0.0, -1.0], [-1.0, 0.0]])), r"^A must be non-negative"),
        (lambda: normalized_affinity(np.array([[0.0, np.nan], [np.nan, 0.0]])), r"^A contains NaN"),
    ],
)
def test_bad_graph_inputs_raise_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


S_FOUR = normalized_affinity(knn_affinity(FOUR, k=1))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"alpha": 0.0}, r"^alpha must"),
        ({"alpha": 1.0}, r"^alpha must"),
        ({"alpha": 1.5}, r"^alpha must"),
        ({"k_query": 0}, r"^k_query must"),
        ({"gamma": -1.0}, r"^gamma must"),
        ({"tol": 0.0}, r"^tol must"),
        ({"maxiter": 0}, r"^maxiter must"),
        ({"S": scipy.sparse.identity(3, format="csr")}, r"^S must have shape"),
        ({"S": np.array([[0.0, 1.0], [0.0, 0.0]])}, r"^S must be symmetric"),
        ({"query_vecs": [np.nan, 0.0]}, r"^query_vecs contains NaN"),
        ({"query_vecs": [1.0, 0.0, 0.0]}, r"^query_vecs have dimension 3 but db_vecs have dimension 2"),
    ],
)
def test_bad_diffusion_inputs_raise_naming_the_parameter(kwargs, name):
    args = {"query_vecs": [1.0, 0.0], "db_vecs": FOUR, "S": S_FOUR, **kwargs}
    with pytest.raises(ValueError, match=name):
        diffusion_scores(**args)


def test_diffusion_rank_checks_alpha_before_building_the_graph():
    with pytest.raises(ValueError, match=r"^alpha must"):
        diffusion_rank([1.0, 0.0], FOUR, alpha=1.0)


@pytest.mark.parametrize(
    "args, name",
    [
        ((np.zeros((4, 1)), np.zeros((4, 1)), [[0]], 0), r"^top must"),
        ((np.zeros((2, 1)), np.zeros((4, 1)), [[0]], 3), r"^baseline_ranks holds 2"),
        ((np.zeros((4, 1)), np.zeros(4), [[0]], 3), r"^diffusion_ranks must have shape"),
        ((np.zeros((4, 1)), np.zeros((4, 2)), [[0], [0]], 3), r"^baseline_ranks has 1 queries but diffusion_ranks has 2"),
        ((np.zeros((4, 2)), np.zeros((4, 2)), [[0]], 3), r"^positives has 1"),
    ],
)
def test_bad_comparison_inputs_raise_naming_the_parameter(args, name):
    with pytest.raises(ValueError, match=name):
        reached_only_by_diffusion(*args)
