"""INT8 QDQ with ONNX Runtime's static quantizer (the scheme ORT CPU runs with int8 kernels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np

from quantsweep.errors import QuantsweepError
from quantsweep.schemes.base import (
    BuildContext,
    BuildResult,
    InputGrid,
    SchemeMethods,
    SchemeSpec,
    SchemeTraits,
    check_float_dtype,
    check_input_grid,
)
from quantsweep.schemes.input_grid import pixel_grid_onnx

__all__ = ["CALIBRATIONS", "HISTOGRAM_BYTES", "Calibration", "OrtInt8", "activation_bytes", "ort_calibration", "ort_reader",
           "resolve_reduce_range"]

Calibration = Literal["minmax", "entropy", "percentile"]
CALIBRATIONS: tuple[str, ...] = get_args(Calibration)


def resolve_reduce_range(setting: str, vnni: bool | None = None) -> bool:
    """``auto`` -> 7-bit weights on x86 CPUs without VNNI.

    Without VNNI, ORT's u8s8 int8 GEMM uses ``vpmaddubsw``, whose int16 pair sums saturate with
    full-range 8-bit weights (ORT documents ``reduce_range`` as the remedy); with VNNI, no.
    """
    if setting == "on":
        return True
    if setting == "off":
        return False
    if vnni is None:
        import platform

        from quantsweep.env import cpu_info

        if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
            return False
        vnni = cpu_info()["vnni"]
    return not vnni


# a histogram calibrator holds at most this many bytes of activations at once (ONNX Runtime keeps every
# activation of every image it was given; a real YOLOv5n at 640 with 64 images reached 18 GB resident)
HISTOGRAM_BYTES = 10e9


def activation_bytes(model: Path) -> int:
    """Bytes of the float tensors one batch creates in ``model`` (ONNX shape inference; 0 when unknown)."""
    import onnx
    from onnx import TensorProto, shape_inference

    try:
        inferred = shape_inference.infer_shapes(onnx.load(str(model), load_external_data=False))
    except Exception:  # noqa: BLE001 - no estimate: the calibrator gets every image at once
        return 0
    total = 0
    for vi in [*inferred.graph.value_info, *inferred.graph.output]:
        t = vi.type.tensor_type
        dims = [d.dim_value for d in t.shape.dim]
        if t.elem_type == TensorProto.FLOAT and dims and all(d > 0 for d in dims):
            total += 4 * int(np.prod(dims))
    return total


def ort_calibration(calibration: str, batches: int | None = None,
                    model: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """ONNX Runtime's ``calibrate_method`` and extra options for ``minmax``, ``entropy`` or ``percentile``
    (the 0.001st to 99.999th percentile of each activation's histogram).

    A histogram method whose ``batches`` calibration batches of ``model`` would hold more than
    :data:`HISTOGRAM_BYTES` of activations (:func:`activation_bytes` each) is fed in
    strides (ONNX Runtime's ``CalibStridedMinMax``: the largest divisor of ``batches`` that fits): its
    calibrator otherwise holds every activation of every calibration image at once (a real YOLOv5n at
    640, 64 images: 18 GB resident and 126 s; in strides of 8: 3.8 GB and 65 s), and each stride's
    histogram is merged into the last on the same bin width (activation scales within ±0.1 % of one
    pass). Min-max reduces each tensor inside the graph and needs no stride."""
    from onnxruntime.quantization import CalibrationMethod

    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[calibration]
    options: dict[str, Any] = {"CalibPercentile": 99.999} if calibration == "percentile" else {}
    batch_bytes = activation_bytes(model) if calibration != "minmax" and batches and model is not None else 0
    if batches and batch_bytes * batches > HISTOGRAM_BYTES:
        fits = max(1, int(HISTOGRAM_BYTES // batch_bytes))
        options["CalibStridedMinMax"] = max(d for d in range(1, min(fits, batches) + 1) if batches % d == 0)
    return method, options


def ort_reader(calib: Any, input_name: str, batch: int) -> Any:
    """ONNX Runtime's calibration data reader over ``calib``'s images in batches of ``batch`` (the last
    padded by repeating its last image), with the length and sub-range ONNX Runtime's strided
    calibration asks for."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = list(calib.batches(batch))
            self.set_range(0, len(self._batches))

        def __len__(self) -> int:
            return len(self._batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._it = iter(self._batches[start_index:end_index])

        def get_next(self):  # noqa: ANN202 - ORT's interface
            arr = next(self._it, None)
            return None if arr is None else {input_name: arr}

    return Reader()


@dataclass(frozen=True)
class OrtInt8(SchemeMethods):
    """INT8 QDQ via ``onnxruntime.quantization.quantize_static``.

    Per-channel symmetric int8 weights, asymmetric uint8 activations (the pair ORT CPU fuses into
    QLinearConv), calibration on the calib split, the YOLO decode tail kept in float.
    """

    method: ClassVar[str] = "int8"
    precision: ClassVar[str] = "int8"
    k: int = 0
    calibration: Calibration = "minmax"
    per_channel: bool = True
    reduce_range: Literal["auto", "on", "off"] = "auto"
    weights: Literal["int8", "uint8"] = "int8"
    float_dtype: Literal["fp32", "fp16"] = "fp32"
    head_policy: bool = True
    input_grid: InputGrid = "pixels"
    registry: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        check_input_grid(self)
        if self.calibration not in CALIBRATIONS:
            raise QuantsweepError(f"unknown calibration {self.calibration!r}", "use minmax, entropy or percentile")
        check_float_dtype(self)
        if self.weights not in ("int8", "uint8"):
            raise QuantsweepError(f"weights must be int8 or uint8 (got {self.weights!r})", "use int8")
        if self.reduce_range not in ("auto", "on", "off"):
            raise QuantsweepError(f"reduce_range must be auto, on or off (got {self.reduce_range!r})",
                                  "use auto")

    @property
    def traits(self) -> SchemeTraits:
        return SchemeTraits(label=self.precision)

    @property
    def name(self) -> str:
        parts = ["int8-qdq"]
        if self.calibration != "minmax":
            parts.append(self.calibration)
        if self.weights == "uint8":
            parts.append("u8w")
        if self.float_dtype == "fp16":
            parts.append("fp16")
        if not self.head_policy:
            parts.append("nohead")
        if self.input_grid == "calibrated":
            parts.append("calgrid")
        if self.k:
            parts.append(f"k{self.k}")
        return "-".join(parts)

    def build(self, ctx: BuildContext, keep_float: dict[str, str], out: Path) -> BuildResult:
        import onnxruntime
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

        from quantsweep.model.formats import inspect_model

        info = inspect_model(ctx.fp32_onnx)
        reader = ort_reader(ctx.calib, info.input_name, info.fixed_batch or 1)
        method, calib_options = ort_calibration(self.calibration, len(reader), ctx.fp32_onnx)
        # u8u8 kernels widen to int16 before multiplying: no saturation, so full 8-bit weights.
        reduce = resolve_reduce_range(self.reduce_range) if self.weights == "int8" else self.reduce_range == "on"
        extra: dict[str, Any] = {"WeightSymmetric": True, "ActivationSymmetric": False, **calib_options}
        quantize_static(str(ctx.fp32_onnx), str(out), reader, quant_format=QuantFormat.QDQ,
                        per_channel=self.per_channel, reduce_range=reduce,
                        activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8 if self.weights == "int8" else QuantType.QUInt8,
                        nodes_to_exclude=list(keep_float), calibrate_method=method,
                        extra_options=extra)
        grid = pixel_grid_onnx(out) if self.input_grid == "pixels" else "as calibrated"
        return BuildResult(out, "onnxruntime.quantization.quantize_static", onnxruntime.__version__,
                           {"quant_format": "QDQ", "input_quantizer": grid, "activations": "uint8 asymmetric per-tensor",
                            "weights": f"{self.weights} symmetric " + ("per-channel" if self.per_channel else "per-tensor")
                            + (" (zero-point 128)" if self.weights == "uint8" else ""),
                            "reduce_range": reduce, "reduce_range_setting": self.reduce_range,
                            "calibration_method": self.calibration, **extra},
                           dict(keep_float))


SPECS = (
    SchemeSpec("int8-qdq", OrtInt8, "INT8 QDQ, ONNX Runtime quantizer, per-channel weights (ORT CPU int8 kernels)",
               k_sets=True, default=True),
    SchemeSpec("int8-qdq-u8w", OrtInt8, "INT8 QDQ with uint8 symmetric weights (zero-point 128): full 8-bit weights on "
               "x86 without VNNI (u8u8 kernels do not saturate; slower, and OpenVINO runs them emulated)",
               preset={"weights": "uint8"}, k_sets=True),
    SchemeSpec("int8-qdq-nohead", OrtInt8, "ablation: INT8 QDQ with the decode tail quantized too (no YOLO head policy)",
               preset={"head_policy": False}),
)
