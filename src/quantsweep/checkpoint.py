"""Loading Ultralytics checkpoints (``.pt``), offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantsweep.errors import QuantsweepError
from quantsweep.offline import import_ultralytics

__all__ = ["load_yolo"]


def load_yolo(path: Path) -> Any:
    """Load an Ultralytics detection checkpoint as a ``YOLO`` model (no downloads).

    Raises:
        QuantsweepError: the file is missing or is not an Ultralytics detection checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise QuantsweepError(f"model file not found: {path}", "check the --model path")
    ultralytics = import_ultralytics()
    try:
        yolo = ultralytics.YOLO(str(path), task="detect")
    except Exception as exc:
        raise QuantsweepError(f"{path} is not a loadable Ultralytics checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:120] if str(exc) else ''})",
                              "pass an Ultralytics .pt checkpoint or an .onnx file") from None
    if getattr(yolo, "task", "detect") != "detect":
        raise QuantsweepError(f"{path} is a {yolo.task!r} model, not a detector",
                              "pass an Ultralytics detection checkpoint")
    return yolo
