"""Paired bootstrap of mAP50-95 over images: how sure a ΔmAP is — thousands of exact resamples a second.

A resample of ``n`` images drawn with replacement is a vector of integer *weights* (how many
times each image was drawn; a drawn-twice image counts as two images, exactly as COCOeval scores
a ground truth in which that image appears twice). COCOeval's matching of detections to ground
truth is per image, so it does not change under resampling; only the accumulation does. So:

1. faster-coco-eval computes each model's IoUs once (:class:`MatchTable`); COCOeval's greedy
   matching runs once per image and category, giving every detection a true/false-positive flag
   per IoU threshold and its rank in the category's score order.
2. For a resample, only the true positives can set the precision envelope (a false positive only
   lowers precision after it). At each true positive, the weighted count of true positives up to
   it is a cumulative sum, and the weighted count of false positives before it is a matrix product
   ``weights @ F`` (``F[i, j]``: false positives of image ``i`` ranked above true positive ``j``).
   Precision, the envelope and COCO's 101-point recall lookup then run vectorised over resamples.

The result equals COCOeval on duplicated-image ground truth (tests pin it) whenever no two
images' detections of a class share a score; with such ties COCOeval's order depends on the order
the images are listed in, here the ascending image ids.

Example:
    >>> boot = bootstrap_map(ds.coco, {"fp32": dets_a, "int8": dets_b}, ids, resamples=2000)  # doctest: +SKIP
    >>> delta_interval(boot["map50_95"]["int8"], boot["map50_95"]["fp32"])  # doctest: +SKIP
    (-0.0121, 0.0032)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from quantsweep.errors import QuantsweepError

__all__ = ["MatchTable", "bootstrap_map", "delta_interval", "match_table", "resample_weights", "weighted_ap_per_class",
           "weighted_map"]

log = logging.getLogger(__name__)

_INTERNALS = ("ious", "gt_dataset", "dt_dataset")
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
MAX_DETS = 100
_CHUNK = 32  # resamples per vectorised block: small enough that a block's arrays stay in cache


def _moved(missing: list[str]) -> NoReturn:
    from importlib.metadata import version

    raise QuantsweepError(
        f"faster-coco-eval {version('faster-coco-eval')} no longer has {', '.join(missing)}, which the "
        "paired bootstrap re-uses to score resampled images",
        "install the faster-coco-eval version quantsweep pins (see pyproject.toml)")


@dataclass(frozen=True)
class MatchTable:
    """One model's COCOeval matching on a set of images, ready to be re-accumulated under any weights.

    Attributes:
        image_ids: the images, ascending; weights are indexed like this tuple.
        categories: the category ids (all of the ground truth's categories).
        gt_counts: ``[category, image]`` non-ignored ground-truth boxes.
        det_category, det_image, det_rank: per detection (kept after COCO's 100-per-image cap):
            its category index, image index and rank in its category's score order (0 = first).
        det_tp, det_fp: ``[detection, threshold]`` true/false positive at each IoU threshold
            (a detection matched to an ignored box is neither).
    """

    image_ids: tuple[int, ...]
    categories: tuple[int, ...]
    gt_counts: np.ndarray
    det_category: np.ndarray
    det_image: np.ndarray
    det_rank: np.ndarray
    det_tp: np.ndarray
    det_fp: np.ndarray

    @functools.cached_property
    def terms(self) -> _Terms:
        """The resampling terms (computed once per table)."""
        return _terms(self)

    def subset(self, image_ids: Sequence[int]) -> MatchTable:
        """The same matching restricted to ``image_ids`` (each must be in this table)."""
        index = {i: k for k, i in enumerate(self.image_ids)}
        chosen = sorted({int(i) for i in image_ids})
        cols = np.array([index[i] for i in chosen], dtype=np.int64)
        remap = np.full(len(self.image_ids), -1, dtype=np.int64)
        remap[cols] = np.arange(len(cols))
        keep = remap[self.det_image] >= 0
        # ranks stay in the same relative order: re-rank within each category
        rank = self.det_rank[keep]
        cat = self.det_category[keep]
        order = np.lexsort((rank, cat))
        new_rank = np.empty(len(order), dtype=np.int64)
        starts = np.searchsorted(cat[order], np.arange(len(self.categories)))
        new_rank[order] = np.arange(len(order)) - np.repeat(starts, np.diff(np.append(starts, len(order))))
        return MatchTable(tuple(chosen), self.categories, self.gt_counts[:, cols], cat,
                          remap[self.det_image[keep]], new_rank, self.det_tp[keep], self.det_fp[keep])


def _match_one(ious: np.ndarray, gt_ignore: np.ndarray, crowd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's greedy matching of one image and category, for all IoU thresholds at once.

    ``ious``: [detections sorted by score, ground truth]. Returns ``(matched, ignored)`` of shape
    ``[detection, threshold]``: matched to some box, and matched to an ignored box.
    """
    d_count, g_count = ious.shape
    t_count = len(IOU_THRESHOLDS)
    matched = np.zeros((d_count, t_count), bool)
    ignored = np.zeros((d_count, t_count), bool)
    if d_count == 0 or g_count == 0:
        return matched, ignored
    order = np.argsort(gt_ignore, kind="mergesort")  # COCOeval sorts ignored boxes last
    ious, gt_ignore, crowd = ious[:, order], gt_ignore[order], crowd[order]
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]
    taken = np.zeros((t_count, g_count), bool)
    rows = np.arange(t_count)
    for d in np.flatnonzero(ious.max(axis=1) >= thresholds[0, 0]):
        ok = (ious[d][None, :] >= thresholds) & (~taken | crowd[None, :])
        best = np.full(t_count, -1)
        for group in (~gt_ignore, gt_ignore):  # a regular box first; an ignored one only if none
            cand = ok & group[None, :]
            score = np.where(cand, ious[d][None, :], -1.0)
            # the last box of the highest IoU wins ties, as in COCOeval's loop
            last = g_count - 1 - np.argmax(score[:, ::-1], axis=1)
            hit = cand.any(axis=1) & (best < 0)
            best[hit] = last[hit]
        hit = best >= 0
        matched[d, hit] = True
        ignored[d, hit] = gt_ignore[best[hit]]
        taken[rows[hit], best[hit]] = True
    return matched, ignored


def _gt_coco(ground_truth: dict[str, Any], ids: Sequence[int]) -> Any:
    """A faster-coco-eval COCO of ``ground_truth`` restricted to ``ids`` (shallow copies: nothing shared is edited)."""
    from faster_coco_eval import COCO

    wanted = set(int(i) for i in ids)
    subset = {**ground_truth,
              "images": [dict(im) for im in ground_truth.get("images", []) if int(im["id"]) in wanted],
              "annotations": [dict(a) for a in ground_truth.get("annotations", []) if int(a["image_id"]) in wanted],
              "categories": [dict(c) for c in ground_truth.get("categories", [])]}
    return COCO(subset, print_function=log.debug)


def match_table(ground_truth: dict[str, Any], detections: list[dict[str, Any]], image_ids: Sequence[int],
                coco: Any = None) -> MatchTable:
    """Match ``detections`` to ``ground_truth`` on ``image_ids`` once (faster-coco-eval's IoUs).

    Args:
        coco: an already built ``faster_coco_eval.COCO`` of ``ground_truth`` (saves re-indexing).
    """
    from faster_coco_eval import COCOeval_faster

    ids = sorted({int(i) for i in image_ids})
    gt = coco if coco is not None else _gt_coco(ground_truth, ids)
    cats = tuple(sorted(int(c) for c in gt.getCatIds()))
    gt_counts = np.zeros((len(cats), len(ids)), np.int64)
    rows: list[tuple[int, int, float, np.ndarray, np.ndarray]] = []
    wanted = set(ids)  # shallow copies: loadRes adds fields to each record, it never edits the boxes
    detections = [dict(d) for d in detections if int(d["image_id"]) in wanted]
    if detections:
        ev = COCOeval_faster(gt, gt.loadRes(detections), "bbox", print_function=log.debug)
        ev.params.imgIds = ids
        ev.evaluate()
        missing = [a for a in _INTERNALS if not getattr(ev, a, None)]  # evaluate() fills each of them
        if missing:
            _moved(missing)
        gts_all = ev.gt_dataset.get_instances(ids, list(cats), True)
        dts_all = ev.dt_dataset.get_instances(ids, list(cats), True)
    for ii, img in enumerate(ids):
        for ci, cat in enumerate(cats):
            if detections:
                gts, dts = gts_all[ii][ci], dts_all[ii][ci]
            else:
                gts, dts = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=[img], catIds=[cat]))], []
            ign = np.array([bool(g.get("ignore", g.get("iscrowd", 0))) for g in gts], bool)
            gt_counts[ci, ii] = int((~ign).sum())
            if not dts:
                continue
            order = np.argsort([-d["score"] for d in dts], kind="mergesort")[:MAX_DETS]
            scores = np.array([dts[k]["score"] for k in order], float)
            try:
                ious = np.asarray(ev.ious[img, cat], float) if gts else np.zeros((len(order), 0))
            except (KeyError, TypeError):
                _moved(["ious[(image, category)] after evaluate()"])
            if ious.size and ious.shape != (len(order), len(gts)):
                _moved([f"ious[{img}, {cat}] of shape {(len(order), len(gts))}"])
            crowd = np.array([bool(g.get("iscrowd", 0)) for g in gts], bool)
            matched, ignored = _match_one(ious.reshape(len(order), len(gts)), ign, crowd)
            rows.append((ci, ii, 0.0, scores, np.stack([matched & ~ignored, ~matched], axis=-1)))
    if not rows:
        empty = np.zeros(0, np.int64)
        t = len(IOU_THRESHOLDS)
        return MatchTable(tuple(ids), cats, gt_counts, empty, empty, empty, np.zeros((0, t), bool),
                          np.zeros((0, t), bool))
    det_cat = np.concatenate([np.full(len(r[3]), r[0]) for r in rows])
    det_img = np.concatenate([np.full(len(r[3]), r[1]) for r in rows])
    scores = np.concatenate([r[3] for r in rows])
    flags = np.concatenate([r[4] for r in rows])
    # COCOeval's accumulate: per category, images in id order, then a stable sort by score
    order = np.lexsort((np.arange(len(scores)), -scores, det_cat))
    rank = np.empty(len(order), np.int64)
    starts = np.searchsorted(det_cat[order], np.arange(len(cats)))
    rank[order] = np.arange(len(order)) - np.repeat(starts, np.diff(np.append(starts, len(order))))
    return MatchTable(tuple(ids), cats, gt_counts, det_cat, det_img, rank, flags[..., 0], flags[..., 1])


