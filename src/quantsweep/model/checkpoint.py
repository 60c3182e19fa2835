"""Loading Ultralytics checkpoints (``.pt``), offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantsweep.errors import QuantsweepError, first_line
from quantsweep.offline import import_ultralytics

__all__ = ["check_checkpoint", "load_yolo"]

# Pickled globals a YOLO checkpoint may reference: model classes only (unpickling an nn.Module
# restores its __dict__; no constructor or arbitrary function runs).
_ALLOWED_PREFIXES = ("torch.nn.modules.", "ultralytics.nn.modules.", "ultralytics.nn.tasks.")
_ALLOWED_EXACT = frozenset({"collections.OrderedDict", "builtins.set", "torch.Size",
                            "ultralytics.utils.IterableSimpleNamespace", "argparse.Namespace",
                            "types.SimpleNamespace", "builtins.slice"})


def _allowed(name: str) -> bool:
    if name in _ALLOWED_EXACT:
        return True
    if not name.startswith(_ALLOWED_PREFIXES):
        return False
    cls = _resolve(name)
    return isinstance(cls, type)  # classes only, never functions


def _resolve(name: str) -> object | None:
    import importlib

    module, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


_GETATTR = "builtins.getattr"
_REFUSED_GETATTR = "quantsweep refused getattr"


def _model_method(obj: object, name: object) -> Any:
    """``getattr`` for the unpickler, limited to a public method of an allow-listed model class.

    Ultralytics' ``fuse()`` binds ``forward_fuse`` as each fused layer's ``forward``, so such
    checkpoints pickle ``getattr(<layer>, "forward_fuse")``. Anything else is refused.
    """
    import inspect

    cls = type(obj)
    if (isinstance(name, str) and not name.startswith("_") and _allowed(f"{cls.__module__}.{cls.__qualname__}")
            and inspect.isfunction(inspect.getattr_static(cls, name, None))):
        return getattr(obj, name)
    raise RuntimeError(f"{_REFUSED_GETATTR}({cls.__module__}.{cls.__qualname__}, {name!r})")


def check_checkpoint(path: Path, trust: bool = False) -> list[str]:
    """Refuse a ``.pt`` whose pickle would run code outside the model classes, unless trusted.

    The pickle's globals are listed without executing it, checked against an allow-list of
    model classes, then the file is loaded with ``torch.load(weights_only=True)`` allowing just
    those — and ``getattr`` only onto a public method of one of those classes (fused checkpoints
    bind ``forward_fuse``). Only ``trust=True`` (``--trust-checkpoint``) lets anything else through.

    Returns:
        The globals the checkpoint references.

    Raises:
        QuantsweepError: the checkpoint references something outside the allow-list.
    """
    import torch

    path = Path(path)
    try:
        names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception as exc:
        raise QuantsweepError(f"{path} is not a loadable PyTorch checkpoint ({type(exc).__name__})",
                              "pass an Ultralytics .pt checkpoint or an .onnx file") from None
    if trust:
        return names
    import_ultralytics()
    bad = [n for n in names if n != _GETATTR and not _allowed(n)]
    if bad:
        shown = ", ".join(bad[:3]) + (" ..." if len(bad) > 3 else "")
        raise QuantsweepError(
            f"{path} would run code when loaded: its pickle calls {shown}, which are not model classes",
            "only load checkpoints you trust; if you trust this one, pass --trust-checkpoint")
    safe: list[Any] = [obj for n in names if n != _GETATTR and (obj := _resolve(n)) is not None]
    if _GETATTR in names:
        safe.append((_model_method, _GETATTR))
    try:
        with torch.serialization.safe_globals(safe):
            torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        if _REFUSED_GETATTR in text:
            call = text[text.index(_REFUSED_GETATTR) + len("quantsweep refused "):].splitlines()[0][:120]
            raise QuantsweepError(f"{path} would run code when loaded: its pickle calls {call}, which is not a "
                                  "method of a model class", "only load checkpoints you trust; if you trust this one, "
                                  "pass --trust-checkpoint") from None
        first = first_line(exc, 160)
        raise QuantsweepError(f"{path} cannot be loaded safely (weights_only): {first}",
                              "if you trust this checkpoint, pass --trust-checkpoint") from None
    return names


def load_yolo(path: Path, shown_as: Path | None = None, trust: bool = False) -> Any:
    """Load an Ultralytics detection checkpoint as a ``YOLO`` model (no downloads).

    Args:
        path: the checkpoint.
        shown_as: the path to name in error messages (when ``path`` is a staged copy).
        trust: skip the safe-loading check (``--trust-checkpoint``): the pickle may run code.

    Raises:
        QuantsweepError: the file is missing or is not an Ultralytics detection checkpoint.
    """
    path = Path(path)
    shown = shown_as or path
    if not path.is_file():
        raise QuantsweepError(f"model file not found: {path}", "check the --model path")
    ultralytics = import_ultralytics()
    try:
        check_checkpoint(path, trust)
    except QuantsweepError as exc:
        raise QuantsweepError(exc.message.replace(str(path), str(shown)), exc.fix) from None
    try:
        yolo = ultralytics.YOLO(str(path), task="detect")
    except Exception as exc:
        raise QuantsweepError(f"{shown} is not a loadable Ultralytics checkpoint ({type(exc).__name__}: "
                              f"{first_line(exc, 160).replace(str(path), str(shown))})",
                              "pass an Ultralytics .pt checkpoint or an .onnx file") from None
    if getattr(yolo, "task", "detect") != "detect":
        raise QuantsweepError(f"{shown} is a {yolo.task!r} model, not a detector",
                              "pass an Ultralytics detection checkpoint")
    return yolo
