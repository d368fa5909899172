r"""k-reciprocal re-ranking (Zhong, Zheng, Cao & Li, CVPR 2017): trust the neighbours that choose each other.

An image g near a query p may be a false match that p happens to resemble; if p is
also among g's own nearest images, the two choose each other, which a false match
rarely does. The re-ranking compares p and g by how much their sets of such mutual
neighbours overlap.

* :func:`neighbour_lists`: each image, then its k most similar others.
* :func:`k_reciprocal_sets`: :math:`R(p, k) = \{g \in N(p, k) : p \in N(g, k)\}`.
* :func:`expanded_reciprocal_sets`: :math:`R^*(p, k)`, R(p, k) grown by the
  round(k/2)-reciprocal sets of its members that lie mostly (more than 2/3) inside it.
* :func:`reciprocal_encodings`: V, each image's :math:`R^*` as a Gaussian-weighted
  vector over the images, averaged over its k₂ nearest images (local query expansion).
* :func:`jaccard_distance`: :math:`d_J = 1 - \sum_j \min(V_{a j}, V_{b j}) / \sum_j \max(V_{a j}, V_{b j})`.
* :func:`k_reciprocal_rank`: the whole re-ranking, :math:`d^* = (1 - \lambda)\, d_J + \lambda\, d`,
  in :func:`cbir_lab.search.rank`'s layout.

The distance is the cosine distance of L2-normalised descriptors,
:math:`d(p, g) = 1 - p^\top g = \lVert p - g \rVert^2 / 2`. Each query is re-ranked on its
own, in the graph of the database and that query: other queries never enter it (the
authors' code puts every probe in one graph, so probes change each other's results).
So the database's neighbour lists are computed once, and each query is inserted into
them in turn.

scipy is imported inside the functions that build sparse encodings.
"""

from __future__ import annotations

import numpy as np

from cbir_lab._array import as_matrix
from cbir_lab.rerank import _database_neighbours, _real
from cbir_lab.search import _check_pair, _positive_int, similarities

__all__ = [
    "neighbour_lists",
    "k_reciprocal_sets",
    "expanded_reciprocal_sets",
    "reciprocal_encodings",
    "jaccard_distance",
    "k_reciprocal_rank",
]


def _half(k: int) -> int:
    """round(k / 2) as the authors' code rounds it (``np.around``: halves to even, so 5 → 2 and 7 → 4)."""
    return int(np.around(k / 2))


