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
from quantsweep.schemes.base import (
    BuildContext,
    BuildResult,
    SchemeMethods,
    SchemeSpec,
    SchemeTraits,
    check_float_dtype,
)
from quantsweep.worker import run_worker

__all__ = ["ModelOptFp8", "ModelOptInt8"]


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
    run_worker("quantsweep.schemes.modelopt_qdq", job, f"ModelOpt {mode} quantization")
    return BuildResult(out, "nvidia-modelopt onnx PTQ", metadata.version("nvidia-modelopt"),
                       {"quantize_mode": mode, "calibration_method": calibration,
                        "calibration_eps": ["cpu"], "high_precision_dtype": float_dtype,
                        "dq_only": True,
                        "zero_point": 0, "placement": "TensorRT-style (Q/DQ on compute-op inputs)",
                        "weights": f"{mode} symmetric per-channel", "activations": f"{mode} symmetric per-tensor"},
                       dict(keep_float))


def _worker(job: dict[str, Any]) -> None:
    import numpy as np
    from modelopt.onnx.quantization import quantize

    quantize(job["onnx"], quantize_mode=job["mode"], calibration_data=np.load(job["calib"]),
             calibration_method=job["calibration"], calibration_eps=["cpu"],
             nodes_to_exclude=job["exclude"] or None, high_precision_dtype=job["float_dtype"],
             output_path=job["out"], log_level="WARNING", dq_only=True)


@dataclass(frozen=True)
class ModelOptInt8(SchemeMethods):
    """INT8 QDQ placed for TensorRT (explicit quantization, zero-point 0) by ModelOpt."""

    method: ClassVar[str] = "int8-trt"
    precision: ClassVar[str] = "int8"
    k: int = 0
    calibration: Literal["max", "entropy"] = "max"
    float_dtype: Literal["fp32", "fp16"] = "fp32"
    head_policy: bool = True
    registry: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.calibration not in ("max", "entropy"):
            raise QuantsweepError(f"unknown calibration {self.calibration!r} for int8-trt", "use max or entropy")
        check_float_dtype(self)

    @property
    def traits(self) -> SchemeTraits:
        return SchemeTraits(label=self.precision, fp16_by_tool=True)

    @property
    def name(self) -> str:
        return "-".join(["int8-trt"] + ([self.calibration] if self.calibration != "max" else [])
                        + (["fp16"] if self.float_dtype == "fp16" else [])
                        + ([] if self.head_policy else ["nohead"]) + ([f"k{self.k}"] if self.k else []))

    def build(self, ctx: BuildContext, keep_float: dict[str, str], out: Path) -> BuildResult:
        return _modelopt_build("int8", self.calibration, self.float_dtype, ctx, keep_float, out)


@dataclass(frozen=True)
class ModelOptFp8(SchemeMethods):
    """FP8 E4M3 QDQ by ModelOpt (accelerated on Hopper+ TensorRT; emulated on ORT CPU)."""

    method: ClassVar[str] = "fp8"
    precision: ClassVar[str] = "fp8"
    k: int = 0
    calibration: Literal["max"] = "max"
    float_dtype: Literal["fp32", "fp16"] = "fp32"
    head_policy: bool = True
    registry: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.calibration != "max":
            raise QuantsweepError(f"unknown calibration {self.calibration!r} for fp8", "use max")
        check_float_dtype(self)

    @property
    def traits(self) -> SchemeTraits:
        return SchemeTraits(label=self.precision, fp16_by_tool=True)

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
