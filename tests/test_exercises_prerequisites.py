"""Self-checks of lesson 1's "Before you start": right answers pass, the usual slips get their own feedback."""

from __future__ import annotations

import numpy as np
import pytest

from cbir_lab.exercises import (
    check_conv_output_size,
    check_squared_distances,
    check_top_eigenvector,
    reference_conv_output_size,
    reference_squared_distances,
    reference_top_eigenvector,
)
from cbir_lab.exercises.prerequisites import (
    BROADCASTING_REVISION,
    CONV_ARITHMETIC_REVISION,
    EIGENVECTOR_REVISION,
)


def stub(*args):
    raise NotImplementedError


# ----- broadcasting -------------------------------------------------------------------------------

def test_reference_squared_distances_by_hand():
    a = np.array([[0.0, 0.0], [1.0, 1.0]])
    b = np.array([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]])
    assert reference_squared_distances(a, b).tolist() == [[25.0, 1.0, 0.0], [13.0, 1.0, 2.0]]


def test_squared_distances_right_answers_pass(capsys):
    assert check_squared_distances(lambda a, b: ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)).passed
    assert "✓" in capsys.readouterr().out
    # the expansion ‖a‖² − 2 a·b + ‖b‖² is as right
    expanded = lambda a, b: (a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None, :]  # noqa: E731
    assert check_squared_distances(expanded, verbose=False).passed


@pytest.mark.parametrize("answer, key, phrase", [
    (lambda a, b: a - b, "error", "a[:, None, :] - b[None, :, :]"),
    (lambda a, b: (a[:, None, :] - b[None, :, :]) ** 2, "no_sum", "not summed"),
    (lambda a, b: ((a[None, :, :] - b[:, None, :]) ** 2).sum(axis=2), "transposed", "transposed"),
    (lambda a, b: np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)), "not_squared", "square them"),
    (lambda a, b: (a[:, None, :] - b[None, :, :]).sum(axis=2) ** 2, "sum_first", "before squaring"),
    (lambda a, b: ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=0), "shape", "shape (n, m)"),
], ids=["no-broadcast", "no-sum", "transposed", "not-squared", "sum-first", "wrong-axis"])
def test_squared_distances_slips_are_named_with_where_to_revise(answer, key, phrase):
    result = check_squared_distances(answer, verbose=False)
    assert not result.passed and result.failures == (key,)
    assert phrase in result.message
    assert "numpy.org/doc/stable/user/basics.broadcasting.html" in result.message
    assert BROADCASTING_REVISION.split(",")[0] in result.message


def test_squared_distances_stub_is_reported_not_raised():
    result = check_squared_distances(stub, verbose=False)
    assert not result.implemented and "not implemented yet" in result.message


# ----- a convolution's output size ------------------------------------------------------------------

def test_reference_conv_output_size_by_hand():
    assert reference_conv_output_size(5, 3) == 3  # no padding: 3 positions of a 3-wide kernel in 5 cells
    assert reference_conv_output_size(5, 3, 1, 1) == 5  # "same"
    assert reference_conv_output_size(224, 7, 2, 3) == 112  # ResNet's stem
    # kernel 3, stride 2, padding 1 halves, rounding up: lesson 1's ⌈n / 2⌉
    assert [reference_conv_output_size(n, 3, 2, 1) for n in (7, 8, 9)] == [4, 4, 5]


def test_conv_output_size_right_answer_passes():
    assert check_conv_output_size(lambda n, k, s, p: (n + 2 * p - k) // s + 1, verbose=False).passed


@pytest.mark.parametrize("answer, key, phrase", [
    (lambda n, k, s, p: (n + 2 * p - k) // s, "no_plus_one", "add 1"),
    (lambda n, k, s, p: (n + p - k) // s + 1, "padding_once", "*each* side"),
    (lambda n, k, s, p: (n - k) // s + 1, "no_padding", "left out the padding"),
    (lambda n, k, s, p: -(-(n + 2 * p - k) // s) + 1, "ceil", "rounded up"),
    (lambda n, k, s, p: n + 2 * p - k + 1, "no_stride", "divide"),
    (lambda n, k, s, p: float((n + 2 * p - k) // s + 1), "not_int", "return an int"),
], ids=["no-plus-one", "padding-once", "no-padding", "ceil", "no-stride", "float"])
def test_conv_output_size_slips_are_named_with_where_to_revise(answer, key, phrase):
    result = check_conv_output_size(answer, verbose=False)
    assert not result.passed and set(result.failures) == {key}
    assert phrase in result.message
    assert CONV_ARITHMETIC_REVISION in result.message and "✗ n = " in result.message


def test_conv_output_size_stub_is_reported_not_raised():
    result = check_conv_output_size(stub, verbose=False)
    assert not result.implemented and "not implemented yet" in result.message


# ----- an eigenvector -------------------------------------------------------------------------------

def test_reference_top_eigenvector_by_hand():
    v = reference_top_eigenvector(np.array([[2.0, 1.0], [1.0, 2.0]]))  # eigenvalues 3 and 1
    assert np.allclose(np.abs(v), [2**-0.5, 2**-0.5])
    v = reference_top_eigenvector(np.array([[1.0, 0.0], [0.0, 5.0]]))
    assert np.allclose(np.abs(v), [0.0, 1.0])


def largest(matrix):
    values, vectors = np.linalg.eigh(matrix)
    return vectors[:, -1]


def test_top_eigenvector_right_answers_pass_with_either_sign():
    assert check_top_eigenvector(largest, verbose=False).passed
    assert check_top_eigenvector(lambda m: -largest(m), verbose=False).passed


@pytest.mark.parametrize("answer, key, phrase", [
    (lambda m: np.linalg.eigh(m)[1][:, 0], "smallest", "*ascending* order"),
    (lambda m: np.linalg.eigh(m)[1][-1], "row", "*columns*"),
    (lambda m: 3 * largest(m), "not_unit", "‖v‖ = 1"),
    (lambda m: np.linalg.eigh(m)[0][-1], "eigenvalue", "returned the eigenvalue"),
    (lambda m: m[:, 0], "wrong", "not a multiple"),
], ids=["smallest", "row", "not-unit", "eigenvalue", "not-an-eigenvector"])
def test_top_eigenvector_slips_are_named_with_where_to_revise(answer, key, phrase):
    result = check_top_eigenvector(answer, verbose=False)
    assert not result.passed and result.failures == (key,)
    assert phrase in result.message
    assert EIGENVECTOR_REVISION in result.message


def test_top_eigenvector_of_another_eigenvalue_is_named():
    middle = lambda m: np.linalg.eigh(m)[1][:, len(m) // 2]  # noqa: E731: the 3 × 3 case has a middle eigenvalue
    result = check_top_eigenvector(lambda m: largest(m) if len(m) == 2 else middle(m), verbose=False)
    assert result.failures == ("other_eigenvalue",) and "not of the largest eigenvalue" in result.message


def test_top_eigenvector_stub_is_reported_not_raised():
    result = check_top_eigenvector(stub, verbose=False)
    assert not result.implemented and "not implemented yet" in result.message
