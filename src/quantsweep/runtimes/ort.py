"""ONNX Runtime: ``ort-cpu``, ``ort-cuda`` and ``ort-trt`` (one execution provider each).

Provider names for scoring (``quantsweep eval --provider``): ``cpu``, ``cuda``, ``tensorrt``, or
``auto`` (CUDA when ONNX Runtime has it and a GPU answers, else CPU). Labels come from the graph
ORT really runs (its optimized model, dumped at session creation): :func:`label_from_graphs`. GPU
providers bind the input on the device once (IOBinding), so no host-device copy is timed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantsweep.env import available_providers, gpu_present, worker_threads
from quantsweep.errors import QuantsweepError, did_you_mean, first_line
from quantsweep.runtimes.base import BenchSettings, Prepared, check_batch, missing_gpu, refuse_format

__all__ = ["INT_COMPUTE_KERNELS", "PROVIDERS", "OrtRuntime", "OrtSession", "label_from_graphs", "open_ort",
           "resolve_provider"]

log = logging.getLogger(__name__)

PROVIDERS: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def resolve_provider(name: str, available: list[str] | None = None, gpu: bool | None = None) -> str:
    """Map ``auto|cpu|cuda|tensorrt`` to an ONNX Runtime provider that can run here.

    Args:
        name: the requested provider.
        available: providers compiled into onnxruntime (default: ask onnxruntime).
        gpu: whether a GPU answers (default: probe libcuda).

    Raises:
        QuantsweepError: unknown name, or a GPU provider requested where none can run.
    """
    available = available_providers() if available is None else available
    if name == "auto":
        if PROVIDERS["cuda"] in available and (gpu_present() if gpu is None else gpu):
            return PROVIDERS["cuda"]
        return PROVIDERS["cpu"]
    if name not in PROVIDERS:
        raise QuantsweepError(f"unknown provider {name!r}; {did_you_mean(name, list(PROVIDERS))}".strip(),
                              "use one of auto, cpu, cuda, tensorrt")
    wanted = PROVIDERS[name]
    if wanted not in available:
        raise QuantsweepError(f"provider {name!r} is not available here: onnxruntime has {available}",
                              "install onnxruntime-gpu with CUDA/TensorRT, or use --provider cpu")
    if name != "cpu" and not (gpu_present() if gpu is None else gpu):
        raise QuantsweepError(f"provider {name!r} is not available here: no NVIDIA GPU answers",
                              "run on a machine with a GPU, or use --provider cpu")
    return wanted


@dataclass
class OrtSession:
    """An ONNX Runtime session and the settings it was opened with."""

    session: Any
    provider: str
    threads: int
    graph_optimization: str
    input_name: str

    def run(self, pixels: Any) -> Any:
        return self.session.run(None, {self.input_name: pixels})[0]


def open_ort(model: Path, provider: str = "cpu", threads: int | None = None,
             graph_optimization: str = "all", optimized_model_path: Path | None = None,
             spinning: bool = True) -> OrtSession:
    """Open an ONNX Runtime session on ``model``.

    Args:
        model: the ONNX file.
        provider: ``auto|cpu|cuda|tensorrt`` (see :func:`resolve_provider`).
        threads: intra-op threads (default: physical cores).
        graph_optimization: ``disable|basic|extended|all``.
        optimized_model_path: where ORT writes the graph it actually runs (for inspection).
        spinning: let idle intra-op threads spin (ORT's default). Benchmarks that interleave many
            sessions turn it off: idle sessions' spinning threads otherwise steal the cores of the
            one being timed (demo, 2 cores, 8 sessions: FP32 54.5 ms interleaved vs 26.8 alone).
    """
    import onnxruntime as ort

    refuse_format(_ANY_ORT, model)
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    if graph_optimization not in levels:
        raise QuantsweepError(f"unknown graph optimization level {graph_optimization!r}",
                              f"use one of {', '.join(levels)}")
    chosen = resolve_provider(provider)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or worker_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = levels[graph_optimization]
    opts.log_severity_level = 3
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_model_path is not None:
        opts.optimized_model_filepath = str(optimized_model_path)
    providers = [chosen] if chosen == PROVIDERS["cpu"] else [chosen, PROVIDERS["cpu"]]
    if chosen != PROVIDERS["cpu"] and hasattr(ort, "preload_dlls"):
        # CUDA/cuDNN from the nvidia-* pip packages are not on the loader path by default.
        ort.preload_dlls()
    used = graph_optimization
    try:
        sess = ort.InferenceSession(str(model), sess_options=opts, providers=providers)
    except Exception as exc:
        first = first_line(exc, 200, type(exc).__name__)
        # Some ORT builds' QDQ fusions (e.g. QLinearAdd/QLinearConcat in onnxruntime-gpu 1.24's CPU
        # EP) reject float8 QDQ graphs, or QDQ graphs with fp16 scales, at the extended/all levels;
        # the basic level runs them as emulation.
        odd = next((t for t in ("float8", "float16") if t in first), None)
        if graph_optimization in ("extended", "all") and odd:
            opts.graph_optimization_level = levels["basic"]
            used = f"basic (fallback: this ORT's fusions reject {odd} QDQ)"
            sess = ort.InferenceSession(str(model), sess_options=opts, providers=providers)
        else:
            raise QuantsweepError(f"ONNX Runtime cannot load {model}: {first}",
                                  "check that the file is a valid ONNX model for this runtime") from None
    return OrtSession(sess, sess.get_providers()[0], opts.intra_op_num_threads, used,
                      sess.get_inputs()[0].name)



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



@dataclass(frozen=True)
class OrtRuntime:
    """ONNX Runtime with one execution provider (``cpu``, ``cuda`` or ``tensorrt``)."""

    name: str
    provider: str
    title: str
    extra: str | None = None
    formats: tuple[str, ...] = ("onnx",)

    @property
    def needs_gpu(self) -> bool:
        return self.provider != "cpu"

    def unavailable(self) -> QuantsweepError | None:
        if self.provider == "cpu":
            return None
        if no_gpu := missing_gpu(self.name):
            return no_gpu
        if PROVIDERS[self.provider] not in available_providers():
            return QuantsweepError(f"backend {self.name} not available here: onnxruntime has no {self.provider} provider",
                                   "install onnxruntime-gpu")
        return None

    def open(self, model: Path, threads: int | None = None, graph_optimization: str = "all") -> OrtSession:
        return open_ort(model, self.provider, threads, graph_optimization)

    def open_code(self, file: str) -> str:
        providers = [PROVIDERS[self.provider]] + ([] if self.provider == "cpu" else [PROVIDERS["cpu"]])
        return (f"import onnxruntime as ort\nsession = ort.InferenceSession({file!r}, providers={providers!r})\n"
                "run = lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]")

    def group(self, models: Sequence[tuple[str, Path]], work: Path) -> list[tuple[str, Path]]:
        return list(models)

    def prepare(self, model: Path, batch: int, work: Path, settings: BenchSettings) -> Prepared:
        import onnx


        input_name, hw = check_batch(model, batch)
        optimized = work / f"{model.stem}.{self.name}.optimized.onnx"
        # several sessions live side by side in interleaved rounds: idle ones must not spin
        sess = open_ort(model, self.provider, settings.threads, settings.graph_optimization, optimized,
                        spinning=False)
        label, evidence = "emulated", dict[str, Any]()
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
                "intra_op_spinning": False, "input_shape": [batch, 3, *hw]}
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


_ANY_ORT = OrtRuntime("ort-cpu", "cpu", "ONNX Runtime")
