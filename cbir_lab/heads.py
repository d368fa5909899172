r"""Descriptor heads as ``nn.Module``: feature map → pooled, L2-normalised, whitened descriptor.

* :class:`SPoC`, :class:`MAC`, :class:`GeM` (its power ``p`` a learnable
  :class:`torch.nn.Parameter`) and :class:`RMAC`: the poolings of
  :mod:`cbir_lab.pooling` as thin modules over its functions, as cirtorch's
  ``layers/pooling.py`` has them. :func:`pooling_module` gives the one for a
  :class:`~cbir_lab.pooling.Pooling`. (``cbir_lab.pooling.MAC`` and
  ``cbir_lab.pooling.RMAC`` are :class:`~cbir_lab.pooling.Pooling` values; the
  modules of the same names live here.)
* :class:`DescriptorHead`: pooling → L2 → PCA-whitening as an ``nn.Linear`` → L2,
  the post-processing of the papers in one module. What training and the ONNX
  export (:mod:`cbir_lab.onnx_network`) share; :meth:`DescriptorHead.from_whitening`
  takes a fitted :class:`~cbir_lab.whitening.PCAWhitening`.
* :class:`DescriptorNetwork`: uint8 pixels → normalisation → backbone → head, the
  whole path from an image to its descriptor, as :mod:`cbir_lab.onnx_network` exports it.

.. math:: d = \operatorname{L2}\big(P\,(\operatorname{L2}(\operatorname{pool}(X)) - m)\big)
          = \operatorname{L2}\big(W \operatorname{L2}(\operatorname{pool}(X)) + b\big),
          \quad W = P,\ b = -P m

References:
    Radenović, Tolias & Chum, "Fine-tuning CNN image retrieval with no human
    annotation", TPAMI 2018, arXiv:1711.02512 (GeM, the learned head);
    Babenko & Lempitsky, ICCV 2015; Tolias, Sicre & Jégou, ICLR 2016.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from cbir_lab._array import l2n
from cbir_lab.pooling import _DEFAULT_LEVELS, _DEFAULT_P, Pooling, gem, mac, regional_vectors, rmac, spoc

if TYPE_CHECKING:
    from cbir_lab.whitening import PCAWhitening

__all__ = ["SPoC", "MAC", "GeM", "RMAC", "pooling_module", "DescriptorHead", "DescriptorNetwork"]


class SPoC(nn.Module):
    """Sum pooling as a module: (N, C, H, W) → (N, C), unnormalised; calls :func:`cbir_lab.pooling.spoc`.

    Args:
        center_prior: weight each cell by the Gaussian centre prior.

    Reference:
        Babenko & Lempitsky, ICCV 2015, arXiv:1510.07493.

    Examples:
        >>> SPoC()(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])).tolist()
        [[10.0]]
    """

    def __init__(self, center_prior: bool = False) -> None:
        super().__init__()
        self.center_prior = bool(center_prior)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spoc(x, center_prior=self.center_prior)

    def extra_repr(self) -> str:
        return "center_prior=True" if self.center_prior else ""

class MAC(nn.Module):
    """Max pooling as a module: (N, C, H, W) → (N, C); calls :func:`cbir_lab.pooling.mac`.

    Reference:
        Tolias, Sicre & Jégou, ICLR 2016, arXiv:1511.05879.

    Examples:
        >>> MAC()(torch.tensor([[[[1.0, 9.0], [3.0, 4.0]]]])).tolist()
        [[9.0]]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mac(x)

class GeM(nn.Module):
    """Generalised-mean pooling with a learnable power, as cirtorch's ``GeM``; calls :func:`cbir_lab.pooling.gem`.

    Args:
        p: the initial power, > 0 (3 is the usual off-the-shelf choice).
        eps: the clamp of the activations, > 0.

    Attributes:
        p: a 0-d :class:`torch.nn.Parameter`: a loss's gradient reaches it, so training learns it.

    Reference:
        Radenović, Tolias & Chum, TPAMI 2018, arXiv:1711.02512.

    Examples:
        >>> pool = GeM(p=3.0)
        >>> pool
        GeM(p=3, eps=1e-06)
        >>> round(pool(torch.tensor([[[[1.0, 2.0], [2.0, 3.0]]]])).item(), 4)  # (44 / 4) ** (1/3)
        2.224
    """

    def __init__(self, p: float = _DEFAULT_P, eps: float = 1e-6) -> None:
        super().__init__()
        if isinstance(p, bool) or not (isinstance(p, (int, float)) and math.isfinite(p) and p > 0):
            raise ValueError(f"GeM: p must be a finite number > 0, got {p!r}")
        if not eps > 0:
            raise ValueError(f"GeM: eps must be > 0, got {eps!r}")
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gem(x, p=self.p, eps=self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4g}, eps={self.eps:g}"

