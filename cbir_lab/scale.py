"""Search at scale: one set of descriptors in exact, IVF, PQ and IVF-PQ indexes, measured against exact search.

Lesson 8 asks what compact descriptors buy at 10^5 vectors and beyond:

* :func:`scale_database`: the embedded set's whitened descriptors plus
  distractors, up to ``n_total`` vectors: the large photo set's descriptors when
  it is on disk, then synthetic vectors (:func:`distractor_vectors`) drawn around
  real ones. The queries and their ground truth are unchanged.
* :class:`IndexStudy`: faiss indexes trained once on that database (exact,
  IVF-Flat, PQ and IVF-PQ at several code sizes); :meth:`IndexStudy.measure`
  gives memory per vector, recall@k against exact search (on all the probe
  vectors, and on the dataset's own queries alone), time per query and mAP after
  compression, for any ``nprobe``.
* :func:`recall_disagreements`: the settings whose recall on the dataset's queries
  differs from the probes' (most probes are synthetic, and a synthetic probe is
  not where a real query is); :func:`format_recall_disagreements` says so in words.
* :func:`memory_at_scale`: what those bytes per vector mean at 10^8 and 10^9.
* :func:`milvus_search`: the same queries through a vector database (Milvus
  Lite, the optional ``[milvus]`` extra), whose client code is unchanged on a
  server or a cluster.

References:
    Jégou, Douze & Schmid, "Product quantization for nearest neighbor search",
    TPAMI 2011; Johnson, Douze & Jégou, "Billion-scale similarity search with
    GPUs", IEEE Trans. Big Data 2019 (faiss).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from cbir_lab._array import l2n
from cbir_lab.evaluation import compute_map
from cbir_lab.index import RetrievalIndex
from cbir_lab.indexes import build_faiss_index, index_bytes_per_vector, search_index
from cbir_lab.pooling import SPOC, Pooling
from cbir_lab.search import rank, recall_at_k

__all__ = [
    "INDEX_KINDS",
    "distractor_vectors",
    "ScaleDatabase",
    "scale_database",
    "IndexMeasure",
    "IndexStudy",
    "memory_at_scale",
    "format_index_measures",
    "recall_disagreements",
    "format_recall_disagreements",
    "milvus_search",
]

#: The index kinds a study trains, by display name.
INDEX_KINDS = {"exact (Flat)": "flat", "IVF-Flat": "ivf", "PQ": "pq", "IVF-PQ": "ivfpq"}


def distractor_vectors(real: np.ndarray, n: int, noise: float = 0.5, seed: int = 0) -> np.ndarray:
    r"""Synthetic L2-normalised vectors drawn around real descriptors.

    Each is :math:`\operatorname{L2}(x + \sigma\, \epsilon / \sqrt{D})` for a real
    vector x chosen at random and :math:`\epsilon \sim \mathcal{N}(0, I_D)`: as
    spread as real descriptors and clustered like them, but of no scene, so they
    are distractors that cost an index what real ones would (a uniform random
    vector would be far from everything and cost nothing).

    Args:
        real: (n_real, D) L2-normalised descriptors.
        n: how many to draw.
        noise: σ, the noise's norm relative to a unit vector.
        seed: the random seed.

    Returns:
        (n, D) float32, unit rows.
    """
    real = np.asarray(real, dtype=np.float32)
    if real.ndim != 2 or real.shape[0] == 0:
        raise ValueError(f"real must be a non-empty (n, D) array, got shape {real.shape}")
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, real.shape[0], size=int(n))
    x = real[picks] + noise * rng.standard_normal((int(n), real.shape[1])).astype(np.float32) / np.sqrt(real.shape[1])
    return l2n(x).astype(np.float32)


@dataclass(frozen=True)
class ScaleDatabase:
    """Descriptors for a search-at-scale study.

    Attributes:
        db_vecs: (n_total, d) database: the dataset's own images first, then the distractors.
        query_vecs: (n_q, d) the dataset's queries.
        gnd: the queries' ground truth (indices into the first images of ``db_vecs``).
        probe_vecs: more query vectors for recall and timing (the queries, then
            synthetic vectors held out of the database).
        description: what the database is made of, in words.
    """

    db_vecs: np.ndarray
    query_vecs: np.ndarray
    gnd: list[dict]
    probe_vecs: np.ndarray
    description: str


def scale_database(index: RetrievalIndex, n_total: int = 100_000, pooling: Pooling | str = SPOC, d: int = 128,
                   part: str = "train", n_probes: int = 500, noise: float = 0.5, seed: int = 0) -> ScaleDatabase:
    """The dataset's whitened descriptors, plus distractors up to ``n_total`` vectors.

    The whitening (learned on ``part``, never on the test set) brings the descriptors
    to ``d`` dimensions, as a large system stores them. Distractors are the whitened
    descriptors of every whitening set the features carry besides the training split
    (the large photo set, when it is on disk), then synthetic vectors drawn around the
    descriptors of the training split and those sets — images of no test scene.

    Args:
        index: the :class:`~cbir_lab.index.RetrievalIndex` of the dataset.
        n_total: the database size.
        pooling: the pooling.
        d: the whitened dimension (at most what ``part`` allows).
        part: what the whitening is learned on (``"train"``; a set used here is also a distractor).
        n_probes: query vectors for recall and timing (the real queries included).
        noise, seed: see :func:`distractor_vectors`.

    Returns:
        The :class:`ScaleDatabase`.
    """
    pooling = Pooling.parse(pooling)
    if index.gnd is None:
        raise ValueError(f"dataset {index.dataset.name!r} has no ground truth: mAP after compression needs it")
    query, db = index.whitened(pooling, d, 0.5, part)
    whitening = index.whitening(pooling, part)
    features = index.features
    other_sets = list(features.whitening_sets)
    extra = [whitening.at(d).transform(features.pooled(name, pooling)) for name in other_sets]
    n_real = len(db) + sum(len(e) for e in extra)
    if n_total < n_real:
        raise ValueError(f"n_total must be at least the {n_real} real descriptors, got {n_total}")
    # Synthetic vectors are drawn around images of no test scene (the training split and the other sets):
    # drawn around the database itself they would be near-copies of the positives.
    centres = np.concatenate([whitening.at(d).transform(features.pooled("train", pooling)), *extra])
    n_probes = max(int(n_probes), len(query))
    synthetic = distractor_vectors(centres, n_total - n_real + n_probes - len(query), noise, seed)
    probes, synthetic = synthetic[: n_probes - len(query)], synthetic[n_probes - len(query):]
    parts = [db, *extra]
    described = [f"{len(db)} {index.dataset.name} database images"]
    described += [f"{len(e):,} distractors from {features.source(name)}" for name, e in zip(other_sets, extra)]
    described.append(f"{len(synthetic):,} synthetic distractors drawn around the descriptors of images of no test "
                     f"scene ({len(centres):,}: the training split and the distractors)")
    return ScaleDatabase(
        np.ascontiguousarray(np.concatenate([*parts, synthetic]), dtype=np.float32),
        np.ascontiguousarray(query, dtype=np.float32), list(index.gnd),
        np.ascontiguousarray(np.concatenate([query, probes]), dtype=np.float32),
        f"{n_total:,} vectors of {d} dimensions ({pooling.name}, whitened): " + "; ".join(described),
    )


@dataclass(frozen=True)
class IndexMeasure:
    """One index setting, measured.

    Attributes:
        name: the index kind's display name (with its code size).
        kind: ``"flat"``, ``"ivf"``, ``"pq"`` or ``"ivfpq"``.
        m: PQ bytes per code (0 without PQ); nprobe: IVF cells scanned (0 without IVF).
        bytes_per_vector: :func:`cbir_lab.indexes.index_bytes_per_vector`.
        recall: recall@k against exact search on the probe vectors (the dataset's queries, then synthetic ones).
        ms_per_query: the search time per probe, in milliseconds (one batch).
        map: the queries' mAP from the index's top k (positives beyond k count as missed).
        query_recall: recall@k against exact search on the dataset's queries alone (the probes' first rows),
            the queries whose mAP is ``map``; ``None`` where it was not measured.
    """

    name: str
    kind: str
    m: int
    nprobe: int
    bytes_per_vector: float
    recall: float
    ms_per_query: float
    map: float
    query_recall: float | None = None


@dataclass
class IndexStudy:
    """faiss indexes trained once over one database, measured against exact search.

    Args:
        database: from :func:`scale_database`.
        k: the cut-off of recall@k, and the length of the rankings mAP is computed from.
        code_sizes: PQ bytes per vector to train (each must divide the dimension).
        nlist: IVF cells (default √n).
        seed: the training seed.

    Attributes:
        indexes: (kind, m) → the trained faiss index.
        exact: the exact top k of the probe vectors (k, n_probes).
        build_seconds: (kind, m) → training and adding time.
    """

    database: ScaleDatabase
    k: int = 100
    code_sizes: Sequence[int] = (8, 16, 32)
    nlist: int | None = None
    seed: int = 0
    indexes: dict = field(default_factory=dict, init=False)
    build_seconds: dict = field(default_factory=dict, init=False)
    exact: np.ndarray = field(default=None, init=False)
    _measured: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        db = self.database.db_vecs
        self.exact = rank(self.database.probe_vecs, db, k=self.k)
        settings = [("flat", 0), ("ivf", 0)] + [(kind, m) for kind in ("pq", "ivfpq") for m in self.code_sizes]
        for kind, m in settings:
            start = time.perf_counter()
            self.indexes[(kind, m)] = build_faiss_index(db, kind=kind, nlist=self.nlist, seed=self.seed,
                                                        **({"m": m} if m else {}))
            self.build_seconds[(kind, m)] = time.perf_counter() - start

    @property
    def n_lists(self) -> int:
        """The IVF indexes' number of cells."""
        return int(self.indexes[("ivf", 0)].nlist)

    def measure(self, kind: str, m: int = 0, nprobe: int = 16, repeats: int = 3) -> IndexMeasure:
        """Memory, recall@k, time per query (best of ``repeats``) and mAP of one setting, memoised."""
        key = (kind, m if kind in ("pq", "ivfpq") else 0, nprobe if kind in ("ivf", "ivfpq") else 0)
        if key in self._measured:
            return self._measured[key]
        if (key[0], key[1]) not in self.indexes:
            raise ValueError(f"no trained index {kind!r} with m={m}; trained: {sorted(self.indexes)}")
        index = self.indexes[(key[0], key[1])]
        if key[2]:
            index.nprobe = min(int(key[2]), index.nlist)
        probes = self.database.probe_vecs
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            ids = search_index(index, probes, self.k)
            times.append(time.perf_counter() - start)
        n_q = len(self.database.query_vecs)
        ranking = np.where(ids[:, :n_q] < 0, len(self.database.db_vecs), ids[:, :n_q])  # padding: no image
        name = {v: k for k, v in INDEX_KINDS.items()}[kind] + (f" {key[1]} B" if key[1] else "")
        # The probes' first n_q rows are the dataset's queries: their recall is the one their mAP depends on.
        measure = IndexMeasure(name, kind, key[1], key[2], index_bytes_per_vector(index),
                               recall_at_k(ids, self.exact, self.k), 1000 * min(times) / len(probes),
                               compute_map(ranking, self.database.gnd).map,
                               recall_at_k(ids[:, :n_q], self.exact[:, :n_q], self.k))
        self._measured[key] = measure
        return measure

    def table(self, nprobes: Sequence[int] = (1, 8, 32)) -> list[IndexMeasure]:
        """Every trained index: exact once, IVF at each ``nprobe``, each PQ size, IVF-PQ at each size and ``nprobe``."""
        rows = [self.measure("flat")]
        rows += [self.measure("ivf", nprobe=p) for p in nprobes]
        rows += [self.measure("pq", m) for m in self.code_sizes]
        rows += [self.measure("ivfpq", m, p) for m in self.code_sizes for p in nprobes]
        return rows


