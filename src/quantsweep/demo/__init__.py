"""The embedded demo world: a synthetic COCO-format dataset and two small detectors trained on it.

:data:`DEMOS` names the packaged detectors: ``yolov10n`` (the default: YOLOv10 architecture, NMS-free
with a DFL box head) and ``yolo26`` (YOLO26n: NMS-free, no DFL — its box regression convs feed the
decode directly). Both are trained from scratch on the same synthetic data by
``scripts/train_demo_model.py``.

``materialize(out, demo=...)`` writes the fixed layout that ``quantsweep demo --out DIR`` promises::

    DIR/model.pt                  the packaged checkpoint (5 classes)
    DIR/model.onnx                its FP32 export, end-to-end head [1,300,6], 320x320
    DIR/<split>/images/*.jpg      split in train, val, calib (calib is disjoint from val)
    DIR/<split>/annotations.json  COCO instances
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

__all__ = ["DEFAULT_DEMO", "DEMOS", "DEMO_IMGSZ", "checkpoint_path", "check_demo", "materialize"]

DEMO_IMGSZ = 320

#: the packaged demo detectors: name -> (checkpoint in assets/, what it is)
DEMOS: dict[str, tuple[str, str]] = {
    "yolov10n": ("demo_yolov10n.pt", "YOLOv10n (NMS-free, DFL box head)"),
    "yolo26": ("demo_yolo26n.pt", "YOLO26n (NMS-free, no DFL: one-to-one box regression)"),
}
DEFAULT_DEMO = "yolov10n"


def check_demo(name: str) -> str:
    """``name`` when it is a packaged demo detector.

    Raises:
        QuantsweepError: an unknown name (the message lists the known ones).
    """
    from quantsweep.errors import QuantsweepError

    if name not in DEMOS:
        raise QuantsweepError(f"unknown demo detector {name!r}", f"use --demo {' or --demo '.join(DEMOS)}", "demo")
    return name


def checkpoint_path(demo: str = DEFAULT_DEMO) -> Path:
    """Path of a packaged demo checkpoint (``demo``: a key of :data:`DEMOS`)."""
    return Path(str(resources.files("quantsweep.demo") / "assets" / DEMOS[check_demo(demo)][0]))


def _complete(annotations: Path, count: int) -> bool:
    """Whether a split's annotations exist and list ``count`` images (an older, smaller split is redone)."""
    import json

    if not annotations.is_file():
        return False
    return len(json.loads(annotations.read_text()).get("images", [])) == count


def materialize(out: Path, splits: tuple[str, ...] = ("train", "val", "calib"),
                yolo_labels: bool = False, demo: str = DEFAULT_DEMO) -> dict[str, Path]:
    """Write the demo world with the ``demo`` detector under ``out`` (skipping parts already complete);
    return what it wrote."""
    from quantsweep.demo.synth import SPLITS, write_split
    from quantsweep.model.export import export_onnx

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wrote: dict[str, Path] = {}
    pt, packaged = out / "model.pt", checkpoint_path(demo)
    if not pt.exists():
        shutil.copyfile(packaged, pt)
    elif pt.read_bytes() != packaged.read_bytes():  # another demo's world: its export would not match
        from quantsweep.errors import QuantsweepError

        raise QuantsweepError(f"{pt} is not the {demo} demo detector (that folder holds another demo or model)",
                              "choose an empty --out for this demo")
    wrote["model.pt"] = pt
    onnx_path = out / "model.onnx"
    if not onnx_path.exists():
        export_onnx(pt, onnx_path, imgsz=DEMO_IMGSZ, head="e2e")
    wrote["model.onnx"] = onnx_path
    for split in splits:
        ann = out / split / "annotations.json"
        if not _complete(ann, SPLITS[split]):  # annotations are written last: complete when they list all
            write_split(out / split, split, yolo_labels=yolo_labels)
        wrote[f"{split}/images"] = out / split / "images"
        wrote[f"{split}/annotations.json"] = ann
    return wrote