@dataclass(frozen=True)
class _Terms:
    """Every (category, IoU threshold) segment's true positives, concatenated in score order."""

    tp_image: np.ndarray  # [columns] the image of each true positive
    fp_before: np.ndarray  # [images, columns] false positives of that image ranked above it (float32)
    category: np.ndarray  # [columns] category index of the column's segment
    segment: np.ndarray  # [columns] segment index (category-major, threshold-minor)
    starts: np.ndarray  # [segments] first column of each segment


def _terms(table: MatchTable) -> _Terms:
    n_img = len(table.image_ids)
    tp_image, fp_before, category, segment = [], [], [], []
    for ci in range(len(table.categories)):
        mask = table.det_category == ci
        order = np.argsort(table.det_rank[mask])
        img, tp, fp = table.det_image[mask][order], table.det_tp[mask][order], table.det_fp[mask][order]
        for t in range(len(IOU_THRESHOLDS)):
            tp_pos, fp_pos = np.flatnonzero(tp[:, t]), np.flatnonzero(fp[:, t])
            # each false positive counts for every true positive ranked below it: drop it into the
            # bucket of the first true positive after it, per image, then accumulate along the ranks
            bucket = np.searchsorted(tp_pos, fp_pos)
            inside = bucket < len(tp_pos)  # false positives after the last true positive count for none
            counts = np.bincount(img[fp_pos[inside]] * len(tp_pos) + bucket[inside],
                                 minlength=n_img * len(tp_pos)).reshape(n_img, len(tp_pos))
            fp_before.append(np.cumsum(counts, axis=1))
            tp_image.append(img[tp_pos])
            category.append(np.full(len(tp_pos), ci))
            segment.append(np.full(len(tp_pos), ci * len(IOU_THRESHOLDS) + t))
    seg = np.concatenate(segment) if segment else np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]]) if len(seg) else np.zeros(0, np.int64)
    return _Terms(np.concatenate(tp_image) if tp_image else np.zeros(0, np.int64),
                  np.concatenate(fp_before, axis=1).astype(np.float32) if fp_before else np.zeros((n_img, 0), np.float32),
                  np.concatenate(category) if category else np.zeros(0, np.int64), seg, starts)


