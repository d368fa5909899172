"""The retrieval core (cbir_lab.index): rankings, APs, tables, explanations and whitening sweeps,
checked against hand-worked values and independent computations."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cbir_lab.evaluation import compute_map, evaluate, precision_recall
from cbir_lab.index import (
    MethodScore,
    RetrievalIndex,
    compare_images,
    compare_methods,
    compare_settings,
    comparison_table,
    contribution_map,
    depth_comparison,
    score_descriptors,
    dimension_grid,
    explain_match,
    headline_score,
    pair_similarities,
    precision_recall_by_method,
    result_status,
    retrieve,
    train_vs_test_curves,
    whitening_gains,
)
from cbir_lab.pooling import Pooling, regional_vectors
from cbir_lab.search import rank
from cbir_lab.whitening import PCAWhitening, l2n
from tests.fixtures_features import make_features


def unit_maps(rows) -> list[torch.Tensor]:
    """(D, 1, 1) maps whose MAC / SPoC descriptor is the row itself (then L2-normalised)."""
    return [torch.tensor(r, dtype=torch.float32).reshape(-1, 1, 1) for r in rows]


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
    np.testing.assert_allclose(entry["similarities"], entry["query_vecs"] @ entry["db_vecs"].T, atol=1e-6)
    np.testing.assert_array_equal(entry["ranks"], rank(entry["query_vecs"], entry["db_vecs"]))
    assert entry["map"] == pytest.approx(compute_map(entry["ranks"], grouped_features.dataset.gnd).map)
    assert index.scores("GeM", True) == evaluate(entry["ranks"], grouped_features.dataset.gnd, "standard")
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
    plain = index.setting("MAC")["query_vecs"]
    expanded = index.setting("MAC", query_expansion=True)["query_vecs"]
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


# --- tables and intervals ---------------------------------------------------------------------------

def test_comparison_table_rows_and_a_separable_set_scores_perfectly():
    # queries fire on channels 0 and 1; db images 0, 1 fire on 0, images 2, 3 on 1
    def one_hot(channel, value=1.0):
        m = torch.zeros(4, 3, 3)
        m[channel, 1, 1] = value
        return m

    rng = torch.Generator().manual_seed(0)
    features = make_features([one_hot(0), one_hot(1)], [one_hot(0), one_hot(0, 2.0), one_hot(1), one_hot(1, 3.0)],
                             [torch.rand(4, 3, 3, generator=rng) for _ in range(8)],
                             [{"ok": [0, 1], "junk": []}, {"ok": [2, 3], "junk": []}])
    rows = comparison_table(RetrievalIndex(features), whitening=(False,), query_expansion=(False,))
    assert [r.method for r in rows] == ["SPoC", "MAC", "R-MAC", "GeM"]
    assert all(r.scores["mAP"] == pytest.approx(1.0) for r in rows)
    assert all(r.aps.tolist() == [1.0, 1.0] for r in rows)
    rows = comparison_table(RetrievalIndex(features), ["SPoC"], (False, True), (False, True))
    assert [r.setting_label for r in rows] == ["SPoC", "SPoC, α-QE", "SPoC, whitened", "SPoC, whitened, α-QE"]
    assert rows[2].dim <= 7  # whitened on 8 training vectors: at most 7 components


def test_compare_methods_gives_paired_intervals():
    rows = [MethodScore("A", False, False, 4, {"mAP": 0.5}, np.array([1.0, 0.0])),
            MethodScore("B", False, False, 4, {"mAP": 1.0}, np.array([1.0, 1.0]))]
    intervals = compare_methods(rows, reference="A")
    assert list(intervals) == ["B"]
    # differences per query: 0 and 1, so every resample's mean lies in {0, 0.5, 1}
    assert intervals["B"].estimate == pytest.approx(0.5)
    assert {intervals["B"].low, intervals["B"].high} <= {0.0, 0.5, 1.0}
    with pytest.raises(ValueError, match="per-query APs"):
        compare_methods([rows[0], MethodScore("C", False, False, 4, {"mAP": 1.0})])


def test_compare_settings_pairs_each_row_with_its_counterpart():
    def row(method, whitened, qe, aps):
        return MethodScore(method, whitened, qe, 4, {"mAP": float(np.mean(aps))}, np.array(aps, dtype=float))

    rows = [row("A", False, False, [0.5, 0.5]), row("A", True, False, [1.0, 0.5]),
            row("A", False, True, [0.5, 0.0]), row("A", True, True, [0.5, 0.5]),
            row("B", True, False, [1.0, 1.0])]  # B has no unwhitened row: left out
    whitened = compare_settings(rows, "whitened")
    assert list(whitened) == ["A, whitened", "A, whitened, α-QE"]
    # per-query differences (0.5, 0) and (0, 0.5): both mean 0.25
    assert whitened["A, whitened"].estimate == pytest.approx(0.25)
    assert whitened["A, whitened, α-QE"].estimate == pytest.approx(0.25)
    qe = compare_settings(rows, "query_expansion")
    assert list(qe) == ["A, α-QE", "A, whitened, α-QE"]
    assert qe["A, α-QE"].estimate == pytest.approx(-0.25)  # (0, -0.5)
    assert qe["A, whitened, α-QE"].estimate == pytest.approx(-0.25)  # (-0.5, 0)
    with pytest.raises(ValueError, match="change must be"):
        compare_settings(rows, "power")
    with pytest.raises(ValueError, match="per-query APs"):
        compare_settings([MethodScore("C", False, False, 4, {"mAP": 1.0})], "whitened")


def test_headline_score():
    assert headline_score({"mAP": 0.5, "mP@1": 1.0}) == 0.5
    assert headline_score({"easy": 0.9, "medium": 0.6, "hard": 0.3}) == 0.6


def test_precision_recall_by_method(grouped_features):
    index = RetrievalIndex(grouped_features)
    curves, aps = precision_recall_by_method(index, 2, ("SPoC", "MAC"), whiten=True)
    assert list(curves) == list(aps) == ["SPoC", "MAC"]
    for method in ("SPoC", "MAC"):
        ranks = index.setting(method, whiten=True)["ranks"]
        recall, precision = precision_recall(ranks[:, 2], [6, 7], [8])
        np.testing.assert_array_equal(curves[method][0], recall)
        np.testing.assert_array_equal(curves[method][1], precision)
        assert aps[method] == pytest.approx(compute_map(ranks, grouped_features.dataset.gnd).aps[2])
    dataset = grouped_features.dataset
    lonely = dataclasses.replace(grouped_features, dataset=dataclasses.replace(
        dataset, gnd=dataset.gnd[:2] + ({"ok": [], "junk": []},)), _pooled={})
    with pytest.raises(ValueError, match="query 2 has no positives"):
        precision_recall_by_method(RetrievalIndex(lonely), 2)


# --- why did this match? ----------------------------------------------------------------------------

def _maps(seed: int, n: int, c: int = 6, h: int = 5, w: int = 7) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=generator, dtype=torch.float64).clamp(min=0) + 0.01


def _descriptor(x: torch.Tensor, pooling: str, whitening: PCAWhitening | None = None) -> np.ndarray:
    """The pipeline's descriptor of one (C, H, W) map, built independently of contribution_map."""
    pooling = Pooling.parse(pooling)
    if whitening is not None and pooling.regional:
        return whitening.transform_regions(regional_vectors(x[None]).numpy())[0].astype(np.float64)
    pooled = pooling(x[None]).numpy()
    if whitening is None:
        return l2n(pooled)[0]
    return whitening.transform(pooled)[0].astype(np.float64)


