"""Lesson 9's figures: training curves (loss, validation score, GeM's p per epoch) and the margin picture.

Nothing here trains or scores: the numbers come from :mod:`cbir_lab.learning`'s records.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_training_curves", "plot_negative_distances", "format_whitening_choices"]


def plot_training_curves(runs: Mapping[str, object], score_name: str = "validation mAP",
                         p_sweep: Mapping[float, float] | None = None) -> Figure:
    """Loss per tuple, validation score and GeM's p against the epoch, one line per run.

    Args:
        runs: name → a :class:`~cbir_lab.learning.TrainingRun` (or anything with ``before`` and ``history``
            of :class:`~cbir_lab.learning.EpochRecord`); a run still training shows the epochs it has.
        score_name: the label of the validation axis.
        p_sweep: optional p → validation score of the off-the-shelf network at fixed p (lesson 2's sweep),
            drawn beside the learned p.

    Returns:
        The figure (three panels).
    """
    fig = Figure(figsize=(11, 3.2), layout="constrained")
    loss_ax, score_ax, p_ax = fig.subplots(1, 3)
    for name, run in runs.items():
        epochs = [r.epoch for r in run.history]
        loss_ax.plot(epochs, [r.loss for r in run.history], marker="o", label=name)
        scores = ([run.before] if run.before is not None else []) + [r.validation for r in run.history]
        score_epochs = ([0] if run.before is not None else []) + epochs
        if all(s is not None for s in scores):
            score_ax.plot(score_epochs, scores, marker="o", label=name)
        p_ax.plot([0] + epochs, [3.0] + [r.p for r in run.history], marker="o", label=name)
    loss_ax.set(xlabel="epoch", ylabel="loss per tuple", title="training loss")
    score_ax.set(xlabel="epoch (0: before training)", ylabel=score_name, title=score_name)
    p_ax.set(xlabel="epoch", ylabel="GeM p", title="GeM's learned p")
    if p_sweep:
        best = max(p_sweep, key=p_sweep.get)
        p_ax.axhline(best, color="grey", linestyle=":", label=f"best fixed p before training ({best:g})")
    for ax in (loss_ax, score_ax, p_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return fig


def plot_negative_distances(distances: Mapping[str, Sequence[float]], margin: float) -> Figure:
    """Histograms of query-to-negative distances for several ways of choosing negatives, with the margin τ.

    A negative farther than τ contributes nothing to the contrastive loss (nor any gradient).

    Args:
        distances: name (``"hard"``, ``"random"``) → the distances ‖q − n‖ of its tuples.
        margin: τ.

    Returns:
        The figure.
    """
    fig = Figure(figsize=(6.5, 3), layout="constrained")
    ax = fig.subplots()
    bins = np.linspace(0, max(2.0 * margin, max(float(np.max(d)) for d in distances.values())), 40)
    for name, values in distances.items():
        values = np.asarray(values)
        inside = float((values < margin).mean())
        ax.hist(values, bins=bins, alpha=0.6, label=f"{name}: {inside:.0%} inside the margin")
    ax.axvline(margin, color="black", linestyle="--", label=f"margin τ = {margin}")
    ax.set(xlabel="distance ‖q − n‖ between a query and a negative", ylabel="tuples")
    ax.legend(fontsize=8)
    return fig


def format_whitening_choices(choices: Mapping[str, Mapping[str, Mapping[int, float]]], before: float | None = None,
                             after: float | None = None, digits: int = 3) -> str:
    """The validation scores of PCA-whitening and Lw at each d, for each model, as a text table.

    Args:
        choices: model name → :func:`cbir_lab.studies.learning.whitening_choices`'s result.
        before, after: the first and the last model's score without whitening, shown beside their names.

    Returns:
        The table.

    Examples:
        >>> print(format_whitening_choices({"off": {"PCA": {16: 0.5}, "Lw": {16: 0.75}}}, before=0.6))
        validation score           d=16
        off (no whitening: 0.600)
          PCA-whitening           0.500
          Lw                      0.750
    """
    dims = sorted({d for result in choices.values() for scores in result.values() for d in scores})
    lines = [f"{'validation score':24s}" + "".join(f"{'d=' + str(d):>7s}" for d in dims)]
    plain = [before] + [None] * (len(choices) - 2) + [after] if len(choices) > 1 else [before]
    for (name, result), score in zip(choices.items(), plain):
        lines.append(name + ("" if score is None else f" (no whitening: {score:.{digits}f})"))
        for kind, label in (("PCA", "PCA-whitening"), ("Lw", "Lw")):
            values = result.get(kind, {})
            lines.append(f"  {label:22s}" + "".join(f"{values[d]:7.{digits}f}" if d in values else f"{'—':>7s}"
                                                   for d in dims))
    return "\n".join(lines)
