"""Four-bit weights by method, on a detector and COCO-format images given by path.

For each scheme named (default: round-to-nearest with MSE scales and GPTQ, on the ONNX graph),
builds the candidate from the FP32 ONNX (or the .pt's export) with the calibration images, scores
it and FP32 on the same evaluation images (ONNX Runtime CPU, or ``--provider openvino``) and prints
ΔmAP50-95 with a paired bootstrap interval, the build time and the size; writes JSON. A candidate
that loses more than ``--collapse`` points is marked collapsed.

    python benchmarks/four_bit.py --model ../shared/real/yolov5n.onnx \\
        --images ../shared/real/coco_tiny/val2017 \\
        --annotations ../shared/real/coco_tiny/annotations/instances_val2017.json \\
        --calib-dir ../shared/real/coco_tiny/train2017 --calib-count 64

    python benchmarks/four_bit.py --demo DIR   # the demo world written by `quantsweep demo --out DIR`
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help=".onnx or Ultralytics .pt")
    ap.add_argument("--images", type=Path)
    ap.add_argument("--annotations", type=Path)
    ap.add_argument("--calib-dir", type=Path)
    ap.add_argument("--demo", type=Path, help="a folder written by `quantsweep demo` (model, val, calib)")
    ap.add_argument("--calib-count", type=int, default=64)
    ap.add_argument("--max-images", type=int, default=100)
    ap.add_argument("--schemes", default="int8-qdq,w4a16-graph-mse,w4a16-graph-gptq,w4a8-graph-gptq",
                    help="comma-separated; the first INT8 one is the size reference; NAME@FIELD=VALUE sets a field "
                    "of the scheme, e.g. w4a8-graph-gptq@act_calibration=percentile")
    ap.add_argument("--groups", default="0", help="for 4-bit weight-only schemes: input-column group sizes, "
                    "e.g. 0,32,64,128 (0: one scale per output channel)")
    ap.add_argument("--ks", default="0", help="for K-capable 4-bit schemes: convs kept at 8 bits by sensitivity, "
                    "e.g. 0,4,8 (the ranking is measured on the K=0 candidate)")
    ap.add_argument("--sens-images", type=int, default=8, help="calibration images the sensitivity probes run on "
                    "(quantsweep's default: 8)")
    ap.add_argument("--orders", default="density", help="for 4-bit K>0: the ranking orders to compare, comma-separated: "
                    "density (damage removed per weight element: quantsweep's order for 4-bit) and/or damage")
    ap.add_argument("--provider", default="cpu")
    ap.add_argument("--collapse", type=float, default=10.0, help="points lost that mark a collapse")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-four-bit.json"))
    args = ap.parse_args()

    from quantsweep.data.calibration import CalibSet
    from quantsweep.data.coco import load_dataset
    from quantsweep.evaluate.bootstrap import bootstrap_map, delta_interval
    from quantsweep.evaluate.run import EvalSettings, evaluate
    from quantsweep.model.export import export_onnx
    from quantsweep.model.info import inspect_onnx
    from quantsweep.quantize.build import materialize
    from quantsweep.quantize.ranking import compute_sensitivity
    from quantsweep.schemes import K_SCHEMES, BuildContext, make_scheme

    if args.demo:  # the demo's own ONNX export (320x320) and its checkpoint for the PyTorch schemes
        model, images, ann = args.demo / "model.onnx", args.demo / "val" / "images", args.demo / "val" / "annotations.json"
        calib_dir, pt = args.demo / "calib" / "images", args.demo / "model.pt"
    else:
        model, images, ann, calib_dir = args.model, args.images, args.annotations, args.calib_dir
        pt = model if model.suffix == ".pt" else None
    work = Path(tempfile.mkdtemp(prefix="qs-4bit-"))
    fp32 = export_onnx(model, work / "fp32.onnx") if model.suffix == ".pt" else model
    hw = inspect_onnx(fp32).hw
    ds = load_dataset(images, ann)
    ids = sorted(ds.images)[: args.max_images]
    calib = CalibSet.from_folder(calib_dir, args.calib_count, hw, ids, ds)
    settings = EvalSettings(provider=args.provider)
    base = evaluate(fp32, ds, ids, settings, work / "fp32.metrics.json")
    base_dets = json.loads(Path(base["detections_file"]).read_text())
    rows = [{"scheme": "fp32", "map50_95": base["map50_95"], "delta": 0.0}]
    ks = [int(k) for k in args.ks.split(",")]
    groups = [int(g) for g in args.groups.split(",")]

    def mk(entry: str, **fields: Any) -> Any:
        """The scheme ``entry`` names: ``NAME`` or ``NAME@FIELD=VALUE@...`` (integers read as such)."""
        name, *sets = entry.split("@")
        for kv in sets:
            key, value = kv.split("=", 1)
            fields[key] = int(value) if value.lstrip("-").isdigit() else value
        return make_scheme(name, onnx_only=pt is None, **fields)

    def grouped(name: str) -> bool:
        s = mk(name)
        return getattr(s, "weight_bits", 8) == 4 and hasattr(s, "group_size")

    def four_bit(name: str) -> bool:  # the ranking orders compared are a 4-bit family's
        return getattr(mk(name), "weight_bits", 8) == 4

    orders = args.orders.split(",")
    jobs = [(name, k, g, order) for name in args.schemes.split(",") for k in (ks if name.split("@")[0] in K_SCHEMES else [0])
            for g in (groups if grouped(name) else [0]) for order in (orders if k and four_bit(name) else [""])]
    rankings: dict[tuple[str, int, str], list] = {}
    for name, k, g, order in jobs:
        scheme = mk(name, k=k, **({"group_size": g} if grouped(name) else {}))
        folder = work / ("candidates" + (f"-g{g}" if g else ""))  # the K=0 candidates of group size g
        t = time.perf_counter()
        try:
            if k and (name, g, order) not in rankings:  # measured on this group size's K=0 candidate
                k0 = folder / f"{mk(name).name}.onnx"
                rankings[name, g, order] = compute_sensitivity(
                    fp32, pt, calib, scheme.registry, work / "work", args.sens_images,
                    qdq_model=k0 if k0.exists() else None,
                    per_weight=(order == "density") if order else None)["ranking"]
            cand = materialize(scheme, BuildContext(fp32, pt, calib, work / "work"),
                               folder.with_name(folder.name + (f"-{order}" if order else "")),
                               rankings.get((name, g, order)) if k else None)
        except Exception as exc:  # noqa: BLE001 - a row saying why
            rows.append({"scheme": scheme.name, "error": str(exc)[:200]})
            continue
        build_s = time.perf_counter() - t
        m = evaluate(cand.model_path, ds, ids, settings, work / f"{scheme.name}-g{g}-{order}.metrics.json")
        dets = json.loads(Path(m["detections_file"]).read_text())
        boot = bootstrap_map(ds.coco, {"fp32": base_dets, "cand": dets}, ids, 200, 0)["map50_95"]
        low, high = delta_interval(boot["cand"], boot["fp32"])
        delta = m["map50_95"] - base["map50_95"]
        rows.append({"scheme": scheme.name, "group": g or "channel", "order": order, "storage": cand.record["settings"].get("storage", ""),
                     "map50_95": m["map50_95"], "delta": delta, "low": low, "high": high,
                     "build_s": round(build_s, 1), "size_mb": cand.record["size_mb"],
                     "collapsed": -100 * delta > args.collapse,
                     "reconstruction": cand.record["settings"].get("reconstruction"),
                     "weights_8bit": len(cand.record["settings"].get("weights_8bit", [])),
                     "ranked_weights_8bit": sum(e.get("weight_elements", 0)
                                                for e in rankings.get((name, g, order), [])[:k])})
    print(f"4-bit weights on {model.name}: {len(ids)} images of {ann.name}, {len(calib.ids)} calibration images "
          f"from {calib_dir}, scored by {args.provider}\n")
    ref_size = next((r["size_mb"] for r in rows if "size_mb" in r and str(r["scheme"]).startswith("int8")), None)
    print("| scheme | scale groups | K order | mAP50-95 | Δ points | 95% interval | build (s) | size (MB) | × INT8 size "
          "| 8-bit convs | storage | |")
    print("|---|---|---|---:|---:|---|---:|---:|---:|---:|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['scheme']} | | | — | — | — | — | — | — | — | | {r['error']} |")
            continue
        interval = f"[{100 * r['low']:+.2f}, {100 * r['high']:+.2f}]" if "low" in r else ""
        ratio = f"{r['size_mb'] / ref_size:.2f}" if ref_size and r.get("size_mb") else ""
        print(f"| {r['scheme']} | {r.get('group', '')} | {r.get('order', '')} | {r['map50_95']:.4f} | {100 * r['delta']:+.2f} | {interval} | "
              f"{r.get('build_s', '')} | {r.get('size_mb', '')} | {ratio} | {r.get('weights_8bit', '')} | "
              f"{r.get('storage', '')} | {'COLLAPSED' if r.get('collapsed') else ''} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": str(model), "images": len(ids), "rows": rows}, indent=2))
    print(args.out)


if __name__ == "__main__":
    main()
