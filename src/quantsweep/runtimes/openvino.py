"""OpenVINO on the CPU device (extra ``[openvino]``): opens ONNX files and OpenVINO IR.

The label comes from the executed graph: the runtime precision OpenVINO chose for each
convolution and matrix-multiply layer (``runtimePrecision``). Low-precision compute layers make a
quantized model ``accelerated``; a quantized model whose compute layers all run in float (Q/DQ
folded away, weights decompressed) is ``emulated``.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from quantsweep.env import worker_threads
from quantsweep.errors import QuantsweepError, first_line
from quantsweep.runtimes.base import BenchSettings, Prepared, check_batch, is_quantized, missing_module

__all__ = ["OpenVinoRuntime", "OvSession", "label_from_runtime_ops", "open_openvino"]

T = TypeVar("T")
# the share of one-at-a-time evaluation time several streams save, measured on a quiet 2-core AMX Xeon
# (benchmarks/eval_throughput.py: 1.11-1.33x images/s; about 2x beside another job): what a second
# compile must pay for
STREAMS_SAVE = 0.15
_COMPUTE = frozenset({"Convolution", "GroupConvolution", "Deconvolution", "MatMul", "FullyConnected"})
_LOW = frozenset({"i8", "u8", "i4", "u4", "f8e4m3", "f8e5m2"})


def _text(value: object) -> str:
    return value.astype(str) if hasattr(value, "astype") else str(value)  # OVAny or plain


def label_from_runtime_ops(ops: Iterable[Any], quantized: bool) -> tuple[str, dict[str, Any]]:
    """Label a model from OpenVINO's executed graph (``compiled.get_runtime_model().get_ops()``).

    A compute layer (convolution, matmul, fully connected) runs low precision only when the
    activations it consumes (its first input) are int8/uint8/fp8: a layer that decompresses int8
    weights into float compute (weight-only models) is float compute, so such a model is
    ``emulated``, not ``accelerated``.

    Returns:
        ``(label, evidence)``; evidence tallies each compute layer's runtime precision and the
        precision of its activation input.
    """
    precisions: dict[str, int] = {}
    activations: dict[str, int] = {}
    for op in ops:
        rt = op.get_rt_info()
        layer = _text(rt["layerType"]) if "layerType" in rt else op.get_type_name()
        if layer not in _COMPUTE:
            continue
        prec = _text(rt["runtimePrecision"]) if "runtimePrecision" in rt else "?"
        precisions[prec] = precisions.get(prec, 0) + 1
        act = op.input(0).get_element_type().get_type_name() if op.get_input_size() else "?"
        activations[act] = activations.get(act, 0) + 1
    low = sum(n for a, n in activations.items() if a.lower() in _LOW)
    label = "float" if not quantized else ("accelerated" if low else "emulated")
    return label, {"compute_layer_precisions": precisions, "compute_layer_activation_types": activations,
                   "low_precision_compute_layers": low}


def inference_precision(compiled: Any) -> str:
    """The float precision OpenVINO computes in (``INFERENCE_PRECISION_HINT``): ``f32``, or ``bf16`` /
    ``f16`` where the CPU has them (OpenVINO's default on AMX CPUs is bf16: an FP32 file then runs in
    bf16, and it is scored and timed as it runs)."""
    try:
        value = compiled.get_property("INFERENCE_PRECISION_HINT")
    except Exception:  # noqa: BLE001 - an older plugin without the property
        return "?"
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


@dataclass
class OvSession:
    """An OpenVINO CPU compiled model, with :class:`OrtSession`'s interface.

    ``compiled`` is compiled as the benchmark and a deployment compile it (the plugin's defaults:
    one stream, every thread on one request). For many images :meth:`run_many` also compiles the
    model with several streams (``NUM_STREAMS=AUTO``), so that each stream runs its own batch-1
    request while the caller decodes the last one, and uses it only when its outputs on the first
    images equal ``compiled``'s bit for bit. They did on the demo's FP32, INT8 and W4A8 models and a
    YOLOv10m's at 640, at 1.11-1.33x the images per second on a quiet 2-core machine (about 2x beside
    another job), so only long evaluations pay for the second compile; OpenVINO 2026.4 computed the demo's UINT4 W4A16 file
    wrongly with several streams (max |Δ| ~350 on the raw outputs; with the throughput hint on every
    compile, with NUM_STREAMS on some), and such a model is evaluated one request at a time, as
    before (``tests/unit/test_eval_streams.py``).
    """

    compiled: Any
    provider: str
    threads: int
    graph_optimization: str
    input_name: str
    model: Path | None = None
    compile_s: float = 0.0  # what compiling ``compiled`` took (a second compile costs about as much)
    requests: int = 1  # requests in flight the last run_many used
    streams_note: str = ""  # why run_many ran one request at a time, when it did
    _streamed: Any = None  # the checked several-stream compile (False: it computed otherwise)

    def run(self, pixels: Any) -> Any:
        return self.compiled(pixels)[self.compiled.outputs[0]]

    def _streams(self, first: list[tuple[Any, Any]]) -> Any:
        """The several-stream compile of the model when it computes ``first`` ((pixels, output) pairs of
        ``compiled``) bit for bit as ``compiled`` does, else None (``streams_note`` says why)."""
        import numpy as np
        import openvino as ov

        streamed = ov.Core().compile_model(str(self.model), "CPU", {"INFERENCE_NUM_THREADS": self.threads,
                                                                     "NUM_STREAMS": "AUTO"})
        if int(streamed.get_property("NUM_STREAMS")) < 2:
            self.streams_note = "one stream on this machine"
            return None
        for pixels, out in first:
            if not np.array_equal(streamed(pixels)[streamed.outputs[0]], out):
                self.streams_note = ("the several-stream compile computed the first images differently from the "
                                     "one-stream compile: one request at a time")
                return None
        return streamed

    def run_many(self, items: Iterable[T], pixels: Callable[[T], Any], count: int | None = None,
                 check: int = 2) -> Iterator[tuple[T, Any]]:
        """``(item, first output)`` for each of ``items`` (``count`` of them, when known) in order.

        The first ``check`` items run on ``compiled``, timed. When what a second, several-stream
        compile would save on the rest (:data:`STREAMS_SAVE` of their time) exceeds twice what
        compiling took (the compile, and the check), that compile is made (once per session) and used if it gives those items' outputs bit for bit; otherwise
        every item runs one request at a time. The requests take the items in turn, so waiting on the
        oldest keeps the order (no callbacks)."""
        it = iter(items)
        head: list[tuple[T, Any, Any]] = []
        per_item = 0.0
        for item in itertools.islice(it, check):
            x = pixels(item)
            t = time.perf_counter()
            head.append((item, x, self.run(x)))
            per_item = time.perf_counter() - t  # the last: the first run also sets up the kernels
        rest = None if count is None else max(count - len(head), 0)
        streamed = None
        if self.model is None:
            self.streams_note = "no model file to compile with several streams"
        elif rest is not None and STREAMS_SAVE * rest * per_item < 2 * self.compile_s:
            self.streams_note = (f"one request at a time: {rest} more images at {1000 * per_item:.1f} ms would save "
                                 f"less than a second compile costs ({self.compile_s:.1f} s)")
        else:
            if self._streamed is None:  # compiled and checked once per session
                self._streamed = self._streams([(x, out) for _, x, out in head]) or False
            streamed = self._streamed or None
        self.requests = 1
        yield from ((item, out) for item, _, out in head)
        if streamed is None:
            for item in it:
                yield item, self.run(pixels(item))
            return
        self.streams_note = ""
        requests = [streamed.create_infer_request()
                    for _ in range(max(int(streamed.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")), 1))]
        self.requests = len(requests)
        pending: deque[tuple[Any, T]] = deque()
        for i, item in enumerate(it):
            request = requests[i % len(requests)]
            if len(pending) == len(requests):  # the oldest request is this one: collect it first
                yield self._collect(*pending.popleft())
            request.start_async({0: pixels(item)})
            pending.append((request, item))
        while pending:
            yield self._collect(*pending.popleft())

    @staticmethod
    def _collect(request: Any, item: T) -> tuple[T, Any]:
        request.wait()
        return item, request.get_output_tensor(0).data.copy()


def open_openvino(model: Path, threads: int | None = None) -> OvSession:
    """Compile ``model`` (ONNX or IR) for OpenVINO's CPU plugin with ``threads`` inference threads.

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
        t = time.perf_counter()
        compiled = ov.Core().compile_model(str(model), "CPU", {"INFERENCE_NUM_THREADS": n})
        compile_s = time.perf_counter() - t
    except Exception as exc:
        raise QuantsweepError(f"OpenVINO cannot compile {model}: {first_line(exc, 200, type(exc).__name__)}",
                              "score it on ONNX Runtime (--provider cpu)") from None
    return OvSession(compiled, f"OpenVINO {ov.__version__.split('-')[0]} CPU ({inference_precision(compiled)} float "
                     "precision)", n, "openvino default", compiled.inputs[0].get_any_name(), Path(model),
                     compile_s)


