"""``python -m benchmarks``: run the benchmark sections, print a table, rewrite RESULTS.md.

Options:
    --only extraction,search   run some sections (default: all)
    --quick                    fewer runs and smaller extrapolation bases
    --no-write                 print only; leave RESULTS.md and results.json as they are
    --max-wait SECONDS         before each section, wait this long at most for a quiet machine (default 300)

Before each section the runner waits for the 1-minute load average to fall below
0.5 per core; a section measured above it is marked "measured under load", and
none of its figures is reported as met.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

from benchmarks.report import (
    QUIET_LOAD_PER_CORE,
    SECTIONS,
    Result,
    format_table,
    load_store,
    machine_info,
    mark_under_load,
    merge_sections,
    wait_for_quiet,
    write_results,
)
from benchmarks.timing import format_seconds

__all__ = ["main"]

HERE = Path(__file__).resolve().parent


def _parse_sections(text: str | None) -> list[str]:
    if not text:
        return list(SECTIONS)
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise SystemExit(f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return [n for n in SECTIONS if n in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated sections among {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="fewer runs (figures are noisier)")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite RESULTS.md / results.json")
    parser.add_argument("--max-wait", type=float, default=300.0, help="seconds to wait for a quiet machine per section")
    args = parser.parse_args(argv)
    sections = _parse_sections(args.only)

    machine = machine_info()
    print("\n".join(f"{k}: {v}" for k, v in machine.items()), flush=True)
    fresh: dict[str, list[Result]] = {}
    loads: dict[str, str] = {}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    for name in sections:
        print(f"\n== {name} ==", flush=True)
        quiet, before, waited = wait_for_quiet(args.max_wait)
        print(f"(load {before:.2f} after waiting {waited:.0f} s: {'quiet' if quiet else 'NOT quiet'})", flush=True)
        start = time.perf_counter()
        try:
            fresh[name] = importlib.import_module(f"benchmarks.{name}").run(quick=args.quick)
        except Exception as err:  # one broken section must not lose the others' figures
            traceback.print_exc()
            fresh[name] = [Result(name, f"{name} section", "—", "", "", "not measured",
                                  f"the section failed: {type(err).__name__}: {err}")]
        after = os.getloadavg()[0]
        if not quiet:
            fresh[name] = mark_under_load(fresh[name], before, after, QUIET_LOAD_PER_CORE * cores)
        loads[name] = f"{before:.2f} before, {after:.2f} after" + ("" if quiet else " (NOT quiet)")
        print(format_table(fresh[name]))
        print(f"({name}: {format_seconds(time.perf_counter() - start)})", flush=True)

    if not args.no_write:
        command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        store = merge_sections(load_store(HERE / "results.json"), machine, fresh, args.quick, command.strip(), loads=loads)
        write_results(store, HERE / "RESULTS.md", HERE / "results.json")
        print(f"\nwrote {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
