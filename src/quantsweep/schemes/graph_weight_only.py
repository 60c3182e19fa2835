"""Weight-only quantization on the ONNX graph itself, for models given only as ONNX.

No maintained library does this for convolutions (ONNX Runtime's and ModelOpt's weight-only
paths handle MatMul/Gemm only), so it is done here: each Conv/ConvTranspose/MatMul/Gemm weight
initializer becomes an int8 initializer (int4 range [-7, 7] at 4 bits) with one scale per output
channel, followed by DequantizeLinear. Activations stay float.

With ``reconstruction="gptq"`` the 4-bit Conv weights are reconstructed by GPTQ against the
calibration images' activations (:mod:`quantsweep.schemes.gptq`) instead of rounded to nearest;
the per-channel scales are the same MSE-searched ones.

Weight-only 4-bit convolutions are *stored* in 4 bits (``storage="int4"``): each conv weight is
flattened to ``[out, in x kh x kw]``, written as an ONNX ``INT4`` initializer (two values a byte)
read by a ``DequantizeLinear`` (opset 21; blocked, ``block_size=group_size``, when ``group_size``
gives one scale per group of that many input columns instead of one per output channel) and a
``Reshape`` back to the conv's shape. The model is converted to opset 21 for it (ONNX's version
converter); where that fails the weights stay in an int8 container and the record says so.

W4A8 keeps ONNX Runtime's QDQ graph, whose int8 kernels (QLinearConv) read int8 weights with one
scale per output channel: its 4-bit weights are stored as ``INT4`` initializers behind a ``Cast`` to
int8 (:func:`int8_to_int4_initializers`, after the graph clean-up); ONNX Runtime folds the ``Cast`` of
a constant at load and fuses the same QLinearConv kernels, so the file is 4-bit and the speed is INT8's.

Such a file also stores its scales in fp16 (``scale_dtype="fp16"``: the scales are rounded to fp16
*before* the weights are quantized against them, so nothing is lost in the file) and every other
float constant whose values fp16 holds exactly (a YOLOv5 decode's grids and anchors, say) as fp16
behind a ``Cast`` (``fp16_constants``): bit-exact, checked value by value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from quantsweep.errors import QuantsweepError
from quantsweep.schemes.base import (
    BuildContext,
    BuildResult,
    SchemeSpec,
    check_weight_fields,
    eight_bit_layers,
    fp16_suffix,
)
from quantsweep.schemes.ort_int8 import CALIBRATIONS, Calibration

__all__ = ["GraphWeightOnly", "block_for", "exact_fp16_constants", "int8_to_int4_initializers", "quantize_groups",
           "quantize_groups_asym", "quantize_weight"]

INT4_OPSET = 21  # DequantizeLinear with INT4 inputs and block_size

_CLIP_GRID = np.linspace(0.5, 1.0, 21)
# GPTQ's Hessians use every patch of each calibration image (up to this many per conv and image, a
# memory guard): the exact XᵀX. Sampling 2048 made the result depend on the sample (demo W4A8 -1.07 at
# 2048, -1.13 at 4096, -0.49 with every patch; real YOLOv5n W4A16 -3.06 / -3.32 / -2.74)
HESSIAN_PATCHES = 65536


_FP16_TINY = 2.0 ** -14  # smallest normal fp16: a smaller scale is raised to it (its weights round to 0 anyway)


def _as_scale(scale: np.ndarray, fp16: bool) -> np.ndarray:
    """``scale`` as stored: unchanged, or rounded to the nearest fp16 value (kept in float64)."""
    return np.maximum(scale, _FP16_TINY).astype(np.float16).astype(np.float64) if fp16 else scale


def quantize_weight(w: np.ndarray, bits: int, axis: int, mse: bool,
                    fp16_scales: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel quantization of ``w`` along ``axis`` -> (int8 values, float scales);
    ``fp16_scales``: every scale is an fp16 value (rounded before the weights are quantized)."""
    qmax = 2 ** (bits - 1) - 1
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1).astype(np.float64)
    amax = np.abs(moved).max(axis=1)
    amax[amax == 0] = 1.0
    best = _as_scale(amax / qmax, fp16_scales)
    if mse:  # per-channel search of the clipping ratio that minimises reconstruction error
        best_err = np.full(len(amax), np.inf)
        for r in _CLIP_GRID:
            scale = _as_scale(amax * r / qmax, fp16_scales)
            q = np.clip(np.round(moved / scale[:, None]), -qmax, qmax)
            err = ((q * scale[:, None] - moved) ** 2).sum(axis=1)
            better = err < best_err
            best[better], best_err[better] = scale[better], err[better]
    q = np.clip(np.round(moved / best[:, None]), -qmax, qmax).astype(np.int8)
    shape = (w.shape[axis],) + tuple(np.delete(w.shape, axis))
    q = np.moveaxis(q.reshape(shape), 0, axis)
    return q, best.astype(np.float32)


