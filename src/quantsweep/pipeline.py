"""Stage verbs shared by the CLI commands and the sweep runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantsweep.calibration import CalibSet
from quantsweep.schemes import BuildContext

__all__ = ["compute_sensitivity"]


def compute_sensitivity(fp32: Path, pt: Path | None, calib: CalibSet, scheme_name: str, work: Path,
                        images: int = 2, probe_top: int = 32) -> dict[str, Any]:
    """Build ``scheme_name``'s fully quantized (K=0) graph once and rank its nodes.

    Args:
        scheme_name: a K-capable registry name (``int8``, ``int8-trt``, ``fp8``): the ranking is
            measured on that scheme's own graph, the one its K-set candidates deploy.
        images: calibration images the probes run on.
        probe_top: nodes measured exactly after the local-error screen (0 = every node).

    See :mod:`quantsweep.sensitivity` for the method.
    """
    from quantsweep.errors import QuantsweepError
    from quantsweep.quantize import materialize
    from quantsweep.schemes import K_SCHEMES, make_scheme
    from quantsweep.sensitivity import rank_nodes

    if scheme_name not in K_SCHEMES:
        raise QuantsweepError(f"no sensitivity ranking for scheme {scheme_name!r}",
                              f"use one of {', '.join(sorted(K_SCHEMES))}")
    if images < 1:
        raise QuantsweepError(f"--images must be at least 1 (got {images})", "pass e.g. 4")
    scheme = make_scheme(scheme_name)
    full = materialize(scheme, BuildContext(fp32, pt, calib, work / f"sens-work-{scheme_name}"),
                       work / f"sens-{scheme_name}")
    result = rank_nodes(fp32, full.onnx_path, calib.array(limit=images), scheme.precision,
                        probe_top=probe_top or None)
    result["scheme"] = scheme_name
    result["qdq_model_scheme"] = full.record["scheme"]
    return result
