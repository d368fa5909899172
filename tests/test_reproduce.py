"""`cbir-lab reproduce` end to end, offline: benchmark archives laid out like the real ones, served on loopback."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cbir_lab.cli import main
from cbir_lab.datasets.image_sets import ImageSet
import cbir_lab.reproduce
from cbir_lab.evaluation import Interval, compute_map, evaluate, revisited_gnd
from cbir_lab.reproduce import (
    PUBLISHED,
    PUBLISHED_STATUSES,
    REPRODUCED_POOLINGS,
    PublishedFigure,
    ReproducedRow,
    Reproduction,
    format_csv,
    format_markdown,
    reproduce,
    write_report,
)
from tests.fixtures_benchmarks import FileServer, oxford_files, paris_files, pinned_registry, revisited_pickle, ukbench_files


def roxford_fixture() -> bytes:
    """Query boxes inside the fixtures' 16 × 12 photos (the loader refuses a box outside its image)."""
    imlist = ["ashmolean_000007", "oxford_000001", "all_souls_000026", "all_souls_000040"]
    gnd = [{"bbx": [1, 1, 15, 11], "easy": [2], "hard": [3], "junk": [0]},
           {"bbx": [2, 2, 12, 10], "easy": [0], "hard": [], "junk": [1, 3]}]
    return revisited_pickle(imlist, ["all_souls_000013", "ashmolean_000000"], gnd)


def rparis_fixture() -> bytes:
    imlist = ["paris_louvre_000000", "paris_defense_000000", "paris_louvre_000001"]
    gnd = [{"bbx": [1, 1, 10, 8], "easy": [1], "hard": [0], "junk": []}]
    return revisited_pickle(imlist, ["paris_defense_000605"], gnd)


@pytest.fixture
def landmarks(tmp_path, monkeypatch):
    """ROxford5k and RParis6k fixtures on a loopback mirror; a fresh data folder and feature cache."""
    monkeypatch.setenv("CBIR_LAB_CACHE", str(tmp_path / "cache"))
    files = {"gnd_roxford5k.pkl": roxford_fixture(), "gnd_rparis6k.pkl": rparis_fixture(), **oxford_files(),
             **paris_files()}
    with FileServer(files) as server:
        monkeypatch.setenv("CBIR_LAB_MIRROR", server.url)
        yield {"root": tmp_path / "data", "registry": pinned_registry(files), "server": server}


def test_roxford5k_with_the_whitening_learned_on_rparis6k(landmarks):
    messages = []
    result = reproduce("roxford5k", landmarks["root"], max_side=64, dims=(1, 2, 512), progress=False,
                       log=messages.append, registry=landmarks["registry"])
    assert "4 database images, 2 queries, 3 whitening-training images" in result.summary
    assert result.whitening_source == "the 3 database images of rparis6k (the papers' protocol)"
    assert messages and messages[0].startswith("extracting 9 of 9 images at max side 64")
    methods = [r.method for r in result.rows]
    assert methods == [m for m in ("SPoC", "SPoC+prior", "MAC", "R-MAC", "GeM") for _ in range(3)]
    for row in result.rows:
        assert set(row.scores) == {"easy", "medium", "hard"} and row.headline == "medium"
        assert row.interval.low <= row.scores["medium"] <= row.interval.high
        assert row.whitened or row.dim == 1280
    assert [r.dim for r in result.rows[:3]] == [1280, 1, 2]
    assert any("d > 2 skipped" in note for note in result.skipped)  # 3 training images: 2 directions at most
    assert result.published == PUBLISHED["roxford5k"]


