"""Extraction benchmark: cbir_lab's extractor against the bare backbone forward, speed per size, decoding.

* Against a plain forward: :func:`cbir_lab.features.extract_feature_maps` (no
  cache) on the embedded dataset's decoded images, resizing included, against
  the same network run eagerly in torch's default memory layout on tensors
  resized beforehand, batched alike; target ≤ 0.80× (the extractor runs the
  network in ``channels_last``, which oneDNN runs faster, with the same maps).
* Overhead: the extractor on decoded images already at the network's size,
  against its own backbone's forward on the same images stacked into the same
  batch; target ≤ 1.15×.
* Images per second at maximum sides 224, 384 and 512 (default backbone,
  decoded images, no cache), and decoding alone (PNG as shipped, and JPEG).
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path

import torch
from PIL import Image

from benchmarks.report import Result, judge
from benchmarks.timing import format_rate, format_ratio, format_seconds, format_spread, time_call, time_pair

__all__ = ["dataset_images", "run"]

OVERHEAD_TARGET = 1.15
PLAIN_FORWARD_TARGET = 0.80


def dataset_images(n: int) -> list[Path]:
    """The first ``n`` database images of the embedded dataset (generated on first use)."""
    from cbir_lab.datasets import load_dataset

    return list(load_dataset().db_images[:n])


def _bare_forward(backbone, groups: list[torch.Tensor]) -> None:
    with torch.inference_mode():
        for batch in groups:
            backbone(batch)


def _plain_forward(body: torch.nn.Module, groups: list[torch.Tensor]) -> None:
    """The network as anyone would run it: eager, default memory layout, tensors as they come."""
    with torch.inference_mode():
        for batch in groups:
            body(batch)


def _batches_like_the_extractor(tensors: list[torch.Tensor], batch_size: int) -> list[torch.Tensor]:
    # Equal shapes share a batch of at most batch_size, as extract_feature_maps groups them.
    by_shape: dict[tuple[int, ...], list[torch.Tensor]] = defaultdict(list)
    for t in tensors:
        by_shape[tuple(t.shape)].append(t)
    return [torch.stack(group[i : i + batch_size]) for group in by_shape.values()
            for i in range(0, len(group), batch_size)]


def run(quick: bool = False) -> list[Result]:
    """Every figure of the extraction section."""
    from cbir_lab.backbones import load_backbone
    from cbir_lab.features import extract_feature_maps, prepare_image
    from cbir_lab.images import load_image, resized_size

    n_images, repeat, warmup = (8, 3, 1) if quick else (16, 5, 1)
    batch_size = 16
    backbone = load_backbone()  # the default backbone, on the default device, as the course uses it
    paths = dataset_images(n_images)
    decoded = [load_image(p) for p in paths]
    extract = lambda images, side: extract_feature_maps(images, backbone, max_side=side, batch_size=batch_size,
                                                        cache=False, progress=False)
    results = [Result("extraction", "backbone, device, threads",
                      f"{backbone.name}/{backbone.layer}, {backbone.device}, {torch.get_num_threads()} threads", "",
                      note="Threads are torch's default (one per core); extract_feature_maps runs under "
                           "torch.inference_mode.")]

    # 1. Overhead on images already at the network size: one batch, nothing to resize.
    side = 384
    w, h = resized_size(4, 3, side)
    same_size = [img.resize((w, h), Image.Resampling.BILINEAR) for img in decoded]
    batches = _batches_like_the_extractor([prepare_image(img, backbone, side) for img in same_size], batch_size)
    t_ext, t_bare, ratio = time_pair(lambda: extract(same_size, side), lambda: _bare_forward(backbone, batches),
                                     repeat=repeat, warmup=warmup)
    results += [
        Result("extraction", f"extractor, {n_images} decoded {w}×{h} images (one batch)",
               format_seconds(t_ext.median), format_spread(t_ext)),
        Result("extraction", "bare backbone forward, same tensors, same batch",
               format_seconds(t_bare.median), format_spread(t_bare)),
        Result("extraction", "extractor / bare forward (overhead ratio)", format_ratio(ratio.median),
               format_spread(ratio, format_ratio), f"≤ {OVERHEAD_TARGET}×", judge(ratio.median, OVERHEAD_TARGET)),
    ]

    # 2. The extractor, resizing included, against a plain eager forward in the default layout on
    #    tensors resized beforehand: what the channels_last layout buys, on the dataset's mixed sizes.
    mixed = _batches_like_the_extractor([prepare_image(img, backbone, side) for img in decoded], batch_size)
    plain = load_backbone(optimize=False).body  # the same weights, as timm builds the network
    t_ext, t_plain, ratio_plain = time_pair(lambda: extract(decoded, side), lambda: _plain_forward(plain, mixed),
                                            repeat=max(repeat, 5), warmup=warmup)
    results += [
        Result("extraction", f"extractor incl. resizing, {n_images} mixed-size dataset images, side {side}",
               format_seconds(t_ext.median), format_spread(t_ext)),
        Result("extraction", "plain eager forward, default layout, tensors resized beforehand, same batches",
               format_seconds(t_plain.median), format_spread(t_plain)),
        Result("extraction", "extractor / plain eager forward", format_ratio(ratio_plain.median),
               format_spread(ratio_plain, format_ratio), f"≤ {PLAIN_FORWARD_TARGET}×",
               judge(ratio_plain.median, PLAIN_FORWARD_TARGET),
               f"{len(mixed)} batches for {n_images} images: the extractor batches only equal sizes. "
               "Resizing a decoded image (PIL bilinear) is part of the extractor, not of the plain forward."),
    ]

    # 3. Throughput per maximum side, on the dataset's decoded images.
    for side in (224, 384, 512):
        stats = time_call(lambda: extract(decoded, side), repeat=repeat, warmup=warmup)
        results.append(Result("extraction", f"images per second, max side {side} (decoded, no cache)",
                              format_rate(n_images / stats.median, "img"),
                              format_spread(stats.scaled(1 / n_images)) + " (time per image)"))

    if not quick:
        # 4. Are the default threads sensible? One thread against the default, bare forward at 384.
        default_threads = torch.get_num_threads()
        if default_threads > 1:
            def one_thread():
                torch.set_num_threads(1)
                try:
                    _bare_forward(backbone, batches)
                finally:
                    torch.set_num_threads(default_threads)
            t_one, t_default, _ = time_pair(one_thread, lambda: _bare_forward(backbone, batches), repeat=3, warmup=1)
            results.append(Result("extraction", f"bare forward speed-up, {default_threads} threads vs 1",
                                  format_ratio(t_one.median / t_default.median), format_spread(t_default), "", "info"))

    # 5. Decoding alone: the dataset's PNGs, and the same pixels as JPEG (quality 90).
    t_png = time_call(lambda: [load_image(p) for p in paths], repeat=repeat, warmup=warmup)
    with tempfile.TemporaryDirectory() as tmp:
        jpegs = []
        for i, img in enumerate(decoded):
            jpegs.append(Path(tmp) / f"{i}.jpg")
            img.save(jpegs[-1], quality=90)
        t_jpeg = time_call(lambda: [load_image(p) for p in jpegs], repeat=repeat, warmup=warmup)
    size = f"{decoded[0].size[0]}×{decoded[0].size[1]}"
    for label, stats in (("PNG (as the embedded dataset ships)", t_png), ("JPEG q90 (same pixels)", t_jpeg)):
        results.append(Result("extraction", f"decoding alone, {label}, ≈{size}",
                              f"{format_seconds(stats.median / n_images)}/img; "
                              f"{format_rate(n_images / stats.median, 'img')}",
                              format_spread(stats.scaled(1 / n_images))))
    return results
