"""Materialize one candidate: scheme + FP32 baseline + calibration -> ``<name>.onnx`` + ``<name>.scheme.json``.

Steps: decide the nodes kept in float (YOLO decode tail under the head policy, plus the top-K
of the sensitivity ranking), let the scheme's library build the QDQ graph, run a QDQ-preserving
clean-up pass (onnxslim, constant folding off) and check the Q/DQ counts did not change, check
the effective K equals the requested K, then write both files atomically.

Example:
    >>> cand = materialize(make_scheme("int8-qdq", k=5), ctx, Path("candidates"), ranking)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantsweep import __version__
from quantsweep.errors import QuantsweepError
from quantsweep.files import ModelFile, atomic_replace, atomic_write_json, sha256_file
from quantsweep.model.formats import format_of
from quantsweep.schemes import REGISTRY, BuildContext, scheme_to_dict

__all__ = ["BuiltCandidate", "candidate_path", "keep_float_nodes", "materialize"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltCandidate:
    """What one build made: its model file (ONNX, or OpenVINO IR ``.xml``) and its scheme record (the sweep
    keeps it in a :class:`quantsweep.ledger.Candidate`)."""

    name: str
    model_path: Path
    scheme_path: Path
    record: dict[str, Any]


def keep_float_nodes(fp32_model: Any, head_policy: bool, k: int,
                     ranking: list[dict[str, Any]] | None) -> dict[str, str]:
    """Nodes to keep in float, each with its reason: decode tail (head policy) + top-K ranked.

    Raises:
        QuantsweepError: K is negative, no ranking is given for K > 0, or K exceeds the ranked nodes.
    """
    from quantsweep.model.graph import decode_tail
    from quantsweep.quantize.sensitivity import score_text

    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise QuantsweepError(f"K must be a non-negative integer (got {k!r})", "pass e.g. --ks 0,5,10,20")
    keep = dict(decode_tail(fp32_model)) if head_policy else {}
    if k:
        if not ranking:
            raise QuantsweepError(f"K={k} needs a sensitivity ranking", "pass --sensitivity FILE or let quantsweep compute it")
        ranked = [r for r in ranking if r["node"] not in keep]
        if k > len(ranked):
            raise QuantsweepError(f"K={k} exceeds the {len(ranked)} rankable nodes of the model",
                                  f"choose K <= {len(ranked)}")
        for r in ranked[:k]:
            keep[r["node"]] = f"sensitivity rank {r['rank']} (score {score_text(r)}, {ranking_precision(ranking)})"
    return keep


def ranking_precision(ranking: list[dict[str, Any]]) -> str:
    return str(ranking[0].get("precision", "?")) if ranking else "?"


def _unshare_float_inputs(path: Path, keep: dict[str, str]) -> int:
    """Feed kept-float nodes the float tensor instead of a Q/DQ pair shared with quantized consumers.

    Quantizers insert one Q/DQ pair per tensor and let every consumer read its output; a node
    excluded from quantization would then still see rounded activations. Rewiring it to the Q's
    float input makes "kept in float" true. Returns the number of inputs rewired.
    """
    import onnx

    model = onnx.load(str(path))
    producers = {o: n for n in model.graph.node for o in n.output}
    rewired = 0
    for node in model.graph.node:
        if node.name not in keep:
            continue
        for j, name in enumerate(node.input):
            dq = producers.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producers.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[j] = q.input[0]
                rewired += 1
    if rewired:  # drop Q/DQ pairs nobody reads any more
        while True:
            used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
            dead = [n for n in model.graph.node
                    if n.op_type in ("QuantizeLinear", "DequantizeLinear") and not any(o in used for o in n.output)]
            if not dead:
                break
            for n in dead:
                model.graph.node.remove(n)
        onnx.save(model, str(path))
    return rewired


def _clean(src: Path, dst: Path) -> dict[str, Any]:
    """QDQ-preserving clean-up with onnxslim (no constant folding, which would fold DQ(weights))."""
    import onnx
    import onnxslim

    from quantsweep.model.graph import qdq_counts

    before = onnx.load(str(src))
    counts_before = qdq_counts(before)
    try:
        slim = onnxslim.slim(before, no_constant_folding=True)
    except Exception as exc:  # an optimiser failure must not lose the candidate
        log.warning("onnxslim failed on %s (%s); keeping the unslimmed graph", src, exc)
        shutil.copyfile(src, dst)
        return {"pass": "none (onnxslim failed)", "qdq_before": counts_before, "qdq_after": counts_before}
    counts_after = qdq_counts(slim)
    if counts_after != counts_before:
        log.warning("onnxslim changed Q/DQ counts %s -> %s on %s; keeping the unslimmed graph",
                    counts_before, counts_after, src)
        shutil.copyfile(src, dst)
        return {"pass": "none (onnxslim changed Q/DQ counts)", "qdq_before": counts_before,
                "qdq_after": counts_before, "onnxslim_qdq": counts_after}
    onnx.save(slim, str(dst))
    return {"pass": f"onnxslim {onnxslim.__version__} (no constant folding)", "qdq_before": counts_before,
            "qdq_after": counts_after}


def candidate_path(out_dir: Path, scheme: Any) -> Path:
    """Where ``scheme``'s model file goes: ``<name>.onnx``, or ``<name>.xml`` (+ ``.bin``) for an IR."""
    return Path(out_dir) / f"{scheme.name}{scheme.traits.suffix}"


