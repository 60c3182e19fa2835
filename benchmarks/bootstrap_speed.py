"""Resamples per second of the paired bootstrap, and its agreement with COCOeval on the same resamples.

Scores FP32 and ONNX Runtime's INT8 of the demo detector on ``--images`` demo val images (cached
detections under ``--cache``), then times :func:`quantsweep.evaluate.bootstrap.bootstrap_map` for
the pair at ``--resamples`` resamples, and checks ``--check`` of those resamples against
faster-coco-eval's COCOeval on ground truth in which each drawn image appears as often as drawn
(the definition of a resample), with the images listed in id order.

    python benchmarks/bootstrap_speed.py                      # 500 images, 2 models, 2000 resamples
    python benchmarks/bootstrap_speed.py --images 100 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions (the spread is printed)")
    ap.add_argument("--check", type=int, default=5, help="resamples checked against duplicated-image COCOeval")
    ap.add_argument("--cache", type=Path, default=Path("runs/bench-bootstrap"))
    args = ap.parse_args()

    from quantsweep.data.calibration import CalibSet
    from quantsweep.data.coco import load_dataset
    from quantsweep.demo import DEMO_IMGSZ, materialize
    from quantsweep.evaluate.bootstrap import bootstrap_map, resample_weights
    from quantsweep.evaluate.metrics import coco_map
    from quantsweep.evaluate.run import EvalSettings, evaluate
    from quantsweep.quantize.build import materialize as build
    from quantsweep.schemes import BuildContext, make_scheme

    world = materialize(args.cache / "demo", splits=("val", "calib"))
    ds = load_dataset(world["val/images"], world["val/annotations.json"])
    ids = sorted(ds.images)[: args.images]
    fp32 = world["model.onnx"]
    int8 = args.cache / "int8" / "int8-qdq.onnx"
    if not int8.is_file():
        calib = CalibSet.from_folder(world["calib/images"], 64, (DEMO_IMGSZ, DEMO_IMGSZ), ids, ds)
        build(make_scheme("int8-qdq", onnx_only=True), BuildContext(fp32, None, calib, args.cache / "work"), int8.parent)
    dets = {}
    for name, model in (("fp32", fp32), ("int8", int8)):
        out = args.cache / f"{name}-{len(ids)}.metrics.json"
        if not out.is_file():
            evaluate(model, ds, ids, EvalSettings(provider="cpu"), out)
        dets[name] = json.loads(Path(json.loads(out.read_text())["detections_file"]).read_text())
    walls = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        boot = bootstrap_map(ds.coco, dets, ids, args.resamples, 0)["map50_95"]
        walls.append(time.perf_counter() - t)
    med = statistics.median(walls)
    print(f"paired bootstrap, {len(ids)} demo val images, 2 models ({sum(map(len, dets.values()))} detections), "
          f"{args.resamples} resamples, {args.repeat} runs in one process:")
    print(f"| wall per pair (s) median [min, max] | resamples/s (pair) | model-resamples/s |\n|---:|---:|---:|\n"
          f"| {med:.3f} [{min(walls):.3f}, {max(walls):.3f}] | {args.resamples / med:,.0f} | "
          f"{2 * args.resamples / med:,.0f} |")
    w = resample_weights(len(ids), args.resamples, 0)
    worst = 0.0
    images = {im["id"]: im for im in ds.coco["images"]}
    for r in range(min(args.check, args.resamples)):
        sample = [i for i, n in zip(ids, w[r]) for _ in range(int(n))]
        gt = {**ds.coco, "images": [], "annotations": []}
        for new, old in enumerate(sample, start=10_000_000):
            gt["images"].append({**images[old], "id": new})
        by_img: dict[int, list] = {}
        for a in ds.coco["annotations"]:
            by_img.setdefault(a["image_id"], []).append(a)
        for new, old in enumerate(sample, start=10_000_000):
            gt["annotations"] += [{**a, "id": len(gt["annotations"]) + k + 1, "image_id": new}
                                  for k, a in enumerate(by_img.get(old, []))]
        for name in dets:
            per = {}
            for d in dets[name]:
                per.setdefault(d["image_id"], []).append(d)
            dup = [{**d, "image_id": new} for new, old in enumerate(sample, start=10_000_000) for d in per.get(old, [])]
            truth = coco_map(gt, dup, list(range(10_000_000, 10_000_000 + len(sample))))["map50_95"] or 0.0
            worst = max(worst, abs(truth - boot[name][r]))
    print(f"agreement with duplicated-image COCOeval on {min(args.check, args.resamples)} resamples x 2 models: "
          f"max |difference| {worst:.2e} (COCOeval's mAP is rounded to 6 digits)")


if __name__ == "__main__":
    main()
