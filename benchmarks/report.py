"""Reporting: the machine, one row per figure, the console table and ``RESULTS.md``.

Results are kept per section in ``results.json`` so that running one section
(``--only search``) rewrites ``RESULTS.md`` with the fresh figures of that
section and the last figures of the others, each stamped with when it ran.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

__all__ = [
    "SECTIONS",
    "Result",
    "judge",
    "machine_info",
    "format_table",
    "merge_sections",
    "render_markdown",
    "write_results",
    "load_store",
    "wait_for_quiet",
    "mark_under_load",
]

#: The sections, in the order the runner runs and reports them.
SECTIONS = ("extraction", "interaction", "search", "collection", "course")

STATUSES = ("met", "missed", "info", "not measured", "measured under load")

#: A section is measured on a quiet machine: a 1-minute load average below this, per core.
QUIET_LOAD_PER_CORE = 0.5


@dataclass(frozen=True)
class Result:
    """One figure of a section.

    Attributes:
        section: one of :data:`SECTIONS`.
        figure: what was measured, with its conditions.
        value: the median, formatted with its unit.
        spread: quartiles / range / number of runs, formatted ("" when one run).
        target: the target ("≤ 1.15×"), or "" when the figure is for information.
        status: ``"met"``, ``"missed"``, ``"info"`` or ``"not measured"``.
        note: why a figure is what it is (optional).
    """

    section: str
    figure: str
    value: str
    spread: str = ""
    target: str = ""
    status: str = "info"
    note: str = ""

    def __post_init__(self) -> None:
        if self.section not in SECTIONS:
            raise ValueError(f"unknown section {self.section!r}; use one of {SECTIONS}")
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; use one of {STATUSES}")


def wait_for_quiet(max_wait: float = 300.0, per_core: float = QUIET_LOAD_PER_CORE, poll: float = 5.0,
                   load=None, sleep=time.sleep, cores: int | None = None) -> tuple[bool, float, float]:
    """Wait until the 1-minute load average is below ``per_core`` × cores, for at most ``max_wait`` seconds.

    A benchmark taken beside other work misleads (a run at load 6 once made ``rank``
    look twice as fast as faiss, which it is not on a quiet machine).

    Args:
        max_wait: the longest wait, in seconds.
        per_core: the quiet threshold per core.
        poll: seconds between looks.
        load, sleep, cores: how to read the load, wait and count cores (tests replace them).

    Returns:
        (quiet, the load when the wait ended, seconds waited).
    """
    load = load or (lambda: os.getloadavg()[0])
    cores = cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    threshold = per_core * cores
    waited = 0.0
    while True:
        now = load()
        if now < threshold:
            return True, now, waited
        if waited >= max_wait:
            return False, now, waited
        sleep(poll)
        waited += poll


def mark_under_load(results: list[Result], load_before: float, load_after: float, threshold: float) -> list[Result]:
    """The results of a section measured under load: no figure of it is reported as met or missed."""
    note = (f"measured under load (1-minute load average {load_before:.2f} before, {load_after:.2f} after; "
            f"quiet means below {threshold:.2f}): not comparable with a quiet run")
    return [replace(r, status="measured under load", note=(r.note + " " if r.note else "") + note)
            if r.status in ("met", "missed") else r for r in results]


def judge(value: float, limit: float) -> str:
    """``"met"`` when value ≤ limit, else ``"missed"``."""
    return "met" if value <= limit else "missed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def machine_info() -> dict[str, str]:
    """What the figures depend on: CPU, cores, memory, library versions, thread settings, load."""
    import numpy as np
    import torch

    try:
        import faiss

        faiss_version = f"{faiss.__version__} ({faiss.omp_get_max_threads()} OpenMP threads)"
    except ImportError:
        faiss_version = "not installed"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return {
        "CPU": _cpu_model(),
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "memory": _memory_gib(),
        "OS": platform.platform(),
        "Python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch threads": f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op",
        "numpy": np.__version__,
        "faiss": faiss_version,
        "load average (1, 5, 15 min) at start": load,
    }


def format_table(results: list[Result]) -> str:
    """A plain-text table of results, for the console."""
    header = ["section", "figure", "median", "spread", "target", "status"]
    rows = [[r.section, r.figure, r.value, r.spread, r.target, r.status] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(row) for row in rows])


def merge_sections(store: dict, machine: dict[str, str], section_results: dict[str, list[Result]],
                   quick: bool, command: str, measured_at: str | None = None,
                   loads: dict[str, str] | None = None) -> dict:
    """A new store: ``store``'s sections, with those in ``section_results`` replaced.

    Args:
        store: the previous contents of ``results.json`` (``{}`` if none).
        machine: from :func:`machine_info`.
        section_results: section name → its fresh results.
        quick: whether this run used ``--quick``.
        command: the command line, recorded with each section.
        measured_at: ISO time stamp (default: now, UTC).
        loads: section name → its 1-minute load average before and after it ran.

    Returns:
        ``{"sections": {name: {"measured_at", "quick", "command", "machine", "results"}}}``.
    """
    stamp = measured_at or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = dict(store.get("sections", {}))
    for name, results in section_results.items():
        if name not in SECTIONS:
            raise ValueError(f"unknown section {name!r}")
        own_machine = dict(machine)
        if loads and name in loads:
            own_machine["load average (1 min) around the section"] = loads[name]
        sections[name] = {
            "measured_at": stamp,
            "quick": quick,
            "command": command,
            "machine": own_machine,
            "results": [asdict(r) for r in results],
        }
    return {"sections": {name: sections[name] for name in SECTIONS if name in sections}}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(store: dict) -> str:
    """``RESULTS.md``: per section, when and how it ran, then its figures with their targets."""
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m benchmarks` (see `benchmarks/__init__.py`); do not edit by hand.",
        "Each figure is the median of the runs after a warm-up; the spread is the interquartile",
        "range (IQR), the range (min–max) and the number of runs n. A ratio is measured side by",
        "side: the two sides alternate in one loop and the ratio is taken run by run.",
        "",
    ]
    sections = store.get("sections", {})
    # What every section shares (CPU, versions) goes in one table; what differs (the load) per section.
    machines = [s["machine"] for s in sections.values()]
    shared = {k: v for k, v in machines[0].items() if all(m.get(k) == v for m in machines)} if machines else {}
    if shared:
        lines += ["## Machine", "", "| | |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in shared.items()]
        lines.append("")
    if not sections:
        lines.append("(no section has been run yet)")
    for name in SECTIONS:
        if name not in sections:
            continue
        section = sections[name]
        mode = "quick" if section["quick"] else "full"
        lines += [f"## {name.capitalize()}", "",
                  f"Measured {section['measured_at']} ({mode} run: `{section['command']}`).", ""]
        own = {k: v for k, v in section["machine"].items() if k not in shared}
        if own:
            lines += ["; ".join(f"{k}: {v}" for k, v in own.items()) + ".", ""]
        lines += ["| Figure | Median | Spread | Target | Status |", "|---|---|---|---|---|"]
        notes = []
        for raw in section["results"]:
            r = Result(**raw)
            status = {"met": "met", "missed": "**missed**", "measured under load": "*under load*"}.get(r.status, r.status)
            figure = r.figure
            if r.note:
                notes.append(r.note)
                figure += f" [{len(notes)}]"
            lines.append(f"| {_cell(figure)} | {_cell(r.value)} | {_cell(r.spread)} | {_cell(r.target)} | {status} |")
        if notes:
            lines.append("")
            lines += [f"[{i}] {_cell(note)}  " for i, note in enumerate(notes, 1)]
            lines[-1] = lines[-1].rstrip()
        lines.append("")
    return "\n".join(lines)


def load_store(json_path: str | os.PathLike) -> dict:
    """The previous ``results.json``, or ``{}`` when there is none or it is unreadable."""
    path = Path(json_path)
    if not path.exists():
        return {}
    try:
        store = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return store if isinstance(store, dict) else {}


def write_results(store: dict, markdown_path: str | os.PathLike, json_path: str | os.PathLike) -> None:
    """Write ``results.json`` and the ``RESULTS.md`` rendered from it (each replaced atomically)."""
    from cbir_lab.paths import atomic_write

    atomic_write(json_path, json.dumps(store, indent=1, ensure_ascii=False) + "\n")
    atomic_write(markdown_path, render_markdown(store))
