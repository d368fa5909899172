"""Pooling against hand-worked formulas on tiny maps, and the R-MAC grid against the reference counts."""

import math

import pytest
import torch

import numpy as np

from cbir_lab.pooling import (
    GEM,
    MAC,
    RMAC,
    SPOC,
    SPOC_PRIOR,
    STANDARD_POOLINGS,
    Pooling,
    cell_allocation,
    center_prior,
    gem,
    mac,
    multiscale_combine,
    regional_pool,
    regional_vectors,
    rmac,
    rmac_regions,
    spoc,
)


def fmap(*rows):
    """A (1, 1, H, W) map from nested lists."""
    return torch.tensor([[rows]], dtype=torch.float64).reshape(1, 1, len(rows), len(rows[0]))


# ----- SPoC, MAC, GeM ---------------------------------------------------------------------------

def test_spoc_is_the_plain_sum():
    x = fmap([1, 2, 3], [4, 5, 6])
    assert spoc(x).item() == 21.0


def test_spoc_sums_each_channel_separately():
    x = torch.zeros(2, 3, 2, 2)
    x[0, 1] = 1.0
    x[1, 2, 0, 0] = 7.0
    out = spoc(x)
    assert out.shape == (2, 3)
    assert out.tolist() == [[0, 4, 0], [0, 0, 7]]


def test_center_prior_on_3x3_by_hand():
    # centre (1, 1); sigma = 3/6 = 0.5, so 2 sigma^2 = 0.5: a neighbour at distance 1 gets exp(-2), a corner exp(-4)
    w = center_prior(3, 3, torch.float64)
    assert w[1, 1] == 1.0
    assert w[0, 1].item() == pytest.approx(math.exp(-2))
    assert w[0, 0].item() == pytest.approx(math.exp(-4))


def test_center_prior_on_an_even_map_has_its_centre_between_cells():
    # 2x4: centre (0.5, 1.5), sigma = 2/6; cell (0, 1) is at distance^2 = 0.25 + 0.25 = 0.5
    w = center_prior(2, 4, torch.float64)
    assert w[0, 1].item() == pytest.approx(math.exp(-0.5 / (2 * (1 / 3) ** 2)))
    assert torch.allclose(w, w.flip(0)) and torch.allclose(w, w.flip(1))


def test_spoc_with_center_prior_weights_cells():
    x = fmap([0, 0, 0], [0, 2, 0], [1, 0, 0])  # the centre 2 counts fully, the corner 1 counts exp(-4)
    assert spoc(x, center_prior=True).item() == pytest.approx(2 + math.exp(-4))


def test_mac_takes_the_maximum_per_channel():
    x = torch.tensor([[[[1.0, 9.0], [3.0, 4.0]], [[0.5, 0.0], [0.0, 0.25]]]])
    assert mac(x).tolist() == [[9.0, 0.5]]


def test_gem_with_p_3_by_hand():
    x = fmap([1, 2], [2, 3])  # mean of cubes = (1 + 8 + 8 + 27) / 4 = 11
    assert gem(x, p=3).item() == pytest.approx(11 ** (1 / 3))


def test_gem_p1_is_the_mean_and_large_p_tends_to_max():
    x = fmap([1, 2], [3, 6])
    assert gem(x, p=1).item() == pytest.approx(3.0)
    assert gem(x, p=200).item() == pytest.approx(6.0, rel=0.01)


def test_gem_clamps_zeros_and_rejects_bad_p():
    assert torch.isfinite(gem(torch.zeros(1, 2, 3, 3), p=3)).all()
    with pytest.raises(ValueError, match="p must"):
        gem(fmap([1.0]), p=0)


@pytest.mark.parametrize("fn", [spoc, mac, gem, rmac])
def test_poolings_reject_wrong_shapes(fn):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        fn(torch.ones(3, 4, 4))
    with pytest.raises(TypeError):
        fn([[1.0]])


# ----- R-MAC grid ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "h, w, count",
    [(7, 7, 14), (30, 30, 14), (24, 32, 20), (32, 24, 20), (16, 64, 44), (12, 16, 20)],
)
def test_rmac_region_counts_match_the_reference(h, w, count):
    assert len(rmac_regions(h, w)) == count


