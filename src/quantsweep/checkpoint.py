"""Loading Ultralytics checkpoints (``.pt``), offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantsweep.errors import QuantsweepError
from quantsweep.offline import import_ultralytics

__all__ = ["load_yolo"]


def load_yolo(path: Path, shown_as: Path | None = None) -> Any:
    """Load an Ultralytics detection checkpoint as a ``YOLO`` model (no downloads).

    Args:
        path: the checkpoint.
        shown_as: the path to name in error messages (when ``path`` is a staged copy).

    Raises:
        QuantsweepError: the file is missing or is not an Ultralytics detection checkpoint.
    """
    path = Path(path)
    shown = shown_as or path
    if not path.is_file():
        raise QuantsweepError(f"model file not found: {path}", "check the --model path")
    ultralytics = import_ultralytics()
    try:
        yolo = ultralytics.YOLO(str(path), task="detect")
    except Exception as exc:
        raise QuantsweepError(f"{shown} is not a loadable Ultralytics checkpoint ({type(exc).__name__}: "
                              f"{_first_line(exc, str(path), str(shown))})",
                              "pass an Ultralytics .pt checkpoint or an .onnx file") from None
    if getattr(yolo, "task", "detect") != "detect":
        raise QuantsweepError(f"{shown} is a {yolo.task!r} model, not a detector",
                              "pass an Ultralytics detection checkpoint")
    return yolo


def _first_line(exc: Exception, staged: str, shown: str) -> str:
    text = str(exc).replace(staged, shown).strip()
    return text.splitlines()[0][:160] if text else ""