@dataclass(frozen=True)
class OpenVinoRuntime:
    """OpenVINO on the CPU device."""

    name: str = "openvino"
    title: str = "OpenVINO CPU"
    extra: str | None = "openvino"
    provider: str = "openvino"
    formats: tuple[str, ...] = ("onnx", "openvino-ir")
    needs_gpu: bool = False

    def open(self, model: Path, threads: int | None = None, graph_optimization: str = "all") -> OvSession:
        return open_openvino(model, threads)

    def open_code(self, file: str) -> str:
        return f"import openvino as ov\nmodel = ov.Core().compile_model({file!r}, 'CPU')\nrun = lambda x: model(x)[0]"

    def unavailable(self) -> QuantsweepError | None:
        return missing_module(self.name, "openvino", "pip install 'quantsweep[openvino]'")

    def group(self, models: Sequence[tuple[str, Path]], work: Path) -> list[tuple[str, Path]]:
        return list(models)

    def prepare(self, model: Path, batch: int, work: Path, settings: BenchSettings) -> Prepared:
        why = self.unavailable()
        if why is not None:
            raise why
        import openvino as ov

        input_name, hw = check_batch(model, batch)
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": settings.threads} if settings.threads else {}
        compiled = core.compile_model(str(model), "CPU", config)
        request = compiled.create_infer_request()
        label, evidence = label_from_runtime_ops(compiled.get_runtime_model().get_ops(), is_quantized(model))
        evidence["inference_precision"] = inference_precision(compiled)
        return Prepared(lambda x: request.infer({input_name: x}), label, evidence,
                        {"runtime": f"openvino {ov.__version__}", "provider": "CPU", "threads": settings.threads,
                         "inference_precision": evidence["inference_precision"], "input_shape": [batch, 3, *hw]})
