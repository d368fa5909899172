"""Every lesson's headline comparison on real photos, with statistics that respect how the queries were drawn.

* :func:`real_photo_index`: the :class:`~cbir_lab.index.RetrievalIndex` of
  ``rparis6k-slice`` or ``eth80`` when its photos are on disk, with the whitening
  learned on the 1,000 ImageNet photos of ``imagenet-sample`` when those are too;
  otherwise ``None``, after printing how to get the photos.
* :func:`evidence_table`: a comparison as a lesson should show it: each setting's
  headline score with its cluster-bootstrap interval, its difference to a reference
  with a paired interval, how many clusters were resampled, each cluster's own
  result when there are fewer than ten, and what one "significant" difference
  among several is worth.
* :func:`interaction_interval`: whether whitening helps one pooling more than
  another: the interval of (gain of a) − (gain of b), query by query.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from cbir_lab.datasets.image_sets import present_image_sets
from cbir_lab.datasets.real_photos import how_to_get, present_real_dataset
from cbir_lab.evaluation import Interval, paired_bootstrap
from cbir_lab.index import RetrievalIndex
from cbir_lab.studies.methods import MethodScore, compare_methods, compare_settings, score_intervals
from cbir_lab.pipeline import extract_dataset
from cbir_lab.pooling import Pooling
from cbir_lab.viz.retrieval import format_cluster_means, format_scores

__all__ = ["WHITENING_SET", "real_photo_index", "evidence_table", "interaction_interval"]

#: What the real sets' whitening is learned on: never their own photos. Its photos are fed at the
#: dataset's own side: a whitening learned at 384 px and applied at 512 px loses most of its gain (on
#: the slice, whitened SPoC's Medium mAP is 0.84 against 0.90).
WHITENING_SET = "imagenet-sample"


def real_photo_index(name: str = "rparis6k-slice", backbone: str = "efficientnet_lite0",
                     root: str | os.PathLike | None = None, whiten: bool = True) -> RetrievalIndex | None:
    """The retrieval index of a real set, or ``None`` (and a note on how to get it) when it is not on disk.

    Nothing is downloaded here: a lesson runs offline, and says what it would show.

    Args:
        name: ``"rparis6k-slice"`` or ``"eth80"``.
        backbone: the network.
        root: the data folder (default ``$CBIR_LAB_DATA``, else the user cache).
        whiten: learn a whitening on ``imagenet-sample`` (fed at the dataset's side) when it is on disk.

    Returns:
        The index (queries cropped to their boxes, the dataset's own max side), or ``None``.
    """
    dataset = present_real_dataset(name, root)
    if dataset is None:
        print(how_to_get(name))
        return None
    sets = present_image_sets((WHITENING_SET,), root) if whiten else []
    if sets:
        dataset = dataset.with_training_images(sets[0].images, sets[0].description)
    elif whiten:
        print(f"({WHITENING_SET} is not on disk, so there is no whitening here: "
              f"load_image_set({WHITENING_SET!r}) gets it)")
    features = extract_dataset(dataset, backbone, max_side=dataset.max_side, progress=False)
    return RetrievalIndex(features)


def evidence_table(rows: Sequence[MethodScore], reference: str | int = 0, digits: int = 3,
                   change: str | None = None) -> str:
    """A comparison, its intervals, and what they allow one to claim, as text.

    Args:
        rows: from :func:`cbir_lab.studies.methods.comparison_table` (or any rows with per-query APs
            and clusters).
        reference: the row the others are compared with (label or position).
        digits: decimals shown.
        change: instead of a reference, compare each row having this change (``"whitened"``
            or ``"query_expansion"``) with the same row without it
            (:func:`cbir_lab.studies.methods.compare_settings`).

    Returns:
        The table (each headline score with its interval, each row's difference to the
        reference with its paired interval, both resampling the clusters), then each
        cluster's own result when there are fewer than ten, then how many differences
        were tested and what one "significant" one among them is worth.
    """
    if change is None:
        differences, versus = compare_methods(rows, reference), "reference"
    else:
        differences, versus = compare_settings(rows, change), {"whitened": "no whitening"}.get(change, "no QE")
    lines = [format_scores(rows, digits, intervals=differences, versus=versus, score_intervals=score_intervals(rows))]
    first = next(iter(differences.values()))
    if first.too_few_clusters:
        lines += ["", f"{first.resampled}: too few for a bootstrap interval to support a claim; each one's "
                      f"{_headline(rows)}:", format_cluster_means(rows, digits)]
    tested = len(differences)
    excluding = sum(i.excludes_zero for i in differences.values())
    lines += ["", f"{tested} difference(s) tested at 95 %: {excluding} interval(s) exclude 0; with {tested} tests, "
                  f"about {tested * 0.05:.1f} would by chance alone if no setting differed."]
    return "\n".join(lines)


def _headline(rows: Sequence[MethodScore]) -> str:
    return "Medium mAP" if "medium" in rows[0].scores else "mAP"


def interaction_interval(index: RetrievalIndex, a: Pooling | str = "SPoC", b: Pooling | str = "MAC",
                         part: str = "train", n_resamples: int = 10_000, seed: int = 0) -> Interval:
    """Does whitening help pooling ``a`` more than ``b``? The interval of (gain of a) − (gain of b).

    Each query's gain is its AP with full PCA-whitening (every useful component, learned
    on ``part``) minus its AP with plain L2; the difference of the two poolings' gains is
    bootstrapped, query clusters resampled. Babenko & Lempitsky's argument (sum-pooled
    vectors suit whitening) predicts a positive interval for a = SPoC, b = MAC.

    Args:
        index: the retrieval index.
        a, b: the two poolings.
        part: what the whitening is learned on (``"train"`` or a whitening set of the features).
        n_resamples, seed: see :func:`cbir_lab.evaluation.paired_bootstrap`.

    Returns:
        The :class:`~cbir_lab.evaluation.Interval` of mean gain(a) − mean gain(b).
    """
    gains = []
    for pooling in (Pooling.parse(a), Pooling.parse(b)):
        whitened = index.whitened_aps(pooling, index.max_dim(pooling, part), 0.5, part)
        gains.append(np.asarray(whitened) - np.asarray(index.setting(pooling).aps))
    dataset = index.dataset
    return paired_bootstrap(gains[0], gains[1], n_resamples=n_resamples, seed=seed, clusters=dataset.clusters(),
                            unit=dataset.cluster_unit)
