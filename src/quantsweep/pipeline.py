"""Stage verbs shared by the CLI commands and the sweep runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantsweep.calibration import CalibSet
from quantsweep.schemes import BuildContext

__all__ = ["SENSITIVITY_SCHEME", "compute_sensitivity"]

# precision -> the registry scheme whose fully quantized (K=0) graph is probed
SENSITIVITY_SCHEME = {"int8": "int8", "fp8": "fp8"}


def compute_sensitivity(fp32: Path, pt: Path | None, calib: CalibSet, precision: str, work: Path,
                        images: int = 4) -> dict[str, Any]:
    """Build the K=0 model of ``precision`` once and rank its nodes (see :mod:`quantsweep.sensitivity`)."""
    from quantsweep.errors import QuantsweepError
    from quantsweep.quantize import materialize
    from quantsweep.schemes import make_scheme
    from quantsweep.sensitivity import rank_nodes

    if precision not in SENSITIVITY_SCHEME:
        raise QuantsweepError(f"unknown precision {precision!r} for sensitivity", "use int8 or fp8")
    if images < 1:
        raise QuantsweepError(f"--images must be at least 1 (got {images})", "pass e.g. 4")
    scheme = make_scheme(SENSITIVITY_SCHEME[precision])
    full = materialize(scheme, BuildContext(fp32, pt, calib, work / "sens-work"), work / "sens")
    result = rank_nodes(fp32, full.onnx_path, calib.array(limit=images), precision)
    result["qdq_model_scheme"] = full.record["scheme"]
    return result
