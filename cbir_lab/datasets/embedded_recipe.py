"""The embedded benchmark's recipe: its source photos, their scenes, and how each view is drawn.

* :func:`source_photos`: the real photos that ship inside installed dependencies,
  with their licences (:class:`SourcePhoto`).
* :func:`scenes`: each photo cut into a grid of non-overlapping rectangles, the
  unit of ground truth (:class:`Scene`), test or train by whole photo.
* :func:`render_scene`: every view of one scene (:class:`View`), deterministically:
  a test scene's query (a mild crop) and :data:`N_DB_VIEWS` database views, or a
  training scene's :data:`N_TRAIN_VIEWS` views; a view is a crop followed by one or
  two distortions drawn from a Generator seeded with :data:`SEED` and the scene.

Everything here happens in memory; :mod:`cbir_lab.datasets.embedded` writes the
views to disk, checks them and loads them as a dataset.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = [
    "N_DB_VIEWS",
    "N_TRAIN_VIEWS",
    "SEED",
    "VIEW_MAX_SIDE",
    "SourcePhoto",
    "Scene",
    "View",
    "source_photos",
    "scenes",
    "render_scene",
]

SEED = 20261128
"""Seed of the numpy Generators that draw every view's parameters."""

VIEW_MAX_SIDE = 512
"""Longest side of a generated view, in pixels (before an optional scale change)."""

N_DB_VIEWS = 6
"""Database views per test scene (the query is one more view, held out)."""

N_TRAIN_VIEWS = 16
"""Views per training scene, for learning PCA-whitening."""

Role = Literal["query", "db", "train"]
Split = Literal["test", "train"]


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class SourcePhoto:
    """One real photo that ships inside a dependency.

    Attributes:
        name: short key used in scene and file names (``"hubble"``).
        loader: returns the photo as a uint8 array, (H, W) or (H, W, 3).
        licence: the licence, as the shipping package states it.
        package: the Python package that ships it.
        function: how to load it, e.g. ``"skimage.data.hubble_deep_field()"``.
        credit: original author or source.
    """

    name: str
    loader: Callable[[], np.ndarray]
    licence: str
    package: str
    function: str
    credit: str


def _skimage(function: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, function)()

    return load


