"""VLAD, Fisher vector and triangulation embedding against hand-worked examples and plain-loop re-implementations."""

import math

import numpy as np
import pytest

from cbir_lab.aggregation import DiagonalGMM, KMeansVocabulary, LocalPCA, local_descriptors, sample_local_descriptors
from cbir_lab.encodings import (
    TEWhitening,
    encode,
    encode_all,
    fisher_vector,
    triangulation_directions,
    triangulation_embedding,
    vlad,
)


# ----- plain-loop re-implementations: the formulas, one descriptor and one centroid at a time ------

def vlad_loops(descs, centroids):
    dim = len(centroids[0])
    v = [[0.0] * dim for _ in centroids]
    for x in descs:
        dists = [sum((xd - cd) ** 2 for xd, cd in zip(x, c)) for c in centroids]
        k = dists.index(min(dists))
        for d in range(dim):
            v[k][d] += x[d] - centroids[k][d]
    return v  # one list per centroid


def fisher_loops(descs, gmm):
    w, mu, var = gmm.weights_.tolist(), gmm.means_.tolist(), gmm.variances_.tolist()
    n, big_k, dim = len(descs), len(w), len(mu[0])
    g_mu = [[0.0] * dim for _ in range(big_k)]
    g_sigma = [[0.0] * dim for _ in range(big_k)]
    for x in descs:
        dens = []
        for k in range(big_k):
            p = w[k]
            for d in range(dim):
                p *= math.exp(-((x[d] - mu[k][d]) ** 2) / (2 * var[k][d])) / math.sqrt(2 * math.pi * var[k][d])
            dens.append(p)
        total = sum(dens)
        for k in range(big_k):
            gamma = dens[k] / total
            for d in range(dim):
                z = (x[d] - mu[k][d]) / math.sqrt(var[k][d])
                g_mu[k][d] += gamma * z / (n * math.sqrt(w[k]))
                g_sigma[k][d] += gamma * (z * z - 1) / (n * math.sqrt(2 * w[k]))
    return [a for row in g_mu for a in row] + [a for row in g_sigma for a in row]


def te_loops(descs, centroids):
    dim = len(centroids[0])
    out = [0.0] * (len(centroids) * dim)
    for x in descs:
        for k, c in enumerate(centroids):
            diff = [xd - cd for xd, cd in zip(x, c)]
            norm = math.sqrt(sum(a * a for a in diff))
            for d in range(dim):
                out[k * dim + d] += diff[d] / norm
    return out


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


# ----- VLAD --------------------------------------------------------------------------------------

# Worked by hand. Centroids c1 = (0, 0), c2 = (4, 4); descriptors
#   x1 = (1, 0):  |x1 - c1|² = 1,  |x1 - c2|² = 9 + 16 = 25  → c1, residual (1, 0)
#   x2 = (0, -2): |x2 - c1|² = 4,  |x2 - c2|² = 16 + 36 = 52 → c1, residual (0, -2)
#   x3 = (5, 3):  |x3 - c1|² = 34, |x3 - c2|² = 1 + 1 = 2    → c2, residual (1, -1)
# v = [(1, 0) + (0, -2) | (1, -1)] = [1, -2, 1, -1], |v|² = 1 + 4 + 1 + 1 = 7.
HAND_C = np.array([[0.0, 0.0], [4.0, 4.0]])
HAND_X = np.array([[1.0, 0.0], [0.0, -2.0], [5.0, 3.0]])


def test_vlad_by_hand_unnormalised_and_l2():
    assert vlad(HAND_X, HAND_C, l2=False).tolist() == [1, -2, 1, -1]
    np.testing.assert_allclose(vlad(HAND_X, HAND_C), np.array([1, -2, 1, -1]) / math.sqrt(7), rtol=1e-6)


def test_vlad_by_hand_intra_normalisation():
    # each block to unit norm: (1, -2)/√5 and (1, -1)/√2; the whole then has norm √2
    intra = [1 / math.sqrt(5), -2 / math.sqrt(5), 1 / math.sqrt(2), -1 / math.sqrt(2)]
    np.testing.assert_allclose(vlad(HAND_X, HAND_C, intra=True, l2=False), intra, rtol=1e-6)
    expected = [1 / math.sqrt(10), -2 / math.sqrt(10), 0.5, -0.5]
    np.testing.assert_allclose(vlad(HAND_X, HAND_C, intra=True), expected, rtol=1e-6)


def test_vlad_by_hand_power_normalisation():
    # sign(v)·√|v| = [1, -√2, 1, -1], of squared norm 1 + 2 + 1 + 1 = 5
    np.testing.assert_allclose(vlad(HAND_X, HAND_C, power=0.5, l2=False), [1, -math.sqrt(2), 1, -1], rtol=1e-6)
    expected = np.array([1, -math.sqrt(2), 1, -1]) / math.sqrt(5)
    np.testing.assert_allclose(vlad(HAND_X, HAND_C, power=0.5), expected, rtol=1e-6)


