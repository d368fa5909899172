"""Images: every photo a user may have, read as 8-bit RGB, resized as the network sees it, named by content."""

import numpy as np
import pytest
from PIL import Image

from cbir_lab.images import (
    ImageLoadError,
    content_key,
    load_image,
    network_input,
    resize_for_network,
    resized_size,
    scaled_sides,
    to_rgb,
)

# ----- reading and converting ------------------------------------------------------------------

def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    img = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16))
    assert img.mode.startswith("I;16")
    assert np.asarray(to_rgb(img))[0, :, 0].tolist() == [0, 128, 255]


def test_float_image_in_unit_range_is_scaled():
    img = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert np.asarray(to_rgb(img))[0, :, 1].tolist() == [0, 128, 255]


def test_transparent_pixels_become_white():
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[0, 0] = [10, 20, 30, 255]  # opaque
    rgba[0, 1] = [0, 0, 0, 0]  # fully transparent black
    out = np.asarray(to_rgb(Image.fromarray(rgba, "RGBA")))
    assert out[0].tolist() == [[10, 20, 30], [255, 255, 255]]
    la = Image.fromarray(np.array([[[50, 0]]], dtype=np.uint8), "LA")
    assert np.asarray(to_rgb(la))[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1", "YCbCr"])
def test_other_modes_convert_to_rgb(mode):
    img = Image.new("RGB", (4, 3), (200, 100, 50)).convert(mode)
    out = to_rgb(img)
    assert out.mode == "RGB" and out.size == (4, 3)


def test_palette_with_transparency_is_composited():
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    img.info["transparency"] = 0
    assert np.asarray(to_rgb(img))[0].tolist() == [[255, 255, 255], [255, 0, 0]]


def test_exif_orientation_is_honoured(tmp_path):
    path = tmp_path / "rotated.jpg"
    img = Image.new("RGB", (40, 20), "red")
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(path, exif=exif)
    assert Image.open(path).size == (40, 20)
    assert load_image(path).size == (20, 40)


def test_corrupt_truncated_and_missing_files_name_the_file(tmp_path, photo):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageLoadError, match="garbage.jpg"):
        load_image(garbage)
    jpeg = tmp_path / "whole.jpg"
    Image.open(photo).save(jpeg, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    with pytest.raises(ImageLoadError, match="truncated.jpg"):
        load_image(truncated)
    with pytest.raises(ImageLoadError, match="missing.png.*does not exist"):
        load_image(tmp_path / "missing.png")


def test_bounding_box_crops_and_an_empty_box_is_an_error(photo):
    assert load_image((photo, (10, 5, 40, 25))).size == (30, 20)
    with pytest.raises(ImageLoadError, match="empty"):
        load_image((photo, (50, 5, 40, 25)))


# ----- resizing and extraction ------------------------------------------------------------------

def test_resized_size_keeps_the_aspect_ratio_and_a_minimum_side():
    assert resized_size(640, 480, 384) == (384, 288)
    assert resized_size(480, 640, 384) == (288, 384)
    assert resized_size(20, 10, 384) == (384, 192)  # small images are scaled up
    assert resized_size(1000, 10, 384, min_side=32) == (384, 32)  # a sliver still covers one stride

def test_network_input_keeps_the_aspect_ratio():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 100, 3), dtype=np.uint8))
    assert network_input(image, max_side=64).shape == (32, 64, 3)



def test_resize_for_network_reaches_the_size_resized_size_gives_and_leaves_a_fitting_image_alone():
    image = Image.new("RGB", (100, 40), (10, 20, 30))
    assert resize_for_network(image, 50, 32).size == (50, 32)  # 40 × 0.5 = 20 is raised to the stride
    assert resize_for_network(image, 100, 32) is image


def test_content_key_depends_on_content_and_crop_not_the_name(tmp_path, photo):
    copy = tmp_path / "copy.png"
    copy.write_bytes(photo.read_bytes())
    assert content_key(copy) == content_key(photo)
    assert content_key((photo, (0, 0, 10, 10))) != content_key(photo)



# ----- multi-scale sides ------------------------------------------------------------------------------

def test_scaled_sides_round_each_scale_and_keep_the_stride():
    assert scaled_sides(512, (1, 2 ** -0.5, 0.5)) == (512, 362, 256)
    assert scaled_sides(64, (1, 0.25), min_side=32) == (64, 32)  # 16 would give maps smaller than one cell
    assert scaled_sides(100, [2]) == (200,)


@pytest.mark.parametrize("scales", [(), (0,), (1, -0.5), (float("nan"),), (float("inf"),), None, 0.5, "1", ("a",)])
def test_bad_scales_are_named(scales):
    with pytest.raises(ValueError, match="scales must be"):
        scaled_sides(384, scales)