def memory_at_scale(bytes_per_vector: float, n_vectors: float) -> float:
    """GiB to hold ``n_vectors`` codes of ``bytes_per_vector`` each (the quantizers' fixed cost left out).

    Examples:
        >>> round(memory_at_scale(16 + 8, 1e9), 1)  # IVF-PQ, 16-byte codes, a billion vectors
        22.4
    """
    return float(bytes_per_vector) * float(n_vectors) / 2**30


def format_index_measures(measures: Sequence[IndexMeasure], at: Sequence[float] = (1e8, 1e9)) -> str:
    """A text table: index, nprobe, bytes per vector, recall@k on the probes ("recall") and, where measured, on
    the dataset's queries alone ("on queries"), ms per query, mAP, and GiB at each of ``at``."""
    with_queries = any(r.query_recall is not None for r in measures)
    header = (f"{'index':<14} {'nprobe':>6} {'B/vector':>8} {'recall':>7} "
              + (f"{'on queries':>10} " if with_queries else "")
              + f"{'ms/query':>8} {'mAP':>6} "
              + " ".join(f"{f'GiB @{n:.0e}':>10}" for n in at))
    lines = [header]
    for r in measures:
        query_recall = "" if not with_queries else (
            f"{'-':>10} " if r.query_recall is None else f"{r.query_recall:>10.3f} ")
        lines.append(f"{r.name:<14} {r.nprobe or '-':>6} {r.bytes_per_vector:>8.0f} {r.recall:>7.3f} "
                     f"{query_recall}{r.ms_per_query:>8.3f} {r.map:>6.3f} "
                     + " ".join(f"{memory_at_scale(r.bytes_per_vector, n):>10,.0f}" for n in at))
    return "\n".join(lines)


