"""cbir_lab.later_methods (lesson 12's sourced figures) and its self-check (cbir_lab.exercises.later)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cbir_lab.exercises import check_like_for_like_gain
from cbir_lab.later_methods import (
    LATER_METHODS,
    LATER_SCORES,
    LATER_STATUSES,
    RGLDV2_REMOVED,
    TRAINING_OVERLAP,
    LaterFigure,
    OverlapFinding,
    comparable,
    format_later_table,
    format_overlap,
    later_figures,
    like_for_like_gain,
    plot_hard_map,
)


def toy(**changes) -> LaterFigure:
    base = LaterFigure("toy", 2020, "global descriptor", "R50", "set A", "global only", "roxford5k", "none",
                       {"medium": 60.0, "hard": 30.0}, "https://example.org/toy", "confirmed")
    return replace(base, **changes)


# ---------------------------------------------------------------- every row: a source, a status, a setting, percentages


@pytest.mark.parametrize("row", LATER_METHODS, ids=lambda r: f"{r.method}-{r.benchmark}-{r.distractors}")
def test_every_row_has_a_source_url_a_status_a_setting_and_percentages(row):
    assert row.source.startswith("https://")
    assert row.status in LATER_STATUSES
    assert row.setting.strip() and row.training.strip() and row.network.strip()
    assert row.scores and set(row.scores) <= set(LATER_SCORES)
    assert all(0.0 <= v <= 100.0 for v in row.scores.values())
    assert 2015 <= row.year <= 2026


def test_a_repository_source_names_the_commit_read():
    for row in LATER_METHODS:
        if row.source.startswith("https://github.com/") and "/issues/" not in row.source:
            assert "/blob/" in row.source and len(row.source.split("/blob/")[1].split("/")[0]) == 40, row.source


def test_the_rows_are_the_figures_the_sources_print():
    # spot checks against the sources as read (cirtorch README, DELG instructions, DINOv2's model card)
    gem = later_figures("roxford5k")[0]
    assert gem.method == "GeM (fine-tuned)" and gem.scores == {"medium": 65.4, "hard": 40.1}
    dino = {r.network.split(",")[0]: r.scores["hard"] for r in LATER_METHODS if r.method == "DINOv2"}
    assert dino == {"ViT-S/14": 43.2, "ViT-B/14": 49.5, "ViT-L/14": 54.0, "ViT-g/14": 52.3}


@pytest.mark.parametrize("change, message", [
    ({"status": "verified"}, "status"),
    ({"benchmark": "oxford5k"}, "benchmark"),
    ({"distractors": "100k"}, "distractors"),
    ({"family": "other"}, "family"),
    ({"scores": {}}, "at least one score"),
    ({"scores": {"medium": 0.65}, "status": "confirmed"}, None),  # a fraction is still in [0, 100]: allowed
    ({"scores": {"medium": 101.0}}, r"\[0, 100\]"),
    ({"scores": {"mAP": 50.0}}, "score 'mAP'"),
    ({"setting": " "}, "setting"),
    ({"source": "somewhere"}, "URL"),
])
def test_a_bad_row_is_refused_with_a_message_naming_what_is_wrong(change, message):
    if message is None:
        toy(**change)
        return
    with pytest.raises(ValueError, match=message):
        toy(**change)


def test_later_figures_filters_and_refuses_unknown_names():
    hard_oxford = later_figures("roxford5k", "hard")
    assert hard_oxford and all(r.benchmark == "roxford5k" and "hard" in r.scores for r in hard_oxford)
    assert all(r.distractors == "+1M" for r in later_figures(distractors="+1M"))
    with pytest.raises(ValueError, match="benchmark"):
        later_figures("oxford5k")
    with pytest.raises(ValueError, match="score"):
        later_figures(score="mAP")


# ---------------------------------------------------------------- comparable rows and the gain between them


def test_the_gain_is_after_minus_before_on_the_shared_scores():
    before, after = toy(), toy(scores={"easy": 90.0, "medium": 66.5, "hard": 38.25})
    assert like_for_like_gain(before, after) == {"medium": 6.5, "hard": 8.25}


@pytest.mark.parametrize("change, reason", [
    ({"benchmark": "rparis6k"}, "different benchmarks"),
    ({"distractors": "+1M"}, "different distractors"),
    ({"distractors": "not stated"}, "not stated"),
    ({"training": "set B"}, "training"),
])
def test_rows_that_differ_in_more_than_the_method_are_not_compared(change, reason):
    ok, why = comparable(toy(), toy(**change))
    assert not ok and reason in why
    with pytest.raises(ValueError, match="not comparable"):
        like_for_like_gain(toy(), toy(**change))


def test_the_published_pairs_give_the_gains_a_reader_can_check_by_hand():
    delg, delg_gv = (r for r in LATER_METHODS if r.method.startswith("DELG"))
    assert like_for_like_gain(delg, delg_gv) == pytest.approx({"medium": 75.42 - 69.71, "hard": 53.72 - 45.11})
    dolg, retest = (r for r in later_figures("roxford5k", distractors="none") if r.method.startswith("DOLG"))
    assert like_for_like_gain(dolg, retest) == pytest.approx({"medium": 80.12 - 82.37, "hard": 60.10 - 64.93})
    dino = [r for r in LATER_METHODS if r.method == "DINOv2"]
    assert not comparable(dino[0], dino[1])[0]  # distractors not stated: no gain is quoted


# ---------------------------------------------------------------- the overlap, the table, the figure


def test_the_overlap_shares_are_the_counts_over_seventy():
    shares = {f.benchmark: f.share for f in TRAINING_OVERLAP}
    assert shares == pytest.approx({"roxford5k": 36 / 70, "rparis6k": 38 / 70})
    text = format_overlap()
    assert "36 of its 70 queries" in text and "out of 70" in text and "(51%)" in text and "(54%)" in text and "1,565 images" in text
    assert RGLDV2_REMOVED == {"images": 1565, "classes": 17}
    with pytest.raises(ValueError, match="overlapping"):
        OverlapFinding("roxford5k", "x", 71, 70, "as written", "https://example.org")


def test_the_table_lists_every_row_with_its_status():
    text = format_later_table(settings=True)
    assert text.count("\n") + 1 == 2 + 2 * len(LATER_METHODS)
    assert "re-measured by others" in text and "trained on: LVD-142M" in text
    assert "—" in format_later_table([toy(scores={"hard": 30.0})])


def test_the_figure_puts_the_course_apart():
    import matplotlib

    matplotlib.use("Agg")
    fig = plot_hard_map(course=("course, slice", 56.5))
    assert len(fig.axes) == 2 and "not comparable" in fig.axes[1].get_xlabel()
    n_bars = len(later_figures("roxford5k", "hard"))
    assert len(fig.axes[0].get_yticklabels()) == n_bars
    with pytest.raises(ValueError, match="Hard"):
        plot_hard_map([toy(scores={"medium": 60.0})])


# ---------------------------------------------------------------- the self-check


def test_the_check_passes_the_package_and_names_each_slip():
    assert check_like_for_like_gain(like_for_like_gain, verbose=False).passed

    def swapped(before, after):
        return like_for_like_gain(after, before)

    def every_key(before, after):
        return {k: after.scores[k] - before.scores.get(k, 0.0) for k in after.scores}

    def no_refusal(before, after):
        return {k: after.scores[k] - before.scores[k] for k in before.scores}

    def stub(before, after):
        raise NotImplementedError()

    for fn, slip in ((swapped, "sign"), (every_key, "keys"), (no_refusal, "compared"), (stub, "not_implemented")):
        result = check_like_for_like_gain(fn, verbose=False)
        assert not result.passed and result.failures == (slip,), (fn.__name__, result.message)
