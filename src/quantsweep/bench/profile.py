"""Where the time goes: a model's per-node profile on one runtime, from the runtime's own counters.

OpenVINO: the compiled model's ``PERF_COUNT`` (each executed node's real time, its type and the
kernel it ran) and the executed graph's ``runtimePrecision`` per node. ONNX Runtime: its profiler's
node events (each kernel's duration and operator; the precision is the operator's: an integer
kernel such as ``QLinearConv`` runs in int8, the rest in float). Both are aggregated the same way:
time by operator type and by executed precision, the top nodes, the share of convolutions, and the
layout conversions (reorders). The median latency measured in the same process, with the counters
on, is recorded beside the total, so a reader sees how much of a call the nodes account for.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PROFILED", "aggregate", "profile_model", "profile_text", "split", "where_the_time_goes"]

PROFILED = ("openvino", "ort-cpu")
_CONV = ("Convolution", "Conv", "QLinearConv", "ConvInteger", "GroupConvolution", "FusedConv")
_REORDER = ("Reorder", "ReorderInput", "ReorderOutput", "Transpose")
_INT_OPS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QLinearAdd", "QLinearMul",
            "QLinearConcat", "QLinearSigmoid", "QLinearAveragePool", "QLinearGlobalAveragePool", "QGemm")


def aggregate(nodes: list[dict[str, Any]], top: int = 15) -> dict[str, Any]:
    """Per-node times (``name, op, precision, ms``; one entry per node, averaged over the runs) summed by
    operator and by precision, the ``top`` slowest nodes, the convolutions' share and the reorders' time."""
    total = sum(n["ms"] for n in nodes)
    by_op: dict[str, float] = defaultdict(float)
    by_precision: dict[str, float] = defaultdict(float)
    for n in nodes:
        by_op[n["op"]] += n["ms"]
        by_precision[n["precision"]] += n["ms"]
    conv = sum(ms for op, ms in by_op.items() if op in _CONV)
    return {"total_ms": round(total, 4),
            "by_op": {k: round(v, 4) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
            "by_precision": {k: round(v, 4) for k, v in sorted(by_precision.items(), key=lambda kv: -kv[1])},
            "top": sorted(nodes, key=lambda n: -n["ms"])[:top],
            "conv_share": round(conv / total, 4) if total else None,
            "reorders": {"count": sum(1 for n in nodes if n["op"] in _REORDER),
                         "ms": round(sum(n["ms"] for n in nodes if n["op"] in _REORDER), 4)},
            "nodes": len(nodes)}


def _input(shape: tuple[Any, ...]) -> np.ndarray:
    dims = [d if isinstance(d, int) and d > 0 else 1 for d in shape]
    return np.random.default_rng(0).random(dims, dtype=np.float32)


def _openvino(model: Path, runs: int, threads: int | None) -> dict[str, Any]:
    import openvino as ov

    from quantsweep.env import physical_cores

    compiled = ov.Core().compile_model(str(model), "CPU", {"PERF_COUNT": "YES",
                                                           "INFERENCE_NUM_THREADS": threads or physical_cores()})
    precisions = {op.get_friendly_name(): str(op.get_rt_info()["runtimePrecision"].astype(str))
                  for op in compiled.get_runtime_model().get_ordered_ops()}
    request = compiled.create_infer_request()
    x = _input(tuple(d.get_length() if d.is_static else 1 for d in compiled.inputs[0].get_partial_shape()))
    for _ in range(3):
        request.infer({0: x})
    sums: dict[str, dict[str, Any]] = {}
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        request.infer({0: x})
        walls.append(1e3 * (time.perf_counter() - t))
        for info in request.profiling_info:
            if info.status != info.Status.EXECUTED:
                continue
            entry = sums.setdefault(info.node_name, {"name": info.node_name, "op": info.node_type, "kernel": info.exec_type,
                                                     "precision": precisions.get(info.node_name, "?"), "ms": 0.0})
            entry["ms"] += info.real_time.total_seconds() * 1e3
    nodes = [{**e, "ms": round(e["ms"] / runs, 5)} for e in sums.values()]
    return {"runtime": f"OpenVINO {ov.__version__.split('-')[0]} CPU", "nodes_detail": nodes, "latency_p50_ms": statistics.median(walls),
            "how": "PERF_COUNT real time per executed node; precision: the executed graph's runtimePrecision"}


def _ort(model: Path, runs: int, threads: int | None) -> dict[str, Any]:
    import onnxruntime as ort

    from quantsweep.env import worker_threads

    with tempfile.TemporaryDirectory(prefix="qs-prof-") as tmp:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or worker_threads()
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        x = _input(tuple(inp.shape))
        for _ in range(3):
            sess.run(None, {inp.name: x})
        walls = []
        for _ in range(runs):
            t = time.perf_counter()
            sess.run(None, {inp.name: x})
            walls.append(1e3 * (time.perf_counter() - t))
        events = json.loads(Path(sess.end_profiling()).read_text())
    # the last `runs` model runs are the timed ones: keep node events from the warm-up's end on
    runs_seen = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    start = runs_seen[-runs]["ts"] if len(runs_seen) >= runs else 0
    sums: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time") or e.get("ts", 0) < start:
            continue
        name = e["name"][: -len("_kernel_time")]
        op = e.get("args", {}).get("op_name", "?")
        entry = sums.setdefault(name, {"name": name, "op": op, "kernel": e.get("args", {}).get("provider", ""),
                                       "precision": "int8" if op in _INT_OPS else "fp32", "ms": 0.0})
        entry["ms"] += e.get("dur", 0) / 1e3
    nodes = [{**e, "ms": round(e["ms"] / runs, 5)} for e in sums.values()]
    return {"runtime": f"ONNX Runtime {ort.__version__} CPU", "nodes_detail": nodes,
            "latency_p50_ms": statistics.median(walls),
            "how": "ORT profiler kernel time per node; precision: the operator's (integer kernels int8, else fp32)"}


def profile_model(model: Path, runtime: str, runs: int = 50, threads: int | None = None) -> dict[str, Any]:
    """``model``'s per-node profile on ``runtime`` (one of :data:`PROFILED`), averaged over ``runs`` calls
    after 3 warm-up calls, with the median latency of those calls (counters on) beside it; ``every_node``
    lists each executed node (name, operator, kernel, precision, ms), slowest first."""
    from quantsweep.errors import QuantsweepError

    if runtime not in PROFILED:
        raise QuantsweepError(f"no per-node profile for runtime {runtime!r}", f"use one of {', '.join(PROFILED)}")
    raw = _openvino(Path(model), runs, threads) if runtime == "openvino" else _ort(Path(model), runs, threads)
    out = {"model": str(model), "runtime": raw["runtime"], "how": raw["how"], "runs": runs,
           "latency_p50_ms": round(raw["latency_p50_ms"], 4), **aggregate(raw["nodes_detail"]),
           "every_node": sorted(raw["nodes_detail"], key=lambda n: -n["ms"])}
    out["covered"] = round(out["total_ms"] / out["latency_p50_ms"], 3) if out["latency_p50_ms"] else None
    return out


def profile_text(p: dict[str, Any]) -> str:
    """The profile in a few lines: totals, time by precision and operator, the top nodes."""
    lines = [f"{Path(p['model']).name} on {p['runtime']}: nodes {p['total_ms']:.3f} ms of a {p['latency_p50_ms']:.3f} ms "
             f"call (median of {p['runs']}, counters on); convolutions {100 * (p['conv_share'] or 0):.0f} %; "
             f"{p['reorders']['count']} reorders {p['reorders']['ms']:.3f} ms",
             "by precision: " + ", ".join(f"{k} {v:.3f} ms" for k, v in p["by_precision"].items()),
             "by operator: " + ", ".join(f"{k} {v:.3f}" for k, v in list(p["by_op"].items())[:8]),
             "| node | operator | precision | ms |", "|---|---|---|---:|"]
    lines += [f"| {n['name'][:60]} | {n['op']} | {n['precision']} | {n['ms']:.4f} |" for n in p["top"]]
    return "\n".join(lines)


def split(p: dict[str, Any]) -> dict[str, float]:
    """A profile's node time split three ways: convolutions, reorders (layout conversions), the rest."""
    total = float(p.get("total_ms") or 0.0)
    conv = total * float(p.get("conv_share") or 0.0)
    reorders = float((p.get("reorders") or {}).get("ms") or 0.0)
    return {"total": total, "conv": conv, "reorders": reorders, "rest": max(total - conv - reorders, 0.0)}


