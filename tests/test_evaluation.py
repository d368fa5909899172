"""Evaluation against APs worked by hand with the reference (trapezoid) rule."""

import numpy as np
import pytest

from cbir_lab.evaluation import (
    ranked_positions,
    scoring_gnd,
    similarity_gaps,
    CannotScoreError,
    average_precision,
    compute_map,
    evaluate,
    median_ap_query,
    ns_score,
    positive_positions,
    precision_at_k,
    precision_recall,
    revisited_gnd,
    revisited_map,
    score,
)


def column(*ranking):
    return np.array(ranking, dtype=np.int64)[:, None]


def test_ap_of_a_perfect_ranking_is_one():
    assert compute_map(column(0, 1, 2, 3), [{"ok": [0, 1]}]).map == 1.0


def test_ap_positives_at_first_and_third_place():
    # j=0 at r=0: (1 + 1)/2 = 1;  j=1 at r=2: (1/2 + 2/3)/2 = 7/12;  AP = (1 + 7/12)/2 = 19/24
    assert compute_map(column(0, 1, 2, 3, 4), [{"ok": [0, 2]}]).map == pytest.approx(19 / 24)


def test_ap_single_positive_in_second_place_is_a_quarter_under_the_trapezoid_rule():
    # p0 = 0/1, p1 = 1/2: the trapezoid gives 1/4 where the textbook AP would give 1/2
    assert compute_map(column(7, 3, 5), [{"ok": [3]}]).map == pytest.approx(0.25)


def test_junk_before_positives_is_removed_before_ap():
    # positions 1 and 3 become 0 and 1 once the junk at 0 and 2 is dropped: a perfect ranking
    assert compute_map(column(5, 0, 6, 2), [{"ok": [0, 2], "junk": [5, 6]}]).map == 1.0


def test_junk_after_a_positive_does_not_shift_it():
    # positive at 0 stays; positive at 3 has one junk (at 1) before it -> r = 2
    ap = compute_map(column(0, 9, 4, 2), [{"ok": [0, 2], "junk": [9]}]).map
    assert ap == pytest.approx((1 + (1 / 2 + 2 / 3) / 2) / 2)


def test_positive_missing_from_a_truncated_ranking_counts_as_zero():
    # two positives, only one found at r = 0: AP = 1/2
    assert compute_map(column(1, 2, 3), [{"ok": [1, 8]}]).map == pytest.approx(0.5)
    assert compute_map(column(1, 2, 3), [{"ok": [8]}]).map == 0.0


def test_queries_without_positives_are_left_out_of_the_mean():
    ranks = np.array([[0, 0, 1], [1, 1, 0]])
    res = compute_map(ranks, [{"ok": [0]}, {"ok": []}, {"ok": [1]}])
    assert res.map == 1.0
    assert res.n_scored == 2
    assert np.isnan(res.aps[1]) and res.aps[0] == 1.0 and res.aps[2] == 1.0


def test_all_queries_without_positives_is_an_error_not_nan():
    with pytest.raises(ValueError, match="no query has any positive"):
        compute_map(column(0, 1), [{"ok": []}])


def test_mpk_uses_the_reference_definition_not_textbook_precision():
    # positives at 1-based positions 1 and 3
    res = compute_map(column(0, 1, 2, 3, 4, 5), [{"ok": [0, 2]}], kappas=(1, 5))
    assert res.prs[0].tolist() == pytest.approx([1.0, 2 / 3])  # k=5: kq = min(3, 5) = 3
    assert precision_at_k(column(0, 1, 2, 3, 4, 5), [{"ok": [0, 2]}], 5)[0] == pytest.approx(2 / 5)


def test_positive_positions_shift_by_the_junk_ranked_before():
    assert positive_positions(np.array([4, 1, 9, 2, 7]), [2, 7], junk=[4, 9]).tolist() == [1, 2]


def test_average_precision_from_positions():
    assert average_precision(np.array([0, 2]), 2) == pytest.approx(19 / 24)
    with pytest.raises(ValueError):
        average_precision(np.array([]), 0)


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="2 query columns but gnd has 1"):
        compute_map(np.zeros((3, 2), dtype=int), [{"ok": [0]}])
    with pytest.raises(ValueError, match="integer"):
        compute_map(np.zeros((3, 1)), [{"ok": [0]}])


def test_revisited_settings_move_easy_and_hard_between_positive_and_junk():
    gnd = [{"easy": [0], "hard": [1], "junk": [2]}]
    assert revisited_gnd(gnd, "easy") == [{"ok": [0], "junk": [2, 1]}]
    assert revisited_gnd(gnd, "medium") == [{"ok": [0, 1], "junk": [2]}]
    assert revisited_gnd(gnd, "hard") == [{"ok": [1], "junk": [2, 0]}]
    # ranking: hard image first, then junk, then the easy one
    res = revisited_map(column(1, 2, 0, 3), gnd)
    assert res["easy"].map == 1.0  # hard and junk are ignored: the easy image is effectively first
    assert res["hard"].map == 1.0
    assert res["medium"].map == 1.0  # junk removed: positives at 0 and 1


