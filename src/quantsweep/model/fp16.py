"""Float16 for what a model leaves unquantized, shared by the schemes (an ``fp16`` float dtype) and
the runtimes (TensorRT's fp16 engine twin of FP32)."""

from __future__ import annotations

from pathlib import Path

from quantsweep.worker import run_worker

__all__ = ["convert_fp16"]


def convert_fp16(path: Path) -> str:
    """Convert what a QDQ model leaves unquantized to fp16, in place, with ModelOpt's AutoCast
    (``convert_to_f16``: Q/DQ scales become fp16, opset raised to 19; graph inputs and outputs
    stay fp32). In a worker process (:mod:`quantsweep.worker`: ModelOpt patches ONNX Runtime when
    imported). Returns the tool line."""
    from importlib import metadata

    run_worker("quantsweep.model.fp16", {"onnx": str(path), "out": str(path)}, f"fp16 conversion of {path.name}")
    return f"modelopt.onnx.autocast.convert_to_f16 (nvidia-modelopt {metadata.version('nvidia-modelopt')})"


if __name__ == "__main__":
    import json
    import sys

    import onnx
    from modelopt.onnx.autocast.convert import convert_to_f16

    job = json.loads(sys.argv[1])
    onnx.save(convert_to_f16(onnx.load(job["onnx"]), keep_io_types=True), job["out"])