def test_rmac_regions_on_a_square_map_by_hand():
    # 6x6, L=3: sides 6, 4, 3; level 2 starts at 0 and 2; level 3 at 0, 1(.5→1), 3
    regions = rmac_regions(6, 6)
    assert regions[0] == (0, 0, 6, 6)
    assert regions[1:5] == [(0, 0, 4, 4), (0, 2, 4, 4), (2, 0, 4, 4), (2, 2, 4, 4)]
    level3 = regions[5:]
    assert sorted({t for t, _, _, _ in level3}) == [0, 1, 3]
    assert all(s == 3 for _, _, s, _ in level3)


def test_rmac_regions_landscape_24x32_by_hand():
    # overlap closest to 0.4 is n = 2 (b = 8, overlap 2/3), so one extra region on the long axis:
    # level 1: side 24 at left 0 and 8
    regions = rmac_regions(24, 32)
    assert regions[:2] == [(0, 0, 24, 24), (0, 8, 24, 24)]
    assert {(r[2], r[3]) for r in regions[2:8]} == {(16, 16)}  # level 2: 2 x 3 regions of side 16


def test_rmac_regions_portrait_is_the_transpose_of_landscape():
    land = rmac_regions(24, 32)
    port = rmac_regions(32, 24)
    assert sorted((l, t, w, h) for t, l, h, w in land) == sorted(port)


def test_rmac_regions_stay_inside_the_map():
    for h, w in [(5, 17), (17, 5), (9, 13), (1, 40), (3, 3)]:
        for top, left, rh, rw in rmac_regions(h, w):
            assert 0 <= top and top + rh <= h and 0 <= left and left + rw <= w


def test_rmac_regions_on_tiny_maps():
    assert rmac_regions(1, 1) == [(0, 0, 1, 1)]  # levels 2 and 3 have side 0 and are skipped
    r23 = rmac_regions(2, 3)
    assert r23[:2] == [(0, 0, 2, 2), (0, 1, 2, 2)]
    assert len(r23) == 2 + 2 * 3 + 3 * 4


def test_rmac_regions_reject_bad_sizes():
    with pytest.raises(ValueError):
        rmac_regions(0, 4)
    with pytest.raises(ValueError):
        rmac_regions(4, 4, levels=0)


# ----- R-MAC and regional pooling ----------------------------------------------------------------

def test_regional_pool_mac_per_region():
    x = fmap([1, 0, 0, 0], [0, 0, 0, 5], [0, 0, 0, 0], [2, 0, 0, 0])
    out = regional_pool(x, [(0, 0, 2, 2), (0, 2, 2, 2), (2, 0, 2, 2)], mac)
    assert out.shape == (1, 3, 1)
    assert out[0, :, 0].tolist() == [1, 5, 2]


def test_regional_pool_rejects_regions_outside_the_map():
    with pytest.raises(ValueError, match="does not fit"):
        regional_pool(torch.ones(1, 1, 2, 2), [(1, 1, 2, 2)])


def test_rmac_is_the_sum_of_l2_normalised_regional_macs():
    torch.manual_seed(0)
    x = torch.rand(1, 4, 5, 5, dtype=torch.float64)
    expected = torch.zeros(4, dtype=torch.float64)
    for t, l, h, w in rmac_regions(5, 5):
        v = x[0, :, t : t + h, l : l + w].reshape(4, -1).max(dim=1).values
        expected += v / v.norm()
    assert torch.allclose(rmac(x)[0], expected)


def test_rmac_on_a_square_map_with_one_hot_channel():
    # only channel 0 fires, at the centre: every one of the 14 regions that contains it adds 1
    x = torch.zeros(1, 2, 7, 7, dtype=torch.float64)
    x[0, 0, 3, 3] = 1.0
    covering = sum(1 for t, l, h, w in rmac_regions(7, 7) if t <= 3 < t + h and l <= 3 < l + w)
    assert rmac(x)[0].tolist() == [covering, 0.0]


def test_regional_vectors_of_an_all_zero_map_are_zero_not_nan():
    v = regional_vectors(torch.zeros(1, 3, 4, 4))
    assert torch.equal(v, torch.zeros_like(v))


