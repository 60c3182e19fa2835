"""What quantization changed: per-class damage (exact, with paired intervals), per size, per image."""

import numpy as np
import pytest
from tests.unit.test_bootstrap import _world

from quantsweep.evaluate.bootstrap import match_table, weighted_ap_per_class
from quantsweep.evaluate.changes import MIN_BOXES_FOR_INTERVAL, class_damage, image_changes, size_damage
from quantsweep.evaluate.metrics import per_class_ap


@pytest.mark.parametrize("seed", [0, 2])
def test_per_class_ap_under_unit_weights_is_cocoeval_s(seed):
    gt, dets = _world(seed, images=30)
    ids = [i["id"] for i in gt["images"]]
    table = match_table(gt, dets, ids)
    ours = weighted_ap_per_class(table, np.ones((1, len(ids))))[0]
    theirs = per_class_ap(gt, dets, ids)
    for ci, cat in enumerate(table.categories):
        if str(cat) in theirs:
            assert ours[ci] == pytest.approx(theirs[str(cat)], abs=2e-6), cat
        else:
            assert np.isnan(ours[ci])


def test_the_class_a_candidate_breaks_is_first_with_an_interval_below_zero():
    gt, dets = _world(1, images=60, cats=3)
    ids = [i["id"] for i in gt["images"]]
    broken = [d for d in dets if d["category_id"] != 2]  # loses every class-2 box
    rows = class_damage(gt, dets, broken, ids, resamples=300, seed=0)
    assert rows[0]["category_id"] == 2 and rows[0]["delta"] < -0.05
    assert rows[0]["boxes"] >= MIN_BOXES_FOR_INTERVAL and rows[0]["ci95"][1] < 0
    assert {r["category_id"]: r["delta"] for r in rows}[1] == 0.0  # untouched classes do not move
    same = class_damage(gt, dets, dets, ids, resamples=100)
    assert all(r["delta"] == 0 and (r["ci95"] is None or r["ci95"] == [0.0, 0.0]) for r in same)
    few = class_damage(gt, dets, broken, ids[:4], resamples=50)
    assert all(r["ci95"] is None for r in few if r["boxes"] < MIN_BOXES_FOR_INTERVAL)


def test_sizes_count_boxes_by_coco_area_and_give_deltas():
    gt, dets = _world(0, images=40)
    ids = [i["id"] for i in gt["images"]]
    sizes = size_damage(gt, dets, dets[: len(dets) // 2], ids)
    plain = [a for a in gt["annotations"] if not a["iscrowd"]]
    assert sum(s["boxes"] for s in sizes.values()) == len(plain)
    assert sizes["small"]["boxes"] == sum(a["area"] < 32 ** 2 for a in plain)
    assert any(s["delta"] is not None and s["delta"] < 0 for s in sizes.values())


def _box(image, cat, x, score=None):
    d = {"image_id": image, "category_id": cat, "bbox": [x, 10.0, 30.0, 30.0]}
    return {**d, "score": score} if score is not None else {**d, "id": x + 1000 * image, "area": 900.0, "iscrowd": 0}


def test_image_changes_count_correct_false_and_missed_boxes_and_rank_worse_first():
    gt = {"images": [{"id": i} for i in (1, 2, 3)], "categories": [{"id": 1}, {"id": 2}],
          "annotations": [_box(1, 1, 0), _box(1, 2, 100), _box(2, 1, 0), _box(3, 1, 0)]}
    fp32 = [_box(1, 1, 0, 0.9), _box(1, 2, 101, 0.8), _box(2, 1, 60, 0.7), _box(3, 1, 0, 0.9)]
    cand = [_box(1, 1, 0, 0.9), _box(1, 1, 150, 0.6),  # image 1: misses the class-2 box, adds a false one
            _box(2, 1, 1, 0.7),  # image 2: finds the object FP32 missed, and drops FP32's false box
            _box(3, 1, 0, 0.85), _box(3, 2, 0, 0.1)]  # image 3: same boxes above the threshold
    out = {e["image_id"]: e for e in image_changes(gt, fp32, cand, [1, 2, 3], conf=0.25)}
    assert out[1]["fp32"] == {"correct": 2, "false": 0, "missed": 0}
    assert out[1]["candidate"] == {"correct": 1, "false": 1, "missed": 1}
    assert (out[1]["errors_delta"], out[1]["disagree"], out[1]["verdict"]) == (2, 2, "worse")
    assert (out[2]["errors_delta"], out[2]["verdict"]) == (-2, "better")
    assert (out[3]["verdict"], out[3]["disagree"]) == ("same", 0)
    assert [e["image_id"] for e in image_changes(gt, fp32, cand, [1, 2, 3])] == [1, 2, 3]
