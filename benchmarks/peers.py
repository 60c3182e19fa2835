"""quantsweep's recommendation against the peers' one-line INT8, on the same held-out images.

Reads a finished ``quantsweep run`` folder (its FP32 export, its recommendation, its confirmation
images, its calibration images) and builds what a user would otherwise do:

- **NNCF default INT8**: ``nncf.quantize`` on the OpenVINO model, library defaults;
- **NNCF accuracy control**: ``nncf.quantize_with_accuracy_control`` with ``max_drop`` = the run's
  budget, validated on the run's search subset (the images quantsweep searched on);
- **Ultralytics OpenVINO INT8**: ``YOLO(pt).export(format="openvino", int8=True)`` (NNCF inside,
  its own head handling), when the run's model is an Ultralytics ``.pt`` (or ``--pt`` names one).
  For an NMS-free model (YOLOv10, YOLO26) Ultralytics 8.4 exports the one-to-many head by default
  (``nms=None``: NMS left to the caller); ``nms=False`` keeps the end-to-end head — both are rows.

Every model is scored with OpenVINO on the run's confirmation images (ΔmAP50-95 with a paired
bootstrap interval, against the FP32 model *with the same head*: a peer whose export has another
output layout than the run's FP32 is compared with an FP32 export of that head, also a row) and timed on OpenVINO CPU in interleaved rounds in this process, with
the wall time each took to produce. A peer whose library is missing or that fails is a row saying
why; nothing is downloaded.

    python benchmarks/peers.py --run runs/demo/<run-id> [--pt model.pt] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from speed_vs_peers import _detections, _ov_runner, _time, score_and_time  # noqa: E402


def _yolo_calib_dir(ds: Any, ids: list[int], out: Path) -> Path:
    """A YOLO-layout copy (symlinks + label files) of the calibration images, and its data YAML."""
    import yaml

    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)
    cats = list(ds.category_ids)
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in ds.coco["annotations"]:
        by_image.setdefault(int(a["image_id"]), []).append(a)
    images = {int(i["id"]): i for i in ds.coco["images"]}
    for i in ids:
        info = images[i]
        src = Path(ds.images_dir) / info["file_name"]
        (out / "images" / src.name).unlink(missing_ok=True)
        (out / "images" / src.name).symlink_to(src.resolve())
        w, h = info["width"], info["height"]
        lines = [f"{cats.index(a['category_id'])} {(a['bbox'][0] + a['bbox'][2] / 2) / w:.6f} "
                 f"{(a['bbox'][1] + a['bbox'][3] / 2) / h:.6f} {a['bbox'][2] / w:.6f} {a['bbox'][3] / h:.6f}"
                 for a in by_image.get(i, []) if not a.get("iscrowd")]
        (out / "labels" / f"{src.stem}.txt").write_text("\n".join(lines))
    names = {k: c["name"] for k, c in enumerate(sorted(ds.coco["categories"], key=lambda c: cats.index(c["id"])))}
    data = out / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(out), "train": "images", "val": "images", "names": names}))
    return data


def compiled_counts(model: Any) -> dict[str, int]:
    """What OpenVINO's CPU plugin executes for ``model``: nodes by runtime precision (``f32``, ``i32``,
    ``u8``, ``bf16``...) and the layout conversions (``Reorder`` nodes), from the compiled model."""
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU")
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        precision = str(rt["runtimePrecision"].astype(str)) if "runtimePrecision" in rt else "?"
        counts[precision] = counts.get(precision, 0) + 1
        if "layerType" in rt and str(rt["layerType"].astype(str)) == "Reorder":
            counts["reorders"] = counts.get("reorders", 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def to_boxes(models: dict[str, Any], layouts: dict[str, str], x: Any, nms: tuple[float, float, int],
             seconds: float) -> dict[str, Any]:
    """Each model timed from the image tensor to its final boxes, in interleaved rounds on one real image
    ``x``: an end-to-end head's call plus its score threshold; a raw head's call plus Ultralytics' own NMS
    (``ultralytics.utils.nms.non_max_suppression``, what its predictor runs), at ``nms`` = (conf, iou, max_det)."""
    import numpy as np

    conf, iou, max_det = nms

    def runner(model: Any, layout: str) -> Callable[[Any], Any]:
        call = _ov_runner(model)
        if layout != "raw":
            return lambda t: (lambda y: y[0][y[0][:, 4] > conf])(np.asarray(call(t)))
        import torch
        from ultralytics.utils.nms import non_max_suppression

        return lambda t: non_max_suppression(torch.from_numpy(np.asarray(call(t))), conf, iou, max_det=max_det)
    return _time({n: runner(m, layouts[n]) for n, m in models.items()}, x, seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a finished quantsweep run folder")
    ap.add_argument("--pt", type=Path, help="the Ultralytics .pt of the run's model (default: the run's model if .pt)")
    ap.add_argument("--candidates", default="",
                    help="comma-separated run candidates to compare too (e.g. int8-ov when the run stayed on FP32)")
    ap.add_argument("--seconds", type=float, default=8.0, help="timed seconds per model, interleaved (default 8)")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--deploy-conf", type=float, default=0.25,
                    help="score threshold of the image-to-boxes timing (default 0.25, Ultralytics' predictor default)")
    ap.add_argument("--skip", default="", help="comma-separated peers to leave out: nncf, ac, ultralytics")
    ap.add_argument("--out", type=Path, help="JSON to write (default RUN/peers.json)")
    args = ap.parse_args()

    import nncf
    import openvino as ov

    from quantsweep.data.coco import read_ids_file
    from quantsweep.env import collect_env
    from quantsweep.evaluate.bootstrap import delta_interval
    from quantsweep.evaluate.metrics import coco_map
    from quantsweep.files import ModelFile
    from quantsweep.model.info import inspect_onnx
    from quantsweep.sweep.config import SweepConfig
    from quantsweep.sweep.inputs import resolve_inputs

    run = args.run
    cfg = SweepConfig.resolve(yaml_path=run / "config.yaml")
    inp = resolve_inputs(cfg)
    summary = json.loads((run / "results" / "summary.json").read_text())
    rec = summary["recommendation"]
    confirm_ids = read_ids_file(run / "confirm_ids.txt")
    search_ids = read_ids_file(run / "search_ids.txt")
    calib_ids = read_ids_file(run / "calib_ids.txt")
    fp32_onnx = run / "candidates" / "fp32.onnx"
    hw = inspect_onnx(fp32_onnx).hw
    calib = inp.calib_set(len(calib_ids), hw, search_ids + confirm_ids)
    arr = calib.array()
    work = Path(tempfile.mkdtemp(prefix="qs-peers-"))
    budget = cfg.budget

    models: dict[str, Any] = {"fp32": ov.convert_model(str(fp32_onnx))}
    made: dict[str, dict[str, Any]] = {"fp32": {"how": "the run's FP32 export", "seconds": None}}
    if rec.get("candidate") not in (None, "fp32"):
        name = rec["candidate"]
        models[f"quantsweep {name}"] = str(ModelFile.find(run / "recommended", name).path)  # .xml (IR) or .onnx
        steps = json.loads((run / "manifest.json").read_text())["steps"]
        made[f"quantsweep {name}"] = {"how": f"the run's recommendation ({rec['backend']})",
                                      "seconds": round(sum(s.get("seconds", 0.0) for s in steps.values()), 1)}

    for name in (x.strip() for x in args.candidates.split(",") if x.strip()):
        if f"quantsweep {name}" not in models:
            models[f"quantsweep {name}"] = str(ModelFile.find(run / "candidates", name).path)
            made[f"quantsweep {name}"] = {"how": "a run candidate (--candidates), not its recommendation",
                                          "seconds": None}

    def peer(label: str, how: str, build: Callable[[], Any]) -> None:
        t = time.perf_counter()
        try:
            models[label] = build()
            made[label] = {"how": how, "seconds": round(time.perf_counter() - t, 1)}
        except Exception as exc:  # noqa: BLE001 - a peer that cannot run is a row saying why
            made[label] = {"how": how, "seconds": None, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
            print(f"peer {label!r} failed: {made[label]['error']}", file=sys.stderr)

    calib_data = nncf.Dataset(list(arr[:, None]))
    skip = {x.strip() for x in args.skip.split(",") if x.strip()}

    def peer_unless(key: str, label: str, how: str, build: Callable[[], Any]) -> None:
        if key in skip:
            made[label] = {"how": how, "seconds": None, "error": "skipped (--skip)"}
        else:
            peer(label, how, build)

    peer_unless("nncf", "NNCF default INT8", "nncf.quantize(OpenVINO model), defaults",
         lambda: nncf.quantize(ov.convert_model(str(fp32_onnx)), calib_data, subset_size=len(arr)))

    def validate(compiled: Any, items: Iterable[Any]) -> float:
        out = compiled.outputs[0]
        req = compiled.create_infer_request()
        return float(coco_map(inp.eval_ds.coco, _detections(lambda x: req.infer({0: x})[out], inp.eval_ds,
                                                            search_ids, hw), search_ids)["map50_95"] or 0.0)

    peer_unless("ac", f"NNCF accuracy control (max_drop {budget / 100:g})",
         f"nncf.quantize_with_accuracy_control, max_drop={budget / 100:g} absolute, validated on the "
         f"{len(search_ids)} search images",
         lambda: nncf.quantize_with_accuracy_control(
             ov.convert_model(str(fp32_onnx)), calib_data, nncf.Dataset([0]), validate,
             max_drop=budget / 100, drop_type=nncf.DropType.ABSOLUTE, subset_size=len(arr)))

    pt = args.pt or inp.pt
    if pt is not None and "ultralytics" not in skip:
        def ultralytics_int8(**extra: Any) -> Callable[[], Any]:
            def build() -> Any:
                import shutil

                from quantsweep.offline import import_ultralytics

                YOLO = import_ultralytics().YOLO

                assert inp.calib_ds is not None, "Ultralytics' INT8 export needs a labelled calibration split"
                data = _yolo_calib_dir(inp.calib_ds, calib_ids, work / "yolo-calib")
                staged = work / f"ultralytics-{len(extra)}" / Path(pt).name  # each export in its own folder
                staged.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(pt, staged)
                out = YOLO(str(staged)).export(format="openvino", int8=True, data=str(data), imgsz=hw[0], batch=1,
                                               fraction=1.0, **extra)
                return str(next(Path(out).glob("*.xml")))
            return build

        peer("Ultralytics OpenVINO INT8", "YOLO(pt).export(format='openvino', int8=True)", ultralytics_int8())
        peer("Ultralytics OpenVINO INT8, nms=False", "the same with nms=False (end-to-end head kept)",
             ultralytics_int8(nms=False))
    else:
        made["Ultralytics OpenVINO INT8"] = {"how": "needs the model's Ultralytics .pt (--pt)", "seconds": None,
                                             "error": "skipped (--skip)" if "ultralytics" in skip
                                             else "skipped: the run's model is not a .pt"}

    def layout_of(model: Any) -> str:
        from quantsweep.model.layouts import detect_layout

        m = model if not isinstance(model, str) else ov.Core().read_model(model)
        return str(detect_layout(list(m.outputs[0].get_partial_shape().to_shape()), hw)[0])

    layouts = {n: layout_of(m) for n, m in models.items()}
    reference = {layouts["fp32"]: "fp32"}  # each head's FP32 model
    for lay in list(layouts.values()):
        if lay not in reference and pt is not None:
            from quantsweep.model.export import export_onnx

            ref = f"fp32 ({lay} head)"
            models[ref] = ov.convert_model(str(export_onnx(pt, work / f"fp32-{lay}.onnx", imgsz=hw[0], head=lay)))
            made[ref] = {"how": f"FP32 export of the {lay} head: the reference of the {lay}-head peers", "seconds": None}
            layouts[ref], reference[lay] = lay, ref

    boot, maps, stats = score_and_time(models, inp.eval_ds, confirm_ids, hw, (args.bootstrap, cfg.seed, args.seconds))
    from quantsweep.bench.timing import speedup_interval, speedup_median

    counts = {n: compiled_counts(m) for n, m in models.items()}
    picks = [n for n in stats if n.startswith("quantsweep ")]
    versus = []  # each quantsweep model against each peer with the same head: speed ratio and paired Δ
    for q in picks:
        for n in stats:
            if n == q or n.startswith(("quantsweep ", "fp32")) or layouts[n] != layouts[q]:
                continue
            peer_ms, pick_ms = stats[n]["rounds_ms"], stats[q]["rounds_ms"]
            ratio, interval = speedup_median(peer_ms, pick_ms), speedup_interval(peer_ms, pick_ms)
            low, high = delta_interval(boot[q], boot[n])
            versus.append({"pick": q, "peer": n, "speed_ratio": ratio, "ratio_low": interval[0] if interval else None,
                           "ratio_high": interval[1] if interval else None, "rounds": min(len(peer_ms), len(pick_ms)),
                           "delta_points": round(100 * (maps[q] - maps[n]), 2), "low_points": round(100 * low, 2),
                           "high_points": round(100 * high, 2), "pick_nodes": counts[q], "peer_nodes": counts[n]})
    # image to boxes: a raw-head peer leaves NMS to its caller, so its model call alone is not what a
    # deployment waits for; time each pick against it with that NMS included, on one confirmation image
    boxes: list[dict[str, Any]] = []
    raw_peers = [n for n in stats if layouts[n] == "raw" and not n.startswith(("quantsweep ", "fp32"))]
    if raw_peers and picks:
        from quantsweep.data.letterbox import iter_batches

        x = next(iter(iter_batches(inp.eval_ds, confirm_ids[:1], hw, 1))).pixels
        timed = to_boxes({n: models[n] for n in picks + raw_peers}, layouts, x,
                         (args.deploy_conf, cfg.iou, cfg.max_det), args.seconds)
        for q in picks:
            for n in raw_peers:
                ratio = speedup_median(timed[n]["rounds_ms"], timed[q]["rounds_ms"])
                interval = speedup_interval(timed[n]["rounds_ms"], timed[q]["rounds_ms"])
                boxes.append({"pick": q, "peer": n, "speed_ratio": ratio, "pick_ms": timed[q]["latency_p50_ms"],
                              "peer_ms": timed[n]["latency_p50_ms"], "ratio_low": interval[0] if interval else None,
                              "ratio_high": interval[1] if interval else None,
                              "rounds": min(len(timed[n]["rounds_ms"]), len(timed[q]["rounds_ms"])),
                              "conf": args.deploy_conf, "iou": cfg.iou, "max_det": cfg.max_det})
    rows = []
    for n in made:
        row: dict[str, Any] = {"model": n, **made[n]}
        if n in stats:
            ref = reference.get(layouts[n], "fp32")
            low, high = delta_interval(boot[n], boot[ref])
            row.update(head=layouts[n], reference=ref,
                       map50_95=round(maps[n], 4), delta_points=round(100 * (maps[n] - maps[ref]), 2),
                       low_points=round(100 * low, 2), high_points=round(100 * high, 2),
                       p50_ms=stats[n]["latency_p50_ms"], spread=stats[n]["spread"],
                       speedup=round(stats[ref]["latency_p50_ms"] / stats[n]["latency_p50_ms"], 3),
                       compiled_nodes=counts[n])
        rows.append(row)
    env = collect_env()
    print(f"Peers on {run} — OpenVINO {ov.__version__} CPU ({env['cpu']['model']}, {env['cpu']['physical_cores']} "
          f"cores); ΔmAP50-95 on the {len(confirm_ids)} confirmation images (paired bootstrap 95% interval, "
          f"{args.bootstrap} resamples) and speed-up, both against the FP32 model with the same head; batch 1, "
          f"{hw[0]}x{hw[1]}; {args.seconds:g} s per model in interleaved rounds\n")
    print("| model | head | mAP50-95 | Δ mAP50-95 (points) ↑ | 95% interval | speed-up vs FP32 ↑ | p50 ms ↓ | spread "
          "| wall to make (s) |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        if "p50_ms" in r:
            print(f"| {r['model']} | {r['head']} | {r['map50_95']:.4f} | {r['delta_points']:+.2f} | "
                  f"[{r['low_points']:+.2f}, {r['high_points']:+.2f}] | {r['speedup']:.2f}× | {r['p50_ms']:.2f} | "
                  f"{r['spread']:.0%} | {r['seconds'] or ''} |")
        else:
            print(f"| {r['model']} | — | — | — | — | — | — | — | {r.get('error', '')} |")
    print("\nCompiled graphs (OpenVINO CPU plugin): executed nodes by runtime precision, and reorders\n")
    for r in rows:
        if "compiled_nodes" in r:
            print(f"- {r['model']}: " + ", ".join(f"{k} {v}" for k, v in r["compiled_nodes"].items()))
    if versus:
        print("\nquantsweep against each peer with the same head: median paired speed ratio (peer ms / pick ms per "
              "interleaved round; > 1: the pick is faster) with its sign-test 95% interval, and the paired Δ "
              "mAP50-95 pick − peer on the confirmation images\n")
        print("| pick | peer | speed ratio ↑ | 95% interval | rounds | Δ pick − peer (points) | 95% interval |")
        print("|---|---|---:|---|---:|---:|---|")
        for v in versus:
            print(f"| {v['pick']} | {v['peer']} | {v['speed_ratio']:.3f} | [{v['ratio_low']}, {v['ratio_high']}] | "
                  f"{v['rounds']} | {v['delta_points']:+.2f} | [{v['low_points']:+.2f}, {v['high_points']:+.2f}] |")
    if boxes:
        print(f"\nImage to boxes on one confirmation image (conf {args.deploy_conf:g}, IoU {cfg.iou:g}, max_det "
              f"{cfg.max_det}): a raw-head peer's call plus Ultralytics' NMS against the pick's end-to-end call plus "
              "its score threshold; median paired ratio (> 1: the pick is faster), sign-test 95% interval\n")
        print("| pick | peer | pick ms | peer ms | speed ratio ↑ | 95% interval | rounds |")
        print("|---|---|---:|---:|---:|---|---:|")
        for b in boxes:
            print(f"| {b['pick']} | {b['peer']} + NMS | {b['pick_ms']:.2f} | {b['peer_ms']:.2f} | {b['speed_ratio']:.3f} | "
                  f"[{b['ratio_low']}, {b['ratio_high']}] | {b['rounds']} |")
    out = args.out or run / "peers.json"
    out.write_text(json.dumps({"rows": rows, "versus": versus, "image_to_boxes": boxes, "env": env, "confirm_images": len(confirm_ids), "budget_points": budget,
                               "seconds_per_model": args.seconds}, indent=2))
    print(f"\n{out}")


if __name__ == "__main__":
    main()
