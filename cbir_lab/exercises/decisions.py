"""Decision exercises: the student chooses, and the check asks whether the data can defend the choice.

The comparison that tests a claim, and the size of a benchmark, are in
:mod:`~cbir_lab.exercises.claims`.

Unlike the formula exercises, these have more than one right answer. A check runs the
student's *rule* on cases where some answers are defensible and some are not, and
judges with a tolerance, never bit for bit:

* :func:`check_held_out_choice`: ``choose_fn(aps_by_candidate, clusters) -> (choice, (low, high))``,
  a setting chosen on held-out queries and justified with its 95 % interval. A choice
  passes when its interval overlaps the best candidate's (the data cannot tell them
  apart); the interval must be within ±0.02 of a cluster bootstrap at 20,000 resamples.
  Lessons 2, 3 and 5 call it through :func:`check_p_choice` (GeM's p),
  :func:`check_dimension_choice` (the whitened d) and :func:`check_layer_choice`
  (the layer to pool). Recognises a choice the data rule out, an interval of another
  candidate, an interval that resamples queries rather than their source photos, and a
  choice that is not a candidate.
* :func:`check_effective_radius`: ``radius_fn(saliency, centre, share) -> r``, the
  half-side of the smallest square around a cell's centre that holds ``share`` of
  its gradient's mass (lesson 1), within ±1 pixel. Recognises signed sums, the
  square's side instead of its half-side, and a threshold on the peak instead of the mass.

Each check prints its feedback and returns a
:class:`~cbir_lab.exercises._feedback.CheckResult`; a stub that raises
``NotImplementedError`` gets a hint, never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cbir_lab.exercises._feedback import CheckResult, StudentCodeError, call_student, report
from cbir_lab.statistics import MIN_CLUSTERS, Interval, bootstrap_interval

__all__ = [
    "ChoiceCase",
    "tuning_half",
    "choice_case",
    "check_held_out_choice",
    "check_p_choice",
    "check_dimension_choice",
    "check_layer_choice",
    "check_effective_radius",
    "effective_radius",
    "CHOICE_RESAMPLES",
    "INTERVAL_TOLERANCE",
]

#: Resamples of the checks' reference intervals, and the tolerance on each end of a student's interval:
#: a cluster bootstrap of its own draws (another seed, ``rng.choice``, 2,000 resamples) lands within it.
CHOICE_RESAMPLES, INTERVAL_TOLERANCE = 20_000, 0.02


def _interval_pair(got) -> tuple[float, float] | None:
    try:
        low, high = (float(v) for v in got)
    except (TypeError, ValueError):
        return None
    return low, high


def _fmt(interval: Interval) -> str:
    return f"{interval.estimate:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def _near(pair: tuple[float, float], interval: Interval | tuple[float, float], tol: float = INTERVAL_TOLERANCE) -> bool:
    low, high = (interval.low, interval.high) if isinstance(interval, Interval) else interval
    return abs(pair[0] - low) <= tol and abs(pair[1] - high) <= tol


# ---------------------------------------------------------------- choosing a setting on held-out queries


@dataclass(frozen=True, eq=False)
class ChoiceCase:
    """Held-out queries on which to choose one of several settings.

    Attributes:
        label: what the case is, in words.
        candidates: the settings (a d, a p, a layer's name), in order of cost (cheapest first).
        aps: per-query APs on the tuning queries, shape (len(candidates), n_queries); NaN: no positives.
        clusters: per tuning query, its source (resampled whole, as the course's intervals are).
        test_aps: optional per-query APs of the same candidates on the *other* queries,
            never shown to the rule: the check reports the chosen setting's score there.
        test_clusters: the sources of those other queries.
        what: how a candidate is named in the feedback (``"d"``, ``"p"``, ``"layer"``).
        unit: what a cluster is, plural.
    """

    label: str
    candidates: tuple
    aps: np.ndarray
    clusters: np.ndarray
    test_aps: np.ndarray | None = None
    test_clusters: np.ndarray | None = None
    what: str = "d"
    unit: str = "source photos"

    def table(self) -> str:
        """Each candidate's mAP on the tuning queries with its 95 % interval (resampling the clusters), one per line."""
        intervals = _case_intervals(self)
        width = max(len(str(c)) for c in self.candidates) + len(self.what) + 3
        n_clusters = len(set(np.asarray(self.clusters).tolist()))
        lines = [f"{'':<{width}}  mAP on the {self.aps.shape[1]} tuning queries [95 % CI, G = {n_clusters} {self.unit}]"]
        lines += [f"{f'{self.what} = {c}':<{width}}  {_fmt(i)}" for c, i in zip(self.candidates, intervals)]
        return "\n".join(lines)

    def aps_by_candidate(self) -> dict:
        """candidate → its per-query APs on the tuning queries (what the student's rule receives)."""
        return {c: np.array(self.aps[i], dtype=np.float64) for i, c in enumerate(self.candidates)}


def tuning_half(clusters: Sequence) -> np.ndarray:
    """Which queries tune (True) and which are held out for the report (False): half of the clusters each.

    The clusters (sorted by name) are dealt alternately into the two halves, as
    :func:`cbir_lab.studies.whitening.held_out_dimension` does, so no source photo is in both.

    Examples:
        >>> tuning_half(["b", "a", "b", "c"]).tolist()
        [False, True, False, True]
    """
    labels = np.asarray(clusters)
    order = {label: i % 2 == 0 for i, label in enumerate(sorted(set(labels.tolist())))}
    return np.array([order[label] for label in labels])


def choice_case(label: str, candidates: Sequence, aps_by_candidate: Sequence, clusters: Sequence, what: str = "d",
                unit: str = "source photos") -> ChoiceCase:
    """A :class:`ChoiceCase` from every query's APs: half of the clusters tune, the other half is held out.

    Args:
        label: the case, in words.
        candidates: the settings, cheapest first.
        aps_by_candidate: per candidate, the APs of every query (same order as ``clusters``).
        clusters: per query, its source.
        what, unit: as in :class:`ChoiceCase`.
    """
    aps = np.asarray([np.asarray(a, dtype=np.float64) for a in aps_by_candidate])
    labels = np.asarray(clusters)
    tune = tuning_half(labels)
    return ChoiceCase(label, tuple(candidates), aps[:, tune], labels[tune], aps[:, ~tune], labels[~tune], what, unit)


def _case_intervals(case: ChoiceCase, clustered: bool = True) -> list[Interval]:
    return [bootstrap_interval(a, n_resamples=CHOICE_RESAMPLES, seed=0, clusters=case.clusters if clustered else None,
                               unit=case.unit) for a in case.aps]


def _synthetic_choice_case(label: str, candidates: Sequence, means: Sequence[float], what: str, seed: int,
                           n_clusters: int = 12, per_cluster: int = 3) -> ChoiceCase:
    """Clustered APs: each source photo shifts all its queries (and every candidate) together."""
    rng = np.random.default_rng(seed)
    photo = rng.normal(0.0, 0.15, n_clusters)
    query = rng.normal(0.0, 0.05, n_clusters * per_cluster)
    clusters = np.repeat([f"photo{i:02d}" for i in range(n_clusters)], per_cluster)
    effect = np.repeat(photo, per_cluster) + query
    aps = np.array([np.clip(m + effect + rng.normal(0.0, 0.02, effect.size), 0.0, 1.0) for m in means])
    return ChoiceCase(label, tuple(candidates), aps, clusters, what=what)


def _choice_cases(what: str) -> list[ChoiceCase]:
    """Synthetic held-out sets on which a fixed rule (always the cheapest, always the largest) fails somewhere."""
    if what == "p":
        return [
            _synthetic_choice_case("mAP rises with p, then flattens", (1, 2, 3, 4, 6, 10), (0.48, 0.62, 0.70, 0.72, 0.72, 0.71), "p", 1),
            _synthetic_choice_case("mAP peaks at a middle p, then falls to MAC's", (1, 2, 3, 4, 6, 10, 20, 50),
                                   (0.66, 0.72, 0.74, 0.72, 0.66, 0.58, 0.50, 0.46), "p", 2),
        ]
    if what == "layer":
        return [
            _synthetic_choice_case("deeper is better", ("blocks.4", "blocks.5", "blocks.6", "conv_head"),
                                   (0.42, 0.58, 0.70, 0.74), "layer", 3),
            _synthetic_choice_case("the last layer is too specific to the classes", ("blocks.4", "blocks.5", "blocks.6",
                                                                                     "conv_head", "logits"),
                                   (0.55, 0.72, 0.75, 0.73, 0.40), "layer", 4),
        ]
    return [
        _synthetic_choice_case("mAP rises with d, then flattens", (16, 32, 64, 128, 256), (0.45, 0.60, 0.70, 0.73, 0.74), "d", 5),
        _synthetic_choice_case("mAP peaks, then collapses as noise directions are boosted", (16, 32, 64, 128, 256),
                               (0.56, 0.72, 0.74, 0.60, 0.44), "d", 6),
    ]


def _judge_choice(case: ChoiceCase, choice, pair: tuple[float, float]) -> tuple[bool, str, str]:
    """(passed, failure key, feedback) for one case."""
    w = case.what
    intervals = _case_intervals(case)
    best = int(np.argmax([i.estimate for i in intervals]))
    best_name = f"{w} = {case.candidates[best]}"
    if choice not in case.candidates:
        listed = ", ".join(map(str, case.candidates))
        return False, "not_a_candidate", (f"{choice!r} is not one of the candidates ({listed}); return the {w} itself, "
                                          f"not its mAP or its position in the list.")
    k = case.candidates.index(choice)
    chosen, top = intervals[k], intervals[best]
    said = f"{w} = {choice}: {_fmt(chosen)}; the best, {best_name}: {_fmt(top)}"
    if chosen.high < top.low:
        return False, "ruled_out", (f"{said}. The intervals do not overlap: these held-out queries rule {w} = {choice} "
                                    f"out. Compute every candidate's interval, find the best, and keep only "
                                    f"candidates whose interval reaches the best one's.")
    if not _near(pair, chosen):
        others = [c for c, i in zip(case.candidates, intervals) if c != choice and _near(pair, i)]
        flat = bootstrap_interval(case.aps[k], n_resamples=CHOICE_RESAMPLES, seed=0)
        if others:
            return False, "other_interval", (f"your interval [{pair[0]:.3f}, {pair[1]:.3f}] is that of {w} = {others[0]}, "
                                             f"not of the {w} you chose ({w} = {choice}: {_fmt(chosen)}).")
        if _near(pair, flat) and not _near((flat.low, flat.high), chosen):
            return False, "unclustered", (
                f"your interval [{pair[0]:.3f}, {pair[1]:.3f}] resamples the queries one by one ({_fmt(flat)}). Queries "
                f"cut from one photo rise and fall together, so resample the {case.unit} "
                f"(bootstrap_interval(aps, clusters=clusters)): {_fmt(chosen)}, wider.")
        if not pair[0] <= chosen.estimate <= pair[1]:
            return False, "interval", (f"your interval [{pair[0]:.3f}, {pair[1]:.3f}] does not even contain {w} = "
                                       f"{choice}'s mAP, {chosen.estimate:.3f}. Give the 95 % bootstrap interval of its "
                                       f"mAP on these queries, resampling the {case.unit}.")
        return False, "interval", (f"expected {w} = {choice}'s 95 % interval near [{chosen.low:.3f}, {chosen.high:.3f}] "
                                   f"(±{INTERVAL_TOLERANCE} on each end), got [{pair[0]:.3f}, {pair[1]:.3f}]. Resample "
                                   f"the {case.unit} (bootstrap_interval(aps, clusters=clusters)).")
    if k == best:
        return True, "", f"{w} = {choice}: {_fmt(chosen)}, the best on these queries."
    smaller = {"d": "smaller", "layer": "smaller"}.get(w)
    cheaper = "" if k > best or smaller is None else f", and {w} = {choice} is {smaller}"
    return True, "", f"{said}: the intervals overlap (the held-out queries cannot tell them apart{cheaper})."


def check_held_out_choice(choose_fn: Callable, cases: Sequence[ChoiceCase], name: str = "a choice on held-out queries",
                          verbose: bool = True) -> CheckResult:
    """Run ``choose_fn(aps_by_candidate, clusters) -> (choice, (low, high))`` on each case; pass if every choice is defensible.

    A choice is defensible when its 95 % interval (a cluster bootstrap of its mAP on the
    case's tuning queries) overlaps the best candidate's. The student's interval must be
    within :data:`INTERVAL_TOLERANCE` of that interval at :data:`CHOICE_RESAMPLES` resamples.
    When a case holds other queries (:attr:`ChoiceCase.test_aps`), the feedback reports the
    chosen setting there too: the honest score of the choice.

    Args:
        choose_fn: the student's rule. ``aps_by_candidate`` maps each candidate (cheapest first)
            to its per-query APs; ``clusters`` gives each query's source.
        cases: the held-out sets.
        name: the exercise's name.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`; ``failures``: ``ruled_out``, ``other_interval``, ``unclustered``,
        ``interval``, ``not_a_candidate``, ``format``, ``not_implemented``, ``error``.
    """
    lines = []
    for case in cases:
        try:
            got = call_student(name, "Return (choice, (low, high)): a candidate, and its 95 % interval on these queries.",
                               f"choose_fn(aps for {len(case.candidates)} candidates, clusters)", choose_fn,
                               case.aps_by_candidate(), case.clusters.copy())
        except StudentCodeError as err:
            return report(err.result, verbose)
        try:
            choice, interval = got
            pair = _interval_pair(interval)
        except (TypeError, ValueError):
            pair = None
        if pair is None:
            message = f"✗ {name}: return a pair (choice, (low, high)), got {got!r:.80}"
            return report(CheckResult(name, False, message, failures=("format",)), verbose)
        if isinstance(choice, np.generic):
            choice = choice.item()
        passed, key, why = _judge_choice(case, choice, pair)
        if not passed:
            return report(CheckResult(name, False, f"✗ {name}, case '{case.label}': {why}", failures=(key,)), verbose)
        line = f"  {case.label}: {why}"
        if case.test_aps is not None:
            k = case.candidates.index(choice)
            held = bootstrap_interval(case.test_aps[k], n_resamples=CHOICE_RESAMPLES, seed=0, clusters=case.test_clusters,
                                      unit=case.unit)
            best_test = max(range(len(case.candidates)), key=lambda i: np.nanmean(case.test_aps[i]))
            line += (f"\n    On the other half of the {case.unit}, never seen by your rule: {case.what} = {choice} scores "
                     f"{_fmt(held)}; the best there in hindsight, {case.what} = {case.candidates[best_test]}, "
                     f"{np.nanmean(case.test_aps[best_test]):.3f}.")
        n_clusters = len(set(np.asarray(case.clusters).tolist()))
        if n_clusters < MIN_CLUSTERS:
            line += (f"\n    Only G = {n_clusters} {case.unit} tune here, fewer than {MIN_CLUSTERS}: intervals this wide rule "
                     f"out little, so this set cannot tell a good rule from a poor one (the synthetic sets above can). "
                     f"A real choice needs more {case.unit}.")
        lines.append(line)
    message = (f"✓ {name}: defensible on all {len(cases)} held-out sets.\n" + "\n".join(lines))
    return report(CheckResult(name, True, message), verbose)


def check_p_choice(choose_fn: Callable, case: ChoiceCase | None = None, verbose: bool = True) -> CheckResult:
    """Lesson 2: choose GeM's p on held-out queries (:func:`check_held_out_choice`), on synthetic sets and ``case``."""
    cases = _choice_cases("p") + ([case] if case is not None else [])
    return check_held_out_choice(choose_fn, cases, "GeM's p on held-out queries", verbose)


def check_dimension_choice(choose_fn: Callable, case: ChoiceCase | None = None, verbose: bool = True) -> CheckResult:
    """Lesson 3: choose the whitened d on held-out queries (:func:`check_held_out_choice`), on synthetic sets and ``case``."""
    cases = _choice_cases("d") + ([case] if case is not None else [])
    return check_held_out_choice(choose_fn, cases, "d on held-out queries", verbose)


def check_layer_choice(choose_fn: Callable, case: ChoiceCase | None = None, verbose: bool = True) -> CheckResult:
    """Lesson 5: choose the layer to pool on held-out queries (:func:`check_held_out_choice`), on synthetic sets and ``case``."""
    cases = _choice_cases("layer") + ([case] if case is not None else [])
    return check_held_out_choice(choose_fn, cases, "the layer on held-out queries", verbose)


# ---------------------------------------------------------------- the effective receptive field


def effective_radius(saliency: np.ndarray, centre: tuple[int, int], share: float = 0.5) -> int:
    """The half-side r of the smallest square centred on ``centre`` holding ``share`` of ``|saliency|``'s total.

    The square spans rows ``cy - r .. cy + r`` and columns ``cx - r .. cx + r``, cut at the borders.

    Examples:
        >>> s = np.zeros((9, 9)); s[4, 4] = 1.0; s[4, 6] = -1.0
        >>> effective_radius(s, (4, 4), 0.5), effective_radius(s, (4, 4), 0.9)
        (0, 2)
    """
    mass = np.abs(np.asarray(saliency, dtype=np.float64))
    total = mass.sum()
    cy, cx = centre
    h, w = mass.shape
    for r in range(max(h, w)):
        if mass[max(cy - r, 0):cy + r + 1, max(cx - r, 0):cx + r + 1].sum() >= share * total - 1e-12:
            return r
    return max(h, w)


def _saliency_cases() -> list[tuple[str, np.ndarray, tuple[int, int], float]]:
    yy, xx = np.mgrid[0:96, 0:128]
    rng = np.random.default_rng(41)

    def blob(cy, cx, sigma, signed=False):
        g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        if signed:  # a gradient's signs alternate: its signed sum cancels, its magnitude does not
            g = g * np.where(rng.random(g.shape) < 0.5, -1.0, 1.0)
        return g

    return [
        ("a Gaussian of σ = 6 px at the centre", blob(48, 64, 6), (48, 64), 0.5),
        ("a signed gradient of σ = 10 px", blob(40, 70, 10, signed=True), (40, 70), 0.5),
        ("σ = 8 px, 90 % of the mass", blob(50, 60, 8, signed=True), (50, 60), 0.9),
        ("a cell near the border", blob(10, 20, 7, signed=True), (10, 20), 0.5),
    ]


def check_effective_radius(radius_fn: Callable, verbose: bool = True) -> CheckResult:
    """Check ``radius_fn(saliency, centre, share) -> r`` against :func:`effective_radius`, within ±1 pixel.

    Args:
        radius_fn: the student's function; ``saliency`` is an (H, W) gradient map (signed),
            ``centre`` the (row, column) of the cell's centre, ``share`` in (0, 1).
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`; ``failures``: ``signed`` (summed the signed values),
        ``side`` (the square's side, 2r + 1), ``peak`` (a threshold on the peak value),
        ``wrong``, ``format``, ``not_implemented``, ``error``.
    """
    name = "effective receptive field"
    lines = []
    for label, saliency, centre, share in _saliency_cases():
        try:
            got = call_student(name, "Grow a square around the centre until it holds `share` of the total |saliency|.",
                               f"radius_fn(saliency of shape {saliency.shape}, centre={centre}, share={share})",
                               radius_fn, saliency.copy(), centre, share)
        except StudentCodeError as err:
            return report(err.result, verbose)
        try:
            got = float(got)
        except (TypeError, ValueError):
            return report(CheckResult(name, False, f"✗ {name}: return one number (a radius in pixels), got {got!r:.60}",
                                      failures=("format",)), verbose)
        expected = effective_radius(saliency, centre, share)
        if abs(got - expected) <= 1:
            lines.append(f"  {label}: r = {got:g} px (reference {expected})")
            continue
        mass = np.abs(saliency)
        above = np.argwhere(mass >= share * mass.max())
        peak_r = int(np.abs(above - np.array(centre)).max()) if len(above) else 0
        key, why = "wrong", f"expected r = {expected} px (±1), got {got:g}."
        if abs(got - (2 * expected + 1)) <= 1:
            key, why = "side", f"that is the square's side, 2r + 1 = {2 * expected + 1}; return its half-side r = {expected}."
        elif abs(got - peak_r) <= 1 and abs(peak_r - expected) > 1:
            key, why = "peak", ("you kept the pixels above share × the peak value; the radius is about the *mass*: the "
                                "square must hold that share of the sum of |saliency|.")
        elif np.any(saliency < 0):
            # the signed variant: grow the square until its signed sum reaches share of the signed total
            total = saliency.sum()
            cy, cx = centre
            signed_r = next((r for r in range(max(saliency.shape))
                             if abs(saliency[max(cy - r, 0):cy + r + 1, max(cx - r, 0):cx + r + 1].sum()) >= share * abs(total)),
                            None)
            if signed_r is not None and abs(got - signed_r) <= 1:
                key, why = "signed", ("you summed the signed gradient: positive and negative values cancel. Take the "
                                      "magnitude, np.abs(saliency), before summing.")
        return report(CheckResult(name, False, f"✗ {name}, case '{label}': {why}", failures=(key,)), verbose)
    message = f"✓ {name}: within ±1 pixel on all {len(lines)} cases.\n" + "\n".join(lines)
    return report(CheckResult(name, True, message), verbose)
