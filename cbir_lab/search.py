"""Search: rank a database by inner product, exactly.

* :func:`rank`: exact nearest neighbours by inner product (cosine similarity on
  L2-normalised vectors), in blocks so memory stays bounded, returning the
  (n_db or k, n_queries) index matrix that the reference evaluation expects.
  ``backend="faiss"`` uses faiss ``IndexFlatIP`` (optional extra ``faiss-cpu``).
* :func:`similarities`: the inner products :func:`rank` orders by.
* :func:`recall_at_k`: how much of an exact top k another ranking (an approximate
  index's, :mod:`cbir_lab.indexes`) returns.

Re-ranking what :func:`rank` returns (query expansion, DBA, diffusion) is
:mod:`cbir_lab.rerank`, k-reciprocal re-ranking :mod:`cbir_lab.kreciprocal`, and spatial
verification :mod:`cbir_lab.verification`; faiss indexes for large databases are :mod:`cbir_lab.indexes`.
"""

from __future__ import annotations

import numpy as np

from cbir_lab._array import as_matrix

__all__ = ["rank", "similarities", "recall_at_k"]


def _as_vectors(x, name: str) -> np.ndarray:
    """Vectors (n, D) or one vector (D,) as a finite, contiguous float32 matrix (n, D)."""
    return as_matrix(x, name, dtype=np.float32, vector=True)


def _check_pair(query_vecs, db_vecs) -> tuple[np.ndarray, np.ndarray]:
    q = _as_vectors(query_vecs, "query_vecs")
    db = _as_vectors(db_vecs, "db_vecs")
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"query_vecs have dimension {q.shape[1]} but db_vecs have dimension {db.shape[1]}")
    if db.shape[0] == 0:
        raise ValueError("db_vecs is empty")
    return q, db


#: Scores held at once by :func:`rank` and :func:`similarities` by default (float32: 64 MB).
_SCORES_PER_BLOCK = 1 << 24


