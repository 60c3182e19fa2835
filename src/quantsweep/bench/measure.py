"""Latency and throughput of candidates against their FP32 reference, measured interleaved.

For every backend x batch, all models are opened, warmed up, then timed in rounds: each round
runs every model once, in a rotating order, so slow drifts of a shared machine hit all models
alike and the speed-up ratios stay fair. A backend that is missing or a model it cannot run is a
row with ``error`` set (label ``unsupported``), never a crash.

Example:
    >>> rows = benchmark([("fp32", Path("m.onnx")), ("int8", Path("q.onnx"))], BenchSettings())  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from quantsweep import __version__
from quantsweep.bench.timing import SPREAD_WARN, summarize
from quantsweep.errors import QuantsweepError, did_you_mean

__all__ = ["BACKENDS", "BenchSettings", "Prepared", "available_backends", "bench_markdown", "benchmark", "trtexec_command"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchSettings:
    """How to measure. ``iters`` (samples per model) wins over ``seconds`` (per model)."""

    backends: tuple[str, ...] = ("ort-cpu",)
    batches: tuple[int, ...] = (1,)
    warmup: int = 10
    iters: int | None = None
    seconds: float = 10.0
    threads: int | None = None
    graph_optimization: str = "all"

    def __post_init__(self) -> None:
        for b in self.backends:
            if b not in BACKENDS:
                raise QuantsweepError(f"unknown backend {b!r}; {did_you_mean(b, list(BACKENDS))}".strip(),
                                      f"choose from {', '.join(BACKENDS)}")
        if any(b < 1 for b in self.batches):
            raise QuantsweepError(f"batch sizes must be >= 1 (got {list(self.batches)})", "pass e.g. --batch 1,8")
        if self.warmup < 0 or (self.iters is not None and self.iters < 1) or self.seconds <= 0:
            raise QuantsweepError("--warmup must be >= 0, --iters >= 1 and --seconds > 0",
                                  "pass e.g. --warmup 10 --iters 100")


@dataclass
class Prepared:
    """A model opened on a backend: a callable that runs one batch, and what we know about it."""

    run: Callable[[np.ndarray], Any]
    label: str
    evidence: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def prepare(self, model: Path, batch: int, work: Path, settings: BenchSettings) -> Prepared: ...


def _check_batch(model: Path, batch: int) -> tuple[str, tuple[int, int]]:
    from quantsweep.model.info import inspect_onnx

    info = inspect_onnx(model, require_detector=False)
    if info.fixed_batch is not None and info.fixed_batch != batch:
        raise QuantsweepError(f"{model.name} has a fixed batch of {info.fixed_batch}, not {batch}",
                              "export with --dynamic-batch to benchmark other batch sizes")
    if info.hw is None:
        raise QuantsweepError(f"{model.name} has a dynamic input size", "export with a fixed --imgsz")
    return info.input_name, info.hw


@dataclass(frozen=True)
class OrtBackend:
    """ONNX Runtime with one execution provider (``cpu``, ``cuda`` or ``tensorrt``)."""

    name: str
    provider: str

    def prepare(self, model: Path, batch: int, work: Path, settings: BenchSettings) -> Prepared:
        import onnx

        from quantsweep.bench.labels import label_from_graphs
        from quantsweep.model.session import open_ort

        input_name, hw = _check_batch(model, batch)
        optimized = work / f"{model.stem}.{self.name}.optimized.onnx"
        sess = open_ort(model, self.provider, settings.threads, settings.graph_optimization, optimized)
        label, evidence = "emulated", {}
        if optimized.is_file():
            label, evidence = label_from_graphs(onnx.load(str(model), load_external_data=False),
                                                onnx.load(str(optimized), load_external_data=False))
        if self.provider != "cpu" and sess.provider == "CPUExecutionProvider":
            needs = ("the TensorRT libraries (libnvinfer, e.g. pip install tensorrt-cu13) and CUDA"
                     if self.provider == "tensorrt" else "CUDA and cuDNN matching this onnxruntime-gpu")
            raise QuantsweepError(f"{self.name}: the {self.provider} execution provider did not load for "
                                  f"{model.name} (ONNX Runtime fell back to the CPU)", f"install {needs}")
        import onnxruntime as ort

        info = {"runtime": f"onnxruntime {ort.__version__}", "provider": sess.provider,
                "threads": sess.threads, "graph_optimization": sess.graph_optimization,
                "input_shape": [batch, 3, *hw]}
        if self.provider == "cpu":
            return Prepared(lambda x: sess.session.run(None, {input_name: x}), label, evidence, info)
        binding = sess.session.io_binding()  # keep the input on the device: no copy in the timed region

        def run_bound(x: np.ndarray) -> Any:
            if not getattr(run_bound, "bound", False):
                value = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
                binding.bind_ortvalue_input(input_name, value)
                for o in sess.session.get_outputs():
                    binding.bind_output(o.name, "cuda")
                run_bound.bound = True  # type: ignore[attr-defined]
            sess.session.run_with_iobinding(binding)

        return Prepared(run_bound, label, evidence, info)


@dataclass(frozen=True)
class LazyBackend:
    """A backend whose runtime is imported only when used; says precisely why when it cannot run here."""

    name: str
    module: str
    extra: str

    def unavailable(self) -> QuantsweepError | None:
        """Why this backend cannot run here (its module is missing, or it needs a GPU), or None."""
        import importlib.util

        if importlib.util.find_spec(self.module) is None:
            return QuantsweepError(f"backend {self.name} not available here: python module "
                                   f"{self.module!r} is not installed", f"install {self.extra}")
        from quantsweep.env import gpu_present

        if self.name != "openvino" and not gpu_present():
            return QuantsweepError(f"backend {self.name} not available here: no NVIDIA GPU answers",
                                   "run on a machine with an NVIDIA GPU")
        return None

    def prepare(self, model: Path, batch: int, work: Path, settings: BenchSettings) -> Prepared:
        why = self.unavailable()
        if why is not None:
            raise why
        if self.name == "openvino":
            return _prepare_openvino(model, batch, settings)
        return _prepare_tensorrt(model, batch, work)


def _quantized(model: Path) -> bool:
    """Whether the ONNX file holds any Q/DQ node (otherwise its label is ``float``)."""
    import onnx

    from quantsweep.model.graph import qdq_counts

    return any(qdq_counts(onnx.load(str(model), load_external_data=False)).values())


def _prepare_tensorrt(model: Path, batch: int, work: Path) -> Prepared:
    """A strongly typed TensorRT engine per model and batch (engines + timing cache in ``work``)."""
    from quantsweep.bench.labels import label_from_trt_layers
    from quantsweep.bench.trt_engine import EngineRunner, build_engine

    input_name, hw = _check_batch(model, batch)
    engine = work / f"{model.stem}.b{batch}.engine"
    facts = build_engine(model, engine, work / "tensorrt.timing.cache", batch)
    runner = EngineRunner(engine, batch)
    label, evidence = label_from_trt_layers(runner.layers())
    if not _quantized(model):
        label = "float"
    return Prepared(runner.run, label, evidence,
                    {"runtime": f"tensorrt {facts['tensorrt']}", "provider": "TensorRT engine (strongly typed)",
                     "engine": str(engine), "engine_mb": facts["engine_mb"],
                     "timing_cache_reused": facts["timing_cache_reused"], "input_shape": [batch, 3, *hw]})


def _fp16_reference(models: Sequence[tuple[str, Path]], work: Path) -> list[tuple[str, Path]]:
    """TensorRT's FP32 reference plus its FP16 engine twin (strongly typed: an fp16 ONNX)."""
    import shutil

    from quantsweep.schemes.modelopt_qdq import convert_fp16

    name, path = models[0]
    twin = work / f"{Path(path).stem}.fp16.onnx"
    if not twin.exists():
        shutil.copyfile(path, twin)
        convert_fp16(twin)
    return [models[0], (f"{name}-fp16-engine", twin), *models[1:]]


