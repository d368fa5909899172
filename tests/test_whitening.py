"""PCA-whitening against scikit-learn, and L2 on hand-made vectors."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer

from cbir_lab.whitening import PCAWhitening, l2n


def test_l2n_by_hand_and_zero_rows_stay_zero():
    out = l2n(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.tolist() == [[0.6, 0.8], [0.0, 0.0]]
    t = l2n(torch.tensor([[0.0, 2.0], [0.0, 0.0]]))
    assert t.tolist() == [[0.0, 1.0], [0.0, 0.0]]


@pytest.fixture
def train_test():
    rng = np.random.default_rng(0)
    # correlated, non-negative vectors like pooled CNN activations
    mixing = rng.random((20, 20))
    return rng.random((200, 20)) @ mixing, rng.random((30, 20)) @ mixing


@pytest.mark.parametrize("d", [5, 12, 20])
def test_similarities_match_sklearn_pca_whiten_then_l2(train_test, d):
    train, test = train_test
    ours = PCAWhitening(n_components=d).fit(train).transform(test)
    sk = make_pipeline(Normalizer(), PCA(n_components=d, whiten=True), Normalizer()).fit(train)
    theirs = sk.transform(test)
    assert ours.shape == (30, d)
    np.testing.assert_allclose(ours @ ours.T, theirs @ theirs.T, atol=1e-5)


def test_few_long_vectors_match_sklearn_too():
    # n < D takes the SVD branch of the fit (the fixture above, n > D, the covariance's eigh)
    rng = np.random.default_rng(3)
    mixing = rng.random((40, 40))
    train, test = rng.random((15, 40)) @ mixing, rng.random((6, 40)) @ mixing
    ours = PCAWhitening(n_components=10).fit(train).transform(test)
    theirs = make_pipeline(Normalizer(), PCA(n_components=10, whiten=True), Normalizer()).fit(train).transform(test)
    np.testing.assert_allclose(ours @ ours.T, theirs @ theirs.T, atol=1e-5)


def test_whitened_training_set_has_identity_covariance(train_test):
    train, _ = train_test
    w = PCAWhitening(n_components=8).fit(train)
    proj = w.project(train)
    np.testing.assert_allclose(np.cov(proj, rowvar=False), np.eye(8), atol=1e-8)


def test_power_zero_is_plain_pca_rotation(train_test):
    train, test = train_test
    full_dim = PCAWhitening(power=0.0).fit(train)  # all components, no scaling: a rotation of centred vectors
    centred = l2n(test) - full_dim.mean_
    assert full_dim.n_components_ == 20
    np.testing.assert_allclose(np.linalg.norm(full_dim.project(test), axis=1), np.linalg.norm(centred, axis=1), rtol=1e-6)


def test_usable_in_a_sklearn_pipeline(train_test):
    train, test = train_test
    pipe = make_pipeline(PCAWhitening(n_components=4))
    assert pipe.fit(train).transform(test).shape == (30, 4)


def test_too_many_components_is_a_clear_error():
    x = np.random.default_rng(1).random((10, 50))
    with pytest.raises(ValueError, match=r"n_components=10 is more than 10 training vectors .* \(at most min\(n - 1, D\) = 9\)"):
        PCAWhitening(n_components=10).fit(x)
    with pytest.raises(ValueError, match="at least 2"):
        PCAWhitening().fit(x[:1])


def test_near_zero_eigenvalues_do_not_blow_up():
    # rank-2 data in 5-D: asking for 4 components would divide by ~0
    rng = np.random.default_rng(2)
    x = rng.random((40, 2)) @ rng.random((2, 5))
    with pytest.raises(ValueError, match="non-zero variance"):
        PCAWhitening(n_components=4).fit(x)
    w = PCAWhitening().fit(x)  # default keeps only the useful components
    assert w.n_components_ <= 2
    assert np.isfinite(w.transform(x)).all()


def test_dimension_mismatch_and_nan_are_reported(train_test):
    train, _ = train_test
    w = PCAWhitening(n_components=3).fit(train)
    with pytest.raises(ValueError, match="dimension 7, but the whitening was fitted on dimension 20"):
        w.transform(np.ones((2, 7)))
    with pytest.raises(ValueError, match="NaN"):
        w.transform(np.full((2, 20), np.nan))


def test_all_zero_vector_is_handled_without_nan(train_test):
    train, _ = train_test
    out = PCAWhitening(n_components=3).fit(train).transform(np.zeros((1, 20)))
    assert np.isfinite(out).all()


def test_region_whitening_sums_whitened_regions(train_test):
    train, test = train_test
    w = PCAWhitening(n_components=6).fit(train)
    regions = test[:6].reshape(2, 3, 20)
    expected = l2n(w.transform(regions.reshape(6, 20)).reshape(2, 3, 6).sum(axis=1))
    np.testing.assert_allclose(w.transform_regions(regions), expected, rtol=1e-5, atol=1e-6)  # summed in float64
    with pytest.raises(ValueError, match="n_images, n_regions, dim"):
        w.transform_regions(test)


# ----- what a fitted whitening hands out ------------------------------------------------------------

def test_projection_is_the_scaled_eigenvectors(train_test):
    train, test = train_test
    w = PCAWhitening(n_components=6, power=0.5).fit(train)
    projection = w.projection(4, 0.25)
    assert projection.shape == (4, 20)
    np.testing.assert_allclose(projection, w.components_[:4] / w.eigenvalues_[:4, None] ** 0.25)
    np.testing.assert_allclose(w.at(4, 0.25).transform(test), l2n((l2n(test) - w.mean_) @ projection.T), rtol=1e-5)
    with pytest.raises(ValueError, match="n_components must be an integer in 1..6"):
        w.projection(7)
    with pytest.raises(ValueError, match="power"):
        w.projection(2, 1.5)


@pytest.mark.parametrize("d, power", [(6, 0.5), (3, 0.0), (2, 0.25)])
def test_coordinates_sliced_equal_a_whitening_fitted_at_that_d(train_test, d, power):
    train, test = train_test
    full = PCAWhitening(power=0.5).fit(train)
    direct = PCAWhitening(n_components=d, power=power).fit(train)
    np.testing.assert_allclose(full.whiten_coordinates(full.coordinates(test), d, power), direct.transform(test), atol=1e-5)
    with pytest.raises(ValueError, match="coordinates must have shape"):
        full.whiten_coordinates(full.coordinates(test)[:, :1], d, power)


def test_at_is_a_whitening_fitted_at_those_settings_without_a_refit(train_test):
    train, test = train_test
    full = PCAWhitening(power=0.5).fit(train)
    direct = PCAWhitening(n_components=3, power=0.25).fit(train)
    at = full.at(3, 0.25)
    assert at.get_params() == direct.get_params() and at.n_components_ == 3
    assert np.shares_memory(at.components_, full.components_)  # a view: no copy, no refit
    np.testing.assert_allclose(at.transform(test), direct.transform(test), atol=1e-6)
    assert full.at().get_params() == full.get_params()
    with pytest.raises(ValueError, match="n_components must be an integer"):
        direct.at(4)


def test_transform_regions_takes_images_with_different_numbers_of_regions(train_test):
    train, test = train_test
    w = PCAWhitening(n_components=5).fit(train)
    ragged = [test[:2], test[2:5]]
    expected = [l2n(w.transform(r).sum(axis=0)) for r in ragged]
    np.testing.assert_allclose(w.transform_regions(ragged), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="at least one regional vector"):
        w.transform_regions([test[:2], test[:0]])


def test_scaled_coordinates_give_each_whitened_prefix(train_test):
    train, test = train_test
    w = PCAWhitening().fit(train)
    scaled, prefix = w.scaled_coordinates(w.coordinates(test), 0.25)
    for d in (1, 4, w.n_components_):
        np.testing.assert_allclose(scaled[:, :d] / np.sqrt(prefix[:, d - 1:d]), w.at(d, 0.25).transform(test), atol=1e-5)
    with pytest.raises(ValueError, match="coordinates must have shape"):
        w.scaled_coordinates(w.coordinates(test)[:, :3])


def test_l2n_is_the_basements_one_definition():
    import cbir_lab._array

    assert l2n is cbir_lab._array.l2n


def test_whitening_runs_without_importing_torch():
    # A numpy-only caller (a stored collection, a script) must not pay torch's import for a whitening.
    import subprocess
    import sys

    code = ("import sys, numpy as np\nfrom cbir_lab.whitening import PCAWhitening\n"
            "w = PCAWhitening(2).fit(np.random.default_rng(0).random((10, 4)))\n"
            "w.transform(np.ones((3, 4))); w.transform_regions(np.ones((2, 3, 4)))\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


# ----- the learned whitening (Lw) -----------------------------------------------------------------

from cbir_lab.whitening import LearnedWhitening, matching_pairs  # noqa: E402

# Four unit vectors, two objects: pairs (0, 1) and (2, 3). Worked by hand:
#   differences (1, 0) − (0.6, 0.8) = (0.4, −0.8) and (0, 1) − (−0.6, 0.8) = (0.6, 0.2)
#   C_S = ½[(0.16, −0.32; −0.32, 0.64) + (0.36, 0.12; 0.12, 0.04)] = (0.26, −0.10; −0.10, 0.34)
#   C_S⁻¹ = (0.34, 0.10; 0.10, 0.26) / (0.26·0.34 − 0.01) = (0.34, 0.10; 0.10, 0.26) / 0.0784
#   m = mean of the query rows 0 and 2 = (0.5, 0.5)
LW_X = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-0.6, 0.8]])
LW_CS_INV = np.array([[0.34, 0.10], [0.10, 0.26]]) / 0.0784


def test_lw_mean_and_metric_by_hand():
    w = LearnedWhitening().fit_pairs(LW_X, [0, 2], [1, 3])
    np.testing.assert_allclose(w.mean_, [0.5, 0.5])
    # P = Vᵀ L⁻¹ with V orthogonal, so PᵀP = (L Lᵀ)⁻¹ = C_S⁻¹: distances after Lw are Mahalanobis under C_S
    P = w.projection()
    np.testing.assert_allclose(P.T @ P, LW_CS_INV, rtol=1e-10)


def test_lw_whitens_the_pairs_and_orders_the_rest_by_decreasing_spread():
    rng = np.random.default_rng(0)
    X = l2n(rng.normal(size=(60, 5)) + 3)
    labels = np.repeat(np.arange(15), 4)
    w = LearnedWhitening().fit(X, labels)
    first, second = matching_pairs(labels)
    diff = (X[first] - X[second]) @ w.projection().T
    np.testing.assert_allclose(diff.T @ diff / len(diff), np.eye(5), atol=1e-9)  # P C_S Pᵀ = I
    spread = (X - w.mean_) @ w.projection().T
    cov = spread.T @ spread / len(X)
    np.testing.assert_allclose(cov, np.diag(np.diag(cov)), atol=1e-9)  # P C_D Pᵀ diagonal ...
    assert np.all(np.diff(np.diag(cov)) <= 1e-12)  # ... decreasing
    np.testing.assert_allclose(np.diag(cov), w.eigenvalues_, rtol=1e-9)


def test_lw_shrinkage_inverts_the_shrunk_covariance():
    alpha = 0.25
    shrunk = 0.75 * np.array([[0.26, -0.10], [-0.10, 0.34]]) + 0.25 * (0.60 / 2) * np.eye(2)  # tr C_S = 0.60
    P = LearnedWhitening(shrinkage=alpha).fit_pairs(LW_X, [0, 2], [1, 3]).projection()
    np.testing.assert_allclose(P.T @ P, np.linalg.inv(shrunk), rtol=1e-10)


def test_lw_keeps_the_first_d_rows_and_l2_normalises():
    w = LearnedWhitening(n_components=1).fit_pairs(LW_X, [0, 2], [1, 3])
    full = LearnedWhitening().fit_pairs(LW_X, [0, 2], [1, 3])
    np.testing.assert_allclose(w.projection(), full.projection()[:1])
    out = w.transform(LW_X * 3.0)  # L2 first: the scale of the input does not matter
    assert out.shape == (4, 1) and np.allclose(np.abs(out), 1.0)


def test_lw_with_fewer_pairs_than_dimensions_asks_for_shrinkage():
    X = np.eye(4)[[0, 1, 2, 3]] + 0.1
    with pytest.raises(ValueError, match="rank 1 < D = 4.*shrinkage"):
        LearnedWhitening().fit_pairs(X, [0], [1])
    assert LearnedWhitening(shrinkage=0.1).fit_pairs(X, [0], [1]).transform(X).shape == (4, 4)


@pytest.mark.parametrize("kwargs, pairs, message", [
    ({"shrinkage": 1.0}, ([0, 2], [1, 3]), "shrinkage"),
    ({"n_components": 3}, ([0, 2], [1, 3]), "n_components"),
    ({}, ([0, 2], [1, 9]), "pair indices"),
    ({}, ([], []), "at least one matching pair"),
])
def test_lw_bad_settings_name_themselves(kwargs, pairs, message):
    with pytest.raises(ValueError, match=message):
        LearnedWhitening(**kwargs).fit_pairs(LW_X, *pairs)


def test_lw_has_no_power_and_refuses_nan():
    w = LearnedWhitening().fit_pairs(LW_X, [0, 2], [1, 3])
    with pytest.raises(ValueError, match="no power"):
        w.projection(power=0.5)
    with pytest.raises(ValueError, match="NaN|finite"):
        LearnedWhitening().fit(np.array([[np.nan, 1.0], [1.0, 0.0]]), ["a", "a"])


def test_matching_pairs_are_every_same_label_pair_once():
    first, second = matching_pairs(["a", "b", "a", "a", "b"])
    assert list(zip(first.tolist(), second.tolist())) == [(0, 2), (0, 3), (1, 4), (2, 3)]
