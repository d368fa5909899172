"""Spatial verification: models and inliers by hand, a robust fit on synthetic matches with known outliers,
a real photo against a warped copy of itself and against an unrelated one, re-ranking and verified QE by hand."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cbir_lab.verification import (
    LocalFeatures,
    SpatialVerifier,
    count_inliers,
    extract_local_features,
    fit_model,
    inlier_mask,
    match_descriptors,
    rerank_by_inliers,
    transform_points,
    verified_query_expansion,
    verify_pair,
)

# ---------------------------------------------------------------- a given model, by hand

# x' = 2x + 1, y' = y - 3, written as a homography
SCALE_SHIFT = np.array([[2.0, 0.0, 1.0], [0.0, 1.0, -3.0], [0.0, 0.0, 1.0]])


def test_inliers_of_a_given_model_by_hand():
    src = [[0, 0], [1, 1], [2, 5], [10, 0], [3, 3]]
    dst = [[1, -3],     # exactly (2*0 + 1, 0 - 3): error 0
           [3, -1],     # model gives (3, -2): error 1
           [5, 2.5],    # model gives (5, 2): error .5
           [21, 1],     # model gives (21, -3): error 4
           [9, 3]]      # model gives (7, 0): error sqrt(4 + 9) = 3.6
    assert inlier_mask(SCALE_SHIFT, src, dst, threshold=1.5).tolist() == [True, True, True, False, False]
    assert count_inliers(SCALE_SHIFT, src, dst, threshold=1.5) == 3
    assert count_inliers(SCALE_SHIFT, src, dst, threshold=1.0) == 2       # "< t": an error of exactly 1 is out
    assert count_inliers(SCALE_SHIFT[:2], src, dst, threshold=3.7) == 4   # the same model as a (2, 3) affine matrix


def test_transform_points_divides_by_the_third_coordinate():
    # H maps (x, y) to (x, y) / (1 + x): (1, 2) -> (.5, 1); (-1, 0) goes to infinity
    h = np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 1.0]])
    out = transform_points(h, [[1, 2], [-1, 0]])
    np.testing.assert_allclose(out[0], [0.5, 1.0])
    assert np.isinf(out[1]).all()
    assert count_inliers(h, [[-1, 0]], [[0, 0]], threshold=100) == 0


# ---------------------------------------------------------------- the robust fit on synthetic matches

needs_cv2 = pytest.mark.skipif(importlib.util.find_spec("cv2") is None,
                               reason="needs OpenCV: pip install opencv-python-headless")

KNOWN_HOMOGRAPHY = np.array([[0.95, 0.10, 25.0], [-0.08, 1.05, -12.0], [2e-4, -1e-4, 1.0]])
KNOWN_AFFINE = np.array([[0.90, 0.15, 30.0], [-0.20, 1.10, 15.0], [0.0, 0.0, 1.0]])


def synthetic_matches(model, n=150, outlier_share=0.4, noise=0.3, seed=0):
    """n matches in a 640 x 480 image: inliers mapped by ``model`` (+ Gaussian noise), outliers at random
    but at least 40 pixels from where the model would put them, so the truth is unambiguous."""
    rng = np.random.default_rng(seed)
    src = rng.uniform([0, 0], [640, 480], size=(n, 2))
    dst = transform_points(model, src) + rng.normal(scale=noise, size=(n, 2))
    truth = np.ones(n, dtype=bool)
    truth[rng.choice(n, int(outlier_share * n), replace=False)] = False
    for i in np.flatnonzero(~truth):
        while True:
            candidate = rng.uniform([0, 0], [640, 480])
            if np.linalg.norm(candidate - transform_points(model, src[i:i + 1])[0]) > 40:
                dst[i] = candidate
                break
    return src, dst, truth


GRID = np.stack(np.meshgrid(np.linspace(0, 640, 5), np.linspace(0, 480, 5)), axis=-1).reshape(-1, 2)


@needs_cv2
@pytest.mark.parametrize("kind, known", [("homography", KNOWN_HOMOGRAPHY), ("affine", KNOWN_AFFINE)])
def test_the_robust_fit_finds_the_model_and_exactly_the_inliers_among_40_percent_outliers(kind, known):
    src, dst, truth = synthetic_matches(known)
    model, inliers = fit_model(src, dst, model=kind, threshold=3.0)
    assert model.shape == (3, 3) and model[2, 2] == pytest.approx(1.0)
    # the fitted model puts every point of the image within half a pixel of where the true one does
    assert np.abs(transform_points(model, GRID) - transform_points(known, GRID)).max() < 0.5
    np.testing.assert_array_equal(inliers, truth)
    if kind == "affine":
        np.testing.assert_array_equal(model[2], [0.0, 0.0, 1.0])


@needs_cv2
def test_the_fit_is_the_same_on_a_rerun_with_the_same_seed():
    src, dst, _ = synthetic_matches(KNOWN_HOMOGRAPHY, noise=2.0, outlier_share=0.6, seed=3)
    first = fit_model(src, dst, model="homography", threshold=3.0, seed=7)
    fit_model(src[::-1], dst[::-1], model="homography", threshold=3.0, seed=1)  # something else in between
    second = fit_model(src, dst, model="homography", threshold=3.0, seed=7)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_too_few_matches_give_no_model():
    model, inliers = fit_model([[0, 0], [1, 0], [0, 1]], [[0, 0], [1, 0], [0, 1]], model="homography")
    assert model is None and inliers.tolist() == [False, False, False]
    model, inliers = fit_model(np.zeros((0, 2)), np.zeros((0, 2)))
    assert model is None and inliers.shape == (0,)


# ---------------------------------------------------------------- matching, by hand


def test_matching_by_hand_ratio_test_and_mutual_check():
    a = [[0.0, 0.0], [10.0, 0.0], [0.5, 0.0]]
    b = [[1.0, 0.0], [10.0, 1.0], [10.0, -1.2]]
    # nearest in b: a0 -> b0 (1; second 10.05), a1 -> b1 (1; second 1.2), a2 -> b0 (.5; second 9.6)
    # ratio test (0.8): a0 and a2 pass, a1 fails (1 > .96); mutual: b0's nearest in a is a2 (.5), not a0
    assert match_descriptors(a, b, mutual=False).tolist() == [[0, 0], [2, 0]]
    assert match_descriptors(a, b).tolist() == [[2, 0]]
    assert match_descriptors(a, b, ratio=None).tolist() == [[1, 1], [2, 0]]
    assert match_descriptors(a, [[1.0, 0.0]]).shape == (0, 2)  # no second nearest: the ratio test keeps nothing
    assert match_descriptors(np.zeros((0, 2)), b).shape == (0, 2)


# ---------------------------------------------------------------- real photos


@pytest.fixture(scope="module")
def astronaut():
    from skimage import data

    return data.astronaut()  # 512 x 512 RGB, public domain (NASA)


@pytest.fixture(scope="module")
def warped(astronaut):
    import cv2

    return cv2.warpPerspective(astronaut, KNOWN_HOMOGRAPHY, (512, 512))


@needs_cv2
def test_a_photo_against_a_warped_copy_many_inliers_and_the_homography_recovered(astronaut, warped):
    a, b = extract_local_features(astronaut), extract_local_features(warped)
    assert isinstance(a, LocalFeatures) and a.descriptors.dtype == np.uint8 and a.descriptors.shape[1] == 128
    assert a.scale == 1.0 and a.size == (512, 512)
    result = verify_pair(a, b, model="homography")
    assert result.n_inliers > 300 and result.n_inliers <= result.n_matches
    corners = np.array([[0, 0], [511, 0], [0, 511], [511, 511], [256, 256]])
    assert np.abs(transform_points(result.model, corners) - transform_points(KNOWN_HOMOGRAPHY, corners)).max() < 1.0
    # an affine model cannot follow the perspective, but still explains most matches at 10 pixels
    assert verify_pair(a, b, model="affine").n_inliers > 0.8 * result.n_inliers


@needs_cv2
def test_a_photo_against_an_unrelated_one_few_inliers(astronaut):
    from skimage import data
    from sklearn.datasets import load_sample_image

    a = extract_local_features(astronaut)
    for other in (data.coffee(), load_sample_image("china.jpg")):
        b = extract_local_features(other)
        for model in ("affine", "homography"):
            assert verify_pair(a, b, model=model).n_inliers < 15


@needs_cv2
def test_a_large_photo_is_shrunk_to_max_side_and_its_keypoints_lie_inside(astronaut):
    big = np.asarray(Image.fromarray(astronaut).resize((1536, 1024)))
    features = extract_local_features(big, max_side=768, n_features=500)
    assert features.size == (768, 512) and features.scale == pytest.approx(0.5)
    assert 0 < len(features.keypoints) <= 500 + 10  # SIFT keeps ties at the last contrast
    assert (features.keypoints >= 0).all() and (features.keypoints < [768, 512]).all()
    grey = extract_local_features(np.asarray(Image.fromarray(astronaut).convert("L")))
    assert len(grey.keypoints) > 100


@needs_cv2
def test_the_verifier_extracts_each_image_once_and_reranks_a_ranking(astronaut, warped, tmp_path):
    from skimage import data

    paths = {}
    for name, pixels in (("astronaut", astronaut), ("warped", warped), ("coffee", data.coffee())):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(pixels).save(paths[name])
    verifier = SpatialVerifier(model="homography")
    images = [paths["coffee"], paths["warped"]]
    ranks = np.array([[0], [1]])  # the descriptor put the coffee cup first
    counts = verifier.inlier_counts([paths["astronaut"]], images, ranks, top_k=100)
    assert counts.shape == (2, 1) and counts[0, 0] < 15 < 300 < counts[1, 0]
    assert verifier.cached_images == 3 and verifier.cached_bytes > 0
    assert rerank_by_inliers(ranks, counts)[:, 0].tolist() == [1, 0]
    verifier.features(paths["astronaut"])  # seen before: not extracted again
    assert verifier.cached_images == 3
    # the same pixels as arrays are two more keys, and the same count
    assert verifier.verify(astronaut, warped).n_inliers == counts[1, 0]
    assert verifier.cached_images == 5
    verifier.clear()
    assert verifier.cached_images == 0


# ---------------------------------------------------------------- re-ranking and verified QE, by hand


def test_rerank_by_inliers_by_hand():
    ranks = np.array([[5, 0],
                      [3, 1],
                      [9, 2],
                      [1, 3],
                      [0, 4],
                      [2, 5]])
    inliers = np.array([[4, 50],    # query 0 checks its top 4 (5, 3, 9, 1); query 1 too (0, 1, 2, 3)
                        [30, 50],
                        [16, 15],
                        [30, 14]])
    out = rerank_by_inliers(ranks, inliers, min_inliers=15)
    # query 0: verified 3 (30), 9 (16), 1 (30) -> 3, 1 (a tie: original order), 9; then 5 (4 < 15); then 0, 2
    # query 1: verified 0 (50), 1 (50), 2 (15) -> 0, 1, 2; then 3 (14); then 4, 5
    assert out[:, 0].tolist() == [3, 1, 9, 5, 0, 2]
    assert out[:, 1].tolist() == [0, 1, 2, 3, 4, 5]
    assert out.dtype == np.int64 and ranks[0, 0] == 5  # the input is not changed
    # min_inliers = 0: every checked result counts, by its inliers
    assert rerank_by_inliers(ranks, inliers, min_inliers=0)[:4, 0].tolist() == [3, 1, 9, 5]


def test_verified_query_expansion_by_hand():
    db = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    q = np.array([[0.6, 0.8, 0.0], [0.0, 0.6, 0.8]])
    ranks = np.array([[1, 2], [0, 1], [2, 0]])
    inliers = np.array([[20, 3], [25, 2], [1, 0]])
    out = verified_query_expansion(q, db, ranks, inliers, min_inliers=15)
    # query 0: verified 1 and 0 -> q + e1 + e0 = (1.6, 1.8, 0), norm sqrt(2.56 + 3.24) = sqrt(5.8)
    np.testing.assert_allclose(out[0], np.array([1.6, 1.8, 0.0]) / np.sqrt(5.8), rtol=1e-6)
    # query 1: nothing verified -> itself
    np.testing.assert_allclose(out[1], q[1], rtol=1e-6)
    assert out.dtype == np.float32 and out.shape == (2, 3)


# ---------------------------------------------------------------- packaging and bad inputs


def test_the_module_loads_without_torch_and_without_opencv_until_needed():
    code = ("import sys; import cbir_lab.verification as v; "
            "print('torch' in sys.modules, 'cv2' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False False", done.stderr


def test_a_missing_opencv_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # "import cv2" now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "cbir-lab\[beyond\]"'):
        extract_local_features(np.zeros((8, 8), np.uint8))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: match_descriptors([[0.0]], [[0.0], [1.0]], ratio=1.5), r"^ratio must be in \(0, 1\]"),
        (lambda: match_descriptors([[0.0, 1.0]], [[0.0], [1.0]]), r"^desc_a have dimension 2 but desc_b"),
        (lambda: match_descriptors([[np.nan]], [[0.0], [1.0]]), r"^desc_a contains NaN"),
        (lambda: inlier_mask(SCALE_SHIFT, [[0, 0]], [[0, 0]], threshold=0), r"^threshold must be a positive"),
        (lambda: inlier_mask(SCALE_SHIFT, [[0, 0]], [[0, 0], [1, 1]], 1), r"^src and dst must have the same shape"),
        (lambda: inlier_mask(np.eye(2), [[0, 0]], [[0, 0]], 1), r"^model must be a finite \(3, 3\)"),
        (lambda: inlier_mask(SCALE_SHIFT, [[0, 0, 0]], [[0, 0, 0]], 1), r"^src must have shape \(m, 2\)"),
        (lambda: fit_model([[0, 0]], [[0, 0]], model="similarity"), r"^model must be 'affine' or 'homography'"),
        (lambda: fit_model([[0, 0]], [[0, 0]], threshold=np.nan), r"^threshold must be a positive"),
        (lambda: SpatialVerifier(model="rigid"), r"^model must be 'affine' or 'homography'"),
        (lambda: extract_local_features(np.zeros((4, 4), np.float32)), r"^image must be uint8"),
        (lambda: extract_local_features(np.zeros((4, 4, 2), np.uint8)), r"^image must have shape"),
        (lambda: extract_local_features(np.zeros((4, 4), np.uint8), max_side=0), r"^max_side must be a positive"),
        (lambda: rerank_by_inliers(np.zeros((3, 2), int), np.zeros((4, 2))), r"^inliers must have shape \(k, n_q"),
        (lambda: rerank_by_inliers(np.zeros((3, 2), int), -np.ones((2, 2))), r"^inliers must be finite and non-neg"),
        (lambda: rerank_by_inliers(np.zeros((3, 2)), np.zeros((2, 2))), r"^ranks must be an integer array"),
        (lambda: rerank_by_inliers(np.zeros((3, 2), int), np.zeros((2, 2)), min_inliers=-1), r"^min_inliers must"),
        (lambda: verified_query_expansion([[1.0, 0.0]], [[1.0, 0.0]], np.zeros((1, 2), int), np.zeros((1, 2))),
         r"^ranks has 2 queries but query_vecs has 1"),
        (lambda: verified_query_expansion([[1.0, 0.0]], [[1.0]], np.zeros((1, 1), int), np.zeros((1, 1))),
         r"^query_vecs have dimension 2 but db_vecs have dimension 1"),
        (lambda: SpatialVerifier().inlier_counts([], [], np.zeros((2, 1), int)), r"^queries has 0 images but ranks"),
        (lambda: SpatialVerifier().inlier_counts([None], [], np.zeros((2, 1), int), top_k=0), r"^top_k must"),
    ],
)
def test_bad_inputs_raise_naming_the_parameter(call, message):
    with pytest.raises(ValueError, match=message):
        call()
