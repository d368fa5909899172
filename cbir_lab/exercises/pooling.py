"""Self-checks for lesson 2 (pooling): GeM, and SPoC with the centre prior.

* :func:`check_gem` compares a student's ``gem_fn(x, p)`` with
  :func:`cbir_lab.pooling.gem` and recognises the usual slips (a forgotten 1/p
  power, a sum instead of a mean, max or average pooling in disguise, the
  wrong axes).
* :func:`check_spoc_center_prior` compares ``spoc_fn(x)`` with
  :func:`cbir_lab.pooling.spoc` (``center_prior=True``) and recognises a missing
  prior, the wrong σ and an off-by-half centre.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report
from cbir_lab.pooling import gem, mac, spoc

__all__ = ["check_gem", "check_spoc_center_prior", "pooling_test_maps"]


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