def test_spoc_map_by_hand():
    # One channel, 1×2 map with values 3 and 4: g = 7, ||g|| = 7; q = (1,) → score 1, map (3/7, 4/7).
    result = contribution_map(torch.tensor([[[3.0, 4.0]]]), np.array([1.0]), "SPoC")
    np.testing.assert_allclose(result.map, [[3 / 7, 4 / 7]])
    assert result.offset == 0.0 and result.score == pytest.approx(1.0)


def test_mac_map_by_hand():
    # Channel 0 peaks at (0, 1) with 3, channel 1 at (1, 0) with 4: MAC = (3, 4), ||·|| = 5;
    # q = (0.6, 0.8) → score 0.6·3/5 + 0.8·4/5 = 1.
    x = torch.tensor([[[0.0, 3.0], [1.0, 0.0]], [[0.0, 2.0], [4.0, 1.0]]])
    result = contribution_map(x, np.array([0.6, 0.8]), "MAC")
    np.testing.assert_allclose(result.map, [[0.0, 0.36], [0.64, 0.0]])
    assert result.score == pytest.approx(1.0)


@pytest.mark.parametrize("pooling", ["SPoC", "SPoC+prior", "MAC", "GeM", "R-MAC"])
def test_map_sums_to_the_pipeline_score_without_whitening(pooling):
    maps = _maps(1, 3)
    query = _descriptor(maps[0], pooling)
    for x in maps[1:]:
        expected = float(query @ _descriptor(x, pooling))
        result = contribution_map(x, query, pooling)
        assert result.offset == 0.0 and result.map.shape == x.shape[1:]
        assert result.map.sum() == pytest.approx(expected, abs=1e-9)
        assert result.score == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("pooling", ["SPoC", "MAC", "GeM", "R-MAC"])
