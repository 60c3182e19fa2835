"""quantsweep: from a trained detector to a measured low-precision deployment decision.

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
