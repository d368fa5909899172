"""The exported descriptor network: PyTorch's descriptors, for any image size, without PyTorch; refusals named."""

import re

import numpy as np
import pytest
import torch
from PIL import Image

from cbir_lab.backbones import load_backbone
from cbir_lab.features import extract_feature_maps
from cbir_lab.images import network_input
from cbir_lab.onnx_network import DescriptorSession, ExportedNetworkError, export_descriptor_network, probe_sizes
from cbir_lab.pipeline import describe
from cbir_lab.pooling import GEM, MAC, RMAC, SPOC, SPOC_PRIOR


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="module")
def gem_session(lite0):
    return DescriptorSession(export_descriptor_network(lite0, GEM, 128))


def test_probe_sizes_are_queries_of_four_shapes_resized_as_a_query_is():
    # 2:1, 1:2 and 1:1 at the long side; 8:1 gives 256 × 32, and at 512 its short side 64.
    assert probe_sizes(256, 32) == [(256, 128), (128, 256), (256, 256), (256, 32)]
    assert probe_sizes(512, 32)[3] == (512, 64)
    # At 96 pixels the maps are 3 × 2, 2 × 3, 3 × 3 and 3 × 1 cells (ceil(side / 32)): all different.
    assert [(-(-w // 32), -(-h // 32)) for w, h in probe_sizes(96, 32)] == [(3, 2), (2, 3), (3, 3), (3, 1)]


@pytest.mark.parametrize("size", [(128, 96), (37, 128), (128, 32)])
def test_the_export_gives_pytorchs_descriptor_for_a_photo_of_any_size(lite0, gem_session, size, tmp_path):
    rng = np.random.default_rng(sum(size))
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (size[1] // 4, size[0] // 4, 3), dtype=np.uint8)).resize(size).save(path)
    expected = describe(extract_feature_maps([path], lite0, 128, cache=False, progress=False), GEM)[0]
    got = gem_session(network_input(path, 128, lite0.stride))
    assert got.shape == (1280,) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.linalg.norm(got) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("pooling", [SPOC, MAC])
def test_sum_and_max_pooling_export_too(lite0, pooling):
    DescriptorSession(export_descriptor_network(lite0, pooling, 96))  # checked on four shapes, or it raises


@pytest.mark.parametrize("pooling, part", [(RMAC, "region grid"), (SPOC_PRIOR, "centre prior")])
def test_a_pooling_whose_arithmetic_follows_the_map_size_is_refused_with_the_reason(lite0, pooling, part):
    with pytest.raises(ExportedNetworkError, match=rf"{re.escape(pooling.name)} cannot be exported: its {part} is computed"):
        export_descriptor_network(lite0, pooling, 96)


def test_the_check_catches_a_size_frozen_into_the_graph(lite0, monkeypatch):
    # Were R-MAC let through, its grid traced on a 3 × 2 map would be wrong on the 2 × 3 probe, and the check says so.
    monkeypatch.setattr(type(RMAC), "regional", property(lambda self: False))
    with pytest.raises(ExportedNetworkError, match=r"R-MAC differs from PyTorch by .* on a 48x96 image"):
        export_descriptor_network(lite0, RMAC, 96)


def test_a_stricter_tolerance_than_float_rounding_refuses_even_gem(lite0):
    with pytest.raises(ExportedNetworkError, match="on a 64x32 image \\(tolerance 1e-12\\)"):
        export_descriptor_network(lite0, GEM, 64, tolerance=1e-12)


def test_the_export_leaves_the_backbone_as_it_was(lite0):
    before = {name: value.clone() for name, value in lite0.state_dict().items()}
    export_descriptor_network(lite0, GEM, 64)
    assert all(torch.equal(before[name], value) for name, value in lite0.state_dict().items())
    assert not lite0.training


def test_bad_models_and_pixels_are_named(gem_session, tmp_path):
    broken = tmp_path / "descriptor-network.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ExportedNetworkError, match=r"cannot load the exported network .*descriptor-network\.onnx"):
        DescriptorSession(broken)
    with pytest.raises(ValueError, match=r"uint8 array of shape \(H, W, 3\), got float32 \(4, 4, 3\)"):
        gem_session(np.zeros((4, 4, 3), np.float32))
