import json

import numpy as np

from quantsweep.demo.synth import CLASSES, make_image, write_split


def test_same_arguments_give_same_image():
    a, b = make_image(0, "val", 7), make_image(0, "val", 7)
    assert np.array_equal(a.pixels, b.pixels)
    assert a.boxes == b.boxes and a.classes == b.classes


def test_splits_and_seeds_differ():
    assert not np.array_equal(make_image(0, "val", 0).pixels[:50, :50], make_image(0, "calib", 0).pixels[:50, :50])
    assert not np.array_equal(make_image(0, "val", 0).pixels[:50, :50], make_image(1, "val", 0).pixels[:50, :50])


def test_written_split_is_valid_coco(tmp_path):
    ann = json.loads(write_split(tmp_path / "val", "val", 15, yolo_labels=True).read_text())
    assert [c["id"] for c in ann["categories"]] == list(range(1, len(CLASSES) + 1))
    sizes = {im["id"]: (im["width"], im["height"]) for im in ann["images"]}
    assert len(sizes) == 15 and len(ann["annotations"]) > 15
    areas = []
    for a in ann["annotations"]:
        x, y, w, h = a["bbox"]
        W, H = sizes[a["image_id"]]
        assert 0 <= x and 0 <= y and x + w <= W + 1e-6 and y + h <= H + 1e-6 and w > 0 and h > 0
        assert a["area"] <= w * h + 1e-6
        areas.append(a["area"])
    assert min(areas) < 32 ** 2 < max(areas)  # small objects exist, and larger ones
    labels = sorted((tmp_path / "val" / "labels").glob("*.txt"))
    assert len(labels) == 15


def test_calib_ids_disjoint_from_val(tmp_path):
    val = json.loads(write_split(tmp_path / "v", "val", 5).read_text())
    cal = json.loads(write_split(tmp_path / "c", "calib", 5).read_text())
    assert not {i["id"] for i in val["images"]} & {i["id"] for i in cal["images"]}
