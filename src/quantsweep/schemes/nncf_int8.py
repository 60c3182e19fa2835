"""INT8 placed for OpenVINO by its own quantizer, NNCF, shipped as the OpenVINO IR it runs.

NNCF chooses where quantizers go so that OpenVINO's CPU plugin fuses them into int8 kernels, and
corrects the quantized convolutions' biases on the calibration images (fast bias correction).

Two formats, one placement algorithm:

- ``ir`` (the default): ``nncf.quantize`` on the OpenVINO model (``ov.convert_model`` of the FP32
  ONNX), saved as IR (``.xml`` + ``.bin``). Only OpenVINO runs it; the sweep scores it there.
- ``onnx``: ``nncf.quantize`` on the ONNX graph, a QDQ ONNX. ONNX Runtime computes it as the IR
  (demo, 100 images: 0.510 both); **OpenVINO 2026.4 on a CPU without VNNI does not** (0.285 on the
  demo, 0.001 on a real YOLOv5n; docs/benchmarks.md). It is kept as the IR's ranking twin: the
  sensitivity ranking runs on ONNX Runtime, which cannot load an IR.

Float nodes: only *compute* nodes (the decode tail's DFL convolution, the K ranked nodes) go to
NNCF's ignored scope; NNCF does not quantize the tail's non-compute ops on its own. Passing them
too was measured to cost the speed-up (demo, OpenVINO CPU, interleaved: 1.09x FP32 with the whole
tail ignored against 1.47x with the DFL conv only, same accuracy within 0.3 points).

Input quantizer: on the pixel grid by default (``input_grid="pixels"``: ``[0, 1]`` in 255 steps, exact
for quantsweep's ``/255`` pixels, :mod:`quantsweep.schemes.input_grid`); ``calibrated`` keeps NNCF's
range from the calibration images (demo at 640: ``[0, 0.962]``, clipping bright pixels).

Presets: ``mixed`` (symmetric weights, asymmetric activations: fits SiLU outputs, which are
mostly positive) or ``performance`` (symmetric both).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

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
from quantsweep.schemes.input_grid import pixel_grid_onnx, pixel_grid_ov

__all__ = ["NncfInt8"]


@dataclass(frozen=True)
class NncfInt8(SchemeMethods):
    """INT8 QDQ by NNCF for OpenVINO: per-channel symmetric weights, per-tensor activations."""

    method: ClassVar[str] = "int8-ov"
    precision: ClassVar[str] = "int8"
    k: int = 0
    preset: Literal["mixed", "performance"] = "mixed"
    bias_correction: Literal["fast", "none"] = "fast"
    float_dtype: Literal["fp32", "fp16"] = "fp32"
    head_policy: bool = True
    format: Literal["ir", "onnx"] = "ir"
    input_grid: InputGrid = "pixels"
    registry: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.preset not in ("mixed", "performance"):
            raise QuantsweepError(f"unknown NNCF preset {self.preset!r}", "use mixed or performance")
        if self.bias_correction not in ("fast", "none"):
            raise QuantsweepError(f"bias_correction must be fast or none (got {self.bias_correction!r})", "use fast")
        check_float_dtype(self)
        if self.format not in ("ir", "onnx"):
            raise QuantsweepError(f"format must be ir or onnx (got {self.format!r})", "use ir (OpenVINO IR)")
        check_input_grid(self)
        if self.format == "ir" and self.float_dtype == "fp16":
            raise QuantsweepError("int8-ov as OpenVINO IR has no fp16 variant (the CPU plugin picks the float "
                                  "precision itself)", "use float_dtype fp32")

    @property
    def traits(self) -> SchemeTraits:
        """Its model file: ``.xml`` (OpenVINO IR, with its ``.bin``) or ``.onnx``."""
        return SchemeTraits(label=self.precision, suffix=".xml" if self.format == "ir" else ".onnx")

    def ranking_twin(self) -> NncfInt8:
        """The same placement as a QDQ ONNX (ONNX Runtime ranks its nodes; it cannot load an IR)."""
        return dataclasses.replace(self, format="onnx", k=0)

    @property
    def name(self) -> str:
        return "-".join(["int8-ov"] + (["perf"] if self.preset == "performance" else [])
                        + (["nobc"] if self.bias_correction == "none" else [])
                        + (["fp16"] if self.float_dtype == "fp16" else [])
                        + ([] if self.head_policy else ["nohead"]) + (["onnx"] if self.format == "onnx" else [])
                        + (["calgrid"] if self.input_grid == "calibrated" else []) + ([f"k{self.k}"] if self.k else []))

    def build(self, ctx: BuildContext, keep_float: dict[str, str], out: Path) -> BuildResult:
        import nncf
        import onnx

        from quantsweep.model.formats import inspect_model
        from quantsweep.model.graph import COMPUTE_OPS, OV_CONV_SUFFIX

        info = inspect_model(ctx.fp32_onnx, require_detector=False)
        batches = list(ctx.calib.batches(info.fixed_batch or 1))
        preset = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
        ignored = list(keep_float)
        kept = dict(keep_float)
        if self.format == "ir":
            ops = {n.name: n.op_type for n in onnx.load(str(ctx.fp32_onnx), load_external_data=False).graph.node}
            ignored = [n for n in keep_float if ops.get(n) in COMPUTE_OPS]
            kept = {n: why if n in ignored else f"{why}; left to NNCF, which quantizes only compute-node inputs"
                    for n, why in keep_float.items()}
        kwargs = dict(preset=preset[self.preset], subset_size=len(batches), fast_bias_correction=True,
                      model_type=None, advanced_parameters=None if self.bias_correction == "fast" else
                      nncf.AdvancedQuantizationParameters(disable_bias_correction=True))
        settings = {"preset": self.preset, "calibration_method": "minmax (NNCF statistics)",
                    "subset_size": len(batches), "bias_correction": self.bias_correction,
                    "weights": "int8 symmetric per-channel",
                    "activations": ("uint8/int8 asymmetric per-tensor" if self.preset == "mixed"
                                    else "int8 symmetric per-tensor"),
                    "placement": "NNCF (OpenVINO CPU int8 patterns)", "ignored_scope": ignored}
        if self.format == "onnx":
            dataset = nncf.Dataset(batches, lambda x: {info.input_name: x})
            onnx.save(nncf.quantize(onnx.load(str(ctx.fp32_onnx)), dataset,
                                    ignored_scope=nncf.IgnoredScope(names=ignored, validate=False), **kwargs),
                      str(out))
            settings["input_quantizer"] = pixel_grid_onnx(out) if self.input_grid == "pixels" else "as calibrated"
            return BuildResult(out, "nncf.quantize (ONNX backend)", nncf.__version__, settings, kept)
        import openvino as ov

        model = ov.convert_model(str(ctx.fp32_onnx))
        # a Conv with a bias is split into "<name>/WithoutBiases" (the convolution) and "<name>" (the
        # bias Add): the convolution is the node to keep float
        names = {op.get_friendly_name() for op in model.get_ops()}
        scope = [n + OV_CONV_SUFFIX if n + OV_CONV_SUFFIX in names else n for n in ignored]
        xml = out.with_suffix(".xml")
        quantized = nncf.quantize(model, nncf.Dataset(batches), ignored_scope=nncf.IgnoredScope(names=scope, validate=False),
                                  **kwargs)
        settings["input_quantizer"] = pixel_grid_ov(quantized) if self.input_grid == "pixels" else "as calibrated"
        ov.save_model(quantized, str(xml), compress_to_fp16=False)
        return BuildResult(xml, "nncf.quantize (OpenVINO backend), saved as OpenVINO IR", nncf.__version__,
                           {**settings, "format": f"OpenVINO IR (openvino {ov.__version__.split('-')[0]})"}, kept)


SPECS = (
    SchemeSpec("int8-ov", NncfInt8, "INT8 placed for OpenVINO by NNCF (MIXED preset, fast bias correction), "
               "shipped as OpenVINO IR: OpenVINO's own quantizer", k_sets=True, default=True,
               needs=("nncf", "openvino"), extra="openvino"),
    SchemeSpec("int8-ov-onnx", NncfInt8, "the same NNCF placement as a QDQ ONNX (ONNX backend); OpenVINO "
               "2026.4 without VNNI miscomputes it", preset={"format": "onnx"}, k_sets=True,
               needs=("nncf", "onnx"), extra="openvino"),
)