def test_vlad_empty_cluster_gives_a_zero_block_even_with_intra():
    centroids = np.vstack([HAND_C, [[100.0, 100.0]]])  # nobody is near the third centroid
    out = vlad(HAND_X, centroids, intra=True, power=0.5)
    assert np.isfinite(out).all()
    assert out[4:].tolist() == [0.0, 0.0]
    assert vlad(HAND_X, centroids, l2=False).tolist() == [1, -2, 1, -1, 0, 0]


def test_vlad_k1_is_n_times_mean_minus_centroid():
    x = np.random.default_rng(5).normal(size=(7, 3))
    c = np.array([[0.5, -1.0, 2.0]])
    np.testing.assert_allclose(vlad(x, c, l2=False), 7 * (x.mean(axis=0) - c[0]), rtol=1e-5)


def test_vlad_matches_the_loops(unit_descriptors):
    descs, centroids, _ = unit_descriptors
    raw = np.array(vlad_loops(descs.tolist(), centroids.tolist()))  # (K, D)
    assert vlad(descs, centroids).shape == (4 * 3,)
    np.testing.assert_allclose(vlad(descs, centroids, l2=False), raw.ravel(), rtol=1e-5, atol=1e-6)
    intra = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    expected = unit(np.sign(intra) * np.sqrt(np.abs(intra))).ravel()
    np.testing.assert_allclose(vlad(descs, centroids, intra=True, power=0.5), expected, rtol=1e-5, atol=1e-6)


def test_vlad_takes_the_kmeans_vocabulary_or_its_centroids(unit_descriptors):
    descs, _, _ = unit_descriptors
    words = KMeansVocabulary(k=2, seed=0).fit(descs)
    np.testing.assert_array_equal(vlad(descs, words), vlad(descs, words.centroids_))


# ----- Fisher vector -----------------------------------------------------------------------------

# One Gaussian (every posterior is 1): w = 1, μ = (1, 0), σ = (2, 1); descriptors
#   x1 = (3, 1):  (x - μ)/σ = (1, 1)   squared - 1 = (0, 0)
#   x2 = (1, -1): (x - μ)/σ = (0, -1)  squared - 1 = (-1, 0)
#   x3 = (5, 0):  (x - μ)/σ = (2, 0)   squared - 1 = (3, -1)
# G_mu = (3, 0)/3 = (1, 0); G_sigma = (2, -1)/(3√2) = (√2/3, -√2/6).
ONE_GAUSSIAN = DiagonalGMM.from_arrays([1.0], [[1.0, 0.0]], [[4.0, 1.0]])
FV_X = np.array([[3.0, 1.0], [1.0, -1.0], [5.0, 0.0]])


def test_fisher_vector_one_gaussian_by_hand():
    assert ONE_GAUSSIAN.posteriors(FV_X).tolist() == [[1.0], [1.0], [1.0]]
    raw = [1.0, 0.0, math.sqrt(2) / 3, -math.sqrt(2) / 6]
    np.testing.assert_allclose(fisher_vector(FV_X, ONE_GAUSSIAN, power=1.0, l2=False), raw, rtol=1e-6, atol=1e-7)
    # the default: signed square root, then L2; the squares of the roots sum to 1 + √2/3 + √2/6 = 1 + √2/2
    rooted = np.sign(raw) * np.sqrt(np.abs(raw))
    np.testing.assert_allclose(fisher_vector(FV_X, ONE_GAUSSIAN), rooted / math.sqrt(1 + math.sqrt(2) / 2), rtol=1e-6)


def test_fisher_vector_has_2KD_dimensions(unit_descriptors):
    descs, _, gmm = unit_descriptors
    assert fisher_vector(descs, gmm).shape == (2 * 3 * 3,)


def test_fisher_vector_matches_the_loops(unit_descriptors):
    descs, _, gmm = unit_descriptors
    raw = fisher_loops(descs.tolist(), gmm)
    np.testing.assert_allclose(fisher_vector(descs, gmm, power=1.0, l2=False), raw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fisher_vector(descs, gmm), unit(np.sign(raw) * np.sqrt(np.abs(raw))), rtol=1e-5, atol=1e-6)


# ----- triangulation embedding -------------------------------------------------------------------

def test_triangulation_directions_by_hand_and_unit_blocks(unit_descriptors):
    # from c1 = (0, 0), x = (3, 4) is in direction (0.6, 0.8); from c2 = (3, 0), in direction (0, 1)
    out = triangulation_directions([[3.0, 4.0]], [[0.0, 0.0], [3.0, 0.0]])
    np.testing.assert_allclose(out, [[0.6, 0.8, 0.0, 1.0]], rtol=1e-6)
    descs, centroids, _ = unit_descriptors
    blocks = triangulation_directions(descs, centroids).reshape(len(descs), 4, 3)
    np.testing.assert_allclose(np.linalg.norm(blocks, axis=2), 1.0, rtol=1e-6)


def test_te_descriptor_on_a_centroid_gives_a_zero_block_not_nan():
    centroids = np.array([[0.0, 0.0], [3.0, 4.0]])
    out = triangulation_directions([[3.0, 4.0]], centroids)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, [[0.6, 0.8, 0.0, 0.0]], rtol=1e-6)  # the block of c2 is zero
    te = triangulation_embedding([[3.0, 4.0], [0.0, 0.0]], centroids)
    assert np.isfinite(te).all()


