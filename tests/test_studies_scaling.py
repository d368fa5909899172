"""Scaling study: backbones × input scales, scored and costed, on a toy dataset of random photos."""

import math

import numpy as np
import pytest

from cbir_lab.features import FeatureCache
from cbir_lab.studies.real_photos import evidence_table
from cbir_lab.studies.scaling import (
    EQUAL_COST_SCALES,
    ScalingCost,
    extraction_gflops,
    extraction_seconds,
    format_costs,
    scaling_study,
)
from tests.fixtures_features import photo_dataset


def test_equal_cost_scale_has_the_pixels_of_the_three_cirtorch_scales():
    assert EQUAL_COST_SCALES[0] ** 2 == pytest.approx(1 + 0.5 + 0.25)


def test_each_backbone_and_scale_set_is_a_row_with_its_costs(tmp_path):
    dataset = photo_dataset(tmp_path, protocol="revisited")
    rows, costs = scaling_study(dataset, backbones=("efficientnet_lite0",), scale_sets=((1.0,), (1.0, 0.5)),
                                max_side=64, timing_images=2, cache=FeatureCache(tmp_path / "cache"))
    assert [r.setting_label for r in rows] == ["Lite0, 64 px", "Lite0, 64+32 px"]
    assert [c.label for c in costs] == [r.method for r in rows]
    assert set(rows[0].scores) == {"easy", "medium", "hard"} and rows[0].aps.shape == (2,)
    assert all(0 <= r.scores["medium"] <= 1 and r.dim == 1280 for r in rows)
    assert [c.relative_pixels for c in costs] == [1.0, 1.25] and [c.max_sides for c in costs] == [(64,), (64, 32)]
    assert all(c.seconds_per_image > 0 and c.descriptor_bytes == 4 * 1280 for c in costs)
    assert 1.1 < costs[1].gflops_per_image / costs[0].gflops_per_image < 1.5  # 64 x 43 px, then 32 x 21 px more
    # 90 × 60 photos: 64 × 43 px gives 2 × 2 cells, 32 × 21 px one cell; 1280 channels in float16
    assert [c.map_bytes for c in costs] == [1280 * 4 * 2, 1280 * 5 * 2]
    assert "too few for a bootstrap interval" in evidence_table(rows)  # 2 queries, 2 clusters
    table = format_costs(costs).splitlines()
    assert table[0].split()[:3] == ["setting", "pixels", "(rel.)"] and "1.25" in table[2]


def test_a_scale_set_of_one_scale_gives_the_single_scale_scores(tmp_path):
    from cbir_lab.pipeline import extract_dataset, global_descriptors
    from cbir_lab.studies.depth import score_descriptors

    dataset = photo_dataset(tmp_path)
    rows, _ = scaling_study(dataset, backbones=("efficientnet_lite0",), scale_sets=((1.0,),), max_side=64,
                            timing_images=1, cache=FeatureCache(tmp_path / "cache"))
    plain = extract_dataset(dataset, "efficientnet_lite0", 64, cache=FeatureCache(tmp_path / "cache"), progress=False)
    expected = score_descriptors("plain", dataset, *global_descriptors(plain, "GeM"))
    assert rows[0].scores == pytest.approx(expected.scores)
    np.testing.assert_allclose(rows[0].aps, expected.aps)


def test_bad_settings_are_named_before_any_network_runs(tmp_path):
    dataset = photo_dataset(tmp_path)
    with pytest.raises(ValueError, match="scales must be"):
        scaling_study(dataset, backbones=("no-such-net",), scale_sets=((1.0,), (1.0, 0.0)))
    with pytest.raises(ValueError, match="timing_images must be a positive integer"):
        scaling_study(dataset, backbones=("no-such-net",), timing_images=0)
    with pytest.raises(ValueError, match="extraction_seconds: items is empty"):
        extraction_seconds([], None, [64])
    with pytest.raises(ValueError, match="repeats must be a positive integer"):
        extraction_seconds(list(dataset.db_images), None, [64], repeats=0)
    with pytest.raises(ValueError, match="extraction_gflops: items is empty"):
        extraction_gflops([], None, [64])
    assert format_costs([]) == "(no results)"
    one = ScalingCost("x", "efficientnet_lite0", (64,), 1.0, 2.0, 0.5, 5120, 1024)
    two = ScalingCost("y", "efficientnet_lite0", (64,), math.sqrt(2), 3.0, 1.0, 5120, 1024)
    assert format_costs([one, two]).splitlines()[2].split()[3:6] == ["1.50", "1.000", "2.00"]  # vs the first row
