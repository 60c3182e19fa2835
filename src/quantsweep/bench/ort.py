"""ONNX Runtime backends: ``ort-cpu``, ``ort-cuda`` and ``ort-trt`` (one execution provider each).

Labels come from the graph ORT really runs (its optimized model, dumped at session creation):
see :func:`quantsweep.bench.labels.label_from_graphs`. GPU providers bind the input on the device
once (IOBinding), so no host-device copy is timed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quantsweep.bench.base import BenchSettings, Prepared, check_batch, missing_gpu
from quantsweep.bench.labels import label_from_graphs
from quantsweep.env import available_providers
from quantsweep.errors import QuantsweepError
from quantsweep.model.session import PROVIDERS, open_ort

__all__ = ["OrtBackend"]


@dataclass(frozen=True)
class OrtBackend:
    """ONNX Runtime with one execution provider (``cpu``, ``cuda`` or ``tensorrt``)."""

    name: str
    provider: str

    def unavailable(self) -> QuantsweepError | None:
        if self.provider == "cpu":
            return None
        if no_gpu := missing_gpu(self.name):
            return no_gpu
        if PROVIDERS[self.provider] not in available_providers():
            return QuantsweepError(f"backend {self.name} not available here: onnxruntime has no {self.provider} provider",
                                   "install onnxruntime-gpu")
        return None

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
