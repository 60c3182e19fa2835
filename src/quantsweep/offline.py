"""Keep Ultralytics (and friends) offline: nothing is ever downloaded at run time.

Ultralytics reads its environment at import time, so :func:`ensure_offline` must run before the
first ``import ultralytics``; every quantsweep function that imports it calls this first.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "ensure_offline", "import_ultralytics"]


def cache_dir() -> Path:
    """quantsweep's cache folder (``$QUANTSWEEP_CACHE`` or ``$XDG_CACHE_HOME/quantsweep``)."""
    root = os.environ.get("QUANTSWEEP_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "quantsweep"


def ensure_offline() -> None:
    """Set the environment that stops Ultralytics' downloads, DNS probes and auto-installs."""
    settings = cache_dir() / "ultralytics"
    settings.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(settings))
    os.environ.setdefault("YOLO_VERBOSE", "false")
    # Hub / telemetry paths that some libraries probe on import.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "disabled")


def import_ultralytics():  # noqa: ANN201 - returns the module
    """Import ultralytics with the offline environment and its settings forced offline."""
    ensure_offline()
    try:
        import ultralytics
    except ImportError:
        from quantsweep.errors import QuantsweepError

        raise QuantsweepError("Ultralytics is not installed: .pt models and the demo need it",
                              "pip install 'quantsweep[ultralytics]', or pass an .onnx model") from None
    from ultralytics.utils import SETTINGS

    # sync=False: no analytics; these settings persist in our own YOLO_CONFIG_DIR only.
    wanted = {"sync": False, "hub": False, "wandb": False, "mlflow": False, "comet": False,
              "clearml": False, "dvc": False, "neptune": False, "raytune": False,
              "tensorboard": False}
    changes = {k: v for k, v in wanted.items() if k in SETTINGS and SETTINGS[k] != v}
    if changes:
        SETTINGS.update(changes)
    return ultralytics
