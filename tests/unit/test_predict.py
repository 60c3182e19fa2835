"""``quantsweep predict`` on real image files, and the README's Python snippet giving the same boxes."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from quantsweep.cli.main import main
from quantsweep.evaluate.photos import Detector, snippet


def _first_images(demo_dir, n):
    return sorted((demo_dir / "val" / "images").iterdir())[:n]


def test_predict_draws_boxes_and_writes_coco_detections_in_image_pixels(demo_dir, demo_val, tmp_path, capsys):
    import cv2

    images = _first_images(demo_dir, 2)
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(demo_dir / "model.onnx"), "--images", *map(str, images),
                 "--out", str(out)]) == 0
    result = json.loads((out / "detections.json").read_text())
    assert [im["file"] for im in result["images"]] == [str(p) for p in images]
    for im in result["images"]:
        drawn = cv2.imread(str(out / im["drawn"]))
        assert drawn.shape[:2] == (im["height"], im["width"])  # drawn on the original image, not the letterbox
    dets = result["detections"]
    assert dets and all(d["score"] >= 0.25 for d in dets) and result["layout"] == "e2e"
    # the boxes are the evaluation's boxes: each matches a ground-truth box of its image at IoU > 0.5 mostly
    by_file = {im["file_name"]: im["id"] for im in demo_val.coco["images"]}
    gts = {}
    for a in demo_val.coco["annotations"]:
        gts.setdefault(a["image_id"], []).append(a["bbox"])

    def iou(a, b):
        ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
        iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
        return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)

    files = {im["id"]: im["file"] for im in result["images"]}
    hits = [max(iou(d["bbox"], g) for g in gts[by_file[files[d["image_id"]].rsplit("/", 1)[1]]]) > 0.5 for d in dets]
    assert sum(hits) / len(hits) > 0.7, hits
    assert "boxes on 2 images" in capsys.readouterr().out
    # a finished result is never overwritten
    assert main(["predict", "--model", str(demo_dir / "model.onnx"), "--images", str(images[0]), "--out", str(out)]) == 2


@pytest.mark.parametrize("fmt", ["onnx", "openvino-ir"])
def test_the_readme_snippet_prints_the_boxes_predict_finds(fmt, demo_dir, tmp_path):
    image = _first_images(demo_dir, 1)[0]
    model = demo_dir / "model.onnx"
    if fmt == "openvino-ir":
        ov = pytest.importorskip("openvino")
        model = tmp_path / "model.xml"
        ov.save_model(ov.convert_model(str(demo_dir / "model.onnx")), str(model))
    det = Detector(model)
    assert det.session.provider.startswith("OpenVINO") == (fmt == "openvino-ir")
    import cv2

    boxes, scores, classes = det(cv2.imread(str(image)))
    assert len(scores) > 0
    code = snippet(model, image, str(det.layout), det.hw)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = [re.match(r"(\d+) ([\d.]+) \[(.*)\]", line).groups() for line in done.stdout.strip().splitlines()]
    assert len(printed) == len(scores)
    for (c, s, b), box, score, cls in zip(printed, boxes, scores, classes):
        assert int(c) == int(cls) and float(s) == pytest.approx(float(score), abs=1e-3)
        assert [float(v) for v in b.split(",")] == pytest.approx([float(v) for v in box], abs=0.06)
