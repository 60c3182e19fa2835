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

__all__ = ["METRIC_KEYS", "coco_map"]

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
    from faster_coco_eval import COCO, COCOeval_faster

    ids = [int(i) for i in image_ids]
    if not detections:
        return {k: 0.0 for k in METRIC_KEYS}
    gt = COCO(copy.deepcopy(ground_truth), print_function=log.debug)
    gt.createIndex()
    dt = gt.loadRes(copy.deepcopy(detections))
    ev = COCOeval_faster(gt, dt, "bbox", print_function=log.debug)
    ev.params.imgIds = ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    stats = ev.stats_as_dict
    return {ours: (None if stats[theirs] < 0 else round(float(stats[theirs]), 6))
            for ours, theirs in _STATS.items()}