def test_map_plus_mean_term_is_the_whitened_score(pooling):
    train = _maps(2, 40, h=6, w=6)
    if Pooling.parse(pooling).regional:
        vectors = np.concatenate([regional_vectors(t[None])[0].numpy() for t in train])
    else:
        vectors = Pooling.parse(pooling)(train).numpy()
    whitening = PCAWhitening(n_components=4).fit(vectors)
    maps = _maps(3, 3)
    query = _descriptor(maps[0], pooling, whitening)
    for x in maps[1:]:
        expected = float(query @ _descriptor(x, pooling, whitening))
        result = contribution_map(x, query, pooling, whitening=whitening)
        assert result.offset != 0.0  # the mean term is real after whitening
        assert result.map.sum() + result.offset == pytest.approx(expected, abs=1e-5)
        assert result.located == pytest.approx(result.map.sum())


def test_mac_contributions_sit_on_the_maxima_only():
    x = _maps(4, 1)[0]
    result = contribution_map(x, np.ones(x.shape[0]) / np.sqrt(x.shape[0]), "MAC")
    argmax_cells = {int(i) for i in x.reshape(x.shape[0], -1).argmax(dim=1)}
    assert set(np.flatnonzero(result.map.ravel()).tolist()) <= argmax_cells


def test_contribution_map_names_bad_inputs():
    x = _maps(5, 1)[0]
    with pytest.raises(ValueError, match="unknown pooling"):
        contribution_map(x, np.ones(6), "VLAD")
    with pytest.raises(ValueError, match="dimension"):
        contribution_map(x, np.ones(5), "SPoC")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        contribution_map(torch.ones(6, 5), np.ones(6), "SPoC")
    with pytest.raises(ValueError, match="fitted"):
        contribution_map(x, np.ones(6), "SPoC", whitening=PCAWhitening())


@pytest.mark.parametrize("pooling", ["SPoC", "MAC", "R-MAC", "GeM"])
@pytest.mark.parametrize("whiten", [False, True])
def test_explain_match_sums_to_the_ranking_score(grouped_features, pooling, whiten):
    index = RetrievalIndex(grouped_features)
    result = retrieve(index, 1, pooling, whiten, k=3)
    query_side, result_side = explain_match(index, 1, int(result.indices[0]), pooling, whiten)
    assert result_side.map.sum() + result_side.offset == pytest.approx(result.scores[0], abs=1e-4)
    assert query_side.score == pytest.approx(result.scores[0], abs=1e-4)
    assert result_side.map.shape == tuple(grouped_features.db_maps[0].shape[1:])


# --- a few images ----------------------------------------------------------------------------------

