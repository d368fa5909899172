"""The capstone's study (cbir_lab.studies.capstone): splits, grids, choices and reports on hand-made APs and features."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cbir_lab.evaluation import compute_map
from cbir_lab.index import RetrievalIndex
from cbir_lab.kreciprocal import k_reciprocal_rank
from cbir_lab.search import rank
from cbir_lab.statistics import paired_bootstrap
from cbir_lab.studies import capstone
from cbir_lab.studies.capstone import (Candidate, CandidateGrid, QuerySplit, candidate_aps, candidate_grid,
                                       choose_setting, evaluate_grid, failure_summary, missed_positives, ranked_list,
                                       split_queries, final_report, worst_query)


def test_candidate_labels_costs_and_bad_settings():
    assert Candidate("gem", 64, "α-QE").label == "GeM, d=64, α-QE"
    assert Candidate("R-MAC").without_dim == "R-MAC"
    assert Candidate("MAC", 32, "k-reciprocal", k1=6, k2=2).without_dim == "MAC, k-reciprocal (k1=6)"
    # cheaper: no re-ranking before α-QE before k-reciprocal, then fewer floats per image
    assert Candidate("SPoC").cost(1280) == (0, 1280) and Candidate("SPoC", 64, "α-QE").cost(1280) == (1, 64)
    with pytest.raises(ValueError, match="reranking"):
        Candidate("SPoC", reranking="diffusion")
    with pytest.raises(ValueError, match="dim"):
        Candidate("SPoC", 0)
    with pytest.raises(ValueError, match="k2"):
        Candidate("SPoC", reranking="k-reciprocal", k1=2, k2=3)
    assert len(candidate_grid(("SPoC", "GeM"), (None, 8), ("none", "α-QE", "k-reciprocal"))) == 12
    with pytest.raises(ValueError, match="at least one"):
        candidate_grid((), (None,), ("none",))


def test_split_by_cluster_keeps_each_cluster_on_one_side():
    split = split_queries(["louvre", "eiffel", "louvre", "defense", "eiffel"], "landmarks")
    # sorted: defense → tuning, eiffel → test, louvre → tuning
    assert split.tuning.tolist() == [True, False, True, True, False]
    assert split.part("test").tolist() == [1, 4]
    assert split.summary().splitlines() == ["tuning    3 queries of 2 landmarks: defense, louvre",
                                            "test      2 queries of 1 landmarks: eiffel"]


def test_split_by_query_puts_every_cluster_with_two_queries_on_both_sides():
    split = split_queries(["a", "a", "b", "b", "b"], by="query")
    assert split.tuning.tolist() == [True, False, True, False, True]
    with pytest.raises(ValueError, match="non-empty"):
        split_queries(["a", "a"])  # one cluster: nothing left to test on
    with pytest.raises(ValueError, match="by must be"):
        split_queries(["a", "b"], by="landmark")
    with pytest.raises(ValueError, match="tuning"):
        split.part("validation")


def hand_grid() -> tuple[CandidateGrid, tuple[Candidate, ...]]:
    """Three candidates on 8 queries of 4 clusters; tuning = clusters a and c, test = b and d."""
    cheap, middle, costly = Candidate("SPoC", 64), Candidate("SPoC"), Candidate("GeM", None, "α-QE")
    clusters = ("a", "a", "b", "b", "c", "c", "d", "d")
    aps = np.array([
        [0.50, 0.60, 0.40, 0.40, 0.55, 0.65, 0.30, 0.30],  # cheap: tuning mean 0.575
        [0.70, 0.80, 0.60, 0.60, 0.75, 0.85, 0.50, 0.50],  # middle: 0.775, every tuning query 0.2 above cheap
        [0.72, 0.82, 0.90, 0.90, 0.74, 0.84, 0.80, 0.80],  # costly: 0.78, tied with middle, best on test
    ])
    split = split_queries(clusters, "clusters")
    return CandidateGrid((cheap, middle, costly), aps, split, full_dim=1280, n_resamples=2_000), (cheap, middle, costly)


def test_choosing_on_the_tuning_queries():
    grid, (cheap, middle, costly) = hand_grid()
    assert grid.split.part("tuning").tolist() == [0, 1, 4, 5]
    assert grid.mean(costly) == pytest.approx(0.78) and grid.mean(middle) == pytest.approx(0.775)
    assert grid.ranked("tuning") == [costly, middle, cheap]
    assert choose_setting(grid, "best") == costly
    # middle − costly is −0.02 or +0.01 on each tuning query: its paired interval reaches 0; cheap's (−0.2) does not
    assert grid.versus(middle, costly).high >= 0 > grid.versus(cheap, costly).high
    assert choose_setting(grid) == middle
    expected = paired_bootstrap(grid.aps[1, [0, 1, 4, 5]], grid.aps[2, [0, 1, 4, 5]], n_resamples=2_000,
                                clusters=["a", "a", "c", "c"])
    assert grid.versus(middle, costly) == expected
    with pytest.raises(ValueError, match="rule"):
        choose_setting(grid, "luckiest")
    table = grid.table(top=2)
    assert table.splitlines()[1].startswith("GeM, no PCA, α-QE") and "0.780" in table
    assert "(2 of 3 candidates shown; the worst, SPoC, d=64: 0.575)" in table and "fewer than 10" in table


def test_the_report_reads_only_the_test_queries_and_shows_hindsight():
    grid, (cheap, middle, costly) = hand_grid()
    report = final_report(grid, middle, cheap)
    assert "baseline: SPoC" in report and "chosen on tuning: SPoC" in report
    assert "best on test, in hindsight: GeM, α-QE" in report  # 0.85 on the test queries
    assert "mAP 0.775 on the tuning queries, 0.550 on the test queries (-0.225)" in report
    assert "b (2)" in report and "a (2)" not in report  # the per-cluster results are the test clusters'
    with pytest.raises(ValueError, match="not in the grid"):
        final_report(grid, Candidate("MAC"), cheap)
    assert worst_query(grid, middle) == 6  # test queries 2, 3, 6, 7: 0.6, 0.6, 0.5, 0.5; the first of the lowest
    assert worst_query(grid, middle, "tuning") == 0


def test_the_grid_scores_each_candidate_as_the_search_modules_do(whitening_features):
    index = RetrievalIndex(whitening_features)
    split = split_queries(index.dataset.clusters(), "queries", by="cluster")
    candidates = candidate_grid(("SPoC",), (None, 8, 10_000), ("none", "α-QE", "k-reciprocal"), k1=3, k2=1)
    grid = evaluate_grid(index, candidates, split)
    assert len(grid.candidates) == 6 and len(grid.left_out) == 3 and "supports d <=" in grid.left_out[0]
    gnd = index.dataset.gnd
    np.testing.assert_allclose(grid.aps_of(Candidate("SPoC"), "test"), index.setting("SPoC").aps[split.part("test")])
    np.testing.assert_allclose(grid.aps[grid.candidates.index(Candidate("SPoC", None, "α-QE"))],
                               index.setting("SPoC", query_expansion=True).aps)
    q, db = index.whitened("SPoC", 8)
    np.testing.assert_allclose(candidate_aps(index, Candidate("SPoC", 8)), compute_map(rank(q, db), gnd).aps)
    reciprocal = Candidate("SPoC", 8, "k-reciprocal", k1=3, k2=1)
    np.testing.assert_allclose(candidate_aps(index, reciprocal), compute_map(k_reciprocal_rank(q, db, 3, 1), gnd).aps)
    assert grid.full_dim == index.descriptors("SPoC")[1].shape[1]
    with pytest.raises(ValueError, match="split has"):
        evaluate_grid(index, candidates, split_queries(["a", "b"]))


def test_a_failure_is_the_queries_top_and_its_lowest_positives(grouped_features):
    index = RetrievalIndex(grouped_features)
    candidate = Candidate("SPoC")
    ranking = index.setting("SPoC").ranks[:, 2]
    shown = ranked_list(index, candidate, 2, k=4)
    assert shown.indices.tolist() == ranking[:4].tolist()
    assert shown.ap == pytest.approx(index.setting("SPoC").aps[2])
    assert shown.statuses == tuple("correct" if i in index.gnd[2]["ok"] else "junk" if i in index.gnd[2]["junk"]
                                   else "wrong" for i in ranking[:4])
    q, db = index.descriptors("SPoC")
    np.testing.assert_allclose(shown.scores, db[ranking[:4]] @ q[2], rtol=1e-6)
    ranks_of = {int(i): r + 1 for r, i in enumerate(ranking)}
    assert shown.positive_ranks.tolist() == sorted(ranks_of[i] for i in index.gnd[2]["ok"])
    missed = missed_positives(index, candidate, 2, k=1)
    assert missed.positive_ranks.tolist() == shown.positive_ranks[-1:].tolist() and missed.statuses == ("correct",)
    summary = failure_summary(index, shown)
    assert summary.startswith(f"query 2 ({index.dataset.query_label(2)}): AP {shown.ap:.3f}")
    with pytest.raises(ValueError, match="query must be"):
        ranked_list(index, candidate, 99)


def test_your_own_folder_needs_sub_folders_and_its_queries_are_clustered_by_them(tmp_path):
    for group, n in (("bridge", 3), ("fountain", 2)):
        (tmp_path / "photos" / group).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (40, 30), (40 * i, 80, 120)).save(tmp_path / "photos" / group / f"IMG_{i}.png")
    dataset = capstone._own_folder(str(tmp_path / "photos"), 320)
    assert dataset.n_queries == 5 and dataset.clusters() == ("bridge",) * 3 + ("fountain",) * 2
    assert dataset.cluster_unit == "sub-folders" and dataset.max_side == 320
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(ValueError):
        capstone._own_folder(str(tmp_path / "flat"), 320)


def test_without_the_real_photos_the_capstone_says_so_and_uses_the_embedded_set(monkeypatch, capsys):
    monkeypatch.setattr(capstone, "present_real_dataset", lambda name, root=None: None)
    loaded = []
    monkeypatch.setattr(capstone, "load_dataset", lambda name, root=None, **kw: loaded.append(name) or "the set")
    monkeypatch.setattr(capstone, "extract_dataset", lambda dataset, backbone, **kw: f"features of {dataset}")
    monkeypatch.setattr(capstone, "RetrievalIndex", lambda features: f"index of {features}")
    assert capstone.capstone_index("rparis6k-slice") == "index of features of the set"
    assert loaded == ["embedded"]
    assert "rparis6k-slice is not on disk here, so this run uses the embedded set instead" in capsys.readouterr().out


def test_query_split_is_a_plain_record():
    split = QuerySplit(np.array([True, False]), ("a", "b"), "landmarks", "cluster")
    assert split.part("tuning").tolist() == [0] and split.part("test").tolist() == [1]