def test_pool_each_on_maps_of_different_sizes():
    maps = [torch.ones(2, 3, 4), torch.ones(2, 5, 5)]
    assert SPOC.pool_each(maps).tolist() == [[12, 12], [25, 25]]
    assert torch.equal(MAC(maps[0][None]), torch.ones(1, 2))
    with pytest.raises(ValueError, match="no feature maps"):
        SPOC.pool_each([])


# ----- one name per pooling -------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("SPoC", SPOC), ("spoc", SPOC), ("sum", SPOC), ("SPoC+prior", SPOC_PRIOR), ("spoc_cp", SPOC_PRIOR),
    ("MAC", MAC), ("max", MAC), ("R-MAC", RMAC), ("rmac", RMAC), ("GeM", GEM), (" gem ", GEM),
    ("GeM (p=4)", Pooling("gem", p=4.0)), ("R-MAC (L=2)", Pooling("rmac", levels=2)),
])
def test_parse_reads_every_spelling(name, expected):
    assert Pooling.parse(name) == expected


def test_names_read_back_and_display_in_course_order():
    assert [p.name for p in STANDARD_POOLINGS] == ["SPoC", "MAC", "R-MAC", "GeM"]
    for pooling in (*STANDARD_POOLINGS, SPOC_PRIOR, Pooling("gem", p=2.5), Pooling("rmac", levels=4)):
        assert Pooling.parse(pooling.name) == pooling
        assert Pooling.parse(pooling) is pooling
    assert str(GEM) == "GeM" and RMAC.regional and not GEM.regional


def test_settings_a_method_ignores_do_not_split_it():
    assert Pooling("mac", p=5, levels=2, center_prior=True) == MAC
    assert hash(Pooling("spoc", p=7)) == hash(SPOC)
    assert Pooling("gem", p=4) != GEM


@pytest.mark.parametrize("args, message", [(("avg",), "unknown pooling method"), (("gem", 0.0), "p must be"),
                                           (("gem", float("inf")), "p must be"), (("rmac", 3.0, 0), "levels must be")])
def test_bad_settings_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        Pooling(*args)


@pytest.mark.parametrize("name, message", [("avg", "unknown pooling 'avg'"), ("MAC (p=3)", "not a setting of MAC")])
def test_parse_names_what_it_cannot_read(name, message):
    with pytest.raises(ValueError, match=message):
        Pooling.parse(name)


