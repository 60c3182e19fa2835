"""GPTQ on the ONNX graph: the patches are the Conv's, and reconstruction beats rounding (measured)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from tests.conftest import tiny_convnet

from quantsweep.schemes.gptq import conv_hessians, gptq_quantize, unfold
from quantsweep.schemes.weight_grids import quantize_groups, quantize_weight


@pytest.mark.parametrize("stride,dilation,pads", [(1, 1, [1, 1, 1, 1]), (2, 1, [1, 0, 1, 0]), (1, 2, [2, 2, 2, 2])])
def test_unfold_times_the_weight_is_the_convolution(stride, dilation, pads):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 5, 11, 9)).astype(np.float32)
    w = rng.normal(size=(4, 5, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=pads, strides=[stride, stride],
                            dilations=[dilation, dilation])
    g = helper.make_graph([node], "c", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0][0]
    cols = unfold(x[0], (3, 3), pads, (stride, stride), (dilation, dilation))
    np.testing.assert_allclose((cols @ w.reshape(4, -1).T).T.reshape(y.shape), y, rtol=1e-4, atol=1e-4)


def _images(rng, n):
    """Smooth, correlated inputs (like photos), not white noise: where GPTQ's error spreading matters."""
    base = rng.normal(size=(n, 3, 8, 8)).astype(np.float32)
    return np.repeat(np.repeat(base, 4, axis=2), 4, axis=3) + 0.1 * rng.normal(size=(n, 3, 32, 32)).astype(np.float32)


def test_the_hessian_of_a_conv_that_reads_the_graph_input_is_built_from_the_images_fed(tmp_path):
    """The stem conv reads the graph input itself: its patches are the images, not whatever ONNX Runtime
    returns for a graph input listed as an output (that was not the image: 0.45 off on the demo)."""
    path = tiny_convnet(tmp_path / "tiny.onnx")
    images = _images(np.random.default_rng(2), 3)
    xtx, rows = conv_hessians(path, ["conv0"], images, positions=10_000)["conv0"]
    cols = np.concatenate([unfold(img, (3, 3), [1, 1, 1, 1], (1, 1), (1, 1)) for img in images]).astype(np.float64)
    assert rows == len(cols) == 3 * 32 * 32
    np.testing.assert_allclose(xtx, cols.T @ cols, rtol=1e-6)
    assert "images" not in {o.name for o in onnx.load(str(path)).graph.output}  # the file is left alone


def test_gptq_lowers_the_layer_output_error_against_rounding_on_held_out_inputs(tmp_path):
    path = tiny_convnet(tmp_path / "tiny.onnx")
    rng = np.random.default_rng(1)
    calib, held_out = _images(rng, 16), _images(rng, 8)
    model = onnx.load(str(path))
    w = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w1"))  # conv1: 64 -> 128
    hessians = conv_hessians(path, ["conv1"], calib, positions=512)
    xtx, rows = hessians["conv1"]
    assert xtx.shape == (64 * 9, 64 * 9) and rows == 16 * 512

    # conv1's inputs on images the Hessian never saw (relu0 output, computed with the same unfold)
    w0 = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w0"))
    b0 = numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "b0"))
    cols = []
    for img in held_out:
        r0 = np.maximum(unfold(img, (3, 3), [1, 1, 1, 1], (1, 1), (1, 1)) @ w0.reshape(64, -1).T + b0, 0)
        cols.append(unfold(r0.T.reshape(64, 32, 32), (3, 3), [1, 1, 1, 1], (1, 1), (1, 1)))
    x = np.concatenate(cols).astype(np.float64)
    flat = w.reshape(128, -1).astype(np.float64)

    rtn, scale = quantize_weight(w, 4, 0, mse=True)
    gptq = gptq_quantize(flat, xtx, scale, 7)
    assert gptq.dtype == np.int8 and gptq.min() >= -7 and gptq.max() <= 7

    def output_error(q):
        return float(((x @ (q.reshape(128, -1) * scale[:, None]).T - x @ flat.T) ** 2).mean())

    e_rtn, e_gptq = output_error(rtn), output_error(gptq)
    assert e_gptq < 0.8 * e_rtn, (e_gptq, e_rtn)
    # learned rounding (AdaRound, from the same Hessian) also beats rounding to nearest on held-out inputs,
    # and only ever picks the floor or the ceiling of each weight
    from quantsweep.schemes.adaround import adaround_quantize

    ada = adaround_quantize(flat, xtx, scale, 7)
    e_ada = output_error(ada)
    assert ada.dtype == np.int8 and e_ada < 0.9 * e_rtn, (e_ada, e_rtn)
    ratio = flat / scale[:, None]
    assert np.all((ada == np.clip(np.floor(ratio), -7, 7)) | (ada == np.clip(np.ceil(ratio), -7, 7)))


