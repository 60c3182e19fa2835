"""What quantsweep needs to know about a detector ONNX file, checked before it is used.

Example:
    >>> info = inspect_onnx(Path("yolov10m.onnx"))  # doctest: +SKIP
    >>> info.layout, info.hw  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantsweep.errors import QuantsweepError, first_line
from quantsweep.model.layouts import DetectorLayout, detect_layout, supported_text

__all__ = ["ModelInfo", "OPSET_RANGE", "check_onnx_file", "describe", "inspect_ir", "inspect_onnx", "load_onnx"]


OPSET_RANGE = (11, 23)  # what the supported exporters write and onnxruntime 1.24 runs


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What quantsweep needs to know about a detector ONNX file."""

    path: Path
    input_name: str
    input_shape: tuple[int | str, ...]
    output_shapes: tuple[tuple[int | str, ...], ...]
    opset: int
    layout: DetectorLayout | None  # None when the output shape is symbolic (decided at first run)
    num_classes: int | None

    @property
    def fixed_batch(self) -> int | None:
        b = self.input_shape[0]
        return b if isinstance(b, int) and b > 0 else None

    @property
    def hw(self) -> tuple[int, int] | None:
        h, w = self.input_shape[2], self.input_shape[3]
        return (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None


def _dims(value_info: Any) -> tuple[int | str, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                 for d in value_info.type.tensor_type.shape.dim)


def load_onnx(path: Path, load_external_data: bool = True):  # noqa: ANN201 - onnx.ModelProto
    """Load an ONNX file with a clear error when it is missing or not ONNX."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise QuantsweepError(f"model file not found: {path}", "check the --model path")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # protobuf DecodeError, truncated files, ...
        raise QuantsweepError(f"{path} is not a readable ONNX model ({type(exc).__name__})",
                              "pass an .onnx file, or an Ultralytics .pt to export") from None


def check_onnx_file(path: Path, model: Any, memory_fraction: float = 0.5) -> None:
    """Safety checks before an ONNX file is used: external data, opset, size, structure.

    Raises:
        QuantsweepError: external data outside the model's folder, an opset outside
            :data:`OPSET_RANGE`, a model larger than ``memory_fraction`` of available memory,
            or a file ``onnx.checker`` rejects.
    """
    import onnx

    folder = Path(path).resolve().parent
    total = Path(path).stat().st_size
    for init in model.graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL:
            continue
        loc = next((e.value for e in init.external_data if e.key == "location"), "")
        target = (folder / loc).resolve()
        if Path(loc).is_absolute() or not target.is_relative_to(folder):
            raise QuantsweepError(
                f"{path}: initializer {init.name!r} points to external data outside the model's folder ({loc!r})",
                "keep external data files next to the model; this file may be trying to read other files")
        if not target.is_file():
            raise QuantsweepError(f"{path}: external data file {loc!r} is missing",
                                  "copy the .data file(s) that came with the model next to it")
        total += target.stat().st_size
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        raise QuantsweepError(f"{path}: opset {opset} is outside the supported range {OPSET_RANGE[0]}-{OPSET_RANGE[1]}",
                              f"re-export with --opset between {OPSET_RANGE[0]} and {OPSET_RANGE[1]}")
    try:
        import psutil

        available = psutil.virtual_memory().available
    except ImportError:
        available = None
    if available is not None and total > memory_fraction * available:
        raise QuantsweepError(f"{path}: the model ({total / 1e9:.1f} GB) exceeds {memory_fraction:.0%} of the "
                              f"available memory ({available / 1e9:.1f} GB)",
                              "free memory or use a machine with more RAM")
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # onnx.checker.ValidationError and friends
        first = first_line(exc, 200, type(exc).__name__)
        raise QuantsweepError(f"{path} is not a valid ONNX model: {first}",
                              "re-export the model; check it with onnx.checker") from None


def inspect_onnx(path: Path, imgsz: int | None = None, require_detector: bool = True) -> ModelInfo:
    """Check that ``path`` is a single-image-input detector ONNX and describe it (any format:
    :func:`quantsweep.model.formats.inspect_model`).

    Args:
        path: the ONNX file.
        imgsz: the input size to assume when the model's height/width are dynamic.
        require_detector: refuse outputs that match no detector layout (benchmarks skip this).

    Raises:
        QuantsweepError: not ONNX, not one rank-4 image input, or an unknown output layout.
    """
    model = load_onnx(path, load_external_data=False)
    check_onnx_file(path, model)
    init_names = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init_names]
    if len(inputs) != 1 or len(_dims(inputs[0])) != 4:
        shapes = [list(_dims(i)) for i in inputs]
        raise QuantsweepError(f"{path}: expected one image input of rank 4 (N,3,H,W), found {shapes}",
                              "export the detector with a single NCHW image input")
    in_shape = _dims(inputs[0])
    outputs = tuple(_dims(o) for o in model.graph.output)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return describe(ModelInfo(Path(path), inputs[0].name, in_shape, outputs, opset, None, None), imgsz,
                     require_detector)


def inspect_ir(path: Path) -> ModelInfo:
    """An OpenVINO IR's input and outputs, read by OpenVINO (the only runtime that loads it)."""
    if not path.is_file() or not path.with_suffix(".bin").is_file():
        raise QuantsweepError(f"OpenVINO IR not found: {path} (and its .bin)", "keep the .xml and .bin side by side")
    try:
        import openvino as ov
    except ImportError:
        raise QuantsweepError(f"{path} is an OpenVINO IR, and OpenVINO is not installed",
                              "pip install 'quantsweep[openvino]'") from None
    try:
        model = ov.Core().read_model(str(path))
    except Exception as exc:
        raise QuantsweepError(f"{path} is not a readable OpenVINO IR ({first_line(exc, 120, type(exc).__name__)})",
                              "pass the .xml written by openvino.save_model, with its .bin beside it") from None

    def dims(shape: Any) -> tuple[int | str, ...]:
        return tuple(d.get_length() if d.is_static else "?" for d in shape)

    if len(model.inputs) != 1 or len(model.inputs[0].get_partial_shape()) != 4:
        raise QuantsweepError(f"{path}: expected one image input of rank 4 (N,3,H,W)",
                              "export the detector with a single NCHW image input")
    inp = model.inputs[0]
    return ModelInfo(path, inp.get_any_name(), dims(inp.get_partial_shape()),
                     tuple(dims(o.get_partial_shape()) for o in model.outputs), 0, None, None)


def describe(info: ModelInfo, imgsz: int | None, require_detector: bool) -> ModelInfo:
    """``info`` with its output layout and class count, or an error when no detector layout fits."""
    path, in_shape, outputs, opset = info.path, info.input_shape, info.output_shapes, info.opset
    hw = info.hw or ((imgsz, imgsz) if imgsz else None)
    first = outputs[0] if outputs else ()
    if not require_detector:
        return info
    if hw and len(first) == 3 and all(isinstance(d, int) and d > 0 for d in first[1:]):
        try:
            layout, nc = detect_layout(first, hw, source=str(path))
        except QuantsweepError:
            seen = ", ".join(str(list(s)) for s in outputs)
            raise QuantsweepError(
                f"{path}: unknown output layout (outputs {seen}, input {list(in_shape)})",
                f"supported layouts: {supported_text(hw)}") from None
        return ModelInfo(info.path, info.input_name, in_shape, outputs, opset, layout, nc or None)
    if len(first) != 3:
        seen = ", ".join(str(list(s)) for s in outputs)
        raise QuantsweepError(f"{path}: unknown output layout (outputs {seen})",
                              f"supported layouts: {supported_text(hw)}")
    return info

