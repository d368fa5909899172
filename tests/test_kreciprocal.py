"""k-reciprocal re-ranking: the sets worked by hand, the Jaccard distance by hand, and the whole re-ranking
against a line-by-line transcription of the paper's definitions."""

import numpy as np
import pytest

from cbir_lab.kreciprocal import (
    expanded_reciprocal_sets,
    jaccard_distance,
    k_reciprocal_rank,
    k_reciprocal_sets,
    neighbour_lists,
    reciprocal_encodings,
)
from cbir_lab.search import rank

# ---------------------------------------------------------------- the sets, by hand

# Six images and their distances (symmetric; every row's distances differ, so no ties):
#        0     1     2     3     4     5
TOY = np.array([
    [0.0, 2.0, 3.0, 1.0, 7.0, 8.0],     # 0
    [2.0, 0.0, 2.5, 5.0, 9.0, 9.5],     # 1
    [3.0, 2.5, 0.0, 6.0, 10.0, 10.5],   # 2
    [1.0, 5.0, 6.0, 0.0, 1.5, 1.8],     # 3
    [7.0, 9.0, 10.0, 1.5, 0.0, 1.2],    # 4
    [8.0, 9.5, 10.5, 1.8, 1.2, 0.0],    # 5
])
# N(p, 2), itself first, then its two nearest:
#   N(0) = 0, 3 (1), 1 (2)      N(1) = 1, 0 (2), 2 (2.5)    N(2) = 2, 1 (2.5), 0 (3)
#   N(3) = 3, 0 (1), 4 (1.5)    N(4) = 4, 5 (1.2), 3 (1.5)  N(5) = 5, 4 (1.2), 3 (1.8)
# R(p, 2) keeps the g of N(p) whose own N(g) holds p:
#   R(0) = {0, 1, 3}: 3 and 1 both list 0
#   R(1) = {0, 1, 2}: 0 lists 1, 2 lists 1
#   R(2) = {1, 2}:    1 lists 2, but N(0) = 0, 3, 1 has no 2
#   R(3) = {0, 3, 4}: 0 lists 3, 4 lists 3
#   R(4) = {3, 4, 5}: 5 lists 4, 3 lists 4
#   R(5) = {4, 5}:    4 lists 5, but N(3) = 3, 0, 4 has no 5
TOY_LISTS = [[0, 3, 1], [1, 0, 2], [2, 1, 0], [3, 0, 4], [4, 5, 3], [5, 4, 3]]
TOY_R2 = [[0, 1, 3], [0, 1, 2], [1, 2], [0, 3, 4], [3, 4, 5], [4, 5]]


def test_neighbour_lists_by_hand():
    lists = neighbour_lists(-TOY, k=2)
    assert lists.dtype == np.int64 and lists.tolist() == TOY_LISTS


def test_k_reciprocal_sets_by_hand():
    assert [r.tolist() for r in k_reciprocal_sets(neighbour_lists(-TOY, k=2), 2)] == TOY_R2


def test_the_expansion_adds_nothing_when_the_half_sets_have_fewer_than_four_members():
    # k = 2: R(g, 1) is {g} or {g, its mutual nearest}; it joins only when more than 2/3 of it is
    # inside R(p, 2) already, i.e. all of it: nothing new.
    assert [r.tolist() for r in expanded_reciprocal_sets(neighbour_lists(-TOY, k=2), 2)] == TOY_R2


