"""Backbone specs: names, layers, strides and normalisation, known without loading torch."""

import subprocess
import sys

import pytest

from cbir_lab.backbone_specs import available_backbones, backbone_spec


def test_available_backbones_lists_names_and_layers():
    specs = available_backbones()
    assert {"efficientnet_lite0", "vgg16", "resnet50", "resnet101"} <= set(specs)
    assert specs["vgg16"].default_layer == "conv5_3"
    assert specs["resnet50"].layers["layer4"] == (2048, 32)


def test_every_stride_is_a_power_of_two_that_never_shrinks_with_depth():
    for spec in available_backbones().values():
        strides = [stride for _, stride in spec.layers.values()]
        assert all(s & (s - 1) == 0 for s in strides) and strides == sorted(strides), spec.name
        assert spec.default_layer == list(spec.layers)[-1]  # the deepest conv map


def test_the_lite_normalisation_is_pixel_minus_127_over_128():
    spec = backbone_spec("efficientnet_lite0")
    # On [0, 1] pixels: (p/255 - 127/255) / (128/255) = (p - 127) / 128, for every channel.
    for mean, std in zip(spec.mean, spec.std):
        assert (255 / 255 - mean) / std == pytest.approx((255 - 127) / 128)


def test_resolve_layer_gives_the_default_or_names_the_layers_there_are():
    spec = backbone_spec("efficientnet_lite0")
    assert spec.resolve_layer(None) == "conv_head" and spec.resolve_layer("blocks.3") == "blocks.3"
    with pytest.raises(ValueError, match=r"has no layer 'conv9'; choose one of \['blocks.0'"):
        spec.resolve_layer("conv9")
    with pytest.raises(ValueError, match=r"unknown backbone 'alexnet'; available: \['efficientnet_lite0'"):
        backbone_spec("alexnet")


def test_the_specs_load_without_torch():
    code = "import sys, cbir_lab.backbone_specs; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
