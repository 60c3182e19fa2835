"""The ``quantsweep`` argument parser (flags and help only; :mod:`quantsweep.cli.main` runs them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quantsweep.demo import DEFAULT_DEMO, DEMOS
from quantsweep.errors import QuantsweepError
from quantsweep.runtimes import RUNTIMES, providers
from quantsweep.sweep.settings import OLD_SPELLINGS, settings

__all__ = ["OneLineParser", "add_calib_args", "add_data_args", "build_parser"]


class OneLineParser(argparse.ArgumentParser):
    """Argument errors in the catalogue's form: one line naming the value, and the fix."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise QuantsweepError(f"{self.prog}: {message}", f"see {self.prog} --help")


def add_data_args(p: argparse.ArgumentParser, subset: bool = True) -> None:
    g = p.add_argument_group("dataset (COCO format)")
    g.add_argument("--images", type=Path, help="folder with the images")
    g.add_argument("--annotations", type=Path, help="COCO instances JSON")
    g.add_argument("--data", type=Path,
                   help="COCO 2017 root: ROOT/val2017/ + ROOT/annotations/instances_val2017.json")
    if subset:
        g.add_argument("--max-images", type=int, default=100,
                       help="evaluate the first N image ids in ascending order (default 100)")
        g.add_argument("--image-ids", type=Path, help="text file of image ids to evaluate, one per line")


def add_calib_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calib-dir", type=Path, required=True,
                   help="calibration images: any folder of images, searched recursively (never the evaluation subset)")
    p.add_argument("--calib-annotations", type=Path,
                   help="optional COCO JSON listing them (default: annotations.json beside the folder, if any)")
    p.add_argument("--calib-count", type=int, default=64, help="number of calibration images (default 64)")


def add_trust_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="fully unpickle a .pt even if it references more than model classes (can run code)")


def add_output_args(p: argparse.ArgumentParser, trust: bool = False) -> None:
    """``--overwrite`` (and ``--trust-checkpoint`` for commands that read a .pt)."""
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (default: refuse)")
    if trust:
        add_trust_arg(p)


def _noting(base: type[argparse.Action]) -> type[argparse.Action]:
    """``base`` that also records one note when the flag was given by an old spelling."""

    class Noting(base):  # type: ignore[valid-type,misc]
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: str | None = None) -> None:
            if option_string != self.option_strings[0] and option_string in OLD_SPELLINGS:  # an alias, not the name
                notes = getattr(namespace, "notes", None) or set()
                notes.add(f"note: {option_string} is now {OLD_SPELLINGS[option_string]} (one name per setting in "
                          "every command); the old spelling still works")
                namespace.notes = notes
            super().__call__(parser, namespace, values, option_string)

    return Noting


_NOTING_STORE, _NOTING_APPEND = _noting(argparse._StoreAction), _noting(argparse._AppendAction)
_TYPES: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "path": Path, "str": str, "list": str,
                                             "int-list": str}


def add_setting(p: argparse.ArgumentParser, name: str, *old: str, append: bool = False, extra: str = "",
                **kw: Any) -> None:
    """The flag of setting ``name`` (its declared flag, type and help; :mod:`quantsweep.sweep.settings`),
    also accepting the ``old`` spellings a command used before."""
    spec = next(s for s in settings() if s.name == name)
    help_text = f"{spec.help} {extra}".strip()
    if spec.kind == "bool":
        action: Any = argparse.BooleanOptionalAction if spec.default is True else "store_true"
        p.add_argument(spec.flag, *old, action=action, default=kw.pop("default", None), help=help_text, **kw)
        return
    p.add_argument(spec.flag, *old, action=_NOTING_APPEND if append else _NOTING_STORE, type=_TYPES[spec.kind],
                   choices=kw.pop("choices", spec.choices), help=help_text, **kw)


def add_settings(p: argparse.ArgumentParser) -> None:
    """Every sweep setting as a ``quantsweep run`` flag (defaults stay unset: config.yaml, then the
    config's defaults, fill what the command line does not give)."""
    for spec in settings():
        shown = ("" if spec.default in (None, ()) or spec.kind == "bool" or "(default" in spec.help
                 else f"(default {spec.default_text()})")
        if spec.name == "demo":
            add_setting(p, "demo", choices=list(DEMOS), extra=f"(default {DEFAULT_DEMO}; yolo26: YOLO26n)")
        elif spec.name == "backends":
            add_setting(p, "backends", extra=f"— known: {', '.join(RUNTIMES)}")
        else:
            add_setting(p, spec.name, extra=shown)


