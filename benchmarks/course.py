"""Course benchmark: the whole nbval suite and ``cbir-lab demo``, from a cold and a warm cache.

Cold means a first run after installing: empty ``CBIR_LAB_CACHE`` (feature
maps) *and* empty ``CBIR_LAB_DATA`` (so the embedded dataset is generated
too), in a temporary folder. Warm is the next run with the same folders. Each
command runs in a subprocess with this interpreter (``sys.executable -m …``).
A cold run happens once per benchmark run (it takes minutes); the warm demo is
repeated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import Result, judge
from benchmarks.timing import format_seconds, format_spread, summarize

__all__ = ["ROOT", "timed_subprocess", "run"]

ROOT = Path(__file__).resolve().parents[1]
NBVAL_COLD_TARGET = 6 * 60.0
DEMO_COLD_TARGET = 2 * 60.0


def timed_subprocess(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    """Run a command; returns (wall seconds, exit status, the last lines of its output)."""
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
    return seconds, proc.returncode, tail


def _env(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CBIR_LAB_CACHE=str(folder / "cache"), CBIR_LAB_DATA=str(folder / "data"), MPLBACKEND="Agg")
    return env


def _outcome(code: int, tail: str) -> str:
    return "" if code == 0 else f"exit status {code}: {tail}"


def _nbval(folder: Path, notebooks: list[Path]) -> list[Result]:
    env = _env(folder)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
            *[str(nb.relative_to(ROOT)) for nb in notebooks]]
    names = ", ".join(nb.name for nb in notebooks)
    results = []
    for label in ("cold", "warm"):
        seconds, code, tail = timed_subprocess(args, env, ROOT)
        target = f"≤ {format_seconds(NBVAL_COLD_TARGET)}" if label == "cold" else ""
        status = judge(seconds, NBVAL_COLD_TARGET) if label == "cold" else "info"
        if code != 0:
            status = "missed" if label == "cold" else "info"
        note = _outcome(code, tail) or (f"{len(notebooks)} notebooks: {names}." if label == "cold" else "")
        results.append(Result("course", f"nbval suite (pytest --nbval-lax notebooks), {label} cache",
                              format_seconds(seconds), "n=1", target, status, note))
    return results


def _demo(folder: Path, quick: bool) -> list[Result]:
    env = _env(folder)
    workdir = folder / "demo"
    workdir.mkdir()
    args = [sys.executable, "-m", "cbir_lab.cli", "demo", "--figure", str(workdir / "demo.png")]
    seconds, code, tail = timed_subprocess(args, env, workdir)
    results = [Result("course", "cbir-lab demo, cold cache (dataset generated, features extracted)",
                      format_seconds(seconds), "n=1", f"< {format_seconds(DEMO_COLD_TARGET)}",
                      judge(seconds, DEMO_COLD_TARGET) if code == 0 else "missed", _outcome(code, tail))]
    warm, codes = [], []
    for _ in range(1 if quick else 3):
        seconds, code, tail = timed_subprocess(args, env, workdir)
        warm.append(seconds)
        codes.append((code, tail))
    stats = summarize(warm)
    failed = [c for c in codes if c[0] != 0]
    results.append(Result("course", "cbir-lab demo, warm cache", format_seconds(stats.median), format_spread(stats),
                          "", "info", _outcome(*failed[0]) if failed else ""))
    return results


def run(quick: bool = False) -> list[Result]:
    """The course section: nbval cold and warm, then the demo cold and warm (in fresh folders each)."""
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    results = []
    if notebooks:
        with tempfile.TemporaryDirectory(prefix="cbir-bench-nbval-") as tmp:
            results += _nbval(Path(tmp), notebooks)
    else:
        results.append(Result("course", "nbval suite, cold and warm cache", "—", "", f"≤ {format_seconds(NBVAL_COLD_TARGET)}",
                              "not measured", "no notebooks in notebooks/ yet"))
    with tempfile.TemporaryDirectory(prefix="cbir-bench-demo-") as tmp:
        results += _demo(Path(tmp), quick)
    return results
