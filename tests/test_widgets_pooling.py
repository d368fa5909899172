"""The lesson-2 explorer, driven by setting its controls, on hand-made maps."""

from __future__ import annotations

import numpy as np
import pytest

from cbir_lab.pipeline import describe
from cbir_lab.pooling import Pooling
from cbir_lab.viz.pooling import pooling_view
from cbir_lab.widgets.pooling import PoolingExplorer


def maps_and_images():
    """Anchor: channel 0 peaks at 4 in a corner, channel 1 is a flat 1; 'same' equals it; 'other' swaps them."""
    anchor = np.zeros((2, 6, 6), np.float32)
    anchor[0, 0, 0] = 4.0
    anchor[1] = 1.0
    other = anchor[::-1].copy()
    images = [np.zeros((48, 48, 3), np.uint8)] * 3
    return images, [anchor, anchor.copy(), other], ["anchor", "same", "other"]


@pytest.fixture
def explorer():
    images, maps, names = maps_and_images()
    return PoolingExplorer(images, maps, names, channel=0)


def test_pure_view_numbers_by_hand():
    images, maps, names = maps_and_images()
    # MAC: anchor (4, 1)/√17, other (1, 4)/√17: cosine 8/17
    _, caption, sims = pooling_view(images, maps, names, "MAC", 0, describe(maps, "MAC"))
    assert sims == pytest.approx([1.0, 8 / 17], abs=1e-6)
    assert "cos(anchor, other) = 0.471" in caption
    # SPoC: anchor (4, 36), other (36, 4): cosine 288 / 1312
    _, _, sims = pooling_view(images, maps, names, "SPoC", 0, describe(maps, "SPoC"))
    assert sims[1] == pytest.approx(288 / 1312, abs=1e-6)


def test_method_change_updates_similarities_and_disables_unused_controls(explorer):
    assert explorer.method.value == "spoc" and explorer.method.label == "SPoC"
    assert not explorer.center.disabled and explorer.levels.disabled
    spoc_sims = explorer.similarities.copy()
    explorer.method.value = "mac"
    assert explorer.similarities[1] == pytest.approx(8 / 17, abs=1e-6)
    assert explorer.similarities[1] != pytest.approx(spoc_sims[1])
    assert explorer.center.disabled and explorer.p.disabled
    assert explorer.caption.startswith("MAC keeps one cell: max = 4.00 at (y=0, x=0)")


def test_center_prior_changes_spoc(explorer):
    before = explorer.caption
    explorer.center.value = True
    assert explorer.caption.splitlines()[1].startswith("SPoC+prior:") and explorer.caption != before
    assert explorer.pooling == Pooling("spoc", center_prior=True)


def test_levels_change_the_rmac_grid(explorer):
    explorer.method.value = "rmac"
    explorer.levels.value = 1
    assert "1 regions" in explorer.caption
    explorer.levels.value = 3
    assert "14 regions" in explorer.caption  # 1 + 4 + 9 on a square map
    assert explorer.view.value[:4] == b"\x89PNG"


def test_gem_p_and_channel(explorer):
    explorer.method.value = "gem"
    explorer.p.value = 1.0
    explorer.channel.value = 1
    assert explorer.caption.splitlines()[1].startswith("GeM (p=1): descriptor[1]")
    assert Pooling("gem", p=1.0) in explorer._descriptors  # memoised per setting
    # GeM with p = 1 is SPoC up to scale: the same L2-normalised descriptors
    np.testing.assert_allclose(explorer.descriptors(Pooling("gem", p=1.0)), explorer.descriptors(Pooling("spoc")), atol=1e-5)


def test_repr_is_stable(explorer):
    assert repr(explorer) == "PoolingExplorer(method='SPoC', levels=3, center=False, p=3, channel=0)"
    assert explorer._repr_mimebundle_()["text/plain"] == repr(explorer)


def test_mismatched_inputs_are_rejected():
    images, maps, names = maps_and_images()
    with pytest.raises(ValueError, match="as many images, maps and names"):
        PoolingExplorer(images, maps[:2], names)
