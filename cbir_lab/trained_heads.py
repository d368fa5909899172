"""Trained descriptor models on disk: saved with their settings and a checksum, reloaded instead of trained again.

A trained model (:class:`cbir_lab.learning.DescriptorModel`: the backbone's trained last layers,
GeM with its learned p, optionally a whitening as a linear layer) is two files:

* ``NAME.pt``: its weights (a plain state dict: ``torch.load(..., weights_only=True)`` reads it);
* ``NAME.json``: what it is: the backbone and its frozen layer, the whitening's dimension, GeM's
  p, the training settings and history, what it was trained on, and the SHA-256 of ``NAME.pt``.

:func:`read_model_info` reads and checks the JSON without PyTorch; :func:`load_trained_model`
rebuilds the model and refuses a weight file whose checksum differs (changed or damaged).
``cbir-lab search --head NAME.pt`` describes photos with such a model
(:class:`cbir_lab.collection.PhotoCollection`), exported with :mod:`cbir_lab.onnx_network`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cbir_lab.paths import atomic_write, cache_dir

if TYPE_CHECKING:
    from cbir_lab.learning import DescriptorModel, TrainingRun

__all__ = ["MODEL_FORMAT", "trained_model_path", "save_trained_model", "read_model_info", "load_trained_model"]

#: The version of the files' layout; a file of another version is refused, not misread.
MODEL_FORMAT = 1


def trained_model_path(name: str, **identity: Any) -> Path:
    """Where a trained model lives under the cache: ``<cache>/trained/<name>-<hash of identity>.pt``.

    Args:
        name: a readable prefix (``"lesson09"``).
        identity: everything the model depends on (settings, data, backbone), JSON-serialisable:
            another value gives another file, so a stale model is never reloaded.

    Examples:
        >>> trained_model_path("demo", epochs=8).name == trained_model_path("demo", epochs=8).name
        True
        >>> trained_model_path("demo", epochs=8) == trained_model_path("demo", epochs=1)
        False
    """
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return cache_dir() / "trained" / f"{name}-{digest}.pt"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _info_path(path: Path) -> Path:
    return path.with_suffix(".json")


def save_trained_model(model: "DescriptorModel", path: str | os.PathLike, *, backbone: str, frozen_layer: str,
                       trained_on: str, run: "TrainingRun | None" = None) -> Path:
    """Write ``model`` to ``path`` (``.pt``) and its description, with the weights' SHA-256, beside it (``.json``).

    Args:
        model: the trained model (its ``tail`` from :func:`cbir_lab.backbones.backbone_tail`, its head
            GeM → L2 → optional whitening → L2).
        path: the weight file to write (a ``.pt`` name); an existing file is replaced only if it is
            a trained model too (nothing else a user made is overwritten).
        backbone, frozen_layer: the network and the deepest frozen layer the model starts from.
        trained_on: what the training images were, in words.
        run: the training run (settings and history), if any.

    Returns:
        The weight file's path.
    """
    import torch

    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"a trained model is written to a .pt file, got {path}")
    if path.exists() and not _info_path(path).exists():
        raise FileExistsError(f"{path} exists and is not a trained model of cbir-lab (no {_info_path(path).name} "
                              "beside it); choose another name")
    whiten = model.head.whiten
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    atomic_write(path, buffer.getvalue())
    info = {
        "format": MODEL_FORMAT,
        "backbone": backbone,
        "frozen_layer": frozen_layer,
        "whitening_dim": None if whiten is None else int(whiten.out_features),
        "p": model.p,
        "trained_on": trained_on,
        "settings": None if run is None else asdict(run.settings),
        "before": None if run is None else run.before,
        "history": [] if run is None else [asdict(r) for r in run.history],
        "sha256": _sha256(path),
    }
    atomic_write(_info_path(path), json.dumps(info, indent=1))
    return path


def read_model_info(path: str | os.PathLike) -> dict:
    """A trained model's description (the ``.json`` beside it), after checking the weights' checksum; no PyTorch.

    Raises:
        FileNotFoundError: the weight file or its description is missing (the message names it).
        ValueError: the description is unreadable or of another format, or the weights' SHA-256 differs
            from the one recorded (the file was changed or damaged).
    """
    path = Path(path)
    for needed in (path, _info_path(path)):
        if not needed.exists():
            raise FileNotFoundError(f"trained model: {needed} does not exist")
    try:
        info = json.loads(_info_path(path).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"trained model: {_info_path(path)} is not readable JSON ({err})") from None
    if not isinstance(info, dict) or info.get("format") != MODEL_FORMAT:
        raise ValueError(f"trained model: {_info_path(path)} is not a cbir-lab model description of format {MODEL_FORMAT}")
    if _sha256(path) != info.get("sha256"):
        raise ValueError(f"trained model: the SHA-256 of {path} differs from the one in {_info_path(path).name}: "
                         "the file was changed or damaged; train it again")
    return info


def load_trained_model(path: str | os.PathLike) -> tuple["DescriptorModel", dict]:
    """Rebuild a saved model (checksum checked first) in eval mode.

    Returns:
        (the :class:`~cbir_lab.learning.DescriptorModel`, its description from :func:`read_model_info`).
    """
    import torch
    from torch import nn

    from cbir_lab.backbones import backbone_tail, load_backbone
    from cbir_lab.heads import DescriptorHead, GeM
    from cbir_lab.learning import DescriptorModel

    info = read_model_info(path)
    network = load_backbone(info["backbone"], device="cpu")
    tail = backbone_tail(network, info["frozen_layer"])
    whiten = None if info["whitening_dim"] is None else nn.Linear(network.out_channels, info["whitening_dim"])
    model = DescriptorModel(tail, DescriptorHead(GeM(p=3.0), whiten))
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"trained model: {path} does not fit {info['backbone']} above {info['frozen_layer']}: {err}") from None
    return model.eval(), info
