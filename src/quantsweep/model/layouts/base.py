"""What a detector output layout is: one class per layout, one module per class (see the package)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from quantsweep.model.layouts.nms import MAX_NMS, class_aware_nms

__all__ = ["STRIDES", "DetectorLayout", "anchor_count"]


STRIDES = (8, 16, 32)


def anchor_count(hw: tuple[int, int], per_cell: int = 1) -> int:
    """Number of grid cells over strides 8/16/32 for an input of ``hw`` (times ``per_cell``)."""
    return per_cell * sum((-(-hw[0] // s)) * (-(-hw[1] // s)) for s in STRIDES)


class DetectorLayout:
    """One detector output layout: how to recognise it, decode it, export it and name it.

    A subclass sets the class attributes and implements :meth:`match` and :meth:`candidates`;
    registering it is one line in :data:`quantsweep.model.layouts.LAYOUTS`.

    Attributes:
        name: the short name (``run.layout`` in metrics, ``--head`` where exportable).
        title: what people call it.
        families: the detectors that produce it.
        needs_nms: decoding runs class-aware NMS after :meth:`candidates`.
        export_end2end: Ultralytics' ``export(end2end=...)`` that produces this layout from a
            ``.pt``; None when quantsweep does not export it (ONNX files only).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    families: ClassVar[str]
    needs_nms: ClassVar[bool]
    export_end2end: ClassVar[bool | None] = None

    def shape_text(self, hw: tuple[int, int] | None = None) -> str:
        """The output shape, e.g. ``[N,4+C,2100]`` for 320×320 (``A`` without an input size)."""
        raise NotImplementedError

    def match(self, dims: Sequence[int], hw: tuple[int, int]) -> int | None:
        """The class count when a ``[N, d1, d2]`` output of an ``hw`` input is this layout (0 when the
        classes are not in the shape), else None."""
        raise NotImplementedError

    def candidates(self, out: np.ndarray, conf: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One image's output -> candidate (xyxy boxes in network pixels (float32), scores, classes)
        above ``conf``, in the order the layout defines (before any NMS)."""
        raise NotImplementedError

    def decode_one(self, out: np.ndarray, conf: float, iou: float, max_det: int,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One image's output -> (xyxy boxes in network pixels, scores, class indices), at most ``max_det``."""
        boxes, scores, cls = self.candidates(np.asarray(out), conf)
        if not self.needs_nms:
            return boxes[:max_det], scores[:max_det], cls[:max_det]
        if scores.size > MAX_NMS:
            top = np.argsort(-scores, kind="stable")[:MAX_NMS]
            boxes, scores, cls = boxes[top], scores[top], cls[top]
        if scores.size == 0:
            return boxes, scores, cls
        keep = class_aware_nms(boxes, scores, cls, iou)[:max_det]
        return boxes[keep], scores[keep], cls[keep]

    def row(self) -> dict[str, Any]:
        """This layout as a row of the supported-layouts table."""
        return {"layout": self.name, "title": self.title, "shape": self.shape_text(), "families": self.families,
                "nms": "yes" if self.needs_nms else "no (NMS-free)",
                "export": "—" if self.export_end2end is None else f"`--head {self.name}`"}

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<layout {self.name}>"

    def __eq__(self, other: object) -> bool:  # a layout equals its name (metrics store the name)
        return str(other) == self.name if isinstance(other, (str, DetectorLayout)) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)


def xywh2xyxy(b: np.ndarray) -> np.ndarray:
    """Centre-size boxes to corner boxes."""
    out = np.empty_like(b)
    half_w, half_h = b[:, 2] / 2, b[:, 3] / 2
    out[:, 0], out[:, 1] = b[:, 0] - half_w, b[:, 1] - half_h
    out[:, 2], out[:, 3] = b[:, 0] + half_w, b[:, 1] + half_h
    return out
