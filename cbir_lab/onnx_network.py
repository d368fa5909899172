r"""The descriptor network as one ONNX file: pixels → pooled, L2-normalised descriptor, run without PyTorch.

Describing one query image takes a few milliseconds, but a new Python process
spends 1.5 s importing torch before it can, and 2 s more on timm and torchvision
to build the backbone. :func:`export_descriptor_network` writes the whole path
from pixels to descriptor as one ONNX graph, once, while torch is loaded anyway
(when a :class:`~cbir_lab.collection.PhotoCollection` is indexed);
:class:`DescriptorSession` runs it with ONNX Runtime, which imports in about 0.1 s.

The graph takes the uint8 pixels of :func:`cbir_lab.images.network_input`, shape
(1, H, W, 3) for any H and W, and computes what the PyTorch path computes:

.. math:: x = \frac{p / 255 - \mu}{\sigma}, \quad v = \mathrm{pool}(f(x)), \quad d = \frac{v}{\max(\lVert v \rVert_2, 10^{-12})}

with :math:`f` the backbone cut at its layer and :math:`\mu, \sigma` its
normalisation: the module :class:`cbir_lab.heads.DescriptorNetwork` with a
:class:`~cbir_lab.heads.DescriptorHead` (no whitening), checked against the
functional poolings. The graph is traced at one input size, so whatever Python
computes from the map's size is frozen at that size: R-MAC's region grid and
SPoC's centre prior are therefore refused at once with
:class:`ExportedNetworkError` (they run in PyTorch). Every export is also checked
before it is handed out: on probe images of four shapes, whose maps differ in
height and width, its descriptors must equal PyTorch's to within ``tolerance``
(they differ by float rounding, about 1e-6).

Only the tracing exporter of ``torch.onnx`` (``dynamo=False``) is used: it
exports EfficientNet-Lite0 in about 0.5 s, the graph-capturing one needs minutes
for the "same" padding's dynamic shapes.
"""

from __future__ import annotations

import inspect
import io
import os
import warnings
from typing import TYPE_CHECKING

import numpy as np

from cbir_lab._array import l2n
from cbir_lab.images import resized_size

if TYPE_CHECKING:
    from cbir_lab.backbones import Backbone
    from cbir_lab.pooling import Pooling
    from torch.nn import Module

__all__ = ["ExportedNetworkError", "DescriptorSession", "why_not_exportable", "export_descriptor_network",
           "probe_sizes"]

#: Aspect ratios (width : height) of the probe images an export is traced on (the first) and checked on:
#: landscape, portrait, square and a thin panorama, whose maps differ in height and width.
_PROBE_ASPECTS = ((2, 1), (1, 2), (1, 1), (8, 1))


class ExportedNetworkError(RuntimeError):
    """A descriptor network could not be exported, does not compute what PyTorch does, or cannot be loaded."""


def why_not_exportable(pooling: "Pooling") -> str | None:
    """Why ``pooling`` cannot be part of an exported network, or ``None`` when it can.

    Tracing records one run's arithmetic: whatever Python computes from the map's
    size (R-MAC's region grid, SPoC's centre prior) would be frozen at the size it
    was traced at.

    Examples:
        >>> from cbir_lab.pooling import GEM, RMAC
        >>> why_not_exportable(GEM) is None
        True
        >>> print(why_not_exportable(RMAC))
        R-MAC cannot be exported: its region grid is computed in Python from the map size, which an exported graph would freeze at one size
    """
    if not (pooling.regional or pooling.center_prior):
        return None
    part = "region grid" if pooling.regional else "centre prior"
    return (f"{pooling.name} cannot be exported: its {part} is computed in Python from the map size, which an "
            f"exported graph would freeze at one size")


def probe_sizes(max_side: int, stride: int) -> list[tuple[int, int]]:
    """The (width, height) of the probe images an export is traced on (the first) and checked on (all).

    Each is an image of one of the aspect ratios 2:1, 1:2, 1:1 and 8:1 resized as a
    query is (:func:`cbir_lab.images.resized_size`): maps of 12 × 6, 6 × 12, 12 × 12
    and 12 × 2 cells (width × height) at 384 pixels and stride 32.

    Examples:
        >>> probe_sizes(384, 32)
        [(384, 192), (192, 384), (384, 384), (384, 48)]
    """
    return [resized_size(w * 96, h * 96, max_side, min_side=stride) for w, h in _PROBE_ASPECTS]