# recall thresholds with -inf / +inf on either side, to count "thresholds <= recall" exactly
_THR_PAD = np.concatenate([[-np.inf], RECALL_THRESHOLDS, [np.inf]])


def _reached(recall: np.ndarray) -> np.ndarray:
    """How many of COCO's recall thresholds are <= each recall (COCOeval's searchsorted, vectorised)."""
    n = len(RECALL_THRESHOLDS)
    b = np.clip((recall * (n - 1)).astype(np.int64) + 1, 0, n)
    b += _THR_PAD[b + 1] <= recall  # one step of float error either way, corrected against the thresholds
    b -= _THR_PAD[b] > recall
    return b


def _category_sums(table: MatchTable, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per resample and category: the sum of COCO's interpolated precision over the 10 IoU thresholds
    x 101 recall thresholds, and whether the resample holds ground truth of that category.

    For each resample and (category, IoU threshold), COCO's precision at recall threshold ``k`` is
    the precision envelope at the first true positive whose recall reaches ``k``; so the sum over
    the 101 thresholds is ``sum_j envelope[j] * (thresholds first reached at j)``.
    """
    w = np.atleast_2d(np.asarray(weights, np.float64))
    if w.shape[1] != len(table.image_ids):
        raise ValueError(f"weights have {w.shape[1]} columns for {len(table.image_ids)} images")
    terms = table.terms
    n_seg = len(IOU_THRESHOLDS) * len(table.categories)
    sums = np.zeros((len(w), len(table.categories)))
    npig = w @ table.gt_counts.T.astype(np.float64)  # [resamples, categories] ground-truth boxes
    has_gt = npig > 0
    cols = len(terms.segment)
    if not cols:
        return sums, has_gt
    # later segments get smaller offsets, so a reversed running max never crosses a segment
    offset = 2.0 * (n_seg - terms.segment)
    seg_starts = np.r_[terms.starts, cols]
    base_index = np.repeat(np.arange(len(terms.starts)), np.diff(seg_starts))
    cat_starts = np.flatnonzero(np.r_[True, terms.category[1:] != terms.category[:-1]])
    cats_present = terms.category[cat_starts]
    fp_before = terms.fp_before  # integer counts, float32: exact below 2**24
    for lo in range(0, len(w), _CHUNK):
        wc = w[lo:lo + _CHUNK]
        tp_cum = np.cumsum(wc[:, terms.tp_image], axis=1)
        before = np.concatenate([np.zeros((len(wc), 1)), tp_cum], axis=1)[:, terms.starts]
        tp_cum -= before[:, base_index]
        fp_cum = (wc.astype(np.float32) @ fp_before).astype(np.float64)
        fp_cum += tp_cum
        fp_cum += np.spacing(1)
        precision = np.divide(tp_cum, fp_cum, out=fp_cum)
        precision += offset
        envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
        envelope -= offset
        denom = npig[lo:lo + _CHUNK][:, terms.category]
        recall = np.divide(tp_cum, denom, out=tp_cum, where=denom > 0)
        recall[denom <= 0] = 0.0
        reached = _reached(recall)
        newly = np.diff(reached, axis=1, prepend=0)
        newly[:, terms.starts] = reached[:, terms.starts]
        envelope *= newly
        sums[lo:lo + _CHUNK, cats_present] = np.add.reduceat(envelope, cat_starts, axis=1)
    return sums, has_gt


def weighted_map(table: MatchTable, weights: np.ndarray) -> np.ndarray:
    """mAP50-95 (COCO: area all, 100 detections) under each row of image ``weights`` [resamples, images].

    A weight of 2 counts an image twice, 0 leaves it out; all-ones rows give plain COCOeval.
    """
    sums, has_gt = _category_sums(table, weights)
    valid = has_gt.sum(axis=1)
    total = (sums * has_gt).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid > 0, total / (valid * len(IOU_THRESHOLDS) * len(RECALL_THRESHOLDS)), 0.0)


def weighted_ap_per_class(table: MatchTable, weights: np.ndarray) -> np.ndarray:
    """AP50-95 of each category [resamples, categories] under image ``weights``; NaN where a resample
    holds no ground truth of that category. All-ones weights give COCOeval's per-class AP."""
    sums, has_gt = _category_sums(table, weights)
    return np.where(has_gt, sums / (len(IOU_THRESHOLDS) * len(RECALL_THRESHOLDS)), np.nan)


def resample_weights(n_images: int, resamples: int, seed: int = 0) -> np.ndarray:
    """``resamples`` draws of ``n_images`` images with replacement, as counts [resamples, images]."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(resamples, n_images))
    offsets = (np.arange(resamples) * n_images)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n_images).reshape(resamples, n_images)


def _sample_weights(ids: list[int], samples: Sequence[Sequence[int]]) -> np.ndarray:
    index = {i: k for k, i in enumerate(ids)}
    w = np.zeros((len(samples), len(ids)), np.int64)
    for r, sample in enumerate(samples):
        for i in sample:
            w[r, index[int(i)]] += 1
    return w


def bootstrap_map(ground_truth: dict[str, Any], detections: dict[str, list[dict[str, Any]]],
                  image_ids: Sequence[int], resamples: int = 2000, seed: int = 0,
                  samples: Sequence[Sequence[int]] | None = None) -> dict[str, Any]:
    """mAP50-95 of every model on the same resampled image multisets (paired).

    Args:
        ground_truth: COCO instances dict (not modified).
        detections: model name -> its COCO detections on ``image_ids``.
        image_ids: the evaluated subset.
        resamples: multisets drawn with replacement (``seed`` fixes them; they depend only on the
            number of images and the seed, so two calls on the same ids are paired).
        samples: explicit multisets of ids instead of drawing them (tests).

    Returns:
        ``{"map50_95": {name: [value per resample]}, "resamples": n, "seed": seed}``.
    """
    ids = sorted({int(i) for i in image_ids})
    weights = (resample_weights(len(ids), resamples, seed) if samples is None else _sample_weights(ids, samples))
    gt = _gt_coco(ground_truth, ids)
    out: dict[str, list[float]] = {}
    for name, dets in detections.items():
        values = weighted_map(match_table(ground_truth, dets, ids, coco=gt), weights)
        out[name] = [round(float(v), 10) for v in values]
    return {"map50_95": out, "resamples": len(weights), "seed": seed}


def delta_interval(model: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The two-sided ``level`` percentile interval of the paired differences ``model - reference``."""
    diffs = np.asarray(model) - np.asarray(reference)
    tail = 100 * (1 - level) / 2
    return round(float(np.percentile(diffs, tail)), 5), round(float(np.percentile(diffs, 100 - tail)), 5)
