"""The OpenVINO CPU backend (extra ``[openvino]``).

The label comes from the executed graph: the runtime precision OpenVINO chose for each
convolution and matrix-multiply layer (``runtimePrecision``). Low-precision compute layers make a
quantized model ``accelerated``; a quantized model whose compute layers all run in float (Q/DQ
folded away, weights decompressed) is ``emulated``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from quantsweep.bench.base import BenchSettings, Prepared, check_batch, is_quantized, missing_module
from quantsweep.errors import QuantsweepError

__all__ = ["OpenVinoBackend"]


@dataclass(frozen=True)
class OpenVinoBackend:
    """OpenVINO on the CPU device."""

    name: str = "openvino"
    extra: str = "openvino"

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
        label = "float" if not is_quantized(model) else ("accelerated" if low else "emulated")
        return Prepared(lambda x: request.infer({input_name: x}), label,
                        {"compute_layer_precisions": precisions}, {"runtime": f"openvino {ov.__version__}", "provider": "CPU",
                         "threads": settings.threads, "input_shape": [batch, 3, *hw]})
