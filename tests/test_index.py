"""The retrieval core (cbir_lab.index): rankings, APs, settings, memoisation and whitening sweeps,
checked against hand-worked values and independent computations (the studies over it: tests/test_studies_*.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cbir_lab.evaluation import compute_map, evaluate
from cbir_lab.index import RetrievalIndex, headline_score, result_status, retrieve
from cbir_lab.pooling import Pooling
from cbir_lab.search import rank
from cbir_lab.whitening import PCAWhitening
from tests.fixtures_features import make_features, score_with_pca, unit_maps


# A query (1, 0) against three database vectors: cosine db0 = 0, db1 = 1, db2 = 0.6.
QUERY = [[1.0, 0.0]]
DB = [[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]]


def one_query(gnd=None, db=DB, protocol="standard") -> RetrievalIndex:
    return RetrievalIndex(make_features(unit_maps(QUERY), unit_maps(db), gnd=gnd, protocol=protocol))


# --- one query's ranking --------------------------------------------------------------------------

def test_retrieve_orders_by_similarity_and_flags_each_result():
    result = retrieve(one_query([{"ok": [2], "junk": [1]}]), 0, "MAC", k=3)
    assert result.indices.tolist() == [1, 2, 0]
    assert result.statuses == ("junk", "correct", "wrong")
    assert result.scores.tolist() == pytest.approx([1.0, 0.6, 0.0])
    assert result.n_correct == 1 and result.n_positives == 1


def test_retrieve_ap_ignores_junk():
    # The only positive (db2) is 2nd, after a junk image: with junk removed it is 1st, so AP = 1.
    assert retrieve(one_query([{"ok": [2], "junk": [1]}]), 0, "MAC").ap == pytest.approx(1.0)


def test_retrieve_ap_uses_the_full_ranking_not_only_the_shown_results():
    # db0 is last (position 2). Trapezoid AP: p0 = 0/2, p1 = 1/3 → (0 + 1/3) / 2 = 1/6, although k = 1.
    result = retrieve(one_query([{"ok": [0], "junk": []}]), 0, "MAC", k=1)
    assert result.indices.tolist() == [1] and result.statuses == ("wrong",)
    assert result.ap == pytest.approx(1 / 6)


def test_retrieve_counts_easy_and_hard_as_correct_on_revisited_ground_truth():
    result = retrieve(one_query([{"easy": [1], "hard": [0], "junk": [2]}], protocol="revisited"), 0, "MAC", k=3)
    assert result.statuses == ("correct", "junk", "correct")
    assert result.n_positives == 2


def test_retrieve_breaks_ties_by_the_smaller_database_index():
    assert retrieve(one_query(db=[[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]), 0, "MAC", k=3).indices.tolist() == [1, 2, 0]


def test_retrieve_without_ground_truth_is_unknown_and_has_no_ap():
    result = retrieve(one_query(), 0, "MAC", k=2)
    assert result.statuses == ("unknown", "unknown")
    assert result.ap is None and result.n_positives is None and result.recall is None


def test_a_setting_without_ground_truth_has_rankings_and_no_scores():
    from cbir_lab.evaluation import CannotScoreError

    index = one_query()
    entry = index.setting("MAC")
    assert entry.ranks[:, 0].tolist() == [1, 2, 0]
    assert entry.aps is None and entry.mean_ap is None and entry.scores is None
    with pytest.raises(CannotScoreError, match="no ground truth"):
        index.scores("MAC")


def test_retrieve_k_larger_than_the_database_shows_everything():
    assert len(retrieve(one_query(), 0, "MAC", k=50).indices) == 3


@pytest.mark.parametrize("query, k, message", [(1, 3, r"query must be an integer in 0\.\.0"), (-1, 3, "query"),
                                               (0, 0, "k must be"), (0.5, 3, "query")])
def test_retrieve_rejects_bad_arguments(query, k, message):
    with pytest.raises(ValueError, match=message):
        retrieve(one_query(), query, "MAC", k=k)


def test_retrieve_on_grouped_features(grouped_features):
    index = RetrievalIndex(grouped_features)
    result = retrieve(index, 2, "SPoC", k=4)
    assert set(result.indices[:3].tolist()) == {6, 7, 8}  # the query's own group first
    status = dict(zip(result.indices.tolist(), result.statuses))
    assert status[8] == "junk" and status[6] == "correct" and result.statuses[3] == "wrong"
    assert np.all(np.diff(result.scores) <= 1e-7)
    assert result.ap == pytest.approx(1.0) and result.recall[-1] == pytest.approx(1.0)
    assert result.setting_label == "SPoC"
    with pytest.raises(ValueError, match="unknown pooling"):
        retrieve(index, 0, "VLAD")


def test_result_status():
    gnd = {"ok": [1, 2], "junk": [3]}
    assert [result_status(i, gnd) for i in (1, 3, 0)] == ["correct", "junk", "wrong"]
    assert result_status(1, None) == "unknown"


# --- the index: settings, memoisation, typical query ---------------------------------------------

def test_a_setting_is_computed_once_and_scored_under_the_dataset_protocol(grouped_features):
    index = RetrievalIndex(grouped_features)
    entry = index.setting("GeM", whiten=True)
    assert index.setting(Pooling("gem"), True) is entry  # a name and its Pooling share the entry
    np.testing.assert_allclose(entry.similarities, entry.query_vecs @ entry.db_vecs.T, atol=1e-6)
    np.testing.assert_array_equal(entry.ranks, rank(entry.query_vecs, entry.db_vecs))
    assert entry.mean_ap == pytest.approx(compute_map(entry.ranks, grouped_features.dataset.gnd).map)
    assert index.scores("GeM", True) == evaluate(entry.ranks, grouped_features.dataset.gnd, "standard")
    assert entry.scores is index.scores("GeM", True) and entry.dim == entry.db_vecs.shape[1]
    assert (entry.pooling, entry.whitened, entry.query_expansion) == (Pooling.parse("GeM"), True, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.aps = None  # made complete, then never changed
    # the whitening the descriptors were made with is the one the index hands out
    assert index.descriptors("GeM", True)[0] == pytest.approx(
        index.whitening("GeM").transform(grouped_features.pooled("query", "GeM")))


def test_retrieving_other_queries_reuses_the_setting(grouped_features):
    index = RetrievalIndex(grouped_features)
    entry = index.setting("GeM", True)
    for q in range(3):
        retrieve(index, q, "GeM", True, k=2)
    assert index.setting("GeM", True) is entry


def test_query_expansion_changes_the_query_vector(grouped_features):
    index = RetrievalIndex(grouped_features, qe_k=2)
    plain = index.setting("MAC").query_vecs
    expanded = index.setting("MAC", query_expansion=True).query_vecs
    assert not np.allclose(plain, expanded)
    np.testing.assert_allclose(np.linalg.norm(expanded, axis=1), 1.0, atol=1e-5)


def test_typical_query_is_the_median_ap_query():
    # MAC: query (1, 0.1) ranks db1, db2, db0; query (0.1, 1) ranks db0, db2, db1
    queries = unit_maps([[1.0, 0.1], [1.0, 0.1], [0.1, 1.0]])
    db = unit_maps([[0.1, 1.0], [1.0, 0.0], [0.9, 0.2]])
    gnd = [{"ok": [1], "junk": []},   # db1 first: AP 1
           {"ok": [0], "junk": []},   # db0 third: AP (0 + 1/3) / 2 = 1/6
           {"ok": [2], "junk": []}]   # db2 second: AP (0 + 1/2) / 2 = 1/4, the median
    assert RetrievalIndex(make_features(queries, db, gnd=gnd)).typical_query("MAC") == 2
    assert RetrievalIndex(make_features(queries, db)).typical_query("MAC") == 0  # no ground truth: the first


def test_precompute_computes_every_setting(grouped_features):
    index = RetrievalIndex(grouped_features)
    index.precompute()
    assert len(index._settings) == 4 * 2 * 2  # poolings × whitening × α-QE


def test_qe_k_is_checked(grouped_features):
    with pytest.raises(ValueError, match="qe_k"):
        RetrievalIndex(grouped_features, qe_k=0)


# --- the headline ----------------------------------------------------------------------------------

def test_headline_score():
    assert headline_score({"mAP": 0.5, "mP@1": 1.0}) == 0.5
    assert headline_score({"easy": 0.9, "medium": 0.6, "hard": 0.3}) == 0.6


# --- the whitening sweeps (lesson 3's fast path) ------------------------------------------------------

@pytest.mark.parametrize("pooling", ["SPoC", "R-MAC"])
def test_whitened_sweep_equals_a_whitening_fitted_at_that_d(whitening_features, pooling):
    index = RetrievalIndex(whitening_features)
    assert index.max_dim("SPoC") == 24  # D = 24 < n - 1 = 39
    for power in (0.0, 0.25, 0.5):
        score = index.whitened_score(pooling, 10, power)
        if pooling == "SPoC":
            assert score == pytest.approx(score_with_pca(whitening_features, pooling, "train", 10, power))
        else:  # R-MAC's regional whitening: build it here directly
            regions = np.concatenate(whitening_features.regional("train"))
            pca = PCAWhitening(n_components=10, power=power).fit(regions)
            q, db = (pca.transform_regions(whitening_features.regional(p)) for p in ("query", "db"))
            np.testing.assert_allclose(index.whitened(pooling, 10, power)[1], db, atol=1e-5)
    dims = [4, 8]
    assert not index.curve_is_ready("SPoC", dims, 0.5, "db")
    index.whitening_curve("SPoC", dims, 0.5, "db")
    assert index.curve_is_ready("SPoC", dims, 0.5, "db") and not index.curve_is_ready("SPoC", [4, 9], 0.5, "db")


def test_sweeps_prepared_side_by_side_score_as_one_after_the_other(whitening_features):
    alone, side_by_side = RetrievalIndex(whitening_features), RetrievalIndex(whitening_features)
    side_by_side.prepare_sweeps(["SPoC", "MAC", "GEM", "R-MAC"], "train")  # R-MAC is left to its own sweep
    assert side_by_side.max_dim("MAC") == alone.max_dim("MAC") == 24
    side_by_side.prepare_sweeps(["SPoC", "MAC", "GeM"], "train", [8, 16], 0.25)
    for pooling in ("SPoC", "MAC", "GeM"):
        assert side_by_side.curve_is_ready(pooling, [8, 16], 0.25, "train")
        np.testing.assert_array_equal(side_by_side.whitening_curve(pooling, [8, 16], 0.25),
                                      alone.whitening_curve(pooling, [8, 16], 0.25))
        assert side_by_side.whitened_score(pooling, 8, 0.25) == pytest.approx(
            score_with_pca(whitening_features, pooling, "train", 8, 0.25))
    assert not side_by_side.curve_is_ready("R-MAC", [8, 16], 0.25, "train")


def test_a_sweep_without_ground_truth_says_so(whitening_features):
    bare = make_features(whitening_features.query_maps, whitening_features.db_maps, whitening_features.train_maps)
    with pytest.raises(ValueError, match="no ground truth"):
        RetrievalIndex(bare).whitened_score("SPoC", 4)
