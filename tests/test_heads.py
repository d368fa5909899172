"""The poolings as nn.Modules, and the descriptor head: each equals the functional / numpy path it wraps."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from cbir_lab.heads import MAC, RMAC, DescriptorHead, GeM, SPoC, pooling_module
from cbir_lab.pooling import GEM, SPOC_PRIOR, STANDARD_POOLINGS, Pooling, gem, mac, regional_vectors, rmac, spoc
from cbir_lab.whitening import PCAWhitening, l2n

# One image, C = 2 channels on a 2 × 3 grid.
#   channel 0: 7 1 4 / 1 6 5: sum 24, max 7, cube mean (343 + 1 + 64 + 1 + 216 + 125) / 6 = 125 = 5³
#   channel 1: all 2:           sum 12, max 2, any power mean 2
X = torch.tensor([[[[7.0, 1.0, 4.0], [1.0, 6.0, 5.0]], [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]]])


def test_spoc_mac_and_gem_modules_by_hand():
    assert SPoC()(X).tolist() == [[24.0, 12.0]]
    assert MAC()(X).tolist() == [[7.0, 2.0]]
    torch.testing.assert_close(GeM(p=3.0)(X), torch.tensor([[5.0, 2.0]]))


def test_each_module_equals_its_functional_form():
    torch.testing.assert_close(SPoC(center_prior=True)(X), spoc(X, center_prior=True), rtol=0, atol=0)
    torch.testing.assert_close(MAC()(X), mac(X), rtol=0, atol=0)
    torch.testing.assert_close(GeM(p=4.0)(X), gem(X, p=4.0))
    torch.testing.assert_close(RMAC(levels=2)(X), rmac(X, levels=2), rtol=0, atol=0)
    torch.testing.assert_close(RMAC(levels=2).regions(X), regional_vectors(X, 2), rtol=0, atol=0)


@pytest.mark.parametrize("pooling", [*STANDARD_POOLINGS, SPOC_PRIOR, Pooling("gem", p=4.5), Pooling("rmac", levels=1)])
def test_pooling_module_computes_what_the_pooling_does(pooling):
    maps = torch.rand(3, 5, 6, 7, generator=torch.Generator().manual_seed(0))
    module = pooling_module(pooling)
    assert isinstance(module, nn.Module) and module is not pooling_module(pooling)  # a new one each time
    torch.testing.assert_close(module(maps), pooling(maps))


def test_the_modules_show_their_settings():
    assert repr(GeM(p=3.0)) == "GeM(p=3, eps=1e-06)"
    assert repr(RMAC(levels=2)) == "RMAC(levels=2)"
    assert repr(SPoC(center_prior=True)) == "SPoC(center_prior=True)" and repr(MAC()) == "MAC()"
    assert repr(pooling_module("GeM (p=4)")) == "GeM(p=4, eps=1e-06)"


def test_gem_p_is_a_learnable_parameter_whose_gradient_is_the_derivative():
    pool = GeM(p=3.0).double()
    assert [name for name, _ in pool.named_parameters()] == ["p"] and pool.p.shape == ()
    x = X.double()
    loss = pool(x).sum()
    loss.backward()
    # The derivative of the two power means in p, by central differences: channel 1 is constant (2 for any p),
    # so only channel 0 contributes.
    h = 1e-5
    numeric = (gem(x, p=3.0 + h).sum() - gem(x, p=3.0 - h).sum()) / (2 * h)
    assert pool.p.grad is not None and pool.p.grad.item() == pytest.approx(numeric.item(), rel=1e-6)
    assert pool.p.grad.item() > 0  # a larger p moves a power mean toward the max: 5 up toward 7


def test_gem_takes_a_0d_tensor_p_and_refuses_other_tensors():
    torch.testing.assert_close(gem(X, p=torch.tensor(3.0)), gem(X, p=3.0))
    with pytest.raises(ValueError, match="0-d float tensor"):
        gem(X, p=torch.tensor([3.0]))
    with pytest.raises(ValueError, match="p must be a finite number > 0"):
        GeM(p=0.0)


def test_modules_pickle_by_their_public_names():
    copy = pickle.loads(pickle.dumps(GeM(p=4.0)))
    assert type(copy) is GeM and copy.p.item() == 4.0
    assert type(pickle.loads(pickle.dumps(MAC()))) is MAC


@pytest.fixture(scope="module")
def maps():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(20, 8, 4, 5, generator=generator), torch.rand(4, 8, 4, 5, generator=generator)


@pytest.mark.parametrize("pooling", ["SPoC", "MAC", "GeM"])
def test_the_head_equals_pooling_l2_whitening_l2_in_numpy(maps, pooling):
    train, test = maps
    pooling = Pooling.parse(pooling)
    whitening = PCAWhitening(n_components=6, power=0.5).fit(pooling(train).numpy())
    head = DescriptorHead.from_whitening(pooling, whitening)
    with torch.no_grad():
        got = head(test)
    assert got.shape == (4, 6) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), whitening.transform(l2n(pooling(test).numpy())), atol=1e-5)
    # Fewer components and partial whitening: the projection for those settings.
    with torch.no_grad():
        partial = DescriptorHead.from_whitening(pooling, whitening, n_components=3, power=0.25)(test)
    np.testing.assert_allclose(partial.numpy(), whitening.at(3, 0.25).transform(pooling(test).numpy()), atol=1e-5)


def test_the_rmac_head_whitens_each_region_as_transform_regions_does(maps):
    train, test = maps
    whitening = PCAWhitening(n_components=5).fit(regional_vectors(train, 2).reshape(-1, 8).numpy())
    with torch.no_grad():
        got = DescriptorHead.from_whitening(Pooling("rmac", levels=2), whitening)(test)
    np.testing.assert_allclose(got.numpy(), whitening.transform_regions(regional_vectors(test, 2)), atol=1e-5)


def test_without_whitening_the_head_is_pooling_then_l2(maps):
    _, test = maps
    torch.testing.assert_close(DescriptorHead(GEM)(test), l2n(gem(test)))
    torch.testing.assert_close(DescriptorHead(MAC())(test), l2n(mac(test)))


def test_the_head_works_in_a_sequential_and_trains_p(maps):
    train, _ = maps
    network = nn.Sequential(nn.Conv2d(8, 8, 1), DescriptorHead("GeM"))
    out = network(train)
    assert out.shape == (20, 8)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(20))
    (out[:, 0] ** 2).sum().backward()
    assert network[1].pool.p.grad is not None and network[0].weight.grad is not None
