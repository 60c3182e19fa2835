"""``recommended/`` in the layouts Ultralytics loads, so ``yolo predict|val model=recommended/...`` work.

Ultralytics reads an exported model's metadata (class names, image size, stride, task, export
args) from the ONNX file's ``metadata_props``, or for an OpenVINO IR from ``metadata.yaml`` in a
folder named ``<name>_openvino_model/``. quantsweep takes that metadata from the FP32 ONNX it
started from (Ultralytics' own export writes it) and puts it where Ultralytics looks: the shipped
ONNX gets any key it lost in quantization; an IR gets its ``_openvino_model/`` folder (its files
hard-linked, so no second copy on disk where the filesystem allows).
"""

from __future__ import annotations

from pathlib import Path

from quantsweep.files import ModelFile
from quantsweep.model.formats import format_of

__all__ = ["ultralytics_layout", "ultralytics_metadata"]



def ultralytics_metadata(fp32_onnx: Path) -> dict[str, str]:
    """The Ultralytics metadata of ``fp32_onnx`` as stored there (strings), or {} without class names."""
    import onnx

    if not Path(fp32_onnx).is_file():
        return {}
    props = {p.key: p.value for p in onnx.load(str(fp32_onnx), load_external_data=False).metadata_props}
    return props if "names" in props and "imgsz" in props else {}


def ultralytics_layout(model: ModelFile, meta: dict[str, str]) -> Path | None:
    """Make ``model`` (in ``recommended/``) loadable by Ultralytics with ``meta`` (the FP32 model's,
    :func:`ultralytics_metadata`): its format's layout (:mod:`quantsweep.model.formats`); the path to
    give ``YOLO(...)``, or None without metadata (not an Ultralytics export)."""
    if not meta:
        return None
    return format_of(model.path).ultralytics_layout(model, meta)
