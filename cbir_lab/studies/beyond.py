"""Beyond one global vector: k-reciprocal re-ranking and spatial verification, scored and costed side by side.

* :func:`beyond_table`: one set of global descriptors ranked five ways (the plain
  ranking; k-reciprocal re-ranking; spatial verification of the top k; query
  expansion with the verified results; and the three together), each as a
  :class:`~cbir_lab.studies.methods.MethodScore` row (for
  :func:`cbir_lab.studies.real_photos.evidence_table`'s intervals) with its
  :class:`MethodCost`: time per query, time spent once on the database, memory per image.
* :func:`side_by_side`: lesson 10's headline: larger networks and multi-scale descriptors
  (:func:`cbir_lab.studies.scaling.scaling_study`) beside the re-rankings of
  :func:`beyond_table`, and the re-rankings on a multi-scale descriptor, each row costed with
  the global descriptor's extraction included.
* :func:`format_costs`: those costs as a text table; :func:`format_inlier_counts`: how many
  positives and negatives of the verified lists reach the inlier threshold.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from cbir_lab.evaluation import score
from cbir_lab.kreciprocal import k_reciprocal_rank
from cbir_lab.rerank import database_augmentation, diffusion_rank, knn_affinity, normalized_affinity
from cbir_lab.search import rank
from cbir_lab.studies.methods import MethodScore, scored_row
from cbir_lab.verification import SpatialVerifier, rerank_by_inliers, verified_query_expansion

__all__ = ["MethodCost", "BeyondStudy", "beyond_table", "SideBySide", "side_by_side", "format_costs",
           "format_inlier_counts"]


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
        plain: the plain ranking (n_db, n_queries) whose top k was verified.
    """

    rows: list[MethodScore]
    costs: list[MethodCost]
    inliers: np.ndarray = field(repr=False)
    plain: np.ndarray | None = field(default=None, repr=False)


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
                 verifier: SpatialVerifier | None = None, dba_k: int | None = None, dba_alpha: float = 3.0,
                 diffusion: tuple[int, float] | None = None, diffusion_k_query: int = 5) -> BeyondStudy:
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
    * with ``dba_k``, after k-reciprocal: ``DBA (k=…)``, lesson 8's database-side augmentation
      (:func:`~cbir_lab.rerank.database_augmentation`, done once for the database), then the plain ranking.
    * with ``diffusion = (k, α)``, after it: ``diffusion (k=…, α=…)``, lesson 8's diffusion on the
      database's reciprocal k-NN graph (built once; :func:`~cbir_lab.rerank.diffusion_rank`).

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
            features it already holds are not extracted (nor timed) again: pass a fresh one to cost them.
        dba_k, dba_alpha: add the DBA row (``None``: not), with these neighbours and exponent.
        diffusion, diffusion_k_query: add the diffusion row (``None``: not): the graph's k and α, and the
            query's neighbours the diffusion starts from.

    Returns:
        The :class:`BeyondStudy`: rows, costs, the baseline's inlier counts and the baseline's ranking.
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
    extra = []
    if dba_k is not None:
        augmented, t_augment = _timed(database_augmentation, db, k=dba_k, alpha=dba_alpha)
        dba_ranks, t_dba = _timed(rank, q, augmented)
        extra.append((f"DBA (k={dba_k})", dba_ranks, t_dba, t_augment, descriptor_bytes))
    if diffusion is not None:
        graph_k, alpha = diffusion
        graph, t_graph = _timed(lambda: normalized_affinity(knn_affinity(db, k=min(graph_k, n_db - 1))))
        diffused, t_diffuse = _timed(diffusion_rank, q, db, alpha=alpha, k_query=diffusion_k_query, S=graph)
        graph_bytes = (graph.data.nbytes + graph.indices.nbytes + graph.indptr.nbytes) / n_db
        extra.append((f"diffusion (k={graph_k}, α={alpha:g})", diffused, t_diffuse, t_graph,
                      descriptor_bytes + graph_bytes))
    methods[2:2] = extra
    rows, costs = [], []
    for name, ranks, seconds, offline_seconds, bytes_per_image in methods:
        result = score(ranks, dataset)
        rows.append(scored_row(dataset, name, dim, result.scores, result.aps))
        costs.append(MethodCost(name, seconds / n_q, offline_seconds, bytes_per_image))
    return BeyondStudy(rows, costs, inliers, plain)


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


