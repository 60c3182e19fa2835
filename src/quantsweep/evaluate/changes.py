"""What quantization changed, against FP32 on the same images: per class, per object size, per image.

- :func:`class_damage`: AP50-95 of each class for both models, Δ, the number of ground-truth
  boxes, and a paired bootstrap interval of Δ (the same resampled image multisets for both
  models, :mod:`quantsweep.evaluate.bootstrap`) where the class has enough boxes for one.
- :func:`size_damage`: COCO's AP for small / medium / large objects, both models, Δ, box counts.
- :func:`image_changes`: per image, at a score threshold (what a deployment would draw), each
  model's correct boxes, false boxes and missed objects against the ground truth (IoU >= 0.5, same
  class), how many boxes the two models disagree on, and whether the candidate is worse, better or
  just different there: what the report's gallery ranks by.

Example:
    >>> rows = class_damage(ds.coco, fp32_dets, int8_dets, ids, resamples=2000)  # doctest: +SKIP
    >>> rows[0]["name"], rows[0]["delta"], rows[0]["ci95"]  # doctest: +SKIP
    ('truck', -0.031, [-0.055, -0.009])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["MIN_BOXES_FOR_INTERVAL", "SIZES", "class_damage", "image_changes", "size_damage"]

MIN_BOXES_FOR_INTERVAL = 10  # fewer boxes of a class: its Δ is shown without an interval
SIZES = {"small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, float("inf"))}


def _boxes(ground_truth: dict[str, Any], ids: set[int]) -> list[dict[str, Any]]:
    return [a for a in ground_truth.get("annotations", []) if int(a["image_id"]) in ids and not a.get("iscrowd", 0)]


def class_damage(ground_truth: dict[str, Any], reference: list[dict[str, Any]], candidate: list[dict[str, Any]],
                 image_ids: Sequence[int], resamples: int = 2000, seed: int = 0, level: float = 0.95) -> list[dict[str, Any]]:
    """Per class with ground truth in ``image_ids``: AP50-95 of ``reference`` and ``candidate``, Δ
    (candidate - reference), boxes and images holding it, and the paired percentile interval of Δ
    (None below :data:`MIN_BOXES_FOR_INTERVAL` boxes). Sorted by Δ, most damaged first: first the classes
    with an interval, then those with too few boxes for one (on real data many classes have one or two
    boxes in a subset, and their Δ of a whole AP point says little)."""
    from quantsweep.evaluate.bootstrap import (
        _gt_coco,
        delta_interval,
        match_table,
        resample_weights,
        weighted_ap_per_class,
    )

    ids = sorted({int(i) for i in image_ids})
    gt = _gt_coco(ground_truth, ids)
    weights = np.vstack([np.ones((1, len(ids)), np.int64), resample_weights(len(ids), resamples, seed)])
    tables = [match_table(ground_truth, dets, ids, coco=gt) for dets in (reference, candidate)]
    ref, cand = (weighted_ap_per_class(t, weights) for t in tables)
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in ground_truth.get("categories", [])}
    boxes: dict[int, int] = {}
    images: dict[int, set[int]] = {}
    for a in _boxes(ground_truth, set(ids)):
        boxes[int(a["category_id"])] = boxes.get(int(a["category_id"]), 0) + 1
        images.setdefault(int(a["category_id"]), set()).add(int(a["image_id"]))
    out = []
    for ci, cat in enumerate(tables[0].categories):
        if cat not in boxes:
            continue
        delta = float(cand[0, ci] - ref[0, ci])
        interval = None
        if boxes[cat] >= MIN_BOXES_FOR_INTERVAL and resamples > 0:
            seen = np.isfinite(ref[1:, ci])  # a resample without the class says nothing about it
            if seen.any():
                interval = list(delta_interval(cand[1:, ci][seen], ref[1:, ci][seen], level))
        out.append({"category_id": cat, "name": names.get(cat, str(cat)), "boxes": boxes[cat],
                    "images": len(images[cat]), "ap_fp32": round(float(ref[0, ci]), 5),
                    "ap_candidate": round(float(cand[0, ci]), 5), "delta": round(delta, 5), "ci95": interval})
    return sorted(out, key=lambda r: (r["ci95"] is None, r["delta"], r["category_id"]))


def size_damage(ground_truth: dict[str, Any], reference: list[dict[str, Any]], candidate: list[dict[str, Any]],
                image_ids: Sequence[int]) -> dict[str, dict[str, Any]]:
    """COCO's AP for small (< 32² px), medium and large (> 96² px) objects: both models, Δ, boxes."""
    from quantsweep.evaluate.metrics import coco_map

    ids = [int(i) for i in image_ids]
    ref, cand = coco_map(ground_truth, reference, ids), coco_map(ground_truth, candidate, ids)
    counts = dict.fromkeys(SIZES, 0)
    for a in _boxes(ground_truth, set(ids)):
        area = float(a.get("area", a["bbox"][2] * a["bbox"][3]))
        counts[next(k for k, (lo, hi) in SIZES.items() if lo <= area < hi)] += 1
    out = {}
    for size in SIZES:
        r, c = ref.get(f"map_{size}"), cand.get(f"map_{size}")
        out[size] = {"boxes": counts[size], "ap_fp32": r, "ap_candidate": c,
                     "delta": None if r is None or c is None else round(c - r, 5)}
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xywh boxes ``a`` [n, 4] against ``b`` [m, 4]."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    a2, b2 = a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:]
    lo, hi = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a2, b2)
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    union = a[:, 2:].prod(1)[:, None] + b[:, 2:].prod(1)[None, :] - inter
    return inter / np.maximum(union, 1e-9)


