"""quantsweep: from a trained detector to a measured low-precision deployment decision.

Sub-packages by stage, importing one way only (checked by import-linter, see
docs/architecture.md): ``cli`` -> ``sweep`` -> ``decide`` -> ``report`` -> {``bench``,
``evaluate``, ``quantize``, ``demo``} -> ``schemes`` -> {``data``, ``model``} -> leaves (``env``,
``files``, ``offline``, ``troubleshooting``, ``errors``).

Extending it:

- a quantization scheme is one new module in :mod:`quantsweep.schemes` (a frozen dataclass
  with ``name`` and ``build``, and a ``SPECS`` tuple declaring its registry entries) plus one
  line in that package's ``_MODULES``;
- a runtime to benchmark on is one new module in :mod:`quantsweep.bench` (a class with
  ``name``, ``unavailable``, ``group`` and ``prepare``) plus one line in
  :data:`quantsweep.runtimes.RUNTIMES`;
- an executor (where build and evaluation steps run) implements
  :class:`quantsweep.sweep.executors.Executor` (one line in :mod:`quantsweep.sweep.choose`) over the run's
  :class:`quantsweep.sweep.store.StepStore`, the only writer of a run folder.

``import quantsweep`` stays light: heavy libraries (torch, ultralytics, onnxruntime) are
imported inside the functions that need them, and the public API below is loaded on first use.

Example:
    >>> import quantsweep
    >>> result = quantsweep.run_sweep(quantsweep.SweepConfig())  # doctest: +SKIP  (the demo)
    >>> result.run_dir  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["RunResult", "SweepConfig", "__version__", "run_sweep"]

_LAZY = {"run_sweep": "quantsweep.sweep.runner", "RunResult": "quantsweep.sweep.runner", "SweepConfig": "quantsweep.sweep.config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'quantsweep' has no attribute {name!r}")
