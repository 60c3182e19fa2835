"""Paired bootstrap of mAP50-95 over images: how sure a ΔmAP is.

Every model is scored on the same resampled image multisets (a duplicated image counts as a
separate image), so the difference to FP32 is paired. faster-coco-eval computes each model's
per-image IoUs once; each resample then re-runs only its C++ matching and accumulation.

That re-run is not public API: :class:`_Resampler` is the one place that touches
faster-coco-eval's internals (``_C.COCOevalEvaluateAccumulate``, ``_paramsEval``, ``ious``,
``gt_dataset``, ``dt_dataset``). It checks they exist before use and fails with a clear error
naming the installed version if they moved; a test pins its result to the public
:func:`~quantsweep.evaluate.metrics.coco_map` on hand-made duplicated-image ground truth.

Example:
    >>> boot = bootstrap_map(ds.coco, {"fp32": dets_a, "int8": dets_b}, ids, resamples=200)  # doctest: +SKIP
    >>> boot["map50_95"]["int8"][:3]  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any, NoReturn

from quantsweep.errors import QuantsweepError

__all__ = ["bootstrap_map", "delta_interval"]

log = logging.getLogger(__name__)

_INTERNALS = ("_paramsEval", "ious", "gt_dataset", "dt_dataset")


def _moved(missing: list[str]) -> NoReturn:
    from importlib.metadata import version

    raise QuantsweepError(
        f"faster-coco-eval {version('faster-coco-eval')} no longer has {', '.join(missing)}, which the "
        "paired bootstrap re-uses to score resampled images",
        "install the faster-coco-eval version quantsweep pins (see pyproject.toml)")


class _Resampler:
    """One model's evaluation, re-accumulated on any multiset of its image ids."""

    def __init__(self, gt: Any, dets: list[dict[str, Any]], ids: list[int]) -> None:
        from faster_coco_eval import COCOeval_faster
        from faster_coco_eval.core import faster_eval_api

        accumulate = getattr(getattr(faster_eval_api, "_C", None), "COCOevalEvaluateAccumulate", None)
        if accumulate is None:
            _moved(["_C.COCOevalEvaluateAccumulate"])
        self._accumulate: Any = accumulate
        self.ev = COCOeval_faster(gt, gt.loadRes(copy.deepcopy(dets)), "bbox", print_function=log.debug)
        self.ev.params.imgIds = ids
        self.ev.evaluate()
        missing = [a for a in _INTERNALS if not hasattr(self.ev, a)]
        if missing:
            _moved(missing)
        self.cats = list(self.ev.params.catIds)

    def map50_95(self, sample: list[int]) -> float:
        ev = self.ev
        params = ev._paramsEval
        params.imgIds = sample
        ious = [[ev.ious[i, c] for c in self.cats] for i in sample]
        ev.eval = self._accumulate(params, ious, ev.gt_dataset, ev.dt_dataset, sample, self.cats, True)
        ev.summarize()
        return max(float(ev.stats[0]), 0.0)


def bootstrap_map(ground_truth: dict[str, Any], detections: dict[str, list[dict[str, Any]]],
                  image_ids: Sequence[int], resamples: int = 200, seed: int = 0,
                  samples: Sequence[Sequence[int]] | None = None) -> dict[str, Any]:
    """mAP50-95 of every model on the same resampled image multisets.

    Args:
        ground_truth: COCO instances dict (not modified).
        detections: model name -> its COCO detections on ``image_ids``.
        image_ids: the evaluated subset.
        resamples: multisets drawn with replacement (``seed`` fixes them).
        samples: explicit multisets instead of drawing them (tests).

    Returns:
        ``{"map50_95": {name: [value per resample]}, "resamples": n, "seed": seed}``.
    """
    import numpy as np
    from faster_coco_eval import COCO

    ids = [int(i) for i in image_ids]
    if samples is None:
        rng = np.random.default_rng(seed)
        samples = [[int(i) for i in rng.choice(ids, size=len(ids), replace=True)] for _ in range(resamples)]
    out: dict[str, list[float]] = {}
    gt = COCO(copy.deepcopy(ground_truth), print_function=log.debug)
    for name, dets in detections.items():
        if not dets:
            out[name] = [0.0] * len(samples)
            continue
        resampler = _Resampler(gt, dets, ids)
        out[name] = [resampler.map50_95(list(s)) for s in samples]
    return {"map50_95": out, "resamples": len(samples), "seed": seed}


def delta_interval(model: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    """The 95 % percentile interval of the paired differences ``model - reference`` (per resample)."""
    import numpy as np

    diffs = np.asarray(model) - np.asarray(reference)
    return round(float(np.percentile(diffs, 2.5)), 5), round(float(np.percentile(diffs, 97.5)), 5)
