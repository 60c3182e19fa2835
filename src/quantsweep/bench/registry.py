"""The benchmark backends, one line per runtime module; lookup with did-you-mean.

Adding a runtime is one new module in :mod:`quantsweep.bench` (a class satisfying
:class:`~quantsweep.bench.base.Backend`) plus one line in :data:`BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Iterable

from quantsweep.bench.base import Backend
from quantsweep.bench.openvino import OpenVinoBackend
from quantsweep.bench.ort import OrtBackend
from quantsweep.bench.tensorrt import TensorRtBackend
from quantsweep.errors import QuantsweepError, did_you_mean

__all__ = ["BACKENDS", "available_backends", "check_backends", "eval_provider", "get_backend"]

BACKENDS: dict[str, Backend] = {
    "ort-cpu": OrtBackend("ort-cpu", "cpu"),
    "ort-cuda": OrtBackend("ort-cuda", "cuda"),
    "ort-trt": OrtBackend("ort-trt", "tensorrt"),
    "tensorrt": TensorRtBackend(),
    "openvino": OpenVinoBackend(),
}


def check_backends(names: Iterable[str], registry: dict[str, Backend] | None = None) -> None:
    """Refuse an unknown backend name (with a did-you-mean)."""
    reg = BACKENDS if registry is None else registry
    for b in names:
        if b not in reg:
            raise QuantsweepError(f"unknown backend {b!r}; {did_you_mean(b, list(reg))}".strip(),
                                  f"choose from {', '.join(reg)}")


def get_backend(name: str, registry: dict[str, Backend] | None = None) -> Backend:
    """The backend called ``name``."""
    reg = BACKENDS if registry is None else registry
    check_backends([name], reg)
    return reg[name]


def available_backends(registry: dict[str, Backend] | None = None) -> list[str]:
    """Backends that can run here, in registry order (ort-cpu always; GPU ones when a GPU answers)."""
    reg = BACKENDS if registry is None else registry
    return [name for name, b in reg.items() if b.unavailable() is None]


def eval_provider(backend: str | None) -> str:
    """The evaluation provider that computes as ``backend`` does (``quantsweep eval --provider``).

    Accuracy is scored by the runtime a candidate is deployed on: ONNX Runtime backends by their
    provider, OpenVINO by OpenVINO; TensorRT engines by ONNX Runtime's TensorRT provider (the
    nearest runtime that reads the ONNX).
    """
    b = BACKENDS.get(backend or "")
    if isinstance(b, OrtBackend):
        return b.provider
    return {"openvino": "openvino", "tensorrt": "tensorrt"}.get(backend or "", "cpu")
