"""Detector output layouts, and decoding raw outputs into COCO detections.

Three layouts are supported, told apart from the output shape and the input size:

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

Decoding follows Ultralytics' validator: candidates above ``conf``, multi-label (one box may
score several classes), class-aware NMS at ``iou``, at most ``max_det`` per image, boxes mapped
back through the letterbox and clipped to the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import numpy as np

from quantsweep.data import LetterboxMeta
from quantsweep.errors import QuantsweepError

__all__ = ["Layout", "anchor_count", "decode", "detect_layout", "to_coco"]

STRIDES = (8, 16, 32)
_MAX_NMS = 30000
_MAX_WH = 7680  # class offset for class-aware NMS (as Ultralytics)


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


def _xywh2xyxy(b: np.ndarray) -> np.ndarray:
    out = np.empty_like(b)
    half_w, half_h = b[:, 2] / 2, b[:, 3] / 2
    out[:, 0], out[:, 1] = b[:, 0] - half_w, b[:, 1] - half_h
    out[:, 2], out[:, 3] = b[:, 0] + half_w, b[:, 1] + half_h
    return out


def _nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    import torch
    import torchvision

    offset = classes.astype(np.float32)[:, None] * _MAX_WH
    keep = torchvision.ops.nms(torch.from_numpy(boxes + offset), torch.from_numpy(scores), iou)
    return keep.numpy()


def _decode_one(out: np.ndarray, layout: Layout, conf: float, iou: float, max_det: int,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's output -> (xyxy boxes in network pixels, scores, class indices)."""
    if layout is Layout.E2E:
        keep = out[:, 4] > conf
        rows = out[keep][:max_det]
        return rows[:, :4], rows[:, 4], rows[:, 5].astype(np.int64)
    if layout is Layout.RAW:
        preds = out.T  # [A, 4+C]
        cls_scores = preds[:, 4:]
    else:
        preds = out  # [A, 5+C]
        obj = preds[:, 4:5]
        preds = preds[obj[:, 0] > conf]
        cls_scores = preds[:, 5:] * preds[:, 4:5]
    anchor, cls = np.nonzero(cls_scores > conf)  # multi-label candidates
    scores = cls_scores[anchor, cls].astype(np.float32)
    if scores.size > _MAX_NMS:
        top = np.argsort(-scores, kind="stable")[:_MAX_NMS]
        anchor, cls, scores = anchor[top], cls[top], scores[top]
    boxes = _xywh2xyxy(preds[anchor, :4].astype(np.float32))
    if scores.size == 0:
        return boxes, scores, cls
    keep = _nms(boxes, scores, cls, iou)[:max_det]
    return boxes[keep], scores[keep], cls[keep]


def decode(output: np.ndarray, layout: Layout, metas: Sequence[LetterboxMeta], conf: float = 0.001,
           iou: float = 0.7, max_det: int = 300) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Decode a batch output into per-image (xyxy boxes in original pixels, scores, classes)."""
    results = []
    for out, meta in zip(output, metas):  # padded batch rows beyond len(metas) are ignored
        boxes, scores, cls = _decode_one(np.asarray(out), layout, conf, iou, max_det)
        boxes = boxes.astype(np.float64)
        boxes[:, [0, 2]] = ((boxes[:, [0, 2]] - meta.pad_left) / meta.gain).clip(0, meta.orig_hw[1])
        boxes[:, [1, 3]] = ((boxes[:, [1, 3]] - meta.pad_top) / meta.gain).clip(0, meta.orig_hw[0])
        results.append((boxes, scores, cls))
    return results


def to_coco(image_id: int, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
            category_ids: Sequence[int]) -> list[dict[str, Any]]:
    """COCO result records (bbox as x, y, w, h) for one image.

    Raises:
        QuantsweepError: a class index beyond the dataset's categories.
    """
    if classes.size and int(classes.max()) >= len(category_ids):
        raise QuantsweepError(
            f"model predicted class {int(classes.max())} but the dataset has {len(category_ids)} categories",
            "evaluate on the dataset the model was trained for")
    return [
        {"image_id": int(image_id), "category_id": int(category_ids[int(c)]),
         "bbox": [round(float(b[0]), 3), round(float(b[1]), 3), round(float(b[2] - b[0]), 3),
                  round(float(b[3] - b[1]), 3)],
         "score": round(float(s), 5)}
        for b, s, c in zip(boxes, scores, classes)
    ]
