"""Run a library call in a fresh Python process, for libraries that change process-wide state.

ModelOpt monkey-patches ONNX Runtime's quantization classes when it is imported, which changes what
ONNX Runtime's own ``quantize_static`` produces later in the same process; its calls run in a worker
so every other build stays untouched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from quantsweep.errors import QuantsweepError

__all__ = ["run_worker"]


def run_worker(module: str, job: dict[str, Any], what: str) -> None:
    """``python -m module <job as JSON>``; its output goes to stderr (the candidate's log).

    Raises:
        QuantsweepError: the worker failed or wrote no ``job["out"]`` file.
    """
    proc = subprocess.run([sys.executable, "-m", module, json.dumps(job)], capture_output=True, text=True)
    sys.stderr.write(proc.stdout[-20000:] + proc.stderr[-20000:])
    if proc.returncode != 0 or not Path(job["out"]).exists():
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise QuantsweepError(f"{what} failed: {tail}", "see the candidate's log")
