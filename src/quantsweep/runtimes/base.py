"""What every runtime shares: the runtime protocol, a scoring session, timing settings, labels.

A runtime is one module in this package declaring a class that satisfies :class:`Runtime`, plus
one line in the registry (:data:`quantsweep.runtimes.RUNTIMES`). It owns everything quantsweep
knows about that runtime: its name and title, the install extra that brings it and whether it
can run here, the model files it accepts (:class:`~quantsweep.files.ModelFormat` names), the
evaluation provider that scores as it computes and how to open a scoring session, how to time a
model interleaved and label it from what it really executes, whether its steps need a GPU, and
the Python lines that open a model on it (the deploy command and snippet in ``recommended/``).

Labels are decided from evidence, never from a table:

- ``float``: the model has no quantization at all (the FP32 reference).
- ``accelerated``: low-precision kernels run for the quantized compute layers.
- ``emulated``: Q/DQ nodes run around float kernels (or weights are dequantized and computed in
  float): same numerics as the deployment target, none of the speed.
- ``unsupported``: the runtime could not load or run the candidate (the error is recorded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from quantsweep.env import gpu_present
from quantsweep.errors import QuantsweepError
from quantsweep.model.formats import inspect_model

__all__ = ["BenchSettings", "Prepared", "Runtime", "Session", "Streaming", "check_batch", "is_quantized", "missing_gpu",
           "missing_module", "refuse_format"]


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


class Session(Protocol):
    """A model opened for scoring: ``run(pixels)`` returns the first output for an NCHW float batch."""

    provider: str
    threads: int
    graph_optimization: str
    input_name: str

    def run(self, pixels: Any) -> Any: ...


@runtime_checkable
class Streaming(Protocol):
    """A session that keeps several batch-1 requests in flight (OpenVINO's async infer requests):
    ``run_many(items, pixels)`` yields ``(item, first output)`` in the items' order, each output what
    :meth:`Session.run` gives for ``pixels(item)``; ``requests``: how many it kept in flight, and
    ``streams_note`` why only one, when so."""

    requests: int
    streams_note: str

    def run_many(self, items: Iterable[Any], pixels: Callable[[Any], Any],
                 count: int | None = None) -> Iterator[tuple[Any, Any]]: ...


class Runtime(Protocol):
    """A runtime quantsweep scores, times and deploys on (see the module docstring)."""

    @property
    def name(self) -> str:
        """The backend name on the CLI (``--backends``, ``--target-backend``)."""
        ...

    @property
    def title(self) -> str:
        """How the report names it (``ONNX Runtime CPU``)."""
        ...

    @property
    def extra(self) -> str | None:
        """The install extra that brings it (None: the core install)."""
        ...

    @property
    def provider(self) -> str:
        """The evaluation provider (``quantsweep eval --provider``) that computes as this runtime does."""
        ...

    @property
    def formats(self) -> tuple[str, ...]:
        """The model formats it opens (:data:`quantsweep.files.FORMATS` names)."""
        ...

    @property
    def needs_gpu(self) -> bool:
        """Whether its steps must run on a GPU node (a cluster places them there)."""
        ...

    def unavailable(self) -> QuantsweepError | None:
        """Why this runtime cannot run here (a missing extra, no GPU), or None."""
        ...

    def open(self, model: Path, threads: int | None = None, graph_optimization: str = "all") -> Session:
        """A scoring session on ``model``."""
        ...

    def group(self, models: Sequence[tuple[str, Path]], work: Path) -> list[tuple[str, Path]]:
        """The models to time together: ``models``, plus any reference twin this runtime needs."""
        ...

    def prepare(self, model: Path, batch: int, work: Path, settings: BenchSettings) -> Prepared:
        """Open ``model`` for ``batch``: a callable running one batch, its label and evidence."""
        ...

    def open_code(self, file: str) -> str:
        """Python lines that open ``file`` on this runtime and define ``run(x)`` -> the first output."""
        ...


def refuse_format(runtime: Runtime, model: Path) -> None:
    """Refuse ``model`` when ``runtime`` cannot open its format (naming who can)."""
    from quantsweep.files import ModelFile

    fmt = ModelFile.of(model).format
    if fmt.name not in runtime.formats:
        raise QuantsweepError(f"{Path(model).name} is an {fmt.title} file: {runtime.title} cannot open it",
                              f"score and benchmark it on a runtime that opens {fmt.title} "
                              "(see `quantsweep env`: backends)")


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
    info = inspect_model(model, require_detector=False)
    if info.fixed_batch is not None and info.fixed_batch != batch:
        raise QuantsweepError(f"{model.name} has a fixed batch of {info.fixed_batch}, not {batch}",
                              "export with --dynamic-batch to benchmark other batch sizes")
    if info.hw is None:
        raise QuantsweepError(f"{model.name} has a dynamic input size", "export with a fixed --imgsz")
    return info.input_name, info.hw


def is_quantized(model: Path) -> bool:
    """Whether the model holds any Q/DQ node (an IR: any FakeQuantize; otherwise its label is ``float``)."""
    from quantsweep.model.formats import format_of

    return format_of(model).is_quantized(model)
