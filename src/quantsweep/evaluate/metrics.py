"""Pure scoring: COCO detections + ground truth -> a named mAP dict (faster-coco-eval).

Metric keys are explicit (all higher-is-better; the table declares directions: :mod:`quantsweep.report.table`).
A metric COCOeval cannot compute (e.g. ``map_small`` with no small ground-truth objects in the
subset) is ``None``, never ``-1``.

Example:
    >>> m = coco_map(ds.coco, detections, ids)  # doctest: +SKIP
    >>> m["map50_95"]  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

__all__ = ["METRIC_KEYS", "coco_map", "per_class_ap"]

log = logging.getLogger(__name__)

# our key -> faster-coco-eval stats_as_dict key
_STATS = {
    "map50_95": "AP_all",
    "map50": "AP_50",
    "map75": "AP_75",
    "map_small": "AP_small",
    "map_medium": "AP_medium",
    "map_large": "AP_large",
    "ar100": "AR_third",
}
METRIC_KEYS: tuple[str, ...] = tuple(_STATS)


def coco_map(ground_truth: dict[str, Any], detections: list[dict[str, Any]],
             image_ids: Sequence[int]) -> dict[str, float | None]:
    """COCO bbox metrics of ``detections`` on ``image_ids`` (standard COCOeval: 10 IoUs, 100 dets).

    Args:
        ground_truth: a COCO instances dict (not modified).
        detections: COCO result records (image_id, category_id, bbox xywh, score).
        image_ids: the evaluated subset; images outside it are ignored.

    Returns:
        ``{metric_key: value or None}`` with the keys of :data:`METRIC_KEYS`.
    """
    ids = [int(i) for i in image_ids]
    if not detections:
        return {k: 0.0 for k in METRIC_KEYS}
    ev = _evaluated(ground_truth, detections, ids)
    stats = ev.stats_as_dict
    return {ours: (None if stats[theirs] < 0 else round(float(stats[theirs]), 6))
            for ours, theirs in _STATS.items()}


def _evaluated(ground_truth: dict[str, Any], detections: list[dict[str, Any]], ids: list[int]) -> Any:
    from faster_coco_eval import COCO, COCOeval_faster

    gt = COCO(copy.deepcopy(ground_truth), print_function=log.debug)
    gt.createIndex()
    dt = gt.loadRes(copy.deepcopy(detections))
    ev = COCOeval_faster(gt, dt, "bbox", print_function=log.debug)
    ev.params.imgIds = ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev


def per_class_ap(ground_truth: dict[str, Any], detections: list[dict[str, Any]],
                 image_ids: Sequence[int]) -> dict[str, float]:
    """AP50-95 of each category that has ground truth in ``image_ids`` (COCOeval's precision array,
    area ``all``, 100 detections), keyed by the category id as a string (JSON keys).

    Example:
        >>> per_class_ap(ds.coco, detections, ids)  # doctest: +SKIP
        {'1': 0.61, '2': 0.48}
    """
    import numpy as np

    ids = [int(i) for i in image_ids]
    present = sorted({int(a["category_id"]) for a in ground_truth.get("annotations", [])
                      if int(a["image_id"]) in set(ids) and not a.get("iscrowd", 0)})
    if not detections:
        return {str(c): 0.0 for c in present}
    ev = _evaluated(ground_truth, detections, ids)
    precision = np.asarray(ev.eval["precision"])  # [IoU, recall, category, area, max dets]
    out = {}
    for ci, cat in enumerate(ev.params.catIds):
        if int(cat) in present:
            p = precision[:, :, ci, 0, -1]
            p = p[p > -1]
            out[str(int(cat))] = round(float(p.mean()), 6) if p.size else 0.0
    return out
