"""Re-ranking: improve what :func:`cbir_lab.search.rank` returns, using the database itself.

* :func:`average_query_expansion` and :func:`alpha_query_expansion`: re-query
  with the mean of the query and its top results (Chum et al., ICCV 2007;
  α-QE: Radenović, Tolias & Chum, TPAMI 2018).
* :func:`database_augmentation` (DBA, the database side of α-QE).
* Diffusion on the database's k-NN graph (Iscen et al., CVPR 2017):
  :func:`knn_affinity`, :func:`normalized_affinity`, :func:`diffusion_scores`,
  :func:`diffusion_rank`, and :func:`reached_only_by_diffusion` (the positives
  that only a chain of neighbours brings into the top results).

k-reciprocal re-ranking (Zhong et al., CVPR 2017) is :mod:`cbir_lab.kreciprocal`, and
spatial verification with its verified query expansion :mod:`cbir_lab.verification`.

scipy is imported inside the diffusion functions, so importing this module stays
light for the callers that only expand queries (annotations are not evaluated).
"""

from __future__ import annotations

import numpy as np

from cbir_lab._array import l2n
from cbir_lab.search import _as_vectors, _check_pair, _positive_int, rank

__all__ = [
    "average_query_expansion",
    "alpha_query_expansion",
    "database_augmentation",
    "knn_affinity",
    "normalized_affinity",
    "diffusion_scores",
    "diffusion_rank",
    "reached_only_by_diffusion",
]


def alpha_query_expansion(query_vecs, db_vecs, k: int = 5, alpha: float = 3.0, ranks: np.ndarray | None = None) -> np.ndarray:
    r"""α-weighted query expansion (α-QE).

    .. math:: q' = \operatorname{L2}\Big(q + \sum_{i=1}^{k} \max(q^\top d_i, 0)^{\alpha}\, d_i\Big)

    over the query's top-k database vectors :math:`d_i`. α = 0 is average QE.

    Args:
        query_vecs: (n_queries, D), L2-normalised.
        db_vecs: (n_db, D), L2-normalised.
        k: how many top results to average.
        alpha: the similarity exponent.
        ranks: an existing ranking (n_db or ≥ k, n_queries), to avoid searching again.

    Returns:
        Expanded, L2-normalised queries, shape (n_queries, D), to pass to :func:`~cbir_lab.search.rank`.

    Reference:
        Radenović, Tolias & Chum, TPAMI 2018, arXiv:1711.02512.
    """
    q, db = _check_pair(query_vecs, db_vecs)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if ranks is None:
        ranks = rank(q, db, k=k)
    top = np.asarray(ranks)[: min(k, db.shape[0])].T  # (n_q, k)
    neighbours = db[top]  # (n_q, k, D)
    weights = np.einsum("qd,qkd->qk", q, neighbours).clip(min=0.0) ** alpha
    expanded = q + np.einsum("qk,qkd->qd", weights, neighbours)
    return l2n(expanded).astype(np.float32)


def average_query_expansion(query_vecs, db_vecs, k: int = 5, ranks: np.ndarray | None = None) -> np.ndarray:
    r"""Average query expansion: :math:`q' = \operatorname{L2}(q + \sum_{i \le k} d_i)`.

    Args and Returns as :func:`alpha_query_expansion`.

    Reference:
        Chum, Philbin, Sivic, Isard & Zisserman, "Total Recall", ICCV 2007.
    """
    return alpha_query_expansion(query_vecs, db_vecs, k=k, alpha=0.0, ranks=ranks)