def _prepare_openvino(model: Path, batch: int, settings: BenchSettings) -> Prepared:
    import openvino as ov

    input_name, hw = _check_batch(model, batch)
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": settings.threads} if settings.threads else {}
    compiled = core.compile_model(str(model), "CPU", config)
    request = compiled.create_infer_request()
    # Label from the executed graph: which precision do the convolution/matmul layers run in?
    compute_types = {"Convolution", "GroupConvolution", "Deconvolution", "MatMul", "FullyConnected"}
    precisions: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ops():
        rt = op.get_rt_info()
        layer = rt["layerType"].astype(str) if "layerType" in rt else op.get_type_name()
        if layer not in compute_types:
            continue
        value = rt["runtimePrecision"] if "runtimePrecision" in rt else None
        prec = "?" if value is None else (value.astype(str) if hasattr(value, "astype") else str(value))
        precisions[prec] = precisions.get(prec, 0) + 1
    low = sum(n for p, n in precisions.items() if p.lower() in ("i8", "u8", "i4", "u4", "f8e4m3", "f8e5m2"))
    label = "float" if not _quantized(model) else ("accelerated" if low else "emulated")
    return Prepared(lambda x: request.infer({input_name: x}), label,
                    {"compute_layer_precisions": precisions}, {"runtime": f"openvino {ov.__version__}", "provider": "CPU",
                     "threads": settings.threads, "input_shape": [batch, 3, *hw]})


