"""Weight-only and low-bit schemes via Brevitas (PyTorch) exported as QCDQ ONNX.

W8A16 is the pipeline's sanity check: int8 per-channel weights with float activations should
cost almost nothing; a large loss means the pipeline is wrong, not INT8.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from quantsweep.errors import QuantsweepError
from quantsweep.schemes.base import (
    BuildContext,
    BuildResult,
    SchemeMethods,
    SchemeSpec,
    SchemeTraits,
    bits_traits,
    check_weight_fields,
    eight_bit_layers,
    fp16_suffix,
)

__all__ = ["BrevitasQCDQ"]


def _prepare_torch_model(pt: Path, end2end: bool, trust: bool = False) -> Any:
    """The Ultralytics detection model fused (Conv+BN) and in export mode, like its ONNX export."""
    from quantsweep.model.checkpoint import load_yolo

    yolo = load_yolo(pt, trust=trust)
    model = yolo.model.float().eval()
    head = model.model[-1]
    if hasattr(head, "end2end"):
        head.end2end = end2end  # before fuse(): fuse drops the unused branch
    model = model.fuse()
    for m in model.modules():
        if m.__class__.__name__ in ("Detect", "v10Detect"):
            m.export, m.format, m.dynamic = True, "onnx", False
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _dfl_conv_names(model: Any) -> list[str]:
    return [n for n, _ in model.named_modules() if n.endswith("dfl.conv")]


def _eight_bit_convs(model: Any) -> dict[str, str]:
    """The 8-bit convs of a 4-bit scheme (:func:`eight_bit_layers`) among the torch model's convs."""
    import torch.nn as nn

    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and not n.endswith("dfl.conv")]
    head = model.model[-1]
    predictions = {id(list(seq.modules())[-1]) for attr in ("cv2", "cv3", "one2one_cv2", "one2one_cv3")
                   for seq in getattr(head, attr, []) or []}
    return eight_bit_layers([(n, m.groups, id(m) in predictions) for n, m in convs])


