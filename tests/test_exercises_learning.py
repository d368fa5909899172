"""Lesson 9's self-checks: a right answer passes; each usual slip fails with the feedback that names it."""

import numpy as np
import pytest
import torch

from cbir_lab.exercises.learning import check_contrastive_loss, check_hard_negatives, check_learned_whitening
from cbir_lab.learning import contrastive_loss, hardest_negatives
from cbir_lab.whitening import LearnedWhitening


def _loss(*, mean=False, half=0.5, square_margin=False, clamp=True, swap=False):
    def loss_fn(a, o, y, margin):
        d = (a - o).norm(dim=1)
        y = 1 - y if swap else y
        push = margin - (d**2 if square_margin else d)
        push = push.clamp_min(0) if clamp else push
        per = half * (y * d**2 + (1 - y) * push**2)
        return per.mean() if mean else per.sum()
    return loss_fn


def test_contrastive_check_passes_the_package_and_a_hand_written_loss():
    assert check_contrastive_loss(contrastive_loss, verbose=False).passed
    assert check_contrastive_loss(_loss(), verbose=False).passed


@pytest.mark.parametrize("slip, kwargs", [("mean", {"mean": True}), ("no_half", {"half": 1.0}),
                                          ("square_in_margin", {"square_margin": True}), ("no_clamp", {"clamp": False}),
                                          ("swapped", {"swap": True})])
def test_contrastive_check_names_each_slip(slip, kwargs):
    result = check_contrastive_loss(_loss(**kwargs), verbose=False)
    assert not result.passed and result.failures == (slip,)


def _mine(*, keep_same=False, many_per_object=False, farthest=False, include_self=False):
    def mine_fn(X, labels, n):
        out = []
        for i in range(len(X)):
            order = np.argsort(X @ X[i] * (-1 if not farthest else 1), kind="stable")
            chosen, seen = [], set() if many_per_object else {labels[i]}
            for j in order:
                if (j == i and not include_self) or (labels[j] == labels[i] and not keep_same and j != i):
                    continue
                if labels[j] in seen and not many_per_object:
                    continue
                seen.add(labels[j])
                chosen.append(j)
                if len(chosen) == n:
                    break
            out.append(chosen)
        return np.array(out)
    return mine_fn


def test_mining_check_passes_the_package_and_a_hand_written_miner():
    assert check_hard_negatives(hardest_negatives, verbose=False).passed
    assert check_hard_negatives(_mine(), verbose=False).passed


@pytest.mark.parametrize("slip, kwargs", [("same_object", {"keep_same": True, "many_per_object": True}),
                                          ("one_per_object", {"many_per_object": True}),
                                          ("farthest", {"farthest": True}), ("self", {"include_self": True,
                                                                                   "many_per_object": True})])
def test_mining_check_names_each_slip(slip, kwargs):
    result = check_hard_negatives(_mine(**kwargs), verbose=False)
    assert not result.passed and result.failures == (slip,)


def _learn(*, rotate=True, ascending=False, mean_of_all=False, ddof=0):
    def learn_fn(X, q, p):
        m = X.mean(axis=0) if mean_of_all else X[np.unique(q)].mean(axis=0)
        diff = X[q] - X[p]
        cs = diff.T @ diff / (len(diff) - ddof)
        p1 = np.linalg.inv(np.linalg.cholesky(cs))
        if not rotate:
            return m, p1
        y = (X - m) @ p1.T
        values, vectors = np.linalg.eigh(y.T @ y)
        order = np.argsort(values) if ascending else np.argsort(values)[::-1]
        return m, vectors[:, order].T @ p1
    return learn_fn


def test_lw_check_passes_the_package_and_a_hand_written_closed_form():
    def package(X, q, p):
        w = LearnedWhitening().fit_pairs(X, q, p)
        return w.mean_, w.projection()
    assert check_learned_whitening(package, verbose=False).passed
    assert check_learned_whitening(_learn(), verbose=False).passed


@pytest.mark.parametrize("slip, kwargs", [("rotation", {"rotate": False}), ("order", {"ascending": True}),
                                          ("mean", {"mean_of_all": True}), ("within", {"ddof": 1})])
def test_lw_check_names_each_slip(slip, kwargs):
    result = check_learned_whitening(_learn(**kwargs), verbose=False)
    assert not result.passed and result.failures == (slip,)


def test_checks_report_a_missing_answer_without_a_traceback():
    def todo(*args):
        raise NotImplementedError
    for check in (check_contrastive_loss, check_hard_negatives, check_learned_whitening):
        result = check(todo, verbose=False)
        assert not result.passed and not result.implemented