_TENSORRT = LazyBackend("tensorrt", "tensorrt", "tensorrt (pip install tensorrt) on a GPU machine")
BACKENDS: dict[str, Backend] = {
    "ort-cpu": OrtBackend("ort-cpu", "cpu"),
    "ort-cuda": OrtBackend("ort-cuda", "cuda"),
    "ort-trt": OrtBackend("ort-trt", "tensorrt"),
    "tensorrt": _TENSORRT,
    "openvino": LazyBackend("openvino", "openvino", "the openvino extra: pip install -e '.[openvino]'"),
}


def bench_markdown(result: dict[str, Any], reference: str) -> str:
    """The bench JSON as a Markdown table (what was measured, on what, with which settings)."""
    s, cpu = result["settings"], result["env"]["cpu"]
    lines = [f"latency per batch on {cpu['model']} ({cpu['physical_cores']} cores, VNNI {cpu['vnni']}), "
             f"interleaved rounds, warmup {s['warmup']}; speed-up vs {reference} on the same backend and batch:",
             "| candidate | backend | batch | label | p50 ms ↓ | p90 ms ↓ | p99 ms ↓ | min ms ↓ | spread ↓ | img/s ↑ "
             "| speed-up ↑ | error |", "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        if r.get("error"):
            lines.append(f"| {r['candidate']} | {r['backend']} | {r['batch']} | {r['label']} | | | | | | | | {r['error']} |")
        else:
            lines.append(f"| {r['candidate']} | {r['backend']} | {r['batch']} | {r['label']} | {r['latency_p50_ms']:.2f} | "
                         f"{r['latency_p90_ms']:.2f} | {r['latency_p99_ms']:.2f} | {r['latency_min_ms']:.2f} | "
                         f"{r['spread']:.0%} | {r['throughput_ips']:.1f} | {r['speedup_vs_fp32']:.2f}× | |")
    return "\n".join(lines)


def available_backends() -> list[str]:
    """Backends that can run here: ort-cpu always; GPU providers when a GPU answers; OpenVINO if installed."""
    import importlib.util

    from quantsweep.env import available_providers, gpu_present
    from quantsweep.model.session import PROVIDERS

    found = ["ort-cpu"]
    providers = available_providers()
    if gpu_present():
        found += [b for b, p in (("ort-cuda", "cuda"), ("ort-trt", "tensorrt")) if PROVIDERS[p] in providers]
    if importlib.util.find_spec("openvino") is not None:
        found.append("openvino")
    return found


def trtexec_command(onnx_path: Path, engine: Path, timing_cache: Path, fp16_baseline: bool = False,
                    batch: int = 1, input_name: str = "images", hw: tuple[int, int] = (640, 640)) -> list[str]:
    """The trtexec line for an explicitly quantized (QDQ) ONNX, strongly typed (TensorRT >= 10).

    TensorRT 11 removed the implicit-INT8 flags; QDQ graphs are built with ``--stronglyTyped``,
    and the FP32 reference becomes an FP16 engine for comparison (``fp16_baseline``).
    """
    shape = f"{input_name}:{batch}x3x{hw[0]}x{hw[1]}"
    cmd = ["trtexec", f"--onnx={onnx_path}", f"--saveEngine={engine}", f"--timingCacheFile={timing_cache}",
           f"--shapes={shape}", "--skipInference", "--profilingVerbosity=detailed",
           f"--exportLayerInfo={engine.with_suffix('.layers.json')}"]
    cmd.append("--fp16" if fp16_baseline else "--stronglyTyped")
    return cmd


def _cpu_busy() -> float | None:
    try:
        import psutil

        return float(psutil.cpu_percent(interval=0.5))
    except ImportError:
        return None


def benchmark(models: Sequence[tuple[str, Path]], settings: BenchSettings, work_dir: Path | None = None,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Benchmark ``models`` (the first is the FP32 reference) on every backend x batch.

    Returns:
        The bench JSON: ``rows`` (one per model x backend x batch), ``settings``, ``env``,
        ``warnings``.
    """
    from quantsweep.env import collect_env

    if not models:
        raise QuantsweepError("no model to benchmark", "pass --model BASE.onnx [--model CAND.onnx ...]")
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    busy = _cpu_busy()
    if busy is not None and busy > 25:
        warnings.append(f"the CPU was {busy:.0f}% busy before measuring: other processes compete; "
                        "compare ratios, not absolute times")
    tmp = tempfile.TemporaryDirectory(prefix="qs-bench-") if work_dir is None else None
    work = Path(tmp.name) if tmp else Path(work_dir)  # type: ignore[arg-type]
    work.mkdir(parents=True, exist_ok=True)
    try:
        for backend_name in settings.backends:
            backend = BACKENDS[backend_name]
            group = models
            if backend is _TENSORRT and _TENSORRT.unavailable() is None:
                group = _fp16_reference(models, work)
            for batch in settings.batches:
                rows += _measure_group(group, backend, batch, work, settings, warnings, progress)
    finally:
        if tmp:
            tmp.cleanup()
    return {"what": "latency per batch (ms) and throughput (images/s), interleaved rounds",
            "rows": rows, "settings": asdict(settings), "warnings": warnings,
            "env": collect_env(), "quantsweep_version": __version__}


def _measure_group(models: Sequence[tuple[str, Path]], backend: Backend, batch: int, work: Path,
                   settings: BenchSettings, warnings: list[str],
                   progress: Callable[[str], None] | None) -> list[dict[str, Any]]:
    prepared: dict[str, Prepared] = {}
    rows: dict[str, dict[str, Any]] = {}
    for name, path in models:
        row: dict[str, Any] = {"candidate": name, "model": str(path), "backend": backend.name, "batch": batch,
                               "label": "unsupported", "error": None}
        rows[name] = row
        try:
            p = prepared[name] = backend.prepare(Path(path), batch, work, settings)
            row.update(label=p.label, evidence=p.evidence, **p.info, dtype="float32")
        except QuantsweepError as exc:
            row["error"] = str(exc)
        except Exception as exc:  # a runtime refusing a model is a row, not a crash
            row["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
    live = list(prepared)
    inputs = {n: np.random.default_rng(0).random(tuple(prepared[n].info["input_shape"]), dtype=np.float32)
              for n in live}
    for n in list(live):
        try:
            for _ in range(max(settings.warmup, 1)):
                prepared[n].run(inputs[n])
        except Exception as exc:
            rows[n].update(label="unsupported", error=f"run failed: {type(exc).__name__}: {str(exc)[:200]}")
            live.remove(n)
    samples: dict[str, list[float]] = {n: [] for n in live}
    deadline = time.perf_counter() + settings.seconds * max(len(live), 1)
    rnd = 0
    while live:
        order = live[rnd % len(live):] + live[:rnd % len(live)]
        for n in order:
            t = time.perf_counter()
            prepared[n].run(inputs[n])
            samples[n].append((time.perf_counter() - t) * 1000.0)
        rnd += 1
        if settings.iters is not None:
            if rnd >= settings.iters:
                break
        elif time.perf_counter() >= deadline and rnd >= 5:
            break
    if progress:
        progress(f"{backend.name} batch {batch}: {rnd} rounds")
    ref_name = models[0][0]
    ref = summarize(samples[ref_name], batch) if samples.get(ref_name) else None
    for n, s in samples.items():
        stats = summarize(s, batch)
        rows[n].update(stats)
        rows[n]["speedup_vs_fp32"] = round(ref["latency_p50_ms"] / stats["latency_p50_ms"], 3) if ref else None
        if stats["spread"] > SPREAD_WARN:
            warnings.append(f"{n} on {backend.name} batch {batch}: spread {stats['spread']:.0%} exceeds "
                            f"{SPREAD_WARN:.0%}; the machine is noisy")
    return list(rows.values())