def test_w4a16_graph_records_its_method_and_keeps_the_k_ranked_convs_at_8_bits(tmp_path):
    import cv2

    from quantsweep.data.calibration import CalibSet
    from quantsweep.quantize.build import materialize
    from quantsweep.schemes import BuildContext, make_scheme

    path = tiny_convnet(tmp_path / "tiny.onnx")
    (tmp_path / "photos").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(tmp_path / "photos" / f"{i}.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    ctx = BuildContext(path, None, CalibSet.from_folder(tmp_path / "photos", 4, (32, 32)), tmp_path / "work")
    ranking = [{"node": "conv1", "rank": 1, "score": 0.5, "precision": "weight-only", "method": "probe"},
               {"node": "conv0", "rank": 2, "score": 0.1, "precision": "weight-only", "method": "probe"}]
    cand = materialize(make_scheme("w4a16-graph-gptq", k=1, keep_8bit="none", bias_correction=True), ctx,
                       tmp_path / "c", ranking)
    settings = cand.record["settings"]
    assert cand.name == "w4a16-graph-gptq-bc-k1"
    assert settings["reconstruction"]["method"].startswith("GPTQ") and settings["reconstruction"]["convs"] == 2
    assert settings["reconstruction"]["bias_corrected"] == 2  # conv0 and conv2 (conv1 is at 8 bits)
    assert [e["node"] for e in settings["weights_8bit"]] == ["conv1"]
    assert settings["weights_8bit"][0]["why"].startswith("sensitivity rank 1")
    assert not any(k["node"] == "conv1" for k in cand.record["kept_float"])  # 8-bit, not float
    inits = {i.name for i in onnx.load(str(cand.model_path)).graph.initializer}
    assert {"w0_q4", "w1_q8", "w2_q4"} <= inits


def _tiny_context(tmp_path):
    import cv2

    from quantsweep.data.calibration import CalibSet
    from quantsweep.schemes import BuildContext

    path = tiny_convnet(tmp_path / "tiny.onnx")
    (tmp_path / "photos").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(tmp_path / "photos" / f"{i}.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return path, BuildContext(path, None, CalibSet.from_folder(tmp_path / "photos", 4, (32, 32)), tmp_path / "work")


@pytest.mark.parametrize("group", [0, 64])
def test_w4a16_weights_are_stored_in_four_bits_and_onnx_runtime_computes_them_exactly(tmp_path, group):
    """The file holds INT4 initializers (half the bytes of int8); unpacked, they are the quantized values;
    ONNX Runtime's convolution equals the reference convolution with the dequantized weights."""
    import os

    from quantsweep.quantize.build import materialize
    from quantsweep.schemes import make_scheme

    path, ctx = _tiny_context(tmp_path)
    kw = {"keep_8bit": "none", "reconstruction": "none", "group_size": group}
    four = materialize(make_scheme("w4a16-graph-gptq", **kw), ctx, tmp_path / "int4")
    boxed = materialize(make_scheme("w4a16-graph-gptq", storage="int8", **kw), ctx, tmp_path / "int8")
    model = onnx.load(str(four.model_path))
    q4 = {i.name: i for i in model.graph.initializer if i.data_type == TensorProto.INT4}
    assert set(q4) == {"w0_q4", "w1_q4", "w2_q4"} and max(o.version for o in model.opset_import if o.domain == "") >= 21
    assert four.record["settings"]["storage"].startswith("INT4") and four.record["settings"]["group_size"] == group
    assert os.path.getsize(four.model_path) < 0.6 * os.path.getsize(boxed.model_path)
    # the scales are stored in fp16 (behind a Cast): rounded before the weights were quantized against them
    inits = {i.name.removesuffix("_fp16"): numpy_helper.to_array(i) for i in model.graph.initializer}
    assert inits["w1_scale"].dtype == np.float16 and "fp16 scales" in four.record["settings"]["storage"]
    w1 = numpy_helper.to_array(next(i for i in onnx.load(str(path)).graph.initializer if i.name == "w1"))
    values, scales = inits["w1_q4"].astype(np.int8), inits["w1_scale"].astype(np.float64)
    expect_q, expect_s = quantize_groups(w1.reshape(128, -1), 4, group, mse=True, fp16_scales=True)
    np.testing.assert_array_equal(values, expect_q)  # pack/unpack: the quantized values
    np.testing.assert_array_equal(scales, expect_s.reshape(scales.shape))
    assert scales.shape == ((128, 576 // group) if group else (128,))
    # ONNX Runtime on the int4 file = the float reference model with the dequantized weights
    full = np.repeat(scales, group, axis=1) if group else scales[:, None]
    ref = onnx.load(str(path))
    for i in ref.graph.initializer:
        if i.name in ("w0", "w1", "w2"):
            q = inits[f"{i.name}_q4"].astype(np.float64)
            s = inits[f"{i.name}_scale"].astype(np.float64)
            # blocked where the group divides the conv's columns (w0's 27 are per channel: OpenVINO needs it)
            s = np.repeat(s, q.shape[1] // s.shape[1], axis=1) if s.ndim == 2 else s[:, None]
            i.CopyFrom(numpy_helper.from_array((q * s).reshape(numpy_helper.to_array(i).shape).astype(np.float32),
                                               i.name))
    assert full.shape[0] == 128
    x = np.random.default_rng(3).normal(size=(1, 3, 32, 32)).astype(np.float32)
    run = lambda m: ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]  # noqa: E731
    np.testing.assert_allclose(run(str(four.model_path)), run(ref.SerializeToString()), rtol=1e-4, atol=1e-4)


def test_group_wise_scales_lower_a_conv_s_output_error_against_per_channel(tmp_path):
    path = tiny_convnet(tmp_path / "tiny.onnx")
    rng = np.random.default_rng(5)
    w = numpy_helper.to_array(next(i for i in onnx.load(str(path)).graph.initializer if i.name == "w1"))
    w = w * rng.lognormal(0, 1, size=(1, 64, 1, 1)).astype(np.float32)  # input channels of unequal range
    flat = w.reshape(128, -1).astype(np.float64)
    x = rng.normal(size=(2048, flat.shape[1]))

    def output_error(group):
        q, s = quantize_groups(flat, 4, group, mse=True)
        s = np.repeat(s, group, axis=1) if group else s
        return float(((x @ (q * s).T - x @ flat.T) ** 2).mean())

    per_channel, g64, g32 = output_error(0), output_error(64), output_error(32)
    assert g64 < 0.9 * per_channel and g32 < g64, (per_channel, g64, g32)


def test_float_constants_fp16_holds_exactly_move_to_fp16_and_nothing_else_changes(tmp_path):
    """A grid of integers (a YOLOv5 decode's kind) is stored in fp16 behind a Cast; a constant fp16 would
    round stays float32; ONNX Runtime's output is bit-identical."""
    from onnx import helper

    from quantsweep.schemes.int4_storage import exact_fp16_constants

    grid = np.arange(400, dtype=np.float32).reshape(1, 1, 20, 20)
    odd = np.full((1, 1, 20, 20), 0.1, np.float32)  # 0.1 is not an fp16 value
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "grid"], ["a"]), helper.make_node("Mul", ["a", "odd"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 20, 20])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 20, 20])],
        [numpy_helper.from_array(grid, "grid"), numpy_helper.from_array(odd, "odd")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    before = m.SerializeToString()
    assert exact_fp16_constants(m) == 1
    stored = {i.name: i.data_type for i in m.graph.initializer}
    assert stored == {"grid_fp16": TensorProto.FLOAT16, "odd": TensorProto.FLOAT}
    onnx.checker.check_model(m)
    x = np.random.default_rng(0).normal(size=(1, 1, 20, 20)).astype(np.float32)
    run = lambda b: ort.InferenceSession(b, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]  # noqa: E731
    np.testing.assert_array_equal(run(m.SerializeToString()), run(before))


def test_the_adaround_option_builds_an_int4_file_and_records_its_method(tmp_path):
    from quantsweep.quantize.build import materialize
    from quantsweep.schemes import make_scheme

    path, ctx = _tiny_context(tmp_path)
    cand = materialize(make_scheme("w4a16-graph-adaround", keep_8bit="none"), ctx, tmp_path / "ada")
    settings = cand.record["settings"]
    assert cand.model_path.name == "w4a16-graph-adaround.onnx" and settings["storage"].startswith("INT4")
    assert settings["reconstruction"]["method"].startswith("AdaRound") and settings["reconstruction"]["convs"] == 3
    rtn = materialize(make_scheme("w4a16-graph-adaround", keep_8bit="none", reconstruction="none"), ctx,
                      tmp_path / "rtn")
    x = ctx.calib.array()  # the images its rounding was learned on
    run = lambda m: ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"images": x[:1]})[0]  # noqa: E731
    ref = run(str(path))
    err = {name: float(np.square(run(str(c.model_path)) - ref).mean()) for name, c in (("ada", cand), ("rtn", rtn))}
    assert err["ada"] < 0.9 * err["rtn"], err  # learned rounding beats rounding to nearest, end to end


