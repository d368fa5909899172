"""Tests for cbir_lab.viz.retrieval: contribution maps (exact decompositions) and figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from cbir_lab.evaluation import Interval
from cbir_lab.studies.explain import Contribution
from cbir_lab.studies.methods import MethodScore
from cbir_lab.viz.ranking import plot_ranking
from cbir_lab.viz.retrieval import (
    format_scores,
    plot_contributions,
    plot_method_comparison,
    plot_precision_recall,
    plot_thumbnail_grid,
)


def test_plot_contributions_returns_a_figure():
    a = Image.new("RGB", (64, 48), (200, 30, 30))
    b = Image.new("RGB", (48, 64), (30, 30, 200))
    c = Contribution(np.array([[0.2, -0.1], [0.3, 0.1]]), 0.0, 0.5, "SPoC")
    fig = plot_contributions(a, b, c, c, status="correct")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 5  # four panels and the colour bar
    assert "0.500" in fig._suptitle.get_text()


def test_plot_precision_recall_labels_the_ap():
    fig = plot_precision_recall({"SPoC": (np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]))}, {"SPoC": 0.79})
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["SPoC (AP 0.790)"]
    with pytest.raises(ValueError):
        plot_precision_recall({})


def test_plot_thumbnail_grid_layout():
    images = [Image.new("RGB", (20, 10), (i * 40, 0, 0)) for i in range(5)]
    fig = plot_thumbnail_grid(images, labels=[f"q{i}" for i in range(5)], statuses=["correct", None, "wrong", None, "junk"], ncols=3)
    assert len(fig.axes) == 6  # 2 rows × 3 columns, the last one hidden
    assert [ax.get_title() for ax in fig.axes[:5]] == ["q0", "q1", "q2", "q3", "q4"]
    with pytest.raises(ValueError, match="labels"):
        plot_thumbnail_grid(images, labels=["a"])


def test_plot_method_comparison_draws_one_bar_per_row():
    rows = [
        MethodScore("SPoC", False, False, 8, {"mAP": 0.5}),
        MethodScore("SPoC", True, False, 8, {"mAP": 0.6}),
        MethodScore("MAC", False, False, 8, {"mAP": 0.4}),
        MethodScore("MAC", True, False, 8, {"mAP": 0.45}),
    ]
    fig = plot_method_comparison(rows)
    heights = sorted(round(p.get_height(), 2) for p in fig.axes[0].patches)
    assert heights == [0.4, 0.45, 0.5, 0.6]
    with pytest.raises(ValueError, match="no score"):
        plot_method_comparison(rows, score="N-S")


def test_format_scores_table_and_intervals():
    rows = [MethodScore("SPoC", False, False, 8, {"mAP": 0.5}), MethodScore("MAC", False, True, 8, {"mAP": 0.625})]
    assert format_scores(rows).splitlines() == [
        "method  whitening  QE    dim  mAP",
        "------  ---------  ----  ---  -----",
        "SPoC    no         -     8    0.500",
        "MAC     no         α-QE  8    0.625",
    ]
    table = format_scores(rows, digits=2, intervals={"MAC, α-QE": Interval(0.125, -0.05, 0.3, 0.95, 25, 100)})
    assert table.splitlines()[2].endswith("reference")
    assert table.splitlines()[3].endswith("+0.12 [-0.05, +0.30]")
    versus = format_scores(rows, digits=2, intervals={"MAC, α-QE": Interval(0.125, -0.05, 0.3, 0.95, 25, 100)},
                           versus="no QE").splitlines()
    assert versus[0].endswith("Δ vs no QE [95 % CI, G = 25 queries]")
    assert versus[2].endswith("-") and not versus[2].endswith("reference")
    assert format_scores([]) == "(no results)"


def test_plot_ranking_frames_each_result_by_status():
    images = [Image.new("RGB", (20, 10), (i * 60, 0, 0)) for i in range(3)]
    result = type("Result", (), {"indices": np.array([2, 0]), "scores": np.array([0.9, 0.5]),
                                 "statuses": ("correct", "wrong")})()
    fig = plot_ranking(images[1], images, result, title="t")
    assert [ax.get_title() for ax in fig.axes] == ["query", "#1  0.90", "#2  0.50"]
    assert fig.axes[1].spines["top"].get_edgecolor()[:3] == pytest.approx((0x2c / 255, 0xa0 / 255, 0x2c / 255))


def test_visual_words_view_and_tradeoff_picture_are_pngs_with_captions():
    from cbir_lab.scale import IndexMeasure
    from cbir_lab.viz import TradeoffPicture, visual_words_view, word_colours

    words = np.array([[0, 0, 1], [0, 0, 0]])
    blocks = np.array([[3.0, -1.0], [0.5, 0.5]])
    png, caption = visual_words_view(np.zeros((40, 60, 3), np.uint8), words, blocks, "raw sums", side=80)
    assert png.startswith(b"\x89PNG")
    assert caption.startswith("k = 2: the 6 cells fall in 2 words; the largest holds 5 cells (83%)")
    assert word_colours(3).shape == (3, 3) and np.array_equal(word_colours(3), word_colours(3))
    measures = [IndexMeasure("exact (Flat)", "flat", 0, 0, 32, 1.0, 1.0, 0.7),
                IndexMeasure("IVF-Flat", "ivf", 0, 4, 40, 0.8, 0.1, 0.6)]
    picture = TradeoffPicture(measures, k=10)
    assert len(picture.positions) == 2 and picture.png(1).startswith(b"\x89PNG")
    x_exact, _ = picture.positions[0]
    x_ivf, y_ivf = picture.positions[1]
    assert x_ivf < x_exact  # faster: further left on the time axis
