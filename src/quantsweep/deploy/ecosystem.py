"""``recommended/`` in the layouts Ultralytics loads, so ``yolo predict|val model=recommended/...`` work.

Ultralytics reads an exported model's metadata (class names, image size, stride, task, export
args) from the ONNX file's ``metadata_props``, or for an OpenVINO IR from ``metadata.yaml`` in a
folder named ``<name>_openvino_model/``. quantsweep takes that metadata from the FP32 ONNX it
started from (Ultralytics' own export writes it) and puts it where Ultralytics looks: the shipped
ONNX gets any key it lost in quantization; an IR gets its ``_openvino_model/`` folder (its files
hard-linked, so no second copy on disk where the filesystem allows).
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from quantsweep.files import OPENVINO_IR, ModelFile, atomic_replace, atomic_write_text

__all__ = ["ultralytics_layout", "ultralytics_metadata"]

_INTS = ("stride", "batch", "channels")
_LITERALS = ("imgsz", "names", "args", "end2end", "kpt_shape")


def ultralytics_metadata(fp32_onnx: Path) -> dict[str, str]:
    """The Ultralytics metadata of ``fp32_onnx`` as stored there (strings), or {} without class names."""
    import onnx

    if not Path(fp32_onnx).is_file():
        return {}
    props = {p.key: p.value for p in onnx.load(str(fp32_onnx), load_external_data=False).metadata_props}
    return props if "names" in props and "imgsz" in props else {}


def _parsed(meta: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in meta.items():
        try:
            out[k] = int(v) if k in _INTS else ast.literal_eval(v) if k in _LITERALS else v
        except (ValueError, SyntaxError):
            out[k] = v
    return out


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        atomic_replace(src, dst, copy=True)


def ultralytics_layout(model: ModelFile, meta: dict[str, str]) -> Path | None:
    """Make ``model`` (in ``recommended/``) loadable by Ultralytics with ``meta`` (the FP32 model's,
    :func:`ultralytics_metadata`); the path to give ``YOLO(...)``, or None without metadata (not an
    Ultralytics export)."""
    if not meta:
        return None
    if model.format is OPENVINO_IR:
        import yaml

        folder = model.path.parent / f"{model.path.stem}_openvino_model"
        folder.mkdir(parents=True, exist_ok=True)
        for part in model.files:
            _link_or_copy(part, folder / part.name)
        atomic_write_text(folder / "metadata.yaml", yaml.safe_dump(_parsed(meta), sort_keys=False))
        return folder
    import onnx

    shipped = onnx.load(str(model.path), load_external_data=False)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in shipped.graph.initializer):
        return model.path  # weights beside the file: left as written (its metadata as the build kept it)
    have = {p.key for p in shipped.metadata_props}
    missing = {k: v for k, v in meta.items() if k not in have}
    if missing:
        for k, v in missing.items():
            shipped.metadata_props.add(key=k, value=v)
        tmp = model.path.with_name(f".{model.path.name}.meta")
        onnx.save(shipped, str(tmp))
        atomic_replace(tmp, model.path)
    return model.path
