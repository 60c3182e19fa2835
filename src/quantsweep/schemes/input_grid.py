"""The model input's quantizer on the pixel grid.

quantsweep feeds every model 8-bit pixels divided by 255 (:func:`quantsweep.data.letterbox.to_pixels`),
so the input takes exactly the 256 values ``k/255``. An unsigned 8-bit quantizer over ``[0, 1]``
(scale 1/255, zero at 0) represents each of them exactly: the input's quantization is lossless.

A calibrated range is not. NNCF's default for a per-tensor activation is the *mean* over the
calibration images of each image's min and max (nncf 3.4 ``RangeEstimatorParametersSet.MEAN_MINMAX``):
on the demo detector at 640 the input gets ``[0, 0.962]``, which clips every pixel above 245/255 and
rounds the rest to a grid 4 % coarser than the pixels'. (ONNX Runtime's MinMax takes the global
extremes, ``[0, 1.0000]`` on the same images; the grid then only makes it exact.) That damage lands on the first
convolution, which the sensitivity ranking then asks to keep in float, at a speed cost (demo at 640,
OpenVINO CPU: two stem convolutions kept float ran 3 % slower). Putting the input quantizer on the
pixel grid costs nothing at run time (the same quantizer, other constants); measured in
docs/benchmarks.md, "The input quantizer on the pixel grid".

The move happens after the library quantized, so NNCF's fast bias correction of the first convolution
was computed with the calibrated input quantizer (NNCF takes no fixed range for one quantizer). The
measured effect above is the net of both.

Two file kinds, one rule (:func:`grid_decision`): an 8-bit quantizer on the graph input whose
range starts at 0 and lies within ``[0, 1]`` is moved to ``[0, 1]``; any other (signed, not 8-bit,
a range beyond the pixels') is left as calibrated, and the record says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantsweep.data.letterbox import PIXEL_MAX

__all__ = ["PIXEL_SCALE", "grid_decision", "pixel_grid_onnx", "pixel_grid_ov"]

#: the quantizer step that represents every input value ``k / 255`` exactly
PIXEL_SCALE = 1.0 / PIXEL_MAX
_SLACK = 1e-6  # float32 rounding of a calibrated bound


def grid_decision(levels: int, low: float, high: float) -> str | None:
    """Why an input quantizer with ``levels`` steps over the calibrated ``[low, high]`` stays as
    calibrated, or None when it moves to the pixel grid ``[0, 1]``.

    Example:
        >>> grid_decision(256, 0.0, 0.962) is None
        True
        >>> grid_decision(256, -1.0, 0.99)
        'signed range [-1, 0.99]: the pixel grid needs an unsigned 8-bit quantizer starting at 0'
    """
    if levels != PIXEL_MAX + 1:
        return f"{levels} levels: the pixel grid needs 8 bits (256 levels)"
    if abs(low) > _SLACK:
        return f"signed range [{low:.4g}, {high:.4g}]: the pixel grid needs an unsigned 8-bit quantizer starting at 0"
    if high > 1.0 + _SLACK:
        return f"calibrated range [0, {high:.4g}] exceeds [0, 1]: the input is not pixels / {PIXEL_MAX}"
    return None


def _record(moved: list[tuple[str, float]], left: list[str]) -> str:
    """The scheme record's line on the input quantizer."""
    if not moved and not left:
        return "none on the input (its consumers are kept float)"
    parts = [f"{name}: pixel grid [0, 1], scale 1/{PIXEL_MAX} (calibrated [0, {high:.4f}])" for name, high in moved]
    return "; ".join(parts + [f"as calibrated: {why}" for why in left])


def pixel_grid_ov(model: Any) -> str:
    """Move the input FakeQuantize nodes of an OpenVINO ``model`` (in memory) to the pixel grid;
    returns the record's line."""
    import numpy as np
    import openvino.opset13 as ops

    moved: list[tuple[str, float]] = []
    left: list[str] = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize" or op.input_value(0).get_node().get_type_name() != "Parameter":
            continue
        sources = [op.input_value(i).get_node() for i in range(1, 5)]
        if any(n.get_type_name() != "Constant" for n in sources):
            left.append(f"{op.get_friendly_name()}: bounds computed in the graph (not constants): left as placed")
            continue
        bounds = [np.asarray(n.get_data(), np.float64) for n in sources]
        low, high = float(bounds[0].min()), float(bounds[1].max())
        same = all(b.size == 1 for b in bounds) and bounds[0].item() == bounds[2].item() \
            and bounds[1].item() == bounds[3].item()
        why = grid_decision(int(op.get_attributes()["levels"]), low, high) if same else \
            "per-channel or remapped bounds: left as the quantizer placed them"
        if why:
            left.append(f"{op.get_friendly_name()}: {why}")
            continue
        for i, (source, value) in enumerate(zip(sources, (0.0, 1.0, 0.0, 1.0)), start=1):
            op.input(i).replace_source_output(ops.constant(np.full(source.get_output_shape(0), value,
                                                                   np.float32)).output(0))
        moved.append((op.get_friendly_name(), high))
    model.validate_nodes_and_infer_types()
    return _record(moved, left)


def pixel_grid_onnx(path: Path) -> str:
    """Move the QuantizeLinear nodes on a QDQ ONNX file's graph input (and the DequantizeLinear nodes
    reading them) to the pixel grid, in place; returns the record's line."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    inputs = {i.name for i in graph.input} - set(inits)
    moved: list[tuple[str, float]] = []
    left: list[str] = []
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] in inputs]:
        if len(q.input) < 3 or q.input[1] not in inits or q.input[2] not in inits:
            left.append(f"{q.name}: no constant scale and zero point")
            continue
        scale = numpy_helper.to_array(inits[q.input[1]])
        zp_tensor = numpy_helper.to_array(inits[q.input[2]])
        if scale.size != 1 or zp_tensor.size != 1 or zp_tensor.dtype not in (np.uint8, np.int8):
            left.append(f"{q.name}: per-channel or not an 8-bit integer quantizer")
            continue
        qmin = int(np.iinfo(zp_tensor.dtype).min)
        s, zp = float(scale.item()), int(zp_tensor.item())
        why = grid_decision(PIXEL_MAX + 1, (qmin - zp) * s, (qmin + PIXEL_MAX - zp) * s)
        if why:
            left.append(f"{q.name}: {why}")
            continue
        old, new = q.input[1], f"{q.input[1]}_pixel_grid"
        graph.initializer.append(numpy_helper.from_array(np.asarray(PIXEL_SCALE, dtype=scale.dtype), new))
        for dq in [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0]]:
            dq.input[1] = new
        q.input[1] = new
        if not any(old in n.input for n in graph.node):  # the calibrated scale, now read by nobody
            graph.initializer.remove(inits[old])
        moved.append((q.name, (qmin + PIXEL_MAX - zp) * s))
    if moved:
        onnx.save(model, str(path))
    return _record(moved, left)
