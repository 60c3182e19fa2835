"""TensorRT engines from (QDQ) ONNX files: strongly typed builds, a timing cache, honest labels.

TensorRT >= 10 builds explicitly quantized (QDQ) graphs as *strongly typed* networks: every
tensor keeps the type the ONNX gives it, so INT8/FP8 layers exist exactly where the Q/DQ pairs
say (TensorRT 11 removed the implicit-INT8/FP16 builder flags). The FP32 reference therefore
becomes an FP16 engine by converting the ONNX first (ModelOpt AutoCast, as for ``--float-dtype
fp16``). Engines and the shared timing cache live in the benchmark's work folder (the run folder
in a sweep). The label comes from the engine inspector: which precision the convolution and
matrix-multiply layers actually consume.

Needs ``tensorrt`` (and ``torch`` with CUDA for the device buffers) on an NVIDIA GPU machine.

Example:
    >>> build_engine(Path("int8-trt.onnx"), Path("int8-trt.b1.engine"), Path("timing.cache"), 1)  # doctest: +SKIP
    >>> runner = EngineRunner(Path("int8-trt.b1.engine"), 1)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantsweep.errors import QuantsweepError
from quantsweep.files import atomic_write_bytes
from quantsweep.runtimes.base import (
    BenchSettings,
    Prepared,
    Session,
    check_batch,
    is_quantized,
    missing_gpu,
    missing_module,
    refuse_format,
)

__all__ = ["EngineRunner", "TensorRtRuntime", "build_engine", "label_from_trt_layers"]


_LOGGER: list[Any] = []  # TensorRT objects need their logger alive as long as they are


def _logger() -> Any:
    import tensorrt as trt

    if not _LOGGER:
        _LOGGER.append(trt.Logger(trt.Logger.WARNING))
    return _LOGGER[0]


def build_engine(onnx_path: Path, engine_path: Path, timing_cache: Path, batch: int) -> dict[str, Any]:
    """Build a strongly typed engine for ``batch`` (fixed-shape profile when the batch is dynamic).

    Returns:
        Build facts: TensorRT version, engine size, whether the timing cache was reused.
    """
    import tensorrt as trt

    logger = _logger()
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise QuantsweepError(f"TensorRT cannot parse {onnx_path.name}: {(errors or ['no detail'])[0][:200]}",
                              "check the model with `quantsweep eval`; TensorRT needs zero-point-0 QDQ")
    config = builder.create_builder_config()
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    reused = timing_cache.is_file()
    cache = config.create_timing_cache(timing_cache.read_bytes() if reused else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    inp = network.get_input(0)
    if any(d < 0 for d in inp.shape):
        shape = (batch, *(d for d in tuple(inp.shape)[1:]))
        if any(d < 0 for d in shape):
            raise QuantsweepError(f"{onnx_path.name} has a dynamic input size", "export with a fixed --imgsz")
        profile = builder.create_optimization_profile()
        profile.set_shape(inp.name, shape, shape, shape)
        config.add_optimization_profile(profile)
    elif inp.shape[0] != batch:
        raise QuantsweepError(f"{onnx_path.name} has a fixed batch of {inp.shape[0]}, not {batch}",
                              "export with --dynamic-batch to benchmark other batch sizes")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise QuantsweepError(f"TensorRT could not build an engine for {onnx_path.name}",
                              "see TensorRT's messages above; the graph may use an unsupported QDQ pattern")
    atomic_write_bytes(engine_path, bytes(serialized))
    atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    return {"tensorrt": trt.__version__, "engine_mb": round(engine_path.stat().st_size / 1e6, 3),
            "timing_cache_reused": reused, "strongly_typed": True}


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


class EngineRunner:
    """One deserialized engine with device buffers bound once (no copies in the timed region)."""

    def __init__(self, engine_path: Path, batch: int) -> None:
        import tensorrt as trt
        import torch

        self._torch = torch
        self.runtime = trt.Runtime(_logger())  # kept: the engine must not outlive its runtime
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise QuantsweepError(f"TensorRT cannot load {engine_path.name}", "rebuild the engine on this GPU")
        self.context = self.engine.create_execution_context()
        dtypes = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
                  trt.DataType.INT8: torch.int8, trt.DataType.INT32: torch.int32,
                  trt.DataType.INT64: torch.int64, trt.DataType.BOOL: torch.bool}
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        for n in self.inputs:
            shape = tuple(self.engine.get_tensor_shape(n))
            self.context.set_input_shape(n, (batch, *shape[1:]) if shape[0] < 0 else shape)
        self.buffers: dict[str, Any] = {}
        for n in names:
            buf = torch.empty(tuple(self.context.get_tensor_shape(n)), dtype=dtypes[self.engine.get_tensor_dtype(n)],
                              device="cuda")
            self.context.set_tensor_address(n, buf.data_ptr())
            self.buffers[n] = buf
        self.stream = torch.cuda.Stream()
        self._bound = False

    def run(self, x: np.ndarray) -> None:
        if not self._bound:  # the input is copied to the device once, before timing starts
            self.buffers[self.inputs[0]].copy_(self._torch.from_numpy(x))
            self._bound = True
        self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()

    def layers(self) -> list[dict[str, Any]]:
        """The engine inspector's layer list (detailed: each layer's inputs/outputs and types)."""
        import tensorrt as trt

        info = json.loads(self.engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
        return [layer for layer in info.get("Layers", []) if isinstance(layer, dict)]


@dataclass(frozen=True)
class TensorRtRuntime:
    """TensorRT engines built with its Python builder (extra: TensorRT itself, on an NVIDIA GPU).

    Scored by ONNX Runtime's TensorRT execution provider (the nearest runtime that reads the ONNX).
    """

    name: str = "tensorrt"
    title: str = "TensorRT engine"
    extra: str | None = "tensorrt (pip install tensorrt) on a GPU machine"
    provider: str = "tensorrt"
    formats: tuple[str, ...] = ("onnx",)
    needs_gpu: bool = True

    def open(self, model: Path, threads: int | None = None, graph_optimization: str = "all") -> Session:
        from quantsweep.runtimes.ort import open_ort

        return open_ort(model, "tensorrt", threads, graph_optimization)

    def open_code(self, file: str) -> str:
        return (f"import onnxruntime as ort\nsession = ort.InferenceSession({file!r}, "
                "providers=['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider'])\n"
                "run = lambda x: session.run(None, {session.get_inputs()[0].name: x})[0]")

    def unavailable(self) -> QuantsweepError | None:
        return missing_module(self.name, "tensorrt", f"install {self.extra}") or missing_gpu(self.name)

    def group(self, models: Sequence[tuple[str, Path]], work: Path) -> list[tuple[str, Path]]:
        """TensorRT's FP32 reference plus its FP16 engine twin (strongly typed: an fp16 ONNX)."""
        import shutil

        from quantsweep.model.fp16 import convert_fp16

        name, path = models[0]
        twin = work / f"{Path(path).stem}.fp16.onnx"
        if not twin.exists():
            shutil.copyfile(path, twin)
            convert_fp16(twin)
        return [models[0], (f"{name}-fp16-engine", twin), *models[1:]]

    def prepare(self, model: Path, batch: int, work: Path, settings: BenchSettings) -> Prepared:
        why = self.unavailable()
        if why is not None:
            raise why
        refuse_format(self, model)
        input_name, hw = check_batch(model, batch)
        engine = work / f"{model.stem}.b{batch}.engine"
        facts = build_engine(model, engine, work / "tensorrt.timing.cache", batch)
        runner = EngineRunner(engine, batch)
        label, evidence = label_from_trt_layers(runner.layers())
        if not is_quantized(model):
            label = "float"
        return Prepared(runner.run, label, evidence,
                        {"runtime": f"tensorrt {facts['tensorrt']}", "provider": "TensorRT engine (strongly typed)",
                         "engine": str(engine), "engine_mb": facts["engine_mb"],
                         "timing_cache_reused": facts["timing_cache_reused"], "input_shape": [batch, 3, *hw]})