def _real(value, name: str, low: float, high: float = np.inf, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float in the interval from ``low`` to ``high``, or a ValueError naming the parameter."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = np.nan
    ok = np.isfinite(x) and (x > low if low_open else x >= low) and (x < high if high_open else x <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return x


def _database_neighbours(db: np.ndarray, k: int) -> np.ndarray:
    """Each database vector's top-k database neighbours, itself excluded: int64, shape (n_db, k).

    :func:`~cbir_lab.search.rank` gives the top k + 1; the vector's own index is dropped
    wherever it stands (a duplicate with a smaller index ties with it and comes
    first), and where it is absent (k + 1 duplicates outrank it) the last one is.
    """
    top = rank(db, db, k=k + 1).T  # (n_db, k + 1)
    is_self = top == np.arange(db.shape[0])[:, None]
    # A stable sort on "is self" moves the vector's own index to the end, the rest keeping their order.
    order = np.argsort(is_self, axis=1, kind="stable")
    return np.ascontiguousarray(np.take_along_axis(top, order, axis=1)[:, :k])


def database_augmentation(db_vecs, k: int = 5, alpha: float = 3.0) -> np.ndarray:
    r"""Database-side augmentation (α-DBA): α-QE applied to every database vector.

    .. math:: d_i' = \operatorname{L2}\Big(d_i + \sum_{j \in N_k(i)} \max(d_i^\top d_j, 0)^{\alpha}\, d_j\Big)

    where :math:`N_k(i)` are the k nearest database vectors of :math:`d_i`,
    itself excluded (by index, so a duplicate of :math:`d_i` counts as a
    neighbour). α = 0 gives the plain average of DBA. Done once, offline; the
    queries are then ranked (and possibly expanded) against the new database.

    Args:
        db_vecs: (n_db, D), L2-normalised.
        k: neighbours averaged into each vector (clipped to n_db - 1).
        alpha: the similarity exponent, >= 0.

    Returns:
        The augmented, L2-normalised database, float32, shape (n_db, D).

    Raises:
        ValueError: k is not a positive integer, alpha is negative or not
            finite, db_vecs is empty, not 2-D, or contains NaN.

    Examples:
        >>> db = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
        >>> print(database_augmentation(db, k=1, alpha=0.0).round(3))
        [[0.949 0.316]
         [0.949 0.316]
         [0.447 0.894]]

    Reference:
        Arandjelović & Zisserman, "Three things everyone should know to improve
        object retrieval", CVPR 2012; Gordo, Almazán, Revaud & Larlus, "End-to-end
        learning of deep visual representations for image retrieval", IJCV 2017;
        Radenović, Tolias & Chum, TPAMI 2018, arXiv:1711.02512 (α-weighting).
    """
    db = _as_vectors(db_vecs, "db_vecs")
    if db.shape[0] == 0:
        raise ValueError("db_vecs is empty")
    k = _positive_int(k, "k")
    alpha = _real(alpha, "alpha", 0.0)
    k = min(k, db.shape[0] - 1)
    if k == 0:  # a single vector has no neighbours
        return l2n(db).astype(np.float32)
    return alpha_query_expansion(db, db, k=k, alpha=alpha, ranks=_database_neighbours(db, k).T)


def knn_affinity(db_vecs, k: int = 50, gamma: float = 3.0, mutual: bool = True) -> scipy.sparse.csr_matrix:
    r"""The database's k-NN graph, weighted by powered similarity (Iscen et al., CVPR 2017).

    .. math:: a_{ij} = \max(0, d_i^\top d_j)^{\gamma} \quad \text{if } d_i \in N_k(d_j) \text{ and } d_j \in N_k(d_i), \qquad 0 \text{ otherwise,}

    with :math:`N_k(d)` the k nearest database vectors of d, itself excluded.
    ``mutual=True`` keeps the paper's reciprocal neighbours ("and"), which
    cuts the edges from a vector that only has far neighbours (an outlier) to
    a dense cluster; ``mutual=False`` keeps an edge if either is in the other's
    k nearest ("or"). The diagonal is zero and A is symmetric. A vector can be
    left with no edge (an isolated node, a zero row).

    Args:
        db_vecs: (n_db, D), L2-normalised.
        k: neighbours per vector (clipped to n_db - 1).
        gamma: the similarity exponent, > 0 (the paper uses 3).
        mutual: reciprocal (True) or symmetrised (False) k-NN.

    Returns:
        A, a ``scipy.sparse.csr_matrix`` of float64, shape (n_db, n_db).

    Raises:
        ValueError: k is not a positive integer, gamma <= 0, db_vecs is empty,
            not 2-D, or contains NaN.

    Examples:
        >>> db = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
        >>> print(knn_affinity(db, k=1, gamma=1.0).toarray().round(2))
        [[0.   0.   0.   0.  ]
         [0.   0.   0.96 0.  ]
         [0.   0.96 0.   0.  ]
         [0.   0.   0.   0.  ]]
        >>> print(knn_affinity(db, k=1, gamma=1.0, mutual=False).toarray().round(2))
        [[0.   0.8  0.   0.  ]
         [0.8  0.   0.96 0.  ]
         [0.   0.96 0.   0.8 ]
         [0.   0.   0.8  0.  ]]

    Reference:
        Iscen, Tolias, Avrithis, Furon & Chum, "Efficient Diffusion on Region
        Manifolds: Recovering Small Objects with Compact CNN Representations",
        CVPR 2017, arXiv:1611.05113.
    """
    import scipy.sparse

    db = _as_vectors(db_vecs, "db_vecs")
    if db.shape[0] == 0:
        raise ValueError("db_vecs is empty")
    k = _positive_int(k, "k")
    gamma = _real(gamma, "gamma", 0.0, low_open=True)
    n_db = db.shape[0]
    k = min(k, n_db - 1)
    if k == 0:
        return scipy.sparse.csr_matrix((n_db, n_db), dtype=np.float64)
    neighbours = _database_neighbours(db, k)
    is_neighbour = scipy.sparse.csr_matrix(
        (np.ones(n_db * k), (np.repeat(np.arange(n_db), k), neighbours.ravel())), shape=(n_db, n_db)
    )
    edges = is_neighbour.multiply(is_neighbour.T) if mutual else is_neighbour.maximum(is_neighbour.T)
    edges = scipy.sparse.triu(edges, k=1).tocoo()  # each edge once, so a_ij and a_ji are the same number
    rows, cols = edges.row, edges.col
    db64 = db.astype(np.float64)
    weights = np.einsum("ed,ed->e", db64[rows], db64[cols]).clip(min=0.0) ** gamma
    keep = weights > 0
    rows, cols, weights = rows[keep], cols[keep], weights[keep]
    return scipy.sparse.csr_matrix(
        (np.concatenate([weights, weights]), (np.concatenate([rows, cols]), np.concatenate([cols, rows]))),
        shape=(n_db, n_db),
    )


def _as_symmetric_csr(matrix, name: str) -> scipy.sparse.csr_matrix:
    """``matrix`` (scipy sparse or array-like) as a float64 CSR matrix, checked square, finite and symmetric."""
    import scipy.sparse

    if scipy.sparse.issparse(matrix):
        m = scipy.sparse.csr_matrix(matrix, dtype=np.float64)
    else:
        dense = np.asarray(matrix, dtype=np.float64)
        if dense.ndim != 2:
            raise ValueError(f"{name} must be a square matrix, got shape {dense.shape}")
        m = scipy.sparse.csr_matrix(dense)
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {m.shape}")
    if not np.isfinite(m.data).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if m.nnz:
        asymmetry = abs(m - m.T)
        if asymmetry.nnz and asymmetry.max() > 1e-6 * abs(m).max():
            raise ValueError(f"{name} must be symmetric (largest |{name}_ij - {name}_ji| is {asymmetry.max():.3g})")
    return m


def normalized_affinity(A) -> scipy.sparse.csr_matrix:
    r"""Symmetric normalisation of an affinity matrix, the S of diffusion.

    .. math:: S = D^{-1/2} A D^{-1/2}, \qquad D = \operatorname{diag}(A \mathbf{1})

    For a non-negative symmetric A the eigenvalues of S lie in [−1, 1], so
    :math:`I - \alpha S` is positive definite for 0 < α < 1. An isolated node
    (degree 0) keeps a zero row and column, with no NaN or inf.

    Args:
        A: (n, n) non-negative symmetric affinity, a scipy sparse matrix (as
            :func:`knn_affinity` returns) or an array.

    Returns:
        S, a ``scipy.sparse.csr_matrix`` of float64, shape (n, n), exactly
        symmetric when A is.

    Raises:
        ValueError: A is not square, not symmetric, negative somewhere, or
            contains NaN or inf.

    Examples:
        >>> path = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
        >>> print(normalized_affinity(path).toarray().round(3))
        [[0.    0.707 0.   ]
         [0.707 0.    0.707]
         [0.    0.707 0.   ]]

    Reference:
        Zhou, Bousquet, Lal, Weston & Schölkopf, "Learning with Local and Global
        Consistency", NIPS 2003; Iscen et al., CVPR 2017, arXiv:1611.05113.
    """
    import scipy.sparse

    a = _as_symmetric_csr(A, "A")
    if (a.data < 0).any():
        raise ValueError("A must be non-negative")
    degree = np.asarray(a.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    np.divide(1.0, np.sqrt(degree), out=inv_sqrt, where=degree > 0)
    coo = a.tocoo()
    # inv_sqrt[i] * inv_sqrt[j] is the same number for (i, j) and (j, i), so S is as symmetric as A.
    data = coo.data * (inv_sqrt[coo.row] * inv_sqrt[coo.col])
    return scipy.sparse.csr_matrix((data, (coo.row, coo.col)), shape=a.shape)


def diffusion_scores(
    query_vecs,
    db_vecs,
    S,
    alpha: float = 0.99,
    k_query: int = 10,
    gamma: float = 3.0,
    tol: float = 1e-6,
    maxiter: int | None = 20,
) -> np.ndarray:
    r"""Diffusion of each query over the database's k-NN graph (Iscen et al., CVPR 2017).

    The query starts as a sparse vector y on the database, non-zero only on its
    k nearest database vectors, and spreads along the graph's edges:

    .. math::

        y_j = \begin{cases} \max(0, q^\top d_j)^{\gamma} & d_j \in N_{k}(q) \\ 0 & \text{otherwise} \end{cases}
        \qquad (I - \alpha S)\, f = y

    so :math:`f = \sum_{t \ge 0} \alpha^t S^t y` sums walks of every length from
    the query's neighbours: an image linked to them by a chain of close
    neighbours scores high even when it is far from the query itself. The
    paper ranks the database by f. The system is solved with conjugate
    gradient (``scipy.sparse.linalg.cg``; I − αS is symmetric positive
    definite for 0 < α < 1 since S's eigenvalues lie in [−1, 1]), one call per
    query, which keeps this simple; all queries can also be solved at once (a
    block method, or factoring I − αS once), and the paper's follow-up
    precomputes a low-rank inverse offline (Iscen et al., "Fast Spectral
    Ranking", CVPR 2018). CG stops after ``maxiter`` iterations whether or not
    the relative residual reached ``tol`` (the paper found about 20 enough
    for ranking); ``maxiter=None`` iterates until ``tol`` (at most 10 n_db).
    As α → 1, f is dominated by S's leading eigenvector :math:`D^{1/2}\mathbf{1}`
    (eigenvalue 1) on the query's connected component, so on a small graph the
    nodes of low degree (the ends of a chain, even the query's own copy) drop: a smaller α
    keeps f closer to the query. The paper diffuses regional vectors (several
    per image); here each image is one global vector.

    Args:
        query_vecs: (n_queries, D) or (D,), L2-normalised.
        db_vecs: (n_db, D), L2-normalised, the vectors S was built from.
        S: (n_db, n_db) symmetric normalised affinity, from :func:`normalized_affinity`.
        alpha: the diffusion weight, in (0, 1); close to 1 reaches further.
        k_query: database neighbours of the query in y (clipped to n_db).
        gamma: the similarity exponent of y, > 0.
        tol: CG's relative residual tolerance, > 0.
        maxiter: CG iterations at most per query (None: until ``tol``, at most 10 n_db).

    Returns:
        f, float64, shape (n_queries, n_db): row q holds query q's diffusion scores.

    Raises:
        ValueError: alpha not in (0, 1), k_query or maxiter not a positive
            integer, gamma or tol <= 0, S not (n_db, n_db) or not symmetric,
            vectors of different dimensions, or NaN anywhere.

    Examples:
        >>> db = np.eye(3)                      # three images ...
        >>> S = normalized_affinity(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
        >>> q = np.array([1.0, 0.0, 0.0])       # ... the query is the first, linked to the second
        >>> print(diffusion_scores(q, db, S, alpha=0.5, k_query=1, gamma=1.0).round(3))
        [[1.333 0.667 0.   ]]

    Reference:
        Iscen, Tolias, Avrithis, Furon & Chum, "Efficient Diffusion on Region
        Manifolds: Recovering Small Objects with Compact CNN Representations",
        CVPR 2017, arXiv:1611.05113; Zhou et al., NIPS 2003.
    """
    import scipy.sparse
    from scipy.sparse.linalg import cg

    q, db = _check_pair(query_vecs, db_vecs)
    n_db = db.shape[0]
    alpha = _real(alpha, "alpha", 0.0, 1.0, low_open=True, high_open=True)
    k_query = min(_positive_int(k_query, "k_query"), n_db)
    gamma = _real(gamma, "gamma", 0.0, low_open=True)
    tol = _real(tol, "tol", 0.0, low_open=True)
    if maxiter is not None:
        maxiter = _positive_int(maxiter, "maxiter")
    s = _as_symmetric_csr(S, "S")
    if s.shape != (n_db, n_db):
        raise ValueError(f"S must have shape (n_db, n_db) = ({n_db}, {n_db}), got {s.shape}")
    top = rank(q, db, k=k_query).T  # (n_q, k_query)
    sims = np.einsum("qd,qkd->qk", q.astype(np.float64), db[top].astype(np.float64))
    y = np.zeros((q.shape[0], n_db))
    np.put_along_axis(y, top, sims.clip(min=0.0) ** gamma, axis=1)
    system = (scipy.sparse.identity(n_db, format="csr") - alpha * s).tocsr()
    f = np.empty_like(y)
    for i in range(q.shape[0]):
        f[i], info = cg(system, y[i], rtol=tol, atol=0.0, maxiter=maxiter)
        if info < 0:
            raise RuntimeError(f"conjugate gradient broke down on query {i} (info={info})")
    return f


def diffusion_rank(
    query_vecs,
    db_vecs,
    k: int = 50,
    alpha: float = 0.99,
    k_query: int = 10,
    gamma: float = 3.0,
    mutual: bool = True,
    tol: float = 1e-6,
    maxiter: int | None = 20,
    S=None,
) -> np.ndarray:
    """Rank the database by diffusion scores, in :func:`~cbir_lab.search.rank`'s layout.

    Builds the k-NN graph (:func:`knn_affinity`, :func:`normalized_affinity`)
    unless ``S`` is given, then ranks by :func:`diffusion_scores`, ties broken
    by the smaller index. Images the diffusion does not reach (f = 0: not
    connected to the query's ``k_query`` neighbours) all tie, so they come
    last in index order.

    Args:
        query_vecs: (n_queries, D) or (D,), L2-normalised.
        db_vecs: (n_db, D), L2-normalised.
        k: neighbours per vector in the graph (ignored when ``S`` is given).
        alpha, k_query, tol, maxiter: as :func:`diffusion_scores`.
        gamma: the similarity exponent of the graph and of the query's y.
        mutual: reciprocal k-NN graph (ignored when ``S`` is given).
        S: a precomputed :func:`normalized_affinity` of ``db_vecs``, to rank
            many batches of queries with one graph.

    Returns:
        int64 database indices, shape (n_db, n_queries), best first: column q
        is query q's ranking.

    Examples:
        >>> angles = np.deg2rad([-20, 0, 20, 40, 60, 80])   # images along an arc ...
        >>> db = np.stack([np.cos(angles), np.sin(angles), 0 * angles], axis=1)
        >>> db = np.vstack([db, [0.6, 0.0, 0.8]])           # ... and one off it
        >>> q = np.array([1.0, 0.0, 0.0])
        >>> rank(q, db)[:, 0].tolist()      # the off-arc image 6 beats the far end of the arc
        [1, 0, 2, 3, 6, 4, 5]
        >>> diffusion_rank(q, db, k=2, alpha=0.8, k_query=3)[:, 0].tolist()
        [1, 0, 2, 3, 4, 5, 6]

    Reference:
        Iscen et al., CVPR 2017, arXiv:1611.05113.
    """
    _real(alpha, "alpha", 0.0, 1.0, low_open=True, high_open=True)  # fail before building the graph
    if S is None:
        _, db = _check_pair(query_vecs, db_vecs)
        S = normalized_affinity(knn_affinity(db, k=k, gamma=gamma, mutual=mutual))
    f = diffusion_scores(query_vecs, db_vecs, S, alpha=alpha, k_query=k_query, gamma=gamma, tol=tol, maxiter=maxiter)
    return np.ascontiguousarray(np.argsort(-f, axis=1, kind="stable").T.astype(np.int64))


def reached_only_by_diffusion(baseline_ranks, diffusion_ranks, positives, top: int = 10) -> list[np.ndarray]:
    """Per query, the positives in diffusion's top ``top`` that are not in the baseline's.

    These are the images "reachable only through a chain of neighbours": the
    baseline (k-NN search with :func:`~cbir_lab.search.rank`, or after query expansion) leaves
    them out of its first ``top`` results, diffusion brings them in.

    Args:
        baseline_ranks: (≥ top, n_queries) database indices, e.g. from :func:`~cbir_lab.search.rank`.
        diffusion_ranks: (≥ top, n_queries), e.g. from :func:`diffusion_rank`.
        positives: one collection of relevant database indices per query,
            e.g. ``[g["ok"] for g in gnd]``.
        top: how many of the first results count.

    Returns:
        One int64 array per query: those positives, in diffusion's order.

    Raises:
        ValueError: rankings that are not 2-D, hold fewer than ``top`` rows, or
            disagree on the number of queries; ``positives`` of another length;
            top not a positive integer.

    Examples:
        >>> baseline = np.array([[0], [4], [1], [2], [3]])
        >>> diffused = np.array([[0], [1], [2], [3], [4]])
        >>> reached_only_by_diffusion(baseline, diffused, positives=[[0, 1, 2, 3]], top=4)[0].tolist()
        [3]
    """
    top = _positive_int(top, "top")
    base = np.asarray(baseline_ranks)
    diffused = np.asarray(diffusion_ranks)
    for name, ranks_ in (("baseline_ranks", base), ("diffusion_ranks", diffused)):
        if ranks_.ndim != 2:
            raise ValueError(f"{name} must have shape (n_db or k, n_queries), got {ranks_.shape}")
        if ranks_.shape[0] < top:
            raise ValueError(f"{name} holds {ranks_.shape[0]} results per query, fewer than top={top}")
    if base.shape[1] != diffused.shape[1]:
        raise ValueError(
            f"baseline_ranks has {base.shape[1]} queries but diffusion_ranks has {diffused.shape[1]}"
        )
    positives = list(positives)
    if len(positives) != diffused.shape[1]:
        raise ValueError(f"positives has {len(positives)} entries but the rankings have {diffused.shape[1]} queries")
    out = []
    for q, pos in enumerate(positives):
        pos = np.asarray(list(pos) if isinstance(pos, (set, frozenset)) else pos, dtype=np.int64).ravel()
        candidates = diffused[:top, q]
        keep = np.isin(candidates, pos) & ~np.isin(candidates, base[:top, q])
        out.append(candidates[keep].astype(np.int64))
    return out