def _probe_pixels(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth random image (coarse noise upsampled), photo-like enough to excite every channel."""
    coarse = np.random.default_rng(seed).integers(0, 256, (height // 8 + 1, width // 8 + 1, 3))
    return np.kron(coarse, np.ones((8, 8, 1)))[:height, :width].astype(np.uint8)


class DescriptorSession:
    """An exported descriptor network loaded into ONNX Runtime, on the CPU.

    Args:
        model: the ONNX file, or its bytes.

    Attributes:
        dim: the descriptor's dimension C.

    Raises:
        ImportError: ONNX Runtime is not installed.
        ExportedNetworkError: the model cannot be loaded (the message names the file).

    Examples:
        >>> session = DescriptorSession(store / "descriptor-network.onnx")  # doctest: +SKIP
        >>> session(network_input("query.jpg", 384)).shape  # doctest: +SKIP
        (1280,)
    """

    def __init__(self, model: bytes | str | os.PathLike) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its notes on graph optimisation are not for users
        # Its threads would otherwise spin between runs and take the cores from the ranking that follows
        # each one (a search in a session: 49 ms spinning, 27 ms not, on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        source = model if isinstance(model, bytes) else os.fspath(model)
        try:
            self._session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ONNX Runtime's own error types (Fail, InvalidProtobuf, ...) share no base
            name = "the exported network" if isinstance(model, bytes) else f"the exported network {source}"
            raise ExportedNetworkError(f"cannot load {name}: {err}") from err
        self._input = self._session.get_inputs()[0].name
        self.dim = int(self._session.get_outputs()[0].shape[1])

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """One image's descriptor.

        Args:
            pixels: uint8 RGB (H, W, 3), as :func:`cbir_lab.images.network_input` gives.

        Returns:
            float32 (C,), unit norm.
        """
        pixels = np.asarray(pixels)
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f"pixels must be a uint8 array of shape (H, W, 3), got {pixels.dtype} {pixels.shape}")
        return self._session.run(None, {self._input: pixels[None]})[0][0]


def export_descriptor_network(
    backbone: "Backbone", pooling: "Pooling", max_side: int, tolerance: float = 1e-4, head: "Module | None" = None
) -> bytes:
    """Export pixels → backbone → pooling → L2 (or → a trained head) as one ONNX graph, checked against PyTorch.

    Args:
        backbone: the network (on any device; the export runs a CPU copy).
        pooling: the pooling (its name only, when ``head`` is given).
        max_side: the long side queries are resized to; the probe images have it.
        tolerance: the largest difference allowed, per component, between the
            exported network's unit descriptors and PyTorch's.
        head: a module from the backbone's maps to descriptors that replaces pooling → L2: a
            trained :class:`~cbir_lab.learning.DescriptorModel` (:mod:`cbir_lab.trained_heads`).

    Returns:
        The ONNX model, as bytes (weights included: 13 MB for EfficientNet-Lite0).

    Raises:
        ImportError: ``onnx`` or ``onnxruntime`` is not installed.
        ExportedNetworkError: a pooling that depends on the map size
            (:func:`why_not_exportable`); the exporter failed; or the export's descriptors differ
            from PyTorch's on a probe image (the message gives the size and the difference).
    """
    if reason := why_not_exportable(pooling):
        raise ExportedNetworkError(reason)
    import copy

    import torch

    from cbir_lab.features import pixels_to_tensor
    from cbir_lab.heads import DescriptorHead, DescriptorNetwork

    descriptor_head = DescriptorHead(pooling) if head is None else copy.deepcopy(head).cpu().float()
    network = DescriptorNetwork(copy.deepcopy(backbone).cpu().eval(), descriptor_head, backbone.mean, backbone.std).eval()
    sizes = probe_sizes(max_side, backbone.stride)
    probes = [_probe_pixels(w, h, seed) for seed, (w, h) in enumerate(sizes)]
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            # The tracer warns about every Python branch on a shape; the check below is what tells.
            warnings.simplefilter("ignore")
            # torch < 2.5 has only the tracing exporter, and no `dynamo` switch.
            tracing = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
            torch.onnx.export(network, (torch.from_numpy(probes[0][None]),), buffer, **tracing,
                              input_names=["pixels"], output_names=["descriptor"],
                              dynamic_axes={"pixels": {1: "height", 2: "width"}}, opset_version=17)
    except ImportError:
        raise
    except Exception as err:
        raise ExportedNetworkError(f"torch.onnx could not export {backbone.name} with {pooling.name}: {err}") from err
    model = buffer.getvalue()
    session = DescriptorSession(model)
    cpu = network.backbone
    for (width, height), pixels in zip(sizes, probes):
        with torch.inference_mode():
            maps = cpu(pixels_to_tensor(pixels, cpu)[None])
            # the functional path, or the head's own forward in PyTorch
            expected = (l2n(pooling(maps)) if head is None else network.head(maps))[0].numpy()
        difference = float(np.abs(session(pixels) - expected).max())
        if not difference <= tolerance:  # also refuses NaN
            raise ExportedNetworkError(
                f"the exported {backbone.name} with {pooling.name} differs from PyTorch by {difference:.1e} on a "
                f"{width}x{height} image (tolerance {tolerance:.0e})")
    return model
