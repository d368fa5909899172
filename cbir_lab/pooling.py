r"""Pooling: from a conv feature map (N, C, H, W) to one vector per image (N, C).

Provides the global descriptors the course compares, all unnormalised (L2 and
whitening come later, in :mod:`cbir_lab.whitening`):

* :func:`spoc`: sum pooling, optionally with the Gaussian centre prior
  (Babenko & Lempitsky, "Aggregating Deep Convolutional Features for Image
  Retrieval", ICCV 2015).
* :func:`mac`: maximum activations of convolutions (Razavian et al. 2014;
  Tolias et al. 2016).
* :func:`gem`: generalised mean (Radenović, Tolias & Chum, TPAMI 2018).
* :func:`rmac_regions` / :func:`rmac`: regional MAC on the square multi-scale
  grid of Tolias, Sicre & Jégou, "Particular object retrieval with integral
  max-pooling of CNN activations", ICLR 2016.
* :func:`regional_pool`: any pooling over any regions (R-SPoC, R-GeM).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = [
    "spoc",
    "center_prior",
    "mac",
    "gem",
    "rmac_regions",
    "regional_pool",
    "regional_vectors",
    "rmac",
    "POOLINGS",
    "pool",
    "pool_each",
]

Region = tuple[int, int, int, int]  # top, left, height, width in feature-map cells


def _check_map(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name} has an empty spatial size {tuple(x.shape[-2:])}")


def center_prior(h: int, w: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""SPoC's Gaussian centre prior over an H×W map.

    .. math::
        \alpha(y, x) = \exp\left(-\frac{(y - c_y)^2 + (x - c_x)^2}{2\sigma^2}\right),
        \quad c_y = \tfrac{H-1}{2},\ c_x = \tfrac{W-1}{2},\ \sigma = \tfrac{\min(H, W)}{6}

    σ is one third of the distance from the centre to the nearest border.

    Args:
        h: map height H.
        w: map width W.

    Returns:
        Weights of shape (H, W), 1 at the centre.
    """
    if h < 1 or w < 1:
        raise ValueError(f"center_prior needs a positive map size, got {h}x{w}")
    sigma = min(h, w) / 6.0
    ys = torch.arange(h, dtype=torch.float64) - (h - 1) / 2.0
    xs = torch.arange(w, dtype=torch.float64) - (w - 1) / 2.0
    d2 = ys[:, None] ** 2 + xs[None, :] ** 2
    return torch.exp(-d2 / (2.0 * sigma**2)).to(dtype)


def spoc(x: torch.Tensor, center_prior: bool = False) -> torch.Tensor:
    r"""Sum-pooled convolutional features (SPoC).

    .. math:: \psi(I) = \sum_{y, x} \alpha(y, x)\, X[:, y, x]

    with α ≡ 1, or the Gaussian centre prior of :func:`center_prior`.

    Args:
        x: feature maps, shape (N, C, H, W).
        center_prior: weight each cell by the centre prior.

    Returns:
        Descriptors, shape (N, C), unnormalised.

    Reference:
        Babenko & Lempitsky, ICCV 2015, arXiv:1510.07493.
    """
    _check_map(x)
    if center_prior:
        weights = globals()["center_prior"](x.shape[-2], x.shape[-1], x.dtype).to(x.device)
        return (x * weights).sum(dim=(-2, -1))
    return x.sum(dim=(-2, -1))


def mac(x: torch.Tensor) -> torch.Tensor:
    r"""Maximum activations of convolutions: :math:`\psi(I)_c = \max_{y,x} X[c, y, x]`.

    Args:
        x: feature maps, shape (N, C, H, W).

    Returns:
        Descriptors, shape (N, C).

    Reference:
        Tolias, Sicre & Jégou, ICLR 2016, arXiv:1511.05879.
    """
    _check_map(x)
    return x.amax(dim=(-2, -1))


