"""The embedded demo world: a synthetic COCO-format dataset and a small YOLOv10 trained on it.

``materialize(out)`` writes the fixed layout that ``quantsweep demo --out DIR`` promises::

    DIR/model.pt                  the packaged checkpoint (YOLOv10n architecture, 5 classes)
    DIR/model.onnx                its FP32 export, end-to-end head [1,300,6], 320x320
    DIR/<split>/images/*.jpg      split in train, val, calib (calib is disjoint from val)
    DIR/<split>/annotations.json  COCO instances
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

__all__ = ["DEMO_IMGSZ", "checkpoint_path", "materialize"]

DEMO_IMGSZ = 320


def checkpoint_path() -> Path:
    """Path of the packaged demo checkpoint."""
    return Path(str(resources.files("quantsweep.demo") / "assets" / "demo_yolov10n.pt"))


def _complete(annotations: Path, count: int) -> bool:
    """Whether a split's annotations exist and list ``count`` images (an older, smaller split is redone)."""
    import json

    if not annotations.is_file():
        return False
    return len(json.loads(annotations.read_text()).get("images", [])) == count


def materialize(out: Path, splits: tuple[str, ...] = ("train", "val", "calib"),
                yolo_labels: bool = False) -> dict[str, Path]:
    """Write the demo world under ``out`` (skipping parts already complete); return what it wrote."""
    from quantsweep.demo.synth import SPLITS, write_split
    from quantsweep.model.export import export_onnx

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wrote: dict[str, Path] = {}
    pt = out / "model.pt"
    if not pt.exists():
        shutil.copyfile(checkpoint_path(), pt)
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
