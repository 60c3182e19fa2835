"""Greedy, class-aware non-maximum suppression without torch (the same kept boxes as torchvision)."""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_NMS", "class_aware_nms", "nms"]

MAX_NMS = 30000  # candidates kept for NMS, highest scores first (as Ultralytics)
_MAX_WH = 7680  # class offset for class-aware NMS (as Ultralytics)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression, the same as ``torchvision.ops.nms`` (no torch needed).

    Boxes (xyxy, float32) in descending score order (stable for ties) are kept unless their IoU
    with an already kept box exceeds ``iou``; IoU is computed in float32 in torchvision's order
    of operations, so the kept indices are identical (a test compares them on tie-heavy inputs).

    Returns:
        Indices of the kept boxes, highest score first.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[pos + 1:]
        rest = rest[~suppressed[rest]]
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        suppressed[rest[inter / (areas[i] + areas[rest] - inter) > np.float32(iou)]] = True
    return np.asarray(keep, dtype=np.int64)


def class_aware_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Class-aware NMS as Ultralytics does it: boxes of different classes are offset apart."""
    offset = classes.astype(np.float32)[:, None] * _MAX_WH
    return nms(boxes + offset, scores, iou)
