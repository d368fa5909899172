"""The composed pipeline on hand-made feature maps, and the demo end to end on a small folder."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cbir_lab.cli import main
from cbir_lab.datasets.base import RetrievalDataset
from cbir_lab.pipeline import DatasetFeatures, describe, global_descriptors, learn_whitening
from cbir_lab.whitening import PCAWhitening
from tests.fixtures_features import photo_dataset


def one_hot_map(channel: int, c: int = 4, size: int = 3, value: float = 1.0) -> torch.Tensor:
    m = torch.zeros(c, size, size)
    m[channel, 1, 1] = value
    return m


@pytest.fixture
def features():
    # queries fire on channels 0 and 1; db images 0, 1 fire on 0, images 2, 3 on 1
    ds = RetrievalDataset(
        name="toy",
        db_images=tuple(Path(f"db{i}.png") for i in range(4)),
        query_images=(Path("q0.png"), Path("q1.png")),
        gnd=({"ok": [0, 1], "junk": []}, {"ok": [2, 3], "junk": []}),
        train_images=tuple(Path(f"t{i}.png") for i in range(8)),
    )
    rng = torch.Generator().manual_seed(0)
    train = [torch.rand(4, 3, 3, generator=rng) for _ in range(8)]
    db = [one_hot_map(0), one_hot_map(0, value=2.0), one_hot_map(1), one_hot_map(1, value=3.0)]
    return DatasetFeatures(ds, "toy", 96, [one_hot_map(0), one_hot_map(1)], db, train)


def test_descriptors_are_unit_vectors(features):
    for method in ("SPoC", "MAC", "R-MAC", "GeM"):
        q, db = global_descriptors(features, method)
        assert q.shape == (2, 4) and db.shape == (4, 4)
        np.testing.assert_allclose(np.linalg.norm(db, axis=1), 1.0, rtol=1e-6)


def test_an_all_zero_feature_map_gives_a_zero_vector_not_nan(features):
    features.db_maps[0] = torch.zeros(4, 3, 3)
    for method in ("SPoC", "MAC", "R-MAC", "GeM"):
        _, db = global_descriptors(features, method)
        assert np.isfinite(db).all()
    _, db = global_descriptors(features, "MAC")
    assert db[0].tolist() == [0, 0, 0, 0]


def test_whitened_descriptors_have_the_requested_dimension(features):
    q, db = global_descriptors(features, "SPoC", whitening=True, n_components=3)
    assert q.shape == (2, 3) and np.isfinite(db).all()
    q, db = global_descriptors(features, "R-MAC", whitening=True, n_components=3)
    assert db.shape == (4, 3)


def test_a_fitted_whitening_is_applied_as_given(features):
    fitted = learn_whitening(features, "GeM", n_components=2, power=0.25)
    assert (fitted.n_components_, fitted.power) == (2, 0.25)
    q, _ = global_descriptors(features, "GeM", whitening=fitted)
    np.testing.assert_allclose(q, fitted.transform(features.pooled("query", "GeM")))
    np.testing.assert_allclose(global_descriptors(features, "GeM", whitening=True, n_components=2, power=0.25)[0], q)


def test_describe_matches_hand_values():
    fmap = np.zeros((2, 2, 2), np.float32)
    fmap[0] = [[3.0, 0.0], [0.0, 0.0]]
    fmap[1] = [[1.0, 1.0], [1.0, 1.0]]
    # MAC (3, 1); SPoC (3, 4): both L2-normalised
    np.testing.assert_allclose(describe([fmap], "MAC")[0], np.array([3, 1]) / np.sqrt(10), rtol=1e-6)
    np.testing.assert_allclose(describe([fmap, torch.from_numpy(fmap)], "SPoC"), [[0.6, 0.8], [0.6, 0.8]], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown pooling"):
        describe([fmap], "maximum")


def test_whitening_without_a_training_split_is_a_clear_error(features):
    features.train_maps = []
    with pytest.raises(ValueError, match="no training split"):
        global_descriptors(features, "SPoC", whitening=True)


def make_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for group in ("red", "blue"):
        (root / group).mkdir(parents=True)
        base = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        base[..., 0 if group == "red" else 2] = 255
        for i in range(3):
            noisy = np.clip(base.astype(int) + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(root / group / f"{group}_{i}.png")
    return root


def test_demo_runs_on_a_users_folder_and_never_overwrites_a_figure(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CBIR_LAB_CACHE", str(tmp_path / "cache"))
    folder = make_folder(tmp_path / "my photos")
    figure = tmp_path / "demo.png"
    figure.write_bytes(b"the user's own file")
    assert main(["demo", "--dataset", str(folder), "--figure", str(figure), "--max-side", "64"]) == 0
    out = capsys.readouterr().out
    assert "SPoC" in out and "R-MAC" in out and "GeM" in out and "mAP" in out
    assert figure.read_bytes() == b"the user's own file"
    assert (tmp_path / "demo-1.png").stat().st_size > 1000


def test_demo_reports_a_missing_folder_clearly(tmp_path, capsys):
    assert main(["demo", "--dataset", str(tmp_path / "nowhere")]) == 1
    assert "nowhere" in capsys.readouterr().err


def test_rmac_whitening_equals_whitening_each_image_regions_separately(features):
    _, db = global_descriptors(features, "R-MAC", whitening=True, n_components=3)
    w = PCAWhitening(n_components=3).fit(np.concatenate(features.regional("train")))
    expected = np.stack([w.transform_regions(r[None])[0] for r in features.regional("db")])
    np.testing.assert_allclose(db, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- other whitening sets and distractors


def test_with_training_images_replaces_the_whitening_set_and_refuses_test_images(features):
    ds = features.dataset
    assert ds.train_source == "the toy training split"
    other = ds.with_training_images([Path("big0.jpg"), Path("big1.jpg")], "two big photos")
    assert other.train_images == (Path("big0.jpg"), Path("big1.jpg")) and other.train_source == "two big photos"
    assert other.db_images == ds.db_images and other.gnd == ds.gnd and ds.train_source == "the toy training split"
    with pytest.raises(ValueError, match="1 whitening-training images are test images"):
        ds.with_training_images([Path("db2.png")], "a database image")
    with pytest.raises(ValueError, match="has no images"):
        ds.with_training_images([], "nothing")


def test_with_distractors_appends_to_the_database_and_keeps_the_ground_truth(features):
    ds = features.dataset
    noisy = ds.with_distractors([Path("x0.jpg"), Path("x1.jpg"), Path("x2.jpg")], "three photos")
    assert noisy.name == "toy+3" and noisy.n_db == 7
    assert noisy.db_images[:4] == ds.db_images and noisy.gnd == ds.gnd
    with pytest.raises(ValueError, match="already in the dataset"):
        ds.with_distractors([Path("t3.png")], "a training image")


def test_a_distractor_ranked_above_a_positive_lowers_its_ap():
    from cbir_lab.evaluation import compute_map
    from cbir_lab.search import rank
    from tests.fixtures_features import make_features

    def vec(*values):
        return torch.tensor(values, dtype=torch.float32).reshape(-1, 1, 1)

    # query (1, 0); positives db0 = (1, 0) (cosine 1) and db1 = (1, 1) (cosine 0.707)
    plain = make_features([vec(1, 0)], [vec(1, 0), vec(1, 1)], gnd=[{"ok": [0, 1], "junk": []}])
    ds = plain.dataset.with_distractors([Path("x0.jpg")], "one photo")
    noisy = DatasetFeatures(ds, "toy", 64, plain.query_maps, plain.db_maps + [vec(3, 1)], [])  # cosine 0.949
    for features, expected in ((plain, 1.0), (noisy, (1 + (1 / 2 + 2 / 3) / 2) / 2)):  # positives at 0 and 2
        q, d = global_descriptors(features, "SPoC")
        assert compute_map(rank(q, d), features.dataset.gnd).aps[0] == pytest.approx(expected)


def test_extract_dataset_adds_each_whitening_set_as_a_part(tmp_path):
    from cbir_lab.backbones import load_backbone
    from cbir_lab.datasets.image_sets import ImageSet
    from cbir_lab.pipeline import extract_dataset
    from tests.fixtures_features import make_features

    base = make_features([torch.zeros(4, 1, 1)], [torch.zeros(4, 1, 1)] * 2, [torch.zeros(4, 1, 1)] * 3,
                         gnd=[{"ok": [0], "junk": []}], image_dir=tmp_path).dataset
    extra = []
    for i in range(4):
        path = tmp_path / f"big{i}.png"
        Image.new("RGB", (48, 40), (60 * i, 20, 200 - 40 * i)).save(path)
        extra.append(path)
    image_set = ImageSet("big", tuple(extra), "four generated photos")
    net = load_backbone("efficientnet_lite0", device="cpu")
    features = extract_dataset(base, net, max_side=64, cache=False, progress=False, whitening_sets=[image_set])
    assert features.parts == ("query", "db", "train", "big")
    assert len(features.train_maps) == 3 and len(features.maps("big")) == 4
    assert features.source("big") == "four generated photos" and features.source("train") == "the toy training split"
    plain = extract_dataset(base, net, max_side=64, cache=False, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(plain.db_maps, features.db_maps))
    whitening = learn_whitening(features, "SPoC", part="big")
    assert whitening.n_components_ == 3  # 4 images: at most 3 useful directions
    with pytest.raises(ValueError, match="part must be one of"):
        learn_whitening(features, "SPoC", part="imagenet-sample")


# ---------------------------------------------------------------- vocabulary encodings


def test_encode_dataset_learns_its_vocabulary_on_the_training_images_only():
    from cbir_lab import aggregation, encodings
    from cbir_lab.pipeline import encode_dataset
    from tests.fixtures_features import make_features

    generator = torch.Generator().manual_seed(0)
    maps = lambda n: [torch.rand(6, 3, 3, generator=generator) for _ in range(n)]  # noqa: E731
    features = make_features(maps(2), maps(4), maps(8), gnd=[{"ok": [0], "junk": []}, {"ok": [1], "junk": []}])
    encoded = encode_dataset(features, "vlad", k=2, local_dim=3, per_image=5)
    sample = aggregation.sample_local_descriptors(features.train_maps, per_image=5, seed=0)
    pca = aggregation.LocalPCA(3).fit(sample)
    np.testing.assert_allclose(encoded.local_pca.transform(sample), pca.transform(sample))
    np.testing.assert_allclose(encoded.vocabulary.centroids_,
                               aggregation.KMeansVocabulary(2, seed=0).fit(pca.transform(sample)).centroids_)
    assert encoded.name == "VLAD k=2" and set(encoded.vectors) == {"query", "db", "train"}
    assert encoded.vectors["db"].shape == (4, 2 * 3)
    expected = encodings.vlad(pca.transform(aggregation.local_descriptors(features.db_maps[1])), encoded.vocabulary,
                              intra=True, power=0.5)
    np.testing.assert_allclose(encoded.vectors["db"][1], expected, rtol=1e-6)
    fv = encode_dataset(features, "fv", k=2, local_dim=3, per_image=5)
    assert fv.vectors["query"].shape == (2, 2 * 2 * 3)  # 2·K·d
    with pytest.raises(ValueError, match="unknown encoding 'bow'"):
        encode_dataset(features, "bow", k=2)
    with pytest.raises(ValueError, match="no training images"):
        encode_dataset(make_features(maps(1), maps(2), (), gnd=[{"ok": [0], "junk": []}]), "vlad", k=2)


def test_the_triangulation_embedding_can_whiten_each_descriptor_as_the_paper_does():
    from cbir_lab import aggregation, encodings
    from cbir_lab.pipeline import encode_dataset
    from tests.fixtures_features import make_features

    generator = torch.Generator().manual_seed(1)
    maps = lambda n: [torch.rand(6, 3, 3, generator=generator) for _ in range(n)]  # noqa: E731
    features = make_features(maps(2), maps(4), maps(8), gnd=[{"ok": [0], "junk": []}, {"ok": [1], "junk": []}])
    plain = encode_dataset(features, "te", k=2, local_dim=3, per_image=5)
    whitened = encode_dataset(features, "te", k=2, local_dim=3, per_image=5, te_whitening=True)
    assert plain.name == "TE k=2" and whitened.name == "TE k=2, own whitening"
    assert plain.vectors["db"].shape == (4, 2 * 3)
    # K·d = 6 directions, the first d = 3 dropped: at most 3 left, fewer if the 40 training descriptors span less
    assert whitened.vectors["db"].shape[1] <= 2 * 3 - 3
    # by hand: the same whitening, learned on the same sample's embeddings, applied before the sum
    sample = aggregation.sample_local_descriptors(features.train_maps, per_image=5, seed=0)
    reduced = whitened.local_pca.transform(sample)
    white = encodings.TEWhitening(drop=3).fit(encodings.triangulation_directions(reduced, whitened.vocabulary.centroids_))
    descs = whitened.local_pca.transform(aggregation.local_descriptors(features.db_maps[2]))
    expected = encodings.triangulation_embedding(descs, whitened.vocabulary.centroids_, whitening=white, power=0.5)
    np.testing.assert_allclose(whitened.vectors["db"][2], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="te_whitening is the triangulation embedding's own step"):
        encode_dataset(features, "vlad", k=2, local_dim=3, per_image=5, te_whitening=True)


# ---------------------------------------------------------------- multi-scale descriptors

@pytest.fixture(scope="module")
def lite0_cpu():
    from cbir_lab.backbones import load_backbone

    return load_backbone("efficientnet_lite0", device="cpu")


def test_multiscale_features_combine_each_scales_pooled_vectors(tmp_path, lite0_cpu):
    from cbir_lab.features import FeatureCache
    from cbir_lab.pipeline import DEFAULT_SCALES, MultiScaleFeatures, extract_dataset
    from cbir_lab.pooling import multiscale_combine

    dataset = photo_dataset(tmp_path)
    cache = FeatureCache(tmp_path / "cache")
    ms = extract_dataset(dataset, lite0_cpu, max_side=128, cache=cache, progress=False, scales=DEFAULT_SCALES)
    assert isinstance(ms, MultiScaleFeatures) and ms.max_sides == (128, 91, 64)
    assert ms.relative_cost == pytest.approx(1 + (91 / 128) ** 2 + 0.25)  # about 1.75
    assert len(ms.seconds) == 3 and all(t > 0 for t in ms.seconds)
    # every scale is cached under its own side, and the full scale is the single-scale extraction's entry
    assert sorted(p.name for p in (tmp_path / "cache").rglob("s*") if p.is_dir()) == ["s128", "s64", "s91"]
    single = extract_dataset(dataset, lite0_cpu, max_side=128, cache=cache, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(single.db_maps, ms.db_maps))
    for pooling, p in (("GeM", 3.0), ("SPoC", 1.0), ("MAC", 1.0), ("R-MAC", 1.0)):
        per_scale = np.stack([f.pooled("db", pooling) for f in ms.at_scale])
        np.testing.assert_allclose(ms.pooled("db", pooling), multiscale_combine(per_scale, p), rtol=1e-6)
    q, db = global_descriptors(ms, "GeM", whitening=True)  # learned on the training photos' multi-scale vectors
    assert q.shape[0] == 2 and db.shape == (4, q.shape[1]) and np.isfinite(db).all()
    with pytest.raises(ValueError, match="whiten R-MAC on single-scale features"):
        global_descriptors(ms, "R-MAC", whitening=True)


def test_one_scale_is_the_plain_pooled_vector_l2_normalised(tmp_path, lite0_cpu):
    from cbir_lab.pipeline import extract_dataset
    from cbir_lab.whitening import l2n

    dataset = photo_dataset(tmp_path)
    plain = extract_dataset(dataset, lite0_cpu, max_side=96, cache=False, progress=False)
    one = extract_dataset(dataset, lite0_cpu, max_side=96, cache=False, progress=False, scales=[1])
    assert one.relative_cost == 1.0
    for pooling in ("GeM", "SPoC", "MAC", "R-MAC"):
        np.testing.assert_allclose(one.pooled("query", pooling), l2n(plain.pooled("query", pooling)), rtol=1e-5)
        np.testing.assert_allclose(global_descriptors(one, pooling)[1], global_descriptors(plain, pooling)[1],
                                   rtol=1e-5)


@pytest.mark.parametrize("scales", [(), (0,), (1, -0.5), (1, float("nan"))])
def test_extract_dataset_names_bad_scales_before_extracting(scales, features):
    from cbir_lab.pipeline import extract_dataset

    class NoNetwork:  # extraction would fail on it: the scales are checked first
        stride, name = 32, "none"

    for backbone in (NoNetwork(), "no-such-net"):  # a name is not even loaded
        with pytest.raises(ValueError, match="scales must be a non-empty sequence of finite numbers > 0"):
            extract_dataset(features.dataset, backbone, max_side=64, scales=scales)
