"""Decoding raw detector outputs into COCO detections (each layout decodes itself: :mod:`quantsweep.model.layouts`).

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
from quantsweep.model.layouts import DetectorLayout
from quantsweep.model.layouts.nms import nms

__all__ = ["decode", "nms", "to_coco"]


def decode(output: np.ndarray, layout: DetectorLayout, metas: Sequence[LetterboxMeta], conf: float = 0.001,
           iou: float = 0.7, max_det: int = 300) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Decode a batch output into per-image (xyxy boxes in original pixels, scores, classes)."""
    results = []
    for out, meta in zip(output, metas):  # padded batch rows beyond len(metas) are ignored
        boxes, scores, cls = layout.decode_one(np.asarray(out), conf, iou, max_det)
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

