"""Interaction benchmark: how long one widget interaction takes, as a student feels it.

Each widget is built as a lesson builds it (timed: precomputing there is fine up
to :data:`BUILD_TARGET`), then a scripted sequence of control changes is applied,
each timed from setting the control's value to the end of the redraw (the
widget's own ``observe`` callback: the numbers, the picture encoded, the output
replaced). The sequence mixes first visits of a setting and revisits, as a
student going back and forth does. A step after which the widget shows an error
fails the scenario: an error is fast, and must never pass for a fast step.

Targets, on the embedded dataset's cached features and on a synthetic database
of 10,000 descriptors alike (the embedded images' pooled vectors plus 9,850 noisy
copies, put in the features' pooling memo as if pooled; the feature-map and
pooling explorers show three images whatever the database size, so they have no
10,000 case):

* every widget's median step ≤ 50 ms, and its 90th percentile ≤ 150 ms;
* a step that must refit a whitening on the 10,000 vectors (the whitening lab
  learning on the test database) is reported apart: it must show a busy state
  within 100 ms and finish within 2 s.

The index explorer of lesson 8 works on 10^5 vectors whatever the dataset; its
indexes are trained before the clock starts, as the lesson trains them in a cell
of their own, and its build is the measurement of every setting it offers.

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
from benchmarks.timing import format_seconds, summarize
from cbir_lab.pooling import GEM, MAC, SPOC, STANDARD_POOLINGS

__all__ = ["Step", "time_interactions", "synthetic_features", "widget_error", "run"]

MEDIAN_TARGET = 0.050
P90_TARGET = 0.150
BUILD_TARGET = 5.0
BUSY_TARGET = 0.100
REFIT_TARGET = 2.0
N_SYNTHETIC = 10_000


class Step:
    """One scripted interaction: ``action()`` changes a control; ``refit`` marks a step allowed to take seconds."""

    def __init__(self, action: Callable[[], object], refit: bool = False) -> None:
        self.action = action
        self.refit = refit


def widget_error(widget) -> str | None:
    """What a widget shows as an error after a step, or None: its ``error``, or text in its ``errors`` output."""
    error = getattr(widget, "error", None)
    if error is not None:
        return f"{type(error).__name__}: {error}"
    errors = getattr(widget, "errors", None)
    if errors is not None and errors.outputs:
        return "".join(o.get("text", "") for o in errors.outputs).strip()[:200]
    results = getattr(widget, "results", None)
    if results is not None and "cbir-talk-error" in str(getattr(results, "value", "")):
        return "the talk page shows an error"
    return None


def _busy_watcher(widget):
    """Records when the widget's ``out`` first changes during a step (its busy note), if it has one."""
    out = getattr(widget, "out", None)
    changes: list[float] = []
    if out is not None:
        out.observe(lambda change: changes.append(time.perf_counter()), names="outputs")
    return changes


def time_interactions(widget, steps: list[Step]) -> tuple[list[float], list[tuple[float, float | None]]]:
    """Run the steps once in order, with what the widgets print swallowed.

    Returns:
        (seconds of each ordinary step, (seconds, seconds to the first change of the output) of each refit step).

    Raises:
        RuntimeError: a step left the widget showing an error.
    """
    seconds, refits = [], []
    changes = _busy_watcher(widget)
    with contextlib.redirect_stdout(io.StringIO()):  # outside a kernel, display() prints reprs
        for number, step in enumerate(steps, 1):
            changes.clear()
            start = time.perf_counter()
            step.action()
            took = time.perf_counter() - start
            problem = widget_error(widget)
            if problem:
                raise RuntimeError(f"step {number} left the widget showing an error: {problem}")
            if step.refit:
                refits.append((took, changes[0] - start if changes else None))
            else:
                seconds.append(took)
    return seconds, refits


def _setter(control, value) -> Step:
    def step() -> None:
        control.value = value
    return Step(step)


def _quiet(build: Callable[[], object]):
    with contextlib.redirect_stdout(io.StringIO()):
        return build()


# --- one scenario per widget: (build the widget, the interactions) --------------------------------------------