@dataclass(frozen=True)
class SideBySide:
    """What :func:`side_by_side` returns.

    Attributes:
        rows: the headline's :class:`~cbir_lab.studies.methods.MethodScore` rows: each headline descriptor
            with the plain ranking (the first is the reference), then ``+ …``: the re-rankings of the first
            descriptor, then the re-rankings together on the combined descriptor.
        costs: one :class:`MethodCost` per row, the global descriptor's extraction included: per query, one
            image's extraction plus the method's own work; once, the database's extraction plus the method's
            offline work (local features, DBA); per image, what the method keeps.
        scaling_rows, scaling_costs: the whole :func:`~cbir_lab.studies.scaling.scaling_study` (every
            backbone at every set of scales), with its FLOPs and measured extraction times.
        study: :func:`beyond_table` of the first descriptor (its ``inliers`` for :func:`format_inlier_counts`).
        combined: :func:`beyond_table` of the combined descriptor.
    """

    rows: list[MethodScore]
    costs: list[MethodCost]
    scaling_rows: list[MethodScore] = field(repr=False)
    scaling_costs: list = field(repr=False)
    study: BeyondStudy = field(repr=False)
    combined: BeyondStudy = field(repr=False)


def _scales_key(scales) -> tuple[float, ...]:
    return tuple(round(float(x), 9) for x in scales)


def side_by_side(dataset, pooling="SPoC", backbones: Sequence[str] | None = None,
                 scale_sets: Sequence[Sequence[float]] | None = None,
                 headline: Sequence[tuple[str, Sequence[float]]] | None = None,
                 combine: tuple[str, Sequence[float]] | None = None, top_k: int = 100, k1: int = 20, k2: int = 6,
                 lambda_value: float = 0.3, min_inliers: int = 15, dba_k: int | None = 3,
                 diffusion: tuple[int, float] | None = None, verifier_settings: dict | None = None,
                 max_side: int | None = None, timing_images: int = 16, cache=True) -> SideBySide:
    """Lesson 10's comparison: bigger networks, multi-scale descriptors and the re-rankings, at their cost.

    1. :func:`~cbir_lab.studies.scaling.scaling_study`: every backbone at every set of scales, scored, with
       its FLOPs and its extraction time per image (measured uncached on ``timing_images`` database images).
    2. :func:`beyond_table` on the first backbone at the first set of scales (the reference): DBA,
       k-reciprocal, spatial verification of the top ``top_k``, verified QE, and the three together.
    3. :func:`beyond_table` on ``combine``'s descriptors: the three together on a better descriptor.

    Each :func:`beyond_table` gets a fresh :class:`~cbir_lab.verification.SpatialVerifier`, so the local
    features of both are extracted and timed. Times are wall-clock on the machine at hand: they move with
    its load, and only their ratios carry over to another machine.

    Args:
        dataset: a :class:`~cbir_lab.datasets.base.RetrievalDataset` with ground truth, at its own max side.
        pooling: one pooling for every descriptor (SPoC: its scales are averaged, p = 1).
        backbones: default :data:`~cbir_lab.studies.scaling.LITE_BACKBONES`.
        scale_sets: default one scale, cirtorch's 1, 1/√2, 1/2 (:data:`~cbir_lab.pipeline.DEFAULT_SCALES`),
            and one scale of their cost (:data:`~cbir_lab.studies.scaling.EQUAL_COST_SCALES`).
        headline: the (backbone, scales) shown as rows of the headline; default every backbone at the first
            set of scales, and the first backbone at every other set. Each must be among the study's.
        combine: the (backbone, scales) the re-rankings are also run on together; default the first
            backbone at the second set of scales (three scales, by default).
        top_k, k1, k2, lambda_value, min_inliers, dba_k, diffusion: as :func:`beyond_table`.
        verifier_settings: keyword arguments of :class:`~cbir_lab.verification.SpatialVerifier`.
        max_side, timing_images, cache: as :func:`~cbir_lab.studies.scaling.scaling_study` (``max_side``:
            the long side at scale 1, default the dataset's own).

    Returns:
        The :class:`SideBySide`: headline rows and costs, and the studies behind them.
    """
    from cbir_lab.pipeline import DEFAULT_SCALES, extract_dataset, global_descriptors
    from cbir_lab.studies.scaling import EQUAL_COST_SCALES, LITE_BACKBONES, scaling_study

    backbones = list(LITE_BACKBONES if backbones is None else backbones)
    scale_sets = [tuple(x) for x in (((1.0,), DEFAULT_SCALES, EQUAL_COST_SCALES) if scale_sets is None else scale_sets)]
    keys = [(b, _scales_key(sc)) for b in backbones for sc in scale_sets]  # the study's row order
    if headline is None:
        headline = [(b, scale_sets[0]) for b in backbones[:1]] + [(backbones[0], sc) for sc in scale_sets[1:]]
        headline += [(b, scale_sets[0]) for b in backbones[1:]]
    if combine is None:
        combine = (backbones[0], scale_sets[1 if len(scale_sets) > 1 else 0])
    wanted = [(b, _scales_key(sc)) for b, sc in [*headline, combine]]
    missing = [w for w in wanted if w not in keys]
    if missing:
        raise ValueError(f"headline and combine must be among the study's (backbone, scales); not {missing}")

    max_side = dataset.max_side if max_side is None else int(max_side)
    scaling_rows, scaling_costs = scaling_study(dataset, backbones, scale_sets, pooling, max_side=max_side,
                                                timing_images=timing_images, cache=cache)
    n_db = dataset.n_db

    def descriptors(key):
        backbone, scales = key
        features = extract_dataset(dataset, backbone, max_side, cache, False, scales=scales)
        return global_descriptors(features, pooling)

    def extraction(key) -> float:
        return scaling_costs[keys.index(key)].seconds_per_image

    rows, costs = [], []
    for key in (wanted[:-1]):
        row, cost = scaling_rows[keys.index(key)], scaling_costs[keys.index(key)]
        q, db = descriptors(key)
        _, t_rank = _timed(rank, q, db)
        rows.append(row)
        costs.append(MethodCost(row.method, cost.seconds_per_image + t_rank / len(q), cost.seconds_per_image * n_db,
                                float(cost.descriptor_bytes)))

    def reranked(key, only_last: bool) -> BeyondStudy:
        q, db = descriptors(key)
        study = beyond_table(dataset, q, db, top_k=top_k, k1=k1, k2=k2, lambda_value=lambda_value,
                             min_inliers=min_inliers, verifier=SpatialVerifier(**(verifier_settings or {})),
                             dba_k=None if only_last else dba_k, diffusion=None if only_last else diffusion)
        label = scaling_rows[keys.index(key)].method
        pairs = list(zip(study.rows, study.costs))[1:]
        for row, cost in (pairs[-1:] if only_last else pairs):
            name = f"{label} + {row.method}" if only_last else f"+ {row.method}"
            rows.append(replace(row, method=name))
            costs.append(MethodCost(name, cost.seconds_per_query + extraction(key),
                                    cost.offline_seconds + extraction(key) * n_db, cost.bytes_per_image))
        return study

    study = reranked(wanted[0], only_last=False)
    combined = reranked(wanted[-1], only_last=True)
    return SideBySide(rows, costs, scaling_rows, scaling_costs, study, combined)


