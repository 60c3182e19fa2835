"""Which nodes to keep float: the ranking's accuracy order against a latency-aware one, on a finished run.

The search keeps float the first K nodes of a family's sensitivity ranking (most damage removed first).
A latency-aware order ranks them by damage removed *per millisecond* the node costs when it runs float
instead of int8 on the target (:func:`quantsweep.sweep.search.latency_order`, costs from the per-node
profiles of FP32 and the family's K=0 file: :func:`~quantsweep.sweep.search.float_costs`). For each order
this builds the hedge's candidate (the fewest nodes carrying half of the measured damage,
:func:`~quantsweep.sweep.search.half_damage_k`), then scores both on the run's confirmation images
(paired bootstrap against FP32) and times them with FP32 and the K=0 file in interleaved rounds on
OpenVINO CPU. ``--peer`` adds another IR (e.g. Ultralytics' INT8 export with ``nms=False``) to the timing.

    python benchmarks/keep_float_order.py --run runs/demo/<run-id> [--family int8-ov] [--seconds 8] [--peer X.xml]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from speed_vs_peers import score_and_time  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a finished quantsweep run folder (target openvino)")
    ap.add_argument("--family", default="int8-ov", help="the K family whose ranking is reordered")
    ap.add_argument("--seconds", type=float, default=8.0, help="timed seconds per model, interleaved")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--peer", type=Path, help="another OpenVINO IR to time beside them (e.g. Ultralytics' INT8)")
    ap.add_argument("--out", type=Path, help="JSON to write (default RUN/keep_float_order.json)")
    args = ap.parse_args()

    from quantsweep.bench.profile import profile_model
    from quantsweep.bench.timing import speedup_interval, speedup_median
    from quantsweep.data.coco import read_ids_file
    from quantsweep.env import collect_env
    from quantsweep.evaluate.bootstrap import delta_interval
    from quantsweep.files import ModelFile
    from quantsweep.model.info import inspect_onnx
    from quantsweep.quantize.build import materialize
    from quantsweep.schemes import BuildContext, make_scheme
    from quantsweep.sweep.config import SweepConfig
    from quantsweep.sweep.inputs import resolve_inputs
    from quantsweep.sweep.search import float_costs, half_damage_k, latency_order

    run = args.run
    cfg = SweepConfig.resolve(yaml_path=run / "config.yaml")
    inp = resolve_inputs(cfg)
    sens = json.loads((run / "sensitivity.json").read_text())[args.family]
    fp32 = run / "candidates" / "fp32.onnx"
    k0 = ModelFile.find(run / "candidates", args.family).path
    work = Path(tempfile.mkdtemp(prefix="qs-order-"))
    prof = {n: profile_model(p, "openvino", runs=50) for n, p in (("fp32", fp32), ("k0", k0))}
    costs = float_costs(prof["fp32"]["every_node"], prof["k0"]["every_node"], [n["node"] for n in sens["ranking"]])
    orders = {"accuracy (today)": sens["ranking"], "latency-aware": latency_order(sens["ranking"], costs)}
    search_ids, confirm_ids = read_ids_file(run / "search_ids.txt"), read_ids_file(run / "confirm_ids.txt")
    hw = inspect_onnx(fp32).hw
    calib = inp.calib_set(len(read_ids_file(run / "calib_ids.txt")), hw, search_ids + confirm_ids)
    ctx = BuildContext(fp32, inp.pt, calib, work / "build")
    models: dict[str, Any] = {"fp32": str(fp32), f"{args.family} K=0": str(k0)}
    chosen: dict[str, dict[str, Any]] = {}
    for label, ranking in orders.items():
        k, share = half_damage_k({**sens, "ranking": ranking})
        if not k:
            print(f"{label}: no few nodes carry half of the damage ({share:.0%})")
            continue
        cand = materialize(make_scheme(args.family, k=k), ctx, work / label.split()[0], ranking)
        models[f"{label}, K={k}"] = str(cand.model_path)
        kept = [n["node"] for n in ranking[:k]]
        chosen[f"{label}, K={k}"] = {"k": k, "kept": kept, "damage_share": round(share, 3),
                                     "predicted_float_ms": round(sum(costs.get(n, 0.0) for n in kept), 3)}
    if args.peer:
        models[f"peer {args.peer.name}"] = str(args.peer)
    boot, maps, stats = score_and_time(models, inp.eval_ds, confirm_ids, hw, (args.bootstrap, cfg.seed, args.seconds))
    env = collect_env()
    base = next((n for n in chosen if n.startswith("accuracy")), None)
    print(f"Keep-float order on {run} ({args.family}) — OpenVINO CPU ({env['cpu']['model']}, "
          f"{env['cpu']['physical_cores']} cores); ΔmAP50-95 on the {len(confirm_ids)} confirmation images (paired "
          f"bootstrap 95 % interval, {args.bootstrap} resamples) against FP32; speed-ups as median paired ratios of "
          f"interleaved rounds (sign-test 95 % interval), {args.seconds:g} s per model, batch 1, {hw[0]}x{hw[1]}\n")
    print("| model | kept float | damage share | predicted float ms | Δ points | 95 % interval | vs FP32 | "
          "vs today's order |")
    print("|---|---|---:|---:|---:|---|---:|---:|")
    rows = []
    for n in models:
        low, high = delta_interval(boot[n], boot["fp32"])
        sp = speedup_median(stats["fp32"]["rounds_ms"], stats[n]["rounds_ms"])
        vs = (speedup_median(stats[base]["rounds_ms"], stats[n]["rounds_ms"]), speedup_interval(
            stats[base]["rounds_ms"], stats[n]["rounds_ms"])) if base else (None, None)
        c = chosen.get(n, {})
        rows.append({"model": n, **c, "map50_95": round(maps[n], 4), "delta_points": round(100 * (maps[n] - maps["fp32"]), 2),
                     "low_points": round(100 * low, 2), "high_points": round(100 * high, 2), "speedup": sp,
                     "vs_today": vs[0], "vs_today_interval": vs[1], "p50_ms": stats[n]["latency_p50_ms"]})
        print(f"| {n} | {', '.join(c.get('kept', [])) or '—'} | {c.get('damage_share', '')} | "
              f"{c.get('predicted_float_ms', '')} | {100 * (maps[n] - maps['fp32']):+.2f} | "
              f"[{100 * low:+.2f}, {100 * high:+.2f}] | {sp:.3f}× | "
              f"{'' if vs[0] is None else f'{vs[0]:.3f}× {vs[1]}'} |")
    out = args.out or run / "keep_float_order.json"
    out.write_text(json.dumps({"rows": rows, "costs_ms": costs, "env": env}, indent=1))
    print(f"\n{out}")


if __name__ == "__main__":
    main()
