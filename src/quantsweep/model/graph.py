"""Pure analyses of an ONNX detector graph: compute nodes, the decode tail, Q/DQ bookkeeping.

The *decode tail* is found from the graph's structure, not from node names, so it holds for
every supported layout and exporter: a node is in the tail when no compute node (Conv,
ConvTranspose, MatMul, Gemm) is reachable downstream of it, and a compute node is in the tail
when a Softmax feeds it (the DFL convolution of YOLOv8/10/11 heads: fed by a Softmax through layout-only ops, with no
compute node after it; an attention Softmax does not qualify). That covers the DFL, box
decode, the concat of boxes with scores, and the sigmoid/TopK/Gather of end-to-end heads.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

__all__ = ["COMPUTE_OPS", "compute_nodes", "decode_tail", "dq_fed_inputs", "float_compute_nodes",
           "OV_CONV_SUFFIX", "ir_graph_facts", "op_counts", "qdq_counts"]

COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
_QDQ = ("QuantizeLinear", "DequantizeLinear")
_LAYOUT_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity"})


def _producers(model: Any) -> dict[str, Any]:
    return {o: n for n in model.graph.node for o in n.output}


def _consumers(model: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for n in model.graph.node:
        for i in n.input:
            out[i].append(n)
    return out


def op_counts(model: Any) -> dict[str, int]:
    """Node count per op type (``{"Conv": 80, ...}``), sorted by name."""
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


def qdq_counts(model: Any) -> dict[str, int]:
    """Number of QuantizeLinear and DequantizeLinear nodes."""
    counts = op_counts(model)
    return {op: counts.get(op, 0) for op in _QDQ}


def compute_nodes(model: Any) -> list[str]:
    """Names of the compute nodes (Conv, ConvTranspose, MatMul, Gemm) in graph order."""
    return [n.name for n in model.graph.node if n.op_type in COMPUTE_OPS]


def decode_tail(model: Any) -> dict[str, str]:
    """The nodes to keep in float under the YOLO head policy, each with the reason.

    Returns:
        ``{node_name: reason}`` in graph order.
    """
    consumers = _consumers(model)
    producers = _producers(model)
    nodes = list(model.graph.node)
    # Reverse topological sweep: does any compute node lie downstream of each node?
    feeds_compute: dict[str, bool] = {}
    for n in reversed(nodes):
        downstream = [c for o in n.output for c in consumers.get(o, [])]
        feeds_compute[n.name] = any(c.op_type in COMPUTE_OPS or feeds_compute.get(c.name, False)
                                    for c in downstream)
    after_softmax: set[str] = set()  # fed by a Softmax through layout-only ops
    for n in nodes:
        ups = [producers[i] for i in n.input if i in producers]
        if any(u.op_type == "Softmax" or (u.name in after_softmax and u.op_type in _LAYOUT_OPS)
               for u in ups):
            after_softmax.add(n.name)
    tail: dict[str, str] = {}
    for n in nodes:
        if n.op_type in _QDQ:
            continue
        if n.op_type in COMPUTE_OPS and n.name in after_softmax and not feeds_compute[n.name]:
            tail[n.name] = "DFL convolution (fed by Softmax) of the box decode"
        elif n.op_type not in COMPUTE_OPS and not feeds_compute[n.name]:
            tail[n.name] = "decode tail: no compute node downstream (boxes/scores/TopK/Gather)"
    return tail


def dq_fed_inputs(model: Any) -> dict[str, list[int]]:
    """For each node, the indices of its inputs produced by a DequantizeLinear (directly, or through the
    Reshape that gives a flattened 4-bit weight its convolution shape back)."""
    producers = _producers(model)
    weights = {i.name for i in model.graph.initializer}

    def dequantized(tensor: str) -> bool:
        p = producers.get(tensor)
        if p is not None and p.op_type == "Reshape":  # only a dequantized *initializer* is seen through
            p = producers.get(p.input[0])
            return p is not None and p.op_type == "DequantizeLinear" and p.input[0] in weights
        return p is not None and p.op_type == "DequantizeLinear"

    out: dict[str, list[int]] = {}
    for n in model.graph.node:
        idx = [k for k, i in enumerate(n.input) if dequantized(i)]
        if idx:
            out[n.name] = idx
    return out


def float_compute_nodes(model: Any) -> list[str]:
    """Compute nodes that read no dequantized input: they run entirely in float."""
    fed = dq_fed_inputs(model)
    return [n.name for n in model.graph.node if n.op_type in COMPUTE_OPS and n.name not in fed]


_IR_COMPUTE = frozenset({"Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul"})
#: OpenVINO's ONNX frontend names a Conv with a bias ``<name>/WithoutBiases`` (+ an Add ``<name>``)
OV_CONV_SUFFIX = "/WithoutBiases"


def ir_graph_facts(xml: Path) -> dict[str, Any]:
    """What an OpenVINO IR holds: op counts, compute nodes, and the compute nodes left in float.

    A compute node runs quantized when its activation input (input 0) comes from a FakeQuantize.
    Names are the ONNX nodes' names: OpenVINO's ONNX frontend keeps them, except that a Conv with a
    bias becomes ``<name>/WithoutBiases`` (+ an Add called ``<name>``); the suffix is dropped here.
    """
    import openvino as ov

    model = ov.Core().read_model(str(xml))
    counts = Counter(op.get_type_name() for op in model.get_ops())
    compute, floating = [], []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in _IR_COMPUTE:
            continue
        name = op.get_friendly_name().removesuffix(OV_CONV_SUFFIX)
        compute.append(name)
        if op.input_value(0).get_node().get_type_name() != "FakeQuantize":
            floating.append(name)
    return {"op_counts": dict(sorted(counts.items())), "compute_nodes": compute, "float_compute_nodes": floating}
