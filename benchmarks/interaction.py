"""Interaction benchmark: how long one widget interaction takes, as a student feels it.

Each widget is built as a lesson builds it (untimed), then a scripted sequence
of control changes is applied, each timed from setting the control's value to
the end of the redraw (the widget's own ``observe`` callback: the pure update
function, the figure rendered to PNG, the output replaced). The sequence mixes
first visits of a setting (computed) and revisits (memoised), as a student
going back and forth does; the median is the target figure, the maximum (a
first visit) is reported beside it.

* On the embedded dataset's cached features: target median ≤ 100 ms.
* On a synthetic database of 10,000 descriptors (the embedded images' pooled
  vectors, plus 9,850 noisy copies, put in the features' pooling memo as if
  pooled): target median ≤ 250 ms, for the widgets that work on a database
  (retrieval, talk, whitening). The feature-map and pooling explorers show
  three images whatever the database size, so they have no 10,000 case.

A widget module that does not exist yet gives a "not measured" row.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import time
from typing import Callable

import numpy as np

from benchmarks.report import Result, judge
from cbir_lab.pooling import GEM, MAC, SPOC, STANDARD_POOLINGS
from benchmarks.timing import format_seconds, summarize

__all__ = ["time_interactions", "synthetic_features", "run"]

EMBEDDED_TARGET = 0.100
SYNTHETIC_TARGET = 0.250
N_SYNTHETIC = 10_000


def time_interactions(steps: list[Callable[[], object]]) -> list[float]:
    """Seconds of each step, run once in order, with what the widgets print swallowed."""
    seconds = []
    with contextlib.redirect_stdout(io.StringIO()):  # outside a kernel, display() prints reprs
        for step in steps:
            start = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - start)
    return seconds


def _setter(control, value) -> Callable[[], None]:
    def step() -> None:
        control.value = value
    return step


def _result(label: str, seconds: list[float], target: float, note: str = "") -> Result:
    stats = summarize(seconds)
    return Result("interaction", label, format_seconds(stats.median),
                  f"max {format_seconds(stats.maximum)}; IQR {format_seconds(stats.q1)}–{format_seconds(stats.q3)}; "
                  f"n={stats.n} interactions", f"≤ {format_seconds(target)}", judge(stats.median, target), note)


def _quiet(build: Callable[[], object]):
    with contextlib.redirect_stdout(io.StringIO()):
        return build()


# --- one scenario per widget: (build the widget, the interactions) --------------------------------------------


def _feature_maps(features, backbone):
    from cbir_lab.widgets.feature_maps import FeatureMapExplorer

    ds = features.dataset
    explorer = _quiet(lambda: FeatureMapExplorer([ds.queries()[0], ds.db_images[0]], backbone, names=["query", "db 0"]))
    c = explorer.channel.value
    return [_setter(explorer.channel, (c + 1) % 1280), _setter(explorer.channel, (c + 2) % 1280),
            _setter(explorer.layer, "blocks.5"), _setter(explorer.layer, "blocks.3"), _setter(explorer.channel, 7),
            _setter(explorer.layer, backbone.layer), _setter(explorer.image, 1), _setter(explorer.channel, c),
            _setter(explorer.image, 0), _setter(explorer.layer, "blocks.5")]


def _pooling(features, backbone):
    from cbir_lab.features import network_input
    from cbir_lab.widgets.pooling import PoolingExplorer

    ds = features.dataset
    positive = ds.gnd[0]["ok"][0] if ds.gnd else 1
    negative = next(i for i in range(ds.n_db) if not ds.gnd or i not in ds.gnd[0]["ok"])
    items = [ds.queries()[0], ds.db_images[positive], ds.db_images[negative]]
    maps = [features.query_maps[0].numpy(), features.db_maps[positive].numpy(), features.db_maps[negative].numpy()]
    images = [network_input(item, features.max_side, backbone.stride) for item in items]
    explorer = _quiet(lambda: PoolingExplorer(images, maps, ["query", "same scene", "other scene"]))
    return [_setter(explorer.method, "mac"), _setter(explorer.method, "rmac"), _setter(explorer.levels, 2),
            _setter(explorer.method, "gem"), _setter(explorer.p, 5.0), _setter(explorer.p, 3.0),
            _setter(explorer.channel, 10), _setter(explorer.method, "spoc"), _setter(explorer.center, True),
            _setter(explorer.method, "mac")]


def _whitening(features, backbone=None):
    from cbir_lab.widgets.whitening import WhiteningLab

    lab = _quiet(lambda: WhiteningLab(features))
    return [_setter(lab.dim, 64), _setter(lab.dim, 32), _setter(lab.whitening, 0.25), _setter(lab.dim, 96),
            _setter(lab.whitening, 0.0), _setter(lab.whitening, 0.5), _setter(lab.training, "db"),
            _setter(lab.dim, 64), _setter(lab.training, "train"), _setter(lab.dim, 48)]


def _retrieval(features, backbone=None, methods=STANDARD_POOLINGS):
    from cbir_lab.widgets.retrieval import RetrievalExplorer

    explorer = _quiet(lambda: RetrievalExplorer(features))
    return [lambda: explorer.select_query(1), lambda: explorer.select_query(2), _setter(explorer.method, methods[1]),
            _setter(explorer.method, methods[-1]), _setter(explorer.whiten, True), _setter(explorer.query_expansion, True),
            _setter(explorer.k, 12), lambda: explorer.select_query(3), _setter(explorer.whiten, False),
            _setter(explorer.method, methods[0])]


def _talk(features, backbone=None, methods=STANDARD_POOLINGS):
    from cbir_lab.widgets.talk import TalkWidget

    talk = _quiet(lambda: TalkWidget(features))
    return [lambda: talk.select_query(1), lambda: talk.select_query(2), _setter(talk.method, methods[1]),
            _setter(talk.method, methods[0]), _setter(talk.whitening, True), lambda: talk.select_query(3),
            _setter(talk.method, methods[-1]), _setter(talk.whitening, False), lambda: talk.select_query(0),
            _setter(talk.method, methods[1])]


#: widget module → (what it is, scenario builder, has a 10,000-descriptor case)
WIDGETS = {
    "feature_maps": ("feature-map explorer (lesson 1)", _feature_maps, False),
    "pooling": ("pooling explorer (lesson 2)", _pooling, False),
    "whitening": ("whitening lab (lesson 3)", _whitening, True),
    "retrieval": ("retrieval explorer", _retrieval, True),
    "talk": ("talk mode", _talk, True),
}


def synthetic_features(features, n_db: int = N_SYNTHETIC, seed: int = 0):
    """The embedded dataset's features grown to ``n_db`` database descriptors.

    The database's pooled vectors (SPoC, MAC, GeM) are the real ones followed by
    noisy copies of them (|v + 0.5·σ·g|, g standard normal), and the database
    paths cycle through the real images (for thumbnails). Queries, ground truth
    (which only names real images) and the training split are the real ones.
    The vectors go into :class:`~cbir_lab.pipeline.DatasetFeatures`' pooling
    memo, so the widgets use them as if pooled; R-MAC is left out (it needs
    regional vectors).
    """
    from dataclasses import replace

    from cbir_lab.pipeline import DatasetFeatures

    ds = features.dataset
    rng = np.random.default_rng(seed)
    db_images = tuple(ds.db_images[i % ds.n_db] for i in range(n_db))
    synthetic = replace(ds, name=f"{ds.name}+synthetic{n_db}", db_images=db_images,
                        groups=None if ds.groups is None else tuple(ds.groups[i % ds.n_db] for i in range(n_db)))
    grown = DatasetFeatures(synthetic, features.backbone, features.max_side, features.query_maps, [], features.train_maps)
    for pooling in (SPOC, MAC, GEM):
        real = features.pooled("db", pooling)
        copies = real[np.arange(n_db - ds.n_db) % ds.n_db]
        noise = rng.standard_normal(copies.shape).astype(np.float32) * (0.5 * real.std(axis=0, keepdims=True))
        grown._pooled[("db", pooling)] = np.concatenate([real, np.abs(copies + noise)]).astype(np.float32)
        grown._pooled[("query", pooling)] = features.pooled("query", pooling)
        grown._pooled[("train", pooling)] = features.pooled("train", pooling)
    return grown


def run(quick: bool = False) -> list[Result]:
    """Every figure of the interaction section."""
    from cbir_lab.backbones import load_backbone
    from cbir_lab.datasets import load_dataset
    from cbir_lab.pipeline import extract_dataset

    backbone = load_backbone()
    features = extract_dataset(load_dataset(), backbone, progress=False)  # the feature cache, as the lessons use it
    grown = None
    results = []
    for module_name, (label, scenario, has_database_case) in WIDGETS.items():
        try:
            importlib.import_module(f"cbir_lab.widgets.{module_name}")
        except ImportError as err:
            results.append(Result("interaction", f"{label}, embedded dataset", "—", "", f"≤ {format_seconds(EMBEDDED_TARGET)}",
                                  "not measured", f"not measured: widget missing ({err})"))
            continue
        try:
            seconds = time_interactions(scenario(features, backbone))
            results.append(_result(f"{label}, embedded dataset ({features.dataset.n_db} images)", seconds, EMBEDDED_TARGET))
        except Exception as err:
            results.append(Result("interaction", f"{label}, embedded dataset", "—", "", f"≤ {format_seconds(EMBEDDED_TARGET)}",
                                  "not measured", f"the widget failed: {type(err).__name__}: {err}"))
        if not has_database_case:
            continue
        if grown is None:
            grown = synthetic_features(features)
        try:
            kwargs = {} if module_name == "whitening" else {"methods": (SPOC, MAC, GEM)}
            seconds = time_interactions(scenario(grown, backbone, **kwargs))
            results.append(_result(f"{label}, synthetic database of {N_SYNTHETIC:,} descriptors", seconds,
                                   SYNTHETIC_TARGET))
        except Exception as err:
            results.append(Result("interaction", f"{label}, {N_SYNTHETIC:,} descriptors", "—", "",
                                  f"≤ {format_seconds(SYNTHETIC_TARGET)}", "not measured",
                                  f"the widget failed: {type(err).__name__}: {err}"))
    return results