def _match(dets: list[dict[str, Any]], truth: list[dict[str, Any]], iou: float) -> list[int]:
    """Greedy by score, same class, IoU >= ``iou``: for each detection the index of its box, or -1."""
    order = sorted(range(len(dets)), key=lambda k: -dets[k]["score"])
    taken: set[int] = set()
    hits = [-1] * len(dets)
    if not truth:
        return hits
    m = _iou(np.array([d["bbox"] for d in dets], float).reshape(-1, 4), np.array([t["bbox"] for t in truth], float))
    for k in order:
        best, best_iou = -1, iou
        for j, t in enumerate(truth):
            if j not in taken and t["category_id"] == dets[k]["category_id"] and m[k, j] >= best_iou:
                best, best_iou = j, m[k, j]
        if best >= 0:
            taken.add(best)
            hits[k] = best
    return hits


def image_changes(ground_truth: dict[str, Any], reference: list[dict[str, Any]], candidate: list[dict[str, Any]],
                  image_ids: Sequence[int], conf: float = 0.25, iou: float = 0.5) -> list[dict[str, Any]]:
    """Per image, both models' boxes at score >= ``conf`` against the ground truth and each other.

    Each entry: ``image_id``; per model (``fp32``, ``candidate``) ``correct`` / ``false`` boxes and
    ``missed`` objects (IoU >= ``iou``, same class; crowd regions neither count nor are missed);
    ``errors_delta`` (the candidate's false + missed minus FP32's); ``disagree`` (boxes of either
    model with no same-class box of the other at IoU >= ``iou``); ``verdict``: ``worse`` / ``better``
    (more / fewer errors) or ``different`` / ``same``. Sorted most changed first: worse before
    different before better, then by the size of the change.
    """
    ids = sorted({int(i) for i in image_ids})
    wanted = set(ids)
    by_image: dict[int, dict[str, list[dict[str, Any]]]] = {i: {"gt": [], "crowd": [], "fp32": [], "candidate": []}
                                                             for i in ids}
    for a in ground_truth.get("annotations", []):
        if int(a["image_id"]) in wanted:
            by_image[int(a["image_id"])]["crowd" if a.get("iscrowd", 0) else "gt"].append(a)
    for key, dets in (("fp32", reference), ("candidate", candidate)):
        for d in dets:
            if int(d["image_id"]) in wanted and d["score"] >= conf:
                by_image[int(d["image_id"])][key].append(d)
    out = []
    for i in ids:
        parts = by_image[i]
        entry: dict[str, Any] = {"image_id": i, "objects": len(parts["gt"])}
        for key in ("fp32", "candidate"):
            hits = _match(parts[key], parts["gt"], iou)
            in_crowd = _match([d for d, h in zip(parts[key], hits) if h < 0], parts["crowd"], iou) if parts["crowd"] else []
            crowd_hits = sum(h >= 0 for h in in_crowd)
            correct = sum(h >= 0 for h in hits)
            entry[key] = {"correct": correct, "false": len(hits) - correct - crowd_hits,
                          "missed": len(parts["gt"]) - correct}
        errors = {k: entry[k]["false"] + entry[k]["missed"] for k in ("fp32", "candidate")}
        entry["errors_delta"] = errors["candidate"] - errors["fp32"]
        a_to_b = _match(parts["fp32"], parts["candidate"], iou) if parts["candidate"] else [-1] * len(parts["fp32"])
        matched = sum(h >= 0 for h in a_to_b)
        entry["disagree"] = (len(parts["fp32"]) - matched) + (len(parts["candidate"]) - matched)
        entry["verdict"] = ("worse" if entry["errors_delta"] > 0 else "better" if entry["errors_delta"] < 0
                            else "different" if entry["disagree"] else "same")
        out.append(entry)
    rank = {"worse": 0, "different": 1, "better": 2, "same": 3}
    return sorted(out, key=lambda e: (rank[e["verdict"]], -abs(e["errors_delta"]), -e["disagree"], e["image_id"]))
