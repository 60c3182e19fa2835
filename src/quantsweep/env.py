"""What this machine is and has: versions, CPU model and flags, GPU, git hash.

Also the install-integrity check that matters in this field: ``onnxruntime`` and
``onnxruntime-gpu`` both install the same ``onnxruntime/`` package, the last one installed
silently wins, and ``pip check`` reports nothing. :func:`ort_distributions` finds every
distribution that owns ``onnxruntime/__init__.py``; exactly one is healthy.
"""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from quantsweep.errors import QuantsweepError

__all__ = ["available_providers", "check_single_ort", "collect_env", "cpu_class", "cpu_info", "gpu_present", "ort_distributions", "physical_cores",
           "worker_threads"]

_VERSIONED = ("quantsweep", "torch", "torchvision", "ultralytics", "onnx", "onnxruntime",
              "onnxruntime-gpu", "nvidia-modelopt", "brevitas", "onnxslim", "faster-coco-eval",
              "numpy", "opencv-python", "openvino", "nncf", "tensorrt")


def physical_cores() -> int:
    """Physical core count (hyper-threads not counted), falling back to the logical count."""
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
        if n:
            return int(n)
    except ImportError:
        pass
    return os.cpu_count() or 1


def worker_threads() -> int:
    """Threads one ONNX Runtime session may use: ``QUANTSWEEP_THREADS`` (set for parallel sweep
    jobs, which share the cores) or the physical core count."""
    value = os.environ.get("QUANTSWEEP_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else physical_cores()


def gpu_present() -> bool:
    """Whether an NVIDIA GPU answers the CUDA driver (no CUDA toolkit needed)."""
    try:
        import ctypes

        lib = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        return lib.cuInit(0) == 0 and lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    except OSError:
        return False


def available_providers() -> list[str]:
    """ONNX Runtime provider names compiled into the installed onnxruntime."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def ort_distributions() -> list[str]:
    """Names (with versions) of installed distributions that provide ``onnxruntime/__init__.py``."""
    owners = []
    for dist in metadata.distributions():
        files = dist.files or []
        if any(str(f).replace("\\", "/") == "onnxruntime/__init__.py" for f in files):
            owners.append(f"{dist.metadata['Name']}=={dist.version}")
    return sorted(set(owners))


def check_single_ort() -> str:
    """Return the one ONNX Runtime distribution, or raise when there are none or several."""
    owners = ort_distributions()
    if len(owners) == 1:
        return owners[0]
    if not owners:
        raise QuantsweepError("no ONNX Runtime distribution is installed",
                              "reinstall quantsweep: pip install -e .")
    raise QuantsweepError(
        f"several ONNX Runtime distributions share the onnxruntime/ package: {', '.join(owners)}",
        "uninstall all of them, then reinstall quantsweep so exactly one is present")


def cpu_info() -> dict[str, Any]:
    """CPU model, logical/physical cores, and the SIMD flags that decide int8 speed."""
    model, flags = platform.processor() or "unknown", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", "", platform.machine()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    interesting = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8",
                   "avx512_bf16", "avx512_fp16")
    return {"model": model, "logical_cores": os.cpu_count(), "physical_cores": physical_cores(),
            "flags": {f: f in flags for f in interesting},
            "vnni": bool({"avx512_vnni", "avx_vnni"} & flags)}


def cpu_class(cpu: dict[str, Any]) -> str:
    """A short machine description for every printed number: cores and the int8/bf16 SIMD flags.

    Example:
        >>> cpu_class({"physical_cores": 2, "flags": {"avx2": True, "avx512_vnni": True, "amx_int8": False}})
        '2 cores, avx512_vnni'
    """
    flags = cpu.get("flags") or {}
    shown = [f for f in ("avx512_vnni", "avx512_bf16", "amx_int8") if flags.get(f)]
    shown = shown or (["avx_vnni"] if flags.get("avx_vnni") else [])
    return f"{cpu.get('physical_cores', '?')} cores, {' '.join(shown) or ('avx2, no VNNI' if flags.get('avx2') else 'no VNNI')}"


def _gpu() -> dict[str, Any] | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    name, driver, mem = [s.strip() for s in out.stdout.strip().splitlines()[0].split(",")]
    return {"name": name, "driver": driver, "memory": mem}


def _git_hash() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def collect_env() -> dict[str, Any]:
    """Everything a result needs to be reproduced: versions, machine, providers, git hash."""
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        providers = available_providers()
    except ImportError:
        providers = []
    return {"python": platform.python_version(), "platform": platform.platform(),
            "versions": versions, "onnxruntime_distributions": ort_distributions(),
            "onnxruntime_providers": providers, "cpu": cpu_info(), "gpu": _gpu(),
            "git": _git_hash()}