class RMAC(nn.Module):
    """R-MAC as a module: (N, C, H, W) → (N, C), the unnormalised sum of unit regional MACs;
    calls :func:`cbir_lab.pooling.rmac` (the original's grid, without cirtorch's whole-map term).

    Args:
        levels: the number of scales L of :func:`cbir_lab.pooling.rmac_regions`.

    Reference:
        Tolias, Sicre & Jégou, ICLR 2016, arXiv:1511.05879.

    Examples:
        >>> RMAC(levels=1)(torch.ones(1, 2, 3, 3))
        tensor([[0.7071, 0.7071]])
    """

    def __init__(self, levels: int = _DEFAULT_LEVELS) -> None:
        super().__init__()
        if isinstance(levels, bool) or int(levels) != levels or levels < 1:
            raise ValueError(f"RMAC: levels must be an integer >= 1, got {levels!r}")
        self.levels = int(levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rmac(x, levels=self.levels)

    def regions(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised regional vectors (N, R, C) that :meth:`forward` sums
        (:func:`cbir_lab.pooling.regional_vectors`), for a whitening of each region."""
        return regional_vectors(x, self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


def pooling_module(pooling: "Pooling | str") -> nn.Module:
    """A pooling as a new ``nn.Module``: :class:`SPoC`, :class:`MAC`, :class:`GeM` (its ``p`` a
    learnable parameter, starting at the pooling's ``p``) or :class:`RMAC`; it computes what
    calling the pooling does.

    Args:
        pooling: a :class:`~cbir_lab.pooling.Pooling` or its name.

    Examples:
        >>> pooling_module("GeM (p=4)")
        GeM(p=4, eps=1e-06)
        >>> pooling_module(Pooling.parse("R-MAC (L=2)"))
        RMAC(levels=2)
    """
    pooling = Pooling.parse(pooling)
    if pooling.method == "spoc":
        return SPoC(center_prior=pooling.center_prior)
    if pooling.method == "mac":
        return MAC()
    if pooling.method == "gem":
        return GeM(p=pooling.p)
    return RMAC(levels=pooling.levels)


class DescriptorHead(nn.Module):
    """Pooling → L2 → whitening (an ``nn.Linear``, optional) → L2: feature maps (N, C, H, W) → descriptors (N, d).

    With an :class:`RMAC` pooling the whitening applies to each regional vector before
    the sum (as :meth:`cbir_lab.whitening.PCAWhitening.transform_regions` does, and the
    paper): regional vectors → whitening → L2 → sum → L2.

    Args:
        pooling: a pooling module (:class:`SPoC`, :class:`MAC`, :class:`GeM`, :class:`RMAC`,
            or any module (N, C, H, W) → (N, C)), or a :class:`~cbir_lab.pooling.Pooling` or its name.
        whitening: a linear map C → d applied after the first L2, or ``None`` for pooling → L2 alone.
        eps: the smallest norm divided by in each L2.

    Examples:
        >>> head = DescriptorHead("MAC")
        >>> head(torch.tensor([[[[3.0]], [[4.0]]]]))  # MAC (3, 4), then L2
        tensor([[0.6000, 0.8000]])
    """

    def __init__(self, pooling: "nn.Module | Pooling | str", whitening: nn.Linear | None = None,
                 eps: float = 1e-12) -> None:
        super().__init__()
        self.pool = pooling if isinstance(pooling, nn.Module) else pooling_module(pooling)
        self.whiten = whitening
        self.eps = float(eps)

    @classmethod
    def from_whitening(cls, pooling: "nn.Module | Pooling | str", whitening: "PCAWhitening",
                       n_components: int | None = None, power: float | None = None) -> "DescriptorHead":
        """A head whose linear layer is a fitted PCA-whitening: weight P, bias -P m.

        Args:
            pooling: as for the class.
            whitening: a fitted :class:`~cbir_lab.whitening.PCAWhitening` (for R-MAC, fitted on
                regional vectors, as for its :meth:`~cbir_lab.whitening.PCAWhitening.transform_regions`).
            n_components, power: as :meth:`~cbir_lab.whitening.PCAWhitening.projection`
                (default: the fitted settings).

        Returns:
            The head, in float32: it computes ``whitening.transform(pooled)`` (or
            ``transform_regions`` for R-MAC) to float32 rounding.
        """
        projection = torch.as_tensor(whitening.projection(n_components, power))  # (d, C), float64
        mean = torch.as_tensor(whitening.mean_)
        linear = nn.Linear(projection.shape[1], projection.shape[0])
        with torch.no_grad():
            linear.weight.copy_(projection)
            linear.bias.copy_(-(projection @ mean))
        return cls(pooling, linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.whiten is None:
            return l2n(self.pool(x), self.eps)
        if isinstance(self.pool, RMAC):
            regions = self.pool.regions(x)  # (N, R, C), each of unit norm
            return l2n(l2n(self.whiten(regions), self.eps).sum(dim=1), self.eps)
        return l2n(self.whiten(l2n(self.pool(x), self.eps)), self.eps)


class DescriptorNetwork(nn.Module):
    """uint8 pixels (N, H, W, 3) → ``(p / 255 - mean) / std`` → backbone → head: an image's descriptor.

    The module :func:`cbir_lab.onnx_network.export_descriptor_network` exports: its input
    is what :func:`cbir_lab.images.network_input` gives, batched.

    Args:
        backbone: a module from normalised images (N, 3, H, W) to feature maps (N, C, h, w).
        head: maps → descriptors, e.g. a :class:`DescriptorHead`.
        mean, std: the backbone's per-channel normalisation of [0, 1] RGB pixels.

    Examples:
        >>> network = DescriptorNetwork(nn.Identity(), DescriptorHead("MAC"), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        >>> network(torch.full((1, 2, 2, 3), 255, dtype=torch.uint8))  # every channel (1 - 0.5) / 0.5 = 1
        tensor([[0.5774, 0.5774, 0.5774]])
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, mean: "tuple[float, float, float]",
                 std: "tuple[float, float, float]") -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.permute(0, 3, 1, 2).float() / 255.0 - self.mean) / self.std
        return self.head(self.backbone(x))