def test_the_computed_scores_are_the_protocols_own(landmarks):
    from cbir_lab.backbones import load_backbone
    from cbir_lab.datasets import load_dataset
    from cbir_lab.pipeline import extract_dataset, global_descriptors
    from cbir_lab.search import rank

    result = reproduce("roxford5k", landmarks["root"], max_side=64, dims=(2,), poolings=("GeM",), progress=False,
                       log=lambda _: None, registry=landmarks["registry"])
    dataset = load_dataset("roxford5k", landmarks["root"], registry=landmarks["registry"])
    features = extract_dataset(dataset, load_backbone("efficientnet_lite0"), max_side=64, progress=False)
    q, db = global_descriptors(features, "GeM")
    ranks = rank(q, db)
    assert result.rows[0].scores == pytest.approx(evaluate(ranks, dataset.gnd, "revisited"))
    medium = compute_map(ranks, revisited_gnd(dataset.gnd, "medium")).map
    assert result.rows[0].scores["medium"] == pytest.approx(medium)


def test_a_second_run_only_rescores(landmarks):
    reproduce("roxford5k", landmarks["root"], max_side=64, dims=(1,), poolings=("SPoC",), progress=False,
              log=lambda _: None, registry=landmarks["registry"])
    messages = []
    reproduce("roxford5k", landmarks["root"], max_side=64, dims=(1,), poolings=("SPoC",), progress=False,
              log=messages.append, registry=landmarks["registry"])
    assert messages == []  # nothing left to extract: no estimate to give


def test_the_report_holds_both_tables_and_never_overwrites(landmarks, tmp_path):
    result = reproduce("rparis6k", landmarks["root"], max_side=64, dims=(1,), poolings=("SPoC", "MAC"),
                       progress=False, log=lambda _: None, registry=landmarks["registry"])
    markdown = format_markdown(result)
    assert "| method | whitened | d | easy | medium | hard | medium 95 % CI |" in markdown
    assert "learned on the 4 database images of roxford5k" in markdown
    assert "https://github.com/filipradenovic/revisitop" in markdown and "| 92.12 | 77.2 | 56.32 |" in markdown
    rows = list(csv.DictReader(io.StringIO(format_csv(result))))
    computed = [r for r in rows if r["kind"] == "computed"]
    assert [(r["method"], r["whitened"], r["dim"]) for r in computed] == [
        ("SPoC", "False", "1280"), ("SPoC", "True", "1"), ("MAC", "False", "1280"), ("MAC", "True", "1")]
    assert float(computed[0]["ci_low"]) <= float(computed[0]["medium"]) <= float(computed[0]["ci_high"])
    published = [r for r in rows if r["kind"] == "published"]
    assert len(published) == len(PUBLISHED["rparis6k"]) and published[0]["medium"] == "0.7720"
    out = tmp_path / "report"
    first = write_report(result, out)
    second = write_report(result, out)
    assert [p.name for p in first] == ["rparis6k.md", "rparis6k.csv"]
    assert [p.name for p in second] == ["rparis6k-1.md", "rparis6k-1.csv"]
    assert first[0].read_text() == markdown


def test_ukbench_is_scored_by_the_ns_score_with_a_large_set_for_whitening(tmp_path, monkeypatch):
    monkeypatch.setenv("CBIR_LAB_CACHE", str(tmp_path / "cache"))
    photos = []
    for i in range(6):
        path = tmp_path / f"white{i}.png"
        Image.new("RGB", (40, 30), (40 * i, 255 - 40 * i, 90)).save(path)
        photos.append(path)
    files = ukbench_files()
    with FileServer(files) as server:
        monkeypatch.setenv("CBIR_LAB_MIRROR", server.url)
        result = reproduce("ukbench", tmp_path / "data", max_side=64, dims=(4,), poolings=("SPoC",), progress=False,
                           whitening=ImageSet("six", tuple(photos), "six generated photos"), log=lambda _: None,
                           registry=pinned_registry(files))
    plain, whitened = result.rows
    assert plain.headline == "N-S" and set(plain.scores) == {"N-S", "mAP"}
    assert 1.0 <= plain.scores["N-S"] <= 4.0  # the query itself is always found
    assert plain.interval.low <= plain.scores["N-S"] <= plain.interval.high
    assert whitened.dim == 4 and result.published == ()
    assert "No published figure" in format_markdown(result)