def where_the_time_goes(fp32: dict[str, Any], cand: dict[str, Any], name: str) -> str:
    """One sentence comparing ``name``'s profile with FP32's on the same runtime: what its convolutions
    save and what the rest of the graph (reorders, float tail) costs.

    Example:
        >>> f = {"total_ms": 8.0, "conv_share": 0.75, "reorders": {"ms": 0.2}, "by_op": {}}
        >>> c = {"total_ms": 8.1, "conv_share": 0.5, "reorders": {"ms": 1.0}, "by_op": {"Reorder": 1.0}}
        >>> for part in where_the_time_goes(f, c, "int8-ov").split("; "):
        ...     print(part)
        int8-ov against FP32, node time by the runtime counters: convolutions 4.05 ms vs 6.00 ms (1.95 ms saved)
        reorders 1.00 ms vs 0.20 ms (+0.80 ms)
        everything else 3.05 ms vs 1.80 ms (+1.25 ms)
        in all 8.10 ms vs 8.00 ms
    """
    f, c = split(fp32), split(cand)

    def diff(key: str) -> str:
        d = c[key] - f[key]
        return f"{abs(d):.2f} ms saved" if d < 0 else f"+{d:.2f} ms"

    return (f"{name} against FP32, node time by the runtime counters: convolutions {c['conv']:.2f} ms vs "
            f"{f['conv']:.2f} ms ({diff('conv')}); reorders {c['reorders']:.2f} ms vs {f['reorders']:.2f} ms "
            f"({diff('reorders')}); everything else {c['rest']:.2f} ms vs {f['rest']:.2f} ms ({diff('rest')}); "
            f"in all {c['total']:.2f} ms vs {f['total']:.2f} ms")