def _optimized_ops(model_path, tmp_path):
    """Op counts of ONNX Runtime's optimized graph for ``model_path`` (what its CPU kernels run)."""
    import collections

    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    opts.log_severity_level = 3
    ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node)


def _unpacked(model):
    """``model`` with every INT4 weight path folded back into its int8 initializer (the file's own
    Cast/Mul/Reshape arithmetic, done in numpy): what the int8 kernels read."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    values = dict(inits)
    to = {TensorProto.INT32: np.int32, TensorProto.INT8: np.int8, TensorProto.FLOAT: np.float32}
    while folded := [n for n in m.graph.node
                     if n.op_type in ("Cast", "Mul", "Reshape") and all(i in values for i in n.input)]:
        for n in folded:
            a = [values[i] for i in n.input]
            values[n.output[0]] = (a[0].astype(to[n.attribute[0].i]) if n.op_type == "Cast" else
                                   a[0] * a[1] if n.op_type == "Mul" else a[0].reshape(a[1]))
            m.graph.node.remove(n)
    used = {i for n in m.graph.node for i in n.input}
    del m.graph.initializer[:]
    m.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in values.items() if k in used)
    return m


@pytest.mark.parametrize("group", [0, 32])
def test_w4a8_is_stored_in_four_bits_and_still_runs_on_the_int8_kernels(tmp_path, group):
    """W4A8's file holds INT4 weights (with UINT4 group multipliers when grouped); ONNX Runtime folds them
    back to int8 at load and fuses the same QLinearConv kernels; its output equals the int8 weights'."""
    import os

    from quantsweep.quantize.build import materialize
    from quantsweep.schemes import make_scheme

    path, ctx = _tiny_context(tmp_path)
    kw = {"keep_8bit": "none", "reconstruction": "none", "group_size": group}
    four = materialize(make_scheme("w4a8-graph-gptq", **kw), ctx, tmp_path / "int4")
    boxed = materialize(make_scheme("w4a8-graph-gptq", storage="int8", **kw), ctx, tmp_path / "int8")
    model = onnx.load(str(four.model_path))
    kinds = {i.name: i.data_type for i in model.graph.initializer}
    assert sum(t == TensorProto.INT4 for t in kinds.values()) == 3
    assert sum(t == TensorProto.UINT4 for t in kinds.values()) == (3 if group else 0)
    assert not [i.name for i in model.graph.initializer if i.data_type == TensorProto.INT8 and "zero_point" not in i.name]
    assert four.record["settings"]["storage"].startswith("INT4")
    assert os.path.getsize(four.model_path) < 0.65 * os.path.getsize(boxed.model_path)
    ops = _optimized_ops(four.model_path, tmp_path)
    # the int8 kernels, as with int8 weights (the last conv feeds the graph output unquantized: FusedConv)
    assert ops == _optimized_ops(boxed.model_path, tmp_path) and ops["QLinearConv"] == 2, ops
    unpacked = _unpacked(model)
    weights = [numpy_helper.to_array(i) for i in unpacked.graph.initializer if i.data_type == TensorProto.INT8]
    if group:  # progressive groups: int8 values q x m beyond 4 bits, on one scale per row
        assert max(int(np.abs(w).max()) for w in weights) > 7
        assert four.record["settings"]["group_multiplier_max"] in (9, 15)
    x = ctx.calib.array()[:1]
    run = lambda m: ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]  # noqa: E731
    np.testing.assert_array_equal(run(str(four.model_path)), run(unpacked.SerializeToString()))


