"""Runtimes, one module each: what it opens, how it scores, times, labels and deploys a model; their registry.

Adding a runtime is one new module in :mod:`quantsweep.runtimes` (a class satisfying
:class:`~quantsweep.runtimes.base.Runtime`) plus one line in :data:`RUNTIMES`; every other part of
quantsweep (target selection, scoring, timing, the table, the report, ``recommended/``, the CLI's
choices, ``quantsweep env``) asks this registry.

Example:
    >>> get_runtime("openvino").provider, get_runtime("ort-cpu").formats
    ('openvino', ('onnx',))
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from quantsweep.errors import QuantsweepError, did_you_mean
from quantsweep.runtimes.base import Runtime, Session, refuse_format
from quantsweep.runtimes.openvino import OpenVinoRuntime
from quantsweep.runtimes.ort import OrtRuntime
from quantsweep.runtimes.tensorrt import TensorRtRuntime

__all__ = ["RUNTIMES", "available_runtimes", "check_runtimes", "get_runtime", "open_session", "providers",
           "runtime_for", "scorer"]

RUNTIMES: dict[str, Runtime] = {
    "ort-cpu": OrtRuntime("ort-cpu", "cpu", "ONNX Runtime CPU"),
    "ort-cuda": OrtRuntime("ort-cuda", "cuda", "ONNX Runtime CUDA"),
    "ort-trt": OrtRuntime("ort-trt", "tensorrt", "ONNX Runtime TensorRT"),
    "tensorrt": TensorRtRuntime(),
    "openvino": OpenVinoRuntime(),
}


def check_runtimes(names: Iterable[str], registry: dict[str, Runtime] | None = None) -> None:
    """Refuse an unknown backend name (with a did-you-mean)."""
    reg = RUNTIMES if registry is None else registry
    for b in names:
        if b not in reg:
            raise QuantsweepError(f"unknown backend {b!r}; {did_you_mean(b, list(reg))}".strip(),
                                  f"choose from {', '.join(reg)}")


def get_runtime(name: str, registry: dict[str, Runtime] | None = None) -> Runtime:
    """The runtime (backend) called ``name``."""
    reg = RUNTIMES if registry is None else registry
    check_runtimes([name], reg)
    return reg[name]


def available_runtimes(registry: dict[str, Runtime] | None = None) -> list[str]:
    """Runtimes that can run here, in registry order (ort-cpu always; GPU ones when a GPU answers)."""
    reg = RUNTIMES if registry is None else registry
    return [name for name, b in reg.items() if b.unavailable() is None]


def providers() -> list[str]:
    """The evaluation provider names (``quantsweep eval --provider``), ``auto`` first."""
    return ["auto", *dict.fromkeys(r.provider for r in RUNTIMES.values())]


def scorer(provider: str) -> Runtime:
    """The runtime that scores for evaluation provider ``provider`` (the first registered with it);
    ``auto``: ONNX Runtime CUDA when it can run here, else ONNX Runtime CPU."""
    if provider == "auto":
        cuda = next((r for r in RUNTIMES.values() if r.provider == "cuda"), None)
        provider = "cuda" if cuda is not None and cuda.unavailable() is None else "cpu"
    found = next((r for r in RUNTIMES.values() if r.provider == provider), None)
    if found is None:
        names = providers()
        raise QuantsweepError(f"unknown provider {provider!r}; {did_you_mean(provider, names)}".strip(),
                              f"use one of {', '.join(names)}")
    return found


def runtime_for(model: Path, provider: str = "auto") -> Runtime:
    """The runtime that scores ``model``: ``provider``'s, or when that one cannot open the model's
    format, the first registered runtime that can (only OpenVINO opens an IR)."""
    from quantsweep.files import ModelFile

    chosen = scorer(provider)
    fmt = ModelFile.of(model).format.name
    if fmt in chosen.formats:
        return chosen
    able = next((r for r in RUNTIMES.values() if fmt in r.formats), None)
    if able is None:
        refuse_format(chosen, model)
    assert able is not None
    return able


def open_session(model: Path, provider: str = "cpu", threads: int | None = None,
                 graph_optimization: str = "all") -> Session:
    """A scoring session on ``model`` by evaluation provider ``provider`` (refused, naming who can,
    when that runtime cannot open the model's format)."""
    runtime = scorer(provider)
    refuse_format(runtime, model)
    return runtime.open(model, threads, graph_optimization)
