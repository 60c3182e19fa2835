"""quantsweep's INT8 against what a user would do by hand, measured the same way in one process.

Rows, each timed on ONNX Runtime CPU and on OpenVINO CPU where it can run there:
- FP32 baseline;
- quantsweep ``int8-qdq`` (ORT quantizer, per-channel, decode tail in float, reduce_range on
  non-VNNI CPUs) — the scheme quantsweep recommends on CPU;
- ORT ``quantize_static`` with its default settings applied naively (what a hand script does);
- ModelOpt INT8 with its defaults (TensorRT-style placement);
- NNCF INT8 on OpenVINO (``nncf.quantize``, preset MIXED), with and without the decode tail kept float.

Columns: median and min latency (ms, batch 1), spread, speed-up vs FP32 on the same runtime,
mAP50-95 and ΔmAP on the demo subset, file size. Latencies of all rows on one runtime are taken
in interleaved rounds.

    python benchmarks/speed_vs_peers.py --quick          # 50 images, 2 s per model
    python benchmarks/speed_vs_peers.py [--model M.onnx --images D --annotations J --calib-dir C]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _ort_runner(path: Path) -> Callable[[np.ndarray], Any]:
    from quantsweep.runtimes.ort import open_ort

    sess = open_ort(path, "cpu")
    return sess.run


def _ov_runner(model: Any) -> Callable[[np.ndarray], Any]:
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU")
    req = compiled.create_infer_request()
    out = compiled.outputs[0]
    return lambda x: req.infer({0: x})[out]


def _detections(run: Callable[[np.ndarray], Any], ds: Any, ids: list[int],
                hw: tuple[int, int]) -> list[dict[str, Any]]:
    """COCO detections of ``run`` (any runtime's batch-1 call) on ``ids``, as quantsweep decodes them."""
    from quantsweep.data.letterbox import iter_batches
    from quantsweep.evaluate.decode import decode, to_coco
    from quantsweep.model.layouts import detect_layout

    dets: list[dict[str, Any]] = []
    layout = None
    for b in iter_batches(ds, ids, hw, 1):
        out = np.asarray(run(b.pixels))
        layout = layout or detect_layout(out.shape, hw)[0]
        for i, (bx, sc, cl) in zip(b.ids, decode(out, layout, b.metas)):
            dets += to_coco(i, bx, sc, cl, ds.category_ids)
    return dets


def _accuracy(run: Callable[[np.ndarray], Any], ds: Any, ids: list[int], hw: tuple[int, int]) -> float:
    from quantsweep.evaluate.metrics import coco_map

    return float(coco_map(ds.coco, _detections(run, ds, ids, hw), ids)["map50_95"])


def _time(runners: dict[str, Callable[[np.ndarray], Any]], x: np.ndarray, seconds: float) -> dict[str, Any]:
    from quantsweep.bench.timing import summarize

    for run in runners.values():
        for _ in range(3):
            run(x)
    samples: dict[str, list[float]] = {n: [] for n in runners}
    names = list(runners)
    deadline = time.perf_counter() + seconds * len(names)
    rnd = 0
    while time.perf_counter() < deadline or rnd < 5:
        for n in names[rnd % len(names):] + names[:rnd % len(names)]:
            t = time.perf_counter()
            runners[n](x)
            samples[n].append((time.perf_counter() - t) * 1000)
        rnd += 1
    return {n: {**summarize(s, 1), "rounds_ms": s} for n, s in samples.items()}  # rounds: paired by index


def score_and_time(models: dict[str, Any], ds: Any, ids: list[int], hw: tuple[int, int],
                   how: tuple[int, int, float]) -> tuple[dict[str, Any], dict[str, float], dict[str, Any]]:
    """Each OpenVINO model scored on ``ids`` and timed interleaved; ``how`` = (bootstrap resamples, seed,
    seconds per model). Returns (bootstrap mAP50-95 per model, mAP50-95 per model, timing stats per model)."""
    from quantsweep.evaluate.bootstrap import bootstrap_map
    from quantsweep.evaluate.metrics import coco_map

    resamples, seed, seconds = how
    runners = {n: _ov_runner(m) for n, m in models.items()}
    dets = {n: _detections(r, ds, ids, hw) for n, r in runners.items()}
    boot = bootstrap_map(ds.coco, dets, ids, resamples, seed)["map50_95"]
    maps = {n: coco_map(ds.coco, d, ids)["map50_95"] or 0.0 for n, d in dets.items()}
    x = np.random.default_rng(0).random((1, 3, *hw), dtype=np.float32)
    return boot, maps, _time(runners, x, seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="FP32 ONNX (default: the demo model)")
    ap.add_argument("--images", type=Path)
    ap.add_argument("--annotations", type=Path)
    ap.add_argument("--calib-dir", type=Path)
    ap.add_argument("--max-images", type=int, default=100)
    ap.add_argument("--calib-count", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--quick", action="store_true", help="50 images, 2 s per model")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-speed-vs-peers.json"))
    args = ap.parse_args()
    if args.quick:
        args.max_images, args.seconds, args.calib_count = 50, 2.0, 32

    import onnx
    import openvino as ov
    from modelopt.onnx.quantization import quantize as modelopt_quantize
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    from quantsweep.data.calibration import CalibSet
    from quantsweep.data.coco import load_dataset, select_ids
    from quantsweep.demo import materialize
    from quantsweep.env import collect_env
    from quantsweep.model.graph import decode_tail
    from quantsweep.model.info import inspect_onnx
    from quantsweep.quantize.build import materialize as build
    from quantsweep.schemes import BuildContext, make_scheme

    work = Path(tempfile.mkdtemp(prefix="qs-peers-"))
    if args.model is None:
        demo = materialize(work / "demo", splits=("val", "calib"))
        args.model = demo["model.onnx"]
        args.images, args.annotations = demo["val/images"], demo["val/annotations.json"]
        args.calib_dir = demo["calib/images"]
    ds = load_dataset(args.images, args.annotations)
    ids = select_ids(ds, args.max_images)
    info = inspect_onnx(args.model)
    hw = info.hw
    cal_ds = load_dataset(args.calib_dir, args.calib_dir.parent / "annotations.json")
    calib = CalibSet.from_dataset(cal_ds, args.calib_count, hw, ids, ds)
    arr = calib.array()

    onnx_models: dict[str, Path] = {"fp32": args.model}
    onnx_models["quantsweep int8-qdq"] = build(make_scheme("int8-qdq"), BuildContext(args.model, None, calib, work / "w"),
                                               work / "qs").model_path

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(arr[:, None])

        def get_next(self) -> Any:
            x = next(self.it, None)
            return None if x is None else {info.input_name: x}

    naive = work / "ort_default.onnx"
    quantize_static(str(args.model), str(naive), Reader())  # library defaults, nothing kept float
    onnx_models["ORT quantize_static defaults"] = naive
    mo = work / "modelopt_int8.onnx"
    modelopt_quantize(str(args.model), quantize_mode="int8", calibration_data=arr, calibration_eps=["cpu"],
                      high_precision_dtype="fp32", output_path=str(mo), log_level="ERROR")
    onnx_models["ModelOpt int8 defaults"] = mo

    import nncf

    tail = list(decode_tail(onnx.load(str(args.model))))
    ov_fp32 = ov.convert_model(str(args.model))
    ov_models = {}
    for label, scope in (("NNCF int8 (OpenVINO)", None), ("NNCF int8, tail float (OpenVINO)", tail)):
        ignored = nncf.IgnoredScope(names=scope, validate=False) if scope else None
        ov_models[label] = nncf.quantize(ov.convert_model(str(args.model)), nncf.Dataset(list(arr[:, None])),
                                         preset=nncf.QuantizationPreset.MIXED, ignored_scope=ignored,
                                         subset_size=len(arr))

    rows: dict[str, dict[str, Any]] = {}
    x = np.random.default_rng(0).random((1, 3, *hw), dtype=np.float32)
    ort_runners = {n: _ort_runner(p) for n, p in onnx_models.items()}
    ov_runners = {"fp32": _ov_runner(ov_fp32)}
    for n, p in onnx_models.items():
        if n != "fp32":
            ov_runners[n] = _ov_runner(str(p))
    ov_runners.update({n: _ov_runner(m) for n, m in ov_models.items()})
    for runtime, runners in (("onnxruntime-cpu", ort_runners), ("openvino-cpu", ov_runners)):
        stats = _time(runners, x, args.seconds)
        for n, s in stats.items():
            rows[f"{n} @ {runtime}"] = {"candidate": n, "runtime": runtime, **s,
                                         "speedup_vs_fp32": round(stats["fp32"]["latency_p50_ms"] / s["latency_p50_ms"], 3)}
    acc = {n: _accuracy(r, ds, ids, hw) for n, r in ort_runners.items()}
    acc.update({n: _accuracy(ov_runners[n], ds, ids, hw) for n in ov_models})
    sizes = {n: round(p.stat().st_size / 1e6, 2) for n, p in onnx_models.items()}
    for n, m in ov_models.items():
        ov.save_model(m, str(work / "nncf.xml"), compress_to_fp16=False)
        sizes[n] = round(((work / "nncf.xml").stat().st_size + (work / "nncf.bin").stat().st_size) / 1e6, 2)
    for r in rows.values():
        r["map50_95"] = round(acc[r["candidate"]], 4)
        r["delta_map50_95_points"] = round(100 * (acc[r["candidate"]] - acc["fp32"]), 2)
        r["size_mb"] = sizes[r["candidate"]]
    env = collect_env()
    print(f"Speed and accuracy vs peers — {env['cpu']['model']}, {env['cpu']['physical_cores']} cores, "
          f"VNNI {env['cpu']['vnni']}; batch 1, input {hw[0]}x{hw[1]}; mAP on {len(ids)} images; "
          f"{args.seconds:.0f} s per model in interleaved rounds\n")
    print("| candidate | runtime | p50 ms ↓ | min ms ↓ | spread ↓ | speed-up vs FP32 ↑ | mAP50-95 ↑ | Δ points ↑ | size MB ↓ |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows.values():
        print(f"| {r['candidate']} | {r['runtime']} | {r['latency_p50_ms']:.2f} | {r['latency_min_ms']:.2f} | "
              f"{r['spread']:.0%} | {r['speedup_vs_fp32']:.2f}× | {r['map50_95']:.4f} | {r['delta_map50_95_points']:+.2f} | "
              f"{r['size_mb']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": list(rows.values()), "env": env, "images": len(ids),
                                    "seconds_per_model": args.seconds}, indent=2))
    print(f"\n{args.out}")


if __name__ == "__main__":
    main()
