"""What every benchmark backend shares: the settings, a prepared model, the backend protocol.

A backend is one module in this package declaring a class that satisfies :class:`Backend`: its
name, the install extra it needs, an availability probe, and ``prepare`` (open a model, label it
from what the runtime executes, return a callable that runs one batch). The registry
(:mod:`quantsweep.bench.registry`) lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from quantsweep.env import gpu_present
from quantsweep.errors import QuantsweepError
from quantsweep.model.info import inspect_onnx

__all__ = ["Backend", "BenchSettings", "Prepared", "check_batch", "is_quantized", "missing_gpu", "missing_module"]


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
        if any(b < 1 for b in self.batches):
            raise QuantsweepError(f"batches must be >= 1 (got {list(self.batches)})", "use e.g. batches 1,8",
                                  "batches")
        if self.warmup < 0:
            raise QuantsweepError(f"warmup must be >= 0 (got {self.warmup})", "use e.g. warmup 10", "warmup")
        if self.iters is not None and self.iters < 1:
            raise QuantsweepError(f"iters must be >= 1 (got {self.iters})", "use e.g. iters 100", "iters")
        if self.seconds <= 0:
            raise QuantsweepError(f"seconds must be > 0 (got {self.seconds})", "use e.g. seconds 10", "seconds")


@dataclass
class Prepared:
    """A model opened on a backend: a callable that runs one batch, and what we know about it."""

    run: Callable[[np.ndarray], Any]
    label: str
    evidence: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """A runtime that times ONNX models (see the module docstring)."""

    @property
    def name(self) -> str: ...

    def unavailable(self) -> QuantsweepError | None:
        """Why this backend cannot run here (a missing extra, no GPU), or None."""
        ...

    def group(self, models: Sequence[tuple[str, Path]], work: Path) -> list[tuple[str, Path]]:
        """The models to time together: ``models``, plus any reference twin this runtime needs."""
        ...

    def prepare(self, model: Path, batch: int, work: Path, settings: BenchSettings) -> Prepared:
        """Open ``model`` for ``batch``: a callable running one batch, its label and evidence."""
        ...


def missing_module(backend: str, module: str, fix: str) -> QuantsweepError | None:
    """Why ``backend`` cannot run here when Python module ``module`` is not installed, else None."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return QuantsweepError(f"backend {backend} not available here: python module {module!r} is not installed",
                               fix)
    return None


def missing_gpu(backend: str) -> QuantsweepError | None:
    """Why ``backend`` cannot run here when no NVIDIA GPU answers, else None."""
    if gpu_present():
        return None
    return QuantsweepError(f"backend {backend} not available here: no NVIDIA GPU answers",
                           "run on a machine with an NVIDIA GPU")


def check_batch(model: Path, batch: int) -> tuple[str, tuple[int, int]]:
    """The input name and size of ``model``, refused when it cannot run at ``batch``."""
    info = inspect_onnx(model, require_detector=False)
    if info.fixed_batch is not None and info.fixed_batch != batch:
        raise QuantsweepError(f"{model.name} has a fixed batch of {info.fixed_batch}, not {batch}",
                              "export with --dynamic-batch to benchmark other batch sizes")
    if info.hw is None:
        raise QuantsweepError(f"{model.name} has a dynamic input size", "export with a fixed --imgsz")
    return info.input_name, info.hw


def is_quantized(model: Path) -> bool:
    """Whether the model holds any Q/DQ node (an IR: any FakeQuantize; otherwise its label is ``float``)."""
    import onnx

    from quantsweep.model.graph import ir_graph_facts, qdq_counts
    from quantsweep.model.info import is_ir

    if is_ir(model):
        return ir_graph_facts(model)["op_counts"].get("FakeQuantize", 0) > 0

    return any(qdq_counts(onnx.load(str(model), load_external_data=False)).values())
