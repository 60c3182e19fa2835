"""Command line: parse flags, call the library, print. Nothing else lives here.

Errors the user can fix are one line on stderr and exit code 2; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from quantsweep.errors import QuantsweepError, first_line

__all__ = ["main"]


def _dataset(args: argparse.Namespace):  # noqa: ANN202
    from quantsweep.data.coco import coco2017_paths, load_dataset

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

    wrote = materialize(args.out, yolo_labels=args.yolo_labels, demo=args.demo)
    for name, path in wrote.items():
        print(f"{name:28s} {path}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from quantsweep.model.export import export_onnx
    from quantsweep.model.formats import inspect_model

    _refuse_overwrite(args.out, args.overwrite)
    out = export_onnx(args.model, args.out, imgsz=args.imgsz, opset=args.opset, head=args.head,
                      dynamic_batch=args.dynamic_batch, trust_checkpoint=args.trust_checkpoint)
    info = inspect_model(out, args.imgsz)
    print(f"FP32 ONNX: input {list(info.input_shape)}, outputs {[list(s) for s in info.output_shapes]}, "
          f"layout {info.layout}, opset {info.opset}")
    print(out)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from quantsweep.data.coco import select_ids
    from quantsweep.evaluate.run import EvalSettings, evaluate

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


def cmd_predict(args: argparse.Namespace) -> int:
    from quantsweep.evaluate.photos import Detector, find_images, predict_photos, write_summary

    images = find_images(args.images)
    _refuse_overwrite(args.out / "detections.json", args.overwrite)
    detector = Detector(args.model, args.provider, args.conf, args.iou, args.max_det, args.imgsz)
    result = predict_photos(detector, images, args.out)
    print(f"{len(result['detections'])} boxes on {len(images)} images by {args.model} "
          f"({result['runtime']}, layout {result['layout']}, conf {args.conf}, iou {args.iou}):")
    print(write_summary(result))
    print(args.out / "detections.json")
    return 0


def cmd_schemes(args: argparse.Namespace) -> int:
    from quantsweep.results import precision_label
    from quantsweep.schemes import REGISTRY

    print("| name | candidate file | quantized | K = | default | needs | what |")
    print("|---|---|---|---|---|---|---|")
    for name, s in REGISTRY.items():
        missing = s.missing()
        needs = "core" if s.extra is None else f"[{s.extra}]" + (" (not installed)" if missing else "")
        scheme = s.make()
        keeps = (f"{'convs kept at 8 bits' if scheme.traits.k_keeps == '8-bit' else 'layers kept float'}"
                 if s.k_sets else "—")
        print(f"| {name} | {scheme.name}{scheme.traits.suffix} | {precision_label(scheme)} | {keeps} | "
              f"{'yes' if s.default else ''} | "
              f"{needs} | {s.description} |")
    return 0


def _calib_set(args: argparse.Namespace, hw: tuple[int, int]):  # noqa: ANN202
    """Calibration images: --calib-dir DIR (first --calib-count), labelled by ids when a COCO JSON is given."""
    from quantsweep.data.calibration import CalibSet
    from quantsweep.data.coco import load_dataset

    folder, ann = args.calib_dir, args.calib_annotations
    if ann is None and (folder.parent / "annotations.json").is_file():  # the demo's split layout
        ann = folder.parent / "annotations.json"
    if ann is None:
        return CalibSet.from_folder(folder, args.calib_count, hw)
    return CalibSet.from_dataset(load_dataset(folder, ann), args.calib_count, hw)


def _baseline(model: Path, work: Path, imgsz: int, trust: bool = False) -> tuple[Path, Path | None]:
    """(FP32 ONNX, .pt or None) for a --model given as .pt or .onnx."""
    from quantsweep.model.export import export_onnx

    if model.suffix.lower() in (".pt", ".pth"):
        return export_onnx(model, work / f"{model.stem}.fp32.onnx", imgsz=imgsz, trust_checkpoint=trust), model
    return export_onnx(model, work / model.name, imgsz=imgsz), None


def cmd_sensitivity(args: argparse.Namespace) -> int:
    import tempfile

    from quantsweep.files import atomic_write_json
    from quantsweep.model.formats import inspect_model
    from quantsweep.quantize.ranking import compute_sensitivity
    from quantsweep.quantize.sensitivity import ranking_markdown

    _refuse_overwrite(args.out, args.overwrite)
    with tempfile.TemporaryDirectory(prefix="qs-sens-") as tmp:
        fp32, pt = _baseline(args.model, Path(tmp), args.imgsz, args.trust_checkpoint)
        calib = _calib_set(args, inspect_model(fp32).hw or (args.imgsz, args.imgsz))
        result = compute_sensitivity(fp32, pt, calib, args.precision, Path(tmp), args.sensitivity_images,
                                     args.sensitivity_probe_top)
    atomic_write_json(args.out, result)
    print(ranking_markdown(result, 20))
    print(args.out)
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from quantsweep.model.formats import inspect_model
    from quantsweep.quantize.build import candidate_path, materialize
    from quantsweep.quantize.ranking import compute_sensitivity
    from quantsweep.schemes import BuildContext, make_scheme

    work = Path(tempfile.mkdtemp(prefix="qs-quant-"))
    fp32, pt = _baseline(args.model, work, args.imgsz, args.trust_checkpoint)
    overrides = {"k": args.k}
    if args.calibration:  # the graph W4A8's activation ranges, or an INT8/FP8 scheme's calibration
        from quantsweep.schemes import spec

        entry = spec(args.scheme)
        entry = spec(entry.onnx_only) if pt is None and entry.onnx_only else entry  # as make_scheme resolves it
        overrides["act_calibration" if hasattr(entry.cls, "act_calibration") else "calibration"] = args.calibration
    if args.float_dtype:
        overrides["float_dtype"] = args.float_dtype
    scheme = make_scheme(args.scheme, onnx_only=pt is None, **overrides)
    target = candidate_path(args.out, scheme)
    _refuse_overwrite(target, args.overwrite)
    calib = _calib_set(args, inspect_model(fp32).hw or (args.imgsz, args.imgsz))
    ranking = None
    if args.k:
        if args.sensitivity is not None:
            if not args.sensitivity.is_file():
                raise QuantsweepError(f"sensitivity file not found: {args.sensitivity}",
                                      "pass a file written by quantsweep sensitivity")
            ranking = json.loads(args.sensitivity.read_text())["ranking"]
        else:
            ranking = compute_sensitivity(fp32, pt, calib, scheme.registry, work)["ranking"]
    cand = materialize(scheme, BuildContext(fp32, pt, calib, work, args.trust_checkpoint), args.out, ranking)
    rec = cand.record
    print(f"{cand.name}: {rec['tool']} {rec['tool_version']}, {rec['size_mb']} MB, "
          f"{rec['kept_float_count']} node(s) kept in float, Q/DQ {rec['hygiene'].get('qdq_after', 'n/a (IR)')}, "
          f"built in {rec['build_s']} s; scheme: {cand.scheme_path}")
    print(cand.model_path)
    return 0


def _listed(given: list[str] | None, default: str) -> list[str]:
    """A repeatable, comma-separable flag's values (``--backends a,b --backends c``), else ``default``'s."""
    return [x.strip() for text in (given or [default]) for x in text.split(",") if x.strip()]


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise QuantsweepError(f"{text!r} is not a comma-separated list of integers", "pass e.g. 1,8") from None


def cmd_bench(args: argparse.Namespace) -> int:
    from quantsweep.bench.measure import bench_markdown, benchmark
    from quantsweep.files import atomic_write_json
    from quantsweep.runtimes.base import BenchSettings

    settings = BenchSettings(backends=tuple(_listed(args.backends, "ort-cpu")), batches=_int_list(args.batches),
                             warmup=args.bench_warmup, iters=args.iters, seconds=args.bench_seconds,
                             threads=args.threads)
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


def cmd_run(args: argparse.Namespace) -> int:
    import json as _json

    from quantsweep.files import atomic_write_text
    from quantsweep.sweep.config import SweepConfig
    from quantsweep.sweep.runner import run_sweep

    # every run flag is a SweepConfig field of the same name (tests/unit/test_config.py checks both ways)
    cli = {k: getattr(args, k) for k in SweepConfig.field_names() if hasattr(args, k)}
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
    from quantsweep.cli.progress import SweepProgress

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
    from quantsweep.report.terminal import terminal_summary

    summary = _json.loads((result.run_dir / "results" / "summary.json").read_text())
    width = shutil.get_terminal_size((100, 24)).columns
    print(terminal_summary(summary, result.run_dir, width))
    if result.cost:
        from quantsweep.env import cpu_class, cpu_info
        from quantsweep.report.cost import cost_line

        print(cost_line(result.cost, result.wall_s, cpu_class(cpu_info()), width))
    print(result.run_dir)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from quantsweep.bench.profile import PROFILED, profile_model, profile_text
    from quantsweep.files import ModelFile, atomic_write_json

    if args.out is not None:
        _refuse_overwrite(args.out, args.overwrite)
    asked = _listed(args.backends, ",".join(PROFILED))
    if ModelFile.of(args.model).format.name != "onnx" and not args.backends:
        asked = [b for b in asked if b != "ort-cpu"]  # ONNX Runtime cannot open an IR
    out = {b: profile_model(args.model, b, args.runs, args.threads) for b in asked}
    for p in out.values():
        print(profile_text(p), end="\n\n")
    if args.out is not None:
        atomic_write_json(args.out, out)
        print(args.out)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    import json

    from quantsweep.env import check_single_ort, collect_env

    print(json.dumps(collect_env(), indent=2))
    print(extras_table())
    print(f"onnxruntime: {check_single_ort()} (exactly one distribution: OK)")
    return 0


# what each install extra brings beyond the registries' schemes and backends
_EXTRA_ALSO = {"ultralytics": (("torch", "ultralytics"), ".pt models (export, checkpoints) and the demo"),
               "modelopt": (("modelopt",), "--float-dtype fp16 conversion"),
               "openvino": (("openvino", "nncf"), ""),
               "ray": (("ray",), "--executor ray: a sweep on a Ray cluster (sharded evaluations, --bench-on)")}


def extras_table() -> str:
    """Which install extra enables which schemes, backends and inputs, and whether it is installed here."""
    import importlib.util

    from quantsweep.runtimes import RUNTIMES
    from quantsweep.schemes import REGISTRY

    lines = ["| extra | installed | schemes | backends | also |", "|---|---|---|---|---|"]
    core_schemes = [n for n, s in REGISTRY.items() if s.extra is None]
    core_backends = [n for n, b in RUNTIMES.items() if getattr(b, "extra", None) is None]
    lines.append(f"| core | yes | {', '.join(core_schemes)} | {', '.join(core_backends)} | ONNX models, evaluation, "
                 "report |")
    for extra, (modules, also) in _EXTRA_ALSO.items():
        ok = all(importlib.util.find_spec(m) is not None for m in modules)
        schemes = [n for n, s in REGISTRY.items() if s.extra == extra]
        backends = [n for n, b in RUNTIMES.items() if getattr(b, "extra", None) == extra]
        lines.append(f"| [{extra}] | {'yes' if ok else 'no'} | {', '.join(schemes) or '—'} | "
                     f"{', '.join(backends) or '—'} | {also or '—'} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The ``quantsweep`` argument parser wired to this module's commands."""
    from quantsweep.cli import parser as cli_parser

    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
                "demo": cmd_demo, "export": cmd_export, "eval": cmd_eval, "predict": cmd_predict, "run": cmd_run,
                "schemes": cmd_schemes,
                "quantize": cmd_quantize, "sensitivity": cmd_sensitivity, "bench": cmd_bench, "profile": cmd_profile,
                "env": cmd_env}
    return cli_parser.build_parser(handlers)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``quantsweep`` command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except QuantsweepError as exc:
        print(f"quantsweep: error: {exc.as_flag()}", file=sys.stderr)
        return exc.exit_code
    for note in sorted(getattr(args, "notes", None) or ()):
        print(note, file=sys.stderr)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except QuantsweepError as exc:
        if args.debug:
            raise
        print(f"quantsweep: error: {exc.as_flag()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("quantsweep: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user error: say so in one line
        if args.debug:
            raise
        first = first_line(exc)
        print(f"quantsweep: internal error: {type(exc).__name__}: {first} (rerun with --debug for the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
