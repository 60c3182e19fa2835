"""Per-node sensitivity, measured on the very ONNX graph that will be deployed.

Method ("restore one node to float"): take the fully quantized QDQ model of the chosen
precision (one calibration, reused for every node), and rewrite it once so that every
dequantized input of every rankable compute node is mixed with its float original through a
runtime gate: ``x = dq + g_i * (float - dq)``. One ONNX Runtime session then evaluates any
subset of nodes restored to float by feeding a gate vector; nothing is recalibrated or rebuilt.

Damage is the relative squared error of the head's pre-decode tensors (the inputs of the decode
tail: box distributions and class logits) against the FP32 model over a few calibration
images; a node's score is how much of the fully-quantized damage restoring it alone removes.
The top-K nodes of this ranking are the ones the K-set candidates keep in float.

Example:
    >>> ranking = rank_nodes(fp32, qdq, calib_images)  # doctest: +SKIP
    >>> ranking[0]["node"], ranking[0]["score"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from quantsweep.errors import QuantsweepError

__all__ = ["GatedProbe", "build_gated_model", "rank_nodes", "ranking_markdown"]

log = logging.getLogger(__name__)
GATES = "qs_gates"


def _head_tensors(model: Any) -> list[str]:
    """Tensors flowing from the network body into the decode tail (pre-decode head outputs)."""
    from quantsweep.graph import decode_tail

    tail = decode_tail(model)
    produced_by_body = {o for n in model.graph.node if n.name not in tail for o in n.output}
    seen: list[str] = []
    for n in model.graph.node:
        if n.name in tail:
            for i in n.input:
                if i in produced_by_body and i not in seen:
                    seen.append(i)
    if not seen:  # no tail: fall back to the graph outputs
        seen = [o.name for o in model.graph.output]
    return seen


def build_gated_model(fp32: Any, qdq: Any, exclude: set[str] | frozenset[str] = frozenset(),
                      ) -> tuple[Any, list[str], list[str]]:
    """Rewrite ``qdq`` so each rankable node's dequantized inputs are gated back to float.

    Args:
        fp32: the FP32 baseline ModelProto (source of float weights and of node names).
        qdq: the fully quantized ModelProto of the same graph.
        exclude: node names never ranked (e.g. the decode tail).

    Returns:
        ``(gated model, ranked node names in gate order, probe tensor names)``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from quantsweep.graph import COMPUTE_OPS, dq_fed_inputs

    gated = onnx.ModelProto()
    gated.CopyFrom(qdq)
    g = gated.graph
    producers = {o: n for n in g.node for o in n.output}
    fp32_nodes = {n.name: n for n in fp32.graph.node}
    fp32_inits = {i.name: i for i in fp32.graph.initializer}
    fed = dq_fed_inputs(gated)
    ranked: list[str] = []
    gathers: list[Any] = []
    mixes: dict[str, list[Any]] = {}
    extra_inits: list[Any] = []
    copied: dict[str, str] = {}
    for node in g.node:
        if node.op_type not in COMPUTE_OPS or node.name in exclude or node.name not in fed:
            continue
        gate_idx = len(ranked)
        sources: list[tuple[int, str]] = []
        for j in fed[node.name]:
            dq = producers[node.input[j]]
            src = producers.get(dq.input[0])
            if src is not None and src.op_type == "QuantizeLinear":
                sources.append((j, src.input[0]))  # activation: the tensor before Q
                continue
            ref = fp32_nodes.get(node.name)
            if ref is not None and j < len(ref.input) and ref.input[j] in fp32_inits:
                name = ref.input[j]
                if name not in copied:
                    copied[name] = f"qs_f32/{name}"
                    init = onnx.TensorProto()
                    init.CopyFrom(fp32_inits[name])
                    init.name = copied[name]
                    extra_inits.append(init)
                sources.append((j, copied[name]))
        if not sources:
            continue
        ranked.append(node.name)
        gate = f"qs_gate/{gate_idx}"
        extra_inits.append(numpy_helper.from_array(np.array([gate_idx], np.int64), f"{gate}/idx"))
        gathers.append(helper.make_node("Gather", [GATES, f"{gate}/idx"], [gate], axis=0))
        for j, float_src in sources:
            dq_out = node.input[j]
            base = f"qs_mix/{gate_idx}/{j}"
            mixes.setdefault(node.name, []).extend([
                helper.make_node("Sub", [float_src, dq_out], [f"{base}/diff"]),
                helper.make_node("Mul", [f"{base}/diff", gate], [f"{base}/scaled"]),
                helper.make_node("Add", [dq_out, f"{base}/scaled"], [f"{base}/out"]),
            ])
            node.input[j] = f"{base}/out"
    if not ranked:
        raise QuantsweepError("the quantized model has no rankable quantized compute nodes",
                              "check that the scheme quantizes Conv/MatMul nodes")
    # A topological order is kept: Gathers read only graph inputs/initializers, and each mix
    # reads tensors produced before its consumer, so it goes right before that consumer.
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(gathers)
    for n in nodes:
        g.node.extend(mixes.get(n.name, []))
        g.node.append(n)
    g.initializer.extend(extra_inits)
    g.input.append(helper.make_tensor_value_info(GATES, TensorProto.FLOAT, [len(ranked)]))
    probes = _head_tensors(fp32)
    existing = {o.name for o in g.output}
    for p in probes:
        if p not in existing:
            g.output.append(helper.make_tensor_value_info(p, TensorProto.FLOAT, None))
    return gated, ranked, probes


