"""Graph surgery for the 4-bit graph schemes: which convs stay at 8 bits (found structurally), W4A8's
int8 activations by ONNX Runtime's static QDQ, and the quantized weights placed into that graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from quantsweep.errors import QuantsweepError
from quantsweep.schemes.base import BuildContext, eight_bit_layers

__all__ = ["eight_bit_nodes", "int8_activations", "place_weights"]


def eight_bit_nodes(model: Any) -> dict[str, str]:
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


def int8_activations(ctx: BuildContext, source: Path, keep_float: dict[str, str], out: Path,
                      calibration: str = "minmax") -> None:
    """W4A8's graph: ONNX Runtime's static QDQ of ``source`` into ``out`` (uint8 activations calibrated on
    ``ctx.calib`` by ``calibration``, per-channel int8 weights, replaced by :func:`place_weights`).

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
    from quantsweep.model.formats import inspect_model

    info = inspect_model(ctx.fp32_onnx, require_detector=False)
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


def place_weights(ctx: BuildContext, out: Path, weights: dict[str, tuple[np.ndarray, np.ndarray]],
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
