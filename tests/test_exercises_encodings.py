"""Self-checks of lessons 7 and 8: each accepts a right answer and names each slip it knows."""

import numpy as np
import pytest

from cbir_lab.exercises import check_pq_encode, check_vlad


def raw_vlad(descs, centroids):
    words = ((descs[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    return np.stack([(descs[words == k] - centroids[k]).sum(0) for k in range(len(centroids))]).ravel()


def good_vlad(descs, centroids):
    v = raw_vlad(descs, centroids)
    return v / np.linalg.norm(v)


def test_vlad_right_answer_passes():
    assert check_vlad(good_vlad, verbose=False).passed


@pytest.mark.parametrize("slip, answer", [
    ("no_l2", raw_vlad),
    ("transposed", lambda d, c: good_vlad(d, c).reshape(len(c), -1).T.ravel()),
    ("shape", lambda d, c: good_vlad(d, c)[:4]),
    ("wrong", lambda d, c: -good_vlad(d, c)),
])
def test_vlad_slips(slip, answer):
    assert check_vlad(answer, verbose=False).failures == (slip,)


def test_vlad_sums_of_descriptors_and_means_are_named():
    def sums(d, c):
        words = ((d[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        v = np.stack([d[words == k].sum(0) for k in range(len(c))]).ravel()
        return v / np.linalg.norm(v)

    def means(d, c):
        words = ((d[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        v = np.stack([(d[words == k] - c[k]).mean(0) for k in range(len(c))]).ravel()
        return v / np.linalg.norm(v)

    assert check_vlad(sums, verbose=False).failures == ("no_residual",)
    assert check_vlad(means, verbose=False).failures == ("mean",)


def good_pq(x, codebooks):
    m, _, sub = codebooks.shape
    return np.stack([((x[:, j * sub:(j + 1) * sub, None] - codebooks[j].T[None]) ** 2).sum(1).argmin(1)
                     for j in range(m)], axis=1)


def test_pq_right_answer_passes_and_slips_are_named():
    assert check_pq_encode(good_pq, verbose=False).passed
    assert check_pq_encode(lambda x, c: good_pq(x, c).T, verbose=False).failures == ("transposed",)
    inner = lambda x, c: np.stack([(x[:, j * 2:(j + 1) * 2] @ c[j].T).argmax(1) for j in range(2)], axis=1)  # noqa: E731
    assert check_pq_encode(inner, verbose=False).failures == ("inner_product",)
    strided = lambda x, c: np.stack([((x[:, j::2, None] - c[j].T[None]) ** 2).sum(1).argmin(1) for j in range(2)], axis=1)  # noqa: E731
    assert check_pq_encode(strided, verbose=False).failures == ("strided",)
    assert not check_pq_encode(lambda x, c: (_ for _ in ()).throw(NotImplementedError), verbose=False).implemented


# ----- one component of the Fisher vector (lesson 7) and ADC distances (lesson 8) -----------------------------

from cbir_lab.aggregation import DiagonalGMM  # noqa: E402
from cbir_lab.encodings import fisher_vector  # noqa: E402
from cbir_lab.exercises import check_adc_distances, check_fisher_mean_gradient  # noqa: E402


def fisher_mean(descs, posteriors, weight, mean, sigma):
    return (posteriors[:, None] * (descs - mean) / sigma).sum(axis=0) / (len(descs) * np.sqrt(weight))


def test_the_fisher_component_is_the_block_fisher_vector_computes():
    gmm = DiagonalGMM.from_arrays([0.3, 0.7], [[0.5, -1.0, 0.0], [1.0, 1.0, 1.0]], [[0.25, 4.0, 2.25], [1.0, 1.0, 1.0]])
    descs = np.random.default_rng(0).normal(0, 1.5, (10, 3))
    block = fisher_vector(descs, gmm, power=1.0, l2=False)[:3]
    mine = fisher_mean(descs, gmm.posteriors(descs)[:, 0], 0.3, np.array([0.5, -1.0, 0.0]), np.array([0.5, 2.0, 1.5]))
    np.testing.assert_allclose(block, mine, rtol=1e-5)


@pytest.mark.parametrize("answer", [
    fisher_mean,
    # float32 arithmetic and a loop: right within the tolerance, not bit for bit
    lambda d, g, w, mu, s: sum(np.float32(gi) * ((xi - mu) / s).astype(np.float32) for gi, xi in zip(g, d))
    / np.float32(len(d) * np.sqrt(w)),
], ids=["vectorised", "float32 loop"])
def test_a_right_fisher_component_passes(answer):
    assert check_fisher_mean_gradient(answer, verbose=False).passed


@pytest.mark.parametrize("slip, answer, says", [
    ("no_sigma", lambda d, g, w, mu, s: (g[:, None] * (d - mu)).sum(0) / (len(d) * np.sqrt(w)), "divide each residual"),
    ("variance", lambda d, g, w, mu, s: (g[:, None] * (d - mu) / s**2).sum(0) / (len(d) * np.sqrt(w)), "σ²"),
    ("no_weight", lambda d, g, w, mu, s: (g[:, None] * (d - mu) / s).sum(0) / len(d), "√w"),
    ("by_posteriors", lambda d, g, w, mu, s: (g[:, None] * (d - mu) / s).sum(0) / (g.sum() * np.sqrt(w)), "divide by n"),
    ("no_posteriors", lambda d, g, w, mu, s: ((d - mu) / s).sum(0) / (len(d) * np.sqrt(w)), "posterior"),
    ("shape", lambda d, g, w, mu, s: (g[:, None] * (d - mu) / s) / (len(d) * np.sqrt(w)), "one value per dimension"),
])
def test_fisher_component_slips_are_named(slip, answer, says):
    result = check_fisher_mean_gradient(answer, verbose=False)
    assert result.failures == (slip,) and says in result.message


def adc(query, codes, codebooks):
    m, _, sub = codebooks.shape
    tables = np.stack([((codebooks[j] - query[j * sub:(j + 1) * sub]) ** 2).sum(-1) for j in range(m)])
    return tables[np.arange(m), codes].sum(axis=1)


def reconstructed(query, codes, codebooks):
    """Right too: decode every vector, then measure (slower, the same numbers up to rounding)."""
    m = codebooks.shape[0]
    decoded = np.concatenate([codebooks[j][codes[:, j]] for j in range(m)], axis=1).astype(np.float32)
    return ((decoded - query.astype(np.float32)) ** 2).sum(axis=1)


@pytest.mark.parametrize("answer", [adc, reconstructed], ids=["tables", "decoded, float32"])
def test_right_adc_distances_pass(answer):
    assert check_adc_distances(answer, verbose=False).passed


def symmetric(query, codes, codebooks):
    m, _, sub = codebooks.shape
    own = [((codebooks[j] - query[j * sub:(j + 1) * sub]) ** 2).sum(-1).argmin() for j in range(m)]
    return np.array([sum(((codebooks[j][own[j]] - codebooks[j][c[j]]) ** 2).sum() for j in range(m)) for c in codes])


def strided_adc(query, codes, codebooks):
    m = codebooks.shape[0]
    tables = np.stack([((codebooks[j] - query[j::m]) ** 2).sum(-1) for j in range(m)])
    return tables[np.arange(m), codes].sum(axis=1)


@pytest.mark.parametrize("slip, answer, says", [
    ("symmetric", symmetric, "quantized the query too"),
    ("not_squared", lambda q, c, cb: np.sqrt(adc(q, c, cb)), "squared distances"),
    ("strided", strided_adc, "contiguous slice"),
    ("shape", lambda q, c, cb: adc(q, c, cb)[:3], "one distance per coded vector"),
    ("wrong", lambda q, c, cb: adc(q, c, cb) + 1.0, "expected"),
])
def test_adc_slips_are_named(slip, answer, says):
    result = check_adc_distances(answer, verbose=False)
    assert result.failures == (slip,) and says in result.message
