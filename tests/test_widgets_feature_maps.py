"""The lesson-1 explorer, driven by setting its controls (random-weight backbone, tiny images)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cbir_lab.backbones import load_backbone
from cbir_lab.viz.feature_maps import feature_map_view
from cbir_lab.viz.panels import png_bytes
from cbir_lab.widgets.feature_maps import FeatureMapExplorer


@pytest.fixture(scope="module")
def explorer():
    torch.manual_seed(0)
    backbone = load_backbone("efficientnet_lite0", weights=None, device="cpu")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)) for size in ((40, 80, 3), (80, 80, 3))]
    return FeatureMapExplorer(images, backbone, names=["wide", "square"], max_side=64)


def test_pure_view_states_shape_and_stride():
    image = np.zeros((64, 96, 3), np.uint8)
    maps = {"conv_head": np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)}
    picture, caption = feature_map_view(image, maps, "conv_head", 1)
    assert "2 channels × 2 × 3 cells for a 64 × 96 input" in caption
    assert "stride ≈ 32" in caption
    assert "max 11.00 at (y=1, x=2)" in caption  # channel 1 holds 6 … 11, the last cell largest
    with pytest.raises(ValueError, match="unknown layer"):
        feature_map_view(image, maps, "nope", 0)


def test_initial_state(explorer):
    assert explorer.layer.value == "conv_head"
    assert explorer.channel.max == 1279
    assert "conv_head: 1280 channels × 1 × 2 cells for a 32 × 64 input" in explorer.caption
    assert repr(explorer).startswith("FeatureMapExplorer(image='wide', layer='conv_head'")


def test_layer_change_resizes_the_channel_slider_and_redraws(explorer):
    explorer.channel.value = 1000
    explorer.layer.value = "blocks.2"
    assert explorer.channel.max == 39
    assert explorer.channel.value == 39  # clamped
    assert "blocks.2: 40 channels × 4 × 8 cells" in explorer.caption
    explorer.layer.value = "conv_head"
    assert explorer.channel.max == 1279


def test_channel_and_image_change_redraw(explorer):
    explorer.channel.value = 3
    first_png = explorer.view.value
    assert first_png[:8] == b"\x89PNG\r\n\x1a\n" and "Channel 3" in explorer.caption
    explorer.image.value = 1
    assert explorer.view.value != first_png
    assert explorer.view.value == png_bytes(explorer.picture)
    assert "for a 64 × 64 input" in explorer.caption
    explorer.image.value = 0


def test_errors_are_shown_not_raised(explorer):
    kept = explorer._maps[0]
    explorer._maps[0] = (kept[0], {})  # break the maps: the update must not raise
    explorer.channel.value = 4
    assert isinstance(explorer.error, KeyError)
    (shown,) = explorer.out.outputs  # the student sees the error in the Output
    assert shown["name"] == "stderr" and "KeyError" in shown["text"]
    explorer._maps[0] = kept
    explorer.channel.value = 5
    assert explorer.error is None


def test_output_shows_the_picture_and_caption(explorer):
    explorer.channel.value = 6
    (caption,) = explorer.out.outputs
    assert caption["text"].startswith("conv_head: 1280 channels") and "Channel 6" in caption["text"]
    assert explorer.picture.size[1] == 280 and explorer.view.format == "png"


def test_mimebundle_text_is_the_stable_repr(explorer):
    bundle = explorer._repr_mimebundle_()
    assert bundle["text/plain"] == repr(explorer)
    assert "application/vnd.jupyter.widget-view+json" in bundle
