"""How good is each conv's 4-bit rounding, layer by layer? The output error GPTQ minimises, per method.

For every ungrouped 2-D Conv of a detector, with the default W4A16 scales (MSE-searched, fp16, one per
32 input columns), prints the relative output error ``‖(Wq − W) X‖² / ‖W X‖²`` over the calibration
patches (``XᵀX`` from :func:`quantsweep.schemes.gptq.conv_hessians`) for:

- ``rtn``: round to nearest;
- ``gptq``: quantsweep's default reconstruction;
- ``adaround``: learned up/down rounding from the same ``XᵀX`` (300 and 2000 steps);
- ``gptq+cd``: GPTQ's integers refined by cyclic coordinate descent on the same quadratic
  (each weight moved to the integer that minimises the error given the others; QuantEase-style);
- ``gptq+refit``: the group scales refitted by least squares in the ``XᵀX`` metric for GPTQ's
  integers, then GPTQ again with them.

A method that lowers the layer error a lot is worth building into the scheme; one that does not,
is not (the damage left is then across layers, not within them).

``--grids sym:32,asym:32,asym:64,...`` prints instead GPTQ's error per quantization grid: symmetric
(fifteen levels, −7…7, one fp16 scale per group) or asymmetric (sixteen levels on the group's own
range: an fp16 scale and a UINT4 zero point per group), per group size (0: per output channel).

    python benchmarks/layer_loss.py --model ../shared/real/yolov5n.onnx \\
        --calib-dir ../shared/real/coco_tiny/train2017 --calib-count 64 --convs 30
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def coordinate_descent(w: np.ndarray, xtx: np.ndarray, scale: np.ndarray, q0: np.ndarray, qmax: int,
                       sweeps: int = 4) -> np.ndarray:
    """Cyclic coordinate descent on ``tr((S∘Q − W) H (S∘Q − W)ᵀ)`` over integers in [-qmax, qmax] from ``q0``."""
    from quantsweep.schemes.gptq import damped_hessian

    w, h = damped_hessian(w, xtx, 0.0)
    s = np.broadcast_to(scale.astype(np.float64).reshape(len(w), -1), w.shape)
    q = q0.astype(np.float64).copy()
    hd = (s * q - w) @ h
    diag = np.diag(h)
    for _ in range(sweeps):
        moved = 0
        for j in range(w.shape[1]):
            new = np.clip(q[:, j] + np.round(-hd[:, j] / (s[:, j] * diag[j])), -qmax, qmax)
            step = new - q[:, j]
            if not step.any():
                continue
            moved += int(np.count_nonzero(step))
            q[:, j] = new
            hd += np.outer(s[:, j] * step, h[j])
        if not moved:
            break
    return q


def refit_scales(w: np.ndarray, xtx: np.ndarray, q: np.ndarray, block: int) -> np.ndarray:
    """Least-squares group scales (fp16 values) for the integers ``q`` in the ``XᵀX`` metric: [out, cols]."""
    from quantsweep.schemes.gptq import damped_hessian

    w, h = damped_hessian(w, xtx, 0.0)
    cols = w.shape[1]
    width = block or cols
    groups = cols // width
    hw = w @ h
    scales = np.zeros((len(w), groups))
    for i in range(len(w)):
        qi = np.zeros((groups, cols))
        for g in range(groups):
            qi[g, g * width:(g + 1) * width] = q[i, g * width:(g + 1) * width]
        # least squares: a row whose integers are all zero has no defined scale (lstsq, not solve)
        scales[i] = np.linalg.lstsq(qi @ h @ qi.T, qi @ hw[i], rcond=None)[0]
    scales = np.maximum(np.abs(scales), 1e-8).astype(np.float16).astype(np.float64)
    return np.repeat(scales, width, axis=1)


def relative_error(d: np.ndarray, w: np.ndarray, h: np.ndarray) -> float:
    """``tr(d H dᵀ) / tr(w H wᵀ)``: the output error of the weight error ``d`` relative to the output."""
    return float(np.einsum("ij,jk,ik->", d, h, d)) / max(float(np.einsum("ij,jk,ik->", w, h, w)), 1e-12)


def conv_problems(convs: list, inits: dict, hessians: dict) -> Iterator[tuple[Any, ...]]:
    """Per conv with a Hessian: (node, weight, weight [out, cols] in float64, XᵀX, undamped weight and XᵀX)."""
    from onnx import numpy_helper

    from quantsweep.schemes.gptq import damped_hessian

    for n in convs:
        if n.name not in hessians:
            continue
        w = numpy_helper.to_array(inits[n.input[1]])
        w2 = w.reshape(len(w), -1).astype(np.float64)
        xtx = hessians[n.name][0]
        yield (n, w, w2, xtx, *damped_hessian(w2, xtx, 0.0))


def compare_grids(convs: list, inits: dict, hessians: dict, grids: list[str], where: str) -> None:
    """GPTQ's relative output error per conv on each grid ``kind:group`` (kind: sym or asym)."""
    from quantsweep.schemes.gptq import gptq_quantize
    from quantsweep.schemes.weight_grids import block_for, quantize_groups, quantize_groups_asym

    total = dict.fromkeys(grids, 0.0)
    bits = dict.fromkeys(grids, 0.0)
    elements = 0
    print(f"relative output error per conv after GPTQ, 4-bit weights, per grid (fp16 MSE scales); {where}\n")
    print("| conv | weight | " + " | ".join(grids) + " |")
    print("|---|---|" + "---:|" * len(grids))
    for n, w, w2, xtx, wd, h in conv_problems(convs, inits, hessians):
        elements += w2.size
        row = {}
        for grid in grids:
            kind, group = grid.split(":")
            block = block_for(w2.shape[1], int(group))
            width = block or w2.shape[1]
            if kind == "asym":
                _, scales, zeros = quantize_groups_asym(w2, block, True, fp16_scales=True)
                low = -np.repeat(zeros.astype(np.float64), width, axis=1)
            else:
                _, scales = quantize_groups(w2, 4, block, True, fp16_scales=True)
                low = None
            full = np.repeat(scales.astype(np.float64), width, axis=1)
            q = gptq_quantize(w2, xtx, full, 7, low=low).astype(np.float64)
            row[grid] = relative_error(q * full - wd, wd, h)
            total[grid] += row[grid]
            bits[grid] += scales.size * (20 if kind == "asym" else 16)  # fp16 scale (+ UINT4 zero point)
        print(f"| {n.name} | {'×'.join(map(str, w.shape))} | " + " | ".join(f"{row[g]:.4f}" for g in grids) + " |")
    print(f"| **sum** | {len(convs)} convs | " + " | ".join(f"**{total[g]:.3f}**" for g in grids) + " |")
    print("| bits per weight beyond the 4 | | " + " | ".join(f"{bits[g] / max(elements, 1):.3f}" for g in grids) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="FP32 .onnx")
    ap.add_argument("--calib-dir", type=Path, required=True)
    ap.add_argument("--calib-count", type=int, default=64)
    ap.add_argument("--convs", type=int, default=0, help="the first N convs only (0: all)")
    ap.add_argument("--group", type=int, default=32)
    ap.add_argument("--grids", help="compare GPTQ on grids instead of methods, e.g. sym:32,asym:32,asym:64,asym:128")
    args = ap.parse_args()

    import onnx

    from quantsweep.data.calibration import CalibSet
    from quantsweep.model.info import inspect_onnx
    from quantsweep.schemes.adaround import adaround_quantize
    from quantsweep.schemes.gptq import conv_hessians, gptq_quantize
    from quantsweep.schemes.weight_grids import HESSIAN_PATCHES, block_for, quantize_groups

    calib = CalibSet.from_folder(args.calib_dir, args.calib_count, inspect_onnx(args.model).hw, [], None)
    model = onnx.load(str(args.model))
    inits = {i.name: i for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in inits
             and not any(a.name == "group" and a.i > 1 for a in n.attribute)][: args.convs or None]
    hessians = conv_hessians(args.model, [n.name for n in convs], calib.array(), positions=HESSIAN_PATCHES)
    if args.grids:
        compare_grids(convs, inits, hessians, args.grids.split(","), f"{len(calib.ids)} calibration images of {args.calib_dir}")
        return
    methods = ["rtn", "gptq", "adaround300", "adaround2000", "gptq+cd", "gptq+refit"]
    total = dict.fromkeys(methods, 0.0)
    seconds = dict.fromkeys(methods, 0.0)
    print(f"relative output error per conv, 4-bit weights, groups of {args.group} (fp16 MSE scales); "
          f"{len(calib.ids)} calibration images of {args.calib_dir}\n")
    print("| conv | weight | " + " | ".join(methods) + " |")
    print("|---|---|" + "---:|" * len(methods))
    for n, w, w2, xtx, wd, h in conv_problems(convs, inits, hessians):
        block = block_for(w2.shape[1], args.group)
        _, groups = quantize_groups(w2, 4, block, True, fp16_scales=True)
        full = np.broadcast_to(np.repeat(groups, block, axis=1) if block else groups[:, :1], w2.shape)
        row: dict[str, float] = {}
        t = time.perf_counter()
        q_gptq = gptq_quantize(w2, xtx, full, 7).astype(np.float64)
        gptq_s = time.perf_counter() - t  # the methods that start from GPTQ's integers pay for them too
        for name in methods:
            t = time.perf_counter()
            scale = full
            if name == "rtn":
                q = np.clip(np.round(w2 / full), -7, 7)
            elif name == "gptq":
                q = q_gptq
            elif name.startswith("adaround"):
                q = adaround_quantize(w2, xtx, full, 7, iters=int(name[8:])).astype(np.float64)
            elif name == "gptq+cd":
                q = coordinate_descent(w2, xtx, full, q_gptq, 7)
            else:
                scale = refit_scales(w2, xtx, q_gptq, block)
                q = gptq_quantize(w2, xtx, scale, 7).astype(np.float64)
            seconds[name] += time.perf_counter() - t + (gptq_s if name.startswith("gptq") else 0.0)
            row[name] = relative_error(q * scale - wd, wd, h)
            total[name] += row[name]
        print(f"| {n.name} | {'×'.join(map(str, w.shape))} | " + " | ".join(f"{row[m]:.4f}" for m in methods) + " |")
    print(f"| **sum** | {len(convs)} convs | " + " | ".join(f"**{total[m]:.3f}**" for m in methods) + " |")
    print("| seconds | | " + " | ".join(f"{seconds[m]:.1f}" for m in methods) + " |")


if __name__ == "__main__":
    main()
