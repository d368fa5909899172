"""Search benchmark: ``rank`` against faiss, its memory, IVF's recall, and how search scales.

* ``rank`` (top-100 of 1,000 queries over 100,000 × 512 float32) side by side
  with faiss ``IndexFlatIP`` on the same data, median of 5 alternating runs; target ≤ 1.2×.
* Peak memory of both, measured in a fresh subprocess (peak RSS minus RSS
  before the search), so other sections' allocations do not count.
* IVF (``build_faiss_index(kind="ivf")``): recall@100 against exact search and
  time, on synthetic *clustered* descriptors (uniform random vectors have no
  neighbourhood structure, and no index beats brute force on them).
* Time per query at 10^5 and 10^6 descriptors (measured), 10^7 (extrapolated).
* The faiss indexes of lesson 8 side by side on the same 10^5 × 128 clustered
  descriptors (exact, IVF-Flat, PQ, IVF-PQ): bytes per vector, recall@100, and
  time per query as a ratio to exact search, each a median of alternating runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.report import Result, judge
from benchmarks.timing import format_ratio, format_seconds, format_spread, summarize, time_call, time_pair

__all__ = ["unit_vectors", "clustered_vectors", "peak_memory_of_search", "run"]

DIM = 512
N_DB = 100_000
N_QUERIES = 1_000
TOP_K = 100
RANK_TARGET = 1.2


def _normalise_rows_in_place(x: np.ndarray, chunk: int = 16384) -> np.ndarray:
    # In chunks, so that a 10^6-row matrix needs no full-size temporary.
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk]
        part /= np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-12)
    return x


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 rows drawn uniformly on the unit sphere."""
    rng = np.random.default_rng(seed)
    return _normalise_rows_in_place(rng.standard_normal((n, dim), dtype=np.float32))


def clustered_vectors(n: int, dim: int = DIM, n_clusters: int = 1000, spread: float = 0.6, seed: int = 0,
                      centres_seed: int = 12345) -> np.ndarray:
    """(n, dim) float32 unit rows around ``n_clusters`` random centres, like descriptors of many scenes.

    Each row is L2(centre + spread · g / √dim) with g standard normal, so its
    cosine to its centre is about 1 / √(1 + spread²). Queries and database drawn
    with different ``seed`` but the same ``centres_seed`` share the centres.
    """
    centres = unit_vectors(n_clusters, dim, seed=centres_seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x *= np.float32(spread / np.sqrt(dim))
    x += centres[rng.integers(0, n_clusters, size=n)]
    return _normalise_rows_in_place(x)


def _rss_mib(field: str = "VmRSS") -> float:
    """This process' resident memory (``VmRSS``) or its peak since the last reset (``VmHWM``), MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"no {field} in /proc/self/status")


def _child_peak_memory(backend: str, n_db: int) -> None:
    """Run in a fresh process: print the search's peak memory (MiB) as JSON."""
    import resource

    from cbir_lab.search import rank

    db = unit_vectors(n_db, seed=1)
    q = unit_vectors(N_QUERIES, seed=2)
    if backend == "faiss":
        import faiss

        index = faiss.IndexFlatIP(DIM)
        index.add(db)
        search = lambda: index.search(q, TOP_K)
    else:
        search = lambda: rank(q, db, k=TOP_K)
    before = _rss_mib()
    try:  # reset the peak to "now", so that making the data does not count (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        peak_reset = True
    except OSError:
        peak_reset = False
    search()
    # Not getrusage's ru_maxrss: after a (v)fork + exec it keeps the *parent's* peak, which the
    # runner, holding other sections' data, makes larger than anything the search does.
    peak = _rss_mib("VmHWM") if peak_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before_mib": before, "peak_mib": peak, "peak_reset": peak_reset,
                      "data_mib": (db.nbytes + q.nbytes) / 2**20}))


