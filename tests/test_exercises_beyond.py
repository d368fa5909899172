"""Lesson 10's self-checks: a right answer passes; each usual slip fails with the feedback that names it."""

import numpy as np
import pytest

from cbir_lab.exercises import check_inlier_count, check_multiscale_pooling, check_reciprocal_set
from cbir_lab.kreciprocal import k_reciprocal_sets, neighbour_lists
from cbir_lab.pooling import multiscale_combine
from cbir_lab.verification import count_inliers

# ---------------------------------------------------------------- the inliers of a given model


def _count(*, divide=True, squared=False, strict=True, backwards=False, outliers=False):
    def count_fn(H, src, dst, threshold):
        a, b = (dst, src) if backwards else (src, dst)
        mapped = np.hstack([a, np.ones((len(a), 1))]) @ H.T
        points = mapped[:, :2] / mapped[:, 2:] if divide else mapped[:, :2]
        error = np.sqrt(((points - b) ** 2).sum(axis=1))
        error = error**2 if squared else error
        inside = error < threshold if strict else error <= threshold
        return int((~inside).sum()) if outliers else int(inside.sum())
    return count_fn


def test_inlier_check_passes_the_package_and_a_hand_written_count():
    assert check_inlier_count(count_inliers, verbose=False).passed
    assert check_inlier_count(_count(), verbose=False).passed
    # the squared error against t² is the same test
    assert check_inlier_count(lambda H, s, d, t: _count(squared=True)(H, s, d, t * t), verbose=False).passed


@pytest.mark.parametrize("slip, kwargs", [("no_division", {"divide": False}), ("squared", {"squared": True}),
                                          ("not_strict", {"strict": False}), ("backwards", {"backwards": True}),
                                          ("outliers", {"outliers": True})])
def test_inlier_check_names_each_slip(slip, kwargs):
    result = check_inlier_count(_count(**kwargs), verbose=False)
    assert not result.passed and result.failures == (slip,)


def test_inlier_check_reports_a_stub_an_error_and_a_wrong_type():
    def stub(H, src, dst, threshold):
        raise NotImplementedError()

    result = check_inlier_count(stub, verbose=False)
    assert not result.implemented and "not implemented yet" in result.message
    assert check_inlier_count(lambda *a: 1 / 0, verbose=False).failures == ("error",)
    assert check_inlier_count(lambda *a: "five", verbose=False).failures == ("type",)
    assert check_inlier_count(lambda *a: 4, verbose=False).failures == ("wrong",)
    assert check_inlier_count(lambda *a: 5, verbose=False).failures == ("threshold",)  # right by chance at t = 3


def test_inlier_check_prints_its_feedback(capsys):
    check_inlier_count(_count(strict=False))
    assert "the test is strict" in capsys.readouterr().out


# ---------------------------------------------------------------- the k-reciprocal set


def _reciprocal(*, mutual=True, with_p=True, others=None):
    def reciprocal_fn(sims, p, k):
        def nearest(i, n):
            row = sims[i].copy()
            row[i] = np.inf
            return list(np.argsort(-row, kind="stable")[: n + 1])
        n = k if others is None else others
        candidates = nearest(p, n) if with_p else nearest(p, n)[1:]
        return [g for g in candidates if not mutual or p in nearest(g, n)]
    return reciprocal_fn


def test_reciprocal_check_passes_the_package_and_a_hand_written_set():
    def package(sims, p, k):
        return k_reciprocal_sets(neighbour_lists(sims, k), k)[p]

    assert check_reciprocal_set(package, verbose=False).passed
    assert check_reciprocal_set(_reciprocal(), verbose=False).passed
    assert check_reciprocal_set(lambda s, p, k: set(_reciprocal()(s, p, k)), verbose=False).passed  # any container


@pytest.mark.parametrize("slip, kwargs", [("not_mutual", {"mutual": False}), ("without_p", {"with_p": False}),
                                          ("k_includes_p", {"others": 2})])
def test_reciprocal_check_names_each_slip(slip, kwargs):
    result = check_reciprocal_set(_reciprocal(**kwargs), verbose=False)
    assert not result.passed and result.failures == (slip,)


def test_reciprocal_check_names_duplicates_and_other_answers():
    assert check_reciprocal_set(lambda s, p, k: [0, 1, 1, 2], verbose=False).failures == ("duplicates",)
    assert check_reciprocal_set(lambda s, p, k: [0, 5], verbose=False).failures == ("wrong",)
    assert check_reciprocal_set(lambda s, p, k: None, verbose=False).failures in {("type",), ("wrong",)}


# ---------------------------------------------------------------- the multi-scale descriptor


def _combine(*, scale_l2=True, final_l2=True, root=True, power=True, maximum=False):
    def combine_fn(vectors, p):
        u = vectors / np.linalg.norm(vectors, axis=2, keepdims=True) if scale_l2 else vectors
        if maximum:
            v = u.max(axis=0)
        else:
            e = p if power else 1.0
            v = (u**e).sum(axis=0)  # a sum: the same direction as the mean
            v = v ** (1 / e) if root else v
        return v / np.linalg.norm(v, axis=1, keepdims=True) if final_l2 else v
    return combine_fn


def test_multiscale_check_passes_the_package_and_a_hand_written_combination():
    assert check_multiscale_pooling(multiscale_combine, verbose=False).passed
    assert check_multiscale_pooling(_combine(), verbose=False).passed


@pytest.mark.parametrize("slip, kwargs", [("no_scale_l2", {"scale_l2": False}), ("no_final_l2", {"final_l2": False}),
                                          ("no_root", {"root": False}), ("plain_mean", {"power": False}),
                                          ("max", {"maximum": True})])
def test_multiscale_check_names_each_slip(slip, kwargs):
    result = check_multiscale_pooling(_combine(**kwargs), verbose=False)
    assert not result.passed and result.failures == (slip,)


def test_multiscale_check_names_a_per_scale_answer_and_accepts_torch():
    torch = pytest.importorskip("torch")
    result = check_multiscale_pooling(lambda v, p: v / np.linalg.norm(v, axis=2, keepdims=True), verbose=False)
    assert result.failures == ("shape",) and "combine over axis 0" in result.message
    assert check_multiscale_pooling(lambda v, p: torch.as_tensor(multiscale_combine(v, p)), verbose=False).passed
