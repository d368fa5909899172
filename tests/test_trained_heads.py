"""A trained model on disk: saved with its checksum, reloaded as it was, refused when changed; `cbir-lab search --head`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cbir_lab.backbones import backbone_tail, load_backbone
from cbir_lab.cli import main
from cbir_lab.features import extract_feature_maps
from cbir_lab.heads import DescriptorHead, GeM
from cbir_lab.learning import DescriptorModel, describe_maps
from cbir_lab.trained_heads import load_trained_model, read_model_info, save_trained_model, trained_model_path
from cbir_lab.whitening import LearnedWhitening
from tests.fixtures_benchmarks import write_photos

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def network():
    return load_backbone(device="cpu")


@pytest.fixture(scope="module")
def trunk():
    return load_backbone(layer="blocks.5", device="cpu")


def test_the_tail_on_the_frozen_maps_is_the_whole_network(network, trunk):
    x = torch.rand(1, 3, 96, 64, generator=torch.Generator().manual_seed(0))
    tail = backbone_tail(network, "blocks.5")
    with torch.no_grad():
        whole, split = network(network.normalize(x)), tail(trunk(trunk.normalize(x)))
    torch.testing.assert_close(split, whole, rtol=1e-4, atol=1e-4 * float(whole.abs().max()))
    assert all(p.requires_grad for p in tail.parameters()) and tail.training
    with pytest.raises(ValueError, match="after must be one of"):
        backbone_tail(network, "conv_head")


def _model(network, whitened: bool) -> DescriptorModel:
    torch.manual_seed(0)
    model = DescriptorModel(backbone_tail(network, "blocks.5"), DescriptorHead(GeM(p=2.5)))
    if whitened:
        rng = np.random.default_rng(0)
        lw = LearnedWhitening(n_components=16, shrinkage=0.2).fit(rng.random((40, 1280)), np.repeat(np.arange(10), 4))
        model = model.with_whitening(lw)
    return model.eval()


@pytest.mark.parametrize("whitened", [False, True])
def test_a_saved_model_reloads_to_the_same_descriptors(network, tmp_path, whitened):
    model = _model(network, whitened)
    path = save_trained_model(model, tmp_path / "head.pt", backbone="efficientnet_lite0", frozen_layer="blocks.5",
                              trained_on="nothing: a test")
    info = read_model_info(path)
    assert info["frozen_layer"] == "blocks.5" and info["p"] == pytest.approx(2.5)
    assert info["whitening_dim"] == (16 if whitened else None)
    loaded, _ = load_trained_model(path)
    maps = [torch.rand(192, 3, 2, generator=torch.Generator().manual_seed(1))]
    np.testing.assert_allclose(describe_maps(loaded, maps), describe_maps(model, maps), rtol=0, atol=0)


def test_a_changed_weight_file_is_refused_and_a_users_file_is_never_overwritten(network, tmp_path):
    path = save_trained_model(_model(network, False), tmp_path / "head.pt", backbone="efficientnet_lite0",
                              frozen_layer="blocks.5", trained_on="a test")
    path.write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.raises(ValueError, match="SHA-256 of .*head.pt differs"):
        load_trained_model(path)
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"a user's own file")
    with pytest.raises(FileExistsError, match="mine.pt exists and is not a trained model"):
        save_trained_model(_model(network, False), mine, backbone="efficientnet_lite0", frozen_layer="blocks.5",
                           trained_on="a test")
    assert mine.read_bytes() == b"a user's own file"
    with pytest.raises(FileNotFoundError, match="missing.json does not exist"):
        (tmp_path / "missing.pt").write_bytes(b"")
        read_model_info(tmp_path / "missing.pt")


def test_the_path_under_the_cache_depends_on_everything_the_model_depends_on(tmp_path, monkeypatch):
    monkeypatch.setenv("CBIR_LAB_CACHE", str(tmp_path))
    a = trained_model_path("lesson09", settings={"epochs": 8}, data=["a.png"])
    assert a.parent == tmp_path / "trained" and a.suffix == ".pt"
    assert a != trained_model_path("lesson09", settings={"epochs": 8}, data=["b.png"])


def test_search_with_a_trained_head_ranks_by_the_models_descriptors_and_then_runs_without_torch(network, trunk, tmp_path):
    trip = write_photos(tmp_path / "trip", {"a/1.JPG": 1, "a/2.JPG": 2, "b/1.JPG": 3, "b/2.JPG": 4})
    model = _model(network, True)
    head = save_trained_model(model, tmp_path / "head.pt", backbone="efficientnet_lite0", frozen_layer="blocks.5",
                              trained_on="a test")
    photos = sorted(trip.rglob("*.JPG"))
    vectors = describe_maps(model, extract_feature_maps(photos, trunk, max_side=64, cache=False, progress=False))
    expected = [photos[i].relative_to(trip).as_posix() for i in np.argsort(-(vectors @ vectors[3]), kind="stable")]
    code = (
        "import json, sys\n"
        "from cbir_lab.cli import main\n"
        f"status = main(['search', '--dataset', {str(trip)!r}, {str(photos[3])!r}, '-k', '4', '--max-side', '64', "
        f"'--head', {str(head)!r}, '--out', {str(tmp_path / 'page.html')!r}])\n"
        "print(json.dumps([status, [m for m in ('torch._C', 'timm') if m in sys.modules]]))\n"
    )
    env = {**os.environ, "CBIR_LAB_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.strip().splitlines()
        runs.append((json.loads(lines[-1]), [line.split()[2] for line in lines if line[:4].strip().isdigit()]))
    (first_status, first_network), first = runs[0]
    (second_status, second_network), second = runs[1]
    assert first_status == second_status == 0 and first == second == expected
    assert "trained head head.pt" in done.stdout
    assert first_network == ["torch._C", "timm"] and second_network == []  # the exported model answers the second


def test_search_with_a_missing_head_names_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CBIR_LAB_CACHE", str(tmp_path / "cache"))
    trip = write_photos(tmp_path / "trip", {"a/1.JPG": 1})
    assert main(["search", "--dataset", str(trip), "a/1.JPG", "--head", str(tmp_path / "nope.pt")]) == 1
    assert "nope.pt does not exist" in capsys.readouterr().err
