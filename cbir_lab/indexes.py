"""Indexes: faiss indexes for databases too large to scan exactly, in :func:`cbir_lab.search.rank`'s layout.

* :func:`build_faiss_index`: exact (``IndexFlatIP``), or approximate: ``IndexIVFFlat``
  (k-means cells, only the ``nprobe`` nearest cells are scanned; Jégou, Douze & Schmid,
  TPAMI 2011; Johnson, Douze & Jégou, "Billion-scale similarity search with GPUs",
  2017), ``IndexPQ`` (product quantization) and ``IndexIVFPQ`` (both).
* :func:`search_index`: each query's top k in an index.
* :func:`index_bytes_per_vector`: the memory one database vector takes in an index.

How much of the exact answer an index returns is :func:`cbir_lab.search.recall_at_k`.
Optional extra ``faiss-cpu``, imported when an index is built.
"""

from __future__ import annotations

import numpy as np

from cbir_lab.search import _as_vectors

__all__ = ["build_faiss_index", "search_index", "index_bytes_per_vector"]


def _import_faiss():
    try:
        import faiss
    except ImportError as err:
        raise ImportError("faiss indexes need the optional extra: pip install faiss-cpu") from err
    return faiss


def build_faiss_index(db_vecs, kind: str = "flat", nlist: int | None = None, nprobe: int = 16, seed: int = 0,
                      m: int = 16, nbits: int = 8):
    """A faiss inner-product index over the database, for :func:`search_index`.

    * ``"flat"``: exact search (``IndexFlatIP``), the same neighbours as
      :func:`~cbir_lab.search.rank` up to the order of exact ties; 4·D bytes per vector.
    * ``"ivf"``: ``IndexIVFFlat``. k-means (trained on the database) splits it
      into ``nlist`` cells; a query scans only its ``nprobe`` nearest cells, so
      a search costs about ``nprobe / nlist`` of exact search, at some recall.
    * ``"pq"``: ``IndexPQ``, product quantization (Jégou, Douze & Schmid, TPAMI
      2011): each vector is cut into ``m`` sub-vectors, each replaced by the id of
      its nearest of 2^nbits sub-centroids, so it is stored in m·nbits/8 bytes
      and compared through look-up tables; every code is scanned.
    * ``"ivfpq"``: ``IndexIVFPQ``, both: the cells of ``"ivf"`` holding PQ codes
      of the residuals to their centroid, the usual engine at 10^8–10^9 vectors.

    Args:
        db_vecs: (n_db, D), normally L2-normalised.
        kind: ``"flat"``, ``"ivf"``, ``"pq"`` or ``"ivfpq"``.
        nlist: IVF cells (default ``sqrt(n_db)``, at most ``n_db // 39`` so
            that k-means has the 39 points per centroid faiss asks for, at least 1).
            k-means trains on at most 64 points per cell, drawn with ``seed``.
        nprobe: IVF cells scanned per query (clipped to ``nlist``).
        seed: the k-means seed, so an index is reproducible.
        m: PQ sub-vectors (bytes per code with ``nbits=8``); must divide D.
        nbits: bits per sub-vector code (2^nbits sub-centroids; the database needs
            at least 2^nbits vectors to train them).

    Returns:
        The faiss index, holding all of ``db_vecs`` (ids 0 … n_db - 1).

    Raises:
        ImportError: faiss is not installed.
        ValueError: unknown ``kind``, ``nlist``/``nprobe`` < 1, ``m`` not dividing D,
            or too few vectors to train the quantizer.
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
    if kind not in ("ivf", "pq", "ivfpq"):
        raise ValueError(f"unknown index kind {kind!r}; use 'flat', 'ivf', 'pq' or 'ivfpq'")
    if kind in ("pq", "ivfpq"):
        if int(m) != m or m < 1 or dim % m:
            raise ValueError(f"m must be a positive integer dividing the dimension D={dim}, got {m!r}")
        if int(nbits) != nbits or not 1 <= nbits <= 16:
            raise ValueError(f"nbits must be an integer in 1..16, got {nbits!r}")
        if n_db < 2 ** nbits:
            raise ValueError(f"a PQ with nbits={nbits} trains 2^{nbits} = {2 ** nbits} sub-centroids: it needs at "
                             f"least that many vectors, got {n_db}")
    if kind == "pq":
        index = faiss.IndexPQ(dim, int(m), int(nbits), faiss.METRIC_INNER_PRODUCT)
        index.pq.cp.seed = seed
        index.train(db)
        index.add(db)
        return index
    if nlist is None:
        nlist = max(1, min(int(round(np.sqrt(n_db))), n_db // 39))
    if int(nlist) != nlist or not 1 <= nlist <= n_db:
        raise ValueError(f"nlist must be an integer in 1..n_db={n_db}, got {nlist!r}")
    if int(nprobe) != nprobe or nprobe < 1:
        raise ValueError(f"nprobe must be a positive integer, got {nprobe!r}")
    quantizer = faiss.IndexFlatIP(dim)
    if kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, dim, int(nlist), faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFPQ(quantizer, dim, int(nlist), int(m), int(nbits), faiss.METRIC_INNER_PRODUCT)
        index.pq.cp.seed = seed
    index.cp.seed = seed
    index.cp.min_points_per_centroid = 1  # a small database is a valid (if pointless) IVF; no warning
    index.cp.max_points_per_centroid = 64  # k-means on a sample: 4x faster than faiss' 256, same recall
    index.train(db)
    index.add(db)
    index.nprobe = min(int(nprobe), int(nlist))
    return index


def index_bytes_per_vector(index) -> float:
    """The memory one database vector takes in a faiss index: its code, plus its 8-byte id in an IVF list.

    Flat: 4·D; PQ: m·nbits/8; IVF-Flat: 4·D + 8; IVF-PQ: m·nbits/8 + 8 (the ids of an
    inverted list are stored; a flat or PQ index numbers its vectors implicitly). The
    quantizers themselves (centroids, sub-centroids) are a fixed cost, left out.

    Examples:
        >>> import faiss
        >>> index_bytes_per_vector(faiss.IndexFlatIP(512))
        2048.0
    """
    faiss = _import_faiss()
    typed = faiss.downcast_index(index)  # a view of ``index``, which must stay referenced while it is used
    if isinstance(typed, faiss.IndexFlat):
        return 4.0 * typed.d
    if isinstance(typed, faiss.IndexPQ):
        return float(typed.pq.code_size)
    if isinstance(typed, faiss.IndexIVF):
        return float(typed.code_size + 8)
    raise ValueError(f"no memory rule for {type(typed).__name__}")


def search_index(index, query_vecs, k: int) -> np.ndarray:
    """The top k of each query in a faiss index, in :func:`~cbir_lab.search.rank`'s layout.

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