def peak_memory_of_search(backend: str, n_db: int = N_DB) -> dict:
    """Peak RSS of one top-100 search of 1,000 queries, in a fresh Python process.

    Args:
        backend: ``"rank"`` (cbir_lab's blocked brute force) or ``"faiss"`` (IndexFlatIP).
        n_db: database rows.

    Returns:
        ``{"before_mib", "peak_mib", "peak_reset", "data_mib"}``; the search's own
        memory is ``peak_mib - before_mib``.
    """
    root = Path(__file__).resolve().parents[1]
    code = f"from benchmarks.search import _child_peak_memory; _child_peak_memory({backend!r}, {n_db})"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def _rank_vs_faiss(quick: bool) -> tuple[list[Result], float]:
    from cbir_lab.search import rank

    faiss = _faiss()
    db = unit_vectors(N_DB, seed=1)
    q = unit_vectors(N_QUERIES, seed=2)
    name = f"top-{TOP_K} of {N_QUERIES:,} queries over {N_DB:,} × {DIM} float32"
    repeat, warmup = (1, 0) if quick else (5, 1)
    if faiss is None:
        stats = time_call(lambda: rank(q, db, k=TOP_K), repeat=repeat, warmup=warmup)
        return [Result("search", f"rank, {name}", format_seconds(stats.median), format_spread(stats),
                       f"≤ {RANK_TARGET}× faiss", "not measured", "faiss-cpu is not installed: no ratio")], stats.median
    index = faiss.IndexFlatIP(DIM)
    index.add(db)
    t_rank, t_faiss, ratio = time_pair(lambda: rank(q, db, k=TOP_K), lambda: index.search(q, TOP_K),
                                       repeat=repeat, warmup=warmup)
    exact = rank(q, db, k=TOP_K)
    _, faiss_ids = index.search(q, TOP_K)
    agree = float(np.mean(exact == faiss_ids.T))
    results = [
        Result("search", f"rank (cbir_lab), {name}", format_seconds(t_rank.median), format_spread(t_rank)),
        Result("search", f"faiss IndexFlatIP, same data, {faiss.omp_get_max_threads()} threads",
               format_seconds(t_faiss.median), format_spread(t_faiss)),
        Result("search", "rank / faiss IndexFlatIP time ratio", format_ratio(ratio.median),
               format_spread(ratio, format_ratio), f"≤ {RANK_TARGET}×", judge(ratio.median, RANK_TARGET),
               f"rank and faiss return the same index at {agree:.3%} of the {TOP_K}×{N_QUERIES} positions "
               "(the rest: float rounding between BLAS libraries on near-ties)."),
    ]
    return results, t_rank.median


def _memory() -> list[Result]:
    from cbir_lab.search import _blocks, _default_block_size

    results = []
    blocks = _blocks(N_DB, _default_block_size(N_QUERIES))
    block_rows = max(stop - start for start, stop in blocks)
    for backend, label in (("rank", "rank (default block)"), ("faiss", "faiss IndexFlatIP")):
        if backend == "faiss" and _faiss() is None:
            continue
        runs = [peak_memory_of_search(backend) for _ in range(3)]
        extras = summarize([m["peak_mib"] - m["before_mib"] for m in runs])
        mem, extra = runs[0], extras.median
        note = ""
        if backend == "rank":
            note = (f"rank scores {block_rows:,} database rows at a time ({len(blocks)} blocks): a "
                    f"{N_QUERIES:,} × {block_rows:,} float32 block is {N_QUERIES * block_rows * 4 / 2**20:.0f} MiB "
                    f"and its byte mask {N_QUERIES * block_rows / 2**20:.0f} MiB; the rest is BLAS work space. "
                    f"Without blocks the score matrix alone would be {N_QUERIES * N_DB * 4 / 2**20:.0f} MiB. "
                    f"Peak RSS of the process: {mem['peak_mib']:.0f} MiB, of which data {mem['data_mib']:.0f} MiB.")
        if not all(m["peak_reset"] for m in runs):
            note += " (The peak could not be reset after making the data: an upper bound.)"
        results.append(Result("search", f"peak memory of one search beyond the data, {label}, 100,000 case",
                              f"{extra:.0f} MiB", format_spread(extras, lambda v: f"{v:.0f} MiB"),
                              "bounded (blocked)" if backend == "rank" else "",
                              "met" if backend == "rank" and extra < N_QUERIES * N_DB * 4 / 2**20 else "info",
                              note.strip()))
    return results


def _ivf(quick: bool) -> list[Result]:
    from cbir_lab.indexes import build_faiss_index, search_index
    from cbir_lab.search import rank, recall_at_k

    if _faiss() is None:
        return [Result("search", "IVF recall@100", "—", "", "", "not measured", "faiss-cpu is not installed")]
    db = clustered_vectors(N_DB, seed=1)
    q = clustered_vectors(N_QUERIES, seed=2)
    exact = rank(q, db, k=TOP_K)
    start = time.perf_counter()
    index = build_faiss_index(db, kind="ivf")
    build = time.perf_counter() - start
    t_flat = time_call(lambda: rank(q, db, k=TOP_K), repeat=1, warmup=0)
    results = [Result("search", f"IVF build (k-means, nlist={index.nlist}) on 100,000 × 512 clustered descriptors",
                      format_seconds(build), "n=1",
                      note="Synthetic descriptors around 1,000 centres (cosine ≈ 0.86 to their centre); on "
                           "uniform random vectors IVF's recall is far lower, as no index helps there.")]
    for nprobe in ((8, 32) if quick else (4, 16, 64)):
        index.nprobe = nprobe
        stats = time_call(lambda: search_index(index, q, TOP_K), repeat=1 if quick else 3, warmup=0 if quick else 1)
        recall = recall_at_k(search_index(index, q, TOP_K), exact, TOP_K)
        results.append(Result(
            "search", f"IVF nprobe={nprobe}/{index.nlist}: recall@100 vs exact; time for 1,000 queries",
            f"{recall:.3f}; {format_seconds(stats.median)}", format_spread(stats),
            "reported", "info",
            f"Exact rank on the same 1,000 queries: {format_seconds(t_flat.median)} (IVF takes "
            f"{format_ratio(stats.median / t_flat.median)} of it). Batched exact search is one BLAS matrix "
            "product, which IVF's per-query cell scans do not beat at 10^5; IVF pays off in single-query "
            "latency (below) and at 10^6 and beyond, where exact search grows linearly."))
    index.nprobe = 16
    one = q[:1]
    t_ivf1 = time_call(lambda: search_index(index, one, TOP_K), repeat=5 if quick else 9, warmup=1)
    t_exact1 = time_call(lambda: rank(one, db, k=TOP_K), repeat=5 if quick else 9, warmup=1)
    results.append(Result(
        "search", "one query alone (latency): IVF nprobe=16 vs exact rank, 100,000 × 512",
        f"{format_seconds(t_ivf1.median)} vs {format_seconds(t_exact1.median)}", format_spread(t_ivf1), "", "info"))
    return results


