"""Feature extraction: aspect ratio, batching, every layer's maps, and a cache that is never stale."""

import numpy as np
import pytest
import torch
from PIL import Image

from cbir_lab.backbones import load_backbone
from cbir_lab.features import FeatureCache, extract_feature_maps, layer_feature_maps, pixels_to_tensor, prepare_image
from cbir_lab.images import content_key, network_input


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet_lite0", device="cpu")


# ----- maps ----------------------------------------------------------------------------------------

def test_maps_follow_the_input_size_and_stride(lite0, photo):
    (fmap,) = extract_feature_maps([photo], lite0, max_side=192, cache=False)
    assert fmap.shape == (1280, 4, 6)  # 192x128 input, stride 32
    assert fmap.dtype == torch.float32


def test_an_image_smaller_than_the_stride_still_gives_a_map(lite0):
    tiny = Image.new("RGB", (5, 3), (120, 30, 200))
    (fmap,) = extract_feature_maps([tiny], lite0, max_side=64, cache=False)
    assert fmap.shape[0] == 1280 and fmap.shape[1] >= 1 and fmap.shape[2] >= 1
    assert torch.isfinite(fmap).all()


def test_batched_and_single_extraction_agree(lite0, photo):
    img = Image.open(photo)
    flipped = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    batched = extract_feature_maps([img, flipped, img], lite0, max_side=96, cache=False, batch_size=8)
    single = [extract_feature_maps([im], lite0, max_side=96, cache=False)[0] for im in (img, flipped)]
    assert torch.allclose(batched[0], single[0], atol=1e-4)
    assert torch.allclose(batched[1], single[1], atol=1e-4)
    assert torch.equal(batched[0], batched[2])


def test_bad_arguments_are_reported(lite0, photo):
    with pytest.raises(ValueError, match="max_side"):
        extract_feature_maps([photo], lite0, max_side=8)
    with pytest.raises(TypeError, match="sequence"):
        extract_feature_maps(photo, lite0)


# ----- the cache -----------------------------------------------------------------------------------

class CountingBackbone(torch.nn.Module):
    """Wraps a backbone and counts the images it really computes."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.seen = 0
        for attr in ("name", "layer", "out_channels", "stride", "mean", "std", "weights", "cache_tag", "normalize"):
            setattr(self, attr, getattr(inner, attr))

    @property
    def device(self):
        return self.inner.device

    def forward(self, x):
        self.seen += x.shape[0]
        return self.inner(x)


def test_cache_hits_unchanged_images_and_recomputes_changed_content(lite0, photo, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    counting = CountingBackbone(lite0)
    first = extract_feature_maps([photo], counting, max_side=64, cache=cache)[0]
    again = extract_feature_maps([photo], counting, max_side=64, cache=cache)[0]
    assert counting.seen == 1 and torch.equal(first, again)

    # same file name, new content: must be recomputed, and give other features
    Image.new("RGB", (90, 60), (0, 90, 255)).save(photo)
    changed = extract_feature_maps([photo], counting, max_side=64, cache=cache)[0]
    assert counting.seen == 2
    assert not torch.allclose(changed, first)

    # another image size is another entry
    extract_feature_maps([photo], counting, max_side=96, cache=cache)
    assert counting.seen == 3


def test_cached_values_equal_fresh_values(lite0, photo, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    fresh = extract_feature_maps([photo], lite0, max_side=64, cache=cache)[0]
    cached = extract_feature_maps([photo], lite0, max_side=64, cache=cache)[0]
    assert torch.equal(fresh, cached)
    uncached = extract_feature_maps([photo], lite0, max_side=64, cache=False)[0]
    assert torch.allclose(uncached, cached, rtol=2e-3, atol=2e-3)  # float16 storage


def test_a_corrupt_cache_entry_is_recomputed(lite0, photo, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    extract_feature_maps([photo], lite0, max_side=64, cache=cache)
    entry = cache.path(lite0, 64, content_key(photo))
    entry.write_bytes(b"broken")
    (fmap,) = extract_feature_maps([photo], lite0, max_side=64, cache=cache)
    assert fmap.shape == (1280, 2, 2)
    assert np.load(entry).shape == (1280, 2, 2)



# ----- what the network sees, and every layer's maps -----------------------------------------------

@pytest.fixture(scope="module")
def random_backbone():
    """EfficientNet-Lite0 with random weights: the right shapes, no weight file needed."""
    torch.manual_seed(0)
    return load_backbone("efficientnet_lite0", weights=None, device="cpu")



def test_prepare_image_is_the_network_input_normalised(random_backbone):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (50, 100, 3), dtype=np.uint8))
    pixels = network_input(image, max_side=64)
    expected = (torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255 - 127 / 255) / (128 / 255)  # (p - 127) / 128
    assert torch.allclose(prepare_image(image, random_backbone, 64), expected, atol=1e-5)
    assert torch.equal(pixels_to_tensor(pixels, random_backbone), prepare_image(image, random_backbone, 64))
    with pytest.raises(ValueError, match="uint8"):
        pixels_to_tensor(pixels.astype(np.float32), random_backbone)


def test_layer_feature_maps_gives_every_layer_at_its_stride(random_backbone):
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 100, 3), dtype=np.uint8))
    pixels, maps = layer_feature_maps(photo, random_backbone, max_side=96)  # a 48 x 96 input
    assert pixels.shape == (48, 96, 3) and pixels.dtype == np.uint8
    assert list(maps) == ["blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5", "blocks.6", "conv_head"]
    assert maps["blocks.0"].shape == (16, 24, 48)  # stride 2
    assert maps["blocks.2"].shape == (40, 6, 12)  # stride 8
    assert maps["conv_head"].shape == (1280, 2, 3)  # ceil(48 / 32), ceil(96 / 32)
    # the deepest map is what the backbone's own forward pass gives
    with torch.inference_mode():
        direct = random_backbone(pixels_to_tensor(pixels, random_backbone)[None])[0].numpy()
    np.testing.assert_allclose(maps["conv_head"], direct, atol=1e-5)


def test_a_cache_that_cannot_be_written_is_read_and_warned_about_once(lite0, photo, tmp_path, monkeypatch):
    import cbir_lab.features as features_module

    cache = FeatureCache(tmp_path / "shared")
    kept = extract_feature_maps([photo], lite0, max_side=64, cache=cache)[0]  # filled while still writable
    other = tmp_path / "other.png"
    Image.new("RGB", (80, 50), (200, 30, 30)).save(other)

    def refuse(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(features_module, "atomic_write", refuse)
    counting = CountingBackbone(lite0)
    with pytest.warns(UserWarning, match="cannot write to the feature cache") as caught:
        maps = extract_feature_maps([photo, other, other], counting, max_side=64, cache=cache)
    assert len([w for w in caught if "feature cache" in str(w.message)]) == 1
    assert torch.equal(maps[0], kept)  # the shared entry is still read
    assert counting.seen == 2  # both copies of the new image; the shared one came from the cache
    assert torch.allclose(maps[1], extract_feature_maps([other], lite0, max_side=64, cache=False)[0], atol=2e-3)
