"""Weight-only quantization on the ONNX graph itself, for models given only as ONNX.

No maintained library does this for convolutions (ONNX Runtime's and ModelOpt's weight-only
paths handle MatMul/Gemm only), so it is done here: each Conv/ConvTranspose/MatMul/Gemm weight
initializer becomes an int8 initializer (int4 range [-7, 7] at 4 bits) with one scale per output
channel, followed by DequantizeLinear. Activations stay float.

With ``reconstruction="gptq"`` the 4-bit Conv weights are reconstructed by GPTQ against the
calibration images' activations (:mod:`quantsweep.schemes.gptq`) instead of rounded to nearest;
the per-channel scales are the same MSE-searched ones.

Weight-only 4-bit convolutions are *stored* in 4 bits (``storage="int4"``): each conv weight is
flattened to ``[out, in x kh x kw]``, written as an ONNX ``INT4`` initializer (two values a byte)
read by a ``DequantizeLinear`` (opset 21; blocked, ``block_size=group_size``, when ``group_size``
gives one scale per group of that many input columns instead of one per output channel) and a
``Reshape`` back to the conv's shape. The model is converted to opset 21 for it (ONNX's version
converter); where that fails the weights stay in an int8 container and the record says so.

W4A8 keeps ONNX Runtime's QDQ graph, whose int8 kernels (QLinearConv) read int8 weights with one
scale per output channel: its 4-bit weights are stored as ``INT4`` initializers behind a ``Cast`` to
int8 (:func:`int8_to_int4_initializers`, after the graph clean-up); ONNX Runtime folds the ``Cast`` of
a constant at load and fuses the same QLinearConv kernels, so the file is 4-bit and the speed is INT8's.

Such a file also stores its scales in fp16 (``scale_dtype="fp16"``: the scales are rounded to fp16
*before* the weights are quantized against them, so nothing is lost in the file) and every other
float constant whose values fp16 holds exactly (a YOLOv5 decode's grids and anchors, say) as fp16
behind a ``Cast`` (``fp16_constants``): bit-exact, checked value by value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from quantsweep.errors import QuantsweepError
from quantsweep.schemes.base import (
    BuildContext,
    BuildResult,
    SchemeMethods,
    SchemeSpec,
    SchemeTraits,
    bits_traits,
    check_weight_fields,
    fp16_suffix,
)
from quantsweep.schemes.graph_surgery import eight_bit_nodes, int8_activations, place_weights
from quantsweep.schemes.int4_storage import INT4_OPSET, exact_fp16_constants, int8_to_int4_initializers, to_int4_opset
from quantsweep.schemes.ort_int8 import CALIBRATIONS, Calibration
from quantsweep.schemes.weight_grids import (
    HESSIAN_PATCHES,
    block_for,
    quantize_groups,
    quantize_groups_asym,
    quantize_progressive,
    quantize_weight,
)

__all__ = ["GraphWeightOnly", "SPECS"]


@dataclass(frozen=True)
class GraphWeightOnly(SchemeMethods):
    """W8A16 / W4A16 by rewriting weight initializers of the ONNX graph (no PyTorch needed)."""

    method: ClassVar[str] = "graph-weight-only"
    precision: ClassVar[str] = "weight-only"
    weight_bits: Literal[4, 8] = 8
    weight_scale: Literal["max", "mse"] = "max"
    k: int = 0
    float_dtype: Literal["fp32", "fp16"] = "fp32"
    head_policy: bool = True
    keep_8bit: Literal["stem+depthwise+predictions", "none"] = "stem+depthwise+predictions"
    reconstruction: Literal["none", "gptq", "adaround"] = "none"  # adaround: learned rounding (an option)
    act_bits: Literal[8] | None = None  # 8: activations int8 too (ONNX Runtime's QDQ placement), W4A8
    group_size: int = 0  # 4-bit convs: one scale per block of this many input columns (0: per output channel)
    storage: Literal["int4", "int8"] = "int4"  # how 4-bit weight-only convs are stored in the file
    # INT4 files: scales rounded to fp16 before quantizing, and float constants fp16 holds exactly stored as fp16
    scale_dtype: Literal["fp32", "fp16"] = "fp16"
    fp16_constants: bool = True
    # with GPTQ: each Conv's bias absorbs the mean output shift of its 4-bit weights. Off by default: it did
    # not pay when measured (demo W4A16 +0.01, W4A8 +0.23; real YOLOv5n K=0 +0.01, K=4 -0.56 points)
    bias_correction: bool = False
    # 4-bit weight-only convs: asymmetric groups (a UINT4 zero point next to each fp16 scale)
    zero_point: bool = False
    # W4A8: how ONNX Runtime calibrates the uint8 activation ranges (as int8-qdq's ``calibration``)
    act_calibration: Calibration = "minmax"
    registry: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        check_weight_fields(self, k_ok=self.weight_bits == 4)
        if self.reconstruction not in ("none", "gptq", "adaround"):
            raise QuantsweepError(f"reconstruction must be none, gptq or adaround (got {self.reconstruction!r})",
                                  "use gptq")
        if self.act_bits not in (None, 8):
            raise QuantsweepError(f"act_bits must be 8 or None (got {self.act_bits})", "use 8 or omit it")
        if self.group_size < 0 or (self.group_size and self.weight_bits != 4):
            raise QuantsweepError(f"group_size {self.group_size}: groups are for 4-bit weights",
                                  "use group_size 0 (per output channel), or 32/64/128 with 4-bit weights")
        if self.storage not in ("int4", "int8"):
            raise QuantsweepError(f"storage must be int4 or int8 (got {self.storage!r})", "use int4")
        if self.scale_dtype not in ("fp32", "fp16"):
            raise QuantsweepError(f"scale_dtype must be fp32 or fp16 (got {self.scale_dtype!r})", "use fp16")
        if self.zero_point and (self.weight_bits != 4 or self.act_bits or self.reconstruction == "adaround"):
            raise QuantsweepError("zero_point is for 4-bit weight-only schemes rounded to nearest or by GPTQ",
                                  "use zero_point with weight_bits 4, no act_bits, reconstruction none or gptq")
        if self.act_calibration not in CALIBRATIONS:
            raise QuantsweepError(f"unknown act_calibration {self.act_calibration!r}", "use minmax, entropy or percentile")
        if self.act_calibration != "minmax" and not self.act_bits:
            raise QuantsweepError("act_calibration is for schemes with int8 activations (act_bits 8)",
                                  "omit it, or set act_bits 8")
        if self.reconstruction != "none" and self.weight_bits != 4:
            raise QuantsweepError("GPTQ is for 4-bit weights (8-bit rounding to nearest loses nothing measurable)",
                                  "use reconstruction none with weight_bits 8")

    @property
    def traits(self) -> SchemeTraits:
        return bits_traits(self.weight_bits, self.act_bits, k_keeps="8-bit")  # K: ranked convs keep 8-bit weights

    @property
    def name(self) -> str:
        method = (f"-{self.reconstruction}" if self.reconstruction != "none"
                  else ("-mse" if self.weight_scale == "mse" else ""))
        return (f"w{self.weight_bits}a{self.act_bits or 16}-graph" + method
                + ("-bc" if self.reconstruction == "gptq" and self.bias_correction else "")
                + ("-asym" if self.zero_point else "")
                + ("" if self.act_calibration == "minmax" else f"-{self.act_calibration}")
                + fp16_suffix(self) + ("" if self.head_policy else "-nohead")
                + (f"-k{self.k}" if self.k else ""))

    def _flat_dequantize(self, model: Any, init: Any, q: np.ndarray, groups: np.ndarray,
                         shape: tuple[int, ...], block: int, zeros: np.ndarray | None = None) -> list[Any]:
        """Replace weight ``init`` by its flattened 4-bit values (``INT4`` or int8), the scales
        (``groups`` [out, blocks]; one block: per channel) and DequantizeLinear -> Reshape nodes.
        With ``zeros`` (zero points [out, blocks]), the values ``q + zero`` are stored unsigned
        (``UINT4`` or uint8) next to their zero points."""
        import ml_dtypes
        from onnx import helper, numpy_helper

        wname = init.name
        q2 = q.reshape(shape[0], -1)
        blocked = block > 0
        width = block if blocked else q2.shape[1]
        if zeros is not None:
            q2 = q2.astype(np.int16) + np.repeat(zeros.astype(np.int16), width, axis=1)
        unsigned = zeros is not None
        kind = ((ml_dtypes.uint4 if unsigned else ml_dtypes.int4) if self.storage == "int4"
                else (np.uint8 if unsigned else np.int8))
        values = numpy_helper.from_array(q2.astype(kind), f"{wname}_q4")
        scales = groups.astype(np.float32) if blocked else groups[:, 0].astype(np.float32)
        model.graph.initializer.remove(init)
        model.graph.initializer.extend([values, numpy_helper.from_array(scales, f"{wname}_scale"),
                                        numpy_helper.from_array(np.array(shape, np.int64), f"{wname}_shape")])
        dq_inputs = [values.name, f"{wname}_scale"]
        if zeros is not None:
            zp = zeros if blocked else zeros[:, 0]
            model.graph.initializer.append(numpy_helper.from_array(zp.astype(kind), f"{wname}_zero"))
            dq_inputs.append(f"{wname}_zero")
        attrs = {"axis": 1, "block_size": block} if blocked else {"axis": 0}
        dq = helper.make_node("DequantizeLinear", dq_inputs, [f"{wname}_flat"], name=f"{wname}_DequantizeLinear")
        dq.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
        return [dq, helper.make_node("Reshape", [f"{wname}_flat", f"{wname}_shape"], [wname], name=f"{wname}_Reshape")]

    def after_clean(self, path: Path, settings: dict[str, Any]) -> None:
        """The last pass over the cleaned file (the graph clean-up folds ``Cast(constant)`` back to
        float32): an INT4 file stores its exactly-fp16 float constants (scales included) as fp16."""
        import onnx

        model, changed = onnx.load(str(path)), False
        if self.weight_bits == 4 and self.act_bits and self.storage == "int4":
            # W4A8: the int8 weights ONNX Runtime's kernels read become INT4 + Cast here, after the
            # clean-up (which would fold the Cast of a constant back into an int8 initializer)
            model, note = to_int4_opset(model)
            # the smallest multiplier that divides a block is found again (at most the build's, <= 15: UINT4)
            moved = 0 if note else int8_to_int4_initializers(model, group=self.group_size)
            how = ("INT4 values x UINT4 group multipliers, multiplied back to int8 (Cast, Mul, Reshape, Cast)"
                   if self.group_size else "a Cast to int8")
            settings["storage"] = (f"INT4 initializers ({moved} conv weights; {how} before ONNX Runtime's "
                                   "per-channel DequantizeLinear, folded at load: int8 kernels as before; opset "
                                   f"{INT4_OPSET})" if moved else f"int8 initializers ({note or 'no 4-bit weights found'})")
            changed = bool(moved)
        if self.fp16_constants and str(settings.get("storage", "")).startswith(("INT4", "UINT4")):
            moved = exact_fp16_constants(model)
            if moved:
                settings["storage"] = settings["storage"][:-1] + f"; {moved} float constants stored as fp16 + Cast, exactly)"
                changed = True
        if changed:
            onnx.save(model, str(path))

    def build(self, ctx: BuildContext, keep_float: dict[str, str], out: Path) -> BuildResult:
        import onnx
        from onnx import helper, numpy_helper

        model = onnx.load(str(ctx.fp32_onnx))
        # 4-bit weight-only convs stored flat ([out, in x kh x kw]) in INT4 (or int8) behind a blocked DQ
        flat_store = self.weight_bits == 4 and not self.act_bits and (self.storage == "int4" or self.group_size > 0)
        storage_note = None
        if flat_store:
            model, storage_note = to_int4_opset(model)
            flat_store = storage_note is None
        inits = {i.name: i for i in model.graph.initializer}
        users: dict[str, int] = {}
        for n in model.graph.node:
            for i in n.input:
                users[i] = users.get(i, 0) + 1
        new_nodes: list[Any] = []
        weights: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # conv -> (integer weights, scales)
        done = 0
        eight = eight_bit_nodes(model) if self.weight_bits == 4 and self.keep_8bit != "none" else {}
        # K: the ranked nodes keep 8-bit weights (mixed 4/8), not float
        ranked = {n: f"{why}: kept at 8 bits" for n, why in keep_float.items() if why.startswith("sensitivity rank")}
        eight.update(ranked)
        keep_float = {n: why for n, why in keep_float.items() if n not in ranked}
        hessians: dict[str, tuple[np.ndarray, int]] = {}
        means: dict[str, np.ndarray] = {}
        reconstructed = corrected = smaller = 0
        max_mult = 0
        if self.act_bits and self.group_size:  # |q x m| <= 7 m must stay within the int8 weights' range
            from quantsweep.schemes.ort_int8 import resolve_reduce_range

            max_mult = min(15, (63 if resolve_reduce_range("auto") else 127) // 7)
        if self.reconstruction != "none":  # W4A8 too: against float inputs (its quantized ones measured worse)
            from quantsweep.schemes.gptq import conv_hessians

            targets = [n.name for n in model.graph.node if n.op_type == "Conv" and n.name not in keep_float
                       and n.name not in eight and not any(a.name == "group" and a.i > 1 for a in n.attribute)]
            hessians = conv_hessians(ctx.fp32_onnx, targets, ctx.calib.array(), means=means, positions=HESSIAN_PATCHES)
        for n in model.graph.node:
            widx = 1 if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm") else None
            if widx is None or n.name in keep_float or len(n.input) <= widx or n.input[widx] not in inits:
                continue
            wname = n.input[widx]
            w = numpy_helper.to_array(inits[wname])
            if w.dtype != np.float32 or w.ndim < 2 or users.get(wname, 0) != 1:
                continue
            # output-channel axis: Conv O,I,kh,kw -> 0; ConvTranspose I,O,.. -> 1; MatMul K,N -> 1
            axis = {"Conv": 0, "ConvTranspose": 1, "MatMul": w.ndim - 1,
                    "Gemm": 0 if any(a.name == "transB" and a.i for a in n.attribute) else 1}[n.op_type]
            bits = 8 if n.name in eight else self.weight_bits
            flat = flat_store and bits == 4 and n.op_type == "Conv" and axis == 0
            mult = zeros = low = None
            mse = self.weight_scale == "mse"
            if flat:
                block = block_for(w[0].size, self.group_size)
                smaller += int(block != self.group_size)
                if self.zero_point:
                    q2, groups, zeros = quantize_groups_asym(w.reshape(len(w), -1), block, mse,
                                                             fp16_scales=self.scale_dtype == "fp16")
                    low = -np.repeat(zeros.astype(np.float64), block or w[0].size, axis=1)
                else:
                    q2, groups = quantize_groups(w.reshape(len(w), -1), bits, block, mse,
                                                 fp16_scales=self.scale_dtype == "fp16")
                q, scale = q2.reshape(w.shape), groups[:, 0]
                full = np.repeat(groups, block, axis=1) if block else scale
            elif self.act_bits and bits == 4 and n.op_type == "Conv" and axis == 0 \
                    and (block := block_for(w[0].size, self.group_size)):
                # W4A8 groups: integer multipliers on one row scale, so the int8 kernels still apply
                q2, scale, mult_b = quantize_progressive(w.reshape(len(w), -1), block, max_mult, mse,
                                                         fp16_scales=self.scale_dtype == "fp16")
                mult = np.repeat(mult_b.astype(np.int32), block, axis=1)
                q, groups, full = q2.reshape(w.shape), scale[:, None], scale[:, None] * mult
            else:  # W4A8's 4-bit scales are fp16 values too (its INT4 file stores them so)
                q, scale = quantize_weight(w, bits, axis, mse, fp16_scales=bool(
                    self.act_bits and bits == 4 and self.storage == "int4" and self.scale_dtype == "fp16"))
                groups, full = scale[:, None], scale
            if n.name in hessians and axis == 0 and hessians[n.name][0].shape[0] == w[0].size:
                from quantsweep.schemes.adaround import adaround_quantize
                from quantsweep.schemes.gptq import gptq_quantize

                if self.reconstruction == "adaround":
                    q = adaround_quantize(w.reshape(len(w), -1), hessians[n.name][0], full, 2 ** (bits - 1) - 1)
                else:
                    q = gptq_quantize(w.reshape(len(w), -1), hessians[n.name][0], full, 2 ** (bits - 1) - 1,
                                      low=low)
                q = q.reshape(w.shape)
                reconstructed += 1
                if self.bias_correction and n.name in means and len(n.input) > 2 and n.input[2] in inits:
                    # E[W x] - E[Wq x] = (W - Wq) E[x]: the shift the 4-bit weights add, given back in the bias
                    shift = (w.reshape(len(w), -1).astype(np.float64)
                             - q.reshape(len(w), -1) * np.asarray(full, np.float64).reshape(len(w), -1)) @ means[n.name]
                    bias = numpy_helper.to_array(inits[n.input[2]]).astype(np.float64) + shift
                    inits[n.input[2]].CopyFrom(numpy_helper.from_array(bias.astype(np.float32), n.input[2]))
                    corrected += 1
            if bits == 4 and not flat:
                if mult is not None:  # int8 values q x m, read with the row scale
                    q = (q.reshape(len(w), -1).astype(np.int32) * mult).astype(np.int8).reshape(w.shape)
                weights[n.name] = (q, scale)
            if self.act_bits:  # placed into ONNX Runtime's QDQ graph below
                done += 1
                continue
            if flat:
                new_nodes += self._flat_dequantize(model, inits[wname], q, groups, w.shape, block, zeros)
                done += 1
                continue
            qname, sname, zname = f"{wname}_q{bits}", f"{wname}_scale", f"{wname}_zp"
            model.graph.initializer.remove(inits[wname])
            model.graph.initializer.extend([numpy_helper.from_array(q, qname),
                                            numpy_helper.from_array(scale, sname),
                                            numpy_helper.from_array(np.zeros(len(scale), np.int8), zname)])
            new_nodes.append(helper.make_node("DequantizeLinear", [qname, sname, zname], [wname],
                                              name=f"{wname}_DequantizeLinear", axis=axis))
            done += 1
        if not done:
            raise QuantsweepError(f"{ctx.fp32_onnx}: no float weight initializers to quantize",
                                  "pass an FP32 model")
        if self.act_bits:  # from the graph with corrected biases, float weights (replaced after ORT)
            source = ctx.work_dir / f"{self.name}.bias-corrected.onnx"
            ctx.work_dir.mkdir(parents=True, exist_ok=True)
            onnx.save(model, str(source))
            int8_activations(ctx, source, keep_float, out, self.act_calibration)
            activations = place_weights(ctx, out, weights, self.act_calibration)
        else:
            activations = "float (not quantized)"
            # DequantizeLinear with per-axis scales needs opset >= 13
            for op in model.opset_import:
                if op.domain in ("", "ai.onnx") and op.version < 13:
                    op.version = 13
            nodes = new_nodes + list(model.graph.node)
            del model.graph.node[:]
            model.graph.node.extend(nodes)
            onnx.save(model, str(out))
        if self.weight_bits != 4:
            stored = "int8 initializers"
        elif flat_store:
            kind = ("UINT4" if self.zero_point else "INT4") if self.storage == "int4" else (
                "uint8" if self.zero_point else "int8")
            stored = (f"{kind} initializers{' and zero points' if self.zero_point else ''} (flattened convs, opset "
                      f"{INT4_OPSET} DequantizeLinear{f' block_size {self.group_size}' if self.group_size else ''}"
                      + (f" ({smaller} conv(s) whose columns {self.group_size} does not divide: a divisor near it, as OpenVINO needs)"
                         if smaller else "") + " + Reshape"
                      f"{'; fp16 scales' if self.scale_dtype == 'fp16' else ''})")
        else:
            stored = "int8 initializers" + (f" ({storage_note})" if storage_note else "")
        return BuildResult(out, "quantsweep graph weight-only (int weights + DequantizeLinear)" if not self.act_bits
                           else "onnxruntime quantize_static (activations) + quantsweep 4-bit weights",
                           onnx.__version__,
                           {"weights": f"int{self.weight_bits} {'asymmetric (a zero point per group)' if self.zero_point else 'symmetric'} "
                                       + (f"per group of {self.group_size} input columns"
                                          if flat_store and self.group_size else
                                          f"per group of {self.group_size} input columns as integer multipliers "
                                          f"(1..{max_mult}) of one fp scale per output channel, read as int8 by "
                                          "the int8 kernels (QServe's progressive groups)"
                                          if max_mult else "per-output-channel")
                                       + f" ({'MSE-searched' if self.weight_scale == 'mse' else 'max'} scale)",
                            "storage": stored, "group_size": self.group_size if flat_store or max_mult else 0,
                            **({"group_multiplier_max": max_mult} if max_mult else {}),
                            "activations": activations, "weights_quantized": done,
                            "weights_8bit": [{"node": n, "why": w} for n, w in eight.items()],
                            "reconstruction": ({"method": "GPTQ (act-order, blocks of 128, 1% dampening)"
                                                if self.reconstruction == "gptq" else
                                                "AdaRound (learned up/down rounding against the conv's output error "
                                                "from its input Hessian; 300 Adam steps, regulariser 0.01, beta 20->2)",
                                                "convs": reconstructed, "bias_corrected": corrected, "calibration_images": len(ctx.calib.ids),
                                                "patches_per_image": f"every one (at most {HESSIAN_PATCHES})"}
                                               if self.reconstruction != "none" else "none (round to nearest)"),
                            "calibration_method": ("input Hessians (XᵀX) from the calibration images"
                                                   if self.reconstruction != "none" else "none (weights only)")},
                           dict(keep_float))


SPECS = (
    SchemeSpec("w8a16-graph", GraphWeightOnly, "INT8 per-channel weights on the ONNX graph (no .pt needed)"),
    SchemeSpec("w4a16-graph-gptq-asym", GraphWeightOnly, "4-bit weights on the ONNX graph reconstructed by GPTQ "
               "against calibration activations, asymmetric groups (an fp16 scale and a UINT4 zero point per 64 input "
               "columns: sixteen levels on each group's own range), stored as UINT4; no .pt needed; K = the convs whose "
               "4-bit weights do the most damage per weight kept at 8 bits",
               preset={"weight_bits": 4, "weight_scale": "mse", "reconstruction": "gptq", "group_size": 64,
                       "zero_point": True},
               k_sets=True, default=True),
    SchemeSpec("w4a16-graph-gptq", GraphWeightOnly, "4-bit GPTQ weights on the ONNX graph, symmetric groups "
               "(fp16 scales per 32 input columns, INT4; no .pt needed): the option the asymmetric default is measured "
               "against; K as for w4a16-graph-gptq-asym",
               preset={"weight_bits": 4, "weight_scale": "mse", "reconstruction": "gptq", "group_size": 32},
               k_sets=True),
    SchemeSpec("w4a8-graph-gptq-percentile", GraphWeightOnly, "4-bit GPTQ weights on the ONNX graph with int8 "
               "activations placed by ONNX Runtime's quantizer, their ranges the 99.999th percentiles on the calibration "
               "images: per 32 input columns an integer multiplier of the channel's scale, so the int8 kernels still "
               "apply (stored as INT4 + UINT4, made int8 at load; no .pt needed); K = the convs whose 4-bit weights "
               "do the most damage per weight kept at 8 bits",
               preset={"weight_bits": 4, "act_bits": 8, "weight_scale": "mse", "reconstruction": "gptq", "group_size": 32,
                       "act_calibration": "percentile"},
               k_sets=True, default=True),
    SchemeSpec("w4a8-graph-gptq", GraphWeightOnly, "W4A8 as w4a8-graph-gptq-percentile with min-max activation "
               "ranges (ONNX Runtime's default): the option the percentile default is measured against",
               preset={"weight_bits": 4, "act_bits": 8, "weight_scale": "mse", "reconstruction": "gptq", "group_size": 32},
               k_sets=True),
    SchemeSpec("w4a16-graph-adaround", GraphWeightOnly, "4-bit weights on the ONNX graph with learned rounding "
               "(AdaRound from each conv's input Hessian; groups of 32, INT4): the option GPTQ is measured against",
               preset={"weight_bits": 4, "weight_scale": "mse", "reconstruction": "adaround", "group_size": 32},
               k_sets=True),
    SchemeSpec("w4a16-graph-mse", GraphWeightOnly, "4-bit MSE weights on the ONNX graph, rounded to nearest "
               "(the baseline GPTQ improves on)", preset={"weight_bits": 4, "weight_scale": "mse"}),
)
