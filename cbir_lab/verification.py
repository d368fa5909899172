r"""Spatial verification (Philbin et al., CVPR 2007): check a ranking's top results with local features and geometry.

A global descriptor says two photos look alike; it cannot say that the same object
is in both. Matching their local features and fitting one geometric transformation
to the matches can: a true match has many matches that one transformation
explains (inliers), two unrelated photos only a handful, by chance.

* :func:`extract_local_features` → :class:`LocalFeatures`: SIFT keypoints and
  descriptors (Lowe, IJCV 2004) of an image shrunk to a maximum side.
* :func:`match_descriptors`: nearest neighbours, kept by Lowe's ratio test and/or
  when they are mutual.
* :func:`fit_model`: an affine transform or a homography fitted robustly with
  MAGSAC++ (``cv2.USAC_MAGSAC``; Baráth et al., CVPR 2020), seeded so reruns agree.
* :func:`transform_points`, :func:`inlier_mask`, :func:`count_inliers`: what a
  *given* model does with given matches: :math:`\lVert H x - x' \rVert < t` in pixels.
* :func:`verify_pair` → :class:`Verification`: all of the above for two images' features.
* :class:`SpatialVerifier`: the settings, and each image's local features kept in
  memory; :meth:`~SpatialVerifier.inlier_counts` verifies a ranking's top k.
* :func:`rerank_by_inliers`: the top k re-ordered by inliers (Philbin et al., CVPR 2007).
* :func:`verified_query_expansion`: the query averaged with its verified results
  only (Chum et al., ICCV 2007).

Matching, counting inliers and re-ranking are numpy alone; SIFT and MAGSAC++ come
from OpenCV (``opencv-python-headless``, the optional extra ``cbir-lab[beyond]``),
imported when first needed. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Union

import numpy as np
from PIL import Image as PILImage

from cbir_lab._array import as_matrix, l2n
from cbir_lab.images import ImageItem, content_key, load_image, resized_size

__all__ = [
    "SIFT_MAX_SIDE",
    "LocalFeatures",
    "Verification",
    "extract_local_features",
    "match_descriptors",
    "fit_model",
    "transform_points",
    "inlier_mask",
    "count_inliers",
    "verify_pair",
    "SpatialVerifier",
    "rerank_by_inliers",
    "verified_query_expansion",
]

SIFT_MAX_SIDE = 1024
"""Longest side, in pixels, an image is shrunk to before SIFT (smaller images are used as they are).

