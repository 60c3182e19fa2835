"""Three Ultralytics families, built offline from their YAML (random weights), through the pipeline.

mAP is meaningless with random weights; what is checked is that each export's layout is detected,
that NNCF's OpenVINO INT8 (from the ONNX) and Brevitas' W8A16 (from the ``.pt``, whose
export must give the same head) build on it, and that the evaluation decodes it on demo images.
"""

from __future__ import annotations

import pytest

from quantsweep.data.calibration import CalibSet
from quantsweep.data.coco import select_ids
from quantsweep.evaluate.run import EvalSettings, evaluate
from quantsweep.model.export import export_onnx
from quantsweep.model.info import inspect_onnx
from quantsweep.quantize.build import materialize
from quantsweep.schemes import BuildContext, make_scheme

pytestmark = pytest.mark.slow  # three exports and six builds: ~1 min

# (architecture, --head, expected layout, its output shape at 320x320 with 5 classes)
CASES = [("yolov8n", "raw", "raw", (1, 9, 2100)),
         ("yolo11n", "raw", "raw", (1, 9, 2100)),
         ("yolo26n", "e2e", "e2e", (1, 300, 6)),
         ("yolo26n", "raw", "raw", (1, 9, 2100))]


def _checkpoint(arch: str, out):
    """An Ultralytics checkpoint of ``arch`` with the demo's 5 classes and random (seeded) weights."""
    import torch
    import ultralytics
    from ultralytics.nn.tasks import DetectionModel

    path = out / f"{arch}.pt"
    if not path.is_file():
        torch.manual_seed(0)
        model = DetectionModel(f"{arch}.yaml", nc=5, verbose=False)
        model.names = {i: f"class{i}" for i in range(5)}
        torch.save({"model": model.half(), "train_args": {}, "version": ultralytics.__version__}, path)
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("layouts")


@pytest.mark.parametrize("arch, head, layout, shape", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_family_exports_quantizes_and_evaluates(arch, head, layout, shape, work, demo_dir, demo_val):
    pt = _checkpoint(arch, work)
    onnx_path = export_onnx(pt, work / f"{arch}-{head}.onnx", imgsz=320, head=head)
    info = inspect_onnx(onnx_path)
    assert (str(info.layout), info.output_shapes[0]) == (layout, shape)
    assert info.num_classes == (5 if layout == "raw" else None)
    ids = select_ids(demo_val, 4)
    calib = CalibSet.from_folder(demo_dir / "calib" / "images", 4, (320, 320), ids, demo_val)
    ctx = BuildContext(onnx_path, pt, calib, work / f"{arch}-{head}-work")
    settings = EvalSettings(provider="cpu")
    for scheme in ("int8-ov", "w8a16"):
        cand = materialize(make_scheme(scheme), ctx, work / f"{arch}-{head}-{scheme}")
        m = evaluate(cand.model_path, demo_val, ids, settings)
        assert m["run"]["layout"] == layout and m["num_images"] == 4, (scheme, m["run"])
        assert 0.0 <= m["map50_95"] <= 1.0
