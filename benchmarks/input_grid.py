"""The input quantizer on the pixel grid against the calibrated one: the same build, paired images.

Reads a finished ``quantsweep run`` folder whose ``int8-ov`` file has its input quantizer on the pixel
grid (the default since 2026-12-07), rebuilds the same scheme with ``input_grid="calibrated"`` on the
run's calibration images, and scores FP32, both files on the run's search and confirmation images
with OpenVINO: ΔmAP50-95 against FP32 and pixel − calibrated, each with a paired bootstrap interval.

    python benchmarks/input_grid.py --run runs/demo/<run-id> [--candidate int8-ov]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from speed_vs_peers import score_and_time  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a finished quantsweep run folder")
    ap.add_argument("--candidate", default="int8-ov", help="an int8-ov or int8-qdq candidate of the run")
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()

    import openvino as ov

    from quantsweep.data.coco import read_ids_file
    from quantsweep.evaluate.bootstrap import delta_interval
    from quantsweep.files import ModelFile
    from quantsweep.model.info import inspect_onnx
    from quantsweep.quantize.build import materialize
    from quantsweep.schemes import BuildContext, scheme_from_dict
    from quantsweep.sweep.config import SweepConfig
    from quantsweep.sweep.inputs import resolve_inputs

    run = args.run
    cfg = SweepConfig.resolve(yaml_path=run / "config.yaml")
    inp = resolve_inputs(cfg)
    ids = read_ids_file(run / "search_ids.txt") + read_ids_file(run / "confirm_ids.txt")
    calib_ids = read_ids_file(run / "calib_ids.txt")
    fp32 = run / "candidates" / "fp32.onnx"
    hw = inspect_onnx(fp32).hw
    record = json.loads((run / "candidates" / f"{args.candidate}.scheme.json").read_text())
    scheme = scheme_from_dict(record["scheme"])
    if getattr(scheme, "input_grid", None) != "pixels" or "pixel grid" not in record["settings"].get("input_quantizer", ""):
        sys.exit(f"{args.candidate}: its input quantizer is not on the pixel grid "
                 f"({record['settings'].get('input_quantizer', 'no record')}); run a quantsweep that builds it so")
    ctx = BuildContext(fp32, None, inp.calib_set(len(calib_ids), hw, ids), Path(tempfile.mkdtemp(prefix="qs-grid-")))
    calibrated = materialize(dataclasses.replace(scheme, input_grid="calibrated", k=0), ctx, ctx.work_dir / "c")
    models = {"fp32": ov.convert_model(str(fp32)),
              "calibrated": str(calibrated.model_path),
              "pixel grid": str(ModelFile.find(run / "candidates", args.candidate).path)}
    boot, maps, _ = score_and_time(models, inp.eval_ds, ids, hw, (args.bootstrap, cfg.seed, 0.2))
    print(f"{args.candidate} on {run}, OpenVINO CPU, {len(ids)} images (search + confirmation), {hw[0]}x{hw[1]}; "
          f"paired bootstrap 95 % intervals, {args.bootstrap} resamples\n")
    print(f"calibrated input quantizer: {calibrated.record['settings']['input_quantizer']}; pixel grid: "
          f"{record['settings']['input_quantizer']}\n")
    print("| input quantizer | mAP50-95 | Δ vs FP32, points | 95 % interval |\n|---|---:|---:|---|")
    for name in ("calibrated", "pixel grid"):
        low, high = delta_interval(boot[name], boot["fp32"])
        print(f"| {name} | {maps[name]:.4f} | {100 * (maps[name] - maps['fp32']):+.2f} | "
              f"[{100 * low:+.2f}, {100 * high:+.2f}] |")
    low, high = delta_interval(boot["pixel grid"], boot["calibrated"])
    print(f"\npixel grid − calibrated: {100 * (maps['pixel grid'] - maps['calibrated']):+.2f} points "
          f"[{100 * low:+.2f}, {100 * high:+.2f}]")


if __name__ == "__main__":
    main()