def format_inlier_counts(dataset, ranks, inliers, min_inliers: int = 15) -> str:
    """How many of the verified results of each kind reach ``min_inliers``, and the most inliers of each kind.

    The kinds are the revisited protocol's easy and hard positives, junk (ignored by the scores) and the
    negatives (every other image); on a dataset with one list of positives, positives and negatives.

    Args:
        dataset: the dataset whose ground truth names the kinds.
        ranks: (≥ k, n_queries) the ranking that was verified.
        inliers: (k, n_queries) the inlier counts of ``ranks[:k]`` (:attr:`BeyondStudy.inliers`).
        min_inliers: the threshold.

    Returns:
        A text table: kind, results verified, how many reached the threshold, median and most inliers.

    Examples:
        >>> from types import SimpleNamespace
        >>> toy = SimpleNamespace(gnd=[{"ok": [0], "junk": []}])
        >>> print(format_inlier_counts(toy, np.array([[0], [1]]), np.array([[40], [3]])))
        top 2 of 1 queries  results  ≥ 15 inliers  median  most
        positives                 1             1    40.0    40
        negatives                 1             0     3.0     3
    """
    counts = np.asarray(inliers)
    ranking = np.asarray(ranks)[: counts.shape[0]]
    revisited = "easy" in dataset.gnd[0]
    kinds = ("easy positives", "hard positives", "junk", "negatives") if revisited else ("positives", "negatives")
    found: dict[str, list[int]] = {kind: [] for kind in kinds}
    for q in range(counts.shape[1]):
        g = dataset.gnd[q]
        lists = ({"easy positives": set(g["easy"]), "hard positives": set(g["hard"]), "junk": set(g["junk"])}
                 if revisited else {"positives": set(g["ok"]), "junk": set(g.get("junk", ()))})
        for r in range(counts.shape[0]):
            image = int(ranking[r, q])
            kind = next((k for k, members in lists.items() if image in members), "negatives")
            if kind in found:
                found[kind].append(int(counts[r, q]))
    header = [f"top {counts.shape[0]} of {counts.shape[1]} queries", "results", f"≥ {min_inliers} inliers", "median",
              "most"]
    body = [[kind, str(len(v)), str(sum(c >= min_inliers for c in v)), f"{np.median(v):.1f}" if v else "—",
             str(max(v)) if v else "—"] for kind, v in found.items()]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
                     for r in [header, *body])
