"""Self-checks for lesson 1 (feature maps): the size of a conv feature map, and what a cell sees.

* :func:`check_feature_map_size` tests a student's ``size_fn(height, width, stride)``
  on several input sizes and explains typical mistakes (floor instead of ceil,
  swapped axes, non-integer sizes).
* :func:`reference_feature_map_size` is the answer: with TF "same" padding
  (EfficientNet) every stride-2 layer rounds up, so H' = ⌈H / s⌉.
* :func:`check_receptive_field` tests ``fn(layers) -> (stride, receptive field)``
  on stacks of (kernel, stride) layers, and names the usual slips (adding k - 1
  instead of (k - 1)·jump, multiplying the stride in first).
"""

from __future__ import annotations

import math
import numbers
from typing import Callable

from cbir_lab.exercises._feedback import CheckResult, not_implemented, report

__all__ = [
    "CheckResult",
    "reference_feature_map_size",
    "check_feature_map_size",
    "FEATURE_MAP_SIZE_CASES",
    "reference_receptive_field",
    "check_receptive_field",
    "RECEPTIVE_FIELD_CASES",
]

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


# --------------------------------------------------------------------------- stride and receptive field

#: Layer stacks (kernel, stride) the receptive-field check runs, each with what it stands for.
RECEPTIVE_FIELD_CASES: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("one 3×3 conv", ((3, 1),)),
    ("two 3×3 convs", ((3, 1), (3, 1))),
    ("3×3 conv, 2×2 pool with stride 2, 3×3 conv", ((3, 1), (2, 2), (3, 1))),
    ("VGG16 up to conv2_2", ((3, 1), (3, 1), (2, 2), (3, 1), (3, 1))),
    ("EfficientNet stem + first stage", ((3, 2), (3, 1), (1, 1), (1, 1), (3, 2))),
    ("five stride-2 3×3 convs", ((3, 2),) * 5),
)


def reference_receptive_field(layers) -> tuple[int, int]:
    r"""The total stride and the receptive field of a stack of convolutions and poolings.

    Going from the input to the output with jump j (pixels between neighbouring
    cells, starting at 1) and receptive field r (starting at 1), a layer with kernel
    k and stride s gives

    .. math:: r \leftarrow r + (k - 1)\, j, \qquad j \leftarrow j \cdot s

    (the kernel spans k cells of the layer below, which are j pixels apart).

    Args:
        layers: (kernel, stride) per layer, input side first.

    Returns:
        (total stride j, receptive field r) in input pixels.

    Examples:
        >>> reference_receptive_field([(3, 1), (2, 2), (3, 1)])
        (2, 8)
    """
    jump, field = 1, 1
    for kernel, stride in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return jump, field


def _receptive_field_slips(layers) -> dict[str, tuple[int, int]]:
    """What the usual slips give, to name them in the feedback."""
    jump, no_jump = 1, 1
    stride_first_jump, stride_first = 1, 1
    for kernel, stride in layers:
        no_jump += kernel - 1
        stride_first_jump *= stride
        stride_first += (kernel - 1) * stride_first_jump
        jump *= stride
    return {"no_jump": (jump, no_jump), "stride_first": (jump, stride_first)}


def check_receptive_field(fn: Callable, verbose: bool = True) -> CheckResult:
    """Check ``fn(layers) -> (total_stride, receptive_field)`` on :data:`RECEPTIVE_FIELD_CASES`.

    Args:
        fn: the student's function; ``layers`` is a list of (kernel, stride), input side first.
        verbose: print the feedback.

    Returns:
        The :class:`CheckResult`, naming each failing stack and the likely slip.
    """
    name = "stride and receptive field"
    hints = {
        "no_jump": ("Each layer adds (k - 1) cells of the layer *below*, and those cells are j pixels apart: "
                    "add (k - 1) · j, not k - 1."),
        "stride_first": "Grow the field with the jump *before* this layer's stride multiplies it.",
        "stride": "The total stride is the product of the strides.",
    }
    lines, failures = [], []
    for label, layers in RECEPTIVE_FIELD_CASES:
        expected = reference_receptive_field(layers)
        try:
            got = fn([tuple(layer) for layer in layers])
        except NotImplementedError:
            return report(not_implemented(name, "Return (total stride, receptive field) of the layer stack."), verbose)
        except Exception as err:
            lines.append(f"✗ {label}: your function raised {type(err).__name__}: {err}")
            failures.append("error")
            continue
        pair = _as_pair(got)
        if pair is not None and tuple(pair) == expected:
            continue
        slips = _receptive_field_slips(layers)
        key = next((k for k, v in slips.items() if pair is not None and tuple(pair) == v), None)
        if key is None and pair is not None and pair[0] != expected[0]:
            key = "stride"
        lines.append(f"✗ {label}: expected (stride, field) = {expected}, got {got!r}")
        failures.append(key or "wrong")
    if not failures:
        return report(CheckResult(name, True, f"✓ {name}: all {len(RECEPTIVE_FIELD_CASES)} stacks right. "
                                  "Five stride-2 3×3 convs: stride 32, but each cell sees 63 pixels."), verbose)
    header = f"{name}: {len(failures)} of {len(RECEPTIVE_FIELD_CASES)} stacks wrong."
    advice = [f"Hint: {hints[key]}" for key in dict.fromkeys(failures) if key in hints]
    return report(CheckResult(name, False, "\n".join([header, *lines, *advice]), failures=tuple(failures)), verbose)
