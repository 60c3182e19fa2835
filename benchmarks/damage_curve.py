"""Damage against file size for 4-bit candidates: a low-noise way to compare 4-bit formats.

mAP on a few dozen photos moves by ±1.5 points between 4-bit files that differ little; the head
tensors do not. For each K=0 4-bit candidate given (ONNX files built from the same FP32 model, e.g.
by ``benchmarks/four_bit.py``), this measures with quantsweep's gated probe (weights restored, the
sensitivity ranking's instrument) the relative squared error of the pre-decode head tensors against
FP32 on images given by path (no labels needed), then the damage left after restoring the convs
with the most damage per weight element until a byte budget of 8-bit weights is spent (half a byte
per weight: what keeping a conv at 8 bits adds). Prints one row per candidate: its size and the
damage at +0, +25, +50, +100, +150, +200 kB.

    python benchmarks/damage_curve.py --model ../shared/real/yolov5n.onnx \\
        --images ../shared/real/coco_tiny/val2017 --count 16 \\
        --candidates /tmp/qs-4bit-*/candidates-g*/w4a16-*.onnx
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="the FP32 ONNX the candidates were built from")
    ap.add_argument("--images", type=Path, required=True, help="a folder of photos (labels not needed)")
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--candidates", type=Path, nargs="+", required=True, help="K=0 4-bit ONNX files")
    ap.add_argument("--budgets-kb", default="0,25,50,100,150,200")
    args = ap.parse_args()

    from quantsweep.data.calibration import CalibSet
    from quantsweep.model.info import inspect_onnx
    from quantsweep.quantize.sensitivity import GatedProbe

    images = CalibSet.from_folder(args.images, args.count, inspect_onnx(args.model).hw, [], None).array()
    budgets = [1e3 * float(b) for b in args.budgets_kb.split(",")]
    print(f"head-tensor damage (relative squared error vs FP32) on {len(images)} photos of {args.images}; "
          "convs restored by damage per weight element within +N kB of 8-bit weights (K restored)\n")
    print("| candidate | size (MB) | " + " | ".join(f"+{b / 1e3:.0f} kB" for b in budgets) + " |")
    print("|---|---:|" + "---|" * len(budgets))
    for path in args.candidates:
        probe = GatedProbe(args.model, path, images, weights_only=True)
        full = probe.damage()
        single = {n: full - probe.damage({n}) for n in probe.nodes}
        elements = probe.weight_elements
        order = sorted(single, key=lambda n: -single[n] / max(elements.get(n, 0), 1))
        cells = []
        for budget in budgets:
            chosen: list[str] = []
            spent = 0.0
            for n in order:
                cost = 0.5 * elements.get(n, 0)
                if spent + cost > budget:
                    break
                chosen.append(n)
                spent += cost
            cells.append(f"{probe.damage(set(chosen)) if chosen else full:.4f} (K={len(chosen)})")
        print(f"| {path.parent.name}/{path.name} | {os.path.getsize(path) / 1e6:.3f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
