"""The baseline: an Ultralytics ``.pt`` exported to FP32 ONNX, or an ONNX file passed through.

Example:
    >>> export_onnx(Path("yolov10m.pt"), Path("yolov10m.onnx"), imgsz=640, head="e2e")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from quantsweep.errors import QuantsweepError
from quantsweep.files import atomic_replace
from quantsweep.model.info import inspect_onnx
from quantsweep.model.layouts import LAYOUTS

__all__ = ["Head", "export_onnx"]


Head = Literal["e2e", "raw"]


def export_onnx(model: Path, out: Path, imgsz: int = 640, opset: int = 17, head: Head = "e2e",
                dynamic_batch: bool = False, trust_checkpoint: bool = False) -> Path:
    """Export an Ultralytics checkpoint to FP32 ONNX, or copy an ONNX file through.

    Args:
        model: ``.pt`` (Ultralytics) or ``.onnx``.
        out: destination ``.onnx``; written atomically.
        imgsz: square input size of the export.
        opset: ONNX opset of the export.
        head: ``e2e`` = NMS-free end-to-end head ``[N,300,6]``; ``raw`` = one-to-many head
            ``[N,4+C,A]`` that needs NMS.
        dynamic_batch: make only the batch dimension dynamic (height/width stay ``imgsz``).
        trust_checkpoint: load a ``.pt`` whose pickle references more than model classes.

    Returns:
        ``out``.
    """
    model, out = Path(model), Path(out)
    if not model.is_file():
        raise QuantsweepError(f"model file not found: {model}", "check the --model path")
    exportable = [name for name, lay in LAYOUTS.items() if lay.export_end2end is not None]
    if head not in exportable:
        raise QuantsweepError(f"unknown head {head!r}", f"use --head {' or --head '.join(exportable)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if model.suffix.lower() == ".onnx":
        inspect_onnx(model, imgsz)
        if model.resolve() != out.resolve():
            atomic_replace(model, out, copy=True)
        return out
    if model.suffix.lower() not in (".pt", ".pth"):
        raise QuantsweepError(f"{model}: unsupported model type {model.suffix!r}",
                              "pass an Ultralytics .pt checkpoint or an .onnx file")
    cached = _cache_path(model, imgsz, opset, head, dynamic_batch)
    if cached is not None and cached.is_file():  # the same checkpoint exported the same way before
        atomic_replace(cached, out, copy=True)
        inspect_onnx(out)
        return out
    from quantsweep.model.checkpoint import load_yolo

    with tempfile.TemporaryDirectory(prefix="qs-export-") as tmpdir:
        staged = Path(tmpdir) / "model.pt"
        shutil.copyfile(model, staged)
        yolo = load_yolo(staged, shown_as=model, trust=trust_checkpoint)
        exported = Path(yolo.export(format="onnx", imgsz=imgsz, opset=opset, simplify=True,
                                    end2end=LAYOUTS[head].export_end2end, dynamic=dynamic_batch, device="cpu"))
        _normalize(exported, imgsz if dynamic_batch else None)
        atomic_replace(exported, out)
    inspect_onnx(out)
    if cached is not None:
        try:
            atomic_replace(out, cached, copy=True)
        except OSError:  # a read-only or full cache only costs the next export its time
            pass
    return out


def _cache_path(model: Path, imgsz: int, opset: int, head: str, dynamic_batch: bool) -> Path | None:
    """Where the export of ``model`` with these settings is cached: keyed by the checkpoint's bytes,
    the settings and the exporter's versions (the export is byte-reproducible: see :func:`_normalize`)."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    from quantsweep.files import sha256_file
    from quantsweep.offline import cache_dir

    try:
        versions = [version(p) for p in ("torch", "ultralytics", "onnx", "onnxslim")]
    except PackageNotFoundError:
        return None
    key = hashlib.sha256(json.dumps([sha256_file(model), imgsz, opset, head, dynamic_batch, versions,
                                     _EXPORT_FORMAT]).encode()).hexdigest()[:24]
    return cache_dir() / "exports" / f"{key}.onnx"


_EXPORT_FORMAT = 1  # bump when _normalize or the export call changes what an export contains


def _normalize(path: Path, pin_imgsz: int | None) -> None:
    """Make the export reproducible and shaped as asked.

    Drops the export timestamp Ultralytics stores in the metadata (so the same checkpoint always
    gives byte-identical files), and with ``pin_imgsz`` pins height/width again after
    Ultralytics' ``dynamic=True`` freed batch, height and width.
    """
    import onnx

    m = onnx.load(str(path))
    keep = [p for p in m.metadata_props if p.key != "date"]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    if pin_imgsz is None:
        onnx.save(m, str(path))
        return
    imgsz = pin_imgsz
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for d in (dims[2], dims[3]):
        d.Clear()
        d.dim_value = imgsz
    for o in m.graph.output:
        for d in list(o.type.tensor_type.shape.dim)[1:]:
            if d.HasField("dim_param"):
                d.Clear()  # re-derived below
    del m.graph.value_info[:]
    m = onnx.shape_inference.infer_shapes(m)
    onnx.save(m, str(path))