def test_whitening_choices_and_errors(landmarks, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (20, 20), (80 * i, 0, 0)).save(folder / f"p{i}.png")
    from cbir_lab.datasets.image_sets import load_whitening_set

    assert len(load_whitening_set(str(folder))) == 3
    with pytest.raises(ValueError, match="cannot be learned on 'roxford5k' itself"):
        reproduce("roxford5k", whitening="roxford5k")
    with pytest.raises(ValueError, match="unknown whitening set 'nowhere'"):
        load_whitening_set("nowhere")
    with pytest.raises(ValueError, match="reproduce runs roxford5k, rparis6k, holidays, ukbench"):
        reproduce("oxford5k")


def test_cli_reports_a_missing_benchmark_clearly(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CBIR_LAB_DATA", str(tmp_path / "empty"))
    monkeypatch.delenv("CBIR_LAB_MIRROR", raising=False)
    assert main(["reproduce", "--dataset", "roxford5k", "--no-download", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "cbir-lab reproduce: error:" in err and "gnd_roxford5k.pkl" in err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the published table (issue 21)

DIRTORCH = "https://github.com/naver/deep-image-retrieval"
CIRTORCH = "https://github.com/filipradenovic/cnnimageretrieval-pytorch"


def rows(dataset: str, method: str, source_part: str = "", network_part: str = "") -> list[PublishedFigure]:
    return [p for p in PUBLISHED[dataset] if p.method == method and source_part in p.source and network_part in p.network]


def test_every_published_row_has_a_known_status_and_a_confirmed_one_names_a_url():
    assert set(PUBLISHED_STATUSES) == {"confirmed", "confirmed (secondary)", "unverified"}
    for dataset, published in PUBLISHED.items():
        for p in published:
            assert p.status in PUBLISHED_STATUSES, (dataset, p)
            if p.status == "confirmed":  # a source the reader opens: the authors' own repository
                assert p.source.startswith("https://github.com/"), (dataset, p)
    with pytest.raises(ValueError, match="status 'checked' is not one of"):
        PublishedFigure("GeM", "x", {"hard": 1.0}, "p", "s", "checked")
    with pytest.raises(ValueError, match="at least one score"):
        PublishedFigure("GeM", "x", {}, "p", "s", "confirmed")


def test_gordos_r_mac_hard_is_confirmed_on_tolias_et_als_page_and_its_medium_is_unverified():
    for dataset, hard, medium in (("roxford5k", 32.4, 60.9), ("rparis6k", 59.4, 78.9)):
        r_mac = rows(dataset, "R-MAC")
        assert [(p.scores, p.status) for p in r_mac] == [
            ({"hard": hard}, "confirmed (secondary)"), ({"medium": medium}, "unverified")]
        assert "Tolias, Sicre & Jégou, ICLR 2016" in r_mac[0].source and "Gordo" in r_mac[0].protocol
    # no checked row carries a figure that only an unverified source gives
    for dataset, medium in (("roxford5k", 60.9), ("rparis6k", 78.9)):
        assert all(p.status == "unverified" for p in PUBLISHED[dataset] if p.scores.get("medium") == medium)


def test_the_revisited_papers_spoc_and_mac_rows_point_to_each_methods_own_page():
    for dataset in ("roxford5k", "rparis6k"):
        (spoc,) = rows(dataset, "SPoC")
        (mac,) = rows(dataset, "MAC", "Papers with Code")
        assert "Babenko & Lempitsky, ICCV 2015" in spoc.source and "R-[O]-SPoC" in spoc.source
        assert "MAC's own paper (not that of Radenović et al. 2018)" in mac.source and "R-[O]-MAC" in mac.source
        assert spoc.status == mac.status == "confirmed (secondary)"
    assert rows("roxford5k", "SPoC")[0].scores == {"medium": 39.8, "hard": 12.4}
    assert rows("rparis6k", "MAC", "Papers with Code")[0].scores == {"hard": 44.1}


@pytest.mark.parametrize("dataset, method, source, network, scores", [
    # naver/deep-image-retrieval README, "Pre-trained models": ROxford5K (med/hard), RParis6K (med/hard)
    ("roxford5k", "GeM", DIRTORCH, "Resnet101-AP-GeM", {"medium": 67.1, "hard": 42.3}),
    ("rparis6k", "GeM", DIRTORCH, "Resnet101-AP-GeM", {"medium": 80.3, "hard": 60.9}),
    ("roxford5k", "MAC", DIRTORCH, "Resnet101-TL-MAC", {"medium": 63.3, "hard": 35.7}),
    ("rparis6k", "MAC", DIRTORCH, "Resnet101-TL-MAC", {"medium": 76.6, "hard": 55.5}),
    # filipradenovic/cnnimageretrieval-pytorch README: ROxf (M), RPar (M), ROxf (H), RPar (H)
    ("roxford5k", "GeM", CIRTORCH, "(PyTorch)", {"medium": 65.4, "hard": 40.1}),
    ("rparis6k", "GeM", CIRTORCH, "(PyTorch)", {"medium": 76.7, "hard": 55.2}),
    ("roxford5k", "GeM", CIRTORCH, "rSfM120k-tl-resnet101-gem-w", {"medium": 67.8, "hard": 41.7}),
    ("rparis6k", "GeM", CIRTORCH, "rSfM120k-tl-resnet101-gem-w", {"medium": 77.6, "hard": 56.3}),
    ("roxford5k", "GeM", CIRTORCH, "gl18-tl-resnet101-gem-w", {"medium": 67.3, "hard": 44.3}),
    ("rparis6k", "GeM", CIRTORCH, "gl18-tl-resnet101-gem-w", {"medium": 80.6, "hard": 61.5}),
])
def test_the_rows_read_from_the_authors_readmes(dataset, method, source, network, scores):
    (row,) = rows(dataset, method, source, network)
    assert row.scores == scores and row.status == "confirmed"


def test_the_whitening_of_the_fine_tuned_networks_is_credited_to_their_training_set():
    doc = cbir_lab.reproduce.__doc__
    assert "Radenović et al. 2018's fine-tuned networks learn theirs on retrieval-SfM-120k" in doc
    assert "(Tolias et al. 2016, Radenović et al. 2018)" not in doc
    for dataset in ("roxford5k", "rparis6k"):
        for row in rows(dataset, "GeM", CIRTORCH, "2048-D"):
            assert "whitening learned on retrieval-SfM-120k" in row.protocol
        for row in rows(dataset, "GeM", DIRTORCH) + rows(dataset, "MAC", DIRTORCH):
            assert "whitening learned on Landmarks-clean" in row.protocol


def test_the_markdown_report_shows_each_rows_status_and_says_what_it_means():
    interval = Interval(0.4, 0.3, 0.5, 0.95, 2, 100)
    computed = ReproducedRow("GeM", 1280, False, {"easy": 0.5, "medium": 0.4, "hard": 0.2}, "medium", interval)
    report = format_markdown(Reproduction("rparis6k", "summary", "efficientnet_lite0", 1024, "roxford5k",
                                          [computed], PUBLISHED["rparis6k"]))
    assert "| R-MAC | ResNet101, 2048-D | — | 78.9 | — |" in report and report.count("| unverified |") == 1
    assert "| R-MAC | ResNet101, 2048-D | — | — | 59.4 |" in report
    assert "*unverified*: the figures circulate, but the course found them in no source it could open" in report
    rows_csv = [r for r in csv.DictReader(io.StringIO(format_csv(Reproduction(
        "rparis6k", "summary", "efficientnet_lite0", 1024, "roxford5k", [computed], PUBLISHED["rparis6k"]))))
        if r["kind"] == "published"]
    assert [r["status"] for r in rows_csv].count("unverified") == 1
    assert {r["source"] for r in rows_csv if r["network"] == "ResNet101, Resnet101-AP-GeM"} == {
        "https://github.com/naver/deep-image-retrieval (README, 'Pre-trained models')"}