def _feature_maps(features, backbone):
    from cbir_lab.widgets.feature_maps import FeatureMapExplorer

    ds = features.dataset
    explorer = _quiet(lambda: FeatureMapExplorer([ds.queries()[0], ds.db_images[0]], backbone, names=["query", "db 0"]))
    c = explorer.channel.value
    return explorer, [_setter(explorer.channel, (c + 1) % 1280), _setter(explorer.channel, (c + 2) % 1280),
                      _setter(explorer.layer, "blocks.5"), _setter(explorer.layer, "blocks.3"), _setter(explorer.channel, 7),
                      _setter(explorer.layer, backbone.layer), _setter(explorer.image, 1), _setter(explorer.channel, c),
                      _setter(explorer.image, 0), _setter(explorer.layer, "blocks.5")]


def _pooling(features, backbone):
    from cbir_lab.images import network_input
    from cbir_lab.widgets.pooling import PoolingExplorer

    ds = features.dataset
    positive = ds.gnd[0]["ok"][0] if ds.gnd else 1
    negative = next(i for i in range(ds.n_db) if not ds.gnd or i not in ds.gnd[0]["ok"])
    items = [ds.queries()[0], ds.db_images[positive], ds.db_images[negative]]
    maps = [features.query_maps[0].numpy(), features.db_maps[positive].numpy(), features.db_maps[negative].numpy()]
    images = [network_input(item, features.max_side, backbone.stride) for item in items]
    explorer = _quiet(lambda: PoolingExplorer(images, maps, ["query", "same scene", "other scene"]))
    return explorer, [_setter(explorer.method, "mac"), _setter(explorer.method, "rmac"), _setter(explorer.levels, 2),
                      _setter(explorer.method, "gem"), _setter(explorer.p, 5.0), _setter(explorer.p, 3.0),
                      _setter(explorer.channel, 10), _setter(explorer.method, "spoc"), _setter(explorer.center, True),
                      _setter(explorer.method, "mac")]


def _whitening(features, backbone=None):
    from cbir_lab.widgets.whitening import WhiteningLab

    lab = _quiet(lambda: WhiteningLab(features))
    learn_on_db = _setter(lab.training, "db")
    # a refit when the database is too large for the lab to have learned on it when built
    learn_on_db.refit = features.dataset.n_db >= lab.slow_database_size
    return lab, [_setter(lab.dim, 64), _setter(lab.dim, 32), _setter(lab.whitening, 0.25), _setter(lab.dim, 96),
                 _setter(lab.whitening, 0.0), _setter(lab.whitening, 0.5), learn_on_db,
                 _setter(lab.dim, 64), _setter(lab.training, "train"), _setter(lab.dim, 48)]


def _retrieval(features, backbone=None, methods=STANDARD_POOLINGS):
    from cbir_lab.widgets.retrieval import RetrievalExplorer

    explorer = _quiet(lambda: RetrievalExplorer(features))
    return explorer, [Step(lambda: explorer.select_query(1)), Step(lambda: explorer.select_query(2)),
                      _setter(explorer.method, methods[1]), _setter(explorer.method, methods[-1]),
                      _setter(explorer.whiten, True), _setter(explorer.query_expansion, True), _setter(explorer.k, 12),
                      Step(lambda: explorer.select_query(3)), _setter(explorer.whiten, False),
                      _setter(explorer.method, methods[0])]


def _talk(features, backbone=None, methods=STANDARD_POOLINGS):
    from cbir_lab.widgets.talk import TalkWidget

    talk = _quiet(lambda: TalkWidget(features, method=methods[-1]))
    return talk, [Step(lambda: talk.select_query(1)), Step(lambda: talk.select_query(2)),
                  _setter(talk.method, methods[1]), _setter(talk.method, methods[0]), _setter(talk.whitening, True),
                  Step(lambda: talk.select_query(3)), _setter(talk.method, methods[-1]), _setter(talk.whitening, False),
                  Step(lambda: talk.select_query(0)), _setter(talk.method, methods[1])]


def _aggregation(features, backbone):
    from cbir_lab.images import network_input
    from cbir_lab.widgets.aggregation import VisualWordsExplorer

    ds = features.dataset
    images = [network_input(ds.queries()[q], features.max_side, backbone.stride) for q in range(3)]
    explorer = _quiet(lambda: VisualWordsExplorer(images, features.query_maps[:3], ["q0", "q1", "q2"],
                                                  features.train_maps))
    return explorer, [_setter(explorer.k, 64), _setter(explorer.k, 4), _setter(explorer.normalisation, "power (√)"),
                      _setter(explorer.image, 1), _setter(explorer.k, 32), _setter(explorer.normalisation, "intra + √"),
                      _setter(explorer.image, 2), _setter(explorer.k, 8), _setter(explorer.normalisation, "raw sums"),
                      _setter(explorer.image, 0)]