def test_compare_images_and_pair_similarities_by_hand():
    same = np.ones((2, 2, 2), np.float32)
    other = np.zeros((2, 2, 2), np.float32)
    other[0, 0, 0] = 1.0  # MAC (1, 0), SPoC (1, 0): cos with (1, 1)/√2 is 1/√2
    vectors, sims = compare_images([same, same, other], "MAC")
    np.testing.assert_allclose(vectors[0], [2 ** -0.5, 2 ** -0.5], rtol=1e-6)
    np.testing.assert_allclose(sims, [1.0, 2 ** -0.5], rtol=1e-6)
    table = pair_similarities([same, same, other], ["SPoC", "GeM (p=4)"])
    assert list(table) == ["SPoC", "GeM (p=4)"]
    np.testing.assert_allclose(table["SPoC"], [1.0, 2 ** -0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="anchor"):
        compare_images([same], "MAC")


def test_pair_similarities_of_identical_maps_is_one():
    fmap = np.random.default_rng(0).random((8, 3, 4))
    sims = pair_similarities([fmap, fmap, fmap[::-1].copy()])
    assert list(sims) == ["SPoC", "MAC", "R-MAC", "GeM"]
    for name, values in sims.items():
        assert values[0] == pytest.approx(1.0, abs=1e-6), name
        assert values[1] < 1.0


# --- PCA-whitening against d -----------------------------------------------------------------------

def _score_with_pca(features, pooling, part, d, power):
    """The mAP of a PCAWhitening fitted here on ``part``: the independent reference of the sweeps."""
    pca = PCAWhitening(n_components=d, power=power).fit(features.pooled(part, pooling))
    ds = features.dataset
    ranks = rank(pca.transform(features.pooled("query", pooling)), pca.transform(features.pooled("db", pooling)))
    return headline_score(evaluate(ranks, ds.gnd, ds.protocol))


def test_dimension_grid():
    assert dimension_grid(40) == [16, 32, 40]
    assert dimension_grid(32) == [16, 32]
    assert dimension_grid(10) == [10]
    assert dimension_grid(256) == list(range(16, 257, 16))  # 16 points: the plain grid
    # beyond 16 points the step grows by whole multiples of 16: 1280 / (16 · 16) → 5 · 16 = 80
    assert dimension_grid(1280) == list(range(16, 1281, 80)) + [1280]
    with pytest.raises(ValueError, match="max_dim"):
        dimension_grid(0)


@pytest.mark.parametrize("pooling", ["SPoC", "R-MAC"])
def test_whitened_sweep_equals_a_whitening_fitted_at_that_d(whitening_features, pooling):
    index = RetrievalIndex(whitening_features)
    assert index.max_dim("SPoC") == 24  # D = 24 < n - 1 = 39
    for power in (0.0, 0.25, 0.5):
        score = index.whitened_score(pooling, 10, power)
        if pooling == "SPoC":
            assert score == pytest.approx(_score_with_pca(whitening_features, pooling, "train", 10, power))
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
            _score_with_pca(whitening_features, pooling, "train", 8, 0.25))
    assert not side_by_side.curve_is_ready("R-MAC", [8, 16], 0.25, "train")


def test_train_vs_test_curves(whitening_features):
    index = RetrievalIndex(whitening_features)
    curves, baselines = train_vs_test_curves(index, ("MAC",))
    assert list(curves) == ["MAC (learned on the training set)", "MAC (learned on the test set)"]
    train_dims, train_values = curves["MAC (learned on the training set)"]
    test_dims, test_values = curves["MAC (learned on the test set)"]
    assert train_dims == [16, 24] and test_dims == [11]  # 12 database vectors give at most 11 components
    assert train_values[0] == pytest.approx(_score_with_pca(whitening_features, "MAC", "train", 16, 0.5))
    assert test_values[0] == pytest.approx(_score_with_pca(whitening_features, "MAC", "db", 11, 0.5))
    ds = whitening_features.dataset
    l2_ranks = rank(l2n(whitening_features.pooled("query", "MAC")), l2n(whitening_features.pooled("db", "MAC")))
    assert baselines == {"MAC": pytest.approx(compute_map(l2_ranks, ds.gnd).map)}