def test_progressive_groups_lower_the_weight_error_against_per_channel_and_factor_back_exactly():
    from quantsweep.schemes.weight_grids import factor_blocks, quantize_progressive

    rng = np.random.default_rng(5)
    w = rng.normal(size=(64, 288)) * rng.lognormal(0, 0.7, size=(1, 288))  # columns of unequal range
    q_c, s_c = quantize_weight(w, 4, 0, mse=True)
    per_channel = float(((q_c * s_c[:, None] - w) ** 2).sum())
    q_g, s_g = quantize_groups(w, 4, 32, mse=True)
    grouped = float(((q_g * np.repeat(s_g, 32, axis=1) - w) ** 2).sum())
    for max_mult in (9, 15):
        q, s, m = quantize_progressive(w, 32, max_mult, mse=True)
        mult = np.repeat(m.astype(np.int32), 32, axis=1)
        err = float(((q * s[:, None] * mult - w) ** 2).sum())
        assert err < 0.6 * per_channel and err < 1.15 * grouped, (err, per_channel, grouped)
        v = (q.astype(np.int32) * mult).astype(np.int8)
        assert int(np.abs(v).max()) <= 7 * max_mult and 1 <= m.min() and m.max() <= max_mult
        q2, m2 = factor_blocks(v, 32, max_mult)
        np.testing.assert_array_equal((q2.astype(np.int32) * m2[:, :, None]).reshape(v.shape), v)


