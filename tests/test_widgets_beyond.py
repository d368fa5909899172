"""Lesson 10's match explorer and its figure: the controls pick a pair, the view shows its matches and inliers."""

import importlib.util

import numpy as np
import pytest
from PIL import Image

from cbir_lab.verification import LocalFeatures, SpatialVerifier, Verification
from cbir_lab.viz.beyond import MATCH_COLOURS, match_segments, plot_matches
from cbir_lab.widgets import MatchExplorer

needs_cv2 = pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="needs opencv-python-headless")


@pytest.fixture(scope="module")
def photos():
    from skimage import data

    astronaut = Image.fromarray(data.astronaut()).resize((256, 256))
    shifted = astronaut.rotate(8, translate=(12, -6))  # the same scene, moved: many inliers
    other = Image.fromarray(data.coffee()).resize((300, 200))  # an unrelated photo: few
    return astronaut, shifted, other


@needs_cv2
def test_the_explorer_verifies_the_selected_pair_and_draws_it(photos):
    astronaut, shifted, other = photos
    verifier = SpatialVerifier(max_side=256)
    ranks = np.array([[0], [1]])  # query 0: the shifted copy first, the coffee cup second
    explorer = MatchExplorer(verifier, [astronaut], [shifted, other], ranks, top_k=5, labels=["astronaut"],
                             positives=[[0]])
    assert explorer.position.max == 2  # the ranking has two results
    assert explorer.pair() == (0, 0) and explorer.error is None
    first = explorer.current
    assert first.n_inliers >= 15 and "shows the query's object" in explorer.caption and "verified" in explorer.caption
    assert bytes(explorer.view.value).startswith(b"\x89PNG")
    assert explorer.caption in str(explorer.out.outputs)
    explorer.position.value = 2
    assert explorer.pair() == (0, 1)
    assert explorer.current.n_inliers < 15 and "another object" in explorer.caption
    assert "not verified (at least 15)" in explorer.caption
    explorer.show.value = "inliers"
    assert explorer.error is None
    assert repr(explorer) == "MatchExplorer(query='astronaut', result=2, image=1, show='inliers')"
    assert verifier.cached_images == 3  # each image's features extracted once


def test_a_ranking_of_the_wrong_width_is_refused(photos):
    with pytest.raises(ValueError, match="for 2 queries"):
        MatchExplorer(SpatialVerifier(), photos[:2], photos, np.zeros((3, 1), dtype=int))


def _toy():
    a = LocalFeatures(np.array([[10.0, 10.0], [50.0, 20.0], [30.0, 40.0]], np.float32), np.zeros((3, 128), np.uint8),
                      1.0, (64, 48))
    b = LocalFeatures(np.array([[20.0, 10.0], [60.0, 20.0], [5.0, 5.0]], np.float32), np.zeros((3, 128), np.uint8),
                      1.0, (64, 48))
    model = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # 10 pixels to the right
    return a, b, Verification(3, 2, model, np.array([[0, 0], [1, 1], [2, 2]]), np.array([True, True, False]))


def test_segments_join_each_match_with_b_drawn_to_the_right():
    a, b, v = _toy()
    segments, inliers = match_segments(a, b, v, offset=100.0, scale_a=2.0, scale_b=0.5)
    assert segments[0].tolist() == [[20.0, 20.0], [110.0, 5.0]] and inliers.tolist() == [True, True, False]


def test_the_figure_colours_inliers_and_outliers_and_draws_the_models_frame():
    a, b, v = _toy()
    image_a = np.full((48, 64, 3), 120, np.uint8)
    image_b = Image.new("RGB", (64, 48), "grey")
    ax = plot_matches(image_a, image_b, a, b, v, height=96).axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["1 other match", "2 inliers", "the model's frame of the query"]
    outliers, inliers = ax.collections
    assert len(outliers.get_segments()) == 1 and len(inliers.get_segments()) == 2
    assert tuple(inliers.get_colors()[0][:3]) == pytest.approx(tuple(int(MATCH_COLOURS["inlier"][i:i + 2], 16) / 255
                                                                     for i in (1, 3, 5)))
    only = plot_matches(image_a, image_b, a, b, v, show="matches").axes[0]
    assert len(only.collections) == 1 and len(only.collections[0].get_segments()) == 3 and not only.lines
    few = plot_matches(image_a, image_b, a, b, v, max_lines=1).axes[0]
    assert [len(c.get_segments()) for c in few.collections] == [1, 1]
    assert few.get_legend_handles_labels()[1][:2] == ["1 other match", "2 inliers"]  # the legend counts them all
    with pytest.raises(ValueError, match="show must be one of"):
        plot_matches(image_a, image_b, a, b, v, show="all")