# Eight images on a line, at these positions (distance = |x_i - x_j|):
LINE = np.array([5.0, 7.0, 10.0, 17.0, 28.0, 30.0, 34.0, 36.0])
# With k = 6 each image's list leaves out exactly one other, its farthest:
# 36 (image 7) for the images at 5, 7, 10, 17; and 5 (image 0) for those at 28, 30, 34, 36.
#   R(0, 6): N(0) = 0..6, but 4, 5, 6 leave 0 out         -> {0, 1, 2, 3}
#   R(1, 6): N(1) = 0..6, and every one of them lists 1    -> {0, ..., 6}
# The expansion, h = round(6 / 2) = 3 (N(·, 3): itself and its 3 nearest):
#   N(6, 3) = 6, 7 (2), 5 (4), 4 (6); 7, 5 and 4 each list 6 among their 3 nearest -> R(6, 3) = {4, 5, 6, 7}
#   3 of its 4 members (4, 5, 6) are in R(1, 6): 3 > 2/3 * 4, so 7 joins: R*(1, 6) = {0, ..., 7}
#   R(0, 6)'s members bring nothing new: R(1, 3) = {0, 1, 2, 3}, R(2, 3) = {0, 1, 2, 3},
#   R(3, 3) = {1, 2, 3} (4, at 28, is 3's third nearest, but 3 is not among 4's),
#   so R*(0, 6) = {0, 1, 2, 3}: the far group does not reach image 0.
LINE_SIMS = -np.abs(LINE[:, None] - LINE[None, :])


def test_the_expansion_by_hand_on_a_line():
    lists = neighbour_lists(LINE_SIMS, k=6)
    direct = k_reciprocal_sets(lists, 6)
    assert direct[0].tolist() == [0, 1, 2, 3]
    assert direct[1].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert k_reciprocal_sets(lists, 3)[6].tolist() == [4, 5, 6, 7]
    assert k_reciprocal_sets(lists, 3)[3].tolist() == [1, 2, 3]
    expanded = expanded_reciprocal_sets(lists, 6)
    assert expanded[1].tolist() == list(range(8))
    assert expanded[0].tolist() == [0, 1, 2, 3]


def test_an_image_is_first_in_its_own_list_even_beside_a_duplicate():
    sims = np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert neighbour_lists(sims, k=1).tolist() == [[0, 1], [1, 0], [2, 0]]


# ---------------------------------------------------------------- the Jaccard distance, by hand


def test_jaccard_distance_by_hand():
    a = [[0.5, 0.5, 0.0, 0.0]]
    b = [[0.25, 0.0, 0.75, 0.0], [0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    # with b0: min = .25 + 0 + 0, max = .5 + .5 + .75 -> 1 - .25 / 1.75 = 6/7
    # with b1 (the same): 0; with b2 (disjoint): 1
    np.testing.assert_allclose(jaccard_distance(a, b), [[6 / 7, 0.0, 1.0]], rtol=1e-12)


def test_jaccard_distance_of_rows_summing_to_one_uses_two_minus_the_shared_mass():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 5)), rng.random((4, 5))
    a, b = a / a.sum(1, keepdims=True), b / b.sum(1, keepdims=True)
    shared = np.minimum(a[:, None], b[None]).sum(-1)
    np.testing.assert_allclose(jaccard_distance(a, b), 1 - shared / (2 - shared), rtol=1e-12)
    import scipy.sparse

    np.testing.assert_allclose(jaccard_distance(scipy.sparse.csr_matrix(a), b), jaccard_distance(a, b), rtol=1e-12)


def test_jaccard_distance_of_two_empty_rows_is_one():
    assert jaccard_distance([[0.0, 0.0]], [[0.0, 0.0]]).tolist() == [[1.0]]


# ---------------------------------------------------------------- the encodings