def test_te_has_KD_dimensions_and_matches_the_loops(unit_descriptors):
    descs, centroids, _ = unit_descriptors
    assert triangulation_embedding(descs, centroids).shape == (4 * 3,)
    raw = te_loops(descs.tolist(), centroids.tolist())
    np.testing.assert_allclose(triangulation_embedding(descs, centroids, l2=False), raw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(triangulation_embedding(descs, centroids), unit(raw), rtol=1e-5, atol=1e-6)


def test_te_whitening_whitens_the_training_embeddings_and_commutes_with_the_sum(unit_descriptors):
    descs, centroids, _ = unit_descriptors
    train = np.random.default_rng(8).normal(size=(400, 3))
    embeddings = triangulation_directions(train, centroids)
    white = TEWhitening(drop=2).fit(embeddings)
    assert white.projection_.shape == (4 * 3 - 2, 4 * 3)
    np.testing.assert_allclose(np.cov(white.transform(embeddings), rowvar=False), np.eye(10), atol=1e-4)
    summed = white.transform(triangulation_directions(descs, centroids)).sum(axis=0)
    ours = triangulation_embedding(descs, centroids, whitening=white, l2=False)
    np.testing.assert_allclose(ours, summed, rtol=1e-4, atol=1e-4)


def test_te_whitening_by_hand_and_its_rank_rule():
    # rows ±(1, 0, 0), ±(0, 2, 0): mean 0; variance (1 + 1)/3 = 2/3 along x, (4 + 4)/3 = 8/3 along y, none along z
    r = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, -2.0, 0.0]])
    white = TEWhitening().fit(r)
    np.testing.assert_allclose(white.eigenvalues_, [8 / 3, 2 / 3])  # the zero-variance z axis is left out
    np.testing.assert_allclose(np.abs(white.projection_), [[0, (8 / 3) ** -0.5, 0], [(2 / 3) ** -0.5, 0, 0]], atol=1e-12)
    assert TEWhitening(drop=1).fit(r).projection_.shape == (1, 3)
    with pytest.raises(ValueError, match="drop=2, but the embeddings have only 2 components"):
        TEWhitening(drop=2).fit(r)


# ----- properties shared by the encodings --------------------------------------------------------

@pytest.mark.parametrize(
    "method, options",
    [("vlad", {}), ("vlad", {"intra": True, "power": 0.5}), ("fv", {}), ("te", {})],
)
def test_encodings_do_not_depend_on_the_descriptor_order(unit_descriptors, method, options):
    descs, centroids, gmm = unit_descriptors
    vocabulary = gmm if method == "fv" else centroids
    shuffled = descs[np.random.default_rng(9).permutation(len(descs))]
    np.testing.assert_allclose(
        encode(shuffled, vocabulary, method, **options), encode(descs, vocabulary, method, **options), rtol=1e-5, atol=1e-6
    )


def test_encode_all_is_pca_then_encode_per_map():
    rng = np.random.default_rng(11)
    maps = [rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 2, 2))]
    pca = LocalPCA(n_components=2).fit(sample_local_descriptors(maps))
    centroids = KMeansVocabulary(k=3).fit(pca.transform(sample_local_descriptors(maps))).centroids_
    out = encode_all(maps, pca, centroids, "vlad", intra=True)
    assert out.shape == (2, 3 * 2) and out.dtype == np.float32
    for row, m in zip(out, maps):
        np.testing.assert_allclose(row, vlad(pca.transform(local_descriptors(m)), centroids, intra=True))


# ----- bad inputs --------------------------------------------------------------------------------

def test_bad_inputs_raise_value_errors_naming_the_parameter(unit_descriptors):
    descs, centroids, gmm = unit_descriptors
    with pytest.raises(ValueError, match="descs have dimension 2, but the vocabulary"):
        vlad(descs[:, :2], centroids)
    with pytest.raises(ValueError, match="descs have dimension 2, but the vocabulary"):
        fisher_vector(descs[:, :2], gmm)
    with pytest.raises(ValueError, match="descs have dimension 2, but the vocabulary"):
        triangulation_embedding(descs[:, :2], centroids)
    with pytest.raises(ValueError, match="descs must be a 2-D array"):
        vlad(descs[0], centroids)
    with pytest.raises(ValueError, match="power"):
        vlad(descs, centroids, power=0)
    with pytest.raises(ValueError, match="vocabulary for 'fv' must be a fitted DiagonalGMM"):
        encode(descs, centroids, "fv")
    with pytest.raises(ValueError, match="centroids must be a"):
        vlad(descs, gmm)
    with pytest.raises(ValueError, match="unknown encoding method 'bow'"):
        encode(descs, centroids, "bow")
    with pytest.raises(ValueError, match="descs contains NaN"):
        vlad(np.full((2, 3), np.nan), centroids)
    with pytest.raises(ValueError, match="whitening must be a fitted TEWhitening"):
        triangulation_embedding(descs, centroids, whitening=gmm)
