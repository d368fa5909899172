"""The benchmark runner's pure parts: statistics, formatting, and writing RESULTS.md (no timings asserted)."""

import json

import numpy as np
import pytest

# benchmarks/ is a folder of the repository, not an installed package: import it from the checkout.

from benchmarks.report import (
    Result,
    format_table,
    judge,
    load_store,
    mark_under_load,
    merge_sections,
    render_markdown,
    wait_for_quiet,
    write_results,
)
from benchmarks.timing import (
    Stats,
    format_rate,
    format_ratio,
    format_seconds,
    format_spread,
    summarize,
    time_pair,
)

MACHINE = {"CPU": "test CPU", "cores": "2"}


def test_summarize_gives_median_quartiles_and_range():
    stats = summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (stats.median, stats.q1, stats.q3, stats.minimum, stats.maximum, stats.n) == (3.0, 2.0, 4.0, 1.0, 5.0, 5)
    even = summarize([1.0, 2.0, 3.0, 4.0])  # linear interpolation: q1 = 1 + 0.75, median 2.5, q3 = 3.25
    assert (even.q1, even.median, even.q3) == (1.75, 2.5, 3.25)
    assert summarize([7.0]) == Stats(7.0, 7.0, 7.0, 7.0, 7.0, 1)


def test_summarize_rejects_empty_and_non_finite_samples():
    with pytest.raises(ValueError, match="at least one sample"):
        summarize([])
    with pytest.raises(ValueError, match="finite"):
        summarize([1.0, float("nan")])


def test_scaled_stats_divide_every_figure():
    assert summarize([2.0, 4.0, 6.0]).scaled(0.5) == Stats(2.0, 1.5, 2.5, 1.0, 3.0, 3)
    with pytest.raises(ValueError, match="factor"):
        summarize([1.0]).scaled(0)


def test_time_pair_alternates_and_takes_the_ratio_run_by_run():
    calls = []
    a_stats, b_stats, ratio = time_pair(lambda: calls.append("a"), lambda: calls.append("b"), repeat=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then a-first, b-first, a-first
    assert a_stats.n == b_stats.n == ratio.n == 3


def test_formats_by_hand():
    assert format_seconds(0.00085) == "850 µs"
    assert format_seconds(0.0123) == "12.3 ms"
    assert format_seconds(0.25) == "250 ms"
    assert format_seconds(4.561) == "4.56 s"
    assert format_seconds(187) == "3 min 07 s"
    assert format_ratio(1.0712) == "1.07×"
    assert format_rate(41.234, "img") == "41.2 img/s"
    assert format_spread(summarize([1.0, 2.0, 3.0])) == "IQR 1.5 s–2.5 s; range 1 s–3 s; n=3"
    assert format_spread(summarize([1.0])) == "n=1"
    with pytest.raises(ValueError):
        format_ratio(float("inf"))
    with pytest.raises(ValueError):
        format_seconds(-1.0)


def test_judge_and_result_validation():
    assert judge(1.15, 1.15) == "met" and judge(1.16, 1.15) == "missed"
    with pytest.raises(ValueError, match="unknown section"):
        Result("gpu", "x", "1 s")
    with pytest.raises(ValueError, match="unknown status"):
        Result("search", "x", "1 s", status="fine")


def test_merge_keeps_sections_not_run_and_orders_them():
    first = merge_sections({}, MACHINE, {"search": [Result("search", "rank", "1 s")]}, quick=False,
                           command="python -m benchmarks", measured_at="T1")
    second = merge_sections(first, MACHINE, {"extraction": [Result("extraction", "ratio", "1.05×")]}, quick=True,
                            command="python -m benchmarks --only extraction --quick", measured_at="T2")
    assert list(second["sections"]) == ["extraction", "search"]
    assert second["sections"]["search"]["measured_at"] == "T1"
    assert second["sections"]["extraction"]["quick"] is True


def test_results_markdown_shows_machine_figures_targets_and_notes(tmp_path):
    results = [
        Result("search", "rank / faiss", "1.20×", "n=3", "≤ 1.5×", "met"),
        Result("search", "a | piped name", "2 s", "", "< 1 s", "missed", note="because of load"),
    ]
    store = merge_sections({}, MACHINE, {"search": results}, quick=False, command="python -m benchmarks", measured_at="T")
    write_results(store, tmp_path / "RESULTS.md", tmp_path / "results.json")
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "| CPU | test CPU |" in text
    assert "| rank / faiss | 1.20× | n=3 | ≤ 1.5× | met |" in text
    assert "| a \\| piped name [1] | 2 s |  | < 1 s | **missed** |" in text
    assert "[1] because of load" in text
    assert "Measured T (full run: `python -m benchmarks`)" in text
    assert load_store(tmp_path / "results.json") == json.loads(json.dumps(store))
    assert render_markdown(load_store(tmp_path / "results.json")) == text


def test_a_missing_or_broken_store_reads_as_empty(tmp_path):
    assert load_store(tmp_path / "none.json") == {}
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert load_store(tmp_path / "bad.json") == {}


def test_console_table_aligns_columns():
    lines = format_table([Result("search", "rank", "1 s", target="≤ 2 s", status="met")]).splitlines()
    assert lines[0].split() == ["section", "figure", "median", "spread", "target", "status"]
    assert lines[2].split() == ["search", "rank", "1", "s", "≤", "2", "s", "met"]


def test_machine_facts_shared_by_all_sections_are_listed_once_and_the_load_per_section():
    first = merge_sections({}, {"CPU": "x", "load": "1.0"}, {"search": [Result("search", "a", "1 s")]},
                           quick=False, command="c", measured_at="T1")
    both = merge_sections(first, {"CPU": "x", "load": "3.0"}, {"course": [Result("course", "b", "2 s")]},
                          quick=False, command="c", measured_at="T2")
    text = render_markdown(both)
    assert text.count("| CPU | x |") == 1 and "| load |" not in text
    assert "load: 1.0." in text and "load: 3.0." in text


def test_wait_for_quiet_waits_until_the_load_falls_and_gives_up_after_the_limit():
    loads = iter([1.6, 1.2, 0.8])
    slept = []
    assert wait_for_quiet(60, load=lambda: next(loads), sleep=slept.append, cores=2, poll=5) == (True, 0.8, 10.0)
    assert slept == [5, 5]  # 1.6 and 1.2 are not below 0.5 × 2 cores
    assert wait_for_quiet(12, load=lambda: 3.0, sleep=lambda s: None, cores=2, poll=5) == (False, 3.0, 15.0)


def test_a_section_under_load_reports_nothing_as_met():
    results = [Result("search", "a", "1 s", target="≤ 2 s", status="met"),
               Result("search", "b", "1 s", status="info"),
               Result("search", "c", "3 s", target="≤ 2 s", status="missed", note="why")]
    marked = mark_under_load(results, 1.5, 1.7, 1.0)
    assert [r.status for r in marked] == ["measured under load", "info", "measured under load"]
    assert marked[2].note.startswith("why measured under load (1-minute load average 1.50 before, 1.70 after")
    markdown = render_markdown(merge_sections({}, {"CPU": "x"}, {"search": marked}, False, "cmd",
                                              loads={"search": "1.50 before, 1.70 after (NOT quiet)"}))
    assert "*under load*" in markdown and "met" not in markdown.split("| Figure")[1]