@dataclass(frozen=True)
class BrevitasQCDQ(SchemeMethods):
    """Brevitas PTQ: ``weight_bits`` per-channel symmetric weights, optional 8-bit activations.

    ``weight_scale="mse"`` searches each channel's scale for minimum MSE (needed at 4 bits:
    a plain max scale lets outliers crush the other levels).
    """

    method: ClassVar[str] = "brevitas"
    precision: ClassVar[str] = "weight-only"
    weight_bits: Literal[4, 8] = 8
    act_bits: Literal[8] | None = None
    weight_scale: Literal["max", "mse"] = "max"
    k: int = 0
    float_dtype: Literal["fp32", "fp16"] = "fp32"
    head_policy: bool = True
    keep_8bit: Literal["stem+depthwise+predictions", "none"] = "stem+depthwise+predictions"
    registry: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.act_bits not in (None, 8):
            raise QuantsweepError(f"act_bits must be 8 or None (got {self.act_bits})", "use 8 or omit it")
        check_weight_fields(self)

    @property
    def traits(self) -> SchemeTraits:
        return bits_traits(self.weight_bits, self.act_bits)

    @property
    def name(self) -> str:
        base = f"w{self.weight_bits}a{self.act_bits or 16}"
        return base + ("-mse" if self.weight_scale == "mse" else "") + fp16_suffix(self) + ("" if self.head_policy else "-nohead")

    def build(self, ctx: BuildContext, keep_float: dict[str, str], out: Path) -> BuildResult:
        if ctx.source_pt is None:
            raise QuantsweepError(f"{self.name} needs the PyTorch checkpoint (.pt); only an ONNX was given",
                                  "pass --model with the Ultralytics .pt, or use the graph weight-only schemes")
        import brevitas
        import torch
        import torch.nn as nn
        from brevitas.export import export_onnx_qcdq
        from brevitas.graph.calibrate import calibration_mode
        from brevitas.graph.quantize import layerwise_quantize
        from brevitas.nn import QuantConv2d
        from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat
        from brevitas.quant.scaled_int import Int8WeightPerChannelFloatMSE

        from quantsweep.model.formats import inspect_model

        info = inspect_model(ctx.fp32_onnx)
        end2end = bool(info.layout is not None and info.layout.export_end2end)
        model = _prepare_torch_model(ctx.source_pt, end2end, ctx.trust_checkpoint)
        wq = Int8WeightPerChannelFloatMSE if self.weight_scale == "mse" else Int8WeightPerChannelFloat
        if self.weight_bits != 8:
            wq = wq.let(bit_width=self.weight_bits)
        kwargs: dict[str, Any] = {"weight_quant": wq, "input_quant": None}
        if self.act_bits:
            kwargs["input_quant"] = Int8ActPerTensorFloat
        kept = {n: "DFL convolution of the box decode (YOLO head policy)" for n in _dfl_conv_names(model)} \
            if self.head_policy else {}
        eight = _eight_bit_convs(model) if self.weight_bits == 4 and self.keep_8bit != "none" else {}
        qmodel = layerwise_quantize(model, compute_layer_map={nn.Conv2d: (QuantConv2d, kwargs)},
                                    name_blacklist=list(kept) + list(eight) or None)
        if eight:  # second pass: those convs at 8 bits (QuantConv2d is not matched again)
            kwargs8 = {**kwargs, "weight_quant": Int8WeightPerChannelFloat}
            others = [n for n, m in qmodel.named_modules() if isinstance(m, nn.Conv2d) and n not in eight]
            qmodel = layerwise_quantize(qmodel, compute_layer_map={nn.Conv2d: (QuantConv2d, kwargs8)},
                                        name_blacklist=others or None)
        qmodel.eval()
        with torch.no_grad():
            if self.act_bits:
                with calibration_mode(qmodel):
                    for arr in ctx.calib.batches(1):
                        qmodel(torch.from_numpy(arr))
            else:  # weight-only: one pass initialises the weight quantizers' scales
                qmodel(torch.from_numpy(ctx.calib.array(limit=1)))
        batch = info.fixed_batch or 1
        x = torch.from_numpy(ctx.calib.array(limit=1)).repeat(batch, 1, 1, 1)
        export_onnx_qcdq(qmodel, args=x, export_path=str(out), dynamo=False, opset_version=13,
                         keep_initializers_as_inputs=False, input_names=[info.input_name],
                         output_names=["output0"])
        return BuildResult(out, "brevitas layerwise_quantize + export_onnx_qcdq (TorchScript)",
                           brevitas.__version__,
                           {"weights": f"int{self.weight_bits} symmetric per-channel, "
                                       f"{'MSE' if self.weight_scale == 'mse' else 'max'} scale",
                            "activations": "int8 symmetric per-tensor (calibrated)" if self.act_bits
                            else "float (not quantized)",
                            "bn_fused": True, "export": "QCDQ, opset 13, dynamo=False",
                            "calibration_method": "brevitas calibration_mode (running max)"
                            if self.act_bits else "none (weights only)",
                            "head": "e2e" if end2end else "raw",
                            "weights_8bit": [{"module": n, "why": w} for n, w in eight.items()]},
                           kept)


_TORCH = ("torch", "brevitas", "ultralytics")
SPECS = (
    SchemeSpec("w8a16", BrevitasQCDQ, "INT8 per-channel weights, float activations (Brevitas) — sanity check",
               default=True, onnx_only="w8a16-graph", needs=_TORCH, extra="ultralytics"),
    SchemeSpec("w4a16-mse", BrevitasQCDQ, "4-bit per-channel MSE weights rounded to nearest, float activations "
               "(Brevitas; the default W4A16 is w4a16-graph-gptq-asym: GPTQ on the graph)",
               preset={"weight_bits": 4, "weight_scale": "mse"}, onnx_only="w4a16-graph-gptq-asym",
               needs=_TORCH, extra="ultralytics"),
    SchemeSpec("w4a8-mse", BrevitasQCDQ, "4-bit MSE weights rounded to nearest, 8-bit activations (Brevitas; the "
               "default W4A8 is w4a8-graph-gptq-percentile: GPTQ on the graph)",
               preset={"weight_bits": 4, "act_bits": 8, "weight_scale": "mse"}, onnx_only="w4a8-graph-gptq-percentile",
               needs=_TORCH, extra="ultralytics"),
    SchemeSpec("w8a8", BrevitasQCDQ, "8-bit weights and activations (Brevitas)",
               preset={"weight_bits": 8, "act_bits": 8}, needs=_TORCH, extra="ultralytics"),
)
