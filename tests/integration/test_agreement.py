"""The evaluator's proof: quantsweep's FP32 mAP equals Ultralytics' own validator on the same images."""

import pytest

from quantsweep.data.coco import select_ids
from quantsweep.demo import DEMO_IMGSZ
from quantsweep.evaluate.run import EvalSettings, evaluate
from quantsweep.model.export import export_onnx

pytestmark = pytest.mark.slow  # Ultralytics' own validator: tens of seconds each

N_IMAGES = 100


@pytest.fixture(scope="module")
def ultralytics_map(demo_dir, demo_val, tmp_path_factory):
    """Ultralytics ``model.val()`` on the first 100 val ids, conf 0.001, iou 0.7, imgsz 320."""
    from quantsweep.demo.synth import CLASSES
    from quantsweep.model.checkpoint import load_yolo

    work = tmp_path_factory.mktemp("ultra")
    ids = select_ids(demo_val, N_IMAGES)
    listing = work / "subset.txt"
    listing.write_text("".join(f"{demo_val.images_dir / demo_val.images[i]['file_name']}\n" for i in ids))
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASSES))
    yaml = work / "data.yaml"
    yaml.write_text(f"path: {work}\ntrain: {listing}\nval: {listing}\nnames:\n{names}\n")
    model = load_yolo(demo_dir / "model.pt")
    res = model.val(data=str(yaml), imgsz=DEMO_IMGSZ, batch=16, conf=0.001, iou=0.7, device="cpu",
                    plots=False, save_json=False, half=False, rect=False, workers=0,
                    project=str(work), name="val", verbose=False)
    return float(res.box.map), float(res.box.map50)


def test_raw_head_agrees_with_ultralytics_val(demo_dir, demo_val, tmp_path, ultralytics_map):
    raw = export_onnx(demo_dir / "model.pt", tmp_path / "raw.onnx", imgsz=DEMO_IMGSZ, head="raw")
    ours = evaluate(raw, demo_val, select_ids(demo_val, N_IMAGES), EvalSettings(provider="cpu"))
    theirs_map, theirs_map50 = ultralytics_map
    print(f"mAP50-95 quantsweep {ours['map50_95']:.4f} vs ultralytics {theirs_map:.4f}; "
          f"mAP50 {ours['map50']:.4f} vs {theirs_map50:.4f}")
    assert ours["map50_95"] == pytest.approx(theirs_map, abs=0.01)
    assert ours["map50"] == pytest.approx(theirs_map50, abs=0.01)


def test_demo_model_meets_the_accuracy_floor(demo_dir, demo_val):
    m = evaluate(demo_dir / "model.onnx", demo_val, select_ids(demo_val, N_IMAGES), EvalSettings(provider="cpu"))
    assert m["num_images"] == N_IMAGES
    assert m["map50_95"] >= 0.5, m["map50_95"]
