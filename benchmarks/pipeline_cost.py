"""Wall time and memory per stage of a sweep, evaluation efficiency and sensitivity cost.

    python benchmarks/pipeline_cost.py            # runs `quantsweep run` on the demo, then reports
    python benchmarks/pipeline_cost.py --quick    # a reduced sweep (schemes int8,w8a16; K 0,5; 50 images)
    python benchmarks/pipeline_cost.py --run DIR  # report on an existing run folder

Prints a Markdown table and writes DIR/pipeline_cost.json. Numbers come from the run's manifest
(seconds and peak RSS recorded by the runner after each step) and its metrics JSON files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def report(run_dir: Path) -> dict:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    steps = manifest["steps"]
    rows = [(name, s.get("seconds", 0.0), s.get("peak_rss_mb_so_far"), s["state"]) for name, s in steps.items()]
    total = sum(r[1] for r in rows)
    evals = {}
    for m in (run_dir / "results").glob("*.metrics.json"):
        run = json.loads(m.read_text())["run"]
        evals[m.name.removesuffix(".metrics.json")] = run
    fp32 = evals.get("fp32", {})
    sens = {n: s["seconds"] for n, s in steps.items() if n.startswith("sensitivity:")}
    fp32_eval_s = steps.get("eval:fp32", {}).get("seconds")
    out = {
        "run": str(run_dir), "total_s": round(total, 1), "stages": [
            {"step": n, "seconds": s, "peak_rss_mb_so_far": m, "state": st} for n, s, m, st in rows],
        "evaluation_efficiency": {n: round(e["wall_s"] / e["inference_s"], 3) for n, e in evals.items()
                                  if e.get("inference_s")},
        "sensitivity_cost_in_fp32_eval_passes": {n: round(s / fp32_eval_s, 2) for n, s in sens.items()}
        if fp32_eval_s else {},
        "fp32_eval": fp32,
    }
    print(f"Stage timings of {run_dir} (seconds of wall time on this machine; peak RSS of the process so far)\n")
    print("| step | seconds | peak RSS MB | state |\n|---|---:|---:|---|")
    for n, s, m, st in rows:
        print(f"| {n} | {s:.1f} | {m if m is not None else ''} | {st} |")
    print(f"| **total** | **{total:.1f}** | | |\n")
    eff = out["evaluation_efficiency"]
    if eff:
        print("Evaluation efficiency = evaluation wall / pure inference wall over the same images (target ≤ 1.15):")
        print("| candidate | efficiency ↓ |\n|---|---:|")
        for n, v in sorted(eff.items()):
            print(f"| {n} | {v:.3f} |")
    if out["sensitivity_cost_in_fp32_eval_passes"]:
        print("\nSensitivity cost in units of one FP32 evaluation pass of the subset (target ≤ 2):")
        for n, v in out["sensitivity_cost_in_fp32_eval_passes"].items():
            print(f"- {n}: {v}")
    (run_dir / "pipeline_cost.json").write_text(json.dumps(out, indent=2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="existing run folder")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-pipeline"))
    args = ap.parse_args()
    if args.run is None:
        from quantsweep.sweep.config import SweepConfig
        from quantsweep.sweep.runner import run_sweep

        extra = dict(schemes=("int8-qdq", "w8a16"), ks=(0, 5), max_images=50, bench_seconds=1.0) if args.quick else {}
        t = time.perf_counter()
        res = run_sweep(SweepConfig(out=args.out, **extra))
        print(f"sweep wall time: {time.perf_counter() - t:.0f} s", file=sys.stderr)
        args.run = res.run_dir
    report(args.run)


if __name__ == "__main__":
    main()
