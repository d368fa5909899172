"""Beyond one global vector: k-reciprocal re-ranking and spatial verification, scored and costed side by side.

* :func:`beyond_table`: one set of global descriptors ranked five ways (the plain
  ranking; k-reciprocal re-ranking; spatial verification of the top k; query
  expansion with the verified results; and the three together), each as a
  :class:`~cbir_lab.studies.methods.MethodScore` row (for
  :func:`cbir_lab.studies.real_photos.evidence_table`'s intervals) with its
  :class:`MethodCost`: time per query, time spent once on the database, memory per image.
* :func:`format_costs`: those costs as a text table.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cbir_lab.evaluation import score
from cbir_lab.kreciprocal import k_reciprocal_rank
from cbir_lab.search import rank
from cbir_lab.studies.methods import MethodScore, scored_row
from cbir_lab.verification import SpatialVerifier, rerank_by_inliers, verified_query_expansion

__all__ = ["MethodCost", "BeyondStudy", "beyond_table", "format_costs"]


@dataclass(frozen=True)
class MethodCost:
    """What one method costs, measured (wall-clock time, so it moves with the machine's load).

    Attributes:
        method: the row's name.
        seconds_per_query: the work done for each query, averaged over the queries.
        offline_seconds: the work done once for the database (its images' local features;
            k-reciprocal's database lists are computed per call, inside the per-query time).
        bytes_per_image: what the method holds per database image: the float32 descriptor,
            plus k-reciprocal's neighbour lists, plus the local features spatial verification keeps.
    """

    method: str
    seconds_per_query: float
    offline_seconds: float
    bytes_per_image: float


@dataclass(frozen=True)
class BeyondStudy:
    """What :func:`beyond_table` returns.

    Attributes:
        rows: one :class:`~cbir_lab.studies.methods.MethodScore` per method, the plain ranking first.
        costs: one :class:`MethodCost` per row, in the same order.
        inliers: (k, n_queries) inlier counts of the plain ranking's top k.
    """

    rows: list[MethodScore]
    costs: list[MethodCost]
    inliers: np.ndarray = field(repr=False)


class _PairInliers:
    """Inlier counts of (query, database image) pairs, each verified once, with the time spent verifying."""

    def __init__(self, verifier: SpatialVerifier, queries: Sequence, images: Sequence) -> None:
        self.verifier, self.queries, self.images = verifier, list(queries), list(images)
        self.counts: dict[tuple[int, int], int] = {}
        self.seconds = 0.0

    def top(self, ranks: np.ndarray, k: int) -> np.ndarray:
        k = min(k, ranks.shape[0])
        out = np.zeros((k, ranks.shape[1]), dtype=np.int64)
        start = time.perf_counter()
        for q in range(ranks.shape[1]):
            for r in range(k):
                pair = (q, int(ranks[r, q]))
                if pair not in self.counts:
                    self.counts[pair] = self.verifier.verify(self.queries[q], self.images[pair[1]]).n_inliers
                out[r, q] = self.counts[pair]
        self.seconds += time.perf_counter() - start
        return out


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - start


def beyond_table(dataset, query_vecs, db_vecs, top_k: int = 100, k1: int = 20, k2: int = 6,
                 lambda_value: float = 0.3, min_inliers: int = 15,
                 verifier: SpatialVerifier | None = None) -> BeyondStudy:
    """One set of global descriptors ranked five ways, each scored under the dataset's protocol, with its cost.

    Rows, in order:

    * ``baseline``: :func:`~cbir_lab.search.rank`.
    * ``k-reciprocal``: :func:`~cbir_lab.kreciprocal.k_reciprocal_rank` with ``k1``, ``k2``, ``lambda_value``.
    * ``spatial verification (top k)``: the baseline's top ``top_k`` re-ranked by inliers
      (:func:`~cbir_lab.verification.rerank_by_inliers`, ``min_inliers``).
    * ``verified QE``: the query averaged with its verified results among the baseline's
      top ``top_k`` (:func:`~cbir_lab.verification.verified_query_expansion`), ranked again.
    * ``verified QE + k-reciprocal + SV``: the verified-QE query re-ranked by k-reciprocal
      distance, then that ranking's top ``top_k`` re-ranked by inliers.

    Each (query, image) pair is verified once; a later row reuses its count, and only
    the pairs it adds count in its time. The query images are those the descriptors were
    computed from (``dataset.queries()``: cropped to their boxes under the revisited protocol).

    Args:
        dataset: a :class:`~cbir_lab.datasets.base.RetrievalDataset` with ground truth.
        query_vecs: (n_queries, D), L2-normalised, in the dataset's query order
            (e.g. ``index.descriptors("SPoC")[0]`` of a :class:`~cbir_lab.index.RetrievalIndex`).
        db_vecs: (n_db, D), L2-normalised, in the order of ``dataset.db_images``.
        top_k: results verified per query.
        k1, k2, lambda_value: k-reciprocal's settings (the paper's defaults: tune them on held-out queries).
        min_inliers: the fewest inliers that count as verified.
        verifier: the :class:`~cbir_lab.verification.SpatialVerifier` (default settings if ``None``);
            features it already holds are not extracted (nor timed) again.

    Returns:
        The :class:`BeyondStudy`: rows, costs, and the baseline's inlier counts.
    """
    q = np.asarray(query_vecs, dtype=np.float32)
    db = np.asarray(db_vecs, dtype=np.float32)
    if len(q) != dataset.n_queries or len(db) != dataset.n_db:
        raise ValueError(f"query_vecs and db_vecs have {len(q)} and {len(db)} rows, but the dataset has "
                         f"{dataset.n_queries} queries and {dataset.n_db} database images")
    verifier = verifier if verifier is not None else SpatialVerifier()
    n_q, n_db, dim = len(q), len(db), db.shape[1]
    descriptor_bytes = float(dim * 4)
    width = max(min(k1, n_db), min(k2, n_db + 1) - 1) + 1
    list_bytes = float(width * (8 + 8))  # an index and a similarity per list entry

    # The database's local features, extracted once (offline); then each query's own, per query.
    start = time.perf_counter()
    for image in dataset.db_images:
        verifier.features(image)
    offline = time.perf_counter() - start
    local_bytes = sum(verifier.features(image).nbytes for image in dataset.db_images) / n_db
    queries = dataset.queries()
    start = time.perf_counter()
    for query in queries:
        verifier.features(query)
    query_features = time.perf_counter() - start
    pairs = _PairInliers(verifier, queries, dataset.db_images)

    plain, t_rank = _timed(rank, q, db)
    reciprocal, t_recip = _timed(k_reciprocal_rank, q, db, k1=k1, k2=k2, lambda_value=lambda_value)
    inliers = pairs.top(plain, top_k)
    t_verify = pairs.seconds
    verified, t_rerank = _timed(rerank_by_inliers, plain, inliers, min_inliers=min_inliers)
    expanded, t_expand = _timed(verified_query_expansion, q, db, plain, inliers, min_inliers=min_inliers)
    qe_ranks, t_qe_rank = _timed(rank, expanded, db)
    combined_recip, t_combined_recip = _timed(k_reciprocal_rank, expanded, db, k1=k1, k2=k2,
                                              lambda_value=lambda_value)
    before = pairs.seconds
    combined_inliers = pairs.top(combined_recip, top_k)
    t_combined_verify = pairs.seconds - before
    combined, t_combined_rerank = _timed(rerank_by_inliers, combined_recip, combined_inliers, min_inliers=min_inliers)

    k = inliers.shape[0]
    sv_online = query_features + t_verify
    methods = [
        ("baseline", plain, t_rank, 0.0, descriptor_bytes),
        (f"k-reciprocal (k1={k1}, k2={k2}, λ={lambda_value:g})", reciprocal, t_recip, 0.0,
         descriptor_bytes + list_bytes),
        (f"spatial verification (top {k})", verified, t_rank + sv_online + t_rerank, offline,
         descriptor_bytes + local_bytes),
        ("verified QE", qe_ranks, t_rank + sv_online + t_expand + t_qe_rank, offline, descriptor_bytes + local_bytes),
        ("verified QE + k-reciprocal + SV", combined,
         t_rank + sv_online + t_expand + t_combined_recip + t_combined_verify + t_combined_rerank, offline,
         descriptor_bytes + list_bytes + local_bytes),
    ]
    rows, costs = [], []
    for name, ranks, seconds, offline_seconds, bytes_per_image in methods:
        result = score(ranks, dataset)
        rows.append(scored_row(dataset, name, dim, result.scores, result.aps))
        costs.append(MethodCost(name, seconds / n_q, offline_seconds, bytes_per_image))
    return BeyondStudy(rows, costs, inliers)


def format_costs(costs: Sequence[MethodCost]) -> str:
    """A text table of :class:`MethodCost` rows: time per query, time once for the database, memory per image.

    Examples:
        >>> print(format_costs([MethodCost("baseline", 0.0004, 0.0, 5120.0)]))
        method    per query (s)  database, once (s)  per image (KiB)
        baseline         0.0004                 0.0              5.0
    """
    header = ["method", "per query (s)", "database, once (s)", "per image (KiB)"]
    body = [[c.method, f"{c.seconds_per_query:.4f}", f"{c.offline_seconds:.1f}", f"{c.bytes_per_image / 1024:.1f}"]
            for c in costs]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
             for row in [header, *body]]
    return "\n".join(line.rstrip() for line in lines)
