"""How 4-bit weights are stored: INT4 initializers (opset 21 DequantizeLinear, blocked when grouped),
float constants fp16 holds exactly stored as fp16, and the opset conversion INT4 needs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quantsweep.schemes.weight_grids import block_for, factor_blocks

__all__ = ["INT4_OPSET", "exact_fp16_constants", "int8_to_int4_initializers", "opset_of", "to_int4_opset"]

INT4_OPSET = 21  # DequantizeLinear with INT4 inputs and block_size


def exact_fp16_constants(model: Any, min_elements: int = 16) -> int:
    """Store each float32 initializer (of at least ``min_elements`` values) that fp16 holds exactly as
    fp16 behind a ``Cast`` to float32 (the consumers see the same values, bit for bit); returns
    how many moved. Graph inputs are left alone (a caller may feed them)."""
    from onnx import TensorProto, helper, numpy_helper

    fed = {i.name for i in model.graph.input}
    casts, moved = [], 0
    for init in list(model.graph.initializer):
        if init.data_type != TensorProto.FLOAT or init.name in fed or int(np.prod(init.dims)) < min_elements:
            continue
        a = numpy_helper.to_array(init)
        half = a.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), a, equal_nan=False):
            continue
        model.graph.initializer.remove(init)
        model.graph.initializer.append(numpy_helper.from_array(half, f"{init.name}_fp16"))
        casts.append(helper.make_node("Cast", [f"{init.name}_fp16"], [init.name], name=f"{init.name}_Cast",
                                      to=TensorProto.FLOAT))
        moved += 1
    nodes = casts + list(model.graph.node)  # before every consumer: the graph stays topologically sorted
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return moved


def int8_to_int4_initializers(model: Any, min_elements: int = 16, group: int = 0, max_mult: int = 15) -> int:
    """Store each int8 initializer that only ``DequantizeLinear`` reads (as its data) and whose values
    all fit 4 bits ([-8, 7]) as an ``INT4`` initializer behind a ``Cast`` back to int8: lossless, and a
    runtime folds the ``Cast`` of a constant at load, so its int8 kernels still see int8 weights
    (ONNX Runtime fuses QLinearConv as before). With ``group``, a weight whose blocks of columns
    (:func:`block_for`) are 4-bit values times one integer each (:func:`quantize_progressive`) is
    stored as ``INT4`` values and ``UINT4`` multipliers, multiplied back to int8 by
    ``Cast -> Mul -> Reshape -> Cast`` (folded at load the same way). Needs opset >= 21; returns how
    many moved."""
    import ml_dtypes
    from onnx import TensorProto, helper, numpy_helper

    readers: dict[str, list[tuple[Any, int]]] = {}
    for n in model.graph.node:
        for j, i in enumerate(n.input):
            readers.setdefault(i, []).append((n, j))
    fed = {i.name for i in model.graph.input}
    casts, moved = [], 0
    for init in list(model.graph.initializer):
        if init.data_type != TensorProto.INT8 or init.name in fed or int(np.prod(init.dims)) < min_elements:
            continue
        users = readers.get(init.name, [])
        if not users or any(u.op_type != "DequantizeLinear" or j != 0 for u, j in users):
            continue
        a = numpy_helper.to_array(init)
        if a.min() >= -8 and a.max() <= 7:  # 4-bit values as they are
            model.graph.initializer.remove(init)
            model.graph.initializer.append(numpy_helper.from_array(a.astype(ml_dtypes.int4), f"{init.name}_int4"))
            casts.append(helper.make_node("Cast", [f"{init.name}_int4"], [init.name], name=f"{init.name}_Cast",
                                          to=TensorProto.INT8))
            moved += 1
            continue
        block = block_for(int(np.prod(a.shape[1:])), group) if group and a.ndim >= 2 else 0
        factors = factor_blocks(a.reshape(len(a), -1), block, max_mult) if block else None
        if factors is not None:  # 4-bit values times one multiplier per block
            q3, m = factors
            t = f"qs_w4/{moved}"  # short names: five nodes per weight, each name stored three times
            model.graph.initializer.remove(init)
            model.graph.initializer.extend([
                numpy_helper.from_array(q3.astype(ml_dtypes.int4), f"{t}/q"),
                numpy_helper.from_array(m[:, :, None].astype(ml_dtypes.uint4), f"{t}/m"),
                numpy_helper.from_array(np.array(a.shape, np.int64), f"{t}/shape")])
            casts += [helper.make_node("Cast", [f"{t}/q"], [f"{t}/q32"], name=f"{t}/cq", to=TensorProto.INT32),
                      helper.make_node("Cast", [f"{t}/m"], [f"{t}/m32"], name=f"{t}/cm", to=TensorProto.INT32),
                      helper.make_node("Mul", [f"{t}/q32", f"{t}/m32"], [f"{t}/v32"], name=f"{t}/mul"),
                      helper.make_node("Reshape", [f"{t}/v32", f"{t}/shape"], [f"{t}/v"], name=f"{t}/reshape"),
                      helper.make_node("Cast", [f"{t}/v"], [init.name], name=f"{t}/c8", to=TensorProto.INT8)]
            moved += 1
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return moved


def opset_of(model: Any) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def to_int4_opset(model: Any) -> tuple[Any, str | None]:
    """``model`` at opset >= 21 (ONNX's version converter), or the model unchanged and why not."""
    if opset_of(model) >= INT4_OPSET:
        return model, None
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(model, INT4_OPSET)
    except Exception as exc:  # noqa: BLE001 - any converter failure keeps the int8 container
        return model, f"opset {opset_of(model)} -> {INT4_OPSET} conversion failed: {str(exc).splitlines()[0][:160]}"
    converted.ir_version = max(converted.ir_version, 10)
    return converted, None
