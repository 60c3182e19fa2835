"""Shared fixtures: the demo world is materialized once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Tests must never reach the network or write into the user's cache.
    os.environ.setdefault("QUANTSWEEP_CACHE", str(Path(config.rootpath) / ".pytest_cache" / "qs-cache"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from quantsweep.backends import _gpu_present

    if _gpu_present():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (none answers on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo world's model.pt, model.onnx and val/calib splits (with YOLO labels)."""
    from quantsweep.demo import materialize

    out = tmp_path_factory.mktemp("demo")
    materialize(out, splits=("val", "calib"), yolo_labels=True)
    return out


@pytest.fixture(scope="session")
def demo_val(demo_dir: Path):
    from quantsweep.data import load_dataset

    return load_dataset(demo_dir / "val" / "images", demo_dir / "val" / "annotations.json")