def block_for(cols: int, group: int) -> int:
    """The block a conv of ``cols`` flattened input columns gets for ``group`` (0: per channel): ``group``
    when it divides ``cols``; else the largest divisor of ``cols`` in [group/2, group], or the smallest in
    [group, 2 x group]; else 0 (one scale per output channel). ONNX allows a ragged last block, but
    OpenVINO's importer refuses a block size that does not divide the axis."""
    if group <= 0 or cols % group == 0:
        return group
    below = [d for d in range((group + 1) // 2, group + 1) if cols % d == 0]
    above = [d for d in range(group, 2 * group + 1) if cols % d == 0]
    return max(below) if below else (min(above) if above else 0)


def quantize_groups(w2: np.ndarray, bits: int, group: int, mse: bool,
                    fp16_scales: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric quantization of ``w2`` [out, cols] with one scale per row and block of ``group``
    columns (0: per row) -> (int8 values [out, cols], float scales [out, blocks])."""
    if group <= 0:
        q, scale = quantize_weight(w2, bits, 0, mse, fp16_scales)
        return q, scale[:, None]
    parts = [quantize_weight(w2[:, c:c + group], bits, 0, mse, fp16_scales) for c in range(0, w2.shape[1], group)]
    return np.concatenate([p[0] for p in parts], axis=1), np.stack([p[1] for p in parts], axis=1)


def quantize_groups_asym(w2: np.ndarray, group: int, mse: bool,
                         fp16_scales: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric 4-bit quantization of ``w2`` [out, cols], one scale and one zero point per row and
    block of ``group`` columns (0: per row): stored values ``u`` in [0, 15] read as ``(u - z) * s``.
    Returns (``q = u - z`` int8 [out, cols], scales [out, blocks], zero points uint8 [out, blocks]);
    the range [min, max] of each group (widened to hold 0) is shrunk by the MSE search as for
    symmetric scales. Sixteen levels placed on the group's own range, where the symmetric grid spends
    fifteen on [-max|w|, max|w|]."""
    out, cols = w2.shape
    width = group if group > 0 else cols
    w3 = w2.reshape(out, cols // width, width).astype(np.float64)
    lo, hi = np.minimum(w3.min(axis=2), 0.0), np.maximum(w3.max(axis=2), 0.0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)

    def grid(r: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = _as_scale(span * r / 15, fp16_scales)
        zero = np.clip(np.round(-lo * r / scale), 0, 15)
        q = np.clip(np.round(w3 / scale[..., None]) + zero[..., None], 0, 15) - zero[..., None]
        return scale, zero, q

    best_s, best_z, best_q = grid(1.0)
    if mse:
        best_err = ((best_q * best_s[..., None] - w3) ** 2).sum(axis=2)
        for r in _CLIP_GRID:
            scale, zero, q = grid(float(r))
            err = ((q * scale[..., None] - w3) ** 2).sum(axis=2)
            better = err < best_err
            best_s[better], best_z[better], best_q[better], best_err[better] = scale[better], zero[better], q[better], err[better]
    return best_q.reshape(out, cols).astype(np.int8), best_s.astype(np.float32), best_z.astype(np.uint8)


def quantize_progressive(w2: np.ndarray, block: int, max_mult: int, mse: bool,
                         fp16_scales: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """4-bit values with group-wise steps that an int8 kernel can still read (the progressive
    scheme of QServe, W4A8): one float scale ``s`` per row and one *integer* multiplier ``m`` in
    [1, ``max_mult``] per block of ``block`` columns, so each group's step is ``s * m`` and its int8
    weights ``q * m`` (|q| <= 7) share the row's scale ``s``. Returns (q int8 [out, cols] in [-7, 7],
    s [out], m [out, blocks]); ``s`` per row is searched to minimise the rows' squared error."""
    out, cols = w2.shape
    ideal = quantize_groups(w2, 4, block, mse)[1].astype(np.float64)  # the unconstrained group steps
    blocks = ideal.shape[1]
    w3 = w2.reshape(out, blocks, block).astype(np.float64)
    top = ideal.max(axis=1) / max_mult
    best_err = np.full(out, np.inf)
    best_s, best_m = top.copy(), np.ones((out, blocks))
    for r in np.linspace(0.5, 1.0, 11):  # the row scale: the largest group at max_mult, or a finer grid
        sc = _as_scale(top * r, fp16_scales)
        m = np.clip(np.round(ideal / sc[:, None]), 1, max_mult)
        step = (sc[:, None] * m)[:, :, None]
        err = ((np.clip(np.round(w3 / step), -7, 7) * step - w3) ** 2).sum(axis=(1, 2))
        better = err < best_err
        best_err[better], best_s[better], best_m[better] = err[better], sc[better], m[better]
    step = (best_s[:, None] * best_m)[:, :, None]
    q = np.clip(np.round(w3 / step), -7, 7).reshape(out, cols).astype(np.int8)
    return q, best_s.astype(np.float32), best_m.astype(np.int8)


def _factor_blocks(v: np.ndarray, block: int, max_mult: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``v`` [out, cols] int8 as ``q * m`` with |q| <= 7 and one multiplier per block in [1, max_mult]
    (the smallest that divides the block and covers its range), or None when a block has none."""
    out, cols = v.shape
    v3 = v.reshape(out, cols // block, block).astype(np.int32)
    amax = np.abs(v3).max(axis=2)
    m = np.zeros(amax.shape, np.int32)
    for k in range(max_mult, 0, -1):  # downwards: the smallest valid multiplier wins
        ok = (amax <= 7 * k) & (v3 % k == 0).all(axis=2)
        m[ok] = k
    if (m == 0).any():
        return None
    return (v3 // m[:, :, None]).astype(np.int8), m


def exact_fp16_constants(model: Any, min_elements: int = 16) -> int:
    """Store each float32 initializer (of at least ``min_elements`` values) that fp16 holds exactly as
    fp16 behind a ``Cast`` to float32 (the consumers see the same values, bit for bit); returns
    how many moved. Graph inputs are left alone (a caller may feed them)."""
    from onnx import TensorProto, helper, numpy_helper

    fed = {i.name for i in model.graph.input}
    casts, moved = [], 0
    for init in list(model.graph.initializer):
        if init.data_type != TensorProto.FLOAT or init.name in fed or int(np.prod(init.dims)) < min_elements:
            continue
        a = numpy_helper.to_array(init)
        half = a.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), a, equal_nan=False):
            continue
        model.graph.initializer.remove(init)
        model.graph.initializer.append(numpy_helper.from_array(half, f"{init.name}_fp16"))
        casts.append(helper.make_node("Cast", [f"{init.name}_fp16"], [init.name], name=f"{init.name}_Cast",
                                      to=TensorProto.FLOAT))
        moved += 1
    nodes = casts + list(model.graph.node)  # before every consumer: the graph stays topologically sorted
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return moved


def int8_to_int4_initializers(model: Any, min_elements: int = 16, group: int = 0, max_mult: int = 15) -> int:
    """Store each int8 initializer that only ``DequantizeLinear`` reads (as its data) and whose values
    all fit 4 bits ([-8, 7]) as an ``INT4`` initializer behind a ``Cast`` back to int8: lossless, and a
    runtime folds the ``Cast`` of a constant at load, so its int8 kernels still see int8 weights
    (ONNX Runtime fuses QLinearConv as before). With ``group``, a weight whose blocks of columns
    (:func:`block_for`) are 4-bit values times one integer each (:func:`quantize_progressive`) is
    stored as ``INT4`` values and ``UINT4`` multipliers, multiplied back to int8 by
    ``Cast -> Mul -> Reshape -> Cast`` (folded at load the same way). Needs opset >= 21; returns how
    many moved."""
    import ml_dtypes
    from onnx import TensorProto, helper, numpy_helper

    readers: dict[str, list[tuple[Any, int]]] = {}
    for n in model.graph.node:
        for j, i in enumerate(n.input):
            readers.setdefault(i, []).append((n, j))
    fed = {i.name for i in model.graph.input}
    casts, moved = [], 0
    for init in list(model.graph.initializer):
        if init.data_type != TensorProto.INT8 or init.name in fed or int(np.prod(init.dims)) < min_elements:
            continue
        users = readers.get(init.name, [])
        if not users or any(u.op_type != "DequantizeLinear" or j != 0 for u, j in users):
            continue
        a = numpy_helper.to_array(init)
        if a.min() >= -8 and a.max() <= 7:  # 4-bit values as they are
            model.graph.initializer.remove(init)
            model.graph.initializer.append(numpy_helper.from_array(a.astype(ml_dtypes.int4), f"{init.name}_int4"))
            casts.append(helper.make_node("Cast", [f"{init.name}_int4"], [init.name], name=f"{init.name}_Cast",
                                          to=TensorProto.INT8))
            moved += 1
            continue
        block = block_for(int(np.prod(a.shape[1:])), group) if group and a.ndim >= 2 else 0
        factors = _factor_blocks(a.reshape(len(a), -1), block, max_mult) if block else None
        if factors is not None:  # 4-bit values times one multiplier per block
            q3, m = factors
            t = f"qs_w4/{moved}"  # short names: five nodes per weight, each name stored three times
            model.graph.initializer.remove(init)
            model.graph.initializer.extend([
                numpy_helper.from_array(q3.astype(ml_dtypes.int4), f"{t}/q"),
                numpy_helper.from_array(m[:, :, None].astype(ml_dtypes.uint4), f"{t}/m"),
                numpy_helper.from_array(np.array(a.shape, np.int64), f"{t}/shape")])
            casts += [helper.make_node("Cast", [f"{t}/q"], [f"{t}/q32"], name=f"{t}/cq", to=TensorProto.INT32),
                      helper.make_node("Cast", [f"{t}/m"], [f"{t}/m32"], name=f"{t}/cm", to=TensorProto.INT32),
                      helper.make_node("Mul", [f"{t}/q32", f"{t}/m32"], [f"{t}/v32"], name=f"{t}/mul"),
                      helper.make_node("Reshape", [f"{t}/v32", f"{t}/shape"], [f"{t}/v"], name=f"{t}/reshape"),
                      helper.make_node("Cast", [f"{t}/v"], [init.name], name=f"{t}/c8", to=TensorProto.INT8)]
            moved += 1
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return moved


def _opset(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _to_int4_opset(model: Any) -> tuple[Any, str | None]:
    """``model`` at opset >= 21 (ONNX's version converter), or the model unchanged and why not."""
    if _opset(model) >= INT4_OPSET:
        return model, None
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(model, INT4_OPSET)
    except Exception as exc:  # noqa: BLE001 - any converter failure keeps the int8 container
        return model, f"opset {_opset(model)} -> {INT4_OPSET} conversion failed: {str(exc).splitlines()[0][:160]}"
    converted.ir_version = max(converted.ir_version, 10)
    return converted, None


def _eight_bit_nodes(model: Any) -> dict[str, str]:
    """The 8-bit convs of a 4-bit scheme (:func:`eight_bit_layers`), found structurally in the graph:
    a prediction conv is one whose outputs only feed the decode tail."""
    from quantsweep.model.graph import decode_tail

    tail = decode_tail(model)
    consumers: dict[str, list[str]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.name)

    def prediction(n: Any) -> bool:
        users = [c for o in n.output for c in consumers.get(o, [])]
        return n.name not in tail and bool(users) and all(u in tail for u in users)

    return eight_bit_layers([(n.name, next((a.i for a in n.attribute if a.name == "group"), 1), prediction(n))
                             for n in model.graph.node if n.op_type == "Conv"])


def _int8_activations(ctx: BuildContext, source: Path, keep_float: dict[str, str], out: Path,
                      calibration: str = "minmax") -> None:
    """W4A8's graph: ONNX Runtime's static QDQ of ``source`` into ``out`` (uint8 activations calibrated on
    ``ctx.calib`` by ``calibration``, per-channel int8 weights, replaced by :func:`_place_weights`).

    A W4A8 family's K probes hand ONNX Runtime the same float graph (their weights are placed after it)
    and the same float nodes, so its output is kept in ``ctx.work_dir`` under a key of everything it
    reads (the graph's bytes, the calibration ids, the method, the float nodes, ``reduce_range``, ONNX
    Runtime's version) and copied for the next probe: the percentile histogram is built once per family.
    """
    import hashlib
    import os

    import onnxruntime

    from quantsweep.files import atomic_replace
    from quantsweep.schemes.ort_int8 import ort_calibration, resolve_reduce_range

    reduce = resolve_reduce_range("auto")
    from quantsweep.model.info import inspect_onnx

    info = inspect_onnx(ctx.fp32_onnx, require_detector=False)
    batch = info.fixed_batch or 1
    method, calib_options = ort_calibration(calibration, -(-len(ctx.calib.ids) // batch), source)
    key = hashlib.sha256(Path(source).read_bytes())
    key.update(repr((ctx.calib.ids_hash, calibration, sorted(calib_options.items()), sorted(keep_float), reduce,
                     onnxruntime.__version__)).encode())
    cached = ctx.work_dir / f"ort-qdq-{calibration}-{key.hexdigest()[:16]}.onnx"
    if cached.exists():  # an earlier K probe of this family quantized the same graph
        atomic_replace(cached, out, copy=True)
        return

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from quantsweep.schemes.ort_int8 import ort_reader

    extra: dict[str, Any] = {"WeightSymmetric": True, "ActivationSymmetric": False, **calib_options}
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp.onnx")  # two builds may race to it
    # the 8-bit layers keep ORT's own weights: 7-bit where int8 kernels would saturate (no VNNI)
    try:
        quantize_static(str(source), str(tmp), ort_reader(ctx.calib, info.input_name, batch),
                        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=list(keep_float), extra_options=extra, calibrate_method=method)
    except ValueError as exc:
        if "bins" not in str(exc):
            raise
        # numpy cannot place 2048 float32 bins on an activation whose values differ by less than float32
        # resolution (a saturated tensor: seen on a YOLOv10m with seeded random weights at 640)
        raise QuantsweepError(f"ONNX Runtime's {calibration} calibrator cannot histogram an activation of "
                              f"{source.name} whose range is below float32 resolution ({exc})",
                              "use min-max activation ranges: the scheme w4a8-graph-gptq") from None
    atomic_replace(tmp, cached)
    atomic_replace(cached, out, copy=True)


def _place_weights(ctx: BuildContext, out: Path, weights: dict[str, tuple[np.ndarray, np.ndarray]],
                   calibration: str = "minmax") -> str:
    """Each quantized Conv's weight initializer and scales in ``out`` replaced by ``weights`` (4-bit
    values, times their group multipliers, as int8). Biases keep ORT's int32 quantization, rescaled.
    Returns the activation description."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(out))
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    replaced = 0
    for node in model.graph.node:
        if node.name not in weights or len(node.input) < 2:
            continue
        dq = producers.get(node.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits or dq.input[1] not in inits:
            continue
        q, scale = weights[node.name]
        if tuple(inits[dq.input[0]].dims) != q.shape:
            continue
        old_scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
        inits[dq.input[0]].CopyFrom(numpy_helper.from_array(q.astype(np.int8), dq.input[0]))
        inits[dq.input[1]].CopyFrom(numpy_helper.from_array(scale.astype(np.float32), dq.input[1]))
        bdq = producers.get(node.input[2]) if len(node.input) > 2 else None
        if bdq is not None and bdq.op_type == "DequantizeLinear" and bdq.input[0] in inits and bdq.input[1] in inits:
            # the int32 bias is read with scale input_scale x weight_scale once fused (QLinearConv): rescale it
            b32 = numpy_helper.to_array(inits[bdq.input[0]]).astype(np.float64)
            b_scale = numpy_helper.to_array(inits[bdq.input[1]]).astype(np.float64)
            new_b_scale = b_scale * scale.astype(np.float64) / old_scale
            b_new = np.clip(np.round(b32 * b_scale / new_b_scale), -(2 ** 31), 2 ** 31 - 1).astype(np.int32)
            inits[bdq.input[0]].CopyFrom(numpy_helper.from_array(b_new, bdq.input[0]))
            inits[bdq.input[1]].CopyFrom(numpy_helper.from_array(new_b_scale.astype(np.float32), bdq.input[1]))
        replaced += 1
    if replaced == 0 and weights:  # (no 4-bit weights at all: every conv kept at 8 bits, W8A8 - valid)
        raise QuantsweepError(f"{ctx.fp32_onnx}: ONNX Runtime quantized no Conv weight per channel",
                              "use the w4a16-graph scheme")
    onnx.save(model, str(out))
    return f"uint8 asymmetric per-tensor (ONNX Runtime, {calibration}); {replaced} conv weight(s) replaced"


@dataclass(frozen=True)
class GraphWeightOnly:
    """W8A16 / W4A16 by rewriting weight initializers of the ONNX graph (no PyTorch needed)."""

    family: ClassVar[str] = "graph-weight-only"
    precision: ClassVar[str] = "weight-only"
    k_keeps: ClassVar[str] = "8-bit"  # K: the first K convs of the ranking (damage per weight) keep 8-bit weights
    weight_bits: Literal[4, 8] = 8
    weight_scale: Literal["max", "mse"] = "max"
    k: int = 0
    float_dtype: Literal["fp32", "fp16"] = "fp32"
    head_policy: bool = True
    keep_8bit: Literal["stem+depthwise+predictions", "none"] = "stem+depthwise+predictions"
    reconstruction: Literal["none", "gptq", "adaround"] = "none"  # adaround: learned rounding (an option)
    act_bits: Literal[8] | None = None  # 8: activations int8 too (ONNX Runtime's QDQ placement), W4A8
    group_size: int = 0  # 4-bit convs: one scale per block of this many input columns (0: per output channel)
    storage: Literal["int4", "int8"] = "int4"  # how 4-bit weight-only convs are stored in the file
    # INT4 files: scales rounded to fp16 before quantizing, and float constants fp16 holds exactly stored as fp16
    scale_dtype: Literal["fp32", "fp16"] = "fp16"
    fp16_constants: bool = True
    # with GPTQ: each Conv's bias absorbs the mean output shift of its 4-bit weights. Off by default: it did
    # not pay when measured (demo W4A16 +0.01, W4A8 +0.23; real YOLOv5n K=0 +0.01, K=4 -0.56 points)
    bias_correction: bool = False
    # 4-bit weight-only convs: asymmetric groups (a UINT4 zero point next to each fp16 scale)
    zero_point: bool = False
    # W4A8: how ONNX Runtime calibrates the uint8 activation ranges (as int8-qdq's ``calibration``)
    act_calibration: Calibration = "minmax"
    registry: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        check_weight_fields(self, k_ok=self.weight_bits == 4)
        if self.reconstruction not in ("none", "gptq", "adaround"):
            raise QuantsweepError(f"reconstruction must be none, gptq or adaround (got {self.reconstruction!r})",
                                  "use gptq")
        if self.act_bits not in (None, 8):
            raise QuantsweepError(f"act_bits must be 8 or None (got {self.act_bits})", "use 8 or omit it")
        if self.group_size < 0 or (self.group_size and self.weight_bits != 4):
            raise QuantsweepError(f"group_size {self.group_size}: groups are for 4-bit weights",
                                  "use group_size 0 (per output channel), or 32/64/128 with 4-bit weights")
        if self.storage not in ("int4", "int8"):
            raise QuantsweepError(f"storage must be int4 or int8 (got {self.storage!r})", "use int4")
        if self.scale_dtype not in ("fp32", "fp16"):
            raise QuantsweepError(f"scale_dtype must be fp32 or fp16 (got {self.scale_dtype!r})", "use fp16")
        if self.zero_point and (self.weight_bits != 4 or self.act_bits or self.reconstruction == "adaround"):
            raise QuantsweepError("zero_point is for 4-bit weight-only schemes rounded to nearest or by GPTQ",
                                  "use zero_point with weight_bits 4, no act_bits, reconstruction none or gptq")
        if self.act_calibration not in CALIBRATIONS:
            raise QuantsweepError(f"unknown act_calibration {self.act_calibration!r}", "use minmax, entropy or percentile")
        if self.act_calibration != "minmax" and not self.act_bits:
            raise QuantsweepError("act_calibration is for schemes with int8 activations (act_bits 8)",
                                  "omit it, or set act_bits 8")
        if self.reconstruction != "none" and self.weight_bits != 4:
            raise QuantsweepError("GPTQ is for 4-bit weights (8-bit rounding to nearest loses nothing measurable)",
                                  "use reconstruction none with weight_bits 8")

    @property
    def name(self) -> str:
        method = (f"-{self.reconstruction}" if self.reconstruction != "none"
                  else ("-mse" if self.weight_scale == "mse" else ""))
        return (f"w{self.weight_bits}a{self.act_bits or 16}-graph" + method
                + ("-bc" if self.reconstruction == "gptq" and self.bias_correction else "")
                + ("-asym" if self.zero_point else "")
                + ("" if self.act_calibration == "minmax" else f"-{self.act_calibration}")
                + fp16_suffix(self) + ("" if self.head_policy else "-nohead")
                + (f"-k{self.k}" if self.k else ""))

    def _flat_dequantize(self, model: Any, init: Any, q: np.ndarray, groups: np.ndarray,
                         shape: tuple[int, ...], block: int, zeros: np.ndarray | None = None) -> list[Any]:
        """Replace weight ``init`` by its flattened 4-bit values (``INT4`` or int8), the scales
        (``groups`` [out, blocks]; one block: per channel) and DequantizeLinear -> Reshape nodes.
        With ``zeros`` (zero points [out, blocks]), the values ``q + zero`` are stored unsigned
        (``UINT4`` or uint8) next to their zero points."""
        import ml_dtypes
        from onnx import helper, numpy_helper

        wname = init.name
        q2 = q.reshape(shape[0], -1)
        blocked = block > 0
        width = block if blocked else q2.shape[1]
        if zeros is not None:
            q2 = q2.astype(np.int16) + np.repeat(zeros.astype(np.int16), width, axis=1)
        unsigned = zeros is not None
        kind = ((ml_dtypes.uint4 if unsigned else ml_dtypes.int4) if self.storage == "int4"
                else (np.uint8 if unsigned else np.int8))
        values = numpy_helper.from_array(q2.astype(kind), f"{wname}_q4")
        scales = groups.astype(np.float32) if blocked else groups[:, 0].astype(np.float32)
        model.graph.initializer.remove(init)
        model.graph.initializer.extend([values, numpy_helper.from_array(scales, f"{wname}_scale"),
                                        numpy_helper.from_array(np.array(shape, np.int64), f"{wname}_shape")])
        dq_inputs = [values.name, f"{wname}_scale"]
        if zeros is not None:
            zp = zeros if blocked else zeros[:, 0]
            model.graph.initializer.append(numpy_helper.from_array(zp.astype(kind), f"{wname}_zero"))
            dq_inputs.append(f"{wname}_zero")
        attrs = {"axis": 1, "block_size": block} if blocked else {"axis": 0}
        dq = helper.make_node("DequantizeLinear", dq_inputs, [f"{wname}_flat"], name=f"{wname}_DequantizeLinear")
        dq.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
        return [dq, helper.make_node("Reshape", [f"{wname}_flat", f"{wname}_shape"], [wname], name=f"{wname}_Reshape")]

    def after_clean(self, path: Path, settings: dict[str, Any]) -> None:
        """The last pass over the cleaned file (the graph clean-up folds ``Cast(constant)`` back to
        float32): an INT4 file stores its exactly-fp16 float constants (scales included) as fp16."""
        import onnx

        model, changed = onnx.load(str(path)), False
        if self.weight_bits == 4 and self.act_bits and self.storage == "int4":
            # W4A8: the int8 weights ONNX Runtime's kernels read become INT4 + Cast here, after the
            # clean-up (which would fold the Cast of a constant back into an int8 initializer)
            model, note = _to_int4_opset(model)
            # the smallest multiplier that divides a block is found again (at most the build's, <= 15: UINT4)
            moved = 0 if note else int8_to_int4_initializers(model, group=self.group_size)
            how = ("INT4 values x UINT4 group multipliers, multiplied back to int8 (Cast, Mul, Reshape, Cast)"
                   if self.group_size else "a Cast to int8")
            settings["storage"] = (f"INT4 initializers ({moved} conv weights; {how} before ONNX Runtime's "
                                   "per-channel DequantizeLinear, folded at load: int8 kernels as before; opset "
                                   f"{INT4_OPSET})" if moved else f"int8 initializers ({note or 'no 4-bit weights found'})")
            changed = bool(moved)
        if self.fp16_constants and str(settings.get("storage", "")).startswith(("INT4", "UINT4")):
            moved = exact_fp16_constants(model)
            if moved:
                settings["storage"] = settings["storage"][:-1] + f"; {moved} float constants stored as fp16 + Cast, exactly)"
                changed = True
        if changed:
            onnx.save(model, str(path))

    def build(self, ctx: BuildContext, keep_float: dict[str, str], out: Path) -> BuildResult:
        import onnx
        from onnx import helper, numpy_helper

        model = onnx.load(str(ctx.fp32_onnx))
        # 4-bit weight-only convs stored flat ([out, in x kh x kw]) in INT4 (or int8) behind a blocked DQ
        flat_store = self.weight_bits == 4 and not self.act_bits and (self.storage == "int4" or self.group_size > 0)
        storage_note = None
        if flat_store:
            model, storage_note = _to_int4_opset(model)
            flat_store = storage_note is None
        inits = {i.name: i for i in model.graph.initializer}
        users: dict[str, int] = {}
        for n in model.graph.node:
            for i in n.input:
                users[i] = users.get(i, 0) + 1
        new_nodes: list[Any] = []
        weights: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # conv -> (integer weights, scales)
        done = 0
        eight = _eight_bit_nodes(model) if self.weight_bits == 4 and self.keep_8bit != "none" else {}
        # K: the ranked nodes keep 8-bit weights (mixed 4/8), not float
        ranked = {n: f"{why}: kept at 8 bits" for n, why in keep_float.items() if why.startswith("sensitivity rank")}
        eight.update(ranked)
        keep_float = {n: why for n, why in keep_float.items() if n not in ranked}
        hessians: dict[str, tuple[np.ndarray, int]] = {}
        means: dict[str, np.ndarray] = {}
        reconstructed = corrected = smaller = 0
        max_mult = 0
        if self.act_bits and self.group_size:  # |q x m| <= 7 m must stay within the int8 weights' range
            from quantsweep.schemes.ort_int8 import resolve_reduce_range

            max_mult = min(15, (63 if resolve_reduce_range("auto") else 127) // 7)
        if self.reconstruction != "none":  # W4A8 too: against float inputs (its quantized ones measured worse)
            from quantsweep.schemes.gptq import conv_hessians

            targets = [n.name for n in model.graph.node if n.op_type == "Conv" and n.name not in keep_float
                       and n.name not in eight and not any(a.name == "group" and a.i > 1 for a in n.attribute)]
            hessians = conv_hessians(ctx.fp32_onnx, targets, ctx.calib.array(), means=means, positions=HESSIAN_PATCHES)
        for n in model.graph.node:
            widx = 1 if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm") else None
            if widx is None or n.name in keep_float or len(n.input) <= widx or n.input[widx] not in inits:
                continue
            wname = n.input[widx]
            w = numpy_helper.to_array(inits[wname])
            if w.dtype != np.float32 or w.ndim < 2 or users.get(wname, 0) != 1:
                continue
            # output-channel axis: Conv O,I,kh,kw -> 0; ConvTranspose I,O,.. -> 1; MatMul K,N -> 1
            axis = {"Conv": 0, "ConvTranspose": 1, "MatMul": w.ndim - 1,
                    "Gemm": 0 if any(a.name == "transB" and a.i for a in n.attribute) else 1}[n.op_type]
            bits = 8 if n.name in eight else self.weight_bits
            flat = flat_store and bits == 4 and n.op_type == "Conv" and axis == 0
            mult = zeros = low = None
            mse = self.weight_scale == "mse"
            if flat:
                block = block_for(w[0].size, self.group_size)
                smaller += int(block != self.group_size)
                if self.zero_point:
                    q2, groups, zeros = quantize_groups_asym(w.reshape(len(w), -1), block, mse,
                                                             fp16_scales=self.scale_dtype == "fp16")
                    low = -np.repeat(zeros.astype(np.float64), block or w[0].size, axis=1)
                else:
                    q2, groups = quantize_groups(w.reshape(len(w), -1), bits, block, mse,
                                                 fp16_scales=self.scale_dtype == "fp16")
                q, scale = q2.reshape(w.shape), groups[:, 0]
                full = np.repeat(groups, block, axis=1) if block else scale
            elif self.act_bits and bits == 4 and n.op_type == "Conv" and axis == 0 \
                    and (block := block_for(w[0].size, self.group_size)):
                # W4A8 groups: integer multipliers on one row scale, so the int8 kernels still apply
                q2, scale, mult_b = quantize_progressive(w.reshape(len(w), -1), block, max_mult, mse,
                                                         fp16_scales=self.scale_dtype == "fp16")
                mult = np.repeat(mult_b.astype(np.int32), block, axis=1)
                q, groups, full = q2.reshape(w.shape), scale[:, None], scale[:, None] * mult
            else:  # W4A8's 4-bit scales are fp16 values too (its INT4 file stores them so)
                q, scale = quantize_weight(w, bits, axis, mse, fp16_scales=bool(
                    self.act_bits and bits == 4 and self.storage == "int4" and self.scale_dtype == "fp16"))
                groups, full = scale[:, None], scale
            if n.name in hessians and axis == 0 and hessians[n.name][0].shape[0] == w[0].size:
                from quantsweep.schemes.adaround import adaround_quantize
                from quantsweep.schemes.gptq import gptq_quantize

                if self.reconstruction == "adaround":
                    q = adaround_quantize(w.reshape(len(w), -1), hessians[n.name][0], full, 2 ** (bits - 1) - 1)
                else:
                    q = gptq_quantize(w.reshape(len(w), -1), hessians[n.name][0], full, 2 ** (bits - 1) - 1,
                                      low=low)
                q = q.reshape(w.shape)
                reconstructed += 1
                if self.bias_correction and n.name in means and len(n.input) > 2 and n.input[2] in inits:
                    # E[W x] - E[Wq x] = (W - Wq) E[x]: the shift the 4-bit weights add, given back in the bias
                    shift = (w.reshape(len(w), -1).astype(np.float64)
                             - q.reshape(len(w), -1) * np.asarray(full, np.float64).reshape(len(w), -1)) @ means[n.name]
                    bias = numpy_helper.to_array(inits[n.input[2]]).astype(np.float64) + shift
                    inits[n.input[2]].CopyFrom(numpy_helper.from_array(bias.astype(np.float32), n.input[2]))
                    corrected += 1
            if bits == 4 and not flat:
                if mult is not None:  # int8 values q x m, read with the row scale
                    q = (q.reshape(len(w), -1).astype(np.int32) * mult).astype(np.int8).reshape(w.shape)
                weights[n.name] = (q, scale)
            if self.act_bits:  # placed into ONNX Runtime's QDQ graph below
                done += 1
                continue
            if flat:
                new_nodes += self._flat_dequantize(model, inits[wname], q, groups, w.shape, block, zeros)
                done += 1
                continue
            qname, sname, zname = f"{wname}_q{bits}", f"{wname}_scale", f"{wname}_zp"
            model.graph.initializer.remove(inits[wname])
            model.graph.initializer.extend([numpy_helper.from_array(q, qname),
                                            numpy_helper.from_array(scale, sname),
                                            numpy_helper.from_array(np.zeros(len(scale), np.int8), zname)])
            new_nodes.append(helper.make_node("DequantizeLinear", [qname, sname, zname], [wname],
                                              name=f"{wname}_DequantizeLinear", axis=axis))
            done += 1
        if not done:
            raise QuantsweepError(f"{ctx.fp32_onnx}: no float weight initializers to quantize",
                                  "pass an FP32 model")
        if self.act_bits:  # from the graph with corrected biases, float weights (replaced after ORT)
            source = ctx.work_dir / f"{self.name}.bias-corrected.onnx"
            ctx.work_dir.mkdir(parents=True, exist_ok=True)
            onnx.save(model, str(source))
            _int8_activations(ctx, source, keep_float, out, self.act_calibration)
            activations = _place_weights(ctx, out, weights, self.act_calibration)
        else:
            activations = "float (not quantized)"
            # DequantizeLinear with per-axis scales needs opset >= 13
            for op in model.opset_import:
                if op.domain in ("", "ai.onnx") and op.version < 13:
                    op.version = 13
            nodes = new_nodes + list(model.graph.node)
            del model.graph.node[:]
            model.graph.node.extend(nodes)
            onnx.save(model, str(out))
        if self.weight_bits != 4:
            stored = "int8 initializers"
        elif flat_store:
            kind = ("UINT4" if self.zero_point else "INT4") if self.storage == "int4" else (
                "uint8" if self.zero_point else "int8")
            stored = (f"{kind} initializers{' and zero points' if self.zero_point else ''} (flattened convs, opset "
                      f"{INT4_OPSET} DequantizeLinear{f' block_size {self.group_size}' if self.group_size else ''}"
                      + (f" ({smaller} conv(s) whose columns {self.group_size} does not divide: a divisor near it, as OpenVINO needs)"
                         if smaller else "") + " + Reshape"
                      f"{'; fp16 scales' if self.scale_dtype == 'fp16' else ''})")
        else:
            stored = "int8 initializers" + (f" ({storage_note})" if storage_note else "")
        return BuildResult(out, "quantsweep graph weight-only (int weights + DequantizeLinear)" if not self.act_bits
                           else "onnxruntime quantize_static (activations) + quantsweep 4-bit weights",
                           onnx.__version__,
                           {"weights": f"int{self.weight_bits} {'asymmetric (a zero point per group)' if self.zero_point else 'symmetric'} "
                                       + (f"per group of {self.group_size} input columns"
                                          if flat_store and self.group_size else
                                          f"per group of {self.group_size} input columns as integer multipliers "
                                          f"(1..{max_mult}) of one fp scale per output channel, read as int8 by "
                                          "the int8 kernels (QServe's progressive groups)"
                                          if max_mult else "per-output-channel")
                                       + f" ({'MSE-searched' if self.weight_scale == 'mse' else 'max'} scale)",
                            "storage": stored, "group_size": self.group_size if flat_store or max_mult else 0,
                            **({"group_multiplier_max": max_mult} if max_mult else {}),
                            "activations": activations, "weights_quantized": done,
                            "weights_8bit": [{"node": n, "why": w} for n, w in eight.items()],
                            "reconstruction": ({"method": "GPTQ (act-order, blocks of 128, 1% dampening)"
                                                if self.reconstruction == "gptq" else
                                                "AdaRound (learned up/down rounding against the conv's output error "
                                                "from its input Hessian; 300 Adam steps, regulariser 0.01, beta 20->2)",
                                                "convs": reconstructed, "bias_corrected": corrected, "calibration_images": len(ctx.calib.ids),
                                                "patches_per_image": f"every one (at most {HESSIAN_PATCHES})"}
                                               if self.reconstruction != "none" else "none (round to nearest)"),
                            "calibration_method": ("input Hessians (XᵀX) from the calibration images"
                                                   if self.reconstruction != "none" else "none (weights only)")},
                           dict(keep_float))


SPECS = (
    SchemeSpec("w8a16-graph", GraphWeightOnly, "INT8 per-channel weights on the ONNX graph (no .pt needed)"),
    SchemeSpec("w4a16-graph-gptq-asym", GraphWeightOnly, "4-bit weights on the ONNX graph reconstructed by GPTQ "
               "against calibration activations, asymmetric groups (an fp16 scale and a UINT4 zero point per 64 input "
               "columns: sixteen levels on each group's own range), stored as UINT4; no .pt needed; K = the convs whose "
               "4-bit weights do the most damage per weight kept at 8 bits",
               preset={"weight_bits": 4, "weight_scale": "mse", "reconstruction": "gptq", "group_size": 64,
                       "zero_point": True},
               k_sets=True, default=True),
    SchemeSpec("w4a16-graph-gptq", GraphWeightOnly, "4-bit GPTQ weights on the ONNX graph, symmetric groups "
               "(fp16 scales per 32 input columns, INT4; no .pt needed): the option the asymmetric default is measured "
               "against; K as for w4a16-graph-gptq-asym",
               preset={"weight_bits": 4, "weight_scale": "mse", "reconstruction": "gptq", "group_size": 32},
               k_sets=True),
    SchemeSpec("w4a8-graph-gptq-percentile", GraphWeightOnly, "4-bit GPTQ weights on the ONNX graph with int8 "
               "activations placed by ONNX Runtime's quantizer, their ranges the 99.999th percentiles on the calibration "
               "images: per 32 input columns an integer multiplier of the channel's scale, so the int8 kernels still "
               "apply (stored as INT4 + UINT4, made int8 at load; no .pt needed); K = the convs whose 4-bit weights "
               "do the most damage per weight kept at 8 bits",
               preset={"weight_bits": 4, "act_bits": 8, "weight_scale": "mse", "reconstruction": "gptq", "group_size": 32,
                       "act_calibration": "percentile"},
               k_sets=True, default=True),
    SchemeSpec("w4a8-graph-gptq", GraphWeightOnly, "W4A8 as w4a8-graph-gptq-percentile with min-max activation "
               "ranges (ONNX Runtime's default): the option the percentile default is measured against",
               preset={"weight_bits": 4, "act_bits": 8, "weight_scale": "mse", "reconstruction": "gptq", "group_size": 32},
               k_sets=True),
    SchemeSpec("w4a16-graph-adaround", GraphWeightOnly, "4-bit weights on the ONNX graph with learned rounding "
               "(AdaRound from each conv's input Hessian; groups of 32, INT4): the option GPTQ is measured against",
               preset={"weight_bits": 4, "weight_scale": "mse", "reconstruction": "adaround", "group_size": 32},
               k_sets=True),
    SchemeSpec("w4a16-graph-mse", GraphWeightOnly, "4-bit MSE weights on the ONNX graph, rounded to nearest "
               "(the baseline GPTQ improves on)", preset={"weight_bits": 4, "weight_scale": "mse"}),
)