def _check_effective_k(scheme: Any, ranked_keep: list[str], nodes: list[str], floating: list[str],
                       settings: dict[str, Any] | None = None) -> None:
    """Refuse a K-set candidate whose ranked nodes are not all float compute nodes of the built graph
    (or, for a scheme whose K keeps layers at 8 bits, not all listed among its 8-bit layers)."""
    if not scheme.k:
        return
    if scheme.traits.k_keeps == "8-bit":
        eight = {e.get("node") for e in (settings or {}).get("weights_8bit", [])}
        absent = [n for n in ranked_keep if n not in eight]
        if absent:
            raise QuantsweepError(f"{scheme.name}: {len(absent)} ranked node(s) not kept at 8 bits ({absent[:3]})",
                                  "the ranking must name weighted compute nodes of this model's graph")
        return
    graph_float, graph_nodes = set(floating), set(nodes)
    not_float = [n for n in ranked_keep if n in graph_nodes and n not in graph_float]
    missing = [n for n in ranked_keep if n not in graph_nodes]
    if not_float or missing:
        raise QuantsweepError(
            f"{scheme.name}: effective K is {len(ranked_keep) - len(not_float) - len(missing)}, "
            f"not {scheme.k} (still quantized: {not_float[:3]}, not found: {missing[:3]})",
            "the ranking must name compute nodes of this model's graph")


def materialize(scheme: Any, ctx: BuildContext, out_dir: Path,
                ranking: list[dict[str, Any]] | None = None) -> BuiltCandidate:
    """Build ``scheme`` on ``ctx`` into ``out_dir/<name>.onnx`` (or ``.xml`` + ``.bin``) and ``<name>.scheme.json``."""
    import onnx

    from quantsweep.model.graph import compute_nodes, float_compute_nodes, op_counts

    absent = REGISTRY[scheme.registry].missing() if scheme.registry in REGISTRY else None
    if absent is not None:  # a row that says which extra to install
        raise absent
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    fp32 = onnx.load(str(ctx.fp32_onnx))
    keep = keep_float_nodes(fp32, scheme.head_policy, scheme.k, ranking)
    raw = ctx.work_dir / f"{scheme.name}.raw.onnx"
    t0 = time.perf_counter()
    result = scheme.build(ctx, keep, raw)
    build_s = time.perf_counter() - t0
    ranked_keep = [n for n, why in keep.items() if why.startswith("sensitivity rank")]
    made = ModelFile.of(result.model_path)
    fmt = format_of(made.path)
    if fmt.keeps_library_file:  # saved as its library wrote it (an OpenVINO IR)
        facts = fmt.graph_facts(result.model_path)
        _check_effective_k(scheme, ranked_keep, facts["compute_nodes"], facts["float_compute_nodes"])
        target = made.move_to(candidate_path(out_dir, scheme))
        hygiene: dict[str, Any] = {"pass": f"none ({made.format.title}, as the library saved it)"}
        rewired, opset, counts = 0, None, facts["op_counts"]
    else:
        # a 4-bit scheme's K set keeps *weights* at 8 bits: its activations stay quantized, not rewired to float
        eight_bit_k = scheme.traits.k_keeps == "8-bit"
        rewired = _unshare_float_inputs(result.model_path, {n: why for n, why in keep.items()
                                                            if not (eight_bit_k and why.startswith("sensitivity rank"))})
        if scheme.float_dtype == "fp16" and not scheme.traits.fp16_by_tool:
            from quantsweep.model.fp16 import convert_fp16

            result.settings["float_dtype"] = (f"fp16 after the build: {convert_fp16(result.model_path)}; "
                                              "I/O stay fp32")
        final_tmp = ctx.work_dir / f"{scheme.name}.clean.onnx"
        hygiene = _clean(result.model_path, final_tmp)
        scheme.after_clean(final_tmp, result.settings)  # a scheme's own last pass over the cleaned file
        built = onnx.load(str(final_tmp))
        _check_effective_k(scheme, ranked_keep, compute_nodes(built), float_compute_nodes(built), result.settings)
        target = ModelFile.of(atomic_replace(final_tmp, candidate_path(out_dir, scheme)))
        opset = next((o.version for o in built.opset_import if o.domain in ("", "ai.onnx")), None)
        counts = op_counts(built)
    size = target.size_bytes()
    calib = ctx.calib
    record = {
        "name": scheme.name,
        "registry": scheme.registry,
        "scheme": scheme_to_dict(scheme),
        "precision": scheme.precision,
        "k": scheme.k,
        "tool": result.tool,
        "tool_version": result.tool_version,
        "settings": result.settings,
        "calibration": {"images": len(calib.ids), "ids_sha256_16": calib.ids_hash,
                        "source": str(calib.origin),
                        "method": result.settings.get("calibration_method")},
        "kept_float": [{"node": n, "why": why} for n, why in result.kept_float.items()],
        "kept_float_count": len(result.kept_float),
        "hygiene": {**hygiene, "kept_float_inputs_unshared": rewired},
        "format": target.format.name,
        "files": [p.name for p in target.files],
        "opset": opset,
        "op_counts": counts,
        "size_mb": round(size / 1e6, 3),
        "sha256": target.sha256(),
        "source": {"fp32_onnx": str(ctx.fp32_onnx), "fp32_sha256": sha256_file(ctx.fp32_onnx),
                   "pt": str(ctx.source_pt) if ctx.source_pt else None},
        "build_s": round(build_s, 2),
        "quantsweep_version": __version__,
    }
    scheme_path = out_dir / f"{scheme.name}.scheme.json"
    atomic_write_json(scheme_path, record)
    return BuiltCandidate(scheme.name, target.path, scheme_path, record)
