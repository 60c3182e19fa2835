"""Shared fixtures: the demo world is materialized once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Tests must never reach the network or write into the user's cache; each pytest-xdist worker
    # has its own cache, so two workers never materialize the demo world into the same folder at once.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    os.environ.setdefault("QUANTSWEEP_CACHE", str(Path(config.rootpath) / ".pytest_cache" / f"qs-cache{worker}"))
    if worker:  # xdist workers share the cores: each runtime session gets its share, not all of them
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
        share = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ.setdefault("QUANTSWEEP_THREADS", share)
        os.environ.setdefault("OMP_NUM_THREADS", share)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from quantsweep.env import gpu_present as _gpu_present

    if _gpu_present():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (none answers on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo world's model.pt, model.onnx and val/calib splits (with YOLO labels)."""
    from quantsweep.demo import materialize

    out = tmp_path_factory.mktemp("demo")
    materialize(out, splits=("val", "calib"), yolo_labels=True)
    return out


@pytest.fixture(scope="session")
def demo_val(demo_dir: Path):
    from quantsweep.data.coco import load_dataset

    return load_dataset(demo_dir / "val" / "images", demo_dir / "val" / "annotations.json")


def write_constant_detector(path: Path, out_shape: list[int], in_shape: tuple[int, ...] = (1, 3, 320, 320),
                            values=None) -> Path:
    """A tiny ONNX 'detector' whose output is a constant of ``out_shape`` (plus 0 * input)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    const = np.zeros(out_shape, np.float32) if values is None else np.asarray(values, np.float32)
    nodes = [
        helper.make_node("ReduceSum", ["images"], ["s"], keepdims=0),
        helper.make_node("Mul", ["s", "zero"], ["z"]),
        helper.make_node("Add", ["C", "z"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes, "const_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(out_shape))],
        [numpy_helper.from_array(const, "C"), numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def write_external_data_detector(path: Path, location: str) -> Path:
    """A constant detector whose constant lives in an external-data file at ``location``."""
    import onnx
    from onnx import TensorProto

    write_constant_detector(path, [1, 300, 6])
    m = onnx.load(str(path))
    c = next(i for i in m.graph.initializer if i.name == "C")
    c.ClearField("raw_data")
    c.ClearField("float_data")
    c.data_location = TensorProto.EXTERNAL
    c.external_data.add(key="location", value=location)
    onnx.save(m, str(path))
    return path


def tiny_convnet(path):
    """A 3-conv FP32 ONNX with input ``images`` [1,3,32,32] (labels, benchmarks, sensitivity)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, nodes, prev = [], [], "images"
    for i, (cin, cout) in enumerate([(3, 64), (64, 128), (128, 64)]):
        inits += [numpy_helper.from_array(rng.normal(0, 0.3, (cout, cin, 3, 3)).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(rng.normal(0, 0.1, cout).astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1], name=f"conv{i}"),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        prev = f"r{i}"
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 64, 32, 32])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def calibration_reader(data, input_name):
    """An ONNX Runtime CalibrationDataReader over ``data`` (arrays fed to ``input_name``)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(data)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {input_name: x}

    return Reader()


def tiny_ort_int8(fp32, out, per_channel=True):
    """ORT's int8 QDQ of :func:`tiny_convnet` (8 random calibration images); returns ``(out, data)``."""
    import numpy as np
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    data = np.random.default_rng(1).random((8, 1, 3, 32, 32), dtype=np.float32)
    quantize_static(str(fp32), str(out), calibration_reader(data, "images"), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, reduce_range=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return out, data


def copy_run_until(run_dir: Path, dest_root: Path, step: str) -> Path:
    """A copy of a finished run whose manifest forgets ``step`` and every step finished after it, so
    that resuming the copy runs ``step`` live (and what follows) while every earlier step is skipped:
    fault-injection tests start here instead of from scratch."""
    import json
    import shutil

    copy = Path(dest_root) / Path(run_dir).name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns(".lock"))
    manifest = json.loads((copy / "manifest.json").read_text())
    names = list(manifest["steps"])  # recorded in the order the steps finished
    assert step in names, (step, names)
    for name in names[names.index(step):]:
        del manifest["steps"][name]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    for rewritten in ("report.html", "search.json", "confirmation.json"):  # written again by every resume
        (copy / rewritten).unlink(missing_ok=True)
    return copy


def duplicated_images(gt: dict, dets: list[dict], sample: list[int]) -> tuple[dict, list[dict], list[int]]:
    """The public-API truth for a bootstrap resample: every drawn image becomes its own image id
    (its boxes and detections copied), so COCOeval scores a twice-drawn image twice."""
    images, anns, out = [], [], []
    for new_id, old in enumerate(sample, start=1000):
        images.append({**next(i for i in gt["images"] if i["id"] == old), "id": new_id})
        anns += [{**a, "id": len(anns) + k + 1, "image_id": new_id}
                 for k, a in enumerate(x for x in gt["annotations"] if x["image_id"] == old)]
        out += [{**d, "image_id": new_id} for d in dets if d["image_id"] == old]
    return {**gt, "images": images, "annotations": anns}, out, list(range(1000, 1000 + len(sample)))