def test_encodings_by_hand_and_rows_sum_to_one():
    # 0 = (1, 0), 1 = (.8, .6), 2 = (0, 1); k1 = 1: R(0) = R(1) = {0, 1}, R(2) = {2}
    v = reciprocal_encodings(np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), k1=1, k2=1).toarray()
    w = np.exp(-0.2)  # d(0, 1) = 1 - .8
    np.testing.assert_allclose(v, [[1 / (1 + w), w / (1 + w), 0], [w / (1 + w), 1 / (1 + w), 0], [0, 0, 1]], rtol=1e-6)
    # k2 = 2: each row becomes the mean of its own and its nearest's: 2's nearest is 1
    v2 = reciprocal_encodings(np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), k1=1, k2=2).toarray()
    np.testing.assert_allclose(v2[2], (v[2] + v[1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(v2.sum(axis=1), 1.0, rtol=1e-12)


# ---------------------------------------------------------------- the re-ranking


def brute_force_distances(q, db, k1, k2, lam):
    """The paper's definitions, line by line, in the graph of the database and the one query (its last node)."""
    x = np.vstack([db, q]).astype(np.float64)
    n = len(x)
    sims = x @ x.T

    def nn(p, k):
        others = sorted((i for i in range(n) if i != p), key=lambda i: (-sims[p, i], i))
        return [p] + others[:k]

    def recip(p, k):
        return {g for g in nn(p, k) if p in nn(g, k)}

    expanded = []
    for p in range(n):
        r = recip(p, k1)
        grown = set(r)
        for g in r:
            rg = recip(g, int(np.around(k1 / 2)))
            if len(rg & r) > 2 / 3 * len(rg):
                grown |= rg
        expanded.append(grown)
    v = np.zeros((n, n))
    for p in range(n):
        for g in expanded[p]:
            v[p, g] = np.exp(-(1 - sims[p, g]))
        v[p] /= v[p].sum()
    v_qe = np.array([v[nn(p, k2 - 1)].mean(axis=0) for p in range(n)])
    jac = np.array([1 - np.minimum(v_qe[-1], v_qe[g]).sum() / np.maximum(v_qe[-1], v_qe[g]).sum()
                    for g in range(n - 1)])
    return (1 - lam) * jac + lam * (1 - sims[-1, :-1])


def random_unit(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("k1, k2, lam", [(4, 3, 0.3), (6, 1, 0.0), (3, 5, 0.7), (40, 2, 0.3)])
def test_the_ranking_follows_the_definitions_line_by_line(k1, k2, lam):
    db, queries = random_unit(30, 8, 1), random_unit(3, 8, 2)
    ranks = k_reciprocal_rank(queries, db, k1=k1, k2=k2, lambda_value=lam)
    assert ranks.shape == (30, 3) and ranks.dtype == np.int64
    for i, q in enumerate(queries):
        expected = np.argsort(brute_force_distances(q, db, min(k1, 30), min(k2, 31), lam), kind="stable")
        assert ranks[:, i].tolist() == expected.tolist()


def test_lambda_one_gives_the_original_ranking():
    db, queries = random_unit(40, 6, 3), random_unit(5, 6, 4)
    np.testing.assert_array_equal(k_reciprocal_rank(queries, db, lambda_value=1.0), rank(queries, db))
    ties = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # equal scores: the smaller index first
    np.testing.assert_array_equal(k_reciprocal_rank([1.0, 0.0], ties, k1=1, lambda_value=1.0), rank([1.0, 0.0], ties))


def test_a_query_is_ranked_the_same_alone_or_in_a_batch():
    db, queries = random_unit(40, 6, 5), random_unit(4, 6, 6)
    batch = k_reciprocal_rank(queries, db, k1=5, k2=3)
    for i in range(4):
        np.testing.assert_array_equal(k_reciprocal_rank(queries[i], db, k1=5, k2=3)[:, 0], batch[:, i])


def test_reordering_or_rotating_the_database_changes_nothing_but_the_names():
    db, queries = random_unit(40, 6, 7), random_unit(3, 6, 8)
    ranks = k_reciprocal_rank(queries, db, k1=5, k2=3)
    perm = np.random.default_rng(9).permutation(40)  # new image j is old image perm[j]
    np.testing.assert_array_equal(perm[k_reciprocal_rank(queries, db[perm], k1=5, k2=3)], ranks)
    rotation, _ = np.linalg.qr(np.random.default_rng(10).normal(size=(6, 6)))
    rotated = k_reciprocal_rank(queries @ rotation.T.astype(np.float32), db @ rotation.T.astype(np.float32), k1=5, k2=3)
    np.testing.assert_array_equal(rotated, ranks)


def test_a_tight_group_that_never_lists_the_query_drops_below_the_querys_own_group():
    # On the unit circle: the query at 2 degrees, its group at 10, 16, 22, 28 (images 0-3), and a tight group
    # at -8, -9, -10, -11 (images 4-7) that is closer to the query than 16, 22 and 28 are.
    def at(deg):
        return [np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))]

    db = np.array([at(a) for a in (10, 16, 22, 28, -8, -9, -10, -11)], dtype=np.float32)
    q = np.array(at(2), dtype=np.float32)
    assert rank(q, db)[:, 0].tolist() == [0, 4, 5, 6, 7, 1, 2, 3]
    # Images 4-7 have each other as their 3 nearest, so the query is in none of their lists and shares
    # nothing with them; image 0 (at 8 degrees) lists it, and brings its own group along.
    assert k_reciprocal_rank(q, db, k1=3, k2=2, lambda_value=0.3)[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k1": 0}, r"^k1 must be a positive integer"),
        ({"k1": 2.5}, r"^k1 must be a positive integer"),
        ({"k2": 0}, r"^k2 must be a positive integer"),
        ({"lambda_value": 1.5}, r"^lambda_value must be a finite number in \[0, 1\]"),
        ({"lambda_value": -0.1}, r"^lambda_value must"),
        ({"lambda_value": np.nan}, r"^lambda_value must"),
        ({"query_vecs": [np.nan, 0.0]}, r"^query_vecs contains NaN"),
        ({"db_vecs": [[np.nan, 0.0]]}, r"^db_vecs contains NaN"),
        ({"query_vecs": [1.0, 0.0, 0.0]}, r"^query_vecs have dimension 3 but db_vecs have dimension 2"),
        ({"db_vecs": np.zeros((0, 2))}, r"^db_vecs is empty"),
        ({"db_vecs": np.zeros((2, 2, 2))}, r"^db_vecs must be a 2-D array"),
    ],
)
def test_bad_inputs_raise_naming_the_parameter(kwargs, message):
    args = {"query_vecs": [1.0, 0.0], "db_vecs": [[1.0, 0.0], [0.0, 1.0]], **kwargs}
    with pytest.raises(ValueError, match=message):
        k_reciprocal_rank(**args)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: neighbour_lists(np.zeros((2, 3)), 1), r"^sims must be a square"),
        (lambda: neighbour_lists(np.full((2, 2), np.nan), 1), r"^sims contains NaN"),
        (lambda: neighbour_lists(-TOY, 0), r"^k must be a positive integer"),
        (lambda: k_reciprocal_sets([[1, 0], [0, 1]], 1), r"^lists must start each row with its own index"),
        (lambda: k_reciprocal_sets([[0, 5], [1, 0]], 1), r"^lists must hold indices in \[0, 1\]"),
        (lambda: expanded_reciprocal_sets(np.zeros((2, 2)), 1), r"^lists must be an \(n, k \+ 1\) integer table"),
        (lambda: reciprocal_encodings([[1.0, 0.0]], k2=0), r"^k2 must"),
        (lambda: jaccard_distance([[-1.0, 0.0]], [[1.0, 0.0]]), r"^a must be non-negative"),
        (lambda: jaccard_distance([[1.0, 0.0]], [[1.0, 0.0, 0.0]]), r"^a has 2 columns but b has 3"),
        (lambda: jaccard_distance([[1.0, 0.0]], [[np.inf, 0.0]]), r"^b contains NaN"),
    ],
)
def test_bad_set_inputs_raise_naming_the_parameter(call, message):
    with pytest.raises(ValueError, match=message):
        call()
