"""A fused int8 Conv (ORT CPU QLinearConv) against its float QDQ reference.

On x86 CPUs without VNNI, u8s8 int8 convolutions can saturate (int16 pair sums in vpmaddubsw)
with full-range 8-bit weights; quantsweep's ``reduce_range="auto"`` must avoid that.
"""

import numpy as np
import pytest
from tests.conftest import calibration_reader

from quantsweep.env import cpu_info


def _conv_model(path, cin=64, cout=32, seed=0):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, (cout, cin, 3, 3)).astype(np.float32)
    w[:, :, 1, 1] *= 4  # heavy centre taps make large pairwise int16 sums likely
    b = rng.normal(0, 0.1, cout).astype(np.float32)
    # Conv -> MaxPool(1x1): the pool makes the quantizer put Q/DQ on the conv output, so ORT
    # fuses DQ -> Conv -> Q into QLinearConv with int8 input and output.
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y1"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("MaxPool", ["y1"], ["y"], kernel_shape=[1, 1], name="pool")]
    g = helper.make_graph(nodes, "c", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 12, 12])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, 12, 12])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))


def _quantize(src, dst, reduce_range, data):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(str(src), str(dst), calibration_reader(data, "x"), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    extra_options={"WeightSymmetric": True})


def _steps_off(model, x):
    """Fused-kernel output vs the unfused QDQ reference, in output quantization steps."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    def run(level, keep=None):
        o = ort.SessionOptions()
        o.graph_optimization_level = level
        if keep:
            o.optimized_model_filepath = str(keep)
        return ort.InferenceSession(str(model), o, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    opt = model.with_suffix(".opt.onnx")
    fused = run(ort.GraphOptimizationLevel.ORT_ENABLE_ALL, opt)
    ref = run(ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    ops = {n.op_type for n in onnx.load(str(opt)).graph.node}
    q = onnx.load(str(model))
    out_q = next(n for n in q.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "y1")
    scale = float(numpy_helper.to_array(next(i for i in q.graph.initializer if i.name == out_q.input[1])))
    return np.abs(fused - ref) / scale, ops


@pytest.fixture
def conv_case(tmp_path):
    _conv_model(tmp_path / "conv.onnx")
    rng = np.random.default_rng(1)
    data = [rng.uniform(0, 6, (1, 64, 12, 12)).astype(np.float32) for _ in range(8)]
    return tmp_path, data


def test_auto_remedy_keeps_fused_int8_conv_exact(conv_case):
    from quantsweep.schemes.ort_int8 import resolve_reduce_range

    tmp, data = conv_case
    _quantize(tmp / "conv.onnx", tmp / "auto.onnx", resolve_reduce_range("auto"), data)
    steps, ops = _steps_off(tmp / "auto.onnx", data[0])
    assert "QLinearConv" in ops  # the int8 kernel really ran
    assert (steps > 1.01).mean() < 0.01, f"{(steps > 1.01).mean():.1%} of outputs off by more than one step"


@pytest.mark.skipif(cpu_info()["vnni"], reason="the u8s8 saturation trap only exists without VNNI")
def test_full_range_weights_saturate_without_vnni(conv_case):
    tmp, data = conv_case
    _quantize(tmp / "conv.onnx", tmp / "full.onnx", False, data)
    steps, ops = _steps_off(tmp / "full.onnx", data[0])
    assert "QLinearConv" in ops
    assert (steps > 1.01).mean() > 0.01  # the trap is real here, which is why auto turns the remedy on
