"""Command line: parse flags, call the library, print. Nothing else lives here.

Errors the user can fix are one line on stderr and exit code 2; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from quantsweep.errors import QuantsweepError

__all__ = ["main"]


def _add_data_args(p: argparse.ArgumentParser, subset: bool = True) -> None:
    g = p.add_argument_group("dataset (COCO format)")
    g.add_argument("--images", type=Path, help="folder with the images")
    g.add_argument("--annotations", type=Path, help="COCO instances JSON")
    g.add_argument("--data", type=Path,
                   help="COCO 2017 root: ROOT/val2017/ + ROOT/annotations/instances_val2017.json")
    if subset:
        g.add_argument("--max-images", type=int, default=100,
                       help="evaluate the first N image ids in ascending order (default 100)")
        g.add_argument("--image-ids", type=Path, help="text file of image ids to evaluate, one per line")


def _dataset(args: argparse.Namespace):  # noqa: ANN202
    from quantsweep.data import coco2017_paths, load_dataset

    if args.data is not None:
        if args.images is not None or args.annotations is not None:
            raise QuantsweepError("--data cannot be combined with --images/--annotations",
                                  "pass either --data ROOT or --images DIR --annotations FILE")
        if not args.data.is_dir():
            raise QuantsweepError(f"dataset root not found: {args.data}",
                                  "pass --data with a folder in the COCO 2017 layout")
        images, annotations = coco2017_paths(args.data)
        return load_dataset(images, annotations)
    if args.images is None or args.annotations is None:
        raise QuantsweepError("no dataset given", "pass --images DIR --annotations FILE, or --data ROOT")
    return load_dataset(args.images, args.annotations)


def _refuse_overwrite(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise QuantsweepError(f"{path} already exists; finished results are never overwritten",
                              "choose another --out, or pass --overwrite")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QuantsweepError(f"cannot create output folder {path.parent} ({exc.strerror})",
                              "choose a writable --out") from None


def cmd_demo(args: argparse.Namespace) -> int:
    from quantsweep.demo import materialize

    wrote = materialize(args.out, yolo_labels=args.yolo_labels)
    for name, path in wrote.items():
        print(f"{name:28s} {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from quantsweep.source import export_onnx, inspect_onnx

    _refuse_overwrite(args.out, args.overwrite)
    out = export_onnx(args.model, args.out, imgsz=args.imgsz, opset=args.opset, head=args.head,
                      dynamic_batch=args.dynamic_batch, trust_checkpoint=args.trust_checkpoint)
    info = inspect_onnx(out, args.imgsz)
    print(f"FP32 ONNX: input {list(info.input_shape)}, outputs {[list(s) for s in info.output_shapes]}, "
          f"layout {info.layout}, opset {info.opset}")
    print(out)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from quantsweep.data import select_ids
    from quantsweep.evaluate import EvalSettings, evaluate

    settings = EvalSettings(conf=args.conf, iou=args.iou, max_det=args.max_det, batch=args.batch,
                            provider=args.provider, imgsz=args.imgsz, threads=args.threads)
    _refuse_overwrite(args.out, args.overwrite)
    ds = _dataset(args)
    ids = select_ids(ds, args.max_images, args.image_ids)
    model = args.model
    if model.suffix.lower() in (".pt", ".pth"):
        raise QuantsweepError(f"{model}: eval takes an ONNX model",
                              f"export it first: quantsweep export --model {model} --out model.onnx")
    m = evaluate(model, ds, ids, settings, args.out)
    run = m["run"]
    print(f"COCO bbox mAP of {model} on {m['num_images']} images of {ds.annotations} "
          f"(layout {run['layout']}, {run['provider']}, batch {run['batch']}, "
          f"input {run['input_hw'][0]}x{run['input_hw'][1]}, conf {settings.conf}, iou {settings.iou}):")
    for key in ("map50_95", "map50", "map75", "map_small", "map_medium", "map_large"):
        v = m[key]
        print(f"  {key:11s} {'n/a' if v is None else f'{v:.4f}'}")
    print(f"  {m['num_detections']} detections, {run['ms_per_image']} ms/image wall "
          f"({run['inference_s']:.2f} s inference of {run['wall_s']:.2f} s)")
    for w in m.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)
    print(args.out)
    return 0


def cmd_schemes(args: argparse.Namespace) -> int:
    from quantsweep.schemes import DEFAULT_SCHEMES, K_SCHEMES, REGISTRY, describe, make_scheme

    print("| name | candidate file | K-sets | default | what |")
    print("|---|---|---|---|---|")
    for name in REGISTRY:
        print(f"| {name} | {make_scheme(name).name}.onnx | {'yes' if name in K_SCHEMES else 'no'} | "
              f"{'yes' if name in DEFAULT_SCHEMES else ''} | {describe(name)} |")
    return 0


def _calib_set(args: argparse.Namespace, hw: tuple[int, int]):  # noqa: ANN202
    """Calibration images: --calib-images DIR [--calib-annotations J] (first --calib-count ids)."""
    from quantsweep.calibration import CalibSet
    from quantsweep.data import load_dataset

    folder = args.calib_images
    ann = args.calib_annotations
    if ann is None:
        if folder is None or not (folder.parent / "annotations.json").is_file():
            raise QuantsweepError(f"no annotations found for calibration folder {folder}",
                                  "pass --calib-annotations, or a demo-layout split folder DIR/images")
        ann = folder.parent / "annotations.json"
    ds = load_dataset(folder, ann)
    return CalibSet.from_dataset(ds, args.calib_count, hw)


def _add_calib_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib-images", type=Path, required=True,
                   help="calibration images folder (never the evaluation subset)")
    p.add_argument("--calib-annotations", type=Path,
                   help="its COCO JSON (default: annotations.json beside the folder)")
    p.add_argument("--calib-count", type=int, default=64, help="number of calibration images (default 64)")


def _baseline(model: Path, work: Path, imgsz: int, trust: bool = False) -> tuple[Path, Path | None]:
    """(FP32 ONNX, .pt or None) for a --model given as .pt or .onnx."""
    from quantsweep.source import export_onnx

    if model.suffix.lower() in (".pt", ".pth"):
        return export_onnx(model, work / f"{model.stem}.fp32.onnx", imgsz=imgsz, trust_checkpoint=trust), model
    return export_onnx(model, work / model.name, imgsz=imgsz), None


def cmd_sensitivity(args: argparse.Namespace) -> int:
    import tempfile

    from quantsweep.files import atomic_write_json
    from quantsweep.pipeline import compute_sensitivity
    from quantsweep.sensitivity import ranking_markdown
    from quantsweep.source import inspect_onnx

    _refuse_overwrite(args.out, args.overwrite)
    with tempfile.TemporaryDirectory(prefix="qs-sens-") as tmp:
        fp32, pt = _baseline(args.model, Path(tmp), args.imgsz, args.trust_checkpoint)
        calib = _calib_set(args, inspect_onnx(fp32).hw or (args.imgsz, args.imgsz))
        result = compute_sensitivity(fp32, pt, calib, args.precision, Path(tmp), args.images, args.probe_top)
    atomic_write_json(args.out, result)
    print(ranking_markdown(result, 20))
    print(args.out)
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from quantsweep.pipeline import compute_sensitivity
    from quantsweep.quantize import materialize
    from quantsweep.schemes import BuildContext, make_scheme
    from quantsweep.source import inspect_onnx

    work = Path(tempfile.mkdtemp(prefix="qs-quant-"))
    fp32, pt = _baseline(args.model, work, args.imgsz, args.trust_checkpoint)
    overrides = {"k": args.k}
    if args.calibration:
        overrides["calibration"] = args.calibration
    if args.float_dtype:
        overrides["float_dtype"] = args.float_dtype
    scheme = make_scheme(args.scheme, onnx_only=pt is None, **overrides)
    target = args.out / f"{scheme.name}.onnx"
    _refuse_overwrite(target, args.overwrite)
    calib = _calib_set(args, inspect_onnx(fp32).hw or (args.imgsz, args.imgsz))
    ranking = None
    if args.k:
        if args.sensitivity is not None:
            if not args.sensitivity.is_file():
                raise QuantsweepError(f"sensitivity file not found: {args.sensitivity}",
                                      "pass a file written by quantsweep sensitivity")
            ranking = json.loads(args.sensitivity.read_text())["ranking"]
        else:
            from quantsweep.sweep import registry_name

            ranking = compute_sensitivity(fp32, pt, calib, registry_name(scheme), work)["ranking"]
    cand = materialize(scheme, BuildContext(fp32, pt, calib, work, args.trust_checkpoint), args.out, ranking)
    rec = cand.record
    print(f"{cand.name}: {rec['tool']} {rec['tool_version']}, {rec['size_mb']} MB, "
          f"{rec['kept_float_count']} node(s) kept in float, Q/DQ {rec['hygiene']['qdq_after']}, "
          f"built in {rec['build_s']} s; scheme: {cand.scheme_path}")
    print(cand.onnx_path)
    return 0


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise QuantsweepError(f"{text!r} is not a comma-separated list of integers", "pass e.g. 1,8") from None


def cmd_bench(args: argparse.Namespace) -> int:
    from quantsweep.bench import BenchSettings, bench_markdown, benchmark
    from quantsweep.files import atomic_write_json

    settings = BenchSettings(backends=tuple(args.backend or ["ort-cpu"]), batches=_int_list(args.batch),
                             warmup=args.warmup, iters=args.iters, seconds=args.seconds, threads=args.threads)
    _refuse_overwrite(args.out, args.overwrite)
    names = [m.stem for m in args.model]
    if len(set(names)) != len(names):
        names = [f"{i}:{n}" for i, n in enumerate(names)]
    result = benchmark(list(zip(names, args.model)), settings)
    atomic_write_json(args.out, result)
    print(bench_markdown(result, names[0]))
    for w in result["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(args.out)
    return 0


_RUN_FLAGS = ("trust_checkpoint", "model", "images", "annotations", "data", "max_images", "image_ids", "calib_images", "calib_dir",
              "calib_annotations", "imgsz", "schemes", "ks", "backends", "batches", "budget", "target_backend",
              "bench_seconds", "sensitivity_images", "sensitivity_probe_top", "out", "jobs", "seed", "bootstrap")


def cmd_run(args: argparse.Namespace) -> int:
    import json as _json

    from quantsweep.config import SweepConfig
    from quantsweep.files import atomic_write_text
    from quantsweep.runner import run_sweep

    cli = {k: getattr(args, k) for k in _RUN_FLAGS}
    config_path = args.config
    if args.resume is not None and config_path is None and (args.resume / "config.yaml").is_file():
        config_path = args.resume / "config.yaml"
    cfg = SweepConfig.resolve(cli, config_path)
    if args.dry_run:
        cfg.out.mkdir(parents=True, exist_ok=True)
        path = cfg.out / "config.dry-run.yaml"
        atomic_write_text(path, cfg.to_yaml())
        print(cfg.to_yaml())
        print(path)
        return 0
    from quantsweep.progress import SweepProgress

    display = SweepProgress(quiet=args.quiet, log_json=args.log_json, run_dir=args.resume)
    on_event = display.on_event
    try:
        result = run_sweep(cfg, args.resume, on_event)
    except KeyboardInterrupt:
        display.close()
        print(f"quantsweep: interrupted; finished steps are kept — resume with: quantsweep run --resume "
              f"{display.run_dir or '<run folder>'}", file=sys.stderr)
        return 130
    finally:
        display.close()
    md = (result.run_dir / "results" / "summary.md").read_text()
    print(md)
    rec = result.recommendation
    print(f"recommendation: {rec.get('candidate')} — {rec.get('reason')}")
    verdict = _json.loads((result.run_dir / "results" / "summary.json").read_text()).get("w8a16")
    if verdict:
        print(f"W8A16 check: {verdict['verdict']}")
    print(f"report: {result.run_dir / 'report.html'}")
    print(result.run_dir)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    import json

    from quantsweep.env import check_single_ort, collect_env

    print(json.dumps(collect_env(), indent=2))
    print(f"onnxruntime: {check_single_ort()} (exactly one distribution: OK)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from quantsweep.schemes import K_SCHEMES

    p = _OneLineParser(prog="quantsweep", description="Low-precision study of a detector.")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="write the embedded demo world (model + synthetic COCO data)")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--yolo-labels", action="store_true", help="also write YOLO txt labels")
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser("export", help="Ultralytics .pt -> FP32 ONNX (ONNX passes through)")
    e.add_argument("--model", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--imgsz", type=int, default=640)
    e.add_argument("--opset", type=int, default=17)
    e.add_argument("--head", choices=("e2e", "raw"), default="e2e",
                   help="e2e: NMS-free [N,300,6]; raw: one-to-many [N,4+C,A] (needs NMS)")
    e.add_argument("--dynamic-batch", action="store_true")
    e.add_argument("--overwrite", action="store_true")
    e.add_argument("--trust-checkpoint", action="store_true",
                   help="fully unpickle a .pt even if it references more than model classes (can run code)")
    e.set_defaults(func=cmd_export)

    v = sub.add_parser("eval", help="COCO mAP of an ONNX detector on a fixed subset")
    v.add_argument("--model", type=Path, required=True)
    _add_data_args(v)
    v.add_argument("--conf", type=float, default=0.001)
    v.add_argument("--iou", type=float, default=0.7)
    v.add_argument("--max-det", type=int, default=300)
    v.add_argument("--batch", type=int, default=1)
    v.add_argument("--imgsz", type=int, help="input size for models with dynamic height/width")
    v.add_argument("--provider", default="auto", help="auto|cpu|cuda|tensorrt (default auto)")
    v.add_argument("--threads", type=int, help="intra-op threads (default: physical cores)")
    v.add_argument("--out", type=Path, required=True, help="metrics JSON to write")
    v.add_argument("--overwrite", action="store_true")
    v.set_defaults(func=cmd_eval)

    r = sub.add_parser("run", help="the whole study; with no arguments, on the embedded demo")
    r.add_argument("--config", type=Path, help="YAML with the same keys as the flags (CLI wins)")
    r.add_argument("--model", type=Path, help=".pt or .onnx (default: the embedded demo detector)")
    _add_data_args(r, subset=False)
    r.add_argument("--max-images", type=int, help="evaluation subset size (default 100)")
    r.add_argument("--image-ids", type=Path)
    r.add_argument("--calib-images", type=int, help="calibration image count (default 64)")
    r.add_argument("--calib-dir", type=Path, help="calibration images folder (default: the demo calib split)")
    r.add_argument("--calib-annotations", type=Path)
    r.add_argument("--imgsz", type=int, help="export size for a .pt (default 320 demo / 640)")
    r.add_argument("--schemes", help="comma-separated (default int8,int8-trt,fp8,w8a16,w4a16,w4a8)")
    r.add_argument("--ks", help="comma-separated K-set (default 0,5,10,20)")
    r.add_argument("--backends", help="comma-separated (default: every one available)")
    r.add_argument("--batches", help="comma-separated batch sizes to benchmark (default 1)")
    r.add_argument("--budget", type=float, help="max mAP50-95 loss in points (default 1.0)")
    r.add_argument("--target-backend", help="backend the recommendation is for (default: fastest)")
    r.add_argument("--bench-seconds", type=float, help="timed seconds per model and backend (default 5)")
    r.add_argument("--sensitivity-images", type=int, help="images for the sensitivity probe (default 2)")
    r.add_argument("--sensitivity-probe-top", type=int,
                   help="nodes measured exactly after the local-error screen (default 32; 0 = every node)")
    r.add_argument("--bootstrap", type=int, help="bootstrap resamples for the ΔmAP CI (default 100)")
    r.add_argument("--seed", type=int)
    r.add_argument("--out", type=Path, help="runs folder (default runs/)")
    r.add_argument("--resume", type=Path, help="finish an interrupted run folder")
    r.add_argument("--jobs", type=int, help="parallel builds/evals (default 1)")
    r.add_argument("--dry-run", action="store_true", help="write the resolved config and exit")
    r.add_argument("--quiet", action="store_true", help="no progress display")
    r.add_argument("--log-json", type=Path, help="append JSON-lines events to this file")
    r.add_argument("--trust-checkpoint", action="store_true",
                   help="fully unpickle a .pt even if it references more than model classes (can run code)")
    r.set_defaults(func=cmd_run)

    sc = sub.add_parser("schemes", help="list the quantization schemes")
    sc.set_defaults(func=cmd_schemes)

    q = sub.add_parser("quantize", help="build one candidate: <out>/<name>.onnx + <name>.scheme.json")
    q.add_argument("--model", type=Path, required=True, help=".pt (Ultralytics) or FP32 .onnx")
    q.add_argument("--scheme", required=True, help="a name from `quantsweep schemes`")
    q.add_argument("--k", type=int, default=0, help="keep the K most sensitive nodes in float")
    q.add_argument("--sensitivity", type=Path, help="ranking from `quantsweep sensitivity` (for K > 0)")
    q.add_argument("--calibration", help="int8: minmax|entropy|percentile; int8-trt: max|entropy")
    q.add_argument("--float-dtype", choices=("fp32", "fp16"),
                   help="precision of what stays unquantized (fp16 is what GPU deployment uses; fp32 is right on CPU)")
    _add_calib_args(q)
    q.add_argument("--imgsz", type=int, default=640, help="export size when --model is a .pt")
    q.add_argument("--out", type=Path, required=True, help="output folder")
    q.add_argument("--overwrite", action="store_true")
    q.add_argument("--trust-checkpoint", action="store_true",
                   help="fully unpickle a .pt even if it references more than model classes (can run code)")
    q.set_defaults(func=cmd_quantize)

    s = sub.add_parser("sensitivity", help="rank quantizable nodes by the damage of quantizing them")
    s.add_argument("--model", type=Path, required=True, help=".pt (Ultralytics) or FP32 .onnx")
    s.add_argument("--precision", choices=sorted(K_SCHEMES), default="int8",
                   help="rank on the graph of this scheme (int8: ORT placement; int8-trt/fp8: ModelOpt)")
    _add_calib_args(s)
    s.add_argument("--images", type=int, default=2, help="calibration images used for the probe (default 2)")
    s.add_argument("--probe-top", type=int, default=32,
                   help="nodes measured exactly after the local-error screen (default 32; 0 = every node)")
    s.add_argument("--imgsz", type=int, default=640, help="export size when --model is a .pt")
    s.add_argument("--out", type=Path, required=True, help="sensitivity JSON to write")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--trust-checkpoint", action="store_true",
                   help="fully unpickle a .pt even if it references more than model classes (can run code)")
    s.set_defaults(func=cmd_sensitivity)

    b = sub.add_parser("bench", help="latency/throughput of models, interleaved, with honest labels")
    b.add_argument("--model", type=Path, action="append", required=True,
                   help="ONNX model; repeat; the first is the FP32 reference")
    b.add_argument("--backend", action="append",
                   help="ort-cpu|ort-cuda|ort-trt|tensorrt|openvino; repeat (default ort-cpu)")
    b.add_argument("--batch", default="1", help="comma-separated batch sizes (default 1)")
    b.add_argument("--warmup", type=int, default=10)
    b.add_argument("--iters", type=int, help="timed runs per model (overrides --seconds)")
    b.add_argument("--seconds", type=float, default=10.0, help="timed seconds per model (default 10)")
    b.add_argument("--threads", type=int, help="intra-op threads (default: physical cores)")
    b.add_argument("--out", type=Path, required=True, help="bench JSON to write")
    b.add_argument("--overwrite", action="store_true")
    b.set_defaults(func=cmd_bench)

    n = sub.add_parser("env", help="versions, CPU/GPU, providers; checks there is one onnxruntime")
    n.set_defaults(func=cmd_env)
    return p


class _OneLineParser(argparse.ArgumentParser):
    """Argument errors in the catalogue's form: one line naming the value, and the fix."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise QuantsweepError(f"{self.prog}: {message}", f"see {self.prog} --help")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``quantsweep`` command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except QuantsweepError as exc:
        print(f"quantsweep: error: {exc}", file=sys.stderr)
        return exc.exit_code
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except QuantsweepError as exc:
        if args.debug:
            raise
        print(f"quantsweep: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("quantsweep: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user error: say so in one line
        if args.debug:
            raise
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        print(f"quantsweep: internal error: {type(exc).__name__}: {first} (rerun with --debug for the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
