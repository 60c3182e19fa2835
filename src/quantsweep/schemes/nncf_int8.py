"""INT8 placed for OpenVINO by its own quantizer, NNCF (``nncf.quantize`` on the ONNX graph).

NNCF chooses where Q/DQ pairs go so that OpenVINO's CPU plugin fuses them into int8 kernels, and
corrects the quantized convolutions' biases on the calibration images (fast bias correction). Its
ONNX backend writes a QDQ ONNX: the same file is scored by ONNX Runtime like every candidate and
compiled by OpenVINO with int8 kernels (measured on the demo, OpenVINO CPU, batch 1, interleaved:
this QDQ ONNX 1.56x FP32 and NNCF's own OpenVINO IR 1.55x — no reason to ship a second format).

Presets: ``mixed`` (symmetric weights, asymmetric activations: fits SiLU outputs, which are
mostly positive) or ``performance`` (symmetric both).

Measured since (docs/benchmarks.md): OpenVINO 2026.4 on a CPU without VNNI does not compute this
QDQ ONNX as ONNX Runtime does (demo: 0.510 by ORT, 0.285 by OpenVINO; real YOLOv5n: 0.001 by
OpenVINO), while NNCF's OpenVINO-model path is computed correctly. The sweep scores every candidate
by its target runtime, so such a file is measured, never shipped; an IR-producing variant is the
next step for this placement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from quantsweep.errors import QuantsweepError
from quantsweep.schemes.base import BuildContext, BuildResult, SchemeSpec, check_float_dtype

__all__ = ["NncfInt8"]


@dataclass(frozen=True)
class NncfInt8:
    """INT8 QDQ by NNCF for OpenVINO: per-channel symmetric weights, per-tensor activations."""

    family: ClassVar[str] = "int8-ov"
    precision: ClassVar[str] = "int8"
    k: int = 0
    preset: Literal["mixed", "performance"] = "mixed"
    bias_correction: Literal["fast", "none"] = "fast"
    float_dtype: Literal["fp32", "fp16"] = "fp32"
    head_policy: bool = True
    registry: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.preset not in ("mixed", "performance"):
            raise QuantsweepError(f"unknown NNCF preset {self.preset!r}", "use mixed or performance")
        if self.bias_correction not in ("fast", "none"):
            raise QuantsweepError(f"bias_correction must be fast or none (got {self.bias_correction!r})", "use fast")
        check_float_dtype(self)

    @property
    def name(self) -> str:
        return "-".join(["int8-ov"] + (["perf"] if self.preset == "performance" else [])
                        + (["nobc"] if self.bias_correction == "none" else [])
                        + (["fp16"] if self.float_dtype == "fp16" else [])
                        + ([] if self.head_policy else ["nohead"]) + ([f"k{self.k}"] if self.k else []))

    def build(self, ctx: BuildContext, keep_float: dict[str, str], out: Path) -> BuildResult:
        import nncf
        import onnx

        from quantsweep.model.info import inspect_onnx

        info = inspect_onnx(ctx.fp32_onnx, require_detector=False)
        batches = list(ctx.calib.batches(info.fixed_batch or 1))
        dataset = nncf.Dataset(batches, lambda x: {info.input_name: x})
        preset = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
        quantized = nncf.quantize(onnx.load(str(ctx.fp32_onnx)), dataset, preset=preset[self.preset],
                                  subset_size=len(batches), fast_bias_correction=True,
                                  model_type=None,
                                  ignored_scope=nncf.IgnoredScope(names=list(keep_float), validate=False),
                                  advanced_parameters=None if self.bias_correction == "fast" else
                                  nncf.AdvancedQuantizationParameters(disable_bias_correction=True))
        onnx.save(quantized, str(out))
        return BuildResult(out, "nncf.quantize (ONNX backend)", nncf.__version__,
                           {"preset": self.preset, "calibration_method": "minmax (NNCF statistics)",
                            "subset_size": len(batches), "bias_correction": self.bias_correction,
                            "weights": "int8 symmetric per-channel",
                            "activations": ("uint8/int8 asymmetric per-tensor" if self.preset == "mixed"
                                            else "int8 symmetric per-tensor"),
                            "placement": "NNCF (OpenVINO CPU int8 patterns)"},
                           dict(keep_float))


SPECS = (
    SchemeSpec("int8-ov", NncfInt8, "INT8 QDQ placed for OpenVINO by NNCF (MIXED preset, fast bias correction): "
               "OpenVINO's own quantizer", k_sets=True, default=True, needs=("nncf", "openvino"), extra="openvino"),
)
