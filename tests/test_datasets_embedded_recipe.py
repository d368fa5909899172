"""Tests of the embedded benchmark's recipe (cbir_lab.datasets.embedded_recipe): photos, scenes, views.

Nothing is written to disk: these check the recipe in memory.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from PIL import Image

from cbir_lab.datasets.embedded_recipe import (
    _perspective_coefficients,
    _rotate,
    _solve_exact,
    render_scene,
    scenes,
    source_photos,
)


# ------------------------------------------------------------------ sources and scenes


def test_sources_have_licences_and_unclear_ones_are_left_out():
    photos = source_photos()
    names = [p.name for p in photos]
    assert len(names) == len(set(names)) == 18
    assert all(p.licence and p.credit and p.function for p in photos)
    # scikit-image states no licence for these three; they must not be used.
    functions = " ".join(p.function for p in photos)
    for unclear in ("moon", "page", "stereo_motorcycle"):
        assert f"skimage.data.{unclear}(" not in functions


def test_every_photo_loads_offline_with_its_expected_size():
    for photo in source_photos():
        pixels = np.asarray(photo.loader())
        assert pixels.dtype == np.uint8, photo.name
        used = [s for s in scenes() if s.photo == photo.name]
        assert used, f"{photo.name} is listed but never used"
        height, width = pixels.shape[:2]
        assert max(s.box[3] for s in used) == height and max(s.box[2] for s in used) == width


def test_scenes_of_one_photo_do_not_overlap():
    by_photo: dict[str, list] = {}
    for s in scenes():
        by_photo.setdefault(s.photo, []).append(s.box)
    for photo, boxes in by_photo.items():
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                overlap_w = min(a[2], b[2]) - max(a[0], b[0])
                overlap_h = min(a[3], b[3]) - max(a[1], b[1])
                assert overlap_w <= 0 or overlap_h <= 0, (photo, a, b)


def test_train_and_test_use_disjoint_photos():
    test_photos = {s.photo for s in scenes("test")}
    train_photos = {s.photo for s in scenes("train")}
    assert test_photos and train_photos
    assert not test_photos & train_photos


# ------------------------------------------------------------------ rendering


def test_rendering_twice_gives_identical_pixels():
    for scene in (scenes("test")[0], scenes("train")[-1]):
        first, second = render_scene(scene), render_scene(scene)
        assert [v.file for v in first] == [v.file for v in second]
        for a, b in zip(first, second):
            assert a.recipe == b.recipe
            assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


# ------------------------------------------------------------------ the geometry helpers


def test_exact_solver_on_a_hand_checked_system():
    # x + y = 3, x - y = 1  ->  x = 2, y = 1
    F = Fraction
    assert _solve_exact([[F(1), F(1)], [F(1), F(-1)]], [F(3), F(1)]) == [2, 1]


def test_perspective_coefficients_identity_and_scaling():
    square = [(0, 0), (10, 0), (10, 10), (0, 10)]
    assert _perspective_coefficients(square, square) == (1, 0, 0, 0, 1, 0, 0, 0)
    doubled = [(0, 0), (20, 0), (20, 20), (0, 20)]
    # output (x, y) samples input (2x, 2y): a = e = 2, everything else 0
    assert _perspective_coefficients(square, doubled) == (2, 0, 0, 0, 2, 0, 0, 0)
    shifted = [(3, 4), (13, 4), (13, 14), (3, 14)]
    assert _perspective_coefficients(square, shifted) == (1, 0, 3, 0, 1, 4, 0, 0)


def test_rotation_quarter_turns_are_exact_and_small_angles_leave_no_empty_corners():
    pixels = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    turned = np.asarray(_rotate(Image.fromarray(pixels), 90.0))
    assert np.array_equal(turned, np.rot90(pixels))  # PIL and numpy both turn anticlockwise
    white = Image.new("RGB", (200, 120), (255, 255, 255))
    for angle in (-30.0, 12.5):
        rotated = np.asarray(_rotate(white, angle))
        assert rotated.min() == 255, angle  # black fill would show up as dark pixels
        assert 0.3 * 200 < rotated.shape[1] < 200