def test_revisited_medium_by_hand():
    gnd = [{"easy": [3], "hard": [0], "junk": []}]
    # ranking 5, 3, 0: positives at r=1 (p0 = 0, p1 = 1/2) and r=2 (p0 = 1/2, p1 = 2/3)
    res = revisited_map(column(5, 3, 0), gnd)
    assert res["medium"].map == pytest.approx(((0 + 1 / 2) / 2 + (1 / 2 + 2 / 3) / 2) / 2)


def test_ns_score_counts_the_group_in_the_top_four():
    gnd = [{"ok": [0, 1, 2, 3]}, {"ok": [0, 1, 2, 3]}]
    ranks = np.array([[0, 1], [1, 7], [9, 8], [2, 6], [3, 0]])
    assert ns_score(ranks, gnd) == pytest.approx((3 + 1) / 2)
    with pytest.raises(ValueError, match="top 4"):
        ns_score(ranks[:3], gnd)


def test_precision_recall_curve_without_junk():
    recall, precision = precision_recall(np.array([0, 5, 1, 2]), positives=[0, 1], junk=[5])
    assert recall.tolist() == [0.5, 1.0, 1.0]
    assert precision.tolist() == pytest.approx([1.0, 1.0, 2 / 3])


def test_evaluate_dispatches_on_protocol():
    ranks = column(0, 1)
    assert evaluate(ranks, [{"ok": [0]}], "standard")["mAP"] == 1.0
    with pytest.raises(CannotScoreError, match="no ground truth"):
        evaluate(ranks, None, "none")
    assert set(evaluate(ranks, [{"easy": [0], "hard": [1], "junk": []}], "revisited")) >= {"easy", "medium"}


def test_compute_map_agrees_with_a_literal_port_of_the_reference_loop():
    """Independent check: the reference's loop (junk shift by while-loops) on random rankings."""

    def reference_ap(ranking, ok, junk):
        pos = np.arange(len(ranking))[np.isin(ranking, ok)]
        jpos = np.arange(len(ranking))[np.isin(ranking, junk)]
        k = ij = 0
        pos = pos.copy()
        for ip in range(len(pos)):
            while ij < len(jpos) and pos[ip] > jpos[ij]:
                k += 1
                ij += 1
            pos[ip] -= k
        ap = 0.0
        for j, r in enumerate(pos):
            p0 = 1.0 if r == 0 else j / r
            ap += (p0 + (j + 1) / (r + 1)) / 2 / len(ok)
        return ap

    rng = np.random.default_rng(0)
    for _ in range(50):
        n = 30
        ranking = rng.permutation(n)
        labels = rng.integers(0, 3, n)
        ok, junk = np.flatnonzero(labels == 1), np.flatnonzero(labels == 2)
        if ok.size == 0:
            continue
        got = compute_map(ranking[:, None], [{"ok": ok, "junk": junk}]).map
        assert got == pytest.approx(reference_ap(ranking, ok, junk))


def test_median_ap_query():
    # the NaN query cannot be scored; the median of {0.2, 0.9, 0.5} is query 3's 0.5
    assert median_ap_query([0.2, np.nan, 0.9, 0.5]) == 3
    # an even count: the median 0.5 lies between 0.25 and 0.75, as close to both; the smaller index wins
    assert median_ap_query([0.75, 0.0, 0.25, 1.0]) == 0
    with pytest.raises(ValueError, match="no query has an AP"):
        median_ap_query([np.nan, np.nan])


def test_similarity_gaps_by_hand():
    # 1 query; database: 2 views of its scene "a-1", one of "a-2" (same photo), one of "b"
    q = np.array([[1.0, 0.0]])
    db = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.0, 1.0]])
    gaps = similarity_gaps(q, db, [{"ok": [0, 1]}], ["a-1", "a-1", "a-2", "b"])
    assert gaps["positive"] == pytest.approx(0.5)
    assert gaps["negative"] == pytest.approx(0.3)
    assert gaps["hard negative"] == pytest.approx(0.6)
    assert gaps["hard gap"] == pytest.approx(-0.1)


def test_scoring_gnd_normalises_every_protocol():
    assert scoring_gnd([{"easy": [1], "hard": [2], "junk": [3]}], "revisited") == [{"ok": [1, 2], "junk": [3]}]
    assert scoring_gnd([{"easy": [1], "hard": [2], "junk": [3]}], "revisited", "hard") == [{"ok": [2], "junk": [3, 1]}]
    assert scoring_gnd([{"ok": [0, 1]}], "ukbench") == [{"ok": [0, 1], "junk": []}]
    assert scoring_gnd(None) is None and scoring_gnd([{"ok": [0]}], "none") is None


# ----- scoring without sorting ------------------------------------------------------------------------

def test_ranked_positions_by_hand_ties_go_to_the_smaller_index():
    scores = np.array([0.2, 0.9, 0.5, 0.9])
    assert ranked_positions(scores, [1, 3, 2, 0]).tolist() == [0, 1, 2, 3]
    assert ranked_positions(scores, []).tolist() == []


