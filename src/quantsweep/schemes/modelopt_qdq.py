"""TensorRT-style QDQ via NVIDIA ModelOpt ONNX PTQ: INT8 (``int8-trt``) and FP8 E4M3 (``fp8``).

ModelOpt places Q/DQ the way TensorRT wants it (on Conv/MatMul inputs, zero-point 0, which
TensorRT requires) and runs its calibration on ONNX Runtime's CPU provider here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from quantsweep.errors import QuantsweepError
from quantsweep.schemes.base import BuildContext, BuildResult, SchemeSpec, check_float_dtype

__all__ = ["ModelOptFp8", "ModelOptInt8", "convert_fp16"]


def _run_worker(job: dict[str, Any], what: str) -> None:
    """Run :func:`_worker` on ``job`` in a fresh Python; its output goes to stderr (the candidate's log).

    Raises:
        QuantsweepError: the worker failed or wrote no output file.
    """
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "quantsweep.schemes.modelopt_qdq", json.dumps(job)],
                          capture_output=True, text=True)
    sys.stderr.write(proc.stdout[-20000:] + proc.stderr[-20000:])
    if proc.returncode != 0 or not Path(job["out"]).exists():
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise QuantsweepError(f"{what} failed: {tail}", "see the candidate's log")


def _modelopt_build(mode: str, calibration: str, float_dtype: str, ctx: BuildContext,
                    keep_float: dict[str, str], out: Path) -> BuildResult:
    """Run ModelOpt in a worker process.

    ModelOpt monkey-patches ONNX Runtime's quantization classes process-wide, which changes what
    ORT's own ``quantize_static`` produces later in the same process (seen here: different INT8
    files and mAP). A worker keeps every other scheme's build untouched.
    """
    from importlib import metadata

    import numpy as np

    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    calib_path = ctx.work_dir / f"calib-{ctx.calib.ids_hash}.npy"
    if not calib_path.exists():
        np.save(calib_path, ctx.calib.array())
    job = {"onnx": str(ctx.fp32_onnx), "mode": mode, "calibration": calibration, "calib": str(calib_path),
           "exclude": [f"^{re.escape(n)}$" for n in keep_float], "float_dtype": float_dtype, "out": str(out)}
    _run_worker(job, f"ModelOpt {mode} quantization")
    return BuildResult(out, "nvidia-modelopt onnx PTQ", metadata.version("nvidia-modelopt"),
                       {"quantize_mode": mode, "calibration_method": calibration,
                        "calibration_eps": ["cpu"], "high_precision_dtype": float_dtype,
                        "dq_only": True,
                        "zero_point": 0, "placement": "TensorRT-style (Q/DQ on compute-op inputs)",
                        "weights": f"{mode} symmetric per-channel", "activations": f"{mode} symmetric per-tensor"},
                       dict(keep_float))


def convert_fp16(path: Path) -> str:
    """Convert what a QDQ model leaves unquantized to fp16, in place, with ModelOpt's AutoCast
    (``convert_to_f16``: Q/DQ scales become fp16, opset raised to 19; graph inputs and outputs
    stay fp32). In the worker process, for the same reason as the builds. Returns the tool line."""
    from importlib import metadata

    _run_worker({"mode": "to_fp16", "onnx": str(path), "out": str(path)}, f"fp16 conversion of {path.name}")
    return f"modelopt.onnx.autocast.convert_to_f16 (nvidia-modelopt {metadata.version('nvidia-modelopt')})"


def _worker(job: dict[str, Any]) -> None:
    import numpy as np

    if job["mode"] == "to_fp16":
        import onnx
        from modelopt.onnx.autocast.convert import convert_to_f16

        onnx.save(convert_to_f16(onnx.load(job["onnx"]), keep_io_types=True), job["out"])
        return
    from modelopt.onnx.quantization import quantize

    quantize(job["onnx"], quantize_mode=job["mode"], calibration_data=np.load(job["calib"]),
             calibration_method=job["calibration"], calibration_eps=["cpu"],
             nodes_to_exclude=job["exclude"] or None, high_precision_dtype=job["float_dtype"],
             output_path=job["out"], log_level="WARNING", dq_only=True)


@dataclass(frozen=True)
class ModelOptInt8:
    """INT8 QDQ placed for TensorRT (explicit quantization, zero-point 0) by ModelOpt."""

    family: ClassVar[str] = "int8-trt"
    precision: ClassVar[str] = "int8"
    k: int = 0
    calibration: Literal["max", "entropy"] = "max"
    float_dtype: Literal["fp32", "fp16"] = "fp32"
    native_fp16: ClassVar[bool] = True  # ModelOpt converts what stays unquantized itself
    head_policy: bool = True
    registry: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.calibration not in ("max", "entropy"):
            raise QuantsweepError(f"unknown calibration {self.calibration!r} for int8-trt", "use max or entropy")
        check_float_dtype(self)

    @property
    def name(self) -> str:
        return "-".join(["int8-trt"] + ([self.calibration] if self.calibration != "max" else [])
                        + (["fp16"] if self.float_dtype == "fp16" else [])
                        + ([] if self.head_policy else ["nohead"]) + ([f"k{self.k}"] if self.k else []))

    def build(self, ctx: BuildContext, keep_float: dict[str, str], out: Path) -> BuildResult:
        return _modelopt_build("int8", self.calibration, self.float_dtype, ctx, keep_float, out)


@dataclass(frozen=True)
class ModelOptFp8:
    """FP8 E4M3 QDQ by ModelOpt (accelerated on Hopper+ TensorRT; emulated on ORT CPU)."""

    family: ClassVar[str] = "fp8"
    precision: ClassVar[str] = "fp8"
    k: int = 0
    calibration: Literal["max"] = "max"
    float_dtype: Literal["fp32", "fp16"] = "fp32"
    native_fp16: ClassVar[bool] = True  # ModelOpt converts what stays unquantized itself
    head_policy: bool = True
    registry: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.calibration != "max":
            raise QuantsweepError(f"unknown calibration {self.calibration!r} for fp8", "use max")
        check_float_dtype(self)

    @property
    def name(self) -> str:
        return "-".join(["fp8-qdq"] + (["fp16"] if self.float_dtype == "fp16" else [])
                        + ([] if self.head_policy else ["nohead"]) + ([f"k{self.k}"] if self.k else []))

    def build(self, ctx: BuildContext, keep_float: dict[str, str], out: Path) -> BuildResult:
        return _modelopt_build("fp8", self.calibration, self.float_dtype, ctx, keep_float, out)



SPECS = (
    SchemeSpec("int8-trt", ModelOptInt8, "INT8 QDQ placed for TensorRT by ModelOpt (zero-point 0)",
               k_sets=True, default=True, needs=("modelopt",), extra="modelopt"),
    SchemeSpec("fp8-qdq", ModelOptFp8, "FP8 E4M3 QDQ by ModelOpt (TensorRT on Hopper+; emulated elsewhere)",
               k_sets=True, default=True, needs=("modelopt",), extra="modelopt"),
)


if __name__ == "__main__":
    import json
    import sys

    _worker(json.loads(sys.argv[1]))
