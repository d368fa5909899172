"""Self-checks for lesson 1 (feature maps): the size of a conv feature map.

* :func:`check_feature_map_size` tests a student's ``size_fn(height, width, stride)``
  on several input sizes and explains typical mistakes (floor instead of ceil,
  swapped axes, non-integer sizes).
* :func:`reference_feature_map_size` is the answer: with TF "same" padding
  (EfficientNet) every stride-2 layer rounds up, so H' = ⌈H / s⌉.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable

from cbir_lab.exercises._feedback import CheckResult, not_implemented, report

__all__ = ["CheckResult", "reference_feature_map_size", "check_feature_map_size", "FEATURE_MAP_SIZE_CASES"]

#: (height, width, stride) cases the check runs: exact multiples, odd sizes, a tiny image, a portrait.
FEATURE_MAP_SIZE_CASES: tuple[tuple[int, int, int], ...] = (
    (384, 288, 32),
    (224, 224, 32),
    (300, 500, 32),
    (383, 257, 32),
    (17, 40, 32),
    (512, 341, 16),
    (33, 65, 8),
)


def reference_feature_map_size(height: int, width: int, stride: int = 32) -> tuple[int, int]:
    r"""The feature-map size of an H×W input at a total stride s, with "same" padding.

    Each stride-2 layer with TF "same" padding outputs ⌈n / 2⌉ cells, and nested
    ceilings compose: ⌈⌈n/2⌉/2⌉ = ⌈n/4⌉. So

    .. math:: H' = \lceil H / s \rceil, \quad W' = \lceil W / s \rceil

    (ResNet's padded stride-2 convolutions round up the same way; VGG's
    unpadded max-pooling rounds down.)

    Args:
        height, width: the input size in pixels.
        stride: the network's total stride at that layer.

    Returns:
        (H', W').
    """
    return math.ceil(height / stride), math.ceil(width / stride)


def _as_pair(value) -> tuple[int, int] | None:
    try:
        first, second = value
    except (TypeError, ValueError):
        return None
    return first, second


def check_feature_map_size(
    size_fn: Callable[[int, int, int], tuple[int, int]], verbose: bool = True
) -> CheckResult:
    """Check ``size_fn(height, width, stride) -> (H', W')`` on :data:`FEATURE_MAP_SIZE_CASES`.

    Args:
        size_fn: the student's function.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`; its message names each failing case and the likely cause.
    """
    name = "feature-map size"
    lines: list[str] = []
    failures: list[str] = []
    hints = {
        "not_int": "Sizes are whole cells: return ints, not floats.",
        "swapped": "Return (height, width), the order of the tensor's (H, W) axes.",
        "floor": ("You rounded down. With TF 'same' padding a stride-2 layer keeps the partial window at "
                  "the border, so each halving rounds *up*: use math.ceil, not floor (//)."),
        "not_rounded": "A map has a whole number of cells: round H / stride (up).",
        "not_pair": "Return a pair (H', W').",
    }
    for height, width, stride in FEATURE_MAP_SIZE_CASES:
        expected = reference_feature_map_size(height, width, stride)
        try:
            got = size_fn(height, width, stride)
        except NotImplementedError:
            return report(not_implemented(name, "Return (H', W') for an input of height × width at this stride."), verbose)
        except Exception as err:  # show the student's own error, not a traceback from here
            lines.append(f"✗ size_fn({height}, {width}, {stride}) raised {type(err).__name__}: {err}")
            failures.append("error")
            continue
        pair = _as_pair(got)
        case = f"✗ input {height}×{width}, stride {stride}: expected {expected}, got {got!r}"
        if pair is None:
            lines.append(case)
            failures.append("not_pair")
            continue
        if pair == expected and all(isinstance(v, numbers.Integral) for v in pair):
            continue
        exact = (height / stride, width / stride)
        if pair == expected:
            key = "not_int"
        elif tuple(pair) == expected[::-1]:
            key = "swapped"
        elif tuple(pair) == (height // stride, width // stride):
            key = "floor"
        elif all(isinstance(v, numbers.Real) for v in pair) and all(math.isclose(a, b) for a, b in zip(pair, exact)):
            key = "not_rounded"
        else:
            key = "wrong"
        lines.append(case)
        failures.append(key)
    if not failures:
        message = (
            f"✓ {name}: all {len(FEATURE_MAP_SIZE_CASES)} cases right. H' = ⌈H / stride⌉: "
            "a 384×288 image gives a 12×9 map at stride 32."
        )
        return report(CheckResult(name, True, message), verbose)
    header = f"{name}: {len(failures)} of {len(FEATURE_MAP_SIZE_CASES)} cases wrong."
    advice = [f"Hint: {hints[key]}" for key in dict.fromkeys(failures) if key in hints]
    return report(CheckResult(name, False, "\n".join([header, *lines, *advice]), failures=tuple(failures)), verbose)
