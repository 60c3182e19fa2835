"""What each model-file format *does*: the one place that knows how an ONNX file and an OpenVINO IR
differ when they are inspected, read for class names, checked for quantization, built and laid out
for Ultralytics. :class:`~quantsweep.files.ModelFile` says which files make a model and which format
it is; :func:`format_of` gives that format's behaviour. No other module branches on the format.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any, Protocol

from quantsweep.files import ONNX, OPENVINO_IR, ModelFile, ModelFormat, atomic_replace, atomic_write_text
from quantsweep.model.info import ModelInfo, describe, inspect_ir, inspect_onnx

__all__ = ["FormatBehaviour", "format_of", "inspect_model"]

_INTS = ("stride", "batch", "channels")
_LITERALS = ("imgsz", "names", "args", "end2end", "kpt_shape")


class FormatBehaviour(Protocol):
    """What a format answers. ``keeps_library_file``: a build saves it as its library wrote it (no ONNX
    hygiene pass: the IR); otherwise the build's graph passes rewrite it."""

    spec: ModelFormat
    keeps_library_file: bool

    def inspect(self, path: Path, imgsz: int | None = None, require_detector: bool = True) -> ModelInfo: ...

    def class_names(self, path: Path) -> dict[int, str]: ...

    def is_quantized(self, path: Path) -> bool: ...

    def graph_facts(self, path: Path) -> dict[str, Any]: ...

    def ultralytics_layout(self, model: ModelFile, meta: dict[str, str]) -> Path: ...


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


class OnnxFormat:
    """An ONNX file: inspected and read with ``onnx``; Ultralytics reads its ``metadata_props``."""

    spec = ONNX
    keeps_library_file = False

    def inspect(self, path: Path, imgsz: int | None = None, require_detector: bool = True) -> ModelInfo:
        return inspect_onnx(path, imgsz, require_detector)

    def class_names(self, path: Path) -> dict[int, str]:
        """Class names from the metadata (Ultralytics writes ``names`` into the ONNX), else {}."""
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        try:
            names = ast.literal_eval(props.get("names", "{}"))
        except (ValueError, SyntaxError):
            return {}
        return {int(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}

    def is_quantized(self, path: Path) -> bool:
        import onnx

        from quantsweep.model.graph import qdq_counts

        return any(qdq_counts(onnx.load(str(path), load_external_data=False)).values())

    def graph_facts(self, path: Path) -> dict[str, Any]:
        import onnx

        from quantsweep.model.graph import compute_nodes, float_compute_nodes, op_counts

        model = onnx.load(str(path), load_external_data=False)
        return {"compute_nodes": compute_nodes(model), "float_compute_nodes": float_compute_nodes(model),
                "op_counts": op_counts(model)}

    def ultralytics_layout(self, model: ModelFile, meta: dict[str, str]) -> Path:
        """The shipped ONNX with any metadata key it lost in quantization (weights stored beside the file:
        left as written)."""
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


class IrFormat:
    """An OpenVINO IR (``.xml`` + ``.bin``): read by OpenVINO; saved as its library wrote it; Ultralytics
    loads it from a ``<name>_openvino_model/`` folder with ``metadata.yaml``."""

    spec = OPENVINO_IR
    keeps_library_file = True

    def inspect(self, path: Path, imgsz: int | None = None, require_detector: bool = True) -> ModelInfo:
        return describe(inspect_ir(Path(path)), imgsz, require_detector)

    def class_names(self, path: Path) -> dict[int, str]:
        return {}  # an IR carries no Ultralytics metadata of its own

    def is_quantized(self, path: Path) -> bool:
        return bool(self.graph_facts(path)["op_counts"].get("FakeQuantize", 0) > 0)

    def graph_facts(self, path: Path) -> dict[str, Any]:
        from quantsweep.model.graph import ir_graph_facts

        return ir_graph_facts(Path(path))

    def ultralytics_layout(self, model: ModelFile, meta: dict[str, str]) -> Path:
        import yaml

        folder = model.path.parent / f"{model.path.stem}_openvino_model"
        folder.mkdir(parents=True, exist_ok=True)
        for part in model.files:
            _link_or_copy(part, folder / part.name)
        atomic_write_text(folder / "metadata.yaml", yaml.safe_dump(_parsed(meta), sort_keys=False))
        return folder


_BEHAVIOURS: dict[str, FormatBehaviour] = {ONNX.name: OnnxFormat(), OPENVINO_IR.name: IrFormat()}


def format_of(path: Path | str) -> FormatBehaviour:
    """The behaviour of ``path``'s format (any other format is read as ONNX, whose loader then says what
    is wrong with it, as :meth:`ModelFile.of` does)."""
    return _BEHAVIOURS.get(ModelFile.of(path).format.name, _BEHAVIOURS[ONNX.name])


def inspect_model(path: Path | str, imgsz: int | None = None, require_detector: bool = True) -> ModelInfo:
    """Check that ``path`` (ONNX or OpenVINO IR) is a single-image-input detector and describe it.

    Raises:
        QuantsweepError: not readable, not one rank-4 image input, or an unknown output layout.
    """
    return format_of(path).inspect(Path(path), imgsz, require_detector)
