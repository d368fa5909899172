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
* Their ``nn.Module`` forms, thin modules that call the functions above, are
  :mod:`cbir_lab.heads`' ``SPoC``, ``MAC``, ``GeM`` (with a learnable ``p``) and
  ``RMAC``; :func:`cbir_lab.heads.pooling_module` gives the one for a :class:`Pooling`.
* :class:`Pooling`: the one way the rest of the package names a pooling: a
  frozen value (method and its settings) with a display name, resolved once
  from a name by :meth:`Pooling.parse`. :data:`STANDARD_POOLINGS` are the
  course's four.
* :func:`cell_allocation`: a pooled vector split over the cells it came from,
  for "why did this match?" maps.
* :func:`multiscale_combine`: one image's pooled vectors at several input scales
  combined into one descriptor (cirtorch's ``extract_ms``); the scales' maps come
  from :func:`cbir_lab.pipeline.extract_dataset` (``scales=``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import lazy_loader
import numpy as np

from cbir_lab._array import l2n

# torch is imported on first use: naming a pooling (Pooling.parse, as a stored index does when it is
# opened) must not cost torch's 1.5 s import, since `cbir-lab search` answers without torch.
torch = lazy_loader.load("torch")

__all__ = [
    "spoc",
    "center_prior",
    "mac",
    "gem",
    "rmac_regions",
    "regional_pool",
    "regional_vectors",
    "rmac",
    "Pooling",
    "SPOC",
    "SPOC_PRIOR",
    "MAC",
    "RMAC",
    "GEM",
    "STANDARD_POOLINGS",
    "cell_allocation",
    "multiscale_combine",
]

Region = tuple[int, int, int, int]  # top, left, height, width in feature-map cells


def _check_map(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name} has an empty spatial size {tuple(x.shape[-2:])}")


def center_prior(h: int, w: int, dtype: "torch.dtype | None" = None) -> torch.Tensor:
    r"""SPoC's Gaussian centre prior over an H×W map.

    .. math::
        \alpha(y, x) = \exp\left(-\frac{(y - c_y)^2 + (x - c_x)^2}{2\sigma^2}\right),
        \quad c_y = \tfrac{H-1}{2},\ c_x = \tfrac{W-1}{2},\ \sigma = \tfrac{\min(H, W)}{6}

    σ is one third of the distance from the centre to the nearest border.

    Args:
        h: map height H.
        w: map width W.
        dtype: the weights' dtype (default float32).

    Returns:
        Weights of shape (H, W), 1 at the centre.

    Examples:
        >>> center_prior(3, 3)[1, 1].item()
        1.0
        >>> round(center_prior(3, 3)[0, 1].item(), 4)  # exp(-2): one cell from the centre, σ = 0.5
        0.1353
    """
    return _centre_weights(h, w, torch.float32 if dtype is None else dtype)


def _centre_weights(h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
    # spoc's parameter is also called center_prior, so it reaches the weights through this name
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

    Examples:
        >>> spoc(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])).tolist()
        [[10.0]]
    """
    _check_map(x)
    if center_prior:
        weights = _centre_weights(x.shape[-2], x.shape[-1], x.dtype).to(x.device)
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

    Examples:
        >>> mac(torch.tensor([[[[1.0, 9.0], [3.0, 4.0]]]])).tolist()
        [[9.0]]
    """
    _check_map(x)
    return x.amax(dim=(-2, -1))


def gem(x: torch.Tensor, p: "float | torch.Tensor" = 3.0, eps: float = 1e-6) -> torch.Tensor:
    r"""Generalised-mean pooling.

    .. math:: \psi(I)_c = \Big(\frac{1}{HW}\sum_{y,x} \max(X[c,y,x], \epsilon)^p\Big)^{1/p}

    p = 1 is average pooling (SPoC up to scale), p → ∞ tends to MAC. Computed as
    :math:`m \, (\frac{1}{HW}\sum (x/m)^p)^{1/p}` with m each channel's maximum, so
    that no power overflows, whatever p.

    Args:
        x: feature maps, shape (N, C, H, W); activations are clamped at ``eps``.
        p: the power, > 0: a number, or a 0-d tensor (the learnable ``p`` of
            :class:`cbir_lab.heads.GeM`), through which gradients then flow. A tensor's
            value is not checked: reading it back would stall a GPU at every call.
        eps: the clamp, > 0, which keeps fractional powers finite.

    Returns:
        Descriptors, shape (N, C).

    Reference:
        Radenović, Tolias & Chum, TPAMI 2018, arXiv:1711.02512.

    Examples:
        >>> round(gem(torch.tensor([[[[1.0, 2.0], [2.0, 3.0]]]]), p=3).item(), 4)  # (44 / 4) ** (1/3)
        2.224
    """
    _check_map(x)
    if isinstance(p, torch.Tensor):
        if p.dim() != 0 or not p.is_floating_point():
            raise ValueError(f"gem: a tensor p must be a 0-d float tensor, got {p.dtype} of shape {tuple(p.shape)}")
    elif not (isinstance(p, (int, float)) and math.isfinite(p) and p > 0):
        raise ValueError(f"gem: p must be a finite number > 0, got {p!r}")
    if eps <= 0:
        raise ValueError(f"gem: eps must be > 0, got {eps!r}")
    x = x.clamp(min=eps)
    # Dividing by each channel's maximum first keeps x^p finite for any p (6^50 overflows float32);
    # the result is the same power mean, scaled back.
    top = x.amax(dim=(-2, -1), keepdim=True)
    return (x / top).pow(p).mean(dim=(-2, -1)).pow(1.0 / p) * top[..., 0, 0]


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

    Examples:
        >>> len(rmac_regions(7, 7)), len(rmac_regions(24, 32))
        (14, 20)
        >>> rmac_regions(7, 7, levels=1)
        [(0, 0, 7, 7)]
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


PoolFn = Callable[["torch.Tensor"], "torch.Tensor"]


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
    return l2n(vecs, eps)


def rmac(x: torch.Tensor, levels: int = 3, pool: PoolFn = mac) -> torch.Tensor:
    r"""Regional maximum activations of convolutions (R-MAC), without whitening.

    .. math:: \psi(I) = \sum_{R} \frac{\mathrm{MAC}(X_R)}{\lVert \mathrm{MAC}(X_R) \rVert_2}

    over the regions R of :func:`rmac_regions`. Like the authors' original
    (and unlike cirtorch, which adds the whole-map MAC), the sum is over the
    grid's regions only. The region-wise whitened variant (per-region L2 →
    PCA-whitening → L2, then the sum) is
    :meth:`cbir_lab.whitening.PCAWhitening.transform_regions`.

    Args:
        x: feature maps, shape (N, C, H, W).
        levels: the number of scales L.
        pool: the regional pooling (MAC; pass :func:`gem` for R-GeM).

    Returns:
        Descriptors, shape (N, C), unnormalised sum.

    Reference:
        Tolias, Sicre & Jégou, ICLR 2016, arXiv:1511.05879.

    Examples:
        >>> rmac(torch.ones(1, 2, 3, 3), levels=1)  # one region, its unit MAC vector
        tensor([[0.7071, 0.7071]])
    """
    return regional_vectors(x, levels, pool).sum(dim=1)


# --------------------------------------------------------------------------- naming a pooling

_METHODS = ("spoc", "mac", "gem", "rmac")
_DEFAULT_P = 3.0
_DEFAULT_LEVELS = 3
# Every spelling a user or an older notebook may use, lower-cased, without spaces.
_ALIASES = {
    "spoc": ("spoc", False), "sum": ("spoc", False), "spoc_cp": ("spoc", True), "spoc+prior": ("spoc", True),
    "spoc+centreprior": ("spoc", True), "spoc+centerprior": ("spoc", True),
    "mac": ("mac", False), "max": ("mac", False), "gem": ("gem", False), "rmac": ("rmac", False),
    "r-mac": ("rmac", False),
}
_SETTING = re.compile(r"^(?P<base>[^(]+?)\s*\(\s*(?P<key>p|L)\s*=\s*(?P<value>[0-9.]+)\s*\)$")


@dataclass(frozen=True)
class Pooling:
    """One pooling and its settings: the value every later stage passes around.

    Settings a method ignores are reset to their defaults, so ``Pooling("mac", p=5)``
    equals ``Pooling("mac")`` and both share one cache entry.

    Args:
        method: ``"spoc"``, ``"mac"``, ``"gem"`` or ``"rmac"``.
        p: GeM's power (> 0, finite).
        levels: R-MAC's number of scales L (≥ 1).
        center_prior: SPoC's Gaussian centre prior.

    Attributes:
        name: the display name, e.g. ``"SPoC"``, ``"SPoC+prior"``, ``"GeM (p=4)"``,
            ``"R-MAC (L=2)"``; :meth:`parse` reads it back.
        regional: whether the descriptor is a sum of regional vectors (R-MAC), whose
            whitening is learned on, and applied to, each region.

    Examples:
        >>> Pooling.parse("R-MAC") == Pooling("rmac")
        True
        >>> Pooling("gem", p=4).name, Pooling.parse("GeM (p=4)").p
        ('GeM (p=4)', 4.0)
        >>> Pooling("mac", p=5) == MAC
        True
    """

    method: str
    p: float = _DEFAULT_P
    levels: int = _DEFAULT_LEVELS
    center_prior: bool = False

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ValueError(f"unknown pooling method {self.method!r}; choose one of {', '.join(_METHODS)}")
        p, levels, prior = float(self.p), self.levels, bool(self.center_prior)
        if not (math.isfinite(p) and p > 0):
            raise ValueError(f"Pooling: p must be a finite number > 0, got {self.p!r}")
        if int(levels) != levels or levels < 1:
            raise ValueError(f"Pooling: levels must be an integer >= 1, got {self.levels!r}")
        object.__setattr__(self, "p", p if self.method == "gem" else _DEFAULT_P)
        object.__setattr__(self, "levels", int(levels) if self.method == "rmac" else _DEFAULT_LEVELS)
        object.__setattr__(self, "center_prior", prior if self.method == "spoc" else False)

    @classmethod
    def parse(cls, value: "str | Pooling") -> "Pooling":
        """A :class:`Pooling` from itself or from a name.

        Names are read case-insensitively: ``SPoC``, ``spoc``, ``sum``, ``SPoC+prior``,
        ``spoc_cp``, ``MAC``, ``max``, ``R-MAC``, ``rmac``, ``GeM``, and the settings of
        :attr:`name`: ``GeM (p=4)``, ``R-MAC (L=2)``.

        Raises:
            ValueError: the name is none of these.
        """
        if isinstance(value, Pooling):
            return value
        if not isinstance(value, str):
            raise TypeError(f"a pooling is a Pooling or its name, got {type(value).__name__}")
        text = value.strip()
        match = _SETTING.match(text)
        base = match["base"] if match else text
        found = _ALIASES.get(base.replace(" ", "").lower())
        if found is None:
            known = ", ".join(p.name for p in STANDARD_POOLINGS + (SPOC_PRIOR,))
            raise ValueError(f"unknown pooling {value!r}; choose one of {known} (or e.g. 'GeM (p=4)', 'R-MAC (L=2)')")
        method, prior = found
        settings: dict = {"center_prior": prior}
        if match:
            key = "p" if match["key"] == "p" else "levels"
            if (key == "p") != (method == "gem") or (key == "levels") != (method == "rmac"):
                raise ValueError(f"pooling {value!r}: {match['key']} is not a setting of {base.strip()}")
            settings[key] = float(match["value"]) if key == "p" else int(float(match["value"]))
        return cls(method, **settings)

    @property
    def name(self) -> str:
        if self.method == "spoc":
            return "SPoC+prior" if self.center_prior else "SPoC"
        if self.method == "mac":
            return "MAC"
        if self.method == "gem":
            return "GeM" if self.p == _DEFAULT_P else f"GeM (p={self.p:g})"
        return "R-MAC" if self.levels == _DEFAULT_LEVELS else f"R-MAC (L={self.levels})"

    @property
    def regional(self) -> bool:
        return self.method == "rmac"

    @property
    def multiscale_p(self) -> float:
        """The power :func:`multiscale_combine` averages this pooling's scales with: GeM's p, else 1 (cirtorch's)."""
        return self.p if self.method == "gem" else 1.0

    def __str__(self) -> str:
        return self.name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Pool feature maps (N, C, H, W) → descriptors (N, C), unnormalised."""
        if self.method == "spoc":
            return spoc(x, center_prior=self.center_prior)
        if self.method == "mac":
            return mac(x)
        if self.method == "gem":
            return gem(x, p=self.p)
        return rmac(x, levels=self.levels)

    def pool_each(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Pool maps of different sizes, one (C, H, W) per image → (N, C), unnormalised.

        Examples:
            >>> SPOC.pool_each([torch.ones(2, 3, 4), torch.ones(2, 5, 5)]).tolist()
            [[12.0, 12.0], [25.0, 25.0]]
        """
        if len(maps) == 0:
            raise ValueError("pool_each: no feature maps given")
        return torch.cat([self(torch.as_tensor(m).unsqueeze(0)) for m in maps], dim=0)


SPOC = Pooling("spoc")
SPOC_PRIOR = Pooling("spoc", center_prior=True)
MAC = Pooling("mac")
RMAC = Pooling("rmac")
GEM = Pooling("gem")
#: The four poolings the course compares, in display order.
STANDARD_POOLINGS: tuple[Pooling, ...] = (SPOC, MAC, RMAC, GEM)


def cell_allocation(x: np.ndarray, pooling: "Pooling | str") -> tuple[np.ndarray, np.ndarray]:
    r"""A global pooling written as a sum over cells: g and G with :math:`g = \sum_{y,x} G[:, y, x]`.

    * SPoC: :math:`G = \alpha \odot X` (α ≡ 1, or the centre prior).
    * MAC: :math:`G[c]` holds :math:`g_c` at the (first) arg-max cell of channel c, 0 elsewhere.
    * GeM: :math:`G[c, y, x] = g_c\, X_{cyx}^p / \sum_{y'x'} X_{cy'x'}^p` (activations clamped
      at 1e-6 as in :func:`gem`), each cell's share of the power mean.

    R-MAC is a sum of regional MACs: allocate each region with ``MAC`` instead.

    Args:
        x: one feature map (C, H, W), computed in float64.
        pooling: a global pooling (not R-MAC).

    Returns:
        (g (C,), G (C, H, W)); g equals ``pooling`` applied to ``x``.

    Examples:
        >>> g, G = cell_allocation(np.array([[[1.0, 3.0], [2.0, 0.0]]]), "MAC")
        >>> g.tolist(), G.tolist()
        ([3.0], [[[0.0, 3.0], [0.0, 0.0]]])
    """
    pooling = Pooling.parse(pooling)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or min(x.shape) == 0:
        raise ValueError(f"cell_allocation: x must have shape (C, H, W), got {x.shape}")
    c, h, w = x.shape
    if pooling.method == "spoc":
        weighted = x * _centre_weights(h, w, torch.float64).numpy() if pooling.center_prior else x
        return weighted.sum(axis=(1, 2)), weighted
    if pooling.method == "mac":
        flat = x.reshape(c, h * w)
        where = flat.argmax(axis=1)
        pooled = flat[np.arange(c), where]
        allocation = np.zeros_like(flat)
        allocation[np.arange(c), where] = pooled
        return pooled, allocation.reshape(c, h, w)
    if pooling.method == "gem":
        powered = np.clip(x, 1e-6, None) ** pooling.p
        total = powered.sum(axis=(1, 2))
        pooled = (total / (h * w)) ** (1.0 / pooling.p)
        return pooled, powered * (pooled / total)[:, None, None]
    raise ValueError("cell_allocation: R-MAC is a sum of regional MACs; allocate each region with MAC")


def multiscale_combine(vectors, p: float = 1.0, eps: float = 1e-12) -> np.ndarray:
    r"""Combine each image's descriptors at S input scales into one: a power mean over the scales, then L2.

    .. math:: v = \operatorname{L2}\Big(\big(\tfrac{1}{S} \textstyle\sum_s f_s^{\,p}\big)^{1/p}\Big),
              \qquad f_s = \operatorname{L2}(\text{pooled vector at scale } s)

    With p = GeM's p the scales are averaged the way GeM averages cells; p = 1 (for SPoC, MAC
    and R-MAC) is the mean of the unit vectors. Each scale's vector is L2-normalised first,
    as cirtorch's network outputs are, so no scale outweighs another by its map's size. The
    usual scales are 1, 1/√2 and 1/2: about 1 + 1/2 + 1/4 = 1.75 times the FLOPs of one scale.

    Args:
        vectors: pooled vectors, shape (S, N, C): S scales of N images (a tensor is converted).
            Non-negative when p ≠ 1 (pool before any whitening).
        p: the power, a finite number > 0 (:attr:`Pooling.multiscale_p`).
        eps: the smallest norm divided by: an all-zero vector stays zero.

    Returns:
        (N, C), unit rows (or zero), in the input's float dtype (float32 for integers).

    Reference:
        Radenović, Tolias & Chum, TPAMI 2018, arXiv:1711.02512 (cirtorch ``extract_ms``).

    Examples:
        >>> multiscale_combine(np.array([[[1.0, 0.0]], [[0.6, 0.8]]]), p=1).round(4).tolist()  # mean (0.8, 0.4)
        [[0.8944, 0.4472]]
        >>> multiscale_combine(np.array([[[3.0, 4.0]]])).tolist()  # one scale: the vector, L2-normalised
        [[0.6, 0.8]]
    """
    x = np.asarray(vectors.detach().cpu() if hasattr(vectors, "detach") else vectors)
    x = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)
    if x.ndim != 3 or x.shape[0] == 0:
        raise ValueError(f"multiscale_combine: vectors must have shape (S, N, C) with S >= 1, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("multiscale_combine: vectors hold a NaN or an infinity")
    if not (isinstance(p, (int, float)) and math.isfinite(p) and p > 0):
        raise ValueError(f"multiscale_combine: p must be a finite number > 0, got {p!r}")
    if p != 1 and (x < 0).any():
        raise ValueError(f"multiscale_combine: vectors must be non-negative for p = {p:g} (combine before whitening)")
    unit = l2n(x, eps)
    return l2n((unit**p).mean(axis=0) ** (1.0 / p), eps)
