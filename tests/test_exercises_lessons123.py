"""Self-checks of lessons 1-3: right answers pass, typical wrong answers get the matching feedback."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cbir_lab.exercises import (
    check_power_mean,
    check_receptive_field,
    check_rmac_grid,
    check_whitened_variances,
    reference_power_mean,
    reference_receptive_field,
    reference_whitened_variances,
    CheckResult,
    check_feature_map_size,
    check_gem,
    check_spoc_center_prior,
    check_whitening,
    reference_feature_map_size,
)
from cbir_lab.pooling import rmac_regions
from cbir_lab.whitening import l2n


def stub(*args):
    raise NotImplementedError


# ----- lesson 1: feature-map size -----------------------------------------------------------------

def test_reference_size_rounds_up():
    assert reference_feature_map_size(384, 288, 32) == (12, 9)
    assert reference_feature_map_size(385, 33, 32) == (13, 2)  # one pixel past a multiple adds a cell


def test_feature_map_size_right_answer_passes(capsys):
    result = check_feature_map_size(lambda h, w, s: (math.ceil(h / s), math.ceil(w / s)))
    assert result.passed and bool(result)
    assert "✓" in capsys.readouterr().out


def test_feature_map_size_accepts_numpy_integers():
    assert check_feature_map_size(lambda h, w, s: (np.int64(-(-h // s)), np.int64(-(-w // s))), verbose=False).passed


@pytest.mark.parametrize(
    "answer, key, phrase",
    [
        (lambda h, w, s: (h // s, w // s), "floor", "ceil"),
        (lambda h, w, s: (math.ceil(w / s), math.ceil(h / s)), "swapped", "(height, width)"),
        (lambda h, w, s: (h / s, w / s), "not_rounded", "whole number"),
        (lambda h, w, s: float(h), "not_pair", "pair"),
    ],
)
def test_feature_map_size_wrong_answers_explained(answer, key, phrase):
    result = check_feature_map_size(answer, verbose=False)
    assert not result.passed
    assert key in result.failures
    assert phrase in result.message
    assert "384×288" in result.message or "300×500" in result.message  # names a failing case


def test_feature_map_size_stub_is_reported_not_raised():
    result = check_feature_map_size(stub, verbose=False)
    assert not result.passed and not result.implemented
    assert "not implemented" in result.message


def test_check_result_repr_is_short_and_stable():
    result = CheckResult("x", True, "long message")
    assert repr(result) == "<CheckResult x: passed>"
    assert str(result) == "long message"


# ----- lesson 2: GeM and SPoC with the centre prior ----------------------------------------------

def good_gem(x, p):
    return x.clamp(min=1e-6).pow(p).mean(dim=(-2, -1)).pow(1 / p)


def test_gem_right_answer_passes():
    assert check_gem(good_gem, verbose=False).passed


@pytest.mark.parametrize(
    "answer, key, phrase",
    [
        (lambda x, p: x.amax(dim=(-2, -1)), "mac", "matches MAC"),
        (lambda x, p: x.clamp(min=1e-6).pow(p).mean(dim=(-2, -1)), "no_root", "1/p"),
        (lambda x, p: x.clamp(min=1e-6).pow(p).sum(dim=(-2, -1)).pow(1 / p), "sum", "mean"),
        (lambda x, p: x.mean(dim=(-2, -1)), "ignores_p", "p is not used"),
        (lambda x, p: x.pow(p).mean(dim=(-3, -1)).pow(1 / p), "shape", "dim=(-2, -1)"),
        (lambda x, p: x.mean(dim=(-2, -1)).pow(p), "power_order", "before"),
    ],
)
def test_gem_wrong_answers_explained(answer, key, phrase):
    result = check_gem(answer, verbose=False)
    assert not result.passed
    assert result.failures == (key,)
    assert phrase in result.message


def test_gem_student_error_is_shown():
    result = check_gem(lambda x, p: x.nonexistent(), verbose=False)
    assert result.failures == ("error",) and "AttributeError" in result.message


def good_spoc(x):
    h, w = x.shape[-2:]
    ys = torch.arange(h, dtype=x.dtype) - (h - 1) / 2
    xs = torch.arange(w, dtype=x.dtype) - (w - 1) / 2
    weights = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * (min(h, w) / 6) ** 2))
    return (x * weights).sum(dim=(-2, -1))


def spoc_with(sigma_of, centre_of):
    def fn(x):
        h, w = x.shape[-2:]
        cy, cx = centre_of(h, w)
        ys = torch.arange(h, dtype=x.dtype) - cy
        xs = torch.arange(w, dtype=x.dtype) - cx
        weights = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma_of(h, w) ** 2))
        return (x * weights).sum(dim=(-2, -1))
    return fn


def test_spoc_center_right_answer_passes():
    assert check_spoc_center_prior(good_spoc, verbose=False).passed


def test_spoc_center_scaled_answer_passes_with_a_note():
    result = check_spoc_center_prior(lambda x: 2.5 * good_spoc(x), verbose=False)
    assert result.passed and "2.5" in result.message


@pytest.mark.parametrize(
    "answer, key",
    [
        (lambda x: x.sum(dim=(-2, -1)), "no_prior"),
        (spoc_with(lambda h, w: max(h, w) / 6, lambda h, w: ((h - 1) / 2, (w - 1) / 2)), "sigma_max"),
        (spoc_with(lambda h, w: min(h, w) / 3, lambda h, w: ((h - 1) / 2, (w - 1) / 2)), "sigma"),
        (spoc_with(lambda h, w: min(h, w) / 6, lambda h, w: (h / 2, w / 2)), "centre"),
        (spoc_with(lambda h, w: min(h, w) / 6, lambda h, w: ((w - 1) / 2, (h - 1) / 2)), "swapped"),
    ],
)
def test_spoc_center_wrong_answers_explained(answer, key):
    result = check_spoc_center_prior(answer, verbose=False)
    assert not result.passed
    assert result.failures == (key,)


def test_pooling_stubs_are_reported():
    assert not check_gem(stub, verbose=False).implemented
    assert not check_spoc_center_prior(stub, verbose=False).implemented


# ----- lesson 3: whitening -----------------------------------------------------------------------

def make_whiten(power=0.5, center=True, ascending=False, last_l2=True):
    def whiten(train, x, d):
        train = l2n(train)
        mean = train.mean(axis=0) if center else 0.0
        values, vectors = np.linalg.eigh(np.cov(train - train.mean(axis=0), rowvar=False))
        order = np.argsort(values)
        top = order[:d] if ascending else order[::-1][:d]
        out = (l2n(x) - mean) @ vectors[:, top] / values[top] ** power
        return l2n(out) if last_l2 else out
    return whiten


def test_whitening_right_answer_passes_whatever_the_signs():
    flipped = lambda t, x, d: -make_whiten()(t, x, d)
    assert check_whitening(make_whiten(), verbose=False).passed
    assert check_whitening(flipped, verbose=False).passed


@pytest.mark.parametrize(
    "answer, key, phrase",
    [
        (make_whiten(power=0.0), "pca_only", "√λ"),
        (make_whiten(power=1.0), "power_one", "divided by λ"),
        (make_whiten(ascending=True), "smallest", "ascending"),
        (make_whiten(center=False), "no_center", "mean"),
        (make_whiten(last_l2=False), "no_l2_last", "unit length"),
        (lambda t, x, d: make_whiten()(x, x, d), "fit_on_x", "train"),
        (lambda t, x, d: l2n(x), "shape", "d = 5"),
    ],
)
def test_whitening_wrong_answers_explained(answer, key, phrase):
    result = check_whitening(answer, verbose=False)
    assert not result.passed
    assert result.failures == (key,)
    assert phrase in result.message


def test_whitening_stub_is_reported():
    assert not check_whitening(stub, verbose=False).implemented


def test_call_student_turns_stubs_and_errors_into_feedback():
    from cbir_lab.exercises._feedback import StudentCodeError, call_student

    assert call_student("ex", "write it", "f(2)", lambda x: x * 3, 2) == 6

    def stub(x):
        raise NotImplementedError

    with pytest.raises(StudentCodeError) as stubbed:
        call_student("ex", "Return 3x.", "f(2)", stub, 2)
    assert not stubbed.value.result.implemented and stubbed.value.result.failures == ("not_implemented",)
    assert "Return 3x." in stubbed.value.result.message

    def broken(x):
        raise ValueError("boom")

    with pytest.raises(StudentCodeError) as failed:
        call_student("ex", "Return 3x.", "f(2)", broken, 2)
    assert failed.value.result.message == "✗ ex: f(2) raised ValueError: boom"
    assert failed.value.result.failures == ("error",) and not failed.value.result.passed


# ----- stride and receptive field ---------------------------------------------------------------------

def test_receptive_field_reference_by_hand():
    # 3x3 conv: field 3; a 2x2 stride-2 pool adds 1 (jump 1), then the next 3x3 conv adds 2 · 2 = 4: field 8
    assert reference_receptive_field([(3, 1), (2, 2), (3, 1)]) == (2, 8)
    assert reference_receptive_field([(3, 2)] * 5) == (32, 63)  # 1 + 2·(1 + 2 + 4 + 8 + 16)


def test_receptive_field_check_names_the_slips():
    assert check_receptive_field(reference_receptive_field, verbose=False).passed
    no_jump = lambda layers: (math.prod(s for _, s in layers), 1 + sum(k - 1 for k, _ in layers))
    result = check_receptive_field(no_jump, verbose=False)
    assert not result.passed and "no_jump" in result.failures and "(k - 1) · j" in result.message

    def stride_first(layers):
        jump, field = 1, 1
        for k, s in layers:
            jump *= s
            field += (k - 1) * jump
        return jump, field

    assert "stride_first" in check_receptive_field(stride_first, verbose=False).failures
    assert not check_receptive_field(lambda layers: (_ for _ in ()).throw(NotImplementedError), verbose=False).implemented


# ----- the R-MAC grid and the power mean --------------------------------------------------------------

def test_rmac_grid_check():
    assert check_rmac_grid(rmac_regions, verbose=False).passed
    assert check_rmac_grid(lambda h, w, L: list(reversed(rmac_regions(h, w, L))), verbose=False).passed  # order-free
    square_only = check_rmac_grid(lambda h, w, L: rmac_regions(min(h, w), min(h, w), L), verbose=False)
    assert not square_only.passed and "square_only" in square_only.failures
    shifted = lambda h, w, L: [(t + 0, l + 1 if l == 0 else l, s, s2) for t, l, s, s2 in rmac_regions(h, w, L)]
    assert "offsets" in check_rmac_grid(shifted, verbose=False).failures


def test_power_mean_reference_and_check():
    assert reference_power_mean([1.0, 2.0, 3.0, 6.0], 1.0) == pytest.approx(3.0)
    assert reference_power_mean([0.0, 0.0], 3.0) == 0.0
    assert reference_power_mean([0.0, 0.5, 6.0, 2.0], 500.0) == pytest.approx(6.0 * 0.25 ** (1 / 500))
    assert check_power_mean(reference_power_mean, verbose=False).passed
    naive = check_power_mean(lambda x, p: np.mean(x ** p) ** (1 / p), verbose=False)
    assert naive.failures == ("overflow",)
    assert "no_root" in check_power_mean(lambda x, p: np.mean(x ** p), verbose=False).failures


# ----- partial whitening -------------------------------------------------------------------------------

def test_whitened_variances_check():
    assert reference_whitened_variances([4.0, 1.0], 0.5).tolist() == [1.0, 1.0]
    assert check_whitened_variances(reference_whitened_variances, verbose=False).passed
    assert "scale" in check_whitened_variances(lambda l, p: l ** -p, verbose=False).failures
    assert "not_squared" in check_whitened_variances(lambda l, p: l ** (1 - p), verbose=False).failures
