"""Lesson 10's figure: two images' local-feature matches, the inliers of the fitted model, and its frame.

Nothing here extracts features, matches or fits: the keypoints, matches and model come
from :mod:`cbir_lab.verification` (:class:`~cbir_lab.verification.LocalFeatures`,
:class:`~cbir_lab.verification.Verification`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from PIL import Image as PILImage

from cbir_lab.images import load_image

__all__ = ["MATCH_COLOURS", "match_segments", "plot_matches"]

#: Line colours: the matches the model explains, and those it does not.
MATCH_COLOURS = {"inlier": "#1a9850", "outlier": "#d73027"}

_SHOW = ("both", "inliers", "matches")


def match_segments(features_a, features_b, verification, offset: float, scale_a: float = 1.0,
                   scale_b: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Each match as a segment from its keypoint in a to its keypoint in b, b drawn ``offset`` pixels to the right.

    Args:
        features_a, features_b: the two images' :class:`~cbir_lab.verification.LocalFeatures`.
        verification: their :class:`~cbir_lab.verification.Verification` (matches and inlier mask).
        offset: where b's left edge is on the canvas, in canvas pixels.
        scale_a, scale_b: canvas pixels per pixel of the image SIFT saw, for a and for b.

    Returns:
        (segments (m, 2, 2) as ((x_a, y_a), (x_b, y_b)) on the canvas, inliers (m,) bool).

    Examples:
        >>> from cbir_lab.verification import LocalFeatures, Verification
        >>> a = LocalFeatures(np.array([[1.0, 2.0]]), np.zeros((1, 128), np.uint8), 1.0, (10, 10))
        >>> b = LocalFeatures(np.array([[3.0, 4.0]]), np.zeros((1, 128), np.uint8), 1.0, (10, 10))
        >>> v = Verification(1, 1, None, np.array([[0, 0]]), np.array([True]))
        >>> match_segments(a, b, v, offset=20.0)[0].tolist()
        [[[1.0, 2.0], [23.0, 4.0]]]
    """
    matches = np.asarray(verification.matches, dtype=np.int64).reshape(-1, 2)
    start = np.asarray(features_a.keypoints, dtype=np.float64)[matches[:, 0]] * scale_a
    end = np.asarray(features_b.keypoints, dtype=np.float64)[matches[:, 1]] * scale_b + [offset, 0.0]
    inliers = np.asarray(verification.inliers, dtype=bool).reshape(-1)
    if len(inliers) != len(matches):
        raise ValueError(f"verification has {len(matches)} matches but {len(inliers)} inlier flags")
    return np.stack([start, end], axis=1), inliers


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else ("es" if noun.endswith("h") else "s"))


def _as_seen(item, features) -> np.ndarray:
    """The image as SIFT saw it: loaded (cropped to its box), resized to the features' size, RGB pixels."""
    image = PILImage.fromarray(np.ascontiguousarray(item)) if isinstance(item, np.ndarray) else load_image(item)
    image = image.convert("RGB")
    if image.size != tuple(features.size):
        image = image.resize(tuple(features.size))
    return np.asarray(image)


def plot_matches(image_a, image_b, features_a, features_b, verification, show: str = "both",
                 titles: Sequence[str] | None = None, height: int = 320, caption: str | None = None,
                 max_lines: int | None = 100) -> Figure:
    """Two images side by side, their matches as lines: inliers green, the others red; the model's frame of a on b.

    Args:
        image_a, image_b: the images (paths, PIL images, ``(path, box)`` for a cropped query, uint8 pixels), as given to
            :func:`~cbir_lab.verification.extract_local_features`.
        features_a, features_b: their :class:`~cbir_lab.verification.LocalFeatures`.
        verification: :func:`~cbir_lab.verification.verify_pair` of the two.
        show: ``"both"`` (inliers and the other matches), ``"inliers"`` or ``"matches"`` (every match, one colour).
        titles: a title over each image.
        height: the canvas height, in pixels (both images are drawn at this height).
        caption: the figure's title (default: the counts of matches and inliers).
        max_lines: draw at most this many lines of each kind, evenly spread over the matches (the legend
            still counts them all); ``None``: every line.

    Returns:
        The figure. When there is a model, the border of a mapped onto b by it is drawn as a dashed outline.
    """
    if show not in _SHOW:
        raise ValueError(f"show must be one of {_SHOW}, got {show!r}")
    pixels_a, pixels_b = _as_seen(image_a, features_a), _as_seen(image_b, features_b)
    scale_a, scale_b = height / pixels_a.shape[0], height / pixels_b.shape[0]
    width_a, width_b = round(pixels_a.shape[1] * scale_a), round(pixels_b.shape[1] * scale_b)
    gap = 10
    fig = Figure(figsize=(9.0, 9.0 * height / (width_a + gap + width_b) + 0.5), layout="constrained")
    ax = fig.subplots()
    ax.imshow(pixels_a, extent=(0, width_a, height, 0))
    ax.imshow(pixels_b, extent=(width_a + gap, width_a + gap + width_b, height, 0))
    segments, inliers = match_segments(features_a, features_b, verification, width_a + gap, scale_a, scale_b)

    def some(lines: np.ndarray) -> np.ndarray:
        if max_lines is None or len(lines) <= max_lines:
            return lines
        return lines[np.linspace(0, len(lines) - 1, max_lines).round().astype(int)]

    if show == "matches":
        ax.add_collection(LineCollection(some(segments), colors="#ffd92f", linewidths=0.7, alpha=0.8,
                                         label=_plural(len(segments), "match")))
    else:
        if show == "both" and (~inliers).any():
            ax.add_collection(LineCollection(some(segments[~inliers]), colors=MATCH_COLOURS["outlier"], linewidths=0.6,
                                             alpha=0.6, label=_plural(int((~inliers).sum()), "other match")))
        if inliers.any():
            ax.add_collection(LineCollection(some(segments[inliers]), colors=MATCH_COLOURS["inlier"], linewidths=0.9,
                                             alpha=0.9, label=_plural(int(inliers.sum()), "inlier")))
    if verification.model is not None and show != "matches":
        w, h = features_a.size
        corners = np.array([[0, 0], [w, 0], [w, h], [0, h], [0, 0]], dtype=np.float64)
        mapped = np.hstack([corners, np.ones((5, 1))]) @ np.asarray(verification.model, dtype=np.float64).T
        with np.errstate(divide="ignore", invalid="ignore"):
            frame = mapped[:, :2] / mapped[:, 2:] * scale_b + [width_a + gap, 0.0]
        if np.isfinite(frame).all():
            ax.plot(frame[:, 0], frame[:, 1], "--", color="white", linewidth=1.2, label="the model's frame of the query")
    ax.set_xlim(0, width_a + gap + width_b)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    if titles is not None:
        ax.text(width_a / 2, -6, titles[0], ha="center", va="bottom", fontsize=9)
        ax.text(width_a + gap + width_b / 2, -6, titles[1], ha="center", va="bottom", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
    fig.suptitle(caption if caption is not None else
                 f"{verification.n_matches} matches, {verification.n_inliers} inliers", fontsize=10)
    return fig
