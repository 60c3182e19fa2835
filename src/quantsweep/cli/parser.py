"""The ``quantsweep`` argument parser (flags and help only; :mod:`quantsweep.cli.main` runs them)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from quantsweep.demo import DEFAULT_DEMO, DEMOS
from quantsweep.errors import QuantsweepError
from quantsweep.runtimes import RUNTIMES, providers

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
    p.add_argument("--overwrite", action="store_true")
    if trust:
        add_trust_arg(p)


def build_parser(handlers: dict[str, Callable[[argparse.Namespace], int]]) -> argparse.ArgumentParser:
    """The ``quantsweep`` argument parser; ``handlers`` maps each command to its function."""
    from quantsweep.schemes import K_SCHEMES, canonical_name

    p = OneLineParser(prog="quantsweep", description="Low-precision study of a detector.")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="write the embedded demo world (model + synthetic COCO data)")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--yolo-labels", action="store_true", help="also write YOLO txt labels")
    d.add_argument("--demo", default=DEFAULT_DEMO, choices=list(DEMOS),
                   help=f"the packaged detector (default %(default)s): {'; '.join(f'{k}: {v[1]}' for k, v in DEMOS.items())}")
    d.set_defaults(func=handlers["demo"])

    e = sub.add_parser("export", help="Ultralytics .pt -> FP32 ONNX (ONNX passes through)")
    e.add_argument("--model", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--imgsz", type=int, default=640)
    e.add_argument("--opset", type=int, default=17)
    e.add_argument("--head", choices=("e2e", "raw"), default="e2e",
                   help="e2e: NMS-free [N,300,6]; raw: one-to-many [N,4+C,A] (needs NMS)")
    e.add_argument("--dynamic-batch", action="store_true")
    add_output_args(e, trust=True)
    e.set_defaults(func=handlers["export"])

    v = sub.add_parser("eval", help="COCO mAP of an ONNX detector on a fixed subset")
    v.add_argument("--model", type=Path, required=True)
    add_data_args(v)
    v.add_argument("--conf", type=float, default=0.001)
    v.add_argument("--iou", type=float, default=0.7)
    v.add_argument("--max-det", type=int, default=300)
    v.add_argument("--batch", type=int, default=1)
    v.add_argument("--imgsz", type=int, help="input size for models with dynamic height/width")
    v.add_argument("--provider", default="auto", help=f"{'|'.join(providers())} (default auto: CUDA when it runs "
                   "here, else CPU; an OpenVINO IR is scored by OpenVINO)")
    v.add_argument("--threads", type=int, help="intra-op threads (default: physical cores)")
    v.add_argument("--out", type=Path, required=True, help="metrics JSON to write")
    v.add_argument("--overwrite", action="store_true")
    v.set_defaults(func=handlers["eval"])

    pr = sub.add_parser("predict", help="run a model on photos: boxes drawn on them + detections JSON")
    pr.add_argument("--model", type=Path, required=True, help="an ONNX file or OpenVINO IR (.xml) quantsweep made")
    pr.add_argument("--images", type=Path, nargs="+", required=True, help="image files or folders")
    pr.add_argument("--out", type=Path, default=Path("predictions"), help="folder for drawn images + detections.json")
    pr.add_argument("--conf", type=float, default=0.25, help="score threshold (default 0.25)")
    pr.add_argument("--iou", type=float, default=0.7, help="NMS IoU for heads that need NMS (default 0.7)")
    pr.add_argument("--max-det", type=int, default=300)
    pr.add_argument("--provider", default="auto",
                    help=f"{'|'.join(providers())} (default auto: the first runtime that opens the file: OpenVINO "
                    "for .xml, ONNX Runtime CPU for .onnx)")
    pr.add_argument("--imgsz", type=int, help="input size for models with dynamic height/width")
    pr.add_argument("--overwrite", action="store_true")
    pr.set_defaults(func=handlers["predict"])

    r = sub.add_parser("run", help="the whole study; with no arguments, on the embedded demo")
    r.add_argument("--config", type=Path, help="YAML with the same keys as the flags (CLI wins)")
    r.add_argument("--model", type=Path, help=".pt or .onnx (default: the embedded demo detector)")
    r.add_argument("--demo", choices=list(DEMOS),
                   help=f"without --model: which packaged demo detector (default {DEFAULT_DEMO}; yolo26: YOLO26n)")
    add_data_args(r, subset=False)
    r.add_argument("--max-images", type=int, help="search subset: every candidate is scored on these (default 100)")
    r.add_argument("--confirm-images", type=int,
                   help="held-out images (after the search subset) that re-score the finalists (default 400; 0 = off); "
                        "with fewer than 2 x --max-images images, the images are split in halves")
    r.add_argument("--confirm-step", type=int, help="confirmation images added per round until decided (default 100)")
    r.add_argument("--finalists", type=int, help="candidates re-scored on the confirmation images (default 3)")
    r.add_argument("--image-ids", type=Path)
    r.add_argument("--calib-count", type=int, help="calibration image count (default 64)")
    r.add_argument("--calib-dir", type=Path,
                   help="calibration images: any folder of images, searched recursively (default: the demo calib split)")
    r.add_argument("--calib-annotations", type=Path,
                   help="optional COCO JSON of the calibration images (ids then name them in the run folder)")
    r.add_argument("--imgsz", type=int, help="export size for a .pt (default 320 demo / 640)")
    r.add_argument("--schemes", help="comma-separated (default: the registry's defaults, see quantsweep schemes)")
    r.add_argument("--grid", action="store_true", default=None,
                   help="build the fixed grid (every scheme at every K of --ks) instead of searching K per runtime")
    r.add_argument("--ks", help="with --grid: comma-separated K-set (default 0,5,10,20)")
    r.add_argument("--max-evals", type=int,
                   help="the search's cap on K>0 probes, each built, scored and timed (default 6)")
    r.add_argument("--backends", help=f"comma-separated, of {','.join(RUNTIMES)} (default: every one available)")
    r.add_argument("--batches", help="comma-separated batch sizes to benchmark (default 1)")
    r.add_argument("--budget", type=float, help="max mAP50-95 loss in points (default 1.0)")
    r.add_argument("--size", action="store_true", default=None,
                   help="also decide the smallest 4-bit file: search each 4-bit family's 8-bit convs against "
                        "--w4-budget/--w4a8-budget and confirm the picks (off by default: on a CPU 4-bit buys size, "
                        "not speed; the 4-bit K=0 candidates are in the table either way)")
    r.add_argument("--w4-budget", type=float,
                   help="max loss in points of the 4-bit (size) candidates; their 8-bit convs are searched "
                        "(default 2.0; giving it implies --size)")
    r.add_argument("--w4a8-budget", type=float,
                   help="the same for W4A8, whose int8 activations cost on top of its 4-bit weights "
                        "(default 3.5; giving it implies --size)")
    r.add_argument("--target-backend", help="backend the recommendation is for (default: fastest)")
    r.add_argument("--bench-seconds", type=float, help="timed seconds per model and backend (default 5)")
    r.add_argument("--sensitivity-images", type=int, help="images for the sensitivity probe (default 8)")
    r.add_argument("--sensitivity-probe-top", type=int,
                   help="nodes measured exactly after the local-error screen (default 32; 0 = every node)")
    r.add_argument("--bootstrap", type=int,
                   help="paired bootstrap resamples for ΔmAP's interval and standard error (default 2000, min 200)")
    r.add_argument("--alpha", type=float,
                   help="chance of confirming a pick whose true loss exceeds the budget, over all looks and "
                        "finalists (default 0.05)")
    r.add_argument("--alpha-spending", choices=("obf", "pocock"),
                   help="how alpha is spent over the confirmation looks (default obf: O'Brien-Fleming)")
    r.add_argument("--seed", type=int)
    r.add_argument("--gallery", type=int, help="image pairs the report shows where the pick changed most (default 12)")
    r.add_argument("--gallery-conf", type=float, help="score threshold of the gallery's boxes (default 0.25)")
    r.add_argument("--out", type=Path, help="runs folder (default runs/)")
    r.add_argument("--resume", type=Path, help="finish an interrupted run folder")
    r.add_argument("--jobs", type=int, help="parallel builds/evals (default 1)")
    r.add_argument("--executor", choices=["local", "ray"], help="where steps run (default local; ray: a Ray cluster)")
    r.add_argument("--ray-address", help="auto | HOST:PORT | ray://HOST:PORT (default: a private local Ray)")
    r.add_argument("--eval-shards", type=int, help="split each evaluation into N image shards (default 1)")
    r.add_argument("--bench-on", help="BACKEND=RESOURCE[,...]: time that backend only on nodes carrying RESOURCE")
    r.add_argument("--shared-dir", action="store_true", default=None,
                   help="ray: the run folder and the data are on a filesystem every node sees at the same path "
                        "(workers read and write in place; default: files travel through Ray's object store)")
    r.add_argument("--dry-run", action="store_true", help="write the resolved config and exit")
    r.add_argument("--quiet", action="store_true", help="no progress display")
    r.add_argument("--log-json", type=Path, help="append JSON-lines events to this file")
    add_trust_arg(r)
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
    s.add_argument("--images", type=int, default=8, help="calibration images used for the probe (default 8)")
    s.add_argument("--probe-top", type=int, default=32,
                   help="nodes measured exactly after the local-error screen (default 32; 0 = every node)")
    s.add_argument("--imgsz", type=int, default=640, help="export size when --model is a .pt")
    s.add_argument("--out", type=Path, required=True, help="sensitivity JSON to write")
    add_output_args(s, trust=True)
    s.set_defaults(func=handlers["sensitivity"])

    b = sub.add_parser("bench", help="latency/throughput of models, interleaved, with honest labels")
    b.add_argument("--model", type=Path, action="append", required=True,
                   help="ONNX model; repeat; the first is the FP32 reference")
    b.add_argument("--backend", action="append",
                   help=f"{'|'.join(RUNTIMES)}; repeat (default ort-cpu)")
    b.add_argument("--batch", default="1", help="comma-separated batch sizes (default 1)")
    b.add_argument("--warmup", type=int, default=10)
    b.add_argument("--iters", type=int, help="timed runs per model (overrides --seconds)")
    b.add_argument("--seconds", type=float, default=10.0, help="timed seconds per model (default 10)")
    b.add_argument("--threads", type=int, help="intra-op threads (default: physical cores)")
    b.add_argument("--out", type=Path, required=True, help="bench JSON to write")
    b.add_argument("--overwrite", action="store_true")
    b.set_defaults(func=handlers["bench"])

    n = sub.add_parser("env", help="versions, CPU/GPU, providers; checks there is one onnxruntime")
    n.set_defaults(func=handlers["env"])
    return p
