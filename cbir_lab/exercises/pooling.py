"""Self-checks for lesson 2 (pooling): GeM, SPoC with the centre prior, the R-MAC grid, the power mean.

* :func:`check_gem` compares a student's ``gem_fn(x, p)`` with
  :func:`cbir_lab.pooling.gem` and recognises the usual slips (a forgotten 1/p
  power, a sum instead of a mean, max or average pooling in disguise, the
  wrong axes).
* :func:`check_spoc_center_prior` compares ``spoc_fn(x)`` with
  :func:`cbir_lab.pooling.spoc` (``center_prior=True``) and recognises a missing
  prior, the wrong σ and an off-by-half centre.
* :func:`check_rmac_grid` compares ``grid_fn(h, w, levels)`` with
  :func:`cbir_lab.pooling.rmac_regions` on square and oblong maps.
* :func:`check_power_mean` checks the power mean behind GeM at its limits
  (p = 1 the mean, p → ∞ the maximum), where a naive x ** p overflows.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report
from cbir_lab.pooling import gem, mac, rmac_regions, spoc

__all__ = [
    "check_gem",
    "check_spoc_center_prior",
    "pooling_test_maps",
    "RMAC_GRID_CASES",
    "check_rmac_grid",
    "POWER_MEAN_CASES",
    "reference_power_mean",
    "check_power_mean",
]


def pooling_test_maps(seed: int = 0) -> list[torch.Tensor]:
    """Small non-negative maps the checks run on: sparse ReLU-like, non-square, and one hand-made.

    Returns:
        Tensors of shapes (2, 4, 5, 7), (1, 3, 6, 4) and (1, 2, 3, 3).
    """
    generator = torch.Generator().manual_seed(seed)
    sparse = torch.randn(2, 4, 5, 7, generator=generator, dtype=torch.float64).clamp(min=0)
    tall = torch.rand(1, 3, 6, 4, generator=generator, dtype=torch.float64) * 3
    hand = torch.tensor([[[[0.0, 1.0, 0.0], [0.0, 4.0, 0.0], [2.0, 0.0, 0.0]],
                          [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]], dtype=torch.float64)
    return [sparse, tall, hand]


def _call(fn, *args) -> torch.Tensor:
    out = fn(*args)
    if isinstance(out, np.ndarray):
        out = torch.from_numpy(out)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"return a torch.Tensor of shape (N, C), got {type(out).__name__}")
    return out.detach().to(torch.float64)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-4, atol=1e-6))


def _proportional(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """The c with a ≈ c·b row by row (same c for every row), or None."""
    if a.shape != b.shape or not torch.isfinite(a).all():
        return None
    scale = (a * b).sum() / (b * b).sum().clamp(min=1e-300)
    return float(scale) if _close(a, scale * b) else None


def _shape_hint(x: torch.Tensor, out: torch.Tensor) -> str:
    n, c = x.shape[:2]
    return (f"the input has shape {tuple(x.shape)} (N, C, H, W), so the result must have shape ({n}, {c}); "
            f"yours has shape {tuple(out.shape)}. Pool over the spatial axes only: dim=(-2, -1).")


def check_gem(gem_fn: Callable[[torch.Tensor, float], torch.Tensor], verbose: bool = True) -> CheckResult:
    r"""Check ``gem_fn(x, p) -> (N, C)`` against :math:`(\frac{1}{HW}\sum x^p)^{1/p}`.

    Runs p ∈ {1, 3, 6.5} on :func:`pooling_test_maps`.

    Args:
        gem_fn: the student's GeM; ``x`` is a float64 tensor (N, C, H, W) ≥ 0.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`.
    """
    name = "GeM"
    cases = [(x, p) for x in pooling_test_maps() for p in (1.0, 3.0, 6.5)]
    for x, p in cases:
        try:
            out = call_student(name, "Compute (mean over y, x of x^p)^(1/p) per channel.",
                               f"gem_fn(x of shape {tuple(x.shape)}, p={p})", _call, gem_fn, x.clone(), p)
        except StudentCodeError as failure:
            return report(failure.result, verbose)
        expected = gem(x, p=p)
        if _close(out, expected):
            continue
        where = f"for x of shape {tuple(x.shape)} and p = {p}"
        if out.shape != expected.shape:
            key, why = "shape", _shape_hint(x, out)
        elif not torch.isfinite(out).all():
            key, why = "nan", "your result has NaN or inf. Clamp the activations at a small eps before the power."
        elif _close(out, mac(x)):
            key, why = "mac", "your result matches MAC (the maximum). GeM is a mean of x^p, then the 1/p power."
        elif _close(out, x.clamp(min=1e-6).pow(p).mean(dim=(-2, -1))):
            key, why = "no_root", "your result is mean(x^p): did you forget the 1/p power at the end?"
        elif _close(out, x.clamp(min=1e-6).pow(p).sum(dim=(-2, -1)).pow(1.0 / p)):
            key, why = "sum", "you summed x^p; GeM takes the *mean* over the H×W cells before the 1/p power."
        elif _close(out, x.mean(dim=(-2, -1))) and p != 1.0:
            key, why = "ignores_p", "your result is plain average pooling (SPoC): p is not used. Raise x to the power p."
        elif _close(out, x.clamp(min=1e-6).mean(dim=(-2, -1)).pow(p)):
            key, why = "power_order", "you averaged first and then took the power; raise each x to p *before* the mean, and take the 1/p root after."
        else:
            key, why = "wrong", f"expected (first row) {expected.flatten()[:4].numpy().round(4)}, got {out.flatten()[:4].numpy().round(4)}."
        return report(CheckResult(name, False, f"✗ {name} {where}: {why}", failures=(key,)), verbose)
    message = (f"✓ {name}: right on {len(cases)} cases. Note p = 1 gave average pooling (SPoC up to scale), "
               "and p = 6.5 is already close to MAC.")
    return report(CheckResult(name, True, message), verbose)


def _prior(h: int, w: int, sigma: float, cy: float, cx: float) -> torch.Tensor:
    ys = torch.arange(h, dtype=torch.float64) - cy
    xs = torch.arange(w, dtype=torch.float64) - cx
    return torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma**2))


def check_spoc_center_prior(spoc_fn: Callable[[torch.Tensor], torch.Tensor], verbose: bool = True) -> CheckResult:
    r"""Check ``spoc_fn(x) -> (N, C)`` against SPoC with the Gaussian centre prior.

    The reference is :func:`cbir_lab.pooling.spoc` with ``center_prior=True``:
    :math:`\sum_{y,x} \alpha(y,x) X[:, y, x]`, with centre ((H-1)/2, (W-1)/2) and σ = min(H, W)/6.
    A result off by one constant factor passes (L2-normalisation removes it), with a note.

    Args:
        spoc_fn: the student's function; ``x`` is a float64 tensor (N, C, H, W) ≥ 0.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`.
    """
    name = "SPoC with centre prior"
    notes: list[str] = []
    maps = pooling_test_maps()
    for x in maps:
        try:
            out = call_student(name, "Weight each cell by the Gaussian α(y, x), then sum over y, x.",
                               f"spoc_fn(x of shape {tuple(x.shape)})", _call, spoc_fn, x.clone())
        except StudentCodeError as failure:
            return report(failure.result, verbose)
        expected = spoc(x, center_prior=True)
        if _close(out, expected):
            continue
        scale = _proportional(out, expected)
        if scale is not None:
            notes.append(f"(your result is the reference times {scale:.4g}: fine after L2, though the reference does not rescale the weights)")
            continue
        h, w = x.shape[-2:]
        where = f"for x of shape {tuple(x.shape)}"

        def weighted(sigma: float, cy: float, cx: float) -> torch.Tensor:
            return (x * _prior(h, w, sigma, cy, cx)).sum(dim=(-2, -1))

        def matches(candidate: torch.Tensor) -> bool:
            return _close(out, candidate) or _proportional(out, candidate) is not None

        if out.shape != expected.shape:
            key, why = "shape", _shape_hint(x, out)
        elif not torch.isfinite(out).all():
            key, why = "nan", "your result has NaN or inf."
        elif matches(spoc(x)):
            key, why = "no_prior", "your result is plain SPoC: the centre prior is missing. Multiply each cell by α(y, x) before summing."
        elif matches(weighted(max(h, w) / 6, (h - 1) / 2, (w - 1) / 2)):
            key, why = "sigma_max", "σ must come from the *shorter* side: σ = min(H, W) / 6."
        elif matches(weighted(min(h, w) / 3, (h - 1) / 2, (w - 1) / 2)) or matches(weighted(min(h, w) / 2, (h - 1) / 2, (w - 1) / 2)):
            key, why = "sigma", "the Gaussian has the wrong width: σ = min(H, W) / 6, a third of the distance from the centre to the nearest border."
        elif matches(weighted(min(h, w) / 6, h / 2, w / 2)):
            key, why = "centre", "the centre is off by half a cell: with 0-based indices the middle of H cells is (H - 1) / 2."
        elif matches(weighted(min(h, w) / 6, (w - 1) / 2, (h - 1) / 2)):
            key, why = "swapped", "the centre's y and x are swapped: y runs over the H rows, x over the W columns."
        elif matches((x * _prior(h, w, min(h, w) / 6, (h - 1) / 2, (w - 1) / 2)).amax(dim=(-2, -1))):
            key, why = "max", "you took the maximum of the weighted map; SPoC *sums* the weighted cells."
        else:
            key, why = "wrong", f"expected (first row) {expected.flatten()[:4].numpy().round(4)}, got {out.flatten()[:4].numpy().round(4)}."
        return report(CheckResult(name, False, f"✗ {name} {where}: {why}", failures=(key,)), verbose)
    message = f"✓ {name}: right on {len(maps)} maps, square and not." + ("\n" + notes[0] if notes else "")
    return report(CheckResult(name, True, message), verbose)


# --------------------------------------------------------------------------- the R-MAC grid

#: Map sizes (H, W) the grid check runs: square, landscape, portrait, very wide, small.
RMAC_GRID_CASES: tuple[tuple[int, int], ...] = ((7, 7), (12, 16), (24, 32), (32, 24), (16, 64), (9, 12), (3, 5))


def check_rmac_grid(grid_fn: Callable[[int, int, int], list], verbose: bool = True) -> CheckResult:
    """Check ``grid_fn(h, w, levels)`` against :func:`cbir_lab.pooling.rmac_regions` (L = 3) on :data:`RMAC_GRID_CASES`.

    Regions are ``(top, left, height, width)`` in cells; their order does not matter.

    Args:
        grid_fn: the student's function.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`, naming each map size whose grid differs and the likely cause.
    """
    name = "R-MAC region grid"
    hints = {
        "count": ("Count the regions first: L = 3 on a square map gives 1 + 4 + 9 = 14. A non-square map gets "
                  "extra regions along its long side, the same number at every level."),
        "side": "The region side at level l is floor(2 · min(H, W) / (l + 1)), the same along both axes.",
        "offsets": ("The sides are right but the regions sit elsewhere: offsets are floor(h2 + i · step) - h2, "
                    "with h2 = floor(s/2 - 1) and step = (length - s) / (k - 1)."),
        "square_only": "On a non-square map, the long side gets n - 1 extra regions, n chosen for a 40 % overlap.",
    }
    lines, failures = [], []
    for h, w in RMAC_GRID_CASES:
        expected = sorted(rmac_regions(h, w, 3))
        try:
            got = call_student(name, "Return the list of (top, left, height, width) regions.",
                               f"grid_fn({h}, {w}, 3)", grid_fn, h, w, 3)
        except StudentCodeError as err:
            if "not_implemented" in err.result.failures:
                return report(err.result, verbose)
            lines.append(err.result.message)
            failures.append("error")
            continue
        try:
            regions = sorted(tuple(int(v) for v in r) for r in got)
        except (TypeError, ValueError):
            lines.append(f"✗ {h}×{w} map: return a list of 4-tuples (top, left, height, width), got {got!r:.80}")
            failures.append("wrong")
            continue
        if regions == expected:
            continue
        if len(regions) != len(expected):
            key = "square_only" if h != w and len(regions) == 14 else "count"
        elif sorted({r[2] for r in regions}) != sorted({r[2] for r in expected}):
            key = "side"
        else:
            key = "offsets"
        lines.append(f"✗ {h}×{w} map: expected {len(expected)} regions, got {len(regions)}"
                     + ("" if len(regions) != len(expected) else " (some differ)"))
        failures.append(key)
    if not failures:
        return report(CheckResult(name, True, f"✓ {name}: all {len(RMAC_GRID_CASES)} map sizes right "
                                  "(14 regions on a square map, 20 on 24×32 and 12×16, 44 on 16×64)."), verbose)
    header = f"{name}: {len(failures)} of {len(RMAC_GRID_CASES)} map sizes wrong."
    advice = [f"Hint: {hints[key]}" for key in dict.fromkeys(failures) if key in hints]
    return report(CheckResult(name, False, "\n".join([header, *lines, *advice]), failures=tuple(failures)), verbose)


# --------------------------------------------------------------------------- the power mean behind GeM

#: (values, p) cases: p = 1 is the mean, large p approaches the maximum, and ReLU6 values at p = 500 overflow x ** p.
POWER_MEAN_CASES: tuple[tuple[tuple[float, ...], float], ...] = (
    ((1.0, 2.0, 3.0, 6.0), 1.0),
    ((1.0, 2.0, 2.0, 3.0), 3.0),
    ((0.0, 0.5, 6.0, 6.0, 1.0), 50.0),
    ((0.0, 0.5, 6.0, 2.0), 500.0),
    ((0.0, 0.0, 0.0), 3.0),
)


def reference_power_mean(values, p: float) -> float:
    r"""The power mean :math:`(\frac{1}{n}\sum_i x_i^p)^{1/p}` of non-negative values, for any p > 0.

    Written as :math:`m \, (\frac{1}{n}\sum_i (x_i/m)^p)^{1/p}` with m the maximum, so
    that no power overflows: 6 ** 500 is beyond float64, (6/6) ** 500 is 1.
    All zeros give 0.

    Examples:
        >>> round(reference_power_mean([0.0, 0.5, 6.0, 2.0], 500.0), 3)
        5.983
    """
    values = np.asarray(values, dtype=np.float64)
    top = values.max()
    if top == 0:
        return 0.0
    return float(top * np.mean((values / top) ** p) ** (1.0 / p))


def check_power_mean(power_mean_fn: Callable[[np.ndarray, float], float], verbose: bool = True) -> CheckResult:
    """Check ``power_mean_fn(values, p)`` on :data:`POWER_MEAN_CASES`: the limits p = 1 and p → ∞, without overflow.

    Args:
        power_mean_fn: the student's function, values a 1-D numpy array of non-negative floats.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`.
    """
    name = "power mean (GeM's p)"
    hints = {
        "overflow": ("6 ** 500 overflows float64 (inf), and inf ** (1/500) is inf. Divide by the largest value "
                     "first, and multiply it back at the end: max · (mean((x / max) ** p)) ** (1/p)."),
        "zeros": "All-zero values have power mean 0 (and dividing by their max, 0, gives nan: handle it).",
        "no_root": "Take the p-th root of the mean of the powers, or p = 1 works by luck and nothing else.",
        "sum": "Average the powers (divide by n) before the root: a sum grows with the number of cells.",
    }
    lines, failures = [], []
    for values, p in POWER_MEAN_CASES:
        x = np.array(values)
        expected = reference_power_mean(x, p)
        try:
            with np.errstate(all="ignore"):
                got = call_student(name, "Return (mean of x ** p) ** (1/p), for any p > 0.",
                                   f"power_mean_fn({list(values)}, {p:g})", power_mean_fn, x.copy(), p)
        except StudentCodeError as err:
            if "not_implemented" in err.result.failures:
                return report(err.result, verbose)
            lines.append(err.result.message)
            failures.append("error")
            continue
        try:
            got = float(got)
        except (TypeError, ValueError):
            lines.append(f"✗ values {list(values)}, p = {p:g}: return one number, got {got!r:.60}")
            failures.append("wrong")
            continue
        if np.isfinite(got) and np.isclose(got, expected, rtol=1e-6, atol=1e-9):
            continue
        with np.errstate(all="ignore"):
            if not np.isfinite(got):
                key = "zeros" if expected == 0 else "overflow"
            elif np.isclose(got, np.mean(x ** p)):
                key = "no_root"
            elif np.isclose(got, np.sum(x ** p) ** (1 / p)):
                key = "sum"
            else:
                key = "wrong"
        lines.append(f"✗ values {list(values)}, p = {p:g}: expected {expected:.4f}, got {got:.4f}")
        failures.append(key)
    if not failures:
        return report(CheckResult(name, True, f"✓ {name}: all {len(POWER_MEAN_CASES)} cases right. p = 1 is the mean "
                                  "(SPoC up to scale), and p = 500 is within 0.3 % of the maximum (MAC)."), verbose)
    header = f"{name}: {len(failures)} of {len(POWER_MEAN_CASES)} cases wrong."
    advice = [f"Hint: {hints[key]}" for key in dict.fromkeys(failures) if key in hints]
    return report(CheckResult(name, False, "\n".join([header, *lines, *advice]), failures=tuple(failures)), verbose)
