"""Search at scale: distractors, the index study against exact search, memory, and Milvus Lite."""

from __future__ import annotations

import numpy as np
import pytest

from cbir_lab.index import RetrievalIndex
from cbir_lab.scale import (IndexMeasure, IndexStudy, distractor_vectors, format_index_measures, format_recall_disagreements,
                            memory_at_scale, milvus_search, recall_disagreements, scale_database)
from cbir_lab.search import rank, recall_at_k

pytest.importorskip("faiss")


def test_distractors_are_unit_vectors_near_their_centres():
    centres = np.eye(4, dtype=np.float32)
    x = distractor_vectors(centres, 2000, noise=0.3, seed=1)
    assert x.shape == (2000, 4) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    nearest = (x @ centres.T).max(axis=1)
    assert nearest.min() > 0.5  # σ = 0.3 of a unit vector: never far from a centre
    assert np.array_equal(x, distractor_vectors(centres, 2000, noise=0.3, seed=1))
    with pytest.raises(ValueError, match="non-empty"):
        distractor_vectors(np.zeros((0, 4)), 3)


@pytest.fixture(scope="module")
def small_index(make_grouped_features):
    """3 groups × 4 database maps and a query each, 30 training maps; maps (16, 2, 2) with a group signal."""
    return RetrievalIndex(make_grouped_features(3, 4, 16, (2, 2), 2.0, 30))


def test_scale_database_keeps_the_test_images_first_and_the_ground_truth(small_index):
    db = scale_database(small_index, n_total=600, d=8, n_probes=40)
    q, original = small_index.whitened("SPoC", 8)
    assert db.db_vecs.shape == (600, 8) and np.allclose(db.db_vecs[:12], original)
    assert np.allclose(db.query_vecs, q) and db.gnd == small_index.gnd
    assert db.probe_vecs.shape == (40, 8) and np.allclose(db.probe_vecs[:3], q)
    assert "588 synthetic distractors" in db.description
    with pytest.raises(ValueError, match="at least the 12 real descriptors"):
        scale_database(small_index, n_total=5, d=8)


def test_index_study_measures_against_exact_search(small_index):
    db = scale_database(small_index, n_total=2000, d=8, n_probes=50)
    study = IndexStudy(db, k=10, code_sizes=(2, 4), nlist=8)
    exact = study.measure("flat")
    assert exact.recall == 1.0 and exact.bytes_per_vector == 32 and exact.nprobe == 0
    expected_map = __import__("cbir_lab.evaluation", fromlist=["x"]).compute_map(rank(db.query_vecs, db.db_vecs, k=10),
                                                                               db.gnd).map
    assert exact.map == pytest.approx(expected_map)
    all_cells = study.measure("ivf", nprobe=8)
    assert all_cells.recall == pytest.approx(1.0)  # every cell scanned: exact
    assert study.measure("ivf", nprobe=1).recall <= all_cells.recall
    pq = study.measure("ivfpq", m=2, nprobe=8)
    assert pq.bytes_per_vector == 2 + 8 and 0 <= pq.recall <= 1
    assert study.measure("ivfpq", m=2, nprobe=8) is pq  # memoised
    table = study.table(nprobes=(1, 8))
    assert [r.name for r in table][:3] == ["exact (Flat)", "IVF-Flat", "IVF-Flat"]
    assert "GiB @1e+09" in format_index_measures(table)
    with pytest.raises(ValueError, match="no trained index"):
        study.measure("pq", m=8)


def test_memory_at_scale():
    assert memory_at_scale(512, 2**30) == 512.0
    assert memory_at_scale(24, 1e9) == pytest.approx(22.35, abs=0.01)


def test_milvus_lite_returns_the_exact_top_k():
    pytest.importorskip("pymilvus")
    rng = np.random.default_rng(0)
    db = rng.standard_normal((300, 8)).astype(np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    q = db[:5] + 0.1 * rng.standard_normal((5, 8)).astype(np.float32)
    assert np.array_equal(milvus_search(db, q, k=7), rank(q, db, k=7))


def test_the_queries_recall_is_the_probes_first_rows_recall(small_index):
    db = scale_database(small_index, n_total=2000, d=8, n_probes=50)
    study = IndexStudy(db, k=10, code_sizes=(2,), nlist=8)
    assert study.measure("flat").query_recall == 1.0
    one_cell = study.measure("ivf", nprobe=1)
    index = study.indexes[("ivf", 0)]
    index.nprobe = 1
    ids = __import__("cbir_lab.indexes", fromlist=["x"]).search_index(index, db.query_vecs, 10)
    exact = rank(db.query_vecs, db.db_vecs, k=10)
    assert one_cell.query_recall == pytest.approx(recall_at_k(ids, exact, 10))
    assert "on queries" in format_index_measures([one_cell])


def _measure(nprobe: int, recall: float, query_recall: float | None) -> IndexMeasure:
    return IndexMeasure("IVF-Flat", "ivf", 0, nprobe, 520, recall, 0.01, 0.5, query_recall)


def test_recall_disagreements_by_hand():
    rows = [_measure(1, 0.85, 0.60),   # probes overstate by 0.25
            _measure(8, 0.95, 0.93),   # 0.02: agreement
            _measure(16, 0.90, 0.99),  # probes understate by 0.09
            _measure(32, 0.99, None)]  # not measured: skipped
    assert [r.nprobe for r in recall_disagreements(rows)] == [1, 16]
    assert [r.nprobe for r in recall_disagreements(rows, tolerance=0.1)] == [1]
    assert recall_disagreements(rows, tolerance=0.3) == []
    text = format_recall_disagreements(rows, n_probes=500, n_queries=25)
    assert text.splitlines() == [
        "recall on the 25 queries differs from the 500 probes' by more than 0.05 in 2 of 3 settings:",
        "  IVF-Flat, nprobe 1: probes 0.850, queries 0.600: the probes' figure overstates the queries' recall by 0.250",
        "  IVF-Flat, nprobe 16: probes 0.900, queries 0.990: the probes' figure understates the queries' recall by 0.090"]
    assert format_recall_disagreements(rows[1:2], 500, 25) == (
        "recall on the 25 queries is within 0.05 of the 500 probes' in every setting")
    with pytest.raises(ValueError, match="tolerance"):
        recall_disagreements(rows, tolerance=-0.1)


def test_the_table_shows_the_queries_recall_only_when_measured():
    measured, unmeasured = _measure(1, 0.85, 0.6), _measure(1, 0.85, None)
    header, row = format_index_measures([measured]).splitlines()
    assert header.split()[3:6] == ["recall", "on", "queries"] and "0.850      0.600" in row
    assert "on queries" not in format_index_measures([unmeasured])
    assert format_index_measures([measured, unmeasured]).splitlines()[2].split()[4] == "-"
