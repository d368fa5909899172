"""The basement's helpers: L2 normalisation, input checks, finiteness, the PCA core, all in numpy alone."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from cbir_lab._array import as_matrix, check_finite, covariance, l2n, pca_eigen, to_numpy


def test_l2n_by_hand():
    out = l2n(np.array([[3.0, 4.0], [0.0, -2.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, -1.0]])


def test_a_zero_row_stays_zero_and_a_tiny_one_is_divided_by_eps():
    out = l2n(np.array([[0.0, 0.0], [3e-13, 4e-13]]))
    assert not np.isnan(out).any()
    np.testing.assert_allclose(out, [[0.0, 0.0], [0.3, 0.4]])  # norm 5e-13 < eps = 1e-12: divided by 1e-12


def test_l2n_keeps_the_float_dtype_converts_integers_and_works_on_any_leading_shape():
    assert l2n(np.ones((2, 4), np.float16)).dtype == np.float16
    assert l2n(np.array([[0, 5]])).dtype == np.float32
    stacked = l2n(np.full((2, 3, 4), 2.0))  # (..., D): each of the 6 rows has norm 4
    np.testing.assert_allclose(stacked, np.full((2, 3, 4), 0.5))


def test_l2n_of_a_tensor_is_a_tensor_and_gradients_flow():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]], requires_grad=True)
    out = l2n(x)
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out.detach(), torch.tensor([[0.6, 0.8], [0.0, 0.0]]))
    out[0, 0].backward()
    assert x.grad is not None and x.grad[0].abs().sum() > 0


def test_to_numpy_takes_tensors_parameters_and_lists():
    assert to_numpy(torch.nn.Parameter(torch.ones(2))).tolist() == [1.0, 1.0]
    assert to_numpy([[1, 2]]).shape == (1, 2)


def test_check_finite_counts_the_bad_values_and_names_the_parameter():
    x = np.zeros((3, 4), np.float32)
    x[0, 1], x[2, 0], x[2, 3] = np.nan, np.inf, -np.inf
    with pytest.raises(ValueError, match=r"^query_vecs contains NaN or infinite values \(3 of 12\)$"):
        check_finite(x, "query_vecs")


def test_check_finite_accepts_values_whose_squares_overflow():
    check_finite(np.array([1e200, -1e200]), "x")  # the sum of squares is inf, every value finite
    check_finite(np.array([3e38, 3e38], np.float32), "x")
    check_finite(np.arange(4), "x")  # integers are always finite


def test_as_matrix_converts_and_checks():
    out = as_matrix(torch.tensor([[1, 2], [3, 4]]), "db_vecs", dtype=np.float64)
    assert out.dtype == np.float64 and out.flags.c_contiguous and out.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert as_matrix(np.ones(3), "q", vector=True).shape == (1, 3)
    assert as_matrix(np.ones((4, 3))[:, ::2], "q").flags.c_contiguous


@pytest.mark.parametrize("bad, problem", [
    (np.ones(3), r"must be a 2-D array \(n, dim\), got shape \(3,\)"),
    (np.ones((2, 3, 4)), r"must be a 2-D array \(n, dim\), got shape \(2, 3, 4\)"),
    ([[1.0, float("nan")]], r"contains NaN or infinite values \(1 of 2\)"),
])
def test_as_matrix_names_the_parameter_and_the_problem(bad, problem):
    with pytest.raises(ValueError, match=f"^train_vecs {problem}$"):
        as_matrix(bad, "train_vecs")


def test_the_basement_never_loads_torch_even_beside_a_lazily_imported_one():
    # cbir_lab.pooling puts a lazy stand-in for torch in sys.modules; l2n must not wake it.
    code = ("import sys, numpy as np\nimport cbir_lab.pooling\nfrom cbir_lab._array import as_matrix, l2n\n"
            "l2n(np.ones((2, 3))); as_matrix(np.ones((2, 3)), 'x')\nprint('torch._C' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


# ----- the PCA core ------------------------------------------------------------------------------

def test_covariance_by_hand():
    # rows (0, 0), (2, 2), (4, 0): mean (2, 2/3); var x = (4 + 0 + 4)/2 = 4, var y = (4/9 + 16/9 + 4/9)/2 = 4/3,
    # cov = ((-2)(-2/3) + 0 + 2(-2/3))/2 = 0
    np.testing.assert_allclose(covariance([[0.0, 0.0], [2.0, 2.0], [4.0, 0.0]]), [[4.0, 0.0], [0.0, 4 / 3]])
    with pytest.raises(ValueError, match="n >= 2"):
        covariance([[1.0, 2.0]])


@pytest.mark.parametrize("n, dim", [(5, 8), (40, 6)])  # the SVD of the data (n <= D), eigh of the covariance (n > D)
def test_pca_eigen_diagonalises_the_covariance_in_decreasing_order(n, dim):
    x = np.random.default_rng(0).normal(size=(n, dim)) * np.arange(1, dim + 1)
    pca = pca_eigen(x)
    assert pca.mean.dtype == pca.components.dtype == np.float64
    assert len(pca.eigenvalues) == (n if n <= dim else dim)
    assert (np.diff(pca.eigenvalues) <= 0).all() and pca.n_useful == min(n - 1, dim)
    np.testing.assert_allclose(pca.mean, x.mean(axis=0))
    k = pca.n_useful
    u = pca.components[:k]
    np.testing.assert_allclose(u @ u.T, np.eye(k), atol=1e-10)
    np.testing.assert_allclose(u @ covariance(x) @ u.T, np.diag(pca.eigenvalues[:k]), atol=1e-9)


def test_pca_eigen_rank_rule_and_signs_by_hand():
    # two points, centred ±(0.5, 1.5): one direction (1, 3)/√10, of variance 2 (0.25 + 2.25)/(2 - 1) = 5
    pca = pca_eigen([[0.0, 0.0], [1.0, 3.0]], fix_signs=True)
    assert pca.n_useful == 1  # n - 1 = 1, whatever rounding leaves in the second eigenvalue
    np.testing.assert_allclose(pca.eigenvalues[0], 5.0)
    np.testing.assert_allclose(pca.components[0], np.array([1.0, 3.0]) / 10**0.5)  # its largest entry positive
    flipped = pca_eigen([[0.0, 0.0], [-1.0, -3.0]], fix_signs=True)
    np.testing.assert_allclose(flipped.components[0], pca.components[0])