def test_w4a8_with_every_conv_kept_at_8_bits_builds_as_w8a8(tmp_path):
    """The size search may probe K = every ranked conv (real YOLOv5n, K=60): no 4-bit weight is left,
    which is W8A8, not an error."""
    from quantsweep.quantize.build import materialize
    from quantsweep.schemes import make_scheme

    path, ctx = _tiny_context(tmp_path)
    ranking = [{"node": f"conv{i}", "rank": i + 1, "score": 0.1, "precision": "weight-only", "method": "probe"}
               for i in range(3)]
    cand = materialize(make_scheme("w4a8-graph-gptq", k=3, keep_8bit="none"), ctx, tmp_path / "c", ranking)
    settings = cand.record["settings"]
    assert len(settings["weights_8bit"]) == 3 and settings["storage"].startswith("int8")
    assert _optimized_ops(cand.model_path, tmp_path)["QLinearConv"] == 2


def test_w4a8_k_probes_reuse_onnx_runtimes_graph_and_build_what_a_fresh_build_does(tmp_path):
    """A family's K probes share ONNX Runtime's QDQ graph (same float graph, calibration and float nodes):
    the second probe reads it from the work folder, and its file equals the one a fresh build writes."""
    import dataclasses

    from quantsweep.quantize.build import materialize
    from quantsweep.schemes import make_scheme

    path, ctx = _tiny_context(tmp_path)
    ranking = [{"node": "conv1", "rank": 1, "score": 0.1, "precision": "weight-only", "method": "probe"}]
    kw = {"keep_8bit": "none", "act_calibration": "percentile"}
    materialize(make_scheme("w4a8-graph-gptq", **kw), ctx, tmp_path / "k0")
    k1 = materialize(make_scheme("w4a8-graph-gptq", k=1, **kw), ctx, tmp_path / "k1", ranking)
    assert len(list(ctx.work_dir.glob("ort-qdq-percentile-*.onnx"))) == 1
    fresh = materialize(make_scheme("w4a8-graph-gptq", k=1, **kw),
                        dataclasses.replace(ctx, work_dir=tmp_path / "fresh-work"), tmp_path / "fresh", ranking)
    assert k1.record["settings"]["weights_8bit"] == fresh.record["settings"]["weights_8bit"] != []
    assert onnx.load(str(k1.model_path)).SerializeToString() == onnx.load(str(fresh.model_path)).SerializeToString()
    x = ctx.calib.array()[:1]
    run = lambda m: ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]  # noqa: E731
    assert not np.array_equal(run(str(k1.model_path)), run(str(tmp_path / "k0" / "w4a8-graph-gptq-percentile.onnx")))


