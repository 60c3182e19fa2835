"""Decoding raw detector outputs into COCO detections (layouts: :mod:`quantsweep.model.layout`).

Decoding follows Ultralytics' validator: candidates above ``conf``, multi-label (one box may
score several classes), class-aware NMS at ``iou``, at most ``max_det`` per image, boxes mapped
back through the letterbox and clipped to the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from quantsweep.data.letterbox import LetterboxMeta
from quantsweep.errors import QuantsweepError
from quantsweep.model.layout import Layout

__all__ = ["decode", "nms", "to_coco"]


_MAX_NMS = 30000


_MAX_WH = 7680  # class offset for class-aware NMS (as Ultralytics)


def _xywh2xyxy(b: np.ndarray) -> np.ndarray:
    out = np.empty_like(b)
    half_w, half_h = b[:, 2] / 2, b[:, 3] / 2
    out[:, 0], out[:, 1] = b[:, 0] - half_w, b[:, 1] - half_h
    out[:, 2], out[:, 3] = b[:, 0] + half_w, b[:, 1] + half_h
    return out


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


def _nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Class-aware NMS as Ultralytics does it: boxes of different classes are offset apart."""
    offset = classes.astype(np.float32)[:, None] * _MAX_WH
    return nms(boxes + offset, scores, iou)


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