_STUDIES: dict = {}


def _train_indexes(features) -> None:
    """Lesson 8's indexes over 10^5 vectors, trained before the clock starts (the lesson trains them in a cell
    of its own; the explorer's build is the measurement of every setting its controls offer)."""
    from cbir_lab.index import RetrievalIndex
    from cbir_lab.scale import IndexStudy, scale_database

    if id(features) not in _STUDIES:
        _STUDIES[id(features)] = IndexStudy(scale_database(RetrievalIndex(features), n_total=100_000), k=100,
                                            code_sizes=(16, 32, 64))


def _scale(features, backbone=None):
    from cbir_lab.widgets.scale import IndexTradeoffExplorer

    study = _STUDIES[id(features)]
    explorer = _quiet(lambda: IndexTradeoffExplorer(study))
    return explorer, [_setter(explorer.nprobe, 1), _setter(explorer.nprobe, 16), _setter(explorer.code_size, 64),
                      _setter(explorer.kind, "ivf"), _setter(explorer.nprobe, 4), _setter(explorer.kind, "pq"),
                      _setter(explorer.code_size, 16), _setter(explorer.kind, "flat"), _setter(explorer.kind, "ivfpq"),
                      _setter(explorer.nprobe, 64)]


#: widget module → (what it is, scenario builder, has a 10,000-descriptor case)
WIDGETS = {
    "feature_maps": ("feature-map explorer (lesson 1)", _feature_maps, False),
    "pooling": ("pooling explorer (lesson 2)", _pooling, False),
    "whitening": ("whitening lab (lesson 3)", _whitening, True),
    "retrieval": ("retrieval explorer", _retrieval, True),
    "talk": ("talk mode", _talk, True),
    "aggregation": ("visual-words explorer (lesson 7)", _aggregation, False),
    "scale": ("index explorer (lesson 8, 10^5 vectors)", _scale, False),
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


def _percentile_90(seconds: list[float]) -> float:
    return float(np.percentile(seconds, 90))


def _results(label: str, build: float, seconds: list[float], refits: list[tuple[float, float | None]]) -> list[Result]:
    stats = summarize(seconds)
    p90 = _percentile_90(seconds)
    rows = [
        Result("interaction", f"{label}: one step", format_seconds(stats.median),
               f"p90 {format_seconds(p90)}; max {format_seconds(stats.maximum)}; n={stats.n} steps",
               f"≤ {format_seconds(MEDIAN_TARGET)}, p90 ≤ {format_seconds(P90_TARGET)}",
               "met" if stats.median <= MEDIAN_TARGET and p90 <= P90_TARGET else "missed"),
        Result("interaction", f"{label}: building the widget", format_seconds(build), "",
               f"≤ {format_seconds(BUILD_TARGET)}", judge(build, BUILD_TARGET)),
    ]
    for took, busy in refits:
        shown = "never" if busy is None else format_seconds(busy)
        ok = busy is not None and busy <= BUSY_TARGET and took <= REFIT_TARGET
        rows.append(Result("interaction", f"{label}: a step that refits the whitening on the database",
                           format_seconds(took), f"busy note shown after {shown}",
                           f"busy ≤ {format_seconds(BUSY_TARGET)}, done ≤ {format_seconds(REFIT_TARGET)}",
                           "met" if ok else "missed"))
    return rows


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
            results.append(Result("interaction", label, "—", "", "", "not measured", f"widget missing ({err})"))
            continue
        cases = [(f"embedded dataset ({features.dataset.n_db} images)", lambda: features, {})]
        if has_database_case:
            cases.append((f"synthetic database of {N_SYNTHETIC:,} descriptors", lambda: grown,
                          {} if module_name == "whitening" else {"methods": (SPOC, MAC, GEM)}))
        for case, source, kwargs in cases:
            if source() is None:
                grown = synthetic_features(features)
            try:
                if module_name == "scale":
                    _train_indexes(source())
                start = time.perf_counter()
                widget, steps = scenario(source(), backbone, **kwargs)
                build = time.perf_counter() - start
                seconds, refits = time_interactions(widget, steps)
                results += _results(f"{label}, {case}", build, seconds, refits)
            except Exception as err:  # noqa: BLE001 - one broken widget must not hide the others' figures
                results.append(Result("interaction", f"{label}, {case}", "—", "", "", "not measured",
                                      f"the widget failed: {type(err).__name__}: {err}"))
    return results