def _lists_from_similarities(sims: np.ndarray, k: int, row_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``row_ids`` of a similarity matrix → (lists, their similarities), each (rows, k + 1), itself first.

    The others follow by decreasing similarity, ties broken by the smaller index (a stable sort).
    """
    work = np.array(sims, dtype=np.float64)
    rows = np.arange(len(row_ids))
    work[rows, row_ids] = np.inf  # itself first, whatever the rounding of its own similarity
    order = np.argsort(-work, axis=1, kind="stable")[:, : k + 1]
    values = np.take_along_axis(np.asarray(sims, dtype=np.float64), order, axis=1)
    return order.astype(np.int64), values


def neighbour_lists(sims, k: int) -> np.ndarray:
    """Each image, then its k most similar others: :math:`N(p, k)` with p first.

    Ties are broken by the smaller index. An image is always first in its own list,
    even where a duplicate has the same similarity (as in the authors' code, where
    p ∈ N(p, k), so p ∈ R(p, k)).

    Args:
        sims: (n, n) similarities (any score where larger is closer: ``-distances`` works).
        k: neighbours besides itself (clipped to n - 1).

    Returns:
        int64 indices, shape (n, min(k, n - 1) + 1): row p is p, then its neighbours, nearest first.

    Examples:
        >>> d = np.array([[0, 1, 3], [1, 0, 1.5], [3, 1.5, 0]])    # distances
        >>> neighbour_lists(-d, k=1).tolist()
        [[0, 1], [1, 0], [2, 1]]
    """
    s = np.asarray(sims, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0:
        raise ValueError(f"sims must be a square (n, n) matrix, got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("sims contains NaN")
    k = min(_positive_int(k, "k"), s.shape[0] - 1)
    return _lists_from_similarities(s, k, np.arange(s.shape[0]))[0]


def _check_lists(lists, k: int) -> tuple[np.ndarray, int]:
    """``lists`` as an int64 (n, ≥ k + 1) table, each row starting with its own index; k clipped to its width."""
    table = np.asarray(lists)
    if table.ndim != 2 or table.shape[0] == 0 or not np.issubdtype(table.dtype, np.integer):
        raise ValueError(f"lists must be an (n, k + 1) integer table from neighbour_lists, got shape {table.shape}")
    n = table.shape[0]
    if table.min() < 0 or table.max() >= n:
        raise ValueError(f"lists must hold indices in [0, {n - 1}]")
    if not np.array_equal(table[:, 0], np.arange(n)):
        raise ValueError("lists must start each row with its own index (see neighbour_lists)")
    k = min(_positive_int(k, "k"), table.shape[1] - 1)
    return table.astype(np.int64, copy=False), k


def _reciprocal_mask(lists: np.ndarray, k: int, rows: np.ndarray) -> np.ndarray:
    """For rows p: which of N(p, k) = lists[p, :k + 1] have p in their own N(·, k), i.e. are in R(p, k). (rows, k + 1)."""
    forward = lists[rows, : k + 1]
    backward = lists[forward, : k + 1]  # (rows, k + 1, k + 1)
    return (backward == rows[:, None, None]).any(axis=2)


def _expanded_members(lists: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R*(p, k) of rows p as (row position, member) pairs, sorted, without duplicates.

    R*(p, k) = R(p, k) ∪ the R(g, h) (h = round(k/2)) of its members g with
    |R(g, h) ∩ R(p, k)| > 2/3 |R(g, h)|.
    """
    h = _half(k)
    forward = lists[rows, : k + 1]  # (r, k + 1)
    in_r = _reciprocal_mask(lists, k, rows)  # (r, k + 1): R(p, k)
    candidates = lists[forward, : h + 1]  # (r, k + 1, h + 1): N(g, h) of each g in N(p, k)
    in_rh = _reciprocal_mask(lists, h, forward.ravel()).reshape(candidates.shape)  # which form R(g, h)
    inside = ((candidates[..., None] == forward[:, None, None, :]) & in_r[:, None, None, :]).any(axis=3)
    overlap = (inside & in_rh).sum(axis=2)
    size = in_rh.sum(axis=2)
    grow = in_r & (3 * overlap > 2 * size)  # "more than 2/3", in integers
    position = np.arange(len(rows))
    pos = np.concatenate([np.broadcast_to(position[:, None], forward.shape)[in_r],
                          np.broadcast_to(position[:, None, None], candidates.shape)[in_rh & grow[..., None]]])
    members = np.concatenate([forward[in_r], candidates[in_rh & grow[..., None]]])
    pairs = np.unique(np.stack([pos, members], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _as_sets(rows: np.ndarray, members: np.ndarray, n: int) -> list[np.ndarray]:
    """(row, member) pairs, sorted by row, as one sorted int64 array per row."""
    bounds = np.searchsorted(rows, np.arange(n + 1))
    return [members[bounds[i]: bounds[i + 1]].astype(np.int64) for i in range(n)]


def k_reciprocal_sets(lists, k: int) -> list[np.ndarray]:
    r"""The k-reciprocal nearest neighbours of every image.

    .. math:: R(p, k) = \{g \in N(p, k) : p \in N(g, k)\}

    with :math:`N(p, k)` = p and its k nearest others (so p ∈ R(p, k)).

    Args:
        lists: (n, ≥ k + 1) from :func:`neighbour_lists` (each row: itself, then its neighbours).
        k: the neighbourhood size (clipped to the lists' width).

    Returns:
        n sorted int64 arrays: R(p, k) for each image p.

    Examples:
        >>> lists = np.array([[0, 1], [1, 0], [2, 1]])       # 0 and 1 choose each other; 2 chooses 1
        >>> [r.tolist() for r in k_reciprocal_sets(lists, 1)]
        [[0, 1], [0, 1], [2]]

    Reference:
        Qin, Gammeter, Bossard, Quack & Van Gool, "Hello neighbor: accurate object retrieval
        with k-reciprocal nearest neighbors", CVPR 2011; Zhong et al., CVPR 2017, arXiv:1701.08398.
    """
    table, k = _check_lists(lists, k)
    rows = np.arange(table.shape[0])
    mask = _reciprocal_mask(table, k, rows)
    return [np.sort(table[p, : k + 1][mask[p]]) for p in rows]


def expanded_reciprocal_sets(lists, k: int) -> list[np.ndarray]:
    r"""The k-reciprocal sets grown by their members' round(k/2)-reciprocal sets (Zhong et al., CVPR 2017, eq. 6).

    .. math::

        R^*(p, k) = R(p, k) \cup R(g, \tfrac{k}{2}) \quad \text{for every } g \in R(p, k)
        \text{ with } \big|R(p, k) \cap R(g, \tfrac{k}{2})\big| > \tfrac{2}{3}\big|R(g, \tfrac{k}{2})\big|

    A true match that missed R(p, k) (it has p just outside its own k nearest) comes
    back through a member it shares many mutual neighbours with. k/2 is rounded as
    the authors' code rounds it (``np.around``, halves to even: 5 → 2, 7 → 4). Since
    R(g, k/2) holds g, a new image joins only when R(g, k/2) has at least 4 members.

    Args:
        lists: (n, ≥ k + 1) from :func:`neighbour_lists`.
        k: the neighbourhood size (clipped to the lists' width).

    Returns:
        n sorted int64 arrays: R*(p, k) for each image p.

    Reference:
        Zhong, Zheng, Cao & Li, "Re-ranking Person Re-identification with k-reciprocal
        Encoding", CVPR 2017, arXiv:1701.08398.
    """
    table, k = _check_lists(lists, k)
    rows, members = _expanded_members(table, k, np.arange(table.shape[0]))
    return _as_sets(rows, members, table.shape[0])


def _encode(lists: np.ndarray, k1: int, k2: int, sim_of) -> scipy.sparse.csr_matrix:
    """V after local query expansion, from lists (n, ≥ max(k1, k2 - 1) + 1); ``sim_of(a, b)`` gives the pairs' p·g."""
    import scipy.sparse

    n = lists.shape[0]
    rows, members = _expanded_members(lists, k1, np.arange(n))
    weight = np.exp(-(1.0 - sim_of(rows, members)))  # exp(-d), d = 1 - p.g
    weight /= np.bincount(rows, weight, minlength=n)[rows]
    v = scipy.sparse.csr_matrix((weight, (rows, members)), shape=(n, n))
    if k2 == 1:
        return v
    expand = scipy.sparse.csr_matrix(
        (np.full(n * k2, 1.0 / k2), (np.repeat(np.arange(n), k2), lists[:, :k2].ravel())), shape=(n, n))
    return (expand @ v).tocsr()


def _pair_similarities(vecs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """vecs[a] · vecs[b] for each pair, float64, in chunks so memory stays O(chunk × D)."""
    out = np.empty(len(a))
    for start in range(0, len(a), 8192):
        part = slice(start, start + 8192)
        out[part] = np.einsum("ed,ed->e", vecs[a[part]], vecs[b[part]])
    return out


def reciprocal_encodings(vecs, k1: int = 20, k2: int = 6) -> scipy.sparse.csr_matrix:
    r"""Each image's expanded k-reciprocal set as a Gaussian-weighted vector, averaged over its k₂ nearest.

    .. math::

        V_{p g} = \frac{e^{-d(p, g)}}{\sum_{g' \in R^*(p, k_1)} e^{-d(p, g')}} \ \text{ if } g \in R^*(p, k_1),
        \ 0 \text{ otherwise}; \qquad V_p \leftarrow \frac{1}{k_2} \sum_{g \in N(p, k_2 - 1)} V_g

    with :math:`d(p, g) = 1 - p^\top g`. The sum runs over p and its k₂ − 1 nearest
    others (the authors' ``initial_rank[i, :k2]``), so k₂ = 1 leaves V as it is. Each row
    sums to 1. The authors' code weights by squared Euclidean distances scaled so each
    probe's farthest image is at 1; on L2-normalised descriptors
    :math:`\lVert p - g \rVert^2 = 2 - 2 p^\top g`, and half of it is on that scale already
    for non-negative descriptors (the farthest image about orthogonal, d ≈ 1)
    without depending on which images are in the set.

    Args:
        vecs: (n, D), L2-normalised: the images of one graph.
        k1: the k of :math:`R^*(p, k_1)` (clipped to n - 1).
        k2: neighbours averaged (itself included; clipped to n).

    Returns:
        V, a ``scipy.sparse.csr_matrix`` of float64, shape (n, n), rows summing to 1.

    Examples:
        >>> v = reciprocal_encodings(np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]), k1=1, k2=1)
        >>> print(v.toarray().round(3))        # 0 and 1 choose each other; 2 is alone
        [[0.55 0.45 0.  ]
         [0.45 0.55 0.  ]
         [0.   0.   1.  ]]

    Reference:
        Zhong et al., CVPR 2017, arXiv:1701.08398 (eq. 7 and 11).
    """
    import scipy.sparse

    x = as_matrix(vecs, "vecs", dtype=np.float64)
    if x.shape[0] == 0:
        raise ValueError("vecs is empty")
    n = x.shape[0]
    k1 = _positive_int(k1, "k1")
    k2 = _positive_int(k2, "k2")
    if n == 1:  # one image: its own set
        return scipy.sparse.csr_matrix(np.ones((1, 1)))
    k1, k2 = min(k1, n - 1), min(k2, n)
    lists = _lists_from_similarities(x @ x.T, max(k1, k2 - 1), np.arange(n))[0]
    return _encode(lists, k1, k2, lambda a, b: _pair_similarities(x, a, b))


def _jaccard_to_rows(row_cols: np.ndarray, row_vals: np.ndarray, other_csc, other_sums: np.ndarray) -> np.ndarray:
    """1 - Σ min / Σ max between one sparse row (its columns and values) and every row of ``other_csc``."""
    sub = other_csc[:, row_cols].tocoo()
    mins = np.minimum(sub.data, row_vals[sub.col])
    shared = np.bincount(sub.row, mins, minlength=other_csc.shape[0]).astype(np.float64)
    union = row_vals.sum() + other_sums - shared
    out = np.ones(other_csc.shape[0])
    np.divide(shared, union, out=shared, where=union > 0)
    np.subtract(1.0, shared, out=out, where=union > 0)
    return out


def jaccard_distance(a, b) -> np.ndarray:
    r"""The (weighted) Jaccard distance between every row of ``a`` and every row of ``b``.

    .. math:: d_J(a_i, b_j) = 1 - \frac{\sum_m \min(a_{im}, b_{jm})}{\sum_m \max(a_{im}, b_{jm})}

    For encodings whose rows sum to 1 (:func:`reciprocal_encodings`) the denominator is
    :math:`2 - \sum_m \min(a_{im}, b_{jm})`, which the authors' code uses. Two all-zero
    rows share nothing: their distance is 1.

    Args:
        a: (n_a, m) non-negative encodings, dense or scipy sparse.
        b: (n_b, m) likewise.

    Returns:
        float64 distances in [0, 1], shape (n_a, n_b).

    Examples:
        >>> jaccard_distance([[0.5, 0.5, 0.0]], [[0.25, 0.0, 0.75]])   # 1 - .25 / (.5 + .5 + .75)
        array([[0.85714286]])
    """
    import scipy.sparse

    mats = []
    for name, m in (("a", a), ("b", b)):
        m = scipy.sparse.csr_matrix(m, dtype=np.float64) if scipy.sparse.issparse(m) else \
            scipy.sparse.csr_matrix(as_matrix(m, name, dtype=np.float64, vector=True))
        if not np.isfinite(m.data).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        if (m.data < 0).any():
            raise ValueError(f"{name} must be non-negative")
        mats.append(m)
    a_csr, b_csr = mats
    if a_csr.shape[1] != b_csr.shape[1]:
        raise ValueError(f"a has {a_csr.shape[1]} columns but b has {b_csr.shape[1]}")
    b_csc, b_sums = b_csr.tocsc(), np.asarray(b_csr.sum(axis=1)).ravel()
    out = np.empty((a_csr.shape[0], b_csr.shape[0]))
    for i in range(a_csr.shape[0]):
        row = a_csr.getrow(i)
        out[i] = _jaccard_to_rows(row.indices, row.data, b_csc, b_sums)
    return out


def _database_lists(db: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The database's own lists (itself, then ``width`` others, padded with -1 / -inf where it has fewer).

    The others are :func:`~cbir_lab.search.rank`'s, by (similarity desc, index asc), itself
    excluded (:func:`cbir_lab.rerank._database_neighbours`), with their similarities.
    """
    n = db.shape[0]
    own = min(width, n - 1)
    lists = np.hstack([np.arange(n)[:, None], _database_neighbours(db, own) if own else np.zeros((n, 0), np.int64)])
    rows = np.repeat(np.arange(n), own + 1)
    sims = _pair_similarities(db.astype(np.float64), rows, lists.ravel()).reshape(lists.shape)
    if own < width:  # room for the query: the lists hold every image
        lists = np.hstack([lists, np.full((n, width - own), -1)])
        sims = np.hstack([sims, np.full((n, width - own), -np.inf)])
    return lists, sims


def _with_query(db_lists: np.ndarray, db_sims: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The lists of the graph "database + query" (the query is node n_db): the query inserted where it belongs.

    In row g, the query goes after every neighbour at least as similar to g (ties: the
    smaller index first, and the query's, n_db, is the largest); the last neighbour drops out.
    The query's own row: itself, then its nearest database images.
    """
    n, cols = db_lists.shape
    width = cols - 1
    position = 1 + (db_sims[:, 1:] >= s[:, None]).sum(axis=1)  # (n,)
    c = np.arange(cols)[None, :]
    before = np.take_along_axis(db_lists, np.clip(c - 1, 0, None).repeat(n, axis=0), axis=1)
    inserted = np.where(c < position[:, None], db_lists, np.where(c == position[:, None], n, before))
    query_row = np.concatenate([[n], np.argsort(-s, kind="stable")[:width]])
    return np.vstack([inserted, query_row])


def k_reciprocal_rank(query_vecs, db_vecs, k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> np.ndarray:
    r"""Re-rank the database by the k-reciprocal distance (Zhong et al., CVPR 2017).

    .. math:: d^*(q, g) = (1 - \lambda)\, d_J(q, g) + \lambda\, d(q, g), \qquad d(q, g) = 1 - q^\top g

    where :math:`d_J` is the :func:`jaccard_distance` of the :func:`reciprocal_encodings`
    of q and g. Each query is re-ranked alone, in the graph of the database and itself:
    its R*(q, k₁) checks that q is among each candidate's k₁ nearest in that graph, and
    the database images' encodings see the query where it enters their lists. Other
    queries never enter the graph, so a query's ranking is the same alone or in a batch.
    Ties are broken by the smaller index; λ = 1 gives :func:`~cbir_lab.search.rank`'s ranking.

    The defaults k₁ = 20, k₂ = 6, λ = 0.3 are the paper's, chosen for person
    re-identification (Market-1501), not for landmarks: how many true matches an
    image has sets the useful k₁, so tune them on held-out queries, never on the
    test queries.

    Cost, per query: the lists of the n_db + 1 images with the query inserted, then
    R* of every image, O(n_db · k₁² · k₁/2) comparisons, and the encodings' sparse
    products; the database's own lists (:func:`~cbir_lab.search.rank` of the database
    against itself) are computed once per call. Memory: the lists, O(n_db · k₁), and
    O(n_db · k₁²) per query. Measured on 2 busy cores with 512-D random vectors and
    the defaults: about 0.03 s per query for 238 images, under a second for 6,000.

    Args:
        query_vecs: (n_queries, D) or (D,), L2-normalised.
        db_vecs: (n_db, D), L2-normalised.
        k1: the k of the reciprocal sets (clipped to n_db).
        k2: neighbours averaged in the local query expansion, the image itself
            included (1: none; clipped to n_db + 1).
        lambda_value: λ, the weight of the original distance, in [0, 1].

    Returns:
        int64 database indices, shape (n_db, n_queries), best first: column q is query q's ranking.

    Raises:
        ValueError: k1 or k2 not a positive integer, lambda_value not in [0, 1],
            vectors of different dimensions, an empty database, or NaN.

    Examples:
        >>> db = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
        >>> k_reciprocal_rank([0.6, 0.8], db, k1=1, k2=1, lambda_value=1.0)[:, 0].tolist()   # λ = 1: the plain ranking
        [2, 1, 3, 0]

    Reference:
        Zhong, Zheng, Cao & Li, "Re-ranking Person Re-identification with k-reciprocal
        Encoding", CVPR 2017, arXiv:1701.08398.
    """
    q, db = _check_pair(query_vecs, db_vecs)
    k1 = _positive_int(k1, "k1")
    k2 = _positive_int(k2, "k2")
    lam = _real(lambda_value, "lambda_value", 0.0, 1.0)
    n = db.shape[0]
    k1, k2 = min(k1, n), min(k2, n + 1)
    db_lists, db_sims = _database_lists(db, max(k1, k2 - 1))
    scores = similarities(q, db).astype(np.float64)  # the numbers rank orders by
    db64 = db.astype(np.float64)
    out = np.empty((n, q.shape[0]), dtype=np.int64)
    for i, s in enumerate(scores):

        def sim_of(a: np.ndarray, b: np.ndarray, s: np.ndarray = s) -> np.ndarray:
            # pairs of database images from the vectors; a pair with the query (node n) from its scores
            out_ = np.empty(len(a))
            with_query = (a == n) | (b == n)
            other = np.minimum(a, b)[with_query]  # the database image of the pair (n: the query with itself)
            out_[with_query] = np.where(other == n, 1.0, s[np.minimum(other, n - 1)])
            both = ~with_query
            out_[both] = _pair_similarities(db64, a[both], b[both])
            return out_

        v = _encode(_with_query(db_lists, db_sims, s), k1, k2, sim_of)
        query_row, db_rows = v.getrow(n), v[:n].tocsc()
        jaccard = _jaccard_to_rows(query_row.indices, query_row.data, db_rows, np.asarray(db_rows.sum(axis=1)).ravel())
        out[:, i] = np.argsort((1.0 - lam) * jaccard + lam * (1.0 - s), kind="stable")
    return out
