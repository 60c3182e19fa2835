"""Quantization schemes: one frozen dataclass each, and an explicit registry.

A new scheme is one class and one line in :data:`REGISTRY`.

Example:
    >>> make_scheme("int8", k=5).name
    'int8-qdq-k5'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quantsweep.errors import QuantsweepError, did_you_mean
from quantsweep.schemes.base import BuildContext, BuildResult, Scheme, scheme_to_dict
from quantsweep.schemes.brevitas_qcdq import BrevitasQCDQ
from quantsweep.schemes.graph_weight_only import GraphWeightOnly
from quantsweep.schemes.modelopt_qdq import ModelOptFp8, ModelOptInt8
from quantsweep.schemes.ort_int8 import OrtInt8

__all__ = ["CLASSES", "DEFAULT_SCHEMES", "REGISTRY", "BuildContext", "BuildResult", "Scheme",
           "K_SCHEMES", "describe", "make_scheme", "scheme_from_dict", "scheme_to_dict"]

# registry name -> (factory(**overrides), one-line description)
REGISTRY: dict[str, tuple[Callable[..., Any], str]] = {
    "int8": (lambda **kw: OrtInt8(**kw), "INT8 QDQ, ONNX Runtime quantizer, per-channel weights (ORT CPU int8 kernels)"),
    "int8-u8w": (lambda **kw: OrtInt8(weights="uint8", **kw),
                 "INT8 QDQ with uint8 symmetric weights (zero-point 128): full 8-bit weights on x86 without "
                 "VNNI (u8u8 kernels do not saturate; slower, and OpenVINO runs them emulated)"),
    "int8-nohead": (lambda **kw: OrtInt8(head_policy=False, **kw),
                    "ablation: INT8 QDQ with the decode tail quantized too (no YOLO head policy)"),
    "int8-trt": (lambda **kw: ModelOptInt8(**kw), "INT8 QDQ placed for TensorRT by ModelOpt (zero-point 0)"),
    "fp8": (lambda **kw: ModelOptFp8(**kw), "FP8 E4M3 QDQ by ModelOpt (TensorRT on Hopper+; emulated elsewhere)"),
    "w8a16": (lambda **kw: BrevitasQCDQ(weight_bits=8, **kw), "INT8 per-channel weights, float activations (Brevitas) — sanity check"),
    "w4a16": (lambda **kw: BrevitasQCDQ(weight_bits=4, weight_scale="mse", **kw), "4-bit per-channel MSE weights, float activations (Brevitas)"),
    "w4a8": (lambda **kw: BrevitasQCDQ(weight_bits=4, act_bits=8, weight_scale="mse", **kw), "4-bit MSE weights, 8-bit activations (Brevitas)"),
    "w8a8": (lambda **kw: BrevitasQCDQ(weight_bits=8, act_bits=8, **kw), "8-bit weights and activations (Brevitas)"),
    "w8a16-graph": (lambda **kw: GraphWeightOnly(weight_bits=8, **kw), "INT8 per-channel weights on the ONNX graph (no .pt needed)"),
    "w4a16-graph": (lambda **kw: GraphWeightOnly(weight_bits=4, weight_scale="mse", **kw), "4-bit MSE weights on the ONNX graph (no .pt needed)"),
}
CLASSES: dict[str, type] = {c.family: c for c in (OrtInt8, ModelOptInt8, ModelOptFp8, BrevitasQCDQ, GraphWeightOnly)}
DEFAULT_SCHEMES: tuple[str, ...] = ("int8", "int8-trt", "fp8", "w8a16", "w4a16", "w4a8")
K_SCHEMES: frozenset[str] = frozenset({"int8", "int8-u8w", "int8-trt", "fp8"})
_ONNX_ONLY_FALLBACK = {"w8a16": "w8a16-graph", "w4a16": "w4a16-graph"}


def make_scheme(name: str, onnx_only: bool = False, **overrides: Any) -> Any:
    """Build the scheme registered as ``name`` (with field overrides such as ``k=5``).

    Args:
        name: a key of :data:`REGISTRY`.
        onnx_only: the model has no PyTorch checkpoint: weight-only schemes use the graph path.
        overrides: dataclass fields to set.

    Raises:
        QuantsweepError: unknown name (with a did-you-mean) or invalid fields.
    """
    if name not in REGISTRY:
        raise QuantsweepError(f"unknown scheme {name!r}; {did_you_mean(name, list(REGISTRY))}".strip(),
                              f"choose from {', '.join(REGISTRY)} (quantsweep schemes)")
    if onnx_only and name in _ONNX_ONLY_FALLBACK:
        name = _ONNX_ONLY_FALLBACK[name]
    try:
        return REGISTRY[name][0](**overrides)
    except TypeError:
        import dataclasses

        cls = type(REGISTRY[name][0]())
        valid = [f.name for f in dataclasses.fields(cls)]
        bad = sorted(set(overrides) - set(valid))
        raise QuantsweepError(f"invalid setting for scheme {name!r}: {', '.join(bad) or overrides}",
                              f"{name} accepts: {', '.join(valid)}") from None


def describe(name: str) -> str:
    return REGISTRY[name][1]


def scheme_from_dict(d: dict[str, Any]) -> Any:
    """Inverse of :func:`scheme_to_dict`."""
    fields = dict(d)
    family = fields.pop("family", None)
    if family not in CLASSES:
        raise QuantsweepError(f"unknown scheme family {family!r}", f"expected one of {', '.join(CLASSES)}")
    return CLASSES[family](**fields)
