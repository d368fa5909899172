r"""Descriptor heads as ``nn.Module``: feature map → pooled, L2-normalised, whitened descriptor.

* :class:`SPoC`, :class:`MAC`, :class:`GeM` (its power ``p`` a learnable
  :class:`torch.nn.Parameter`) and :class:`RMAC`: the poolings of
  :mod:`cbir_lab.pooling` as thin modules over its functions, as cirtorch's
  ``layers/pooling.py`` has them. :meth:`cbir_lab.pooling.Pooling.module` gives
  the one for a :class:`~cbir_lab.pooling.Pooling`. (``cbir_lab.pooling.MAC`` and
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

from typing import TYPE_CHECKING

import torch
from torch import nn

from cbir_lab._array import l2n
from cbir_lab.pooling import Pooling, _module_classes

if TYPE_CHECKING:
    from cbir_lab.whitening import PCAWhitening

__all__ = ["SPoC", "MAC", "GeM", "RMAC", "DescriptorHead", "DescriptorNetwork"]

_classes = _module_classes()
SPoC = _classes["SPoC"]
MAC = _classes["MAC"]
GeM = _classes["GeM"]
RMAC = _classes["RMAC"]
del _classes


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
        self.pool = pooling if isinstance(pooling, nn.Module) else Pooling.parse(pooling).module()
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
