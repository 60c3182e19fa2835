"""The fast paired bootstrap is exact: it equals COCOeval on duplicated-image ground truth."""

import numpy as np
import pytest
from tests.conftest import duplicated_images

from quantsweep.evaluate.bootstrap import bootstrap_map, match_table, resample_weights, weighted_map
from quantsweep.evaluate.metrics import coco_map


def _world(seed=0, images=14, cats=3):
    """Random ground truth (some crowd boxes, some images without objects) and noisy detections."""
    rng = np.random.default_rng(seed)
    gt = {"images": [{"id": 10 + i, "width": 200, "height": 200} for i in range(images)],
          "categories": [{"id": c + 1, "name": f"c{c}"} for c in range(cats)], "annotations": []}
    dets, score = [], iter(rng.permutation(10_000) / 10_000 + 1e-5)  # distinct scores
    for img in gt["images"]:
        for _ in range(int(rng.integers(0, 5))):
            x, y, w, h = (float(v) for v in (*rng.uniform(0, 120, 2), *rng.uniform(8, 70, 2)))
            cat = int(rng.integers(1, cats + 1))
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": img["id"], "category_id": cat,
                                      "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(rng.random() < 0.1)})
            for _ in range(int(rng.integers(0, 3))):  # near-duplicates: matched at some IoUs, not others
                jit = rng.normal(0, 0.12, 4) * [w, h, w, h]
                dets.append({"image_id": img["id"], "category_id": cat if rng.random() < 0.85 else 1 + cat % cats,
                             "bbox": [x + jit[0], y + jit[1], max(w + jit[2], 2), max(h + jit[3], 2)],
                             "score": float(next(score))})
        for _ in range(int(rng.integers(0, 3))):  # background false positives
            dets.append({"image_id": img["id"], "category_id": int(rng.integers(1, cats + 1)),
                         "bbox": [*(float(v) for v in rng.uniform(0, 150, 2)), 20.0, 20.0], "score": float(next(score))})
    return gt, dets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_resample_equals_cocoeval_on_duplicated_images(seed):
    gt, dets = _world(seed)
    ids = [i["id"] for i in gt["images"]]
    rng = np.random.default_rng(seed)
    samples = [[int(i) for i in rng.choice(ids, size=len(ids))] for _ in range(12)]
    boot = bootstrap_map(gt, {"m": dets}, ids, samples=samples)["map50_95"]["m"]
    for sample, value in zip(samples, boot):
        truth = coco_map(*duplicated_images(gt, dets, sample))["map50_95"]
        assert value == pytest.approx(truth, abs=2e-6), sample  # coco_map rounds to 6 digits


@pytest.mark.parametrize("seed", [0, 3])
def test_unit_weights_give_plain_cocoeval_and_a_subset_equals_its_own_matching(seed):
    gt, dets = _world(seed, images=20)
    ids = [i["id"] for i in gt["images"]]
    table = match_table(gt, dets, ids)
    assert weighted_map(table, np.ones(len(ids)))[0] == pytest.approx(coco_map(gt, dets, ids)["map50_95"], abs=1e-6)
    part = ids[::3]
    w = resample_weights(len(part), 50, seed)
    np.testing.assert_allclose(weighted_map(table.subset(part), w), weighted_map(match_table(gt, dets, part), w),
                               atol=1e-12)
    zero_out = np.zeros((50, len(ids)))
    zero_out[:, [ids.index(i) for i in part]] = w  # a weight of 0 leaves an image out
    np.testing.assert_allclose(weighted_map(table, zero_out), weighted_map(table.subset(part), w), atol=1e-12)


def test_resamples_are_paired_and_seeded():
    gt, dets = _world(4)
    ids = [i["id"] for i in gt["images"]]
    a = bootstrap_map(gt, {"x": dets, "y": dets[::2]}, ids, resamples=300, seed=7)
    b = bootstrap_map(gt, {"y": dets[::2]}, ids, resamples=300, seed=7)
    assert a["map50_95"]["y"] == b["map50_95"]["y"] and a["resamples"] == 300
    assert np.std(a["map50_95"]["x"]) > 0
    w = resample_weights(9, 400, 1)
    assert w.shape == (400, 9) and (w.sum(axis=1) == 9).all()
    assert bootstrap_map(gt, {"none": []}, ids, resamples=5)["map50_95"]["none"] == [0.0] * 5


def test_a_population_drawn_with_replacement_has_its_own_map_as_the_exact_truth():
    """The coverage study's world (benchmarks/coverage.py): studies draw images with replacement from a
    population, so a study of n images weighs each population image by its draw count. Scaling every
    weight alike leaves mAP unchanged, so the population's own mAP is the truth such studies estimate:
    exactly, not up to a finite-population correction."""
    gt, dets = _world(5, images=24)
    ids = [i["id"] for i in gt["images"]]
    table = match_table(gt, dets, ids)
    truth = coco_map(gt, dets, ids)["map50_95"]
    for k in (1, 3, 40):
        assert weighted_map(table, np.full(len(ids), float(k)))[0] == pytest.approx(truth, abs=1e-6)
    # and a large study converges to it (sampling error ~ 1/sqrt(n)), while a small one need not
    rng = np.random.default_rng(0)
    big = np.bincount(rng.integers(0, len(ids), 200_000), minlength=len(ids)).astype(float)
    assert weighted_map(table, big)[0] == pytest.approx(truth, abs=5e-3)
