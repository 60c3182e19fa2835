"""recommended/ as Ultralytics loads it: its own validator runs quantsweep's IR and ONNX as written,
and scores them as quantsweep does (within 0.01 mAP50-95 on the same demo images)."""

from __future__ import annotations

import shutil

import pytest

from quantsweep.data.calibration import CalibSet
from quantsweep.data.coco import select_ids
from quantsweep.evaluate.run import EvalSettings, evaluate
from quantsweep.quantize.build import materialize
from quantsweep.report.table import Decision, Row
from quantsweep.report.write import hand_back
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


def _row(name: str, backend: str) -> Row:
    return Row(candidate=name, scheme=name, precision="int8", k=0, backend=backend, batch=1, label="accelerated",
               latency_p50_ms=1.0, speedup_vs_fp32=1.5)


@pytest.mark.parametrize("name, backend, loads", [("int8-ov", "openvino", "int8-ov_openvino_model"),
                                                   ("int8-qdq", "ort-cpu", "int8-qdq.onnx")])
def test_ultralytics_validates_the_recommended_model_as_quantsweep_scores_it(candidates, demo_dir, demo_val,
                                                                           tmp_path, name, backend, loads):
    from quantsweep.offline import import_ultralytics

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
    listing = tmp_path / "val.txt"
    listing.write_text("".join(f"{demo_val.path(i)}\n" for i in ids))
    names = {int(c["id"]) - min(int(c["id"]) for c in demo_val.coco["categories"]): c["name"]
             for c in demo_val.coco["categories"]}
    data = tmp_path / "data.yaml"
    data.write_text(f"path: {tmp_path}\ntrain: {listing}\nval: {listing}\nnames: {names}\n")
    ultralytics = import_ultralytics()
    metrics = ultralytics.YOLO(str(rec / loads), task="detect").val(
        data=str(data), imgsz=320, batch=1, device="cpu", plots=False, verbose=False, project=str(tmp_path / "uv"),
        workers=0)
    theirs = float(metrics.box.map)
    assert abs(theirs - ours) <= 0.01, (theirs, ours)