def test_whitening_gains(whitening_features):
    (gain,) = whitening_gains(RetrievalIndex(whitening_features), ("SPoC",))
    assert gain.method == "SPoC"
    assert gain.full == pytest.approx(_score_with_pca(whitening_features, "SPoC", "train", 24, 0.5))
    assert gain.partial == pytest.approx(_score_with_pca(whitening_features, "SPoC", "train", 24, 0.25))
    assert gain.best >= gain.full and gain.best_dim in (16, 24)
    assert gain.best == pytest.approx(_score_with_pca(whitening_features, "SPoC", "train", gain.best_dim, 0.5))


def test_a_sweep_without_ground_truth_says_so(whitening_features):
    bare = make_features(whitening_features.query_maps, whitening_features.db_maps, whitening_features.train_maps)
    with pytest.raises(ValueError, match="no ground truth"):
        RetrievalIndex(bare).whitened_score("SPoC", 4)


# --- conv against FC descriptors ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from PIL import Image

    from cbir_lab.datasets import load_dataset

    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for group in ("a", "b"):
        (root / group).mkdir()
        base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        for i in range(3):
            noisy = np.clip(base.astype(int) + rng.integers(-10, 10, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(root / group / f"{group}{i}.png")
    return load_dataset(str(root))


@pytest.mark.parametrize("backbone, layers, heads", [("efficientnet_lite0", ("blocks.6", "conv_head"), ["logits"]),
                                                     ("vgg16", ("conv5_3",), ["fc6", "fc7"])])
def test_depth_comparison_pools_each_layer_and_scores_the_heads(tiny_folder, backbone, layers, heads):
    torch.manual_seed(0)  # random weights: the shapes and the scoring are what is tested
    rows = depth_comparison(tiny_folder, backbone, layers=layers, poolings=("SPoC", "GeM"), max_side=64, weights=None)
    expected = [f"{layer} {p}" for layer in layers for p in ("SPoC", "GeM")]
    expected += [f"{head} (FC, {1000 if head == 'logits' else 4096}-D)" for head in heads]
    assert [r.method for r in rows] == expected
    for row in rows:
        assert 0 <= row.scores["mAP"] <= 1 and row.aps.shape == (tiny_folder.n_queries,)


def test_score_descriptors_by_hand():
    features = make_features(unit_maps(QUERY), unit_maps(DB), gnd=[{"ok": [2], "junk": [1]}])
    row = score_descriptors("hand", features.dataset, np.array([[1.0, 0.0]]), np.array(DB))
    assert row.method == "hand" and row.dim == 2
    assert row.scores["mAP"] == pytest.approx(1.0) and row.aps.tolist() == [1.0]  # db2 first once junk db1 goes


def test_whitening_table_lists_the_allowed_dimensions_with_paired_gains(grouped_features):
    from cbir_lab.index import whitening_table

    index = RetrievalIndex(grouped_features)
    top = index.max_dim("SPoC")  # 12 training images: 11 directions at most
    rows, intervals = whitening_table(index, ("SPoC",), dims=(4, 8, 64))
    assert [(r.method, r.whitened, r.dim) for r in rows] == [("SPoC", False, 16), ("SPoC @4", True, 4),
                                                            ("SPoC @8", True, 8), (f"SPoC @{top}", True, top)]
    assert rows[1].scores["mAP"] == pytest.approx(index.whitened_score("SPoC", 4))
    assert list(intervals) == ["SPoC @4, whitened", "SPoC @8, whitened", f"SPoC @{top}, whitened"]
    assert intervals["SPoC @4, whitened"].estimate == pytest.approx(rows[1].scores["mAP"] - rows[0].scores["mAP"])


def test_encoding_comparison_whitens_every_descriptor_to_the_same_d(grouped_features):
    from cbir_lab.index import encoding_comparison
    from cbir_lab.pipeline import encode_dataset

    index = RetrievalIndex(grouped_features)
    vlad = encode_dataset(grouped_features, "vlad", k=2, local_dim=4, per_image=9)
    rows, intervals = encoding_comparison(index, [vlad], dims=(4, 99))
    top = min(index.max_dim("SPoC"), 8)  # 12 training images: 11 directions; VLAD has 2·4 = 8 dimensions
    assert [r.method for r in rows] == ["SPoC @4", "VLAD k=2 @4", f"SPoC @{top}", f"VLAD k=2 @{top}"]
    assert rows[0].scores["mAP"] == pytest.approx(index.whitened_score("SPoC", 4))
    whitening = PCAWhitening().fit(vlad.vectors["train"])
    q, db = (whitening.at(4).transform(vlad.vectors[p]) for p in ("query", "db"))
    assert rows[1].scores["mAP"] == pytest.approx(compute_map(rank(q, db), index.gnd).map)
    assert intervals["VLAD k=2 @4, whitened"].estimate == pytest.approx(rows[1].scores["mAP"] - rows[0].scores["mAP"])


def test_reranking_table_rows_are_the_search_modules_rankings_scored(grouped_features):
    from cbir_lab.index import diffusion_recoveries, reranking_table
    from cbir_lab.search import database_augmentation, diffusion_rank

    index = RetrievalIndex(grouped_features)
    rows = reranking_table(index, "SPoC", dba_k=2, graph_k=3, alpha=0.5, k_query=2, paper_k=50)
    assert [r.method for r in rows] == ["SPoC", "SPoC + α-QE", "SPoC + DBA (k=2)", "SPoC + DBA + α-QE",
                                        "SPoC + diffusion (k=3, α=0.5)", "SPoC + diffusion (k=8, α=0.99)"]
    q, db = index.descriptors("SPoC")
    assert rows[0].scores["mAP"] == pytest.approx(index.setting("SPoC")["map"])
    assert rows[1].scores["mAP"] == pytest.approx(index.setting("SPoC", query_expansion=True)["map"])
    dba = compute_map(rank(q, database_augmentation(db, k=2, alpha=3.0)), index.gnd)
    assert rows[2].scores["mAP"] == pytest.approx(dba.map)
    diffused = compute_map(diffusion_rank(q, db, k=3, alpha=0.5, k_query=2), index.gnd)
    assert rows[4].scores["mAP"] == pytest.approx(diffused.map) and rows[4].aps == pytest.approx(diffused.aps)
    recovered = diffusion_recoveries(index, "SPoC", top=3, graph_k=3, alpha=0.5, k_query=2)
    assert len(recovered) == index.dataset.n_queries
    for query, images in enumerate(recovered):
        assert set(images.tolist()) <= set(index.gnd[query]["ok"])


def test_visual_words_assign_each_cell_to_its_nearest_word():
    from cbir_lab import aggregation, encodings
    from cbir_lab.index import learn_word_vocabularies, visual_words

    generator = torch.Generator().manual_seed(2)
    train = [torch.rand(6, 3, 3, generator=generator) for _ in range(10)]
    vocabularies = learn_word_vocabularies(train, ks=(2, 4), local_dim=3, per_image=9)
    assert sorted(vocabularies.centroids) == [2, 4] and vocabularies.centroids[4].shape == (4, 3)
    fmap = torch.rand(6, 2, 5, generator=generator)
    words, blocks = visual_words(fmap, vocabularies, 4, intra=True, power=0.5)
    descs = vocabularies.local_pca.transform(aggregation.local_descriptors(fmap))
    distances = ((descs[:, None] - vocabularies.centroids[4][None]) ** 2).sum(-1)
    assert words.shape == (2, 5) and words.ravel().tolist() == distances.argmin(1).tolist()
    np.testing.assert_allclose(blocks.ravel(), encodings.vlad(descs, vocabularies.centroids[4], intra=True, power=0.5,
                                                              l2=False), rtol=1e-6)
    with pytest.raises(ValueError, match="no vocabulary of size 3"):
        visual_words(fmap, vocabularies, 3)