def test_w4a8_activation_calibration_is_the_one_asked_for_and_recorded(tmp_path):
    """act_calibration reaches ONNX Runtime's calibrator: the percentile ranges clip the minmax ones
    (every activation scale at most minmax's, some smaller), and the record and the name say which."""
    from quantsweep.errors import QuantsweepError
    from quantsweep.quantize.build import materialize
    from quantsweep.schemes import make_scheme

    path, ctx = _tiny_context(tmp_path)
    kw = {"keep_8bit": "none", "reconstruction": "none"}
    scales = {}
    for how in ("minmax", "percentile"):
        scheme = make_scheme("w4a8-graph-gptq", act_calibration=how, **kw)
        assert scheme.name == "w4a8-graph-mse" + ("" if how == "minmax" else "-percentile")
        cand = materialize(scheme, ctx, tmp_path / how)
        assert f"ONNX Runtime, {how}" in cand.record["settings"]["activations"]
        model = onnx.load(str(cand.model_path))
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        scales[how] = {n.input[0]: float(inits[n.input[1]]) for n in model.graph.node
                       if n.op_type == "QuantizeLinear" and n.input[1] in inits and inits[n.input[1]].size == 1}
    assert scales["minmax"].keys() == scales["percentile"].keys() and len(scales["minmax"]) >= 3
    assert all(scales["percentile"][t] <= scales["minmax"][t] * (1 + 1e-6) for t in scales["minmax"])
    assert any(scales["percentile"][t] < 0.999 * scales["minmax"][t] for t in scales["minmax"])
    with pytest.raises(QuantsweepError, match="int8 activations"):
        make_scheme("w4a16-graph-gptq-asym", act_calibration="percentile")


