"""Per-node sensitivity, measured on the very ONNX graph that will be deployed.

Method ("restore one node to float"): take the fully quantized QDQ model of the chosen
precision (one calibration, reused for every node), and rewrite it once so that every
dequantized input of every rankable compute node is mixed with its float original through a
runtime switch: ``x = float if g_i else dq`` (an ``If`` node). One ONNX Runtime session then evaluates any
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

__all__ = ["GatedProbe", "build_gated_model", "rank_nodes", "ranking_markdown", "score_text"]

log = logging.getLogger(__name__)
GATES = "qs_gates"


def _head_tensors(model: Any) -> list[str]:
    """Tensors flowing from the network body into the decode tail (pre-decode head outputs)."""
    from quantsweep.model.graph import decode_tail

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


def _switch(cond: str, then_name: str, else_name: str, out: str) -> Any:
    """``out = then_name if cond else else_name`` without touching the data.

    An ``If`` hands over one of two outer-scope tensors; ``Where``/``Mul`` mixing costs more than
    the quantized graph itself in ORT (broadcast elementwise kernels over every activation).
    """
    from onnx import TensorProto, helper

    def branch(src: str, tag: str) -> Any:
        return helper.make_graph([helper.make_node("Identity", [src], [f"{out}/{tag}"])], tag, [],
                                 [helper.make_tensor_value_info(f"{out}/{tag}", TensorProto.FLOAT, None)])

    return helper.make_node("If", [cond], [out], then_branch=branch(then_name, "then"),
                            else_branch=branch(else_name, "else"))


def _unfold(tensor: str, ref: Any, j: int, producers: dict[str, Any], fp32_producers: dict[str, Any],
            fp32_inits: dict[str, Any], out: str, nodes: list[Any], inits: list[Any]) -> str:
    """The float value a quantized input stands for.

    Quantizers fold a Relu/Clip that feeds a Q into the Q's range (the zero point clips), so the
    tensor before Q is then the pre-activation; the FP32 graph says which activation it was.
    """
    import onnx

    if ref is None or j >= len(ref.input):
        return tensor
    fp_prod = fp32_producers.get(ref.input[j])
    q_prod = producers.get(tensor)
    if fp_prod is None or fp_prod.op_type not in ("Relu", "Clip") or (q_prod is not None and q_prod.op_type == fp_prod.op_type):
        return tensor
    act = onnx.NodeProto()
    act.CopyFrom(fp_prod)
    act.name = out
    act.input[0] = tensor
    for k in range(1, len(act.input)):  # Clip's min/max
        if act.input[k] in fp32_inits:
            init = onnx.TensorProto()
            init.CopyFrom(fp32_inits[act.input[k]])
            init.name = f"{out}/{k}"
            inits.append(init)
            act.input[k] = init.name
    del act.output[:]
    act.output.append(out)
    nodes.append(act)
    return out


def build_gated_model(fp32: Any, qdq: Any, exclude: set[str] | frozenset[str] = frozenset(),
                      local: bool = False, weights_only: bool = False
                      ) -> tuple[Any, list[str], list[str], list[tuple[str, str]]]:
    """Rewrite ``qdq`` so each rankable node's dequantized inputs are gated back to float.

    Args:
        fp32: the FP32 baseline ModelProto (source of float weights and of node names).
        qdq: the fully quantized ModelProto of the same graph.
        exclude: node names never ranked (e.g. the decode tail).
        weights_only: gate only the weight (initializer) inputs; quantized activations stay
            quantized (a 4-bit scheme's K set keeps *weights* at 8 bits, its activations as they are).

    Returns:
        ``(gated model, ranked node names in gate order, probe tensor names)``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from quantsweep.model.graph import COMPUTE_OPS, dq_fed_inputs

    gated = onnx.ModelProto()
    gated.CopyFrom(qdq)
    g = gated.graph
    producers = {o: n for n in g.node for o in n.output}
    fp32_nodes = {n.name: n for n in fp32.graph.node}
    fp32_inits = {i.name: i for i in fp32.graph.initializer}
    fp32_producers = {o: n for n in fp32.graph.node for o in n.output}
    fed = dq_fed_inputs(gated)
    ranked: list[str] = []
    gathers: list[Any] = []
    mixes: dict[str, list[Any]] = {}
    extra_inits: list[Any] = []
    copied: dict[str, str] = {}
    clones: dict[str, list[Any]] = {}
    local_pairs: list[tuple[str, str]] = []
    for node in g.node:
        if node.op_type not in COMPUTE_OPS or node.name in exclude or node.name not in fed:
            continue
        gate_idx = len(ranked)
        sources: list[tuple[int, str]] = []
        for j in fed[node.name]:
            dq = producers[node.input[j]]
            src = producers.get(dq.input[0])
            if src is not None and src.op_type == "QuantizeLinear":
                if weights_only:
                    continue
                # activation: the tensor before Q (with any activation the quantizer folded into
                # the Q range, e.g. Relu, applied again so that the float path is really float)
                sources.append((j, _unfold(src.input[0], fp32_nodes.get(node.name), j, producers,
                                           fp32_producers, fp32_inits, f"qs_act/{len(ranked)}/{j}",
                                           mixes.setdefault(node.name, []), extra_inits)))
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
        if local:
            # The node computed on its quantized inputs alone (no gating): its local error.
            clone = onnx.NodeProto()
            clone.CopyFrom(node)
            clone.name = f"qs_local/{gate_idx}"
            del clone.output[:]
            clone.output.extend([f"qs_local/{gate_idx}/out"] + [""] * (len(node.output) - 1))
            local_pairs.append((node.output[0], clone.output[0]))
            clones.setdefault(node.name, []).append(clone)
        gate = f"qs_gate/{gate_idx}"
        extra_inits.append(numpy_helper.from_array(np.array(gate_idx, np.int64), f"{gate}/idx"))
        gathers.append(helper.make_node("Gather", [GATES, f"{gate}/idx"], [gate], axis=0))
        for j, float_src in sources:
            dq_out = node.input[j]
            base = f"qs_mix/{gate_idx}/{j}"
            mixes.setdefault(node.name, []).extend([
                _switch(gate, float_src, dq_out, f"{base}/out"),
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
        g.node.extend(clones.get(n.name, []))  # clones read the dq tensors, before the rewiring
        g.node.append(n)
    g.initializer.extend(extra_inits)
    g.input.append(helper.make_tensor_value_info(GATES, TensorProto.BOOL, [len(ranked)]))
    produced = {o for n in g.node for o in n.output}
    probes = [t for t in _head_tensors(fp32) if t in produced] or [o.name for o in g.output]
    existing = {o.name for o in g.output}
    for p in probes + [t for pair in local_pairs for t in pair]:
        if p not in existing:
            g.output.append(helper.make_tensor_value_info(p, TensorProto.FLOAT, None))
            existing.add(p)
    return gated, ranked, probes, local_pairs


def _probe_session(model: Any, threads: int | None) -> Any:
    import onnxruntime as ort

    from quantsweep.env import worker_threads

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.intra_op_num_threads = threads or worker_threads()
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
                 exclude: set[str] | None = None, threads: int | None = None, weights_only: bool = False) -> None:
        import onnx

        from quantsweep.model.graph import decode_tail

        self._fp32, self._qdq = onnx.load(str(fp32_path)), onnx.load(str(qdq_path))
        self._exclude = set(decode_tail(self._fp32)) if exclude is None else exclude
        self._threads, self._weights_only = threads, weights_only
        gated, self.nodes, self.probes, _ = build_gated_model(self._fp32, self._qdq, self._exclude,
                                                              weights_only=weights_only)
        self.ops = {n.name: n.op_type for n in gated.graph.node}
        sizes = {i.name: int(np.prod(i.dims)) for i in self._fp32.graph.initializer if len(i.dims) >= 2}
        ranked = set(self.nodes)
        # each ranked node's weight elements (its multi-dimensional initializers): what keeping it in
        # a wider weight format costs in file size
        self.weight_elements = {n.name: sum(sizes.get(i, 0) for i in n.input)
                                for n in self._fp32.graph.node if n.name in ranked}
        inp = self._fp32.graph.input[0]  # the image input (the probe needs no detector layout)
        dim0 = inp.type.tensor_type.shape.dim[0] if inp.type.tensor_type.shape.dim else None
        batch = dim0.dim_value if dim0 is not None and dim0.dim_value > 0 else 1
        self._input = inp.name
        self._sess = _probe_session(gated, threads)
        self.feeds = [images[i:i + batch] for i in range(0, len(images) - batch + 1, batch)]
        if not self.feeds:
            raise QuantsweepError("no images for the sensitivity probe", "pass calibration images")
        self.runs = 0
        self._reference = self._run(np.ones(len(self.nodes), bool))  # all gates open = float (weights)
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
        gates = np.array([n in restored for n in self.nodes], bool)
        total = 0.0
        for outs, ref, e in zip(self._run(gates), self._reference, self._energy):
            total += sum(float(np.square(o - r).sum()) for o, r in zip(outs, ref)) / max(e, 1e-12)
        return total / len(self.feeds)

    def local_errors(self) -> dict[str, float]:
        """Each node's own quantization error, all at once: one pass of a graph where every node
        also runs on its quantized inputs (a clone), the rest of the network in float.

        Returns:
            ``{node: relative squared error of its output}`` (mean over the probe images).
        """
        gated, nodes, _, pairs = build_gated_model(self._fp32, self._qdq, self._exclude, local=True,
                                                   weights_only=self._weights_only)
        if nodes != self.nodes:
            raise QuantsweepError("internal: the local-error graph ranks other nodes", "report this")
        sess = _probe_session(gated, self._threads)
        fetch = [t for pair in pairs for t in pair]
        gates = np.ones(len(nodes), bool)
        err = np.zeros(len(nodes))
        for x in self.feeds:
            out = sess.run(fetch, {self._input: x, GATES: gates})
            for i in range(len(nodes)):
                ref, q = out[2 * i], out[2 * i + 1]
                err[i] += float(np.square(q - ref).sum()) / max(float(np.square(ref).sum()), 1e-12)
        self.runs += len(self.feeds)
        return {n: float(e / len(self.feeds)) for n, e in zip(nodes, err)}


def rank_nodes(fp32_path: Path, qdq_path: Path, images: np.ndarray, precision: str,
               exclude: set[str] | None = None, threads: int | None = None,
               probe_top: int | None = 32, weights_only: bool = False, per_weight: bool = False) -> dict[str, Any]:
    """Rank the quantized compute nodes of ``qdq_path`` by the damage their quantization does.

    Two stages keep the cost near two FP32 evaluation passes: a screen (every node's local
    quantization error, one pass) picks the ``probe_top`` most suspicious nodes, and only those
    are measured exactly (output damage removed by restoring each one alone). Nodes beyond the
    screen follow in local-error order, marked ``"method": "screen"``.

    Args:
        fp32_path: the FP32 baseline ONNX.
        qdq_path: the fully quantized model of the precision being ranked (K=0, head policy on).
        images: calibration images ``[N,3,H,W]`` (a few are enough: the signal is dense).
        precision: label recorded in the ranking (``int8``/``fp8``).
        exclude: nodes not to rank (default: the decode tail).
        threads: ORT intra-op threads.
        probe_top: nodes measured exactly after the screen; ``None`` measures every node.
        weights_only: restore only a node's weights (its quantized activations stay): the damage of
            its low-bit *weights*, what a 4-bit scheme's K set buys back.
        per_weight: order the measured nodes by damage removed *per weight element* (``density``)
            instead of damage removed: a 4-bit family's K set costs file size in proportion to the
            weights it keeps at 8 bits, so this greedy knapsack order removes the most damage per byte
            (real YOLOv5n W4A16: 18 % of the damage left at +100 kB of 8-bit weights, against 29 %).
            Every node is then measured (``probe_top`` is ignored): the screen's local error picks
            the large convs, and the small ones with the most damage per byte would go unmeasured.

    Returns:
        ``{"ranking": [{node, op, score, rank, precision, method, local_error}], "damage_full",
        "cost": {...}}``.
    """
    if probe_top is not None and probe_top < 1:
        raise QuantsweepError(f"probe_top must be at least 1 (got {probe_top})", "pass e.g. 32, or None for all")
    if per_weight:
        probe_top = None
    t0 = time.perf_counter()
    probe = GatedProbe(fp32_path, qdq_path, images, exclude, threads, weights_only)
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    local = probe.local_errors() if probe_top is not None and probe_top < len(probe.nodes) else {}
    position = {n: i for i, n in enumerate(probe.nodes)}  # ties keep graph order
    if local:
        screened = sorted(probe.nodes, key=lambda n: (-local[n], position[n]))
        exact_nodes, rest = screened[:probe_top], screened[probe_top:]
    else:
        exact_nodes, rest = list(probe.nodes), []
    full = probe.damage()
    exact = {node: full - probe.damage({node}) for node in exact_nodes}
    run_s = time.perf_counter() - t1
    elements = probe.weight_elements

    def density(n: str) -> float:
        return exact[n] / max(elements.get(n, 0), 1)

    order = sorted(exact, key=lambda n: (-(density(n) if per_weight else exact[n]), position[n])) + rest
    ranking = [{"node": n, "op": probe.ops.get(n, "?"), "score": float(exact[n]) if n in exact else None,
                "rank": r + 1, "precision": precision, "method": "probe" if n in exact else "screen",
                "weight_elements": elements.get(n, 0),
                **({"density": density(n)} if per_weight and n in exact else {}),
                **({"local_error": local[n]} if local else {})} for r, n in enumerate(order)]
    return {"what": "damage removed by restoring one node to float in the fully quantized graph "
                    "(relative squared error of the pre-decode head tensors vs FP32); nodes marked "
                    "'screen' were ordered by their local quantization error only",
            "order": ("damage removed per weight element (density): the most damage removed per byte kept wider"
                      if per_weight else "damage removed"),
            "precision": precision, "ranking": ranking, "damage_full": full,
            "restores": "weights only (quantized activations stay)" if weights_only else "every quantized input",
            "probes": probe.probes, "images": int(len(images)),
            "probe_top": probe_top if local else None, "nodes": len(probe.nodes),
            "cost": {"build_s": round(build_s, 3), "run_s": round(run_s, 3), "forward_passes": probe.runs},
            "qdq_model": str(qdq_path), "fp32_model": str(fp32_path)}


def score_text(entry: dict[str, Any]) -> str:
    """A ranking entry's score for people: the measured damage, or how it was only screened."""
    if entry.get("score") is None:
        return f"screened (local error {entry.get('local_error', float('nan')):.3g})"
    return f"{entry['score']:.4g}"


def ranking_markdown(result: dict[str, Any], top: int = 20) -> str:
    """The top of a ranking as a Markdown table."""
    per_weight = any("density" in r for r in result["ranking"])  # ordered by damage per weight element
    lines = [f"Sensitivity ({result['precision']}, {result['images']} calibration images; "
             f"full-quantized damage {result['damage_full']:.4g}) — score ↑ = more sensitive"
             + ("; ordered by score per weight element (the most damage removed per byte kept at 8 bits)"
                if per_weight else ""),
             "", "| rank | node | op | score ↑ |" + (" weights |" if per_weight else ""),
             "|---:|---|---|---:|" + ("---:|" if per_weight else "")]
    for r in result["ranking"][:top]:
        lines.append(f"| {r['rank']} | `{r['node']}` | {r['op']} | {score_text(r)} |"
                     + (f" {r.get('weight_elements', 0):,} |" if per_weight else ""))
    return "\n".join(lines) + "\n"