def recall_disagreements(measures: Sequence[IndexMeasure], tolerance: float = 0.05) -> list[IndexMeasure]:
    """The settings whose recall@k on the dataset's queries differs from the probes' by more than ``tolerance``.

    The probes' recall averages over every probe vector, most of them synthetic; the
    queries' mAP depends only on the queries' own recall. Where the two differ, the
    probes' figure misreports what the index does to the queries.

    Args:
        measures: measured settings (:meth:`IndexStudy.table`); those without a query recall are skipped.
        tolerance: the largest difference, in recall, still read as agreement.

    Returns:
        The disagreeing settings, largest difference first (ties in the given order).

    Examples:
        >>> rows = [IndexMeasure("IVF-Flat", "ivf", 0, 1, 520, 0.85, 0.01, 0.25, 0.60),
        ...         IndexMeasure("IVF-Flat", "ivf", 0, 8, 520, 0.95, 0.04, 0.56, 0.93)]
        >>> [r.nprobe for r in recall_disagreements(rows)]  # |0.85 - 0.60| = 0.25 > 0.05; |0.95 - 0.93| = 0.02
        [1]
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a non-negative recall difference, got {tolerance!r}")
    differing = [r for r in measures if r.query_recall is not None and abs(r.recall - r.query_recall) > tolerance]
    return sorted(differing, key=lambda r: -abs(r.recall - r.query_recall))


def format_recall_disagreements(measures: Sequence[IndexMeasure], n_probes: int, n_queries: int,
                                tolerance: float = 0.05) -> str:
    """One line per setting of :func:`recall_disagreements`: both recalls, and which way the probes mislead.

    Args:
        measures: measured settings.
        n_probes: how many probe vectors the ``recall`` column averages over.
        n_queries: how many of them are the dataset's queries (``query_recall``).
        tolerance: see :func:`recall_disagreements`.

    Returns:
        The lines, or one line saying that every setting agrees within ``tolerance``.
    """
    differing = recall_disagreements(measures, tolerance)
    if not differing:
        return f"recall on the {n_queries} queries is within {tolerance:.2f} of the {n_probes} probes' in every setting"
    lines = [f"recall on the {n_queries} queries differs from the {n_probes} probes' by more than {tolerance:.2f} in "
             f"{len(differing)} of {sum(r.query_recall is not None for r in measures)} settings:"]
    for r in differing:
        setting = r.name + (f", nprobe {r.nprobe}" if r.nprobe else "")
        way = "overstates" if r.recall > r.query_recall else "understates"
        lines.append(f"  {setting}: probes {r.recall:.3f}, queries {r.query_recall:.3f}: the probes' figure {way} "
                     f"the queries' recall by {abs(r.recall - r.query_recall):.3f}")
    return "\n".join(lines)


def milvus_search(db_vecs: np.ndarray, query_vecs: np.ndarray, k: int, uri: str | None = None,
                  collection: str = "cbir_lab", index_type: str = "FLAT") -> np.ndarray:
    """Index ``db_vecs`` in a Milvus collection and return each query's top k, in :func:`cbir_lab.search.rank`'s layout.

    With ``uri`` a local file name (``"cbir.db"``), pymilvus runs Milvus Lite in the
    process; with ``"http://host:19530"`` the very same code talks to a Milvus
    server or cluster, which shards and replicates the collection and offers
    IVF-PQ and HNSW indexes server-side. Milvus Lite offers only ``FLAT`` and
    ``IVF_FLAT``: it shows the API and the deployment path, not speed.

    Args:
        db_vecs: (n_db, D) L2-normalised.
        query_vecs: (n_q, D).
        k: results per query.
        uri: where Milvus is: a local ``.db`` file for Milvus Lite, a server's address, or
            ``None`` for a Milvus Lite file in a temporary folder, removed afterwards.
        collection: the collection's name; it must not exist yet (nothing there is overwritten).
        index_type: the server-side index (``"FLAT"``: exact, inner product).

    Returns:
        int64 database indices, shape (k, n_q), best first.

    Raises:
        ImportError: pymilvus (with milvus-lite) is not installed: ``pip install "cbir-lab[milvus]"``.
    """
    try:
        from pymilvus import MilvusClient
    except ImportError as err:
        raise ImportError('the vector-database section needs the optional extra: pip install "cbir-lab[milvus]"') from err
    import shutil
    import tempfile

    db = np.ascontiguousarray(db_vecs, dtype=np.float32)
    queries = np.ascontiguousarray(query_vecs, dtype=np.float32)
    folder = tempfile.mkdtemp(prefix="cbir-lab-milvus-") if uri is None else None
    client = MilvusClient(uri or f"{folder}/cbir_lab.db")
    try:
        if client.has_collection(collection):
            raise ValueError(f"Milvus at {uri} already has a collection {collection!r}; choose another name")
        client.create_collection(collection, dimension=db.shape[1], metric_type="IP", index_type=index_type)
        for start in range(0, len(db), 10_000):
            block = db[start : start + 10_000]
            client.insert(collection, [{"id": start + i, "vector": v} for i, v in enumerate(block.tolist())])
        hits = client.search(collection, data=queries.tolist(), limit=int(k))
    finally:
        client.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return np.array([[hit["id"] for hit in row] for row in hits], dtype=np.int64).T