@pytest.mark.parametrize("group", [0, 64])
def test_asymmetric_w4a16_stores_uint4_values_and_zero_points_and_onnx_runtime_computes_them_exactly(tmp_path, group):
    """zero_point: the file holds UINT4 values and one UINT4 zero point next to each fp16 scale; they are the
    GPTQ integers shifted into [0, 15]; ONNX Runtime's convolution equals the reference with (u - z) x s."""
    from quantsweep.quantize.build import materialize
    from quantsweep.schemes import make_scheme

    path, ctx = _tiny_context(tmp_path)
    scheme = make_scheme("w4a16-graph-gptq-asym", keep_8bit="none", group_size=group)
    cand = materialize(scheme, ctx, tmp_path / "asym")
    assert scheme.name == "w4a16-graph-gptq-asym" and "asymmetric" in cand.record["settings"]["weights"]
    model = onnx.load(str(cand.model_path))
    u4 = {i.name for i in model.graph.initializer if i.data_type == TensorProto.UINT4}
    assert {"w0_q4", "w0_zero", "w1_q4", "w1_zero", "w2_q4", "w2_zero"} <= u4
    inits = {i.name.removesuffix("_fp16"): numpy_helper.to_array(i) for i in model.graph.initializer}
    ref = onnx.load(str(path))
    levels = set()
    for i in ref.graph.initializer:
        if i.name in ("w0", "w1", "w2"):
            u = inits[f"{i.name}_q4"].astype(np.float64)
            s, z = inits[f"{i.name}_scale"].astype(np.float64), inits[f"{i.name}_zero"].astype(np.float64)
            assert s.shape == z.shape and u.min() >= 0 and u.max() <= 15
            width = u.shape[1] // (s.shape[1] if s.ndim == 2 else 1)
            s, z = (np.repeat(s, width, axis=1), np.repeat(z, width, axis=1)) if s.ndim == 2 else (s[:, None], z[:, None])
            levels |= set(np.unique(u - z).astype(int))
            i.CopyFrom(numpy_helper.from_array(((u - z) * s).reshape(numpy_helper.to_array(i).shape).astype(np.float32),
                                               i.name))
    assert len(levels) > 15  # sixteen levels per group, placed anywhere: the symmetric grid has fifteen, -7..7
    x = np.random.default_rng(3).normal(size=(1, 3, 32, 32)).astype(np.float32)
    run = lambda m: ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]  # noqa: E731
    np.testing.assert_allclose(run(str(cand.model_path)), run(ref.SerializeToString()), rtol=1e-4, atol=1e-4)


def test_asymmetric_groups_lower_a_skewed_conv_s_output_error_and_gptq_keeps_their_range():
    """A conv whose groups are not centred on zero (after a folded batch norm, a common case): asymmetric
    groups beat symmetric ones in the output error, by rounding and by GPTQ; GPTQ stays on the grid."""
    from quantsweep.schemes.weight_grids import quantize_groups_asym

    rng = np.random.default_rng(11)
    flat = rng.normal(size=(32, 128)) + rng.normal(0, 1.5, size=(32, 1))  # rows offset from zero
    x = rng.normal(size=(4096, 128)) + 0.5
    xtx = x.T @ x

    def error(wq):
        return float(((x @ (wq - flat).T) ** 2).mean())

    qs, ss = quantize_groups(flat, 4, 32, mse=True, fp16_scales=True)
    qa, sa, za = quantize_groups_asym(flat, 32, mse=True, fp16_scales=True)
    full_s, full_a = np.repeat(ss, 32, axis=1), np.repeat(sa, 32, axis=1)
    low = -np.repeat(za.astype(np.float64), 32, axis=1)
    assert error(qa * full_a) < 0.8 * error(qs * full_s)
    gs = gptq_quantize(flat, xtx, full_s, 7).astype(np.float64)
    ga = gptq_quantize(flat, xtx, full_a, 7, low=low).astype(np.float64)
    assert ga.min() >= -15 and (ga >= low).all() and (ga <= low + 15).all()
    assert error(ga * full_a) < 0.8 * error(gs * full_s)
    assert error(ga * full_a) < error(qa * full_a)


@pytest.mark.parametrize("scheme,field", [("w4a8-graph-gptq", "act_calibration"), ("w4a8-mse", "act_calibration"),
                                          ("int8-qdq", "calibration")])
def test_quantize_calibration_reaches_the_field_of_the_scheme_built(scheme, field, tmp_path, capsys):
    """`quantsweep quantize --calibration` sets a W4A8's activation ranges (w4a8-mse on an ONNX model falls
    back to the graph W4A8) and an INT8 scheme's calibration: the value reaches that field (a bad one says so)."""
    from tests.conftest import write_constant_detector

    from quantsweep.cli.main import main

    model = write_constant_detector(tmp_path / "d.onnx", [1, 300, 6])
    code = main(["quantize", "--model", str(model), "--scheme", scheme, "--calibration", "bogus",
                 "--calib-dir", str(tmp_path), "--out", str(tmp_path / "c")])
    assert code != 0 and f"unknown {field} 'bogus'" in capsys.readouterr().err