def _scale(quick: bool, rank_100k_batch: float) -> list[Result]:
    from cbir_lab.search import rank

    results = [Result("search", "time per query at 10^5 (batch of 1,000 queries), rank",
                      format_seconds(rank_100k_batch / N_QUERIES), "from the ratio above")]
    db = unit_vectors(N_DB, seed=1)
    q = unit_vectors(1, seed=3)
    single = time_call(lambda: rank(q, db, k=TOP_K), repeat=3 if quick else 7, warmup=1)
    results.append(Result("search", "time per query at 10^5, one query alone (latency), rank",
                          format_seconds(single.median), format_spread(single)))
    del db
    per_query_1m = None
    if not quick:
        db = unit_vectors(1_000_000, seed=1)
        queries = unit_vectors(N_QUERIES, seed=2)
        batch = time_call(lambda: rank(queries, db, k=TOP_K), repeat=1, warmup=0)
        single = time_call(lambda: rank(queries[:1], db, k=TOP_K), repeat=3, warmup=1)
        per_query_1m = batch.median / N_QUERIES
        results += [
            Result("search", "time per query at 10^6 (batch of 1,000 queries), rank", format_seconds(per_query_1m),
                   format_spread(batch.scaled(1 / N_QUERIES))),
            Result("search", "time per query at 10^6, one query alone (latency), rank",
                   format_seconds(single.median), format_spread(single)),
        ]
        del db
    if per_query_1m is None:
        per_query_1m = rank_100k_batch / N_QUERIES * 10
        basis = "10× the 10^5 figure (quick run: 10^6 not measured)"
    else:
        basis = "10× the measured 10^6 figure"
    results.append(Result("search", "time per query at 10^7 (batched), extrapolated", format_seconds(per_query_1m * 10),
                          "", "", "info", f"Extrapolated: {basis}; 10^7 × 512 float32 is 19 GiB, more than this "
                          "machine should hold for a benchmark."))
    return results


def _indexes_side_by_side(quick: bool) -> list[Result]:
    """Every index kind of lesson 8 on the same vectors, timed alternately with exact search."""
    if _faiss() is None:
        return [Result("search", "faiss indexes side by side", "—", "", "", "not measured", "faiss-cpu is not installed")]
    from cbir_lab.indexes import build_faiss_index, index_bytes_per_vector, search_index
    from cbir_lab.search import recall_at_k

    dim, n_queries = 128, 500
    db = clustered_vectors(N_DB, dim=dim, seed=1)
    q = clustered_vectors(n_queries, dim=dim, seed=2)
    flat = build_faiss_index(db, kind="flat")
    exact = search_index(flat, q, TOP_K)
    settings = [("IVF-Flat nprobe=16", "ivf", {}), ("PQ 16 B", "pq", {"m": 16}), ("PQ 64 B", "pq", {"m": 64}),
                ("IVF-PQ 16 B nprobe=16", "ivfpq", {"m": 16}), ("IVF-PQ 64 B nprobe=16", "ivfpq", {"m": 64})]
    results = []
    for label, kind, options in settings:
        start = time.perf_counter()
        index = build_faiss_index(db, kind=kind, nprobe=16, **options)
        build = time.perf_counter() - start
        t_index, t_exact, ratio = time_pair(lambda: search_index(index, q, TOP_K), lambda: search_index(flat, q, TOP_K),
                                            repeat=3 if quick else 5)
        recall = recall_at_k(search_index(index, q, TOP_K), exact, TOP_K)
        results.append(Result(
            "search", f"{label} vs exact IndexFlatIP, 100,000 × {dim}, top-{TOP_K} of {n_queries} queries",
            format_ratio(ratio.median), f"{format_seconds(t_index.median)} vs {format_seconds(t_exact.median)}; "
            f"recall@{TOP_K} {recall:.3f}; {index_bytes_per_vector(index):.0f} vs {index_bytes_per_vector(flat):.0f} "
            f"bytes per vector; trained in {format_seconds(build)}", "reported", "info",
            "Clustered synthetic descriptors (1,000 centres), as in the IVF rows; lesson 8 measures the same "
            "indexes on the course's own descriptors plus distractors."))
    return results


def run(quick: bool = False) -> list[Result]:
    """Every figure of the search section (quick: fewer runs, 10^6 extrapolated)."""
    results, rank_100k = _rank_vs_faiss(quick)
    results += _memory()
    results += _ivf(quick)
    results += _indexes_side_by_side(quick)
    results += _scale(quick, rank_100k)
    return results
