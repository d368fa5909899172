"""Search: rank a database by inner product, and query expansion.

* :func:`rank`: exact nearest neighbours by inner product (cosine similarity on
  L2-normalised vectors), in blocks so memory stays bounded, returning the
  (n_db or k, n_queries) index matrix that the reference evaluation expects.
* :func:`average_query_expansion` and :func:`alpha_query_expansion`: re-query
  with the mean of the query and its top results (Chum et al., ICCV 2007;
  α-QE: Radenović, Tolias & Chum, TPAMI 2018).
* ``backend="faiss"`` uses faiss ``IndexFlatIP`` (optional extra ``faiss-cpu``).
* :func:`build_faiss_index` and :func:`search_index`: faiss indexes for large
  databases, exact (``IndexFlatIP``) or approximate (``IndexIVFFlat``: k-means
  cells, only the ``nprobe`` nearest cells are scanned; Jégou, Douze & Schmid,
  TPAMI 2011; Johnson, Douze & Jégou, "Billion-scale similarity search with
  GPUs", 2017). Optional extra ``faiss-cpu``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "rank",
    "similarities",
    "average_query_expansion",
    "alpha_query_expansion",
    "build_faiss_index",
    "search_index",
]


def _as_vectors(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n, dim), got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    x = np.ascontiguousarray(x, dtype=np.float32)
    # The sum of squares (one BLAS dot) is finite when every value is, barring overflow, which the
    # exact check settles; it builds no (n, dim) mask, and was half of one query's time over 10^5 vectors.
    flat = x.reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        sum_of_squares = np.dot(flat, flat)
    if not np.isfinite(sum_of_squares) and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _check_pair(query_vecs, db_vecs) -> tuple[np.ndarray, np.ndarray]:
    q = _as_vectors(query_vecs, "query_vecs")
    db = _as_vectors(db_vecs, "db_vecs")
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"query_vecs have dimension {q.shape[1]} but db_vecs have dimension {db.shape[1]}")
    if db.shape[0] == 0:
        raise ValueError("db_vecs is empty")
    return q, db


def similarities(query_vecs, db_vecs) -> np.ndarray:
    """Inner products, shape (n_queries, n_db): cosine similarities for L2-normalised vectors."""
    q, db = _check_pair(query_vecs, db_vecs)
    return q @ db.T


#: Scores held at once by :func:`rank` by default (float32: 64 MB); more gains no speed.
_SCORES_PER_BLOCK = 1 << 24


def _sort_by_score_then_index(scores: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder each row by (score desc, index asc): sort by index, then a stable sort by score."""
    index, perm = torch.sort(index, dim=1)
    scores = torch.gather(scores, 1, perm)
    scores, perm = torch.sort(scores, dim=1, descending=True, stable=True)
    return scores, torch.gather(index, 1, perm)