def build_parser(handlers: dict[str, Callable[[argparse.Namespace], int]]) -> argparse.ArgumentParser:
    """The ``quantsweep`` argument parser; ``handlers`` maps each command to its function."""
    from quantsweep.schemes import K_SCHEMES, canonical_name

    p = OneLineParser(prog="quantsweep", description="Low-precision study of a detector.")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="write the embedded demo world (model + synthetic COCO data)")
    d.add_argument("--out", type=Path, required=True, help="folder to write the demo world into")
    d.add_argument("--yolo-labels", action="store_true", help="also write YOLO txt labels")
    d.add_argument("--demo", default=DEFAULT_DEMO, choices=list(DEMOS),
                   help=f"the packaged detector (default %(default)s): {'; '.join(f'{k}: {v[1]}' for k, v in DEMOS.items())}")
    d.set_defaults(func=handlers["demo"])

    e = sub.add_parser("export", help="Ultralytics .pt -> FP32 ONNX (ONNX passes through)")
    e.add_argument("--model", type=Path, required=True, help="Ultralytics .pt (an .onnx passes through)")
    e.add_argument("--out", type=Path, required=True, help="the FP32 ONNX to write")
    e.add_argument("--imgsz", type=int, default=640, help="input size (default 640)")
    e.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    e.add_argument("--head", choices=("e2e", "raw"), default="e2e",
                   help="e2e: NMS-free [N,300,6]; raw: one-to-many [N,4+C,A] (needs NMS)")
    e.add_argument("--dynamic-batch", action="store_true", help="a dynamic batch dimension (default: batch 1)")
    add_output_args(e, trust=True)
    e.set_defaults(func=handlers["export"])

    v = sub.add_parser("eval", help="COCO mAP of an ONNX detector on a fixed subset")
    v.add_argument("--model", type=Path, required=True, help="an ONNX file or OpenVINO IR (.xml)")
    add_data_args(v)
    add_setting(v, "conf", default=0.001, extra="(default 0.001)")
    add_setting(v, "iou", default=0.7, extra="(default 0.7)")
    add_setting(v, "max_det", default=300, extra="(default 300)")
    v.add_argument("--batch", type=int, default=1, help="images per inference call (default 1)")
    v.add_argument("--imgsz", type=int, help="input size for models with dynamic height/width")
    v.add_argument("--provider", default="auto", help=f"{'|'.join(providers())} (default auto: CUDA when it runs "
                   "here, else CPU; an OpenVINO IR is scored by OpenVINO)")
    v.add_argument("--threads", type=int, help="intra-op threads (default: physical cores)")
    v.add_argument("--out", type=Path, required=True, help="metrics JSON to write")
    v.add_argument("--overwrite", action="store_true", help="replace an existing output (default: refuse)")
    v.set_defaults(func=handlers["eval"])

    pr = sub.add_parser("predict", help="run a model on photos: boxes drawn on them + detections JSON")
    pr.add_argument("--model", type=Path, required=True, help="an ONNX file or OpenVINO IR (.xml) quantsweep made")
    pr.add_argument("--images", type=Path, nargs="+", required=True, help="image files or folders")
    pr.add_argument("--out", type=Path, default=Path("predictions"), help="folder for drawn images + detections.json")
    pr.add_argument("--conf", type=float, default=0.25, help="score threshold (default 0.25)")
    pr.add_argument("--iou", type=float, default=0.7, help="NMS IoU for heads that need NMS (default 0.7)")
    pr.add_argument("--max-det", type=int, default=300, help="detections kept per image (default 300)")
    pr.add_argument("--provider", default="auto",
                    help=f"{'|'.join(providers())} (default auto: the first runtime that opens the file: OpenVINO "
                    "for .xml, ONNX Runtime CPU for .onnx)")
    pr.add_argument("--imgsz", type=int, help="input size for models with dynamic height/width")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing output (default: refuse)")
    pr.set_defaults(func=handlers["predict"])

    r = sub.add_parser("run", help="the whole study; with no arguments, on the embedded demo")
    r.add_argument("--config", type=Path, help="YAML with the same keys as the flags (CLI wins)")
    add_settings(r)
    r.add_argument("--resume", type=Path, help="finish an interrupted run folder")
    r.add_argument("--dry-run", action="store_true", help="write the resolved config and exit")
    r.add_argument("--quiet", action="store_true", help="no progress display")
    r.add_argument("--log-json", type=Path, help="append JSON-lines events to this file")
    r.set_defaults(func=handlers["run"])

    sc = sub.add_parser("schemes", help="list the quantization schemes")
    sc.set_defaults(func=handlers["schemes"])

    q = sub.add_parser("quantize", help="build one candidate: <out>/<name>.onnx + <name>.scheme.json")
    q.add_argument("--model", type=Path, required=True, help=".pt (Ultralytics) or FP32 .onnx")
    q.add_argument("--scheme", required=True, help="a name from `quantsweep schemes`")
    q.add_argument("--k", type=int, default=0, help="keep the K most sensitive nodes in float")
    q.add_argument("--sensitivity", type=Path, help="ranking from `quantsweep sensitivity` (for K > 0)")
    q.add_argument("--calibration", help="int8: minmax|entropy|percentile; w4a8-graph-*: its activation ranges, "
                   "minmax|percentile|entropy; int8-trt: max|entropy")
    q.add_argument("--float-dtype", choices=("fp32", "fp16"),
                   help="precision of what stays unquantized (fp16 is what GPU deployment uses; fp32 is right on CPU)")
    add_calib_args(q)
    q.add_argument("--imgsz", type=int, default=640, help="export size when --model is a .pt")
    q.add_argument("--out", type=Path, required=True, help="output folder")
    add_output_args(q, trust=True)
    q.set_defaults(func=handlers["quantize"])

    s = sub.add_parser("sensitivity", help="rank quantizable nodes by the damage of quantizing them")
    s.add_argument("--model", type=Path, required=True, help=".pt (Ultralytics) or FP32 .onnx")
    s.add_argument("--precision", type=canonical_name, choices=sorted(K_SCHEMES), default="int8-qdq",
                   help="rank on the graph of this scheme (int8-qdq: ORT placement; int8-trt/fp8-qdq: ModelOpt)")
    add_calib_args(s)
    add_setting(s, "sensitivity_images", "--images", default=8, extra="(default 8)")
    add_setting(s, "sensitivity_probe_top", "--probe-top", default=32, extra="(default 32)")
    s.add_argument("--imgsz", type=int, default=640, help="export size when --model is a .pt")
    s.add_argument("--out", type=Path, required=True, help="sensitivity JSON to write")
    add_output_args(s, trust=True)
    s.set_defaults(func=handlers["sensitivity"])

    b = sub.add_parser("bench", help="latency/throughput of models, interleaved, with honest labels")
    b.add_argument("--model", type=Path, action="append", required=True,
                   help="ONNX model; repeat; the first is the FP32 reference")
    add_setting(b, "backends", "--backend", append=True, default=None,
                extra=f"— known: {', '.join(RUNTIMES)}; repeat or comma-separate (default here: ort-cpu)")
    add_setting(b, "batches", "--batch", default="1", extra="(default 1)")
    add_setting(b, "bench_warmup", "--warmup", default=10, extra="(default here: 10)")
    b.add_argument("--iters", type=int, help="timed runs per model (overrides --bench-seconds)")
    add_setting(b, "bench_seconds", "--seconds", default=10.0, extra="(default here: 10)")
    b.add_argument("--threads", type=int, help="intra-op threads (default: physical cores)")
    b.add_argument("--out", type=Path, required=True, help="bench JSON to write")
    b.add_argument("--overwrite", action="store_true", help="replace an existing output (default: refuse)")
    b.set_defaults(func=handlers["bench"])

    pf = sub.add_parser("profile", help="where the time goes: a model's per-node profile on each runtime")
    pf.add_argument("--model", type=Path, required=True, help="an ONNX file or OpenVINO IR (.xml)")
    add_setting(pf, "backends", append=True, default=None,
                extra="— profiled: openvino, ort-cpu; repeat or comma-separate (default here: both, where they open "
                      "the file)")
    pf.add_argument("--runs", type=int, default=50, help="profiled calls after 3 warm-up calls (default 50)")
    pf.add_argument("--threads", type=int, help="threads (default: physical cores)")
    pf.add_argument("--out", type=Path, help="profile JSON to write (default: print only)")
    add_output_args(pf)
    pf.set_defaults(func=handlers["profile"])

    n = sub.add_parser("env", help="versions, CPU/GPU, providers; checks there is one onnxruntime")
    n.set_defaults(func=handlers["env"])
    return p