def gem(x: torch.Tensor, p: float = 3.0, eps: float = 1e-6) -> torch.Tensor:
    r"""Generalised-mean pooling.

    .. math:: \psi(I)_c = \Big(\frac{1}{HW}\sum_{y,x} \max(X[c,y,x], \epsilon)^p\Big)^{1/p}

    p = 1 is average pooling (SPoC up to scale), p → ∞ tends to MAC.

    Args:
        x: feature maps, shape (N, C, H, W); activations are clamped at ``eps``.
        p: the power, > 0.
        eps: the clamp, > 0, which keeps fractional powers finite.

    Returns:
        Descriptors, shape (N, C).

    Reference:
        Radenović, Tolias & Chum, TPAMI 2018, arXiv:1711.02512.
    """
    _check_map(x)
    if not (isinstance(p, (int, float)) and math.isfinite(p) and p > 0):
        raise ValueError(f"gem: p must be a finite number > 0, got {p!r}")
    if eps <= 0:
        raise ValueError(f"gem: eps must be > 0, got {eps!r}")
    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


def _rmac_long_side_extra(h: int, w: int) -> int:
    """How many extra regions the long side gets: the n in 2..7 whose overlap is closest to 0.4, minus 1."""
    if h == w:
        return 0
    short, long_ = min(h, w), max(h, w)
    best_n, best_err = 0, math.inf
    for n in range(2, 8):
        step = (long_ - short) / (n - 1)
        err = abs((short**2 - short * step) / short**2 - 0.4)
        if err < best_err:  # strict: the first n wins an exact tie
            best_n, best_err = n, err
    return best_n - 1


def _axis_offsets(length: int, side: int, count: int) -> list[int]:
    half = math.floor(side / 2 - 1)
    step = (length - side) / (count - 1) if count > 1 else 0.0
    return [math.floor(half + i * step) - half for i in range(count)]


def rmac_regions(h: int, w: int, levels: int = 3) -> list[Region]:
    """The R-MAC multi-scale grid of square regions, as in the authors' reference code.

    Level l = 1..L has square regions of side s = floor(2·min(H, W) / (l + 1)),
    l regions along the short side and l + e along the long side, where e extra
    regions are chosen so that consecutive regions overlap by about 40 %.
    A square map gives 1 + 4 + 9 = 14 regions at L = 3; a 24×32 map gives 20.

    Args:
        h: feature-map height H.
        w: feature-map width W.
        levels: the number of scales L.

    Returns:
        Regions as ``(top, left, height, width)`` in cells, level by level,
        row-major within a level. Levels whose side would be 0 are skipped.

    Reference:
        Tolias, Sicre & Jégou, ICLR 2016, arXiv:1511.05879 (and their MATLAB
        ``rmac_regions``; cirtorch's ``roipool`` follows the same grid).
    """
    if h < 1 or w < 1:
        raise ValueError(f"rmac_regions needs a positive map size, got h={h}, w={w}")
    if levels < 1:
        raise ValueError(f"rmac_regions: levels must be >= 1, got {levels}")
    short = min(h, w)
    extra = _rmac_long_side_extra(h, w)
    extra_y, extra_x = (extra, 0) if h > w else (0, extra)
    regions: list[Region] = []
    for level in range(1, levels + 1):
        side = math.floor(2 * short / (level + 1))
        if side == 0:
            continue
        tops = _axis_offsets(h, side, level + extra_y)
        lefts = _axis_offsets(w, side, level + extra_x)
        regions.extend((t, l, side, side) for t in tops for l in lefts)
    return regions


PoolFn = Callable[[torch.Tensor], torch.Tensor]


