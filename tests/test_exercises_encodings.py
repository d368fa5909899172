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
