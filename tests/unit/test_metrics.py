import pytest
from tests.conftest import duplicated_images

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


def test_bootstrap_resamples_equal_the_public_evaluation_of_duplicated_images():
    from quantsweep.evaluate.bootstrap import bootstrap_map

    dets = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 31], "score": 0.9},
            {"image_id": 2, "category_id": 2, "bbox": [0, 0, 20, 20], "score": 0.8},
            {"image_id": 2, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.7}]
    samples = [[1, 2], [1, 1], [2, 2], [2, 1, 1]]
    boot = bootstrap_map(GT, {"m": dets}, [1, 2], samples=samples)["map50_95"]["m"]
    for sample, value in zip(samples, boot):
        gt, d, ids = duplicated_images(GT, dets, sample)
        assert value == pytest.approx(coco_map(gt, d, ids)["map50_95"], abs=1e-6), sample


def test_bootstrap_fails_loudly_when_faster_coco_eval_internals_move(monkeypatch):
    import faster_coco_eval

    from quantsweep.errors import QuantsweepError
    from quantsweep.evaluate.bootstrap import bootstrap_map

    monkeypatch.setattr(faster_coco_eval.COCOeval_faster, "evaluate", lambda self: None)  # no .ious any more
    dets = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50], "score": 0.9}]
    with pytest.raises(QuantsweepError, match="faster-coco-eval .* no longer has ious"):
        bootstrap_map(GT, {"m": dets}, [1, 2], resamples=2)


def test_per_class_ap_names_the_class_that_was_missed():
    from quantsweep.evaluate.metrics import per_class_ap

    dets = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50], "score": 0.9}]
    assert per_class_ap(GT, dets, [1, 2]) == {"1": pytest.approx(1.0), "2": pytest.approx(0.0)}
    assert per_class_ap(GT, dets, [1]) == {"1": pytest.approx(1.0)}  # class 2 has no ground truth there
    assert per_class_ap(GT, [], [1, 2]) == {"1": 0.0, "2": 0.0}