def _sklearn(image_name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(image_name)

    return load


def _matplotlib(file_name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from matplotlib.cbook import get_sample_data

        with Image.open(get_sample_data(file_name, asfileobj=False)) as im:
            return np.asarray(im.convert("RGB"))

    return load


def source_photos() -> list[SourcePhoto]:
    """The real photos the embedded set is made from, with their licences.

    Only photos whose shipping package states a licence that allows derivatives to be
    redistributed are listed. ``skimage.data.moon()``, ``page()`` and
    ``stereo_motorcycle()`` are left out: scikit-image states no licence for them.

    Returns:
        One :class:`SourcePhoto` per photo, in a fixed order.
    """
    sk = "scikit-image"
    return [
        SourcePhoto("hubble", _skimage("hubble_deep_field"), "public domain (NASA)", sk,
                    "skimage.data.hubble_deep_field()", "NASA / HubbleSite, Hubble eXtreme Deep Field (2012)"),
        SourcePhoto("astronaut", _skimage("astronaut"), "public domain (NASA)", sk,
                    "skimage.data.astronaut()", "NASA Great Images: astronaut Eileen Collins"),
        SourcePhoto("ihc", _skimage("immunohistochemistry"), "no known copyright restrictions", sk,
                    "skimage.data.immunohistochemistry()", "Center for Microscopy And Molecular Imaging (CMMI)"),
        SourcePhoto("china", _sklearn("china.jpg"), "CC BY 2.0", "scikit-learn",
                    "sklearn.datasets.load_sample_image('china.jpg')", "danielbuechele (Flickr)"),
        SourcePhoto("coffee", _skimage("coffee"), "CC0", sk,
                    "skimage.data.coffee()", "Rachel Michetti, courtesy of Pikolo Espresso Bar"),
        SourcePhoto("chelsea", _skimage("chelsea"), "CC0", sk,
                    "skimage.data.chelsea()", "Stefan van der Walt"),
        SourcePhoto("hopper", _matplotlib("grace_hopper.jpg"), "public domain (U.S. Navy photo)", "matplotlib",
                    "matplotlib.cbook.get_sample_data('grace_hopper.jpg')",
                    "U.S. Navy, via Wikimedia Commons File:Grace_Hopper.jpg"),
        SourcePhoto("camera", _skimage("camera"), "CC0", sk, "skimage.data.camera()", "Lav Varshney"),
        SourcePhoto("coins", _skimage("coins"), "no known copyright restrictions", sk,
                    "skimage.data.coins()", "Brooklyn Museum: Greek coins from Pompeii"),
        SourcePhoto("brick", _skimage("brick"), "CC0", sk, "skimage.data.brick()", "CC0Textures (Bricks25)"),
        SourcePhoto("grass", _skimage("grass"), "CC0", sk, "skimage.data.grass()", "linolafett (DeviantArt)"),
        SourcePhoto("clock", _skimage("clock"), "public domain", sk, "skimage.data.clock()", "Stefan van der Walt"),
        SourcePhoto("retina", _skimage("retina"), "CC0 1.0", sk,
                    "skimage.data.retina()", "Mikael Häggström (Wikimedia Commons)"),
        SourcePhoto("rocket", _skimage("rocket"), "public domain (SpaceX)", sk,
                    "skimage.data.rocket()", "SpaceX: DSCOVR launch on Falcon 9"),
        SourcePhoto("flower", _sklearn("flower.jpg"), "CC BY 2.0", "scikit-learn",
                    "sklearn.datasets.load_sample_image('flower.jpg')", "vultilion (Flickr)"),
        SourcePhoto("gravel", _skimage("gravel"), "CC0", sk, "skimage.data.gravel()", "CC0Textures (Gravel04)"),
        SourcePhoto("text", _skimage("text"), "public domain", sk,
                    "skimage.data.text()", "Wikipedia File:Corner.png"),
        SourcePhoto("cell", _skimage("cell"), "CC0", sk,
                    "skimage.data.cell()", "Paul Müller et al., Optics Express 26(8), 2018"),
    ]


# (photo, rows, columns, split): each photo is cut into a rows x columns grid of scenes.
_LAYOUT: tuple[tuple[str, int, int, Split], ...] = (
    ("hubble", 2, 3, "test"),
    ("astronaut", 2, 2, "test"),
    ("ihc", 2, 2, "test"),
    ("china", 1, 2, "test"),
    ("coffee", 1, 2, "test"),
    ("chelsea", 1, 1, "test"),
    ("hopper", 1, 1, "test"),
    ("camera", 1, 1, "test"),
    ("coins", 1, 1, "test"),
    ("brick", 1, 1, "test"),
    ("grass", 1, 1, "test"),
    ("clock", 1, 1, "test"),
    ("retina", 2, 2, "train"),
    ("rocket", 1, 2, "train"),
    ("flower", 1, 2, "train"),
    ("gravel", 1, 1, "train"),
    ("text", 1, 1, "train"),
    ("cell", 2, 1, "train"),
)


@dataclass(frozen=True)
class Scene:
    """A rectangle of one source photo; the unit of ground truth.

    Attributes:
        name: unique label, ``"<photo>"`` or ``"<photo>-r<row>c<col>"``.
        photo: the :attr:`SourcePhoto.name` it is cut from.
        box: ``(left, top, right, bottom)`` in the photo's pixels.
        split: ``"test"`` (query + database views) or ``"train"`` (whitening views).
        index: position in :func:`scenes`, which seeds its random views.
    """

    name: str
    photo: str
    box: tuple[int, int, int, int]
    split: Split
    index: int


def _photo_sizes() -> dict[str, tuple[int, int]]:
    # (height, width) of each photo; checked against the loaded pixels in _load_photo.
    return {
        "hubble": (872, 1000), "astronaut": (512, 512), "ihc": (512, 512), "china": (427, 640),
        "coffee": (400, 600), "chelsea": (300, 451), "hopper": (600, 512), "camera": (512, 512),
        "coins": (303, 384), "brick": (512, 512), "grass": (512, 512), "clock": (300, 400),
        "retina": (1411, 1411), "rocket": (427, 640), "flower": (427, 640), "gravel": (512, 512),
        "text": (172, 448), "cell": (660, 550),
    }


def scenes(split: Split | None = None) -> list[Scene]:
    """The scenes of the embedded set: each photo cut into a grid of non-overlapping rectangles.

    Args:
        split: ``"test"`` or ``"train"`` for one part, ``None`` for all.

    Returns:
        The scenes, test scenes first, in a fixed order.
    """
    sizes = _photo_sizes()
    out: list[Scene] = []
    for photo, rows, cols, part in _LAYOUT:
        height, width = sizes[photo]
        for r in range(rows):
            for c in range(cols):
                box = (c * width // cols, r * height // rows, (c + 1) * width // cols, (r + 1) * height // rows)
                name = photo if rows * cols == 1 else f"{photo}-r{r}c{c}"
                out.append(Scene(name, photo, box, part, len(out)))
    return [s for s in out if split is None or s.split == split]


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class View:
    """One generated image and how it was made.

    Attributes:
        file: file name inside the dataset folder.
        scene: the :attr:`Scene.name` it shows (its ground-truth group).
        role: ``"query"``, ``"db"`` or ``"train"``.
        recipe: human-readable list of the operations applied, in order.
        image: the RGB pixels.
    """

    file: str
    scene: str
    role: Role
    recipe: tuple[str, ...]
    image: Image.Image


_OPERATIONS = ("scale", "rotate", "perspective", "colour", "blur", "jpeg", "occlusion")
# The order in which drawn operations are applied: geometry first, an occluder pasted onto the
# photo, and JPEG last, as a camera, an editor and an upload would.
_APPLY_ORDER = ("scale", "rotate", "perspective", "colour", "blur", "occlusion", "jpeg")


def _uniform(rng: np.random.Generator, low: float, high: float, decimals: int = 2) -> float:
    """A uniform draw in [low, high], rounded so that a last-bit float difference never changes a pixel."""
    return round(low + (high - low) * float(rng.random()), decimals)


def _randint(rng: np.random.Generator, low: int, high: int) -> int:
    """An integer in [low, high], from one uniform double (stable across numpy versions)."""
    return low + min(int(float(rng.random()) * (high - low + 1)), high - low)


def _random_crop(
    rng: np.random.Generator, width: int, height: int, area: tuple[float, float]
) -> tuple[int, int, int, int]:
    """A crop box covering ``area`` (low, high) of the scene, aspect jittered by up to e^±0.3."""
    fraction = _uniform(rng, *area)
    aspect = math.exp(_uniform(rng, -0.3, 0.3))  # width / height, relative to the scene's
    crop_w = min(width, max(16, round(width * math.sqrt(fraction * aspect))))
    crop_h = min(height, max(16, round(height * math.sqrt(fraction / aspect))))
    left = _randint(rng, 0, width - crop_w)
    top = _randint(rng, 0, height - crop_h)
    return left, top, left + crop_w, top + crop_h


def _overlap_fraction(box: tuple[int, int, int, int], inside: tuple[int, int, int, int]) -> float:
    """Fraction of ``box``'s area that lies inside ``inside``."""
    w = max(0, min(box[2], inside[2]) - max(box[0], inside[0]))
    h = max(0, min(box[3], inside[3]) - max(box[1], inside[1]))
    return w * h / ((box[2] - box[0]) * (box[3] - box[1]))


def _resize_max_side(image: Image.Image, max_side: int) -> Image.Image:
    """Resize (Lanczos) so that the longer side is ``max_side``, keeping the aspect ratio."""
    scale = max_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _solve_exact(matrix: list[list[Fraction]], rhs: list[Fraction]) -> list[Fraction]:
    """Gaussian elimination in exact rational arithmetic (same result on every machine)."""
    n = len(rhs)
    a = [row[:] + [b] for row, b in zip(matrix, rhs)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if a[r][col] != 0)
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(n):
            if r != col and a[r][col] != 0:
                factor = a[r][col] / a[col][col]
                a[r] = [x - factor * y for x, y in zip(a[r], a[col])]
    return [a[i][n] / a[i][i] for i in range(n)]


def _perspective_coefficients(dst: Sequence[tuple[int, int]], src: Sequence[tuple[int, int]]) -> tuple[float, ...]:
    """Pillow's 8 PERSPECTIVE coefficients mapping output points ``dst`` to input points ``src``.

    Pillow samples the input at ``((a x + b y + c) / (g x + h y + 1), (d x + e y + f) / (g x + h y + 1))``
    for output pixel ``(x, y)``; four point pairs give 8 linear equations in a..h.
    """
    matrix, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        x, y, u, v = Fraction(x), Fraction(y), Fraction(u), Fraction(v)
        matrix.append([x, y, Fraction(1), Fraction(0), Fraction(0), Fraction(0), -x * u, -y * u])
        rhs.append(u)
        matrix.append([Fraction(0), Fraction(0), Fraction(0), x, y, Fraction(1), -x * v, -y * v])
        rhs.append(v)
    return tuple(float(c) for c in _solve_exact(matrix, rhs))


def _rotate(image: Image.Image, angle: float) -> Image.Image:
    """Rotate by ``angle`` degrees and keep the largest centred crop with no empty corners."""
    if angle % 90 == 0:
        turns = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
        return image.transpose(turns[int(angle) % 360]) if angle % 360 else image
    w, h = image.size
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    # A centred w' x h' box with the image's aspect, scaled by k, fits inside the rotated
    # image when k (w c + h s) <= w and k (w s + h c) <= h.
    k = min(w / (w * c + h * s), h / (w * s + h * c))
    cw, ch = int(w * k) - 2, int(h * k) - 2
    rotated = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    left, top = (w - cw) // 2, (h - ch) // 2
    return rotated.crop((left, top, left + cw, top + ch))


def _apply(image: Image.Image, operation: str, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """Draw the parameters of one operation and apply it; returns the image and its description."""
    w, h = image.size
    if operation == "scale":
        side = _randint(rng, 160, 320)
        return _resize_max_side(image, side), f"scale to max side {side}"
    if operation == "rotate":
        if rng.random() < 0.4:
            angle = float(90 * _randint(rng, 1, 3))
        else:
            angle = _uniform(rng, 8.0, 30.0, 1) * (1 if rng.random() < 0.5 else -1)
        return _rotate(image, angle), f"rotate {angle:g} deg"
    if operation == "perspective":
        # Each corner of the output samples a point moved inwards by up to 22 % of the side:
        # the view of a plane seen from another angle, with no empty borders.
        corners = [(0, 0), (w, 0), (w, h), (0, h)]
        inward = [(1, 1), (-1, 1), (-1, -1), (1, -1)]
        src = [
            (x + dx * _randint(rng, 0, int(0.22 * w)), y + dy * _randint(rng, 0, int(0.22 * h)))
            for (x, y), (dx, dy) in zip(corners, inward)
        ]
        coefficients = _perspective_coefficients(corners, src)
        warped = image.transform((w, h), Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BICUBIC)
        return warped, f"perspective {src}"
    if operation == "colour":
        brightness = _uniform(rng, 0.5, 1.5)
        gamma = _uniform(rng, 0.6, 1.6)
        gains = [_uniform(rng, 0.75, 1.25) for _ in range(3)]
        lut: list[int] = []
        for gain in gains:
            lut += [min(255, round(255 * brightness * gain * (v / 255) ** gamma)) for v in range(256)]
        return image.point(lut), f"colour brightness {brightness} gamma {gamma} gains {gains}"
    if operation == "blur":
        radius = _uniform(rng, 1.5, 4.0, 1)
        return image.filter(ImageFilter.GaussianBlur(radius)), f"blur radius {radius}"
    if operation == "jpeg":
        quality = _randint(rng, 5, 25)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
            return decoded.convert("RGB"), f"jpeg quality {quality}"
    if operation == "occlusion":
        fraction = _uniform(rng, 0.1, 0.3)
        aspect = math.exp(_uniform(rng, -0.7, 0.7))
        ow = min(w, round(math.sqrt(fraction * w * h * aspect)))
        oh = min(h, round(math.sqrt(fraction * w * h / aspect)))
        left, top = _randint(rng, 0, w - ow), _randint(rng, 0, h - oh)
        colour = tuple(_randint(rng, 0, 255) for _ in range(3))
        occluded = image.copy()
        ImageDraw.Draw(occluded).rectangle((left, top, left + ow - 1, top + oh - 1), fill=colour)
        return occluded, f"occlusion {ow}x{oh} at ({left},{top})"
    raise ValueError(f"unknown operation {operation!r}")  # pragma: no cover - internal


def _distorted_view(
    scene_image: Image.Image, rng: np.random.Generator, crop: tuple[int, int, int, int]
) -> tuple[Image.Image, list[str]]:
    """Crop, resize to :data:`VIEW_MAX_SIDE`, then one or two distortions, JPEG last if drawn."""
    image = _resize_max_side(scene_image.crop(crop), VIEW_MAX_SIDE)
    area = (crop[2] - crop[0]) * (crop[3] - crop[1]) / (scene_image.width * scene_image.height)
    recipe = [f"crop {crop} ({area:.0%} of the scene)"]
    n_operations = 1 if rng.random() < 0.5 else 2
    pool = list(_OPERATIONS)
    chosen = [pool.pop(_randint(rng, 0, len(pool) - 1)) for _ in range(n_operations)]
    chosen.sort(key=_APPLY_ORDER.index)
    for operation in chosen:
        image, description = _apply(image, operation, rng)
        recipe.append(description)
    return image, recipe


def _load_photo(photo: SourcePhoto) -> Image.Image:
    """The photo as an RGB image (grey photos get three equal channels), after checking its size."""
    pixels = np.asarray(photo.loader())
    if pixels.dtype != np.uint8:
        raise ValueError(f"{photo.function} returned {pixels.dtype}, expected uint8")
    if pixels.shape[:2] != _photo_sizes()[photo.name]:
        raise ValueError(
            f"{photo.function} returned shape {pixels.shape}; the embedded recipe expects "
            f"{_photo_sizes()[photo.name]} (a changed dependency?)"
        )
    image = Image.fromarray(pixels)
    return image.convert("RGB")


def render_scene(scene: Scene, photo: Image.Image | None = None) -> list[View]:
    """Generate every view of one scene, deterministically.

    A test scene gives a query (a crop of 55-85 % of the scene, otherwise untouched)
    and :data:`N_DB_VIEWS` database views; each database view is a crop of 30-95 % of
    the scene, at least half of which lies inside the query's crop, followed by one or
    two of: scale change, rotation, perspective warp, colour/illumination shift, blur,
    partial occlusion, JPEG. A training scene gives :data:`N_TRAIN_VIEWS` such views.

    Args:
        scene: one of :func:`scenes`.
        photo: its source photo as an RGB image (loaded when ``None``).

    Returns:
        The views, query first for a test scene.
    """
    if photo is None:
        photo = _load_photo(next(p for p in source_photos() if p.name == scene.photo))
    scene_image = photo.crop(scene.box)
    width, height = scene_image.size
    rng = np.random.default_rng([SEED, scene.index])
    views: list[View] = []
    if scene.split == "test":
        query_crop = _random_crop(rng, width, height, (0.55, 0.85))
        query = _resize_max_side(scene_image.crop(query_crop), VIEW_MAX_SIDE)
        views.append(View(f"{scene.name}_query.png", scene.name, "query", (f"crop {query_crop}",), query))
        for k in range(N_DB_VIEWS):
            for _ in range(1000):  # rejection sampling: the view must show what the query shows
                crop = _random_crop(rng, width, height, (0.3, 0.95))
                if _overlap_fraction(crop, query_crop) >= 0.5:
                    break
            else:  # pragma: no cover - never reached with these ranges, kept as a safe default
                crop = query_crop
            image, recipe = _distorted_view(scene_image, rng, crop)
            views.append(View(f"{scene.name}_db{k}.png", scene.name, "db", tuple(recipe), image))
    else:
        for k in range(N_TRAIN_VIEWS):
            crop = _random_crop(rng, width, height, (0.3, 0.95))
            image, recipe = _distorted_view(scene_image, rng, crop)
            views.append(View(f"{scene.name}_train{k:02d}.png", scene.name, "train", tuple(recipe), image))
    return views
