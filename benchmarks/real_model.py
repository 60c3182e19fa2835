"""quantsweep's default search on a real COCO detector and real photos, then the peers on its run.

Takes the paths (nothing here reads a fixed location): an ONNX or Ultralytics ``.pt`` detector,
COCO val images + annotations to search and confirm on, and a calibration folder (+ optional
annotations, so ids are checked disjoint). Runs ``quantsweep run`` (the search, its defaults
except the split sizes, which must fit the images you have), prints its terminal summary, then
runs ``benchmarks/peers.py`` on the run folder (NNCF default INT8, NNCF accuracy control with the
same budget, Ultralytics' OpenVINO INT8 when a ``.pt`` is given), each scored on the same
confirmation images and timed interleaved on OpenVINO.

    python benchmarks/real_model.py --model ../shared/real/yolov5n.onnx \\
        --images ../shared/real/coco_tiny/val2017 \\
        --annotations ../shared/real/coco_tiny/annotations/instances_val2017.json \\
        --calib-dir ../shared/real/coco_tiny/train2017 \\
        --calib-annotations ../shared/real/coco_tiny/annotations/instances_train2017.json

With 80 evaluation photos quantsweep's defaults split them in halves (40 search, 40 confirm).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--annotations", type=Path, required=True)
    ap.add_argument("--calib-dir", type=Path, required=True)
    ap.add_argument("--calib-annotations", type=Path)
    ap.add_argument("--search-images", type=int, help="default: quantsweep's (100; fewer images are split in halves)")
    ap.add_argument("--confirm-images", type=int, help="default: quantsweep's (400)")
    ap.add_argument("--confirm-step", type=int, help="default: quantsweep's (100)")
    ap.add_argument("--schemes", help="default: quantsweep's default schemes")
    ap.add_argument("--budget", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=Path("runs/bench-real"))
    ap.add_argument("--peer-seconds", type=float, default=8.0)
    ap.add_argument("--no-peers", action="store_true")
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "quantsweep", "run", "--model", str(args.model), "--images", str(args.images),
           "--annotations", str(args.annotations), "--calib-dir", str(args.calib_dir), "--budget", str(args.budget),
           "--out", str(args.out), "--quiet"]
    for flag, value in (("--max-images", args.search_images), ("--confirm-images", args.confirm_images),
                        ("--confirm-step", args.confirm_step), ("--schemes", args.schemes)):
        if value is not None:
            cmd += [flag, str(value)]
    if args.calib_annotations:
        cmd += ["--calib-annotations", str(args.calib_annotations)]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    print(done.stdout)
    if done.returncode != 0:
        sys.exit(f"quantsweep run failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    print(f"quantsweep run: {time.perf_counter() - t:.0f} s wall\n")
    run_dir = done.stdout.strip().splitlines()[-1]
    if not args.no_peers:
        subprocess.run([sys.executable, str(Path(__file__).with_name("peers.py")), "--run", run_dir,
                        "--seconds", str(args.peer_seconds)], check=True)


if __name__ == "__main__":
    main()
