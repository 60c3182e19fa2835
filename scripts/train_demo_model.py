"""Train an embedded demo detector (YOLOv10n or YOLO26n architecture) on the synthetic demo world.

The exact recipes behind ``src/quantsweep/demo/assets/demo_yolov10n.pt`` and ``demo_yolo26n.pt``:

    python scripts/train_demo_model.py --work /tmp/qs-train --epochs 30
    python scripts/train_demo_model.py --arch yolo26n --work /tmp/qs-train26 --epochs 30

It writes the train/val splits with :mod:`quantsweep.demo.synth` (seed 0), trains from scratch
(no pretrained weights: nothing is downloaded) and copies the final checkpoint into the package.
Reproducible up to CPU floating-point scheduling (seed 0, ``deterministic=True``).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from quantsweep.demo.synth import CLASSES, write_split
from quantsweep.offline import import_ultralytics

ASSETS = Path(__file__).resolve().parents[1] / "src/quantsweep/demo/assets"
ARCHS = ("yolov10n", "yolo26n")  # Ultralytics model yamls (scale n), built from scratch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", choices=ARCHS, default="yolov10n", help="architecture (default %(default)s)")
    ap.add_argument("--work", type=Path, required=True, help="scratch folder for data and runs")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--train-images", type=int, default=640)
    ap.add_argument("--no-copy", action="store_true", help="do not overwrite the packaged asset")
    args = ap.parse_args()

    data = args.work / "data"
    write_split(data / "train", "train", args.train_images, yolo_labels=True)
    write_split(data / "val", "val", yolo_labels=True)
    yaml_path = args.work / "demo.yaml"
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASSES))
    yaml_path.write_text(f"path: {data}\ntrain: train/images\nval: val/images\nnames:\n{names}\n")

    ultralytics = import_ultralytics()
    model = ultralytics.YOLO(f"{args.arch}.yaml")  # architecture only: random init, no download
    t0 = time.time()
    model.train(data=str(yaml_path), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                device="cpu", workers=2, amp=False, plots=False, val=False, seed=0,
                deterministic=True, cache="ram", optimizer="AdamW", lr0=0.002, project=str(args.work / "runs"), name="demo",
                exist_ok=True, pretrained=False, verbose=True)
    print(f"training wall time: {time.time() - t0:.0f} s")
    best = args.work / "runs/demo/weights/last.pt"
    if not args.no_copy:
        asset = ASSETS / f"demo_{args.arch}.pt"
        asset.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, asset)
        print(f"wrote {asset} ({asset.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