def _default_block_size(n_queries: int) -> int:
    """Database rows scored at once by default: about 16 M scores whatever the number of queries."""
    return max(1024, _SCORES_PER_BLOCK // max(1, n_queries))


def _blocks(n_db: int, block_size: int) -> list[tuple[int, int]]:
    """``range(n_db)`` cut into ceil(n_db / block_size) consecutive (start, stop) blocks of nearly equal size.

    Equal blocks rather than full ones and a remainder: a last block of a few rows would be scored
    by another BLAS kernel (a matrix-vector product, a small-matrix path) that rounds differently.
    """
    n_blocks = -(-n_db // block_size)
    size, extra = divmod(n_db, n_blocks)
    stops = np.cumsum([size + 1] * extra + [size] * (n_blocks - extra))
    return list(zip([0, *stops[:-1].tolist()], stops.tolist()))


def _scores_into(q: np.ndarray, db: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[...] = q @ db.T`` with numpy's BLAS (OpenBLAS): on the reference CPU it runs this product
    about 2x faster than torch's MKL runs ``q @ db.T``. Writing into a reused ``out`` spares the page
    faults of a fresh 64 MB array per block."""
    return np.matmul(q, db.T, out=out)


def _all_scores(q: np.ndarray, db: np.ndarray, block_size: int) -> np.ndarray:
    """The (n_q, n_db) scores, block by block (:func:`_blocks`), each block computed exactly as
    :func:`rank` computes it, into a contiguous array of its own shape."""
    blocks = _blocks(db.shape[0], block_size)
    out = np.empty((q.shape[0], db.shape[0]), dtype=np.float32)
    if len(blocks) == 1:
        return _scores_into(q, db, out)
    work = np.empty(q.shape[0] * (blocks[0][1] - blocks[0][0]), dtype=np.float32)  # the first block is the largest
    for start, stop in blocks:
        block = work[: q.shape[0] * (stop - start)].reshape(q.shape[0], stop - start)
        out[:, start:stop] = _scores_into(q, db[start:stop], block)
    return out


def similarities(query_vecs, db_vecs) -> np.ndarray:
    """Inner products, shape (n_queries, n_db): cosine similarities for L2-normalised vectors.

    These are the scores :func:`rank` orders by, bit for bit, when it runs with its default
    ``block_size``: both score the same blocks of the database with the same product. (A BLAS
    library may round a score differently, in the last bit, when the shape of the product
    changes: another ``block_size``, or one query instead of several.)

    Examples:
        >>> similarities([[1.0, 0.0]], [[0.5, 0.75], [0.0, 1.0]]).tolist()
        [[0.5, 0.0]]
    """
    q, db = _check_pair(query_vecs, db_vecs)
    return _all_scores(q, db, _default_block_size(q.shape[0]))


#: The largest key (int64): pads a row of candidates, and ranks after every real one.
_PAD = np.iinfo(np.int64).max


def _keys(scores: np.ndarray, index: np.ndarray) -> np.ndarray:
    """One int64 per score whose increasing order is (score desc, index asc): the order of a ranking.

    The high 32 bits are -score's float32 bits made order-preserving as a signed integer
    (negative floats have their other 31 bits flipped); -0.0 is made +0.0 first, as they are
    equal scores. The low 32 bits are the index (< 2**32). Keys are unique, so any sort or
    selection of them is exact and ties need no care, and numpy sorts int64 with AVX-512
    (x86-simd-sort) faster than torch's multi-threaded stable sort of the scores.

    Args:
        scores: float32, (n_q, m).
        index: int64 database indices, (m,) or (n_q, m).

    Returns:
        (n_q, m) int64.
    """
    flipped = np.negative(scores)
    flipped += np.float32(0.0)
    bits = flipped.view(np.int32)
    sign = bits >> 31
    sign &= np.int32(0x7FFFFFFF)
    bits ^= sign
    keys = bits.astype(np.int64)
    keys <<= 32
    keys |= index
    return keys


def _key_scores(keys: np.ndarray) -> np.ndarray:
    """The float32 scores of :func:`_keys` (a zero comes back as -0.0, equal to 0.0)."""
    bits = (keys >> 32).astype(np.int32)
    bits ^= (bits >> 31) & np.int32(0x7FFFFFFF)
    return np.negative(bits.view(np.float32))


def _key_index(keys: np.ndarray) -> np.ndarray:
    """The database indices of :func:`_keys`."""
    return keys & np.int64(0xFFFFFFFF)


def _masked_keys(scores: np.ndarray, mask: np.ndarray, start: int) -> np.ndarray:
    """The keys of the entries of ``scores`` (n_q, m) where ``mask`` is set, column ``c`` being database
    index ``start + c``, gathered per row and padded with :data:`_PAD` to the widest row."""
    n_q, m = scores.shape
    # Flat positions, then rows and columns: np.nonzero of a 2-D mask is ten times slower.
    rows, cols = np.divmod(np.flatnonzero(mask), m)
    counts = np.bincount(rows, minlength=n_q)
    slot = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    out = np.full((n_q, int(counts.max()) if rows.size else 0), _PAD, dtype=np.int64)
    out[rows, slot] = _keys(scores[rows, cols], cols + start)
    return out


def _block_top(scores: np.ndarray, k: int, mask: np.ndarray, start: int) -> np.ndarray:
    """The keys (:func:`_keys`) of the top k of each row of ``scores`` (n_q, m > k), unordered.

    Each row is cut into min(4k, m) groups of consecutive columns; the k-th largest of the
    groups' maxima is at most the row's k-th score (k columns reach it), and on descriptors
    few more than k columns reach it (about 1.2k on random unit vectors): one pass over the
    block, and only those few are keyed and partitioned. Where many columns reach it (many
    equal scores), the whole block's keys are partitioned instead: slower, but as exact.
    ``mask`` is an (n_q, m) bool work array.
    """
    n_q, m = scores.shape
    n_groups = min(4 * k, m)
    maxima = np.maximum.reduceat(scores, np.arange(n_groups) * (m // n_groups), axis=1)
    bound = np.partition(maxima, n_groups - k, axis=1)[:, n_groups - k, None]
    np.greater_equal(scores, bound, out=mask)
    if np.count_nonzero(mask) <= 4 * n_q * k:
        keys = _masked_keys(scores, mask, start)
        if keys.shape[1] <= 4 * k:
            keys.partition(k - 1, axis=1)
            return keys[:, :k]
    keys = _keys(scores, np.arange(start, start + m, dtype=np.int64))
    keys.partition(k - 1, axis=1)
    return keys[:, :k].copy()


def rank(query_vecs, db_vecs, k: int | None = None, block_size: int | None = None, backend: str = "numpy") -> np.ndarray:
    """Rank the database for each query by decreasing inner product.

    Ties are broken by the smaller database index, so rankings are reproducible.
    The database is scanned in nearly equal blocks of at most ``block_size`` rows,
    so that with k set the memory beyond the data is O(n_queries × (block_size + k)):
    one block's float32 scores and a byte mask of them, the k best so far and the
    block's candidates (at most 4k int64 keys a query, or, where many scores are
    equal, one key per score of the block). By default a block holds about 16 M
    scores (64 MB) whatever the number of queries.

    Scores are ``q @ db.T`` (the values :func:`similarities` returns) from numpy's BLAS.
    The first block's exact top k starts the k best; a later block only hands over its
    scores above the k-th best so far (a score equal to it loses the tie, its index being
    larger), which are few, and they are merged with the best. Every order is a sort of
    int64 keys that encode (score desc, index asc) (:func:`_keys`), so ties are exact.

    Args:
        query_vecs: (n_queries, D) or (D,), normally L2-normalised.
        db_vecs: (n_db, D), normally L2-normalised; n_db < 2**32.
        k: keep only the top k (default: the full ranking).
        block_size: database rows scored at once (default: ``2**24 // n_queries``,
            at least 1024).
        backend: ``"numpy"`` or ``"faiss"`` (exact ``IndexFlatIP``; needs faiss-cpu).

    Returns:
        int64 database indices, shape (k or n_db, n_queries), most similar first:
        column q is query q's ranking, as the reference ``compute_map`` expects.
    """
    q, db = _check_pair(query_vecs, db_vecs)
    n_q, n_db = q.shape[0], db.shape[0]
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
        return np.ascontiguousarray(ids.T.astype(np.int64))
    if backend != "numpy":
        raise ValueError(f"unknown backend {backend!r}; use 'numpy' or 'faiss'")
    if block_size is None:
        block_size = _default_block_size(n_q)
    if int(block_size) != block_size or block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    if n_db >= 2**32:
        raise ValueError(f"rank keys database indices on 32 bits: n_db must be < 2**32, got {n_db}")
    block_size = min(int(block_size), n_db)
    if k == n_db:
        # The full ranking is as large as all the scores: score everything, then one sort.
        keys = _keys(_all_scores(q, db, block_size), np.arange(n_db, dtype=np.int64))
        keys.sort(axis=1)
        return np.ascontiguousarray(_key_index(keys).T)
    # Work arrays for the largest block, reused: fresh ones would page-fault 80 MB at every block.
    work = np.empty(n_q * block_size, dtype=np.float32)
    mask = np.empty(n_q * block_size, dtype=bool)
    best = np.empty((n_q, 0), dtype=np.int64)  # keys of the k best so far, sorted
    for start, stop in _blocks(n_db, block_size):
        m = stop - start
        scores = _scores_into(q, db[start:stop], work[: n_q * m].reshape(n_q, m))
        block_mask = mask[: n_q * m].reshape(n_q, m)
        if best.shape[1] < k:  # fewer than k seen: any of the block's top k may stay
            if m > k:
                cand = _block_top(scores, k, block_mask, start)
            else:
                cand = _keys(scores, np.arange(start, stop, dtype=np.int64))
        else:
            n_above = np.count_nonzero(np.greater(scores, _key_scores(best[:, k - 1 :]), out=block_mask))
            if n_above == 0:
                continue
            # Few scores beat the k-th best once a block has been seen; when many do (a database in
            # increasing order of score, or blocks smaller than k), the block's own top k costs less.
            if n_above <= n_q * k:
                cand = _masked_keys(scores, block_mask, start)
            if n_above > n_q * k or cand.shape[1] > 4 * k:  # then m > k
                cand = _block_top(scores, k, block_mask, start)
        best = np.concatenate([best, cand], axis=1)
        best.sort(axis=1)
        best = best[:, :k]
    return np.ascontiguousarray(_key_index(best).T)


def _positive_int(value, name: str) -> int:
    """``value`` as an int >= 1, or a ValueError naming the parameter."""
    try:
        ok = not isinstance(value, bool) and int(value) == value and value >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def recall_at_k(approx_ids, exact_ids, k: int) -> float:
    """Mean over queries of |approx top k ∩ exact top k| / k: how much of the exact answer an index returns.

    Args:
        approx_ids, exact_ids: (≥ k, n_queries) database indices, best first
            (:func:`cbir_lab.indexes.search_index` and :func:`rank` layouts); -1 pads count as misses.
        k: the cut-off.

    Examples:
        >>> exact = np.array([[0, 5], [1, 6], [2, 7]])
        >>> approx = np.array([[0, 6], [2, 9], [4, -1]])
        >>> recall_at_k(approx, exact, 2)  # query 0: {0, 2} ∩ {0, 1} = 1 of 2; query 1: {6, 9} ∩ {5, 6} = 1 of 2
        0.5
    """
    approx, exact = np.asarray(approx_ids), np.asarray(exact_ids)
    if approx.ndim != 2 or exact.ndim != 2 or approx.shape[1] != exact.shape[1]:
        raise ValueError(f"approx_ids and exact_ids must be (k, n_queries) with the same queries, got "
                         f"{approx.shape} and {exact.shape}")
    k = _positive_int(k, "k")
    if approx.shape[0] < k or exact.shape[0] < k:
        raise ValueError(f"k={k} needs the top {k} of both rankings, got {approx.shape[0]} and {exact.shape[0]} rows")
    hits = [np.intersect1d(approx[:k, q][approx[:k, q] >= 0], exact[:k, q]).size for q in range(exact.shape[1])]
    return float(np.mean(hits) / k)
