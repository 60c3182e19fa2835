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

__all__ = ["METRIC_KEYS", "bootstrap_map", "coco_map"]

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


def bootstrap_map(ground_truth: dict[str, Any], detections: dict[str, list[dict[str, Any]]],
                  image_ids: Sequence[int], resamples: int = 200, seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap of mAP50-95 over images: the same resampled image multisets for every model.

    faster-coco-eval computes the per-image IoUs once per model; each resample then re-runs only
    its C++ matching + accumulation on the resampled id list (duplicates count as separate images).

    Returns:
        ``{"map50_95": {name: [value per resample]}, "resamples": n, "seed": seed}``.
    """
    import numpy as np
    from faster_coco_eval import COCO, COCOeval_faster
    from faster_coco_eval.core.faster_eval_api import _C

    ids = [int(i) for i in image_ids]
    rng = np.random.default_rng(seed)
    samples = [list(rng.choice(ids, size=len(ids), replace=True)) for _ in range(resamples)]
    out: dict[str, list[float]] = {}
    gt = COCO(copy.deepcopy(ground_truth), print_function=log.debug)
    for name, dets in detections.items():
        if not dets:
            out[name] = [0.0] * resamples
            continue
        ev = COCOeval_faster(gt, gt.loadRes(copy.deepcopy(dets)), "bbox", print_function=log.debug)
        ev.params.imgIds = ids
        ev.evaluate()
        cats = list(ev.params.catIds)
        values = []
        for sample in samples:
            params = ev._paramsEval
            params.imgIds = sample
            ious = [[ev.ious[i, c] for c in cats] for i in sample]
            ev.eval = _C.COCOevalEvaluateAccumulate(params, ious, ev.gt_dataset, ev.dt_dataset, sample, cats, True)
            ev.summarize()
            values.append(max(float(ev.stats[0]), 0.0))
        out[name] = values
    return {"map50_95": out, "resamples": resamples, "seed": seed}