def test_the_bootstrap_is_re_exported_from_statistics():
    import cbir_lab.evaluation as evaluation
    import cbir_lab.statistics as statistics

    for name in statistics.__all__:
        assert getattr(evaluation, name) is getattr(statistics, name) and name in evaluation.__all__


# ----- score: the one scoring entry -------------------------------------------------------------------------------

def toy_dataset(gnd, protocol, n_db):
    from pathlib import Path

    from cbir_lab.datasets.base import RetrievalDataset

    return RetrievalDataset("toy", tuple(Path(f"db{i}.jpg") for i in range(n_db)),
                            tuple(Path(f"q{i}.jpg") for i in range(len(gnd))), tuple(gnd), protocol)


def test_score_standard_with_junk_by_hand():
    gnd = [{"ok": [1, 4], "junk": [0]}, {"ok": [5], "junk": []}, {"ok": [], "junk": [3]}]
    ranks = np.array([[0, 1, 3, 4, 2, 5], [2, 5, 0, 1, 3, 4], [0, 1, 2, 3, 4, 5]]).T
    result = score(ranks, toy_dataset(gnd, "standard", 6))
    # query 0: the junk image 0 comes first, so the positives at 1 and 3 move to 0 and 2: AP = (1 + (1/2 + 2/3)/2)/2
    # query 1: its positive at 1: AP = (0 + 1/2)/2; query 2 has no positive and is left out
    assert result.per_query[:2].tolist() == pytest.approx([19 / 24, 1 / 4]) and np.isnan(result.per_query[2])
    assert result.headline == pytest.approx((19 / 24 + 1 / 4) / 2) and result.headline_name == "mAP"
    # mP@1: 1 and 0; mP@5: kq = 3 gives 2/3, kq = 2 gives 1/2
    assert result.scores == pytest.approx({"mAP": 25 / 48, "mP@1": 0.5, "mP@5": 7 / 12, "mP@10": 7 / 12})
    assert (result.protocol, result.n_scored, result.left_out) == ("standard", 2, (2,))
    assert result.aps is result.per_query
    assert result.scores == evaluate(ranks, gnd, "standard")


def test_score_revisited_easy_medium_and_hard_differ_by_hand():
    # five images; query 0: easy 0, hard 3, junk 2; query 1: easy 4 only; query 2: no positive at all
    gnd = [{"easy": [0], "hard": [3], "junk": [2]}, {"easy": [4], "hard": [], "junk": []},
           {"easy": [], "hard": [], "junk": [1]}]
    ranks = np.array([[3, 1, 0, 2, 4], [4, 0, 1, 2, 3], [0, 1, 2, 3, 4]]).T
    result = score(ranks, toy_dataset(gnd, "revisited", 5))
    # query 0, easy (hard 3 is junk): 0 moves from 2 to 1, AP = (0 + 1/2)/2 = 1/4
    #          medium: 3 at 0, 0 at 2 (no junk before): AP = (1 + (1/2 + 2/3)/2)/2 = 19/24
    #          hard (easy 0 is junk): 3 first, AP = 1
    # query 1: AP 1 for easy and medium, no hard positive (left out of hard); query 2 is left out of all three
    assert result.scores == pytest.approx({"easy": (1 / 4 + 1) / 2, "medium": (19 / 24 + 1) / 2, "hard": 1.0})
    assert result.headline == result.scores["medium"] and result.headline_name == "medium"
    assert result.per_query[:2].tolist() == pytest.approx([19 / 24, 1.0]) and np.isnan(result.per_query[2])
    assert (result.n_scored, result.left_out) == (2, (2,))
    assert result.scores == evaluate(ranks, gnd, "revisited")


def test_score_ukbench_leads_with_the_ns_score_by_hand():
    groups = [{"ok": [0, 1, 2, 3]}, {"ok": [4, 5, 6, 7]}]
    ranks = np.array([[0, 1, 5, 2, 3], [4, 0, 1, 2, 5]]).T  # top 4: three of group 0; one of group 1
    result = score(ranks, toy_dataset(groups, "ukbench", 8))
    assert result.headline == 2.0 and result.headline_name == "N-S"
    assert result.per_query.tolist() == [3.0, 1.0]
    assert (result.n_scored, result.left_out) == (2, ())
    # the APs behind its mAP: query 0 finds its group at 0, 1, 3, 4; query 1 finds 4 at 0 and 5 at 4 of 4 positives
    ap0 = (1 + 1 + (2 / 3 + 3 / 4) / 2 + (3 / 4 + 4 / 5) / 2) / 4
    ap1 = (1 + (1 / 4 + 2 / 5) / 2) / 4
    assert result.aps.tolist() == pytest.approx([ap0, ap1])
    assert result.scores == pytest.approx({"N-S": 2.0, "mAP": (ap0 + ap1) / 2})
    assert result.scores == evaluate(ranks, groups, "ukbench")


def test_score_without_ground_truth_or_with_an_unknown_protocol():
    with pytest.raises(CannotScoreError, match="no ground truth"):
        score(column(0, 1), toy_dataset([{"ok": [0]}], "none", 2))
    with pytest.raises(ValueError, match="unknown protocol"):
        score(column(0, 1), toy_dataset([{"ok": [0]}], "holidays", 2))
