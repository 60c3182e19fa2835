"""The input quantizer on the pixel grid: every k/255 represented exactly (ONNX QDQ and OpenVINO IR)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from quantsweep.schemes.input_grid import PIXEL_SCALE, grid_decision, pixel_grid_onnx, pixel_grid_ov

PIXELS = (np.arange(256, dtype=np.float32) / np.float32(255)).reshape(1, 1, 16, 16)
CALIBRATED_HIGH = 0.962  # the demo detector's calibrated input range at 640: [0, 0.962]


@pytest.mark.parametrize(("levels", "low", "high", "moves"), [
    (256, 0.0, 0.962, True), (256, 0.0, 1.0, True), (256, -0.5, 0.9, False), (16, 0.0, 0.9, False),
    (256, 0.0, 255.0, False)])
def test_grid_decision(levels: int, low: float, high: float, moves: bool) -> None:
    why = grid_decision(levels, low, high)
    assert (why is None) == moves
    if not moves:
        assert why and ("8 bits" in why or "signed" in why or "exceeds" in why)


def _qdq_onnx(path: Path, zp_dtype: type, zp: int, scale: float) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.asarray(scale, np.float32), "s"),
             numpy_helper.from_array(np.asarray(zp, zp_dtype), "zp")]
    nodes = [helper.make_node("QuantizeLinear", ["images", "s", "zp"], ["q"], name="images_q"),
             helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["out"], name="images_dq")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 1, 16, 16])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 16, 16])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _ort(path: Path) -> np.ndarray:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": PIXELS})[0]


def test_onnx_input_quantizer_moves_to_the_pixel_grid(tmp_path: Path) -> None:
    path = _qdq_onnx(tmp_path / "m.onnx", np.uint8, 0, CALIBRATED_HIGH / 255)
    before = _ort(path)
    assert before.max() < 0.963 and np.abs(before - PIXELS).max() > 0.03  # the calibrated range clips bright pixels
    line = pixel_grid_onnx(path)
    assert "images_q: pixel grid [0, 1]" in line and "0.9620" in line
    assert np.abs(_ort(path) - PIXELS).max() < 1e-6  # every k/255 exact (to float32 rounding)
    import onnx
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    assert "s" not in inits and float(inits["s_pixel_grid"]) == pytest.approx(PIXEL_SCALE)


def test_onnx_signed_input_quantizer_stays_as_calibrated(tmp_path: Path) -> None:
    path = _qdq_onnx(tmp_path / "m.onnx", np.int8, 0, 1 / 127)
    data = path.read_bytes()
    line = pixel_grid_onnx(path)
    assert line.startswith("as calibrated: images_q: signed range") and path.read_bytes() == data


def test_openvino_input_fakequantize_moves_to_the_pixel_grid() -> None:
    ov = pytest.importorskip("openvino")
    import openvino.opset13 as ops

    def model(high: float) -> object:
        x = ops.parameter([1, 1, 16, 16], np.float32, name="images")
        lo, hi = ops.constant(np.float32(0.0)), ops.constant(np.float32(high))
        return ov.Model([ops.result(ops.fake_quantize(x, lo, hi, lo, hi, 256))], [x])

    def run(m: object) -> np.ndarray:
        return next(iter(ov.Core().compile_model(m, "CPU")({0: PIXELS}).values()))

    m = model(CALIBRATED_HIGH)
    assert np.abs(run(m) - PIXELS).max() > 0.03
    assert "pixel grid [0, 1]" in pixel_grid_ov(m)
    assert np.abs(run(m) - PIXELS).max() < 1e-6
    x = ops.parameter([1, 1, 16, 16], np.float32, name="images")
    lo = ops.constant(np.float32(0.0))
    hi = ops.convert(ops.constant(np.float16(0.962)), np.float32)  # a bound the graph computes
    computed = ov.Model([ops.result(ops.fake_quantize(x, lo, hi, lo, hi, 256))], [x])
    assert "not constants" in pixel_grid_ov(computed)
    other = model(2.0)  # not pixels / 255: left as it is
    assert "exceeds [0, 1]" in pixel_grid_ov(other)
    assert run(other).max() > 0.99 and np.abs(run(other) - PIXELS).max() > 1e-3
