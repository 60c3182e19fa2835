"""Detector output layouts: one module each, registered here; recognised from the output shape.

Adding a layout (an RT-DETR-style head, say) is one module — a :class:`DetectorLayout` subclass
that says how to recognise the shape, decode one image's output, which Ultralytics export gives
it, and what to call it — plus one entry in :data:`LAYOUTS`. Recognition must be unambiguous:
an output shape that two layouts claim is an error, not a guess (a test checks every registered
pair on the shapes each claims).

Example:
    >>> layout, classes = detect_layout([1, 84, 8400], (640, 640))
    >>> str(layout), classes
    ('raw', 80)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from quantsweep.errors import QuantsweepError
from quantsweep.model.layouts import e2e, raw, v5
from quantsweep.model.layouts.base import STRIDES, DetectorLayout, anchor_count

__all__ = ["LAYOUTS", "STRIDES", "DetectorLayout", "anchor_count", "detect_layout", "get_layout", "supported_text"]

#: every layout quantsweep decodes, by name (the order is the documentation's)
LAYOUTS: dict[str, DetectorLayout] = {m.LAYOUT.name: m.LAYOUT for m in (e2e, raw, v5)}


def get_layout(name: str | DetectorLayout) -> DetectorLayout:
    """The registered layout called ``name`` (``run.layout`` in a metrics file, ``--head``)."""
    try:
        return LAYOUTS[str(name)]
    except KeyError:
        raise QuantsweepError(f"unknown layout {name!r}", f"use one of {', '.join(LAYOUTS)}") from None


def supported_text(hw: tuple[int, int] | None = None) -> str:
    """The supported layouts in one line (error messages, the troubleshooting fix, docs)."""
    return "; ".join(f"{lay.title} {lay.shape_text(hw).split(' ')[0]}" for lay in LAYOUTS.values())


def supported_table() -> str:
    """The supported layouts as a Markdown table (the README and docs/ embed it; a test compares)."""
    rows = [lay.row() for lay in LAYOUTS.values()]
    lines = ["| layout | output | detectors | NMS | from a .pt |", "|---|---|---|---|---|"]
    lines += [f"| `{r['layout']}` {r['title']} | `{r['shape'].split(' ')[0]}` | {r['families']} | {r['nms']} | "
              f"{r['export']} |" for r in rows]
    return "\n".join(lines)


def detect_layout(shape: Sequence[Any], hw: tuple[int, int], source: str = "model") -> tuple[DetectorLayout, int]:
    """Tell the layout of a detector output from its shape and the input size.

    Args:
        shape: output shape, e.g. ``[1, 300, 6]``; dims may be strings (symbolic) except the
            two that decide the layout.
        hw: network input height, width.
        source: the model's name, used in the error message.

    Returns:
        ``(layout, num_classes)``; ``num_classes`` is 0 where the shape does not hold it (end-to-end).

    Raises:
        QuantsweepError: the shape matches no layout, or more than one.
    """
    dims = list(shape)
    found: list[tuple[DetectorLayout, int]] = []
    if len(dims) == 3 and all(isinstance(d, int) and d > 0 for d in dims[1:]):
        for lay in LAYOUTS.values():
            nc = lay.match(dims[1:], hw)
            if nc is not None:
                found.append((lay, nc))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise QuantsweepError(
            f"{source}: output {list(shape)} for input {hw[0]}x{hw[1]} could be {' or '.join(str(f[0]) for f in found)}",
            "export the detector with an unambiguous head (e.g. an input size whose anchor count differs)")
    raise QuantsweepError(f"{source}: unknown output layout {list(shape)} for input {hw[0]}x{hw[1]}",
                          f"supported: {supported_text(hw)}")