def regional_pool(x: torch.Tensor, regions: list[Region], pool: PoolFn = mac) -> torch.Tensor:
    """Pool each region of each map: R-MAC's building block, and R-SPoC / R-GeM for free.

    Args:
        x: feature maps, shape (N, C, H, W).
        regions: ``(top, left, height, width)`` in cells, e.g. from :func:`rmac_regions`.
        pool: a pooling (N, C, h, w) → (N, C), e.g. :func:`mac`, :func:`spoc`, :func:`gem`.

    Returns:
        Regional vectors, shape (N, R, C), unnormalised.
    """
    _check_map(x)
    if len(regions) == 0:
        raise ValueError("regional_pool: the region list is empty")
    h, w = x.shape[-2:]
    out = []
    for top, left, rh, rw in regions:
        if rh < 1 or rw < 1 or top < 0 or left < 0 or top + rh > h or left + rw > w:
            raise ValueError(f"regional_pool: region {(top, left, rh, rw)} does not fit a {h}x{w} map")
        out.append(pool(x[..., top : top + rh, left : left + rw]))
    return torch.stack(out, dim=1)


def regional_vectors(x: torch.Tensor, levels: int = 3, pool: PoolFn = mac, eps: float = 1e-12) -> torch.Tensor:
    """L2-normalised regional vectors on the R-MAC grid, before any whitening or sum.

    Args:
        x: feature maps, shape (N, C, H, W).
        levels: the number of scales of :func:`rmac_regions`.
        pool: the pooling of each region (MAC for R-MAC).
        eps: the smallest norm divided by, so that an all-zero region stays zero, not NaN.

    Returns:
        Shape (N, R, C), each row of unit norm (or zero).
    """
    _check_map(x)
    vecs = regional_pool(x, rmac_regions(x.shape[-2], x.shape[-1], levels), pool)
    return vecs / vecs.norm(dim=-1, keepdim=True).clamp(min=eps)


def rmac(x: torch.Tensor, levels: int = 3, pool: PoolFn = mac) -> torch.Tensor:
    r"""Regional maximum activations of convolutions (R-MAC), without whitening.

    .. math:: \psi(I) = \sum_{R} \frac{\mathrm{MAC}(X_R)}{\lVert \mathrm{MAC}(X_R) \rVert_2}

    over the regions R of :func:`rmac_regions`. Like the authors' original
    (and unlike cirtorch, which adds the whole-map MAC), the sum is over the
    grid's regions only. The region-wise whitened variant is
    :meth:`cbir_lab.whitening.PCAWhitening.transform_regions`.

    Args:
        x: feature maps, shape (N, C, H, W).
        levels: the number of scales L.
        pool: the regional pooling (MAC; pass :func:`gem` for R-GeM).

    Returns:
        Descriptors, shape (N, C), unnormalised sum.

    Reference:
        Tolias, Sicre & Jégou, ICLR 2016, arXiv:1511.05879.
    """
    return regional_vectors(x, levels, pool).sum(dim=1)


POOLINGS: dict[str, PoolFn] = {
    "spoc": spoc,
    "spoc_cp": lambda x: spoc(x, center_prior=True),
    "mac": mac,
    "gem": gem,
    "rmac": rmac,
}


def pool(x: torch.Tensor, method: str) -> torch.Tensor:
    """Pool with a method named in :data:`POOLINGS` (``spoc``, ``spoc_cp``, ``mac``, ``gem``, ``rmac``).

    Args:
        x: feature maps, shape (N, C, H, W).
        method: the pooling's name.

    Returns:
        Descriptors, shape (N, C), unnormalised.
    """
    try:
        fn = POOLINGS[method]
    except KeyError:
        raise ValueError(f"unknown pooling method {method!r}; choose one of {sorted(POOLINGS)}") from None
    return fn(x)


def pool_each(maps: list[torch.Tensor], method: str) -> torch.Tensor:
    """Pool a list of maps of different sizes, one (C, H, W) per image.

    Args:
        maps: feature maps as :func:`cbir_lab.features.extract_feature_maps` returns them.
        method: a name in :data:`POOLINGS`.

    Returns:
        Descriptors, shape (N, C), unnormalised.
    """
    if len(maps) == 0:
        raise ValueError("pool_each: no feature maps given")
    return torch.cat([pool(m.unsqueeze(0), method) for m in maps], dim=0)
