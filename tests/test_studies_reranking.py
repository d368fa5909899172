"""Re-ranking tables (cbir_lab.studies.reranking): the search module's rankings, scored."""

from __future__ import annotations

import pytest

from cbir_lab.evaluation import compute_map
from cbir_lab.index import RetrievalIndex
from cbir_lab.rerank import database_augmentation, diffusion_rank
from cbir_lab.search import rank
from cbir_lab.studies.reranking import diffusion_recoveries, reranking_table


def test_reranking_table_rows_are_the_search_modules_rankings_scored(grouped_features):
    index = RetrievalIndex(grouped_features)
    rows = reranking_table(index, "SPoC", dba_k=2, graph_k=3, alpha=0.5, k_query=2, paper_k=50)
    assert [r.method for r in rows] == ["SPoC", "SPoC + α-QE", "SPoC + DBA (k=2)", "SPoC + DBA + α-QE",
                                        "SPoC + diffusion (k=3, α=0.5)", "SPoC + diffusion (k=8, α=0.99)"]
    q, db = index.descriptors("SPoC")
    assert rows[0].scores["mAP"] == pytest.approx(index.setting("SPoC").mean_ap)
    assert rows[1].scores["mAP"] == pytest.approx(index.setting("SPoC", query_expansion=True).mean_ap)
    dba = compute_map(rank(q, database_augmentation(db, k=2, alpha=3.0)), index.gnd)
    assert rows[2].scores["mAP"] == pytest.approx(dba.map)
    diffused = compute_map(diffusion_rank(q, db, k=3, alpha=0.5, k_query=2), index.gnd)
    assert rows[4].scores["mAP"] == pytest.approx(diffused.map) and rows[4].aps == pytest.approx(diffused.aps)
    without_qe = reranking_table(index, "SPoC", dba_k=2, graph_k=3, alpha=0.5, k_query=2, paper_k=50, qe_alone=False)
    assert [r.method for r in without_qe] == [r.method for r in rows if r.method != "SPoC + α-QE"]
    assert [r.scores for r in without_qe] == [r.scores for r in rows if r.method != "SPoC + α-QE"]
    recovered = diffusion_recoveries(index, "SPoC", top=3, graph_k=3, alpha=0.5, k_query=2)
    assert len(recovered) == index.dataset.n_queries
    for query, images in enumerate(recovered):
        assert set(images.tolist()) <= set(index.gnd[query]["ok"])

