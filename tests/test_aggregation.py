"""Local descriptors, the local PCA and the vocabularies (scikit-learn estimators) on hand-made inputs."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture

from cbir_lab.aggregation import (
    DiagonalGMM,
    KMeansVocabulary,
    LocalPCA,
    local_descriptors,
    nearest_words,
    sample_local_descriptors,
)


# ----- local descriptors -------------------------------------------------------------------------

def test_local_descriptors_rows_are_the_cells_in_row_major_order():
    fmap = np.arange(24, dtype=np.float64).reshape(2, 3, 4)  # C=2, H=3, W=4
    descs = local_descriptors(fmap)
    assert descs.shape == (12, 2) and descs.dtype == np.float32
    assert descs[1 * 4 + 2].tolist() == fmap[:, 1, 2].tolist()  # cell (y=1, x=2) is row 6


def test_local_descriptors_accept_a_torch_tensor():
    torch = pytest.importorskip("torch")
    fmap = torch.arange(8, dtype=torch.float32).reshape(2, 2, 2).requires_grad_()
    assert local_descriptors(fmap).tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]


def test_sample_local_descriptors_draws_real_cells_deterministically():
    rng = np.random.default_rng(1)
    maps = [rng.random((3, 5, 5)), rng.random((3, 2, 3))]
    sample = sample_local_descriptors(maps, per_image=10, seed=4)
    assert sample.shape == (10 + 6, 3)  # the small map has only 6 cells: all kept
    assert np.array_equal(sample, sample_local_descriptors(maps, per_image=10, seed=4))
    first = local_descriptors(maps[0])
    assert all((first == row).all(axis=1).any() for row in sample[:10])


# ----- local PCA ---------------------------------------------------------------------------------

@pytest.mark.parametrize("whiten", [False, True])
def test_local_pca_matches_sklearn(whiten):
    rng = np.random.default_rng(2)
    train = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    test = rng.normal(size=(10, 6))
    pca = LocalPCA(n_components=3, whiten=whiten).fit(train)
    theirs = PCA(n_components=3, whiten=whiten, random_state=0).fit(train)
    assert pca.transform(test).shape == (10, 3)
    np.testing.assert_allclose(pca.transform(test), theirs.transform(test), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pca.components_, theirs.components_, atol=1e-10)  # scikit-learn's signs too
    np.testing.assert_allclose(pca.explained_variance_, theirs.explained_variance_)


def test_local_pca_auto_is_sklearns_randomised_pca_where_sklearn_picks_it_and_exact_is_the_core():
    # 550 x 60: n < 10·D and max(n, D) > 500, so scikit-learn's PCA picks its randomised solver
    rng = np.random.default_rng(12)
    train = rng.normal(size=(550, 60)) * np.geomspace(10.0, 0.1, 60)
    auto = LocalPCA(n_components=5, seed=3).fit(train)
    theirs = PCA(n_components=5, random_state=3).fit(train)
    np.testing.assert_array_equal(auto.components_, theirs.components_)  # the same numbers as before the PCA core
    exact = LocalPCA(n_components=5, solver="exact").fit(train)
    full = PCA(n_components=5, svd_solver="full").fit(train)
    np.testing.assert_allclose(exact.components_, full.components_, atol=1e-8)
    np.testing.assert_allclose(exact.explained_variance_, full.explained_variance_, rtol=1e-10)
    with pytest.raises(ValueError, match="solver must be"):
        LocalPCA(n_components=5, solver="svd").fit(train)


def test_whitened_local_pca_gives_unit_variance_on_its_training_set():
    rng = np.random.default_rng(3)
    train = rng.normal(size=(500, 4)) * [10.0, 3.0, 1.0, 0.1]
    out = LocalPCA(n_components=4, whiten=True).fit(train).transform(train)
    np.testing.assert_allclose(np.cov(out, rowvar=False), np.eye(4), atol=1e-5)


def test_local_pca_on_a_line_by_hand():
    # points (t, t): mean (1.5, 1.5), one axis (1, 1)/√2 of variance 2·var(0..3) = 2·5/3; (3, 3) is at +1.5·√2
    descs = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    pca = LocalPCA(n_components=1).fit(descs)
    np.testing.assert_allclose(pca.mean_, [1.5, 1.5])
    np.testing.assert_allclose(pca.components_, [[2**-0.5, 2**-0.5]])
    np.testing.assert_allclose(pca.explained_variance_, [10 / 3])
    np.testing.assert_allclose(pca.transform([[3.0, 3.0]]), [[1.5 * 2**0.5]], rtol=1e-6)
    with pytest.raises(ValueError, match="only 1 directions of local_descs have non-zero variance"):
        LocalPCA(n_components=2, whiten=True).fit(descs)


@pytest.mark.parametrize("estimator", [LocalPCA(n_components=2, whiten=True), KMeansVocabulary(k=3, seed=2),
                                       DiagonalGMM(k=2, seed=1, max_iter=50)])
def test_the_estimators_follow_scikit_learns_conventions(estimator):
    train = np.random.default_rng(4).normal(size=(60, 3))
    params = estimator.get_params()
    with pytest.raises(NotFittedError):
        getattr(estimator, next(m for m in ("transform", "predict", "posteriors") if hasattr(estimator, m)))(train)
    fitted = clone(estimator)
    assert fitted.fit(train) is fitted and fitted.get_params() == params
    assert fitted.n_features_in_ == 3
    assert clone(fitted).set_params(**params).get_params() == params


# ----- vocabularies ------------------------------------------------------------------------------

def test_kmeans_vocabulary_by_hand_and_its_words():
    words = KMeansVocabulary(k=2).fit([[0.0, 0.0], [0.0, 2.0], [10.0, 0.0], [10.0, 2.0]])
    order = np.argsort(words.centroids_[:, 0])
    np.testing.assert_allclose(words.centroids_[order], [[0.0, 1.0], [10.0, 1.0]])
    assert words.predict([[1.0, 0.0], [9.0, 5.0]]).tolist() == order.tolist()
    assert nearest_words([[1.0, 0.0], [9.0, 5.0]], words).tolist() == order.tolist()  # the vocabulary, or its centroids


def test_diagonal_gmm_from_arrays_is_a_fitted_vocabulary():
    gmm = DiagonalGMM.from_arrays([0.25, 0.75], [[0.0], [4.0]], [[1.0], [1.0]])
    assert gmm.k == 2 and gmm.n_features_in_ == 1
    # halfway between the means, the posteriors are the weights
    np.testing.assert_allclose(gmm.posteriors([[2.0]]), [[0.25, 0.75]])


def test_posteriors_equal_sklearn_predict_proba_even_far_away():
    rng = np.random.default_rng(6)
    train = np.vstack([rng.normal(size=(100, 2)), rng.normal(loc=5.0, size=(100, 2))])
    sk = GaussianMixture(n_components=3, covariance_type="diag", random_state=0).fit(train)
    gmm = DiagonalGMM.from_arrays(sk.weights_, sk.means_, sk.covariances_)
    # the last rows are so far out that every density underflows to 0: a naive ratio would be 0/0
    x = np.vstack([rng.normal(size=(10, 2)) * 3, [[1e3, -1e3], [-5e4, 2e4]]])
    ours = gmm.posteriors(x)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours.sum(axis=1), 1.0)
    np.testing.assert_allclose(ours, sk.predict_proba(x), atol=1e-10)


def test_diagonal_gmm_is_sklearns_diagonal_mixture():
    rng = np.random.default_rng(7)
    train = rng.normal(size=(150, 2))
    ours = DiagonalGMM(k=2, seed=3).fit(train)
    sk = GaussianMixture(n_components=2, covariance_type="diag", random_state=3).fit(train)
    np.testing.assert_allclose(ours.means_, sk.means_)
    np.testing.assert_allclose(ours.variances_, sk.covariances_)
    np.testing.assert_allclose(ours.posteriors(train), sk.predict_proba(train), atol=1e-10)


def test_vocabularies_are_deterministic_given_the_seed():
    train = np.random.default_rng(10).normal(size=(200, 3))
    centroids = lambda **kw: KMeansVocabulary(5, seed=1, **kw).fit(train).centroids_  # noqa: E731
    assert np.array_equal(centroids(), centroids())
    # above minibatch_above descriptors, MiniBatchKMeans
    assert np.array_equal(centroids(minibatch_above=50), centroids(minibatch_above=50))
    a, b = DiagonalGMM(3, seed=1).fit(train), DiagonalGMM(3, seed=1).fit(train)
    assert np.array_equal(a.means_, b.means_) and np.array_equal(a.variances_, b.variances_)


# ----- bad inputs --------------------------------------------------------------------------------

def test_bad_inputs_raise_value_errors_naming_the_parameter(unit_descriptors):
    descs, centroids, gmm = unit_descriptors
    with pytest.raises(ValueError, match="k must be a positive integer"):
        KMeansVocabulary(k=0).fit(descs)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        DiagonalGMM(k=0).fit(descs)
    with pytest.raises(ValueError, match="k=30 needs at least k training descriptors, but local_descs has only 25"):
        KMeansVocabulary(k=30).fit(descs)
    with pytest.raises(ValueError, match="k=30 needs"):
        DiagonalGMM(k=30).fit(descs)
    with pytest.raises(ValueError, match="n_components"):
        LocalPCA(n_components=4).fit(descs)
    with pytest.raises(ValueError, match="descs have dimension 2, but the LocalPCA"):
        LocalPCA(n_components=2).fit(descs).transform(descs[:, :2])
    with pytest.raises(ValueError, match="feature_map must have shape"):
        local_descriptors(np.ones((4, 4)))
    with pytest.raises(ValueError, match="variances"):
        DiagonalGMM.from_arrays([1.0], [[0.0]], [[-1.0]])
    with pytest.raises(ValueError, match="weights"):
        DiagonalGMM.from_arrays([0.5], [[0.0]], [[1.0]])
    with pytest.raises(ValueError, match="centroids must be a"):
        nearest_words(descs, gmm)
