import pytest

from quantsweep.evaluate.metrics import METRIC_KEYS, coco_map

GT = {
    "images": [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50], "area": 2500, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0, 0, 20, 20], "area": 400, "iscrowd": 0},
    ],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
}


def test_perfect_detections_score_one():
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
            for a in GT["annotations"]]
    m = coco_map(GT, dets, [1, 2])
    assert m["map50_95"] == pytest.approx(1.0) and m["map50"] == pytest.approx(1.0)
    assert m["map_large"] is None  # no large objects in this ground truth
    assert set(m) == set(METRIC_KEYS)


def test_golden_partial_overlap():
    # IoU of [10,10,50,50] vs [10,10,50,31] = 0.62: matches at IoU 0.50, 0.55, 0.60 only.
    dets = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 31], "score": 0.9}]
    m = coco_map(GT, dets, [1])
    assert m["map50"] == pytest.approx(1.0)
    assert m["map75"] == pytest.approx(0.0)
    assert m["map50_95"] == pytest.approx(0.3)


def test_wrong_class_and_empty():
    dets = [{"image_id": 1, "category_id": 2, "bbox": [10, 10, 50, 50], "score": 0.9}]
    assert coco_map(GT, dets, [1, 2])["map50_95"] == pytest.approx(0.0)
    assert coco_map(GT, [], [1, 2])["map50_95"] == 0.0


def test_subset_restricts_images():
    dets = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50], "score": 0.9}]
    assert coco_map(GT, dets, [1])["map50_95"] == pytest.approx(1.0)
    assert coco_map(GT, dets, [1, 2])["map50_95"] == pytest.approx(0.5)  # class 2 missed