def _probe_session(model: Any, probes: list[str], threads: int | None) -> Any:
    import onnxruntime as ort

    from quantsweep.backends import physical_cores

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.intra_op_num_threads = threads or physical_cores()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts,
                                providers=["CPUExecutionProvider"])


class GatedProbe:
    """One session over the gated graph: the damage of any set of nodes restored to float.

    Example:
        >>> probe = GatedProbe(Path("fp32.onnx"), Path("int8.onnx"), images)  # doctest: +SKIP
        >>> probe.damage({"/model.0/conv/Conv"}) < probe.damage(set())  # doctest: +SKIP
    """

    def __init__(self, fp32_path: Path, qdq_path: Path, images: np.ndarray,
                 exclude: set[str] | None = None, threads: int | None = None) -> None:
        import onnx

        from quantsweep.graph import decode_tail
        from quantsweep.source import inspect_onnx

        fp32, qdq = onnx.load(str(fp32_path)), onnx.load(str(qdq_path))
        exclude = set(decode_tail(fp32)) if exclude is None else exclude
        gated, self.nodes, self.probes = build_gated_model(fp32, qdq, exclude)
        self.ops = {n.name: n.op_type for n in gated.graph.node}
        info = inspect_onnx(fp32_path)
        batch = info.fixed_batch or 1
        self._input = info.input_name
        self._sess = _probe_session(gated, self.probes, threads)
        self.feeds = [images[i:i + batch] for i in range(0, len(images) - batch + 1, batch)]
        if not self.feeds:
            raise QuantsweepError("no images for the sensitivity probe", "pass calibration images")
        self.runs = 0
        self._reference = self._run(np.ones(len(self.nodes), np.float32))  # all gates open = float
        self._energy = [sum(float(np.square(t).sum()) for t in outs) for outs in self._reference]

    def _run(self, gates: np.ndarray) -> list[list[np.ndarray]]:
        self.runs += len(self.feeds)
        return [self._sess.run(self.probes, {self._input: x, GATES: gates}) for x in self.feeds]

    def damage(self, restored: set[str] | frozenset[str] = frozenset()) -> float:
        """Mean relative squared error vs FP32 of the head tensors with ``restored`` nodes in float."""
        unknown = set(restored) - set(self.nodes)
        if unknown:
            raise QuantsweepError(f"not rankable quantized nodes: {sorted(unknown)[:3]}",
                                  "name compute nodes of the quantized graph")
        gates = np.array([1.0 if n in restored else 0.0 for n in self.nodes], np.float32)
        total = 0.0
        for outs, ref, e in zip(self._run(gates), self._reference, self._energy):
            total += sum(float(np.square(o - r).sum()) for o, r in zip(outs, ref)) / max(e, 1e-12)
        return total / len(self.feeds)


def rank_nodes(fp32_path: Path, qdq_path: Path, images: np.ndarray, precision: str,
               exclude: set[str] | None = None, threads: int | None = None) -> dict[str, Any]:
    """Rank the quantized compute nodes of ``qdq_path`` by the damage their quantization does.

    Args:
        fp32_path: the FP32 baseline ONNX.
        qdq_path: the fully quantized model of the precision being ranked (K=0, head policy on).
        images: calibration images ``[N,3,H,W]`` (a few are enough: the signal is dense).
        precision: label recorded in the ranking (``int8``/``fp8``).
        exclude: nodes not to rank (default: the decode tail).
        threads: ORT intra-op threads.

    Returns:
        ``{"ranking": [{node, op, score, rank, precision}], "damage_full", "cost": {...}}``.
    """
    t0 = time.perf_counter()
    probe = GatedProbe(fp32_path, qdq_path, images, exclude, threads)
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    full = probe.damage()
    scores = [full - probe.damage({node}) for node in probe.nodes]
    run_s = time.perf_counter() - t1
    order = sorted(range(len(probe.nodes)), key=lambda k: (-scores[k], k))
    ranking = [{"node": probe.nodes[k], "op": probe.ops.get(probe.nodes[k], "?"), "score": float(scores[k]),
                "rank": r + 1, "precision": precision} for r, k in enumerate(order)]
    return {"what": "damage removed by restoring one node to float in the fully quantized graph "
                    "(relative squared error of the pre-decode head tensors vs FP32)",
            "precision": precision, "ranking": ranking, "damage_full": full,
            "probes": probe.probes, "images": int(len(images)),
            "cost": {"build_s": round(build_s, 3), "run_s": round(run_s, 3), "forward_passes": probe.runs},
            "qdq_model": str(qdq_path), "fp32_model": str(fp32_path)}


def ranking_markdown(result: dict[str, Any], top: int = 20) -> str:
    """The top of a ranking as a Markdown table."""
    lines = [f"Sensitivity ({result['precision']}, {result['images']} calibration images; "
             f"full-quantized damage {result['damage_full']:.4g}) — score ↑ = more sensitive",
             "", "| rank | node | op | score ↑ |", "|---:|---|---|---:|"]
    for r in result["ranking"][:top]:
        lines.append(f"| {r['rank']} | `{r['node']}` | {r['op']} | {r['score']:.4g} |")
    return "\n".join(lines) + "\n"