def _block_topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k per row of ``scores`` (n_q, m) by (score desc, column asc), as (scores, columns).

    ``torch.topk`` is several times faster than a full sort or numpy's
    argpartition, but when the k-th score is tied with scores outside the top k
    it may keep any of the tied columns; those rows (rare with real
    descriptors, common with duplicates) are redone exactly.
    """
    if k >= scores.shape[1]:
        return torch.sort(scores, dim=1, descending=True, stable=True)
    top_scores, top_index = torch.topk(scores, k, dim=1, largest=True, sorted=False)
    kth = top_scores.min(dim=1, keepdim=True).values
    # numpy counts a boolean mask without torch's int64 copy of it (8x the mask's memory).
    n_reaching_kth = np.count_nonzero(scores.numpy() >= kth.numpy(), axis=1)
    for row in np.flatnonzero(n_reaching_kth > k).tolist():
        above = torch.nonzero(scores[row] > kth[row]).flatten()
        tied = torch.nonzero(scores[row] == kth[row]).flatten()[: k - above.numel()]
        top_index[row] = torch.cat([above, tied])
        top_scores[row] = scores[row, top_index[row]]
    return _sort_by_score_then_index(top_scores, top_index)


def rank(query_vecs, db_vecs, k: int | None = None, block_size: int | None = None, backend: str = "numpy") -> np.ndarray:
    """Rank the database for each query by decreasing inner product.

    Ties are broken by the smaller database index, so rankings are reproducible.
    The database is scanned in blocks of ``block_size`` rows, so memory is
    O(n_queries × (block_size + k)) rather than O(n_queries × n_db) when k is set;
    by default a block holds about 16 M scores (64 MB) whatever the number of queries.
    Scores are numpy's ``q @ db.T`` (the values :func:`similarities` returns);
    the top k of each block is selected with ``torch.topk`` and merged with the
    best so far.

    Args:
        query_vecs: (n_queries, D) or (D,), normally L2-normalised.
        db_vecs: (n_db, D), normally L2-normalised.
        k: keep only the top k (default: the full ranking).
        block_size: database rows scored at once (default: ``2**24 // n_queries``,
            at least 1024).
        backend: ``"numpy"`` or ``"faiss"`` (exact ``IndexFlatIP``; needs faiss-cpu).

    Returns:
        int64 database indices, shape (k or n_db, n_queries), most similar first:
        column q is query q's ranking, as the reference ``compute_map`` expects.
    """
    q, db = _check_pair(query_vecs, db_vecs)
    n_db = db.shape[0]
    if k is None:
        k = n_db
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = min(int(k), n_db)
    if backend == "faiss":
        try:
            import faiss
        except ImportError as err:
            raise ImportError("backend='faiss' needs the optional extra: pip install faiss-cpu") from err
        index = faiss.IndexFlatIP(db.shape[1])
        index.add(db)
        _, ids = index.search(q, k)
        return ids.T.astype(np.int64)
    if backend != "numpy":
        raise ValueError(f"unknown backend {backend!r}; use 'numpy' or 'faiss'")
    if block_size is None:
        block_size = max(1024, _SCORES_PER_BLOCK // max(1, q.shape[0]))
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if k == n_db:
        # The full ranking is as large as all the scores: score everything, then one stable sort.
        scores = torch.from_numpy(q @ db.T)
        _, best_index = torch.sort(scores, dim=1, descending=True, stable=True)
        return np.ascontiguousarray(best_index.T.numpy())
    best_scores = torch.empty((q.shape[0], 0), dtype=torch.float32)
    best_index = torch.empty((q.shape[0], 0), dtype=torch.int64)
    for start in range(0, n_db, block_size):
        block_scores, block_index = _block_topk(torch.from_numpy(q @ db[start : start + block_size].T), k)
        # Every kept index is smaller than this block's, so a stable sort on the
        # score alone keeps the (score desc, index asc) order.
        best_scores = torch.cat([best_scores, block_scores], dim=1)
        best_index = torch.cat([best_index, block_index + start], dim=1)
        best_scores, perm = torch.sort(best_scores, dim=1, descending=True, stable=True)
        best_scores, best_index = best_scores[:, :k], torch.gather(best_index, 1, perm[:, :k])
    return np.ascontiguousarray(best_index.T.numpy())


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
        Expanded, L2-normalised queries, shape (n_queries, D), to pass to :func:`rank`.

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
    return (expanded / np.maximum(np.linalg.norm(expanded, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def average_query_expansion(query_vecs, db_vecs, k: int = 5, ranks: np.ndarray | None = None) -> np.ndarray:
    r"""Average query expansion: :math:`q' = \operatorname{L2}(q + \sum_{i \le k} d_i)`.

    Args and Returns as :func:`alpha_query_expansion`.

    Reference:
        Chum, Philbin, Sivic, Isard & Zisserman, "Total Recall", ICCV 2007.
    """
    return alpha_query_expansion(query_vecs, db_vecs, k=k, alpha=0.0, ranks=ranks)


def _import_faiss():
    try:
        import faiss
    except ImportError as err:
        raise ImportError("faiss indexes need the optional extra: pip install faiss-cpu") from err
    return faiss


def build_faiss_index(db_vecs, kind: str = "flat", nlist: int | None = None, nprobe: int = 16, seed: int = 0):
    """A faiss inner-product index over the database, for :func:`search_index`.

    * ``"flat"``: exact search (``IndexFlatIP``), the same neighbours as
      :func:`rank` up to the order of exact ties.
    * ``"ivf"``: ``IndexIVFFlat``. k-means (trained on the database) splits it
      into ``nlist`` cells; a query scans only its ``nprobe`` nearest cells, so
      a search costs about ``nprobe / nlist`` of exact search, at some recall.

    Args:
        db_vecs: (n_db, D), normally L2-normalised.
        kind: ``"flat"`` or ``"ivf"``.
        nlist: IVF cells (default ``sqrt(n_db)``, at most ``n_db // 39`` so
            that k-means has the 39 points per centroid faiss asks for, at least 1).
            k-means trains on at most 64 points per cell, drawn with ``seed``.
        nprobe: IVF cells scanned per query (clipped to ``nlist``).
        seed: the k-means seed, so an index is reproducible.

    Returns:
        The faiss index, holding all of ``db_vecs`` (ids 0 … n_db - 1).

    Raises:
        ImportError: faiss is not installed.
        ValueError: unknown ``kind``, or ``nlist``/``nprobe`` < 1.
    """
    faiss = _import_faiss()
    db = _as_vectors(db_vecs, "db_vecs")
    if db.shape[0] == 0:
        raise ValueError("db_vecs is empty")
    n_db, dim = db.shape
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        index.add(db)
        return index
    if kind != "ivf":
        raise ValueError(f"unknown index kind {kind!r}; use 'flat' or 'ivf'")
    if nlist is None:
        nlist = max(1, min(int(round(np.sqrt(n_db))), n_db // 39))
    if int(nlist) != nlist or not 1 <= nlist <= n_db:
        raise ValueError(f"nlist must be an integer in 1..n_db={n_db}, got {nlist!r}")
    if int(nprobe) != nprobe or nprobe < 1:
        raise ValueError(f"nprobe must be a positive integer, got {nprobe!r}")
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, int(nlist), faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.min_points_per_centroid = 1  # a small database is a valid (if pointless) IVF; no warning
    index.cp.max_points_per_centroid = 64  # k-means on a sample: 4x faster than faiss' 256, same recall
    index.train(db)
    index.add(db)
    index.nprobe = min(int(nprobe), int(nlist))
    return index


def search_index(index, query_vecs, k: int) -> np.ndarray:
    """The top k of each query in a faiss index, in :func:`rank`'s layout.

    Args:
        index: from :func:`build_faiss_index` (any faiss index works).
        query_vecs: (n_queries, D) or (D,).
        k: results per query (clipped to the index size).

    Returns:
        int64 database indices, shape (k, n_queries), most similar first. An
        IVF index whose ``nprobe`` cells hold fewer than k vectors pads the
        column with -1.
    """
    q = _as_vectors(query_vecs, "query_vecs")
    if q.shape[1] != index.d:
        raise ValueError(f"query_vecs have dimension {q.shape[1]} but the index has dimension {index.d}")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = min(int(k), index.ntotal)
    _, ids = index.search(q, k)
    return np.ascontiguousarray(ids.T.astype(np.int64))
