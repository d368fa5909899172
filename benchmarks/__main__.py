"""``python -m benchmarks``: run the benchmark sections, print a table, rewrite RESULTS.md.

Options:
    --only extraction,search   run some sections (default: all)
    --quick                    fewer runs and smaller extrapolation bases
    --no-write                 print only; leave RESULTS.md and results.json as they are
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import time
import traceback
from pathlib import Path

from benchmarks.report import SECTIONS, Result, format_table, load_store, machine_info, merge_sections, write_results
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
    args = parser.parse_args(argv)
    sections = _parse_sections(args.only)

    machine = machine_info()
    print("\n".join(f"{k}: {v}" for k, v in machine.items()), flush=True)
    fresh: dict[str, list[Result]] = {}
    for name in sections:
        print(f"\n== {name} ==", flush=True)
        start = time.perf_counter()
        try:
            fresh[name] = importlib.import_module(f"benchmarks.{name}").run(quick=args.quick)
        except Exception as err:  # one broken section must not lose the others' figures
            traceback.print_exc()
            fresh[name] = [Result(name, f"{name} section", "—", "", "", "not measured",
                                  f"the section failed: {type(err).__name__}: {err}")]
        print(format_table(fresh[name]))
        print(f"({name}: {format_seconds(time.perf_counter() - start)})", flush=True)

    if not args.no_write:
        command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        store = merge_sections(load_store(HERE / "results.json"), machine, fresh, args.quick, command.strip())
        write_results(store, HERE / "RESULTS.md", HERE / "results.json")
        print(f"\nwrote {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
