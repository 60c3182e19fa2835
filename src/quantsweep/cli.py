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
                      dynamic_batch=args.dynamic_batch)
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
    print(args.out)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    import json

    from quantsweep.env import check_single_ort, collect_env

    print(json.dumps(collect_env(), indent=2))
    print(f"onnxruntime: {check_single_ort()} (exactly one distribution: OK)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="quantsweep", description="Low-precision study of a detector.")
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

    n = sub.add_parser("env", help="versions, CPU/GPU, providers; checks there is one onnxruntime")
    n.set_defaults(func=cmd_env)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``quantsweep`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