def test_a_pooling_computes_its_function():
    x = torch.rand(2, 3, 7, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(SPOC_PRIOR(x), spoc(x, center_prior=True))
    assert torch.equal(Pooling("gem", p=4)(x), gem(x, p=4))
    assert torch.equal(Pooling("rmac", levels=2)(x), rmac(x, levels=2))


# ----- a pooled vector split over its cells -----------------------------------------------------------

@pytest.mark.parametrize("pooling", [SPOC, SPOC_PRIOR, MAC, GEM, Pooling("gem", p=7)])
def test_cell_allocation_sums_to_the_pooled_vector(pooling):
    x = torch.rand(4, 5, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pooled, allocation = cell_allocation(x.numpy(), pooling)
    np.testing.assert_allclose(pooled, pooling(x[None])[0].numpy(), rtol=1e-10)
    np.testing.assert_allclose(allocation.sum(axis=(1, 2)), pooled, rtol=1e-10)


def test_cell_allocation_by_hand():
    x = np.array([[[1.0, 3.0], [2.0, 0.0]]])
    _, mac_cells = cell_allocation(x, MAC)
    assert mac_cells.tolist() == [[[0.0, 3.0], [0.0, 0.0]]]  # all of MAC on its arg-max cell
    g, gem_cells = cell_allocation(np.array([[[1.0, 2.0]]]), Pooling("gem", p=2))
    # GeM p = 2: g = sqrt((1 + 4) / 2); the shares are in proportion 1 : 4
    assert g[0] == pytest.approx(math.sqrt(2.5))
    assert gem_cells[0, 0].tolist() == pytest.approx([g[0] / 5, 4 * g[0] / 5])
    with pytest.raises(ValueError, match="R-MAC"):
        cell_allocation(x, RMAC)


def test_gem_stays_finite_for_large_p_and_tends_to_mac():
    x = torch.tensor([[[[0.0, 0.5], [6.0, 2.0]]]])  # float32: 6 ** 50 alone would overflow
    for p in (50.0, 500.0):
        assert torch.isfinite(gem(x, p=p)).all()
    assert gem(x, p=500.0).item() == pytest.approx(6.0 * 0.25 ** (1 / 500), rel=1e-5)
    assert gem(x, p=1.0).item() == pytest.approx(8.5 / 4, rel=1e-6)


def test_naming_a_pooling_does_not_import_torch():
    # A stored index names its pooling when opened; `cbir-lab search` must not pay torch's import for that.
    import subprocess
    import sys

    code = ("import sys\nfrom cbir_lab.pooling import Pooling\n"
            "print(Pooling.parse('gem (p=4)').name, 'torch._C' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "GeM (p=4) False", done.stderr


# ----- multi-scale descriptors (cirtorch's extract_ms) ---------------------------------------------

def test_multiscale_combination_by_hand_two_scales_p3():
    # scale 1: (1, 0); scale 1/√2: (0.6, 0.8) (both unit already). Mean of cubes:
    # ((1 + 0.216) / 2, (0 + 0.512) / 2) = (0.608, 0.256); cube roots (0.84716, 0.63496); L2 → (0.80019, 0.59975)
    v = multiscale_combine(np.array([[[1.0, 0.0]], [[0.6, 0.8]]]), p=3)
    a, b = 0.608 ** (1 / 3), 0.256 ** (1 / 3)
    np.testing.assert_allclose(v, [[a / math.hypot(a, b), b / math.hypot(a, b)]], rtol=1e-12)
    np.testing.assert_allclose(v, [[0.8001873, 0.5997502]], rtol=1e-6)
    # each scale is L2-normalised first (as cirtorch's network outputs are): its size does not weigh
    np.testing.assert_allclose(multiscale_combine(np.array([[[5.0, 0.0]], [[3.0, 4.0]]]), p=3), v, rtol=1e-12)


def test_multiscale_p1_is_the_mean_and_one_scale_is_the_vector_l2_normalised():
    rng = np.random.default_rng(0)
    unit = rng.random((3, 4, 5))
    unit /= np.linalg.norm(unit, axis=-1, keepdims=True)
    mean = unit.mean(axis=0)
    np.testing.assert_allclose(multiscale_combine(unit, p=1), mean / np.linalg.norm(mean, axis=1, keepdims=True))
    one = rng.random((1, 4, 5)) * 7
    np.testing.assert_allclose(multiscale_combine(one, p=3), one[0] / np.linalg.norm(one[0], axis=1, keepdims=True))
    # a tensor of any float dtype goes in, the dtype is kept; an all-zero vector stays zero
    out = multiscale_combine(torch.zeros(2, 1, 3, dtype=torch.float32), p=3)
    assert out.dtype == np.float32 and out.tolist() == [[0.0, 0.0, 0.0]]


def test_multiscale_p_is_gems_p_and_one_for_the_others():
    assert Pooling("gem", p=4).multiscale_p == 4.0 and GEM.multiscale_p == 3.0
    assert SPOC.multiscale_p == MAC.multiscale_p == RMAC.multiscale_p == 1.0


@pytest.mark.parametrize("vectors, p, message", [
    (np.ones((2, 3)), 1, r"vectors must have shape \(S, N, C\)"),
    (np.ones((0, 2, 3)), 1, r"vectors must have shape \(S, N, C\) with S >= 1"),
    (np.full((1, 1, 2), np.nan), 1, "vectors hold a NaN"),
    (np.ones((1, 1, 2)), 0, "p must be a finite number > 0"),
    (np.ones((1, 1, 2)), float("inf"), "p must be a finite number > 0"),
    (-np.ones((1, 1, 2)), 3, "vectors must be non-negative for p = 3"),
])
def test_multiscale_bad_input_is_named(vectors, p, message):
    with pytest.raises(ValueError, match=message):
        multiscale_combine(vectors, p)
    assert multiscale_combine(-np.ones((1, 1, 2)), 1).shape == (1, 2)  # p = 1: whitened (signed) vectors are fine
