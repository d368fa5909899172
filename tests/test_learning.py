"""Lesson 9's learning: the losses worked by hand, mining on a hand-made layout, the split by object, a seeded run."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cbir_lab.datasets.base import RetrievalDataset, gnd_from_groups
from cbir_lab.heads import DescriptorHead, GeM
from cbir_lab.learning import (DescriptorModel, TrainingSettings, contrastive_loss, describe_maps, hardest_negatives,
                               instance_split, random_negatives, random_positives, train_descriptor, triplet_loss,
                               QUICK_ENV)
from cbir_lab.pooling import gem
from cbir_lab.whitening import LearnedWhitening, l2n


# ----- losses ------------------------------------------------------------------------------------

def test_contrastive_loss_by_hand():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    o = torch.tensor([[0.6, 0.8], [0.6, 0.8], [-1.0, 0.0]])
    # d² = 0.4² + 0.8² = 0.8 for the first two; d = 2 for the third.
    # matching: ½·0.8 = 0.4; non-matching at d = √0.8 ≈ 0.894 < τ = 1.2: ½(1.2 − 0.894)²; at d = 2 > τ: 0
    expected = 0.4 + 0.5 * (1.2 - np.sqrt(0.8)) ** 2
    loss = contrastive_loss(a, o, torch.tensor([1, 0, 0]), margin=1.2)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_contrastive_loss_of_identical_matching_pair_is_zero_with_a_finite_gradient():
    a = torch.tensor([[0.6, 0.8]], requires_grad=True)
    loss = contrastive_loss(a, torch.tensor([[0.6, 0.8]]), torch.tensor([1]))
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-10) and torch.isfinite(a.grad).all()


def test_triplet_loss_by_hand():
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[0.0, 1.0]])             # ‖a − p‖² = 2
    n = torch.tensor([[[0.6, 0.8], [-1.0, 0.0]]])  # ‖a − n‖² = 0.8 and 4
    # max(0, 2 − 0.8 + 0.1) + max(0, 2 − 4 + 0.1) = 1.3 + 0
    assert triplet_loss(a, p, n, margin=0.1).item() == pytest.approx(1.3, rel=1e-6)


@pytest.mark.parametrize("loss", [contrastive_loss, triplet_loss])
def test_losses_refuse_a_margin_that_is_not_positive(loss):
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="margin"):
        loss(x, x, torch.zeros(1, 1, 2) if loss is triplet_loss else torch.ones(1), margin=0.0)


# ----- tuples ------------------------------------------------------------------------------------

def test_hardest_negatives_are_nearest_other_objects_one_per_object():
    # on the unit circle at 0°, 10°, 20°, 90°, 100°: items 1 and 2 share object "b"
    angles = np.radians([0, 10, 20, 90, 100])
    x = np.column_stack([np.cos(angles), np.sin(angles)])
    negatives = hardest_negatives(x, ["a", "b", "b", "c", "d"], 3)
    # item 0: nearest are 1 (b), 2 (b again: skipped), 3 (c), 4 (d)
    assert negatives[0].tolist() == [1, 3, 4]
    # item 3: nearest are 4 (d, 10°), 2 (b, 70°), then 1 (b: skipped), then 0 (a)
    assert negatives[3].tolist() == [4, 2, 0]


def test_hardest_negatives_refuse_more_negatives_than_other_objects():
    with pytest.raises(ValueError, match="n_negatives must be an integer in 1..1"):
        hardest_negatives(np.eye(3), ["a", "a", "b"], 2)


def test_positives_share_the_label_and_are_never_the_item_itself():
    labels = np.array(["a", "a", "a", "b", "b"])
    positives = random_positives(labels, np.random.default_rng(0))
    assert (labels[positives] == labels).all() and (positives != np.arange(5)).all()
    assert positives[3] == 4 and positives[4] == 3  # b has two items: each is the other's only positive
    with pytest.raises(ValueError, match="single item"):
        random_positives(["a", "a", "c"], np.random.default_rng(0))


def test_random_negatives_are_of_distinct_other_objects():
    labels = np.repeat(np.array(["a", "b", "c", "d"]), 2)
    negatives = random_negatives(labels, 3, np.random.default_rng(1))
    for i, row in enumerate(negatives):
        assert labels[i] not in labels[row] and len(set(labels[row])) == 3


# ----- the split by object -------------------------------------------------------------------------

def _toy_dataset() -> RetrievalDataset:
    # 2 categories × 4 objects × 2 views; every view is a query, the other view its positive
    objects = [f"{category}{k}" for category in ("cup", "pear") for k in range(1, 5)]
    groups = [o for o in objects for _ in range(2)]
    paths = tuple(Path(f"/toy/{g}-{v}.png") for g, v in zip(groups, [0, 1] * 8))
    return RetrievalDataset(name="toy", db_images=paths, query_images=paths,
                            gnd=gnd_from_groups(groups, list(range(16))), groups=tuple(groups),
                            query_clusters=tuple(groups), cluster_unit="objects")


def test_instance_split_is_disjoint_balanced_by_category_and_reindexes_the_ground_truth():
    dataset = _toy_dataset()
    kept, held = instance_split(dataset, every=2, seed=0)
    kept_objects, held_objects = set(kept.query_clusters), set(held.query_clusters)
    assert not kept_objects & held_objects and len(kept_objects) == len(held_objects) == 4
    for objects in (kept_objects, held_objects):  # two cups and two pears on each side
        assert sorted(o.rstrip("1234") for o in objects) == ["cup", "cup", "pear", "pear"]
    assert set(held.groups) == held_objects and held.n_db == 8
    for q, entry in enumerate(held.gnd):
        # the positive of each query is the other view of its own object, in the new indexing
        (positive,) = entry["ok"]
        assert held.groups[positive] == held.query_clusters[q]
        assert held.db_images[positive] != held.query_images[q]


def test_instance_split_needs_clusters_and_a_sensible_every():
    dataset = _toy_dataset()
    with pytest.raises(ValueError, match="every"):
        instance_split(dataset, every=1)
    with pytest.raises(ValueError, match="clusters"):
        instance_split(RetrievalDataset(name="flat", db_images=(), query_images=(), gnd=None))


# ----- the model and a seeded training run -------------------------------------------------------

def test_descriptor_model_is_gem_then_l2_and_describes_maps_of_mixed_sizes():
    model = DescriptorModel(nn.Identity())
    maps = [torch.rand(3, 2, 2), torch.rand(3, 4, 1), torch.rand(3, 2, 2)]
    out = describe_maps(model, maps)
    expected = l2n(torch.cat([gem(m[None], p=3.0) for m in maps])).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    assert model.p == pytest.approx(3.0)


def test_a_head_takes_a_learned_whitening_as_its_linear_layer():
    rng = np.random.default_rng(0)
    maps = torch.rand(12, 4, 3, 3)
    pooled = l2n(gem(maps, p=3.0)).numpy()
    lw = LearnedWhitening(n_components=3, shrinkage=0.1).fit(pooled, np.repeat(np.arange(4), 3))
    head = DescriptorHead.from_whitening(GeM(3.0), lw)
    with torch.no_grad():
        np.testing.assert_allclose(head(maps).numpy(), lw.transform(pooled), atol=1e-5)
    assert rng is not None


def _toy_training_data(seed: int = 0):
    # 6 objects × 3 views; an object is a direction in channels 0-3, a view adds a strong nuisance in 4-7
    rng = np.random.default_rng(seed)
    objects = rng.random((6, 4))
    maps, labels = [], []
    for k, obj in enumerate(objects):
        for _ in range(3):
            channels = np.concatenate([obj, 2.0 * rng.random(4)])
            maps.append(torch.tensor(channels[:, None, None] * (0.5 + rng.random((8, 2, 2))), dtype=torch.float32))
            labels.append(k)
    return maps, np.array(labels)


def _nearest_neighbour_accuracy(model, maps, labels) -> float:
    x = describe_maps(model, maps)
    similarity = x @ x.T - 2 * np.eye(len(x))
    return float((labels[similarity.argmax(axis=1)] == labels).mean())


def test_training_lowers_the_loss_and_a_seeded_rerun_repeats_it_exactly():
    maps, labels = _toy_training_data()
    settings = TrainingSettings(epochs=6, lr=5e-2, n_negatives=2, tuples_per_step=6)

    def run():
        torch.manual_seed(123)
        model = DescriptorModel(nn.Conv2d(8, 8, 1))
        before = _nearest_neighbour_accuracy(model, maps, labels)
        return train_descriptor(model, maps, labels, settings, progress=False), model, before

    (first, model, before), (second, _, _) = run(), run()
    losses = [r.loss for r in first.history]
    assert losses[-1] < losses[0]
    # the nuisance channels dominate at first; training learns to look past them
    assert _nearest_neighbour_accuracy(model, maps, labels) > before + 0.2
    assert losses == [r.loss for r in second.history] and [r.p for r in first.history] == [r.p for r in second.history]
    assert len(first.history) == 6 and first.before is None


def test_training_calls_validate_before_and_after_each_epoch_and_reports_each_epoch():
    maps, labels = _toy_training_data()
    calls, seen = [], []
    train_descriptor(DescriptorModel(nn.Identity()), maps, labels,
                     TrainingSettings(epochs=2, n_negatives=1, tuples_per_step=9),
                     validate=lambda m: calls.append(m.p) or 0.5, on_epoch=seen.append, progress=False)
    assert len(calls) == 3 and [r.epoch for r in seen] == [1, 2] and all(r.validation == 0.5 for r in seen)


@pytest.mark.parametrize("change, message", [({"loss": "hinge"}, "loss"), ({"negatives": "semi"}, "negatives"),
                                             ({"epochs": 0}, "epochs"), ({"lr": 0.0}, "lr")])
def test_training_settings_name_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=message):
        TrainingSettings(**change)


def test_the_quick_setting_is_chosen_by_one_environment_variable(monkeypatch):
    monkeypatch.setenv(QUICK_ENV, "1")
    assert TrainingSettings.for_lesson().epochs == 1
    monkeypatch.setenv(QUICK_ENV, "0")
    assert TrainingSettings.for_lesson() == TrainingSettings()


def test_instance_split_keeps_a_revisited_query_box_and_maps_easy_and_hard():
    paths = tuple(Path(f"/toy/{n}.jpg") for n in range(4))
    gnd = ({"easy": [0, 1], "hard": [], "junk": [], "bbx": [1.0, 2.0, 3.0, 4.0]},
           {"easy": [], "hard": [3], "junk": [2], "bbx": [5.0, 6.0, 7.0, 8.0]})
    queries = (Path("/toy/query-a.jpg"), Path("/toy/query-b.jpg"))
    dataset = RetrievalDataset(name="toy", db_images=paths, query_images=queries, gnd=gnd,
                               protocol="revisited", groups=("a", "a", "b", "b"), query_clusters=("a", "b"))
    kept, held = instance_split(dataset, every=2)
    # the box is a query's own, not database indices: it stays as it was
    assert {kept.gnd[0]["bbx"][0], held.gnd[0]["bbx"][0]} == {1.0, 5.0}
    for part in (kept, held):
        entry = part.gnd[0]
        positives = entry["easy"] + entry["hard"]
        assert part.n_db == 2 and positives and all(part.groups[i] == part.query_clusters[0] for i in positives)
