"""Detector output layouts, told apart from the output shape and the input size.

Three layouts are supported:

========  =================  ==========================================================
layout    output shape       meaning
========  =================  ==========================================================
``e2e``   ``[N, K, 6]``      NMS-free end-to-end head (YOLOv10 one-to-one, or an export
                             with NMS inside): x1, y1, x2, y2, score, class
``raw``   ``[N, 4+C, A]``    YOLOv8/v10/11 one-to-many head: cx, cy, w, h, C class scores;
                             A = anchor points over strides 8/16/32; needs NMS
``v5``    ``[N, A, 5+C]``    YOLOv5-style: cx, cy, w, h, objectness, C class scores;
                             A = 3 anchors per cell over strides 8/16/32; needs NMS
========  =================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from quantsweep.errors import QuantsweepError

__all__ = ['Layout', 'STRIDES', 'anchor_count', 'detect_layout']


STRIDES = (8, 16, 32)


class Layout(StrEnum):
    E2E = "e2e"
    RAW = "raw"
    V5 = "v5"


def anchor_count(hw: tuple[int, int], per_cell: int = 1) -> int:
    """Number of grid cells over strides 8/16/32 for an input of ``hw`` (times ``per_cell``)."""
    return per_cell * sum((-(-hw[0] // s)) * (-(-hw[1] // s)) for s in STRIDES)


def detect_layout(shape: Sequence[Any], hw: tuple[int, int], source: str = "model") -> tuple[Layout, int]:
    """Tell the layout of a detector output from its shape and the input size.

    Args:
        shape: output shape, e.g. ``[1, 300, 6]``; dims may be strings (symbolic) except the
            two that decide the layout.
        hw: network input height, width.
        source: the model's name, used in the error message.

    Returns:
        ``(layout, num_classes)``; ``num_classes`` is 0 for ``e2e`` (not in the shape).

    Raises:
        QuantsweepError: the shape matches none of the layouts.
    """
    dims = list(shape)
    if len(dims) == 3 and all(isinstance(d, int) and d > 0 for d in dims[1:]):
        _, d1, d2 = dims
        a1, a3 = anchor_count(hw), anchor_count(hw, 3)
        if d2 == a1 and 5 <= d1 < d2:
            return Layout.RAW, d1 - 4
        if d1 == a3 and 6 <= d2 < d1:
            return Layout.V5, d2 - 5
        if d2 == 6 and d1 not in (a1, a3):
            return Layout.E2E, 0
    raise QuantsweepError(
        f"{source}: unknown output layout {list(shape)} for input {hw[0]}x{hw[1]}",
        f"supported: end-to-end [N,K,6], YOLOv8/10/11 raw [N,4+C,{anchor_count(hw)}], "
        f"YOLOv5 [N,{anchor_count(hw, 3)},5+C]")

