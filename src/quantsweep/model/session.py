"""Runtimes that execute a candidate ONNX. Heavy imports happen inside the functions.

Provider names on the CLI: ``cpu``, ``cuda``, ``tensorrt``, or ``auto`` (CUDA when ONNX Runtime
has it and a GPU answers, else CPU) for ONNX Runtime, and ``openvino`` (OpenVINO's CPU plugin):
a candidate is scored by the runtime it will be deployed on, because runtimes do not compute
the same low-precision graph alike (OpenVINO's int8 kernels on a CPU without VNNI saturate where
ONNX Runtime's do not).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantsweep.env import available_providers, gpu_present, worker_threads
from quantsweep.errors import QuantsweepError, did_you_mean, first_line

__all__ = ["PROVIDERS", "OrtSession", "OvSession", "open_ort", "open_openvino", "open_session", "resolve_provider"]

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

    from quantsweep.model.info import is_ir

    if is_ir(model):
        raise QuantsweepError(f"{Path(model).name} is an OpenVINO IR: ONNX Runtime cannot run it",
                              "score and benchmark it on OpenVINO (provider/backend openvino)")
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


@dataclass
class OvSession:
    """An OpenVINO CPU compiled model, with :class:`OrtSession`'s interface."""

    compiled: Any
    provider: str
    threads: int
    graph_optimization: str
    input_name: str

    def run(self, pixels: Any) -> Any:
        return self.compiled(pixels)[self.compiled.outputs[0]]


def open_openvino(model: Path, threads: int | None = None) -> OvSession:
    """Compile ``model`` (ONNX) for OpenVINO's CPU plugin with ``threads`` inference threads.

    Raises:
        QuantsweepError: OpenVINO is not installed, or cannot compile the model.
    """
    try:
        import openvino as ov
    except ImportError:
        raise QuantsweepError("OpenVINO is not installed: scoring on OpenVINO needs it",
                              "pip install 'quantsweep[openvino]'") from None
    n = threads or worker_threads()
    try:
        # the plugin's defaults otherwise, as the benchmark and the deployed command compile it
        compiled = ov.Core().compile_model(str(model), "CPU", {"INFERENCE_NUM_THREADS": n})
    except Exception as exc:
        raise QuantsweepError(f"OpenVINO cannot compile {model}: {first_line(exc, 200, type(exc).__name__)}",
                              "score it on ONNX Runtime (--provider cpu)") from None
    return OvSession(compiled, f"OpenVINO {ov.__version__.split('-')[0]} CPU", n, "openvino default",
                     compiled.inputs[0].get_any_name())


def open_session(model: Path, provider: str = "cpu", threads: int | None = None,
                 graph_optimization: str = "all") -> OrtSession | OvSession:
    """:func:`open_openvino` for ``openvino``, else :func:`open_ort`."""
    if provider == "openvino":
        return open_openvino(model, threads)
    return open_ort(model, provider, threads, graph_optimization)
