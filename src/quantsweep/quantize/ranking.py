"""Stage verbs shared by the CLI commands and the sweep runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantsweep.data.calibration import CalibSet
from quantsweep.schemes import BuildContext

__all__ = ["compute_sensitivity"]


def compute_sensitivity(fp32: Path, pt: Path | None, calib: CalibSet, scheme_name: str, work: Path,
                        images: int = 8, probe_top: int = 32, qdq_model: Path | None = None,
                        threads: int | None = None, per_weight: bool | None = None) -> dict[str, Any]:
    """Build ``scheme_name``'s fully quantized (K=0) graph once and rank its nodes.

    Args:
        scheme_name: a K-capable registry name (``int8``, ``int8-trt``, ``fp8``): the ranking is
            measured on that scheme's own graph, the one its K-set candidates deploy.
        images: calibration images the probes run on.
        probe_top: nodes measured exactly after the local-error screen (0 = every node).
        qdq_model: the scheme's K=0 candidate when it is already built (with its
            ``.scheme.json`` beside it); otherwise it is built in ``work``.
        threads: ONNX Runtime intra-op threads of the probes (default: :func:`quantsweep.env.worker_threads`).
        per_weight: order by damage removed per weight element (default: for 4-bit schemes, whose K
            set keeps weights at 8 bits and so costs file size; see :func:`rank_nodes`).

    See :mod:`quantsweep.quantize.sensitivity` for the method.
    """
    from quantsweep.errors import QuantsweepError
    from quantsweep.quantize.build import materialize
    from quantsweep.quantize.sensitivity import rank_nodes
    from quantsweep.schemes import K_SCHEMES, canonical_name, make_scheme

    scheme_name = canonical_name(scheme_name)
    if scheme_name not in K_SCHEMES:
        raise QuantsweepError(f"no sensitivity ranking for scheme {scheme_name!r}",
                              f"use one of {', '.join(sorted(K_SCHEMES))}")
    if images < 1:
        raise QuantsweepError(f"images must be at least 1 (got {images})", "use e.g. images 4", "images")
    if probe_top < 0:
        raise QuantsweepError(f"probe_top must be 0 (every node) or positive (got {probe_top})", "use e.g. probe_top 32",
                              "probe_top")
    scheme = make_scheme(scheme_name)
    ranked_on = None
    if scheme.traits.suffix != ".onnx":
        # ONNX Runtime cannot load the scheme's own format (an OpenVINO IR): rank its ONNX twin, the
        # same library's placement written as QDQ ONNX, whose node names are the IR's
        scheme, qdq_model = scheme.ranking_twin(), None
        ranked_on = f"{scheme.name}: the QDQ ONNX twin of {scheme_name}'s IR (same placement algorithm)"
    if qdq_model is None:
        full = materialize(scheme, BuildContext(fp32, pt, calib, work / f"sens-work-{scheme_name}"),
                           work / f"sens-{scheme_name}")
        qdq_model, record = full.model_path, full.record
    else:
        record = json.loads(qdq_model.with_suffix(".scheme.json").read_text())
    four_bit = scheme.traits.purpose == "size"  # its K set keeps weights at 8 bits, for size
    result = rank_nodes(fp32, qdq_model, calib.array(limit=images), scheme.precision,
                        probe_top=probe_top or None, threads=threads, weights_only=four_bit,
                        per_weight=four_bit if per_weight is None else per_weight)
    result["scheme"] = scheme_name
    result["qdq_model_scheme"] = record["scheme"]
    if ranked_on:
        result["ranked_on"] = ranked_on
    return result
