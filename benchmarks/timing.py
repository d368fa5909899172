"""Timing: run a function after a warm-up, then summarise the runs (median, quartiles, range).

Comparisons are timed side by side: the two functions alternate within one
loop, and the ratio is taken run by run, so that a burst of load on a shared
machine slows both sides of a ratio rather than one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "Stats",
    "summarize",
    "time_call",
    "time_pair",
    "format_seconds",
    "format_ratio",
    "format_rate",
    "format_spread",
]


@dataclass(frozen=True)
class Stats:
    """A summary of repeated measurements: median, quartiles (q1, q3), min, max, count."""

    median: float
    q1: float
    q3: float
    minimum: float
    maximum: float
    n: int

    def scaled(self, factor: float) -> "Stats":
        """The same statistics multiplied by ``factor`` (> 0), e.g. per image instead of per batch."""
        if factor <= 0:
            raise ValueError(f"factor must be > 0, got {factor}")
        return Stats(self.median * factor, self.q1 * factor, self.q3 * factor,
                     self.minimum * factor, self.maximum * factor, self.n)


def summarize(samples: Sequence[float]) -> Stats:
    """Median, quartiles (linear interpolation, numpy's default), min and max of the samples.

    Args:
        samples: one or more finite measurements.

    Returns:
        The :class:`Stats`.
    """
    values = np.asarray(list(samples), dtype=np.float64)
    if values.size == 0:
        raise ValueError("summarize needs at least one sample")
    if not np.isfinite(values).all():
        raise ValueError(f"samples must be finite, got {values.tolist()}")
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return Stats(float(median), float(q1), float(q3), float(values.min()), float(values.max()), int(values.size))


def time_call(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> Stats:
    """Seconds per call of ``fn()``: ``warmup`` untimed calls, then ``repeat`` timed ones."""
    if repeat < 1 or warmup < 0:
        raise ValueError(f"need repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return summarize(samples)


def time_pair(fn_a: Callable[[], object], fn_b: Callable[[], object], repeat: int = 5,
              warmup: int = 1) -> tuple[Stats, Stats, Stats]:
    """Time two functions alternately; returns (stats of a, stats of b, stats of the ratio a / b per run)."""
    if repeat < 1 or warmup < 0:
        raise ValueError(f"need repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    for _ in range(warmup):
        fn_a()
        fn_b()
    a, b = [], []
    for i in range(repeat):
        # Alternate which goes first, so neither always runs on a cache the other warmed.
        order = ((a, fn_a), (b, fn_b)) if i % 2 == 0 else ((b, fn_b), (a, fn_a))
        for samples, fn in order:
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    return summarize(a), summarize(b), summarize([x / y for x, y in zip(a, b)])


def format_seconds(seconds: float) -> str:
    """A duration with a readable unit: ``"850 µs"``, ``"12.3 ms"``, ``"4.56 s"``, ``"3 min 07 s"``."""
    if seconds < 0 or not np.isfinite(seconds):
        raise ValueError(f"a duration must be finite and >= 0, got {seconds}")
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    if seconds < 100:
        return f"{seconds:.3g} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


def format_ratio(ratio: float) -> str:
    """A ratio of times with two decimals and a multiplication sign: ``1.07×``."""
    if not np.isfinite(ratio) or ratio < 0:
        raise ValueError(f"a ratio must be finite and >= 0, got {ratio}")
    return f"{ratio:.2f}×"


def format_rate(per_second: float, unit: str) -> str:
    """A throughput with three significant digits: ``"41.2 img/s"``."""
    if not np.isfinite(per_second) or per_second < 0:
        raise ValueError(f"a rate must be finite and >= 0, got {per_second}")
    return f"{per_second:.3g} {unit}/s"


def format_spread(stats: Stats, formatter: Callable[[float], str] = format_seconds) -> str:
    """``"IQR 1.20 s–1.31 s; range 1.10 s–1.42 s; n=5"``, or ``"n=1"`` for a single run."""
    if stats.n == 1:
        return "n=1"
    return (f"IQR {formatter(stats.q1)}–{formatter(stats.q3)}; "
            f"range {formatter(stats.minimum)}–{formatter(stats.maximum)}; n={stats.n}")
