"""Honest labels: does a runtime really run low-precision kernels for a candidate?

Decided from evidence, never from a table: the graph ONNX Runtime actually executes (its
optimized model, dumped at session creation) or a TensorRT engine's layer precisions.

- ``float``: the model has no quantization at all (the FP32 reference).
- ``accelerated``: integer/low-precision kernels run for most quantized compute nodes
  (e.g. QLinearConv, ConvInteger, MatMulInteger, MatMulNBits in ORT's optimized graph).
- ``emulated``: Q/DQ nodes run around float kernels (or weights are dequantized and computed
  in float): same numerics as the deployment target, none of the speed.
- ``unsupported``: the runtime could not load or run the candidate (the error is recorded).
"""

from __future__ import annotations

from typing import Any

__all__ = ["INT_COMPUTE_KERNELS", "label_from_graphs", "label_from_trt_layers"]

INT_COMPUTE_KERNELS = frozenset({
    "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "MatMulIntegerToFloat",
    "QGemm", "MatMulNBits", "DynamicQuantizeMatMul", "QAttention", "NhwcQLinearConv",
})


def label_from_graphs(original: Any, optimized: Any) -> tuple[str, dict[str, Any]]:
    """Label a candidate from its ONNX graph and the graph ORT optimized it into.

    Returns:
        ``(label, evidence)``; evidence holds op counts and the kernel tallies behind the label.
    """
    from quantsweep.model.graph import COMPUTE_OPS, dq_fed_inputs, op_counts, qdq_counts

    before = qdq_counts(original)
    after_ops = op_counts(optimized)
    int_kernels = {op: n for op, n in after_ops.items() if op in INT_COMPUTE_KERNELS}
    fed = dq_fed_inputs(optimized)
    float_on_dq = sum(1 for n in optimized.graph.node
                      if n.name in fed and (n.op_type in COMPUTE_OPS or n.op_type == "FusedConv"))
    n_int = sum(int_kernels.values())
    evidence = {"qdq_in_model": before, "optimized_op_counts": after_ops,
                "int_compute_kernels": n_int, "float_compute_on_dequantized_inputs": float_on_dq,
                "qdq_left_after_optimization": {op: after_ops.get(op, 0)
                                                for op in ("QuantizeLinear", "DequantizeLinear")}}
    if before["QuantizeLinear"] == 0 and before["DequantizeLinear"] == 0:
        return "float", evidence
    if n_int > 0 and n_int >= float_on_dq:
        return "accelerated", evidence
    return "emulated", evidence


_TRT_COMPUTE = ("convolution", "matrixmultiply", "gemm", "fullyconnected", "deconvolution")


def _trt_precision(text: str) -> str:
    t = text.upper().replace("FLOAT8", "FP8").replace("HALF", "FP16")
    return next((p for p in ("FP8", "INT8", "INT4", "FP16", "BF16", "FP32", "FLOAT") if p in t), "OTHER").replace(
        "FLOAT", "FP32")


def label_from_trt_layers(layers: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Label from TensorRT engine-inspector layers (detailed verbosity).

    A compute layer (convolution, matrix multiply) counts as low precision when the data it
    consumes is INT8/FP8/INT4: its first input's ``Format/Datatype`` (or a ``Precision`` field).
    ``accelerated`` when at least one does, else ``emulated``.
    """
    precisions: dict[str, int] = {}
    low = 0
    for layer in layers:
        kind = f"{layer.get('LayerType', '')} {layer.get('ParameterType', '')} {layer.get('Name', '')}".lower()
        if not any(c in kind for c in _TRT_COMPUTE):
            continue
        ins = layer.get("Inputs") or []
        text = str(layer.get("Precision") or (ins[0].get("Format/Datatype", "") if ins and isinstance(ins[0], dict)
                                               else ""))
        prec = _trt_precision(text)
        precisions[prec] = precisions.get(prec, 0) + 1
        low += prec in ("FP8", "INT8", "INT4")
    return ("accelerated" if low else "emulated"), {"compute_layer_input_precisions": precisions,
                                                    "low_precision_compute_layers": low}
