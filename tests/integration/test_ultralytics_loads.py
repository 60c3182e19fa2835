"""recommended/ as Ultralytics loads it: its own validator runs quantsweep's IR and ONNX as written,
and scores them as quantsweep does. The two validators compute AP their own ways (Ultralytics
integrates its precision envelope, COCOeval sums 101 points), which moves mAP50-95 by up to ~0.01
on 60 images for the FP32 model itself; so the test asserts that the quantized file's offset is
FP32's offset (within 0.004): a file Ultralytics loaded or preprocessed differently would move it."""

from __future__ import annotations

import shutil

import pytest

from quantsweep.data.calibration import CalibSet
from quantsweep.data.coco import select_ids
from quantsweep.deploy.recommended import hand_back
from quantsweep.evaluate.run import EvalSettings, evaluate
from quantsweep.quantize.build import materialize
from quantsweep.results import Decision, Row
from quantsweep.schemes import BuildContext, make_scheme

pytestmark = pytest.mark.slow  # two builds and four validations: ~1 min

IMAGES = 60


@pytest.fixture(scope="module")
def candidates(tmp_path_factory, demo_dir, demo_val):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    run = tmp_path_factory.mktemp("run")
    (run / "candidates").mkdir()
    shutil.copyfile(demo_dir / "model.onnx", run / "candidates" / "fp32.onnx")
    calib = CalibSet.from_folder(demo_dir / "calib" / "images", 16, (320, 320))
    ctx = BuildContext(run / "candidates" / "fp32.onnx", demo_dir / "model.pt", calib, run / "work")
    for scheme in ("int8-ov", "int8-qdq"):
        materialize(make_scheme(scheme), ctx, run / "candidates")
    return run


def _ultralytics_map(model, demo_val, ids, tmp_path) -> float:
    from quantsweep.offline import import_ultralytics

    listing = tmp_path / "val.txt"
    listing.write_text("".join(f"{demo_val.path(i)}\n" for i in ids))
    names = {int(c["id"]) - min(int(c["id"]) for c in demo_val.coco["categories"]): c["name"]
             for c in demo_val.coco["categories"]}
    data = tmp_path / "data.yaml"
    data.write_text(f"path: {tmp_path}\ntrain: {listing}\nval: {listing}\nnames: {names}\n")
    metrics = import_ultralytics().YOLO(str(model), task="detect").val(
        data=str(data), imgsz=320, batch=1, device="cpu", plots=False, verbose=False, project=str(tmp_path / "uv"),
        workers=0)
    return float(metrics.box.map)


@pytest.fixture(scope="module")
def fp32_offset(candidates, demo_val, tmp_path_factory) -> float:
    """Ultralytics' mAP50-95 minus quantsweep's, for the FP32 model on the same images."""
    ids = select_ids(demo_val, IMAGES)
    ours = evaluate(candidates / "candidates" / "fp32.onnx", demo_val, ids, EvalSettings(provider="cpu"))["map50_95"]
    return _ultralytics_map(candidates / "candidates" / "fp32.onnx", demo_val, ids,
                            tmp_path_factory.mktemp("fp32-ultralytics")) - ours


def _row(name: str, backend: str) -> Row:
    return Row(candidate=name, scheme=name, precision="int8", k=0, backend=backend, batch=1, label="accelerated",
               latency_p50_ms=1.0, speedup_vs_fp32=1.5)


@pytest.mark.parametrize("name, backend, loads", [("int8-ov", "openvino", "int8-ov_openvino_model"),
                                                   ("int8-qdq", "ort-cpu", "int8-qdq.onnx")])
def test_ultralytics_validates_the_recommended_model_as_quantsweep_scores_it(candidates, demo_dir, demo_val,
                                                                           fp32_offset, tmp_path, name, backend, loads):
    run = tmp_path / "run"
    shutil.copytree(candidates, run)
    hand_back(run, Decision(name, backend, "test", status="deploy"), [_row(name, backend)])
    rec = run / "recommended"
    assert (rec / loads).exists() and f"model={loads}" in (rec / "README.md").read_text()
    if loads.endswith("_openvino_model"):
        assert {p.name for p in (rec / loads).iterdir()} == {"int8-ov.xml", "int8-ov.bin", "metadata.yaml"}
    ids = select_ids(demo_val, IMAGES)
    ours = evaluate(rec / ("int8-ov.xml" if name == "int8-ov" else loads), demo_val, ids,
                    EvalSettings(provider="openvino" if name == "int8-ov" else "cpu"))["map50_95"]
    theirs = _ultralytics_map(rec / loads, demo_val, ids, tmp_path)
    assert abs(fp32_offset) <= 0.02, fp32_offset  # the validators' own difference stays small
    assert abs((theirs - ours) - fp32_offset) <= 0.004, (theirs, ours, fp32_offset)
