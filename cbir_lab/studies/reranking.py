"""Re-ranking (lesson 8): α-QE, database-side augmentation and diffusion, scored side by side.

* :func:`reranking_table`: one pooling's ranking, then re-ranked five ways, as table rows
  (four without α-QE alone, which lesson 5 scores: lesson 8 builds on it, it does not repeat it).
* :func:`diffusion_recoveries`: the positives diffusion brings into a query's top
  results that α-QE leaves out.
"""

from __future__ import annotations

import numpy as np

from cbir_lab.evaluation import score
from cbir_lab.index import RetrievalIndex
from cbir_lab.pooling import SPOC, Pooling
from cbir_lab.rerank import alpha_query_expansion, database_augmentation, diffusion_rank, reached_only_by_diffusion
from cbir_lab.search import rank
from cbir_lab.studies.methods import MethodScore, scored_row

__all__ = ["reranking_table", "diffusion_recoveries"]


def _ranked_row(index: RetrievalIndex, name: str, dim: int, ranks: np.ndarray) -> MethodScore:
    """A ranking of the index's queries as a table row, scored under the dataset's protocol."""
    index.scored_gnd()
    result = score(ranks, index.dataset)
    return scored_row(index.dataset, name, dim, result.scores, result.aps)


def reranking_table(
    index: RetrievalIndex,
    pooling: Pooling | str = SPOC,
    dba_k: int = 3,
    graph_k: int = 5,
    alpha: float = 0.8,
    k_query: int = 5,
    paper_k: int = 50,
    paper_alpha: float = 0.99,
    qe_alone: bool = True,
) -> list[MethodScore]:
    """One pooling's ranking, then re-ranked five ways, each scored under the dataset's protocol.

    Rows: the plain ranking; α-QE (the index's ``qe_k``, ``qe_alpha``; left out when ``qe_alone``
    is false, for a lesson that refers back to where α-QE was scored); database-side
    augmentation (DBA: each database vector replaced by its α-weighted mean with its
    ``dba_k`` nearest neighbours); DBA then α-QE; diffusion on the database's
    reciprocal k-NN graph (:func:`cbir_lab.rerank.diffusion_rank`) with ``graph_k`` and
    ``alpha``; and diffusion with the paper's ``paper_k`` (capped at the database) and ``paper_alpha``.

    Returns:
        :class:`~cbir_lab.studies.methods.MethodScore` rows, named ``"<pooling> + …"``, with per-query APs for
        :func:`~cbir_lab.studies.methods.compare_methods` (reference: the first row).
    """
    pooling = Pooling.parse(pooling)
    q, db = index.descriptors(pooling)
    dim = db.shape[1]
    plain = rank(q, db)
    augmented = database_augmentation(db, k=dba_k, alpha=index.qe_alpha)
    dba_ranks = rank(q, augmented)
    dba_qe = alpha_query_expansion(q, augmented, k=index.qe_k, alpha=index.qe_alpha, ranks=dba_ranks)
    paper_k = min(paper_k, len(db) - 1)
    rows = [
        _ranked_row(index, pooling.name, dim, plain),
        _ranked_row(index, f"{pooling.name} + α-QE", dim, rank(alpha_query_expansion(
            q, db, k=index.qe_k, alpha=index.qe_alpha, ranks=plain), db)) if qe_alone else None,
        _ranked_row(index, f"{pooling.name} + DBA (k={dba_k})", dim, dba_ranks),
        _ranked_row(index, f"{pooling.name} + DBA + α-QE", dim, rank(dba_qe, augmented)),
        _ranked_row(index, f"{pooling.name} + diffusion (k={graph_k}, α={alpha})", dim,
                    diffusion_rank(q, db, k=graph_k, alpha=alpha, k_query=k_query)),
        _ranked_row(index, f"{pooling.name} + diffusion (k={paper_k}, α={paper_alpha})", dim,
                    diffusion_rank(q, db, k=paper_k, alpha=paper_alpha, k_query=k_query)),
    ]
    return [row for row in rows if row is not None]


def diffusion_recoveries(index: RetrievalIndex, pooling: Pooling | str = SPOC, top: int = 10, graph_k: int = 5,
                         alpha: float = 0.8, k_query: int = 5) -> list[np.ndarray]:
    """Per query, the positives diffusion brings into its top ``top`` that α-QE leaves out.

    The images "reachable only through a chain of neighbours"
    (:func:`cbir_lab.rerank.reached_only_by_diffusion`), for the parameters of
    :func:`reranking_table`'s diffusion row.
    """
    pooling = Pooling.parse(pooling)
    q, db = index.descriptors(pooling)
    expanded = rank(alpha_query_expansion(q, db, k=index.qe_k, alpha=index.qe_alpha), db)
    diffused = diffusion_rank(q, db, k=graph_k, alpha=alpha, k_query=k_query)
    return reached_only_by_diffusion(expanded, diffused, [g["ok"] for g in index.scored_gnd()], top=top)