The Oxford and Paris photos are 1,024 pixels on their long side, the size Philbin et
al. extracted their features at. SIFT's time grows with the pixels, and a larger
photo gives more keypoints than :func:`match_descriptors` needs to verify a match.
"""

Model = Literal["affine", "homography"]
ImageInput = Union[ImageItem, np.ndarray]  # a path, PIL image, (path, bbox), or uint8 pixels (H, W) or (H, W, 3)


def _cv2():
    try:
        import cv2
    except ImportError as err:
        raise ImportError(
            "spatial verification needs OpenCV: pip install \"cbir-lab[beyond]\" (or opencv-python-headless)"
        ) from err
    return cv2


class LocalFeatures(NamedTuple):
    """One image's SIFT features, in the pixels of the image SIFT saw.

    Attributes:
        keypoints: (n, 2) float32, (x, y) in the pixels of the image shrunk to at most
            ``max_side`` (multiply by ``1 / scale`` for the original's pixels).
        descriptors: (n, 128) uint8 (SIFT's values are integers in [0, 255]: nothing is lost).
        scale: the shrink factor applied (1.0 when the image was small enough).
        size: (width, height) of the image SIFT saw.
    """

    keypoints: np.ndarray
    descriptors: np.ndarray
    scale: float
    size: tuple[int, int]

    @property
    def nbytes(self) -> int:
        """Bytes held by the keypoints and descriptors."""
        return int(self.keypoints.nbytes + self.descriptors.nbytes)


def _pixels(image: ImageInput) -> np.ndarray:
    """``image`` as uint8 greyscale pixels (H, W), converted by Pillow whatever the input (ITU-R 601-2 luma)."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 pixels, got dtype {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 3:
            return np.asarray(PILImage.fromarray(np.ascontiguousarray(image)).convert("L"))
        if image.ndim != 2:
            raise ValueError(f"image must have shape (H, W) or (H, W, 3), got {image.shape}")
        return np.ascontiguousarray(image)
    return np.asarray(load_image(image).convert("L"))


def extract_local_features(image: ImageInput, max_side: int = SIFT_MAX_SIDE, n_features: int = 2000) -> LocalFeatures:
    """SIFT keypoints and descriptors of an image, shrunk first to at most ``max_side`` pixels.

    The image is converted to greyscale (by Pillow, for paths and arrays alike) and,
    when its long side is above ``max_side``,
    shrunk with area averaging (aspect kept); a smaller image is not enlarged.
    OpenCV's SIFT keeps the ``n_features`` keypoints of highest contrast.

    Args:
        image: a path, a PIL image, ``(path, (x1, y1, x2, y2))`` to crop first (a query's box),
            or uint8 pixels (H, W) or (H, W, 3) RGB.
        max_side: the longest side SIFT sees (:data:`SIFT_MAX_SIDE`).
        n_features: keypoints kept at most.

    Returns:
        :class:`LocalFeatures` (no keypoints: shapes (0, 2) and (0, 128)).

    Reference:
        Lowe, "Distinctive Image Features from Scale-Invariant Keypoints", IJCV 2004.
    """
    for name, value in (("max_side", max_side), ("n_features", n_features)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    grey = _pixels(image)
    cv2 = _cv2()
    height, width = grey.shape
    scale = 1.0
    if max(width, height) > max_side:
        new_size = resized_size(width, height, int(max_side))
        grey = cv2.resize(grey, new_size, interpolation=cv2.INTER_AREA)
        scale = new_size[0] / width
    keypoints, descriptors = cv2.SIFT_create(nfeatures=int(n_features)).detectAndCompute(grey, None)
    points = np.array([k.pt for k in keypoints], dtype=np.float32).reshape(-1, 2)
    descriptors = np.zeros((0, 128), np.uint8) if descriptors is None else descriptors.astype(np.uint8)
    return LocalFeatures(points, descriptors, float(scale), (grey.shape[1], grey.shape[0]))


def match_descriptors(desc_a, desc_b, ratio: float | None = 0.8, mutual: bool = True) -> np.ndarray:
    r"""Match each descriptor of a to its nearest in b (Euclidean), keeping the distinctive matches.

    Ratio test (Lowe, IJCV 2004): keep a → b₁ when :math:`\lVert a - b_1 \rVert < r \lVert a - b_2 \rVert`,
    b₂ the second nearest: a match much closer than any other is rarely wrong (0.8
    is Lowe's value). Mutual: keep it only when a is also b₁'s nearest in a, so no
    keypoint is matched twice. Both are on by default: with the ratio test alone, the
    many keypoints of a textured photo can all match the few of a plain one (2,000 of
    ``skimage.data.hubble_deep_field``'s matched 2 of ``clock``'s), and a model that
    sends every point to one place then "explains" a thousand of them. Ties go to the
    smaller index.

    Args:
        desc_a: (n_a, D) descriptors (uint8 SIFT descriptors, or any numbers).
        desc_b: (n_b, D).
        ratio: the ratio r in (0, 1], or ``None`` for no ratio test (with fewer than two
            descriptors in b there is no second nearest, and the test keeps nothing).
        mutual: keep only mutual nearest neighbours.

    Returns:
        int64 pairs (i in a, j in b), shape (m, 2), in the order of i.

    Examples:
        >>> a = [[0.0, 0.0], [10.0, 0.0]]
        >>> b = [[1.0, 0.0], [10.0, 1.0], [10.0, -1.2]]
        >>> match_descriptors(a, b).tolist()   # a1's two nearest are 1 and 1.2 away: 1 > 0.8 * 1.2
        [[0, 0]]
        >>> match_descriptors(a, b, ratio=None).tolist()
        [[0, 0], [1, 1]]
    """
    a = as_matrix(desc_a, "desc_a", dtype=np.float32)
    b = as_matrix(desc_b, "desc_b", dtype=np.float32)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"desc_a have dimension {a.shape[1]} but desc_b have dimension {b.shape[1]}")
    if ratio is not None:
        ratio = float(ratio)
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1] or None, got {ratio!r}")
    if len(a) == 0 or len(b) == 0 or (ratio is not None and len(b) < 2):
        return np.zeros((0, 2), dtype=np.int64)
    squared = (np.einsum("id,id->i", a, a)[:, None] + np.einsum("jd,jd->j", b, b)[None, :] - 2.0 * (a @ b.T))
    np.maximum(squared, 0.0, out=squared)
    nearest = np.argmin(squared, axis=1)  # the first of equal distances: the smaller index
    keep = np.ones(len(a), dtype=bool)
    if ratio is not None:
        best = squared[np.arange(len(a)), nearest]
        squared_without = squared.copy()
        squared_without[np.arange(len(a)), nearest] = np.inf
        keep &= best < ratio**2 * squared_without.min(axis=1)
    if mutual:
        keep &= np.argmin(squared, axis=0)[nearest] == np.arange(len(a))
    index = np.flatnonzero(keep)
    return np.stack([index, nearest[index]], axis=1).astype(np.int64)


def _points(x, name: str) -> np.ndarray:
    """Pixel coordinates as a finite float64 (m, 2) array (an empty input: (0, 2))."""
    if np.size(x) == 0:
        return np.zeros((0, 2))
    p = as_matrix(x, name, dtype=np.float64)
    if p.shape[1] != 2:
        raise ValueError(f"{name} must have shape (m, 2), got {p.shape}")
    return p


def _check_model(model) -> np.ndarray:
    m = np.asarray(model, dtype=np.float64)
    if m.shape == (2, 3):
        m = np.vstack([m, [0.0, 0.0, 1.0]])
    if m.shape != (3, 3) or not np.isfinite(m).all():
        raise ValueError(f"model must be a finite (3, 3) homography or (2, 3) affine matrix, got shape {m.shape}")
    return m


def transform_points(model, points) -> np.ndarray:
    r"""Map points with a homography or an affine matrix: :math:`x' = \pi(H\,[x, y, 1]^\top)`.

    π divides by the third coordinate (1 for an affine matrix).

    Args:
        model: (3, 3) homography, or (2, 3) affine matrix.
        points: (n, 2) pixel coordinates (x, y).

    Returns:
        (n, 2) float64; a point mapped to infinity (third coordinate 0) gives inf.

    Examples:
        >>> transform_points([[2, 0, 1], [0, 2, 0]], [[1, 1], [0, 3]]).tolist()
        [[3.0, 2.0], [1.0, 6.0]]
    """
    m = _check_model(model)
    p = _points(points, "points")
    mapped = np.hstack([p, np.ones((len(p), 1))]) @ m.T
    with np.errstate(divide="ignore", invalid="ignore"):
        out = mapped[:, :2] / mapped[:, 2:]
    out[~np.isfinite(out)] = np.inf
    return out


def inlier_mask(model, src, dst, threshold: float) -> np.ndarray:
    r"""Which matches a given model explains: :math:`\lVert H x_i - x'_i \rVert_2 < t`, in pixels.

    Args:
        model: (3, 3) homography or (2, 3) affine matrix, mapping ``src`` to ``dst``.
        src: (m, 2) points in the first image.
        dst: (m, 2) their matches in the second.
        threshold: t, in pixels, > 0.

    Returns:
        bool, shape (m,).

    Examples:
        >>> shift = [[1, 0, 10], [0, 1, 0], [0, 0, 1]]            # 10 pixels to the right
        >>> inlier_mask(shift, [[0, 0], [5, 5], [0, 0]], [[10, 0], [16, 7], [0, 0]], threshold=3).tolist()
        [True, True, False]
    """
    threshold = float(threshold)
    if not np.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a positive number of pixels, got {threshold!r}")
    s, d = _points(src, "src"), _points(dst, "dst")
    if s.shape != d.shape:
        raise ValueError(f"src and dst must have the same shape (m, 2), got {s.shape} and {d.shape}")
    error = np.linalg.norm(transform_points(model, s) - d, axis=1)
    return error < threshold


def count_inliers(model, src, dst, threshold: float) -> int:
    """How many matches a given model explains: :func:`inlier_mask`'s count."""
    return int(inlier_mask(model, src, dst, threshold).sum())


#: Matches a model needs at least: 3 for an affine transform, 4 for a homography.
_MINIMAL = {"affine": 3, "homography": 4}


def fit_model(src, dst, model: Model = "affine", threshold: float = 10.0, seed: int = 0, max_iters: int = 10_000,
              confidence: float = 0.999) -> tuple[np.ndarray | None, np.ndarray]:
    """Fit an affine transform or a homography to matches that include outliers, with MAGSAC++.

    ``cv2.estimateAffine2D`` or ``cv2.findHomography`` with ``method=cv2.USAC_MAGSAC``:
    minimal samples are drawn at random, each model scored by how well the matches
    agree with it (marginalised over noise levels up to ``threshold``), and the best
    one refined. OpenCV's generator is seeded with ``cv2.setRNGSeed(seed)`` before
    each fit, so the same matches give the same model in any order and on any rerun.
    The inliers are then counted with :func:`inlier_mask` at ``threshold``.

    An affine transform (6 degrees of freedom) is Philbin et al.'s choice; a homography
    (8) is exact for a plane seen from two viewpoints, and fits a 3-D scene less well.

    Args:
        src: (m, 2) points in the first image.
        dst: (m, 2) their matches in the second.
        model: ``"affine"`` or ``"homography"``.
        threshold: the inlier threshold in pixels (10: about 1 % of a 1,024-pixel
            side, slack for a 3-D scene that an affine model only approximates).
        seed: OpenCV's random seed.
        max_iters, confidence: MAGSAC++'s stopping rule.

    Returns:
        (model, inliers): a (3, 3) float64 matrix (an affine one has last row 0, 0, 1), or
        ``None`` when there are fewer matches than a minimal sample (3 or 4) or no model
        was found; and the bool mask (m,) of inliers (all False without a model).

    Reference:
        Fischler & Bolles, "Random Sample Consensus", CACM 1981; Baráth, Noskova,
        Ivashechkin & Matas, "MAGSAC++, a fast, reliable and accurate robust estimator", CVPR 2020;
        Philbin, Chum, Isard, Sivic & Zisserman, "Object retrieval with large vocabularies
        and fast spatial matching", CVPR 2007.
    """
    if model not in _MINIMAL:
        raise ValueError(f"model must be 'affine' or 'homography', got {model!r}")
    s, d = _points(src, "src"), _points(dst, "dst")
    if s.shape != d.shape:
        raise ValueError(f"src and dst must have the same shape (m, 2), got {s.shape} and {d.shape}")
    threshold = float(threshold)
    if not np.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a positive number of pixels, got {threshold!r}")
    none = (None, np.zeros(len(s), dtype=bool))
    if len(s) < _MINIMAL[model]:
        return none
    cv2 = _cv2()
    cv2.setRNGSeed(int(seed))
    s32, d32 = s.astype(np.float32), d.astype(np.float32)
    if model == "affine":
        fitted, _ = cv2.estimateAffine2D(s32, d32, method=cv2.USAC_MAGSAC, ransacReprojThreshold=threshold,
                                         maxIters=int(max_iters), confidence=float(confidence))
    else:
        fitted, _ = cv2.findHomography(s32, d32, cv2.USAC_MAGSAC, threshold, maxIters=int(max_iters),
                                       confidence=float(confidence))
    if fitted is None or not np.isfinite(fitted).all():
        return none
    matrix = _check_model(fitted)
    if model == "homography":
        matrix = matrix / matrix[2, 2] if matrix[2, 2] != 0 else matrix
    return matrix, inlier_mask(matrix, s, d, threshold)


@dataclass(frozen=True)
class Verification:
    """Two images checked against each other: what :func:`verify_pair` returns.

    Attributes:
        n_matches: matches kept by the ratio / mutual test.
        n_inliers: matches the fitted model explains (0 without a model).
        model: (3, 3) from the first image's pixels (as SIFT saw them) to the second's, or ``None``.
        matches: (n_matches, 2) int64 keypoint pairs.
        inliers: (n_matches,) bool.
    """

    n_matches: int
    n_inliers: int
    model: np.ndarray | None = field(repr=False)
    matches: np.ndarray = field(repr=False)
    inliers: np.ndarray = field(repr=False)


def verify_pair(a: LocalFeatures, b: LocalFeatures, model: Model = "affine", threshold: float = 10.0,
                ratio: float | None = 0.8, mutual: bool = True, seed: int = 0) -> Verification:
    """Match two images' local features, then fit a model: :func:`match_descriptors`, then :func:`fit_model`.

    Args:
        a, b: from :func:`extract_local_features` (a: the query).
        model, threshold, seed: as :func:`fit_model`.
        ratio, mutual: as :func:`match_descriptors`.

    Returns:
        The :class:`Verification`.
    """
    matches = match_descriptors(a.descriptors, b.descriptors, ratio=ratio, mutual=mutual)
    fitted, inliers = fit_model(a.keypoints[matches[:, 0]], b.keypoints[matches[:, 1]], model=model,
                                threshold=threshold, seed=seed)
    return Verification(len(matches), int(inliers.sum()), fitted, matches, inliers)


def _cache_key(image: ImageInput) -> str:
    if isinstance(image, np.ndarray):
        digest = hashlib.sha256(f"array:{image.dtype}:{image.shape}".encode())
        digest.update(np.ascontiguousarray(image).tobytes())
        return digest.hexdigest()
    return content_key(image)


class SpatialVerifier:
    """Spatial verification with fixed settings, keeping every image's local features in memory.

    An image's features are extracted the first time it is seen (a database image is
    typically checked against many queries) and kept under the hash of its content and
    crop box (:func:`cbir_lab.images.content_key`), so a renamed file is not extracted
    twice and a changed one is not mistaken for the old.

    Args:
        max_side, n_features: as :func:`extract_local_features`.
        model, threshold, seed: as :func:`fit_model`.
        ratio, mutual: as :func:`match_descriptors`.

    Examples:
        >>> verifier = SpatialVerifier(model="homography")  # doctest: +SKIP
        >>> verifier.verify(query_path, db_path).n_inliers  # doctest: +SKIP
        212
    """

    def __init__(self, max_side: int = SIFT_MAX_SIDE, n_features: int = 2000, model: Model = "affine",
                 threshold: float = 10.0, ratio: float | None = 0.8, mutual: bool = True, seed: int = 0) -> None:
        if model not in _MINIMAL:
            raise ValueError(f"model must be 'affine' or 'homography', got {model!r}")
        self.max_side, self.n_features = max_side, n_features
        self.model, self.threshold, self.ratio, self.mutual, self.seed = model, threshold, ratio, mutual, seed
        self._features: dict[str, LocalFeatures] = {}

    def features(self, image: ImageInput) -> LocalFeatures:
        """The image's :class:`LocalFeatures`, extracted once."""
        key = _cache_key(image)
        if key not in self._features:
            self._features[key] = extract_local_features(image, self.max_side, self.n_features)
        return self._features[key]

    @property
    def cached_images(self) -> int:
        """How many images' features are held."""
        return len(self._features)

    @property
    def cached_bytes(self) -> int:
        """Bytes of keypoints and descriptors held, over all images."""
        return sum(f.nbytes for f in self._features.values())

    def clear(self) -> None:
        """Forget every image's features."""
        self._features.clear()

    def verify(self, query: ImageInput, image: ImageInput) -> Verification:
        """Check one database image against a query (:func:`verify_pair` of their features)."""
        return verify_pair(self.features(query), self.features(image), model=self.model, threshold=self.threshold,
                           ratio=self.ratio, mutual=self.mutual, seed=self.seed)

    def inlier_counts(self, queries, images, ranks, top_k: int = 100) -> np.ndarray:
        """The inliers of each query's top ``top_k`` results, for :func:`rerank_by_inliers`.

        Args:
            queries: one image per query (``dataset.queries()``: paths, or (path, box) for cropped queries).
            images: the database images, in ranking-index order (``dataset.db_images``).
            ranks: (≥ top_k or n_db, n_queries) database indices, as :func:`cbir_lab.search.rank` returns.
            top_k: results checked per query (clipped to the ranking's length).

        Returns:
            int64, shape (k, n_queries): entry (r, q) for database image ``ranks[r, q]``.
        """
        ranking = _check_ranks(ranks)
        if len(queries) != ranking.shape[1]:
            raise ValueError(f"queries has {len(queries)} images but ranks has {ranking.shape[1]} queries")
        k = min(_positive_int(top_k, "top_k"), ranking.shape[0])
        counts = np.zeros((k, ranking.shape[1]), dtype=np.int64)
        for q, query in enumerate(queries):
            for r in range(k):
                counts[r, q] = self.verify(query, images[int(ranking[r, q])]).n_inliers
        return counts


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_ranks(ranks) -> np.ndarray:
    ranking = np.asarray(ranks)
    if ranking.ndim != 2 or not np.issubdtype(ranking.dtype, np.integer):
        raise ValueError(f"ranks must be an integer array (n_db or k, n_queries), got shape {ranking.shape} "
                         f"and dtype {ranking.dtype}")
    return ranking


def _check_inliers(inliers, ranking: np.ndarray) -> np.ndarray:
    counts = np.asarray(inliers)
    if counts.ndim != 2 or counts.shape[1] != ranking.shape[1] or counts.shape[0] > ranking.shape[0]:
        raise ValueError(f"inliers must have shape (k, n_queries) with k <= {ranking.shape[0]} and "
                         f"n_queries = {ranking.shape[1]}, got {counts.shape}")
    if not np.isfinite(counts.astype(np.float64)).all() or (counts < 0).any():
        raise ValueError("inliers must be finite and non-negative")
    return counts


def _min_inliers(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"min_inliers must be a non-negative integer, got {value!r}")
    return int(value)


def rerank_by_inliers(ranks, inliers, min_inliers: int = 15) -> np.ndarray:
    """Re-order each query's top k by its inlier counts; the rest of the ranking is left as it is.

    Within the top k (k = ``len(inliers)``): first the verified results (at least
    ``min_inliers`` inliers), by decreasing inliers, ties keeping their original order;
    then the others, in their original order. Philbin et al. (CVPR 2007) re-rank the top
    results by their inliers. Below the threshold the count is not evidence: two
    unrelated photos share a handful of inliers by chance (at most 7 over the 342
    ordered pairs of 19 unrelated photos of scikit-image and scikit-learn, with this
    module's defaults), so ordering by it would replace the descriptor's order by
    noise; those results keep the descriptor's order. The threshold of 15, about
    twice that, is ours: check it on held-out queries. On the Paris slice (SPoC's top
    100 for its 12 queries, SIFT at 1,024 pixels) no negative reached it (at most 9),
    and 61 of the 349 easy positives did: precise, but it misses most true matches.

    Args:
        ranks: (n_db or ≥ k, n_queries) database indices, best first (:func:`cbir_lab.search.rank`).
        inliers: (k, n_queries) inlier counts of ``ranks[:k]`` (:meth:`SpatialVerifier.inlier_counts`).
        min_inliers: the fewest inliers that count as verified.

    Returns:
        int64 indices, the shape of ``ranks``.

    Examples:
        >>> ranks = np.array([[4], [2], [7], [1], [0]])
        >>> inliers = np.array([[3], [40], [20], [40]])          # for 4, 2, 7, 1
        >>> rerank_by_inliers(ranks, inliers, min_inliers=15)[:, 0].tolist()
        [2, 1, 7, 4, 0]
    """
    ranking = _check_ranks(ranks)
    counts = _check_inliers(inliers, ranking)
    threshold = _min_inliers(min_inliers)
    k = counts.shape[0]
    out = ranking.astype(np.int64, copy=True)
    verified = counts >= threshold
    # a stable sort on (unverified, -inliers for the verified): verified first by decreasing inliers
    key = np.where(verified, -counts.astype(np.int64), 1)
    order = np.argsort(key, axis=0, kind="stable")
    out[:k] = np.take_along_axis(ranking[:k], order, axis=0)
    return out


def verified_query_expansion(query_vecs, db_vecs, ranks, inliers, min_inliers: int = 15) -> np.ndarray:
    r"""Query expansion with the verified results only (Chum et al., ICCV 2007).

    .. math:: q' = \operatorname{L2}\Big(q + \sum_{i \in V} d_i\Big), \qquad V = \{\text{results in the top } k
        \text{ with at least } m \text{ inliers}\}

    the mean of the query and its verified results, L2-normalised. A query with no
    verified result is unchanged (up to L2). Averaging only verified images keeps a
    false match among the top k out of the new query, which average QE over the top k
    lets in.

    Args:
        query_vecs: (n_queries, D) or (D,), L2-normalised.
        db_vecs: (n_db, D), L2-normalised.
        ranks: (n_db or ≥ k, n_queries) database indices of the ranking that was verified.
        inliers: (k, n_queries) inlier counts of ``ranks[:k]``.
        min_inliers: the fewest inliers that count as verified (m).

    Returns:
        Expanded, L2-normalised queries, float32, shape (n_queries, D), to pass to :func:`cbir_lab.search.rank`.

    Examples:
        >>> db = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
        >>> q = np.array([[0.8, 0.6]])
        >>> ranks = np.array([[2], [0], [1]])
        >>> print(verified_query_expansion(q, db, ranks, inliers=[[30], [2]], min_inliers=15).round(4))
        [[0.7071 0.7071]]

    Reference:
        Chum, Philbin, Sivic, Isard & Zisserman, "Total Recall: Automatic Query Expansion
        with a Generative Feature Model for Object Retrieval", ICCV 2007.
    """
    q = as_matrix(query_vecs, "query_vecs", dtype=np.float64, vector=True)
    db = as_matrix(db_vecs, "db_vecs", dtype=np.float64)
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"query_vecs have dimension {q.shape[1]} but db_vecs have dimension {db.shape[1]}")
    ranking = _check_ranks(ranks)
    if ranking.shape[1] != q.shape[0]:
        raise ValueError(f"ranks has {ranking.shape[1]} queries but query_vecs has {q.shape[0]}")
    counts = _check_inliers(inliers, ranking)
    verified = counts >= _min_inliers(min_inliers)
    k = counts.shape[0]
    expanded = q.copy()
    for i in range(q.shape[0]):
        expanded[i] += db[ranking[:k, i][verified[:, i]]].sum(axis=0)
    return l2n(expanded).astype(np.float32)
