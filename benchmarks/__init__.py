"""cbir-lab's benchmarks: how fast extraction, interaction, search and the course run.

Run from the repository root::

    python -m benchmarks                      # every section (the course takes ~15 min)
    python -m benchmarks --only extraction,search --quick

Each figure is the median of several runs after a warm-up, with its spread;
each comparison is a ratio of runs interleaved in the same process. The
runner prints a table and rewrites ``benchmarks/RESULTS.md`` (from
``benchmarks/results.json``, which keeps the sections not run this time).

Modules: :mod:`~benchmarks.timing` (statistics), :mod:`~benchmarks.report`
(machine, table, RESULTS.md), and one per area: :mod:`~benchmarks.extraction`,
:mod:`~benchmarks.interaction`, :mod:`~benchmarks.search`, :mod:`~benchmarks.course`.
"""

__all__: list[str] = []
