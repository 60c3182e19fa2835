"""How evaluation and calibration cost grow with the number of images (time and peak memory).

Each measurement runs in a fresh subprocess so its peak RSS is its own. Expect linear time with a
small constant and flat memory (images are streamed, never all held at once).

    python benchmarks/scaling.py --quick        # eval 50/100/200, calib 16/64
    python benchmarks/scaling.py                # eval 50/100/200/500, calib 16/64/256/500
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

EVAL = """
import json, resource, sys, time
from pathlib import Path
from quantsweep.data.coco import load_dataset, select_ids
from quantsweep.evaluate.run import EvalSettings, evaluate
d = Path(sys.argv[1]); n = int(sys.argv[2])
ds = load_dataset(d / "val" / "images", d / "val" / "annotations.json")
t = time.perf_counter()
m = evaluate(d / "model.onnx", ds, select_ids(ds, n), EvalSettings(provider="cpu"))
print(json.dumps({"wall_s": time.perf_counter() - t, "inference_s": m["run"]["inference_s"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CALIB = """
import json, resource, sys, time
from pathlib import Path
from quantsweep.data.calibration import CalibSet
from quantsweep.data.coco import load_dataset
from quantsweep.quantize.build import materialize
from quantsweep.schemes import BuildContext, make_scheme
d = Path(sys.argv[1]); n = int(sys.argv[2])
cal = CalibSet.from_dataset(load_dataset(d / "calib" / "images", d / "calib" / "annotations.json"), n, (320, 320))
t = time.perf_counter()
materialize(make_scheme("int8-qdq"), BuildContext(d / "model.onnx", None, cal, d / f"w{n}"), d / f"c{n}")
print(json.dumps({"wall_s": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _measure(code: str, d: Path, n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", code, str(d), str(n)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-scaling.json"))
    args = ap.parse_args()
    evals = (50, 100, 200) if args.quick else (50, 100, 200, 500)
    calibs = (16, 64) if args.quick else (16, 64, 256, 500)

    from quantsweep.demo import materialize
    from quantsweep.demo.synth import write_split

    d = Path(tempfile.mkdtemp(prefix="qs-scaling-"))
    materialize(d, splits=())
    write_split(d / "val", "val", max(evals))
    write_split(d / "calib", "calib", max(calibs))
    res = {"eval": {n: _measure(EVAL, d, n) for n in evals}, "calib": {n: _measure(CALIB, d, n) for n in calibs}}
    print("Evaluation of the demo FP32 model on ORT CPU (fresh process per row):\n")
    print("| images | wall s | ms/image | inference s | peak RSS MB |\n|---:|---:|---:|---:|---:|")
    for n, r in res["eval"].items():
        print(f"| {n} | {r['wall_s']:.2f} | {1000 * r['wall_s'] / n:.1f} | {r['inference_s']:.2f} | {r['peak_rss_mb']:.0f} |")
    print("\nINT8 candidate build (ORT calibration + quantization) against calibration size:\n")
    print("| calib images | wall s | s/image | peak RSS MB |\n|---:|---:|---:|---:|")
    for n, r in res["calib"].items():
        print(f"| {n} | {r['wall_s']:.2f} | {r['wall_s'] / n:.3f} | {r['peak_rss_mb']:.0f} |")
    ns = list(res["eval"])
    slope = (res["eval"][ns[-1]]["wall_s"] - res["eval"][ns[0]]["wall_s"]) / (ns[-1] - ns[0])
    print(f"\nevaluation slope: {1000 * slope:.1f} ms per extra image; "
          f"memory growth {res['eval'][ns[-1]]['peak_rss_mb'] - res['eval'][ns[0]]['peak_rss_mb']:+.0f} MB "
          f"from {ns[0]} to {ns[-1]} images")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2))
    print(args.out)


if __name__ == "__main__":
    main()
