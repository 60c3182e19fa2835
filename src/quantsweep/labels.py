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

__all__ = ["INT_COMPUTE_KERNELS", "LABELS", "label_from_graphs", "label_from_trt_layers"]

LABELS = ("float", "accelerated", "emulated", "unsupported")
INT_COMPUTE_KERNELS = frozenset({
    "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "MatMulIntegerToFloat",
    "QGemm", "MatMulNBits", "DynamicQuantizeMatMul", "QAttention", "NhwcQLinearConv",
})


def label_from_graphs(original: Any, optimized: Any) -> tuple[str, dict[str, Any]]:
    """Label a candidate from its ONNX graph and the graph ORT optimized it into.

    Returns:
        ``(label, evidence)``; evidence holds op counts and the kernel tallies behind the label.
    """
    from quantsweep.graph import COMPUTE_OPS, dq_fed_inputs, op_counts, qdq_counts

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


def label_from_trt_layers(layers: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Label from TensorRT engine-inspector layer info (``[{"Name", "Precision"/"Outputs"...}]``)."""
    precisions: dict[str, int] = {}
    for layer in layers:
        prec = str(layer.get("Precision") or layer.get("precision") or "")
        if not prec:
            outs = layer.get("Outputs") or []
            prec = str(outs[0].get("Format/Datatype", "")) if outs else ""
        key = next((p for p in ("FP8", "INT8", "INT4", "FP16", "BF16", "FP32")
                    if p in prec.upper().replace("FLOAT8", "FP8").replace("HALF", "FP16")), "OTHER")
        precisions[key] = precisions.get(key, 0) + 1
    low = sum(precisions.get(p, 0) for p in ("FP8", "INT8", "INT4"))
    return ("accelerated" if low else "emulated"), {"layer_precisions": precisions}
